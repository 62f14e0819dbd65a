//! Brute-force limits on authentication, per source IP and per access ID (governor).
//!
//! An attempt with an access code, custom credentials or an ID we do not know costs one
//! token of its source IP's bucket and one of its ID's bucket *before* SRP runs, so that
//! concurrent attempts cannot slip through: at most `per_minute` of them per IP and per ID
//! in any minute (bursts up to `per_minute`, then one every `60 / per_minute` seconds).
//! Unknown IDs pay exactly like real codes, so throttling reveals nothing about which
//! codes exist.
//!
//! Connections with a share key (every reconnection of a peer that already joined) are not
//! charged: a key is 256 random bits, so guessing one is hopeless, and charging them would
//! let a brute-forcer lock out the legitimate peers behind the same NAT, or throttle a
//! daemon that reconnects many shares at once after a restart. Share key IDs are announced
//! to trackers and on the LAN anyway, so treating them differently gives nothing away.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use clearskies_protocol::Sha256Hash;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// How a refusal begins on the wire (`.rs.clearskies.srp.error`), so a client can tell a
/// throttled attempt from a wrong password.
pub const THROTTLED: &str = "too many authentication attempts";

/// Default attempts per minute per IP and per ID.
pub const DEFAULT_PER_MINUTE: u32 = 10;

/// Keys kept before the limiters forget the ones that have refilled.
const TIDY_ABOVE: usize = 10_000;

/// The two limiters.
#[derive(Debug)]
pub struct AuthThrottle {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_id: DefaultKeyedRateLimiter<Sha256Hash>,
    clock: DefaultClock,
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
    /// `per_minute` attempts per IP and per ID (0 is taken as 1).
    pub fn new(per_minute: u32) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN));
        AuthThrottle {
            per_ip: RateLimiter::keyed(quota),
            per_id: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        }
    }

    /// Charges an attempt with a code, custom credentials or an unknown `id` from `ip`
    /// (the IP first: a flood from one address does not use up a code's own budget).
    pub fn charge_code(&self, ip: IpAddr, id: Sha256Hash) -> Result<(), Throttled> {
        let wait = |nu: governor::NotUntil<_>| Throttled(nu.wait_time_from(self.clock.now()));
        let charged = self.per_ip.check_key(&ip).map_err(wait).and_then(|()| self.per_id.check_key(&id).map_err(wait));
        self.tidy();
        charged
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
}
