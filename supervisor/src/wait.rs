//! `clearskies wait PATH`: waits until a share is in sync, showing progress by bytes.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clearskies_actors::control::cmd::{Request, Shares};

use crate::config::Config;
use crate::daemon::connect;
use crate::out;

/// `clearskies wait PATH`: polls the share's state until it is in sync. Progress goes to
/// stderr: a line redrawn in place on a terminal, else (a log, a pipe) a plain line every
/// [`PLAIN_EVERY`] and one at the end. Ctrl-C ends the line and exits with 130.
pub(crate) fn wait(config: &Config, path: &std::path::Path, timeout: Option<u64>) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let abs = std::fs::canonicalize(path).with_context(|| format!("{} does not exist", path.display()))?;
    let p = abs.to_str().with_context(|| format!("{} is not valid UTF-8", abs.display()))?.to_owned();
    let started = Instant::now();
    let deadline = timeout.map(|s| started + Duration::from_secs(s));
    let tty = std::io::stderr().is_terminal();
    exit_on_interrupt(tty)?;
    let mut client = connect(config)?;
    // The most bytes seen pending: the total the progress counts towards.
    let mut most = 0u64;
    let mut rate = Rate::default();
    let mut printed: Option<Instant> = None;
    loop {
        let Shares { shares } = client.request_as(&Request::ListShares)?;
        let share = shares
            .into_iter()
            .find(|s| s.path == p)
            .with_context(|| format!("{} is not shared; see `clearskies list`", abs.display()))?;
        if share.synced {
            if tty {
                eprint!("\r\x1b[2K");
            } else if printed.is_some() {
                let secs = started.elapsed().as_secs();
                eprintln!("in sync after {} ({} MB fetched)", duration_text(secs), mb(most));
            }
            return out(&format!("{} is in sync", abs.display()));
        }
        if let Some(e) = &share.error {
            if tty {
                eprint!("\r\x1b[2K");
            }
            bail!("{} cannot sync: {e}", abs.display());
        }
        let now = Instant::now();
        most = most.max(share.pending_bytes);
        let remaining = share.pending_bytes.saturating_sub(share.partial_bytes.unwrap_or(0));
        rate.push(now, most - remaining);
        let line = Progress {
            state: share.status.to_string(),
            files: share.pending_files,
            remaining,
            total: most,
            rate: rate.per_sec(),
            peers: share.peers,
        }
        .to_string();
        if tty {
            eprint!("\r\x1b[2K{line}");
        } else if printed.is_none_or(|at| now >= at + PLAIN_EVERY) {
            eprintln!("{line}");
            printed = Some(now);
        }
        if deadline.is_some_and(|d| now >= d) {
            if tty {
                eprintln!();
            }
            bail!(
                "{} is not in sync after {} s ({} still to fetch)",
                abs.display(),
                started.elapsed().as_secs(),
                count_text(share.pending_files, "file")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How often `wait` prints a progress line when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// How far back `wait`'s rate looks.
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// On SIGINT (Ctrl-C) during `wait`: ends the progress line drawn on a terminal, so that the
/// shell's prompt starts on a fresh line, and exits with 130 (128 + SIGINT, what a shell
/// reports for a command it interrupted). The handler is in place when this returns.
fn exit_on_interrupt(tty: bool) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build().context("starting a runtime")?;
    let mut interrupt = {
        let _entered = runtime.enter();
        signal(SignalKind::interrupt()).context("listening for SIGINT")?
    };
    std::thread::Builder::new()
        .name("sigint".into())
        .spawn(move || {
            runtime.block_on(interrupt.recv());
            if tty {
                // Under stderr's lock: never in the middle of a line being drawn.
                eprintln!();
            }
            std::process::exit(130);
        })
        .context("starting the SIGINT thread")?;
    Ok(())
}

/// The bytes done over the last [`RATE_WINDOW`]: `wait`'s transfer rate.
#[derive(Debug, Default)]
struct Rate {
    samples: std::collections::VecDeque<(Instant, u64)>,
}

impl Rate {
    /// `done` bytes at `now`.
    fn push(&mut self, now: Instant, done: u64) {
        self.samples.push_back((now, done));
        while self.samples.len() > 2 && self.samples.get(1).is_some_and(|&(t, _)| now.duration_since(t) >= RATE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Bytes per second over the window; `None` until it spans a second.
    fn per_sec(&self) -> Option<f64> {
        let (&(t0, d0), &(t1, d1)) = (self.samples.front()?, self.samples.back()?);
        let secs = t1.duration_since(t0).as_secs_f64();
        (secs >= 1.0).then(|| d1.saturating_sub(d0) as f64 / secs)
    }
}

/// One progress line of `wait`: "syncing: 1 file to fetch, 4.2 of 11.0 MB done (38%),
/// 1.0 MB/s, about 7 s left, 1 peer".
#[derive(Debug)]
struct Progress {
    state: String,
    files: u64,
    remaining: u64,
    total: u64,
    rate: Option<f64>,
    peers: usize,
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let done = self.total.saturating_sub(self.remaining);
        let percent = (u128::from(done) * 100).checked_div(u128::from(self.total)).unwrap_or(0);
        write!(
            f,
            "{}: {} to fetch, {} of {} MB done ({percent}%)",
            self.state,
            count_text(self.files, "file"),
            mb(done),
            mb(self.total)
        )?;
        if let Some(rate) = self.rate {
            write!(f, ", {}", rate_text(rate))?;
            if let Some(secs) = eta(self.remaining, rate) {
                write!(f, ", about {} left", duration_text(secs))?;
            }
        }
        write!(f, ", {}", count_text(self.peers as u64, "peer"))
    }
}

/// "1 file", "0 files", "3 files".
fn count_text(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Bytes in MB with one decimal: "4.2".
fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

/// A transfer rate: "512 B/s", "850 kB/s", "1.2 MB/s" (decimal units, as the settings'
/// limits are read).
fn rate_text(bytes_per_sec: f64) -> String {
    if bytes_per_sec >= 1e6 {
        format!("{:.1} MB/s", bytes_per_sec / 1e6)
    } else if bytes_per_sec >= 1e3 {
        format!("{:.0} kB/s", bytes_per_sec / 1e3)
    } else {
        format!("{:.0} B/s", bytes_per_sec.max(0.0))
    }
}

/// Seconds until `remaining` bytes arrive at `rate` bytes per second (`None`: no rate, or
/// nothing left).
fn eta(remaining: u64, rate: f64) -> Option<u64> {
    if rate < 1.0 || remaining == 0 {
        return None;
    }
    Duration::try_from_secs_f64((remaining as f64 / rate).ceil()).ok().map(|d| d.as_secs())
}

/// A duration: "7 s", "3 min 20 s", "2 h 5 min".
fn duration_text(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

#[cfg(test)]
mod wait_tests {
    use super::*;

    #[test]
    fn counts_rates_and_durations_read_as_words() {
        assert_eq!(
            (count_text(1, "file"), count_text(0, "file"), count_text(3, "peer")),
            ("1 file".into(), "0 files".into(), "3 peers".into())
        );
        assert_eq!(mb(4_250_000), "4.2");
        assert_eq!(
            (rate_text(512.0), rate_text(850_400.0), rate_text(1_240_000.0)),
            ("512 B/s".into(), "850 kB/s".into(), "1.2 MB/s".into())
        );
        assert_eq!(
            (duration_text(7), duration_text(200), duration_text(7500)),
            ("7 s".into(), "3 min 20 s".into(), "2 h 5 min".into())
        );
        assert_eq!(eta(7_000_000, 1e6), Some(7));
        assert_eq!(eta(1, 3.0), Some(1));
        assert_eq!((eta(5, 0.0), eta(0, 1e6)), (None, None));
    }

    #[test]
    fn the_rate_is_measured_over_the_last_seconds() {
        let t = Instant::now();
        let mut r = Rate::default();
        r.push(t, 0);
        r.push(t + Duration::from_millis(500), 500_000);
        assert_eq!(r.per_sec(), None, "half a second is too short to tell");
        for s in 1..=20 {
            r.push(t + Duration::from_secs(s), s * 1_000_000);
        }
        assert_eq!(r.per_sec(), Some(1e6));
        // A stall shows within the window.
        for s in 21..=30 {
            r.push(t + Duration::from_secs(s), 20_000_000);
        }
        assert_eq!(r.per_sec(), Some(0.0));
    }

    #[test]
    fn a_progress_line_counts_bytes() {
        let mut p = Progress {
            state: "syncing".into(),
            files: 1,
            remaining: 6_800_000,
            total: 11_000_000,
            rate: None,
            peers: 1,
        };
        assert_eq!(p.to_string(), "syncing: 1 file to fetch, 4.2 of 11.0 MB done (38%), 1 peer");
        p.rate = Some(1e6);
        assert_eq!(
            p.to_string(),
            "syncing: 1 file to fetch, 4.2 of 11.0 MB done (38%), 1.0 MB/s, about 7 s left, 1 peer"
        );
        p = Progress { state: "scanning".into(), files: 0, remaining: 0, total: 0, rate: Some(0.0), peers: 0 };
        assert_eq!(p.to_string(), "scanning: 0 files to fetch, 0.0 of 0.0 MB done (0%), 0 B/s, 0 peers");
    }
}
