//! The monitor: the long-lived process `clearskies start` leaves behind. It runs the worker
//! as a child process and restarts it when it crashes, with exponential backoff, giving up
//! after [`MAX_CRASHES`] crashes within [`CRASH_WINDOW`]. SIGTERM/SIGINT stop the worker
//! cleanly (through its control socket, SIGKILL after a grace period) and then the monitor.

use std::collections::VecDeque;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use crate::config::Config;

/// Crashes within [`CRASH_WINDOW`] after which the monitor gives up.
pub(crate) const MAX_CRASHES: usize = 5;
/// The window for counting crashes.
pub(crate) const CRASH_WINDOW: Duration = Duration::from_secs(60);
/// Exit code of a monitor that gave up on a crashing worker.
pub(crate) const EXIT_GAVE_UP: u8 = 3;

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(15);

/// How the monitor ended.
pub(crate) enum Outcome {
    /// The worker stopped cleanly (on request or signal).
    Stopped,
    /// The worker kept crashing.
    GaveUp,
    /// The worker cannot start (it said so with its exit code); restarting would not help.
    CannotStart,
}

/// Runs the restart loop until the worker stops cleanly or keeps crashing.
pub(crate) fn run(config: &Config, fault_injection: bool) -> anyhow::Result<Outcome> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the monitor")?;
    let pid_file = config.monitor_pid_file();
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).context("writing monitor.pid")?;
    let outcome = rt.block_on(supervise(config, fault_injection));
    let _ = std::fs::remove_file(&pid_file);
    outcome
}

async fn supervise(config: &Config, fault_injection: bool) -> anyhow::Result<Outcome> {
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut crashes: VecDeque<Instant> = VecDeque::new();
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut restarts: u64 = 0;
    loop {
        let mut child = spawn_worker(started, restarts, fault_injection)?;
        info!(pid = child.id(), "worker started");
        let status = tokio::select! {
            status = child.wait() => status.context("waiting for the worker")?,
            _ = term.recv() => return stop(config, child).await,
            _ = int.recv() => return stop(config, child).await,
        };
        if status.success() {
            info!("worker stopped");
            return Ok(Outcome::Stopped);
        }
        if status.code() == Some(i32::from(crate::worker::EXIT_CANNOT_START)) {
            error!("the worker cannot start (the reason is above); not restarting it");
            return Ok(Outcome::CannotStart);
        }
        let now = Instant::now();
        restarts += 1;
        crashes.push_back(now);
        while crashes.front().is_some_and(|t| now.duration_since(*t) > CRASH_WINDOW) {
            crashes.pop_front();
        }
        warn!(status = %describe(status), crashes_in_window = crashes.len(), "worker crashed");
        if crashes.len() >= MAX_CRASHES {
            error!(
                "worker crashed {MAX_CRASHES} times within {}s; giving up (see the log above for the cause)",
                CRASH_WINDOW.as_secs()
            );
            return Ok(Outcome::GaveUp);
        }
        // 0.5 s after the first crash in the window, doubling with each further one.
        let exponent = u32::try_from(crashes.len() - 1).unwrap_or(u32::MAX).min(16);
        let backoff = FIRST_BACKOFF.saturating_mul(1 << exponent).min(MAX_BACKOFF);
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
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

fn spawn_worker(started: u64, restarts: u64, fault_injection: bool) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("finding the clearskies executable")?;
    let mut cmd = Command::new(exe);
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        cmd.env("MALLOC_ARENA_MAX", MALLOC_ARENAS);
    }
    cmd.arg("worker")
        .args(fault_injection.then_some("--danger-fault-injection"))
        .env(crate::worker::MONITOR_STARTED_ENV, started.to_string())
        .env(crate::worker::WORKER_RESTARTS_ENV, restarts.to_string())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting the worker")
}

/// Asks the worker to stop through its control socket; kills it if it does not.
async fn stop(config: &Config, mut child: Child) -> anyhow::Result<Outcome> {
    info!("stopping the worker");
    let socket = config.control_socket();
    let asked = tokio::task::spawn_blocking(move || {
        crate::client::Client::connect(&socket).and_then(|mut c| c.request(&serde_json::json!({ "type": "stop" })))
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
