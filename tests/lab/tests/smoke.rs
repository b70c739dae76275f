//! The lab's own proof that its facts hold: three guests on Debian's cloud kernel load `vrf` and
//! `wireguard`, build a WireGuard full mesh enslaved to a VRF with `ip` and `wg`, complete handshakes
//! and carry LAN-to-LAN pings through the tunnels, while the VRF keeps the tunnel away from the
//! underlay's routing table.

use std::time::Instant;

use kizuna_lab::{Artefacts, Lab, Vm, VmSpec, lab_available};

const GUESTS: u8 = 3;

fn underlay(i: u8) -> String {
    format!("10.255.0.{}", 10 + i)
}

/// Shell that pings `target` once a second until it answers, for at most `secs` seconds.
fn ping_until(prefix: &str, target: &str, secs: u32) -> String {
    format!(
        "i=0; while [ $i -lt {secs} ]; do {prefix} ping -c 1 -W 1 {target} >/dev/null 2>&1 && exit 0; i=$((i+1)); done; exit 1"
    )
}

/// The guest's number: `g2` is 2.
fn guest_number(vm: &Vm) -> u8 {
    vm.name().trim_start_matches('g').parse().expect("guests are named g<N>")
}

fn configure_mesh(vm: &Vm, me: u8, public_keys: &[String]) {
    let mut script = format!(
        "set -e
sysctl -qw net.ipv4.ip_forward=1
ip link add seg type vrf table 10
ip link set seg up
ip link add wg0 type wireguard
wg set wg0 listen-port 51820 private-key /run/wg.key
ip link set wg0 master seg
ip addr add 10.77.0.{me}/24 dev wg0
ip link set wg0 up
ip netns add lan
ip link add lan0 type veth peer name eth0 netns lan
ip link set lan0 master seg
ip addr add 10.78.{me}.1/24 dev lan0
ip link set lan0 up
ip -n lan link set lo up
ip -n lan addr add 10.78.{me}.2/24 dev eth0
ip -n lan link set eth0 up
ip -n lan route add default via 10.78.{me}.1
"
    );
    for peer in 1..=GUESTS {
        if peer == me {
            continue;
        }
        let key = &public_keys[usize::from(peer - 1)];
        script.push_str(&format!(
            "wg set wg0 peer {key} endpoint {}:51820 allowed-ips 10.77.0.{peer}/32,10.78.{peer}.0/24\n\
             ip route add 10.78.{peer}.0/24 dev wg0 table 10\n",
            underlay(peer)
        ));
    }
    vm.run_ok(&script).unwrap_or_else(|e| panic!("configuring {}: {e}", vm.name()));
}

#[test]
#[ignore = "QEMU lab: needs root and qemu; run tests/lab/run"]
fn three_guests_mesh_over_kernel_wireguard_inside_vrfs() {
    if !lab_available() {
        return;
    }
    let total = Instant::now();
    let artefacts = Artefacts::build("smoke", &[]).expect("building the guest image");
    let specs = (1..=GUESTS).map(|i| VmSpec::new(&format!("g{i}"), &format!("{}/24", underlay(i)))).collect();
    let lab = Lab::start("smoke", &artefacts, specs).expect("booting the guests");
    let booted = total.elapsed();

    // All guests at once: each emulated guest keeps one host core busy.
    let public_keys: Vec<String> = lab.on_each(|vm| {
        let release = vm.run_ok("uname -r").unwrap();
        assert_eq!(release.trim(), artefacts.kernel_release);
        let key = vm
            .run_ok("modprobe vrf && modprobe wireguard && umask 077 && wg genkey > /run/wg.key && wg pubkey < /run/wg.key")
            .unwrap_or_else(|e| panic!("{e}"));
        key.trim().to_string()
    });
    lab.on_each(|vm| configure_mesh(vm, guest_number(vm), &public_keys));

    // Every LAN host reaches every other site's LAN host through the tunnels.
    lab.on_each(|vm| {
        let me = guest_number(vm);
        for peer in (1..=GUESTS).filter(|p| *p != me) {
            let out = vm.run(&ping_until("ip netns exec lan", &format!("10.78.{peer}.2"), 30)).unwrap();
            assert!(
                out.success(),
                "LAN host of g{me} cannot ping LAN host of g{peer}; logs in {}",
                lab.log_dir().display()
            );
        }
    });
    let meshed = total.elapsed();

    for (vm, me) in lab.vms().iter().zip(1..=GUESTS) {
        // Each peer completed a handshake and carried traffic.
        let handshakes = vm.run_ok("wg show wg0 latest-handshakes").unwrap();
        let stamps: Vec<u64> =
            handshakes.lines().map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap()).collect();
        assert_eq!(stamps.len(), usize::from(GUESTS - 1), "g{me}: {handshakes}");
        assert!(stamps.iter().all(|t| *t > 0), "g{me} missing a handshake: {handshakes}");
        let transfer = vm.run_ok("wg show wg0 transfer").unwrap();
        for line in transfer.lines() {
            let rx: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
            assert!(rx > 0, "g{me} received nothing from a peer: {transfer}");
        }
        // The tunnel lives in the VRF: the default routing table knows nothing of it ...
        let peer = if me == 1 { 2 } else { 1 };
        let out = vm.run(&format!("ping -c 1 -W 1 10.77.0.{peer}")).unwrap();
        assert!(!out.success(), "g{me} reached the tunnel outside its VRF");
        // ... and the LAN host, inside the VRF, cannot reach the underlay.
        let out = vm.run(&format!("ip netns exec lan ping -c 1 -W 1 {}", underlay(peer))).unwrap();
        assert!(!out.success(), "g{me}'s LAN host reached the underlay");
    }

    eprintln!(
        "lab smoke: kernel {}, image built in {:.1} s, {} guests booted in {:.1} s (each: {}), \
         mesh pinging at {:.1} s, total {:.1} s",
        artefacts.kernel_release,
        artefacts.build_time.as_secs_f64(),
        GUESTS,
        lab.boot_time().as_secs_f64(),
        lab.vms()
            .iter()
            .map(|vm| format!("{:.1} s", vm.boot_time().unwrap().as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", "),
        meshed.as_secs_f64(),
        total.elapsed().as_secs_f64()
    );
    let _ = booted;
}
