//! The actor driven through its messages on a real share (temp directories, its worker
//! thread, inotify), with doubles for the peer connection and the supervisor.

use std::time::Duration;

use actix::{Actor, Addr, Context, Handler};
use clearskies_protocol::path::{SharePath, META_DIR};
use clearskies_protocol::time::Timestamp;
use clearskies_protocol::vclock::VectorClock;
use clearskies_protocol::Sha256Hash;
use sha2::Digest;
use tokio::sync::broadcast;

use super::*;
use crate::peer::messages::PeerOut;
use crate::share::messages::{Downloaded, FromPeer, PeerUp, Rescan, SubscribeEvents, SyncMessage};
use crate::share::registry::ShareConfig;
use clearskies_index::{durable, fsops, record::EntryKind, record::Record};

const ME: PeerId = PeerId([1; 16]);
const THEM: PeerId = PeerId([2; 16]);
/// How long a test waits for an event before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// Takes what it is sent and drops it: the peer connection, the supervisor.
struct Sink;

impl Actor for Sink {
    type Context = Context<Self>;
}

impl Handler<PeerOut> for Sink {
    type Result = ();

    fn handle(&mut self, _: PeerOut, _: &mut Context<Self>) {}
}

impl Handler<Crashed> for Sink {
    type Result = ();

    fn handle(&mut self, c: Crashed, _: &mut Context<Self>) {
        panic!("the share crashed: {c:?}");
    }
}

/// A read-write share on temp directories with `doc.txt` in it, its actor started.
struct Fixture {
    _db: tempfile::TempDir,
    root: tempfile::TempDir,
    share: Addr<Share>,
    sink: Addr<Sink>,
}

impl Fixture {
    fn start() -> Fixture {
        let (db, root, store) = crate::share::test_share();
        std::fs::write(root.path().join("doc.txt"), b"ours").unwrap();
        let config = ShareConfig {
            id: Sha256Hash([7; 32]),
            path: root.path().canonicalize().unwrap(),
            peer_id: ME,
            access_level: AccessLevel::ReadWrite,
            created: Timestamp::new(1_700_000_000, 0).unwrap(),
            peers: Vec::new(),
            selection: Default::default(),
            removed_peers: Vec::new(),
            store: None,
            previous: None,
        };
        let sink = Sink.start();
        let (share, _) = Share::spawn(
            &config,
            store,
            false,
            crate::share::actor::Wiring {
                crashed: sink.clone().recipient(),
                runtime: crate::config::Runtime::fixed(Default::default()),
                events: crate::share::actor::event_channel(),
            },
        )
        .unwrap();
        Fixture { _db: db, root, share, sink }
    }

    /// A read-write peer's connection, subscribed.
    async fn connect(&self, conn: u64) {
        let up = PeerUp {
            conn,
            peer: THEM,
            out: self.sink.clone().recipient(),
            rsync: false,
            refine: false,
            gzip: false,
            signed: false,
            sign: None,
            crypt: None,
        };
        self.share.send(up).await.unwrap();
    }
}

/// The next event `want` picks (others are skipped); fails after [`PATIENCE`].
async fn wait_for<T>(rx: &mut broadcast::Receiver<ShareEvent>, mut want: impl FnMut(ShareEvent) -> Option<T>) -> T {
    let look = async {
        loop {
            match rx.recv().await {
                Ok(e) => {
                    if let Some(t) = want(e) {
                        return t;
                    }
                }
                Err(e) => panic!("the event stream broke: {e}"),
            }
        }
    };
    tokio::time::timeout(PATIENCE, look).await.expect("no such event in time")
}

fn sha(data: &[u8]) -> Sha256Hash {
    Sha256Hash(sha2::Sha256::digest(data).into())
}

/// The peer's version of `path`: concurrent with ours (its clock knows nothing of our
/// write) and later, so it wins.
fn theirs(path: &str, data: &[u8]) -> Record {
    let vector_clock: VectorClock = [(THEM, 1)].into_iter().collect();
    Record {
        path: SharePath::parse(path).unwrap(),
        uuid: RecordUuid([9; 16]),
        kind: EntryKind::File,
        size: Some(data.len() as u64),
        sha256: Some(sha(data)),
        mtime: Some(Timestamp::new(1_500_000_000, 0).unwrap()),
        unix_mode: Some(0o644),
        deleted: false,
        last_updated_by: THEM,
        last_updated_rev: 1,
        update_time: Timestamp::new(4_000_000_000, 0).unwrap(),
        vector_clock,
        extra: Default::default(),
        local: None,
        local_sha256: None,
        pending: false,
        signed: None,
        sealed: None,
    }
}

#[actix_rt::test]
async fn subscribers_see_a_scan_a_conflict_and_an_install() {
    let f = Fixture::start();
    let mut events = f.share.send(SubscribeEvents).await.unwrap();
    // Whether or not the first scan was under way when we subscribed, one finishes after.
    f.share.send(Rescan).await.unwrap();
    wait_for(&mut events, |e| matches!(e, ShareEvent::Indexed { .. }).then_some(())).await;

    // A peer's concurrent, later edit of doc.txt: ours is kept as a conflict copy.
    f.connect(1).await;
    let update = FromPeer { conn: 1, what: SyncMessage::Update(Box::new(theirs("/doc.txt", b"theirs"))) };
    f.share.send(update).await.unwrap();
    let (path, copy) = wait_for(&mut events, |e| match e {
        ShareEvent::Conflict { path, copy } => Some((path, copy)),
        _ => None,
    })
    .await;
    assert_eq!(path.as_str(), "/doc.txt");
    assert!(copy.as_str().starts_with("/doc.CONFLICT.") && copy.as_str().ends_with(".txt"), "{copy:?}");
    assert_eq!(std::fs::read(f.root.path().join(copy.relative())).unwrap(), b"ours");

    // Their contents arrive (as the transfer actor hands a small download over, its fsync
    // left to the install).
    let data = b"theirs";
    let mut w = fsops::TempWriter::resume(f.root.path(), &sha(data), data.len() as u64).unwrap();
    w.append(data).unwrap();
    let (temp, file) = w.finish_unsynced(&sha(data), data.len() as u64, Some(0o644), None).unwrap();
    let slot = durable::Slots::new(1).take().unwrap();
    let unsynced = Some(durable::Unsynced { file, started: std::time::Instant::now(), slot });
    f.share.send(Downloaded { sha256: sha(data), temp, unsynced }).await.unwrap();
    let paths = wait_for(&mut events, |e| match e {
        ShareEvent::Installed { paths } => Some(paths),
        _ => None,
    })
    .await;
    assert_eq!(paths, vec![SharePath::parse("/doc.txt").unwrap()]);
    assert_eq!(std::fs::read(f.root.path().join("doc.txt")).unwrap(), data);
    assert!(f.root.path().join(META_DIR).is_dir());
}

#[actix_rt::test]
async fn the_root_going_away_is_an_error_and_coming_back_ends_it() {
    let f = Fixture::start();
    let mut events = f.share.send(SubscribeEvents).await.unwrap();
    f.share.send(Rescan).await.unwrap();
    wait_for(&mut events, |e| matches!(e, ShareEvent::Indexed { .. }).then_some(())).await;
    // The marker gone (as when a disk is unmounted below the share): the share is in error.
    let marker = f.root.path().join(META_DIR);
    std::fs::rename(&marker, f.root.path().join("elsewhere")).unwrap();
    f.share.send(Rescan).await.unwrap();
    let reason = wait_for(&mut events, |e| match e {
        ShareEvent::ErrorEntered { reason } => Some(reason),
        _ => None,
    })
    .await;
    assert!(!reason.is_empty());
    // Back: the next scan succeeds and the error is over.
    std::fs::rename(f.root.path().join("elsewhere"), &marker).unwrap();
    f.share.send(Rescan).await.unwrap();
    wait_for(&mut events, |e| matches!(e, ShareEvent::ErrorLeft).then_some(())).await;
}

/// Keeps what it is sent, in short: a produced message's header, or "close".
struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<PeerOut> for Recorder {
    type Result = ();

    fn handle(&mut self, out: PeerOut, _: &mut Context<Self>) {
        let seen = match out {
            PeerOut::Produce { header, .. } => String::from_utf8_lossy(&header.encode()).into_owned(),
            PeerOut::Close(reason) => format!("close: {reason}"),
            _ => return,
        };
        self.0.lock().unwrap().push(seen);
    }
}

#[actix_rt::test]
async fn a_delta_plan_not_asked_for_closes_the_connection() {
    use crate::transfer::messages::{DataStart, Inbound};
    use clearskies_protocol::message::rsync::Patch;
    let f = Fixture::start();
    let mut events = f.share.send(SubscribeEvents).await.unwrap();
    let ours: Vec<u8> = (0u32..100_000).flat_map(u32::to_le_bytes).collect();
    std::fs::write(f.root.path().join("big.bin"), &ours).unwrap();
    f.share.send(Rescan).await.unwrap();
    wait_for(&mut events, |e| matches!(e, ShareEvent::Indexed { .. }).then_some(())).await;

    // A peer with deltas but without refined ones, and a newer version of big.bin (its
    // clock follows ours): a plain signature is asked for.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = Recorder(seen.clone()).start().recipient();
    let up = PeerUp {
        conn: 1,
        peer: THEM,
        out,
        rsync: true,
        refine: false,
        gzip: false,
        signed: false,
        sign: None,
        crypt: None,
    };
    let link = f.share.send(up).await.unwrap();
    let mut theirs_data = ours.clone();
    theirs_data[1000] ^= 1;
    let mut record = theirs("/big.bin", &theirs_data);
    record.vector_clock = [(ME, 1_000), (THEM, 1)].into_iter().collect();
    f.share.send(FromPeer { conn: 1, what: SyncMessage::Update(Box::new(record)) }).await.unwrap();
    let asked = |s: &Vec<String>| s.iter().any(|m| m.contains("rsync.signature"));
    let deadline = std::time::Instant::now() + PATIENCE;
    while !asked(&seen.lock().unwrap()) {
        assert!(std::time::Instant::now() < deadline, "no signature asked: {:?}", seen.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!seen.lock().unwrap().iter().any(|m| m.contains("refine")), "{:?}", seen.lock().unwrap());

    // The peer answers with a plan: not taken (no fine signature is ever sent), and the
    // connection is closed.
    let patch = Patch { path: "/big.bin".into(), sha256: Some(sha(&theirs_data)), plan: true };
    let sink = link.data.send(DataStart { conn: 1, what: Inbound::Patch(patch) }).await.unwrap();
    assert!(sink.is_none(), "a plan not asked for was taken");
    let deadline = std::time::Instant::now() + PATIENCE;
    while !seen.lock().unwrap().iter().any(|m| m.starts_with("close: ")) {
        assert!(std::time::Instant::now() < deadline, "not closed: {:?}", seen.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!seen.lock().unwrap().iter().any(|m| m.contains("fine")), "{:?}", seen.lock().unwrap());
}
