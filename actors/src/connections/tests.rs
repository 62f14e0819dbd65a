use clearskies_protocol::address::PeerAddr;
use std::collections::BTreeMap;
use std::time::Duration;

use actix::{Actor, Handler};
use clearskies_protocol::{PeerId, Sha256Hash};

use super::dial::{discovered_dial_wait, redial_delay, Redials, SECOND_DIALLER_WAIT, STABLE_SESSION};
use super::messages::{ListPeers, PeerEntry, PeerSource, PeerState, ShareStarted, ShareStopped};
use super::peers::{peer_list, PeerTables};
use super::*;
use crate::shares::table::fixture::TestShare;

#[test]
fn redials_back_off_from_half_a_second_to_a_minute() {
    let delays: Vec<Duration> = (0..10).map(redial_delay).collect();
    let delays: Vec<u64> = delays.iter().map(|d| d.as_secs() * 1000 + u64::from(d.subsec_millis())).collect();
    assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]);
}

/// Backed off by `n` failed dials.
fn failed(n: u32) -> Redials {
    let mut r = Redials::default();
    (0..n).for_each(|_| r.dial_failed());
    r
}

fn millis(d: Duration) -> u128 {
    d.as_millis()
}

#[test]
fn a_peer_that_restarts_again_and_again_is_dialled_within_each_restarts_own_backoff() {
    // The crash trials' pattern: the peer is killed, refuses two dials while it starts
    // again, holds a session for a few seconds, and is killed again. Each time the delay
    // comes only from that outage's failed dials (it grew to a minute when short sessions
    // and earlier outages added up).
    let mut r = Redials::default();
    for _ in 0..10 {
        r.session_ended(Duration::from_secs(3));
        assert_eq!(millis(r.delay()), 500, "dialled again at once when a working session ends");
        r.dial_failed();
        r.dial_failed();
        assert_eq!(millis(r.delay()), 2000);
    }
    assert_eq!(r.failures(), 2);
}

#[test]
fn a_peer_that_closes_every_session_at_once_is_dialled_less_and_less_often() {
    // Sessions that end sooner than the delay before them (the peer takes us and closes)
    // back off as failed dials do, and failed dials in between add to it.
    let mut r = Redials::default();
    let mut delays = Vec::new();
    for _ in 0..9 {
        r.session_ended(Duration::from_millis(50));
        delays.push(millis(r.delay()));
    }
    assert_eq!(delays, [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    r.dial_failed();
    assert_eq!(millis(r.delay()), 60_000);
    // A session that outlasts its delay, or half a minute, starts over.
    r.session_ended(STABLE_SESSION);
    assert_eq!((r.failures(), millis(r.delay())), (0, 500));
    let mut r = Redials::default();
    r.session_ended(Duration::from_millis(100));
    r.session_ended(Duration::from_millis(900));
    assert_eq!(millis(r.delay()), 2000, "0.9 s is shorter than the 1 s it waited for");
    r.session_ended(Duration::from_millis(2500));
    assert_eq!(millis(r.delay()), 500, "2.5 s outlasted the 2 s it waited for");
    // Failed dials end with the next session that becomes ready, however long it lasts.
    let mut r = failed(6);
    assert_eq!(millis(r.delay()), 32_000);
    r.session_ended(Duration::from_millis(10));
    assert_eq!((r.failures(), millis(r.delay())), (1, 1000));
}

#[test]
fn of_two_peers_that_find_each_other_the_lower_id_dials_first() {
    let (low, high) = (PeerId([1; 16]), PeerId([2; 16]));
    assert_eq!(discovered_dial_wait(low, high), Duration::ZERO);
    assert_eq!(discovered_dial_wait(high, low), SECOND_DIALLER_WAIT);
}

#[test]
fn discovery_announces_shares_live_codes_of_running_shares_and_attaches_under_way() {
    let s = TestShare::new();
    let (live, expired, orphan, seeking_id) =
        (Sha256Hash([1; 32]), Sha256Hash([2; 32]), Sha256Hash([3; 32]), Sha256Hash([4; 32]));
    let codes = BTreeMap::from([
        (live, (s.config.id, Some(101))),
        (expired, (s.config.id, Some(100))),
        (orphan, (Sha256Hash([9; 32]), None)),
    ]);
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let seeking = BTreeMap::from([(seeking_id, (PeerId([7; 16]), tx))]);
    let ids = announced(&s.table.borrow(), &codes, &seeking, 100);
    let expected =
        BTreeMap::from([(s.config.id, s.config.peer_id), (live, s.config.peer_id), (seeking_id, PeerId([7; 16]))]);
    assert_eq!(ids, expected);
}

#[test]
fn peers_lists_each_address_once_with_where_it_came_from() {
    let s = TestShare::new();
    let id = s.config.id;
    let (a, b, c): (PeerAddr, PeerAddr, PeerAddr) =
        ("tcp:10.0.0.1:1".parse().unwrap(), "tcp:10.0.0.2:2".parse().unwrap(), "tcp:10.0.0.3:3".parse().unwrap());
    let peers = BTreeMap::from([((id, PeerId([1; 16])), a), ((id, PeerId([2; 16])), b)]);
    let dials = BTreeMap::from([((id, a.addr.to_string()), failed(0)), ((id, "far.example:9".to_owned()), failed(3))]);
    let found = BTreeMap::from([((id, b), "tracker"), ((id, c), "lan")]);
    let found_dialing = BTreeSet::from([(id, c)]);
    // Peer 1 is connected; peer 3 was, at the remembered address far.example:9 (dialled
    // again: one line); peer 4 came in from 10.0.0.4:4 and left.
    let traffic = std::sync::Arc::new(crate::peer::messages::Traffic::default());
    traffic.sent.store(5, std::sync::atomic::Ordering::Relaxed);
    let seen_at = |addr: &str, name: &str, last_seen| super::peers::Seen {
        name: Some(name.into()),
        level: Some(clearskies_protocol::message::core::AccessLevel::ReadWrite),
        addr: PeerAddr::tcp(addr.parse().unwrap()),
        last_seen,
        traffic: traffic.clone(),
    };
    let mut seen = super::peers::SeenTable::new();
    let none = BTreeMap::new();
    super::peers::note_seen(&mut seen, (id, PeerId([1; 16])), seen_at("10.0.0.1:1", "laptop", 50), &none);
    super::peers::note_seen(&mut seen, (id, PeerId([4; 16])), seen_at("10.0.0.4:4", "phone", 60), &none);
    let mut dials = dials;
    dials.insert((id, "10.0.0.9:9".to_owned()), failed(2));
    super::peers::note_seen(&mut seen, (id, PeerId([3; 16])), seen_at("10.0.0.9:9", "nas", 70), &none);
    let table = s.table.borrow();
    let list = peer_list(&PeerTables {
        table: &table,
        peers: &peers,
        seen: &seen,
        dials: &dials,
        found: &found,
        found_dialing: &found_dialing,
        now: 100,
    });
    let brief: Vec<(&str, &str, &str, Option<u32>)> =
        list.iter().map(|e| (e.address.as_str(), e.state.as_str(), e.source.as_str(), e.failures)).collect();
    assert_eq!(
        brief,
        [
            ("10.0.0.1:1", "connected", "manual", None),
            ("10.0.0.2:2", "connected", "tracker", None),
            ("10.0.0.9:9", "dialing", "manual", Some(2)),
            ("10.0.0.4:4", "offline", "incoming", None),
            ("10.0.0.3:3", "dialing", "lan", None),
            ("far.example:9", "dialing", "manual", Some(3)),
        ]
    );
    let named: Vec<(Option<&str>, Option<i64>, Option<u64>)> =
        list.iter().map(|e| (e.name.as_deref(), e.last_seen, e.sent_bytes)).collect();
    assert_eq!(named[0], (Some("laptop"), Some(100), Some(5)), "connected: seen now");
    assert_eq!(named[1], (None, None, None), "connected, never noted (no session data)");
    assert_eq!(named[2], (Some("nas"), Some(70), Some(5)));
    assert_eq!(named[3], (Some("phone"), Some(60), Some(5)));
    // The table is bounded: the peer gone the longest goes first, never a connected one
    // (peer 1, seen at 50 but connected now).
    for i in 0..super::peers::MAX_SEEN + 5 {
        let peer = PeerId((u128::try_from(i).unwrap() + 1000).to_le_bytes());
        let at = seen_at("10.0.0.1:1", "x", 1000 + i64::try_from(i).unwrap());
        super::peers::note_seen(&mut seen, (id, peer), at, &peers);
    }
    assert_eq!(seen.len(), super::peers::MAX_SEEN);
    assert!(!seen.contains_key(&(id, PeerId([4; 16]))) && seen.contains_key(&(id, PeerId([1; 16]))));
    assert!(list.iter().all(|e| e.path == s.config.path.display().to_string() && e.share == id.to_string()));
}

/// Receives what a connections owner would send elsewhere; none of it is used here.
struct Sink;
impl Actor for Sink {
    type Context = Context<Self>;
}
macro_rules! sink {
    ($($m:ty => $r:expr),*) => {$(
        impl Handler<$m> for Sink {
            type Result = actix::MessageResult<$m>;
            fn handle(&mut self, _: $m, _: &mut Context<Self>) -> Self::Result {
                actix::MessageResult($r)
            }
        }
    )*};
}
sink!(
    CodeUsed => (),
    ReleaseCredential => (),
    JoinShare => Err(crate::control::cmd::CommandError::unavailable()),
    ImportKeys => Err(crate::control::cmd::CommandError::unavailable()),
    crate::shares::messages::ForgetPeer => Err(crate::control::cmd::CommandError::unavailable()),
    crate::peer::messages::Rekeyed => (),
    crate::access::messages::SpreadableCodes => Vec::new(),
    crate::access::messages::CodesFromPeer => (),
    Crashed => ()
);

fn connections(s: &TestShare) -> actix::Addr<Connections> {
    connections_with(s, None)
}

/// Connections for `s`'s share, listening (as far as it knows) on `own_port`.
fn connections_with(s: &TestShare, own_port: Option<u16>) -> actix::Addr<Connections> {
    let sink = Sink.start();
    let targets = ConnectionsTargets {
        code_used: sink.clone().recipient(),
        release: sink.clone().recipient(),
        join: sink.clone().recipient(),
        import: sink.clone().recipient(),
        forget: sink.clone().recipient(),
        rekeyed: sink.clone().recipient(),
        crashed: sink.clone().recipient(),
        runtime: crate::config::Runtime::fixed(crate::config::Values::default()),
        spreadable: sink.clone().recipient(),
        codes_in: sink.recipient(),
    };
    let settings = crate::Settings {
        data_dir: std::env::temp_dir().join("clearskies-connections-test-data"),
        control_socket: std::env::temp_dir().join("clearskies-connections-test.sock"),
        software: "test".into(),
        monitor: crate::MonitorInfo::default(),
        fault_injection: false,
        config: crate::config::Values::default(),
        sources: crate::config::Sources::new(),
    };
    Connections::with_own_port(&settings, s.table.subscribe(), TlsContext::new().ok(), targets, own_port).start()
}

#[actix_rt::test]
async fn our_own_address_in_a_peers_list_is_never_dialled() {
    let s = TestShare::new();
    // A port that stands for our peer port, and another peer's.
    let ours = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = ours.local_addr().unwrap().port();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let c = connections_with(&s, Some(port));
    let listed = vec![PeerAddr::tcp(([127, 0, 0, 1], port).into()), PeerAddr::tcp(other)];
    let peers = BTreeMap::from([(PeerId([0xee; 16]), listed)]);
    c.send(crate::discovery::Discovered { id: s.config.id, peers, source: "tracker" }).await.unwrap();
    let list = c.send(ListPeers).await.unwrap();
    let addresses: Vec<&str> = list.iter().map(|e| e.address.as_str()).collect();
    assert_eq!(addresses, [other.to_string()]);
}

/// `list_peers` until `done` holds (at most 10,000 rounds, 500 s of the paused clock).
async fn peers_until(c: &actix::Addr<Connections>, done: impl Fn(&[PeerEntry]) -> bool) -> Vec<PeerEntry> {
    for _ in 0..10_000 {
        let list = c.send(ListPeers).await.unwrap();
        if done(&list) {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("list_peers never got there");
}

#[actix_rt::test]
async fn an_unreachable_peer_is_dialled_again_with_a_doubling_delay_until_its_share_is_removed() {
    tokio::time::pause();
    let s = TestShare::new();
    let c = connections(&s);
    // A loopback port nobody listens on: each dial is refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let start = tokio::time::Instant::now();
    c.send(ShareStarted { id: s.config.id, dial: vec![closed.to_string()], remember: vec![] }).await.unwrap();
    let list = peers_until(&c, |l| l.iter().any(|e| e.failures >= Some(4))).await;
    assert_eq!((list.len(), list[0].state, list[0].source), (1, PeerState::Dialing, PeerSource::Manual));
    // Dials at 0, 1, 3 and 7 s (after 1 + 2 + 4 s of backoff): four failures take 7 s of
    // the paused clock, not less.
    assert!(start.elapsed() >= Duration::from_secs(7), "{:?}", start.elapsed());
    assert!(start.elapsed() < Duration::from_secs(20), "{:?}", start.elapsed());
    // (The registry takes a share out of the table before it says so.)
    s.stop();
    c.send(ShareStopped { id: s.config.id, removed: true }).await.unwrap();
    let list = peers_until(&c, <[PeerEntry]>::is_empty).await;
    assert!(list.is_empty(), "a removed share's peers are no longer dialled");
}
