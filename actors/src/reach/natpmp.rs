//! NAT-PMP (RFC 6886) with the default gateway: its external address, and a mapping of the
//! peer port for TCP and UDP. Requests go from a socket of their own, connected to the
//! gateway's port 5351, so only the gateway's answers are read and an ICMP "port
//! unreachable" (a router without NAT-PMP) fails the request at once.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use clearskies_protocol::natpmp::{self, Protocol, Request, Response};
use tokio::net::UdpSocket;

/// Tries per request: the RFC's first four waits (250 ms doubling, 3.75 s in all) rather
/// than its nine (over two minutes): a gateway that has not answered by then has no NAT-PMP,
/// and UPnP is tried next.
const TRIES: usize = 4;

/// The IPv4 default gateway in `/proc/net/route`'s text (`None` if there is none).
pub fn default_gateway(route_table: &str) -> Option<Ipv4Addr> {
    const RTF_UP: u32 = 0x1;
    const RTF_GATEWAY: u32 = 0x2;
    route_table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (destination, gateway, flags) = (fields.get(1)?, fields.get(2)?, fields.get(3)?);
        let flags = u32::from_str_radix(flags, 16).ok()?;
        let wanted = *destination == "00000000" && flags & (RTF_UP | RTF_GATEWAY) == RTF_UP | RTF_GATEWAY;
        // The kernel writes the address as a native-endian (little-endian here) u32.
        wanted.then(|| u32::from_str_radix(gateway, 16).ok().map(|g| Ipv4Addr::from(g.swap_bytes())))?
    })
}

/// The system's IPv4 default gateway.
pub fn system_gateway() -> Option<Ipv4Addr> {
    default_gateway(&std::fs::read_to_string("/proc/net/route").ok()?)
}

/// The gateway's NAT-PMP server address.
pub fn server(gateway: Ipv4Addr) -> SocketAddr {
    SocketAddr::from((gateway, natpmp::SERVER_PORT))
}

/// One request and its answer from `gateway` (its NAT-PMP address, [`server`]).
pub async fn ask(gateway: SocketAddr, request: Request) -> io::Result<Response> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
    socket.connect(gateway).await?;
    let bytes = request.encode();
    let mut buf = [0u8; 64];
    for wait in natpmp::RETRANSMIT_WAITS.iter().take(TRIES) {
        socket.send(&bytes).await?;
        let deadline = tokio::time::Instant::now() + *wait;
        loop {
            let n = match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                Ok(read) => read?,
                Err(_) => break,
            };
            match Response::decode(buf.get(..n).unwrap_or_default()) {
                Ok(r) if r_answers(&r, &request) => return Ok(r),
                // Another answer (a late one, an announcement) or garbage: keep waiting.
                _ => continue,
            }
        }
    }
    Err(io::Error::new(io::ErrorKind::TimedOut, format!("no NAT-PMP answer from {gateway}")))
}

/// Whether `response` answers `request` (its opcode is the request's plus 128).
fn r_answers(response: &Response, request: &Request) -> bool {
    let opcode = match response {
        Response::ExternalAddress { .. } => 0,
        Response::Mapping(m) => m.protocol.opcode(),
        Response::Failure(f) => f.opcode,
    };
    opcode == request.opcode()
}

/// A mapping the gateway made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapped {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The public port.
    pub external_port: u16,
    /// Seconds it lasts.
    pub lifetime: u32,
}

/// Asks `gateway` to map `port` for `protocol` (the same external port if it can) for
/// `lifetime` seconds; 0 deletes the mapping.
pub async fn map(gateway: SocketAddr, protocol: Protocol, port: u16, lifetime: u32) -> io::Result<Mapped> {
    let request = Request::Map { protocol, internal_port: port, suggested_external_port: port, lifetime };
    match ask(gateway, request).await? {
        Response::Mapping(m) => Ok(Mapped { protocol, external_port: m.external_port, lifetime: m.lifetime }),
        Response::Failure(f) => Err(io::Error::other(format!("the gateway refused: {}", f.result.description()))),
        Response::ExternalAddress { .. } => Err(io::Error::other("the gateway answered another question")),
    }
}

/// The gateway's external IPv4 address.
pub async fn external_address(gateway: SocketAddr) -> io::Result<Ipv4Addr> {
    match ask(gateway, Request::ExternalAddress).await? {
        Response::ExternalAddress { address, .. } if !address.is_unspecified() => Ok(address),
        Response::ExternalAddress { .. } => Err(io::Error::other("the gateway has no external address yet")),
        Response::Failure(f) => Err(io::Error::other(format!("the gateway refused: {}", f.result.description()))),
        Response::Mapping(_) => Err(io::Error::other("the gateway answered another question")),
    }
}

/// Deletes a mapping, waiting at most `within` (at stop: best effort, the lease runs out
/// anyway).
pub fn delete_blocking(gateway: SocketAddr, protocol: Protocol, port: u16, within: Duration) {
    let attempt = || -> io::Result<()> {
        let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        socket.connect(gateway)?;
        socket.set_read_timeout(Some(within / 2))?;
        let mut buf = [0u8; 64];
        for _ in 0..2 {
            socket.send(&Request::delete(protocol, port).encode())?;
            if socket.recv(&mut buf).is_ok() {
                return Ok(());
            }
        }
        Ok(())
    };
    let _ = attempt();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_gateway_is_read_from_the_route_table() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(default_gateway(table), Some(Ipv4Addr::new(192, 168, 1, 1)));
        assert_eq!(default_gateway("Iface\tDestination\n"), None);
        assert_eq!(default_gateway("header\neth0 00000000 zz 0003\n"), None);
        // A default route without RTF_GATEWAY (a point-to-point link) names no gateway.
        assert_eq!(default_gateway("h\nppp0\t00000000\t00000000\t0001\n"), None);
    }

    /// A gateway on loopback answering every request through `answer`.
    async fn gateway(answer: fn(Request) -> Vec<Vec<u8>>) -> u16 {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let Ok(request) = Request::decode(&buf[..n]) else { continue };
                for reply in answer(request) {
                    let _ = socket.send_to(&reply, from).await;
                }
            }
        });
        port
    }

    #[test]
    fn answers_are_matched_to_their_request() {
        let map = Request::Map { protocol: Protocol::Tcp, internal_port: 5, suggested_external_port: 5, lifetime: 9 };
        let mapping = Response::Mapping(natpmp::Mapping {
            protocol: Protocol::Tcp,
            epoch: 1,
            internal_port: 5,
            external_port: 7,
            lifetime: 9,
        });
        assert!(r_answers(&mapping, &map));
        assert!(!r_answers(&Response::ExternalAddress { epoch: 1, address: Ipv4Addr::LOCALHOST }, &map));
        assert!(r_answers(
            &Response::ExternalAddress { epoch: 1, address: Ipv4Addr::LOCALHOST },
            &Request::ExternalAddress
        ));
    }

    #[tokio::test]
    async fn a_gateway_that_sends_garbage_first_is_still_understood() {
        let port = gateway(|r| {
            let good = match r {
                Request::Map { protocol, internal_port, .. } => Response::Mapping(natpmp::Mapping {
                    protocol,
                    epoch: 3,
                    internal_port,
                    external_port: 40_000,
                    lifetime: 60,
                }),
                Request::ExternalAddress => Response::ExternalAddress { epoch: 3, address: Ipv4Addr::new(11, 0, 0, 9) },
            };
            // An answer to another request (a TCP mapping) is not taken for this one.
            let other = Response::Mapping(natpmp::Mapping {
                protocol: Protocol::Tcp,
                epoch: 3,
                internal_port: 1,
                external_port: 1,
                lifetime: 1,
            });
            vec![b"\x00\x80garbage".to_vec(), vec![0; 16], other.encode(), good.encode()]
        })
        .await;
        let at = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mapped = map(at, Protocol::Udp, 9, 60).await.unwrap();
        assert_eq!((mapped.external_port, mapped.lifetime), (40_000, 60));
        assert_eq!(external_address(at).await.unwrap(), Ipv4Addr::new(11, 0, 0, 9));
    }

    #[tokio::test]
    async fn no_gateway_listening_fails_at_once_and_a_refusal_says_why() {
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let started = std::time::Instant::now();
        assert!(map(closed, Protocol::Tcp, 9, 60).await.is_err());
        assert!(started.elapsed() < Duration::from_secs(2), "an ICMP refusal ends it: {:?}", started.elapsed());
        let refusing = gateway(|r| {
            vec![Response::Failure(natpmp::Failure {
                opcode: r.opcode(),
                result: natpmp::ResultCode::NotAuthorized,
                epoch: 1,
            })
            .encode()]
        })
        .await;
        let err = map(SocketAddr::from((Ipv4Addr::LOCALHOST, refusing)), Protocol::Tcp, 9, 60).await.unwrap_err();
        assert!(err.to_string().contains("refused"), "{err}");
    }
}
