//! `read_file`: streaming a file of a share without keeping a copy (`directory.md`,
//! "Streaming"). The local file is read if it is here exactly as indexed; otherwise the
//! bytes come from a connected peer, range by range, straight through to the reader.
//!
//! What a stream guarantees:
//!
//! - **A whole file** (from offset 0 to its end) is hashed on its way and checked against the
//!   SHA-256 in its record (which a read-write peer signed). Its last piece is held back until
//!   the hash matches: if it does not, the stream ends in an error instead, so a reader that
//!   received every byte (the `length` announced) received exactly the file the record names.
//!   It may come from a trusted (read-write or read-only) peer, or from an untrusted one: that
//!   is asked for the ciphertext by the ciphertext's hash (never the plaintext hash, which
//!   would tell it what we are reading) and the bytes are decrypted here.
//! - **A range** (anything less than the whole file) cannot be checked: the SHA-256 covers
//!   the whole file only. Its bytes are the local copy, or come from a connected trusted peer
//!   only (one holding the share's read-write or read-only key, which serves only files whose
//!   stat matches its own index), never from an untrusted peer (its ciphertext, AES-CTR, is
//!   malleable, and nothing authenticates a range of it). A range is exactly as long as asked
//!   (a peer that sends more or less ends the stream in an error), and is only as correct as
//!   that trusted peer.

use std::os::unix::fs::FileExt;

use actix::{Addr, Handler, ResponseFuture};
use bytes::Bytes;
use clearskies_index::fsops;
use clearskies_index::record::{EntryKind, Record};
use clearskies_protocol::path::SharePath;
use clearskies_protocol::Sha256Hash;
use tokio::sync::mpsc;

use super::actor::Share;
use super::messages::{OpenRead, Reading};
use crate::control::cmd::{CommandError, ErrorCode};
use crate::transfer::messages::{FetchRange, SinkItem};
use crate::transfer::{Transfer, RANGE};
use sha2::{Digest, Sha256};
use tracing::warn;

/// Pieces of a stream buffered between its source and its reader.
const DEPTH: usize = 8;
/// Local reads.
const PIECE: usize = 1 << 20;
/// How long a peer may take to start or continue a range.
const PEER_SILENCE: std::time::Duration = std::time::Duration::from_secs(60);

impl Handler<OpenRead> for Share {
    type Result = ResponseFuture<Result<Reading, CommandError>>;

    fn handle(&mut self, msg: OpenRead, _: &mut Self::Context) -> Self::Result {
        let (root, store, transfer) = (self.root().to_owned(), self.store().clone(), self.transfer().clone());
        Box::pin(async move {
            let key = format!("/{}", msg.file.trim_start_matches('/'));
            let path = SharePath::parse(&key).map_err(|e| {
                CommandError::new(ErrorCode::BadFile, format!("{:?} is not a path in the share: {e}", msg.file))
            })?;
            let internal = |e: String| CommandError::new(ErrorCode::Internal, e);
            type Found = Option<(Record, Option<std::fs::File>)>;
            let lookup = tokio::task::spawn_blocking(move || -> Result<Found, CommandError> {
                let Some(r) = store.get(&path).map_err(|e| internal(e.to_string()))? else { return Ok(None) };
                if r.deleted || r.kind != EntryKind::File {
                    return Ok(None);
                }
                // Here exactly as indexed (not pending, the stat unchanged)? Then read it.
                let here = match (&r.local, r.pending, r.local_sha256 == r.sha256) {
                    (Some(stat), false, true) => fsops::open_unchanged(&root, &r.path, stat).ok().flatten(),
                    _ => None,
                };
                Ok(Some((r, here)))
            });
            let found = lookup.await.map_err(|e| internal(e.to_string()))??;
            let Some((record, here)) = found else {
                return Err(CommandError::new(ErrorCode::NoSuchFile, format!("the share has no file {:?}", msg.file)));
            };
            let (size, sha256) = (record.size.unwrap_or(0), record.sha256.unwrap_or(Sha256Hash([0; 32])));
            if msg.offset > size {
                let text = format!("offset {} is past the end of the file ({size} bytes)", msg.offset);
                return Err(CommandError::new(ErrorCode::BadRange, text));
            }
            let length = msg.length.unwrap_or(u64::MAX).min(size - msg.offset);
            let whole = msg.offset == 0 && length == size;
            let (tx, rx) = mpsc::channel(DEPTH);
            let tx = match record.sha256 {
                Some(expected) if whole && length > 0 => verifying(expected, length, tx),
                _ => tx,
            };
            let source = match here {
                Some(file) => {
                    tokio::task::spawn_blocking(move || read_local(&file, msg.offset, length, &tx));
                    "local"
                }
                None => {
                    actix_rt::spawn(read_from_peers(transfer, sha256, msg.offset, length, whole, tx));
                    "peer"
                }
            };
            Ok(Reading { size, sha256, offset: msg.offset, length, source, rx })
        })
    }
}

type Piece = Result<Bytes, String>;

/// A stream of the whole file, checked against `expected` on its way to `out`: the pieces
/// are passed on as they come, but the last is held back until every byte (`length`) is
/// here and their SHA-256 is the record's; otherwise the stream ends in an error without it.
/// (Hashed on a blocking thread, not on the event loop.)
fn verifying(expected: Sha256Hash, length: u64, out: mpsc::Sender<Piece>) -> mpsc::Sender<Piece> {
    let (tx, mut rx) = mpsc::channel::<Piece>(DEPTH);
    tokio::task::spawn_blocking(move || {
        let mut hash = Sha256::new();
        let (mut held, mut seen) = (None::<Bytes>, 0u64);
        while let Some(piece) = rx.blocking_recv() {
            let bytes = match piece {
                Ok(b) => b,
                Err(e) => {
                    let _ = out.blocking_send(Err(e));
                    return;
                }
            };
            hash.update(&bytes);
            seen += bytes.len() as u64;
            if let Some(before) = held.replace(bytes) {
                if out.blocking_send(Ok(before)).is_err() {
                    return; // the reader went away
                }
            }
        }
        if seen != length {
            let _ = out.blocking_send(Err(format!("the stream ended after {seen} of {length} bytes")));
            return;
        }
        let got = Sha256Hash(hash.finalize().into());
        if got != expected {
            warn!(expected = %expected, got = %got, "a streamed file does not match its SHA-256; its end is withheld");
            let why = format!(
                "the file's bytes do not match its SHA-256 (a peer sent wrong data): expected {expected}, got {got}; \
                 the end of the file was withheld"
            );
            let _ = out.blocking_send(Err(why));
            return;
        }
        if let Some(last) = held {
            let _ = out.blocking_send(Ok(last));
        }
    });
    tx
}

fn read_local(file: &std::fs::File, mut offset: u64, length: u64, tx: &mpsc::Sender<Piece>) {
    let end = offset + length;
    while offset < end {
        let want = usize::try_from(end - offset).unwrap_or(PIECE).min(PIECE);
        let mut buf = vec![0u8; want];
        let n = match file.read_at(&mut buf, offset) {
            Ok(0) => {
                let _ = tx.blocking_send(Err("the file got shorter while it was read".into()));
                return;
            }
            Ok(n) => n,
            Err(e) => {
                let _ = tx.blocking_send(Err(format!("reading: {e}")));
                return;
            }
        };
        buf.truncate(n);
        if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
            return; // the reader went away
        }
        offset += n as u64;
    }
}

async fn read_from_peers(
    transfer: Addr<Transfer>,
    sha256: Sha256Hash,
    mut offset: u64,
    length: u64,
    whole: bool,
    tx: mpsc::Sender<Piece>,
) {
    let end = offset + length;
    while offset < end {
        let len = RANGE.min(end - offset);
        let (chunks, mut arriving) = mpsc::channel::<SinkItem>(DEPTH);
        // Untrusted peers only for a whole file, which is verified at its end.
        transfer.do_send(FetchRange { sha256, start: offset, len, chunks, untrusted: whole });
        let mut got = 0u64;
        loop {
            match tokio::time::timeout(PEER_SILENCE, arriving.recv()).await {
                Ok(Some(SinkItem::Chunk(b))) => {
                    got += b.len() as u64;
                    if got > len {
                        let _ = tx.send(Err(format!("the peer sent more than the {len} bytes asked for"))).await;
                        return;
                    }
                    if tx.send(Ok(b)).await.is_err() {
                        return; // the reader went away
                    }
                }
                Ok(Some(SinkItem::End)) => break,
                Ok(None) => {
                    let why = if whole {
                        "no connected peer could send the file"
                    } else {
                        "no connected trusted peer could send the range (untrusted peers serve only whole files, \
                         which can be verified)"
                    };
                    let _ = tx.send(Err(why.into())).await;
                    return;
                }
                Err(_) => {
                    let _ = tx.send(Err("the peer stopped sending".into())).await;
                    return;
                }
            }
        }
        if got != len {
            let _ = tx.send(Err(format!("the peer sent {got} of {len} bytes"))).await;
            return;
        }
        offset += len;
    }
}
