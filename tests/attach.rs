//! Joining a share with an access code: TLS + SRP + key exchange between real daemons.

use std::fs;

use crate::util::{stderr, wait_for, Daemon};

fn new_code(d: &Daemon, dir: &std::path::Path) -> String {
    d.share_code(dir, &[])
}

#[test]
fn attach_joins_the_share_and_the_code_is_single_use() {
    let a = Daemon::start();
    let b = Daemon::start();
    let c = Daemon::start();
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let code = new_code(&a, dir_a.path());
    let target = dir_b.path().join("photos copy");

    b.cs.ok(&["attach", &code, target.to_str().unwrap(), "--peer", &a.listen()]);
    assert!(target.join(".clearskies").is_dir());
    let list = b.cs.json(&["list", "--json"]);
    assert_eq!(list["shares"][0]["path"], std::fs::canonicalize(&target).unwrap().to_str().unwrap());
    wait_for("both sides to see the session", || (a.peers() == 1 && b.peers() == 1).then_some(()));
    assert!(a.cs.log().contains("a peer joined with an access code"), "{}", a.cs.log());

    // The same code again, from another daemon: refused, and nothing is created.
    let elsewhere = dir_b.path().join("second");
    let o = c.cs.run(&["attach", &code, elsewhere.to_str().unwrap(), "--peer", &a.listen()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("code_refused"), "{}", stderr(&o));
    assert!(!elsewhere.exists());
    assert!(c.cs.json(&["list", "--json"])["shares"].as_array().unwrap().is_empty());
}

#[test]
fn a_wrong_code_is_refused_and_logged() {
    let a = Daemon::start();
    let b = Daemon::start();
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    new_code(&a, dir_a.path());
    // A well-formed code the daemon never issued.
    let stranger = b.cs.json(&["code", "new", "--json"])["access_code"].as_str().unwrap().to_owned();
    let o = b.cs.run(&["attach", &stranger, dir_b.path().to_str().unwrap(), "--peer", &a.listen()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("code_refused"), "{}", stderr(&o));
    assert!(b.cs.json(&["list", "--json"])["shares"].as_array().unwrap().is_empty());
    assert!(!dir_b.path().join(".clearskies").exists());
    wait_for("the refusal in the log", || a.cs.log().contains("refused a connection").then_some(()));
    assert_eq!(a.peers(), 0);
}

#[test]
fn attach_input_errors_are_clear() {
    let b = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().to_str().unwrap();
    // A typo is caught before any network traffic.
    let o = b.cs.run(&["attach", "SYNC74ZAMC27GHPG6V52XRG3SF6UZKSKA", p, "--peer", "127.0.0.1:9"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("check symbol"), "{}", stderr(&o));
    let code = b.cs.json(&["code", "new", "--json"])["access_code"].as_str().unwrap().to_owned();
    let o = b.cs.run(&["attach", &code, p]);
    assert!(stderr(&o).contains("--peer"), "{}", stderr(&o));
    // Nothing listens on port 1 of loopback.
    let o = b.cs.run(&["attach", &code, p, "--peer", "127.0.0.1:1"]);
    assert!(stderr(&o).contains("unreachable"), "{}", stderr(&o));
}

#[test]
fn known_peers_reconnect_with_the_share_key_after_restarts() {
    let a = Daemon::start();
    let b = Daemon::start();
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let code = new_code(&a, dir_a.path());
    b.cs.ok(&["attach", &code, dir_b.path().to_str().unwrap(), "--peer", &a.listen()]);
    wait_for("the first session", || (a.peers() == 1 && b.peers() == 1).then_some(()));
    let listed = b.cs.json(&["peers", "--json"]);
    let entry = &listed["peers"][0];
    assert_eq!((entry["state"].as_str(), entry["source"].as_str()), (Some("connected"), Some("manual")), "{listed}");
    assert_eq!(entry["address"].as_str(), Some(a.listen().as_str()));
    assert_eq!(a.cs.json(&["peers", "--json"])["peers"][0]["source"], "incoming");

    // The joining side restarts: it dials the remembered address with the share key (the
    // single-use code is spent, so only the key can work).
    b.cs.ok(&["stop"]);
    wait_for("A to notice", || (a.peers() == 0).then_some(()));
    b.cs.ok(&["start"]);
    wait_for("the session after B's restart", || (a.peers() == 1 && b.peers() == 1).then_some(()));

    // The other side restarts on the same port: B retries with backoff until it is back.
    let port = a.listen().rsplit(':').next().unwrap().to_owned();
    a.cs.ok(&["stop"]);
    wait_for("B to notice", || (b.peers() == 0).then_some(()));
    wait_for("a failed re-dial while A is down", || b.cs.log().contains("cannot reach a known peer").then_some(()));
    let listed = b.cs.json(&["peers", "--json"]);
    assert_eq!(listed["peers"][0]["state"], "dialing", "{listed}");
    assert!(listed["peers"][0]["failures"].as_u64() >= Some(1), "{listed}");
    let o = a.cs.command(&["start"]).env("CLEARSKIES_LISTEN_PORT", &port).output().unwrap();
    assert!(o.status.success(), "{}", crate::util::stderr(&o));
    wait_for("the session after A's restart", || (a.peers() == 1 && b.peers() == 1).then_some(()));
}

/// `code list` as JSON: the daemon's codes.
fn codes(d: &Daemon) -> Vec<serde_json::Value> {
    d.cs.json(&["code", "list", "--json"])["codes"].as_array().cloned().unwrap_or_default()
}

#[test]
fn codes_expire_are_cancelled_and_list_who_joined() {
    let a = Daemon::start();
    let (b, c, d) = (Daemon::start(), Daemon::start(), Daemon::start());
    let dir_a = tempfile::tempdir().unwrap();
    let there = tempfile::tempdir().unwrap();
    let into = |name: &str| there.path().join(name).to_str().unwrap().to_owned();

    // A code that expires: refused once `code list` says so.
    let short = a.share_code(dir_a.path(), &["--expires", "1s"]);
    wait_for("the short code to expire", || (codes(&a)[0]["state"] == "expired").then_some(()));
    let o = b.cs.run(&["attach", &short, &into("expired"), "--peer", &a.listen()]);
    assert!(stderr(&o).contains("code_refused"), "{}", stderr(&o));

    // A multi-use code, used by two peers: still active, and both are listed.
    let many = a.share_code(dir_a.path(), &["--multi-use", "--expires", "never"]);
    b.cs.ok(&["attach", &many, &into("b"), "--peer", &a.listen()]);
    c.cs.ok(&["attach", &many, &into("c"), "--peer", &a.listen()]);
    let peer_id = |x: &Daemon| {
        let list = x.cs.json(&["list", "--json"]);
        list["shares"][0]["peer_id"].as_str().map(str::to_owned)
    };
    let listed = codes(&a);
    let entry = listed.iter().find(|e| e["multi_use"] == true).unwrap();
    assert_eq!((entry["state"].as_str(), entry["expires"].is_null()), (Some("active"), true), "{entry}");
    let joined: Vec<&str> = entry["used_by"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(joined.len(), 2, "{entry}");
    let (pb, pc) = (peer_id(&b).unwrap(), peer_id(&c).unwrap());
    assert!(joined.contains(&pb.as_str()) && joined.contains(&pc.as_str()), "{entry} {pb} {pc}");
    let text = a.cs.ok(&["code", "list"]);
    assert!(text.contains("multi-use") && text.contains("never expires") && text.contains("expired"), "{text}");

    // Cancelled by the ID prefix `code list` shows: refused at once, and gone from the list.
    let id = entry["access_id"].as_str().unwrap()[..12].to_owned();
    let cancelled = a.cs.ok(&["code", "cancel", &id]);
    assert!(
        cancelled.contains("does not disconnect") && cancelled.contains(&pb) && cancelled.contains("peers remove"),
        "{cancelled}"
    );
    let o = d.cs.run(&["attach", &many, &into("d"), "--peer", &a.listen()]);
    assert!(stderr(&o).contains("code_refused"), "{}", stderr(&o));
    assert!(!there.path().join("d").exists());
    assert!(codes(&a).iter().all(|e| e["multi_use"] != true));
    // Cancelling it again, or something that never existed, says so.
    let o = a.cs.run(&["code", "cancel", &id]);
    assert!(stderr(&o).contains("no_such_code"), "{}", stderr(&o));
    let o = a.cs.run(&["share", dir_a.path().to_str().unwrap(), "--expires", "soon"]);
    assert!(stderr(&o).contains("not a duration"), "{}", stderr(&o));
}

#[test]
fn custom_username_and_password_join_a_share() {
    let a = Daemon::start();
    let b = Daemon::start();
    let dir_a = tempfile::tempdir().unwrap();
    std::fs::write(dir_a.path().join("hello.txt"), b"hi").unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let target = dir_b.path().join("copy");
    let out = a.cs.ok(&["share", dir_a.path().to_str().unwrap(), "--username", "alice", "--password", "correct horse"]);
    assert!(out.contains("attach --username \"alice\""), "{out}");
    assert!(!out.contains("SYNC"), "{out}");
    // The same username again while it is live: refused.
    let o = a.cs.run(&["share", dir_a.path().to_str().unwrap(), "--username", "alice", "--password", "x"]);
    assert!(stderr(&o).contains("username_taken"), "{}", stderr(&o));

    // A wrong password: refused like a wrong code.
    let t = target.to_str().unwrap();
    let o = b.cs.run(&["attach", "--username", "alice", "--password", "wrong horse", t, "--peer", &a.listen()]);
    assert!(stderr(&o).contains("code_refused"), "{}", stderr(&o));
    assert!(!target.exists());

    // The right one, typed on stdin rather than on the command line.
    let mut child =
        b.cs.command(&["attach", "--username", "alice", t, "--peer", &a.listen()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"correct horse\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    b.cs.ok(&["wait", t, "--timeout", "30"]);
    assert_eq!(std::fs::read(target.join("hello.txt")).unwrap(), b"hi");
    let listed = codes(&a);
    assert_eq!((listed[0]["username"].as_str(), listed[0]["state"].as_str()), (Some("alice"), Some("used")));
}

#[test]
fn a_brute_force_is_throttled_and_joined_peers_are_not() {
    let a = Daemon::start();
    let b = Daemon::start();
    let mallory = Daemon::start();
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let code = new_code(&a, dir_a.path());
    b.cs.ok(&["attach", &code, dir_b.path().to_str().unwrap(), "--peer", &a.listen()]);
    wait_for("the session", || (a.peers() == 1 && b.peers() == 1).then_some(()));
    a.cs.ok(&["share", dir_a.path().to_str().unwrap(), "--username", "bob", "--password", "hunter2", "--multi-use"]);

    // 30 guesses at bob's password from one address, as fast as the CLI goes.
    let started = std::time::Instant::now();
    let target = tempfile::tempdir().unwrap();
    let (mut refused, mut throttled) = (0, 0);
    for i in 0..30 {
        let t = target.path().join(format!("try{i}"));
        let guess = format!("guess{i}");
        let args = ["attach", "--username", "bob", "--password", &guess, t.to_str().unwrap(), "--peer", &a.listen()];
        let o = mallory.cs.run(&args);
        let err = stderr(&o);
        match () {
            () if err.contains("(throttled)") => throttled += 1,
            () if err.contains("code_refused") => refused += 1,
            () => panic!("unexpected answer to guess {i}: {err}"),
        }
    }
    // The default is 10 a minute per IP: a burst of 10 (B's attach with its code was one of
    // them), then one every 6 s.
    let allowed = 9 + started.elapsed().as_secs() / 6 + 1;
    let reached_srp = a.metric("clearskies_auth_failures_total");
    assert_eq!(refused as f64, reached_srp, "every refused guess reached SRP and only those");
    assert!(refused >= 9 && refused <= allowed, "{refused} guesses reached SRP (allowed {allowed})");
    assert_eq!(throttled as f64, a.metric("clearskies_auth_throttled_total"));
    assert!(throttled >= 30 - allowed, "{throttled} throttled");

    // A peer that joined earlier reconnects with its share key from the same address at once.
    b.cs.ok(&["stop"]);
    wait_for("A to notice", || (a.peers() == 0).then_some(()));
    b.cs.ok(&["start"]);
    wait_for("B back despite the throttle", || (a.peers() == 1 && b.peers() == 1).then_some(()));
}

/// An attach that fails once the keys have arrived (here: the target lies inside a share
/// this daemon has) leaves no directory behind, so none syncs to the sharer either.
#[test]
fn a_failed_attach_creates_no_directories() {
    let a = Daemon::start();
    let b = Daemon::start();
    let dir_a = tempfile::tempdir().unwrap();
    let other_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let copy = dir_b.path().join("copy");
    b.cs.ok(&["attach", &new_code(&a, dir_a.path()), copy.to_str().unwrap(), "--peer", &a.listen()]);
    b.cs.ok(&["wait", copy.to_str().unwrap(), "--timeout", "30"]);

    // Another share of A's, attached inside B's copy of the first: refused.
    let nested = copy.join("x").join("y");
    let code = new_code(&a, other_a.path());
    let o = b.cs.run(&["attach", &code, nested.to_str().unwrap(), "--peer", &a.listen()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("overlapping_share"), "{}", stderr(&o));
    assert!(!copy.join("x").exists(), "the failed attach left {} behind", copy.join("x").display());
    // A file written after it reaches A; nothing of the failed attach came before it.
    std::fs::write(copy.join("after.txt"), b"after").unwrap();
    wait_for("after.txt at A", || dir_a.path().join("after.txt").exists().then_some(()));
    assert!(!dir_a.path().join("x").exists());
    assert_eq!(b.cs.json(&["list", "--json"])["shares"].as_array().unwrap().len(), 1);

    // Nor does a refused code or an unreachable peer create anything.
    let o = b.cs.run(&["attach", &code, dir_b.path().join("p/q").to_str().unwrap(), "--peer", "127.0.0.1:1"]);
    assert!(stderr(&o).contains("unreachable"), "{}", stderr(&o));
    assert!(!dir_b.path().join("p").exists());
}

/// A file (or a path under one) is not a directory to attach into: refused before the code
/// is tried, so a single-use code still works afterwards.
#[test]
fn attach_into_a_file_is_refused_before_the_code_is_tried() {
    let a = Daemon::start();
    let b = Daemon::start();
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let code = new_code(&a, dir_a.path());
    let file = dir_b.path().join("afile");
    std::fs::write(&file, b"data").unwrap();
    for target in [file.clone(), file.join("sub")] {
        let o = b.cs.run(&["attach", &code, target.to_str().unwrap(), "--peer", &a.listen()]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(&format!("{} is not a directory", file.display())), "{target:?}: {err}");
        assert!(err.contains("not_a_directory"), "{err}");
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"data");
    assert_eq!(codes(&a)[0]["state"], "active");
    b.cs.ok(&["attach", &code, dir_b.path().join("good").to_str().unwrap(), "--peer", &a.listen()]);
}

#[test]
fn attaching_into_a_folder_with_files_needs_merge_and_spends_no_code_until_then() {
    let (a, b) = (Daemon::start(), Daemon::start());
    let base = tempfile::tempdir().unwrap();
    let (ra, rb) = (base.path().join("a"), base.path().join("b"));
    fs::create_dir_all(&ra).unwrap();
    fs::create_dir_all(&rb).unwrap();
    fs::write(ra.join("notes.txt"), b"theirs").unwrap();
    fs::write(rb.join("notes.txt"), b"mine").unwrap();
    let code = a.share_code(&ra, &[]);
    let o = b.cs.run(&["attach", &code, rb.to_str().unwrap(), "--peer", &a.listen()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("is not empty") && stderr(&o).contains("--merge"), "{}", stderr(&o));
    assert!(b.cs.json(&["list", "--json"])["shares"].as_array().unwrap().is_empty(), "nothing joined");
    // The single-use code was not tried: it works once the user agrees.
    b.cs.ok(&["attach", &code, rb.to_str().unwrap(), "--peer", &a.listen(), "--merge"]);
    wait_for("the merge's conflict copy", || {
        let names: Vec<String> =
            fs::read_dir(&rb).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        names.iter().any(|n| n.contains("CONFLICT")).then_some(())
    });
}

/// The peer port listens on IPv6 and IPv4 by default (`[::]`): a peer joins over IPv6 with a
/// bracketed `--peer [::1]:PORT`, another over IPv4, and the listener sees the IPv4 one as
/// `127.0.0.1`, not `::ffff:127.0.0.1`. `listen_address = 0.0.0.0` is IPv4 only.
#[test]
fn the_default_listener_takes_ipv6_and_ipv4_peers() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: this machine has no IPv6 loopback");
        return;
    }
    // (Test daemons listen on 127.0.0.1 unless told otherwise: this one has the default.)
    let a = Daemon::start_with(&[("CLEARSKIES_LISTEN_ADDRESS", "::")]);
    let (b, c) = (Daemon::start(), Daemon::start());
    let listen = a.listen();
    assert!(listen.starts_with("[::]:"), "{listen}");
    let port = listen.rsplit(':').next().unwrap().to_owned();
    let (dir_a, dir_b, dir_c) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let code = a.share_code(dir_a.path(), &["--multi-use"]);
    b.cs.ok(&["attach", &code, dir_b.path().to_str().unwrap(), "--peer", &format!("[::1]:{port}")]);
    c.cs.ok(&["attach", &code, dir_c.path().to_str().unwrap(), "--peer", &format!("127.0.0.1:{port}")]);
    fs::write(dir_a.path().join("both.txt"), b"over both families").unwrap();
    for (who, dir) in [("B (IPv6)", dir_b.path()), ("C (IPv4)", dir_c.path())] {
        wait_for(&format!("both.txt on {who}"), || {
            (fs::read(dir.join("both.txt")).ok()? == b"over both families").then_some(())
        });
    }
    let listed = a.cs.json(&["peers", "--json"]);
    let addresses: Vec<&str> =
        listed["peers"].as_array().unwrap().iter().filter_map(|p| p["address"].as_str()).collect();
    assert!(addresses.iter().any(|a| a.starts_with("[::1]:")), "{listed}");
    assert!(addresses.iter().any(|a| a.starts_with("127.0.0.1:")), "{listed}");
    assert!(listed["peers"].as_array().unwrap().iter().all(|p| p["transport"] == "tcp"), "{listed}");

    let v4 = Daemon::start_with(&[("CLEARSKIES_LISTEN_ADDRESS", "0.0.0.0")]);
    let v4_port = v4.listen().rsplit(':').next().unwrap().to_owned();
    assert_eq!(v4.listen(), format!("0.0.0.0:{v4_port}"));
    let dir_v4 = tempfile::tempdir().unwrap();
    let code = v4.share_code(dir_v4.path(), &[]);
    let target = tempfile::tempdir().unwrap();
    let o = b.cs.run(&["attach", &code, target.path().to_str().unwrap(), "--peer", &format!("[::1]:{v4_port}")]);
    assert!(!o.status.success() && stderr(&o).contains("cannot connect"), "{}", stderr(&o));
}
