//! A share's actor side: the `Share` actor that owns a share's index (kept in
//! `clearskies-index`), its inotify watcher, its worker thread, reads for `cat`, and the
//! registry of shares, keys and access codes.

pub mod actor;
pub mod messages;
pub mod read;
pub mod registry;
pub mod watch;
pub mod worker;

pub use actor::{Share, ShareEvent};

/// A share on temp directories for unit tests: a root with its marker and an empty index.
#[cfg(test)]
pub(crate) fn test_share() -> (tempfile::TempDir, tempfile::TempDir, clearskies_index::store::ShareStore) {
    let db = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join(clearskies_protocol::path::META_DIR)).unwrap();
    let s = clearskies_index::store::Store::open(db.path()).unwrap();
    s.create_share("t").unwrap();
    let share = s.share("t").unwrap();
    (db, root, share)
}
