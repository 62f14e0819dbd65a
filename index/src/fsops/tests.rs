use super::*;

#[test]
fn partial_downloads_are_spread_kept_when_wanted_and_moved_from_the_old_layout() {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir(root.path().join(clearskies_protocol::path::META_DIR)).unwrap();
    let (a, b, c, d) = (Sha256Hash([0xab; 32]), Sha256Hash([0x01; 32]), Sha256Hash([0x02; 32]), Sha256Hash([0x03; 32]));
    for (sha, bytes) in [(&a, &b"aa"[..]), (&b, b"b")] {
        let mut w = TempWriter::resume(root.path(), sha, 10).unwrap();
        w.append(bytes).unwrap(); // kept when dropped: a partial download
    }
    assert!(partial_path(root.path(), &a).starts_with(partial_dir(root.path()).join("ab")));
    assert_eq!(partial_len(root.path(), &a), 2);
    // From before the split: one still wanted, one not.
    fs::write(partial_dir(root.path()).join(c.to_string()), b"ccc").unwrap();
    fs::write(partial_dir(root.path()).join(d.to_string()), b"d").unwrap();
    let wanted = [a, c];
    assert_eq!(remove_unwanted_partials(root.path(), |s| wanted.contains(s)), 2);
    assert_eq!((partial_len(root.path(), &a), partial_len(root.path(), &b)), (2, 0));
    assert_eq!((partial_len(root.path(), &c), partial_len(root.path(), &d)), (3, 0));
    assert!(!partial_dir(root.path()).join(c.to_string()).exists());
    // Continuing it reads what is there.
    assert_eq!(TempWriter::resume(root.path(), &c, 10).unwrap().written(), 3);
}

#[test]
fn a_download_into_a_share_without_its_marker_fails_and_creates_nothing() {
    // An unmounted disk leaves an empty directory at the root's path; a share root
    // that was deleted leaves nothing.
    let parent = tempfile::tempdir().unwrap();
    let (empty, gone) = (parent.path().join("mountpoint"), parent.path().join("gone"));
    fs::create_dir(&empty).unwrap();
    for root in [&empty, &gone] {
        let Err(e) = TempWriter::resume(root, &Sha256Hash([7; 32]), 10) else { panic!("no marker, no download") };
        assert_eq!((e.kind(), e.to_string()), (io::ErrorKind::NotFound, ROOT_MISSING.to_owned()));
        assert!(is_root_missing(&e), "told by its type");
    }
    // Not by its text: another error that reads the same is not one.
    assert!(!is_root_missing(&io::Error::new(io::ErrorKind::NotFound, ROOT_MISSING)));
    assert_eq!(fs::read_dir(&empty).unwrap().count(), 0, "the marker came back on the wrong disk");
    assert!(!gone.exists());
}

#[test]
fn conflict_names_keep_the_extension() {
    let tag = ".CONFLICT.aaaaaaaa";
    let p = |s: &str| SharePath::parse(s).unwrap();
    assert_eq!(conflict_path(&p("/a/photo.jpg"), tag).unwrap().as_str(), "/a/photo.CONFLICT.aaaaaaaa.jpg");
    assert_eq!(conflict_path(&p("/README"), tag).unwrap().as_str(), "/README.CONFLICT.aaaaaaaa");
    assert_eq!(conflict_path(&p("/.bashrc"), tag).unwrap().as_str(), "/.bashrc.CONFLICT.aaaaaaaa");
    assert_eq!(conflict_path(&p("/x.tar.gz"), ".CONFLICT.99999999").unwrap().as_str(), "/x.tar.CONFLICT.99999999.gz");
}

#[test]
fn a_conflict_marker_names_the_time_and_the_device() {
    let t = Timestamp::new(1_796_541_301, 0).unwrap();
    assert_eq!(conflict_marker(t, "laptop", &[0; 16]), ".CONFLICT.20261206-071501.laptop.aaaa");
    assert_eq!(conflict_marker(t, "Anna's Mac.local", &[35; 16]), ".CONFLICT.20261206-071501.Anna-s-Mac-local.9999");
    assert_eq!(conflict_marker(t, "../..", &[1; 16]), ".CONFLICT.20261206-071501.device.bbbb");
    let long = conflict_marker(t, &"ü".repeat(40), &[0; 16]);
    assert_eq!(long.len(), ".CONFLICT.20261206-071501..aaaa".len() + 32, "{long}");
    assert_eq!(
        conflict_path(&SharePath::parse("/a/doc.txt").unwrap(), &conflict_marker(t, "nas", &[2; 16])).unwrap().as_str(),
        "/a/doc.CONFLICT.20261206-071501.nas.cccc.txt"
    );
}

#[test]
fn conflict_names_near_the_limits_are_shortened_not_refused() {
    let tag = ".CONFLICT.aaaaaaaa";
    let p = |s: &str| SharePath::parse(s).unwrap();
    // A 255-byte name with an extension: the stem is cut, the extension kept.
    let long = format!("/d/{}.jpeg", "n".repeat(250));
    let c = conflict_path(&p(&long), tag).unwrap();
    assert_eq!(c.file_name().len(), 255);
    assert!(c.file_name().ends_with(".CONFLICT.aaaaaaaa.jpeg") && c.file_name().starts_with("nnn"), "{c}");
    // Multi-byte characters are never split.
    let wide = format!("/{}", "é".repeat(127));
    let c = conflict_path(&p(&wide), tag).unwrap();
    assert!(c.file_name().len() <= 255 && c.file_name().ends_with(".CONFLICT.aaaaaaaa"), "{c}");
    assert_eq!(c.file_name().len(), 236 + 18);
    // An "extension" too long to keep is part of the name.
    let ext = format!("/a.{}", "x".repeat(250));
    let c = conflict_path(&p(&ext), tag).unwrap();
    assert!(c.file_name().len() <= 255 && c.file_name().ends_with(".CONFLICT.aaaaaaaa"), "{c}");
    // A path near 4096 bytes.
    let deep = format!("{}/{}.txt", "/abcdefghij".repeat(360), "f".repeat(130));
    assert_eq!(deep.len(), 4095);
    let c = conflict_path(&p(&deep), tag).unwrap();
    assert_eq!(c.as_str().len(), 4096);
    assert!(c.file_name().ends_with(".CONFLICT.aaaaaaaa.txt"), "{c}");
}

#[test]
fn peers_modes_lose_setuid_setgid_sticky_and_get_our_umask() {
    let u = umask();
    for (mode, dir) in [(0o4777, false), (0o2755, false), (0o1777, true), (0o7777, true), (0o000, false)] {
        let got = peer_mode(mode, dir);
        assert_eq!(got & 0o7000, 0, "{mode:o}");
        assert_eq!(got & u, 0, "umask {u:o}, {mode:o} -> {got:o}");
        assert_eq!(got & 0o700, if dir { 0o700 } else { 0o400 | (mode & 0o700) });
        assert!(mode_matches(mode, got, dir));
    }
    assert!(!mode_matches(0o644, 0o600, false) || u & 0o044 == 0o044);
}

/// A local user swaps a directory inside the share for a symlink to a directory outside
/// after a temp file was written in it: neither the temp file nor the target's
/// directory is reached through the link (the applier's test covers the install).
#[test]
fn a_directory_swapped_for_a_symlink_is_never_resolved_through_it() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let r = Root::open(root.path()).unwrap();
    let target = SharePath::parse("/dir/file").unwrap();
    let sha = Sha256Hash(Sha256::digest(b"peer data").into());
    let mut w = TempWriter::create(&r, &target, 9).unwrap();
    w.append(b"peer data").unwrap();
    let temp = w.finish(&sha, 9, Some(0o644), None).unwrap();
    // The swap.
    fs::rename(root.path().join("dir"), root.path().join("moved")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("dir")).unwrap();
    let Err(e) = r.locate(&temp) else { panic!("the temp file was found through the symlink") };
    assert!(beneath::is_refused(&e), "{e}");
    let Err(e) = existing_parent(&r, &target) else { panic!("the parent was opened through the symlink") };
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert!(prepare_parent(&r, &target).is_err());
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0, "written outside the share");
    // Reading through it is refused as well.
    fs::write(outside.path().join("secret"), b"s").unwrap();
    assert!(open_share_file(root.path(), &SharePath::parse("/dir/secret").unwrap()).is_err());
}

#[test]
fn parents_are_created_but_symlinks_are_never_followed() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
    let r = Root::open(root.path()).unwrap();
    let p = |s: &str| SharePath::parse(s).unwrap();
    assert!(prepare_parent(&r, &p("/link/x")).is_err());
    assert!(prepare_parent(&r, &p("/link/deeper/x")).is_err());
    assert!(TempWriter::create(&r, &p("/link/x"), 10).is_err());
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    let parent = prepare_parent(&r, &p("/a/b/c")).unwrap();
    parent.create_file("c", 0o600, true).unwrap();
    assert!(root.path().join("a/b/c").is_file());
    fs::write(root.path().join("file"), b"x").unwrap();
    assert!(prepare_parent(&r, &p("/file/x")).is_err());
    assert!(existing_parent(&r, &p("/none/x")).unwrap().is_none());
    assert!(!root.path().join("none").exists());
}

#[test]
fn temp_files_are_verified_before_they_can_be_installed() {
    let root = tempfile::tempdir().unwrap();
    let target = SharePath::parse(&format!("/{}", "é".repeat(120))).unwrap();
    let sha = Sha256Hash(Sha256::digest(b"hello").into());
    let r = Root::open(root.path()).unwrap();
    let mut w = TempWriter::create(&r, &target, 5).unwrap();
    w.append(b"hel").unwrap();
    assert!(w.append(b"lo!").is_err(), "more than the size");
    w.append(b"lo").unwrap();
    let t: Timestamp = "2014-03-30T12:35:29.113243778Z".parse().unwrap();
    let temp = w.finish_at(&sha, 5, Some(0o640 | 0o4000), Some(t)).unwrap();
    assert!(temp.name.len() <= 255);
    let st = install(&temp, r.root_dir(), target.file_name()).unwrap();
    let dest = full_path(root.path(), &target);
    assert_eq!(fs::read(&dest).unwrap(), b"hello");
    let m = fs::metadata(&dest).unwrap();
    let want = 0o640 & !umask() | 0o400;
    assert_eq!((m.mode() & 0o7777, m.mtime(), m.mtime_nsec()), (want, t.secs(), 113_243_778));
    assert_eq!(st.size, 5);

    // A wrong hash leaves nothing behind.
    let mut w = TempWriter::create(&r, &SharePath::parse("/b").unwrap(), 5).unwrap();
    w.append(b"hellx").unwrap();
    assert!(w.finish(&sha, 5, None, None).is_err());
    assert_eq!(remove_stale_temps(root.path()), 0);
    // An abandoned writer removes its temp file too.
    let w = TempWriter::create(&r, &SharePath::parse("/c").unwrap(), 5).unwrap();
    drop(w);
    assert_eq!(fs::read_dir(root.path()).unwrap().count(), 1);
}

#[test]
fn moving_aside_never_replaces_an_existing_conflict_copy() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("doc.txt"), b"mine").unwrap();
    fs::write(dir.path().join("doc.CONFLICT.x.txt"), b"an earlier copy").unwrap();
    let root = Root::open(dir.path()).unwrap();
    let mut markers = [".CONFLICT.x", ".CONFLICT.y"].into_iter();
    let path = SharePath::parse("/doc.txt").unwrap();
    let copy = move_aside(root.root_dir(), &path, || markers.next().unwrap().to_owned()).unwrap();
    assert_eq!(copy.as_str(), "/doc.CONFLICT.y.txt");
    assert_eq!(fs::read(dir.path().join("doc.CONFLICT.x.txt")).unwrap(), b"an earlier copy");
    assert_eq!(fs::read(dir.path().join("doc.CONFLICT.y.txt")).unwrap(), b"mine");
    assert!(!dir.path().join("doc.txt").exists());
    // Every name taken: an error, the file stays.
    fs::write(dir.path().join("doc.txt"), b"again").unwrap();
    let err = move_aside(root.root_dir(), &path, || ".CONFLICT.x".to_owned()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(fs::read(dir.path().join("doc.txt")).unwrap(), b"again");
}

#[test]
fn a_resumed_partial_file_continues_where_it_was_hashed() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join(clearskies_protocol::path::META_DIR)).unwrap();
    let sha = Sha256Hash([9; 32]);
    let partial = partial_path(root.path(), &sha);
    // Fresh: empty, appended from the start.
    let mut w = TempWriter::resume(root.path(), &sha, 100).unwrap();
    assert_eq!(w.written(), 0);
    w.append(b"0123456789").unwrap();
    drop(w);
    assert_eq!(std::fs::read(&partial).unwrap(), b"0123456789", "kept for the next attempt");
    // Read back whole: continued at its end.
    let mut w = TempWriter::resume(root.path(), &sha, 100).unwrap();
    assert_eq!(w.written(), 10);
    w.append(b"abc").unwrap();
    drop(w);
    assert_eq!(std::fs::read(&partial).unwrap(), b"0123456789abc");
    // Longer than the record now allows: started over from nothing.
    let mut w = TempWriter::resume(root.path(), &sha, 5).unwrap();
    assert_eq!(w.written(), 0);
    w.append(b"xyz").unwrap();
    drop(w);
    assert_eq!(std::fs::read(&partial).unwrap(), b"xyz");
}

#[test]
fn a_file_written_out_window_by_window_arrives_whole_and_verified() {
    // Appends of odd sizes across several write-out windows (each filled window is handed
    // to the disk while the next is written): the file is every byte, in order, and the
    // hash verifies.
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join(clearskies_protocol::path::META_DIR)).unwrap();
    let size = 2 * WRITE_OUT_EVERY + 12_345;
    let mut data = Vec::with_capacity(usize::try_from(size).unwrap());
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    while (data.len() as u64) < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.push(x.to_le_bytes()[3]);
    }
    let sha = Sha256Hash(Sha256::digest(&data).into());
    let mut w = TempWriter::resume(root.path(), &sha, size).unwrap();
    for piece in data.chunks(3 << 20 | 7) {
        w.append(piece).unwrap();
    }
    let path = w.finish(&sha, size, None, None).unwrap();
    assert_eq!(std::fs::read(path).unwrap(), data);
}
