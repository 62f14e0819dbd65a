//! `directory.*` messages (`directory.md`).

use serde::{Deserialize, Serialize};

use crate::Sha256Hash;

/// A byte range `[start, length]`, as `directory.get` and `directory.data` carry it.
pub type Range = [u64; 2];

/// `directory.get_presence`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetPresence {}

/// `directory.bloom_filter`; the filter bytes are the attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BloomFilter {
    /// Bits set per file (1..=8).
    pub k_value: u64,
}

/// `directory.present`: we now have this content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Present {
    /// Content hash.
    pub sha256: Sha256Hash,
}

/// `directory.get`: send me this content (or part of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Get {
    /// Content hash.
    pub sha256: Sha256Hash,
    /// Optional `[start, length]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<Range>,
}

/// `directory.data`; the contents are the attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Data {
    /// Content hash.
    pub sha256: Sha256Hash,
    /// The `[start, length]` this attachment covers, if a range was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<Range>,
}

/// `directory.not_present`: I do not have this content (yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotPresent {
    /// Content hash.
    pub sha256: Sha256Hash,
}

/// `directory.get_error`: I cannot serve this content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetError {
    /// Content hash.
    pub sha256: Sha256Hash,
    /// Human-readable reason.
    #[serde(default)]
    pub message: String,
}
