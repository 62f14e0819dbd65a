//! The `Transfer` actor: one per share. It fetches the contents the share needs from the
//! connected peers and serves the contents peers ask for.
//!
//! Fetching: a queue of wanted contents (by SHA-256); each connection gets up to
//! [`MAX_REQUESTS`] `directory.get`s (and [`MAX_REQUEST_BYTES`]) in flight, so small files
//! are pipelined and large ones do not pile up. Each `directory.data` streams into a temp
//! file on a blocking thread through a bounded channel (a slow disk slows the connection's
//! reading; memory stays bounded), hashed as it is written, verified, fsynced and handed to
//! the share to install. A peer that answers `not_present`, sends bad data or disconnects
//! gives the request back to the queue for another peer.
//!
//! Serving: `directory.get` is answered from a file whose on-disk stat still matches the
//! index (so we never send contents we have not hashed), streamed by the connection.
//!
//! Lookups read the share's index directly (RocksDB is safe to read concurrently); only the
//! share's worker writes it.

pub mod messages;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Recipient, SpawnHandle, WrapFuture};
use bytes::Bytes;
use clearskies_protocol::message::directory::{Data, Get, GetError, NotPresent};
use clearskies_protocol::message::{rsync, Message};
use clearskies_protocol::path::SharePath;
use clearskies_protocol::rdiff::{self, RdiffError, SigParams, Signature};
use clearskies_protocol::Sha256Hash;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use self::messages::{
    DataStart, Fetches, Finished, Inbound, Missing, ServeGet, SetTransfersPaused, Sink, SinkItem, TransferPeerDown,
    TransferPeerUp,
};
use crate::metrics::metrics;
use crate::peer::messages::{PeerOut, Producer};
use crate::share::apply::Fetch;
use crate::share::fsops::{self, SharedReader, TempWriter};
use crate::share::messages::{DiskFull, Downloaded};
use crate::share::store::ShareStore;

/// Requests in flight per connection.
pub const MAX_REQUESTS: usize = 64;
/// Bytes asked for per connection before waiting for answers (at least one request is
/// always allowed).
pub const MAX_REQUEST_BYTES: u64 = 64 << 20;
/// `directory.get` lookups per connection at once; more are refused with `get_error`.
const MAX_SERVE_LOOKUPS: usize = 64;
/// Chunks buffered between a connection and a download's writer.
const SINK_DEPTH: usize = 8;
/// How long before contents every peer refused are asked for again.
const RETRY: Duration = Duration::from_secs(10);
/// A changed file at least this large, whose previous version we hold, is fetched as an
/// rsync delta against that version (smaller ones whole: a round trip costs more).
pub const DELTA_MIN_SIZE: u64 = 256 << 10;
/// Largest signature we take from a peer (about 700 000 blocks: a file of some 500 GB at
/// the block size [`SigParams::for_size`] picks; larger files travel whole).
const MAX_SIGNATURE: usize = 8 << 20;
/// Deltas one connection may have us compute at once (each holds a parsed signature).
const MAX_DELTA_SERVES: usize = 2;

#[derive(Debug)]
struct Slot {
    out: Recipient<PeerOut>,
    /// Both sides speak `rsync`.
    rsync: bool,
    asked: VecDeque<Sha256Hash>,
    asked_bytes: u64,
    refused: HashSet<Sha256Hash>,
}

/// One share's transfers.
#[derive(Debug)]
pub struct Transfer {
    root: PathBuf,
    store: ShareStore,
    downloaded: Recipient<Downloaded>,
    disk_full: Recipient<DiskFull>,
    /// The last download failed for lack of space (told to the share once per change).
    full: bool,
    peers: BTreeMap<u64, Slot>,
    queue: VecDeque<Sha256Hash>,
    wanted: HashMap<Sha256Hash, Fetch>,
    retry: Option<SpawnHandle>,
    paused: bool,
    /// Per connection: `directory.get` lookups running on the blocking pool.
    serving: HashMap<u64, usize>,
    /// The previous versions that delta requests in flight patch, by the contents wanted.
    bases: HashMap<Sha256Hash, Arc<File>>,
    /// Contents whose delta failed (or did not verify): fetched whole from now on.
    whole: HashSet<Sha256Hash>,
    /// Per connection: permits for the deltas we compute for it.
    delta_serves: HashMap<u64, Arc<Semaphore>>,
}

impl Transfer {
    /// The transfers of the share at `root`, indexed in `store`; finished downloads go to
    /// `downloaded`.
    pub fn new(
        root: PathBuf,
        store: ShareStore,
        downloaded: Recipient<Downloaded>,
        disk_full: Recipient<DiskFull>,
    ) -> Self {
        Transfer {
            root,
            store,
            downloaded,
            disk_full,
            full: false,
            peers: BTreeMap::new(),
            queue: VecDeque::new(),
            wanted: HashMap::new(),
            retry: None,
            paused: false,
            serving: HashMap::new(),
            bases: HashMap::new(),
            whole: HashSet::new(),
            delta_serves: HashMap::new(),
        }
    }

    fn schedule(&mut self, ctx: &mut Context<Self>) {
        if self.paused {
            return;
        }
        let mut deltas = Vec::new();
        for (&conn, slot) in &mut self.peers {
            let mut batch = Vec::new();
            let mut i = 0;
            while i < self.queue.len()
                && slot.asked.len() < MAX_REQUESTS
                && (slot.asked.is_empty() || slot.asked_bytes < MAX_REQUEST_BYTES)
            {
                let sha = self.queue[i];
                if slot.refused.contains(&sha) {
                    i += 1;
                    continue;
                }
                self.queue.remove(i);
                // Superseded meanwhile (deleted, or changed again): nobody waits any more.
                if self.store.waiting_for(&sha).is_ok_and(|w| w.is_empty()) {
                    self.wanted.remove(&sha);
                    continue;
                }
                let Some(f) = self.wanted.get(&sha) else { continue };
                slot.asked.push_back(sha);
                slot.asked_bytes += f.size;
                let small_signature = SigParams::for_size(f.size).signature_len(f.size) <= MAX_SIGNATURE as u64;
                if slot.rsync && f.size >= DELTA_MIN_SIZE && small_signature && !self.whole.contains(&sha) {
                    deltas.push((conn, f.clone()));
                } else {
                    batch.push(Message::from(Get { sha256: sha, range: None }));
                }
            }
            if !batch.is_empty() {
                debug!(conn, requests = batch.len(), in_flight = slot.asked.len(), "asking for contents");
                slot.out.do_send(PeerOut::Send(batch));
            }
        }
        for (conn, fetch) in deltas {
            self.ask_for_delta(conn, fetch, ctx);
        }
        // Contents every connected peer refused: ask again later (they may get them).
        if !self.queue.is_empty() && self.retry.is_none() {
            self.retry = Some(ctx.run_later(RETRY, |act, ctx| {
                act.retry = None;
                for slot in act.peers.values_mut() {
                    slot.refused.clear();
                }
                act.schedule(ctx);
            }));
        }
    }

    /// Takes `sha` off `conn`'s in-flight list; whether it was there.
    fn answered(&mut self, conn: u64, sha: &Sha256Hash) -> bool {
        let Some(slot) = self.peers.get_mut(&conn) else { return false };
        let Some(i) = slot.asked.iter().position(|s| s == sha) else { return false };
        slot.asked.remove(i);
        let size = self.wanted.get(sha).map_or(0, |f| f.size);
        slot.asked_bytes = slot.asked_bytes.saturating_sub(size);
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
            let Some(slot) = act.peers.get(&conn).filter(|s| s.asked.contains(&sha)) else { return };
            let Some((file, size)) = basis.ok().flatten() else {
                slot.out.do_send(PeerOut::Send(vec![Get { sha256: sha, range: None }.into()]));
                return;
            };
            debug!(conn, %sha, basis_bytes = size, "asking for a delta");
            act.bases.insert(sha, file.clone());
            let header = Message::from(rsync::Signature { path: fetch.path.to_string(), sha256: Some(sha) });
            let produce = Producer(Box::new(move |w: &mut dyn std::io::Write| {
                rdiff::signature(SharedReader::new(file), SigParams::for_size(size), w)
                    .map(drop)
                    .map_err(std::io::Error::other)
            }));
            slot.out.do_send(PeerOut::Produce { header, produce });
        }));
    }

    fn requeue(&mut self, conn: u64, sha: Sha256Hash) {
        self.bases.remove(&sha);
        if let Some(slot) = self.peers.get_mut(&conn) {
            slot.refused.insert(sha);
        }
        if self.wanted.contains_key(&sha) {
            self.queue.push_front(sha);
        }
    }
}

/// How a download error that means "the disk is full" starts.
const DISK_FULL: &str = "disk full";
/// The contents' records changed while they were on the way.
const NO_LONGER_WANTED: &str = "no longer wanted";
/// The connection ended in the middle of an attachment.
const CUT_OFF: &str = "the connection ended mid-transfer";

/// Why a download failed.
#[derive(Debug)]
pub(super) struct Failure {
    text: String,
    /// A delta was wrong (malformed, or the patched file did not verify): fetch whole.
    fetch_whole: bool,
}

impl Failure {
    fn retry(text: String) -> Self {
        Failure { text, fetch_whole: false }
    }

    fn io(doing: &str, e: &std::io::Error) -> Self {
        Failure::retry(describe(doing, e))
    }

    fn bad_delta(text: String) -> Self {
        Failure { text, fetch_whole: true }
    }
}

/// A download's I/O error as text, marked when it is a full disk (ENOSPC, EDQUOT).
fn describe(doing: &str, e: &std::io::Error) -> String {
    let full = e.kind() == std::io::ErrorKind::StorageFull
        || e.kind() == std::io::ErrorKind::QuotaExceeded
        || matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT));
    if full {
        format!("{DISK_FULL} ({doing}: {e})")
    } else {
        format!("{doing}: {e}")
    }
}

impl Actor for Transfer {
    type Context = Context<Self>;
}

impl Handler<Fetches> for Transfer {
    type Result = ();

    fn handle(&mut self, Fetches(fetches): Fetches, ctx: &mut Context<Self>) {
        for f in fetches {
            if !self.wanted.contains_key(&f.sha256) {
                self.queue.push_back(f.sha256);
                self.wanted.insert(f.sha256, f);
            }
        }
        self.schedule(ctx);
    }
}

impl Handler<TransferPeerUp> for Transfer {
    type Result = ();

    fn handle(&mut self, msg: TransferPeerUp, ctx: &mut Context<Self>) {
        let slot =
            Slot { out: msg.out, rsync: msg.rsync, asked: VecDeque::new(), asked_bytes: 0, refused: HashSet::new() };
        self.peers.insert(msg.conn, slot);
        self.schedule(ctx);
    }
}

impl Handler<TransferPeerDown> for Transfer {
    type Result = ();

    fn handle(&mut self, msg: TransferPeerDown, ctx: &mut Context<Self>) {
        self.serving.remove(&msg.conn);
        self.delta_serves.remove(&msg.conn);
        if let Some(slot) = self.peers.remove(&msg.conn) {
            for sha in slot.asked.into_iter().rev() {
                self.bases.remove(&sha);
                if self.wanted.contains_key(&sha) {
                    self.queue.push_front(sha);
                }
            }
        }
        self.schedule(ctx);
    }
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
        if self.answered(msg.conn, &msg.sha256) {
            debug!(sha256 = %msg.sha256, "peer does not have the contents");
            self.requeue(msg.conn, msg.sha256);
            self.schedule(ctx);
        }
    }
}

impl Handler<DataStart> for Transfer {
    type Result = Option<Sink>;

    fn handle(&mut self, msg: DataStart, ctx: &mut Context<Self>) -> Option<Sink> {
        match msg.what {
            Inbound::Data(data) if data.range.is_none() => self.receive(msg.conn, data.sha256, None, ctx),
            Inbound::Data(data) => {
                debug!(sha256 = %data.sha256, "ranged data we did not ask for; discarded");
                None
            }
            Inbound::Patch(p) => {
                // Our peers name the contents; others only the path.
                let sha = p.sha256.or_else(|| self.asked_for_path(msg.conn, &p.path))?;
                let Some(basis) = self.bases.remove(&sha) else {
                    debug!(sha256 = %sha, "a delta we did not ask for; discarded");
                    return None;
                };
                self.receive(msg.conn, sha, Some(basis), ctx)
            }
            Inbound::Signature(sig) => self.serve_delta(msg.conn, sig, ctx),
        }
    }
}

impl Transfer {
    /// Which contents we asked `conn` for as a delta of `path`.
    fn asked_for_path(&self, conn: u64, path: &str) -> Option<Sha256Hash> {
        let slot = self.peers.get(&conn)?;
        slot.asked.iter().copied().find(|sha| {
            self.bases.contains_key(sha) && self.wanted.get(sha).is_some_and(|f| f.path.to_string() == path)
        })
    }

    /// Takes the bytes of contents we asked `conn` for: the whole file, or (with `basis`) a
    /// delta against our previous version. Either way the result goes to a temp file and
    /// is verified against the record's SHA-256 before the share installs it.
    fn receive(
        &mut self,
        conn: u64,
        sha: Sha256Hash,
        basis: Option<Arc<File>>,
        ctx: &mut Context<Self>,
    ) -> Option<Sink> {
        if !self.answered(conn, &sha) {
            debug!(sha256 = %sha, "data we did not ask for; discarded");
            return None;
        }
        let fetch = self.wanted.get(&sha).cloned()?;
        let delta = basis.is_some();
        debug!(conn, sha256 = %sha, delta, "receiving contents");
        let (tx, mut rx) = tokio::sync::mpsc::channel::<SinkItem>(SINK_DEPTH);
        let (root, store) = (self.root.clone(), self.store.clone());
        let started = std::time::Instant::now();
        let job = tokio::task::spawn_blocking(move || -> Result<PathBuf, Failure> {
            // Still wanted? (The record may have changed while the request was in flight.)
            let waiting = store.waiting_for(&sha).map_err(|e| Failure::retry(e.to_string()))?;
            let path = if waiting.contains(&fetch.path) {
                fetch.path
            } else {
                waiting.into_iter().next().ok_or_else(|| Failure::retry(NO_LONGER_WANTED.into()))?
            };
            let mut w = TempWriter::create(&root, &path, fetch.size).map_err(|e| Failure::io("temp file", &e))?;
            let Some(basis) = basis else {
                while let Some(item) = rx.blocking_recv() {
                    match item {
                        SinkItem::Chunk(b) => w.append(&b).map_err(|e| Failure::io("writing", &e))?,
                        SinkItem::End => {
                            return w
                                .finish(&sha, fetch.size, fetch.unix_mode, fetch.mtime)
                                .map_err(|e| Failure::io("verifying", &e));
                        }
                    }
                }
                return Err(Failure::retry(CUT_OFF.into()));
            };
            let delta = BufReader::with_capacity(1 << 16, SinkReader { rx, piece: Bytes::new(), ended: false });
            match rdiff::patch(&mut SharedReader::new(basis), delta, &mut w, fetch.size) {
                Ok(_) => {}
                Err(RdiffError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionAborted => {
                    return Err(Failure::retry(CUT_OFF.into()))
                }
                Err(RdiffError::Io(e)) => return Err(Failure::io("patching", &e)),
                Err(e) => return Err(Failure::bad_delta(format!("bad delta: {e}"))),
            }
            w.finish(&sha, fetch.size, fetch.unix_mode, fetch.mtime).map_err(|e| {
                let mut f = Failure::io("verifying the patched file", &e);
                f.fetch_whole = e.kind() == std::io::ErrorKind::InvalidData;
                f
            })
        });
        ctx.spawn(job.into_actor(self).map(move |joined, act, ctx| {
            let result = joined.unwrap_or_else(|e| Err(Failure::retry(format!("writer failed: {e}"))));
            if result.is_ok() {
                metrics().transfer_duration.observe(started.elapsed().as_secs_f64());
            }
            ctx.notify(Finished { conn, sha256: sha, delta, result });
            let _ = act;
        }));
        Some(tx)
    }

    /// A peer sent the signature of its copy (`rsync.signature`): answer with the delta
    /// from it to the contents it wants (`rsync.patch`), computed as it is sent.
    fn serve_delta(&mut self, conn: u64, sig: rsync::Signature, ctx: &mut Context<Self>) -> Option<Sink> {
        let out = self.peers.get(&conn)?.out.clone();
        let sha = match sig.sha256 {
            Some(sha) => sha,
            None => {
                let path = SharePath::parse(&sig.path).ok()?;
                self.store.get(&path).ok()??.sha256?
            }
        };
        let permits = self.delta_serves.entry(conn).or_insert_with(|| Arc::new(Semaphore::new(MAX_DELTA_SERVES)));
        let refusal = if self.paused { Some("transfers are paused") } else { None };
        let permit = match (refusal, permits.clone().try_acquire_owned()) {
            (None, Ok(permit)) => permit,
            (refusal, _) => {
                let message = refusal.unwrap_or("too many deltas at once; ask again later").to_owned();
                out.do_send(PeerOut::Send(vec![GetError { sha256: sha, message }.into()]));
                return None;
            }
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<SinkItem>(SINK_DEPTH);
        let (root, store) = (self.root.clone(), self.store.clone());
        let job = tokio::task::spawn_blocking(move || -> Result<Option<(Signature, File)>, ServeFailure> {
            let mut bytes = Vec::new();
            loop {
                match rx.blocking_recv() {
                    Some(SinkItem::Chunk(b)) if bytes.len() + b.len() > MAX_SIGNATURE => {
                        return Err(ServeFailure::Malformed(format!("rsync signature over {MAX_SIGNATURE} bytes")));
                    }
                    Some(SinkItem::Chunk(b)) => bytes.extend_from_slice(&b),
                    Some(SinkItem::End) => break,
                    None => return Err(ServeFailure::Cannot(CUT_OFF.into())),
                }
            }
            let sig = Signature::parse(&bytes, MAX_SIGNATURE)
                .map_err(|e| ServeFailure::Malformed(format!("bad rsync signature: {e}")))?;
            let found = open_installed(&store, &root, &sha).map_err(ServeFailure::Cannot)?;
            Ok(found.map(|(file, _)| (sig, file)))
        });
        let path = sig.path;
        ctx.spawn(job.into_actor(self).map(move |joined, _, _| {
            let res = joined.unwrap_or_else(|e| Err(ServeFailure::Cannot(e.to_string())));
            debug!(conn, %sha, found = matches!(res, Ok(Some(_))), "serving a delta");
            match res {
                Ok(Some((sig, file))) => {
                    let header = Message::from(rsync::Patch { path, sha256: Some(sha) });
                    let produce = Producer(Box::new(move |w: &mut dyn std::io::Write| {
                        // Holds this connection's delta permit until the delta is sent.
                        let _permit = permit;
                        rdiff::delta(&sig, file, w).map(drop).map_err(std::io::Error::other)
                    }));
                    out.do_send(PeerOut::Produce { header, produce });
                }
                Ok(None) => out.do_send(PeerOut::Send(vec![NotPresent { sha256: sha }.into()])),
                Err(ServeFailure::Cannot(message)) => {
                    out.do_send(PeerOut::Send(vec![GetError { sha256: sha, message }.into()]));
                }
                Err(ServeFailure::Malformed(reason)) => out.do_send(PeerOut::Close(reason)),
            }
        }));
        Some(tx)
    }
}

/// Why serving a delta failed.
#[derive(Debug)]
enum ServeFailure {
    /// We cannot (answered with `directory.get_error`).
    Cannot(String),
    /// The peer sent a malformed signature (closes the connection).
    Malformed(String),
}

/// Reads an attachment's chunks from a connection's sink as a byte stream (a delta being
/// applied as it arrives). The connection ending early is `ConnectionAborted`.
struct SinkReader {
    rx: tokio::sync::mpsc::Receiver<SinkItem>,
    piece: Bytes,
    ended: bool,
}

impl Read for SinkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.piece.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(SinkItem::Chunk(b)) => self.piece = b,
                Some(SinkItem::End) => self.ended = true,
                None => return Err(std::io::ErrorKind::ConnectionAborted.into()),
            }
        }
        let n = buf.len().min(self.piece.len());
        buf[..n].copy_from_slice(&self.piece.split_to(n));
        Ok(n)
    }
}

/// Opens an installed file with contents `sha` whose stat still matches the index (so we
/// never send contents we have not hashed); with its size.
fn open_installed(store: &ShareStore, root: &Path, sha: &Sha256Hash) -> Result<Option<(File, u64)>, String> {
    for p in store.installed(sha).map_err(|e| e.to_string())? {
        let Some(r) = store.get(&p).map_err(|e| e.to_string())? else { continue };
        let Ok(f) =
            std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(fsops::full_path(root, &p))
        else {
            continue;
        };
        let Ok(m) = f.metadata() else { continue };
        if m.is_file() && r.local == Some(fsops::stat_of(&m)) {
            return Ok(Some((f, m.len())));
        }
    }
    Ok(None)
}

impl Handler<Finished> for Transfer {
    type Result = ();

    fn handle(&mut self, msg: Finished, ctx: &mut Context<Self>) {
        debug!(conn = msg.conn, sha256 = %msg.sha256, delta = msg.delta, ok = msg.result.is_ok(), "download finished");
        let full = msg.result.as_ref().err().filter(|e| e.text.starts_with(DISK_FULL)).map(|e| e.text.clone());
        if full.is_some() != self.full {
            self.full = full.is_some();
            self.disk_full.do_send(DiskFull(full));
        }
        match msg.result {
            Ok(temp) => {
                self.wanted.remove(&msg.sha256);
                self.whole.remove(&msg.sha256);
                self.downloaded.do_send(Downloaded { sha256: msg.sha256, temp });
            }
            Err(e) if e.text == NO_LONGER_WANTED => {
                self.wanted.remove(&msg.sha256);
                self.whole.remove(&msg.sha256);
            }
            Err(e) => {
                warn!(sha256 = %msg.sha256, error = %e.text, delta = msg.delta, "download failed; will ask again");
                if msg.delta && e.fetch_whole {
                    self.whole.insert(msg.sha256);
                }
                self.requeue(msg.conn, msg.sha256);
            }
        }
        self.schedule(ctx);
    }
}

impl Handler<ServeGet> for Transfer {
    type Result = ();

    fn handle(&mut self, msg: ServeGet, ctx: &mut Context<Self>) {
        let (root, store) = (self.root.clone(), self.store.clone());
        let Get { sha256, range } = msg.get;
        let lookups = self.serving.entry(msg.conn).or_insert(0);
        let refusal = if self.paused {
            Some("transfers are paused")
        } else if *lookups >= MAX_SERVE_LOOKUPS {
            // A peer flooding us with requests gets refusals, not an unbounded queue.
            Some("too many requests at once; ask again later")
        } else {
            None
        };
        if let Some(message) = refusal {
            msg.out.do_send(PeerOut::Send(vec![GetError { sha256, message: message.to_owned() }.into()]));
            return;
        }
        *lookups += 1;
        let conn = msg.conn;
        let job = tokio::task::spawn_blocking(move || -> Result<Option<(File, u64)>, String> {
            let Some((mut f, size)) = open_installed(&store, &root, &sha256)? else { return Ok(None) };
            let (start, len) = match range {
                None => (0, size),
                Some([start, len]) if start.checked_add(len).is_some_and(|end| end <= size) => (start, len),
                Some(_) => return Err("range outside the file".into()),
            };
            f.seek(SeekFrom::Start(start)).map_err(|e| e.to_string())?;
            Ok(Some((f, len)))
        });
        let out = msg.out;
        ctx.spawn(job.into_actor(self).map(move |joined, act, _| {
            if let Some(n) = act.serving.get_mut(&conn) {
                *n = n.saturating_sub(1);
            }
            let res = joined.unwrap_or_else(|e| Err(e.to_string()));
            debug!(conn, %sha256, found = matches!(res, Ok(Some(_))), "serving a directory.get");
            match res {
                Ok(Some((file, len))) => {
                    let header = Message::from(Data { sha256, range });
                    out.do_send(PeerOut::File { header, file, len });
                }
                Ok(None) => out.do_send(PeerOut::Send(vec![NotPresent { sha256 }.into()])),
                Err(message) => out.do_send(PeerOut::Send(vec![GetError { sha256, message }.into()])),
            }
        }));
    }
}
