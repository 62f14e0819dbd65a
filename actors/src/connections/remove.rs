//! `remove_peer`: a peer the user no longer trusts is disconnected and refused from then on
//! (the registry saves the refusal with the share). Peers are told apart only by the peer
//! ID they present, and every peer of one access level holds the same key: a removed peer
//! that presents a new ID gets in again until the share's keys change.

use std::collections::BTreeSet;

use actix::{ActorFutureExt, Context, Handler, ResponseActFuture, WrapFuture};
use clearskies_protocol::{PeerId, Sha256Hash};
use tracing::info;

use super::messages::{PeerRemoved, RemovePeer};
use super::Connections;
use crate::control::cmd::{CommandError, ErrorCode};
use crate::peer::messages::{PeerOut, Redial};
use crate::shares::messages::ForgetPeer;

/// Shortest peer ID prefix taken (as for codes: short ones match too much).
const MIN_PREFIX: usize = 8;

impl Connections {
    /// The (share, peer) pairs `remove_peer` means: connected peers whose ID starts with
    /// `want` (in share `only`, if given), or the whole ID in share `only` when it is not
    /// connected.
    fn removal_targets(&self, want: &str, only: Option<Sha256Hash>) -> Result<Vec<(Sha256Hash, PeerId)>, CommandError> {
        if want.len() < MIN_PREFIX || want.len() > 32 || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CommandError::new(
                ErrorCode::BadPeer,
                format!("{want:?} is not a peer ID: give it (or its first {MIN_PREFIX}+ hex digits) as `clearskies peers` shows it"),
            ));
        }
        let mut found: Vec<(Sha256Hash, PeerId)> = self
            .peers
            .keys()
            .filter(|(share, peer)| only.is_none_or(|o| o == *share) && peer.to_string().starts_with(want))
            .copied()
            .collect();
        if found.is_empty() {
            if let (Ok(peer), Some(share)) = (want.parse::<PeerId>(), only) {
                found.push((share, peer));
            }
        }
        let distinct: BTreeSet<PeerId> = found.iter().map(|(_, p)| *p).collect();
        match distinct.len() {
            0 => Err(CommandError::new(
                ErrorCode::NoSuchPeer,
                format!("no connected peer's ID starts with {want}; to refuse one that is offline, give its whole ID and the share (--path)"),
            )),
            1 => Ok(found),
            n => Err(CommandError::new(
                ErrorCode::AmbiguousPeer,
                format!("{n} connected peers' IDs start with {want}: give more digits"),
            )),
        }
    }

    /// Closes the sessions of `peer` in `share`, stops dialling where it was reached
    /// (`addresses`) and forgets it in `list_peers`.
    fn disconnect(&mut self, share: Sha256Hash, peer: PeerId, addresses: &[String]) -> usize {
        let mut closed = 0;
        for s in self.sessions.values().filter(|s| s.share == share && s.peer == peer) {
            s.out.do_send(PeerOut::Close("this peer was removed from the share".into()));
            closed += 1;
        }
        self.dials.retain(|(s, addr), _| !(*s == share && addresses.contains(addr)));
        self.parked.remove(&(share, peer));
        self.seen.remove(&(share, peer));
        closed
    }

    /// Where `peer` was reached in `share` (its session's address, the address we dialled).
    fn addresses_of(&self, share: Sha256Hash, peer: PeerId) -> Vec<String> {
        let mut out: Vec<String> = self.peers.get(&(share, peer)).map(ToString::to_string).into_iter().collect();
        for s in self.sessions.values().filter(|s| s.share == share && s.peer == peer) {
            if let Redial::Address(a) = &s.redial {
                out.push(a.clone());
            }
        }
        out
    }
}

impl Handler<RemovePeer> for Connections {
    type Result = ResponseActFuture<Self, Result<PeerRemoved, CommandError>>;

    fn handle(&mut self, msg: RemovePeer, _: &mut Context<Self>) -> Self::Result {
        let want = msg.peer.trim().to_ascii_lowercase();
        let only = match &msg.path {
            Some(p) => match self.table.borrow().by_path(p) {
                Some(r) => Some(r.config.id),
                None => {
                    let e = CommandError::new(ErrorCode::NotShared, format!("{} is not shared", p.display()));
                    return Box::pin(actix::fut::ready(Err(e)));
                }
            },
            None => None,
        };
        let targets = match self.removal_targets(&want, only) {
            Ok(t) => t,
            Err(e) => return Box::pin(actix::fut::ready(Err(e))),
        };
        let forget = self.targets.forget.clone();
        let jobs: Vec<ForgetPeer> = targets
            .iter()
            .map(|&(share, peer)| ForgetPeer { share, peer, addresses: self.addresses_of(share, peer) })
            .collect();
        let peer = targets[0].1.to_string();
        // Saved first: once the sessions close, a reconnect is refused. Each share whose
        // refusal was saved is disconnected, even if a later one fails.
        let saved = async move {
            let mut done = Vec::new();
            for job in jobs {
                let (share, peer, addresses) = (job.share, job.peer, job.addresses.clone());
                match forget.send(job).await {
                    Ok(Ok(path)) => done.push((share, peer, addresses, path)),
                    Ok(Err(e)) => return (done, Some(e)),
                    Err(_) => return (done, Some(CommandError::unavailable())),
                }
            }
            (done, None)
        };
        Box::pin(saved.into_actor(self).map(move |(done, failed), act, _| {
            let disconnected = done.iter().map(|(s, p, addresses, _)| act.disconnect(*s, *p, addresses)).sum();
            info!(%peer, disconnected, shares = done.len(), "peer removed");
            match failed {
                Some(e) if !done.is_empty() => Err(CommandError::new(
                    e.error,
                    format!("removed from {} share(s), but not from the rest: {}", done.len(), e.message),
                )),
                Some(e) => Err(e),
                None => Ok(PeerRemoved { peer, paths: done.into_iter().map(|d| d.3).collect(), disconnected }),
            }
        }))
    }
}
