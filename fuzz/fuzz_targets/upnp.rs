//! Any bytes, read as an SSDP answer, an HTTP response (cut short or closed), a SOAP answer
//! or a device description, give typed values or typed errors, never a panic. What is kept
//! stays within the module's bounds, a response whole before the connection closes stays
//! the same once it closes, a description never yields a control URL off its host, and a
//! URL that parses prints as one that parses the same.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use clearskies_protocol::upnp::{
    find_wan_services, parse_http_response, parse_search_response, parse_soap_response, HttpUrl, SoapError, MAX_HTTP,
    MAX_TEXT,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for eof in [false, true] {
        if let Ok(Some(r)) = parse_http_response(data, eof) {
            assert!((200..600).contains(&r.status));
            assert!(r.body.len() <= data.len().min(MAX_HTTP));
            if !eof {
                assert_eq!(parse_http_response(data, true), Ok(Some(r)));
            }
        }
    }
    if let Ok(r) = parse_search_response(data) {
        assert!(r.search_target.len() <= MAX_TEXT);
        assert!(r.usn.map_or(0, |u| u.len()) <= MAX_TEXT);
        assert!(r.server.map_or(0, |s| s.len()) <= MAX_TEXT);
    }
    for status in [200, 500] {
        match parse_soap_response(status, data) {
            Ok(a) => assert!(a.arguments().iter().all(|(_, v)| v.len() <= MAX_TEXT)),
            Err(SoapError::Fault(f)) => assert!(f.description.len() <= MAX_TEXT),
            Err(_) => {}
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let base = HttpUrl { host: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), port: 5000, path: "/d/desc.xml".into() };
        if let Ok(services) = find_wan_services(text, &base) {
            assert!(!services.is_empty() && services.len() <= 16);
            assert!(services.iter().all(|s| s.control.host == base.host));
        }
        if let Ok(u) = HttpUrl::parse(text) {
            assert_eq!(HttpUrl::parse(&u.to_string()), Ok(u));
        }
    }
});
