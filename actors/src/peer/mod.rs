//! Peer connections: the secure channel ([`channel`]) and the [`actor::Peer`] that drives one
//! `clearskies_protocol::session::Session` over it.

pub mod actor;
pub mod channel;
pub mod messages;

#[cfg(test)]
mod tests;
