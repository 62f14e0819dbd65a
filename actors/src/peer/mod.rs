//! Peer connections: the secure channel, and (with the read-write slice) the `Peer` actor
//! that drives one `clearskies_protocol::session::Session` over it.

pub mod channel;

#[cfg(test)]
mod tests;
