//! SOAP actions of the WAN connection services (UPnP IGD 1.0 and 2.0, `WANIPConnection` and
//! `WANPPPConnection`): the requests, and reading their answers and refusals.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use super::xml::{escape_into, unescape_into, Scanner, Token};
use super::{bounded_lossy, is_space, HttpUrl, Protocol, UpnpError, MAX_HTTP, MAX_TEXT};

/// Most arguments read from an action's answer (the actions spoken here answer with one at
/// most).
const MAX_ARGUMENTS: usize = 16;
/// Most bytes of an element name kept from an answer.
const MAX_NAME: usize = 64;

/// A WAN connection service this module speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceType {
    /// `urn:schemas-upnp-org:service:WANIPConnection:2` (IGD 2.0), which adds
    /// `AddAnyPortMapping`.
    WanIpConnection2,
    /// `urn:schemas-upnp-org:service:WANIPConnection:1`.
    WanIpConnection1,
    /// `urn:schemas-upnp-org:service:WANPPPConnection:1` (DSL routers).
    WanPppConnection1,
}

impl ServiceType {
    /// Every service type, best first: the order [`super::find_wan_service`] prefers them in.
    pub const PREFERENCE: [ServiceType; 3] =
        [ServiceType::WanIpConnection2, ServiceType::WanIpConnection1, ServiceType::WanPppConnection1];

    /// The service type's URN.
    pub fn urn(self) -> &'static str {
        match self {
            ServiceType::WanIpConnection2 => "urn:schemas-upnp-org:service:WANIPConnection:2",
            ServiceType::WanIpConnection1 => "urn:schemas-upnp-org:service:WANIPConnection:1",
            ServiceType::WanPppConnection1 => "urn:schemas-upnp-org:service:WANPPPConnection:1",
        }
    }

    /// The service type a URN names, exactly.
    pub fn from_urn(urn: &str) -> Option<ServiceType> {
        ServiceType::PREFERENCE.into_iter().find(|t| t.urn() == urn)
    }

    /// Whether the service has [`Action::AddAnyPortMapping`].
    pub fn has_add_any_port_mapping(self) -> bool {
        self == ServiceType::WanIpConnection2
    }
}

/// A port mapping to ask for: from any remote host, `external_port` on the router's
/// external address to `internal_client:internal_port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortMapping {
    /// The port on the router's external address.
    pub external_port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Our port.
    pub internal_port: u16,
    /// Our LAN address. Devices in secure mode (most) refuse any other than the request's
    /// source address ([`FaultCode::ACTION_NOT_AUTHORIZED`]).
    pub internal_client: Ipv4Addr,
    /// A name for the mapping, shown on the router's pages. Keep it short and plain ASCII
    /// without `& < > " '`: it is sent XML-escaped (control characters dropped), but
    /// miniupnpd, for one, stores the escaped text as it came, and some routers cut or
    /// refuse long names.
    pub description: String,
    /// Seconds the mapping lives; 0 asks for a permanent one (which IGD 2.0 devices treat
    /// as their maximum, a week). Renew before it ends.
    pub lease_secs: u32,
}

/// An action on a WAN connection service.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// `GetExternalIPAddress`: answered with [`SoapAnswer::external_ip`].
    GetExternalIpAddress,
    /// `AddPortMapping`: creates (or renews) exactly this mapping, or fails, typically
    /// with [`FaultCode::CONFLICT_IN_MAPPING_ENTRY`] when the external port is taken.
    AddPortMapping(PortMapping),
    /// `AddAnyPortMapping` (IGD 2.0 only): the device maps the external port asked for, or
    /// another free one it picks, answered with [`SoapAnswer::reserved_port`].
    AddAnyPortMapping(PortMapping),
    /// `DeletePortMapping`: removes a mapping.
    DeletePortMapping {
        /// The mapping's external port.
        external_port: u16,
        /// TCP or UDP.
        protocol: Protocol,
    },
}

impl Action {
    /// The action's name, as on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Action::GetExternalIpAddress => "GetExternalIPAddress",
            Action::AddPortMapping(_) => "AddPortMapping",
            Action::AddAnyPortMapping(_) => "AddAnyPortMapping",
            Action::DeletePortMapping { .. } => "DeletePortMapping",
        }
    }

    /// The action's input arguments, in the order the service's description lists them
    /// (some devices want that order).
    fn arguments(&self) -> Vec<(&'static str, String)> {
        let protocol = |p: &Protocol| match p {
            Protocol::Tcp => "TCP".to_owned(),
            Protocol::Udp => "UDP".to_owned(),
        };
        match self {
            Action::GetExternalIpAddress => Vec::new(),
            Action::AddPortMapping(m) | Action::AddAnyPortMapping(m) => vec![
                ("NewRemoteHost", String::new()),
                ("NewExternalPort", m.external_port.to_string()),
                ("NewProtocol", protocol(&m.protocol)),
                ("NewInternalPort", m.internal_port.to_string()),
                ("NewInternalClient", m.internal_client.to_string()),
                ("NewEnabled", "1".to_owned()),
                ("NewPortMappingDescription", m.description.clone()),
                ("NewLeaseDuration", m.lease_secs.to_string()),
            ],
            Action::DeletePortMapping { external_port, protocol: p } => vec![
                ("NewRemoteHost", String::new()),
                ("NewExternalPort", external_port.to_string()),
                ("NewProtocol", protocol(p)),
            ],
        }
    }
}

/// The HTTP request that performs `action` on `service` at its `control` URL: a POST with
/// `SOAPAction` and a SOAP 1.1 envelope, asking the device to close the connection after
/// answering. Read the answer with [`super::parse_http_response`], then
/// [`parse_soap_response`].
pub fn soap_request(control: &HttpUrl, service: ServiceType, action: &Action) -> Vec<u8> {
    let name = action.name();
    let urn = service.urn();
    let mut body = format!(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:{name} xmlns:u=\"{urn}\">"
    );
    for (arg, value) in action.arguments() {
        body.push_str(&format!("<{arg}>"));
        escape_into(&value, &mut body);
        body.push_str(&format!("</{arg}>"));
    }
    body.push_str(&format!("</u:{name}></s:Body></s:Envelope>\r\n"));
    let mut request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/xml; charset=\"utf-8\"\r\nSOAPAction: \"{urn}#{name}\"\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        control.request_target(),
        control.authority(),
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body.as_bytes());
    request
}

/// A successful action's answer: the arguments of its `…Response` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapAnswer {
    /// The response element's local name, such as `AddPortMappingResponse`.
    element: String,
    /// Argument names and values (entities expanded, trimmed), in order; at most 16, each
    /// name at most 64 bytes and value at most [`MAX_TEXT`].
    arguments: Vec<(String, String)>,
}

impl SoapAnswer {
    /// The response element's local name, such as `AddPortMappingResponse`.
    pub fn element(&self) -> &str {
        &self.element
    }

    /// Whether this answers `action` (its element is the action's name + `Response`).
    pub fn answers(&self, action: &Action) -> bool {
        self.element.strip_suffix("Response") == Some(action.name())
    }

    /// The arguments, names and values, in order.
    pub fn arguments(&self) -> &[(String, String)] {
        &self.arguments
    }

    /// The value of the first argument called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.arguments.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// `NewExternalIPAddress`, if it is an IP address. Devices without an external address
    /// send an empty value or `0.0.0.0`; behind another NAT it is a private address.
    pub fn external_ip(&self) -> Option<IpAddr> {
        self.get("NewExternalIPAddress")?.parse().ok()
    }

    /// `NewReservedPort`: the external port `AddAnyPortMapping` mapped.
    pub fn reserved_port(&self) -> Option<u16> {
        self.get("NewReservedPort")?.parse().ok().filter(|&p| p != 0)
    }
}

/// A UPnP error code (UPnP Device Architecture 1.1 §3.2.2, IGD `WANIPConnection` §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FaultCode(pub u16);

impl FaultCode {
    /// 401: the device does not have this action (`AddAnyPortMapping` on IGD 1.0).
    pub const INVALID_ACTION: FaultCode = FaultCode(401);
    /// 402: missing, extra or malformed arguments.
    pub const INVALID_ARGS: FaultCode = FaultCode(402);
    /// 501: the action failed for another reason.
    pub const ACTION_FAILED: FaultCode = FaultCode(501);
    /// 606: the device does not let this client do this (mapping to another host, or
    /// mapping turned off).
    pub const ACTION_NOT_AUTHORIZED: FaultCode = FaultCode(606);
    /// 714: there is no such mapping (to delete).
    pub const NO_SUCH_ENTRY_IN_ARRAY: FaultCode = FaultCode(714);
    /// 715: the device does not accept a wildcard remote host.
    pub const WILDCARD_NOT_PERMITTED_IN_SRC_IP: FaultCode = FaultCode(715);
    /// 716: the device does not accept external port 0.
    pub const WILDCARD_NOT_PERMITTED_IN_EXT_PORT: FaultCode = FaultCode(716);
    /// 718: the external port is already mapped to another client or port.
    pub const CONFLICT_IN_MAPPING_ENTRY: FaultCode = FaultCode(718);
    /// 724: the device needs the external and internal ports to be the same.
    pub const SAME_PORT_VALUES_REQUIRED: FaultCode = FaultCode(724);
    /// 725: the device only makes permanent mappings: ask again with a lease of 0.
    pub const ONLY_PERMANENT_LEASES_SUPPORTED: FaultCode = FaultCode(725);
    /// 726: the remote host must be the wildcard.
    pub const REMOTE_HOST_ONLY_SUPPORTS_WILDCARD: FaultCode = FaultCode(726);
    /// 727: the external port must be the wildcard.
    pub const EXTERNAL_PORT_ONLY_SUPPORTS_WILDCARD: FaultCode = FaultCode(727);
    /// 728: the device has no room for more mappings (or no free port).
    pub const NO_PORT_MAPS_AVAILABLE: FaultCode = FaultCode(728);
    /// 729: the mapping conflicts with one made by another mechanism (NAT-PMP, PCP).
    pub const CONFLICT_WITH_OTHER_MECHANISMS: FaultCode = FaultCode(729);
    /// 732: the device does not accept internal port 0.
    pub const WILDCARD_NOT_PERMITTED_IN_INT_PORT: FaultCode = FaultCode(732);

    /// The standard's name for the codes UPnP and IGD define that concern these actions.
    pub fn description(self) -> Option<&'static str> {
        Some(match self.0 {
            401 => "Invalid Action",
            402 => "Invalid Args",
            501 => "Action Failed",
            600 => "Argument Value Invalid",
            601 => "Argument Value Out of Range",
            602 => "Optional Action Not Implemented",
            603 => "Out of Memory",
            604 => "Human Intervention Required",
            605 => "String Argument Too Long",
            606 => "Action not authorized",
            714 => "NoSuchEntryInArray",
            715 => "WildCardNotPermittedInSrcIP",
            716 => "WildCardNotPermittedInExtPort",
            718 => "ConflictInMappingEntry",
            724 => "SamePortValuesRequired",
            725 => "OnlyPermanentLeasesSupported",
            726 => "RemoteHostOnlySupportsWildcard",
            727 => "ExternalPortOnlySupportsWildcard",
            728 => "NoPortMapsAvailable",
            729 => "ConflictWithOtherMechanisms",
            732 => "WildCardNotPermittedInIntPort",
            _ => return None,
        })
    }
}

impl fmt::Display for FaultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.description() {
            Some(d) => write!(f, "{} ({d})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// A device's refusal: the `UPnPError` of a SOAP fault.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpnpFault {
    /// `errorCode`.
    pub code: FaultCode,
    /// `errorDescription`, cut to [`MAX_TEXT`] bytes, control characters made spaces; empty
    /// if absent.
    pub description: String,
}

/// An action that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SoapError {
    /// The device refused the action.
    #[error("device refused the action: upnp error {}: {}", .0.code, .0.description)]
    Fault(UpnpFault),
    /// The device answered with an HTTP status other than 200 and no UPnP error.
    #[error("device answered http status {0}")]
    Status(u16),
    /// A 200 answer that is not a SOAP answer this module can read.
    #[error("malformed soap answer: {0}")]
    Malformed(&'static str),
    /// The answer exceeds one of this module's bounds.
    #[error("soap answer: {0} over its limit")]
    Limit(&'static str),
}

impl From<UpnpError> for SoapError {
    fn from(e: UpnpError) -> SoapError {
        match e {
            UpnpError::Limit(what) => SoapError::Limit(what),
            UpnpError::Xml(why) => SoapError::Malformed(why),
            _ => SoapError::Malformed("not xml"),
        }
    }
}

/// Reads the answer to a [`soap_request`]: the `status` and body of its HTTP response.
///
/// The body's SOAP `Body` holds one element. A `Fault` with a `UPnPError` inside (whatever
/// the status; UPnP says 500) is [`SoapError::Fault`]. Otherwise, with status 200, the
/// element is the answer: its child elements are its arguments, read as text (entities
/// expanded, surrounding whitespace trimmed). With another status, or a `Fault` without an
/// error code, it is [`SoapError::Status`]. The answer may be at most [`MAX_HTTP`] bytes of
/// UTF-8; elements past the answer's are not read.
pub fn parse_soap_response(status: u16, body: &[u8]) -> Result<SoapAnswer, SoapError> {
    let read = read_envelope(body);
    match read {
        Ok(Envelope::Fault { code: Some(code), description }) => Err(SoapError::Fault(UpnpFault { code, description })),
        Ok(Envelope::Answer(answer)) if status == 200 => Ok(answer),
        Err(e) if status == 200 => Err(e),
        Ok(Envelope::Fault { code: None, .. }) if status == 200 => {
            Err(SoapError::Malformed("soap fault without a upnp error code"))
        }
        _ => Err(SoapError::Status(status)),
    }
}

/// What a SOAP envelope holds.
enum Envelope {
    Answer(SoapAnswer),
    Fault { code: Option<FaultCode>, description: String },
}

/// Reads the first element of the envelope's `Body`.
fn read_envelope(body: &[u8]) -> Result<Envelope, SoapError> {
    if body.len() > MAX_HTTP {
        return Err(SoapError::Limit("soap body"));
    }
    let xml = std::str::from_utf8(body).map_err(|_| SoapError::Malformed("not utf-8"))?;
    let mut scanner = Scanner::new(xml);
    let mut body_depth = None;
    // The Body's element: its name and depth, and whether it is a Fault.
    let mut element: Option<(String, usize)> = None;
    let mut arguments = Vec::new();
    let mut code = None;
    let mut description = None;
    // The argument, errorCode or errorDescription being read.
    let mut field: Option<Field> = None;
    while let Some(token) = scanner.next_token()? {
        let depth = scanner.depth();
        match token {
            Token::Start(name) => {
                let is_fault = element.as_ref().is_some_and(|(n, _)| n == "Fault");
                match (&element, body_depth) {
                    (None, None) if name == "Body" => body_depth = Some(depth),
                    (None, Some(b)) if depth == b + 1 => {
                        if name.len() > MAX_NAME {
                            return Err(SoapError::Limit("soap element name"));
                        }
                        element = Some((name.to_owned(), depth));
                    }
                    (Some((_, e)), _) if !is_fault && depth == e + 1 => {
                        if arguments.len() == MAX_ARGUMENTS {
                            return Err(SoapError::Limit("soap arguments"));
                        }
                        if name.len() > MAX_NAME {
                            return Err(SoapError::Limit("soap argument name"));
                        }
                        field = Some(Field::new(name, depth));
                    }
                    (Some(_), _) if is_fault && matches!(name, "errorCode" | "errorDescription") => {
                        field = Some(Field::new(name, depth));
                    }
                    _ => {}
                }
            }
            Token::Text(raw) => {
                if let Some(f) = field.as_mut().filter(|f| f.depth == depth) {
                    f.whole &= unescape_into(raw, &mut f.text, MAX_TEXT);
                }
            }
            Token::CData(raw) => {
                if let Some(f) = field.as_mut().filter(|f| f.depth == depth) {
                    let room = MAX_TEXT.saturating_sub(f.text.len());
                    f.whole &= raw.len() <= room;
                    f.text.push_str(&bounded_lossy(raw.as_bytes(), room));
                }
            }
            Token::End(_) => {
                if let Some(f) = field.take_if(|f| f.depth == depth + 1) {
                    let value = f.text.trim_matches(is_space);
                    match f.name.as_str() {
                        "errorCode" if code.is_none() => code = Some(value.parse().map(FaultCode).ok()),
                        "errorDescription" if description.is_none() => {
                            description = Some(bounded_lossy(value.as_bytes(), MAX_TEXT));
                        }
                        "errorCode" | "errorDescription" => {}
                        _ if !f.whole => return Err(SoapError::Limit("soap argument value")),
                        _ => arguments.push((f.name.clone(), value.to_owned())),
                    }
                } else if element.as_ref().is_some_and(|(_, e)| *e == depth + 1) {
                    break;
                }
            }
        }
    }
    match element {
        Some((name, _)) if name == "Fault" => {
            Ok(Envelope::Fault { code: code.flatten(), description: description.unwrap_or_default() })
        }
        Some((element, _)) => Ok(Envelope::Answer(SoapAnswer { element, arguments })),
        None => Err(SoapError::Malformed("no element in a soap body")),
    }
}

/// An element whose text is being read: an argument, `errorCode` or `errorDescription`.
struct Field {
    name: String,
    depth: usize,
    text: String,
    /// False once the text was cut at [`MAX_TEXT`].
    whole: bool,
}

impl Field {
    fn new(name: &str, depth: usize) -> Field {
        Field { name: name.to_owned(), depth, text: String::new(), whole: true }
    }
}
