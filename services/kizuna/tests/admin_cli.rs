//! `kizuna admin serve`: the default config documents the login and audit keys; without a login
//! the screen refuses a non-loopback address and, on loopback, serves with a warning and stops
//! gracefully on SIGTERM.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `kizuna admin serve ARGS` to its end: exit code, standard output, standard error.
fn admin_serve(args: &[&str]) -> (i32, String, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_kizuna")).args(["admin", "serve"]).args(args).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// One plain HTTP/1.0 GET on loopback: the status code, or `None` while nothing listens.
fn get_status(port: u16, path: &str) -> Option<u16> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    answer.split(' ').nth(1)?.parse().ok()
}

#[test]
fn admin_serve_without_login_stays_on_loopback_and_says_so() {
    let (code, default, _) = admin_serve(&["--print-default-config"]);
    assert_eq!(code, 0);
    for key in ["\noidc:\n", "  issuer: ''", "  client_id: kizuna-admin", "\naudit:\n", "  spool_dir: ''"] {
        assert!(default.contains(key), "{key:?} missing from\n{default}");
    }

    let d = tempfile::tempdir().unwrap();
    let store_yaml = d.path().join("store.yaml");
    std::fs::write(&store_yaml, format!("data_dir: {}\n", d.path().join("centre").display())).unwrap();
    // The screen reads an existing store (it refuses to create one): make it, then let it go.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let config = kizuna_store::Config { data_dir: d.path().join("centre"), ..Default::default() };
        drop(kizuna_store::Store::open(config).await.unwrap());
    });
    let admin_yaml = d.path().join("admin.yaml");
    let path = admin_yaml.display().to_string();

    std::fs::write(
        &admin_yaml,
        format!("store_config: {}\nlisten: 0.0.0.0:8441\nallow_non_loopback: true\n", store_yaml.display()),
    )
    .unwrap();
    let (code, _, err) = admin_serve(&["--config", &path]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("admin.yaml") && err.contains("oidc.issuer"), "{err}");

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(
        &admin_yaml,
        format!("store_config: {}\nlisten: 127.0.0.1:{port}\n", store_yaml.display()),
    )
    .unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_kizuna"))
        .args(["admin", "serve", "--config", &path])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while get_status(port, "/healthz").is_none() {
        if start.elapsed() > Duration::from_secs(60) || server.try_wait().unwrap().is_some() {
            let _ = server.kill();
            let out = server.wait_with_output().unwrap();
            panic!("admin screen did not start: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let overview = get_status(port, "/");
    // `systemctl stop` sends SIGTERM: the screen stops gracefully, exit code 0.
    let term = Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap();
    assert!(term.success(), "kill -TERM");
    let start = Instant::now();
    while server.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = server.kill();
            panic!("the admin screen did not stop within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = server.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "exit after SIGTERM: {:?}\n{stderr}", out.status);
    assert!(stderr.contains("SIGTERM: shutting down"), "{stderr}");
    assert_eq!(overview, Some(200), "without login the overview is served on loopback: {stderr}");
    assert!(stdout.contains("no login: oidc.issuer is empty, loopback only"), "{stdout}");
    assert!(stderr.contains("WARN") && stderr.contains("WITHOUT login"), "{stderr}");
}
