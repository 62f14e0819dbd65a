//! Strangers flooding the peer port: idle connections, and SRP attempts naming a share key
//! ID. The daemon stays answerable, established and new honest peers keep working.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clearskies_actors::peer::channel::{connect, ChannelError, TlsContext};
use clearskies_protocol::Sha256Hash;

use crate::util::{stderr, wait_for, Clearskies, Daemon};

/// A daemon whose processes run with at most `hard` file descriptors, `soft` to begin with
/// (the worker raises its soft limit to the hard one).
fn daemon_with_fd_limits(soft: u32, hard: u32) -> Daemon {
    let cs = Clearskies::new();
    let start = cs.command(&["start"]);
    let mut bash = Command::new("bash");
    let script = format!("ulimit -Sn {soft} && ulimit -Hn {hard} && exec \"$0\" \"$@\"");
    bash.arg("-c").arg(script).arg(start.get_program()).args(start.get_args());
    for (k, v) in start.get_envs() {
        match v {
            Some(v) => bash.env(k, v),
            None => bash.env_remove(k),
        };
    }
    let o = bash.output().expect("running clearskies start under bash");
    assert!(o.status.success(), "start failed: {}\n{}", stderr(&o), cs.log());
    Daemon { cs }
}

/// `clearskies status` must answer within `limit`.
fn status_within(d: &Daemon, limit: Duration) {
    let mut child = d.cs.command(&["status"]).stdout(std::process::Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            assert!(s.success(), "status failed during the flood");
            return;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("status did not answer within {limit:?} during the flood");
        }
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

/// Idle connections to `target` from 127.0.0.2… (`sources` addresses, `per_source` each),
/// reopened as soon as the daemon closes them, until dropped.
struct Flood {
    stop: Arc<AtomicBool>,
    attempts: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flood {
    fn start(target: SocketAddr, sources: u8, per_source: usize) -> Flood {
        let (stop, attempts) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (stop2, attempts2) = (stop.clone(), attempts.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let from: Vec<IpAddr> = (0..sources).map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i))).collect();
                let mut slots: Vec<Option<tokio::net::TcpStream>> =
                    (0..from.len() * per_source).map(|_| None).collect();
                let mut buf = [0u8; 512];
                // The attacker sweeps its slots at a fixed rate (a rate, not a wait for a
                // result: the test itself polls the daemon with deadlines).
                let mut sweeps = tokio::time::interval(Duration::from_millis(200));
                sweeps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while !stop2.load(Ordering::Relaxed) {
                    sweeps.tick().await;
                    for (i, slot) in slots.iter_mut().enumerate() {
                        if let Some(s) = slot {
                            match s.try_read(&mut buf) {
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                                Ok(n) if n > 0 => continue,
                                _ => *slot = None,
                            }
                        }
                        let Ok(socket) = tokio::net::TcpSocket::new_v4() else { continue };
                        if socket.bind(SocketAddr::new(from[i % from.len()], 0)).is_err() {
                            continue;
                        }
                        attempts2.fetch_add(1, Ordering::Relaxed);
                        if let Ok(Ok(s)) =
                            tokio::time::timeout(Duration::from_millis(200), socket.connect(target)).await
                        {
                            *slot = Some(s);
                        }
                    }
                }
            });
        });
        Flood { stop, attempts, thread: Some(thread) }
    }

    fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The worker's "Max open files" (soft, hard) from /proc.
fn worker_fd_limits(d: &Daemon) -> (String, String) {
    let pid = d.cs.pid("worker").expect("a running worker");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("Max open files");
    let mut f = line.split_whitespace().skip(3);
    (f.next().unwrap().to_owned(), f.next().unwrap().to_owned())
}

#[test]
fn a_flood_of_idle_connections_leaves_the_daemon_and_honest_peers_working() {
    let a = daemon_with_fd_limits(128, 256);
    assert_eq!(worker_fd_limits(&a), ("256".to_owned(), "256".to_owned()), "the soft limit is raised to the hard one");
    let (b, c) = (Daemon::start(), Daemon::start());
    let base = tempfile::tempdir().unwrap();
    let (ra, rb, rc) = (base.path().join("a"), base.path().join("b"), base.path().join("c"));
    std::fs::create_dir(&ra).unwrap();
    std::fs::write(ra.join("before.txt"), b"before the flood").unwrap();
    let code = a.share_code(&ra, &[]);
    b.cs.ok(&["attach", &code, rb.to_str().unwrap(), "--peer", &a.listen()]);
    b.cs.ok(&["wait", rb.to_str().unwrap(), "--timeout", "30"]);

    // 20 addresses, 16 connections each, reopened as soon as they are closed: more than the
    // worker has descriptors.
    let target: SocketAddr = a.listen().parse().unwrap();
    let flood = Flood::start(target, 20, 16);
    wait_for("the flood to be under way", || (flood.attempts() >= 320).then_some(()));

    status_within(&a, Duration::from_secs(10));
    // The established peer still syncs…
    std::fs::write(ra.join("during.txt"), b"written during the flood").unwrap();
    wait_for("the file at the established peer", || {
        (std::fs::read(rb.join("during.txt")).ok()? == b"written during the flood").then_some(())
    });
    // …and a new one can join (from 127.0.0.1, an address not in the flood).
    let code = a.share_code(&ra, &[]);
    c.cs.ok(&["attach", &code, rc.to_str().unwrap(), "--peer", &a.listen()]);
    c.cs.ok(&["wait", rc.to_str().unwrap(), "--timeout", "30"]);
    assert_eq!(std::fs::read(rc.join("during.txt")).unwrap(), b"written during the flood");
    status_within(&a, Duration::from_secs(10));
    assert!(flood.attempts() >= 320);
    let attempts = flood.attempts();
    drop(flood);
    // Refusals are summed up in the log (at once, then at most every 10 s), not one line each.
    let summaries = wait_for("the flood summed up in the log twice", || {
        let log = a.cs.log();
        let lines: Vec<String> =
            log.lines().filter(|l| l.contains("closed connections before authentication")).map(str::to_owned).collect();
        (lines.len() >= 2).then_some(lines)
    });
    eprintln!("flood: {attempts} connection attempts; log: {summaries:#?}");
}

/// The read-write key ID and key (hex) of the share at `dir`, from `keys export`.
pub(crate) fn share_key(d: &Daemon, dir: &std::path::Path) -> (Sha256Hash, String) {
    let keys: serde_json::Value = serde_json::from_str(&d.cs.ok(&["keys", "export", dir.to_str().unwrap()])).unwrap();
    let entry = keys["keys"]["keys"].as_array().unwrap().iter().find(|e| e["access_level"] == "read_write").unwrap();
    let id: Sha256Hash = serde_json::from_value(entry["id"].clone()).unwrap();
    (id, entry["key"].as_str().unwrap().to_owned())
}

/// TLS + SRP with `id`/`password` from `from` to `target`.
async fn try_key(target: SocketAddr, from: Ipv4Addr, id: Sha256Hash, password: &str) -> Result<(), ChannelError> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0)).unwrap();
    let tcp = socket.connect(target).await?;
    connect(tcp.into(), &TlsContext::new().unwrap(), id, password).await.map(drop)
}

#[test]
fn failed_share_key_attempts_are_throttled_and_honest_reconnects_are_not() {
    let a = Daemon::start();
    let b = Daemon::start();
    let base = tempfile::tempdir().unwrap();
    let (ra, rb) = (base.path().join("a"), base.path().join("b"));
    std::fs::create_dir(&ra).unwrap();
    let code = a.share_code(&ra, &[]);
    b.cs.ok(&["attach", &code, rb.to_str().unwrap(), "--peer", &a.listen()]);
    wait_for("the session", || (a.peers() == 1 && b.peers() == 1).then_some(()));
    let (id, key) = share_key(&a, &ra);
    let target: SocketAddr = a.listen().parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    // 50 wrong proofs for the real key ID from one address, one after another.
    let started = Instant::now();
    let (mut failed, mut throttled) = (0u64, 0u64);
    for _ in 0..50 {
        match rt.block_on(try_key(target, Ipv4Addr::new(127, 0, 0, 2), id, "not the key")) {
            Err(ChannelError::AuthFailed { .. }) => failed += 1,
            Err(ChannelError::Refused(m)) if m == "authentication failed" => failed += 1,
            Err(ChannelError::Refused(m)) if m.starts_with("too many authentication attempts") => throttled += 1,
            other => panic!("unexpected answer: {other:?}"),
        }
    }
    // A budget of 30, refilled at one every 2 s.
    let allowed = 30 + started.elapsed().as_secs() / 2 + 1;
    assert!(failed <= allowed, "{failed} wrong proofs reached SRP (allowed {allowed})");
    // (Under heavy load the 50 attempts can take long enough to refill the whole budget.)
    assert!(throttled >= 50u64.saturating_sub(allowed), "{throttled} throttled");
    wait_for("the refusals in the log", || {
        (a.cs.log().matches("too many authentication attempts").count() as u64 >= throttled).then_some(())
    });

    // A peer with the key reconnecting again and again is never held back: successful
    // proofs are refunded. (Another address than the flood's; the same one as b's.)
    for i in 0..60 {
        let r = rt.block_on(try_key(target, Ipv4Addr::LOCALHOST, id, &key));
        assert!(r.is_ok(), "honest reconnect {i} refused: {r:?}");
    }
    // And the real peer reconnects at once after a restart.
    b.cs.ok(&["stop"]);
    wait_for("A to notice", || (a.peers() == 0).then_some(()));
    b.cs.ok(&["start"]);
    wait_for("B back", || (a.peers() == 1 && b.peers() == 1).then_some(()));
}
