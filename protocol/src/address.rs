//! Peer addresses as `tracker.connection` and `tracker.peers` carry them (core.md, "Tracker
//! Protocol"): a transport, then an IP literal and a port, `tcp:192.168.1.2:49221`,
//! `tcp:[2600:3c01::1]:49221`, `utp:1.2.1.1:3824`. Host names are not addresses here: a
//! tracker repeats whatever a client sent, so anything else is skipped, never resolved.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// How a peer is reached at an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transport {
    /// TCP.
    Tcp,
    /// uTP (BEP 29) over UDP.
    Utp,
}

impl Transport {
    /// The address prefix: `tcp` or `utp`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Utp => "utp",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A transport and a socket address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerAddr {
    /// How to connect.
    pub transport: Transport,
    /// Where (IPv4-mapped IPv6 addresses are kept as IPv4: see [`PeerAddr::new`]).
    pub addr: SocketAddr,
}

impl PeerAddr {
    /// `addr` over `transport`; an IPv4-mapped IPv6 address (how a dual-stack socket sees
    /// an IPv4 peer) becomes the IPv4 address, so one peer has one spelling.
    pub fn new(transport: Transport, addr: SocketAddr) -> Self {
        PeerAddr { transport, addr: canonical(addr) }
    }

    /// As a user writes it to dial it (`--peer`, the `peers` setting) and as remembered
    /// peers are saved: `HOST:PORT` for TCP, `utp:HOST:PORT` for uTP.
    pub fn dial_string(&self) -> String {
        match self.transport {
            Transport::Tcp => self.addr.to_string(),
            Transport::Utp => self.to_string(),
        }
    }

    /// A TCP address.
    pub fn tcp(addr: SocketAddr) -> Self {
        PeerAddr::new(Transport::Tcp, addr)
    }

    /// A uTP address.
    pub fn utp(addr: SocketAddr) -> Self {
        PeerAddr::new(Transport::Utp, addr)
    }
}

/// `addr` with an IPv4-mapped IPv6 address turned into the IPv4 address.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Whether `ip` is worth telling a peer about: not unspecified, loopback, multicast or
/// link-local (a link-local IPv6 address needs a zone that means nothing to the peer).
pub fn is_advertisable(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_loopback() || v4.is_multicast() || v4.is_link_local()),
        IpAddr::V6(v6) => {
            let link_local = (v6.segments()[0] & 0xffc0) == 0xfe80;
            !(v6.is_unspecified() || v6.is_loopback() || v6.is_multicast() || link_local)
        }
    }
}

/// Whether `ip` is reachable from the internet at large: advertisable, and not a private
/// (RFC 1918, RFC 4193), shared carrier-grade NAT (RFC 6598) or benchmarking range. A
/// router whose own "external" address is not public sits behind another NAT.
pub fn is_public(ip: IpAddr) -> bool {
    if !is_advertisable(ip) {
        return false;
    }
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            let shared = a == 100 && (64..128).contains(&b);
            let benchmarking = a == 198 && (b == 18 || b == 19);
            !(v4.is_private() || shared || benchmarking || v4.is_broadcast())
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) != 0xfc00,
    }
}

impl fmt::Display for PeerAddr {
    /// `tcp:1.2.3.4:5`, `utp:[::1]:5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

/// Why text is not a peer address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddrError {
    /// Neither `tcp:` nor `utp:`.
    #[error("not a tcp: or utp: address")]
    Transport,
    /// Not an IP literal with a port (IPv6 in brackets).
    #[error("not IP:PORT (IPv6 in brackets)")]
    Socket,
}

impl FromStr for PeerAddr {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, AddrError> {
        let (transport, rest) = s.split_once(':').ok_or(AddrError::Transport)?;
        let transport = match transport {
            "tcp" => Transport::Tcp,
            "utp" => Transport::Utp,
            _ => return Err(AddrError::Transport),
        };
        let addr: SocketAddr = rest.parse().map_err(|_| AddrError::Socket)?;
        if addr.port() == 0 {
            return Err(AddrError::Socket);
        }
        Ok(PeerAddr::new(transport, addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_dial_string_is_bare_for_tcp_and_prefixed_for_utp() {
        let at: SocketAddr = "[2001:db8::1]:5000".parse().unwrap();
        assert_eq!(PeerAddr::tcp(at).dial_string(), "[2001:db8::1]:5000");
        assert_eq!(PeerAddr::utp(at).dial_string(), "utp:[2001:db8::1]:5000");
        assert_eq!(PeerAddr::utp(at).dial_string().parse::<PeerAddr>().ok(), Some(PeerAddr::utp(at)));
    }

    #[test]
    fn the_spec_examples_parse_and_print_back() {
        for text in ["tcp:192.168.1.2:49221", "tcp:[2600:3c01::f03c:91ff:feae:914c]:49221", "utp:1.2.1.1:3824"] {
            let parsed: PeerAddr = text.parse().unwrap();
            assert_eq!(parsed.to_string(), text);
        }
        let utp: PeerAddr = "utp:1.2.1.1:3824".parse().unwrap();
        assert_eq!(utp.transport, Transport::Utp);
    }

    #[test]
    fn anything_else_is_refused() {
        for text in [
            "",
            "tcp",
            "tcp:",
            "udp:1.2.3.4:5",
            "tcp:example.org:80",
            "tcp:1.2.3.4",
            "tcp:1.2.3.4:0",
            "tcp:1.2.3.4:65536",
            "tcp:::1:80",
            "TCP:1.2.3.4:5",
        ] {
            assert!(text.parse::<PeerAddr>().is_err(), "{text:?}");
        }
    }

    #[test]
    fn ipv4_mapped_addresses_are_kept_as_ipv4() {
        let mapped: PeerAddr = "tcp:[::ffff:10.0.0.1]:7".parse().unwrap();
        assert_eq!(mapped.to_string(), "tcp:10.0.0.1:7");
        let seen = PeerAddr::tcp("[::ffff:10.0.0.1]:7".parse().unwrap());
        assert_eq!(seen, mapped);
    }

    #[test]
    fn only_addresses_a_peer_can_use_are_advertisable() {
        for ip in ["0.0.0.0", "127.0.0.1", "169.254.1.1", "224.0.0.1", "::", "::1", "fe80::1", "ff02::1"] {
            assert!(!is_advertisable(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["192.168.1.2", "203.0.113.7", "2001:db8::7", "fd00::1", "::ffff:192.168.1.2"] {
            assert!(is_advertisable(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn public_addresses_exclude_private_and_carrier_grade_nat_ranges() {
        for ip in ["10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.3.2", "100.127.0.1", "fd00::1", "127.0.0.1"] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["11.0.0.3", "100.128.0.1", "172.32.0.1", "2001:db8::1", "203.0.113.7"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    proptest! {
        #[test]
        fn any_text_parses_or_is_refused_without_panicking(s in ".{0,64}") {
            if let Ok(a) = s.parse::<PeerAddr>() {
                prop_assert_eq!(a.to_string().parse::<PeerAddr>(), Ok(a));
            }
        }
    }
}
