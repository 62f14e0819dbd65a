//! Streaming (`clearskies cat`, `/files/…`) against hostile peers and local users: a whole
//! file that does not hash to its record's SHA-256 ends in an error, an untrusted peer is
//! never told a plaintext hash, and a file address opens one file of one share, for a while.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use clearskies_protocol::message::directory::{Data, Get};
use clearskies_protocol::message::Message;
use clearskies_protocol::Sha256Hash;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::raw_client::channel_with_code;
use crate::util::{noise, stderr, wait_for, Daemon};

fn sha256(data: &[u8]) -> Sha256Hash {
    use sha2::Digest;
    Sha256Hash(sha2::Sha256::digest(data).into())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What a raw peer does with a `directory.get`: the bytes it sends back (any length, any
/// contents), or nothing.
type Answer = Box<dyn Fn(&Get) -> Option<Vec<u8>> + Send>;

/// A peer speaking the protocol by hand (JSON, no gzip) from a thread of its own: it joins
/// with an access code, sends `on_ready` once the session is ready, answers `directory.get`
/// with `answer`, and keeps every byte it receives (after TLS) until stopped.
struct RawPeer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Everything received, as the session read it.
    received: Arc<Mutex<Vec<u8>>>,
    /// The `directory.get`s received.
    gets: Arc<Mutex<Vec<Get>>>,
    ready: Arc<AtomicBool>,
}

impl RawPeer {
    fn start(addr: &str, code: &str, on_ready: Vec<Message>, answer: Answer) -> Self {
        let (stop, received, gets, ready) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(AtomicBool::new(false)),
        );
        let (addr, code) = (addr.to_owned(), code.to_owned());
        let (s2, r2, g2, rd2) = (stop.clone(), received.clone(), gets.clone(), ready.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(run_raw_peer(&addr, &code, on_ready, answer, s2, r2, g2, rd2));
        });
        let peer = RawPeer { stop, thread: Some(thread), received, gets, ready };
        wait_for("the raw peer's session", || peer.ready.load(Ordering::SeqCst).then_some(()));
        peer
    }

    fn received(&self) -> Vec<u8> {
        self.received.lock().unwrap().clone()
    }

    fn gets(&self) -> Vec<Get> {
        self.gets.lock().unwrap().clone()
    }
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_raw_peer(
    addr: &str,
    code: &str,
    on_ready: Vec<Message>,
    answer: Answer,
    stop: Arc<AtomicBool>,
    received: Arc<Mutex<Vec<u8>>>,
    gets: Arc<Mutex<Vec<Get>>>,
    ready: Arc<AtomicBool>,
) {
    use clearskies_protocol::session::{Config, Event, KeyExchange, Role, Session, EXT_DATABASE, EXT_DIRECTORY};
    use std::time::{Duration, Instant};
    let ch = channel_with_code(addr, code).await;
    let mut config = Config::new(Role::Client, clearskies_protocol::PeerId([0x77; 16]));
    config.extensions = vec![EXT_DATABASE.to_owned(), EXT_DIRECTORY.to_owned()];
    config.key_exchange = KeyExchange::Receive;
    let mut s = Session::new(config, Instant::now());
    received.lock().unwrap().extend_from_slice(&ch.leftover);
    s.handle_input(Instant::now(), &ch.leftover);
    let (mut rd, mut wr) = tokio::io::split(ch.stream);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        while let Some(e) = s.poll_event() {
            match e {
                Event::KeysReceived(_) => s.acknowledge_keys().unwrap(),
                Event::Ready => {
                    for m in &on_ready {
                        s.send(m).unwrap();
                    }
                    ready.store(true, Ordering::SeqCst);
                }
                Event::Message(m) => {
                    if let Message::DirectoryGet(g) = &m.message {
                        gets.lock().unwrap().push(g.clone());
                        if let Some(bytes) = answer(g) {
                            s.send_with_attachment(&Data { sha256: g.sha256, range: g.range }.into()).unwrap();
                            for piece in bytes.chunks(1 << 16) {
                                s.send_chunk(piece.to_vec().into()).unwrap();
                            }
                            s.end_attachment(Instant::now()).unwrap();
                        }
                    }
                }
                Event::Closed(_) => return,
                _ => {}
            }
        }
        while let Some(b) = s.poll_transmit() {
            if wr.write_all(&b).await.is_err() {
                return;
            }
        }
        if wr.flush().await.is_err() || stop.load(Ordering::SeqCst) {
            return;
        }
        match tokio::time::timeout(Duration::from_millis(100), rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => {
                received.lock().unwrap().extend_from_slice(&buf[..n]);
                s.handle_input(Instant::now(), &buf[..n]);
            }
            Err(_) => s.handle_timeout(Instant::now()),
        }
    }
}

/// A record (as a read-write peer sends it) for a file `path` of `contents`.
fn record(path: &str, contents: &[u8]) -> Message {
    let peer = clearskies_protocol::PeerId([0x77; 16]);
    clearskies_protocol::message::database::Update {
        key: format!("/{path}"),
        value: serde_json::json!({
            "size": contents.len(),
            "sha256": sha256(contents).to_string(),
            "mtime": "2024-01-01T00:00:00Z",
        }),
        uuid: clearskies_protocol::RecordUuid([0x42; 16]),
        last_updated_by: peer,
        last_updated_rev: 1,
        update_time: "2024-01-01T00:00:00Z".parse().unwrap(),
        vector_clock: [(peer, 1)].into_iter().collect(),
        deleted: false,
    }
    .into()
}

#[test]
fn cat_fails_when_the_only_peer_sends_wrong_bytes() {
    let a = Daemon::start();
    let base = tempfile::tempdir().unwrap();
    let ra = base.path().join("a");
    std::fs::create_dir_all(&ra).unwrap();
    let code = a.share_code(&ra, &[]);
    // 6 MiB: two ranges (`transfer::RANGE`, 4 MiB).
    let real = noise(6 << 20, 3);
    // A read-write peer announces the file. It leaves a's own download of it unanswered (so
    // that a does not count it as refusing the contents), then answers every request for it
    // with the right number of wrong bytes.
    let armed = Arc::new(AtomicBool::new(false));
    let fire = armed.clone();
    let answer: Answer = Box::new(move |g: &Get| {
        let len = g.range.map_or(6 << 20, |[_, len]| len);
        fire.load(Ordering::SeqCst).then(|| vec![0x5a; usize::try_from(len).unwrap()])
    });
    let hostile = RawPeer::start(&a.listen(), &code, vec![record("film.mkv", &real)], answer);
    wait_for("a's download request", || (!hostile.gets().is_empty()).then_some(()));
    armed.store(true, Ordering::SeqCst);
    assert!(!ra.join("film.mkv").exists());

    let o = a.cs.run(&["cat", ra.to_str().unwrap(), "film.mkv"]);
    let err = stderr(&o);
    assert!(!o.status.success(), "cat succeeded with the wrong bytes");
    assert!(err.contains("do not match its SHA-256"), "{err}");
    // Everything but the last piece arrived; the end was withheld.
    assert!(o.stdout.len() < real.len(), "{} bytes", o.stdout.len());
    assert!(!hostile.gets().is_empty());

    // Over HTTP the body ends short of its Content-Length: the client sees a broken transfer.
    let url = a.cs.ok(&["cat", "--url", ra.to_str().unwrap(), "film.mkv"]).trim().to_owned();
    let (head, body) = http(&a.metrics_addr(), &target_of(&url), None);
    assert!(head.starts_with("HTTP/1.1 200") && head.contains(&format!("content-length: {}", real.len())), "{head}");
    assert!(body.len() < real.len(), "the whole body arrived: {} bytes", body.len());
    // The file was never installed from those bytes.
    assert!(!ra.join("film.mkv").exists());
}

#[test]
fn cat_never_sends_a_plaintext_hash_to_an_untrusted_peer() {
    let (a, b) = (Daemon::start(), Daemon::start());
    let base = tempfile::tempdir().unwrap();
    let (ra, rb) = (base.path().join("a"), base.path().join("b"));
    std::fs::create_dir_all(&rb).unwrap();
    let secret = noise(5 << 20, 9);
    std::fs::write(rb.join("secret.bin"), &secret).unwrap();
    let code = b.share_code(&rb, &[]);
    // a keeps the record, not the contents.
    a.cs.ok(&["attach", &code, ra.to_str().unwrap(), "--peer", &b.listen(), "--exclude", "secret.bin"]);
    a.cs.ok(&["wait", ra.to_str().unwrap(), "--timeout", "60"]);
    assert!(!ra.join("secret.bin").exists());
    let untrusted_code = a.share_code(&ra, &["--mode", "untrusted"]);
    // The only trusted peer goes away; an untrusted one is connected.
    b.cs.ok(&["stop"]);
    wait_for("a to see b gone", || (a.peers() == 0).then_some(()));
    let never: Answer = Box::new(|_| None);
    let observer = RawPeer::start(&a.listen(), &untrusted_code, vec![], never);

    let ra_s = ra.to_str().unwrap();
    // The whole file, a range, and a range over HTTP: no trusted peer has them, and the
    // untrusted peer is not asked by their plaintext hash (a knows no ciphertext hash for
    // contents it never had, so it cannot ask the untrusted peer at all).
    let whole = a.cs.run(&["cat", ra_s, "secret.bin"]);
    let range = a.cs.run(&["cat", ra_s, "secret.bin", "--offset", "100", "--length", "1000"]);
    let url = a.cs.ok(&["cat", "--url", ra_s, "secret.bin"]).trim().to_owned();
    let (head, body) = http(&a.metrics_addr(), &target_of(&url), Some("bytes=0-99"));
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");

    let plain = sha256(&secret);
    let received = observer.received();
    assert!(!received.is_empty());
    assert!(!contains(&received, plain.to_string().as_bytes()), "the untrusted peer saw the plaintext hash (hex)");
    assert!(!contains(&received, &plain.0), "the untrusted peer saw the plaintext hash (binary)");
    assert!(observer.gets().iter().all(|g| g.sha256 != plain), "{:?}", observer.gets());
    assert!(!whole.status.success() && stderr(&whole).contains("no connected peer"), "{}", stderr(&whole));
    assert!(!range.status.success() && stderr(&range).contains("trusted peer"), "{}", stderr(&range));
    assert!(!contains(&body, &secret[..100]), "file bytes over HTTP");
}

/// The untrusted side of a backup streams a file to a restored read-write peer as
/// ciphertext: asked by the ciphertext's hash, decrypted, verified.
#[test]
fn cat_streams_from_an_untrusted_peer_as_ciphertext() {
    let (a, u, b) = (Daemon::start(), Daemon::start(), Daemon::start());
    let base = tempfile::tempdir().unwrap();
    let (ra, ru, rb) = (base.path().join("a"), base.path().join("u"), base.path().join("b"));
    std::fs::create_dir_all(&ra).unwrap();
    let film = noise(9 << 20, 5);
    std::fs::write(ra.join("film.mkv"), &film).unwrap();
    let code = a.share_code(&ra, &["--mode", "untrusted"]);
    u.cs.ok(&["attach", &code, ru.to_str().unwrap(), "--peer", &a.listen()]);
    wait_for("the backup", || {
        let s = u.first_share();
        (s["files"].as_u64()? == 1 && s["pending_files"].as_u64()? == 0).then_some(())
    });
    let keys = base.path().join("keys.json");
    std::fs::write(&keys, a.cs.ok(&["keys", "export", ra.to_str().unwrap()])).unwrap();
    a.cs.ok(&["stop"]);
    // b restores from the backup alone, without the film: it streams it.
    let (rb_s, keys_s) = (rb.to_str().unwrap(), keys.to_str().unwrap());
    b.cs.ok(&["attach", "--keys", keys_s, rb_s, "--peer", &u.listen(), "--exclude", "film.mkv"]);
    b.cs.ok(&["wait", rb_s, "--timeout", "60"]);
    let o = b.cs.run(&["cat", rb_s, "film.mkv"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout == film, "the film differs ({} bytes)", o.stdout.len());
    // A range would have to be trusted blindly: not from an untrusted peer.
    let o = b.cs.run(&["cat", rb_s, "film.mkv", "--offset", "5", "--length", "10"]);
    assert!(!o.status.success(), "a range from an untrusted peer");
    assert!(!rb.join("film.mkv").exists());
}

/// The request target of a URL `http://HOST/…`.
fn target_of(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("an http URL");
    format!("/{}", rest.split_once('/').expect("a path").1)
}

/// `GET target` with an optional `Range`: (head, body as received, however short).
fn http(addr: &str, target: &str, range: Option<&str>) -> (String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let range = range.map(|r| format!("Range: {r}\r\n")).unwrap_or_default();
    write!(s, "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{range}\r\n").unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    // Header names in lower case (HTTP's are case-insensitive).
    let head = String::from_utf8_lossy(&all[..split]).into_owned();
    let head = head.lines().enumerate().map(|(i, l)| if i == 0 { l.to_owned() } else { l.to_ascii_lowercase() });
    (head.collect::<Vec<_>>().join("\r\n"), all[split + 4..].to_vec())
}

#[test]
fn a_file_address_opens_that_file_only_and_expires() {
    let d = Daemon::start();
    let base = tempfile::tempdir().unwrap();
    let (one, two) = (base.path().join("one"), base.path().join("two"));
    for (dir, name) in [(&one, "a.txt"), (&one, "b.txt"), (&two, "a.txt")] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), format!("{} {name}", dir.display())).unwrap();
    }
    d.share_code(&one, &[]);
    d.share_code(&two, &[]);
    let shares = d.cs.json(&["list", "--json"])["shares"].as_array().unwrap().clone();
    let id_of = |dir: &std::path::Path| {
        let s = shares.iter().find(|s| s["path"].as_str() == dir.to_str()).unwrap();
        s["id"].as_str().unwrap().to_owned()
    };
    let (id_one, id_two) = (id_of(&one), id_of(&two));
    wait_for("both shares scanned", || {
        let l = d.cs.json(&["list", "--json"]);
        let files: u64 = l["shares"].as_array()?.iter().filter_map(|s| s["files"].as_u64()).sum();
        (files == 3).then_some(())
    });
    let addr = d.metrics_addr();
    let url = d.cs.ok(&["cat", "--url", one.to_str().unwrap(), "a.txt"]).trim().to_owned();
    let target = target_of(&url);
    let (head, body) = http(&addr, &target, None);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, format!("{} a.txt", one.display()).into_bytes());
    let token = target.strip_prefix("/files/").unwrap().split('/').next().unwrap().to_owned();
    // The same token for another file of the share, or a file of another share: refused.
    for other in [format!("/files/{token}/{id_one}/b.txt"), format!("/files/{token}/{id_two}/a.txt")] {
        let (head, body) = http(&addr, &other, None);
        assert!(head.starts_with("HTTP/1.1 403") || head.starts_with("HTTP/1.1 404"), "{other}: {head}");
        assert!(!String::from_utf8_lossy(&body).contains(".txt"), "{other}: {}", String::from_utf8_lossy(&body));
    }
    // Tampered: another expiry, a changed MAC, no token.
    let (expiry, mac) = token.split_once('-').expect("EXPIRY-MAC");
    let later = expiry.parse::<u64>().unwrap() + 86_400;
    let mut flipped = mac.to_owned().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    for bad in [format!("{later}-{mac}"), format!("{expiry}-{}", String::from_utf8(flipped).unwrap()), "x".into()] {
        let (head, _) = http(&addr, &format!("/files/{bad}/{id_one}/a.txt"), None);
        assert!(head.starts_with("HTTP/1.1 403"), "{bad}: {head}");
    }
    // An address that expires is refused once it has.
    let short = d.cs.ok(&["cat", "--url", one.to_str().unwrap(), "a.txt", "--expires", "1s"]).trim().to_owned();
    let body = wait_for("the short address to expire", || {
        let (head, body) = http(&addr, &target_of(&short), None);
        head.starts_with("HTTP/1.1 403").then_some(body)
    });
    assert!(String::from_utf8_lossy(&body).contains("expired"), "{}", String::from_utf8_lossy(&body));
    let o = d.cs.run(&["cat", "--url", one.to_str().unwrap(), "a.txt", "--expires", "never"]);
    assert!(!o.status.success(), "an address that never expires");
    // The long one still works.
    assert!(http(&addr, &target, None).0.starts_with("HTTP/1.1 200"));
}

/// The documented way to play a file without its address on a command line: the address
/// goes through a pipe (`mpv --playlist=<(clearskies cat --url …)` in bash), here read by
/// curl from its config on stdin (`curl -K -`).
#[test]
fn a_file_address_can_be_used_without_a_command_line() {
    if std::process::Command::new("curl").arg("--version").output().is_err() {
        eprintln!("curl is not installed; skipped");
        return;
    }
    let d = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("song.mp3"), b"la la la").unwrap();
    d.share_code(dir.path(), &[]);
    wait_for("the scan", || (d.first_share()["files"].as_u64()? == 1).then_some(()));
    let url = d.cs.ok(&["cat", "--url", dir.path().to_str().unwrap(), "song.mp3"]).trim().to_owned();
    let mut curl = std::process::Command::new("curl")
        .args(["-fsS", "-K", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    curl.stdin.take().unwrap().write_all(format!("url = \"{url}\"\n").as_bytes()).unwrap();
    let out = curl.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"la la la");
}
