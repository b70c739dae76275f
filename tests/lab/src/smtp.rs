//! The test's own SMTP server for the guests to mail: aiosmtpd (`python3-aiosmtpd`, installed by
//! tests/run-all) listening on an address of the lab's underlay bridge, inside the lab's namespace,
//! writing every mail it accepts into a maildir on the host (kept with the run's logs).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Lab;
use crate::error::{LabError, Result};

/// A running aiosmtpd; killed on drop (drop it before the [`Lab`]).
pub struct SmtpSink {
    maildir: PathBuf,
    child: Child,
}

impl SmtpSink {
    /// Gives the underlay bridge `addr` (in the guests' /24) and serves SMTP on `addr:port`; the
    /// maildir is `<lab log dir>/maildir`. Waits until the port accepts connections.
    pub fn start(lab: &Lab, addr: &str, port: u16) -> Result<SmtpSink> {
        lab.add_underlay_address(&format!("{addr}/24"))?;
        let maildir = lab.log_dir().join("maildir");
        let child = Command::new("ip")
            .args(["netns", "exec", lab.netns(), "python3", "-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("{addr}:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| LabError::io("starting aiosmtpd (package python3-aiosmtpd)", e))?;
        let sink = SmtpSink { maildir, child };
        let started = Instant::now();
        loop {
            let up = Command::new("ip")
                .args(["netns", "exec", lab.netns(), "nc", "-z", "-w", "1", addr, &port.to_string()])
                .status()
                .map_err(|e| LabError::io("running nc (package netcat-openbsd)", e))?;
            if up.success() {
                return Ok(sink);
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(LabError::Setup {
                    step: format!("aiosmtpd on {addr}:{port}"),
                    status: "not listening after 30 s".into(),
                    stderr: String::new(),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every mail received so far (headers and body, quoted-printable soft line breaks joined so
    /// that long lines read whole), oldest first.
    pub fn mails(&self) -> Vec<String> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = ["new", "cur"]
            .iter()
            .filter_map(|d| std::fs::read_dir(self.maildir.join(d)).ok())
            .flatten()
            .flatten()
            .map(|e| (e.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH), e.path()))
            .collect();
        files.sort();
        files
            .iter()
            .filter_map(|(_, p)| std::fs::read_to_string(p).ok())
            .map(|m| m.replace("=\r\n", "").replace("=\n", ""))
            .collect()
    }

    /// Waits up to `timeout` for a mail for which `matches` holds; returns it.
    pub fn wait_for(&self, timeout: Duration, matches: impl Fn(&str) -> bool) -> Option<String> {
        let started = Instant::now();
        loop {
            if let Some(m) = self.mails().into_iter().find(|m| matches(m)) {
                return Some(m);
            }
            if started.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    pub fn maildir(&self) -> &Path {
        &self.maildir
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
