//! The replica checks the bearer token before it reads a request's body: a request with a wrong or
//! missing token and a large declared body is answered 401 at once, while its body is still unsent.
//! (Before, `POST /api/v1/batches` and `/api/v1/digests` read the whole body, up to
//! `max_batch_bytes`, into memory first and checked the token after: a handful of unauthenticated
//! 256 MiB requests took the replica above a gigabyte.)

mod centre;

use std::time::{Duration, Instant};

use centre::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Declared in every request here: the default `max_batch_bytes`.
const DECLARED: u64 = 256 << 20;

/// Sends the headers of `method path` declaring a [`DECLARED`]-byte body, then only 64 KiB of it,
/// and keeps the connection open. Returns the start of the answer and how long it took, or `None`
/// when nothing came within `wait`.
async fn half_sent(
    addr: &str,
    method: &str,
    path: &str,
    auth: Option<&str>,
    wait: Duration,
) -> Option<(String, Duration)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/octet-stream\r\nContent-Length: {DECLARED}\r\n\r\n"
    );
    let started = Instant::now();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&vec![0x5a; 64 << 10]).await.unwrap();
    s.flush().await.unwrap();
    let mut buf = vec![0u8; 4096];
    // The writing half stays open: the rest of the body could still come.
    match tokio::time::timeout(wait, s.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => Some((String::from_utf8_lossy(&buf[..n]).into_owned(), started.elapsed())),
        Ok(r) => panic!("{method} {path}: connection ended without an answer: {r:?}"),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused_before_the_body_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let r = ReplicaServer::start(dir.path()).await;
    let addr = r.url.trim_start_matches("http://").to_owned();
    let routes = [("POST", "/api/v1/batches"), ("POST", "/api/v1/digests"), ("PUT", "/api/v1/linkage")];
    let mut refused = 0;
    for (method, path) in routes {
        for auth in [Some("Bearer wrong"), None, Some(&format!("Basic {TOKEN}")[..])] {
            let (answer, took) =
                half_sent(&addr, method, path, auth, Duration::from_secs(2)).await.unwrap_or_else(|| {
                    panic!("{method} {path} with {auth:?}: no answer within 2 s (waiting for the body?)")
                });
            assert!(answer.starts_with("HTTP/1.1 401"), "{method} {path} with {auth:?}: {answer}");
            assert!(answer.contains("\"unauthorized\""), "{answer}");
            assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
            assert!(took < Duration::from_secs(2), "{took:?}");
            refused += 1;
        }
    }

    // Six such requests at once, as the reviewer sent, all answered at once too.
    let floods: Vec<_> = (0..6)
        .map(|_| {
            let addr = addr.clone();
            tokio::spawn(async move {
                half_sent(&addr, "POST", "/api/v1/batches", Some("Bearer wrong"), Duration::from_secs(2))
                    .await
            })
        })
        .collect();
    for f in floods {
        let (answer, _) = f.await.unwrap().expect("a flood request was answered within 2 s");
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        refused += 1;
    }

    // The right token is still served, and every refusal was counted.
    let http = reqwest::Client::new();
    let state = http.get(format!("{}/api/v1/state", r.url)).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(state.status(), 200);
    let metrics = reqwest::get(format!("{}/metrics", r.url)).await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(&format!("kizuna_backup_replica_refused_requests_total {refused}")),
        "{metrics}"
    );
    // With the right token the body is awaited (nothing answers a half-sent batch early).
    assert!(
        half_sent(
            &addr,
            "POST",
            "/api/v1/batches",
            Some(&format!("Bearer {TOKEN}")),
            Duration::from_millis(500)
        )
        .await
        .is_none(),
        "a half-sent batch with the right token was answered before its body"
    );
    r.stop().await;
}
