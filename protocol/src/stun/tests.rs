use std::net::SocketAddrV6;

use proptest::prelude::*;

use super::*;

/// RFC 5769's vectors. Their MESSAGE-INTEGRITY (short-term password "VOkJxbRl1RmTxUk/WvJxBt";
/// long-term user "マトリックス", realm "example.org", password "TheMatrIX") and FINGERPRINT
/// values were checked independently with Python's `hmac`, `hashlib` and `zlib.crc32`.
mod rfc5769 {
    /// §2.1: a request with SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME, MESSAGE-INTEGRITY
    /// and FINGERPRINT; padding bytes are spaces.
    pub(super) const REQUEST: &str = "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74\
        002400046e0001ff80290008932ff9b151263b36000600096576746a3a68367659202020000800149aeaa70cbfd8cb56781ef2b5b2d3f2\
        49c1b571a280280004e57a3bcf";
    /// §2.2: an IPv4 response, 192.0.2.1:32853.
    pub(super) const IPV4_RESPONSE: &str =
        "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220002000\
        080001a147e112a643000800142b91f599fd9e90c38c7489f92af9ba53f06be7d780280004c07d4c96";
    /// §2.3: an IPv6 response, [2001:db8:1234:5678:11:2233:4455:6677]:32853.
    pub(super) const IPV6_RESPONSE: &str =
        "010100482112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220002000\
        140002a1470113a9faa5d3f179bc25f4b5bed2b9d900080014a382954e4be67bf11784c97c8292c275bfe3ed4180280004c8fb0b4c";
    /// §2.4: a request with long-term credentials (USERNAME, NONCE, REALM,
    /// MESSAGE-INTEGRITY) and no FINGERPRINT.
    pub(super) const LONG_TERM_REQUEST: &str =
        "000100602112a44278ad3433c6ad72c029da412e00060012e3839ee38388e383aae38383\
        e382afe382b900000015001c662f2f3439396b39353464364f4c33346f4c394653547679363473410014000b6578616d706c652e6f7267\
        0000080014f67024656dd64a3e02b8e0712e85c9a28ca89666";
    /// The transaction ID of §2.1 to §2.3.
    pub(super) const ID: [u8; 12] = [0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae];
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

const ID: TransactionId = TransactionId([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);

fn v6(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(ip.parse().unwrap(), port, 0, 0))
}

/// A message built by hand, independently of [`Writer`]: `attrs` with `pad` as padding
/// bytes, then a FINGERPRINT if asked.
fn message(kind: u16, attrs: &[(u16, &[u8])], fingerprint: bool) -> Vec<u8> {
    let mut m = kind.to_be_bytes().to_vec();
    m.extend_from_slice(&[0, 0, 0x21, 0x12, 0xa4, 0x42]);
    m.extend_from_slice(&ID.0);
    for (t, v) in attrs {
        m.extend_from_slice(&t.to_be_bytes());
        m.extend_from_slice(&u16::try_from(v.len()).unwrap().to_be_bytes());
        m.extend_from_slice(v);
        while m.len() % 4 != 0 {
            m.push(0xEE);
        }
    }
    let body = m.len() - 20 + if fingerprint { 8 } else { 0 };
    m[2..4].copy_from_slice(&u16::try_from(body).unwrap().to_be_bytes());
    if fingerprint {
        let crc = crc32fast::hash(&m) ^ 0x5354_554e;
        m.extend_from_slice(&[0x80, 0x28, 0, 4]);
        m.extend_from_slice(&crc.to_be_bytes());
    }
    m
}

fn plain_v4(a: [u8; 4], port: u16) -> Vec<u8> {
    let mut v = vec![0, 1];
    v.extend_from_slice(&port.to_be_bytes());
    v.extend_from_slice(&a);
    v
}

fn success(datagram: &[u8]) -> BindingSuccess {
    match BindingResponse::decode(datagram) {
        Ok(BindingResponse::Success(s)) => s,
        other => panic!("{other:?}"),
    }
}

fn error(datagram: &[u8]) -> BindingError {
    match BindingResponse::decode(datagram) {
        Ok(BindingResponse::Error(e)) => e,
        other => panic!("{other:?}"),
    }
}

#[test]
fn rfc5769_sample_request() {
    let wire = unhex(rfc5769::REQUEST);
    assert!(is_stun(&wire));
    let r = BindingRequest::decode(&wire).unwrap();
    assert_eq!(r.transaction_id, TransactionId(rfc5769::ID));
    assert_eq!(r.software.as_deref(), Some("STUN test client"));
    assert!(r.credentials, "USERNAME and MESSAGE-INTEGRITY");
    // PRIORITY (ICE) is comprehension-required and not ours; ICE-CONTROLLED is optional.
    assert_eq!(r.unknown_required, [0x0024]);
}

#[test]
fn rfc5769_sample_ipv4_response() {
    let wire = unhex(rfc5769::IPV4_RESPONSE);
    let r = BindingResponse::decode(&wire).unwrap();
    assert_eq!(r.transaction_id(), TransactionId(rfc5769::ID));
    let BindingResponse::Success(s) = r else { panic!("{r:?}") };
    assert_eq!(s.mapped, "192.0.2.1:32853".parse().unwrap());
    assert!(s.xor_mapped);
    assert_eq!(s.software.as_deref(), Some("test vector"));
    assert_eq!((s.response_origin, s.other_address), (None, None));
}

#[test]
fn rfc5769_sample_ipv6_response() {
    let s = success(&unhex(rfc5769::IPV6_RESPONSE));
    assert_eq!(s.mapped, v6("2001:db8:1234:5678:11:2233:4455:6677", 32853));
    assert_eq!(s.software.as_deref(), Some("test vector"));
}

#[test]
fn rfc5769_long_term_request_parses_past_integrity() {
    let wire = unhex(rfc5769::LONG_TERM_REQUEST);
    let r = BindingRequest::decode(&wire).unwrap();
    assert!(r.credentials);
    assert!(r.unknown_required.is_empty());
    assert_eq!(r.software, None);
}

#[test]
fn rfc5769_fingerprints_are_checked() {
    for (name, vector) in
        [("request", rfc5769::REQUEST), ("ipv4", rfc5769::IPV4_RESPONSE), ("ipv6", rfc5769::IPV6_RESPONSE)]
    {
        let wire = unhex(vector);
        // Flip one bit in the transaction ID, in SOFTWARE, further on in SOFTWARE (the responses'
        // padding after it), and in the fingerprint itself.
        for at in [9, 25, 35, wire.len() - 1] {
            let mut bad = wire.clone();
            bad[at] ^= 0x01;
            let err = if name == "request" {
                BindingRequest::decode(&bad).unwrap_err()
            } else {
                BindingResponse::decode(&bad).unwrap_err()
            };
            assert_eq!(err, StunError::BadFingerprint, "{name}, byte {at}");
        }
    }
}

#[test]
fn header_demultiplexing() {
    let wire = unhex(rfc5769::IPV4_RESPONSE);
    let h = Header::parse(&wire).unwrap();
    assert_eq!((h.class, h.method), (Class::Success, BINDING));
    assert!(!is_stun(&[]));
    assert!(!is_stun(&wire[..19]));
    assert!(!is_stun(&wire[..wire.len() - 4]), "length says more than the datagram holds");
    let mut longer = wire.clone();
    longer.extend_from_slice(&[0; 4]);
    assert!(!is_stun(&longer), "datagram longer than its length");
    let mut bits = wire.clone();
    bits[0] |= 0x40;
    assert_eq!(Header::parse(&bits), Err(StunError::NotStun("first two bits are not zero")));
    let mut cookie = wire.clone();
    cookie[7] ^= 1;
    assert_eq!(Header::parse(&cookie), Err(StunError::NotStun("no magic cookie")));
    let mut odd = wire.clone();
    odd[3] -= 2;
    odd.truncate(odd.len() - 2);
    assert_eq!(Header::parse(&odd), Err(StunError::NotStun("length is not a multiple of 4")));
    // A ClearSkies frame, a TLS record and a DNS query are not STUN.
    assert!(!is_stun(b"m25{\"type\":\"core.ping\"}    "));
    assert!(!is_stun(&[0x16, 0x03, 0x01, 0x00, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    // A header alone (no attributes) is STUN.
    assert!(is_stun(&message(0x0001, &[], false)));
}

#[test]
fn message_types_interleave_class_and_method() {
    for (kind, class, method) in [
        (0x0001u16, Class::Request, 0x001u16),
        (0x0011, Class::Indication, 0x001),
        (0x0101, Class::Success, 0x001),
        (0x0111, Class::Error, 0x001),
        (0x0003, Class::Request, 0x003),
        (0x3EEF, Class::Request, 0xFFF),
        (0x3FFF, Class::Error, 0xFFF),
    ] {
        let h = Header::parse(&message(kind, &[], false)).unwrap();
        assert_eq!((h.class, h.method), (class, method), "{kind:#06x}");
        assert_eq!(h.message_type(), kind);
    }
}

#[test]
fn only_binding_messages_of_the_right_class() {
    let request = binding_request(ID, None);
    assert_eq!(
        BindingResponse::decode(&request),
        Err(StunError::Unexpected { class: Class::Request, method: BINDING })
    );
    let indication = message(0x0011, &[], false);
    assert!(matches!(BindingRequest::decode(&indication), Err(StunError::Unexpected { .. })));
    let allocate = message(0x0103, &[], false);
    assert_eq!(BindingResponse::decode(&allocate), Err(StunError::Unexpected { class: Class::Success, method: 3 }));
}

#[test]
fn request_round_trip() {
    let wire = binding_request(ID, Some("ClearSkies 0.1"));
    assert!(is_stun(&wire));
    assert_eq!(&wire[..2], &[0x00, 0x01]);
    let r = BindingRequest::decode(&wire).unwrap();
    let expected = BindingRequest {
        transaction_id: ID,
        software: Some("ClearSkies 0.1".into()),
        credentials: false,
        unknown_required: vec![],
    };
    assert_eq!(r, expected);
    // Without SOFTWARE: header and FINGERPRINT only.
    assert_eq!(binding_request(ID, None).len(), 28);
}

#[test]
fn success_round_trips() {
    let full = BindingSuccess {
        transaction_id: ID,
        mapped: "198.51.100.7:40000".parse().unwrap(),
        xor_mapped: true,
        response_origin: Some("192.0.2.10:3478".parse().unwrap()),
        other_address: Some(v6("2001:db8::2", 3479)),
        software: Some("ClearSkies".into()),
    };
    let minimal = BindingSuccess {
        transaction_id: ID,
        mapped: v6("2001:db8::1", 1),
        xor_mapped: true,
        response_origin: None,
        other_address: None,
        software: None,
    };
    let legacy = BindingSuccess { xor_mapped: false, ..full.clone() };
    for s in [full, minimal, legacy] {
        let wire = s.encode();
        assert!(is_stun(&wire));
        assert_eq!(BindingResponse::decode(&wire), Ok(BindingResponse::Success(s)));
    }
}

#[test]
fn error_round_trips() {
    let unknown = BindingError {
        transaction_id: ID,
        code: ErrorCode::UNKNOWN_ATTRIBUTE,
        reason: "Unknown Attribute".into(),
        unknown_attributes: vec![0x0024, 0x0003, 0x0025],
        alternate_server: None,
        software: Some("ClearSkies".into()),
    };
    let alternate = BindingError {
        transaction_id: ID,
        code: ErrorCode::TRY_ALTERNATE,
        reason: String::new(),
        unknown_attributes: vec![],
        alternate_server: Some("203.0.113.5:3478".parse().unwrap()),
        software: None,
    };
    for e in [unknown, alternate] {
        let wire = e.encode();
        assert!(is_stun(&wire));
        assert_eq!(BindingResponse::decode(&wire), Ok(BindingResponse::Error(e)));
    }
}

#[test]
fn error_codes() {
    let e = error(&message(0x0111, &[(0x0009, b"\0\0\x04\x26Stale Nonce")], true));
    assert_eq!((e.code, e.code.code(), e.code.class(), e.code.number()), (ErrorCode::STALE_NONCE, 438, 4, 38));
    assert_eq!(e.reason, "Stale Nonce");
    assert_eq!(e.code.description(), Some("Stale Nonce"));
    assert_eq!(ErrorCode::new(299), None);
    assert_eq!(ErrorCode::new(700), None);
    assert_eq!(ErrorCode::new(699).map(ErrorCode::number), Some(99));
    assert_eq!(ErrorCode::new(601).and_then(ErrorCode::description), None);
    // Reserved bits above the class are ignored.
    assert_eq!(error(&message(0x0111, &[(0x0009, b"\xff\xff\xfd\x00")], false)).code, ErrorCode::SERVER_ERROR);
    for bad in [&b"\0\0\x02\x00"[..], b"\0\0\x07\x00", b"\0\0\x04\x64", b"\0\0\x04"] {
        assert_eq!(
            BindingResponse::decode(&message(0x0111, &[(0x0009, bad)], true)),
            Err(StunError::Malformed(0x0009)),
            "{bad:?}"
        );
    }
    assert_eq!(BindingResponse::decode(&message(0x0111, &[], true)), Err(StunError::NoErrorCode));
    assert_eq!(
        BindingResponse::decode(&message(0x0111, &[(0x0009, b"\0\0\x04\x20"), (0x000A, b"\0\x24\0")], true)),
        Err(StunError::Malformed(0x000A)),
        "an odd UNKNOWN-ATTRIBUTES length"
    );
}

#[test]
fn rfc3489_server_falls_back_to_mapped_address() {
    // MAPPED-ADDRESS, SOURCE-ADDRESS and CHANGED-ADDRESS, no FINGERPRINT: classic STUN's
    // answer to our request (which carried the cookie as the start of its 128-bit ID).
    let wire = message(
        0x0101,
        &[
            (0x0001, &plain_v4([198, 51, 100, 7], 40000)),
            (0x0004, &plain_v4([192, 0, 2, 10], 3478)),
            (0x0005, &plain_v4([192, 0, 2, 11], 3479)),
        ],
        false,
    );
    let s = success(&wire);
    assert_eq!(s.mapped, "198.51.100.7:40000".parse().unwrap());
    assert!(!s.xor_mapped);
    assert_eq!(s.response_origin, Some("192.0.2.10:3478".parse().unwrap()));
    assert_eq!(s.other_address, Some("192.0.2.11:3479".parse().unwrap()));
}

#[test]
fn xor_mapped_address_wins_and_rfc5780_attributes_win() {
    let real = BindingSuccess {
        transaction_id: ID,
        mapped: "198.51.100.7:40000".parse().unwrap(),
        xor_mapped: true,
        response_origin: None,
        other_address: None,
        software: None,
    };
    let wire = real.encode();
    let xor_value = &wire[24..32];
    // MAPPED-ADDRESS first, rewritten by some ALG, then the XOR form.
    let both = message(
        0x0101,
        &[
            (0x0001, &plain_v4([10, 0, 0, 2], 5000)),
            (0x0005, &plain_v4([192, 0, 2, 11], 1)),
            (0x0020, xor_value),
            (0x802C, &plain_v4([192, 0, 2, 12], 2)),
        ],
        true,
    );
    let s = success(&both);
    assert_eq!((s.mapped, s.xor_mapped), (real.mapped, true));
    assert_eq!(s.other_address, Some("192.0.2.12:2".parse().unwrap()));
}

#[test]
fn first_occurrence_wins() {
    let wire = message(
        0x0101,
        &[
            (0x0001, &plain_v4([192, 0, 2, 1], 1)),
            (0x0001, &plain_v4([192, 0, 2, 2], 2)),
            (0x8022, b"first"),
            (0x8022, b"second"),
        ],
        true,
    );
    let s = success(&wire);
    assert_eq!(s.mapped, "192.0.2.1:1".parse().unwrap());
    assert_eq!(s.software.as_deref(), Some("first"));
}

#[test]
fn malformed_addresses() {
    for (bad, why) in [
        (&[0u8, 1, 0, 1, 1, 2, 3][..], "IPv4 too short"),
        (&[0, 1, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8], "IPv4 too long"),
        (&[0, 2, 0, 1, 1, 2, 3, 4], "IPv6 family, IPv4 length"),
        (&[0, 3, 0, 1, 1, 2, 3, 4], "unknown family"),
        (&[0, 1, 0], "no room for a port"),
        (&[], "empty"),
    ] {
        for kind in [0x0001, 0x0020, 0x802B, 0x802C, 0x0004, 0x0005] {
            let wire = message(0x0101, &[(0x0020, &plain_v4([1, 2, 3, 4], 5)), (kind, bad)], true);
            let expected = if kind == 0x0020 { Ok(()) } else { Err(StunError::Malformed(kind)) };
            // A second XOR-MAPPED-ADDRESS is never read; the others are.
            assert_eq!(BindingResponse::decode(&wire).map(|_| ()), expected, "{why}, {kind:#06x}");
        }
    }
    let first_bad = message(0x0101, &[(0x0020, &[0, 3, 0, 1, 1, 2, 3, 4])], true);
    assert_eq!(BindingResponse::decode(&first_bad), Err(StunError::Malformed(0x0020)));
    // ALTERNATE-SERVER is read only in an error response.
    let alt = message(0x0111, &[(0x0009, b"\0\0\x03\0"), (0x8023, &[0, 9])], true);
    assert_eq!(BindingResponse::decode(&alt), Err(StunError::Malformed(0x8023)));
}

#[test]
fn truncated_and_overlong_attributes() {
    let good = message(0x0101, &[(0x0001, &plain_v4([192, 0, 2, 1], 1)), (0x8022, b"abc")], false);
    // SOFTWARE is the last attribute: type 8022, length 3, "abc", one padding byte.
    let sw = good.len() - 8;
    assert_eq!(&good[sw..sw + 4], &[0x80, 0x22, 0, 3]);
    // Its length runs past the end of the message (5 or 8 instead of 3)...
    for len in [5u8, 8, 255] {
        let mut bad = good.clone();
        bad[sw + 3] = len;
        assert_eq!(BindingResponse::decode(&bad), Err(StunError::Truncated(0x8022)), "length {len}");
    }
    // ... or its value fits but its padding does not: length 4 is exactly the room left.
    let mut exact = good.clone();
    exact[sw + 3] = 4;
    // The padding byte becomes part of the value: 0xEE is invalid UTF-8, and its U+FFFD would
    // not fit in the four bytes, so the text ends there.
    assert_eq!(success(&exact).software.as_deref(), Some("abc"));
    // A header that promises more attributes than the datagram holds is not STUN at all.
    let mut short = good.clone();
    short.truncate(good.len() - 4);
    assert!(matches!(BindingResponse::decode(&short), Err(StunError::NotStun(_))));
    // A huge length in the first attribute.
    let mut huge = good.clone();
    huge[22] = 0xFF;
    huge[23] = 0xFF;
    assert_eq!(BindingResponse::decode(&huge), Err(StunError::Truncated(0x0001)));
    // A zero-length attribute is fine.
    let empty = message(0x0101, &[(0x8000, b""), (0x0001, &plain_v4([192, 0, 2, 1], 1)), (0x8022, b"")], true);
    assert_eq!(success(&empty).software.as_deref(), Some(""));
}

#[test]
fn fingerprint_must_be_last_and_well_formed() {
    let mut wire = message(0x0101, &[(0x0001, &plain_v4([192, 0, 2, 1], 1))], true);
    // Append an attribute after FINGERPRINT and fix up the length.
    wire.extend_from_slice(&[0x80, 0x22, 0, 0]);
    let len = u16::from_be_bytes([wire[2], wire[3]]) + 4;
    wire[2..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(BindingResponse::decode(&wire), Err(StunError::AfterFingerprint(0x8022)));
    let long_fp = message(0x0101, &[(0x0001, &plain_v4([192, 0, 2, 1], 1)), (0x8028, &[0; 8])], false);
    assert_eq!(BindingResponse::decode(&long_fp), Err(StunError::Malformed(0x8028)));
}

#[test]
fn unknown_attributes_in_responses() {
    let mapped = plain_v4([192, 0, 2, 1], 1);
    // Comprehension-optional: skipped.
    let optional = message(0x0101, &[(0xC001, b"whatever"), (0x0001, &mapped)], true);
    assert_eq!(success(&optional).mapped, "192.0.2.1:1".parse().unwrap());
    // Comprehension-required and unknown: the response is discarded.
    let required = message(0x0101, &[(0x0001, &mapped), (0x7FFF, b"x")], true);
    assert_eq!(BindingResponse::decode(&required), Err(StunError::UnknownRequired(0x7FFF)));
    // Known and ignorable, such as REALM and NONCE in a 401.
    let e = error(&message(0x0111, &[(0x0009, b"\0\0\x04\x01"), (0x0014, b"example.org"), (0x0015, b"n")], true));
    assert_eq!(e.code, ErrorCode::UNAUTHORIZED);
}

#[test]
fn attributes_after_message_integrity_are_ignored() {
    let mapped = plain_v4([192, 0, 2, 1], 1);
    let integrity = [0u8; 20];
    // After MESSAGE-INTEGRITY only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT count: an unknown
    // required attribute there is ignored, and so is a mapped address.
    let wire = message(0x0101, &[(0x0001, &mapped), (0x0008, &integrity), (0x001C, &[0; 32]), (0x7FFF, b"x")], true);
    assert_eq!(success(&wire).mapped, "192.0.2.1:1".parse().unwrap());
    let late = message(0x0101, &[(0x0008, &integrity), (0x0001, &mapped)], true);
    assert_eq!(BindingResponse::decode(&late), Err(StunError::NoMappedAddress));
    // A request's unknown attributes after MESSAGE-INTEGRITY are not listed either.
    let request = message(0x0001, &[(0x0006, b"user"), (0x0008, &integrity), (0x0024, &[0; 4])], true);
    let r = BindingRequest::decode(&request).unwrap();
    assert!(r.credentials);
    assert!(r.unknown_required.is_empty());
}

#[test]
fn success_without_an_address() {
    let wire = message(0x0101, &[(0x8022, b"server")], true);
    assert_eq!(BindingResponse::decode(&wire), Err(StunError::NoMappedAddress));
}

#[test]
fn text_is_bounded_and_lossy() {
    // Invalid UTF-8 becomes U+FFFD, but never more bytes out than in: each replacement costs
    // three bytes, so text with invalid bytes may come out cut short.
    let e = error(&message(0x0111, &[(0x0009, b"\0\0\x05\x00bad \xff end")], true));
    assert_eq!(e.reason, "bad \u{fffd} e");
    let all_invalid = [0xFFu8; 40];
    let mut value = b"\0\0\x05\x00".to_vec();
    value.extend_from_slice(&all_invalid);
    let e = error(&message(0x0111, &[(0x0009, &value)], true));
    assert_eq!(e.reason, "\u{fffd}".repeat(13));
    assert!(e.reason.len() <= all_invalid.len());
    // At most 127 characters, and trailing NULs (C servers) dropped.
    let long = message(0x0101, &[(0x0001, &plain_v4([192, 0, 2, 1], 1)), (0x8022, &[b'a'; 700])], true);
    assert_eq!(success(&long).software.map(|s| s.len()), Some(MAX_TEXT_CHARS));
    let nul = message(0x0101, &[(0x0001, &plain_v4([192, 0, 2, 1], 1)), (0x8022, b"srv 1.0\0")], true);
    assert_eq!(success(&nul).software.as_deref(), Some("srv 1.0"));
    // Multi-byte characters are counted as characters.
    let wide = "é".repeat(300);
    let wire = message(0x0101, &[(0x0001, &plain_v4([192, 0, 2, 1], 1)), (0x8022, wide.as_bytes())], true);
    assert_eq!(success(&wire).software.map(|s| s.chars().count()), Some(MAX_TEXT_CHARS));
    // Encoding truncates to 127 characters too.
    let request = BindingRequest::decode(&binding_request(ID, Some(&"ü".repeat(500)))).unwrap();
    assert_eq!(request.software, Some("ü".repeat(MAX_TEXT_CHARS)));
    let e = BindingError {
        transaction_id: ID,
        code: ErrorCode::BAD_REQUEST,
        reason: "x".repeat(1000),
        unknown_attributes: (0..200).collect(),
        alternate_server: None,
        software: None,
    };
    let back = error(&e.encode());
    assert_eq!((back.reason.len(), back.unknown_attributes.len()), (MAX_TEXT_CHARS, MAX_UNKNOWN_ATTRIBUTES));
}

#[test]
fn padding_bytes_are_ignored() {
    // `message` pads with 0xEE; the RFC 5769 vectors pad with spaces.
    let wire = message(0x0101, &[(0x0001, &plain_v4([192, 0, 2, 1], 1)), (0x8022, b"a")], true);
    assert_eq!(&wire[wire.len() - 11..wire.len() - 8], &[0xEE; 3]);
    assert_eq!(success(&wire).software.as_deref(), Some("a"));
}

/// Bytes the decoded value holds on the heap.
fn heap(r: &Result<BindingResponse, StunError>) -> usize {
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::capacity);
    match r {
        Ok(BindingResponse::Success(s)) => text(&s.software),
        Ok(BindingResponse::Error(e)) => e.reason.capacity() + 2 * e.unknown_attributes.capacity() + text(&e.software),
        Err(_) => 0,
    }
}

fn arb_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(IpAddr::from(ip), port)),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(ip),
            port,
            0,
            0
        ))),
    ]
}

fn arb_id() -> impl Strategy<Value = TransactionId> {
    any::<[u8; 12]>().prop_map(TransactionId)
}

fn arb_response() -> impl Strategy<Value = BindingResponse> {
    let text = || prop::option::of("[^\u{0}]{0,127}");
    let success =
        (arb_id(), arb_addr(), any::<bool>(), prop::option::of(arb_addr()), prop::option::of(arb_addr()), text())
            .prop_map(|(transaction_id, mapped, xor_mapped, response_origin, other_address, software)| {
                BindingResponse::Success(BindingSuccess {
                    transaction_id,
                    mapped,
                    xor_mapped,
                    response_origin,
                    other_address,
                    software,
                })
            });
    let error = (
        arb_id(),
        300u16..700,
        "[^\u{0}]{0,127}",
        prop::collection::vec(any::<u16>(), 0..=MAX_UNKNOWN_ATTRIBUTES),
        prop::option::of(arb_addr()),
        text(),
    )
        .prop_map(|(transaction_id, code, reason, unknown_attributes, alternate_server, software)| {
            BindingResponse::Error(BindingError {
                transaction_id,
                code: ErrorCode::new(code).unwrap_or(ErrorCode::SERVER_ERROR),
                reason,
                unknown_attributes,
                alternate_server,
                software,
            })
        });
    prop_oneof![success, error]
}

/// A well-formed header followed by arbitrary attributes, so that fuzzing reaches past the
/// header checks.
fn arb_attributes() -> impl Strategy<Value = Vec<u8>> {
    let kind = prop_oneof![
        Just(0x0001u16),
        Just(0x0004),
        Just(0x0005),
        Just(0x0008),
        Just(0x0009),
        Just(0x000A),
        Just(0x0020),
        Just(0x8022),
        Just(0x8023),
        Just(0x8028),
        Just(0x802B),
        Just(0x802C),
        any::<u16>(),
    ];
    let class = prop::sample::select(vec![0x0001u16, 0x0101, 0x0111]);
    (class, prop::collection::vec((kind, prop::collection::vec(any::<u8>(), 0..24)), 0..6), any::<bool>()).prop_map(
        |(class, attrs, fingerprint)| {
            let attrs: Vec<(u16, &[u8])> = attrs.iter().map(|(k, v)| (*k, &v[..])).collect();
            message(class, &attrs, fingerprint)
        },
    )
}

fn check_decoders(bytes: &[u8]) -> Result<(), TestCaseError> {
    let r = BindingResponse::decode(bytes);
    prop_assert!(heap(&r) <= bytes.len(), "{} heap bytes from {} bytes", heap(&r), bytes.len());
    if let Ok(r) = &r {
        // Whatever decodes re-encodes to something that decodes the same.
        prop_assert_eq!(&BindingResponse::decode(&r.encode()), &Ok(r.clone()));
    }
    if let Ok(q) = BindingRequest::decode(bytes) {
        let held = q.software.map_or(0, |s| s.capacity()) + 2 * q.unknown_required.capacity();
        prop_assert!(held <= bytes.len());
    }
    prop_assert_eq!(is_stun(bytes), Header::parse(bytes).is_ok());
    Ok(())
}

proptest! {
    #[test]
    fn responses_round_trip(r in arb_response()) {
        let wire = r.encode();
        prop_assert!(is_stun(&wire));
        prop_assert_eq!(BindingResponse::decode(&wire), Ok(r));
    }

    #[test]
    fn requests_round_trip(id in arb_id(), software in prop::option::of("[^\u{0}]{0,127}")) {
        let wire = binding_request(id, software.as_deref());
        let expected = BindingRequest { transaction_id: id, software, credentials: false, unknown_required: vec![] };
        prop_assert_eq!(BindingRequest::decode(&wire), Ok(expected));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        check_decoders(&bytes)?;
    }

    #[test]
    fn arbitrary_attributes_never_panic(wire in arb_attributes(), cut in 0usize..64, flip in any::<(usize, u8)>()) {
        check_decoders(&wire)?;
        check_decoders(&wire[..wire.len().saturating_sub(cut)])?;
        let mut flipped = wire.clone();
        let at = flip.0 % flipped.len();
        flipped[at] ^= flip.1;
        check_decoders(&flipped)?;
    }
}

#[test]
fn a_binding_indication_is_stun_and_answers_nothing() {
    let id = TransactionId([7; 12]);
    let m = binding_indication(id);
    assert!(is_stun(&m));
    let h = Header::parse(&m).unwrap();
    assert_eq!((h.class, h.method, h.transaction_id), (Class::Indication, BINDING, id));
    assert!(BindingResponse::decode(&m).is_err(), "not taken for an answer");
    assert!(BindingRequest::decode(&m).is_err(), "nor for a request a server would answer");
}
