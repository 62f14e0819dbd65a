//! Code spreading (issue 21): a long-lived code spreads to the share's read-write peers as
//! its SRP verifier, so any of them admits a joiner while the code's creator is offline; a
//! cancellation spreads the same way, and reaches the creator when it comes back.

use std::fs;

use crate::util::{stderr, wait_for, Daemon};

fn codes(d: &Daemon) -> Vec<serde_json::Value> {
    d.cs.json(&["code", "list", "--json"])["codes"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_multi_use_code_admits_through_another_peer_and_its_cancellation_spreads_back() {
    let (a, b, c, d) = (Daemon::start(), Daemon::start(), Daemon::start(), Daemon::start());
    let base = tempfile::tempdir().unwrap();
    let dir = |name: &str| base.path().join(name);
    fs::create_dir_all(dir("a")).unwrap();
    fs::write(dir("a").join("first.txt"), b"first").unwrap();
    let code = a.share_code(&dir("a"), &["--multi-use", "--expires", "never"]);
    let single = a.share_code(&dir("a"), &[]);
    b.cs.ok(&["attach", &code, dir("b").to_str().unwrap(), "--peer", &a.listen()]);

    // B holds the multi-use code (never the single-use one), as A issued it.
    let held = wait_for("B to hold the code", || {
        let held = codes(&b);
        (held.len() == 1).then_some(held)
    });
    let issued = codes(&a).into_iter().find(|c| c["multi_use"] == true).unwrap();
    assert_eq!(
        (held[0]["access_id"].clone(), held[0]["state"].as_str()),
        (issued["access_id"].clone(), Some("active"))
    );
    assert!(b.cs.log().contains("a peer spread an access code"), "{}", b.cs.log());

    // A goes offline: C joins with the same code through B alone, and gets the files.
    let a_port = a.listen().rsplit(':').next().unwrap().to_owned();
    a.cs.ok(&["stop"]);
    c.cs.ok(&["attach", &code, dir("c").to_str().unwrap(), "--peer", &b.listen()]);
    wait_for("first.txt on C", || (fs::read(dir("c").join("first.txt")).ok()? == b"first").then_some(()));
    // The single-use code did not spread: B refuses it.
    let o = d.cs.run(&["attach", &single, dir("d-single").to_str().unwrap(), "--peer", &b.listen()]);
    assert!(!o.status.success() && stderr(&o).contains("code_refused"), "{}", stderr(&o));

    // B cancels the code; A comes back, learns it from B, and refuses the code too.
    let id = held[0]["access_id"].as_str().unwrap().to_owned();
    b.cs.ok(&["code", "cancel", &id[..12]]);
    assert!(codes(&b).is_empty());
    let o = a.cs.command(&["start"]).env("CLEARSKIES_LISTEN_PORT", &a_port).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    wait_for("A to learn of the cancellation", || {
        codes(&a).iter().all(|c| c["access_id"].as_str() != Some(id.as_str())).then_some(())
    });
    let o = d.cs.run(&["attach", &code, dir("d").to_str().unwrap(), "--peer", &a.listen()]);
    assert!(!o.status.success() && stderr(&o).contains("code_refused"), "{}", stderr(&o));
    assert!(!dir("d").exists(), "a refused attach creates nothing");
}
