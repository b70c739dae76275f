//! Issue 3's lab scenario: one centre and three site routers on Debian's cloud kernel, each running
//! netd with one policy assembled from the keys the routers generated themselves. Real packets from
//! LAN hosts (network namespaces behind each router) prove the segments' reachability and isolation,
//! then netd's repair, rejection of a bad policy, and rollback of a failed apply are checked.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kizuna_lab::probe::{Probe, Target, assert_probes, banner, listen_script};
use kizuna_lab::{Artefacts, Lab, Vm, VmSpec, lab_available};

const SITE_FILE: &str = "/etc/netd/site.yaml";
const POLICY: &str = "/etc/netd/policy.yaml";
const RECONCILE_SECS: u64 = 5;

/// A router of the scenario.
struct Router {
    name: &'static str,
    number: u8,
    kind: &'static str,
    underlay: &'static str,
    in_radiology: bool,
}

const ROUTERS: [Router; 4] = [
    Router { name: "centre", number: 1, kind: "centre", underlay: "10.255.0.11", in_radiology: false },
    Router { name: "site-a", number: 2, kind: "hospital", underlay: "10.255.0.12", in_radiology: true },
    Router { name: "site-b", number: 3, kind: "clinic", underlay: "10.255.0.13", in_radiology: true },
    Router { name: "site-c", number: 4, kind: "pharmacy", underlay: "10.255.0.14", in_radiology: false },
];
const SITES: [&str; 3] = ["site-a", "site-b", "site-c"];

/// A segment of the scenario: name, CIDR's second octet, WireGuard port, LAN interface, LAN host netns.
struct Segment {
    name: &'static str,
    octet: u8,
    port: u16,
    lan: &'static str,
    host: &'static str,
}

const REFERENCE: Segment = Segment { name: "reference", octet: 10, port: 51801, lan: "lref", host: "h-ref" };
const UPLOAD: Segment = Segment { name: "upload", octet: 20, port: 51802, lan: "lupl", host: "h-upl" };
const CONFERENCE: Segment =
    Segment { name: "conference", octet: 30, port: 51803, lan: "lconf", host: "h-conf" };
const RADIOLOGY: Segment = Segment { name: "radiology", octet: 40, port: 51804, lan: "lrad", host: "h-rad" };

/// Centre services: viewer and auth on the reference segment, the store on the upload segment.
const VIEWER: u16 = 443;
const AUTH: u16 = 8443;
const STORE: u16 = 8080;
/// A port with a listener on the centre's LANs that no segment allows.
const SSH: u16 = 22;

fn router(name: &str) -> &'static Router {
    ROUTERS.iter().find(|r| r.name == name).expect("scenario router")
}

fn segments_of(r: &Router) -> Vec<&'static Segment> {
    let mut segs = vec![&REFERENCE, &UPLOAD, &CONFERENCE];
    if r.in_radiology {
        segs.push(&RADIOLOGY);
    }
    segs
}

/// The LAN host of `site` on `seg` (router .1, host .2 of the site's /24).
fn host(seg: &Segment, site: &str) -> String {
    format!("10.{}.{}.2", seg.octet, router(site).number)
}

fn netd_binary() -> Option<PathBuf> {
    if let Ok(why) = std::env::var("KIZUNA_LAB_NETD_BUILD_FAILED") {
        panic!("netd is not available for the lab: {why}");
    }
    let path = std::env::var_os("KIZUNA_LAB_NETD").map(PathBuf::from).or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| kizuna_lab::lab_dir().join("../../target"));
        Some(target.join("debug/netd")).filter(|p| p.is_file())
    });
    match path {
        Some(p) if p.is_file() => Some(p),
        _ if std::env::var_os("CI").is_some() => {
            panic!("no netd binary: build it (cargo build -p netd) or run tests/lab/run")
        }
        _ => {
            eprintln!("skipping the netd lab: no netd binary (cargo build -p netd, or tests/lab/run)");
            None
        }
    }
}

fn site_file(r: &Router) -> String {
    format!(
        "policy: {POLICY}\nsite: {}\nkey_dir: /var/lib/netd/keys\nstate_dir: /var/lib/netd\n\
         api_listen: 127.0.0.1:9190\nmode: vrf\nwireguard: kernel\nreconcile_interval_secs: {RECONCILE_SECS}\n",
        r.name
    )
}

/// The LAN side of a router: per segment a veth whose far end sits in a namespace, the LAN host,
/// checked alive (so that a probe blocked later is blocked by policy, not by a dead host) and left
/// without an address for netd to configure. IPv4 forwarding stays off: netd must switch it on.
fn lan_script(r: &Router) -> String {
    let mut s = String::from("set -e\n");
    for seg in segments_of(r) {
        let h = seg.host;
        s.push_str(&format!(
            "ip netns add {h}\nip link add {lan} type veth peer name eth0 netns {h}\nip link set {lan} up\n\
             ip -n {h} link set lo up\nip -n {h} addr add 10.{o}.{n}.2/24 dev eth0\nip -n {h} link set eth0 up\n\
             ip -n {h} route add default via 10.{o}.{n}.1\n\
             ip addr add 10.{o}.{n}.1/24 dev {lan}\nping -c 1 -W 5 10.{o}.{n}.2 >/dev/null\n\
             ip addr del 10.{o}.{n}.1/24 dev {lan}\n",
            lan = seg.lan,
            o = seg.octet,
            n = r.number
        ));
    }
    s
}

/// The public keys `netd keys` printed, per segment.
type Keys = BTreeMap<String, String>;

/// What `netd keys` prints: the site and its public keys, ready to paste into the policy.
#[derive(serde::Deserialize)]
struct KeysOutput {
    site: String,
    keys: Keys,
}

fn policy_yaml(keys: &BTreeMap<&str, Keys>, radiology_port: u16, extra_site: Option<&str>) -> String {
    let mut y = format!(
        "mesh: lab\nkeepalive_secs: 10\nsegments:\n\
         \x20 reference:\n    cidr: 10.10.0.0/16\n    port: {}\n    security: high\n    required: true\n\
         \x20   centre_services:\n      - {{ name: viewer, proto: tcp, port: {VIEWER} }}\n      - {{ name: auth, proto: tcp, port: {AUTH} }}\n\
         \x20 upload:\n    cidr: 10.20.0.0/16\n    port: {}\n    security: high\n    required: true\n\
         \x20   centre_services:\n      - {{ name: store, proto: tcp, port: {STORE} }}\n\
         \x20 conference:\n    cidr: 10.30.0.0/16\n    port: {}\n    security: low\n\
         closed_groups:\n  radiology:\n    cidr: 10.40.0.0/16\n    port: {radiology_port}\n    security: high\n\
         \x20   members: [site-a, site-b]\nsites:\n",
        REFERENCE.port, UPLOAD.port, CONFERENCE.port
    );
    for r in &ROUTERS {
        y.push_str(&format!(
            "  - number: {}\n    name: {}\n    kind: {}\n    endpoint: {}\n    joins: [conference]\n    keys:\n",
            r.number, r.name, r.kind, r.underlay
        ));
        for seg in segments_of(r) {
            y.push_str(&format!("      {}: \"{}\"\n", seg.name, keys[r.name][seg.name]));
        }
        y.push_str("    lan:\n");
        for seg in segments_of(r) {
            y.push_str(&format!("      {}: {}\n", seg.name, seg.lan));
        }
    }
    if let Some(extra) = extra_site {
        y.push_str(extra);
    }
    y
}

/// What netd manages on a router, without counters, timestamps or private keys, and with WireGuard
/// peers sorted (their order carries no meaning): equal snapshots mean nothing netd owns has changed.
const SNAPSHOT: &str = "ip -d link show | grep -v -e 'link/ether' -e 'alias'; ip addr show; \
    ip route show table all; ip rule show; \
    wg show all dump | awk -F'\\t' 'NF==5{print \"if\",$1,$3,$4,$5} NF==9{print \"peer\",$1,$2,$4,$5,$9}' | sort; \
    nft list ruleset | sed -e 's/counter packets [0-9]* bytes [0-9]*/counter/'";

fn snapshot(vm: &Vm) -> String {
    vm.run_ok(SNAPSHOT).expect("snapshot")
}

/// Fails with the lines that differ when the router's state is no longer `before`.
fn assert_state_unchanged(vm: &Vm, before: &str, what: &str) {
    let after = snapshot(vm);
    if after == before {
        return;
    }
    let gone: Vec<&str> = before.lines().filter(|l| !after.lines().any(|a| a == *l)).collect();
    let new: Vec<&str> = after.lines().filter(|l| !before.lines().any(|b| b == *l)).collect();
    panic!(
        "{}: {what}\nlines gone:\n  {}\nlines new:\n  {}\nnetd log tail:\n{}",
        vm.name(),
        gone.join("\n  "),
        new.join("\n  "),
        vm.run("tail -20 /var/log/netd.log 2>/dev/null").map(|o| o.stdout).unwrap_or_default()
    );
}

fn netd(vm: &Vm, args: &str) -> kizuna_lab::Output {
    vm.run_with_timeout(&format!("netd --config {SITE_FILE} {args}"), Duration::from_secs(120))
        .expect("running netd")
}

/// Sum of bytes received and sent on a WireGuard interface.
fn wg_bytes(vm: &Vm, iface: &str) -> u64 {
    vm.run_ok(&format!("wg show {iface} transfer"))
        .unwrap()
        .lines()
        .flat_map(|l| l.split_whitespace().skip(1).map(|n| n.parse::<u64>().unwrap()).collect::<Vec<_>>())
        .sum()
}

/// Bytes received from and sent to one peer (by public key).
fn wg_peer_bytes(vm: &Vm, iface: &str, key: &str) -> u64 {
    vm.run_ok(&format!("wg show {iface} transfer"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with(key))
        .flat_map(|l| l.split_whitespace().skip(1).map(|n| n.parse::<u64>().unwrap()).collect::<Vec<_>>())
        .sum()
}

#[test]
#[ignore = "QEMU lab: needs root, qemu and a built netd; run tests/lab/run"]
fn netd_builds_isolated_segment_meshes_and_keeps_them() {
    if !lab_available() {
        return;
    }
    let Some(netd_bin) = netd_binary() else { return };
    let total = Instant::now();
    let artefacts = Artefacts::build("netd", &[netd_bin.as_path()]).expect("building the guest image");
    let specs = ROUTERS
        .iter()
        .map(|r| VmSpec { memory_mb: 320, ..VmSpec::new(r.name, &format!("{}/24", r.underlay)) })
        .collect();
    let lab = Lab::start("netd", &artefacts, specs).expect("booting the routers");
    eprintln!("netd lab: 4 routers booted in {:.1} s", lab.boot_time().as_secs_f64());

    // Each router generates its keys; only public keys come back. (All routers at once, here and
    // below: each emulated guest keeps one host core busy.)
    let keys: BTreeMap<&str, Keys> = lab
        .on_each(|vm| {
            let r = router(vm.name());
            vm.write_file(SITE_FILE, &site_file(r)).unwrap();
            vm.run_ok(&lan_script(r)).unwrap_or_else(|e| panic!("{e}"));
            let segs: String = segments_of(r).iter().map(|s| format!(" --segment {}", s.name)).collect();
            let out = netd(vm, &format!("keys{segs}"));
            assert!(out.success(), "{}: netd keys failed: {}", r.name, out.stderr);
            let printed: KeysOutput = serde_norway::from_str(&out.stdout).unwrap_or_else(|e| {
                panic!("{}: netd keys printed no `site:` and `keys:` YAML ({e}):\n{}", r.name, out.stdout)
            });
            assert_eq!(printed.site, r.name, "netd keys names the wrong site");
            let printed = printed.keys;
            for seg in segments_of(r) {
                assert!(printed.contains_key(seg.name), "{}: no {} key in {printed:?}", r.name, seg.name);
            }
            let private = vm.run_ok("cat /var/lib/netd/keys/*").unwrap();
            assert!(
                printed.values().all(|k| !private.contains(k.as_str())),
                "netd keys printed a private key"
            );
            (r.name, printed)
        })
        .into_iter()
        .collect();
    let policy = policy_yaml(&keys, RADIOLOGY.port, None);

    // The centre's LAN services, and listeners that no policy allows.
    let centre = lab.vm("centre").unwrap();
    centre
        .run_ok(
            &[
                listen_script(REFERENCE.host, VIEWER),
                listen_script(REFERENCE.host, AUTH),
                listen_script(REFERENCE.host, SSH),
                listen_script(UPLOAD.host, STORE),
                listen_script(UPLOAD.host, VIEWER),
                listen_script(UPLOAD.host, SSH),
            ]
            .join("\n"),
        )
        .unwrap();

    // One policy everywhere; netd checks and applies it, and a second plan finds nothing to do.
    lab.on_each(|vm| {
        let name = vm.name();
        vm.write_file(POLICY, &policy).unwrap();
        let check = vm.run(&format!("netd check {POLICY}")).unwrap();
        assert!(check.success(), "{name}: netd check rejected the policy:\n{}{}", check.stdout, check.stderr);
        let apply = netd(vm, "apply");
        assert!(apply.success(), "{name}: netd apply failed:\n{}{}", apply.stdout, apply.stderr);
        let plan = netd(vm, "plan");
        assert_eq!(plan.code, 0, "{name}: plan after apply is not empty:\n{}{}", plan.stdout, plan.stderr);
    });
    let applied = total.elapsed();

    // (a)-(d) with real packets.
    let mut probes: BTreeMap<&str, Vec<Probe>> = BTreeMap::new();
    for &site in &SITES {
        let me = router(site);
        let list = probes.entry(site).or_default();
        for &other in SITES.iter().filter(|o| **o != site) {
            // (a) conference: every site reaches every other site's conference LAN.
            list.push(Probe::reaches(
                CONFERENCE.host,
                Target::Ping(host(&CONFERENCE, other)),
                "(a) conference mesh",
            ));
            // (b) hub segments: sites' LANs do not reach each other.
            list.push(Probe::blocked(
                REFERENCE.host,
                Target::Ping(host(&REFERENCE, other)),
                "(b) reference is hub-only",
            ));
            list.push(Probe::blocked(
                UPLOAD.host,
                Target::Ping(host(&UPLOAD, other)),
                "(b) upload is hub-only",
            ));
            // (c) the closed group.
            if me.in_radiology && router(other).in_radiology {
                list.push(Probe::reaches(
                    RADIOLOGY.host,
                    Target::Ping(host(&RADIOLOGY, other)),
                    "(c) group members",
                ));
            } else if router(other).in_radiology {
                for seg in segments_of(me) {
                    list.push(Probe::blocked(
                        seg.host,
                        Target::Ping(host(&RADIOLOGY, other)),
                        "(c) non-member",
                    ));
                }
            }
        }
        // (b) reference and upload LANs reach exactly the allowed centre ports.
        let viewer_host = host(&REFERENCE, "centre");
        let store_host = host(&UPLOAD, "centre");
        list.push(Probe::reaches(
            REFERENCE.host,
            Target::Tcp(viewer_host.clone(), VIEWER),
            "(b) viewer allowed",
        ));
        list.push(Probe::reaches(REFERENCE.host, Target::Tcp(viewer_host.clone(), AUTH), "(b) auth allowed"));
        list.push(Probe::blocked(
            REFERENCE.host,
            Target::Tcp(viewer_host.clone(), SSH),
            "(b) only listed ports",
        ));
        list.push(Probe::blocked(REFERENCE.host, Target::Ping(viewer_host.clone()), "(b) only listed ports"));
        list.push(Probe::reaches(UPLOAD.host, Target::Tcp(store_host.clone(), STORE), "(b) store allowed"));
        list.push(Probe::blocked(
            UPLOAD.host,
            Target::Tcp(store_host.clone(), VIEWER),
            "(b) only listed ports",
        ));
        list.push(Probe::blocked(UPLOAD.host, Target::Tcp(store_host.clone(), SSH), "(b) only listed ports"));
        // (d) no segment reaches another, on this router or across the mesh, nor the underlay.
        list.push(Probe::blocked(
            REFERENCE.host,
            Target::Tcp(store_host.clone(), STORE),
            "(d) reference -> upload",
        ));
        list.push(Probe::blocked(
            UPLOAD.host,
            Target::Tcp(viewer_host.clone(), VIEWER),
            "(d) upload -> reference",
        ));
        list.push(Probe::blocked(
            CONFERENCE.host,
            Target::Tcp(viewer_host.clone(), VIEWER),
            "(d) conference -> reference",
        ));
        list.push(Probe::blocked(
            CONFERENCE.host,
            Target::Tcp(store_host.clone(), STORE),
            "(d) conference -> upload",
        ));
        for from in segments_of(me) {
            for to in segments_of(me).into_iter().filter(|t| t.name != from.name) {
                list.push(Probe::blocked(
                    from.host,
                    Target::Ping(host(to, site)),
                    "(d) across segments on one router",
                ));
            }
            list.push(Probe::blocked(
                from.host,
                Target::Ping(router("centre").underlay.to_string()),
                "(d) LAN -> underlay",
            ));
        }
        if me.in_radiology {
            list.push(Probe::blocked(
                RADIOLOGY.host,
                Target::Tcp(viewer_host.clone(), VIEWER),
                "(d) group -> reference",
            ));
            let other = if site == "site-a" { "site-b" } else { "site-a" };
            list.push(Probe::blocked(
                RADIOLOGY.host,
                Target::Ping(host(&CONFERENCE, other)),
                "(d) group -> conference",
            ));
        }
    }
    assert_probes(&lab, &probes, Duration::from_secs(40));

    // (e) The router's own traffic inside a segment (an upload agent on the appliance): a process
    // bound to the upload VRF reaches the centre's store and gets its replies (netd zones
    // locally generated packets by output interface), but still only the store's port.
    let store_host = host(&UPLOAD, "centre");
    lab.on_each(|vm| {
        if !SITES.contains(&vm.name()) {
            return;
        }
        let vrf_nc = |port: u16| {
            // `ip vrf exec` mounts cgroup2 under /var/run when it is not mounted yet.
            let cmd = format!(
                "mkdir -p /var/run && ip vrf exec kzv-{} nc -w 2 {store_host} {port} </dev/null 2>&1",
                UPLOAD.name
            );
            vm.run(&cmd).unwrap()
        };
        let mut last = String::new();
        let reached = (0..10).any(|_| {
            let out = vrf_nc(STORE);
            let ok = out.stdout.lines().any(|l| l == banner(STORE));
            if !ok {
                last = format!("exit {:?}: {}{}", out.code, out.stdout, out.stderr);
                std::thread::sleep(Duration::from_secs(1));
            }
            ok
        });
        assert!(
            reached,
            "{}: a process bound to kzv-upload got no answer from the centre store: {last}",
            vm.name()
        );
        let out = vrf_nc(VIEWER);
        assert!(
            !out.stdout.lines().any(|l| l == banner(VIEWER)),
            "{}: a process bound to kzv-upload reached the centre's port {VIEWER}",
            vm.name()
        );
    });
    let probed = total.elapsed();

    // (a) directly: two router hops (TTL 64 -> 62), the peer's endpoint is the other site's underlay
    // address, and the centre's conference tunnel carries none of the traffic.
    let a = lab.vm("site-a").unwrap();
    let b_key = keys["site-b"]["conference"].clone();
    let endpoints = a.run_ok("wg show kzw-conference endpoints").unwrap();
    assert!(
        endpoints.lines().any(|l| l.starts_with(&b_key)
            && l.contains(&format!("{}:{}", router("site-b").underlay, CONFERENCE.port))),
        "site-a's conference peer site-b is not reached at site-b's own address:\n{endpoints}"
    );
    let centre_before = wg_bytes(centre, "kzw-conference");
    let direct_before = wg_peer_bytes(a, "kzw-conference", &b_key);
    let ping = a
        .run_ok(&format!(
            "ip netns exec {} ping -c 20 -i 0.2 -s 1000 {}",
            CONFERENCE.host,
            host(&CONFERENCE, "site-b")
        ))
        .unwrap();
    assert!(
        ping.contains("ttl=62"),
        "conference ping site-a -> site-b took other than two router hops:\n{ping}"
    );
    let centre_delta = wg_bytes(centre, "kzw-conference") - centre_before;
    let direct_delta = wg_peer_bytes(a, "kzw-conference", &b_key) - direct_before;
    assert!(direct_delta > 20 * 1000 * 2, "the direct tunnel carried only {direct_delta} bytes");
    assert!(
        centre_delta < 2000,
        "the centre's conference tunnel carried {centre_delta} bytes of site-to-site traffic"
    );

    // (g) a change whose apply fails part-way (injected) is rolled back completely. Adding site-d
    // takes one new peer on each of site-a's three segments it joins, so failing after one or two
    // kernel changes leaves the apply half done.
    let before = snapshot(a);
    let d_keys: Vec<String> = a
        .run_ok("for i in 1 2 3; do wg genkey | wg pubkey; done")
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let site_d = format!(
        "  - number: 5\n    name: site-d\n    kind: care_home\n    endpoint: 10.255.0.15\n    joins: [conference]\n\
         \x20   keys:\n      reference: \"{}\"\n      upload: \"{}\"\n      conference: \"{}\"\n\
         \x20   lan:\n      reference: lref\n      upload: lupl\n      conference: lconf\n",
        d_keys[0], d_keys[1], d_keys[2]
    );
    a.write_file(POLICY, &policy_yaml(&keys, RADIOLOGY.port, Some(&site_d))).unwrap();
    let pending = netd(a, "plan");
    assert_eq!(
        pending.code, 2,
        "plan does not see the new site as pending:\n{}{}",
        pending.stdout, pending.stderr
    );
    for fail_after in [1, 2] {
        let failed = a
            .run_with_timeout(
                &format!("NETD_INJECT_FAIL_AFTER={fail_after} netd --config {SITE_FILE} apply"),
                Duration::from_secs(120),
            )
            .unwrap();
        assert_ne!(failed.code, 0, "apply with NETD_INJECT_FAIL_AFTER={fail_after} succeeded");
        assert_state_unchanged(
            a,
            &before,
            &format!("apply failing after {fail_after} changes was not rolled back"),
        );
    }
    a.write_file(POLICY, &policy).unwrap();
    assert_eq!(netd(a, "plan").code, 0, "plan not empty after rollback and policy restore");

    // The daemons take over.
    lab.on_each(|vm| {
        vm.run_ok(&format!("setsid netd --config {SITE_FILE} run </dev/null >/var/log/netd.log 2>&1 &"))
            .unwrap()
    });

    // (e) a peer deleted by hand comes back on the next pass.
    a.run_ok(&format!("wg set kzw-conference peer {b_key} remove")).unwrap();
    assert!(!a.run_ok("wg show kzw-conference peers").unwrap().contains(&b_key));
    let deleted = Instant::now();
    // The next pass is due within RECONCILE_SECS; the limit leaves room for a loaded, emulated guest.
    let limit = RECONCILE_SECS * 8;
    let restored = a
        .run_with_timeout(
            &format!(
                "t0=$(date +%s); until wg show kzw-conference peers | grep -q '{b_key}'; do \
                 [ $(( $(date +%s) - t0 )) -ge {limit} ] && exit 1; sleep 1; done"
            ),
            Duration::from_secs(limit + 30),
        )
        .unwrap();
    assert!(
        restored.success(),
        "the deleted peer was not restored within {limit} s (reconcile interval {RECONCILE_SECS} s); netd log:\n{}",
        a.run("tail -30 /var/log/netd.log").unwrap().stdout
    );
    let repair = deleted.elapsed();
    assert_state_unchanged(a, &before, "state after repair differs from the applied state");
    let mut conference_again = BTreeMap::new();
    conference_again.insert(
        "site-a",
        vec![Probe::reaches(
            CONFERENCE.host,
            Target::Ping(host(&CONFERENCE, "site-b")),
            "(e) repaired peer carries traffic",
        )],
    );
    assert_probes(&lab, &conference_again, Duration::from_secs(30));

    // (f) a bad policy (a WireGuard port used twice) is rejected with its location, and nothing changes,
    // whether given to `netd check`, to `netd apply`, or dropped on the running daemon.
    let bad = policy_yaml(&keys, CONFERENCE.port, None);
    a.write_file("/etc/netd/bad.yaml", &bad).unwrap();
    let check = a.run("netd check /etc/netd/bad.yaml").unwrap();
    assert_eq!(
        check.code, 1,
        "netd check accepted a policy with a duplicate port:\n{}{}",
        check.stdout, check.stderr
    );
    let said = format!("{}{}", check.stdout, check.stderr);
    assert!(
        said.contains("/etc/netd/bad.yaml") && said.contains(&CONFERENCE.port.to_string()),
        "the rejection does not name the file and the port:\n{said}"
    );
    a.write_file(POLICY, &bad).unwrap();
    let refused = netd(a, "apply");
    assert_ne!(refused.code, 0, "netd apply accepted the bad policy");
    std::thread::sleep(Duration::from_secs(RECONCILE_SECS * 2 + 2));
    assert_state_unchanged(a, &before, "the bad policy changed the running state");
    assert!(
        a.run("pidof netd").unwrap().success(),
        "the daemon died on a bad policy:\n{}",
        a.run("tail -30 /var/log/netd.log").unwrap().stdout
    );
    assert_probes(&lab, &conference_again, Duration::from_secs(30));
    a.write_file(POLICY, &policy).unwrap();

    let status = netd(a, "status");
    assert!(status.success(), "netd status failed: {}", status.stderr);
    assert!(
        status.stdout.contains("vrf"),
        "netd status does not say it runs in VRF mode:\n{}",
        status.stdout
    );

    eprintln!(
        "netd lab: kernel {}, image {:.1} s, boot {:.1} s, keys+policy+apply done at {:.1} s, \
         reachability (a)-(d) done at {:.1} s, hand-deleted peer restored in {:.1} s, total {:.1} s",
        artefacts.kernel_release,
        artefacts.build_time.as_secs_f64(),
        lab.boot_time().as_secs_f64(),
        applied.as_secs_f64(),
        probed.as_secs_f64(),
        repair.as_secs_f64(),
        total.elapsed().as_secs_f64()
    );
}
