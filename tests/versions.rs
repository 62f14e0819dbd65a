//! Versions: what a peer's change replaces or deletes is kept, listed and restored;
//! `revert` on a read-only share; conflict copies that name the time and the device.

use std::fs;
use std::path::Path;

use crate::sync::{synced_pair, SyncedPair};
use crate::util::{stderr, wait_for, Daemon};

/// Waits until `path` holds `data`.
fn arrives(path: &Path, data: &[u8]) {
    wait_for(&format!("{} to hold {:?}", path.display(), String::from_utf8_lossy(data)), || {
        (fs::read(path).ok()? == data).then_some(())
    });
}

fn kept(d: &Daemon, root: &Path, file: &str) -> Vec<serde_json::Value> {
    d.cs.json(&["versions", root.to_str().unwrap(), file, "--json"])["versions"].as_array().unwrap().clone()
}

#[test]
fn a_peers_edit_and_deletion_are_kept_listed_and_restored() {
    // (Bound whole: its temp dir lives as long as the pair.)
    let pair: SyncedPair = synced_pair("docs/plan.txt", b"first plan");
    let (a, b, ra, rb) = (&pair.a, &pair.b, &pair.ra, &pair.rb);
    let a_id = a.first_share()["peer_id"].as_str().unwrap().to_owned();

    // A edits: B keeps its old copy, named by the time, noted as replaced by A.
    fs::write(ra.join("docs/plan.txt"), b"second plan").unwrap();
    arrives(&rb.join("docs/plan.txt"), b"second plan");
    let v = wait_for("B to list the replaced version", || Some(kept(b, rb, "docs/plan.txt")).filter(|v| v.len() == 1));
    assert_eq!(
        (v[0]["path"].as_str(), v[0]["why"].as_str(), v[0]["size"].as_u64()),
        (Some("/docs/plan.txt"), Some("replaced"), Some(10))
    );
    assert_eq!(v[0]["by"].as_str(), Some(a_id.as_str()));
    let stored = v[0]["stored"].as_str().unwrap().to_owned();
    assert!(stored.starts_with("docs/plan~") && stored.ends_with(".txt"), "{stored}");
    assert_eq!(fs::read(rb.join(".clearskies/versions").join(&stored)).unwrap(), b"first plan");
    let text = b.cs.ok(&["versions", rb.to_str().unwrap()]);
    // A is named as it names itself (its host name by default), with its ID's start.
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_owned();
    assert!(
        text.contains("/docs/plan.txt") && text.contains(&format!("replaced by {host} ({})", &a_id[..8])),
        "{text}"
    );
    // The versions are never synced to A.
    assert!(!ra.join(".clearskies/versions").exists());

    // A deletes: B moves the file into the versions.
    fs::remove_file(ra.join("docs/plan.txt")).unwrap();
    wait_for("the deletion on B", || (!rb.join("docs/plan.txt").exists()).then_some(()));
    let v = wait_for("two versions", || Some(kept(b, rb, "docs/plan.txt")).filter(|v| v.len() == 2));
    assert_eq!(v[1]["why"].as_str(), Some("deleted"));

    // A time picks the latest version of that time (both may be of one second here).
    let stamp = stored.trim_start_matches("docs/plan~").trim_end_matches(".txt").to_owned();
    let dry = b.cs.ok(&["versions", rb.to_str().unwrap(), "docs/plan.txt"]);
    assert!(dry.contains(&stamp), "{dry}");
    // B restores the first one by its stored name: a local change, so A gets it back too.
    let out = b.cs.ok(&["restore", rb.to_str().unwrap(), "docs/plan.txt", "--version", &stored]);
    assert!(out.contains("restored /docs/plan.txt"), "{out}");
    arrives(&rb.join("docs/plan.txt"), b"first plan");
    arrives(&ra.join("docs/plan.txt"), b"first plan");

    // Bad input changes nothing and says why.
    let o = b.cs.run(&["restore", rb.to_str().unwrap(), "docs/plan.txt", "--version", "1999"]);
    assert!(!o.status.success() && stderr(&o).contains("no version of /docs/plan.txt matches"), "{}", stderr(&o));
    let o = b.cs.run(&["restore", rb.to_str().unwrap(), "nothing/here.txt"]);
    assert!(!o.status.success() && stderr(&o).contains("no version of /nothing/here.txt"), "{}", stderr(&o));
    let o = b.cs.run(&["restore", rb.to_str().unwrap(), "../../etc/passwd"]);
    assert!(!o.status.success(), "{}", stderr(&o));
    let o = b.cs.run(&["revert", rb.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("read-only"), "{}", stderr(&o));
    assert_eq!(fs::read(rb.join("docs/plan.txt")).unwrap(), b"first plan");

    // Detaching keeps the versions (maybe the only copy of something), and says where.
    let out = b.cs.ok(&["detach", rb.to_str().unwrap()]);
    assert!(out.contains(".clearskies/versions"), "{out}");
    assert_eq!(fs::read(rb.join(".clearskies/versions").join(&stored)).unwrap(), b"first plan");
    assert!(rb.join(".clearskies/versions.jsonl").exists() && !rb.join(".clearskies/partial").exists());
}

#[test]
fn versions_can_be_turned_off() {
    let (a, b) = (Daemon::start(), Daemon::start_with(&[("CLEARSKIES_VERSIONS_KEEP_DAYS", "0")]));
    let base = tempfile::tempdir().unwrap();
    let (ra, rb) = (base.path().join("a"), base.path().join("b"));
    fs::create_dir_all(&ra).unwrap();
    fs::write(ra.join("f"), b"one").unwrap();
    let code = a.share_code(&ra, &[]);
    b.cs.ok(&["attach", &code, rb.to_str().unwrap(), "--peer", &a.listen()]);
    arrives(&rb.join("f"), b"one");
    fs::write(ra.join("f"), b"two").unwrap();
    arrives(&rb.join("f"), b"two");
    assert!(kept(&b, &rb, "f").is_empty());
    assert!(b.cs.ok(&["versions", rb.to_str().unwrap()]).contains("no versions"));
}

#[test]
fn revert_drops_a_read_only_peers_local_changes_into_the_versions() {
    let (a, b) = (Daemon::start(), Daemon::start());
    let base = tempfile::tempdir().unwrap();
    let (ra, rb) = (base.path().join("a"), base.path().join("b"));
    fs::create_dir_all(ra.join("docs")).unwrap();
    fs::write(ra.join("docs/notes.txt"), b"the notes").unwrap();
    fs::write(ra.join("gone.txt"), b"deleted here").unwrap();
    let code = a.share_code(&ra, &["--mode", "read-only"]);
    b.cs.ok(&["attach", &code, rb.to_str().unwrap(), "--peer", &a.listen()]);
    arrives(&rb.join("docs/notes.txt"), b"the notes");
    arrives(&rb.join("gone.txt"), b"deleted here");

    // B edits one file, deletes another and adds a third and a directory.
    fs::write(rb.join("docs/notes.txt"), b"scribbled over").unwrap();
    fs::remove_file(rb.join("gone.txt")).unwrap();
    fs::create_dir_all(rb.join("mine")).unwrap();
    fs::write(rb.join("mine/extra.txt"), b"only on b").unwrap();
    wait_for("B to count its local changes", || (b.first_share()["local_changes"].as_u64()? >= 4).then_some(()));

    let out = b.cs.ok(&["revert", rb.to_str().unwrap()]);
    assert!(out.contains("moved into the versions"), "{out}");
    arrives(&rb.join("docs/notes.txt"), b"the notes");
    arrives(&rb.join("gone.txt"), b"deleted here");
    assert!(!rb.join("mine").exists(), "the added directory stayed");
    wait_for("no local changes left", || (b.first_share()["local_changes"].as_u64()? == 0).then_some(()));
    // Nothing was lost: both changes made here are in the versions.
    let all = b.cs.json(&["versions", rb.to_str().unwrap(), "--json"]);
    let paths: Vec<&str> = all["versions"].as_array().unwrap().iter().map(|v| v["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"/docs/notes.txt") && paths.contains(&"/mine/extra.txt"), "{all}");
    let v = kept(&b, &rb, "mine/extra.txt");
    assert_eq!(fs::read(rb.join(".clearskies/versions").join(v[0]["stored"].as_str().unwrap())).unwrap(), b"only on b");
    // A never saw any of it.
    assert_eq!(fs::read(ra.join("docs/notes.txt")).unwrap(), b"the notes");
    assert!(!ra.join("mine").exists());
}
