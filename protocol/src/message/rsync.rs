//! `rsync.*` messages (`rsync.md`).

use serde::{Deserialize, Serialize};

use crate::Sha256Hash;

/// `rsync.signature`: the signature of our copy of `path` is the attachment; answer with
/// a patch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The file the signature describes.
    pub path: String,
    /// This project's addition: the content hash the requester wants to reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256Hash>,
}

/// `rsync.patch`: the delta is the attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patch {
    /// The file the delta applies to.
    pub path: String,
    /// This project's addition: the content hash the patched file will have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256Hash>,
}
