//! Read-only sharing: signed updates, local edits that never leave, relays between read-only
//! peers, and forged updates refused.

use std::fs;
use std::path::Path;

use crate::raw_client::{channel_with_code, client_session, Outgoing};
use crate::util::{wait_for, Daemon};

const MINUTE: std::time::Duration = std::time::Duration::from_secs(60);

/// Waits until `path` holds `data`.
fn arrives(path: &Path, data: &[u8]) {
    wait_for(&format!("{} to arrive", path.display()), || (fs::read(path).ok()? == data).then_some(()));
}

#[test]
fn a_read_only_peer_gets_everything_keeps_its_edits_and_relays() {
    let (a, b, c) = (Daemon::start(), Daemon::start(), Daemon::start());
    let base = tempfile::tempdir().unwrap();
    let (ra, rb, rc) = (base.path().join("a"), base.path().join("b"), base.path().join("c"));
    fs::create_dir_all(ra.join("docs")).unwrap();
    fs::write(ra.join("docs/notes.txt"), b"original notes").unwrap();
    fs::write(ra.join("photo.jpg"), crate::util::noise(300_000, 1)).unwrap();

    let code = a.share_code(&ra, &["--mode", "read-only"]);
    b.cs.ok(&["attach", &code, rb.to_str().unwrap(), "--peer", &a.listen()]);
    arrives(&rb.join("docs/notes.txt"), b"original notes");
    arrives(&rb.join("photo.jpg"), &crate::util::noise(300_000, 1));
    assert_eq!(b.first_share()["mode"], "read_only");
    let (_, m) = a.http_get("/metrics");
    assert!(m.contains("clearskies_peers_connected{access_level=\"read_only\"} 1"), "{m}");
    let listed = a.cs.json(&["code", "list", "--json"]);
    assert_eq!(listed["codes"][0]["mode"], "read_only", "{listed}");

    // Follow-up changes on the read-write side arrive: an edit, a new file, a deletion.
    fs::write(ra.join("docs/notes.txt"), b"second notes").unwrap();
    fs::write(ra.join("new.txt"), b"new").unwrap();
    fs::remove_file(ra.join("photo.jpg")).unwrap();
    arrives(&rb.join("docs/notes.txt"), b"second notes");
    arrives(&rb.join("new.txt"), b"new");
    wait_for("the deletion", || (!rb.join("photo.jpg").exists()).then_some(()));

    // Edits on the read-only side stay there, and are reported.
    fs::write(rb.join("new.txt"), b"changed on the read-only side").unwrap();
    fs::write(rb.join("mine.txt"), b"only here").unwrap();
    wait_for("B to report its local changes", || (b.first_share()["local_changes"].as_u64()? >= 2).then_some(()));
    assert!(b.cs.ok(&["list"]).contains("never sent to peers"));
    assert!(b.cs.ok(&["status"]).contains("local change(s) not synced"));
    // Still connected and still receiving: a later change on A arrives ...
    fs::write(ra.join("later.txt"), b"later").unwrap();
    arrives(&rb.join("later.txt"), b"later");
    // ... while A never got B's edits.
    assert_eq!(fs::read(ra.join("new.txt")).unwrap(), b"new");
    assert!(!ra.join("mine.txt").exists());
    // Undone, they are no longer counted: each scan of what changed looks at the local
    // changes found before again, without a full scan.
    fs::remove_file(rb.join("mine.txt")).unwrap();
    wait_for("one local change left", || (b.first_share()["local_changes"].as_u64()? == 1).then_some(()));
    // (The same bytes and modification time as A's: a different time is a change too.)
    let mtime = fs::metadata(ra.join("new.txt")).unwrap().modified().unwrap();
    let mut f = fs::OpenOptions::new().write(true).truncate(true).open(rb.join("new.txt")).unwrap();
    std::io::Write::write_all(&mut f, b"new").unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    wait_for("no local change left", || (b.first_share()["local_changes"].as_u64()? == 0).then_some(()));

    // A read-only peer cannot hand out read-write access, but can invite another reader.
    let o = b.cs.run(&["share", rb.to_str().unwrap(), "--mode", "read-write"]);
    assert!(crate::util::stderr(&o).contains("read-only"), "{}", crate::util::stderr(&o));
    let code_b = b.share_code(&rb, &["--mode", "read-only"]);
    c.cs.ok(&["attach", &code_b, rc.to_str().unwrap(), "--peer", &b.listen()]);
    arrives(&rc.join("later.txt"), b"later");
    // C is connected only to B: A's next change reaches it through B, with A's signature.
    assert_eq!(c.peers(), 1);
    fs::write(ra.join("relayed.txt"), b"through B").unwrap();
    arrives(&rc.join("relayed.txt"), b"through B");
    // B's local edit did not travel to C either. (C has no copy of new.txt at all: B no
    // longer holds A's version to serve, and C reaches nobody else.)
    assert!(fs::read(rc.join("new.txt")).map_or(true, |d| d == b"new"));
    assert!(!rc.join("mine.txt").exists());
    for d in [&a, &b, &c] {
        let (_, metrics) = d.http_get("/metrics");
        assert!(metrics.contains("clearskies_peer_rejected_updates_total 0"), "{metrics}");
    }
}

/// A `database.update` for `/forged.txt`, as a JSON body.
fn forged_update() -> Vec<u8> {
    let me = clearskies_protocol::PeerId([0x66; 16]);
    let update = clearskies_protocol::message::database::Update {
        key: "/forged.txt".to_owned(),
        value: serde_json::json!({"size": 6, "sha256": "ab".repeat(32), "mtime": "2020-01-01T00:00:00Z"}),
        uuid: clearskies_protocol::RecordUuid([7; 16]),
        last_updated_by: me,
        last_updated_rev: 1,
        update_time: "2020-01-01T00:00:00Z".parse().unwrap(),
        vector_clock: [(me, 1)].into_iter().collect(),
        deleted: false,
    };
    clearskies_protocol::message::Message::from(update).encode()
}

#[test]
fn unsigned_and_forged_updates_are_refused() {
    use clearskies_index::rsa::SigningKey;
    use clearskies_protocol::message::core::AccessLevel;
    let (a, b) = (Daemon::start(), Daemon::start());
    let base = tempfile::tempdir().unwrap();
    let (ra, rb) = (base.path().join("a"), base.path().join("b"));
    fs::create_dir_all(&ra).unwrap();
    fs::write(ra.join("real.txt"), b"real").unwrap();
    let code = a.share_code(&ra, &["--mode", "read-only", "--multi-use"]);
    b.cs.ok(&["attach", &code, rb.to_str().unwrap(), "--peer", &a.listen()]);
    arrives(&rb.join("real.txt"), b"real");

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mallory = SigningKey::generate().unwrap();
    let body = forged_update();
    let own_signature = mallory.sign(&body).unwrap();

    // A hostile client joins A read-only (it gets the read-only keys), then sends an update
    // without a signature: A closes the connection.
    let (closed, keys) = rt.block_on(async {
        let ch = channel_with_code(&a.listen(), &code).await;
        client_session(
            ch,
            true,
            MINUTE,
            vec![Outgoing::Plain(clearskies_protocol::message::Message::decode(&body).unwrap())],
            |_| false,
        )
        .await
    });
    assert_eq!(closed, None, "A kept a connection that sent an unsigned update");
    let keys = keys.expect("core.keys");
    assert_eq!(keys.access_level, AccessLevel::ReadOnly);
    assert!(keys.keys.iter().all(|k| k.access_level == AccessLevel::ReadOnly || k.private_rsa.is_none()));
    let ro = keys.keys.iter().find(|k| k.access_level == AccessLevel::ReadOnly).unwrap();
    let (ro_id, ro_key) = (ro.id.unwrap(), ro.key.unwrap());

    // With the read-only key it reaches B, the read-only peer, and signs with its own RSA
    // key: refused. Then unsigned: refused.
    for outgoing in
        [Outgoing::Signed(body.clone(), own_signature.clone()), Outgoing::Signed(body.clone(), "AAAA".into())]
    {
        let closed = rt.block_on(async {
            let tcp = tokio::net::TcpStream::connect(b.listen()).await.unwrap();
            let tls = clearskies_actors::peer::channel::TlsContext::new().unwrap();
            let ch =
                clearskies_actors::peer::channel::connect(tcp.into(), &tls, ro_id, &hex::encode(ro_key.as_bytes()))
                    .await
                    .expect("the read-only key opens B");
            client_session(ch, false, MINUTE, vec![outgoing], |_| false).await.0
        });
        assert_eq!(closed, None, "B kept a connection that sent a forged update");
    }
    // And A refuses a forged signature too.
    let closed = rt.block_on(async {
        let ch = channel_with_code(&a.listen(), &code).await;
        client_session(ch, true, MINUTE, vec![Outgoing::Signed(body.clone(), own_signature)], |_| false).await.0
    });
    assert_eq!(closed, None);
    wait_for("the refusals counted", || {
        (a.metric("clearskies_peer_rejected_updates_total") == 2.0
            && b.metric("clearskies_peer_rejected_updates_total") == 2.0)
            .then_some(())
    });
    assert!(a.cs.log().contains("refused database.update"));
    // Nothing of it anywhere; the honest peers are still connected and syncing.
    fs::write(ra.join("after.txt"), b"after").unwrap();
    arrives(&rb.join("after.txt"), b"after");
    for d in [&a, &b] {
        let s = d.first_share();
        assert_eq!(s["files"].as_u64(), Some(2), "{s}");
    }
    assert!(!ra.join("forged.txt").exists() && !rb.join("forged.txt").exists());
}
