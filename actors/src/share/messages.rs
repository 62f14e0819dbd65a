//! Messages the [`super::Share`] actor handles.

use actix::Message;
use clearskies_index::{record, rsa, scan, untrusted};
use serde::{Deserialize, Serialize};

use crate::control::cmd::{wire_names, Mode};

/// Scan the share now (after start-up, a watcher overflow, or on request). Idempotent: a
/// request while a scan runs queues exactly one more scan.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Rescan;

/// `verify_backup`: challenges every connected untrusted peer to prove it stores up to
/// `files` randomly chosen files (SHA-256 of a random prefix and the ciphertext).
#[derive(Debug, Message)]
#[rtype(result = "Vec<BackupCheck>")]
pub struct VerifyBackup {
    /// How many files to check.
    pub files: usize,
}

/// One untrusted peer's answer to `verify_backup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupCheck {
    /// The peer's ID.
    pub peer: String,
    /// Files it was asked to prove.
    pub checked: usize,
    /// Files it proved it stores intact.
    pub proved: usize,
    /// Files it could not prove (no answer within a minute, or a wrong one).
    pub failed: Vec<String>,
}

/// `confirm_deletes`: the deletions held because there were too many at once are recorded
/// (and sent to peers) by the next full scan, which starts now (unless `dry_run`). Answers
/// what was held.
#[derive(Debug, Message)]
#[rtype(result = "crate::control::cmd::Held")]
pub struct ConfirmDeletes {
    /// Only say what is held.
    pub dry_run: bool,
}

/// The watcher saw a change: where to look (a hint: the debounced scan finds out what
/// changed there).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct FsChanged {
    /// Where to look.
    pub scope: scan::Scope,
    /// The event finishes a change (a file closed after writing or renamed into place, new
    /// attributes, a new directory), rather than being part of one still going on (a
    /// write, a file created and still open, a deletion that a save may follow): when the
    /// tree was quiet, the scan may start at once.
    pub finishes: bool,
}

/// Subscribes to the share's [`ShareEvent`](super::actor::ShareEvent)s from now on (see
/// `share::actor::events`: a subscriber that falls behind loses the oldest, and the stream
/// ends when the actor stops, a restart included).
#[derive(Debug, Message)]
#[rtype(result = "tokio::sync::broadcast::Receiver<super::actor::ShareEvent>")]
pub struct SubscribeEvents;

/// Stops the share's actor (the share was removed).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopShare;

/// Asks for the share's state, as `list_shares` shows it.
#[derive(Debug, Message)]
#[rtype(result = "ShareStatus")]
pub struct GetShareStatus;

wire_names! {
    /// A share's `status` in `list_shares` (and in `status`' health).
    pub enum SyncState {
        /// Starting, or scanning the share root.
        Scanning = "scanning",
        /// Records or downloads wait to be applied, or files to be fetched.
        Syncing = "syncing",
        /// Files wait to be fetched, and transfers are paused.
        Paused = "paused",
        /// Nothing to do.
        Idle = "idle",
        /// In error (see its `error`).
        Error = "error",
    }
}

/// What `list_shares` reports for one share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareStatus {
    /// The share root.
    pub path: String,
    /// What the share is doing.
    pub status: SyncState,
    /// Why the share is in error, if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Access level we hold.
    pub mode: Mode,
    /// Live files in the index.
    pub files: u64,
    /// Live directories in the index (the root included).
    pub directories: u64,
    /// Bytes in live files.
    pub bytes: u64,
    /// Our revision counter.
    pub revision: u64,
    /// Whether we are caught up: nothing to scan, apply or fetch, and every connected
    /// peer has sent everything it has (a share joined from a peer needs one connected).
    pub synced: bool,
    /// Files waiting for contents from a peer.
    pub pending_files: u64,
    /// Bytes of those files.
    pub pending_bytes: u64,
    /// Of `pending_bytes`, the bytes already received into partial downloads (absent:
    /// none), so that progress moves while a large file arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_bytes: Option<u64>,
    /// Selective sync chosen when joining: the only directory synced here (`subtree`) and
    /// the patterns never synced (`exclude`); both absent for a whole copy.
    #[serde(default, flatten)]
    pub selection: clearskies_index::filter::Selection,
    /// Peers connected for this share.
    pub peers: usize,
    /// Read-only shares: files and directories changed, added or deleted here, kept here
    /// and never sent to peers (the next scan counts again).
    pub local_changes: u64,
    /// Local deletions not recorded because too many happened at once: they wait for
    /// `confirm_deletes` (the share reports an error meanwhile).
    pub held_deletions: u64,
    /// Unix time since which no peer has been connected, once that is longer than
    /// `peers_gone_after` (absent otherwise): nothing here reaches another computer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alone_since: Option<u64>,
    /// Why the share's tree is not watched for changes (the inotify watch limit is too low):
    /// changes are then found by a full scan every `full_scan_interval`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unwatched: Option<String>,
    /// The share ID (hex), filled in by the supervisor.
    pub id: String,
    /// Our peer ID in the share (hex), filled in by the supervisor: what a sharer's `code
    /// list` shows for the peers that joined.
    pub peer_id: String,
    /// Unix time since which every status query found the share in sync (absent: not in
    /// sync now). Queries come from `list`, `status`, `/health` and `/metrics`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_sync_since: Option<u64>,
    /// Unix time a status query last found the share in sync (absent: never, since start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_synced: Option<u64>,
}

/// A peer's session for this share is ready: subscribe it. Answers where the peer sends
/// what it receives.
#[derive(Debug, Message)]
#[rtype(result = "ShareLink")]
pub struct PeerUp {
    /// The connection.
    pub conn: u64,
    /// The peer's ID.
    pub peer: clearskies_protocol::PeerId,
    /// Where messages for the peer go.
    pub out: actix::Recipient<crate::peer::messages::PeerOut>,
    /// Both sides speak the `rsync` extension (delta transfers).
    pub rsync: bool,
    /// Both sides speak `.rs.clearskies.rsync-refine` too (refined deltas).
    pub refine: bool,
    /// The connection uses `gzip`.
    pub gzip: bool,
    /// A read-only peer is on this connection (or we are one): every `database.update`
    /// goes signed — relayed as received, or signed with `sign`.
    pub signed: bool,
    /// The read-write private key, on read-write shares.
    pub sign: Option<std::sync::Arc<rsa::SigningKey>>,
    /// The peer is untrusted (and we are read-write): records go to it encrypted, contents
    /// are served and fetched as ciphertext.
    pub crypt: Option<std::sync::Arc<untrusted::UntrustedKeys>>,
}

/// A peer's session ended.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PeerDown {
    /// The connection.
    pub conn: u64,
}

/// Where a peer connection delivers a share's messages.
#[derive(Debug, Clone)]
pub struct ShareLink {
    /// Index messages.
    pub sync: actix::Recipient<FromPeer>,
    /// `directory.get` requests.
    pub get: actix::Recipient<crate::transfer::messages::ServeGet>,
    /// `untrusted.verify` challenges (we are the untrusted peer).
    pub verify_file: actix::Recipient<crate::transfer::messages::ServeVerify>,
    /// `directory.data` headers (the answer says where the chunks go).
    pub data: actix::Recipient<crate::transfer::messages::DataStart>,
    /// `directory.not_present` / `directory.get_error`.
    pub missing: actix::Recipient<crate::transfer::messages::Missing>,
    /// The connection ended.
    pub down: actix::Recipient<PeerDown>,
    /// On a connection with a read-only peer: the read-write public key every
    /// `database.update` must be signed with (filled in by the supervisor).
    pub verify: Option<std::sync::Arc<rsa::VerifyingKey>>,
    /// The peer is untrusted: its records are encrypted ones, opened with these keys
    /// (filled in by the supervisor).
    pub crypt: Option<std::sync::Arc<untrusted::UntrustedKeys>>,
}

/// An index message from a peer (already validated).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct FromPeer {
    /// The connection.
    pub conn: u64,
    /// What it said.
    pub what: SyncMessage,
}

/// The index messages.
#[derive(Debug)]
pub enum SyncMessage {
    /// `database.get_updates`.
    GetUpdates(clearskies_protocol::updates::Since),
    /// `database.update` (for a path).
    Update(Box<record::Record>),
    /// `.rs.clearskies.updates_done`.
    UpdatesDone,
    /// An untrusted peer's answer to our challenge.
    VerifyResult(clearskies_protocol::message::untrusted::VerifyResult),
    /// From an untrusted peer: contents `plain` are stored there as `cipher`.
    Cipher {
        /// Plaintext SHA-256.
        plain: clearskies_protocol::Sha256Hash,
        /// Ciphertext SHA-256.
        cipher: clearskies_protocol::Sha256Hash,
    },
}

/// The transfer actor finished a download: verified contents in `temp`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Downloaded {
    /// The contents.
    pub sha256: clearskies_protocol::Sha256Hash,
    /// The temp file.
    pub temp: std::path::PathBuf,
    /// Left unsynced by its writer: the install makes it durable before renaming it.
    pub unsynced: Option<clearskies_index::durable::Unsynced>,
}

/// The transfer actor's view of the disk: `Some(why)` when a download failed because the
/// disk is full, `None` once one succeeded again. A full disk puts the share in error.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DiskFull(pub Option<String>);

/// The bytes of a stream (`read_file`): pieces in order, or why it broke off.
pub type StreamRx = tokio::sync::mpsc::Receiver<Result<bytes::Bytes, String>>;

/// `read_file`: streams a file of the share, from the local copy if it is here and as
/// indexed, else from a connected peer, without keeping a copy.
#[derive(Debug, Message)]
#[rtype(result = "Result<Reading, crate::control::cmd::CommandError>")]
pub struct OpenRead {
    /// The file, relative to the share root (`photos/a.jpg`).
    pub file: String,
    /// First byte.
    pub offset: u64,
    /// How many bytes (`None`: to the end).
    pub length: Option<u64>,
}

/// A stream being read.
#[derive(Debug)]
pub struct Reading {
    /// The file's size.
    pub size: u64,
    /// Its contents' hash.
    pub sha256: clearskies_protocol::Sha256Hash,
    /// The range being sent.
    pub offset: u64,
    /// Its length.
    pub length: u64,
    /// Where it comes from: `local` or `peer`.
    pub source: &'static str,
    /// The bytes.
    pub rx: StreamRx,
}

/// `list_versions`, `restore_version` and `revert`: the versions the share kept, and
/// putting files back.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<HistoryAnswer, crate::control::cmd::CommandError>")]
pub enum History {
    /// The versions kept, of one file (a path in the share, `a/b.jpg`) or of all.
    List {
        /// Only this file's.
        file: Option<String>,
    },
    /// Copy a version of `file` back: `version` is its time (`YYYYMMDD-HHMMSS`, or a prefix
    /// such as `20261206`: the latest that matches) or its stored name; absent: the latest.
    Restore {
        /// The file.
        file: String,
        /// Which version.
        version: Option<String>,
    },
    /// A read-only share: move every local change into the versions and fetch the
    /// read-write peers' version again.
    Revert,
}

/// What a [`History`] command answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HistoryAnswer {
    /// `list_versions`.
    Listed {
        /// Oldest first.
        versions: Vec<clearskies_index::versions::Version>,
    },
    /// `restore_version`.
    Restored {
        /// The path in the share it was restored to.
        restored: String,
        /// The version restored.
        version: clearskies_index::versions::Version,
    },
    /// `revert`.
    Reverted {
        /// Paths moved into the versions (changed or added here).
        moved: Vec<String>,
        /// Paths whose read-write version is put back (fetched from a peer, or made).
        restoring: Vec<String>,
    },
}

/// `list_files`: a page of a directory of the share, as the index holds it (files this
/// computer does not keep included).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Listing, crate::control::cmd::CommandError>")]
pub struct ListFiles {
    /// The directory, relative to the share root (`""`: the root).
    pub dir: String,
    /// Start just past this name (the previous page's `next`).
    pub after: Option<String>,
    /// At most this many entries.
    pub limit: usize,
}

/// A page of a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// In name order.
    pub entries: Vec<FileEntry>,
    /// The `after` of the next page (absent: this was the last).
    pub next: Option<String>,
}

/// One entry of a [`Listing`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// The name in its directory.
    pub name: String,
    /// A directory.
    pub dir: bool,
    /// Bytes (files).
    pub size: Option<u64>,
    /// Modification time, Unix seconds.
    pub mtime: Option<i64>,
    /// This computer holds the contents (the file is here as indexed).
    pub here: bool,
    /// A peer's version is being fetched or applied.
    pub pending: bool,
    /// For a conflict copy (`name.CONFLICT.….ext`): the name of the file it was moved
    /// aside from.
    pub conflict_of: Option<String>,
}
