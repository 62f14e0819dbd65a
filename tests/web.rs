//! The web interface's server side over real HTTP: logins (one-time links, the password),
//! sessions, CSRF, the `Host` check, the control commands through `/api/request`, file
//! pages, ranges, thumbnails and the live view. (The pages themselves are tested in a real
//! browser: tests/browser/.)

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use serde_json::{json, Value};

use crate::util::{wait_for, Daemon};

/// One HTTP answer.
struct Answer {
    status: u16,
    /// Header names in lower case.
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// `METHOD path` on `addr` with `headers` and `body`, on a fresh connection.
fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&all[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = all[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = unchunk(&body);
    }
    Answer { status, headers, body }
}

fn unchunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(std::str::from_utf8(&b[..end]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[end + 2..end + 2 + n]);
        b = &b[end + 2 + n + 2..];
    }
    out
}

/// A logged-in browser: its cookie and CSRF token.
struct Browser {
    addr: String,
    cookie: String,
    csrf: String,
}

impl Browser {
    /// Logs in with a link from `clearskies open --print`.
    fn log_in(d: &Daemon) -> Browser {
        let addr = d.metrics_addr();
        let link = d.cs.ok(&["open", "--print"]).trim().to_owned();
        let target = link.split_once(&addr).expect("the link names the metrics address").1.to_owned();
        let r = http(&addr, "GET", &target, &[], b"");
        assert_eq!(r.status, 303, "{}", r.text());
        let cookie = r.header("set-cookie").to_owned();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
        let cookie = cookie.split(';').next().unwrap().to_owned();
        let session = http(&addr, "GET", "/api/session", &[("Cookie", &cookie)], b"");
        assert_eq!(session.status, 200, "{}", session.text());
        let csrf = session.json()["csrf"].as_str().unwrap().to_owned();
        Browser { addr, cookie, csrf }
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut all = vec![("Cookie", self.cookie.as_str())];
        all.extend_from_slice(headers);
        http(&self.addr, "GET", path, &all, b"")
    }

    /// `POST /api/request` with the CSRF token.
    fn request(&self, command: &Value) -> Answer {
        let h = [("Cookie", self.cookie.as_str()), ("X-CSRF-Token", self.csrf.as_str())];
        http(&self.addr, "POST", "/api/request", &h, command.to_string().as_bytes())
    }
}

fn share(d: &Daemon, dir: &Path) -> String {
    d.share_code(dir, &[]);
    d.first_share()["id"].as_str().unwrap().to_owned()
}

#[test]
fn nothing_is_served_without_a_session_and_a_login_link_works_once() {
    let d = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret.txt"), b"the secret").unwrap();
    let id = share(&d, dir.path());
    let addr = d.metrics_addr();
    // No session: the login page, never data.
    let page = http(&addr, "GET", "/", &[], b"");
    assert_eq!(page.status, 401);
    assert!(page.text().contains("clearskies open") && page.header("content-type").starts_with("text/html"));
    for (method, path) in [
        ("GET", "/api/session"),
        ("POST", "/api/request"),
        ("GET", "/api/events"),
        ("GET", &format!("/s/{id}/raw/secret.txt") as &str),
        ("GET", &format!("/s/{id}/thumb/secret.txt")),
    ] {
        let r = http(&addr, method, path, &[], br#"{"type":"list_shares"}"#);
        assert_eq!(r.status, 401, "{method} {path}: {}", r.text());
        assert!(!r.text().contains("the secret") && !r.text().contains(dir.path().to_str().unwrap()));
    }
    let link = d.cs.ok(&["open", "--print"]).trim().to_owned();
    let target = link.split_once(&addr).unwrap().1.to_owned();
    assert_eq!(http(&addr, "GET", &target, &[], b"").status, 303);
    let again = http(&addr, "GET", &target, &[], b"");
    assert_eq!(again.status, 403);
    assert!(again.text().contains("used already"), "{}", again.text());
    // A forged or damaged link.
    let forged = format!("{}0", &target[..target.len() - 1]);
    assert_eq!(http(&addr, "GET", &forged, &[], b"").status, 403);
    assert_eq!(http(&addr, "GET", "/login?token=1-2-3", &[], b"").status, 403);

    // Logged in: the interface, with its security headers.
    let b = Browser::log_in(&d);
    // A made-up session cookie of the same name opens nothing.
    let forged = format!("{}={}", b.cookie.split_once('=').unwrap().0, "ab".repeat(32));
    assert_eq!(http(&addr, "GET", "/api/session", &[("Cookie", &forged)], b"").status, 401);
    let index = b.get("/", &[]);
    assert_eq!(index.status, 200);
    let csp = index.header("content-security-policy");
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(index.header("x-frame-options"), "DENY");
    assert_eq!(index.header("x-content-type-options"), "nosniff");
    // The page names its files under this build's version: those are cached for good.
    let text = index.text();
    let at = text.find("/assets/").unwrap() + "/assets/".len();
    let version = text[at..].split('/').next().unwrap().to_owned();
    assert!(version.len() == 16 && version.bytes().all(|c| c.is_ascii_hexdigit()), "{text}");
    let js = http(&addr, "GET", &format!("/assets/{version}/app.js"), &[], b"");
    assert!(js.status == 200 && js.header("cache-control").contains("immutable"), "{:?}", js.headers);
    let old = http(&addr, "GET", "/assets/0000000000000000/app.js", &[], b"");
    assert!(old.status == 200 && old.header("cache-control") == "no-cache", "{:?}", old.headers);
    assert_eq!(http(&addr, "GET", "/assets/app.js", &[], b"").header("cache-control"), "no-cache");
    // Another host name (DNS rebinding), even with the cookie: refused.
    assert_eq!(b.get("/api/session", &[("Host", "evil.example")]).status, 403);
    // Log out: the cookie opens nothing more.
    let h = [("Cookie", b.cookie.as_str()), ("X-CSRF-Token", b.csrf.as_str())];
    assert_eq!(http(&addr, "POST", "/logout", &h, b"").status, 303);
    assert_eq!(b.get("/api/session", &[]).status, 401);
}

#[test]
fn requests_need_the_csrf_token_and_bad_input_changes_nothing() {
    let d = Daemon::start();
    let shared = tempfile::tempdir().unwrap();
    share(&d, shared.path());
    let other = tempfile::tempdir().unwrap();
    let b = Browser::log_in(&d);
    let create = json!({"type": "create_share", "path": other.path().to_str().unwrap()});
    let shares = |b: &Browser| b.request(&json!({"type": "list_shares"})).json()["shares"].as_array().unwrap().len();
    // Without the token, with a wrong one, or from another site's page: refused.
    let body = create.to_string();
    for headers in [
        vec![("Cookie", b.cookie.as_str())],
        vec![("Cookie", b.cookie.as_str()), ("X-CSRF-Token", "0000")],
        vec![("Cookie", b.cookie.as_str()), ("X-CSRF-Token", b.csrf.as_str()), ("Origin", "http://evil.example")],
    ] {
        let r = http(&b.addr, "POST", "/api/request", &headers, body.as_bytes());
        assert_eq!(r.status, 403, "{}", r.text());
        assert_eq!(r.json()["error"], "csrf");
    }
    assert_eq!(shares(&b), 1, "a refused request changed nothing");
    // Bad input: a clear error, nothing changed.
    let r = http(&b.addr, "POST", "/api/request", &[("Cookie", &b.cookie), ("X-CSRF-Token", &b.csrf)], b"{not json");
    assert_eq!((r.status, r.json()["error"].as_str()), (400, Some("bad_json")));
    let r = b.request(&json!({"type": "create_share", "path": "/no/such/dir"}));
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.json()["message"].as_str().unwrap().contains("/no/such/dir"), "{}", r.text());
    let r = b.request(&json!({"type": "no_such_command"}));
    assert_eq!((r.status, r.json()["error"].as_str()), (400, Some("not_understood")));
    let r =
        b.request(&json!({"type": "create_access_code", "path": shared.path().to_str().unwrap(), "mode": "sideways"}));
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(shares(&b), 1);
    // What the web must not do.
    for t in ["stop", "read_file", "web_login", "set_web_password"] {
        assert_eq!(b.request(&json!({"type": t})).status, 403, "{t}");
    }
    assert!(d.cs.run(&["status"]).status.success(), "the daemon still runs");
    // With the token: done, and the code comes with its QR code.
    assert_eq!(b.request(&create).status, 200);
    assert_eq!(shares(&b), 2);
    let code = b.request(&json!({"type": "create_access_code", "path": other.path().to_str().unwrap()}));
    let code = code.json();
    assert!(code["access_code"].as_str().unwrap().starts_with("SYNC"), "{code}");
    assert!(code["qr_svg"].as_str().unwrap().starts_with("<?xml") || code["qr_svg"].as_str().unwrap().contains("<svg"));
}

#[test]
fn files_are_listed_by_page_and_served_with_ranges() {
    let d = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("many")).unwrap();
    for i in 0..450 {
        std::fs::write(dir.path().join(format!("many/f{i:03}.txt")), format!("file number {i}")).unwrap();
    }
    std::fs::write(dir.path().join("page.html"), b"<script>alert(1)</script>").unwrap();
    let id = share(&d, dir.path());
    let root = dir.path().to_str().unwrap();
    let b = Browser::log_in(&d);
    let list = |after: Option<&str>| {
        let mut c = json!({"type": "list_files", "path": root, "dir": "many"});
        if let Some(a) = after {
            c["after"] = json!(a);
        }
        b.request(&c).json()
    };
    let first = wait_for("the share indexed", || {
        let l = list(None);
        (l["entries"].as_array().map_or(0, Vec::len) == 200).then_some(l)
    });
    let mut names: Vec<String> = Vec::new();
    let mut page = first;
    loop {
        for e in page["entries"].as_array().unwrap() {
            assert!(e["here"].as_bool().unwrap() && !e["dir"].as_bool().unwrap(), "{e}");
            names.push(e["name"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => page = list(Some(next)),
            None => break,
        }
    }
    let want: Vec<String> = (0..450).map(|i| format!("f{i:03}.txt")).collect();
    assert_eq!(names, want);
    let top = b.request(&json!({"type": "list_files", "path": root}));
    assert!(top.text().contains("\"many\"") && top.text().contains("page.html"), "{}", top.text());
    // Hostile pages and paths.
    let r = b.request(&json!({"type": "list_files", "path": root, "dir": "../.."}));
    assert_eq!(r.status, 422, "{}", r.text());
    let r = b.request(&json!({"type": "list_files", "path": root, "after": "x".repeat(60_000), "limit": 0}));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = b.request(&json!({"type": "list_files", "path": root, "after": "x".repeat(100_000)}));
    assert_eq!(r.status, 413, "{}", r.text());

    // Ranges, HEAD, If-Range.
    let raw = format!("/s/{id}/raw/many/f123.txt");
    let whole = b.get(&raw, &[]);
    assert_eq!((whole.status, whole.text().as_str()), (200, "file number 123"));
    let etag = whole.header("etag").to_owned();
    let part = b.get(&raw, &[("Range", "bytes=5-10")]);
    assert_eq!((part.status, part.text().as_str()), (206, "number"));
    assert_eq!(part.header("content-range"), "bytes 5-10/15");
    let stale = b.get(&raw, &[("Range", "bytes=5-10"), ("If-Range", "\"another\"")]);
    assert_eq!(stale.status, 200);
    let fresh = b.get(&raw, &[("Range", "bytes=5-10"), ("If-Range", &etag)]);
    assert_eq!(fresh.status, 206);
    let head = http(&b.addr, "HEAD", &raw, &[("Cookie", &b.cookie)], b"");
    assert_eq!((head.status, head.header("content-length"), head.body.len()), (200, "15", 0));
    let down = b.get(&format!("{raw}?download=1"), &[]);
    assert!(down.header("content-disposition").starts_with("attachment"), "{:?}", down.headers);
    // A shared HTML file runs in a sandbox, never in the interface's origin.
    let html = b.get(&format!("/s/{id}/raw/page.html"), &[]);
    assert!(html.header("content-security-policy").starts_with("sandbox"), "{:?}", html.headers);
    for bad in ["/raw/../../etc/passwd", "/raw/%2e%2e/%2e%2e/etc/passwd", "/raw/many%2F..%2F..%2Fx", "/raw/nothing.txt"]
    {
        let r = b.get(&format!("/s/{id}{bad}"), &[]);
        assert!(r.status == 404 || r.status == 400, "{bad}: {} {}", r.status, r.text());
    }
    assert_eq!(b.get(&format!("/s/{}/raw/many/f001.txt", "ab".repeat(32)), &[]).status, 404);
}

#[test]
fn thumbnails_are_made_cached_and_bounded() {
    let d = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let img = image::RgbImage::from_fn(1200, 800, |x, y| image::Rgb([x.to_le_bytes()[0], y.to_le_bytes()[0], 128]));
    img.save(dir.path().join("photo.jpg")).unwrap();
    std::fs::write(dir.path().join("broken.jpg"), b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
    let id = share(&d, dir.path());
    let b = Browser::log_in(&d);
    let thumb = wait_for("the photo indexed", || {
        let r = b.get(&format!("/s/{id}/thumb/photo.jpg"), &[]);
        (r.status == 200 && r.header("content-type") == "image/jpeg").then_some(r)
    });
    let small = image::load_from_memory(&thumb.body).unwrap();
    assert_eq!((small.width(), small.height()), (256, 171));
    let large = b.get(&format!("/s/{id}/thumb/photo.jpg?size=large"), &[]);
    assert_eq!(image::load_from_memory(&large.body).unwrap().width(), 1200, "never upscaled");
    // Cached: the browser's copy is current.
    let etag = thumb.header("etag").to_owned();
    assert_eq!(b.get(&format!("/s/{id}/thumb/photo.jpg"), &[("If-None-Match", &etag)]).status, 304);
    assert!(std::fs::read_dir(d.cs.home().join("thumbnails")).unwrap().count() > 0);
    // Not a picture: a placeholder.
    let broken = b.get(&format!("/s/{id}/thumb/broken.jpg"), &[]);
    assert_eq!((broken.status, broken.header("content-type")), (200, "image/svg+xml"));
}

#[test]
fn the_live_view_streams_the_shares_and_the_log_is_readable() {
    let d = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let id = share(&d, dir.path());
    let b = Browser::log_in(&d);
    let mut s = TcpStream::connect(&b.addr).unwrap();
    write!(s, "GET /api/events HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\n\r\n", b.addr, b.cookie).unwrap();
    s.set_read_timeout(Some(crate::util::DEADLINE)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(&id) {
        let n = s.read(&mut buf).expect("events within the deadline");
        assert!(n > 0, "the stream ended: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).to_string();
    assert!(text.contains("text/event-stream") && text.contains("event: shares"), "{text}");
    let log = b.request(&json!({"type": "recent_log", "lines": 5}));
    assert_eq!(log.status, 200, "{}", log.text());
    let lines = log.json()["lines"].as_array().unwrap().len();
    assert!((1..=5).contains(&lines), "{}", log.text());
    assert!(!log.text().contains("token="), "no login link in the log");
}

#[test]
fn a_password_opens_longer_sessions_until_it_changes() {
    let d = Daemon::start();
    let addr = d.metrics_addr();
    let set = |p: &str| {
        let mut c = d.cs.command(&["web-password"]);
        c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        child.stdin.take().unwrap().write_all(format!("{p}\n").as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let short = set("short");
    assert!(!short.status.success() && String::from_utf8_lossy(&short.stderr).contains("10 to"), "{short:?}");
    let form = |p: &str, origin: Option<&str>| {
        let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
        if let Some(o) = origin {
            h.push(("Origin", o));
        }
        http(&addr, "POST", "/login", &h, format!("password={p}").as_bytes())
    };
    let none = form("whatever-it-is", None);
    assert!(none.status == 401 && none.text().contains("no password is set"), "{}", none.text());
    assert!(set("correct horse battery").status.success());
    let file = d.cs.home().join("web-password");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&file).unwrap().starts_with("$argon2id$"));
    let wrong = form("correct horse batterx", None);
    assert!(wrong.status == 401 && wrong.text().contains("wrong password"), "{}", wrong.text());
    assert_eq!(form("correct+horse+battery", Some("http://evil.example")).status, 403);
    let right = form("correct+horse+battery", Some(&format!("http://{addr}")));
    assert_eq!(right.status, 303, "{}", right.text());
    assert!(right.header("set-cookie").contains("Max-Age=2592000"), "{:?}", right.headers);
    let cookie = right.header("set-cookie").split(';').next().unwrap().to_owned();
    assert_eq!(http(&addr, "GET", "/api/session", &[("Cookie", &cookie)], b"").status, 200);
    // A new password ends the sessions opened before it (times in whole seconds).
    let secs = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let logged_in = secs();
    wait_for("the next second", || (secs() > logged_in).then_some(()));
    assert!(set("another good password").status.success());
    assert_eq!(http(&addr, "GET", "/api/session", &[("Cookie", &cookie)], b"").status, 401);
    // Guessing is limited.
    let statuses: Vec<u16> = (0..12).map(|_| form("guess-guess-guess", None).status).collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    // Removed: only links open sessions.
    assert!(d.cs.run(&["web-password", "--remove"]).status.success());
    assert!(!file.exists());
}

/// An HTTPS request through Python's `ssl` (the certificate is self-signed): (status,
/// `Set-Cookie`, body, the certificate's SHA-256 fingerprint).
fn https(addr: &str, method: &str, path: &str, body: &str) -> (u16, String, String, String) {
    let script = r#"
import hashlib, http.client, json, ssl, sys
addr, method, path, body = sys.argv[1:5]
host, port = addr.rsplit(':', 1)
c = http.client.HTTPSConnection(host, int(port), context=ssl._create_unverified_context(), timeout=30)
headers = {'Content-Type': 'application/x-www-form-urlencoded', 'Origin': 'https://' + addr}
c.request(method, path, body=body or None, headers=headers)
r = c.getresponse()
cert = c.sock.getpeercert(binary_form=True)
fp = ':'.join('%02X' % b for b in hashlib.sha256(cert).digest())
print(json.dumps([r.status, r.getheader('Set-Cookie') or '', r.read().decode('utf-8', 'replace'), fp]))
"#;
    let out = std::process::Command::new("python3").args(["-c", script, addr, method, path, body]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = |i: usize| v[i].as_str().unwrap().to_owned();
    (u16::try_from(v[0].as_u64().unwrap()).unwrap(), text(1), text(2), text(3))
}

#[test]
fn https_serves_the_interface_with_a_kept_self_signed_certificate() {
    let d = Daemon::start_with(&[("CLEARSKIES_WEB_HTTPS_ADDRESS", "127.0.0.1:0")]);
    let addr = d.cs.json(&["status", "--json"])["web_https"].as_str().expect("HTTPS is served").to_owned();
    let (status, _, body, fingerprint) = https(&addr, "GET", "/", "");
    assert!(status == 401 && body.contains("clearskies open"), "{status} {body}");
    // A stranger on the network: no password set, so nothing opens; a login link (which
    // reads the worker's secret) does not either, over HTTPS.
    let link = d.cs.ok(&["open", "--print"]).trim().to_owned();
    let target = format!("/login?{}", link.split_once('?').unwrap().1);
    let (status, cookie, body, _) = https(&addr, "GET", &target, "");
    assert!(status == 403 && cookie.is_empty() && body.contains("this computer only"), "{status} {body}");
    let (status, cookie, _, _) = https(&addr, "POST", "/login", "password=anything+at+all");
    assert!(status == 401 && cookie.is_empty(), "{status}");
    let (status, _, body, _) = https(&addr, "GET", "/api/session", "");
    assert!(status == 401 && !body.contains("csrf"), "{body}");
    // The fingerprint is in the log, for the user to compare with the browser's.
    assert!(d.cs.log().contains(&fingerprint), "{fingerprint} not in the log");
    let mut set = d.cs.command(&["web-password"]);
    set.stdin(std::process::Stdio::piped());
    let mut child = set.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"a long enough password\n").unwrap();
    assert!(child.wait().unwrap().success());
    let (status, cookie, body, _) = https(&addr, "POST", "/login", "password=a+long+enough+password");
    assert_eq!(status, 303, "{body}");
    assert!(cookie.contains("Secure") && cookie.contains("HttpOnly"), "{cookie}");
    // The same certificate after a restart (a browser's exception for it lasts).
    d.cs.ok(&["stop"]);
    d.cs.ok(&["start"]);
    let addr = d.cs.json(&["status", "--json"])["web_https"].as_str().unwrap().to_owned();
    assert_eq!(https(&addr, "GET", "/login", "").3, fingerprint);
}

/// Another user of this computer holds a fresh login link (read off a command line, say):
/// it opens nothing for them, and stays good for the owner. (Needs root, to act as another
/// user; CI runs as root.)
#[test]
fn another_user_of_this_computer_is_refused_even_with_a_login_link() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    let d = Daemon::start();
    let addr = d.metrics_addr();
    let link = d.cs.ok(&["open", "--print"]).trim().to_owned();
    let script = "import sys, urllib.request, urllib.error\ntry:\n    r = urllib.request.urlopen(sys.argv[1])\n    print(r.status)\nexcept urllib.error.HTTPError as e:\n    print(e.code, e.read().decode())";
    let other = std::process::Command::new("setpriv")
        // Debian's python3 (one under root's home is not readable by another user).
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script, &link])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&other.stdout);
    let why = String::from_utf8_lossy(&other.stderr);
    assert!(said.starts_with("403") && said.contains("belongs to the user who runs the daemon"), "{said}{why}");
    let target = link.split_once(&addr).unwrap().1.to_owned();
    assert_eq!(http(&addr, "GET", &target, &[], b"").status, 303, "the owner's link still works");
}
