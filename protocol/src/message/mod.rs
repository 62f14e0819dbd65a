//! Typed messages for every message type in the spec, plus [`Message::Unknown`].
//!
//! A body is decoded in two steps: a cheap probe reads only its `type` (skipping the rest
//! without allocating), then a known body is deserialized straight into that type's struct,
//! JSON and MessagePack alike (no intermediate tree). Unknown keys are ignored (serde's
//! default, never `deny_unknown_fields` on the wire); an unknown `type` becomes
//! [`Message::Unknown`] with the body's raw bytes kept, never parsed, so the caller can ignore
//! it as the spec requires. Integers are `u64` and exact to 2⁶⁴−1; datetimes are
//! [`crate::time::Timestamp`].
//!
//! Peer input is hostile: before a known body is deserialized, its values are counted
//! without allocating, and a body with more than [`MAX_VALUES`] of them, or nested deeper
//! than [`crate::msgpack::MAX_DEPTH`], is refused. So a message costs memory in proportion to
//! its size on the wire (about 130 bytes per value at worst, a few MiB in all), never the
//! 30–70× a generic tree of tiny values would.
//!
//! One submodule per spec document: [`core`], [`tracker`], [`database`], [`directory`],
//! [`rsync`], [`untrusted`], [`code_spread`], plus [`srp`] for this project's unofficial
//! secure-channel messages (see `docs/protocol-decisions.md`).

pub mod code_spread;
pub mod core;
pub mod database;
pub mod directory;
pub mod rsync;
pub mod srp;
pub mod tracker;
pub mod untrusted;

use std::borrow::Cow;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Most values (scalars, containers and map keys, counted at every depth) a body of a known
/// message type may hold. The largest messages this implementation sends hold a few hundred;
/// at this limit a decoded message costs at most about 16 MiB whatever its shape.
pub const MAX_VALUES: usize = 1 << 17;

/// Why a body could not be turned into a message. Peer-caused: close the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The body is not one JSON object (MessagePack map), or its `type` is not a string.
    #[error("message body is not a JSON object with a string type: {0}")]
    Malformed(String),
    /// The body has no `type` key.
    #[error("message has no type")]
    MissingType,
    /// A known message type with missing keys or wrong value types.
    #[error("invalid {kind} message: {reason}")]
    Invalid {
        /// The message type.
        kind: String,
        /// What serde reported.
        reason: String,
    },
    /// A known message type whose body holds more than [`MAX_VALUES`] values.
    #[error("{kind} message holds {values} values, more than the limit of {MAX_VALUES}")]
    TooManyValues {
        /// The message type.
        kind: String,
        /// How many it holds.
        values: usize,
    },
}

/// The body of a message of unknown type, exactly as it was received: never parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawBody {
    /// A JSON object (possibly with trailing whitespace).
    Json(Bytes),
    /// A MessagePack map (on a `.rs.clearskies.msgpack` connection).
    MsgPack(Bytes),
}

#[derive(Deserialize)]
struct TypeProbe<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct Tagged<'a, T> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(flatten)]
    inner: &'a T,
}

/// A body's encoding, and how to deserialize a known type from it.
#[derive(Clone, Copy)]
enum Format {
    Json,
    MsgPack,
}

impl Format {
    /// Reads the `type` of a well-formed body; nothing else is kept.
    fn probe(self, body: &[u8]) -> Result<Cow<'_, str>, MessageError> {
        let probe: TypeProbe<'_> = match self {
            Format::Json => serde_json::from_slice(body).map_err(|e| MessageError::Malformed(e.to_string()))?,
            Format::MsgPack => {
                TypeProbe::deserialize(&mut rmp_serde::Deserializer::from_read_ref(body).with_human_readable())
                    .map_err(|e| MessageError::Malformed(e.to_string()))?
            }
        };
        probe.kind.ok_or(MessageError::MissingType)
    }

    /// Deserializes a known type straight from the body (after its values were counted).
    fn typed<T: DeserializeOwned>(self, body: &[u8]) -> Result<T, String> {
        match self {
            Format::Json => serde_json::from_slice(body).map_err(|e| e.to_string()),
            Format::MsgPack => T::deserialize(&mut rmp_serde::Deserializer::from_read_ref(body).with_human_readable())
                .map_err(|e| e.to_string()),
        }
    }

    /// How many values a body holds (it is already known to be well formed).
    fn values(self, body: &[u8]) -> Result<usize, MessageError> {
        match self {
            Format::Json => Ok(json_values(body)),
            Format::MsgPack => {
                crate::msgpack::check(body).map(|s| s.values).map_err(|e| MessageError::Malformed(e.to_string()))
            }
        }
    }

    fn raw(self, body: Bytes) -> RawBody {
        match self {
            Format::Json => RawBody::Json(body),
            Format::MsgPack => RawBody::MsgPack(body),
        }
    }
}

/// Counts the values of a valid JSON text without parsing it: every string (keys included),
/// number, literal, object and array is one. Allocates nothing.
fn json_values(body: &[u8]) -> usize {
    let (mut values, mut in_string, mut escaped, mut expect_value) = (0usize, false, false, true);
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => {
                values += 1;
                in_string = true;
                expect_value = false;
            }
            b'{' | b'[' => {
                values += 1;
                expect_value = true;
            }
            b',' | b':' => expect_value = true,
            b' ' | b'\t' | b'\n' | b'\r' | b'}' | b']' => {}
            _ if expect_value => {
                // The first byte of a number, `true`, `false` or `null`.
                values += 1;
                expect_value = false;
            }
            _ => {}
        }
    }
    values
}

macro_rules! messages {
    ($( $(#[$doc:meta])* $variant:ident($ty:ty) = $name:literal, attachment = $att:literal; )*) => {
        /// A decoded protocol message.
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum Message {
            $( $(#[$doc])* $variant($ty), )*
            /// A message type this implementation does not know; ignore it.
            Unknown {
                /// Its `type`.
                kind: String,
                /// The whole body, `type` included, as received (never parsed).
                body: RawBody,
            },
        }

        impl Message {
            /// The `type` string.
            pub fn kind(&self) -> &str {
                match self {
                    $( Message::$variant(_) => $name, )*
                    Message::Unknown { kind, .. } => kind,
                }
            }

            /// Whether this message type carries a binary attachment (`!` or `$` frames).
            pub fn has_attachment(&self) -> bool {
                match self {
                    $( Message::$variant(_) => $att, )*
                    Message::Unknown { .. } => false,
                }
            }

            /// Decodes a JSON body (as a [`crate::frame::Frame`] holds it).
            pub fn decode(body: &[u8]) -> Result<Message, MessageError> {
                Message::decode_in(Format::Json, body, || Bytes::copy_from_slice(body))
            }

            /// Reads a MessagePack body (`.rs.clearskies.msgpack`) as [`Message::decode`]
            /// reads JSON, with the same checks, straight into the message's struct. The body
            /// must be exactly one map, with no bytes after it.
            pub fn decode_msgpack(body: &[u8]) -> Result<Message, MessageError> {
                Message::decode_in(Format::MsgPack, body, || Bytes::copy_from_slice(body))
            }

            /// [`Message::decode`] or [`Message::decode_msgpack`] of a body already held in
            /// [`Bytes`]: an unknown message shares them instead of copying.
            pub fn decode_bytes(body: &Bytes, msgpack: bool) -> Result<Message, MessageError> {
                let format = if msgpack { Format::MsgPack } else { Format::Json };
                Message::decode_in(format, body, || body.clone())
            }

            fn decode_in(format: Format, body: &[u8], keep: impl FnOnce() -> Bytes) -> Result<Message, MessageError> {
                if let Format::MsgPack = format {
                    if !body.first().is_some_and(|&b| matches!(b, 0x80..=0x8f | 0xde | 0xdf)) {
                        return Err(MessageError::Malformed("a message body must be a map".into()));
                    }
                    // Structure, depth and claimed lengths, before serde reads anything.
                    crate::msgpack::check(body).map_err(|e| MessageError::Malformed(e.to_string()))?;
                }
                let kind = format.probe(body)?;
                let invalid = |reason: String| MessageError::Invalid { kind: kind.to_string(), reason };
                let known = match kind.as_ref() {
                    $( $name => true, )*
                    _ => false,
                };
                if !known {
                    return Ok(Message::Unknown { kind: kind.into_owned(), body: format.raw(keep()) });
                }
                let values = format.values(body)?;
                if values > MAX_VALUES {
                    return Err(MessageError::TooManyValues { kind: kind.into_owned(), values });
                }
                match kind.as_ref() {
                    $( $name => format.typed(body).map(Message::$variant).map_err(invalid), )*
                    _ => Err(MessageError::MissingType),
                }
            }

            /// The body in MessagePack (`.rs.clearskies.msgpack`): the same object as
            /// [`Message::encode`]'s JSON, keys as strings. An unknown message received as
            /// MessagePack is written back as it came.
            pub fn encode_msgpack(&self) -> Vec<u8> {
                if let Message::Unknown { body: RawBody::MsgPack(raw), .. } = self {
                    return raw.to_vec();
                }
                let json: Value = serde_json::from_slice(&self.encode()).unwrap_or(Value::Null);
                // Cannot fail: a JSON value always has a MessagePack form.
                rmp_serde::to_vec_named(&json).unwrap_or_default()
            }

            /// Encodes the compact JSON body, `type` first.
            pub fn encode(&self) -> Vec<u8> {
                let encoded = match self {
                    $( Message::$variant(m) => serde_json::to_vec(&Tagged { kind: $name, inner: m }), )*
                    Message::Unknown { body: RawBody::Json(raw), .. } => Ok(raw.to_vec()),
                    // Our own re-encoding of a body received as MessagePack (for tests and
                    // tools; the daemon never re-encodes what it does not understand).
                    // A body JSON cannot carry (a non-string key) comes out as its type alone.
                    Message::Unknown { body: RawBody::MsgPack(raw), kind } => {
                        let value = rmp_serde::from_slice::<Value>(raw)
                            .unwrap_or_else(|_| serde_json::json!({ "type": kind }));
                        serde_json::to_vec(&value)
                    }
                };
                // Cannot fail: every map key serializes as a string and no value is a float.
                encoded.expect("message structs always serialize to JSON")
            }
        }

        $(
            impl From<$ty> for Message {
                fn from(m: $ty) -> Message {
                    Message::$variant(m)
                }
            }
        )*
    };
}

messages! {
    /// `core.greeting`: the server's first message.
    CoreGreeting(core::Greeting) = "core.greeting", attachment = false;
    /// `core.start`: the client's answer to the greeting.
    CoreStart(core::Start) = "core.start", attachment = false;
    /// `core.keys`: the keys of the access level an access code grants.
    CoreKeys(core::Keys) = "core.keys", attachment = false;
    /// `core.keys_acknowledgment`.
    CoreKeysAcknowledgment(core::KeysAcknowledgment) = "core.keys_acknowledgment", attachment = false;
    /// `core.ping`: keep-alive.
    CorePing(core::Ping) = "core.ping", attachment = false;
    /// `tracker.greeting`.
    TrackerGreeting(tracker::Greeting) = "tracker.greeting", attachment = false;
    /// `tracker.start`.
    TrackerStart(tracker::Start) = "tracker.start", attachment = false;
    /// `tracker.connection`: our addresses.
    TrackerConnection(tracker::Connection) = "tracker.connection", attachment = false;
    /// `tracker.register`: the IDs we serve.
    TrackerRegister(tracker::Register) = "tracker.register", attachment = false;
    /// `tracker.peers`: the peers of one club.
    TrackerPeers(tracker::Peers) = "tracker.peers", attachment = false;
    /// `tracker.ping`.
    TrackerPing(tracker::Ping) = "tracker.ping", attachment = false;
    /// `database.update`: one record.
    DatabaseUpdate(database::Update) = "database.update", attachment = false;
    /// `database.get_updates`: subscribe and ask for news.
    DatabaseGetUpdates(database::GetUpdates) = "database.get_updates", attachment = false;
    /// `directory.get_presence`.
    DirectoryGetPresence(directory::GetPresence) = "directory.get_presence", attachment = false;
    /// `directory.bloom_filter` (the filter is the attachment).
    DirectoryBloomFilter(directory::BloomFilter) = "directory.bloom_filter", attachment = true;
    /// `directory.present`.
    DirectoryPresent(directory::Present) = "directory.present", attachment = false;
    /// `directory.get`: ask for file contents by hash.
    DirectoryGet(directory::Get) = "directory.get", attachment = false;
    /// `directory.data` (the contents are the attachment).
    DirectoryData(directory::Data) = "directory.data", attachment = true;
    /// `directory.not_present`.
    DirectoryNotPresent(directory::NotPresent) = "directory.not_present", attachment = false;
    /// `directory.get_error`.
    DirectoryGetError(directory::GetError) = "directory.get_error", attachment = false;
    /// `rsync.signature` (the signature is the attachment).
    RsyncSignature(rsync::Signature) = "rsync.signature", attachment = true;
    /// `rsync.patch` (the delta is the attachment).
    RsyncPatch(rsync::Patch) = "rsync.patch", attachment = true;
    /// `untrusted.manifest`.
    UntrustedManifest(untrusted::Manifest) = "untrusted.manifest", attachment = false;
    /// `untrusted.update`.
    UntrustedUpdate(untrusted::Update) = "untrusted.update", attachment = false;
    /// `untrusted.verify`: a proof-of-storage challenge.
    UntrustedVerify(untrusted::Verify) = "untrusted.verify", attachment = false;
    /// `untrusted.verify_result`.
    UntrustedVerifyResult(untrusted::VerifyResult) = "untrusted.verify_result", attachment = false;
    /// `untrusted.verify_busy`.
    UntrustedVerifyBusy(untrusted::VerifyBusy) = "untrusted.verify_busy", attachment = false;
    /// `code_spread.list`: every known code, on connect.
    CodeSpreadList(code_spread::List) = "code_spread.list", attachment = false;
    /// `code_spread.update`: changed codes.
    CodeSpreadUpdate(code_spread::Update) = "code_spread.update", attachment = false;
    /// `.rs.clearskies.srp.hello`: SRP step 1 (client).
    SrpHello(srp::Hello) = ".rs.clearskies.srp.hello", attachment = false;
    /// `.rs.clearskies.srp.challenge`: SRP step 2 (server).
    SrpChallenge(srp::Challenge) = ".rs.clearskies.srp.challenge", attachment = false;
    /// `.rs.clearskies.srp.proof`: SRP step 3 (client).
    SrpProof(srp::Proof) = ".rs.clearskies.srp.proof", attachment = false;
    /// `.rs.clearskies.srp.verify`: SRP step 4 (server).
    SrpVerify(srp::Verify) = ".rs.clearskies.srp.verify", attachment = false;
    /// `.rs.clearskies.srp.error`: authentication refused.
    SrpError(srp::Error) = ".rs.clearskies.srp.error", attachment = false;
    /// `.rs.clearskies.updates_done`: the answer to `database.get_updates` is complete.
    DatabaseUpdatesDone(database::UpdatesDone) = ".rs.clearskies.updates_done", attachment = false;
    /// `.rs.clearskies.code_spread`: long-lived codes' verifiers (this project's code
    /// spreading).
    CodeVerifiers(code_spread::Verifiers) = ".rs.clearskies.code_spread", attachment = false;
    /// `.rs.clearskies.rekey`: the share's new keys after a rotation.
    CoreRekey(core::Rekey) = ".rs.clearskies.rekey", attachment = false;
}

#[cfg(test)]
mod tests;
