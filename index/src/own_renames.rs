//! Our own renames into a share (downloads installed), told to the watcher so that it can
//! skip the inotify event each one causes. Without this, every directory a download lands
//! in is listed again after the debounce, only to find what the install already wrote to
//! the index: in a directory of 20 000 files, that was 0.3 s of the receiver's CPU for
//! each file received.
//!
//! The applier notes the temp file's inode, size and mtime just before its rename (a rename
//! keeps all three, so the note is always there before the event is read). The watcher
//! skips a `MOVED_TO` event only if the name then holds a regular file with those three:
//! the inode we placed there, unchanged in size and mtime. A user's file renamed onto the
//! name in the same moment has another inode; anything else a user does to the file (a
//! write, `chmod`, a rename away) has events of its own, which are never skipped. (The
//! ctime is not compared: the rename itself changes it.) Each note is used for at most one
//! event. An install whose index write then fails asks for a full scan.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::record::LocalStat;

/// Renames recorded and not yet matched by an event, at most (about 150 bytes each). Some
/// are never matched: the watcher can handle an event before the applier notes its rename
/// (the event then goes through as a hint), and events are lost in a queue overflow. Past
/// this the table is emptied, which costs only the scans it would have saved.
const MAX_PENDING: usize = 4096;

/// What we rename into one share, by absolute path: the file's inode, size and mtime.
#[derive(Debug, Default)]
pub struct OwnRenames {
    pending: Mutex<HashMap<PathBuf, (u64, u64, i128)>>,
}

/// What a rename keeps of a file's stat.
fn kept(s: &LocalStat) -> (u64, u64, i128) {
    (s.ino, s.size, s.mtime_ns)
}

impl OwnRenames {
    /// Records that we are about to rename the file whose stat is `stat` onto `path`.
    pub fn note(&self, path: PathBuf, stat: LocalStat) {
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if pending.len() >= MAX_PENDING {
            pending.clear();
        }
        pending.insert(path, kept(&stat));
    }

    /// Whether a rename event for `path` was ours: `path` holds the file we renamed there,
    /// so nothing about the rename is news to the index. Uses up the note either way.
    pub fn was_ours(&self, path: &Path) -> bool {
        let recorded = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(path);
        let Some(recorded) = recorded else { return false };
        std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && kept(&crate::fsops::stat_of(&m)) == recorded)
    }

    /// Forgets every recorded rename (the watcher lost events: everything is scanned).
    pub fn clear(&self) {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }

    /// Recorded renames not yet matched by an event.
    pub fn pending(&self) -> usize {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn stat(path: &Path) -> LocalStat {
        crate::fsops::stat_of(&std::fs::symlink_metadata(path).unwrap())
    }

    #[test]
    fn only_our_file_as_we_left_it_is_ours_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let own = OwnRenames::default();
        let (ours, theirs, edited, gone) =
            (dir.path().join("ours"), dir.path().join("theirs"), dir.path().join("edited"), dir.path().join("gone"));
        // Noted before the rename, as the applier does (the rename changes the ctime).
        for p in [&ours, &theirs, &edited, &gone] {
            let temp = dir.path().join("temp");
            std::fs::write(&temp, b"contents").unwrap();
            own.note(p.clone(), stat(&temp));
            std::fs::rename(&temp, p).unwrap();
        }
        // A user's file renamed onto the name (another inode).
        let other = dir.path().join("other");
        std::fs::write(&other, b"contents").unwrap();
        std::fs::rename(&other, &theirs).unwrap();
        // A write into ours (its size and mtime change; it has events of its own anyway).
        std::fs::OpenOptions::new().append(true).open(&edited).unwrap().write_all(b"!").unwrap();
        std::fs::remove_file(&gone).unwrap();
        assert!(own.was_ours(&ours));
        assert!(!own.was_ours(&ours), "a record is used once");
        assert!(!own.was_ours(&theirs));
        assert!(!own.was_ours(&edited));
        assert!(!own.was_ours(&gone));
        assert!(!own.was_ours(&dir.path().join("never noted")));
        assert_eq!(own.pending(), 0);
        // A directory where our file was is not ours either.
        std::fs::remove_file(&ours).unwrap();
        std::fs::write(&ours, b"x").unwrap();
        let s = stat(&ours);
        std::fs::remove_file(&ours).unwrap();
        std::fs::create_dir(&ours).unwrap();
        own.note(ours.clone(), s);
        assert!(!own.was_ours(&ours));
    }

    #[test]
    fn the_table_stays_bounded_when_events_never_come() {
        let own = OwnRenames::default();
        let s = LocalStat { ino: 1, size: 1, mtime_ns: 1, ctime_ns: 1 };
        for i in 0..MAX_PENDING + 10 {
            own.note(PathBuf::from(format!("/nowhere/{i}")), s);
        }
        assert!(own.pending() <= MAX_PENDING);
        own.clear();
        assert_eq!(own.pending(), 0);
    }
}
