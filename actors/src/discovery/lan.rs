//! LAN broadcast (`core.md`, "LAN Broadcast"): a UDP datagram per known ID to port 60106,
//! on start, when the IDs change and every minute; received datagrams for IDs we know are
//! reported (connections dials them) and answered with our own broadcast for that ID.
//! Several daemons on one host share the port (`SO_REUSEADDR` + `SO_REUSEPORT`).
//!
//! Anyone on the LAN can send such datagrams, with any `peer` and `myport`, so each costs
//! budget ([`Limits`]): a report is repeated at most once per peer, ID and address every
//! [`REPEAT`]; new reports take a token from their source address's bucket and from one
//! bucket for all sources; and each ID is answered at most once every [`ANSWER_EVERY`]
//! (the answer is a broadcast: everyone on the LAN hears it). Every table is bounded.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use clearskies_protocol::{PeerId, Sha256Hash};
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::tracker_client::TrackerNews;
use clearskies_protocol::address::PeerAddr;

/// How often we broadcast.
pub const INTERVAL: Duration = Duration::from_secs(60);
/// A peer announced again within this time is not reported again.
pub const REPEAT: Duration = Duration::from_secs(10);
/// Distinct (ID, peer, address) remembered for [`REPEAT`]; a flood beyond this is forgotten.
const REMEMBER: usize = 4096;
/// An ID is answered at most this often.
pub const ANSWER_EVERY: Duration = Duration::from_secs(2);

/// Budgets for reports (each may become a dial) from received broadcasts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// New reports one source address may cause at once…
    pub per_source_burst: f64,
    /// …and per second after that.
    pub per_source_rate: f64,
    /// New reports all sources together may cause at once…
    pub total_burst: f64,
    /// …and per second after that.
    pub total_rate: f64,
    /// Source addresses whose budgets are kept; when all are in use, new sources wait.
    pub sources: usize,
}

impl Default for Limits {
    /// 32 at once and one every 2 s per source; 128 at once and 2 a second in total; 1024
    /// sources.
    fn default() -> Self {
        Limits { per_source_burst: 32.0, per_source_rate: 0.5, total_burst: 128.0, total_rate: 2.0, sources: 1024 }
    }
}

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Self {
        Bucket { tokens: burst, at: now }
    }

    fn level(&self, burst: f64, rate: f64, now: Instant) -> f64 {
        (self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * rate).min(burst)
    }

    fn take(&mut self, burst: f64, rate: f64, now: Instant) -> bool {
        let level = self.level(burst, rate, now);
        *self = Bucket { tokens: level, at: now };
        if level < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// What a received broadcast may cause, with bounded memory.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    seen: HashMap<(Sha256Hash, PeerId, SocketAddr), Instant>,
    sources: HashMap<IpAddr, Bucket>,
    total: Bucket,
    answered: HashMap<Sha256Hash, Instant>,
}

/// The verdict on a broadcast for an ID we know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Report the peer (connections may dial it).
    pub report: bool,
    /// Answer with our own broadcast for the ID.
    pub answer: bool,
}

impl Admission {
    /// Nothing seen yet.
    pub fn new(limits: Limits, now: Instant) -> Self {
        Admission {
            limits,
            seen: HashMap::new(),
            sources: HashMap::new(),
            total: Bucket::full(limits.total_burst, now),
            answered: HashMap::new(),
        }
    }

    /// A broadcast for our ID `id` from `peer` at `addr` (its source address and `myport`).
    pub fn check(&mut self, id: Sha256Hash, peer: PeerId, addr: SocketAddr, now: Instant) -> Verdict {
        const NOTHING: Verdict = Verdict { report: false, answer: false };
        if self.seen.len() >= REMEMBER {
            self.seen.retain(|_, t| now.duration_since(*t) < REPEAT);
            if self.seen.len() >= REMEMBER {
                self.seen.clear();
            }
        }
        let key = (id, peer, addr);
        if self.seen.get(&key).is_some_and(|t| now.duration_since(*t) < REPEAT) {
            return NOTHING;
        }
        let l = self.limits;
        let source = addr.ip();
        if !self.sources.contains_key(&source) && self.sources.len() >= l.sources {
            self.sources.retain(|_, b| b.level(l.per_source_burst, l.per_source_rate, now) < l.per_source_burst);
            if self.sources.len() >= l.sources {
                return NOTHING;
            }
        }
        let bucket = self.sources.entry(source).or_insert_with(|| Bucket::full(l.per_source_burst, now));
        // The source's budget first: a flood from one address does not use up the others'.
        if !bucket.take(l.per_source_burst, l.per_source_rate, now)
            || !self.total.take(l.total_burst, l.total_rate, now)
        {
            return NOTHING;
        }
        self.seen.insert(key, now);
        // Bounded by our own IDs (only those are ever checked).
        let answer = self.answered.get(&id).is_none_or(|t| now.duration_since(*t) >= ANSWER_EVERY);
        if answer {
            self.answered.insert(id, now);
            if self.answered.len() > REMEMBER {
                self.answered.retain(|_, t| now.duration_since(*t) < ANSWER_EVERY);
            }
        }
        Verdict { report: true, answer }
    }
}

/// The broadcast payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broadcast {
    /// Always `ClearSkiesBroadcast`.
    pub name: String,
    /// Always 1.
    pub version: u64,
    /// The access ID or key ID.
    pub id: Sha256Hash,
    /// The sender's peer ID for it.
    pub peer: PeerId,
    /// The sender's TCP port.
    pub myport: u16,
}

/// Parses a datagram; `None` for anything that is not a version-1 broadcast.
pub fn parse(datagram: &[u8]) -> Option<Broadcast> {
    let b: Broadcast = serde_json::from_slice(datagram).ok()?;
    (b.name == "ClearSkiesBroadcast" && b.version == 1 && b.myport != 0).then_some(b)
}

fn socket(port: u16) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_broadcast(true)?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::from(([0, 0, 0, 0], port)).into())?;
    UdpSocket::from_std(s.into())
}

/// Broadcasts our IDs and listens for others' until `ids` is closed.
pub async fn run(
    target: SocketAddr,
    mut ids: watch::Receiver<BTreeMap<Sha256Hash, PeerId>>,
    listen_port: u16,
    news: mpsc::Sender<(TrackerNews, &'static str)>,
) {
    let sock = match socket(target.port()) {
        Ok(s) => s,
        Err(e) => {
            warn!(port = target.port(), error = %e, "LAN discovery off: cannot open the broadcast port");
            return;
        }
    };
    let mut tick = tokio::time::interval(INTERVAL);
    let mut admission = Admission::new(Limits::default(), Instant::now());
    let mut buf = vec![0u8; 2048];
    loop {
        tokio::select! {
            _ = tick.tick() => send_all(&sock, target, &ids.borrow().clone(), listen_port).await,
            changed = ids.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = ids.borrow_and_update().clone();
                send_all(&sock, target, &now, listen_port).await;
            }
            r = sock.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                let Some(b) = parse(&buf[..n]) else {
                    debug!(%from, "ignored a datagram that is not a ClearSkies broadcast");
                    continue;
                };
                let ours = ids.borrow().get(&b.id).copied();
                // Only IDs we know; never ourselves.
                if ours.is_none() || ours == Some(b.peer) {
                    continue;
                }
                let addr = SocketAddr::new(from.ip(), b.myport);
                let verdict = admission.check(b.id, b.peer, addr, Instant::now());
                if !verdict.report {
                    debug!(%from, id = %b.id, "broadcast not reported (seen recently, or over its budget)");
                    continue;
                }
                // Answer a newcomer at once (it may be looking for this ID right now) rather
                // than at our next minute tick.
                if let (Some(me), true) = (ours, verdict.answer) {
                    send_all(&sock, target, &[(b.id, me)].into(), listen_port).await;
                }
                // The broadcast names one port: TCP there, and uTP on its UDP side (tried
                // second, after the happy-eyeballs head start).
                let found = TrackerNews { id: b.id, peers: [(b.peer, vec![PeerAddr::tcp(addr), PeerAddr::utp(addr)])].into() };
                if news.send((found, "lan")).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn send_all(sock: &UdpSocket, target: SocketAddr, ids: &BTreeMap<Sha256Hash, PeerId>, port: u16) {
    for (id, peer) in ids {
        let b = Broadcast { name: "ClearSkiesBroadcast".into(), version: 1, id: *id, peer: *peer, myport: port };
        let Ok(bytes) = serde_json::to_vec(&b) else { continue };
        if let Err(e) = sock.send_to(&bytes, target).await {
            debug!(%target, error = %e, "broadcast not sent");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_version_one_broadcasts_parse() {
        let good = br#"{"name":"ClearSkiesBroadcast","version":1,"id":"adf6447b553841835aaa712219e01f10486fd1003b1324e94de59f5646b060f3","peer":"2a3728dca353324de4d6bfbebf2128d9","myport":40121}"#;
        let b = parse(good).unwrap();
        assert_eq!(b.myport, 40121);
        for bad in [
            &br#"{"name":"Other","version":1}"#[..],
            br#"{"name":"ClearSkiesBroadcast","version":2,"id":"adf6447b553841835aaa712219e01f10486fd1003b1324e94de59f5646b060f3","peer":"2a3728dca353324de4d6bfbebf2128d9","myport":1}"#,
            br#"{"name":"ClearSkiesBroadcast","version":1,"id":"zz","peer":"2a3728dca353324de4d6bfbebf2128d9","myport":1}"#,
            b"\xff\x00garbage",
            b"",
        ] {
            assert!(parse(bad).is_none());
        }
    }

    fn addr(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([192, 168, 1, last], port))
    }

    #[test]
    fn ever_new_peers_from_one_source_are_held_to_its_budget() {
        let start = Instant::now();
        let mut a = Admission::new(Limits::default(), start);
        let id = Sha256Hash([1; 32]);
        let (mut reports, mut answers) = (0, 0);
        for i in 0..10_000u32 {
            let mut peer = [0xffu8; 16];
            peer[..4].copy_from_slice(&i.to_be_bytes());
            let v = a.check(id, PeerId(peer), addr(7, 4000), start);
            reports += u32::from(v.report);
            answers += u32::from(v.answer);
        }
        assert_eq!((reports, answers), (32, 1));
        // Another source still gets through; the first refills slowly.
        assert!(a.check(id, PeerId([2; 16]), addr(8, 4000), start).report);
        let later = start + Duration::from_secs(10);
        let through = (0..100u8).filter(|i| a.check(id, PeerId([*i; 16]), addr(7, 4001), later).report).count();
        assert_eq!(through, 5);
        // The same broadcast again within REPEAT costs nothing and is not reported again.
        let mut b = Admission::new(Limits::default(), start);
        for _ in 0..1000 {
            b.check(id, PeerId([3; 16]), addr(9, 1), start);
        }
        assert!(b.sources[&addr(9, 1).ip()].tokens > 30.0);
    }

    #[test]
    fn many_sources_share_a_total_budget_and_bounded_tables() {
        let start = Instant::now();
        let mut a = Admission::new(Limits::default(), start);
        let id = Sha256Hash([1; 32]);
        let mut reports = 0;
        for i in 0..50_000u32 {
            let [_, x, y, z] = i.to_be_bytes();
            let from = SocketAddr::from(([10, x, y, z], 5000));
            reports += u32::from(a.check(id, PeerId([9; 16]), from, start).report);
        }
        assert_eq!(reports, 128);
        assert!(a.sources.len() <= Limits::default().sources);
        assert!(a.seen.len() <= REMEMBER);
    }
}
