//! A client of the control socket: the CLI talks to the daemon only through this.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use clearskies_actors::control::cmd::{Chunk, End, Request};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// How long a command may take before the CLI gives up on the daemon.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The exit status of a command whose connection to the daemon broke off (the daemon
/// stopped, crashed or restarted in the middle of it): never success, and not the plain
/// failure either, so that `clearskies wait PATH && backup` cannot go ahead on it.
pub(crate) const EXIT_CONNECTION_LOST: u8 = 5;

/// The connection to the daemon broke off in the middle of a command. Carries the reason
/// as text, not the `io::Error`, so that a broken control socket is never mistaken for a
/// closed stdout (which ends a command quietly, with success).
#[derive(Debug)]
pub(crate) struct ConnectionLost(String);

impl std::fmt::Display for ConnectionLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lost the connection to the daemon ({}): it stopped or restarted; see its log", self.0)
    }
}

impl std::error::Error for ConnectionLost {}

/// A socket error as [`ConnectionLost`], except a timeout, which says so.
fn lost(e: std::io::Error) -> anyhow::Error {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            anyhow::anyhow!("the daemon did not answer in time ({e})")
        }
        _ => ConnectionLost(e.to_string()).into(),
    }
}

/// One connection to the control socket.
pub(crate) struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connects and checks the handshake line. A missing or dead socket says, in one line,
    /// that the daemon is not running and how to start it.
    pub(crate) fn connect(socket: &Path) -> anyhow::Result<Self> {
        let stream = match UnixStream::connect(socket) {
            Ok(s) => s,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
                bail!(
                    "the daemon is not running (no control socket at {}); start it with `clearskies start`",
                    socket.display()
                );
            }
            Err(e) => return Err(anyhow::Error::from(e).context(format!("connecting to {}", socket.display()))),
        };
        stream.set_read_timeout(Some(DEFAULT_TIMEOUT)).context("configuring the control socket")?;
        let writer = stream.try_clone().context("configuring the control socket")?;
        let mut client = Client { reader: BufReader::new(stream), writer };
        let hello = client.read_line().context("reading the daemon's greeting")?;
        if hello.get("service").and_then(Value::as_str) != Some(clearskies_actors::control::SERVICE) {
            bail!("{} is not a ClearSkies control socket", socket.display());
        }
        Ok(client)
    }

    /// Allows the next answers to take up to `timeout` (for commands that wait on peers).
    pub(crate) fn set_timeout(&mut self, timeout: Duration) -> anyhow::Result<()> {
        self.writer.set_read_timeout(Some(timeout)).context("configuring the control socket")
    }

    fn read_line(&mut self) -> anyhow::Result<Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).map_err(lost)? == 0 {
            return Err(ConnectionLost("it closed the connection".into()).into());
        }
        Ok(serde_json::from_str(&line)?)
    }

    /// Sends one command and returns its raw response, `error` responses included.
    pub(crate) fn request_raw(&mut self, command: &Request) -> anyhow::Result<Value> {
        let mut line = serde_json::to_vec(command)?;
        line.push(b'\n');
        self.writer.write_all(&line).map_err(lost)?;
        self.read_line().context("reading the daemon's answer")
    }

    /// Sends one command and returns its response; an `error` response becomes an error.
    pub(crate) fn request(&mut self, command: &Request) -> anyhow::Result<Value> {
        let response = self.request_raw(command)?;
        if let Some(code) = response.get("error").and_then(Value::as_str) {
            let message = response.get("message").and_then(Value::as_str).unwrap_or("");
            bail!("{message} ({code})");
        }
        Ok(response)
    }

    /// [`Client::request`], its answer read as a `T`.
    pub(crate) fn request_as<T: DeserializeOwned>(&mut self, command: &Request) -> anyhow::Result<T> {
        answer_as(&self.request(command)?)
    }

    /// After a `read_file` header: copies exactly `length` raw bytes to `out`. Fewer (the
    /// daemon closed the stream) is an error.
    pub(crate) fn copy_bytes(&mut self, length: u64, out: &mut dyn Write) -> anyhow::Result<()> {
        let copied = std::io::copy(&mut (&mut self.reader).take(length), out).context("reading the file's bytes")?;
        if copied < length {
            bail!("the stream broke off after {copied} of {length} bytes (see the daemon's log)");
        }
        Ok(())
    }

    /// After a framed `read_file` header (`"framed": true`): copies the pieces (a line
    /// `{"chunk": N}`, then N bytes) to `out` up to the end line. An error line, or anything
    /// but exactly `length` bytes, is an error that says why.
    pub(crate) fn copy_frames(&mut self, length: u64, out: &mut dyn Write) -> anyhow::Result<()> {
        let mut copied = 0u64;
        let broke =
            |copied: u64| format!("the stream broke off after {copied} of {length} bytes (see the daemon's log)");
        loop {
            let line = self.read_line().with_context(|| broke(copied))?;
            if let Ok(Chunk { chunk }) = serde_json::from_value(line.clone()) {
                let n = u64::try_from(chunk).unwrap_or(u64::MAX);
                if copied.checked_add(n).is_none_or(|c| c > length) {
                    bail!("the daemon sent more than the {length} bytes it announced");
                }
                let got = std::io::copy(&mut (&mut self.reader).take(n), out).context("writing the file's bytes")?;
                copied += got;
                if got < n {
                    bail!(broke(copied));
                }
            } else if let Ok(End { end: true }) = serde_json::from_value(line.clone()) {
                if copied != length {
                    bail!(broke(copied));
                }
                return Ok(());
            } else if let Some(code) = line.get("error").and_then(Value::as_str) {
                let message = line.get("message").and_then(Value::as_str).unwrap_or("");
                bail!("{message} ({code}); {copied} of {length} bytes were written");
            } else {
                bail!("the daemon's stream holds an unexpected line: {line}");
            }
        }
    }
}

/// An answer read as its type (`T`, one of the answers in `control::cmd`). Commands with
/// `--json` print the answer as it came, and read it as a `T` otherwise.
pub(crate) fn answer_as<T: DeserializeOwned>(answer: &Value) -> anyhow::Result<T> {
    T::deserialize(answer).context(
        "the daemon's answer is not what this command expects: is the running daemon another version \
         of clearskies? (`clearskies stop`, then `clearskies start`, runs this one)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daemon that greets, then goes away: the next command is a lost connection (not a
    /// broken pipe, which `main` would take for a closed stdout and answer with success).
    #[test]
    fn a_daemon_that_goes_away_is_a_lost_connection() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("control");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let hello = serde_json::json!({ "service": clearskies_actors::control::SERVICE });
            s.write_all(format!("{hello}\n").as_bytes()).unwrap();
        });
        let mut client = Client::connect(&socket).unwrap();
        server.join().unwrap();
        // The first request may still be written into the socket buffer (then the read
        // finds the end); the next one finds the pipe broken. Both are lost connections.
        for _ in 0..2 {
            let e = client.request(&Request::ListShares).unwrap_err();
            assert!(e.downcast_ref::<ConnectionLost>().is_some(), "{e:#}");
            let io = e.chain().filter_map(|c| c.downcast_ref::<std::io::Error>()).count();
            assert_eq!(io, 0, "no io::Error in the chain: {e:#}");
        }
    }
}
