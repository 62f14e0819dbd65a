//! The `Share` actor: owns one share's index, runs its scans on the blocking pool and
//! answers for its state.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, MessageResult, SpawnHandle, WrapFuture,
};
use clearskies_protocol::time::Timestamp;
use clearskies_protocol::{PeerId, RecordUuid};
use tracing::{info, warn};

use super::messages::{FsChanged, GetShareStatus, Rescan, ShareStatus, StopShare};
use super::record::EntryKind;
use super::scan::{scan, ScanContext, ScanError, ScanReport};
use super::store::ShareStore;

#[derive(Debug, Clone, PartialEq)]
enum State {
    Scanning,
    Idle,
    Error(String),
}

/// Quiet time after the last filesystem event before scanning.
pub const DEBOUNCE: Duration = Duration::from_millis(250);
/// Longest a steady stream of events can delay a scan.
pub const MAX_DEBOUNCE: Duration = Duration::from_secs(2);

/// One share.
#[derive(Debug)]
pub struct Share {
    root: PathBuf,
    me: PeerId,
    mode: &'static str,
    store: ShareStore,
    state: State,
    scan_again: bool,
    /// When the first not-yet-scanned event arrived.
    dirty_since: Option<Instant>,
    debounce: Option<SpawnHandle>,
}

impl Share {
    /// A share rooted at `root`, indexed in `store`, where we are `me`.
    pub fn new(root: PathBuf, me: PeerId, mode: &'static str, store: ShareStore) -> Self {
        Share { root, me, mode, store, state: State::Idle, scan_again: false, dirty_since: None, debounce: None }
    }

    fn start_scan(&mut self, ctx: &mut Context<Self>) {
        if self.state == State::Scanning {
            self.scan_again = true;
            return;
        }
        self.state = State::Scanning;
        let (root, store, me) = (self.root.clone(), self.store.clone(), self.me);
        let job = tokio::task::spawn_blocking(move || run_scan(&root, &store, me));
        ctx.spawn(job.into_actor(self).map(|joined, act, ctx| {
            act.state = match joined {
                Ok(Ok(report)) => {
                    info!(root = %act.root.display(), entries = report.entries, hashed = report.hashed_files,
                        changed = report.changed.len(), "scan complete");
                    State::Idle
                }
                Ok(Err(e @ ScanError::RootMissing(_))) => {
                    warn!(error = %e, "share in error state; nothing will be deleted");
                    State::Error(e.to_string())
                }
                Ok(Err(e)) => {
                    warn!(error = %e, "scan failed");
                    State::Error(e.to_string())
                }
                Err(e) => State::Error(format!("scan task failed: {e}")),
            };
            if std::mem::take(&mut act.scan_again) {
                act.start_scan(ctx);
            }
        }));
    }
}

fn run_scan(root: &std::path::Path, store: &ShareStore, me: PeerId) -> Result<ScanReport, ScanError> {
    let mut new_uuid = || {
        let mut b = [0u8; 16];
        // The OS RNG failing is unrecoverable for a process that makes keys; fall back to
        // time-derived bits only so a scan can still complete (UUIDs need uniqueness, not
        // secrecy).
        if getrandom::fill(&mut b).is_err() {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            b = t.as_nanos().to_le_bytes();
        }
        RecordUuid(b)
    };
    let mut ctx = ScanContext { me, now: now(), new_uuid: &mut new_uuid };
    scan(root, store, &mut ctx)
}

/// The current wall-clock time as a protocol timestamp.
pub fn now() -> Timestamp {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp::new(i64::try_from(d.as_secs()).unwrap_or(0), d.subsec_nanos()).unwrap_or_default()
}

impl Actor for Share {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.start_scan(ctx);
        let watcher = super::watch::watch(self.root.clone(), ctx.address().recipient());
        ctx.spawn(watcher.into_actor(self).map(|res, act, _| {
            let why = match res {
                Ok(()) => "the watch ended".to_owned(),
                Err(e) => e.to_string(),
            };
            warn!(root = %act.root.display(), reason = %why, "not watching for changes; they are seen on the next scan");
        }));
    }
}

impl Handler<FsChanged> for Share {
    type Result = ();

    fn handle(&mut self, _: FsChanged, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let first = *self.dirty_since.get_or_insert(now);
        if let Some(h) = self.debounce.take() {
            ctx.cancel_future(h);
        }
        let wait = if now.duration_since(first) >= MAX_DEBOUNCE { Duration::ZERO } else { DEBOUNCE };
        self.debounce = Some(ctx.run_later(wait, |act, ctx| {
            act.debounce = None;
            act.dirty_since = None;
            act.start_scan(ctx);
        }));
    }
}

impl Handler<Rescan> for Share {
    type Result = ();

    fn handle(&mut self, _: Rescan, ctx: &mut Context<Self>) {
        self.start_scan(ctx);
    }
}

impl Handler<StopShare> for Share {
    type Result = ();

    fn handle(&mut self, _: StopShare, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<GetShareStatus> for Share {
    type Result = MessageResult<GetShareStatus>;

    fn handle(&mut self, _: GetShareStatus, _: &mut Context<Self>) -> Self::Result {
        let (mut files, mut directories, mut bytes) = (0, 0, 0);
        let records = self.store.records();
        if let Ok(records) = &records {
            for r in records.iter().filter(|r| !r.deleted) {
                match r.kind {
                    EntryKind::File => {
                        files += 1;
                        bytes += r.size.unwrap_or(0);
                    }
                    EntryKind::Directory => directories += 1,
                }
            }
        }
        let (status, error) = match (&self.state, records) {
            (_, Err(e)) => ("error", Some(e.to_string())),
            (State::Scanning, _) => ("scanning", None),
            (State::Idle, _) => ("idle", None),
            (State::Error(e), _) => ("error", Some(e.clone())),
        };
        MessageResult(ShareStatus {
            path: self.root.display().to_string(),
            status,
            error,
            mode: self.mode,
            files,
            directories,
            bytes,
            revision: self.store.revision().unwrap_or(0),
            synced: true,
        })
    }
}
