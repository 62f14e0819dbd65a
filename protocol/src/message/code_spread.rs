//! `code_spread.*` messages (`code_spreading.md`).

use serde::{Deserialize, Serialize};

use crate::CodeSecret;

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
