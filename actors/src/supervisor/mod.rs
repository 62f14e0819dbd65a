//! The root actor of the worker: it starts the other actors, wires them together through
//! `Recipient`s and answers daemon-wide requests (status, pause, stop, shares, codes).
//!
//! Registry work (RocksDB writes, key files) runs on the blocking pool; the supervisor only
//! updates its map of share actors with the result.

pub mod messages;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, MessageResult, Recipient, ResponseActFuture,
    ResponseFuture, System, WrapFuture,
};
use clearskies_index::store::Store;
use clearskies_protocol::access_code::AccessCode;
use clearskies_protocol::auth::VerifierRecord;
use clearskies_protocol::message::core::AccessLevel;
use clearskies_protocol::session::{KeyExchange, Role};
use clearskies_protocol::{PeerId, Sha256Hash};
use tracing::{debug, error, info, warn};

use self::messages::{
    AddShare, CancelCode, CodeCreated, CodeEntry, CommandError, CreateAccessCode, CreateShare, Fault, FileUrl,
    GetConfig, GetStatus, InjectFault, JoinWith, ListCodes, ListPeers, ListShares, PeerEntry, ReadFile, RemoveShare,
    SetConfig, SetPaused, ShareCreated, Shutdown, Status,
};
use crate::bandwidth::bandwidth;
use crate::config;
use crate::control::cmd::ErrorCode;
use crate::control::{Control, ControlTargets};
use crate::discovery::{Discovered, Discovery, DiscoverySettings, SetIds};
use crate::listener::{Listener, ListenerTargets};
use crate::metrics::{metrics, MetricsServer};
use crate::peer::actor::{Peer, PeerTargets, Purpose};
use crate::peer::channel::{self, ChannelError, TlsContext};
use crate::peer::messages::{
    ClaimCredential, CodeUsed, Credential, CredentialKind, JoinShare, LookupCredential, PeerConnected,
    PeerDisconnected, PeerFault, PeerOut, Redial, ReleaseCredential,
};
use crate::share::messages::{GetShareStatus, PeerDown, PeerUp, ShareLink, ShareStatus, StopShare};
use crate::share::registry::{self, ShareConfig, ShareKeys};
use crate::share::worker::Exited;
use crate::share::Share;
use crate::supervise::{self, ActorKind, Crashed, InjectPanic};
use crate::transfer::messages::SetTransfersPaused;
use crate::Settings;

/// How long `add_share` waits for the TCP connection.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Addresses remembered from discovery (for `peers`), at most.
const MAX_FOUND: usize = 4096;
/// Peers dialled from one piece of news, at most.
const MAX_FOUND_PER_NEWS: usize = 64;
/// How long the higher peer ID waits for the lower one to dial before dialling itself.
const SECOND_DIALLER_WAIT: Duration = Duration::from_secs(3);
/// How long `add_share` without an address waits for discovery to find a peer.
const SEEK_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `add_share` waits for the key exchange after authenticating.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// First delay before re-dialling a remembered peer; doubles per failure up to [`MAX_REDIAL`].
const FIRST_REDIAL: Duration = Duration::from_millis(500);
const MAX_REDIAL: Duration = Duration::from_secs(60);
/// Delay before restarting a crashed actor; doubles per crash of that kind within
/// [`RESTART_WINDOW`], up to [`MAX_RESTART_DELAY`].
const FIRST_RESTART_DELAY: Duration = Duration::from_millis(100);
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);
const RESTART_WINDOW: Duration = Duration::from_secs(60);
/// How a dial refused by the peer's authentication reads (`peer::channel`).
const AUTH_FAILED: &str = "authentication failed";
/// How long a share restart waits for the old worker thread's last job.
const SHARE_EXIT_WAIT: Duration = Duration::from_secs(30);

/// A ready peer session, as the supervisor knows it.
#[derive(Debug)]
struct Session {
    share: Sha256Hash,
    peer: PeerId,
    addr: SocketAddr,
    out: Recipient<PeerOut>,
    redial: Redial,
}

/// A share key ready to authenticate a connection to one of the share's peers.
struct ShareKeyDial {
    tls: TlsContext,
    /// The keys to try, our own level's first: a read-write daemon falls back to the
    /// untrusted key for a peer that holds only that one (restoring from a backup).
    keys: Vec<(Sha256Hash, clearskies_protocol::SecretKey, AccessLevel)>,
    /// Our peer ID in the share.
    me: PeerId,
}

impl ShareKeyDial {
    /// TCP (with a deadline), then TLS + SRP with each key in turn until one is accepted;
    /// the channel and the level of the key that opened it.
    async fn connect(&self, addr: SocketAddr) -> std::io::Result<(channel::Channel, AccessLevel)> {
        let mut refused = None;
        for (id, key, level) in &self.keys {
            let tcp = tokio::time::timeout(DIAL_TIMEOUT, tokio::net::TcpStream::connect(addr))
                .await
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
            match channel::connect(tcp, &self.tls, *id, &hex::encode(key.as_bytes())).await {
                Ok(ch) => return Ok((ch, *level)),
                Err(e @ (ChannelError::AuthFailed { .. } | ChannelError::Refused(_))) => refused = Some(e),
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
        }
        Err(std::io::Error::other(refused.map_or_else(|| "no key to dial with".to_owned(), |e| e.to_string())))
    }
}

/// A share's keys with the SRP record derived from them (an expensive computation, done once).
#[derive(Debug, Clone)]
struct KeyMaterial {
    keys: ShareKeys,
    /// SRP records per key ID we accept (one per level we hold a key for), with the level.
    records: BTreeMap<Sha256Hash, (VerifierRecord, AccessLevel)>,
    /// The read-write public key (checks updates on connections with read-only peers).
    verify: Option<std::sync::Arc<clearskies_index::rsa::VerifyingKey>>,
    /// The read-write private key (read-write shares: signs for read-only peers).
    sign: Option<std::sync::Arc<clearskies_index::rsa::SigningKey>>,
    /// The untrusted extension's secrets (read-write shares).
    untrusted: Option<std::sync::Arc<clearskies_index::untrusted::UntrustedKeys>>,
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
    tls: Option<TlsContext>,
    server_secret: [u8; 32],
    /// Authentication rate limits, kept across listener restarts.
    throttle: std::sync::Arc<crate::listener::throttle::AuthThrottle>,
    control: Option<Addr<Control>>,
    listener: Option<Addr<Listener>>,
    shares: BTreeMap<Sha256Hash, (ShareConfig, Addr<Share>)>,
    keys: BTreeMap<Sha256Hash, KeyMaterial>,
    claimed: BTreeSet<Sha256Hash>,
    /// Single-use codes whose keys went out and whose use is being recorded: still claimed,
    /// whatever the connection does meanwhile.
    spending: BTreeSet<Sha256Hash>,
    peers: BTreeMap<(Sha256Hash, PeerId), SocketAddr>,
    /// Remembered peers being dialled or connected, by (share, `HOST:PORT`), with the
    /// number of failures since the last success.
    dials: BTreeMap<(Sha256Hash, String), u32>,
    discovery: Option<Addr<Discovery>>,
    /// Attaches waiting for discovery to find a peer: access ID → (our new peer ID, where
    /// found addresses go).
    seeking: BTreeMap<Sha256Hash, (PeerId, tokio::sync::mpsc::Sender<Vec<SocketAddr>>)>,
    /// Selective sync asked for by attaches under way, by the path they join into.
    selections: BTreeMap<PathBuf, clearskies_index::filter::Selection>,
    /// Addresses found by discovery, by (share, address): the source (`tracker`, `lan`).
    found: BTreeMap<(Sha256Hash, SocketAddr), &'static str>,
    /// Dials to discovered addresses in progress.
    found_dialing: BTreeSet<(Sha256Hash, SocketAddr)>,
    metrics_server: Option<Addr<MetricsServer>>,
    /// Per running share: resolves once its worker thread has ended.
    share_exits: BTreeMap<Sha256Hash, Exited>,
    /// Ready sessions by connection.
    sessions: BTreeMap<u64, Session>,
    /// Recent crashes per actor kind (for the restart backoff).
    crashes: BTreeMap<ActorKind, VecDeque<Instant>>,
    /// Actors restarted since the worker started.
    actor_restarts: u64,
    /// Shares whose known peers refused our key at the last dial (until a session is ready).
    auth_refused: BTreeSet<Sha256Hash>,
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
            tls: None,
            server_secret,
            throttle,
            control: None,
            listener: None,
            shares: BTreeMap::new(),
            keys: BTreeMap::new(),
            claimed: BTreeSet::new(),
            spending: BTreeSet::new(),
            peers: BTreeMap::new(),
            dials: BTreeMap::new(),
            discovery: None,
            seeking: BTreeMap::new(),
            selections: BTreeMap::new(),
            found: BTreeMap::new(),
            found_dialing: BTreeSet::new(),
            metrics_server: None,
            share_exits: BTreeMap::new(),
            sessions: BTreeMap::new(),
            crashes: BTreeMap::new(),
            actor_restarts: 0,
            auth_refused: BTreeSet::new(),
        }
    }

    /// Tells discovery every ID to announce: share key IDs, live codes' access IDs, and the
    /// codes of attaches looking for a peer.
    fn update_ids(&self) {
        let Some(d) = &self.discovery else { return };
        let mut ids: BTreeMap<Sha256Hash, PeerId> = BTreeMap::new();
        for (id, (c, _)) in &self.shares {
            ids.insert(*id, c.peer_id);
        }
        let now = crate::share::actor::now().secs();
        if let Ok(codes) = registry::load_codes(&self.store) {
            for code in codes.iter().filter(|c| c.is_usable(now)) {
                if let Some((c, _)) = self.shares.get(&code.share) {
                    ids.insert(code.access_id, c.peer_id);
                }
            }
        }
        for (id, (peer, _)) in &self.seeking {
            ids.insert(*id, *peer);
        }
        d.do_send(SetIds(ids));
    }

    /// Dials an address discovery found for a share, once (discovery reports it again if it
    /// is still there).
    fn dial_found(&mut self, share: Sha256Hash, addr: SocketAddr, ctx: &mut Context<Self>) {
        let Some(key) = self.share_key(share) else { return };
        if self.found_dialing.len() >= MAX_FOUND_PER_NEWS || !self.found_dialing.insert((share, addr)) {
            return;
        }
        let targets = Self::peer_targets(ctx);
        let attempt = async move {
            let (ch, level) = key.connect(addr).await?;
            let purpose = Purpose::Found { share, level };
            Peer::new(ch, Role::Client, KeyExchange::None, key.me, purpose, addr, targets).spawn();
            Ok::<(), std::io::Error>(())
        };
        ctx.spawn(attempt.into_actor(self).map(move |res, act, _| {
            act.found_dialing.remove(&(share, addr));
            if let Err(e) = res {
                info!(%share, peer = %addr, error = %e, "cannot reach a discovered peer");
            }
        }));
    }

    /// What dialling a share's peer with the share key needs, if the share is running.
    fn share_key(&self, share: Sha256Hash) -> Option<ShareKeyDial> {
        let ((config, _), material, tls) = (self.shares.get(&share)?, self.keys.get(&share)?, self.tls.clone()?);
        let mut keys = vec![(material.keys.key_id, material.keys.key, config.access_level)];
        if config.access_level == AccessLevel::ReadWrite {
            let untrusted = material.keys.key_ids().into_iter().filter(|(_, _, l)| *l == AccessLevel::Untrusted);
            keys.extend(untrusted);
        }
        Some(ShareKeyDial { tls, keys, me: config.peer_id })
    }

    fn peer_targets(ctx: &Context<Self>) -> PeerTargets {
        let me = ctx.address();
        PeerTargets {
            code_used: me.clone().recipient(),
            release: me.clone().recipient(),
            join: me.clone().recipient(),
            connected: me.clone().recipient(),
            disconnected: me.clone().recipient(),
            crashed: me.recipient(),
        }
    }

    fn load_keys(&mut self, config: &ShareConfig) {
        let read = registry::read_keys(&self.settings.data_dir, &config.id)
            .and_then(|keys| registry::complete_keys(&self.settings.data_dir, config, keys));
        match read {
            Ok(keys) => {
                let records = keys
                    .key_ids()
                    .into_iter()
                    .map(|(id, key, level)| (id, (registry::key_verifier(&id, &key), level)))
                    .collect();
                let verify = keys.verifying_key().map(std::sync::Arc::new);
                let sign = keys.signing_key().map(std::sync::Arc::new);
                let untrusted = keys.untrusted().map(std::sync::Arc::new);
                self.keys.insert(config.id, KeyMaterial { keys, records, verify, sign, untrusted });
            }
            Err(e) => error!(share = %config.id, error = %e, "cannot read the share's keys; peers cannot reconnect"),
        }
    }

    /// The share and level a key ID opens.
    fn key_owner(&self, id: &Sha256Hash) -> Option<(Sha256Hash, &VerifierRecord, AccessLevel)> {
        self.keys.iter().find_map(|(share, m)| m.records.get(id).map(|(r, level)| (*share, r, *level)))
    }

    /// The credential for an access ID or key ID, if it is live.
    fn credential(&self, id: &Sha256Hash) -> Option<Credential> {
        if let Some((share, record, level)) = self.key_owner(id) {
            let (config, _) = self.shares.get(&share)?;
            return Some(Credential {
                record: record.clone(),
                share,
                our_peer_id: config.peer_id,
                kind: CredentialKind::Key,
                keys: None,
                single_use: false,
                level,
            });
        }
        let now = crate::share::actor::now().secs();
        let code = registry::find_code(&self.store, id).ok()??;
        if !code.is_usable(now) {
            return None;
        }
        let (config, _) = self.shares.get(&code.share)?;
        let keys = self.keys.get(&code.share)?.keys.grant(code.access_level)?;
        Some(Credential {
            record: code.verifier_record(),
            share: code.share,
            our_peer_id: config.peer_id,
            kind: CredentialKind::Code,
            keys: Some(keys),
            single_use: !code.multi_use,
            level: code.access_level,
        })
    }

    /// Dials a remembered peer of `share` with the share key, after `delay`; on failure
    /// tries again with a doubled delay. A share that is removed stops its dials.
    fn dial(&mut self, share: Sha256Hash, addr: String, delay: Duration, ctx: &mut Context<Self>) {
        self.dials.entry((share, addr.clone())).or_insert(0);
        ctx.run_later(delay, move |act, ctx| {
            let Some(key) = act.share_key(share) else {
                act.dials.remove(&(share, addr));
                return;
            };
            let targets = Self::peer_targets(ctx);
            let target = addr.clone();
            let dialled = addr.clone();
            let attempt = async move {
                let sock = tokio::net::lookup_host(&target).await?.next().ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, format!("cannot resolve {target}"))
                })?;
                let (ch, level) = key.connect(sock).await?;
                let purpose = Purpose::Rejoin { share, dialled, level };
                Peer::new(ch, Role::Client, KeyExchange::None, key.me, purpose, sock, targets).spawn();
                Ok::<(), std::io::Error>(())
            };
            ctx.spawn(attempt.into_actor(act).map(move |res, act, ctx| {
                if let Err(e) = res {
                    if e.to_string().contains(AUTH_FAILED) {
                        act.auth_refused.insert(share);
                    }
                    let failures = act.dials.entry((share, addr.clone())).or_insert(0);
                    *failures = failures.saturating_add(1);
                    let next = FIRST_REDIAL.saturating_mul(1 << (*failures).min(8)).min(MAX_REDIAL);
                    info!(%share, peer = %addr, error = %e, retry_in = ?next, "cannot reach a known peer");
                    act.dial(share, addr, next, ctx);
                }
            }));
        });
    }

    fn start_share(&mut self, config: ShareConfig, ctx: &mut Context<Self>) {
        // Shares made before this was refused: one that contains the data directory runs
        // (the scanner and the watcher skip the data directory); one inside it does not.
        if let Err(e @ registry::RegistryError::DataDir { relation: "is" | "is inside", .. }) =
            registry::check_not_data_dir(&self.settings.data_dir, &config.path)
        {
            error!(share = %config.id, error = %e, "not starting the share: detach it");
            return;
        }
        self.load_keys(&config);
        match self.store.share(&config.store_key()) {
            Ok(store) => {
                let joined = !config.peers.is_empty();
                let crashed = ctx.address().recipient();
                match Share::spawn(&config, store, joined, crashed) {
                    Ok((addr, exited)) => {
                        if self.paused {
                            addr.do_send(SetTransfersPaused(true));
                        }
                        self.share_exits.insert(config.id, exited);
                        self.shares.insert(config.id, (config, addr));
                    }
                    Err(e) => error!(share = %config.id, error = %e, "cannot start the share"),
                }
            }
            Err(e) => error!(share = %config.id, error = %e, "cannot open the share's index"),
        }
    }

    fn share_by_path(&self, path: &std::path::Path) -> Option<&ShareConfig> {
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        self.shares.values().map(|(c, _)| c).find(|c| c.path == canonical || c.path == path)
    }

    /// Sends `msg` to the `Share` actor of the share at `path`: `not_shared` if there is
    /// none, `unavailable` if it is restarting.
    fn forward<M>(&self, path: &std::path::Path, msg: M) -> ResponseFuture<Result<M::Result, CommandError>>
    where
        M: actix::Message + Send + 'static,
        M::Result: Send,
        Share: Handler<M>,
    {
        let share = self.share_by_path(path).and_then(|c| self.shares.get(&c.id)).map(|(_, a)| a.clone());
        let missing = not_shared(path);
        Box::pin(async move {
            share
                .ok_or(missing)?
                .send(msg)
                .await
                .map_err(|_| CommandError::new(ErrorCode::Unavailable, "the share is restarting"))
        })
    }
}

/// The error for a path that is not a shared directory.
fn not_shared(path: &std::path::Path) -> CommandError {
    CommandError::new(ErrorCode::NotShared, format!("{} is not a shared directory", path.display()))
}

impl Supervisor {
    fn crash_report(ctx: &Context<Self>, kind: ActorKind) -> (Recipient<Crashed>, Crashed) {
        (ctx.address().recipient(), Crashed { kind, share: None, conn: None })
    }

    fn start_control(&mut self, listener: std::os::unix::net::UnixListener, ctx: &mut Context<Self>) {
        let me = ctx.address();
        let targets = ControlTargets {
            status: me.clone().recipient(),
            pause: me.clone().recipient(),
            shutdown: me.clone().recipient(),
            create_share: me.clone().recipient(),
            list_shares: me.clone().recipient(),
            remove_share: me.clone().recipient(),
            create_access_code: me.clone().recipient(),
            add_share: me.clone().recipient(),
            list_codes: me.clone().recipient(),
            cancel_code: me.clone().recipient(),
            confirm_deletes: me.clone().recipient(),
            export_keys: me.clone().recipient(),
            verify_backup: me.clone().recipient(),
            list_peers: me.clone().recipient(),
            get_config: me.clone().recipient(),
            set_config: me.clone().recipient(),
            read_file: me.clone().recipient(),
            file_url: me.clone().recipient(),
            inject_fault: self.settings.fault_injection.then(|| me.recipient()),
        };
        let (to, crash) = Self::crash_report(ctx, ActorKind::Control);
        let control = Control::new(listener, self.settings.software.clone(), targets);
        self.control = Some(supervise::start(control, to, crash));
    }

    fn start_listener(&mut self, listener: std::net::TcpListener, ctx: &mut Context<Self>) {
        let Some(tls) = self.tls.clone() else { return };
        let me = ctx.address();
        let targets =
            ListenerTargets { lookup: me.clone().recipient(), claim: me.recipient(), peer: Self::peer_targets(ctx) };
        let (to, crash) = Self::crash_report(ctx, ActorKind::Listener);
        let listener = Listener::new(listener, tls, self.server_secret, targets, self.throttle.clone());
        self.listener = Some(supervise::start(listener, to, crash));
    }

    fn start_metrics(&mut self, listener: std::net::TcpListener, ctx: &mut Context<Self>) {
        let (to, crash) = Self::crash_report(ctx, ActorKind::Metrics);
        let me = ctx.address();
        let targets = crate::metrics::HttpTargets {
            shares: me.clone().recipient(),
            read: me.recipient(),
            files_token: self.files_token.clone(),
        };
        let server = MetricsServer::new(listener, targets);
        self.metrics_server = Some(supervise::start(server, to, crash));
    }

    fn start_discovery(&mut self, ctx: &mut Context<Self>) {
        let listen = self.listen_addr;
        let settings = DiscoverySettings {
            trackers: self.settings.config.trackers.clone(),
            lan: self.settings.config.lan(),
            listen_ip: listen.map(|a| a.ip()),
            listen_port: listen.map_or(0, |a| a.port()),
        };
        let (to, crash) = Self::crash_report(ctx, ActorKind::Discovery);
        self.discovery = Some(supervise::start(Discovery::new(settings, ctx.address().recipient()), to, crash));
        self.update_ids();
    }

    /// Starts a share and dials its remembered and configured peers.
    fn start_share_and_dial(&mut self, config: ShareConfig, ctx: &mut Context<Self>) {
        let id = config.id;
        let mut peers = config.peers.clone();
        peers.extend(self.settings.config.peers.iter().filter(|p| !config.peers.contains(p)).cloned());
        self.start_share(config, ctx);
        for addr in peers {
            self.dial(id, addr, Duration::ZERO, ctx);
        }
    }

    /// Starts a crashed actor again, as it was started at first (sockets bound again at the
    /// same address).
    fn restart(&mut self, crash: Crashed, ctx: &mut Context<Self>) {
        let bind_tcp = |addr: Option<SocketAddr>| addr.map(std::net::TcpListener::bind).transpose();
        let result = match crash.kind {
            ActorKind::Control => {
                crate::control::bind(&self.settings.control_socket).map(|l| self.start_control(l, ctx))
            }
            ActorKind::Listener => bind_tcp(self.listen_addr).map(|l| l.map_or((), |l| self.start_listener(l, ctx))),
            ActorKind::Metrics => bind_tcp(self.metrics_addr).map(|l| l.map_or((), |l| self.start_metrics(l, ctx))),
            ActorKind::Discovery => {
                self.start_discovery(ctx);
                Ok(())
            }
            ActorKind::Share | ActorKind::Transfer => {
                if let Some(id) = crash.share {
                    self.restart_share(id, ctx);
                }
                Ok(())
            }
            ActorKind::Peer => Ok(()),
        };
        if let Err(e) = result {
            error!(actor = crash.kind.name(), error = %e, "cannot restart the actor; trying again");
            ctx.notify_later(crash, MAX_RESTART_DELAY);
        }
    }

    /// A connection's actor panicked: nothing of it ran its clean-up, so forget it here (the
    /// share drops the subscriber, `peers` the entry) and dial it again as a lost connection
    /// would be.
    fn peer_crashed(&mut self, conn: Option<u64>, ctx: &mut Context<Self>) {
        let Some(s) = conn.and_then(|c| self.sessions.remove(&c)) else {
            error!("a connection crashed before its session was ready (see the panic above)");
            return;
        };
        error!(share = %s.share, peer = %s.peer, remote = %s.addr, "a connection crashed (see the panic above); dropped it");
        if let Some((_, addr)) = self.shares.get(&s.share) {
            if let Some(conn) = conn {
                addr.do_send(PeerDown { conn });
            }
        }
        if self.peers.get(&(s.share, s.peer)) == Some(&s.addr) {
            self.peers.remove(&(s.share, s.peer));
        }
        match s.redial {
            Redial::Address(addr) => self.dial(s.share, addr, FIRST_REDIAL, ctx),
            Redial::Found(addr) => self.dial_found(s.share, addr, ctx),
            Redial::ByPeer => {}
        }
    }

    /// A share's actor or its transfer actor crashed: stop what is left of the pair, close its
    /// sessions (their links point at the dead actor; the peers dial again), wait for its
    /// worker thread to finish its last job, then start the share again.
    fn restart_share(&mut self, id: Sha256Hash, ctx: &mut Context<Self>) {
        let Some((config, addr)) = self.shares.remove(&id) else { return };
        addr.do_send(StopShare);
        for s in self.sessions.values().filter(|s| s.share == id) {
            s.out.do_send(PeerOut::Close("the share is restarting".into()));
        }
        let exited = self.share_exits.remove(&id);
        let wait = async move {
            if let Some(exited) = exited {
                if tokio::time::timeout(SHARE_EXIT_WAIT, exited.wait()).await.is_err() {
                    warn!(share = %id, "the share's worker thread is still busy; restarting beside it");
                }
            }
        };
        ctx.spawn(wait.into_actor(self).map(move |(), act, ctx| {
            // Removed by the user meanwhile? Its registry entry tells.
            match registry::load_shares(&act.store) {
                Ok(configs) if configs.iter().any(|c| c.id == id) => {
                    info!(share = %id, path = %config.path.display(), "share restarted");
                    act.start_share_and_dial(config, ctx);
                    act.update_ids();
                }
                Ok(_) => {}
                Err(e) => error!(share = %id, error = %e, "cannot read the share list to restart the share"),
            }
        }));
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(listener) = self.metrics_listener.take() {
            self.start_metrics(listener, ctx);
        }
        metrics().worker_restarts.inc_by(self.settings.monitor.restarts);
        if let Some(listener) = self.control_listener.take() {
            self.start_control(listener, ctx);
        }
        match TlsContext::new() {
            Ok(tls) => {
                self.tls = Some(tls);
                if let Some(listener) = self.peer_listener.take() {
                    self.start_listener(listener, ctx);
                }
            }
            Err(e) => error!(error = %e, "cannot set up TLS; no peer can connect"),
        }
        match registry::load_shares(&self.store) {
            Ok(configs) => {
                for c in configs {
                    self.start_share_and_dial(c, ctx);
                }
            }
            Err(e) => error!(error = %e, "cannot load the share list"),
        }
        self.start_discovery(ctx);
        info!(data_dir = %self.settings.data_dir.display(), shares = self.shares.len(), "worker started");
    }
}

impl Handler<Crashed> for Supervisor {
    type Result = ();

    fn handle(&mut self, crash: Crashed, ctx: &mut Context<Self>) {
        metrics().actor_restarts.with_label_values(&[crash.kind.name()]).inc();
        self.actor_restarts += 1;
        if crash.kind == ActorKind::Peer {
            self.peer_crashed(crash.conn, ctx);
            return;
        }
        // Back off when one kind keeps crashing: 0.1 s, doubling per crash within a minute.
        let now = Instant::now();
        let recent = self.crashes.entry(crash.kind).or_default();
        recent.push_back(now);
        while recent.front().is_some_and(|t| now.duration_since(*t) > RESTART_WINDOW) {
            recent.pop_front();
        }
        let exponent = u32::try_from(recent.len() - 1).unwrap_or(u32::MAX).min(16);
        let delay = FIRST_RESTART_DELAY.saturating_mul(1 << exponent).min(MAX_RESTART_DELAY);
        error!(actor = crash.kind.name(), share = ?crash.share.map(|s| s.to_string()), restart_in = ?delay,
            "an actor crashed (see the panic above); restarting it");
        ctx.run_later(delay, move |act, ctx| act.restart(crash, ctx));
    }
}

impl Handler<InjectFault> for Supervisor {
    type Result = Result<(), CommandError>;

    fn handle(&mut self, msg: InjectFault, _: &mut Context<Self>) -> Self::Result {
        if !self.settings.fault_injection {
            return Err(CommandError::new(ErrorCode::NotUnderstood, "fault injection is off"));
        }
        let none = |what: &str| CommandError::new(ErrorCode::NoTarget, format!("no {what} to inject the fault into"));
        let share = match &msg.path {
            Some(p) => self.share_by_path(p).map(|c| c.id),
            None => self.shares.keys().next().copied(),
        };
        match msg.fault {
            Fault::FailNextWrite => {
                clearskies_index::store::fail_next_write();
                Ok(())
            }
            Fault::Stall(d) => {
                let mut stalled = 0;
                for s in self.sessions.values().filter(|s| share.is_none_or(|id| s.share == id)) {
                    s.out.do_send(PeerOut::Fault(PeerFault::Stall(d)));
                    stalled += 1;
                }
                if stalled == 0 {
                    return Err(none("connected peer"));
                }
                Ok(())
            }
            Fault::Panic(kind) => {
                let panic = InjectPanic(kind);
                let sent = match kind {
                    ActorKind::Control => self.control.as_ref().map(|a| a.do_send(panic)),
                    ActorKind::Listener => self.listener.as_ref().map(|a| a.do_send(panic)),
                    ActorKind::Metrics => self.metrics_server.as_ref().map(|a| a.do_send(panic)),
                    ActorKind::Discovery => self.discovery.as_ref().map(|a| a.do_send(panic)),
                    ActorKind::Share | ActorKind::Transfer => {
                        share.and_then(|id| self.shares.get(&id)).map(|(_, a)| a.do_send(panic))
                    }
                    ActorKind::Peer => {
                        let s = self.sessions.values().find(|s| share.is_none_or(|id| s.share == id));
                        s.map(|s| s.out.do_send(PeerOut::Fault(PeerFault::Panic)))
                    }
                };
                sent.ok_or_else(|| none(&format!("{} actor", kind.name())))
            }
        }
    }
}

impl Handler<GetConfig> for Supervisor {
    type Result = MessageResult<GetConfig>;

    fn handle(&mut self, _: GetConfig, _: &mut Context<Self>) -> Self::Result {
        MessageResult(crate::control::cmd::settings_shown(&self.settings.config, self.listen_addr, self.metrics_addr))
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
            Ok(Ok(())) => crate::control::cmd::apply_settings(&mut act.settings.config, &saved),
            Ok(Err(e)) => Err(CommandError::new(ErrorCode::CannotSave, format!("cannot save config.toml: {e}"))),
            Err(e) => Err(CommandError::new(ErrorCode::Internal, e.to_string())),
        }))
    }
}

impl Handler<GetStatus> for Supervisor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(Status {
            paused: self.paused,
            tracking: false,
            nat_punctured: false,
            upload_rate: bandwidth().rates().0,
            download_rate: bandwidth().rates().1,
            upload_limit: bandwidth().limits().0,
            download_limit: bandwidth().limits().1,
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
            listen: self.listen_addr.map(|a| a.to_string()),
            peers: self.peers.len(),
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
        for (_, addr) in self.shares.values() {
            addr.do_send(SetTransfersPaused(paused));
        }
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) {
        info!("stopping on request");
        System::current().stop();
    }
}

impl Supervisor {
    /// Joins a share with saved keys and dials `peer` with them.
    fn import_keys(
        &mut self,
        keys: clearskies_protocol::message::core::Keys,
        path: PathBuf,
        peer: Option<String>,
        selection: clearskies_index::filter::Selection,
    ) -> ResponseActFuture<Self, Result<ShareCreated, CommandError>> {
        let Some(peer) = peer else {
            let e = CommandError::new(
                ErrorCode::NoPeer,
                "with saved keys, give the address of a peer to restore from (--peer)",
            );
            return Box::pin(actix::fut::ready(Err(e)));
        };
        if let Some(p) = self.share_by_path(&path) {
            let e = CommandError::new(ErrorCode::AlreadyShared, format!("{} is already shared", p.path.display()));
            return Box::pin(actix::fut::ready(Err(e)));
        }
        let (store, data_dir) = (self.store.clone(), self.settings.data_dir.clone());
        let now = crate::share::actor::now();
        let mut peer_id = [0u8; 16];
        let random_ok = getrandom::fill(&mut peer_id).is_ok();
        let via = peer.clone();
        let job = tokio::task::spawn_blocking(move || {
            if !random_ok {
                return Err(CommandError::new(ErrorCode::RandomFailed, "the OS RNG failed"));
            }
            let joining = registry::Joining { path: &path, peer_id: PeerId(peer_id), via: &via, selection };
            registry::join_share(&store, &data_dir, joining, &keys, now)
                .map_err(|e| CommandError::new(e.code(), format!("cannot use these keys: {e}")))
        });
        Box::pin(job.into_actor(self).map(move |joined, act, ctx| {
            let config = joined.map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))??;
            info!(share = %config.id, path = %config.path.display(), "joined a share with saved keys");
            let created = ShareCreated { path: config.path.display().to_string(), id: config.id.to_string() };
            let id = config.id;
            act.start_share(config, ctx);
            act.update_ids();
            act.dial(id, peer, Duration::ZERO, ctx);
            Ok(created)
        }))
    }
}

impl Handler<messages::ExportKeys> for Supervisor {
    type Result = Result<clearskies_protocol::message::core::Keys, CommandError>;

    fn handle(&mut self, msg: messages::ExportKeys, _: &mut Context<Self>) -> Self::Result {
        let config = self
            .share_by_path(&msg.path)
            .ok_or_else(|| CommandError::new(ErrorCode::NotShared, format!("{} is not shared", msg.path.display())))?;
        let material = self
            .keys
            .get(&config.id)
            .ok_or_else(|| CommandError::new(ErrorCode::NoKeys, "the share's keys are not loaded"))?;
        material
            .keys
            .grant(config.access_level)
            .ok_or_else(|| CommandError::new(ErrorCode::NoKeys, "the share's keys are incomplete"))
    }
}

impl Handler<CreateShare> for Supervisor {
    type Result = ResponseActFuture<Self, Result<ShareCreated, CommandError>>;

    fn handle(&mut self, msg: CreateShare, _: &mut Context<Self>) -> Self::Result {
        let (store, data_dir) = (self.store.clone(), self.settings.data_dir.clone());
        let now = crate::share::actor::now();
        let job = tokio::task::spawn_blocking(move || registry::create_share(&store, &data_dir, &msg.path, now));
        Box::pin(job.into_actor(self).map(|joined, act, ctx| {
            let config = joined.map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))??;
            info!(share = %config.id, path = %config.path.display(), "share created");
            let created = ShareCreated { path: config.path.display().to_string(), id: config.id.to_string() };
            let id = config.id;
            act.start_share(config, ctx);
            act.update_ids();
            for addr in act.settings.config.peers.clone() {
                act.dial(id, addr, Duration::ZERO, ctx);
            }
            Ok(created)
        }))
    }
}

impl Handler<ListShares> for Supervisor {
    type Result = ResponseActFuture<Self, Vec<ShareStatus>>;

    fn handle(&mut self, _: ListShares, _: &mut Context<Self>) -> Self::Result {
        let asks: Vec<_> = self
            .shares
            .values()
            .map(|(c, a)| (c.id, c.peer_id, c.path.clone(), self.auth_refused.contains(&c.id), a.send(GetShareStatus)))
            .collect();
        Box::pin(
            async move {
                let mut out = Vec::with_capacity(asks.len());
                for (id, peer_id, path, refused, ask) in asks {
                    let mut status = ask.await.unwrap_or_else(|_| unavailable_share(path));
                    status.id = id.to_string();
                    status.peer_id = peer_id.to_string();
                    if refused && status.peers == 0 && status.status != "error" {
                        status.status = "error";
                        status.error = Some(
                            "the share's peers refuse our key (authentication failed): they may have removed \
                             the share; attach again with a new code"
                                .into(),
                        );
                        status.synced = false;
                    }
                    out.push(status);
                }
                out
            }
            .into_actor(self),
        )
    }
}

fn unavailable_share(path: PathBuf) -> ShareStatus {
    ShareStatus {
        path: path.display().to_string(),
        status: "error",
        error: Some("the share's actor is restarting".into()),
        mode: "unknown",
        files: 0,
        directories: 0,
        bytes: 0,
        revision: 0,
        synced: false,
        pending_files: 0,
        pending_bytes: 0,
        peers: 0,
        local_changes: 0,
        held_deletions: 0,
        unwatched: None,
        id: String::new(),
        peer_id: String::new(),
        in_sync_since: None,
        last_synced: None,
    }
}

impl Handler<messages::VerifyBackup> for Supervisor {
    type Result = ResponseFuture<Result<Vec<crate::share::messages::BackupCheck>, CommandError>>;

    fn handle(&mut self, msg: messages::VerifyBackup, _: &mut Context<Self>) -> Self::Result {
        self.forward(&msg.path, crate::share::messages::VerifyBackup { files: msg.files })
    }
}

impl Handler<messages::ConfirmDeletes> for Supervisor {
    type Result = ResponseFuture<Result<usize, CommandError>>;

    fn handle(&mut self, msg: messages::ConfirmDeletes, _: &mut Context<Self>) -> Self::Result {
        self.forward(&msg.path, crate::share::messages::ConfirmDeletes)
    }
}

impl Handler<ReadFile> for Supervisor {
    type Result = ResponseFuture<Result<crate::share::messages::Reading, CommandError>>;

    fn handle(&mut self, msg: ReadFile, _: &mut Context<Self>) -> Self::Result {
        let reading = self.forward(&msg.path, msg.read);
        Box::pin(async move { reading.await? })
    }
}

impl Handler<FileUrl> for Supervisor {
    type Result = Result<String, CommandError>;

    fn handle(&mut self, msg: FileUrl, _: &mut Context<Self>) -> Self::Result {
        let Some(config) = self.share_by_path(&msg.path) else { return Err(not_shared(&msg.path)) };
        let addr = match self.metrics_addr {
            Some(a) if a.ip().is_loopback() && !self.files_token.is_empty() => a,
            _ => {
                let why = "files are served over HTTP only on a loopback metrics address (metrics_address)";
                return Err(CommandError::new(ErrorCode::NoHttp, why));
            }
        };
        let file: String = msg
            .file
            .trim_start_matches('/')
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => char::from(b).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect();
        let lifetime = msg.lifetime.unwrap_or(crate::metrics::DEFAULT_URL_LIFETIME);
        if lifetime == 0 || lifetime > crate::metrics::MAX_URL_LIFETIME {
            let why = format!("an address is valid for 1 s to {} days", crate::metrics::MAX_URL_LIFETIME / 86_400);
            return Err(CommandError::new(ErrorCode::BadExpiry, why));
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let token =
            crate::metrics::url_token(self.files_token.as_bytes(), &config.id.to_string(), &msg.file, now + lifetime);
        Ok(format!("http://{addr}/files/{token}/{}/{file}", config.id))
    }
}

impl Handler<RemoveShare> for Supervisor {
    type Result = ResponseActFuture<Self, Result<(), CommandError>>;

    fn handle(&mut self, msg: RemoveShare, _: &mut Context<Self>) -> Self::Result {
        if let Some(id) = self.share_by_path(&msg.path).map(|c| c.id) {
            if let Some((_, addr)) = self.shares.remove(&id) {
                addr.do_send(StopShare);
            }
            self.keys.remove(&id);
            self.dials.retain(|(share, _), _| *share != id);
            self.found.retain(|(share, _), _| *share != id);
            self.update_ids();
        }
        let (store, data_dir) = (self.store.clone(), self.settings.data_dir.clone());
        let job = tokio::task::spawn_blocking(move || registry::remove_share(&store, &data_dir, &msg.path));
        Box::pin(job.into_actor(self).map(|joined, _, _| {
            let config = joined.map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))??;
            info!(share = %config.id, path = %config.path.display(), "share removed (files kept)");
            Ok(())
        }))
    }
}

impl Handler<CreateAccessCode> for Supervisor {
    type Result = ResponseActFuture<Self, Result<CodeCreated, CommandError>>;

    fn handle(&mut self, msg: CreateAccessCode, _: &mut Context<Self>) -> Self::Result {
        let share = self.share_by_path(&msg.path).cloned();
        let store = self.store.clone();
        let now = crate::share::actor::now();
        let job = async move {
            let share = share.ok_or_else(|| {
                CommandError::new(ErrorCode::NotShared, format!("{} is not shared", msg.path.display()))
            })?;
            let level = match msg.mode.as_str() {
                "read_write" | "read-write" => AccessLevel::ReadWrite,
                "read_only" | "read-only" => AccessLevel::ReadOnly,
                "untrusted" => AccessLevel::Untrusted,
                other => return Err(CommandError::new(ErrorCode::BadMode, format!("unknown mode {other:?}"))),
            };
            match (share.access_level, level) {
                (AccessLevel::ReadWrite, _) | (AccessLevel::ReadOnly, AccessLevel::ReadOnly) => {}
                (AccessLevel::ReadOnly, _) => {
                    return Err(CommandError::new(
                        ErrorCode::BadMode,
                        "this computer holds the share read-only: it can only give read-only codes",
                    ))
                }
                _ => {
                    return Err(CommandError::new(
                        ErrorCode::BadMode,
                        "this computer holds only encrypted data of the share: it cannot give codes",
                    ))
                }
            }
            if matches!(msg.lifetime, registry::Lifetime::Secs(s) if s <= 0) {
                return Err(CommandError::new(ErrorCode::BadExpiry, "a code must stay valid for at least one second"));
            }
            let secret = match msg.custom {
                None => registry::CodeSecret::Generated,
                Some((username, password)) => {
                    let credentials = clearskies_protocol::access_code::Credentials::custom(&username, &password)
                        .map_err(|e| CommandError::new(ErrorCode::BadCredentials, e.to_string()))?;
                    registry::CodeSecret::Custom { username, credentials }
                }
            };
            let (lifetime, multi_use) = (msg.lifetime, msg.multi_use);
            let issued = tokio::task::spawn_blocking(move || {
                registry::create_code(&store, &share, level, lifetime, multi_use, secret, now)
            })
            .await
            .map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))??;
            Ok(CodeCreated {
                access_code: issued.code.as_ref().map(ToString::to_string),
                url: issued.code.as_ref().map(AccessCode::to_url),
                username: issued.record.username,
                access_id: issued.record.access_id.to_string(),
                expires: issued.record.expires,
                multi_use: issued.record.multi_use,
            })
        };
        Box::pin(job.into_actor(self).map(|res, act, _| {
            if res.is_ok() {
                act.update_ids();
            }
            res
        }))
    }
}

impl Supervisor {
    /// A code as `list_access_codes` shows it.
    fn code_entry(&self, code: registry::CodeRecord, now: i64) -> CodeEntry {
        let path = self.shares.get(&code.share).map(|(c, _)| c.path.display().to_string()).unwrap_or_default();
        CodeEntry {
            access_id: code.access_id.to_string(),
            state: code.state(now),
            mode: registry::level_name(code.access_level),
            username: code.username,
            path,
            created: code.created,
            expires: code.expires,
            multi_use: code.multi_use,
            used_by: code.used_by.iter().map(ToString::to_string).collect(),
        }
    }
}

impl Handler<ListCodes> for Supervisor {
    type Result = ResponseActFuture<Self, Result<Vec<CodeEntry>, CommandError>>;

    fn handle(&mut self, _: ListCodes, _: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        let job = tokio::task::spawn_blocking(move || registry::load_codes(&store));
        Box::pin(job.into_actor(self).map(|res, act, _| {
            let mut codes = res.map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))??;
            codes.sort_by_key(|c| c.created);
            let now = crate::share::actor::now().secs();
            Ok(codes.into_iter().map(|c| act.code_entry(c, now)).collect())
        }))
    }
}

impl Handler<CancelCode> for Supervisor {
    type Result = ResponseActFuture<Self, Result<CodeEntry, CommandError>>;

    fn handle(&mut self, CancelCode(which): CancelCode, _: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        let job = tokio::task::spawn_blocking(move || registry::cancel_code(&store, &which));
        Box::pin(job.into_actor(self).map(|res, act, _| {
            let code = res.map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))??;
            info!(code = %code.access_id, "cancelled an access code");
            act.update_ids();
            Ok(act.code_entry(code, crate::share::actor::now().secs()))
        }))
    }
}

impl Handler<LookupCredential> for Supervisor {
    type Result = MessageResult<LookupCredential>;

    fn handle(&mut self, LookupCredential(id): LookupCredential, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.credential(&id))
    }
}

impl Handler<ClaimCredential> for Supervisor {
    type Result = MessageResult<ClaimCredential>;

    fn handle(&mut self, ClaimCredential(id): ClaimCredential, _: &mut Context<Self>) -> Self::Result {
        let cred = self.credential(&id);
        if cred.as_ref().is_some_and(|c| c.single_use) && !self.claimed.insert(id) {
            return MessageResult(None);
        }
        MessageResult(cred)
    }
}

impl Handler<ReleaseCredential> for Supervisor {
    type Result = ();

    fn handle(&mut self, ReleaseCredential(id): ReleaseCredential, _: &mut Context<Self>) {
        // A code whose keys were sent stays claimed until its use is recorded.
        if !self.spending.contains(&id) {
            self.claimed.remove(&id);
        }
    }
}

impl Handler<CodeUsed> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: CodeUsed, ctx: &mut Context<Self>) {
        info!(code = %msg.access_id, peer = %msg.peer, "a peer joined with an access code (the share's keys were sent)");
        self.spending.insert(msg.access_id);
        let store = self.store.clone();
        let job = tokio::task::spawn_blocking(move || registry::mark_code_used(&store, &msg.access_id, msg.peer));
        ctx.spawn(job.into_actor(self).map(move |res, act, _| {
            if !matches!(res, Ok(Ok(()))) {
                error!("could not record a used access code");
            }
            act.spending.remove(&msg.access_id);
            act.claimed.remove(&msg.access_id);
            act.update_ids();
        }));
    }
}

impl Handler<JoinShare> for Supervisor {
    type Result = ResponseActFuture<Self, Result<Sha256Hash, CommandError>>;

    fn handle(&mut self, msg: JoinShare, _: &mut Context<Self>) -> Self::Result {
        let (store, data_dir) = (self.store.clone(), self.settings.data_dir.clone());
        let now = crate::share::actor::now();
        let selection = self.selections.remove(&msg.path).unwrap_or_default();
        let job = tokio::task::spawn_blocking(move || {
            let via = msg.via.to_string();
            let joining = registry::Joining { path: &msg.path, peer_id: msg.peer_id, via: &via, selection };
            registry::join_share(&store, &data_dir, joining, &msg.keys, now)
        });
        Box::pin(job.into_actor(self).map(|joined, act, ctx| {
            let config = joined.map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))??;
            info!(share = %config.id, path = %config.path.display(), "joined a share");
            for addr in &config.peers {
                act.dials.insert((config.id, addr.clone()), 0);
            }
            let id = config.id;
            act.start_share(config, ctx);
            act.update_ids();
            Ok(id)
        }))
    }
}

impl Handler<PeerConnected> for Supervisor {
    type Result = ResponseActFuture<Self, Option<ShareLink>>;

    fn handle(&mut self, msg: PeerConnected, _: &mut Context<Self>) -> Self::Result {
        self.peers.insert((msg.share, msg.peer), msg.addr);
        let session =
            Session { share: msg.share, peer: msg.peer, addr: msg.addr, out: msg.out.clone(), redial: msg.redial };
        self.sessions.insert(msg.conn, session);
        self.auth_refused.remove(&msg.share);
        if let Some(failures) = self.dials.get_mut(&(msg.share, msg.addr.to_string())) {
            *failures = 0;
        }
        let share = self.shares.get(&msg.share).map(|(c, addr)| (c.access_level, addr.clone()));
        let material = self.keys.get(&msg.share);
        // Updates go signed unless both sides are read-write: a dialled connection has our
        // level, an accepted one the level of the key or code the peer used.
        let ours = share.as_ref().map_or(AccessLevel::Unknown, |(level, _)| *level);
        let level = msg.level.unwrap_or(ours);
        let signed = ours != AccessLevel::ReadWrite || level != AccessLevel::ReadWrite;
        let (sign, verify) = match material {
            Some(m) if signed => (m.sign.clone(), m.verify.clone()),
            _ => (None, None),
        };
        if signed && verify.is_none() {
            error!(share = %msg.share, "no read-write public key for a read-only connection; refusing it");
            return Box::pin(actix::fut::ready(None));
        }
        // The peer holds only ciphertext: we encrypt what we send and decrypt what it relays.
        // (Only read-write daemons feed and restore from untrusted peers.)
        let crypt = if level == AccessLevel::Untrusted && ours != AccessLevel::Untrusted {
            match material.and_then(|m| m.untrusted.clone()).filter(|_| ours == AccessLevel::ReadWrite) {
                Some(keys) => Some(keys),
                None => {
                    warn!(share = %msg.share, "only read-write daemons sync with untrusted peers; refusing it");
                    return Box::pin(actix::fut::ready(None));
                }
            }
        } else {
            None
        };
        let up = PeerUp {
            conn: msg.conn,
            peer: msg.peer,
            out: msg.out,
            rsync: msg.rsync && crypt.is_none(),
            gzip: msg.gzip,
            signed,
            sign,
            crypt: crypt.clone(),
        };
        Box::pin(
            async move {
                let (_, addr) = share?;
                let mut link = addr.send(up).await.ok()?;
                link.verify = verify;
                link.crypt = crypt;
                Some(link)
            }
            .into_actor(self),
        )
    }
}

impl Handler<PeerDisconnected> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: PeerDisconnected, ctx: &mut Context<Self>) {
        self.sessions.remove(&msg.conn);
        let Some(share) = msg.share else { return };
        if let Some(peer) = msg.peer {
            if self.peers.get(&(share, peer)) == Some(&msg.addr) {
                self.peers.remove(&(share, peer));
            }
        }
        // A peer we dialled (remembered or configured) is dialled again while the share exists.
        if let Some(addr) = msg.dialled {
            if self.shares.contains_key(&share) {
                self.dial(share, addr, FIRST_REDIAL, ctx);
            }
        }
    }
}

impl Handler<AddShare> for Supervisor {
    type Result = ResponseActFuture<Self, Result<ShareCreated, CommandError>>;

    fn handle(&mut self, msg: AddShare, ctx: &mut Context<Self>) -> Self::Result {
        if let Err(message) = msg.selection.validate() {
            return Box::pin(actix::fut::ready(Err(CommandError::new(ErrorCode::BadSelection, message))));
        }
        // Before any code is tried (and spent): never into the data directory.
        if let Err(e) = registry::check_not_data_dir(&self.settings.data_dir, &msg.path) {
            return Box::pin(actix::fut::ready(Err(CommandError::new(e.code(), e.to_string()))));
        }
        if let JoinWith::Keys(keys) = msg.with {
            return self.import_keys(*keys, msg.path, msg.peer, msg.selection);
        }
        self.selections.insert(msg.path.clone(), msg.selection.clone());
        let tls = self.tls.clone();
        let targets = Self::peer_targets(ctx);
        let path_taken = self.share_by_path(&msg.path).map(|c| c.path.clone());
        let mut peer_id = [0u8; 16];
        let random_ok = getrandom::fill(&mut peer_id).is_ok();
        let peer_id = PeerId(peer_id);
        // Without an address, discovery looks for peers announcing the code's access ID.
        let creds = match &msg.with {
            JoinWith::Code(code) => code
                .parse::<AccessCode>()
                .map(|c| c.credentials())
                .map_err(|e| CommandError::new(ErrorCode::BadCode, format!("invalid access code: {e}"))),
            JoinWith::Custom { username, password } => {
                clearskies_protocol::access_code::Credentials::custom(username, password)
                    .map_err(|e| CommandError::new(ErrorCode::BadCredentials, e.to_string()))
            }
            // (Saved keys took the other way above.)
            JoinWith::Keys(_) => Err(CommandError::new(ErrorCode::BadKeys, "saved keys need no code")),
        };
        let mut seeking = None;
        let can_discover = !self.settings.config.trackers.is_empty() || self.settings.config.lan_discovery;
        if let (Ok(creds), None, None, true) = (&creds, &msg.peer, &path_taken, can_discover) {
            let (tx, rx) = tokio::sync::mpsc::channel(8);
            let id = creds.id;
            self.seeking.insert(id, (peer_id, tx));
            self.update_ids();
            seeking = Some((id, rx));
        }
        let seek_id = seeking.as_ref().map(|(id, _)| *id);
        let job = async move {
            let creds = creds?;
            if let Some(p) = path_taken {
                return Err(CommandError::new(ErrorCode::AlreadyShared, format!("{} is already shared", p.display())));
            }
            if !random_ok {
                return Err(CommandError::new(ErrorCode::RandomFailed, "the OS RNG failed"));
            }
            let tls = tls
                .ok_or_else(|| CommandError::new(ErrorCode::TlsUnavailable, "TLS could not be set up; see the log"))?;
            let mut found = seeking.map(|(_, rx)| rx);
            let seek = msg.timeout.map_or(SEEK_TIMEOUT, |s| Duration::from_secs(s.clamp(1, 600)));
            let deadline = tokio::time::Instant::now() + seek;
            let mut last_error = None;
            loop {
                let candidates: Vec<SocketAddr> = match (&msg.peer, found.as_mut()) {
                    (Some(peer), _) => {
                        let addr =
                            tokio::net::lookup_host(peer).await.ok().and_then(|mut a| a.next()).ok_or_else(|| {
                                CommandError::new(
                                    ErrorCode::BadPeer,
                                    format!("cannot resolve {peer:?} (use HOST:PORT)"),
                                )
                            })?;
                        vec![addr]
                    }
                    (None, Some(rx)) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(addrs)) => addrs,
                        _ => {
                            return Err(last_error.unwrap_or_else(|| {
                                CommandError::new(
                                    ErrorCode::NoPeerFound,
                                    format!(
                                        "no peer with this share was found in {} s (is the sharing daemon running, \
                                         on the same tracker or LAN, and the code still unused and \
                                         unexpired?); or give --peer HOST:PORT",
                                        seek.as_secs()
                                    ),
                                )
                            }))
                        }
                    },
                    (None, None) => {
                        return Err(CommandError::new(
                            ErrorCode::NoPeer,
                            "no tracker is configured and LAN discovery is off: give the address of a peer \
                             that has the share (--peer HOST:PORT)",
                        ))
                    }
                };
                for addr in candidates {
                    let unreachable =
                        |e: String| CommandError::new(ErrorCode::Unreachable, format!("cannot connect to {addr}: {e}"));
                    let tcp = match tokio::time::timeout(DIAL_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
                        Ok(Ok(t)) => t,
                        Ok(Err(e)) => {
                            last_error = Some(unreachable(e.to_string()));
                            continue;
                        }
                        Err(_) => {
                            last_error = Some(unreachable("timed out".into()));
                            continue;
                        }
                    };
                    let ch = match channel::connect(tcp, &tls, creds.id, &creds.password).await {
                        Ok(ch) => ch,
                        Err(ChannelError::Refused(reason))
                            if reason.starts_with(crate::listener::throttle::THROTTLED) =>
                        {
                            return Err(CommandError::new(ErrorCode::Throttled, format!("the peer refused: {reason}")))
                        }
                        Err(ChannelError::Refused(_) | ChannelError::AuthFailed { .. }) => {
                            return Err(CommandError::new(
                                ErrorCode::CodeRefused,
                                "the peer refused the access code or password (mistyped, expired, cancelled or \
                                 already used)",
                            ))
                        }
                        Err(other) => {
                            last_error = Some(unreachable(other.to_string()));
                            continue;
                        }
                    };
                    let (done, joined) = tokio::sync::oneshot::channel();
                    let purpose = Purpose::Attach { path: msg.path.clone(), done: Some(done) };
                    Peer::new(ch, Role::Client, KeyExchange::Receive, peer_id, purpose, addr, targets).spawn();
                    let id = tokio::time::timeout(JOIN_TIMEOUT, joined)
                        .await
                        .map_err(|_| {
                            CommandError::new(ErrorCode::Timeout, "the peer did not send the share's keys in time")
                        })?
                        .map_err(|_| {
                            CommandError::new(ErrorCode::PeerClosed, "the connection ended during the key exchange")
                        })??;
                    let path = std::fs::canonicalize(&msg.path).unwrap_or(msg.path);
                    return Ok(ShareCreated { path: path.display().to_string(), id: id.to_string() });
                }
                if msg.peer.is_some() {
                    return Err(
                        last_error.unwrap_or_else(|| CommandError::new(ErrorCode::Unreachable, "no address worked"))
                    );
                }
            }
        };
        Box::pin(job.into_actor(self).map(move |res, act, _| {
            if let Some(id) = seek_id {
                act.seeking.remove(&id);
                act.update_ids();
            }
            if let Err(e) = &res {
                warn!(error = %e.message, "attach failed");
            }
            res
        }))
    }
}

impl Handler<ListPeers> for Supervisor {
    type Result = MessageResult<ListPeers>;

    fn handle(&mut self, _: ListPeers, _: &mut Context<Self>) -> Self::Result {
        let path_of =
            |share: &Sha256Hash| self.shares.get(share).map(|(c, _)| c.path.display().to_string()).unwrap_or_default();
        let mut out = Vec::new();
        for ((share, peer), addr) in &self.peers {
            let address = addr.to_string();
            let manual = self.dials.contains_key(&(*share, address.clone()));
            let source = match self.found.get(&(*share, *addr)) {
                Some(found) => *found,
                None if manual => "manual",
                None => "incoming",
            };
            out.push(PeerEntry {
                path: path_of(share),
                share: share.to_string(),
                peer: Some(peer.to_string()),
                address,
                state: "connected",
                source,
                failures: None,
            });
        }
        for ((share, addr), source) in &self.found {
            let address = addr.to_string();
            if !out.iter().any(|e| e.share == share.to_string() && e.address == address) {
                out.push(PeerEntry {
                    path: path_of(share),
                    share: share.to_string(),
                    peer: None,
                    address,
                    state: if self.found_dialing.contains(&(*share, *addr)) { "dialing" } else { "found" },
                    source,
                    failures: None,
                });
            }
        }
        for ((share, address), failures) in &self.dials {
            let connected = out.iter().any(|e| e.share == share.to_string() && &e.address == address);
            if !connected {
                out.push(PeerEntry {
                    path: path_of(share),
                    share: share.to_string(),
                    peer: None,
                    address: address.clone(),
                    state: "dialing",
                    source: "manual",
                    failures: Some(*failures),
                });
            }
        }
        MessageResult(out)
    }
}

impl Handler<Discovered> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: Discovered, ctx: &mut Context<Self>) {
        if let Some((me, waiting)) = self.seeking.get(&msg.id) {
            let addrs: Vec<SocketAddr> =
                msg.peers.iter().filter(|(p, _)| *p != me).flat_map(|(_, a)| a.iter().copied()).collect();
            if !addrs.is_empty() {
                info!(code = %msg.id, source = msg.source, found = addrs.len(), "found peers for an access code");
                let _ = waiting.try_send(addrs);
            }
            return;
        }
        let Some((config, _)) = self.shares.get(&msg.id) else { return };
        let (share, me) = (config.id, config.peer_id);
        // Bounded, whatever a tracker or a broadcast claims.
        if self.found.len() >= MAX_FOUND {
            self.found.clear();
        }
        for (peer, addrs) in msg.peers.into_iter().take(MAX_FOUND_PER_NEWS) {
            let addrs: Vec<SocketAddr> = addrs.into_iter().take(4).collect();
            // Never ourselves; never a peer we already have a session with.
            if peer == me || self.peers.contains_key(&(share, peer)) {
                continue;
            }
            for addr in &addrs {
                self.found.insert((share, *addr), msg.source);
            }
            let Some(addr) = addrs.first().copied() else { continue };
            // Both sides usually learn of each other at once: the lower peer ID dials first,
            // the other only if no session has appeared a moment later (one may be unreachable).
            let wait = if me < peer { Duration::ZERO } else { SECOND_DIALLER_WAIT };
            ctx.run_later(wait, move |act, ctx| {
                if !act.peers.contains_key(&(share, peer)) && act.shares.contains_key(&share) {
                    debug!(%share, %peer, %addr, "dialling a discovered peer");
                    act.dial_found(share, addr, ctx);
                }
            });
        }
    }
}
