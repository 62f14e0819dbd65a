//! The CLI commands that talk to a running daemon, and `start`, which launches one.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clearskies_actors::config::parse::toml_to_json;
use clearskies_actors::config::{setting, Raw, Values};
use clearskies_actors::control::cmd::{
    AddShare, AtPath, BackupReport, CancelAccessCode, Checked, CodeCreated, CodeEntry, Codes, ConfigAnswer,
    ConfigValue, CreateAccessCode, FileUrl, GetConfigValue, Held, InjectFault, Peers, ReadFile, ReadHeader, Request,
    SetConfigValue, ShareCreated, Shares, StatusAnswer, Url, VerifyBackup,
};
use serde_json::Value;

use crate::client::{answer_as, Client};
use crate::config::{Config, CONFIG_FILE};
use crate::out;

const START_DEADLINE: Duration = Duration::from_secs(30);
const STOP_DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

fn connect(config: &Config) -> anyhow::Result<Client> {
    Client::connect(&config.control_socket())
}

/// `clearskies start`: launches the monitor in the background and waits until the worker
/// answers on its control socket.
pub(crate) fn start(config: &Config, fault_injection: bool) -> anyhow::Result<()> {
    // (The monitor checks it too; here it fails before anything is created or launched.)
    crate::monitor::check_socket_path(&config.control_socket())?;
    config.ensure_data_dir()?;
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
    let exe = std::env::current_exe().context("finding the clearskies executable")?;
    let mut monitor = Command::new(exe)
        .args(["start", "--foreground"])
        .args(fault_injection.then_some("--danger-fault-injection"))
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

/// What the log gained since `from`, for start-up errors (last 20 lines).
fn log_tail(path: &std::path::Path, from: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(from));
        let _ = f.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// `clearskies stop`: asks the daemon to stop and waits until the worker and the monitor
/// have exited (so the socket and pid files are gone too).
pub(crate) fn stop(config: &Config) -> anyhow::Result<()> {
    let mut c = connect(config)?;
    let pids: Vec<u32> = [config.pid_file(), config.monitor_pid_file()].iter().filter_map(|p| read_pid(p)).collect();
    c.request(&Request::Stop)?;
    let deadline = Instant::now() + STOP_DEADLINE;
    while pids.iter().any(|&p| is_running(p)) || config.control_socket().exists() {
        if Instant::now() > deadline {
            bail!("the daemon has not exited {}s after the stop command", STOP_DEADLINE.as_secs());
        }
        std::thread::sleep(POLL);
    }
    out("clearskies stopped")
}

fn read_pid(path: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether a process exists and is not a zombie (Linux `/proc`).
fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the field after the parenthesised command name.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// `clearskies status`.
/// `clearskies status`: whether the daemon is healthy (every share in sync or syncing, none
/// in error), after printing its state; `false` makes the exit status 1, for scripts.
pub(crate) fn status(config: &Config, json: bool) -> anyhow::Result<bool> {
    let answer = connect(config)?.request(&Request::Status)?;
    let StatusAnswer { status, health } = answer_as(&answer)?;
    if json {
        out(&answer.to_string())?;
        return Ok(health.healthy);
    }
    let mut text = format!(
        "{} (worker pid {}, up {}s, worker restarts {})\nsync: {}\nlistening on: {}\nmetrics: {}\npeers connected: {}\nupload: {} (limit {}), download: {} (limit {})\nsince the worker started: {} sent, {} received",
        status.software,
        status.pid,
        status.daemon_uptime_seconds.unwrap_or(status.uptime_seconds),
        status.worker_restarts,
        if status.paused { "paused" } else { "running" },
        status.listen.as_deref().unwrap_or("-"),
        status.metrics.as_ref().map_or_else(|| "off".to_owned(), |a| format!("http://{a}/metrics")),
        status.peers,
        rate(status.upload_rate),
        limit(status.upload_limit),
        rate(status.download_rate),
        limit(status.download_limit),
        bytes(status.sent_bytes),
        bytes(status.received_bytes),
    );
    text.push_str(&format!("\nhealth: {}", if health.healthy { "ok" } else { "a share is in error" }));
    for s in &health.shares {
        let state = match (s.synced, &s.error) {
            (_, Some(e)) => format!("error: {e}"),
            (true, None) => "in sync".to_owned(),
            (false, None) => s.status.to_string(),
        };
        text.push_str(&format!("\n  {}: {state}", s.path.as_deref().unwrap_or("?")));
        if s.local_changes > 0 {
            text.push_str(&format!(" ({} local change(s) not synced: read-only here)", s.local_changes));
        }
    }
    out(&text)?;
    Ok(health.healthy)
}

use clearskies_actors::config::parse::show_bytes as bytes;

/// Bytes per second, readably.
fn rate(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000 => format!("{:.1} MB/s", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.1} kB/s", b as f64 / 1e3),
        b => format!("{b} B/s"),
    }
}

fn limit(bytes: u64) -> String {
    if bytes == 0 {
        "none".to_owned()
    } else {
        rate(bytes)
    }
}

/// `clearskies config get [KEY]`.
pub(crate) fn config_get(config: &Config, key: Option<&str>, json: bool) -> anyhow::Result<()> {
    let answer = match key {
        Some(key) => {
            connect(config)?.request(&Request::GetConfigValue(GetConfigValue { key: Some(key.to_owned()) }))?
        }
        None => connect(config)?.request(&Request::GetConfig)?,
    };
    if json {
        return out(&answer.to_string());
    }
    let show = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if key.is_some() {
        let ConfigValue { value } = answer_as(&answer)?;
        return out(&show(&value));
    }
    let ConfigAnswer { config: all, sources } = answer_as(&answer)?;
    out(&settings_listing(&all, &sources, show))
}

/// `config get`'s lines: each setting as `key = value`, and after a `#` where the value comes
/// from (`default`, `config.toml` or its environment variable) and, for `listen_port`, the
/// port in use when the OS picked it (`listen`, the address in use, is not a setting: it is
/// shown there, not as a line of its own).
fn settings_listing(
    all: &serde_json::Map<String, Value>,
    sources: &clearskies_actors::config::Sources,
    show: impl Fn(&Value) -> String,
) -> String {
    use clearskies_actors::config::Source;
    let lines: Vec<(String, String)> = clearskies_actors::config::SETTINGS
        .iter()
        .filter_map(|s| {
            let value = all.get(s.name)?;
            let mut note = match sources.get(s.name) {
                Some(Source::Default) => "default".to_owned(),
                Some(Source::File) => CONFIG_FILE.to_owned(),
                Some(Source::Environment) => s.env.to_owned(),
                None => String::new(),
            };
            if s.name == "listen_port" {
                if let Some(in_use) = all.get("listen").and_then(Value::as_str) {
                    let port = in_use.rsplit_once(':').map_or(in_use, |(_, p)| p);
                    if port != show(value) {
                        note = format!("{note}; in use: {port}").trim_start_matches("; ").to_owned();
                    }
                }
            }
            Some((format!("{} = {}", s.name, show(value)), note))
        })
        .collect();
    let width = lines.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let line = |(l, note): &(String, String)| {
        if note.is_empty() {
            l.clone()
        } else {
            format!("{l:width$}  # {note}")
        }
    };
    lines.iter().map(line).collect::<Vec<_>>().join("\n")
}

/// `clearskies config set KEY VALUE`: the value is read as its environment variable would be
/// (`500k`, `a:1,b:2`, `1%`…) and checked here; the daemon saves it and applies it at once
/// or says it takes effect at the next start (`needs_restart`, an error: it is not in effect).
pub(crate) fn config_set(config: &Config, key: &str, value: &str) -> anyhow::Result<()> {
    let v = match setting(key) {
        Some(s) => {
            let mut scratch = Values::default();
            (s.set)(&mut scratch, Raw::Text(value))
                .map_err(|expected| anyhow::anyhow!("{key}: {value:?} is not {expected}"))?;
            toml_to_json(&(s.get)(&scratch))
        }
        // Not a setting: the daemon says so.
        None => serde_json::from_str(value).unwrap_or_else(|_| Value::from(value)),
    };
    let mut client = connect(config)?;
    // Where the value in effect comes from now: an environment variable wins over
    // config.toml at every start, which the user should hear about.
    let from_env = setting(key).filter(|_| {
        client
            .request_as::<ConfigAnswer>(&Request::GetConfig)
            .is_ok_and(|a| a.sources.get(key) == Some(&clearskies_actors::config::Source::Environment))
    });
    let request = SetConfigValue { key: Some(key.to_owned()), value: Some(v.clone()) };
    let done = client.request(&Request::SetConfigValue(request));
    if let Some(s) = from_env {
        let now = if s.applies.is_runtime() { " (the new value applies now, until then)" } else { "" };
        eprintln!(
            "clearskies: note: {} is set in the daemon's environment: it overrides config.toml when the daemon \
             starts{now}",
            s.env
        );
    }
    done?;
    out(&format!("{key} = {} (saved in config.toml)", show_value(key, &v)))
}

fn show_value(key: &str, v: &Value) -> String {
    match (key, v.as_u64()) {
        ("upload_limit" | "download_limit", Some(n)) => format!("{n} ({})", limit(n)),
        _ => v.to_string(),
    }
}

/// `clearskies inject-fault ACTOR [--path P]` (hidden; daemons started with
/// `--danger-fault-injection` only).
pub(crate) fn inject_fault(
    config: &Config,
    fault: &str,
    arg: Option<&str>,
    path: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let fault_named = |name: &str| Some(name.to_owned());
    let mut request = match (fault, arg) {
        ("panic", Some(actor)) => {
            InjectFault { fault: fault_named("panic"), actor: Some(actor.to_owned()), ..Default::default() }
        }
        ("stall", Some(seconds)) => {
            let seconds: u64 = seconds.parse().context("stall takes a number of seconds")?;
            InjectFault { fault: fault_named("stall"), seconds: Some(seconds), ..Default::default() }
        }
        ("fail-db-write", None) => InjectFault { fault: fault_named("fail_db_write"), ..Default::default() },
        _ => bail!("use: inject-fault panic ACTOR | stall SECONDS | fail-db-write"),
    };
    if let Some(p) = path {
        request.path = Some(dir_arg(p)?);
    }
    connect(config)?.request(&Request::InjectFault(request))?;
    out(&format!("injected: {fault} {}", arg.unwrap_or_default()))
}

/// Commands that only need an empty success answer.
pub(crate) fn simple(config: &Config, command: &Request, done: &str) -> anyhow::Result<()> {
    connect(config)?.request(command)?;
    out(done)
}

/// The absolute form of a directory the user named (the daemon has another working dir).
/// An existing directory as the control socket wants it: absolute, as text.
fn dir_arg(path: &std::path::Path) -> anyhow::Result<String> {
    let dir = absolute_dir(path)?;
    dir.to_str().map(str::to_owned).with_context(|| format!("{} is not valid UTF-8", dir.display()))
}

fn absolute_dir(path: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let abs = std::fs::canonicalize(path).with_context(|| format!("{} does not exist", path.display()))?;
    if !abs.is_dir() {
        bail!("{} is not a directory", abs.display());
    }
    Ok(abs)
}

/// `clearskies share`'s choices.
#[derive(Debug)]
pub(crate) struct ShareOptions<'a> {
    pub(crate) mode: &'a str,
    /// `24h`, `7d`, `never`…
    pub(crate) expires: &'a str,
    pub(crate) multi_use: bool,
    /// Custom username and password instead of a generated code.
    pub(crate) custom: Option<(String, String)>,
    pub(crate) json: bool,
}

/// Whether a password read from a terminal is asked for twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Confirm {
    /// Choosing one (`share`): a typo would lock everyone out.
    Twice,
    /// Giving one (`attach`): a typo just fails.
    Once,
}

/// A username with its password: the one given, else read from stdin. From a terminal the
/// password is read without echo (and, choosing one, asked twice); from a pipe it is one
/// line.
pub(crate) fn with_password(
    username: String,
    password: Option<String>,
    confirm: Confirm,
) -> anyhow::Result<(String, String)> {
    let password = match password {
        Some(p) => p,
        None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            let first = read_hidden(&format!("password for {username}: "))?;
            if confirm == Confirm::Twice && !first.is_empty() && read_hidden("the same password again: ")? != first {
                bail!("the two passwords do not match; nothing was shared");
            }
            first
        }
        None => read_line_from_stdin().context("reading the password from stdin")?,
    };
    anyhow::ensure!(!password.is_empty(), "the password is empty");
    Ok((username, password))
}

fn read_line_from_stdin() -> std::io::Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// One line from the terminal on stdin, its echo off meanwhile (the newline still shows).
fn read_hidden(prompt: &str) -> anyhow::Result<String> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let stdin = std::io::stdin();
    let before = tcgetattr(&stdin).context("reading the terminal's settings")?;
    let mut quiet = before.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    tcsetattr(&stdin, OptionalActions::Now, &quiet).context("turning the terminal's echo off")?;
    eprint!("{prompt}");
    let line = read_line_from_stdin();
    // Echo back on whatever happened.
    let restored = tcsetattr(&stdin, OptionalActions::Now, &before);
    let line = line.context("reading the password")?;
    restored.context("turning the terminal's echo back on")?;
    Ok(line)
}

/// Parses a code lifetime: `90s`, `30m`, `24h`, `7d` (a bare number is hours), or `never`.
/// `None` is never.
pub(crate) fn parse_lifetime(text: &str) -> anyhow::Result<Option<i64>> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: i64 =
        digits.parse().map_err(|_| anyhow::anyhow!("{text:?} is not a duration like 30m, 24h, 7d or never"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "" | "h" => 3600,
        "d" => 86_400,
        _ => bail!("{text:?}: the unit must be s, m, h or d (or say never)"),
    };
    let secs = n
        .checked_mul(scale)
        .filter(|s| *s > 0)
        .ok_or_else(|| anyhow::anyhow!("{text:?} is not a positive duration"))?;
    Ok(Some(secs))
}

/// Seconds as a short duration, rounded to its largest unit: `45 s`, `10 min`, `24 h`, `7 d`.
fn human_duration(secs: i64) -> String {
    let round = |unit: i64| (secs + unit / 2) / unit;
    match secs {
        s if s >= 2 * 86_400 => format!("{} d", round(86_400)),
        s if s >= 2 * 3600 => format!("{} h", round(3600)),
        s if s >= 120 => format!("{} min", round(60)),
        s => format!("{s} s"),
    }
}

/// `clearskies share PATH`: shares the directory if needed and prints a new access code.
pub(crate) fn share(config: &Config, path: &std::path::Path, opts: ShareOptions<'_>) -> anyhow::Result<()> {
    let mode = opts.mode.replace('-', "_");
    match mode.as_str() {
        "read_write" | "read_only" | "untrusted" => {}
        other => bail!("unknown mode {other:?}; use read-write, read-only or untrusted"),
    }
    let lifetime = parse_lifetime(opts.expires)?;
    let path = absolute_dir(path)?;
    let path_str = path.to_str().with_context(|| format!("{} is not valid UTF-8", path.display()))?;
    let mut c = connect(config)?;
    let created = c.request_raw(&Request::CreateShare(AtPath::new(path_str)))?;
    match created.get("error").and_then(Value::as_str) {
        None | Some("already_shared") => {}
        Some(code) => bail!("{} ({code})", created.get("message").and_then(Value::as_str).unwrap_or("")),
    }
    let (username, password) = opts.custom.clone().unzip();
    let request = CreateAccessCode {
        path: Some(path_str.to_owned()),
        mode: Some(mode.clone()),
        expires_in: Some(Checked::Valid(lifetime)),
        multi_use: Some(opts.multi_use),
        username,
        password,
    };
    let answer = c.request(&Request::CreateAccessCode(request))?;
    if opts.json {
        return out(&answer.to_string());
    }
    let code: CodeCreated = answer_as(&answer)?;
    let validity = match lifetime {
        Some(secs) => format!("valid {}", human_duration(secs)),
        None => "never expires".to_owned(),
    };
    let uses = if opts.multi_use { "multi-use" } else { "single use" };
    let (shared, mode) = (path.display(), mode.replace('_', "-"));
    // Without a tracker or LAN discovery the other computer cannot find this one by itself.
    let values = &config.values;
    let peer = if values.trackers.is_empty() && !values.lan_discovery {
        let listen = c.request_as::<StatusAnswer>(&Request::Status).ok().and_then(|s| s.status.listen);
        peer_hint(listen.as_deref())
    } else {
        String::new()
    };
    match &opts.custom {
        None => {
            let text = code.access_code.as_deref().unwrap_or("?");
            out(&format!(
                "Shared {shared}.\nAccess code for {mode} access ({uses}, {validity}):\n\n    {text}\n    {}\n\nOn \
                 the other computer: clearskies attach {text} DIRECTORY{peer}",
                code.url.as_deref().unwrap_or("?"),
            ))
        }
        Some((username, _)) => out(&format!(
            "Shared {shared}.\nUsername {username:?} with your password gives {mode} access ({uses}, \
             {validity}).\n\nOn the other computer: clearskies attach --username {username:?} DIRECTORY{peer}"
        )),
    }
}

/// ` --peer ADDRESS:PORT` for the attach command `share` prints when discovery is off: the
/// listening address, or a placeholder for this computer's address when it listens on
/// every interface.
fn peer_hint(listen: Option<&str>) -> String {
    let Some(addr) = listen.and_then(|l| l.parse::<std::net::SocketAddr>().ok()) else {
        return " --peer THIS-COMPUTER:PORT".to_owned();
    };
    if addr.ip().is_unspecified() {
        format!(
            " --peer THIS-COMPUTER:{}\n(replace THIS-COMPUTER with this computer's address; discovery is off)",
            addr.port()
        )
    } else {
        format!(" --peer {addr}")
    }
}

/// `clearskies verify-backup PATH`: whether every untrusted peer proved every file.
pub(crate) fn verify_backup(config: &Config, path: &std::path::Path, files: u32) -> anyhow::Result<bool> {
    let p = &dir_arg(path)?;
    let mut client = connect(config)?;
    client.set_timeout(Duration::from_secs(120))?;
    let request = VerifyBackup { path: Some(p.clone()), files: Some(files.into()) };
    let BackupReport { peers } = client.request_as(&Request::VerifyBackup(request))?;
    if peers.is_empty() {
        out("no untrusted peer of this share is connected")?;
        return Ok(false);
    }
    let mut all = true;
    let mut text = String::new();
    for peer in peers {
        let (checked, proved) = (peer.checked, peer.proved);
        all &= checked > 0 && checked == proved;
        text.push_str(&format!("untrusted peer {}: {proved} of {checked} files proved\n", peer.peer));
        for f in &peer.failed {
            text.push_str(&format!("    not proved: {f}\n"));
        }
    }
    out(text.trim_end())?;
    Ok(all)
}

/// `clearskies keys export PATH`.
pub(crate) fn export_keys(config: &Config, path: &std::path::Path) -> anyhow::Result<()> {
    let p = &dir_arg(path)?;
    let answer = connect(config)?.request(&Request::ExportKeys(AtPath::new(p)))?;
    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        eprintln!("these are the share's secret keys: redirect them to a file and keep it offline");
    }
    out(&serde_json::to_string_pretty(&answer).context("encoding the keys")?)
}

/// `clearskies confirm-deletes PATH`.
pub(crate) fn confirm_deletes(config: &Config, path: &std::path::Path) -> anyhow::Result<()> {
    let p = &dir_arg(path)?;
    let Held { held } = connect(config)?.request_as(&Request::ConfirmDeletes(AtPath::new(p)))?;
    match held {
        0 => out(&format!("no deletions were held in {p}; rescanning anyway")),
        n => out(&format!("{n} held deletions in {p} will now be recorded and sent to peers")),
    }
}

/// `clearskies code list`.
pub(crate) fn code_list(config: &Config, json: bool) -> anyhow::Result<()> {
    let answer = connect(config)?.request(&Request::ListAccessCodes)?;
    if json {
        return out(&answer.to_string());
    }
    let Codes { codes } = answer_as(&answer)?;
    if codes.is_empty() {
        return out("no access codes; make one with `clearskies share DIRECTORY`");
    }
    let now = unix_now();
    let mut text = String::new();
    for c in codes {
        let id = c.access_id.as_str();
        let name = match &c.username {
            Some(u) => format!("user {u:?}"),
            None => format!("code {}", &id[..id.len().min(12)]),
        };
        let expires = match c.expires {
            None => "never expires".to_owned(),
            Some(e) if e > now => format!("expires in {}", human_duration(e - now)),
            Some(e) => format!("expired {} ago", human_duration(now - e)),
        };
        let joined =
            if c.used_by.is_empty() { "nobody joined".to_owned() } else { format!("joined: {}", c.used_by.join(", ")) };
        text.push_str(&format!(
            "{name}  {}  {}  {}  {}  {expires}  {joined}\n",
            c.state,
            c.path,
            c.mode.as_str().replace('_', "-"),
            if c.multi_use { "multi-use" } else { "single use" },
        ));
    }
    out(text.trim_end())
}

/// `clearskies code cancel`.
pub(crate) fn code_cancel(config: &Config, code: Option<&str>, username: Option<&str>) -> anyhow::Result<()> {
    let request = match (code, username) {
        (_, Some(u)) => CancelAccessCode { username: Some(u.to_owned()), ..Default::default() },
        (Some(c), None) if c.to_ascii_uppercase().starts_with("SYNC") || c.starts_with("clearskies://") => {
            let parsed: clearskies_protocol::access_code::AccessCode = c.parse().context("invalid access code")?;
            CancelAccessCode { code: Some(parsed.to_string()), ..Default::default() }
        }
        (Some(id), None) => CancelAccessCode { access_id: Some(id.to_owned()), ..Default::default() },
        (None, None) => bail!("name the code: clearskies code cancel CODE (or --username U)"),
    };
    let cancelled: CodeEntry = connect(config)?.request_as(&Request::CancelAccessCode(request))?;
    out(&format!("cancelled the code {} for {}", cancelled.access_id, cancelled.path))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `clearskies list`.
pub(crate) fn list(config: &Config, json: bool) -> anyhow::Result<()> {
    let answer = connect(config)?.request(&Request::ListShares)?;
    if json {
        return out(&answer.to_string());
    }
    let Shares { shares } = answer_as(&answer)?;
    if shares.is_empty() {
        return out("no shares; add one with `clearskies share DIRECTORY`");
    }
    let mut text = String::new();
    for s in shares {
        let status = match &s.error {
            Some(e) => format!("error: {e}"),
            None => s.status.to_string(),
        };
        let sync = if s.synced {
            "in sync".to_owned()
        } else {
            format!("{} files to fetch, {} peer(s) connected", s.pending_files, s.peers)
        };
        text.push_str(&format!(
            "{}\n    {}, {}, {} files, {} directories, {} bytes; {sync}\n",
            s.path,
            s.mode.as_str().replace('_', "-"),
            status,
            s.files,
            s.directories,
            s.bytes,
        ));
        if s.local_changes > 0 {
            text.push_str(&format!(
                "    {} local change(s) kept here only: this computer holds the share read-only, so they are \
                 never sent to peers\n",
                s.local_changes
            ));
        }
        if let Some(why) = &s.unwatched {
            text.push_str(&format!("    not watched for changes: {why}\n"));
        }
    }
    out(text.trim_end())
}

/// `clearskies wait PATH`: polls the share's state until it is in sync. Progress goes to
/// stderr: a line redrawn in place on a terminal, else (a log, a pipe) a plain line every
/// [`PLAIN_EVERY`] and one at the end. Ctrl-C ends the line and exits with 130.
pub(crate) fn wait(config: &Config, path: &std::path::Path, timeout: Option<u64>) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let abs = std::fs::canonicalize(path).with_context(|| format!("{} does not exist", path.display()))?;
    let p = abs.to_str().with_context(|| format!("{} is not valid UTF-8", abs.display()))?.to_owned();
    let started = Instant::now();
    let deadline = timeout.map(|s| started + Duration::from_secs(s));
    let tty = std::io::stderr().is_terminal();
    exit_on_interrupt(tty)?;
    let mut client = connect(config)?;
    // The most bytes seen pending: the total the progress counts towards.
    let mut most = 0u64;
    let mut rate = Rate::default();
    let mut printed: Option<Instant> = None;
    loop {
        let Shares { shares } = client.request_as(&Request::ListShares)?;
        let share = shares
            .into_iter()
            .find(|s| s.path == p)
            .with_context(|| format!("{} is not shared; see `clearskies list`", abs.display()))?;
        if share.synced {
            if tty {
                eprint!("\r\x1b[2K");
            } else if printed.is_some() {
                let secs = started.elapsed().as_secs();
                eprintln!("in sync after {} ({} MB fetched)", duration_text(secs), mb(most));
            }
            return out(&format!("{} is in sync", abs.display()));
        }
        if let Some(e) = &share.error {
            if tty {
                eprint!("\r\x1b[2K");
            }
            bail!("{} cannot sync: {e}", abs.display());
        }
        let now = Instant::now();
        most = most.max(share.pending_bytes);
        let remaining = share.pending_bytes.saturating_sub(share.partial_bytes.unwrap_or(0));
        rate.push(now, most - remaining);
        let line = Progress {
            state: share.status.to_string(),
            files: share.pending_files,
            remaining,
            total: most,
            rate: rate.per_sec(),
            peers: share.peers,
        }
        .to_string();
        if tty {
            eprint!("\r\x1b[2K{line}");
        } else if printed.is_none_or(|at| now >= at + PLAIN_EVERY) {
            eprintln!("{line}");
            printed = Some(now);
        }
        if deadline.is_some_and(|d| now >= d) {
            if tty {
                eprintln!();
            }
            bail!(
                "{} is not in sync after {} s ({} still to fetch)",
                abs.display(),
                started.elapsed().as_secs(),
                count_text(share.pending_files, "file")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How often `wait` prints a progress line when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// How far back `wait`'s rate looks.
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// On SIGINT (Ctrl-C) during `wait`: ends the progress line drawn on a terminal, so that the
/// shell's prompt starts on a fresh line, and exits with 130 (128 + SIGINT, what a shell
/// reports for a command it interrupted). The handler is in place when this returns.
fn exit_on_interrupt(tty: bool) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build().context("starting a runtime")?;
    let mut interrupt = {
        let _entered = runtime.enter();
        signal(SignalKind::interrupt()).context("listening for SIGINT")?
    };
    std::thread::Builder::new()
        .name("sigint".into())
        .spawn(move || {
            runtime.block_on(interrupt.recv());
            if tty {
                // Under stderr's lock: never in the middle of a line being drawn.
                eprintln!();
            }
            std::process::exit(130);
        })
        .context("starting the SIGINT thread")?;
    Ok(())
}

/// The bytes done over the last [`RATE_WINDOW`]: `wait`'s transfer rate.
#[derive(Debug, Default)]
struct Rate {
    samples: std::collections::VecDeque<(Instant, u64)>,
}

impl Rate {
    /// `done` bytes at `now`.
    fn push(&mut self, now: Instant, done: u64) {
        self.samples.push_back((now, done));
        while self.samples.len() > 2 && self.samples.get(1).is_some_and(|&(t, _)| now.duration_since(t) >= RATE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Bytes per second over the window; `None` until it spans a second.
    fn per_sec(&self) -> Option<f64> {
        let (&(t0, d0), &(t1, d1)) = (self.samples.front()?, self.samples.back()?);
        let secs = t1.duration_since(t0).as_secs_f64();
        (secs >= 1.0).then(|| d1.saturating_sub(d0) as f64 / secs)
    }
}

/// One progress line of `wait`: "syncing: 1 file to fetch, 4.2 of 11.0 MB done (38%),
/// 1.0 MB/s, about 7 s left, 1 peer".
#[derive(Debug)]
struct Progress {
    state: String,
    files: u64,
    remaining: u64,
    total: u64,
    rate: Option<f64>,
    peers: usize,
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let done = self.total.saturating_sub(self.remaining);
        let percent = (u128::from(done) * 100).checked_div(u128::from(self.total)).unwrap_or(0);
        write!(
            f,
            "{}: {} to fetch, {} of {} MB done ({percent}%)",
            self.state,
            count_text(self.files, "file"),
            mb(done),
            mb(self.total)
        )?;
        if let Some(rate) = self.rate {
            write!(f, ", {}", rate_text(rate))?;
            if let Some(secs) = eta(self.remaining, rate) {
                write!(f, ", about {} left", duration_text(secs))?;
            }
        }
        write!(f, ", {}", count_text(self.peers as u64, "peer"))
    }
}

/// "1 file", "0 files", "3 files".
fn count_text(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Bytes in MB with one decimal: "4.2".
fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

/// A transfer rate: "512 B/s", "850 kB/s", "1.2 MB/s" (decimal units, as the settings'
/// limits are read).
fn rate_text(bytes_per_sec: f64) -> String {
    if bytes_per_sec >= 1e6 {
        format!("{:.1} MB/s", bytes_per_sec / 1e6)
    } else if bytes_per_sec >= 1e3 {
        format!("{:.0} kB/s", bytes_per_sec / 1e3)
    } else {
        format!("{:.0} B/s", bytes_per_sec.max(0.0))
    }
}

/// Seconds until `remaining` bytes arrive at `rate` bytes per second (`None`: no rate, or
/// nothing left).
fn eta(remaining: u64, rate: f64) -> Option<u64> {
    if rate < 1.0 || remaining == 0 {
        return None;
    }
    Duration::try_from_secs_f64((remaining as f64 / rate).ceil()).ok().map(|d| d.as_secs())
}

/// A duration: "7 s", "3 min 20 s", "2 h 5 min".
fn duration_text(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

#[cfg(test)]
mod wait_tests {
    use super::*;

    #[test]
    fn counts_rates_and_durations_read_as_words() {
        assert_eq!(
            (count_text(1, "file"), count_text(0, "file"), count_text(3, "peer")),
            ("1 file".into(), "0 files".into(), "3 peers".into())
        );
        assert_eq!(mb(4_250_000), "4.2");
        assert_eq!(
            (rate_text(512.0), rate_text(850_400.0), rate_text(1_240_000.0)),
            ("512 B/s".into(), "850 kB/s".into(), "1.2 MB/s".into())
        );
        assert_eq!(
            (duration_text(7), duration_text(200), duration_text(7500)),
            ("7 s".into(), "3 min 20 s".into(), "2 h 5 min".into())
        );
        assert_eq!(eta(7_000_000, 1e6), Some(7));
        assert_eq!(eta(1, 3.0), Some(1));
        assert_eq!((eta(5, 0.0), eta(0, 1e6)), (None, None));
    }

    #[test]
    fn the_rate_is_measured_over_the_last_seconds() {
        let t = Instant::now();
        let mut r = Rate::default();
        r.push(t, 0);
        r.push(t + Duration::from_millis(500), 500_000);
        assert_eq!(r.per_sec(), None, "half a second is too short to tell");
        for s in 1..=20 {
            r.push(t + Duration::from_secs(s), s * 1_000_000);
        }
        assert_eq!(r.per_sec(), Some(1e6));
        // A stall shows within the window.
        for s in 21..=30 {
            r.push(t + Duration::from_secs(s), 20_000_000);
        }
        assert_eq!(r.per_sec(), Some(0.0));
    }

    #[test]
    fn a_progress_line_counts_bytes() {
        let mut p = Progress {
            state: "syncing".into(),
            files: 1,
            remaining: 6_800_000,
            total: 11_000_000,
            rate: None,
            peers: 1,
        };
        assert_eq!(p.to_string(), "syncing: 1 file to fetch, 4.2 of 11.0 MB done (38%), 1 peer");
        p.rate = Some(1e6);
        assert_eq!(
            p.to_string(),
            "syncing: 1 file to fetch, 4.2 of 11.0 MB done (38%), 1.0 MB/s, about 7 s left, 1 peer"
        );
        p = Progress { state: "scanning".into(), files: 0, remaining: 0, total: 0, rate: Some(0.0), peers: 0 };
        assert_eq!(p.to_string(), "scanning: 0 files to fetch, 0.0 of 0.0 MB done (0%), 0 B/s, 0 peers");
    }
}

/// `clearskies detach PATH`.
pub(crate) fn detach(config: &Config, path: &std::path::Path) -> anyhow::Result<()> {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let abs = if abs.is_absolute() { abs } else { std::env::current_dir()?.join(abs) };
    let p = abs.to_str().with_context(|| format!("{} is not valid UTF-8", abs.display()))?;
    connect(config)?.request(&Request::RemoveShare(AtPath::new(p)))?;
    out(&format!("{} is no longer synced; its files were kept", abs.display()))
}

/// `clearskies attach CODE PATH --peer HOST:PORT`.
/// What `clearskies attach` joins with.
#[derive(Debug)]
pub(crate) enum Joining {
    /// A `SYNC…` code.
    Code(String),
    /// A username and password.
    Custom((String, String)),
    /// A file written by `keys export`.
    Keys(std::path::PathBuf),
}

/// `clearskies attach`'s choices.
#[derive(Debug)]
pub(crate) struct AttachOptions<'a> {
    pub(crate) peer: Option<&'a str>,
    pub(crate) timeout: u64,
    pub(crate) subtree: Option<&'a str>,
    pub(crate) exclude: &'a [String],
}

/// `clearskies attach`: joins a share through the daemon.
pub(crate) fn attach(
    config: &Config,
    with: Joining,
    path: &std::path::Path,
    opts: AttachOptions<'_>,
) -> anyhow::Result<()> {
    let AttachOptions { peer, timeout, subtree, exclude } = opts;
    let abs = if path.is_absolute() { path.to_owned() } else { std::env::current_dir()?.join(path) };
    let p = abs.to_str().with_context(|| format!("{} is not valid UTF-8", abs.display()))?;
    let mut request = AddShare {
        path: Some(p.to_owned()),
        timeout: Some(timeout),
        subtree: subtree.map(str::to_owned),
        exclude: exclude.to_vec(),
        peer: peer.map(str::to_owned),
        ..Default::default()
    };
    match with {
        Joining::Code(code) => {
            // Check the code locally first: a typo is caught without touching the network.
            let parsed: clearskies_protocol::access_code::AccessCode = code.parse().context("invalid access code")?;
            request.code = Some(parsed.to_string());
        }
        Joining::Custom((username, password)) => {
            request.username = Some(username);
            request.password = Some(password);
        }
        Joining::Keys(file) => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let keys: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not what `clearskies keys export` writes", file.display()))?;
            match serde_json::from_value(keys.get("keys").cloned().unwrap_or(keys))? {
                Checked::Invalid(e) => bail!("{} is not what `clearskies keys export` writes: {e}", file.display()),
                keys => request.keys = Some(keys),
            }
        }
    }
    match peer {
        Some(_) => {}
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                eprintln!("looking for a peer with this share (trackers, LAN) for up to {timeout} s…");
            }
        }
    }
    let mut client = connect(config)?;
    // Looking for a peer, connecting and the key exchange: the daemon's own deadlines.
    client.set_timeout(Duration::from_secs(timeout + 60))?;
    let joined: ShareCreated = client.request_as(&Request::AddShare(request))?;
    out(&format!("joined the share; {} is syncing (`clearskies wait` shows progress)", joined.path))
}

/// `clearskies cat PATH FILE`: the file's bytes (or a range) on stdout.
pub(crate) fn cat(
    config: &Config,
    path: &std::path::Path,
    file: &str,
    offset: u64,
    length: Option<u64>,
) -> anyhow::Result<()> {
    let p = &dir_arg(path)?;
    let request = ReadFile {
        path: Some(p.clone()),
        file: Some(file.to_owned()),
        offset: Some(offset),
        length,
        framed: Some(true),
    };
    let mut client = connect(config)?;
    let header: ReadHeader = client.request_as(&Request::ReadFile(request))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if header.framed {
        client.copy_frames(header.length, &mut out)?;
    } else {
        client.copy_bytes(header.length, &mut out)?;
    }
    std::io::Write::flush(&mut out)?;
    Ok(())
}

/// `clearskies cat --url PATH FILE`: where a media player can read the file, for
/// `expires` (a duration).
pub(crate) fn file_url(config: &Config, path: &std::path::Path, file: &str, expires: &str) -> anyhow::Result<()> {
    let p = &dir_arg(path)?;
    let Some(lifetime) = parse_lifetime(expires)? else { bail!("a file's address always expires: say e.g. 12h or 7d") };
    let request = FileUrl {
        path: Some(p.clone()),
        file: Some(file.to_owned()),
        expires_in: u64::try_from(lifetime).ok().map(Checked::Valid),
    };
    let Url { url } = connect(config)?.request_as(&Request::FileUrl(request))?;
    out(&url)
}

/// `clearskies peers`.
pub(crate) fn peers(config: &Config, json: bool) -> anyhow::Result<()> {
    let answer = connect(config)?.request(&Request::ListPeers)?;
    if json {
        return out(&answer.to_string());
    }
    let Peers { peers } = answer_as(&answer)?;
    if peers.is_empty() {
        return out("no peers");
    }
    let mut text = String::new();
    for p in peers {
        let state = match p.failures {
            Some(n) if n > 0 => format!("{} ({n} failed attempts)", p.state),
            _ => p.state.to_string(),
        };
        text.push_str(&format!(
            "{}  {}  {}  ({})  {}\n",
            p.address,
            state,
            p.source,
            p.peer.as_deref().unwrap_or("-"),
            p.path,
        ));
    }
    out(text.trim_end())
}
