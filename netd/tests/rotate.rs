//! `netd rotate` on a site that follows a policy file (not enrolled): the new key waits beside the
//! one in use, only its public key is printed, and a pass switches to it only once the policy
//! lists it. (Rotation with a registry: `services/registry/tests/rotation.rs`.)

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use netd::plan::Mode;
use netd::policy::SegmentName;

const VALID: &str = include_str!("fixtures/valid.yaml");

fn netd(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netd"))
        .arg("--config")
        .arg(dir.join("site.yaml"))
        .args(args)
        .output()
        .expect("netd runs")
}

/// `site: ..` / `keys:` YAML as `netd keys` and `netd rotate` print it.
fn printed_keys(out: &Output) -> Vec<(String, String)> {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("  ")?.split_once(": "))
        .map(|(s, k)| (s.to_string(), k.to_string()))
        .collect()
}

/// The public keys the next pass sets on the devices.
fn pass_keys(dir: &Path) -> Vec<(String, String)> {
    let cfg = netd::site::SiteConfig::load(&dir.join("site.yaml")).unwrap();
    let policy = netd::policy::load(&cfg.policy).unwrap();
    let desired = netd::plan::plan(&policy, &cfg.site, Mode::Table, cfg.api_listen).unwrap();
    netd::reconcile::local_keys(&cfg.key_dir, &desired)
        .unwrap()
        .into_iter()
        .map(|(s, k)| (s.to_string(), k.public().to_string()))
        .collect()
}

#[test]
fn rotate_waits_for_the_policy_to_list_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("site.yaml"),
        format!(
            "policy: policy.yaml\nsite: kita-hospital\nkey_dir: {0}/keys\nstate_dir: {0}/state\n",
            d.display()
        ),
    )
    .unwrap();
    std::fs::write(d.join("policy.yaml"), VALID).unwrap();
    // The operator puts the router's keys into the policy.
    let mut policy = VALID.to_string();
    let fixture_keys = [
        ("reference", "FRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRU="),
        ("upload", "FhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhY="),
        ("conference", "FxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxc="),
        ("radiology", "GBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBg="),
    ];
    let first = printed_keys(&netd(d, &["keys"]));
    for (seg, fixture) in fixture_keys {
        let (_, key) = first.iter().find(|(s, _)| s == seg).unwrap();
        policy = policy.replace(fixture, key);
    }
    std::fs::write(d.join("policy.yaml"), &policy).unwrap();
    let before = pass_keys(d);

    let out = netd(d, &["rotate", "reference"]);
    let rotated = printed_keys(&out);
    assert_eq!(rotated.len(), 1);
    let (seg, new) = &rotated[0];
    assert_eq!(seg, "reference");
    let old = &first.iter().find(|(s, _)| s == "reference").unwrap().1;
    assert_ne!(new, old);
    assert!(String::from_utf8_lossy(&out.stderr).contains("put these keys into the policy"));
    let waiting = d.join("keys/reference.key.next");
    assert_eq!(std::fs::metadata(&waiting).unwrap().permissions().mode() & 0o777, 0o600);
    let private = std::fs::read_to_string(&waiting).unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains(private.trim()), "a private key was printed");
    // Run again before the policy changed: the same waiting key, not a third one.
    assert_eq!(&printed_keys(&netd(d, &["rotate", "reference"]))[0].1, new);
    // The policy still lists the old key: every pass keeps it.
    assert_eq!(pass_keys(d), before);

    // The policy lists the new key: the pass switches, the waiting file is gone, others unchanged.
    std::fs::write(d.join("policy.yaml"), policy.replace(old.as_str(), new)).unwrap();
    let after = pass_keys(d);
    for ((s, a), (_, b)) in after.iter().zip(&before) {
        if s == "reference" {
            assert_eq!(a, new);
        } else {
            assert_eq!(a, b, "{s} keeps its key");
        }
    }
    assert!(!waiting.exists());
    let seg: SegmentName = "reference".parse().unwrap();
    assert_eq!(netd::keys::load_or_generate(&d.join("keys"), &seg).unwrap().public().to_string(), *new);

    // --all rotates every segment of the site; an unknown segment is refused by name.
    let all = printed_keys(&netd(d, &["rotate", "--all"]));
    assert_eq!(
        all.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(),
        ["conference", "reference", "upload", "radiology"]
    );
    let bad = netd(d, &["rotate", "nowhere"]);
    assert_eq!(bad.status.code(), Some(1));
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("no key in segment nowhere") && said.contains("reference"), "{said}");
    assert_eq!(netd(d, &["rotate"]).status.code(), Some(2), "a segment or --all is required");
}
