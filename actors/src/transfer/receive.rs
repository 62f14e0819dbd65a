//! Receiving contents: a `directory.data` (whole or a range) or an `rsync.patch` arriving
//! on a connection becomes a bounded sink drained by a blocking writer (or patcher) into the
//! partial file, which is hashed as it is written; more ranges are asked for as it goes.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use actix::{ActorFutureExt, AsyncContext, Context, Handler, WrapFuture};
use bytes::Bytes;
use clearskies_index::apply::Fetch;
use clearskies_index::durable;
use clearskies_index::fsops::{reflink, SharedReader, TempWriter};
use clearskies_index::store::ShareStore;
use clearskies_protocol::message::directory::{Data, Get};
use clearskies_protocol::message::Message;
use clearskies_protocol::rdiff::{self, RdiffError};
use clearskies_protocol::Sha256Hash;
use tracing::debug;

use super::messages::{DataStart, Finished, Inbound, Sink, SinkItem, Written};
use crate::metrics::metrics;
use crate::peer::messages::PeerOut;

use super::refine::PlanFailure;
use super::{open_partial, Download, Failure, Transfer, CUT_OFF, MAX_REQUESTS, RANGE, RANGES_AHEAD, SINK_DEPTH};

impl Handler<DataStart> for Transfer {
    type Result = Option<Sink>;

    fn handle(&mut self, msg: DataStart, ctx: &mut Context<Self>) -> Option<Sink> {
        match msg.what {
            Inbound::Data(data) => {
                let start = data.range.map_or(0, |[start, _]| start);
                if let Some(sink) = self.streams.remove(&(msg.conn, data.sha256, start)) {
                    return Some(sink);
                }
                self.receive_range(msg.conn, data, ctx)
            }
            // Deltas only on connections whose access allows them (never an untrusted one,
            // whatever was negotiated): anything else is not answered, and its attachment
            // is discarded.
            Inbound::Patch(p) if self.peers.get(&msg.conn).is_some_and(|s| s.access.rsync()) => {
                // Our peers name the contents; others only the path.
                let sha = p.sha256.or_else(|| self.asked_for_path(msg.conn, &p.path))?;
                // Only the delta asked of this connection (another's takes nothing away).
                let asked = self.peers.get(&msg.conn).is_some_and(|s| s.requests.asked.contains(&sha));
                let Some(basis) = self.bases.get(&sha).filter(|_| asked).cloned() else {
                    debug!(sha256 = %sha, "a delta we did not ask for; discarded");
                    return None;
                };
                if p.plan {
                    // A refined delta's plan: the basis stays for the delta that follows.
                    // Only as the answer to our coarse signature, and once: else a sender
                    // could make us sign up to 256 MiB of the basis again and again, or
                    // use the extension where it was not offered.
                    if !self.refining.remove(&sha) {
                        self.plan_failed(
                            msg.conn,
                            sha,
                            PlanFailure::Malformed("a delta plan not asked for".into()),
                            ctx,
                        );
                        return None;
                    }
                    return self.receive_plan(msg.conn, sha, p.path, basis, ctx);
                }
                self.refining.remove(&sha);
                self.bases.remove(&sha);
                self.receive_delta(msg.conn, sha, basis, ctx)
            }
            Inbound::Signature(sig) if self.peers.get(&msg.conn).is_some_and(|s| s.access.rsync()) => {
                self.serve_delta(msg.conn, sig, ctx)
            }
            Inbound::Patch(_) | Inbound::Signature(_) => {
                debug!(conn = msg.conn, "an rsync message on a connection without deltas; not answered");
                None
            }
        }
    }
}

impl Download {
    /// The next `directory.get`s (at most `room`, at least one if none is in flight),
    /// keeping [`RANGES_AHEAD`] ranges in flight. A file of at most one range asked for from
    /// its start is asked for whole.
    pub(super) fn ask_more(&mut self, room: usize) -> Vec<Message> {
        let sha256 = self.name;
        if self.requested == 0 && self.size <= RANGE {
            self.requested = self.size.max(1);
            return vec![Get { sha256, range: None }.into()];
        }
        let room = if self.requested == self.next { room.max(1) } else { room };
        let mut asks = Vec::new();
        while asks.len() < room && self.requested < self.size && self.requested < self.next + RANGES_AHEAD * RANGE {
            let len = RANGE.min(self.size - self.requested);
            asks.push(Get { sha256, range: Some([self.requested, len]) }.into());
            self.requested += len;
        }
        asks
    }
}

impl Transfer {
    /// A `directory.data` (whole, or the next range) for a download under way on `conn`.
    fn receive_range(&mut self, conn: u64, data: Data, ctx: &mut Context<Self>) -> Option<Sink> {
        let sha = self.plain_name(conn, data.sha256);
        let expected = self.downloads.get(&sha).filter(|d| d.conn == conn).map(|d| (d.next, d.size));
        let Some((next, size)) = expected else {
            debug!(sha256 = %sha, "data we did not ask for; discarded");
            return None;
        };
        let (start, len) = match data.range {
            None => (0, size),
            Some([start, len]) => (start, len),
        };
        if start != next || start.checked_add(len).is_none_or(|end| end > size) {
            // Not the range that comes next: this download stops (its writer keeps what
            // arrived) and continues with a fresh request.
            debug!(sha256 = %sha, start, len, next, "a range out of order; discarded");
            if self.downloads.remove(&sha).is_some_and(|d| d.writer.is_none()) && self.answered(conn, &sha) {
                self.requeue(conn, sha);
            }
            return None;
        }
        if self.downloads.get(&sha).is_some_and(|d| d.writer.is_none()) {
            if !self.answered(conn, &sha) {
                return None;
            }
            let writer = self.start_writer(conn, sha, start, ctx)?;
            if let Some(d) = self.downloads.get_mut(&sha) {
                d.writer = Some(writer);
            }
        }
        let d = self.downloads.get_mut(&sha)?;
        let (tx, ranges) = d.writer.as_ref()?;
        let tx = tx.clone();
        if ranges.send((start, len)).is_err() {
            return None;
        }
        d.next = start + len;
        if let Some(slot) = self.peers.get_mut(&conn) {
            slot.requests.gets = slot.requests.gets.saturating_sub(1);
            let more = d.ask_more(MAX_REQUESTS.saturating_sub(slot.requests.gets));
            if !more.is_empty() {
                slot.requests.gets += more.len();
                slot.out.do_send(PeerOut::Send(more));
            }
        }
        if d.next == size {
            // The last range: the writer finishes on its end.
            self.downloads.remove(&sha);
        }
        Some(tx)
    }

    /// Starts the blocking writer of a whole-file download: the partial file (continued if
    /// an earlier attempt left `from` bytes), then each announced range's chunks, verified
    /// when the last one ends.
    fn start_writer(
        &mut self,
        conn: u64,
        sha: Sha256Hash,
        from: u64,
        ctx: &mut Context<Self>,
    ) -> Option<(Sink, tokio::sync::mpsc::UnboundedSender<(u64, u64)>)> {
        let fetch = self.wanted.get(&sha).cloned()?;
        debug!(conn, sha256 = %sha, from, "receiving contents");
        let (tx, mut rx) = tokio::sync::mpsc::channel::<SinkItem>(SINK_DEPTH);
        let (ranges_tx, mut ranges) = tokio::sync::mpsc::unbounded_channel::<(u64, u64)>();
        let (root, store) = (self.root.clone(), self.store.clone());
        let started = std::time::Instant::now();
        // From an untrusted peer the chunks are ciphertext: decrypted before they are
        // written (the file is then verified against the plaintext hash as always).
        let crypt = self.peers.get(&conn).and_then(|s| s.access.crypt().cloned());
        self.start_writing(sha);
        // Left unsynced for the install's batch: small, and written whole by this writer
        // (bytes an earlier handle wrote are fsynced here).
        let batch =
            (self.batch_sync && fetch.size <= durable::BATCHED_UP_TO && from == 0).then(|| self.unsynced.clone());
        let job = tokio::task::spawn_blocking(move || -> Result<Written, Failure> {
            let mut w = open_partial(&root, &sha, fetch.size)?;
            let opened = std::time::Instant::now();
            // Still wanted? (The record may have changed while the request was in flight.)
            // Asked before a large write only: a small file nobody wants any more is
            // written and then removed by the share's install, which looks anyway; that
            // costs less than an index lookup for every small file.
            let small = fetch.size <= RANGE;
            if !small && store.waiting_for(&sha).map_err(|e| Failure::retry(e.to_string()))?.is_empty() {
                w.discard();
                return Err(Failure::no_longer_wanted());
            }
            if w.written() != from {
                // The partial file is not what we asked to continue from: start over.
                w.discard();
                return Err(Failure::retry("the partial file changed; starting over".into()));
            }
            loop {
                let Some((start, len)) = ranges.blocking_recv() else { return Err(Failure::retry(CUT_OFF.into())) };
                if start != w.written() {
                    return Err(Failure::retry(format!("range at {start}, expected {}", w.written())));
                }
                let mut ctr = match &crypt {
                    Some(keys) => Some(keys.content_stream(&sha, start).map_err(|e| Failure::retry(e.to_string()))?),
                    None => None,
                };
                loop {
                    match rx.blocking_recv() {
                        Some(SinkItem::Chunk(b)) => match ctr.as_mut() {
                            None => w.append(&b).map_err(|e| Failure::io("writing", &e))?,
                            Some(ctr) => {
                                let mut plain = b.to_vec();
                                ctr.apply(&mut plain).map_err(|e| Failure::retry(e.to_string()))?;
                                w.append(&plain).map_err(|e| Failure::io("writing", &e))?;
                            }
                        },
                        Some(SinkItem::End) => break,
                        None => return Err(Failure::retry(CUT_OFF.into())),
                    }
                }
                if w.written() != start + len {
                    return Err(Failure::retry(format!("a range ended after {} of {len} bytes", w.written() - start)));
                }
                if w.written() == fetch.size {
                    let slot = batch.as_ref().and_then(durable::Slots::take);
                    return finish_download(w, &sha, &fetch, slot.map(|slot| (slot, opened)));
                }
            }
        });
        ctx.spawn(job.into_actor(self).map(move |joined, _, ctx| {
            let result = joined.unwrap_or_else(|e| Err(Failure::retry(format!("writer failed: {e}"))));
            if result.is_ok() {
                metrics().transfer_duration.observe(started.elapsed().as_secs_f64());
            }
            ctx.notify(Finished { conn, sha256: sha, delta: false, result });
        }));
        Some((tx, ranges_tx))
    }

    /// Which contents we asked `conn` for as a delta of `path`.
    fn asked_for_path(&self, conn: u64, path: &str) -> Option<Sha256Hash> {
        let slot = self.peers.get(&conn)?;
        slot.requests.asked.iter().copied().find(|sha| {
            self.bases.contains_key(sha) && self.wanted.get(sha).is_some_and(|f| f.path.to_string() == path)
        })
    }

    /// Takes the delta we asked `conn` for, applying it to `basis` as it arrives into the
    /// partial file of `sha`, verified against the record's SHA-256 before the share
    /// installs it.
    fn receive_delta(&mut self, conn: u64, sha: Sha256Hash, basis: Arc<File>, ctx: &mut Context<Self>) -> Option<Sink> {
        if !self.answered(conn, &sha) {
            debug!(sha256 = %sha, "a delta we did not ask for; discarded");
            return None;
        }
        if let Some(slot) = self.peers.get_mut(&conn) {
            slot.requests.gets = slot.requests.gets.saturating_sub(1);
        }
        let fetch = self.wanted.get(&sha).cloned()?;
        debug!(conn, sha256 = %sha, "receiving a delta");
        let (tx, rx) = tokio::sync::mpsc::channel::<SinkItem>(SINK_DEPTH);
        let (root, store) = (self.root.clone(), self.store.clone());
        let started = std::time::Instant::now();
        self.start_writing(sha);
        let job = tokio::task::spawn_blocking(move || patch_partial(&root, &store, sha, &fetch, basis, rx));
        ctx.spawn(job.into_actor(self).map(move |joined, act, ctx| {
            let result = joined.unwrap_or_else(|e| Err(Failure::retry(format!("writer failed: {e}"))));
            if result.is_ok() {
                metrics().transfer_duration.observe(started.elapsed().as_secs_f64());
            }
            ctx.notify(Finished { conn, sha256: sha, delta: true, result });
            let _ = act;
        }));
        Some(tx)
    }
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

/// Verifies a whole download: fsynced here, unless it holds one of the share's places
/// among the unsynced files its install makes durable a batch at a time (with when its
/// file had been opened).
fn finish_download(
    w: TempWriter,
    sha: &Sha256Hash,
    fetch: &Fetch,
    batch: Option<(durable::Slot, std::time::Instant)>,
) -> Result<Written, Failure> {
    let written = match batch {
        Some((slot, started)) => w
            .finish_unsynced(sha, fetch.size, fetch.unix_mode, fetch.mtime)
            .map(|(temp, file)| Written { temp, unsynced: Some(durable::Unsynced { file, started, slot }) }),
        None => w.finish(sha, fetch.size, fetch.unix_mode, fetch.mtime).map(Written::synced),
    };
    written.map_err(|e| Failure::io("verifying", &e))
}

/// The blocking patcher of a delta: `basis` and the delta arriving on `rx` into the partial
/// file of `sha`, verified against the record's SHA-256 (`fetch`). Where the filesystem
/// shares blocks, the partial file starts as a clone of the basis and only the changed
/// blocks are written ([`fsops::reflink`]).
fn patch_partial(
    root: &Path,
    store: &ShareStore,
    sha: Sha256Hash,
    fetch: &Fetch,
    basis: Arc<File>,
    rx: tokio::sync::mpsc::Receiver<SinkItem>,
) -> Result<Written, Failure> {
    let mut w = open_partial(root, &sha, fetch.size)?;
    if w.written() > 0 {
        // Left by a download that failed since: a delta starts from nothing.
        w.discard();
        w = open_partial(root, &sha, fetch.size)?;
    }
    // Still wanted? (The record may have changed while the request was in flight.)
    if store.waiting_for(&sha).map_err(|e| Failure::retry(e.to_string()))?.is_empty() {
        w.discard();
        return Err(Failure::no_longer_wanted());
    }
    // The bytes a clone holds are hashed as read from the basis: the basis must not change
    // between the clone and the end of the patch (it is the stat-checked old version).
    let before = reflink::stamp(&basis).ok();
    let cloned = before.is_some() && w.clone_basis(&basis);
    let delta = BufReader::with_capacity(1 << 16, SinkReader { rx, piece: Bytes::new(), ended: false });
    let failure = match rdiff::patch_to(&mut SharedReader::new(basis.clone()), delta, &mut w, fetch.size) {
        Ok(_) if cloned && reflink::stamp(&basis).ok() != before => {
            Some(Failure::retry("the old version changed while it was patched".into()))
        }
        Ok(_) => None,
        Err(RdiffError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionAborted => {
            Some(Failure::retry(CUT_OFF.into()))
        }
        Err(RdiffError::Io(e)) => Some(Failure::io("patching", &e)),
        Err(e) => Some(Failure::bad_delta(format!("bad delta: {e}"))),
    };
    if let Some(f) = failure {
        // Half a patched file cannot be continued by a plain download.
        w.discard();
        return Err(f);
    }
    debug!(sha256 = %sha, cloned, "patched");
    w.finish(&sha, fetch.size, fetch.unix_mode, fetch.mtime).map(Written::synced).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            Failure::bad_delta(format!("verifying the patched file: {e}"))
        } else {
            Failure::io("verifying the patched file", &e)
        }
    })
}
