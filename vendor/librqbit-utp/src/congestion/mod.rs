// Modified by ClearSkies (December 2026) from librqbit-utp 0.7.0; see README.md, CHANGES.

pub mod cubic;
pub mod ledbat;
pub mod tracing;

use std::time::{Duration, Instant};

use crate::rtte::RttEstimator;

#[allow(unused_variables)]
pub trait CongestionController: Send + Sync + core::fmt::Debug {
    /// Returns the number of bytes that can be sent.
    fn window(&self) -> usize;

    fn sshthresh(&self) -> usize;

    fn set_mss(&mut self, mss: usize);

    fn smss(&self) -> usize;

    fn on_recovered(&mut self, new_cwnd_bytes: usize, new_sshthresh: usize);

    /// Increase the window on ACK
    fn on_ack(&mut self, now: Instant, len: usize, rtt: &RttEstimator);

    // NOT fast retransmit
    // flight_size per rfc5681
    fn on_retransmission_timeout(&mut self, now: Instant);

    fn on_enter_recovery(&mut self, now: Instant);

    fn set_remote_window(&mut self, win: usize);

    // ClearSkies additions (for LEDBAT; CUBIC ignores them).

    /// Called for every packet received on the connection, before `on_ack` for the same packet,
    /// with its `timestamp_difference_microseconds` (BEP 29: the peer's clock when it received
    /// our last packet minus that packet's timestamp; 0 = none) and the RTT measured from the
    /// segments it acknowledged, if any. Peer-controlled: must accept any value.
    fn on_delay_sample(
        &mut self,
        now: Instant,
        timestamp_difference_us: u32,
        rtt: Option<Duration>,
    ) {
    }

    /// Bytes in flight after the last transmission, i.e. before the ACKs about to be processed
    /// (RFC 6817's flightsize, which limits window growth).
    fn set_flight_size(&mut self, flight_size: usize) {}
}
