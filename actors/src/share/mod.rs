//! A share: its index (records in RocksDB), its scanner, and the `Share` actor that owns
//! them. The inotify watcher and the sync with peers arrive with the rest of the read-write
//! slice.

pub mod actor;
pub mod messages;
pub mod record;
pub mod registry;
pub mod scan;
pub mod store;

pub use actor::Share;
