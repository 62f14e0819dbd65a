//! What the control socket can ask of the rest of the worker.

use actix::Recipient;

use crate::supervisor::messages::{GetStatus, SetPaused, Shutdown};

/// The actors a control connection talks to, injected by the supervisor.
#[derive(Debug, Clone)]
pub struct ControlTargets {
    /// Daemon status.
    pub status: Recipient<GetStatus>,
    /// Pause and resume.
    pub pause: Recipient<SetPaused>,
    /// Clean stop.
    pub shutdown: Recipient<Shutdown>,
}
