//! STUN Binding messages (RFC 8489, which replaced RFC 5389): learning the public UDP
//! address a NAT gave us, and answering others who want to learn theirs.
//!
//! Only the Binding method is spoken, without authentication. A client sends
//! [`binding_request`] and reads the answer with [`BindingResponse::decode`]; a server reads
//! [`BindingRequest::decode`] and answers with [`BindingSuccess::encode`] or
//! [`BindingError::encode`]. [`is_stun`] tells STUN datagrams from others arriving on the same
//! socket. Nothing here sends, times or randomises: the caller supplies the random
//! [`TransactionId`], keeps it, and compares it with the one a response carries (a response
//! for any other transaction must be dropped). Retransmission timing is the caller's too.
//!
//! # What decoding accepts
//!
//! Decoding is for hostile input. It never panics, never reads past an attribute, and never
//! allocates more than the datagram's size: text is bounded and lossily decoded, lists are
//! capped, and only the first of repeated attributes is read (RFC 8489 §14). It checks the
//! header (first two bits zero, magic cookie, length a multiple of four that matches the
//! datagram), each attribute's length and padding against the total, and FINGERPRINT when
//! present (it must then be last). Attributes after MESSAGE-INTEGRITY are ignored except
//! MESSAGE-INTEGRITY-SHA256 and FINGERPRINT, as §14.5 requires. Unknown comprehension-optional
//! attributes (0x8000 and up) are skipped; an unknown comprehension-required one fails a
//! response ([`StunError::UnknownRequired`]) and is listed in a request so a server can answer
//! 420 (Unknown Attribute).
//!
//! # What it refuses to do
//!
//! MESSAGE-INTEGRITY and MESSAGE-INTEGRITY-SHA256 are parsed past, never verified: the daemon
//! uses STUN unauthenticated and treats the mapped address as a hint to be confirmed by a
//! peer, not as a fact. A request that carries credentials says so
//! ([`BindingRequest::credentials`]). RFC 3489's "classic STUN" is supported only as far as
//! reading its responses to our RFC 8489 request: MAPPED-ADDRESS, SOURCE-ADDRESS and
//! CHANGED-ADDRESS stand in for XOR-MAPPED-ADDRESS, RESPONSE-ORIGIN and OTHER-ADDRESS. Requests
//! without the magic cookie are not STUN to [`is_stun`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The fixed value in bytes 4..8 of every RFC 5389/8489 message.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Size of the message header, in bytes.
pub const HEADER_LEN: usize = 20;
/// The Binding method.
pub const BINDING: u16 = 0x001;
/// Most characters kept from, or written to, a SOFTWARE value or an error reason phrase
/// (RFC 8489 §14.8 and §14.14: fewer than 128 characters).
pub const MAX_TEXT_CHARS: usize = 127;
/// Most bytes of a SOFTWARE value or a reason phrase that are read (RFC 8489: up to 763 bytes
/// when decoding).
pub const MAX_TEXT_BYTES: usize = 763;
/// Most attribute types kept from, or written to, an UNKNOWN-ATTRIBUTES list.
pub const MAX_UNKNOWN_ATTRIBUTES: usize = 64;

/// CRC-32 of a message is XORed with this ("STUN") to make its FINGERPRINT.
const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// Attribute types (RFC 8489 §18.3, RFC 5780 §7, RFC 3489 §11.2).
mod attr {
    pub(super) const MAPPED_ADDRESS: u16 = 0x0001;
    pub(super) const SOURCE_ADDRESS: u16 = 0x0004;
    pub(super) const CHANGED_ADDRESS: u16 = 0x0005;
    pub(super) const USERNAME: u16 = 0x0006;
    pub(super) const MESSAGE_INTEGRITY: u16 = 0x0008;
    pub(super) const ERROR_CODE: u16 = 0x0009;
    pub(super) const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    pub(super) const REALM: u16 = 0x0014;
    pub(super) const NONCE: u16 = 0x0015;
    pub(super) const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
    pub(super) const PASSWORD_ALGORITHM: u16 = 0x001D;
    pub(super) const USERHASH: u16 = 0x001E;
    pub(super) const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    pub(super) const SOFTWARE: u16 = 0x8022;
    pub(super) const ALTERNATE_SERVER: u16 = 0x8023;
    pub(super) const FINGERPRINT: u16 = 0x8028;
    pub(super) const RESPONSE_ORIGIN: u16 = 0x802B;
    pub(super) const OTHER_ADDRESS: u16 = 0x802C;

    /// Comprehension-required attributes that may appear in a Binding response and that we
    /// know to be safe to ignore there: RFC 3489's RESPONSE-ADDRESS (0x0002), CHANGE-REQUEST
    /// (0x0003), PASSWORD (0x0007) and REFLECTED-FROM (0x000B), the authentication
    /// attributes, and RFC 5780's PADDING (0x0026) and RESPONSE-PORT (0x0027).
    pub(super) const IGNORED_IN_RESPONSE: [u16; 13] = [
        0x0002,
        0x0003,
        0x0007,
        0x000B,
        USERNAME,
        MESSAGE_INTEGRITY,
        REALM,
        NONCE,
        MESSAGE_INTEGRITY_SHA256,
        PASSWORD_ALGORITHM,
        USERHASH,
        0x0026,
        0x0027,
    ];

    /// The attributes of the short- and long-term credential mechanisms (RFC 8489 §9).
    pub(super) const CREDENTIALS: [u16; 7] =
        [USERNAME, MESSAGE_INTEGRITY, REALM, NONCE, MESSAGE_INTEGRITY_SHA256, PASSWORD_ALGORITHM, USERHASH];

    /// Whether an agent that does not understand `kind` may ignore it (RFC 8489 §14).
    pub(super) fn optional(kind: u16) -> bool {
        kind >= 0x8000
    }
}

/// A STUN datagram that cannot be used. Every variant means "drop the datagram".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StunError {
    /// The header is not a STUN header: it may be another protocol's datagram.
    #[error("not a stun message: {0}")]
    NotStun(&'static str),
    /// A STUN message, but not the class or method expected here.
    #[error("unexpected stun {class:?} of method {method:#05x}")]
    Unexpected {
        /// The message's class.
        class: Class,
        /// The message's method.
        method: u16,
    },
    /// An attribute runs past the end of the message (its padding included).
    #[error("stun attribute {0:#06x} runs past the end of the message")]
    Truncated(u16),
    /// An attribute's value does not have the form its type requires.
    #[error("malformed stun attribute {0:#06x}")]
    Malformed(u16),
    /// FINGERPRINT does not match the message.
    #[error("stun fingerprint does not match")]
    BadFingerprint,
    /// An attribute follows FINGERPRINT, which must be last.
    #[error("stun attribute {0:#06x} follows the fingerprint")]
    AfterFingerprint(u16),
    /// A response carries a comprehension-required attribute we do not know.
    #[error("unknown comprehension-required stun attribute {0:#06x}")]
    UnknownRequired(u16),
    /// A success response carries neither XOR-MAPPED-ADDRESS nor MAPPED-ADDRESS.
    #[error("stun success response carries no mapped address")]
    NoMappedAddress,
    /// An error response carries no ERROR-CODE.
    #[error("stun error response carries no error code")]
    NoErrorCode,
}

/// The 96-bit transaction ID that pairs a response with its request. A client must draw it
/// from a cryptographically strong random source (RFC 8489 §5) and keep it to check
/// responses against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TransactionId(pub [u8; 12]);

/// The class of a STUN message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// A request, which expects a response.
    Request,
    /// An indication, which expects none.
    Indication,
    /// A success response.
    Success,
    /// An error response.
    Error,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0b00,
            Class::Indication => 0b01,
            Class::Success => 0b10,
            Class::Error => 0b11,
        }
    }

    fn from_bits(bits: u16) -> Self {
        match bits & 0b11 {
            0b00 => Class::Request,
            0b01 => Class::Indication,
            0b10 => Class::Success,
            _ => Class::Error,
        }
    }
}

/// The 20-byte header every STUN message starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Request, indication or response.
    pub class: Class,
    /// The 12-bit method ([`BINDING`] is the only one we speak).
    pub method: u16,
    /// The transaction this message belongs to.
    pub transaction_id: TransactionId,
}

impl Header {
    /// Reads the header of a whole datagram, checking what [`is_stun`] checks.
    pub fn parse(datagram: &[u8]) -> Result<Header, StunError> {
        let Some(head) = datagram.get(..HEADER_LEN) else {
            return Err(StunError::NotStun("shorter than a header"));
        };
        let kind = u16::from_be_bytes([head[0], head[1]]);
        let length = usize::from(u16::from_be_bytes([head[2], head[3]]));
        if kind & 0xC000 != 0 {
            return Err(StunError::NotStun("first two bits are not zero"));
        }
        if u32::from_be_bytes([head[4], head[5], head[6], head[7]]) != MAGIC_COOKIE {
            return Err(StunError::NotStun("no magic cookie"));
        }
        if length % 4 != 0 {
            return Err(StunError::NotStun("length is not a multiple of 4"));
        }
        if HEADER_LEN + length != datagram.len() {
            return Err(StunError::NotStun("length does not match the datagram"));
        }
        let mut id = [0u8; 12];
        id.copy_from_slice(&head[8..HEADER_LEN]);
        // The type interleaves the class bits (C1 at bit 8, C0 at bit 4) with the method's.
        let method = (kind & 0x000F) | ((kind & 0x00E0) >> 1) | ((kind & 0x3E00) >> 2);
        let class = Class::from_bits(((kind >> 4) & 0b01) | ((kind >> 7) & 0b10));
        Ok(Header { class, method, transaction_id: TransactionId(id) })
    }

    fn message_type(&self) -> u16 {
        let m = self.method & 0x0FFF;
        let c = self.class.bits();
        (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 0b01) << 4) | ((c & 0b10) << 7)
    }
}

/// Whether a datagram is a STUN message (RFC 8489 §5): its first two bits are zero,
/// bytes 4..8 hold the magic cookie, and its length field is a multiple of four that accounts
/// for exactly the rest of the datagram. Lets STUN share a socket with other protocols.
pub fn is_stun(datagram: &[u8]) -> bool {
    Header::parse(datagram).is_ok()
}

/// A Binding request, to send to a STUN server: no attributes but an optional SOFTWARE
/// (truncated to [`MAX_TEXT_CHARS`] characters) and a FINGERPRINT.
pub fn binding_request(transaction_id: TransactionId, software: Option<&str>) -> Vec<u8> {
    let mut w = Writer::new(Header { class: Class::Request, method: BINDING, transaction_id });
    if let Some(software) = software {
        w.text(attr::SOFTWARE, software);
    }
    w.finish()
}

/// A Binding indication (RFC 8489 §3.1): a message that asks nothing and is answered by
/// no one, as ICE uses it to keep a NAT's mapping open. Sent towards a peer, it opens our
/// NAT for the peer's packets (a hole punch) and means nothing to whatever reads it there.
pub fn binding_indication(transaction_id: TransactionId) -> Vec<u8> {
    Writer::new(Header { class: Class::Indication, method: BINDING, transaction_id }).finish()
}

/// A Binding request as a server sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRequest {
    /// To be echoed in the response.
    pub transaction_id: TransactionId,
    /// The client's SOFTWARE description, bounded and lossily decoded.
    pub software: Option<String>,
    /// Whether the request carries attributes of a credential mechanism (USERNAME,
    /// MESSAGE-INTEGRITY and the like). They are not verified; a server that requires
    /// authentication must not answer such a request as if it were authenticated.
    pub credentials: bool,
    /// Comprehension-required attributes this module does not act on, in order of
    /// appearance, repeats included. If any, the server must answer with
    /// [`ErrorCode::UNKNOWN_ATTRIBUTE`] listing them (RFC 8489 §6.3.1).
    pub unknown_required: Vec<u16>,
}

impl BindingRequest {
    /// Reads a Binding request from a whole datagram.
    pub fn decode(datagram: &[u8]) -> Result<BindingRequest, StunError> {
        let header = expect(datagram, &[Class::Request])?;
        let mut request = BindingRequest {
            transaction_id: header.transaction_id,
            software: None,
            credentials: false,
            unknown_required: Vec::new(),
        };
        walk(datagram, |kind, value| {
            match kind {
                attr::SOFTWARE if request.software.is_none() => request.software = Some(bounded_text(value)),
                k if attr::CREDENTIALS.contains(&k) => request.credentials = true,
                k if !attr::optional(k) => {
                    // At most one entry per attribute of at least four bytes: bounded by the
                    // datagram.
                    request.unknown_required.push(k);
                }
                _ => {}
            }
            Ok(())
        })?;
        Ok(request)
    }
}

/// A Binding success response: the address the server saw the request come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingSuccess {
    /// The request's transaction.
    pub transaction_id: TransactionId,
    /// The reflexive transport address: the request's source as the server saw it.
    pub mapped: SocketAddr,
    /// Whether [`BindingSuccess::mapped`] came from XOR-MAPPED-ADDRESS. False when it came
    /// from MAPPED-ADDRESS (an RFC 3489 server), whose plain bytes a NAT's application-level
    /// gateway may have rewritten on the way. Encoding writes the attribute this names.
    pub xor_mapped: bool,
    /// The address the response was sent from (RFC 5780 RESPONSE-ORIGIN, or RFC 3489
    /// SOURCE-ADDRESS).
    pub response_origin: Option<SocketAddr>,
    /// The server's other address, for NAT behaviour discovery (RFC 5780 OTHER-ADDRESS, or
    /// RFC 3489 CHANGED-ADDRESS).
    pub other_address: Option<SocketAddr>,
    /// The server's SOFTWARE description, bounded and lossily decoded.
    pub software: Option<String>,
}

impl BindingSuccess {
    /// The response as bytes: XOR-MAPPED-ADDRESS (or MAPPED-ADDRESS, see
    /// [`BindingSuccess::xor_mapped`]), RESPONSE-ORIGIN and OTHER-ADDRESS when set, SOFTWARE
    /// when set (truncated to [`MAX_TEXT_CHARS`] characters), then FINGERPRINT. IPv6 flow
    /// information and scope IDs are not carried.
    pub fn encode(&self) -> Vec<u8> {
        let header = Header { class: Class::Success, method: BINDING, transaction_id: self.transaction_id };
        let mut w = Writer::new(header);
        if self.xor_mapped {
            w.address(attr::XOR_MAPPED_ADDRESS, self.mapped, Some(&self.transaction_id));
        } else {
            w.address(attr::MAPPED_ADDRESS, self.mapped, None);
        }
        if let Some(origin) = self.response_origin {
            w.address(attr::RESPONSE_ORIGIN, origin, None);
        }
        if let Some(other) = self.other_address {
            w.address(attr::OTHER_ADDRESS, other, None);
        }
        if let Some(software) = &self.software {
            w.text(attr::SOFTWARE, software);
        }
        w.finish()
    }
}

/// An error code: a class of 3 to 6 and a number below 100, written as one number from 300
/// to 699 (RFC 8489 §14.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(u16);

impl ErrorCode {
    /// 300: the client should contact the server named by ALTERNATE-SERVER.
    pub const TRY_ALTERNATE: ErrorCode = ErrorCode(300);
    /// 400: the request was malformed.
    pub const BAD_REQUEST: ErrorCode = ErrorCode(400);
    /// 401: the request lacked valid credentials.
    pub const UNAUTHORIZED: ErrorCode = ErrorCode(401);
    /// 420: the request had comprehension-required attributes the server does not know.
    pub const UNKNOWN_ATTRIBUTE: ErrorCode = ErrorCode(420);
    /// 438: the NONCE is no longer valid.
    pub const STALE_NONCE: ErrorCode = ErrorCode(438);
    /// 500: the server had a temporary error.
    pub const SERVER_ERROR: ErrorCode = ErrorCode(500);

    /// The code, if it lies in 300..=699.
    pub fn new(code: u16) -> Option<ErrorCode> {
        (300..700).contains(&code).then_some(ErrorCode(code))
    }

    /// The code as one number, 300 to 699.
    pub fn code(self) -> u16 {
        self.0
    }

    /// The hundreds digit, 3 to 6.
    pub fn class(self) -> u8 {
        // `self.0 / 100` is 3..=6 by construction.
        u8::try_from(self.0 / 100).unwrap_or(6)
    }

    /// The code modulo 100.
    pub fn number(self) -> u8 {
        // `self.0 % 100` is below 100.
        u8::try_from(self.0 % 100).unwrap_or(99)
    }

    /// RFC 8489's recommended reason phrase for the codes it defines.
    pub fn description(self) -> Option<&'static str> {
        Some(match self.0 {
            300 => "Try Alternate",
            400 => "Bad Request",
            401 => "Unauthenticated",
            420 => "Unknown Attribute",
            438 => "Stale Nonce",
            500 => "Server Error",
            _ => return None,
        })
    }
}

/// A Binding error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingError {
    /// The request's transaction.
    pub transaction_id: TransactionId,
    /// What went wrong.
    pub code: ErrorCode,
    /// The server's reason phrase, bounded and lossily decoded.
    pub reason: String,
    /// With [`ErrorCode::UNKNOWN_ATTRIBUTE`]: the attributes the server did not know (at most
    /// [`MAX_UNKNOWN_ATTRIBUTES`]).
    pub unknown_attributes: Vec<u16>,
    /// With [`ErrorCode::TRY_ALTERNATE`]: the server to try instead.
    pub alternate_server: Option<SocketAddr>,
    /// The server's SOFTWARE description, bounded and lossily decoded.
    pub software: Option<String>,
}

impl BindingError {
    /// The response as bytes: ERROR-CODE (the reason truncated to [`MAX_TEXT_CHARS`]
    /// characters), UNKNOWN-ATTRIBUTES when the list is not empty (truncated to
    /// [`MAX_UNKNOWN_ATTRIBUTES`]), ALTERNATE-SERVER and SOFTWARE when set, then FINGERPRINT.
    pub fn encode(&self) -> Vec<u8> {
        let header = Header { class: Class::Error, method: BINDING, transaction_id: self.transaction_id };
        let mut w = Writer::new(header);
        let reason = truncate_chars(&self.reason, MAX_TEXT_CHARS);
        let mut value = Vec::with_capacity(4 + reason.len());
        value.extend_from_slice(&[0, 0, self.code.class(), self.code.number()]);
        value.extend_from_slice(reason.as_bytes());
        w.attr(attr::ERROR_CODE, &value);
        if !self.unknown_attributes.is_empty() {
            let list: Vec<u8> =
                self.unknown_attributes.iter().take(MAX_UNKNOWN_ATTRIBUTES).flat_map(|k| k.to_be_bytes()).collect();
            w.attr(attr::UNKNOWN_ATTRIBUTES, &list);
        }
        if let Some(alternate) = self.alternate_server {
            w.address(attr::ALTERNATE_SERVER, alternate, None);
        }
        if let Some(software) = &self.software {
            w.text(attr::SOFTWARE, software);
        }
        w.finish()
    }
}

/// A response to a Binding request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingResponse {
    /// The server answered with our address.
    Success(BindingSuccess),
    /// The server refused.
    Error(BindingError),
}

impl BindingResponse {
    /// Reads a Binding response from a whole datagram. The caller must still check
    /// [`BindingResponse::transaction_id`] against the request it sent.
    pub fn decode(datagram: &[u8]) -> Result<BindingResponse, StunError> {
        let header = expect(datagram, &[Class::Success, Class::Error])?;
        let success = header.class == Class::Success;
        let id = header.transaction_id;
        let mut fields = ResponseFields::default();
        walk(datagram, |kind, value| fields.read(success, &id, kind, value))?;
        if success {
            let (mapped, xor_mapped) = match (fields.xor_mapped, fields.mapped) {
                (Some(addr), _) => (addr, true),
                (None, Some(addr)) => (addr, false),
                (None, None) => return Err(StunError::NoMappedAddress),
            };
            Ok(BindingResponse::Success(BindingSuccess {
                transaction_id: id,
                mapped,
                xor_mapped,
                response_origin: fields.response_origin.or(fields.source_address),
                other_address: fields.other_address.or(fields.changed_address),
                software: fields.software,
            }))
        } else {
            let (code, reason) = fields.error.ok_or(StunError::NoErrorCode)?;
            Ok(BindingResponse::Error(BindingError {
                transaction_id: id,
                code,
                reason,
                unknown_attributes: fields.unknown_attributes,
                alternate_server: fields.alternate_server,
                software: fields.software,
            }))
        }
    }

    /// The transaction the response answers.
    pub fn transaction_id(&self) -> TransactionId {
        match self {
            BindingResponse::Success(s) => s.transaction_id,
            BindingResponse::Error(e) => e.transaction_id,
        }
    }

    /// Encodes the response (see [`BindingSuccess::encode`] and [`BindingError::encode`]).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            BindingResponse::Success(s) => s.encode(),
            BindingResponse::Error(e) => e.encode(),
        }
    }
}

/// The first occurrence of each attribute a response may carry.
#[derive(Default)]
struct ResponseFields {
    xor_mapped: Option<SocketAddr>,
    mapped: Option<SocketAddr>,
    response_origin: Option<SocketAddr>,
    source_address: Option<SocketAddr>,
    other_address: Option<SocketAddr>,
    changed_address: Option<SocketAddr>,
    software: Option<String>,
    error: Option<(ErrorCode, String)>,
    unknown_attributes: Vec<u16>,
    seen_unknown_attributes: bool,
    alternate_server: Option<SocketAddr>,
}

impl ResponseFields {
    /// Reads one attribute of a success (`success`) or error response. Attributes that do
    /// not belong to the response's class are known but ignored.
    fn read(&mut self, success: bool, id: &TransactionId, kind: u16, value: &[u8]) -> Result<(), StunError> {
        let slot = match (success, kind) {
            (true, attr::XOR_MAPPED_ADDRESS) => &mut self.xor_mapped,
            (true, attr::MAPPED_ADDRESS) => &mut self.mapped,
            (true, attr::RESPONSE_ORIGIN) => &mut self.response_origin,
            (true, attr::SOURCE_ADDRESS) => &mut self.source_address,
            (true, attr::OTHER_ADDRESS) => &mut self.other_address,
            (true, attr::CHANGED_ADDRESS) => &mut self.changed_address,
            (false, attr::ALTERNATE_SERVER) => &mut self.alternate_server,
            (_, attr::SOFTWARE) => {
                if self.software.is_none() {
                    self.software = Some(bounded_text(value));
                }
                return Ok(());
            }
            (false, attr::ERROR_CODE) => {
                if self.error.is_none() {
                    self.error = Some(error_code(value)?);
                }
                return Ok(());
            }
            (false, attr::UNKNOWN_ATTRIBUTES) => {
                if !self.seen_unknown_attributes {
                    self.seen_unknown_attributes = true;
                    self.unknown_attributes = unknown_attributes(value)?;
                }
                return Ok(());
            }
            (_, attr::MAPPED_ADDRESS | attr::XOR_MAPPED_ADDRESS | attr::ERROR_CODE | attr::UNKNOWN_ATTRIBUTES) => {
                return Ok(());
            }
            (_, attr::SOURCE_ADDRESS | attr::CHANGED_ADDRESS) => return Ok(()),
            (_, k) if attr::optional(k) || attr::IGNORED_IN_RESPONSE.contains(&k) => return Ok(()),
            (_, k) => return Err(StunError::UnknownRequired(k)),
        };
        if slot.is_none() {
            let xor = (kind == attr::XOR_MAPPED_ADDRESS).then_some(id);
            *slot = Some(address(kind, value, xor)?);
        }
        Ok(())
    }
}

/// Parses the header and checks that the message is a Binding message of one of `classes`.
fn expect(datagram: &[u8], classes: &[Class]) -> Result<Header, StunError> {
    let header = Header::parse(datagram)?;
    if header.method != BINDING || !classes.contains(&header.class) {
        return Err(StunError::Unexpected { class: header.class, method: header.method });
    }
    Ok(header)
}

/// Visits each attribute of a whole message, whose header has been checked, in order.
/// Checks every attribute's length and padding against the message, verifies FINGERPRINT
/// (which must be last) instead of visiting it, and after MESSAGE-INTEGRITY visits only
/// MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.5).
fn walk<'a>(
    datagram: &'a [u8],
    mut visit: impl FnMut(u16, &'a [u8]) -> Result<(), StunError>,
) -> Result<(), StunError> {
    let mut at = HEADER_LEN;
    let mut after_integrity = false;
    while at < datagram.len() {
        // The body's length is a multiple of four, so at least four bytes remain.
        let Some(&[t0, t1, l0, l1]) = datagram.get(at..at + 4) else {
            return Err(StunError::NotStun("length is not a multiple of 4"));
        };
        let kind = u16::from_be_bytes([t0, t1]);
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        let start = at + 4;
        let next = start + len.next_multiple_of(4);
        let (Some(value), true) = (datagram.get(start..start + len), next <= datagram.len()) else {
            return Err(StunError::Truncated(kind));
        };
        if kind == attr::FINGERPRINT {
            let Ok(sent) = <[u8; 4]>::try_from(value) else {
                return Err(StunError::Malformed(kind));
            };
            if let Some(&[a, b]) = datagram.get(next..next + 2) {
                return Err(StunError::AfterFingerprint(u16::from_be_bytes([a, b])));
            }
            // The header's length already counts FINGERPRINT, as the CRC requires.
            if u32::from_be_bytes(sent) != crc32fast::hash(&datagram[..at]) ^ FINGERPRINT_XOR {
                return Err(StunError::BadFingerprint);
            }
            return Ok(());
        }
        if !after_integrity || kind == attr::MESSAGE_INTEGRITY_SHA256 {
            visit(kind, value)?;
        }
        after_integrity |= kind == attr::MESSAGE_INTEGRITY;
        at = next;
    }
    Ok(())
}

/// A MAPPED-ADDRESS-style value: a reserved byte, the family (1 for IPv4, 2 for IPv6), the
/// port and the address; XORed with the cookie and transaction when `xor` names one.
fn address(kind: u16, value: &[u8], xor: Option<&TransactionId>) -> Result<SocketAddr, StunError> {
    let mask = xor_mask(xor);
    let (family, port, raw) = match value {
        [_, family, p0, p1, raw @ ..] => (*family, u16::from_be_bytes([*p0, *p1]), raw),
        _ => return Err(StunError::Malformed(kind)),
    };
    let port = port ^ u16::from_be_bytes([mask[0], mask[1]]);
    let ip = match (family, raw.len()) {
        (1, 4) => {
            let mut b = [0u8; 4];
            for ((o, r), m) in b.iter_mut().zip(raw).zip(&mask) {
                *o = r ^ m;
            }
            IpAddr::V4(Ipv4Addr::from(b))
        }
        (2, 16) => {
            let mut b = [0u8; 16];
            for ((o, r), m) in b.iter_mut().zip(raw).zip(&mask) {
                *o = r ^ m;
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return Err(StunError::Malformed(kind)),
    };
    Ok(SocketAddr::new(ip, port))
}

/// What XOR-MAPPED-ADDRESS XORs an address with: the magic cookie then the transaction ID
/// (the port takes the cookie's first two bytes, IPv4 its four). All zeros for plain addresses.
fn xor_mask(xor: Option<&TransactionId>) -> [u8; 16] {
    let mut mask = [0u8; 16];
    if let Some(id) = xor {
        mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        mask[4..].copy_from_slice(&id.0);
    }
    mask
}

/// An ERROR-CODE value: 21 reserved bits, the class (3 bits), the number (8 bits, below
/// 100), then the reason phrase.
fn error_code(value: &[u8]) -> Result<(ErrorCode, String), StunError> {
    let [_, _, class, number, reason @ ..] = value else {
        return Err(StunError::Malformed(attr::ERROR_CODE));
    };
    let class = class & 0x07;
    if !(3..=6).contains(&class) || *number >= 100 {
        return Err(StunError::Malformed(attr::ERROR_CODE));
    }
    let code = ErrorCode(u16::from(class) * 100 + u16::from(*number));
    Ok((code, bounded_text(reason)))
}

/// An UNKNOWN-ATTRIBUTES value: 16-bit types, the first [`MAX_UNKNOWN_ATTRIBUTES`] kept.
fn unknown_attributes(value: &[u8]) -> Result<Vec<u16>, StunError> {
    if value.len() % 2 != 0 {
        return Err(StunError::Malformed(attr::UNKNOWN_ATTRIBUTES));
    }
    Ok(value.chunks_exact(2).take(MAX_UNKNOWN_ATTRIBUTES).map(|p| u16::from_be_bytes([p[0], p[1]])).collect())
}

/// Text from a peer: at most [`MAX_TEXT_BYTES`] bytes read, at most [`MAX_TEXT_CHARS`]
/// characters kept, invalid UTF-8 replaced by U+FFFD, and never more bytes out than in
/// (a replacement that would not fit ends the text). Trailing NULs, which C servers leave,
/// are dropped.
fn bounded_text(bytes: &[u8]) -> String {
    let bytes = &bytes[..bytes.len().min(MAX_TEXT_BYTES)];
    let mut out = String::with_capacity(bytes.len());
    let mut chars = 0;
    'text: for chunk in bytes.utf8_chunks() {
        let invalid = (!chunk.invalid().is_empty()).then_some(char::REPLACEMENT_CHARACTER);
        for c in chunk.valid().chars().chain(invalid) {
            if chars == MAX_TEXT_CHARS || out.len() + c.len_utf8() > bytes.len() {
                break 'text;
            }
            out.push(c);
            chars += 1;
        }
    }
    let kept = out.trim_end_matches('\0').len();
    out.truncate(kept);
    out
}

/// The longest prefix of `s` with at most `n` characters.
fn truncate_chars(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

/// Builds a message: header, attributes, then FINGERPRINT.
struct Writer(Vec<u8>);

impl Writer {
    fn new(header: Header) -> Writer {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&header.message_type().to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        buf.extend_from_slice(&header.transaction_id.0);
        Writer(buf)
    }

    /// Appends an attribute with zero padding. Values longer than a length field can say are
    /// cut to fit (no caller writes one: every value here is bounded well below that).
    fn attr(&mut self, kind: u16, value: &[u8]) {
        let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
        let value = &value[..usize::from(len)];
        self.0.extend_from_slice(&kind.to_be_bytes());
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(value);
        self.0.resize(self.0.len().next_multiple_of(4), 0);
    }

    fn text(&mut self, kind: u16, text: &str) {
        self.attr(kind, truncate_chars(text, MAX_TEXT_CHARS).as_bytes());
    }

    fn address(&mut self, kind: u16, addr: SocketAddr, xor: Option<&TransactionId>) {
        let mask = xor_mask(xor);
        let port = addr.port() ^ u16::from_be_bytes([mask[0], mask[1]]);
        let mut value = [0u8; 20];
        value[2..4].copy_from_slice(&port.to_be_bytes());
        let len = match addr {
            SocketAddr::V4(a) => {
                value[1] = 1;
                for ((o, b), m) in value[4..8].iter_mut().zip(a.ip().octets()).zip(&mask) {
                    *o = b ^ m;
                }
                8
            }
            SocketAddr::V6(a) => {
                value[1] = 2;
                for ((o, b), m) in value[4..20].iter_mut().zip(a.ip().octets()).zip(&mask) {
                    *o = b ^ m;
                }
                20
            }
        };
        self.attr(kind, &value[..len]);
    }

    /// Sets the length, appends FINGERPRINT and returns the message.
    fn finish(mut self) -> Vec<u8> {
        // The body counts the 8-byte FINGERPRINT to come. Every message built here holds a
        // few bounded attributes (at most about 1.2 KiB), far below the 16-bit limit.
        let body = u16::try_from(self.0.len() - HEADER_LEN + 8).unwrap_or(u16::MAX);
        self.0[2..4].copy_from_slice(&body.to_be_bytes());
        let crc = crc32fast::hash(&self.0) ^ FINGERPRINT_XOR;
        self.attr(attr::FINGERPRINT, &crc.to_be_bytes());
        self.0
    }
}

#[cfg(test)]
mod tests;
