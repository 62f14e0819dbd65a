//! Simultaneous open (both peers dial each other at once) and hole punching, in-process, on
//! *-shared kinds. "punch" turns on the firewall emulation of udp.rs on both sides (inbound
//! datagrams from an address are dropped until we have sent to it) and starts B's dial
//! 200 ms after A's, so A's first SYN is dropped at B, as at a NAT whose hole is not open yet.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::node::{Node, Stream};

async fn one(kind: &str, firewall: bool, skew_ms: u64) -> Result<()> {
    let a = Arc::new(Node::bind(kind, "127.0.0.1:0".parse()?, firewall).await?);
    let b = Arc::new(Node::bind(kind, "127.0.0.1:0".parse()?, firewall).await?);
    let (aa, ba) = (a.shared.as_ref().unwrap().local_addr(), b.shared.as_ref().unwrap().local_addr());
    let acc = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    for (n, c) in [(a.clone(), acc[0].clone()), (b.clone(), acc[1].clone())] {
        tokio::spawn(async move {
            while let Ok((mut s, _)) = n.accept().await {
                c.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    if let Stream::Io(io) = &mut s {
                        let mut buf = [0u8; 16];
                        if let Ok(Ok(k)) =
                            tokio::time::timeout(Duration::from_secs(3), io.read(&mut buf)).await
                        {
                            let _ = io.write_all(&buf[..k]).await; // echo
                        }
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                });
            }
        });
    }
    let t0 = Instant::now();
    let dial = |from: Arc<Node>, to, delay| async move {
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let r = from.connect(to, Duration::from_secs(5)).await;
        let ms = t0.elapsed().as_millis();
        match r {
            Ok(mut s) => {
                let echo = if let Stream::Io(io) = &mut s {
                    let _ = io.write_all(b"ping").await;
                    let mut buf = [0u8; 4];
                    match tokio::time::timeout(Duration::from_secs(3), io.read_exact(&mut buf)).await {
                        Ok(Ok(_)) => "echo ok".to_string(),
                        Ok(Err(e)) => format!("echo err {e}"),
                        Err(_) => "echo timeout".into(),
                    }
                } else {
                    "n/a".into()
                };
                format!("connected at {ms} ms, {echo}")
            }
            Err(e) => format!("FAILED at {ms} ms: {e:#}"),
        }
    };
    let (ra, rb) = tokio::join!(dial(a.clone(), ba, 0), dial(b.clone(), aa, skew_ms));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fw = |n: &Node| n.shared.as_ref().unwrap().counters.fw_dropped.load(Ordering::Relaxed);
    println!(
        "SIM kind={kind} firewall={firewall} skew_ms={skew_ms}\n  A->B: {ra}\n  B->A: {rb}\n  accepted: A={} B={}  firewall-dropped: at A={} at B={}",
        acc[0].load(Ordering::Relaxed),
        acc[1].load(Ordering::Relaxed),
        fw(&a),
        fw(&b)
    );
    Ok(())
}

/// The same with the adapter's connect (SYN re-sent every 700 ms).
async fn adapter(firewall: bool, skew_ms: u64) -> Result<()> {
    use crate::adapter::UtpEndpoint;
    let (a, _) = UtpEndpoint::bind_addr("127.0.0.1:0".parse()?, firewall)?;
    let (b, _) = UtpEndpoint::bind_addr("127.0.0.1:0".parse()?, firewall)?;
    let acc = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    for (n, c) in [(a.clone(), acc[0].clone()), (b.clone(), acc[1].clone())] {
        tokio::spawn(async move {
            while let Ok(mut s) = n.accept().await {
                c.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4];
                    if s.read_exact(&mut buf).await.is_ok() {
                        let _ = s.write_all(&buf).await;
                    }
                    tokio::time::sleep(Duration::from_secs(5)).await;
                });
            }
        });
    }
    let t0 = Instant::now();
    let dial = |from: UtpEndpoint, to, delay| async move {
        tokio::time::sleep(Duration::from_millis(delay)).await;
        match from.connect(to, Duration::from_secs(5)).await {
            Ok(mut s) => {
                let _ = s.write_all(b"ping").await;
                let mut buf = [0u8; 4];
                let e = tokio::time::timeout(Duration::from_secs(3), s.read_exact(&mut buf)).await;
                format!("connected at {} ms, echo {}", t0.elapsed().as_millis(), if matches!(e, Ok(Ok(_))) { "ok" } else { "FAILED" })
            }
            Err(e) => format!("FAILED at {} ms: {e}", t0.elapsed().as_millis()),
        }
    };
    let (ra, rb) = tokio::join!(dial(a.clone(), b.local_addr(), 0), dial(b.clone(), a.local_addr(), skew_ms));
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!(
        "SIM kind=adapter(librqbit-utp) firewall={firewall} skew_ms={skew_ms}\n  A->B: {ra}\n  B->A: {rb}\n  accepted: A={} B={}",
        acc[0].load(Ordering::Relaxed),
        acc[1].load(Ordering::Relaxed)
    );
    Ok(())
}

pub async fn run(kind: &str) -> Result<()> {
    if kind == "adapter" {
        adapter(false, 0).await?;
        return adapter(true, 200).await;
    }
    one(kind, false, 0).await?;
    one(kind, true, 200).await?;
    Ok(())
}
