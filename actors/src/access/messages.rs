//! Messages the [`super::Access`] owner handles.

use actix::Message;
use serde::{Deserialize, Serialize};

use crate::control::cmd::{wire_names, CommandError, Mode};
use crate::share::registry;

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
    pub lifetime: registry::Lifetime,
    /// Whether it may be used more than once.
    pub multi_use: bool,
    /// Custom credentials instead of a generated code: username and password.
    pub custom: Option<(String, String)>,
}

/// What `create_access_code` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

wire_names! {
    /// Where a code is in its life, as `list_access_codes` shows it (the registry's
    /// [`registry::CodeState`]).
    pub enum CodeState {
        /// It can be used.
        Active = "active",
        /// Its time ran out.
        Expired = "expired",
        /// A single-use code a peer has joined with.
        Used = "used",
        /// Cancelled (what `cancel_access_code` answers).
        Cancelled = "cancelled",
    }
}

impl From<registry::CodeState> for CodeState {
    fn from(state: registry::CodeState) -> CodeState {
        match state {
            registry::CodeState::Active => CodeState::Active,
            registry::CodeState::Expired => CodeState::Expired,
            registry::CodeState::Used => CodeState::Used,
            registry::CodeState::Cancelled => CodeState::Cancelled,
        }
    }
}

/// One line of `list_access_codes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeEntry {
    /// The public access ID.
    pub access_id: String,
    /// The custom username, if it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The share's root.
    pub path: String,
    /// The level it grants.
    pub mode: Mode,
    /// Active, expired or used.
    pub state: CodeState,
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
pub struct CancelCode(pub registry::CodeRef);

/// `export_keys`: the keys of the level we hold of the share at `path`, as `core.keys`
/// carries them, to keep somewhere safe.
#[derive(Debug, Message)]
#[rtype(result = "Result<clearskies_protocol::message::core::Keys, CommandError>")]
pub struct ExportKeys {
    /// The share's root.
    pub path: std::path::PathBuf,
}

/// From the registry: a share was removed. Its codes are gone from the index; forget them.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ShareRemoved(pub clearskies_protocol::Sha256Hash);

/// Connections → access: a peer of `share`, connected with a key or code of `level`, sent
/// these codes (`.rs.clearskies.code_spread`).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CodesFromPeer {
    /// The session's share.
    pub share: clearskies_protocol::Sha256Hash,
    /// The level the peer holds the share at.
    pub level: clearskies_protocol::message::core::AccessLevel,
    /// What it sent.
    pub codes: Vec<clearskies_protocol::message::code_spread::SpreadVerifier>,
}

/// Connections → access: the codes of `share` a peer at `level` may hold, to send it when
/// its session opens.
#[derive(Debug, Message)]
#[rtype(result = "Vec<clearskies_protocol::message::code_spread::SpreadVerifier>")]
pub struct SpreadableCodes {
    /// The share.
    pub share: clearskies_protocol::Sha256Hash,
    /// The peer's level.
    pub level: clearskies_protocol::message::core::AccessLevel,
}

/// Access → connections: a spread code changed here (issued, cancelled): send it to the
/// share's connected peers that may hold it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SpreadCode {
    /// The share.
    pub share: clearskies_protocol::Sha256Hash,
    /// The code as it is now.
    pub code: clearskies_protocol::message::code_spread::SpreadVerifier,
}
