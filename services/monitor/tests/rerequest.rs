//! End to end: a real agent quarantines a bad file; the admin screen (over HTTP, with its CSRF
//! cookie and field) re-requests it after the facility fixed it; the agent learns it from its
//! heartbeat answer, moves it back, checks it again and uploads it; the store stores it and keeps
//! the outcome. Also: the admin screen's receiver settings (disable, enable, rotate token).

mod common;

use std::sync::Arc;

use common::*;
use kizuna_monitor::Monitor;

/// A browser-like client: keeps the CSRF cookie the admin screen sets and the token of its forms.
struct Admin {
    base: String,
    client: reqwest::Client,
    cookie: String,
    csrf: String,
}

impl Admin {
    /// Opens a page and remembers the CSRF token of its forms.
    async fn get(&mut self, path: &str) -> String {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if !self.cookie.is_empty() {
            req = req.header("cookie", &self.cookie);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        if let Some(c) = r.headers().get("set-cookie") {
            self.cookie = c.to_str().unwrap().split(';').next().unwrap().to_owned();
        }
        let body = r.text().await.unwrap();
        if let Some(i) = body.find("name=\"csrf\" value=\"") {
            let rest = &body[i + 19..];
            self.csrf = rest[..rest.find('"').unwrap()].to_owned();
        }
        body
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .form(form)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_quarantined_file_is_rerequested_from_the_admin_screen_and_stored() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_store(dir.path()).await;
    let token = add_site(&s.store, "clinic-1", FACILITY).await;

    // The agent, with a bad file (PID-3 names another patient) already in its export folder.
    let site = dir.path().join("site");
    let export = site.join("export");
    std::fs::create_dir_all(&export).unwrap();
    std::fs::write(export.join(NAME), bad_sample()).unwrap();
    let token_file = site.join("agent.token");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&token_file).unwrap();
        f.write_all(token.as_bytes()).unwrap();
    }
    let text = format!(
        "export_dir: {}\nstate_dir: {}\nstore_url: {}\nfacility: \"{FACILITY}\"\ntoken_file: {}\nsettle_ms: 100\nrescan_interval_secs: 1\nheartbeat_interval_secs: 1\n",
        export.display(),
        site.join("state").display(),
        s.base,
        token_file.display()
    );
    let agent =
        kizuna_agent::Agent::new(kizuna_agent::Config::parse(&text, &site.join("agent.yaml")).unwrap())
            .unwrap();
    let status = agent.status();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let agent_task = tokio::spawn(agent.run(async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));

    // The admin screen.
    let m = Monitor::open(monitor_config(&s.store_config, None)).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let screen = serve_monitor(listener, Arc::clone(&m));
    let mut admin =
        Admin { base, client: reqwest::Client::new(), cookie: String::new(), csrf: String::new() };

    // The agent quarantines the file and lists it in its heartbeat: the admin screen shows it.
    let quarantined = site.join("state/quarantine").join(NAME);
    wait_for("the agent's quarantine listed at the store", 30, || {
        let db = s.store.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM agent_quarantine WHERE site = 'clinic-1'")
                .fetch_one(&db.pool)
                .await
                .unwrap()
                == 1
        }
    })
    .await;
    let page = admin.get("/sites/clinic-1").await;
    assert!(page.contains("health-error"), "{page}");
    assert!(page.contains(NAME) && page.contains("patient-id-mismatch"), "{page}");
    let overview = admin.get("/").await;
    assert!(overview.contains("class=\"site site-error\" data-site=\"clinic-1\""), "{overview}");

    // A POST without the CSRF token (or with a wrong one) is refused and records nothing.
    let (code, _) = admin.post("/sites/clinic-1/rerequest", &[("file", NAME), ("csrf", "x")]).await;
    assert_eq!(code, 403);
    let bare = reqwest::Client::new();
    let r = bare
        .post(format!("{}/sites/clinic-1/rerequest", admin.base))
        .form(&[("file", NAME), ("csrf", admin.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "no cookie, no request");
    assert!(kizuna_store::rerequests::list(&s.store.db, "clinic-1", 10).await.unwrap().is_empty());
    // DNS rebinding: a page of evil.example, its name rebound to 127.0.0.1, reaches the screen
    // with its own cookie, token and a matching Origin; without login the Host header gives it away.
    let port = admin.base.rsplit(':').next().unwrap().to_owned();
    for path in ["/", "/sites/clinic-1"] {
        let r = bare
            .get(format!("{}{path}", admin.base))
            .header("host", format!("evil.example:{port}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 421, "{path} answered a rebound name");
    }
    let r = bare
        .post(format!("{}/sites/clinic-1/rerequest", admin.base))
        .header("host", format!("evil.example:{port}"))
        .header("origin", format!("http://evil.example:{port}"))
        .header("cookie", &admin.cookie)
        .form(&[("file", NAME), ("csrf", admin.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 421, "a rebound page's POST");
    assert!(kizuna_store::rerequests::list(&s.store.db, "clinic-1", 10).await.unwrap().is_empty());

    // The facility fixes the file in the quarantine folder, and the operator re-requests it.
    std::fs::write(&quarantined, sample()).unwrap();
    let csrf = admin.csrf.clone();
    let (code, page) =
        admin.post("/sites/clinic-1/rerequest", &[("file", NAME), ("sha256", ""), ("csrf", &csrf)]).await;
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("Re-request 1 recorded"), "{page}");

    // The agent releases it at its next heartbeat; intake checks it again and uploads it.
    wait_for("the fixed file stored", 60, || {
        let db = s.store.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM records WHERE file_name = $1")
                .bind(NAME)
                .fetch_one(&db.pool)
                .await
                .unwrap()
                == 1
        }
    })
    .await;
    wait_for("the outcome reported", 30, || {
        let db = s.store.db.clone();
        async move { kizuna_store::rerequests::list(&db, "clinic-1", 10).await.unwrap()[0].state == "released" }
    })
    .await;
    let stored =
        std::fs::read(s.store.config.tree_dir().join(FACILITY).join("999/901/9999013/-/ADT-00").join(NAME))
            .unwrap();
    assert_eq!(stored, sample());
    assert!(!quarantined.exists());
    assert_eq!(status.get().quarantined, 0);
    wait_for("the quarantine list emptied", 30, || {
        let db = s.store.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM agent_quarantine")
                .fetch_one(&db.pool)
                .await
                .unwrap()
                == 0
        }
    })
    .await;
    let page = admin.get("/sites/clinic-1").await;
    assert!(page.contains("state-released"), "{page}");

    // Receiver settings: disable (uploads refused), enable, rotate the token (old one refused).
    let csrf = admin.csrf.clone();
    let (code, page) = admin.post("/sites/clinic-1/enabled", &[("enabled", "0"), ("csrf", &csrf)]).await;
    assert_eq!(code, 200, "{page}");
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/heartbeat", s.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({"agent_version": "t", "queue_depth": 0, "quarantined": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let (code, _) = admin.post("/sites/clinic-1/enabled", &[("enabled", "1"), ("csrf", &csrf)]).await;
    assert_eq!(code, 200);
    let (code, page) = admin.post("/sites/clinic-1/rotate-token", &[("csrf", &csrf)]).await;
    assert_eq!(code, 200);
    let i = page.find("kzn_").expect("the new token is shown once");
    let new_token = &page[i..i + 68];
    let hb = serde_json::json!({"agent_version": "t", "queue_depth": 0, "quarantined": 0});
    let old = reqwest::Client::new()
        .post(format!("{}/api/v1/heartbeat", s.base))
        .bearer_auth(&token)
        .json(&hb)
        .send()
        .await
        .unwrap();
    assert_eq!(old.status().as_u16(), 401);
    let new = reqwest::Client::new()
        .post(format!("{}/api/v1/heartbeat", s.base))
        .bearer_auth(new_token)
        .json(&hb)
        .send()
        .await
        .unwrap();
    assert_eq!(new.status().as_u16(), 200);

    let _ = stop_tx.send(true);
    agent_task.await.unwrap().unwrap();
    screen.stop().await;
    s.stop().await;
}
