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

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clearskies_protocol::path::{is_meta_dir, is_part_name, SharePath, META_DIR};
use clearskies_protocol::time::Timestamp;
use clearskies_protocol::{PeerId, RecordUuid, Sha256Hash};
use tracing::warn;

use crate::beneath::{self, DirFd, Meta, Root};
use crate::record::{EntryKind, LocalStat, Record};
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
    /// [`ScanContext::delete_limit`]): waiting for the user's confirmation. Deepest first.
    pub held_deletions: Vec<SharePath>,
    /// Deletions over the limit were recorded because the user had confirmed them: the
    /// confirmation is used up.
    pub used_confirmation: bool,
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
    /// no limit (turned off).
    pub delete_limit: Option<u8>,
    /// The held deletions the user confirmed: deletions found at once that are all among
    /// them are recorded whatever the limit ([`ScanReport::used_confirmation`]); any other
    /// (a file vanished since the confirmation) holds them all again, for a new one.
    pub confirmed_deletions: Option<&'a std::collections::HashSet<SharePath>>,
    /// This daemon's name, in the conflict copies a scan makes (empty: the start of `me`).
    pub device: &'a str,
    /// Called each time the scan has committed new records of ours, so that they can be
    /// announced before it ends (see [`FLUSH_EVERY`]).
    pub committed: Option<&'a mut dyn FnMut()>,
    /// Threads that hash a directory's changed files (0: one per core, at most 4).
    pub hashers: usize,
}

/// Records waiting to be committed (and so announced) are committed once [`FLUSH_BYTES`]
/// were hashed for them, but not sooner than this after the last commit: a large file is
/// served as soon as it is hashed, not when the whole scan is done. (Every commit is an
/// fsync: at most 20 a second, and only while large files are being hashed.)
pub const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(50);
/// Bytes hashed that make waiting records due (see [`FLUSH_EVERY`]).
pub const FLUSH_BYTES: u64 = 32 << 20;
/// Longest that records found by a scan wait to be committed, however few bytes were
/// hashed for them (beside the 4 096 records of a chunk).
pub const FLUSH_AT_MOST: std::time::Duration = std::time::Duration::from_secs(1);

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

/// What is known of `f`'s contents without reading it: nothing for a directory, the hash
/// in its record `old` if its stat is unchanged; `None`: it must be hashed.
fn known_contents(f: &Found, old: Option<&Record>) -> Option<Contents> {
    if f.kind() == EntryKind::Directory {
        return Some((None, None));
    }
    let stat = f.meta.stat;
    let known = old.and_then(|o| (o.local == Some(stat)).then_some(o.local_sha256).flatten())?;
    Some((Some(known), Some(stat.size)))
}

/// The directories still to list: where, which share path, and whether everything below
/// too.
type Stack = Vec<(PathBuf, SharePath, bool)>;

/// A directory's entries that are UTF-8 names, with their types.
type Entries = Vec<(String, rustix::fs::FileType)>;

/// The share path of `name` in directory `key`.
fn child_path(key: &SharePath, name: &str) -> Result<SharePath, clearskies_protocol::path::PathError> {
    SharePath::parse(&format!("{}/{name}", if key.is_root() { "" } else { key.as_str() }))
}

struct Found {
    path: SharePath,
    fs_path: PathBuf,
    /// The directory it was listed in, and its name there (`None` for the root).
    at: Option<(DirFd, String)>,
    meta: Meta,
}

impl Found {
    fn kind(&self) -> EntryKind {
        if self.meta.is_dir() {
            EntryKind::Directory
        } else {
            EntryKind::File
        }
    }
}

/// A file's SHA-256 and size (none for a directory).
type Contents = (Option<Sha256Hash>, Option<u64>);

/// Records written per index commit: a scan of a million files never holds more than this
/// many changes in memory.
const COMMIT_CHUNK: usize = 4096;

/// Entries of one directory whose records are read, and changed files hashed, together:
/// memory stays bounded in a directory of a million files.
const HASH_WINDOW: usize = 256;

/// The share path of `fs_path` below `root` (`None` if it is outside, our metadata, or not
/// a syncable name).
fn share_path_of(root: &Path, fs_path: &Path) -> Option<SharePath> {
    let rel = fs_path.strip_prefix(root).ok()?;
    let segments: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    SharePath::from_segments(segments?).ok()
}

/// `opened` (directory `dir`, share path `key`), or `None` if the directory is gone since it
/// was reported (missing, not a directory, a symlink now): then its parent goes onto
/// `stack`, whose listing shows what is left.
fn gone_to_parent<T>(
    opened: io::Result<T>,
    dir: &Path,
    key: &SharePath,
    stack: &mut Stack,
) -> Result<Option<T>, ScanError> {
    match opened {
        Ok(x) => Ok(Some(x)),
        Err(e)
            if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
                || beneath::is_refused(&e) =>
        {
            if let (Some(parent), Some(parent_dir)) = (key.parent(), dir.parent()) {
                stack.push((parent_dir.to_owned(), parent, false));
            }
            Ok(None)
        }
        Err(e) => Err(ScanError::Io { path: dir.to_owned(), source: e }),
    }
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
    /// Threads that hash a directory's files.
    hashers: usize,
    /// When records were last committed (or the scan began).
    flushed_at: std::time::Instant,
    /// Bytes hashed since then.
    hashed_unflushed: u64,
}

impl Scanner<'_, '_, '_> {
    /// Commits what is waiting (a read-only share records only local state).
    fn flush(&mut self) -> Result<(), ScanError> {
        self.flushed_at = std::time::Instant::now();
        self.hashed_unflushed = 0;
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
        if !changed.is_empty() {
            if let Some(committed) = self.ctx.committed.as_mut() {
                committed();
            }
        }
        Ok(())
    }

    /// Commits new records if they are due (see [`FLUSH_EVERY`]).
    fn flush_if_due(&mut self) -> Result<(), ScanError> {
        if self.changed.is_empty() {
            return Ok(());
        }
        let waited = self.flushed_at.elapsed();
        if waited >= FLUSH_AT_MOST || (self.hashed_unflushed >= FLUSH_BYTES && waited >= FLUSH_EVERY) {
            self.flush()?;
        }
        Ok(())
    }

    /// Lists directory `dir` (share path `key`): indexes what is in it, notes what is gone
    /// from it, and pushes the directories to walk next onto `stack`.
    fn visit(&mut self, dir: &Path, key: &SharePath, recursive: bool, stack: &mut Stack) -> Result<(), ScanError> {
        let Some((entries, handle)) = self.list(dir, key, stack)? else { return Ok(()) };
        let (found, mut names) = self.found(dir, key, &handle, entries)?;
        let mut found = found.into_iter().peekable();
        while found.peek().is_some() {
            let window: Vec<Found> = found.by_ref().take(HASH_WINDOW).collect();
            self.visit_window(window, recursive, stack, &mut names)?;
        }
        self.vanished_from(key, &names)
    }

    /// Indexes some entries of one directory (their records read, the changed files hashed
    /// on several threads while the entries are taken in order).
    fn visit_window(
        &mut self,
        found: Vec<Found>,
        recursive: bool,
        stack: &mut Stack,
        names: &mut HashSet<String>,
    ) -> Result<(), ScanError> {
        let olds = found.iter().map(|f| self.store.get(&f.path)).collect::<Result<Vec<_>, _>>()?;
        let jobs: Vec<Option<hash::Job>> = found
            .iter()
            .zip(&olds)
            .map(|(f, old)| if known_contents(f, old.as_ref()).is_none() { f.at.clone() } else { None })
            .collect();
        let mut entries: Vec<_> = found.into_iter().zip(olds).map(Some).collect();
        hash::in_order(&jobs, self.hashers, |i, hashed| {
            let Some((f, old)) = entries.get_mut(i).and_then(Option::take) else { return Ok(()) };
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
            self.entry(f, old, hashed, names)?;
            self.flush_if_due()
        })
    }

    /// The entries of directory `dir` (share path `key`) and its handle; `None` if it is
    /// gone (its parent goes onto `stack`: its listing shows what is left).
    fn list(&self, dir: &Path, key: &SharePath, stack: &mut Stack) -> Result<Option<(Entries, DirFd)>, ScanError> {
        // Listed through a handle opened below the root without following any symlink: a
        // directory swapped for a symlink since it was found is not listed (its parent's
        // listing shows a symlink, which is not synced).
        let opened = self.dirs.dir(key.relative()).and_then(|d| Ok((d.list()?, d)));
        let Some(((entries, not_utf8), handle)) = gone_to_parent(opened, dir, key, stack)? else {
            return Ok(None);
        };
        for name in not_utf8 {
            warn!(path = %dir.join(name).display(), "skipping a name that is not UTF-8");
        }
        Ok(Some((entries, handle)))
    }

    /// Of the `entries` listed in `dir` (share path `key`, opened as `handle`), what is to be
    /// indexed, and the names of those.
    fn found(
        &self,
        dir: &Path,
        key: &SharePath,
        handle: &DirFd,
        entries: Entries,
    ) -> Result<(Vec<Found>, HashSet<String>), ScanError> {
        let mut names: HashSet<String> = HashSet::new();
        let mut found = Vec::new();
        for (name, _) in entries {
            // Our own names, case-insensitively (a share on vfat, exFAT, SMB or casefolded
            // ext4 has `.clearskies` under any case).
            if (key.is_root() && is_meta_dir(&name)) || is_part_name(&name) {
                continue;
            }
            let child = match child_path(key, &name) {
                Ok(p) => p,
                Err(e) => {
                    warn!(path = %dir.join(&name).display(), error = %e, "skipping an unsyncable name");
                    continue;
                }
            };
            let meta = match handle.stat(&name) {
                Ok(Some(m)) => m,
                Ok(None) => continue,
                Err(e) => return Err(ScanError::Io { path: dir.join(&name), source: e }),
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
        Ok((found, names))
    }

    /// What the index has in directory `key` that its listing (`names`) does not: gone.
    fn vanished_from(&mut self, key: &SharePath, names: &HashSet<String>) -> Result<(), ScanError> {
        let mut vanished = Vec::new();
        self.store.children(key, |name, rec| {
            if !names.contains(name) {
                vanished.push((name.to_owned(), rec));
            }
            Ok(())
        })?;
        for (name, rec) in vanished {
            let Ok(path) = child_path(key, &name) else {
                continue;
            };
            self.vanished_name(&path, rec)?;
        }
        Ok(())
    }

    /// Nothing syncable is at `path` any more: its record `rec` is gone, and (a directory,
    /// or a name with records below it only) everything the index holds below it.
    fn vanished_name(&mut self, path: &SharePath, rec: Option<Record>) -> Result<(), ScanError> {
        let is_dir = rec.as_ref().is_none_or(|r| r.kind == EntryKind::Directory);
        if is_dir && self.ctx.filter.is_some_and(|f| f.ignores(path, true)) {
            return Ok(()); // ignored here, and everything inside: never a local deletion
        }
        if is_dir {
            self.vanish_below(path)?;
        }
        if let Some(r) = rec {
            self.vanished(r);
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

    /// One entry found on disk, against its record `old`; `hashed`: its contents, if they
    /// were hashed already.
    fn entry(
        &mut self,
        f: Found,
        old: Option<Record>,
        hashed: Option<hash::Hashed>,
        names: &mut HashSet<String>,
    ) -> Result<(), ScanError> {
        self.report.entries += 1;
        let Some(contents) = self.contents(&f, old.as_ref(), hashed) else { return Ok(()) };
        if let Some(o) = &old {
            if self.against_awaited(&f, o, contents, names) {
                return Ok(());
            }
        }
        self.against_live(f, old, contents);
        Ok(())
    }

    /// The SHA-256 and size of the file `f` (none for a directory): the hash in its record
    /// `old` if its stat is unchanged, else `hashed` (hashed now if not given). `None` if it
    /// vanished or cannot be read mid-scan: its record is left as it is.
    fn contents(&mut self, f: &Found, old: Option<&Record>, hashed: Option<hash::Hashed>) -> Option<Contents> {
        if let Some(known) = known_contents(f, old) {
            return Some(known);
        }
        let hashed = hashed.unwrap_or_else(|| {
            f.at.as_ref().map_or_else(
                || Err(io::Error::other("the root is no file")),
                |(dir, name)| dir.open_file(name, false).and_then(hash::hash_open),
            )
        });
        match hashed {
            Ok((h, n)) => {
                self.report.hashed_files += 1;
                self.report.hashed_bytes += n;
                self.hashed_unflushed += n;
                Some((Some(h), Some(n)))
            }
            Err(e) => {
                warn!(path = %f.fs_path.display(), error = %e, "cannot read; skipped this scan");
                None
            }
        }
    }

    /// `f` against its record `o` while that waits for a peer's version: whether that
    /// settles it (the old version still here, the peer's version in place, or an edit made
    /// meanwhile, kept as a conflict copy).
    fn against_awaited(&mut self, f: &Found, o: &Record, contents: Contents, names: &mut HashSet<String>) -> bool {
        let (kind, stat, (sha256, size)) = (f.kind(), f.meta.stat, contents);
        if o.pending && o.local == Some(stat) {
            // The old version, waiting for a peer's change to be applied.
            return true;
        }
        if o.kind != kind || o.deleted || !(o.pending || o.wants_content()) {
            return false;
        }
        if o.sha256 == sha256 {
            // The peer's version is in place.
            self.restat_as(o, stat, sha256);
            return true;
        }
        if kind != EntryKind::File {
            return false;
        }
        // Edited while a peer's version is on its way: keep the edit as a conflict copy; the
        // peer's version takes the name when it arrives.
        let mut r = o.clone();
        r.local = None;
        r.local_sha256 = None;
        let Some((dir, _)) = &f.at else { return true };
        if let Some(copy) = aside::set_aside(dir, &f.path, (sha256, size), &f.meta, &mut self.rev, self.ctx) {
            names.insert(copy.path.file_name().to_owned());
            self.changed.push(copy);
            self.restat.push(r);
        }
        true
    }

    /// Remembers that `o` is on disk, in place (`stat`, `sha256`), without announcing anything.
    fn restat_as(&mut self, o: &Record, stat: LocalStat, sha256: Option<Sha256Hash>) {
        let mut r = o.clone();
        r.local = Some(stat);
        r.local_sha256 = sha256;
        r.pending = false;
        self.restat.push(r);
    }

    /// `f` against its live record, if any: the same contents only update the local stat;
    /// anything else is a new version, by us.
    fn against_live(&mut self, f: Found, old: Option<Record>, (sha256, size): Contents) {
        let (kind, stat, mode) = (f.kind(), f.meta.stat, f.meta.mode);
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
                    self.restat_as(o, stat, sha256);
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
    }

    /// Records the deletions found, deepest first, unless they are too many at once.
    fn deletions(&mut self) -> Result<(), ScanError> {
        let mut gone = std::mem::take(&mut self.gone);
        gone.sort_by(|a, b| depth(b).cmp(&depth(a)).then_with(|| a.cmp(b)));
        gone.dedup();
        if let Some(limit) = self.ctx.delete_limit {
            let totals = self.store.totals()?;
            let live = usize::try_from(totals.files + totals.directories).unwrap_or(usize::MAX);
            let over = gone.len() >= MIN_HELD_DELETIONS && gone.len() * 100 > live * usize::from(limit);
            let confirmed = self.ctx.confirmed_deletions.is_some_and(|c| gone.iter().all(|p| c.contains(p)));
            self.report.used_confirmation = over && confirmed;
            if over && !confirmed {
                // Most of the share vanished at once: an unmounted disk (without its marker
                // gone), a wrong `rm -r`, a broken sync tool. Peers keep their copies until
                // the user confirms.
                warn!(root = %self.root.display(), deletions = gone.len(), of = live, limit,
                    "too many deletions at once: held until `clearskies confirm-deletes`");
                self.report.held_deletions = gone;
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
    let hashers = if ctx.hashers == 0 { hash::hashers() } else { ctx.hashers };
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
        hashers,
        flushed_at: std::time::Instant::now(),
        hashed_unflushed: 0,
    };
    let mut stack: Stack = Vec::new();
    match scope {
        Scope::Full => {
            let meta = fs::symlink_metadata(root).map_err(|source| ScanError::Io { path: root.to_owned(), source })?;
            let meta = Meta::from_std(&meta);
            let old = store.get(&SharePath::root())?;
            let found = Found { path: SharePath::root(), fs_path: root.to_owned(), at: None, meta };
            s.entry(found, old, None, &mut HashSet::new())?;
            stack.push((root.to_owned(), SharePath::root(), true));
        }
        Scope::Dirs(dirs) => {
            for (dir, look) in dirs.iter().rev() {
                let Some(key) = share_path_of(root, dir) else { continue };
                match look {
                    Look::Names(names) => {
                        s.look_at_names(dir, &key, names, &mut stack)?;
                        if s.changed.len() + s.restat.len() >= COMMIT_CHUNK {
                            s.flush()?;
                        }
                    }
                    Look::Entries => stack.push((dir.clone(), key, false)),
                    Look::Tree => stack.push((dir.clone(), key, true)),
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

mod aside;
pub(crate) mod hash;
mod names;
mod scope;
pub use hash::hash_file;
pub use scope::{Look, Scope, MAX_DIRTY_DIRS, MAX_NAMES_PER_DIR};

#[cfg(test)]
mod tests;
