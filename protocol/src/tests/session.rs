use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;

use super::util::Pair;
use crate::error::{Error, PeerIncompatible, PeerMisbehaved};
use crate::frame::{self, FrameError, Kind};
use crate::message::core::{AccessLevel, KeyEntry, Keys};
use crate::message::{database, directory, Message};
use crate::session::{
    CloseReason, Config, Event, KeyExchange, Role, SendError, Session, EXT_GZIP, EXT_MSGPACK, EXT_RSYNC,
};
use crate::{PeerId, SecretKey, Sha256Hash};

fn client_config() -> Config {
    Config::new(Role::Client, PeerId([1; 16]))
}

fn server_config() -> Config {
    Config::new(Role::Server, PeerId([2; 16]))
}

fn keys() -> Keys {
    Keys {
        access_level: AccessLevel::ReadWrite,
        keys: vec![KeyEntry {
            access_level: AccessLevel::ReadWrite,
            id: Some(Sha256Hash([7; 32])),
            key: Some(SecretKey([9; 32])),
            private_rsa: Some("-----BEGIN RSA PRIVATE KEY-----\n...".into()),
            public_rsa: None,
        }],
        untrusted_seed: None,
        generation: 0,
    }
}

fn get_updates() -> Message {
    database::GetUpdates::default().into()
}

fn frame_bytes(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode_frame(Kind::Plain, &m.encode(), None, &mut out).unwrap();
    out
}

fn ready_pair(c: Config, s: Config) -> Pair {
    let mut pair = Pair::with_configs(c, s);
    pair.drive();
    assert!(pair.client.session.is_ready(), "{:?}", pair.client.events);
    assert!(pair.server.session.is_ready(), "{:?}", pair.server.events);
    pair
}

#[test]
fn handshake_negotiates_version_and_extensions() {
    let mut c = client_config();
    c.protocols = vec![1, 2];
    c.extensions = vec![EXT_RSYNC.into(), "directory".into(), ".x.unknown".into()];
    let mut s = server_config();
    s.extensions = vec![EXT_GZIP.into(), "directory".into(), EXT_RSYNC.into()];
    s.name = Some("Jaren's Laptop".into());
    let pair = ready_pair(c, s);
    let hs = pair.client.session.handshake().unwrap();
    assert_eq!(hs.protocol, 1);
    assert_eq!(hs.extensions, vec![EXT_RSYNC.to_owned(), "directory".to_owned()]);
    assert_eq!(hs.peer, PeerId([2; 16]));
    assert_eq!(hs.name.as_deref(), Some("Jaren's Laptop"));
    let shs = pair.server.session.handshake().unwrap();
    assert_eq!(shs.extensions, hs.extensions);
    assert_eq!(shs.peer, PeerId([1; 16]));
    assert!(matches!(pair.client.events[0], Event::Connected(_)));
    assert!(pair.client.events.contains(&Event::Ready));
}

#[test]
fn no_common_protocol_closes_the_client() {
    let mut c = client_config();
    c.protocols = vec![2];
    let mut pair = Pair::with_configs(c, server_config());
    pair.drive();
    assert_eq!(
        pair.client.closed(),
        Some(&CloseReason::Error(Error::PeerIncompatible(PeerIncompatible::NoCommonProtocol {
            ours: vec![2],
            theirs: vec![1]
        })))
    );
}

#[test]
fn loopback_is_refused_on_both_roles() {
    let mut pair =
        Pair::with_configs(Config::new(Role::Client, PeerId([5; 16])), Config::new(Role::Server, PeerId([5; 16])));
    pair.drive();
    assert_eq!(pair.client.closed(), Some(&CloseReason::Error(Error::Loopback)));

    // A server seeing its own ID in core.start refuses too.
    let now = Instant::now();
    let mut server = Session::new(server_config(), now);
    let start = crate::message::core::Start {
        software: String::new(),
        protocol: 1,
        extensions: vec![],
        peer: PeerId([2; 16]),
        name: None,
    };
    server.handle_input(now, &frame_bytes(&start.into()));
    let events: Vec<Event> = std::iter::from_fn(|| server.poll_event()).collect();
    assert_eq!(events, vec![Event::Closed(CloseReason::Error(Error::Loopback))]);
}

#[test]
fn start_must_choose_what_was_offered() {
    let now = Instant::now();
    let mut server = Session::new(server_config(), now);
    let start = crate::message::core::Start {
        software: String::new(),
        protocol: 1,
        extensions: vec![EXT_GZIP.into()],
        peer: PeerId([1; 16]),
        name: None,
    };
    server.handle_input(now, &frame_bytes(&start.into()));
    assert!(matches!(
        server.poll_event(),
        Some(Event::Closed(CloseReason::Error(Error::PeerMisbehaved(PeerMisbehaved::NotOffered(_)))))
    ));
}

#[test]
fn key_exchange_gates_application_messages() {
    let mut s = server_config();
    s.key_exchange = KeyExchange::Send(keys());
    let mut c = client_config();
    c.key_exchange = KeyExchange::Receive;
    let mut pair = Pair::with_configs(c, s);
    pair.client.auto_ack_keys = false;
    pair.drive();
    assert!(pair.client.events.contains(&Event::KeysReceived(keys())));
    assert!(!pair.client.session.is_ready());
    assert!(!pair.server.session.is_ready());
    assert_eq!(pair.client.session.send(&get_updates()), Err(SendError::NotReady));
    assert_eq!(pair.server.session.send(&get_updates()), Err(SendError::NotReady));

    pair.client.session.acknowledge_keys().unwrap();
    assert_eq!(pair.client.session.acknowledge_keys(), Err(SendError::NoKeysPending));
    pair.drive();
    assert!(pair.server.events.contains(&Event::KeysAcknowledged));
    assert!(pair.server.session.is_ready() && pair.client.session.is_ready());
    pair.client.session.send(&get_updates()).unwrap();
    pair.drive();
    assert_eq!(pair.server.message_kinds(), vec!["database.get_updates"]);
}

#[test]
fn application_message_before_keys_closes_the_connection() {
    let now = Instant::now();
    let mut c = client_config();
    c.key_exchange = KeyExchange::Receive;
    let mut client = Session::new(c, now);
    let greeting = crate::message::core::Greeting {
        software: "x".into(),
        name: None,
        protocol: vec![1],
        extensions: vec![],
        peer: PeerId([2; 16]),
    };
    let mut wire = frame_bytes(&greeting.into());
    // Unknown types are ignored before the exchange; known application messages are not.
    wire.extend(frame_bytes(&Message::decode(br#"{"type":".x.y"}"#).unwrap()));
    wire.extend(frame_bytes(&get_updates()));
    client.handle_input(now, &wire);
    let events: Vec<Event> = std::iter::from_fn(|| client.poll_event()).collect();
    assert!(matches!(events[0], Event::Connected(_)));
    assert_eq!(
        events.last(),
        Some(&Event::Closed(CloseReason::Error(Error::PeerMisbehaved(PeerMisbehaved::Unexpected {
            expected: "core.keys",
            got: "database.get_updates".into()
        }))))
    );
}

#[test]
fn attachments_stream_in_order_and_signed_bodies_pass_verbatim() {
    let mut pair = ready_pair(client_config(), server_config());
    let sha = Sha256Hash([3; 32]);
    let data = Message::from(directory::Data { sha256: sha, range: Some([0, 6]) });
    assert_eq!(pair.server.session.send(&data), Err(SendError::WrongKind("directory.data".into())));
    pair.server.session.send_with_attachment(&data).unwrap();
    assert_eq!(pair.server.session.send(&get_updates()), Err(SendError::AttachmentOpen));
    pair.server.session.send_chunk(Bytes::from_static(b"abc")).unwrap();
    pair.server.session.send_chunk(Bytes::from_static(b"def")).unwrap();
    let now = pair.now;
    pair.server.session.end_attachment(now).unwrap();
    assert_eq!(pair.server.session.end_attachment(now), Err(SendError::NoAttachment));
    let body = br#"{"type":"database.update","key":"/a","uuid":"9223bf8014507dca629123485dc3a207","last_updated_by":"b934d9de020109fde790cd39acce73fc","last_updated_rev":15,"update_time":"2014-02-23T23:45:39Z"}"#;
    pair.server.session.send_signed(body, b"c2lnbmF0dXJl", false).unwrap();
    pair.drive();
    assert_eq!(pair.client.message_kinds(), vec!["directory.data", "database.update"]);
    assert_eq!(pair.client.attachment_bytes(), b"abcdef".to_vec());
    let signed = pair
        .client
        .events
        .iter()
        .find_map(|e| match e {
            Event::Message(m) if m.signature.is_some() => Some(m.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(signed.body.as_ref(), &body[..]);
    assert_eq!(signed.signature.as_deref(), Some(&b"c2lnbmF0dXJl"[..]));
    let end = pair.client.events.iter().position(|e| *e == Event::AttachmentEnd).unwrap();
    let update =
        pair.client.events.iter().position(|e| matches!(e, Event::Message(m) if m.signature.is_some())).unwrap();
    assert!(end < update);
}

#[test]
fn gzip_compresses_everything_after_start() {
    let mut c = client_config();
    c.extensions = vec![EXT_GZIP.into()];
    let mut s = server_config();
    s.extensions = vec![EXT_GZIP.into()];
    let mut pair = ready_pair(c, s);
    let before = pair.server.bytes_sent;
    let text: Vec<u8> = b"All work and no play makes Jack a dull boy. ".iter().copied().cycle().take(1 << 20).collect();
    let data = Message::from(directory::Data { sha256: Sha256Hash([1; 32]), range: None });
    pair.server.session.send_with_attachment(&data).unwrap();
    for piece in text.chunks(256 << 10) {
        pair.server.session.send_chunk(Bytes::copy_from_slice(piece)).unwrap();
    }
    let now = pair.now;
    pair.server.session.end_attachment(now).unwrap();
    pair.drive();
    assert_eq!(pair.client.attachment_bytes(), text);
    let wire = pair.server.bytes_sent - before;
    assert!(wire < text.len() / 50, "1 MiB of text took {wire} bytes on the wire");
    // And the other direction, through the inflater, keeps message boundaries.
    pair.client.session.send(&get_updates()).unwrap();
    pair.client.session.send(&get_updates()).unwrap();
    pair.drive();
    assert_eq!(pair.server.message_kinds(), vec!["database.get_updates", "database.get_updates"]);
    assert!(pair.client.closed().is_none() && pair.server.closed().is_none());
}

#[test]
fn small_gzip_messages_go_stored_and_larger_ones_deflated() {
    let mut pair = gzip_pair();
    let mut units = Vec::new();
    // The first deflate block's type (RFC 1951: BTYPE, bits 1-2 of the byte after the zlib
    // header): 0 stored, 1 fixed, 2 dynamic Huffman codes.
    let mut block_type = |m: &Message| {
        pair.server.session.send(m).unwrap();
        let unit = pair.server.session.poll_transmit().unwrap();
        assert!(pair.server.session.poll_transmit().is_none(), "one unit");
        let z = &unit[unit.iter().position(|&b| b == b':').unwrap() + 1..];
        let kind = (z[2] >> 1) & 3;
        units.push(unit);
        kind
    };
    assert_eq!(block_type(&get_updates()), 0, "a small message is stored");
    assert_ne!(block_type(&update()), 0, "a larger one is deflated");
    let now = pair.now;
    for unit in units {
        pair.client.session.handle_input(now, &unit);
    }
    pair.drive();
    assert_eq!(pair.client.message_kinds(), vec!["database.get_updates", "database.update"]);
}

/// A ready pair with `gzip` on both sides.
fn gzip_pair() -> Pair {
    let mut c = client_config();
    c.extensions = vec![EXT_GZIP.into()];
    let mut s = server_config();
    s.extensions = vec![EXT_GZIP.into()];
    ready_pair(c, s)
}

fn gzip_unit_error(pair: &Pair) -> Option<&'static str> {
    match pair.server.closed()? {
        CloseReason::Error(Error::PeerMisbehaved(PeerMisbehaved::Gzip(crate::gzip::GzipError::NotOneMessage(r)))) => {
            Some(r)
        }
        other => panic!("closed for another reason: {other:?}"),
    }
}

#[test]
fn a_gzip_unit_holds_exactly_one_whole_message() {
    let one = frame_bytes(&get_updates());
    // Two messages in one unit.
    let mut pair = gzip_pair();
    let now = pair.now;
    pair.server.session.handle_input(now, &crate::gzip::compress(&[one.clone(), one.clone()].concat(), 6));
    pair.drive();
    assert_eq!(gzip_unit_error(&pair), Some("it holds a second message"));
    assert!(pair.server.message_kinds().len() <= 1);

    // One message split over two units, cut inside the body and between body and chunks.
    let mut with_attachment = Vec::new();
    let data = Message::from(directory::Data { sha256: Sha256Hash([1; 32]), range: None });
    frame::encode_frame(Kind::Attachment, &data.encode(), None, &mut with_attachment).unwrap();
    let body_end = with_attachment.len();
    frame::encode_chunk(b"abc", &mut with_attachment).unwrap();
    frame::encode_end(&mut with_attachment);
    for (message, cut) in [(&one, one.len() / 2), (&with_attachment, body_end)] {
        let mut pair = gzip_pair();
        let now = pair.now;
        let mut wire = crate::gzip::compress(&message[..cut], 6);
        wire.extend(crate::gzip::compress(&message[cut..], 6));
        pair.server.session.handle_input(now, &wire);
        pair.drive();
        assert_eq!(gzip_unit_error(&pair), Some("a message continues past its end"), "cut at {cut}");
    }

    // A unit with nothing in it.
    let mut pair = gzip_pair();
    let now = pair.now;
    pair.server.session.handle_input(now, &crate::gzip::compress(b"", 6));
    pair.drive();
    assert_eq!(gzip_unit_error(&pair), Some("it holds no message"));

    // What a sender must do: one unit per message, attachment included, whatever the
    // pieces the units arrive in.
    let mut pair = gzip_pair();
    let now = pair.now;
    let mut wire = crate::gzip::compress(&one, 6);
    wire.extend(crate::gzip::compress(&with_attachment, 6));
    wire.extend(crate::gzip::compress(&one, 0));
    for piece in wire.chunks(7) {
        pair.server.session.handle_input(now, piece);
    }
    pair.drive();
    assert_eq!(pair.server.closed(), None);
    assert_eq!(pair.server.message_kinds(), vec!["database.get_updates", "directory.data", "database.get_updates"]);
    assert_eq!(pair.server.attachment_bytes(), b"abc");
}

#[test]
fn a_large_gzip_message_buffer_is_let_go_with_the_next_small_message() {
    let mut c = client_config();
    c.extensions = vec![EXT_GZIP.into()];
    let mut s = server_config();
    s.extensions = vec![EXT_GZIP.into()];
    let mut pair = ready_pair(c, s);
    let data = Message::from(directory::Data { sha256: Sha256Hash([1; 32]), range: None });
    let now = pair.now;
    // Two 4 MiB messages in a row (a file sent range by range) keep the buffer...
    for _ in 0..2 {
        pair.server.session.send_with_attachment(&data).unwrap();
        pair.server.session.send_chunk(Bytes::from(vec![7u8; 4 << 20])).unwrap();
        pair.server.session.end_attachment(now).unwrap();
        assert!(pair.server.session.gzip_buffer_capacity() >= 4 << 20);
    }
    // ...the first small one after them lets it go.
    pair.server.session.send(&get_updates()).unwrap();
    assert!(pair.server.session.gzip_buffer_capacity() <= 1 << 20);
    pair.drive();
    assert_eq!(pair.client.message_kinds(), vec!["directory.data", "directory.data", "database.get_updates"]);
    assert_eq!(pair.client.attachment_bytes().len(), 8 << 20);
}

fn update() -> Message {
    let value = serde_json::json!({"size": 123_456_789u64, "sha256": "ab".repeat(32), "mtime": "2026-11-24T06:00:00.000000000Z"});
    Message::from(database::Update {
        key: "/photos/2024/a.jpg".into(),
        value,
        uuid: crate::RecordUuid([7; 16]),
        last_updated_by: PeerId([1; 16]),
        last_updated_rev: 42,
        update_time: crate::time::Timestamp::new(1_700_000_000, 5).unwrap(),
        vector_clock: Default::default(),
        deleted: false,
    })
}

#[test]
fn msgpack_bodies_when_both_offer_it_json_otherwise() {
    for (client_offers, server_offers, with_gzip) in
        [(true, true, false), (true, true, true), (true, false, false), (false, true, false)]
    {
        let ext = |on: bool| {
            let mut e = if on { vec![EXT_MSGPACK.to_owned()] } else { Vec::new() };
            if with_gzip {
                e.push(EXT_GZIP.to_owned());
            }
            e
        };
        let mut c = client_config();
        c.extensions = ext(client_offers);
        let mut s = server_config();
        s.extensions = ext(server_offers);
        let mut pair = ready_pair(c, s);
        let before = pair.client.bytes_sent;
        for _ in 0..10 {
            pair.client.session.send(&update()).unwrap();
        }
        pair.client
            .session
            .send_with_attachment(&directory::Data { sha256: Sha256Hash([3; 32]), range: None }.into())
            .unwrap();
        pair.client.session.send_chunk(Bytes::from_static(b"attached")).unwrap();
        let now = pair.now;
        pair.client.session.end_attachment(now).unwrap();
        pair.drive();
        let kinds = pair.server.message_kinds();
        assert_eq!(kinds.len(), 11, "{kinds:?}");
        assert!(kinds[..10].iter().all(|k| k == "database.update"), "{kinds:?}");
        assert_eq!(pair.server.attachment_bytes(), b"attached");
        let both = client_offers && server_offers;
        let json_size = 10 * frame_bytes(&update()).len();
        let wire = pair.client.bytes_sent - before;
        if both && !with_gzip {
            // Ten updates and a data message still take fewer bytes than the updates alone in JSON.
            assert!(wire < json_size, "msgpack: {wire} bytes for what is {json_size} in JSON");
        }
        if !both {
            assert!(wire > json_size, "JSON when only one side offers msgpack: {wire} vs {json_size}");
        }
        assert!(pair.client.closed().is_none() && pair.server.closed().is_none());
    }
}

#[test]
fn a_json_body_on_a_msgpack_connection_closes_it() {
    let mut c = client_config();
    c.extensions = vec![EXT_MSGPACK.into()];
    let mut s = server_config();
    s.extensions = vec![EXT_MSGPACK.into()];
    let mut pair = ready_pair(c, s);
    let now = pair.now;
    pair.server.session.handle_input(now, &frame_bytes(&get_updates()));
    pair.drive();
    assert!(
        matches!(pair.server.closed(), Some(CloseReason::Error(Error::PeerMisbehaved(_)))),
        "{:?}",
        pair.server.closed()
    );
}

#[test]
fn signed_bodies_stay_json_on_a_msgpack_connection() {
    for with_gzip in [false, true] {
        let mut ext = vec![EXT_MSGPACK.to_owned()];
        if with_gzip {
            ext.push(EXT_GZIP.to_owned());
        }
        let mut c = client_config();
        c.extensions = ext.clone();
        let mut s = server_config();
        s.extensions = ext;
        let mut pair = ready_pair(c, s);
        // A read-only peer relays a body exactly as it was signed: JSON.
        let body = update().encode();
        pair.client.session.send_signed(&body, b"c2lnbmF0dXJl", false).unwrap();
        pair.client.session.send(&get_updates()).unwrap();
        pair.drive();
        assert_eq!(pair.server.message_kinds(), vec!["database.update", "database.get_updates"]);
        let first = pair
            .server
            .events
            .iter()
            .find_map(|e| match e {
                crate::session::Event::Message(m) => Some(m),
                _ => None,
            })
            .unwrap();
        assert_eq!(&first.body[..], &body[..], "the body arrives byte for byte");
        assert_eq!(first.signature.as_deref(), Some(&b"c2lnbmF0dXJl"[..]));
        assert!(pair.server.closed().is_none());
    }
}

#[test]
fn gzip_message_limit_is_enforced_before_anything_is_sent() {
    let mut c = client_config();
    c.extensions = vec![EXT_GZIP.into()];
    c.max_gzip_message = 1000;
    let mut s = server_config();
    s.extensions = vec![EXT_GZIP.into()];
    let mut pair = ready_pair(c, s);
    let data = Message::from(directory::Data { sha256: Sha256Hash([1; 32]), range: None });
    pair.client.session.send_with_attachment(&data).unwrap();
    assert_eq!(pair.client.session.send_chunk(Bytes::from(vec![0u8; 2000])), Err(SendError::GzipMessageTooLarge));
    // The aborted message left nothing behind; the session is usable.
    pair.client.session.send(&get_updates()).unwrap();
    pair.drive();
    assert_eq!(pair.server.message_kinds(), vec!["database.get_updates"]);
}

#[test]
fn pings_keep_an_idle_connection_alive() {
    let mut pair = ready_pair(client_config(), server_config());
    pair.advance(Duration::from_secs(3600));
    assert!(pair.client.closed().is_none(), "{:?}", pair.client.closed());
    assert!(pair.server.closed().is_none());
    // Pings are consumed by the session, never shown to the application.
    assert!(pair.client.message_kinds().is_empty());
}

#[test]
fn a_silent_peer_times_out() {
    let mut pair = ready_pair(client_config(), server_config());
    pair.server.muted = true;
    pair.advance(Duration::from_secs(59));
    assert!(pair.client.closed().is_none());
    pair.advance(Duration::from_secs(600));
    assert_eq!(pair.client.closed(), Some(&CloseReason::Error(Error::Timeout(Duration::from_secs(60)))));
    assert!(pair.client.session.poll_timeout().is_none());
    // The server, hearing nothing from a closed client, closes too.
    assert!(pair.server.closed().is_some());
}

#[test]
fn the_larger_ping_timeout_wins() {
    let mut c = client_config();
    c.ping_timeout = Duration::from_secs(30);
    let mut s = server_config();
    s.ping_timeout = Duration::from_secs(120);
    let mut pair = ready_pair(c, s);
    pair.advance(Duration::from_secs(1));
    assert_eq!(pair.client.session.idle_timeout(), Duration::from_secs(120));
    assert_eq!(pair.server.session.idle_timeout(), Duration::from_secs(120));
    pair.server.muted = true;
    pair.advance(Duration::from_secs(100));
    assert!(pair.client.closed().is_none());
    pair.advance(Duration::from_secs(100));
    assert_eq!(pair.client.closed(), Some(&CloseReason::Error(Error::Timeout(Duration::from_secs(120)))));
}

#[test]
fn handshake_timeout_when_the_server_never_greets() {
    let now = Instant::now();
    let mut client = Session::new(client_config(), now);
    let deadline = client.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(60));
    client.handle_timeout(deadline);
    assert!(matches!(client.poll_event(), Some(Event::Closed(CloseReason::Error(Error::Timeout(_))))));
}

#[test]
fn ping_due_during_an_attachment_waits_for_its_end() {
    let mut pair = ready_pair(client_config(), server_config());
    let data = Message::from(directory::Data { sha256: Sha256Hash([1; 32]), range: None });
    pair.server.session.send_with_attachment(&data).unwrap();
    pair.server.session.send_chunk(Bytes::from_static(b"x")).unwrap();
    // Let pings fall due while the attachment is open; keep the client alive meanwhile.
    pair.advance(Duration::from_secs(40));
    let now = pair.now;
    pair.server.session.send_chunk(Bytes::from_static(b"y")).unwrap();
    pair.server.session.end_attachment(now).unwrap();
    pair.drive();
    assert_eq!(pair.client.attachment_bytes(), b"xy".to_vec());
    assert!(pair.client.closed().is_none());
}

#[test]
fn garbage_after_handshake_closes_with_a_reason() {
    let mut pair = ready_pair(client_config(), server_config());
    let now = pair.now;
    pair.server.session.handle_input(now, b"m5{]]]]");
    pair.drive();
    assert!(matches!(
        pair.server.closed(),
        Some(CloseReason::Error(Error::PeerMisbehaved(PeerMisbehaved::Frame(FrameError::BodyNotJson(_)))))
    ));
    assert!(pair.server.session.is_closed());
    assert_eq!(pair.server.session.send(&get_updates()), Err(SendError::Closed));
}

#[test]
fn handshake_messages_after_ready_are_violations() {
    let mut pair = ready_pair(client_config(), server_config());
    let now = pair.now;
    pair.client.session.handle_input(now, &frame_bytes(&Message::from(keys())));
    pair.drive();
    assert!(matches!(
        pair.client.closed(),
        Some(CloseReason::Error(Error::PeerMisbehaved(PeerMisbehaved::Unexpected { got, .. }))) if got == "core.keys"
    ));
}

#[test]
fn wrong_frame_kind_for_a_known_type_is_refused() {
    let mut pair = ready_pair(client_config(), server_config());
    let now = pair.now;
    // directory.data must carry an attachment.
    let m = Message::from(directory::Data { sha256: Sha256Hash([1; 32]), range: None });
    pair.client.session.handle_input(now, &frame_bytes(&m));
    pair.drive();
    assert!(matches!(
        pair.client.closed(),
        Some(CloseReason::Error(Error::PeerMisbehaved(PeerMisbehaved::WrongFrameKind(_))))
    ));
}

#[test]
fn local_close_is_reported_once() {
    let mut pair = ready_pair(client_config(), server_config());
    pair.client.session.close();
    pair.client.session.close();
    pair.drive();
    let closes = pair.client.events.iter().filter(|e| matches!(e, Event::Closed(_))).count();
    assert_eq!(closes, 1);
    assert_eq!(pair.client.closed(), Some(&CloseReason::Local));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes, in arbitrary pieces, at any phase, never panic and never leave the
    /// session holding more than one read of undecoded input beyond the frame limits.
    #[test]
    fn arbitrary_input_never_panics(
        server_side in any::<bool>(),
        gzip in any::<bool>(),
        pieces in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..16),
    ) {
        let now = Instant::now();
        let mut config = if server_side { server_config() } else { client_config() };
        if gzip {
            config.extensions = vec![EXT_GZIP.into()];
        }
        let mut s = Session::new(config, now);
        for p in &pieces {
            s.handle_input(now, p);
            while s.poll_event().is_some() {}
            while s.poll_transmit().is_some() {}
            prop_assert!(s.buffered_input() <= frame::MAX_LEN + 64 + 64);
        }
        s.handle_timeout(now + Duration::from_secs(3600));
        while s.poll_event().is_some() {}
        prop_assert!(s.is_closed());
    }

    /// Valid prefixes followed by arbitrary bytes exercise the later phases.
    #[test]
    fn garbage_after_a_valid_handshake_never_panics(tail in prop::collection::vec(any::<u8>(), 0..256), gzip in any::<bool>()) {
        let mut c = client_config();
        let mut s = server_config();
        if gzip {
            c.extensions = vec![EXT_GZIP.into()];
            s.extensions = vec![EXT_GZIP.into()];
        }
        let mut pair = ready_pair(c, s);
        let now = pair.now;
        pair.client.session.handle_input(now, &tail);
        pair.drive();
        prop_assert!(pair.server.closed().is_none());
    }
}
