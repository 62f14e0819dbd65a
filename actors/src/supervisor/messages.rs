//! Messages the [`super::Supervisor`] handles.

use actix::Message;
use serde::Serialize;

/// Asks for the daemon's status (`control.md`, "status").
#[derive(Debug, Message)]
#[rtype(result = "Status")]
pub struct GetStatus;

/// The daemon's status, as the control socket reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// Whether syncing is paused.
    pub paused: bool,
    /// Whether the daemon is registered with a tracker (discovery is not built yet: false).
    pub tracking: bool,
    /// Whether NAT traversal succeeded (not built: false).
    pub nat_punctured: bool,
    /// Bytes per second sent to peers.
    pub upload_rate: u64,
    /// Bytes per second received from peers.
    pub download_rate: u64,
    /// Software name and version.
    pub software: String,
    /// The worker's process ID.
    pub pid: u32,
    /// Seconds since the worker started.
    pub uptime_seconds: u64,
}

/// Pauses or resumes syncing.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SetPaused(pub bool);

/// Stops the worker cleanly.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;
