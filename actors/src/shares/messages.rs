//! Messages the [`super::Shares`] registry handles.

use actix::Message;
use serde::{Deserialize, Serialize};

use crate::control::cmd::CommandError;

/// `create_share`: share a directory read-write.
#[derive(Debug, Message)]
#[rtype(result = "Result<ShareCreated, CommandError>")]
pub struct CreateShare {
    /// The directory.
    pub path: std::path::PathBuf,
}

/// What `create_share` (and `add_share`) answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareCreated {
    /// The canonical path.
    pub path: String,
    /// The share ID (public key ID).
    pub id: String,
}

/// `list_shares`.
#[derive(Debug, Message)]
#[rtype(result = "Vec<crate::share::messages::ShareStatus>")]
pub struct ListShares;

/// `remove_share`: stop syncing a directory (its files stay).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct RemoveShare {
    /// The directory.
    pub path: std::path::PathBuf,
}

/// `add_share` with saved keys: join the share they open at `path` and dial `peer` with
/// them (restoring a share, e.g. from an untrusted backup, when no peer can give a code).
#[derive(Debug, Message)]
#[rtype(result = "Result<ShareCreated, CommandError>")]
pub struct ImportKeys {
    /// The keys, as `export_keys` gave them.
    pub keys: Box<clearskies_protocol::message::core::Keys>,
    /// Where the share goes (created if missing).
    pub path: std::path::PathBuf,
    /// `HOST:PORT` of a peer that has the share.
    pub peer: String,
    /// Selective sync.
    pub selection: clearskies_index::filter::Selection,
}

/// A share's actor or its transfer actor crashed: start the share again (the supervisor
/// sends this after its restart backoff).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RestartShare(pub clearskies_protocol::Sha256Hash);

/// To the supervisor: the registered shares run (or could not be loaded). Peers are let in
/// from then on: a connection accepted before its share is in the table would be refused
/// as if its key were unknown.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SharesLoaded;

/// Pauses or resumes every share's transfers (and those of shares started later).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PauseShares(pub bool);

/// Subscribes to the [`ShareEvent`](crate::share::ShareEvent)s of the share at `path`: the
/// stream goes on across restarts of the share and ends when it is removed.
#[derive(Debug, Message)]
#[rtype(result = "Result<tokio::sync::broadcast::Receiver<crate::share::ShareEvent>, CommandError>")]
pub struct SubscribeShareEvents {
    /// The share's root.
    pub path: std::path::PathBuf,
}

/// `verify_backup`: challenge the share's connected untrusted peers.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<crate::share::messages::BackupCheck>, CommandError>")]
pub struct VerifyBackup {
    /// The share's root.
    pub path: std::path::PathBuf,
    /// How many random files to check.
    pub files: usize,
}

/// `confirm_deletes`: record (or with `dry_run` only list) the deletions a share held back.
#[derive(Debug, Message)]
#[rtype(result = "Result<crate::control::cmd::Held, CommandError>")]
pub struct ConfirmDeletes {
    /// The share's root.
    pub path: std::path::PathBuf,
    /// Only list them.
    pub dry_run: bool,
}

/// `read_file`: a file of the share at `path`, streamed.
#[derive(Debug, Message)]
#[rtype(result = "Result<crate::share::messages::Reading, CommandError>")]
pub struct ReadFile {
    /// The share's root.
    pub path: std::path::PathBuf,
    /// What to read.
    pub read: crate::share::messages::OpenRead,
}

/// `file_url`: the loopback HTTP address that serves a file of the share at `path`.
#[derive(Debug, Message)]
#[rtype(result = "Result<String, CommandError>")]
pub struct FileUrl {
    /// The share's root.
    pub path: std::path::PathBuf,
    /// The file, relative to it.
    pub file: String,
    /// Seconds the address stays valid (default [`crate::web::DEFAULT_URL_LIFETIME`]).
    pub lifetime: Option<u64>,
}

/// `list_versions`, `restore_version`, `revert`: about the share at `path`.
#[derive(Debug, Message)]
#[rtype(result = "Result<crate::share::messages::HistoryAnswer, CommandError>")]
pub struct History {
    /// The share's root.
    pub path: std::path::PathBuf,
    /// What to do.
    pub op: crate::share::messages::History,
}

/// From connections (`peers remove`): refuse `peer` in share `share` from now on and
/// forget `addresses` (where it was reached). Answers the share's root.
#[derive(Debug, Message)]
#[rtype(result = "Result<String, CommandError>")]
pub struct ForgetPeer {
    /// The share.
    pub share: clearskies_protocol::Sha256Hash,
    /// The peer.
    pub peer: clearskies_protocol::PeerId,
    /// Its addresses (`HOST:PORT`), no longer dialled.
    pub addresses: Vec<String>,
}

/// `rotate_keys`: new keys for every level of the read-write share at `path` (see
/// `shares::rekey`).
#[derive(Debug, Message)]
#[rtype(result = "Result<KeysRotated, CommandError>")]
pub struct RotateKeys {
    /// The share's root.
    pub path: std::path::PathBuf,
}

/// What `rotate_keys` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysRotated {
    /// The share's root.
    pub path: String,
    /// Connected peers that were sent their new keys.
    pub peers: usize,
}

/// `list_files`: a page of a directory of the share at `path`.
#[derive(Debug, Message)]
#[rtype(result = "Result<crate::share::messages::Listing, CommandError>")]
pub struct ListFiles {
    /// The share's root.
    pub path: std::path::PathBuf,
    /// What to list.
    pub list: crate::share::messages::ListFiles,
}
