//! The monitor: the long-lived process `clearskies start` leaves behind. It runs the worker
//! as a child process and restarts it whenever it crashes, with exponential backoff: 0.5 s
//! after the first crash of a streak, doubling with each further one up to [`MAX_BACKOFF`]
//! (5 minutes). A worker that ran [`STABLE`] (60 s) or longer before it crashed starts a
//! new streak. From the [`BURST`]th crash of a streak on (5 crashes, each within 60 s of its
//! start), every crash is logged as an error saying when the next attempt comes. The
//! monitor never gives up on a crashing worker for good: a worker killed again and again
//! (the kernel's OOM killer, a poisoned input that crashes it at start) is tried every
//! 5 minutes until what kills it goes away. It stops only when the worker says it cannot
//! start (exit status 4: restarting would not help) or on SIGTERM/SIGINT, which stop the
//! worker cleanly (through its control socket, SIGKILL after a grace period) and then the
//! monitor.
//!
//! One monitor per data directory: it holds an exclusive lock on `monitor.lock` for its
//! life, and refuses to start (exit status 4, touching nothing) while another monitor holds
//! it or a worker answers on the control socket. It also refuses a data directory whose
//! control socket path is too long for a unix socket, before starting any worker.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};

use crate::logfile::{Drain, LogFile};
use crate::say::{error, info, warn};
use crate::shared::{check_socket_path, Refused, EXIT_CANNOT_START, OWN_LOG_ENV};

/// Crashes in a streak from which each one is logged as an error (a crash loop).
pub(crate) const BURST: u32 = 5;
/// A worker that ran this long before crashing starts a new streak.
pub(crate) const STABLE: Duration = Duration::from_secs(60);
/// The longest wait before a restart.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(300);

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const STOP_GRACE: Duration = Duration::from_secs(15);

/// How the monitor ended.
pub(crate) enum Outcome {
    /// The worker stopped cleanly (on request or signal).
    Stopped,
    /// The worker cannot start (it said so with its exit code); restarting would not help.
    CannotStart,
}

/// The wait before restarting a worker after the `streak`th crash in a row (1-based): 0.5 s,
/// doubling, at most [`MAX_BACKOFF`].
pub(crate) fn backoff(streak: u32) -> Duration {
    let exponent = streak.saturating_sub(1).min(16);
    FIRST_BACKOFF.saturating_mul(1 << exponent).min(MAX_BACKOFF)
}

/// The file the running monitor holds locked (never removed: a lock on a file that can be
/// unlinked and created again would not exclude anyone).
const LOCK_FILE: &str = "monitor.lock";

/// What the monitor runs: where, and which worker.
#[derive(Debug)]
pub(crate) struct Setup {
    /// The data directory.
    pub(crate) data_dir: PathBuf,
    /// The `clearskies` executable, run as `clearskies worker`.
    pub(crate) worker: PathBuf,
    /// `--danger-fault-injection`, passed on to the worker.
    pub(crate) fault_injection: bool,
}

impl Setup {
    fn control_socket(&self) -> PathBuf {
        self.data_dir.join(crate::shared::CONTROL_SOCKET)
    }

    fn pid_file(&self) -> PathBuf {
        self.data_dir.join(crate::shared::MONITOR_PID_FILE)
    }
}

/// What a second daemon on this data directory is told.
fn already_running(setup: &Setup) -> Refused {
    let pid = std::fs::read_to_string(setup.pid_file()).ok().map(|p| p.trim().to_owned());
    let who = pid.filter(|p| !p.is_empty()).map(|p| format!(" (monitor pid {p})")).unwrap_or_default();
    Refused(format!(
        "another clearskies daemon is already running with the data directory {}{who}; stop it with `clearskies \
         stop`, or give this one another CLEARSKIES_HOME",
        setup.data_dir.display()
    ))
}

/// Makes this process the data directory's monitor: takes the lock, which must be free,
/// and checks that no worker answers on the control socket (one whose monitor was killed).
/// The lock is held as long as the returned file is open (it is not inherited by the
/// worker: the file is opened close-on-exec).
fn claim(setup: &Setup) -> anyhow::Result<std::fs::File> {
    let path = setup.data_dir.join(LOCK_FILE);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => return Err(already_running(setup).into()),
        Err(e) => return Err(std::io::Error::from(e)).with_context(|| format!("locking {}", path.display())),
    }
    if UnixStream::connect(setup.control_socket()).is_ok() {
        return Err(already_running(setup).into());
    }
    Ok(lock)
}

/// Runs the restart loop until the worker stops cleanly or cannot start. Refused at once,
/// with the running daemon's files untouched, if another daemon has the data directory.
pub(crate) fn run(setup: &Setup) -> anyhow::Result<Outcome> {
    check_socket_path(&setup.control_socket())?;
    // An unusable data directory: exit 4, like a worker that cannot start.
    crate::shared::create_private_dir(&setup.data_dir).map_err(|e| Refused(format!("{e:#}")))?;
    let _lock = claim(setup)?;
    // Launched by `start`: the log file is ours (only now, so a refused second daemon never
    // rotates the running one's log).
    let log = match std::env::var_os(OWN_LOG_ENV) {
        Some(_) => Some(LogFile::own(setup.data_dir.join(crate::shared::LOG_FILE))?),
        None => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the monitor")?;
    let pid_file = setup.pid_file();
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).context("writing monitor.pid")?;
    let outcome = rt.block_on(supervise(setup, log.as_ref()));
    let _ = std::fs::remove_file(&pid_file);
    if let Some(log) = &log {
        rt.block_on(log.flush().wait());
    }
    outcome
}

async fn supervise(setup: &Setup, log: Option<&LogFile>) -> anyhow::Result<Outcome> {
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut streak: u32 = 0;
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut restarts: u64 = 0;
    loop {
        let (mut child, output) = spawn_worker(setup, started, restarts, log)?;
        let began = Instant::now();
        match child.id() {
            Some(pid) => info("worker started", &[("pid", &pid)]),
            None => info("worker started", &[]),
        }
        let status = tokio::select! {
            status = child.wait() => status.context("waiting for the worker")?,
            _ = term.recv() => return stop(setup, child, output).await,
            _ = int.recv() => return stop(setup, child, output).await,
        };
        // Its last lines (a panic message) go in the log before what the monitor says of it.
        if let Some(output) = output {
            output.wait().await;
        }
        if status.success() {
            info("worker stopped", &[]);
            return Ok(Outcome::Stopped);
        }
        if status.code() == Some(i32::from(EXIT_CANNOT_START)) {
            error("the worker cannot start (the reason is above); not restarting it", &[]);
            return Ok(Outcome::CannotStart);
        }
        restarts += 1;
        streak = if began.elapsed() >= STABLE { 1 } else { streak.saturating_add(1) };
        let wait = backoff(streak);
        let fields: [(&str, &dyn std::fmt::Display); 2] =
            [("status", &describe(status)), ("crashes_in_a_row", &streak)];
        if streak >= BURST {
            error(
                &format!(
                    "the worker keeps crashing ({streak} times in a row, each within {}s of its start; see the log above for the cause); restarting it in {:.1}s, and on, at most every {}s",
                    STABLE.as_secs(),
                    wait.as_secs_f64(),
                    MAX_BACKOFF.as_secs()
                ),
                &fields,
            );
        } else {
            warn(&format!("worker crashed; restarting it in {:.1}s", wait.as_secs_f64()), &fields);
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = term.recv() => return Ok(Outcome::Stopped),
            _ = int.recv() => return Ok(Outcome::Stopped),
        }
    }
}

/// glibc's malloc arenas for the worker unless the user chose: by default glibc keeps up to
/// 8 per core, one for each thread that allocates, and memory freed in one is not reused by
/// threads of another, so a daemon whose blocking threads come and go holds more than it
/// uses. Measured with two (benches/sync, 1 GiB): the sender's peak PSS 63 → 54 MiB at the
/// same speed. (glibc reads it at start; other allocators ignore it.)
const MALLOC_ARENAS: &str = "2";

/// Starts a worker. With a log file ([`LogFile`]) its stdout and stderr are a pipe the log
/// reads (the [`Drain`]); otherwise they are the monitor's.
fn spawn_worker(
    setup: &Setup,
    started: u64,
    restarts: u64,
    log: Option<&LogFile>,
) -> anyhow::Result<(Child, Option<Drain>)> {
    let mut cmd = Command::new(&setup.worker);
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        cmd.env("MALLOC_ARENA_MAX", MALLOC_ARENAS);
    }
    let mut read_end = None;
    if log.is_some() {
        let (read, write) = crate::logfile::worker_pipe()?;
        cmd.stdout(write.try_clone().context("duplicating the worker's pipe")?).stderr(write);
        read_end = Some(read);
    }
    let child = cmd
        .arg("worker")
        .args(setup.fault_injection.then_some("--danger-fault-injection"))
        .env(crate::shared::MONITOR_STARTED_ENV, started.to_string())
        .env(crate::shared::WORKER_RESTARTS_ENV, restarts.to_string())
        .env_remove(OWN_LOG_ENV)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting the worker ({} worker)", setup.worker.display()))?;
    // Only the worker may hold the write end now, or the log would never see the pipe end.
    drop(cmd);
    let output = match (log, read_end) {
        (Some(log), Some(read)) => Some(log.pump(read)?),
        _ => None,
    };
    Ok((child, output))
}

/// Asks the worker to stop through its control socket; kills it if it does not.
async fn stop(setup: &Setup, mut child: Child, output: Option<Drain>) -> anyhow::Result<Outcome> {
    info("stopping the worker", &[]);
    let socket = setup.control_socket();
    let asked = tokio::task::spawn_blocking(move || ask_to_stop(&socket)).await;
    if !matches!(asked, Ok(Ok(true))) {
        warn("the worker did not take the stop command; it will be killed if it does not exit", &[]);
    }
    match tokio::time::timeout(STOP_GRACE, child.wait()).await {
        Ok(_) => {}
        Err(_) => {
            warn(&format!("the worker did not stop within {}s; killing it", STOP_GRACE.as_secs()), &[]);
            child.kill().await.context("killing the worker")?;
        }
    }
    if let Some(output) = output {
        output.wait().await;
    }
    Ok(Outcome::Stopped)
}

/// The stop command on the control socket, as `clearskies stop` sends it (the monitor does
/// not link the control protocol's types: a test checks that this is what they write).
const STOP_REQUEST: &str = r#"{"type":"stop"}"#;

/// Sends the stop command on `socket`: after the daemon's greeting line, [`STOP_REQUEST`];
/// whether the answer was not an error.
fn ask_to_stop(socket: &Path) -> std::io::Result<bool> {
    let stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(STOP_GRACE))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(false);
    }
    (&stream).write_all(format!("{STOP_REQUEST}\n").as_bytes())?;
    line.clear();
    reader.read_line(&mut line)?;
    Ok(line.starts_with('{') && !line.contains(r#""error":"#))
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_five_minutes_and_stays_there() {
        let secs: Vec<f64> = (1..=12).map(|n| backoff(n).as_secs_f64()).collect();
        assert_eq!(secs, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 300.0, 300.0]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
        assert_eq!(backoff(0), FIRST_BACKOFF);
    }

    #[test]
    fn the_stop_request_is_the_control_protocols() {
        let request = clearskies_actors::control::cmd::Request::Stop;
        assert_eq!(serde_json::to_string(&request).unwrap(), STOP_REQUEST);
    }
}
