//! One guest: a QEMU process (software emulation) in the underlay namespace, its serial console log,
//! and its command channel.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::artefacts::{Artefacts, GuestInit};
use crate::channel::{Channel, ChannelFailure, Output};
use crate::error::{LabError, Result};

/// How long a command may run when the caller does not say.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// What to boot.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// Hostname, and the name tests use for the guest.
    pub name: String,
    /// The static underlay address on eth0, with its prefix length, e.g. `10.255.0.11/24`.
    pub underlay: String,
    pub memory_mb: u32,
    /// `-icount shift=N,sleep=off`: the guest clock counts emulated instructions (2^N ns each)
    /// instead of following the host's, so timings measured inside the guest do not depend on
    /// how busy the host is (benchmarks). None: the guest clock is the host's.
    pub icount_shift: Option<u8>,
    /// Appended to the kernel command line (e.g. a systemd credential for an image).
    pub kernel_args: Vec<String>,
}

impl VmSpec {
    pub fn new(name: &str, underlay: &str) -> Self {
        VmSpec {
            name: name.to_string(),
            underlay: underlay.to_string(),
            memory_mb: 256,
            icount_shift: None,
            kernel_args: Vec::new(),
        }
    }
}

/// A running guest; QEMU is killed on drop.
pub struct Vm {
    spec: VmSpec,
    pub(crate) tap: String,
    qemu: Mutex<Child>,
    channel: Mutex<Option<Channel>>,
    socket: PathBuf,
    console_log: PathBuf,
    qemu_log: PathBuf,
    started: Instant,
    boot_time: Mutex<Option<Duration>>,
}

impl Vm {
    /// Starts QEMU for `spec` inside namespace `netns`, on tap device `tap`.
    pub(crate) fn spawn(
        spec: VmSpec,
        index: usize,
        artefacts: &Artefacts,
        netns: &str,
        tap: &str,
        socket_dir: &Path,
        log_dir: &Path,
    ) -> Result<Self> {
        let socket = socket_dir.join(format!("{index}.sock"));
        let console_log = log_dir.join(format!("{}.console.log", spec.name));
        let qemu_log = log_dir.join(format!("{}.qemu.log", spec.name));
        let qemu_out = std::fs::File::create(&qemu_log)
            .map_err(|e| LabError::io(format!("creating {}", qemu_log.display()), e))?;
        let qemu_err =
            qemu_out.try_clone().map_err(|e| LabError::io("duplicating the qemu log handle", e))?;
        let append = kernel_command_line(&spec, artefacts.init);
        let mut cmd = Command::new("setpriv");
        // If the test process dies without dropping the lab, the kernel kills QEMU anyway.
        cmd.args(["--pdeathsig", "KILL", "ip", "netns", "exec", netns])
            .arg("qemu-system-x86_64")
            .args(["-accel", "tcg", "-cpu", "max", "-smp", "1", "-nodefaults"])
            .args(["-display", "none", "-no-reboot", "-monitor", "none"])
            .arg("-m")
            .arg(spec.memory_mb.to_string())
            .arg("-kernel")
            .arg(&artefacts.kernel)
            .arg("-initrd")
            .arg(&artefacts.initrd)
            .arg("-append")
            .arg(&append)
            .arg("-serial")
            .arg(format!("file:{}", console_log.display()))
            .args(["-device", "virtio-serial-pci"])
            .arg("-chardev")
            .arg(format!("socket,id=cmd,path={},server=on,wait=off", socket.display()))
            .args(["-device", "virtserialport,chardev=cmd,name=lab.cmd"])
            .args(["-device", "virtio-rng-pci"])
            .arg("-netdev")
            .arg(format!("tap,id=n0,ifname={tap},script=no,downscript=no"))
            .arg("-device")
            .arg(format!("virtio-net-pci,netdev=n0,romfile=,mac=52:54:00:4b:5a:{:02x}", index + 1))
            .stdin(Stdio::null())
            .stdout(qemu_out)
            .stderr(qemu_err);
        if let Some(n) = spec.icount_shift {
            cmd.arg("-icount").arg(format!("shift={n},sleep=off"));
        }
        let started = Instant::now();
        let qemu = cmd.spawn().map_err(|e| LabError::io("starting qemu-system-x86_64 under setpriv", e))?;
        Ok(Vm {
            spec,
            tap: tap.to_string(),
            qemu: Mutex::new(qemu),
            channel: Mutex::new(None),
            socket,
            console_log,
            qemu_log,
            started,
            boot_time: Mutex::new(None),
        })
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The underlay address without its prefix length.
    pub fn underlay_ip(&self) -> &str {
        self.spec.underlay.split('/').next().unwrap_or(&self.spec.underlay)
    }

    pub fn console_log(&self) -> &Path {
        &self.console_log
    }

    /// From QEMU's start to the first command answered; `None` before [`Vm::wait_ready`] returned.
    pub fn boot_time(&self) -> Option<Duration> {
        *lock(&self.boot_time)
    }

    /// Connects to QEMU's end of the command channel (QEMU creates the socket a moment after it starts).
    /// Connecting early matters: while no host is connected, the guest agent's reads end at once.
    pub fn connect(&self, timeout: Duration) -> Result<()> {
        let mut guard = lock(&self.channel);
        if guard.is_some() {
            return Ok(());
        }
        let deadline = self.started + timeout;
        let stream = loop {
            self.check_alive()?;
            match UnixStream::connect(&self.socket) {
                Ok(stream) => break stream,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                Err(_) => return Err(self.timeout("QEMU's command socket", timeout)),
            }
        };
        let channel = Channel::new(stream)
            .map_err(|e| LabError::io(format!("{}: cloning the channel socket", self.name()), e))?;
        *guard = Some(channel);
        Ok(())
    }

    /// Waits until the guest has booted and answers on its command channel.
    pub fn wait_ready(&self, timeout: Duration) -> Result<Duration> {
        if let Some(boot) = self.boot_time() {
            return Ok(boot);
        }
        self.connect(timeout)?;
        let deadline = self.started + timeout;
        let mut guard = lock(&self.channel);
        let channel = guard.as_mut().expect("connected above");
        // A probe waits in the socket until the agent opens its port. Probes are repeated, so that one
        // lost while the agent (re)started cannot stall the boot; replies to older probes are skipped.
        'probe: loop {
            let id = channel
                .send("echo ready", Duration::from_secs(30))
                .map_err(|f| self.channel_error(f, timeout))?;
            let resend = Instant::now() + Duration::from_secs(5);
            loop {
                self.check_alive()?;
                let step = (Instant::now() + Duration::from_millis(500)).min(deadline);
                match channel.receive(id, step) {
                    Ok(out) if out.stdout.trim() == "ready" => break 'probe,
                    Ok(out) => {
                        return Err(LabError::Protocol {
                            vm: self.name().to_string(),
                            detail: format!("readiness probe answered {out:?}"),
                        });
                    }
                    Err(ChannelFailure::TimedOut) if Instant::now() >= deadline => {
                        return Err(self.timeout("the guest agent's first answer", timeout));
                    }
                    Err(ChannelFailure::TimedOut) if Instant::now() >= resend => continue 'probe,
                    Err(ChannelFailure::TimedOut) => continue,
                    Err(f) => return Err(self.channel_error(f, timeout)),
                }
            }
        }
        drop(guard);
        let boot = self.started.elapsed();
        *lock(&self.boot_time) = Some(boot);
        Ok(boot)
    }

    /// Runs `script` with the guest's `sh` (dash) and returns what it printed and its exit code.
    pub fn run(&self, script: &str) -> Result<Output> {
        self.run_with_timeout(script, DEFAULT_COMMAND_TIMEOUT)
    }

    /// Like [`Vm::run`], but the guest kills the script after `timeout` (exit code 137).
    pub fn run_with_timeout(&self, script: &str, timeout: Duration) -> Result<Output> {
        let mut guard = lock(&self.channel);
        let channel = match guard.as_mut() {
            Some(channel) if self.boot_time().is_some() => channel,
            _ => {
                return Err(LabError::Protocol {
                    vm: self.name().to_string(),
                    detail: "not ready yet: call wait_ready first".into(),
                });
            }
        };
        // The guest enforces `timeout`; the host allows a margin for an emulated guest's slowness.
        let deadline = Instant::now() + timeout + Duration::from_secs(15);
        match channel.request(script, timeout, deadline) {
            Ok(out) => Ok(out),
            Err(f) => {
                drop(guard);
                self.check_alive()?;
                Err(self.channel_error(f, timeout))
            }
        }
    }

    /// Runs `script` and returns its stdout, or fails with everything it printed unless it exits 0.
    pub fn run_ok(&self, script: &str) -> Result<String> {
        let out = self.run(script)?;
        self.expect_success(script, out)
    }

    /// [`Vm::run_ok`] with a timeout.
    pub fn run_ok_with_timeout(&self, script: &str, timeout: Duration) -> Result<String> {
        let out = self.run_with_timeout(script, timeout)?;
        self.expect_success(script, out)
    }

    /// Writes `contents` to `path` in the guest (parent directories are created).
    pub fn write_file(&self, path: &str, contents: &str) -> Result<()> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(contents.as_bytes());
        let script = format!(
            "mkdir -p \"$(dirname '{path}')\" && printf '%s' '{b64}' | base64 -d > '{path}.lab-tmp' && mv '{path}.lab-tmp' '{path}'"
        );
        self.run_ok(&script).map(|_| ())
    }

    /// The last few kilobytes of the serial console.
    pub fn console_tail(&self) -> String {
        tail(&self.console_log, 4000)
    }

    fn expect_success(&self, script: &str, out: Output) -> Result<String> {
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(LabError::CommandFailed {
                vm: self.name().to_string(),
                script: script.to_string(),
                code: out.code,
                stdout: out.stdout,
                stderr: out.stderr,
            })
        }
    }

    fn check_alive(&self) -> Result<()> {
        let mut qemu = lock(&self.qemu);
        match qemu.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(LabError::QemuExited {
                vm: self.name().to_string(),
                status: status.to_string(),
                log: self.console_log.clone(),
                console_tail: format!(
                    "{}\n-- qemu output --\n{}",
                    self.console_tail(),
                    tail(&self.qemu_log, 2000)
                ),
            }),
            Err(e) => Err(LabError::io(format!("{}: waiting for qemu", self.name()), e)),
        }
    }

    fn timeout(&self, what: &str, timeout: Duration) -> LabError {
        LabError::Timeout {
            vm: self.name().to_string(),
            what: what.to_string(),
            secs: timeout.as_secs(),
            log: self.console_log.clone(),
            console_tail: self.console_tail(),
        }
    }

    fn channel_error(&self, failure: ChannelFailure, timeout: Duration) -> LabError {
        match failure {
            ChannelFailure::TimedOut => self.timeout("a command's reply", timeout),
            ChannelFailure::Broken(detail) => LabError::Protocol { vm: self.name().to_string(), detail },
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let qemu = self.qemu.get_mut().unwrap_or_else(|p| p.into_inner());
        let _ = qemu.kill();
        let _ = qemu.wait();
    }
}

/// The kernel command line: console, and the guest's name and static underlay address in the form
/// its init reads (the lab's `guest/rc`, or systemd and the image's `kizuna-underlay-generator`).
fn kernel_command_line(spec: &VmSpec, init: GuestInit) -> String {
    let base = "console=ttyS0 quiet panic=-1 no_timer_check";
    let line = match init {
        GuestInit::Busybox => format!("{base} lab.name={} lab.ip={}", spec.name, spec.underlay),
        // net.ifnames=0 keeps the name eth0 that kizuna.underlay= names.
        GuestInit::Systemd => format!(
            "{base} systemd.hostname={} net.ifnames=0 kizuna.underlay=eth0:{}",
            spec.name, spec.underlay
        ),
    };
    spec.kernel_args.iter().fold(line, |line, arg| format!("{line} {arg}"))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The last `max` bytes of a log file, or a note that it cannot be read.
fn tail(path: &Path, max: u64) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return format!("({} not readable)", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}
