//! `list_peers`: connected sessions, addresses discovery found, remembered peers being
//! dialled; a pure function of the owner's tables.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use actix::{Context, Handler, MessageResult};
use clearskies_protocol::{PeerId, Sha256Hash};

use super::messages::{ListPeers, PeerEntry, PeerSource, PeerState};
use super::Connections;
use crate::shares::table::ShareTable;

/// The tables `list_peers` is made of.
pub(super) struct PeerTables<'a> {
    pub(super) table: &'a ShareTable,
    pub(super) peers: &'a BTreeMap<(Sha256Hash, PeerId), SocketAddr>,
    pub(super) dials: &'a BTreeMap<(Sha256Hash, String), u32>,
    pub(super) found: &'a BTreeMap<(Sha256Hash, SocketAddr), &'static str>,
    pub(super) found_dialing: &'a BTreeSet<(Sha256Hash, SocketAddr)>,
}

/// One line per connected peer (with where we know its address from), per found address
/// without a session, per remembered address being dialled without a session.
pub(super) fn peer_list(t: &PeerTables<'_>) -> Vec<PeerEntry> {
    let path_of =
        |share: &Sha256Hash| t.table.get(share).map(|r| r.config.path.display().to_string()).unwrap_or_default();
    let mut out = Vec::new();
    for ((share, peer), addr) in t.peers {
        let address = addr.to_string();
        let manual = t.dials.contains_key(&(*share, address.clone()));
        let source = match t.found.get(&(*share, *addr)) {
            Some(found) => PeerSource::from_name(found),
            None if manual => PeerSource::Manual,
            None => PeerSource::Incoming,
        };
        out.push(PeerEntry {
            path: path_of(share),
            share: share.to_string(),
            peer: Some(peer.to_string()),
            address,
            state: PeerState::Connected,
            source,
            failures: None,
        });
    }
    for ((share, addr), source) in t.found {
        let address = addr.to_string();
        if !out.iter().any(|e| e.share == share.to_string() && e.address == address) {
            out.push(PeerEntry {
                path: path_of(share),
                share: share.to_string(),
                peer: None,
                address,
                state: if t.found_dialing.contains(&(*share, *addr)) { PeerState::Dialing } else { PeerState::Found },
                source: PeerSource::from_name(source),
                failures: None,
            });
        }
    }
    for ((share, address), failures) in t.dials {
        let connected = out.iter().any(|e| e.share == share.to_string() && &e.address == address);
        if !connected {
            out.push(PeerEntry {
                path: path_of(share),
                share: share.to_string(),
                peer: None,
                address: address.clone(),
                state: PeerState::Dialing,
                source: PeerSource::Manual,
                failures: Some(*failures),
            });
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
            dials: &self.dials,
            found: &self.found,
            found_dialing: &self.found_dialing,
        }))
    }
}
