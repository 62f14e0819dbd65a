//! The byte streams a secure channel runs over, and dialling a peer that has several
//! addresses: each is tried in turn, a new one every [`STAGGER`] while the earlier ones are
//! still connecting (happy eyeballs, RFC 8305), and the first to connect is used. A peer's
//! list mixes LAN and public, IPv4 and IPv6 addresses, most of which may not answer from
//! here: waiting out each one's timeout in turn would take minutes.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use clearskies_protocol::address::{PeerAddr, Transport};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How long one address gets to connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The head start each address gets before the next one is tried too.
pub const STAGGER: Duration = Duration::from_millis(250);
/// Addresses of one peer tried at most (a tracker or a broadcast may claim any number).
pub const MAX_ADDRESSES: usize = 8;

/// A connected stream to a peer.
#[derive(Debug)]
#[non_exhaustive]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
}

impl Stream {
    /// The transport it runs over.
    pub fn transport(&self) -> Transport {
        match self {
            Stream::Tcp(_) => Transport::Tcp,
        }
    }

    /// Small writes go out at once (the protocol's messages are latency-bound).
    fn set_nodelay(&self) {
        match self {
            Stream::Tcp(s) => {
                let _ = s.set_nodelay(true);
            }
        }
    }
}

impl From<TcpStream> for Stream {
    fn from(s: TcpStream) -> Self {
        let s = Stream::Tcp(s);
        s.set_nodelay();
        s
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Whether this build can dial `addr` (uTP addresses are skipped until it has uTP).
pub fn can_dial(addr: &PeerAddr) -> bool {
    addr.transport == Transport::Tcp
}

/// Connects to one address, within [`CONNECT_TIMEOUT`].
pub async fn connect(addr: PeerAddr) -> io::Result<Stream> {
    let attempt = async {
        match addr.transport {
            Transport::Tcp => TcpStream::connect(addr.addr).await.map(Stream::from),
            Transport::Utp => Err(io::Error::new(io::ErrorKind::Unsupported, "uTP is not supported")),
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {addr} timed out")))?
}

/// The addresses worth trying, in the order given, without repeats, at most
/// [`MAX_ADDRESSES`].
pub fn candidates(addrs: impl IntoIterator<Item = PeerAddr>) -> Vec<PeerAddr> {
    let mut out: Vec<PeerAddr> = Vec::new();
    for a in addrs {
        if can_dial(&a) && !out.contains(&a) && out.len() < MAX_ADDRESSES {
            out.push(a);
        }
    }
    out
}

/// Connects to the first of `addrs` to answer, starting one attempt every [`STAGGER`] (or
/// at once when the one before fails). Every error, if none connects.
pub async fn connect_first(addrs: &[PeerAddr]) -> Result<(Stream, PeerAddr), io::Error> {
    let mut pending = addrs.iter().copied();
    let mut running = FuturesUnordered::new();
    let mut errors = Vec::new();
    let start_next = |running: &mut FuturesUnordered<_>, next: Option<PeerAddr>| match next {
        Some(a) => {
            running.push(async move { (a, connect(a).await) });
            true
        }
        None => false,
    };
    start_next(&mut running, pending.next());
    loop {
        if running.is_empty() && !start_next(&mut running, pending.next()) {
            break;
        }
        tokio::select! {
            Some((addr, result)) = running.next() => match result {
                Ok(stream) => return Ok((stream, addr)),
                Err(e) => {
                    errors.push(format!("{addr}: {e}"));
                    start_next(&mut running, pending.next());
                }
            },
            () = tokio::time::sleep(STAGGER) => {
                start_next(&mut running, pending.next());
            }
        }
    }
    let kind = if errors.is_empty() { io::ErrorKind::NotFound } else { io::ErrorKind::ConnectionRefused };
    let message = if errors.is_empty() { "no address to dial".to_owned() } else { errors.join("; ") };
    Err(io::Error::new(kind, message))
}

/// Every address `target` (`HOST:PORT`) resolves to, as TCP addresses.
pub async fn resolve(target: &str) -> io::Result<Vec<PeerAddr>> {
    let found: Vec<SocketAddr> = tokio::net::lookup_host(target).await?.collect();
    let addrs = candidates(found.into_iter().map(PeerAddr::tcp));
    if addrs.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("{target} resolves to no address")));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An address nothing listens on (a port just freed).
    fn closed() -> PeerAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        PeerAddr::tcp(l.local_addr().unwrap())
    }

    #[tokio::test]
    async fn the_first_address_that_answers_wins_and_the_dead_ones_are_named() {
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live_addr = PeerAddr::tcp(live.local_addr().unwrap());
        let (dead, utp) = (closed(), PeerAddr::utp(live_addr.addr));
        let list = candidates([dead, utp, live_addr, dead]);
        assert_eq!(list, vec![dead, live_addr], "uTP skipped, repeats dropped");
        let (stream, addr) = connect_first(&list).await.unwrap();
        assert_eq!(addr, live_addr);
        assert_eq!(stream.transport(), Transport::Tcp);

        let err = connect_first(&[dead]).await.unwrap_err();
        assert!(err.to_string().contains(&dead.to_string()), "{err}");
        assert_eq!(connect_first(&[]).await.unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    /// A loopback address that never answers: a listener whose accept queue is full, so
    /// the kernel drops further SYNs and their connects hang.
    fn silent() -> (socket2::Socket, std::net::TcpStream, PeerAddr) {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
        s.listen(0).unwrap();
        let addr = s.local_addr().unwrap().as_socket().unwrap();
        let first = std::net::TcpStream::connect(addr).unwrap();
        (s, first, PeerAddr::tcp(addr))
    }

    #[tokio::test]
    async fn a_silent_address_does_not_hold_up_the_next() {
        let (_queue_full, _first, silent) = silent();
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live_addr = PeerAddr::tcp(live.local_addr().unwrap());
        let started = std::time::Instant::now();
        let (_, addr) = connect_first(&[silent, live_addr]).await.unwrap();
        assert_eq!(addr, live_addr);
        assert!(started.elapsed() < CONNECT_TIMEOUT / 2, "took {:?}", started.elapsed());
    }
}
