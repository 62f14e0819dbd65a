//! The `Connections` owner (Syncthing's `lib/connections/service.go` is the model): which
//! peers we are connected to and which we are trying to reach. It dials remembered and
//! configured peers with the share key and dials them again with a backoff when the
//! connection ends or fails (`dial`), arbitrates the addresses discovery finds (`dial`),
//! runs the attach loop of `add_share` (`attach`), keeps the session table, and hands each
//! session to its share when it comes up, with the protection [`crate::access::policy`]
//! decides. It tells discovery which IDs to announce.
//!
//! It reads the running shares from the registry's table and learns of starts and stops
//! from `ShareStarted`/`ShareStopped`.

mod attach;
mod dial;
pub mod messages;
mod peers;
mod rekey;
mod remove;
mod spread;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use actix::{Actor, Addr, AsyncContext, Context, Handler, MessageResult, Recipient, ResponseFuture};
use clearskies_protocol::address::PeerAddr;
use clearskies_protocol::{PeerId, Sha256Hash};
use tracing::{error, info, warn};

use self::messages::{
    AuthRefused, CodeIds, CountPeers, PeerCrashed, SessionFault, ShareStarted, ShareStopped, UseDiscovery,
};
use crate::access::policy::{session_policy, Refusal};
use crate::discovery::{Discovery, SetIds};
use crate::peer::actor::PeerTargets;
use crate::peer::channel::TlsContext;
use crate::peer::messages::{CodeUsed, JoinShare, PeerConnected, PeerDisconnected, PeerOut, Redial, ReleaseCredential};
use crate::share::messages::{PeerDown, PeerUp, ShareLink};
use crate::shares::messages::ImportKeys;
use crate::shares::table::TableRx;
use crate::supervise::Crashed;

/// A ready peer session, as connections knows it.
#[derive(Debug)]
struct Session {
    share: Sha256Hash,
    peer: PeerId,
    addr: PeerAddr,
    out: Recipient<PeerOut>,
    redial: Redial,
    /// The level of the key the session was opened with.
    level: clearskies_protocol::message::core::AccessLevel,
    /// When it came up: one that ends soon after (refused, flapping) counts as a failed
    /// dial, so its peer is not dialled again at once, forever.
    since: std::time::Instant,
    /// Both sides speak `.rs.clearskies.code_spread`.
    code_spread: bool,
}

/// Where the peer actors this owner starts report (besides itself).
#[derive(Debug, Clone)]
pub struct ConnectionsTargets {
    /// Access: a code was used up.
    pub code_used: Recipient<CodeUsed>,
    /// Access: a claim released.
    pub release: Recipient<ReleaseCredential>,
    /// The registry: keys received on an attach.
    pub join: Recipient<JoinShare>,
    /// The registry: `add_share` with saved keys.
    pub import: Recipient<ImportKeys>,
    /// The registry: a peer removed with `remove_peer`.
    pub forget: Recipient<crate::shares::messages::ForgetPeer>,
    /// The registry: a peer sent the share's new keys.
    pub rekeyed: Recipient<crate::peer::messages::Rekeyed>,
    /// The supervisor: a peer actor panicked.
    pub crashed: Recipient<Crashed>,
    /// The settings in effect, for each connection.
    pub runtime: crate::config::Runtime,
    /// Access: the codes a peer may hold (code spreading).
    pub spreadable: Recipient<crate::access::messages::SpreadableCodes>,
    /// Access: codes a peer spread.
    pub codes_in: Recipient<crate::access::messages::CodesFromPeer>,
}

/// The connections owner.
#[derive(Debug)]
pub struct Connections {
    table: TableRx,
    /// Never attached into (nor any directory holding it).
    data_dir: std::path::PathBuf,
    tls: Option<TlsContext>,
    /// A tracker is configured or LAN discovery is on (an attach without an address can
    /// look for its peer).
    can_discover: bool,
    targets: ConnectionsTargets,
    /// Connected peers by (share, peer ID): their address.
    peers: BTreeMap<(Sha256Hash, PeerId), PeerAddr>,
    /// Peers connected since the daemon started, with their name, level and bytes.
    seen: peers::SeenTable,
    /// Remembered peers being dialled or connected, by (share, `HOST:PORT`), with how far
    /// their dials have backed off.
    dials: BTreeMap<(Sha256Hash, String), dial::Redials>,
    discovery: Option<Addr<Discovery>>,
    /// Attaches waiting for discovery to find a peer: access ID → (our new peer ID, where
    /// found addresses go).
    seeking: BTreeMap<Sha256Hash, (PeerId, tokio::sync::mpsc::Sender<Vec<PeerAddr>>)>,
    /// Live codes' access IDs (from access): access ID → (share, expiry).
    codes: BTreeMap<Sha256Hash, (Sha256Hash, Option<i64>)>,
    /// Addresses found by discovery, by (share, address): the source (`tracker`, `lan`).
    found: BTreeMap<(Sha256Hash, PeerAddr), &'static str>,
    /// Dials to discovered addresses in progress.
    found_dialing: BTreeSet<(Sha256Hash, PeerAddr)>,
    /// The peers those dials are for (one dial per peer at a time).
    /// (With the addresses news gave for it since, to dial if this dial fails.)
    peers_dialing: BTreeMap<(Sha256Hash, PeerId), Option<Vec<PeerAddr>>>,
    /// The peer port we listen on: our own addresses at it are never dialled.
    own_port: Option<u16>,
    /// Ready sessions by connection.
    sessions: BTreeMap<u64, Session>,
    /// Shares whose known peers refused our key at the last dial (until a session is ready).
    auth_refused: BTreeSet<Sha256Hash>,
    /// Dials TCP, and uTP when the daemon has its UDP peer port.
    dialer: crate::transport::Dialer,
    /// Addresses we dial whose session was closed while another with the same peer was up
    /// (a cross-dial), by (share, peer): dialled again once that one ends too.
    parked: BTreeMap<(Sha256Hash, PeerId), String>,
    /// The worker is stopping: sessions still coming up are refused (and so closed while
    /// their end can still be sent).
    stopping: bool,
}

impl Connections {
    /// A connections owner reading the running shares from `table`.
    pub fn new(
        settings: &crate::Settings,
        table: TableRx,
        tls: Option<TlsContext>,
        targets: ConnectionsTargets,
    ) -> Self {
        Connections::with_own_port(settings, table, tls, targets, None)
    }

    /// As [`Connections::new`], knowing the peer port this daemon listens on (`own_port`), so
    /// that a discovered address that is this computer is never dialled.
    pub fn with_own_port(
        settings: &crate::Settings,
        table: TableRx,
        tls: Option<TlsContext>,
        targets: ConnectionsTargets,
        own_port: Option<u16>,
    ) -> Self {
        let config = &settings.config;
        Connections {
            table,
            data_dir: settings.data_dir.clone(),
            tls,
            can_discover: !config.trackers.is_empty() || config.lan_discovery,
            targets,
            peers: BTreeMap::new(),
            seen: BTreeMap::new(),
            dials: BTreeMap::new(),
            discovery: None,
            seeking: BTreeMap::new(),
            codes: BTreeMap::new(),
            found: BTreeMap::new(),
            found_dialing: BTreeSet::new(),
            peers_dialing: BTreeMap::new(),
            own_port,
            sessions: BTreeMap::new(),
            auth_refused: BTreeSet::new(),
            dialer: crate::transport::Dialer::default(),
            parked: BTreeMap::new(),
            stopping: false,
        }
    }

    /// Dials with `dialer` (uTP too, if it has a socket), rather than TCP only.
    pub fn with_dialer(mut self, dialer: crate::transport::Dialer) -> Self {
        self.dialer = dialer;
        self
    }

    /// What the peer actors started here report to.
    pub fn peer_targets(&self, ctx: &Context<Self>) -> PeerTargets {
        let me = ctx.address();
        PeerTargets {
            code_used: self.targets.code_used.clone(),
            release: self.targets.release.clone(),
            join: self.targets.join.clone(),
            rekeyed: self.targets.rekeyed.clone(),
            connected: me.clone().recipient(),
            disconnected: me.clone().recipient(),
            crashed: self.targets.crashed.clone(),
            runtime: self.targets.runtime.clone(),
            codes: me.recipient(),
        }
    }

    /// Tells discovery every ID to announce: share key IDs, live codes' access IDs, and the
    /// codes of attaches looking for a peer.
    fn update_ids(&self) {
        let Some(d) = &self.discovery else { return };
        let now = crate::share::actor::now().secs();
        d.do_send(SetIds(announced(&self.table.borrow(), &self.codes, &self.seeking, now)));
    }
}

/// What discovery announces: each running share's key ID, each live code of a running
/// share, each code an attach is looking for a peer with; all with our peer ID there.
fn announced(
    table: &crate::shares::table::ShareTable,
    codes: &BTreeMap<Sha256Hash, (Sha256Hash, Option<i64>)>,
    seeking: &BTreeMap<Sha256Hash, (PeerId, tokio::sync::mpsc::Sender<Vec<PeerAddr>>)>,
    now: i64,
) -> BTreeMap<Sha256Hash, PeerId> {
    let mut ids: BTreeMap<Sha256Hash, PeerId> = table.iter().map(|r| (r.config.id, r.config.peer_id)).collect();
    for (access_id, (share, expires)) in codes {
        if expires.is_none_or(|e| now < e) {
            if let Some(r) = table.get(share) {
                ids.insert(*access_id, r.config.peer_id);
            }
        }
    }
    for (id, (peer, _)) in seeking {
        ids.insert(*id, *peer);
    }
    ids
}

impl Actor for Connections {
    type Context = Context<Self>;
}

impl Handler<ShareStarted> for Connections {
    type Result = ();

    fn handle(&mut self, msg: ShareStarted, ctx: &mut Context<Self>) {
        for addr in msg.remember {
            self.dials.insert((msg.id, addr), dial::Redials::default());
        }
        for addr in msg.dial {
            self.dial(msg.id, addr, Duration::ZERO, ctx);
        }
        self.update_ids();
    }
}

impl Handler<ShareStopped> for Connections {
    type Result = ();

    fn handle(&mut self, msg: ShareStopped, _: &mut Context<Self>) {
        if msg.removed {
            self.dials.retain(|(share, _), _| *share != msg.id);
            self.parked.retain(|(share, _), _| *share != msg.id);
            self.found.retain(|(share, _), _| *share != msg.id);
        } else {
            for s in self.sessions.values().filter(|s| s.share == msg.id) {
                s.out.do_send(PeerOut::Close("the share is restarting".into()));
            }
        }
        self.update_ids();
    }
}

impl Handler<CodeIds> for Connections {
    type Result = ();

    fn handle(&mut self, CodeIds(codes): CodeIds, _: &mut Context<Self>) {
        self.codes = codes.into_iter().map(|(id, share, expires)| (id, (share, expires))).collect();
        self.update_ids();
    }
}

impl Handler<UseDiscovery> for Connections {
    type Result = ();

    fn handle(&mut self, UseDiscovery(addr): UseDiscovery, _: &mut Context<Self>) {
        self.discovery = Some(addr);
        self.update_ids();
    }
}

impl Handler<AuthRefused> for Connections {
    type Result = MessageResult<AuthRefused>;

    fn handle(&mut self, _: AuthRefused, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.auth_refused.clone())
    }
}

impl Handler<CountPeers> for Connections {
    type Result = usize;

    fn handle(&mut self, _: CountPeers, _: &mut Context<Self>) -> usize {
        self.peers.len()
    }
}

impl Handler<SessionFault> for Connections {
    type Result = usize;

    fn handle(&mut self, msg: SessionFault, _: &mut Context<Self>) -> usize {
        let mut hit = 0;
        for s in self.sessions.values().filter(|s| msg.share.is_none_or(|id| s.share == id)) {
            s.out.do_send(PeerOut::Fault(msg.fault));
            hit += 1;
            if msg.one {
                break;
            }
        }
        hit
    }
}

impl Handler<PeerCrashed> for Connections {
    type Result = ();

    /// A connection's actor panicked: nothing of it ran its clean-up, so forget it here (the
    /// share drops the subscriber, `peers` the entry) and dial it again as a lost connection
    /// would be.
    fn handle(&mut self, PeerCrashed(conn): PeerCrashed, ctx: &mut Context<Self>) {
        let Some(s) = conn.and_then(|c| self.sessions.remove(&c)) else {
            error!("a connection crashed before its session was ready (see the panic above)");
            return;
        };
        error!(share = %s.share, peer = %s.peer, remote = %s.addr, "a connection crashed (see the panic above); dropped it");
        if let (Some(running), Some(conn)) = (self.table.borrow().get(&s.share), conn) {
            running.addr.do_send(PeerDown { conn });
        }
        if self.peers.get(&(s.share, s.peer)) == Some(&s.addr) {
            self.peers.remove(&(s.share, s.peer));
        }
        match s.redial {
            Redial::Address(addr) => self.dial(s.share, addr, dial::FIRST_REDIAL, ctx),
            Redial::Found(addr) => self.dial_found(s.share, s.peer, vec![addr], ctx),
            Redial::ByPeer => {}
        }
    }
}

impl Handler<PeerConnected> for Connections {
    type Result = ResponseFuture<Result<ShareLink, String>>;

    fn handle(&mut self, msg: PeerConnected, _: &mut Context<Self>) -> Self::Result {
        // The share's level (the session's, unless its key or code said) and whether the peer
        // was removed: then it is refused before anything of it is noted.
        let (removed, ours) = match self.table.borrow().get(&msg.share) {
            Some(r) => (r.config.removed_peers.contains(&msg.peer), Some(r.config.access_level)),
            None => (false, None),
        };
        let level = msg.level.or(ours).unwrap_or(clearskies_protocol::message::core::AccessLevel::Unknown);
        if removed {
            warn!(share = %msg.share, peer = %msg.peer, addr = %msg.addr, "a removed peer connected; refusing it");
            return Box::pin(async { Err("this peer was removed from the share".to_owned()) });
        }
        if self.stopping {
            return Box::pin(async { Err(STOPPING.to_owned()) });
        }
        if !self.keep_cross_dialled(&msg) {
            return Box::pin(async { Err(DUPLICATE.to_owned()) });
        }
        self.peers.insert((msg.share, msg.peer), msg.addr);
        let since = std::time::Instant::now();
        let session = Session {
            share: msg.share,
            peer: msg.peer,
            addr: msg.addr,
            out: msg.out.clone(),
            redial: msg.redial,
            level,
            since,
            code_spread: msg.code_spread,
        };
        self.sessions.insert(msg.conn, session);
        self.auth_refused.remove(&msg.share);
        let table = self.table.borrow();
        let Some(running) = table.get(&msg.share) else {
            return Box::pin(async { Err("the share is not available".to_owned()) });
        };
        let ours = running.config.access_level;
        let seen = peers::Seen {
            name: msg.name.clone(),
            level: Some(level),
            addr: msg.addr,
            last_seen: crate::share::actor::now().secs(),
            traffic: msg.traffic.clone(),
        };
        peers::note_seen(&mut self.seen, (msg.share, msg.peer), seen, &self.peers);
        let policy = match session_policy(ours, msg.level.unwrap_or(ours), running.keys.as_deref()) {
            Ok(policy) => policy,
            Err(why) => {
                match why {
                    Refusal::NoVerifyingKey => error!(share = %msg.share, "{why}; refusing it"),
                    _ => warn!(share = %msg.share, "{why}; refusing it"),
                }
                return Box::pin(async move { Err(format!("{why}")) });
            }
        };
        if msg.code_spread {
            self.send_codes(msg.share, level, msg.out.clone());
        }
        let up = PeerUp {
            conn: msg.conn,
            peer: msg.peer,
            out: msg.out,
            rsync: msg.rsync && policy.crypt.is_none(),
            refine: msg.refine,
            gzip: msg.gzip,
            signed: policy.signed,
            sign: policy.sign,
            crypt: policy.crypt.clone(),
        };
        let share = running.addr.clone();
        Box::pin(async move {
            let mut link = share.send(up).await.map_err(|_| "the share is not available".to_owned())?;
            link.verify = policy.verify;
            link.crypt = policy.crypt;
            Ok(link)
        })
    }
}

impl Handler<messages::CloseUtpSessions> for Connections {
    type Result = ();

    fn handle(&mut self, _: messages::CloseUtpSessions, _: &mut Context<Self>) {
        self.stopping = true;
        let utp = self.sessions.values().filter(|s| s.addr.transport == clearskies_protocol::address::Transport::Utp);
        for s in utp {
            s.out.do_send(PeerOut::Close(STOPPING.into()));
        }
    }
}

/// Two sessions with one peer count as a cross-dial if the second came up this soon after
/// the first.
const CROSS_DIAL_WINDOW: Duration = Duration::from_secs(30);

/// Why a session is closed or refused while the worker stops.
const STOPPING: &str = "this daemon is stopping";

/// Why the second of two sessions with one peer is closed.
const DUPLICATE: &str = "a second session with this peer (both sides dialled at once); the other one is kept";

impl Connections {
    /// Both sides may dial each other at once (a hole punch needs that, and a restart or
    /// news can cause it): of two sessions with one peer in one share dialled from opposite
    /// sides, both keep the one the lower peer ID dialled. Whether `new` is kept (else the
    /// older one was, and `new` is to be closed); an older one that loses is closed here.
    fn keep_cross_dialled(&mut self, new: &PeerConnected) -> bool {
        let Some(me) = self.table.borrow().get(&new.share).map(|r| r.config.peer_id) else { return true };
        let we_dialled = |redial: &Redial| *redial != Redial::ByPeer;
        let ours_wins = me < new.peer;
        let other = self.sessions.iter().find(|(_, s)| {
            s.share == new.share && s.peer == new.peer && we_dialled(&s.redial) != we_dialled(&new.redial)
        });
        let Some((&conn, old)) = other else { return true };
        // Only sessions that came up together (a cross-dial), on keys of one level: an older
        // one may be dead without knowing it yet, and a peer that merely claims another's
        // ID must not close that one's session. Otherwise both stay, as any two would.
        if old.since.elapsed() > CROSS_DIAL_WINDOW || new.level.is_some_and(|l| l != old.level) {
            return true;
        }
        if we_dialled(&new.redial) != ours_wins {
            info!(share = %new.share, peer = %new.peer, kept = %old.addr, closed = %new.addr, "both sides dialled: one session kept");
            return false;
        }
        info!(share = %new.share, peer = %new.peer, kept = %new.addr, closed = %old.addr, "both sides dialled: one session kept");
        old.out.do_send(PeerOut::Close(DUPLICATE.into()));
        self.sessions.remove(&conn);
        true
    }

    /// Whether a session with `peer` in `share` is up.
    fn has_session(&self, share: Sha256Hash, peer: PeerId) -> bool {
        self.sessions.values().any(|s| s.share == share && s.peer == peer)
    }
}

impl Handler<PeerDisconnected> for Connections {
    type Result = ();

    fn handle(&mut self, msg: PeerDisconnected, ctx: &mut Context<Self>) {
        let lasted = self.sessions.remove(&msg.conn).map(|s| s.since.elapsed());
        let Some(share) = msg.share else { return };
        // (A cross-dialled session closed for the other one: nothing is lost.)
        let replaced = msg.peer.is_some_and(|p| self.has_session(share, p));
        if let Some(peer) = msg.peer {
            if self.peers.get(&(share, peer)) == Some(&msg.addr) && !replaced {
                self.peers.remove(&(share, peer));
            }
            if let Some(s) = self.seen.get_mut(&(share, peer)) {
                s.last_seen = crate::share::actor::now().secs();
            }
        }
        // A peer we dialled (remembered or configured) is dialled again while the share
        // exists, unless it was removed.
        let removed = |t: &crate::shares::table::ShareTable| {
            msg.peer.is_some_and(|p| t.get(&share).is_some_and(|r| r.config.removed_peers.contains(&p)))
        };
        // An address we dial whose session was closed for another one (or ended beside
        // one) waits until the peer has no session left, then is dialled again.
        let parked = match (msg.peer, replaced) {
            (Some(peer), true) => {
                if let Some(addr) = msg.dialled.clone() {
                    self.parked.insert((share, peer), addr);
                }
                None
            }
            (Some(peer), false) => self.parked.remove(&(share, peer)),
            (None, _) => None,
        };
        if let Some(addr) = msg.dialled.clone().or(parked).filter(|_| !replaced) {
            let table = self.table.borrow();
            if table.contains(&share) && !removed(&table) {
                drop(table);
                let redials = self.dials.entry((share, addr.clone())).or_default();
                match lasted {
                    // (A session that ended sooner than the delay before it, say the peer
                    // refused us after the handshake, backs off further: `Redials`.)
                    Some(t) => redials.session_ended(t),
                    // One that never became ready (a handshake that failed, our own
                    // address) is a failed dial.
                    None => redials.dial_failed(),
                }
                let delay = redials.delay();
                self.dial(share, addr, delay, ctx);
            }
        }
    }
}
