//! Messages the [`super::Transfer`] actor handles.

use std::path::PathBuf;

use actix::{Message, Recipient};
use bytes::Bytes;
use clearskies_index::apply::Fetch;
use clearskies_protocol::message::directory::{Data, Get};
use clearskies_protocol::message::rsync;
use clearskies_protocol::Sha256Hash;

use crate::peer::messages::PeerOut;

/// Contents the share needs from peers.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Fetches(pub Vec<Fetch>);

/// A peer connection can be asked for contents.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct TransferPeerUp {
    /// The connection.
    pub conn: u64,
    /// Where requests go.
    pub out: Recipient<PeerOut>,
    /// What it may be served (and whether deltas go either way).
    pub access: super::Access,
    /// Deltas may be refined (`.rs.clearskies.rsync-refine`; implies `access.rsync()`).
    pub refine: bool,
    /// It uses `gzip`: what we send is sampled for compressibility.
    pub gzip: bool,
}

/// A peer connection ended: what it was asked for goes back in the queue.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct TransferPeerDown {
    /// The connection.
    pub conn: u64,
}

/// A peer asks for contents (`directory.get`).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ServeGet {
    /// The connection.
    pub conn: u64,
    /// The request.
    pub get: Get,
    /// Where the answer goes.
    pub out: Recipient<PeerOut>,
}

/// A read-write peer asks us (an untrusted peer) to prove we store a file
/// (`untrusted.verify`, already checked to be signed).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ServeVerify {
    /// The connection.
    pub conn: u64,
    /// The challenge.
    pub verify: clearskies_protocol::message::untrusted::Verify,
    /// Where the answer goes.
    pub out: Recipient<PeerOut>,
}

/// A piece of a `directory.data` attachment, or its end.
#[derive(Debug)]
pub enum SinkItem {
    /// The next bytes.
    Chunk(Bytes),
    /// The attachment is complete.
    End,
}

/// Where a connection writes an attachment's chunks (bounded: a slow disk slows the
/// connection's reading, never grows memory). Dropped without [`SinkItem::End`] means the
/// transfer was cut off.
pub type Sink = tokio::sync::mpsc::Sender<SinkItem>;

/// A message whose attachment is file data of some kind.
#[derive(Debug)]
pub enum Inbound {
    /// `directory.data`: contents we asked for.
    Data(Data),
    /// `rsync.signature`: a peer asks for a delta from its copy (the signature follows).
    Signature(rsync::Signature),
    /// `rsync.patch`: the delta we asked for.
    Patch(rsync::Patch),
}

/// An attachment's header arrived: `Some(sink)` if we take its bytes.
#[derive(Debug, Message)]
#[rtype(result = "Option<Sink>")]
pub struct DataStart {
    /// The connection.
    pub conn: u64,
    /// The header.
    pub what: Inbound,
}

/// The peer does not have (or cannot send) contents we asked for.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Missing {
    /// The connection.
    pub conn: u64,
    /// The contents.
    pub sha256: Sha256Hash,
    /// The answer did not fit in one gzip message (a large delta): ask for the file whole,
    /// in ranges.
    pub too_large: bool,
}

/// A download's writer finished.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(super) struct Finished {
    pub conn: u64,
    pub sha256: Sha256Hash,
    /// It came as an rsync delta.
    pub delta: bool,
    pub result: Result<Written, super::Failure>,
}

/// A verified download in its temp file.
#[derive(Debug)]
pub(super) struct Written {
    pub temp: PathBuf,
    /// Left unsynced by its writer: the share's install makes it durable (see
    /// [`clearskies_index::durable`]).
    pub unsynced: Option<clearskies_index::durable::Unsynced>,
}

impl Written {
    /// A temp file its writer fsynced.
    pub(super) fn synced(temp: PathBuf) -> Written {
        Written { temp, unsynced: None }
    }
}

/// Pause (`true`) or resume file transfers: while paused no contents are requested, and
/// requests from peers are answered with `directory.get_error` (they ask again later).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct SetTransfersPaused(pub bool);

/// Asks a connected peer for a range of contents for a stream (no local copy): its
/// chunks go to `chunks` (dropped without [`SinkItem::End`]: the peer could not send it).
/// Trusted peers are asked first; an untrusted one only if `untrusted`, and then for the
/// ciphertext by its hash (never the plaintext hash), decrypted before it reaches `chunks`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct FetchRange {
    /// The contents.
    pub sha256: Sha256Hash,
    /// First byte.
    pub start: u64,
    /// Length (at most one range).
    pub len: u64,
    /// Where the chunks go.
    pub chunks: Sink,
    /// An untrusted peer may send it (the stream verifies the whole file at its end).
    pub untrusted: bool,
}
