use std::fs;

use clearskies_protocol::path::META_DIR;
use clearskies_protocol::vclock::VectorClock;
use sha2::{Digest, Sha256};

use super::*;
use crate::scan::{scan, ScanContext};

const ME: PeerId = PeerId([1; 16]);
const THEM: PeerId = PeerId([2; 16]);

struct Fixture {
    _db: tempfile::TempDir,
    root: tempfile::TempDir,
    store: ShareStore,
    counter: u8,
    versions: bool,
}

fn sha(data: &[u8]) -> Sha256Hash {
    Sha256Hash(Sha256::digest(data).into())
}

/// Whatever a test did (scans, peers' records, conflicts, downloads, deletions), the stored
/// totals equal a count of the records.
impl Drop for Fixture {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert_eq!(self.store.totals().unwrap(), self.store.count_totals().unwrap(), "stored totals drifted");
        }
    }
}

impl Fixture {
    fn new() -> Self {
        let (db, root, store) = crate::test_share();
        Fixture { _db: db, root, store, counter: 100, versions: false }
    }

    fn scan(&mut self) {
        let mut c = self.counter;
        let mut uuid = || {
            c += 1;
            RecordUuid([c; 16])
        };
        let mut ctx = ScanContext {
            me: ME,
            now: Timestamp::new(10, 0).unwrap(),
            new_uuid: &mut uuid,
            filter: None,
            read_only: false,
            delete_limit: None,
            confirmed_deletions: None,
            device: "",
            committed: None,
            hashers: 0,
        };
        scan(self.root.path(), &self.store, &mut ctx, &crate::scan::Scope::Full).unwrap();
        self.counter = c;
    }

    fn receive(&mut self, records: Vec<Record>) -> Outcome {
        let mut c = self.counter;
        let mut uuid = || {
            c += 1;
            RecordUuid([c; 16])
        };
        let mut a = Applier::new(self.root.path(), &self.store, ME, Timestamp::new(20, 0).unwrap(), &mut uuid)
            .with_versions(self.versions);
        let out = a.receive(records.into_iter().map(|r| (7, r)).collect()).unwrap();
        self.counter = c;
        out
    }

    fn deliver(&mut self, f: &Fetch, data: &[u8]) -> Vec<SharePath> {
        // As the transfer actor does: a partial download below the marker, by content hash.
        let mut w = fsops::TempWriter::resume(self.root.path(), &f.sha256, f.size).unwrap();
        w.append(data).unwrap();
        let temp = w.finish(&f.sha256, f.size, f.unix_mode, f.mtime).unwrap();
        let mut uuid = || RecordUuid([0; 16]);
        let mut a = Applier::new(self.root.path(), &self.store, ME, Timestamp::new(30, 0).unwrap(), &mut uuid)
            .with_versions(self.versions);
        a.downloaded(vec![Download { sha256: f.sha256, temp, unsynced: None }]).unwrap()
    }

    /// Our record at `p`, deleted by them after seeing it.
    fn their_tombstone(&self, p: &str) -> Record {
        let mut r = self.get(p);
        r.deleted = true;
        r.vector_clock.increment(THEM);
        r.last_updated_by = THEM;
        r.last_updated_rev = r.vector_clock.get(&THEM);
        r
    }

    fn get(&self, p: &str) -> Record {
        self.store.get(&SharePath::parse(p).unwrap()).unwrap().unwrap()
    }

    fn file(&self, p: &str) -> Option<Vec<u8>> {
        fs::read(self.root.path().join(p)).ok()
    }

    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != META_DIR)
            .collect();
        v.sort();
        v
    }
}

fn theirs(path: &str, data: &[u8], clock: &[(PeerId, u64)], time: i64) -> Record {
    let vector_clock: VectorClock = clock.iter().copied().collect();
    Record {
        path: SharePath::parse(path).unwrap(),
        uuid: RecordUuid([9; 16]),
        kind: EntryKind::File,
        size: Some(data.len() as u64),
        sha256: Some(sha(data)),
        mtime: Some(Timestamp::new(1_500_000_000, 123_456_789).unwrap()),
        unix_mode: Some(0o640),
        deleted: false,
        last_updated_by: THEM,
        last_updated_rev: vector_clock.get(&THEM),
        update_time: Timestamp::new(time, 0).unwrap(),
        vector_clock,
        extra: Default::default(),
        local: None,
        local_sha256: None,
        pending: false,
        signed: None,
        sealed: None,
    }
}

#[test]
fn a_newer_file_is_fetched_then_installed_with_its_metadata() {
    let mut f = Fixture::new();
    f.scan();
    let out = f.receive(vec![theirs("/d/new.txt", b"remote", &[(THEM, 1)], 5)]);
    assert_eq!(out.fetch.len(), 1);
    assert_eq!(out.announce.len(), 1, "relayed to other peers");
    assert!(f.get("/d/new.txt").wants_content());
    assert_eq!(f.file("d/new.txt"), None, "nothing under the name before it is verified");
    // A scan meanwhile does not take the missing file for a deletion.
    f.scan();
    assert!(!f.get("/d/new.txt").deleted);

    let installed = f.deliver(&out.fetch[0], b"remote");
    assert_eq!(installed.len(), 1);
    assert_eq!(f.file("d/new.txt").unwrap(), b"remote");
    let r = f.get("/d/new.txt");
    assert!(r.installed_file() && !r.pending);
    let m = fs::metadata(f.root.path().join("d/new.txt")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((m.mode() & 0o777, m.mtime_nsec()), (0o640, 123_456_789));
    // And the next scan sees nothing new.
    let rev = f.store.revision().unwrap();
    f.scan();
    assert_eq!(f.store.revision().unwrap(), rev);
}

#[test]
fn older_and_equal_records_are_ignored() {
    let mut f = Fixture::new();
    fs::write(f.root.path().join("a"), b"mine").unwrap();
    f.scan();
    let mine = f.get("/a");
    let mut old = mine.clone();
    old.vector_clock = VectorClock::new();
    old.last_updated_by = THEM;
    old.last_updated_rev = 1;
    old.sha256 = Some(sha(b"old"));
    // An empty clock is before ours.
    let out = f.receive(vec![old, mine.clone()]);
    assert_eq!((out.ignored, out.fetch.len()), (2, 0));
    assert_eq!(f.get("/a"), mine);
}

#[test]
fn concurrent_edits_keep_exactly_one_conflict_copy_made_by_the_loser() {
    // We lose (their update_time is later): our file becomes the conflict copy.
    let mut f = Fixture::new();
    fs::write(f.root.path().join("doc.txt"), b"ours").unwrap();
    f.scan();
    let ours = f.get("/doc.txt");
    let out = f.receive(vec![theirs("/doc.txt", b"theirs", &[(THEM, 1)], 2_000_000_000)]);
    assert_eq!(out.conflicts, 1);
    let names = f.names();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("doc.CONFLICT.") && names[0].ends_with(".txt"), "{names:?}");
    assert_eq!(f.file(&names[0]).unwrap(), b"ours");
    let copy = f.get(&format!("/{}", names[0]));
    assert_eq!(copy.extra["conflict_source"], "/doc.txt");
    let w = f.get("/doc.txt");
    assert_eq!(w.sha256, Some(sha(b"theirs")));
    assert_eq!(w.last_updated_by, ME, "the loser writes the winner again");
    assert!(ours.vector_clock.before(&w.vector_clock) && w.vector_clock.get(&THEM) == 1);
    assert_eq!(out.announce.iter().filter(|(from, _)| from.is_none()).count(), 2);
    f.deliver(&out.fetch[0], b"theirs");
    assert_eq!(f.file("doc.txt").unwrap(), b"theirs");
    // The stale record arriving again changes nothing.
    let out = f.receive(vec![theirs("/doc.txt", b"theirs", &[(THEM, 1)], 2_000_000_000)]);
    assert_eq!((out.conflicts, out.ignored), (0, 1));

    // We win (ours is later): their record is ignored; they make the copy.
    let mut f = Fixture::new();
    fs::write(f.root.path().join("doc.txt"), b"ours").unwrap();
    f.scan();
    let out = f.receive(vec![theirs("/doc.txt", b"theirs", &[(THEM, 1)], 1)]);
    assert_eq!((out.conflicts, out.ignored, out.fetch.len()), (0, 1, 0));
    assert_eq!(f.names(), vec!["doc.txt"]);
}

#[test]
fn deletions_remove_unchanged_files_only() {
    let mut f = Fixture::new();
    fs::create_dir(f.root.path().join("dir")).unwrap();
    fs::write(f.root.path().join("dir/a"), b"a").unwrap();
    fs::write(f.root.path().join("b"), b"b").unwrap();
    f.scan();
    // "b" changed on disk after our scan: the edit beats the deletion.
    let (tb, ta, tdir) = (f.their_tombstone("/b"), f.their_tombstone("/dir/a"), f.their_tombstone("/dir"));
    fs::write(f.root.path().join("b"), b"edited").unwrap();
    // The directory's tombstone first, as a scan would order them: still removed last.
    f.receive(vec![tdir, ta, tb]);
    assert!(!f.root.path().join("dir").exists());
    assert_eq!(f.file("b").unwrap(), b"edited");
    f.scan();
    assert!(!f.get("/b").deleted, "the edit is announced again");
}

#[test]
fn contents_we_already_have_are_copied_not_fetched() {
    let mut f = Fixture::new();
    fs::write(f.root.path().join("orig"), b"same bytes").unwrap();
    f.scan();
    let out = f.receive(vec![theirs("/copy", b"same bytes", &[(THEM, 1)], 5)]);
    assert!(out.fetch.is_empty());
    assert_eq!(f.file("copy").unwrap(), b"same bytes");
    assert!(f.get("/copy").installed_file());
}

#[test]
fn records_never_write_through_a_symlink() {
    let mut f = Fixture::new();
    let outside = tempfile::tempdir().unwrap();
    fs::write(f.root.path().join("x"), b"payload").unwrap();
    std::os::unix::fs::symlink(outside.path(), f.root.path().join("link")).unwrap();
    f.scan();
    let mut dir = theirs("/link/sub", b"", &[(THEM, 1)], 5);
    dir.kind = EntryKind::Directory;
    dir.sha256 = None;
    dir.size = None;
    f.receive(vec![theirs("/link/evil", b"payload", &[(THEM, 1)], 5), dir]);
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[test]
fn a_missing_root_defers_changes_until_it_is_back() {
    let mut f = Fixture::new();
    fs::write(f.root.path().join("a"), b"a").unwrap();
    f.scan();
    let t = f.their_tombstone("/a");
    fs::remove_dir(f.root.path().join(META_DIR)).unwrap();
    f.receive(vec![t]);
    assert_eq!(f.file("a").unwrap(), b"a", "nothing deleted while the root is not there");
    assert!(f.get("/a").pending);
    fs::create_dir(f.root.path().join(META_DIR)).unwrap();
    let mut uuid = || RecordUuid([0; 16]);
    let mut a = Applier::new(f.root.path(), &f.store, ME, Timestamp::default(), &mut uuid);
    a.resume().unwrap();
    assert_eq!(f.file("a"), None);
    assert!(!f.get("/a").pending);
}

#[test]
fn blocked_work_is_counted_and_done_on_a_later_resume() {
    let mut f = Fixture::new();
    fs::write(f.root.path().join("orig"), b"same bytes").unwrap();
    f.scan();
    // Something local that is not indexed yet sits where the peer's file goes.
    fs::create_dir_all(f.root.path().join("copy/inside")).unwrap();
    let mut uuid = || RecordUuid([0; 16]);
    let mut a = Applier::new(f.root.path(), &f.store, ME, Timestamp::new(20, 0).unwrap(), &mut uuid);
    a.receive(vec![(7, theirs("/copy", b"same bytes", &[(THEM, 1)], 5))]).unwrap();
    assert_eq!(a.failures, 1);
    assert!(f.get("/copy").pending);
    assert!(f.root.path().join("copy/inside").is_dir(), "nothing local was removed");
    fs::remove_dir_all(f.root.path().join("copy")).unwrap();
    let mut a = Applier::new(f.root.path(), &f.store, ME, Timestamp::new(30, 0).unwrap(), &mut uuid);
    assert!(a.resume().unwrap().is_empty());
    assert_eq!(a.failures, 0);
    assert_eq!(f.file("copy").unwrap(), b"same bytes");
}

#[test]
fn a_deletion_never_recreates_the_directories_it_would_delete_from() {
    let mut f = Fixture::new();
    fs::create_dir_all(f.root.path().join("dir/sub")).unwrap();
    fs::write(f.root.path().join("dir/sub/a"), b"a").unwrap();
    f.scan();
    let t = f.their_tombstone("/dir/sub/a");
    // The user removed the whole directory before we scanned it.
    fs::remove_dir_all(f.root.path().join("dir")).unwrap();
    f.receive(vec![t]);
    assert!(!f.root.path().join("dir").exists());
    assert!(!f.get("/dir/sub/a").pending);
}

/// Modes from a peer never bring setuid, setgid or sticky, nor bits our umask removes,
/// whichever way they reach the disk: a download, a directory, a local copy, a
/// metadata-only change. And the next scan does not take the difference for a local change.
#[test]
fn peers_modes_never_bring_setuid_setgid_sticky_or_bits_our_umask_removes() {
    use std::os::unix::fs::MetadataExt;
    let umask = fsops::umask();
    let mut f = Fixture::new();
    fs::write(f.root.path().join("orig"), b"same bytes").unwrap();
    f.scan();
    let mut suid = theirs("/bin/suid", b"#!/bin/sh\nid\n", &[(THEM, 1)], 5);
    suid.unix_mode = Some(0o4777);
    let mut dir = theirs("/bin", b"", &[(THEM, 1)], 5);
    (dir.kind, dir.sha256, dir.size, dir.mtime, dir.unix_mode) = (EntryKind::Directory, None, None, None, Some(0o1777));
    let mut sgid = theirs("/copy", b"same bytes", &[(THEM, 1)], 5);
    sgid.unix_mode = Some(0o2777);
    let out = f.receive(vec![dir, suid, sgid]);
    assert_eq!(out.fetch.len(), 1);
    f.deliver(&out.fetch[0], b"#!/bin/sh\nid\n");
    // A metadata-only change of a file we have.
    let mut chmod = f.get("/orig");
    chmod.vector_clock.increment(THEM);
    (chmod.last_updated_by, chmod.last_updated_rev, chmod.unix_mode) = (THEM, 1, Some(0o6777));
    f.receive(vec![chmod]);
    for (p, dir) in [("bin", true), ("bin/suid", false), ("copy", false), ("orig", false)] {
        let mode = fs::symlink_metadata(f.root.path().join(p)).unwrap().mode() & 0o7777;
        assert_eq!(mode & 0o7000, 0, "{p}: {mode:o} has setuid, setgid or sticky");
        assert_eq!(mode & umask, 0, "{p}: {mode:o} has bits the umask {umask:o} removes");
        assert_eq!(mode, if dir { 0o777 & !umask | 0o700 } else { 0o777 & !umask | 0o400 }, "{p}");
        assert!(!f.get(&format!("/{p}")).pending, "{p}");
    }
    let rev = f.store.revision().unwrap();
    f.scan();
    assert_eq!(f.store.revision().unwrap(), rev, "the stripped modes were announced as local changes");
}

/// A local user swaps a directory inside the share for a symlink to a directory outside
/// after a peer's record was applied (its directory checked and made) and before its
/// download is installed: the install fails cleanly and nothing is written outside.
#[test]
fn a_download_is_never_installed_through_a_directory_swapped_for_a_symlink() {
    let mut f = Fixture::new();
    let outside = tempfile::tempdir().unwrap();
    f.scan();
    let out = f.receive(vec![theirs("/dir/new.txt", b"peer data", &[(THEM, 1)], 5)]);
    assert_eq!(out.fetch.len(), 1);
    assert!(f.root.path().join("dir").is_dir());
    fs::rename(f.root.path().join("dir"), f.root.path().join("moved")).unwrap();
    std::os::unix::fs::symlink(outside.path(), f.root.path().join("dir")).unwrap();
    let installed = f.deliver(&out.fetch[0], b"peer data");
    assert!(installed.is_empty());
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0, "written outside the share");
    assert!(f.get("/dir/new.txt").wants_content(), "still wanted: retried when the way is clear");
    assert_eq!(fsops::partial_len(f.root.path(), &out.fetch[0].sha256), 0, "the temp file is removed");
}

/// A conflict copy whose usual name would be longer than 255 bytes gets a shorter one: our
/// version is never overwritten for want of a name.
#[test]
fn a_conflict_on_a_name_near_255_bytes_keeps_ours_under_a_shorter_name() {
    let mut f = Fixture::new();
    let name = format!("{}.txt", "n".repeat(250));
    fs::write(f.root.path().join(&name), b"ours").unwrap();
    f.scan();
    let out = f.receive(vec![theirs(&format!("/{name}"), b"theirs", &[(THEM, 1)], 2_000_000_000)]);
    assert_eq!(out.conflicts, 1);
    for fetch in &out.fetch {
        f.deliver(fetch, b"theirs");
    }
    assert_eq!(f.file(&name).unwrap(), b"theirs");
    let names = f.names();
    assert_eq!(names.len(), 2, "{names:?}");
    let copy = names.iter().find(|n| **n != name).unwrap();
    assert!(copy.len() <= 255 && copy.contains(".CONFLICT.") && copy.ends_with(".txt"), "{copy}");
    assert_eq!(f.file(copy).unwrap(), b"ours", "our version was lost");
}

#[test]
fn with_versions_a_peers_edit_and_deletion_keep_what_they_replace() {
    let mut f = Fixture::new();
    f.versions = true;
    fs::write(f.root.path().join("doc.txt"), b"mine").unwrap();
    f.scan();
    // They edit it after seeing ours: fetched, installed, ours kept (as at 30 s: 19700101-000030).
    let mut edit = theirs("/doc.txt", b"their edit", &[(ME, 1), (THEM, 1)], 15);
    edit.uuid = f.get("/doc.txt").uuid;
    edit.vector_clock = f.get("/doc.txt").vector_clock;
    edit.vector_clock.increment(THEM);
    let out = f.receive(vec![edit]);
    f.deliver(&out.fetch[0], b"their edit");
    assert_eq!(f.file("doc.txt").unwrap(), b"their edit");
    let v = crate::versions::list(&Root::open(f.root.path()).unwrap()).unwrap();
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(
        (v[0].stored.as_str(), v[0].why, v[0].by.as_deref()),
        ("doc~19700101-000030.txt", crate::versions::Why::Replaced, Some("02020202020202020202020202020202"))
    );
    let kept = f.root.path().join(META_DIR).join(crate::versions::VERSIONS_DIR).join(&v[0].stored);
    assert_eq!(fs::read(kept).unwrap(), b"mine");
    // They delete it: moved into the versions, gone from the share.
    f.scan();
    let gone = f.their_tombstone("/doc.txt");
    f.receive(vec![gone]);
    assert_eq!(f.file("doc.txt"), None);
    let v = crate::versions::list(&Root::open(f.root.path()).unwrap()).unwrap();
    assert_eq!(
        v.iter().map(|v| v.why).collect::<Vec<_>>(),
        [crate::versions::Why::Deleted, crate::versions::Why::Replaced]
    );
    assert_eq!(
        fs::read(f.root.path().join(META_DIR).join(crate::versions::VERSIONS_DIR).join(&v[0].stored)).unwrap(),
        b"their edit"
    );
    // Nothing of it is indexed: the versions live inside the marker (a reserved name).
    let rev = f.store.revision().unwrap();
    f.scan();
    assert_eq!((f.store.revision().unwrap(), f.names()), (rev, Vec::<String>::new()));
}

/// A kill between the install's rename and the index write that records it leaves the new
/// version in place under a record that still describes the old one. Installing it again
/// (the download, fetched or verified once more) is no conflict: no copy is made, and the
/// file ends as it should.
#[test]
fn the_version_already_in_place_after_a_crash_is_no_conflict() {
    let mut f = Fixture::new();
    fs::write(f.root.path().join("a"), b"old bytes").unwrap();
    f.scan();
    let mut newer = f.get("/a");
    (newer.sha256, newer.size) = (Some(sha(b"new bytes")), Some(9));
    newer.vector_clock.increment(THEM);
    (newer.last_updated_by, newer.last_updated_rev) = (THEM, newer.vector_clock.get(&THEM));
    newer.update_time = Timestamp::new(15, 0).unwrap();
    (newer.local, newer.local_sha256, newer.pending) = (None, None, false);
    let out = f.receive(vec![newer]);
    assert_eq!(out.fetch.len(), 1);
    // The earlier worker's rename happened; its index write did not.
    fs::write(f.root.path().join("a"), b"new bytes").unwrap();
    assert_eq!(f.deliver(&out.fetch[0], b"new bytes").len(), 1);
    assert_eq!(f.names(), ["a"], "no conflict copy");
    assert_eq!(f.file("a").unwrap(), b"new bytes");
    assert!(f.get("/a").installed_file());

    // A local change of the same size with other bytes is still one.
    let mut newest = f.get("/a");
    (newest.sha256, newest.size) = (Some(sha(b"3rd bytes")), Some(9));
    newest.vector_clock.increment(THEM);
    newest.last_updated_rev = newest.vector_clock.get(&THEM);
    newest.update_time = Timestamp::new(16, 0).unwrap();
    (newest.local, newest.local_sha256) = (None, None);
    let out = f.receive(vec![newest]);
    fs::write(f.root.path().join("a"), b"usr bytes").unwrap();
    f.deliver(&out.fetch[0], b"3rd bytes");
    assert_eq!(f.file("a").unwrap(), b"3rd bytes");
    let names = f.names();
    assert_eq!(names.len(), 2, "{names:?}");
    let copy = names.iter().find(|n| n.contains("CONFLICT")).expect("a conflict copy");
    assert_eq!(f.file(copy).unwrap(), b"usr bytes");
}

/// A batch of small downloads whose writers left the fsync to the install: made durable
/// (one `syncfs` through the handle of the writer that started first) and installed beside
/// one its writer synced; one whose temp file is gone by then fails alone and stays wanted.
#[test]
fn a_batch_of_unsynced_downloads_is_made_durable_then_installed() {
    let mut f = Fixture::new();
    f.scan();
    let names = ["/a.txt", "/b.txt", "/c.txt", "/d.txt"];
    let out = f.receive(names.iter().map(|n| theirs(n, n.as_bytes(), &[(THEM, 1)], 5)).collect());
    assert_eq!(out.fetch.len(), 4);
    let mut batch = Vec::new();
    let slots = durable::Slots::new(4);
    for fetch in &out.fetch {
        let mut w = fsops::TempWriter::resume(f.root.path(), &fetch.sha256, fetch.size).unwrap();
        let started = std::time::Instant::now();
        w.append(fetch.path.as_str().as_bytes()).unwrap();
        let (temp, unsynced) = if fetch.path.as_str() == "/a.txt" {
            (w.finish(&fetch.sha256, fetch.size, fetch.unix_mode, fetch.mtime).unwrap(), None)
        } else {
            let (temp, file) = w.finish_unsynced(&fetch.sha256, fetch.size, fetch.unix_mode, fetch.mtime).unwrap();
            (temp, Some(durable::Unsynced { file, started, slot: slots.take().unwrap() }))
        };
        if fetch.path.as_str() == "/c.txt" {
            fs::remove_file(&temp).unwrap();
        }
        batch.push(Download { sha256: fetch.sha256, temp, unsynced });
    }
    let mut uuid = || RecordUuid([9; 16]);
    let mut a = Applier::new(f.root.path(), &f.store, ME, Timestamp::new(30, 0).unwrap(), &mut uuid);
    let mut installed = a.downloaded(batch).unwrap();
    installed.sort();
    assert_eq!(a.failures, 1, "the vanished one is retried later");
    let paths: Vec<&str> = installed.iter().map(SharePath::as_str).collect();
    assert_eq!(paths, ["/a.txt", "/b.txt", "/d.txt"]);
    for n in ["a.txt", "b.txt", "d.txt"] {
        assert_eq!(f.file(n).unwrap(), format!("/{n}").as_bytes());
    }
    assert!(f.get("/c.txt").wants_content() && f.file("c.txt").is_none());
    assert!(
        fs::read_dir(fsops::partial_dir(f.root.path()))
            .unwrap()
            .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
            .next()
            .is_none(),
        "no temp file left"
    );
}
