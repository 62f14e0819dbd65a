//! File versioning: a file that a peer's change replaces or deletes is kept in the share's
//! `.clearskies/versions/` (inside the marker directory: never scanned, never synced) under
//! its share path, named `stem~YYYYMMDD-HHMMSS.ext` (UTC, the moment it was kept), for
//! `versions_keep_days` and within `versions_max_size` (the oldest go first).
//!
//! A replaced file is kept as a hard link made before the new version is renamed over it,
//! so readers of the path still see the old file or the new one, never none; a deleted
//! file is renamed into the versions. Where hard links do not work (exFAT, a file system
//! mounted inside the share) a replaced file is renamed away first (the path is missing for
//! an instant), and a file on another file system than the share's marker is not kept
//! (logged). Keeping never makes an apply fail: a version that cannot be kept is logged and
//! the change goes ahead as it did without versioning.
//!
//! Who and why are in `.clearskies/versions.jsonl`, one JSON line per version; a version
//! whose line is missing (a crash between the two) is still listed and pruned, by the time
//! its inode changed. Everything is reached through [`crate::beneath`] handles below the root: a
//! symlink planted in `.clearskies` or in the versions tree is never followed.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, Read, Seek, Write};

use clearskies_protocol::path::{SharePath, META_DIR};
use clearskies_protocol::time::Timestamp;
use clearskies_protocol::PeerId;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::beneath::{DirFd, Root};

/// The versions' directory, inside the share's marker directory.
pub const VERSIONS_DIR: &str = "versions";
/// Who replaced or deleted each version, and when (next to [`VERSIONS_DIR`]).
pub const VERSIONS_LOG: &str = "versions.jsonl";
/// The log's lines are read up to this size each (a longer one is skipped). Two paths of
/// 4096 bytes of characters JSON escapes as `\u00XX` fit.
const MAX_LINE: usize = 64 * 1024;
/// Longest name a directory entry may have.
const MAX_NAME: usize = 255;

/// Why a version was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    /// A peer's newer contents replaced it.
    Replaced,
    /// A peer deleted it.
    Deleted,
    /// `restore` put an older version in its place.
    Restored,
    /// `revert` (read-only share) put the read-write peers' version back.
    Reverted,
    /// Kept before this daemon said why (a version without its log line).
    #[serde(other)]
    Unknown,
}

/// One kept version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The file's path in the share when it was kept (`/a/b.jpg`).
    pub path: String,
    /// Where it is, below `.clearskies/versions/` (`a/b~20261206-071501.jpg`): its ID.
    pub stored: String,
    /// Unix time it was kept.
    pub time: i64,
    /// The peer (hex ID) whose change replaced or deleted it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Why it was kept.
    pub why: Why,
    /// Its size in bytes.
    #[serde(default)]
    pub size: u64,
}

/// `YYYYMMDD-HHMMSS` (UTC) of `t`.
pub fn stamp(t: Timestamp) -> String {
    // `Timestamp` displays as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
    let s = t.to_string();
    let digits: String = s[..19].chars().filter(char::is_ascii_digit).collect();
    format!("{}-{}", &digits[..8], &digits[8..])
}

/// The version's file name for `name` kept at `stamp`, with `n` > 0 to tell apart two
/// versions of one second: `stem~stamp[-n].ext`, the stem shortened to fit 255 bytes.
fn version_name(name: &str, stamp: &str, n: u32) -> String {
    let tag = if n == 0 { format!("~{stamp}") } else { format!("~{stamp}-{n}") };
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 && name.len() - i <= 32 => name.split_at(i),
        _ => (name, ""),
    };
    let room = MAX_NAME.saturating_sub(tag.len() + ext.len());
    let mut cut = room.min(stem.len());
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{tag}{ext}", &stem[..cut])
}

/// The share path a version's stored name came from (`a/b~20261206-071501-2.jpg` →
/// `/a/b.jpg`), for a version without its log line. `None` if the name is not one of ours.
fn original_path(stored: &str) -> Option<String> {
    let (dir, name) = stored.rsplit_once('/').map_or(("", stored), |(d, n)| (d, n));
    let tilde = name.rfind('~')?;
    let (stem, rest) = (&name[..tilde], &name[tilde + 1..]);
    let ext_at = rest.find('.').unwrap_or(rest.len());
    let (tag, ext) = rest.split_at(ext_at);
    let ok = tag.len() >= 15 && tag.as_bytes()[8] == b'-' && tag.chars().all(|c| c.is_ascii_digit() || c == '-');
    if !ok || stem.is_empty() {
        return None;
    }
    Some(if dir.is_empty() { format!("/{stem}{ext}") } else { format!("/{dir}/{stem}{ext}") })
}

/// The marker directory (never created here: a missing one means the root is gone).
fn meta_dir(root: &Root) -> io::Result<DirFd> {
    root.root_dir().subdir(META_DIR)
}

/// The versions directory for files in share directory `parent`, made if missing.
fn versions_dir_for(root: &Root, parent: &SharePath) -> io::Result<DirFd> {
    let mut dir = meta_dir(root)?.subdir_or_create(VERSIONS_DIR, 0o700)?;
    for segment in parent.as_str().split('/').filter(|s| !s.is_empty()) {
        dir = dir.subdir_or_create(segment, 0o700)?;
    }
    Ok(dir)
}

/// What a kept version is, before it is kept.
#[derive(Debug, Clone, Copy)]
pub struct Keep<'a> {
    /// Its path in the share.
    pub path: &'a SharePath,
    /// Whose change replaces or deletes it (`None`: this daemon's own command).
    pub by: Option<PeerId>,
    /// Why.
    pub why: Why,
    /// Now.
    pub now: Timestamp,
}

/// Keeps the file `name` in `dir` (share path `k.path`) as a version before a change
/// replaces it (`Replaced`, `Restored`: a hard link; the caller then renames the new file
/// over it) or removes it (`Deleted`, `Reverted`: renamed away; the caller must not unlink
/// it). Answers whether the file is still at `name` (it was linked, or could not be kept
/// at all) and the version if one was kept.
pub fn keep(root: &Root, dir: &DirFd, name: &str, k: Keep<'_>) -> io::Result<(bool, Option<Version>)> {
    let parent = k.path.parent().unwrap_or_else(SharePath::root);
    let vdir = versions_dir_for(root, &parent)?;
    let stamp = stamp(k.now);
    let size = dir.stat(name)?.map_or(0, |m| m.stat.size);
    let mut n = 0;
    let vname = loop {
        let candidate = version_name(name, &stamp, n);
        if vdir.stat(&candidate)?.is_none() {
            break candidate;
        }
        n += 1;
        if n > 1000 {
            return Err(io::Error::other("too many versions of one file in one second"));
        }
    };
    let linked = match k.why {
        Why::Deleted | Why::Reverted | Why::Unknown => false,
        _ => match dir.link(name, &vdir, &vname) {
            Ok(()) => true,
            Err(e) => {
                debug!(path = %k.path, error = %e, "cannot hard-link the version; moving it instead");
                false
            }
        },
    };
    if !linked {
        if let Err(e) = dir.rename(name, &vdir, &vname) {
            warn!(path = %k.path, error = %e, "cannot keep a version of this file (it is replaced or deleted as it would be without versioning)");
            return Ok((true, None));
        }
    }
    // The move is done: failing to make it durable now is logged, not an error (the caller
    // must know the file is no longer at `name`).
    if let Err(e) = vdir.sync() {
        warn!(path = %k.path, error = %e, "cannot fsync the versions directory");
    }
    let stored = stored_name(&parent, &vname);
    let version = Version {
        path: k.path.as_str().to_owned(),
        stored,
        time: k.now.secs(),
        by: k.by.map(|p| hex::encode(p.0)),
        why: k.why,
        size,
    };
    if let Err(e) = append_log(root, &version) {
        warn!(path = %k.path, error = %e, "cannot note who changed the kept version");
    }
    Ok((linked, Some(version)))
}

fn stored_name(parent: &SharePath, vname: &str) -> String {
    let dir = parent.as_str().trim_start_matches('/');
    if dir.is_empty() {
        vname.to_owned()
    } else {
        format!("{dir}/{vname}")
    }
}

fn append_log(root: &Root, v: &Version) -> io::Result<()> {
    let mut f = meta_dir(root)?.create_file(VERSIONS_LOG, 0o600, false)?;
    f.seek(io::SeekFrom::End(0))?;
    // A line break first too: after a short write (a full disk) the next entry still starts
    // on a line of its own (the torn one and the empty ones do not parse, and are skipped).
    let mut line = vec![b'\n'];
    line.extend(serde_json::to_vec(v).map_err(io::Error::other)?);
    line.push(b'\n');
    f.write_all(&line)
}

/// The log's entries for the versions in `present`, by stored name (the last line for a
/// name wins), with their line number (the order they were kept in). Lines about anything
/// else (pruned, or planted) are not kept; a `by` that is not a peer ID is dropped.
fn read_log(root: &Root, present: &HashMap<String, Found>) -> io::Result<BTreeMap<String, (usize, Version)>> {
    let f = match meta_dir(root)?.open_file(VERSIONS_LOG, false) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e),
    };
    let mut out = BTreeMap::new();
    let mut reader = io::BufReader::new(f);
    let mut line = Vec::new();
    for number in 0.. {
        line.clear();
        // Bounded: a line longer than MAX_LINE is read in pieces and none of them parses.
        let n = (&mut reader).take(MAX_LINE as u64).read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if let Ok(mut v) = serde_json::from_slice::<Version>(&line) {
            if present.contains_key(&v.stored) {
                v.by = v.by.filter(|b| b.parse::<PeerId>().is_ok());
                out.insert(v.stored.clone(), (number, v));
            }
        }
    }
    Ok(out)
}

/// A file found in the versions tree: its size and change time (seconds).
#[derive(Debug, Clone, Copy)]
struct Found {
    size: u64,
    ctime: i64,
}

/// Every regular file below the versions directory, by stored name. A directory that
/// cannot be read is skipped (logged): one bad entry never hides the rest. Directories are
/// opened as they are visited, one at a time.
fn walk(root: &Root) -> io::Result<HashMap<String, Found>> {
    let mut found = HashMap::new();
    let top = match meta_dir(root)?.subdir(VERSIONS_DIR) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    let mut stack: Vec<(DirFd, String, String)> = Vec::new();
    let mut visit = |dir: &DirFd, rel: &str, stack: &mut Vec<(DirFd, String, String)>| {
        let names = match dir.list() {
            Ok((names, _)) => names,
            Err(e) => return warn!(dir = rel, error = %e, "cannot list a versions directory"),
        };
        for (name, _) in names {
            let stored = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
            match dir.stat(&name) {
                Ok(Some(m)) if m.is_dir() => stack.push((dir.clone(), name, stored)),
                Ok(Some(m)) if m.is_file() => {
                    let ctime = i64::try_from(m.stat.ctime_ns / 1_000_000_000).unwrap_or(0);
                    found.insert(stored, Found { size: m.stat.size, ctime });
                }
                Ok(_) => {}
                Err(e) => warn!(version = %stored, error = %e, "cannot read a kept version"),
            }
        }
    };
    visit(&top, "", &mut stack);
    while let Some((parent, name, rel)) = stack.pop() {
        match parent.subdir(&name) {
            Ok(dir) => visit(&dir, &rel, &mut stack),
            Err(e) => warn!(dir = %rel, error = %e, "cannot open a versions directory"),
        }
    }
    Ok(found)
}

/// Every kept version that is still there: the log's entries whose file exists (with its
/// size now), and files without an entry (by their name and change time). Oldest first.
pub fn list(root: &Root) -> io::Result<Vec<Version>> {
    let present = walk(root)?;
    let mut logged = read_log(root, &present)?;
    let mut out = Vec::with_capacity(present.len());
    for (stored, f) in present {
        match logged.remove(&stored) {
            Some((number, v)) => out.push((number, Version { size: f.size, ..v })),
            None => {
                let Some(path) = original_path(&stored) else { continue };
                let v = Version { path, stored, time: f.ctime, by: None, why: Why::Unknown, size: f.size };
                out.push((usize::MAX, v));
            }
        }
    }
    // In the order they were kept (several can share a second).
    out.sort_by(|(n, a), (m, b)| (a.time, n, &a.stored).cmp(&(b.time, m, &b.stored)));
    Ok(out.into_iter().map(|(_, v)| v).collect())
}

/// What pruning removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Versions removed.
    pub versions: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// Removes versions kept before `now - keep_secs`, then the oldest until the rest take at
/// most `max_bytes` (0: no cap); rewrites the log with what is left (atomically).
pub fn prune(root: &Root, keep_secs: i64, max_bytes: u64, now: i64) -> io::Result<Pruned> {
    let all = list(root)?;
    let cutoff = now.saturating_sub(keep_secs);
    let mut total: u64 = all.iter().fold(0u64, |t, v| t.saturating_add(v.size));
    let mut pruned = Pruned::default();
    let mut kept = Vec::with_capacity(all.len());
    for v in all {
        let too_old = v.time < cutoff;
        let too_big = max_bytes > 0 && total > max_bytes;
        if too_old || too_big {
            remove(root, &v.stored)?;
            total = total.saturating_sub(v.size);
            pruned.versions += 1;
            pruned.bytes += v.size;
        } else {
            kept.push(v);
        }
    }
    // The log is rewritten when versions went (or it holds lines about versions no longer
    // there, or misses some): it never grows past what is kept.
    let logged = meta_dir(root)?.stat(VERSIONS_LOG)?.map_or(0, |m| m.stat.size);
    if pruned.versions > 0 || logged > 0 && kept.is_empty() || logged > (kept.len() as u64 + 1) * MAX_LINE as u64 {
        rewrite_log(root, &kept)?;
    }
    Ok(pruned)
}

/// Removes the version `stored` and the directories it leaves empty.
fn remove(root: &Root, stored: &str) -> io::Result<()> {
    let top = meta_dir(root)?.subdir(VERSIONS_DIR)?;
    let mut dirs = vec![top];
    let mut names: Vec<&str> = stored.split('/').collect();
    let Some(file) = names.pop() else { return Ok(()) };
    for n in &names {
        let next = dirs.last().map(|d| d.subdir(n)).transpose()?;
        dirs.extend(next);
    }
    match dirs.last().map(|d| d.unlink(file)) {
        Some(Err(e)) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    // Empty directories on the way up go too (a non-empty one stays: rmdir fails).
    for (i, n) in names.iter().enumerate().rev() {
        if dirs[i].rmdir(n).is_err() {
            break;
        }
    }
    Ok(())
}

fn rewrite_log(root: &Root, kept: &[Version]) -> io::Result<()> {
    let meta = meta_dir(root)?;
    let temp = format!(".{VERSIONS_LOG}.tmp");
    let mut f = meta.create_file(&temp, 0o600, true)?;
    let mut text = Vec::new();
    for v in kept {
        text.extend(serde_json::to_vec(v).map_err(io::Error::other)?);
        text.push(b'\n');
    }
    f.write_all(&text)?;
    f.sync_all()?;
    meta.rename(&temp, &meta, VERSIONS_LOG)
}

/// Copies the version `stored` back to the path it was kept from, as a new local change;
/// what is at that path now is kept as a version first (`Restored`). Directories on the
/// way are made if missing. The copy is written and synced before anything at the path is
/// touched; if what is there cannot be kept, nothing is replaced. Answers the path.
pub fn restore(root: &Root, stored: &str, now: Timestamp) -> io::Result<SharePath> {
    let version = list(root)?
        .into_iter()
        .find(|v| v.stored == stored)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no version {stored}")))?;
    let path = SharePath::parse(&version.path).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let dir = crate::fsops::prepare_parent(root, &path)?;
    let name = path.file_name();
    if dir.stat(name)?.is_some_and(|m| m.is_dir()) {
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, "a directory is at that path now"));
    }
    let temp = crate::fsops::temp_name_for(name);
    let mut src = open(root, stored)?;
    let meta = src.metadata()?;
    let copied = dir.create_file(&temp, 0o600, true).and_then(|mut dst| {
        io::copy(&mut src, &mut dst)?;
        dst.set_permissions(meta.permissions())?;
        dst.set_modified(meta.modified()?)?;
        dst.sync_all()
    });
    if let Err(e) = copied {
        let _ = dir.unlink(&temp);
        return Err(e);
    }
    // What is there now is kept first: linked (it stays in place until the rename), or
    // moved (put back if the rename then fails).
    let mut moved = None;
    if dir.stat(name)?.is_some_and(|m| m.is_file()) {
        match keep(root, &dir, name, Keep { path: &path, by: None, why: Why::Restored, now }) {
            Ok((true, Some(_))) => {}
            Ok((false, Some(v))) => moved = Some(v),
            Ok((_, None)) | Err(_) => {
                let _ = dir.unlink(&temp);
                return Err(io::Error::other(
                    "what is at that path now cannot be kept as a version; nothing was changed",
                ));
            }
        }
    }
    if let Err(e) = dir.rename(&temp, &dir, name) {
        let _ = dir.unlink(&temp);
        if let Some(v) = moved {
            put_back(root, &dir, name, &v);
        }
        return Err(e);
    }
    dir.sync()?;
    Ok(path)
}

/// Moves the version `v` (just moved away from `name` in `dir`) back to where it was.
fn put_back(root: &Root, dir: &DirFd, name: &str, v: &Version) {
    let mut names: Vec<&str> = v.stored.split('/').collect();
    let Some(file) = names.pop() else { return };
    let mut vdir = meta_dir(root).and_then(|m| m.subdir(VERSIONS_DIR));
    for n in names {
        vdir = vdir.and_then(|d| d.subdir(n));
    }
    if let Err(e) = vdir.and_then(|d| d.rename(file, dir, name)) {
        warn!(stored = %v.stored, error = %e, "cannot put the file back; it is in the versions");
    }
}

/// Opens the version `stored` for reading (`stored` as [`list`] gives it; anything that
/// leaves the versions tree is refused).
pub fn open(root: &Root, stored: &str) -> io::Result<std::fs::File> {
    let mut dir = meta_dir(root)?.subdir(VERSIONS_DIR)?;
    let mut names: Vec<&str> = stored.split('/').collect();
    let file = names.pop().unwrap_or_default();
    for n in names {
        dir = dir.subdir(n)?;
    }
    dir.open_file(file, false)
}

#[cfg(test)]
mod tests;
