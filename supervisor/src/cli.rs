//! The raw command line (clap derive). Validation into a configuration happens in `main`.

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
    /// Access codes: make one, or check one someone sent you.
    #[command(subcommand)]
    Code(CodeCommand),
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
