//! `untrusted.*` messages (`untrusted.md`, a draft: fields are typed loosely, and the
//! project's own format is fixed in `docs/protocol-decisions.md`).

use serde::{Deserialize, Serialize};

use crate::{PeerId, Sha256Hash, UntrustedFileId};

/// One file in an untrusted manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// The file's stable untrusted ID.
    pub id: UntrustedFileId,
    /// Update time, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utime: Option<u64>,
    /// Ciphertext size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Ciphertext hash, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256Hash>,
    /// The ID of an identical file (deduplication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<UntrustedFileId>,
}

/// A manifest an untrusted peer relays, with the bitmask of files it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSource {
    /// The signed manifest, verbatim.
    pub manifest: String,
    /// Base64 bitmask of the files present.
    pub bitmask: String,
}

/// `untrusted.manifest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The peer the manifest describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<PeerId>,
    /// Manifest version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// The encrypted manifest, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// Files and their ciphertext facts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<ManifestFile>,
    /// Relayed manifests (from an untrusted peer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<ManifestSource>,
}

/// `untrusted.update`: a file's encrypted change (`proof`) and its public facts (`file`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    /// The encrypted, signed plaintext update, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
    /// The file's public (or, in the plaintext form, full) metadata.
    pub file: serde_json::Value,
}

/// `untrusted.verify`: prove you store `file_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verify {
    /// The file to prove.
    pub file_id: UntrustedFileId,
    /// 32 random bytes, hex, hashed ahead of the file.
    pub prefix: Sha256Hash,
}

/// `untrusted.verify_result`: SHA-256 of prefix ‖ file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyResult {
    /// The file proved.
    pub file_id: UntrustedFileId,
    /// The hash.
    pub result: Sha256Hash,
}

/// `untrusted.verify_busy`: ask again later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyBusy {
    /// The file asked about.
    pub file_id: UntrustedFileId,
    /// Seconds to wait.
    pub retry_in: u64,
}
