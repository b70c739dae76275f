//! `netd plan` and `netd status` only observe: they never promote a waiting key, generate a key
//! or create the key folder; they report what a pass would do instead. They run in a network
//! namespace of their own (`unshare --net`, root), which goes with the process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const VALID: &str = include_str!("fixtures/valid.yaml");

/// The fixture's keys for kita-hospital, replaced by the router's own.
const FIXTURE_KEYS: [(&str, &str); 4] = [
    ("reference", "FRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRU="),
    ("upload", "FhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhY="),
    ("conference", "FxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxc="),
    ("radiology", "GBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBg="),
];

/// Root runs these in a fresh network namespace; others skip (and fail under CI=true).
fn require_root() -> bool {
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    if !root {
        assert!(std::env::var("CI").is_err(), "CI=true: these tests need root");
        eprintln!("skipping: needs root (unshare --net)");
    }
    root
}

fn site_file(d: &Path, name: &str, policy: &str, key_dir: &Path) -> PathBuf {
    let p = d.join(name);
    std::fs::write(
        &p,
        format!(
            "policy: {policy}\nsite: kita-hospital\nkey_dir: {}\nstate_dir: {}/state\nmode: table\nwireguard: userspace\n",
            key_dir.display(),
            d.display()
        ),
    )
    .unwrap();
    p
}

/// `netd --config SITE ARGS` in a network namespace of its own.
fn netd_isolated(site: &Path, args: &[&str]) -> Output {
    Command::new("unshare")
        .arg("--net")
        .arg(env!("CARGO_BIN_EXE_netd"))
        .arg("--config")
        .arg(site)
        .args(args)
        .output()
        .expect("unshare netd runs")
}

fn netd(site: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netd")).arg("--config").arg(site).args(args).output().expect("netd runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Every file under `dir` with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        out.insert(e.path(), std::fs::read(e.path()).unwrap());
    }
    out
}

#[test]
fn plan_and_status_after_rotate_leave_the_keys_as_they_are_and_say_apply_will_switch() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keys = d.join("keys");
    let site = site_file(d, "site.yaml", "policy.yaml", &keys);
    std::fs::write(d.join("policy.yaml"), VALID).unwrap();
    let printed = String::from_utf8(netd(&site, &["keys"]).stdout).unwrap();
    let key_of = |out: &str, seg: &str| {
        out.lines().find_map(|l| l.strip_prefix(&format!("  {seg}: "))).unwrap().to_string()
    };
    let mut policy = VALID.to_string();
    for (seg, fixture) in FIXTURE_KEYS {
        policy = policy.replace(fixture, &key_of(&printed, seg));
    }
    std::fs::write(d.join("policy.yaml"), &policy).unwrap();
    let rotated = netd(&site, &["rotate", "reference"]);
    assert!(rotated.status.success(), "{}", text(&rotated));
    let (old, new) =
        (key_of(&printed, "reference"), key_of(&String::from_utf8_lossy(&rotated.stdout), "reference"));
    assert_ne!(old, new);

    // A copy of the policy listing the new key, only previewed.
    std::fs::write(d.join("policy.rot.yaml"), policy.replace(&old, &new)).unwrap();
    let site_rot = site_file(d, "site-rot.yaml", "policy.rot.yaml", &keys);
    let before = files(&keys);
    assert_eq!(before.len(), 5, "four keys and the waiting one: {:?}", before.keys());
    let plan = netd_isolated(&site_rot, &["plan"]);
    let said = text(&plan);
    assert_eq!(files(&keys), before, "netd plan changed the key files: {said}");
    assert_eq!(plan.status.code(), Some(2), "{said}");
    assert!(said.contains("note: segment reference: the policy lists the waiting key"), "{said}");
    assert!(said.contains("`netd apply`"), "{said}");
    let status = netd_isolated(&site_rot, &["status"]);
    assert!(text(&status).contains("the policy lists the waiting key"), "{}", text(&status));
    assert_eq!(files(&keys), before, "netd status changed the key files");

    // The admin drops the change: the real policy still plans with the old key in use.
    let plan = netd_isolated(&site, &["plan"]);
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan));
    assert!(!text(&plan).contains("local key's public key"), "{}", text(&plan));
    assert_eq!(files(&keys), before);
}

#[test]
fn plan_and_status_without_keys_create_nothing_and_say_run_netd_keys() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keys = d.join("kx");
    let site = site_file(d, "site.yaml", "policy.yaml", &keys);
    std::fs::write(d.join("policy.yaml"), VALID).unwrap();
    for cmd in ["status", "plan"] {
        let out = netd_isolated(&site, &[cmd]);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {said}");
        assert!(said.contains("not generated yet") && said.contains("run `netd keys`"), "{cmd}: {said}");
        assert!(!keys.exists(), "netd {cmd} created {}", keys.display());
    }
    // An empty key folder stays empty.
    std::fs::create_dir(&keys).unwrap();
    for cmd in ["status", "plan"] {
        assert_eq!(netd_isolated(&site, &[cmd]).status.code(), Some(1));
        assert!(files(&keys).is_empty(), "netd {cmd} wrote into {}", keys.display());
    }
}

/// `netd keys` before the site is in the policy points to `--segment`; `plan` for a site not in
/// the policy names the policy file; every line of a multi-problem error reads `netd: `.
#[test]
fn messages_name_the_policy_and_the_next_step() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let site = site_file(d, "site.yaml", "policy.yaml", &d.join("keys"));
    std::fs::write(&site, std::fs::read_to_string(&site).unwrap().replace("kita-hospital", "newsite"))
        .unwrap();
    std::fs::write(d.join("policy.yaml"), VALID).unwrap();
    let keys = netd(&site, &["keys"]);
    assert_eq!(keys.status.code(), Some(1));
    let said = text(&keys);
    assert!(said.contains("policy.yaml") && said.contains("netd keys --segment"), "{said}");
    assert!(netd(&site, &["keys", "--segment", "reference"]).status.success());

    let plan = netd_isolated(&site, &["plan"]);
    let said = text(&plan);
    assert_eq!(plan.status.code(), Some(1), "{said}");
    assert!(said.contains("site \"newsite\" is not in the policy") && said.contains("policy.yaml"), "{said}");

    let bad = VALID.replacen("number: 3", "number: 2", 1).replacen("port: 51822", "port: 51821", 1);
    std::fs::write(d.join("policy.yaml"), bad).unwrap();
    let said = String::from_utf8_lossy(&netd_isolated(&site, &["plan"]).stderr).into_owned();
    let lines: Vec<&str> = said.lines().filter(|l| l.contains("policy.yaml:")).collect();
    assert!(lines.len() >= 2, "{said}");
    assert!(lines.iter().all(|l| l.starts_with("netd: ")), "{said}");
}
