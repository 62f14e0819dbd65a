//! One UDP socket shared by uTP and STUN, plus the per-crate transport glue.
//!
//! `SharedUdp` owns the socket. Every datagram read from it is classified: STUN (RFC 5389:
//! top two bits of byte 0 clear, magic cookie 0x2112A442 at bytes 4..8, and
//! 20 + length == datagram size) goes to a channel; everything else goes to the uTP
//! implementation. Sends of either kind go straight to the socket.
//!
//! Optional "firewall" emulation (for the hole-punching test): inbound datagrams from an
//! address are dropped until we have sent something to that address, as a stateful NAT or
//! firewall would do.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

pub const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];

/// True if the datagram is a STUN message (RFC 5389 section 6 framing).
pub fn is_stun(d: &[u8]) -> bool {
    d.len() >= 20
        && d[0] & 0xC0 == 0
        && d[4..8] == STUN_MAGIC_COOKIE
        && usize::from(u16::from_be_bytes([d[2], d[3]])) + 20 == d.len()
}

/// IPv4 peers reach a dual-stack socket as ::ffff:a.b.c.d; the uTP layer sees plain v4.
pub fn canonical(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        v4 => v4,
    }
}

#[derive(Debug, Default)]
pub struct Counters {
    pub stun_in: AtomicU64,
    pub stun_dropped: AtomicU64,
    pub fw_dropped: AtomicU64,
}

#[derive(Debug)]
pub struct SharedUdp {
    sock: UdpSocket,
    v6: bool,
    local: SocketAddr,
    stun_tx: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    firewall: Option<Mutex<HashSet<SocketAddr>>>,
    pub counters: Counters,
}

impl SharedUdp {
    /// Binds `addr`. An unspecified IPv6 address ([::]) is bound dual-stack (IPV6_V6ONLY off).
    /// Returns the socket and the receiving end of the STUN channel.
    pub fn bind(
        addr: SocketAddr,
        firewall: bool,
    ) -> io::Result<(Arc<Self>, mpsc::Receiver<(Vec<u8>, SocketAddr)>)> {
        use socket2::{Domain, Protocol, Socket, Type};
        let domain = if addr.is_ipv6() { Domain::IPV6 } else { Domain::IPV4 };
        let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
        if addr.is_ipv6() {
            s.set_only_v6(false)?;
        }
        // Room for a few connections' windows; the kernel caps it at net.core.rmem_max.
        let _ = s.set_recv_buffer_size(4 << 20);
        let _ = s.set_send_buffer_size(4 << 20);
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        let sock = UdpSocket::from_std(s.into())?;
        let local = sock.local_addr()?;
        let (stun_tx, stun_rx) = mpsc::channel(64);
        Ok((
            Arc::new(Self {
                sock,
                v6: addr.is_ipv6(),
                local,
                stun_tx,
                firewall: firewall.then(|| Mutex::new(HashSet::new())),
                counters: Counters::default(),
            }),
            stun_rx,
        ))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn out_addr(&self, a: SocketAddr) -> SocketAddr {
        match (self.v6, a) {
            (true, SocketAddr::V4(v4)) => {
                SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
            }
            _ => a,
        }
    }

    fn note_sent(&self, to: SocketAddr) {
        if let Some(fw) = &self.firewall {
            fw.lock().unwrap().insert(canonical(to));
        }
    }

    /// Sends one datagram (uTP or STUN: the socket does not care).
    pub async fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.note_sent(to);
        self.sock.send_to(buf, self.out_addr(to)).await
    }

    pub fn poll_send_to(
        &self,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
        to: SocketAddr,
    ) -> std::task::Poll<io::Result<usize>> {
        self.note_sent(to);
        self.sock.poll_send_to(cx, buf, self.out_addr(to))
    }

    #[cfg(feature = "rqbit")]
    pub fn poll_send_to_vectored(
        &self,
        cx: &mut std::task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
        to: SocketAddr,
    ) -> std::task::Poll<io::Result<usize>> {
        use librqbit_dualstack_sockets::PollSendToVectored;
        self.note_sent(to);
        self.sock.poll_send_to_vectored(cx, bufs, self.out_addr(to))
    }

    /// Receives the next datagram meant for uTP. STUN datagrams met on the way are handed to
    /// the STUN channel (dropped if it is full). Cancel-safe: the only await is the socket's.
    pub async fn recv_utp(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.sock.recv_from(buf).await?;
            let from = canonical(from);
            if is_stun(&buf[..n]) {
                self.counters.stun_in.fetch_add(1, Ordering::Relaxed);
                if self.stun_tx.try_send((buf[..n].to_vec(), from)).is_err() {
                    self.counters.stun_dropped.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
            if let Some(fw) = &self.firewall {
                if !fw.lock().unwrap().contains(&from) {
                    self.counters.fw_dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            return Ok((n, from));
        }
    }
}

/// Newtype so each crate's transport trait can be implemented on an `Arc<SharedUdp>`.
#[derive(Debug, Clone)]
pub struct Shared(pub Arc<SharedUdp>);

#[cfg(feature = "rqbit")]
mod rqbit_glue {
    use super::*;
    use std::future::Future;
    use std::task::{Context, Poll};

    impl librqbit_dualstack_sockets::PollSendToVectored for Shared {
        fn poll_send_to_vectored(
            &self,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
            target: SocketAddr,
        ) -> Poll<io::Result<usize>> {
            self.0.poll_send_to_vectored(cx, bufs, target)
        }
    }

    impl librqbit_utp::Transport for Shared {
        fn recv_from<'a>(
            &'a self,
            buf: &'a mut [u8],
        ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send + Sync + 'a {
            self.0.recv_utp(buf)
        }

        fn send_to<'a>(
            &'a self,
            buf: &'a [u8],
            target: SocketAddr,
        ) -> impl Future<Output = io::Result<usize>> + Send + Sync + 'a {
            self.0.send_to(buf, target)
        }

        fn poll_send_to(
            &self,
            cx: &mut Context<'_>,
            buf: &[u8],
            target: SocketAddr,
        ) -> Poll<io::Result<usize>> {
            self.0.poll_send_to(cx, buf, target)
        }

        fn bind_addr(&self) -> SocketAddr {
            self.0.local_addr()
        }
    }
}

#[cfg(feature = "irontide")]
mod irontide_glue {
    use super::*;

    #[async_trait::async_trait]
    impl irontide_utp::UdpTransport for Shared {
        async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
            self.0.recv_utp(buf).await
        }
        async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> io::Result<usize> {
            self.0.send_to(buf, addr).await
        }
        fn local_addr(&self) -> io::Result<SocketAddr> {
            Ok(self.0.local_addr())
        }
    }
}

#[cfg(feature = "ethutp")]
mod eth_glue {
    use super::*;
    use utp_rs::peer::Peer;

    #[async_trait::async_trait]
    impl utp_rs::udp::AsyncUdpSocket<SocketAddr> for Shared {
        async fn send_to(&mut self, buf: &[u8], peer: &Peer<SocketAddr>) -> io::Result<usize> {
            self.0.send_to(buf, *peer.id()).await
        }
        async fn recv_from(&mut self, buf: &mut [u8]) -> io::Result<(usize, Peer<SocketAddr>)> {
            let (n, a) = self.0.recv_utp(buf).await?;
            Ok((n, Peer::new(a)))
        }
    }
}

/// Unused-import guard for builds without some features.
#[allow(dead_code)]
fn _unused(_: Ipv6Addr) {}
