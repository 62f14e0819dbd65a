//! The daemon's life cycle and control socket, through the real binary.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;

use serde_json::{json, Value};

use crate::util::{kill, stderr, wait_for, Clearskies, Daemon};

#[test]
fn start_status_pause_resume_stop() {
    let d = Daemon::start();
    let cs = &d.cs;
    let mode = std::fs::metadata(cs.socket()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "control socket mode {mode:o}");
    let status = cs.json(&["status", "--json"]);
    assert_eq!(status["paused"], json!(false));
    assert_eq!(status["pid"].as_u64(), cs.pid("worker").map(u64::from));
    // A second start finds the running daemon and leaves it alone.
    assert!(cs.ok(&["start"]).contains("already running"));

    cs.ok(&["pause"]);
    assert_eq!(cs.json(&["status", "--json"])["paused"], json!(true));
    cs.ok(&["resume"]);
    assert_eq!(cs.json(&["status", "--json"])["paused"], json!(false));

    cs.ok(&["stop"]);
    assert!(!cs.socket().exists());
    let o = cs.run(&["status"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not running"), "{}", stderr(&o));
}

#[test]
fn commands_without_a_daemon_say_so() {
    let cs = Clearskies::new();
    for cmd in [&["status"][..], &["stop"], &["pause"]] {
        let o = cs.run(cmd);
        assert_eq!(o.status.code(), Some(1), "{cmd:?}");
        assert!(stderr(&o).contains("clearskies start"), "{cmd:?}: {}", stderr(&o));
    }
}

#[test]
fn control_socket_speaks_json_lines_with_pipelining() {
    let d = Daemon::start();
    let stream = UnixStream::connect(d.cs.socket()).unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let hello: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(hello["service"], "ClearSkies Control");
    assert_eq!(hello["protocol"], 1);

    // Six commands in one write; six answers, in order.
    w.write_all(b"{\"type\":\"pause\",\"extra\":1}\n{\"type\":\"status\"}\n{\"type\":\"frobnicate\"}\nnot json\n[]\n{\"type\":\"resume\"}\n")
        .unwrap();
    let mut answers = Vec::new();
    for _ in 0..6 {
        line.clear();
        r.read_line(&mut line).unwrap();
        answers.push(serde_json::from_str::<Value>(&line).unwrap());
    }
    assert_eq!(answers[0], json!({}));
    assert_eq!(answers[1]["paused"], json!(true));
    for a in &answers[2..5] {
        assert_eq!(a["error"], "not_understood", "{a}");
        assert!(a["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(answers[5], json!({}));
}

#[test]
fn a_killed_worker_is_restarted_by_the_monitor() {
    let d = Daemon::start();
    let first = d.cs.pid("worker").unwrap();
    let listen = d.cs.json(&["status", "--json"])["listen"].clone();
    kill(first, "-9");
    let second = wait_for("a new worker", || {
        let o = d.cs.run(&["status", "--json"]);
        let v: Value = serde_json::from_slice(&o.stdout).ok()?;
        v["pid"].as_u64().filter(|&p| p != u64::from(first))
    });
    assert!(d.cs.log().contains("killed by signal 9"), "{}", d.cs.log());
    assert_eq!(d.cs.pid("worker").map(u64::from), Some(second));
    // The restart is counted, and the daemon's uptime runs on across it.
    let status = d.cs.json(&["status", "--json"]);
    assert_eq!(status["worker_restarts"], 1, "{status}");
    assert!(status["daemon_uptime_seconds"].as_u64() >= status["uptime_seconds"].as_u64(), "{status}");
    assert!(d.cs.ok(&["status"]).contains("worker restarts 1"));
    // Given port 0, the new worker listens where the first did (peers remember the address).
    assert_eq!(status["listen"], listen, "{status}");
}

#[test]
fn a_second_worker_on_the_same_data_dir_is_refused() {
    let d = Daemon::start();
    let o = d.cs.run(&["worker"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already running"), "{}", stderr(&o));
    // The running daemon is unaffected.
    d.cs.ok(&["status"]);
}

#[test]
fn a_busy_port_fails_the_start_at_once_with_the_reason() {
    let a = Daemon::start();
    let busy = a.cs.json(&["status", "--json"])["metrics"].as_str().unwrap().to_owned();
    let b = Clearskies::new();
    let o = b.command(&["start"]).env("CLEARSKIES_METRICS_ADDRESS", &busy).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("cannot serve /metrics on {busy}")), "{}", stderr(&o));
    assert!(stderr(&o).contains("exit status: 4"), "{}", stderr(&o));
    // Not restarted: it would fail the same way.
    assert_eq!(b.log().matches("worker started").count(), 1, "{}", b.log());
    assert!(b.log().contains("not restarting it"), "{}", b.log());
    assert!(!b.socket().exists() && b.pid("worker").is_none() && b.pid("monitor").is_none());
}

#[test]
fn sigterm_stops_the_daemon_cleanly() {
    let cs = Clearskies::new();
    let mut monitor = cs.command(&["start", "--foreground"]).stderr(std::process::Stdio::null()).spawn().unwrap();
    wait_for("the control socket", || UnixStream::connect(cs.socket()).ok());
    // `start --foreground` became the monitor: the same process, now `clearskies-monitor`.
    assert_eq!(cs.pid("monitor"), Some(monitor.id()));
    let exe = std::fs::read_link(format!("/proc/{}/exe", monitor.id())).unwrap();
    assert!(exe.ends_with("clearskies-monitor"), "{}", exe.display());
    kill(monitor.id(), "-TERM");
    let status = wait_for("the monitor to exit", || monitor.try_wait().unwrap());
    assert!(status.success(), "{status}");
    assert!(!cs.socket().exists());
    assert!(cs.pid("worker").is_none() && cs.pid("monitor").is_none());
}

/// `clearskies wait PATH && backup` must not go ahead when the daemon stops in the middle
/// of the wait: that is a lost connection (exit 5), never success.
#[test]
fn wait_fails_when_the_daemon_stops_during_it() {
    let a = Daemon::start();
    // B downloads at 64 KiB/s: a 4 MiB file keeps its share out of sync for a minute.
    let b = Daemon::start_with(&[("CLEARSKIES_DOWNLOAD_LIMIT", "64k")]);
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    std::fs::write(dir_a.path().join("big.bin"), crate::util::noise(4 << 20, 7)).unwrap();
    let code = a.share_code(dir_a.path(), &[]);
    let target = dir_b.path().join("copy");
    let t = target.to_str().unwrap();
    b.cs.ok(&["attach", &code, t, "--peer", &a.listen()]);
    wait_for("B to start fetching", || (b.first_share()["pending_files"].as_u64() >= Some(1)).then_some(()));

    let mut waiting =
        b.cs.command(&["wait", t, "--timeout", "600"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // Once `wait` holds a socket (its connection to the daemon), the daemon stops under it.
    let fds = format!("/proc/{}/fd", waiting.id());
    wait_for("wait to connect to the daemon", || {
        let socket = |e: std::fs::DirEntry| {
            std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
        };
        std::fs::read_dir(&fds).ok()?.flatten().any(socket).then_some(())
    });
    b.cs.ok(&["stop"]);
    let status = wait_for("wait to end", || waiting.try_wait().unwrap());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut waiting.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(5), "wait ended with {status:?}: {err}");
    assert!(err.contains("lost the connection to the daemon"), "{err}");
}

/// With stderr not a terminal (a log, a pipe), `wait` prints a plain progress line every
/// few seconds, and its byte count moves while one large file arrives: a slow 11 MB file is
/// progress too, not 0% until it is whole.
#[test]
fn wait_prints_plain_progress_lines_counting_bytes() {
    // A sends at 1 MB/s: the 11 MB file takes about 11 s.
    let a = Daemon::start_with(&[("CLEARSKIES_UPLOAD_LIMIT", "1M")]);
    let b = Daemon::start();
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    std::fs::write(dir_a.path().join("big.bin"), crate::util::noise(11_000_000, 5)).unwrap();
    let code = a.share_code(dir_a.path(), &[]);
    let target = dir_b.path().join("copy");
    let t = target.to_str().unwrap();
    b.cs.ok(&["attach", &code, t, "--peer", &a.listen()]);
    wait_for("B to start fetching", || (b.first_share()["pending_files"].as_u64() >= Some(1)).then_some(()));

    let out = b.cs.command(&["wait", t, "--timeout", "300"]).output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "wait ended with {:?}: {err}", out.status);
    assert!(!err.contains('\r') && !err.contains('\x1b'), "terminal control on a pipe: {err:?}");
    // "syncing: 1 file to fetch, 4.2 of 11.0 MB done (38%), …"
    let done: Vec<(f64, f64)> = err
        .lines()
        .filter_map(|l| {
            let (before, _) = l.split_once(" MB done")?;
            let (x, y) = before.rsplit_once(", ")?.1.split_once(" of ")?;
            Some((x.parse().ok()?, y.parse().ok()?))
        })
        .collect();
    let moving: Vec<f64> = done.iter().filter(|(x, y)| x < y).map(|(x, _)| *x).collect();
    assert!(moving.len() >= 2, "fewer than two progress lines before the file was whole:\n{err}");
    assert!(moving.windows(2).all(|w| w[0] <= w[1]) && moving[0] < moving[moving.len() - 1], "{err}");
    assert!(err.contains("1 file to fetch") && !err.contains("1 files"), "{err}");
    assert!(err.ends_with('\n'), "{err:?}");
    assert_eq!(std::fs::metadata(target.join("big.bin")).unwrap().len(), 11_000_000);
}

/// Ctrl-C during `wait` exits with 130, as a shell reports an interrupted command, with its
/// progress output ended by a newline.
#[test]
fn wait_interrupted_exits_130_with_its_line_ended() {
    let a = Daemon::start();
    // B downloads at 64 KiB/s: a 4 MiB file keeps its share out of sync for a minute.
    let b = Daemon::start_with(&[("CLEARSKIES_DOWNLOAD_LIMIT", "64k")]);
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    std::fs::write(dir_a.path().join("big.bin"), crate::util::noise(4 << 20, 8)).unwrap();
    let code = a.share_code(dir_a.path(), &[]);
    let target = dir_b.path().join("copy");
    let t = target.to_str().unwrap();
    b.cs.ok(&["attach", &code, t, "--peer", &a.listen()]);

    let mut waiting =
        b.cs.command(&["wait", t, "--timeout", "600"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let err = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let (err, mut pipe) = (err.clone(), waiting.stderr.take().unwrap());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = std::io::Read::read(&mut pipe, &mut buf) {
                err.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    wait_for("a progress line", || err.lock().unwrap().contains("to fetch").then_some(()));
    kill(waiting.id(), "-INT");
    let status = wait_for("wait to end", || waiting.try_wait().unwrap());
    reader.join().unwrap();
    let err = err.lock().unwrap().clone();
    assert_eq!(status.code(), Some(130), "wait ended with {status:?}: {err}");
    assert!(err.ends_with('\n'), "{err:?}");
}

/// Runs `command` to its end, failing the test if it has not exited within the deadline (a
/// monitor that retries instead of failing at once), in which case it is killed.
fn exits_at_once(mut command: std::process::Command, what: &str) -> std::process::Output {
    /// SIGKILL on drop: a monitor given SIGTERM would ask the running daemon to stop.
    struct Killed(Option<std::process::Child>);
    impl Drop for Killed {
        fn drop(&mut self) {
            if let Some(mut child) = self.0.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
    let child = command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut child = Killed(Some(child));
    wait_for(&format!("{what} to exit"), || child.0.as_mut().and_then(|c| c.try_wait().unwrap()));
    child.0.take().unwrap().wait_with_output().unwrap()
}

/// What identifies a running daemon on disk: its pid files and its control socket.
fn daemon_files(cs: &Clearskies) -> (Option<u32>, Option<u32>, u64) {
    use std::os::unix::fs::MetadataExt;
    (cs.pid("monitor"), cs.pid("worker"), std::fs::metadata(cs.socket()).map(|m| m.ino()).unwrap_or(0))
}

#[test]
fn a_second_foreground_start_fails_at_once_and_leaves_the_running_daemon_alone() {
    let d = Daemon::start();
    let before = daemon_files(&d.cs);
    assert!(before.0.is_some() && before.1.is_some() && before.2 != 0, "{before:?}");
    let o = exits_at_once(d.cs.command(&["start", "--foreground"]), "a second start --foreground");
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("already running"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("worker started"), "no worker was started: {}", stderr(&o));
    // The first daemon still runs, with its pid files and socket as they were.
    assert_eq!(daemon_files(&d.cs), before);
    let status = d.cs.json(&["status", "--json"]);
    assert_eq!(status["pid"].as_u64(), before.1.map(u64::from), "{status}");
    assert_eq!(status["worker_restarts"], 0, "{status}");
    // A plain second start says so too and changes nothing.
    assert!(d.cs.ok(&["start"]).contains("already running"));
    assert_eq!(daemon_files(&d.cs), before);
}

#[test]
fn without_its_monitor_beside_it_the_daemon_does_not_start_and_says_so() {
    // `clearskies` alone in a directory, as if only it had been copied there.
    let bin = tempfile::tempdir().unwrap();
    let alone = bin.path().join("clearskies");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_clearskies"), &alone).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_clearskies"), &alone).unwrap();
    }
    let cs = Clearskies::new();
    for args in [&["start", "--foreground"][..], &["start"]] {
        let o = exits_at_once(cs.command_of(&alone, args), &format!("{args:?}"));
        assert_eq!(o.status.code(), Some(4), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        let monitor = bin.path().join("clearskies-monitor");
        assert!(err.contains(&format!("its monitor {} is missing", monitor.display())), "{args:?}: {err}");
        assert!(!cs.home().join("monitor.pid").exists() && !cs.home().join("worker.pid").exists());
        assert!(!cs.socket().exists());
    }
}

#[test]
fn a_data_dir_whose_control_socket_path_is_too_long_is_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    // Unix socket paths are at most 107 bytes (108 with the NUL) on Linux.
    let home = tmp.path().join("d".repeat(60)).join("e".repeat(60));
    let cs = Clearskies::new();
    for args in [&["start", "--foreground"][..], &["start"]] {
        let mut command = cs.command(args);
        command.env("CLEARSKIES_HOME", &home);
        let o = exits_at_once(command, &format!("{args:?}"));
        assert_eq!(o.status.code(), Some(4), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("too long") && err.contains("CLEARSKIES_HOME"), "{args:?}: {err}");
        assert!(!err.contains("worker started"), "{args:?}: {err}");
        let log = std::fs::read_to_string(home.join("log")).unwrap_or_default();
        assert!(!log.contains("worker started"), "{args:?}: {log}");
        assert!(!home.join("monitor.pid").exists() && !home.join("worker.pid").exists());
    }
}
