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
    /// This project's extension `.rs.clearskies.rsync-refine` (only where both sides
    /// offered it): the attachment is a coarse signature, answered with a plan, or a plan
    /// and a fine signature, answered with a patch (see `rdiff::refine`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refine: Option<RefineStep>,
}

/// Which step of a refined delta an `rsync.signature` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefineStep {
    /// A coarse signature: answer with a plan.
    Coarse,
    /// A plan and a fine signature: answer with a patch.
    Fine,
}

/// `rsync.patch`: the delta is the attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patch {
    /// The file the delta applies to.
    pub path: String,
    /// This project's addition: the content hash the patched file will have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256Hash>,
    /// `.rs.clearskies.rsync-refine`: the attachment is a plan (the answer to a coarse
    /// signature), not a delta.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub plan: bool,
}
