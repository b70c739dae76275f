//! `netd check`: each kind of bad policy is rejected with file, line, column and reason.

use std::path::Path;
use std::process::Command;

const VALID: &str = include_str!("fixtures/valid.yaml");

fn line_col_of(text: &str, needle: &str, nth: usize) -> (usize, usize) {
    let idx = text.match_indices(needle).nth(nth).unwrap_or_else(|| panic!("{needle} not in policy")).0;
    let line = text[..idx].matches('\n').count() + 1;
    let col = idx - text[..idx].rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// Replace the `nth` occurrence of `from` with `to`, returning the text and the position of
/// the replacement.
fn mutate(from: &str, to: &str, nth: usize) -> (String, (usize, usize)) {
    let pos = line_col_of(VALID, from, nth);
    let idx = VALID.match_indices(from).nth(nth).unwrap().0;
    let text = format!("{}{}{}", &VALID[..idx], to, &VALID[idx + from.len()..]);
    (text, pos)
}

fn issues(text: &str) -> Vec<netd::policy::PolicyIssue> {
    netd::policy::parse(text, Path::new("policy.yaml")).expect_err("policy must be rejected")
}

fn assert_rejected_at(text: &str, line: usize, column: usize, reason_part: &str) {
    let all = issues(text);
    assert!(
        all.iter().any(|i| i.line == line && i.column == column && i.reason.contains(reason_part)),
        "expected {line}:{column} {reason_part:?}, got:\n{}",
        all.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn fixture_is_valid() {
    netd::policy::parse(VALID, Path::new("valid.yaml")).expect("fixture valid");
}

#[test]
fn overlapping_cidrs_are_rejected_at_the_second_cidr() {
    let (text, (l, c)) = mutate("10.30.0.0/16", "10.20.128.0/17", 0);
    assert_rejected_at(
        &text,
        l,
        c,
        "CIDRs overlap: 10.20.0.0/16 of \"upload\" and 10.20.128.0/17 of \"conference\"",
    );
}

#[test]
fn duplicate_site_number_is_rejected() {
    let (text, (l, c)) = mutate("number: 3", "number: 2", 0);
    assert_rejected_at(&text, l, c + "number: ".len(), "duplicate site number 2");
}

#[test]
fn duplicate_port_is_rejected() {
    let (text, (l, c)) = mutate("port: 51822", "port: 51821", 0);
    assert_rejected_at(&text, l, c + "port: ".len(), "duplicate port 51821");
}

#[test]
fn ports_of_the_kernels_reserved_routing_tables_are_rejected() {
    // A segment's port is also its routing table id: 252..=255 are compat, default, main, local.
    for port in [252u16, 253, 254, 255] {
        let (text, (l, c)) = mutate("port: 51822", &format!("port: {port}"), 0);
        assert_rejected_at(
            &text,
            l,
            c + "port: ".len(),
            &format!("port {port} is also the segment's routing table"),
        );
    }
    let (text, _) = mutate("port: 51822", "port: 251", 0);
    netd::policy::parse(&text, Path::new("policy.yaml")).expect("port 251 is a usable table");
}

#[test]
fn duplicate_map_keys_are_rejected_at_the_second_key() {
    // serde keeps the last of two equal keys; the first definition would be lost silently.
    let (text, (l, c)) = mutate("  conference:\n    cidr", "  upload:\n    cidr", 0);
    assert_rejected_at(&text, l, c + 2, "duplicate key \"upload\" (first at line 13)");
    let (text, (l, c)) = mutate("upload: eth1.20", "reference: eth1.20", 0);
    assert_rejected_at(&text, l, c, "duplicate key \"reference\"");
    let (text, (l, c)) = mutate("      upload: DAwM", "      reference: DAwM", 0);
    assert_rejected_at(&text, l, c + 6, "duplicate key \"reference\"");
    let (text, (l, c)) = mutate(
        "closed_groups:\n",
        "closed_groups:\n  radiology:\n    cidr: 10.50.0.0/16\n    port: 51831\n    security: low\n    members: [centre, kita-hospital]\n",
        0,
    );
    assert_rejected_at(&text, l + 6, c + 2, "duplicate key \"radiology\"");
}

#[test]
fn duplicate_public_key_is_rejected() {
    let k21 = "FRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRU=";
    let k22 = "FhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhY=";
    let (text, (l, c)) = mutate(k22, k21, 0);
    assert_rejected_at(&text, l, c, "duplicate public key");
}

#[test]
fn group_member_that_is_not_a_site_is_rejected() {
    let (text, (l, c)) = mutate("minami-hospital]", "nishi-hospital]", 0);
    assert_rejected_at(&text, l, c, "\"nishi-hospital\" is not a site");
}

#[test]
fn site_without_a_mandatory_segment_is_rejected() {
    // The clinic loses its upload LAN.
    let (text, (l, c)) = mutate("upload: eth2, ", "", 0);
    let _ = c;
    assert_rejected_at(
        &text,
        l,
        line_col_of(&text, "{ reference: eth1", 0).1,
        "lacks a LAN interface for mandatory segment \"upload\"",
    );
}

#[test]
fn missing_mandatory_segment_definition_is_rejected() {
    let (text, (l, c)) = mutate(
        "required: true\n    centre_services:\n      - { name: store",
        "required: false\n    centre_services:\n      - { name: store",
        0,
    );
    assert_rejected_at(&text, l, c + "required: ".len(), "must have required: true");
}

#[test]
fn type_errors_carry_serde_positions() {
    let (text, (l, c)) = mutate("port: 51830", "port: lots", 0);
    assert_rejected_at(&text, l, c + "port: ".len(), "invalid type");
}

#[test]
fn bad_key_text_is_rejected_with_its_position() {
    // serde_norway places conversion errors at the start of the enclosing entry.
    let (text, (l, _)) = mutate("FRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRU=", "not-a-key", 0);
    assert_rejected_at(&text, l, 7, "invalid WireGuard public key");
}

fn netd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_netd"))
}

#[test]
fn check_exit_codes_are_0_valid_1_invalid_2_io() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, VALID).unwrap();
    assert_eq!(netd().arg("check").arg(&good).status().unwrap().code(), Some(0));
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, mutate("number: 3", "number: 2", 0).0).unwrap();
    let out = netd().arg("check").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:", bad.display())) && stderr.contains("duplicate site number"),
        "{stderr}"
    );
    assert_eq!(netd().arg("check").arg(dir.path().join("missing.yaml")).status().unwrap().code(), Some(2));
}

#[test]
fn schema_is_json_schema_of_the_policy() {
    let out = netd().arg("schema").output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["title"], "Policy");
    for field in ["mesh", "segments", "sites"] {
        assert!(v["required"].as_array().unwrap().iter().any(|f| f == field), "{field} required");
    }
}

#[test]
fn hub_segments_need_a_centre_and_may_have_a_standby_one() {
    // No centre: rejected at `sites`.
    let (text, _) = mutate("kind: centre", "kind: hospital", 0);
    let all = issues(&text);
    assert!(
        all.iter().any(|i| i.reason.contains("need a site of kind centre")),
        "{}",
        all.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("\n")
    );
    // A second centre (a standby centre beside the primary) is a valid policy.
    let (text, _) = mutate("kind: hospital", "kind: centre", 0);
    netd::policy::parse(&text, Path::new("policy.yaml")).expect("a policy with a standby centre");
}
