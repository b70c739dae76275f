//! The directory's security rules over a real provider: credential changes end open sessions,
//! a locked account is refused as slowly as an unknown user, and parallel guesses cannot get past
//! the lockout threshold.

mod support;

use kizuna_auth::directory::{Lockout, PasswordCheck};
use std::time::{Duration, Instant};
use support::*;

#[tokio::test]
async fn changing_the_password_or_the_totp_secret_ends_the_users_open_sessions() {
    let p = provider().await;
    for (user, change) in [("ito", "password"), ("ueda", "totp-reset"), ("ono", "totp-enroll")] {
        let secret = clinician(&p, user, "F0401").await;
        let mut b = Browser::new();
        let (_, challenge) = pkce_pair();
        let authorize = authorize_url(p.issuer(), "viewer", VIEWER_CB, &challenge, &[]);
        login(&mut b, p.issuer(), &authorize, user, &secret).await;
        assert_eq!(b.get(&authorize).await.status, 303, "{user}: single sign-on before the change");
        let d = p.server.directory();
        match change {
            "password" => d.set_password(user, "another long password").await.unwrap(),
            "totp-reset" => d.reset_totp(user).await.unwrap(),
            _ => drop(d.enroll_totp(user).await.unwrap()),
        }
        let page = b.get(&authorize).await;
        assert_eq!(page.status, 200, "{change}: the old session must be gone ({:?})", page.location);
        assert!(page.body.contains(r#"action="/login""#));
    }
}

#[tokio::test]
async fn a_locked_account_is_refused_as_slowly_as_an_unknown_user() {
    let p = provider().await;
    clinician(&p, "abe", "F0401").await;
    let d = p.server.directory();
    let policy = Lockout { threshold: 1, lock_secs: 900 };
    let r = d.check_password("abe", "wrong password!", policy).await.unwrap();
    assert!(matches!(r, PasswordCheck::Refused { now_locked: true, .. }), "{r:?}");
    let time = |user: &'static str| async move {
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            d.check_password(user, PASSWORD, policy).await.unwrap();
            best = best.min(t.elapsed());
        }
        best
    };
    let unknown = time("nobody").await;
    let locked = time("abe").await;
    assert!(locked * 3 >= unknown, "locked {locked:?} vs unknown {unknown:?}: a username oracle");
    // Locked is still locked, right password or not.
    let r = d.check_password("abe", PASSWORD, policy).await.unwrap();
    assert!(matches!(r, PasswordCheck::Locked { .. }), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_passwords_cannot_get_past_the_lockout_threshold() {
    let p = provider().await;
    clinician(&p, "endo", "F0401").await;
    let policy = Lockout { threshold: 3, lock_secs: 900 };
    let guesses: Vec<_> = (0..8)
        .map(|i| {
            let d = p.server.directory().clone();
            tokio::spawn(async move { d.check_password("endo", &format!("guess number {i}"), policy).await })
        })
        .collect();
    let mut checked = 0;
    for g in guesses {
        match g.await.unwrap().unwrap() {
            PasswordCheck::Refused { .. } => checked += 1,
            PasswordCheck::Locked { .. } => {}
            r => panic!("{r:?}"),
        }
    }
    assert!(checked <= 3, "{checked} parallel guesses were checked; the threshold is 3");
    let u = p.server.directory().user_by_username("endo").await.unwrap().unwrap();
    assert!(u.locked_until > 0, "the account ends up locked");
    // The right password no longer helps.
    let r = p.server.directory().check_password("endo", PASSWORD, policy).await.unwrap();
    assert!(matches!(r, PasswordCheck::Locked { .. }), "{r:?}");
}

/// A user's facility must be a code the patient index accepts (1 to 16 ASCII letters or digits):
/// `kizuna auth user add --facility 0411-010156` used to be accepted, and the user's break glass
/// then failed with a 500 in the middle of an emergency.
#[tokio::test]
async fn a_facility_code_the_patient_index_would_refuse_is_refused() {
    let p = provider().await;
    let d = p.server.directory();
    let user = |username: &str, facility: &str| kizuna_auth::NewUser {
        username: username.into(),
        display_name: "Dr. X".into(),
        facility: facility.into(),
        roles: vec![kizuna_auth::Role::Physician],
        password: "correct horse battery".into(),
    };
    for (i, bad) in ["0411-010156", "04110101560411010", "病院01", "F_01"].into_iter().enumerate() {
        let e = d.add_user(&user(&format!("bad{i}"), bad)).await.unwrap_err().to_string();
        assert!(e.contains("facility") && e.contains("1 to 16 ASCII letters or digits"), "{bad}: {e}");
    }
    assert!(d.list_users().await.unwrap().is_empty(), "nobody was added");
    for (i, good) in ["0411010156", "F0401", "A"].into_iter().enumerate() {
        d.add_user(&user(&format!("good{i}"), good)).await.unwrap();
    }
}

/// The provider's own idle timeout (`session_idle_secs`): a single sign-on session answers while
/// it is used, and an unused one ends — a shared PC left alone no longer logs the next person in
/// as the last one for the whole `session_lifetime_secs`.
#[tokio::test]
async fn an_unused_provider_session_ends_after_session_idle_secs() {
    let p = provider_with(|c| c.session_idle_secs = 2).await;
    let secret = clinician(&p, "sato", "F0401").await;
    let mut b = Browser::new();
    let (_, challenge) = pkce_pair();
    let authorize = authorize_url(p.issuer(), "viewer", VIEWER_CB, &challenge, &[]);
    login(&mut b, p.issuer(), &authorize, "sato", &secret).await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(b.get(&authorize).await.status, 303, "a session in use stays alive");
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let page = b.get(&authorize).await;
    assert_eq!(page.status, 200, "an idle session answered: {:?}", page.location);
    assert!(page.body.contains(r#"action="/login""#), "{}", page.body);
}
