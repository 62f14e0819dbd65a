//! `clearskies worker`: the process that runs the actors. Started and restarted by the
//! monitor; never run by hand.

use std::fs;
use std::os::unix::net::UnixListener;

use actix::Actor;
use anyhow::{bail, Context};
use clearskies_actors::supervisor::Supervisor;
use clearskies_actors::{MonitorInfo, Settings};
use clearskies_index::store::Store;
use tracing::{info, warn};

use crate::config::Config;

pub(crate) use crate::shared::{EXIT_CANNOT_START, MONITOR_STARTED_ENV, WORKER_RESTARTS_ENV};

/// The worker could not start; see [`EXIT_CANNOT_START`].
#[derive(Debug)]
pub(crate) struct CannotStart(anyhow::Error);

impl std::fmt::Display for CannotStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for CannotStart {}

impl From<anyhow::Error> for CannotStart {
    fn from(e: anyhow::Error) -> Self {
        CannotStart(e)
    }
}

/// What the worker binds and opens, after its control socket, before any actor starts.
struct Resources {
    peers: std::net::TcpListener,
    metrics: Option<std::net::TcpListener>,
    /// The web interface over HTTPS (`web_https_address`) and its TLS configuration.
    https: Option<(std::net::TcpListener, std::sync::Arc<clearskies_actors::web::tls::ServerConfig>)>,
    secret: [u8; 32],
    store: Store,
}

/// Where a worker given port 0 notes the port it got, for the worker the monitor starts
/// after a crash: peers remember our address, so it stays the same for the daemon's life.
const PORT_FILE: &str = "worker.port";

/// Binds the peer port. With port 0 configured, a worker restarted after a crash
/// (`restarted`) takes the port its predecessor got (if it is still free; else another one,
/// as at start).
fn bind_peer_port(config: &Config, restarted: bool) -> anyhow::Result<std::net::TcpListener> {
    let context = || format!("cannot listen for peers on {} (set listen_port in config.toml)", config.listen);
    if config.listen.port() != 0 {
        return clearskies_actors::net::bind_tcp(config.listen).with_context(context);
    }
    let port_file = config.data_dir.join(PORT_FILE);
    let before = restarted
        .then(|| fs::read_to_string(&port_file).ok()?.trim().parse::<u16>().ok())
        .flatten()
        .filter(|&p| p != 0);
    let again = before.and_then(|p| clearskies_actors::net::bind_tcp((config.listen.ip(), p).into()).ok());
    let listener = match again {
        Some(l) => l,
        None => clearskies_actors::net::bind_tcp(config.listen).with_context(context)?,
    };
    let port = listener.local_addr().context("reading the peer port")?.port();
    if let Err(e) = fs::write(&port_file, format!("{port}\n")) {
        warn!(error = %e, "cannot note the peer port for a restarted worker");
    }
    Ok(listener)
}

fn acquire(config: &Config, restarts: u64) -> anyhow::Result<Resources> {
    fs::write(config.pid_file(), format!("{}\n", std::process::id())).context("writing worker.pid")?;
    let peers = bind_peer_port(config, restarts > 0)?;
    let metrics = match config.metrics {
        Some(addr) => Some(std::net::TcpListener::bind(addr).with_context(|| {
            format!("cannot serve /metrics on {addr} (set metrics_address in config.toml, or \"off\")")
        })?),
        None => None,
    };
    let https = match config.values.web_https_address {
        Some(addr) => {
            let v = &config.values;
            let (tls, fingerprint) =
                clearskies_actors::web::tls::server_config(&config.data_dir, &v.web_tls_cert, &v.web_tls_key)
                    .map_err(anyhow::Error::msg)
                    .context("setting up HTTPS for the web interface (web_https_address)")?;
            let listener = std::net::TcpListener::bind(addr).with_context(|| {
                format!("cannot serve the web interface on {addr} (set web_https_address in config.toml, or \"off\")")
            })?;
            info!(%addr, %fingerprint, "web interface over HTTPS; the certificate's SHA-256 fingerprint");
            Some((listener, std::sync::Arc::new(tls)))
        }
        None => None,
    };
    let secret = clearskies_actors::share::registry::server_secret(&config.data_dir)?;
    let db_dir = config.data_dir.join("db");
    let store = Store::open(&db_dir)
        .with_context(|| format!("opening the index in {}", db_dir.display()))?
        .observe_writes(|took| clearskies_actors::metrics::metrics().db_write_duration.observe(took.as_secs_f64()));
    Ok(Resources { peers, metrics, https, secret, store })
}

/// Runs the worker until it is told to stop. A failure to start is a [`CannotStart`].
pub(crate) fn run(config: &Config, fault_injection: bool) -> anyhow::Result<()> {
    // Every peer, share and stranger's connection costs descriptors: take all the hard limit
    // allows (the listener keeps unauthenticated connections to a quarter of it).
    let fd_limit = clearskies_actors::listener::raise_fd_limit();
    info!(fd_limit, "file descriptor limit");
    let socket = config.control_socket();
    // (Another live daemon on this data dir: the monitor's lock refuses it before this.)
    config.ensure_data_dir().map_err(CannotStart)?;
    let listener = bind_control_socket(&socket)?;
    let restarts = std::env::var(WORKER_RESTARTS_ENV).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let Resources { peers: peer_listener, metrics: metrics_listener, https, secret, store } =
        match acquire(config, restarts) {
            Ok(r) => r,
            Err(e) => {
                // The control socket is ours: leave nothing that looks like a live daemon.
                let _ = fs::remove_file(&socket);
                let _ = fs::remove_file(config.pid_file());
                return Err(CannotStart(e).into());
            }
        };
    let settings = Settings {
        data_dir: config.data_dir.clone(),
        control_socket: socket.clone(),
        software: clearskies_actors::SOFTWARE.to_owned(),
        config: config.values.clone(),
        sources: config.sources.clone(),
        monitor: MonitorInfo {
            started: std::env::var(MONITOR_STARTED_ENV).ok().and_then(|v| v.parse().ok()),
            restarts,
        },
        fault_injection,
    };
    clearskies_actors::config::hand_over(&config.values);
    clearskies_index::data_dir::set_data_dir(&config.data_dir);
    let system = actix_rt::System::new();
    let leases = clearskies_actors::reach::Leases::default();
    system.block_on(async {
        let supervisor = Supervisor::new(settings, store.clone(), listener, peer_listener, metrics_listener, secret)
            .with_https(https)
            .with_leases(leases.clone())
            .start();
        actix_rt::spawn(async move {
            let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
            let Ok(mut term) = term else {
                warn!("cannot listen for SIGTERM");
                return;
            };
            tokio::select! {
                _ = term.recv() => info!("SIGTERM: stopping"),
                _ = tokio::signal::ctrl_c() => info!("SIGINT: stopping"),
            }
            // (As `clearskies stop` does: uTP sessions are closed first, see `Shutdown`.)
            if supervisor.send(clearskies_actors::control::messages::Shutdown).await.is_err() {
                actix_rt::System::current().stop();
            }
        });
    });
    let result = system.run().context("the actor system failed");
    // The router forwards the peer port no longer (a crash leaves the lease to run out).
    leases.release_blocking();
    // Close the index cleanly before exiting: the actors are gone with the system (and with
    // them the share threads' work queues); wait for every other handle to the database to go
    // (share threads finishing), then close it here.
    if !store.wait_sole_owner(std::time::Duration::from_secs(10)) {
        warn!("the index is still in use after 10 s; exiting anyway");
    }
    drop(store);
    let _ = fs::remove_file(&socket);
    let _ = fs::remove_file(config.pid_file());
    info!("worker stopped");
    result
}

/// Binds the control socket with mode 0600, replacing a stale socket file but refusing to
/// start beside a live daemon.
fn bind_control_socket(path: &std::path::Path) -> anyhow::Result<UnixListener> {
    if path.exists() && std::os::unix::net::UnixStream::connect(path).is_ok() {
        bail!("another clearskies daemon is already running with this data directory ({})", path.display());
    }
    clearskies_actors::control::bind(path).with_context(|| format!("binding the control socket {}", path.display()))
}
