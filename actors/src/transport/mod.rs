//! The byte streams a secure channel runs over (TCP, or uTP on the peer port's UDP
//! socket), and dialling a peer that has several addresses: each is tried in turn, a new one
//! every [`STAGGER`] while the earlier ones are still connecting (happy eyeballs, RFC 8305),
//! and the first to connect is used. A peer's list mixes LAN and public, IPv4 and IPv6, TCP
//! and uTP addresses, most of which may not answer from here: waiting out each one's timeout
//! in turn would take minutes.

pub mod udp;
pub mod utp;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
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
#[non_exhaustive]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// uTP (BEP 29), on the peer port's UDP socket.
    Utp(Box<librqbit_utp::UtpStream>),
}

impl Stream {
    /// The transport it runs over.
    pub fn transport(&self) -> Transport {
        match self {
            Stream::Tcp(_) => Transport::Tcp,
            Stream::Utp(_) => Transport::Utp,
        }
    }

    /// Small writes go out at once (the protocol's messages are latency-bound; uTP's
    /// socket is opened without Nagle).
    fn set_nodelay(&self) {
        if let Stream::Tcp(s) = self {
            let _ = s.set_nodelay(true);
        }
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stream::Tcp(s) => s.fmt(f),
            Stream::Utp(s) => f.debug_struct("UtpStream").field("remote", &s.remote_addr()).finish_non_exhaustive(),
        }
    }
}

impl From<librqbit_utp::UtpStream> for Stream {
    fn from(s: librqbit_utp::UtpStream) -> Self {
        Stream::Utp(Box::new(s))
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
            Stream::Utp(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Utp(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Utp(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Utp(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            // A uTP flush waits until the peer has acknowledged every byte written (the
            // send buffer is the unacknowledged window); written bytes go out without one.
            // Waiting for that on every flush would drain the pipe once per batch.
            Stream::Utp(_) => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Utp(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Dials peers: TCP always, uTP when the daemon has its UDP peer port (cloned into every
/// task that dials; the default dials TCP only).
#[derive(Debug, Clone, Default)]
pub struct Dialer {
    utp: Option<Arc<utp::UtpSocket>>,
    udp: Option<udp::UdpPort>,
    /// When the current minute of punching began, and the addresses punched in it.
    punched: Arc<std::sync::Mutex<(Option<std::time::Instant>, usize)>>,
}

/// Addresses from news (a tracker's, a LAN broadcast's) a daemon sends uTP to per minute, at
/// most, punching or dialling: a hostile tracker must not make us send datagrams to anyone
/// at will. (Remembered and configured addresses do not count.)
pub const MAX_UDP_TARGETS_PER_MINUTE: usize = 256;

impl Dialer {
    /// A dialer that also dials `utp:` addresses, and punches holes, on `side`.
    pub fn new(side: Option<&utp::UdpSide>) -> Self {
        Dialer { utp: side.map(|s| s.utp.clone()), udp: side.map(|s| s.udp.clone()), punched: Arc::default() }
    }

    /// Punches a hole in our NAT for each public uTP address in `addrs` (see
    /// [`udp::UdpPort::punch`]), in the background: for a peer that is dialling us now. At
    /// most [`MAX_UDP_TARGETS_PER_MINUTE`] addresses a minute; the others are skipped.
    pub fn punch(&self, addrs: &[PeerAddr]) {
        let Some(udp) = &self.udp else { return };
        let public =
            |a: &&PeerAddr| a.transport == Transport::Utp && clearskies_protocol::address::is_public(a.addr.ip());
        let targets: Vec<SocketAddr> = addrs.iter().filter(public).take(MAX_ADDRESSES).map(|a| a.addr).collect();
        let allowed = self.allow_punches(targets.len());
        if allowed < targets.len() {
            tracing::debug!(skipped = targets.len() - allowed, "hole punching: over the limit for this minute");
        }
        for to in targets.into_iter().take(allowed) {
            let udp = udp.clone();
            tokio::spawn(async move { udp.punch(to).await });
        }
    }

    /// `addrs` without the uTP addresses beyond this minute's budget (which the rest are
    /// taken from): for dialling addresses news gave.
    pub fn within_budget(&self, addrs: Vec<PeerAddr>) -> Vec<PeerAddr> {
        let utp = addrs.iter().filter(|a| a.transport == Transport::Utp).count();
        let mut allowed = self.allow_punches(utp);
        if allowed < utp {
            tracing::debug!(skipped = utp - allowed, "uTP to addresses from news: over the limit for this minute");
        }
        addrs
            .into_iter()
            .filter(|a| {
                a.transport != Transport::Utp || {
                    let ok = allowed > 0;
                    allowed = allowed.saturating_sub(1);
                    ok
                }
            })
            .collect()
    }

    /// How many of `wanted` punches the minute's budget allows (and takes them from it).
    fn allow_punches(&self, wanted: usize) -> usize {
        let mut punched = self.punched.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        if punched.0.is_none_or(|since| now.duration_since(since) >= Duration::from_secs(60)) {
            *punched = (Some(now), 0);
        }
        let allowed = wanted.min(MAX_UDP_TARGETS_PER_MINUTE.saturating_sub(punched.1));
        punched.1 += allowed;
        allowed
    }

    /// Whether it can dial `addr`.
    pub fn can_dial(&self, addr: &PeerAddr) -> bool {
        addr.transport == Transport::Tcp || self.utp.is_some()
    }

    /// Connects to one address, within [`CONNECT_TIMEOUT`].
    pub async fn connect(&self, addr: PeerAddr) -> io::Result<Stream> {
        let attempt = async {
            match (addr.transport, &self.utp) {
                (Transport::Tcp, _) => TcpStream::connect(addr.addr).await.map(Stream::from),
                (Transport::Utp, Some(socket)) => utp::connect(socket, addr.addr).await.map(Stream::from),
                (Transport::Utp, None) => {
                    Err(io::Error::new(io::ErrorKind::Unsupported, "uTP is off (no UDP peer port)"))
                }
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, attempt)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {addr} timed out")))?
    }

    /// The addresses worth trying, in the order given, without repeats, at most
    /// [`MAX_ADDRESSES`].
    pub fn candidates(&self, addrs: impl IntoIterator<Item = PeerAddr>) -> Vec<PeerAddr> {
        let mut out: Vec<PeerAddr> = Vec::new();
        for a in addrs {
            if self.can_dial(&a) && !out.contains(&a) && out.len() < MAX_ADDRESSES {
                out.push(a);
            }
        }
        out
    }

    /// Connects to the first of `addrs` to answer, starting one attempt every [`STAGGER`]
    /// (or at once when the one before fails). Every error, if none connects.
    pub async fn connect_first(&self, addrs: &[PeerAddr]) -> Result<(Stream, PeerAddr), io::Error> {
        let mut pending = addrs.iter().copied();
        let mut running = FuturesUnordered::new();
        let mut errors = Vec::new();
        let start_next = |running: &mut FuturesUnordered<_>, next: Option<PeerAddr>| match next {
            Some(a) => {
                running.push(async move { (a, self.connect(a).await) });
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

    /// Every address `target` resolves to: `HOST:PORT` as TCP addresses, `utp:HOST:PORT`
    /// (or `tcp:HOST:PORT`) as that transport's.
    pub async fn resolve(&self, target: &str) -> io::Result<Vec<PeerAddr>> {
        let (transport, host) = match target.split_once(':') {
            Some(("utp", rest)) => (Transport::Utp, rest),
            Some(("tcp", rest)) => (Transport::Tcp, rest),
            _ => (Transport::Tcp, target),
        };
        let found: Vec<SocketAddr> = tokio::net::lookup_host(host).await?.collect();
        let addrs = self.candidates(found.into_iter().map(|a| PeerAddr::new(transport, a)));
        if addrs.is_empty() {
            let why = if transport == Transport::Utp && self.utp.is_none() { " (uTP is off here)" } else { "" };
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("{target} resolves to no address{why}")));
        }
        Ok(addrs)
    }
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
        let list = Dialer::default().candidates([dead, utp, live_addr, dead]);
        assert_eq!(list, vec![dead, live_addr], "uTP skipped, repeats dropped");
        let (stream, addr) = Dialer::default().connect_first(&list).await.unwrap();
        assert_eq!(addr, live_addr);
        assert_eq!(stream.transport(), Transport::Tcp);

        let err = Dialer::default().connect_first(&[dead]).await.unwrap_err();
        assert!(err.to_string().contains(&dead.to_string()), "{err}");
        assert_eq!(Dialer::default().connect_first(&[]).await.unwrap_err().kind(), io::ErrorKind::NotFound);
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

    #[test]
    fn punches_are_limited_per_minute() {
        let d = Dialer::default();
        assert_eq!(d.allow_punches(200), 200);
        assert_eq!(d.allow_punches(200), MAX_UDP_TARGETS_PER_MINUTE - 200);
        assert_eq!(d.allow_punches(1), 0, "none left this minute");
        assert_eq!(d.clone().allow_punches(1), 0, "the budget is shared by clones");
        let tcp = PeerAddr::tcp("11.0.0.9:4000".parse().unwrap());
        let utp = PeerAddr::utp("11.0.0.9:4000".parse().unwrap());
        assert_eq!(
            d.within_budget(vec![utp, tcp]),
            vec![tcp],
            "uTP to news' addresses shares the budget; TCP does not"
        );
        let fresh = Dialer::default();
        assert_eq!(fresh.within_budget(vec![utp, tcp]), vec![utp, tcp]);
    }

    #[tokio::test]
    async fn a_silent_address_does_not_hold_up_the_next() {
        let (_queue_full, _first, silent) = silent();
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live_addr = PeerAddr::tcp(live.local_addr().unwrap());
        let started = std::time::Instant::now();
        let (_, addr) = Dialer::default().connect_first(&[silent, live_addr]).await.unwrap();
        assert_eq!(addr, live_addr);
        assert!(started.elapsed() < CONNECT_TIMEOUT / 2, "took {:?}", started.elapsed());
    }
}
