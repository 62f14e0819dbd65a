//! uTP (librqbit-utp 0.7) and STUN on one UDP socket, bound to the TCP listening port.
//! Self-contained: depends on librqbit-utp, librqbit-dualstack-sockets (for its
//! `PollSendToVectored` trait, a supertrait of `librqbit_utp::Transport`), socket2, tokio.
//!
//! - `UtpEndpoint::bind(port)`: [::]:port dual-stack (0.0.0.0:port where IPv6 is off).
//!   Returns the endpoint and the receiver of STUN datagrams.
//! - `send_datagram`: send a STUN request/response/keep-alive from that same socket.
//! - `connect(to, timeout)`: librqbit-utp's connect within the timeout. The vendored crate
//!   (vendor/librqbit-utp) re-sends the SYN every 700 ms (at most 14 times): during hole
//!   punching the first one is usually dropped by the peer's NAT. (Upstream 0.7.0 sent one SYN;
//!   this adapter used to start a new attempt every 700 ms instead.)
//! - `accept()`. Streams are `librqbit_utp::UtpStream`: tokio AsyncRead + AsyncWrite + Send.
//!
//! Demux: a datagram is STUN (RFC 5389) if the top two bits of byte 0 are clear, bytes 4..8
//! are the magic cookie and 20 + the length field equals its size. A uTP packet starts with
//! (type << 4) | 1, and would have to carry the cookie as its timestamp and a matching
//! connection id to be taken for STUN (about 1 in 2^48; it would then be lost and resent).

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use librqbit_dualstack_sockets::PollSendToVectored;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

pub use librqbit_utp::UtpStream;

const STUN_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const STUN_QUEUE: usize = 64;

pub fn is_stun(d: &[u8]) -> bool {
    d.len() >= 20
        && d[0] & 0xC0 == 0
        && d[4..8] == STUN_COOKIE
        && usize::from(u16::from_be_bytes([d[2], d[3]])) + 20 == d.len()
}

/// The socket. uTP sees canonical addresses (IPv4 peers as V4, not ::ffff:a.b.c.d).
#[derive(Debug)]
struct Udp {
    sock: UdpSocket,
    v6: bool,
    local: SocketAddr,
    stun_tx: mpsc::Sender<(Vec<u8>, SocketAddr)>,
}

impl Udp {
    fn out(&self, a: SocketAddr) -> SocketAddr {
        match (self.v6, a) {
            (true, SocketAddr::V4(v4)) => {
                SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0).into()
            }
            _ => a,
        }
    }

    /// The next datagram for uTP; STUN ones go to the channel (dropped when it is full).
    /// Cancel-safe (the only await is the socket's own), as the uTP dispatcher needs.
    async fn recv_utp(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.sock.recv_from(buf).await?;
            let from = match from {
                SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
                    Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
                    None => from,
                },
                v4 => v4,
            };
            if is_stun(&buf[..n]) {
                let _ = self.stun_tx.try_send((buf[..n].to_vec(), from));
                continue;
            }
            return Ok((n, from));
        }
    }
}

#[derive(Debug, Clone)]
struct Transport(Arc<Udp>);

impl PollSendToVectored for Transport {
    fn poll_send_to_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
        to: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        self.0.sock.poll_send_to_vectored(cx, bufs, self.0.out(to))
    }
}

impl librqbit_utp::Transport for Transport {
    fn recv_from<'a>(
        &'a self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send + Sync + 'a {
        self.0.recv_utp(buf)
    }
    fn send_to<'a>(
        &'a self,
        buf: &'a [u8],
        to: SocketAddr,
    ) -> impl Future<Output = io::Result<usize>> + Send + Sync + 'a {
        self.0.sock.send_to(buf, self.0.out(to))
    }
    fn poll_send_to(&self, cx: &mut Context<'_>, buf: &[u8], to: SocketAddr) -> Poll<io::Result<usize>> {
        self.0.sock.poll_send_to(cx, buf, self.0.out(to))
    }
    fn bind_addr(&self) -> SocketAddr {
        self.0.local
    }
}

/// librqbit-utp does not export its environment type: take it from the public alias.
trait EnvOf {
    type E;
}
impl<T, E> EnvOf for librqbit_utp::UtpSocket<T, E> {
    type E = E;
}
type Env = <librqbit_utp::UtpSocketUdp as EnvOf>::E;
type Utp = librqbit_utp::UtpSocket<Transport, Env>;

pub type StunRx = mpsc::Receiver<(Vec<u8>, SocketAddr)>;

#[derive(Debug, Clone)]
pub struct UtpEndpoint {
    udp: Arc<Udp>,
    utp: Arc<Utp>,
}

impl UtpEndpoint {
    /// Must be called inside a tokio runtime (librqbit-utp spawns its dispatcher task).
    pub fn bind(port: u16) -> io::Result<(Self, StunRx)> {
        match Self::bind_addr((Ipv6Addr::UNSPECIFIED, port).into()) {
            Ok(x) => Ok(x),
            Err(_) => Self::bind_addr(([0, 0, 0, 0], port).into()),
        }
    }

    pub fn bind_addr(addr: SocketAddr) -> io::Result<(Self, StunRx)> {
        use socket2::{Domain, Protocol, Socket, Type};
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if addr.is_ipv6() {
            s.set_only_v6(false)?;
        }
        let _ = s.set_recv_buffer_size(4 << 20); // capped by net.core.rmem_max
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        let sock = UdpSocket::from_std(s.into())?;
        let local = sock.local_addr()?;
        let (stun_tx, stun_rx) = mpsc::channel(STUN_QUEUE);
        let udp = Arc::new(Udp { sock, v6: addr.is_ipv6(), local, stun_tx });
        let opts = librqbit_utp::SocketOpts {
            // Memory bound: each connection holds at most ~1 MiB rx + 1 MiB tx.
            max_live_vsocks: NonZeroUsize::new(64),
            ..Default::default()
        };
        let utp = Utp::new_with_opts(Transport(udp.clone()), Default::default(), opts)
            .map_err(|e| io::Error::other(format!("{e:#}")))?;
        Ok((Self { udp, utp }, stun_rx))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.udp.local
    }

    pub async fn send_datagram(&self, msg: &[u8], to: SocketAddr) -> io::Result<()> {
        self.udp.sock.send_to(msg, self.udp.out(to)).await.map(|_| ())
    }

    pub async fn accept(&self) -> io::Result<UtpStream> {
        self.utp.accept().await.map_err(|e| io::Error::other(format!("{e:#}")))
    }

    /// The vendored librqbit-utp re-sends the SYN itself (every 700 ms, at most 14 times);
    /// the caller's timeout bounds the wait, and dropping the future stops the re-sends.
    pub async fn connect(&self, to: SocketAddr, timeout: Duration) -> io::Result<UtpStream> {
        match tokio::time::timeout(timeout, self.utp.connect(to)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e @ librqbit_utp::Error::ConnectTimedOut { .. })) => {
                Err(io::Error::new(io::ErrorKind::TimedOut, format!("uTP connect to {to}: {e:#}")))
            }
            Ok(Err(e)) => Err(io::Error::other(format!("uTP connect to {to}: {e:#}"))),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("uTP connect to {to} timed out"),
            )),
        }
    }
}
