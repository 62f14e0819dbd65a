//! NAT-PMP (RFC 6886): asking the home router for its external IPv4 address and for port
//! mappings.
//!
//! A client sends a [`Request`] to the default gateway's port [`SERVER_PORT`] and reads the
//! answer with [`Response::decode`], after checking that it came from the gateway it asked
//! (RFC 6886 §3.1). Without an answer it resends on the schedule of [`RETRANSMIT_WAITS`]; a
//! mapping is renewed after [`renew_after`] its lifetime, and all of them at once when
//! [`gateway_lost_state`] says the gateway rebooted. A gateway also multicasts an
//! external-address [`Response`] to 224.0.0.1:[`CLIENT_PORT`] when its address changes.
//! [`Request::decode`] and [`Response::encode`] let tests play the gateway.
//!
//! Nothing here sends or reads clocks: times come in and out as [`Duration`]s.
//!
//! # What it refuses to do
//!
//! Only version 0 is spoken. A gateway answering with another version (PCP, RFC 6887, uses
//! version 2) gets [`NatPmpError::WrongVersion`]; PCP itself is not implemented. Responses
//! must have exactly the size RFC 6886 gives their opcode, except that a failure may also be
//! the 8-byte form of §3.5 (version, opcode, result code, epoch), whose opcode some gateways
//! leave at 0 instead of 128 (RFC 6886 erratum 3618): both are accepted as a failure of an
//! external-address request.

use std::net::Ipv4Addr;
use std::time::Duration;

/// The UDP port a gateway listens on.
pub const SERVER_PORT: u16 = 5351;
/// The UDP port a gateway announces address changes to, on 224.0.0.1.
pub const CLIENT_PORT: u16 = 5350;
/// The mapping lifetime RFC 6886 §3.3 recommends asking for: two hours, in seconds.
pub const RECOMMENDED_LIFETIME: u32 = 7200;
/// How long to wait for a response after each of the nine attempts before sending the next
/// (RFC 6886 §3.1): 250 ms, doubling each time. If the ninth goes unanswered for 64 s the
/// gateway does not speak NAT-PMP. About 128 s in all.
pub const RETRANSMIT_WAITS: [Duration; 9] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
    Duration::from_secs(32),
    Duration::from_secs(64),
];

/// A NAT-PMP packet that cannot be used. Every variant means "drop the packet".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NatPmpError {
    /// The packet is not the size its opcode requires.
    #[error("nat-pmp packet of {0} bytes has the wrong size for its opcode")]
    WrongSize(usize),
    /// The version is not 0.
    #[error("nat-pmp version {0} is not 0")]
    WrongVersion(u8),
    /// The opcode is not one this side of the exchange accepts.
    #[error("unexpected nat-pmp opcode {0}")]
    WrongOpcode(u8),
    /// The result code is not one RFC 6886 defines.
    #[error("unknown nat-pmp result code {0}")]
    UnknownResult(u16),
}

/// The transport protocol of a port mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// UDP (opcode 1).
    Udp,
    /// TCP (opcode 2).
    Tcp,
}

impl Protocol {
    /// The request opcode that maps this protocol.
    pub fn opcode(self) -> u8 {
        match self {
            Protocol::Udp => 1,
            Protocol::Tcp => 2,
        }
    }

    fn from_opcode(op: u8) -> Option<Protocol> {
        match op {
            1 => Some(Protocol::Udp),
            2 => Some(Protocol::Tcp),
            _ => None,
        }
    }
}

/// A request to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Request {
    /// What is your external IPv4 address? (opcode 0)
    ExternalAddress,
    /// Map an external port to one of ours (opcode 1 or 2).
    Map {
        /// UDP or TCP.
        protocol: Protocol,
        /// Our port. With a lifetime of 0, port 0 deletes all our mappings of `protocol`.
        internal_port: u16,
        /// The external port we would like, or 0 for any; the gateway may give another.
        suggested_external_port: u16,
        /// Seconds the mapping should live ([`RECOMMENDED_LIFETIME`]); 0 deletes it.
        lifetime: u32,
    },
}

impl Request {
    /// A request to delete our mapping of `internal_port`, or all our mappings of `protocol`
    /// when `internal_port` is 0 (RFC 6886 §3.4).
    pub fn delete(protocol: Protocol, internal_port: u16) -> Request {
        Request::Map { protocol, internal_port, suggested_external_port: 0, lifetime: 0 }
    }

    /// The request's opcode.
    pub fn opcode(&self) -> u8 {
        match self {
            Request::ExternalAddress => 0,
            Request::Map { protocol, .. } => protocol.opcode(),
        }
    }

    /// The request as bytes: 2 for the external address, 12 for a mapping.
    pub fn encode(&self) -> Vec<u8> {
        match *self {
            Request::ExternalAddress => vec![0, 0],
            Request::Map { protocol, internal_port, suggested_external_port, lifetime } => {
                let mut out = Vec::with_capacity(12);
                out.extend_from_slice(&[0, protocol.opcode(), 0, 0]);
                out.extend_from_slice(&internal_port.to_be_bytes());
                out.extend_from_slice(&suggested_external_port.to_be_bytes());
                out.extend_from_slice(&lifetime.to_be_bytes());
                out
            }
        }
    }

    /// Reads a request, as a gateway would. The reserved field of a mapping request is
    /// ignored.
    pub fn decode(packet: &[u8]) -> Result<Request, NatPmpError> {
        let [version, op, rest @ ..] = packet else {
            return Err(NatPmpError::WrongSize(packet.len()));
        };
        if *version != 0 {
            return Err(NatPmpError::WrongVersion(*version));
        }
        match (*op, rest) {
            (0, []) => Ok(Request::ExternalAddress),
            (op @ (1 | 2), [_, _, i0, i1, e0, e1, l0, l1, l2, l3]) => Ok(Request::Map {
                protocol: Protocol::from_opcode(op).ok_or(NatPmpError::WrongOpcode(op))?,
                internal_port: u16::from_be_bytes([*i0, *i1]),
                suggested_external_port: u16::from_be_bytes([*e0, *e1]),
                lifetime: u32::from_be_bytes([*l0, *l1, *l2, *l3]),
            }),
            (0..=2, _) => Err(NatPmpError::WrongSize(packet.len())),
            (op, _) => Err(NatPmpError::WrongOpcode(op)),
        }
    }
}

/// A response's result code (RFC 6886 §3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultCode {
    /// 0: the request succeeded.
    Success,
    /// 1: the gateway does not speak this version.
    UnsupportedVersion,
    /// 2: the gateway supports mapping but it is turned off, or this client may not map.
    NotAuthorized,
    /// 3: the gateway has no external address, for example no DHCP lease yet.
    NetworkFailure,
    /// 4: the gateway cannot create more mappings.
    OutOfResources,
    /// 5: the gateway does not know this opcode.
    UnsupportedOpcode,
}

impl ResultCode {
    /// The result code from its number, if RFC 6886 defines it.
    pub fn from_code(code: u16) -> Option<ResultCode> {
        Some(match code {
            0 => ResultCode::Success,
            1 => ResultCode::UnsupportedVersion,
            2 => ResultCode::NotAuthorized,
            3 => ResultCode::NetworkFailure,
            4 => ResultCode::OutOfResources,
            5 => ResultCode::UnsupportedOpcode,
            _ => return None,
        })
    }

    /// The number on the wire.
    pub fn code(self) -> u16 {
        match self {
            ResultCode::Success => 0,
            ResultCode::UnsupportedVersion => 1,
            ResultCode::NotAuthorized => 2,
            ResultCode::NetworkFailure => 3,
            ResultCode::OutOfResources => 4,
            ResultCode::UnsupportedOpcode => 5,
        }
    }

    /// What the code means, for logs.
    pub fn description(self) -> &'static str {
        match self {
            ResultCode::Success => "success",
            ResultCode::UnsupportedVersion => "unsupported version",
            ResultCode::NotAuthorized => "not authorized or refused (port mapping may be turned off on the gateway)",
            ResultCode::NetworkFailure => "network failure (the gateway has no external address yet)",
            ResultCode::OutOfResources => "out of resources (the gateway cannot create more mappings)",
            ResultCode::UnsupportedOpcode => "unsupported opcode",
        }
    }
}

/// A granted (or, with a lifetime of 0, deleted) port mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mapping {
    /// UDP or TCP.
    pub protocol: Protocol,
    /// Seconds since the gateway's port-mapping table was (re)initialised.
    pub epoch: u32,
    /// Our port, as in the request.
    pub internal_port: u16,
    /// The external port the gateway chose, which may differ from the suggested one.
    pub external_port: u16,
    /// Seconds the mapping lives, which may differ from the requested lifetime.
    pub lifetime: u32,
}

/// A response that reports a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Failure {
    /// The opcode of the request that failed: 0, 1 or 2.
    pub opcode: u8,
    /// Why; never [`ResultCode::Success`].
    pub result: ResultCode,
    /// Seconds since the gateway's port-mapping table was (re)initialised, as the gateway
    /// sent it.
    pub epoch: u32,
}

/// A response from the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Response {
    /// The gateway's external address (opcode 128), as asked for or announced.
    ExternalAddress {
        /// Seconds since the gateway's port-mapping table was (re)initialised.
        epoch: u32,
        /// The external IPv4 address; 0.0.0.0 when the gateway has none.
        address: Ipv4Addr,
    },
    /// A mapping was created, renewed or deleted (opcode 129 or 130).
    Mapping(Mapping),
    /// The request failed.
    Failure(Failure),
}

impl Response {
    /// Reads a response: version 0, opcode 128 + the request's, a result code from 0 to 5, and
    /// the size of its opcode (12 bytes for 128, 16 for 129 and 130). A failure may also be
    /// 8 bytes long; see the module documentation.
    pub fn decode(packet: &[u8]) -> Result<Response, NatPmpError> {
        let Some(&[version, op, r0, r1, e0, e1, e2, e3]) = packet.get(..8) else {
            return Err(NatPmpError::WrongSize(packet.len()));
        };
        if version != 0 {
            return Err(NatPmpError::WrongVersion(version));
        }
        let code = u16::from_be_bytes([r0, r1]);
        let result = ResultCode::from_code(code).ok_or(NatPmpError::UnknownResult(code))?;
        let epoch = u32::from_be_bytes([e0, e1, e2, e3]);
        let full = match op {
            128 => 12,
            129 | 130 => 16,
            // Erratum 3618: some gateways answer an unsupported version with opcode 0.
            0 if result == ResultCode::UnsupportedVersion && packet.len() == 8 => 8,
            _ => return Err(NatPmpError::WrongOpcode(op)),
        };
        if result != ResultCode::Success {
            if packet.len() != 8 && packet.len() != full {
                return Err(NatPmpError::WrongSize(packet.len()));
            }
            return Ok(Response::Failure(Failure { opcode: op & 0x7F, result, epoch }));
        }
        match (op, &packet[8..]) {
            (128, &[a, b, c, d]) => Ok(Response::ExternalAddress { epoch, address: Ipv4Addr::new(a, b, c, d) }),
            (129 | 130, &[i0, i1, x0, x1, l0, l1, l2, l3]) => Ok(Response::Mapping(Mapping {
                protocol: if op == 129 { Protocol::Udp } else { Protocol::Tcp },
                epoch,
                internal_port: u16::from_be_bytes([i0, i1]),
                external_port: u16::from_be_bytes([x0, x1]),
                lifetime: u32::from_be_bytes([l0, l1, l2, l3]),
            })),
            _ => Err(NatPmpError::WrongSize(packet.len())),
        }
    }

    /// The response as bytes, at its opcode's full size (a failure's fields beyond the epoch
    /// are zero).
    pub fn encode(&self) -> Vec<u8> {
        let (op, result, epoch) = match self {
            Response::ExternalAddress { epoch, .. } => (0, ResultCode::Success, *epoch),
            Response::Mapping(m) => (m.protocol.opcode(), ResultCode::Success, m.epoch),
            Response::Failure(f) => (f.opcode & 0x7F, f.result, f.epoch),
        };
        let mut out = Vec::with_capacity(16);
        out.extend_from_slice(&[0, 0x80 | op]);
        out.extend_from_slice(&result.code().to_be_bytes());
        out.extend_from_slice(&epoch.to_be_bytes());
        match self {
            Response::ExternalAddress { address, .. } => out.extend_from_slice(&address.octets()),
            Response::Mapping(m) => {
                out.extend_from_slice(&m.internal_port.to_be_bytes());
                out.extend_from_slice(&m.external_port.to_be_bytes());
                out.extend_from_slice(&m.lifetime.to_be_bytes());
            }
            Response::Failure(_) => out.resize(if op == 0 { 12 } else { 16 }, 0),
        }
        out
    }

    /// The response's epoch: seconds since the gateway's port-mapping table was
    /// (re)initialised.
    pub fn epoch(&self) -> u32 {
        match self {
            Response::ExternalAddress { epoch, .. } => *epoch,
            Response::Mapping(m) => m.epoch,
            Response::Failure(f) => f.epoch,
        }
    }
}

/// When to renew a mapping granted for `lifetime` seconds: halfway to its expiry (RFC 6886
/// §3.7).
pub fn renew_after(lifetime: u32) -> Duration {
    Duration::from_millis(u64::from(lifetime) * 500)
}

/// Whether the gateway lost its mappings (rebooted, say) between two responses (RFC 6886
/// §3.6): `previous_epoch` came `elapsed` ago by our clock, `epoch` just now. The gateway's
/// clock should have advanced by at least seven-eighths of ours; if it is more than two
/// seconds behind that, every mapping must be renewed at once.
pub fn gateway_lost_state(previous_epoch: u32, elapsed: Duration, epoch: u32) -> bool {
    let expected_ms = u128::from(previous_epoch) * 1000 + elapsed.as_millis() * 7 / 8;
    u128::from(epoch) * 1000 + 2000 < expected_ms
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn requests_follow_the_rfc_layout() {
        assert_eq!(Request::ExternalAddress.encode(), [0, 0]);
        let map = Request::Map {
            protocol: Protocol::Tcp,
            internal_port: 0x1234,
            suggested_external_port: 0xABCD,
            lifetime: RECOMMENDED_LIFETIME,
        };
        assert_eq!(map.encode(), [0, 2, 0, 0, 0x12, 0x34, 0xAB, 0xCD, 0, 0, 0x1C, 0x20]);
        assert_eq!(Request::delete(Protocol::Udp, 0).encode(), [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        for r in [Request::ExternalAddress, map, Request::delete(Protocol::Udp, 8080)] {
            assert_eq!(Request::decode(&r.encode()), Ok(r));
        }
    }

    #[test]
    fn requests_reject_wrong_version_size_and_opcode() {
        assert_eq!(Request::decode(&[]), Err(NatPmpError::WrongSize(0)));
        assert_eq!(Request::decode(&[0]), Err(NatPmpError::WrongSize(1)));
        assert_eq!(Request::decode(&[2, 0]), Err(NatPmpError::WrongVersion(2)));
        assert_eq!(Request::decode(&[0, 0, 0]), Err(NatPmpError::WrongSize(3)));
        assert_eq!(Request::decode(&[0, 1, 0, 0]), Err(NatPmpError::WrongSize(4)));
        assert_eq!(Request::decode(&[0, 3]), Err(NatPmpError::WrongOpcode(3)));
        // A response is not a request (§3.5: the gateway ignores it).
        assert_eq!(Request::decode(&[0, 128, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), Err(NatPmpError::WrongOpcode(128)));
    }

    #[test]
    fn external_address_response() {
        // Vers 0, OP 128, result 0, epoch 0x00010203, address 203.0.113.7.
        let wire = [0, 128, 0, 0, 0, 1, 2, 3, 203, 0, 113, 7];
        let r = Response::decode(&wire).unwrap();
        assert_eq!(r, Response::ExternalAddress { epoch: 0x0001_0203, address: Ipv4Addr::new(203, 0, 113, 7) });
        assert_eq!(r.encode(), wire);
        assert_eq!(r.epoch(), 0x0001_0203);
    }

    #[test]
    fn mapping_responses() {
        // Vers 0, OP 129 (UDP), result 0, epoch 60, internal 5000, external 61000, lifetime 3600.
        let udp = [0, 129, 0, 0, 0, 0, 0, 60, 0x13, 0x88, 0xEE, 0x48, 0, 0, 0x0E, 0x10];
        let m =
            Mapping { protocol: Protocol::Udp, epoch: 60, internal_port: 5000, external_port: 61000, lifetime: 3600 };
        assert_eq!(Response::decode(&udp), Ok(Response::Mapping(m)));
        assert_eq!(Response::Mapping(m).encode(), udp);
        let mut tcp = udp;
        tcp[1] = 130;
        assert_eq!(Response::decode(&tcp), Ok(Response::Mapping(Mapping { protocol: Protocol::Tcp, ..m })));
    }

    #[test]
    fn failures_at_full_size_and_short() {
        // Mapping refused (result 2) at full size: the other fields are not reported.
        let refused = [0, 130, 0, 2, 0, 0, 1, 0, 0x13, 0x88, 0, 0, 0, 0, 0, 0];
        let f = Failure { opcode: 2, result: ResultCode::NotAuthorized, epoch: 256 };
        assert_eq!(Response::decode(&refused), Ok(Response::Failure(f)));
        // §3.5's 8-byte "Unsupported Version" response, with opcode 128 (erratum 3618) and with
        // the opcode 0 the RFC printed and some gateways send.
        let v = Failure { opcode: 0, result: ResultCode::UnsupportedVersion, epoch: 9 };
        assert_eq!(Response::decode(&[0, 128, 0, 1, 0, 0, 0, 9]), Ok(Response::Failure(v)));
        assert_eq!(Response::decode(&[0, 0, 0, 1, 0, 0, 0, 9]), Ok(Response::Failure(v)));
        // Out of resources, 8 bytes, to a mapping request.
        let short = [0, 129, 0, 4, 0, 0, 0, 1];
        let o = Failure { opcode: 1, result: ResultCode::OutOfResources, epoch: 1 };
        assert_eq!(Response::decode(&short), Ok(Response::Failure(o)));
        // Encoding writes the full size; decoding it gives the same failure.
        for f in [f, v, o] {
            let wire = Response::Failure(f).encode();
            assert_eq!(wire.len(), if f.opcode == 0 { 12 } else { 16 });
            assert_eq!(Response::decode(&wire), Ok(Response::Failure(f)));
        }
    }

    #[test]
    fn responses_reject_wrong_size_version_opcode_and_result() {
        let good = [0u8, 128, 0, 0, 0, 0, 0, 1, 10, 0, 0, 1];
        assert_eq!(Response::decode(&good[..7]), Err(NatPmpError::WrongSize(7)));
        assert_eq!(Response::decode(&good[..8]), Err(NatPmpError::WrongSize(8)), "a success needs its fields");
        assert_eq!(Response::decode(&good[..11]), Err(NatPmpError::WrongSize(11)));
        let mut long = good.to_vec();
        long.push(0);
        assert_eq!(Response::decode(&long), Err(NatPmpError::WrongSize(13)));
        let mut v1 = good;
        v1[0] = 2;
        assert_eq!(Response::decode(&v1), Err(NatPmpError::WrongVersion(2)));
        for op in [0u8, 1, 2, 3, 127, 131, 255] {
            let mut o = good;
            o[1] = op;
            assert_eq!(Response::decode(&o), Err(NatPmpError::WrongOpcode(op)), "opcode {op}");
        }
        let mut r6 = good;
        r6[3] = 6;
        assert_eq!(Response::decode(&r6), Err(NatPmpError::UnknownResult(6)));
        // A mapping response at the external-address size, and a failure at an odd size.
        assert_eq!(Response::decode(&[0, 129, 0, 0, 0, 0, 0, 1, 0, 1, 0, 2]), Err(NatPmpError::WrongSize(12)));
        assert_eq!(Response::decode(&[0, 129, 0, 3, 0, 0, 0, 1, 0, 0]), Err(NatPmpError::WrongSize(10)));
        // The opcode-0 form is only the 8-byte Unsupported Version answer.
        assert_eq!(Response::decode(&[0, 0, 0, 2, 0, 0, 0, 9]), Err(NatPmpError::WrongOpcode(0)));
    }

    #[test]
    fn every_result_code_has_a_description() {
        for code in 0..=5 {
            let r = ResultCode::from_code(code).unwrap();
            assert_eq!(r.code(), code);
            assert!(!r.description().is_empty());
        }
        assert_eq!(ResultCode::from_code(6), None);
    }

    #[test]
    fn retransmission_schedule() {
        assert_eq!(RETRANSMIT_WAITS[0], Duration::from_millis(250));
        for pair in RETRANSMIT_WAITS.windows(2) {
            assert_eq!(pair[1], pair[0] * 2);
        }
        assert_eq!(RETRANSMIT_WAITS.iter().sum::<Duration>(), Duration::from_millis(127_750));
        assert_eq!(renew_after(RECOMMENDED_LIFETIME), Duration::from_secs(3600));
        assert_eq!(renew_after(u32::MAX), Duration::from_millis(u64::from(u32::MAX) * 500));
    }

    #[test]
    fn lost_state_when_the_epoch_falls_behind() {
        let min = Duration::from_secs(60);
        assert!(!gateway_lost_state(1000, min, 1060));
        // Seven-eighths of 60 s is 52.5 s; two seconds of slack below that is still fine.
        assert!(!gateway_lost_state(1000, min, 1051));
        assert!(gateway_lost_state(1000, min, 1050));
        // A reboot: the epoch starts again from zero.
        assert!(gateway_lost_state(1000, Duration::from_secs(5), 3));
        assert!(!gateway_lost_state(0, Duration::ZERO, 0));
        assert!(gateway_lost_state(u32::MAX, Duration::MAX, u32::MAX));
    }

    fn arb_request() -> impl Strategy<Value = Request> {
        prop_oneof![
            Just(Request::ExternalAddress),
            (any::<bool>(), any::<u16>(), any::<u16>(), any::<u32>()).prop_map(|(udp, i, e, l)| Request::Map {
                protocol: if udp { Protocol::Udp } else { Protocol::Tcp },
                internal_port: i,
                suggested_external_port: e,
                lifetime: l,
            }),
        ]
    }

    fn arb_response() -> impl Strategy<Value = Response> {
        let protocol = prop_oneof![Just(Protocol::Udp), Just(Protocol::Tcp)];
        prop_oneof![
            (any::<u32>(), any::<[u8; 4]>())
                .prop_map(|(epoch, a)| Response::ExternalAddress { epoch, address: Ipv4Addr::from(a) }),
            (protocol, any::<u32>(), any::<u16>(), any::<u16>(), any::<u32>()).prop_map(
                |(protocol, epoch, i, x, l)| {
                    Response::Mapping(Mapping { protocol, epoch, internal_port: i, external_port: x, lifetime: l })
                }
            ),
            (0u8..3, 1u16..=5, any::<u32>()).prop_map(|(opcode, code, epoch)| {
                let result = ResultCode::from_code(code).unwrap_or(ResultCode::NetworkFailure);
                Response::Failure(Failure { opcode, result, epoch })
            }),
        ]
    }

    proptest! {
        #[test]
        fn requests_round_trip(r in arb_request()) {
            prop_assert_eq!(Request::decode(&r.encode()), Ok(r));
        }

        #[test]
        fn responses_round_trip(r in arb_response()) {
            prop_assert_eq!(Response::decode(&r.encode()), Ok(r));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..24)) {
            if let Ok(r) = Response::decode(&bytes) {
                prop_assert_eq!(Response::decode(&r.encode()), Ok(r));
                if let Response::Failure(f) = r {
                    prop_assert_ne!(f.result, ResultCode::Success);
                }
            }
            if let Ok(r) = Request::decode(&bytes) {
                prop_assert_eq!(r.encode(), bytes.iter().enumerate().map(|(i, &b)| if i == 2 || i == 3 { 0 } else { b }).collect::<Vec<_>>());
            }
        }

        #[test]
        fn near_valid_responses_never_panic(op in prop::sample::select(vec![0u8, 128, 129, 130]), code in 0u16..7, len in 0usize..20) {
            let mut bytes = vec![0u8, op];
            bytes.extend_from_slice(&code.to_be_bytes());
            bytes.resize(len, 7);
            let _ = Response::decode(&bytes);
        }
    }
}
