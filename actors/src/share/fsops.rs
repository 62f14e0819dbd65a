//! Filesystem operations on a share's tree that peers' records cause. Blocking.
//!
//! Every path comes from a validated [`SharePath`] (no `..`, not absolute, no NUL), and every
//! directory on the way to it is checked with `symlink_metadata`: a symlink that a user left
//! inside the share is never followed, so a peer's record cannot reach outside the root.
//! Contents are installed the safe way: temp file in the same directory, verified hash,
//! mode and mtime set, fsync, atomic rename, fsync of the directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use clearskies_protocol::path::{SharePath, PART_SUFFIX};
use clearskies_protocol::time::Timestamp;
use clearskies_protocol::Sha256Hash;
use sha2::{Digest, Sha256};

use super::record::LocalStat;

/// The on-disk location of `path` below `root` (no checks: see [`prepare_parent`]).
pub fn full_path(root: &Path, path: &SharePath) -> PathBuf {
    root.join(path.relative())
}

fn refuse(what: &str, p: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {}", p.display()))
}

/// Walks the directories from the root down to `path`'s parent, refusing symlinks and files
/// on the way. A missing one is created (mode 0755) when `create`, else the walk answers
/// `None`. Returns the parent's on-disk path.
fn walk_parent(root: &Path, path: &SharePath, create: bool) -> io::Result<Option<PathBuf>> {
    let mut dir = root.to_owned();
    let Some(parent) = path.parent() else {
        return Err(refuse("the share root has no parent inside the share", root));
    };
    for segment in parent.relative().split('/').filter(|s| !s.is_empty()) {
        dir.push(segment);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(refuse("not a directory (or a symlink) on the way", &dir)),
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&dir)
                    .or_else(|e| if e.kind() == io::ErrorKind::AlreadyExists { Ok(()) } else { Err(e) })?;
                if !fs::symlink_metadata(&dir)?.is_dir() {
                    return Err(refuse("not a directory on the way", &dir));
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Some(dir))
}

/// Makes sure every directory from the root down to `path`'s parent exists and is a real
/// directory (creating missing ones with mode 0755); refuses symlinks and files on the way.
/// Returns the parent's on-disk path.
pub fn prepare_parent(root: &Path, path: &SharePath) -> io::Result<PathBuf> {
    walk_parent(root, path, true)?.ok_or_else(|| refuse("a directory on the way vanished", root))
}

/// The on-disk parent of `path` if every directory on the way exists and is a real
/// directory; `None` if one is missing (nothing below it exists); an error for a symlink or a
/// file on the way. Creates nothing (for deletions).
pub fn existing_parent(root: &Path, path: &SharePath) -> io::Result<Option<PathBuf>> {
    walk_parent(root, path, false)
}

/// What is at a path, without following a symlink there.
pub fn lstat(p: &Path) -> io::Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(p) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The stat the scanner compares against.
pub fn stat_of(m: &fs::Metadata) -> LocalStat {
    LocalStat {
        ino: m.ino(),
        size: m.size(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
    }
}

/// The temp file a download or copy for `path` goes to (same directory, hidden, ignored by
/// scans and watches). Long names are shortened with a hash so the temp name stays valid.
pub fn temp_path(parent: &Path, path: &SharePath) -> PathBuf {
    let name = path.file_name();
    const KEEP: usize = 180;
    let temp = if name.len() + PART_SUFFIX.len() < 255 {
        format!(".{name}{PART_SUFFIX}")
    } else {
        let mut cut = KEEP;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        let h = Sha256::digest(name.as_bytes());
        format!(".{}.{}{PART_SUFFIX}", &name[..cut], hex::encode(&h[..4]))
    };
    parent.join(temp)
}

/// Whether the file at `p` already has `mode` and `mtime` (those given).
pub fn has_meta(p: &Path, mode: Option<u32>, mtime: Option<Timestamp>) -> bool {
    let Ok(m) = fs::symlink_metadata(p) else { return false };
    let mode_ok = mode.is_none_or(|want| m.mode() & 0o7777 == want & 0o7777);
    let mtime_ok = mtime.is_none_or(|t| m.modified().is_ok_and(|got| got == to_system_time(t)));
    mode_ok && mtime_ok
}

/// Opens an existing file or directory without following a symlink.
fn open_nofollow(p: &Path, write: bool) -> io::Result<File> {
    OpenOptions::new().read(!write).write(write).custom_flags(libc::O_NOFOLLOW).open(p)
}

/// Sets mode (permission bits) and, if given, mtime on an open file.
pub fn set_meta(f: &File, mode: Option<u32>, mtime: Option<Timestamp>) -> io::Result<()> {
    if let Some(mode) = mode {
        f.set_permissions(fs::Permissions::from_mode(mode & 0o7777))?;
    }
    if let Some(t) = mtime {
        f.set_modified(to_system_time(t))?;
    }
    Ok(())
}

fn to_system_time(t: Timestamp) -> std::time::SystemTime {
    let base = std::time::UNIX_EPOCH;
    let nanos = std::time::Duration::from_nanos(u64::from(t.nanos()));
    match u64::try_from(t.secs()) {
        Ok(s) => base + std::time::Duration::from_secs(s) + nanos,
        Err(_) => base - std::time::Duration::from_secs(t.secs().unsigned_abs()) + nanos,
    }
}

/// Applies mode and mtime to an existing regular file in place (a metadata-only change);
/// refuses anything that is not a regular file. Returns the new stat.
pub fn update_file_meta(p: &Path, mode: Option<u32>, mtime: Option<Timestamp>) -> io::Result<LocalStat> {
    let f = open_nofollow(p, false)?;
    let m = f.metadata()?;
    if !m.is_file() {
        return Err(refuse("not a regular file", p));
    }
    set_meta(&f, mode, mtime)?;
    Ok(stat_of(&f.metadata()?))
}

/// Creates a directory (or keeps an existing one), sets its mode, returns its stat.
pub fn make_dir(p: &Path, mode: Option<u32>) -> io::Result<LocalStat> {
    match fs::create_dir(p) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let d = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY).open(p)?;
    if let Some(mode) = mode {
        // Never leave a directory we cannot enter or write: a peer's odd mode would make the
        // rest of the tree impossible to sync.
        d.set_permissions(fs::Permissions::from_mode((mode & 0o7777) | 0o700))?;
    }
    Ok(stat_of(&d.metadata()?))
}

/// Fsyncs a directory (after a rename or unlink in it).
pub fn sync_dir(p: &Path) -> io::Result<()> {
    File::open(p)?.sync_all()
}

/// A name for the losing side of a conflict, next to the original:
/// `name.CONFLICT.<8 alnum>.ext` (`name.CONFLICT.<8 alnum>` without an extension).
pub fn conflict_path(path: &SharePath, tag: &[u8; 16]) -> Option<SharePath> {
    const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let code: String = tag[..8].iter().map(|b| char::from(ALNUM[usize::from(*b) % ALNUM.len()])).collect();
    let name = path.file_name();
    // The extension is what follows the last dot, unless the dot starts the name.
    let new = match name.rfind('.') {
        Some(i) if i > 0 => format!("{}.CONFLICT.{code}{}", &name[..i], &name[i..]),
        _ => format!("{name}.CONFLICT.{code}"),
    };
    let parent = path.parent()?;
    let key = if parent.is_root() { format!("/{new}") } else { format!("{}/{new}", parent.as_str()) };
    SharePath::parse(&key).ok()
}

/// Writes data into a temp file while hashing it; `finish` verifies, sets metadata and
/// fsyncs. Dropping an unfinished writer removes the temp file, except a partial download
/// ([`TempWriter::resume`]), which stays to be continued.
#[derive(Debug)]
pub struct TempWriter {
    file: Option<File>,
    path: PathBuf,
    hasher: Sha256,
    written: u64,
    limit: u64,
    /// Kept when dropped unfinished (a partial download).
    keep: bool,
}

/// Why a download cannot be written: the share's root, or its marker, is missing.
pub const ROOT_MISSING: &str = "the share root or its .clearskies marker is missing";

/// Where a share's partial downloads live, named by content hash: inside the share (so a
/// finished one is renamed into place) yet never under a user's name.
pub fn partial_dir(root: &Path) -> PathBuf {
    root.join(clearskies_protocol::path::META_DIR).join("partial")
}

/// Where the partial download of `sha` is: `partial/<first two hex digits>/<sha>`. Spread
/// over 256 directories: many small downloads at once would otherwise all create and
/// rename in one directory, and wait for its lock in the kernel.
pub fn partial_path(root: &Path, sha: &Sha256Hash) -> PathBuf {
    let hex = sha.to_string();
    partial_dir(root).join(&hex[..2]).join(hex)
}

/// How much of `sha` an earlier attempt downloaded (0 if none).
pub fn partial_len(root: &Path, sha: &Sha256Hash) -> u64 {
    fs::symlink_metadata(partial_path(root, sha)).map_or(0, |m| if m.is_file() { m.len() } else { 0 })
}

/// Removes partial downloads that `wanted` says nobody waits for any more; how many. Ones
/// kept from before the directory was split (directly in `partial/`) move to their place.
pub fn remove_unwanted_partials(root: &Path, wanted: impl Fn(&Sha256Hash) -> bool) -> usize {
    let Ok(entries) = fs::read_dir(partial_dir(root)) else { return 0 };
    let mut removed = 0;
    let mut check = |path: PathBuf, shard: Option<&str>| {
        let sha = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<Sha256Hash>().ok());
        match sha {
            Some(sha) if wanted(&sha) => {
                if shard.is_none_or(|d| !sha.to_string().starts_with(d)) {
                    let to = partial_path(root, &sha);
                    let moved = to
                        .parent()
                        .is_some_and(|d| fs::DirBuilder::new().recursive(true).mode(0o700).create(d).is_ok())
                        && fs::rename(&path, &to).is_ok();
                    if !moved && fs::remove_file(&path).is_ok() {
                        removed += 1;
                    }
                }
            }
            _ => {
                if fs::remove_file(&path).is_ok() {
                    removed += 1;
                }
            }
        }
    };
    for e in entries.flatten() {
        let path = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => {
                let shard = e.file_name().to_string_lossy().into_owned();
                for inner in fs::read_dir(&path).into_iter().flatten().flatten() {
                    check(inner.path(), Some(&shard));
                }
            }
            _ => check(path, None),
        }
    }
    removed
}

impl TempWriter {
    /// Creates (truncating) the temp file for `target` below `root`, refusing to write more
    /// than `limit` bytes.
    pub fn create(root: &Path, target: &SharePath, limit: u64) -> io::Result<TempWriter> {
        let parent = prepare_parent(root, target)?;
        let path = temp_path(&parent, target);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)?;
        Ok(TempWriter { file: Some(file), path, hasher: Sha256::new(), written: 0, limit, keep: false })
    }

    /// Opens the partial download of `sha` (at most `limit` bytes), creating it, or
    /// continuing what an earlier attempt wrote: those bytes are read and hashed again, so
    /// the final verification covers the whole file. [`TempWriter::written`] says where to
    /// continue from.
    pub fn resume(root: &Path, sha: &Sha256Hash, limit: u64) -> io::Result<TempWriter> {
        let path = partial_path(root, sha);
        let dir = path.parent().map(Path::to_owned).unwrap_or_else(|| partial_dir(root));
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
        };
        let mut file = match open() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // The first download of this share (or into this part of it): make the
                // directories below the marker, never the marker (or the root) itself. A
                // share whose root is gone or unmounted fails here instead of growing a
                // new marker on whatever is left at its path.
                for d in [partial_dir(root), dir.clone()] {
                    match fs::DirBuilder::new().mode(0o700).create(&d) {
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            return Err(io::Error::new(io::ErrorKind::NotFound, ROOT_MISSING));
                        }
                        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                        _ => {}
                    }
                }
                open()?
            }
            other => other?,
        };
        let mut hasher = Sha256::new();
        let mut written = file.metadata()?.len();
        if written > limit {
            file.set_len(0)?;
            written = 0;
        }
        let mut buf = if written > 0 { read_buffer(written) } else { Vec::new() };
        let mut hashed = 0u64;
        while hashed < written {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            hashed += n as u64;
        }
        file.seek(io::SeekFrom::Start(hashed))?;
        file.set_len(hashed)?;
        Ok(TempWriter { file: Some(file), path, hasher, written: hashed, limit, keep: true })
    }

    /// Bytes in the file so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Removes the file now (a partial download that must not be continued).
    pub fn discard(mut self) {
        self.keep = false;
    }

    /// Appends bytes.
    pub fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let n = data.len() as u64;
        if self.written.saturating_add(n) > self.limit {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "more data than the record's size"));
        }
        let f = self.file.as_mut().ok_or_else(|| io::Error::other("temp file already finished"))?;
        f.write_all(data)?;
        self.hasher.update(data);
        self.written += n;
        Ok(())
    }

    /// Verifies size and hash, sets mode and mtime, fsyncs. Returns the temp file's path,
    /// which the caller renames into place (or removes).
    pub fn finish(
        mut self,
        sha: &Sha256Hash,
        size: u64,
        mode: Option<u32>,
        mtime: Option<Timestamp>,
    ) -> io::Result<PathBuf> {
        let f = self.file.take().ok_or_else(|| io::Error::other("temp file already finished"))?;
        let got = Sha256Hash(std::mem::take(&mut self.hasher).finalize().into());
        if self.written != size || got != *sha {
            let _ = fs::remove_file(&self.path);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("contents do not match the record ({} bytes, sha256 {got})", self.written),
            ));
        }
        set_meta(&f, mode, mtime)?;
        f.sync_all()?;
        Ok(std::mem::take(&mut self.path))
    }
}

impl Write for TempWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.append(data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for TempWriter {
    fn drop(&mut self) {
        if self.file.is_some() && !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Opens the file at `path` for reading if it is still exactly the one `expected`
/// describes (a regular file, never through a symlink): the basis of a delta.
pub fn open_unchanged(root: &Path, path: &SharePath, expected: &LocalStat) -> io::Result<Option<File>> {
    let f = match open_nofollow(&full_path(root, path), false) {
        Ok(f) => f,
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound) || e.raw_os_error() == Some(libc::ELOOP) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let m = f.metadata()?;
    Ok((m.is_file() && stat_of(&m) == *expected).then_some(f))
}

/// Reads a shared open file at its own position (`pread`), so that several readers of
/// one file never move each other's offsets.
#[derive(Debug, Clone)]
pub struct SharedReader {
    file: std::sync::Arc<File>,
    pos: u64,
}

impl SharedReader {
    /// A reader at the start of `file`.
    pub fn new(file: std::sync::Arc<File>) -> Self {
        SharedReader { file, pos: 0 }
    }
}

impl Read for SharedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(&*self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl io::Seek for SharedReader {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        let base = match to {
            io::SeekFrom::Start(p) => {
                self.pos = p;
                return Ok(p);
            }
            io::SeekFrom::End(d) => (self.file.metadata()?.len(), d),
            io::SeekFrom::Current(d) => (self.pos, d),
        };
        self.pos = base.0.checked_add_signed(base.1).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(self.pos)
    }
}

/// Copies a local file (dedup) into a temp file for `target`, verifying `sha` on the way.
pub fn copy_verified(
    root: &Path,
    from: &Path,
    target: &SharePath,
    sha: &Sha256Hash,
    size: u64,
    mode: Option<u32>,
    mtime: Option<Timestamp>,
) -> io::Result<PathBuf> {
    let mut src = open_nofollow(from, false)?;
    if !src.metadata()?.is_file() {
        return Err(refuse("not a regular file", from));
    }
    let mut w = TempWriter::create(root, target, size)?;
    let mut buf = read_buffer(size);
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        w.append(&buf[..n])?;
    }
    w.finish(sha, size, mode, mtime)
}

/// A read buffer for a file of `len` bytes: no larger than the file (a download of many
/// small files must not zero a megabyte for each), at most 1 MiB.
pub fn read_buffer(len: u64) -> Vec<u8> {
    vec![0u8; usize::try_from(len.clamp(4096, 1 << 20)).unwrap_or(1 << 20)]
}

/// Renames a verified temp file onto `dest`. Returns the new stat. The caller fsyncs the
/// directory before recording the file as installed.
pub fn install(temp: &Path, dest: &Path) -> io::Result<LocalStat> {
    match fs::rename(temp, dest) {
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            // The target is on another filesystem mounted inside the share: copy next to
            // it first, so the final step is still an atomic rename.
            let parent = dest.parent().ok_or_else(|| io::Error::other("no parent directory"))?;
            let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("file");
            let next_to = parent.join(format!(".{name}{PART_SUFFIX}"));
            fs::copy(temp, &next_to)?;
            File::open(&next_to)?.sync_all()?;
            fs::rename(&next_to, dest)?;
            let _ = fs::remove_file(temp);
        }
        other => other?,
    }
    Ok(stat_of(&fs::symlink_metadata(dest)?))
}

/// Removes stale temp files left by a crash (every `*.clearskies-part` below `root`).
pub fn remove_stale_temps(root: &Path) -> usize {
    let mut removed = 0;
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let name = e.file_name();
            if ft.is_dir() {
                if dir != root || name != clearskies_protocol::path::META_DIR {
                    stack.push(e.path());
                }
            } else if ft.is_file()
                && name.to_str().is_some_and(|n| n.ends_with(PART_SUFFIX))
                && fs::remove_file(e.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

/// Free bytes available to us and the total size of the filesystem holding `path`
/// (`statvfs`); `None` if it cannot tell.
pub fn free_space(path: &Path) -> Option<(u64, u64)> {
    let st = rustix::fs::statvfs(path).ok()?;
    let frsize = st.f_frsize;
    Some((st.f_bavail.saturating_mul(frsize), st.f_blocks.saturating_mul(frsize)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_downloads_are_spread_kept_when_wanted_and_moved_from_the_old_layout() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join(clearskies_protocol::path::META_DIR)).unwrap();
        let (a, b, c, d) =
            (Sha256Hash([0xab; 32]), Sha256Hash([0x01; 32]), Sha256Hash([0x02; 32]), Sha256Hash([0x03; 32]));
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
        }
        assert_eq!(fs::read_dir(&empty).unwrap().count(), 0, "the marker came back on the wrong disk");
        assert!(!gone.exists());
    }

    #[test]
    fn conflict_names_keep_the_extension() {
        let tag = [0u8; 16];
        let p = |s: &str| SharePath::parse(s).unwrap();
        assert_eq!(conflict_path(&p("/a/photo.jpg"), &tag).unwrap().as_str(), "/a/photo.CONFLICT.aaaaaaaa.jpg");
        assert_eq!(conflict_path(&p("/README"), &tag).unwrap().as_str(), "/README.CONFLICT.aaaaaaaa");
        assert_eq!(conflict_path(&p("/.bashrc"), &tag).unwrap().as_str(), "/.bashrc.CONFLICT.aaaaaaaa");
        assert_eq!(conflict_path(&p("/x.tar.gz"), &[35; 16]).unwrap().as_str(), "/x.tar.CONFLICT.99999999.gz");
    }

    #[test]
    fn parents_are_created_but_symlinks_are_never_followed() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
        let p = |s: &str| SharePath::parse(s).unwrap();
        assert!(prepare_parent(root.path(), &p("/link/x")).is_err());
        assert!(prepare_parent(root.path(), &p("/link/deeper/x")).is_err());
        assert!(TempWriter::create(root.path(), &p("/link/x"), 10).is_err());
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        let parent = prepare_parent(root.path(), &p("/a/b/c")).unwrap();
        assert!(parent.ends_with("a/b") && parent.is_dir());
        fs::write(root.path().join("file"), b"x").unwrap();
        assert!(prepare_parent(root.path(), &p("/file/x")).is_err());
    }

    #[test]
    fn temp_files_are_verified_before_they_can_be_installed() {
        let root = tempfile::tempdir().unwrap();
        let target = SharePath::parse(&format!("/{}", "é".repeat(120))).unwrap();
        let sha = Sha256Hash(Sha256::digest(b"hello").into());
        let mut w = TempWriter::create(root.path(), &target, 5).unwrap();
        w.append(b"hel").unwrap();
        assert!(w.append(b"lo!").is_err(), "more than the size");
        w.append(b"lo").unwrap();
        let t: Timestamp = "2014-03-30T12:35:29.113243778Z".parse().unwrap();
        let temp = w.finish(&sha, 5, Some(0o640), Some(t)).unwrap();
        assert!(temp.file_name().unwrap().len() <= 255);
        let dest = full_path(root.path(), &target);
        let st = install(&temp, &dest).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"hello");
        let m = fs::metadata(&dest).unwrap();
        assert_eq!((m.mode() & 0o7777, m.mtime(), m.mtime_nsec()), (0o640, t.secs(), 113_243_778));
        assert_eq!(st.size, 5);

        // A wrong hash leaves nothing behind.
        let mut w = TempWriter::create(root.path(), &SharePath::parse("/b").unwrap(), 5).unwrap();
        w.append(b"hellx").unwrap();
        assert!(w.finish(&sha, 5, None, None).is_err());
        assert_eq!(remove_stale_temps(root.path()), 0);
        // An abandoned writer removes its temp file too.
        let w = TempWriter::create(root.path(), &SharePath::parse("/c").unwrap(), 5).unwrap();
        drop(w);
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 1);
    }
}
