//! `core.*` messages (`core.md`): handshake, key exchange, keep-alive.

use serde::{Deserialize, Serialize};

use crate::{PeerId, SecretKey, Sha256Hash};

/// An access level of a club.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLevel {
    /// May change and delete data.
    ReadWrite,
    /// May read all data but not change it.
    ReadOnly,
    /// Sees only ciphertext (the untrusted extension).
    Untrusted,
    /// A level this implementation does not know.
    #[serde(other)]
    Unknown,
}

/// `core.greeting`, sent by the server once the secure channel is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Greeting {
    /// Informational software name and version.
    #[serde(default)]
    pub software: String,
    /// Optional human-friendly name of the peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Supported protocol major versions.
    pub protocol: Vec<u64>,
    /// Supported extensions.
    #[serde(default)]
    pub extensions: Vec<String>,
    /// The server's peer ID for this club.
    pub peer: PeerId,
}

/// `core.start`, the client's choice of version and extensions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Start {
    /// Informational software name and version.
    #[serde(default)]
    pub software: String,
    /// The chosen protocol version.
    pub protocol: u64,
    /// The extensions to activate.
    #[serde(default)]
    pub extensions: Vec<String>,
    /// The client's peer ID for this club.
    pub peer: PeerId,
    /// Optional human-friendly name of the peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `core.keys`: the keys an access code grants, sent by the code's creator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keys {
    /// The level the receiver should use from now on.
    pub access_level: AccessLevel,
    /// One entry per access level the receiver learns something about.
    pub keys: Vec<KeyEntry>,
    /// This implementation's addition (ignored by others): once the share's keys were
    /// rotated, the seed of the untrusted extension's secrets (never to an untrusted peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untrusted_seed: Option<SecretKey>,
    /// This implementation's addition: how many times the share's keys were rotated.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One access level's keys in `core.keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEntry {
    /// The level these keys belong to.
    pub access_level: AccessLevel,
    /// Key ID (public, used for discovery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Sha256Hash>,
    /// The 256-bit communication key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<SecretKey>,
    /// PEM RSA private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_rsa: Option<String>,
    /// PEM RSA public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_rsa: Option<String>,
}

/// `.rs.clearskies.rekey` (this implementation's own message): after `keys rotate`, a
/// read-write peer hands a connected peer its level's new keys, as `core.keys` carries
/// them, with the seed of the untrusted extension's secrets (it stays what it was, so that
/// encrypted backups stay readable) and the rotation's `generation` (a receiver takes only
/// the next one: an old rekey replayed cannot move it back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rekey {
    /// The new keys of the receiver's level.
    pub keys: Keys,
    /// Peers removed from the share (peer IDs): the receiver refuses them too, and never
    /// passes the keys on to them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<crate::PeerId>,
}

/// `core.keys_acknowledgment`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysAcknowledgment {}

/// `core.ping`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Seconds the sender waits for our next ping before it drops the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}
