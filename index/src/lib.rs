//! A share's index and everything that reads or changes it synchronously: the records, the
//! RocksDB store, scanning the tree into the index, applying peers' records on disk, and the
//! record cryptography (RSA signatures, the `untrusted` extension's encryption).
//!
//! Everything here blocks (disk, RocksDB, hashing) and nothing here is async: no actix, no
//! tokio, no sockets. The daemon's actors (`clearskies-actors`) call it from a share's worker
//! thread or a blocking pool, and own scheduling, watching and talking to peers. The time a
//! scan or an applier writes into records is the caller's (`now`), and index write latency
//! goes to whoever opened the store ([`store::Store::observe_writes`]), not to a metrics
//! registry.
//!
//! Order of use: [`store::Store::open`] once per process, [`store::Store::share`] per share;
//! [`scan::scan`] records local changes; [`apply::Applier`] decides on peers' records
//! ([`record::Record::from_update`]) and carries them out through [`fsops`], which reaches
//! files only through [`beneath`]; [`filter::Filter`] says what selective sync leaves out.
//! [`data_dir::set_data_dir`] is called once at start so that the scanner skips the daemon's
//! data directory inside a share.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod apply;
pub mod beneath;
pub mod data_dir;
pub mod durable;
pub mod filter;
pub mod fsops;
pub mod own_renames;
pub mod record;
pub mod rsa;
pub mod scan;
pub mod store;
pub mod untrusted;
pub mod versions;

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
