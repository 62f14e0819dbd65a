//! `clearskies-monitor`: the long-lived process of a running daemon, which runs the worker
//! (`clearskies worker`) and restarts it when it crashes ([`supervise`]). It is launched by
//! `clearskies start` (in the background) and `clearskies start --foreground` (which becomes
//! it, `exec`), never by hand:
//!
//! ```text
//! clearskies-monitor --worker PATH/TO/clearskies [--danger-fault-injection]
//! ```
//!
//! A separate executable so that the monitor is small: the daemon's memory is the monitor's
//! and the worker's added up, and a monitor that was the whole `clearskies` binary (the
//! actors, RocksDB, the command line) mapped about 13 MiB of it to do this. It links std,
//! anyhow, rustix and tokio's runtime, signals, process and timer; `shared` is the part of
//! its source the `clearskies` binary compiles too.
//!
//! Exit status: 0 the worker stopped (on request or signal), 4 the daemon cannot start (the
//! worker said so, or the data directory is refused: see [`shared::Refused`]), 1 any other
//! error (printed on one line), 2 bad arguments.

mod logfile;
mod say;
mod shared;
mod supervise;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::supervise::{Outcome, Setup};

fn main() -> ExitCode {
    let (worker, fault_injection) = match arguments(std::env::args_os().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "clearskies-monitor: {e}\nusage: clearskies-monitor --worker PATH [--danger-fault-injection] (it is \
                 started by `clearskies start`)"
            );
            return ExitCode::from(2);
        }
    };
    let setup = match shared::data_dir() {
        Ok(data_dir) => Setup { data_dir, worker, fault_injection },
        Err(e) => return fail(&shared::Refused(format!("{e:#}")).into()),
    };
    match supervise::run(&setup) {
        Ok(Outcome::Stopped) => ExitCode::SUCCESS,
        Ok(Outcome::CannotStart) => ExitCode::from(shared::EXIT_CANNOT_START),
        Err(e) => fail(&e),
    }
}

/// Prints `e` on one line (its control characters escaped, as in the log) and gives the
/// exit status: 4 for a [`shared::Refused`], else 1.
fn fail(e: &anyhow::Error) -> ExitCode {
    let text = format!("{e:#}");
    let text: Vec<String> = text.split('\n').map(shared::escape_line).collect();
    let _ = writeln!(std::io::stderr(), "clearskies: {}", text.join("\n"));
    if e.chain().any(|c| c.is::<shared::Refused>()) {
        ExitCode::from(shared::EXIT_CANNOT_START)
    } else {
        ExitCode::FAILURE
    }
}

/// `--worker PATH` (required) and `--danger-fault-injection`.
fn arguments(mut args: impl Iterator<Item = OsString>) -> Result<(PathBuf, bool), String> {
    let (mut worker, mut fault_injection) = (None, false);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--worker") => worker = Some(PathBuf::from(args.next().ok_or("--worker needs a path")?)),
            Some("--danger-fault-injection") => fault_injection = true,
            _ => return Err(format!("unexpected argument {}", arg.to_string_lossy())),
        }
    }
    Ok((worker.ok_or("--worker PATH is required")?, fault_injection))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<(PathBuf, bool), String> {
        arguments(args.iter().map(OsString::from))
    }

    #[test]
    fn arguments_name_the_worker() {
        assert_eq!(parse(&["--worker", "/bin/cs"]), Ok((PathBuf::from("/bin/cs"), false)));
        assert_eq!(parse(&["--danger-fault-injection", "--worker", "/bin/cs"]), Ok((PathBuf::from("/bin/cs"), true)));
        assert!(parse(&[]).unwrap_err().contains("required"));
        assert!(parse(&["--worker"]).unwrap_err().contains("needs a path"));
        assert!(parse(&["--worker", "x", "start"]).unwrap_err().contains("unexpected argument start"));
    }
}
