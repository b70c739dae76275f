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
