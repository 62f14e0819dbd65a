//! The `Metrics` actor: `/metrics` (Prometheus text format) and `/health` over HTTP on a
//! local address (default `127.0.0.1:49222`).
//!
//! The HTTP side is deliberately small: one request per connection (`Connection: close`),
//! `GET`/`HEAD` only, the request head bounded to [`MAX_HEAD`] bytes and [`HEAD_TIMEOUT`], at
//! most [`MAX_CONNECTIONS`] at once. That is all a Prometheus scraper, a Docker
//! `HEALTHCHECK` or `curl` needs, and it keeps an HTTP stack out of the daemon.
//!
//! Scrapes read the shares' state (files out of sync, last sync, errors) through the
//! share registry at scrape time; event counters are updated where the events happen (see
//! [`registry`]).

pub mod registry;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, AsyncContext, Context, Recipient, WrapFuture};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tracing::debug;

pub use self::files::{url_token, DEFAULT_URL_LIFETIME, MAX_URL_LIFETIME};
pub use self::registry::{metrics, Metrics};
use crate::share::messages::{ShareStatus, SyncState};
use crate::shares::messages::{ListShares, ReadFile};

mod files;

/// The default address of `/metrics` and `/health`.
pub const DEFAULT_PORT: u16 = 49222;
/// Longest request head accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP connections served at once; more are closed unanswered.
pub const MAX_CONNECTIONS: usize = 32;

/// One share's part of the health report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareHealth {
    /// Share ID (hex).
    pub id: String,
    /// Share root: on the control socket only (`status`); `/health` over HTTP, open to
    /// anyone who can reach it, leaves it out (see [`Health::without_paths`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What the share is doing.
    pub status: SyncState,
    /// Caught up with every connected peer.
    pub synced: bool,
    /// Unix time since which it has been in sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_sync_since: Option<u64>,
    /// Unix time it was last seen in sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_synced: Option<u64>,
    /// Connected peers.
    pub peers: usize,
    /// Why it is in error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Read-only shares: changes made here that are never sent.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub local_changes: u64,
    /// Unix time since which no peer has been connected, once longer than
    /// `peers_gone_after` (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alone_since: Option<u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Whether the daemon is doing its job: `healthy` is false when any share is in error
/// (missing root, index failure); `in_sync` when every share is caught up with its peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// No share is in error.
    pub healthy: bool,
    /// Every share is in sync.
    pub in_sync: bool,
    /// Per share.
    pub shares: Vec<ShareHealth>,
}

/// The health report for these shares' statuses.
pub fn health(shares: &[ShareStatus]) -> Health {
    let shares: Vec<ShareHealth> = shares
        .iter()
        .map(|s| ShareHealth {
            id: s.id.clone(),
            path: Some(s.path.clone()),
            status: s.status,
            synced: s.synced,
            in_sync_since: s.in_sync_since,
            last_synced: s.last_synced,
            peers: s.peers,
            error: s.error.clone(),
            local_changes: s.local_changes,
            alone_since: s.alone_since,
        })
        .collect();
    Health {
        // A share no peer has reached for `peers_gone_after` is not healthy either: nothing
        // in it is being synced anywhere.
        healthy: shares.iter().all(|s| s.status != SyncState::Error && s.alone_since.is_none()),
        in_sync: shares.iter().all(|s| s.synced),
        shares,
    }
}

impl Health {
    /// The report as `/health` serves it to whoever asks: no share root, and the root
    /// replaced by "the share root" in error texts. Shares are told apart by their ID.
    pub fn without_paths(mut self) -> Self {
        for s in &mut self.shares {
            let Some(root) = s.path.take() else { continue };
            if let Some(e) = s.error.as_mut().filter(|_| !root.is_empty()) {
                *e = e.replace(&root, "the share root");
            }
        }
        self
    }
}

/// Puts the shares' state into the per-share gauges (shares that are gone disappear).
fn record_shares(shares: &[ShareStatus]) {
    let m = metrics();
    for g in [&m.files_out_of_sync, &m.bytes_out_of_sync, &m.last_sync, &m.share_error, &m.share_peers_gone] {
        g.reset();
    }
    for s in shares {
        let id = [s.id.as_str()];
        m.files_out_of_sync.with_label_values(&id).set(i64::try_from(s.pending_files).unwrap_or(i64::MAX));
        m.bytes_out_of_sync.with_label_values(&id).set(i64::try_from(s.pending_bytes).unwrap_or(i64::MAX));
        m.last_sync.with_label_values(&id).set(s.last_synced.and_then(|t| i64::try_from(t).ok()).unwrap_or(0));
        m.share_error.with_label_values(&id).set(i64::from(s.status == SyncState::Error));
        m.share_peers_gone.with_label_values(&id).set(i64::from(s.alone_since.is_some()));
    }
}

/// Serves `/metrics`, `/health` and (on a loopback address) `/files/…`.
#[derive(Debug)]
pub struct MetricsServer {
    listener: Option<std::net::TcpListener>,
    targets: HttpTargets,
    started: Instant,
}

/// What the HTTP side asks of the rest of the worker.
#[derive(Debug, Clone)]
pub struct HttpTargets {
    /// Share states.
    pub shares: Recipient<ListShares>,
    /// File streams.
    pub read: Recipient<ReadFile>,
    /// The key of the tokens in `/files/` addresses ([`url_token`]; empty: no files served).
    pub files_token: String,
}

impl MetricsServer {
    /// Serves on `listener` (bound by the worker, so a busy port fails at start).
    pub fn new(listener: std::net::TcpListener, targets: HttpTargets) -> Self {
        MetricsServer { listener: Some(listener), targets, started: Instant::now() }
    }
}

impl Actor for MetricsServer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(std_listener) = self.listener.take() else { return };
        let Some(listener) = crate::net::tcp_listener(std_listener, "serving /metrics and /health") else {
            return ctx.stop();
        };
        let (targets, started) = (self.targets.clone(), self.started);
        let loopback = std_listener_is_loopback(&listener);
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let accept = async move {
            loop {
                let (stream, addr) = crate::net::accept("metrics", || listener.accept()).await;
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    debug!(%addr, "too many metrics connections; closed");
                    continue;
                };
                let targets = targets.clone();
                actix_rt::spawn(async move {
                    if let Err(e) = serve(stream, &targets, started, loopback).await {
                        debug!(%addr, error = %e, "metrics connection ended");
                    }
                    drop(slot);
                });
            }
        };
        ctx.spawn(accept.into_actor(self));
    }
}

/// Reads a request head: up to the blank line, at most [`MAX_HEAD`] bytes.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
    }
}

/// A response: status line, content type, body.
struct Response {
    status: &'static str,
    content_type: &'static str,
    body: String,
}

fn text(status: &'static str, body: &str) -> Response {
    Response { status, content_type: "text/plain; charset=utf-8", body: format!("{body}\n") }
}

fn std_listener_is_loopback(listener: &tokio::net::TcpListener) -> bool {
    listener.local_addr().is_ok_and(|a| a.ip().is_loopback())
}

/// Answers one request on `stream`.
async fn serve(mut stream: TcpStream, targets: &HttpTargets, started: Instant, loopback: bool) -> std::io::Result<()> {
    let shares = &targets.shares;
    let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(Some(head))) => head,
        Ok(Ok(None)) | Err(_) => return Ok(()),
        Ok(Err(e)) => return Err(e),
    };
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let host = header(&head, "host");
    if !host_allowed(host.as_deref(), loopback) {
        debug!(?host, "an HTTP request for another host name; refused");
        let why = "the Host header must name localhost or an IP address (a DNS name could be a DNS rebinding attack)";
        return respond(stream, method, text("403 Forbidden", why)).await;
    }
    if let Some(rest) = path.strip_prefix("/files/") {
        if !loopback {
            let r = text("403 Forbidden", "files are served only when this address is a loopback address");
            return respond(stream, method, r).await;
        }
        let range = header(&head, "range");
        return files::serve(stream, targets, method, rest, range.as_deref()).await;
    }
    let response = match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            let list = shares.send(ListShares).await.unwrap_or_default();
            record_shares(&list);
            metrics().uptime.set(i64::try_from(started.elapsed().as_secs()).unwrap_or(i64::MAX));
            Response {
                status: "200 OK",
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: metrics().encode(),
            }
        }
        ("GET" | "HEAD", "/health") => match shares.send(ListShares).await {
            Ok(list) => {
                record_shares(&list);
                let h = health(&list).without_paths();
                let status = if h.healthy { "200 OK" } else { "503 Service Unavailable" };
                let body = serde_json::to_string(&h).unwrap_or_default() + "\n";
                Response { status, content_type: "application/json", body }
            }
            Err(_) => text("503 Service Unavailable", "the daemon is restarting a component"),
        },
        ("GET" | "HEAD", "/") => {
            text("200 OK", "clearskies: /metrics (Prometheus), /health (JSON), /files/TOKEN/SHARE_ID/PATH (loopback only; clearskies cat --url)")
        }
        (_, "/metrics" | "/health" | "/") => text("405 Method Not Allowed", "only GET and HEAD"),
        _ => text("404 Not Found", "not found; try /metrics or /health"),
    };
    respond(stream, method, response).await
}

/// The value of the first header named `name` (any case) in a request head.
fn header(head: &[u8], name: &str) -> Option<String> {
    // (The request line has no colon before its first space, so it never matches.)
    String::from_utf8_lossy(head).lines().skip(1).find_map(|l| {
        l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_owned())
    })
}

/// Whether a request's `Host` header is one this server answers: DNS rebinding (a web page
/// whose name the attacker re-points at 127.0.0.1, so that the browser sends its requests
/// here as "same origin") always names the attacker's domain, so only names no attacker can
/// point here are accepted: `localhost`, an IP address (as bound, `metrics_address` is one),
/// with or without a port. On an address open to the network (not loopback), also a name of
/// one DNS label (a container's service name: `clearskies:49222` in deploy/): browsers reach
/// such a name only through the local resolver, never through an attacker's domain. Without
/// a `Host` header (HTTP/1.0 tools) the request is answered: browsers always send one.
fn host_allowed(host: Option<&str>, loopback: bool) -> bool {
    let Some(host) = host else { return true };
    let host = host.trim();
    // `[v6]` or `[v6]:port`.
    if let Some(rest) = host.strip_prefix('[') {
        let Some((ip, port)) = rest.split_once(']') else { return false };
        let port_ok = port.is_empty() || port.strip_prefix(':').is_some_and(|p| p.parse::<u16>().is_ok());
        return port_ok && ip.parse::<std::net::Ipv6Addr>().is_ok();
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.parse::<u16>().is_ok() => name,
        Some(_) => return false,
        None => host,
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    !loopback
        && !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
}

/// Writes a whole response and closes.
async fn respond(mut stream: TcpStream, method: &str, response: Response) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        out.extend_from_slice(response.body.as_bytes());
    }
    stream.write_all(&out).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_check() {
        for ok in [
            "localhost",
            "LocalHost:49222",
            "localhost.",
            "127.0.0.1",
            "127.0.0.1:49222",
            "10.1.2.3:80",
            "[::1]",
            "[::1]:49222",
        ] {
            assert!(host_allowed(Some(ok), true), "{ok}");
            assert!(host_allowed(Some(ok), false), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:49222",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "[::1",
            "[::1]:x",
            "localhost:99999",
            "127.0.0.1:",
            "",
            "a b",
        ] {
            assert!(!host_allowed(Some(bad), true), "{bad}");
            assert!(!host_allowed(Some(bad), false), "{bad}");
        }
        // A service name on a network-facing address, never on loopback.
        assert!(host_allowed(Some("clearskies:49222"), false));
        assert!(!host_allowed(Some("clearskies:49222"), true));
        assert!(host_allowed(None, true));
    }

    #[test]
    fn health_over_http_has_no_paths() {
        let h = Health {
            healthy: false,
            in_sync: false,
            shares: vec![ShareHealth {
                id: "ab12".into(),
                path: Some("/home/u/Secret Project".into()),
                status: SyncState::Error,
                synced: false,
                in_sync_since: None,
                last_synced: None,
                peers: 0,
                error: Some("run `clearskies confirm-deletes /home/u/Secret Project`".into()),
                local_changes: 0,
                alone_since: None,
            }],
        };
        let text = serde_json::to_string(&h.without_paths()).unwrap();
        assert!(!text.contains("Secret") && !text.contains("\"path\""), "{text}");
        assert!(text.contains("confirm-deletes the share root") && text.contains("ab12"), "{text}");
    }
}
