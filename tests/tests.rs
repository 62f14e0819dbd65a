//! Integration tests: they run the real `clearskies` binary as a process.
//!
//! One module per area, in one test binary (ripgrep style).

// A failed unwrap is a failed test, with its location: exactly what helpers here want.
#![allow(clippy::unwrap_used)]

mod attach;
mod browser;
mod cli;
mod code_spread;
mod config;
mod daemon;
mod dashboards;
mod discovery;
mod docker;
mod flood;
mod fs_safety;
mod hostile;
mod hostile_memory;
mod internet;
mod logs;
mod metrics;
mod packaging;
mod peers;
mod raw_client;
mod readonly;
mod refine_hostile;
mod security;
mod selective;
mod service;
mod shares;
mod streaming;
mod supervision;
mod sync;
mod terminal;
mod transfer;
mod untrusted;
mod untrusted_hostile;
mod util;
mod utp;
mod utp_hostile;
mod versions;
mod web;
