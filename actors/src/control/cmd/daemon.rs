//! `status`, `pause`, `resume`, `stop`, `list_peers`, `remove_peer` and `inject_fault`.

use std::time::Duration;

use actix::Recipient;
use serde::{Deserialize, Serialize};

use super::{field, reply, to_json, Answer, CommandError, ErrorCode};
use crate::connections::messages::{ListPeers, PeerEntry};
use crate::control::messages::{self, Fault, GetStatus, SetPaused, Status};
use crate::control::ControlTargets;
use crate::shares::messages::ListShares;

/// The answer of a command that returns nothing: `{}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {}

/// `status`'s answer: the daemon's status and the shares' health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusAnswer {
    /// The daemon.
    #[serde(flatten)]
    pub status: Status,
    /// What `/health` says.
    pub health: crate::metrics::Health,
}

/// `list_peers`' answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peers {
    /// Connected sessions and remembered peers.
    pub peers: Vec<PeerEntry>,
}

pub(super) async fn status(targets: &ControlTargets) -> Answer {
    match (targets.status.send(GetStatus).await, targets.list_shares.send(ListShares).await) {
        (Ok(status), Ok(shares)) => to_json(&StatusAnswer { status, health: crate::metrics::health(&shares) }),
        _ => Err(CommandError::unavailable()),
    }
}

pub(super) async fn pause(targets: &ControlTargets, pause: bool) -> Answer {
    match targets.pause.send(SetPaused(pause)).await {
        Ok(()) => to_json(&Done {}),
        Err(_) => Err(CommandError::unavailable()),
    }
}

pub(super) async fn list_peers(targets: &ControlTargets) -> Answer {
    match targets.list_peers.send(ListPeers).await {
        Ok(peers) => to_json(&Peers { peers }),
        Err(_) => Err(CommandError::unavailable()),
    }
}

/// `remove_peer`: disconnect a peer and refuse it from now on. Answers
/// `{"peer": ID, "paths": [...], "disconnected": N}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RemovePeer {
    /// The peer ID, or its first 8+ hex digits.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Only in the share at this path (needed for a peer that is not connected).
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl RemovePeer {
    pub(super) async fn run(self, targets: &ControlTargets) -> Answer {
        let Some(peer) = self.peer else {
            return Err(CommandError::new(
                ErrorCode::BadPeer,
                "remove_peer needs a \"peer\" (an ID as list_peers shows it)",
            ));
        };
        let path = self.path.as_deref().map(|p| super::absolute_path(Some(p))).transpose()?;
        reply(targets.remove_peer.send(crate::connections::messages::RemovePeer { peer, path }).await)
    }
}

/// `inject_fault` (only with `--danger-fault-injection`; otherwise `not_understood`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InjectFault {
    /// `panic`, `stall` or `fail_db_write`.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// For `panic`: discovery, listener, share, transfer, control, metrics or peer.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// For `stall`: how long (at most an hour).
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u64>,
    /// The share, for share, transfer and peer faults.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl InjectFault {
    pub(super) async fn run(self, inject: &Recipient<messages::InjectFault>) -> Answer {
        let actor = self.actor.as_deref().and_then(crate::supervise::ActorKind::from_name);
        let fault = match (self.fault.as_deref(), actor, self.seconds) {
            (Some("panic"), Some(actor), _) => Fault::Panic(actor),
            (Some("stall"), _, Some(s)) => Fault::Stall(Duration::from_secs(s.min(3600))),
            (Some("fail_db_write"), _, _) => Fault::FailNextWrite,
            _ => {
                let usage = "fault: \"panic\" with \"actor\" (discovery, listener, share, transfer, control, \
                             metrics, peer), \"stall\" with \"seconds\", or \"fail_db_write\"";
                return Err(CommandError::new(ErrorCode::BadFault, usage));
            }
        };
        let path = self.path.map(std::path::PathBuf::from);
        reply(inject.send(messages::InjectFault { fault, path }).await)
    }
}
