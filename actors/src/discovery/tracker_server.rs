//! `clearskies tracker`: the tracker server. One task owns the [`Tracker`] state; each
//! connection has a reader task and a writer task. News is collected from the state at most
//! every [`NEWS_INTERVAL`], at most [`NEWS_PER_ROUND`] messages a round, and only for
//! clients with fewer than [`QUEUE_BYTES`] waiting to be written: a client that does not
//! read its news gets no more until it does (its news is coalesced in the state, bounded by
//! its clubs), and no change costs more than a bounded round of work. Connections beyond
//! [`Config::max_clients`] are closed at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clearskies_protocol::message::Message;
use clearskies_protocol::tracker::{ClientId, Config, Tracker};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, info};

use super::wire::{encode, MessageReader};

/// Bytes waiting to be written to one client beyond which it gets no more news for now.
pub const QUEUE_BYTES: usize = 64 * 1024;
/// News is collected at most this often (changes in between are coalesced).
pub const NEWS_INTERVAL: Duration = Duration::from_millis(500);
/// Messages of news per round at most.
pub const NEWS_PER_ROUND: usize = 2048;
/// A connection that has not sent `tracker.start` by then is closed.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The writing side of a connection: a queue and how many bytes are in it.
#[derive(Debug)]
struct Out {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
}

impl Out {
    fn ready(&self) -> bool {
        self.queued.load(Ordering::Relaxed) < QUEUE_BYTES
    }

    fn send(&self, bytes: Vec<u8>) -> bool {
        self.queued.fetch_add(bytes.len(), Ordering::Relaxed);
        self.tx.send(bytes).is_ok()
    }
}

enum Event {
    Connected(ClientId, SocketAddr, Out),
    Message(ClientId, Message),
    Gone(ClientId, Gone),
}

/// Why a client's reading side ended.
#[derive(Debug)]
enum Gone {
    /// It closed the connection.
    Closed,
    /// It sent no `tracker.start` within [`START_TIMEOUT`].
    NoStart,
    /// It sent something that is not a message: logged at `info`, unlike the others.
    Malformed(std::io::Error),
}

impl std::fmt::Display for Gone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Gone::Closed => f.write_str("closed"),
            Gone::NoStart => f.write_str("no tracker.start in time"),
            Gone::Malformed(e) => write!(f, "malformed input: {e}"),
        }
    }
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
    let s = crate::net::bind_tcp(addr)?;
    s.set_nonblocking(true)?;
    TcpListener::from_std(s)
}

/// Serves the tracker protocol on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, config: Config) -> std::io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<Event>(4096);
    tokio::spawn(accept(listener, tx, config.max_clients));
    let mut server = Server { tracker: Tracker::new(config), clients: HashMap::new() };
    let mut next_round = tokio::time::Instant::now();
    loop {
        let expiry = server.tracker.next_expiry().map(tokio::time::Instant::from_std);
        // News waits for the next round (coalescing what happens meanwhile); a client that
        // was not ready is looked at again a round later.
        let round = server.tracker.has_news().then_some(next_round);
        let event = tokio::select! {
            e = rx.recv() => e,
            () = sleep_until(expiry) => {
                server.expire();
                continue;
            }
            () = sleep_until(round) => {
                server.send_news();
                next_round = tokio::time::Instant::now() + NEWS_INTERVAL;
                continue;
            }
        };
        let Some(event) = event else { return Ok(()) };
        server.handle(event);
    }
}

/// Accepts connections for ever, each a client with the next ID; beyond `max_clients` open
/// connections (started or not), new ones are closed at once.
async fn accept(listener: TcpListener, events: mpsc::Sender<Event>, max_clients: usize) {
    let mut next: ClientId = 1;
    let open = Arc::new(AtomicUsize::new(0));
    let mut refused: u64 = 0;
    loop {
        let (stream, addr) = crate::net::accept("tracker", || listener.accept()).await;
        if open.load(Ordering::Relaxed) >= max_clients {
            refused += 1;
            if refused.is_power_of_two() {
                info!(max_clients, refused, "tracker full: closing new connections");
            }
            continue;
        }
        let id = next;
        next += 1;
        spawn_client(id, stream, addr, events.clone(), open.clone());
    }
}

/// The state [`serve`]'s task owns: the tracker and the writing side of each client.
struct Server {
    tracker: Tracker,
    clients: HashMap<ClientId, Out>,
}

impl Server {
    /// Forgets the clients silent longer than their TTL.
    fn expire(&mut self) {
        for id in self.tracker.expire(Instant::now()) {
            debug!(client = id, "client expired (silent longer than its TTL)");
            self.clients.remove(&id);
        }
    }

    /// One round of news, to the clients ready for more.
    fn send_news(&mut self) {
        let clients = &self.clients;
        let news = self.tracker.take_news(NEWS_PER_ROUND, |c| clients.get(&c).is_some_and(Out::ready));
        for (to, m) in news {
            if let Some(out) = clients.get(&to) {
                out.send(encode(&m));
            }
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Connected(id, addr, out) => match self.tracker.connect(id, &format_ip(&addr), Instant::now()) {
                Ok(greeting) => {
                    if out.send(encode(&greeting)) {
                        self.clients.insert(id, out);
                    }
                }
                // Dropping `out` ends its writer, which closes the connection.
                Err(e) => debug!(client = id, error = %e, "connection refused"),
            },
            Event::Message(id, m) => {
                if let Err(e) = self.tracker.handle(id, m, Instant::now()) {
                    info!(client = id, error = %e, "client dropped");
                    self.disconnect(id);
                }
            }
            Event::Gone(id, why) => {
                if let Gone::Malformed(_) = why {
                    info!(client = id, reason = %why, "client dropped");
                } else {
                    debug!(client = id, reason = %why, "client gone");
                }
                self.disconnect(id);
            }
        }
    }

    fn disconnect(&mut self, id: ClientId) {
        self.clients.remove(&id);
        self.tracker.disconnect(id);
    }
}

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn spawn_client(
    id: ClientId,
    stream: TcpStream,
    addr: SocketAddr,
    events: mpsc::Sender<Event>,
    open: Arc<AtomicUsize>,
) {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let queued = Arc::new(AtomicUsize::new(0));
    let out = Out { tx: out_tx, queued: queued.clone() };
    open.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let written = write.write_all(&m).await;
            queued.fetch_sub(m.len(), Ordering::Relaxed);
            if written.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        // Counted until the reading side ends (the writer ends with the client's entry).
        struct Open(Arc<AtomicUsize>);
        impl Drop for Open {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let _open = Open(open);
        if events.send(Event::Connected(id, addr, out)).await.is_err() {
            return;
        }
        let mut reader = MessageReader::new(read);
        let mut first = true;
        let why = loop {
            let next = if first {
                first = false;
                match tokio::time::timeout(START_TIMEOUT, reader.next()).await {
                    Ok(r) => r,
                    Err(_) => break Gone::NoStart,
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
                Ok(None) => break Gone::Closed,
                Err(e) => break Gone::Malformed(e),
            }
        };
        let _ = events.send(Event::Gone(id, why)).await;
    });
}
