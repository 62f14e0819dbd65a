//! The share's status as `list_shares`, `status`, `/health` and `/metrics` see it: a
//! [`Snapshot`] of the actor's state taken at the query, the index's stored totals read on
//! the blocking pool, and [`build`], a pure function of the two. [`error_now`] is the same
//! decision for the error events, from what the actor alone knows.

use std::collections::HashMap;
use std::path::Path;

use actix::{ActorFutureExt, Context, Handler, WrapFuture};

use super::{Share, State};
use crate::control::cmd::Mode;
use crate::share::messages::{GetShareStatus, ShareStatus, SyncState};
use clearskies_index::{filter, fsops, store};
use clearskies_protocol::path::META_DIR;

/// What the share's status reflects besides its state and the index: found by scans, told
/// by the transfer actor, and remembered across status queries.
#[derive(Debug, Default)]
pub(super) struct Health {
    /// Read-only shares: paths changed here that are not (and will not be) synced.
    pub(super) local_changes: usize,
    /// Local deletions the last scan held back (too many at once), deepest first.
    pub(super) held_deletions: Vec<clearskies_protocol::path::SharePath>,
    /// Downloads fail because the disk is full (why).
    pub(super) disk_full: Option<String>,
    /// Transfers are paused.
    pub(super) paused: bool,
    /// Unix time since which every status query found the share in sync (`None`: not now).
    in_sync_since: Option<u64>,
    /// Unix time a status query last found the share in sync.
    last_synced: Option<u64>,
    /// Unix time a peer was last seen connected (or the share started).
    pub(super) peer_seen: u64,
}

impl Health {
    /// A status query at `now` (Unix time) found the share `synced` or not: answers
    /// `in_sync_since` and `last_synced`.
    fn observe(&mut self, synced: bool, now: u64) -> (Option<u64>, Option<u64>) {
        if synced {
            self.in_sync_since.get_or_insert(now);
            self.last_synced = Some(now);
        } else {
            self.in_sync_since = None;
        }
        (self.in_sync_since, self.last_synced)
    }

    /// A status query at `now` found `peers` connected: since when the share has had none,
    /// if that is `gone_after` seconds or more (`None` when that is off).
    pub(super) fn alone(&mut self, peers: usize, now: u64, gone_after: Option<u64>) -> Option<u64> {
        if peers > 0 {
            self.peer_seen = now;
        }
        let after = gone_after?;
        (peers == 0 && now.saturating_sub(self.peer_seen) >= after).then_some(self.peer_seen)
    }
}

/// The actor's state as a status query needs it.
#[derive(Debug, Clone)]
pub(super) struct Snapshot {
    pub(super) state: State,
    pub(super) disk_full: Option<String>,
    pub(super) paused: bool,
    /// The share was joined from a peer: not in sync before one caught us up.
    pub(super) joined: bool,
    /// Records or downloads wait to be applied, or a debounced scan to start.
    pub(super) busy: bool,
    /// Every connected peer has sent everything it has.
    pub(super) peers_caught_up: bool,
    pub(super) peers: usize,
    pub(super) path: String,
    pub(super) mode: Mode,
    pub(super) local_changes: u64,
    pub(super) held_deletions: u64,
    pub(super) unwatched: Option<String>,
}

/// The index's totals and our revision, or why they could not be read.
pub(super) type Counted = Result<(store::Totals, u64), String>;

/// Why the share is in error, as far as the actor knows (a status adds failures to read the
/// index): `Some(Some(why))` in error, `Some(None)` not, `None` undecided (starting or
/// scanning, with no deletions held). A full disk counts once the share is idle; a failed
/// scan's error comes before held deletions.
pub(super) fn error_now(
    state: &State,
    disk_full: Option<&str>,
    held_deletions: u64,
    path: &str,
) -> Option<Option<String>> {
    match state {
        State::Error(e) => Some(Some(e.clone())),
        State::Idle if disk_full.is_some() => Some(disk_full.map(str::to_owned)),
        _ if held_deletions > 0 => Some(Some(held_message(held_deletions, path))),
        State::Idle => Some(None),
        State::Starting | State::Scanning => None,
    }
}

fn held_message(held_deletions: u64, path: &str) -> String {
    format!(
        "{held_deletions} files and directories were deleted here at once, more than mass_delete_percent allows: \
         the deletions are held and peers keep their copies. If that was intended, run `clearskies \
         confirm-deletes {path}`; otherwise restore the files"
    )
}

/// Where the last time a peer was connected is kept across restarts (in the marker
/// directory), so that `peers_gone_after` counts from it, not from the daemon's start.
const PEER_SEEN_FILE: &str = "peer-seen";

/// The Unix time [`write_peer_seen`] kept for the share at `root`, if any.
pub(super) fn read_peer_seen(root: &Path) -> Option<u64> {
    use std::io::Read;
    let meta = clearskies_index::beneath::Root::open(root).ok()?.root_dir().subdir(META_DIR).ok()?;
    let mut text = String::new();
    meta.open_file(PEER_SEEN_FILE, false).ok()?.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// Keeps `t` as the last time a peer was connected to the share at `root` (written aside
/// and renamed in; losing it to a crash only makes the count start later).
pub(super) fn write_peer_seen(root: &Path, t: u64) {
    use std::io::Write;
    let done = clearskies_index::beneath::Root::open(root).and_then(|r| {
        let meta = r.root_dir().subdir(META_DIR)?;
        let temp = format!(".{PEER_SEEN_FILE}.tmp");
        meta.create_file(&temp, 0o600, true)?.write_all(t.to_string().as_bytes())?;
        meta.rename(&temp, &meta, PEER_SEEN_FILE)
    });
    if let Err(e) = done {
        tracing::debug!(root = %root.display(), error = %e, "cannot note when a peer was last connected");
    }
}

/// The status `s` and the index's totals make (`in_sync_since` and `last_synced` are left
/// to the actor, which remembers them; `partial_bytes` to the count on the blocking pool).
pub(super) fn build(s: Snapshot, counted: Counted) -> ShareStatus {
    let ((c, revision), failed) = match counted {
        Ok(c) => (c, None),
        Err(e) => ((store::Totals::default(), 0), Some(e)),
    };
    let (status, error) = match (failed, error_now(&s.state, s.disk_full.as_deref(), s.held_deletions, &s.path)) {
        (Some(e), _) | (None, Some(Some(e))) => (SyncState::Error, Some(e)),
        _ => match &s.state {
            State::Starting | State::Scanning => (SyncState::Scanning, None),
            State::Idle if s.paused && c.pending_files > 0 => (SyncState::Paused, None),
            State::Idle if s.busy || c.pending_files > 0 => (SyncState::Syncing, None),
            State::Idle => (SyncState::Idle, None),
            State::Error(e) => (SyncState::Error, Some(e.clone())),
        },
    };
    let synced = status == SyncState::Idle && s.peers_caught_up && (!s.joined || s.peers > 0);
    ShareStatus {
        path: s.path,
        status,
        error,
        mode: s.mode,
        files: c.files,
        directories: c.directories,
        bytes: c.bytes,
        revision,
        synced,
        pending_files: c.pending_files,
        pending_bytes: c.pending_bytes,
        partial_bytes: None,
        selection: Default::default(),
        peers: s.peers,
        local_changes: s.local_changes,
        held_deletions: s.held_deletions,
        unwatched: s.unwatched,
        alone_since: None,
        id: String::new(),
        peer_id: String::new(),
        in_sync_since: None,
        last_synced: None,
    }
}

/// What `list_shares` reports from the index: the stored totals (no scan of the records),
/// our revision, and how many of the pending bytes partial downloads already hold.
fn count(
    store: &store::ShareStore,
    filter: &filter::Filter,
    root: &Path,
) -> Result<((store::Totals, u64), u64), store::StoreError> {
    let mut totals = store.totals()?;
    let partials = partial_files(root);
    let mut partial = 0u64;
    let mut seen = std::collections::HashSet::new();
    // Peers' files this replica ignores wait forever by design: they are not on this disk
    // and not out of sync.
    for (sha, p) in store.all_waiting()? {
        if filter.ignores(&p, false) {
            let size = store.get(&p)?.and_then(|r| r.size).unwrap_or(0);
            totals.files = totals.files.saturating_sub(1);
            totals.bytes = totals.bytes.saturating_sub(size);
            totals.pending_files = totals.pending_files.saturating_sub(1);
            totals.pending_bytes = totals.pending_bytes.saturating_sub(size);
        } else if let Some(&len) = partials.get(&sha.to_string()) {
            // One download serves every path wanting the same contents: counted once.
            if seen.insert(sha) {
                let size = store.get(&p)?.and_then(|r| r.size).unwrap_or(0);
                partial = partial.saturating_add(len.min(size));
            }
        }
    }
    Ok(((totals, store.revision().unwrap_or(0)), partial.min(totals.pending_bytes)))
}

/// The partial downloads under `root` (`partial/<shard>/<sha256>`, see
/// [`fsops::partial_path`]) and their sizes, by name: a directory listing and a stat per
/// download under way, cheap enough for `wait`'s polling. Nothing is followed through a
/// symbolic link below the partial directory; what cannot be read counts as absent.
fn partial_files(root: &Path) -> HashMap<String, u64> {
    let mut found = HashMap::new();
    let Ok(shards) = std::fs::read_dir(fsops::partial_dir(root)) else { return found };
    for shard in shards.flatten() {
        if !shard.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(files) = std::fs::read_dir(shard.path()) else { continue };
        for file in files.flatten() {
            // `DirEntry::metadata` does not follow a symbolic link.
            let (Ok(meta), Ok(name)) = (file.metadata(), file.file_name().into_string()) else { continue };
            if meta.is_file() {
                found.insert(name, meta.len());
            }
        }
    }
    found
}

impl Share {
    /// The state a status query needs, taken now.
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            state: self.state.clone(),
            disk_full: self.health.disk_full.clone(),
            paused: self.health.paused,
            joined: self.joined,
            busy: self.queues.busy() || self.schedule.debouncing(),
            peers_caught_up: self.senders.values().all(|s| s.caught_up),
            peers: self.senders.len(),
            path: self.root.display().to_string(),
            mode: Mode::from_name(self.mode),
            local_changes: self.health.local_changes as u64,
            held_deletions: self.health.held_deletions.len() as u64,
            unwatched: self.schedule.unwatched.clone(),
        }
    }

    /// Sends the error events the share's state calls for (see [`error_now`]).
    pub(super) fn note_health(&mut self) {
        let path = self.root.display().to_string();
        let held = self.health.held_deletions.len() as u64;
        if let Some(error) = error_now(&self.state, self.health.disk_full.as_deref(), held, &path) {
            self.events.error(error);
        }
    }
}

impl Handler<GetShareStatus> for Share {
    /// The stored totals are read on the blocking pool (RocksDB reads may touch the disk),
    /// not on the event loop, and not behind a scan on the worker thread: `wait` polls this.
    type Result = actix::ResponseActFuture<Self, ShareStatus>;

    fn handle(&mut self, _: GetShareStatus, _: &mut Context<Self>) -> Self::Result {
        let snapshot = self.snapshot();
        let store = self.store.clone();
        let filter = self.filter.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let root = self.root.clone();
        let status = async move {
            let counted = tokio::task::spawn_blocking(move || count(&store, &filter, &root))
                .await
                .unwrap_or_else(|e| Err(store::StoreError::Corrupt(format!("counting failed: {e}"))));
            let partial = counted.as_ref().map_or(0, |(_, partial)| *partial);
            let mut status = build(snapshot, counted.map(|(c, _)| c).map_err(|e| e.to_string()));
            status.partial_bytes = (partial > 0).then_some(partial);
            status
        };
        Box::pin(status.into_actor(self).map(|mut status, act, _| {
            let now = u64::try_from(super::now().secs()).unwrap_or(0);
            (status.in_sync_since, status.last_synced) = act.health.observe(status.synced, now);
            status.alone_since = act.health.alone(status.peers, now, act.runtime.peers_gone_after());
            status
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle() -> Snapshot {
        Snapshot {
            state: State::Idle,
            disk_full: None,
            paused: false,
            joined: false,
            busy: false,
            peers_caught_up: true,
            peers: 0,
            path: "/s".into(),
            mode: Mode::ReadWrite,
            local_changes: 0,
            held_deletions: 0,
            unwatched: None,
        }
    }

    fn totals(pending_files: u64) -> Counted {
        Ok((store::Totals { files: 3, pending_files, ..Default::default() }, 7))
    }

    fn status_of(s: Snapshot, c: Counted) -> (&'static str, Option<String>, bool) {
        let st = build(s, c);
        (st.status.as_str(), st.error, st.synced)
    }

    #[test]
    fn an_idle_share_with_nothing_pending_is_synced() {
        let st = build(idle(), totals(0));
        assert_eq!((st.status, st.synced, st.files, st.revision), (SyncState::Idle, true, 3, 7));
        // A joined share needs a peer to have caught it up.
        assert_eq!(status_of(Snapshot { joined: true, ..idle() }, totals(0)), ("idle", None, false));
        let caught_up = Snapshot { joined: true, peers: 1, ..idle() };
        assert_eq!(status_of(caught_up, totals(0)), ("idle", None, true));
        let behind = Snapshot { peers: 1, peers_caught_up: false, ..idle() };
        assert_eq!(status_of(behind, totals(0)), ("idle", None, false));
    }

    #[test]
    fn work_in_flight_is_syncing_or_paused() {
        assert_eq!(status_of(idle(), totals(2)), ("syncing", None, false));
        assert_eq!(status_of(Snapshot { busy: true, ..idle() }, totals(0)), ("syncing", None, false));
        assert_eq!(status_of(Snapshot { paused: true, ..idle() }, totals(2)), ("paused", None, false));
        assert_eq!(status_of(Snapshot { paused: true, ..idle() }, totals(0)), ("idle", None, true));
        let scanning = Snapshot { state: State::Scanning, ..idle() };
        assert_eq!(status_of(scanning, totals(0)), ("scanning", None, false));
    }

    #[test]
    fn errors_in_their_order() {
        // The index failing to count comes first.
        let held = Snapshot { state: State::Error("scan".into()), held_deletions: 20, ..idle() };
        assert_eq!(status_of(held.clone(), Err("db".into())), ("error", Some("db".into()), false));
        // Then the state's error, before held deletions.
        assert_eq!(status_of(held, totals(0)), ("error", Some("scan".into()), false));
        // A full disk only once idle.
        let full = Snapshot { disk_full: Some("no space".into()), ..idle() };
        assert_eq!(status_of(full.clone(), totals(0)), ("error", Some("no space".into()), false));
        let scanning = Snapshot { state: State::Scanning, ..full };
        assert_eq!(status_of(scanning.clone(), totals(0)), ("scanning", None, false));
        // Held deletions, even while scanning, with what to do about them.
        let (status, error, _) = status_of(Snapshot { held_deletions: 12, ..scanning }, totals(0));
        assert_eq!(status, "error");
        assert!(error.unwrap().starts_with("12 files and directories were deleted here at once"));
        let (_, error, _) = status_of(Snapshot { held_deletions: 12, ..idle() }, totals(0));
        assert!(error.unwrap().contains("clearskies confirm-deletes /s"));
    }

    #[test]
    fn the_error_events_follow_the_status() {
        assert_eq!(error_now(&State::Starting, None, 0, "/s"), None);
        assert_eq!(error_now(&State::Scanning, Some("full"), 0, "/s"), None);
        assert_eq!(error_now(&State::Idle, None, 0, "/s"), Some(None));
        assert_eq!(error_now(&State::Idle, Some("full"), 0, "/s"), Some(Some("full".into())));
        assert_eq!(error_now(&State::Error("gone".into()), None, 5, "/s"), Some(Some("gone".into())));
        assert!(error_now(&State::Scanning, None, 5, "/s").unwrap().unwrap().starts_with("5 files"));
    }

    #[test]
    fn in_sync_since_holds_while_every_query_finds_it_in_sync() {
        let mut h = Health::default();
        assert_eq!(h.observe(false, 10), (None, None));
        assert_eq!(h.observe(true, 20), (Some(20), Some(20)));
        assert_eq!(h.observe(true, 30), (Some(20), Some(30)));
        assert_eq!(h.observe(false, 40), (None, Some(30)));
        assert_eq!(h.observe(true, 50), (Some(50), Some(50)));
    }
}
