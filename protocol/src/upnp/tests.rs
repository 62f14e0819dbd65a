use std::path::PathBuf;

use proptest::prelude::*;

use super::*;

/// Hand-made cases: odd but valid forms, and hostile ones.
mod hand_made;

/// Router "a" of `tests/data/upnp/capture.py`: miniupnpd as an IGD 2.0 on 192.168.1.1:5000.
const DESCRIPTION_A: &str = "http://192.168.1.1:5000/rootDesc.xml";
/// Router "b": miniupnpd reporting IGD 1.0 (`-1`) on 192.168.2.1:5000.
const DESCRIPTION_B: &str = "http://192.168.2.1:5000/rootDesc.xml";
/// Both routers' control URL path for their WANIPConnection service.
const CONTROL_PATH: &str = "/ctl/IPConn";
/// The home host of router a that the capture script sends from.
const CLIENT_A: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 2);

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/upnp").join(name)
}

fn url(s: &str) -> HttpUrl {
    HttpUrl::parse(s).unwrap()
}

fn mapping(external_port: u16, internal_port: u16, client: Ipv4Addr) -> PortMapping {
    PortMapping {
        external_port,
        protocol: Protocol::Tcp,
        internal_port,
        internal_client: client,
        description: "ClearSkies <test> & 'co'".to_owned(),
        lease_secs: 3600,
    }
}

/// The requests `capture.py` sends to miniupnpd, byte for byte: each built here and
/// compared with `tests/data/upnp/requests/NAME`, or written there when
/// `UPNP_WRITE_REQUESTS` is set (then run `capture.py` again).
fn requests() -> Vec<(&'static str, Vec<u8>)> {
    let control_a = HttpUrl { path: CONTROL_PATH.to_owned(), ..url(DESCRIPTION_A) };
    let control_b = HttpUrl { path: CONTROL_PATH.to_owned(), ..url(DESCRIPTION_B) };
    let ip2 = ServiceType::WanIpConnection2;
    let ip1 = ServiceType::WanIpConnection1;
    let client_a2 = Ipv4Addr::new(192, 168, 1, 3);
    let delete = Action::DeletePortMapping { external_port: 40000, protocol: Protocol::Tcp };
    let add = |m| soap_request(&control_a, ip2, &Action::AddPortMapping(m));
    vec![
        ("search-igd1", search_request(IGD1)),
        ("search-igd2", search_request(IGD2)),
        ("a-get-description", http_get(&url(DESCRIPTION_A))),
        ("b-get-description", http_get(&url(DESCRIPTION_B))),
        ("a-get-external-ip", soap_request(&control_a, ip2, &Action::GetExternalIpAddress)),
        ("a-add-port-mapping", add(mapping(40000, 40000, CLIENT_A))),
        ("a2-add-port-mapping-conflict", add(mapping(40000, 40000, client_a2))),
        ("a-add-port-mapping-denied", add(mapping(1000, 40000, CLIENT_A))),
        ("a-add-port-mapping-other-host", add(mapping(40002, 40002, client_a2))),
        (
            "a2-add-any-port-mapping",
            soap_request(&control_a, ip2, &Action::AddAnyPortMapping(mapping(40000, 40000, client_a2))),
        ),
        ("a-delete-port-mapping", soap_request(&control_a, ip2, &delete)),
        (
            "a-delete-port-mapping-none",
            soap_request(&control_a, ip2, &Action::DeletePortMapping { external_port: 40009, protocol: Protocol::Udp }),
        ),
        ("b-get-external-ip", soap_request(&control_b, ip1, &Action::GetExternalIpAddress)),
        (
            "b-add-any-port-mapping",
            soap_request(
                &control_b,
                ip1,
                &Action::AddAnyPortMapping(mapping(40000, 40000, Ipv4Addr::new(192, 168, 2, 2))),
            ),
        ),
    ]
}

#[test]
fn requests_match_the_ones_sent_to_miniupnpd() {
    let write = std::env::var_os("UPNP_WRITE_REQUESTS").is_some();
    for (name, bytes) in requests() {
        let path = data(&format!("requests/{name}"));
        if write {
            std::fs::write(&path, &bytes).unwrap();
        } else {
            let stored = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(String::from_utf8_lossy(&bytes), String::from_utf8_lossy(&stored), "{name}");
        }
    }
}

// Captured from miniupnpd 2.3.1 (tests/data/upnp/capture.py; README.md there).

fn answer(name: &str) -> Vec<u8> {
    let path = data(&format!("answers/{name}"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A captured HTTP answer, read as it arrived (the connection closed at its end).
fn http_answer(name: &str) -> HttpResponse {
    parse_http_response(&answer(name), true).unwrap().unwrap()
}

fn soap_answer(name: &str) -> Result<SoapAnswer, SoapError> {
    let r = http_answer(name);
    parse_soap_response(r.status, &r.body)
}

#[test]
fn captured_ssdp_answers() {
    let index = String::from_utf8(answer("index.txt")).unwrap();
    for (name, target, location) in [
        ("a-search-igd2.0", IGD2, DESCRIPTION_A),
        ("a-search-igd1.0", IGD1, DESCRIPTION_A),
        ("b-search-igd1.0", IGD1, DESCRIPTION_B),
    ] {
        let r = parse_search_response(&answer(name)).unwrap();
        assert_eq!(r.location, url(location), "{name}");
        assert_eq!(r.search_target, target);
        let uuid = if name.starts_with('a') { "3a01" } else { "3a02" };
        assert_eq!(r.usn.unwrap(), format!("uuid:6d2c1f04-2f4b-4c33-9d8e-0c1a5e7b{uuid}::{target}"));
        assert!(r.server.unwrap().ends_with("UPnP/1.1 MiniUPnPd/2.3.1"));
        // The check the caller makes: the location is on the datagram's source address.
        let line = index.lines().find(|l| l.starts_with(&format!("{name}:"))).unwrap();
        let source: IpAddr = line.split(" from ").nth(1).unwrap().split(':').next().unwrap().parse().unwrap();
        assert!(r.location.same_host(&source), "{line}");
    }
}

#[test]
fn captured_descriptions() {
    for (name, location, service_type) in [
        ("a-get-description", DESCRIPTION_A, ServiceType::WanIpConnection2),
        ("b-get-description", DESCRIPTION_B, ServiceType::WanIpConnection1),
    ] {
        let wire = answer(name);
        // Content-Length frames it: whole before the connection closes, and not before.
        let r = parse_http_response(&wire, false).unwrap().unwrap();
        assert_eq!(r, parse_http_response(&wire, true).unwrap().unwrap());
        assert_eq!(r.status, 200);
        for cut in 0..wire.len() {
            assert_eq!(parse_http_response(&wire[..cut], false), Ok(None), "{name} cut at {cut}");
            assert_eq!(parse_http_response(&wire[..cut], true), Err(UpnpError::Truncated), "{name} cut at {cut}");
        }
        let xml = std::str::from_utf8(&r.body).unwrap();
        let base = url(location);
        let control = HttpUrl { path: CONTROL_PATH.to_owned(), ..base.clone() };
        let found = find_wan_services(xml, &base).unwrap();
        assert_eq!(found, [WanService { service_type, control }], "{name}");
        assert_eq!(find_wan_service(xml, &base), Ok(found[0].clone()));
        // The same document served from elsewhere resolves there: the control URL is
        // relative to where the description came from.
        let moved = HttpUrl { port: 1234, ..base.clone() };
        assert_eq!(find_wan_service(xml, &moved).unwrap().control.port, 1234);
        // A control URL that leaves the device is refused, wherever it stands.
        let hostile = xml.replace("<controlURL>/ctl/IPConn<", "<controlURL>http://192.168.1.66:5000/ctl/IPConn<");
        let other = "192.168.1.66".parse().unwrap();
        assert_eq!(
            find_wan_service(&hostile, &base),
            Err(UpnpError::ForeignHost { expected: base.host, found: other })
        );
    }
}

#[test]
fn captured_soap_answers() {
    let a = soap_answer("a-get-external-ip").unwrap();
    assert!(a.answers(&Action::GetExternalIpAddress));
    assert_eq!(a.external_ip(), Some(IpAddr::V4(Ipv4Addr::new(11, 0, 0, 10))));
    let b = soap_answer("b-get-external-ip").unwrap();
    assert_eq!(b.external_ip(), Some(IpAddr::V4(Ipv4Addr::new(11, 0, 0, 11))));

    let added = soap_answer("a-add-port-mapping").unwrap();
    assert!(added.answers(&Action::AddPortMapping(mapping(40000, 40000, CLIENT_A))));
    assert_eq!(added.arguments(), []);
    assert_eq!(added.element(), "AddPortMappingResponse");

    let fault = |name| match soap_answer(name) {
        Err(SoapError::Fault(f)) => f,
        other => panic!("{name}: {other:?}"),
    };
    // Another host already has external port 40000.
    let conflict = fault("a2-add-port-mapping-conflict");
    assert_eq!(conflict.code, FaultCode::CONFLICT_IN_MAPPING_ENTRY);
    assert_eq!(conflict.description, "ConflictInMappingEntry");
    assert_eq!(http_answer("a2-add-port-mapping-conflict").status, 500);
    // Port 1000 is outside miniupnpd's permission rules.
    let denied = fault("a-add-port-mapping-denied");
    assert_eq!((denied.code, denied.description.as_str()), (FaultCode::ACTION_NOT_AUTHORIZED, "Action not authorized"));
    // In secure mode miniupnpd answers a mapping to another host with 718, not 606.
    assert_eq!(fault("a-add-port-mapping-other-host").code, FaultCode::CONFLICT_IN_MAPPING_ENTRY);

    // External port 40000 is taken: AddAnyPortMapping picks the next one.
    let any = soap_answer("a2-add-any-port-mapping").unwrap();
    assert!(any.answers(&Action::AddAnyPortMapping(mapping(40000, 40000, CLIENT_A))));
    assert_eq!(any.reserved_port(), Some(40001));
    assert_eq!(any.external_ip(), None);
    // miniupnpd answers AddAnyPortMapping even when it reports IGD 1.0 (`-1`).
    assert_eq!(soap_answer("b-add-any-port-mapping").unwrap().reserved_port(), Some(40000));

    let delete = Action::DeletePortMapping { external_port: 40000, protocol: Protocol::Tcp };
    assert!(soap_answer("a-delete-port-mapping").unwrap().answers(&delete));
    // miniupnpd 2.3.1 (nftables) answers 200, not 714, for a mapping that never existed.
    assert!(soap_answer("a-delete-port-mapping-none").unwrap().arguments().is_empty());
}

#[test]
fn miniupnpd_keeps_escaped_descriptions_escaped() {
    // The request escaped `<`, `>`, `&` and `'` as XML requires; miniupnpd does not expand
    // entities, so its table holds the escaped text. Descriptions should stay plain.
    let listing = String::from_utf8(answer("a-upnpc-list.txt")).unwrap();
    assert!(listing.contains("TCP 40000->192.168.1.2:40000 'ClearSkies &lt;test&gt; &amp; &apos;co&apos;' '' 3600"));
}

// Requests.

#[test]
fn search_request_bytes() {
    let expected = "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\n\
                    ST: urn:schemas-upnp-org:device:InternetGatewayDevice:2\r\n\r\n";
    assert_eq!(String::from_utf8(search_request(IGD2)).unwrap(), expected);
    let injected = String::from_utf8(search_request("ssdp:all\r\nX: y")).unwrap();
    assert!(injected.ends_with("ST: ssdp:allX: y\r\n\r\n"), "{injected}");
}

#[test]
fn get_requests_name_the_host_and_close() {
    let get = |u: &HttpUrl| String::from_utf8(http_get(u)).unwrap();
    assert_eq!(
        get(&url(DESCRIPTION_A)),
        "GET /rootDesc.xml HTTP/1.1\r\nHost: 192.168.1.1:5000\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(
        get(&url("http://[2001:db8::1]:8080/d.xml?x=1")),
        "GET /d.xml?x=1 HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(get(&url("http://10.0.0.1")), "GET / HTTP/1.1\r\nHost: 10.0.0.1\r\nConnection: close\r\n\r\n");
    // A URL made by hand cannot break the request line.
    let hand = HttpUrl { host: IpAddr::V4(Ipv4Addr::LOCALHOST), port: 80, path: "x y\r\nEvil: 1é".to_owned() };
    assert_eq!(hand.request_target(), "/x%20y%0D%0AEvil:%201%C3%A9");
    assert_eq!(hand.to_string(), "http://127.0.0.1/x%20y%0D%0AEvil:%201%C3%A9");
}

#[test]
fn soap_requests_read_back() {
    let control = url("http://[fe80::1]:49000/upnp/control/WANIPConn1");
    let m = PortMapping { description: "a<b>&\"c\"'d'\u{7}\u{FFFF}é".to_owned(), ..mapping(41000, 42000, CLIENT_A) };
    for (service, action) in [
        (ServiceType::WanPppConnection1, Action::GetExternalIpAddress),
        (ServiceType::WanIpConnection1, Action::AddPortMapping(m.clone())),
        (
            ServiceType::WanIpConnection2,
            Action::AddAnyPortMapping(PortMapping { protocol: Protocol::Udp, ..m.clone() }),
        ),
        (ServiceType::WanIpConnection2, Action::DeletePortMapping { external_port: 41000, protocol: Protocol::Udp }),
    ] {
        let wire = soap_request(&control, service, &action);
        let text = String::from_utf8(wire.clone()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("POST /upnp/control/WANIPConn1 HTTP/1.1\r\nHost: [fe80::1]:49000\r\n"));
        assert!(head.contains("\r\nContent-Type: text/xml; charset=\"utf-8\"\r\n"));
        assert!(head.contains(&format!("\r\nSOAPAction: \"{}#{}\"\r\n", service.urn(), action.name())));
        assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
        assert!(head.ends_with("\r\nConnection: close"));
        // The request's body is an envelope our own reader takes apart again.
        let read = parse_soap_response(200, body.as_bytes()).unwrap();
        assert_eq!(read.element(), action.name());
        assert!(body.contains(&format!("<u:{} xmlns:u=\"{}\">", action.name(), service.urn())));
        let names: Vec<&str> = read.arguments().iter().map(|(n, _)| n.as_str()).collect();
        match &action {
            Action::GetExternalIpAddress => assert!(names.is_empty()),
            Action::AddPortMapping(_) | Action::AddAnyPortMapping(_) => {
                assert_eq!(
                    names,
                    [
                        "NewRemoteHost",
                        "NewExternalPort",
                        "NewProtocol",
                        "NewInternalPort",
                        "NewInternalClient",
                        "NewEnabled",
                        "NewPortMappingDescription",
                        "NewLeaseDuration"
                    ]
                );
                assert_eq!(read.get("NewRemoteHost"), Some(""));
                assert_eq!(read.get("NewExternalPort"), Some("41000"));
                assert_eq!(read.get("NewInternalPort"), Some("42000"));
                assert_eq!(read.get("NewInternalClient"), Some("192.168.1.2"));
                assert_eq!(read.get("NewEnabled"), Some("1"));
                assert_eq!(read.get("NewLeaseDuration"), Some("3600"));
                // Control characters and U+FFFF dropped, the rest escaped and expanded again.
                assert_eq!(read.get("NewPortMappingDescription"), Some("a<b>&\"c\"'d'é"));
                assert!(body.contains("a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;é<"));
            }
            Action::DeletePortMapping { .. } => {
                assert_eq!(names, ["NewRemoteHost", "NewExternalPort", "NewProtocol"]);
                assert_eq!(read.get("NewProtocol"), Some("UDP"));
            }
        }
        assert_eq!(read.get("NewProtocol").is_some(), !matches!(action, Action::GetExternalIpAddress));
    }
}

/// A SOAP envelope around `inner`, as miniupnpd writes it.
fn envelope(inner: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>{inner}</s:Body></s:Envelope>\r\n"
    )
    .into_bytes()
}

/// A SOAP fault carrying a `UPnPError`.
fn upnp_error(code: &str, description: &str) -> Vec<u8> {
    envelope(&format!(
        "<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>\
         <UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\"><errorCode>{code}</errorCode>\
         <errorDescription>{description}</errorDescription></UPnPError></detail></s:Fault>"
    ))
}

// Properties.

fn check_http(bytes: &[u8]) -> Result<(), TestCaseError> {
    for eof in [false, true] {
        if let Ok(Some(r)) = parse_http_response(bytes, eof) {
            prop_assert!((200..600).contains(&r.status));
            prop_assert!(r.body.len() <= bytes.len().min(MAX_HTTP));
            if !eof {
                // A response whole before the end of the connection stays whole at its end.
                prop_assert_eq!(parse_http_response(bytes, true), Ok(Some(r)));
            }
        }
    }
    Ok(())
}

fn check_everything(bytes: &[u8]) -> Result<(), TestCaseError> {
    check_http(bytes)?;
    if let Ok(r) = parse_search_response(bytes) {
        prop_assert!(r.search_target.len() <= MAX_TEXT);
        prop_assert!(r.usn.map_or(0, |u| u.len()) <= MAX_TEXT);
        prop_assert!(r.server.map_or(0, |s| s.len()) <= MAX_TEXT);
    }
    for status in [200, 500] {
        match parse_soap_response(status, bytes) {
            Ok(a) => {
                prop_assert!(a.arguments().len() <= 16);
                prop_assert!(a.arguments().iter().all(|(n, v)| n.len() <= 64 && v.len() <= MAX_TEXT));
            }
            Err(SoapError::Fault(f)) => prop_assert!(f.description.len() <= MAX_TEXT),
            Err(_) => {}
        }
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        let base = url("http://10.0.0.1:5000/d/desc.xml");
        if let Ok(found) = find_wan_services(text, &base) {
            prop_assert!(!found.is_empty() && found.len() <= 16);
            prop_assert!(found.iter().all(|s| s.control.host == base.host));
        }
        if let Ok(u) = HttpUrl::parse(text) {
            prop_assert!(u.path.starts_with('/') && u.path.bytes().all(|b| b.is_ascii_graphic()));
            prop_assert_eq!(HttpUrl::parse(&u.to_string()), Ok(u));
        }
        if let Ok(u) = description::resolve(&base, text) {
            prop_assert_eq!(u.host, base.host);
        }
    }
    Ok(())
}

/// Strings over the alphabet that matters to the XML scanner and URL resolver.
fn markupish() -> impl Strategy<Value = String> {
    "([<>/!?\\[\\]:=\"'&#;x -]|CDATA|--|service|serviceType|controlURL|URLBase|Body|Fault|errorCode|\
     urn:schemas-upnp-org:service:WANIPConnection:1|http://10.0.0.1|http://10.0.0.2|\\.\\.){0,60}"
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        check_everything(&bytes)?;
        let mut http = b"HTTP/1.1 200 OK\r\n".to_vec();
        http.extend_from_slice(&bytes);
        check_everything(&http)?;
    }

    #[test]
    fn arbitrary_markup_never_panics(text in markupish()) {
        check_everything(text.as_bytes())?;
        check_everything(&envelope(&text))?;
        let doc = format!("<root><service><serviceType>{}</serviceType>{text}</service></root>", ServiceType::WanIpConnection1.urn());
        check_everything(doc.as_bytes())?;
    }

    #[test]
    fn chunked_bodies_read_back_at_any_split(
        body in prop::collection::vec(any::<u8>(), 0..300),
        sizes in prop::collection::vec(1usize..40, 1..20),
        split in any::<prop::sample::Index>(),
    ) {
        let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let mut rest = body.as_slice();
        for size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, more) = rest.split_at((*size).min(rest.len()));
            wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            wire.extend_from_slice(chunk);
            wire.extend_from_slice(b"\r\n");
            rest = more;
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        let cut = split.index(wire.len());
        prop_assert_eq!(parse_http_response(&wire[..cut], false), Ok(None));
        prop_assert_eq!(parse_http_response(&wire[..cut], true), Err(UpnpError::Truncated));
        prop_assert_eq!(parse_http_response(&wire, false), Ok(Some(HttpResponse { status: 200, body })));
    }

    #[test]
    fn soap_arguments_survive_escaping(
        description in "\\PC{0,40}",
        external_port in any::<u16>(),
        internal_port in any::<u16>(),
        client in any::<[u8; 4]>(),
        lease_secs in any::<u32>(),
    ) {
        let m = PortMapping {
            external_port,
            protocol: Protocol::Udp,
            internal_port,
            internal_client: Ipv4Addr::from(client),
            description: description.clone(),
            lease_secs,
        };
        let wire = soap_request(&url(DESCRIPTION_A), ServiceType::WanIpConnection2, &Action::AddPortMapping(m));
        let at = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let read = parse_soap_response(200, &wire[at..]).unwrap();
        let kept: String = description.chars().filter(|c| !c.is_control() && !matches!(c, '\u{FFFE}' | '\u{FFFF}')).collect();
        if kept.len() <= MAX_TEXT {
            prop_assert_eq!(read.get("NewPortMappingDescription"), Some(kept.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))));
        }
        prop_assert_eq!(read.get("NewExternalPort").map(str::to_owned), Some(external_port.to_string()));
        prop_assert_eq!(read.get("NewInternalClient").map(str::to_owned), Some(Ipv4Addr::from(client).to_string()));
        prop_assert_eq!(read.get("NewLeaseDuration").map(str::to_owned), Some(lease_secs.to_string()));
    }
}
