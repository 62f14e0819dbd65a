//! Packaging: shell completions and man pages generated from the CLI definition, and their
//! installation for a user.

use std::path::Path;
use std::process::Command;

use crate::util::{stderr, stdout};

/// Whether `tool` runs here; if not, says which test part is skipped and why.
pub(crate) fn have(tool: &str, args: &[&str], skipping: &str) -> bool {
    let ok = Command::new(tool).args(args).output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipping {skipping}: `{tool}` is not available here");
    }
    ok
}

fn clearskies() -> Command {
    Command::new(env!("CARGO_BIN_EXE_clearskies"))
}

/// Runs `cmd`, which must succeed; its stdout.
fn ok(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?}: {}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

/// The visible top-level subcommands, as `--help` lists them.
fn subcommands() -> Vec<String> {
    let help = ok(clearskies().arg("--help"));
    let (_, commands) = help.split_once("Commands:\n").expect("--help lists the commands");
    let names = commands.lines().take_while(|l| !l.trim().is_empty()).filter_map(|l| l.split_whitespace().next());
    let names: Vec<String> = names.filter(|n| *n != "help").map(str::to_owned).collect();
    assert!(names.len() >= 20 && names.iter().any(|n| n == "share"), "{names:?}");
    names
}

#[test]
fn completions_for_bash_zsh_and_fish_name_every_subcommand_and_bash_completes() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(clearskies().args(["completions", shell]));
        for name in subcommands() {
            assert!(script.contains(&name), "{shell} completions lack {name}");
        }
        assert!(!script.contains("inject-fault"), "{shell}: hidden subcommands stay out");
        std::fs::write(dir.path().join(shell), script).unwrap();
    }
    if have("bash", &["-c", "true"], "running the bash completion") {
        let file = dir.path().join("bash");
        for (words, expect) in [
            ("clearskies sha", "share"),
            ("clearskies share --multi", "--multi-use"),
            ("clearskies code ca", "cancel"),
            ("clearskies confirm-del", "confirm-deletes"),
        ] {
            let cword = words.split_whitespace().count() - 1;
            let complete = format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; \
                 _clearskies clearskies \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
                 printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                file.display()
            );
            let offered = ok(Command::new("bash").args(["-c", &complete]));
            assert!(offered.lines().any(|w| w == expect), "`{words}<TAB>` offered {offered:?}");
        }
    }
    // zsh and fish check their scripts' syntax where they are installed.
    for (shell, check) in [("zsh", "-n"), ("fish", "--no-execute")] {
        if have(shell, &["-c", "true"], &format!("checking the {shell} completion's syntax")) {
            ok(Command::new(shell).arg(check).arg(dir.path().join(shell)));
        }
    }
}

#[test]
fn the_man_pages_render_cleanly_and_name_every_subcommand() {
    let page = ok(clearskies().arg("manpage"));
    assert!(page.contains(".TH clearskies 1"), "{page}");
    let dir = tempfile::tempdir().unwrap();
    ok(clearskies().args(["manpage", "--dir"]).arg(dir.path()));
    assert_eq!(std::fs::read_to_string(dir.path().join("clearskies.1")).unwrap(), page);
    for name in subcommands() {
        assert!(dir.path().join(format!("clearskies-{name}.1")).exists(), "no page for {name}");
    }
    if !have("groff", &["--version"], "rendering the man pages with groff") {
        return;
    }
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        // -ww: every warning; there must be none. (-k: UTF-8 input through preconv, as man does.)
        let o = Command::new("groff").args(["-k", "-man", "-Tutf8", "-ww", "-z"]).arg(&path).output().unwrap();
        assert!(o.status.success() && o.stderr.is_empty(), "{}: {}", path.display(), stderr(&o));
    }
    // As text (no overstriking, long lines so that nothing wraps).
    let text = ok(Command::new("groff")
        .args(["-k", "-man", "-Tutf8", "-rLL=300n", "-P-cbou"])
        .arg(dir.path().join("clearskies.1")));
    for name in subcommands() {
        assert!(text.contains(&format!("clearskies-{name}(1)")), "{name} not in the rendered page:\n{text}");
    }
    for section in ["SYNOPSIS", "EXIT STATUS", "ENVIRONMENT", "FILES", "CLEARSKIES_HOME", "CLEARSKIES_LISTEN_PORT"] {
        assert!(text.contains(section), "{section} not in the rendered page:\n{text}");
    }
}

#[test]
fn completions_and_man_pages_install_for_the_user_without_root() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let o = clearskies()
        .args(["completions", "--install"])
        .env("HOME", h)
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    for file in [
        ".local/share/bash-completion/completions/clearskies",
        ".local/share/zsh/site-functions/_clearskies",
        ".config/fish/completions/clearskies.fish",
    ] {
        let text = std::fs::read_to_string(h.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(text.contains("share") && stdout(&o).contains(file), "{file}: {}", stdout(&o));
    }
    // `manpage --install` writes beside the binary, as for ~/.cargo/bin/clearskies: a link to
    // this build there (a hard link: the binary's own path is where it looks).
    let cargo_bin = h.join(".cargo/bin");
    std::fs::create_dir_all(&cargo_bin).unwrap();
    if let Err(e) = std::fs::hard_link(env!("CARGO_BIN_EXE_clearskies"), cargo_bin.join("clearskies")) {
        eprintln!("skipping manpage --install: cannot link the binary into a temporary directory ({e})");
        return;
    }
    ok(Command::new(cargo_bin.join("clearskies")).args(["manpage", "--install"]));
    let page = h.join(".cargo/share/man/man1/clearskies.1");
    assert!(page.exists() && h.join(".cargo/share/man/man1/clearskies-share.1").exists());
    // man finds it through the PATH, as after `cargo install`.
    if have("man", &["--version"], "looking the page up with man") {
        let path = format!("{}:/usr/bin:/bin", cargo_bin.display());
        let found =
            ok(Command::new("man").args(["-w", "clearskies"]).env("PATH", path).env("HOME", h).env_remove("MANPATH"));
        assert_eq!(Path::new(found.trim()), page);
    }
}
