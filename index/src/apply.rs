//! Applying peers' records to a share: deciding with vector clocks, resolving conflicts,
//! and carrying the result out on disk. Blocking: runs on the share's worker thread.
//!
//! Two steps, each one synced `WriteBatch`:
//! 1. **Decide.** Each incoming record is compared with ours. An older or equal one is
//!    ignored; a newer one is adopted (marked `pending` when the disk must change); for
//!    concurrent ones the later `update_time` wins (peer ID breaks ties, live beats deleted).
//!    When the loser is our own write, we resolve: our file is moved to
//!    `name.CONFLICT.<time>.<device>.<4 alnum>.ext` (a new record), and we write the winner again with the
//!    merged clock, so every peer converges on one version and one conflict copy.
//! 2. **Execute.** Pending directories, deletions, metadata changes and contents we already
//!    have elsewhere in the share (dedup) are applied; each checks first that the disk still
//!    holds what our record says, so an edit nobody has scanned yet is never overwritten or
//!    deleted. Contents we lack are returned as fetches for the transfer actor.
//!
//! Step 2 is idempotent and runs again at start-up for records a crash left pending.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};

use clearskies_protocol::path::SharePath;
use clearskies_protocol::time::Timestamp;
use clearskies_protocol::vclock::Causality;
use clearskies_protocol::{PeerId, RecordUuid, Sha256Hash};
use tracing::{debug, info, warn};

use crate::beneath::{DirFd, Meta, Root};
use crate::durable;
use crate::fsops::{self, Located};
use crate::record::{EntryKind, Record};
use crate::scan::root_is_present;
use crate::store::{ShareStore, StoreError};
use crate::versions;

/// Contents to fetch from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// The contents.
    pub sha256: Sha256Hash,
    /// Their size.
    pub size: u64,
    /// One path that waits for them (where the temp file goes).
    pub path: SharePath,
    /// Mode to give the file.
    pub unix_mode: Option<u32>,
    /// Mtime to give the file.
    pub mtime: Option<Timestamp>,
}

/// A finished download to install.
#[derive(Debug)]
pub struct Download {
    /// The contents.
    pub sha256: Sha256Hash,
    /// Its verified temp file.
    pub temp: PathBuf,
    /// Left unsynced by its writer: the install makes it durable before renaming it.
    pub unsynced: Option<durable::Unsynced>,
}

/// What applying a batch did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Records to tell peers about: adopted ones with the connection they came from (not
    /// echoed back to it), our own new writes with `None` (sent to everyone).
    pub announce: Vec<(Option<u64>, Record)>,
    /// Contents to fetch.
    pub fetch: Vec<Fetch>,
    /// Incoming records that were older than or equal to ours.
    pub ignored: usize,
    /// Conflicts resolved by keeping a conflict copy.
    pub conflicts: usize,
}

/// The share a batch is applied to.
pub struct Applier<'a> {
    root: &'a Path,
    store: &'a ShareStore,
    me: PeerId,
    now: Timestamp,
    new_uuid: &'a mut dyn FnMut() -> RecordUuid,
    /// The root's handle, opened at the first disk operation of this applier (one batch):
    /// every path below it is resolved through it, never following a symlink.
    dirs: Option<Root>,
    /// Directories (relative to the root) with renames or unlinks not yet fsynced; synced
    /// before the index says so.
    dirty: BTreeSet<String>,
    /// Records whose disk work failed (left pending, to retry).
    pub failures: usize,
    /// Selective sync: paths left alone.
    filter: Option<&'a crate::filter::Filter>,
    /// Where our renames into place are told to the watcher.
    own_renames: Option<&'a crate::own_renames::OwnRenames>,
    /// Files that peers' changes replace or delete are kept in the versions.
    versions: bool,
    /// Bytes kept in the versions by this applier.
    pub kept_bytes: u64,
    /// This daemon's name, in the conflict copies it makes.
    device: &'a str,
}

impl std::fmt::Debug for Applier<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier").field("root", &self.root).finish_non_exhaustive()
    }
}

/// The marker of a conflict copy `me` makes at `now` as `device` (empty: the start of
/// `me`), random characters from `uuid`.
pub fn conflict_marker(now: Timestamp, device: &str, me: &PeerId, uuid: &RecordUuid) -> String {
    let id;
    let device = if device.is_empty() {
        id = hex::encode(&me.0[..4]);
        &id
    } else {
        device
    };
    fsops::conflict_marker(now, device, &uuid.0)
}

/// Which of two concurrent records wins: live beats deleted, then the later `update_time`,
/// then the greater writer ID. Every peer computes the same answer.
pub fn incoming_wins(ours: &Record, theirs: &Record) -> bool {
    if ours.deleted != theirs.deleted {
        return ours.deleted;
    }
    (theirs.update_time, theirs.last_updated_by) > (ours.update_time, ours.last_updated_by)
}

/// Whether the regular file `name` in `dir` (stat `m`) holds exactly the contents of file
/// record `r` (read and hashed only when the sizes match).
fn holds_the_version(r: &Record, dir: &DirFd, name: &str, m: &Meta) -> bool {
    let (Some(sha), Some(size)) = (r.sha256, r.size) else { return false };
    if r.kind != EntryKind::File || !m.is_file() || m.stat.size != size {
        return false;
    }
    let hashed = dir.open_file(name, false).and_then(crate::scan::hash::hash_open);
    hashed.is_ok_and(|(found, len)| found == sha && len == size)
}

/// What the disk needs for `new` to replace `old` (which describes what is on disk).
fn adopt(new: &Record, old: Option<&Record>) -> Record {
    let mut r = new.clone();
    r.local = old.and_then(|o| o.local);
    r.local_sha256 = old.and_then(|o| o.local_sha256);
    r.pending = match (r.kind, r.deleted) {
        _ if r.path.is_root() => false,
        (_, true) => r.local.is_some(),
        (EntryKind::Directory, false) => {
            !old.is_some_and(|o| o.kind == EntryKind::Directory && o.local.is_some() && o.unix_mode == r.unix_mode)
        }
        (EntryKind::File, false) => {
            let same = old.is_some_and(|o| {
                o.kind == EntryKind::File
                    && o.local.is_some()
                    && o.local_sha256 == r.sha256
                    && o.unix_mode == r.unix_mode
                    && o.mtime == r.mtime
            });
            !same
        }
    };
    r
}

impl<'a> Applier<'a> {
    /// Applies to the share at `root` indexed in `store`, where we are `me`; our own writes
    /// are stamped `now`; `new_uuid` makes record UUIDs (and conflict name tags).
    pub fn new(
        root: &'a Path,
        store: &'a ShareStore,
        me: PeerId,
        now: Timestamp,
        new_uuid: &'a mut dyn FnMut() -> RecordUuid,
    ) -> Self {
        Applier {
            root,
            store,
            me,
            now,
            new_uuid,
            dirs: None,
            dirty: BTreeSet::new(),
            failures: 0,
            filter: None,
            own_renames: None,
            versions: false,
            kept_bytes: 0,
            device: "",
        }
    }

    /// Tells `own` of every download about to be renamed into place, so that the watcher
    /// can skip the event the rename causes ([`crate::own_renames`]).
    pub fn with_own_renames(mut self, own: &'a crate::own_renames::OwnRenames) -> Self {
        self.own_renames = Some(own);
        self
    }

    /// Names this daemon `device` in the conflict copies it makes (empty: the start of
    /// our peer ID).
    pub fn with_device(mut self, device: &'a str) -> Self {
        self.device = device;
        self
    }

    /// Keeps a file that a peer's change replaces or deletes in the share's versions
    /// ([`crate::versions`]).
    pub fn with_versions(mut self, on: bool) -> Self {
        self.versions = on;
        self
    }

    /// Before `r`'s change replaces (`Replaced`) or deletes (`Deleted`) the file `name` in
    /// `dir`, keeps it as a version if versioning is on. Whether the file is still at
    /// `name` (a deleted one that was kept has been moved away: nothing left to unlink).
    fn keep_version(&mut self, r: &Record, dir: &DirFd, name: &str, why: versions::Why) -> io::Result<bool> {
        if !self.versions {
            return Ok(true);
        }
        let dirs = self.dirs()?;
        let k = versions::Keep { path: &r.path, by: Some(r.last_updated_by), why, now: self.now };
        match versions::keep(&dirs, dir, name, k) {
            Ok((still_there, kept)) => {
                self.kept_bytes += kept.map_or(0, |v| v.size);
                Ok(still_there)
            }
            Err(e) => {
                // A version that cannot be kept (say the disk is full) never blocks the change.
                warn!(path = %r.path, error = %e, "cannot keep a version of this file");
                Ok(true)
            }
        }
    }

    /// Leaves the paths `filter` ignores alone: their records stay pending, nothing of them
    /// is created, fetched or deleted here (selective sync).
    pub fn with_filter(mut self, filter: &'a crate::filter::Filter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Makes the directory changes so far durable, then writes `records` (and a new revision).
    fn commit(&mut self, records: &[Record], revision: Option<u64>) -> Result<(), StoreError> {
        for dir in std::mem::take(&mut self.dirty) {
            if let Err(e) = self.dirs().and_then(|d| d.dir(&dir)?.sync()) {
                warn!(dir = %self.root.join(&dir).display(), error = %e, "cannot fsync a directory");
            }
        }
        self.store.commit(records, revision)
    }

    /// The root's handle (opened once per applier).
    fn dirs(&mut self) -> io::Result<Root> {
        if let Some(d) = &self.dirs {
            return Ok(d.clone());
        }
        let d = Root::open(self.root)?;
        self.dirs = Some(d.clone());
        Ok(d)
    }

    /// `path`'s directory changed (an entry renamed, created or removed in it).
    fn touched(&mut self, path: &SharePath) {
        if let Some(parent) = path.parent() {
            self.dirty.insert(parent.relative().to_owned());
        }
    }

    fn next_rev(&self, rev: &mut u64) -> u64 {
        *rev += 1;
        *rev
    }

    /// Applies peers' records (with the connection each came from).
    pub fn receive(&mut self, incoming: Vec<(u64, Record)>) -> Result<Outcome, StoreError> {
        let mut out = Outcome::default();
        let mut rev = self.store.revision()?;
        let start_rev = rev;
        let mut decided: HashMap<SharePath, Record> = HashMap::new();
        let mut order: Vec<SharePath> = Vec::new();
        for (conn, theirs) in incoming {
            let ours = match decided.get(&theirs.path) {
                Some(r) => Some(r.clone()),
                None => self.store.get(&theirs.path)?,
            };
            let new = match &ours {
                None => Some(adopt(&theirs, None)),
                Some(o) if o.same_write(&theirs) => None,
                Some(o) => match theirs.vector_clock.compare(&o.vector_clock) {
                    Causality::After => Some(adopt(&theirs, Some(o))),
                    Causality::Before => None,
                    Causality::Equal | Causality::Concurrent => {
                        if !incoming_wins(o, &theirs) {
                            debug!(path = %theirs.path, "concurrent change lost to ours; the writer resolves it");
                            None
                        } else if o.last_updated_by != self.me {
                            Some(adopt(&theirs, Some(o)))
                        } else {
                            // Our write lost: we resolve, for everyone.
                            let (winner, copy) = self.resolve(o, &theirs, &mut rev);
                            if let Some(copy) = copy {
                                out.conflicts += 1;
                                order.push(copy.path.clone());
                                out.announce.push((None, copy.clone()));
                                decided.insert(copy.path.clone(), copy);
                            }
                            out.announce.push((None, winner.clone()));
                            order.push(winner.path.clone());
                            decided.insert(winner.path.clone(), winner);
                            continue;
                        }
                    }
                },
            };
            match new {
                Some(r) => {
                    out.announce.push((Some(conn), r.clone()));
                    order.push(r.path.clone());
                    decided.insert(r.path.clone(), r);
                }
                None => out.ignored += 1,
            }
        }
        if decided.is_empty() {
            return Ok(out);
        }
        let mut records: Vec<Record> = Vec::with_capacity(decided.len());
        order.dedup();
        for p in order {
            if let Some(r) = decided.remove(&p) {
                records.push(r);
            }
        }
        // Announced records are the versions as decided (the last one per path).
        let last: HashMap<&SharePath, (u64, PeerId)> =
            records.iter().map(|r| (&r.path, (r.last_updated_rev, r.last_updated_by))).collect();
        out.announce.retain(|(_, r)| last.get(&r.path) == Some(&(r.last_updated_rev, r.last_updated_by)));
        self.commit(&records, (rev > start_rev).then_some(rev))?;
        let pending: Vec<Record> = records.into_iter().filter(|r| r.pending).collect();
        out.fetch = self.execute(pending)?;
        Ok(out)
    }

    /// Our write `ours` lost to the concurrent `theirs`. Keeps our file as a conflict copy
    /// when the contents differ, and returns the winner rewritten by us (merged clock) and
    /// the copy's record.
    fn resolve(&mut self, ours: &Record, theirs: &Record, rev: &mut u64) -> (Record, Option<Record>) {
        let mut base = ours.clone();
        let mut copy = None;
        let differs = ours.kind == EntryKind::File
            && !ours.deleted
            && ours.installed_file()
            && (theirs.deleted || theirs.kind != EntryKind::File || theirs.sha256 != ours.sha256);
        if differs {
            match self.set_aside(ours, rev) {
                Some(c) => {
                    info!(path = %ours.path, copy = %c.path, "concurrent edits: ours kept as a conflict copy");
                    copy = Some(c);
                }
                None => {
                    info!(path = %ours.path, "concurrent edits: ours is not set aside now; it never gets overwritten");
                }
            }
            // Either way the winner never replaces our file as a known one: if no copy was
            // made, the file is an unknown one in the way, moved aside before the winner is
            // installed (or by the next scan).
            base.local = None;
            base.local_sha256 = None;
        }
        let mut winner = adopt(theirs, Some(&base));
        winner.vector_clock.merge(&ours.vector_clock);
        winner.vector_clock.increment(self.me);
        winner.last_updated_by = self.me;
        winner.last_updated_rev = self.next_rev(rev);
        (winner, copy)
    }

    /// Moves our file for `ours` to a conflict name; its record, written by us.
    fn set_aside(&mut self, ours: &Record, rev: &mut u64) -> Option<Record> {
        if !root_is_present(self.root) {
            return None;
        }
        let dirs = self.dirs().ok()?;
        let dir = fsops::existing_parent(&dirs, &ours.path).ok()??;
        let m = dir.stat(ours.path.file_name()).ok()??;
        if !m.is_file() || ours.local != Some(m.stat) {
            return None;
        }
        let (now, device, me) = (self.now, self.device, self.me);
        let new_uuid = &mut self.new_uuid;
        let marker = || conflict_marker(now, device, &me, &new_uuid());
        let copy_path = match fsops::move_aside(&dir, &ours.path, marker) {
            Ok(p) => p,
            Err(e) => {
                warn!(path = %ours.path, error = %e, "cannot keep a conflict copy; our version is kept in place");
                return None;
            }
        };
        self.touched(&copy_path);
        let uuid = (self.new_uuid)();
        let m = dir.stat(copy_path.file_name()).ok()??;
        let mut vector_clock = clearskies_protocol::vclock::VectorClock::new();
        vector_clock.increment(self.me);
        let mut extra = ours.extra.clone();
        extra.insert("conflict_source".to_owned(), serde_json::Value::from(ours.path.as_str()));
        Some(Record {
            path: copy_path,
            uuid,
            vector_clock,
            extra,
            last_updated_by: self.me,
            last_updated_rev: self.next_rev(rev),
            update_time: self.now,
            local: Some(m.stat),
            pending: false,
            ..ours.clone()
        })
    }

    /// Carries out pending records on disk (see the module documentation); returns the
    /// contents that must come from a peer.
    pub fn execute(&mut self, mut pending: Vec<Record>) -> Result<Vec<Fetch>, StoreError> {
        if let Some(f) = self.filter {
            pending.retain(|r| !f.ignores(&r.path, r.kind == EntryKind::Directory));
        }
        let mut fetch = Vec::new();
        if pending.is_empty() {
            return Ok(fetch);
        }
        if !root_is_present(self.root) {
            warn!(root = %self.root.display(), "share root missing: peers' changes wait until it is back");
            return Ok(fetch);
        }
        // Creations in path order (parents first), then file deletions, then directory
        // deletions deepest first (their files are gone by then).
        pending.sort_by(|a, b| {
            let rank = |r: &Record| match (r.deleted, r.kind) {
                (false, _) => 0,
                (true, EntryKind::File) => 1,
                (true, EntryKind::Directory) => 2,
            };
            rank(a).cmp(&rank(b)).then_with(|| {
                if rank(a) == 2 {
                    b.path.as_str().len().cmp(&a.path.as_str().len())
                } else {
                    a.path.as_str().cmp(b.path.as_str())
                }
            })
        });
        let mut done = Vec::new();
        for r in pending {
            match self.execute_one(&r) {
                Ok(Step::Done(new)) => done.push(*new),
                Ok(Step::Fetch) => {
                    if let (Some(sha256), Some(size)) = (r.sha256, r.size) {
                        fetch.push(Fetch {
                            sha256,
                            size,
                            path: r.path.clone(),
                            unix_mode: r.unix_mode,
                            mtime: r.mtime,
                        });
                    }
                }
                Err(e) => {
                    self.failures += 1;
                    warn!(path = %r.path, error = %e, "cannot apply a peer's change; will retry");
                }
            }
        }
        if !done.is_empty() {
            self.commit(&done, None)?;
        }
        Ok(fetch)
    }

    fn execute_one(&mut self, r: &Record) -> io::Result<Step> {
        let mut done = r.clone();
        done.pending = false;
        if r.path.is_root() {
            return Ok(Step::Done(Box::new(done)));
        }
        let dirs = self.dirs()?;
        let name = r.path.file_name();
        if r.deleted {
            done.local = None;
            done.local_sha256 = None;
            // Never create directories just to find nothing to delete.
            let Some(dir) = fsops::existing_parent(&dirs, &r.path)? else { return Ok(Step::Done(Box::new(done))) };
            let Some(m) = dir.stat(name)? else { return Ok(Step::Done(Box::new(done))) };
            if r.local != Some(m.stat) && !m.is_dir() {
                // Changed since we looked: the edit beats the deletion (the next scan
                // announces it).
                info!(path = %r.path, "not deleting a file that changed locally");
                done.local = r.local;
                done.local_sha256 = r.local_sha256;
                return Ok(Step::Done(Box::new(done)));
            }
            let res = if m.is_dir() {
                dir.rmdir(name)
            } else if self.keep_version(r, &dir, name, versions::Why::Deleted)? {
                dir.unlink(name)
            } else {
                Ok(())
            };
            match res {
                Ok(()) => self.touched(&r.path),
                Err(e) if m.is_dir() => {
                    // Something unsynced is still inside: keep the directory.
                    info!(path = %r.path, error = %e, "not deleting a directory that is not empty");
                }
                Err(e) => return Err(e),
            }
            return Ok(Step::Done(Box::new(done)));
        }
        let parent = fsops::prepare_parent(&dirs, &r.path)?;
        match r.kind {
            EntryKind::Directory => {
                if let Some(m) = parent.stat(name)? {
                    if !m.is_dir() {
                        self.clear_way(r, &parent, &m)?;
                    }
                }
                done.local = Some(fsops::make_dir(&parent, name, r.unix_mode)?);
                done.local_sha256 = None;
                self.touched(&r.path);
                Ok(Step::Done(Box::new(done)))
            }
            EntryKind::File => {
                if let (Some(local), true) = (r.local, r.local_sha256 == r.sha256) {
                    // Contents in place: only mode or mtime changed.
                    if let Some(m) = parent.stat(name)? {
                        if m.is_file() && local == m.stat {
                            done.local =
                                Some(fsops::update_file_meta(&parent, name, Some(&local), r.unix_mode, r.mtime)?);
                        }
                    }
                    return Ok(Step::Done(Box::new(done)));
                }
                match self.copy_local(r)? {
                    Some(temp) => {
                        let new = self.install_at(r, &temp)?;
                        Ok(Step::Done(Box::new(new)))
                    }
                    None => Ok(Step::Fetch),
                }
            }
        }
    }

    /// Something unexpected is where a peer's entry goes (`m`, in `dir`): a file we know
    /// (its record's stat matches) is removed; anything else is moved aside as a conflict
    /// copy.
    fn clear_way(&mut self, r: &Record, dir: &DirFd, m: &Meta) -> io::Result<()> {
        let name = r.path.file_name();
        if m.is_dir() {
            return dir.rmdir(name);
        }
        if m.is_file() && r.local == Some(m.stat) {
            return match self.keep_version(r, dir, name, versions::Why::Deleted)? {
                true => dir.unlink(name),
                false => Ok(()),
            };
        }
        if holds_the_version(r, dir, name, m) {
            // What a crash left: the install renamed it into place, and the kill came
            // before the index write that recorded it. No local change: the rename that
            // follows puts the same bytes there.
            info!(path = %r.path, "the version being installed is already in place");
            return Ok(());
        }
        let (now, device, me) = (self.now, self.device, self.me);
        let new_uuid = &mut self.new_uuid;
        let copy = fsops::move_aside(dir, &r.path, || conflict_marker(now, device, &me, &new_uuid()))?;
        warn!(path = %r.path, copy = %copy, "a local change is in the way of a peer's version; kept as a conflict copy");
        self.touched(&r.path);
        Ok(())
    }

    /// Contents for `r` copied from another file of the share that has them (dedup).
    fn copy_local(&mut self, r: &Record) -> io::Result<Option<Located>> {
        let (Some(sha), Some(size)) = (r.sha256, r.size) else { return Ok(None) };
        let dirs = self.dirs()?;
        for q in self.store.installed(&sha).map_err(io::Error::other)? {
            if q == r.path {
                continue;
            }
            let Some(source) = self.store.get(&q).map_err(io::Error::other)? else { continue };
            let Some(local) = source.local else { continue };
            match fsops::copy_verified(&dirs, &q, &local, &r.path, &sha, size, r.unix_mode, r.mtime) {
                Ok(temp) => {
                    debug!(path = %r.path, from = %q, "contents copied locally, not downloaded");
                    return Ok(Some(temp));
                }
                Err(e) => debug!(path = %r.path, from = %q, error = %e, "local copy failed"),
            }
        }
        Ok(None)
    }

    /// Renames verified contents (a temp file) onto `r`'s path, after checking that the
    /// disk still holds what `r.local` says. Everything is resolved again below the root,
    /// through directory handles, at this moment: a directory on the way that was swapped
    /// for a symlink since the record was applied fails the install (the temp file is
    /// removed), nothing is written where the symlink points. Returns the installed record.
    fn install_at(&mut self, r: &Record, temp: &Located) -> io::Result<Record> {
        let placed = self.dirs().and_then(|dirs| {
            let dir = fsops::existing_parent(&dirs, &r.path)?
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "its directory vanished"))?;
            let name = r.path.file_name();
            if let Some(m) = dir.stat(name)? {
                // The file we know is replaced by the rename itself, atomically: readers see
                // the old version or the new one, never no file (and a crash leaves one of
                // the two).
                let known_file = m.is_file() && r.local == Some(m.stat);
                if !known_file {
                    self.clear_way(r, &dir, &m)?;
                } else {
                    self.keep_version(r, &dir, name, versions::Why::Replaced)?;
                }
            }
            if let Some(own) = self.own_renames {
                // Before the rename, so the note is there when its event is read.
                if let Ok(Some(m)) = temp.dir.stat(&temp.name) {
                    own.note(self.root.join(r.path.relative()), m.stat);
                }
            }
            fsops::install(temp, &dir, name)
        });
        let stat = match placed {
            Ok(s) => {
                self.touched(&r.path);
                s
            }
            Err(e) => {
                temp.remove();
                return Err(e);
            }
        };
        let mut done = r.clone();
        done.local = Some(stat);
        done.local_sha256 = r.sha256;
        done.pending = false;
        Ok(done)
    }

    /// Downloads finished (each contents verified in its temp file, synced or not): makes
    /// the unsynced ones durable, then installs each at every path still waiting for it,
    /// with one index write for the batch. Returns the paths installed.
    pub fn downloaded(&mut self, items: Vec<Download>) -> Result<Vec<SharePath>, StoreError> {
        let mut installed = Vec::new();
        let mut done = Vec::new();
        let present = root_is_present(self.root);
        let mut found = Vec::with_capacity(items.len());
        for item in items {
            // Where the temp file is, resolved below the root now, never through a symlink.
            match self.dirs().and_then(|d| Ok((d.clone(), d.locate(&item.temp)?))) {
                Ok((d, (dir, name))) => found.push((d, item.sha256, Located { dir, name }, item.unsynced)),
                // The root is gone: the download waits in its partial file (see `resume`).
                Err(_) if !present => {}
                Err(e) => {
                    self.failures += 1;
                    warn!(temp = %item.temp.display(), error = %e, "cannot reach a downloaded file below the share root");
                }
            }
        }
        // Every byte on disk before any of them is renamed into place (`crate::durable`).
        let unsynced: Vec<&durable::Unsynced> = found.iter().filter_map(|f| f.3.as_ref()).collect();
        let mut results = durable::make_durable(&unsynced).into_iter();
        let mut ready = Vec::with_capacity(found.len());
        for (dirs, sha, temp, unsynced) in found {
            if let Some(Err(e)) = unsynced.and_then(|_| results.next()) {
                self.failures += 1;
                warn!(temp = %temp.name, error = %e, "cannot make a downloaded file durable; will fetch it again");
                temp.remove();
                continue;
            }
            ready.push((dirs, sha, temp));
        }
        for (dirs, sha, temp) in ready {
            let waiting = if present { self.store.waiting_for(&sha)? } else { Vec::new() };
            for (p, new) in self.install_download(&dirs, sha, temp, waiting)? {
                installed.push(p);
                done.push(new);
            }
        }
        if !done.is_empty() {
            self.commit(&done, None)?;
        }
        Ok(installed)
    }

    /// Installs the download of `sha` (verified, in `temp`) at each of the paths `waiting`
    /// that still wants it: renamed onto the first, copied to the others. Returns each path
    /// installed with its new record; `temp` is removed if it was not used.
    fn install_download(
        &mut self,
        dirs: &Root,
        sha: Sha256Hash,
        temp: Located,
        waiting: Vec<SharePath>,
    ) -> Result<Vec<(SharePath, Record)>, StoreError> {
        let mut temp = Some(temp);
        let mut installed: Vec<(SharePath, Record)> = Vec::new();
        for p in waiting {
            let Some(r) = self.store.get(&p)? else { continue };
            if !r.wants_content() || r.sha256 != Some(sha) {
                continue;
            }
            if self.filter.is_some_and(|f| f.ignores(&p, false)) {
                continue;
            }
            let first = installed.first().map(|(q, _)| q);
            let Some(source) = download_source(dirs, &p, &r, sha, &mut temp, first) else {
                // (Logged there.) The path still wants the contents: retried later.
                self.failures += 1;
                continue;
            };
            match self.install_at(&r, &source) {
                Ok(new) => installed.push((p, new)),
                Err(e) => {
                    self.failures += 1;
                    warn!(path = %p, error = %e, "cannot install downloaded contents; will retry");
                }
            }
        }
        if let Some(t) = temp {
            t.remove();
        }
        Ok(installed)
    }

    /// After a restart: carries out what a crash left pending; returns what to fetch.
    pub fn resume(&mut self) -> Result<Vec<Fetch>, StoreError> {
        let pending: Vec<Record> = self.store.records_where(|r| r.pending || r.wants_content())?;
        self.execute(pending)
    }
}

/// What to install at `p` (record `r`, contents `sha`): the verified download itself
/// (`temp`, taken) with `r`'s mode and mtime, or, once it was installed at `first`, a copy.
fn download_source(
    dirs: &Root,
    p: &SharePath,
    r: &Record,
    sha: Sha256Hash,
    temp: &mut Option<Located>,
    first: Option<&SharePath>,
) -> Option<Located> {
    let (size, mode, mtime) = (r.size.unwrap_or(0), r.unix_mode, r.mtime);
    match temp.take() {
        // The verified download itself is renamed onto the first path (the partial file is
        // inside the share, on its filesystem).
        Some(t) if fsops::has_meta(&t.dir, &t.name, mode, mtime) => Some(t),
        Some(t) => {
            // Its mode and mtime were those of the path it was fetched for.
            match fsops::update_file_meta(&t.dir, &t.name, None, mode, mtime) {
                Ok(_) => Some(t),
                Err(e) => {
                    warn!(path = %p, error = %e, "cannot set the downloaded file's mode or mtime");
                    *temp = Some(t);
                    None
                }
            }
        }
        None => first
            .and_then(|q| {
                let dir = fsops::existing_parent(dirs, q).ok()??;
                Some(Located { dir, name: q.file_name().to_owned() })
            })
            .and_then(|from| {
                fsops::copy_temp(dirs, &from, p, &sha, size, mode, mtime)
                    .map_err(|e| warn!(path = %p, error = %e, "cannot copy downloaded contents"))
                    .ok()
            }),
    }
}

enum Step {
    Done(Box<Record>),
    Fetch,
}

#[cfg(test)]
mod tests;
