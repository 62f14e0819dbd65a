//! UPnP IGD port mapping, for routers without NAT-PMP: an SSDP search on the LAN, the
//! answering device's description, then SOAP actions on its WAN connection service. Every
//! byte is read by `protocol::upnp` (bounded, checked); every exchange has a deadline, and
//! only the device that answered the search is ever contacted (its `LOCATION` must be the
//! datagram's source, and the description cannot point elsewhere).

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clearskies_protocol::upnp::{
    self, Action, FaultCode, HttpResponse, HttpUrl, PortMapping, Protocol, ServiceType, SoapAnswer, SoapError,
    WanService,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long answers to a search are awaited (the devices spread theirs over `MX`, 2 s).
const SEARCH_WAIT: Duration = Duration::from_secs(3);
/// Answers to one search looked at, at most.
const MAX_ANSWERS: usize = 8;
/// One HTTP exchange with the device, in all (connect, request, whole answer).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);
/// The mapping's name on the router's pages (plain: some routers store it escaped).
const DESCRIPTION: &str = "ClearSkies";

/// A router's WAN connection service, and our address as it sees us.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// Where to send actions.
    pub service: WanService,
    /// Our LAN address towards it (the mapping's internal client).
    pub local: Ipv4Addr,
}

/// Finds the LAN's Internet gateway device.
pub async fn discover() -> io::Result<Gateway> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
    socket.set_multicast_ttl_v4(2)?;
    let to = SocketAddr::from((upnp::SSDP_MULTICAST, upnp::SSDP_PORT));
    for target in [upnp::IGD2, upnp::IGD1] {
        let sent = socket.send_to(&upnp::search_request(target), to).await;
        sent.map_err(|e| io::Error::new(e.kind(), format!("cannot search the LAN for a gateway: {e}")))?;
    }
    let deadline = tokio::time::Instant::now() + SEARCH_WAIT;
    let mut buf = vec![0u8; upnp::MAX_SSDP];
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "no UPnP gateway answered");
    for _ in 0..MAX_ANSWERS {
        let Ok(received) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await else { break };
        let (n, from) = received?;
        let Ok(answer) = upnp::parse_search_response(buf.get(..n).unwrap_or_default()) else { continue };
        // Anyone on the LAN can answer a search: only the answering device is asked.
        if !answer.location.same_host(&from.ip().to_canonical()) {
            continue;
        }
        match describe(&answer.location).await {
            Ok(gateway) => return Ok(gateway),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// Fetches the description at `location` and picks its WAN connection service.
async fn describe(location: &HttpUrl) -> io::Result<Gateway> {
    let (response, local) = exchange(location.socket_addr(), upnp::http_get(location)).await?;
    if response.status != 200 {
        return Err(io::Error::other(format!("the device description answered HTTP {}", response.status)));
    }
    let xml = String::from_utf8_lossy(&response.body);
    let service = upnp::find_wan_service(&xml, location).map_err(io::Error::other)?;
    let IpAddr::V4(local) = local.ip().to_canonical() else {
        return Err(io::Error::other("the gateway is not on IPv4"));
    };
    Ok(Gateway { service, local })
}

/// Sends `request` to `to` and reads the whole answer, within [`EXCHANGE_TIMEOUT`]; the
/// answer and our side's address.
async fn exchange(to: SocketAddr, request: Vec<u8>) -> io::Result<(HttpResponse, SocketAddr)> {
    let attempt = async {
        let mut stream = TcpStream::connect(to).await?;
        let local = stream.local_addr()?;
        stream.write_all(&request).await?;
        let mut buf = Vec::with_capacity(4096);
        loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            match upnp::parse_http_response(&buf, n == 0) {
                Ok(Some(response)) => return Ok((response, local)),
                Ok(None) if n == 0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "answer cut short")),
                Ok(None) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
            }
        }
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, attempt)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("no whole answer from {to} in time")))?
}

/// Runs `action` on the gateway's service.
async fn act(gateway: &Gateway, action: &Action) -> Result<SoapAnswer, SoapError> {
    let service = &gateway.service;
    let request = upnp::soap_request(&service.control, service.service_type, action);
    let (response, _) = exchange(service.control.socket_addr(), request).await.map_err(|e| {
        SoapError::Malformed(if e.kind() == io::ErrorKind::TimedOut { "timed out" } else { "no answer" })
    })?;
    let answer = upnp::parse_soap_response(response.status, &response.body)?;
    if answer.answers(action) {
        Ok(answer)
    } else {
        Err(SoapError::Malformed("an answer to another action"))
    }
}

/// The router's external address.
pub async fn external_ip(gateway: &Gateway) -> io::Result<IpAddr> {
    let answer = act(gateway, &Action::GetExternalIpAddress).await.map_err(io::Error::other)?;
    answer
        .external_ip()
        .filter(|ip| !ip.is_unspecified())
        .ok_or_else(|| io::Error::other("the router has no external address"))
}

/// Maps `port` for `protocol` (the same external port if free; else, on an IGD 2.0 device,
/// one it picks) for `lease` seconds; the external port.
pub async fn map(gateway: &Gateway, protocol: Protocol, port: u16, lease: u32) -> io::Result<u16> {
    let mapping = |lease_secs| PortMapping {
        external_port: port,
        protocol,
        internal_port: port,
        internal_client: gateway.local,
        description: DESCRIPTION.to_owned(),
        lease_secs,
    };
    let refused = |e: SoapError| io::Error::other(e.to_string());
    match act(gateway, &Action::AddPortMapping(mapping(lease))).await {
        Ok(_) => Ok(port),
        Err(SoapError::Fault(f)) if f.code == FaultCode::ONLY_PERMANENT_LEASES_SUPPORTED => {
            act(gateway, &Action::AddPortMapping(mapping(0))).await.map(|_| port).map_err(refused)
        }
        Err(SoapError::Fault(f))
            if f.code == FaultCode::CONFLICT_IN_MAPPING_ENTRY
                && gateway.service.service_type.has_add_any_port_mapping() =>
        {
            let answer = act(gateway, &Action::AddAnyPortMapping(mapping(lease))).await.map_err(refused)?;
            answer.reserved_port().ok_or_else(|| io::Error::other("the router named no port"))
        }
        Err(e) => Err(refused(e)),
    }
}

/// Deletes a mapping, waiting at most `within` (at stop: best effort).
pub fn delete_blocking(
    control: &HttpUrl,
    service: ServiceType,
    protocol: Protocol,
    external_port: u16,
    within: Duration,
) {
    use std::io::{Read, Write};
    let request = upnp::soap_request(control, service, &Action::DeletePortMapping { external_port, protocol });
    let attempt = || -> io::Result<()> {
        let mut stream = std::net::TcpStream::connect_timeout(&control.socket_addr(), within)?;
        stream.set_read_timeout(Some(within))?;
        stream.set_write_timeout(Some(within))?;
        stream.write_all(&request)?;
        // The answer does not matter; reading a little lets the device finish before we close.
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf);
        Ok(())
    };
    let _ = attempt();
}
