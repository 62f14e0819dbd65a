// ClearSkies addition to librqbit-utp 0.7.0 (Apache-2.0, as the crate); see README.md.

//! LEDBAT, "Low Extra Delay Background Transport" (RFC 6817), the congestion controller that
//! BEP 29 specifies for uTP. Added by ClearSkies to the vendored librqbit-utp 0.7.0 (upstream
//! had "TODO: LEDBAT" and ran CUBIC only); see the CHANGES section of the crate's README.
//!
//! The sender keeps the one-way delay samples its peer reports in every packet
//! (`timestamp_difference_microseconds`: the peer's clock at reception minus our clock at
//! sending, so it includes an unknown clock offset):
//!
//! - base delay = the minimum sample over the last `base_history` minutes (RFC 6817 §2.4.2:
//!   BASE_HISTORY one-minute minima, 10 by default; BEP 29 uses two minutes);
//! - current delay = the minimum of the last CURRENT_FILTER samples;
//! - queuing delay = current - base (never negative, never more than this ACK's RTT, as libutp
//!   does: a one-way queuing delay cannot exceed the round trip);
//! - on each ACK: `cwnd += GAIN * (TARGET - queuing_delay) / TARGET * bytes_acked * MSS / cwnd`,
//!   TARGET 100 ms, GAIN 1; growth limited to `flightsize + ALLOWED_INCREASE * MSS`;
//!   `cwnd >= MIN_CWND * MSS` (2 packets);
//! - on loss (entering fast recovery) the window halves, at most once per recovery episode
//!   (~once per RTT); on a retransmission timeout cwnd drops to 1 MSS (RFC 6817) and slow start
//!   resumes, but the window used for sending never goes below MIN_CWND (2 packets: BEP 29's
//!   and librqbit-utp's floor), so the next ACK brings it back to 2 packets exactly as CUBIC's
//!   RFC 5681 handling here does.
//! - `window()` is min(cwnd, the peer's advertised window), as for CUBIC: a zero advertised
//!   window is flow control (the sender must stop), not congestion state.
//!
//! Slow start (RFC 6817 allows one no more aggressive than TCP's): `cwnd += bytes_acked` while
//! cwnd < ssthresh and the queuing delay is below TARGET/2; leaving it because of delay sets
//! ssthresh = cwnd. Loss sets ssthresh = cwnd/2 as in TCP.
//!
//! The peer controls every header field, so nothing it sends can panic this code or push the
//! congestion window out of `[MIN_CWND * MSS, MAX_CWND_BYTES]`: timestamps are compared with wrapping
//! arithmetic (the u32 microsecond clocks wrap every ~71.6 minutes); a sample more than
//! MAX_DELAY_SAMPLE (10 s) away from the base delay is ignored; if every sample is out of range
//! for a while (the peer's clock jumped) the history restarts; all state is fixed-size (no
//! allocation); window arithmetic is in f64 on clamped, finite inputs.

use std::time::{Duration, Instant};

use crate::rtte::RttEstimator;

use super::CongestionController;

/// RFC 6817: TARGET MUST NOT be more than 100 ms. BEP 29: CCONTROL_TARGET = 100 ms.
pub const DEFAULT_TARGET_DELAY: Duration = Duration::from_millis(100);
const MAX_TARGET_US: i64 = 100_000;
const MIN_TARGET_US: i64 = 1_000;

/// RFC 6817: GAIN MUST be 1 or less.
const GAIN: f64 = 1.0;

/// RFC 6817: MIN_CWND SHOULD be 2 (packets).
const MIN_CWND_MSS: f64 = 2.0;
/// RFC 6817: INIT_CWND SHOULD be 2 (packets).
const INIT_CWND_MSS: f64 = 2.0;
/// RFC 6817: ALLOWED_INCREASE SHOULD be 1 (packet).
const ALLOWED_INCREASE_MSS: f64 = 1.0;
/// Upper bound whatever the peer advertises (the send buffer caps the flight below this anyway).
pub const MAX_CWND_BYTES: f64 = (64 * 1024 * 1024) as f64;

/// RFC 6817: BASE_HISTORY SHOULD be 10 (one-minute minima).
pub const DEFAULT_BASE_HISTORY_MINUTES: usize = 10;
pub const MAX_BASE_HISTORY_MINUTES: usize = 20;
const BASE_BUCKET: Duration = Duration::from_secs(60);

/// RFC 6817: the current delay is a filter (here the minimum) over a few recent samples.
const CURRENT_FILTER: usize = 4;

/// A sample further than this from the base delay is ignored (hostile or broken peer, or a
/// clock step; see RESET_*).
pub const MAX_DELAY_SAMPLE_US: i64 = 10_000_000;
/// If at least this many consecutive samples, spread over at least RESET_AFTER, were out of
/// range, the peer's clock (or route) really changed: restart the history from the new samples.
const RESET_AFTER_SAMPLES: u32 = 16;
const RESET_AFTER: Duration = Duration::from_secs(2);

/// uTP packets fit in a UDP datagram: a larger "MSS" can only be a bug; clamp it.
const MAX_MSS: usize = u16::MAX as usize;

/// Leave slow start when the queuing delay reaches this fraction of TARGET.
const SLOW_START_EXIT_FRACTION: i64 = 2; // TARGET / 2

/// LEDBAT settings, in [`crate::CongestionConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedbatOpts {
    /// Queuing delay LEDBAT aims for. Clamped to 1..=100 ms (RFC 6817: at most 100 ms).
    pub target_delay: Duration,
    /// Minutes of one-minute minima the base delay is taken over. Clamped to 1..=20.
    /// RFC 6817: 10 (default); BEP 29: 2.
    pub base_history_minutes: usize,
}

impl Default for LedbatOpts {
    fn default() -> Self {
        Self {
            target_delay: DEFAULT_TARGET_DELAY,
            base_history_minutes: DEFAULT_BASE_HISTORY_MINUTES,
        }
    }
}

/// `a - b` for two wrapping u32 microsecond values, as a signed difference in (-2^31, 2^31).
fn wrapping_diff(a: u32, b: u32) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

fn duration_us(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Base and current delay history. Fixed size; wrap-aware comparisons.
#[derive(Debug, Clone, Copy, PartialEq)]
struct DelayHistory {
    /// One-minute minima (ring); `None` = no sample in that minute.
    base: [Option<u32>; MAX_BASE_HISTORY_MINUTES],
    /// Number of buckets in use, 1..=MAX_BASE_HISTORY_MINUTES.
    len: usize,
    /// The current bucket.
    idx: usize,
    /// When the current bucket started.
    bucket_start: Option<Instant>,
    /// The last CURRENT_FILTER accepted samples (ring).
    current: [Option<u32>; CURRENT_FILTER],
    cur_idx: usize,
    /// Consecutive out-of-range samples and when the first of them arrived.
    rejected: u32,
    rejected_since: Option<Instant>,
}

impl DelayHistory {
    fn new(base_history_minutes: usize) -> Self {
        Self {
            base: [None; MAX_BASE_HISTORY_MINUTES],
            len: base_history_minutes.clamp(1, MAX_BASE_HISTORY_MINUTES),
            idx: 0,
            bucket_start: None,
            current: [None; CURRENT_FILTER],
            cur_idx: 0,
            rejected: 0,
            rejected_since: None,
        }
    }

    fn reset(&mut self) {
        *self = Self::new(self.len);
    }

    /// The minimum over the base history, comparing with wrapping arithmetic.
    fn base_delay(&self) -> Option<u32> {
        self.base[..self.len]
            .iter()
            .flatten()
            .copied()
            .reduce(|m, x| if wrapping_diff(x, m) < 0 { x } else { m })
    }

    /// Queuing delay in microseconds: FILTER(current) - MIN(base), in 0..=MAX_DELAY_SAMPLE_US.
    fn queuing_delay_us(&self) -> Option<i64> {
        let base = self.base_delay()?;
        self.current
            .iter()
            .flatten()
            .map(|&s| wrapping_diff(s, base).clamp(0, MAX_DELAY_SAMPLE_US))
            .min()
    }

    /// Moves to the bucket for `now`, emptying the buckets of the minutes that passed.
    fn roll(&mut self, now: Instant) {
        let Some(start) = self.bucket_start else {
            self.bucket_start = Some(now);
            return;
        };
        let elapsed = now.saturating_duration_since(start);
        if elapsed < BASE_BUCKET {
            return;
        }
        let minutes = elapsed.as_secs() / BASE_BUCKET.as_secs();
        let rolls = usize::try_from(minutes).unwrap_or(usize::MAX).min(self.len);
        for _ in 0..rolls {
            self.idx = (self.idx + 1) % self.len;
            self.base[self.idx] = None;
        }
        self.bucket_start = Some(
            start
                .checked_add(Duration::from_secs(
                    minutes.saturating_mul(BASE_BUCKET.as_secs()),
                ))
                .filter(|s| *s <= now)
                .unwrap_or(now),
        );
    }

    /// Records a sample. Returns false if it was ignored as out of range.
    fn add_sample(&mut self, now: Instant, sample: u32) -> bool {
        if let Some(base) = self.base_delay() {
            if wrapping_diff(sample, base).abs() > MAX_DELAY_SAMPLE_US {
                let since = *self.rejected_since.get_or_insert(now);
                self.rejected = self.rejected.saturating_add(1);
                if self.rejected >= RESET_AFTER_SAMPLES
                    && now.saturating_duration_since(since) >= RESET_AFTER
                {
                    tracing::debug!(
                        rejected = self.rejected,
                        "LEDBAT: delay samples out of range for too long, restarting the delay history"
                    );
                    self.reset();
                } else {
                    return false;
                }
            }
        }
        self.rejected = 0;
        self.rejected_since = None;

        self.roll(now);
        let slot = &mut self.base[self.idx];
        *slot = Some(match *slot {
            Some(m) if wrapping_diff(m, sample) <= 0 => m,
            _ => sample,
        });
        self.current[self.cur_idx] = Some(sample);
        self.cur_idx = (self.cur_idx + 1) % CURRENT_FILTER;
        true
    }
}

#[derive(Clone, Copy, PartialEq)]
pub struct Ledbat {
    /// Congestion window in bytes, finite, in [MIN_CWND * mss, MAX_CWND_BYTES], except just
    /// after a retransmission timeout: 1 MSS (`window()` still says MIN_CWND).
    cwnd: f64,
    /// Slow start threshold in bytes (+inf until the first loss or delay exit).
    ssthresh: f64,
    mss: usize,
    /// The peer's advertised window: growth stops there.
    rwnd: usize,
    /// Bytes in flight after the last transmission (RFC 6817's flightsize).
    flight_size: usize,
    /// Bytes ACKed since then (several ACKs are processed before the next transmission).
    acked_since_send: usize,
    target_us: i64,
    hist: DelayHistory,
    /// RTT measured on the packet whose delay sample came last (for the clamp in on_ack).
    pending_rtt_us: Option<i64>,
}

impl core::fmt::Debug for Ledbat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ledbat:cwnd={},ssthresh={},qdelay_us={:?},base={:?},mss={},flight={}",
            self.window(),
            self.sshthresh(),
            self.hist.queuing_delay_us(),
            self.hist.base_delay(),
            self.mss,
            self.flight_size,
        )
    }
}

impl Ledbat {
    pub fn new(_now: Instant, mss: usize, opts: LedbatOpts) -> Self {
        let mss = mss.clamp(1, MAX_MSS);
        Self {
            cwnd: INIT_CWND_MSS * mss as f64,
            ssthresh: f64::INFINITY,
            mss,
            rwnd: 0,
            flight_size: 0,
            acked_since_send: 0,
            target_us: duration_us(opts.target_delay).clamp(MIN_TARGET_US, MAX_TARGET_US),
            hist: DelayHistory::new(opts.base_history_minutes),
            pending_rtt_us: None,
        }
    }

    fn min_cwnd(&self) -> f64 {
        MIN_CWND_MSS * self.mss as f64
    }

    fn clamp_cwnd(&self, cwnd: f64) -> f64 {
        if cwnd.is_nan() {
            return self.min_cwnd();
        }
        cwnd.clamp(self.min_cwnd(), MAX_CWND_BYTES)
    }

    /// The congestion window alone (not limited by the peer's window), >= MIN_CWND.
    fn congestion_window(&self) -> usize {
        self.clamp_cwnd(self.cwnd) as usize
    }

    #[cfg(test)]
    pub(crate) fn queuing_delay_us(&self) -> Option<i64> {
        self.hist.queuing_delay_us()
    }

    #[cfg(test)]
    pub(crate) fn in_slow_start(&self) -> bool {
        self.cwnd < self.ssthresh
    }
}

impl CongestionController for Ledbat {
    fn window(&self) -> usize {
        self.congestion_window().min(self.rwnd)
    }

    fn sshthresh(&self) -> usize {
        if self.ssthresh.is_finite() {
            self.ssthresh.max(self.min_cwnd()) as usize
        } else {
            usize::MAX
        }
    }

    fn set_mss(&mut self, mss: usize) {
        // The window is kept in bytes: nothing to rescale, only the floor moves.
        self.mss = mss.clamp(1, MAX_MSS);
        self.cwnd = self.cwnd.clamp(self.mss as f64, MAX_CWND_BYTES);
    }

    fn smss(&self) -> usize {
        self.mss
    }

    fn on_recovered(&mut self, new_cwnd_bytes: usize, new_sshthresh: usize) {
        self.cwnd = self.clamp_cwnd(new_cwnd_bytes as f64);
        self.ssthresh = (new_sshthresh as f64).clamp(self.min_cwnd(), MAX_CWND_BYTES);
    }

    fn on_delay_sample(
        &mut self,
        now: Instant,
        timestamp_difference_us: u32,
        rtt: Option<Duration>,
    ) {
        self.pending_rtt_us = rtt.map(duration_us);
        // 0 means "no measurement" (the peer has not received anything from us yet): libutp's
        // convention. A real difference of exactly 0 is lost once in 2^32: harmless.
        if timestamp_difference_us != 0 {
            self.hist.add_sample(now, timestamp_difference_us);
        }
    }

    fn set_flight_size(&mut self, flight_size: usize) {
        self.flight_size = flight_size;
        self.acked_since_send = 0;
    }

    fn on_ack(&mut self, _now: Instant, len: usize, rtte: &RttEstimator) {
        let rtt_us = self
            .pending_rtt_us
            .take()
            .unwrap_or_else(|| duration_us(rtte.roundtrip_time()));
        if len == 0 {
            return;
        }
        let mss = self.mss as f64;
        // 1 MSS after a retransmission timeout, else at least MIN_CWND.
        let old = self.cwnd.clamp(mss, MAX_CWND_BYTES);

        // No delay sample yet (or a peer that sends none): treat the queue as empty, so the
        // window grows as TCP Reno's would and only loss limits it.
        let qdelay = self
            .hist
            .queuing_delay_us()
            .map(|d| d.min(rtt_us.max(0)))
            .unwrap_or(0);
        // In [(TARGET - 10 s) / TARGET, 1].
        let off_target = (self.target_us - qdelay) as f64 / self.target_us as f64;
        // An ACK counts for at most one window (RFC 6817's bytes_newly_acked; libutp caps too).
        let acked = (len as f64).min(old);
        self.acked_since_send = self.acked_since_send.saturating_add(len);

        let slow_start = old < self.ssthresh;
        let (mut new, allowed_increase) =
            if slow_start && qdelay < self.target_us / SLOW_START_EXIT_FRACTION {
                // Slow start may double what was in flight: +1 byte per byte ACKed since the
                // last transmission.
                let acked_since_send = (self.acked_since_send as f64).min(MAX_CWND_BYTES);
                (
                    old + acked,
                    acked_since_send.max(ALLOWED_INCREASE_MSS * mss),
                )
            } else {
                if slow_start {
                    // The queue is building: congestion avoidance from here on.
                    self.ssthresh = old;
                }
                (
                    old + GAIN * off_target * acked * mss / old,
                    ALLOWED_INCREASE_MSS * mss,
                )
            };

        if new > old {
            // Grow only when the window is what limits sending (RFC 6817: max_allowed_cwnd =
            // flightsize + ALLOWED_INCREASE * MSS), and not past what the peer can take. These
            // caps stop growth; they do not shrink the window of an application-limited sender.
            let cap = (self.flight_size as f64 + allowed_increase)
                .min((self.rwnd as f64).max(self.min_cwnd()));
            new = new.min(cap.max(old));
        }
        self.cwnd = self.clamp_cwnd(new);
    }

    fn on_retransmission_timeout(&mut self, _now: Instant) {
        // RFC 6817: "cwnd = 1 * MSS" (window() still gives MIN_CWND).
        self.ssthresh = (self.cwnd / 2.).clamp(self.min_cwnd(), MAX_CWND_BYTES);
        self.cwnd = self.mss as f64;
    }

    fn on_enter_recovery(&mut self, _now: Instant) {
        // RFC 6817: cwnd = min(cwnd, max(cwnd/2, MIN_CWND * MSS)), at most once per RTT (the
        // recovery module calls this once per recovery episode).
        self.ssthresh = (self.cwnd / 2.).clamp(self.min_cwnd(), MAX_CWND_BYTES);
        self.cwnd = self.clamp_cwnd(self.ssthresh);
    }

    fn set_remote_window(&mut self, win: usize) {
        self.rwnd = win;
    }
}

#[cfg(test)]
mod tests;
