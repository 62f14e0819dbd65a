//! Filesystem operations on a share's tree that peers' records cause. Blocking.
//!
//! Every path comes from a validated [`SharePath`] (no `..`, not absolute, no NUL) and is
//! resolved below the share's root through directory handles at the moment of each
//! operation ([`crate::beneath`]): a symlink anywhere on the way, even one a local user
//! swapped in after a record was checked, is refused, never followed, so a peer's record
//! cannot reach outside the root. Contents are installed the safe way: temp file in the
//! same directory, verified hash, mode and mtime set, fsync (for a batch of small
//! downloads, one `syncfs`: [`crate::durable`]), atomic rename, fsync of the directory.
//!
//! Modes from peers are never applied verbatim ([`peer_mode`]): setuid, setgid and sticky
//! are dropped and the receiving process's umask is applied.

use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::num::NonZeroU64;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clearskies_protocol::path::{SharePath, MAX_SEGMENT, META_DIR, PART_SUFFIX};
use clearskies_protocol::time::Timestamp;
use clearskies_protocol::Sha256Hash;
use rustix::fs::Advice;
use sha2::{Digest, Sha256};

use crate::beneath::{self, DirFd, Meta, Root};
use crate::record::LocalStat;

/// The on-disk location of `path` below `root`, for messages and for [`Root::locate`]
/// (never opened as a path: see [`prepare_parent`]).
pub fn full_path(root: &Path, path: &SharePath) -> PathBuf {
    root.join(path.relative())
}

fn refuse(what: &str, p: &SharePath) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {p}"))
}

/// The umask assumed when the process's cannot be read: the strictest usual one.
const FALLBACK_UMASK: u32 = 0o077;

/// The process's umask, read once (from `/proc/self/status`: `umask(2)` both reads and
/// sets it, so it cannot be read without a window where it is changed).
pub fn umask() -> u32 {
    static UMASK: OnceLock<u32> = OnceLock::new();
    *UMASK.get_or_init(|| {
        let read = fs::read_to_string("/proc/self/status").ok().and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Umask:")).and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        });
        read.unwrap_or_else(|| {
            tracing::warn!("cannot read the umask from /proc/self/status; peers' modes get {FALLBACK_UMASK:04o}");
            FALLBACK_UMASK
        }) & 0o777
    })
}

/// The permission bits a peer's `unix_mode` gets here: only the `rwx` bits (never setuid,
/// setgid or sticky), less our umask; the owner can always read a file, and read, write and
/// enter a directory (or the rest of the tree could not sync).
pub fn peer_mode(mode: u32, dir: bool) -> u32 {
    let m = mode & 0o777 & !umask();
    if dir {
        m | 0o700
    } else {
        m | 0o400
    }
}

/// Whether a local `mode` is what a record's `unix_mode` says: equal, or what
/// [`peer_mode`] makes of it here (a peer's mode applied; not a local change).
pub fn mode_matches(record: u32, local: u32, dir: bool) -> bool {
    record & 0o7777 == local & 0o7777 || peer_mode(record, dir) == local & 0o7777
}

/// The parent's path relative to the root, and the last name.
fn split(path: &SharePath) -> io::Result<(&str, &str)> {
    let parent = path.parent().ok_or_else(|| refuse("the share root has no parent inside the share", path))?;
    let rel = &path.relative()[..parent.relative().len()];
    Ok((rel, path.file_name()))
}

/// Opens `path`'s parent directory below the root, creating missing directories (mode
/// 0755 less the umask) when `create`; `None` if one is missing and not `create`. A symlink
/// or a file on the way is an error.
fn walk_parent(root: &Root, path: &SharePath, create: bool) -> io::Result<Option<DirFd>> {
    let (rel, _) = split(path)?;
    match root.dir(rel) {
        Ok(d) => return Ok(Some(d)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) if beneath::is_refused(&e) => return Err(refuse("not a directory (or a symlink) on the way", path)),
        Err(e) => return Err(e),
    }
    if !create {
        return Ok(None);
    }
    let mut dir = root.root_dir().clone();
    for segment in rel.split('/').filter(|s| !s.is_empty()) {
        dir = match dir.subdir_or_create(segment, 0o755) {
            Ok(d) => d,
            Err(e) if beneath::is_refused(&e) => return Err(refuse("not a directory (or a symlink) on the way", path)),
            Err(e) => return Err(e),
        };
    }
    Ok(Some(dir))
}

/// Makes sure every directory from the root down to `path`'s parent exists and is a real
/// directory (creating missing ones with mode 0755); refuses symlinks and files on the way.
/// Returns the parent, opened.
pub fn prepare_parent(root: &Root, path: &SharePath) -> io::Result<DirFd> {
    walk_parent(root, path, true)?.ok_or_else(|| refuse("a directory on the way vanished", path))
}

/// `path`'s parent if every directory on the way exists and is a real directory; `None` if
/// one is missing (nothing below it exists); an error for a symlink or a file on the way.
/// Creates nothing (for deletions).
pub fn existing_parent(root: &Root, path: &SharePath) -> io::Result<Option<DirFd>> {
    walk_parent(root, path, false)
}

/// What is at `path`, without following a symlink anywhere (`None`: nothing, or a missing
/// directory on the way).
pub fn lstat(root: &Root, path: &SharePath) -> io::Result<Option<Meta>> {
    match existing_parent(root, path)? {
        Some(d) => d.stat(path.file_name()),
        None => Ok(None),
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

/// Cuts `s` to at most `max` bytes, on a character boundary.
fn cut_utf8(s: &str, max: usize) -> &str {
    let mut cut = max.min(s.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

/// The name of the temp file `name` is written to first, next to it (hidden, ignored by
/// scans and watches). Long names are shortened with a hash so the temp name stays valid.
pub fn temp_name_for(name: &str) -> String {
    const KEEP: usize = 180;
    if name.len() + PART_SUFFIX.len() < MAX_SEGMENT {
        format!(".{name}{PART_SUFFIX}")
    } else {
        let h = Sha256::digest(name.as_bytes());
        format!(".{}.{}{PART_SUFFIX}", cut_utf8(name, KEEP), hex::encode(&h[..4]))
    }
}

/// The temp file a download or copy for `path` goes to (in `parent`, the path's directory).
pub fn temp_path(parent: &Path, path: &SharePath) -> PathBuf {
    parent.join(temp_name_for(path.file_name()))
}

/// Whether the file `name` in `dir` already has what a peer's `mode` and `mtime` make here.
pub fn has_meta(dir: &DirFd, name: &str, mode: Option<u32>, mtime: Option<Timestamp>) -> bool {
    let Ok(Some(m)) = dir.stat(name) else { return false };
    let mode_ok = mode.is_none_or(|want| m.mode == peer_mode(want, false));
    let mtime_ok = mtime.is_none_or(|t| m.mtime == (t.secs(), t.nanos()));
    m.is_file() && mode_ok && mtime_ok
}

/// Sets a peer's mode (as [`peer_mode`] makes it) and, if given, mtime on an open file
/// (`dir`: a directory).
fn set_meta_of(f: &File, mode: Option<u32>, mtime: Option<Timestamp>, dir: bool) -> io::Result<()> {
    if let Some(mode) = mode {
        f.set_permissions(fs::Permissions::from_mode(peer_mode(mode, dir)))?;
    }
    if let Some(t) = mtime {
        f.set_modified(to_system_time(t))?;
    }
    Ok(())
}

/// Sets a peer's mode (as [`peer_mode`] makes it) and, if given, mtime on an open file.
pub fn set_meta(f: &File, mode: Option<u32>, mtime: Option<Timestamp>) -> io::Result<()> {
    set_meta_of(f, mode, mtime, false)
}

fn to_system_time(t: Timestamp) -> std::time::SystemTime {
    let base = std::time::UNIX_EPOCH;
    let nanos = std::time::Duration::from_nanos(u64::from(t.nanos()));
    match u64::try_from(t.secs()) {
        Ok(s) => base + std::time::Duration::from_secs(s) + nanos,
        Err(_) => base - std::time::Duration::from_secs(t.secs().unsigned_abs()) + nanos,
    }
}

/// Applies mode and mtime to the existing regular file `name` in `dir` in place (a
/// metadata-only change); refuses anything that is not a regular file, or not the file
/// `expected` describes. Returns the new stat.
pub fn update_file_meta(
    dir: &DirFd,
    name: &str,
    expected: Option<&LocalStat>,
    mode: Option<u32>,
    mtime: Option<Timestamp>,
) -> io::Result<LocalStat> {
    let f = dir.open_file(name, false)?;
    if expected.is_some_and(|e| f.metadata().map_or(true, |m| *e != stat_of(&m))) {
        return Err(io::Error::other("changed since it was looked at"));
    }
    set_meta(&f, mode, mtime)?;
    Ok(stat_of(&f.metadata()?))
}

/// Creates the directory `name` in `dir` (or keeps an existing one), sets a peer's mode on
/// it, returns its stat.
pub fn make_dir(dir: &DirFd, name: &str, mode: Option<u32>) -> io::Result<LocalStat> {
    dir.mkdir(name, 0o755)?;
    let d = dir.open_subdir_file(name)?;
    // Never a directory we cannot enter or write: a peer's odd mode would make the rest of
    // the tree impossible to sync (see `peer_mode`).
    set_meta_of(&d, mode, None, true)?;
    Ok(stat_of(&d.metadata()?))
}

/// A file below the root, by its directory and name: where a verified temp file waits to
/// be renamed into place.
#[derive(Debug, Clone)]
pub struct Located {
    /// Its directory.
    pub dir: DirFd,
    /// Its name there.
    pub name: String,
}

impl Located {
    /// Removes it (a temp file no longer wanted).
    pub fn remove(&self) {
        let _ = self.dir.unlink(&self.name);
    }
}

/// Writes data into a temp file while hashing it; `finish` verifies, sets metadata and
/// fsyncs (or leaves that to the install: [`TempWriter::finish_unsynced`]). Dropping an unfinished writer removes the temp file, except a partial download
/// ([`TempWriter::resume`]), which stays to be continued.
#[derive(Debug)]
pub struct TempWriter {
    file: Option<File>,
    at: Located,
    path: PathBuf,
    hasher: Sha256,
    written: u64,
    limit: u64,
    /// Kept when dropped unfinished (a partial download).
    keep: bool,
    /// The file's first bytes are a clone of a patch's basis, this long ([`reflink`]).
    cloned: u64,
    /// A failed clone may have left bytes past what will be written: cut at `finish`.
    stale_tail: bool,
}

/// A temp file's bytes are handed to the disk every this many (see [`TempWriter::append`]).
const WRITE_OUT_EVERY: u64 = 8 << 20;

/// Why a download cannot be written: the share's root, or its marker, is missing.
pub const ROOT_MISSING: &str = "the share root or its .clearskies marker is missing";

/// The error inside the `io::Error` (kind `NotFound`) of a missing root or marker, so that
/// callers can tell it by type ([`is_root_missing`]), not by its text.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("{ROOT_MISSING}")]
pub struct RootMissing;

/// Whether `e` says the share's root or its marker is missing.
pub fn is_root_missing(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<RootMissing>())
}

/// Where a share's partial downloads live, named by content hash: inside the share (so a
/// finished one is renamed into place) yet never under a user's name.
pub fn partial_dir(root: &Path) -> PathBuf {
    root.join(META_DIR).join("partial")
}

/// Where the partial download of `sha` is: `partial/<first two hex digits>/<sha>`. Spread
/// over 256 directories: many small downloads at once would otherwise all create and
/// rename in one directory, and wait for its lock in the kernel.
pub fn partial_path(root: &Path, sha: &Sha256Hash) -> PathBuf {
    partial_path_of(root, &sha.to_string())
}

/// [`partial_path`] from the contents' hash in hex.
fn partial_path_of(root: &Path, hex: &str) -> PathBuf {
    partial_dir(root).join(&hex[..2]).join(hex)
}

/// `partial/<shard>` relative to the root, for contents hashing to `hex`.
fn shard_rel(hex: &str) -> String {
    format!("{META_DIR}/partial/{}", &hex[..2])
}

/// How much of `sha` an earlier attempt downloaded (0 if none).
pub fn partial_len(root: &Path, sha: &Sha256Hash) -> u64 {
    let Ok(root) = Root::open(root) else { return 0 };
    let hex = sha.to_string();
    let Ok(dir) = root.dir(&shard_rel(&hex)) else { return 0 };
    match dir.stat(&hex) {
        Ok(Some(m)) if m.is_file() => m.stat.size,
        _ => 0,
    }
}

/// Removes partial downloads that `wanted` says nobody waits for any more; how many. Ones
/// kept from before the directory was split (directly in `partial/`) move to their place.
/// Only what is really inside `partial/` is touched: a symlink there is removed, never
/// followed.
pub fn remove_unwanted_partials(root: &Path, wanted: impl Fn(&Sha256Hash) -> bool) -> usize {
    let Ok(root) = Root::open(root) else { return 0 };
    let Ok(partial) = root.dir(&format!("{META_DIR}/partial")) else { return 0 };
    let Ok((entries, _)) = partial.list() else { return 0 };
    let mut removed = 0;
    let mut check = |dir: &DirFd, name: &str, shard: Option<&str>| match name.parse::<Sha256Hash>().ok() {
        Some(sha) if wanted(&sha) => {
            let hex = sha.to_string();
            if shard.is_none_or(|d| !hex.starts_with(d)) {
                let moved =
                    partial.subdir_or_create(&hex[..2], 0o700).and_then(|to| dir.rename(name, &to, &hex)).is_ok();
                if !moved && dir.unlink(name).is_ok() {
                    removed += 1;
                }
            }
        }
        _ => {
            if dir.unlink(name).is_ok() {
                removed += 1;
            }
        }
    };
    for (name, ft) in entries {
        let is_dir = match ft {
            rustix::fs::FileType::Directory => true,
            rustix::fs::FileType::Unknown => partial.stat(&name).ok().flatten().is_some_and(|m| m.is_dir()),
            _ => false,
        };
        if is_dir {
            // Opened without following a symlink swapped in since the listing.
            let Ok(sub) = partial.subdir(&name) else { continue };
            let Ok((inner, _)) = sub.list() else { continue };
            for (n, _) in inner {
                check(&sub, &n, Some(&name));
            }
        } else {
            check(&partial, &name, None);
        }
    }
    removed
}

impl TempWriter {
    /// Creates (truncating) the temp file for `target` below `root`, refusing to write more
    /// than `limit` bytes.
    pub fn create(root: &Root, target: &SharePath, limit: u64) -> io::Result<TempWriter> {
        let dir = prepare_parent(root, target)?;
        let name = temp_name_for(target.file_name());
        let file = dir.create_file(&name, 0o600, true)?;
        let path = root.path().join(split(target)?.0).join(&name);
        Ok(TempWriter {
            file: Some(file),
            at: Located { dir, name },
            path,
            hasher: Sha256::new(),
            written: 0,
            limit,
            keep: false,
            cloned: 0,
            stale_tail: false,
        })
    }

    /// Opens the partial download of `sha` (at most `limit` bytes), creating it, or
    /// continuing what an earlier attempt wrote: those bytes are read and hashed again, so
    /// the final verification covers the whole file. [`TempWriter::written`] says where to
    /// continue from.
    pub fn resume(root: &Path, sha: &Sha256Hash, limit: u64) -> io::Result<TempWriter> {
        let missing = || io::Error::new(io::ErrorKind::NotFound, RootMissing);
        // The first download of this share (or into this part of it) makes the directories
        // below the marker, never the marker (or the root) itself. A share whose root is
        // gone or unmounted fails here instead of growing a new marker on whatever is left
        // at its path.
        let root_dir = Root::open(root).map_err(|e| if e.kind() == io::ErrorKind::NotFound { missing() } else { e })?;
        let hex = sha.to_string();
        // Usually the shard's directory is there already: one open, not one per level.
        let dir = match root_dir.dir(&shard_rel(&hex)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let meta = match root_dir.root_dir().subdir(META_DIR) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing()),
                    other => other?,
                };
                meta.subdir_or_create("partial", 0o700)?.subdir_or_create(&hex[..2], 0o700)?
            }
            other => other?,
        };
        let mut file = dir.create_file(&hex, 0o600, false)?;
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
        if hashed > 0 {
            file.seek(io::SeekFrom::Start(hashed))?;
        }
        if hashed < written {
            // (The file shrank while it was read back: continue from what was hashed.)
            file.set_len(hashed)?;
        }
        let path = partial_path_of(root, &hex);
        Ok(TempWriter {
            file: Some(file),
            at: Located { dir, name: hex },
            path,
            hasher,
            written: hashed,
            limit,
            keep: true,
            cloned: 0,
            stale_tail: false,
        })
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
        let window = self.written / WRITE_OUT_EVERY;
        self.written += n;
        if self.written / WRITE_OUT_EVERY > window {
            // The window just filled goes to the disk now, while the rest arrives: left to
            // the kernel it would wait for gigabytes of dirty pages (or 30 s), and `finish`'s
            // fsync would then write the whole file while the connection waits. On Linux
            // `POSIX_FADV_DONTNEED` starts the writeback of a range's dirty pages (what
            // `sync_file_range` does, without unsafe code) and drops only the clean ones:
            // here none yet. A hint: durability is still `finish`'s fsync.
            let start = window * WRITE_OUT_EVERY;
            let _ = rustix::fs::fadvise(&*f, start, NonZeroU64::new(self.written - start), Advice::DontNeed);
        }
        Ok(())
    }

    /// Verifies size and hash, sets mode (as [`peer_mode`] makes it) and mtime, fsyncs.
    /// Returns the temp file's path, which the caller renames into place (or removes); the
    /// path is resolved below the root again when it is used ([`Root::locate`]).
    pub fn finish(
        self,
        sha: &Sha256Hash,
        size: u64,
        mode: Option<u32>,
        mtime: Option<Timestamp>,
    ) -> io::Result<PathBuf> {
        let path = self.path.clone();
        self.finish_at(sha, size, mode, mtime).map(|_| path)
    }

    /// [`TempWriter::finish`], answering where the temp file is.
    pub fn finish_at(
        self,
        sha: &Sha256Hash,
        size: u64,
        mode: Option<u32>,
        mtime: Option<Timestamp>,
    ) -> io::Result<Located> {
        let (at, f) = self.verified(sha, size, mode, mtime)?;
        f.sync_all()?;
        Ok(at)
    }

    /// [`TempWriter::finish`] without the fsync: the install makes the file durable with a
    /// batch of others ([`crate::durable`]) through the handle returned, which was opened
    /// before any byte was written (so it is told of every writeback error since).
    pub fn finish_unsynced(
        self,
        sha: &Sha256Hash,
        size: u64,
        mode: Option<u32>,
        mtime: Option<Timestamp>,
    ) -> io::Result<(PathBuf, File)> {
        let path = self.path.clone();
        self.verified(sha, size, mode, mtime).map(|(_, f)| (path, f))
    }

    /// Verifies size and hash, cuts what is left of a clone, sets mode and mtime.
    fn verified(
        mut self,
        sha: &Sha256Hash,
        size: u64,
        mode: Option<u32>,
        mtime: Option<Timestamp>,
    ) -> io::Result<(Located, File)> {
        let f = self.file.take().ok_or_else(|| io::Error::other("temp file already finished"))?;
        let got = Sha256Hash(std::mem::take(&mut self.hasher).finalize().into());
        if self.written != size || got != *sha {
            self.at.remove();
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("contents do not match the record ({} bytes, sha256 {got})", self.written),
            ));
        }
        if self.cloned > self.written || self.stale_tail {
            f.set_len(self.written)?;
        }
        set_meta(&f, mode, mtime)?;
        Ok((self.at.clone(), f))
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
            self.at.remove();
        }
    }
}

/// Opens the regular file at `path` below `root` for reading, never through a symlink
/// (anywhere on the way) and never blocking on a FIFO: for serving and reading share files.
pub fn open_share_file(root: &Path, path: &SharePath) -> io::Result<File> {
    let root = Root::open(root)?;
    let dir = existing_parent(&root, path)?.ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
    dir.open_file(path.file_name(), false)
}

/// Opens the file at `path` for reading if it is still exactly the one `expected`
/// describes (a regular file, never through a symlink): the basis of a delta.
pub fn open_unchanged(root: &Path, path: &SharePath, expected: &LocalStat) -> io::Result<Option<File>> {
    let f = match open_share_file(root, path) {
        Ok(f) => f,
        Err(e)
            if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::InvalidInput) || beneath::is_refused(&e) =>
        {
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

/// Copies contents into a temp file for `target`, verifying `sha` on the way.
fn copy_into(
    root: &Root,
    src: &mut File,
    target: &SharePath,
    sha: &Sha256Hash,
    size: u64,
    mode: Option<u32>,
    mtime: Option<Timestamp>,
) -> io::Result<Located> {
    let mut w = TempWriter::create(root, target, size)?;
    let mut buf = read_buffer(size);
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        w.append(&buf[..n])?;
    }
    w.finish_at(sha, size, mode, mtime)
}

/// Copies the share file `from` whose stat is `expected` (dedup) into a temp file for
/// `target`, verifying `sha` on the way.
#[allow(clippy::too_many_arguments)]
pub fn copy_verified(
    root: &Root,
    from: &SharePath,
    expected: &LocalStat,
    target: &SharePath,
    sha: &Sha256Hash,
    size: u64,
    mode: Option<u32>,
    mtime: Option<Timestamp>,
) -> io::Result<Located> {
    let dir = existing_parent(root, from)?.ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
    let mut src = dir.open_file(from.file_name(), false)?;
    if stat_of(&src.metadata()?) != *expected {
        return Err(io::Error::other("the source changed"));
    }
    copy_into(root, &mut src, target, sha, size, mode, mtime)
}

/// Copies a verified temp file into a new temp file for `target` (the same contents wanted
/// at a second path).
pub fn copy_temp(
    root: &Root,
    from: &Located,
    target: &SharePath,
    sha: &Sha256Hash,
    size: u64,
    mode: Option<u32>,
    mtime: Option<Timestamp>,
) -> io::Result<Located> {
    let mut src = from.dir.open_file(&from.name, false)?;
    copy_into(root, &mut src, target, sha, size, mode, mtime)
}

/// A read buffer for a file of `len` bytes: no larger than the file (a download of many
/// small files must not zero a megabyte for each), at most 1 MiB.
pub fn read_buffer(len: u64) -> Vec<u8> {
    vec![0u8; usize::try_from(len.clamp(4096, 1 << 20)).unwrap_or(1 << 20)]
}

/// Renames a verified temp file onto `name` in `dir` (both handles: nothing is resolved
/// again by path). Returns the new stat. The caller fsyncs the directory before recording
/// the file as installed.
pub fn install(temp: &Located, dir: &DirFd, name: &str) -> io::Result<LocalStat> {
    match temp.dir.rename(&temp.name, dir, name) {
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            // The target is on another filesystem mounted inside the share: copy next to
            // it first, so the final step is still an atomic rename.
            let next_to = temp_name_for(name);
            let mut src = temp.dir.open_file(&temp.name, false)?;
            let mut dst = dir.create_file(&next_to, 0o600, true)?;
            let copied = io::copy(&mut src, &mut dst)
                .and_then(|_| dst.set_permissions(src.metadata()?.permissions()))
                .and_then(|()| dst.set_modified(src.metadata()?.modified()?))
                .and_then(|()| dst.sync_all())
                .and_then(|()| dir.rename(&next_to, dir, name));
            if let Err(e) = copied {
                let _ = dir.unlink(&next_to);
                return Err(e);
            }
            temp.remove();
        }
        other => other?,
    }
    let m = dir.stat(name)?.ok_or_else(|| io::Error::other("the installed file vanished"))?;
    Ok(m.stat)
}

/// Removes stale temp files left by a crash (every `*.clearskies-part` below `root`), walking
/// through directory handles (a symlink swapped in is never followed).
pub fn remove_stale_temps(root: &Path) -> usize {
    let Ok(root) = Root::open(root) else { return 0 };
    let mut removed = 0;
    let mut stack = vec![(root.root_dir().clone(), true)];
    while let Some((dir, at_root)) = stack.pop() {
        let Ok((entries, _)) = dir.list() else { continue };
        for (name, ft) in entries {
            let ft = match ft {
                rustix::fs::FileType::Unknown => match dir.stat(&name) {
                    Ok(Some(m)) => m.file_type,
                    _ => continue,
                },
                ft => ft,
            };
            if ft == rustix::fs::FileType::Directory {
                if !(at_root && clearskies_protocol::path::is_meta_dir(&name)) {
                    if let Ok(sub) = dir.subdir(&name) {
                        stack.push((sub, false));
                    }
                }
            } else if ft == rustix::fs::FileType::RegularFile
                // Exactly the names we make (a user's `x.Clearskies-Part` on a
                // case-sensitive disk is not synced, but not ours to delete either).
                && name.ends_with(PART_SUFFIX)
                && dir.unlink(&name).is_ok()
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

mod conflict;
pub mod reflink;

pub use conflict::{conflict_marker, conflict_path, move_aside};

#[cfg(test)]
mod tests;
