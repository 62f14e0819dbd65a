//! Scanning a share's directory into its index. Blocking: run it on a blocking pool.
//!
//! A scan walks the whole tree (at start, after an inotify overflow) or only the directories
//! inotify reported, one directory at a time: each listing is compared with the index's
//! entries for that directory, so memory follows the widest directory, not the share. Only
//! what changed is hashed: a file whose inode, size, mtime and ctime match what the index
//! remembers keeps its stored hash, so a rescan after a restart reads almost nothing. New
//! and changed entries become records written by us (our revision counter advances, our
//! vector clock entry is incremented), committed in chunks; records whose file is gone
//! become tombstones, committed last, after the root was checked again.
//!
//! A share root that is missing, not a directory, or lacks its `.clearskies` marker
//! directory (an unmounted disk, a deleted folder) is an error, never a mass deletion.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use clearskies_protocol::path::{is_meta_dir, is_part_name, SharePath, META_DIR};
use clearskies_protocol::time::Timestamp;
use clearskies_protocol::{PeerId, RecordUuid, Sha256Hash};
use sha2::{Digest, Sha256};
use tracing::warn;

use crate::beneath::{self, DirFd, Meta, Root};
use crate::record::{EntryKind, Record};
use crate::store::{ShareStore, StoreError};

/// Why a scan could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// The root (or its marker) is missing: the share goes into an error state.
    #[error("share root {0} is missing or not mounted")]
    RootMissing(PathBuf),
    /// The index failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading the tree failed.
    #[error("reading {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// What.
        source: io::Error,
    },
}

/// What a scan did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScanReport {
    /// Entries found on disk (files and directories, the root included).
    pub entries: usize,
    /// Files whose contents were hashed.
    pub hashed_files: usize,
    /// Bytes hashed.
    pub hashed_bytes: u64,
    /// Records written (new, changed or deleted); they hold our revisions after the one
    /// the index had before the scan, in the order they were committed.
    pub changed: usize,
    /// On a read-only share: paths changed, added or deleted here, which are never
    /// recorded or sent (the index keeps the read-write peers' versions).
    pub local_changes: Vec<SharePath>,
    /// Deletions not recorded because they were too many at once (see
    /// [`ScanContext::delete_limit`]): waiting for the user's confirmation.
    pub held_deletions: usize,
}

/// Fewest deletions that can be held: removing a handful of files from a small share is
/// never a mass deletion.
pub const MIN_HELD_DELETIONS: usize = 10;

/// What the scan needs besides the filesystem: who we are and where randomness comes from.
pub struct ScanContext<'a> {
    /// Our peer ID in this share.
    pub me: PeerId,
    /// The time to stamp on changed records.
    pub now: Timestamp,
    /// New record UUIDs (from a CSPRNG in the daemon, a counter in tests).
    pub new_uuid: &'a mut dyn FnMut() -> RecordUuid,
    /// Selective sync: paths neither indexed nor treated as deleted.
    pub filter: Option<&'a crate::filter::Filter>,
    /// A read-only share: local changes are reported, never recorded.
    pub read_only: bool,
    /// Percentage of the share's live entries that may be deleted in one scan; beyond it
    /// (and beyond [`MIN_HELD_DELETIONS`]) no deletion is recorded until confirmed. `None`:
    /// no limit (confirmed, or turned off).
    pub delete_limit: Option<u8>,
}

impl std::fmt::Debug for ScanContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanContext").field("me", &self.me).field("now", &self.now).finish_non_exhaustive()
    }
}

/// Whether `root` is present and carries its marker directory.
pub fn root_is_present(root: &Path) -> bool {
    root.is_dir() && root.join(META_DIR).is_dir()
}

fn mtime_of(m: &Meta) -> Option<Timestamp> {
    Timestamp::new(m.mtime.0, m.mtime.1)
}

/// Streams a file through SHA-256. Opened without following a symlink and without blocking
/// on a FIFO, and hashed only if the handle is a regular file: whatever a local user swaps
/// in at that path can neither redirect nor hang the worker.
pub fn hash_file(path: &Path) -> io::Result<(Sha256Hash, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    hash_open(f)
}

/// Streams an open regular file through SHA-256.
fn hash_open(mut f: File) -> io::Result<(Sha256Hash, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = crate::fsops::read_buffer(f.metadata()?.len());
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((Sha256Hash(hasher.finalize().into()), total))
}

struct Found {
    path: SharePath,
    fs_path: PathBuf,
    /// The directory it was listed in, and its name there (`None` for the root).
    at: Option<(DirFd, String)>,
    meta: Meta,
}

/// Which part of the tree a scan looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The whole tree: at start, after an inotify queue overflow, on request, and whenever
    /// what changed is not known precisely.
    Full,
    /// The entries of these directories (what inotify reported), and with `true` everything
    /// below them too (directories that appeared whole). A directory found inside that the
    /// index does not know yet is always walked whole. Empty: nothing to do.
    Dirs(BTreeMap<PathBuf, bool>),
}

/// More changed directories than this between two scans: scan everything instead.
pub const MAX_DIRTY_DIRS: usize = 10_000;

impl Default for Scope {
    fn default() -> Self {
        Scope::Dirs(BTreeMap::new())
    }
}

impl Scope {
    /// Adds a changed directory (`recursive`: and everything below it).
    pub fn add(&mut self, dir: PathBuf, recursive: bool) {
        if let Scope::Dirs(dirs) = self {
            *dirs.entry(dir).or_default() |= recursive;
            if dirs.len() > MAX_DIRTY_DIRS {
                *self = Scope::Full;
            }
        }
    }

    /// Adds everything `other` covers.
    pub fn merge(&mut self, other: Scope) {
        match other {
            Scope::Full => *self = Scope::Full,
            Scope::Dirs(dirs) => dirs.into_iter().for_each(|(d, r)| self.add(d, r)),
        }
    }

    /// Nothing to scan.
    pub fn is_empty(&self) -> bool {
        matches!(self, Scope::Dirs(d) if d.is_empty())
    }
}

/// Records written per index commit: a scan of a million files never holds more than this
/// many changes in memory.
const COMMIT_CHUNK: usize = 4096;

/// The share path of `fs_path` below `root` (`None` if it is outside, our metadata, or not
/// a syncable name).
fn share_path_of(root: &Path, fs_path: &Path) -> Option<SharePath> {
    let rel = fs_path.strip_prefix(root).ok()?;
    let segments: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    SharePath::from_segments(segments?).ok()
}

/// One scan's working state.
struct Scanner<'s, 'c, 'a> {
    root: &'s Path,
    /// The root's handle: every directory is listed, and every file opened, through it.
    dirs: Root,
    store: &'s ShareStore,
    ctx: &'c mut ScanContext<'a>,
    report: ScanReport,
    /// Our revision counter, as of the records written so far.
    rev: u64,
    /// New and changed records not committed yet.
    changed: Vec<Record>,
    /// Records whose local state moved without anything to announce (new inode or ctime,
    /// a peer's version that is now in place): committed with the same batch.
    restat: Vec<Record>,
    /// Live records whose file is gone: recorded as deletions at the end, after the root
    /// was checked again, and only if they are not too many.
    gone: Vec<SharePath>,
    /// Directories listed so far (each is listed once).
    listed: HashSet<SharePath>,
}

impl Scanner<'_, '_, '_> {
    /// Commits what is waiting (a read-only share records only local state).
    fn flush(&mut self) -> Result<(), ScanError> {
        let changed = std::mem::take(&mut self.changed);
        let restat = std::mem::take(&mut self.restat);
        if self.ctx.read_only {
            // Only the read-write peers' signed versions may enter the index.
            // (The root itself is no change: on an untrusted peer it has no record of its own.)
            self.report.local_changes.extend(changed.into_iter().map(|r| r.path).filter(|p| !p.is_root()));
            if !restat.is_empty() {
                self.store.commit(&restat, None)?;
            }
            return Ok(());
        }
        if !changed.is_empty() || !restat.is_empty() {
            let new_revision = (!changed.is_empty()).then_some(self.rev);
            self.store.commit(&[restat.as_slice(), changed.as_slice()].concat(), new_revision)?;
        }
        self.report.changed += changed.len();
        Ok(())
    }

    /// Lists directory `dir` (share path `key`): indexes what is in it, notes what is gone
    /// from it, and pushes the directories to walk next onto `stack`.
    fn visit(
        &mut self,
        dir: &Path,
        key: &SharePath,
        recursive: bool,
        stack: &mut Vec<(PathBuf, SharePath, bool)>,
    ) -> Result<(), ScanError> {
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| ScanError::Io { path, source }
        };
        // Listed through a handle opened below the root without following any symlink: a
        // directory swapped for a symlink since it was found is not listed (its parent's
        // listing shows a symlink, which is not synced).
        let opened = self.dirs.dir(key.relative()).and_then(|d| Ok((d.list()?, d)));
        let ((entries, not_utf8), handle) = match opened {
            Ok(x) => x,
            Err(e)
                if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
                    || beneath::is_refused(&e) =>
            {
                // Gone since it was reported: its parent's listing shows what is left.
                if let (Some(parent), Some(parent_dir)) = (key.parent(), dir.parent()) {
                    stack.push((parent_dir.to_owned(), parent, false));
                }
                return Ok(());
            }
            Err(e) => return Err(io_err(dir)(e)),
        };
        for name in not_utf8 {
            warn!(path = %dir.join(name).display(), "skipping a name that is not UTF-8");
        }
        let mut names: HashSet<String> = HashSet::new();
        let mut found = Vec::new();
        for (name, _) in entries {
            // Our own names, case-insensitively (a share on vfat, exFAT, SMB or casefolded
            // ext4 has `.clearskies` under any case).
            if (key.is_root() && is_meta_dir(&name)) || is_part_name(&name) {
                continue;
            }
            let child = match SharePath::parse(&format!("{}/{name}", if key.is_root() { "" } else { key.as_str() })) {
                Ok(p) => p,
                Err(e) => {
                    warn!(path = %dir.join(&name).display(), error = %e, "skipping an unsyncable name");
                    continue;
                }
            };
            let meta = match handle.stat(&name) {
                Ok(Some(m)) => m,
                Ok(None) => continue,
                Err(e) => return Err(io_err(&dir.join(&name))(e)),
            };
            if meta.is_dir() && crate::data_dir::is_data_dir(meta.stat.ino, &dir.join(&name)) {
                // The daemon's own data directory (share keys, index, log): never indexed.
                warn!(path = %dir.join(&name).display(), "not indexing the daemon's data directory inside a share");
                continue;
            }
            if self.ctx.filter.is_some_and(|f| f.ignores(&child, meta.is_dir())) {
                continue; // selective sync: not ours to index (nor what is inside)
            }
            if !meta.is_dir() && !meta.is_file() {
                continue; // symlinks, sockets, devices: not synced
            }
            names.insert(name.clone());
            found.push(Found { path: child, fs_path: dir.join(&name), at: Some((handle.clone(), name)), meta });
        }
        for f in found {
            let old = self.store.get(&f.path)?;
            if f.meta.is_dir() {
                // A directory the index knows (same inode) has its own watch; anything else
                // (new, replaced, or a file before) is walked whole.
                let known = old.as_ref().is_some_and(|o| {
                    !o.deleted && o.kind == EntryKind::Directory && o.local.is_some_and(|l| l.ino == f.meta.stat.ino)
                });
                if recursive || !known {
                    stack.push((f.fs_path.clone(), f.path.clone(), true));
                }
            } else if old.as_ref().is_some_and(|o| o.kind == EntryKind::Directory) {
                // A directory replaced by a file: what was inside is gone.
                self.vanish_below(&f.path)?;
            }
            self.entry(f, old, &mut names)?;
        }
        // What the index has here that the listing does not: gone.
        let mut vanished = Vec::new();
        self.store.children(key, |name, rec| {
            if !names.contains(name) {
                vanished.push((name.to_owned(), rec));
            }
            Ok(())
        })?;
        for (name, rec) in vanished {
            let Ok(path) = SharePath::parse(&format!("{}/{name}", if key.is_root() { "" } else { key.as_str() }))
            else {
                continue;
            };
            let is_dir = rec.as_ref().is_none_or(|r| r.kind == EntryKind::Directory);
            if is_dir && self.ctx.filter.is_some_and(|f| f.ignores(&path, true)) {
                continue; // ignored here, and everything inside: never a local deletion
            }
            if is_dir {
                self.vanish_below(&path)?;
            }
            if let Some(r) = rec {
                self.vanished(r);
            }
        }
        Ok(())
    }

    /// Everything the index holds below `dir` is gone.
    fn vanish_below(&mut self, dir: &SharePath) -> Result<(), ScanError> {
        let mut below = Vec::new();
        self.store.each_below(dir, |r| {
            below.push(r);
            Ok(())
        })?;
        below.into_iter().for_each(|r| self.vanished(r));
        Ok(())
    }

    /// A record whose file is not on disk.
    fn vanished(&mut self, old: Record) {
        if self.ctx.filter.is_some_and(|f| f.ignores(&old.path, old.kind == EntryKind::Directory)) {
            return; // ignored here: never a local deletion
        }
        if old.deleted || old.pending || old.wants_content() {
            // A deletion done, or a peer's version not here yet: nothing to announce.
            if old.local.is_some() || old.pending && old.deleted {
                let mut r = old;
                r.local = None;
                r.local_sha256 = None;
                if r.deleted {
                    r.pending = false;
                }
                self.restat.push(r);
            }
            return;
        }
        self.gone.push(old.path);
    }

    /// One entry found on disk, against its record `old`.
    fn entry(&mut self, f: Found, old: Option<Record>, names: &mut HashSet<String>) -> Result<(), ScanError> {
        self.report.entries += 1;
        let kind = if f.meta.is_dir() { EntryKind::Directory } else { EntryKind::File };
        let stat = f.meta.stat;
        let mode = f.meta.mode;
        let (sha256, size) = match kind {
            EntryKind::Directory => (None, None),
            EntryKind::File => {
                let known = old.as_ref().and_then(|o| (o.local == Some(stat)).then_some(o.local_sha256).flatten());
                match known {
                    Some(h) => (Some(h), Some(stat.size)),
                    None => match f.at.as_ref().map_or_else(
                        || Err(io::Error::other("the root is no file")),
                        |(dir, name)| dir.open_file(name, false).and_then(hash_open),
                    ) {
                        Ok((h, n)) => {
                            self.report.hashed_files += 1;
                            self.report.hashed_bytes += n;
                            (Some(h), Some(n))
                        }
                        // Vanished or unreadable mid-scan: leave its record as it is.
                        Err(e) => {
                            warn!(path = %f.fs_path.display(), error = %e, "cannot read; skipped this scan");
                            return Ok(());
                        }
                    },
                }
            }
        };
        if let Some(o) = &old {
            if o.pending && o.local == Some(stat) {
                // The old version, waiting for a peer's change to be applied.
                return Ok(());
            }
            if o.kind == kind && !o.deleted && (o.pending || o.wants_content()) {
                if o.sha256 == sha256 {
                    // The peer's version is in place.
                    let mut r = o.clone();
                    r.local = Some(stat);
                    r.local_sha256 = sha256;
                    r.pending = false;
                    self.restat.push(r);
                    return Ok(());
                }
                if kind == EntryKind::File {
                    // Edited while a peer's version is on its way: keep the edit as a
                    // conflict copy; the peer's version takes the name when it arrives.
                    let mut r = o.clone();
                    r.local = None;
                    r.local_sha256 = None;
                    let Some((dir, _)) = &f.at else { return Ok(()) };
                    if let Some(copy) = set_aside(dir, &f.path, sha256, size, mode, &mut self.rev, self.ctx) {
                        names.insert(copy.path.file_name().to_owned());
                        self.changed.push(copy);
                        self.restat.push(r);
                    }
                    return Ok(());
                }
            }
        }
        let mtime = if kind == EntryKind::File { mtime_of(&f.meta) } else { None };
        let live = old.as_ref().filter(|o| !o.deleted && o.kind == kind);
        // A record without a mode or mtime (an untrusted peer's encrypted records carry
        // neither) does not care about them.
        // A peer's mode as applied here (no setuid, setgid or sticky; our umask) is its mode.
        let is_dir = kind == EntryKind::Directory;
        let same_content = live.is_some_and(|o| {
            o.sha256 == sha256
                && o.unix_mode.is_none_or(|m| crate::fsops::mode_matches(m, mode, is_dir))
                && (o.mtime.is_none() || o.mtime == mtime)
        });
        match (live, same_content) {
            (Some(o), true) => {
                if o.local != Some(stat) || o.local_sha256 != sha256 || o.pending {
                    // Same contents, new inode or times (e.g. touched or copied back): remember
                    // the new stat without announcing anything.
                    let mut r = o.clone();
                    r.local = Some(stat);
                    r.local_sha256 = sha256;
                    r.pending = false;
                    self.restat.push(r);
                }
            }
            _ => {
                self.rev += 1;
                let mut vector_clock = old.as_ref().map(|o| o.vector_clock.clone()).unwrap_or_default();
                vector_clock.increment(self.ctx.me);
                self.changed.push(Record {
                    path: f.path,
                    uuid: old.as_ref().map_or_else(|| (self.ctx.new_uuid)(), |o| o.uuid),
                    kind,
                    size,
                    sha256,
                    mtime,
                    unix_mode: Some(mode),
                    deleted: false,
                    last_updated_by: self.ctx.me,
                    last_updated_rev: self.rev,
                    update_time: self.ctx.now,
                    vector_clock,
                    extra: old.map(|o| o.extra).unwrap_or_default(),
                    local: Some(stat),
                    local_sha256: sha256,
                    pending: false,
                    signed: None,
                    sealed: None,
                });
            }
        }
        Ok(())
    }

    /// Records the deletions found, deepest first, unless they are too many at once.
    fn deletions(&mut self) -> Result<(), ScanError> {
        let mut gone = std::mem::take(&mut self.gone);
        gone.sort_by(|a, b| depth(b).cmp(&depth(a)).then_with(|| a.cmp(b)));
        gone.dedup();
        if let Some(limit) = self.ctx.delete_limit {
            let totals = self.store.totals()?;
            let live = usize::try_from(totals.files + totals.directories).unwrap_or(usize::MAX);
            if gone.len() >= MIN_HELD_DELETIONS && gone.len() * 100 > live * usize::from(limit) {
                // Most of the share vanished at once: an unmounted disk (without its marker
                // gone), a wrong `rm -r`, a broken sync tool. Peers keep their copies until
                // the user confirms.
                warn!(root = %self.root.display(), deletions = gone.len(), of = live, limit,
                    "too many deletions at once: held until `clearskies confirm-deletes`");
                self.report.held_deletions = gone.len();
                return Ok(());
            }
        }
        // Deepest first: peers receive (and revisions order) a directory's contents before
        // the directory, so a peer that applies them in separate batches never finds the
        // directory still full, keeps it, and sends it back as new.
        for path in gone {
            let Some(mut r) = self.store.get(&path)? else { continue };
            if r.deleted {
                continue;
            }
            self.rev += 1;
            r.deleted = true;
            r.vector_clock.increment(self.ctx.me);
            r.last_updated_by = self.ctx.me;
            r.last_updated_rev = self.rev;
            r.update_time = self.ctx.now;
            r.local = None;
            r.local_sha256 = None;
            r.signed = None;
            self.changed.push(r);
            if self.changed.len() >= COMMIT_CHUNK {
                self.flush()?;
            }
        }
        Ok(())
    }
}

/// Scans `scope` of `root` into `store`. Returns what changed; nothing is written if
/// nothing changed. Memory stays proportional to the widest directory, not to the share:
/// the tree is walked one directory at a time, compared with the index's entries for that
/// directory, and committed in chunks (deletions last, after the root was checked again).
///
/// Records that wait for a peer's version (`pending`, or contents not yet fetched) are not
/// local changes: the file still on disk is the old version, and a missing file is one that
/// has not arrived. A file edited while a peer's version is on its way is moved aside as a
/// conflict copy (and indexed under that name), so neither version is lost.
pub fn scan(
    root: &Path,
    store: &ShareStore,
    ctx: &mut ScanContext<'_>,
    scope: &Scope,
) -> Result<ScanReport, ScanError> {
    if !root_is_present(root) {
        return Err(ScanError::RootMissing(root.to_owned()));
    }
    let rev = store.revision()?;
    let dirs = Root::open(root).map_err(|_| ScanError::RootMissing(root.to_owned()))?;
    let mut s = Scanner {
        root,
        dirs,
        store,
        ctx,
        report: ScanReport::default(),
        rev,
        changed: Vec::new(),
        restat: Vec::new(),
        gone: Vec::new(),
        listed: HashSet::new(),
    };
    let mut stack: Vec<(PathBuf, SharePath, bool)> = Vec::new();
    match scope {
        Scope::Full => {
            let meta = fs::symlink_metadata(root).map_err(|source| ScanError::Io { path: root.to_owned(), source })?;
            let meta = Meta::from_std(&meta);
            let old = store.get(&SharePath::root())?;
            let found = Found { path: SharePath::root(), fs_path: root.to_owned(), at: None, meta };
            s.entry(found, old, &mut HashSet::new())?;
            stack.push((root.to_owned(), SharePath::root(), true));
        }
        Scope::Dirs(dirs) => {
            for (dir, recursive) in dirs.iter().rev() {
                if let Some(key) = share_path_of(root, dir) {
                    stack.push((dir.clone(), key, *recursive));
                }
            }
        }
    }
    while let Some((dir, key, recursive)) = stack.pop() {
        if !s.listed.insert(key.clone()) {
            continue;
        }
        s.visit(&dir, &key, recursive, &mut stack)?;
        if s.changed.len() + s.restat.len() >= COMMIT_CHUNK {
            s.flush()?;
        }
    }
    // Check the root again: if it vanished during the walk, what we missed is not a deletion.
    if !root_is_present(root) {
        return Err(ScanError::RootMissing(root.to_owned()));
    }
    s.deletions()?;
    s.flush()?;
    Ok(s.report)
}

fn depth(p: &SharePath) -> usize {
    p.as_str().split('/').filter(|s| !s.is_empty()).count()
}

/// Moves a locally edited file aside to a conflict name and returns its new record (written
/// by us). `None` if the move failed (the file stays; the next scan tries again).
fn set_aside(
    dir: &DirFd,
    path: &SharePath,
    sha256: Option<Sha256Hash>,
    size: Option<u64>,
    mode: u32,
    rev: &mut u64,
    ctx: &mut ScanContext<'_>,
) -> Option<Record> {
    let uuid = (ctx.new_uuid)();
    let copy = crate::fsops::conflict_path(path, &uuid.0)?;
    // In the directory it was listed in, by handle: never through a symlink swapped in.
    if let Err(e) = dir.rename(path.file_name(), dir, copy.file_name()) {
        warn!(path = %path, error = %e, "cannot move a conflicting edit aside");
        return None;
    }
    warn!(path = %path, copy = %copy, "edited while a peer's version was arriving; kept as a conflict copy");
    let meta = dir.stat(copy.file_name()).ok()??;
    *rev += 1;
    let mut vector_clock = clearskies_protocol::vclock::VectorClock::new();
    vector_clock.increment(ctx.me);
    let mut extra = std::collections::BTreeMap::new();
    extra.insert("conflict_source".to_owned(), serde_json::Value::from(path.as_str()));
    Some(Record {
        path: copy,
        uuid,
        kind: EntryKind::File,
        size,
        sha256,
        mtime: mtime_of(&meta),
        unix_mode: Some(mode),
        deleted: false,
        last_updated_by: ctx.me,
        last_updated_rev: *rev,
        update_time: ctx.now,
        vector_clock,
        extra,
        local: Some(meta.stat),
        local_sha256: sha256,
        pending: false,
        signed: None,
        sealed: None,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    struct Fixture {
        _db: tempfile::TempDir,
        root: tempfile::TempDir,
        store: ShareStore,
        counter: u8,
        delete_limit: Option<u8>,
        scope: Scope,
    }

    impl Fixture {
        fn new() -> Self {
            let (db, root, store) = crate::test_share();
            Fixture { _db: db, root, store, counter: 0, delete_limit: None, scope: Scope::Full }
        }

        fn scan(&mut self) -> Result<ScanReport, ScanError> {
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
                read_only: false,
                delete_limit: self.delete_limit,
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
        for i in 0..20 {
            fs::write(r.join(format!("f{i}")), b"x").unwrap();
        }
        f.scan().unwrap();
        // 9 of 21 entries (the root counts): under the limit, recorded.
        for i in 0..9 {
            fs::remove_file(r.join(format!("f{i}"))).unwrap();
        }
        let report = f.scan().unwrap();
        assert_eq!((report.changed, report.held_deletions), (9, 0));
        // 10 more of the 12 left: held, nothing recorded, every time, until confirmed.
        for i in 9..19 {
            fs::remove_file(r.join(format!("f{i}"))).unwrap();
        }
        for _ in 0..2 {
            let report = f.scan().unwrap();
            assert_eq!((report.changed, report.held_deletions), (0, 10));
            assert!(!f.get("/f10").deleted);
        }
        // Edits still go through while deletions are held.
        fs::write(r.join("f19"), b"edited").unwrap();
        assert_eq!(f.scan().unwrap().changed, 1);
        f.delete_limit = None;
        let report = f.scan().unwrap();
        assert_eq!((report.changed, report.held_deletions), (10, 0));
        assert!(f.get("/f10").deleted);
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
        Scope::Dirs(list.iter().map(|(d, r)| (f.root.path().join(d), *r)).collect())
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
    fn scopes_merge_and_too_many_directories_become_a_full_scan() {
        let mut s = Scope::default();
        assert!(s.is_empty());
        s.add(PathBuf::from("/x/a"), false);
        s.merge(Scope::Dirs([(PathBuf::from("/x/a"), true), (PathBuf::from("/x/b"), false)].into_iter().collect()));
        assert_eq!(
            s,
            Scope::Dirs([(PathBuf::from("/x/a"), true), (PathBuf::from("/x/b"), false)].into_iter().collect())
        );
        for i in 0..MAX_DIRTY_DIRS {
            s.add(PathBuf::from(format!("/x/{i}")), false);
        }
        assert_eq!(s, Scope::Full);
        s.add(PathBuf::from("/y"), false);
        assert_eq!(s, Scope::Full);
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
            };
            for (n, mut meta) in listed {
                meta.stat.mtime_ns += 1; // as if edited: not the indexed version
                let path = SharePath::parse(&format!("/{n}")).unwrap();
                let old = f.store.get(&path).unwrap();
                let found = Found { path, fs_path: r.join(n), at: Some((dirs.root_dir().clone(), n.to_owned())), meta };
                s.entry(found, old, &mut HashSet::new()).unwrap();
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
}
