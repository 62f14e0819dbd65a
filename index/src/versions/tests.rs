use std::fs;
use std::path::Path;

use super::*;

fn share() -> (tempfile::TempDir, Root) {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join(META_DIR)).unwrap();
    let root = Root::open(dir.path()).unwrap();
    (dir, root)
}

fn at(secs: i64) -> Timestamp {
    Timestamp::new(secs, 0).unwrap()
}

fn keep_file(root: &Root, path: &str, why: Why, when: i64) -> (bool, Option<Version>) {
    let p = SharePath::parse(path).unwrap();
    let dir = crate::fsops::prepare_parent(root, &p).unwrap();
    let k = Keep { path: &p, by: Some(PeerId([7; 16])), why, now: at(when) };
    keep(root, &dir, p.file_name(), k).unwrap()
}

fn versions_of(base: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![base.join(META_DIR).join(VERSIONS_DIR)];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(base.join(META_DIR).join(VERSIONS_DIR)).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn names_carry_the_time_and_fit() {
    assert_eq!(stamp(at(1_796_541_301)), "20261206-071501");
    assert_eq!(version_name("photo.jpg", "20261206-071501", 0), "photo~20261206-071501.jpg");
    assert_eq!(version_name("Makefile", "20261206-071501", 2), "Makefile~20261206-071501-2");
    assert_eq!(version_name(".bashrc", "20261206-071501", 0), ".bashrc~20261206-071501");
    let long = format!("{}.txt", "é".repeat(126));
    let v = version_name(&long, "20261206-071501", 0);
    assert!(v.len() <= 255 && v.ends_with("~20261206-071501.txt"), "{v}");
    assert_eq!(original_path("a/b/photo~20261206-071501-3.jpg").as_deref(), Some("/a/b/photo.jpg"));
    assert_eq!(original_path("Makefile~20261206-071501").as_deref(), Some("/Makefile"));
    assert_eq!(original_path("a/not-a-version.jpg"), None);
    assert_eq!(original_path("a/x~2026.jpg"), None);
}

#[test]
fn a_replaced_file_is_linked_and_a_deleted_one_moved() {
    let (dir, root) = share();
    fs::create_dir_all(dir.path().join("a")).unwrap();
    fs::write(dir.path().join("a/doc.txt"), b"first").unwrap();
    let (still_there, v) = keep_file(&root, "/a/doc.txt", Why::Replaced, 1_796_541_301);
    assert!(still_there);
    let v = v.unwrap();
    assert_eq!((v.stored.as_str(), v.size, v.why), ("a/doc~20261206-071501.txt", 5, Why::Replaced));
    assert_eq!(v.by.as_deref(), Some("07070707070707070707070707070707"));
    assert_eq!(fs::read(dir.path().join("a/doc.txt")).unwrap(), b"first");

    // The same second again: a second name. Then deleted: moved, gone from the share.
    fs::write(dir.path().join("a/doc.txt"), b"second").unwrap();
    let (still_there, v2) = keep_file(&root, "/a/doc.txt", Why::Deleted, 1_796_541_301);
    assert!(!still_there && !dir.path().join("a/doc.txt").exists());
    assert_eq!(v2.unwrap().stored, "a/doc~20261206-071501-1.txt");
    assert_eq!(versions_of(dir.path()), ["a/doc~20261206-071501-1.txt", "a/doc~20261206-071501.txt"]);

    let listed = list(&root).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|v| v.path == "/a/doc.txt" && v.by.is_some()), "{listed:?}");
}

#[test]
fn restore_brings_a_version_back_and_keeps_what_was_there() {
    let (dir, root) = share();
    fs::write(dir.path().join("doc.txt"), b"old").unwrap();
    let (_, v) = keep_file(&root, "/doc.txt", Why::Deleted, 1_000_000);
    fs::write(dir.path().join("doc.txt"), b"new").unwrap();
    let path = restore(&root, &v.unwrap().stored, at(2_000_000)).unwrap();
    assert_eq!(path.as_str(), "/doc.txt");
    assert_eq!(fs::read(dir.path().join("doc.txt")).unwrap(), b"old");
    // Both versions remain: the one restored, and "new" kept by the restore.
    let listed = list(&root).unwrap();
    assert_eq!(listed.iter().map(|v| v.why).collect::<Vec<_>>(), [Why::Deleted, Why::Restored]);
    assert_eq!(fs::read(dir.path().join(META_DIR).join(VERSIONS_DIR).join(&listed[1].stored)).unwrap(), b"new");
    // Into a directory that is gone: made again.
    fs::create_dir(dir.path().join("d")).unwrap();
    fs::write(dir.path().join("d/x"), b"x").unwrap();
    let (_, v) = keep_file(&root, "/d/x", Why::Deleted, 3_000_000);
    fs::remove_dir(dir.path().join("d")).unwrap();
    restore(&root, &v.unwrap().stored, at(3_000_001)).unwrap();
    assert_eq!(fs::read(dir.path().join("d/x")).unwrap(), b"x");
    assert!(restore(&root, "no/such~20261206-071501", at(1)).is_err());
    assert!(restore(&root, "../../etc/passwd", at(1)).is_err());
}

#[test]
fn pruning_drops_old_versions_then_the_oldest_beyond_the_cap() {
    let (dir, root) = share();
    for (i, when) in [(0, 100), (1, 5_000), (2, 6_000), (3, 7_000)] {
        fs::create_dir_all(dir.path().join(format!("d{i}"))).unwrap();
        fs::write(dir.path().join(format!("d{i}/f")), vec![b'x'; 100]).unwrap();
        keep_file(&root, &format!("/d{i}/f"), Why::Deleted, when);
    }
    // Kept for 4000 s at 8000: the one from 100 goes. 300 bytes left; cap 250: 5000 goes too.
    let pruned = prune(&root, 4_000, 250, 8_000).unwrap();
    assert_eq!(pruned, Pruned { versions: 2, bytes: 200 });
    assert_eq!(versions_of(dir.path()), ["d2/f~19700101-014000", "d3/f~19700101-015640"]);
    // Emptied directories went with them; the log says only what is left.
    assert!(!dir.path().join(META_DIR).join(VERSIONS_DIR).join("d0").exists());
    let log = fs::read_to_string(dir.path().join(META_DIR).join(VERSIONS_LOG)).unwrap();
    assert_eq!(log.lines().count(), 2);
    // A version without its log line is listed (and pruned) by its name.
    fs::remove_file(dir.path().join(META_DIR).join(VERSIONS_LOG)).unwrap();
    let listed = list(&root).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|v| v.why == Why::Unknown && v.by.is_none()));
    assert_eq!(listed[0].path, "/d2/f");
}

#[test]
fn a_garbage_log_and_symlinks_are_harmless() {
    let (dir, root) = share();
    let meta = dir.path().join(META_DIR);
    fs::write(meta.join(VERSIONS_LOG), [b"not json\n".as_slice(), &vec![b'x'; 100_000], b"\n{}\n"].concat()).unwrap();
    fs::create_dir(meta.join(VERSIONS_DIR)).unwrap();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret~20261206-071501"), b"s").unwrap();
    std::os::unix::fs::symlink(outside.path(), meta.join(VERSIONS_DIR).join("link")).unwrap();
    assert_eq!(list(&root).unwrap(), []);
    assert!(open(&root, "link/secret~20261206-071501").is_err());
    prune(&root, 0, 1, 10).unwrap();
    assert!(outside.path().join("secret~20261206-071501").exists());
}

#[test]
fn no_marker_no_versions() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("f"), b"x").unwrap();
    let root = Root::open(dir.path()).unwrap();
    let p = SharePath::parse("/f").unwrap();
    let k = Keep { path: &p, by: None, why: Why::Deleted, now: at(1) };
    assert!(keep(&root, root.root_dir(), "f", k).is_err());
    assert!(!dir.path().join(META_DIR).exists(), "keeping a version made the marker");
}
