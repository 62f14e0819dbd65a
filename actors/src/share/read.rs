//! `read_file`: streaming a file of a share without keeping a copy (`directory.md`,
//! "Streaming"). The local file is read if it is here exactly as indexed; otherwise the
//! bytes come from a connected peer, range by range, straight through to the reader.
//!
//! A range cannot be checked against the file's SHA-256 (which covers the whole file), so
//! streamed bytes are only as good as the peer that sent them: the peer is authenticated and
//! serves only files whose stat matches its own index, but nothing is verified here.

use std::os::unix::fs::FileExt;

use actix::{Addr, Handler, ResponseFuture};
use bytes::Bytes;
use clearskies_protocol::path::SharePath;
use clearskies_protocol::Sha256Hash;
use tokio::sync::mpsc;

use super::actor::Share;
use super::fsops;
use super::messages::{OpenRead, Reading};
use super::record::EntryKind;
use crate::supervisor::messages::CommandError;
use crate::transfer::messages::{FetchRange, SinkItem};
use crate::transfer::{Transfer, RANGE};

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
                CommandError::new("bad_file", format!("{:?} is not a path in the share: {e}", msg.file))
            })?;
            let internal = |e: String| CommandError::new("internal", e);
            type Found = Option<(super::record::Record, Option<std::fs::File>)>;
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
                return Err(CommandError::new("no_such_file", format!("the share has no file {:?}", msg.file)));
            };
            let (size, sha256) = (record.size.unwrap_or(0), record.sha256.unwrap_or(Sha256Hash([0; 32])));
            if msg.offset > size {
                let text = format!("offset {} is past the end of the file ({size} bytes)", msg.offset);
                return Err(CommandError::new("bad_range", text));
            }
            let length = msg.length.unwrap_or(u64::MAX).min(size - msg.offset);
            let (tx, rx) = mpsc::channel(DEPTH);
            let source = match here {
                Some(file) => {
                    tokio::task::spawn_blocking(move || read_local(&file, msg.offset, length, &tx));
                    "local"
                }
                None => {
                    actix_rt::spawn(read_from_peers(transfer, sha256, msg.offset, length, tx));
                    "peer"
                }
            };
            Ok(Reading { size, sha256, offset: msg.offset, length, source, rx })
        })
    }
}

fn read_local(file: &std::fs::File, mut offset: u64, length: u64, tx: &mpsc::Sender<Result<Bytes, String>>) {
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
    tx: mpsc::Sender<Result<Bytes, String>>,
) {
    let end = offset + length;
    while offset < end {
        let len = RANGE.min(end - offset);
        let (chunks, mut arriving) = mpsc::channel::<SinkItem>(DEPTH);
        transfer.do_send(FetchRange { sha256, start: offset, len, chunks });
        let mut got = 0u64;
        loop {
            match tokio::time::timeout(PEER_SILENCE, arriving.recv()).await {
                Ok(Some(SinkItem::Chunk(b))) => {
                    got += b.len() as u64;
                    if tx.send(Ok(b)).await.is_err() {
                        return; // the reader went away
                    }
                }
                Ok(Some(SinkItem::End)) => break,
                Ok(None) => {
                    let _ = tx.send(Err("no connected peer could send the file".into())).await;
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
