// ClearSkies addition to librqbit-utp 0.7.0 (Apache-2.0, as the crate); see README.md.

//! ClearSkies: tests of SYN retransmission in `connect` (see README, CHANGES). Sockets talk
//! through the mock interface, which can lose datagrams; time is tokio's paused clock (the
//! environment follows it), so the 700 ms intervals take no real time.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    Error, SocketOpts,
    raw::Type,
    socket::{DEFAULT_MAX_SYN_RETRANSMISSIONS, DEFAULT_SYN_RETRANSMIT_INTERVAL},
    test_util::{ADDR_1, ADDR_2, transport::MockInterface},
    traits::UtpEnvironment,
};

/// Time from tokio's (paused, auto-advancing) clock.
#[derive(Clone, Copy)]
pub(crate) struct TokioClock;

impl UtpEnvironment for TokioClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
    fn copy(&self) -> Self {
        *self
    }
    fn random_u16(&self) -> u16 {
        rand::random()
    }
}

pub(crate) fn is_type(datagram: &[u8], t: Type) -> bool {
    datagram.first().is_some_and(|b| b >> 4 == t as u8)
}

/// Counts the SYNs `from` sends, losing the first `lose` of them and, if `lose_all_from`,
/// every datagram `from` sends.
fn lossy(
    iface: &MockInterface,
    from: SocketAddr,
    lose: usize,
    lose_all_from: bool,
) -> Arc<AtomicUsize> {
    let syns = Arc::new(AtomicUsize::new(0));
    let counter = syns.clone();
    iface.set_drop_filter(move |src, _to, d| {
        if src != from {
            return false;
        }
        if is_type(d, Type::ST_SYN) {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            if n < lose {
                return true;
            }
        }
        lose_all_from
    });
    syns
}

async fn echo_server(
    server: Arc<crate::UtpSocket<crate::test_util::transport::MockUtpTransport, TokioClock>>,
) {
    while let Ok(mut s) = server.accept().await {
        tokio::spawn(async move {
            let mut b = [0u8; 4];
            if s.read_exact(&mut b).await.is_ok() {
                let _ = s.write_all(&b).await;
            }
            // Keep it open long enough for the client to read.
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
    }
}

#[tokio::test(start_paused = true)]
async fn test_connect_completes_when_first_syn_lost() {
    let iface = MockInterface::new();
    let syns = lossy(&iface, ADDR_1, 1, false);
    let client = iface.create_socket_with_env(ADDR_1, TokioClock, SocketOpts::default());
    let server = iface.create_socket_with_env(ADDR_2, TokioClock, SocketOpts::default());
    tokio::spawn(echo_server(server));

    let t0 = tokio::time::Instant::now();
    let mut s = tokio::time::timeout(Duration::from_secs(5), client.connect(ADDR_2))
        .await
        .expect("connect did not complete")
        .expect("connect failed");
    let took = t0.elapsed();
    // The second SYN, one interval after the first, got through.
    assert!(
        took >= DEFAULT_SYN_RETRANSMIT_INTERVAL
            && took < DEFAULT_SYN_RETRANSMIT_INTERVAL + Duration::from_millis(50),
        "{took:?}"
    );
    assert_eq!(syns.load(Ordering::SeqCst), 2);

    // The connection works (and had no RTT sample from the handshake: Karn).
    s.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&b, b"ping");

    // No further SYNs once connected.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(syns.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn test_connect_several_syns_lost() {
    let iface = MockInterface::new();
    let syns = lossy(&iface, ADDR_1, 4, false);
    let client = iface.create_socket_with_env(ADDR_1, TokioClock, SocketOpts::default());
    let server = iface.create_socket_with_env(ADDR_2, TokioClock, SocketOpts::default());
    tokio::spawn(echo_server(server));
    let t0 = tokio::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), client.connect(ADDR_2))
        .await
        .unwrap()
        .unwrap();
    assert!(t0.elapsed() >= DEFAULT_SYN_RETRANSMIT_INTERVAL * 4);
    assert_eq!(syns.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn test_syn_resends_are_bounded_and_connect_fails() {
    let iface = MockInterface::new();
    // Nothing from the client ever arrives.
    let syns = lossy(&iface, ADDR_1, usize::MAX, true);
    let opts = SocketOpts {
        syn_retransmit_interval: Some(Duration::from_millis(100)),
        max_syn_retransmissions: Some(3),
        ..Default::default()
    };
    let client = iface.create_socket_with_env(ADDR_1, TokioClock, opts);
    let _server = iface.create_socket_with_env(ADDR_2, TokioClock, SocketOpts::default());

    let t0 = tokio::time::Instant::now();
    let r = client.connect(ADDR_2).await;
    let took = t0.elapsed();
    assert!(
        matches!(r, Err(Error::ConnectTimedOut { syns: 4 })),
        "{:?}",
        r.err()
    );
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(450),
        "{took:?}"
    );
    assert_eq!(syns.load(Ordering::SeqCst), 4, "1 SYN + 3 re-sends");
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(syns.load(Ordering::SeqCst), 4, "nothing after giving up");
}

#[tokio::test(start_paused = true)]
async fn test_syn_resends_default_bound() {
    let iface = MockInterface::new();
    let syns = lossy(&iface, ADDR_1, usize::MAX, true);
    let client = iface.create_socket_with_env(ADDR_1, TokioClock, SocketOpts::default());
    let t0 = tokio::time::Instant::now();
    let r = client.connect(ADDR_2).await;
    let took = t0.elapsed();
    let expected_syns = DEFAULT_MAX_SYN_RETRANSMISSIONS + 1;
    assert!(
        matches!(r, Err(Error::ConnectTimedOut { syns }) if syns == expected_syns),
        "{:?}",
        r.err()
    );
    // 15 SYNs, 700 ms apart, then one more interval: 10.5 s.
    let expected = DEFAULT_SYN_RETRANSMIT_INTERVAL * expected_syns as u32;
    assert!(
        took >= expected && took < expected + Duration::from_millis(50),
        "{took:?}"
    );
    assert_eq!(syns.load(Ordering::SeqCst), expected_syns);
}

#[tokio::test(start_paused = true)]
async fn test_caller_timeout_stops_resends() {
    let iface = MockInterface::new();
    let syns = lossy(&iface, ADDR_1, usize::MAX, true);
    let client = iface.create_socket_with_env(ADDR_1, TokioClock, SocketOpts::default());
    let r = tokio::time::timeout(Duration::from_millis(1500), client.connect(ADDR_2)).await;
    assert!(r.is_err(), "should have timed out");
    // SYNs at 0, 0.7 and 1.4 s; the dropped future removes the attempt.
    assert_eq!(syns.load(Ordering::SeqCst), 3);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(syns.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn test_resent_syns_while_cached_give_one_connection() {
    // The server accepts only 2 s later. Upstream cached the SYN (and its re-sends) in the
    // accept queue, unanswered, until then; the SYN-ACK-cookie handshake (see README, SYN
    // flood) answers at once and queues the established connection instead. The first SYN-ACK
    // is lost, so the client re-sends its SYN (which gets a second SYN-ACK): still exactly
    // one stream comes out, and it works.
    let iface = MockInterface::new();
    let syns = Arc::new(AtomicUsize::new(0));
    let synacks = Arc::new(AtomicUsize::new(0));
    {
        let (syns, synacks) = (syns.clone(), synacks.clone());
        iface.set_drop_filter(move |from, _to, d| {
            if from == ADDR_1 && is_type(d, Type::ST_SYN) {
                syns.fetch_add(1, Ordering::SeqCst);
            }
            from == ADDR_2
                && is_type(d, Type::ST_STATE)
                && synacks.fetch_add(1, Ordering::SeqCst) < 1
        });
    }
    let client = iface.create_socket_with_env(ADDR_1, TokioClock, SocketOpts::default());
    let server = iface.create_socket_with_env(ADDR_2, TokioClock, SocketOpts::default());
    let connect = tokio::spawn({
        let client = client.clone();
        async move { client.connect(ADDR_2).await }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(syns.load(Ordering::SeqCst), 2);
    let mut stream = connect.await.unwrap().unwrap();
    let mut accepted = server.accept().await.unwrap();
    assert_eq!(accepted.remote_addr(), ADDR_1);
    stream.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 4];
    accepted.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"ping");
    let second = tokio::time::timeout(Duration::from_secs(5), server.accept()).await;
    assert!(second.is_err(), "a re-sent SYN made a second connection");
}

#[tokio::test(start_paused = true)]
async fn test_resent_syn_for_existing_connection_is_not_queued() {
    // The server's first SYN-ACK is lost, so the client re-sends its SYN at 700 ms; nobody is
    // accepting. That SYN must not come out later as a second connection, after the first one
    // is gone. (Upstream's server created the connection on the first SYN and re-sent its
    // SYN-ACK every 200 ms; this test lost four of them. The server now creates the connection
    // only on the client's ACK and never re-sends SYN-ACKs: the client's re-sent SYN gets one.)
    let iface = MockInterface::new();
    let lost_synacks = Arc::new(AtomicUsize::new(0));
    let syns = Arc::new(AtomicUsize::new(0));
    {
        let (lost_synacks, syns) = (lost_synacks.clone(), syns.clone());
        iface.set_drop_filter(move |from, _to, d| {
            if from == ADDR_1 && is_type(d, Type::ST_SYN) {
                syns.fetch_add(1, Ordering::SeqCst);
            }
            from == ADDR_2
                && is_type(d, Type::ST_STATE)
                && lost_synacks.fetch_add(1, Ordering::SeqCst) < 1
        });
    }
    let client = iface.create_socket_with_env(ADDR_1, TokioClock, SocketOpts::default());
    let server = iface.create_socket_with_env(ADDR_2, TokioClock, SocketOpts::default());
    let accepted = tokio::spawn({
        let server = server.clone();
        async move { server.accept().await }
    });
    tokio::task::yield_now().await;
    let stream = client.connect(ADDR_2).await.unwrap();
    assert_eq!(syns.load(Ordering::SeqCst), 2, "the SYN was re-sent once");
    let accepted = accepted.await.unwrap().unwrap();
    drop(stream);
    drop(accepted);
    // Both ends are gone after the inactivity timeout at the latest.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let again = tokio::time::timeout(Duration::from_secs(5), server.accept()).await;
    assert!(again.is_err(), "a stale re-sent SYN became a connection");
}
