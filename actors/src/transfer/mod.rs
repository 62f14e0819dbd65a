//! The `Transfer` actor: one per share. It fetches the contents the share needs from the
//! connected peers and serves the contents peers ask for.
//!
//! Fetching: a queue of wanted contents (by SHA-256); each connection gets up to
//! [`MAX_REQUESTS`] `directory.get`s (and [`MAX_REQUEST_BYTES`]) in flight, so small files
//! are pipelined and large ones do not pile up. Each `directory.data` streams into a temp
//! file on a blocking thread through a bounded channel (a slow disk slows the connection's
//! reading; memory stays bounded), hashed as it is written, verified, fsynced and handed to
//! the share to install. A peer that answers `not_present`, sends bad data or disconnects
//! gives the request back to the queue for another peer. What each connection is asked for
//! next is decided by `queue::plan` (pure: no actor, I/O or clock); the actor gathers
//! the facts it needs and carries out its plan.
//!
//! Serving: `directory.get` is answered from a file whose on-disk stat still matches the
//! index (so we never send contents we have not hashed), streamed by the connection. What
//! each connection may be served (and whether deltas go either way) is its [`Access`]: an
//! untrusted peer only ever gets ciphertext, by the ciphertext's hash.
//!
//! Lookups read the share's index directly (RocksDB is safe to read concurrently); only the
//! share's worker writes it.

mod access;
pub mod messages;
mod queue;
mod receive;
mod refine;
mod serve;

pub use self::access::Access;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Recipient, SpawnHandle, WrapFuture};
use bytes::Bytes;
use clearskies_index::apply::Fetch;
use clearskies_index::durable;
use clearskies_index::fsops::{self, SharedReader, TempWriter};
use clearskies_index::store::ShareStore;
use clearskies_protocol::message::directory::Get;
use clearskies_protocol::message::{rsync, Message};
use clearskies_protocol::rdiff::{self, SigParams};
use clearskies_protocol::Sha256Hash;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use self::messages::{
    FetchRange, Fetches, Finished, Missing, SetTransfersPaused, Sink, SinkItem, TransferPeerDown, TransferPeerUp,
    Written,
};
use self::queue::{is_complete, Plan, Requests};
use crate::config::parse::show_bytes;
use crate::peer::messages::{PeerOut, Producer};
use crate::share::messages::{DiskFull, Downloaded};

/// Requests in flight per connection.
pub const MAX_REQUESTS: usize = 64;
/// Bytes asked for per connection before waiting for answers (at least one request is
/// always allowed).
pub const MAX_REQUEST_BYTES: u64 = 64 << 20;
/// `directory.get` lookups per connection at once; more are refused with `get_error`.
const MAX_SERVE_LOOKUPS: usize = 64;
/// Chunks buffered between a connection and a download's writer.
const SINK_DEPTH: usize = 8;
/// Longest wait before contents every peer refused are asked for again.
const RETRY: Duration = Duration::from_secs(10);
/// The first such wait: it doubles while contents stay refused, up to [`RETRY`], and starts
/// over once nothing waits. A peer that answered `not_present` is often fetching the same
/// contents itself and has them a moment later (nothing tells us when it does).
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// A changed file at least this large, whose previous version we hold, is fetched as an
/// rsync delta against that version (smaller ones whole: a round trip costs more).
pub const DELTA_MIN_SIZE: u64 = 256 << 10;
/// Largest signature we take from a peer (about 700 000 blocks: a file of some 500 GB at
/// the block size [`SigParams::for_size`] picks; larger files travel whole).
const MAX_SIGNATURE: usize = 8 << 20;
/// Unsynced small downloads a share may hold open, waiting for an install's `syncfs`
/// (see [`durable`]); beyond that, writers fsync their own.
const MAX_UNSYNCED: usize = 512;
/// Deltas one connection may have us compute at once (each holds a parsed signature).
const MAX_DELTA_SERVES: usize = 2;
/// Larger files are asked for in ranges of this size (an interrupted download continues
/// from what arrived). With `gzip` every range is one message, which the sender assembles
/// whole (the compressed length comes first) and copies once more to compress: two buffers
/// of a range per connection sending. 16 MiB ranges made those 32 MiB, and glibc kept them
/// after use (RSS of a long-running worker 56 → 74 MiB); 4 MiB sends 1 GiB as fast.
pub const RANGE: u64 = 4 << 20;
/// Ranges of one file asked for ahead of the one arriving. One: the next range is asked for
/// when the current one starts to arrive, so it is already queued behind it, and it cannot
/// overtake it (a peer answers concurrent requests in any order).
const RANGES_AHEAD: u64 = 1;

#[derive(Debug)]
struct Slot {
    out: Recipient<PeerOut>,
    /// What the peer may be served; whether deltas go either way; whether it holds (and
    /// gets) ciphertext.
    access: Access,
    /// The connection uses `gzip`.
    gzip: bool,
    /// Deltas from and for it may be refined (`.rs.clearskies.rsync-refine`).
    refine: bool,
    /// What it was asked for and refused.
    requests: Requests,
}

/// One share's transfers.
#[derive(Debug)]
pub struct Transfer {
    /// The settings in effect (`min_free_space`).
    runtime: crate::config::Runtime,
    root: PathBuf,
    /// Small downloads leave their fsync to the share's install, which makes a batch
    /// durable at once: the root's filesystem allows it ([`durable::allowed`]).
    batch_sync: bool,
    /// The unsynced downloads this share may hold open, waiting for an install.
    unsynced: durable::Slots,
    store: ShareStore,
    downloaded: Recipient<Downloaded>,
    disk_full: Recipient<DiskFull>,
    /// The last download failed for lack of space (told to the share once per change).
    full: bool,
    peers: BTreeMap<u64, Slot>,
    queue: VecDeque<Sha256Hash>,
    wanted: HashMap<Sha256Hash, Fetch>,
    retry: Option<SpawnHandle>,
    /// The wait of the next retry (see [`RETRY_FIRST`]).
    retry_wait: Duration,
    /// Ciphertext hashes we asked untrusted peers for, per connection: the contents each
    /// stands for.
    names: HashMap<(u64, Sha256Hash), Sha256Hash>,
    /// Downloads wait for free space (`min_free_space`).
    low_space: bool,
    paused: bool,
    /// Per connection: `directory.get` lookups running on the blocking pool.
    serving: HashMap<u64, usize>,
    /// The previous versions that delta requests in flight patch, by the contents wanted.
    bases: HashMap<Sha256Hash, Arc<File>>,
    /// Of those, the ones asked for with a coarse signature (a refined delta) whose plan has
    /// not come yet: the only ones a plan is taken for, once.
    refining: HashSet<Sha256Hash>,
    /// Contents whose delta failed (or did not verify): fetched whole from now on.
    whole: HashSet<Sha256Hash>,
    /// Per connection: permits for the deltas we compute for it.
    delta_serves: HashMap<u64, Arc<Semaphore>>,
    /// Whole-file downloads asked for, by contents.
    downloads: HashMap<Sha256Hash, Download>,
    /// Contents whose writer (download or patch) is still running: not asked for again
    /// until it ends, so no two writers share a partial file.
    writing: HashSet<Sha256Hash>,
    /// Of the wanted contents, those that may have a partial download on disk: one was
    /// there when they became wanted, or a writer has been started for them since. The
    /// planner takes the others' partial length as 0 rather than look (a stat, on this
    /// thread, for every file it plans).
    partials: HashSet<Sha256Hash>,
    /// Ranges asked for by streams (`read_file`), by (connection, contents, start).
    streams: HashMap<(u64, Sha256Hash, u64), Sink>,
}

/// A whole-file download in progress on one connection, range after range.
#[derive(Debug)]
struct Download {
    conn: u64,
    /// The name the peer knows the contents by: their SHA-256, or for an untrusted peer
    /// that of their ciphertext.
    name: Sha256Hash,
    size: u64,
    /// Where the next range must start.
    next: u64,
    /// How far we have asked.
    requested: u64,
    /// The writer's input, once the first range arrived: chunks, and each range's
    /// (start, length) before its chunks.
    writer: Option<(Sink, tokio::sync::mpsc::UnboundedSender<(u64, u64)>)>,
}

impl Transfer {
    /// The transfers of the share at `root`, indexed in `store`; finished downloads go to
    /// `downloaded`.
    pub fn new(
        root: PathBuf,
        store: ShareStore,
        downloaded: Recipient<Downloaded>,
        disk_full: Recipient<DiskFull>,
        runtime: crate::config::Runtime,
    ) -> Self {
        Transfer {
            runtime,
            batch_sync: durable::allowed(&root),
            unsynced: durable::Slots::new(MAX_UNSYNCED),
            root,
            store,
            downloaded,
            disk_full,
            full: false,
            peers: BTreeMap::new(),
            queue: VecDeque::new(),
            wanted: HashMap::new(),
            retry: None,
            retry_wait: RETRY_FIRST,
            names: HashMap::new(),
            low_space: false,
            paused: false,
            serving: HashMap::new(),
            bases: HashMap::new(),
            refining: HashSet::new(),
            whole: HashSet::new(),
            delta_serves: HashMap::new(),
            downloads: HashMap::new(),
            writing: HashSet::new(),
            partials: HashSet::new(),
            streams: HashMap::new(),
        }
    }

    /// Asks the connected peers for what the share wants next (see [`queue`]), and looks
    /// again later at what had to wait.
    fn schedule(&mut self, ctx: &mut Context<Self>) {
        if self.paused {
            return;
        }
        let plan = self.plan();
        self.carry_out(plan, ctx);
        // Contents every connected peer refused: ask again later (they may get them).
        if self.queue.is_empty() {
            self.retry_wait = RETRY_FIRST;
            if let Some(h) = self.retry.take() {
                ctx.cancel_future(h);
            }
        } else if self.retry.is_none() {
            let wait = self.retry_wait;
            self.retry_wait = (wait * 2).min(RETRY);
            self.retry = Some(ctx.run_later(wait, |act, ctx| {
                act.retry = None;
                for slot in act.peers.values_mut() {
                    slot.requests.refused.clear();
                }
                act.schedule(ctx);
            }));
        }
    }

    /// What to ask of whom: the free space and the peers handed to the planner (which takes
    /// what it plans from the queue and counts it in the peers' requests).
    fn plan(&mut self) -> Plan {
        // What we may still write without going under `min_free_space` (unknown, if the
        // filesystem cannot tell: no limit); the planner takes off what is on its way.
        let free = fsops::free_space(&self.root)
            .map(|(free, total)| free.saturating_sub(self.runtime.min_free().bytes(total)));
        let facts = OnDisk { root: &self.root, store: &self.store, partials: &self.partials };
        let mut peers: Vec<queue::Peer<'_>> = self
            .peers
            .iter_mut()
            .map(|(&conn, slot)| queue::Peer {
                conn,
                untrusted: slot.access.crypt().is_some(),
                rsync: slot.access.rsync(),
                requests: &mut slot.requests,
            })
            .collect();
        let wanted = queue::Wanted {
            queue: &mut self.queue,
            fetches: &mut self.wanted,
            downloads: &self.downloads,
            writing: &self.writing,
            whole: &self.whole,
        };
        queue::plan(wanted, &mut peers, free, &facts)
    }

    /// Carries out `plan`: requests sent, downloads recorded, deltas asked for, complete
    /// partial downloads finished, and a change in whether downloads wait for space told.
    fn carry_out(&mut self, plan: Plan, ctx: &mut Context<Self>) {
        for sha in &plan.dropped {
            debug!(%sha, "no record waits for these contents any more");
            self.partials.remove(sha);
        }
        let mut deltas = Vec::new();
        for peer in plan.peers {
            let conn = peer.conn;
            self.names.extend(peer.names.into_iter().map(|(cipher, plain)| ((conn, cipher), plain)));
            self.downloads.extend(peer.downloads);
            if let Some(slot) = self.peers.get(&conn).filter(|_| !peer.requests.is_empty()) {
                let in_flight = slot.requests.asked.len();
                debug!(conn, requests = peer.requests.len(), in_flight, "asking for contents");
                slot.out.do_send(PeerOut::Send(peer.requests));
            }
            deltas.extend(peer.deltas.into_iter().map(|fetch| (conn, fetch)));
        }
        for (conn, fetch) in deltas {
            self.ask_for_delta(conn, fetch, ctx);
        }
        for fetch in plan.complete {
            self.finish_partial(fetch, ctx);
        }
        self.tell_short_of_space(plan.short_of_space);
    }

    /// Tells the share when downloads start or stop waiting for free space (`need`: the
    /// bytes a file that waits needs).
    fn tell_short_of_space(&mut self, need: Option<u64>) {
        let low = need.map(|need| {
            // What the user can act on: the rule, and what there is.
            let (free, total) = fsops::free_space(&self.root).unwrap_or((0, 0));
            let min = self.runtime.min_free();
            let keep = match min {
                crate::config::MinFree::Percent(p) => format!("{p}% = {}", show_bytes(min.bytes(total))),
                crate::config::MinFree::Bytes(b) => show_bytes(b),
            };
            format!(
                "{DISK_FULL}: a {} download would leave less than min_free_space ({keep}) free on {}, which has {} \
                 free; waiting for space",
                show_bytes(need),
                self.root.display(),
                show_bytes(free),
            )
        });
        if low.is_some() != self.low_space {
            self.low_space = low.is_some();
            if !self.full {
                self.disk_full.do_send(DiskFull(low));
            }
        }
    }

    /// The contents a peer's name for them stands for (a ciphertext hash, for an untrusted
    /// peer).
    fn plain_name(&self, conn: u64, name: Sha256Hash) -> Sha256Hash {
        self.names.get(&(conn, name)).copied().unwrap_or(name)
    }

    /// Verifies a partial download that holds every byte already and hands it over for
    /// installing (or, if it is not what the record says, removes it: it is then fetched
    /// from the start).
    fn finish_partial(&mut self, fetch: Fetch, ctx: &mut Context<Self>) {
        let sha = fetch.sha256;
        debug!(%sha, "a partial download is complete: verifying it");
        self.start_writing(sha);
        let (root, store) = (self.root.clone(), self.store.clone());
        let job = tokio::task::spawn_blocking(move || -> Result<Written, Failure> {
            let w = open_partial(&root, &sha, fetch.size)?;
            if store.waiting_for(&sha).map_err(|e| Failure::retry(e.to_string()))?.is_empty() {
                w.discard();
                return Err(Failure::no_longer_wanted());
            }
            if w.written() != fetch.size {
                return Err(Failure::retry("the partial file changed; asking again".into()));
            }
            w.finish(&sha, fetch.size, fetch.unix_mode, fetch.mtime)
                .map(Written::synced)
                .map_err(|e| Failure::io("verifying", &e))
        });
        ctx.spawn(job.into_actor(self).map(move |joined, _, ctx| {
            let result = joined.unwrap_or_else(|e| Err(Failure::retry(format!("verifier failed: {e}"))));
            // (No connection: `conn` 0 is none.)
            ctx.notify(Finished { conn: 0, sha256: sha, delta: false, result });
        }));
    }

    /// A writer (which opens the partial file) starts for `sha`.
    fn start_writing(&mut self, sha: Sha256Hash) {
        self.writing.insert(sha);
        self.partials.insert(sha);
    }

    /// Takes `sha` off `conn`'s in-flight list; whether it was there.
    fn answered(&mut self, conn: u64, sha: &Sha256Hash) -> bool {
        let Some(slot) = self.peers.get_mut(&conn) else { return false };
        let Some(i) = slot.requests.asked.iter().position(|s| s == sha) else { return false };
        slot.requests.asked.remove(i);
        let size = self.wanted.get(sha).map_or(0, |f| f.size);
        slot.requests.asked_bytes = slot.requests.asked_bytes.saturating_sub(size);
        true
    }

    /// Asks `conn` for `fetch` as a delta from the version we hold, if that version is
    /// still on disk exactly as indexed; otherwise (or if it is gone meanwhile) whole.
    fn ask_for_delta(&mut self, conn: u64, fetch: Fetch, ctx: &mut Context<Self>) {
        let (root, store) = (self.root.clone(), self.store.clone());
        let path = fetch.path.clone();
        let job = tokio::task::spawn_blocking(move || -> Option<(Arc<File>, u64)> {
            let record = store.get(&path).ok()??;
            let local = record.local.filter(|_| record.local_sha256.is_some())?;
            let file = fsops::open_unchanged(&root, &path, &local).ok()??;
            Some((Arc::new(file), local.size))
        });
        ctx.spawn(job.into_actor(self).map(move |basis, act, _| {
            let sha = fetch.sha256;
            let Some(slot) = act.peers.get_mut(&conn).filter(|s| s.requests.asked.contains(&sha)) else { return };
            let Some((file, size)) = basis.ok().flatten() else {
                // The signature's place in the budget goes to the first range.
                let mut d = Download { conn, name: sha, size: fetch.size, next: 0, requested: 0, writer: None };
                let asks = d.ask_more(1);
                slot.out.do_send(PeerOut::Send(asks));
                act.downloads.insert(sha, d);
                return;
            };
            // A large file from a peer that refines deltas: a coarse signature first.
            let refine = slot.refine && size >= rdiff::refine::REFINE_MIN_SIZE;
            let (params, step) = if refine {
                (rdiff::refine::coarse_params(size), Some(rsync::RefineStep::Coarse))
            } else {
                (SigParams::for_size(size), None)
            };
            debug!(conn, %sha, basis_bytes = size, refine, "asking for a delta");
            act.bases.insert(sha, file.clone());
            if refine {
                act.refining.insert(sha);
            } else {
                act.refining.remove(&sha);
            }
            let header =
                Message::from(rsync::Signature { path: fetch.path.to_string(), sha256: Some(sha), refine: step });
            let produce = Producer(Box::new(move |w: &mut dyn std::io::Write| {
                let made = if refine {
                    // Few sums of many bytes: every core reads and sums a part.
                    rdiff::signature_parts(refine::parts(file, size, params.block_len), params, w)
                } else {
                    rdiff::signature(SharedReader::new(file), params, w)
                };
                made.map(drop).map_err(std::io::Error::other)
            }));
            // A signature is hashes: nothing for gzip to gain.
            slot.out.do_send(PeerOut::Produce { header, produce, compressible: false });
        }));
    }

    fn requeue(&mut self, conn: u64, sha: Sha256Hash) {
        self.bases.remove(&sha);
        self.refining.remove(&sha);
        if self.downloads.get(&sha).is_some_and(|d| d.conn == conn) {
            self.downloads.remove(&sha);
        }
        if let Some(slot) = self.peers.get_mut(&conn) {
            slot.requests.refused.insert(sha);
        }
        if self.wanted.contains_key(&sha) && !self.queue.contains(&sha) {
            self.queue.push_front(sha);
        }
    }
}

/// The planner's facts, read from the partial downloads and the share's index.
struct OnDisk<'a> {
    root: &'a Path,
    store: &'a ShareStore,
    /// See [`Transfer::partials`]: the others have none.
    partials: &'a HashSet<Sha256Hash>,
}

impl queue::Facts for OnDisk<'_> {
    fn partial_len(&self, sha: &Sha256Hash) -> u64 {
        if self.partials.contains(sha) {
            fsops::partial_len(self.root, sha)
        } else {
            0
        }
    }

    fn superseded(&self, sha: &Sha256Hash) -> bool {
        self.store.waiting_for(sha).is_ok_and(|w| w.is_empty())
    }

    fn cipher_of(&self, sha: &Sha256Hash) -> Option<Sha256Hash> {
        self.store.cipher_of(sha).ok().flatten()
    }
}

/// Opens (or continues) the partial download of `sha`; a missing root or marker is
/// [`FailureKind::RootMissing`]: the download is dropped, and fetched again when the root
/// is back.
fn open_partial(root: &Path, sha: &Sha256Hash, size: u64) -> Result<TempWriter, Failure> {
    TempWriter::resume(root, sha, size).map_err(|e| Failure::io("partial file", &e))
}

/// How a download error that means "the disk is full" starts.
const DISK_FULL: &str = "disk full";
/// The contents' records changed while they were on the way.
const NO_LONGER_WANTED: &str = "no longer wanted";
/// The connection ended in the middle of an attachment.
const CUT_OFF: &str = "the connection ended mid-transfer";

/// What the actor does about a failed download: decided by this kind, never by the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FailureKind {
    /// Ask again (another peer, or later).
    Retry,
    /// Ask again, and fetch it whole: a delta was wrong (malformed, or the patched file did
    /// not verify).
    FetchWhole,
    /// The disk (or the quota) is full: ask again, and report it.
    DiskFull,
    /// The contents' records changed while they were on the way: drop it.
    NoLongerWanted,
    /// The share's root or marker is missing: drop it (fetched again when the root is back).
    RootMissing,
}

/// Why a download failed.
#[derive(Debug)]
pub(super) struct Failure {
    /// For the log and the share's error.
    text: String,
    kind: FailureKind,
}

impl Failure {
    fn retry(text: String) -> Self {
        Failure { text, kind: FailureKind::Retry }
    }

    fn no_longer_wanted() -> Self {
        Failure { text: NO_LONGER_WANTED.into(), kind: FailureKind::NoLongerWanted }
    }

    /// An I/O error: a full disk (ENOSPC, EDQUOT) is told apart, and a missing root.
    fn io(doing: &str, e: &std::io::Error) -> Self {
        let full = e.kind() == std::io::ErrorKind::StorageFull
            || e.kind() == std::io::ErrorKind::QuotaExceeded
            || matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT));
        if full {
            Failure { text: format!("{DISK_FULL} ({doing}: {e})"), kind: FailureKind::DiskFull }
        } else if fsops::is_root_missing(e) {
            Failure { text: fsops::ROOT_MISSING.into(), kind: FailureKind::RootMissing }
        } else {
            Failure::retry(format!("{doing}: {e}"))
        }
    }

    fn bad_delta(text: String) -> Self {
        Failure { text, kind: FailureKind::FetchWhole }
    }
}

impl Actor for Transfer {
    type Context = Context<Self>;
}

impl Handler<Fetches> for Transfer {
    type Result = ();

    fn handle(&mut self, Fetches(fetches): Fetches, ctx: &mut Context<Self>) {
        for f in fetches {
            if self.wanted.contains_key(&f.sha256) {
                continue;
            }
            self.wanted.insert(f.sha256, f.clone());
            let partial = fsops::partial_len(&self.root, &f.sha256);
            if partial > 0 {
                self.partials.insert(f.sha256);
            }
            if is_complete(partial, &f) {
                // Every byte arrived before a crash or stop came between the last one and
                // the install: verify and install what is there, ask nobody (peers or not).
                self.finish_partial(f, ctx);
            } else {
                self.queue.push_back(f.sha256);
            }
        }
        self.schedule(ctx);
    }
}

impl Handler<TransferPeerUp> for Transfer {
    type Result = ();

    fn handle(&mut self, msg: TransferPeerUp, ctx: &mut Context<Self>) {
        let refine = msg.refine && msg.access.rsync();
        let slot = Slot { out: msg.out, access: msg.access, gzip: msg.gzip, refine, requests: Requests::default() };
        self.peers.insert(msg.conn, slot);
        self.schedule(ctx);
    }
}

impl Handler<TransferPeerDown> for Transfer {
    type Result = ();

    fn handle(&mut self, msg: TransferPeerDown, ctx: &mut Context<Self>) {
        self.serving.remove(&msg.conn);
        self.delta_serves.remove(&msg.conn);
        // Downloads under way end (their writers see the input close and keep what arrived).
        self.downloads.retain(|_, d| d.conn != msg.conn);
        self.streams.retain(|(conn, _, _), _| *conn != msg.conn);
        self.names.retain(|(conn, _), _| *conn != msg.conn);
        if let Some(slot) = self.peers.remove(&msg.conn) {
            for sha in slot.requests.asked.into_iter().rev() {
                self.bases.remove(&sha);
                self.refining.remove(&sha);
                if self.wanted.contains_key(&sha) && !self.queue.contains(&sha) {
                    self.queue.push_front(sha);
                }
            }
        }
        self.schedule(ctx);
    }
}

impl Handler<FetchRange> for Transfer {
    type Result = ();

    fn handle(&mut self, msg: FetchRange, _: &mut Context<Self>) {
        // A connected peer that did not just refuse these contents: a trusted one, else (if
        // allowed) an untrusted one, asked by the ciphertext's hash (the plaintext hash
        // never goes to an untrusted peer), if we know it.
        let usable = |s: &Slot| !s.requests.refused.contains(&msg.sha256);
        let trusted = self.peers.iter().find(|(_, s)| s.access.crypt().is_none() && usable(s));
        let untrusted = || {
            let cipher = self.store.cipher_of(&msg.sha256).ok().flatten()?;
            let (&conn, slot) = self.peers.iter().find(|(_, s)| s.access.crypt().is_some() && usable(s))?;
            Some((conn, slot, cipher, slot.access.crypt().cloned()))
        };
        let found = match trusted {
            Some((&conn, slot)) => Some((conn, slot, msg.sha256, None)),
            None if msg.untrusted => untrusted(),
            None => None,
        };
        let Some((conn, slot, name, crypt)) = found else {
            debug!(sha256 = %msg.sha256, "no peer to stream from");
            return; // `chunks` dropped: the stream reports it
        };
        let get = Get { sha256: name, range: Some([msg.start, msg.len]) };
        slot.out.do_send(PeerOut::Send(vec![get.into()]));
        let sink = match crypt {
            None => msg.chunks,
            Some(keys) => decrypting(&keys, &msg.sha256, msg.start, msg.chunks),
        };
        self.streams.insert((conn, name, msg.start), sink);
    }
}

/// A sink that decrypts an untrusted peer's ciphertext of `plain` from `start` on and
/// passes the plaintext to `out` (dropped, if the keys cannot: the stream reports it).
fn decrypting(keys: &clearskies_index::untrusted::UntrustedKeys, plain: &Sha256Hash, start: u64, out: Sink) -> Sink {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<SinkItem>(SINK_DEPTH);
    let Ok(mut ctr) = keys.content_stream(plain, start) else { return tx };
    actix_rt::spawn(async move {
        while let Some(item) = rx.recv().await {
            let item = match item {
                SinkItem::Chunk(b) => {
                    let mut b = b.to_vec();
                    if ctr.apply(&mut b).is_err() {
                        return;
                    }
                    SinkItem::Chunk(Bytes::from(b))
                }
                SinkItem::End => SinkItem::End,
            };
            if out.send(item).await.is_err() {
                return;
            }
        }
    });
    tx
}

impl Handler<SetTransfersPaused> for Transfer {
    type Result = ();

    fn handle(&mut self, SetTransfersPaused(paused): SetTransfersPaused, ctx: &mut Context<Self>) {
        self.paused = paused;
        self.schedule(ctx);
    }
}

impl Handler<Missing> for Transfer {
    type Result = ();

    fn handle(&mut self, msg: Missing, ctx: &mut Context<Self>) {
        let streamed = self.streams.len();
        self.streams.retain(|(conn, sha, _), _| !(*conn == msg.conn && *sha == msg.sha256));
        if self.streams.len() < streamed {
            // A stream's range the peer cannot send: the stream ends with that error.
            return;
        }
        if let Some(slot) = self.peers.get_mut(&msg.conn) {
            slot.requests.gets = slot.requests.gets.saturating_sub(1);
        }
        let msg = Missing { sha256: self.plain_name(msg.conn, msg.sha256), ..msg };
        if msg.too_large && self.bases.contains_key(&msg.sha256) {
            // The delta was too large for one gzip message: the file comes whole, in ranges.
            self.whole.insert(msg.sha256);
        }
        if self.answered(msg.conn, &msg.sha256) {
            debug!(sha256 = %msg.sha256, "peer does not have the contents");
            self.requeue(msg.conn, msg.sha256);
            if msg.too_large {
                // It has them, only not as one message: ask again at once, in ranges.
                if let Some(slot) = self.peers.get_mut(&msg.conn) {
                    slot.requests.refused.remove(&msg.sha256);
                }
            }
            self.schedule(ctx);
        } else if self.downloads.get(&msg.sha256).is_some_and(|d| d.conn == msg.conn) {
            // A later range refused (the file changed on the peer): the writer stops, keeps
            // what arrived, and the contents are asked for again when it has.
            debug!(sha256 = %msg.sha256, "peer cannot send the rest of the contents");
            self.downloads.remove(&msg.sha256);
        }
    }
}

impl Handler<Finished> for Transfer {
    type Result = ();

    fn handle(&mut self, msg: Finished, ctx: &mut Context<Self>) {
        debug!(conn = msg.conn, sha256 = %msg.sha256, delta = msg.delta, ok = msg.result.is_ok(), "download finished");
        self.writing.remove(&msg.sha256);
        let full = msg.result.as_ref().err().filter(|e| e.kind == FailureKind::DiskFull).map(|e| e.text.clone());
        if full.is_some() != self.full {
            self.full = full.is_some();
            // (While downloads wait for `min_free_space`, that state stays reported.)
            if full.is_some() || !self.low_space {
                self.disk_full.do_send(DiskFull(full));
            }
        }
        match msg.result {
            Ok(Written { temp, unsynced }) => {
                // (Should the share not install it, the partial file stays, and is found
                // again when the contents are wanted again: see `Fetches`.)
                self.wanted.remove(&msg.sha256);
                self.whole.remove(&msg.sha256);
                self.partials.remove(&msg.sha256);
                self.downloaded.do_send(Downloaded { sha256: msg.sha256, temp, unsynced });
            }
            Err(e) if matches!(e.kind, FailureKind::NoLongerWanted | FailureKind::RootMissing) => {
                if e.kind == FailureKind::RootMissing {
                    warn!(sha256 = %msg.sha256, "{}: the download waits until it is back", fsops::ROOT_MISSING);
                }
                self.wanted.remove(&msg.sha256);
                self.whole.remove(&msg.sha256);
                self.partials.remove(&msg.sha256);
            }
            Err(e) => {
                warn!(sha256 = %msg.sha256, error = %e.text, delta = msg.delta, "download failed; will ask again");
                if msg.delta && e.kind == FailureKind::FetchWhole {
                    self.whole.insert(msg.sha256);
                }
                self.requeue(msg.conn, msg.sha256);
            }
        }
        self.schedule(ctx);
    }
}
