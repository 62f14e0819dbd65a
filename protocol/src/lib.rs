//! The ClearSkies wire protocol, pure and deterministic.
//!
//! This crate turns bytes into typed protocol events and typed commands into bytes. It does
//! no I/O of any kind: no sockets, no files, no clocks and no random numbers. Time comes in
//! as an [`std::time::Instant`] argument and randomness as caller-supplied bytes, so every
//! behaviour can be replayed exactly in tests and fuzzers (the same bar as `quinn-proto`).
//!
//! # Layout
//!
//! The modules mirror the spec (`shared/protocol/*.md`) and the project's
//! `docs/protocol-decisions.md`:
//!
//! * [`frame`]: the `m ! s $` message framing, with streamed attachments.
//! * [`message`]: typed messages for every message type in the spec, plus `Unknown`.
//! * [`address`]: peer addresses (`tcp:IP:PORT`, `utp:IP:PORT`) as trackers carry them.
//! * [`access_code`]: `SYNC…` access codes, access IDs and SRP credentials.
//! * [`auth`]: SRP-6a authentication inside TLS, bound to the TLS exporter.
//! * [`path`]: validated share paths (record keys), the guard against escaping the root.
//! * [`vclock`]: vector clocks and their comparison.
//! * [`bloom`]: the `directory.bloom_filter` presence filter.
//! * [`updates`]: which records a `database.get_updates` asks for, and in what order.
//! * [`rdiff`]: the `rsync` extension's signatures and deltas (librsync / `rdiff` format).
//! * [`gzip`]: the `gzip` extension's per-message zlib framing.
//! * [`msgpack`]: a structural, allocation-free check of MessagePack bodies.
//! * [`time`]: ISO 8601 timestamps with nanosecond precision.
//! * [`session`]: the connection state machine once the secure channel is up.
//! * [`stun`]: STUN Binding requests and responses (RFC 8489), to learn our public UDP address.
//! * [`natpmp`]: NAT-PMP requests and responses (RFC 6886), to map ports on home routers.
//! * [`upnp`]: UPnP IGD discovery, descriptions and port-mapping actions (SSDP, HTTP/1.1,
//!   SOAP), bounded against hostile devices, to map ports on home routers without NAT-PMP.
//!
//! # What it refuses to do
//!
//! It never panics on peer input, never allocates more than the spec's 16 MiB limits
//! because a peer said so, and never buffers a whole attachment: attachment data comes out
//! piece by piece as it arrives. Bodies are never parsed into generic trees: an unknown
//! message keeps its raw bytes, a known one is decoded straight into its struct after a
//! bounded count of its values ([`message::MAX_VALUES`], [`msgpack::MAX_DEPTH`]), and an
//! rsync delta costs bounded work whatever signature a peer sends ([`rdiff`]).
//!
//! # Call order
//!
//! A driver (the `Peer` actor) owns one [`session::Session`] per connection and, after every
//! socket read or timer expiry, calls [`session::Session::handle_input`] or
//! [`session::Session::handle_timeout`], then drains [`session::Session::poll_event`],
//! [`session::Session::poll_transmit`] and finally re-arms its timer from
//! [`session::Session::poll_timeout`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access_code;
pub mod address;
pub mod auth;
pub mod base64;
pub mod bloom;
pub mod error;
pub mod frame;
pub mod gzip;
pub mod ids;
pub mod message;
pub mod msgpack;
pub mod natpmp;
pub mod path;
pub mod rdiff;
pub mod session;
pub mod stun;
pub mod time;
pub mod tracker;
pub mod updates;
pub mod upnp;
pub mod vclock;

#[cfg(test)]
mod tests;

pub use error::Error;
pub use ids::{CodeSecret, PeerId, RecordUuid, SecretKey, Sha256Hash, UntrustedFileId};
