//! The control protocol's commands as types (mini-redis's `cmd/`): one [`Request`] variant
//! per command, its fields in a struct of its own file, typed answers, and [`ErrorCode`]s.
//! The daemon parses lines into a [`Request`] and runs it; the CLI and the tests build a
//! [`Request`] and send it. The JSON is what it always was (`control.md`): `{"type": …}`
//! plus the command's keys, unknown keys ignored, and a field of the wrong type read as
//! absent, so old clients get the same answers. The answers are types too, read back by
//! the CLI: names sent as strings are enums ([`Mode`], [`SyncState`], …) that read a name
//! they do not know as `Unknown`.
//!
//! Adding a command: a struct (and its answer) in the file of its group, a variant here, and
//! its arm in `Request::run`; round-trip cases (command and answer) in `tests.rs`.

#[cfg(test)]
mod answer_tests;
mod code;
mod config;
mod daemon;
mod error;
pub(crate) mod field;
mod file;
mod history;
mod names;
mod share;
#[cfg(test)]
mod tests;
mod web;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use self::code::{CancelAccessCode, Codes, CreateAccessCode};
pub use self::config::{
    apply_settings, check_settings, settings_shown, ConfigAnswer, ConfigValue, GetConfigValue, SetConfig,
    SetConfigValue,
};
pub use self::daemon::{Done, InjectFault, Peers, RemovePeer, StatusAnswer};
pub use self::error::{CommandError, ErrorCode};
pub use self::field::Checked;
pub use self::file::{Chunk, End, FileUrl, ReadFile, ReadHeader, Url};
pub use self::history::{ListVersions, RestoreVersion, Revert};
pub(crate) use self::names::wire_names;
pub use self::names::Mode;
pub use self::share::{AddShare, AtPath, BackupReport, ConfirmDeletes, ExportedKeys, Held, Shares, VerifyBackup};
pub use self::web::{ListFiles, LoginLink, SetWebPassword};
// What the answers are made of, defined with their owners.
use super::ControlTargets;
pub use crate::access::messages::{CodeCreated, CodeEntry, CodeState};
pub use crate::connections::messages::{PeerEntry, PeerRemoved, PeerSource, PeerState};
pub use crate::control::messages::Status;
pub use crate::metrics::{Health, ShareHealth};
pub use crate::share::messages::{BackupCheck, FileEntry, HistoryAnswer, Listing, ShareStatus, SyncState};
pub use crate::shares::messages::{KeysRotated, ShareCreated};
pub use clearskies_index::versions::{Version, Why};

/// A command to the daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// The daemon's status, with the shares' health.
    Status,
    /// Pause transfers.
    Pause,
    /// Resume transfers.
    Resume,
    /// Stop the daemon (answered first).
    Stop,
    /// Connected and remembered peers.
    ListPeers,
    /// Disconnect a peer and refuse it from now on.
    RemovePeer(RemovePeer),
    /// Every share and its state.
    ListShares,
    /// Share a directory read-write.
    CreateShare(AtPath),
    /// Stop syncing a directory (its files stay).
    RemoveShare(AtPath),
    /// The share's keys of our level.
    ExportKeys(AtPath),
    /// New keys for every level of a read-write share.
    RotateKeys(AtPath),
    /// Record (or list) the deletions a share held back.
    ConfirmDeletes(ConfirmDeletes),
    /// The versions a share kept.
    ListVersions(ListVersions),
    /// Copy a kept version back.
    RestoreVersion(RestoreVersion),
    /// A read-only share drops its local changes.
    Revert(Revert),
    /// Challenge the share's untrusted peers.
    VerifyBackup(VerifyBackup),
    /// Join a share.
    AddShare(AddShare),
    /// A new access code (or username and password) for a share.
    CreateAccessCode(CreateAccessCode),
    /// The codes this daemon issued.
    ListAccessCodes,
    /// Refuse a code from now on.
    CancelAccessCode(CancelAccessCode),
    /// A loopback HTTP address for a file.
    FileUrl(FileUrl),
    /// A file's bytes, after the answer line.
    ReadFile(ReadFile),
    /// A page of a share's directory.
    ListFiles(ListFiles),
    /// A one-time login link to the web interface.
    WebLogin,
    /// Set or remove the web interface's password.
    SetWebPassword(SetWebPassword),
    /// Every setting.
    GetConfig,
    /// One setting.
    GetConfigValue(GetConfigValue),
    /// Change settings.
    SetConfig(SetConfig),
    /// Change one setting.
    SetConfigValue(SetConfigValue),
    /// Break something (only with `--danger-fault-injection`).
    InjectFault(InjectFault),
    /// Any other `type` (answered `not_understood`).
    #[serde(other, skip_serializing)]
    Unknown,
}

/// A command's answer line (`Ok`) or error line.
pub type Answer = Result<Value, CommandError>;

/// Work that must happen after the answer is written (so the client sees it).
#[derive(Debug)]
pub(crate) enum After {
    /// `stop`.
    Shutdown,
    /// The bytes of a `read_file`, written after its header line; framed or not.
    Stream(crate::share::messages::StreamRx, bool),
}

impl Request {
    /// Reads one command line. Not JSON, not an object, no `type` or an unknown one:
    /// `not_understood`, saying which.
    pub fn parse(line: &[u8]) -> Result<Request, CommandError> {
        let value: Value = match serde_json::from_slice(line) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return Err(CommandError::not_understood("a command must be a JSON object")),
            Err(e) => return Err(CommandError::not_understood(format!("malformed JSON: {e}"))),
        };
        let Some(kind) = value.get("type").and_then(Value::as_str).map(str::to_owned) else {
            return Err(CommandError::not_understood("the command has no \"type\""));
        };
        match serde_json::from_value(value) {
            Ok(Request::Unknown) => Err(unknown(&kind)),
            Ok(request) => Ok(request),
            // Every field is read leniently, so this is not expected.
            Err(e) => Err(CommandError::not_understood(format!("command {kind:?} cannot be read: {e}"))),
        }
    }

    /// Runs the command: its answer and what follows it.
    pub(crate) async fn run(self, targets: &ControlTargets) -> (Answer, Option<After>) {
        let answer = match self {
            Request::Status => daemon::status(targets).await,
            Request::Pause => daemon::pause(targets, true).await,
            Request::Resume => daemon::pause(targets, false).await,
            Request::Stop => return (to_json(&Done {}), Some(After::Shutdown)),
            Request::ListPeers => daemon::list_peers(targets).await,
            Request::RemovePeer(r) => r.run(targets).await,
            Request::ListShares => share::list(targets).await,
            Request::CreateShare(r) => r.create(targets).await,
            Request::RemoveShare(r) => r.remove(targets).await,
            Request::ExportKeys(r) => r.export_keys(targets).await,
            Request::RotateKeys(r) => r.rotate_keys(targets).await,
            Request::ConfirmDeletes(r) => r.run(targets).await,
            Request::VerifyBackup(r) => r.run(targets).await,
            Request::ListVersions(r) => r.run(targets).await,
            Request::RestoreVersion(r) => r.run(targets).await,
            Request::Revert(r) => r.run(targets).await,
            Request::AddShare(r) => r.run(targets).await,
            Request::CreateAccessCode(r) => r.run(targets).await,
            Request::ListAccessCodes => code::list(targets).await,
            Request::CancelAccessCode(r) => r.run(targets).await,
            Request::FileUrl(r) => r.run(targets).await,
            Request::ReadFile(r) => return r.run(targets).await,
            Request::ListFiles(r) => r.run(targets).await,
            Request::WebLogin => web::web_login(targets).await,
            Request::SetWebPassword(r) => r.run(targets).await,
            Request::GetConfig => config::get_all(targets).await,
            Request::GetConfigValue(r) => r.run(targets).await,
            Request::SetConfig(r) => r.run(targets).await,
            Request::SetConfigValue(r) => r.run(targets).await,
            Request::InjectFault(r) => match &targets.inject_fault {
                Some(inject) => r.run(inject).await,
                None => Err(unknown("inject_fault")),
            },
            Request::Unknown => Err(CommandError::not_understood("unknown command")),
        };
        (answer, None)
    }
}

fn unknown(kind: &str) -> CommandError {
    CommandError::not_understood(format!("unknown command {kind:?}"))
}

/// A typed answer as its line.
fn to_json<T: Serialize>(answer: &T) -> Answer {
    serde_json::to_value(answer).map_err(|_| CommandError::unavailable())
}

/// An actor's reply as an answer line.
fn reply<T: Serialize>(answer: Result<Result<T, CommandError>, actix::MailboxError>) -> Answer {
    match answer {
        Ok(Ok(v)) => to_json(&v),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(CommandError::unavailable()),
    }
}

/// A command's `path`, which must be absolute (the daemon's working directory means nothing
/// to the client).
fn absolute_path(path: Option<&str>) -> Result<PathBuf, CommandError> {
    match path {
        Some(p) if std::path::Path::new(p).is_absolute() => Ok(p.into()),
        Some(p) => Err(CommandError::new(ErrorCode::BadPath, format!("{p:?} is not an absolute path"))),
        None => Err(CommandError::new(ErrorCode::MissingPath, "the command needs a \"path\"")),
    }
}

/// A command's custom `username` and `password`, both or neither.
fn custom_credentials(
    username: Option<&String>,
    password: Option<&String>,
) -> Result<Option<(String, String)>, CommandError> {
    match (username, password) {
        (Some(u), Some(p)) => Ok(Some((u.clone(), p.clone()))),
        (None, None) => Ok(None),
        _ => Err(CommandError::new(
            ErrorCode::BadCredentials,
            "a \"username\" needs a \"password\" and the other way round",
        )),
    }
}
