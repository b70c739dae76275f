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
    // serde_norway places conversion errors at the start of the enclosing mapping; netd finds
    // the value itself.
    let (text, (l, c)) = mutate("FRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRU=", "not-a-key", 0);
    assert_rejected_at(&text, l, c, "invalid WireGuard public key");
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

/// A value checked by its type (a name, a key, a CIDR, a LAN, a map key) that is not the first of
/// its mapping or sequence is reported where it is, not at the start of its container.
#[test]
fn a_bad_item_not_first_in_its_mapping_is_reported_at_itself() {
    let cases = [
        // (replaced, by, nth occurrence, reason)
        (
            "KysrKysrKysrKysrKysrKysrKysrKysrKysrKysrKys=",
            "notakey",
            0,
            "invalid WireGuard public key \"notakey\"",
        ),
        ("name: higashi-clinic", "name: Higashi", 0, "invalid site name \"Higashi\""),
        ("  conference:\n    cidr", "  conference12:\n    cidr", 0, "invalid segment name \"conference12\""),
        ("      upload: KioqK", "      Upload: KioqK", 0, "invalid segment name \"Upload\""),
        ("cidr: 10.30.0.0/16", "cidr: 10.30.0.1/16", 0, "CIDR \"10.30.0.1/16\" has host bits set"),
        ("conference: eth3 }", "conference: \"eth3 x\" }", 0, "invalid interface name \"eth3 x\""),
        ("members: [kita-hospital, minami-hospital]", "members: [kita-hospital, Minami]", 0, "\"Minami\""),
        ("joins: [conference]", "joins: [conference, Bad]", 0, "invalid segment name \"Bad\""),
        ("mesh: kizuna-north", "mesh: Kizuna", 0, "invalid mesh name \"Kizuna\""),
    ];
    for (from, to, nth, reason) in cases {
        let (text, _) = mutate(from, to, nth);
        // The bad item: the first character of what differs, inside the replacement.
        let bad = reason.split('"').nth(1).unwrap();
        let at = text.find(&format!("\"{bad}\"")).or_else(|| text.find(bad)).unwrap();
        let line = text[..at].matches('\n').count() + 1;
        let column = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
        assert_rejected_at(&text, line, column, reason);
    }
}

/// One VLAN under two spellings (`lan2.10`, `lan2.010`) passed the check and failed in the kernel.
#[test]
fn vlan_ids_are_canonical_so_one_vlan_has_one_spelling() {
    for bad in ["eth1.010", "eth1.+10", "eth1.0"] {
        let (text, (l, c)) = mutate("conference: eth1.30", &format!("conference: {bad}"), 0);
        assert_rejected_at(&text, l, c + "conference: ".len(), &format!("invalid VLAN id in {bad:?}"));
    }
}

#[test]
fn a_lan_named_like_netds_own_devices_is_rejected() {
    for bad in ["kzw-reference", "kzv-upload", "kzw-x.10"] {
        let (text, (l, c)) = mutate("conference: eth3", &format!("conference: {bad}"), 0);
        assert_rejected_at(&text, l, c + "conference: ".len(), "named like netd's own devices");
    }
}

#[test]
fn endpoints_must_be_distinct_reachable_addresses() {
    let (text, (l, c)) = mutate("endpoint: 192.0.2.3", "endpoint: 192.0.2.2", 0);
    assert_rejected_at(
        &text,
        l,
        c + "endpoint: ".len(),
        "endpoint 192.0.2.2 is also site \"kita-hospital\"'s",
    );
    for bad in ["127.0.0.1", "::1", "224.0.0.1"] {
        let (text, (l, c)) = mutate("endpoint: 192.0.2.3", &format!("endpoint: {bad}"), 0);
        assert_rejected_at(&text, l, c + "endpoint: ".len(), "must be a concrete unicast address");
    }
}

#[test]
fn centre_services_need_a_port_and_are_listed_once() {
    let (text, (l, c)) = mutate("port: 8443 }", "port: 0 }", 0);
    assert_rejected_at(&text, l, c + "port: ".len(), "service \"auth\": port 0 is not a usable port");
    let (text, (l, c)) = mutate("name: auth, proto: tcp, port: 8443", "name: auth, proto: tcp, port: 443", 0);
    assert_rejected_at(&text, l, c + "name: auth, proto: tcp, port: ".len(), "tcp port 443 is listed twice");
    let (text, (l, c)) = mutate("name: auth", "name: viewer", 0);
    assert_rejected_at(&text, l, c + "name: ".len(), "service \"viewer\" is listed twice");
}

/// A site_prefix equal to the CIDR's leaves no subnet for a site: refused at `site_prefix`, not
/// at every site with a nonsensical range.
#[test]
fn site_prefix_must_be_longer_than_the_cidr_prefix() {
    let (text, (l, c)) = mutate("    port: 51830\n", "    port: 51830\n    site_prefix: 16\n", 0);
    let all = issues(&text);
    assert!(
        all.iter().any(|i| i.line == l + 1
            && i.column == c + "    site_prefix: ".len()
            && i.reason.contains("site_prefix /16 must be longer than the CIDR's /16")),
        "{all:?}"
    );
    assert!(!all.iter().any(|i| i.reason.contains("does not fit")), "{all:?}");
}

#[test]
fn a_closed_group_named_like_a_segment_is_named_plainly() {
    let (text, _) = mutate("  radiology:\n", "  conference:\n", 0);
    let all = issues(&text);
    assert!(
        all.iter().any(|i| i.field == "closed_groups.conference"
            && i.reason == "closed group \"conference\" has the same name as a segment"),
        "{all:?}"
    );
}

/// A Latin-1 byte (even in a comment) is an invalid policy (exit 1) at its line and column, not
/// an I/O error (exit 2) without a position.
#[test]
fn a_policy_that_is_not_utf8_is_invalid_at_the_first_bad_byte() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nonutf8.yaml");
    let mut bytes = VALID.replacen("keepalive_secs: 25", "keepalive_secs: 25 # caf\u{e9}", 1).into_bytes();
    let at = bytes.windows(2).position(|w| w == "\u{e9}".as_bytes()).unwrap();
    bytes.splice(at..at + 2, [0xe9]);
    std::fs::write(&p, bytes).unwrap();
    let out = netd().arg("check").arg(&p).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let col = "keepalive_secs: 25 # caf".len() + 1;
    assert!(err.contains(&format!("nonutf8.yaml:3:{col}: byte 0xe9 is not UTF-8")), "{err}");
}
