//! Runs `netd-bench` (kernel WireGuard, VRF mode) inside one lab guest on Debian's cloud kernel and
//! prints its report, so that netd's README figures can be reproduced with one command:
//!
//! ```sh
//! cargo build --release -p netd --bin netd-bench
//! sudo cargo run -p kizuna-lab --example netd_bench -- target/release/netd-bench \
//!     [--runs N] [--icount SHIFT] [-- BENCH ARGS...]
//! ```
//!
//! The runs (default 3) happen one after the other in the same guest (768 MiB, one emulated CPU);
//! each starts from a clean state (the benchmark removes what it built). `--icount SHIFT` runs the
//! guest with QEMU's `-icount shift=SHIFT,sleep=off`: its clock then counts emulated instructions,
//! so the figures do not depend on the host's load (on a shared machine they otherwise do, a lot).

use std::path::PathBuf;
use std::time::Duration;

use kizuna_lab::{Artefacts, Lab, VmSpec, lab_available};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const USAGE: &str = "usage: netd_bench PATH/TO/netd-bench [--runs N] [--icount SHIFT] [-- BENCH ARGS...]";
    let mut args = std::env::args().skip(1);
    let bench = PathBuf::from(args.next().ok_or(USAGE)?);
    let mut runs = 3;
    let mut icount = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--" => break,
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).ok_or(USAGE)?,
            "--icount" => icount = Some(args.next().and_then(|v| v.parse().ok()).ok_or(USAGE)?),
            _ => return Err(USAGE.into()),
        }
    }
    let extra: Vec<String> = args.collect();
    if !bench.is_file() {
        return Err(format!(
            "{} does not exist: cargo build --release -p netd --bin netd-bench",
            bench.display()
        )
        .into());
    }
    if !lab_available() {
        return Err("the lab cannot run here (see above)".into());
    }
    let artefacts = Artefacts::build("netd-bench", &[bench.as_path()])?;
    let spec = VmSpec { memory_mb: 768, icount_shift: icount, ..VmSpec::new("bench", "10.255.0.11/24") };
    let lab = Lab::start("netd-bench", &artefacts, vec![spec])?;
    let vm = lab.vm("bench")?;
    eprintln!("guest {} booted in {:.1} s", artefacts.kernel_release, lab.boot_time().as_secs_f64());
    vm.run_ok("modprobe vrf && modprobe wireguard && modprobe veth")?;
    let cmd = format!("netd-bench --mode vrf --wireguard kernel --json {}", extra.join(" "));
    for i in 1..=runs {
        let out = vm.run_with_timeout(&format!("RUST_LOG=warn {cmd}"), Duration::from_secs(1800))?;
        println!("--- run {i} of {runs} (exit {}) ---\n{}", out.code, out.stdout);
        if out.code != 0 {
            eprintln!("{}", out.stderr);
            return Err(format!("netd-bench failed in run {i} (exit {})", out.code).into());
        }
    }
    Ok(())
}
