//! When the share is scanned: filesystem events debounced into one scan of where they
//! pointed, a scan asked for while one runs queued as exactly one more, the inotify watch
//! (or full scans every `full_scan_interval` without it), and the look at the root every
//! [`ROOT_CHECK`] (an unmounted bind mount, as Docker volumes are, sends no inotify event).
//!
//! [`Scheduler`] decides, from the time it is given and what it was told; the actor carries
//! the decisions out (jobs on the worker, timers on its context).

use std::time::{Duration, Instant};

use actix::{ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, SpawnHandle, WrapFuture};
use tracing::{error, info, warn};

use super::events::ShareEvent;
use super::{new_uuid, Share, ShareState, State, RETRY_FAILED};
use crate::metrics::metrics;
use crate::share::messages::FsChanged;
use clearskies_index::{apply, fsops, record, scan, store};

/// Quiet time after the last filesystem event before scanning, in a burst of events (or
/// while a file is still being written).
pub const DEBOUNCE: Duration = Duration::from_millis(250);
/// The wait after an event that finishes a change (a file closed after writing, a rename,
/// a deletion) when the tree had been quiet for [`DEBOUNCE`] before it: an isolated save is
/// scanned at once, with just the time to take in the events that come with it (an editor's
/// rename, a `chmod`).
pub const QUICK: Duration = Duration::from_millis(10);
/// Longest a steady stream of events can delay a scan.
pub const MAX_DEBOUNCE: Duration = Duration::from_secs(2);
/// How often the share root is looked at: still there, still the same directory?
const ROOT_CHECK: Duration = Duration::from_secs(2);

/// Scheduling state: where the next scan looks, the debounce, the watch, the root.
#[derive(Debug, Default)]
pub(super) struct Scheduler {
    /// Where the next scan looks.
    dirty: scan::Scope,
    /// When the first not-yet-scanned event arrived.
    dirty_since: Option<Instant>,
    /// When the last event arrived (scanned or not).
    last_event: Option<Instant>,
    /// The events not yet scanned began after [`DEBOUNCE`] of quiet: one that finishes a
    /// change is scanned after [`QUICK`].
    quick: bool,
    /// The debounce timer, while one runs.
    debounce: Option<SpawnHandle>,
    /// A scan was asked for while one ran (or the share was starting).
    scan_again: bool,
    /// Why the tree is not watched for changes, if it is not.
    pub(super) unwatched: Option<String>,
    /// The inotify watch, while it runs.
    watcher: Option<SpawnHandle>,
    /// Full scans every `full_scan_interval`, while the tree cannot be watched.
    periodic: Option<SpawnHandle>,
    root: RootWatch,
}

/// What is known of the share root.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct RootWatch {
    /// Its device and inode when the share was opened (`None`: it was missing).
    id: Option<(u64, u64)>,
    /// It went away (and the share is in error until it is back).
    lost: bool,
    /// A look at it is under way.
    looking: bool,
}

/// What a look at the root calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RootAction {
    /// Nothing changed (or a scan runs: decided at the next look).
    Keep,
    /// It is gone: a full scan, which puts the share in error and deletes nothing.
    Lost,
    /// It is back, or another directory is there now: open the share again.
    Reopen,
}

/// How a scan ended, as far as scheduling cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scanned {
    /// It finished; `held_deletions` deletions wait for the user's confirmation.
    Done { held_deletions: usize },
    /// The root or its marker is missing.
    RootMissing,
    /// Another error (the disk, the index): tried again in [`RETRY_FAILED`].
    Failed,
}

/// How long to wait before scanning, for an event at `now` when the first event not yet
/// scanned came at `first`: [`QUICK`] for an event that `finishes` a change in a `quick`
/// batch (one that began after quiet), else [`DEBOUNCE`] of quiet; never more than
/// [`MAX_DEBOUNCE`] in all.
fn debounce_wait(first: Instant, now: Instant, quick: bool, finishes: bool) -> Duration {
    if now.duration_since(first) >= MAX_DEBOUNCE {
        Duration::ZERO
    } else if quick && finishes {
        QUICK
    } else {
        DEBOUNCE
    }
}

impl Scheduler {
    /// The watcher named `scope` at `now` (an event that `finishes` a change, or not):
    /// answers the debounce timer to cancel and how long the new one waits. A save storm
    /// costs at most one quick scan: the events after it come within [`DEBOUNCE`] of each
    /// other, so their batch is not quick.
    fn changed(&mut self, scope: scan::Scope, now: Instant, finishes: bool) -> (Option<SpawnHandle>, Duration) {
        self.dirty.merge(scope);
        if self.dirty_since.is_none() {
            self.quick = self.last_event.is_none_or(|t| now.duration_since(t) >= DEBOUNCE);
        }
        self.last_event = Some(now);
        let first = *self.dirty_since.get_or_insert(now);
        (self.debounce.take(), debounce_wait(first, now, self.quick, finishes))
    }

    /// The debounce ran out: the scan starts.
    fn settled(&mut self) {
        self.debounce = None;
        self.dirty_since = None;
    }

    /// A debounce is waiting to scan.
    pub(super) fn debouncing(&self) -> bool {
        self.debounce.is_some()
    }

    /// A scan is wanted while the share is in `state`: where to scan now, or `None` when
    /// one runs or the share is starting (then exactly one more scan follows it).
    fn begin(&mut self, state: &State) -> Option<scan::Scope> {
        if matches!(state, State::Scanning | State::Starting) {
            self.scan_again = true;
            return None;
        }
        Some(std::mem::take(&mut self.dirty))
    }

    /// Whether a scan was asked for meanwhile (and forgets it).
    fn take_again(&mut self) -> bool {
        std::mem::take(&mut self.scan_again)
    }

    /// A scan ended `how`: whether to try again after [`RETRY_FAILED`]. Held deletions are
    /// found again by every scan until confirmed, and after an error nothing is known: the
    /// next scan looks everywhere.
    fn finished(&mut self, how: Scanned) -> bool {
        match how {
            Scanned::Done { held_deletions: 0 } => return false,
            Scanned::Done { .. } => {}
            Scanned::RootMissing => self.root.lost = true,
            Scanned::Failed => {
                self.dirty = scan::Scope::Full;
                return true;
            }
        }
        self.dirty = scan::Scope::Full;
        false
    }
}

impl RootWatch {
    /// The root looked `now` (`None`: not there; else its device and inode, if readable),
    /// with a scan running or not.
    fn looked(&mut self, now: Option<Option<(u64, u64)>>, scanning: bool) -> RootAction {
        match now {
            None if !self.lost => {
                self.lost = true;
                RootAction::Lost
            }
            Some(id) if (self.lost || self.id != id) && !scanning => {
                self.lost = false;
                RootAction::Reopen
            }
            _ => RootAction::Keep,
        }
    }
}

/// What a scan job answers: the report (and whether it was full), and contents to fetch for
/// paths the ignore file no longer ignores. (Our records it wrote come as [`ScanCommitted`].)
type ScanJob = (Result<(scan::ScanReport, bool), scan::ScanError>, Result<Vec<apply::Fetch>, store::StoreError>);

/// Records of ours a scan committed: announced at once, so that a peer fetches a large file
/// as soon as it is hashed rather than when the scan ends. They all come through the
/// mailbox, from the worker thread, in the order they were committed: a peer's `since`
/// for us is the highest revision it holds, so a higher one must never reach it first.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct ScanCommitted(Vec<record::Record>);

/// Scans `scope` on the worker thread; reads the records written if `want` (someone is
/// there to be told) and hands them to `share` as they are committed.
fn scan_job(s: &mut ShareState, scope: scan::Scope, want: bool, share: &Addr<Share>) -> ScanJob {
    if s.announced.is_none() {
        s.announced = s.store.revision().ok();
    }
    let refreshed = s.refresh_filter();
    // A changed ignore file changes what is indexed anywhere.
    let mut scope = if refreshed { scan::Scope::Full } else { scope };
    if s.read_only {
        scope = read_only_scope(scope, &s.root, s.local_changes.as_ref());
    }
    let full = scope == scan::Scope::Full;
    let (store, me, mut announced) = (s.store.clone(), s.me, s.announced);
    let mut committed = || match super::writes_since(&store, &me, &mut announced, want) {
        Ok(records) if !records.is_empty() => share.do_send(ScanCommitted(records)),
        Ok(_) => {}
        Err(e) => error!(error = %e, "cannot read this scan's records to send to peers"),
    };
    let mut report = super::run_scan(s, &scope, Some(&mut committed));
    if s.read_only {
        s.local_changes = report.as_mut().ok().map(|r| {
            r.local_changes.sort();
            r.local_changes.dedup();
            r.local_changes.iter().cloned().collect()
        });
    }
    // And what is left: a failed scan's commits, the held deletions' chunks.
    committed();
    s.announced = announced;
    // Paths the ignore file no longer ignores: peers' versions come now.
    let mut uuid = new_uuid;
    let fetch = if refreshed { s.applier(&mut uuid).resume() } else { Ok(Vec::new()) };
    (report.map(|r| (r, full)), fetch)
}

/// What a scan of a read-only share looks at: `scope`, and again every local change the
/// last scan found (`known`; `None`: not known, so the whole tree). Local changes are
/// counted, never recorded, so only a look finds whether one is still there; with the
/// ones known looked at again, a scan of what inotify named ends with the whole set, as a
/// full scan would, at the cost of the changes rather than of the share. (Too many
/// known changes make the scope full by themselves.)
fn read_only_scope(
    mut scope: scan::Scope,
    root: &std::path::Path,
    known: Option<&std::collections::BTreeSet<clearskies_protocol::path::SharePath>>,
) -> scan::Scope {
    let Some(known) = known else { return scan::Scope::Full };
    for path in known {
        if scope == scan::Scope::Full {
            break;
        }
        scope.add_path(root, path);
    }
    scope
}

/// The root's device and inode (`None`: missing or unreadable).
type RootId = Option<(u64, u64)>;

/// Finishes what a crash, a stop or a missing disk left undone (on the worker thread):
/// the root's device and inode, and what to fetch.
fn reopen_job(s: &mut ShareState) -> (RootId, Result<Vec<apply::Fetch>, store::StoreError>) {
    if !scan::root_is_present(&s.root) {
        return (None, Ok(Vec::new()));
    }
    let id = root_id(&s.root);
    let stale = fsops::remove_stale_temps(&s.root);
    if stale > 0 {
        info!(root = %s.root.display(), stale, "removed temp files left by an interrupted transfer");
    }
    // Partial downloads of contents still wanted stay, to be continued.
    let store = &s.store;
    let unwanted = fsops::remove_unwanted_partials(&s.root, |sha| store.waiting_for(sha).is_ok_and(|w| !w.is_empty()));
    if unwanted > 0 {
        info!(root = %s.root.display(), unwanted, "removed partial downloads nobody waits for");
    }
    s.prune_versions(0, false);
    let mut uuid = new_uuid;
    (id, s.applier(&mut uuid).resume())
}

/// The device and inode of `root` (`None` if it cannot be read).
fn root_id(root: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(root).ok().map(|m| (m.dev(), m.ino()))
}

impl Share {
    /// Starts a scan of where events pointed, or queues one behind the scan running.
    pub(super) fn start_scan(&mut self, ctx: &mut Context<Self>) {
        let Some(scope) = self.schedule.begin(&self.state) else { return };
        self.set_state(State::Scanning);
        let started = Instant::now();
        let want = !self.senders.is_empty() || self.events.watched();
        let share = ctx.address();
        let job = self.worker.run(move |s: &mut ShareState| scan_job(s, scope, want, &share));
        ctx.spawn(job.into_actor(self).map(move |joined, act, ctx| {
            metrics().scan_duration.observe(started.elapsed().as_secs_f64());
            match joined {
                Ok(done) => act.scanned(done, ctx),
                Err(e) => act.set_state(State::Error(e.to_string())),
            }
        }));
    }

    /// Announces records a scan wrote (and tells of the conflict copies among them).
    fn announce_scanned(&mut self, changed: Vec<record::Record>) {
        self.events.conflicts(changed.iter().map(|r| (None, r)), self.me);
        self.announce(changed.into_iter().map(|r| (None, r)).collect());
    }

    /// A scan job ended: fetch what it found wanted, and take in its report.
    fn scanned(&mut self, (report, fetch): ScanJob, ctx: &mut Context<Self>) {
        match fetch {
            Ok(fetch) => self.fetch(fetch),
            Err(e) => error!(error = %e, "cannot resume paths no longer ignored"),
        }
        let state = match report {
            Ok((report, full)) => {
                info!(root = %self.root.display(), full, entries = report.entries, hashed = report.hashed_files,
                    changed = report.changed, "scan complete");
                if report.local_changes.len() != self.health.local_changes {
                    warn!(root = %self.root.display(), changes = report.local_changes.len(),
                        "local changes in a read-only share: kept here, never sent to peers");
                }
                self.health.local_changes = report.local_changes.len();
                self.schedule.finished(Scanned::Done { held_deletions: report.held_deletions.len() });
                self.health.held_deletions = report.held_deletions;
                self.events.emit(ShareEvent::Indexed { full, entries: report.entries, changed: report.changed });
                State::Idle
            }
            Err(e @ scan::ScanError::RootMissing(_)) => {
                warn!(error = %e, "share in error state; nothing will be deleted");
                self.schedule.finished(Scanned::RootMissing);
                State::Error(e.to_string())
            }
            Err(e) => {
                // A scan is idempotent: try again shortly (a transient disk or index error).
                warn!(error = %e, retry_in = ?RETRY_FAILED, "scan failed");
                if self.schedule.finished(Scanned::Failed) {
                    ctx.run_later(RETRY_FAILED, |act, ctx| act.start_scan(ctx));
                }
                State::Error(e.to_string())
            }
        };
        self.set_state(state);
        if self.schedule.take_again() {
            self.start_scan(ctx);
        }
    }

    /// Scans everything now (the filesystem is not watched, or the user asked).
    pub(super) fn full_scan(&mut self, ctx: &mut Context<Self>) {
        self.schedule.dirty = scan::Scope::Full;
        self.start_scan(ctx);
    }

    /// Looks at the root every [`ROOT_CHECK`] from now on.
    pub(super) fn check_root_every(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(ROOT_CHECK, |act, ctx| act.look_at_root(ctx));
    }

    /// Finishes what a crash, a stop or a missing disk left undone, then watches the tree
    /// (whose first event is a full scan). At start, and when a missing root is back.
    pub(super) fn open(&mut self, ctx: &mut Context<Self>) {
        self.set_state(State::Starting);
        let job = self.worker.run(reopen_job);
        ctx.spawn(job.into_actor(self).map(|joined, act, ctx| {
            match joined {
                Ok((id, resumed)) => {
                    act.schedule.root.id = id;
                    match resumed {
                        Ok(fetch) => act.fetch(fetch),
                        Err(e) => error!(error = %e, "cannot resume pending work"),
                    }
                }
                Err(e) => error!(error = %e, "cannot resume pending work"),
            }
            act.set_state(State::Idle);
            // The first scan starts when the watcher is ready (or has failed).
            if act.schedule.take_again() {
                act.start_scan(ctx);
            }
        }));
        self.watch(ctx);
    }

    /// Watches the tree with inotify (a watch already running is replaced: after a missing
    /// root came back, the old watches are on what went away). When the watch ends with
    /// the root still there (the watch limit, say), the tree is scanned whole every
    /// `full_scan_interval` instead; when the root went away, the scan puts the share in
    /// error and [`Share::look_at_root`] finds it when it is back.
    fn watch(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.schedule.watcher.take() {
            ctx.cancel_future(h);
        }
        self.schedule.unwatched = None;
        let watcher =
            crate::share::watch::watch(self.root.clone(), ctx.address().recipient(), self.own_renames.clone());
        let h = ctx.spawn(watcher.into_actor(self).map(|res, act, ctx| {
            act.schedule.watcher = None;
            if !scan::root_is_present(&act.root) {
                info!(root = %act.root.display(), "the share root went away: its watch ended");
                act.full_scan(ctx);
                return;
            }
            let why = match res {
                Ok(()) => "the watch ended".to_owned(),
                Err(e) => e.to_string(),
            };
            let every = act.runtime.full_scan_interval();
            warn!(root = %act.root.display(), reason = %why, ?every,
                "not watching for changes; scanning everything periodically instead");
            act.schedule.unwatched =
                Some(format!("{why}; changes are found by a full scan every {} s", every.as_secs()));
            act.full_scan(ctx);
            if act.schedule.periodic.is_none() {
                act.schedule.periodic = Some(ctx.run_interval(every, |act, ctx| act.full_scan(ctx)));
            }
        }));
        self.schedule.watcher = Some(h);
    }

    /// Looks whether the root is still there and still the directory the share was opened
    /// on (a stat, on the blocking pool), and acts on what [`RootWatch::looked`] decides.
    fn look_at_root(&mut self, ctx: &mut Context<Self>) {
        if self.schedule.root.looking {
            return;
        }
        self.schedule.root.looking = true;
        let root = self.root.clone();
        let look = tokio::task::spawn_blocking(move || scan::root_is_present(&root).then(|| root_id(&root)));
        ctx.spawn(look.into_actor(self).map(|looked, act, ctx| {
            act.schedule.root.looking = false;
            let Ok(now) = looked else { return };
            let scanning = matches!(act.state, State::Scanning | State::Starting);
            match act.schedule.root.looked(now, scanning) {
                RootAction::Keep => {}
                RootAction::Lost => {
                    info!(root = %act.root.display(), "the share root is gone (deleted or unmounted)");
                    act.full_scan(ctx);
                }
                RootAction::Reopen => {
                    info!(root = %act.root.display(), "the share root is back: opening it again");
                    act.open(ctx);
                }
            }
        }));
    }
}

impl Handler<FsChanged> for Share {
    type Result = ();

    fn handle(&mut self, FsChanged { scope, finishes }: FsChanged, ctx: &mut Context<Self>) {
        let (cancel, wait) = self.schedule.changed(scope, Instant::now(), finishes);
        if let Some(h) = cancel {
            ctx.cancel_future(h);
        }
        self.schedule.debounce = Some(ctx.run_later(wait, |act, ctx| {
            act.schedule.settled();
            act.start_scan(ctx);
        }));
    }
}

impl Handler<ScanCommitted> for Share {
    type Result = ();

    fn handle(&mut self, ScanCommitted(records): ScanCommitted, _: &mut Context<Self>) {
        self.announce_scanned(records);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(p: &str) -> scan::Scope {
        let mut s = scan::Scope::default();
        s.add(p.into(), false);
        s
    }

    #[test]
    fn a_read_only_scan_looks_again_at_the_known_local_changes() {
        use clearskies_protocol::path::SharePath;
        use std::collections::BTreeSet;
        let root = std::path::Path::new("/share");
        let paths = |ps: &[&str]| ps.iter().map(|p| SharePath::parse(p).unwrap()).collect::<BTreeSet<_>>();
        // Not known: everything.
        assert_eq!(read_only_scope(dir("/share/a"), root, None), scan::Scope::Full);
        // Known: what was named, and each known change as a name in its directory.
        let mut want = dir("/share/a");
        want.add_name("/share".into(), "top".into());
        want.add_name("/share/b/c".into(), "d".into());
        let known = paths(&["/", "/top", "/b/c/d"]);
        assert_eq!(read_only_scope(dir("/share/a"), root, Some(&known)), want);
        assert_eq!(read_only_scope(scan::Scope::default(), root, Some(&BTreeSet::new())), scan::Scope::default());
        // Changes in more directories than a scope holds: everything.
        let many: BTreeSet<_> =
            (0..=scan::MAX_DIRTY_DIRS).map(|i| SharePath::parse(&format!("/d{i}/f")).unwrap()).collect();
        assert_eq!(read_only_scope(scan::Scope::default(), root, Some(&many)), scan::Scope::Full);
    }

    #[test]
    fn events_wait_for_quiet_but_never_longer_than_the_maximum() {
        let t0 = Instant::now();
        let mut s = Scheduler::default();
        assert_eq!(s.changed(dir("a"), t0, false), (None, DEBOUNCE));
        s.debounce = Some(SpawnHandle::default());
        // Each event pushes the scan back by the quiet time...
        let (cancel, wait) = s.changed(dir("b"), t0 + Duration::from_millis(200), false);
        assert_eq!((cancel, wait), (Some(SpawnHandle::default()), DEBOUNCE));
        assert_eq!(s.changed(dir("c"), t0 + MAX_DEBOUNCE - Duration::from_millis(1), false).1, DEBOUNCE);
        // ...until the first of them has waited the maximum: then at once.
        assert_eq!(s.changed(dir("d"), t0 + MAX_DEBOUNCE, false).1, Duration::ZERO);
        assert_eq!(s.changed(dir("e"), t0 + 3 * MAX_DEBOUNCE, false).1, Duration::ZERO);
        // The scan that follows starts the count again.
        s.settled();
        assert!(!s.debouncing());
        let later = t0 + 10 * MAX_DEBOUNCE;
        assert_eq!(s.changed(dir("f"), later, false).1, DEBOUNCE);
    }

    #[test]
    fn an_isolated_change_is_scanned_at_once_and_a_storm_is_debounced() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = Scheduler::default();
        // A save after quiet: the file is created and written (wait for quiet), then closed
        // (scan almost at once).
        assert_eq!(s.changed(dir("a"), t0, false).1, DEBOUNCE);
        assert_eq!(s.changed(dir("a"), t0 + ms(1), true).1, QUICK);
        // Something else starts being written meanwhile: quiet again.
        assert_eq!(s.changed(dir("a"), t0 + ms(2), false).1, DEBOUNCE);
        assert_eq!(s.changed(dir("a"), t0 + ms(3), true).1, QUICK);
        s.settled();
        // More saves within the quiet time of the last event: a storm, debounced.
        assert_eq!(s.changed(dir("a"), t0 + ms(100), true).1, DEBOUNCE);
        s.settled();
        assert_eq!(s.changed(dir("a"), t0 + ms(300), true).1, DEBOUNCE, "only 200 ms after the last event");
        s.settled();
        // Quiet again for the whole debounce: the next save is quick.
        assert_eq!(s.changed(dir("a"), t0 + ms(550), true).1, QUICK);
        // And the maximum still holds within a quick batch.
        assert_eq!(s.changed(dir("a"), t0 + ms(550) + MAX_DEBOUNCE, true).1, Duration::ZERO);
    }

    #[test]
    fn a_scan_covers_every_event_since_the_last_one() {
        let mut s = Scheduler::default();
        let t0 = Instant::now();
        s.changed(dir("a"), t0, false);
        s.changed(dir("b"), t0, false);
        let mut both = dir("a");
        both.merge(dir("b"));
        assert_eq!(s.begin(&State::Idle), Some(both));
        assert_eq!(s.begin(&State::Idle), Some(scan::Scope::default()), "nothing new: an empty scope");
        s.changed(scan::Scope::Full, t0, false);
        s.changed(dir("c"), t0, false);
        assert_eq!(s.begin(&State::Error("x".into())), Some(scan::Scope::Full));
    }

    #[test]
    fn a_scan_asked_for_while_one_runs_follows_it_once() {
        let mut s = Scheduler::default();
        s.changed(dir("a"), Instant::now(), false);
        assert_eq!(s.begin(&State::Scanning), None);
        assert_eq!(s.begin(&State::Starting), None);
        assert!(s.take_again());
        assert!(!s.take_again(), "exactly one more scan");
        // What it was asked for is still to be scanned.
        assert_eq!(s.begin(&State::Idle), Some(dir("a")));
    }

    #[test]
    fn after_a_scan_what_is_scanned_next() {
        let mut s = Scheduler::default();
        assert!(!s.finished(Scanned::Done { held_deletions: 0 }));
        assert_eq!(s.dirty, scan::Scope::default());
        // Held deletions are found again by every scan, wherever events come from.
        assert!(!s.finished(Scanned::Done { held_deletions: 3 }));
        assert_eq!(s.dirty, scan::Scope::Full);
        let mut s = Scheduler::default();
        assert!(s.finished(Scanned::Failed), "a failed scan is tried again");
        assert_eq!(s.dirty, scan::Scope::Full);
        let mut s = Scheduler::default();
        assert!(!s.finished(Scanned::RootMissing), "a missing root waits for the root to be back");
        assert_eq!((s.dirty.clone(), s.root.lost), (scan::Scope::Full, true));
    }

    #[test]
    fn the_root_going_and_coming_back() {
        let (a, b) = (Some((1, 10)), Some((1, 11)));
        let mut r = RootWatch { id: a, lost: false, looking: false };
        assert_eq!(r.looked(Some(a), false), RootAction::Keep);
        // Gone: once, however often it is looked at.
        assert_eq!(r.looked(None, false), RootAction::Lost);
        assert_eq!(r.looked(None, false), RootAction::Keep);
        // Back while a scan runs: at the next look.
        assert_eq!(r.looked(Some(a), true), RootAction::Keep);
        assert_eq!(r.looked(Some(a), false), RootAction::Reopen);
        assert!(!r.lost);
        // Another directory at the path (a disk mounted again), never lost in between.
        assert_eq!(r.looked(Some(b), false), RootAction::Reopen);
        // (Its ID is taken when the share is opened again.)
        r.id = b;
        assert_eq!(r.looked(Some(b), false), RootAction::Keep);
    }
}
