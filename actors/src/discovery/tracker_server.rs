//! `clearskies tracker`: the tracker server. One task owns the [`Tracker`] state; each
//! connection has a reader task and a writer task with a bounded queue (a client that does
//! not read its news is dropped rather than buffered without bound).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clearskies_protocol::message::Message;
use clearskies_protocol::tracker::{ClientId, Config, Tracker};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, info};

use super::wire::{encode, MessageReader};

/// Messages queued for one client before it is considered stuck and dropped.
const CLIENT_QUEUE: usize = 256;
/// A connection that has not sent `tracker.start` by then is closed.
const START_TIMEOUT: Duration = Duration::from_secs(30);

enum Event {
    Connected(ClientId, SocketAddr, mpsc::Sender<Vec<u8>>),
    Message(ClientId, Message),
    Gone(ClientId, String),
}

fn format_ip(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("[{}]", a.ip()),
        },
    }
}

/// Listens on `addr` with a deep accept queue (thousands of clients connect at once after a
/// tracker restart). Call inside a tokio runtime.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let domain = if addr.is_ipv6() { socket2::Domain::IPV6 } else { socket2::Domain::IPV4 };
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    TcpListener::from_std(s.into())
}

/// Serves the tracker protocol on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, config: Config) -> std::io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<Event>(4096);
    let accept_tx = tx.clone();
    tokio::spawn(async move {
        let mut next: ClientId = 1;
        loop {
            let (stream, addr) = crate::net::accept("tracker", || listener.accept()).await;
            let id = next;
            next += 1;
            spawn_client(id, stream, addr, accept_tx.clone());
        }
    });
    drop(tx);
    let mut tracker = Tracker::new(config);
    let mut clients: HashMap<ClientId, mpsc::Sender<Vec<u8>>> = HashMap::new();
    loop {
        let wake = tracker.next_expiry().map(tokio::time::Instant::from_std);
        let event = match wake {
            Some(at) => tokio::select! {
                e = rx.recv() => e,
                () = tokio::time::sleep_until(at) => {
                    let (gone, news) = tracker.expire(Instant::now());
                    for id in gone {
                        debug!(client = id, "client expired (silent longer than its TTL)");
                        clients.remove(&id);
                    }
                    deliver(&mut tracker, &mut clients, news);
                    continue;
                }
            },
            None => rx.recv().await,
        };
        let Some(event) = event else { return Ok(()) };
        match event {
            Event::Connected(id, addr, out) => {
                let greeting = tracker.connect(id, &format_ip(&addr), Instant::now());
                if out.try_send(encode(&greeting)).is_ok() {
                    clients.insert(id, out);
                }
            }
            Event::Message(id, m) => match tracker.handle(id, m, Instant::now()) {
                Ok(news) => deliver(&mut tracker, &mut clients, news),
                Err(e) => {
                    info!(client = id, error = %e, "client dropped");
                    clients.remove(&id);
                    let news = tracker.disconnect(id);
                    deliver(&mut tracker, &mut clients, news);
                }
            },
            Event::Gone(id, why) => {
                if why.starts_with("malformed") {
                    info!(client = id, reason = %why, "client dropped");
                } else {
                    debug!(client = id, reason = %why, "client gone");
                }
                clients.remove(&id);
                let news = tracker.disconnect(id);
                deliver(&mut tracker, &mut clients, news);
            }
        }
    }
}

/// Sends news; a client whose queue is full is dropped (and its clubs told).
fn deliver(
    tracker: &mut Tracker,
    clients: &mut HashMap<ClientId, mpsc::Sender<Vec<u8>>>,
    news: Vec<(ClientId, Message)>,
) {
    let mut queue = news;
    while !queue.is_empty() {
        let mut more = Vec::new();
        for (to, m) in queue {
            let Some(out) = clients.get(&to) else { continue };
            if out.try_send(encode(&m)).is_err() {
                info!(client = to, "client not reading its news; dropped");
                clients.remove(&to);
                more.extend(tracker.disconnect(to));
            }
        }
        queue = more;
    }
}

fn spawn_client(id: ClientId, stream: TcpStream, addr: SocketAddr, events: mpsc::Sender<Event>) {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(CLIENT_QUEUE);
    tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if write.write_all(&m).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        if events.send(Event::Connected(id, addr, out_tx)).await.is_err() {
            return;
        }
        let mut reader = MessageReader::new(read);
        let mut first = true;
        let why = loop {
            let next = if first {
                first = false;
                match tokio::time::timeout(START_TIMEOUT, reader.next()).await {
                    Ok(r) => r,
                    Err(_) => break "no tracker.start in time".to_owned(),
                }
            } else {
                reader.next().await
            };
            match next {
                Ok(Some(m)) => {
                    if events.send(Event::Message(id, m)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break "closed".to_owned(),
                Err(e) => break format!("malformed input: {e}"),
            }
        };
        let _ = events.send(Event::Gone(id, why)).await;
    });
}
