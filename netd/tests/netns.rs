//! Host tests in network namespaces (table mode, userspace WireGuard through boringtun-cli):
//! a real mesh of site routers, each configured by `netd apply`, checked with real packets.
//! Needs root; skipped outside CI when not root, failing under CI=true.

mod mesh;

use mesh::{Mesh, gateway_ip, host_ip};

#[test]
fn mesh_applies_idempotently_isolates_segments_and_repairs_drift() {
    let Some(m) = Mesh::with_policy("a", 3) else {
        return;
    };
    for s in &m.sites {
        // A fresh namespace starts with forwarding off; netd must switch it on.
        let fwd = || mesh::ok(&mut mesh::in_ns(&s.router, &["sysctl", "-n", "net.ipv4.ip_forward"]));
        assert_eq!(fwd().trim(), "0", "{}: forwarding on before netd ran", s.name);
        let (code, out) = m.apply(s);
        assert_eq!(code, 0, "{}: {out}", s.name);
        assert!(Mesh::applied_changes(&out) > 0, "{out}");
        assert_eq!(fwd().trim(), "1", "{}: netd left forwarding off", s.name);
    }
    // Idempotence: a second apply makes zero kernel changes and plan has nothing to do.
    for s in &m.sites {
        let (code, out) = m.apply(s);
        assert_eq!(code, 0, "{out}");
        assert_eq!(Mesh::applied_changes(&out), 0, "second apply on {}: {out}", s.name);
        let plan = mesh::run(&mut m.netd(s, &["plan"]));
        assert_eq!(plan.status.code(), Some(0), "{}", String::from_utf8_lossy(&plan.stdout));
        assert!(String::from_utf8_lossy(&plan.stdout).contains("nothing to do"));
    }
    let (c, s2, s3) = (&m.sites[0], &m.sites[1], &m.sites[2]);

    // Conference: every pair of sites reaches the other's LAN directly.
    assert!(m.pings(s2.host("conference"), &host_ip("conference", 3), 10), "site-2 -> site-3 conference");
    assert!(m.pings(s3.host("conference"), &host_ip("conference", 1), 10), "site-3 -> centre conference");
    assert!(m.pings(c.host("conference"), &host_ip("conference", 2), 10), "centre -> site-2 conference");

    // Closed group: members reach each other; the centre (not a member) has no way in.
    assert!(m.pings(s2.host("radiology"), &host_ip("radiology", 3), 10), "radiology members");
    assert!(!m.pings(c.host("conference"), &host_ip("radiology", 2), 2), "non-member reached radiology");

    // Reference: LANs reach only the centre's viewer port.
    let (centre_ref, centre_up) = (c.host("reference").to_string(), c.host("upload").to_string());
    m.listen(&centre_ref, 443);
    m.listen(&centre_ref, 22);
    m.listen(&centre_up, 8080);
    m.listen(&centre_up, 443);
    assert!(m.connects(s2.host("reference"), &host_ip("reference", 1), 443, 5), "reference -> centre viewer");
    assert!(
        !m.connects(s2.host("reference"), &host_ip("reference", 1), 22, 1),
        "reference reached centre:22"
    );
    assert!(!m.pings(s2.host("reference"), &host_ip("reference", 3), 2), "reference site-2 reached site-3");
    assert!(m.connects(s3.host("upload"), &host_ip("upload", 1), 8080, 5), "upload -> centre store");
    assert!(!m.connects(s3.host("upload"), &host_ip("upload", 1), 443, 1), "upload reached centre:443");

    // Nothing crosses segments, on the same router or across the mesh.
    m.listen(s2.host("reference"), 443);
    assert!(
        !m.pings(s2.host("conference"), &host_ip("reference", 2), 2),
        "conference -> own site's reference LAN"
    );
    assert!(!m.connects(s2.host("conference"), &host_ip("reference", 2), 443, 1));
    assert!(!m.pings(s2.host("conference"), &host_ip("reference", 3), 2), "conference -> site-3 reference");
    assert!(
        !m.connects(s3.host("conference"), &host_ip("reference", 1), 443, 1),
        "conference -> centre viewer"
    );
    assert!(!m.pings(s2.host("upload"), &host_ip("radiology", 3), 2), "upload -> radiology");

    // Drift: a peer deleted by hand shows in plan and is restored by the next apply.
    let key3 = std::fs::read_to_string(m.policy_path()).unwrap();
    let conf3 = key3
        .split("name: site-3")
        .nth(1)
        .and_then(|t| t.split("conference: ").nth(1))
        .and_then(|t| t.split_whitespace().next())
        .unwrap()
        .to_string();
    mesh::ok(&mut m.router_cmd(
        s2,
        std::path::Path::new("wg"),
        &["set", "kzw-conference", "peer", &conf3, "remove"],
    ));
    assert!(!m.pings(s2.host("conference"), &host_ip("conference", 3), 1), "peer removal had no effect");
    let plan = mesh::run(&mut m.netd(s2, &["plan"]));
    let text = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(plan.status.code(), Some(2), "{text}");
    assert!(text.contains(&conf3) && text.contains("1 changes pending"), "{text}");
    let (code, out) = m.apply(s2);
    assert_eq!((code, Mesh::applied_changes(&out)), (0, 1), "{out}");
    assert!(m.pings(s2.host("conference"), &host_ip("conference", 3), 10), "drift repaired");

    // Status names the mode and shows live peers.
    let st = mesh::ok(&mut m.netd(s2, &["status", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&st).unwrap();
    assert_eq!(v["mode"], "table");
    assert_eq!(v["segments"].as_array().unwrap().len(), 4);
    assert!(v["drift"].as_array().unwrap().is_empty());
    let conf = v["segments"].as_array().unwrap().iter().find(|s| s["name"] == "conference").unwrap();
    assert!(
        conf["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["site"] == "site-3" && p["rx_bytes"].as_u64() > Some(0))
    );
}

#[test]
fn bad_policy_is_rejected_and_running_state_stays() {
    let Some(m) = Mesh::with_policy("b", 2) else {
        return;
    };
    for s in &m.sites {
        assert_eq!(m.apply(s).0, 0);
    }
    let before = m.router_state(&m.sites[1]);
    let good = std::fs::read_to_string(m.policy_path()).unwrap();
    // Two sites with the same number.
    std::fs::write(m.policy_path(), good.replacen("number: 2", "number: 1", 1)).unwrap();
    let (code, out) = m.apply(&m.sites[1]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("policy.yaml:") && out.contains("duplicate site number 1"), "{out}");
    assert_eq!(m.router_state(&m.sites[1]), before, "kernel state changed after a rejected policy");
    assert!(m.pings(m.sites[1].host("conference"), &host_ip("conference", 1), 10));

    // `netd status` still shows what runs (the last good record as the kernel holds it), with the
    // policy's error, and exits 1: for an invalid policy, a missing one and a key mismatch.
    let site = &m.sites[1];
    let other_key = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    let own_conf = good
        .split(&format!("name: {}", site.name))
        .nth(1)
        .and_then(|t| t.split("conference: ").nth(1))
        .and_then(|t| t.split_whitespace().next())
        .unwrap()
        .to_string();
    let cases = [
        ("invalid", Some(good.replacen("number: 2", "number: 1", 1)), "duplicate site number 1"),
        ("missing", None, "policy.yaml"),
        ("key mismatch", Some(good.replace(&own_conf, other_key)), "local key's public key"),
    ];
    for (case, policy, error) in cases {
        match policy {
            Some(p) => std::fs::write(m.policy_path(), p).unwrap(),
            None => std::fs::remove_file(m.policy_path()).unwrap(),
        }
        let out = mesh::run(&mut m.netd(site, &["status", "--json"]));
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(1), "{case}: {stdout}{stderr}");
        assert!(stderr.contains(error), "{case}: {stderr}");
        let v: serde_json::Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{case}: {e}: {stdout}"));
        assert_eq!(v["mode"], "table", "{case}");
        assert!(v["policy_error"].as_str().is_some_and(|e| e.contains(error)), "{case}: {stdout}");
        let segs = v["segments"].as_array().unwrap();
        assert_eq!(segs.len(), 3, "{case}: {stdout}");
        let conf = segs.iter().find(|s| s["name"] == "conference").unwrap();
        assert!(
            conf["peers"].as_array().unwrap().iter().any(|p| p["site"] == "centre"
                && p["rx_bytes"].as_u64() > Some(0)
                && p["last_handshake_unix"].as_u64().is_some()),
            "{case}: {stdout}"
        );
        let out = mesh::run(&mut m.netd(site, &["status"]));
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{case}: {text}");
        assert!(text.contains("mode: table") && text.contains("segment conference"), "{case}: {text}");
        assert!(
            text.contains("policy: NOT APPLIED HERE") && text.contains("drift: unknown"),
            "{case}: {text}"
        );
    }
    std::fs::write(m.policy_path(), &good).unwrap();
    assert_eq!(mesh::run(&mut m.netd(site, &["status"])).status.code(), Some(0));
}

#[test]
fn injected_failure_rolls_back_to_the_last_good_state() {
    if !mesh::require_root() {
        return;
    }
    let m = Mesh::new("c", 2);
    // A first apply that fails part-way leaves nothing behind.
    m.write_policy("");
    let site = &m.sites[1];
    let empty = m.router_state(site);
    let (code, out) = m.apply_env(site, &[("NETD_INJECT_FAIL_AFTER", "5")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("injected failure after 5") && out.contains("rolled back"), "{out}");
    assert_eq!(m.router_state(site), empty, "first apply not rolled back to nothing");

    // Apply for real; then a changed policy fails part-way and comes back to the last good state.
    for s in &m.sites {
        assert_eq!(m.apply(s).0, 0);
    }
    let good = m.router_state(site);
    let policy = std::fs::read_to_string(m.policy_path()).unwrap();
    let changed = policy.replace("cidr: 10.30.0.0/16, port: 51822", "cidr: 10.31.0.0/16, port: 51823");
    std::fs::write(m.policy_path(), changed).unwrap();
    let (code, out) = m.apply_env(site, &[("NETD_INJECT_FAIL_AFTER", "3")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("rolled back"), "{out}");
    assert_eq!(m.router_state(site), good, "not rolled back to the last good state");
    // And the last good state still carries traffic.
    assert!(m.pings(site.host("conference"), &host_ip("conference", 1), 10));
    // Without the injected failure the same change applies.
    let (code, out) = m.apply(site);
    assert_eq!(code, 0, "{out}");
}

/// GET `path` from the router's status API (127.0.0.1:9190 inside its namespace).
fn http_get(m: &Mesh, site: &mesh::Site, path: &str) -> Option<String> {
    let out = mesh::run(
        mesh::in_ns(
            &site.router,
            &["sh", "-c", &format!("printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' | nc -N -w 2 127.0.0.1 9190")],
        )
        .stderr(std::process::Stdio::null()),
    );
    let _ = m;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn daemon_serves_status_repairs_drift_and_follows_policy_changes() {
    let Some(m) = Mesh::with_policy("d", 2) else {
        return;
    };
    let (code, out) = m.apply(&m.sites[0]);
    assert_eq!(code, 0, "{out}");
    let site = &m.sites[1];
    let mut daemon = m.spawn_daemon(site);
    let status = |m: &Mesh| -> Option<serde_json::Value> {
        http_get(m, site, "/status").and_then(|b| serde_json::from_str(&b).ok())
    };
    wait_for("first pass", 60, || status(&m).is_some_and(|v| v["last_pass_ok"] == true));
    assert!(m.pings(site.host("conference"), &host_ip("conference", 1), 10));
    // The API may be busy with a pass under load; a miss is retried, never taken as an answer.
    let mut metrics = String::new();
    wait_for("/metrics", 30, || {
        metrics = http_get(&m, site, "/metrics").unwrap_or_default();
        !metrics.is_empty()
    });
    for needle in [
        "netd_passes_total",
        "netd_mode{mode=\"table\"} 1",
        "netd_peers{segment=\"conference\"} 1",
        "netd_apply_seconds",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from /metrics:\n{metrics}");
    }

    // Drift repaired on the timer (reconcile_interval_secs: 2).
    let policy = std::fs::read_to_string(m.policy_path()).unwrap();
    let centre_conf = policy
        .split("name: centre")
        .nth(1)
        .and_then(|t| t.split("conference: ").nth(1))
        .and_then(|t| t.split_whitespace().next())
        .unwrap()
        .to_string();
    mesh::ok(&mut m.router_cmd(
        site,
        std::path::Path::new("wg"),
        &["set", "kzw-conference", "peer", &centre_conf, "remove"],
    ));
    wait_for("drift repair", 30, || {
        let dump = mesh::run(&mut m.router_cmd(
            site,
            std::path::Path::new("wg"),
            &["show", "kzw-conference", "peers"],
        ));
        String::from_utf8_lossy(&dump.stdout).contains(&centre_conf)
    });

    // Firewall drift: the forward chain emptied by hand is refilled on the timer. (netd lists
    // the table again only when the ruleset generation moved; this is the case it must catch.)
    let forward = || {
        let out =
            mesh::run(&mut mesh::in_ns(&site.router, &["nft", "list", "chain", "inet", "kizuna", "forward"]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let rules = |listing: &str| {
        listing
            .lines()
            .filter(|l| !l.contains("policy") && (l.contains("accept") || l.contains("drop")))
            .count()
    };
    let before = forward();
    assert!(rules(&before) > 1, "{before}");
    mesh::ok(&mut mesh::in_ns(&site.router, &["nft", "flush", "chain", "inet", "kizuna", "forward"]));
    assert_eq!(rules(&forward()), 0, "flush had no effect");
    wait_for("firewall repair", 30, || rules(&forward()) == rules(&before));

    // A policy change is picked up through notify; a bad one is rejected and counted.
    // (Changing an existing peer is not exercised here: boringtun 0.7 wedges on such
    // updates; the kernel backend in the QEMU lab covers it.)
    let more = policy.replace(
        "{ name: viewer, proto: tcp, port: 443 }",
        "{ name: viewer, proto: tcp, port: 443 }, { name: auth, proto: tcp, port: 8443 }",
    );
    assert_ne!(more, policy);
    std::fs::write(m.policy_path(), &more).unwrap();
    wait_for("new centre service in table kizuna", 30, || {
        let nft =
            mesh::run(&mut mesh::in_ns(&site.router, &["nft", "list", "chain", "inet", "kizuna", "forward"]));
        String::from_utf8_lossy(&nft.stdout).contains("tcp dport { 443, 8443 }")
    });
    // A new site is a peer change on a running daemon: the pass sets the peer (a delta pass
    // sets it without reading the device first) and records it as one journal line beside the
    // last good state; another process reads base and journal back and finds nothing to do.
    use base64::Engine as _;
    let key = |n: u8| base64::engine::general_purpose::STANDARD.encode([n; 32]);
    let with_site = with_extra_site(&more, key);
    std::fs::write(m.policy_path(), &with_site).unwrap();
    wait_for("the new site's peer", 30, || {
        let dump = mesh::run(&mut m.router_cmd(
            site,
            std::path::Path::new("wg"),
            &["show", "kzw-conference", "peers"],
        ));
        String::from_utf8_lossy(&dump.stdout).contains(&key(93))
    });
    let state = site.config().parent().unwrap().join("state");
    assert!(state.join("last-good.journal").exists(), "a peer change is appended to the journal");
    let plan = mesh::run(&mut m.netd(site, &["plan"]));
    assert_eq!(
        plan.status.code(),
        Some(0),
        "nothing to do after the peer change: {}{}",
        String::from_utf8_lossy(&plan.stdout),
        String::from_utf8_lossy(&plan.stderr)
    );

    std::fs::write(m.policy_path(), policy.replacen("number: 2", "number: 1", 1)).unwrap();
    wait_for("rejection", 30, || status(&m).is_some_and(|v| v["policy_rejected_total"].as_u64() > Some(0)));
    assert!(m.pings(site.host("conference"), &host_ip("conference", 1), 10), "running state kept");

    let _ = mesh::run(std::process::Command::new("kill").arg(daemon.id().to_string()));
    let _ = daemon.wait();
}

/// A new site's policy text: `policy` plus one clinic with made-up keys, in the conference segment.
fn with_extra_site(policy: &str, key: impl Fn(u8) -> String) -> String {
    format!(
        "{policy}  - number: 9\n    name: extra\n    kind: clinic\n    endpoint: 192.0.2.9\n    keys: {{ reference: {}, upload: {}, conference: {} }}\n    lan: {{ reference: lan0, upload: lan1, conference: lan2 }}\n    joins: [conference]\n",
        key(91),
        key(92),
        key(93)
    )
}

#[test]
fn admitted_underlay_services_are_reachable_from_the_underlay_only() {
    if !mesh::require_root() {
        return;
    }
    let m = Mesh::new("u", 2);
    let (c, s2) = (&m.sites[0], &m.sites[1]);
    // The centre's registry port on the router itself, admitted from the underlay.
    let site_file = c.config();
    let text = std::fs::read_to_string(&site_file).unwrap();
    std::fs::write(&site_file, format!("{text}admit_underlay: [{{ proto: tcp, port: 9443 }}]\n")).unwrap();
    m.write_policy("");
    for s in &m.sites {
        let (code, out) = m.apply(s);
        assert_eq!(code, 0, "{}: {out}", s.name);
    }
    m.listen(&c.router, 9443);
    m.listen(&c.router, 9444);
    assert!(m.connects(&s2.router, "192.0.2.1", 9443, 5), "underlay -> centre router:9443 (admitted)");
    assert!(!m.connects(&s2.router, "192.0.2.1", 9444, 1), "underlay reached centre router:9444");
    // The rule itself leaves out every segment device (routing alone would also keep segment
    // traffic from the router's own sockets; the rule does not rely on it).
    let input = mesh::ok(&mut mesh::in_ns(&c.router, &["nft", "list", "chain", "inet", "kizuna", "input"]));
    let rule =
        input.lines().find(|l| l.contains("dport 9443")).unwrap_or_else(|| panic!("no 9443 rule: {input}"));
    assert!(
        rule.contains("iifname != {") && rule.contains("kzw-conference") && rule.contains("lan"),
        "{rule}"
    );
    // Through a segment, the same port on the centre router stays closed.
    assert!(m.pings(s2.host("conference"), &host_ip("conference", 1), 10), "the mesh is up");
    assert!(
        !m.connects(s2.host("conference"), &gateway_ip("conference", 1), 9443, 1),
        "a segment reached the centre router's admitted port"
    );
    // Without the key, the port is closed to the underlay too.
    std::fs::write(&site_file, &text).unwrap();
    let (code, out) = m.apply(c);
    assert_eq!(code, 0, "{out}");
    assert!(
        !m.connects(&s2.router, "192.0.2.1", 9443, 1),
        "port still open after admit_underlay was removed"
    );
}

/// A management API on a non-loopback address (`0.0.0.0`, and the router's underlay address) is
/// admitted from the underlay only: a segment host sending to any of the router's addresses is
/// delivered locally too, and must not reach it (its `/status` lists every site's keys).
#[test]
fn a_non_loopback_management_api_is_reachable_from_the_underlay_only() {
    if !mesh::require_root() {
        return;
    }
    let m = Mesh::new("p", 2);
    let (c, s2) = (&m.sites[0], &m.sites[1]);
    let site_file = c.config();
    let text = std::fs::read_to_string(&site_file).unwrap();
    m.write_policy("");
    for s in &m.sites {
        let (code, out) = m.apply(s);
        assert_eq!(code, 0, "{}: {out}", s.name);
    }
    // A listener stands in for the API (the input chain admits the port, whoever serves it).
    m.listen(&c.router, 9190);
    assert!(m.pings(s2.host("conference"), &host_ip("conference", 1), 10), "the mesh is up");
    for api in ["0.0.0.0:9190", "192.0.2.1:9190"] {
        std::fs::write(&site_file, text.replace("api_listen: 127.0.0.1:9190", &format!("api_listen: {api}")))
            .unwrap();
        let (code, out) = m.apply(c);
        assert_eq!(code, 0, "{api}: {out}");
        assert!(m.connects(&s2.router, "192.0.2.1", 9190, 5), "{api}: underlay -> centre api");
        let (lan, tunnel) = (c.host("conference"), s2.host("conference"));
        for (from, to) in [
            (lan, gateway_ip("conference", 1)),
            (lan, "192.0.2.1".into()),
            (tunnel, gateway_ip("conference", 1)),
        ] {
            assert!(!m.connects(from, &to, 9190, 1), "{api}: segment host {from} reached the api at {to}");
        }
    }
}

/// `netd run` hosts an agent (site file `agent:`): a script standing in for kizuna-agent that
/// connects to the centre's store port through the device netd gives it (`--bind-interface`,
/// here table mode's `kzw-upload`), as the agent's upload sockets do (SO_BINDTODEVICE). netd
/// reports it running in `netd status --json` and `/metrics`, and stops it on SIGTERM.
#[test]
fn netd_run_hosts_the_agent_in_the_upload_segment_and_reports_it() {
    let Some(m) = Mesh::with_policy("g", 2) else {
        return;
    };
    let (c, site) = (&m.sites[0], &m.sites[1]);
    let (code, out) = m.apply(c);
    assert_eq!(code, 0, "{out}");
    m.listen(c.host("upload"), 8080);

    // The stand-in runs as `nobody`: its folder must be open to it.
    let adir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(adir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let (log, probe) = (adir.path().join("runs.log"), adir.path().join("connected"));
    let script = adir.path().join("fake-agent");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$$ $(id -u) $*\" >> {log}\n\
             until [ \"$(curl -s -o /dev/null -m 2 --interface \"$5\" -w '%{{time_connect}}' http://{store}:8080/)\" != 0.000000 ]; do sleep 0.5; done\n\
             echo \"$5\" > {probe}\nexec sleep 1000\n",
            log = log.display(),
            probe = probe.display(),
            store = host_ip("upload", 1),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let agent_config = adir.path().join("agent.yaml");
    let site_file = site.config();
    let text = std::fs::read_to_string(&site_file).unwrap();
    std::fs::write(
        &site_file,
        format!(
            "{text}agent:\n  command: {}\n  config: {}\n  segment: upload\n  user: nobody\n  stop_timeout_secs: 5\n",
            script.display(),
            agent_config.display()
        ),
    )
    .unwrap();

    let mut daemon = m.spawn_daemon(site);
    let status = || -> Option<serde_json::Value> {
        let out = mesh::run(&mut m.netd(site, &["status", "--json"]));
        serde_json::from_slice(&out.stdout).ok()
    };
    let mut st = serde_json::Value::Null;
    // Until the operator writes the agent's config, it waits, after a successful pass.
    wait_for("the agent waiting for its config", 60, || {
        st = status().unwrap_or_default();
        st["agent"]["state"] == "waiting"
            && st["agent"]["reason"].as_str().is_some_and(|r| r.contains("agent.yaml missing"))
    });
    assert!(!log.exists(), "started without its config");
    std::fs::write(&agent_config, "# read by the agent only\n").unwrap();
    wait_for("the agent running", 60, || {
        st = status().unwrap_or_default();
        st["agent"]["state"] == "running"
    });
    assert_eq!(st["agent"]["device"], "kzw-upload", "{st}");
    assert_eq!(st["agent"]["user"], "nobody", "{st}");
    let pid = st["agent"]["pid"].as_u64().unwrap();
    let runs = std::fs::read_to_string(&log).unwrap();
    let nobody = mesh::ok(std::process::Command::new("id").args(["-u", "nobody"]));
    assert_eq!(
        runs.trim(),
        format!(
            "{pid} {} run --config {} --bind-interface kzw-upload",
            nobody.trim(),
            agent_config.display()
        )
    );
    // Its traffic, bound to the device netd named, reaches the centre's store port.
    wait_for("the hosted process reaching the centre store through kzw-upload", 30, || probe.exists());
    let text = mesh::ok(&mut m.netd(site, &["status"]));
    assert!(text.contains(&format!("agent: running pid {pid}")), "{text}");
    // The API may be busy with a pass; a miss is retried.
    let mut metrics = String::new();
    wait_for("/metrics", 30, || {
        metrics = http_get(&m, site, "/metrics").unwrap_or_default();
        !metrics.is_empty()
    });
    assert!(
        metrics.contains("netd_agent_up 1") && metrics.contains("netd_agent_restarts_total 0"),
        "{metrics}"
    );

    // SIGTERM to netd stops the agent first.
    let _ = mesh::run(std::process::Command::new("kill").arg(daemon.id().to_string()));
    assert!(daemon.wait().unwrap().success());
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "agent {pid} outlived netd");
    // Without the daemon, `netd status` says it cannot tell.
    let st = status().unwrap();
    assert_eq!(st["agent"]["state"], "unknown", "{st}");
    assert!(st["agent"]["reason"].as_str().unwrap().contains("netd run not reachable"), "{st}");
}

/// An agent check that starts failing while `netd run` runs (here the command is no longer
/// executable) leaves the agent waiting with the reason, and the network is still reconciled:
/// a new site in the policy gets its peer. Once the check passes again, the agent starts.
#[test]
fn a_failing_agent_check_does_not_stop_reconciling_the_network() {
    let Some(m) = Mesh::with_policy("k", 2) else {
        return;
    };
    let site = &m.sites[1];
    let adir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    let script = adir.path().join("fake-agent");
    std::fs::write(&script, "#!/bin/sh\nexec sleep 1000\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let agent_config = adir.path().join("agent.yaml");
    let site_file = site.config();
    let text = std::fs::read_to_string(&site_file).unwrap();
    std::fs::write(
        &site_file,
        format!(
            "{text}agent:\n  command: {}\n  config: {}\n  segment: upload\n  user: ''\n  stop_timeout_secs: 5\n",
            script.display(),
            agent_config.display()
        ),
    )
    .unwrap();
    let mut daemon = m.spawn_daemon(site);
    let status = || -> serde_json::Value {
        let out = mesh::run(&mut m.netd(site, &["status", "--json"]));
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    };
    wait_for("the agent waiting for its config", 60, || {
        status()["agent"]["reason"].as_str().is_some_and(|r| r.contains("agent.yaml missing"))
    });
    // The agent's command stops being executable (a package upgrade half done).
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    use base64::Engine as _;
    let key = |n: u8| base64::engine::general_purpose::STANDARD.encode([n; 32]);
    let policy = std::fs::read_to_string(m.policy_path()).unwrap();
    std::fs::write(m.policy_path(), with_extra_site(&policy, key)).unwrap();
    wait_for("the new site's peer while the agent check fails", 30, || {
        let dump = mesh::run(&mut m.router_cmd(
            site,
            std::path::Path::new("wg"),
            &["show", "kzw-conference", "peers"],
        ));
        String::from_utf8_lossy(&dump.stdout).contains(&key(93))
    });
    let mut st = serde_json::Value::Null;
    wait_for("the agent reported as not startable", 30, || {
        st = status();
        st["agent"]["state"] == "waiting"
            && st["agent"]["reason"].as_str().is_some_and(|r| r.contains("is not an executable file"))
    });
    // The daemon's passes succeed meanwhile (the API may be busy with a pass; a miss is retried).
    wait_for("a successful pass reported by the daemon", 30, || {
        http_get(&m, site, "/status")
            .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
            .is_some_and(|d| d["last_pass_ok"] == true && d["last_error"].is_null())
    });
    // Fixed: the agent starts.
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(&agent_config, "# read by the agent only\n").unwrap();
    wait_for("the agent running", 60, || status()["agent"]["state"] == "running");
    let _ = mesh::run(std::process::Command::new("kill").arg(daemon.id().to_string()));
    assert!(daemon.wait().unwrap().success());
}

#[test]
fn a_failed_pass_that_drops_a_segment_rolls_back_to_it() {
    if !mesh::require_root() {
        return;
    }
    let m = Mesh::new("d", 2);
    m.write_policy("");
    for s in &m.sites {
        assert_eq!(m.apply(s).0, 0);
    }
    let site = &m.sites[1];
    let good = m.router_state(site);
    // Site-2 leaves the optional conference segment: no key, LAN or join for it any more.
    let policy = std::fs::read_to_string(m.policy_path()).unwrap();
    let (head, tail) = policy.split_once("name: site-2").unwrap();
    let tail: String = tail
        .lines()
        .filter(|l| !l.trim_start().starts_with("conference: "))
        .map(|l| format!("{l}\n"))
        .collect();
    let left = format!(
        "{head}name: site-2{}",
        tail.replace(", conference: lan2", "").replace("joins: [conference]", "joins: []")
    );
    assert!(!left.split_once("name: site-2").unwrap().1.contains("conference"), "{left}");
    std::fs::write(m.policy_path(), left).unwrap();
    // The rollback needs the key of the segment the new plan dropped.
    let (code, out) = m.apply_env(site, &[("NETD_INJECT_FAIL_AFTER", "1")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("rolled back to the last good state"), "{out}");
    assert_eq!(m.router_state(site), good, "not rolled back to the last good state");
    assert!(m.pings(site.host("conference"), &host_ip("conference", 1), 10));
    let (code, out) = m.apply(site);
    assert_eq!(code, 0, "{out}");
    assert!(!m.router_state(site).contains("kzw-conference"), "site-2 still in conference");
}

#[test]
fn a_verified_state_whose_save_failed_is_recorded_by_the_next_pass() {
    if !mesh::require_root() {
        return;
    }
    let m = Mesh::new("e", 2);
    m.write_policy("");
    for s in &m.sites {
        assert_eq!(m.apply(s).0, 0);
    }
    let site = &m.sites[1];
    let state = site.dir.join("state");
    let policy = std::fs::read_to_string(m.policy_path()).unwrap();
    use base64::Engine as _;
    let key = |n: u8| base64::engine::general_purpose::STANDARD.encode([n; 32]);
    std::fs::write(m.policy_path(), with_extra_site(&policy, key)).unwrap();
    // The save fails (both the journal and the base's temp file are directories): the kernel
    // holds the new state, verified, and the record the one before.
    let blockers = [state.join("last-good.journal"), state.join(".last-good.json.tmp")];
    for d in &blockers {
        std::fs::create_dir(d).unwrap();
    }
    let (code, out) = m.apply(site);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not recorded") && !out.contains("ROLLBACK FAILED"), "{out}");
    for d in &blockers {
        std::fs::remove_dir(d).unwrap();
    }
    let grown = m.router_state(site);
    assert!(grown.contains(&key(93)), "{grown}");
    // The next pass finds nothing to change and records the state (as after a SIGKILL between
    // verify and save).
    let (code, out) = m.apply(site);
    assert_eq!((code, Mesh::applied_changes(&out)), (0, 0), "{out}");
    // Once recorded, a pass with nothing to change writes nothing.
    let files = || ["last-good.json", "last-good.journal"].map(|f| std::fs::read(state.join(f)).ok());
    let recorded = files();
    assert_eq!(m.apply(site).0, 0);
    assert_eq!(files(), recorded, "an unchanged record was written again");
    // So a failing pass rolls back to it, not to the record before.
    std::fs::write(m.policy_path(), &policy).unwrap();
    let (code, out) = m.apply_env(site, &[("NETD_INJECT_FAIL_AFTER", "0")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("rolled back to the last good state"), "{out}");
    assert_eq!(m.router_state(site), grown, "rolled back to a stale record");
}

/// `netd apply` run by hand while another pass holds `<state_dir>/pass.lock` (the daemon's, or
/// another apply; here the test holds it, with its pid in the file): it waits, saying whose pass
/// it waits for, changes nothing meanwhile, and runs once the lock is free. `netd plan` takes no
/// lock. Before, the two passes raced on the kernel and on the last good record.
#[test]
fn apply_waits_for_another_process_pass_and_plan_does_not() {
    let Some(m) = Mesh::with_policy("w", 2) else {
        return;
    };
    let site = &m.sites[1];
    let state = site.dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let mut held = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(state.join("pass.lock"))
        .unwrap();
    held.lock().unwrap();
    std::io::Write::write_all(&mut held, format!("{}\n", std::process::id()).as_bytes()).unwrap();
    let before = m.router_state(site);
    let log = m.dir.path().join("apply.log");
    let mut apply = m
        .netd(site, &["apply"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(apply.try_wait().unwrap().is_none(), "apply did not wait for the held lock: {said}");
    assert!(said.contains(&format!("waiting for another netd pass (pid {})", std::process::id())), "{said}");
    assert!(said.contains("pass.lock"), "{said}");
    assert_eq!(m.router_state(site), before, "apply changed the kernel while another pass held the lock");
    // plan observes only: it neither waits nor changes anything.
    let plan = mesh::run(&mut m.netd(site, &["plan"]));
    assert_eq!(plan.status.code(), Some(2), "{}", String::from_utf8_lossy(&plan.stdout));
    assert!(!state.join("last-good.json").exists(), "a record was written while the lock was held");

    drop(held);
    let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(s) = apply.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < end, "apply did not finish once the lock was free");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{said}");
    assert!(state.join("last-good.json").exists(), "{said}");
    assert_ne!(m.router_state(site), before, "the pass ran once the lock was free");
}

/// Two `netd apply` started at once on one router: two real passes. They take turns through
/// `<state_dir>/pass.lock`: the first converges the kernel and records it, the second starts from
/// that record and that kernel and has nothing left to do. Before, both observed the empty kernel
/// and applied everything, one failing on what the other had just made and rolling back over it.
#[test]
fn two_applies_at_once_take_turns() {
    let Some(m) = Mesh::with_policy("t", 2) else {
        return;
    };
    let site = &m.sites[1];
    let start = || {
        m.netd(site, &["apply"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (start(), start());
    let mut applied = Vec::new();
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        let said =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{said}");
        applied.push(Mesh::applied_changes(&said));
    }
    applied.sort_unstable();
    assert!(applied[0] == 0 && applied[1] > 0, "kernel changes per pass: {applied:?}");
    let plan = mesh::run(&mut m.netd(site, &["plan"]));
    assert_eq!(plan.status.code(), Some(0), "{}", String::from_utf8_lossy(&plan.stdout));
}
