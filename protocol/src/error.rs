//! Why a session ends, grouped as rustls groups its errors: what the peer did wrong, what
//! makes it incompatible with us, and conditions of the connection itself.

use std::time::Duration;

use crate::frame::FrameError;
use crate::gzip::GzipError;
use crate::message::MessageError;

/// A reason that ends a session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer broke the protocol; close the connection and log the reason.
    #[error("peer misbehaved: {0}")]
    PeerMisbehaved(#[from] PeerMisbehaved),
    /// The peer speaks the protocol correctly but we have nothing in common.
    #[error("peer is incompatible: {0}")]
    PeerIncompatible(#[from] PeerIncompatible),
    /// The peer is ourselves (same peer ID).
    #[error("connected to ourselves")]
    Loopback,
    /// Nothing arrived from the peer for this long.
    #[error("peer silent for {0:?}")]
    Timeout(Duration),
}

/// Protocol violations by the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerMisbehaved {
    /// Malformed framing.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Malformed gzip framing or data.
    #[error(transparent)]
    Gzip(#[from] GzipError),
    /// A body that is not a valid message.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// A message that is not allowed at this point of the session.
    #[error("unexpected {got} while expecting {expected}")]
    Unexpected {
        /// What the session was waiting for.
        expected: &'static str,
        /// The message type that came.
        got: String,
    },
    /// A known message type sent with (or without) an attachment it must not (or must) have.
    #[error("{0} sent with the wrong frame kind")]
    WrongFrameKind(String),
    /// `core.start` chose a protocol version or an extension the greeting did not offer.
    #[error("core.start chose {0}, which the greeting did not offer")]
    NotOffered(String),
}

/// Incompatibilities.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerIncompatible {
    /// No protocol version in common.
    #[error("no common protocol version (we speak {ours:?}, the peer {theirs:?})")]
    NoCommonProtocol {
        /// Ours.
        ours: Vec<u64>,
        /// Theirs.
        theirs: Vec<u64>,
    },
}
