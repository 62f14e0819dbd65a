// ClearSkies addition to librqbit-utp 0.7.0 (Apache-2.0, as the crate); see README.md.

//! ClearSkies: LEDBAT wired into the connection (see README, CHANGES).

use std::time::Duration;

use futures::FutureExt;
use tokio::io::AsyncWriteExt;

use crate::{
    CongestionConfig, CongestionControllerKind, SocketOpts,
    raw::{Type::*, UtpHeader},
    stream_dispatch::tests::{TestVsock, make_test_vsock},
    test_util::setup_test_logging,
    traits::UtpEnvironment,
};

/// BEP 29: timestamp_difference_microseconds is taken "at the time the last packet was
/// received", not when the (possibly delayed) ACK leaves.
#[tokio::test]
async fn test_timestamp_difference_measured_at_receipt() {
    setup_test_logging();
    let mut t = make_test_vsock(Default::default(), false);
    t.poll_once_assert_pending().await;
    t.assert_sent_empty();

    let their_ts = 123_456u32;
    let received_at = (t.env.now() - t._socket.created).as_micros() as u32;
    t.send_msg(
        UtpHeader {
            htype: ST_DATA,
            seq_nr: 1.into(),
            ack_nr: t.vsock.seq_nr,
            timestamp_microseconds: their_ts,
            ..Default::default()
        },
        "hello",
    );
    t.poll_once_assert_pending().await;
    t.assert_sent_empty(); // the ACK is delayed

    t.env.increment_now(Duration::from_secs(1));
    t.poll_once_assert_pending().await;
    let sent = t.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].header.htype, ST_STATE);
    assert_eq!(
        sent[0].header.timestamp_difference_microseconds,
        received_at.wrapping_sub(their_ts),
        "measured when the packet came, not 1 s later when the ACK left"
    );
}

/// Keeps the send buffer topped up without blocking.
fn top_up(t: &mut TestVsock) {
    let chunk = vec![0u8; 16 * 1024];
    let s = t.stream.as_mut().unwrap();
    while let Some(Ok(n)) = s.write(&chunk).now_or_never() {
        if n == 0 {
            break;
        }
    }
}

/// One round trip: whatever the connection sends is ACKed 400 ms later, every ACK reporting
/// the one-way delay `delay_us` (the peer's clock minus ours, so any base offset).
async fn round(t: &mut TestVsock, delay_us: u32) {
    top_up(t);
    t.poll_once_assert_pending().await;
    let sent = t.take_sent();
    t.env.increment_now(Duration::from_millis(400));
    for m in sent.iter().filter(|m| m.header.htype == ST_DATA) {
        t.send_msg(
            UtpHeader {
                htype: ST_STATE,
                seq_nr: 1.into(),
                ack_nr: m.header.seq_nr,
                wnd_size: 1024 * 1024,
                timestamp_difference_microseconds: delay_us,
                ..Default::default()
            },
            "",
        );
    }
    t.poll_once_assert_pending().await;
}

/// Window after 16 rounds with no queuing delay (the first ~11 are limited by MTU probing,
/// which pauses segmentation behind each probe), then after 10 rounds with 350 ms.
async fn grow_then_delay(kind: CongestionControllerKind) -> (usize, usize) {
    let mut t = make_test_vsock(
        SocketOpts {
            remote_inactivity_timeout: Some(Duration::from_secs(3600)),
            vsock_tx_bufsize_bytes_initial: Some(non_zero_const!(1024 * 1024)),
            congestion: CongestionConfig {
                kind,
                ..Default::default()
            },
            ..Default::default()
        },
        false,
    );
    let base = 3_000_000u32; // clock offset between the two ends
    for _ in 0..16 {
        round(&mut t, base).await;
    }
    let peak = t.vsock.congestion_controller.window();
    for _ in 0..10 {
        round(&mut t, base + 350_000).await;
    }
    (peak, t.vsock.congestion_controller.window())
}

#[tokio::test]
async fn test_ledbat_backs_off_on_queuing_delay_cubic_does_not() {
    setup_test_logging();
    let (peak, after) = grow_then_delay(CongestionControllerKind::Ledbat).await;
    // Slow start with no delay: from 2 packets to many.
    assert!(peak >= 20 * 1400, "LEDBAT did not grow: {peak}");
    // 350 ms of queuing = 3.5x the target: -2.5 packets per round trip, ~25 in 10.
    assert!(
        after + 15 * 1400 < peak,
        "LEDBAT did not back off: peak={peak} after={after}"
    );

    let (peak, after) = grow_then_delay(CongestionControllerKind::Cubic).await;
    assert!(
        after >= peak,
        "CUBIC ignores delay: peak={peak} after={after}"
    );
}

#[tokio::test]
async fn test_ledbat_is_the_default() {
    assert_eq!(
        CongestionConfig::default().kind,
        CongestionControllerKind::Ledbat
    );
}
