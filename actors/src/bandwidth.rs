//! The daemon's upload and download limits and its measured rates.
//!
//! One pair of token buckets (governor, GCRA) per daemon, shared by every peer connection:
//! a connection's writer takes tokens before it writes to the socket, its reader after it
//! read (so the next read waits, TCP's window fills and the sender slows down). Limits are
//! bytes per second, `0` for none, and change at runtime (`set_config_value`): the bucket
//! is replaced and the next piece of I/O uses the new one. The bucket holds a tenth of a
//! second of traffic (at least 16 KiB), so a limit is reached within a few percent from the
//! first second on.
//!
//! The rates that `status` reports are measured here too: bytes per second over the last
//! three whole seconds.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Instant;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Smallest bucket (bytes): a limit below it still lets 16 KiB go at once.
const MIN_BURST: u32 = 16 << 10;
/// Seconds of traffic kept for the rate.
const WINDOW: usize = 4;

/// The daemon's limits and meters.
pub fn bandwidth() -> &'static Bandwidth {
    static BANDWIDTH: OnceLock<Bandwidth> = OnceLock::new();
    BANDWIDTH.get_or_init(Bandwidth::default)
}

/// Upload and download, each limited and measured.
#[derive(Debug, Default)]
pub struct Bandwidth {
    up: Direction,
    down: Direction,
}

impl Bandwidth {
    /// Sets both limits (bytes per second, `0` = none).
    pub fn set_limits(&self, upload: u64, download: u64) {
        self.up.set_limit(upload);
        self.down.set_limit(download);
    }

    /// The limits (bytes per second, `0` = none).
    pub fn limits(&self) -> (u64, u64) {
        (self.up.limit(), self.down.limit())
    }

    /// Measured (upload, download) bytes per second, over the last three whole seconds.
    pub fn rates(&self) -> (u64, u64) {
        (self.up.meter.rate(), self.down.meter.rate())
    }

    /// Waits until `n` bytes may be sent, and counts them.
    pub async fn upload(&self, n: usize) {
        self.up.take(n).await;
    }

    /// The size of the pieces a limited upload is written in (`None`: no limit).
    pub fn upload_piece(&self) -> Option<usize> {
        self.up.piece()
    }

    /// Counts `n` bytes received, waiting until the download limit allows them.
    pub async fn download(&self, n: usize) {
        self.down.take(n).await;
    }
}

#[derive(Debug, Default)]
struct Direction {
    bucket: RwLock<Option<Bucket>>,
    meter: Meter,
}

#[derive(Debug, Clone)]
struct Bucket {
    limit: u64,
    burst: u32,
    limiter: Arc<DefaultDirectRateLimiter>,
}

impl Direction {
    fn set_limit(&self, limit: u64) {
        let bucket = u32::try_from(limit).ok().and_then(NonZeroU32::new).map(|rate| {
            let burst = (rate.get() / 10).max(MIN_BURST);
            let quota = Quota::per_second(rate).allow_burst(NonZeroU32::new(burst).unwrap_or(rate));
            Bucket { limit, burst, limiter: Arc::new(RateLimiter::direct(quota)) }
        });
        // Above u32::MAX bytes/s (4 GB/s) is no limit at all.
        *self.bucket.write().unwrap_or_else(PoisonError::into_inner) = bucket;
    }

    fn limit(&self) -> u64 {
        self.bucket.read().unwrap_or_else(PoisonError::into_inner).as_ref().map_or(0, |b| b.limit)
    }

    async fn take(&self, n: usize) {
        let bucket = self.bucket.read().unwrap_or_else(PoisonError::into_inner).clone();
        let Some(bucket) = bucket else {
            self.meter.record(n);
            return;
        };
        let mut left = n;
        while left > 0 {
            let piece = left.min(bucket.burst as usize);
            let cells = NonZeroU32::new(u32::try_from(piece).unwrap_or(bucket.burst)).unwrap_or(NonZeroU32::MIN);
            // `piece` never exceeds the bucket, so this only ever waits.
            let _ = bucket.limiter.until_n_ready(cells).await;
            self.meter.record(piece);
            left -= piece;
        }
    }

    /// The largest piece worth writing at once: the bucket (a limited writer writes in
    /// pieces, so its output is smooth rather than a burst after a long wait).
    fn piece(&self) -> Option<usize> {
        self.bucket.read().unwrap_or_else(PoisonError::into_inner).as_ref().map(|b| b.burst as usize)
    }
}

/// Bytes per whole second, for the last few seconds.
#[derive(Debug)]
struct Meter {
    start: Instant,
    /// (second since `start`, bytes in it), by second modulo the window.
    seconds: Mutex<[(u64, u64); WINDOW]>,
}

impl Default for Meter {
    fn default() -> Self {
        Meter { start: Instant::now(), seconds: Mutex::new([(u64::MAX, 0); WINDOW]) }
    }
}

impl Meter {
    fn record(&self, n: usize) {
        let now = self.start.elapsed().as_secs();
        let mut s = self.seconds.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = &mut s[usize::try_from(now % WINDOW as u64).unwrap_or(0)];
        if slot.0 != now {
            *slot = (now, 0);
        }
        slot.1 += n as u64;
    }

    fn rate(&self) -> u64 {
        let now = self.start.elapsed().as_secs();
        let s = self.seconds.lock().unwrap_or_else(PoisonError::into_inner);
        let whole = WINDOW as u64 - 1;
        let total: u64 = s.iter().filter(|(sec, _)| *sec < now && now - sec <= whole).map(|(_, b)| b).sum();
        total / whole
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_limit_holds_traffic_to_its_rate() {
        let d = Direction::default();
        d.set_limit(400_000);
        assert_eq!(d.limit(), 400_000);
        let t = Instant::now();
        // 200 kB at 400 kB/s: half a second, less the first bucket (40 kB).
        for _ in 0..50 {
            d.take(4000).await;
        }
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(350), "{took:?}");
        assert!(took < Duration::from_millis(900), "{took:?}");
        // A piece larger than the bucket is split, not refused.
        d.take(100_000).await;
        d.set_limit(0);
        assert_eq!(d.limit(), 0);
        let t = Instant::now();
        d.take(10 << 20).await;
        assert!(t.elapsed() < Duration::from_millis(50));
    }

    #[test]
    fn the_rate_is_over_whole_seconds() {
        // Second 4 of the meter's life: seconds 1, 2 and 3 are the last three whole ones.
        let m = Meter { start: Instant::now() - Duration::from_millis(4500), ..Meter::default() };
        assert_eq!(m.rate(), 0);
        // Traffic in the current second does not count until the second is over.
        m.record(3000);
        assert_eq!(m.rate(), 0);
        let mut s = m.seconds.lock().unwrap();
        s[1] = (1, 3000);
        s[2] = (2, 6000);
        s[3] = (3, 9000);
        drop(s);
        assert_eq!(m.rate(), 6000);
        // An old second in a slot does not count.
        m.seconds.lock().unwrap()[3] = (u64::MAX, 9000);
        assert_eq!(m.rate(), 3000);
    }
}
