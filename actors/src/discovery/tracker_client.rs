//! The daemon's side of one tracker: connect, `tracker.start`, announce our address and
//! every ID we know (again whenever they change), ping within the TTL, and report the peers
//! the tracker tells us about. Reconnects with backoff; a tracker restart is just that.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use clearskies_protocol::address::PeerAddr;
use clearskies_protocol::message::tracker::{Connection, Ping, Register, Start};
use clearskies_protocol::message::Message;
use clearskies_protocol::{PeerId, Sha256Hash};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info};

use super::addresses;
use super::wire::{encode, MessageReader};

/// TTL we ask for (clamped to what the tracker allows).
const TTL: u64 = 60;
/// How often the interfaces' addresses are read again (DHCP, IPv6 temporary addresses).
const ADDRESS_RECHECK: Duration = Duration::from_secs(60);
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// What a tracker told us: the peers of one ID, with their addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerNews {
    /// The access ID or key ID.
    pub id: Sha256Hash,
    /// Peer ID → addresses we can dial.
    pub peers: BTreeMap<PeerId, Vec<PeerAddr>>,
}

/// What a tracker client tells the tracker about us.
#[derive(Debug, Clone)]
pub struct Announce {
    /// The current ID → peer ID map.
    pub ids: watch::Receiver<BTreeMap<Sha256Hash, PeerId>>,
    /// The address we listen on (its port is the one peers reach).
    pub listen: SocketAddr,
    /// Addresses port mapping and STUN learned.
    pub learned: watch::Receiver<Vec<PeerAddr>>,
}

/// Runs the client for the tracker at `tracker` forever.
pub async fn run(tracker: String, mut announce: Announce, news: mpsc::Sender<(TrackerNews, &'static str)>) {
    let mut delay = FIRST_RETRY;
    loop {
        match session(&tracker, &mut announce, &news).await {
            Ok(()) => return,
            Err(e) => {
                info!(%tracker, error = %e, retry_in = ?delay, "tracker unavailable");
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RETRY);
    }
}

/// The addresses in a tracker's list worth dialling: well-formed, and never an address that
/// means this computer or no computer (unspecified, multicast, link-local; loopback only
/// from a tracker on this computer), whatever a tracker claims.
pub fn dialable(addrs: &[String], local_tracker: bool) -> Vec<PeerAddr> {
    addrs
        .iter()
        .filter_map(|a| a.parse::<PeerAddr>().ok())
        .filter(|a| {
            clearskies_protocol::address::is_advertisable(a.addr.ip()) || (local_tracker && a.addr.ip().is_loopback())
        })
        .collect()
}

/// Our addresses as we announce them now.
fn our_addresses(announce: &mut Announce, observed: Option<std::net::IpAddr>) -> Vec<String> {
    let interfaces = addresses::interface_ips(announce.listen.ip());
    let learned = announce.learned.borrow_and_update().clone();
    addresses::advertised(announce.listen, observed, &interfaces, &learned).iter().map(ToString::to_string).collect()
}

async fn session(
    tracker: &str,
    announce: &mut Announce,
    news: &mpsc::Sender<(TrackerNews, &'static str)>,
) -> std::io::Result<()> {
    let stream = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(tracker))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = stream.set_nodelay(true);
    // A tracker on this computer (tests, a private setup) may list loopback addresses.
    let local_tracker = stream.peer_addr().is_ok_and(|a| a.ip().is_loopback());
    let (read, mut write) = stream.into_split();
    let mut reader = MessageReader::new(read);
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let greeting = match tokio::time::timeout(Duration::from_secs(30), reader.next()).await {
        Ok(Ok(Some(Message::TrackerGreeting(g)))) => g,
        Ok(Ok(_)) => return Err(bad("expected tracker.greeting")),
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(bad("no greeting")),
    };
    if !greeting.protocol.contains(&1) {
        return Err(bad("the tracker does not speak protocol 1"));
    }
    let ttl = TTL.clamp(greeting.min_ttl.max(1), greeting.max_ttl.max(greeting.min_ttl.max(1)));
    let start = Start { software: crate::SOFTWARE.to_owned(), protocol: 1, ttl, extensions: Vec::new() };
    let observed = addresses::parse_your_ip(&greeting.your_ip);
    let mut sent = our_addresses(announce, observed);
    let mut out = encode(&start.into());
    out.extend(encode(&Connection { addresses: sent.clone() }.into()));
    out.extend(encode(&Register { ids: announce.ids.borrow_and_update().clone() }.into()));
    write.write_all(&out).await?;
    info!(%tracker, addresses = ?sent, "registered with the tracker");
    let mut recheck = tokio::time::interval(ADDRESS_RECHECK);
    recheck.tick().await;
    let mut ping = tokio::time::interval(Duration::from_secs((ttl / 2).max(1)));
    ping.tick().await;
    loop {
        tokio::select! {
            m = reader.next() => match m? {
                Some(Message::TrackerPeers(p)) => {
                    let peers = p
                        .peers
                        .into_iter()
                        .map(|(peer, addrs)| (peer, dialable(&addrs, local_tracker)))
                        .collect();
                    debug!(%tracker, id = %p.id, "peers from the tracker");
                    if news.send((TrackerNews { id: p.id, peers }, "tracker")).await.is_err() {
                        return Ok(());
                    }
                }
                Some(_) => {}
                None => return Err(bad("the tracker closed the connection")),
            },
            changed = announce.ids.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let register = Register { ids: announce.ids.borrow_and_update().clone() };
                write.write_all(&encode(&register.into())).await?;
            }
            // A new address (learned, or an interface's) is announced at once.
            _ = async { announce.learned.changed().await.ok() }, if announce.learned.has_changed().is_ok() => {
                sent = resend_if_changed(tracker, announce, observed, sent, &mut write).await?;
            }
            _ = recheck.tick() => {
                sent = resend_if_changed(tracker, announce, observed, sent, &mut write).await?;
            }
            _ = ping.tick() => {
                write.write_all(&encode(&Ping {}.into())).await?;
            }
        }
    }
}

/// Sends a new `tracker.connection` if our addresses are no longer `sent`; the addresses
/// now.
async fn resend_if_changed(
    tracker: &str,
    announce: &mut Announce,
    observed: Option<std::net::IpAddr>,
    sent: Vec<String>,
    write: &mut (impl AsyncWriteExt + Unpin),
) -> std::io::Result<Vec<String>> {
    let now = our_addresses(announce, observed);
    if now != sent {
        write.write_all(&encode(&Connection { addresses: now.clone() }.into())).await?;
        info!(%tracker, addresses = ?now, "our addresses changed; told the tracker");
    }
    Ok(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_addresses_of_other_computers_are_dialled() {
        let listed: Vec<String> = [
            "tcp:192.168.1.5:49221",
            "tcp:127.0.0.1:6379",
            "tcp:0.0.0.0:22",
            "tcp:[::1]:80",
            "tcp:[fe80::1]:49221",
            "tcp:224.0.0.1:49221",
            "utp:203.0.113.9:49221",
            "http://example.org",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let got: Vec<String> = dialable(&listed, false).iter().map(ToString::to_string).collect();
        assert_eq!(got, ["tcp:192.168.1.5:49221", "utp:203.0.113.9:49221"]);
        let local: Vec<String> = dialable(&listed, true).iter().map(ToString::to_string).collect();
        assert_eq!(local, ["tcp:192.168.1.5:49221", "tcp:127.0.0.1:6379", "tcp:[::1]:80", "utp:203.0.113.9:49221"]);
    }
}
