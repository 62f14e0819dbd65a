//! Finding peers without typing an address: a tracker process, LAN broadcast on loopback.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::util::{wait_for, Daemon};

/// A `clearskies tracker` process on loopback, killed on drop.
struct Tracker {
    child: Child,
    addr: String,
}

impl Tracker {
    fn start(addr: &str) -> Tracker {
        Tracker::start_args(addr, &[])
    }

    fn start_args(addr: &str, args: &[&str]) -> Tracker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_clearskies"))
            .args(["tracker", "--listen", addr])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the tracker");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("tracker listening on ").expect("the tracker's address").to_owned();
        Tracker { child, addr }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn same_file(a: &Path, b: &Path) -> Option<()> {
    (std::fs::read(a).ok()? == std::fs::read(b).ok()?).then_some(())
}

fn sources(d: &Daemon) -> Vec<String> {
    let p = d.cs.json(&["peers", "--json"]);
    p["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["state"] == "connected")
        .map(|e| e["source"].to_string())
        .collect()
}

#[test]
fn through_a_tracker_even_after_a_port_change_and_a_tracker_restart() {
    let tracker = Tracker::start("127.0.0.1:0");
    let env = [("CLEARSKIES_TRACKERS", tracker.addr.as_str())];
    let (a, b) = (Daemon::start_with(&env), Daemon::start_with(&env));
    let base = tempfile::tempdir().unwrap();
    let (ra, rb) = (base.path().join("a"), base.path().join("b"));
    std::fs::create_dir(&ra).unwrap();
    std::fs::write(ra.join("hello.txt"), b"found through the tracker").unwrap();
    // Garbage from other clients costs the tracker only those clients.
    for junk in [&b"m99999999999{"[..], b"m5{]]]]", b"\x00\x01\x02", b"m17{\"type\":\"x.y\"}"] {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(&tracker.addr).unwrap();
        let _ = s.write_all(junk);
    }
    let code = a.share_code(&ra, &[]);
    // No --peer: the tracker introduces them.
    b.cs.ok(&["attach", &code, rb.to_str().unwrap()]);
    wait_for("the file", || same_file(&ra.join("hello.txt"), &rb.join("hello.txt")));

    // The tracker restarts on the same address, and a comes back on another port: b's
    // remembered address is stale; the tracker tells b the new one.
    let tracker_addr = tracker.addr.clone();
    drop(tracker);
    a.cs.ok(&["stop"]);
    let tracker = Tracker::start(&tracker_addr);
    a.cs.ok(&["start"]);
    std::fs::write(ra.join("second.txt"), b"after the move").unwrap();
    wait_for("the second file", || same_file(&ra.join("second.txt"), &rb.join("second.txt")));
    // Both learn of each other from the tracker; whichever dials first lists it as found there.
    wait_for("a session listed as found by the tracker", || {
        let all = [sources(&a), sources(&b)].concat();
        all.contains(&"\"tracker\"".to_owned()).then_some(())
    });
    drop(tracker);
}

#[test]
fn through_lan_broadcast_on_loopback() {
    // A free UDP port on loopback for this test's broadcasts.
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let env = [
        ("CLEARSKIES_LAN_DISCOVERY", "true"),
        ("CLEARSKIES_BROADCAST_ADDRESS", "127.255.255.255"),
        ("CLEARSKIES_BROADCAST_PORT", port.as_str()),
    ];
    let (a, b) = (Daemon::start_with(&env), Daemon::start_with(&env));
    let base = tempfile::tempdir().unwrap();
    let (ra, rb) = (base.path().join("a"), base.path().join("b"));
    std::fs::create_dir(&ra).unwrap();
    std::fs::write(ra.join("hello.txt"), b"found on the LAN").unwrap();
    let code = a.share_code(&ra, &[]);
    b.cs.ok(&["attach", &code, rb.to_str().unwrap()]);
    wait_for("the file", || same_file(&ra.join("hello.txt"), &rb.join("hello.txt")));

    // Hostile datagrams on the same port change nothing and break nothing.
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_broadcast(true).unwrap();
    let target = format!("127.255.255.255:{port}");
    for junk in [
        &b"\xff\xfe garbage"[..],
        b"{}",
        br#"{"name":"ClearSkiesBroadcast","version":1,"id":"00","peer":"11","myport":1}"#,
    ] {
        for _ in 0..200 {
            s.send_to(junk, &target).unwrap();
        }
    }
    std::fs::write(ra.join("second.txt"), b"still syncing").unwrap();
    wait_for("the second file", || same_file(&ra.join("second.txt"), &rb.join("second.txt")));
    a.cs.ok(&["status"]);
    b.cs.ok(&["status"]);
}

#[test]
fn attach_without_an_address_gives_up_clearly() {
    let b = Daemon::start_with(&[("CLEARSKIES_TRACKERS", "127.0.0.1:1")]);
    let base = tempfile::tempdir().unwrap();
    let code = b.cs.json(&["code", "new", "--json"])["access_code"].as_str().unwrap().to_owned();
    let target = base.path().join("nowhere");
    let o = b.cs.run(&["attach", &code, target.to_str().unwrap(), "--timeout", "2"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(crate::util::stderr(&o).contains("no_peer_found"), "{}", crate::util::stderr(&o));
}

#[test]
fn forged_lan_broadcasts_cost_a_bounded_number_of_dials_and_answers() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let port_text = port.to_string();
    let env = [
        ("CLEARSKIES_LAN_DISCOVERY", "true"),
        ("CLEARSKIES_BROADCAST_ADDRESS", "127.255.255.255"),
        ("CLEARSKIES_BROADCAST_PORT", port_text.as_str()),
    ];
    let a = Daemon::start_with(&env);
    let dir = tempfile::tempdir().unwrap();
    a.share_code(dir.path(), &[]);
    let (id, _) = crate::flood::share_key(&a, dir.path());
    let me = a.first_share()["peer_id"].as_str().unwrap().to_owned();

    // Where the forged broadcasts say the senders listen (each its own port: A dials each
    // address once at a time): every dial of A is accepted and closed here, and counted.
    let dials = Arc::new(AtomicU64::new(0));
    let listeners: Vec<std::net::TcpListener> =
        (0..300).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().unwrap().port()).collect();
    let counted = dials.clone();
    std::thread::spawn(move || loop {
        for l in &listeners {
            l.set_nonblocking(true).unwrap();
            while let Ok(s) = l.accept() {
                counted.fetch_add(1, Ordering::Relaxed);
                drop(s);
            }
        }
        std::thread::park_timeout(Duration::from_millis(10));
    });
    // A's answers: its broadcasts for the ID, heard on the port as the daemons hear them.
    let answers = Arc::new(AtomicU64::new(0));
    let heard = answers.clone();
    let ear = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    ear.set_reuse_address(true).unwrap();
    ear.set_reuse_port(true).unwrap();
    ear.bind(&std::net::SocketAddr::from(([0, 0, 0, 0], port)).into()).unwrap();
    let ear: std::net::UdpSocket = ear.into();
    let id_text = id.to_string();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok(n) = ear.recv(&mut buf) {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&buf[..n]) else { continue };
            if v["id"] == id_text.as_str() && v["peer"] == me.as_str() {
                heard.fetch_add(1, Ordering::Relaxed);
            }
        }
    });

    // 300 broadcasts for A's share, each from a "new peer" (IDs above A's: A dials at once).
    let before = answers.load(Ordering::Relaxed);
    let started = Instant::now();
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_broadcast(true).unwrap();
    for (i, myport) in ports.iter().enumerate() {
        let peer = format!("ffff{i:028x}");
        let b = serde_json::json!({"name": "ClearSkiesBroadcast", "version": 1, "id": id.to_string(), "peer": peer, "myport": myport});
        s.send_to(b.to_string().as_bytes(), ("127.255.255.255", port)).unwrap();
    }
    wait_for("A to dial some of them", || (dials.load(Ordering::Relaxed) >= 5).then_some(()));
    // Whatever A does about them, it does within a few seconds: watch that long.
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(5) {
        std::thread::park_timeout(Duration::from_millis(50));
    }
    let secs = started.elapsed().as_secs();
    let (dialled, answered) = (dials.load(Ordering::Relaxed), answers.load(Ordering::Relaxed) - before);
    eprintln!("forged LAN broadcasts: {dialled} dials and {answered} answers in {secs} s");
    assert!(dialled <= 32 + secs / 2 + 1, "{dialled} dials in {secs} s");
    assert!(answered <= secs / 2 + 2, "{answered} answers in {secs} s");
    a.cs.ok(&["status"]);
}

/// A raw tracker client: `tracker.start`, its address, one club.
async fn tracker_client(
    addr: &str,
    club: clearskies_protocol::Sha256Hash,
    n: u8,
) -> (clearskies_actors::discovery::wire::MessageReader<tokio::net::tcp::OwnedReadHalf>, tokio::net::tcp::OwnedWriteHalf)
{
    use clearskies_actors::discovery::wire::{encode, MessageReader};
    use clearskies_protocol::message::tracker::{Connection, Register, Start};
    use tokio::io::AsyncWriteExt;
    let (read, mut write) = tokio::net::TcpStream::connect(addr).await.unwrap().into_split();
    let start = Start { software: "test".into(), protocol: 1, ttl: 600, extensions: vec![] };
    let mut out = encode(&start.into());
    out.extend(encode(&Connection { addresses: vec![format!("tcp:10.0.0.{n}:1")] }.into()));
    out.extend(encode(&Register { ids: [(club, clearskies_protocol::PeerId([n; 16]))].into() }.into()));
    write.write_all(&out).await.unwrap();
    (MessageReader::new(read), write)
}

#[test]
fn a_churning_tracker_client_costs_its_club_coalesced_news_and_the_tracker_is_capped() {
    use clearskies_actors::discovery::wire::encode;
    use clearskies_protocol::message::tracker::Connection;
    use clearskies_protocol::message::Message;
    use std::time::{Duration, Instant};
    use tokio::io::AsyncWriteExt;

    let tracker = Tracker::start_args("127.0.0.1:0", &["--max-clients", "40", "--max-members", "30"]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let club = clearskies_protocol::Sha256Hash([7; 32]);
        let (mut watcher, _w) = tracker_client(&tracker.addr, club, 1).await;
        let mut members = Vec::new();
        for n in 2..=30 {
            members.push(tracker_client(&tracker.addr, club, n).await);
        }
        // The club is full: a 31st member is not listed to anyone.
        let (_r31, _w31) = tracker_client(&tracker.addr, club, 31).await;
        // The watcher hears of all 29 others (in however many lists).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut last = loop {
            match tokio::time::timeout_at(deadline, watcher.next()).await {
                Ok(Ok(Some(Message::TrackerPeers(p)))) if p.peers.len() == 29 => break p,
                Ok(Ok(Some(_))) => continue,
                other => panic!("no full list: {other:?}"),
            }
        };
        assert!(!last.peers.contains_key(&clearskies_protocol::PeerId([31; 16])));

        // One member changes its address 300 times, as fast as it can.
        let started = Instant::now();
        let (_, churner) = &mut members[0];
        for i in 0..300u32 {
            let c = Connection { addresses: vec![format!("tcp:10.9.{}.{}:2", i / 256, i % 256)] };
            churner.write_all(&encode(&c.into())).await.unwrap();
        }
        let final_address = vec!["tcp:10.9.1.43:2".to_owned()];
        let mut lists = 0u32;
        while last.peers.get(&clearskies_protocol::PeerId([2; 16])) != Some(&final_address) {
            match tokio::time::timeout_at(deadline, watcher.next()).await {
                Ok(Ok(Some(Message::TrackerPeers(p)))) => {
                    lists += 1;
                    last = p;
                }
                Ok(Ok(Some(_))) => {}
                other => panic!("the final address never came: {other:?}"),
            }
        }
        let secs = started.elapsed().as_secs_f64();
        eprintln!("tracker: 300 changes reached a member as {lists} lists in {secs:.1} s");
        // At most one list per round (every 0.5 s), not one per change.
        assert!(f64::from(lists) <= secs * 2.0 + 3.0, "{lists} lists in {secs:.1} s");

        // The tracker is full (40 clients): the next connection is closed at once.
        let mut more = Vec::new();
        for n in 32..=40 {
            more.push(tracker_client(&tracker.addr, clearskies_protocol::Sha256Hash([n; 32]), n).await);
        }
        let (mut refused, _w) = tracker_client(&tracker.addr, club, 41).await;
        match tokio::time::timeout(Duration::from_secs(30), refused.next()).await {
            Ok(Ok(None)) | Ok(Err(_)) => {}
            other => panic!("a client over the cap was served: {other:?}"),
        }
    });
    drop(tracker);
}
