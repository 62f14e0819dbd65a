//! Messages the [`super::Supervisor`] handles.

use actix::Message;
use serde::Serialize;

/// Asks for the daemon's status (`control.md`, "status").
#[derive(Debug, Message)]
#[rtype(result = "Status")]
pub struct GetStatus;

/// The daemon's status, as the control socket reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// Whether syncing is paused.
    pub paused: bool,
    /// Whether the daemon is registered with a tracker (discovery is not built yet: false).
    pub tracking: bool,
    /// Whether NAT traversal succeeded (not built: false).
    pub nat_punctured: bool,
    /// Bytes per second sent to peers (over the last three seconds).
    pub upload_rate: u64,
    /// Bytes per second received from peers (over the last three seconds).
    pub download_rate: u64,
    /// The upload limit, bytes per second (0: none).
    pub upload_limit: u64,
    /// The download limit, bytes per second (0: none).
    pub download_limit: u64,
    /// Software name and version.
    pub software: String,
    /// The worker's process ID.
    pub pid: u32,
    /// Seconds since the worker started.
    pub uptime_seconds: u64,
    /// Seconds since the daemon (its monitor process) started, across worker restarts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemon_uptime_seconds: Option<u64>,
    /// Worker processes the monitor restarted after a crash.
    pub worker_restarts: u64,
    /// Actors restarted inside this worker after a crash.
    pub actor_restarts: u64,
    /// Where `/metrics` and `/health` are served (absent: off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
    /// The address peers connect to.
    pub listen: Option<String>,
    /// Connected peer sessions.
    pub peers: usize,
}

/// Fault injection (only with `--danger-fault-injection`): make an actor panic.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct InjectFault {
    /// What to break.
    pub fault: Fault,
    /// For share, transfer and peer faults: the share (default: the first one / any).
    pub path: Option<std::path::PathBuf>,
}

/// An injectable fault.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Panic in an actor (a peer: one connection of the share).
    Panic(crate::supervise::ActorKind),
    /// Every connection of the share (or all) stops reading for a while.
    Stall(std::time::Duration),
    /// The next index write fails.
    FailNextWrite,
}

/// Pauses or resumes syncing.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SetPaused(pub bool);

/// Stops the worker cleanly.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

pub use crate::control::cmd::CommandError;

/// `get_config`: the daemon's settings as a JSON object.
#[derive(Debug, Message)]
#[rtype(result = "serde_json::Map<String, serde_json::Value>")]
pub struct GetConfig;

/// `set_config` / `set_config_value`: check the values (all or nothing), save them in
/// `config.toml` and apply those that change at runtime; a setting that takes effect at the
/// next start is answered `needs_restart` (after it is saved).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct SetConfig(pub serde_json::Map<String, serde_json::Value>);

/// `create_share`: share a directory read-write.
#[derive(Debug, Message)]
#[rtype(result = "Result<ShareCreated, CommandError>")]
pub struct CreateShare {
    /// The directory.
    pub path: std::path::PathBuf,
}

/// What `create_share` answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
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

/// Default lifetime of an access code, in seconds: 24 hours.
pub const DEFAULT_CODE_LIFETIME: i64 = 24 * 3600;

/// `create_access_code`.
#[derive(Debug, Message)]
#[rtype(result = "Result<CodeCreated, CommandError>")]
pub struct CreateAccessCode {
    /// The shared directory.
    pub path: std::path::PathBuf,
    /// `read_write` (other levels arrive with the access-levels work).
    pub mode: String,
    /// How long the code stays valid.
    pub lifetime: crate::share::registry::Lifetime,
    /// Whether it may be used more than once.
    pub multi_use: bool,
    /// Custom credentials instead of a generated code: username and password.
    pub custom: Option<(String, String)>,
}

/// What `create_access_code` answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CodeCreated {
    /// The `SYNC…` code (absent for custom credentials).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_code: Option<String>,
    /// The `clearskies://directory/…` form (absent for custom credentials).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The custom username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The public access ID (what `code list` shows and `code cancel` takes).
    pub access_id: String,
    /// Unix seconds after which the code is refused; null: never.
    pub expires: Option<i64>,
    /// Whether more than one peer may join with it.
    pub multi_use: bool,
}

/// `list_access_codes`: every code this daemon issued that was not cancelled.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<CodeEntry>, CommandError>")]
pub struct ListCodes;

/// One line of `list_access_codes`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CodeEntry {
    /// The public access ID.
    pub access_id: String,
    /// The custom username, if it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The share's root.
    pub path: String,
    /// The level it grants.
    pub mode: &'static str,
    /// active, expired or used.
    pub state: crate::share::registry::CodeState,
    /// Unix seconds when issued.
    pub created: i64,
    /// Unix seconds after which it is refused; null: never.
    pub expires: Option<i64>,
    /// Whether more than one peer may join with it.
    pub multi_use: bool,
    /// Peer IDs that joined with it.
    pub used_by: Vec<String>,
}

/// `cancel_access_code`: the code is refused from now on.
#[derive(Debug, Message)]
#[rtype(result = "Result<CodeEntry, CommandError>")]
pub struct CancelCode(pub crate::share::registry::CodeRef);

/// What a peer joins a share with.
#[derive(Debug, Clone)]
pub enum JoinWith {
    /// A `SYNC…` code (or its URL form), as typed.
    Code(String),
    /// A username and password the sharer chose.
    Custom {
        /// Username.
        username: String,
        /// Password.
        password: String,
    },
    /// Keys saved with `export_keys` (restoring a share, e.g. from an untrusted backup,
    /// when no peer can give a code).
    Keys(Box<clearskies_protocol::message::core::Keys>),
}

/// `export_keys`: the keys of the level we hold of the share at `path`, as `core.keys`
/// carries them, to keep somewhere safe.
#[derive(Debug, Message)]
#[rtype(result = "Result<clearskies_protocol::message::core::Keys, CommandError>")]
pub struct ExportKeys {
    /// The share's root.
    pub path: std::path::PathBuf,
}

/// `add_share`: join a share with an access code, through the peer at `peer`.
#[derive(Debug, Message)]
#[rtype(result = "Result<ShareCreated, CommandError>")]
pub struct AddShare {
    /// The code or the custom credentials.
    pub with: JoinWith,
    /// Where the share goes (created if missing).
    pub path: std::path::PathBuf,
    /// `HOST:PORT` of a peer that has the share; without it, discovery looks for one.
    pub peer: Option<String>,
    /// How long discovery may look, in seconds (default 60, at most 600).
    pub timeout: Option<u64>,
    /// Selective sync: only a subtree, and patterns never synced here.
    pub selection: clearskies_index::filter::Selection,
}

/// `list_peers`: connected sessions and remembered peers being dialled.
#[derive(Debug, Message)]
#[rtype(result = "Vec<PeerEntry>")]
pub struct ListPeers;

/// One line of `list_peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerEntry {
    /// The share's root.
    pub path: String,
    /// The share's ID.
    pub share: String,
    /// The peer's ID, once a session has told us.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// `HOST:PORT`.
    pub address: String,
    /// `connected` or `dialing`.
    pub state: &'static str,
    /// Where we know the address from: `manual` (given on attach) or `incoming`.
    pub source: &'static str,
    /// Failed dial attempts since the last success (dialing only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failures: Option<u32>,
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

/// `confirm_deletes`: record the deletions a share held back.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, CommandError>")]
pub struct ConfirmDeletes {
    /// The share's root.
    pub path: std::path::PathBuf,
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
    /// Seconds the address stays valid (default [`crate::metrics::DEFAULT_URL_LIFETIME`]).
    pub lifetime: Option<u64>,
}
