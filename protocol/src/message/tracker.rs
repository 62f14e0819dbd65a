//! `tracker.*` messages (`core.md`, "Tracker Protocol").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{PeerId, Sha256Hash};

/// `tracker.greeting`, the tracker's first message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Greeting {
    /// Informational software name.
    #[serde(default)]
    pub software: String,
    /// Longest TTL the tracker accepts, in seconds.
    pub max_ttl: u64,
    /// Shortest TTL the tracker accepts, in seconds.
    pub min_ttl: u64,
    /// The client's address as the tracker sees it (IPv6 in brackets).
    #[serde(default)]
    pub your_ip: String,
    /// Supported tracker protocol versions.
    pub protocol: Vec<u64>,
    /// Supported tracker extensions.
    #[serde(default)]
    pub extensions: Vec<String>,
}

/// `tracker.start`, the client's choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Start {
    /// Informational software name.
    #[serde(default)]
    pub software: String,
    /// Chosen tracker protocol version.
    pub protocol: u64,
    /// How often, in seconds, the client promises to check in.
    pub ttl: u64,
    /// Extensions to activate.
    #[serde(default)]
    pub extensions: Vec<String>,
}

/// `tracker.connection`: every address the client can be reached at (`tcp:HOST:PORT`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// Addresses, repeated verbatim to other peers.
    pub addresses: Vec<String>,
}

/// `tracker.register`: access IDs and key IDs the client serves, each with its peer ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Register {
    /// ID → our peer ID for that club.
    pub ids: BTreeMap<Sha256Hash, PeerId>,
}

/// `tracker.peers`: the peers of one club, replacing earlier news about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peers {
    /// The access ID or key ID.
    pub id: Sha256Hash,
    /// Peer ID → addresses.
    pub peers: BTreeMap<PeerId, Vec<String>>,
}

/// `tracker.ping`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {}
