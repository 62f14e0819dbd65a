//! A share: its index (records in RocksDB), its scanner, its inotify watcher, and the
//! `Share` actor that owns them. The sync with peers arrives with the rest of the read-write
//! slice.

pub mod actor;
pub mod messages;
pub mod record;
pub mod registry;
pub mod scan;
pub mod store;
pub mod watch;

pub use actor::Share;
