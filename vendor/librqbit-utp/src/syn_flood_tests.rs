// ClearSkies addition to librqbit-utp 0.7.0 (Apache-2.0, as the crate); see README.md.

//! ClearSkies: tests of the defences against SYN floods and forged sources (README, CHANGES,
//! "SYN floods"): SYN cookies (a connection reaches `accept()` only once the remote has
//! acknowledged our SYN-ACK), the per-source and incoming limits, the accept queue's bound and
//! `UtpStream::abort`. Attackers are raw uTP endpoints on the mock interface (they may forge
//! their source address); time is tokio's paused clock.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    num::NonZeroUsize,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use parking_lot::Mutex;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::mpsc::{UnboundedReceiver, unbounded_channel},
    time::timeout,
};

use crate::{
    Error, SocketOpts, UtpSocket, UtpStream,
    message::UtpMessage,
    raw::{Type, UtpHeader},
    socket::source_of,
    syn_retransmit_tests::{TokioClock, is_type},
    test_util::{
        ADDR_1, ADDR_2,
        transport::{MockInterface, MockUtpTransport},
    },
};

type Socket = Arc<UtpSocket<MockUtpTransport, TokioClock>>;

/// The socket under attack.
const SERVER: SocketAddr = ADDR_2;
/// An honest client of SERVER (another source than every attacker).
const LEGIT: SocketAddr = ADDR_1;
/// An honest peer that SERVER dials.
const PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)), 3);

fn v4(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port)
}

fn is_forged(addr: SocketAddr) -> bool {
    matches!(addr.ip(), IpAddr::V4(ip) if ip.octets()[0] == 10)
}

fn opts(max_live: usize) -> SocketOpts {
    SocketOpts {
        disable_nagle: true,
        max_live_vsocks: NonZeroUsize::new(max_live),
        ..Default::default()
    }
}

fn datagram(htype: Type, connection_id: u16, seq_nr: u16, ack_nr: u16, payload: &[u8]) -> Vec<u8> {
    let h = UtpHeader {
        htype,
        connection_id: connection_id.into(),
        wnd_size: 1024 * 1024,
        seq_nr: seq_nr.into(),
        ack_nr: ack_nr.into(),
        ..Default::default()
    };
    let mut buf = vec![0u8; 64];
    let len = h.serialize(&mut buf).unwrap();
    buf.truncate(len);
    buf.extend_from_slice(payload);
    buf
}

fn parse(d: &[u8]) -> UtpHeader {
    UtpMessage::deserialize(d).unwrap().header
}

/// Accepts for ever; sends each stream (with its remote address) on the returned channel.
fn accept_all(server: &Socket) -> UnboundedReceiver<UtpStream> {
    let (tx, rx) = unbounded_channel();
    let server = server.clone();
    tokio::spawn(async move {
        while let Ok(s) = server.accept().await {
            if tx.send(s).is_err() {
                return;
            }
        }
    });
    rx
}

/// A peer that accepts and keeps every connection (and echoes nothing).
fn holding_peer(iface: &Arc<MockInterface>, addr: SocketAddr) -> Socket {
    let peer = iface.create_socket_with_env(addr, TokioClock, SocketOpts::default());
    let mut rx = accept_all(&peer);
    tokio::spawn(async move {
        let mut keep = Vec::new();
        while let Some(s) = rx.recv().await {
            keep.push(s);
        }
    });
    peer
}

/// A uTP client without the library, at `addr` (its datagrams to the server may come from
/// any address through `inject`; the server's answers to `addr` arrive on `rx`).
struct RawClient {
    iface: Arc<MockInterface>,
    addr: SocketAddr,
    rx: UnboundedReceiver<(SocketAddr, Vec<u8>)>,
}

const RAW_SYN_SEQ: u16 = 1000;

impl RawClient {
    fn new(iface: &Arc<MockInterface>, addr: SocketAddr) -> Self {
        Self {
            iface: iface.clone(),
            addr,
            rx: iface.create_raw_endpoint(addr),
        }
    }

    fn send(&self, d: &[u8]) {
        assert!(self.iface.inject(self.addr, SERVER, d));
    }

    fn syn(&self, conn_id: u16) {
        self.send(&datagram(Type::ST_SYN, conn_id, RAW_SYN_SEQ, 0, &[]));
    }

    /// The next packet from the server for connection `conn_id` (our receive id), if any
    /// within 5 s.
    async fn next_for(&mut self, conn_id: u16) -> Option<UtpHeader> {
        loop {
            let (_, d) = timeout(Duration::from_secs(5), self.rx.recv())
                .await
                .ok()??;
            let h = parse(&d);
            if h.connection_id.0 == conn_id {
                return Some(h);
            }
        }
    }

    /// The server's answer to our SYN `conn_id`: the SYN-ACK or ST_RESET.
    async fn answer_to_syn(&mut self, conn_id: u16) -> UtpHeader {
        let h = self.next_for(conn_id).await.expect("no answer to SYN");
        assert!(matches!(h.htype, Type::ST_STATE | Type::ST_RESET), "{h:?}");
        assert_eq!(h.ack_nr.0, RAW_SYN_SEQ);
        h
    }

    /// The handshake ACK to SYN-ACK `synack` (as our own client sends it: an ST_STATE).
    fn ack(&self, conn_id: u16, synack: &UtpHeader) {
        self.send(&datagram(
            Type::ST_STATE,
            conn_id + 1,
            RAW_SYN_SEQ + 1,
            synack.seq_nr.0.wrapping_sub(1),
            &[],
        ));
    }

    /// SYN, SYN-ACK, ACK. Ok(SYN-ACK), or Err(ST_RESET) if the server refused the SYN.
    async fn handshake(&mut self, conn_id: u16) -> Result<UtpHeader, UtpHeader> {
        self.syn(conn_id);
        let h = self.answer_to_syn(conn_id).await;
        if h.htype == Type::ST_RESET {
            return Err(h);
        }
        self.ack(conn_id, &h);
        Ok(h)
    }
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[test]
fn test_source_of() {
    let a = |s: &str| -> SocketAddr { s.parse().unwrap() };
    assert_eq!(source_of(a("1.2.3.4:5")), a("1.2.3.4:6").ip());
    // IPv4-mapped (dual-stack socket): the IPv4 address, not the /64 of all mapped addresses.
    assert_eq!(source_of(a("[::ffff:1.2.3.4]:5")), a("1.2.3.4:5").ip());
    assert_ne!(
        source_of(a("[::ffff:1.2.3.4]:5")),
        source_of(a("[::ffff:1.2.3.5]:5"))
    );
    // IPv6: the /64.
    assert_eq!(
        source_of(a("[2001:db8:1:2:3:4:5:6]:5")),
        IpAddr::V6("2001:db8:1:2::".parse::<Ipv6Addr>().unwrap())
    );
    assert_eq!(
        source_of(a("[2001:db8:1:2::1]:5")),
        source_of(a("[2001:db8:1:2:ffff::]:7"))
    );
    assert_ne!(
        source_of(a("[2001:db8:1:2::1]:5")),
        source_of(a("[2001:db8:1:3::1]:5"))
    );
}

#[test]
fn test_incoming_limit_defaults() {
    let v = |o: SocketOpts| {
        let v = o.validate().unwrap();
        (v.max_incoming_streams, v.max_incoming_per_source)
    };
    // The daemon's 64: 48 incoming at most, 16 kept for connect.
    assert_eq!(v(opts(64)), (48, 8));
    // Upstream's default of 128 live vsocks.
    assert_eq!(v(SocketOpts::default()), (96, 8));
    assert_eq!(v(opts(1)), (1, 8));
    let o = SocketOpts {
        max_incoming_vsocks: NonZeroUsize::new(100),
        max_incoming_per_source: NonZeroUsize::new(2),
        ..opts(64)
    };
    assert_eq!(v(o), (64, 2));
}

/// Forged SYNs (their sources never receive our SYN-ACK, so never acknowledge it) create
/// nothing, never reach `accept()`, and each gets exactly one answer (at most 3 was the aim;
/// the SYN-ACK is the size of the SYN). Meanwhile an honest client connects and the server
/// dials out.
#[tokio::test(start_paused = true)]
async fn test_forged_syns_never_reach_accept() {
    let iface = MockInterface::new();
    let to_forged: Arc<Mutex<HashMap<SocketAddr, Vec<UtpHeader>>>> = Default::default();
    {
        let to_forged = to_forged.clone();
        iface.set_drop_filter(move |_from, to, d| {
            if is_forged(to) {
                to_forged.lock().entry(to).or_default().push(parse(d));
                return true;
            }
            false
        });
    }
    let server = iface.create_socket_with_env(SERVER, TokioClock, opts(64));
    let mut accepted = accept_all(&server);
    let client = iface.create_socket_with_env(LEGIT, TokioClock, SocketOpts::default());
    let _peer = holding_peer(&iface, PEER);

    // 1000 forged sources, each SYN sent 3 times (as a client re-sending it would), 1 s apart.
    const N: u16 = 1000;
    let forged = |i: u16| v4(10, (i / 250) as u8, (i % 250) as u8 + 1, 1, 6881);
    for _round in 0..3 {
        for i in 0..N {
            iface.inject(
                forged(i),
                SERVER,
                &datagram(Type::ST_SYN, i.wrapping_mul(7), 77, 0, &[]),
            );
        }
        settle().await;
        let st = server.stats().await;
        assert_eq!(
            (st.streams, st.incoming, st.ready),
            (0, 0, 0),
            "forged SYNs created something"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // During the flood: an honest client's connection gets through, and so does ours.
    let mut c = timeout(Duration::from_secs(5), client.connect(SERVER))
        .await
        .unwrap()
        .unwrap();
    c.write_all(b"hello").await.unwrap();
    let mut s = timeout(Duration::from_secs(5), accepted.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.remote_addr(), LEGIT);
    let mut b = [0u8; 5];
    s.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"hello");
    let _out = timeout(Duration::from_secs(5), server.connect(PEER))
        .await
        .unwrap()
        .unwrap();

    // Nothing else, ever.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        accepted.try_recv().is_err(),
        "a forged source reached accept()"
    );
    let st = server.stats().await;
    // (The honest connection may have ended: its server side never sent anything.)
    assert!(st.incoming <= 1 && st.ready == 0, "{st:?}");

    let sent = to_forged.lock();
    assert_eq!(sent.len(), N as usize, "every forged source got an answer");
    for (addr, packets) in sent.iter() {
        // One SYN-ACK per SYN, nothing re-sent, nothing after.
        assert_eq!(packets.len(), 3, "{addr}: {packets:?}");
        for h in packets {
            assert_eq!(h.htype, Type::ST_STATE, "{addr}: {h:?}");
            assert_eq!(h.ack_nr.0, 77);
        }
    }
}

/// Only the exact acknowledgement of our SYN-ACK's cookie, on the SYN's connection, creates
/// a connection; a late duplicate of it after the connection closed does not make another.
#[tokio::test(start_paused = true)]
async fn test_handshake_ack_must_match_cookie() {
    let iface = MockInterface::new();
    let server = iface.create_socket_with_env(SERVER, TokioClock, SocketOpts::default());
    let mut accepted = accept_all(&server);
    let mut raw = RawClient::new(&iface, v4(10, 3, 3, 3, 5000));

    raw.syn(100);
    let synack = raw.answer_to_syn(100).await;
    assert_eq!(synack.htype, Type::ST_STATE);
    let cookie_ack = synack.seq_nr.0.wrapping_sub(1);

    // Wrong ack_nr; right ack_nr on another connection id; right ack_nr, wrong seq_nr.
    raw.send(&datagram(
        Type::ST_DATA,
        101,
        RAW_SYN_SEQ + 1,
        cookie_ack.wrapping_add(1),
        b"x",
    ));
    raw.send(&datagram(
        Type::ST_DATA,
        103,
        RAW_SYN_SEQ + 1,
        cookie_ack,
        b"x",
    ));
    raw.send(&datagram(
        Type::ST_DATA,
        101,
        RAW_SYN_SEQ + 2,
        cookie_ack,
        b"x",
    ));
    settle().await;
    assert_eq!(server.stats().await.streams, 0);
    assert!(accepted.try_recv().is_err());

    // The right one (ST_DATA, as a client that writes at once sends it).
    let first = datagram(Type::ST_DATA, 101, RAW_SYN_SEQ + 1, cookie_ack, b"hello");
    raw.send(&first);
    let mut s = timeout(Duration::from_secs(1), accepted.recv())
        .await
        .unwrap()
        .unwrap();
    let mut b = [0u8; 5];
    s.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"hello");

    s.abort();
    let h = raw.next_for(100).await.unwrap();
    let h = if h.htype == Type::ST_STATE {
        // The ACK of "hello" may come first.
        raw.next_for(100).await.unwrap()
    } else {
        h
    };
    assert_eq!(h.htype, Type::ST_RESET);
    settle().await;
    assert_eq!(server.stats().await.streams, 0);

    // A late duplicate of the first packet, its cookie still valid: nothing.
    raw.send(&first);
    settle().await;
    assert_eq!(server.stats().await.streams, 0);
    assert!(accepted.try_recv().is_err());
    // Nor after the cookie expired.
    tokio::time::sleep(Duration::from_secs(10)).await;
    raw.send(&first);
    settle().await;
    assert_eq!(server.stats().await.streams, 0);
    assert!(accepted.try_recv().is_err());
}

/// Our client acknowledges the SYN-ACK at once, so the server accepts the connection even if
/// the client does not write first.
#[tokio::test(start_paused = true)]
async fn test_accepted_without_client_data() {
    let iface = MockInterface::new();
    let client_states = Arc::new(AtomicUsize::new(0));
    {
        let client_states = client_states.clone();
        iface.set_drop_filter(move |from, _to, d| {
            if from == LEGIT && is_type(d, Type::ST_STATE) {
                client_states.fetch_add(1, Ordering::SeqCst);
            }
            false
        });
    }
    let server = iface.create_socket_with_env(SERVER, TokioClock, SocketOpts::default());
    let client = iface.create_socket_with_env(LEGIT, TokioClock, SocketOpts::default());
    let mut accepted = accept_all(&server);
    let t0 = tokio::time::Instant::now();
    let mut c = client.connect(SERVER).await.unwrap();
    let mut s = timeout(Duration::from_secs(1), accepted.recv())
        .await
        .expect("not accepted")
        .unwrap();
    assert!(t0.elapsed() < Duration::from_millis(50));
    assert_eq!(client_states.load(Ordering::SeqCst), 1, "one handshake ACK");
    // The server may speak first.
    s.write_all(b"hi").await.unwrap();
    let mut b = [0u8; 2];
    c.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"hi");
}

/// At most `max_incoming_per_source` (default 8) incoming connections per source (IPv4
/// address, IPv6 /64), counted when the SYN arrives and again when the handshake completes.
#[tokio::test(start_paused = true)]
async fn test_per_source_cap() {
    let iface = MockInterface::new();
    let server = iface.create_socket_with_env(SERVER, TokioClock, opts(64));
    let mut accepted = accept_all(&server);
    let client = iface.create_socket_with_env(LEGIT, TokioClock, SocketOpts::default());
    let atk_ip = Ipv4Addr::new(10, 1, 1, 1);
    let mut atk = RawClient::new(&iface, SocketAddr::new(atk_ip.into(), 7000));

    // 12 SYNs at once: nothing exists yet, so all get SYN-ACKs; of their 12 ACKs, 8 make
    // connections and 4 get ST_RESET.
    let mut synacks = Vec::new();
    for i in 0..12u16 {
        atk.syn(i * 2);
        let h = atk.answer_to_syn(i * 2).await;
        assert_eq!(h.htype, Type::ST_STATE);
        synacks.push(h);
    }
    for (i, h) in synacks.iter().enumerate() {
        atk.ack(i as u16 * 2, h);
    }
    let mut kept = Vec::new();
    for _ in 0..8 {
        kept.push(
            timeout(Duration::from_secs(1), accepted.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    settle().await;
    assert!(accepted.try_recv().is_err());
    let st = server.stats().await;
    assert_eq!(st.per_source.get(&IpAddr::V4(atk_ip)), Some(&8));
    let mut resets = 0;
    while let Ok((_, d)) = atk.rx.try_recv() {
        let h = parse(&d);
        if h.htype == Type::ST_RESET {
            resets += 1;
        }
    }
    assert_eq!(resets, 4);

    // Now SYNs from that address, another port of it, or it IPv4-mapped, get ST_RESET at once.
    assert_eq!(atk.handshake(100).await.unwrap_err().htype, Type::ST_RESET);
    let mut atk2 = RawClient::new(&iface, SocketAddr::new(atk_ip.into(), 7001));
    assert!(atk2.handshake(2).await.is_err());
    let mapped = SocketAddr::new(IpAddr::V6(atk_ip.to_ipv6_mapped()), 7002);
    let mut atk3 = RawClient::new(&iface, mapped);
    assert!(atk3.handshake(2).await.is_err());

    // Another source is not affected.
    let _c = timeout(Duration::from_secs(1), client.connect(SERVER))
        .await
        .unwrap()
        .unwrap();
    let s = timeout(Duration::from_secs(1), accepted.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.remote_addr(), LEGIT);

    // The cap counts live connections: one ends, one more is allowed.
    kept.pop().unwrap().abort();
    settle().await;
    assert!(atk.handshake(102).await.is_ok());
    assert!(
        timeout(Duration::from_secs(1), accepted.recv())
            .await
            .is_ok()
    );
    assert!(atk.handshake(104).await.is_err());

    // IPv6: by /64.
    let a6 = |s: &str| -> SocketAddr { s.parse().unwrap() };
    let mut six = RawClient::new(&iface, a6("[2001:db8::1]:1"));
    for i in 0..8u16 {
        assert!(six.handshake(i * 2).await.is_ok());
    }
    let mut six_same = RawClient::new(&iface, a6("[2001:db8::2]:1"));
    assert!(six_same.handshake(0).await.is_err());
    let mut six_other = RawClient::new(&iface, a6("[2001:db8:0:1::1]:1"));
    assert!(six_other.handshake(0).await.is_ok());
}

/// Incoming connections use at most 3/4 of `max_live_vsocks` (by default): the rest is kept
/// for our own connects.
#[tokio::test(start_paused = true)]
async fn test_incoming_share_keeps_room_for_connect() {
    let iface = MockInterface::new();
    let server = iface.create_socket_with_env(SERVER, TokioClock, opts(8));
    let mut accepted = accept_all(&server);
    let _peer = holding_peer(&iface, PEER);
    let mut kept = Vec::new();
    let mut refused = 0;
    for i in 0..8u8 {
        let mut raw = RawClient::new(&iface, v4(10, 2, 0, i + 1, 1));
        match raw.handshake(2).await {
            Ok(_) => kept.push(
                timeout(Duration::from_secs(1), accepted.recv())
                    .await
                    .unwrap()
                    .unwrap(),
            ),
            Err(_) => refused += 1,
        }
    }
    assert_eq!((kept.len(), refused), (6, 2));
    assert_eq!(server.stats().await.incoming, 6);

    // The two remaining places are ours.
    let _o1 = server.connect(PEER).await.unwrap();
    let _o2 = server.connect(PEER).await.unwrap();
    assert!(matches!(
        server.connect(PEER).await,
        Err(Error::TooManyActiveConnections)
    ));
}

/// At most 32 established connections wait for `accept()`; beyond that SYNs get ST_RESET.
#[tokio::test(start_paused = true)]
async fn test_accept_queue_is_bounded() {
    let iface = MockInterface::new();
    let server = iface.create_socket_with_env(SERVER, TokioClock, SocketOpts::default());
    let mut ok = 0;
    let mut refused = 0;
    for ip in 1..=5u8 {
        let mut raw = RawClient::new(&iface, v4(10, 4, 0, ip, 1));
        for i in 0..8u16 {
            match raw.handshake(i * 2).await {
                Ok(_) => ok += 1,
                Err(_) => refused += 1,
            }
        }
    }
    settle().await;
    assert_eq!((ok, refused), (32, 8));
    let st = server.stats().await;
    assert_eq!((st.ready, st.incoming), (32, 32));
    // In order.
    let s = server.accept().await.unwrap();
    assert_eq!(s.remote_addr(), v4(10, 4, 0, 1, 1));
    assert_eq!(server.stats().await.ready, 31);
}

/// `abort` sends ST_RESET and frees the stream's place at once; dropping the stream keeps it
/// until the FIN exchange ends or, if the remote does not answer (an attacker), 1 s more.
#[tokio::test(start_paused = true)]
async fn test_abort_frees_slot_at_once() {
    let iface = MockInterface::new();
    let server = iface.create_socket_with_env(SERVER, TokioClock, opts(1));
    let mut accepted = accept_all(&server);
    let client = iface.create_socket_with_env(LEGIT, TokioClock, SocketOpts::default());
    let _peer = holding_peer(&iface, PEER);
    let mut raw = RawClient::new(&iface, v4(10, 5, 5, 5, 1));

    // Dropped, the remote silent: the place stays taken for a while.
    raw.handshake(2).await.unwrap();
    let s1 = timeout(Duration::from_secs(1), accepted.recv())
        .await
        .unwrap()
        .unwrap();
    drop(s1);
    settle().await;
    assert_eq!(server.stats().await.streams, 1);
    assert!(matches!(
        server.connect(PEER).await,
        Err(Error::TooManyActiveConnections)
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(server.stats().await.streams, 0);

    // Aborted: free at once, and the remote gets ST_RESET.
    raw.handshake(4).await.unwrap();
    let s2 = timeout(Duration::from_secs(1), accepted.recv())
        .await
        .unwrap()
        .unwrap();
    s2.abort();
    settle().await;
    assert_eq!(server.stats().await.streams, 0);
    assert_eq!(raw.next_for(4).await.unwrap().htype, Type::ST_RESET);
    let out = server.connect(PEER).await.unwrap();
    out.abort();
    settle().await;

    // With our own client: it learns at once.
    let mut c3 = client.connect(SERVER).await.unwrap();
    let s3 = timeout(Duration::from_secs(1), accepted.recv())
        .await
        .unwrap()
        .unwrap();
    let t0 = tokio::time::Instant::now();
    s3.abort();
    let mut b = [0u8; 1];
    let r = timeout(Duration::from_secs(1), c3.read(&mut b))
        .await
        .unwrap();
    assert!(r.is_err(), "expected a reset, got {r:?}");
    assert!(t0.elapsed() < Duration::from_millis(100));
    assert_eq!(server.stats().await.streams, 0);
}

/// The reviewer's flood (its proof of concept, one UDP socket): SYNs at 80/s, each SYN-ACK
/// acknowledged, the connections kept alive by a datagram every 500 ms; the application
/// drops every connection from the attacker (as the daemon does with refused ones, without
/// `abort`). Before, this filled all 64 places and stopped every connect. Now the attacker
/// holds at most 8, and connects (and honest incoming connections) succeed throughout.
#[tokio::test(start_paused = true)]
async fn test_syn_flood_from_one_source_does_not_block_connect() {
    let iface = MockInterface::new();
    let server = iface.create_socket_with_env(SERVER, TokioClock, opts(64));
    let mut accepted = accept_all(&server);
    let (legit_tx, mut legit_rx) = unbounded_channel();
    tokio::spawn(async move {
        while let Some(s) = accepted.recv().await {
            if s.remote_addr() == LEGIT {
                let _ = legit_tx.send(s);
            }
            // Others dropped at once.
        }
    });
    let client = iface.create_socket_with_env(LEGIT, TokioClock, SocketOpts::default());
    let _peer = holding_peer(&iface, PEER);

    let atk_addr = v4(10, 9, 9, 9, 6881);
    let mut atk_rx = iface.create_raw_endpoint(atk_addr);
    let syns = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(AtomicUsize::new(0));
    let attacker = tokio::spawn({
        let (iface, syns, answers) = (iface.clone(), syns.clone(), answers.clone());
        async move {
            let send = |d: Vec<u8>| iface.inject(atk_addr, SERVER, &d);
            // conn id -> (next seq, ack)
            let mut established: HashMap<u16, (u16, u16)> = HashMap::new();
            let mut next_id: u16 = 2;
            let mut syn_tick = tokio::time::interval(Duration::from_micros(12_500));
            let mut trickle = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    _ = syn_tick.tick() => {
                        send(datagram(Type::ST_SYN, next_id, RAW_SYN_SEQ, 0, &[]));
                        syns.fetch_add(1, Ordering::SeqCst);
                        next_id = next_id.wrapping_add(2);
                    }
                    _ = trickle.tick() => {
                        for (id, (seq, ack)) in established.iter_mut() {
                            send(datagram(Type::ST_DATA, id + 1, *seq, *ack, b"x"));
                            *seq = seq.wrapping_add(1);
                        }
                    }
                    Some((_, d)) = atk_rx.recv() => {
                        let h = parse(&d);
                        let id = h.connection_id.0;
                        if h.ack_nr.0 == RAW_SYN_SEQ && matches!(h.htype, Type::ST_STATE | Type::ST_RESET) && !established.contains_key(&id) {
                            answers.fetch_add(1, Ordering::SeqCst);
                        }
                        if h.htype == Type::ST_STATE && h.ack_nr.0 == RAW_SYN_SEQ && !established.contains_key(&id) {
                            let ack = h.seq_nr.0.wrapping_sub(1);
                            send(datagram(Type::ST_STATE, id + 1, RAW_SYN_SEQ + 1, ack, &[]));
                            established.insert(id, (RAW_SYN_SEQ + 1, ack));
                        }
                        if h.htype == Type::ST_RESET {
                            established.remove(&id);
                        }
                    }
                }
            }
        }
    });

    let atk_source = source_of(atk_addr);
    for round in 0..5 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let st = server.stats().await;
        let from_atk = st.per_source.get(&atk_source).copied().unwrap_or(0);
        assert!(from_atk <= 8, "round {round}: {st:?}");
        assert!(st.streams <= 8 + 2 * round + 2, "round {round}: {st:?}");

        let out = timeout(Duration::from_secs(2), server.connect(PEER)).await;
        assert!(
            matches!(out, Ok(Ok(_))),
            "round {round}: outgoing connect failed: {:?}",
            out.map(|r| r.err())
        );
        let mut c = timeout(Duration::from_secs(2), client.connect(SERVER))
            .await
            .unwrap()
            .unwrap();
        c.write_all(b"hi").await.unwrap();
        let mut s = timeout(Duration::from_secs(2), legit_rx.recv())
            .await
            .unwrap()
            .unwrap();
        let mut b = [0u8; 2];
        s.read_exact(&mut b).await.unwrap();
    }
    attacker.abort();
    let syns = syns.load(Ordering::SeqCst);
    assert!(syns >= 400, "{syns}");
    // Every SYN got one answer (SYN-ACK or ST_RESET), nothing more (the last few may be
    // in flight).
    let answers = answers.load(Ordering::SeqCst);
    assert!(answers <= syns && answers + 5 >= syns, "{answers} / {syns}");
}
