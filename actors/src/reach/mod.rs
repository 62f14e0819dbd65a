//! The `Reach` actor: how peers outside the LAN can reach this computer. It asks the router
//! to forward the peer port (NAT-PMP, then UPnP IGD; renewed, and removed at stop through
//! [`Leases`]), learns the public UDP address and the NAT's kind from STUN servers on the
//! peer port's UDP socket, publishes what it learned for discovery to advertise, and sums it
//! all up for `status` in one line that says what would fix an unreachable setup.

pub mod natpmp;
pub mod stun;
pub mod upnp;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, WrapFuture};
use clearskies_protocol::address::{is_public, PeerAddr};
use clearskies_protocol::natpmp::Protocol;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{info, warn};

use self::stun::NatKind;
use crate::transport::udp::UdpPort;

/// The first wait after port mapping failed; doubles up to [`MAX_MAPPING_RETRY`].
const FIRST_MAPPING_RETRY: Duration = Duration::from_secs(60);
/// The longest wait between port mapping attempts.
const MAX_MAPPING_RETRY: Duration = Duration::from_secs(30 * 60);
/// How often STUN is asked again in full (two servers), to notice a new public address.
const STUN_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// Behind a cone NAT, how often the server that answered is asked once more in between, so
/// that the NAT keeps the UDP mapping peers punch through (core.md: "periodically when
/// idle"; NATs forget idle UDP mappings after 30 s to a few minutes).
const STUN_KEEPALIVE: Duration = Duration::from_secs(25);
/// How long STUN waits after every server failed before trying again.
const STUN_RETRY: Duration = Duration::from_secs(5 * 60);
/// The lease asked for (NAT-PMP's recommended two hours); renewed at half.
const LEASE_SECS: u32 = 7200;
/// The UPnP lease asked for (an hour: routers that keep mappings after we crash keep them
/// less long); renewed at half.
const UPNP_LEASE_SECS: u32 = 3600;
/// The soonest a mapping is renewed, whatever lease the router grants.
const MIN_RENEW: Duration = Duration::from_secs(60);
/// How long removing the mappings at stop may take, in all.
const RELEASE_WITHIN: Duration = Duration::from_secs(2);

/// What the actor is told at start.
#[derive(Debug, Clone)]
pub struct ReachSettings {
    /// The peer port's address (its port is mapped and used for UDP too).
    pub listen: SocketAddr,
    /// Ask the router for a port mapping.
    pub port_mapping: bool,
    /// STUN servers, `HOST:PORT`.
    pub stun_servers: Vec<String>,
    /// Whether any tracker is configured (hole punching meets peers through one).
    pub trackers: bool,
}

/// Port mapping, as `status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingStatus {
    /// `off`, `trying`, `mapped` or `failed`.
    pub state: String,
    /// `nat-pmp` or `upnp`, once mapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The router asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The public addresses forwarded to us, `tcp:IP:PORT` and `udp:IP:PORT`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external: Vec<String>,
    /// Seconds each lease lasts (renewed at half).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_seconds: Option<u32>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What STUN saw, as `status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicStatus {
    /// The server that answered (or the last one tried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Our public UDP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<String>,
    /// The NAT's kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat: Option<NatKind>,
    /// Why no server answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How peers reach this computer, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReachStatus {
    /// Where the peer port listens: `tcp:…` and `udp:…`.
    pub listening: Vec<String>,
    /// The router's port mapping.
    pub port_mapping: MappingStatus,
    /// What STUN saw (`None`: no STUN server configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<PublicStatus>,
    /// Whether peers outside the LAN can connect to us (`None`: cannot tell).
    pub reachable: Option<bool>,
    /// In one line, and what would fix it.
    pub summary: String,
}

/// The port mappings in force, removed when the worker stops ([`Leases::release_blocking`],
/// after the actor system has stopped).
#[derive(Debug, Clone, Default)]
pub struct Leases(Arc<Mutex<Vec<Lease>>>);

/// One mapping made on a router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// By NAT-PMP at this server address, for this protocol and internal port.
    NatPmp(SocketAddr, Protocol, u16),
    /// By UPnP on this service, for this protocol and external port.
    Upnp(clearskies_protocol::upnp::WanService, Protocol, u16),
}

impl Leases {
    fn set(&self, leases: Vec<Lease>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = leases;
    }

    /// Removes every mapping (best effort, at most a couple of seconds).
    pub fn release_blocking(&self) {
        let leases = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        let each = RELEASE_WITHIN / u32::try_from(leases.len().max(1)).unwrap_or(1);
        for lease in &leases {
            match lease {
                Lease::NatPmp(server, protocol, port) => natpmp::delete_blocking(*server, *protocol, *port, each),
                Lease::Upnp(service, protocol, port) => {
                    upnp::delete_blocking(&service.control, service.service_type, *protocol, *port, each);
                }
            }
        }
        if !leases.is_empty() {
            info!(mappings = leases.len(), "port mappings removed");
        }
    }
}

/// The reach actor.
#[derive(Debug)]
pub struct Reach {
    settings: ReachSettings,
    status: Arc<watch::Sender<ReachStatus>>,
    learned: Arc<watch::Sender<Vec<PeerAddr>>>,
    leases: Leases,
    /// The peer port's UDP socket (STUN is sent from it), if it could be opened.
    udp: Option<UdpPort>,
}

impl Reach {
    /// Reach with `settings`, publishing its status to `status` and the addresses it learns
    /// to `learned` (both kept by the supervisor across restarts of this actor), sending
    /// STUN from `udp`.
    pub fn new(
        settings: ReachSettings,
        status: Arc<watch::Sender<ReachStatus>>,
        learned: Arc<watch::Sender<Vec<PeerAddr>>>,
        leases: Leases,
        udp: Option<UdpPort>,
    ) -> Self {
        Reach { settings, status, learned, leases, udp }
    }
}

impl Actor for Reach {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let listen = self.settings.listen;
        let remap = Arc::new(tokio::sync::Notify::new());
        let shared = Shared {
            listen,
            trackers: self.settings.trackers,
            status: self.status.clone(),
            learned: self.learned.clone(),
            remap,
        };
        let mut listening = vec![PeerAddr::tcp(listen).to_string()];
        let port = self.udp.clone();
        if let Some(port) = &port {
            listening.push(format!("udp:{}", port.local_addr()));
        }
        shared.update(|s| {
            s.listening = listening;
            let state = if self.settings.port_mapping { "trying" } else { "off" };
            s.port_mapping = MappingStatus { state: state.into(), ..MappingStatus::default() };
            s.public = (!self.settings.stun_servers.is_empty()).then(PublicStatus::default);
        });
        if self.settings.port_mapping {
            ctx.spawn(map_ports(shared.clone(), self.leases.clone()).into_actor(self));
        }
        if let (Some(port), false) = (port, self.settings.stun_servers.is_empty()) {
            ctx.spawn(ask_stun(shared, port, self.settings.stun_servers.clone()).into_actor(self));
        }
    }
}

/// What the tasks publish to.
#[derive(Debug, Clone)]
struct Shared {
    listen: SocketAddr,
    /// A tracker is configured.
    trackers: bool,
    status: Arc<watch::Sender<ReachStatus>>,
    learned: Arc<watch::Sender<Vec<PeerAddr>>>,
    /// Wakes the port mapping early: STUN saw a new public address (the router restarted,
    /// or the provider gave it another address), so the mapping may be gone.
    remap: Arc<tokio::sync::Notify>,
}

impl Shared {
    /// Changes the status, sums it up again and publishes the addresses it implies.
    fn update(&self, change: impl FnOnce(&mut ReachStatus)) {
        let mut learned = Vec::new();
        self.status.send_modify(|s| {
            change(s);
            (s.reachable, s.summary) = summary(s, self.listen.port(), self.trackers);
            learned = learned_addresses(s);
            let m = crate::metrics::metrics();
            m.port_mapped.set(i64::from(s.port_mapping.state == "mapped"));
            m.reachable.set(s.reachable.map_or(-1, i64::from));
        });
        self.learned.send_if_modified(|current| {
            let changed = *current != learned;
            *current = std::mem::take(&mut learned);
            changed
        });
    }
}

/// The addresses the status implies we are reached at: the mapped TCP port, if the router's
/// external address is public (behind a second NAT it reaches nobody); and the public UDP
/// address STUN saw, as uTP, unless the NAT is symmetric (each peer would see another port:
/// the one STUN saw reaches nobody else).
fn learned_addresses(s: &ReachStatus) -> Vec<PeerAddr> {
    let mut learned = Vec::new();
    if s.port_mapping.state == "mapped" {
        let mapped = s.port_mapping.external.iter().filter_map(|e| e.parse::<PeerAddr>().ok());
        learned.extend(mapped.filter(|a| is_public(a.addr.ip())));
    }
    if let Some(public) = s.public.as_ref().filter(|p| p.nat.is_some_and(NatKind::can_be_punched)) {
        let udp = public.udp.as_deref().and_then(|a| a.parse::<SocketAddr>().ok());
        learned.extend(udp.filter(|a| is_public(a.ip())).map(PeerAddr::utp));
    }
    learned
}

/// The router's external address, if it mapped the port.
fn mapped_ip(s: &ReachStatus) -> Option<IpAddr> {
    let first = s.port_mapping.external.first()?;
    first.split_once(':').and_then(|(_, a)| a.parse::<SocketAddr>().ok()).map(|a| a.ip())
}

/// Whether peers outside the LAN reach us, in one line that says what would fix it.
pub fn summary(s: &ReachStatus, port: u16, trackers: bool) -> (Option<bool>, String) {
    let nat = s.public.as_ref().and_then(|p| p.nat);
    let fix = format!(
        "forward TCP port {port} on the router to this computer, or turn on UPnP or NAT-PMP in the router; peers on \
         this LAN reach it already"
    );
    if let Some(ip) = mapped_ip(s).filter(|ip| s.port_mapping.state == "mapped" && !is_public(*ip)) {
        return (
            Some(false),
            format!(
                "not reachable from outside this LAN: the router mapped the port, but its own address {ip} is not \
                 public (a second router or the provider's carrier-grade NAT is in front of it); put the router in \
                 bridge mode, forward TCP port {port} on the outer router too, or ask the provider for a public \
                 address"
            ),
        );
    }
    if s.port_mapping.state == "mapped" {
        let at = s.port_mapping.external.first().map_or("", String::as_str);
        let via = s.port_mapping.method.as_deref().unwrap_or("the router");
        return (Some(true), format!("reachable from the internet at {at} (port mapped by {via})"));
    }
    if s.port_mapping.state == "trying" && nat != Some(NatKind::None) {
        return (None, "finding out: asking the router to forward the peer port".to_owned());
    }
    match nat {
        Some(NatKind::None) => (Some(true), "reachable: this computer has a public address".to_owned()),
        Some(NatKind::EndpointIndependent) if !trackers => (
            Some(false),
            format!(
                "not reachable from outside this LAN: behind a cone NAT, which hole punching gets through, but \
                 peers meet to punch through a tracker and none is configured (`trackers`); {fix}"
            ),
        ),
        Some(NatKind::EndpointIndependent) => {
            let at = s.public.as_ref().and_then(|p| p.udp.as_deref()).unwrap_or("the public address");
            (
                Some(true),
                format!(
                    "reachable by hole punching over uTP at {at} (a cone NAT), by peers that find this computer \
                     through a tracker and are not behind a symmetric NAT; for TCP and every peer, {fix}"
                ),
            )
        }
        Some(NatKind::AddressDependent) => (
            Some(false),
            format!(
                "not reachable from outside this LAN: behind a symmetric NAT, which hole punching cannot pass, and \
                 no port mapping; {fix}, or use a relay"
            ),
        ),
        Some(NatKind::Unknown) | None => (
            None,
            format!("unknown: no port mapping and no STUN answer to tell; if this computer is behind a NAT, {fix}"),
        ),
    }
}

/// Maps the peer port for TCP and UDP (NAT-PMP on the default gateway, else UPnP IGD),
/// renewing at half the lease; after a failure waits a minute, doubling up to half an hour (a
/// router that refuses is not asked in a tight loop).
async fn map_ports(shared: Shared, leases: Leases) {
    let port = shared.listen.port();
    let mut retry = FIRST_MAPPING_RETRY;
    loop {
        match map_once(port).await {
            Ok((status, made, renew)) => {
                if shared.status.borrow().port_mapping.external != status.external {
                    info!(method = ?status.method, gateway = ?status.gateway, external = ?status.external, "port mapped");
                }
                leases.set(made);
                shared.update(|s| s.port_mapping = status);
                retry = FIRST_MAPPING_RETRY;
                // A router that grants seconds is not asked twice a second.
                tokio::select! {
                    () = tokio::time::sleep(renew.max(MIN_RENEW)) => {}
                    () = shared.remap.notified() => info!("the public address changed: mapping the port again"),
                }
            }
            Err(status) => {
                let error = status.error.clone().unwrap_or_default();
                warn!(error = %error, retry_in = ?retry, "cannot map the peer port on the router");
                // (Leases made before are kept: removed at stop if they still exist.)
                shared.update(|s| s.port_mapping = status);
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_MAPPING_RETRY);
            }
        }
    }
}

/// One attempt: NAT-PMP with the default gateway, then UPnP; the status, the leases and
/// when to renew, or the failed status saying why each way failed.
async fn map_once(port: u16) -> Result<(MappingStatus, Vec<Lease>, Duration), MappingStatus> {
    let gateway = natpmp::system_gateway();
    let natpmp_error = match gateway {
        Some(gateway) => match map_with_natpmp(gateway, port).await {
            Ok(done) => return Ok(done),
            Err(e) => e,
        },
        None => "NAT-PMP: no IPv4 default gateway".to_owned(),
    };
    match map_with_upnp(port).await {
        Ok(done) => Ok(done),
        Err(upnp_error) => Err(MappingStatus {
            state: "failed".into(),
            gateway: gateway.map(|g| g.to_string()),
            error: Some(format!("{natpmp_error}; {upnp_error}")),
            ..MappingStatus::default()
        }),
    }
}

/// One round of UPnP IGD: find the device, its external address, then TCP and UDP
/// mappings.
async fn map_with_upnp(port: u16) -> Result<(MappingStatus, Vec<Lease>, Duration), String> {
    let gateway = upnp::discover().await.map_err(|e| format!("UPnP: {e}"))?;
    let external = upnp::external_ip(&gateway).await.map_err(|e| format!("UPnP: {e}"))?;
    let mut status = MappingStatus {
        state: "mapped".into(),
        method: Some("upnp".into()),
        gateway: Some(gateway.service.control.host.to_string()),
        lease_seconds: Some(UPNP_LEASE_SECS),
        ..MappingStatus::default()
    };
    let mut leases = Vec::new();
    for protocol in [Protocol::Tcp, Protocol::Udp] {
        let mapped = match upnp::map(&gateway, protocol, port, UPNP_LEASE_SECS).await {
            Ok(mapped) => mapped,
            // TCP carries every session today: a mapping without UDP still serves.
            Err(e) if protocol == Protocol::Udp => {
                warn!(error = %e, "UPnP: the router would not map UDP; TCP is mapped");
                break;
            }
            Err(e) => return Err(format!("UPnP: {e}")),
        };
        let name = if protocol == Protocol::Tcp { "tcp" } else { "udp" };
        status.external.push(format!("{name}:{}", SocketAddr::new(external, mapped)));
        leases.push(Lease::Upnp(gateway.service.clone(), protocol, mapped));
    }
    Ok((status, leases, Duration::from_secs(u64::from(UPNP_LEASE_SECS / 2))))
}

/// One round of NAT-PMP: the external address, then TCP and UDP mappings; the status, the
/// leases and when to renew.
async fn map_with_natpmp(
    gateway: std::net::Ipv4Addr,
    port: u16,
) -> Result<(MappingStatus, Vec<Lease>, Duration), String> {
    let server = natpmp::server(gateway);
    let external = natpmp::external_address(server).await.map_err(|e| format!("NAT-PMP: {e}"))?;
    let mut status = MappingStatus {
        state: "mapped".into(),
        method: Some("nat-pmp".into()),
        gateway: Some(gateway.to_string()),
        ..MappingStatus::default()
    };
    let mut leases = Vec::new();
    let mut shortest = LEASE_SECS;
    for protocol in [Protocol::Tcp, Protocol::Udp] {
        let mapped = match natpmp::map(server, protocol, port, LEASE_SECS).await {
            Ok(mapped) => mapped,
            // TCP carries every session today: a mapping without UDP still serves.
            Err(e) if protocol == Protocol::Udp => {
                warn!(error = %e, "NAT-PMP: the router would not map UDP; TCP is mapped");
                break;
            }
            Err(e) => return Err(format!("NAT-PMP: {e}")),
        };
        let name = if protocol == Protocol::Tcp { "tcp" } else { "udp" };
        status.external.push(format!("{name}:{}", SocketAddr::from((external, mapped.external_port))));
        leases.push(Lease::NatPmp(server, protocol, port));
        shortest = shortest.min(mapped.lifetime.max(1));
    }
    status.lease_seconds = Some(shortest);
    Ok((status, leases, clearskies_protocol::natpmp::renew_after(shortest)))
}

/// Asks the STUN servers for our public address now and every [`STUN_INTERVAL`]: the first
/// that answers gives the address, a second server address (another server, or the first
/// one's other address) the NAT's kind.
async fn ask_stun(shared: Shared, port: UdpPort, servers: Vec<String>) {
    loop {
        let (public, wait, server) = match stun_round(&port, &servers).await {
            Ok((public, server)) => (public, STUN_INTERVAL, Some(server)),
            Err(error) => (PublicStatus { error: Some(error), ..PublicStatus::default() }, STUN_RETRY, None),
        };
        // (Whenever its address is announced for punching: a cone NAT, or one not told apart.)
        let keep_alive = server.filter(|_| matches!(public.nat, Some(NatKind::EndpointIndependent | NatKind::Unknown)));
        let mapped = public.udp.as_deref().and_then(|a| a.parse::<SocketAddr>().ok());
        let before = shared.status.borrow().public.as_ref().and_then(|p| p.udp.clone());
        if before != public.udp && public.udp.is_some() {
            info!(public = ?public.udp, nat = ?public.nat, server = ?public.server, "STUN: our public UDP address");
            // (Not at the first answer: the mapping is being made then anyway.)
            if before.is_some() {
                shared.remap.notify_one();
            }
        }
        shared.update(|s| s.public = Some(public));
        match (keep_alive, mapped) {
            (Some(server), Some(mapped)) => keep_mapping(&port, server, mapped, wait).await,
            _ => tokio::time::sleep(wait).await,
        }
    }
}

/// For `until`, one binding to `server` every [`STUN_KEEPALIVE`] (refreshing the NAT's
/// mapping of the peer port); returns early if an answer shows an address other than
/// `mapped`, for a full round to look again.
async fn keep_mapping(port: &UdpPort, server: SocketAddr, mapped: SocketAddr, until: Duration) {
    let end = tokio::time::Instant::now() + until;
    loop {
        let next = tokio::time::Instant::now() + STUN_KEEPALIVE;
        if next >= end {
            return tokio::time::sleep_until(end).await;
        }
        tokio::time::sleep_until(next).await;
        if let Ok(answer) = stun::binding(port, server).await {
            if answer.mapped != mapped {
                return;
            }
        }
    }
}

/// One round: the first server that answers, and a second address to compare.
/// Also the address of the server that answered.
async fn stun_round(port: &UdpPort, servers: &[String]) -> Result<(PublicStatus, SocketAddr), String> {
    let mut errors = Vec::new();
    let mut first = None;
    for (i, name) in servers.iter().enumerate() {
        let answer = match stun::resolve(name).await {
            Ok(server) => stun::binding(port, server).await.map(|a| (server, a)),
            Err(e) => Err(e),
        };
        match answer {
            Ok(got) => {
                first = Some((i, name, got));
                break;
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    let Some((i, name, (server, answer))) = first else { return Err(errors.join("; ")) };
    // A second opinion from another address: the next server that answers, else the first
    // server's other address (RFC 5780).
    let mut second = None;
    for other in servers.iter().skip(i + 1) {
        if let Ok(at) = stun::resolve(other).await {
            if at.ip() != server.ip() && at.is_ipv4() == server.is_ipv4() {
                if let Ok(a) = stun::binding(port, at).await {
                    second = Some(a.mapped);
                    break;
                }
            }
        }
    }
    if second.is_none() {
        // Only a public address of the same family: a server must not aim us at the LAN.
        let usable = |o: &SocketAddr| o.ip() != server.ip() && o.is_ipv4() == server.is_ipv4() && is_public(o.ip());
        if let Some(other) = answer.other_address.filter(usable) {
            second = stun::binding(port, other).await.ok().map(|a| a.mapped);
        }
    }
    let own: Vec<IpAddr> = crate::discovery::addresses::interface_ips(port.local_addr().ip());
    let nat = stun::classify(answer.mapped, second, &own);
    let public =
        PublicStatus { server: Some(name.clone()), udp: Some(answer.mapped.to_string()), nat: Some(nat), error: None };
    Ok((public, server))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(mapping: &str, nat: Option<NatKind>) -> ReachStatus {
        ReachStatus {
            port_mapping: MappingStatus {
                state: mapping.into(),
                method: Some("nat-pmp".into()),
                external: vec!["tcp:11.0.0.3:4000".into(), "udp:11.0.0.3:4000".into()],
                ..MappingStatus::default()
            },
            public: Some(PublicStatus { nat, ..PublicStatus::default() }),
            ..ReachStatus::default()
        }
    }

    #[test]
    fn the_summary_says_whether_and_what_would_fix_it() {
        let (reachable, line) = summary(&status("mapped", None), 4000, true);
        assert_eq!(reachable, Some(true));
        assert!(line.contains("tcp:11.0.0.3:4000") && line.contains("nat-pmp"), "{line}");
        let (reachable, line) = summary(&status("failed", Some(NatKind::AddressDependent)), 4000, true);
        assert_eq!(reachable, Some(false));
        assert!(line.contains("symmetric") && line.contains("forward TCP port 4000"), "{line}");
        let (reachable, line) = summary(&status("failed", Some(NatKind::EndpointIndependent)), 4000, true);
        assert_eq!(reachable, Some(true), "by hole punching");
        assert!(line.contains("cone") && line.contains("uTP") && line.contains("UPnP or NAT-PMP"), "{line}");
        let (reachable, line) = summary(&status("failed", Some(NatKind::EndpointIndependent)), 4000, false);
        assert_eq!(reachable, Some(false), "no tracker to meet through");
        assert!(line.contains("trackers"), "{line}");
        assert_eq!(summary(&status("off", Some(NatKind::None)), 4000, true).0, Some(true));
        assert_eq!(summary(&status("off", None), 4000, true).0, None);
        let (reachable, line) = summary(&status("trying", Some(NatKind::AddressDependent)), 4000, true);
        assert_eq!(reachable, None, "not a verdict while the router is asked: {line}");
    }

    #[test]
    fn a_router_behind_another_nat_is_not_taken_for_reachable_nor_advertised() {
        let mut s = status("mapped", Some(NatKind::EndpointIndependent));
        s.port_mapping.external = vec!["tcp:100.64.3.2:4000".into()];
        let (reachable, line) = summary(&s, 4000, true);
        assert_eq!(reachable, Some(false));
        assert!(line.contains("100.64.3.2") && line.contains("not public"), "{line}");
        assert!(learned_addresses(&s).is_empty());
        assert!(learned_addresses(&status("failed", None)).is_empty(), "only while mapped");
    }

    #[test]
    fn the_mapped_tcp_port_and_a_punchable_public_udp_address_are_advertised() {
        let learned = learned_addresses(&status("mapped", None));
        assert_eq!(learned, vec![PeerAddr::tcp("11.0.0.3:4000".parse().unwrap())], "not the mapped UDP port");
        let seen = |nat, udp: &str| {
            let mut s = status("failed", Some(nat));
            s.public.as_mut().unwrap().udp = Some(udp.into());
            learned_addresses(&s)
        };
        let utp = PeerAddr::utp("11.0.0.9:4100".parse().unwrap());
        assert_eq!(seen(NatKind::EndpointIndependent, "11.0.0.9:4100"), vec![utp], "a cone NAT's");
        assert_eq!(seen(NatKind::Unknown, "11.0.0.9:4100"), vec![utp], "worth a try");
        assert!(seen(NatKind::AddressDependent, "11.0.0.9:4100").is_empty(), "a symmetric NAT's reaches no one else");
        assert!(seen(NatKind::EndpointIndependent, "10.0.0.9:4100").is_empty(), "behind a second NAT");
    }
}
