//! A share's actor side: the `Share` actor that owns a share's index (kept in
//! `clearskies-index`), its inotify watcher, its worker thread, reads for `cat`, and the
//! registry of shares, keys and access codes.

pub mod actor;
pub mod messages;
pub mod read;
pub mod registry;
pub mod watch;
pub mod worker;

pub use actor::Share;
