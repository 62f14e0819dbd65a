//! Hostile input against a uTP listener (`utp-eval server <kind> <addr> --stats`).
//!
//!   utp-eval hostile <addr> garbage [N]         random datagrams, and random "version 1" headers
//!   utp-eval hostile <addr> synflood [N] [S]    N SYNs with distinct connection ids from S sockets
//!   utp-eval hostile <addr> conn                handshake by hand, then abuse that connection
//!
//! Prints one line per step: what was sent and what came back (packet types, by count).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Result};
use tokio::net::UdpSocket;

const ST_DATA: u8 = 0;
const ST_FIN: u8 = 1;
const ST_STATE: u8 = 2;
const ST_RESET: u8 = 3;
const ST_SYN: u8 = 4;

#[derive(Clone, Default)]
struct Pkt {
    typ: u8,
    conn_id: u16,
    wnd: u32,
    seq: u16,
    ack: u16,
    /// Raw extension chain: (type, bytes). The first type goes in byte 1 of the header.
    exts: Vec<(u8, Vec<u8>)>,
    /// Override for the declared length of the last extension (to lie about it).
    lie_last_len: Option<u8>,
    payload: Vec<u8>,
}

fn ts() -> u32 {
    (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros()
        & 0xFFFF_FFFF) as u32
}

impl Pkt {
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(20 + self.payload.len());
        b.push((self.typ << 4) | 1);
        b.push(self.exts.first().map(|e| e.0).unwrap_or(0));
        b.extend_from_slice(&self.conn_id.to_be_bytes());
        b.extend_from_slice(&ts().to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&self.wnd.to_be_bytes());
        b.extend_from_slice(&self.seq.to_be_bytes());
        b.extend_from_slice(&self.ack.to_be_bytes());
        for (i, (_, data)) in self.exts.iter().enumerate() {
            let next = self.exts.get(i + 1).map(|e| e.0).unwrap_or(0);
            b.push(next);
            let last = i + 1 == self.exts.len();
            b.push(if last { self.lie_last_len.unwrap_or(data.len() as u8) } else { data.len() as u8 });
            b.extend_from_slice(data);
        }
        b.extend_from_slice(&self.payload);
        b
    }
}

fn type_name(b: &[u8]) -> String {
    if b.is_empty() {
        return "empty".into();
    }
    match b[0] >> 4 {
        0 => "DATA",
        1 => "FIN",
        2 => "STATE",
        3 => "RESET",
        4 => "SYN",
        _ => "other",
    }
    .into()
}

/// Collects replies for `wait`; returns counts by type and the last STATE's (seq, ack).
async fn replies(s: &UdpSocket, wait: Duration) -> (BTreeMap<String, u32>, Option<(u16, u16)>) {
    let mut m = BTreeMap::new();
    let mut last_state = None;
    let mut buf = [0u8; 2048];
    let end = tokio::time::Instant::now() + wait;
    while let Ok(Ok((n, _))) = tokio::time::timeout_at(end, s.recv_from(&mut buf)).await {
        *m.entry(type_name(&buf[..n])).or_insert(0) += 1;
        if n >= 20 && buf[0] >> 4 == ST_STATE {
            last_state = Some((
                u16::from_be_bytes([buf[16], buf[17]]),
                u16::from_be_bytes([buf[18], buf[19]]),
            ));
        }
    }
    (m, last_state)
}

pub async fn run(to: SocketAddr, phase: &str, rest: &[String]) -> Result<()> {
    let bind: SocketAddr = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse()?;
    let n: usize = rest.first().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    match phase {
        "garbage" => {
            let s = UdpSocket::bind(bind).await?;
            for i in 0..n {
                let len = rand::random_range(0..1500usize);
                let mut d: Vec<u8> = (0..len).map(|_| rand::random()).collect();
                if i % 2 == 1 && len >= 1 {
                    // "version 1", any type 0..15
                    d[0] = (rand::random::<u8>() & 0xF0) | 1;
                }
                s.send_to(&d, to).await?;
                if i % 256 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            let (m, _) = replies(&s, Duration::from_millis(500)).await;
            println!("HOSTILE garbage sent={n} replies={m:?}");
        }
        "synflood" => {
            let socks: usize = rest.get(1).and_then(|v| v.parse().ok()).unwrap_or(64);
            let mut ss = Vec::new();
            for _ in 0..socks {
                ss.push(UdpSocket::bind(bind).await?);
            }
            for i in 0..n {
                let p = Pkt {
                    typ: ST_SYN,
                    conn_id: (i / socks) as u16,
                    seq: rand::random(),
                    wnd: 1 << 20,
                    ..Default::default()
                };
                ss[i % socks].send_to(&p.encode(), to).await?;
                if i % 64 == 0 {
                    // ~ a few tens of thousands per second; the kernel buffer must not overflow
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            let mut total = BTreeMap::new();
            for s in &ss {
                let (m, _) = replies(s, Duration::from_millis(20)).await;
                for (k, v) in m {
                    *total.entry(k).or_insert(0) += v;
                }
            }
            println!("HOSTILE synflood syns={n} from_sockets={socks} replies={total:?}");
        }
        "conn" => conn(to, bind).await?,
        p => bail!("unknown phase {p}"),
    }
    Ok(())
}

/// A fresh connection, handshaken by hand: (socket, data-packet template, next seq, recv_id, isn).
async fn handshake(to: SocketAddr, bind: SocketAddr) -> Result<Option<(UdpSocket, Pkt, u16, u16, u16)>> {
    let s = UdpSocket::bind(bind).await?;
    let recv_id: u16 = rand::random();
    let send_id = recv_id.wrapping_add(1);
    let isn: u16 = rand::random();
    let syn = Pkt { typ: ST_SYN, conn_id: recv_id, seq: isn, wnd: 1 << 20, ..Default::default() };
    s.send_to(&syn.encode(), to).await?;
    let (m, st) = replies(&s, Duration::from_millis(500)).await;
    let Some((their_seq, _)) = st else {
        println!("HOSTILE handshake failed: replies={m:?}");
        return Ok(None);
    };
    // The acceptor's STATE does not use up a sequence number: nothing of theirs received yet
    // is ack_nr = their_seq - 1 (BEP 29 / libutp).
    let base = Pkt {
        typ: ST_DATA,
        conn_id: send_id,
        wnd: 1 << 20,
        ack: their_seq.wrapping_sub(1),
        ..Default::default()
    };
    Ok(Some((s, base, isn.wrapping_add(1), recv_id, isn)))
}

/// A valid data packet: is the connection alive? Returns the reply summary.
async fn probe(s: &UdpSocket, to: SocketAddr, base: &Pkt, seq: &mut u16) -> String {
    // A valid frame for the test server (u32 length 1, then one byte).
    let p = Pkt { seq: *seq, payload: vec![0, 0, 0, 1, b'p'], ..base.clone() };
    let _ = s.send_to(&p.encode(), to).await;
    *seq = seq.wrapping_add(1);
    let (m, _) = replies(s, Duration::from_millis(400)).await;
    format!("{m:?}")
}

/// Each abuse on its own fresh connection: first a valid packet (must be acked), then the
/// abuse, then a valid probe: a STATE back means the connection is alive; FIN/RESET or
/// silence means it was closed.
async fn conn(to: SocketAddr, bind: SocketAddr) -> Result<()> {
    // 1000 bytes that are one valid frame for the test server (so in-order delivery of it is
    // not a protocol error that makes the server close).
    let mut big = vec![0xAB; 1000];
    big[..4].copy_from_slice(&996u32.to_be_bytes());
    type Make = Box<dyn Fn(&Pkt, u16, u16, u16) -> Vec<Pkt>>;
    let steps: Vec<(&str, Make)> = vec![
        ("seq far future (+30000) x100", Box::new({ let big = big.clone(); move |b, seq, _, _| (0..100).map(|i| Pkt { seq: seq.wrapping_add(30000 + i), payload: big.clone(), ..b.clone() }).collect() })),
        ("seq far past (-30000) x100", Box::new({ let big = big.clone(); move |b, seq, _, _| (0..100).map(|i| Pkt { seq: seq.wrapping_sub(30000 + i), payload: big.clone(), ..b.clone() }).collect() })),
        ("ack_nr far future (+30000) x10", Box::new(|b, seq, _, _| (0..10).map(|i| Pkt { typ: ST_STATE, seq, ack: b.ack.wrapping_add(30000 + i), ..b.clone() }).collect())),
        ("ack_nr far past (-30000) x10", Box::new(|b, seq, _, _| (0..10).map(|i| Pkt { typ: ST_STATE, seq, ack: b.ack.wrapping_sub(30000 + i), ..b.clone() }).collect())),
        ("wnd_size 0 x10", Box::new(|b, seq, _, _| (0..10).map(|_| Pkt { typ: ST_STATE, seq, wnd: 0, ..b.clone() }).collect())),
        ("wnd_size 2^32-1 x10", Box::new(|b, seq, _, _| (0..10).map(|_| Pkt { typ: ST_STATE, seq, wnd: u32::MAX, ..b.clone() }).collect())),
        ("SACK len 255 all ones", Box::new(|b, seq, _, _| vec![Pkt { typ: ST_STATE, seq, exts: vec![(1, vec![0xFF; 255])], ..b.clone() }])),
        ("SACK len 0", Box::new(|b, seq, _, _| vec![Pkt { typ: ST_STATE, seq, exts: vec![(1, vec![])], ..b.clone() }])),
        ("SACK len 7 (not multiple of 4)", Box::new(|b, seq, _, _| vec![Pkt { typ: ST_STATE, seq, exts: vec![(1, vec![0xFF; 7])], ..b.clone() }])),
        ("SACK declared 255, 4 present (truncated)", Box::new(|b, seq, _, _| vec![Pkt { typ: ST_STATE, seq, exts: vec![(1, vec![0xFF; 4])], lie_last_len: Some(255), ..b.clone() }])),
        ("600 chained extensions", Box::new(|b, seq, _, _| vec![Pkt { typ: ST_STATE, seq, exts: (0..600).map(|_| (2u8, vec![])).collect(), ..b.clone() }])),
        ("unknown extension type 200 len 255", Box::new(|b, seq, _, _| vec![Pkt { typ: ST_STATE, seq, exts: vec![(200, vec![0; 255])], ..b.clone() }])),
        ("DATA with SACK len 255 and payload", Box::new({ let big = big.clone(); move |b, seq, _, _| vec![Pkt { seq, exts: vec![(1, vec![0xFF; 255])], payload: big.clone(), ..b.clone() }] })),
        ("types 5..15 with our conn id", Box::new(|b, seq, _, _| (5..16).map(|t| Pkt { typ: t, seq, ..b.clone() }).collect())),
        ("RESET with a wrong conn id", Box::new(|b, seq, _, _| vec![Pkt { typ: ST_RESET, conn_id: b.conn_id.wrapping_add(77), seq, ..b.clone() }])),
        ("SYN again with the same conn id", Box::new(|b, _, recv_id, isn| vec![Pkt { typ: ST_SYN, conn_id: recv_id, seq: isn, ..b.clone() }])),
        ("FIN with seq +20000", Box::new(|b, seq, _, _| vec![Pkt { typ: ST_FIN, seq: seq.wrapping_add(20000), ..b.clone() }])),
    ];
    for (name, make) in steps {
        let Some((s, base, mut seq, recv_id, isn)) = handshake(to, bind).await? else { continue };
        let before = probe(&s, to, &base, &mut seq).await;
        let pkts = make(&base, seq, recv_id, isn);
        for p in &pkts {
            s.send_to(&p.encode(), to).await?;
        }
        let during = replies(&s, Duration::from_millis(300)).await.0;
        println!("STEP {name}: valid before -> {before}; replies to the abuse {during:?}; valid after -> {}", probe(&s, to, &base, &mut seq).await);
    }

    // Out-of-order flood on a fresh connection: every packet of a 60000-packet window but the
    // next expected one, 1000 bytes each (60 MB if all were kept), then the missing one.
    if let Some((s, base, mut seq, _, _)) = handshake(to, bind).await? {
        let hole = seq;
        for i in 1..60_000u16 {
            let p = Pkt { seq: hole.wrapping_add(i), payload: big.clone(), ..base.clone() };
            s.send_to(&p.encode(), to).await?;
            if i % 64 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let (m, _) = replies(&s, Duration::from_millis(500)).await;
        println!("STEP out-of-order flood (59999 pkts, hole at next seq): replies={m:?}");
        println!("STEP fill the hole: {}", probe(&s, to, &base, &mut seq).await);
    }
    Ok(())
}
