//! The adapter for librqbit-utp: one UDP socket on the TCP listening port, shared by uTP and
//! STUN. (The socket and the STUN demux are in udp.rs: `SharedUdp`, `Shared`.)
//!
//! - `UtpEndpoint::bind(port)` binds [::]:port dual-stack (falls back to 0.0.0.0:port where
//!   IPv6 is off) and returns the receiving end of the STUN channel.
//! - `send_stun` sends any datagram (a STUN request, a response, a keep-alive) from that socket.
//! - `connect` dials with a timeout; the vendored librqbit-utp re-sends the SYN every 700 ms
//!   (upstream 0.7.0 sent it once, and this adapter started a new attempt every 700 ms):
//!   needed when the first SYN is dropped by the peer's NAT during hole punching.
//! - `accept` gives the next incoming stream. Both are tokio AsyncRead + AsyncWrite.
//!
//! `demo()` (utp-eval stun-demo) runs the self-contained copy in clearskies_adapter.rs end to
//! end with a local STUN responder; this copy adds the firewall emulation for `sim adapter`.

use std::io;
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::stun;
use crate::udp::{Shared, SharedUdp};

/// librqbit-utp does not export its environment type; take it from the public alias.
trait EnvOf {
    type E;
}
impl<T, E> EnvOf for librqbit_utp::UtpSocket<T, E> {
    type E = E;
}
type Env = <librqbit_utp::UtpSocketUdp as EnvOf>::E;
type Utp = librqbit_utp::UtpSocket<Shared, Env>;

pub use librqbit_utp::UtpStream;

pub type StunRx = mpsc::Receiver<(Vec<u8>, SocketAddr)>;


#[derive(Debug, Clone)]
pub struct UtpEndpoint {
    udp: Arc<SharedUdp>,
    utp: Arc<Utp>,
}

#[allow(dead_code)]
impl UtpEndpoint {
    pub async fn bind(port: u16) -> io::Result<(Self, StunRx)> {
        let v6: SocketAddr = (Ipv6Addr::UNSPECIFIED, port).into();
        match Self::bind_addr(v6, false) {
            Ok(x) => Ok(x),
            Err(_) => Self::bind_addr(([0, 0, 0, 0], port).into(), false),
        }
    }

    /// `firewall`: the test-only NAT emulation of udp.rs.
    pub fn bind_addr(addr: SocketAddr, firewall: bool) -> io::Result<(Self, StunRx)> {
        let (udp, stun_rx) = SharedUdp::bind(addr, firewall)?;
        let opts = librqbit_utp::SocketOpts {
            // Bounds: at most this many live connections (each up to rx 1 MiB + tx 1 MiB).
            max_live_vsocks: std::num::NonZeroUsize::new(64),
            ..Default::default()
        };
        let utp = Utp::new_with_opts(Shared(udp.clone()), Default::default(), opts)
            .map_err(|e| io::Error::other(format!("{e:#}")))?;
        Ok((Self { udp, utp }, stun_rx))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.udp.local_addr()
    }

    /// Sends a datagram (STUN) from the shared socket.
    pub async fn send_stun(&self, msg: &[u8], to: SocketAddr) -> io::Result<()> {
        self.udp.send_to(msg, to).await.map(|_| ())
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

/// Binds TCP on [::]:port, dual-stack, beside the UDP socket (port 0: the UDP one's).
pub fn bind_tcp_dual(port: u16) -> io::Result<tokio::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV6, Type::STREAM, None)?;
    s.set_only_v6(false)?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)).into())?;
    s.listen(128)?;
    tokio::net::TcpListener::from_std(s.into())
}

use crate::clearskies_adapter::UtpEndpoint as Ep;

/// A STUN Binding request through the endpoint; waits for the matching response.
pub async fn stun_binding(
    ep: &Ep,
    stun_rx: &mut StunRx,
    server: SocketAddr,
    timeout: Duration,
) -> Result<SocketAddr> {
    let tx: [u8; 12] = rand::random();
    ep.send_datagram(&stun::binding_request(tx), server).await?;
    let end = tokio::time::Instant::now() + timeout;
    loop {
        let (m, _from) = tokio::time::timeout_at(end, stun_rx.recv())
            .await
            .context("STUN timeout")?
            .context("STUN channel closed")?;
        if stun::txid(&m) == tx {
            return stun::parse_binding_response(&m).context("not a Binding success");
        }
    }
}

/// A STUN responder on its own socket (stands in for a public STUN server).
async fn stun_server() -> Result<SocketAddr> {
    let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let addr = s.local_addr()?;
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            let m = &buf[..n];
            if crate::udp::is_stun(m) && stun::is_binding_request(m) {
                let _ = s.send_to(&stun::binding_response(stun::txid(m), from), from).await;
            }
        }
    });
    Ok(addr)
}

pub async fn demo() -> Result<()> {
    let stun_addr = stun_server().await?;
    // A: uTP + STUN on UDP port P, TCP on the same port P.
    let (a, mut a_stun) = Ep::bind(0)?;
    let port = a.local_addr().port();
    let tcp = bind_tcp_dual(port)?;
    println!("A: udp {} (dual-stack) and tcp {}", a.local_addr(), tcp.local_addr()?);
    let (b, _b_stun) = Ep::bind(0)?;

    // 1. STUN binding through the shared socket.
    let mapped = stun_binding(&a, &mut a_stun, stun_addr, Duration::from_secs(2)).await?;
    println!("1. STUN via the shared socket: mapped address {mapped}");
    ensure!(mapped.port() == port);

    // 2. uTP over IPv4 and IPv6 to the same socket; STUN keep-alives during a transfer.
    const LEN: usize = 8 << 20;
    let acceptor = {
        let a = a.clone();
        tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..2 {
                let mut s = a.accept().await?;
                let mut v = vec![0u8; LEN];
                s.read_exact(&mut v).await?;
                s.write_all(&(v.len() as u64).to_be_bytes()).await?;
                s.flush().await?;
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).await?; // the peer's clean close
                got.push((s.remote_addr(), v.len(), rest.len()));
            }
            Ok::<_, anyhow::Error>(got)
        })
    };
    let keepalive = {
        let a = a.clone();
        tokio::spawn(async move {
            // 50 Binding requests during the transfers, answered through A's STUN channel.
            let mut ok = 0;
            for _ in 0..50 {
                if stun_binding(&a, &mut a_stun, stun_addr, Duration::from_secs(1)).await.is_ok() {
                    ok += 1;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            ok
        })
    };
    for to in [SocketAddr::from(([127, 0, 0, 1], port)), SocketAddr::from((Ipv6Addr::LOCALHOST, port))]
    {
        let t = Instant::now();
        let mut s = b.connect(to, Duration::from_secs(3)).await?;
        let connect_ms = t.elapsed().as_secs_f64() * 1e3;
        s.write_all(&vec![7u8; LEN]).await?;
        let mut n = [0u8; 8];
        s.read_exact(&mut n).await?;
        s.shutdown().await?; // clean close
        println!(
            "2. uTP to {to}: connect {connect_ms:.1} ms, sent 8 MiB, peer counted {} bytes, {:.0} ms",
            u64::from_be_bytes(n),
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    println!("   accepted (remote, bytes, bytes after) : {:?}", acceptor.await??);
    println!("   STUN keep-alives answered during the transfers: {}/50", keepalive.await?);

    // 2b. Half-close: after B's FIN, can A still send to B (as TCP allows)?
    let a2 = a.clone();
    let acc = tokio::spawn(async move {
        let mut s = a2.accept().await?;
        let mut v = Vec::new();
        s.read_to_end(&mut v).await?; // B's FIN
        let w = s.write_all(b"after your FIN").await;
        let f = s.shutdown().await;
        Ok::<_, anyhow::Error>(format!("write after peer FIN -> {w:?}, shutdown -> {f:?}"))
    });
    let mut s = b.connect(SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(3)).await?;
    s.write_all(b"hello").await?;
    s.shutdown().await?;
    let mut v = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut v)).await;
    println!("2b. half-close: A: {}; B read after its own FIN: {:?} bytes={:?}", acc.await??, r.map(|x| x.map_err(|e| e.kind())), String::from_utf8_lossy(&v));

    // 3. TCP on the same port number.
    let t = tokio::spawn(async move { tcp.accept().await.map(|(_, a)| a) });
    let _c = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    println!("3. TCP on the same port {port}: accepted from {}", t.await??);

    // 4. Connect timeout to a port where nothing answers.
    let t = Instant::now();
    let r = b.connect("127.0.0.1:9".parse()?, Duration::from_secs(2)).await;
    println!("4. connect to a silent port: {:?} after {:.2} s", r.err().map(|e| e.kind()), t.elapsed().as_secs_f64());
    Ok(())
}
