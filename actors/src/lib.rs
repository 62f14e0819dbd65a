//! The ClearSkies daemon's actors.
//!
//! This is the only async crate of the workspace. Each actor lives in its own module, keeps
//! its handlers in `mod.rs` and its messages in `messages.rs`, and talks to the others only
//! through typed messages injected as `Recipient`s; see `ARCHITECTURE.md`. The actors drive
//! the pure state machines of `clearskies-protocol`, call the blocking index code of
//! `clearskies-index` (store, scan, apply) off their threads, and own every socket and timer.
//!
//! Call order: the `clearskies worker` process binds the control socket, builds a
//! [`Settings`], starts an actix `System` and in it a [`supervisor::Supervisor`], which starts
//! and wires the other actors. [`control::Control`] serves the control socket.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access;
pub mod bandwidth;
pub mod config;
pub mod connections;
pub mod control;
pub mod discovery;
pub mod listener;
pub mod metrics;
pub mod net;
pub mod peer;
pub mod reach;
pub mod share;
pub mod shares;
pub mod supervise;
pub mod supervisor;
pub mod transfer;
pub mod transport;
pub mod web;

use std::path::PathBuf;

pub use clearskies_protocol as protocol;

/// Our software name and version, as peers and control clients see it.
pub const SOFTWARE: &str = concat!("clearskies-rs ", env!("CARGO_PKG_VERSION"));

/// What the actors need to know about their environment, validated by the binary.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The data directory (`$CLEARSKIES_HOME` or the XDG default).
    pub data_dir: PathBuf,
    /// Path of the control socket.
    pub control_socket: PathBuf,
    /// Software name and version, as the control handshake reports it.
    pub software: String,
    /// What the monitor process tells the worker about itself.
    pub monitor: MonitorInfo,
    /// `--danger-fault-injection`: the control socket takes `inject_fault` (tests only).
    pub fault_injection: bool,
    /// Every setting (`config::SETTINGS`): as the worker started with it, the runtime ones
    /// as `config set` changed them since.
    pub config: config::Values,
    /// Where each setting's value came from (default, `config.toml`, the environment).
    pub sources: config::Sources,
}

/// The monitor's view: how long the daemon has run and how often its worker was restarted.
#[derive(Debug, Clone, Copy, Default)]
pub struct MonitorInfo {
    /// Unix time the monitor started (`None`: the worker runs without one).
    pub started: Option<u64>,
    /// Worker processes restarted after a crash before this one.
    pub restarts: u64,
}
