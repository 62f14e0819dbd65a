//! The `clearskies` binary: command line, configuration and, with the daemon, the process
//! monitor and actor wiring. This file is glue; the protocol lives in `clearskies-protocol`
//! and the actors in `clearskies-actors`.
//!
//! Exit codes: 0 success, 1 a command failed (the error is printed on one line), 2 bad
//! usage (clap's own code), 4 the daemon cannot start (a busy port, an unusable data dir,
//! one already running with it, a control socket path too long),
//! 5 the connection to the daemon broke off in the middle of a command (it stopped or
//! restarted: `wait` must not look like success then).
//! (3 was "the monitor gave up on a crashing worker"; it no longer gives up.) A closed
//! stdout (`| head`) is not an error.

mod cli;
mod client;
mod config;
mod daemon;
mod history;
mod log;
mod packaging;
mod peers;
mod reach;
mod settings;
// What this binary and the monitor (`clearskies-monitor`, `supervisor/src/monitor/`) share.
#[path = "monitor/shared.rs"]
mod shared;
mod start;
mod wait;
mod web;
mod worker;

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use clearskies_actors::control::cmd::Request;
use clearskies_protocol::access_code::AccessCode;

use crate::cli::{Cli, CodeCommand, Command, ConfigCommand, KeysCommand, PeersCommand};
use crate::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CLEARSKIES_LOG").unwrap_or_else(|_| "info".into()),
        )
        // No colours: names from peers and files are escaped (`log`), and so would be
        // the formatter's own escape sequences.
        .with_writer(log::EscapedStderr)
        .with_ansi(false)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // Names in errors come from the command line, files and peers: their control
            // characters are escaped (the line breaks of a multi-line message stay).
            let _ = writeln!(io::stderr(), "clearskies: {}", escape_text(&format!("{e:#}")));
            if e.downcast_ref::<worker::CannotStart>().is_some() || e.downcast_ref::<shared::Refused>().is_some() {
                ExitCode::from(worker::EXIT_CANNOT_START)
            } else if e.downcast_ref::<client::ConnectionLost>().is_some() {
                ExitCode::from(client::EXIT_CONNECTION_LOST)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().filter_map(|c| c.downcast_ref::<io::Error>()).any(|io| io.kind() == io::ErrorKind::BrokenPipe)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = || Config::load();
    // A daemon whose settings or data directory are unusable cannot start: exit 4, which
    // the monitor and service managers do not retry.
    let start_config = || Config::load().map_err(|e| anyhow::Error::new(worker::CannotStart::from(e)));
    match cli.command {
        Command::Start { foreground: true, danger_fault_injection } => {
            start_config()?;
            Err(start::become_monitor(danger_fault_injection))
        }
        Command::Start { foreground: false, danger_fault_injection } => {
            start::start(&start_config()?, danger_fault_injection).map(|()| ExitCode::SUCCESS)
        }
        Command::Worker { danger_fault_injection } => {
            worker::run(&start_config()?, danger_fault_injection).map(|()| ExitCode::SUCCESS)
        }
        Command::InjectFault { fault, arg, path } => {
            daemon::inject_fault(&config()?, &fault, arg.as_deref(), path.as_deref()).map(|()| ExitCode::SUCCESS)
        }
        Command::Tracker { listen, min_ttl, max_ttl, max_clients, max_members } => {
            tracker(listen, min_ttl, max_ttl, max_clients, max_members).map(|()| ExitCode::SUCCESS)
        }
        Command::Stop => daemon::stop(&config()?).map(|()| ExitCode::SUCCESS),
        Command::Status { json } => {
            daemon::status(&config()?, json).map(|healthy| if healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Share { path, mode, expires, multi_use, username, password, json } => {
            let custom = username.map(|u| daemon::with_password(u, password, daemon::Confirm::Twice)).transpose()?;
            let opts = daemon::ShareOptions { mode: &mode, expires: &expires, multi_use, custom, json };
            daemon::share(&config()?, &path, opts).map(|()| ExitCode::SUCCESS)
        }
        Command::Attach { args, username, password, keys, peer, timeout, subtree, exclude, merge } => {
            let (with, path) = joining(&args, username, password, keys)?;
            let opts = daemon::AttachOptions {
                peer: peer.as_deref(),
                timeout,
                subtree: subtree.as_deref(),
                exclude: &exclude,
                merge,
            };
            daemon::attach(&config()?, with, std::path::Path::new(path), opts).map(|()| ExitCode::SUCCESS)
        }
        Command::List { json } => daemon::list(&config()?, json).map(|()| ExitCode::SUCCESS),
        Command::Peers { command: None, json } => peers::peers(&config()?, json).map(|()| ExitCode::SUCCESS),
        Command::Peers { command: Some(PeersCommand::Remove { peer, path }), .. } => {
            peers::remove_peer(&config()?, &peer, path.as_deref()).map(|()| ExitCode::SUCCESS)
        }
        Command::Wait { path, timeout } => wait::wait(&config()?, &path, timeout).map(|()| ExitCode::SUCCESS),
        c @ (Command::Cat { .. }
        | Command::VerifyBackup { .. }
        | Command::ConfirmDeletes { .. }
        | Command::Versions { .. }
        | Command::Restore { .. }
        | Command::Revert { .. }) => share_files(c, &config()?),
        Command::Detach { path } => daemon::detach(&config()?, &path).map(|()| ExitCode::SUCCESS),
        Command::Pause => daemon::simple(&config()?, &Request::Pause, "syncing paused").map(|()| ExitCode::SUCCESS),
        Command::Resume => daemon::simple(&config()?, &Request::Resume, "syncing resumed").map(|()| ExitCode::SUCCESS),
        Command::Code(code) => code_command(code, config).map(|()| ExitCode::SUCCESS),
        Command::Keys(KeysCommand::Export { path }) => {
            daemon::export_keys(&config()?, &path).map(|()| ExitCode::SUCCESS)
        }
        Command::Keys(KeysCommand::Rotate { path }) => {
            peers::rotate_keys(&config()?, &path).map(|()| ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Get { key, json }) => {
            settings::config_get(&config()?, key.as_deref(), json).map(|()| ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Set { key, value }) => {
            settings::config_set(&config()?, &key, &value).map(|()| ExitCode::SUCCESS)
        }
        Command::Open { print } => web::open(&config()?, print).map(|()| ExitCode::SUCCESS),
        Command::WebPassword { remove } => web::password(&config()?, remove).map(|()| ExitCode::SUCCESS),
        Command::Completions { shell, install } => packaging::completions_command(shell, install),
        Command::Manpage { dir, install } => packaging::manpage_command(dir.as_deref(), install),
    }
}

/// The commands about a share's files: `cat`, `verify-backup`, `confirm-deletes`,
/// `versions`, `restore`, `revert`.
fn share_files(command: Command, config: &Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Cat { path, file, url: true, expires, .. } => {
            daemon::file_url(config, &path, &file, &expires).map(|()| ExitCode::SUCCESS)
        }
        Command::Cat { path, file, offset, length, url: false, .. } => {
            daemon::cat(config, &path, &file, offset, length).map(|()| ExitCode::SUCCESS)
        }
        Command::VerifyBackup { path, files } => {
            daemon::verify_backup(config, &path, files).map(|ok| if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::ConfirmDeletes { path, dry_run, json } => {
            daemon::confirm_deletes(config, &path, dry_run, json).map(|()| ExitCode::SUCCESS)
        }
        Command::Versions { path, file, json } => {
            history::versions(config, &path, file.as_deref(), json).map(|()| ExitCode::SUCCESS)
        }
        Command::Restore { path, file, version } => {
            history::restore(config, &path, &file, version.as_deref()).map(|()| ExitCode::SUCCESS)
        }
        Command::Revert { path } => history::revert(config, &path).map(|()| ExitCode::SUCCESS),
        other => anyhow::bail!("internal error: {other:?} is not a command about a share's files"),
    }
}

/// `clearskies attach`: how to join (a code, a username and password, or saved keys) and
/// where, from its arguments.
fn joining(
    args: &[String],
    username: Option<String>,
    password: Option<String>,
    keys: Option<std::path::PathBuf>,
) -> anyhow::Result<(daemon::Joining, &String)> {
    Ok(match (args, username, keys) {
        ([code, path], None, None) => (daemon::Joining::Code(code.clone()), path),
        ([path], Some(u), None) => {
            (daemon::Joining::Custom(daemon::with_password(u, password, daemon::Confirm::Once)?), path)
        }
        ([path], None, Some(file)) => (daemon::Joining::Keys(file), path),
        ([_], None, None) => anyhow::bail!("give the access code and the directory: clearskies attach CODE PATH"),
        (_, Some(_), _) => {
            anyhow::bail!("with --username, give only the directory: clearskies attach --username U PATH")
        }
        (_, _, Some(_)) => {
            anyhow::bail!("with --keys, give only the directory: clearskies attach --keys FILE PATH --peer ADDR")
        }
        _ => anyhow::bail!("clearskies attach CODE PATH"),
    })
}

/// `clearskies tracker`: serves until killed.
fn tracker(
    listen: std::net::SocketAddr,
    min_ttl: u64,
    max_ttl: u64,
    max_clients: usize,
    max_members: usize,
) -> anyhow::Result<()> {
    use anyhow::Context;
    anyhow::ensure!(min_ttl >= 1 && min_ttl <= max_ttl, "--min-ttl must be at least 1 and at most --max-ttl");
    anyhow::ensure!(max_clients >= 1 && max_members >= 2, "--max-clients must be at least 1, --max-members at least 2");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    rt.block_on(async {
        let listener = clearskies_actors::discovery::tracker_server::bind(listen)
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        out(&format!("tracker listening on {addr}"))?;
        tracing::info!(%addr, "tracker listening");
        let config = clearskies_protocol::tracker::Config {
            min_ttl: std::time::Duration::from_secs(min_ttl),
            max_ttl: std::time::Duration::from_secs(max_ttl),
            software: clearskies_actors::SOFTWARE.to_owned(),
            max_clients,
            max_members,
        };
        tokio::select! {
            r = clearskies_actors::discovery::tracker_server::serve(listener, config) => r.context("tracker failed"),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}

fn code_command(command: CodeCommand, config: impl Fn() -> anyhow::Result<Config>) -> anyhow::Result<()> {
    match command {
        CodeCommand::Random { json } => {
            let mut payload = [0u8; 16];
            getrandom::fill(&mut payload).map_err(|e| anyhow::anyhow!("OS random number generator failed: {e}"))?;
            let code = AccessCode::from_random(payload);
            if json {
                let v = serde_json::json!({
                    "access_code": code.to_string(),
                    "url": code.to_url(),
                    "access_id": code.access_id().to_string(),
                });
                out(&v.to_string())
            } else {
                eprintln!("(a random code, registered with no daemon: nobody can join with it; `clearskies share PATH` makes a code for a share)");
                out(&format!("{code}\n{}", code.to_url()))
            }
        }
        CodeCommand::List { json } => daemon::code_list(&config()?, json),
        CodeCommand::Cancel { code, username } => daemon::code_cancel(&config()?, code.as_deref(), username.as_deref()),
        CodeCommand::Inspect { code, json } => {
            let parsed: AccessCode = code.parse().context("invalid access code")?;
            let creds = parsed.credentials();
            if json {
                let v = serde_json::json!({
                    "access_code": parsed.to_string(),
                    "access_id": creds.id.to_string(),
                    "srp_username": creds.username,
                });
                out(&v.to_string())
            } else {
                out(&format!("valid access code {parsed}\naccess ID    {}\nSRP username {}", creds.id, creds.username))
            }
        }
    }
}

/// Writes one block of output to stdout.
/// `text` with every control character escaped as in the log ([`log::escape_line`]), line
/// by line: its line breaks stay.
pub(crate) fn escape_text(text: &str) -> String {
    text.split('\n').map(log::escape_line).collect::<Vec<_>>().join("\n")
}

pub(crate) fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{text}").context("writing to stdout")?;
    stdout.flush().context("writing to stdout")
}
