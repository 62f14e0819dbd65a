//! UPnP Internet Gateway Device (IGD) port mapping, as bytes in and typed values out: SSDP
//! discovery, the HTTP/1.1 responses a device sends, its device description, and the SOAP
//! actions that map ports.
//!
//! Nothing here opens a socket. A driver maps a port like this:
//!
//! 1. **Discover.** Send [`search_request`]`(`[`IGD2`]`)` (and [`IGD1`]) from a UDP socket to
//!    [`SSDP_MULTICAST`]:[`SSDP_PORT`], then read datagrams for a little longer than
//!    [`SEARCH_MX_SECS`] seconds into a buffer of [`MAX_SSDP`] bytes and give each to
//!    [`parse_search_response`]. **Drop any answer whose [`SearchResponse::location`] host is
//!    not the datagram's source address** (compare [`IpAddr::to_canonical`] forms): anyone
//!    on the LAN can answer a multicast search, and this check, with the same-host rule of
//!    step 3, is what keeps every later request on the device that answered.
//! 2. **Describe.** Connect by TCP to the location's [`HttpUrl::socket_addr`], write
//!    [`http_get`], and after every read call [`parse_http_response`] on everything read so
//!    far (`eof` once the peer has closed) until it gives a response or an error. It never
//!    accepts more than [`MAX_HTTP`] bytes, so reading more than `MAX_HTTP + 1` is pointless.
//! 3. **Find the service.** Give the body, as UTF-8, to [`find_wan_service`] with the
//!    location as base. The control URL it returns is always on the location's host: a
//!    description that points anywhere else is refused ([`UpnpError::ForeignHost`]).
//! 4. **Act.** POST [`soap_request`] to the control URL, read the answer as in step 2, and
//!    give its status and body to [`parse_soap_response`]. [`Action::GetExternalIpAddress`]
//!    gives [`SoapAnswer::external_ip`], [`Action::AddPortMapping`] an empty answer (the
//!    mapping is exactly the one asked for), [`Action::AddAnyPortMapping`] (IGD:2 only)
//!    [`SoapAnswer::reserved_port`]. A refusal is [`SoapError::Fault`] with a [`FaultCode`]:
//!    on [`FaultCode::CONFLICT_IN_MAPPING_ENTRY`] try another port or `AddAnyPortMapping`;
//!    on [`FaultCode::ONLY_PERMANENT_LEASES_SUPPORTED`] ask again with a lease of 0 (and
//!    delete the mapping on shutdown); on [`FaultCode::ACTION_NOT_AUTHORIZED`] give up.
//!
//! # What it accepts
//!
//! Everything here reads hostile input: any device on the LAN can answer. Parsing never
//! panics and its work and memory are linear in the input, which is itself capped: HTTP
//! messages at [`MAX_HTTP`] (headers at [`MAX_HEADERS`] lines of [`MAX_LINE`] bytes), SSDP
//! datagrams at [`MAX_SSDP`], XML nesting at [`MAX_DEPTH`], kept text at [`MAX_TEXT`] bytes,
//! URLs at [`MAX_URL`]. HTTP bodies may be framed by `Content-Length`, `Transfer-Encoding:
//! chunked` or the end of the connection. XML is read by a small tag scanner, not a
//! general parser: elements are matched by local name (prefixes dropped), attributes and
//! namespaces are ignored, comments and processing instructions are skipped, CDATA is
//! taken as text, and only the five predefined entities and character references are
//! expanded.
//!
//! # What it refuses to do
//!
//! URLs are `http://` with an IP literal host only (IPv4, or IPv6 in brackets without a
//! zone): no names to resolve, no `https`, no user information. The XML `<!DOCTYPE>` (and
//! with it every entity definition) is refused, as is any `Transfer-Encoding` other than
//! `chunked` (a compressed body cannot be bounded before it is inflated). Only the
//! `WANIPConnection:2`, `WANIPConnection:1` and `WANPPPConnection:1` services are looked
//! for, and only the four actions of [`Action`] are spoken; the remote host of a mapping is
//! always the wildcard. IPv6 pinholes (`WANIPv6FirewallControl`) are not implemented.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

mod description;
mod http;
mod soap;
mod xml;

pub use description::{find_wan_service, find_wan_services, WanService};
pub use http::{http_get, parse_http_response, HttpResponse};
pub use soap::{
    parse_soap_response, soap_request, Action, FaultCode, PortMapping, ServiceType, SoapAnswer, SoapError, UpnpFault,
};

pub use crate::natpmp::Protocol;

/// The SSDP multicast group searches are sent to.
pub const SSDP_MULTICAST: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 250);
/// The SSDP port searches are sent to.
pub const SSDP_PORT: u16 = 1900;
/// The `MX` of [`search_request`]: devices answer within this many seconds (at a random
/// moment, to spread the answers).
pub const SEARCH_MX_SECS: u64 = 2;
/// Search target: an IGD of version 1 (and, by UPnP's rules, any later version).
pub const IGD1: &str = "urn:schemas-upnp-org:device:InternetGatewayDevice:1";
/// Search target: an IGD of version 2.
pub const IGD2: &str = "urn:schemas-upnp-org:device:InternetGatewayDevice:2";

/// Most bytes of an HTTP response, headers and framing included; anything larger is
/// [`UpnpError::Limit`]. Real descriptions are 2 to 10 KiB, SOAP answers under 1 KiB.
pub const MAX_HTTP: usize = 64 * 1024;
/// Most bytes of one header line (or chunk-size line), without its line end.
pub const MAX_LINE: usize = 4096;
/// Most header lines of one response (trailers of a chunked body count apart).
pub const MAX_HEADERS: usize = 64;
/// Most bytes of an SSDP answer datagram.
pub const MAX_SSDP: usize = 8192;
/// Most bytes kept of a text value: an SSDP `ST` or `USN`, a service type, a SOAP argument
/// (longer ones are errors), an SSDP `SERVER` or an `errorDescription` (longer ones are cut).
pub const MAX_TEXT: usize = 256;
/// Most bytes of a URL, as written or resolved.
pub const MAX_URL: usize = 1024;
/// Deepest nesting of XML elements read.
pub const MAX_DEPTH: usize = 32;

/// Input that cannot be used: drop the datagram, or close the connection and give up on
/// that device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpnpError {
    /// The input exceeds one of this module's bounds.
    #[error("{0} over its limit")]
    Limit(&'static str),
    /// The connection closed before the message ended.
    #[error("http response cut short")]
    Truncated,
    /// The HTTP or SSDP syntax is broken.
    #[error("malformed http: {0}")]
    Http(&'static str),
    /// A `Transfer-Encoding` other than `chunked`.
    #[error("unsupported http transfer encoding")]
    UnsupportedEncoding,
    /// An SSDP answer that is not `200 OK`.
    #[error("ssdp answer has status {0}")]
    Status(u16),
    /// An SSDP answer without a header it needs.
    #[error("ssdp answer has no {0} header")]
    Missing(&'static str),
    /// A URL that is not `http://IP[:PORT][/PATH]`.
    #[error("unusable url: {0}")]
    Url(&'static str),
    /// A URL in a device description points at another host than the description's.
    #[error("url points at {found}, not at the device {expected}")]
    ForeignHost {
        /// The host the description was fetched from.
        expected: IpAddr,
        /// The host the URL names.
        found: IpAddr,
    },
    /// The XML is broken, or uses what this module refuses (a `<!DOCTYPE>`).
    #[error("malformed xml: {0}")]
    Xml(&'static str),
    /// The description has no WAN connection service this module speaks to.
    #[error("no WANIPConnection or WANPPPConnection service in the description")]
    NoWanService,
}

/// An `http://` URL with an IP literal host: where a description or a control point lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpUrl {
    /// The device's address.
    pub host: IpAddr,
    /// The TCP port (80 unless the URL says otherwise).
    pub port: u16,
    /// The request target: an absolute path, with any query. Requests built from a URL
    /// made by hand percent-encode bytes outside visible ASCII, so no value can break a
    /// request line.
    pub path: String,
}

impl HttpUrl {
    /// Reads `http://HOST[:PORT][PATH]`, where HOST is an IPv4 address or an IPv6 address
    /// in brackets. The scheme is case-insensitive; the port defaults to 80 and may not be
    /// 0; the path defaults to `/`, loses any `#fragment`, and must be visible ASCII.
    pub fn parse(url: &str) -> Result<HttpUrl, UpnpError> {
        let url = url.trim_matches(is_space);
        if url.len() > MAX_URL {
            return Err(UpnpError::Limit("url"));
        }
        let Some(rest) = strip_prefix_ignore_case(url, "http://") else {
            return Err(if strip_prefix_ignore_case(url, "https://").is_some() {
                UpnpError::Url("https is not supported")
            } else {
                UpnpError::Url("not an http:// url")
            });
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.contains('@') {
            return Err(UpnpError::Url("user information in url"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (ip, after) = v6.split_once(']').ok_or(UpnpError::Url("unclosed ipv6 bracket"))?;
            let ip = ip.parse().map_err(|_| UpnpError::Url("host is not an ip address"))?;
            (IpAddr::V6(ip), after)
        } else {
            let split = authority.find(':').unwrap_or(authority.len());
            let (ip, after) = authority.split_at(split);
            let ip = ip.parse().map_err(|_| UpnpError::Url("host is not an ip address"))?;
            (IpAddr::V4(ip), after)
        };
        let port = match port {
            "" | ":" => 80,
            p => match p.strip_prefix(':') {
                Some(d) if d.len() <= 5 && d.bytes().all(|b| b.is_ascii_digit()) => {
                    d.parse().ok().filter(|&p| p != 0).ok_or(UpnpError::Url("bad port"))?
                }
                _ => return Err(UpnpError::Url("bad port")),
            },
        };
        let path = path.split('#').next().unwrap_or("");
        let path = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        check_path(&path)?;
        Ok(HttpUrl { host, port, path })
    }

    /// Where to connect.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// The `Host` header's value: the address (in brackets if IPv6), then `:port` unless it
    /// is 80.
    pub fn authority(&self) -> String {
        let host = match self.host {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The request target as written on a request line: the path, starting with `/`, with
    /// bytes outside visible ASCII percent-encoded.
    pub fn request_target(&self) -> String {
        let mut out = String::with_capacity(self.path.len() + 1);
        if !self.path.starts_with('/') {
            out.push('/');
        }
        for b in self.path.bytes() {
            if b.is_ascii_graphic() {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    /// Whether both URLs name the same host (an IPv4-mapped IPv6 address is its IPv4
    /// address).
    pub fn same_host(&self, other: &IpAddr) -> bool {
        self.host.to_canonical() == other.to_canonical()
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.request_target())
    }
}

/// A URL path we would write on a request line: starts with `/`, visible ASCII only.
fn check_path(path: &str) -> Result<(), UpnpError> {
    if path.len() > MAX_URL {
        return Err(UpnpError::Limit("url"));
    }
    if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(UpnpError::Url("path is not visible ascii"));
    }
    Ok(())
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

/// XML and HTTP whitespace.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// The M-SEARCH datagram that asks devices of `search_target` (such as [`IGD2`]) to answer,
/// within [`SEARCH_MX_SECS`] seconds. Control characters in `search_target` are dropped so
/// that it stays one header.
pub fn search_request(search_target: &str) -> Vec<u8> {
    let st: String = search_target.chars().filter(|c| !c.is_control()).collect();
    format!(
        "M-SEARCH * HTTP/1.1\r\nHOST: {SSDP_MULTICAST}:{SSDP_PORT}\r\nMAN: \"ssdp:discover\"\r\nMX: {SEARCH_MX_SECS}\r\n\
         ST: {st}\r\n\r\n"
    )
    .into_bytes()
}

/// A device's answer to [`search_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchResponse {
    /// Where its description is. **The caller must check that this host is the source
    /// address of the datagram** (see the module documentation).
    pub location: HttpUrl,
    /// The search target it answers to (`ST`), at most [`MAX_TEXT`] bytes.
    pub search_target: String,
    /// Its unique service name (`USN`), at most [`MAX_TEXT`] bytes, if it sent one.
    pub usn: Option<String>,
    /// Its `SERVER` header (operating system, UPnP version, product), cut to [`MAX_TEXT`]
    /// bytes, for logs.
    pub server: Option<String>,
}

/// Reads one SSDP answer datagram: `HTTP/1.1 200`, headers matched case-insensitively,
/// `LOCATION` (an [`HttpUrl`]) and `ST` required, `USN` and `SERVER` kept when present. The
/// blank line that ends the headers may be missing; anything after it is ignored.
pub fn parse_search_response(datagram: &[u8]) -> Result<SearchResponse, UpnpError> {
    if datagram.len() > MAX_SSDP {
        return Err(UpnpError::Limit("ssdp datagram"));
    }
    let head = http::parse_head(datagram, true)?.ok_or(UpnpError::Truncated)?;
    if head.status != 200 {
        return Err(UpnpError::Status(head.status));
    }
    let location = head.get("location").ok_or(UpnpError::Missing("LOCATION"))?;
    let location = std::str::from_utf8(location).map_err(|_| UpnpError::Url("not ascii"))?;
    let search_target = head.get("st").ok_or(UpnpError::Missing("ST"))?;
    Ok(SearchResponse {
        location: HttpUrl::parse(location)?,
        search_target: header_text(search_target, "ssdp ST")?,
        usn: head.get("usn").map(|v| header_text(v, "ssdp USN")).transpose()?,
        server: head.get("server").map(|v| bounded_lossy(v, MAX_TEXT)),
    })
}

/// A header value that must be UTF-8 of at most [`MAX_TEXT`] bytes.
fn header_text(value: &[u8], what: &'static str) -> Result<String, UpnpError> {
    if value.len() > MAX_TEXT {
        return Err(UpnpError::Limit(what));
    }
    std::str::from_utf8(value).map(str::to_owned).map_err(|_| UpnpError::Http("header value is not utf-8"))
}

/// At most `max` bytes of `bytes` read as UTF-8, invalid sequences replaced, control
/// characters made spaces, cut at a character boundary so the result is at most `max` bytes.
fn bounded_lossy(bytes: &[u8], max: usize) -> String {
    let bytes = &bytes[..bytes.len().min(max)];
    let mut out = String::with_capacity(bytes.len());
    for c in String::from_utf8_lossy(bytes).chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
