//! uTP (BEP 29): the same session as over TCP, on the UDP side of the peer port.

use std::fs;

use crate::util::{noise, wait_for, Daemon};

/// Each session's transport, as `peers --json` lists them.
pub(crate) fn transports(d: &Daemon) -> Vec<String> {
    let listed = d.cs.json(&["peers", "--json"]);
    let peers = listed["peers"].as_array().cloned().unwrap_or_default();
    peers
        .iter()
        .filter(|p| p["state"] == "connected")
        .filter_map(|p| p["transport"].as_str().map(str::to_owned))
        .collect()
}

/// Waits until `path` holds exactly `bytes`.
pub(crate) fn wait_for_file(path: &std::path::Path, bytes: &[u8]) {
    wait_for(&format!("{} to arrive", path.display()), || (fs::read(path).ok()? == bytes).then_some(()));
}

#[test]
fn attach_over_utp_syncs_both_ways_and_reconnects_over_utp() {
    let a = Daemon::start();
    let b = Daemon::start();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let big = noise(3 << 20, 1);
    fs::write(dir_a.path().join("big.bin"), &big).unwrap();
    let code = a.share_code(dir_a.path(), &[]);
    let target = dir_b.path().join("copy");
    b.cs.ok(&["attach", &code, target.to_str().unwrap(), "--peer", &format!("utp:{}", a.listen())]);
    wait_for("a uTP session on both sides", || (transports(&a) == ["utp"] && transports(&b) == ["utp"]).then_some(()));
    // One line for the peer on B: the remembered uTP address is the session's.
    let listed = b.cs.json(&["peers", "--json"]);
    let entries = listed["peers"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{listed}");
    let expected = format!("utp:{}", a.listen());
    assert_eq!(
        (entries[0]["address"].as_str(), entries[0]["source"].as_str(), entries[0]["state"].as_str()),
        (Some(expected.as_str()), Some("manual"), Some("connected")),
        "{listed}"
    );
    wait_for_file(&target.join("big.bin"), &big);
    let back = noise(100_000, 2);
    fs::write(target.join("back.bin"), &back).unwrap();
    wait_for_file(&dir_a.path().join("back.bin"), &back);

    // Idle past the uTP library's 10 s inactivity timeout (A last received data): the
    // session stays up, until the protocol's pings.
    let quiet_since = std::time::Instant::now();
    wait_for("12 s of idle, the session up throughout", || {
        assert_eq!((transports(&a), transports(&b)), (vec!["utp".to_owned()], vec!["utp".to_owned()]), "while idle");
        (quiet_since.elapsed() >= std::time::Duration::from_secs(12)).then_some(())
    });

    // B restarts: it dials the remembered uTP address with the share key.
    b.cs.ok(&["stop"]);
    wait_for("A to notice", || (a.peers() == 0).then_some(()));
    b.cs.ok(&["start"]);
    wait_for("the uTP session again", || (transports(&a) == ["utp"] && transports(&b) == ["utp"]).then_some(()));
    let after = noise(50_000, 3);
    fs::write(dir_a.path().join("after.bin"), &after).unwrap();
    wait_for_file(&target.join("after.bin"), &after);
}

#[test]
fn when_both_sides_dial_at_once_one_session_is_kept() {
    let a = Daemon::start();
    let b = Daemon::start();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let code = a.share_code(dir_a.path(), &[]);
    b.cs.ok(&["attach", &code, dir_b.path().to_str().unwrap(), "--peer", &a.listen()]);
    wait_for("the first session", || (a.peers() == 1 && b.peers() == 1).then_some(()));

    // A restarts on its port with B as a configured peer (over uTP): A dials B as it
    // starts, and B dials A again (its remembered address, over TCP) as it notices.
    let port = a.listen().rsplit(':').next().unwrap().to_owned();
    a.cs.ok(&["stop"]);
    wait_for("B to notice", || (b.peers() == 0).then_some(()));
    let o =
        a.cs.command(&["start"])
            .env("CLEARSKIES_LISTEN_PORT", &port)
            .env("CLEARSKIES_PEERS", format!("utp:{}", b.listen()))
            .output()
            .unwrap();
    assert!(o.status.success(), "{}", crate::util::stderr(&o));
    let kept = "both sides dialled: one session kept";
    wait_for("the second session to be closed", || {
        (a.cs.log().contains(kept) || b.cs.log().contains(kept)).then_some(())
    });
    wait_for("one session on each side", || (a.peers() == 1 && b.peers() == 1).then_some(()));
    let (on_a, on_b) = (transports(&a), transports(&b));
    assert_eq!(on_a, on_b, "both kept the same session");

    // It carries the share, and nothing flaps afterwards.
    let file = noise(200_000, 4);
    fs::write(dir_a.path().join("f.bin"), &file).unwrap();
    wait_for_file(&dir_b.path().join("f.bin"), &file);
    assert_eq!((a.peers(), b.peers()), (1, 1));
    let closed = a.cs.log().matches(kept).count() + b.cs.log().matches(kept).count();
    assert!(closed <= 2, "{closed} sessions closed as duplicates");
}
