//! The UDP side of the peer port: one socket on the TCP listening port's number (so one
//! port forward or mapping covers both), dual-stack like the TCP listener. STUN answers on it
//! go to the STUN client by transaction ID; everything else goes to uTP (the socket is the
//! [`librqbit_utp::Transport`] of the daemon's uTP socket), which drops what is not uTP.
//! Sending from the same socket is what makes hole punching work: the public address STUN
//! learns is the one the NAT gives the uTP packets too.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use clearskies_protocol::address::canonical;
use clearskies_protocol::stun::{self, BindingResponse, TransactionId};
use librqbit_utp::PollSendToVectored;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tracing::debug;

/// STUN transactions waiting for an answer, at most (each is one of our own requests).
const MAX_PENDING: usize = 16;
/// The waits before each datagram of a hole punch.
const PUNCH_WAITS: [std::time::Duration; 3] =
    [std::time::Duration::ZERO, std::time::Duration::from_millis(500), std::time::Duration::from_millis(1500)];
/// The largest datagram read (anything longer is cut, and then is not STUN).
const MAX_DATAGRAM: usize = 2048;

type Waiting = HashMap<TransactionId, oneshot::Sender<(BindingResponse, SocketAddr)>>;

/// The peer port's UDP socket.
#[derive(Debug, Clone)]
pub struct UdpPort {
    socket: Arc<UdpSocket>,
    /// Where it is bound (read once: sending needs its family for every datagram).
    local: SocketAddr,
    waiting: Arc<Mutex<Waiting>>,
    /// Datagrams that were not an answer we wait for.
    pub ignored: Arc<AtomicU64>,
}

impl UdpPort {
    /// Serves `socket`: call [`UdpPort::receive`] in a task of its own.
    pub fn new(socket: UdpSocket) -> io::Result<Self> {
        let local = socket.local_addr()?;
        Ok(UdpPort { socket: Arc::new(socket), local, waiting: Arc::default(), ignored: Arc::default() })
    }

    /// The local address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Reads datagrams for ever, handing STUN answers to whoever waits for them and
    /// dropping the rest (when no uTP socket reads this port).
    pub async fn receive(self) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let _ = self.next_datagram(&mut buf).await;
            self.ignored.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The next datagram that is not a STUN answer we wait for (those are handed over
    /// here), and its canonical source. Receive errors are not returned: on Linux they are
    /// ICMP errors for earlier sends to anyone (a closed port, an unreachable host), and
    /// must not end the reader; a run of them is paced so that a broken socket cannot spin.
    async fn next_datagram(&self, buf: &mut [u8]) -> (usize, SocketAddr) {
        let mut errors = 0u32;
        loop {
            let (n, from) = match self.socket.recv_from(buf).await {
                Ok(got) => got,
                Err(e) => {
                    debug!(error = %e, "UDP peer port: receive error");
                    errors = errors.saturating_add(1);
                    if errors % 64 == 0 {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                    continue;
                }
            };
            let from = canonical(from);
            if !self.answer(buf.get(..n).unwrap_or_default(), from) {
                return (n, from);
            }
        }
    }

    /// `to` as this socket sends to it: an IPv4 address goes out IPv4-mapped on a
    /// dual-stack socket.
    fn target(&self, to: SocketAddr) -> SocketAddr {
        match (self.local, to) {
            (SocketAddr::V6(_), SocketAddr::V4(v4)) => SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port()),
            _ => to,
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
        self.socket.send_to(datagram, self.target(to)).await.map(drop)
    }

    /// Opens our NAT for `peer`'s packets: a STUN Binding indication to it now and twice
    /// more within two seconds (one may be lost). A peer dialling us over uTP at the same
    /// time then gets through a cone NAT: its SYN re-sends arrive after the hole is open.
    /// The peer's side drops the indications (they are neither an answer nor uTP).
    pub async fn punch(&self, peer: SocketAddr) {
        for wait in PUNCH_WAITS {
            tokio::time::sleep(wait).await;
            let mut id = [0u8; 12];
            if getrandom::fill(&mut id).is_err() {
                return;
            }
            if let Err(e) = self.send_to(&stun::binding_indication(TransactionId(id)), peer).await {
                debug!(%peer, error = %e, "hole punch: cannot send");
                return;
            }
        }
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

impl PollSendToVectored for UdpPort {
    fn poll_send_to_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        self.socket.poll_send_to_vectored(cx, bufs, self.target(target))
    }
}

impl librqbit_utp::Transport for UdpPort {
    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        Ok(self.next_datagram(buf).await)
    }

    fn send_to<'a>(
        &'a self,
        buf: &'a [u8],
        target: SocketAddr,
    ) -> impl Future<Output = io::Result<usize>> + Send + Sync + 'a {
        self.socket.send_to(buf, self.target(target))
    }

    fn poll_send_to(&self, cx: &mut Context<'_>, buf: &[u8], target: SocketAddr) -> Poll<io::Result<usize>> {
        self.socket.poll_send_to(cx, buf, self.target(target))
    }

    fn bind_addr(&self) -> SocketAddr {
        self.local
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
