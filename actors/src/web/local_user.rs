//! Which user of this computer opened a loopback connection: the interface is served to
//! the daemon's own user only. Every local user can reach 127.0.0.1, and browsers share
//! cookies between all ports of a host, so a session cookie alone could be carried off by
//! another user's server on another port; a login link could be read off a command line.
//! Neither opens anything from another account: the kernel's socket table
//! (`/proc/net/tcp`, `/proc/net/tcp6`) says which uid owns the other end of a connection.
//!
//! Looked up once per connection (actix's `on_connect`), not per request.

use std::net::SocketAddr;

/// The uid that owns the client end of a loopback TCP connection, as actix keeps it with
/// the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientUid(pub(crate) Option<u32>);

/// The uid owning the socket whose address is `client` and whose peer is `server`.
pub(crate) fn uid_of(client: SocketAddr, server: SocketAddr) -> Option<u32> {
    let (client, server) = (canonical(client), canonical(server));
    let (table, want_local, want_remote) = match (client, server) {
        (SocketAddr::V4(c), SocketAddr::V4(s)) => ("/proc/net/tcp", v4(c), v4(s)),
        (SocketAddr::V6(c), SocketAddr::V6(s)) => ("/proc/net/tcp6", v6(c), v6(s)),
        _ => return None,
    };
    let text = std::fs::read_to_string(table).ok()?;
    let found = find(&text, &want_local, &want_remote);
    // An IPv4 client of a dual-stack socket shows as `::ffff:a.b.c.d` in tcp6.
    found.or_else(|| match (client, server) {
        (SocketAddr::V4(c), SocketAddr::V4(s)) => {
            let mapped =
                |a: std::net::SocketAddrV4| v6(std::net::SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0));
            find(&std::fs::read_to_string("/proc/net/tcp6").ok()?, &mapped(c), &mapped(s))
        }
        _ => None,
    })
}

fn canonical(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => a,
        },
        v4 => v4,
    }
}

/// An address as the kernel prints it: each 32-bit word of the address in host order.
fn v4(a: std::net::SocketAddrV4) -> String {
    format!("{:08X}:{:04X}", u32::from_ne_bytes(a.ip().octets()), a.port())
}

fn v6(a: std::net::SocketAddrV6) -> String {
    let o = a.ip().octets();
    let words: String =
        o.chunks_exact(4).map(|w| format!("{:08X}", u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))).collect();
    format!("{words}:{:04X}", a.port())
}

/// The uid column of the line whose local and remote addresses are these.
fn find(table: &str, local: &str, remote: &str) -> Option<u32> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&local) && fields.get(2) == Some(&remote)).then(|| fields.get(7)?.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_connection_is_ours() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        let me = rustix::process::getuid().as_raw();
        assert_eq!(uid_of(peer, listener.local_addr().unwrap()), Some(me));
        // Not a connection that exists.
        let other: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(uid_of(other, listener.local_addr().unwrap()), None);
    }

    #[test]
    fn the_kernel_s_address_format() {
        let a: std::net::SocketAddrV4 = "127.0.0.1:41489".parse().unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(v4(a), "0100007F:A211");
        }
        assert_eq!(
            find("header\n 1: 0100007F:A211 0100007F:9C5C 01 0:0 0:0 0 1000 0 7\n", "0100007F:A211", "0100007F:9C5C"),
            Some(1000)
        );
    }
}
