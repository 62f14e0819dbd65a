//! Packaging: shell completions and man pages generated from the CLI definition, their
//! installation for a user, and the Debian package, built from this build's binary and
//! inspected; when the test runs as root with dpkg (CI does), also installed, run as the
//! package's user, and purged, leaving the machine as it was.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::service::{repo_file, values, verify_unit};
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

/// Builds the package from this build's binary into `out` (uncompressed: quicker).
fn build_deb(out: &Path) -> PathBuf {
    let script = repo_file("deploy/debian/build-deb.sh");
    let built = ok(Command::new(script).arg(env!("CARGO_BIN_EXE_clearskies")).arg(out).env("DEB_COMPRESSION", "none"));
    let deb = PathBuf::from(built.trim());
    assert!(deb.starts_with(out) && deb.exists(), "{built}");
    deb
}

/// What the package must hold (beside the man pages of every subcommand), with its mode.
const CONTENTS: &[(&str, &str)] = &[
    ("./usr/bin/clearskies", "-rwxr-xr-x"),
    ("./usr/bin/clearskies-monitor", "-rwxr-xr-x"),
    ("./usr/bin/clearskies-system", "-rwxr-xr-x"),
    ("./lib/systemd/system/clearskies.service", "-rw-r--r--"),
    ("./usr/lib/systemd/user/clearskies.service", "-rw-r--r--"),
    ("./usr/share/bash-completion/completions/clearskies", "-rw-r--r--"),
    ("./usr/share/zsh/vendor-completions/_clearskies", "-rw-r--r--"),
    ("./usr/share/fish/vendor_completions.d/clearskies.fish", "-rw-r--r--"),
    ("./usr/share/man/man1/clearskies.1.gz", "-rw-r--r--"),
    ("./usr/share/doc/clearskies/copyright", "-rw-r--r--"),
    ("./usr/share/doc/clearskies/README.md", "-rw-r--r--"),
];

#[test]
fn the_debian_package_builds_and_when_root_installs_runs_and_purges_cleanly() {
    if !have("dpkg-deb", &["--version"], "the Debian package test") {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let deb = build_deb(out.path());
    let info = ok(Command::new("dpkg-deb").arg("--info").arg(&deb));
    assert!(info.contains("Package: clearskies\n"), "{info}");
    assert!(info.contains(&format!("Version: {}-1\n", env!("CARGO_PKG_VERSION"))), "{info}");
    let depends = info.lines().find_map(|l| l.trim().strip_prefix("Depends: ")).expect("Depends");
    for package in ["libc6", "libstdc++6", "libgcc-s1", "adduser"] {
        assert!(depends.split(", ").any(|d| d.split(' ').next() == Some(package)), "{package} not in {depends}");
    }
    let contents = ok(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for (path, mode) in CONTENTS {
        let line = contents.lines().find(|l| l.ends_with(&format!(" {path}"))).unwrap_or_else(|| panic!("{path}"));
        assert!(line.starts_with(&format!("{mode} root/root ")), "{line}");
    }
    assert!(contents.lines().all(|l| l.contains(" root/root ")), "{contents}");
    check_unpacked(&deb);
    install_run_and_purge(&deb);
}

/// The unpacked package: its units run /usr/bin/clearskies and pass systemd-analyze, its man
/// page is there and its maintainer scripts parse.
fn check_unpacked(deb: &Path) {
    let root = tempfile::tempdir().unwrap();
    ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(root.path()));
    ok(Command::new("dpkg-deb").arg("-e").arg(deb).arg(root.path().join("DEBIAN")));
    for (unit, user) in
        [("lib/systemd/system/clearskies.service", false), ("usr/lib/systemd/user/clearskies.service", true)]
    {
        let text = std::fs::read_to_string(root.path().join(unit)).unwrap();
        assert_eq!(values(&text, "ExecStart"), ["/usr/bin/clearskies start --foreground"], "{unit}");
        // Verified with this build where the package's binary will be.
        verify_unit(&text.replace("/usr/bin/clearskies", env!("CARGO_BIN_EXE_clearskies")), user, root.path());
    }
    let page = ok(Command::new("gzip").arg("-dc").arg(root.path().join("usr/share/man/man1/clearskies.1.gz")));
    assert!(page.contains(".TH clearskies 1"));
    for script in ["postinst", "prerm", "postrm"] {
        ok(Command::new("sh").arg("-n").arg(root.path().join("DEBIAN").join(script)));
    }
}

fn is_root() -> bool {
    stdout(&Command::new("id").arg("-u").output().unwrap()).trim() == "0"
}

/// dpkg ARGS…, retried while another dpkg or apt holds its lock (two minutes at most).
fn dpkg(args: &[&std::ffi::OsStr]) -> Output {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let o = Command::new("dpkg").args(args).output().unwrap();
        if o.status.success() || !stderr(&o).contains("lock") || Instant::now() > deadline {
            return o;
        }
        std::thread::park_timeout(Duration::from_millis(500));
    }
}

fn exists(what: &str, name: &str) -> bool {
    Command::new("getent").args([what, name]).output().is_ok_and(|o| o.status.success())
}

/// Undoes what installing the package did, even when the test fails half-way: the test
/// started only where none of it existed.
struct Uninstall;

impl Drop for Uninstall {
    fn drop(&mut self) {
        let _ = dpkg(&["--purge".as_ref(), "clearskies".as_ref()]);
        let _ = Command::new("userdel").arg("clearskies").output();
        if exists("group", "clearskies") {
            let _ = Command::new("groupdel").arg("clearskies").output();
        }
        let _ = std::fs::remove_dir_all("/var/lib/clearskies");
    }
}

fn install_run_and_purge(deb: &Path) {
    if !is_root() {
        eprintln!("skipping installing the Debian package: that needs root (CI runs the tests as root)");
        return;
    }
    if !have("dpkg", &["--version"], "installing the Debian package") {
        return;
    }
    let installed = Command::new("dpkg").args(["-s", "clearskies"]).output().is_ok_and(|o| o.status.success());
    if installed
        || exists("passwd", "clearskies")
        || exists("group", "clearskies")
        || Path::new("/var/lib/clearskies").exists()
        || Path::new("/usr/bin/clearskies").exists()
    {
        eprintln!("skipping installing the Debian package: clearskies (or its user, group or /var/lib/clearskies) is already on this machine, and the test leaves it alone");
        return;
    }
    let _uninstall = Uninstall;
    // Twice: installing again over itself (the postinst finds its user and directory).
    for _ in 0..2 {
        let o = dpkg(&["-i".as_ref(), deb.as_os_str()]);
        assert!(o.status.success(), "dpkg -i: {}{}", stdout(&o), stderr(&o));
    }
    assert!(exists("passwd", "clearskies"), "the postinst makes the clearskies user");
    let state = std::fs::metadata("/var/lib/clearskies").unwrap();
    let uid: u32 = stdout(&Command::new("id").args(["-u", "clearskies"]).output().unwrap()).trim().parse().unwrap();
    assert_eq!((state.uid(), state.mode() & 0o7777), (uid, 0o700), "/var/lib/clearskies");
    assert_eq!(
        ok(Command::new("/usr/bin/clearskies").arg("--version")).trim(),
        format!("clearskies {}", env!("CARGO_PKG_VERSION"))
    );
    run_as_the_service_user(uid);
    let o = dpkg(&["--purge".as_ref(), "clearskies".as_ref()]);
    assert!(o.status.success(), "dpkg --purge: {}{}", stdout(&o), stderr(&o));
    for gone in [
        "/usr/bin/clearskies",
        "/usr/bin/clearskies-system",
        "/lib/systemd/system/clearskies.service",
        "/usr/share/man/man1/clearskies.1.gz",
        "/var/lib/clearskies",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} is still there after the purge");
    }
    // The package keeps its user on purge (see deploy/debian/postrm); the test does not.
    assert!(exists("passwd", "clearskies"));
    ok(Command::new("userdel").arg("clearskies"));
    assert!(!exists("passwd", "clearskies") && !exists("group", "clearskies"), "the machine is as it was");
}

/// Kills the daemon of a data directory if it still runs (a test that failed half-way).
struct KillOnDrop(PathBuf);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for which in ["monitor", "worker"] {
            if let Ok(pid) = std::fs::read_to_string(self.0.join(format!("{which}.pid"))) {
                let _ = Command::new("kill").args(["-9", pid.trim()]).output();
            }
        }
    }
}

/// The installed daemon started as the package's user on a temporary data directory, used
/// through clearskies-system (which runs the command as that user), and stopped.
fn run_as_the_service_user(uid: u32) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(uid), None).unwrap();
    let as_service = |args: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=clearskies", "--regid=clearskies", "--init-groups", "--", "/usr/bin/clearskies"]).args(args);
        c.env("CLEARSKIES_HOME", &home)
            .env("CLEARSKIES_LISTEN_ADDRESS", "127.0.0.1")
            .env("CLEARSKIES_LISTEN_PORT", "0");
        c.env("CLEARSKIES_METRICS_ADDRESS", "127.0.0.1:0")
            .env("CLEARSKIES_LAN_DISCOVERY", "false")
            .env("CLEARSKIES_PORT_MAPPING", "false")
            .env("CLEARSKIES_STUN_SERVERS", "off")
            .env_remove("CLEARSKIES_LOG");
        c
    };
    ok(&mut as_service(&["start"]));
    let _stopped = KillOnDrop(home.clone());
    let system = |args: &[&str]| {
        let mut c = Command::new("/usr/bin/clearskies-system");
        c.args(args)
            .env("CLEARSKIES_SYSTEM_HOME", &home)
            .env_remove("CLEARSKIES_SYSTEM_USER")
            .env_remove("CLEARSKIES_BIN");
        c
    };
    let status: serde_json::Value = serde_json::from_str(&ok(&mut system(&["status", "--json"]))).unwrap();
    let worker = status["pid"].as_u64().expect("a worker pid");
    let proc_status = std::fs::read_to_string(format!("/proc/{worker}/status")).unwrap();
    let worker_uid =
        proc_status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap().split_whitespace().next().unwrap();
    assert_eq!(worker_uid, uid.to_string(), "the daemon runs as the clearskies user");
    ok(&mut system(&["config", "set", "mass_delete_percent", "60"]));
    // The command runs as the service's user, with its data directory.
    let id = ok(system(&["-u"]).env("CLEARSKIES_BIN", "/usr/bin/id"));
    assert_eq!(id.trim(), uid.to_string(), "clearskies-system runs the command as the clearskies user");
    let env = ok(system(&[]).env("CLEARSKIES_BIN", "/usr/bin/env"));
    assert!(env.lines().any(|l| l == format!("CLEARSKIES_HOME={}", home.display())), "{env}");
    assert_eq!(system(&["stop"]).output().unwrap().status.code(), Some(2), "systemctl stops the service");
    ok(&mut as_service(&["stop"]));
    assert!(!home.join("control").exists());
}
