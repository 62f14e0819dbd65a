//! A hostile untrusted peer (encrypted backup): whatever it asks, with the untrusted key it
//! holds, it never receives a byte of plaintext — no contents, no file or directory name —
//! and a request for something it may not have is answered the same way whether that thing
//! exists or not.

use std::time::Duration;

use clearskies_protocol::message::{database, directory, rsync, untrusted, Message};
use clearskies_protocol::session::{
    Event, Session, EXT_DATABASE, EXT_DIRECTORY, EXT_GZIP, EXT_MSGPACK, EXT_RSYNC, EXT_RSYNC_REFINE,
};
use clearskies_protocol::{Sha256Hash, UntrustedFileId};

use crate::raw_client::{channel_with_code, client_config, RawClient, Read};
use crate::util::{wait_for, Daemon};

/// In every file's contents, and in every file and directory name.
const MARKER: &[u8] = b"QZXJV";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn sha256(data: &[u8]) -> Sha256Hash {
    use sha2::Digest;
    Sha256Hash(sha2::Sha256::digest(data).into())
}

/// What the probing client saw.
#[derive(Default)]
struct Seen {
    /// Every byte read from the TLS stream (compressed if `gzip` is in use).
    raw: Vec<u8>,
    /// Every message (decoded) and its body as it arrived (decompressed).
    messages: Vec<(Message, Vec<u8>)>,
    /// Every attachment chunk, after the message it belongs to (its index in `messages`).
    chunks: Vec<(usize, Vec<u8>)>,
    /// The extensions the handshake agreed on.
    extensions: Vec<String>,
    /// The daemon closed the connection at the end (after the last step).
    closed: bool,
    /// The daemon closed the connection before the last step.
    closed_early: bool,
}

/// One thing the client sends.
enum Send {
    Plain(Message),
    /// A message with an attachment (sent whole, in one chunk if not empty).
    Attached(Message, Vec<u8>),
    /// A JSON body sent signed (`s` frame) with this base64 signature.
    Signed(Message, String),
}

/// A step: what to send once the previous step is done, and when this one is done (given
/// everything seen so far; `None`: when the daemon closes the connection).
type Done = Box<dyn Fn(&Seen) -> bool>;
type Step = Box<dyn FnOnce(&Seen) -> (Vec<Send>, Option<Done>)>;

/// Joins with the untrusted `code` as a raw client offering `extensions`, then runs `steps`
/// in turn.
fn probe(addr: &str, code: &str, extensions: &[&str], steps: Vec<Step>) -> Seen {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let ch = channel_with_code(addr, code).await;
        let mut seen = Seen::default();
        seen.raw.extend_from_slice(&ch.leftover);
        let mut c = RawClient::new(ch, client_config(0x77, extensions, true), Duration::from_secs(120));
        let mut steps = steps.into_iter();
        let mut done: Option<Option<Done>> = None;
        loop {
            while let Some(e) = c.session.poll_event() {
                match e {
                    Event::Connected(hs) => seen.extensions = hs.extensions.clone(),
                    Event::KeysReceived(_) => c.session.acknowledge_keys().unwrap(),
                    Event::Message(m) => seen.messages.push((m.message, m.body.to_vec())),
                    Event::AttachmentChunk(data) => seen.chunks.push((seen.messages.len() - 1, data.to_vec())),
                    _ => {}
                }
            }
            // The next step, once the session is ready and the current step is done.
            while c.session.is_ready() && done.as_ref().is_none_or(|d| d.as_ref().is_some_and(|d| d(&seen))) {
                let Some(step) = steps.next() else { return seen };
                let (sends, until) = step(&seen);
                for send in sends {
                    send_one(&mut c.session, send);
                }
                done = Some(until);
            }
            match c.read().await {
                Read::Data(bytes) => seen.raw.extend_from_slice(bytes),
                Read::Closed => {
                    seen.closed_early = !matches!(done, Some(None)) || steps.next().is_some();
                    seen.closed = !seen.closed_early;
                    return seen;
                }
                Read::TimedOut => panic!("the daemon neither answered enough nor closed the connection"),
            }
        }
    })
}

fn send_one(s: &mut Session, send: Send) {
    match send {
        Send::Plain(m) => s.send(&m).unwrap(),
        Send::Attached(m, bytes) => {
            s.send_with_attachment(&m).unwrap();
            if !bytes.is_empty() {
                s.send_chunk(bytes.into()).unwrap();
            }
            s.end_attachment(std::time::Instant::now()).unwrap();
        }
        Send::Signed(m, sig) => s.send_signed(&m.encode(), sig.as_bytes(), false).unwrap(),
    }
}

/// The answers (not_present, get_error, data) naming `sha`, with the name replaced by zeros
/// (so answers for two names compare), and the bytes attached to them.
fn answers_for(seen: &Seen, sha: &Sha256Hash) -> Vec<(Message, Vec<u8>)> {
    let zero = Sha256Hash([0; 32]);
    seen.messages
        .iter()
        .enumerate()
        .filter_map(|(i, (m, _))| {
            let m = match m {
                Message::DirectoryNotPresent(n) if n.sha256 == *sha => {
                    Message::from(directory::NotPresent { sha256: zero })
                }
                Message::DirectoryGetError(e) if e.sha256 == *sha => {
                    Message::from(directory::GetError { sha256: zero, message: e.message.clone() })
                }
                Message::DirectoryData(d) if d.sha256 == *sha => {
                    Message::from(directory::Data { sha256: zero, range: d.range })
                }
                Message::RsyncPatch(p) if p.sha256 == Some(*sha) => m.clone(),
                _ => return None,
            };
            let data: Vec<u8> = seen.chunks.iter().filter(|(at, _)| *at == i).flat_map(|(_, c)| c.clone()).collect();
            Some((m, data))
        })
        .collect()
}

fn updates_done(seen: &Seen) -> usize {
    seen.messages.iter().filter(|(m, _)| matches!(m, Message::DatabaseUpdatesDone(_))).count()
}

/// Answers (of any kind) naming `sha`.
fn answered(seen: &Seen, sha: &Sha256Hash) -> usize {
    answers_for(seen, sha).len()
}

fn decode(json: &str) -> Message {
    Message::decode(json.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e}"))
}

/// What the probe names: the secret file, its plaintext hash, hashes of nothing, and rsync
/// signatures of the file.
#[derive(Clone)]
struct Targets {
    secret_path: &'static str,
    plain: Sha256Hash,
    random: Sha256Hash,
    random2: Sha256Hash,
    /// A signature of half the file.
    real_signature: Vec<u8>,
    /// A signature of nothing (its header only: every byte of the delta is then literal).
    empty_signature: Vec<u8>,
}

impl Targets {
    fn new(secret: &[u8]) -> Self {
        let params = clearskies_protocol::rdiff::SigParams::for_size(secret.len() as u64);
        let (mut real_signature, mut empty_signature) = (Vec::new(), Vec::new());
        clearskies_protocol::rdiff::signature(&secret[..secret.len() / 2], params, &mut real_signature).unwrap();
        clearskies_protocol::rdiff::signature(&[][..], params, &mut empty_signature).unwrap();
        Targets {
            secret_path: "/QZXJV-dir/QZXJV-secret.txt",
            plain: sha256(secret),
            random: Sha256Hash([0x5a; 32]),
            random2: Sha256Hash([0xa5; 32]),
            real_signature,
            empty_signature,
        }
    }
}

/// Everything a peer can send, against a daemon that holds files with `MARKER` in their
/// contents and names: one run with the given extensions offered.
fn every_request(a: &Daemon, code: &str, root: &std::path::Path, extensions: &[&str]) -> Seen {
    let secret = std::fs::read(root.join("QZXJV-dir/QZXJV-secret.txt")).unwrap();
    let t = Targets::new(&secret);
    let seen = probe(&a.listen(), code, extensions, steps(t.clone()));
    assert_nothing_given_away(&seen, root, extensions, &secret, &t);
    seen
}

/// The probe's steps: the index, every request, a round trip more, an unsigned record.
fn steps(t: Targets) -> Vec<Step> {
    let (plain, random2) = (t.plain, t.random2);
    vec![
        // 1. Everything the index holds.
        Box::new(|_| {
            let get = database::GetUpdates::default();
            (vec![Send::Plain(get.into())], Some(Box::new(|s: &Seen| updates_done(s) >= 1) as Done))
        }),
        // 2. Every request, by plaintext names and by ciphertext ones.
        Box::new(move |seen: &Seen| every_get(seen, &t)),
        // 3. A round trip more (what was sent before is answered by now, if ever).
        Box::new(move |_| {
            let get = directory::Get { sha256: random2, range: None };
            (vec![Send::Plain(get.into())], Some(Box::new(move |s: &Seen| answered(s, &random2) >= 1) as Done))
        }),
        // 4. A record of its own (it cannot sign one): the daemon closes the connection.
        Box::new(move |_| {
            let update = decode(&format!(
                r#"{{"type":"database.update","key":"/QZXJV-new","value":{{"size":1,"sha256":"{plain}"}},
                   "uuid":"00000000000000000000000000000001","last_updated_by":"77777777777777777777777777777777",
                   "last_updated_rev":1,"update_time":"2020-01-01T00:00:00Z","vector_clock":{{}},"deleted":false}}"#
            ));
            (vec![Send::Plain(update)], None)
        }),
    ]
}

/// Step 2: every request, by plaintext names and by ciphertext ones (taken from the
/// encrypted records `seen`); done when every get is answered and the second catch-up is
/// over.
fn every_get(seen: &Seen, t: &Targets) -> (Vec<Send>, Option<Done>) {
    let (secret_path, plain, random) = (t.secret_path, t.plain, t.random);
    let (real_signature, empty_signature) = (&t.real_signature, &t.empty_signature);
    // A ciphertext hash and a file ID, from the encrypted records.
    let (mut cipher, mut file_id) = (None, None);
    for (m, _) in &seen.messages {
        if let Message::DatabaseUpdate(u) = m {
            if let Some(c) = u.value.get("sha256").and_then(|v| v.as_str()) {
                cipher = Some(c.parse::<Sha256Hash>().unwrap());
                file_id = Some(u.key.trim_start_matches('/').to_owned());
            }
        }
    }
    let cipher = cipher.expect("an encrypted file record");
    let file_id: UntrustedFileId = file_id.unwrap().parse().unwrap();
    let get = |sha256, range| Send::Plain(directory::Get { sha256, range }.into());
    let sig = |path: &str, sha256| Message::from(rsync::Signature { path: path.to_owned(), sha256, refine: None });
    let refined = |path: &str, sha256, step| {
        Message::from(rsync::Signature { path: path.to_owned(), sha256: Some(sha256), refine: Some(step) })
    };
    let verify = untrusted::Verify { file_id, prefix: Sha256Hash([1; 32]) };
    let sends = vec![
        get(plain, None),
        get(random, None),
        get(plain, Some([0, 16])),
        get(random, Some([0, 16])),
        get(cipher, None),
        Send::Attached(sig(secret_path, None), empty_signature.clone()),
        Send::Attached(sig("/QZXJV-dir/missing.txt", None), empty_signature.clone()),
        Send::Attached(sig(secret_path, Some(plain)), empty_signature.clone()),
        Send::Attached(sig(secret_path, Some(random)), empty_signature.clone()),
        Send::Attached(sig(secret_path, Some(plain)), real_signature.clone()),
        Send::Attached(sig(&format!("/{file_id}"), Some(cipher)), real_signature.clone()),
        // Refined deltas' steps (`.rs.clearskies.rsync-refine`, offered by the probe): no more.
        Send::Attached(refined(secret_path, plain, rsync::RefineStep::Coarse), real_signature.clone()),
        Send::Attached(refined(secret_path, plain, rsync::RefineStep::Fine), real_signature.clone()),
        Send::Attached(
            rsync::Patch { path: secret_path.to_owned(), sha256: Some(plain), plan: false }.into(),
            b"rs\x026\x41\x00".to_vec(),
        ),
        Send::Plain(verify.clone().into()),
        Send::Signed(verify.into(), "AAAA".to_owned()),
        Send::Plain(decode(&format!(
            r#"{{"type":"untrusted.verify_result","file_id":"{file_id}","result":"{plain}"}}"#
        ))),
        Send::Plain(decode(&format!(r#"{{"type":"untrusted.verify_busy","file_id":"{file_id}","retry_in":1}}"#))),
        Send::Plain(decode(r#"{"type":"untrusted.manifest"}"#)),
        Send::Plain(decode(r#"{"type":"untrusted.update","file":{"path":"/QZXJV-dir"}}"#)),
        Send::Plain(decode(r#"{"type":"directory.get_presence"}"#)),
        Send::Attached(decode(r#"{"type":"directory.bloom_filter","k_value":3}"#), vec![0xff; 64]),
        Send::Plain(directory::Present { sha256: plain }.into()),
        Send::Plain(decode(r#"{"type":"code_spread.list","codes":[]}"#)),
        Send::Plain(decode(r#"{"type":"code_spread.update","codes":[]}"#)),
        Send::Plain(decode(r#"{"type":"com.example.unknown","path":"/QZXJV-dir"}"#)),
        Send::Plain(database::GetUpdates::default().into()),
    ];
    let until = move |s: &Seen| {
        answered(s, &plain) >= 2 && answered(s, &random) >= 2 && answered(s, &cipher) >= 1 && updates_done(s) >= 2
    };
    (sends, Some(Box::new(until) as Done))
}

/// What the probe saw gives nothing away: no plaintext anywhere, the same answers for a hash
/// that exists and one that does not, and only the ciphertext it may have.
fn assert_nothing_given_away(seen: &Seen, root: &std::path::Path, extensions: &[&str], secret: &[u8], t: &Targets) {
    // No byte of plaintext: not in any message, not in any attachment, not on the wire.
    for (m, body) in &seen.messages {
        assert!(!contains(body, MARKER), "{extensions:?}: a message holds plaintext: {m:?}");
    }
    for (at, chunk) in &seen.chunks {
        assert!(
            !contains(chunk, MARKER),
            "{extensions:?}: the attachment of {:?} holds plaintext",
            seen.messages[*at].0
        );
    }
    if !extensions.contains(&EXT_GZIP) {
        assert!(!contains(&seen.raw, MARKER), "{extensions:?}: plaintext on the wire");
    }
    assert!(!seen.closed_early, "{extensions:?}: the daemon closed the connection before the last step");
    assert!(seen.closed, "{extensions:?}: an unsigned record did not close the connection");
    assert!(
        !seen.extensions.iter().any(|e| e == EXT_RSYNC || e == EXT_RSYNC_REFINE),
        "rsync negotiated: {:?}",
        seen.extensions
    );

    // A plaintext hash that exists is answered exactly as a random one (whole and ranged).
    let (p, r) = (answers_for(seen, &t.plain), answers_for(seen, &t.random));
    assert_eq!(p, r, "{extensions:?}: an existing plaintext hash and a random one are answered differently");
    assert!(p.iter().all(|(m, _)| matches!(m, Message::DirectoryNotPresent(_))), "{p:?}");
    // No delta, no proof, ever.
    for (m, _) in &seen.messages {
        assert!(
            !matches!(m, Message::RsyncPatch(_) | Message::UntrustedVerifyResult(_) | Message::UntrustedVerifyBusy(_)),
            "{extensions:?}: answered with {m:?}"
        );
    }
    // What it may have, it gets: the ciphertext, as long as the file, no plaintext in it.
    let cipher_data: Vec<&(Message, Vec<u8>)> =
        seen.messages.iter().filter(|(m, _)| matches!(m, Message::DirectoryData(_))).collect();
    assert_eq!(cipher_data.len(), 1, "{extensions:?}: one directory.data, for the ciphertext hash");
    let i = seen.messages.iter().position(|(m, _)| matches!(m, Message::DirectoryData(_))).unwrap();
    let data: Vec<u8> = seen.chunks.iter().filter(|(at, _)| *at == i).flat_map(|(_, c)| c.clone()).collect();
    let sizes: Vec<u64> = ["QZXJV-dir/QZXJV-secret.txt", "QZXJV-top.txt"]
        .iter()
        .map(|f| std::fs::metadata(root.join(f)).unwrap().len())
        .collect();
    assert!(sizes.contains(&(data.len() as u64)), "{} bytes of ciphertext", data.len());
    assert_ne!(data, secret);
}

#[test]
fn an_untrusted_peer_never_receives_plaintext_whatever_it_asks() {
    let a = Daemon::start();
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("share");
    std::fs::create_dir_all(root.join("QZXJV-dir/QZXJV-subdir")).unwrap();
    let secret: Vec<u8> = b"the QZXJV plaintext, line after line\n".repeat(2000);
    std::fs::write(root.join("QZXJV-dir/QZXJV-secret.txt"), &secret).unwrap();
    std::fs::write(root.join("QZXJV-top.txt"), b"QZXJV at the top").unwrap();
    let code = a.share_code(&root, &["--mode", "untrusted", "--multi-use"]);
    wait_for("the scan", || (a.first_share()["files"].as_u64()? == 2).then_some(()));

    every_request(&a, &code, &root, &[EXT_DATABASE, EXT_DIRECTORY, EXT_RSYNC, EXT_RSYNC_REFINE]);
    let all = [EXT_DATABASE, EXT_DIRECTORY, EXT_RSYNC, EXT_RSYNC_REFINE, EXT_GZIP, EXT_MSGPACK];
    every_request(&a, &code, &root, &all);

    // The delta it sent changed nothing, and the daemon is fine.
    assert_eq!(std::fs::read(root.join("QZXJV-dir/QZXJV-secret.txt")).unwrap(), secret);
    a.cs.ok(&["status"]);
}
