//! The `Listener` actor: accepts peer connections on the TCP port, runs the secure-channel
//! handshake for each in its own task, and starts a `Peer` actor for each that
//! authenticates. Failed attempts are logged with their reason; attempts are rate-limited
//! per source IP and per access ID ([`throttle`]); connections that have not authenticated
//! yet are capped per source and in total, and given [`gate::PRE_AUTH_TIMEOUT`] ([`gate`]).

pub mod gate;
pub mod throttle;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, AsyncContext, Context, Recipient, WrapFuture};
use clearskies_protocol::session::{KeyExchange, Role};
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::peer::actor::{Peer, PeerTargets, Purpose};
use crate::peer::channel::{self, TlsContext};
use crate::peer::messages::{ClaimCredential, CredentialKind, LookupCredential};

/// What the listener needs from the owners (access; and for each peer, see `PeerTargets`).
#[derive(Debug, Clone)]
pub struct ListenerTargets {
    /// Credential lookup during SRP.
    pub lookup: Recipient<LookupCredential>,
    /// Credential claim after SRP.
    pub claim: Recipient<ClaimCredential>,
    /// Handed to each peer.
    pub peer: PeerTargets,
}

/// The peer port.
#[derive(Debug)]
pub struct Listener {
    listener: Option<std::net::TcpListener>,
    tls: TlsContext,
    secret: [u8; 32],
    targets: ListenerTargets,
    throttle: Arc<throttle::AuthThrottle>,
    /// uTP on the peer port's UDP socket, accepted too.
    utp: Option<Arc<crate::transport::utp::UtpSocket>>,
}

impl Listener {
    /// Serves `listener` (bound by the worker so that a busy port fails at start-up).
    /// `throttle` is shared across restarts of this actor, so a crash does not refill it.
    pub fn new(
        listener: std::net::TcpListener,
        tls: TlsContext,
        secret: [u8; 32],
        targets: ListenerTargets,
        throttle: Arc<throttle::AuthThrottle>,
    ) -> Self {
        Listener { listener: Some(listener), tls, secret, targets, throttle, utp: None }
    }

    /// Accepts uTP connections on `utp` too (through the same limits and handshake).
    pub fn with_utp(mut self, utp: Option<Arc<crate::transport::utp::UtpSocket>>) -> Self {
        self.utp = utp;
        self
    }
}

/// The soft limit on open file descriptors (`RLIMIT_NOFILE`); unlimited reads as
/// `u64::MAX`.
pub fn fd_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Raises the soft limit on open file descriptors as far as the hard limit allows (at most
/// 2^20, the kernel's usual ceiling); returns the soft limit in force afterwards.
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let now = getrlimit(Resource::Nofile);
    let ceiling = now.maximum.unwrap_or(u64::MAX).min(1 << 20);
    if now.current.is_some_and(|c| c < ceiling) {
        for want in [ceiling, ceiling.min(65_536)] {
            if setrlimit(Resource::Nofile, Rlimit { current: Some(want), maximum: now.maximum }).is_ok() {
                break;
            }
        }
    }
    fd_limit()
}

/// How often refusals before authentication are summed up in the log (a flood must not
/// write a line per connection).
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The pre-authentication slots, and refusals not yet logged.
#[derive(Debug)]
struct Slots {
    gate: gate::Gate<oneshot::Sender<()>>,
    refused_per_source: u64,
    refused_busy: u64,
    displaced: u64,
    logged: Option<Instant>,
}

impl Slots {
    /// Logs the refusals so far if the last summary is old enough.
    fn maybe_log(&mut self) {
        if self.logged.is_some_and(|t| t.elapsed() < REFUSAL_LOG_INTERVAL) {
            return;
        }
        if self.refused_per_source + self.refused_busy + self.displaced == 0 {
            return;
        }
        let limits = self.gate.limits();
        warn!(
            over_the_per_address_limit = self.refused_per_source,
            busy = self.refused_busy,
            displaced = self.displaced,
            per_address = limits.per_source,
            total = limits.full,
            "closed connections before authentication (too many unauthenticated connections)"
        );
        (self.refused_per_source, self.refused_busy, self.displaced) = (0, 0, 0);
        self.logged = Some(Instant::now());
    }
}

/// A pre-authentication slot, given back on drop.
struct Slot {
    slots: Arc<Mutex<Slots>>,
    ticket: gate::Ticket,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner).gate.release(self.ticket);
    }
}

/// Takes a slot for a connection from `ip`, or says why not; the receiver fires if the
/// attempt is displaced by a connection from a lighter source.
fn take_slot(slots: &Arc<Mutex<Slots>>, ip: IpAddr) -> Option<(Slot, oneshot::Receiver<()>)> {
    let mut roll = [0u8; 4];
    let roll = match getrandom::fill(&mut roll) {
        Ok(()) => u32::from_le_bytes(roll) % 100,
        Err(_) => 0,
    };
    let (close, closed) = oneshot::channel();
    let mut s = slots.lock().unwrap_or_else(PoisonError::into_inner);
    let admitted = s.gate.admit(ip, roll, close);
    let slot = match admitted {
        Ok((ticket, displaced)) => {
            if let Some(other) = displaced {
                s.displaced += 1;
                let _ = other.send(());
            }
            Some((Slot { slots: slots.clone(), ticket }, closed))
        }
        Err(gate::Refusal::PerSource) => {
            s.refused_per_source += 1;
            None
        }
        Err(gate::Refusal::Busy) => {
            s.refused_busy += 1;
            None
        }
    };
    s.maybe_log();
    slot
}

impl Actor for Listener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(std_listener) = self.listener.take() else { return };
        let Some(listener) = crate::net::tcp_listener(std_listener, "listening for peers") else {
            return ctx.stop();
        };
        let limits = gate::PreAuthLimits::default().within_fd_limit(fd_limit());
        info!(
            per_address = limits.per_source,
            total = limits.full,
            timeout_s = gate::PRE_AUTH_TIMEOUT.as_secs(),
            "limits on unauthenticated connections"
        );
        let slots = Arc::new(Mutex::new(Slots {
            gate: gate::Gate::new(limits),
            refused_per_source: 0,
            refused_busy: 0,
            displaced: 0,
            logged: None,
        }));
        let handshakes = Handshakes {
            tls: self.tls.clone(),
            secret: self.secret,
            targets: self.targets.clone(),
            throttle: self.throttle.clone(),
        };
        if let Some(utp) = self.utp.clone() {
            ctx.spawn(accept_utp(utp, slots.clone(), handshakes.clone()).into_actor(self));
        }
        ctx.spawn(accept(listener, slots, handshakes).into_actor(self));
    }
}

/// Accepts uTP connections for ever, as [`accept`] does TCP ones (the socket's own limit,
/// [`crate::transport::utp::MAX_CONNECTIONS`], caps them before that).
async fn accept_utp(utp: Arc<crate::transport::utp::UtpSocket>, slots: Arc<Mutex<Slots>>, handshakes: Handshakes) {
    loop {
        let stream = match utp.accept().await {
            Ok(stream) => stream,
            Err(e) => {
                // Only when the socket is shut down (the worker stops).
                warn!(error = %e, "uTP: no longer accepting");
                return;
            }
        };
        let addr = clearskies_protocol::address::canonical(stream.remote_addr());
        let Some((slot, displaced)) = take_slot(&slots, crate::net::source_of(addr.ip())) else {
            // Refused: reset at once (dropping it would hold its uTP slot for its FIN).
            stream.abort();
            continue;
        };
        actix_rt::spawn(handshakes.clone().run(stream.into(), addr, slot, displaced));
    }
}

/// Accepts for ever: each connection that gets a pre-authentication slot runs its handshake
/// in a task of its own.
async fn accept(listener: tokio::net::TcpListener, slots: Arc<Mutex<Slots>>, handshakes: Handshakes) {
    // Refusals not logged yet are logged at the latest a summary interval later.
    let mut summary = tokio::time::interval(REFUSAL_LOG_INTERVAL);
    loop {
        let (tcp, addr) = tokio::select! {
            accepted = crate::net::accept("peer port", || listener.accept()) => accepted,
            _ = summary.tick() => {
                slots.lock().unwrap_or_else(PoisonError::into_inner).maybe_log();
                continue;
            }
        };
        let addr = clearskies_protocol::address::canonical(addr);
        // Refused: closed at once (dropping it), before any task or buffer exists.
        let Some((slot, displaced)) = take_slot(&slots, crate::net::source_of(addr.ip())) else { continue };
        actix_rt::spawn(handshakes.clone().run(tcp.into(), addr, slot, displaced));
    }
}

/// What the handshake of each accepted connection needs.
#[derive(Clone)]
struct Handshakes {
    tls: TlsContext,
    secret: [u8; 32],
    targets: ListenerTargets,
    throttle: Arc<throttle::AuthThrottle>,
}

impl Handshakes {
    /// The secure channel with the client at `addr`, holding `slot` until it authenticates
    /// (or until `displaced` fires: then it is closed); then its `Peer` actor.
    async fn run(self, tcp: crate::transport::Stream, addr: SocketAddr, slot: Slot, displaced: oneshot::Receiver<()>) {
        let lookup = self.targets.lookup.clone();
        let charged = &self.throttle;
        let handshake = channel::accept(tcp, &self.tls, &self.secret, |id| async move {
            let cred = match id {
                Some(id) => lookup.send(LookupCredential(id)).await.ok().flatten(),
                None => None,
            };
            if cred.as_ref().is_some_and(|c| c.kind == CredentialKind::Key) {
                charged.charge_key(crate::net::source_of(addr.ip())).map_err(|t| t.message())?;
            } else {
                let id = id.unwrap_or(clearskies_protocol::Sha256Hash([0; 32]));
                charged.charge_code(crate::net::source_of(addr.ip()), id).map_err(|t| t.message())?;
            }
            Ok(cred.map(|c| c.record))
        });
        let result = tokio::select! {
            r = handshake => r,
            _ = displaced => {
                tracing::debug!(%addr, "closed an unauthenticated connection to make room for another source");
                return;
            }
        };
        drop(slot);
        match result {
            Ok(ch) => self.start_peer(ch, addr).await,
            Err(e) => {
                let m = crate::metrics::metrics();
                match e {
                    channel::ChannelError::AuthFailed { .. } => m.auth_failures.inc(),
                    channel::ChannelError::Throttled(_) => m.auth_throttled.inc(),
                    _ => {}
                }
                warn!(%addr, error = %e, "refused a connection");
            }
        }
    }

    /// Claims the credential `ch` authenticated with and starts its `Peer` actor.
    async fn start_peer(self, ch: channel::Channel, addr: SocketAddr) {
        let Ok(Some(cred)) = self.targets.claim.send(ClaimCredential(ch.id)).await else {
            warn!(%addr, id = %ch.id, "refused a connection: its code was just used by another peer");
            return;
        };
        if cred.kind == CredentialKind::Key {
            self.throttle.refund_key(crate::net::source_of(addr.ip()));
        }
        let key_exchange = match (&cred.kind, cred.keys) {
            (CredentialKind::Code, Some(keys)) => KeyExchange::Send(keys),
            _ => KeyExchange::None,
        };
        let purpose = Purpose::Accepted { id: ch.id, kind: cred.kind, share: cred.share, level: cred.level };
        Peer::new(ch, Role::Server, key_exchange, cred.our_peer_id, purpose, addr, self.targets.peer).spawn();
    }
}
