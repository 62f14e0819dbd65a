//! The tracker's state, sans-IO (`core.md`, "Tracker Protocol").
//!
//! Clients connect, receive a `tracker.greeting`, answer `tracker.start`, then send
//! `tracker.connection` (their addresses, repeated verbatim to others) and `tracker.register`
//! (every ID they know, with their peer ID for it). For each ID (a "club") the tracker sends
//! every member a `tracker.peers` listing the other members and their addresses, again
//! whenever that list changes. A client silent for longer than its TTL is dropped.
//!
//! The driver calls [`Tracker::connect`], [`Tracker::handle`], [`Tracker::disconnect`] and
//! [`Tracker::expire`]; these only note which members of which clubs have news (O(members)
//! per change). The driver collects the news with [`Tracker::take_news`], at most once per
//! interval and at most so many messages at a time, and writes them to the named clients:
//! changes between two collections are coalesced (a member gets one `tracker.peers` per
//! club with the list as it is then), so a burst of changes in a club costs one round of
//! lists, not one per change, and the work per collection is bounded whatever clients do.
//!
//! Input is hostile: limits bound every list a client can make the tracker hold, the
//! members of a club ([`Config::max_members`]) and the clients ([`Config::max_clients`]).

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
    /// The tracker has [`Config::max_clients`] clients already.
    #[error("the tracker is full")]
    Full,
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
    /// Clients at once.
    pub max_clients: usize,
    /// Members of one club (ID); a client registering an ID whose club is full is not
    /// added to it (it keeps its other clubs).
    pub max_members: usize,
}

/// Default [`Config::max_clients`].
pub const DEFAULT_MAX_CLIENTS: usize = 10_000;
/// Default [`Config::max_members`]: far more devices than one share's friends have.
pub const DEFAULT_MAX_MEMBERS: usize = 128;

impl Default for Config {
    fn default() -> Self {
        Config {
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(3600),
            software: String::new(),
            max_clients: DEFAULT_MAX_CLIENTS,
            max_members: DEFAULT_MAX_MEMBERS,
        }
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
    /// Clubs whose list each client is owed (only clubs it is a member of).
    news: BTreeMap<ClientId, BTreeSet<Sha256Hash>>,
    /// The last client [`Tracker::take_news`] served (it goes round the clients in turn).
    served: ClientId,
}

/// Messages to send: (to whom, what).
pub type Outgoing = Vec<(ClientId, Message)>;

impl Tracker {
    /// An empty tracker.
    pub fn new(config: Config) -> Self {
        Tracker { config, clients: BTreeMap::new(), clubs: BTreeMap::new(), news: BTreeMap::new(), served: 0 }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Clients connected.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// A new connection from `ip` (formatted as the greeting shows it): the greeting to send,
    /// or [`TrackerError::Full`] (close the connection).
    pub fn connect(&mut self, client: ClientId, ip: &str, now: Instant) -> Result<Message, TrackerError> {
        if self.clients.len() >= self.config.max_clients && !self.clients.contains_key(&client) {
            return Err(TrackerError::Full);
        }
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
        Ok(Greeting {
            software: self.config.software.clone(),
            max_ttl: self.config.max_ttl.as_secs(),
            min_ttl: self.config.min_ttl.as_secs(),
            your_ip: ip.to_owned(),
            protocol: vec![1],
            extensions: Vec::new(),
        }
        .into())
    }

    /// A message from `client`. An error means: disconnect it (then call
    /// [`Tracker::disconnect`]). News it causes is collected with [`Tracker::take_news`].
    pub fn handle(&mut self, client: ClientId, message: Message, now: Instant) -> Result<(), TrackerError> {
        let (min, max) = (self.config.min_ttl, self.config.max_ttl);
        let Some(c) = self.clients.get_mut(&client) else { return Ok(()) };
        c.last_seen = now;
        if !c.started {
            return match message {
                Message::TrackerStart(s) if s.protocol == 1 => {
                    c.started = true;
                    c.ttl = Duration::from_secs(s.ttl).clamp(min, max);
                    Ok(())
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
                    return Ok(());
                }
                c.addresses = conn.addresses;
                let clubs: Vec<Sha256Hash> = c.ids.keys().copied().collect();
                self.announce(&clubs);
                Ok(())
            }
            Message::TrackerRegister(Register { mut ids }) => {
                if ids.len() > MAX_IDS {
                    return Err(TrackerError::Limit("ids"));
                }
                // Clubs that are full do not take this client (unless it is in them already).
                let cap = self.config.max_members;
                let clubs = &self.clubs;
                ids.retain(|id, _| clubs.get(id).is_none_or(|m| m.len() < cap || m.contains(&client)));
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
                // News it is owed about clubs it left is void.
                if let Some(owed) = self.news.get_mut(&client) {
                    owed.retain(|id| self.clubs.get(id).is_some_and(|m| m.contains(&client)));
                }
                let changed: Vec<Sha256Hash> = changed.into_iter().collect();
                self.announce(&changed);
                Ok(())
            }
            // Pings only refresh `last_seen`; other types are not for trackers.
            _ => Ok(()),
        }
    }

    /// The connection closed (or was dropped): tells the clubs it was in.
    pub fn disconnect(&mut self, client: ClientId) {
        self.news.remove(&client);
        let Some(c) = self.clients.remove(&client) else { return };
        let clubs: Vec<Sha256Hash> = c.ids.keys().copied().collect();
        for id in &clubs {
            if let Some(members) = self.clubs.get_mut(id) {
                members.remove(&client);
                if members.is_empty() {
                    self.clubs.remove(id);
                }
            }
        }
        self.announce(&clubs);
    }

    /// Drops clients silent for longer than their TTL; returns them (to close).
    pub fn expire(&mut self, now: Instant) -> Vec<ClientId> {
        let gone: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|(_, c)| now.saturating_duration_since(c.last_seen) > c.ttl)
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            self.disconnect(*id);
        }
        gone
    }

    /// When [`Tracker::expire`] should run next.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.clients.values().map(|c| c.last_seen + c.ttl).min()
    }

    /// Whether some client is owed news.
    pub fn has_news(&self) -> bool {
        !self.news.is_empty()
    }

    /// Up to `max` messages of news, going round the clients owed some in turn, one club
    /// per client per turn; clients for which `ready` says no are skipped (their news
    /// waits). Each message is the club's member list as it is now, so changes since the
    /// last call are coalesced.
    pub fn take_news(&mut self, max: usize, mut ready: impl FnMut(ClientId) -> bool) -> Outgoing {
        let mut out = Vec::new();
        while out.len() < max && !self.news.is_empty() {
            let turn: Vec<ClientId> = self
                .news
                .range(self.served.saturating_add(1)..)
                .chain(self.news.range(..=self.served))
                .map(|(c, _)| *c)
                .take(max - out.len())
                .collect();
            let before = out.len();
            for to in turn {
                self.served = to;
                if !ready(to) {
                    continue;
                }
                let Some(owed) = self.news.get_mut(&to) else { continue };
                let Some(id) = owed.pop_first() else { continue };
                if owed.is_empty() {
                    self.news.remove(&to);
                }
                if let Some(peers) = self.list(id, to) {
                    out.push((to, peers));
                }
            }
            if out.len() == before && self.news.keys().all(|c| !ready(*c)) {
                break;
            }
        }
        out
    }

    /// Owes each member of each club in `clubs` its list (O(members) per club).
    fn announce(&mut self, clubs: &[Sha256Hash]) {
        for id in clubs {
            let Some(members) = self.clubs.get(id) else { continue };
            for to in members {
                self.news.entry(*to).or_default().insert(*id);
            }
        }
    }

    /// The `tracker.peers` of club `id` for its member `to`; `None` if it is not a member.
    fn list(&self, id: Sha256Hash, to: ClientId) -> Option<Message> {
        let members = self.clubs.get(&id).filter(|m| m.contains(&to))?;
        let mut peers = BTreeMap::new();
        for other in members.iter().filter(|m| **m != to) {
            if let Some(c) = self.clients.get(other) {
                if let (Some(peer), false) = (c.ids.get(&id), c.addresses.is_empty()) {
                    peers.insert(*peer, c.addresses.clone());
                }
            }
        }
        Some(Peers { id, peers }.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::tracker::{Connection, Start};

    fn start(t: &mut Tracker, c: ClientId, now: Instant) {
        t.connect(c, "127.0.0.1", now).unwrap();
        let s = Start { software: "t".into(), protocol: 1, ttl: 60, extensions: vec![] };
        t.handle(c, s.into(), now).unwrap();
    }

    fn all_news(t: &mut Tracker) -> Outgoing {
        t.take_news(usize::MAX, |_| true)
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

    fn join(t: &mut Tracker, c: ClientId, club: Sha256Hash, now: Instant) {
        let addr = format!("tcp:10.0.{}.{}:1", c / 256, c % 256);
        t.handle(c, Connection { addresses: vec![addr] }.into(), now).unwrap();
        t.handle(c, Register { ids: [(club, PeerId([0; 16]).numbered(c))].into() }.into(), now).unwrap();
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
        t.handle(1, Register { ids: [(club, PeerId([1; 16]))].into() }.into(), now).unwrap();
        let out = all_news(&mut t);
        assert!(peers_for(&out, 1)[0].peers.is_empty());
        t.handle(2, Register { ids: [(club, PeerId([2; 16]))].into() }.into(), now).unwrap();
        let out = all_news(&mut t);
        assert_eq!(peers_for(&out, 1)[0].peers[&PeerId([2; 16])], vec!["tcp:10.0.0.2:2".to_owned()]);
        assert_eq!(peers_for(&out, 2)[0].peers[&PeerId([1; 16])], vec!["tcp:10.0.0.1:1".to_owned()]);
        // A new address reaches the others; leaving empties the list.
        t.handle(2, Connection { addresses: vec!["tcp:10.0.0.2:3".into()] }.into(), now).unwrap();
        let out = all_news(&mut t);
        assert_eq!(peers_for(&out, 1)[0].peers[&PeerId([2; 16])], vec!["tcp:10.0.0.2:3".to_owned()]);
        t.disconnect(2);
        let out = all_news(&mut t);
        assert!(peers_for(&out, 1)[0].peers.is_empty());
        assert!(peers_for(&out, 2).is_empty());
        assert!(!t.has_news());
    }

    #[test]
    fn silent_clients_expire_and_bad_ones_are_refused() {
        let now = Instant::now();
        let mut t = Tracker::new(Config::default());
        t.connect(1, "x", now).unwrap();
        assert!(matches!(
            t.handle(1, Message::from(Connection { addresses: vec![] }), now),
            Err(TrackerError::NotStarted(_))
        ));
        let mut t = Tracker::new(Config::default());
        t.connect(1, "x", now).unwrap();
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
        let gone = t.expire(later);
        assert_eq!(gone, vec![1]);
        assert_eq!(t.clients(), 1);
    }

    #[test]
    fn clients_and_club_members_are_capped() {
        let now = Instant::now();
        let config = Config { max_clients: 5, max_members: 3, ..Config::default() };
        let mut t = Tracker::new(config);
        for c in 1..=5 {
            start(&mut t, c, now);
        }
        assert_eq!(t.connect(6, "x", now), Err(TrackerError::Full));
        assert_eq!(t.clients(), 5);
        let (club, other) = (Sha256Hash([1; 32]), Sha256Hash([2; 32]));
        for c in 1..=4 {
            let ids = [(club, PeerId([0; 16]).numbered(c)), (other, PeerId([0; 16]).numbered(c))];
            t.handle(c, Register { ids: ids.into() }.into(), now).unwrap();
        }
        // Both clubs are full with the first three: the fourth is in neither and hears
        // nothing of them; a member re-registering stays in.
        assert_eq!((t.clubs[&club].len(), t.clubs[&other].len()), (3, 3));
        assert!(t.clients[&4].ids.is_empty());
        t.handle(1, Register { ids: [(club, PeerId([0; 16]).numbered(1))].into() }.into(), now).unwrap();
        assert!(t.clubs[&club].contains(&1));
        assert!(peers_for(&all_news(&mut t), 4).is_empty());
        // A place frees up: a new registration gets in.
        t.disconnect(2);
        t.handle(4, Register { ids: [(club, PeerId([0; 16]).numbered(4))].into() }.into(), now).unwrap();
        assert!(t.clubs[&club].contains(&4));
        t.disconnect(1);
        t.connect(7, "x", now).unwrap();
    }

    #[test]
    fn a_burst_of_changes_costs_one_round_of_lists() {
        let now = Instant::now();
        let mut t = Tracker::new(Config::default());
        let club = Sha256Hash([1; 32]);
        let members = 100;
        for c in 1..=members {
            start(&mut t, c, now);
            join(&mut t, c, club, now);
        }
        all_news(&mut t);
        // One member changes its address 1000 times between two collections.
        for i in 0..1000 {
            let addr = format!("tcp:10.9.9.9:{i}");
            t.handle(1, Connection { addresses: vec![addr] }.into(), now).unwrap();
        }
        let out = all_news(&mut t);
        assert_eq!(out.len(), 100, "one list per member, not one per change");
        assert_eq!(peers_for(&out, 2)[0].peers[&PeerId([0; 16]).numbered(1)], vec!["tcp:10.9.9.9:999".to_owned()]);
        assert!(!t.has_news());
    }

    #[test]
    fn news_is_collected_in_bounded_rounds_fairly_and_waits_for_slow_clients() {
        let now = Instant::now();
        let mut t = Tracker::new(Config::default());
        let (a, b) = (Sha256Hash([1; 32]), Sha256Hash([2; 32]));
        for c in 1..=10 {
            start(&mut t, c, now);
            join(&mut t, c, if c <= 5 { a } else { b }, now);
        }
        t.take_news(usize::MAX, |_| true);
        // Everyone's address changes: ten lists are owed.
        for c in 1..=10 {
            t.handle(c, Connection { addresses: vec![format!("tcp:10.1.1.{c}:2")] }.into(), now).unwrap();
        }
        let first = t.take_news(4, |_| true);
        assert_eq!(first.len(), 4);
        // Client 7 is not ready (its queue is full): the others are served, its news waits.
        let rest = t.take_news(100, |c| c != 7);
        assert_eq!(rest.len(), 5);
        let mut served: Vec<ClientId> = first.iter().chain(&rest).map(|(c, _)| *c).collect();
        served.sort_unstable();
        assert_eq!(served, vec![1, 2, 3, 4, 5, 6, 8, 9, 10]);
        assert!(t.has_news());
        assert_eq!(t.take_news(100, |c| c != 7).len(), 0);
        let last = t.take_news(100, |_| true);
        assert_eq!(last.iter().map(|(c, _)| *c).collect::<Vec<_>>(), vec![7]);
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

    trait Numbered {
        fn numbered(self, c: ClientId) -> Self;
    }
    impl Numbered for PeerId {
        fn numbered(mut self, c: ClientId) -> Self {
            self.0[..8].copy_from_slice(&c.to_be_bytes());
            self
        }
    }
}
