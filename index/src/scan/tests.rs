use std::os::unix::fs::PermissionsExt;

use super::*;

struct Fixture {
    _db: tempfile::TempDir,
    root: tempfile::TempDir,
    store: ShareStore,
    counter: u8,
    delete_limit: Option<u8>,
    confirmed: Option<std::collections::HashSet<SharePath>>,
    scope: Scope,
    read_only: bool,
}

impl Fixture {
    fn new() -> Self {
        let (db, root, store) = crate::test_share();
        Fixture {
            _db: db,
            root,
            store,
            counter: 0,
            delete_limit: None,
            confirmed: None,
            scope: Scope::Full,
            read_only: false,
        }
    }

    fn scan(&mut self) -> Result<ScanReport, ScanError> {
        self.scan_telling(None)
    }

    /// Scans, calling `committed` after each commit.
    fn scan_telling(&mut self, mut committed: Option<&mut dyn FnMut()>) -> Result<ScanReport, ScanError> {
        // (A closure of this frame: the context's borrows all end here.)
        let mut tell = || {
            if let Some(c) = committed.as_mut() {
                c();
            }
        };
        let mut counter = self.counter;
        let mut new_uuid = || {
            counter += 1;
            RecordUuid([counter; 16])
        };
        let mut ctx = ScanContext {
            me: PeerId([9; 16]),
            now: Timestamp::new(1, 0).unwrap(),
            new_uuid: &mut new_uuid,
            filter: None,
            read_only: self.read_only,
            delete_limit: self.delete_limit,
            confirmed_deletions: self.confirmed.as_ref(),
            device: "",
            committed: Some(&mut tell),
            hashers: 0,
        };
        let r = scan(self.root.path(), &self.store, &mut ctx, &self.scope);
        self.counter = counter;
        r
    }

    /// Scans, and answers the paths written, in revision order.
    fn scan_written(&mut self) -> (ScanReport, Vec<String>) {
        let before = self.store.revision().unwrap();
        let report = self.scan().unwrap();
        let after = self.store.revision().unwrap();
        let (records, more) = self.store.written_by(&PeerId([9; 16]), before + 1, after, usize::MAX).unwrap();
        assert!(more.is_none());
        assert_eq!(records.len(), report.changed);
        (report, records.into_iter().map(|r| r.path.to_string()).collect())
    }

    fn get(&self, p: &str) -> Record {
        self.store.get(&SharePath::parse(p).unwrap()).unwrap().unwrap()
    }
}

#[test]
fn first_scan_indexes_everything_and_rescans_are_incremental() {
    let mut f = Fixture::new();
    let r = f.root.path();
    fs::create_dir_all(r.join("a b/ü")).unwrap();
    fs::write(r.join("a b/ü/x.txt"), b"hello").unwrap();
    fs::write(r.join("empty"), b"").unwrap();
    fs::create_dir(r.join("emptydir")).unwrap();
    fs::write(r.join(".hidden.clearskies-part"), b"partial").unwrap();
    fs::write(r.join(META_DIR).join("state"), b"ours").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", r.join("link")).unwrap();

    let (rep, mut changed) = f.scan_written();
    changed.sort();
    assert_eq!(rep.hashed_files, 2);
    assert_eq!(changed, vec!["/", "/a b", "/a b/ü", "/a b/ü/x.txt", "/empty", "/emptydir"]);
    let x = f.get("/a b/ü/x.txt");
    assert_eq!(x.size, Some(5));
    assert_eq!(x.sha256.unwrap().to_string(), "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
    assert_eq!(x.vector_clock.get(&PeerId([9; 16])), 1);
    assert_eq!(f.get("/emptydir").kind, EntryKind::Directory);
    assert_eq!(f.store.revision().unwrap(), 6);

    // Nothing changed: nothing hashed, nothing written.
    let rep = f.scan().unwrap();
    assert_eq!((rep.hashed_files, rep.changed), (0, 0));
    assert_eq!(f.store.revision().unwrap(), 6);
}

#[test]
fn edits_modes_and_deletions_become_new_revisions() {
    let mut f = Fixture::new();
    let r = f.root.path().to_owned();
    fs::write(r.join("a"), b"one").unwrap();
    fs::write(r.join("b"), b"two").unwrap();
    f.scan().unwrap();
    let a1 = f.get("/a");

    fs::write(r.join("a"), b"three").unwrap();
    fs::set_permissions(r.join("b"), fs::Permissions::from_mode(0o600)).unwrap();
    let rep = f.scan().unwrap();
    assert_eq!(rep.hashed_files, 2);
    let a2 = f.get("/a");
    assert_eq!(a2.uuid, a1.uuid);
    assert_ne!(a2.sha256, a1.sha256);
    assert!(a1.vector_clock.before(&a2.vector_clock) && a1.vector_clock != a2.vector_clock);
    assert_eq!(f.get("/b").unix_mode, Some(0o600));

    fs::remove_file(r.join("a")).unwrap();
    assert_eq!(f.scan_written().1, vec!["/a"]);
    let a3 = f.get("/a");
    assert!(a3.deleted);
    assert_eq!(a3.last_updated_rev, f.store.revision().unwrap());
    // A tombstone stays a tombstone on the next scan.
    assert_eq!(f.scan().unwrap().changed, 0);

    // Re-created: same record, alive again, newer clock.
    fs::write(r.join("a"), b"back").unwrap();
    f.scan().unwrap();
    let a4 = f.get("/a");
    assert!(!a4.deleted);
    assert_eq!(a4.uuid, a1.uuid);
}

#[test]
fn a_mass_deletion_is_held_until_confirmed() {
    let mut f = Fixture::new();
    f.delete_limit = Some(50);
    let r = f.root.path().to_owned();
    for i in 0..30 {
        fs::write(r.join(format!("f{i:02}")), b"x").unwrap();
    }
    f.scan().unwrap();
    // 9 of 31 entries (the root counts): under the limit, recorded.
    for i in 0..9 {
        fs::remove_file(r.join(format!("f{i:02}"))).unwrap();
    }
    let report = f.scan().unwrap();
    assert_eq!((report.changed, report.held_deletions.len()), (9, 0));
    // 12 more of the 22 left: held, nothing recorded, every time, until confirmed.
    for i in 9..21 {
        fs::remove_file(r.join(format!("f{i:02}"))).unwrap();
    }
    for _ in 0..2 {
        let report = f.scan().unwrap();
        assert_eq!((report.changed, report.held_deletions.len()), (0, 12));
        assert_eq!(report.held_deletions[0].as_str(), "/f09");
        assert!(!f.get("/f10").deleted);
    }
    // Edits still go through while deletions are held.
    fs::write(r.join("f29"), b"edited").unwrap();
    assert_eq!(f.scan().unwrap().changed, 1);
    // The user confirmed those 12, but 2 more vanished since: all 14 are held again.
    let held: std::collections::HashSet<SharePath> = f.scan().unwrap().held_deletions.into_iter().collect();
    assert_eq!(held.len(), 12);
    f.confirmed = Some(held);
    fs::remove_file(r.join("f21")).unwrap();
    fs::remove_file(r.join("f22")).unwrap();
    let report = f.scan().unwrap();
    assert_eq!((report.changed, report.held_deletions.len(), report.used_confirmation), (0, 14, false));
    // Confirming what is held records exactly that, and uses the confirmation up.
    f.confirmed = Some(report.held_deletions.into_iter().collect());
    let report = f.scan().unwrap();
    assert_eq!((report.changed, report.held_deletions.len(), report.used_confirmation), (14, 0, true));
    assert!(f.get("/f10").deleted && f.get("/f22").deleted && !f.get("/f23").deleted);
}

#[test]
fn a_removed_tree_is_deleted_deepest_first() {
    // The flake in sync::initial_sync_both_ways_then_every_kind_of_change: a peer that got
    // `/photos`'s tombstone in an earlier batch than its contents' could not remove the
    // still-full directory, kept it and sent it back as new.
    let mut f = Fixture::new();
    let r = f.root.path().to_owned();
    fs::create_dir_all(r.join("photos/2024/trip")).unwrap();
    fs::write(r.join("photos/a.jpg"), b"a").unwrap();
    fs::write(r.join("photos/2024/b.jpg"), b"b").unwrap();
    fs::write(r.join("photos/2024/trip/c.jpg"), b"c").unwrap();
    f.scan().unwrap();
    fs::remove_dir_all(r.join("photos")).unwrap();
    let (_, order) = f.scan_written();
    assert_eq!(
        order,
        [
            "/photos/2024/trip/c.jpg",
            "/photos/2024/b.jpg",
            "/photos/2024/trip",
            "/photos/2024",
            "/photos/a.jpg",
            "/photos"
        ]
    );
    // Revisions follow the same order (what get_updates sends after a reconnect).
    let revs: Vec<u64> = order.iter().map(|p| f.get(p).last_updated_rev).collect();
    assert!(revs.windows(2).all(|w| w[0] < w[1]), "{revs:?}");
}

#[test]
fn a_new_stat_with_the_same_contents_is_remembered_silently() {
    let mut f = Fixture::new();
    let r = f.root.path().to_owned();
    fs::write(r.join("a"), b"one").unwrap();
    f.scan().unwrap();
    let rev = f.store.revision().unwrap();
    // Same mode again: only the ctime moves, so the file is re-hashed once...
    fs::set_permissions(r.join("a"), fs::Permissions::from_mode(f.get("/a").unix_mode.unwrap())).unwrap();
    let rep = f.scan().unwrap();
    assert_eq!((rep.hashed_files, rep.changed), (1, 0));
    assert_eq!(f.store.revision().unwrap(), rev);
    // ...and its new stat is remembered, so the next scan reads nothing.
    assert_eq!(f.scan().unwrap().hashed_files, 0);
}

#[test]
fn a_missing_root_or_marker_deletes_nothing() {
    let mut f = Fixture::new();
    let r = f.root.path().to_owned();
    fs::write(r.join("a"), b"one").unwrap();
    f.scan().unwrap();
    let rev = f.store.revision().unwrap();

    fs::remove_dir(r.join(META_DIR)).unwrap();
    assert!(matches!(f.scan(), Err(ScanError::RootMissing(_))));
    fs::remove_dir_all(&r).unwrap();
    assert!(matches!(f.scan(), Err(ScanError::RootMissing(_))));
    assert_eq!(f.store.revision().unwrap(), rev);
    assert!(!f.get("/a").deleted);
}

fn dirs(f: &Fixture, list: &[(&str, bool)]) -> Scope {
    Scope::Dirs(
        list.iter().map(|(d, r)| (f.root.path().join(d), if *r { Look::Tree } else { Look::Entries })).collect(),
    )
}

#[test]
fn an_incremental_scan_looks_only_where_it_is_told_and_walks_new_directories_whole() {
    let mut f = Fixture::new();
    let r = f.root.path().to_owned();
    for d in ["d1", "d2", "d3", "d4/sub"] {
        fs::create_dir_all(r.join(d)).unwrap();
        fs::write(r.join(d).join("keep"), d.as_bytes()).unwrap();
    }
    fs::write(r.join("d2/old"), b"old").unwrap();
    f.scan().unwrap();

    fs::write(r.join("d1/new"), b"new").unwrap();
    fs::remove_file(r.join("d2/old")).unwrap();
    fs::create_dir_all(r.join("d3/fresh/deep")).unwrap();
    fs::write(r.join("d3/fresh/deep/x"), b"x").unwrap();
    fs::write(r.join("d4/sub/unreported"), b"u").unwrap();
    // A directory replaced by a file: what was inside goes too.
    fs::remove_dir_all(r.join("d4/sub")).unwrap();
    fs::write(r.join("d4/sub"), b"now a file").unwrap();

    f.scope = dirs(&f, &[("d1", false), ("d2", false), ("d3", false), ("d4", false)]);
    let (rep, mut written) = f.scan_written();
    written.sort();
    assert_eq!(
        written,
        ["/d1/new", "/d2/old", "/d3/fresh", "/d3/fresh/deep", "/d3/fresh/deep/x", "/d4/sub", "/d4/sub/keep"]
    );
    assert!(f.get("/d2/old").deleted && f.get("/d4/sub/keep").deleted);
    assert_eq!(f.get("/d4/sub").kind, EntryKind::File);
    // Only the reported directories and the new ones were read: d1 (keep, new), d2
    // (keep), d3 (keep, fresh), d3/fresh (deep), d3/fresh/deep (x), d4 (sub).
    assert_eq!(rep.entries, 2 + 1 + 2 + 1 + 1 + 1);

    // A change nobody reported is not seen by an incremental scan; a full one finds it.
    fs::write(r.join("d1/quiet"), b"q").unwrap();
    f.scope = dirs(&f, &[("d2", false)]);
    assert_eq!(f.scan().unwrap().changed, 0);
    f.scope = Scope::Full;
    assert_eq!(f.scan_written().1, ["/d1/quiet"]);
}

fn named(f: &Fixture, dir: &str, names: &[&str]) -> Scope {
    let look = Look::Names(names.iter().map(|n| (*n).to_owned()).collect());
    Scope::Dirs([(f.root.path().join(dir), look)].into_iter().collect())
}

#[test]
fn a_scan_of_named_entries_looks_at_those_only_and_finds_what_a_listing_would() {
    let mut f = Fixture::new();
    let r = f.root.path().to_owned();
    fs::create_dir_all(r.join("photos/sub")).unwrap();
    for i in 0..50 {
        fs::write(r.join(format!("photos/f{i}")), format!("photo {i}")).unwrap();
    }
    fs::write(r.join("photos/sub/file"), b"inside").unwrap();
    f.scan().unwrap();

    fs::write(r.join("photos/new"), b"new").unwrap();
    fs::write(r.join("photos/f1"), b"edited").unwrap();
    fs::remove_file(r.join("photos/f2")).unwrap();
    fs::remove_file(r.join("photos/f3")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", r.join("photos/f3")).unwrap();
    fs::remove_dir_all(r.join("photos/sub")).unwrap();
    fs::create_dir_all(r.join("photos/newdir/deep")).unwrap();
    fs::write(r.join("photos/newdir/deep/x"), b"x").unwrap();
    fs::write(r.join("photos/f4"), b"edited, unreported").unwrap();
    let told = ["new", "f1", "f2", "f3", "sub", "newdir", "never there", "f5"];
    f.scope = named(&f, "photos", &told);
    let (rep, mut written) = f.scan_written();
    written.sort();
    assert_eq!(
        written,
        [
            "/photos/f1",
            "/photos/f2",
            "/photos/f3",
            "/photos/new",
            "/photos/newdir",
            "/photos/newdir/deep",
            "/photos/newdir/deep/x",
            "/photos/sub",
            "/photos/sub/file"
        ]
    );
    for gone in ["/photos/f2", "/photos/f3", "/photos/sub", "/photos/sub/file"] {
        assert!(f.get(gone).deleted, "{gone}");
    }
    assert!(!f.get("/photos/f5").deleted);
    if Root::open(&r).unwrap().root_dir().names_are_exact() {
        // new, f1, f5, newdir; newdir's deep; deep's x: not the 50 others.
        assert_eq!(rep.entries, 6);
    } else {
        // (A filesystem where names may not be exact: the directory was listed.)
        assert!(rep.entries > 50, "{}", rep.entries);
    }
    // The edit nobody named is found by a listing.
    f.scope = dirs(&f, &[("photos", false)]);
    assert_eq!(f.scan_written().1, ["/photos/f4"]);

    // Our own names are never looked at; nor is anything in a directory that went away,
    // whose parent is listed instead.
    fs::write(r.join("photos/.x.clearskies-part"), b"partial").unwrap();
    f.scope = named(&f, "", &[META_DIR]);
    f.scope.merge(named(&f, "photos", &[".x.clearskies-part"]));
    assert_eq!(f.scan().unwrap().changed, 0);
    fs::remove_dir_all(r.join("photos/newdir")).unwrap();
    f.scope = named(&f, "photos/newdir/deep", &["x"]);
    let (_, mut written) = f.scan_written();
    written.sort();
    assert_eq!(written, ["/photos/newdir", "/photos/newdir/deep", "/photos/newdir/deep/x"]);
}

#[test]
fn a_reported_directory_that_is_gone_is_deleted_through_its_parent() {
    let mut f = Fixture::new();
    let r = f.root.path().to_owned();
    fs::create_dir_all(r.join("a/b/c")).unwrap();
    fs::write(r.join("a/b/c/f"), b"f").unwrap();
    fs::write(r.join("a/g"), b"g").unwrap();
    f.scan().unwrap();
    fs::remove_dir_all(r.join("a/b")).unwrap();
    // Only the vanished directory itself was reported (its parent's event was missed).
    f.scope = dirs(&f, &[("a/b/c", false)]);
    let (_, written) = f.scan_written();
    assert_eq!(written, ["/a/b/c/f", "/a/b/c", "/a/b"]);
    assert!(!f.get("/a/g").deleted);
}

#[test]
fn scopes_merge_names_entries_and_trees_and_too_many_become_more() {
    let p = PathBuf::from;
    let names = |n: &[&str]| Look::Names(n.iter().map(|s| (*s).to_owned()).collect());
    let mut s = Scope::default();
    assert!(s.is_empty());
    s.add_name(p("/x/a"), "1".into());
    s.add_name(p("/x/a"), "2".into());
    s.add_name(p("/x/c"), "3".into());
    s.add(p("/x/c"), false);
    s.add_name(p("/x/c"), "4".into());
    s.merge(Scope::Dirs([(p("/x/b"), Look::Tree), (p("/x/a"), names(&["3"]))].into_iter().collect()));
    s.add(p("/x/b"), false);
    let expected = [(p("/x/a"), names(&["1", "2", "3"])), (p("/x/b"), Look::Tree), (p("/x/c"), Look::Entries)];
    assert_eq!(s, Scope::Dirs(expected.into_iter().collect()), "names add up; entries and trees cover them");
    for i in 0..MAX_NAMES_PER_DIR {
        s.add_name(p("/x/a"), format!("n{i}"));
    }
    assert!(matches!(&s, Scope::Dirs(d) if d[&p("/x/a")] == Look::Entries), "too many names: listed");
    for i in 0..MAX_DIRTY_DIRS {
        s.add(PathBuf::from(format!("/x/{i}")), false);
    }
    assert_eq!(s, Scope::Full);
    s.add(p("/y"), false);
    s.add_name(p("/y"), "z".into());
    assert_eq!(s, Scope::Full);
}

/// A read-only share's local changes, found by a scan of what inotify named plus the
/// changes the last scan found (as `schedule::read_only_scope` builds it), are the ones a
/// full scan finds: new ones seen, undone ones gone, nothing recorded.
#[test]
fn a_read_only_scan_of_named_entries_and_known_changes_finds_what_a_full_scan_would() {
    let mut f = Fixture::new();
    let r = f.root.path().to_owned();
    fs::create_dir_all(r.join("a/b")).unwrap();
    for p in ["a/1", "a/2", "a/b/3", "top"] {
        fs::write(r.join(p), p.as_bytes()).unwrap();
    }
    f.scan().unwrap();
    f.read_only = true;
    let rev = f.store.revision().unwrap();
    // Undone means the same bytes and the same time (another time is a change too).
    let mtime = |p: &str| fs::metadata(r.join(p)).unwrap().modified().unwrap();
    let put_back = |p: &str, t: std::time::SystemTime| {
        fs::write(r.join(p), p.as_bytes()).unwrap();
        fs::File::options().write(true).open(r.join(p)).unwrap().set_modified(t).unwrap();
    };
    let (t1, t3, t_top) = (mtime("a/1"), mtime("a/b/3"), mtime("top"));

    let changes = |f: &mut Fixture| {
        let mut c: Vec<String> = f.scan().unwrap().local_changes.iter().map(|p| p.to_string()).collect();
        c.sort();
        c.dedup();
        c
    };
    let recheck = |f: &mut Fixture, known: &[String], mut scope: Scope| {
        for p in known {
            scope.add_path(f.root.path(), &SharePath::parse(p).unwrap());
        }
        f.scope = scope;
        let c = changes(f);
        f.scope = Scope::Full;
        assert_eq!(c, changes(f), "the same as a full scan");
        c
    };

    fs::write(r.join("a/1"), b"edited").unwrap();
    fs::remove_dir_all(r.join("a/b")).unwrap();
    fs::create_dir_all(r.join("new/deep")).unwrap();
    fs::write(r.join("new/deep/x"), b"x").unwrap();
    let known = changes(&mut f);
    assert_eq!(known, ["/a/1", "/a/b", "/a/b/3", "/new", "/new/deep", "/new/deep/x"]);

    // One more change, named; the edit undone and a new file removed, unnamed.
    put_back("a/1", t1);
    fs::remove_file(r.join("new/deep/x")).unwrap();
    fs::write(r.join("top"), b"edited too").unwrap();
    let told = named(&f, "", &["top"]);
    let known = recheck(&mut f, &known, told);
    assert_eq!(known, ["/a/b", "/a/b/3", "/new", "/new/deep", "/top"]);

    // The directory put back, the new one removed: only a named event in `a`.
    fs::create_dir_all(r.join("a/b")).unwrap();
    put_back("a/b/3", t3);
    fs::remove_dir_all(r.join("new")).unwrap();
    let told = named(&f, "a", &["b"]);
    let known = recheck(&mut f, &known, told);
    assert_eq!(known, ["/top"]);
    put_back("top", t_top);
    assert!(recheck(&mut f, &known, Scope::default()).is_empty());
    assert_eq!(f.store.revision().unwrap(), rev, "nothing recorded");
}

fn mkfifo(p: &Path) {
    rustix::fs::mknodat(rustix::fs::CWD, p, rustix::fs::FileType::Fifo, rustix::fs::Mode::from_raw_mode(0o666), 0)
        .unwrap();
}

/// Runs `f` on another thread; panics if it takes more than 10 s (a hang).
fn within_10s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(10)).expect("hung (blocked on a FIFO?)")
}

/// A FIFO or a symlink where a file was listed (swapped in between listing and hashing)
/// neither hangs the worker nor redirects it.
#[test]
fn hashing_never_blocks_on_a_fifo_nor_follows_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let (fifo, link, file) = (dir.path().join("fifo"), dir.path().join("link"), dir.path().join("file"));
    mkfifo(&fifo);
    fs::write(&file, b"x").unwrap();
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let res = within_10s(move || (hash_file(&fifo).is_err(), hash_file(&link).is_err(), hash_file(&file).is_ok()));
    assert_eq!(res, (true, true, true));
}

#[test]
fn a_file_swapped_for_a_fifo_or_symlink_after_listing_is_skipped_not_hashed() {
    let outcome = within_10s(|| {
        let mut f = Fixture::new();
        let r = f.root.path().to_owned();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"secret").unwrap();
        for n in ["a", "b"] {
            fs::write(r.join(n), b"listed").unwrap();
        }
        mkfifo(&r.join("fifo-from-the-start"));
        f.scan().unwrap();
        // As the scanner lists them, then the swap, then the scanner looks at them.
        let dirs = Root::open(&r).unwrap();
        let listed: Vec<_> = ["a", "b"].map(|n| (n, dirs.root_dir().stat(n).unwrap().unwrap())).into();
        fs::write(r.join("a"), b"changed").unwrap(); // so the stored hash is not reused
        fs::remove_file(r.join("a")).unwrap();
        mkfifo(&r.join("a"));
        fs::remove_file(r.join("b")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), r.join("b")).unwrap();
        let mut uuid = || RecordUuid([77; 16]);
        let mut ctx = ScanContext {
            me: PeerId([9; 16]),
            now: Timestamp::new(2, 0).unwrap(),
            new_uuid: &mut uuid,
            filter: None,
            read_only: false,
            delete_limit: None,
            confirmed_deletions: None,
            device: "",
            committed: None,
            hashers: 0,
        };
        let mut s = Scanner {
            root: &r,
            dirs: dirs.clone(),
            store: &f.store,
            ctx: &mut ctx,
            report: ScanReport::default(),
            rev: f.store.revision().unwrap(),
            changed: Vec::new(),
            restat: Vec::new(),
            gone: Vec::new(),
            listed: HashSet::new(),
            hashers: 1,
            flushed_at: std::time::Instant::now(),
            hashed_unflushed: 0,
        };
        for (n, mut meta) in listed {
            meta.stat.mtime_ns += 1; // as if edited: not the indexed version
            let path = SharePath::parse(&format!("/{n}")).unwrap();
            let old = f.store.get(&path).unwrap();
            let found = Found { path, fs_path: r.join(n), at: Some((dirs.root_dir().clone(), n.to_owned())), meta };
            s.entry(found, old, None, &mut HashSet::new()).unwrap();
        }
        let (hashed, changed) = (s.report.hashed_files, s.changed.len());
        s.flush().unwrap();
        // The whole scan does not hang on the FIFOs either, and never indexes them.
        f.scan().unwrap();
        (hashed, changed, f.store.get(&SharePath::parse("/fifo-from-the-start").unwrap()).unwrap().is_none())
    });
    assert_eq!(outcome, (0, 0, true), "(hashed, changed, FIFO not indexed)");
}

/// A directory the watcher reported, replaced by a symlink to a directory outside the
/// share before the scan lists it: nothing outside is indexed (and so never sent).
#[test]
fn a_directory_swapped_for_a_symlink_is_never_listed_through_it() {
    let mut f = Fixture::new();
    let r = f.root.path().to_owned();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), b"secret").unwrap();
    fs::create_dir(r.join("d")).unwrap();
    fs::write(r.join("d/x"), b"x").unwrap();
    f.scan().unwrap();
    fs::rename(r.join("d"), r.join("moved")).unwrap();
    std::os::unix::fs::symlink(outside.path(), r.join("d")).unwrap();
    f.scope = dirs(&f, &[("d", false)]);
    f.scan().unwrap();
    assert!(f.store.get(&SharePath::parse("/d/secret").unwrap()).unwrap().is_none(), "indexed outside the share");
}

/// On a case-insensitive filesystem our names turn up in any case: never indexed.
#[test]
fn reserved_names_are_skipped_in_any_case() {
    let mut f = Fixture::new();
    let r = f.root.path().to_owned();
    fs::create_dir(r.join(".CLEARSKIES")).unwrap();
    fs::write(r.join(".CLEARSKIES/db"), b"ours").unwrap();
    fs::write(r.join("a.Clearskies-Part"), b"partial").unwrap();
    fs::create_dir(r.join("sub")).unwrap();
    fs::write(r.join("sub/.x.CLEARSKIES-PART"), b"partial").unwrap();
    fs::write(r.join("sub/.ClearSkies"), b"an ordinary file below the root").unwrap();
    f.scan().unwrap();
    let mut all = Vec::new();
    f.store
        .each_below(&SharePath::root(), |rec| {
            all.push(rec.path.to_string());
            Ok(())
        })
        .unwrap();
    all.sort();
    assert_eq!(all, ["/sub", "/sub/.ClearSkies"]);
    // Nor can a peer's record name them.
    for p in ["/.CLEARSKIES", "/.CLEARSKIES/db", "/a.Clearskies-Part", "/sub/.x.CLEARSKIES-PART"] {
        assert!(SharePath::parse(p).is_err(), "{p}");
    }
}

#[test]
fn the_daemons_data_directory_is_never_indexed() {
    let mut f = Fixture::new();
    let r = f.root.path().to_owned();
    fs::create_dir_all(r.join("home/.local/share/clearskies/keys")).unwrap();
    fs::write(r.join("home/.local/share/clearskies/keys/secret.json"), b"the share key").unwrap();
    fs::write(r.join("home/notes.txt"), b"mine").unwrap();
    crate::data_dir::set_data_dir(&r.join("home/.local/share/clearskies"));
    f.scan().unwrap();
    let mut all = Vec::new();
    f.store
        .each_below(&SharePath::root(), |rec| {
            all.push(rec.path.to_string());
            Ok(())
        })
        .unwrap();
    all.sort();
    assert_eq!(all, ["/home", "/home/.local", "/home/.local/share", "/home/notes.txt"]);
}

#[test]
fn committed_is_told_after_records_are_in_the_index() {
    let mut f = Fixture::new();
    for d in ["a", "b"] {
        std::fs::create_dir(f.root.path().join(d)).unwrap();
        for i in 0..5 {
            std::fs::write(f.root.path().join(d).join(format!("{i}")), vec![i; 1000]).unwrap();
        }
    }
    let before = f.store.revision().unwrap();
    let store = f.store.clone();
    let seen = std::cell::RefCell::new(Vec::new());
    let mut committed = || seen.borrow_mut().push(store.revision().unwrap());
    let report = f.scan_telling(Some(&mut committed)).unwrap();
    let after = f.store.revision().unwrap();
    let seen = seen.take();
    assert_eq!(report.hashed_files, 10);
    assert!(!seen.is_empty(), "told at least once");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "told only when something new was committed: {seen:?}");
    assert!(seen.iter().all(|r| *r > before));
    assert_eq!(seen.last(), Some(&after), "the last commit is told too");
    // Nothing changed: nothing committed, nobody told.
    let mut told = 0;
    f.scan_telling(Some(&mut || told += 1)).unwrap();
    assert_eq!(told, 0);
}
