//! uTP crate evaluation for ClearSkies issue 21. See docs/utp-evaluation.md.
//!
//!   utp-eval server <kind> <bind> [--stats]
//!   utp-eval client <kind> <addr> [--bytes N] [--secs S] [--bind A]
//!   utp-eval hostile <addr> <phase>      (phases: see hostile.rs)
//!   utp-eval sim <kind>                  (simultaneous open / hole punching, *-shared kinds)
//!   utp-eval linkem <tunA> <tunB> [--delay-ms D --loss P --rate-mbit R --queue N]
//!   utp-eval stun-demo                   (the adapter: one port for TCP, uTP and STUN)

mod adapter;
mod clearskies_adapter;
mod hostile;
mod linkem;
mod metrics;
mod node;
mod sim;
mod stun;
mod udp;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use metrics::{cpu_secs, now_unix, rss_kib};
use node::Node;

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = args.first().map(String::as_str).unwrap_or("");
    match cmd {
        "server" => server(&args[1], args[2].parse()?, args.iter().any(|a| a == "--stats")).await,
        "client" => {
            let bytes: u64 = arg(&args, "--bytes").unwrap_or(u64::MAX);
            let secs: f64 = arg(&args, "--secs").unwrap_or(f64::INFINITY);
            let bind: Option<SocketAddr> = arg(&args, "--bind");
            client(&args[1], args[2].parse()?, bytes, secs, bind).await
        }
        "hostile" => hostile::run(args[1].parse()?, &args[2], &args[3..]).await,
        "sim" => sim::run(&args[1]).await,
        "stun-demo" => adapter::demo().await,
        "linkem" => linkem::run(&args[1..]),
        _ => bail!("usage: see src/main.rs; kinds: {}", node::KINDS),
    }
}

static LIVE: AtomicU64 = AtomicU64::new(0);
static ACCEPTED: AtomicU64 = AtomicU64::new(0);
static DONE: AtomicU64 = AtomicU64::new(0);

async fn server(kind: &str, bind: SocketAddr, stats: bool) -> Result<()> {
    let node = Arc::new(Node::bind(kind, bind, false).await?);
    println!("LISTEN kind={kind} addr={bind} pid={}", std::process::id());
    if stats {
        tokio::spawn(async {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let (rss, hwm) = rss_kib("self");
                println!(
                    "STAT t={:.1} accepted={} live={} done={} rss_kib={rss} hwm_kib={hwm} cpu={:.2}",
                    now_unix(),
                    ACCEPTED.load(Ordering::Relaxed),
                    LIVE.load(Ordering::Relaxed),
                    DONE.load(Ordering::Relaxed),
                    cpu_secs()
                );
            }
        });
    }
    loop {
        let (mut s, from) = match node.accept().await {
            Ok(x) => x,
            Err(e) => {
                println!("ACCEPT-ERROR {e:#}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let id = ACCEPTED.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(1, Ordering::Relaxed);
        let kind = kind.to_string();
        tokio::spawn(async move {
            let start = Instant::now();
            let cpu0 = cpu_secs();
            let mut first: Option<Instant> = None;
            let mut last_iv = Instant::now();
            let mut iv_bytes = 0u64;
            let mut on_bytes = |n: usize| {
                let now = Instant::now();
                first.get_or_insert(now);
                iv_bytes += n as u64;
                let el = now - last_iv;
                if el >= Duration::from_secs(1) {
                    println!(
                        "IV kind={kind} conn={id} t={:.2} MBps={:.3}",
                        now_unix(),
                        iv_bytes as f64 / el.as_secs_f64() / 1e6
                    );
                    iv_bytes = 0;
                    last_iv = now;
                }
            };
            let r = match s.io() {
                Some(io) => recv_framed(io, &mut on_bytes).await,
                None => s.drain(on_bytes).await,
            };
            let secs = first.map(|f| f.elapsed()).unwrap_or(start.elapsed()).as_secs_f64();
            let (rss, hwm) = rss_kib("self");
            match r {
                Ok(total) => {
                    if total > 0 {
                        println!(
                            "DONE kind={kind} conn={id} from={from} bytes={total} secs={secs:.2} MBps={:.2} server_cpu={:.2} rss_kib={rss} hwm_kib={hwm}",
                            total as f64 / secs / 1e6,
                            cpu_secs() - cpu0
                        );
                    }
                    if let Some(io) = s.io() {
                        // Tell the client how much arrived, then close.
                        let _ = io.write_all(&total.to_be_bytes()).await;
                        let _ = io.flush().await;
                        // Leave time for it to be delivered before closing (see irontide notes).
                        let mut b = [0u8; 1];
                        let _ = tokio::time::timeout(Duration::from_secs(30), io.read(&mut b)).await;
                    }
                    let _ = s.finish().await;
                }
                Err(e) => println!("CONN-ERROR kind={kind} conn={id} from={from} after {secs:.2}s: {e:#}"),
            }
            LIVE.fetch_sub(1, Ordering::Relaxed);
            DONE.fetch_add(1, Ordering::Relaxed);
        });
    }
}

async fn client(
    kind: &str,
    to: SocketAddr,
    bytes: u64,
    secs: f64,
    bind: Option<SocketAddr>,
) -> Result<()> {
    let bind = bind.unwrap_or(if to.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    });
    let node = node::client_node(kind, bind).await?;
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let mut s = node.connect(to, Duration::from_secs(10)).await?;
    let connect_ms = t0.elapsed().as_secs_f64() * 1e3;
    let chunk: Vec<u8> = (0..64 * 1024).map(|i| (i * 7 + 13) as u8).collect();
    let start = Instant::now();
    let deadline = Duration::from_secs_f64(secs.min(1e9));
    let mut sent = 0u64;
    let mut framed = [0u8; 4 + 64 * 1024];
    while sent < bytes && start.elapsed() < deadline {
        let n = chunk.len().min((bytes - sent) as usize);
        if s.io().is_some() {
            framed[..4].copy_from_slice(&(n as u32).to_be_bytes());
            framed[4..4 + n].copy_from_slice(&chunk[..n]);
            s.write_all(&framed[..4 + n]).await?;
        } else {
            s.write_all(&chunk[..n]).await?;
        }
        sent += n as u64;
    }
    let write_secs = start.elapsed().as_secs_f64();
    let (_, hwm_write) = rss_kib("self");
    let waited = if let Some(io) = s.io() {
        // End frame; the server answers with the byte count it got, then we close.
        io.write_all(&0u32.to_be_bytes()).await?;
        let _ = io.flush().await; // libutp-rs2: flush is "not implemented" (an error)
        let mut got = [0u8; 8];
        let r = tokio::time::timeout(Duration::from_secs(120), io.read_exact(&mut got)).await;
        let r = match r {
            Ok(Ok(_)) if u64::from_be_bytes(got) == sent => Ok(Ok(0)),
            Ok(Ok(_)) => Ok(Err(anyhow::anyhow!("server got {} of {sent}", u64::from_be_bytes(got)))),
            Ok(Err(e)) => Ok(Err(e.into())),
            Err(e) => Err(e),
        };
        let _ = io.shutdown().await;
        r
    } else {
        s.finish().await?;
        tokio::time::timeout(Duration::from_secs(120), s.drain(|_| {})).await
    };
    let total_secs = start.elapsed().as_secs_f64();
    let (rss, hwm) = rss_kib("self");
    println!(
        "CLIENT kind={kind} to={to} connect_ms={connect_ms:.1} bytes={sent} write_secs={write_secs:.2} total_secs={total_secs:.2} MBps={:.2} client_cpu={:.2} rss_kib={rss} hwm_kib={hwm} hwm_at_end_of_writes_kib={hwm_write} closed={}",
        sent as f64 / total_secs / 1e6,
        cpu_secs() - cpu0,
        match waited {
            Ok(Ok(_)) => "ok".to_string(),
            Ok(Err(e)) => format!("err:{e:#}").replace(' ', "_"),
            Err(_) => "timeout".to_string(),
        }
    );
    Ok(())
}

/// Frames: u32 length + payload; length 0 ends the stream. Returns the payload total.
async fn recv_framed(io: &mut Box<dyn node::Io>, on_bytes: &mut impl FnMut(usize)) -> Result<u64> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let len = io.read_u32().await? as usize;
        if len == 0 {
            return Ok(total);
        }
        anyhow::ensure!(len <= buf.len(), "bad frame length {len}");
        let mut got = 0;
        while got < len {
            let n = io.read(&mut buf[got..len]).await?;
            anyhow::ensure!(n > 0, "EOF inside a frame after {total} bytes");
            got += n;
            total += n as u64;
            on_bytes(n);
        }
    }
}
