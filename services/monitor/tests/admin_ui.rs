//! Headless Chromium (Debian's `chromium`) loads the admin screen with one site in error and one
//! healthy, and the test checks what it shows; a screenshot is kept under the target folder.

mod common;

use std::sync::Arc;

use common::*;
use kizuna_monitor::Monitor;

fn chromium() -> Option<std::path::PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|c| {
        std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(c)).find(|p| p.is_file())
    })
}

async fn run_chromium(
    browser: &std::path::Path,
    profile: &std::path::Path,
    url: &str,
    extra: &[String],
) -> std::process::Output {
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1100",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    args.extend_from_slice(extra);
    args.push(url.to_owned());
    tokio::process::Command::new(browser).args(args).output().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_chromium_shows_the_site_in_error_with_its_violations() {
    let Some(browser) = chromium() else {
        assert!(std::env::var("CI").is_err(), "chromium is required under CI (tests/apt-packages.txt)");
        eprintln!("SKIP: chromium not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = start_store(dir.path()).await;
    let bad = add_site(&s.store, "clinic-bad", FACILITY).await;
    let good = add_site(&s.store, "clinic-good", "0411000018").await;
    let report = upload(
        &s.base,
        &bad,
        vec![
            (format!("999/901/9999013/-/ADT-00/{NAME}"), sample()),
            ("999/901/9999013/-/ADT-00/notes.txt".into(), sample()),
            (
                "999/901/9999013/-/ADT-00/9999013_-_ADT-00_999999999999999_20111220224447340_-_1".into(),
                bad_sample(),
            ),
        ],
    )
    .await;
    assert_eq!(report.results.iter().filter(|r| r.status == kizuna_wire::FileStatus::Rejected).count(), 2);
    let hb = serde_json::json!({"agent_version": "0.1.0", "queue_depth": 3, "quarantined": 0});
    for t in [&bad, &good] {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/heartbeat", s.base))
            .bearer_auth(t)
            .json(&hb)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    let m = Monitor::open(monitor_config(&s.store_config, None)).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let screen = serve_monitor(listener, Arc::clone(&m));

    let profile = tempfile::tempdir().unwrap();
    let out = run_chromium(&browser, profile.path(), &format!("{base}/"), &["--dump-dom".into()]).await;
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("<table id=\"sites\">"), "{dom}");
    assert_eq!(dom.matches("<tr class=\"site ").count(), 2, "{dom}");
    assert!(dom.contains("class=\"site site-error\" data-site=\"clinic-bad\""), "{dom}");
    assert!(dom.contains("class=\"site site-ok\" data-site=\"clinic-good\""), "{dom}");
    assert!(dom.contains("2 files rejected in the last 24 h"), "{dom}");

    let page = format!("{base}/sites/clinic-bad");
    let out = run_chromium(&browser, profile.path(), &page, &["--dump-dom".into()]).await;
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("<span class=\"health health-error\">error</span>"), "{dom}");
    // The rejected files with their codes and readable reasons, named by kind.
    assert_eq!(dom.matches("<tr class=\"rejected\">").count(), 2, "{dom}");
    assert!(dom.contains("999/901/9999013/-/ADT-00/notes.txt"), "{dom}");
    assert!(dom.contains("<code>bad-file-name</code> — <b>file-name violation</b>"), "{dom}");
    assert!(dom.contains("<code>patient-id-mismatch</code> — <b>message content violation</b>"), "{dom}");
    // The daily chart: today's bar holds 1 stored and 2 rejected.
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date().to_string();
    assert!(dom.contains("<svg id=\"daily-chart\""), "{dom}");
    assert!(dom.contains(&format!("data-day=\"{today}\" data-stored=\"1\" data-rejected=\"2\"")), "{dom}");
    // Every day has its two bars side by side in the SVG (not nested), 30 days.
    assert_eq!(dom.matches("<rect class=\"rejected\"").count(), 30, "{dom}");
    assert_eq!(dom.matches("fill=\"#4a4\"></rect><rect class=\"rejected\"").count(), 30, "{dom}");
    // Forms carry the CSRF token.
    assert!(dom.contains("name=\"csrf\""), "{dom}");

    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("kizuna-monitor-site-in-error.png");
    let _ = std::fs::remove_file(&shot);
    let out =
        run_chromium(&browser, profile.path(), &page, &[format!("--screenshot={}", shot.display())]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "screenshot at {}", shot.display());
    eprintln!("screenshot: {}", shot.display());

    screen.stop().await;
    s.stop().await;
}
