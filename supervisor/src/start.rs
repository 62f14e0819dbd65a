//! `clearskies start`: launches the daemon's monitor (`clearskies-monitor`, beside this
//! executable) in the background, or becomes it (`--foreground`).

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clearskies_actors::control::cmd::{Request, StatusAnswer};

use crate::client::Client;
use crate::config::Config;
use crate::daemon::POLL;
use crate::out;

const START_DEADLINE: Duration = Duration::from_secs(30);

/// The monitor's executable, installed beside `clearskies` (a `[[bin]]` of this package).
pub(crate) const MONITOR_EXE: &str = "clearskies-monitor";

/// The command that runs the daemon's monitor: [`MONITOR_EXE`] beside this executable,
/// which it runs as the worker. A missing monitor means the daemon cannot start (a
/// [`Refused`](crate::shared::Refused), exit status 4).
fn monitor_command(fault_injection: bool) -> anyhow::Result<Command> {
    let exe = std::env::current_exe().context("finding the clearskies executable")?;
    let monitor = exe.with_file_name(MONITOR_EXE);
    if !monitor.is_file() {
        return Err(crate::shared::Refused(format!(
            "cannot start the daemon: its monitor {} is missing (it is installed beside {} by `cargo install \
             --locked --path .`, which installs both)",
            monitor.display(),
            exe.display()
        ))
        .into());
    }
    let mut command = Command::new(monitor);
    command.arg("--worker").arg(exe).args(fault_injection.then_some("--danger-fault-injection"));
    Ok(command)
}

/// `clearskies start --foreground`: this process becomes the monitor (`exec`, same pid, so
/// service managers see no difference). Returns only if it could not.
pub(crate) fn become_monitor(fault_injection: bool) -> anyhow::Error {
    let mut command = match monitor_command(fault_injection) {
        Ok(command) => command,
        Err(e) => return e,
    };
    let e = command.exec();
    crate::shared::Refused(format!("cannot run the monitor {}: {e}", command.get_program().to_string_lossy())).into()
}

/// `clearskies start`: launches the monitor in the background and waits until the worker
/// answers on its control socket.
pub(crate) fn start(config: &Config, fault_injection: bool) -> anyhow::Result<()> {
    // (The monitor checks it too; here it fails before anything is created or launched.)
    crate::shared::check_socket_path(&config.control_socket())?;
    config.ensure_data_dir().map_err(crate::worker::CannotStart::from)?;
    if let Ok(mut c) = Client::connect(&config.control_socket()) {
        let StatusAnswer { status, .. } = c.request_as(&Request::Status)?;
        return out(&format!("clearskies is already running (worker pid {})", status.pid));
    }
    let log_path = config.log_file();
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening the log file {}", log_path.display()))?;
    let log_len = log.metadata().map(|m| m.len()).unwrap_or(0);
    let mut monitor = monitor_command(fault_injection)?
        // It owns the log from now on and rotates it (`monitor/logfile.rs`).
        .env(crate::shared::OWN_LOG_ENV, "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("opening the log file")?)
        .stderr(log)
        // Its own process group: the terminal's Ctrl-C does not reach the daemon.
        .process_group(0)
        .spawn()
        .context("launching the daemon")?;
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        if let Ok(mut c) = Client::connect(&config.control_socket()) {
            let StatusAnswer { status, .. } = c.request_as(&Request::Status)?;
            return out(&format!(
                "clearskies started (worker pid {})\ncontrol socket: {}\nlog: {}",
                status.pid,
                config.control_socket().display(),
                log_path.display()
            ));
        }
        if let Some(status) = monitor.try_wait().context("watching the daemon")? {
            bail!("the daemon exited during start-up ({status}):\n{}", log_tail(&log_path, log_len));
        }
        if Instant::now() > deadline {
            bail!("the daemon did not answer within {}s; see {}", START_DEADLINE.as_secs(), log_path.display());
        }
        std::thread::sleep(POLL);
    }
}

/// What the log gained since `from`, for start-up errors (last 20 lines); all of it if the
/// monitor rotated it meanwhile (it is shorter than `from`).
fn log_tail(path: &std::path::Path, from: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let from = if f.metadata().is_ok_and(|m| m.len() < from) { 0 } else { from };
        let _ = std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(from));
        let _ = f.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
