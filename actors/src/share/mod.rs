//! A share: its index (records in RocksDB), its scanner, its inotify watcher, and the
//! `Share` actor that owns them, and applying peers' records (`apply`, `fsops`).

pub mod actor;
pub mod apply;
pub mod fsops;
pub mod messages;
pub mod record;
pub mod registry;
pub mod scan;
pub mod store;
pub mod watch;
pub mod worker;

pub use actor::Share;
