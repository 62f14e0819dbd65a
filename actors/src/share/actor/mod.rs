//! The `Share` actor: owns one share's index and its sync with peers.
//!
//! Every blocking job (scan, applying peers' records, installing downloads, reading updates
//! for a peer) runs on the share's own worker thread, in order ([`super::worker`]). The actor
//! is split by concern, each piece owning its part of the state:
//!
//! - `schedule`: when to scan. The `Scheduler` decides (debounced filesystem events, a scan
//!   asked for while one runs queued as one more, what the next scan covers, the root gone
//!   or back); the actor runs the scans, the inotify watch (or periodic full scans without
//!   it) and the look at the root.
//! - `index_sender`: one `IndexSender` per subscriber (a peer connection of this share):
//!   how records go to it (plain, signed, encrypted), answering its `get_updates` in paced
//!   chunks, holding what is announced meanwhile, batching into messages.
//! - `incoming`: peers' records batched into one applier job, finished downloads installed,
//!   failed disk work retried; the contents it needs go to its [`Transfer`] actor.
//! - `untrusted`: what only untrusted peers need: encrypted records (ciphertext hashes) and
//!   backup challenges.
//! - `status`: `list_shares`' status, a pure function of a snapshot of the actor's state.
//! - `events`: the typed [`ShareEvent`] stream ([`SubscribeEvents`]).

mod events;
mod history;
mod incoming;
mod index_sender;
mod listing;
mod schedule;
mod status;
mod untrusted;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, MessageResult, Recipient, WrapFuture,
};
use clearskies_protocol::message::core::AccessLevel;
use clearskies_protocol::time::Timestamp;
use clearskies_protocol::{PeerId, RecordUuid};
use tracing::{debug, error, info, warn};

pub use events::{channel as event_channel, ShareEvent, EVENT_BACKLOG};

/// What a `Share` actor is connected to besides its index.
#[derive(Debug, Clone)]
pub struct Wiring {
    /// Told when the share's actor or its transfer actor panics.
    pub crashed: Recipient<Crashed>,
    /// The settings in effect.
    pub runtime: crate::config::Runtime,
    /// Where the share's events go (kept by the registry across restarts).
    pub events: tokio::sync::broadcast::Sender<ShareEvent>,
}
pub use schedule::{DEBOUNCE, MAX_DEBOUNCE, QUICK};

use self::events::Events;
use self::incoming::Queues;
use self::index_sender::{Form, IndexSender};
use self::schedule::Scheduler;
use self::status::Health;
use self::untrusted::Challenges;
use super::messages::{
    ConfirmDeletes, DiskFull, Downloaded, FromPeer, PeerDown, PeerUp, Rescan, ShareLink, StopShare, SubscribeEvents,
    SyncMessage,
};
use super::worker::{Exited, Worker};
use crate::control::cmd::Held;
use crate::supervise::{self, injected_panic, ActorKind, Crashed, InjectPanic};
use crate::transfer::messages::{SetTransfersPaused, TransferPeerDown, TransferPeerUp};
use crate::transfer::{Access, Transfer};
use clearskies_index::own_renames::OwnRenames;
use clearskies_index::{apply, beneath, filter, record, scan, store, versions};

#[derive(Debug, Clone, PartialEq)]
enum State {
    Starting,
    Scanning,
    Idle,
    Error(String),
}

/// How soon a failed scan or a failed store of peers' changes is tried again.
const RETRY_FAILED: Duration = Duration::from_secs(5);
/// How often a share's versions are pruned (besides after much was kept).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// What the worker thread owns.
#[derive(Debug)]
pub struct ShareState {
    root: PathBuf,
    store: store::ShareStore,
    me: PeerId,
    /// Selective sync, as the worker applies it.
    filter: filter::Filter,
    /// The same, for status queries (updated when the ignore file changes).
    shared_filter: Arc<Mutex<filter::Filter>>,
    /// Downloads renamed into place, for the watcher to skip their events.
    own_renames: Arc<OwnRenames>,
    /// We hold the share read-only.
    read_only: bool,
    /// The held deletions the user confirmed: a scan that finds only those gone records
    /// them (see [`scan::ScanContext::confirmed_deletions`]).
    confirmed_deletions: Option<std::collections::HashSet<clearskies_protocol::path::SharePath>>,
    /// A read-only share's local changes as its last scan found them (`None`: not known
    /// yet, or since a failed scan or a `revert`: the next scan is a full one).
    local_changes: Option<std::collections::BTreeSet<clearskies_protocol::path::SharePath>>,
    /// Our revision up to which scans' writes were handed out to be announced (`None`
    /// before the first scan).
    announced: Option<u64>,
    /// The settings in effect (`mass_delete_percent`, `versions_*`).
    runtime: crate::config::Runtime,
    /// This daemon's name (`device_name`, or the host name), in conflict copies.
    device: String,
    /// Versions are kept here (not on an untrusted peer: its files are ciphertext).
    versioned: bool,
    /// Bytes kept in the versions since they were last pruned, and when that was.
    kept_since_prune: u64,
    pruned_at: Option<std::time::Instant>,
}

impl ShareState {
    fn applier<'a>(&'a self, new_uuid: &'a mut dyn FnMut() -> RecordUuid) -> apply::Applier<'a> {
        let versions = self.versioned && self.runtime.versions().is_some();
        apply::Applier::new(&self.root, &self.store, self.me, now(), new_uuid)
            .with_filter(&self.filter)
            .with_own_renames(&self.own_renames)
            .with_versions(versions)
            .with_device(&self.device)
    }

    /// Prunes the versions (`versions_keep_days`, `versions_max_size`) when `force`d, an
    /// hour after the last time, or once a tenth of the size cap was kept since. Versioning
    /// turned off (0 days) prunes nothing: the versions kept stay until deleted by hand.
    fn prune_versions(&mut self, kept: u64, force: bool) {
        self.kept_since_prune += kept;
        let Some((keep, max)) = self.runtime.versions().filter(|_| self.versioned) else { return };
        let due = self.pruned_at.is_none_or(|t| t.elapsed() >= PRUNE_EVERY);
        let big = max > 0 && self.kept_since_prune > max / 10;
        if !(force || due || big) {
            return;
        }
        self.kept_since_prune = 0;
        self.pruned_at = Some(std::time::Instant::now());
        let keep = i64::try_from(keep.as_secs()).unwrap_or(i64::MAX);
        let pruned = beneath::Root::open(&self.root).and_then(|r| versions::prune(&r, keep, max, now().secs()));
        match pruned {
            Ok(p) if p.versions > 0 => {
                info!(root = %self.root.display(), versions = p.versions, bytes = p.bytes, "old versions removed");
            }
            Ok(_) => {}
            Err(e) => warn!(root = %self.root.display(), error = %e, "cannot prune the versions"),
        }
    }

    /// Reads `.clearskiesignore` again if it changed; whether it did.
    fn refresh_filter(&mut self) -> bool {
        if !self.filter.refresh() {
            return false;
        }
        *self.shared_filter.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = self.filter.clone();
        true
    }
}

/// Our records in `store` after revision `announced` (which moves to the latest): a scan's
/// and any that a scan which failed half-way had committed, in revision order; read only if
/// `want` (someone is connected to send them to, or subscribed to the events: a peer that
/// connects later asks with `get_updates`).
fn writes_since(
    store: &store::ShareStore,
    me: &PeerId,
    announced: &mut Option<u64>,
    want: bool,
) -> Result<Vec<record::Record>, store::StoreError> {
    let now = store.revision()?;
    let from = announced.replace(now).unwrap_or(now);
    if !want || now <= from {
        return Ok(Vec::new());
    }
    Ok(store.written_by(me, from + 1, now, usize::MAX)?.0)
}

/// One share.
#[derive(Debug)]
pub struct Share {
    root: PathBuf,
    mode: &'static str,
    /// The level we hold the share at.
    level: AccessLevel,
    /// Our peer ID in the share.
    me: PeerId,
    store: store::ShareStore,
    worker: Worker<ShareState>,
    /// The settings in effect (`full_scan_interval`).
    runtime: crate::config::Runtime,
    transfer: Addr<Transfer>,
    /// The share was joined from a peer: it is not in sync before one has caught us up.
    joined: bool,
    state: State,
    /// When to scan: debounce, watch, root.
    schedule: Scheduler,
    /// The subscribers (this share's peer connections), each with its index sending.
    senders: BTreeMap<u64, IndexSender>,
    /// Peers' records and downloads waiting for the worker.
    queues: Queues,
    /// Challenges sent to untrusted peers.
    challenges: Challenges,
    /// What status reports besides the state and the index.
    health: Health,
    /// Selective sync (ignored paths' pending records are not "out of sync").
    filter: Arc<Mutex<filter::Filter>>,
    /// Our downloads renamed into place (the worker notes them, the watcher skips their
    /// events).
    own_renames: Arc<OwnRenames>,
    events: Events,
}

impl Share {
    /// Starts the actor (and its worker thread and `Transfer` actor) for a share rooted at
    /// `root`, indexed in `store`, where we are `me`. `joined`: the share came from a peer
    /// (attach), rather than being created here. A panic in the share or its transfer actor
    /// reports [`Crashed`] (with `id`) to `wiring.crashed`. Also answers what resolves once the
    /// share's worker thread has ended after the actor is gone (a restart waits for it, so
    /// two threads never work on one share).
    pub fn spawn(
        config: &super::registry::ShareConfig,
        store: store::ShareStore,
        joined: bool,
        wiring: Wiring,
    ) -> std::io::Result<(Addr<Share>, Exited)> {
        let Wiring { crashed, runtime, events } = wiring;
        let (root, me, mode, id) = (config.path.clone(), config.peer_id, config.mode(), config.id);
        let level = config.access_level;
        let filter = filter::Filter::new(&root, &config.selection);
        let shared_filter = Arc::new(Mutex::new(filter.clone()));
        let own_renames = Arc::new(OwnRenames::default());
        let read_only = config.access_level != AccessLevel::ReadWrite;
        let state = ShareState {
            root: root.clone(),
            store: store.clone(),
            me,
            filter,
            shared_filter: shared_filter.clone(),
            own_renames: own_renames.clone(),
            read_only,
            confirmed_deletions: None,
            local_changes: None,
            announced: None,
            runtime: runtime.clone(),
            device: runtime.device_name(),
            versioned: level != AccessLevel::Untrusted,
            kept_since_prune: 0,
            pruned_at: None,
        };
        let worker = Worker::spawn(format!("share {}", root.display()), state)?;
        let exited = worker.exited();
        let on_share = Crashed { kind: ActorKind::Share, share: Some(id), conn: None };
        let on_transfer = Crashed { kind: ActorKind::Transfer, share: Some(id), conn: None };
        let to = crashed.clone();
        let addr = supervise::create(
            move |ctx| Share {
                transfer: supervise::start(
                    Transfer::new(
                        root.clone(),
                        store.clone(),
                        ctx.address().recipient(),
                        ctx.address().recipient(),
                        runtime.clone(),
                    ),
                    to,
                    on_transfer,
                ),
                root,
                mode,
                level,
                me,
                store,
                worker,
                runtime,
                joined,
                state: State::Starting,
                schedule: Scheduler::default(),
                senders: BTreeMap::new(),
                queues: Queues::new(),
                challenges: Challenges::default(),
                health: Health::default(),
                filter: shared_filter,
                own_renames,
                events: Events::new(events),
            },
            crashed,
            on_share,
        );
        Ok((addr, exited))
    }

    /// Moves to `state`, and tells subscribers if the share entered or left the error state.
    fn set_state(&mut self, state: State) {
        self.state = state;
        self.note_health();
    }

    pub(super) fn root(&self) -> &std::path::Path {
        &self.root
    }

    pub(super) fn store(&self) -> &store::ShareStore {
        &self.store
    }

    pub(super) fn transfer(&self) -> &Addr<Transfer> {
        &self.transfer
    }
}

fn new_uuid() -> RecordUuid {
    let mut b = [0u8; 16];
    // The OS RNG failing is unrecoverable for a process that makes keys; fall back to
    // time-derived bits only so work can complete (UUIDs need uniqueness, not secrecy).
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        b = t.as_nanos().to_le_bytes();
    }
    RecordUuid(b)
}

/// Scans `scope`; `committed` is called whenever the scan has committed records of ours
/// (see [`scan::ScanContext::committed`]).
fn run_scan(
    s: &mut ShareState,
    scope: &scan::Scope,
    mut committed: Option<&mut dyn FnMut()>,
) -> Result<scan::ScanReport, scan::ScanError> {
    let mut uuid = new_uuid;
    // (A closure of this frame: the context's borrows all end here.)
    let mut tell = || {
        if let Some(c) = committed.as_mut() {
            c();
        }
    };
    let limit = s.runtime.mass_delete_percent();
    let delete_limit = (limit < 100).then_some(limit);
    let confirmed = s.confirmed_deletions.take();
    let mut ctx = scan::ScanContext {
        me: s.me,
        now: now(),
        new_uuid: &mut uuid,
        filter: Some(&s.filter),
        read_only: s.read_only,
        delete_limit,
        confirmed_deletions: confirmed.as_ref(),
        device: &s.device,
        committed: Some(&mut tell),
        hashers: s.runtime.scan_hashers(),
    };
    let report = scan::scan(&s.root, &s.store, &mut ctx, scope);
    // Kept until a scan uses it (whichever scope), or the user confirms anew.
    if !report.as_ref().is_ok_and(|r| r.used_confirmation) {
        s.confirmed_deletions = s.confirmed_deletions.take().or(confirmed);
    }
    report
}

/// The current wall-clock time as a protocol timestamp.
pub fn now() -> Timestamp {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp::new(i64::try_from(d.as_secs()).unwrap_or(0), d.subsec_nanos()).unwrap_or_default()
}

impl Actor for Share {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // A share (re)started has had no peer for no time yet.
        let started = u64::try_from(now().secs()).unwrap_or(0);
        self.health.peer_seen = started;
        // The last time a peer was here before this start, if it was kept.
        let seen = self.worker.run(|s: &mut ShareState| status::read_peer_seen(&s.root));
        ctx.spawn(seen.into_actor(self).map(move |seen, act, _| {
            if let Ok(Some(t)) = seen {
                if act.senders.is_empty() && t <= started {
                    act.health.peer_seen = t;
                }
            }
        }));
        self.open(ctx);
        self.check_root_every(ctx);
        ctx.run_interval(PRUNE_EVERY, |act, ctx| {
            let connected = !act.senders.is_empty();
            let job = act.worker.run(move |s: &mut ShareState| {
                s.prune_versions(0, false);
                if connected {
                    status::write_peer_seen(&s.root, u64::try_from(now().secs()).unwrap_or(0));
                }
            });
            ctx.spawn(job.into_actor(act).map(|_, _, _| ()));
        });
    }
}

impl Handler<ConfirmDeletes> for Share {
    type Result = actix::ResponseActFuture<Self, Held>;

    fn handle(&mut self, msg: ConfirmDeletes, _: &mut Context<Self>) -> Self::Result {
        let held = &self.health.held_deletions;
        let answer = Held {
            held: held.len(),
            paths: held.iter().take(Held::MAX_LISTED).map(|p| p.as_str().to_owned()).collect(),
            dry_run: msg.dry_run,
        };
        if msg.dry_run {
            return Box::pin(actix::fut::ready(answer));
        }
        let confirmed: std::collections::HashSet<_> = held.iter().cloned().collect();
        let count = confirmed.len();
        let job = self.worker.run(move |s: &mut ShareState| s.confirmed_deletions = Some(confirmed));
        Box::pin(job.into_actor(self).map(move |_, act, ctx| {
            info!(root = %act.root.display(), held = count, "deletions confirmed");
            act.full_scan(ctx);
            answer
        }))
    }
}

impl Handler<Rescan> for Share {
    type Result = ();

    fn handle(&mut self, _: Rescan, ctx: &mut Context<Self>) {
        self.full_scan(ctx);
    }
}

impl Handler<StopShare> for Share {
    type Result = ();

    fn handle(&mut self, _: StopShare, ctx: &mut Context<Self>) {
        for sub in self.senders.values() {
            sub.out().do_send(crate::peer::messages::PeerOut::Close("the share was removed".into()));
        }
        ctx.stop();
    }
}

impl Handler<SubscribeEvents> for Share {
    type Result = MessageResult<SubscribeEvents>;

    fn handle(&mut self, _: SubscribeEvents, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.events.subscribe())
    }
}

impl Handler<PeerUp> for Share {
    type Result = MessageResult<PeerUp>;

    fn handle(&mut self, msg: PeerUp, ctx: &mut Context<Self>) -> Self::Result {
        let transfer = self.transfer.clone();
        // What the connection may be served, decided here once for the transfers and the
        // records alike.
        let access = Access::of(self.level, msg.crypt, msg.rsync);
        let form = Form::of(&access, msg.signed, msg.sign);
        let refine = msg.refine && access.rsync();
        transfer.do_send(TransferPeerUp { conn: msg.conn, out: msg.out.clone(), access, refine, gzip: msg.gzip });
        // Subscribe to the peer's changes: everything newer than what we hold.
        let since = self.store.since().unwrap_or_default();
        let get = clearskies_protocol::message::database::GetUpdates { since };
        msg.out.do_send(crate::peer::messages::PeerOut::Send(vec![get.into()]));
        self.senders.insert(msg.conn, IndexSender::new(msg.out, form, msg.peer));
        debug!(root = %self.root.display(), peer = %msg.peer, conn = msg.conn, "peer subscribed");
        MessageResult(ShareLink {
            sync: ctx.address().recipient(),
            get: transfer.clone().recipient(),
            verify_file: transfer.clone().recipient(),
            data: transfer.clone().recipient(),
            missing: transfer.recipient(),
            down: ctx.address().recipient(),
            verify: None,
            crypt: None,
        })
    }
}

impl Handler<PeerDown> for Share {
    type Result = ();

    fn handle(&mut self, msg: PeerDown, ctx: &mut Context<Self>) {
        if self.senders.remove(&msg.conn).is_some() {
            // The last moment a peer was here: `peers_gone_after` counts from it, also
            // after a restart.
            let t = u64::try_from(now().secs()).unwrap_or(0);
            self.health.peer_seen = t;
            let job = self.worker.run(move |s: &mut ShareState| status::write_peer_seen(&s.root, t));
            ctx.spawn(job.into_actor(self).map(|_, _, _| ()));
        }
        self.transfer.do_send(TransferPeerDown { conn: msg.conn });
    }
}

impl Handler<FromPeer> for Share {
    /// Resolves once the message is taken in: for an update that finds the queue of records
    /// to apply full, only after the next batch is applied. The connection waits for that
    /// before reading on, so a flood of updates is held in the peer's socket, not here.
    type Result = actix::ResponseFuture<()>;

    fn handle(&mut self, msg: FromPeer, ctx: &mut Context<Self>) -> Self::Result {
        match msg.what {
            SyncMessage::GetUpdates(since) => self.answer_get_updates(msg.conn, since, ctx),
            SyncMessage::Update(r) => return self.take_update(msg.conn, *r, ctx),
            SyncMessage::VerifyResult(r) => self.challenges.answer(msg.conn, &r),
            SyncMessage::Cipher { plain, cipher } => {
                if let Err(e) = self.store.put_cipher(&plain, &cipher) {
                    warn!(error = %e, "cannot remember a ciphertext hash");
                }
            }
            SyncMessage::UpdatesDone => {
                if let Some(sub) = self.senders.get_mut(&msg.conn) {
                    sub.caught_up = true;
                }
            }
        }
        Box::pin(async {})
    }
}

impl Handler<InjectPanic> for Share {
    type Result = ();

    fn handle(&mut self, msg: InjectPanic, _: &mut Context<Self>) {
        match msg.0 {
            ActorKind::Transfer => self.transfer.do_send(msg),
            kind => injected_panic(kind),
        }
    }
}

impl Handler<SetTransfersPaused> for Share {
    type Result = ();

    fn handle(&mut self, msg: SetTransfersPaused, _: &mut Context<Self>) {
        self.health.paused = msg.0;
        self.transfer.do_send(msg);
    }
}

impl Handler<DiskFull> for Share {
    type Result = ();

    fn handle(&mut self, DiskFull(why): DiskFull, _: &mut Context<Self>) {
        match &why {
            Some(e) => error!(root = %self.root.display(), error = %e, "downloads fail: the disk is full"),
            None => info!(root = %self.root.display(), "downloads succeed again"),
        }
        self.health.disk_full = why;
        self.note_health();
    }
}

impl Handler<Downloaded> for Share {
    type Result = ();

    fn handle(&mut self, msg: Downloaded, ctx: &mut Context<Self>) {
        self.take_download(apply::Download { sha256: msg.sha256, temp: msg.temp, unsynced: msg.unsynced }, ctx);
    }
}

#[cfg(test)]
mod tests;
