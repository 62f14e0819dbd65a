//! Our public UDP address and the NAT's behaviour, from STUN (RFC 8489) Binding requests
//! sent from the peer port's UDP socket, so that the address learned is the one peers would
//! reach. Two answers from different server addresses tell the mapping behaviour (RFC 4787,
//! 5780): the same public port both times is an endpoint-independent ("cone") mapping, which
//! hole punching gets through; a different one is address-dependent ("symmetric").

use std::net::SocketAddr;
use std::time::Duration;

use clearskies_protocol::address::canonical;
use clearskies_protocol::stun::{self, BindingResponse, BindingSuccess, TransactionId};
use serde::{Deserialize, Serialize};

use crate::transport::udp::UdpPort;

/// Waits before each retransmission of a request: RFC 8489's 500 ms doubling, cut to four
/// tries (7.5 s): a server that has not answered by then is down or filtered.
const RETRANSMIT_WAITS: [Duration; 4] =
    [Duration::from_millis(500), Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(4)];
/// How long resolving a server's name may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// How the NAT in front of us maps our UDP port (as far as STUN could tell).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NatKind {
    /// The server saw our own address: no NAT.
    None,
    /// The same public address and port towards every destination ("cone"): reachable by
    /// hole punching.
    EndpointIndependent,
    /// A new public port per destination ("symmetric"): hole punching fails.
    AddressDependent,
    /// One answer only (one server, with no other address to compare).
    Unknown,
}

impl NatKind {
    /// Whether a peer can reach us through it by punching a hole (both dialling at once
    /// to the public address STUN saw): not through a symmetric NAT.
    pub fn can_be_punched(self) -> bool {
        self != NatKind::AddressDependent
    }

    /// In a sentence's words.
    pub fn describe(self) -> &'static str {
        match self {
            NatKind::None => "no NAT (a public address)",
            NatKind::EndpointIndependent => "a cone NAT (one public port for every destination)",
            NatKind::AddressDependent => "a symmetric NAT (a new public port for each destination)",
            NatKind::Unknown => "a NAT of unknown kind (only one STUN answer to go by)",
        }
    }
}

/// Why a server gave no address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StunFailure {
    /// The name did not resolve.
    #[error("cannot resolve {0}")]
    Resolve(String),
    /// No answer after every retransmission.
    #[error("{0} did not answer")]
    Silent(SocketAddr),
    /// The server answered with an error.
    #[error("{server} refused: {code} {reason}")]
    Refused {
        /// The server.
        server: SocketAddr,
        /// The STUN error code.
        code: u16,
        /// Its reason phrase (bounded by the decoder).
        reason: String,
    },
    /// Sending failed (no route, the socket closed).
    #[error("cannot send to {0}: {1}")]
    Send(SocketAddr, String),
    /// Too many requests outstanding on the socket.
    #[error("too many STUN requests at once")]
    Busy,
}

/// The first IPv4 address `server` (`HOST:PORT`) resolves to, else the first one (a NAT, if
/// any, is on IPv4).
pub async fn resolve(server: &str) -> Result<SocketAddr, StunFailure> {
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(server))
        .await
        .map_err(|_| StunFailure::Resolve(server.to_owned()))?
        .map_err(|_| StunFailure::Resolve(server.to_owned()))?;
    let all: Vec<SocketAddr> = found.collect();
    all.iter().find(|a| a.is_ipv4()).or(all.first()).copied().ok_or_else(|| StunFailure::Resolve(server.to_owned()))
}

/// One Binding transaction with `server`.
pub async fn binding(port: &UdpPort, server: SocketAddr) -> Result<BindingSuccess, StunFailure> {
    let mut id = [0u8; 12];
    getrandom::fill(&mut id).map_err(|_| StunFailure::Busy)?;
    let id = TransactionId(id);
    let mut expected = port.expect(id).ok_or(StunFailure::Busy)?;
    // (No SOFTWARE attribute: a public server need not learn what we run.)
    let request = stun::binding_request(id, None);
    let server = canonical(server);
    for wait in RETRANSMIT_WAITS {
        port.send_to(&request, server).await.map_err(|e| StunFailure::Send(server, e.to_string()))?;
        match tokio::time::timeout(wait, &mut expected.rx).await {
            // An answer from elsewhere (forged, with a guessed transaction ID) is not taken.
            Ok(Ok((_, from))) if from != server => return Err(StunFailure::Silent(server)),
            Ok(Ok((BindingResponse::Success(s), _))) => {
                return Ok(BindingSuccess { mapped: canonical(s.mapped), ..s });
            }
            Ok(Ok((BindingResponse::Error(e), _))) => {
                return Err(StunFailure::Refused { server, code: e.code.code(), reason: e.reason });
            }
            Ok(Err(_)) => return Err(StunFailure::Busy),
            Err(_) => {}
        }
    }
    Err(StunFailure::Silent(server))
}

/// The NAT's behaviour from the first answer and, if there is one, an answer from another
/// server address; `local` is the socket's own address (its IP is unspecified on a socket
/// bound to every interface, so "no NAT" is told by the public address being one of ours).
pub fn classify(first: SocketAddr, second: Option<SocketAddr>, own_ips: &[std::net::IpAddr]) -> NatKind {
    if own_ips.contains(&first.ip()) {
        return NatKind::None;
    }
    match second {
        Some(s) if s == first => NatKind::EndpointIndependent,
        Some(_) => NatKind::AddressDependent,
        None => NatKind::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clearskies_protocol::stun::BindingRequest;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn nat_kinds_from_two_answers() {
        let own = ["192.168.1.5".parse().unwrap()];
        assert_eq!(classify(addr("192.168.1.5:4000"), None, &own), NatKind::None);
        assert_eq!(classify(addr("11.0.0.9:4000"), Some(addr("11.0.0.9:4000")), &own), NatKind::EndpointIndependent);
        assert_eq!(classify(addr("11.0.0.9:4000"), Some(addr("11.0.0.9:5123")), &own), NatKind::AddressDependent);
        assert_eq!(classify(addr("11.0.0.9:4000"), None, &own), NatKind::Unknown);
    }

    /// A STUN server on loopback answering each request with `answer`'s result.
    async fn server(answer: fn(SocketAddr, &BindingRequest) -> Option<Vec<u8>>) -> SocketAddr {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let at = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let Ok(request) = BindingRequest::decode(&buf[..n]) else { continue };
                if let Some(reply) = answer(from, &request) {
                    let _ = socket.send_to(&reply, from).await;
                }
            }
        });
        at
    }

    fn port() -> UdpPort {
        let socket = bind(addr("127.0.0.1:0"));
        let port = UdpPort::new(socket).unwrap();
        tokio::spawn(port.clone().receive());
        port
    }

    fn bind(at: SocketAddr) -> tokio::net::UdpSocket {
        tokio::net::UdpSocket::from_std(crate::net::bind_udp(at).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_server_tells_us_our_address_and_garbage_or_silence_does_not() {
        let port = port();
        let ours = port.local_addr();
        let honest = server(|from, r| {
            let success = BindingSuccess {
                transaction_id: r.transaction_id,
                mapped: from,
                xor_mapped: true,
                response_origin: None,
                other_address: None,
                software: None,
            };
            Some(BindingResponse::Success(success).encode())
        })
        .await;
        let got = binding(&port, honest).await.unwrap();
        assert_eq!(got.mapped, ours);

        // Garbage, or an answer to another transaction: silent after the tries (7.5 s).
        let liar = server(|from, r| {
            let mut other = r.transaction_id;
            other.0[0] ^= 1;
            let success = BindingSuccess {
                transaction_id: other,
                mapped: from,
                xor_mapped: true,
                response_origin: None,
                other_address: None,
                software: None,
            };
            Some(if r.transaction_id.0[1] % 2 == 0 { b"\x01\x01garbage".to_vec() } else { success.encode() })
        })
        .await;
        assert_eq!(binding(&port, liar).await.unwrap_err(), StunFailure::Silent(liar));
        assert!(port.ignored.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    }
}
