//! Two and three real daemons keeping a folder in sync.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::util::{kill, wait_for, Daemon, Mount};

/// Longer than `util::DEADLINE`: these move real data in a debug build on 2 cores.
const SYNC_DEADLINE: Duration = Duration::from_secs(180);

/// What a tree holds, for comparing two replicas: per path, a kind with its contents' hash
/// (files), its mode, and its mtime to the nanosecond (files).
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
            if rel == ".clearskies" {
                continue;
            }
            let Ok(m) = fs::symlink_metadata(&path) else { continue };
            if m.is_dir() {
                out.insert(rel, format!("dir {:o}", m.mode() & 0o777));
                stack.push(path);
            } else if let Some(h) = hash(&path) {
                let t = (m.mtime(), m.mtime_nsec());
                out.insert(rel, format!("file {h} {:o} {t:?}", m.mode() & 0o777));
            }
        }
    }
    out
}

pub(crate) fn hash(p: &Path) -> Option<String> {
    let mut f = fs::File::open(p).ok()?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            return Some(hex(&h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Waits until every replica holds the same tree (and it is not empty of what `must` names).
pub(crate) fn converge(roots: &[&Path], must: &[&str]) -> BTreeMap<String, String> {
    let start = Instant::now();
    loop {
        let first = tree(roots[0]);
        let same = roots[1..].iter().all(|r| tree(r) == first);
        if same && must.iter().all(|m| first.contains_key(*m)) {
            return first;
        }
        if start.elapsed() > SYNC_DEADLINE {
            let trees: Vec<_> = roots.iter().map(|r| tree(r)).collect();
            panic!("replicas did not converge: {trees:#?}");
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// A temp dir for tests that move hundreds of MiB: on tmpfs when there is one, so their
/// writeback does not stall the fsyncs of tests running beside them.
fn big_tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    // Room for a source, a copy and temp files of the 1 GiB test.
    let free_kib = std::process::Command::new("df")
        .args(["-k", "--output=avail"])
        .arg(shm)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.lines().nth(1)?.trim().parse::<u64>().ok());
    match free_kib {
        Some(kib) if kib > 4 << 20 => tempfile::tempdir_in(shm).unwrap_or_else(|_| tempfile::tempdir().unwrap()),
        _ => tempfile::tempdir().unwrap(),
    }
}

/// `a` shares a fresh directory (after `prepare` fills it); `b` attaches to a directory that
/// `prepare_b` may fill first. Returns both roots.
pub(crate) fn pair(
    a: &Daemon,
    b: &Daemon,
    base: &Path,
    prepare: impl FnOnce(&Path),
    prepare_b: impl FnOnce(&Path),
) -> (PathBuf, PathBuf) {
    let (ra, rb) = (base.join("a"), base.join("b"));
    fs::create_dir_all(&ra).unwrap();
    fs::create_dir_all(&rb).unwrap();
    prepare(&ra);
    prepare_b(&rb);
    let code = a.share_code(&ra, &["--multi-use"]);
    b.cs.ok(&["attach", &code, rb.to_str().unwrap(), "--peer", &a.listen(), "--merge"]);
    (fs::canonicalize(ra).unwrap(), fs::canonicalize(rb).unwrap())
}

/// Two daemons, `a` sharing a directory holding one file (`name`, `data`), `b` attached,
/// both in sync. `_base` holds the temp dirs.
pub(crate) struct SyncedPair {
    pub(crate) a: Daemon,
    pub(crate) b: Daemon,
    pub(crate) ra: PathBuf,
    pub(crate) rb: PathBuf,
    _base: tempfile::TempDir,
}

pub(crate) fn synced_pair(name: &str, data: &[u8]) -> SyncedPair {
    let (a, b) = (Daemon::start(), Daemon::start());
    let base = tempfile::tempdir().unwrap();
    let (ra, rb) = pair(&a, &b, base.path(), |r| write(&r.join(name), data), |_| {});
    converge(&[&ra, &rb], &[name]);
    SyncedPair { a, b, ra, rb, _base: base }
}

fn write(p: &Path, data: &[u8]) {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(p, data).unwrap();
}

#[test]
fn initial_sync_both_ways_then_every_kind_of_change() {
    let (a, b) = (Daemon::start(), Daemon::start());
    let base = tempfile::tempdir().unwrap();
    let (ra, rb) = pair(
        &a,
        &b,
        base.path(),
        |r| {
            write(&r.join("photos/2024/ünïcode name with spaces.txt"), b"hello");
            write(&r.join("empty file"), b"");
            fs::create_dir_all(r.join("empty dir/nested")).unwrap();
            write(&r.join("private"), b"secret");
            fs::set_permissions(r.join("private"), fs::Permissions::from_mode(0o600)).unwrap();
            let f = fs::File::options().write(true).open(r.join("empty file")).unwrap();
            let t = std::time::UNIX_EPOCH + Duration::new(1_400_000_000, 123_456_789);
            f.set_modified(t).unwrap();
        },
        |r| write(&r.join("from b/only here.txt"), b"b was first"),
    );
    let t = converge(
        &[&ra, &rb],
        &["photos/2024/ünïcode name with spaces.txt", "from b/only here.txt", "empty dir/nested"],
    );
    assert!(t["empty file"].contains("(1400000000, 123456789)"), "{t:#?}");
    assert!(t["private"].contains(" 600 "), "{t:#?}");
    // `wait` agrees, and `list` says so.
    assert!(b.cs.ok(&["wait", rb.to_str().unwrap(), "--timeout", "120"]).contains("in sync"));

    // On b: modify, delete, rename, move across directories, new directory.
    write(&rb.join("photos/2024/ünïcode name with spaces.txt"), b"hello, edited on b");
    fs::remove_file(rb.join("private")).unwrap();
    fs::rename(rb.join("empty file"), rb.join("renamed file")).unwrap();
    fs::rename(rb.join("from b/only here.txt"), rb.join("photos/moved.txt")).unwrap();
    fs::create_dir(rb.join("new dir")).unwrap();
    let t = converge(&[&ra, &rb], &["renamed file", "photos/moved.txt", "new dir"]);
    assert!(!t.contains_key("private") && !t.contains_key("empty file") && !t.contains_key("from b/only here.txt"));
    assert_eq!(fs::read(ra.join("photos/2024/ünïcode name with spaces.txt")).unwrap(), b"hello, edited on b");

    // And back from a, including removing a whole directory tree.
    fs::remove_dir_all(ra.join("photos")).unwrap();
    write(&ra.join("new dir/from a"), b"a again");
    let t = converge(&[&ra, &rb], &["new dir/from a"]);
    assert!(!t.keys().any(|k| k.starts_with("photos")), "{t:#?}\n--- a:\n{}\n--- b:\n{}", a.cs.log(), b.cs.log());
}

#[test]
fn three_daemons_relay_and_catch_up_after_being_offline() {
    let (a, b, c) = (Daemon::start(), Daemon::start(), Daemon::start());
    let base = tempfile::tempdir().unwrap();
    let (ra, rb) = pair(&a, &b, base.path(), |r| write(&r.join("start"), b"0"), |_| {});
    let rc = base.path().join("c");
    let code = a.share_code(&ra, &[]);
    c.cs.ok(&["attach", &code, rc.to_str().unwrap(), "--peer", &a.listen()]);
    let rc = fs::canonicalize(rc).unwrap();
    converge(&[&ra, &rb, &rc], &["start"]);

    // b and c only talk to a: what b writes reaches c through a.
    write(&rb.join("from b"), b"relayed");
    converge(&[&ra, &rb, &rc], &["from b"]);

    // c goes offline; meanwhile b writes and deletes; c catches up when it is back.
    c.cs.ok(&["stop"]);
    write(&rb.join("while c was away"), b"news");
    fs::remove_file(rb.join("start")).unwrap();
    converge(&[&ra, &rb], &["while c was away"]);
    // And c edits offline too.
    write(&rc.join("offline on c"), b"c's news");
    c.cs.ok(&["start"]);
    let t = converge(&[&ra, &rb, &rc], &["while c was away", "offline on c"]);
    assert!(!t.contains_key("start"));
}

#[test]
fn concurrent_edits_leave_exactly_one_conflict_copy_on_every_side() {
    let SyncedPair { a, b, ra, rb, _base } = synced_pair("notes.txt", b"original");

    // b is down while both edit the same file.
    b.cs.ok(&["stop"]);
    let revision = |d: &Daemon| d.cs.json(&["list", "--json"])["shares"][0]["revision"].as_u64();
    let before = revision(&a);
    write(&ra.join("notes.txt"), b"edited on a");
    // (Any interleaving of scans and arrivals must end with one copy; this makes the common
    // one, two indexed edits meeting, the one tested.)
    wait_for("a to index its edit", || (revision(&a) > before).then_some(()));
    write(&rb.join("notes.txt"), b"edited on b");
    b.cs.ok(&["start"]);

    let t = converge(&[&ra, &rb], &["notes.txt"]);
    let copies: Vec<&String> = t.keys().filter(|k| k.starts_with("notes.CONFLICT.") && k.ends_with(".txt")).collect();
    assert_eq!(copies.len(), 1, "{t:#?}");
    // notes.CONFLICT.<YYYYMMDD-HHMMSS>.<the losing daemon's host name>.<4 random>.txt
    let parts: Vec<&str> = copies[0].split('.').collect();
    assert_eq!(parts.len(), 6, "{copies:?}");
    assert!(parts[2].len() == 15 && parts[2].as_bytes()[8] == b'-' && parts[2].starts_with("20"), "{copies:?}");
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host: String =
        host.trim().chars().map(|c| if c.is_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
    assert!(host.starts_with(parts[3]) && parts[4].len() == 4, "{copies:?} on {host}");
    let mut versions = vec![fs::read(ra.join("notes.txt")).unwrap(), fs::read(ra.join(copies[0])).unwrap()];
    versions.sort();
    assert_eq!(versions, vec![b"edited on a".to_vec(), b"edited on b".to_vec()]);
}

#[test]
fn a_removed_share_root_deletes_nothing_on_the_peer_and_catches_up_when_restored() {
    let SyncedPair { a, b, ra, rb, _base } = synced_pair("keep/me.txt", b"precious");
    let files = |d: &Daemon| d.cs.json(&["list", "--json"])["shares"][0]["files"].as_u64();
    // A backup of the folder (marker included), restored later.
    let backup = ra.with_file_name("a-backup");
    let cp = std::process::Command::new("cp").arg("-a").arg(&ra).arg(&backup).status().unwrap();
    assert!(cp.success());

    fs::remove_dir_all(&ra).unwrap();
    wait_for("a's share to be in error", || {
        let s = a.cs.json(&["list", "--json"]);
        (s["shares"][0]["status"] == "error").then_some(())
    });
    // b changes something: a answers nothing wrong, b's own files stay.
    write(&rb.join("later.txt"), b"after a lost its disk");
    wait_for("b to index its change", || (files(&b) == Some(2)).then_some(()));
    // a takes b's new record (to apply once its disk is back) and records no deletion.
    wait_for("a to hold b's record", || (files(&a) == Some(2)).then_some(()));
    let s = a.cs.json(&["list", "--json"]);
    assert_eq!(s["shares"][0]["pending_files"].as_u64(), Some(1), "{s}");
    assert_eq!(fs::read(rb.join("keep/me.txt")).unwrap(), b"precious");
    assert_eq!(files(&b), Some(2));
    assert!(!ra.exists(), "a did not recreate its missing root");

    // The folder is restored (a new directory at the same path): a finds it by itself,
    // fetches what it missed and watches the new tree.
    fs::rename(&backup, &ra).unwrap();
    wait_for("b's file on a", || (fs::read(ra.join("later.txt")).ok()? == b"after a lost its disk").then_some(()));
    write(&ra.join("restored.txt"), b"written after the restore");
    wait_for("a's new file on b", || {
        (fs::read(rb.join("restored.txt")).ok()? == b"written after the restore").then_some(())
    });
    wait_for("a in sync", || (a.first_share()["synced"] == true).then_some(()));
    assert_eq!(fs::read(ra.join("keep/me.txt")).unwrap(), b"precious");
    assert_eq!(fs::read(rb.join("keep/me.txt")).unwrap(), b"precious");
}

#[test]
fn an_unmounted_share_root_deletes_nothing_and_catches_up_when_mounted_again() {
    // The share root is a mount point: unmounted, an empty directory is left at its path.
    let base = tempfile::tempdir().unwrap();
    let (disk, ra, rb) = (base.path().join("disk"), base.path().join("a"), base.path().join("b"));
    let names: Vec<String> = (0..5).map(|i| format!("photos/p{i}.jpg")).collect();
    for n in &names {
        write(&disk.join(n), n.as_bytes());
    }
    fs::create_dir_all(&ra).unwrap();
    fs::create_dir_all(&rb).unwrap();
    let Some(mount) = Mount::bind(&disk, &ra) else {
        assert!(std::env::var("CI").is_err(), "cannot bind-mount under CI");
        eprintln!("skipped: a bind mount needs root");
        return;
    };
    let (a, b) = (Daemon::start(), Daemon::start());
    let code = a.share_code(&ra, &[]);
    b.cs.ok(&["attach", &code, rb.to_str().unwrap(), "--peer", &a.listen()]);
    let must: Vec<&str> = names.iter().map(String::as_str).collect();
    converge(&[&ra, &rb], &must);

    mount.unmount();
    let s = wait_for("a's share to be in error", || {
        let s = a.first_share();
        (s["status"] == "error").then_some(s)
    });
    assert!(s["error"].as_str().unwrap().contains("not mounted"), "{s}");
    write(&rb.join("later.txt"), b"while a's disk was away");
    wait_for("a to hold b's record", || (a.first_share()["pending_files"].as_u64()? == 1).then_some(()));
    assert!(names.iter().all(|n| rb.join(n).exists()), "b lost files while a's disk was unmounted");
    assert_eq!(fs::read_dir(&ra).unwrap().count(), 0, "a wrote into the bare mount point");

    let _mount = Mount::bind(&disk, &ra).expect("mount again");
    wait_for("b's file on a's disk", || {
        (fs::read(disk.join("later.txt")).ok()? == b"while a's disk was away").then_some(())
    });
    wait_for("a in sync", || (a.first_share()["synced"] == true).then_some(()));
    assert!(names.iter().all(|n| rb.join(n).exists() && disk.join(n).exists()));
    drop((a, b));
}

/// `a` and `b` share an album of 30 photos (32 entries with the album and the root),
/// converged: the roots and the photos' names.
fn album(a: &Daemon, b: &Daemon, base: &Path) -> (PathBuf, PathBuf, Vec<String>) {
    let names: Vec<String> = (0..30).map(|i| format!("album/photo{i:02}.jpg")).collect();
    let (ra, rb) = pair(a, b, base, |r| names.iter().for_each(|n| write(&r.join(n), n.as_bytes())), |_| {});
    let must: Vec<&str> = names.iter().map(String::as_str).collect();
    converge(&[&ra, &rb], &must);
    (ra, rb, names)
}

#[test]
fn a_mass_deletion_waits_for_confirm_deletes() {
    let (a, b) = (Daemon::start(), Daemon::start());
    let base = tempfile::tempdir().unwrap();
    let (ra, rb, names) = album(&a, &b, base.path());

    // 20 of 32 entries vanish at once on A (say a sync tool went wrong): held.
    for n in &names[..20] {
        fs::remove_file(ra.join(n)).unwrap();
    }
    let held = wait_for("A to hold the deletions", || {
        let s = a.first_share();
        (s["held_deletions"].as_u64()? > 0).then_some(s)
    });
    assert_eq!((held["held_deletions"].as_u64(), held["status"].as_str()), (Some(20), Some("error")), "{held}");
    assert!(held["error"].as_str().unwrap().contains("confirm-deletes"), "{held}");
    assert!(a.cs.ok(&["list"]).contains("confirm-deletes"));
    // Other changes still flow; B keeps every file.
    write(&ra.join("album/new.jpg"), b"new");
    wait_for("the new file on B", || (fs::read(rb.join("album/new.jpg")).ok()? == b"new").then_some(()));
    assert!(names.iter().all(|n| rb.join(n).exists()), "B lost files before the confirmation");

    // --dry-run lists them and changes nothing.
    let dry = a.cs.ok(&["confirm-deletes", "--dry-run", ra.to_str().unwrap()]);
    assert!(dry.contains("20 deletions are held") && dry.contains("nothing changed"), "{dry}");
    assert!(names[..20].iter().all(|n| dry.contains(&format!("\n  /{n}"))), "{dry}");
    let listed = a.cs.json(&["confirm-deletes", "--dry-run", "--json", ra.to_str().unwrap()]);
    let mut paths: Vec<String> =
        listed["paths"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()[1..].to_owned()).collect();
    paths.sort();
    let mut expected = names[..20].to_vec();
    expected.sort();
    assert_eq!((listed["held"].as_u64(), paths), (Some(20), expected));
    assert_eq!(a.first_share()["held_deletions"].as_u64(), Some(20));
    assert!(names.iter().all(|n| rb.join(n).exists()), "a dry run deleted something");

    let out = a.cs.ok(&["confirm-deletes", ra.to_str().unwrap()]);
    assert!(out.contains("20 held deletions"), "{out}");
    wait_for("the deletions on B", || names[..20].iter().all(|n| !rb.join(n).exists()).then_some(()));
    assert!(names[20..].iter().all(|n| rb.join(n).exists()));
    wait_for("A back in sync", || (a.first_share()["synced"] == true).then_some(()));
    let o = a.cs.run(&["confirm-deletes", "/no/such/share"]);
    assert!(crate::util::stderr(&o).contains("does not exist") || crate::util::stderr(&o).contains("not_shared"));
}

#[test]
fn mass_delete_percent_set_at_runtime_reaches_the_running_share() {
    // `config set` of a runtime setting reaches the share's scans without a restart: at 100
    // nothing is held, so a mass deletion goes through at once.
    let (a, b) = (Daemon::start(), Daemon::start());
    let base = tempfile::tempdir().unwrap();
    let (ra, rb, names) = album(&a, &b, base.path());
    a.cs.ok(&["config", "set", "mass_delete_percent", "100"]);
    for n in &names[..20] {
        fs::remove_file(ra.join(n)).unwrap();
    }
    wait_for("the deletions on B, unheld", || names[..20].iter().all(|n| !rb.join(n).exists()).then_some(()));
    assert_eq!(a.first_share()["held_deletions"].as_u64(), Some(0), "{}", a.first_share());
    assert!(names[20..].iter().all(|n| rb.join(n).exists()));
}

#[test]
fn downloads_wait_for_free_space_and_resume_when_there_is_some() {
    let base = tempfile::tempdir().unwrap();
    let Some(disk) = Mount::tmpfs(&base.path().join("small"), 30) else {
        // Mounting needs root (CI runs as root: there the test must run).
        assert!(std::env::var("CI").is_err(), "cannot mount a tmpfs under CI");
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let a = Daemon::start();
    let b = Daemon::start_with(&[("CLEARSKIES_MIN_FREE_SPACE", "10M")]);
    let (ra, rb) = (base.path().join("a"), disk.0.join("b"));
    fs::create_dir_all(&ra).unwrap();
    let data: Vec<Vec<u8>> = (0..4).map(|i| crate::util::noise(8_000_000, i)).collect();
    for (i, d) in data.iter().enumerate() {
        fs::write(ra.join(format!("video{i}.bin")), d).unwrap();
    }
    let code = a.share_code(&ra, &[]);
    b.cs.ok(&["attach", &code, rb.to_str().unwrap(), "--peer", &a.listen()]);

    // 30 MB with 10 MB to keep free: two 8 MB files fit, the other two wait.
    let waiting = wait_for("B to wait for space", || {
        let s = b.first_share();
        (s["status"] == "error" && s["pending_files"].as_u64()? == 2).then_some(s)
    });
    assert!(waiting["error"].as_str().unwrap().contains("min_free_space"), "{waiting}");
    // It names the rule and what the disk has, so the user can act on it.
    let why = waiting["error"].as_str().unwrap();
    assert!(why.contains("min_free_space (10.0 MB)") && why.contains("MB free"), "{why}");
    let present: Vec<usize> = (0..4).filter(|i| rb.join(format!("video{i}.bin")).exists()).collect();
    assert_eq!(present.len(), 2, "{present:?}");
    for i in &present {
        assert!(fs::read(rb.join(format!("video{i}.bin"))).unwrap() == data[*i], "video{i}.bin is not whole");
    }
    let (free, _) = clearskies_index::fsops::free_space(&rb).unwrap();
    assert!(free >= 10_000_000, "only {free} bytes left free");

    // More space: the rest arrives (the transfers look again every few seconds).
    disk.resize(80);
    wait_for("the rest", || {
        (0..4).all(|i| fs::read(rb.join(format!("video{i}.bin"))).ok().as_ref() == Some(&data[i])).then_some(())
    });
    wait_for("B in sync", || (b.first_share()["synced"] == true).then_some(()));
    drop((a, b));
}

#[test]
fn a_peer_catching_up_on_many_records_gets_every_chunk_and_the_changes_made_meanwhile() {
    // More records than one chunk of a `get_updates` answer (4096), so the answer is paced
    // over several; files written while it is under way are announced after it.
    let (a, b) = (Daemon::start(), Daemon::start());
    let base = tempfile::tempdir().unwrap();
    let (ra, rb) = pair(
        &a,
        &b,
        base.path(),
        |r| {
            for i in 0..9_000 {
                write(&r.join(format!("d{}/f{i}", i % 9)), b"");
            }
        },
        |_| {},
    );
    for i in 0..20 {
        write(&ra.join(format!("late/l{i}")), format!("late {i}").as_bytes());
    }
    let tree = converge(&[&ra, &rb], &["late/l19", "d8/f8999"]);
    assert_eq!(tree.len(), 9 + 9_000 + 1 + 20);
}

#[test]
fn many_small_files_and_a_large_streamed_file() {
    let (a, b) = (Daemon::start(), Daemon::start());
    let base = big_tempdir();
    let big = 1u64 << 30;
    let (ra, rb) = pair(
        &a,
        &b,
        base.path(),
        |r| {
            for i in 0..5000u32 {
                let body = format!("small file {i} ").repeat(1 + (i as usize % 40));
                write(&r.join(format!("small/{:02}/{i}.txt", i % 50)), body.as_bytes());
            }
            // 1 GiB: mostly a hole (cheap to make), with real data at both ends.
            let mut f = fs::File::create(r.join("big.bin")).unwrap();
            f.write_all(&[7u8; 1 << 20]).unwrap();
            f.set_len(big).unwrap();
            use std::io::Seek;
            f.seek(std::io::SeekFrom::End(-4)).unwrap();
            f.write_all(b"end!").unwrap();
        },
        |_| {},
    );
    let t = converge(&[&ra, &rb], &["big.bin", "small/49/4999.txt"]);
    assert_eq!(t.keys().filter(|k| k.ends_with(".txt")).count(), 5000);
    assert_eq!(fs::metadata(rb.join("big.bin")).unwrap().len(), big);
    // Streamed: neither worker ever held the file (peak RSS far below 1 GiB).
    for d in [&a, &b] {
        let hwm = d.worker_peak_rss_kib();
        assert!(hwm < 300 * 1024, "worker peak RSS {hwm} kB");
    }
}

#[test]
fn a_killed_receiver_never_shows_a_partial_file_and_finishes_after_restart() {
    let (a, b) = (Daemon::start(), Daemon::start());
    let base = big_tempdir();
    let size = 512usize << 20;
    let expected = {
        let mut data = vec![0u8; size];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for chunk in data.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        data
    };
    let digest = hex(&Sha256::digest(&expected));
    let (ra, rb) = pair(&a, &b, base.path(), |r| write(&r.join("video.bin"), &expected), |_| {});
    drop(expected);
    let partial = rb.join(".clearskies/partial").join(&digest[..2]).join(&digest);
    wait_for("the download to start", || partial.exists().then_some(()));
    let worker = b.cs.pid("worker").unwrap();
    kill(worker, "-9");
    // Whatever is under the user's name is never partial.
    if let Some(h) = hash(&rb.join("video.bin")) {
        assert_eq!(h, digest);
    }
    wait_for("a new worker", || {
        b.cs.pid("worker").filter(|p| *p != worker && Path::new(&format!("/proc/{p}")).exists())
    });
    converge(&[&ra, &rb], &["video.bin"]);
    assert_eq!(hash(&rb.join("video.bin")).unwrap(), digest);
    wait_for("the partial file to be gone", || (!partial.exists()).then_some(()));
    // Nothing partial was ever under a user's name.
    assert!(!rb.join(".video.bin.clearskies-part").exists());
}

#[test]
fn pause_holds_transfers_and_resume_releases_them() {
    let SyncedPair { a: _a, b, ra, rb, _base } = synced_pair("first", b"1");
    b.cs.ok(&["pause"]);
    write(&ra.join("second"), b"2");
    // (A scan of b's own install of "first" may still be running: "scanning" for a moment.)
    wait_for("b to know of the new file, and be paused", || {
        let s = b.cs.json(&["list", "--json"])["shares"][0].clone();
        (s["pending_files"].as_u64() == Some(1) && s["status"] == "paused").then_some(s)
    });
    assert!(!rb.join("second").exists());
    b.cs.ok(&["resume"]);
    converge(&[&ra, &rb], &["second"]);
}

#[test]
fn configured_peers_are_dialled_for_every_share() {
    let SyncedPair { a, b, ra, rb, _base } = synced_pair("first", b"1");
    // a comes back on another port: b's remembered address is stale, its config is not.
    b.cs.ok(&["stop"]);
    a.cs.ok(&["stop"]);
    a.cs.ok(&["start"]);
    b.cs.write_config(&format!("peers = [\"{}\"]\n", a.listen()));
    b.cs.ok(&["start"]);
    write(&ra.join("second"), b"2");
    converge(&[&ra, &rb], &["second"]);
}
