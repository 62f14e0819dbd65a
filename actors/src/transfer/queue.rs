//! Which wanted contents each connection is asked for next: the decisions of the
//! [`Transfer`](super::Transfer) actor's scheduling, with no actor, I/O or clock.
//!
//! [`plan`] walks the queue of wanted contents for each connected peer in turn, within the
//! peer's request budget ([`MAX_REQUESTS`], [`MAX_REQUEST_BYTES`]) and the free room on disk,
//! and takes what each may be asked for: skipped are contents the peer refused, contents
//! being written, and contents that do not fit (they wait, and the plan says how much one
//! needed); dropped are contents no record waits for any more; a partial download that holds
//! every byte is handed over to be finished. The rest is asked for as an rsync delta or as a
//! download (continued from what a partial file holds), by the ciphertext's hash on an
//! untrusted connection. The outside facts (partial files, the index) come through
//! [`Facts`]; the actor gathers them, calls [`plan`] and carries out the [`Plan`].

use std::collections::{HashMap, HashSet, VecDeque};

use clearskies_index::apply::Fetch;
use clearskies_protocol::message::Message;
use clearskies_protocol::rdiff::SigParams;
use clearskies_protocol::Sha256Hash;

use super::{Download, DELTA_MIN_SIZE, MAX_REQUESTS, MAX_REQUEST_BYTES, MAX_SIGNATURE};

/// One connection's requests: what it was asked for and what it refused.
#[derive(Debug, Default)]
pub(super) struct Requests {
    /// Contents asked for and not answered yet, oldest first.
    pub(super) asked: VecDeque<Sha256Hash>,
    /// Their sizes, summed.
    pub(super) asked_bytes: u64,
    /// Requests (`directory.get`s, whole or ranged, and signatures) not answered yet: at
    /// most [`MAX_REQUESTS`], which is what a peer queues for us.
    pub(super) gets: usize,
    /// Contents the peer refused (asked of it again after the retry timer clears this).
    pub(super) refused: HashSet<Sha256Hash>,
}

impl Requests {
    /// The connection may be asked for more: fewer than [`MAX_REQUESTS`] requests and
    /// [`MAX_REQUEST_BYTES`] in flight (at least one content is always allowed).
    fn has_room(&self) -> bool {
        self.gets < MAX_REQUESTS && (self.asked.is_empty() || self.asked_bytes < MAX_REQUEST_BYTES)
    }
}

/// A connected peer, as the planner sees it.
#[derive(Debug)]
pub(super) struct Peer<'a> {
    /// The connection.
    pub(super) conn: u64,
    /// The peer is untrusted: it holds contents under their ciphertext's hash.
    pub(super) untrusted: bool,
    /// Deltas may be asked of it.
    pub(super) rsync: bool,
    /// Its requests (updated with what the plan asks of it).
    pub(super) requests: &'a mut Requests,
}

/// The share's wanted contents and what is already under way.
#[derive(Debug)]
pub(super) struct Wanted<'a> {
    /// Contents to fetch, in order (those taken are removed; those skipped stay).
    pub(super) queue: &'a mut VecDeque<Sha256Hash>,
    /// What each wanted content is (those no record waits for any more are removed).
    pub(super) fetches: &'a mut HashMap<Sha256Hash, Fetch>,
    /// Whole-file downloads under way.
    pub(super) downloads: &'a HashMap<Sha256Hash, Download>,
    /// Contents whose writer still runs: not asked for again until it ends.
    pub(super) writing: &'a HashSet<Sha256Hash>,
    /// Contents fetched whole, never as a delta.
    pub(super) whole: &'a HashSet<Sha256Hash>,
}

/// What the planner asks of the world outside.
pub(super) trait Facts {
    /// Bytes a partial download of `sha` holds already (0 if none).
    fn partial_len(&self, sha: &Sha256Hash) -> u64;
    /// No record waits for `sha` any more (`false` if the index cannot tell).
    fn superseded(&self, sha: &Sha256Hash) -> bool;
    /// The hash of `sha`'s ciphertext, if known (what an untrusted peer holds it by).
    fn cipher_of(&self, sha: &Sha256Hash) -> Option<Sha256Hash>;
}

/// What one connection is to be asked.
#[derive(Debug, Default)]
pub(super) struct PeerPlan {
    /// The connection.
    pub(super) conn: u64,
    /// `directory.get`s to send, in order.
    pub(super) requests: Vec<Message>,
    /// The whole-file downloads they start, by contents.
    pub(super) downloads: Vec<(Sha256Hash, Download)>,
    /// Contents to ask for as deltas (signatures not sent yet, counted in its requests).
    pub(super) deltas: Vec<Fetch>,
    /// Ciphertext hashes asked for, with the contents each stands for.
    pub(super) names: Vec<(Sha256Hash, Sha256Hash)>,
}

/// What to do: the outcome of [`plan`].
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// Per connected peer, in the order given.
    pub(super) peers: Vec<PeerPlan>,
    /// Partial downloads that hold every byte: to verify and install.
    pub(super) complete: Vec<Fetch>,
    /// Contents no record waits for any more (removed from the wanted ones).
    pub(super) dropped: Vec<Sha256Hash>,
    /// The bytes still needed by the first content that did not fit in the free room.
    pub(super) short_of_space: Option<u64>,
}

/// Plans what each of `peers` (in order, sharing the queue) is asked for next. `free` is
/// what may still be written without going under `min_free_space` (`None`: unknown, no
/// limit); what is already on its way counts against it.
pub(super) fn plan(wanted: Wanted<'_>, peers: &mut [Peer<'_>], free: Option<u64>, facts: &impl Facts) -> Plan {
    let room = free.map(|free| free.saturating_sub(on_the_way(&wanted, peers)));
    let mut planner = Planner { wanted, facts, room, plan: Plan::default() };
    for peer in peers.iter_mut() {
        let peer_plan = planner.fill(peer);
        planner.plan.peers.push(peer_plan);
    }
    planner.plan
}

/// Bytes of the wanted contents asked for, downloading or being written. (Counted whole,
/// from the request until the file is installed: conservative, since what has arrived
/// already takes space.)
fn on_the_way(wanted: &Wanted<'_>, peers: &[Peer<'_>]) -> u64 {
    // (Sorted and deduplicated rather than collected into a set: this runs after every
    // finished file, and hashing each content into a fresh set cost more than the sort.)
    let mut in_flight: Vec<&Sha256Hash> = peers
        .iter()
        .flat_map(|p| p.requests.asked.iter())
        .chain(wanted.downloads.keys())
        .chain(wanted.writing.iter())
        .collect();
    in_flight.sort_unstable();
    in_flight.dedup();
    in_flight.into_iter().filter_map(|sha| wanted.fetches.get(sha)).map(|f| f.size).sum()
}

/// Whether a partial download of `partial` bytes already holds all of `f`.
pub(super) fn is_complete(partial: u64, f: &Fetch) -> bool {
    partial > 0 && partial >= f.size
}

/// Whether `f` is asked of a peer as a delta: the peer does deltas, the file is large enough
/// to be worth a round trip, its signature is one we would take, nothing of it arrived yet
/// (an interrupted download is continued, not replaced by a delta), and no delta of it
/// failed.
fn wants_delta(rsync: bool, f: &Fetch, partial: u64, whole: &HashSet<Sha256Hash>) -> bool {
    let small_signature = SigParams::for_size(f.size).signature_len(f.size) <= MAX_SIGNATURE as u64;
    rsync && f.size >= DELTA_MIN_SIZE && small_signature && partial == 0 && !whole.contains(&f.sha256)
}

/// What became of the queue entry looked at.
enum Step {
    /// It stays where it is: look at the next one.
    Skipped,
    /// It left the queue: the next one is at the same place.
    Taken,
}

/// The state of one [`plan`].
struct Planner<'a, F> {
    wanted: Wanted<'a>,
    facts: &'a F,
    /// What may still be written (`None`: no limit).
    room: Option<u64>,
    plan: Plan,
}

impl<F: Facts> Planner<'_, F> {
    /// Takes from the queue what `peer` may be asked for now.
    fn fill(&mut self, peer: &mut Peer<'_>) -> PeerPlan {
        let mut out = PeerPlan { conn: peer.conn, ..PeerPlan::default() };
        let mut i = 0;
        while i < self.wanted.queue.len() && peer.requests.has_room() {
            match self.consider(i, peer, &mut out) {
                Step::Skipped => i += 1,
                Step::Taken => {}
            }
        }
        out
    }

    /// Looks at the `i`th content in the queue for `peer`.
    fn consider(&mut self, i: usize, peer: &mut Peer<'_>, out: &mut PeerPlan) -> Step {
        let sha = self.wanted.queue[i];
        if peer.requests.refused.contains(&sha) || self.wanted.writing.contains(&sha) {
            return Step::Skipped;
        }
        let partial = self.facts.partial_len(&sha);
        let need = self.wanted.fetches.get(&sha).map_or(0, |f| f.size.saturating_sub(partial));
        if self.room.is_some_and(|r| need > r) {
            // Waits (the retry timer looks again) rather than fill the disk.
            self.plan.short_of_space.get_or_insert(need);
            return Step::Skipped;
        }
        self.room = self.room.map(|r| r - need);
        self.wanted.queue.remove(i);
        // Superseded meanwhile (deleted, or changed again): nobody waits any more.
        if self.facts.superseded(&sha) {
            self.wanted.fetches.remove(&sha);
            self.plan.dropped.push(sha);
            return Step::Taken;
        }
        let Some(f) = self.wanted.fetches.get(&sha).cloned() else { return Step::Taken };
        if is_complete(partial, &f) {
            // (A failed install after the last byte, for one.)
            self.plan.complete.push(f);
            return Step::Taken;
        }
        let Some(name) = self.name_for(peer, &sha, out) else {
            // An untrusted peer, and we do not know the ciphertext's hash: another peer's.
            peer.requests.refused.insert(sha);
            self.wanted.queue.insert(i, sha);
            return Step::Skipped;
        };
        self.ask(peer, f, name, partial, out);
        Step::Taken
    }

    /// The name `peer` knows `sha` by: an untrusted peer has the contents under their
    /// ciphertext's hash, if we know it (from the encrypted record it sent).
    fn name_for(&self, peer: &Peer<'_>, sha: &Sha256Hash, out: &mut PeerPlan) -> Option<Sha256Hash> {
        if !peer.untrusted {
            return Some(*sha);
        }
        let cipher = self.facts.cipher_of(sha)?;
        out.names.push((cipher, *sha));
        Some(cipher)
    }

    /// Asks `peer` for `f` (by `name`), as a delta or downloaded from `partial` on.
    fn ask(&self, peer: &mut Peer<'_>, f: Fetch, name: Sha256Hash, partial: u64, out: &mut PeerPlan) {
        let requests = &mut *peer.requests;
        requests.asked.push_back(f.sha256);
        requests.asked_bytes += f.size;
        if wants_delta(peer.rsync, &f, partial, self.wanted.whole) {
            requests.gets += 1;
            out.deltas.push(f);
        } else {
            let mut d =
                Download { conn: peer.conn, name, size: f.size, next: partial, requested: partial, writer: None };
            let asks = d.ask_more(MAX_REQUESTS - requests.gets);
            requests.gets += asks.len();
            out.requests.extend(asks);
            out.downloads.push((f.sha256, d));
        }
    }
}

#[cfg(test)]
mod tests;
