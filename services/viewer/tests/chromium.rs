//! Headless Chromium (Debian's `chromium`, driven over the DevTools protocol by `cdp/`) against the real
//! viewer and the real OpenID Connect provider (`kizuna-auth`, in-process on 127.0.0.1): a
//! physician logs in with password and TOTP, searches a patient by common health ID, opens the
//! time series and the calendar and sees records from three facilities; a physician of a facility
//! the patient gave no consent to sees nothing. Screenshots are kept under the target folder
//! (`target/tmp/kizuna-viewer-*.png`).

mod cdp;
mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use cdp::Chromium;
use kizuna_auth::{AuthConfig, NewClient, NewUser, Role, Server};
use kizuna_index::{ConsentPolicy, FacilityCode, Registry};
use kizuna_viewer::audit::Audit;
use support::*;

const PASSWORD: &str = "correct horse battery";
const OUTSIDER: &str = "0499999999";

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|c| {
        std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(c)).find(|p| p.is_file())
    })
}

fn shot(tab: &mut Chromium, name: &str) {
    let png = tab.screenshot();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000);
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("kizuna-viewer-{name}.png"));
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
}

/// Logs in at the provider's forms (password, then TOTP) starting from the viewer's home page.
fn log_in(tab: &mut Chromium, base: &str, username: &str, code: &str) {
    tab.navigate(&format!("{base}/"));
    tab.fill("#username", username);
    tab.fill("#password", PASSWORD);
    tab.click("#submit");
    tab.fill("#code", code);
    tab.click("#submit");
    tab.wait_for("#search");
}

fn search(tab: &mut Chromium, common_id: &str) {
    tab.fill("#q", common_id);
    tab.click("#go");
    tab.wait_for("#count");
}

fn facilities_in(page: &str, marker: &str) -> BTreeSet<String> {
    page.split(marker)
        .skip(1)
        .filter_map(|s| s.split("data-facility=\"").nth(1))
        .filter_map(|s| s.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_physician_logs_in_with_totp_and_sees_three_facilities_an_outsider_sees_nothing() {
    let Some(browser_path) = chromium() else {
        assert!(std::env::var("CI").is_err(), "chromium is required under CI (tests/apt-packages.txt)");
        eprintln!("SKIP: chromium not installed");
        return;
    };
    let c = centre().await;
    let f1 = c.facilities[0].clone();
    let reg = Registry::open(&c.config.index_database_url).await.unwrap();
    let consent = ConsentPolicy::Listed([FacilityCode::parse(&f1).unwrap()].into());
    reg.set_consent(&c.patient, &consent, "clerk-1", "signed consent form").await.unwrap();

    // The viewer's address first: the provider registers its redirect URI.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let auth = Server::start(AuthConfig::local(&c.dir.path().join("auth")).unwrap()).await.unwrap();
    let creds = auth
        .directory()
        .add_client(&NewClient {
            client_id: "kizuna-viewer".into(),
            name: "Kizuna viewer".into(),
            redirect_uris: vec![format!("{base}/auth/callback")],
            post_logout_redirect_uris: vec![format!("{base}/")],
            sector: "viewer".into(),
            confidential: true,
        })
        .await
        .unwrap();
    let secret_file = c.dir.path().join("viewer-client-secret");
    std::fs::write(&secret_file, creds.client_secret.unwrap()).unwrap();
    let mut totp = Vec::new();
    for (username, facility) in [("sato", f1.as_str()), ("outsider", OUTSIDER)] {
        auth.directory()
            .add_user(&NewUser {
                username: username.into(),
                display_name: format!("Dr. {username}"),
                facility: facility.into(),
                roles: vec![Role::Physician],
                password: PASSWORD.into(),
            })
            .await
            .unwrap();
        totp.push(auth.directory().enroll_totp(username).await.unwrap());
    }
    let mut config = c.config.clone();
    config.public_url = base.clone();
    config.oidc.issuer = auth.issuer().to_owned();
    config.oidc.client_id = "kizuna-viewer".into();
    config.oidc.client_secret_file = secret_file;
    // As on the centre's router, where the provider listens in the reference VRF: the viewer's
    // connections to it go out bound to a device (`lo` here), so login proves that path works.
    config.bind_interface = "lo".into();
    let _v = serve_on(listener, config, Audit::log_only()).await;

    let cid = c.patient.to_string();
    let codes: Vec<String> = totp.iter().map(|s| kizuna_auth::totp::code_now(s).unwrap()).collect();
    let expected: BTreeSet<String> = c.facilities.iter().cloned().collect();
    let (b, bp) = (base.clone(), browser_path.clone());
    tokio::task::spawn_blocking(move || {
        // The physician of facility 1, which the patient consented to.
        let mut tab = Chromium::launch(&bp);
        log_in(&mut tab, &b, "sato", &codes[0]);
        assert!(tab.html().contains("Dr. sato"), "the provider's name claim is shown");
        shot(&mut tab, "1-search");
        search(&mut tab, &cid);
        let page = tab.html();
        assert!(page.contains(&format!("id=\"common-id\">{cid}<")), "{page}");
        assert_eq!(facilities_in(&page, "<tr class=\"entry"), expected, "records of three facilities");
        assert!(page.contains("<tr class=\"drug\">") && page.contains("<tr class=\"lab\">"));
        shot(&mut tab, "2-time-series");
        tab.click("#tab-calendar");
        tab.wait_for("#calendar");
        let cal = tab.html();
        shot(&mut tab, "3-calendar");
        // Every month with records, from the calendar's own links: together, three facilities.
        let mut seen = facilities_in(&cal, "class=\"chip\"");
        let months: Vec<String> = cal
            .split("calendar?month=")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .map(str::to_owned)
            .collect();
        assert!(!months.is_empty());
        for m in months {
            tab.navigate(&format!("{b}/patients/{cid}/calendar?month={m}"));
            tab.wait_for("#calendar");
            seen.extend(facilities_in(&tab.html(), "class=\"chip\""));
        }
        assert_eq!(seen, expected, "the calendar shows the three facilities");

        // A physician of a facility without consent: logged in, finds the patient, sees nothing.
        let mut tab2 = Chromium::launch(&bp);
        log_in(&mut tab2, &b, "outsider", &codes[1]);
        search(&mut tab2, &cid);
        let page = tab2.html();
        assert_eq!(page.matches("<tr class=\"entry").count(), 0, "{page}");
        assert!(page.contains("id=\"withheld\""));
        assert!(page.contains("id=\"count\">0 records"), "{page}");
        shot(&mut tab2, "4-no-consent");
    })
    .await
    .unwrap();
    auth.shutdown().await;
}
