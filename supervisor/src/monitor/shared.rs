//! What the `clearskies` command, the monitor (`clearskies-monitor`) and the worker agree on:
//! the data directory and its files, the environment variables the monitor hands the worker,
//! the exit status of a daemon that cannot start, and how log lines are escaped.
//!
//! Compiled into both executables (`#[path]` in `supervisor/src/main.rs`): it uses std and
//! anyhow only, so that the monitor stays small.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Exit status of a daemon that cannot start (a busy port, an unusable data dir or index,
/// another daemon on the data dir): restarting it would fail the same way, so neither the
/// monitor nor the service managers (`RestartPreventExitStatus`) do.
pub(crate) const EXIT_CANNOT_START: u8 = 4;

/// Set by the monitor for the worker: the monitor's start (unix seconds).
pub(crate) const MONITOR_STARTED_ENV: &str = "CLEARSKIES_MONITOR_STARTED";
/// Set by the monitor for the worker: workers restarted after a crash so far.
pub(crate) const WORKER_RESTARTS_ENV: &str = "CLEARSKIES_WORKER_RESTARTS";
/// Set by `clearskies start` for the monitor it launches: its stdout and stderr are
/// `DIR/log`, and it owns that file (an internal variable, not for users).
pub(crate) const OWN_LOG_ENV: &str = "CLEARSKIES_MONITOR_OWNS_LOG";

/// The control socket, in the data dir.
pub(crate) const CONTROL_SOCKET: &str = "control";
/// The monitor's pid, in the data dir.
pub(crate) const MONITOR_PID_FILE: &str = "monitor.pid";
/// The log of a daemon started in the background, in the data dir.
pub(crate) const LOG_FILE: &str = "log";

/// The data dir: `$CLEARSKIES_HOME`, else `$XDG_DATA_HOME/clearskies`, else
/// `~/.local/share/clearskies`; an absolute path.
pub(crate) fn data_dir() -> anyhow::Result<PathBuf> {
    let from_env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let dir = if let Some(home) = from_env("CLEARSKIES_HOME") {
        home
    } else if let Some(xdg) = from_env("XDG_DATA_HOME") {
        xdg.join("clearskies")
    } else if let Some(home) = from_env("HOME") {
        home.join(".local/share/clearskies")
    } else {
        bail!("cannot find a data directory: set CLEARSKIES_HOME or HOME");
    };
    if !dir.is_absolute() {
        bail!("the data directory must be an absolute path, not {}", dir.display());
    }
    Ok(dir)
}

/// Creates `dir` (mode 0700) if needed, and takes group and other permissions off it.
pub(crate) fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))?;
    let mode = fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode & !0o077))
            .with_context(|| format!("making {} private", dir.display()))?;
    }
    Ok(())
}

/// The daemon cannot start with this data directory, found before any worker is started:
/// another daemon runs with it, it is unusable, or its control socket's path is too long.
/// Exit status [`EXIT_CANNOT_START`], like a worker that cannot start: starting again would
/// fail the same way.
#[derive(Debug)]
pub(crate) struct Refused(pub(crate) String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Refuses a control socket path a unix socket cannot have (on Linux at most 107 bytes).
pub(crate) fn check_socket_path(socket: &Path) -> Result<(), Refused> {
    if std::os::unix::net::SocketAddr::from_pathname(socket).is_ok() {
        return Ok(());
    }
    Err(Refused(format!(
        "the control socket path {} is too long for a unix socket ({} bytes; at most 107 on Linux): set \
         CLEARSKIES_HOME to a shorter directory",
        socket.display(),
        socket.as_os_str().len()
    )))
}

/// `line` with every character that could forge or hide log text escaped as Rust does
/// (`\n`, `\u{1b}`), except one trailing newline: file names, peer messages and error texts
/// reach the log from outside (see `log`).
pub(crate) fn escape_line(line: &str) -> String {
    let (body, end) = match line.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (line, ""),
    };
    if !body.chars().any(hides_text) {
        return line.to_owned();
    }
    let mut out = String::with_capacity(line.len() + 16);
    for c in body.chars() {
        if hides_text(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push_str(end);
    out
}

/// Control characters (C0, DEL, C1) and the Unicode format characters that reorder or hide
/// text (bidi marks, overrides and isolates, zero-width characters, tags). The same set as
/// `clearskies_actors::peer::messages::hides_text` (a test in `log` checks every character):
/// the monitor cannot link the actors crate and stay small.
pub(crate) fn hides_text(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
                | '\u{e0000}'..='\u{e007f}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_control_socket_path_must_fit_a_unix_socket() {
        // 107 bytes and the NUL fill Linux's sun_path.
        assert!(check_socket_path(Path::new(&format!("/{}", "a".repeat(106)))).is_ok());
        let e = check_socket_path(Path::new(&format!("/{}", "a".repeat(107)))).unwrap_err().to_string();
        assert!(e.contains("too long") && e.contains("108 bytes") && e.contains("CLEARSKIES_HOME"), "{e}");
    }
}
