//! Helpers for running the built binary.

use std::process::{Command, Output};

/// A `clearskies` command with a private, empty data directory.
pub(crate) struct Clearskies {
    home: tempfile::TempDir,
}

impl Clearskies {
    pub(crate) fn new() -> Self {
        Clearskies { home: tempfile::tempdir().expect("creating a temp dir") }
    }

    /// Runs `clearskies ARGS…` to completion.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_clearskies"))
            .args(args)
            .env("CLEARSKIES_HOME", self.home.path())
            .env_remove("CLEARSKIES_LOG")
            .output()
            .expect("running the clearskies binary")
    }
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
