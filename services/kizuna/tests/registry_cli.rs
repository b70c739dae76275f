//! The registry's administration commands (`kizuna policy apply|rollback`, `kizuna site
//! provision|revoke`) each leave a Security Configuration event at a real audit service (started
//! here on loopback), naming the operating-system account that ran them.

use std::process::Command;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../netd/tests/fixtures/valid.yaml");

fn kizuna(args: &[&str], user: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kizuna"))
        .args(args)
        .env("USER", user)
        .env_remove("SUDO_USER")
        .output()
        .expect("kizuna runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// The netd fixture policy in the registry's form (no keys: sites register their own).
fn policy_without_keys() -> String {
    let mut v: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    for site in v["sites"].as_sequence_mut().unwrap() {
        site.as_mapping_mut().unwrap().remove("keys");
    }
    serde_norway::to_string(&v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_and_site_commands_are_audited_with_the_admin_account() {
    let dir = tempfile::tempdir().unwrap();
    let acfg = kizuna_audit::server::local_config(&dir.path().join("audit"), "127.0.0.1:0", None).unwrap();
    let audit = kizuna_audit::server::start(&acfg).await.unwrap();
    let base = format!("http://{}", audit.http_addr);
    let cfg = dir.path().join("registry.yaml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir: {}\npublic_url: https://127.0.0.1:9443\naudit:\n  url: {base}/v1/events\n  spool_dir: {}\n",
            dir.path().join("registry").display(),
            dir.path().join("spool").display()
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let v1 = dir.path().join("mesh.yaml");
    std::fs::write(&v1, policy_without_keys()).unwrap();
    let v2 = dir.path().join("mesh2.yaml");
    std::fs::write(&v2, policy_without_keys().replace("192.0.2.2", "192.0.2.22")).unwrap();

    let run = |args: &[&str]| {
        let (code, out, err) = kizuna(args, "netadmin-sato");
        assert_eq!(code, 0, "{args:?}: {out}{err}");
    };
    run(&["policy", "apply", v1.to_str().unwrap(), "--config", c]);
    run(&["policy", "apply", v2.to_str().unwrap(), "--config", c]);
    run(&["policy", "rollback", "1", "--config", c]);
    run(&["site", "provision", "kita-hospital", "--config", c]);
    run(&["site", "revoke", "kita-hospital", "--config", c]);
    // A dry run changes nothing and records nothing.
    run(&["policy", "apply", "--dry-run", v2.to_str().unwrap(), "--config", c]);

    let ev =
        kizuna_audit::server::events_when(&base, "user=os:netadmin-sato&event_type=110129", 5).await.unwrap();
    assert_eq!(ev.len(), 5, "{ev:?}");
    assert!(ev.iter().all(|e| e["source_id"] == "kizuna-registry-admin"), "{ev:?}");
    // What changed is in each event's object detail (FHIR AuditEvent entity.detail).
    let bundle = reqwest::get(format!("{base}/fhir/AuditEvent?agent=os:netadmin-sato&_count=50"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for want in [
        "policy version 1 activated",
        "policy version 2 activated",
        "rolled back",
        "enrollment token issued",
        "site revoked",
        "kita-hospital",
    ] {
        assert!(bundle.contains(want), "{want}: {bundle}");
    }
    audit.shutdown().await.unwrap();
}

/// A registry configuration under `dir` with `audit` appended (the `audit:` key, or nothing).
fn registry_config(dir: &std::path::Path, name: &str, audit: &str) -> String {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("data_dir: {}\npublic_url: https://127.0.0.1:9443\n{audit}", dir.join("registry").display()),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

/// The commands saved their change and only then opened the audit settings: a bad `audit:` key
/// exited 2 with the change saved and no event anywhere (and `provision` printed its token).
#[test]
fn a_bad_audit_key_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = registry_config(dir.path(), "good.yaml", "");
    let missing = dir.path().join("no-such-token");
    let bad = registry_config(
        dir.path(),
        "bad.yaml",
        &format!("audit:\n  url: http://127.0.0.1:9/v1/events\n  token_file: {}\n", missing.display()),
    );
    let v1 = dir.path().join("mesh.yaml");
    std::fs::write(&v1, policy_without_keys()).unwrap();
    let v2 = dir.path().join("mesh2.yaml");
    std::fs::write(&v2, policy_without_keys().replace("192.0.2.2", "192.0.2.22")).unwrap();
    let ok = |args: &[&str]| {
        let (code, out, err) = kizuna(args, "netadmin-sato");
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        out
    };
    let refused = |args: &[&str]| {
        let (code, out, err) = kizuna(args, "netadmin-sato");
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains("audit") && err.contains("no-such-token"), "{err}");
        out
    };
    let (v1, v2) = (v1.to_str().unwrap(), v2.to_str().unwrap());
    refused(&["policy", "apply", v1, "--config", &bad]);
    assert_eq!(ok(&["policy", "list", "--config", &good]), "", "nothing activated");
    ok(&["policy", "apply", v1, "--config", &good]);
    ok(&["policy", "apply", v2, "--config", &good]);
    refused(&["policy", "rollback", "1", "--config", &bad]);
    let list = ok(&["policy", "list", "--config", &good]);
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.lines().nth(1).unwrap().starts_with("*   2"), "version 2 stays active: {list}");
    let out = refused(&["site", "provision", "kita-hospital", "--config", &bad]);
    assert!(!out.contains("kz1."), "no token printed: {out}");
    assert!(!ok(&["registry", "sites", "--config", &good]).contains("kita-hospital"), "no token stored");
    ok(&["site", "provision", "kita-hospital", "--config", &good]);
    refused(&["site", "revoke", "kita-hospital", "--config", &bad]);
    let sites = ok(&["registry", "sites", "--config", &good]);
    assert!(sites.contains("kita-hospital") && sites.contains("provisioned"), "not revoked: {sites}");
}

/// A rollback that brings back a site an apply released left it cut off and said nothing.
#[test]
fn rollback_names_the_sites_that_need_a_new_token() {
    let dir = tempfile::tempdir().unwrap();
    let c = registry_config(dir.path(), "registry.yaml", "");
    let v1 = dir.path().join("mesh.yaml");
    std::fs::write(&v1, policy_without_keys()).unwrap();
    let mut without: serde_norway::Value = serde_norway::from_str(&policy_without_keys()).unwrap();
    without["sites"].as_sequence_mut().unwrap().retain(|s| s["name"] != "higashi-clinic");
    let v2 = dir.path().join("mesh2.yaml");
    std::fs::write(&v2, serde_norway::to_string(&without).unwrap()).unwrap();
    let ok = |args: &[&str]| {
        let (code, out, err) = kizuna(args, "netadmin-sato");
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        out
    };
    ok(&["policy", "apply", v1.to_str().unwrap(), "--config", &c]);
    ok(&["site", "provision", "higashi-clinic", "--config", &c]);
    let out = ok(&["policy", "apply", v2.to_str().unwrap(), "--config", &c]);
    assert!(out.contains("site higashi-clinic left the policy"), "{out}");
    let out = ok(&["policy", "rollback", "1", "--config", &c]);
    assert!(
        out.contains("higashi-clinic")
            && out.contains("kizuna site provision higashi-clinic")
            && out.contains("enrollment.json"),
        "{out}"
    );
}

/// `--ttl-secs` overflowed (a panic) or wrapped into a token stored already expired.
#[test]
fn token_lifetimes_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let c = registry_config(dir.path(), "registry.yaml", "");
    let v1 = dir.path().join("mesh.yaml");
    std::fs::write(&v1, policy_without_keys()).unwrap();
    let (code, out, err) = kizuna(&["policy", "apply", v1.to_str().unwrap(), "--config", &c], "a");
    assert_eq!(code, 0, "{out}{err}");
    for ttl in ["18446744073709551615", "9223372036854775807", "2592001", "59", "0"] {
        let (code, out, err) =
            kizuna(&["site", "provision", "kita-hospital", "--ttl-secs", ttl, "--config", &c], "a");
        assert_eq!(code, 2, "{ttl}: {out}{err}");
        assert!(err.contains("--ttl-secs") && out.is_empty(), "{ttl}: {out}{err}");
    }
    let (_, sites, _) = kizuna(&["registry", "sites", "--config", &c], "a");
    assert!(!sites.contains("kita-hospital"), "nothing stored: {sites}");
    let (code, out, err) =
        kizuna(&["site", "provision", "kita-hospital", "--ttl-secs", "2592000", "--config", &c], "a");
    assert_eq!(code, 0, "{out}{err}");
    // The configuration's default lifetime is checked when the file is read.
    let bad = registry_config(dir.path(), "bad.yaml", "token_ttl_secs: 18446744073709551615\n");
    let (code, out, err) = kizuna(&["site", "provision", "kita-hospital", "--config", &bad], "a");
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("bad.yaml") && err.contains("token_ttl_secs"), "{err}");
    assert!(!out.contains("kz1."), "{out}");
}
