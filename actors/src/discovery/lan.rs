//! LAN broadcast (`core.md`, "LAN Broadcast"): a UDP datagram per known ID to port 60106,
//! on start, when the IDs change and every minute; received datagrams for IDs we know are
//! reported and answered with our own broadcast for that ID (at most once per peer, ID and
//! address every [`REPEAT`], so a flood makes neither dials nor datagrams grow without
//! bound). Several daemons on
//! one host share the port (`SO_REUSEADDR` + `SO_REUSEPORT`).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clearskies_protocol::{PeerId, Sha256Hash};
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::tracker_client::TrackerNews;

/// How often we broadcast.
pub const INTERVAL: Duration = Duration::from_secs(60);
/// A peer announced again within this time is not reported again.
pub const REPEAT: Duration = Duration::from_secs(10);
/// Distinct (ID, peer, address) remembered for [`REPEAT`]; a flood beyond this is forgotten.
const REMEMBER: usize = 4096;

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
    let mut seen: HashMap<(Sha256Hash, PeerId, SocketAddr), Instant> = HashMap::new();
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
                let now = Instant::now();
                if seen.len() >= REMEMBER {
                    seen.retain(|_, t| now.duration_since(*t) < REPEAT);
                    if seen.len() >= REMEMBER {
                        seen.clear();
                    }
                }
                let key = (b.id, b.peer, addr);
                if seen.get(&key).is_some_and(|t| now.duration_since(*t) < REPEAT) {
                    continue;
                }
                seen.insert(key, now);
                // Answer a newcomer at once (it may be looking for this ID right now) rather
                // than at our next minute tick; rate-limited with the reports above.
                if let Some(me) = ours {
                    send_all(&sock, target, &[(b.id, me)].into(), listen_port).await;
                }
                let found = TrackerNews { id: b.id, peers: [(b.peer, vec![addr])].into() };
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
}
