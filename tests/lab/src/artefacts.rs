//! The kernel and initramfs the guests boot: the lab's own busybox image (`kernel.sh` and
//! `initramfs.sh` beside this crate) or Kizuna's site and centre images (`images/build`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::error::{LabError, Result};

/// This crate's directory (`tests/lab`), where the scripts and the `.cache` directory live.
pub fn lab_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cache for downloaded kernels, built initramfs images and the logs of the last runs.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("KIZUNA_LAB_CACHE").map(PathBuf::from).unwrap_or_else(|| lab_dir().join(".cache"))
}

/// What runs as PID 1, which decides how the guest learns its name and underlay address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestInit {
    /// The lab's busybox image: `guest/rc` reads `lab.name=` and `lab.ip=`.
    Busybox,
    /// A Kizuna image: systemd reads `systemd.hostname=`, the image's generator `kizuna.underlay=`.
    Systemd,
}

/// A bootable kernel and initramfs.
#[derive(Debug, Clone)]
pub struct Artefacts {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// `uname -r` inside the guest.
    pub kernel_release: String,
    /// How long fetching (or finding the cached) kernel and building the initramfs took.
    pub build_time: Duration,
    pub init: GuestInit,
}

impl Artefacts {
    /// Fetches the cloud kernel (cached after the first time) and builds an initramfs named `name`
    /// holding `extra_programs` under `/usr/local/bin`.
    pub fn build(name: &str, extra_programs: &[&Path]) -> Result<Self> {
        let started = Instant::now();
        let kernel_dir = PathBuf::from(run_script("kernel.sh", &[])?);
        let initrd = cache_dir().join("initrd").join(format!("{name}.cpio"));
        let mut args: Vec<String> = vec![kernel_dir.display().to_string(), initrd.display().to_string()];
        for program in extra_programs {
            args.push(program.display().to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_script("initramfs.sh", &args)?;
        let kernel_release = std::fs::read_to_string(kernel_dir.join("kver"))
            .map_err(|e| LabError::io(format!("reading {}/kver", kernel_dir.display()), e))?
            .trim()
            .to_string();
        Ok(Artefacts {
            kernel: kernel_dir.join("vmlinuz"),
            initrd,
            kernel_release,
            build_time: started.elapsed(),
            init: GuestInit::Busybox,
        })
    }

    /// Kizuna's `site` or `centre` image, built (or found in its cache) by `images/build --lab`:
    /// the artefact a user deploys plus the lab's command channel, a test hook (see images/README.md).
    /// The binaries come from `KIZUNA_IMAGE_BIN_DIR` (`tests/lab/run` sets it).
    pub fn image(role: &str) -> Result<Self> {
        let started = Instant::now();
        let script = lab_dir().join("../../images/build");
        let out = Command::new(&script)
            .args(["--lab", role])
            .env("KIZUNA_LAB_CACHE", cache_dir())
            .output()
            .map_err(|e| LabError::io(format!("running {}", script.display()), e))?;
        if !out.status.success() {
            return Err(LabError::Setup {
                step: format!("{} --lab {role}", script.display()),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        let dir =
            PathBuf::from(String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim());
        let kernel_release = std::fs::read_to_string(dir.join("kver"))
            .map_err(|e| LabError::io(format!("reading {}/kver", dir.display()), e))?
            .trim()
            .to_string();
        Ok(Artefacts {
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.img"),
            kernel_release,
            build_time: started.elapsed(),
            init: GuestInit::Systemd,
        })
    }
}

/// Runs one of the lab's scripts and returns the last line it printed.
fn run_script(script: &str, args: &[&str]) -> Result<String> {
    let path = lab_dir().join(script);
    let out = Command::new(&path)
        .args(args)
        .output()
        .map_err(|e| LabError::io(format!("running {}", path.display()), e))?;
    if !out.status.success() {
        return Err(LabError::Setup {
            step: format!("{} {}", path.display(), args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string())
}
