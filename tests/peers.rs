//! `peers remove`: a peer is disconnected and refused from then on, across restarts.

use std::fs;

use crate::util::{stderr, wait_for, Daemon};

fn connected(d: &Daemon) -> Vec<String> {
    let list = d.cs.json(&["peers", "--json"]);
    list["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["state"] == "connected")
        .filter_map(|p| p["peer"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_removed_peer_is_disconnected_and_refused_even_after_a_restart() {
    let (a, b, c) = (Daemon::start(), Daemon::start(), Daemon::start());
    let base = tempfile::tempdir().unwrap();
    let (ra, rb, rc) = (base.path().join("a"), base.path().join("b"), base.path().join("c"));
    fs::create_dir_all(&ra).unwrap();
    fs::write(ra.join("first.txt"), b"first").unwrap();
    let code = a.share_code(&ra, &["--multi-use"]);
    b.cs.ok(&["attach", &code, rb.to_str().unwrap(), "--peer", &a.listen()]);
    c.cs.ok(&["attach", &code, rc.to_str().unwrap(), "--peer", &a.listen()]);
    let b_id = b.first_share()["peer_id"].as_str().unwrap().to_owned();
    let c_id = c.first_share()["peer_id"].as_str().unwrap().to_owned();
    wait_for("A connected to both", || (connected(&a).len() == 2).then_some(()));

    // Bad input first: nothing changes.
    let o = a.cs.run(&["peers", "remove", "xyz"]);
    assert!(!o.status.success() && stderr(&o).contains("not a peer ID"), "{}", stderr(&o));
    let o = a.cs.run(&["peers", "remove", "0000000000"]);
    assert!(!o.status.success() && stderr(&o).contains("no connected peer"), "{}", stderr(&o));
    assert_eq!(connected(&a).len(), 2);

    let out = a.cs.ok(&["peers", "remove", &b_id[..10]]);
    assert!(out.contains(&format!("removed peer {b_id}")) && out.contains("1 connection(s) closed"), "{out}");
    wait_for("B gone from A's peers", || (connected(&a) == [c_id.clone()]).then_some(()));
    // B dials A again (it remembers A's address) and is refused each time.
    wait_for("A to refuse B's reconnection", || {
        a.cs.log().contains("a removed peer connected; refusing it").then_some(())
    });
    // Changes still reach C, never B.
    fs::write(ra.join("later.txt"), b"later").unwrap();
    wait_for("later.txt on C", || (fs::read(rc.join("later.txt")).ok()? == b"later").then_some(()));
    assert_eq!(connected(&a), std::slice::from_ref(&c_id));
    assert!(!rb.join("later.txt").exists());

    // The refusal is saved with the share: after A restarts (on the same port, where B and
    // C dial it), B is still refused.
    let port = a.listen().rsplit_once(':').unwrap().1.to_owned();
    a.cs.ok(&["stop"]);
    let refusals = a.cs.log().matches("a removed peer connected").count();
    let o = a.cs.command(&["start"]).env("CLEARSKIES_LISTEN_PORT", &port).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    wait_for("C back on A", || (connected(&a) == [c_id.clone()]).then_some(()));
    wait_for("A to refuse B after its restart", || {
        (a.cs.log().matches("a removed peer connected").count() > refusals).then_some(())
    });
    assert!(!connected(&a).contains(&b_id));
}

#[test]
fn a_share_whose_peers_are_all_gone_is_reported_not_ok() {
    let a = Daemon::start_with(&[("CLEARSKIES_PEERS_GONE_AFTER", "2"), ("CLEARSKIES_DEVICE_NAME", "alpha box")]);
    let b = Daemon::start_with(&[("CLEARSKIES_DEVICE_NAME", "bravo")]);
    let base = tempfile::tempdir().unwrap();
    let (ra, rb) = (base.path().join("a"), base.path().join("b"));
    fs::create_dir_all(&ra).unwrap();
    fs::write(ra.join("f"), b"f").unwrap();
    let code = a.share_code(&ra, &[]);
    b.cs.ok(&["attach", &code, rb.to_str().unwrap(), "--peer", &a.listen()]);
    wait_for("A in sync with B", || (a.first_share()["synced"] == true && connected(&a).len() == 1).then_some(()));
    let health = a.cs.json(&["status", "--json"])["health"].clone();
    assert_eq!(health["healthy"], true, "{health}");
    // Each side knows the other by name, level and transport, with the bytes exchanged.
    let on_a = a.cs.json(&["peers", "--json"])["peers"][0].clone();
    assert_eq!((on_a["name"].as_str(), on_a["access_level"].as_str()), (Some("bravo"), Some("read_write")), "{on_a}");
    assert_eq!(on_a["transport"], "tcp");
    assert!(on_a["sent_bytes"].as_u64().unwrap() > 0 && on_a["received_bytes"].as_u64().unwrap() > 0, "{on_a}");
    let on_b = b.cs.ok(&["peers"]);
    assert!(on_b.contains("alpha box") && on_b.contains("read-write") && on_b.contains(" sent, "), "{on_b}");

    // B goes away: after peers_gone_after, A says so everywhere.
    b.cs.ok(&["stop"]);
    let share = wait_for("A to report the share alone", || {
        let s = a.first_share();
        s["alone_since"].as_u64().map(|_| s)
    });
    assert_eq!(share["status"], "idle", "{share}");
    let gone = a.cs.json(&["peers", "--json"])["peers"][0].clone();
    assert_eq!((gone["state"].as_str(), gone["name"].as_str()), (Some("offline"), Some("bravo")), "{gone}");
    assert!(gone["last_seen"].as_i64().is_some(), "{gone}");
    assert!(a.cs.ok(&["peers"]).contains("last seen"));
    let o = a.cs.run(&["status"]);
    assert_eq!(o.status.code(), Some(1), "status exits 1 when unhealthy");
    let text = crate::util::stdout(&o);
    assert!(text.contains("no peer connected for") && text.contains("health: a share has had no peer"), "{text}");
    assert!(a.cs.ok(&["list"]).contains("no peer connected for"));
    let (code, body) = a.http_get("/health");
    assert!(code == 503 && body.contains("\"alone_since\""), "{code} {body}");
    let id = share["id"].as_str().unwrap();
    assert_eq!(a.metric(&format!("clearskies_share_peers_gone{{share=\"{id}\"}}")), 1.0);

    // B is back: healthy again.
    b.cs.ok(&["start"]);
    wait_for("A healthy again", || (a.cs.json(&["status", "--json"])["health"]["healthy"] == true).then_some(()));
    assert_eq!(a.metric(&format!("clearskies_share_peers_gone{{share=\"{id}\"}}")), 0.0);

    // When a peer was last here is kept across a restart: the count goes on from it.
    b.cs.ok(&["stop"]);
    let since = wait_for("A alone again", || a.first_share()["alone_since"].as_u64());
    a.cs.ok(&["stop"]);
    a.cs.ok(&["start"]);
    let after = wait_for("A alone after its restart", || a.first_share()["alone_since"].as_u64());
    assert_eq!(after, since, "counted from the restart, not from when B left");
}

#[test]
fn rotated_keys_reach_the_connected_peers_and_the_old_ones_stop_working() {
    let (a, b, c, d) = (Daemon::start(), Daemon::start(), Daemon::start(), Daemon::start());
    let base = tempfile::tempdir().unwrap();
    let root = |n: &str| base.path().join(n);
    fs::create_dir_all(root("a")).unwrap();
    fs::write(root("a").join("f"), b"f").unwrap();
    let rw = a.share_code(&root("a"), &[]);
    b.cs.ok(&["attach", &rw, root("b").to_str().unwrap(), "--peer", &a.listen()]);
    let ro = a.share_code(&root("a"), &["--mode", "read-only"]);
    c.cs.ok(&["attach", &ro, root("c").to_str().unwrap(), "--peer", &a.listen()]);
    // And an encrypted backup (its ciphertext must stay readable after the rotation).
    let u = Daemon::start();
    let backup = a.share_code(&root("a"), &["--mode", "untrusted"]);
    u.cs.ok(&["attach", &backup, root("u").to_str().unwrap(), "--peer", &a.listen()]);
    wait_for("A connected to B, C and the backup", || (connected(&a).len() == 3).then_some(()));
    wait_for("the backup stored f", || (u.first_share()["files"].as_u64()? >= 1).then_some(()));
    // The keys leak (say a removed peer kept them).
    let leaked = root("leaked.json");
    fs::write(&leaked, a.cs.ok(&["keys", "export", root("a").to_str().unwrap()])).unwrap();
    let unused = a.share_code(&root("a"), &["--multi-use"]);
    // (None while the share moves to its new keys: it restarts.)
    let ids = |x: &Daemon| x.first_share()["id"].as_str().map(str::to_owned);
    let before = (ids(&a), ids(&b), ids(&c));

    let out = a.cs.ok(&["keys", "rotate", root("a").to_str().unwrap()]);
    assert!(out.contains("3 connected peer(s)"), "{out}");
    // Everyone moved to new keys (a share's ID is its key ID) and reconnected.
    let moved = |x: &Daemon, old: &Option<String>| ids(x).is_some_and(|id| Some(&id) != old.as_ref());
    wait_for("A, B and C on the new keys", || {
        (moved(&a, &before.0) && moved(&b, &before.1) && moved(&c, &before.2)).then_some(())
    });
    assert_eq!(ids(&a), ids(&b), "A and B hold the same new read-write key");
    wait_for("A connected to B, C and the backup again", || (connected(&a).len() == 3).then_some(()));
    fs::write(root("a").join("after.txt"), b"after").unwrap();
    for r in ["b", "c"] {
        wait_for("after.txt on B and C", || (fs::read(root(r).join("after.txt")).ok()? == b"after").then_some(()));
    }
    // The backup holds files encrypted before and after, and proves them with the keys A
    // has now.
    // (Its record can come before its contents: stored means nothing pending.)
    wait_for("after.txt stored in the backup", || {
        let s = u.first_share();
        (s["files"].as_u64()? >= 2 && s["pending_files"].as_u64()? == 0).then_some(())
    });
    let proof = a.cs.ok(&["verify-backup", root("a").to_str().unwrap(), "--files", "2"]);
    assert!(proof.contains("2 of 2 files proved"), "{proof}");
    // Kept across a restart of B.
    b.cs.ok(&["stop"]);
    b.cs.ok(&["start"]);
    fs::write(root("a").join("later.txt"), b"later").unwrap();
    wait_for("later.txt on B", || (fs::read(root("b").join("later.txt")).ok()? == b"later").then_some(()));

    // The old keys and the codes issued before no longer open the share: D registers the
    // leaked keys, and A refuses them.
    d.cs.ok(&["attach", "--keys", leaked.to_str().unwrap(), root("d").to_str().unwrap(), "--peer", &a.listen()]);
    let refused = wait_for("A to refuse the old keys", || {
        let s = d.first_share();
        s["error"].as_str().filter(|e| e.contains("refuse our key")).map(str::to_owned)
    });
    assert!(!root("d").join("f").exists() && connected(&a).len() == 3, "{refused}");
    let o = d.cs.run(&["attach", &unused, root("e").to_str().unwrap(), "--peer", &a.listen(), "--timeout", "5"]);
    assert!(!o.status.success(), "an old code still works");
    // A read-only share cannot rotate.
    let o = c.cs.run(&["keys", "rotate", root("c").to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("read-write"), "{}", stderr(&o));
}

#[test]
fn a_peer_removed_on_one_side_does_not_get_new_keys_through_another() {
    let (a, b, x) = (Daemon::start(), Daemon::start(), Daemon::start());
    let base = tempfile::tempdir().unwrap();
    let root = |n: &str| base.path().join(n);
    fs::create_dir_all(root("a")).unwrap();
    fs::write(root("a").join("f"), b"f").unwrap();
    let code = a.share_code(&root("a"), &[]);
    b.cs.ok(&["attach", &code, root("b").to_str().unwrap(), "--peer", &a.listen()]);
    // X joins through B (B invites it) and is connected to B only.
    let via_b = b.share_code(&root("b"), &[]);
    x.cs.ok(&["attach", &via_b, root("x").to_str().unwrap(), "--peer", &b.listen()]);
    wait_for("f on X", || (fs::read(root("x").join("f")).ok()? == b"f").then_some(()));
    let x_id = x.first_share()["peer_id"].as_str().unwrap().to_owned();
    assert!(connected(&b).contains(&x_id) && !connected(&a).contains(&x_id));

    // A removes X (offline to it: the whole ID and the share) and rotates.
    a.cs.ok(&["peers", "remove", &x_id, "--path", root("a").to_str().unwrap()]);
    a.cs.ok(&["keys", "rotate", root("a").to_str().unwrap()]);
    // B moves to the new keys and does not hand them to X: X is refused from then on.
    let a_id = || a.first_share()["id"].as_str().map(str::to_owned);
    wait_for("B on A's new keys", || (b.first_share()["id"].as_str().map(str::to_owned) == a_id()).then_some(()));
    wait_for("X refused", || x.first_share()["error"].as_str().filter(|e| e.contains("refuse our key")).map(|_| ()));
    assert!(!connected(&b).contains(&x_id));
    fs::write(root("a").join("g"), b"g").unwrap();
    wait_for("g on B", || (fs::read(root("b").join("g")).ok()? == b"g").then_some(()));
    assert!(!root("x").join("g").exists());
}
