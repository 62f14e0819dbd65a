//! Sharing directories: create, list, restart, detach, and the error cases.

use std::fs;

use serde_json::Value;

use crate::util::{stderr, wait_for, Daemon};

/// The share's `list_shares` entry once its scan has finished.
fn idle_share(d: &Daemon, path: &std::path::Path) -> Value {
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let path = path.to_str().expect("test paths are UTF-8").to_owned();
    wait_for("the share to settle (idle or error)", || {
        let list = d.cs.json(&["list", "--json"]);
        list["shares"]
            .as_array()?
            .iter()
            .find(|s| s["path"] == path.as_str() && (s["status"] == "idle" || s["status"] == "error"))
            .cloned()
    })
}

#[test]
fn share_list_restart_detach() {
    let d = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("sub dir/ü")).unwrap();
    fs::write(dir.path().join("sub dir/ü/a.txt"), b"hello").unwrap();
    fs::write(dir.path().join("empty"), b"").unwrap();

    let out = d.cs.ok(&["share", dir.path().to_str().unwrap()]);
    let code = out.split_whitespace().find(|w| w.starts_with("SYNC")).expect("a code in the output").to_owned();
    d.cs.ok(&["code", "inspect", &code]);
    assert!(dir.path().join(".clearskies").is_dir());

    let s = idle_share(&d, dir.path());
    assert_eq!(s["status"], "idle", "{s}");
    assert_eq!((s["files"].as_u64(), s["directories"].as_u64(), s["bytes"].as_u64()), (Some(2), Some(3), Some(5)));
    assert_eq!(s["mode"], "read_write");

    // A second code for the same share, as JSON.
    let j = d.cs.json(&["share", dir.path().to_str().unwrap(), "--json", "--multi-use", "--expires", "1h"]);
    assert_ne!(j["access_code"].as_str(), Some(code.as_str()));

    // The share survives a restart.
    d.cs.ok(&["stop"]);
    d.cs.ok(&["start"]);
    assert_eq!(idle_share(&d, dir.path())["files"].as_u64(), Some(2));

    d.cs.ok(&["detach", dir.path().to_str().unwrap()]);
    assert!(d.cs.json(&["list", "--json"])["shares"].as_array().unwrap().is_empty());
    assert!(dir.path().join("sub dir/ü/a.txt").exists());
    assert!(!dir.path().join(".clearskies").exists());
}

#[test]
fn bad_share_requests_fail_clearly_and_change_nothing() {
    let d = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().to_str().unwrap();

    let o = d.cs.run(&["share", p, "--mode", "write-only"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown mode"), "{}", stderr(&o));
    assert!(!dir.path().join(".clearskies").exists());

    let o = d.cs.run(&["share", &format!("{p}/missing")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));

    d.cs.ok(&["share", p]);
    fs::create_dir(dir.path().join("inner")).unwrap();
    let o = d.cs.run(&["share", &format!("{p}/inner")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("overlapping_share"), "{}", stderr(&o));

    let o = d.cs.run(&["detach", "/no/such/share"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not_shared"), "{}", stderr(&o));
    assert_eq!(d.cs.json(&["list", "--json"])["shares"].as_array().unwrap().len(), 1);
}

#[test]
fn a_missing_root_is_an_error_state_not_a_deletion() {
    let d = Daemon::start();
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("share");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("precious.txt"), b"keep me").unwrap();
    d.cs.ok(&["share", root.to_str().unwrap()]);
    let canonical = fs::canonicalize(&root).unwrap();
    assert_eq!(idle_share(&d, &root)["files"].as_u64(), Some(1));
    let revision = idle_share(&d, &root)["revision"].as_u64();

    // The disk goes away while the daemon is down; on start the scan finds no root.
    d.cs.ok(&["stop"]);
    fs::rename(&root, parent.path().join("elsewhere")).unwrap();
    d.cs.ok(&["start"]);
    let s = idle_share(&d, &canonical);
    assert_eq!(s["status"], "error", "{s}");
    assert!(s["error"].as_str().unwrap().contains("missing"), "{s}");
    // Nothing was recorded as deleted.
    assert_eq!(s["files"].as_u64(), Some(1));
    assert_eq!(s["revision"].as_u64(), revision);
}

/// The share's entry once it reports `want` files and is not scanning.
fn files_become(d: &Daemon, path: &std::path::Path, want: u64) -> Value {
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let path = path.to_str().expect("test paths are UTF-8").to_owned();
    wait_for(&format!("{want} files in the index"), || {
        let list = d.cs.json(&["list", "--json"]);
        list["shares"]
            .as_array()?
            .iter()
            .find(|s| s["path"] == path.as_str() && s["status"] != "scanning" && s["files"].as_u64() == Some(want))
            .cloned()
    })
}

#[test]
fn changes_are_indexed_without_a_restart() {
    let d = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    d.cs.ok(&["share", dir.path().to_str().unwrap()]);
    files_become(&d, dir.path(), 0);

    fs::write(dir.path().join("new.txt"), b"hello").unwrap();
    files_become(&d, dir.path(), 1);

    // A new directory is watched as it appears, including what is written into it at once.
    fs::create_dir_all(dir.path().join("a/b")).unwrap();
    fs::write(dir.path().join("a/b/deep.txt"), b"deep").unwrap();
    files_become(&d, dir.path(), 2);
    fs::write(dir.path().join("a/b/deeper.txt"), b"deeper").unwrap();
    let s = files_become(&d, dir.path(), 3);
    assert_eq!(s["bytes"].as_u64(), Some(15));

    // Our own temporary files are never indexed.
    fs::write(dir.path().join(".x.clearskies-part"), b"partial").unwrap();
    fs::remove_file(dir.path().join("new.txt")).unwrap();
    files_become(&d, dir.path(), 2);

    // Removing the whole root is an error state, not a mass deletion.
    let revision = files_become(&d, dir.path(), 2)["revision"].as_u64();
    let path = fs::canonicalize(dir.path()).unwrap();
    fs::remove_dir_all(dir.path()).unwrap();
    let s = wait_for("the error state", || {
        let list = d.cs.json(&["list", "--json"]);
        list["shares"]
            .as_array()?
            .iter()
            .find(|s| s["path"] == path.to_str().unwrap() && s["status"] == "error")
            .cloned()
    });
    assert_eq!(s["files"].as_u64(), Some(2), "{s}");
    assert_eq!(s["revision"].as_u64(), revision);
}

#[test]
fn a_share_beyond_the_inotify_watch_limit_says_so_and_is_scanned_periodically() {
    // The daemon runs in a user namespace of its own whose inotify watch limit is 3 (the
    // machine's limit is not touched); the share has more directories than that.
    let mut cs = crate::util::Clearskies::new();
    cs.env.push(("CLEARSKIES_FULL_SCAN_INTERVAL".into(), "1".into()));
    let inner = cs.command(&["start"]);
    let mut start = std::process::Command::new("unshare");
    start.args([
        "--user",
        "--map-root-user",
        "sh",
        "-c",
        "echo 3 > /proc/sys/user/max_inotify_watches && exec \"$@\"",
        "sh",
    ]);
    start.arg(inner.get_program()).args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => start.env(k, v),
            None => start.env_remove(k),
        };
    }
    let o = start.output().expect("running unshare (util-linux)");
    assert!(o.status.success(), "starting in a user namespace: {}", stderr(&o));
    let d = Daemon { cs };

    let dir = tempfile::tempdir().unwrap();
    for i in 0..6 {
        fs::create_dir(dir.path().join(format!("d{i}"))).unwrap();
    }
    fs::write(dir.path().join("d0/first"), b"1").unwrap();
    d.cs.ok(&["share", dir.path().to_str().unwrap()]);
    let share = wait_for("the share to say it is not watched", || {
        let s = d.first_share();
        (s["unwatched"].is_string() && s["files"] == 1).then_some(s)
    });
    let why = share["unwatched"].as_str().unwrap();
    assert!(why.contains("fs.inotify.max_user_watches") && why.contains("every 1 s"), "{why}");
    assert!(d.cs.ok(&["list"]).contains("not watched for changes"));
    // No event will come: the periodic full scan finds the new file.
    fs::write(dir.path().join("d5/second"), b"2").unwrap();
    wait_for("the periodic scan to index the new file", || (d.first_share()["files"] == 2).then_some(()));
}
