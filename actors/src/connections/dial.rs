//! Dialling: remembered and configured peers with the share key (again, with a backoff,
//! after a failure or a lost connection), and addresses discovery found.

use std::time::Duration;

use actix::{ActorFutureExt, AsyncContext, Context, Handler, WrapFuture};
use clearskies_protocol::address::PeerAddr;
use clearskies_protocol::message::core::AccessLevel;
use clearskies_protocol::session::{KeyExchange, Role};
use clearskies_protocol::{PeerId, SecretKey, Sha256Hash};
use tracing::{debug, info};

use super::Connections;
use crate::discovery::Discovered;
use crate::peer::actor::{Peer, Purpose};
use crate::peer::channel::{self, ChannelError, TlsContext};
use crate::transport;

/// First delay before re-dialling a remembered peer; doubles per failure up to [`MAX_REDIAL`].
pub(super) const FIRST_REDIAL: Duration = Duration::from_millis(500);
const MAX_REDIAL: Duration = Duration::from_secs(60);
/// Addresses remembered from discovery (for `peers`), at most.
const MAX_FOUND: usize = 4096;
/// Peers dialled from one piece of news, at most.
pub(super) const MAX_FOUND_PER_NEWS: usize = 64;
/// How long the higher peer ID waits for the lower one to dial before dialling itself.
pub(super) const SECOND_DIALLER_WAIT: Duration = Duration::from_secs(3);

/// The delay before the next dial of a peer that failed `failures` times in a row:
/// 0.5 s doubling, at most a minute.
pub(super) fn redial_delay(failures: u32) -> Duration {
    FIRST_REDIAL.saturating_mul(1 << failures.min(8)).min(MAX_REDIAL)
}

/// A session that lasted this long was a success, whatever came before it.
pub(super) const STABLE_SESSION: Duration = Duration::from_secs(30);

/// How far the dials of one remembered address have backed off. Two kinds of failure
/// count: dials that did not reach the peer (it is down, restarting, unreachable), and
/// sessions that became ready but ended sooner than the delay they were dialled after (a
/// peer that takes us and then closes at once). A session that became ready ends the
/// first kind: the peer was back, so a peer that restarts twice in a row is dialled again
/// within its restart's own backoff, not one grown over earlier outages. A session that
/// outlasted its delay (or [`STABLE_SESSION`]) ends the second kind: dialling again as
/// soon as it ends costs at most one handshake per session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Redials {
    /// Dials in a row that did not give a ready session.
    failed: u32,
    /// Ready sessions in a row that ended sooner than the delay before them.
    short: u32,
}

impl Redials {
    /// Failures counted, as `peers` shows them.
    pub(super) fn failures(self) -> u32 {
        self.failed.saturating_add(self.short)
    }

    /// The delay before the next dial.
    pub(super) fn delay(self) -> Duration {
        redial_delay(self.failures())
    }

    /// A dial failed, or its session ended before it became ready.
    pub(super) fn dial_failed(&mut self) {
        self.failed = self.failed.saturating_add(1);
    }

    /// A session that became ready ended after `lasted`.
    pub(super) fn session_ended(&mut self, lasted: Duration) {
        let earned = redial_delay(self.short);
        self.failed = 0;
        self.short = if lasted >= earned || lasted >= STABLE_SESSION { 0 } else { self.short.saturating_add(1) };
    }
}

/// How long to wait before dialling a peer discovery found: both sides usually learn of
/// each other at once, so the lower peer ID dials at once and the other only if no session
/// has appeared a moment later (one of them may be unreachable).
pub(super) fn discovered_dial_wait(me: PeerId, peer: PeerId) -> Duration {
    if me < peer {
        Duration::ZERO
    } else {
        SECOND_DIALLER_WAIT
    }
}

/// Why a dial with a share key failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(super) enum DialError {
    /// Not reachable (TCP, TLS, the handshake).
    #[error("{0}")]
    Unreachable(std::io::Error),
    /// The peer refused every key we hold: it may have removed the share (an
    /// authentication failure) or be throttling us.
    #[error("{0}")]
    Refused(ChannelError),
}

/// A share key ready to authenticate a connection to one of the share's peers.
pub(super) struct ShareKeyDial {
    tls: TlsContext,
    /// The keys to try, our own level's first: a read-write daemon falls back to the
    /// untrusted key for a peer that holds only that one (restoring from a backup).
    keys: Vec<(Sha256Hash, SecretKey, AccessLevel)>,
    /// Our peer ID in the share.
    pub(super) me: PeerId,
    dialer: transport::Dialer,
}

impl ShareKeyDial {
    /// The first of `addrs` to connect ([`transport::connect_first`]), then TLS + SRP with
    /// each key in turn until one is accepted: the channel, the level of the key that opened
    /// it, and the address. An address where the handshake fails, refused or not, is dropped
    /// and the others tried again (a peer's list may hold a LAN address that is another
    /// computer here); the dial is refused only if every address that answered refused.
    pub(super) async fn connect(
        &self,
        addrs: &[PeerAddr],
    ) -> Result<(channel::Channel, AccessLevel, PeerAddr), DialError> {
        let (mut refused, mut last) = (None, None);
        let mut candidates = addrs.to_vec();
        while !candidates.is_empty() {
            let (stream, addr) = match self.dialer.connect_first(&candidates).await {
                Ok(connected) => connected,
                Err(e) => {
                    last = Some(e);
                    break;
                }
            };
            candidates.retain(|a| *a != addr);
            match self.open(stream, addr).await {
                Ok((ch, level)) => return Ok((ch, level, addr)),
                Err(DialError::Refused(e)) => refused = Some(e),
                Err(DialError::Unreachable(e)) => last = Some(e),
            }
        }
        Err(match (refused, last) {
            (Some(e), _) => DialError::Refused(e),
            (None, Some(e)) => DialError::Unreachable(e),
            (None, None) => DialError::Unreachable(std::io::Error::other("no address to dial")),
        })
    }

    /// TLS + SRP on `stream` to `addr` with each key in turn (a new connection for each key
    /// after the first).
    async fn open(
        &self,
        stream: transport::Stream,
        addr: PeerAddr,
    ) -> Result<(channel::Channel, AccessLevel), DialError> {
        let mut stream = Some(stream);
        let mut refused = None;
        for (id, key, level) in &self.keys {
            let s = match stream.take() {
                Some(s) => s,
                None => self.dialer.connect(addr).await.map_err(DialError::Unreachable)?,
            };
            match channel::connect(s, &self.tls, *id, &hex::encode(key.as_bytes())).await {
                Ok(ch) => return Ok((ch, *level)),
                Err(e @ (ChannelError::AuthFailed { .. } | ChannelError::Refused(_))) => refused = Some(e),
                Err(e) => return Err(DialError::Unreachable(std::io::Error::other(format!("{addr}: {e}")))),
            }
        }
        Err(refused
            .map_or_else(|| DialError::Unreachable(std::io::Error::other("no key to dial with")), DialError::Refused))
    }
}

impl Connections {
    /// What dialling a share's peer with the share key needs, if the share is running.
    pub(super) fn share_key(&self, share: Sha256Hash) -> Option<ShareKeyDial> {
        let table = self.table.borrow();
        let running = table.get(&share)?;
        let (material, tls) = (running.keys.as_ref()?, self.tls.clone()?);
        let config = &running.config;
        let mut keys = vec![(material.keys.key_id, material.keys.key, config.access_level)];
        if config.access_level == AccessLevel::ReadWrite {
            let untrusted = material.keys.key_ids().into_iter().filter(|(_, _, l)| *l == AccessLevel::Untrusted);
            keys.extend(untrusted);
        }
        Some(ShareKeyDial { tls, keys, me: config.peer_id, dialer: self.dialer.clone() })
    }

    /// Dials a remembered peer of `share` with the share key, after `delay`; on failure
    /// tries again with a doubled delay. A share that is removed stops its dials.
    pub(super) fn dial(&mut self, share: Sha256Hash, addr: String, delay: Duration, ctx: &mut Context<Self>) {
        self.dials.entry((share, addr.clone())).or_default();
        ctx.run_later(delay, move |act, ctx| {
            let Some(key) = act.share_key(share) else {
                act.dials.remove(&(share, addr));
                return;
            };
            let targets = act.peer_targets(ctx);
            let (target, dialled) = (addr.clone(), addr.clone());
            let attempt = async move {
                let addrs = key.dialer.resolve(&target).await.map_err(DialError::Unreachable)?;
                let (ch, level, sock) = key.connect(&addrs).await?;
                let purpose = Purpose::Rejoin { share, dialled, level };
                Peer::new(ch, Role::Client, KeyExchange::None, key.me, purpose, sock.addr, targets).spawn();
                Ok::<(), DialError>(())
            };
            ctx.spawn(attempt.into_actor(act).map(move |res, act, ctx| {
                if let Err(e) = res {
                    if matches!(&e, DialError::Refused(c) if c.is_auth_refusal()) {
                        act.auth_refused.insert(share);
                    }
                    let redials = act.dials.entry((share, addr.clone())).or_default();
                    redials.dial_failed();
                    let next = redials.delay();
                    info!(%share, peer = %addr, error = %e, retry_in = ?next, "cannot reach a known peer");
                    act.dial(share, addr, next, ctx);
                }
            }));
        });
    }

    /// Dials `peer`, which discovery found for a share at `addrs`, once (discovery reports
    /// it again if it is still there). At most [`MAX_FOUND_PER_NEWS`] peers are being
    /// dialled at once, one dial per peer; news of other addresses for a peer being dialled
    /// is kept, and dialled if that dial fails (a peer's public uTP address often arrives a
    /// moment after its first announcement, once STUN has answered).
    pub(super) fn dial_found(
        &mut self,
        share: Sha256Hash,
        peer: PeerId,
        addrs: Vec<PeerAddr>,
        ctx: &mut Context<Self>,
    ) {
        let Some(key) = self.share_key(share) else { return };
        let addrs = self.dialer.candidates(addrs);
        if let Some(newer) = self.peers_dialing.get_mut(&(share, peer)) {
            *newer = Some(addrs);
            return;
        }
        if addrs.is_empty() || self.peers_dialing.len() >= MAX_FOUND_PER_NEWS {
            return;
        }
        let addrs = self.dialer.within_budget(addrs);
        if addrs.is_empty() {
            return;
        }
        self.peers_dialing.insert((share, peer), None);
        self.found_dialing.extend(addrs.iter().map(|a| (share, *a)));
        let targets = self.peer_targets(ctx);
        let tried = addrs.clone();
        let attempt = async move {
            let (ch, level, addr) = key.connect(&tried).await?;
            let purpose = Purpose::Found { share, level };
            Peer::new(ch, Role::Client, KeyExchange::None, key.me, purpose, addr.addr, targets).spawn();
            Ok::<(), DialError>(())
        };
        ctx.spawn(attempt.into_actor(self).map(move |res, act, ctx| {
            let newer = act.peers_dialing.remove(&(share, peer)).flatten();
            for a in &addrs {
                act.found_dialing.remove(&(share, *a));
            }
            if let Err(e) = res {
                info!(%share, peers = ?addrs.iter().map(ToString::to_string).collect::<Vec<_>>(), error = %e, "cannot reach a discovered peer");
                if let Some(newer) = newer.filter(|n| *n != addrs && !act.peers.contains_key(&(share, peer))) {
                    act.dial_found(share, peer, newer, ctx);
                }
            }
        }));
    }
}

impl Connections {
    /// This computer's own addresses at its peer port (a peer on our LAN, or a tracker,
    /// may list one: dialling it would reach ourselves).
    fn own_addresses(&self) -> Vec<PeerAddr> {
        let Some(port) = self.own_port else { return Vec::new() };
        let unspecified = std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);
        let mut ips = crate::discovery::addresses::interface_ips(unspecified);
        ips.extend([std::net::IpAddr::from([127, 0, 0, 1]), std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)]);
        let at = |ip| std::net::SocketAddr::new(ip, port);
        ips.into_iter().flat_map(|ip| [PeerAddr::tcp(at(ip)), PeerAddr::utp(at(ip))]).collect()
    }
}

impl Handler<Discovered> for Connections {
    type Result = ();

    fn handle(&mut self, msg: Discovered, ctx: &mut Context<Self>) {
        if let Some((me, waiting)) = self.seeking.get(&msg.id) {
            let addrs: Vec<PeerAddr> =
                msg.peers.iter().filter(|(p, _)| *p != me).flat_map(|(_, a)| a.iter().copied()).collect();
            if !addrs.is_empty() {
                info!(code = %msg.id, source = msg.source, found = addrs.len(), "found peers for an access code");
                let _ = waiting.try_send(addrs);
            }
            return;
        }
        // Someone looking for a peer with one of our live codes (an attach): it dials us
        // now, which behind NATs on both sides only gets through if we punch a hole for it.
        if let Some((share, _)) = self.codes.get(&msg.id) {
            let me = self.table.borrow().get(share).map(|r| r.config.peer_id);
            for (_, addrs) in msg.peers.iter().filter(|(p, _)| Some(**p) != me).take(MAX_FOUND_PER_NEWS) {
                self.dialer.punch(addrs);
            }
            return;
        }
        let Some((share, me, removed)) =
            self.table.borrow().get(&msg.id).map(|r| (r.config.id, r.config.peer_id, r.config.removed_peers.clone()))
        else {
            return;
        };
        // Bounded, whatever a tracker or a broadcast claims.
        if self.found.len() >= MAX_FOUND {
            self.found.clear();
        }
        let own = self.own_addresses();
        for (peer, addrs) in msg.peers.into_iter().take(MAX_FOUND_PER_NEWS) {
            let addrs = self.dialer.candidates(addrs.into_iter().filter(|a| !own.contains(a)));
            // Never ourselves; never a peer we already have a session with, or removed.
            if peer == me || removed.contains(&peer) {
                continue;
            }
            if let Some(at) = self.peers.get(&(share, peer)) {
                // Announced elsewhere than our session with it: it may have moved (a new
                // network, a restart on another port) while our session, dead, has not
                // noticed yet. Its dial to us gets through our NAT only with a punch.
                if !addrs.contains(at) {
                    self.dialer.punch(&addrs);
                }
                continue;
            }
            for addr in &addrs {
                self.found.insert((share, *addr), msg.source);
            }
            if addrs.is_empty() {
                continue;
            }
            // The lower peer ID dials at once, the other a moment later if no session came
            // up; both open their NAT for the other's dial now (a punch costs three small
            // datagrams per address, and the dial that gets through first wins).
            self.dialer.punch(&addrs);
            ctx.run_later(discovered_dial_wait(me, peer), move |act, ctx| {
                if !act.peers.contains_key(&(share, peer)) && act.table.borrow().contains(&share) {
                    debug!(%share, %peer, addresses = addrs.len(), "dialling a discovered peer");
                    act.dial_found(share, peer, addrs, ctx);
                }
            });
        }
    }
}
