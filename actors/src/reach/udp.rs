//! The UDP side of the peer port: one socket on the TCP listening port's number (so one
//! port forward or mapping covers both), dual-stack like the TCP listener. STUN answers on it
//! go to the STUN client by transaction ID; whatever else arrives is dropped, counted.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use clearskies_protocol::address::canonical;
use clearskies_protocol::stun::{self, BindingResponse, TransactionId};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tracing::debug;

/// STUN transactions waiting for an answer, at most (each is one of our own requests).
const MAX_PENDING: usize = 16;
/// The largest datagram read (anything longer is cut, and then is not STUN).
const MAX_DATAGRAM: usize = 2048;

type Waiting = HashMap<TransactionId, oneshot::Sender<(BindingResponse, SocketAddr)>>;

/// The peer port's UDP socket.
#[derive(Debug, Clone)]
pub struct UdpPort {
    socket: Arc<UdpSocket>,
    waiting: Arc<Mutex<Waiting>>,
    /// Datagrams that were not an answer we wait for.
    pub ignored: Arc<AtomicU64>,
}

impl UdpPort {
    /// Serves `socket`: call [`UdpPort::receive`] in a task of its own.
    pub fn new(socket: UdpSocket) -> Self {
        UdpPort { socket: Arc::new(socket), waiting: Arc::default(), ignored: Arc::default() }
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Reads datagrams for ever, handing STUN answers to whoever waits for them.
    pub async fn receive(self) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let (n, from) = match self.socket.recv_from(&mut buf).await {
                Ok(got) => got,
                // An ICMP error for an earlier send (Linux reports them on the next read).
                Err(e) => {
                    debug!(error = %e, "UDP peer port: receive error");
                    continue;
                }
            };
            let datagram = buf.get(..n).unwrap_or_default();
            if !self.answer(datagram, canonical(from)) {
                self.ignored.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Hands `datagram` to the transaction it answers; whether there was one.
    fn answer(&self, datagram: &[u8], from: SocketAddr) -> bool {
        if !stun::is_stun(datagram) {
            return false;
        }
        let Ok(response) = BindingResponse::decode(datagram) else { return false };
        let waiter = self.waiting.lock().unwrap_or_else(PoisonError::into_inner).remove(&response.transaction_id());
        waiter.is_some_and(|w| w.send((response, from)).is_ok())
    }

    /// Sends `datagram` to `to` (an IPv4 address goes out IPv4-mapped on a dual-stack socket).
    pub async fn send_to(&self, datagram: &[u8], to: SocketAddr) -> io::Result<()> {
        let to = match (self.socket.local_addr()?, to) {
            (SocketAddr::V6(_), SocketAddr::V4(v4)) => SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port()),
            _ => to,
        };
        self.socket.send_to(datagram, to).await.map(drop)
    }

    /// Waits for the answer to transaction `id`; `None` if too many are waiting already.
    pub fn expect(&self, id: TransactionId) -> Option<Expected> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if waiting.len() >= MAX_PENDING {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        waiting.insert(id, tx);
        Some(Expected { id, rx, waiting: self.waiting.clone() })
    }
}

/// An answer being waited for; forgotten when dropped.
#[derive(Debug)]
pub struct Expected {
    id: TransactionId,
    /// Fires with the answer and where it came from.
    pub rx: oneshot::Receiver<(BindingResponse, SocketAddr)>,
    waiting: Arc<Mutex<Waiting>>,
}

impl Drop for Expected {
    fn drop(&mut self) {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.id);
    }
}
