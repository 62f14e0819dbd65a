//! The log file of a daemon started in the background (`clearskies start`): the monitor owns
//! it and caps its size.
//!
//! `start` opens `DIR/log` as the monitor's stdout and stderr and sets
//! [`OWN_LOG_ENV`](crate::shared::OWN_LOG_ENV); the monitor then takes the file over
//! ([`LogFile::own`]). Its own output (tracing, a panic,
//! the last error line of `main`) keeps going to its stderr, written directly and at once.
//! The worker's stdout and stderr are a pipe instead: a thread per worker reads it
//! ([`LogFile::pump`]), splits it into lines (at most [`MAX_LINE`] bytes each), escapes them
//! as the worker's own log lines are ([`escape_line`]), and hands them to the writer thread through a bounded queue. When the
//! queue is full (the disk does not keep up) lines are counted and dropped, never waited
//! for: the worker never blocks on its log for longer than one read of the pipe. When the
//! worker exits, the monitor waits (at most [`DRAIN_WAIT`]) until everything it wrote,
//! a panic message included, is in the file before it logs the exit. (A monitor killed
//! outright, SIGKILL, leaves its worker running with nobody reading the pipe: the worker's
//! writes then fail, unseen, and never block it.)
//!
//! The writer thread rotates when a batch of lines would take the file past [`MAX_BYTES`]
//! (or `CLEARSKIES_LOG_MAX_BYTES`, for tests; a batch is never larger than that) and, for
//! the monitor's own lines, every [`CHECK_EVERY`]: `log.N-1` becomes `log.N` … `log`
//! becomes `log.1` (the old `log.KEEP` is gone), and a new `log` is opened and put in place
//! of the monitor's stdout and stderr (`dup2`). So a file holds at most `MAX_BYTES` and a
//! line (and the monitor's few lines since the last check), and `log` to `log.5` at most
//! about 60 MiB.
//!
//! `start --foreground` (a terminal, systemd's journal) never does any of this: the monitor
//! and the worker write to the stderr they were given, as before.

use std::io::{BufRead, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::say::warn;
use crate::shared::escape_line;

/// Overrides [`MAX_BYTES`]: for tests, which need rotation without writing megabytes. Not a
/// setting.
pub(crate) const MAX_BYTES_ENV: &str = "CLEARSKIES_LOG_MAX_BYTES";
/// A log file is rotated once it holds this much.
pub(crate) const MAX_BYTES: u64 = 10 << 20;
/// Rotated files kept: `log.1` (the newest) … `log.5`.
pub(crate) const KEEP: u32 = 5;
/// Longer lines from the worker are split.
pub(crate) const MAX_LINE: usize = 64 << 10;
/// Lines waiting for the writer; more are dropped (and counted).
const QUEUE: usize = 4096;
/// How long the monitor waits for a finished worker's last lines to reach the file.
pub(crate) const DRAIN_WAIT: Duration = Duration::from_secs(5);
/// The writer checks the size this often even when the worker is quiet (the monitor's own
/// lines do not pass through it).
const CHECK_EVERY: Duration = Duration::from_secs(30);
/// What the writer writes at once, at most.
const BATCH: usize = 256 << 10;

enum Msg {
    Line(String),
    /// Everything sent before has been written (or dropped): say so.
    Flushed(tokio::sync::oneshot::Sender<()>),
}

/// The monitor's side of the log file: where the workers' output goes.
#[derive(Debug)]
pub(crate) struct LogFile {
    tx: SyncSender<Msg>,
    lost: Arc<AtomicU64>,
}

/// A finished worker's output on its way to the file; [`Drain::wait`] until it is there.
#[derive(Debug)]
pub(crate) struct Drain(tokio::sync::oneshot::Receiver<()>);

impl Drain {
    /// Waits until the worker's output has been written, [`DRAIN_WAIT`] at most (a process
    /// the worker started could keep the pipe open).
    pub(crate) async fn wait(self) {
        if tokio::time::timeout(DRAIN_WAIT, self.0).await.is_err() {
            warn(&format!("the worker's last output did not reach the log within {}s", DRAIN_WAIT.as_secs()), &[]);
        }
    }
}

impl LogFile {
    /// Takes over `path`, which must be this process's stdout and stderr already (`start`
    /// made it so): starts the writer thread, which rotates the file at once if it is full.
    pub(crate) fn own(path: PathBuf) -> anyhow::Result<LogFile> {
        let max_bytes = match std::env::var(MAX_BYTES_ENV) {
            Ok(v) => v.parse().ok().filter(|&n| n > 0).with_context(|| format!("{MAX_BYTES_ENV}={v:?}"))?,
            Err(_) => MAX_BYTES,
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let lost = Arc::new(AtomicU64::new(0));
        let writer = Writer { rotation: Rotation { path, max_bytes, keep: KEEP }, lost: Arc::clone(&lost) };
        std::thread::Builder::new()
            .name("log writer".into())
            .spawn(move || writer.run(&rx))
            .context("starting the log writer")?;
        Ok(LogFile { tx, lost })
    }

    /// Reads a worker's output from `pipe` (the read end; the worker has the write end) on a
    /// thread of its own, until the worker and everything holding the pipe have exited.
    pub(crate) fn pump(&self, pipe: OwnedFd) -> anyhow::Result<Drain> {
        let (done, drained) = tokio::sync::oneshot::channel();
        let (tx, lost) = (self.tx.clone(), Arc::clone(&self.lost));
        std::thread::Builder::new()
            .name("worker output".into())
            .spawn(move || {
                read_lines(std::fs::File::from(pipe), |line| match tx.try_send(Msg::Line(line)) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        lost.fetch_add(1, Ordering::Relaxed);
                    }
                    // The writer is gone (the monitor is exiting): keep reading anyway, so
                    // that the worker is not blocked.
                    Err(TrySendError::Disconnected(_)) => {}
                });
                // The worker is gone: waiting for room here blocks nobody.
                let _ = tx.send(Msg::Flushed(done));
            })
            .context("starting the worker output reader")?;
        Ok(Drain(drained))
    }

    /// Everything queued so far on its way to the file: [`Drain::wait`] until it is there.
    pub(crate) fn flush(&self) -> Drain {
        let (done, flushed) = tokio::sync::oneshot::channel();
        // (If the writer is gone, `done` is dropped with the message: nothing to wait for.)
        let _ = self.tx.send(Msg::Flushed(done));
        Drain(flushed)
    }
}

/// A pipe for a worker's stdout and stderr: (read end, write end), both close-on-exec (the
/// write end is duplicated onto the worker's fds 1 and 2, which are not).
pub(crate) fn worker_pipe() -> anyhow::Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(std::io::Error::from)
        .context("making a pipe for the worker's output")
}

/// Calls `emit` with each line read from `input` (escaped, with its newline), splitting
/// lines longer than [`MAX_LINE`], until end of file or a read error.
fn read_lines(input: impl std::io::Read, mut emit: impl FnMut(String)) {
    let mut reader = std::io::BufReader::with_capacity(MAX_LINE, input);
    let mut line: Vec<u8> = Vec::new();
    let mut send = |line: &mut Vec<u8>| {
        if line.last() != Some(&b'\n') {
            line.push(b'\n');
        }
        emit(escape_line(&String::from_utf8_lossy(line)));
        line.clear();
    };
    loop {
        let buf = match reader.fill_buf() {
            Ok([]) => break,
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let room = MAX_LINE - line.len();
        let (take, complete) = match buf.iter().take(room).position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len().min(room), line.len() + buf.len() >= MAX_LINE),
        };
        line.extend_from_slice(&buf[..take]);
        reader.consume(take);
        if complete {
            send(&mut line);
        }
    }
    if !line.is_empty() {
        send(&mut line);
    }
}

/// The writer thread: writes lines to its stderr (the log file) and rotates.
struct Writer {
    rotation: Rotation,
    lost: Arc<AtomicU64>,
}

impl Writer {
    fn run(self, rx: &Receiver<Msg>) {
        self.rotation.make_room(0);
        // A batch never holds more than a file may (so a file ends up at most one line over).
        let limit = usize::try_from(self.rotation.max_bytes).map_or(BATCH, |max| max.min(BATCH));
        let mut batch = String::new();
        let mut acks = Vec::new();
        loop {
            match rx.recv_timeout(CHECK_EVERY) {
                Ok(msg) => take(msg, &mut batch, &mut acks),
                Err(RecvTimeoutError::Timeout) => {
                    self.rotation.make_room(0);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
            while batch.len() < limit {
                match rx.try_recv() {
                    Ok(msg) => take(msg, &mut batch, &mut acks),
                    Err(_) => break,
                }
            }
            self.rotation.make_room(batch.len() as u64);
            self.write(&batch);
            batch.clear();
            for ack in acks.drain(..) {
                let _ = ack.send(());
            }
        }
    }

    /// Writes one batch of whole lines (after a note of the lines lost since the last one).
    fn write(&self, batch: &str) {
        let lost = self.lost.swap(0, Ordering::Relaxed);
        if lost > 0 {
            warn("lines of the worker's output were dropped: the log file did not keep up", &[("lost", &lost)]);
        }
        if batch.is_empty() {
            return;
        }
        if std::io::stderr().write_all(batch.as_bytes()).is_err() {
            // A full disk, say: these lines are lost; the next batch tries again.
            self.lost.fetch_add(batch.matches('\n').count() as u64, Ordering::Relaxed);
        }
    }
}

fn take(msg: Msg, batch: &mut String, acks: &mut Vec<tokio::sync::oneshot::Sender<()>>) {
    match msg {
        Msg::Line(line) => batch.push_str(&line),
        Msg::Flushed(ack) => acks.push(ack),
    }
}

/// `log` → `log.1` → … → `log.KEEP`.
#[derive(Debug)]
struct Rotation {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
}

impl Rotation {
    /// Rotates if the file behind stderr is full, or would be with `incoming` more bytes
    /// (unless it is empty). A failure is logged (in the old file) and tried again at the
    /// next check.
    fn make_room(&self, incoming: u64) {
        let Ok(st) = rustix::fs::fstat(std::io::stderr()) else { return };
        let size = u64::try_from(st.st_size).unwrap_or(0);
        if size >= self.max_bytes || (size > 0 && size.saturating_add(incoming) > self.max_bytes) {
            if let Err(e) = self.rotate() {
                warn("cannot rotate the log file", &[("error", &format!("{e:#}"))]);
            }
        }
    }

    fn rotate(&self) -> anyhow::Result<()> {
        self.shift()?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))?;
        rustix::stdio::dup2_stdout(&file).context("making the new log file stdout")?;
        rustix::stdio::dup2_stderr(&file).context("making the new log file stderr")?;
        Ok(())
    }
}

impl Rotation {
    /// Renames `log.N-1` to `log.N` … `log` to `log.1`, replacing `log.KEEP`.
    fn shift(&self) -> anyhow::Result<()> {
        for n in (1..self.keep).rev() {
            rename_if_there(&numbered(&self.path, n), &numbered(&self.path, n + 1))?;
        }
        rename_if_there(&self.path, &numbered(&self.path, 1))
    }
}

/// `log.N`.
fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn rename_if_there(from: &Path, to: &Path) -> anyhow::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("renaming {} to {}", from.display(), to.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        read_lines(input, |l| out.push(l));
        out
    }

    #[test]
    fn output_is_cut_into_escaped_whole_lines() {
        assert_eq!(lines(b"one\ntwo\n"), ["one\n", "two\n"]);
        // A panic message's last line without its newline still arrives, whole.
        assert_eq!(lines(b"thread 'x' panicked\nboom"), ["thread 'x' panicked\n", "boom\n"]);
        assert_eq!(lines(b"a\x1b[31mred\r\n"), ["a\\u{1b}[31mred\\r\n"]);
        assert_eq!(lines(b"bad \xff utf8\n"), ["bad \u{fffd} utf8\n"]);
        assert!(lines(b"").is_empty());
    }

    #[test]
    fn a_full_queue_drops_lines_and_never_blocks_the_worker() {
        // A log whose writer takes nothing (a stalled disk): its queue holds one line.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let log = LogFile { tx, lost: Arc::new(AtomicU64::new(0)) };
        let (read, write) = worker_pipe().unwrap();
        let _drain = log.pump(read).unwrap();
        // The worker writes about 5 MB, far more than a pipe holds (64 KiB): it finishes
        // only if the pump keeps reading.
        let (finished, worker_done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut pipe = std::fs::File::from(write);
            for i in 0..100_000 {
                writeln!(pipe, "line {i:040}").unwrap();
            }
            drop(pipe);
            finished.send(()).unwrap();
        });
        worker_done.recv_timeout(Duration::from_secs(60)).expect("the worker blocked on its log");
        match rx.recv().unwrap() {
            Msg::Line(line) => assert_eq!(line, format!("line {:040}\n", 0)),
            Msg::Flushed(_) => panic!("the first line was not queued"),
        }
        // After the end of the pipe the pump says so; by then it has counted the rest. (The
        // pump may still be reading the pipe's last 64 KiB when the first line is taken
        // off the queue: a few more lines may be queued then.)
        let mut queued: u64 = 1;
        loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(Msg::Line(_)) => queued += 1,
                Ok(Msg::Flushed(_)) => break,
                Err(e) => panic!("the pump never said it was done: {e}"),
            }
        }
        assert!(queued < 2_000, "the queue stays bounded: {queued} lines queued");
        assert_eq!(log.lost.load(Ordering::Relaxed) + queued, 100_000);
    }

    #[test]
    fn a_line_longer_than_the_limit_is_split() {
        let mut input = vec![b'x'; MAX_LINE * 2 + 10];
        input.push(b'\n');
        let out = lines(&input);
        assert_eq!(out.len(), 3, "{:?}", out.iter().map(String::len).collect::<Vec<_>>());
        assert!(out.iter().all(|l| l.len() <= MAX_LINE + 1 && l.ends_with('\n')));
        assert_eq!(out.iter().map(|l| l.len() - 1).sum::<usize>(), MAX_LINE * 2 + 10);
    }

    #[test]
    fn rotation_shifts_numbered_files_and_drops_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let r = Rotation { path: log.clone(), max_bytes: 1, keep: 2 };
        for n in 1..=2 {
            std::fs::write(numbered(&log, n), format!("old {n}")).unwrap();
        }
        std::fs::write(&log, "current").unwrap();
        // (Only the renames: a test must not replace its own stderr.)
        r.shift().unwrap();
        assert_eq!(std::fs::read_to_string(numbered(&log, 1)).unwrap(), "current");
        assert_eq!(std::fs::read_to_string(numbered(&log, 2)).unwrap(), "old 1");
        assert!(!numbered(&log, 3).exists() && !log.exists());
        rename_if_there(&dir.path().join("absent"), &log).unwrap();
    }
}
