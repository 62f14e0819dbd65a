//! Hostile peers: a client that authenticates correctly and then misbehaves loses its own
//! connection, with a logged reason, and nothing else.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::raw_client::{channel_with_code, client_session, Outgoing};
use crate::util::{wait_for, Daemon};

const MINUTE: std::time::Duration = std::time::Duration::from_secs(60);

/// Authenticates with `code` against `addr`, runs the protocol handshake far enough to be
/// past SRP, then sends `garbage`; returns once the daemon has closed the connection.
fn authenticate_then_send(addr: &str, code: &str, garbage: &'static [u8]) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut ch = channel_with_code(addr, code).await;
        ch.stream.write_all(garbage).await.unwrap();
        ch.stream.flush().await.unwrap();
        // The daemon closes the connection; reading ends (EOF or error) instead of hanging.
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(deadline, ch.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => continue,
                Err(_) => panic!("the daemon kept the misbehaving connection open"),
            }
        }
    });
}

#[test]
fn garbage_after_authentication_closes_only_that_connection() {
    let a = Daemon::start();
    let b = Daemon::start();
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let code = a.share_code(dir_a.path(), &["--multi-use"]);
    // A well-behaved peer joins first.
    b.cs.ok(&["attach", &code, dir_b.path().to_str().unwrap(), "--peer", &a.listen()]);
    wait_for("the honest session", || (a.peers() == 1).then_some(()));

    for garbage in [&b"x"[..], b"m99999999999{", b"m5{]]]]", b"!2{}-1\n", b"s2:99999{}"] {
        authenticate_then_send(&a.listen(), &code, garbage);
    }
    wait_for("the reasons in the log", || {
        let log = a.cs.log();
        (log.matches("peer misbehaved").count() >= 5).then_some(())
    });
    // The daemon is up, and the honest peer is still connected.
    a.cs.ok(&["status"]);
    assert_eq!(a.peers(), 1);
    assert_eq!(b.peers(), 1);
}

/// Authenticates with `code`, completes the protocol session (receiving the share's keys),
/// sends `messages`, then reads until the daemon closes the connection (returns `None`) or
/// `done` has seen enough answers (returns how many messages arrived), within `limit`.
fn session_then_send(
    addr: &str,
    code: &str,
    limit: std::time::Duration,
    messages: Vec<clearskies_protocol::message::Message>,
    done: impl FnMut(&clearskies_protocol::message::Message) -> bool,
) -> Option<usize> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let ch = channel_with_code(addr, code).await;
        let out = messages.into_iter().map(Outgoing::Plain).collect();
        client_session(ch, true, limit, out, done).await.0
    })
}

#[test]
fn records_with_escaping_paths_close_the_connection_and_write_nothing() {
    let a = Daemon::start();
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("share");
    std::fs::create_dir(&root).unwrap();
    let code = a.share_code(&root, &["--multi-use"]);
    let keys =
        ["/../escaped", "/etc/../../escaped", "/a/../../escaped", "/a/./b", "/x\u{0}y", "//escaped", "/.clearskies/x"];
    for key in keys {
        let update = clearskies_protocol::message::database::Update {
            key: key.to_owned(),
            value: serde_json::json!({"size": 1, "sha256": "a".repeat(64), "mtime": "2020-01-01T00:00:00Z"}),
            uuid: clearskies_protocol::RecordUuid([1; 16]),
            last_updated_by: clearskies_protocol::PeerId([0x66; 16]),
            last_updated_rev: 1,
            update_time: "2020-01-01T00:00:00Z".parse().unwrap(),
            vector_clock: [(clearskies_protocol::PeerId([0x66; 16]), 1)].into_iter().collect(),
            deleted: false,
        };
        let msg = clearskies_protocol::message::Message::from(update);
        assert_eq!(session_then_send(&a.listen(), &code, MINUTE, vec![msg], |_| false), None, "{key}: not closed");
    }
    // Keys are always share-relative ("/etc/x" is <root>/etc/x); these try to climb out.
    wait_for("every refusal in the log", || {
        (a.cs.log().matches("refused database.update").count() >= keys.len()).then_some(())
    });
    assert!(!base.path().join("escaped").exists());
    assert!(!std::path::Path::new("/escaped").exists());
    let entries: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries, vec![std::ffi::OsString::from(".clearskies")]);
    a.cs.ok(&["status"]);
}

#[test]
fn a_flood_of_requests_is_answered_and_bounded() {
    use clearskies_protocol::message::{directory::Get, Message};
    let a = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("real"), b"contents").unwrap();
    let code = a.share_code(dir.path(), &["--multi-use"]);
    let n = 20_000u32;
    let gets: Vec<Message> = (0..n)
        .map(|i| {
            let mut h = [0u8; 32];
            h[..4].copy_from_slice(&i.to_be_bytes());
            Get { sha256: clearskies_protocol::Sha256Hash(h), range: None }.into()
        })
        .collect();
    // Every request gets an answer (not_present, or get_error when too many are in flight).
    let mut answers = 0;
    let got = session_then_send(&a.listen(), &code, MINUTE, gets, |m| {
        if matches!(m, Message::DirectoryNotPresent(_) | Message::DirectoryGetError(_)) {
            answers += 1;
        }
        answers == n
    });
    assert!(got.is_some(), "the daemon closed an honest (if greedy) connection");
    a.cs.ok(&["status"]);
}

#[test]
fn a_flood_of_updates_is_absorbed_with_bounded_memory() {
    use clearskies_protocol::message::{database::Update, Message};
    let a = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let code = a.share_code(dir.path(), &["--multi-use"]);
    let me = clearskies_protocol::PeerId([0x66; 16]);
    let n = 20_000u64;
    let updates: Vec<Message> = (1..=n)
        .map(|i| {
            Update {
                key: format!("/flood/{i}"),
                value: serde_json::json!({"size": 10, "sha256": format!("{i:064x}"), "mtime": "2020-01-01T00:00:00Z"}),
                uuid: clearskies_protocol::RecordUuid((u128::from(i)).to_be_bytes()),
                last_updated_by: me,
                last_updated_rev: i,
                update_time: "2020-01-01T00:00:00Z".parse().unwrap(),
                vector_clock: [(me, i)].into_iter().collect(),
                deleted: false,
            }
            .into()
        })
        .collect();
    // The client stays connected (reading whatever comes) while the daemon takes the flood in
    // at its own pace; it ends when the daemon stops.
    let addr = a.listen();
    // (No deadline of its own that could fire while the suite goes on: it lives as long as
    // the daemon, whose test has its own.)
    let forever = std::time::Duration::from_secs(24 * 3600);
    std::thread::spawn(move || session_then_send(&addr, &code, forever, updates, |_| false));
    // (Its own deadline: beside the 1 GiB tests, a debug build takes a while.)
    let start = std::time::Instant::now();
    loop {
        let s = a.cs.json(&["list", "--json"]);
        if s["shares"][0]["files"].as_u64() == Some(n) {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(180),
            "not all records taken in: {}\n{}",
            s["shares"][0],
            a.cs.log()
        );
        std::thread::park_timeout(std::time::Duration::from_millis(100));
    }
    a.cs.ok(&["status"]);
    let hwm = a.worker_peak_rss_kib();
    assert!(hwm < 512 * 1024, "worker peak RSS {hwm} kB");
}

/// A frame `m<L><body>` around `body`.
fn frame(body: &str) -> Vec<u8> {
    format!("m{}{body}", body.len()).into_bytes()
}

#[test]
fn malformed_messages_after_the_handshake_close_only_that_connection() {
    let a = Daemon::start();
    let b = Daemon::start();
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    std::fs::write(dir_a.path().join("before.txt"), b"before").unwrap();
    let code = a.share_code(dir_a.path(), &["--multi-use"]);
    b.cs.ok(&["attach", &code, dir_b.path().to_str().unwrap(), "--peer", &a.listen()]);
    wait_for("the honest session", || (a.peers() == 1).then_some(()));

    let deep = format!("{{\"type\":\"database.update\",\"value\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let mut many_chunks = Vec::new();
    let data_header = format!("{{\"type\":\"directory.data\",\"sha256\":\"{}\"}}", "ab".repeat(32));
    many_chunks.extend_from_slice(format!("!{}{data_header}", data_header.len()).as_bytes());
    for _ in 0..200_000 {
        many_chunks.extend_from_slice(b"1\nx");
    }
    many_chunks.extend_from_slice(b"0\n");
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("deep nesting", frame(&deep), true),
        (
            "a number for a path",
            frame(
                r#"{"type":"database.update","key":5,"uuid":"00000000000000000000000000000001","last_updated_by":"66666666666666666666666666666666","last_updated_rev":1,"update_time":"2020-01-01T00:00:00Z"}"#,
            ),
            true,
        ),
        ("a number for a hash", frame(r#"{"type":"directory.get","sha256":12}"#), true),
        (
            "a chunk over 16 MiB",
            [format!("!{}{data_header}", data_header.len()).into_bytes(), b"99999999\n".to_vec()].concat(),
            true,
        ),
        ("a length that overflows", b"m99999999999999999999999{}".to_vec(), true),
        // 200 000 one-byte chunks of contents nobody asked for: discarded as they come.
        ("many chunks", many_chunks, false),
    ];
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for (what, bytes, closes) in cases {
        let ended = rt.block_on(async {
            let ch = channel_with_code(&a.listen(), &code).await;
            // The unasked contents get no answer: a get_updates after them shows the
            // connection is still served.
            let mut out = vec![Outgoing::Raw(bytes)];
            if !closes {
                out.push(Outgoing::Plain(clearskies_protocol::message::database::GetUpdates::default().into()));
            }
            let done = |m: &clearskies_protocol::message::Message| {
                matches!(m, clearskies_protocol::message::Message::DatabaseUpdatesDone(_))
            };
            client_session(ch, true, MINUTE, out, done).await.0
        });
        if closes {
            assert_eq!(ended, None, "{what}: the connection stayed open");
        } else {
            assert!(ended.is_some(), "{what}: the connection was closed");
        }
    }
    // The daemon is up, bounded, and the honest peer still syncs.
    std::fs::write(dir_a.path().join("after.txt"), b"after").unwrap();
    wait_for("the honest peer to get the next file", || {
        (std::fs::read(dir_b.path().join("after.txt")).ok()? == b"after").then_some(())
    });
    assert_eq!(a.peers(), 1);
    let hwm = a.worker_peak_rss_kib();
    assert!(hwm < 256 * 1024, "worker peak RSS {hwm} kB");
}
