//! Messages the [`super::Connections`] owner handles.

use std::collections::BTreeSet;

use actix::Message;
use clearskies_protocol::Sha256Hash;
use serde::{Deserialize, Serialize};

use crate::control::cmd::{wire_names, CommandError};
use crate::shares::messages::ShareCreated;

/// What a peer joins a share with.
#[derive(Debug, Clone)]
pub enum JoinWith {
    /// A `SYNC…` code (or its URL form), as typed.
    Code(String),
    /// A username and password the sharer chose.
    Custom {
        /// Username.
        username: String,
        /// Password.
        password: String,
    },
    /// Keys saved with `export_keys` (restoring a share, e.g. from an untrusted backup,
    /// when no peer can give a code).
    Keys(Box<clearskies_protocol::message::core::Keys>),
}

/// `add_share`: join a share with an access code, through the peer at `peer`.
#[derive(Debug, Message)]
#[rtype(result = "Result<ShareCreated, CommandError>")]
pub struct AddShare {
    /// The code or the custom credentials.
    pub with: JoinWith,
    /// Where the share goes (created if missing).
    pub path: std::path::PathBuf,
    /// `HOST:PORT` of a peer that has the share; without it, discovery looks for one.
    pub peer: Option<String>,
    /// How long discovery may look, in seconds (default 60, at most 600).
    pub timeout: Option<u64>,
    /// Selective sync: only a subtree, and patterns never synced here.
    pub selection: clearskies_index::filter::Selection,
}

/// `list_peers`: connected sessions and remembered peers being dialled.
#[derive(Debug, Message)]
#[rtype(result = "Vec<PeerEntry>")]
pub struct ListPeers;

wire_names! {
    /// A `list_peers` line's `state`.
    pub enum PeerState {
        /// A session is up.
        Connected = "connected",
        /// Discovery found the address; not dialled (yet).
        Found = "found",
        /// Being dialled.
        Dialing = "dialing",
        /// Was connected since the daemon started; not now.
        Offline = "offline",
    }
}

wire_names! {
    /// Where `list_peers` knows an address from (the discovery sources by the names
    /// discovery reports them with).
    pub enum PeerSource {
        /// Given on attach or configured.
        Manual = "manual",
        /// The peer connected to us.
        Incoming = "incoming",
        /// A tracker.
        Tracker = "tracker",
        /// A LAN broadcast.
        Lan = "lan",
    }
}

/// One line of `list_peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerEntry {
    /// The share's root.
    pub path: String,
    /// The share's ID.
    pub share: String,
    /// The peer's ID, once a session has told us.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// `HOST:PORT`.
    pub address: String,
    /// Connected, found or dialing.
    pub state: PeerState,
    /// Where we know the address from.
    pub source: PeerSource,
    /// Failed dial attempts since the last success (dialing only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failures: Option<u32>,
    /// The name the peer gives itself (its `device_name` or host name), once a session
    /// told us.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The access level of the key or code its session was opened with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_level: Option<crate::control::cmd::Mode>,
    /// How the session runs (`tcp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// Unix time the peer was last connected (now, while it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<i64>,
    /// Bytes sent to it over its current (or last) session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_bytes: Option<u64>,
    /// Bytes received from it over its current (or last) session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_bytes: Option<u64>,
}

/// From the registry: a share is running (it is in the table now). Dial `dial` at once;
/// `remember` are addresses a live connection came from (dialled again when it ends).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ShareStarted {
    /// The share.
    pub id: Sha256Hash,
    /// Addresses (`HOST:PORT`) to dial now.
    pub dial: Vec<String>,
    /// Addresses shown as remembered peers without a dial.
    pub remember: Vec<String>,
}

/// From the registry: a share stopped (it is out of the table). A removed share's dials
/// and discovered addresses are forgotten; a restarting one's sessions are closed (their
/// links point at the dead actor, and the peers dial again).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ShareStopped {
    /// The share.
    pub id: Sha256Hash,
    /// Removed by the user (rather than restarting after a crash).
    pub removed: bool,
}

/// From access: the codes whose access IDs discovery announces, with their share and expiry.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CodeIds(pub Vec<(Sha256Hash, Sha256Hash, Option<i64>)>);

/// From the supervisor: the discovery actor to tell what to announce (again after it was
/// restarted).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct UseDiscovery(pub actix::Addr<crate::discovery::Discovery>);

/// From the supervisor: a connection's actor panicked.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PeerCrashed(pub Option<u64>);

/// The shares whose known peers refused our key at the last dial.
#[derive(Debug, Message)]
#[rtype(result = "BTreeSet<Sha256Hash>")]
pub struct AuthRefused;

/// How many peer sessions are up.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct CountPeers;

/// Fault injection: a fault for the sessions of `share` (or every session); answers how
/// many sessions got it.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct SessionFault {
    /// Which share's sessions (`None`: all).
    pub share: Option<Sha256Hash>,
    /// The fault.
    pub fault: crate::peer::messages::PeerFault,
    /// Only the first matching session.
    pub one: bool,
}

/// `remove_peer`: disconnect a peer (by its ID or an 8+ digit prefix, as `list_peers`
/// shows it) from a share (`path`, or every share it is connected to) and refuse it from
/// then on.
#[derive(Debug, Message)]
#[rtype(result = "Result<PeerRemoved, CommandError>")]
pub struct RemovePeer {
    /// The peer ID or its first 8+ hex digits.
    pub peer: String,
    /// Only in this share.
    pub path: Option<std::path::PathBuf>,
}

/// What `remove_peer` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRemoved {
    /// The whole peer ID.
    pub peer: String,
    /// The shares it is refused in.
    pub paths: Vec<String>,
    /// Connections closed.
    pub disconnected: usize,
}

/// From the registry: send each connected peer of `share` the signed rekey of its level
/// (`rekeys`). Answers how many were sent one.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct SendRekey {
    /// The share (its ID before the rotation).
    pub share: Sha256Hash,
    /// Removed peers: never sent the keys.
    pub skip: Vec<clearskies_protocol::PeerId>,
    /// The signed `.rs.clearskies.rekey` per level.
    pub rekeys: Vec<(clearskies_protocol::message::core::AccessLevel, clearskies_index::record::Signed)>,
}

/// The worker is stopping: uTP sessions are closed now (their end is ours to send), and
/// sessions coming up from now on are refused.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CloseUtpSessions;
