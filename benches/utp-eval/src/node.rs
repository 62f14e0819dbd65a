//! One listening/dialing endpoint per transport kind, behind one interface.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Mutex};

use crate::udp::{SharedUdp, Shared};

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub enum Stream {
    Io(Box<dyn Io>),
    /// utp-rs has no AsyncRead/AsyncWrite: only `write` and `read_to_eof`.
    #[cfg(feature = "ethutp")]
    Eth(utp_rs::stream::UtpStream<SocketAddr>),
}

#[cfg(feature = "rqbit")]
mod rq {
    use std::time::Duration;
    /// librqbit-utp does not export its environment type; take it from the public alias.
    pub trait EnvOf {
        type E;
    }
    impl<T, E> EnvOf for librqbit_utp::UtpSocket<T, E> {
        type E = E;
    }
    pub type Env = <librqbit_utp::UtpSocketUdp as EnvOf>::E;
    pub type SharedSock = librqbit_utp::UtpSocket<crate::udp::Shared, Env>;

    /// Defaults, plus knobs from the environment for experiments:
    /// RQ_CC=cubic|ledbat (vendored crate's default: ledbat), RQ_LEDBAT_TARGET_MS=<ms>,
    /// RQ_CC_TRACE=1, RQ_TX_INIT=<bytes>, RQ_RX=<bytes>, RQ_NO_NAGLE=1, RQ_MAX_VSOCKS=<n>.
    pub fn opts() -> librqbit_utp::SocketOpts {
        use std::num::NonZeroUsize;
        let env = |k: &str| std::env::var(k).ok();
        let mut o = librqbit_utp::SocketOpts::default();
        match env("RQ_CC").as_deref() {
            Some("cubic") => o.congestion.kind = librqbit_utp::CongestionControllerKind::Cubic,
            Some("ledbat") | None => {
                o.congestion.kind = librqbit_utp::CongestionControllerKind::Ledbat
            }
            Some(other) => panic!("RQ_CC={other}: cubic or ledbat"),
        }
        if let Some(ms) = env("RQ_LEDBAT_TARGET_MS").and_then(|v| v.parse().ok()) {
            o.congestion.ledbat.target_delay = Duration::from_millis(ms);
        }
        o.congestion.tracing = env("RQ_CC_TRACE").is_some();
        o.vsock_tx_bufsize_bytes_initial = env("RQ_TX_INIT").and_then(|v| v.parse().ok()).and_then(NonZeroUsize::new);
        o.vsock_rx_bufsize_bytes = env("RQ_RX").and_then(|v| v.parse().ok()).and_then(NonZeroUsize::new);
        o.disable_nagle = env("RQ_NO_NAGLE").is_some();
        o.max_live_vsocks = env("RQ_MAX_VSOCKS").and_then(|v| v.parse().ok()).and_then(NonZeroUsize::new);
        o
    }
}

pub enum Inner {
    Tcp(tokio::net::TcpListener),
    #[cfg(feature = "rqbit")]
    Rqbit(Arc<librqbit_utp::UtpSocketUdp>),
    #[cfg(feature = "rqbit")]
    RqbitShared(Arc<rq::SharedSock>),
    #[cfg(feature = "irontide")]
    Iron(irontide_utp::UtpSocket, Mutex<irontide_utp::UtpListener>),
    #[cfg(feature = "ethutp")]
    Eth(Arc<utp_rs::socket::UtpSocket<SocketAddr>>),
    #[cfg(feature = "libutp")]
    Libutp(Arc<libutp_rs2::UtpUdpContext>),
}

#[allow(dead_code)]
pub struct Node {
    pub kind: String,
    pub inner: Inner,
    pub shared: Option<Arc<SharedUdp>>,
    pub stun_rx: Option<mpsc::Receiver<(Vec<u8>, SocketAddr)>>,
}

pub const KINDS: &str =
    "tcp | rqbit | rqbit-shared | irontide | irontide-shared | eth | eth-shared | libutp";

impl Node {
    /// `firewall`: only for *-shared kinds, see udp.rs.
    pub async fn bind(kind: &str, addr: SocketAddr, firewall: bool) -> Result<Node> {
        let mut shared = None;
        let mut stun_rx = None;
        if kind.ends_with("-shared") {
            let (s, rx) = SharedUdp::bind(addr, firewall)?;
            shared = Some(s);
            stun_rx = Some(rx);
        }
        let inner = match kind {
            "tcp" => Inner::Tcp(tokio::net::TcpListener::bind(addr).await?),
            #[cfg(feature = "rqbit")]
            "rqbit" => Inner::Rqbit(
                librqbit_utp::UtpSocketUdp::new_udp_with_opts(addr, rq::opts(), Default::default())
                    .await
                    .map_err(|e| anyhow!("{e:#}"))?,
            ),
            #[cfg(feature = "rqbit")]
            "rqbit-shared" => Inner::RqbitShared(
                rq::SharedSock::new_with_opts(
                    Shared(shared.clone().unwrap()),
                    Default::default(),
                    rq::opts(),
                )
                .map_err(|e| anyhow!("{e:#}"))?,
            ),
            #[cfg(feature = "irontide")]
            "irontide" => {
                let cfg = irontide_utp::UtpConfig { bind_addr: addr, ..Default::default() };
                let (s, l) = irontide_utp::UtpSocket::bind(cfg).await?;
                Inner::Iron(s, Mutex::new(l))
            }
            #[cfg(feature = "irontide")]
            "irontide-shared" => {
                let cfg = irontide_utp::UtpConfig { bind_addr: addr, ..Default::default() };
                let (s, l) = irontide_utp::UtpSocket::bind_with_transport(
                    Box::new(Shared(shared.clone().unwrap())),
                    cfg,
                )?;
                Inner::Iron(s, Mutex::new(l))
            }
            #[cfg(feature = "ethutp")]
            "eth" => Inner::Eth(Arc::new(utp_rs::socket::UtpSocket::bind(addr).await?)),
            #[cfg(feature = "ethutp")]
            "eth-shared" => Inner::Eth(Arc::new(utp_rs::socket::UtpSocket::with_socket(Shared(
                shared.clone().unwrap(),
            )))),
            #[cfg(feature = "libutp")]
            "libutp" => Inner::Libutp(
                libutp_rs2::UtpUdpContext::new_udp_with_opts(
                    addr,
                    libutp_rs2::UtpOpts { udp_rcvbuf: Some(4 << 20), ..Default::default() },
                )
                .await?,
            ),
            k => bail!("unknown kind {k}; one of {KINDS}"),
        };
        Ok(Node { kind: kind.to_string(), inner, shared, stun_rx })
    }

    pub async fn accept(&self) -> Result<(Stream, SocketAddr)> {
        Ok(match &self.inner {
            Inner::Tcp(l) => {
                let (s, a) = l.accept().await?;
                s.set_nodelay(true)?;
                (Stream::Io(Box::new(s)), a)
            }
            #[cfg(feature = "rqbit")]
            Inner::Rqbit(s) => {
                let st = s.accept().await.map_err(|e| anyhow!("{e:#}"))?;
                let a = st.remote_addr();
                (Stream::Io(Box::new(st)), a)
            }
            #[cfg(feature = "rqbit")]
            Inner::RqbitShared(s) => {
                let st = s.accept().await.map_err(|e| anyhow!("{e:#}"))?;
                let a = st.remote_addr();
                (Stream::Io(Box::new(st)), a)
            }
            #[cfg(feature = "irontide")]
            Inner::Iron(_, l) => {
                let (st, a) = l.lock().await.accept().await?;
                (Stream::Io(Box::new(st)), a)
            }
            #[cfg(feature = "ethutp")]
            Inner::Eth(s) => {
                let st = s.accept(utp_rs::conn::ConnectionConfig::default()).await?;
                let a = st.cid().peer_id;
                (Stream::Eth(st), a)
            }
            #[cfg(feature = "libutp")]
            Inner::Libutp(c) => {
                let st = c.accept().await?;
                (Stream::Io(Box::new(st)), "0.0.0.0:0".parse()?)
            }
        })
    }

    pub async fn connect(&self, to: SocketAddr, timeout: Duration) -> Result<Stream> {
        let fut = async {
            Ok::<_, anyhow::Error>(match &self.inner {
                Inner::Tcp(_) => {
                    let sock = if to.is_ipv4() {
                        tokio::net::TcpSocket::new_v4()?
                    } else {
                        tokio::net::TcpSocket::new_v6()?
                    };
                    // TCP_CC=cubic|reno|bbr: the sender's congestion control (setsockopt;
                    // the namespace sysctl only allows reno and bbr here).
                    if let Ok(cc) = std::env::var("TCP_CC") {
                        socket2::SockRef::from(&sock).set_tcp_congestion(cc.as_bytes())?;
                    }
                    let s = sock.connect(to).await?;
                    s.set_nodelay(true)?;
                    Stream::Io(Box::new(s))
                }
                #[cfg(feature = "rqbit")]
                Inner::Rqbit(s) => {
                    Stream::Io(Box::new(s.connect(to).await.map_err(|e| anyhow!("{e:#}"))?))
                }
                #[cfg(feature = "rqbit")]
                Inner::RqbitShared(s) => {
                    Stream::Io(Box::new(s.connect(to).await.map_err(|e| anyhow!("{e:#}"))?))
                }
                #[cfg(feature = "irontide")]
                Inner::Iron(s, _) => Stream::Io(Box::new(s.connect(to).await?)),
                #[cfg(feature = "ethutp")]
                Inner::Eth(s) => Stream::Eth(
                    s.connect(
                        utp_rs::peer::Peer::new(to),
                        utp_rs::conn::ConnectionConfig::default(),
                    )
                    .await?,
                ),
                #[cfg(feature = "libutp")]
                Inner::Libutp(c) => Stream::Io(Box::new(c.connect(to).await?)),
            })
        };
        tokio::time::timeout(timeout, fut).await.context("connect timed out")?
    }
}

/// For a TCP "node" used as a client: a fresh connect each time, the listener unused.
pub async fn client_node(kind: &str, bind: SocketAddr) -> Result<Node> {
    Node::bind(kind, bind, false).await
}

impl Stream {
    /// Writes all of `buf`.
    pub async fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        match self {
            Stream::Io(s) => Ok(s.write_all(buf).await?),
            #[cfg(feature = "ethutp")]
            Stream::Eth(s) => {
                let mut off = 0;
                while off < buf.len() {
                    off += s.write(&buf[off..]).await?;
                }
                Ok(())
            }
        }
    }

    /// Half-closes (Io) / closes (utp-rs, waits for the peer's ack of all data).
    pub async fn finish(&mut self) -> Result<()> {
        match self {
            Stream::Io(s) => Ok(s.shutdown().await?),
            #[cfg(feature = "ethutp")]
            Stream::Eth(s) => Ok(s.close().await?),
        }
    }

    pub fn io(&mut self) -> Option<&mut Box<dyn Io>> {
        match self {
            Stream::Io(s) => Some(s),
            #[cfg(feature = "ethutp")]
            Stream::Eth(_) => None,
        }
    }

    /// Reads until EOF, calling `on_bytes` with each chunk's size. Returns total.
    pub async fn drain(&mut self, mut on_bytes: impl FnMut(usize)) -> Result<u64> {
        let mut total = 0u64;
        match self {
            Stream::Io(s) => {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = s.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                    on_bytes(n);
                }
            }
            #[cfg(feature = "ethutp")]
            Stream::Eth(s) => {
                let mut v = Vec::new();
                let n = s.read_to_eof(&mut v).await?;
                total = n as u64;
                on_bytes(n);
            }
        }
        Ok(total)
    }
}
