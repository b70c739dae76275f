//! Kizuna's own images, booted as a user deploys them: one centre and one site from `images/build`
//! (Debian packages, the cloud kernel, systemd as PID 1; built with the lab's command channel as
//! the only addition). Asserts what an operator relies on after power-on: every unit came up
//! (`systemctl is-system-running` says `running`), the centre's services answer on their ports as
//! the unprivileged user `kizuna`, the modules for VRF, WireGuard and nftables are loaded, the site
//! reaches the centre's store and registry over the underlay, and the provisioning procedure of
//! `provisioning/README.md` works as written: policy at the registry, `kizuna site provision`,
//! `netd enroll` on each router, `systemctl start netd`; netd then runs under systemd, loads its
//! nftables table and completes a WireGuard handshake between site and centre.

use std::time::{Duration, Instant};

use kizuna_lab::deploy::{
    CorpusUpload, assert_started_by_systemd, centre_and_site_images, netd_diagnosis, provision, retry,
    system_state, upload_generated_corpus,
};
use kizuna_lab::{Lab, VmSpec, lab_available};

const CENTRE_IP: &str = "10.255.0.10";
const SITE_IP: &str = "10.255.0.11";

/// Centre units enabled in the image, each with the URL its health check answers on.
const CENTRE_SERVICES: &[(&str, &str)] = &[
    ("kizuna-store", "http://127.0.0.1:8440/healthz"),
    ("kizuna-registry", "https://127.0.0.1:9443/v1/health"),
    ("kizuna-audit", "http://127.0.0.1:7460/healthz"),
    ("kizuna-auth", "http://127.0.0.1:7470/healthz"),
    ("kizuna-admin", "http://127.0.0.1:8441/healthz"),
];

fn policy() -> String {
    // Two routers; each LAN is a VLAN on eth0 that netd creates (ids differ per router, so the
    // LANs do not share the lab bridge).
    format!(
        "mesh: images-lab\nkeepalive_secs: 5\nsegments:\n\
         \x20 reference:\n    cidr: 10.10.0.0/16\n    port: 51801\n    security: high\n    required: true\n\
         \x20 upload:\n    cidr: 10.20.0.0/16\n    port: 51802\n    security: high\n    required: true\n\
         \x20   centre_services:\n      - {{ name: store, proto: tcp, port: 8440 }}\n\
         sites:\n\
         \x20 - number: 1\n    name: centre\n    kind: centre\n    endpoint: {CENTRE_IP}\n\
         \x20   lan: {{ reference: eth0.11, upload: eth0.12 }}\n\
         \x20 - number: 2\n    name: site-a\n    kind: hospital\n    endpoint: {SITE_IP}\n\
         \x20   lan: {{ reference: eth0.21, upload: eth0.22 }}\n"
    )
}

#[test]
#[ignore = "QEMU lab: needs root and qemu; run tests/lab/run"]
fn centre_and_site_images_boot_their_services_and_enroll() {
    if !lab_available() {
        return;
    }
    let started = Instant::now();
    let (centre_image, site_image) = centre_and_site_images("KIZUNA_LAB_IMAGES_BUILD_FAILED");
    let built = started.elapsed();
    for (role, image) in [("centre", &centre_image), ("site", &site_image)] {
        let size = std::fs::metadata(&image.initrd).map(|m| m.len()).unwrap_or(0);
        eprintln!(
            "images: {role} image {} ({:.1} MB), kernel {}",
            image.initrd.display(),
            size as f64 / 1e6,
            image.kernel_release
        );
    }
    eprintln!("images: built or found in the cache in {:.1} s", built.as_secs_f64());

    // Root's SSH key for the centre, handed over as the systemd credential ssh.authorized_keys.root
    // on the kernel command line, as the Vagrantfile does.
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("id_ed25519");
    let keygen = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "lab", "-f"])
        .arg(&key)
        .status()
        .expect("running ssh-keygen (Debian package openssh-client)");
    assert!(keygen.success(), "ssh-keygen failed");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let public: Vec<&str> = public.split_whitespace().take(2).collect();
    let credential = format!("\"systemd.set_credential=ssh.authorized_keys.root:{}\"", public.join(" "));
    let private = std::fs::read_to_string(&key).unwrap();

    let lab = Lab::start_with(
        "images",
        vec![
            (
                VmSpec {
                    memory_mb: 1024,
                    kernel_args: vec![credential],
                    ..VmSpec::new("centre", &format!("{CENTRE_IP}/24"))
                },
                centre_image,
            ),
            (VmSpec { memory_mb: 768, ..VmSpec::new("site-a", &format!("{SITE_IP}/24")) }, site_image),
        ],
    )
    .expect("booting the centre and the site");
    let centre = lab.vm("centre").unwrap();
    let site = lab.vm("site-a").unwrap();
    eprintln!(
        "images: command channel answering after {:.1} s (centre {:.1} s, site {:.1} s)",
        lab.boot_time().as_secs_f64(),
        centre.boot_time().unwrap().as_secs_f64(),
        site.boot_time().unwrap().as_secs_f64()
    );

    // Every unit of the boot transaction came up: nothing failed.
    let states = lab.on_each(|vm| (system_state(vm), Instant::now()));
    for (vm, (state, at)) in lab.vms().iter().zip(&states) {
        assert_eq!(
            state,
            "running",
            "{}: systemd's state after boot (console log: {})",
            vm.name(),
            vm.console_log().display()
        );
        eprintln!(
            "images: {} reached `running` {:.1} s after QEMU started",
            vm.name(),
            (*at - started).as_secs_f64() - built.as_secs_f64()
        );
    }
    let analyze = lab.on_each(|vm| {
        vm.run_ok("systemd-analyze time | head -1; systemd-analyze blame --no-pager | head -5")
            .unwrap_or_default()
    });
    for (vm, line) in lab.vms().iter().zip(analyze) {
        eprintln!("images: {}: {}", vm.name(), line.trim());
    }

    // Both images: the name and underlay address from the kernel command line, the modules netd
    // needs loaded at boot (modules-load.d), nftables usable, sshd up with a key of its own, the
    // NTP client running.
    for (vm, ip) in [(centre, CENTRE_IP), (site, SITE_IP)] {
        let facts = vm
            .run_ok(&format!(
                "set -e; hostname; ip -4 -o addr show dev eth0 | grep -c ' {ip}/24 '; \
                 for m in vrf wireguard nf_tables 8021q; do test -d /sys/module/$m && echo $m; done; \
                 nft list tables >/dev/null && echo nft-ok; systemctl is-active ssh; systemctl is-active systemd-timesyncd; \
                 test -s /etc/ssh/ssh_host_ed25519_key && echo hostkey; cat /etc/kizuna-image"
            ))
            .unwrap_or_else(|e| panic!("{}: {e}", vm.name()));
        let role = if vm.name() == "centre" { "centre" } else { "site" };
        assert_eq!(
            facts.split_whitespace().collect::<Vec<_>>(),
            [
                vm.name(),
                "1",
                "vrf",
                "wireguard",
                "nf_tables",
                "8021q",
                "nft-ok",
                "active",
                "active",
                "hostkey",
                role
            ],
            "{}: hostname, underlay address, modules, nftables, sshd, the NTP client (netd's key switches need it)",
            vm.name()
        );
    }
    let keys = lab.on_each(|vm| vm.run_ok("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub").unwrap());
    assert_ne!(keys[0], keys[1], "the two images must not share an SSH host key");

    // The centre's services: started by systemd as user kizuna, answering on their ports.
    for (unit, url) in CENTRE_SERVICES {
        assert_started_by_systemd(centre, unit, "kizuna", "kizuna");
        let body = centre
            .run_ok(&retry(&format!("curl -sfk --max-time 5 {url}"), 30))
            .unwrap_or_else(|e| panic!("centre: {unit} does not answer on {url}: {e}"));
        assert!(!body.trim().is_empty(), "centre: {unit} answered {url} with nothing");
    }
    // The viewer and the backup follower wait for their configuration (OIDC client, replicas).
    let waiting = centre
        .run_ok("systemctl show -p ConditionResult --value kizuna-viewer kizuna-backup-follow")
        .unwrap();
    assert_eq!(
        waiting.split_whitespace().collect::<Vec<_>>(),
        ["no", "no"],
        "viewer and backup wait for their config"
    );
    // netd (both images) waits for enrollment; on the site it will host the agent, whose own unit
    // ships disabled (started by hand below, before enrollment).
    let site_waiting = site.run_ok("systemctl show -p ConditionResult --value netd").unwrap();
    assert_eq!(site_waiting.trim(), "no", "netd waits for its site file");
    let agent_unit = site.run("systemctl is-enabled kizuna-agent").unwrap();
    assert_eq!(
        agent_unit.stdout.trim(),
        "disabled",
        "the site's kizuna-agent.service (netd hosts the agent)"
    );

    // The site reaches the centre over the underlay: the store's upload API and the registry (TLS).
    let store = site
        .run_ok(&retry(&format!("curl -sf --max-time 5 http://{CENTRE_IP}:8440/healthz"), 20))
        .expect("the site reaches the centre's store over the underlay");
    assert!(!store.trim().is_empty());
    site.run_ok(&format!("curl -sfk --max-time 5 https://{CENTRE_IP}:9443/v1/health >/dev/null"))
        .expect("the site reaches the centre's registry over the underlay");

    // SSH from the site to the centre's root, with the key from the credential; host key checked
    // against the one the centre generated at its first boot.
    let centre_hostkey = centre.run_ok("cat /etc/ssh/ssh_host_ed25519_key.pub").unwrap();
    site.write_file("/root/.ssh/id_ed25519", &private).unwrap();
    site.write_file(
        "/root/.ssh/known_hosts",
        &format!("{CENTRE_IP} {}\n", centre_hostkey.split_whitespace().take(2).collect::<Vec<_>>().join(" ")),
    )
    .unwrap();
    let over_ssh = site
        .run_ok(&format!(
            "chmod 600 /root/.ssh/id_ed25519; ssh -o BatchMode=yes -o ConnectTimeout=20 root@{CENTRE_IP} cat /etc/kizuna-image"
        ))
        .expect("ssh from the site to root@centre with the key from the kernel command line's credential");
    assert_eq!(over_ssh.trim(), "centre");

    // The upload agent as deployed: a site token from the store, the agent's config, `systemctl
    // start kizuna-agent`; a synthetic SS-MIX2 export (made on the centre by `kizuna ssmix2 gen`)
    // dropped into /srv/kizuna/export arrives in the store's tree byte for byte. Over the underlay,
    // before netd runs; the `upload_mesh` test uploads through the mesh's upload segment.
    let store_url = format!("http://{CENTRE_IP}:8440");
    let allow = format!("{SITE_IP}/32");
    let up = upload_generated_corpus(
        centre,
        site,
        &CorpusUpload {
            seed: 7,
            patients: 2,
            held_back: 0,
            bad: 0,
            store_yaml: "/etc/kizuna/store.yaml",
            allow: &allow,
            store_url: &store_url,
            agent_extra: "",
            // Before enrollment, over the underlay: the image's own (disabled) agent unit.
            hosted_by_netd: false,
        },
    );
    eprintln!(
        "images: {} files from the site's export in the centre's store in {:.1} s",
        up.files,
        up.took.as_secs_f64()
    );

    // Provisioning as provisioning/README.md describes it.
    let enroll_started = Instant::now();
    centre
        .run_ok(&format!(
            "set -e; sed -i 's|^public_url: .*|public_url: https://{CENTRE_IP}:9443|' /etc/kizuna/registry.yaml; \
             systemctl restart kizuna-registry"
        ))
        .expect("setting the registry's public URL");
    centre.run_ok(&retry("curl -sfk --max-time 5 https://127.0.0.1:9443/v1/health >/dev/null", 30)).unwrap();
    centre.write_file("/etc/kizuna/mesh.yaml", &policy()).unwrap();
    centre
        .run_ok("runuser -u kizuna -- /usr/local/bin/kizuna policy apply /etc/kizuna/mesh.yaml")
        .expect("kizuna policy apply");
    let centre_token = provision(centre, "centre");
    let site_token = provision(centre, "site-a");
    // The centre's own router first (it carries the upload segment's centre service), then the site.
    centre.run_ok(&format!("netd enroll {centre_token}")).expect("netd enroll on the centre");
    // The registry and SSH run on the centre's router itself: its site file admits them from the
    // underlay (images/README.md), or netd's input chain would close them.
    centre
        .run_ok(
            "set -e; grep -q '^admit_underlay: \\[\\]$' /etc/netd/site.yaml; \
             sed -i 's/^admit_underlay: .*/admit_underlay: [{ proto: tcp, port: 9443 }, { proto: tcp, port: 22 }]/' /etc/netd/site.yaml",
        )
        .expect("admitting the registry and ssh on the centre");
    site.run_ok(&format!("netd enroll {site_token}")).expect("netd enroll on site-a, over the underlay");
    lab.on_each(|vm| {
        vm.run_ok("systemctl start netd")
            .unwrap_or_else(|e| panic!("{}: systemctl start netd: {e}", vm.name()))
    });
    for vm in [centre, site] {
        assert_started_by_systemd(vm, "netd", "netd", "root");
        vm.run_ok_with_timeout(
            &retry("nft list table inet kizuna >/dev/null 2>&1", 90),
            Duration::from_secs(120),
        )
        .unwrap_or_else(|e| {
            panic!("{}: netd loaded no nftables table kizuna: {e}\n{}", vm.name(), netd_diagnosis(vm))
        });
    }
    // WireGuard between the two routers, over the underlay.
    let handshake = site.run_ok_with_timeout(
        &retry("wg show kzw-upload latest-handshakes 2>/dev/null | awk '$2 > 0 {f=1} END {exit !f}'", 90),
        Duration::from_secs(120),
    );
    if let Err(e) = handshake {
        panic!(
            "site-a: no WireGuard handshake with the centre on kzw-upload: {e}\nsite-a:\n{}\ncentre:\n{}",
            netd_diagnosis(site),
            netd_diagnosis(centre)
        );
    }
    // With netd's ruleset loaded on the centre, the sites still reach its registry and SSH.
    site.run_ok(&format!("curl -sfk --max-time 10 https://{CENTRE_IP}:9443/v1/health >/dev/null"))
        .unwrap_or_else(|e| panic!("site-a: the registry is closed once netd runs on the centre: {e}"));
    let over_ssh = site
        .run_ok(&format!("ssh -o BatchMode=yes -o ConnectTimeout=20 root@{CENTRE_IP} cat /etc/kizuna-image"))
        .unwrap_or_else(|e| panic!("site-a: ssh to the centre is closed once netd runs there: {e}"));
    assert_eq!(over_ssh.trim(), "centre");
    let closed = site.run(&format!("curl -s --max-time 5 http://{CENTRE_IP}:8440/ >/dev/null"));
    assert_ne!(closed.map(|o| o.code).unwrap_or(0), 0, "the store's port is open on the centre's underlay");
    let status = site.run_ok("netd status").unwrap();
    eprintln!(
        "images: policy, provisioning, enrollment and a WireGuard handshake in {:.1} s\n{status}",
        enroll_started.elapsed().as_secs_f64()
    );
    eprintln!("images: total {:.1} s", started.elapsed().as_secs_f64());
}
