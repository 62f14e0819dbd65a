//! Memory amplification: no single message a peer sends, however it is shaped, raises the
//! worker's peak resident memory (VmHWM) by 64 MiB or more. Each case runs against a fresh
//! daemon over a real authenticated session: the peak is read from `/proc/PID/status` once
//! the session is up and used, and again once the daemon has dealt with the message (it
//! answered the next request, or closed the connection).

use std::time::Duration;

use clearskies_protocol::gzip;
use clearskies_protocol::message::{database::GetUpdates, Message};
use clearskies_protocol::session::{Event, EXT_DATABASE, EXT_DIRECTORY, EXT_GZIP, EXT_MSGPACK};

use crate::raw_client::{channel_with_code, client_config, RawClient, Read};
use crate::util::Daemon;

/// The most one message may add to the worker's peak memory.
const LIMIT_KIB: u64 = 64 * 1024;
/// A frame body at the spec's limit.
const BODY: usize = 16 << 20;

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the worker's /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// `m<L><body>`.
fn frame(body: &[u8]) -> Vec<u8> {
    [format!("m{}", body.len()).into_bytes(), body.to_vec()].concat()
}

/// A JSON body of `type` padded with an array of zeros to exactly `len` bytes: some eight
/// million tiny values, the shape that costs a generic tree the most.
fn json_of_zeros(kind: &str, len: usize) -> Vec<u8> {
    let head = format!(r#"{{"type":"{kind}","pad":[0"#).into_bytes();
    let mut body = head;
    while body.len() + 2 + 2 <= len {
        body.extend_from_slice(b",0");
    }
    body.extend_from_slice(b"]}");
    body.resize(len, b' ');
    body
}

/// A MessagePack body `{"type": kind, "pad": [nil, nil, …]}` of `len` bytes: one value per
/// byte.
fn msgpack_of_nils(kind: &str, len: usize) -> Vec<u8> {
    let mut body = vec![0x82, 0xa4];
    body.extend_from_slice(b"type");
    body.push(0xd9);
    body.push(u8::try_from(kind.len()).unwrap());
    body.extend_from_slice(kind.as_bytes());
    body.extend_from_slice(&[0xa3, b'p', b'a', b'd', 0xdd]);
    let n = len - body.len() - 4;
    body.extend_from_slice(&u32::try_from(n).unwrap().to_be_bytes());
    body.resize(len, 0xc0);
    body
}

/// How a case's session is set up and what it sends.
struct Case {
    what: &'static str,
    gzip: bool,
    msgpack: bool,
    /// Raw bytes sent once the session is ready (whole gzip units on a gzip session).
    hostile: Vec<Vec<u8>>,
    /// Whether the daemon must close the connection (else it must go on answering).
    closes: bool,
}

/// Runs `case` against a fresh daemon; returns the worker's peak memory growth in KiB.
fn peak_growth(case: Case) -> u64 {
    let d = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let code = d.share_code(dir.path(), &["--multi-use"]);
    let pid = d.cs.pid("worker").expect("a running worker");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (before, after) = rt.block_on(run(&d.listen(), &code, pid, case));
    // The daemon is still there and answering.
    d.cs.ok(&["status"]);
    after.saturating_sub(before)
}

async fn run(addr: &str, code: &str, pid: u32, case: Case) -> (u64, u64) {
    let ch = channel_with_code(addr, code).await;
    let mut extensions = vec![EXT_DATABASE, EXT_DIRECTORY];
    if case.gzip {
        extensions.push(EXT_GZIP);
    }
    if case.msgpack {
        extensions.push(EXT_MSGPACK);
    }
    let mut c = RawClient::new(ch, client_config(0x67, &extensions, true), Duration::from_secs(120));
    // Stage 0: until ready, then a first request (the baseline includes a used session);
    // 1: its answer, then the hostile bytes and another request; 2: the end.
    let (mut stage, mut before) = (0, 0);
    let what = case.what;
    let mut hostile = Some(case.hostile);
    loop {
        while let Some(e) = c.session.poll_event() {
            match e {
                Event::KeysReceived(_) => c.session.acknowledge_keys().unwrap(),
                Event::Ready => c.session.send(&Message::from(GetUpdates::default())).unwrap(),
                Event::Message(m) if matches!(m.message, Message::DatabaseUpdatesDone(_)) => {
                    stage += 1;
                    if stage == 1 {
                        before = peak_rss_kib(pid);
                        for bytes in hostile.take().unwrap_or_default() {
                            c.send_raw(bytes);
                        }
                        if !case.closes {
                            c.session.send(&Message::from(GetUpdates::default())).unwrap();
                        }
                    } else {
                        assert!(!case.closes, "{what}: the connection stayed open");
                        c.finish().await;
                        return (before, peak_rss_kib(pid));
                    }
                }
                _ => {}
            }
        }
        match c.read().await {
            Read::Data(_) => {}
            Read::Closed => {
                assert!(stage == 1 && case.closes, "{what}: the connection was closed (stage {stage})");
                return (before, peak_rss_kib(pid));
            }
            Read::TimedOut => panic!("{what}: no end: the daemon neither closed the connection nor answered"),
        }
    }
}

fn assert_bounded(case: Case) {
    let what = case.what;
    let growth = peak_growth(case);
    eprintln!("{what}: worker peak RSS grew by {} KiB", growth);
    assert!(growth < LIMIT_KIB, "{what}: the worker's peak RSS grew by {growth} KiB (limit {LIMIT_KIB} KiB)");
}

#[test]
fn a_16_mib_json_body_of_an_unknown_type() {
    let body = json_of_zeros(".com.example.unknown", BODY);
    assert_bounded(Case {
        what: "16 MiB unknown JSON",
        gzip: false,
        msgpack: false,
        hostile: vec![frame(&body)],
        closes: false,
    });
}

#[test]
fn a_gzip_bomb_of_json() {
    let unit = gzip::compress(&frame(&json_of_zeros(".com.example.unknown", BODY)), 9);
    assert!(unit.len() < 64 << 10, "{} bytes on the wire", unit.len());
    assert_bounded(Case { what: "gzip JSON bomb", gzip: true, msgpack: false, hostile: vec![unit], closes: false });
}

#[test]
fn a_msgpack_body_of_many_tiny_values() {
    // The review's case: 16 KiB on the wire, 16 MiB inflated, sixteen million nils.
    let unit = gzip::compress(&frame(&msgpack_of_nils(".com.example.unknown", BODY)), 9);
    assert!(unit.len() < 64 << 10, "{} bytes on the wire", unit.len());
    assert_bounded(Case {
        what: "MessagePack nils, unknown type",
        gzip: true,
        msgpack: true,
        hostile: vec![unit],
        closes: false,
    });
    // The same as a known type: refused by its count of values, before any struct is built.
    let unit = gzip::compress(&frame(&msgpack_of_nils("database.update", BODY)), 9);
    assert_bounded(Case {
        what: "MessagePack nils, known type",
        gzip: true,
        msgpack: true,
        hostile: vec![unit],
        closes: true,
    });
}

#[test]
fn msgpack_bodies_with_huge_claimed_lengths_and_deep_nesting() {
    let head = |kind: &str| {
        let mut b = vec![0x82, 0xa4];
        b.extend_from_slice(b"type");
        b.push(0xd9);
        b.push(u8::try_from(kind.len()).unwrap());
        b.extend_from_slice(kind.as_bytes());
        b.extend_from_slice(&[0xa1, b'x']);
        b
    };
    let cases: Vec<(&'static str, Vec<u8>)> = vec![
        (
            "an array claiming 2^32-1 elements",
            [head("database.update"), vec![0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0]].concat(),
        ),
        (
            "a map claiming 2^32-1 entries",
            [head("database.update"), vec![0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0]].concat(),
        ),
        ("a string claiming 4 GiB", [head(".x"), vec![0xdb, 0xff, 0xff, 0xff, 0xff, b'x']].concat()),
        ("nesting 4 million deep", [head("database.update"), vec![0x91; 4 << 20], vec![0xc0]].concat()),
        ("nesting 1 million deep in maps", [head(".x"), [0x81, 0xa0].repeat(1 << 20), vec![0xc0]].concat()),
    ];
    for (what, body) in cases {
        let unit = gzip::compress(&frame(&body), 9);
        assert_bounded(Case { what, gzip: true, msgpack: true, hostile: vec![unit], closes: true });
    }
}
