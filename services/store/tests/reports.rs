//! Heartbeats and daily log reports are kept per site; health and metrics endpoints answer.

mod common;

use common::{Backend, Harness, count};
use kizuna_wire::{DailyLog, Heartbeat, LogLine};

both_backends!(heartbeats_and_daily_logs_are_persisted_per_site);
both_backends!(heartbeat_history_is_bounded_by_its_retention);

async fn heartbeats_and_daily_logs_are_persisted_per_site(backend: &Backend) {
    use sqlx::Row;
    let h = Harness::start(backend, |_| {}).await;
    let token = h.add_site("clinic-1", &["0411000017"], &[]).await;
    let hb = Heartbeat {
        agent_version: "0.1.0".into(),
        queue_depth: 42,
        quarantined: 3,
        last_upload: None,
        quarantine: None,
        rerequests_done: vec![],
    };
    let (status, body) = h.post_heartbeat(&token, &hb).await;
    assert_eq!(status, 200, "{body}");
    let row = sqlx::query("SELECT agent_version, queue_depth, quarantined, last_heartbeat_at FROM site_status WHERE site = 'clinic-1'")
        .fetch_one(&h.store.db.pool)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("agent_version"), "0.1.0");
    assert_eq!(row.get::<i64, _>("queue_depth"), 42);
    assert_eq!(row.get::<i64, _>("quarantined"), 3);
    assert_eq!(count(&h.store, "SELECT COUNT(*) FROM heartbeats").await, 1);

    let log = DailyLog {
        date: "2026-11-24".into(),
        files_uploaded: 1200,
        files_quarantined: 2,
        upload_errors: 1,
        nsips_converted: 0,
        lines: vec![
            LogLine {
                time: "2026-11-24T03:00:00Z".into(),
                level: "ERROR".into(),
                message: "upload failed: timeout".into(),
            },
            LogLine {
                time: "2026-11-24T04:00:00Z".into(),
                level: "WARN".into(),
                message: "quarantined x_1: path-mismatch".into(),
            },
        ],
        truncated: false,
    };
    for _ in 0..2 {
        // Sending the same day twice replaces it.
        let r = h
            .client
            .post(format!("{}/api/v1/daily-log", h.base))
            .bearer_auth(&token)
            .json(&log)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    assert_eq!(count(&h.store, "SELECT COUNT(*) FROM daily_logs").await, 1);
    assert_eq!(count(&h.store, "SELECT COUNT(*) FROM daily_log_lines WHERE level = 'ERROR'").await, 1);
    assert_eq!(count(&h.store, "SELECT CAST(SUM(files_uploaded) AS BIGINT) FROM daily_logs").await, 1200);

    // Bad reports get a clear 400 naming the field; wrong tokens 401.
    let bad = DailyLog { date: "24/11/2026".into(), ..log.clone() };
    let r = h
        .client
        .post(format!("{}/api/v1/daily-log", h.base))
        .bearer_auth(&token)
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("date"));
    let r = h
        .client
        .post(format!("{}/api/v1/heartbeat", h.base))
        .bearer_auth("nope")
        .json(&hb)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    let (status, body) = h.get("/healthz").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "ok");
    let (_, metrics) = h.get("/metrics").await;
    assert!(metrics.contains("kizuna_agent_heartbeats_total{site=\"clinic-1\"} 1"), "{metrics}");
    assert!(metrics.contains("kizuna_agent_daily_logs_total{site=\"clinic-1\"} 2"), "{metrics}");
    h.stop().await;
}

both_backends!(quarantine_list_and_rerequests_travel_with_heartbeats);

/// The agent's quarantine list replaces the last one; a re-request is answered in every heartbeat
/// until the agent reports its outcome, which is kept.
async fn quarantine_list_and_rerequests_travel_with_heartbeats(backend: &Backend) {
    use kizuna_wire::{HeartbeatAnswer, QuarantinedFile, RerequestOutcome};
    let h = Harness::start(backend, |_| {}).await;
    let token = h.add_site("clinic-1", &["0411000017"], &[]).await;
    let q = |file: &str| QuarantinedFile {
        file: file.into(),
        origin: "agent".into(),
        sha256: "ab".into(),
        codes: vec!["bad-file-name".into()],
        reason: "bad-file-name: not an SS-MIX2 name".into(),
        time: "2026-11-25T10:00:00+09:00".into(),
    };
    let beat = |quarantine: Option<Vec<QuarantinedFile>>, done: Vec<RerequestOutcome>| {
        let hb = Heartbeat {
            agent_version: "0.1.0".into(),
            queue_depth: 0,
            quarantined: 2,
            last_upload: None,
            quarantine,
            rerequests_done: done,
        };
        let (client, base, token) = (h.client.clone(), h.base.clone(), token.clone());
        async move {
            let r = client
                .post(format!("{base}/api/v1/heartbeat"))
                .bearer_auth(&token)
                .json(&hb)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            r.json::<HeartbeatAnswer>().await.unwrap()
        }
    };
    let a = beat(Some(vec![q("notes.txt"), q("a/b_1")]), vec![]).await;
    assert!(a.ok && a.rerequests.is_empty());
    assert_eq!(count(&h.store, "SELECT COUNT(*) FROM agent_quarantine WHERE site = 'clinic-1'").await, 2);
    // An older agent (no list) leaves it; a new list replaces it.
    beat(None, vec![]).await;
    assert_eq!(count(&h.store, "SELECT COUNT(*) FROM agent_quarantine").await, 2);
    // `reported_at` is when the centre first saw the file (the monitor's rejects window): a file
    // listed again keeps it; new content under the name is seen anew.
    let first_seen = "SELECT reported_at FROM agent_quarantine WHERE file = 'notes.txt'";
    let seen =
        || async { sqlx::query_scalar::<_, String>(first_seen).fetch_one(&h.store.db.pool).await.unwrap() };
    let before = seen().await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    beat(Some(vec![q("notes.txt")]), vec![]).await;
    assert_eq!(count(&h.store, "SELECT COUNT(*) FROM agent_quarantine").await, 1);
    assert_eq!(seen().await, before, "listed again: first seen kept");
    beat(Some(vec![QuarantinedFile { sha256: "cd".into(), ..q("notes.txt") }]), vec![]).await;
    assert!(seen().await > before, "new content under the name: seen anew");
    beat(Some(vec![q("notes.txt")]), vec![]).await;

    let id =
        kizuna_store::rerequests::request(&h.store.db, "clinic-1", "notes.txt", "ab", "admin").await.unwrap();
    // Asking twice while pending gives the same request.
    assert_eq!(
        kizuna_store::rerequests::request(&h.store.db, "clinic-1", "notes.txt", "ab", "admin").await.unwrap(),
        id
    );
    assert!(kizuna_store::rerequests::request(&h.store.db, "nope", "x", "", "admin").await.is_err());
    // Asked at the same moment (two admins, or the monitor's retries): still one request. On
    // PostgreSQL (no in-process write lock, READ COMMITTED) each made its own before.
    for round in 0..5 {
        let file = format!("race-{round}.hl7");
        let mut asks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (store, file) = (h.store.clone(), file.clone());
            asks.spawn(async move {
                kizuna_store::rerequests::request(&store.db, "clinic-1", &file, "cd", "admin").await.unwrap()
            });
        }
        let ids: Vec<i64> = asks.join_all().await;
        assert!(ids.iter().all(|i| *i == ids[0]), "{file}: {ids:?}");
        let pending = count(
            &h.store,
            &format!("SELECT COUNT(*) FROM rerequests WHERE file = '{file}' AND state = 'pending'"),
        )
        .await;
        assert_eq!(pending, 1, "{file}");
        sqlx::query("DELETE FROM rerequests WHERE file = $1")
            .bind(&file)
            .execute(&h.store.db.pool)
            .await
            .unwrap();
    }
    for _ in 0..2 {
        let a = beat(None, vec![]).await;
        assert_eq!(a.rerequests.len(), 1);
        assert_eq!(a.rerequests[0].file, "notes.txt");
        assert_eq!(a.rerequests[0].id, id);
    }
    let done = RerequestOutcome { id, outcome: "released".into(), message: "moved to export".into() };
    let a = beat(Some(vec![]), vec![done]).await;
    assert!(a.rerequests.is_empty());
    let rows = kizuna_store::rerequests::list(&h.store.db, "clinic-1", 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, "released");
    assert!(rows[0].done_at.is_some());
    assert_eq!(count(&h.store, "SELECT COUNT(*) FROM agent_quarantine").await, 0);
}

/// 900 sites at one heartbeat a minute add 1.3 M rows a day: each heartbeat removes its site's
/// rows older than `limits.heartbeat_history_days`, and 0 keeps none.
async fn heartbeat_history_is_bounded_by_its_retention(backend: &Backend) {
    for days in [14u32, 0] {
        let h = Harness::start(backend, |c| c.limits.heartbeat_history_days = days).await;
        let token = h.add_site("clinic-1", &["0411000017"], &[]).await;
        let other = h.add_site("clinic-2", &["0411000025"], &[]).await;
        let old = jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_hours(24 * 15)).unwrap();
        let recent = jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_hours(24 * 13)).unwrap();
        for (site, at) in [("clinic-1", old), ("clinic-1", recent), ("clinic-2", old)] {
            sqlx::query(
                "INSERT INTO heartbeats (site, received_at, agent_version, queue_depth, quarantined) \
                 VALUES ($1, $2, '0.0.9', 0, 0)",
            )
            .bind(site)
            .bind(at.to_string())
            .execute(&h.store.db.pool)
            .await
            .unwrap();
        }
        let hb = Heartbeat {
            agent_version: "0.1.0".into(),
            queue_depth: 1,
            quarantined: 0,
            last_upload: None,
            quarantine: None,
            rerequests_done: vec![],
        };
        let (status, body) = h.post_heartbeat(&token, &hb).await;
        assert_eq!(status, 200, "{body}");
        let kept = |site: &str| format!("SELECT COUNT(*) FROM heartbeats WHERE site = '{site}'");
        let expect = if days == 0 { 0 } else { 2 }; // the 13-day-old row and the new one
        assert_eq!(count(&h.store, &kept("clinic-1")).await, expect, "{days} days");
        assert_eq!(
            count(&h.store, &kept("clinic-2")).await,
            1,
            "another site's rows wait for its own heartbeat"
        );
        let (status, _) = h.post_heartbeat(&other, &hb).await;
        assert_eq!(status, 200);
        assert_eq!(count(&h.store, &kept("clinic-2")).await, i64::from(days > 0), "{days} days");
        let status = "SELECT COUNT(*) FROM site_status WHERE queue_depth = 1";
        assert_eq!(count(&h.store, status).await, 2, "the latest heartbeat is kept whatever the history");
    }
}
