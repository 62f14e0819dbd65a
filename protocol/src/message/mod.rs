//! Typed messages for every message type in the spec, plus [`Message::Unknown`].
//!
//! A body is decoded in two steps: a cheap probe reads only its `type`, then the body is
//! deserialized straight into that type's struct. Unknown keys are ignored (serde's default,
//! never `deny_unknown_fields` on the wire); an unknown `type` becomes [`Message::Unknown`]
//! with the whole body kept, so the caller can ignore it as the spec requires. Integers are
//! `u64` and exact to 2⁶⁴−1; datetimes are [`crate::time::Timestamp`].
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

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Why a body could not be turned into a message. Peer-caused: close the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The body is not one JSON object, or its `type` is not a string.
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
                /// The whole body, `type` included.
                body: Map<String, Value>,
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
                let probe: TypeProbe<'_> =
                    serde_json::from_slice(body).map_err(|e| MessageError::Malformed(e.to_string()))?;
                let kind = probe.kind.ok_or(MessageError::MissingType)?;
                let invalid = |e: serde_json::Error| MessageError::Invalid {
                    kind: kind.to_string(),
                    reason: e.to_string(),
                };
                match kind.as_ref() {
                    $( $name => serde_json::from_slice(body).map(Message::$variant).map_err(invalid), )*
                    _ => {
                        let body: Map<String, Value> =
                            serde_json::from_slice(body).map_err(|e| MessageError::Malformed(e.to_string()))?;
                        Ok(Message::Unknown { kind: kind.into_owned(), body })
                    }
                }
            }

            /// The body in MessagePack (`.rs.clearskies.msgpack`): the same object as
            /// [`Message::encode`]'s JSON, keys as strings.
            pub fn encode_msgpack(&self) -> Vec<u8> {
                let json: Value = serde_json::from_slice(&self.encode()).unwrap_or(Value::Null);
                // Cannot fail: a JSON value always has a MessagePack form.
                rmp_serde::to_vec_named(&json).unwrap_or_default()
            }

            /// Reads a MessagePack body (`.rs.clearskies.msgpack`) as [`Message::decode`]
            /// reads JSON, with the same checks (nesting is bounded by the MessagePack reader
            /// and again by the JSON one).
            pub fn decode_msgpack(body: &[u8]) -> Result<Message, MessageError> {
                let value: Value = rmp_serde::from_slice(body).map_err(|e| MessageError::Malformed(e.to_string()))?;
                if !value.is_object() {
                    return Err(MessageError::Malformed("a message body must be a map".into()));
                }
                let json = serde_json::to_vec(&value).map_err(|e| MessageError::Malformed(e.to_string()))?;
                Message::decode(&json)
            }

            /// Encodes the compact JSON body, `type` first.
            pub fn encode(&self) -> Vec<u8> {
                let encoded = match self {
                    $( Message::$variant(m) => serde_json::to_vec(&Tagged { kind: $name, inner: m }), )*
                    Message::Unknown { body, .. } => serde_json::to_vec(body),
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
}

#[cfg(test)]
mod tests;
