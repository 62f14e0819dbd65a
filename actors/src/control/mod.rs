//! The control socket (`control.md`): a unix socket speaking JSON lines.
//!
//! On connect the server sends `{"service":"ClearSkies Control","software":…,"protocol":1}`.
//! Each following line is one command object with a `type`; each gets exactly one response
//! line, in order, so clients may pipeline. Unknown commands answer
//! `{"error":"not_understood",…}`; errors carry a machine-readable `error` and a human
//! `message`. The socket is created with mode 0600 by the worker.
//!
//! Each connection is served by its own task, one request at a time, which is what keeps
//! responses in order; a slow request stalls only its own connection.

pub mod messages;

use std::time::Duration;

use actix::{Actor, ActorContext, AsyncContext, Context, WrapFuture};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tracing::{debug, warn};

pub use self::messages::ControlTargets;
use crate::metrics::health;
use crate::share::registry::{CodeRef, Lifetime};
use crate::supervisor::messages::{
    AddShare, CancelCode, CommandError, CreateAccessCode, CreateShare, Fault, FileUrl, GetConfig, GetStatus,
    InjectFault, JoinWith, ListCodes, ListPeers, ListShares, ReadFile, RemoveShare, SetConfig, SetPaused, Shutdown,
    DEFAULT_CODE_LIFETIME,
};

/// Longest accepted command line; a longer one closes that connection.
pub const MAX_LINE: usize = 1 << 20;
/// The control protocol version.
pub const PROTOCOL: u64 = 1;

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
    let hello = json!({ "service": "ClearSkies Control", "software": software, "protocol": PROTOCOL });
    write_line(&mut write, &hello).await?;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Ok(());
        }
        if line.len() > MAX_LINE {
            let resp = error("line_too_long", &format!("a command line may be at most {MAX_LINE} bytes"));
            write_line(&mut write, &resp).await?;
            return Ok(());
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let (response, after) = handle(&line, targets).await;
        write_line(&mut write, &response).await?;
        match after {
            Some(After::Stream(mut rx, framed)) => {
                // Exactly `length` raw bytes follow the header line; a stream that breaks off
                // closes the connection (the client sees fewer bytes than announced). Framed
                // (`"framed": true`): each piece is a line `{"chunk": N}` and N bytes, and the
                // stream ends with a line `{"end": true}`, or an error line saying why.
                while let Some(piece) = rx.recv().await {
                    match piece {
                        Ok(bytes) if framed => {
                            write_line(&mut write, &json!({ "chunk": bytes.len() })).await?;
                            write.write_all(&bytes).await?;
                        }
                        Ok(bytes) => write.write_all(&bytes).await?,
                        Err(reason) => {
                            warn!(%reason, "a file stream broke off");
                            if framed {
                                write_line(&mut write, &error("stream_failed", &reason)).await?;
                            }
                            return Ok(());
                        }
                    }
                }
                if framed {
                    write_line(&mut write, &json!({ "end": true })).await?;
                }
            }
            Some(after) => after.run(targets),
            None => {}
        }
    }
}

/// Work that must happen after the response is written (so the client sees it).
enum After {
    Shutdown,
    /// The bytes of a `read_file`, written after its header line.
    Stream(crate::share::messages::StreamRx, bool),
}

impl After {
    fn run(self, targets: &ControlTargets) {
        match self {
            After::Shutdown => targets.shutdown.do_send(Shutdown),
            After::Stream(..) => {}
        }
    }
}

async fn write_line(w: &mut tokio::net::unix::OwnedWriteHalf, v: &Value) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(v).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    w.write_all(&bytes).await
}

fn error(code: &str, message: &str) -> Value {
    json!({ "error": code, "message": message })
}

fn unavailable() -> Value {
    error("unavailable", "the daemon is shutting down or restarting a component; try again")
}

/// Handles one command line; returns the response and any follow-up action.
async fn handle(line: &[u8], targets: &ControlTargets) -> (Value, Option<After>) {
    let request: Value = match serde_json::from_slice(line) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return (error("not_understood", "a command must be a JSON object"), None),
        Err(e) => return (error("not_understood", &format!("malformed JSON: {e}")), None),
    };
    let Some(kind) = request.get("type").and_then(Value::as_str) else {
        return (error("not_understood", "the command has no \"type\""), None);
    };
    match kind {
        "status" => match (targets.status.send(GetStatus).await, targets.list_shares.send(ListShares).await) {
            (Ok(status), Ok(shares)) => {
                let mut v = serde_json::to_value(status).unwrap_or_else(|_| unavailable());
                if let Some(o) = v.as_object_mut() {
                    o.insert("health".into(), serde_json::to_value(health(&shares)).unwrap_or(Value::Null));
                }
                (v, None)
            }
            _ => (unavailable(), None),
        },
        "pause" | "resume" => match targets.pause.send(SetPaused(kind == "pause")).await {
            Ok(()) => (json!({}), None),
            Err(_) => (unavailable(), None),
        },
        "stop" => (json!({}), Some(After::Shutdown)),
        "list_peers" => match targets.list_peers.send(ListPeers).await {
            Ok(peers) => (json!({ "peers": peers }), None),
            Err(_) => (unavailable(), None),
        },
        "list_shares" => match targets.list_shares.send(ListShares).await {
            Ok(shares) => (json!({ "shares": shares }), None),
            Err(_) => (unavailable(), None),
        },
        "create_share" => match absolute_path(&request) {
            Ok(path) => (reply(targets.create_share.send(CreateShare { path }).await), None),
            Err(e) => (e, None),
        },
        "verify_backup" => match absolute_path(&request) {
            Ok(path) => {
                let files = request.get("files").and_then(Value::as_u64).unwrap_or(3);
                let files = usize::try_from(files).unwrap_or(usize::MAX);
                let msg = crate::supervisor::messages::VerifyBackup { path, files };
                (reply(targets.verify_backup.send(msg).await.map(|r| r.map(|peers| json!({ "peers": peers })))), None)
            }
            Err(e) => (e, None),
        },
        "export_keys" => match absolute_path(&request) {
            Ok(path) => {
                let msg = crate::supervisor::messages::ExportKeys { path };
                (reply(targets.export_keys.send(msg).await.map(|r| r.map(|keys| json!({ "keys": keys })))), None)
            }
            Err(e) => (e, None),
        },
        "confirm_deletes" => match absolute_path(&request) {
            Ok(path) => {
                let msg = crate::supervisor::messages::ConfirmDeletes { path };
                (reply(targets.confirm_deletes.send(msg).await.map(|r| r.map(|held| json!({ "held": held })))), None)
            }
            Err(e) => (e, None),
        },
        "remove_share" => match absolute_path(&request) {
            Ok(path) => (reply(targets.remove_share.send(RemoveShare { path }).await), None),
            Err(e) => (e, None),
        },
        "add_share" => match (absolute_path(&request), join_with(&request)) {
            (Ok(path), Ok(with)) => {
                let peer = request.get("peer").and_then(Value::as_str).map(str::to_owned);
                let timeout = request.get("timeout").and_then(Value::as_u64);
                let subtree = request.get("subtree").and_then(Value::as_str).map(str::to_owned);
                let exclude = request
                    .get("exclude")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                    .unwrap_or_default();
                let selection = clearskies_index::filter::Selection { subtree, exclude };
                let msg = AddShare { with, path, peer, timeout, selection };
                (reply(targets.add_share.send(msg).await), None)
            }
            (Err(e), _) | (_, Err(e)) => (e, None),
        },
        "create_access_code" => match (absolute_path(&request), lifetime(&request), custom_credentials(&request)) {
            (Ok(path), Ok(lifetime), Ok(custom)) => {
                let mode = request.get("mode").and_then(Value::as_str).unwrap_or("read_write").to_owned();
                let multi_use = request.get("multi_use").and_then(Value::as_bool).unwrap_or(false);
                let msg = CreateAccessCode { path, mode, lifetime, multi_use, custom };
                (reply(targets.create_access_code.send(msg).await), None)
            }
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => (e, None),
        },
        "list_access_codes" => match targets.list_codes.send(ListCodes).await {
            Ok(Ok(codes)) => (json!({ "codes": codes }), None),
            other => (reply(other), None),
        },
        "cancel_access_code" => {
            let text = |k: &str| request.get(k).and_then(Value::as_str).map(str::to_owned);
            let which = match (text("code"), text("username"), text("access_id")) {
                (Some(code), None, None) => match code.parse() {
                    Ok(code) => Ok(CodeRef::Code(code)),
                    Err(e) => Err(error("bad_code", &format!("invalid access code: {e}"))),
                },
                (None, Some(username), None) => Ok(CodeRef::Username(username)),
                (None, None, Some(id)) => Ok(CodeRef::IdPrefix(id)),
                _ => Err(error("missing_code", "the command needs one of \"code\", \"username\" or \"access_id\"")),
            };
            match which {
                Ok(which) => (reply(targets.cancel_code.send(CancelCode(which)).await), None),
                Err(e) => (e, None),
            }
        }
        "file_url" => match (absolute_path(&request), request.get("file").and_then(Value::as_str)) {
            (Ok(path), Some(file)) => {
                let lifetime = request.get("expires_in").map(Value::as_u64);
                if lifetime.is_some_and(|l| l.is_none()) {
                    return (error("bad_expiry", "\"expires_in\" must be a number of seconds"), None);
                }
                let msg = FileUrl { path, file: file.to_owned(), lifetime: lifetime.flatten() };
                (reply(targets.file_url.send(msg).await.map(|r| r.map(|url| json!({ "url": url })))), None)
            }
            (Err(e), _) => (e, None),
            (_, None) => (error("missing_file", "the command needs a \"file\""), None),
        },
        "read_file" => match (absolute_path(&request), request.get("file").and_then(Value::as_str)) {
            (Ok(path), Some(file)) => {
                let offset = request.get("offset").and_then(Value::as_u64).unwrap_or(0);
                let length = request.get("length").and_then(Value::as_u64);
                let read = crate::share::messages::OpenRead { file: file.to_owned(), offset, length };
                match targets.read_file.send(ReadFile { path, read }).await {
                    Ok(Ok(r)) => {
                        let header = json!({
                            "size": r.size, "sha256": r.sha256.to_string(), "offset": r.offset,
                            "length": r.length, "source": r.source,
                        });
                        let framed = request.get("framed").and_then(Value::as_bool).unwrap_or(false);
                        let mut header = header;
                        if framed {
                            header["framed"] = json!(true);
                        }
                        (header, Some(After::Stream(r.rx, framed)))
                    }
                    Ok(Err(e)) => (error(&e.error, &e.message), None),
                    Err(_) => (unavailable(), None),
                }
            }
            (Err(e), _) => (e, None),
            (_, None) => (error("missing_file", "the command needs a \"file\""), None),
        },
        "get_config" => match targets.get_config.send(GetConfig).await {
            Ok(config) => (json!({ "config": config }), None),
            Err(_) => (unavailable(), None),
        },
        "get_config_value" => {
            match (request.get("key").and_then(Value::as_str), targets.get_config.send(GetConfig).await) {
                (None, _) => (error("missing_key", "the command needs a \"key\""), None),
                (Some(key), Ok(config)) => match config.get(key) {
                    Some(value) => (json!({ "value": value }), None),
                    None => (error("unknown_key", &format!("there is no setting {key:?}")), None),
                },
                (_, Err(_)) => (unavailable(), None),
            }
        }
        "set_config" => match request.get("config").and_then(Value::as_object) {
            Some(config) => {
                (reply(targets.set_config.send(SetConfig(config.clone())).await.map(|r| r.map(|()| json!({})))), None)
            }
            None => (error("missing_config", "the command needs a \"config\" object"), None),
        },
        "set_config_value" => match (request.get("key").and_then(Value::as_str), request.get("value")) {
            (Some(key), Some(value)) => {
                let one = serde_json::Map::from_iter([(key.to_owned(), value.clone())]);
                (reply(targets.set_config.send(SetConfig(one)).await.map(|r| r.map(|()| json!({})))), None)
            }
            _ => (error("missing_key", "the command needs a \"key\" and a \"value\""), None),
        },
        "inject_fault" if targets.inject_fault.is_some() => {
            let Some(inject) = &targets.inject_fault else { return (unavailable(), None) };
            let actor = request.get("actor").and_then(Value::as_str).and_then(crate::supervise::ActorKind::from_name);
            let seconds = request.get("seconds").and_then(Value::as_u64);
            let fault = match (request.get("fault").and_then(Value::as_str), actor, seconds) {
                (Some("panic"), Some(actor), _) => Fault::Panic(actor),
                (Some("stall"), _, Some(s)) => Fault::Stall(Duration::from_secs(s.min(3600))),
                (Some("fail_db_write"), _, _) => Fault::FailNextWrite,
                _ => {
                    let usage = "fault: \"panic\" with \"actor\" (discovery, listener, share, transfer, control, \
                                 metrics, peer), \"stall\" with \"seconds\", or \"fail_db_write\"";
                    return (error("bad_fault", usage), None);
                }
            };
            let path = request.get("path").and_then(Value::as_str).map(std::path::PathBuf::from);
            (reply(inject.send(InjectFault { fault, path }).await), None)
        }
        other => (error("not_understood", &format!("unknown command {other:?}")), None),
    }
}

/// `add_share`'s `code`, its `username` and `password`, or saved `keys`.
fn join_with(request: &Value) -> Result<JoinWith, Value> {
    if let Some(keys) = request.get("keys") {
        return serde_json::from_value(keys.clone())
            .map(|k| JoinWith::Keys(Box::new(k)))
            .map_err(|e| error("bad_keys", &format!("\"keys\" is not what export_keys gives: {e}")));
    }
    match (custom_credentials(request)?, request.get("code").and_then(Value::as_str)) {
        (Some((username, password)), None) => Ok(JoinWith::Custom { username, password }),
        (None, Some(code)) => Ok(JoinWith::Code(code.to_owned())),
        (Some(_), Some(_)) => {
            Err(error("bad_credentials", "give a \"code\" or a \"username\" and \"password\", not both"))
        }
        (None, None) => Err(error("missing_code", "the command needs a \"code\" (or a \"username\" and \"password\")")),
    }
}

/// A request's custom `username` and `password`, both or neither.
fn custom_credentials(request: &Value) -> Result<Option<(String, String)>, Value> {
    let text = |k: &str| request.get(k).and_then(Value::as_str).map(str::to_owned);
    match (text("username"), text("password")) {
        (Some(u), Some(p)) => Ok(Some((u, p))),
        (None, None) => Ok(None),
        _ => Err(error("bad_credentials", "a \"username\" needs a \"password\" and the other way round")),
    }
}

/// `create_access_code`'s `expires_in`: seconds, `null` for never, absent for 24 hours.
fn lifetime(request: &Value) -> Result<Lifetime, Value> {
    match request.get("expires_in") {
        None => Ok(Lifetime::Secs(DEFAULT_CODE_LIFETIME)),
        Some(Value::Null) => Ok(Lifetime::Never),
        Some(v) => match v.as_i64() {
            Some(s) if s > 0 => Ok(Lifetime::Secs(s)),
            _ => Err(error("bad_expiry", "\"expires_in\" must be a positive number of seconds, or null for never")),
        },
    }
}

/// The request's `path`, which must be an absolute path (the daemon's working directory
/// means nothing to the client).
fn absolute_path(request: &Value) -> Result<std::path::PathBuf, Value> {
    match request.get("path").and_then(Value::as_str) {
        Some(p) if std::path::Path::new(p).is_absolute() => Ok(p.into()),
        Some(p) => Err(error("bad_path", &format!("{p:?} is not an absolute path"))),
        None => Err(error("missing_path", "the command needs a \"path\"")),
    }
}

/// A handler's answer as a response line.
fn reply<T: serde::Serialize>(answer: Result<Result<T, CommandError>, actix::MailboxError>) -> Value {
    match answer {
        Ok(Ok(v)) => serde_json::to_value(v).unwrap_or_else(|_| unavailable()),
        Ok(Err(e)) => error(&e.error, &e.message),
        Err(_) => unavailable(),
    }
}
