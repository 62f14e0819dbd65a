//! A share's history: `list_versions`, `restore_version` and `revert`.

use serde::{Deserialize, Serialize};

use super::{absolute_path, field, reply, Answer, CommandError, ErrorCode};
use crate::control::ControlTargets;
use crate::share::messages::History;
use crate::shares::messages;

/// `list_versions`: the versions a share kept (of one `file`, or all). Answers
/// `{"versions":[…]}`, oldest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ListVersions {
    /// The share's root.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A file in the share (`a/b.jpg`).
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// `restore_version`: copy a kept version of `file` back (what is there now is kept as a
/// version first). Answers `{"restored": PATH, "version": {…}}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RestoreVersion {
    /// The share's root.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The file in the share.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Its time (`YYYYMMDD-HHMMSS` or a prefix, as text or a number) or stored name;
    /// absent: the latest. Anything else is refused (never read as "the latest").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<serde_json::Value>,
}

/// `revert`: a read-only share drops its local changes (moved into the versions) and gets
/// the read-write peers' version back. Answers `{"moved":[…],"restoring":[…]}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Revert {
    /// The share's root.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

async fn ask(targets: &ControlTargets, path: Option<&str>, op: History) -> Answer {
    let path = absolute_path(path)?;
    reply(targets.history.send(messages::History { path, op }).await)
}

impl ListVersions {
    pub(super) async fn run(self, targets: &ControlTargets) -> Answer {
        ask(targets, self.path.as_deref(), History::List { file: self.file }).await
    }
}

impl RestoreVersion {
    pub(super) async fn run(self, targets: &ControlTargets) -> Answer {
        let Some(file) = self.file else {
            return Err(CommandError::new(ErrorCode::MissingFile, "restore_version needs a \"file\""));
        };
        let version = match self.version {
            None => None,
            Some(serde_json::Value::String(s)) => Some(s),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            Some(_) => {
                return Err(CommandError::new(
                    ErrorCode::BadValue,
                    "\"version\" is a time like 20261206-071501, or a stored name",
                ));
            }
        };
        ask(targets, self.path.as_deref(), History::Restore { file, version }).await
    }
}

impl Revert {
    pub(super) async fn run(self, targets: &ControlTargets) -> Answer {
        ask(targets, self.path.as_deref(), History::Revert).await
    }
}
