//! Messages the [`super::Share`] actor handles.

use actix::Message;
use serde::Serialize;

/// Scan the share now (after start-up, a watcher overflow, or on request). Idempotent: a
/// request while a scan runs queues exactly one more scan.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Rescan;

/// The watcher saw a change (a hint: the debounced scan finds out what changed).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct FsChanged;

/// Stops the share's actor (the share was removed).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopShare;

/// Asks for the share's state, as `list_shares` shows it.
#[derive(Debug, Message)]
#[rtype(result = "ShareStatus")]
pub struct GetShareStatus;

/// What `list_shares` reports for one share.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShareStatus {
    /// The share root.
    pub path: String,
    /// `scanning`, `idle` or `error`.
    pub status: &'static str,
    /// Why the share is in error, if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Access level we hold.
    pub mode: &'static str,
    /// Live files in the index.
    pub files: u64,
    /// Live directories in the index (the root included).
    pub directories: u64,
    /// Bytes in live files.
    pub bytes: u64,
    /// Our revision counter.
    pub revision: u64,
    /// Whether every known peer has everything we have (no peers yet: true).
    pub synced: bool,
}
