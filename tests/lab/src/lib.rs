//! The QEMU lab: guests on Debian's cloud kernel (real VRF and WireGuard), joined by a bridge inside a
//! network namespace the lab creates, driven through a command channel on a virtio-serial port.
//!
//! ```no_run
//! use kizuna_lab::{Artefacts, Lab, VmSpec};
//! let artefacts = Artefacts::build("example", &[]).unwrap();
//! let lab = Lab::start("example", &artefacts, vec![VmSpec::new("a", "10.255.0.11/24")]).unwrap();
//! assert_eq!(lab.vm("a").unwrap().run_ok("echo hi").unwrap(), "hi\n");
//! ```
//! Everything (QEMU processes, taps, the bridge, the namespace) is removed when the [`Lab`] drops.
//! See README.md for the layout and the guest image.

mod artefacts;
mod channel;
pub mod deploy;
mod error;
pub mod probe;
pub mod screenshot;
pub mod smtp;
mod underlay;
mod vm;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use artefacts::{Artefacts, GuestInit, cache_dir, lab_dir};
pub use channel::Output;
pub use error::{LabError, Result};
pub use underlay::NETNS_PREFIX;
pub use vm::{DEFAULT_COMMAND_TIMEOUT, Vm, VmSpec};

use underlay::Underlay;

/// How long guests may take to boot when they all start together on two emulated cores. 180 s
/// was too short for upload_mesh's six guests on 2026-11-27 (the centre's command channel did not
/// answer in three runs, with and without that day's image change, on a host that ran every CI
/// step at half its usual speed); with 360 s the next run's six guests all answered, at 201 s.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(360);

/// Running guests and their underlay. Field order matters: guests (QEMU) go before the namespace.
pub struct Lab {
    vms: Vec<Vm>,
    underlay: Underlay,
    log_dir: PathBuf,
    _sockets: tempfile::TempDir,
    boot_time: Duration,
}

impl Lab {
    /// Boots every guest in `specs` on one underlay bridge and waits until all answer.
    /// Console logs go to `.cache/runs/<name>/`, replacing the previous run's.
    pub fn start(name: &str, artefacts: &Artefacts, specs: Vec<VmSpec>) -> Result<Lab> {
        Lab::start_with(name, specs.into_iter().map(|spec| (spec, artefacts.clone())).collect())
    }

    /// Like [`Lab::start`], each guest booting its own artefacts (e.g. a centre and a site image).
    pub fn start_with(name: &str, guests: Vec<(VmSpec, Artefacts)>) -> Result<Lab> {
        remove_stale_namespaces();
        let started = Instant::now();
        let log_dir = cache_dir().join("runs").join(name);
        if log_dir.exists() {
            std::fs::remove_dir_all(&log_dir)
                .map_err(|e| LabError::io(format!("clearing {}", log_dir.display()), e))?;
        }
        std::fs::create_dir_all(&log_dir)
            .map_err(|e| LabError::io(format!("creating {}", log_dir.display()), e))?;
        // Unix socket paths are limited to 108 bytes, so they live in a short temporary directory.
        let sockets = tempfile::Builder::new()
            .prefix("kzlab")
            .tempdir()
            .map_err(|e| LabError::io("creating the socket directory", e))?;
        let underlay = Underlay::create()?;
        let mut vms = Vec::with_capacity(guests.len());
        for (index, (spec, artefacts)) in guests.into_iter().enumerate() {
            let tap = format!("tap{index}");
            underlay.add_tap(&tap)?;
            vms.push(Vm::spawn(spec, index, &artefacts, underlay.netns(), &tap, sockets.path(), &log_dir)?);
        }
        let lab = Lab { vms, underlay, log_dir, _sockets: sockets, boot_time: Duration::ZERO };
        for vm in &lab.vms {
            vm.connect(BOOT_TIMEOUT)?;
        }
        for vm in &lab.vms {
            vm.wait_ready(BOOT_TIMEOUT)?;
        }
        Ok(Lab { boot_time: started.elapsed(), ..lab })
    }

    /// The guest named `name`.
    pub fn vm(&self, name: &str) -> Result<&Vm> {
        self.vms.iter().find(|vm| vm.name() == name).ok_or_else(|| LabError::NoSuchVm(name.to_string()))
    }

    pub fn vms(&self) -> &[Vm] {
        &self.vms
    }

    /// Runs `f` on every guest at once, one thread each, and returns the results in guest order.
    /// Guests are emulated on one host thread each, so this keeps both cores busy where running them
    /// one after the other would leave one idle. A panic in `f` is re-raised here, message intact.
    pub fn on_each<T: Send>(&self, f: impl Fn(&Vm) -> T + Sync) -> Vec<T> {
        let f = &f;
        std::thread::scope(|scope| {
            let handles: Vec<_> = self.vms.iter().map(|vm| scope.spawn(move || f(vm))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|payload| std::panic::resume_unwind(payload)))
                .collect()
        })
    }

    /// Wall time from the first QEMU start until every guest answered.
    pub fn boot_time(&self) -> Duration {
        self.boot_time
    }

    /// Where the guests' console and QEMU logs are kept (they survive the lab, for post-mortems).
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// The underlay namespace's name.
    pub fn netns(&self) -> &str {
        self.underlay.netns()
    }

    /// Gives the underlay bridge address `cidr`: the host's own foot on the underlay, for servers the
    /// test runs inside the namespace (e.g. [`smtp::SmtpSink`]). Nothing routes it further.
    pub fn add_underlay_address(&self, cidr: &str) -> Result<()> {
        self.underlay.add_bridge_address(cidr)
    }

    /// Cuts (`connected == false`) or restores a guest's underlay link.
    pub fn set_underlay_link(&self, vm: &str, connected: bool) -> Result<()> {
        let tap = &self.vm(vm)?.tap;
        self.underlay.set_tap_up(tap, connected)
    }
}

/// Whether this process may run the lab: root and `qemu-system-x86_64` on PATH. When it may not, a run
/// under CI (env `CI` set) panics, so the lab can never be skipped there; elsewhere it says why and
/// returns false so the caller can return early.
pub fn lab_available() -> bool {
    let reason = if !is_root() {
        Some("the QEMU lab needs root (network namespaces and tap devices)")
    } else if !on_path("qemu-system-x86_64") {
        Some("qemu-system-x86_64 is not installed (Debian package qemu-system-x86)")
    } else {
        None
    };
    match reason {
        None => true,
        Some(reason) if std::env::var_os("CI").is_some() => {
            panic!("{reason}; under CI the lab must run, not skip")
        }
        Some(reason) => {
            eprintln!("skipping the QEMU lab: {reason}");
            false
        }
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Deletes lab namespaces left by test processes that died without cleaning up (their pid is gone).
fn remove_stale_namespaces() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(NETNS_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next() else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::process::Command::new("ip").args(["netns", "delete", &name]).status();
        }
    }
}
