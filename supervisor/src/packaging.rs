//! Files made from the command-line definition, so that they never disagree with `--help`:
//! shell completions (`clap_complete`) and man pages (`clap_mangen`). `clearskies
//! completions` and `clearskies manpage` print or install them; the README's set-up command
//! installs them for the user, and `deploy/debian/build-deb.sh` puts them in the package.
//!
//! Hidden subcommands (`worker`, `inject-fault`) are left out of both. The top page,
//! clearskies(1), adds what `--help` does not say: exit status, the environment (every
//! setting's variable, from `clearskies_actors::config::SETTINGS`) and the files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;
use clearskies_actors::config::SETTINGS;
use roff::{bold, roman, Roff};

use crate::cli::Cli;

/// The program's name, in completions and man pages.
const BIN: &str = "clearskies";

/// `clearskies completions [SHELL] [--install]`.
pub(crate) fn completions_command(shell: Option<Shell>, install: bool) -> anyhow::Result<ExitCode> {
    match (shell, install) {
        (_, true) => install_completions()?,
        (Some(shell), false) => print_completions(shell)?,
        // (clap requires one of the two.)
        (None, false) => anyhow::bail!("name a shell (bash, zsh, fish) or give --install"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `clearskies manpage [--dir DIR | --install]`.
pub(crate) fn manpage_command(dir: Option<&Path>, install: bool) -> anyhow::Result<ExitCode> {
    match (dir, install) {
        (None, false) => print_manpage()?,
        (dir, _) => install_manpages(dir)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `clearskies completions SHELL`: the completion script on stdout.
fn print_completions(shell: Shell) -> anyhow::Result<()> {
    write_stdout(&completions(shell))
}

/// The completion script for `shell`.
fn completions(shell: Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut visible(&Cli::command()), BIN, &mut script);
    script
}

/// `clearskies completions --install`: bash's, zsh's and fish's, each where that shell looks
/// for a user's own completions; prints where they went.
fn install_completions() -> anyhow::Result<()> {
    let data = xdg_dir("XDG_DATA_HOME", ".local/share")?;
    let config = xdg_dir("XDG_CONFIG_HOME", ".config")?;
    let zsh_dir = data.join("zsh/site-functions");
    let targets = [
        // bash-completion (2.x) loads $XDG_DATA_HOME/bash-completion/completions/NAME.
        (Shell::Bash, data.join("bash-completion/completions").join(BIN)),
        // zsh has no per-user default: the note below says how to add it to fpath.
        (Shell::Zsh, zsh_dir.join(format!("_{BIN}"))),
        // fish's own per-user directory.
        (Shell::Fish, config.join("fish/completions").join(format!("{BIN}.fish"))),
    ];
    let mut report = String::new();
    for (shell, path) in targets {
        write_file(&path, &completions(shell))?;
        report.push_str(&format!("{shell} completions: {}\n", path.display()));
    }
    report.push_str(&format!(
        "(zsh reads them once ~/.zshrc has `fpath=({} $fpath)` before `compinit`)",
        zsh_dir.display()
    ));
    crate::out(&report)
}

/// `clearskies manpage`: clearskies(1) on stdout.
fn print_manpage() -> anyhow::Result<()> {
    write_stdout(&top_page()?)
}

/// `clearskies manpage --dir DIR` (or `--install`: DIR is `share/man/man1` beside the
/// binary's directory, where man-db looks for the pages of a program found on the PATH):
/// clearskies.1 and a page per subcommand.
fn install_manpages(dir: Option<&Path>) -> anyhow::Result<()> {
    let dir = match dir {
        Some(d) => d.to_owned(),
        None => beside_binary()?,
    };
    let written = write_manpages(&dir)?;
    crate::out(&format!("{} man pages in {} (`man {BIN}`)", written.len(), dir.display()))
}

/// Writes every page into `dir` (created if needed); returns their paths.
fn write_manpages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let top = top_page()?;
    let path = dir.join(format!("{BIN}.1"));
    write_file(&path, &top)?;
    written.push(path);
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut subcommands: Vec<clap::Command> = cmd.get_subcommands().cloned().collect();
    while let Some(sub) = subcommands.pop() {
        if sub.is_hide_set() {
            continue;
        }
        subcommands.extend(sub.get_subcommands().cloned());
        let man = manual(sub);
        let path = dir.join(man.get_filename());
        let mut page = Vec::new();
        man.render(&mut page).context("rendering a man page")?;
        write_file(&path, &page)?;
        written.push(path);
    }
    Ok(written)
}

/// `dir/../share/man/man1` for the running binary's `dir`.
fn beside_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the clearskies executable")?;
    let bin_dir = exe.parent().context("the executable has no directory")?;
    let prefix = bin_dir.parent().context("the executable's directory has no parent")?;
    Ok(prefix.join("share/man/man1"))
}

/// A [`clap_mangen::Man`] with this project's source and manual names.
fn manual(cmd: clap::Command) -> clap_mangen::Man {
    clap_mangen::Man::new(cmd).source(format!("{BIN} {}", env!("CARGO_PKG_VERSION"))).manual("ClearSkies manual")
}

/// clearskies(1): what clap knows, then exit status, environment, files and see also.
fn top_page() -> anyhow::Result<Vec<u8>> {
    let mut page = Vec::new();
    manual(Cli::command().disable_help_subcommand(true)).render(&mut page).context("rendering the man page")?;
    extra_sections().to_writer(&mut page).context("rendering the man page")?;
    Ok(page)
}

/// A `.TP` entry: a bold term and its text.
fn entry(roff: &mut Roff, term: &str, text: &str) {
    roff.control("TP", []);
    roff.text([bold(term)]);
    roff.text([roman(text)]);
}

fn extra_sections() -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["EXIT STATUS"]);
    entry(&mut r, "0", "success");
    entry(&mut r, "1", "a command failed (one line on stderr); for status: a share is in error");
    entry(&mut r, "2", "bad usage");
    entry(
        &mut r,
        &crate::worker::EXIT_CANNOT_START.to_string(),
        "the daemon cannot start: invalid settings in config.toml or the environment, a busy port, an unusable \
         data directory or index, another daemon already running with that data directory, a control socket \
         path too long. Starting again would fail the same way: the monitor and the systemd units do not retry",
    );
    entry(
        &mut r,
        &crate::client::EXIT_CONNECTION_LOST.to_string(),
        "the connection to the daemon broke off in the middle of a command (it stopped or restarted)",
    );
    r.control("SH", ["ENVIRONMENT"]);
    entry(
        &mut r,
        "CLEARSKIES_HOME",
        "the data directory; default $XDG_DATA_HOME/clearskies, else ~/.local/share/clearskies",
    );
    entry(&mut r, "CLEARSKIES_LOG", "the log filter, e.g. debug or clearskies_actors=debug (default info)");
    for s in SETTINGS {
        let text = format!("{} (config.toml: {}; default {})", s.doc, s.name, s.default);
        entry(&mut r, s.env, &text);
    }
    r.control("SH", ["FILES"]);
    r.text([roman("In the data directory:")]);
    for (file, what) in FILES {
        entry(&mut r, file, what);
    }
    r.control("SH", ["SEE ALSO"]);
    r.text([roman(
        "clearskies-system runs this command as the system service's user with its data directory \
         (/var/lib/clearskies). The systemd units: clearskies.service, system-wide and for a user. \
         /usr/share/doc/clearskies/README.md (in the Debian package) or README.md in the source.",
    )]);
    r
}

/// The data directory's files, for FILES.
const FILES: &[(&str, &str)] = &[
    ("config.toml", "the settings (unknown keys are an error); `clearskies config set` writes it"),
    ("control", "the control socket (mode 0600) the commands talk to"),
    ("log, log.1 ...", "the log of a daemon started in the background; rotated by size"),
    ("monitor.pid, worker.pid, monitor.lock", "the running daemon's processes; one daemon per data directory"),
    ("db/", "the index (RocksDB)"),
    ("keys/", "each share's keys: its secrets"),
];

/// `cmd` with its hidden subcommands (and theirs) left out, for completions: clap has no
/// way to remove a subcommand, so the visible ones are copied into a new command.
fn visible(cmd: &clap::Command) -> clap::Command {
    let mut copy =
        clap::Command::new(cmd.get_name().to_owned()).args(cmd.get_arguments().filter(|a| !a.is_hide_set()).cloned());
    if let Some(about) = cmd.get_about() {
        copy = copy.about(about.clone());
    }
    if let Some(version) = cmd.get_version() {
        copy = copy.version(version.to_owned());
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        copy = copy.subcommand(visible(sub));
    }
    copy
}

/// `$VAR`, else `~/default`.
fn xdg_dir(var: &str, default: &str) -> anyhow::Result<PathBuf> {
    let from = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    match (from(var), from("HOME")) {
        (Some(dir), _) if dir.is_absolute() => Ok(dir),
        (_, Some(home)) => Ok(home.join(default)),
        _ => anyhow::bail!("cannot find the home directory: set HOME"),
    }
}

/// Writes `bytes` to `path`, creating its directory.
fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes).context("writing to stdout")?;
    stdout.flush().context("writing to stdout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_leave_hidden_subcommands_out() {
        let bash = String::from_utf8(completions(Shell::Bash)).unwrap();
        assert!(bash.contains("share") && bash.contains("confirm-deletes"), "{bash}");
        assert!(!bash.contains("inject-fault") && !bash.contains("worker"), "{bash}");
        // Subcommands of subcommands and their options are there.
        assert!(bash.contains("cancel") && bash.contains("--multi-use"), "{bash}");
    }

    #[test]
    fn the_man_page_names_every_setting_and_exit_status() {
        let page = String::from_utf8(top_page().unwrap()).unwrap();
        for s in SETTINGS {
            assert!(page.contains(s.env), "{} missing", s.env);
        }
        assert!(page.contains(".SH \"EXIT STATUS\"") && page.contains(".TH clearskies 1"), "{page}");
        assert!(!page.contains("inject"), "hidden subcommands stay out");
    }
}
