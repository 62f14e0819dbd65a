//! What peer connections ask of, and tell, the owners: access (credentials, codes used),
//! the share registry (join) and connections (sessions up and down).

use std::net::SocketAddr;

use actix::Message;
use clearskies_protocol::address::PeerAddr;
use clearskies_protocol::auth::VerifierRecord;
use clearskies_protocol::message::core::Keys;
use clearskies_protocol::{PeerId, Sha256Hash};

use crate::control::cmd::CommandError;

/// What an authenticated ID stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialKind {
    /// An access code: the peer gets the share's keys, then the code is used up (unless
    /// multi-use).
    Code,
    /// A share key: a peer that already joined.
    Key,
}

/// A credential the listener can authenticate against.
#[derive(Debug, Clone)]
pub struct Credential {
    /// The SRP record.
    pub record: VerifierRecord,
    /// The share it opens.
    pub share: Sha256Hash,
    /// Our peer ID in that share.
    pub our_peer_id: PeerId,
    /// Code or key.
    pub kind: CredentialKind,
    /// For codes: the keys to hand over.
    pub keys: Option<Keys>,
    /// A code that may serve one connection at a time (keys and multi-use codes may not).
    pub single_use: bool,
    /// The level the connection has: the key's, or the one the code grants.
    pub level: clearskies_protocol::message::core::AccessLevel,
}

/// Which credential, if any, answers to an access ID or key ID. Unknown, expired, used and
/// cancelled codes answer `None` (and then get a decoy).
#[derive(Debug, Message)]
#[rtype(result = "Option<Credential>")]
pub struct LookupCredential(pub Sha256Hash);

/// After authentication: reserve the credential for this connection. A single-use code can
/// be claimed by one connection at a time; `None` means it is taken.
#[derive(Debug, Message)]
#[rtype(result = "Option<Credential>")]
pub struct ClaimCredential(pub Sha256Hash);

/// A connection that claimed a code ended before the key exchange completed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReleaseCredential(pub Sha256Hash);

/// The peer acknowledged the keys of a code: record the code as used by `peer`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CodeUsed {
    /// The code's access ID.
    pub access_id: Sha256Hash,
    /// Who joined with it.
    pub peer: PeerId,
}

/// Keys arrived on a connection made with a code: create the share they open at `path`.
#[derive(Debug, Message)]
#[rtype(result = "Result<Sha256Hash, CommandError>")]
pub struct JoinShare {
    /// The received keys.
    pub keys: Keys,
    /// Where the user wants the share.
    pub path: std::path::PathBuf,
    /// Our new peer ID in the share.
    pub peer_id: PeerId,
    /// The peer we joined through, remembered for re-dialling.
    pub via: String,
    /// Selective sync asked for by the attach.
    pub selection: clearskies_index::filter::Selection,
}

/// A session became ready for sync. Answers where the share's messages go, or why the
/// session is refused (the share is gone, the peer removed, a duplicate).
#[derive(Debug, Message)]
#[rtype(result = "Result<crate::share::messages::ShareLink, String>")]
pub struct PeerConnected {
    /// The connection.
    pub conn: u64,
    /// Where messages for the peer go.
    pub out: actix::Recipient<PeerOut>,
    /// The share.
    pub share: Sha256Hash,
    /// The peer's ID.
    pub peer: PeerId,
    /// Its address.
    pub addr: PeerAddr,
    /// How to reach it again if the connection is lost without a word (a crash).
    pub redial: Redial,
    /// Both sides speak the `rsync` extension (delta transfers).
    pub rsync: bool,
    /// Both sides speak `.rs.clearskies.rsync-refine` too (refined deltas).
    pub refine: bool,
    /// The connection uses `gzip`.
    pub gzip: bool,
    /// The level of the key or code that opened the connection (`None`: we joined the
    /// share on it, so it is the level we now hold).
    pub level: Option<clearskies_protocol::message::core::AccessLevel>,
    /// The name the peer gave in its greeting or start (cleaned, see [`clean_name`]).
    pub name: Option<String>,
    /// What the connection has sent and received so far.
    pub traffic: std::sync::Arc<Traffic>,
    /// Both sides speak `.rs.clearskies.code_spread`.
    pub code_spread: bool,
}

/// Bytes one connection sent and received (the protocol stream inside TLS), counted by its
/// reader and writer, read by `list_peers`.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Bytes written.
    pub sent: std::sync::atomic::AtomicU64,
    /// Bytes read.
    pub received: std::sync::atomic::AtomicU64,
}

/// Whether `c` can forge or hide text where names and paths are shown: a control character
/// (C0, DEL, C1) or a Unicode format character that reorders, joins, separates lines or
/// hides text (bidi marks, overrides and isolates, zero-width characters, line and
/// paragraph separators, invisible operators, tags). The log, the CLI and peer names use
/// this one set.
pub fn hides_text(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
                | '\u{e0000}'..='\u{e007f}'
        )
}

/// Longest peer name kept, in bytes.
pub const MAX_PEER_NAME: usize = 64;

/// A peer's self-chosen name as we show it: control characters and the Unicode format
/// characters that reorder or hide text dropped, surrounding space trimmed, at most
/// [`MAX_PEER_NAME`] bytes (cut on a character boundary); `None` if nothing is left.
pub fn clean_name(name: &str) -> Option<String> {
    let mut out = String::new();
    for c in name.trim().chars().filter(|c| !hides_text(*c)) {
        if out.len() + c.len_utf8() > MAX_PEER_NAME {
            break;
        }
        out.push(c);
    }
    let out = out.trim().to_owned();
    (!out.is_empty()).then_some(out)
}

/// How a lost connection is re-established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redial {
    /// We dialled this `HOST:PORT` (configured, remembered or the attach address).
    Address(String),
    /// Discovery found it: dial the address again.
    Found(PeerAddr),
    /// The peer dialled us; it dials again.
    ByPeer,
}

/// A session ended.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PeerDisconnected {
    /// The connection.
    pub conn: u64,
    /// The share, if the session got that far.
    pub share: Option<Sha256Hash>,
    /// The peer's ID, if known.
    pub peer: Option<PeerId>,
    /// Its address.
    pub addr: PeerAddr,
    /// For connections we dialled: the `HOST:PORT` we dialled (to dial again).
    pub dialled: Option<String>,
    /// Why, for logs and `peers`.
    pub reason: String,
}

/// Something for a peer connection to send.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum PeerOut {
    /// Fault injection (`--danger-fault-injection` only).
    Fault(PeerFault),
    /// Messages without attachment, in order.
    Send(Vec<clearskies_protocol::message::Message>),
    /// Signed messages (`s` frames) sent verbatim, in order.
    SendSigned(Vec<clearskies_index::record::Signed>),
    /// A message whose attachment is the file's bytes from its current position, `len`
    /// of them (streamed, never read whole).
    File {
        /// The header (`directory.data`).
        header: clearskies_protocol::message::Message,
        /// The open file, positioned at the start of the range.
        file: std::fs::File,
        /// Bytes to send.
        len: u64,
        /// Worth deflating when `gzip` is in use (a sample compressed well).
        compressible: bool,
    },
    /// A message whose attachment is written by `produce` on a blocking thread as it is
    /// computed (an rsync signature or delta), streamed under the same budget as files.
    Produce {
        /// The header (`rsync.signature`, `rsync.patch`).
        header: clearskies_protocol::message::Message,
        /// Writes the attachment.
        produce: Producer,
        /// Worth deflating when `gzip` is in use.
        compressible: bool,
    },
    /// Holds `permit` until everything sent before it on this connection is written to the
    /// socket (or the connection is gone): the sender of a long stream of messages paces
    /// itself by waiting for its semaphore.
    Written(tokio::sync::OwnedSemaphorePermit),
    /// Close the connection, logging why.
    Close(String),
}

/// Writes an attachment into the connection on a blocking thread. An error ends the
/// attachment early (the receiver's verification refuses what it got).
pub struct Producer(pub Box<ProduceFn>);

/// What a [`Producer`] runs.
pub type ProduceFn = dyn FnOnce(&mut dyn std::io::Write) -> std::io::Result<()> + Send;

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Producer")
    }
}

/// A fault injected into a connection (tests of supervision only).
#[derive(Debug, Clone, Copy)]
pub enum PeerFault {
    /// Panic in the connection's actor.
    Panic,
    /// Stop reading and processing for this long (a stalled peer).
    Stall(std::time::Duration),
}

/// A peer sent the share's new keys (`.rs.clearskies.rekey`): for the registry, which
/// checks the read-write signature and moves the share to them.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Rekeyed {
    /// The share, by its ID now.
    pub share: Sha256Hash,
    /// The level of the connection's key (the keys must be for it).
    pub level: clearskies_protocol::message::core::AccessLevel,
    /// The message's body as received, and its signature.
    pub body: bytes::Bytes,
    /// The signature (`None`: unsigned, refused).
    pub signature: Option<bytes::Bytes>,
    /// The message.
    pub rekey: clearskies_protocol::message::core::Rekey,
    /// The peer, for the log.
    pub remote: SocketAddr,
}

/// A peer sent its long-lived codes (`.rs.clearskies.code_spread`) on connection `conn`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PeerCodes {
    /// The connection.
    pub conn: u64,
    /// What it sent (at most `MAX_SPREAD`).
    pub codes: Vec<clearskies_protocol::message::code_spread::SpreadVerifier>,
}
