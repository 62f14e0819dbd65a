//! The log of a daemon started in the background: the monitor owns it, caps its size and
//! rotates it, and the worker's output (a panic included) arrives through it whole and in
//! order. In the foreground (a terminal, systemd's journal) there is no log file at all.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use crate::util::{stderr, wait_for, Clearskies, Daemon};

/// The cap the test daemon gets (`CLEARSKIES_LOG_MAX_BYTES`, for tests only).
const CAP: u64 = 2000;
/// `log.1` … `log.5` are kept (`logfile::KEEP`).
const KEEP: u32 = 5;

/// Sends `pairs` pause and resume requests over one control connection, pipelined; each
/// logs one line ("transfers paused", "transfers resumed").
fn chatter(d: &Daemon, pairs: usize) {
    let stream = std::os::unix::net::UnixStream::connect(d.cs.socket()).unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    w.write_all("{\"type\":\"pause\"}\n{\"type\":\"resume\"}\n".repeat(pairs).as_bytes()).unwrap();
    for _ in 0..pairs * 2 {
        line.clear();
        r.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "{}", "pause and resume answer with an empty object");
    }
}

#[test]
fn the_background_log_is_rotated_by_size_and_the_newest_lines_are_in_log() {
    let d = Daemon::start_with(&[("CLEARSKIES_LOG_MAX_BYTES", &CAP.to_string())]);
    let home = d.cs.home().to_owned();
    let file = |n: u32| if n == 0 { home.join("log") } else { home.join(format!("log.{n}")) };
    // About 200 lines of 90 bytes: nine files' worth, more than the six kept.
    chatter(&d, 100);
    wait_for("log.5", || file(KEEP).exists().then_some(()));
    // Something new after that: it lands in `log` and nowhere else.
    d.cs.ok(&["config", "set", "mass_delete_percent", "77"]);
    wait_for("the newest line in log", || d.cs.log().contains("setting changed").then_some(()));
    assert!(!file(KEEP + 1).exists(), "only {KEEP} rotated files are kept");
    let mut lines = 0;
    for n in 0..=KEEP {
        let text = std::fs::read_to_string(file(n)).unwrap();
        let longest = text.lines().map(str::len).max().unwrap_or(0) as u64;
        // At most one line over the cap (the monitor's own lines are written directly).
        assert!(text.len() as u64 <= CAP + longest + 1, "{} holds {} bytes", file(n).display(), text.len());
        assert!(text.ends_with('\n'), "{} ends with a whole line", file(n).display());
        assert_eq!(text.contains("setting changed"), n == 0, "{}", file(n).display());
        lines += text.matches("transfers ").count();
    }
    assert!((60..200).contains(&lines), "the oldest lines were dropped with the oldest file: {lines} kept");
    // Each file follows the one before it: its first line is no older than the last of log.N+1.
    let timestamp = |n: u32, last: bool| {
        let text = std::fs::read_to_string(file(n)).unwrap();
        let line = if last { text.lines().last() } else { text.lines().next() };
        line.unwrap().split_whitespace().next().unwrap().to_owned()
    };
    for n in 0..KEEP {
        assert!(timestamp(n, false) >= timestamp(n + 1, true), "log.{n} is newer than log.{}", n + 1);
    }
}

#[test]
fn a_crashed_workers_panic_reaches_the_log_before_the_monitor_says_it_crashed() {
    let d = Daemon::start_args(&[], &["--danger-fault-injection"]);
    let worker = d.cs.pid("worker").unwrap();
    // A panic in an owner of the worker's state ends the worker (see supervision.rs).
    d.cs.ok(&["inject-fault", "panic", "shares"]);
    wait_for("a new worker", || {
        let pid = d.cs.pid("worker").filter(|p| *p != worker)?;
        std::os::unix::net::UnixStream::connect(d.cs.socket()).ok().map(|_| pid)
    });
    let log = d.cs.log();
    let panic = log.find("injected fault: panic in the shares actor").unwrap_or_else(|| panic!("no panic:\n{log}"));
    let crashed = log.find("worker crashed").unwrap_or_else(|| panic!("no crash:\n{log}"));
    assert!(panic < crashed, "the worker's last words come first:\n{log}");
    // Through the monitor, every line of the worker's is still one line of the log.
    assert!(log.lines().all(|l| !l.contains('\u{1b}')), "{log}");
}

#[test]
fn in_the_foreground_the_log_goes_to_stderr_and_no_file_is_written() {
    // As under systemd (the units run `start --foreground`; the journal reads stderr).
    let cs = Clearskies::new();
    let daemon = cs.command(&["start", "--foreground"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    wait_for("the control socket", || std::os::unix::net::UnixStream::connect(cs.socket()).ok());
    cs.ok(&["stop"]);
    let out = daemon.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stderr(&out);
    // The monitor's lines and the worker's.
    assert!(text.contains("clearskies::monitor: worker started"), "{text}");
    assert!(text.contains("clearskies_actors::supervisor: worker started"), "{text}");
    assert!(!cs.home().join("log").exists(), "no log file in the foreground");
}
