//! The ClearSkies daemon's actors.
//!
//! This is the only async crate of the workspace: each actor (`Discovery`, `Listener`,
//! `Peer`, `Share`, `Transfer`, `Control`, `Metrics`) lives in its own module and talks to
//! the others only through typed messages; see `ARCHITECTURE.md`. The actors drive the pure
//! state machines of `clearskies-protocol` and own every socket, file and timer.
//!
//! The actors arrive with the read-write vertical slice (issue 4); until then this crate only
//! fixes the dependency direction `supervisor → actors → protocol`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use clearskies_protocol as protocol;
