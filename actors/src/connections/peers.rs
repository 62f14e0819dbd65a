//! `list_peers`: connected sessions, peers seen since the daemon started, addresses
//! discovery found, remembered peers being dialled; a pure function of the owner's tables.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use actix::{Context, Handler, MessageResult};
use clearskies_protocol::address::PeerAddr;
use clearskies_protocol::message::core::AccessLevel;
use clearskies_protocol::{PeerId, Sha256Hash};

use super::messages::{ListPeers, PeerEntry, PeerSource, PeerState};
use super::Connections;
use crate::control::cmd::Mode;
use crate::shares::table::ShareTable;

/// Most peers remembered as seen (the oldest go first).
pub(super) const MAX_SEEN: usize = 1024;

/// What we know of a peer that was connected: kept after it leaves, for `list_peers`.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub(super) name: Option<String>,
    pub(super) level: Option<AccessLevel>,
    pub(super) addr: PeerAddr,
    /// Unix time it was last connected (updated when it leaves).
    pub(super) last_seen: i64,
    /// Its session's bytes (the live counters while it is connected).
    pub(super) traffic: std::sync::Arc<crate::peer::messages::Traffic>,
}

/// Peers seen, by (share, peer ID).
pub(super) type SeenTable = BTreeMap<(Sha256Hash, PeerId), Seen>;

/// Notes a peer as seen now; the table stays within [`MAX_SEEN`] by forgetting the peer
/// gone the longest (a peer `connected` now is never forgotten for it).
pub(super) fn note_seen(
    seen: &mut SeenTable,
    key: (Sha256Hash, PeerId),
    entry: Seen,
    connected: &BTreeMap<(Sha256Hash, PeerId), PeerAddr>,
) {
    seen.insert(key, entry);
    while seen.len() > MAX_SEEN {
        let oldest =
            seen.iter().filter(|(k, _)| !connected.contains_key(k)).min_by_key(|(_, s)| s.last_seen).map(|(k, _)| *k);
        match oldest {
            Some(k) => seen.remove(&k),
            None => break,
        };
    }
}

/// The tables `list_peers` is made of.
pub(super) struct PeerTables<'a> {
    pub(super) table: &'a ShareTable,
    pub(super) peers: &'a BTreeMap<(Sha256Hash, PeerId), PeerAddr>,
    pub(super) seen: &'a SeenTable,
    pub(super) dials: &'a BTreeMap<(Sha256Hash, String), super::dial::Redials>,
    pub(super) found: &'a BTreeMap<(Sha256Hash, PeerAddr), &'static str>,
    pub(super) found_dialing: &'a BTreeSet<(Sha256Hash, PeerAddr)>,
    /// Unix time now.
    pub(super) now: i64,
}

fn entry(path: String, share: &Sha256Hash, address: String, state: PeerState, source: PeerSource) -> PeerEntry {
    PeerEntry {
        path,
        share: share.to_string(),
        peer: None,
        address,
        state,
        source,
        failures: None,
        name: None,
        access_level: None,
        transport: None,
        last_seen: None,
        sent_bytes: None,
        received_bytes: None,
    }
}

/// `e` with what we know of `peer` from its session.
fn with_seen(mut e: PeerEntry, peer: &PeerId, s: Option<&Seen>, last_seen: Option<i64>) -> PeerEntry {
    e.peer = Some(peer.to_string());
    if let Some(s) = s {
        e.name.clone_from(&s.name);
        e.access_level = s.level.map(|l| Mode::from_name(crate::share::registry::level_name(l)));
        e.transport = Some(s.addr.transport.name().to_owned());
        e.last_seen = last_seen.or(Some(s.last_seen));
        e.sent_bytes = Some(s.traffic.sent.load(Ordering::Relaxed));
        e.received_bytes = Some(s.traffic.received.load(Ordering::Relaxed));
    }
    e
}

/// One line per connected peer (with where we know its address from), per peer seen
/// earlier and gone (merged with the remembered address being dialled, if it is that
/// one), per found address without a session, per remembered address being dialled.
pub(super) fn peer_list(t: &PeerTables<'_>) -> Vec<PeerEntry> {
    let path_of =
        |share: &Sha256Hash| t.table.get(share).map(|r| r.config.path.display().to_string()).unwrap_or_default();
    let mut out = Vec::new();
    // (Addresses as dialled: `utp:` shown for uTP, so a remembered one matches its session.)
    for ((share, peer), addr) in t.peers {
        let address = addr.dial_string();
        let manual = t.dials.contains_key(&(*share, address.clone()));
        let source = match t.found.get(&(*share, *addr)) {
            Some(found) => PeerSource::from_name(found),
            None if manual => PeerSource::Manual,
            None => PeerSource::Incoming,
        };
        let e = entry(path_of(share), share, address, PeerState::Connected, source);
        out.push(with_seen(e, peer, t.seen.get(&(*share, *peer)), Some(t.now)));
    }
    for ((share, peer), s) in t.seen {
        if t.peers.contains_key(&(*share, *peer)) {
            continue;
        }
        let address = s.addr.dial_string();
        let (state, failures) = match t.dials.get(&(*share, address.clone())) {
            Some(r) => (PeerState::Dialing, Some(r.failures())),
            None => (PeerState::Offline, None),
        };
        let source = if failures.is_some() { PeerSource::Manual } else { PeerSource::Incoming };
        let mut e = with_seen(entry(path_of(share), share, address, state, source), peer, Some(s), None);
        e.failures = failures;
        out.push(e);
    }
    for ((share, addr), source) in t.found {
        // (A LAN broadcast's port is found as TCP and as uTP: one line for both.)
        let tcp_too = PeerAddr::tcp(addr.addr);
        if addr.transport != clearskies_protocol::address::Transport::Tcp && t.found.contains_key(&(*share, tcp_too)) {
            continue;
        }
        let address = addr.dial_string();
        if !out.iter().any(|e| e.share == share.to_string() && e.address == address) {
            let state = if t.found_dialing.contains(&(*share, *addr)) { PeerState::Dialing } else { PeerState::Found };
            out.push(entry(path_of(share), share, address, state, PeerSource::from_name(source)));
        }
    }
    for ((share, address), redials) in t.dials {
        let listed = out.iter().any(|e| e.share == share.to_string() && &e.address == address);
        if !listed {
            let mut e = entry(path_of(share), share, address.clone(), PeerState::Dialing, PeerSource::Manual);
            e.failures = Some(redials.failures());
            out.push(e);
        }
    }
    out
}

impl Handler<ListPeers> for Connections {
    type Result = MessageResult<ListPeers>;

    fn handle(&mut self, _: ListPeers, _: &mut Context<Self>) -> Self::Result {
        let table = self.table.borrow();
        MessageResult(peer_list(&PeerTables {
            table: &table,
            peers: &self.peers,
            seen: &self.seen,
            dials: &self.dials,
            found: &self.found,
            found_dialing: &self.found_dialing,
            now: crate::share::actor::now().secs(),
        }))
    }
}
