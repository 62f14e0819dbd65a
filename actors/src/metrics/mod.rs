//! Metrics: every Prometheus collector in an explicit registry ([`registry`]), and the
//! health report. The `Web` actor (`crate::web`) serves them as `/metrics` and `/health`.
//!
//! Scrapes read the shares' state (files out of sync, last sync, errors) through the
//! share registry at scrape time; event counters are updated where the events happen (see
//! [`registry`]).

pub mod registry;

use serde::{Deserialize, Serialize};

pub use self::registry::{metrics, Metrics};
use crate::share::messages::{ShareStatus, SyncState};

/// The default port of `/metrics`, `/health` and the web interface.
pub const DEFAULT_PORT: u16 = 49222;

/// One share's part of the health report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareHealth {
    /// Share ID (hex).
    pub id: String,
    /// Share root: on the control socket only (`status`); `/health` over HTTP, open to
    /// anyone who can reach it, leaves it out (see [`Health::without_paths`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What the share is doing.
    pub status: SyncState,
    /// Caught up with every connected peer.
    pub synced: bool,
    /// Unix time since which it has been in sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_sync_since: Option<u64>,
    /// Unix time it was last seen in sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_synced: Option<u64>,
    /// Connected peers.
    pub peers: usize,
    /// Why it is in error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Read-only shares: changes made here that are never sent.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub local_changes: u64,
    /// Unix time since which no peer has been connected, once longer than
    /// `peers_gone_after` (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alone_since: Option<u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Whether the daemon is doing its job: `healthy` is false when any share is in error
/// (missing root, index failure); `in_sync` when every share is caught up with its peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// No share is in error.
    pub healthy: bool,
    /// Every share is in sync.
    pub in_sync: bool,
    /// Per share.
    pub shares: Vec<ShareHealth>,
}

/// The health report for these shares' statuses.
pub fn health(shares: &[ShareStatus]) -> Health {
    let shares: Vec<ShareHealth> = shares
        .iter()
        .map(|s| ShareHealth {
            id: s.id.clone(),
            path: Some(s.path.clone()),
            status: s.status,
            synced: s.synced,
            in_sync_since: s.in_sync_since,
            last_synced: s.last_synced,
            peers: s.peers,
            error: s.error.clone(),
            local_changes: s.local_changes,
            alone_since: s.alone_since,
        })
        .collect();
    Health {
        // A share no peer has reached for `peers_gone_after` is not healthy either: nothing
        // in it is being synced anywhere.
        healthy: shares.iter().all(|s| s.status != SyncState::Error && s.alone_since.is_none()),
        in_sync: shares.iter().all(|s| s.synced),
        shares,
    }
}

impl Health {
    /// The report as `/health` serves it to whoever asks: no share root, and the root
    /// replaced by "the share root" in error texts. Shares are told apart by their ID.
    pub fn without_paths(mut self) -> Self {
        for s in &mut self.shares {
            let Some(root) = s.path.take() else { continue };
            if let Some(e) = s.error.as_mut().filter(|_| !root.is_empty()) {
                *e = e.replace(&root, "the share root");
            }
        }
        self
    }
}

/// Puts the index's memory figures into `clearskies_index_memory_bytes` (left as they were
/// when RocksDB cannot tell, or the database is closing).
pub(crate) fn record_index_memory(probe: &clearskies_index::store::MemoryProbe) {
    let m = match probe.read() {
        Ok(Some(m)) => m,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the index's memory figures");
            return;
        }
    };
    let parts = [m.memtables, m.table_readers, m.block_cache];
    for (part, bytes) in registry::INDEX_MEMORY_PARTS.into_iter().zip(parts) {
        metrics().index_memory.with_label_values(&[part]).set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}

/// Puts the shares' state into the per-share gauges (shares that are gone disappear).
pub(crate) fn record_shares(shares: &[ShareStatus]) {
    let m = metrics();
    for g in [&m.files_out_of_sync, &m.bytes_out_of_sync, &m.last_sync, &m.share_error, &m.share_peers_gone] {
        g.reset();
    }
    for s in shares {
        let id = [s.id.as_str()];
        m.files_out_of_sync.with_label_values(&id).set(i64::try_from(s.pending_files).unwrap_or(i64::MAX));
        m.bytes_out_of_sync.with_label_values(&id).set(i64::try_from(s.pending_bytes).unwrap_or(i64::MAX));
        m.last_sync.with_label_values(&id).set(s.last_synced.and_then(|t| i64::try_from(t).ok()).unwrap_or(0));
        m.share_error.with_label_values(&id).set(i64::from(s.status == SyncState::Error));
        m.share_peers_gone.with_label_values(&id).set(i64::from(s.alone_since.is_some()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_over_http_has_no_paths() {
        let h = Health {
            healthy: false,
            in_sync: false,
            shares: vec![ShareHealth {
                id: "ab12".into(),
                path: Some("/home/u/Secret Project".into()),
                status: SyncState::Error,
                synced: false,
                in_sync_since: None,
                last_synced: None,
                peers: 0,
                error: Some("run `clearskies confirm-deletes /home/u/Secret Project`".into()),
                local_changes: 0,
                alone_since: None,
            }],
        };
        let text = serde_json::to_string(&h.without_paths()).unwrap();
        assert!(!text.contains("Secret") && !text.contains("\"path\""), "{text}");
        assert!(text.contains("confirm-deletes the share root") && text.contains("ab12"), "{text}");
    }
}
