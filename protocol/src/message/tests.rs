use proptest::prelude::*;

use super::*;
use crate::message::core::{AccessLevel, KeyEntry};
use crate::time::Timestamp;
use crate::vclock::VectorClock;
use crate::{CodeSecret, PeerId, RecordUuid, SecretKey, Sha256Hash, UntrustedFileId};

#[test]
fn unknown_bodies_keep_their_numbers_exactly() {
    // Found by the decode_encode fuzz target: `44e287` read imprecisely came back as a
    // different number after a relay (serde_json's float parsing is now correctly rounded).
    let m = Message::decode(br#"{"type":".x.y","n":44e287,"m":0.1,"k":-2.5e-300}"#).unwrap();
    assert_eq!(Message::decode(&m.encode()).unwrap(), m);
    // Through MessagePack the body is kept as MessagePack; it says the same.
    let packed = Message::decode_msgpack(&m.encode_msgpack()).unwrap();
    assert!(matches!(packed, Message::Unknown { body: RawBody::MsgPack(_), .. }));
    let json = |m: &Message| serde_json::from_slice::<Value>(&m.encode()).unwrap();
    assert_eq!(json(&packed), json(&m));
    assert_eq!(Message::decode_msgpack(&packed.encode_msgpack()).unwrap(), packed);
}

/// `{"type": kind, "x": [0, 0, …]}` with `n` zeros: `n + 5` values.
fn with_values(kind: &str, n: usize) -> Vec<u8> {
    let mut body = format!(r#"{{"type":"{kind}","x":["#).into_bytes();
    for i in 0..n {
        body.extend_from_slice(if i == 0 { b"0" } else { b",0" });
    }
    body.extend_from_slice(b"]}");
    body
}

#[test]
fn unknown_bodies_are_kept_raw_never_parsed() {
    // 16 MiB of tiny values in an unknown message: its bytes are kept as they came (shared,
    // not copied) and nothing is built from them.
    let body = bytes::Bytes::from(with_values(".com.example.big", 8 << 20));
    let m = Message::decode_bytes(&body, false).unwrap();
    let Message::Unknown { kind, body: RawBody::Json(raw) } = &m else { panic!("{m:?}") };
    assert_eq!(kind, ".com.example.big");
    assert_eq!(raw.as_ptr(), body.as_ptr());
    assert_eq!(m.encode().len(), body.len());
    // The same through MessagePack.
    let packed = bytes::Bytes::from(
        rmp_serde::to_vec_named(&serde_json::json!({"type": ".x", "v": vec![0u8; 1 << 20]})).unwrap(),
    );
    let m = Message::decode_bytes(&packed, true).unwrap();
    let Message::Unknown { body: RawBody::MsgPack(raw), .. } = &m else { panic!("{m:?}") };
    assert_eq!(raw.as_ptr(), packed.as_ptr());
}

#[test]
fn known_bodies_with_too_many_values_are_refused() {
    let at_limit = with_values("core.ping", MAX_VALUES - 5);
    assert_eq!(Message::decode(&at_limit).unwrap(), Message::CorePing(core::Ping { timeout: None }));
    let over = with_values("core.ping", MAX_VALUES - 4);
    assert_eq!(
        Message::decode(&over),
        Err(MessageError::TooManyValues { kind: "core.ping".into(), values: MAX_VALUES + 1 })
    );
    let value: Value = serde_json::from_slice(&over).unwrap();
    let packed = rmp_serde::to_vec_named(&value).unwrap();
    assert_eq!(
        Message::decode_msgpack(&packed),
        Err(MessageError::TooManyValues { kind: "core.ping".into(), values: MAX_VALUES + 1 })
    );
    let value: Value = serde_json::from_slice(&at_limit).unwrap();
    assert!(Message::decode_msgpack(&rmp_serde::to_vec_named(&value).unwrap()).is_ok());
    // An unknown type may hold as many as fit in a frame: it costs nothing.
    assert!(matches!(Message::decode(&with_values(".x", 4 * MAX_VALUES)), Ok(Message::Unknown { .. })));
}

#[test]
fn json_and_msgpack_values_are_counted_alike() {
    for text in [
        r#"{"type":"a"}"#,
        r#"{"type":"a","s":"with \"quotes\", [brackets] {braces}: and, commas","n":-1.5e3,"t":true,"f":false,"z":null}"#,
        r#"{ "type" : "a" , "deep" : [ [ [ { "k" : [ ] } ] ] ], "e": {} }"#,
        "{\"type\":\"a\",\"esc\":\"\\\\\",\"u\":\"\\u0022\"}",
    ] {
        let value: Value = serde_json::from_str(text).unwrap();
        let packed = rmp_serde::to_vec_named(&value).unwrap();
        assert_eq!(json_values(text.as_bytes()), crate::msgpack::check(&packed).unwrap().values, "{text}");
    }
}

#[test]
fn hostile_msgpack_bodies_are_refused_without_allocating() {
    // A map claiming 2³²−1 entries, an array claiming as many, in a few bytes.
    let mut huge_map = vec![0xdf, 0xff, 0xff, 0xff, 0xff];
    huge_map.extend_from_slice(&rmp_serde::to_vec(&("type", "core.ping")).unwrap()[1..]);
    assert!(matches!(Message::decode_msgpack(&huge_map), Err(MessageError::Malformed(_))));
    let mut huge_array = rmp_serde::to_vec_named(&serde_json::json!({"type": "core.ping"})).unwrap();
    huge_array[0] += 1;
    huge_array.extend_from_slice(&[0xa1, b'x', 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0]);
    assert!(matches!(Message::decode_msgpack(&huge_array), Err(MessageError::Malformed(_))));
    // Nesting a million deep.
    let mut deep = rmp_serde::to_vec_named(&serde_json::json!({"type": "core.ping"})).unwrap();
    deep[0] += 1;
    deep.extend_from_slice(&[0xa1, b'x']);
    deep.extend(std::iter::repeat_n(0x91, 1 << 20));
    deep.push(0xc0);
    assert!(matches!(Message::decode_msgpack(&deep), Err(MessageError::Malformed(_))));
    // Bytes after the map.
    let mut trailing = rmp_serde::to_vec_named(&serde_json::json!({"type": "core.ping"})).unwrap();
    trailing.push(0xc0);
    assert!(matches!(Message::decode_msgpack(&trailing), Err(MessageError::Malformed(_))));
}

#[test]
fn unknown_types_and_keys_are_tolerated() {
    let m = Message::decode(br#"{"type":"core.ping","timeout":30,"future":{"x":[1,2]}}"#).unwrap();
    assert_eq!(m, Message::CorePing(core::Ping { timeout: Some(30) }));
    let m = Message::decode(br#"{"type":".com.example.thing","a":1}"#).unwrap();
    assert_eq!(m.kind(), ".com.example.thing");
    assert!(matches!(m, Message::Unknown { .. }));
    // Unknown messages re-encode with their body intact.
    assert_eq!(Message::decode(&m.encode()).unwrap(), m);
}

#[test]
fn rejections_are_typed() {
    assert_eq!(Message::decode(br#"{"timeout":30}"#), Err(MessageError::MissingType));
    assert!(matches!(Message::decode(br#"{"type":7}"#), Err(MessageError::Malformed(_))));
    assert!(matches!(Message::decode(b"[]"), Err(MessageError::Malformed(_))));
    assert!(matches!(Message::decode(br#"{"type":"core.ping","type":"core.ping"}"#), Err(MessageError::Malformed(_))));
    let err = Message::decode(br#"{"type":"core.ping","timeout":"soon"}"#).unwrap_err();
    assert!(matches!(err, MessageError::Invalid { ref kind, .. } if kind == "core.ping"), "{err}");
    assert!(matches!(
        Message::decode(br#"{"type":"directory.get","sha256":"../../etc/passwd"}"#),
        Err(MessageError::Invalid { .. })
    ));
    assert!(matches!(
        Message::decode(br#"{"type":"directory.get","sha256":"ab","range":[-1,2]}"#),
        Err(MessageError::Invalid { .. })
    ));
}

#[test]
fn sixty_four_bit_integers_are_exact() {
    let body = br#"{"type":"directory.get","sha256":"ceab2535bac962a9c9ec8a8ba98145fdb11bb077eaa05d87088688f7524dcb47","range":[3762440519426216896,18446744073709551615]}"#;
    let m = Message::decode(body).unwrap();
    let Message::DirectoryGet(g) = &m else { panic!("{m:?}") };
    assert_eq!(g.range, Some([3_762_440_519_426_216_896, u64::MAX]));
    assert_eq!(m.encode(), body.to_vec());
    // One past u64::MAX is refused, not rounded.
    assert!(Message::decode(
        br#"{"type":"directory.get","sha256":"ceab2535bac962a9c9ec8a8ba98145fdb11bb077eaa05d87088688f7524dcb47","range":[0,18446744073709551616]}"#
    )
    .is_err());
}

/// Every variant of `Message` (bar `Unknown`) is produced by `message()` or
/// `more_messages()`; this list must grow with the enum (the match below will not compile
/// otherwise).
#[test]
fn round_trip_strategies_cover_every_type() {
    fn covered(m: &Message) -> bool {
        match m {
            Message::CoreGreeting(_)
            | Message::CoreStart(_)
            | Message::CorePing(_)
            | Message::DatabaseUpdate(_)
            | Message::DatabaseGetUpdates(_)
            | Message::DirectoryGet(_)
            | Message::DirectoryData(_)
            | Message::DirectoryGetError(_)
            | Message::TrackerRegister(_)
            | Message::TrackerPeers(_)
            | Message::RsyncPatch(_) => true,
            Message::CoreKeys(_)
            | Message::CoreKeysAcknowledgment(_)
            | Message::TrackerGreeting(_)
            | Message::TrackerStart(_)
            | Message::TrackerConnection(_)
            | Message::TrackerPing(_)
            | Message::DirectoryGetPresence(_)
            | Message::DirectoryBloomFilter(_)
            | Message::DirectoryPresent(_)
            | Message::DirectoryNotPresent(_)
            | Message::RsyncSignature(_)
            | Message::UntrustedManifest(_)
            | Message::UntrustedUpdate(_)
            | Message::UntrustedVerify(_)
            | Message::UntrustedVerifyResult(_)
            | Message::UntrustedVerifyBusy(_)
            | Message::CodeSpreadList(_)
            | Message::CodeSpreadUpdate(_)
            | Message::CodeVerifiers(_)
            | Message::SrpHello(_)
            | Message::SrpChallenge(_)
            | Message::SrpProof(_)
            | Message::SrpVerify(_)
            | Message::SrpError(_)
            | Message::DatabaseUpdatesDone(_)
            | Message::CoreRekey(_) => true,
            Message::Unknown { .. } => false,
        }
    }
    assert!(covered(&Message::from(core::Ping::default())));
}

#[test]
fn encode_puts_type_first_and_is_compact() {
    let m = Message::from(core::Ping { timeout: Some(60) });
    assert_eq!(m.encode(), br#"{"type":"core.ping","timeout":60}"#.to_vec());
    let m = Message::from(core::KeysAcknowledgment {});
    assert_eq!(m.encode(), br#"{"type":"core.keys_acknowledgment"}"#.to_vec());
}

fn peer() -> impl Strategy<Value = PeerId> {
    any::<[u8; 16]>().prop_map(PeerId)
}

fn hash() -> impl Strategy<Value = Sha256Hash> {
    any::<[u8; 32]>().prop_map(Sha256Hash)
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,20}"
}

fn update() -> impl Strategy<Value = database::Update> {
    (
        text(),
        any::<[u8; 16]>(),
        peer(),
        any::<u64>(),
        (-62_167_219_200i64..253_402_300_799, 0u32..1_000_000_000),
        prop::collection::vec((peer(), any::<u64>()), 0..4),
        any::<bool>(),
        prop::option::of(any::<u64>()),
    )
        .prop_map(|(key, uuid, by, rev, (s, ns), vc, deleted, size)| database::Update {
            key,
            value: size.map_or(serde_json::Value::Null, |n| serde_json::json!({ "size": n })),
            uuid: RecordUuid(uuid),
            last_updated_by: by,
            last_updated_rev: rev,
            update_time: Timestamp::new(s, ns).unwrap(),
            vector_clock: vc.into_iter().collect::<VectorClock>(),
            deleted,
        })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        prop::option::of(any::<u64>()).prop_map(|timeout| Message::from(core::Ping { timeout })),
        (
            text(),
            prop::option::of(text()),
            prop::collection::vec(any::<u64>(), 0..3),
            prop::collection::vec(text(), 0..3),
            peer()
        )
            .prop_map(|(software, name, protocol, extensions, peer)| Message::from(core::Greeting {
                software,
                name,
                protocol,
                extensions,
                peer
            })),
        (text(), any::<u64>(), prop::collection::vec(text(), 0..3), peer(), prop::option::of(text())).prop_map(
            |(software, protocol, extensions, peer, name)| Message::from(core::Start {
                software,
                protocol,
                extensions,
                peer,
                name
            })
        ),
        update().prop_map(Message::from),
        prop::collection::btree_map(peer(), any::<u64>(), 0..4)
            .prop_map(|since| Message::from(database::GetUpdates { since })),
        (hash(), prop::option::of(any::<[u64; 2]>()))
            .prop_map(|(sha256, range)| Message::from(directory::Get { sha256, range })),
        (hash(), prop::option::of(any::<[u64; 2]>()))
            .prop_map(|(sha256, range)| Message::from(directory::Data { sha256, range })),
        (hash(), text()).prop_map(|(sha256, message)| Message::from(directory::GetError { sha256, message })),
        prop::collection::btree_map(hash(), peer(), 0..4).prop_map(|ids| Message::from(tracker::Register { ids })),
        (hash(), prop::collection::btree_map(peer(), prop::collection::vec(text(), 0..3), 0..3))
            .prop_map(|(id, peers)| Message::from(tracker::Peers { id, peers })),
        (text(), prop::option::of(hash())).prop_map(|(path, sha256)| Message::from(rsync::Patch {
            path,
            sha256,
            plan: false
        })),
    ]
}

fn level() -> impl Strategy<Value = AccessLevel> {
    prop::sample::select(vec![AccessLevel::ReadWrite, AccessLevel::ReadOnly, AccessLevel::Untrusted])
}

fn file_id() -> impl Strategy<Value = UntrustedFileId> {
    any::<[u8; 16]>().prop_map(UntrustedFileId)
}

/// The message types `message()` does not cover, so that together they cover all of them.
fn more_messages() -> impl Strategy<Value = Message> {
    let key_entry = (
        level(),
        prop::option::of(hash()),
        prop::option::of(any::<[u8; 32]>()),
        prop::option::of(text()),
        prop::option::of(text()),
    )
        .prop_map(|(access_level, id, key, private_rsa, public_rsa)| KeyEntry {
            access_level,
            id,
            key: key.map(SecretKey),
            private_rsa,
            public_rsa,
        })
        .boxed();
    let spread = (
        any::<[u8; 16]>(),
        any::<bool>(),
        any::<u64>(),
        prop_oneof![Just(code_spread::Expiration::Never(false)), any::<u64>().prop_map(code_spread::Expiration::At)],
        any::<u64>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(code, one_time, created, expiration, update_time, revoked, used)| code_spread::SpreadCode {
            code: CodeSecret(code),
            one_time,
            created,
            expiration,
            update_time,
            revoked,
            used,
        });
    let verifier = (hash(), level(), text(), text(), prop::option::of(text()), any::<bool>(), any::<i64>()).prop_map(
        |(access_id, level, salt, verifier, username, multi_use, created)| code_spread::SpreadVerifier {
            access_id,
            level,
            salt,
            verifier,
            username,
            multi_use,
            created,
            expires: Some(created.saturating_add(1)),
            update_time: created,
            revoked: multi_use,
        },
    );
    let manifest_file = (
        file_id(),
        prop::option::of(any::<u64>()),
        prop::option::of(any::<u64>()),
        prop::option::of(hash()),
        prop::option::of(file_id()),
    )
        .prop_map(|(id, utime, size, sha256, matches)| untrusted::ManifestFile {
            id,
            utime,
            size,
            sha256,
            matches,
        });
    prop_oneof![
        (level(), prop::collection::vec(key_entry.clone(), 0..3)).prop_map(|(access_level, keys)| Message::from(
            core::Keys { access_level, keys, untrusted_seed: None, generation: 0 }
        )),
        (level(), prop::collection::vec(key_entry, 0..3), prop::option::of(any::<[u8; 32]>()), any::<u64>()).prop_map(
            |(access_level, keys, seed, generation)| Message::from(core::Rekey {
                keys: core::Keys { access_level, keys, untrusted_seed: seed.map(SecretKey), generation },
                removed: vec![PeerId(generation.to_le_bytes().repeat(2).try_into().unwrap())],
            })
        ),
        Just(Message::from(core::KeysAcknowledgment {})),
        (
            text(),
            any::<u64>(),
            any::<u64>(),
            text(),
            prop::collection::vec(any::<u64>(), 0..3),
            prop::collection::vec(text(), 0..2)
        )
            .prop_map(|(software, max_ttl, min_ttl, your_ip, protocol, extensions)| Message::from(
                tracker::Greeting { software, max_ttl, min_ttl, your_ip, protocol, extensions }
            )),
        (text(), any::<u64>(), any::<u64>(), prop::collection::vec(text(), 0..2)).prop_map(
            |(software, protocol, ttl, extensions)| Message::from(tracker::Start {
                software,
                protocol,
                ttl,
                extensions
            })
        ),
        prop::collection::vec(text(), 0..4).prop_map(|addresses| Message::from(tracker::Connection { addresses })),
        Just(Message::from(tracker::Ping {})),
        Just(Message::from(directory::GetPresence {})),
        any::<u64>().prop_map(|k_value| Message::from(directory::BloomFilter { k_value })),
        hash().prop_map(|sha256| Message::from(directory::Present { sha256 })),
        hash().prop_map(|sha256| Message::from(directory::NotPresent { sha256 })),
        (text(), prop::option::of(hash())).prop_map(|(path, sha256)| Message::from(rsync::Signature {
            path,
            sha256,
            refine: None
        })),
        (
            prop::option::of(peer()),
            prop::option::of(any::<u64>()),
            prop::option::of(text()),
            prop::collection::vec(manifest_file, 0..3),
            prop::collection::vec((text(), text()), 0..2)
        )
            .prop_map(|(peer, version, manifest, files, sources)| Message::from(untrusted::Manifest {
                peer,
                version,
                manifest,
                files,
                sources: sources
                    .into_iter()
                    .map(|(manifest, bitmask)| untrusted::ManifestSource { manifest, bitmask })
                    .collect(),
            })),
        (prop::option::of(text()), any::<u64>()).prop_map(|(proof, size)| Message::from(untrusted::Update {
            proof,
            file: serde_json::json!({ "size": size })
        })),
        (file_id(), hash()).prop_map(|(file_id, prefix)| Message::from(untrusted::Verify { file_id, prefix })),
        (file_id(), hash()).prop_map(|(file_id, result)| Message::from(untrusted::VerifyResult { file_id, result })),
        (file_id(), any::<u64>())
            .prop_map(|(file_id, retry_in)| Message::from(untrusted::VerifyBusy { file_id, retry_in })),
        prop::collection::vec(spread.clone(), 0..3).prop_map(|codes| Message::from(code_spread::List { codes })),
        prop::collection::vec(spread, 0..3).prop_map(|codes| Message::from(code_spread::Update { codes })),
        prop::collection::vec(verifier, 0..3).prop_map(|codes| Message::from(code_spread::Verifiers { codes })),
        (text(), text()).prop_map(|(username, a)| Message::from(srp::Hello { username, a })),
        (text(), text()).prop_map(|(salt, b)| Message::from(srp::Challenge { salt, b })),
        text().prop_map(|m1| Message::from(srp::Proof { m1 })),
        text().prop_map(|m2| Message::from(srp::Verify { m2 })),
        text().prop_map(|message| Message::from(srp::Error { message })),
        Just(Message::from(database::UpdatesDone {})),
    ]
}

proptest! {
    #[test]
    fn encode_decode_round_trip(m in message()) {
        let body = m.encode();
        prop_assert_eq!(Message::decode_msgpack(&m.encode_msgpack()), Ok(m.clone()));
        prop_assert_eq!(Message::decode(&body), Ok(m));
    }

    #[test]
    fn encode_decode_round_trip_remaining_types(m in more_messages()) {
        let body = m.encode();
        prop_assert_eq!(Message::decode_msgpack(&m.encode_msgpack()), Ok(m.clone()));
        prop_assert_eq!(Message::decode(&body), Ok(m));
    }

    #[test]
    fn msgpack_decode_never_panics(body in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Message::decode_msgpack(&body);
    }

    #[test]
    fn decode_never_panics(body in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Message::decode(&body);
    }

    #[test]
    fn decode_of_json_objects_never_panics(
        kind in prop::sample::select(vec!["core.ping", "database.update", "directory.get", "tracker.peers", "core.keys", "x"]),
        key in "[a-z_]{1,12}",
        value in prop_oneof![Just(serde_json::json!(null)), any::<i64>().prop_map(serde_json::Value::from), text().prop_map(serde_json::Value::from), Just(serde_json::json!([1, {"a": []}]))],
    ) {
        let body = serde_json::json!({ "type": kind, key: value });
        let _ = Message::decode(&serde_json::to_vec(&body).unwrap());
    }
}
