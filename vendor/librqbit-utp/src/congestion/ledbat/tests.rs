// ClearSkies: LEDBAT's tests (new file; see the crate's README).
use std::time::{Duration, Instant};

use super::*;

const MSS: usize = 1400;
const MS: u32 = 1000; // microseconds

fn rtte(rtt: Duration) -> RttEstimator {
    let mut r = RttEstimator::default();
    r.sample(rtt);
    r
}

fn ledbat(now: Instant) -> Ledbat {
    let mut l = Ledbat::new(now, MSS, LedbatOpts::default());
    l.set_remote_window(16 * 1024 * 1024);
    l
}

/// One ACK of `len` bytes carrying `sample`, with the window fully used.
fn ack(l: &mut Ledbat, now: Instant, sample: u32, len: usize, rtt: Duration) {
    l.set_flight_size(l.window());
    l.on_delay_sample(now, sample, Some(rtt));
    l.on_ack(now, len, &rtte(rtt));
}

/// Out of slow start with this window, as after a loss.
fn past_slow_start(l: &mut Ledbat, cwnd_mss: usize) {
    l.on_recovered(cwnd_mss * MSS, cwnd_mss * MSS);
    assert!(!l.in_slow_start());
    assert_eq!(l.window(), cwnd_mss * MSS);
}

#[test]
fn test_initial_window_two_packets() {
    let l = ledbat(Instant::now());
    assert_eq!(l.window(), 2 * MSS);
    assert_eq!(l.sshthresh(), usize::MAX);
}

#[test]
fn test_delay_below_target_grows() {
    let now = Instant::now();
    let rtt = Duration::from_millis(60);
    let base = 1_000_000u32;
    let mut l = ledbat(now);
    past_slow_start(&mut l, 20);
    // 10 ms of queuing delay, well below the 100 ms target: +0.9 MSS per window acked.
    ack(&mut l, now, base, MSS, rtt);
    let before = l.window();
    for i in 1..=100u32 {
        ack(&mut l, now, base + 10 * MS + i, MSS, rtt);
    }
    assert_eq!(l.queuing_delay_us(), Some(10_097)); // min of the last 4
    let after = l.window();
    assert!(after > before, "{after} <= {before}");
    // RFC 6817: at most GAIN * MSS per window's worth of ACKs. 100 packets acked with a
    // window of ~20-25 packets: about 4 windows, so about +4 MSS (0.9 each).
    let grown = (after - before) as f64 / MSS as f64;
    assert!((3.0..5.0).contains(&grown), "grew by {grown} MSS");
}

#[test]
fn test_delay_above_target_shrinks_to_two_packets() {
    let now = Instant::now();
    let rtt = Duration::from_millis(400);
    let base = 5_000u32;
    let mut l = ledbat(now);
    past_slow_start(&mut l, 50);
    ack(&mut l, now, base, MSS, rtt);
    let before = l.window();
    // 300 ms of queuing delay: off_target = -2, -2 MSS per window acked.
    for _ in 0..50 {
        ack(&mut l, now, base + 300 * MS, MSS, rtt);
    }
    assert_eq!(l.queuing_delay_us(), Some(300_000));
    let after = l.window();
    assert!(after < before, "{after} >= {before}");
    let shrunk = (before - after) as f64 / MSS as f64;
    assert!((1.5..2.6).contains(&shrunk), "shrank by {shrunk} MSS");
    for _ in 0..10_000 {
        ack(&mut l, now, base + 300 * MS, MSS, rtt);
    }
    assert_eq!(l.window(), 2 * MSS, "never below two packets");
}

#[test]
fn test_delay_at_target_is_stable() {
    let now = Instant::now();
    let rtt = Duration::from_millis(200);
    let mut l = ledbat(now);
    past_slow_start(&mut l, 30);
    ack(&mut l, now, 7_000, MSS, rtt);
    for _ in 0..CURRENT_FILTER {
        ack(&mut l, now, 7_000 + 100 * MS, MSS, rtt);
    }
    let before = l.window();
    for _ in 0..1000 {
        ack(&mut l, now, 7_000 + 100 * MS, MSS, rtt);
    }
    assert_eq!(l.window(), before);
}

#[test]
fn test_queuing_delay_clamped_to_rtt() {
    // A peer claiming 5 s of queuing on a 50 ms path: the delay used is at most the RTT.
    let now = Instant::now();
    let rtt = Duration::from_millis(50);
    let mut l = ledbat(now);
    past_slow_start(&mut l, 40);
    ack(&mut l, now, 1_000, MSS, rtt);
    for _ in 1..CURRENT_FILTER {
        ack(&mut l, now, 1_000 + 5_000 * MS, MSS, rtt);
    }
    let before = l.window();
    ack(&mut l, now, 1_000 + 5_000 * MS, MSS, rtt);
    // Every current sample is now 5 s (off_target would be -49); 50 ms is used instead:
    // off_target = +0.5, still growing.
    assert_eq!(l.queuing_delay_us(), Some(5_000_000));
    assert!(l.window() > before, "{} <= {before}", l.window());
}

#[test]
fn test_slow_start_doubles_then_exits_on_delay() {
    let now = Instant::now();
    let rtt = Duration::from_millis(50);
    let mut l = ledbat(now);
    ack(&mut l, now, 100, MSS, rtt);
    // Two packets acked, one each: slow start adds what is acked.
    ack(&mut l, now, 100, MSS, rtt);
    assert_eq!(l.window(), 4 * MSS);
    assert!(l.in_slow_start());
    // 60 ms of queuing (> TARGET/2): slow start ends, ssthresh = cwnd.
    for _ in 0..CURRENT_FILTER {
        ack(&mut l, now, 100 + 60 * MS, MSS, rtt);
    }
    assert!(!l.in_slow_start());
}

#[test]
fn test_app_limited_does_not_grow_nor_shrink() {
    let now = Instant::now();
    let rtt = Duration::from_millis(50);
    let mut l = ledbat(now);
    past_slow_start(&mut l, 30);
    for _ in 0..1000 {
        l.set_flight_size(3 * MSS); // the application sends little
        l.on_delay_sample(now, 100, Some(rtt));
        l.on_ack(now, MSS, &rtte(rtt));
    }
    assert_eq!(l.window(), 30 * MSS);
    // Nor past the peer's window.
    l.set_remote_window(31 * MSS);
    for _ in 0..1000 {
        ack(&mut l, now, 100, MSS, rtt);
    }
    assert_eq!(l.window(), 31 * MSS);
}

#[test]
fn test_loss_halves_and_timeout_goes_to_two_packets() {
    let now = Instant::now();
    let mut l = ledbat(now);
    past_slow_start(&mut l, 40);
    l.on_enter_recovery(now);
    assert_eq!(l.window(), 20 * MSS);
    assert_eq!(l.sshthresh(), 20 * MSS);
    l.on_retransmission_timeout(now);
    assert_eq!(l.cwnd, MSS as f64, "RFC 6817: 1 MSS after a timeout");
    assert_eq!(
        l.window(),
        2 * MSS,
        "but the window never goes below 2 packets"
    );
    assert_eq!(l.sshthresh(), 10 * MSS);
    // The next ACK: slow start from 1 MSS, floored at 2.
    ack(&mut l, now, 100, 10, Duration::from_millis(50));
    assert_eq!(l.window(), 2 * MSS);
    ack(&mut l, now, 100, 2 * MSS, Duration::from_millis(50));
    assert_eq!(l.window(), 4 * MSS);
    for _ in 0..10 {
        l.on_enter_recovery(now);
        l.on_retransmission_timeout(now);
    }
    assert_eq!(l.window(), 2 * MSS);
    assert_eq!(l.sshthresh(), 2 * MSS);
}

#[test]
fn test_base_delay_history_rollover() {
    for minutes in [10usize, 2] {
        let t0 = Instant::now();
        let mut h = DelayHistory::new(minutes);
        let base = 3_000_000u32;
        // A low sample at t0, then 50 ms more every 30 s.
        assert!(h.add_sample(t0, base));
        let mut t = t0;
        let mut expired_at = None;
        for step in 1..=(2 * 2 * minutes as u32 + 4) {
            t = t0 + Duration::from_secs(30) * step;
            assert!(h.add_sample(t, base + 50 * MS));
            if h.base_delay() != Some(base) && expired_at.is_none() {
                expired_at = Some(t - t0);
            }
        }
        // The low sample is the base for `minutes` minutes (its bucket is the oldest one
        // after minutes-1 rollovers), then it is forgotten.
        let expired_at = expired_at.expect("base never rolled over");
        assert_eq!(
            expired_at,
            Duration::from_secs(60 * minutes as u64),
            "history of {minutes} min"
        );
        assert_eq!(h.base_delay(), Some(base + 50 * MS));
        assert_eq!(h.queuing_delay_us(), Some(0));
        let _ = t;
    }
}

#[test]
fn test_base_delay_after_long_idle() {
    // No samples for an hour: the whole history is stale and is replaced, in one step.
    let t0 = Instant::now();
    let mut h = DelayHistory::new(10);
    h.add_sample(t0, 1_000);
    h.add_sample(t0 + Duration::from_secs(3600), 9_000);
    assert_eq!(h.base_delay(), Some(9_000));
    // Time going backwards (should not happen with Instant) is harmless.
    h.add_sample(t0, 9_500);
    assert_eq!(h.base_delay(), Some(9_000));
}

#[test]
fn test_clock_wrap() {
    let now = Instant::now();
    // The sample crosses 2^32 upwards: base 0xFFFF_FF00, sample 0x400 is 0x500 us later.
    let mut h = DelayHistory::new(10);
    h.add_sample(now, 0xFFFF_FF00);
    assert!(h.add_sample(now, 0x0000_0400));
    assert_eq!(h.base_delay(), Some(0xFFFF_FF00));
    assert_eq!(h.queuing_delay_us(), Some(0)); // FILTER = min of current samples

    let mut h = DelayHistory::new(10);
    h.add_sample(now, 0xFFFF_FF00);
    for _ in 0..CURRENT_FILTER {
        h.add_sample(now, 0x0000_0400);
    }
    assert_eq!(h.queuing_delay_us(), Some(0x500));

    // Downwards: base 0x400, then 0xFFFF_FF00 (0x500 us *earlier*) is the new minimum.
    let mut h = DelayHistory::new(10);
    h.add_sample(now, 0x0000_0400);
    assert!(h.add_sample(now, 0xFFFF_FF00));
    assert_eq!(h.base_delay(), Some(0xFFFF_FF00));
    assert_eq!(h.queuing_delay_us(), Some(0));

    // The same through the controller, with the sender's window moving the right way.
    let mut l = ledbat(now);
    past_slow_start(&mut l, 20);
    ack(&mut l, now, u32::MAX - 10, MSS, Duration::from_millis(500));
    for _ in 0..50 {
        ack(&mut l, now, 200 * MS, MSS, Duration::from_millis(500));
    }
    assert_eq!(l.queuing_delay_us(), Some(200_011));
    assert!(l.window() < 20 * MSS);
}

#[test]
fn test_out_of_range_samples_ignored_then_history_restarts() {
    let t0 = Instant::now();
    let mut h = DelayHistory::new(10);
    h.add_sample(t0, 50_000);
    for bad in [
        50_000 + 10_000_001u32,
        50_000u32.wrapping_sub(10_000_001),
        50_000u32.wrapping_add(i32::MAX as u32),
        50_000u32.wrapping_add(1 << 31),
        u32::MAX / 2,
    ] {
        assert!(!h.add_sample(t0, bad), "{bad} accepted");
    }
    assert_eq!(h.base_delay(), Some(50_000));
    assert_eq!(h.queuing_delay_us(), Some(0));
    // Exactly 10 s away is still in range.
    assert!(h.add_sample(t0, 50_000 + 10_000_000));

    // The peer's clock jumps by an hour: samples are ignored for a while, then adopted.
    let jump = 50_000u32.wrapping_add(3_600_000_000);
    let mut t = t0;
    let mut accepted_after = None;
    for i in 0..100u32 {
        t = t0 + Duration::from_millis(50) * i;
        if h.add_sample(t, jump + i) {
            accepted_after = Some((i, t - t0));
            break;
        }
    }
    let (n, after) = accepted_after.expect("history never restarted");
    assert!(
        n >= RESET_AFTER_SAMPLES && after >= RESET_AFTER,
        "{n} {after:?}"
    );
    assert_eq!(h.base_delay(), Some(jump + n));
    let _ = t;
}

/// Deterministic xorshift, to throw arbitrary values at the controller.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick(&mut self, choices: &[u64]) -> u64 {
        if self.next() % 4 == 0 {
            choices[(self.next() % choices.len() as u64) as usize]
        } else {
            self.next()
        }
    }
}

#[test]
fn test_hostile_values_never_panic_nor_escape_bounds() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let t0 = Instant::now();
    let edges = [
        0,
        1,
        u64::from(u32::MAX),
        u64::MAX,
        u64::from(i32::MAX as u32) + 1,
    ];
    for opts in [
        LedbatOpts::default(),
        LedbatOpts {
            target_delay: Duration::ZERO,
            base_history_minutes: 0,
        },
        LedbatOpts {
            target_delay: Duration::MAX,
            base_history_minutes: usize::MAX,
        },
    ] {
        let mut l = Ledbat::new(t0, MSS, opts);
        let mut now = t0;
        for _ in 0..200_000 {
            now += Duration::from_micros(rng.next() % 2_000_000);
            let mss = match rng.next() % 50 {
                0 => 0,
                1 => usize::MAX,
                2 => 65535,
                _ => MSS,
            };
            let sample = rng.pick(&edges) as u32;
            let rtt = match rng.next() % 4 {
                0 => None,
                1 => Some(Duration::MAX),
                2 => Some(Duration::ZERO),
                _ => Some(Duration::from_micros(rng.next() % 10_000_000)),
            };
            let len = rng.pick(&edges) as usize;
            match rng.next() % 100 {
                0 => l.on_enter_recovery(now),
                1 => l.on_retransmission_timeout(now),
                2 => l.on_recovered(rng.pick(&edges) as usize, rng.pick(&edges) as usize),
                3 => l.set_mss(mss),
                4 => {
                    // A clock that jumps back (cannot happen with Instant, must not matter).
                    l.on_delay_sample(t0, sample, rtt);
                }
                _ => {}
            }
            l.set_remote_window(rng.pick(&edges) as usize);
            l.set_flight_size(rng.pick(&edges) as usize);
            l.on_delay_sample(now, sample, rtt);
            l.on_ack(now, len, &RttEstimator::default());
            let cw = l.congestion_window();
            assert!(l.cwnd.is_finite() && !l.ssthresh.is_nan());
            assert!(l.smss() >= 1 && l.smss() <= MAX_MSS, "{l:?}");
            assert!(cw >= 2 * l.smss() && cw as f64 <= MAX_CWND_BYTES, "{l:?}");
            assert!(l.cwnd >= l.smss() as f64, "{l:?}");
            assert_eq!(l.window(), cw.min(l.rwnd));
            if let Some(d) = l.queuing_delay_us() {
                assert!((0..=MAX_DELAY_SAMPLE_US).contains(&d));
            }
        }
    }
}
