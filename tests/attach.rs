//! Joining a share with an access code: TLS + SRP + key exchange between real daemons.

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
