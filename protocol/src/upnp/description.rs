//! Finding the WAN connection service in a device description (UPnP Device Architecture
//! 1.1 §2.3), and resolving its control URL without ever leaving the device's host.

use super::soap::ServiceType;
use super::xml::{unescape_into, Scanner, Token};
use super::{check_path, is_space, HttpUrl, UpnpError, MAX_HTTP, MAX_TEXT, MAX_URL};

/// Most WAN connection services read from one description.
const MAX_SERVICES: usize = 16;

/// A WAN connection service of an IGD: where to send [`super::soap_request`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WanService {
    /// Which service it is; its actions are sent with this type.
    pub service_type: ServiceType,
    /// Its control URL, on the description's host.
    pub control: HttpUrl,
}

/// The WAN connection service to use in the device description `xml`, fetched from `base`:
/// the first of [`find_wan_services`].
pub fn find_wan_service(xml: &str, base: &HttpUrl) -> Result<WanService, UpnpError> {
    find_wan_services(xml, base)?.into_iter().next().ok_or(UpnpError::NoWanService)
}

/// Every WAN connection service in the device description `xml` (at most 16), fetched from
/// `base`: each `<service>` anywhere in the document whose `<serviceType>` is one of
/// [`ServiceType`], best first ([`ServiceType::PREFERENCE`], then document order), with its
/// `<controlURL>` resolved against `<URLBase>` if the description has one, else `base`.
///
/// Relative references, absolute paths and absolute `http://IP[:PORT]/…` URLs are resolved
/// as RFC 3986 §5 says, but every URL must stay on `base`'s host (any port): a `<URLBase>`
/// or a WAN service's control URL elsewhere is [`UpnpError::ForeignHost`], whatever the other
/// services say. A device with several WAN connections (say PPP and IP) may have only one
/// connected: the caller may try the next when an action fails. None at all is
/// [`UpnpError::NoWanService`]. The document must be well-formed as far as
/// [`find_wan_service`]'s scanner checks (see the module documentation), at most
/// [`MAX_HTTP`] bytes.
pub fn find_wan_services(xml: &str, base: &HttpUrl) -> Result<Vec<WanService>, UpnpError> {
    if xml.len() > MAX_HTTP {
        return Err(UpnpError::Limit("device description"));
    }
    let mut scanner = Scanner::new(xml);
    let mut url_base: Option<Option<String>> = None;
    let mut found: Vec<(ServiceType, String)> = Vec::new();
    let mut service: Option<Service> = None;
    let mut field: Option<Field> = None;
    while let Some(token) = scanner.next_token()? {
        let depth = scanner.depth();
        match token {
            Token::Start(name) => {
                if let Some(f) = &mut field {
                    f.usable = false;
                }
                let in_service = service.as_ref().is_some_and(|s| s.depth + 1 == depth);
                match name {
                    "service" => service = Some(Service { depth, service_type: None, control: None }),
                    "serviceType" if in_service => field = Some(Field::new(Kind::ServiceType, depth, MAX_TEXT)),
                    "controlURL" if in_service => field = Some(Field::new(Kind::Control, depth, MAX_URL)),
                    "URLBase" if url_base.is_none() => field = Some(Field::new(Kind::UrlBase, depth, MAX_URL)),
                    _ => {}
                }
            }
            Token::Text(raw) => {
                if let Some(f) = field.as_mut().filter(|f| f.depth == depth) {
                    f.usable &= unescape_into(raw, &mut f.text, f.max);
                }
            }
            Token::CData(text) => {
                if let Some(f) = field.as_mut().filter(|f| f.depth == depth) {
                    f.usable &= f.text.len() + text.len() <= f.max;
                    if f.usable {
                        f.text.push_str(text);
                    }
                }
            }
            Token::End(_) => {
                if let Some(f) = field.take_if(|f| f.depth == depth + 1) {
                    let value = f.usable.then(|| f.text.trim_matches(is_space).to_owned());
                    match (f.kind, service.as_mut()) {
                        (Kind::UrlBase, _) => url_base = Some(value),
                        (Kind::ServiceType, Some(s)) => s.service_type = value,
                        (Kind::Control, Some(s)) => s.control = value,
                        (_, None) => {}
                    }
                } else if let Some(s) = service.take_if(|s| s.depth == depth + 1) {
                    let kind = s.service_type.as_deref().and_then(ServiceType::from_urn);
                    if let (Some(kind), Some(control)) = (kind, s.control) {
                        if found.len() < MAX_SERVICES {
                            found.push((kind, control));
                        }
                    }
                }
            }
        }
    }
    let control_base = match url_base {
        None => base.clone(),
        Some(None) => return Err(UpnpError::Url("unusable URLBase")),
        Some(Some(u)) => resolve(base, &u)?,
    };
    found.sort_by_key(|(kind, _)| ServiceType::PREFERENCE.iter().position(|p| p == kind));
    let services: Vec<WanService> = found
        .into_iter()
        .map(|(service_type, control)| Ok(WanService { service_type, control: resolve(&control_base, &control)? }))
        .collect::<Result<_, UpnpError>>()?;
    if services.is_empty() {
        return Err(UpnpError::NoWanService);
    }
    Ok(services)
}

/// A `<service>` being read.
struct Service {
    depth: usize,
    service_type: Option<String>,
    control: Option<String>,
}

/// Which text is being read.
#[derive(Clone, Copy)]
enum Kind {
    ServiceType,
    Control,
    UrlBase,
}

/// An element whose text is being read.
struct Field {
    kind: Kind,
    depth: usize,
    max: usize,
    text: String,
    /// False once it holds an element or grows past `max`.
    usable: bool,
}

impl Field {
    fn new(kind: Kind, depth: usize, max: usize) -> Field {
        Field { kind, depth, max, text: String::new(), usable: true }
    }
}

/// Resolves `reference` against `base` (RFC 3986 §5.2: absolute `http://` URLs, network-path
/// `//host…`, absolute paths, relative paths and queries; dot segments removed), and refuses
/// a result on another host than `base`'s.
pub(super) fn resolve(base: &HttpUrl, reference: &str) -> Result<HttpUrl, UpnpError> {
    let r = reference.trim_matches(is_space);
    if r.len() > MAX_URL {
        return Err(UpnpError::Limit("url"));
    }
    let r = r.split('#').next().unwrap_or("");
    let mut url = if has_scheme(r) {
        HttpUrl::parse(r)?
    } else if r.starts_with("//") {
        HttpUrl::parse(&format!("http:{r}"))?
    } else {
        let base_path = base.path.split('?').next().unwrap_or("");
        let path = if r.is_empty() {
            return Err(UpnpError::Url("empty url"));
        } else if r.starts_with('/') {
            r.to_owned()
        } else if r.starts_with('?') {
            format!("{base_path}{r}")
        } else {
            let dir = base_path.rfind('/').map_or("/", |i| &base_path[..=i]);
            format!("{dir}{r}")
        };
        HttpUrl { host: base.host, port: base.port, path }
    };
    url.path = remove_dot_segments(&url.path);
    check_path(&url.path)?;
    if !url.same_host(&base.host) {
        return Err(UpnpError::ForeignHost { expected: base.host, found: url.host });
    }
    Ok(url)
}

/// Whether a reference starts with a scheme (RFC 3986 §3.1) before any `/`, `?` or `#`.
fn has_scheme(r: &str) -> bool {
    let end = r.find(['/', '?', '#']).unwrap_or(r.len());
    r[..end].split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    })
}

/// An absolute path (and query) without `.` and `..` segments (RFC 3986 §5.2.4).
fn remove_dot_segments(path: &str) -> String {
    let (path, query) = path.split_at(path.find('?').unwrap_or(path.len()));
    let mut kept: Vec<&str> = Vec::new();
    let mut ends_in_dir = false;
    for segment in path.split('/').skip(1) {
        ends_in_dir = matches!(segment, "." | "..");
        match segment {
            "." => {}
            ".." => {
                kept.pop();
            }
            s => kept.push(s),
        }
    }
    let mut out = String::with_capacity(path.len() + query.len() + 1);
    for s in &kept {
        out.push('/');
        out.push_str(s);
    }
    if ends_in_dir || kept.is_empty() {
        out.push('/');
    }
    out.push_str(query);
    out
}
