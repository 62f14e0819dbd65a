//! Brute-force limits on authentication, per source IP and per access ID (governor).
//!
//! An attempt with an access code, custom credentials or an ID we do not know costs one
//! token of its source IP's bucket and one of its ID's bucket *before* SRP runs, so that
//! concurrent attempts cannot slip through: at most `per_minute` of them per IP and per ID
//! in any minute (bursts up to `per_minute`, then one every `60 / per_minute` seconds).
//! Unknown IDs pay exactly like real codes, so throttling reveals nothing about which
//! codes exist.
//!
//! Connections naming a share key ID (every reconnection of a peer that already joined) are
//! charged to a bucket of their own per source, more generous ([`KEY_ATTEMPTS_PER_MINUTE`])
//! and refunded when the proof succeeds: guessing a 256-bit key is hopeless, but each
//! attempt costs the worker an SRP computation (~5 ms), so a stranger naming a known key ID
//! (they are announced to trackers and on the LAN) is held to that budget, while a peer that
//! authenticates never spends any of it, however often it reconnects, and a brute-forcer
//! behind the same NAT cannot use up the code budget its legitimate peers need.
//!
//! Sources are IPv4 addresses or IPv6 /64s ([`Source`]), so one host cannot walk its /64.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clearskies_protocol::Sha256Hash;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::gate::Source;

/// How a refusal begins on the wire (`.rs.clearskies.srp.error`), so a client can tell a
/// throttled attempt from a wrong password ([`crate::peer::channel::Refusal`]).
pub use crate::peer::channel::THROTTLED;

/// Default attempts per minute per IP and per ID.
pub const DEFAULT_PER_MINUTE: u32 = 10;

/// Attempts per minute per source naming a share key ID that do not authenticate (the
/// bucket holds as many; an attempt that authenticates gets its token back).
pub const KEY_ATTEMPTS_PER_MINUTE: u32 = 30;

/// Keys kept before the limiters forget the ones that have refilled.
const TIDY_ABOVE: usize = 10_000;

/// The limiters.
#[derive(Debug)]
pub struct AuthThrottle {
    per_ip: DefaultKeyedRateLimiter<Source>,
    per_id: DefaultKeyedRateLimiter<Sha256Hash>,
    clock: DefaultClock,
    keys: Mutex<Buckets>,
}

/// Token buckets per source that can be refunded (governor's cannot).
#[derive(Debug)]
struct Buckets {
    capacity: f64,
    per_second: f64,
    tokens: HashMap<Source, (f64, Instant)>,
}

impl Buckets {
    fn new(per_minute: u32) -> Self {
        let capacity = f64::from(per_minute.max(1));
        Buckets { capacity, per_second: capacity / 60.0, tokens: HashMap::new() }
    }

    /// The source's tokens now.
    fn level(&self, source: Source, now: Instant) -> f64 {
        match self.tokens.get(&source) {
            Some((t, at)) => {
                (t + now.saturating_duration_since(*at).as_secs_f64() * self.per_second).min(self.capacity)
            }
            None => self.capacity,
        }
    }

    fn take(&mut self, source: Source, now: Instant) -> Result<(), Throttled> {
        let level = self.level(source, now);
        if level < 1.0 {
            return Err(Throttled(Duration::from_secs_f64((1.0 - level) / self.per_second)));
        }
        if self.tokens.len() >= TIDY_ABOVE && !self.tokens.contains_key(&source) {
            let (capacity, per_second) = (self.capacity, self.per_second);
            self.tokens
                .retain(|_, (t, at)| *t + now.saturating_duration_since(*at).as_secs_f64() * per_second < capacity);
            if self.tokens.len() >= TIDY_ABOVE {
                // More sources failing at once than we keep: forget the fullest buckets'
                // history rather than grow. (Concurrent attempts are capped by the listener.)
                self.tokens.clear();
            }
        }
        self.tokens.insert(source, (level - 1.0, now));
        Ok(())
    }

    fn refund(&mut self, source: Source, now: Instant) {
        let level = self.level(source, now);
        if let Some(entry) = self.tokens.get_mut(&source) {
            *entry = ((level + 1.0).min(self.capacity), now);
        }
    }
}

/// An attempt that must not go on, and how long the client should wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled(pub Duration);

impl Throttled {
    /// The refusal sent to the client.
    pub fn message(&self) -> String {
        format!("{THROTTLED}; try again in {} s", self.0.as_secs().max(1))
    }
}

impl AuthThrottle {
    /// `per_minute` attempts per IP and per ID (0 is taken as 1), and
    /// [`KEY_ATTEMPTS_PER_MINUTE`] failed share-key attempts per source.
    pub fn new(per_minute: u32) -> Self {
        Self::with_key_budget(per_minute, KEY_ATTEMPTS_PER_MINUTE)
    }

    /// [`AuthThrottle::new`] with `key_per_minute` failed share-key attempts per source.
    pub fn with_key_budget(per_minute: u32, key_per_minute: u32) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN));
        AuthThrottle {
            per_ip: RateLimiter::keyed(quota),
            per_id: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
            keys: Mutex::new(Buckets::new(key_per_minute)),
        }
    }

    /// Charges an attempt with a code, custom credentials or an unknown `id` from `ip`
    /// (the IP first: a flood from one address does not use up a code's own budget).
    pub fn charge_code(&self, ip: IpAddr, id: Sha256Hash) -> Result<(), Throttled> {
        let wait = |nu: governor::NotUntil<_>| Throttled(nu.wait_time_from(self.clock.now()));
        let charged = self
            .per_ip
            .check_key(&Source::of(ip))
            .map_err(wait)
            .and_then(|()| self.per_id.check_key(&id).map_err(wait));
        self.tidy();
        charged
    }

    /// Charges an attempt from `ip` naming one of our share key IDs, before SRP; call
    /// [`AuthThrottle::refund_key`] when it authenticates.
    pub fn charge_key(&self, ip: IpAddr) -> Result<(), Throttled> {
        let mut keys = self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.take(Source::of(ip), Instant::now())
    }

    /// An attempt charged with [`AuthThrottle::charge_key`] authenticated: its token back.
    pub fn refund_key(&self, ip: IpAddr) {
        let mut keys = self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.refund(Source::of(ip), Instant::now());
    }

    /// Forgets keys whose buckets are full again, once there are many: memory stays
    /// bounded by the attempts of about the last minute.
    fn tidy(&self) {
        if self.per_ip.len() > TIDY_ABOVE {
            self.per_ip.retain_recent();
        }
        if self.per_id.len() > TIDY_ABOVE {
            self.per_id.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn an_ip_gets_its_quota_then_waits() {
        let t = AuthThrottle::new(10);
        for i in 0..10u8 {
            t.charge_code(A, Sha256Hash([i; 32])).unwrap();
        }
        let Throttled(wait) = t.charge_code(A, Sha256Hash([99; 32])).unwrap_err();
        assert!(wait > Duration::from_secs(4) && wait <= Duration::from_secs(6), "{wait:?}");
        assert!(Throttled(wait).message().starts_with(THROTTLED));
        assert!(t.charge_code(B, Sha256Hash([99; 32])).is_ok(), "another IP is not affected");
    }

    #[test]
    fn an_id_gets_its_quota_across_ips() {
        let t = AuthThrottle::new(3);
        let id = Sha256Hash([7; 32]);
        for i in 0..3u8 {
            t.charge_code(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, i)), id).unwrap();
        }
        assert!(t.charge_code(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 9)), id).is_err());
        assert!(t.charge_code(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 9)), Sha256Hash([8; 32])).is_ok());
    }

    #[test]
    fn failed_key_attempts_use_up_a_budget_and_successful_ones_are_refunded() {
        let t = AuthThrottle::with_key_budget(10, 30);
        // A peer that authenticates every time is never held back.
        for _ in 0..1000 {
            t.charge_key(A).unwrap();
            t.refund_key(A);
        }
        // Failures are not refunded: 30, then one every 2 s.
        for _ in 0..30 {
            t.charge_key(B).unwrap();
        }
        let Throttled(wait) = t.charge_key(B).unwrap_err();
        assert!(wait > Duration::from_secs(1) && wait <= Duration::from_secs(2), "{wait:?}");
        assert!(t.charge_key(A).is_ok(), "another source is not affected");
        // Key failures and code attempts have separate budgets.
        assert!(t.charge_code(B, Sha256Hash([1; 32])).is_ok());
    }

    #[test]
    fn an_ipv6_host_cannot_walk_its_slash_64() {
        let t = AuthThrottle::with_key_budget(2, 2);
        let ip = |i: u16| IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 7, i, 0, 0, 1));
        t.charge_code(ip(1), Sha256Hash([1; 32])).unwrap();
        t.charge_code(ip(2), Sha256Hash([2; 32])).unwrap();
        assert!(t.charge_code(ip(3), Sha256Hash([3; 32])).is_err());
        t.charge_key(ip(4)).unwrap();
        t.charge_key(ip(5)).unwrap();
        assert!(t.charge_key(ip(6)).is_err());
    }
}
