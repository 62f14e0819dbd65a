//! Refined deltas (`.rs.clearskies.rsync-refine`) against a hostile receiver: a malformed
//! fine request closes that connection (logged) and the daemon goes on serving; the steps
//! are answered only where both sides offered the extension.

use std::time::Duration;

use clearskies_protocol::message::{rsync, Message};
use clearskies_protocol::rdiff::{self, refine};
use clearskies_protocol::session::{Event, EXT_DATABASE, EXT_DIRECTORY, EXT_RSYNC, EXT_RSYNC_REFINE};
use clearskies_protocol::Sha256Hash;

use crate::raw_client::{channel_with_code, client_config, RawClient, Read};
use crate::util::{wait_for, Daemon};

const PATH: &str = "/big.bin";

/// What a connection got: each message with its attachment, and whether it was closed.
struct Got {
    answers: Vec<(Message, Vec<u8>)>,
    closed: bool,
}

/// Joins with `code` offering `extensions`, sends `rsync.signature`s (step, attachment) for
/// `sha`, then reads until `want` of them are answered with an `rsync.patch` or the daemon
/// closes the connection.
fn ask(
    addr: &str,
    code: &str,
    extensions: &[&str],
    sha: Sha256Hash,
    sigs: Vec<(Option<rsync::RefineStep>, Vec<u8>)>,
    want: usize,
) -> Got {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let ch = channel_with_code(addr, code).await;
        let mut c = RawClient::new(ch, client_config(0x68, extensions, true), Duration::from_secs(120));
        let mut got = Got { answers: Vec::new(), closed: false };
        let mut sigs = Some(sigs);
        // `rsync.patch`es whose attachment is complete.
        let mut complete = 0;
        loop {
            while let Some(e) = c.session.poll_event() {
                match e {
                    Event::KeysReceived(_) => c.session.acknowledge_keys().unwrap(),
                    Event::Message(m) => got.answers.push((m.message, Vec::new())),
                    Event::AttachmentChunk(data) => got.answers.last_mut().unwrap().1.extend_from_slice(&data),
                    Event::AttachmentEnd if matches!(got.answers.last(), Some((Message::RsyncPatch(_), _))) => {
                        complete += 1;
                    }
                    _ => {}
                }
            }
            if c.session.is_ready() {
                for (refine, bytes) in sigs.take().unwrap_or_default() {
                    let m = Message::from(rsync::Signature { path: PATH.to_owned(), sha256: Some(sha), refine });
                    c.session.send_with_attachment(&m).unwrap();
                    if !bytes.is_empty() {
                        c.session.send_chunk(bytes.into()).unwrap();
                    }
                    c.session.end_attachment(std::time::Instant::now()).unwrap();
                }
            }
            if complete >= want {
                c.finish().await;
                return got;
            }
            match c.read().await {
                Read::Data(_) => {}
                Read::Closed => {
                    got.closed = true;
                    return got;
                }
                Read::TimedOut => panic!("the daemon neither answered nor closed the connection"),
            }
        }
    })
}

/// The `rsync.patch`es in `got`: (is it a plan, its attachment).
fn patches(got: &Got) -> Vec<(bool, &[u8])> {
    got.answers
        .iter()
        .filter_map(|(m, body)| match m {
            Message::RsyncPatch(p) => Some((p.plan, &body[..])),
            _ => None,
        })
        .collect()
}

/// A fine request: `plan` as sent, then `rest` as it is.
fn fine_with(plan: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(plan.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(plan);
    out.extend_from_slice(rest);
    out
}

/// Fine requests that are malformed each their own way, made from a good `request` of
/// `plan`, and a coarse signature.
fn malformed_fine_requests(plan: &refine::Plan, request: &[u8], coarse_sig: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let encoded = plan.encode();
    let sig_header = [rdiff::SIG_MAGIC.to_be_bytes(), 256u32.to_be_bytes(), 8u32.to_be_bytes()].concat();
    let mut huge_plan_len = request.to_vec();
    huge_plan_len[..4].copy_from_slice(&u32::MAX.to_be_bytes());
    vec![
        ("empty", Vec::new()),
        ("plan length past the end", huge_plan_len),
        ("truncated", request[..request.len() / 2].to_vec()),
        ("a truncated plan", fine_with(&encoded[..encoded.len() - 8], &[0; 4])),
        ("too many parts", fine_with(&encoded, &[&u32::MAX.to_be_bytes()[..], &sig_header].concat())),
        (
            "a part overflowing",
            fine_with(
                &encoded,
                &[&1u32.to_be_bytes()[..], &u64::MAX.to_be_bytes(), &2u64.to_be_bytes(), &sig_header].concat(),
            ),
        ),
        (
            "blocks not the parts'",
            fine_with(
                &encoded,
                &[&1u32.to_be_bytes()[..], &0u64.to_be_bytes(), &1024u64.to_be_bytes(), &sig_header, &[0; 12]].concat(),
            ),
        ),
        ("a plain signature", coarse_sig.to_vec()),
    ]
}

#[test]
fn malformed_refine_requests_close_only_that_connection() {
    // A connection per malformed request, each with the code: more than the default 10 a minute.
    let a = Daemon::start_with(&[("CLEARSKIES_AUTH_ATTEMPTS_PER_MINUTE", "100")]);
    let b = Daemon::start();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let content: Vec<u8> = (0u32..(3 << 18)).flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes()).collect();
    std::fs::write(dir_a.path().join("big.bin"), &content).unwrap();
    let sha = {
        use sha2::Digest;
        Sha256Hash(sha2::Sha256::digest(&content).into())
    };
    let code = a.share_code(dir_a.path(), &["--multi-use"]);
    wait_for("the scan", || (a.first_share()["files"].as_u64()? == 1).then_some(()));
    b.cs.ok(&["attach", &code, dir_b.path().to_str().unwrap(), "--peer", &a.listen()]);
    wait_for("the honest session", || (a.peers() == 1).then_some(()));

    // Our basis: the file with a stretch in the middle changed.
    let mut basis = content.clone();
    basis[1_500_000..1_510_000].fill(7);
    let len = content.len() as u64;
    let coarse = refine::coarse_params(basis.len() as u64);
    let mut coarse_sig = Vec::new();
    rdiff::signature(&basis[..], coarse, &mut coarse_sig).unwrap();
    let both = [EXT_DATABASE, EXT_DIRECTORY, EXT_RSYNC, EXT_RSYNC_REFINE];
    let coarse_step = Some(rsync::RefineStep::Coarse);
    let fine_step = Some(rsync::RefineStep::Fine);

    // Well formed: a plan, then (for the plan and a fine signature) a delta that gives the file.
    let got = ask(&a.listen(), &code, &both, sha, vec![(coarse_step, coarse_sig.clone())], 1);
    let [(true, plan_bytes)] = patches(&got)[..] else {
        panic!("no plan: {:?}", got.answers.iter().map(|a| &a.0).collect::<Vec<_>>())
    };
    let plan = refine::Plan::parse(plan_bytes, len, len).expect("the daemon's plan parses");
    assert!(plan.gap_bytes() > 0 && plan.gap_bytes() < len / 2, "{plan:?}");
    let request = refine::fine_request(&mut std::io::Cursor::new(&basis), len, &plan, coarse.block_len.into()).unwrap();
    let got = ask(&a.listen(), &code, &both, sha, vec![(fine_step, request.clone())], 1);
    let [(false, delta)] = patches(&got)[..] else { panic!("no delta") };
    let mut out = Vec::new();
    rdiff::patch(&mut std::io::Cursor::new(&basis), delta, &mut out, len).unwrap();
    assert!(out == content, "the refined delta does not give the file");

    // Malformed fine requests: each closes its connection.
    let malformed = malformed_fine_requests(&plan, &request, &coarse_sig);
    for (name, bytes) in &malformed {
        let got = ask(&a.listen(), &code, &both, sha, vec![(fine_step, bytes.clone())], 1);
        assert!(got.closed && patches(&got).is_empty(), "{name}: not closed");
    }
    wait_for("the reasons in the log", || {
        (a.cs.log().matches("bad rsync signature").count() >= malformed.len()).then_some(())
    });

    // Without the extension on our side: a coarse step is a plain signature (answered with
    // a delta, not a plan), and a fine request is a malformed signature.
    let plain = [EXT_DATABASE, EXT_DIRECTORY, EXT_RSYNC];
    let got = ask(&a.listen(), &code, &plain, sha, vec![(coarse_step, coarse_sig.clone())], 1);
    let [(false, delta)] = patches(&got)[..] else { panic!("not a plain delta") };
    let mut out = Vec::new();
    rdiff::patch(&mut std::io::Cursor::new(&basis), delta, &mut out, len).unwrap();
    assert!(out == content);
    let got = ask(&a.listen(), &code, &plain, sha, vec![(fine_step, request)], 1);
    assert!(got.closed && patches(&got).is_empty(), "a fine request without the extension was answered");

    // The daemon is up and the honest peer still connected.
    a.cs.ok(&["status"]);
    assert_eq!(a.peers(), 1);
    assert_eq!(b.peers(), 1);
}
