//! Serving peers: `directory.get` answered from files whose stat still matches the index,
//! and `rsync.signature` answered with a delta computed as it is sent.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use actix::{ActorFutureExt, AsyncContext, Context, Handler, WrapFuture};
use clearskies_index::fsops;
use clearskies_index::store::ShareStore;
use clearskies_protocol::message::directory::{Data, Get, GetError, NotPresent};
use clearskies_protocol::message::{rsync, Message};
use clearskies_protocol::path::SharePath;
use clearskies_protocol::rdiff::{self, refine, RdiffError, Signature};
use clearskies_protocol::Sha256Hash;
use tokio::sync::Semaphore;
use tracing::debug;

use super::messages::{ServeGet, Sink, SinkItem};
use super::{Transfer, CUT_OFF, MAX_DELTA_SERVES, MAX_SERVE_LOOKUPS, MAX_SIGNATURE, SINK_DEPTH};
use crate::peer::messages::{PeerOut, Producer};

impl Transfer {
    /// A peer sent the signature of its copy (`rsync.signature`): answer with the delta
    /// from it to the contents it wants (`rsync.patch`), computed as it is sent.
    pub(super) fn serve_delta(&mut self, conn: u64, sig: rsync::Signature, ctx: &mut Context<Self>) -> Option<Sink> {
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
        // Refined steps only where both sides offered them.
        let step = sig.refine.filter(|_| self.peers.get(&conn).is_some_and(|s| s.refine));
        let job = tokio::task::spawn_blocking(move || -> Result<Option<Answer>, ServeFailure> {
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
            answer(step, &bytes, || open_installed(&store, &root, &sha))
        });
        let path = sig.path;
        ctx.spawn(job.into_actor(self).map(move |joined, _, _| {
            let res = joined.unwrap_or_else(|e| Err(ServeFailure::Cannot(e.to_string())));
            debug!(conn, %sha, found = matches!(res, Ok(Some(_))), "serving a delta");
            match res {
                Ok(Some(answer)) => {
                    let plan = matches!(answer, Answer::Plan(_));
                    let header = Message::from(rsync::Patch { path, sha256: Some(sha), plan });
                    let produce = Producer(Box::new(move |w: &mut dyn std::io::Write| {
                        // Holds this connection's delta permit until the delta is sent.
                        let _permit = permit;
                        let made = match answer {
                            Answer::Delta(sig, file) => rdiff::delta(&sig, file, w).map(drop),
                            Answer::Plan(bytes) => w.write_all(&bytes).map_err(RdiffError::from),
                            Answer::Refined(plan, sig, file) => refine::refined_delta(&plan, &sig, file, w).map(drop),
                        };
                        made.map_err(std::io::Error::other)
                    }));
                    // A plan is offsets and lengths: nothing for gzip to gain.
                    out.do_send(PeerOut::Produce { header, produce, compressible: !plan });
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

/// What a signature is answered with.
enum Answer {
    /// A delta against it.
    Delta(Signature, File),
    /// A refined delta's plan (the answer to a coarse signature).
    Plan(Vec<u8>),
    /// A refined delta (the answer to a plan and a fine signature).
    Refined(refine::Plan, Signature, File),
}

/// The answer to the signature `bytes` of refined-delta step `step` (`None`: a plain one),
/// `open` finding the contents wanted (`None`: we do not hold them). Computed here, on the
/// blocking pool, for a plan; a delta is computed as it is sent.
fn answer(
    step: Option<rsync::RefineStep>,
    bytes: &[u8],
    open: impl FnOnce() -> Result<Option<(File, u64)>, String>,
) -> Result<Option<Answer>, ServeFailure> {
    let malformed = |e: RdiffError| ServeFailure::Malformed(format!("bad rsync signature: {e}"));
    if step == Some(rsync::RefineStep::Fine) {
        let Some((file, len)) = open().map_err(ServeFailure::Cannot)? else { return Ok(None) };
        let (plan, sig) = refine::parse_fine(bytes, len, MAX_SIGNATURE).map_err(malformed)?;
        return Ok(Some(Answer::Refined(plan, sig, file)));
    }
    let sig = Signature::parse(bytes, MAX_SIGNATURE).map_err(malformed)?;
    let Some((file, _)) = open().map_err(ServeFailure::Cannot)? else { return Ok(None) };
    if step.is_none() {
        return Ok(Some(Answer::Delta(sig, file)));
    }
    // The coarse step reads the whole file against few blocks: every core plans a part.
    let len = file.metadata().map_err(|e| ServeFailure::Cannot(e.to_string()))?.len();
    let parts = super::refine::parts(Arc::new(file), len, sig.params().block_len);
    let plan = refine::plan_parts(&sig, parts).map_err(|e| ServeFailure::Cannot(format!("planning a delta: {e}")))?;
    Ok(Some(Answer::Plan(plan.encode())))
}

/// What a `directory.get` found: the file positioned at the range, its length, whether it
/// is worth deflating, and how to encrypt it (for an untrusted peer).
type Found = (File, u64, bool, Option<Encrypt>);

/// Contents sent to an untrusted peer: encrypted from `start` on as they are read.
struct Encrypt {
    keys: Arc<clearskies_index::untrusted::UntrustedKeys>,
    plain: Sha256Hash,
    start: u64,
}

impl Encrypt {
    /// Copies `len` bytes of `file` (positioned at `start`) into `w`, encrypted.
    fn copy(self, mut file: File, len: u64, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        use std::io::Read;
        let mut ctr = self.keys.content_stream(&self.plain, self.start).map_err(std::io::Error::other)?;
        let mut buf = clearskies_index::fsops::read_buffer(len);
        let mut left = len;
        while left > 0 {
            let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            let n = file.read(&mut buf[..want])?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            ctr.apply(&mut buf[..n]).map_err(std::io::Error::other)?;
            w.write_all(&buf[..n])?;
            left -= n as u64;
        }
        Ok(())
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

/// Whether the `len` bytes at `start` of `f` are worth deflating, judged by the byte
/// entropy of a sample from their start (4 KiB of a small file, 16 KiB of more than
/// [`SMALL_SAMPLE_UP_TO`]): below 7.2 bits per byte (text, logs, databases, most documents)
/// they are; JPEG, video, archives and encrypted data sit near 8 and are not. (A histogram:
/// about a hundredth of the cost of trial compression. 4 KiB of random bytes measure about
/// 7.95 bits, 16 KiB 7.99: the smaller sample's bias is far from the line.)
fn compresses(f: &File, start: u64, len: u64) -> bool {
    let bits = if len <= SMALL_SAMPLE_UP_TO {
        sample_entropy::<{ 4 << 10 }>(f, start, len)
    } else {
        sample_entropy::<{ 16 << 10 }>(f, start, len)
    };
    // Unreadable, or too little to judge (and too little to matter): deflated.
    bits.is_none_or(|bits| bits < 7.2)
}

/// The entropy of up to `N` bytes at `start` (of `len`); `None` if fewer than 512 could be
/// read.
fn sample_entropy<const N: usize>(f: &File, start: u64, len: u64) -> Option<f64> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; N];
    let want = usize::try_from(len).map_or(N, |len| len.min(N));
    let n = f.read_at(&mut buf[..want], start).ok().filter(|&n| n >= 512)?;
    Some(entropy_bits(&buf[..n]))
}

/// Ranges up to this size are judged by a 4 KiB sample (see [`compresses`]).
const SMALL_SAMPLE_UP_TO: u64 = 256 << 10;

/// The sample's byte entropy in bits per byte.
fn entropy_bits(sample: &[u8]) -> f64 {
    // Four histograms, summed after: consecutive equal bytes then do not wait on each
    // other's increment.
    let mut counts = [[0u32; 256]; 4];
    let mut quads = sample.chunks_exact(4);
    for q in &mut quads {
        for (lane, &b) in q.iter().enumerate() {
            counts[lane][usize::from(b)] += 1;
        }
    }
    for &b in quads.remainder() {
        counts[0][usize::from(b)] += 1;
    }
    let total = sample.len() as f64;
    (0..256)
        .map(|i| counts[0][i] + counts[1][i] + counts[2][i] + counts[3][i])
        .filter(|&c| c > 0)
        .map(|c| {
            let p = f64::from(c) / total;
            -p * p.log2()
        })
        .sum()
}

/// Opens an installed file with contents `sha` whose stat still matches the index (so we
/// never send contents we have not hashed); with its size.
fn open_installed(store: &ShareStore, root: &Path, sha: &Sha256Hash) -> Result<Option<(File, u64)>, String> {
    for p in store.installed(sha).map_err(|e| e.to_string())? {
        let Some(r) = store.get(&p).map_err(|e| e.to_string())? else { continue };
        let Ok(f) = fsops::open_share_file(root, &p) else {
            continue;
        };
        let Ok(m) = f.metadata() else { continue };
        if m.is_file() && r.local == Some(fsops::stat_of(&m)) {
            return Ok(Some((f, m.len())));
        }
    }
    Ok(None)
}

impl Handler<super::messages::ServeVerify> for Transfer {
    type Result = ();

    /// Answers SHA-256(prefix ‖ the stored file as it is on disk, damaged or not), read on
    /// the blocking pool; a file we do not hold gets no answer (the challenger counts it as
    /// failed).
    fn handle(&mut self, msg: super::messages::ServeVerify, ctx: &mut Context<Self>) {
        if !self.peers.get(&msg.conn).is_some_and(|s| s.access.may_prove()) {
            // Only we, as the untrusted peer, prove anything (unanswered, like a file we do
            // not hold).
            debug!(conn = msg.conn, "untrusted.verify on a connection that is not ours to prove; not answered");
            return;
        }
        let (root, store) = (self.root.clone(), self.store.clone());
        let lookups = self.serving.entry(msg.conn).or_insert(0);
        let v = msg.verify;
        if *lookups >= MAX_SERVE_LOOKUPS {
            let busy = clearskies_protocol::message::untrusted::VerifyBusy { file_id: v.file_id, retry_in: 60 };
            msg.out.do_send(PeerOut::Send(vec![busy.into()]));
            return;
        }
        *lookups += 1;
        let conn = msg.conn;
        let job = tokio::task::spawn_blocking(move || -> Option<Sha256Hash> {
            use sha2::Digest;
            use std::io::Read;
            let path = SharePath::parse(&format!("/{}", hex::encode(v.file_id.0))).ok()?;
            store.get(&path).ok()??.sha256?;
            // Below the root through directory handles, never through a symlink.
            let mut file = fsops::open_share_file(&root, &path).ok()?;
            let mut h = sha2::Sha256::new();
            h.update(v.prefix.0);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = file.read(&mut buf).ok()?;
                if n == 0 {
                    return Some(Sha256Hash(h.finalize().into()));
                }
                h.update(&buf[..n]);
            }
        });
        let out = msg.out;
        ctx.spawn(job.into_actor(self).map(move |joined, act, _| {
            if let Some(n) = act.serving.get_mut(&conn) {
                *n = n.saturating_sub(1);
            }
            match joined.ok().flatten() {
                Some(result) => {
                    let answer = clearskies_protocol::message::untrusted::VerifyResult { file_id: v.file_id, result };
                    out.do_send(PeerOut::Send(vec![answer.into()]));
                }
                None => debug!(conn, file = %v.file_id, "asked to prove a file we do not hold"),
            }
        }));
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
        let gzip = self.peers.get(&conn).is_some_and(|s| s.gzip);
        // (A connection we do not know, gone meanwhile, is served nothing.)
        let access = self.peers.get(&conn).map(|s| s.access.clone());
        let job = tokio::task::spawn_blocking(move || -> Result<Option<Found>, String> {
            // What the name may stand for on this connection (for an untrusted peer: only
            // ciphertext, encrypted from the plaintext as it is sent).
            let lookup = match access {
                Some(a) => a.contents(&store, &sha256).map_err(|e| e.to_string())?,
                None => None,
            };
            let Some(lookup) = lookup else { return Ok(None) };
            let found = open_installed(&store, &root, &lookup.stored)?;
            let Some((mut f, size)) = found else { return Ok(None) };
            let encrypt = lookup.encrypt.map(|keys| (keys, lookup.stored));
            let (start, len) = match range {
                None => (0, size),
                Some([start, len]) if start.checked_add(len).is_some_and(|end| end <= size) => (start, len),
                Some(_) => return Err("range outside the file".into()),
            };
            // Sampled only where it matters: a connection without gzip sends bytes as they are.
            let compressible = gzip && encrypt.is_none() && compresses(&f, start, len);
            f.seek(SeekFrom::Start(start)).map_err(|e| e.to_string())?;
            let encrypt = encrypt.map(|(keys, plain)| Encrypt { keys, plain, start });
            Ok(Some((f, len, compressible, encrypt)))
        });
        let out = msg.out;
        ctx.spawn(job.into_actor(self).map(move |joined, act, _| {
            if let Some(n) = act.serving.get_mut(&conn) {
                *n = n.saturating_sub(1);
            }
            let res = joined.unwrap_or_else(|e| Err(e.to_string()));
            debug!(conn, %sha256, found = matches!(res, Ok(Some(_))), "serving a directory.get");
            match res {
                Ok(Some((file, len, compressible, None))) => {
                    let header = Message::from(Data { sha256, range });
                    out.do_send(PeerOut::File { header, file, len, compressible });
                }
                Ok(Some((file, len, _, Some(encrypt)))) => {
                    let header = Message::from(Data { sha256, range });
                    let produce = Producer(Box::new(move |w: &mut dyn std::io::Write| encrypt.copy(file, len, w)));
                    out.do_send(PeerOut::Produce { header, produce, compressible: false });
                }
                Ok(None) => out.do_send(PeerOut::Send(vec![NotPresent { sha256 }.into()])),
                Err(message) => out.do_send(PeerOut::Send(vec![GetError { sha256, message }.into()])),
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[3]
            })
            .collect()
    }

    fn file_with(bytes: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, bytes).unwrap();
        let f = File::open(&path).unwrap();
        (dir, f)
    }

    #[test]
    fn text_is_deflated_and_random_bytes_are_not_whatever_the_sample() {
        let text = b"The quick brown fox jumps over the lazy dog; 2026-12-07 INFO sync done.\n".repeat(1200);
        let random = noise(1 << 20);
        for size in [600usize, 4 << 10, 40 << 10, 256 << 10, 1 << 20] {
            let len = size as u64;
            let (_d, t) = file_with(&text[..text.len().min(size)]);
            let (_e, r) = file_with(&random[..size]);
            assert!(compresses(&t, 0, len), "text of {len} bytes");
            assert!(!compresses(&r, 0, len), "random bytes, {len}");
        }
        // Judged from the range's own start.
        let mut mixed = text[..64 << 10].to_vec();
        mixed.extend_from_slice(&random[..64 << 10]);
        let (_f, m) = file_with(&mixed);
        assert!(compresses(&m, 0, 64 << 10));
        assert!(!compresses(&m, 64 << 10, 64 << 10));
        // Too little to judge: deflated.
        let (_g, tiny) = file_with(&random[..100]);
        assert!(compresses(&tiny, 0, 100));
        assert!(entropy_bits(&random[..4 << 10]) > 7.9);
    }
}
