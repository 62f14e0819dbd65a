use std::net::Ipv6Addr;

use super::*;

// URLs.

#[test]
fn urls_are_http_with_an_ip_literal() {
    let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    for (text, host, port, path) in [
        ("http://192.168.1.1:5000/rootDesc.xml", v4(192, 168, 1, 1), 5000, "/rootDesc.xml"),
        ("HTTP://10.0.0.1/", v4(10, 0, 0, 1), 80, "/"),
        ("http://10.0.0.1", v4(10, 0, 0, 1), 80, "/"),
        ("http://10.0.0.1:", v4(10, 0, 0, 1), 80, "/"),
        (" http://10.0.0.1:65535?x=1 ", v4(10, 0, 0, 1), 65535, "/?x=1"),
        ("http://10.0.0.1/a/b#frag", v4(10, 0, 0, 1), 80, "/a/b"),
        ("http://[fe80::1]:49152/desc.xml", IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)), 49152, "/desc.xml"),
        ("http://[::ffff:10.0.0.1]/", IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped()), 80, "/"),
    ] {
        assert_eq!(HttpUrl::parse(text), Ok(HttpUrl { host, port, path: path.to_owned() }), "{text}");
    }
    assert!(url("http://[::ffff:10.0.0.1]/").same_host(&v4(10, 0, 0, 1)));
    for (text, why) in [
        ("http://router.local:5000/rootDesc.xml", "host is not an ip address"),
        ("http://fritz.box/", "host is not an ip address"),
        ("http://1.2.3/", "host is not an ip address"),
        ("http://1.2.3.4.5/", "host is not an ip address"),
        ("http://[fe80::1%eth0]:5000/", "host is not an ip address"),
        ("http://[::1/", "unclosed ipv6 bracket"),
        ("http://[::1]x/", "bad port"),
        ("https://192.168.1.1/", "https is not supported"),
        ("ftp://192.168.1.1/", "not an http:// url"),
        ("192.168.1.1:5000/rootDesc.xml", "not an http:// url"),
        ("", "not an http:// url"),
        ("http://user:pass@192.168.1.1/", "user information in url"),
        ("http://192.168.1.1:0/", "bad port"),
        ("http://192.168.1.1:65536/", "bad port"),
        ("http://192.168.1.1:+80/", "bad port"),
        ("http://192.168.1.1:000080/", "bad port"),
        ("http://192.168.1.1/a b", "path is not visible ascii"),
        ("http://192.168.1.1/\u{e9}", "path is not visible ascii"),
        ("http://192.168.1.1/a\r\nHost: evil", "path is not visible ascii"),
    ] {
        assert_eq!(HttpUrl::parse(text), Err(UpnpError::Url(why)), "{text:?}");
    }
    let long = format!("http://10.0.0.1/{}", "a".repeat(MAX_URL));
    assert_eq!(HttpUrl::parse(&long), Err(UpnpError::Limit("url")));
}

// SSDP answers, hand-made.

const SSDP_ANSWER: &str = "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\n\
    LOCATION: http://192.168.0.1:49152/gatedesc.xml\r\nSERVER: Linux/3.14 UPnP/1.0 IpBridge/1.26\r\n\
    ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nUSN: uuid:x::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n";

#[test]
fn ssdp_answers_are_lenient_in_form() {
    let r = parse_search_response(SSDP_ANSWER.as_bytes()).unwrap();
    assert_eq!(r.location, url("http://192.168.0.1:49152/gatedesc.xml"));
    assert_eq!(r.search_target, IGD1);
    // Lower-case names, bare line feeds, no final blank line, a reason-less status line.
    let loose = "HTTP/1.1 200\nlocation:http://[fd00::1]/d.xml \nSt: upnp:rootdevice";
    let r = parse_search_response(loose.as_bytes()).unwrap();
    assert_eq!((r.location.port, r.search_target.as_str(), r.usn, r.server), (80, "upnp:rootdevice", None, None));
    // The first of repeated headers counts.
    let twice = SSDP_ANSWER.replace("EXT:", "LOCATION: http://192.168.0.9/x");
    assert_eq!(parse_search_response(twice.as_bytes()).unwrap().location, url("http://192.168.0.9/x"));
    // SERVER is cut, not refused.
    let chatty = SSDP_ANSWER.replace("IpBridge/1.26", &"\u{e9}".repeat(1000));
    assert_eq!(parse_search_response(chatty.as_bytes()).unwrap().server.unwrap().len(), MAX_TEXT);
}

#[test]
fn hostile_ssdp_answers() {
    let with = |from: &str, to: &str| parse_search_response(SSDP_ANSWER.replace(from, to).as_bytes());
    assert_eq!(
        with("http://192.168.0.1:49152/gatedesc.xml", "http://evil.example:80/x"),
        Err(UpnpError::Url("host is not an ip address"))
    );
    assert_eq!(
        with("http://192.168.0.1:49152/gatedesc.xml", "https://192.168.0.1/x"),
        Err(UpnpError::Url("https is not supported"))
    );
    assert_eq!(with("LOCATION:", "X-LOCATION:"), Err(UpnpError::Missing("LOCATION")));
    assert_eq!(with("\r\nST:", "\r\nNT:"), Err(UpnpError::Missing("ST")));
    assert_eq!(with("200 OK", "404 Not Found"), Err(UpnpError::Status(404)));
    assert_eq!(with("HTTP/1.1 200 OK", "NOTIFY * HTTP/1.1"), Err(UpnpError::Http("not an http response")));
    assert_eq!(with("HTTP/1.1", "HTTP/2.0"), Err(UpnpError::Http("bad status line")));
    assert_eq!(with("USN: uuid:x", &format!("USN: uuid:{}", "x".repeat(MAX_TEXT))), Err(UpnpError::Limit("ssdp USN")));
    assert_eq!(with("ST: urn", &format!("ST: {}urn", "x".repeat(MAX_TEXT))), Err(UpnpError::Limit("ssdp ST")));
    assert_eq!(with("EXT:", " folded"), Err(UpnpError::Http("folded header")));
    assert_eq!(with("EXT:", "NO COLON"), Err(UpnpError::Http("header without a colon")));
    assert_eq!(with("EXT:", "A B: c"), Err(UpnpError::Http("bad header name")));
    assert_eq!(with("EXT:", &"X".repeat(MAX_LINE + 1)), Err(UpnpError::Limit("http line")));
    assert_eq!(with("EXT:", &"X-A: b\r\n".repeat(MAX_HEADERS)), Err(UpnpError::Limit("http header count")));
    assert_eq!(with("ST: urn", "ST: \u{ff}urn").map(|r| r.search_target), Ok(format!("\u{ff}{IGD1}")));
    let mut bad_utf8 = SSDP_ANSWER.as_bytes().to_vec();
    let at = SSDP_ANSWER.find("ST: ").unwrap() + 4;
    bad_utf8[at] = 0xFF;
    assert_eq!(parse_search_response(&bad_utf8), Err(UpnpError::Http("header value is not utf-8")));
    let mut big = SSDP_ANSWER.as_bytes().to_vec();
    big.resize(MAX_SSDP + 1, b' ');
    assert_eq!(parse_search_response(&big), Err(UpnpError::Limit("ssdp datagram")));
    assert_eq!(parse_search_response(b""), Err(UpnpError::Http("bad status line")));
}

// HTTP responses, hand-made.

/// Every way of cutting `wire` short: not whole until the end, truncated at eof.
fn assert_whole_only_at_the_end(wire: &[u8], expected: &HttpResponse) {
    for cut in 0..wire.len() {
        assert_eq!(parse_http_response(&wire[..cut], false), Ok(None), "cut at {cut}");
    }
    assert_eq!(parse_http_response(wire, false).unwrap().as_ref(), Some(expected));
}

#[test]
fn content_length_bodies() {
    let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello";
    let ok = HttpResponse { status: 200, body: b"hello".to_vec() };
    assert_whole_only_at_the_end(wire, &ok);
    assert_eq!(parse_http_response(&wire[..wire.len() - 1], true), Err(UpnpError::Truncated));
    // Bytes after the response are not ours to read.
    let mut more = wire.to_vec();
    more.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    assert_eq!(parse_http_response(&more, false), Ok(Some(ok.clone())));
    // The same with bare line feeds and an interim response first.
    let interim = b"HTTP/1.1 100 Continue\n\nHTTP/1.0 200 OK\ncontent-length:5\n\nhello";
    assert_eq!(parse_http_response(interim, false), Ok(Some(ok)));
    let no_body = b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n";
    assert_eq!(parse_http_response(no_body, false), Ok(Some(HttpResponse { status: 204, body: vec![] })));
}

#[test]
fn chunked_bodies() {
    let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n1 \r\n,\r\n\
                 A\r\n world <x>\r\n0\r\nX-Trailer: 1\r\n\r\n";
    let ok = HttpResponse { status: 200, body: b"hello, world <x>".to_vec() };
    assert_whole_only_at_the_end(wire, &ok);
    assert_eq!(parse_http_response(&wire[..wire.len() - 2], true), Err(UpnpError::Truncated));
    let lf = b"HTTP/1.1 200 OK\nTransfer-Encoding: identity, Chunked\n\n5\nhello\n0\n\n";
    assert_eq!(parse_http_response(lf, true).unwrap().unwrap().body, b"hello");
    // Chunked wins over Content-Length (RFC 9112 §6.3).
    let both = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    assert_eq!(parse_http_response(both, false).unwrap().unwrap().body, b"abc");
}

#[test]
fn bodies_until_close() {
    let wire = b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\n<root/>";
    assert_eq!(parse_http_response(wire, false), Ok(None));
    assert_eq!(parse_http_response(wire, true), Ok(Some(HttpResponse { status: 200, body: b"<root/>".to_vec() })));
    assert_eq!(parse_http_response(b"HTTP/1.0 500 Oops\r\n\r\n", true).unwrap().unwrap().status, 500);
}

#[test]
fn hostile_http_framing() {
    let head = |h: &str| format!("HTTP/1.1 200 OK\r\n{h}\r\n\r\n").into_bytes();
    // Chunk sizes that would overflow, or just exceed the cap.
    for size in ["ffffffffffffffffffffffffffffffffffffff", "10000000000000000", "10001", "FFFF"] {
        let mut wire = head("Transfer-Encoding: chunked");
        wire.extend_from_slice(format!("{size}\r\n").as_bytes());
        assert_eq!(parse_http_response(&wire, false), Err(UpnpError::Limit("http chunk")), "{size}");
    }
    for bad in ["", "-1", "0x10", "g", " ;"] {
        let mut wire = head("Transfer-Encoding: chunked");
        wire.extend_from_slice(format!("{bad}\r\n").as_bytes());
        assert_eq!(parse_http_response(&wire, false), Err(UpnpError::Http("bad chunk size")), "{bad:?}");
    }
    let mut short = head("Transfer-Encoding: chunked");
    short.extend_from_slice(b"2\r\nabc\r\n0\r\n\r\n");
    assert_eq!(parse_http_response(&short, false), Err(UpnpError::Http("chunk data not followed by a line end")));
    // Many small chunks adding up past the cap.
    let mut many = head("Transfer-Encoding: chunked");
    while many.len() <= MAX_HTTP {
        many.extend_from_slice(b"400\r\n");
        many.extend_from_slice(&[b'x'; 0x400]);
        many.extend_from_slice(b"\r\n");
    }
    assert_eq!(parse_http_response(&many, false), Err(UpnpError::Limit("http chunk")));
    let mut trailers = head("Transfer-Encoding: chunked");
    trailers.extend_from_slice(b"0\r\n");
    trailers.extend_from_slice("X: y\r\n".repeat(MAX_HEADERS + 1).as_bytes());
    assert_eq!(parse_http_response(&trailers, false), Err(UpnpError::Limit("http trailer count")));
    // Bodies over the cap, however announced.
    for length in ["65537", "99999999999999999999999999999999", &MAX_HTTP.to_string()] {
        assert_eq!(
            parse_http_response(&head(&format!("Content-Length: {length}")), false),
            Err(UpnpError::Limit("http body"))
        );
    }
    let mut close = head("Server: x");
    close.resize(MAX_HTTP + 1, b'x');
    assert_eq!(parse_http_response(&close, true), Err(UpnpError::Limit("http message")));
    assert_eq!(parse_http_response(&close, false), Err(UpnpError::Limit("http message")));
    close.truncate(MAX_HTTP);
    assert_eq!(parse_http_response(&close, true).unwrap().unwrap().body.len(), MAX_HTTP - head("Server: x").len());
    // Framing we cannot read, or that contradicts itself.
    for te in ["gzip", "gzip, chunked", "chunked, gzip", "chunked, chunked", "x"] {
        let wire = head(&format!("Transfer-Encoding: {te}"));
        assert_eq!(parse_http_response(&wire, false), Err(UpnpError::UnsupportedEncoding), "{te}");
    }
    for cl in
        ["Content-Length: 1\r\nContent-Length: 2", "Content-Length: 1, 1", "Content-Length: -1", "Content-Length:"]
    {
        let wire = head(cl);
        assert!(matches!(parse_http_response(&wire, false), Err(UpnpError::Http(_))), "{cl}");
    }
    // Heads: not HTTP (told at once), too long, too many lines, odd status lines.
    assert_eq!(parse_http_response(b"SSH-2", false), Err(UpnpError::Http("not an http response")));
    assert_eq!(parse_http_response(b"HTT", false), Ok(None));
    let endless = [b"HTTP/1.1 200 ".as_slice(), &[b'x'; MAX_LINE]].concat();
    assert_eq!(parse_http_response(&endless, false), Err(UpnpError::Limit("http line")));
    let lines = head(&"X: y\r\n".repeat(MAX_HEADERS + 1));
    assert_eq!(parse_http_response(&lines, false), Err(UpnpError::Limit("http header count")));
    for status in
        ["HTTP/1.1 099 x", "HTTP/1.1 600 x", "HTTP/1.1 20 x", "HTTP/1.1 2000", "HTTP/1.1  200", "HTTP/1.2 200"]
    {
        let wire = format!("{status}\r\n\r\n");
        assert_eq!(parse_http_response(wire.as_bytes(), true), Err(UpnpError::Http("bad status line")), "{status}");
    }
    assert_eq!(parse_http_response(b"HTTP/1.1 101 Up\r\n\r\n", false), Err(UpnpError::Http("switching protocols")));
    // An endless run of interim responses still ends at the cap.
    let interims = "HTTP/1.1 100 Continue\r\n\r\n".repeat(MAX_HTTP / 25 + 1);
    assert_eq!(parse_http_response(interims.as_bytes(), false), Err(UpnpError::Limit("http message")));
}

// Device descriptions, hand-made.

/// A description in the style of a DSL router: a PPP and an IP connection, with URLBase,
/// relative control URLs, comments, a prefixed element and entities.
const DSL_DESCRIPTION: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<!-- a router -->
<root xmlns="urn:schemas-upnp-org:device-1-0">
  <specVersion><major>1</major><minor>0</minor></specVersion>
  <URLBase> http://192.168.178.1:49000/igd/ </URLBase>
  <device>
    <deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
    <serviceList>
      <service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType>
        <controlURL>/upnp/control/layer3forwarding</controlURL></service>
    </serviceList>
    <deviceList><device><deviceList><device>
      <serviceList>
        <service>
          <serviceType>urn:schemas-upnp-org:service:WANPPPConnection:1</serviceType>
          <serviceId>urn:upnp-org:serviceId:WANPPPConnection1</serviceId>
          <controlURL>ctl/wanpppconn1?a=1&amp;b=2</controlURL>
        </service>
        <!-- <service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType>
             <controlURL>http://10.6.6.6/</controlURL></service> -->
        <service>
          <serviceType>
            urn:schemas-upnp-org:service:WANIPConnection:1
          </serviceType>
          <x:controlURL xmlns:x="urn:x"><![CDATA[../control/wanipconnection1]]></x:controlURL>
          <eventSubURL/>
        </service>
      </serviceList>
    </device></deviceList></device></deviceList>
  </device>
</root>
"#;

#[test]
fn descriptions_are_searched_anywhere_and_resolved() {
    let base = url("http://192.168.178.1:49000/igddesc.xml");
    let found = find_wan_services(DSL_DESCRIPTION, &base).unwrap();
    assert_eq!(
        found,
        [
            WanService {
                service_type: ServiceType::WanIpConnection1,
                control: url("http://192.168.178.1:49000/control/wanipconnection1"),
            },
            WanService {
                service_type: ServiceType::WanPppConnection1,
                control: url("http://192.168.178.1:49000/igd/ctl/wanpppconn1?a=1&b=2"),
            },
        ]
    );
    assert_eq!(find_wan_service(DSL_DESCRIPTION, &base).unwrap().service_type, ServiceType::WanIpConnection1);
    // Without URLBase, relative to the description's own URL.
    let no_base = DSL_DESCRIPTION.replace("<URLBase> http://192.168.178.1:49000/igd/ </URLBase>", "");
    let dev = url("http://192.168.178.1:49000/dev/igddesc.xml");
    let found = find_wan_services(&no_base, &dev).unwrap();
    assert_eq!(found[0].control, url("http://192.168.178.1:49000/control/wanipconnection1"));
    assert_eq!(found[1].control, url("http://192.168.178.1:49000/dev/ctl/wanpppconn1?a=1&b=2"));
}

#[test]
fn control_urls_resolve_like_rfc_3986() {
    let base = url("http://192.168.1.1:5000/a/b/desc.xml?q=1");
    for (reference, expected) in [
        ("/ctl/IPConn", "http://192.168.1.1:5000/ctl/IPConn"),
        ("ctl", "http://192.168.1.1:5000/a/b/ctl"),
        ("./ctl", "http://192.168.1.1:5000/a/b/ctl"),
        ("../ctl", "http://192.168.1.1:5000/a/ctl"),
        ("../../../../ctl", "http://192.168.1.1:5000/ctl"),
        ("..", "http://192.168.1.1:5000/a/"),
        ("?x", "http://192.168.1.1:5000/a/b/desc.xml?x"),
        ("/a/./b/../c#frag", "http://192.168.1.1:5000/a/c"),
        ("http://192.168.1.1:6000/other", "http://192.168.1.1:6000/other"),
        ("HTTP://192.168.1.1/x", "http://192.168.1.1/x"),
        ("http://[::ffff:192.168.1.1]:5000/x", "http://[::ffff:192.168.1.1]:5000/x"),
        ("//192.168.1.1:7000/y", "http://192.168.1.1:7000/y"),
    ] {
        assert_eq!(description::resolve(&base, reference), Ok(url(expected)), "{reference}");
    }
    let foreign = |ip: &str| UpnpError::ForeignHost { expected: base.host, found: ip.parse().unwrap() };
    assert_eq!(description::resolve(&base, "http://192.168.1.2:5000/ctl"), Err(foreign("192.168.1.2")));
    assert_eq!(description::resolve(&base, "//8.8.8.8/ctl"), Err(foreign("8.8.8.8")));
    assert_eq!(description::resolve(&base, "http://[2001:db8::1]/ctl"), Err(foreign("2001:db8::1")));
    assert_eq!(description::resolve(&base, "https://192.168.1.1/ctl"), Err(UpnpError::Url("https is not supported")));
    assert_eq!(
        description::resolve(&base, "http://evil.example/ctl"),
        Err(UpnpError::Url("host is not an ip address"))
    );
    assert_eq!(description::resolve(&base, "mailto:x"), Err(UpnpError::Url("not an http:// url")));
    assert_eq!(description::resolve(&base, " "), Err(UpnpError::Url("empty url")));
    assert_eq!(description::resolve(&base, "/a b"), Err(UpnpError::Url("path is not visible ascii")));
    assert_eq!(description::resolve(&base, &"a".repeat(MAX_URL)), Err(UpnpError::Limit("url")));
}

#[test]
fn hostile_descriptions() {
    let base = url("http://192.168.178.1:49000/igddesc.xml");
    let with = |from: &str, to: &str| find_wan_service(&DSL_DESCRIPTION.replace(from, to), &base);
    // Redirection elsewhere, by URLBase or by control URL.
    let elsewhere = UpnpError::ForeignHost { expected: base.host, found: "192.168.178.66".parse().unwrap() };
    assert_eq!(with("http://192.168.178.1:49000/igd/", "http://192.168.178.66/"), Err(elsewhere.clone()));
    assert_eq!(with("../control/wanipconnection1", "http://192.168.178.66/c"), Err(elsewhere.clone()));
    // ... even for the less preferred service: a description that lies once is not used.
    assert_eq!(with("ctl/wanpppconn1?a=1&amp;b=2", "//192.168.178.66/c"), Err(elsewhere));
    assert_eq!(
        with("http://192.168.178.1:49000/igd/", "http://igd.local/"),
        Err(UpnpError::Url("host is not an ip address"))
    );
    assert_eq!(
        with("<URLBase> http://192.168.178.1:49000/igd/ ", "<URLBase><x/>"),
        Err(UpnpError::Url("unusable URLBase"))
    );
    // Nothing we speak.
    let none = DSL_DESCRIPTION.replace("WANIPConnection:1", "WANIPConnection:3").replace("WANPPPConnection:1", "X");
    assert_eq!(find_wan_service(&none, &base), Err(UpnpError::NoWanService));
    // Over-long or structured values make a service unusable, not the description.
    let long = format!("/{}", "c".repeat(MAX_URL));
    let found = find_wan_services(&DSL_DESCRIPTION.replace("ctl/wanpppconn1?a=1&amp;b=2", &long), &base).unwrap();
    assert_eq!(found.len(), 1);
    let nested = DSL_DESCRIPTION.replace("<![CDATA[../control/wanipconnection1]]>", "<a>/c</a>");
    assert_eq!(find_wan_services(&nested, &base).unwrap().len(), 1);
    // Markup we refuse or that does not hold together.
    assert_eq!(
        with("<!-- a router -->", "<!DOCTYPE lolz [<!ENTITY lol \"lol\">]>"),
        Err(UpnpError::Xml("doctype and markup declarations are not supported"))
    );
    assert_eq!(with("</root>", ""), Err(UpnpError::Xml("document ends inside an element")));
    assert_eq!(
        with("</specVersion>", "</specversion>"),
        Err(UpnpError::Xml("end tag does not match the open element"))
    );
    assert_eq!(with("<!-- a router -->", "</x>"), Err(UpnpError::Xml("end tag without a start tag")));
    assert_eq!(with("-->", "--"), Err(UpnpError::Xml("unterminated comment")));
    assert_eq!(with("]]>", "]]"), Err(UpnpError::Xml("unterminated cdata section")));
    assert_eq!(
        with("<?xml version=\"1.0\" encoding=\"utf-8\"?>", "<?xml"),
        Err(UpnpError::Xml("unterminated processing instruction"))
    );
    assert_eq!(with("</root>", "</root"), Err(UpnpError::Xml("unterminated end tag")));
    assert_eq!(with("<eventSubURL/>", "<eventSubURL a=\">"), Err(UpnpError::Xml("unterminated tag")));
    assert_eq!(with("<eventSubURL/>", "< a/>"), Err(UpnpError::Xml("bad tag name")));
    let mut big = DSL_DESCRIPTION.to_owned();
    big.push_str(&" ".repeat(MAX_HTTP));
    assert_eq!(find_wan_service(&big, &base), Err(UpnpError::Limit("device description")));
}

#[test]
fn deep_and_wide_descriptions_cost_little() {
    let base = url("http://10.0.0.1/d.xml");
    // 100,000 nested tags do not fit in a description; the scanner alone stops at its depth.
    let deep = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
    assert_eq!(find_wan_service(&deep, &base), Err(UpnpError::Limit("device description")));
    let mut scanner = xml::Scanner::new(&deep);
    let mut tokens = 0;
    let end = loop {
        match scanner.next_token() {
            Ok(Some(_)) => tokens += 1,
            other => break other,
        }
    };
    assert_eq!((tokens, end), (MAX_DEPTH, Err(UpnpError::Limit("xml depth"))));
    let fits = "<a>".repeat(MAX_HTTP / 3);
    assert_eq!(find_wan_service(&fits, &base), Err(UpnpError::Limit("xml depth")));
    // Just under the depth limit is fine.
    let ok_depth = MAX_DEPTH - 3;
    let service = "<service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>\
                   <controlURL>/c</controlURL></service>";
    let deep_ok = format!("{}{service}{}", "<d>".repeat(ok_depth), "</d>".repeat(ok_depth));
    assert_eq!(find_wan_service(&deep_ok, &base).unwrap().control, url("http://10.0.0.1/c"));
    // Thousands of services: the first 16 are kept.
    let wide = format!("<root>{}</root>", service.repeat(MAX_HTTP / service.len()));
    assert_eq!(find_wan_services(&wide, &base).unwrap().len(), 16);
    // Many unknown entities and ampersands, and a huge comment.
    let amps = format!("<root><service><serviceType>{}</serviceType></service></root>", "&".repeat(60_000));
    assert_eq!(find_wan_service(&amps, &base), Err(UpnpError::NoWanService));
    let comment = format!("<root><!--{}--></root>", "-".repeat(60_000));
    assert_eq!(find_wan_service(&comment, &base), Err(UpnpError::NoWanService));
}

#[test]
fn entities_in_text() {
    let read = |raw: &str| {
        let mut out = String::new();
        let whole = xml::unescape_into(raw, &mut out, 20);
        (out, whole)
    };
    assert_eq!(read("a&amp;b&lt;&gt;&quot;&apos;"), ("a&b<>\"'".to_owned(), true));
    assert_eq!(read("&#38;&#x26;&#X26;&#0;"), ("&&&#X26;&#0;".to_owned(), true));
    assert_eq!(read("&#xD800;&#1114112;"), ("&#xD800;&#1114112;".to_owned(), true));
    assert_eq!(read("&#xe9;&nbsp;&;&amp"), ("é&nbsp;&;&amp".to_owned(), true));
    assert_eq!(read("0123456789abcdefghié"), ("0123456789abcdefghi".to_owned(), false));
    assert_eq!(read("0123456789abcdefghi&#xe9;"), ("0123456789abcdefghi".to_owned(), false));
    let mut out = String::new();
    xml::escape_into("<a href='x'>&\u{0}\t\u{85}é</a>", &mut out);
    assert_eq!(out, "&lt;a href=&apos;x&apos;&gt;&amp;é&lt;/a&gt;");
}

// SOAP answers, hand-made.

#[test]
fn soap_answers() {
    let body = envelope(
        "<m:GetExternalIPAddressResponse xmlns:m=\"urn:schemas-upnp-org:service:WANPPPConnection:1\">\n  \
         <NewExternalIPAddress> 2001:db8::5 </NewExternalIPAddress>\n</m:GetExternalIPAddressResponse>",
    );
    let a = parse_soap_response(200, &body).unwrap();
    assert_eq!(a.external_ip(), Some("2001:db8::5".parse().unwrap()));
    assert!(a.answers(&Action::GetExternalIpAddress));
    assert!(!a.answers(&Action::DeletePortMapping { external_port: 1, protocol: Protocol::Tcp }));
    let empty = envelope("<u:GetExternalIPAddressResponse><NewExternalIPAddress/></u:GetExternalIPAddressResponse>");
    assert_eq!(parse_soap_response(200, &empty).unwrap().external_ip(), None);
    for (port, expected) in [("0", None), ("65536", None), ("x", None), (" 443 ", Some(443))] {
        let body = envelope(&format!(
            "<u:AddAnyPortMappingResponse><NewReservedPort>{port}</NewReservedPort></u:AddAnyPortMappingResponse>"
        ));
        assert_eq!(parse_soap_response(200, &body).unwrap().reserved_port(), expected, "{port}");
    }
    // Text split by comments and CDATA is one value; grandchildren are not arguments.
    let split = envelope("<u:XResponse><A>1<!-- -->2<![CDATA[&3]]></A><B><C>x</C></B></u:XResponse>trailing<junk>");
    let x = parse_soap_response(200, &split).unwrap();
    assert_eq!(x.arguments(), [("A".to_owned(), "12&3".to_owned()), ("B".to_owned(), String::new())]);
}

#[test]
fn soap_faults() {
    for (code, name) in [
        ("718", "ConflictInMappingEntry"),
        ("725", "OnlyPermanentLeasesSupported"),
        ("606", "Action not authorized"),
        ("402", "Invalid Args"),
    ] {
        let Err(SoapError::Fault(f)) = parse_soap_response(500, &upnp_error(code, name)) else { panic!("{code}") };
        assert_eq!(f.code.0.to_string(), code);
        assert_eq!(f.code.description(), Some(name));
        assert_eq!(f.description, name);
        assert_eq!(f.code.to_string(), format!("{code} ({name})"));
    }
    // Some devices send their fault with status 200.
    let Err(SoapError::Fault(f)) = parse_soap_response(200, &upnp_error("725", "")) else { panic!() };
    assert_eq!(f.code, FaultCode::ONLY_PERMANENT_LEASES_SUPPORTED);
    assert_eq!(FaultCode(799).description(), None);
    assert_eq!(FaultCode(799).to_string(), "799");
    let e = SoapError::Fault(UpnpFault { code: FaultCode(718), description: "busy".to_owned() });
    assert_eq!(e.to_string(), "device refused the action: upnp error 718 (ConflictInMappingEntry): busy");
}

#[test]
fn hostile_soap_answers() {
    // A huge errorDescription is cut, control characters and all.
    let huge = format!("{}\u{1b}[31m", "&lt;".repeat(15_000));
    let Err(SoapError::Fault(f)) = parse_soap_response(500, &upnp_error("501", &huge)) else { panic!() };
    assert_eq!(f.description, "<".repeat(MAX_TEXT));
    let Err(SoapError::Fault(f)) = parse_soap_response(500, &upnp_error("501", "a\u{1b}[31m\nb")) else { panic!() };
    assert_eq!(f.description, "a [31m b");
    // Errors without a usable code, and answers that are not SOAP at all.
    assert_eq!(parse_soap_response(500, &upnp_error("seven", "x")), Err(SoapError::Status(500)));
    assert_eq!(parse_soap_response(500, &upnp_error("99999", "x")), Err(SoapError::Status(500)));
    assert_eq!(
        parse_soap_response(200, &upnp_error("", "x")),
        Err(SoapError::Malformed("soap fault without a upnp error code"))
    );
    assert_eq!(parse_soap_response(500, b"<html><body>Internal error</body></html>"), Err(SoapError::Status(500)));
    assert_eq!(parse_soap_response(401, b"Unauthorized"), Err(SoapError::Status(401)));
    assert_eq!(parse_soap_response(404, &envelope("<u:XResponse/>")), Err(SoapError::Status(404)));
    assert_eq!(parse_soap_response(200, b""), Err(SoapError::Malformed("no element in a soap body")));
    assert_eq!(parse_soap_response(200, b"<html>ok</html>"), Err(SoapError::Malformed("no element in a soap body")));
    assert_eq!(parse_soap_response(200, b"\xff"), Err(SoapError::Malformed("not utf-8")));
    assert_eq!(
        parse_soap_response(200, b"<a><b></a>"),
        Err(SoapError::Malformed("end tag does not match the open element"))
    );
    assert_eq!(
        parse_soap_response(200, b"<!DOCTYPE x><a/>"),
        Err(SoapError::Malformed("doctype and markup declarations are not supported"))
    );
    // Bounds on what is kept.
    let args = "<A>1</A>".repeat(17);
    assert_eq!(
        parse_soap_response(200, &envelope(&format!("<u:R>{args}</u:R>"))),
        Err(SoapError::Limit("soap arguments"))
    );
    let long = format!("<u:R><A>{}</A></u:R>", "v".repeat(MAX_TEXT + 1));
    assert_eq!(parse_soap_response(200, &envelope(&long)), Err(SoapError::Limit("soap argument value")));
    let cdata = format!("<u:R><A><![CDATA[{}]]></A></u:R>", "v".repeat(MAX_TEXT + 1));
    assert_eq!(parse_soap_response(200, &envelope(&cdata)), Err(SoapError::Limit("soap argument value")));
    let name = format!("<u:R><{n}>1</{n}></u:R>", n = "N".repeat(65));
    assert_eq!(parse_soap_response(200, &envelope(&name)), Err(SoapError::Limit("soap argument name")));
    let element = format!("<u:{n}/>", n = "R".repeat(65));
    assert_eq!(parse_soap_response(200, &envelope(&element)), Err(SoapError::Limit("soap element name")));
    let deep = envelope(&"<a>".repeat(20_000));
    assert_eq!(parse_soap_response(200, &deep), Err(SoapError::Limit("xml depth")));
    let big = [envelope("<u:R/>"), vec![b' '; MAX_HTTP]].concat();
    assert_eq!(parse_soap_response(200, &big), Err(SoapError::Limit("soap body")));
}
