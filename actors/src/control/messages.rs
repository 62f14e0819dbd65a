//! What the control socket can ask of the rest of the worker: the owner of each command
//! ([`ControlTargets`]), and the daemon-wide commands the supervisor answers.

use actix::{Message, Recipient};
use serde::{Deserialize, Serialize};

use super::cmd::CommandError;
use crate::access::messages::{CancelCode, CreateAccessCode, ExportKeys, ListCodes};
use crate::connections::messages::{AddShare, ListPeers};
use crate::shares::messages::{
    ConfirmDeletes, CreateShare, FileUrl, History, ListShares, ReadFile, RemoveShare, VerifyBackup,
};

/// The owners a control connection talks to, injected by the supervisor: the supervisor
/// (daemon-wide), the share registry, access and connections.
#[derive(Debug, Clone)]
pub struct ControlTargets {
    /// Daemon status.
    pub status: Recipient<GetStatus>,
    /// Pause and resume.
    pub pause: Recipient<SetPaused>,
    /// Clean stop.
    pub shutdown: Recipient<Shutdown>,
    /// `create_share`.
    pub create_share: Recipient<CreateShare>,
    /// `list_shares`.
    pub list_shares: Recipient<ListShares>,
    /// `remove_share`.
    pub remove_share: Recipient<RemoveShare>,
    /// `create_access_code`.
    pub create_access_code: Recipient<CreateAccessCode>,
    /// `add_share`.
    pub add_share: Recipient<AddShare>,
    /// `list_access_codes`.
    pub list_codes: Recipient<ListCodes>,
    /// `cancel_access_code`.
    pub cancel_code: Recipient<CancelCode>,
    /// `verify_backup`.
    pub verify_backup: Recipient<VerifyBackup>,
    /// `export_keys`.
    pub export_keys: Recipient<ExportKeys>,
    /// `confirm_deletes`.
    pub confirm_deletes: Recipient<ConfirmDeletes>,
    /// `list_versions`, `restore_version`, `revert`.
    pub history: Recipient<History>,
    /// `rotate_keys`.
    pub rotate_keys: Recipient<crate::shares::messages::RotateKeys>,
    /// `remove_peer`.
    pub remove_peer: Recipient<crate::connections::messages::RemovePeer>,
    /// `list_peers`.
    pub list_peers: Recipient<ListPeers>,
    /// `get_config`, `get_config_value`.
    pub get_config: Recipient<GetConfig>,
    /// `set_config`, `set_config_value`.
    pub set_config: Recipient<SetConfig>,
    /// `read_file`.
    pub read_file: Recipient<ReadFile>,
    /// `file_url`.
    pub file_url: Recipient<FileUrl>,
    /// `list_files`.
    pub list_files: Recipient<crate::shares::messages::ListFiles>,
    /// `web_login`.
    pub web_login: Recipient<WebLogin>,
    /// `set_web_password`.
    pub web_password: Recipient<SetWebPassword>,
    /// `inject_fault`: only with `--danger-fault-injection` (otherwise the command is
    /// `not_understood`).
    pub inject_fault: Option<Recipient<InjectFault>>,
}

/// Asks for the daemon's status (`control.md`, "status").
#[derive(Debug, Message)]
#[rtype(result = "Status")]
pub struct GetStatus;

/// The daemon's status, as the control socket reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Whether syncing is paused.
    pub paused: bool,
    /// Whether the daemon is registered with a tracker (discovery is not built yet: false).
    pub tracking: bool,
    /// Whether peers outside the LAN can connect to us (`reach.reachable`).
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
    /// Where the web interface is served over HTTPS (absent: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_https: Option<String>,
    /// The address peers connect to.
    pub listen: Option<String>,
    /// How peers outside the LAN reach us: the peer port's addresses, the router's port
    /// mapping, the public address and NAT kind STUN saw, and a summary line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reach: Option<crate::reach::ReachStatus>,
    /// Connected peer sessions.
    pub peers: usize,
    /// Bytes sent to peers since the worker started (the protocol stream, before TLS).
    #[serde(default)]
    pub sent_bytes: u64,
    /// Bytes received from peers since the worker started.
    #[serde(default)]
    pub received_bytes: u64,
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

/// `get_config`: the daemon's settings as a JSON object, and where each comes from.
#[derive(Debug, Message)]
#[rtype(result = "super::cmd::ConfigAnswer")]
pub struct GetConfig;

/// `set_config` / `set_config_value`: check the values (all or nothing), save them in
/// `config.toml` and apply those that change at runtime; a setting that takes effect at the
/// next start is answered `needs_restart` (after it is saved).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct SetConfig(pub serde_json::Map<String, serde_json::Value>);

/// `web_login`: a one-time login link to the web interface.
#[derive(Debug, Message)]
#[rtype(result = "Result<String, CommandError>")]
pub struct WebLogin;

/// `set_web_password`: set (or with `None`, remove) the web interface's password.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct SetWebPassword(pub Option<String>);
