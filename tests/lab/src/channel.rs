//! Host side of the command channel: one line per request on the guest's virtio-serial port, and a framed
//! base64 reply, so that any bytes a command prints come back intact (see `guest/agent` for the guest side).
//!
//! Request: `ID TIMEOUT_SECS BASE64(script)\n`.
//! Reply: `@@out ID`, base64 stdout lines, `@@err ID`, base64 stderr lines, `@@end ID CODE`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// What a guest command printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    /// The exit code; 137 when the guest's `timeout` killed the command.
    pub code: i32,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

/// Why a request got no complete reply.
#[derive(Debug)]
pub(crate) enum ChannelFailure {
    /// No `@@end` before the deadline.
    TimedOut,
    /// The socket failed or closed, or the reply was not in the protocol.
    Broken(String),
}

/// A reply being read: the request id, stdout and stderr base64 so far, and which one is being read.
struct Partial {
    id: u64,
    started: bool,
    stdout: String,
    stderr: String,
    in_stderr: bool,
}

/// One connected channel; requests are strictly sequential. A reply that missed its deadline can still
/// be awaited again with [`Channel::receive`], and a reply nobody waits for any more is skipped.
pub(crate) struct Channel {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    partial: Option<Partial>,
    /// The start of a line whose end has not arrived yet.
    line: String,
}

impl Channel {
    pub(crate) fn new(stream: UnixStream) -> std::io::Result<Self> {
        let writer = stream.try_clone()?;
        Ok(Channel { reader: BufReader::new(stream), writer, next_id: 1, partial: None, line: String::new() })
    }

    /// Sends `script`, which the guest kills after `guest_timeout`, and waits until `deadline` for the reply.
    pub(crate) fn request(
        &mut self,
        script: &str,
        guest_timeout: Duration,
        deadline: Instant,
    ) -> Result<Output, ChannelFailure> {
        let id = self.send(script, guest_timeout)?;
        self.receive(id, deadline)
    }

    /// Sends `script` and returns its request id.
    pub(crate) fn send(&mut self, script: &str, guest_timeout: Duration) -> Result<u64, ChannelFailure> {
        let id = self.next_id;
        self.next_id += 1;
        let line =
            format!("{id} {} {}\n", guest_timeout.as_secs().max(1), STANDARD.encode(script.as_bytes()));
        self.writer.write_all(line.as_bytes()).map_err(|e| ChannelFailure::Broken(format!("write: {e}")))?;
        self.partial = Some(Partial {
            id,
            started: false,
            stdout: String::new(),
            stderr: String::new(),
            in_stderr: false,
        });
        Ok(id)
    }

    /// Waits until `deadline` for the reply to request `id`, the last one sent.
    pub(crate) fn receive(&mut self, id: u64, deadline: Instant) -> Result<Output, ChannelFailure> {
        let out_marker = format!("@@out {id}");
        let err_marker = format!("@@err {id}");
        let end_prefix = format!("@@end {id} ");
        loop {
            let line = self.read_line(deadline)?;
            let line = line.trim_end_matches(['\n', '\r']);
            let partial = match self.partial.as_mut() {
                Some(p) if p.id == id => p,
                _ => return Err(ChannelFailure::Broken(format!("no request {id} pending"))),
            };
            if line == out_marker {
                partial.started = true;
                partial.stdout.clear();
                partial.stderr.clear();
                partial.in_stderr = false;
            } else if line == err_marker {
                partial.in_stderr = true;
            } else if let Some(code) = line.strip_prefix(&end_prefix) {
                if !partial.started {
                    return Err(ChannelFailure::Broken(format!("reply {id} ended before it began")));
                }
                let code = code
                    .trim()
                    .parse::<i32>()
                    .map_err(|_| ChannelFailure::Broken(format!("bad exit code in `{line}`")))?;
                let output =
                    Output { stdout: decode(&partial.stdout)?, stderr: decode(&partial.stderr)?, code };
                self.partial = None;
                return Ok(output);
            } else if partial.started {
                if partial.in_stderr {
                    partial.stderr.push_str(line);
                } else {
                    partial.stdout.push_str(line);
                }
            }
            // Anything else is the tail of a reply to an earlier request that timed out: skip it.
        }
    }

    /// Reads one whole line; a line cut by the deadline is kept and completed by the next call.
    fn read_line(&mut self, deadline: Instant) -> Result<String, ChannelFailure> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ChannelFailure::TimedOut);
            }
            self.reader
                .get_ref()
                .set_read_timeout(Some(left))
                .map_err(|e| ChannelFailure::Broken(format!("set timeout: {e}")))?;
            match self.reader.read_line(&mut self.line) {
                Ok(0) => return Err(ChannelFailure::Broken("guest closed the channel".into())),
                Ok(_) if self.line.ends_with('\n') => return Ok(std::mem::take(&mut self.line)),
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(ChannelFailure::Broken(format!("read: {e}"))),
            }
        }
    }
}

fn decode(b64: &str) -> Result<String, ChannelFailure> {
    let bytes = STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| ChannelFailure::Broken(format!("bad base64 in reply: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
