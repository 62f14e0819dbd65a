//! The connection state machine, from the moment the secure channel is up.
//!
//! A [`Session`] runs the handshake of `core.md`: the server sends `core.greeting`, the client
//! answers `core.start` with the highest common protocol version and the extensions both
//! offer. On a connection made with an access code the code's creator then sends `core.keys`
//! and waits for `core.keys_acknowledgment`; until that exchange is complete no other message
//! is accepted or may be sent. Both sides send `core.ping` to keep the connection alive and
//! close it when the peer falls silent. A peer that presents our own peer ID is refused
//! (loopback). Once `gzip` is negotiated, everything after `core.start` is compressed.
//!
//! # Driving a session (the quinn pattern)
//!
//! The driver owns the socket and one timer. It calls, in this order:
//!
//! 1. [`Session::handle_input`] with bytes read from the socket, or [`Session::handle_timeout`]
//!    when the timer fires;
//! 2. [`Session::poll_event`] until `None`, acting on each [`Event`] (application commands
//!    such as [`Session::send`] may be called at any time);
//! 3. [`Session::poll_transmit`] until `None`, writing each buffer to the socket;
//! 4. [`Session::poll_timeout`] to re-arm the timer.
//!
//! `now` must never go backwards. Input is decoded lazily in `poll_event`, so memory stays
//! bounded by one frame body plus one read, whatever the peer sends; compressed input is
//! inflated in pieces of at most [`INFLATE_STEP`] bytes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::error::{Error, PeerIncompatible, PeerMisbehaved};
use crate::frame::{self, Decoder, Item, Kind};
use crate::gzip::{self, GzipError, Inflater};
use crate::message::core::{Greeting, KeysAcknowledgment, Ping, Start};
use crate::message::Message;

/// The `gzip` extension's name.
pub const EXT_GZIP: &str = "gzip";
/// The unofficial MessagePack body encoding (DESIGN.md): after `core.start`, bodies are
/// MessagePack maps instead of JSON objects, in both directions.
pub const EXT_MSGPACK: &str = ".rs.clearskies.msgpack";
/// The `rsync` extension's name.
pub const EXT_RSYNC: &str = "rsync";
/// This project's refined deltas (`rdiff::refine`), offered beside `rsync`.
pub const EXT_RSYNC_REFINE: &str = ".rs.clearskies.rsync-refine";
/// The `database` extension's name.
pub const EXT_DATABASE: &str = "database";
/// The `directory` extension's name.
pub const EXT_DIRECTORY: &str = "directory";
/// The `untrusted` extension's name.
pub const EXT_UNTRUSTED: &str = "untrusted";

/// Capacity of the gzip message buffer kept after a small message (see `finish_message`).
const GZIP_BUF_KEPT: usize = 1 << 20;
/// Messages shorter than this go as stored blocks whatever the level: deflating them saves
/// a few dozen bytes and costs building two Huffman tables each (a small file's
/// `directory.get` and its answer's header cost more CPU to deflate than to encrypt).
const GZIP_STORE_BELOW: usize = 256;

/// Largest piece of plain bytes inflated at a time from compressed input.
pub const INFLATE_STEP: usize = 64 * 1024;

/// Bounds on the peer's advertised ping timeout, so that a peer can neither make us ping
/// continuously nor keep a dead connection open for days.
const MIN_PEER_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_PEER_TIMEOUT: Duration = Duration::from_secs(3600);

mod types;

pub use types::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitGreeting,
    AwaitStart,
    AwaitKeys,
    AwaitKeysStored,
    AwaitKeysAck,
    Ready,
    Closed,
}

impl Phase {
    fn expecting(self) -> &'static str {
        match self {
            Phase::AwaitGreeting => "core.greeting",
            Phase::AwaitStart => "core.start",
            Phase::AwaitKeys => "core.keys",
            Phase::AwaitKeysStored => "nothing until our acknowledgment",
            Phase::AwaitKeysAck => "core.keys_acknowledgment",
            Phase::Ready => "an application message",
            Phase::Closed => "nothing",
        }
    }
}

/// Per-connection protocol state. See the module documentation for the call order.
#[derive(Debug)]
pub struct Session {
    config: Config,
    phase: Phase,
    handshake: Option<Handshake>,
    /// Bytes received but not yet inflated (only while `gzip` is in use on input).
    raw_in: BytesMut,
    /// Plain frame bytes waiting for the decoder.
    plain_in: BytesMut,
    decoder: Decoder,
    inflater: Option<Inflater>,
    /// Whether chunks of the attachment being received go to the application.
    deliver_chunks: bool,
    /// Messages begun in the compressed unit being decoded (exactly one is allowed).
    unit_messages: u32,
    /// A compressed unit ended; once its bytes are decoded it is checked.
    unit_end_pending: bool,
    events: VecDeque<Event>,
    transmits: VecDeque<Bytes>,
    /// Whether outgoing messages are compressed.
    gzip_out: bool,
    /// The outgoing message being assembled while `gzip` is in use.
    gzip_buf: Vec<u8>,
    /// Compresses outgoing messages once `gzip` is in use.
    deflater: gzip::Deflater,
    /// The message being assembled is stored, not deflated (incompressible attachment).
    store_only: bool,
    /// Bodies are MessagePack (`.rs.clearskies.msgpack` in use).
    msgpack: bool,
    /// Whether we are in the middle of sending an attachment.
    sending_attachment: bool,
    /// Whether a ping came due while an attachment was being sent.
    ping_pending: bool,
    last_rx: Instant,
    next_ping: Option<Instant>,
    peer_timeout: Option<Duration>,
}

impl Session {
    /// A session whose secure channel came up at `now`. A server queues its greeting at once.
    pub fn new(config: Config, now: Instant) -> Self {
        let phase = match config.role {
            Role::Client => Phase::AwaitGreeting,
            Role::Server => Phase::AwaitStart,
        };
        let mut s = Session {
            config,
            phase,
            handshake: None,
            raw_in: BytesMut::new(),
            plain_in: BytesMut::new(),
            decoder: Decoder::new(),
            inflater: None,
            deliver_chunks: false,
            unit_messages: 0,
            unit_end_pending: false,
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            gzip_out: false,
            gzip_buf: Vec::new(),
            deflater: gzip::Deflater::default(),
            store_only: false,
            msgpack: false,
            sending_attachment: false,
            ping_pending: false,
            last_rx: now,
            next_ping: None,
            peer_timeout: None,
        };
        if s.config.role == Role::Server {
            let greeting = Greeting {
                software: s.config.software.clone(),
                name: s.config.name.clone(),
                protocol: s.config.protocols.clone(),
                extensions: s.config.extensions.clone(),
                peer: s.config.peer_id,
            };
            s.send_internal(&greeting.into());
        }
        s
    }

    // ---- getters -------------------------------------------------------------------------

    /// What the handshake agreed on, once [`Event::Connected`] has been emitted.
    pub fn handshake(&self) -> Option<&Handshake> {
        self.handshake.as_ref()
    }

    /// Whether application messages may be sent.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// Whether the session has closed.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Bytes received and not yet decoded; a driver may stop reading while this is large.
    pub fn buffered_input(&self) -> usize {
        self.raw_in.len() + self.plain_in.len()
    }

    /// How long we wait for the peer before closing: our timeout, or the peer's if larger.
    pub fn idle_timeout(&self) -> Duration {
        match self.peer_timeout {
            Some(p) => p.max(self.config.ping_timeout),
            None => self.config.ping_timeout,
        }
    }

    // ---- inputs ---------------------------------------------------------------------------

    /// Bytes arrived from the peer at `now`. Any bytes count as a sign of life.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        if self.phase == Phase::Closed {
            return;
        }
        self.last_rx = now;
        if self.inflater.is_some() {
            self.raw_in.extend_from_slice(data);
        } else {
            self.plain_in.extend_from_slice(data);
        }
    }

    /// The timer armed from [`Session::poll_timeout`] fired at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        let idle = self.idle_timeout();
        if now.saturating_duration_since(self.last_rx) >= idle {
            self.fail(Error::Timeout(idle));
            return;
        }
        if self.next_ping.is_some_and(|t| now >= t) {
            if self.sending_attachment {
                self.ping_pending = true;
                self.next_ping = None;
            } else {
                self.send_ping(now);
            }
        }
    }

    // ---- commands -------------------------------------------------------------------------

    /// Sends an application message without attachment.
    pub fn send(&mut self, message: &Message) -> Result<(), SendError> {
        self.check_can_send()?;
        if message.has_attachment() {
            return Err(SendError::WrongKind(message.kind().to_owned()));
        }
        self.send_frame(Kind::Plain, &self.body_of(message), None)
    }

    /// Starts an application message with an attachment; follow with
    /// [`Session::send_chunk`] and [`Session::end_attachment`].
    pub fn send_with_attachment(&mut self, message: &Message) -> Result<(), SendError> {
        self.check_can_send()?;
        if !message.has_attachment() {
            return Err(SendError::WrongKind(message.kind().to_owned()));
        }
        self.send_frame(Kind::Attachment, &self.body_of(message), None)
    }

    /// Like [`Session::send_with_attachment`], for an attachment that does not compress
    /// (already compressed media, hashes): while `gzip` is in use, this message is stored
    /// in its zlib stream (level 0) instead of deflated, which costs almost nothing.
    pub fn send_with_incompressible_attachment(&mut self, message: &Message) -> Result<(), SendError> {
        self.send_with_attachment(message)?;
        self.store_only = true;
        Ok(())
    }

    /// Sends a signed body verbatim (`s`, or `$` with `attachment`), as read-write peers sign
    /// and read-only peers relay. The signature is base64 text without a newline. The body
    /// must be JSON, also on a MessagePack connection.
    pub fn send_signed(&mut self, body: &[u8], signature: &[u8], attachment: bool) -> Result<(), SendError> {
        self.check_can_send()?;
        self.send_frame(Kind::new(true, attachment), body, Some(signature))
    }

    /// Sends the next attachment chunk (1 ≤ length ≤ 16 MiB; 1 MiB is recommended).
    pub fn send_chunk(&mut self, data: Bytes) -> Result<(), SendError> {
        if self.phase == Phase::Closed {
            return Err(SendError::Closed);
        }
        if !self.sending_attachment {
            return Err(SendError::NoAttachment);
        }
        let mut header = Vec::with_capacity(10);
        frame::encode_chunk_header(data.len(), &mut header)?;
        if self.gzip_out && self.gzip_buf.len() + header.len() + data.len() > self.config.max_gzip_message {
            self.gzip_buf = Vec::new();
            self.sending_attachment = false;
            self.store_only = false;
            return Err(SendError::GzipMessageTooLarge);
        }
        self.emit(Bytes::from(header));
        self.emit(data);
        Ok(())
    }

    /// Ends the attachment being sent.
    pub fn end_attachment(&mut self, now: Instant) -> Result<(), SendError> {
        if self.phase == Phase::Closed {
            return Err(SendError::Closed);
        }
        if !self.sending_attachment {
            return Err(SendError::NoAttachment);
        }
        let mut end = Vec::with_capacity(2);
        frame::encode_end(&mut end);
        self.emit(Bytes::from(end));
        self.sending_attachment = false;
        self.finish_message();
        if self.ping_pending {
            self.send_ping(now);
        }
        Ok(())
    }

    /// The received keys are stored: acknowledge them and become ready.
    pub fn acknowledge_keys(&mut self) -> Result<(), SendError> {
        if self.phase != Phase::AwaitKeysStored {
            return Err(SendError::NoKeysPending);
        }
        self.send_internal(&KeysAcknowledgment {}.into());
        self.become_ready();
        Ok(())
    }

    /// Ends the session from our side. Queued output may still be drained and written.
    pub fn close(&mut self) {
        if self.phase != Phase::Closed {
            self.phase = Phase::Closed;
            self.events.push_back(Event::Closed(CloseReason::Local));
            self.release_input();
        }
    }

    // ---- outputs --------------------------------------------------------------------------

    /// The next thing that happened, decoding buffered input as needed.
    pub fn poll_event(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Some(e);
            }
            if self.phase == Phase::Closed {
                return None;
            }
            match self.decode_next() {
                Ok(true) => continue,
                Ok(false) => return None,
                Err(e) => self.fail(e),
            }
        }
    }

    /// The next bytes to write to the socket.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmits.pop_front()
    }

    /// When [`Session::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Closed {
            return None;
        }
        let idle = self.last_rx + self.idle_timeout();
        Some(self.next_ping.map_or(idle, |p| p.min(idle)))
    }

    // ---- internals ------------------------------------------------------------------------

    fn check_can_send(&self) -> Result<(), SendError> {
        match self.phase {
            Phase::Ready if self.sending_attachment => Err(SendError::AttachmentOpen),
            Phase::Ready => Ok(()),
            Phase::Closed => Err(SendError::Closed),
            _ => Err(SendError::NotReady),
        }
    }

    fn send_frame(&mut self, kind: Kind, body: &[u8], signature: Option<&[u8]>) -> Result<(), SendError> {
        let mut out = Vec::with_capacity(body.len() + 16);
        frame::encode_frame(kind, body, signature, &mut out)?;
        self.emit(Bytes::from(out));
        if kind.has_attachment() {
            self.sending_attachment = true;
        } else {
            self.finish_message();
        }
        Ok(())
    }

    /// A message's body in the encoding in use.
    fn body_of(&self, message: &Message) -> Vec<u8> {
        if self.msgpack {
            message.encode_msgpack()
        } else {
            message.encode()
        }
    }

    /// Sends a session-level message; these are small, valid `m` frames.
    fn send_internal(&mut self, message: &Message) {
        let mut out = Vec::new();
        match frame::encode_frame(Kind::Plain, &self.body_of(message), None, &mut out) {
            Ok(()) => {
                self.emit(Bytes::from(out));
                self.finish_message();
            }
            // Session messages are a few hundred bytes of JSON objects.
            Err(e) => debug_assert!(false, "session message failed to frame: {e}"),
        }
    }

    fn send_ping(&mut self, now: Instant) {
        let timeout = self.config.ping_timeout.as_secs().max(1);
        self.send_internal(&Ping { timeout: Some(timeout) }.into());
        self.ping_pending = false;
        // Ping at half the interval the peer waits for, so one late ping is not fatal.
        let peer_waits = self.peer_timeout.unwrap_or(self.config.ping_timeout);
        self.next_ping = Some(now + peer_waits / 2);
    }

    fn emit(&mut self, bytes: Bytes) {
        if self.gzip_out {
            self.gzip_buf.extend_from_slice(&bytes);
        } else {
            self.transmits.push_back(bytes);
        }
    }

    /// Capacity of the buffer outgoing gzip messages are assembled in.
    #[cfg(test)]
    pub(crate) fn gzip_buffer_capacity(&self) -> usize {
        self.gzip_buf.capacity()
    }

    fn finish_message(&mut self) {
        if self.gzip_out {
            let store = std::mem::take(&mut self.store_only) || self.gzip_buf.len() < GZIP_STORE_BELOW;
            let level = if store { 0 } else { self.config.gzip_level };
            let compressed = self.deflater.compress(&self.gzip_buf, level);
            // A large buffer is kept while large messages follow one another (a file sent
            // range by range) and let go with the first small one after them: an idle
            // connection does not hold the largest message it ever sent.
            if self.gzip_buf.len() <= GZIP_BUF_KEPT && self.gzip_buf.capacity() > GZIP_BUF_KEPT {
                self.gzip_buf = Vec::new();
            }
            self.gzip_buf.clear();
            self.transmits.push_back(Bytes::from(compressed));
        }
    }

    fn fail(&mut self, error: Error) {
        if self.phase != Phase::Closed {
            self.phase = Phase::Closed;
            self.events.push_back(Event::Closed(CloseReason::Error(error)));
            self.release_input();
        }
    }

    fn release_input(&mut self) {
        self.raw_in = BytesMut::new();
        self.plain_in = BytesMut::new();
        self.next_ping = None;
    }

    /// Decodes one item; `Ok(false)` when more input is needed.
    ///
    /// Once `gzip` is in use, each compressed unit must hold exactly one whole message
    /// (`gzip.md`): the inflater stops at the end of each unit, and before the next one is
    /// inflated, the decoder must have taken every byte of this one and be between messages,
    /// having begun exactly one.
    fn decode_next(&mut self) -> Result<bool, Error> {
        loop {
            let item = self.decoder.decode(&mut self.plain_in).map_err(PeerMisbehaved::from)?;
            if let Some(item) = item {
                if self.inflater.is_some() && matches!(item, Item::Frame(_)) {
                    self.unit_messages += 1;
                    if self.unit_messages > 1 {
                        return Err(PeerMisbehaved::from(GzipError::NotOneMessage("it holds a second message")).into());
                    }
                }
                self.handle_item(item)?;
                return Ok(true);
            }
            let Some(inflater) = self.inflater.as_mut() else {
                return Ok(false);
            };
            if std::mem::take(&mut self.unit_end_pending) {
                let reason = if !self.plain_in.is_empty() || !self.decoder.at_message_boundary() {
                    Some("a message continues past its end")
                } else if self.unit_messages == 0 {
                    Some("it holds no message")
                } else {
                    None
                };
                if let Some(reason) = reason {
                    return Err(PeerMisbehaved::from(GzipError::NotOneMessage(reason)).into());
                }
                self.unit_messages = 0;
            }
            let n =
                inflater.inflate(&mut self.raw_in, &mut self.plain_in, INFLATE_STEP).map_err(PeerMisbehaved::from)?;
            if inflater.take_unit_end() {
                self.unit_end_pending = true;
                continue;
            }
            if n == 0 {
                return Ok(false);
            }
        }
    }

    fn handle_item(&mut self, item: Item) -> Result<(), Error> {
        let frame = match item {
            Item::Frame(f) => f,
            Item::Chunk(data) => {
                if self.deliver_chunks {
                    self.events.push_back(Event::AttachmentChunk(data));
                }
                return Ok(());
            }
            Item::End => {
                if std::mem::take(&mut self.deliver_chunks) {
                    self.events.push_back(Event::AttachmentEnd);
                }
                return Ok(());
            }
        };
        // Signed bodies are JSON on every connection (see the frame decoder).
        let msgpack = self.msgpack && !frame.kind.is_signed();
        let message = Message::decode_bytes(&frame.body, msgpack).map_err(PeerMisbehaved::from)?;
        let unknown = matches!(message, Message::Unknown { .. });
        if !unknown && frame.has_attachment() != message.has_attachment() {
            return Err(PeerMisbehaved::WrongFrameKind(message.kind().to_owned()).into());
        }
        let unexpected = |phase: Phase, m: &Message| -> Error {
            PeerMisbehaved::Unexpected { expected: phase.expecting(), got: m.kind().to_owned() }.into()
        };
        match (self.phase, message) {
            (Phase::AwaitGreeting, Message::CoreGreeting(g)) => self.on_greeting(g),
            (Phase::AwaitStart, Message::CoreStart(s)) => self.on_start(s),
            (Phase::AwaitGreeting | Phase::AwaitStart, m) => Err(unexpected(self.phase, &m)),
            (_, Message::CorePing(p)) => {
                self.on_ping(&p);
                Ok(())
            }
            (Phase::AwaitKeys, Message::CoreKeys(k)) => {
                self.phase = Phase::AwaitKeysStored;
                self.events.push_back(Event::KeysReceived(k));
                Ok(())
            }
            (Phase::AwaitKeysAck, Message::CoreKeysAcknowledgment(_)) => {
                self.events.push_back(Event::KeysAcknowledged);
                self.become_ready();
                Ok(())
            }
            (Phase::Ready, m) if !is_session_message(&m) => {
                let has_attachment = frame.has_attachment();
                self.deliver_chunks = has_attachment;
                self.events.push_back(Event::Message(Incoming {
                    message: m,
                    body: frame.body,
                    signature: frame.signature,
                    has_attachment,
                }));
                Ok(())
            }
            // Before the key exchange completes unknown messages are ignored (and their
            // attachments dropped); known ones are a violation.
            (_, Message::Unknown { .. }) => {
                self.deliver_chunks = false;
                Ok(())
            }
            (phase, m) => Err(unexpected(phase, &m)),
        }
    }

    fn on_greeting(&mut self, g: Greeting) -> Result<(), Error> {
        if g.peer == self.config.peer_id {
            return Err(Error::Loopback);
        }
        let protocol =
            self.config.protocols.iter().copied().filter(|p| g.protocol.contains(p)).max().ok_or_else(|| {
                PeerIncompatible::NoCommonProtocol { ours: self.config.protocols.clone(), theirs: g.protocol.clone() }
            })?;
        let extensions: Vec<String> =
            self.config.extensions.iter().filter(|e| g.extensions.contains(e)).cloned().collect();
        let start = Start {
            software: self.config.software.clone(),
            protocol,
            extensions: extensions.clone(),
            peer: self.config.peer_id,
            name: self.config.name.clone(),
        };
        self.send_internal(&start.into());
        self.connected(Handshake { protocol, extensions, peer: g.peer, software: g.software, name: g.name });
        Ok(())
    }

    fn on_start(&mut self, s: Start) -> Result<(), Error> {
        if s.peer == self.config.peer_id {
            return Err(Error::Loopback);
        }
        if !self.config.protocols.contains(&s.protocol) {
            return Err(PeerMisbehaved::NotOffered(format!("protocol {}", s.protocol)).into());
        }
        if let Some(e) = s.extensions.iter().find(|e| !self.config.extensions.contains(e)) {
            return Err(PeerMisbehaved::NotOffered(format!("extension {e:?}")).into());
        }
        self.connected(Handshake {
            protocol: s.protocol,
            extensions: s.extensions,
            peer: s.peer,
            software: s.software,
            name: s.name,
        });
        Ok(())
    }

    /// Common tail of the handshake: switch on gzip, announce, ping, start key exchange.
    fn connected(&mut self, handshake: Handshake) {
        self.msgpack = handshake.has_extension(EXT_MSGPACK);
        if self.msgpack {
            self.decoder.expect_msgpack();
        }
        if handshake.has_extension(EXT_GZIP) {
            self.gzip_out = true;
            // Whatever followed `core.start` in the buffer is already compressed.
            let rest = self.plain_in.split();
            let mut raw = rest;
            raw.extend_from_slice(&self.raw_in);
            self.raw_in = raw;
            self.inflater = Some(Inflater::new());
        }
        self.handshake = Some(handshake.clone());
        self.events.push_back(Event::Connected(handshake));
        self.send_ping(self.last_rx);
        match std::mem::replace(&mut self.config.key_exchange, KeyExchange::None) {
            KeyExchange::None => self.become_ready(),
            KeyExchange::Send(keys) => {
                self.send_internal(&keys.into());
                self.phase = Phase::AwaitKeysAck;
            }
            KeyExchange::Receive => self.phase = Phase::AwaitKeys,
        }
    }

    fn become_ready(&mut self) {
        self.phase = Phase::Ready;
        self.events.push_back(Event::Ready);
    }

    fn on_ping(&mut self, p: &Ping) {
        if let Some(secs) = p.timeout {
            let t = Duration::from_secs(secs).clamp(MIN_PEER_TIMEOUT, MAX_PEER_TIMEOUT);
            let changed = self.peer_timeout != Some(t);
            self.peer_timeout = Some(t);
            if changed {
                // Re-plan our next ping against the interval the peer actually waits.
                let due = self.last_rx + t / 2;
                self.next_ping = Some(self.next_ping.map_or(due, |n| n.min(due)));
            }
        }
    }
}

/// Messages the session consumes itself; they are violations once the session is ready.
fn is_session_message(m: &Message) -> bool {
    matches!(
        m,
        Message::CoreGreeting(_)
            | Message::CoreStart(_)
            | Message::CoreKeys(_)
            | Message::CoreKeysAcknowledgment(_)
            | Message::SrpHello(_)
            | Message::SrpChallenge(_)
            | Message::SrpProof(_)
            | Message::SrpVerify(_)
            | Message::SrpError(_)
    )
}
