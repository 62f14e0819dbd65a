//! Shares: `list_shares`, `create_share`, `remove_share`, `export_keys`, `confirm_deletes`,
//! `verify_backup` and `add_share`.

use serde::{Deserialize, Serialize};

use super::{absolute_path, custom_credentials, field, reply, to_json, Answer, Checked, CommandError, ErrorCode};
use crate::connections::messages::{AddShare as AddShareMessage, JoinWith};
use crate::control::ControlTargets;
use crate::share::messages::{BackupCheck, ShareStatus};
use crate::shares::messages;

/// `list_shares`' answer: a list (what existing clients read), not `control.md`'s map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shares {
    /// Every share.
    pub shares: Vec<ShareStatus>,
}

/// `verify_backup`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupReport {
    /// Per untrusted peer.
    pub peers: Vec<BackupCheck>,
}

/// `export_keys`' answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedKeys {
    /// As `core.keys` carries them.
    pub keys: clearskies_protocol::message::core::Keys,
}

/// `confirm_deletes`' answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Deletions that were held (and, unless `dry_run`, are recorded by the scan that
    /// starts now).
    pub held: usize,
    /// Their paths in the share, deepest first; at most [`Held::MAX_LISTED`] (`held`
    /// counts them all).
    pub paths: Vec<String>,
    /// Nothing was confirmed: the answer only says what is held.
    pub dry_run: bool,
}

impl Held {
    /// Most paths an answer lists.
    pub const MAX_LISTED: usize = 1000;
}

pub(super) async fn list(targets: &ControlTargets) -> Answer {
    match targets.list_shares.send(messages::ListShares).await {
        Ok(shares) => to_json(&Shares { shares }),
        Err(_) => Err(CommandError::unavailable()),
    }
}

/// A command about the share (or directory) at `path`: `create_share`, `remove_share`,
/// `export_keys`, `rotate_keys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AtPath {
    /// An absolute path.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl AtPath {
    /// The command about `path`.
    pub fn new(path: impl Into<String>) -> Self {
        AtPath { path: Some(path.into()) }
    }

    pub(super) async fn create(self, targets: &ControlTargets) -> Answer {
        let path = absolute_path(self.path.as_deref())?;
        reply(targets.create_share.send(messages::CreateShare { path }).await)
    }

    pub(super) async fn remove(self, targets: &ControlTargets) -> Answer {
        let path = absolute_path(self.path.as_deref())?;
        reply(targets.remove_share.send(messages::RemoveShare { path }).await)
    }

    pub(super) async fn rotate_keys(self, targets: &ControlTargets) -> Answer {
        let path = absolute_path(self.path.as_deref())?;
        reply(targets.rotate_keys.send(messages::RotateKeys { path }).await)
    }

    pub(super) async fn export_keys(self, targets: &ControlTargets) -> Answer {
        let path = absolute_path(self.path.as_deref())?;
        reply(
            targets
                .export_keys
                .send(crate::access::messages::ExportKeys { path })
                .await
                .map(|r| r.map(|keys| ExportedKeys { keys })),
        )
    }
}

/// `confirm_deletes`: record the deletions a share held back, or with `dry_run` only list
/// them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConfirmDeletes {
    /// The share's root.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Only say what is held. Read strictly the safe way: anything present but `false`
    /// (`"true"`, `1`, `null`) is a dry run, so a mistyped one never records deletions.
    #[serde(default, deserialize_with = "field::present", skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<serde_json::Value>,
}

impl ConfirmDeletes {
    /// Whether this only lists: unless `dry_run` is absent or exactly `false`.
    pub fn is_dry_run(&self) -> bool {
        !matches!(self.dry_run, None | Some(serde_json::Value::Bool(false)))
    }

    pub(super) async fn run(self, targets: &ControlTargets) -> Answer {
        let path = absolute_path(self.path.as_deref())?;
        let msg = messages::ConfirmDeletes { path, dry_run: self.is_dry_run() };
        reply(targets.confirm_deletes.send(msg).await)
    }
}

/// `verify_backup`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VerifyBackup {
    /// The share's root.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// How many random files each peer must prove (default 3).
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
}

impl VerifyBackup {
    pub(super) async fn run(self, targets: &ControlTargets) -> Answer {
        let path = absolute_path(self.path.as_deref())?;
        let files = usize::try_from(self.files.unwrap_or(3)).unwrap_or(usize::MAX);
        let msg = messages::VerifyBackup { path, files };
        reply(targets.verify_backup.send(msg).await.map(|r| r.map(|peers| BackupReport { peers })))
    }
}

/// `add_share`: join a share with a `code`, a `username` and `password`, or saved `keys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AddShare {
    /// Where the share goes (created if missing).
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A `SYNC…` code.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// A custom username (with `password`).
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// A custom password (with `username`).
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// What `export_keys` gave under `keys`.
    #[serde(default, deserialize_with = "field::present", skip_serializing_if = "Option::is_none")]
    pub keys: Option<Checked<clearskies_protocol::message::core::Keys>>,
    /// `HOST:PORT` of a peer that has the share (without it, discovery looks for one).
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Seconds discovery may look (default 60, at most 600).
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Selective sync: only this subtree.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub subtree: Option<String>,
    /// Selective sync: gitignore-style patterns never synced here.
    #[serde(default, deserialize_with = "field::strings", skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

impl AddShare {
    /// What the share is joined with.
    pub(super) fn join_with(&self) -> Result<JoinWith, CommandError> {
        match &self.keys {
            Some(Checked::Valid(keys)) => return Ok(JoinWith::Keys(Box::new(keys.clone()))),
            Some(Checked::Invalid(e)) => {
                let message = format!("\"keys\" is not what export_keys gives: {e}");
                return Err(CommandError::new(ErrorCode::BadKeys, message));
            }
            None => {}
        }
        match (custom_credentials(self.username.as_ref(), self.password.as_ref())?, &self.code) {
            (Some((username, password)), None) => Ok(JoinWith::Custom { username, password }),
            (None, Some(code)) => Ok(JoinWith::Code(code.clone())),
            (Some(_), Some(_)) => Err(CommandError::new(
                ErrorCode::BadCredentials,
                "give a \"code\" or a \"username\" and \"password\", not both",
            )),
            (None, None) => Err(CommandError::new(
                ErrorCode::MissingCode,
                "the command needs a \"code\" (or a \"username\" and \"password\")",
            )),
        }
    }

    pub(super) async fn run(self, targets: &ControlTargets) -> Answer {
        let (path, with) = match (absolute_path(self.path.as_deref()), self.join_with()) {
            (Ok(path), Ok(with)) => (path, with),
            (Err(e), _) | (_, Err(e)) => return Err(e),
        };
        let selection = clearskies_index::filter::Selection { subtree: self.subtree, exclude: self.exclude };
        let msg = AddShareMessage { with, path, peer: self.peer, timeout: self.timeout, selection };
        reply(targets.add_share.send(msg).await)
    }
}
