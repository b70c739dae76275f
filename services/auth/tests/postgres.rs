//! The same provider on PostgreSQL (`KIZUNA_TEST_POSTGRES_URL`, started by tests/pg-setup.sh): the
//! code flow, code replay revoking tokens, and lockout, through the PostgreSQL migrations.

mod support;

use kizuna_auth::directory::{Lockout, PasswordCheck};
use support::*;

/// A new database on the test server, or None (skip) when no server is configured outside CI.
async fn fresh_database() -> Option<String> {
    kizuna_db::fresh_test_postgres("kizuna_auth_test").await
}

#[tokio::test]
async fn code_flow_replay_and_lockout_on_postgres() {
    let Some(url) = fresh_database().await else { return };
    let p = provider_with(|c| c.database_url = url).await;
    let secret = clinician(&p, "pg-user", "F0401").await;
    let mut b = Browser::new();
    let (verifier, challenge) = pkce_pair();
    let page = login(
        &mut b,
        p.issuer(),
        &authorize_url(p.issuer(), "viewer", VIEWER_CB, &challenge, &[]),
        "pg-user",
        &secret,
    )
    .await;
    let code = page.location_param("code").unwrap();
    let (s, tok) = exchange(&p, &code, VIEWER_CB, &verifier).await;
    assert_eq!(s, 200, "{tok}");
    let at = tok["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&p, at).await.0, 200);
    let (s, _) = exchange(&p, &code, VIEWER_CB, &verifier).await;
    assert_eq!(s, 400);
    assert_eq!(userinfo(&p, at).await.0, 401, "replay revokes the token");
    // A new password ends the open session.
    p.server.directory().set_password("pg-user", "another long password").await.unwrap();
    let page = b.get(&authorize_url(p.issuer(), "viewer", VIEWER_CB, &challenge, &[])).await;
    assert_eq!(page.status, 200, "{:?}", page.location);
    // Lockout.
    clinician(&p, "pg-locked", "F0401").await;
    let mut b = Browser::new();
    let page = b.get(&authorize_url(p.issuer(), "viewer", VIEWER_CB, &challenge, &[])).await;
    let csrf = page.csrf();
    for _ in 0..5 {
        b.post(
            &format!("{}/login", p.issuer()),
            &[("csrf", &csrf), ("username", "pg-locked"), ("password", "wrong wrong wrong")],
        )
        .await;
    }
    let page = b
        .post(
            &format!("{}/login", p.issuer()),
            &[("csrf", &csrf), ("username", "pg-locked"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(page.status, 401);
    assert!(page.body.contains(kizuna_auth::api::login::REFUSED));
    // Parallel guesses are counted before they are checked (UPDATE … RETURNING).
    clinician(&p, "pg-parallel", "F0401").await;
    let policy = Lockout { threshold: 3, lock_secs: 900 };
    let guesses: Vec<_> = (0..6)
        .map(|i| {
            let d = p.server.directory().clone();
            tokio::spawn(async move {
                d.check_password("pg-parallel", &format!("guess number {i}"), policy).await
            })
        })
        .collect();
    let mut checked = 0;
    for g in guesses {
        if matches!(g.await.unwrap().unwrap(), PasswordCheck::Refused { .. }) {
            checked += 1;
        }
    }
    assert!(checked <= 3, "{checked} parallel guesses checked");
    p.server.shutdown().await;
}
