//! Reachability probes with real packets from "LAN hosts" (network namespaces inside a guest), run in
//! parallel inside the guest and compared with what the test expects.
//!
//! A TCP probe succeeds only when the far side's listener (see [`listen_script`]) answers with its
//! banner, so a probe cannot pass by reaching some other socket. Probes expected to get through run
//! first, retrying while tunnels come up; probes expected to be blocked run after them, once, so that
//! a tunnel still handshaking can never make a "blocked" probe pass.

use std::fmt;
use std::time::Duration;

use crate::error::Result;
use crate::vm::Vm;

/// What a probe sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// ICMP echo to an address.
    Ping(String),
    /// ICMP echo to an address, sent bound to a device (for example a VRF, from the router itself).
    PingVia(String, String),
    /// A TCP connection to an address and port whose listener answers with its banner.
    Tcp(String, u16),
}

/// One probe: from the namespace `from` in a guest (or the guest itself when `from` is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub from: String,
    pub target: Target,
    pub expect_reach: bool,
    /// Why the test expects that, shown when it fails.
    pub because: String,
}

impl Probe {
    pub fn reaches(from: &str, target: Target, because: &str) -> Self {
        Probe { from: from.to_string(), target, expect_reach: true, because: because.to_string() }
    }

    pub fn blocked(from: &str, target: Target, because: &str) -> Self {
        Probe { from: from.to_string(), target, expect_reach: false, because: because.to_string() }
    }

    fn shell(&self, retry_secs: u32) -> String {
        let prefix =
            if self.from.is_empty() { String::new() } else { format!("ip netns exec {} ", self.from) };
        let once = match &self.target {
            Target::Ping(addr) => format!("{prefix}ping -c 1 -W 2 {addr} >/dev/null 2>&1"),
            Target::PingVia(addr, dev) => format!("{prefix}ping -c 1 -W 2 -I {dev} {addr} >/dev/null 2>&1"),
            Target::Tcp(addr, port) => format!(
                "{prefix}nc -w 2 {addr} {port} </dev/null 2>/dev/null | grep -q '^{}$'",
                banner(*port)
            ),
        };
        if retry_secs == 0 {
            once
        } else {
            format!(
                "t0=$(date +%s); until {once}; do [ $(( $(date +%s) - t0 )) -ge {retry_secs} ] && exit 1; sleep 1; done"
            )
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Ping(addr) => write!(f, "ping {addr}"),
            Target::PingVia(addr, dev) => write!(f, "ping {addr} via {dev}"),
            Target::Tcp(addr, port) => write!(f, "tcp {addr}:{port}"),
        }
    }
}

/// The line a lab listener on `port` answers with.
pub fn banner(port: u16) -> String {
    format!("kizuna-lab-{port}")
}

/// Shell that starts a TCP listener on `port` inside namespace `netns`, answering every connection
/// with [`banner`]. It runs detached until the guest stops.
pub fn listen_script(netns: &str, port: u16) -> String {
    format!(
        "ip netns exec {netns} setsid nc -ll -p {port} -e echo {} </dev/null >/dev/null 2>&1 &",
        banner(port)
    )
}

/// A probe whose outcome was not the expected one.
#[derive(Debug, Clone)]
pub struct Mismatch {
    pub vm: String,
    pub probe: Probe,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.probe;
        let from = if p.from.is_empty() { "router" } else { &p.from };
        write!(
            f,
            "{}/{from}: {} {} but should {} ({})",
            self.vm,
            p.target,
            if p.expect_reach { "was blocked" } else { "got through" },
            if p.expect_reach { "get through" } else { "be blocked" },
            p.because
        )
    }
}

/// Runs `probes` in `vm` and returns those whose outcome differs from the expectation. Probes
/// expected to reach retry for up to `retry`.
pub fn run_probes(vm: &Vm, probes: &[Probe], retry: Duration) -> Result<Vec<Mismatch>> {
    let mut mismatches = Vec::new();
    for expect_reach in [true, false] {
        let batch: Vec<(usize, &Probe)> =
            probes.iter().enumerate().filter(|(_, p)| p.expect_reach == expect_reach).collect();
        if batch.is_empty() {
            continue;
        }
        let retry_secs =
            if expect_reach { u32::try_from(retry.as_secs()).unwrap_or(u32::MAX).max(1) } else { 0 };
        let mut script = String::from("rm -rf /tmp/probe; mkdir -p /tmp/probe\n");
        for (i, probe) in &batch {
            script.push_str(&format!(
                "( if {}; then echo reached; else echo blocked; fi ) >/tmp/probe/{i} 2>/dev/null &\n",
                probe.shell(retry_secs)
            ));
        }
        script.push_str("wait\nfor f in /tmp/probe/*; do echo \"$(basename $f) $(cat $f)\"; done\n");
        let out = vm.run_ok_with_timeout(&script, retry + Duration::from_secs(60))?;
        for (i, probe) in &batch {
            let reached = out.lines().any(|l| l.trim() == format!("{i} reached"));
            if reached != probe.expect_reach {
                mismatches.push(Mismatch { vm: vm.name().to_string(), probe: (*probe).clone() });
            }
        }
    }
    Ok(mismatches)
}

/// Runs every guest's probes at once (`probes` by guest name) and panics listing each one that
/// disagrees with what it expects, naming the lab's log folder.
pub fn assert_probes(
    lab: &crate::Lab,
    probes: &std::collections::BTreeMap<&str, Vec<Probe>>,
    retry: Duration,
) {
    let failures: Vec<_> = lab
        .on_each(|vm| match probes.get(vm.name()) {
            Some(list) => run_probes(vm, list, retry).expect("running probes"),
            None => Vec::new(),
        })
        .into_iter()
        .flatten()
        .collect();
    assert!(
        failures.is_empty(),
        "{} probe(s) disagree (logs in {}):\n{}",
        failures.len(),
        lab.log_dir().display(),
        failures.iter().map(|m| format!("  {m}")).collect::<Vec<_>>().join("\n")
    );
}
