//! `code_spread.*` messages (`code_spreading.md`), and this project's own form of the
//! extension, `.rs.clearskies.code_spread`, which spreads each code's SRP verifier instead of
//! the code (see [`Verifiers`] and docs/protocol-decisions.md).

use serde::{Deserialize, Serialize};

use super::core::AccessLevel;
use crate::{CodeSecret, Sha256Hash};

/// The extension string of this project's form of code spreading.
pub const EXT_CODE_SPREAD: &str = ".rs.clearskies.code_spread";
/// Codes at most in one [`Verifiers`] message (more is a protocol error).
pub const MAX_SPREAD: usize = 64;

/// When a spread code expires: `false` for never, or Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Expiration {
    /// `false` (never). `true` is accepted and read as "never" too.
    Never(bool),
    /// Expires at these Unix seconds.
    At(u64),
}

/// One access code's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpreadCode {
    /// The code's 16 secret bytes.
    pub code: CodeSecret,
    /// Single-use.
    #[serde(default)]
    pub one_time: bool,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// Expiry.
    pub expiration: Expiration,
    /// Last change, Unix seconds; only newer records replace older ones.
    pub update_time: u64,
    /// Cancelled.
    #[serde(default)]
    pub revoked: bool,
    /// A single-use code that has been used.
    #[serde(default)]
    pub used: bool,
}

/// `code_spread.list`: every known code, sent when a connection opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct List {
    /// The codes.
    pub codes: Vec<SpreadCode>,
}

/// `code_spread.update`: codes that changed since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    /// The codes.
    pub codes: Vec<SpreadCode>,
}

/// One long-lived code as this project spreads it: its SRP salt and verifier, never the code
/// or the password. A peer that holds it can admit a joiner (SRP needs only the verifier),
/// but cannot join anywhere with it, and a peer that leaks it leaks no password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpreadVerifier {
    /// The code's access ID (what a joiner names in SRP, and discovery looks for).
    pub access_id: Sha256Hash,
    /// The level the code grants.
    pub level: AccessLevel,
    /// The SRP salt, hex.
    pub salt: String,
    /// The SRP verifier, hex.
    pub verifier: String,
    /// For a custom username and password: the username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Whether more than one peer may join with it.
    pub multi_use: bool,
    /// Unix seconds when it was issued.
    pub created: i64,
    /// Unix seconds after which it is refused (`None`: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
    /// Unix seconds of its last change; a record replaces another only if newer.
    pub update_time: i64,
    /// Cancelled: kept (until it expires) so that the cancellation spreads too.
    #[serde(default)]
    pub revoked: bool,
}

/// `.rs.clearskies.code_spread`: the sender's long-lived codes of this share that the
/// receiver may hold (all of them when a connection opens; then the ones that changed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verifiers {
    /// At most [`MAX_SPREAD`].
    pub codes: Vec<SpreadVerifier>,
}
