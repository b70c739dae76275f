//! `kizuna auth`: keys, a user with TOTP, a client, then `serve` answering discovery on loopback;
//! bad input named in one line with exit code 2.

use std::io::Write;
use std::process::{Command, Stdio};

fn kizuna(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kizuna"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kizuna runs");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn auth_cli_creates_keys_users_clients_and_serves_discovery() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n).display().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (code, default, _) = kizuna(&["auth", "print-default-config"], None);
    assert_eq!(code, 0);
    // The README's KIZUNA_LOG_JSON=1 works (clap's plain bool parser took only true/false).
    // An empty value (`KIZUNA_LOG_JSON=` in a unit file) is unset; before, every command failed.
    for v in ["1", "true", "yes", "", "0", "off"] {
        let out = Command::new(env!("CARGO_BIN_EXE_kizuna"))
            .args(["auth", "print-default-config"])
            .env("KIZUNA_LOG_JSON", v)
            .output()
            .unwrap();
        assert!(out.status.success(), "KIZUNA_LOG_JSON={v}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_kizuna"))
        .args(["auth", "print-default-config"])
        .env("KIZUNA_LOG_JSON", "maybe")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a yes/no value"));
    let cfg = default
        .replace("/var/lib/kizuna/auth", &p("data"))
        .replace("/etc/kizuna/auth-signing.key", &p("sign.key"))
        .replace("/etc/kizuna/auth-pairwise.salt", &p("salt"))
        .replace("127.0.0.1:7470", &format!("127.0.0.1:{port}"));
    std::fs::write(p("auth.yaml"), cfg).unwrap();
    let (code, _, err) =
        kizuna(&["auth", "keygen", "--signing-key", &p("sign.key"), "--pairwise-salt", &p("salt")], None);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) =
        kizuna(&["auth", "keygen", "--signing-key", &p("sign.key"), "--pairwise-salt", &p("salt2")], None);
    assert_eq!(code, 2, "an existing key is never overwritten");
    assert!(err.contains("sign.key"), "{err}");
    let c = p("auth.yaml");
    let (code, out, err) = kizuna(
        &[
            "auth",
            "user",
            "add",
            "-c",
            &c,
            "--username",
            "sato",
            "--name",
            "Dr. Sato",
            "--facility",
            "F0401",
            "--roles",
            "physician",
            "--password-stdin",
            "--totp",
        ],
        Some("correct horse battery\n"),
    );
    assert_eq!(code, 0, "{err}");
    // The database holding password hashes and TOTP secrets is nobody else's to read, whatever
    // the shell's umask (this test process runs with the usual 022).
    for entry in std::fs::read_dir(p("data")).unwrap() {
        use std::os::unix::fs::PermissionsExt;
        let e = entry.unwrap();
        let mode = e.metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o007, 0, "{} is mode {:o}", e.path().display(), mode & 0o777);
    }
    let secret = out.lines().find_map(|l| l.strip_prefix("totp_secret: ")).unwrap().to_string();
    let (code, totp, _) = kizuna(&["auth", "totp-code", &secret], None);
    assert_eq!((code, totp.trim().len()), (0, 6));
    let (code, _, err) = kizuna(
        &[
            "auth",
            "user",
            "add",
            "-c",
            &c,
            "--username",
            "x",
            "--name",
            "X",
            "--facility",
            "F1",
            "--roles",
            "surgeon",
            "--password-stdin",
        ],
        Some("correct horse battery\n"),
    );
    assert_eq!(code, 2);
    assert!(err.contains("surgeon"), "{err}");
    let (code, out, err) = kizuna(
        &[
            "auth",
            "client",
            "add",
            "-c",
            &c,
            "--id",
            "viewer",
            "--redirect-uri",
            "http://127.0.0.1:9/cb",
            "--sector",
            "viewer",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("client_secret: "));
    let (code, out, _) = kizuna(&["auth", "user", "list", "-c", &c], None);
    assert_eq!(code, 0);
    let u: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!((u["username"].as_str(), u["totp_enrolled"].as_bool()), (Some("sato"), Some(true)));
    // serve answers discovery with the configured issuer.
    let mut server = Command::new(env!("CARGO_BIN_EXE_kizuna"))
        .args(["auth", "serve", "-c", &c])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut body = String::new();
    for _ in 0..100 {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::Read;
            write!(s, "GET /.well-known/openid-configuration HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
            s.read_to_string(&mut body).unwrap();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = server.kill();
    let _ = server.wait();
    assert!(body.contains(&format!("\"issuer\":\"http://127.0.0.1:{port}\"")), "{body}");
}

/// `kizuna site add` with a store configuration whose `audit:` key is bad (a URL without a spool
/// folder) refuses before changing anything: the site used to be committed with a token that the
/// failing audit step then never printed, and adding it again said "already exists".
#[test]
fn a_site_change_with_a_bad_audit_key_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("store.yaml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir: {}\naudit:\n  url: http://127.0.0.1:9/v1/events\n",
            d.path().join("data").display()
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let (code, out, err) = kizuna(&["site", "add", "s1", "--facility", "0411000017", "-c", c], None);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("audit"), "{err}");
    assert!(out.trim().is_empty(), "no token for a site that was not added: {out}");
    let (code, list, err) = kizuna(&["site", "list", "-c", c], None);
    assert_eq!(code, 0, "{err}");
    assert!(!list.contains("s1"), "nothing was added: {list}");
    let (code, _, err) = kizuna(&["site", "rotate-token", "s1", "-c", c], None);
    assert_eq!(code, 2, "{err}");
}
