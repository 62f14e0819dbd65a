//! Security fixes that belong to no other area: access codes spent when their keys leave,
//! a log that names hostile file names without being forged by them, and a daemon that
//! never shares its own data directory.

use crate::raw_client::channel_with_code;
use crate::util::{wait_for, Daemon};

/// Authenticates with `code`, waits for `core.keys`, and hangs up without acknowledging
/// them; returns the keys received.
fn take_keys_and_hang_up(addr: &str, code: &str) -> clearskies_protocol::message::core::Keys {
    use clearskies_protocol::session::{Config, Event, KeyExchange, Role, Session, EXT_DATABASE, EXT_DIRECTORY};
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut ch = channel_with_code(addr, code).await;
        let mut config = Config::new(Role::Client, clearskies_protocol::PeerId([0x77; 16]));
        config.extensions = vec![EXT_DATABASE.to_owned(), EXT_DIRECTORY.to_owned()];
        config.key_exchange = KeyExchange::Receive;
        let mut s = Session::new(config, Instant::now());
        s.handle_input(Instant::now(), &ch.leftover);
        let mut buf = vec![0u8; 1 << 16];
        let deadline = tokio::time::Instant::now() + crate::util::DEADLINE;
        loop {
            while let Some(e) = s.poll_event() {
                if let Event::KeysReceived(keys) = e {
                    // Hang up: no core.keys_acknowledgment.
                    let _ = ch.stream.shutdown().await;
                    return keys;
                }
            }
            while let Some(b) = s.poll_transmit() {
                ch.stream.write_all(&b).await.unwrap();
            }
            ch.stream.flush().await.unwrap();
            match tokio::time::timeout_at(deadline, ch.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => panic!("closed before core.keys arrived"),
                Ok(Ok(n)) => s.handle_input(Instant::now(), &buf[..n]),
                Err(_) => panic!("no core.keys within the deadline"),
            }
        }
    })
}

#[test]
fn a_single_use_code_is_spent_once_its_keys_are_sent() {
    let a = Daemon::start();
    let b = Daemon::start();
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let code = a.share_code(dir_a.path(), &[]);

    let keys = take_keys_and_hang_up(&a.listen(), &code);
    assert!(!keys.keys.is_empty(), "core.keys carried no keys");

    // The code is used (by the peer that took the keys), though nobody acknowledged them.
    let codes = wait_for("the code to be spent", || {
        let codes = a.cs.json(&["code", "list", "--json"])["codes"].as_array().cloned().unwrap_or_default();
        (codes.len() == 1 && codes[0]["state"] == "used").then_some(codes)
    });
    let joined = codes[0]["used_by"].as_array().unwrap();
    assert_eq!(joined.len(), 1, "{codes:?}");
    assert_eq!(joined[0].as_str(), Some("77777777777777777777777777777777"), "{codes:?}");

    // And it cannot be used again.
    let o = b.cs.run(&["attach", &code, dir_b.path().to_str().unwrap(), "--peer", &a.listen()]);
    assert!(!o.status.success(), "a spent code was accepted again");
    assert!(crate::util::stderr(&o).contains("code_refused"), "{}", crate::util::stderr(&o));
}

#[test]
fn hostile_file_names_cannot_forge_log_lines() {
    use std::os::unix::ffi::OsStrExt;
    let a = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    // Not UTF-8 (so the scanner skips it with a warning naming it), with a newline, an
    // escape sequence and what would look like a log line of its own.
    let name = std::ffi::OsStr::from_bytes(b"bad\xff\n2026-01-01T00:00:00Z  INFO forged: \x1b[2Jall is well");
    std::fs::write(dir.path().join(name), b"x").unwrap();
    a.share_code(dir.path(), &[]);
    let log = wait_for("the warning about the name", || {
        let log = a.cs.log();
        log.contains("skipping a name that is not UTF-8").then_some(log)
    });
    assert!(!log.lines().any(|l| l.starts_with("2026-01-01T00:00:00Z")), "a forged line in the log:\n{log}");
    assert!(!log.contains('\u{1b}'), "an escape sequence in the log:\n{log}");
    assert!(log.contains("\\n2026-01-01T00:00:00Z  INFO forged: \\u{1b}[2Jall is well"), "{log}");
}

#[test]
fn the_data_directory_is_never_shared_or_attached_into() {
    let a = Daemon::start();
    let b = Daemon::start();
    let home = a.cs.home().to_owned();
    let parent = home.parent().unwrap().to_owned();
    // A symlink to the data directory's parent, to share it by another name.
    let links = tempfile::tempdir().unwrap();
    let link = links.path().join("via-link");
    std::os::unix::fs::symlink(&parent, &link).unwrap();
    std::fs::create_dir_all(home.join("inside")).unwrap();

    let refused = |d: &Daemon, args: &[&str], relation: &str| {
        let o = d.cs.run(args);
        let err = crate::util::stderr(&o);
        assert!(!o.status.success(), "{args:?} was accepted");
        assert!(err.contains(&format!("{relation} the daemon's data directory")), "{args:?}: {err}");
    };
    let s = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    refused(&a, &["share", &s(&home)], "is");
    refused(&a, &["share", &s(&home.join("inside"))], "is inside");
    refused(&a, &["share", &s(&parent)], "contains");
    refused(&a, &["share", &s(&link)], "contains");
    refused(&a, &["share", &s(&link.join(home.file_name().unwrap()).join("keys/.."))], "is");
    assert!(a.cs.json(&["list", "--json"])["shares"].as_array().unwrap().is_empty());

    // Attaching into it is refused before the code is tried: the code stays usable.
    let dir_b = tempfile::tempdir().unwrap();
    let code = b.share_code(dir_b.path(), &[]);
    let into = home.join("not-yet/deeper");
    // (`--merge`: refused by the daemon even when the user agrees to merge.)
    refused(&a, &["attach", &code, &s(&into), "--peer", &b.listen(), "--merge"], "is inside");
    refused(&a, &["attach", &code, &s(&link), "--peer", &b.listen(), "--merge"], "contains");
    assert!(!home.join("not-yet").exists(), "a refused attach created its directory");
    let elsewhere = tempfile::tempdir().unwrap();
    a.cs.ok(&["attach", &code, &s(elsewhere.path()), "--peer", &b.listen()]);
}
