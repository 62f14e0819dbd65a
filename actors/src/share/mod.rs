//! A share: its index (records in RocksDB), its scanner, its inotify watcher, and the
//! `Share` actor that owns them, and applying peers' records (`apply`, `fsops`).

pub mod actor;
pub mod apply;
pub mod beneath;
pub mod filter;
pub mod fsops;
pub mod messages;
pub mod read;
pub mod record;
pub mod registry;
pub mod rsa;
pub mod scan;
pub mod store;
pub mod untrusted;
pub mod watch;
pub mod worker;

pub use actor::{Share, ShareEvent};

/// A share on temp directories for unit tests: a root with its marker and an empty index.
#[cfg(test)]
pub(crate) fn test_share() -> (tempfile::TempDir, tempfile::TempDir, store::ShareStore) {
    let db = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join(clearskies_protocol::path::META_DIR)).unwrap();
    let s = store::Store::open(db.path()).unwrap();
    s.create_share("t").unwrap();
    let share = s.share("t").unwrap();
    (db, root, share)
}
