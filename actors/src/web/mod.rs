//! The `Web` actor: the worker's HTTP side, on actix-web. On `metrics_address` (default
//! `127.0.0.1:49222`):
//! - `/metrics` (Prometheus text format) and `/health` (JSON) for monitoring, open to
//!   whoever reaches the address (as before: scrapers and Docker's `HEALTHCHECK`);
//! - `/files/TOKEN/SHARE_ID/PATH` for media players (a token per file, loopback only;
//!   `files`);
//! - the web interface (`/`, `/assets/`, `/api/`, `/s/`), behind a login ([`auth`]), served
//!   only when the address is a loopback one (a network-facing address would carry the
//!   session in the clear).
//!
//! Every request's `Host` must name this computer (`host_allowed`: DNS rebinding), every
//! answer carries a strict Content-Security-Policy, and every state-changing request of the
//! interface a CSRF token. The server runs one actix worker thread: what it serves is small
//! and the work is done by the actors it asks.

mod api;
mod assets;
pub mod auth;
mod events;
mod files;
mod local_user;
mod login;
mod thumbs;
pub mod tls;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, Context, Recipient};
use actix_web::dev::{ServerHandle, Service};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures_util::future::Either;
use sha2::{Digest, Sha256};
use tracing::{debug, warn};

pub use self::files::{url_path, url_token, DEFAULT_URL_LIFETIME, MAX_URL_LIFETIME};
pub use self::login::PASSWORD_FILE;
use crate::control::ControlTargets;
use crate::metrics::{health, metrics, record_index_memory, record_shares};
use crate::shares::messages::{ListShares, ReadFile, SubscribeShareEvents};

/// HTTP connections served at once.
pub const MAX_CONNECTIONS: usize = 256;
/// How long a client may take to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request body (an `/api/request` command, a login form).
pub const MAX_BODY: usize = 1 << 20;

/// The Content-Security-Policy of the interface's pages.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the HTTP side asks of the rest of the worker.
#[derive(Debug, Clone)]
pub struct WebTargets {
    /// The control commands, as the control socket runs them.
    pub control: ControlTargets,
    /// Share states.
    pub shares: Recipient<ListShares>,
    /// File streams.
    pub read: Recipient<ReadFile>,
    /// Share event streams (the interface's live view).
    pub subscribe: Recipient<SubscribeShareEvents>,
    /// The running shares (a file's share by ID, without asking every share's status).
    pub table: crate::shares::table::TableRx,
    /// The worker's secret: the key of `/files/` tokens and login links (empty: neither).
    pub files_token: String,
    /// The data directory (the password hash, the log).
    pub data_dir: PathBuf,
    /// The index's memory figures (for `/metrics`).
    pub index_memory: clearskies_index::store::MemoryProbe,
}

/// What every request handler shares.
#[derive(Debug)]
pub(crate) struct State {
    targets: WebTargets,
    started: Instant,
    /// The session cookie's name: `clearskies_` and a tag of this worker's, so that two
    /// daemons on one computer (browsers keep cookies per host, not per port) do not log
    /// each other out.
    cookie: String,
    sessions: Mutex<auth::Sessions>,
    /// Serve the interface's files from here instead of the built-in copies (development:
    /// `CLEARSKIES_WEB_ASSETS_DIR`).
    assets_dir: Option<PathBuf>,
    /// Live-view streams open at once.
    streams: Arc<tokio::sync::Semaphore>,
    /// The gallery's thumbnails.
    thumbs: thumbs::Thumbs,
}

/// Serves HTTP on the metrics address, and HTTPS on `web_https_address`.
#[derive(Debug)]
pub struct WebServer {
    listener: Option<std::net::TcpListener>,
    https: Option<(std::net::TcpListener, Arc<tls::ServerConfig>)>,
    targets: WebTargets,
    started: Instant,
    handle: Option<ServerHandle>,
}

impl WebServer {
    /// Serves on `listener` and `https` (bound by the worker, so a busy port fails at start).
    pub fn new(
        listener: Option<std::net::TcpListener>,
        https: Option<(std::net::TcpListener, Arc<tls::ServerConfig>)>,
        targets: WebTargets,
    ) -> Self {
        WebServer { listener, https, targets, started: Instant::now(), handle: None }
    }
}

impl Actor for WebServer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (listener, https) = (self.listener.take(), self.https.take());
        let tag = Sha256::digest(format!("cookie {}", self.targets.files_token));
        let state = web::Data::new(State {
            targets: self.targets.clone(),
            started: self.started,
            cookie: format!("clearskies_{}", hex::encode(&tag[..4])),
            sessions: Mutex::new(auth::Sessions::default()),
            assets_dir: std::env::var_os("CLEARSKIES_WEB_ASSETS_DIR").map(PathBuf::from),
            streams: Arc::new(tokio::sync::Semaphore::new(events::MAX_STREAMS)),
            thumbs: thumbs::Thumbs::new(self.targets.data_dir.join("thumbnails")),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY))
                .app_data(web::FormConfig::default().limit(16 * 1024))
                .wrap_fn(|req, srv| {
                    let answer = match refuse_early(req.request()) {
                        Some(refused) => Either::Left(std::future::ready(Ok(req.into_response(refused)))),
                        None => Either::Right(srv.call(req)),
                    };
                    async move {
                        let mut res = answer.await?;
                        secure_headers(res.headers_mut());
                        Ok(res)
                    }
                })
                .wrap(actix_web::middleware::Compress::default())
                .configure(routes)
        })
        .on_connect(|conn, ext| {
            // Who is on the other end of a plain loopback connection (`local_user`).
            if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                if let (Ok(peer), Ok(local)) = (tcp.peer_addr(), tcp.local_addr()) {
                    if local.ip().is_loopback() {
                        ext.insert(local_user::ClientUid(local_user::uid_of(peer, local)));
                    }
                }
            }
        })
        .workers(1)
        .disable_signals()
        .max_connections(MAX_CONNECTIONS)
        .client_request_timeout(HEAD_TIMEOUT)
        .keep_alive(Duration::from_secs(30))
        .shutdown_timeout(1);
        let server = match listener {
            Some(l) => server.listen(l),
            None => Ok(server),
        };
        let server = server.and_then(|server| match https {
            Some((l, tls)) => server.listen_rustls_0_23(l, (*tls).clone()),
            None => Ok(server),
        });
        let server = match server {
            Ok(s) => s.run(),
            Err(e) => {
                warn!(error = %e, "cannot serve HTTP");
                return ctx.stop();
            }
        };
        self.handle = Some(server.handle());
        actix_rt::spawn(async move {
            if let Err(e) = server.await {
                warn!(error = %e, "the HTTP server stopped");
            }
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(handle) = self.handle.take() {
            actix_rt::spawn(async move { handle.stop(false).await });
        }
    }
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").route(web::get().to(serve_metrics)).route(web::head().to(serve_metrics)))
        .service(web::resource("/health").route(web::get().to(serve_health)).route(web::head().to(serve_health)))
        .service(web::resource("/files/{rest:.*}").route(web::get().to(serve_files)).route(web::head().to(serve_files)))
        .service(web::resource("/").route(web::get().to(assets::index)).route(web::head().to(assets::index)))
        .service(web::resource("/assets/{name}").route(web::get().to(assets::asset)))
        .service(web::resource("/assets/{version}/{name}").route(web::get().to(assets::versioned)))
        .service(web::resource("/login").route(web::get().to(login::page)).route(web::post().to(login::password)))
        .service(web::resource("/logout").route(web::post().to(login::logout)))
        .service(web::resource("/api/session").route(web::get().to(api::session_info)))
        .service(web::resource("/api/request").route(web::post().to(api::request)))
        .service(web::resource("/api/events").route(web::get().to(events::stream)))
        .service(web::resource("/s/{id}/thumb/{path:.*}").route(web::get().to(thumbs::thumb)))
        .service(web::resource("/s/{id}/raw/{path:.*}").route(web::get().to(api::raw)).route(web::head().to(api::raw)))
        .default_service(web::to(not_found));
}

/// A request refused before any handler: a `Host` that does not name this computer, or the
/// interface asked for on a network-facing address.
fn refuse_early(req: &HttpRequest) -> Option<HttpResponse> {
    let host = req.headers().get(header::HOST).map(|h| h.to_str().unwrap_or("\u{0}"));
    let (loopback, secure) = (is_loopback(req), req.app_config().secure());
    if !host_allowed(host, loopback, secure) {
        debug!(?host, "an HTTP request for another host name; refused");
        let why = "the Host header must name localhost or an IP address (a DNS name could be a DNS rebinding attack)";
        return Some(text(403, why));
    }
    let path = req.path();
    let monitoring = path == "/metrics" || path == "/health" || path.starts_with("/files/");
    if !monitoring && !loopback && !secure {
        let why = "the web interface is served over plain HTTP only on a loopback address: \
                   set web_https_address, or reach it through an SSH tunnel (ssh -L 49222:127.0.0.1:49222 HOST)";
        return Some(text(403, why));
    }
    if !monitoring && !secure && !login::own_user(req) {
        let why =
            "this web interface belongs to the user who runs the daemon; other users of this computer are refused";
        return Some(text(403, why));
    }
    None
}

/// Whether `req` came in on a loopback address.
pub(crate) fn is_loopback(req: &HttpRequest) -> bool {
    req.app_config().local_addr().ip().is_loopback()
}

/// Headers every answer carries (a handler's own Content-Security-Policy is kept).
fn secure_headers(h: &mut header::HeaderMap) {
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin"));
    h.insert(header::HeaderName::from_static("cross-origin-resource-policy"), HeaderValue::from_static("same-origin"));
}

/// The root of the running share whose ID (hex) is `id`.
pub(crate) fn share_root(state: &State, id: &str) -> Option<PathBuf> {
    let id: clearskies_protocol::Sha256Hash = id.parse().ok()?;
    state.targets.table.borrow().get(&id).map(|r| r.config.path.clone())
}

/// A plain-text answer.
pub(crate) fn text(status: u16, body: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK);
    HttpResponse::build(status).content_type("text/plain; charset=utf-8").body(format!("{body}\n"))
}

/// Seconds since the Unix epoch (0 before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    match *req.method() {
        actix_web::http::Method::GET | actix_web::http::Method::HEAD => text(404, "not found; try /metrics or /health"),
        _ => text(405, "method not allowed"),
    }
}

async fn serve_metrics(state: web::Data<State>) -> HttpResponse {
    let list = state.targets.shares.send(ListShares).await.unwrap_or_default();
    record_shares(&list);
    record_index_memory(&state.targets.index_memory);
    metrics().uptime.set(i64::try_from(state.started.elapsed().as_secs()).unwrap_or(i64::MAX));
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(metrics().encode())
}

async fn serve_health(state: web::Data<State>) -> HttpResponse {
    match state.targets.shares.send(ListShares).await {
        Ok(list) => {
            record_shares(&list);
            let h = health(&list).without_paths();
            let mut response = if h.healthy { HttpResponse::Ok() } else { HttpResponse::ServiceUnavailable() };
            response.content_type("application/json").body(serde_json::to_string(&h).unwrap_or_default() + "\n")
        }
        Err(_) => text(503, "the daemon is restarting a component"),
    }
}

async fn serve_files(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    // The raw path, decoded once by `files` (the token covers the decoded path).
    let raw = req.uri().path().strip_prefix("/files/").unwrap_or_default().to_owned();
    files::by_token(&req, &state, &raw).await
}

/// Whether a request's `Host` header is one this server answers: DNS rebinding (a web page
/// whose name the attacker re-points at 127.0.0.1, so that the browser sends its requests
/// here as "same origin") always names the attacker's domain, so only names no attacker can
/// point here are accepted: `localhost`, an IP address (as bound, `metrics_address` is one),
/// with or without a port. On an address open to the network (not loopback), also a name of
/// one DNS label (a container's service name: `clearskies:49222` in deploy/): browsers reach
/// such a name only through the local resolver, never through an attacker's domain. Without
/// a `Host` header (HTTP/1.0 tools) the request is answered: browsers always send one.
/// Over HTTPS any host name is answered: a rebinding page's name does not match the
/// certificate, so the browser refuses the connection before any request.
pub(crate) fn host_allowed(host: Option<&str>, loopback: bool, secure: bool) -> bool {
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
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
    };
    if secure {
        return name.len() <= 253 && name.split('.').all(label);
    }
    !loopback && label(name)
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
            assert!(host_allowed(Some(ok), true, false), "{ok}");
            assert!(host_allowed(Some(ok), false, false), "{ok}");
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
            assert!(!host_allowed(Some(bad), true, false), "{bad}");
            assert!(!host_allowed(Some(bad), false, false), "{bad}");
        }
        // A service name on a network-facing address, never on loopback.
        assert!(host_allowed(Some("clearskies:49222"), false, false));
        assert!(!host_allowed(Some("clearskies:49222"), true, false));
        assert!(host_allowed(None, true, false));
        // Over HTTPS, a NAS's DNS name too (the certificate stops a rebinding page).
        assert!(host_allowed(Some("nas.home.arpa:8443"), false, true));
        assert!(!host_allowed(Some("nas.home.arpa:8443"), false, false));
        assert!(!host_allowed(Some("a b"), false, true));
    }
}
