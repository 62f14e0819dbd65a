//! What a [`Session`](super::Session) is made with and what it reports: its configuration,
//! the handshake's outcome, events, and why sending or the connection failed.

use std::time::Duration;

use bytes::Bytes;

use crate::error::Error;
use crate::frame::EncodeError;
use crate::message::core::Keys;
use crate::message::Message;
use crate::PeerId;

/// Which end of the connection we are. The server accepted the TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We dialled: we wait for `core.greeting` and answer `core.start`.
    Client,
    /// We accepted: we send `core.greeting` and wait for `core.start`.
    Server,
}

/// What key exchange this connection needs (`core.md`, "Key Exchange").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyExchange {
    /// Authenticated with a key: no exchange.
    None,
    /// We created the access code the peer used: send these keys after the handshake and
    /// wait for the acknowledgment.
    Send(Keys),
    /// We used an access code: wait for `core.keys`, store them, then call
    /// [`Session::acknowledge_keys`](super::Session::acknowledge_keys).
    Receive,
}

/// Session settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Client or server.
    pub role: Role,
    /// Our peer ID for this club.
    pub peer_id: PeerId,
    /// Our software name and version (informational).
    pub software: String,
    /// Our human-friendly name, if the user set one.
    pub name: Option<String>,
    /// Protocol versions we speak.
    pub protocols: Vec<u64>,
    /// Extensions we support, in order of preference.
    pub extensions: Vec<String>,
    /// The key exchange this connection needs.
    pub key_exchange: KeyExchange,
    /// How long we wait for the peer's next ping (advertised in our `core.ping`).
    pub ping_timeout: Duration,
    /// zlib level for the `gzip` extension (0–9).
    pub gzip_level: u32,
    /// Largest whole message (attachment included) we compress; `gzip` needs the compressed
    /// length before the data, so larger messages must be split by the caller.
    pub max_gzip_message: usize,
}

impl Config {
    /// Defaults for a role and peer ID: protocol 1, no extensions, no key exchange, 60 s
    /// ping timeout, zlib level 6, 32 MiB gzip messages.
    pub fn new(role: Role, peer_id: PeerId) -> Self {
        Config {
            role,
            peer_id,
            software: concat!("clearskies-rs ", env!("CARGO_PKG_VERSION")).to_owned(),
            name: None,
            protocols: vec![1],
            extensions: Vec::new(),
            key_exchange: KeyExchange::None,
            ping_timeout: Duration::from_secs(60),
            gzip_level: 6,
            max_gzip_message: 32 << 20,
        }
    }
}

/// What the handshake agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// The protocol version in use.
    pub protocol: u64,
    /// The extensions in use.
    pub extensions: Vec<String>,
    /// The peer's ID.
    pub peer: PeerId,
    /// The peer's software (informational).
    pub software: String,
    /// The peer's name, if it sent one.
    pub name: Option<String>,
}

impl Handshake {
    /// Whether an extension is in use.
    pub fn has_extension(&self, name: &str) -> bool {
        self.extensions.iter().any(|e| e == name)
    }
}

/// Why a session closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// [`Session::close`](super::Session::close) was called.
    Local,
    /// The protocol ended it.
    Error(Error),
}

/// Something the driver must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The greeting/start exchange completed.
    Connected(Handshake),
    /// `core.keys` arrived: store the keys, then call [`Session::acknowledge_keys`](super::Session::acknowledge_keys).
    KeysReceived(Keys),
    /// The peer acknowledged our keys: a single-use access code can now be deactivated.
    KeysAcknowledged,
    /// Application messages may flow from now on.
    Ready,
    /// An application message. For attachment kinds, [`Event::AttachmentChunk`]s and one
    /// [`Event::AttachmentEnd`] follow.
    Message(Incoming),
    /// The next piece of the last message's attachment.
    AttachmentChunk(Bytes),
    /// The last message's attachment is complete.
    AttachmentEnd,
    /// The session is over; close the socket. No further events follow.
    Closed(CloseReason),
}

/// An application message as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// The decoded message.
    pub message: Message,
    /// The body exactly as received, for verifying signatures and relaying verbatim.
    pub body: Bytes,
    /// The signature, for signed kinds.
    pub signature: Option<Bytes>,
    /// Whether attachment chunks follow.
    pub has_attachment: bool,
}

/// Misuse of the sending API; a bug in the caller, never the peer's doing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Application messages wait until [`Event::Ready`].
    #[error("session is not ready for application messages")]
    NotReady,
    /// The session has closed.
    #[error("session is closed")]
    Closed,
    /// An attachment is open: send its chunks and end it first.
    #[error("an attachment is still being sent")]
    AttachmentOpen,
    /// No attachment is open.
    #[error("no attachment is being sent")]
    NoAttachment,
    /// `send` was given a message type that needs an attachment, or the reverse.
    #[error("{0} needs the other send method (attachment mismatch)")]
    WrongKind(String),
    /// The whole message exceeds [`Config::max_gzip_message`] while `gzip` is in use.
    #[error("message exceeds the gzip message limit; split it into ranges")]
    GzipMessageTooLarge,
    /// Framing refused the data.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// [`Session::acknowledge_keys`](super::Session::acknowledge_keys) without received keys.
    #[error("no keys are waiting for acknowledgment")]
    NoKeysPending,
}
