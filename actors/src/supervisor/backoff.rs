//! The restart policy: how long to wait before starting a crashed actor again. Pure (the
//! time is an argument), so that it is tested without a clock.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::supervise::ActorKind;

/// Delay before restarting a crashed actor; doubles per crash of that kind within
/// [`RESTART_WINDOW`], up to [`MAX_RESTART_DELAY`].
pub(super) const FIRST_RESTART_DELAY: Duration = Duration::from_millis(100);
/// The longest restart delay.
pub(super) const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);
/// Crashes older than this no longer lengthen the delay.
pub(super) const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// Recent crashes per actor kind.
#[derive(Debug, Default)]
pub struct Backoff {
    crashes: BTreeMap<ActorKind, VecDeque<Instant>>,
}

impl Backoff {
    /// Records a crash of `kind` at `now`; the delay before restarting it: 0.1 s, doubling
    /// per crash of that kind within the last minute, at most 30 s.
    pub fn crashed(&mut self, kind: ActorKind, now: Instant) -> Duration {
        let recent = self.crashes.entry(kind).or_default();
        recent.push_back(now);
        while recent.front().is_some_and(|t| now.duration_since(*t) > RESTART_WINDOW) {
            recent.pop_front();
        }
        let exponent = u32::try_from(recent.len() - 1).unwrap_or(u32::MAX).min(16);
        FIRST_RESTART_DELAY.saturating_mul(1 << exponent).min(MAX_RESTART_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_per_crash_of_a_kind_within_a_minute_and_is_capped() {
        let mut b = Backoff::default();
        let t0 = Instant::now();
        let delays: Vec<Duration> =
            (0..12u64).map(|i| b.crashed(ActorKind::Discovery, t0 + Duration::from_secs(i))).collect();
        assert_eq!(delays[0], Duration::from_millis(100));
        assert_eq!(delays[1], Duration::from_millis(200));
        assert_eq!(delays[4], Duration::from_millis(1600));
        assert_eq!(delays[8], Duration::from_millis(25_600));
        assert_eq!(delays[9], MAX_RESTART_DELAY);
        assert_eq!(delays[11], MAX_RESTART_DELAY);
    }

    #[test]
    fn kinds_are_counted_apart_and_old_crashes_are_forgotten() {
        let mut b = Backoff::default();
        let t0 = Instant::now();
        b.crashed(ActorKind::Listener, t0);
        b.crashed(ActorKind::Listener, t0);
        assert_eq!(b.crashed(ActorKind::Control, t0), FIRST_RESTART_DELAY);
        assert_eq!(b.crashed(ActorKind::Listener, t0), Duration::from_millis(400));
        // Past the window only this crash counts.
        let later = t0 + RESTART_WINDOW + Duration::from_secs(1);
        assert_eq!(b.crashed(ActorKind::Listener, later), FIRST_RESTART_DELAY);
    }
}
