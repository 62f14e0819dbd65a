//! Running as a service: the systemd units in `deploy/` (checked by `systemd-analyze
//! verify`), the exit statuses they do not restart on, and `clearskies-system`, the command
//! for the system service's daemon.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::packaging::have;
use crate::util::{stderr, stdout, Clearskies, Daemon};

/// A file of the repository.
pub(crate) fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs `systemd-analyze verify` (`--user` for a user unit) on `unit`, saved as
/// `clearskies.service`, with the man pages of this build on MANPATH (so that
/// `Documentation=man:clearskies(1)` is checked too) and `home` as `%h`. Fails the test on
/// any complaint, warnings included. `false` if systemd-analyze is absent.
pub(crate) fn verify_unit(unit: &str, user: bool, home: &Path) -> bool {
    if !have("systemd-analyze", &["--version"], "systemd-analyze verify") {
        return false;
    }
    let (ok, said) = analyze(unit, user, home);
    assert!(ok && said.trim().is_empty(), "systemd-analyze verify:\n{said}\n{unit}");
    true
}

/// `systemd-analyze verify` of `unit` (see [`verify_unit`]): whether it passed, and what it said.
fn analyze(unit: &str, user: bool, home: &Path) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man");
    let o = Command::new(env!("CARGO_BIN_EXE_clearskies"))
        .args(["manpage", "--dir"])
        .arg(man.join("man1"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(dir.path().join("clearskies.service"), unit).unwrap();
    // A user manager's runtime directory (systemd-analyze --user needs one).
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let mut verify = Command::new("systemd-analyze");
    verify.args(user.then_some("--user")).args(["verify", "clearskies.service"]);
    let o = verify.current_dir(dir.path()).env("MANPATH", &man).env("XDG_RUNTIME_DIR", &run).env("HOME", home).output();
    let o = o.unwrap();
    (o.status.success(), format!("{}{}", stdout(&o), stderr(&o)))
}

/// The unit's `KEY=` values, in order.
pub(crate) fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines().filter_map(|l| l.strip_prefix(key)?.strip_prefix('=')).collect()
}

#[test]
fn the_units_pass_systemd_analyze_verify() {
    let home = tempfile::tempdir().unwrap();
    // The system unit names where a manual install puts the binary; here it is this build.
    let system = std::fs::read_to_string(repo_file("deploy/clearskies.service")).unwrap();
    assert_eq!(values(&system, "ExecStart"), ["/usr/local/bin/clearskies start --foreground"]);
    let here = system.replace("/usr/local/bin/clearskies", env!("CARGO_BIN_EXE_clearskies"));
    if !verify_unit(&here, false, home.path()) {
        return;
    }
    // The user unit runs ~/.cargo/bin/clearskies (`cargo install`): verified as it is, with
    // a home whose ~/.cargo/bin/clearskies is this build.
    let user = std::fs::read_to_string(repo_file("deploy/clearskies-user.service")).unwrap();
    assert_eq!(values(&user, "ExecStart"), ["%h/.cargo/bin/clearskies start --foreground"]);
    assert!(values(&user, "User").is_empty() && values(&user, "Environment").is_empty(), "{user}");
    std::fs::create_dir_all(home.path().join(".cargo/bin")).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_clearskies"), home.path().join(".cargo/bin/clearskies")).unwrap();
    verify_unit(&user, true, home.path());
    // The check is real: a binary that is not there is refused.
    std::fs::remove_file(home.path().join(".cargo/bin/clearskies")).unwrap();
    let (ok, said) = analyze(&user, true, home.path());
    assert!(!ok && said.contains("is not executable"), "a missing binary went unnoticed: {said}");
}

#[test]
fn the_units_do_not_restart_a_daemon_that_cannot_start_and_it_says_so_with_its_exit_status() {
    for file in ["deploy/clearskies.service", "deploy/clearskies-user.service"] {
        let unit = std::fs::read_to_string(repo_file(file)).unwrap();
        assert_eq!(values(&unit, "RestartPreventExitStatus"), ["2 4"], "{file}");
        assert_eq!(values(&unit, "Restart"), ["on-failure"], "{file}");
        assert_eq!(values(&unit, "Documentation"), ["man:clearskies(1) file:///usr/share/doc/clearskies/README.md"]);
    }
    let cs = Clearskies::new();
    // 2: the unit's command line is wrong.
    assert_eq!(exits_by_itself(cs.command(&["start", "--foregroud"])).status.code(), Some(2));
    // 4: an unusable data directory, in the foreground as the units run it and in the
    // background: one that cannot be created (in /proc: even root cannot), and one under a
    // file (its config.toml cannot be read).
    let file = tempfile::NamedTempFile::new().unwrap();
    for (home, says) in [
        (Path::new("/proc/self/clearskies-data").to_owned(), "creating the data directory"),
        (file.path().join("data"), "Not a directory"),
    ] {
        for args in [&["start", "--foreground"][..], &["start"]] {
            let mut start = cs.command(args);
            start.env("CLEARSKIES_HOME", &home);
            let o = exits_by_itself(start);
            assert_eq!(o.status.code(), Some(4), "{args:?} {}: {}", home.display(), stderr(&o));
            assert!(stderr(&o).contains(says), "{}", stderr(&o));
        }
    }
    // 4: invalid settings (tests/cli.rs has more).
    cs.write_config("upload_limit = \"fast\"\n");
    let o = exits_by_itself(cs.command(&["start", "--foreground"]));
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
}

/// Runs `cmd` to its end, which must come within the tests' deadline (a daemon that starts
/// after all is killed, and fails the test).
fn exits_by_itself(mut cmd: Command) -> Output {
    use std::process::Stdio;
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let start = std::time::Instant::now();
    let mut exited = child.try_wait().unwrap();
    while exited.is_none() && start.elapsed() < crate::util::DEADLINE {
        std::thread::park_timeout(std::time::Duration::from_millis(20));
        exited = child.try_wait().unwrap();
    }
    if exited.is_none() {
        let _ = child.kill();
    }
    let o = child.wait_with_output().unwrap();
    assert!(exited.is_some(), "{cmd:?} did not exit: {}", stderr(&o));
    o
}

/// `deploy/clearskies-system ARGS…` for the service user `user` and data directory `home`.
pub(crate) fn clearskies_system(script: &Path, user: &str, home: &Path, args: &[&str]) -> Output {
    Command::new(script)
        .args(args)
        .env("CLEARSKIES_SYSTEM_USER", user)
        .env("CLEARSKIES_SYSTEM_HOME", home)
        .env("CLEARSKIES_BIN", env!("CARGO_BIN_EXE_clearskies"))
        .env("CLEARSKIES_PORT_MAPPING", "false")
        .env("CLEARSKIES_STUN_SERVERS", "off")
        .env_remove("CLEARSKIES_HOME")
        .output()
        .unwrap()
}

fn whoami() -> String {
    stdout(&Command::new("id").arg("-un").output().unwrap()).trim().to_owned()
}

#[test]
fn clearskies_system_runs_the_command_on_the_services_data_directory() {
    let script = repo_file("deploy/clearskies-system");
    let d = Daemon::start();
    let me = whoami();
    // Run as the service's user (here: whoever runs the test), it is the command with the
    // service's data directory.
    let o = clearskies_system(&script, &me, d.cs.home(), &["status", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let status: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(status["pid"].as_u64(), d.cs.pid("worker").map(u64::from), "{status}");
    // The service is systemd's to start and stop.
    for verb in ["start", "stop"] {
        let o = clearskies_system(&script, &me, d.cs.home(), &[verb]);
        assert_eq!(o.status.code(), Some(2), "{verb}");
        assert!(stderr(&o).contains(&format!("systemctl {verb} clearskies")), "{}", stderr(&o));
    }
    d.cs.ok(&["status"]);
    let o = clearskies_system(&script, "no-such-user-for-clearskies", d.cs.home(), &["status"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no user no-such-user-for-clearskies"), "{}", stderr(&o));
    if me != "root" {
        // Anyone else must be root to become the service's user.
        let o = clearskies_system(&script, "root", d.cs.home(), &["status"]);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains("run it as root"), "{}", stderr(&o));
    }
    // As root, becoming another user: tests/packaging.rs, with the package's user.
}
