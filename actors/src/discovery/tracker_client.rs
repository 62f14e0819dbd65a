//! The daemon's side of one tracker: connect, `tracker.start`, announce our address and
//! every ID we know (again whenever they change), ping within the TTL, and report the peers
//! the tracker tells us about. Reconnects with backoff; a tracker restart is just that.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use clearskies_protocol::message::tracker::{Connection, Ping, Register, Start};
use clearskies_protocol::message::Message;
use clearskies_protocol::{PeerId, Sha256Hash};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info};

use super::wire::{encode, MessageReader};

/// TTL we ask for (clamped to what the tracker allows).
const TTL: u64 = 60;
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// What a tracker told us: the peers of one ID, with their TCP addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerNews {
    /// The access ID or key ID.
    pub id: Sha256Hash,
    /// Peer ID → addresses we can dial.
    pub peers: BTreeMap<PeerId, Vec<SocketAddr>>,
}

/// `tcp:HOST:PORT` → a socket address (IP literals only; other protocols are skipped).
pub fn parse_tcp(address: &str) -> Option<SocketAddr> {
    address.strip_prefix("tcp:")?.parse().ok()
}

/// Runs the client for the tracker at `tracker` forever. `ids` is the current ID → peer ID
/// map; `listen_port` the port peers reach us on (our address is the one the tracker sees,
/// or `listen_ip` when we listen on a specific address).
pub async fn run(
    tracker: String,
    mut ids: watch::Receiver<BTreeMap<Sha256Hash, PeerId>>,
    listen_ip: Option<std::net::IpAddr>,
    listen_port: u16,
    news: mpsc::Sender<(TrackerNews, &'static str)>,
) {
    let mut delay = FIRST_RETRY;
    loop {
        match session(&tracker, &mut ids, listen_ip, listen_port, &news).await {
            Ok(()) => return,
            Err(e) => {
                info!(%tracker, error = %e, retry_in = ?delay, "tracker unavailable");
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RETRY);
    }
}

async fn session(
    tracker: &str,
    ids: &mut watch::Receiver<BTreeMap<Sha256Hash, PeerId>>,
    listen_ip: Option<std::net::IpAddr>,
    listen_port: u16,
    news: &mpsc::Sender<(TrackerNews, &'static str)>,
) -> std::io::Result<()> {
    let stream = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(tracker))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = stream.set_nodelay(true);
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
    let ip = match listen_ip.filter(|ip| !ip.is_unspecified()) {
        Some(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        Some(ip) => ip.to_string(),
        None => greeting.your_ip.clone(),
    };
    let connection = Connection { addresses: vec![format!("tcp:{ip}:{listen_port}")] };
    let mut out = encode(&start.into());
    out.extend(encode(&connection.into()));
    out.extend(encode(&Register { ids: ids.borrow_and_update().clone() }.into()));
    write.write_all(&out).await?;
    info!(%tracker, address = %format!("tcp:{ip}:{listen_port}"), "registered with the tracker");
    let mut ping = tokio::time::interval(Duration::from_secs((ttl / 2).max(1)));
    ping.tick().await;
    loop {
        tokio::select! {
            m = reader.next() => match m? {
                Some(Message::TrackerPeers(p)) => {
                    let peers = p
                        .peers
                        .into_iter()
                        .map(|(peer, addrs)| (peer, addrs.iter().filter_map(|a| parse_tcp(a)).collect()))
                        .collect();
                    debug!(%tracker, id = %p.id, "peers from the tracker");
                    if news.send((TrackerNews { id: p.id, peers }, "tracker")).await.is_err() {
                        return Ok(());
                    }
                }
                Some(_) => {}
                None => return Err(bad("the tracker closed the connection")),
            },
            changed = ids.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let register = Register { ids: ids.borrow_and_update().clone() };
                write.write_all(&encode(&register.into())).await?;
            }
            _ = ping.tick() => {
                write.write_all(&encode(&Ping {}.into())).await?;
            }
        }
    }
}
