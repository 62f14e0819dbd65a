//! The tracker's state, sans-IO (`core.md`, "Tracker Protocol").
//!
//! Clients connect, receive a `tracker.greeting`, answer `tracker.start`, then send
//! `tracker.connection` (their addresses, repeated verbatim to others) and `tracker.register`
//! (every ID they know, with their peer ID for it). For each ID (a "club") the tracker sends
//! every member a `tracker.peers` listing the other members and their addresses, again
//! whenever that list changes. A client silent for longer than its TTL is dropped.
//!
//! The driver calls [`Tracker::handle`], [`Tracker::disconnect`] and [`Tracker::expire`]
//! and writes the returned messages to the named clients. Input is hostile: limits bound
//! every list a client can make the tracker hold.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::message::tracker::{Greeting, Peers, Register};
use crate::message::Message;
use crate::{PeerId, Sha256Hash};

/// A connection, as the driver numbers them.
pub type ClientId = u64;

/// IDs one client may register.
pub const MAX_IDS: usize = 4096;
/// Addresses one client may announce.
pub const MAX_ADDRESSES: usize = 16;
/// Longest address string kept.
pub const MAX_ADDRESS_LEN: usize = 128;

/// Why a client is disconnected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrackerError {
    /// Something other than `tracker.start` came first.
    #[error("expected tracker.start first, got {0}")]
    NotStarted(String),
    /// `tracker.start` asked for a protocol version we do not speak.
    #[error("unsupported tracker protocol version {0}")]
    Version(u64),
    /// Too many IDs or addresses, or an address too long.
    #[error("over a limit: {0}")]
    Limit(&'static str),
}

/// Settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Shortest TTL accepted.
    pub min_ttl: Duration,
    /// Longest TTL accepted.
    pub max_ttl: Duration,
    /// Informational software name.
    pub software: String,
}

impl Default for Config {
    fn default() -> Self {
        Config { min_ttl: Duration::from_secs(60), max_ttl: Duration::from_secs(3600), software: String::new() }
    }
}

#[derive(Debug)]
struct Client {
    started: bool,
    ttl: Duration,
    last_seen: Instant,
    addresses: Vec<String>,
    ids: BTreeMap<Sha256Hash, PeerId>,
}

/// Every client and club.
#[derive(Debug)]
pub struct Tracker {
    config: Config,
    clients: BTreeMap<ClientId, Client>,
    clubs: BTreeMap<Sha256Hash, BTreeSet<ClientId>>,
}

/// Messages to send: (to whom, what).
pub type Outgoing = Vec<(ClientId, Message)>;

impl Tracker {
    /// An empty tracker.
    pub fn new(config: Config) -> Self {
        Tracker { config, clients: BTreeMap::new(), clubs: BTreeMap::new() }
    }

    /// Clients connected.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// A new connection from `ip` (formatted as the greeting shows it): the greeting to send.
    pub fn connect(&mut self, client: ClientId, ip: &str, now: Instant) -> Message {
        self.clients.insert(
            client,
            Client {
                started: false,
                ttl: self.config.max_ttl,
                last_seen: now,
                addresses: Vec::new(),
                ids: BTreeMap::new(),
            },
        );
        Greeting {
            software: self.config.software.clone(),
            max_ttl: self.config.max_ttl.as_secs(),
            min_ttl: self.config.min_ttl.as_secs(),
            your_ip: ip.to_owned(),
            protocol: vec![1],
            extensions: Vec::new(),
        }
        .into()
    }

    /// A message from `client`. An error means: disconnect it (then call
    /// [`Tracker::disconnect`]).
    pub fn handle(&mut self, client: ClientId, message: Message, now: Instant) -> Result<Outgoing, TrackerError> {
        let (min, max) = (self.config.min_ttl, self.config.max_ttl);
        let Some(c) = self.clients.get_mut(&client) else { return Ok(Vec::new()) };
        c.last_seen = now;
        if !c.started {
            return match message {
                Message::TrackerStart(s) if s.protocol == 1 => {
                    c.started = true;
                    c.ttl = Duration::from_secs(s.ttl).clamp(min, max);
                    Ok(Vec::new())
                }
                Message::TrackerStart(s) => Err(TrackerError::Version(s.protocol)),
                other => Err(TrackerError::NotStarted(other.kind().to_owned())),
            };
        }
        match message {
            Message::TrackerConnection(conn) => {
                if conn.addresses.len() > MAX_ADDRESSES {
                    return Err(TrackerError::Limit("addresses"));
                }
                if conn.addresses.iter().any(|a| a.len() > MAX_ADDRESS_LEN) {
                    return Err(TrackerError::Limit("address length"));
                }
                if c.addresses == conn.addresses {
                    return Ok(Vec::new());
                }
                c.addresses = conn.addresses;
                let clubs: Vec<Sha256Hash> = c.ids.keys().copied().collect();
                Ok(self.announce(&clubs))
            }
            Message::TrackerRegister(Register { ids }) => {
                if ids.len() > MAX_IDS {
                    return Err(TrackerError::Limit("ids"));
                }
                let old = std::mem::replace(&mut c.ids, ids);
                let mut changed: BTreeSet<Sha256Hash> = BTreeSet::new();
                for (id, peer) in &old {
                    if c.ids.get(id) != Some(peer) {
                        changed.insert(*id);
                    }
                }
                for (id, peer) in &c.ids {
                    if old.get(id) != Some(peer) {
                        changed.insert(*id);
                    }
                }
                let now_ids: Vec<Sha256Hash> = c.ids.keys().copied().collect();
                for id in old.keys() {
                    if let Some(members) = self.clubs.get_mut(id) {
                        members.remove(&client);
                        if members.is_empty() {
                            self.clubs.remove(id);
                        }
                    }
                }
                for id in now_ids {
                    self.clubs.entry(id).or_default().insert(client);
                }
                let changed: Vec<Sha256Hash> = changed.into_iter().collect();
                Ok(self.announce(&changed))
            }
            // Pings only refresh `last_seen`; other types are not for trackers.
            _ => Ok(Vec::new()),
        }
    }

    /// The connection closed (or was dropped): tells the clubs it was in.
    pub fn disconnect(&mut self, client: ClientId) -> Outgoing {
        let Some(c) = self.clients.remove(&client) else { return Vec::new() };
        let clubs: Vec<Sha256Hash> = c.ids.keys().copied().collect();
        for id in &clubs {
            if let Some(members) = self.clubs.get_mut(id) {
                members.remove(&client);
                if members.is_empty() {
                    self.clubs.remove(id);
                }
            }
        }
        self.announce(&clubs)
    }

    /// Drops clients silent for longer than their TTL; returns them (to close) and the news.
    pub fn expire(&mut self, now: Instant) -> (Vec<ClientId>, Outgoing) {
        let gone: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|(_, c)| now.saturating_duration_since(c.last_seen) > c.ttl)
            .map(|(id, _)| *id)
            .collect();
        let mut out = Vec::new();
        for id in &gone {
            out.extend(self.disconnect(*id));
        }
        (gone, out)
    }

    /// When [`Tracker::expire`] should run next.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.clients.values().map(|c| c.last_seen + c.ttl).min()
    }

    /// A `tracker.peers` for each club in `clubs`, to each of its members.
    fn announce(&self, clubs: &[Sha256Hash]) -> Outgoing {
        let mut out = Vec::new();
        for id in clubs {
            let Some(members) = self.clubs.get(id) else { continue };
            for to in members {
                let mut peers = BTreeMap::new();
                for other in members.iter().filter(|m| *m != to) {
                    if let Some(c) = self.clients.get(other) {
                        if let (Some(peer), false) = (c.ids.get(id), c.addresses.is_empty()) {
                            peers.insert(*peer, c.addresses.clone());
                        }
                    }
                }
                out.push((*to, Peers { id: *id, peers }.into()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::tracker::{Connection, Start};

    fn start(t: &mut Tracker, c: ClientId, now: Instant) {
        t.connect(c, "127.0.0.1", now);
        let s = Start { software: "t".into(), protocol: 1, ttl: 60, extensions: vec![] };
        assert!(t.handle(c, s.into(), now).unwrap().is_empty());
    }

    fn peers_for(out: &Outgoing, to: ClientId) -> Vec<&Peers> {
        out.iter()
            .filter(|(c, _)| *c == to)
            .filter_map(|(_, m)| match m {
                Message::TrackerPeers(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn members_of_a_club_learn_of_each_other_and_of_departures() {
        let now = Instant::now();
        let mut t = Tracker::new(Config::default());
        let club = Sha256Hash([1; 32]);
        start(&mut t, 1, now);
        start(&mut t, 2, now);
        t.handle(1, Connection { addresses: vec!["tcp:10.0.0.1:1".into()] }.into(), now).unwrap();
        t.handle(2, Connection { addresses: vec!["tcp:10.0.0.2:2".into()] }.into(), now).unwrap();
        let out = t.handle(1, Register { ids: [(club, PeerId([1; 16]))].into() }.into(), now).unwrap();
        assert!(peers_for(&out, 1)[0].peers.is_empty());
        let out = t.handle(2, Register { ids: [(club, PeerId([2; 16]))].into() }.into(), now).unwrap();
        assert_eq!(peers_for(&out, 1)[0].peers[&PeerId([2; 16])], vec!["tcp:10.0.0.2:2".to_owned()]);
        assert_eq!(peers_for(&out, 2)[0].peers[&PeerId([1; 16])], vec!["tcp:10.0.0.1:1".to_owned()]);
        // A new address reaches the others; leaving empties the list.
        let out = t.handle(2, Connection { addresses: vec!["tcp:10.0.0.2:3".into()] }.into(), now).unwrap();
        assert_eq!(peers_for(&out, 1)[0].peers[&PeerId([2; 16])], vec!["tcp:10.0.0.2:3".to_owned()]);
        let out = t.disconnect(2);
        assert!(peers_for(&out, 1)[0].peers.is_empty());
    }

    #[test]
    fn silent_clients_expire_and_bad_ones_are_refused() {
        let now = Instant::now();
        let mut t = Tracker::new(Config::default());
        t.connect(1, "x", now);
        assert!(matches!(
            t.handle(1, Message::from(Connection { addresses: vec![] }), now),
            Err(TrackerError::NotStarted(_))
        ));
        let mut t = Tracker::new(Config::default());
        t.connect(1, "x", now);
        let s = Start { software: String::new(), protocol: 2, ttl: 60, extensions: vec![] };
        assert_eq!(t.handle(1, s.into(), now), Err(TrackerError::Version(2)));
        start(&mut t, 3, now);
        let many = Connection { addresses: vec!["a".into(); MAX_ADDRESSES + 1] };
        assert!(t.handle(3, many.into(), now).is_err());
        let ids = (0..=MAX_IDS).map(|i| (Sha256Hash([0; 32]).with_prefix(i), PeerId([0; 16]))).collect();
        assert!(t.handle(3, Register { ids }.into(), now).is_err());

        let mut t = Tracker::new(Config::default());
        start(&mut t, 1, now);
        start(&mut t, 2, now);
        let later = now + Duration::from_secs(61);
        t.handle(2, Message::from(crate::message::tracker::Ping {}), later).unwrap();
        let (gone, _) = t.expire(later);
        assert_eq!(gone, vec![1]);
        assert_eq!(t.clients(), 1);
    }

    trait Prefix {
        fn with_prefix(self, i: usize) -> Self;
    }
    impl Prefix for Sha256Hash {
        fn with_prefix(mut self, i: usize) -> Self {
            self.0[..8].copy_from_slice(&(i as u64).to_be_bytes());
            self
        }
    }
}
