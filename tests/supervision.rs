//! Inside the worker, a panicking actor is restarted alone: syncs go on, the restart is
//! counted, the worker process is never restarted. A worker killed again and again is
//! restarted by the monitor, with a growing delay, for as long as it takes.

use std::fs;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::util::{kill, try_http_get, wait_for, Clearskies, Daemon};

fn metric(d: &Daemon, series: &str) -> Option<f64> {
    let (_, text) = try_http_get(&d.metrics_addr(), "/metrics")?;
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn random(n: usize, seed: u8) -> Vec<u8> {
    let mut x = u64::from(seed) + 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

fn arrived(path: &Path, data: &[u8]) -> Option<()> {
    (fs::read(path).ok()? == data).then_some(())
}

/// `a` (started with `--danger-fault-injection`) shares a directory, `b` attached to it.
struct FaultPair {
    a: Daemon,
    b: Daemon,
    ra: PathBuf,
    rb: PathBuf,
    _base: tempfile::TempDir,
}

fn fault_pair() -> FaultPair {
    let a = Daemon::start_args(&[], &["--danger-fault-injection"]);
    let b = Daemon::start();
    let base = tempfile::tempdir().unwrap();
    let (ra, rb) = (base.path().join("a"), base.path().join("b"));
    fs::create_dir_all(&ra).unwrap();
    let code = a.share_code(&ra, &[]);
    b.cs.ok(&["attach", &code, rb.to_str().unwrap(), "--peer", &a.listen()]);
    FaultPair { a, b, ra, rb, _base: base }
}

#[test]
fn each_actor_kind_is_restarted_alone_while_files_sync() {
    let FaultPair { a, b: _b, ra, rb, _base } = fault_pair();
    let worker = a.cs.pid("worker").unwrap();

    let kinds = ["transfer", "share", "listener", "control", "metrics", "discovery", "peer"];
    for (i, kind) in kinds.into_iter().enumerate() {
        // A file on its way from a to b while the actor crashes.
        let data = random(8 << 20, u8::try_from(i).unwrap());
        let name = format!("during-{kind}.bin");
        fs::write(ra.join(&name), &data).unwrap();
        a.cs.ok(&["inject-fault", "panic", kind]);
        wait_for(&format!("{name} to reach b after the {kind} actor crashed"), || arrived(&rb.join(&name), &data));
        let series = format!("clearskies_actor_restarts_total{{actor=\"{kind}\"}}");
        wait_for(&format!("the {kind} restart to be counted"), || (metric(&a, &series)? == 1.0).then_some(()));
        // And the other direction still works afterwards.
        let back = format!("after-{kind}.txt");
        fs::write(rb.join(&back), kind).unwrap();
        wait_for(&format!("{back} to reach a"), || arrived(&ra.join(&back), kind.as_bytes()));
    }
    let status = a.cs.json(&["status", "--json"]);
    assert_eq!(status["actor_restarts"], 7, "{status}");
    assert_eq!(status["worker_restarts"], 0, "{status}");
    assert_eq!(a.cs.pid("worker"), Some(worker), "the worker process was not restarted");
    assert_eq!(a.cs.log().matches("injected fault: panic").count(), 7);
}

#[test]
fn a_crashed_owner_of_the_workers_state_restarts_the_worker_and_sync_resumes() {
    // The share registry, access and connections hold state that a panic leaves half
    // updated: the worker stops and the monitor starts a fresh one.
    let FaultPair { a, b: _b, ra, rb, _base } = fault_pair();
    for (i, kind) in ["connections", "access", "shares"].into_iter().enumerate() {
        let worker = a.cs.pid("worker").unwrap();
        a.cs.ok(&["inject-fault", "panic", kind]);
        wait_for(&format!("a new worker after the {kind} owner crashed"), || {
            let pid = a.cs.pid("worker").filter(|p| *p != worker)?;
            std::os::unix::net::UnixStream::connect(a.cs.socket()).ok().map(|_| pid)
        });
        let data = random(1 << 20, u8::try_from(i).unwrap());
        let name = format!("after-{kind}.bin");
        fs::write(ra.join(&name), &data).unwrap();
        wait_for(&format!("{name} to reach b"), || arrived(&rb.join(&name), &data));
        let status = a.cs.json(&["status", "--json"]);
        assert_eq!(status["worker_restarts"], i + 1, "{status}");
    }
    let log = a.cs.log();
    assert_eq!(log.matches("an owner of the daemon's state crashed").count(), 3, "{log}");
}

#[test]
fn a_stalled_peer_and_a_failed_index_write_only_delay_the_sync() {
    let FaultPair { a, b: _b, ra, rb, _base } = fault_pair();
    wait_for("b to connect", || (a.peers() == 1).then_some(()));

    // The connection stops reading for 3 s: the change arrives afterwards, nothing is lost.
    a.cs.ok(&["inject-fault", "stall", "3"]);
    fs::write(rb.join("while-stalled.txt"), b"patience").unwrap();
    wait_for("the change made during the stall", || arrived(&ra.join("while-stalled.txt"), b"patience"));
    assert!(a.cs.log().contains("injected fault: stalling the connection"));

    // The next index write fails (the scan of this new file): it is retried, and syncs.
    a.cs.ok(&["inject-fault", "fail-db-write"]);
    let data = random(1 << 20, 42);
    fs::write(ra.join("after-a-failed-write.bin"), &data).unwrap();
    wait_for("the file whose first index write failed", || arrived(&rb.join("after-a-failed-write.bin"), &data));
    assert!(a.cs.log().contains("injected fault: the index write failed"), "{}", a.cs.log());
    let status = a.cs.json(&["status", "--json"]);
    assert_eq!(status["health"]["healthy"], true, "{status}");
}

#[test]
fn fault_injection_needs_the_flag() {
    let d = Daemon::start();
    let out = d.cs.run(&["inject-fault", "panic", "share"]);
    assert!(!out.status.success());
    assert!(crate::util::stderr(&out).contains("not_understood"), "{}", crate::util::stderr(&out));
}

/// A child process killed when dropped, so that a failed test leaves nothing running.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn the_monitor_never_gives_up_on_a_worker_killed_again_and_again() {
    // What the kernel's OOM killer would do to a worker some input blows up: SIGKILL, six
    // times in a row, within 60 s. The monitor used to give up for good at the fifth (exit
    // 3); it now goes on restarting, waiting 0.5, 1, 2, 4, 8, 16 s (and on up to 5 minutes).
    // (No fault-injection hook can kill the worker process: SIGKILL is the realistic one.)
    let cs = Clearskies::new();
    // The monitor logs to its stderr, kept here.
    let stderr_path = cs.home().join("monitor.stderr");
    let stderr_file = fs::File::create(&stderr_path).unwrap();
    let mut monitor = Reaped(cs.command(&["start", "--foreground"]).stderr(stderr_file).spawn().unwrap());
    let monitor_log = || fs::read_to_string(&stderr_path).unwrap_or_default();
    let started = std::time::Instant::now();
    let mut killed: Vec<u32> = Vec::new();
    let mut up = |what: &str, killed: &Vec<u32>| {
        wait_for(what, || {
            if let Some(status) = monitor.0.try_wait().unwrap() {
                panic!("the monitor exited ({status}) after {killed:?} were killed:\n{}", monitor_log());
            }
            let pid = cs.pid("worker").filter(|p| !killed.contains(p))?;
            UnixStream::connect(cs.socket()).ok().map(|_| pid)
        })
    };
    for round in 1..=6 {
        let pid = up(&format!("worker {round}"), &killed);
        kill(pid, "-9");
        killed.push(pid);
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "six crashes took {:?}", started.elapsed());
    // A seventh worker comes up, 16 s after the sixth crash, and serves.
    up("the seventh worker", &killed);
    let status = cs.json(&["status", "--json"]);
    assert_eq!(status["worker_restarts"], 6, "{status}");
    let log = monitor_log();
    for n in [5, 6] {
        assert!(log.contains(&format!("the worker keeps crashing ({n} times in a row")), "{log}");
    }
    assert!(log.contains("restarting it in 16.0s"), "{log}");
    // And it still stops cleanly.
    kill(monitor.0.id(), "-TERM");
    let status = wait_for("the monitor to exit", || monitor.0.try_wait().unwrap());
    assert!(status.success(), "{status}");
}
