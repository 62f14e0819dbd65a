//! The raw command line (clap derive). Validation into a configuration happens in `config`.

use clap::{Parser, Subcommand};

/// ClearSkies: friend-to-friend folder sync.
#[derive(Debug, Parser)]
#[command(name = "clearskies", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Start the daemon (in the background unless --foreground).
    Start {
        /// Stay attached to the terminal and log to stderr.
        #[arg(long)]
        foreground: bool,
    },
    /// Stop the daemon.
    Stop,
    /// Show the daemon's status.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Pause syncing.
    Pause,
    /// Resume syncing.
    Resume,
    /// Access codes: make one, or check one someone sent you.
    #[command(subcommand)]
    Code(CodeCommand),
    /// The worker process (started by the monitor; not for direct use).
    #[command(hide = true)]
    Worker,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CodeCommand {
    /// Generate a fresh access code from the OS random number generator.
    New {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check an access code (typos are caught by its check symbol) and show its public
    /// access ID. Accepts the `clearskies://directory/` form and any letter case.
    Inspect {
        /// The code, e.g. SYNC… or clearskies://directory/SYNC…
        code: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}
