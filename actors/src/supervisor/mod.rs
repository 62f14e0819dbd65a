//! The root actor of the worker: wiring and restart policy. It builds the owners of the
//! daemon's state — the share registry ([`crate::shares::Shares`]), [`crate::access::Access`]
//! and [`crate::connections::Connections`] — and the actors around them (control socket,
//! peer listener, `/metrics`, discovery), wires each one's `Recipient`s straight to the
//! owner of what it asks about, and starts a crashed actor again after a [`Backoff`]. It
//! answers only what is daemon-wide: `status`, `pause`/`resume`, `stop`, the settings and
//! fault injection.
//!
//! A crash of one of the three owners is not repaired in place (the state they hold — the
//! session table, the claims, the running shares — would be lost half-updated): the worker
//! stops with an error and the monitor process starts a fresh one.

mod backoff;
mod web;

use std::net::SocketAddr;
use std::time::Instant;

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, MessageResult, ResponseActFuture, ResponseFuture,
    System, WrapFuture,
};
use clearskies_index::store::Store;
use tracing::{error, info, warn};

pub use self::backoff::Backoff;
use self::backoff::MAX_RESTART_DELAY;
use crate::access::Access;
use crate::bandwidth::bandwidth;
use crate::config;
use crate::connections::messages::{CountPeers, PeerCrashed, SessionFault, UseDiscovery};
use crate::connections::{Connections, ConnectionsTargets};
use crate::control::cmd::{CommandError, ErrorCode};
use crate::control::messages::{Fault, GetConfig, GetStatus, InjectFault, SetConfig, SetPaused, Shutdown, Status};
use crate::control::{Control, ControlTargets};
use crate::discovery::{Discovery, DiscoverySettings};
use crate::listener::{Listener, ListenerTargets};
use crate::metrics::metrics;
use crate::peer::channel::TlsContext;
use crate::peer::messages::PeerFault;
use crate::reach::{Leases, Reach, ReachSettings, ReachStatus};
use crate::shares::messages::{PauseShares, RestartShare, SharesLoaded};
use crate::shares::table::{ShareTable, TableRx};
use crate::shares::{FileServing, Shares, SharesTargets};
use crate::supervise::{self, ActorKind, Crashed, InjectPanic};
use crate::web::WebServer;
use crate::Settings;

/// What is left of a fault injection: waiting for the sessions it went to.
type Pending = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), CommandError>>>>;

/// Exit status of a worker whose state owner crashed (the monitor starts a new worker).
const OWNER_CRASHED: i32 = 70;

/// The owners of the daemon's state.
#[derive(Debug, Clone)]
struct Owners {
    shares: Addr<Shares>,
    access: Addr<Access>,
    connections: Addr<Connections>,
}

/// The worker's root actor.
#[derive(Debug)]
pub struct Supervisor {
    settings: Settings,
    store: Store,
    started: Instant,
    paused: bool,
    control_listener: Option<std::os::unix::net::UnixListener>,
    peer_listener: Option<std::net::TcpListener>,
    metrics_listener: Option<std::net::TcpListener>,
    metrics_addr: Option<SocketAddr>,
    /// The secret part of `/files/` URLs (new every worker start): without it, another
    /// user of this computer could read the shares through the loopback address.
    files_token: String,
    listen_addr: Option<SocketAddr>,
    /// The peer port's UDP socket and uTP on it, if it could be opened.
    udp: Option<crate::transport::utp::UdpSide>,
    tls: Option<TlsContext>,
    server_secret: [u8; 32],
    /// Authentication rate limits, kept across listener restarts.
    throttle: std::sync::Arc<crate::listener::throttle::AuthThrottle>,
    /// The running shares, as the registry publishes them (for fault injection).
    table: TableRx,
    /// Its sending side, until the registry takes it.
    table_tx: Option<tokio::sync::watch::Sender<ShareTable>>,
    owners: Option<Owners>,
    control: Option<Addr<Control>>,
    listener: Option<Addr<Listener>>,
    discovery: Option<Addr<Discovery>>,
    reach: Option<Addr<Reach>>,
    /// What `reach` found (kept here across its restarts, for `status`).
    reach_status: std::sync::Arc<tokio::sync::watch::Sender<ReachStatus>>,
    /// The addresses `reach` learned, which discovery announces.
    learned: std::sync::Arc<tokio::sync::watch::Sender<Vec<clearskies_protocol::address::PeerAddr>>>,
    /// The port mappings made, removed by the worker after the system stops.
    leases: Leases,
    metrics_server: Option<Addr<WebServer>>,
    /// The web interface over HTTPS: its listener until the server starts, its address (to
    /// bind again after a crash) and TLS configuration.
    https_listener: Option<std::net::TcpListener>,
    https: Option<(SocketAddr, std::sync::Arc<rustls::ServerConfig>)>,
    backoff: Backoff,
    /// Sends the settings in effect to their owners (after `config set`).
    runtime_tx: tokio::sync::watch::Sender<config::Values>,
    runtime: config::Runtime,
    /// Actors restarted since the worker started.
    actor_restarts: u64,
}

impl Supervisor {
    /// A supervisor that will serve the control socket on `control_listener` (already bound
    /// by the caller, so that a second daemon fails before any actor starts) and keep its
    /// index in `store`.
    pub fn new(
        settings: Settings,
        store: Store,
        control_listener: std::os::unix::net::UnixListener,
        peer_listener: std::net::TcpListener,
        metrics_listener: Option<std::net::TcpListener>,
        server_secret: [u8; 32],
    ) -> Self {
        let mut token = [0u8; 32];
        // The key of `/files/` tokens. Without the OS RNG nothing is unguessable: serve no files.
        let files_token = if getrandom::fill(&mut token).is_ok() { hex::encode(token) } else { String::new() };
        let throttle =
            std::sync::Arc::new(crate::listener::throttle::AuthThrottle::new(settings.config.auth_attempts_per_minute));
        let (table_tx, table) = tokio::sync::watch::channel(ShareTable::default());
        let (runtime_tx, runtime) = config::Runtime::channel(settings.config.clone());
        Supervisor {
            files_token,
            metrics_addr: metrics_listener.as_ref().and_then(|l| l.local_addr().ok()),
            metrics_listener,
            settings,
            store,
            started: Instant::now(),
            paused: false,
            control_listener: Some(control_listener),
            listen_addr: peer_listener.local_addr().ok(),
            peer_listener: Some(peer_listener),
            udp: None,
            tls: None,
            server_secret,
            throttle,
            table,
            table_tx: Some(table_tx),
            owners: None,
            control: None,
            listener: None,
            discovery: None,
            reach: None,
            reach_status: std::sync::Arc::new(tokio::sync::watch::Sender::new(ReachStatus::default())),
            learned: std::sync::Arc::new(tokio::sync::watch::Sender::new(Vec::new())),
            leases: Leases::default(),
            metrics_server: None,
            https_listener: None,
            https: None,
            backoff: Backoff::default(),
            runtime_tx,
            runtime,
            actor_restarts: 0,
        }
    }

    /// Keeps the port mappings it makes in `leases`, for the caller to remove after the
    /// system stops ([`Leases::release_blocking`]).
    pub fn with_leases(mut self, leases: Leases) -> Self {
        self.leases = leases;
        self
    }

    /// Serves the web interface over HTTPS too, on `https`'s listener.
    pub fn with_https(mut self, https: Option<(std::net::TcpListener, std::sync::Arc<rustls::ServerConfig>)>) -> Self {
        if let Some((listener, tls)) = https {
            self.https = listener.local_addr().ok().map(|a| (a, tls));
            self.https_listener = Some(listener);
        }
        self
    }

    fn crash_report(ctx: &Context<Self>, kind: ActorKind) -> (actix::Recipient<Crashed>, Crashed) {
        (ctx.address().recipient(), Crashed { kind, share: None, conn: None })
    }

    /// Builds the three owners, each wired to the others' addresses (taken from their
    /// contexts before any of them runs).
    fn start_owners(&mut self, table_tx: tokio::sync::watch::Sender<ShareTable>, ctx: &mut Context<Self>) -> Owners {
        let (shares_ctx, access_ctx, connections_ctx) = (Context::new(), Context::new(), Context::new());
        let owners = Owners {
            shares: shares_ctx.address(),
            access: access_ctx.address(),
            connections: connections_ctx.address(),
        };
        let me = ctx.address();
        let access = Access::new(
            self.store.clone(),
            table_tx.subscribe(),
            owners.connections.clone().recipient(),
            owners.connections.clone().recipient(),
        );
        let targets = ConnectionsTargets {
            code_used: owners.access.clone().recipient(),
            release: owners.access.clone().recipient(),
            join: owners.shares.clone().recipient(),
            import: owners.shares.clone().recipient(),
            forget: owners.shares.clone().recipient(),
            rekeyed: owners.shares.clone().recipient(),
            crashed: me.clone().recipient(),
            runtime: self.runtime.clone(),
            spreadable: owners.access.clone().recipient(),
            codes_in: owners.access.clone().recipient(),
        };
        let own_port = self.listen_addr.map(|a| a.port());
        let dialer = crate::transport::Dialer::new(self.udp.as_ref());
        let connections =
            Connections::with_own_port(&self.settings, table_tx.subscribe(), self.tls.clone(), targets, own_port)
                .with_dialer(dialer);
        let targets = SharesTargets {
            started: owners.connections.clone().recipient(),
            stopped: owners.connections.clone().recipient(),
            auth_refused: owners.connections.clone().recipient(),
            rekey: owners.connections.clone().recipient(),
            removed: owners.access.clone().recipient(),
            crashed: me.clone().recipient(),
            loaded: me.recipient(),
        };
        let files = FileServing { addr: self.metrics_addr, token: self.files_token.clone() };
        let shares = Shares::new(&self.settings, self.store.clone(), table_tx, targets, files, self.runtime.clone());
        let (to, crash) = Self::crash_report(ctx, ActorKind::Access);
        supervise::start_in(access_ctx, access, to, crash);
        let (to, crash) = Self::crash_report(ctx, ActorKind::Connections);
        supervise::start_in(connections_ctx, connections, to, crash);
        let (to, crash) = Self::crash_report(ctx, ActorKind::Shares);
        supervise::start_in(shares_ctx, shares, to, crash);
        owners
    }

    /// Where each control command goes (the control socket's and the web interface's).
    fn control_targets(&self, ctx: &Context<Self>) -> Option<ControlTargets> {
        let o = self.owners.clone()?;
        let me = ctx.address();
        Some(ControlTargets {
            status: me.clone().recipient(),
            pause: me.clone().recipient(),
            shutdown: me.clone().recipient(),
            get_config: me.clone().recipient(),
            set_config: me.clone().recipient(),
            inject_fault: self.settings.fault_injection.then(|| me.clone().recipient()),
            create_share: o.shares.clone().recipient(),
            list_shares: o.shares.clone().recipient(),
            remove_share: o.shares.clone().recipient(),
            confirm_deletes: o.shares.clone().recipient(),
            history: o.shares.clone().recipient(),
            rotate_keys: o.shares.clone().recipient(),
            verify_backup: o.shares.clone().recipient(),
            read_file: o.shares.clone().recipient(),
            list_files: o.shares.clone().recipient(),
            file_url: o.shares.recipient(),
            web_login: me.clone().recipient(),
            web_password: me.clone().recipient(),
            create_access_code: o.access.clone().recipient(),
            list_codes: o.access.clone().recipient(),
            cancel_code: o.access.clone().recipient(),
            export_keys: o.access.recipient(),
            add_share: o.connections.clone().recipient(),
            list_peers: o.connections.clone().recipient(),
            remove_peer: o.connections.recipient(),
        })
    }

    fn start_control(&mut self, listener: std::os::unix::net::UnixListener, ctx: &mut Context<Self>) {
        let Some(targets) = self.control_targets(ctx) else { return };
        let (to, crash) = Self::crash_report(ctx, ActorKind::Control);
        let control = Control::new(listener, self.settings.software.clone(), targets);
        self.control = Some(supervise::start(control, to, crash));
    }

    fn start_listener(&mut self, listener: std::net::TcpListener, ctx: &mut Context<Self>) {
        let (Some(tls), Some(o)) = (self.tls.clone(), self.owners.clone()) else { return };
        let peer = crate::peer::actor::PeerTargets {
            code_used: o.access.clone().recipient(),
            release: o.access.clone().recipient(),
            join: o.shares.clone().recipient(),
            rekeyed: o.shares.recipient(),
            connected: o.connections.clone().recipient(),
            disconnected: o.connections.clone().recipient(),
            crashed: ctx.address().recipient(),
            runtime: self.runtime.clone(),
            codes: o.connections.recipient(),
        };
        let targets = ListenerTargets { lookup: o.access.clone().recipient(), claim: o.access.recipient(), peer };
        let (to, crash) = Self::crash_report(ctx, ActorKind::Listener);
        let utp = self.udp.as_ref().map(|u| u.utp.clone());
        let listener = Listener::new(listener, tls, self.server_secret, targets, self.throttle.clone()).with_utp(utp);
        self.listener = Some(supervise::start(listener, to, crash));
    }

    fn start_web(
        &mut self,
        listener: Option<std::net::TcpListener>,
        https: Option<std::net::TcpListener>,
        ctx: &mut Context<Self>,
    ) {
        let (Some(o), Some(control)) = (self.owners.clone(), self.control_targets(ctx)) else { return };
        let (to, crash) = Self::crash_report(ctx, ActorKind::Metrics);
        let targets = crate::web::WebTargets {
            control,
            shares: o.shares.clone().recipient(),
            read: o.shares.clone().recipient(),
            subscribe: o.shares.recipient(),
            table: self.table.clone(),
            files_token: self.files_token.clone(),
            data_dir: self.settings.data_dir.clone(),
            index_memory: self.store.memory_probe(),
        };
        let https = https.zip(self.https.as_ref().map(|(_, tls)| tls.clone()));
        let server = WebServer::new(listener, https, targets);
        self.metrics_server = Some(supervise::start(server, to, crash));
    }

    fn start_discovery(&mut self, ctx: &mut Context<Self>) {
        let Some(o) = self.owners.clone() else { return };
        let listen = self.listen_addr;
        let settings = DiscoverySettings {
            trackers: self.settings.config.trackers.clone(),
            lan: self.settings.config.lan(),
            listen: listen.unwrap_or_else(|| SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))),
            learned: self.learned.subscribe(),
        };
        let (to, crash) = Self::crash_report(ctx, ActorKind::Discovery);
        let discovery = supervise::start(Discovery::new(settings, o.connections.clone().recipient()), to, crash);
        o.connections.do_send(UseDiscovery(discovery.clone()));
        self.discovery = Some(discovery);
    }

    fn start_reach(&mut self, ctx: &mut Context<Self>) {
        let Some(listen) = self.listen_addr else { return };
        let config = &self.settings.config;
        let settings = ReachSettings {
            listen,
            port_mapping: config.port_mapping,
            stun_servers: config.stun_servers.clone(),
            trackers: !config.trackers.is_empty(),
        };
        let (to, crash) = Self::crash_report(ctx, ActorKind::Reach);
        let udp = self.udp.as_ref().map(|u| u.udp.clone());
        let reach = Reach::new(settings, self.reach_status.clone(), self.learned.clone(), self.leases.clone(), udp);
        self.reach = Some(supervise::start(reach, to, crash));
    }

    /// Starts a crashed actor again, as it was started at first (sockets bound again at the
    /// same address).
    fn restart(&mut self, crash: Crashed, ctx: &mut Context<Self>) {
        let bind_tcp = |addr: Option<SocketAddr>| addr.map(crate::net::bind_tcp).transpose();
        let result = match crash.kind {
            ActorKind::Control => {
                crate::control::bind(&self.settings.control_socket).map(|l| self.start_control(l, ctx))
            }
            ActorKind::Listener => bind_tcp(self.listen_addr).map(|l| l.map_or((), |l| self.start_listener(l, ctx))),
            ActorKind::Metrics => bind_tcp(self.metrics_addr)
                .and_then(|plain| Ok((plain, bind_tcp(self.https.as_ref().map(|(a, _)| *a))?)))
                .map(|(plain, https)| self.start_web(plain, https, ctx)),
            ActorKind::Discovery => {
                self.start_discovery(ctx);
                Ok(())
            }
            ActorKind::Reach => {
                self.start_reach(ctx);
                Ok(())
            }
            ActorKind::Share | ActorKind::Transfer => {
                if let (Some(id), Some(o)) = (crash.share, &self.owners) {
                    o.shares.do_send(RestartShare(id));
                }
                Ok(())
            }
            ActorKind::Peer | ActorKind::Shares | ActorKind::Access | ActorKind::Connections => Ok(()),
        };
        if let Err(e) = result {
            error!(actor = crash.kind.name(), error = %e, "cannot restart the actor; trying again");
            ctx.notify_later(crash, MAX_RESTART_DELAY);
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        match TlsContext::new() {
            Ok(tls) => self.tls = Some(tls),
            Err(e) => error!(error = %e, "cannot set up TLS; no peer can connect"),
        }
        self.udp = self.listen_addr.and_then(|at| match crate::transport::utp::UdpSide::open(at) {
            Ok(side) => Some(side),
            Err(e) => {
                warn!(port = at.port(), error = %e, "cannot open the peer port for UDP: no uTP, no STUN");
                None
            }
        });
        if let Some(table_tx) = self.table_tx.take() {
            self.owners = Some(self.start_owners(table_tx, ctx));
        }
        if self.metrics_listener.is_some() || self.https_listener.is_some() {
            let (plain, https) = (self.metrics_listener.take(), self.https_listener.take());
            self.start_web(plain, https, ctx);
        }
        metrics().worker_restarts.inc_by(self.settings.monitor.restarts);
        if let Some(listener) = self.control_listener.take() {
            self.start_control(listener, ctx);
        }
        info!(data_dir = %self.settings.data_dir.display(), "worker started");
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(udp) = &self.udp {
            udp.close();
        }
    }
}

impl Handler<SharesLoaded> for Supervisor {
    type Result = ();

    /// Peers are let in, and discovery announces, once the shares run.
    fn handle(&mut self, _: SharesLoaded, ctx: &mut Context<Self>) {
        if let Some(listener) = self.peer_listener.take() {
            self.start_listener(listener, ctx);
        }
        if self.discovery.is_none() {
            self.start_discovery(ctx);
        }
        if self.reach.is_none() {
            self.start_reach(ctx);
        }
    }
}

impl Handler<Crashed> for Supervisor {
    type Result = ();

    fn handle(&mut self, crash: Crashed, ctx: &mut Context<Self>) {
        metrics().actor_restarts.with_label_values(&[crash.kind.name()]).inc();
        self.actor_restarts += 1;
        match crash.kind {
            ActorKind::Peer => {
                if let Some(o) = &self.owners {
                    o.connections.do_send(PeerCrashed(crash.conn));
                }
                return;
            }
            ActorKind::Shares | ActorKind::Access | ActorKind::Connections => {
                error!(
                    actor = crash.kind.name(),
                    "an owner of the daemon's state crashed (see the panic above); \
                    stopping the worker for the monitor to start a fresh one"
                );
                System::current().stop_with_code(OWNER_CRASHED);
                return;
            }
            _ => {}
        }
        // Back off when one kind keeps crashing: 0.1 s, doubling per crash within a minute.
        let delay = self.backoff.crashed(crash.kind, Instant::now());
        error!(actor = crash.kind.name(), share = ?crash.share.map(|s| s.to_string()), restart_in = ?delay,
            "an actor crashed (see the panic above); restarting it");
        ctx.run_later(delay, move |act, ctx| act.restart(crash, ctx));
    }
}

impl Handler<InjectFault> for Supervisor {
    type Result = ResponseFuture<Result<(), CommandError>>;

    fn handle(&mut self, msg: InjectFault, _: &mut Context<Self>) -> Self::Result {
        let result = self.inject(msg);
        Box::pin(async move { result?.await })
    }
}

impl Supervisor {
    /// Carries out a fault: `Ok` with what is left to wait for (a count of sessions hit).
    fn inject(&mut self, msg: InjectFault) -> Result<Pending, CommandError> {
        if !self.settings.fault_injection {
            return Err(CommandError::new(ErrorCode::NotUnderstood, "fault injection is off"));
        }
        let none = |what: &str| CommandError::new(ErrorCode::NoTarget, format!("no {what} to inject the fault into"));
        let owners = self.owners.clone().ok_or_else(|| none("actor"))?;
        let table = self.table.borrow();
        let share = match &msg.path {
            Some(p) => table.by_path(p),
            None => table.iter().next(),
        };
        let (id, share_addr) = (share.map(|r| r.config.id), share.map(|r| r.addr.clone()));
        drop(table);
        let to_sessions = |fault: PeerFault, one: bool, what: String| {
            let hit = owners.connections.send(SessionFault { share: id, fault, one });
            Box::pin(async move {
                match hit.await {
                    Ok(0) | Err(_) => {
                        Err(CommandError::new(ErrorCode::NoTarget, format!("no {what} to inject the fault into")))
                    }
                    Ok(_) => Ok(()),
                }
            }) as Pending
        };
        let done = || Box::pin(async { Ok(()) }) as Pending;
        match msg.fault {
            Fault::FailNextWrite => {
                clearskies_index::store::fail_next_write();
                Ok(done())
            }
            Fault::Stall(d) => Ok(to_sessions(PeerFault::Stall(d), false, "connected peer".into())),
            Fault::Panic(ActorKind::Peer) => Ok(to_sessions(PeerFault::Panic, true, "peer actor".into())),
            Fault::Panic(kind) => {
                let panic = InjectPanic(kind);
                let sent = match kind {
                    ActorKind::Control => self.control.as_ref().map(|a| a.do_send(panic)),
                    ActorKind::Listener => self.listener.as_ref().map(|a| a.do_send(panic)),
                    ActorKind::Metrics => self.metrics_server.as_ref().map(|a| a.do_send(panic)),
                    ActorKind::Discovery => self.discovery.as_ref().map(|a| a.do_send(panic)),
                    ActorKind::Reach => self.reach.as_ref().map(|a| a.do_send(panic)),
                    ActorKind::Share | ActorKind::Transfer => share_addr.map(|a| a.do_send(panic)),
                    ActorKind::Shares => {
                        owners.shares.do_send(panic);
                        Some(())
                    }
                    ActorKind::Access => {
                        owners.access.do_send(panic);
                        Some(())
                    }
                    ActorKind::Connections => {
                        owners.connections.do_send(panic);
                        Some(())
                    }
                    ActorKind::Peer => None,
                };
                sent.map(|()| done()).ok_or_else(|| none(&format!("{} actor", kind.name())))
            }
        }
    }
}

impl Handler<GetConfig> for Supervisor {
    type Result = MessageResult<GetConfig>;

    fn handle(&mut self, _: GetConfig, _: &mut Context<Self>) -> Self::Result {
        let config = crate::control::cmd::settings_shown(&self.settings.config, self.listen_addr, self.metrics_addr);
        MessageResult(crate::control::cmd::ConfigAnswer { config, sources: self.settings.sources.clone() })
    }
}

impl Handler<SetConfig> for Supervisor {
    type Result = ResponseActFuture<Self, Result<(), CommandError>>;

    /// Checks every value first (all or nothing), saves them in `config.toml`, then hands
    /// the runtime ones to their owners; restart-only ones are answered `needs_restart`.
    fn handle(&mut self, SetConfig(changes): SetConfig, _: &mut Context<Self>) -> Self::Result {
        let saved = match crate::control::cmd::check_settings(&self.settings.config, &changes) {
            Ok(saved) => saved,
            Err(e) => return Box::pin(actix::fut::ready(Err(e))),
        };
        let file = self.settings.data_dir.join(config::CONFIG_FILE);
        let lines: Vec<(String, toml::Value)> = saved.iter().map(|(s, v)| (s.name.to_owned(), v.clone())).collect();
        let job = tokio::task::spawn_blocking(move || config::save(&file, &lines));
        Box::pin(job.into_actor(self).map(move |done, act, _| match done {
            // Onto the values in effect now (another change may have been saved meanwhile).
            Ok(Ok(())) => {
                let settings = &mut act.settings;
                let applied = crate::control::cmd::apply_settings(&mut settings.config, &mut settings.sources, &saved);
                act.runtime_tx.send_replace(act.settings.config.clone());
                applied
            }
            Ok(Err(e)) => Err(CommandError::new(ErrorCode::CannotSave, format!("cannot save config.toml: {e}"))),
            Err(e) => Err(CommandError::new(ErrorCode::Internal, e.to_string())),
        }))
    }
}

impl Handler<GetStatus> for Supervisor {
    type Result = ResponseFuture<Status>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        // Each read once: the two halves of a pair come from the same moment.
        let ((upload_rate, download_rate), (upload_limit, download_limit)) =
            (bandwidth().rates(), bandwidth().limits());
        let (sent_bytes, received_bytes) = metrics().peer_byte_totals();
        let mut status = Status {
            paused: self.paused,
            tracking: false,
            nat_punctured: self.reach_status.borrow().reachable == Some(true),
            upload_rate,
            download_rate,
            upload_limit,
            download_limit,
            software: self.settings.software.clone(),
            pid: std::process::id(),
            uptime_seconds: self.started.elapsed().as_secs(),
            daemon_uptime_seconds: self.settings.monitor.started.map(|t| {
                let now = u64::try_from(crate::share::actor::now().secs()).unwrap_or(0);
                now.saturating_sub(t)
            }),
            worker_restarts: self.settings.monitor.restarts,
            actor_restarts: self.actor_restarts,
            metrics: self.metrics_addr.map(|a| a.to_string()),
            web_https: self.https.as_ref().map(|(a, _)| a.to_string()),
            listen: self.listen_addr.map(|a| a.to_string()),
            reach: Some(self.reach_status.borrow().clone()).filter(|_| self.reach.is_some()),
            peers: 0,
            sent_bytes,
            received_bytes,
        };
        let count = self.owners.as_ref().map(|o| o.connections.send(CountPeers));
        Box::pin(async move {
            if let Some(count) = count {
                status.peers = count.await.unwrap_or(0);
            }
            status
        })
    }
}

impl Handler<SetPaused> for Supervisor {
    type Result = ();

    fn handle(&mut self, SetPaused(paused): SetPaused, _: &mut Context<Self>) {
        if self.paused != paused {
            info!(paused, "transfers {}", if paused { "paused" } else { "resumed" });
        }
        self.paused = paused;
        if let Some(o) = &self.owners {
            o.shares.do_send(PauseShares(paused));
        }
    }
}

/// How long uTP sessions get to say goodbye when the worker stops.
const UTP_GOODBYE: std::time::Duration = std::time::Duration::from_millis(300);

impl Handler<Shutdown> for Supervisor {
    type Result = ();

    /// uTP sessions are closed first, and the system stopped a moment later: unlike TCP's,
    /// whose end the kernel sends when the process exits, a uTP session's end (TLS
    /// close_notify, then FIN) is sent by this process, and without it the peer would notice
    /// only at its next ping.
    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        info!("stopping on request");
        match (&self.owners, &self.udp) {
            (Some(o), Some(_)) => {
                o.connections.do_send(crate::connections::messages::CloseUtpSessions);
                ctx.run_later(UTP_GOODBYE, |_, _| System::current().stop());
            }
            _ => System::current().stop(),
        }
    }
}
