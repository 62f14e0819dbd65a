//! The addresses we tell others to reach us at (`tracker.connection`): the one a tracker
//! sees us at, this computer's own interface addresses (for peers on the same LAN, and IPv6,
//! which has no NAT), and what port mapping and STUN learned.

use std::net::{IpAddr, SocketAddr};

use clearskies_protocol::address::{is_advertisable, PeerAddr};

/// Addresses sent at most: as many as a peer tries ([`crate::transport::MAX_ADDRESSES`]).
pub const MAX_ADVERTISED: usize = crate::transport::MAX_ADDRESSES;

/// The advertisable addresses of this computer's interfaces, each family only if `listen`
/// takes it. Empty if they cannot be read.
pub fn interface_ips(listen: IpAddr) -> Vec<IpAddr> {
    let all = if_addrs::get_if_addrs().unwrap_or_default().into_iter().map(|i| i.ip());
    interleaved(all.filter(|ip| is_advertisable(*ip) && takes(listen, *ip)).collect())
}

/// `ips` with one IPv6 address per /64 (temporary and stable addresses of one network
/// reach the same place), then IPv6 and IPv4 taken in turn, IPv6 first (no NAT in its way),
/// so that a cap on the list keeps both families.
fn interleaved(mut ips: Vec<IpAddr>) -> Vec<IpAddr> {
    ips.sort();
    ips.dedup();
    let mut networks = std::collections::BTreeSet::new();
    let v6: Vec<IpAddr> =
        ips.iter().copied().filter(|ip| ip.is_ipv6() && networks.insert(crate::net::source_of(*ip))).collect();
    let v4: Vec<IpAddr> = ips.iter().copied().filter(IpAddr::is_ipv4).collect();
    let mut out = Vec::with_capacity(v6.len() + v4.len());
    for i in 0..v6.len().max(v4.len()) {
        out.extend(v6.get(i).copied());
        out.extend(v4.get(i).copied());
    }
    out
}

/// Whether a socket listening on `listen` (`crate::net::bind_tcp`: `[::]` is dual-stack)
/// is reached at `ip`.
fn takes(listen: IpAddr, ip: IpAddr) -> bool {
    match listen {
        IpAddr::V6(l) if l.is_unspecified() => true,
        IpAddr::V4(l) if l.is_unspecified() => ip.is_ipv4(),
        specific => specific == ip,
    }
}

/// What to advertise, best first: `learned` (mapped ports, STUN), the address the tracker
/// sees (`observed`, reached at our port if the NAT keeps it or we are not behind one), then
/// `interfaces`; or just `listen` when it is a specific address. No repeats, at most
/// [`MAX_ADVERTISED`].
pub fn advertised(
    listen: SocketAddr,
    observed: Option<IpAddr>,
    interfaces: &[IpAddr],
    learned: &[PeerAddr],
) -> Vec<PeerAddr> {
    let port = listen.port();
    let mut out: Vec<PeerAddr> = Vec::new();
    let mut add = |a: PeerAddr| {
        if !out.contains(&a) && out.len() < MAX_ADVERTISED {
            out.push(a);
        }
    };
    if !listen.ip().is_unspecified() {
        add(PeerAddr::tcp(listen));
    }
    learned.iter().copied().for_each(&mut add);
    if listen.ip().is_unspecified() {
        let own = observed.into_iter().chain(interfaces.iter().copied());
        own.filter(|ip| is_advertisable(*ip)).for_each(|ip| add(PeerAddr::tcp(SocketAddr::new(ip, port))));
    }
    out
}

/// The IP in a `tracker.greeting`'s `your_ip` (`1.2.3.4` or `[2001:db8::1]`).
pub fn parse_your_ip(text: &str) -> Option<IpAddr> {
    let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    bare.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_specific_listen_address_is_all_we_advertise_besides_what_we_learned() {
        let listen = "192.168.1.2:49221".parse().unwrap();
        let learned = [PeerAddr::utp("203.0.113.9:5000".parse().unwrap())];
        let got = advertised(listen, Some(ip("203.0.113.9")), &[ip("10.0.0.1")], &learned);
        let text: Vec<String> = got.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["tcp:192.168.1.2:49221", "utp:203.0.113.9:5000"]);
    }

    #[test]
    fn every_interface_listens_so_learned_then_observed_then_interfaces_are_advertised() {
        let listen = "[::]:49221".parse().unwrap();
        let learned = [PeerAddr::tcp("203.0.113.9:40000".parse().unwrap())];
        let interfaces = [ip("2001:db8::5"), ip("192.168.1.2"), ip("203.0.113.9")];
        let got = advertised(listen, Some(ip("203.0.113.9")), &interfaces, &learned);
        let text: Vec<String> = got.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            ["tcp:203.0.113.9:40000", "tcp:203.0.113.9:49221", "tcp:[2001:db8::5]:49221", "tcp:192.168.1.2:49221"]
        );
        let many: Vec<IpAddr> = (0..40u8).map(|i| IpAddr::from([10, 0, 0, i + 1])).collect();
        assert_eq!(advertised(listen, None, &many, &[]).len(), MAX_ADVERTISED);
    }

    #[test]
    fn interfaces_follow_the_listening_family() {
        assert!(takes(ip("::"), ip("10.0.0.1")) && takes(ip("::"), ip("2001:db8::1")));
        assert!(takes(ip("0.0.0.0"), ip("10.0.0.1")) && !takes(ip("0.0.0.0"), ip("2001:db8::1")));
        assert!(takes(ip("10.0.0.1"), ip("10.0.0.1")) && !takes(ip("10.0.0.1"), ip("10.0.0.2")));
        // Whatever this machine has, loopback is never among them.
        assert!(interface_ips(ip("::")).iter().all(|i| !i.is_loopback()));
    }

    #[test]
    fn interfaces_take_turns_by_family_with_one_ipv6_address_per_network() {
        let got = interleaved(vec![
            ip("2001:db8:1:1::10"),
            ip("2001:db8:1:1::20"),
            ip("2001:db8:1:2::1"),
            ip("192.168.1.2"),
            ip("172.17.0.1"),
            ip("10.8.0.3"),
        ]);
        let want = ["2001:db8:1:1::10", "10.8.0.3", "2001:db8:1:2::1", "172.17.0.1", "192.168.1.2"];
        assert_eq!(got, want.iter().map(|s| ip(s)).collect::<Vec<_>>());
    }

    #[test]
    fn your_ip_is_read_with_or_without_brackets() {
        assert_eq!(parse_your_ip("1.2.3.4"), Some(ip("1.2.3.4")));
        assert_eq!(parse_your_ip("[2001:db8::1]"), Some(ip("2001:db8::1")));
        assert_eq!(parse_your_ip("::ffff:1.2.3.4"), Some(ip("1.2.3.4")));
        assert_eq!(parse_your_ip("nonsense"), None);
    }
}
