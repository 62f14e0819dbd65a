//! Limits on connections that have not authenticated yet (modelled on OpenSSH's
//! `MaxStartups` and `PerSourceMaxStartups`).
//!
//! Every accepted TCP connection holds a slot from accept until TLS and SRP are done (or
//! [`PRE_AUTH_TIMEOUT`] passes). A source (an IPv4 address, or an IPv6 /64, since one host
//! commonly has a whole /64) holds at most `per_source` slots; a connection beyond that is
//! closed at once. Beyond `start` slots in total, a new connection is refused with a
//! probability that starts at `rate_percent` and grows linearly to 100 % at `full` slots.
//! A connection that would be refused that way still gets in if some source holds at least
//! two slots more than the newcomer's source: that source's oldest attempt is closed to make
//! room. So a flood from a few addresses cannot lock out anybody else, and connections that
//! are refused cost one accept and one close, never a task or a buffer.
//!
//! `full` is kept to a quarter of the worker's file-descriptor limit, so the control socket,
//! the index, shares and established peers always have descriptors left.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

/// How long TLS and SRP may take together on an incoming connection.
pub const PRE_AUTH_TIMEOUT: Duration = crate::peer::channel::ACCEPT_TIMEOUT;

/// The caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreAuthLimits {
    /// Slots one source may hold.
    pub per_source: usize,
    /// Slots in use from which random early refusal starts.
    pub start: usize,
    /// Refusal probability at `start`, in percent.
    pub rate_percent: u32,
    /// Slots in total.
    pub full: usize,
}

impl Default for PreAuthLimits {
    /// 8 per source, and `MaxStartups 10:30:100`.
    fn default() -> Self {
        PreAuthLimits { per_source: 8, start: 10, rate_percent: 30, full: 100 }
    }
}

impl PreAuthLimits {
    /// These limits with `full` at most a quarter of `fd_limit` (the process's descriptor
    /// limit), and the others no larger than `full`.
    pub fn within_fd_limit(self, fd_limit: u64) -> Self {
        let quarter = usize::try_from(fd_limit / 4).unwrap_or(usize::MAX).max(1);
        let full = self.full.clamp(1, quarter);
        PreAuthLimits {
            per_source: self.per_source.clamp(1, full),
            start: self.start.min(full),
            rate_percent: self.rate_percent.min(100),
            full,
        }
    }

    /// Refusal probability in percent with `in_use` slots taken.
    fn refusal_percent(&self, in_use: usize) -> u64 {
        if in_use >= self.full {
            return 100;
        }
        if in_use < self.start {
            return 0;
        }
        let rate = u64::from(self.rate_percent);
        let span = (self.full - self.start).max(1) as u64;
        rate + (100 - rate) * (in_use - self.start) as u64 / span
    }
}

/// Where a connection comes from, for the per-source cap: an IPv4 address, or the /64 of an
/// IPv6 address (IPv4-mapped IPv6 addresses count as IPv4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source(IpAddr);

impl Source {
    /// The source of `ip`.
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source(IpAddr::V4(v4)),
                None => Source(IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX)))),
            },
        }
    }
}

/// Why a connection was closed before its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its source already holds `per_source` slots.
    PerSource,
    /// Random early refusal, or all slots taken (and no heavier source to displace).
    Busy,
}

/// An admitted connection's slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    source: Source,
    id: u64,
}

/// The slots in use. `T` is what closes an attempt that is displaced (handed back by
/// [`Gate::admit`] so the caller can close it).
#[derive(Debug)]
pub struct Gate<T> {
    limits: PreAuthLimits,
    by_source: HashMap<Source, VecDeque<(u64, T)>>,
    in_use: usize,
    next: u64,
}

impl<T> Gate<T> {
    /// No slots in use.
    pub fn new(limits: PreAuthLimits) -> Self {
        Gate { limits, by_source: HashMap::new(), in_use: 0, next: 0 }
    }

    /// The limits.
    pub fn limits(&self) -> PreAuthLimits {
        self.limits
    }

    /// Slots in use.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// Slots `ip`'s source holds.
    pub fn held_by(&self, ip: IpAddr) -> usize {
        self.by_source.get(&Source::of(ip)).map_or(0, VecDeque::len)
    }

    /// A new connection from `ip`. `roll` is a uniformly random number in `0..100` (the
    /// random early refusal); `close` closes this attempt if it is displaced later. On
    /// success, the slot's ticket and possibly a displaced attempt to close.
    pub fn admit(&mut self, ip: IpAddr, roll: u32, close: T) -> Result<(Ticket, Option<T>), Refusal> {
        let source = Source::of(ip);
        let mine = self.by_source.get(&source).map_or(0, VecDeque::len);
        if mine >= self.limits.per_source {
            return Err(Refusal::PerSource);
        }
        let mut displaced = None;
        if u64::from(roll) < self.limits.refusal_percent(self.in_use) {
            let heaviest = self.by_source.iter().max_by_key(|(_, q)| q.len()).map(|(s, q)| (*s, q.len()));
            match heaviest {
                Some((heavy, n)) if n >= mine + 2 => {
                    displaced = self.remove_oldest(heavy);
                }
                _ => return Err(Refusal::Busy),
            }
        }
        let id = self.next;
        self.next += 1;
        self.by_source.entry(source).or_default().push_back((id, close));
        self.in_use += 1;
        Ok((Ticket { source, id }, displaced))
    }

    /// The attempt with `ticket` ended (authenticated, failed or timed out); nothing if it
    /// was displaced already.
    pub fn release(&mut self, ticket: Ticket) -> Option<T> {
        let queue = self.by_source.get_mut(&ticket.source)?;
        let at = queue.iter().position(|(id, _)| *id == ticket.id)?;
        let (_, close) = queue.remove(at)?;
        if queue.is_empty() {
            self.by_source.remove(&ticket.source);
        }
        self.in_use -= 1;
        Some(close)
    }

    fn remove_oldest(&mut self, source: Source) -> Option<T> {
        let queue = self.by_source.get_mut(&source)?;
        let (_, close) = queue.pop_front()?;
        if queue.is_empty() {
            self.by_source.remove(&source);
        }
        self.in_use -= 1;
        Some(close)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn a_source_gets_its_cap_and_no_more() {
        let mut g = Gate::new(PreAuthLimits::default());
        for i in 0..8 {
            g.admit(v4(1), 99, i).unwrap();
        }
        assert_eq!(g.admit(v4(1), 99, 8).unwrap_err(), Refusal::PerSource);
        assert_eq!(g.held_by(v4(1)), 8);
        g.admit(v4(2), 99, 0).unwrap();
    }

    #[test]
    fn an_ipv6_slash_64_is_one_source() {
        let mut g = Gate::new(PreAuthLimits::default());
        for i in 0..8u16 {
            let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, i, i, i, i));
            g.admit(ip, 99, ()).unwrap();
        }
        let same = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0xffff, 1, 2, 3));
        assert_eq!(g.admit(same, 99, ()).unwrap_err(), Refusal::PerSource);
        let other = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1));
        assert!(g.admit(other, 99, ()).is_ok());
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(Source::of(mapped), Source::of(v4(1)));
    }

    #[test]
    fn random_early_refusal_grows_to_full() {
        let l = PreAuthLimits::default();
        assert_eq!(l.refusal_percent(9), 0);
        assert_eq!(l.refusal_percent(10), 30);
        assert_eq!(l.refusal_percent(55), 65);
        assert_eq!(l.refusal_percent(99), 99);
        assert_eq!(l.refusal_percent(100), 100);
        // Sources holding one slot each: nobody to displace, so refusals follow the roll.
        let mut g = Gate::new(l);
        for i in 0..10u8 {
            g.admit(v4(i), 0, ()).unwrap();
        }
        assert_eq!(g.admit(v4(100), 29, ()).unwrap_err(), Refusal::Busy);
        assert!(g.admit(v4(101), 30, ()).is_ok());
        for i in 11..100u8 {
            let _ = g.admit(v4(i + 100), 99, ());
        }
        assert_eq!(g.in_use(), 100);
        assert_eq!(g.admit(v4(250), 99, ()).unwrap_err(), Refusal::Busy);
    }

    #[test]
    fn a_newcomer_displaces_the_heaviest_source_when_full() {
        let limits = PreAuthLimits { per_source: 8, start: 10, rate_percent: 30, full: 40 };
        let mut g = Gate::new(limits);
        for s in 1..=5u8 {
            for i in 0..8u32 {
                g.admit(v4(s), 99, (s, i)).unwrap();
            }
        }
        assert_eq!(g.in_use(), 40);
        let (ticket, displaced) = g.admit(v4(77), 99, (77, 0)).unwrap();
        let (s, i) = displaced.expect("someone's oldest attempt makes room");
        assert_eq!(i, 0, "the oldest of the heaviest source");
        assert_eq!(g.held_by(v4(s)), 7);
        assert_eq!(g.in_use(), 40);
        // Releasing twice (or a displaced ticket) changes nothing.
        assert_eq!(g.release(ticket), Some((77, 0)));
        assert_eq!(g.release(ticket), None);
        assert_eq!(g.in_use(), 39);
    }

    #[test]
    fn limits_stay_within_a_quarter_of_the_fd_limit() {
        let l = PreAuthLimits::default().within_fd_limit(256);
        assert_eq!((l.full, l.start, l.per_source), (64, 10, 8));
        let l = PreAuthLimits::default().within_fd_limit(20);
        assert_eq!((l.full, l.start, l.per_source), (5, 5, 5));
        assert_eq!(PreAuthLimits::default().within_fd_limit(1 << 20), PreAuthLimits::default());
    }
}
