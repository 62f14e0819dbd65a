//! The CLI commands that talk to a running daemon (`start`, which launches one, is `start.rs`).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clearskies_actors::control::cmd::{
    AddShare, AtPath, BackupReport, CancelAccessCode, Checked, CodeCreated, CodeEntry, Codes, ConfirmDeletes,
    CreateAccessCode, FileUrl, Held, InjectFault, ReadFile, ReadHeader, Request, ShareCreated, Shares, StatusAnswer,
    Url, VerifyBackup,
};
use serde_json::Value;

use crate::client::{answer_as, Client};
use crate::config::Config;
use crate::log::escape_line;
use crate::out;

const STOP_DEADLINE: Duration = Duration::from_secs(30);
pub(crate) const POLL: Duration = Duration::from_millis(50);

pub(crate) fn connect(config: &Config) -> anyhow::Result<Client> {
    Client::connect(&config.control_socket())
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
    if let Some(reach) = &status.reach {
        text.push_str(&crate::reach::reach_lines(reach));
    }
    let alone = health.shares.iter().any(|s| s.alone_since.is_some());
    let verdict = match (health.healthy, alone) {
        (true, _) => "ok",
        (false, true) if health.shares.iter().all(|s| s.error.is_none()) => "a share has had no peer for too long",
        (false, _) => "a share is in error",
    };
    text.push_str(&format!("\nhealth: {verdict}"));
    for s in &health.shares {
        let state = match (s.synced, &s.error) {
            (_, Some(e)) => format!("error: {}", escape_line(e)),
            (true, None) => "in sync".to_owned(),
            (false, None) => s.status.to_string(),
        };
        text.push_str(&format!("\n  {}: {state}", escape_line(s.path.as_deref().unwrap_or("?"))));
        if s.local_changes > 0 {
            text.push_str(&format!(" ({} local change(s) not synced: read-only here)", s.local_changes));
        }
        if let Some(since) = s.alone_since {
            text.push_str(&format!(", {}", alone_text(since)));
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

pub(crate) fn limit(bytes: u64) -> String {
    if bytes == 0 {
        "none".to_owned()
    } else {
        rate(bytes)
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
pub(crate) fn dir_arg(path: &std::path::Path) -> anyhow::Result<String> {
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
pub(crate) fn human_duration(secs: i64) -> String {
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

/// Held deletions `confirm-deletes` lists as text (`--json` lists up to 1000).
const LISTED_DELETIONS: usize = 20;

/// `clearskies confirm-deletes PATH [--dry-run]`.
pub(crate) fn confirm_deletes(
    config: &Config,
    path: &std::path::Path,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<()> {
    let p = &dir_arg(path)?;
    let shown = escape_line(p);
    let request = ConfirmDeletes { path: Some(p.clone()), dry_run: Some(dry_run.into()) };
    let answer: Held = connect(config)?.request_as(&Request::ConfirmDeletes(request))?;
    if json {
        return out(&serde_json::to_string_pretty(&answer).context("encoding the answer")?);
    }
    let Held { held, paths, .. } = answer;
    if held == 0 {
        return out(&match dry_run {
            true => format!("no deletions are held in {shown}"),
            false => format!("no deletions were held in {shown}; rescanning anyway"),
        });
    }
    let mut text = match dry_run {
        true => {
            format!("{held} deletions are held in {shown} (nothing changed; run without --dry-run to record them):")
        }
        false => format!("{held} held deletions in {shown} will now be recorded and sent to peers:"),
    };
    for path in paths.iter().take(LISTED_DELETIONS) {
        text.push_str(&format!("\n  {}", crate::log::escape_line(path)));
    }
    if held > LISTED_DELETIONS {
        text.push_str(&format!("\n  … and {} more (--json lists them)", held - LISTED_DELETIONS));
    }
    out(&text)
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
            escape_line(&c.path),
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
    let mut text = format!("cancelled the code {} for {}", cancelled.access_id, escape_line(&cancelled.path));
    if !cancelled.used_by.is_empty() {
        // Cancelling refuses the code; whoever joined with it has the share's key by now.
        text.push_str(&format!(
            "\nit does not disconnect the peers that already joined with it ({}): `clearskies peers remove PEER` disconnects and refuses one",
            cancelled.used_by.join(", ")
        ));
    }
    out(&text)
}

/// What `status` and `list` say of a share no peer has reached for `peers_gone_after`.
fn alone_text(since: u64) -> String {
    let secs = unix_now().saturating_sub(i64::try_from(since).unwrap_or(0)).max(0);
    format!(
        "no peer connected for {}: nothing here reaches another computer (are the others running? `clearskies peers`)",
        human_duration(secs.max(1))
    )
}

pub(crate) fn unix_now() -> i64 {
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
            Some(e) => format!("error: {}", escape_line(e)),
            None => s.status.to_string(),
        };
        let sync = if s.synced {
            "in sync".to_owned()
        } else {
            format!("{} files to fetch, {} peer(s) connected", s.pending_files, s.peers)
        };
        text.push_str(&format!(
            "{}\n    {}, {}, {} files, {} directories, {} bytes; {sync}\n",
            escape_line(&s.path),
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
        if let Some(since) = s.alone_since {
            text.push_str(&format!("    {}\n", alone_text(since)));
        }
        if let Some(subtree) = &s.selection.subtree {
            text.push_str(&format!("    only {subtree} is synced here\n"));
        }
        if !s.selection.exclude.is_empty() {
            text.push_str(&format!("    never synced here: {}\n", s.selection.exclude.join(", ")));
        }
    }
    out(text.trim_end())
}

/// `clearskies detach PATH`.
pub(crate) fn detach(config: &Config, path: &std::path::Path) -> anyhow::Result<()> {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let abs = if abs.is_absolute() { abs } else { std::env::current_dir()?.join(abs) };
    let p = abs.to_str().with_context(|| format!("{} is not valid UTF-8", abs.display()))?;
    connect(config)?.request(&Request::RemoveShare(AtPath::new(p)))?;
    let mut text = format!("{} is no longer synced; its files were kept", escape_line(p));
    let versions = abs.join(".clearskies").join(clearskies_index::versions::VERSIONS_DIR);
    if versions.is_dir() {
        text.push_str(&format!(
            "\nthe versions it kept stay in {} (delete it when you no longer need them)",
            escape_line(&versions.display().to_string())
        ));
    }
    out(&text)
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
    /// A non-empty PATH may be merged with the share.
    pub(crate) merge: bool,
}

/// Before an attach with a code: a PATH that already holds files would be merged with the
/// share, and every file both sides have with different contents would become a conflict
/// copy on every peer. Refused unless agreed to (`--merge`, or asked on a terminal); the
/// code is not tried, so it stays usable.
fn check_empty_or_agreed(path: &std::path::Path) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let Ok(mut entries) = std::fs::read_dir(path) else { return Ok(()) };
    let Some(first) = entries.next() else { return Ok(()) };
    let count = 1 + entries.count();
    let what = format!(
        "{} is not empty ({count} entr{}, e.g. {:?}): attaching merges them with the share's files, and a file \
         both sides have with different contents becomes a conflict copy on every peer",
        path.display(),
        if count == 1 { "y" } else { "ies" },
        first.map(|e| e.file_name()).unwrap_or_default(),
    );
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        eprint!("{what}.\nMerge? [y/N] ");
        let answer = read_line_from_stdin().context("reading the answer")?;
        if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            return Ok(());
        }
        bail!("not attached; attach into an empty or new directory, or give --merge");
    }
    bail!("{what}; give --merge to do that, or attach into an empty or new directory")
}

/// `clearskies attach`: joins a share through the daemon.
pub(crate) fn attach(
    config: &Config,
    with: Joining,
    path: &std::path::Path,
    opts: AttachOptions<'_>,
) -> anyhow::Result<()> {
    let AttachOptions { peer, timeout, subtree, exclude, merge } = opts;
    let abs = if path.is_absolute() { path.to_owned() } else { std::env::current_dir()?.join(path) };
    // Restoring with saved keys goes where the files are; a code joins a new copy.
    if !merge && !matches!(with, Joining::Keys(_)) {
        check_empty_or_agreed(&abs)?;
    }
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
    out(&format!("joined the share; {} is syncing (`clearskies wait` shows progress)", escape_line(&joined.path)))
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
