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
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Recipient, SpawnHandle, WrapFuture};
use clearskies_protocol::message::directory::{Data, Get, GetError, NotPresent};
use clearskies_protocol::message::Message;
use clearskies_protocol::Sha256Hash;
use tracing::{debug, warn};

use self::messages::{
    DataStart, Fetches, Finished, Missing, ServeGet, SetTransfersPaused, Sink, SinkItem, TransferPeerDown,
    TransferPeerUp,
};
use crate::metrics::metrics;
use crate::peer::messages::PeerOut;
use crate::share::apply::Fetch;
use crate::share::fsops::{self, TempWriter};
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

#[derive(Debug)]
struct Slot {
    out: Recipient<PeerOut>,
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
        }
    }

    fn schedule(&mut self, ctx: &mut Context<Self>) {
        if self.paused {
            return;
        }
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
                batch.push(Message::from(Get { sha256: sha, range: None }));
            }
            if !batch.is_empty() {
                debug!(conn, requests = batch.len(), in_flight = slot.asked.len(), "asking for contents");
                slot.out.do_send(PeerOut::Send(batch));
            }
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

    fn requeue(&mut self, conn: u64, sha: Sha256Hash) {
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
        let slot = Slot { out: msg.out, asked: VecDeque::new(), asked_bytes: 0, refused: HashSet::new() };
        self.peers.insert(msg.conn, slot);
        self.schedule(ctx);
    }
}

impl Handler<TransferPeerDown> for Transfer {
    type Result = ();

    fn handle(&mut self, msg: TransferPeerDown, ctx: &mut Context<Self>) {
        self.serving.remove(&msg.conn);
        if let Some(slot) = self.peers.remove(&msg.conn) {
            for sha in slot.asked.into_iter().rev() {
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
        let sha = msg.data.sha256;
        if msg.data.range.is_some() || !self.answered(msg.conn, &sha) {
            debug!(sha256 = %sha, "data we did not ask for; discarded");
            return None;
        }
        let fetch = self.wanted.get(&sha).cloned()?;
        debug!(conn = msg.conn, sha256 = %sha, "receiving contents");
        let (tx, mut rx) = tokio::sync::mpsc::channel::<SinkItem>(SINK_DEPTH);
        let (root, store, conn) = (self.root.clone(), self.store.clone(), msg.conn);
        let started = std::time::Instant::now();
        let job = tokio::task::spawn_blocking(move || {
            // Still wanted? (The record may have changed while the request was in flight.)
            let waiting = store.waiting_for(&sha).map_err(|e| e.to_string())?;
            let path = if waiting.contains(&fetch.path) {
                fetch.path
            } else {
                waiting.into_iter().next().ok_or("no longer wanted")?
            };
            let mut w = TempWriter::create(&root, &path, fetch.size).map_err(|e| describe("temp file", &e))?;
            while let Some(item) = rx.blocking_recv() {
                match item {
                    SinkItem::Chunk(b) => w.write(&b).map_err(|e| describe("writing", &e))?,
                    SinkItem::End => {
                        return w
                            .finish(&sha, fetch.size, fetch.unix_mode, fetch.mtime)
                            .map_err(|e| describe("verifying", &e));
                    }
                }
            }
            Err("the connection ended mid-transfer".to_owned())
        });
        ctx.spawn(job.into_actor(self).map(move |joined, act, ctx| {
            let result = joined.unwrap_or_else(|e| Err(format!("writer failed: {e}")));
            if result.is_ok() {
                metrics().transfer_duration.observe(started.elapsed().as_secs_f64());
            }
            ctx.notify(Finished { conn, sha256: sha, result });
            let _ = act;
        }));
        Some(tx)
    }
}

impl Handler<Finished> for Transfer {
    type Result = ();

    fn handle(&mut self, msg: Finished, ctx: &mut Context<Self>) {
        debug!(conn = msg.conn, sha256 = %msg.sha256, ok = msg.result.is_ok(), "download finished");
        let full = msg.result.as_ref().err().filter(|e| e.starts_with(DISK_FULL)).cloned();
        if full.is_some() != self.full {
            self.full = full.is_some();
            self.disk_full.do_send(DiskFull(full));
        }
        match msg.result {
            Ok(temp) => {
                self.wanted.remove(&msg.sha256);
                self.downloaded.do_send(Downloaded { sha256: msg.sha256, temp });
            }
            Err(e) if e == "no longer wanted" => {
                self.wanted.remove(&msg.sha256);
            }
            Err(e) => {
                warn!(sha256 = %msg.sha256, error = %e, "download failed; will ask again");
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
        let job = tokio::task::spawn_blocking(move || -> Result<Option<(std::fs::File, u64)>, String> {
            for p in store.installed(&sha256).map_err(|e| e.to_string())? {
                let Some(r) = store.get(&p).map_err(|e| e.to_string())? else { continue };
                let Ok(mut f) = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(fsops::full_path(&root, &p))
                else {
                    continue;
                };
                let Ok(m) = f.metadata() else { continue };
                if !m.is_file() || r.local != Some(fsops::stat_of(&m)) {
                    continue;
                }
                let size = m.len();
                let (start, len) = match range {
                    None => (0, size),
                    Some([start, len]) if start.checked_add(len).is_some_and(|end| end <= size) => (start, len),
                    Some(_) => return Err("range outside the file".into()),
                };
                f.seek(SeekFrom::Start(start)).map_err(|e| e.to_string())?;
                return Ok(Some((f, len)));
            }
            Ok(None)
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
