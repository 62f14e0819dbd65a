//! What the actors that own a listening socket share: taking the worker's bound socket into
//! the runtime, binding TCP dual-stack, and an accept that never ends its loop.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tracing::{info, warn};

/// Pause after a failed accept (out of file descriptors, a connection reset while queued)
/// before trying again.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// A listener bound by the worker (so a busy port fails at start-up), as tokio's, logging
/// `serving` with its address; `None` (logged) if the runtime cannot take it. Call inside
/// the runtime (an actor's `started`).
pub fn tcp_listener(listener: std::net::TcpListener, serving: &str) -> Option<tokio::net::TcpListener> {
    let taken = listener.set_nonblocking(true).and_then(|()| tokio::net::TcpListener::from_std(listener));
    match taken {
        Ok(l) => {
            if let Ok(addr) = l.local_addr() {
                info!(%addr, "{serving}");
            }
            Some(l)
        }
        Err(e) => {
            warn!(error = %e, "cannot use the socket for {serving}");
            None
        }
    }
}

/// The next connection from `accept` (a listener's `accept()`): a failed accept is logged
/// with `what` and retried after a pause, never returned.
pub async fn accept<T, F, Fut>(what: &str, mut accept: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::io::Result<T>>,
{
    loop {
        match accept().await {
            Ok(c) => return c,
            Err(e) => {
                warn!(error = %e, "{what}: accept failed");
                tokio::time::sleep(ACCEPT_PAUSE).await;
            }
        }
    }
}

/// Binds a TCP listener on `addr` (address reuse on, as std's `bind`). The unspecified IPv6
/// address `[::]` listens on IPv4 too (`IPV6_V6ONLY` off, whatever the system default);
/// where the system has no IPv6 at all (a kernel or container without it) that falls back to
/// `0.0.0.0` at the same port, logged. A busy port is an error either way.
pub fn bind_tcp(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    bind_dual(addr, bind_tcp_exact)
}

/// Binds a UDP socket on `addr` (non-blocking), dual-stack and falling back as
/// [`bind_tcp`] does: the peer port's UDP side.
pub fn bind_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    bind_dual(addr, |addr| {
        let socket = dual_stack_socket(addr, socket2::Type::DGRAM)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        Ok(socket.into())
    })
}

/// `bind(addr)`, and for `[::]` on a system without IPv6, `bind(0.0.0.0)` at the same port.
fn bind_dual<T>(addr: SocketAddr, bind: impl Fn(SocketAddr) -> io::Result<T>) -> io::Result<T> {
    match bind(addr) {
        Err(e) if is_dual_stack(addr) && e.kind() != io::ErrorKind::AddrInUse => {
            let v4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, addr.port()));
            warn!(error = %e, fallback = %v4, "cannot use IPv6; IPv4 only");
            bind(v4)
        }
        other => other,
    }
}

/// A socket of `kind` for `addr`'s family; for `[::]`, one that takes IPv4 too.
fn dual_stack_socket(addr: SocketAddr, kind: socket2::Type) -> io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), kind, None)?;
    if is_dual_stack(addr) {
        socket.set_only_v6(false)?;
    }
    Ok(socket)
}

/// Whether `addr` is `[::]`, which [`bind_tcp`] makes dual-stack.
pub fn is_dual_stack(addr: SocketAddr) -> bool {
    matches!(addr.ip(), IpAddr::V6(ip) if ip.is_unspecified())
}

/// The source a connection from `ip` counts against in per-source limits: the IPv4 address,
/// or the IPv6 /64 (one home or one host is given a whole /64, so one attacker has 2^64
/// addresses to spread over).
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

fn bind_tcp_exact(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = dual_stack_socket(addr, socket2::Type::STREAM)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unspecified_ipv6_address_listens_on_ipv4_and_ipv6() {
        let listener = bind_tcp("[::]:0".parse().unwrap()).unwrap();
        let port = listener.local_addr().unwrap().port();
        for target in [format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
            let client = std::net::TcpStream::connect(&target);
            if target.starts_with('[') && client.is_err() && listener.local_addr().unwrap().is_ipv4() {
                continue; // no IPv6 here: bind_tcp fell back to IPv4, as documented
            }
            client.unwrap_or_else(|e| panic!("{target}: {e}"));
            let (_, from) = listener.accept().unwrap();
            assert!(from.ip().is_loopback() || from.ip().to_canonical().is_loopback(), "{from}");
        }
    }

    #[test]
    fn ipv6_sources_count_per_64_and_mapped_ipv4_as_ipv4() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(source_of(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(source_of(ip("2001:db8:1:2:bbbb::9")), source_of(ip("2001:db8:1:2::7")));
        assert_ne!(source_of(ip("2001:db8:1:3::1")), source_of(ip("2001:db8:1:2::1")));
        assert_eq!(source_of(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(source_of(ip("10.1.2.3")), ip("10.1.2.3"));
    }

    #[test]
    fn a_busy_port_is_an_error_not_a_fallback() {
        let first = bind_tcp("[::]:0".parse().unwrap()).unwrap();
        let port = first.local_addr().unwrap().port();
        let second = bind_tcp(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)));
        assert_eq!(second.unwrap_err().kind(), io::ErrorKind::AddrInUse);
    }
}
