//! A userspace netem: this kernel has no sch_netem (CONFIG_NET_SCH_NETEM is not set), so
//! delay and loss are applied by this process between two TUN devices, one moved into each
//! namespace by scripts/link.sh. Per direction: random loss, then an optional rate limit
//! (serialisation at `rate` with a drop-tail queue of `queue` packets), then a fixed delay.
//!
//!   utp-eval linkem <tunA> <tunB> --delay-ms 25 --loss 0.01 [--rate-mbit 20 --queue 200]

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

fn open_tun(name: &str) -> Result<File> {
    let f = OpenOptions::new().read(true).write(true).open("/dev/net/tun")?;
    #[repr(C)]
    struct IfReq {
        name: [u8; 16],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    let mut req = IfReq { name: [0; 16], flags: 0x0001 | 0x1000, _pad: [0; 22] }; // IFF_TUN|IFF_NO_PI
    if name.len() > 15 {
        bail!("tun name too long");
    }
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    const TUNSETIFF: libc::c_ulong = 0x400454ca;
    let r = unsafe { libc::ioctl(f.as_raw_fd(), TUNSETIFF as _, &mut req) };
    if r < 0 {
        bail!("TUNSETIFF {name}: {}", std::io::Error::last_os_error());
    }
    Ok(f)
}

#[derive(Clone, Copy)]
struct Params {
    delay: Duration,
    loss: f64,
    rate_bps: f64, // 0 = unlimited
    queue_pkts: usize,
}

#[derive(Default)]
struct Stats {
    pkts: AtomicU64,
    lost: AtomicU64,
    tail_dropped: AtomicU64,
}

fn direction(mut from: File, mut to: File, p: Params, st: Arc<Stats>) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let inflight = Arc::new(AtomicU64::new(0)); // packets queued for serialisation
    let infl2 = inflight.clone();
    std::thread::spawn(move || {
        for (at, pkt) in rx {
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            let _ = to.write(&pkt);
            infl2.fetch_sub(1, Ordering::Relaxed);
        }
    });
    let mut next_free = Instant::now(); // when the emulated wire is free
    let mut buf = vec![0u8; 65536];
    loop {
        let n = match from.read(&mut buf) {
            Ok(n) => n,
            Err(_) => return,
        };
        st.pkts.fetch_add(1, Ordering::Relaxed);
        if p.loss > 0.0 && rand::random::<f64>() < p.loss {
            st.lost.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let now = Instant::now();
        let depart = if p.rate_bps > 0.0 {
            // Packets waiting for the wire: those whose serialisation has not finished yet.
            let backlog = if next_free > now {
                ((next_free - now).as_secs_f64() * p.rate_bps / 8.0 / 1500.0) as usize
            } else {
                0
            };
            if backlog >= p.queue_pkts {
                st.tail_dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let start = next_free.max(now);
            next_free = start + Duration::from_secs_f64(n as f64 * 8.0 / p.rate_bps);
            next_free
        } else {
            now
        };
        inflight.fetch_add(1, Ordering::Relaxed);
        let _ = tx.send((depart + p.delay, buf[..n].to_vec()));
    }
}

pub fn run(args: &[String]) -> Result<()> {
    let get = |k: &str| args.iter().position(|a| a == k).and_then(|i| args.get(i + 1)).cloned();
    let p = Params {
        delay: Duration::from_micros(
            (get("--delay-ms").map(|v| v.parse::<f64>().unwrap()).unwrap_or(0.0) * 1000.0) as u64,
        ),
        loss: get("--loss").map(|v| v.parse().unwrap()).unwrap_or(0.0),
        rate_bps: get("--rate-mbit").map(|v| v.parse::<f64>().unwrap() * 1e6).unwrap_or(0.0),
        queue_pkts: get("--queue").map(|v| v.parse().unwrap()).unwrap_or(1000),
    };
    let a = open_tun(&args[0])?;
    let b = open_tun(&args[1])?;
    let (a2, b2) = (a.try_clone()?, b.try_clone()?);
    let sab = Arc::new(Stats::default());
    let sba = Arc::new(Stats::default());
    let (s1, s2) = (sab.clone(), sba.clone());
    std::thread::spawn(move || direction(a, b2, p, s1));
    std::thread::spawn(move || direction(b, a2, p, s2));
    println!("READY");
    loop {
        std::thread::sleep(Duration::from_secs(5));
        for (d, s) in [("a->b", &sab), ("b->a", &sba)] {
            eprintln!(
                "linkem {d}: pkts={} lost={} tail_dropped={}",
                s.pkts.load(Ordering::Relaxed),
                s.lost.load(Ordering::Relaxed),
                s.tail_dropped.load(Ordering::Relaxed)
            );
        }
    }
}
