//! The control socket (`control.md`): a unix socket speaking JSON lines.
//!
//! On connect the server sends `{"service":"ClearSkies Control","software":…,"protocol":1}`.
//! Each following line is one command object with a `type`; each gets exactly one response
//! line, in order, so clients may pipeline. Unknown commands answer
//! `{"error":"not_understood",…}`; errors carry a machine-readable `error` and a human
//! `message`. The socket is created with mode 0600 by the worker.
//!
//! Each connection is served by its own task, one request at a time, which is what keeps
//! responses in order; a slow request stalls only its own connection. The commands, their
//! answers and error codes are types in [`cmd`], shared with the CLI.

pub mod cmd;
pub mod messages;
#[cfg(test)]
mod tests;

use actix::{Actor, ActorContext, AsyncContext, Context, WrapFuture};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tracing::{debug, warn};

use self::cmd::{After, Answer, Chunk, CommandError, End, ErrorCode, Request};
pub use self::messages::ControlTargets;
use self::messages::Shutdown;

/// Longest accepted command line; a longer one closes that connection.
pub const MAX_LINE: usize = 1 << 20;
/// The control protocol version.
pub const PROTOCOL: u64 = 1;
/// The handshake's `service`.
pub const SERVICE: &str = "ClearSkies Control";

/// The line the server sends first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hello {
    /// [`SERVICE`].
    pub service: String,
    /// Software name and version.
    pub software: String,
    /// [`PROTOCOL`].
    pub protocol: u64,
}

/// The actor that owns the control socket and spawns a task per connection.
#[derive(Debug)]
pub struct Control {
    listener: Option<std::os::unix::net::UnixListener>,
    software: String,
    targets: ControlTargets,
}

impl Control {
    /// Serves `listener` (bound and chmod-ed by the worker).
    pub fn new(listener: std::os::unix::net::UnixListener, software: String, targets: ControlTargets) -> Self {
        Control { listener: Some(listener), software, targets }
    }
}

impl Actor for Control {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(std_listener) = self.listener.take() else { return };
        let listener =
            match std_listener.set_nonblocking(true).and_then(|()| tokio::net::UnixListener::from_std(std_listener)) {
                Ok(l) => l,
                Err(e) => {
                    warn!(error = %e, "control socket failed");
                    return ctx.stop();
                }
            };
        let software = self.software.clone();
        let targets = self.targets.clone();
        let accept = async move {
            loop {
                let (stream, _) = crate::net::accept("control socket", || listener.accept()).await;
                let (software, targets) = (software.clone(), targets.clone());
                actix_rt::spawn(async move {
                    if let Err(e) = serve(stream, &software, &targets).await {
                        debug!(error = %e, "control connection ended");
                    }
                });
            }
        };
        ctx.spawn(accept.into_actor(self));
    }
}

/// Binds the control socket at `path` with mode 0600, replacing a socket file left there
/// (the caller has made sure no live daemon owns it).
pub fn bind(path: &std::path::Path) -> std::io::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves one control connection until the client hangs up.
async fn serve(stream: UnixStream, software: &str, targets: &ControlTargets) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let hello = Hello { service: SERVICE.to_owned(), software: software.to_owned(), protocol: PROTOCOL };
    write_line(&mut write, &hello).await?;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Ok(());
        }
        if line.len() > MAX_LINE {
            let message = format!("a command line may be at most {MAX_LINE} bytes");
            write_line(&mut write, &CommandError::new(ErrorCode::LineTooLong, message)).await?;
            return Ok(());
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let (answer, after) = match Request::parse(&line) {
            Ok(request) => request.run(targets).await,
            Err(e) => (Err(e), None),
        };
        write_line(&mut write, &line_of(answer)).await?;
        match after {
            Some(After::Stream(mut rx, framed)) => {
                // Exactly `length` raw bytes follow the header line; a stream that breaks off
                // closes the connection (the client sees fewer bytes than announced). Framed
                // (`"framed": true`): each piece is a line `{"chunk": N}` and N bytes, and the
                // stream ends with a line `{"end": true}`, or an error line saying why.
                while let Some(piece) = rx.recv().await {
                    match piece {
                        Ok(bytes) if framed => {
                            write_line(&mut write, &Chunk { chunk: bytes.len() }).await?;
                            write.write_all(&bytes).await?;
                        }
                        Ok(bytes) => write.write_all(&bytes).await?,
                        Err(reason) => {
                            warn!(%reason, "a file stream broke off");
                            if framed {
                                write_line(&mut write, &CommandError::new(ErrorCode::StreamFailed, reason)).await?;
                            }
                            return Ok(());
                        }
                    }
                }
                if framed {
                    write_line(&mut write, &End { end: true }).await?;
                }
            }
            Some(After::Shutdown) => targets.shutdown.do_send(Shutdown),
            None => {}
        }
    }
}

async fn write_line<T: serde::Serialize>(w: &mut tokio::net::unix::OwnedWriteHalf, v: &T) -> std::io::Result<()> {
    // Through a `Value`, as always: its keys come out sorted, so the bytes a client sees
    // do not depend on the order of a struct's fields.
    let value = serde_json::to_value(v).map_err(std::io::Error::other)?;
    let mut bytes = serde_json::to_vec(&value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    w.write_all(&bytes).await
}

/// An answer as its line.
fn line_of(answer: Answer) -> Value {
    match answer {
        Ok(v) => v,
        Err(e) => serde_json::to_value(e).unwrap_or(Value::Null),
    }
}
