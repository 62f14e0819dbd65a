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

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::logfile::{Drain, LogFile};

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

/// The daemon cannot start with this data directory, found before any worker is started:
/// another daemon runs with it, or its control socket's path is too long. Exit status 4,
/// like a worker that cannot start: starting again would fail the same way.
#[derive(Debug)]
pub(crate) struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The file the running monitor holds locked (never removed: a lock on a file that can be
/// unlinked and created again would not exclude anyone).
const LOCK_FILE: &str = "monitor.lock";

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

/// What a second daemon on this data directory is told.
fn already_running(config: &Config) -> Refused {
    let pid = std::fs::read_to_string(config.monitor_pid_file()).ok().map(|p| p.trim().to_owned());
    let who = pid.filter(|p| !p.is_empty()).map(|p| format!(" (monitor pid {p})")).unwrap_or_default();
    Refused(format!(
        "another clearskies daemon is already running with the data directory {}{who}; stop it with `clearskies \
         stop`, or give this one another CLEARSKIES_HOME",
        config.data_dir.display()
    ))
}

/// Makes this process the data directory's monitor: takes the lock, which must be free,
/// and checks that no worker answers on the control socket (one whose monitor was killed).
/// The lock is held as long as the returned file is open (it is not inherited by the
/// worker: the file is opened close-on-exec).
fn claim(config: &Config) -> anyhow::Result<std::fs::File> {
    let path = config.data_dir.join(LOCK_FILE);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => return Err(already_running(config).into()),
        Err(e) => return Err(std::io::Error::from(e)).with_context(|| format!("locking {}", path.display())),
    }
    if std::os::unix::net::UnixStream::connect(config.control_socket()).is_ok() {
        return Err(already_running(config).into());
    }
    Ok(lock)
}

/// Runs the restart loop until the worker stops cleanly or cannot start. Refused at once,
/// with the running daemon's files untouched, if another daemon has the data directory.
pub(crate) fn run(config: &Config, fault_injection: bool) -> anyhow::Result<Outcome> {
    check_socket_path(&config.control_socket())?;
    // An unusable data directory: exit 4, like a worker that cannot start.
    config.ensure_data_dir().map_err(crate::worker::CannotStart::from)?;
    let _lock = claim(config)?;
    // Launched by `start`: the log file is ours (only now, so a refused second daemon never
    // rotates the running one's log).
    let log = match std::env::var_os(crate::logfile::OWN_ENV) {
        Some(_) => Some(crate::logfile::LogFile::own(config.log_file())?),
        None => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the monitor")?;
    let pid_file = config.monitor_pid_file();
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).context("writing monitor.pid")?;
    let outcome = rt.block_on(supervise(config, fault_injection, log.as_ref()));
    let _ = std::fs::remove_file(&pid_file);
    if let Some(log) = &log {
        rt.block_on(log.flush().wait());
    }
    outcome
}

async fn supervise(config: &Config, fault_injection: bool, log: Option<&LogFile>) -> anyhow::Result<Outcome> {
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut streak: u32 = 0;
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut restarts: u64 = 0;
    loop {
        let (mut child, output) = spawn_worker(started, restarts, fault_injection, log)?;
        let began = Instant::now();
        info!(pid = child.id(), "worker started");
        let status = tokio::select! {
            status = child.wait() => status.context("waiting for the worker")?,
            _ = term.recv() => return stop(config, child, output).await,
            _ = int.recv() => return stop(config, child, output).await,
        };
        // Its last lines (a panic message) go in the log before what the monitor says of it.
        if let Some(output) = output {
            output.wait().await;
        }
        if status.success() {
            info!("worker stopped");
            return Ok(Outcome::Stopped);
        }
        if status.code() == Some(i32::from(crate::worker::EXIT_CANNOT_START)) {
            error!("the worker cannot start (the reason is above); not restarting it");
            return Ok(Outcome::CannotStart);
        }
        restarts += 1;
        streak = if began.elapsed() >= STABLE { 1 } else { streak.saturating_add(1) };
        let wait = backoff(streak);
        if streak >= BURST {
            error!(
                status = %describe(status),
                crashes_in_a_row = streak,
                "the worker keeps crashing ({streak} times in a row, each within {}s of its start; see the log above for the cause); restarting it in {:.1}s, and on, at most every {}s",
                STABLE.as_secs(),
                wait.as_secs_f64(),
                MAX_BACKOFF.as_secs()
            );
        } else {
            warn!(status = %describe(status), crashes_in_a_row = streak, "worker crashed; restarting it in {:.1}s", wait.as_secs_f64());
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
    started: u64,
    restarts: u64,
    fault_injection: bool,
    log: Option<&LogFile>,
) -> anyhow::Result<(Child, Option<Drain>)> {
    let exe = std::env::current_exe().context("finding the clearskies executable")?;
    let mut cmd = Command::new(exe);
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
        .args(fault_injection.then_some("--danger-fault-injection"))
        .env(crate::worker::MONITOR_STARTED_ENV, started.to_string())
        .env(crate::worker::WORKER_RESTARTS_ENV, restarts.to_string())
        .env_remove(crate::logfile::OWN_ENV)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting the worker")?;
    // Only the worker may hold the write end now, or the log would never see the pipe end.
    drop(cmd);
    let output = match (log, read_end) {
        (Some(log), Some(read)) => Some(log.pump(read)?),
        _ => None,
    };
    Ok((child, output))
}

/// Asks the worker to stop through its control socket; kills it if it does not.
async fn stop(config: &Config, mut child: Child, output: Option<Drain>) -> anyhow::Result<Outcome> {
    info!("stopping the worker");
    let socket = config.control_socket();
    let asked = tokio::task::spawn_blocking(move || {
        crate::client::Client::connect(&socket)
            .and_then(|mut c| c.request(&clearskies_actors::control::cmd::Request::Stop))
    })
    .await;
    if !matches!(asked, Ok(Ok(_))) {
        warn!("the worker did not take the stop command; it will be killed if it does not exit");
    }
    match tokio::time::timeout(STOP_GRACE, child.wait()).await {
        Ok(_) => {}
        Err(_) => {
            warn!("the worker did not stop within {}s; killing it", STOP_GRACE.as_secs());
            child.kill().await.context("killing the worker")?;
        }
    }
    if let Some(output) = output {
        output.wait().await;
    }
    Ok(Outcome::Stopped)
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
    fn a_control_socket_path_must_fit_a_unix_socket() {
        // 107 bytes and the NUL fill Linux's sun_path.
        assert!(check_socket_path(Path::new(&format!("/{}", "a".repeat(106)))).is_ok());
        let e = check_socket_path(Path::new(&format!("/{}", "a".repeat(107)))).unwrap_err().to_string();
        assert!(e.contains("too long") && e.contains("108 bytes") && e.contains("CLEARSKIES_HOME"), "{e}");
    }
}
