//! uTP (BEP 29) on the peer port's UDP socket: the same TLS + SRP session as over TCP, on
//! the same port number. It is `vendor/librqbit-utp` (LEDBAT congestion control, so a sync
//! yields to the household's other traffic; SYNs re-sent, so a hole punch survives the first
//! one being dropped): see `docs/utp-evaluation.md` for why that implementation.

use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;

use librqbit_utp::{DefaultUtpEnvironment, SocketOpts};
use tokio_util::sync::CancellationToken;

use super::udp::UdpPort;

/// The daemon's uTP socket.
pub type UtpSocket = librqbit_utp::UtpSocket<UdpPort, DefaultUtpEnvironment>;

/// uTP connections open at once, at most. Each holds at most 1 MiB received in order and
/// not yet read, 1 MiB out of order (bounded in bytes by our change to the library) and 1 MiB
/// unacknowledged to send: 192 MiB in all at worst, and peers that authenticated use a
/// fraction of it.
pub const MAX_CONNECTIONS: usize = 64;

/// The UDP socket's receive buffer asked for.
const UDP_RECEIVE_BUFFER: usize = 4 << 20;

/// A uTP socket reading and writing `port` until `stop` is cancelled.
pub fn open(port: UdpPort, stop: CancellationToken) -> io::Result<Arc<UtpSocket>> {
    let opts = SocketOpts {
        // The protocol's messages are latency-bound (as TCP_NODELAY on the TCP side).
        disable_nagle: true,
        max_live_vsocks: NonZeroUsize::new(MAX_CONNECTIONS),
        cancellation_token: stop,
        ..SocketOpts::default()
    };
    UtpSocket::new_with_opts(port, DefaultUtpEnvironment::default(), opts).map_err(io::Error::other)
}

/// A uTP connection to `addr` (which the socket's SYN re-sends make a hole punch when the
/// peer dials us at the same time).
pub async fn connect(socket: &Arc<UtpSocket>, addr: SocketAddr) -> io::Result<librqbit_utp::UtpStream> {
    socket.connect(addr).await.map_err(|e| match e {
        librqbit_utp::Error::ConnectTimedOut { .. } => io::Error::new(io::ErrorKind::TimedOut, "uTP: no answer"),
        e => io::Error::other(format!("uTP: {e}")),
    })
}

/// The peer port's UDP side: its socket (STUN goes out on it) and uTP on it. Opened once by
/// the supervisor and shared (the listener accepts on it, every dialer dials from it), so
/// that an actor's restart does not drop the uTP sessions.
#[derive(Debug, Clone)]
pub struct UdpSide {
    /// The socket.
    pub udp: UdpPort,
    /// uTP on it.
    pub utp: Arc<UtpSocket>,
    stop: CancellationToken,
}

impl UdpSide {
    /// Binds UDP at `listen` (the TCP listener's address and port) and runs uTP on it.
    pub fn open(listen: SocketAddr) -> io::Result<Self> {
        let socket = crate::net::bind_udp(listen)?;
        // Room for bursts while the one dispatcher is busy (as upstream's own UDP socket
        // asks for); the kernel caps it at net.core.rmem_max, which is fine.
        let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(UDP_RECEIVE_BUFFER);
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        let udp = UdpPort::new(socket)?;
        let stop = CancellationToken::new();
        let utp = open(udp.clone(), stop.clone())?;
        Ok(UdpSide { udp, utp, stop })
    }

    /// Stops uTP (its sessions end).
    pub fn close(&self) {
        self.stop.cancel();
    }
}
