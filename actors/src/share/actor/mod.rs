//! The `Share` actor: owns one share's index and its sync with peers.
//!
//! Every blocking job (scan, applying peers' records, installing downloads, reading updates
//! for a peer) runs on the share's own worker thread, in order ([`super::worker`]). The actor
//! keeps the subscribers (peer connections of this share), batches incoming records so a
//! burst of updates costs one synced write, announces changes, and hands the contents it
//! needs to its [`Transfer`] actor.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, MessageResult, Recipient, SpawnHandle,
    WrapFuture,
};
use clearskies_protocol::message::database::UpdatesDone;
use clearskies_protocol::message::Message;
use clearskies_protocol::time::Timestamp;
use clearskies_protocol::{PeerId, RecordUuid, Sha256Hash, UntrustedFileId};
use tracing::{debug, error, info, warn};

use super::apply::{Applier, Outcome};
use super::filter::Filter;
use super::messages::{
    BackupCheck, ConfirmDeletes, DiskFull, Downloaded, FromPeer, FsChanged, GetShareStatus, PeerDown, PeerUp, Rescan,
    ShareLink, ShareStatus, StopShare, SyncMessage, VerifyBackup,
};
use super::record::Record;
use super::scan::{scan, ScanContext, ScanError, Scope};
use super::store::ShareStore;
use super::worker::{Exited, Worker};
use crate::metrics::metrics;
use crate::peer::messages::PeerOut;
use crate::supervise::{self, injected_panic, ActorKind, Crashed, InjectPanic};
use crate::transfer::messages::{Fetches, SetTransfersPaused, TransferPeerDown, TransferPeerUp};
use crate::transfer::{Access, Transfer};

#[derive(Debug, Clone, PartialEq)]
enum State {
    Starting,
    Scanning,
    Idle,
    Error(String),
}

/// Quiet time after the last filesystem event before scanning.
pub const DEBOUNCE: Duration = Duration::from_millis(250);
/// Longest a steady stream of events can delay a scan.
pub const MAX_DEBOUNCE: Duration = Duration::from_secs(2);
/// How long after failed disk work (e.g. a non-empty directory where a file goes) all
/// pending work is tried again.
const RETRY_PENDING: Duration = Duration::from_secs(30);
/// How soon a failed scan or a failed store of peers' changes is tried again.
const RETRY_FAILED: Duration = Duration::from_secs(5);
/// How often the share root is looked at: still there, still the same directory? (An
/// unmounted bind mount, as Docker volumes are, sends no inotify event.)
const ROOT_CHECK: Duration = Duration::from_secs(2);
/// Peers' records waiting to be applied before senders are made to wait.
const MAX_INCOMING: usize = 20_000;
/// Records per chunk of a `get_updates` answer: a peer catching up on a million records
/// never has them all in memory at once.
const ANSWER_CHUNK: usize = 4096;
/// Updates per message batch handed to a connection.
const SEND_BATCH: usize = 512;

/// What the worker thread owns.
#[derive(Debug)]
pub struct ShareState {
    root: PathBuf,
    store: ShareStore,
    me: PeerId,
    /// Selective sync, as the worker applies it.
    filter: Filter,
    /// The same, for status queries (updated when the ignore file changes).
    shared_filter: Arc<Mutex<Filter>>,
    /// We hold the share read-only.
    read_only: bool,
    /// The user confirmed held deletions: the next scan records them.
    deletes_confirmed: bool,
    /// Our revision up to which scans' writes were handed out to be announced (`None`
    /// before the first scan).
    announced: Option<u64>,
}

impl ShareState {
    fn applier<'a>(&'a self, new_uuid: &'a mut dyn FnMut() -> RecordUuid) -> Applier<'a> {
        Applier::new(&self.root, &self.store, self.me, now(), new_uuid).with_filter(&self.filter)
    }

    /// Reads `.clearskiesignore` again if it changed; whether it did.
    fn refresh_filter(&mut self) -> bool {
        if !self.filter.refresh() {
            return false;
        }
        *self.shared_filter.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = self.filter.clone();
        true
    }

    /// Our records written since the last call (this scan's, and any that a scan which
    /// failed half-way had committed), in revision order; read only if `want` (someone is
    /// connected to send them to: a peer that connects later asks with `get_updates`).
    fn new_writes(&mut self, want: bool) -> Result<Vec<Record>, super::store::StoreError> {
        let now = self.store.revision()?;
        let from = self.announced.replace(now).unwrap_or(now);
        if !want || now <= from {
            return Ok(Vec::new());
        }
        Ok(self.store.written_by(&self.me, from + 1, now, usize::MAX)?.0)
    }
}

#[derive(Debug)]
struct Subscriber {
    out: Recipient<PeerOut>,
    /// The peer has sent everything our `get_updates` asked for.
    caught_up: bool,
    /// How records go to it.
    form: Form,
    /// Its peer ID.
    peer: PeerId,
}

/// How records go to one connection: decided once, from the connection's [`Access`] (an
/// untrusted peer gets records only encrypted, or none at all).
#[derive(Debug, Clone)]
enum Form {
    /// Plain messages (both sides read-write).
    Plain,
    /// Signed bodies (a read-only peer on the connection, or we are one): relayed as they
    /// arrived or as we signed them before, or signed now with the read-write key (on
    /// read-write shares).
    Signed(Option<Arc<super::rsa::SigningKey>>),
    /// Encrypted and signed: an untrusted peer, and we hold the plaintext.
    Encrypted(Arc<super::untrusted::UntrustedKeys>, Arc<super::rsa::SigningKey>),
    /// Nothing: an untrusted peer we cannot sign for (never anything in the clear).
    Nothing,
}

impl Form {
    fn of(access: &Access, signed: bool, sign: Option<Arc<super::rsa::SigningKey>>) -> Form {
        match (access.crypt(), sign) {
            (Some(keys), Some(sign)) => Form::Encrypted(keys.clone(), sign),
            (Some(_), None) => Form::Nothing,
            (None, sign) if signed => Form::Signed(sign),
            (None, _) => Form::Plain,
        }
    }
}

/// `database.update`s ready for one connection.
#[derive(Debug)]
enum Updates {
    /// Plain messages (both sides read-write).
    Plain(Vec<Message>),
    /// Signed bodies (a read-only or untrusted peer on the connection).
    Signed(Vec<super::record::Signed>),
}

impl Subscriber {
    fn send_to(out: &Recipient<PeerOut>, updates: Updates) {
        match updates {
            Updates::Plain(msgs) => {
                for chunk in msgs.chunks(SEND_BATCH) {
                    out.do_send(PeerOut::Send(chunk.to_vec()));
                }
            }
            Updates::Signed(signed) => {
                for chunk in signed.chunks(SEND_BATCH) {
                    out.do_send(PeerOut::SendSigned(chunk.to_vec()));
                }
            }
        }
    }
}

/// Records as a connection gets them, and the records whose signature was made for that
/// (to keep with them, see [`keep_signatures`]).
type Prepared = (Updates, Vec<Record>);

/// `records` as `form` sends them: plain, signed, or encrypted and signed. A signature kept
/// with the record for its version (the one it arrived in, or one we made before) is used
/// again; others are made now. A record with neither a valid stored signature nor a key to
/// sign with is left out (a read-only share never sends its own changes). Encrypting reads
/// a file's contents the first time (`s`: the worker's state), to learn the ciphertext
/// hash; without it (`None`), or while a file's contents are not here, it is left out.
fn prepare<'a>(s: Option<&ShareState>, records: impl Iterator<Item = &'a Record>, form: &Form) -> Prepared {
    let mut fresh = Vec::new();
    let updates = match form {
        Form::Plain => Updates::Plain(records.map(|r| Message::from(r.to_update())).collect()),
        Form::Nothing => Updates::Signed(Vec::new()),
        Form::Signed(key) => Updates::Signed(
            records
                .filter_map(|r| {
                    if let Some(kept) = r.signature() {
                        return Some(kept.clone());
                    }
                    let signed = sign_body(r, Message::from(r.to_update()).encode(), key.as_deref()?)?;
                    fresh.push(Record { signed: Some(signed.clone()), ..r.clone() });
                    Some(signed)
                })
                .collect(),
        ),
        Form::Encrypted(keys, key) => {
            let Some(s) = s else { return (Updates::Signed(Vec::new()), fresh) };
            Updates::Signed(
                records
                    .filter_map(|r| {
                        let cipher = cipher_for(s, r, keys)?;
                        let update = keys
                            .encrypt_record(r, cipher)
                            .map_err(|e| error!(path = %r.path, error = %e, "cannot encrypt a record"))
                            .ok()?;
                        let body = Message::from(update).encode();
                        if let Some(kept) = std::str::from_utf8(&body).ok().and_then(|b| r.sealed_as(b)) {
                            return Some(kept.clone());
                        }
                        let signed = sign_body(r, body, key)?;
                        fresh.push(Record { sealed: Some(signed.clone()), ..r.clone() });
                        Some(signed)
                    })
                    .collect(),
            )
        }
    };
    (updates, fresh)
}

/// Signs `body` (the update of `r`) with `key`.
fn sign_body(r: &Record, body: Vec<u8>, key: &super::rsa::SigningKey) -> Option<super::record::Signed> {
    let signature = key.sign(&body).map_err(|e| error!(path = %r.path, error = %e, "cannot sign a record")).ok()?;
    let body = String::from_utf8(body).ok()?;
    Some(super::record::Signed { body, signature })
}

/// Keeps signatures just made (`fresh`: the records with them) in the index, each with the
/// version it signs if that is still the stored one, so that sending the record again (a
/// read-only or untrusted peer asking for everything, again and again) costs no signature.
fn keep_signatures(s: &ShareState, fresh: Vec<Record>) {
    if fresh.is_empty() {
        return;
    }
    let mut keep = Vec::with_capacity(fresh.len());
    for f in fresh {
        let Ok(Some(mut stored)) = s.store.get(&f.path) else { continue };
        // (A newer version written meanwhile keeps what it has.)
        if stored.to_update() != f.to_update() {
            continue;
        }
        if f.signed.is_some() {
            stored.signed = f.signed;
        }
        if f.sealed.is_some() {
            stored.sealed = f.sealed;
        }
        keep.push(stored);
    }
    if let Err(e) = s.store.commit(&keep, None) {
        warn!(error = %e, "cannot keep the signatures made for peers");
    }
}

/// The ciphertext hash of `r`'s contents (`Some(None)`: it has none), from the cache or
/// computed from the file; `None` while the contents are not here.
fn cipher_for(
    s: &ShareState,
    r: &Record,
    keys: &super::untrusted::UntrustedKeys,
) -> Option<Option<clearskies_protocol::Sha256Hash>> {
    if r.kind != super::record::EntryKind::File || r.deleted {
        return Some(None);
    }
    let plain = r.sha256?;
    if let Ok(Some(c)) = s.store.cipher_of(&plain) {
        return Some(Some(c));
    }
    let local = r.local.filter(|_| r.installed_file())?;
    let mut file = super::fsops::open_unchanged(&s.root, &r.path, &local).ok()??;
    let cipher = keys
        .cipher_hash(&mut file, &plain)
        .map_err(|e| warn!(path = %r.path, error = %e, "cannot encrypt a file for an untrusted peer"))
        .ok()?;
    if let Err(e) = s.store.put_cipher(&plain, &cipher) {
        warn!(error = %e, "cannot remember a ciphertext hash");
    }
    Some(Some(cipher))
}

/// One chunk of a `get_updates` answer (from `cursor` on), as `form` sends it, with the
/// signatures made for it kept: the records read, the updates, where to go on, and how
/// many signatures were made.
fn answer_chunk(
    s: &ShareState,
    since: &clearskies_protocol::updates::Since,
    cursor: Option<super::store::UpdatesCursor>,
    form: &Form,
) -> Result<(usize, Updates, Option<super::store::UpdatesCursor>, usize), super::store::StoreError> {
    let (records, cursor) = s.store.updates_chunk(since, cursor, ANSWER_CHUNK)?;
    let (updates, fresh) = prepare(Some(s), records.iter(), form);
    let made = fresh.len();
    keep_signatures(s, fresh);
    Ok((records.len(), updates, cursor, made))
}

/// One share.
#[derive(Debug)]
pub struct Share {
    root: PathBuf,
    mode: &'static str,
    /// The level we hold the share at.
    level: clearskies_protocol::message::core::AccessLevel,
    store: ShareStore,
    worker: Worker<ShareState>,
    transfer: Addr<Transfer>,
    /// The share was joined from a peer: it is not in sync before one has caught us up.
    joined: bool,
    state: State,
    scan_again: bool,
    /// Where the next scan looks.
    dirty: Scope,
    /// Why the tree is not watched for changes, if it is not.
    unwatched: Option<String>,
    /// The inotify watch, while it runs.
    watcher: Option<SpawnHandle>,
    /// Full scans every `full_scan_interval`, while the tree cannot be watched.
    periodic: Option<SpawnHandle>,
    /// The root's device and inode when the share was opened (`None`: it was missing).
    root_id: Option<(u64, u64)>,
    /// The root went away (and the share is in error until it is back).
    root_lost: bool,
    /// A look at the root is under way.
    root_looking: bool,
    /// When the first not-yet-scanned event arrived.
    dirty_since: Option<Instant>,
    debounce: Option<SpawnHandle>,
    subscribers: BTreeMap<u64, Subscriber>,
    /// Read-only shares: paths changed here that are not (and will not be) synced.
    local_changes: usize,
    /// Local deletions the last scan held back (too many at once).
    held_deletions: usize,
    /// Challenges sent to untrusted peers: the expected answer, and where the outcome goes.
    challenges: HashMap<(u64, UntrustedFileId), (Sha256Hash, tokio::sync::mpsc::UnboundedSender<Proof>)>,
    incoming: Vec<(u64, Record)>,
    applying: bool,
    downloads: Vec<(clearskies_protocol::Sha256Hash, PathBuf)>,
    installing: bool,
    paused: bool,
    /// Counts applied batches (wakes senders held back by a full queue).
    applied: tokio::sync::watch::Sender<u64>,
    /// Connections whose `get_updates` is being answered (in chunks), with the changes
    /// announced meanwhile: sent after the answer, so the peer never holds a newer revision
    /// of a writer before the older ones (its `since` would then skip them).
    answering: BTreeMap<u64, Vec<Record>>,
    /// Pacing of those answers: chunks not yet written to the connection's socket.
    pace: HashMap<u64, Arc<tokio::sync::Semaphore>>,
    /// A retry of failed disk work is scheduled.
    retry: Option<SpawnHandle>,
    /// Unix time since which every status query found the share in sync (`None`: not now).
    in_sync_since: Option<u64>,
    /// Unix time a status query last found the share in sync.
    last_synced: Option<u64>,
    /// Downloads fail because the disk is full (why).
    disk_full: Option<String>,
    /// Selective sync (ignored paths' pending records are not "out of sync").
    filter: Arc<Mutex<Filter>>,
}

impl Share {
    /// Starts the actor (and its worker thread and `Transfer` actor) for a share rooted at
    /// `root`, indexed in `store`, where we are `me`. `joined`: the share came from a peer
    /// (attach), rather than being created here. A panic in the share or its transfer actor
    /// reports [`Crashed`] (with `id`) to `crashed`. Also answers what resolves once the
    /// share's worker thread has ended after the actor is gone (a restart waits for it, so
    /// two threads never work on one share).
    pub fn spawn(
        config: &super::registry::ShareConfig,
        store: ShareStore,
        joined: bool,
        crashed: Recipient<Crashed>,
    ) -> std::io::Result<(Addr<Share>, Exited)> {
        let (root, me, mode, id) = (config.path.clone(), config.peer_id, config.mode(), config.id);
        let level = config.access_level;
        let filter = Filter::new(&root, &config.selection);
        let shared_filter = Arc::new(Mutex::new(filter.clone()));
        let read_only = config.access_level != clearskies_protocol::message::core::AccessLevel::ReadWrite;
        let state = ShareState {
            root: root.clone(),
            store: store.clone(),
            me,
            filter,
            shared_filter: shared_filter.clone(),
            read_only,
            deletes_confirmed: false,
            announced: None,
        };
        let worker = Worker::spawn(format!("share {}", root.display()), state)?;
        let exited = worker.exited();
        let on_share = Crashed { kind: ActorKind::Share, share: Some(id), conn: None };
        let on_transfer = Crashed { kind: ActorKind::Transfer, share: Some(id), conn: None };
        let to = crashed.clone();
        let addr = supervise::create(
            move |ctx| Share {
                transfer: supervise::start(
                    Transfer::new(root.clone(), store.clone(), ctx.address().recipient(), ctx.address().recipient()),
                    to,
                    on_transfer,
                ),
                root,
                mode,
                level,
                store,
                worker,
                joined,
                state: State::Starting,
                scan_again: false,
                dirty: Scope::default(),
                unwatched: None,
                watcher: None,
                periodic: None,
                root_id: None,
                root_lost: false,
                root_looking: false,
                dirty_since: None,
                debounce: None,
                subscribers: BTreeMap::new(),
                local_changes: 0,
                held_deletions: 0,
                challenges: HashMap::new(),
                incoming: Vec::new(),
                applying: false,
                downloads: Vec::new(),
                installing: false,
                paused: false,
                applied: tokio::sync::watch::Sender::new(0),
                answering: BTreeMap::new(),
                pace: HashMap::new(),
                retry: None,
                in_sync_since: None,
                last_synced: None,
                disk_full: None,
                filter: shared_filter,
            },
            crashed,
            on_share,
        );
        Ok((addr, exited))
    }

    /// Runs `job` with an [`Applier`] on the worker thread; resolves with its result and the
    /// number of records whose disk work failed.
    fn run_applier<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Applier<'_>) -> R + Send + 'static,
    ) -> impl std::future::Future<Output = Result<(R, usize), super::worker::WorkerGone>> {
        self.worker.run(move |s: &mut ShareState| {
            let mut uuid = new_uuid;
            let mut a = s.applier(&mut uuid);
            let r = job(&mut a);
            (r, a.failures)
        })
    }

    fn start_scan(&mut self, ctx: &mut Context<Self>) {
        if matches!(self.state, State::Scanning | State::Starting) {
            self.scan_again = true;
            return;
        }
        self.state = State::Scanning;
        let started = Instant::now();
        let scope = std::mem::take(&mut self.dirty);
        let want = !self.subscribers.is_empty();
        let job = self.worker.run(move |s: &mut ShareState| {
            if s.announced.is_none() {
                s.announced = s.store.revision().ok();
            }
            let refreshed = s.refresh_filter();
            // A changed ignore file changes what is indexed anywhere; a read-only share's
            // count of local changes covers the whole tree.
            let full = refreshed || s.read_only || scope == Scope::Full;
            let report = run_scan(s, if full { &Scope::Full } else { &scope });
            let changed = s.new_writes(want);
            // Paths the ignore file no longer ignores: peers' versions come now.
            let mut uuid = new_uuid;
            let fetch = if refreshed { s.applier(&mut uuid).resume() } else { Ok(Vec::new()) };
            (report.map(|r| (r, full)), changed, fetch)
        });
        ctx.spawn(job.into_actor(self).map(move |joined, act, ctx| {
            metrics().scan_duration.observe(started.elapsed().as_secs_f64());
            let (report, changed, fetch) = match joined {
                Ok(done) => done,
                Err(e) => {
                    act.state = State::Error(e.to_string());
                    return;
                }
            };
            match changed {
                Ok(changed) => act.announce(changed.into_iter().map(|r| (None, r)).collect()),
                Err(e) => error!(error = %e, "cannot read this scan's records to send to peers"),
            }
            match fetch {
                Ok(fetch) => act.fetch(fetch),
                Err(e) => error!(error = %e, "cannot resume paths no longer ignored"),
            }
            act.state = match report {
                Ok((report, full)) => {
                    info!(root = %act.root.display(), full, entries = report.entries, hashed = report.hashed_files,
                        changed = report.changed, "scan complete");
                    if report.local_changes.len() != act.local_changes {
                        warn!(root = %act.root.display(), changes = report.local_changes.len(),
                            "local changes in a read-only share: kept here, never sent to peers");
                    }
                    act.local_changes = report.local_changes.len();
                    act.held_deletions = report.held_deletions;
                    if report.held_deletions > 0 {
                        // Held deletions are found again by every scan until confirmed:
                        // scan everything next time, not just where events came from.
                        act.dirty = Scope::Full;
                    }
                    State::Idle
                }
                Err(e @ ScanError::RootMissing(_)) => {
                    warn!(error = %e, "share in error state; nothing will be deleted");
                    act.dirty = Scope::Full;
                    act.root_lost = true;
                    State::Error(e.to_string())
                }
                Err(e) => {
                    // A scan is idempotent: try again shortly (a transient disk or index error).
                    warn!(error = %e, retry_in = ?RETRY_FAILED, "scan failed");
                    act.dirty = Scope::Full;
                    ctx.run_later(RETRY_FAILED, |act, ctx| act.start_scan(ctx));
                    State::Error(e.to_string())
                }
            };
            if std::mem::take(&mut act.scan_again) {
                act.start_scan(ctx);
            }
        }));
    }

    /// Scans everything now (the filesystem is not watched, or the user asked).
    fn full_scan(&mut self, ctx: &mut Context<Self>) {
        self.dirty = Scope::Full;
        self.start_scan(ctx);
    }

    /// Sends records to every subscriber except the connection each came from.
    fn announce(&mut self, records: Vec<(Option<u64>, Record)>) {
        if records.is_empty() {
            return;
        }
        for (conn, sub) in &self.subscribers {
            let these = records.iter().filter(|(from, _)| *from != Some(*conn)).map(|(_, r)| r);
            match self.answering.get_mut(conn) {
                Some(held) => held.extend(these.cloned()),
                None => self.deliver(sub, these),
            }
        }
    }

    /// Sends records to one subscriber, as its connection needs them.
    fn deliver<'a>(&self, sub: &Subscriber, these: impl Iterator<Item = &'a Record>) {
        match &sub.form {
            Form::Nothing => {}
            Form::Encrypted(..) => {
                // Encrypting may read files: on the worker thread.
                let (these, form, out) = (these.cloned().collect::<Vec<_>>(), sub.form.clone(), sub.out.clone());
                let job = self.worker.run(move |s: &mut ShareState| {
                    let (updates, fresh) = prepare(Some(s), these.iter(), &form);
                    keep_signatures(s, fresh);
                    updates
                });
                actix_rt::spawn(async move {
                    if let Ok(updates) = job.await {
                        Subscriber::send_to(&out, updates);
                    }
                });
            }
            Form::Plain | Form::Signed(_) => {
                let (updates, fresh) = prepare(None, these, &sub.form);
                Subscriber::send_to(&sub.out, updates);
                if !fresh.is_empty() {
                    // Kept by the worker, which alone writes the index.
                    drop(self.worker.run(move |s: &mut ShareState| keep_signatures(s, fresh)));
                }
            }
        }
    }

    /// Installed files whose contents untrusted peers can have now.
    fn announce_installed(&self, paths: Vec<clearskies_protocol::path::SharePath>) {
        for sub in self.subscribers.values() {
            if !matches!(sub.form, Form::Encrypted(..)) {
                continue;
            }
            let (paths, form, out) = (paths.clone(), sub.form.clone(), sub.out.clone());
            let job = self.worker.run(move |s: &mut ShareState| {
                let records: Vec<Record> = paths.iter().filter_map(|p| s.store.get(p).ok().flatten()).collect();
                let (updates, fresh) = prepare(Some(s), records.iter(), &form);
                keep_signatures(s, fresh);
                updates
            });
            actix_rt::spawn(async move {
                if let Ok(updates) = job.await {
                    Subscriber::send_to(&out, updates);
                }
            });
        }
    }

    fn apply_incoming(&mut self, ctx: &mut Context<Self>) {
        if self.applying || self.incoming.is_empty() {
            return;
        }
        self.applying = true;
        let batch = std::mem::take(&mut self.incoming);
        let job = self.run_applier(move |a| a.receive(batch));
        ctx.spawn(job.into_actor(self).map(|joined, act, ctx| {
            act.applying = false;
            act.applied.send_modify(|n| *n += 1);
            let joined = joined.map(|(r, failures)| {
                act.retry_later(failures, ctx);
                r
            });
            match joined {
                Ok(Ok(outcome)) => act.applied(outcome),
                Ok(Err(e)) => {
                    // Nothing of the batch was recorded (one write batch), so our `since` did
                    // not move: ask the peers again, which the protocol makes idempotent.
                    error!(root = %act.root.display(), error = %e, retry_in = ?RETRY_FAILED,
                        "cannot store peers' changes; asking the peers for them again");
                    ctx.run_later(RETRY_FAILED, |act, _| act.ask_for_updates());
                }
                Err(e) => act.state = State::Error(e.to_string()),
            }
            act.apply_incoming(ctx);
        }));
    }

    /// Installs finished downloads, all that arrived meanwhile in one job (one index write
    /// and one fsync per directory for the batch).
    fn install_downloads(&mut self, ctx: &mut Context<Self>) {
        if self.installing || self.downloads.is_empty() {
            return;
        }
        self.installing = true;
        let batch = std::mem::take(&mut self.downloads);
        let job = self.run_applier(move |a| a.downloaded(batch));
        ctx.spawn(job.into_actor(self).map(|joined, act, ctx| {
            act.installing = false;
            let joined = joined.map(|(r, failures)| {
                act.retry_later(failures, ctx);
                r
            });
            match joined {
                Ok(Ok(paths)) => {
                    debug!(root = %act.root.display(), installed = paths.len(), "downloads installed");
                    act.announce_installed(paths);
                }
                Ok(Err(e)) => error!(error = %e, "cannot record installed downloads"),
                Err(e) => error!(error = %e, "cannot install downloads"),
            }
            act.install_downloads(ctx);
        }));
    }

    /// Some disk work failed (left pending): try all pending work again in a while.
    fn retry_later(&mut self, failures: usize, ctx: &mut Context<Self>) {
        if failures == 0 || self.retry.is_some() {
            return;
        }
        self.retry = Some(ctx.run_later(RETRY_PENDING, |act, ctx| {
            let job = act.run_applier(|a| a.resume());
            ctx.spawn(job.into_actor(act).map(|joined, act, ctx| {
                act.retry = None;
                if let Ok((r, failures)) = joined {
                    if let Ok(fetch) = r {
                        act.fetch(fetch);
                    }
                    act.retry_later(failures, ctx);
                }
            }));
        }));
    }

    fn applied(&mut self, outcome: Outcome) {
        let Outcome { announce, fetch, ignored, conflicts } = outcome;
        metrics().conflicts.inc_by(u64::try_from(conflicts).unwrap_or(u64::MAX));
        debug!(root = %self.root.display(), adopted = announce.len(), ignored, conflicts, fetch = fetch.len(),
            "applied peers' changes");
        self.announce(announce);
        self.fetch(fetch);
    }

    /// Sends `database.get_updates` (everything newer than what we hold) to every peer.
    fn ask_for_updates(&self) {
        let since = self.store.since().unwrap_or_default();
        for sub in self.subscribers.values() {
            let get = clearskies_protocol::message::database::GetUpdates { since: since.clone() };
            sub.out.do_send(PeerOut::Send(vec![get.into()]));
        }
    }

    fn fetch(&self, fetch: Vec<super::apply::Fetch>) {
        if !fetch.is_empty() {
            self.transfer.do_send(Fetches(fetch));
        }
    }

    /// Answers a `get_updates` in chunks of [`ANSWER_CHUNK`] records (read, signed or
    /// encrypted one chunk at a time on the worker thread), then `updates_done` and what was
    /// announced meanwhile.
    fn send_updates(
        &mut self,
        conn: u64,
        since: clearskies_protocol::updates::Since,
        cursor: Option<super::store::UpdatesCursor>,
        ctx: &mut Context<Self>,
    ) {
        let Some(sub) = self.subscribers.get(&conn) else {
            self.answering.remove(&conn);
            return;
        };
        let (form, out) = (sub.form.clone(), sub.out.clone());
        // Paced: the next chunk is read once the one before the last is written to the
        // socket, so a slow peer holds at most two chunks in memory here.
        let pace = self.pace.entry(conn).or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(2))).clone();
        let worker = self.worker.clone();
        // Signing (a read-only peer catching up) costs CPU per record, and encrypting (an
        // untrusted one) reads files: on the worker thread.
        let job = async move {
            let permit = pace.acquire_owned().await.ok();
            let read = worker.run(move |s: &mut ShareState| {
                answer_chunk(s, &since, cursor, &form).map(|(n, updates, cursor, _)| (n, updates, cursor, since))
            });
            (read.await, permit)
        };
        ctx.spawn(job.into_actor(self).map(move |(joined, permit), act, ctx| {
            if !act.subscribers.contains_key(&conn) {
                act.answering.remove(&conn);
                act.pace.remove(&conn);
                return;
            }
            match joined {
                Ok(Ok((n, updates, cursor, since))) => {
                    debug!(conn, records = n, done = cursor.is_none(), "sending updates");
                    Subscriber::send_to(&out, updates);
                    if let Some(permit) = permit {
                        out.do_send(PeerOut::Written(permit));
                    }
                    if cursor.is_some() {
                        act.send_updates(conn, since, cursor, ctx);
                        return;
                    }
                }
                Ok(Err(e)) => error!(error = %e, "cannot read updates for a peer"),
                Err(e) => error!(error = %e, "cannot read updates for a peer"),
            }
            act.pace.remove(&conn);
            let held = act.answering.remove(&conn).unwrap_or_default();
            if let Some(sub) = act.subscribers.get(&conn) {
                sub.out.do_send(PeerOut::Send(vec![UpdatesDone {}.into()]));
                act.deliver(sub, held.iter());
            }
        }));
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

fn run_scan(s: &mut ShareState, scope: &Scope) -> Result<super::scan::ScanReport, ScanError> {
    let mut uuid = new_uuid;
    let limit = crate::config::mass_delete_percent();
    let delete_limit = (limit < 100 && !std::mem::take(&mut s.deletes_confirmed)).then_some(limit);
    let mut ctx = ScanContext {
        me: s.me,
        now: now(),
        new_uuid: &mut uuid,
        filter: Some(&s.filter),
        read_only: s.read_only,
        delete_limit,
    };
    scan(&s.root, &s.store, &mut ctx, scope)
}

/// The current wall-clock time as a protocol timestamp.
pub fn now() -> Timestamp {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp::new(i64::try_from(d.as_secs()).unwrap_or(0), d.subsec_nanos()).unwrap_or_default()
}

impl Share {
    pub(super) fn root(&self) -> &std::path::Path {
        &self.root
    }

    pub(super) fn store(&self) -> &ShareStore {
        &self.store
    }

    pub(super) fn transfer(&self) -> &Addr<Transfer> {
        &self.transfer
    }
}

impl Actor for Share {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.open(ctx);
        ctx.run_interval(ROOT_CHECK, |act, ctx| act.look_at_root(ctx));
    }
}

impl Share {
    /// Finishes what a crash, a stop or a missing disk left undone, then watches the tree
    /// (whose first event is a full scan). At start, and when a missing root is back.
    fn open(&mut self, ctx: &mut Context<Self>) {
        self.state = State::Starting;
        let job = self.worker.run(|s: &mut ShareState| {
            if !super::scan::root_is_present(&s.root) {
                return (None, Ok(Vec::new()));
            }
            let id = root_id(&s.root);
            let stale = super::fsops::remove_stale_temps(&s.root);
            if stale > 0 {
                info!(root = %s.root.display(), stale, "removed temp files left by an interrupted transfer");
            }
            // Partial downloads of contents still wanted stay, to be continued.
            let store = &s.store;
            let unwanted = super::fsops::remove_unwanted_partials(&s.root, |sha| {
                store.waiting_for(sha).is_ok_and(|w| !w.is_empty())
            });
            if unwanted > 0 {
                info!(root = %s.root.display(), unwanted, "removed partial downloads nobody waits for");
            }
            let mut uuid = new_uuid;
            (id, s.applier(&mut uuid).resume())
        });
        ctx.spawn(job.into_actor(self).map(|joined, act, ctx| {
            match joined {
                Ok((id, resumed)) => {
                    act.root_id = id;
                    match resumed {
                        Ok(fetch) => act.fetch(fetch),
                        Err(e) => error!(error = %e, "cannot resume pending work"),
                    }
                }
                Err(e) => error!(error = %e, "cannot resume pending work"),
            }
            act.state = State::Idle;
            // The first scan starts when the watcher is ready (or has failed).
            if std::mem::take(&mut act.scan_again) {
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
        if let Some(h) = self.watcher.take() {
            ctx.cancel_future(h);
        }
        self.unwatched = None;
        let watcher = super::watch::watch(self.root.clone(), ctx.address().recipient());
        let h = ctx.spawn(watcher.into_actor(self).map(|res, act, ctx| {
            act.watcher = None;
            if !super::scan::root_is_present(&act.root) {
                info!(root = %act.root.display(), "the share root went away: its watch ended");
                act.full_scan(ctx);
                return;
            }
            let why = match res {
                Ok(()) => "the watch ended".to_owned(),
                Err(e) => e.to_string(),
            };
            let every = crate::config::full_scan_interval();
            warn!(root = %act.root.display(), reason = %why, ?every,
                "not watching for changes; scanning everything periodically instead");
            act.unwatched = Some(format!("{why}; changes are found by a full scan every {} s", every.as_secs()));
            act.full_scan(ctx);
            if act.periodic.is_none() {
                act.periodic = Some(ctx.run_interval(every, |act, ctx| act.full_scan(ctx)));
            }
        }));
        self.watcher = Some(h);
    }

    /// Looks (every [`ROOT_CHECK`]) whether the root is still there and still the directory
    /// the share was opened on. Gone: a full scan, which puts the share in error and deletes
    /// nothing. Back, or another directory now (a disk mounted again, a folder restored):
    /// the share is opened again (pending work, a new watch, a full scan).
    fn look_at_root(&mut self, ctx: &mut Context<Self>) {
        if self.root_looking {
            return;
        }
        self.root_looking = true;
        let root = self.root.clone();
        let look = tokio::task::spawn_blocking(move || super::scan::root_is_present(&root).then(|| root_id(&root)));
        ctx.spawn(look.into_actor(self).map(|looked, act, ctx| {
            act.root_looking = false;
            let Ok(now) = looked else { return };
            match now {
                None if !act.root_lost => {
                    info!(root = %act.root.display(), "the share root is gone (deleted or unmounted)");
                    act.root_lost = true;
                    act.full_scan(ctx);
                }
                // (While a scan runs: at the next look.)
                Some(id)
                    if (act.root_lost || act.root_id != id)
                        && !matches!(act.state, State::Scanning | State::Starting) =>
                {
                    info!(root = %act.root.display(), "the share root is back: opening it again");
                    act.root_lost = false;
                    act.open(ctx);
                }
                _ => {}
            }
        }));
    }
}

/// The device and inode of `root` (`None` if it cannot be read).
fn root_id(root: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(root).ok().map(|m| (m.dev(), m.ino()))
}

impl Handler<FsChanged> for Share {
    type Result = ();

    fn handle(&mut self, FsChanged(scope): FsChanged, ctx: &mut Context<Self>) {
        self.dirty.merge(scope);
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

/// An untrusted peer's answer to one challenge.
#[derive(Debug)]
struct Proof {
    conn: u64,
    file_id: UntrustedFileId,
    ok: bool,
}

/// Up to `k` installed files chosen uniformly at random (reservoir sampling: one pass over
/// the index, `k` records in memory).
fn sample_installed(store: &super::store::ShareStore, k: usize) -> Vec<Record> {
    let mut random = [0u8; 8 * 512];
    let mut used = random.len();
    let mut next = move || {
        if used == random.len() {
            if getrandom::fill(&mut random).is_err() {
                return None;
            }
            used = 0;
        }
        used += 8;
        Some(u64::from_le_bytes(random[used - 8..used].try_into().unwrap_or_default()))
    };
    let mut seen = 0u64;
    let mut sample: Vec<Record> = Vec::new();
    let _ = store.each_record(|r| {
        if !r.installed_file() {
            return;
        }
        seen += 1;
        if sample.len() < k {
            sample.push(r);
        } else if let Some(x) = next() {
            if let Ok(i) = usize::try_from(x % seen) {
                if i < k {
                    sample[i] = r;
                }
            }
        }
    });
    sample
}

/// A challenge: the file, a random prefix, and SHA-256(prefix ‖ its ciphertext).
type Challenge = (Record, Sha256Hash, Sha256Hash);

/// Up to `n` random installed files with a fresh challenge each (reads and encrypts them).
fn challenges(s: &ShareState, n: usize, keys: &super::untrusted::UntrustedKeys) -> Vec<Challenge> {
    use sha2::Digest;
    let mut files = sample_installed(&s.store, n.saturating_mul(4));
    let mut out = Vec::new();
    while out.len() < n && !files.is_empty() {
        let mut pick = [0u8; 8];
        let mut prefix = [0u8; 32];
        if getrandom::fill(&mut pick).is_err() || getrandom::fill(&mut prefix).is_err() {
            break;
        }
        let r = files.swap_remove(usize::try_from(u64::from_le_bytes(pick) % files.len() as u64).unwrap_or(0));
        let (Some(plain), Some(local)) = (r.sha256, r.local) else { continue };
        let Ok(Some(mut file)) = super::fsops::open_unchanged(&s.root, &r.path, &local) else { continue };
        let Ok(mut ctr) = keys.content_stream(&plain, 0) else { continue };
        let mut h = sha2::Sha256::new();
        h.update(prefix);
        let mut buf = vec![0u8; 1 << 20];
        let read = loop {
            match std::io::Read::read(&mut file, &mut buf) {
                Ok(0) => break true,
                Ok(k) if ctr.apply(&mut buf[..k]).is_ok() => h.update(&buf[..k]),
                _ => break false,
            }
        };
        if read {
            out.push((r, Sha256Hash(prefix), Sha256Hash(h.finalize().into())));
        }
    }
    out
}

impl Handler<VerifyBackup> for Share {
    type Result = actix::ResponseActFuture<Self, Vec<BackupCheck>>;

    fn handle(&mut self, msg: VerifyBackup, _: &mut Context<Self>) -> Self::Result {
        let peers: Vec<(u64, Recipient<PeerOut>, Arc<super::rsa::SigningKey>)> = self
            .subscribers
            .iter()
            .filter_map(|(c, s)| match &s.form {
                Form::Encrypted(_, sign) => Some((*c, s.out.clone(), sign.clone())),
                _ => None,
            })
            .collect();
        let keys = self.subscribers.values().find_map(|s| match &s.form {
            Form::Encrypted(keys, _) => Some(keys.clone()),
            _ => None,
        });
        let Some(keys) = keys else {
            return Box::pin(actix::fut::ready(Vec::new()));
        };
        let files = msg.files.clamp(1, 1000);
        let job = self.worker.run({
            let keys = keys.clone();
            move |s: &mut ShareState| challenges(s, files, &keys)
        });
        Box::pin(job.into_actor(self).then(move |picked, act, _| {
            let picked = picked.unwrap_or_default();
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let mut asked: HashMap<(u64, UntrustedFileId), String> = HashMap::new();
            for (conn, out, sign) in &peers {
                let mut signed = Vec::new();
                for (r, prefix, expected) in &picked {
                    let file_id = UntrustedFileId(keys.file_id(&r.uuid));
                    let verify = clearskies_protocol::message::untrusted::Verify { file_id, prefix: *prefix };
                    let body = Message::from(verify).encode();
                    let (Ok(signature), Ok(body)) = (sign.sign(&body), String::from_utf8(body)) else { continue };
                    signed.push(super::record::Signed { body, signature });
                    act.challenges.insert((*conn, file_id), (*expected, tx.clone()));
                    asked.insert((*conn, file_id), r.path.to_string());
                }
                out.do_send(PeerOut::SendSigned(signed));
            }
            drop(tx);
            let wait = async move {
                let mut outcome: HashMap<(u64, UntrustedFileId), bool> = HashMap::new();
                let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
                while outcome.len() < asked.len() {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(p)) => {
                            outcome.insert((p.conn, p.file_id), p.ok);
                        }
                        _ => break,
                    }
                }
                (asked, outcome)
            };
            wait.into_actor(act).map(move |(asked, outcome), act, _| {
                act.challenges.retain(|k, _| !asked.contains_key(k));
                peers
                    .iter()
                    .map(|(conn, _, _)| {
                        let peer = act.subscribers.get(conn).map(|s| s.peer.to_string()).unwrap_or_default();
                        let mine: Vec<_> = asked.iter().filter(|((c, _), _)| c == conn).collect();
                        let failed = mine
                            .iter()
                            .filter_map(|(k, path)| match outcome.get(k) {
                                Some(true) => None,
                                Some(false) => Some(format!("{path} (wrong answer)")),
                                None => Some(format!("{path} (no answer)")),
                            })
                            .collect::<Vec<_>>();
                        BackupCheck { peer, checked: mine.len(), proved: mine.len() - failed.len(), failed }
                    })
                    .collect()
            })
        }))
    }
}

impl Handler<ConfirmDeletes> for Share {
    type Result = actix::ResponseActFuture<Self, usize>;

    fn handle(&mut self, _: ConfirmDeletes, _: &mut Context<Self>) -> Self::Result {
        let held = self.held_deletions;
        let job = self.worker.run(|s: &mut ShareState| s.deletes_confirmed = true);
        Box::pin(job.into_actor(self).map(move |_, act, ctx| {
            info!(root = %act.root.display(), held, "deletions confirmed");
            act.full_scan(ctx);
            held
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
        for sub in self.subscribers.values() {
            sub.out.do_send(PeerOut::Close("the share was removed".into()));
        }
        ctx.stop();
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
        transfer.do_send(TransferPeerUp { conn: msg.conn, out: msg.out.clone(), access, gzip: msg.gzip });
        // Subscribe to the peer's changes: everything newer than what we hold.
        let since = self.store.since().unwrap_or_default();
        let get = clearskies_protocol::message::database::GetUpdates { since };
        msg.out.do_send(PeerOut::Send(vec![get.into()]));
        let sub = Subscriber { out: msg.out, caught_up: false, form, peer: msg.peer };
        self.subscribers.insert(msg.conn, sub);
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

    fn handle(&mut self, msg: PeerDown, _: &mut Context<Self>) {
        self.subscribers.remove(&msg.conn);
        self.answering.remove(&msg.conn);
        self.pace.remove(&msg.conn);
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
            SyncMessage::GetUpdates(since) => {
                // One answer at a time per connection: a repeated request while one is being
                // read adds nothing.
                if let std::collections::btree_map::Entry::Vacant(e) = self.answering.entry(msg.conn) {
                    e.insert(Vec::new());
                    self.send_updates(msg.conn, since, None, ctx);
                }
            }
            SyncMessage::Update(r) => {
                self.incoming.push((msg.conn, *r));
                self.apply_incoming(ctx);
                if self.incoming.len() >= MAX_INCOMING {
                    let mut applied = self.applied.subscribe();
                    return Box::pin(async move {
                        let _ = applied.changed().await;
                    });
                }
            }
            SyncMessage::VerifyResult(r) => {
                if let Some((expected, tx)) = self.challenges.remove(&(msg.conn, r.file_id)) {
                    let _ = tx.send(Proof { conn: msg.conn, file_id: r.file_id, ok: r.result == expected });
                }
            }
            SyncMessage::Cipher { plain, cipher } => {
                if let Err(e) = self.store.put_cipher(&plain, &cipher) {
                    warn!(error = %e, "cannot remember a ciphertext hash");
                }
            }
            SyncMessage::UpdatesDone => {
                if let Some(sub) = self.subscribers.get_mut(&msg.conn) {
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
        self.paused = msg.0;
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
        self.disk_full = why;
    }
}

impl Handler<Downloaded> for Share {
    type Result = ();

    fn handle(&mut self, msg: Downloaded, ctx: &mut Context<Self>) {
        self.downloads.push((msg.sha256, msg.temp));
        self.install_downloads(ctx);
    }
}

/// What `list_shares` reports from the index: the stored totals (no scan of the records).
fn count(store: &ShareStore, filter: &Filter) -> Result<(super::store::Totals, u64), super::store::StoreError> {
    let mut totals = store.totals()?;
    // Peers' files this replica ignores wait forever by design: they are not on this disk
    // and not out of sync.
    for (_, p) in store.all_waiting()? {
        if filter.ignores(&p, false) {
            let size = store.get(&p)?.and_then(|r| r.size).unwrap_or(0);
            totals.files = totals.files.saturating_sub(1);
            totals.bytes = totals.bytes.saturating_sub(size);
            totals.pending_files = totals.pending_files.saturating_sub(1);
            totals.pending_bytes = totals.pending_bytes.saturating_sub(size);
        }
    }
    Ok((totals, store.revision().unwrap_or(0)))
}

impl Handler<GetShareStatus> for Share {
    /// The stored totals are read on the blocking pool (RocksDB reads may touch the disk),
    /// not on the event loop, and not behind a scan on the worker thread: `wait` polls this.
    type Result = actix::ResponseActFuture<Self, ShareStatus>;

    fn handle(&mut self, _: GetShareStatus, _: &mut Context<Self>) -> Self::Result {
        let busy = self.applying
            || self.installing
            || !self.incoming.is_empty()
            || !self.downloads.is_empty()
            || self.debounce.is_some();
        let (mut state, paused, joined) = (self.state.clone(), self.paused, self.joined);
        if let (Some(e), State::Idle) = (&self.disk_full, &state) {
            state = State::Error(e.clone());
        }
        let peers_caught_up = self.subscribers.values().all(|s| s.caught_up);
        let peers = self.subscribers.len();
        let (path, mode, store) = (self.root.display().to_string(), self.mode, self.store.clone());
        let local_changes = self.local_changes as u64;
        let held_deletions = self.held_deletions as u64;
        let unwatched = self.unwatched.clone();
        let filter = self.filter.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let status = async move {
            let counted = tokio::task::spawn_blocking(move || count(&store, &filter))
                .await
                .unwrap_or_else(|e| Err(super::store::StoreError::Corrupt(format!("counting failed: {e}"))));
            let ((c, revision), failed) = match counted {
                Ok(c) => (c, None),
                Err(e) => ((super::store::Totals::default(), 0), Some(e.to_string())),
            };
            let (status, error) = match (&state, failed) {
                (_, Some(e)) => ("error", Some(e)),
                (State::Starting | State::Scanning, _) => ("scanning", None),
                (State::Idle, _) if paused && c.pending_files > 0 => ("paused", None),
                (State::Idle, _) if busy || c.pending_files > 0 => ("syncing", None),
                (State::Idle, _) => ("idle", None),
                (State::Error(e), _) => ("error", Some(e.clone())),
            };
            let (status, error) = match (status, error) {
                ("error", e) => ("error", e),
                (_, _) if held_deletions > 0 => (
                    "error",
                    Some(format!(
                        "{held_deletions} files and directories were deleted here at once, more than \
                         mass_delete_percent allows: the deletions are held and peers keep their copies. If \
                         that was intended, run `clearskies confirm-deletes {path}`; otherwise restore the files"
                    )),
                ),
                other => other,
            };
            let synced = status == "idle" && peers_caught_up && (!joined || peers > 0);
            ShareStatus {
                path,
                status,
                error,
                mode,
                files: c.files,
                directories: c.directories,
                bytes: c.bytes,
                revision,
                synced,
                pending_files: c.pending_files,
                pending_bytes: c.pending_bytes,
                peers,
                local_changes,
                held_deletions,
                unwatched,
                id: String::new(),
                peer_id: String::new(),
                in_sync_since: None,
                last_synced: None,
            }
        };
        Box::pin(status.into_actor(self).map(|mut status, act, _| {
            if status.synced {
                let now = u64::try_from(now().secs()).unwrap_or(0);
                act.in_sync_since.get_or_insert(now);
                act.last_synced = Some(now);
            } else {
                act.in_sync_since = None;
            }
            status.in_sync_since = act.in_sync_since;
            status.last_synced = act.last_synced;
            status
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::share::record::tests_support::file;
    use crate::share::rsa::SigningKey;
    use crate::share::untrusted::UntrustedKeys;

    const N: usize = 40;

    /// A worker state over a fresh index holding `N` files.
    fn state(dir: &std::path::Path) -> ShareState {
        let root = dir.join("root");
        std::fs::create_dir(&root).unwrap();
        let db = super::super::store::Store::open(&dir.join("db")).unwrap();
        db.create_share("s").unwrap();
        let store = db.share("s").unwrap();
        let records: Vec<Record> = (1..=N as u64)
            .map(|i| {
                let mut r = file(&format!("/f{i}"), format!("contents {i}").as_bytes());
                r.uuid = RecordUuid(u128::from(i).to_be_bytes());
                r.last_updated_rev = i;
                r
            })
            .collect();
        store.commit(&records, Some(N as u64)).unwrap();
        let filter = Filter::new(&root, &Default::default());
        ShareState {
            root,
            store,
            me: PeerId([3; 16]),
            shared_filter: Arc::new(Mutex::new(filter.clone())),
            filter,
            read_only: false,
            deletes_confirmed: false,
            announced: None,
        }
    }

    /// Answers `get_updates {"since": {}}` whole: the signed bodies and how many
    /// signatures it took.
    fn answer_all(s: &ShareState, form: &Form) -> (Vec<super::super::record::Signed>, usize) {
        let since = clearskies_protocol::updates::Since::new();
        let (mut all, mut made, mut cursor) = (Vec::new(), 0, None);
        loop {
            let (_, updates, next, m) = answer_chunk(s, &since, cursor, form).unwrap();
            let Updates::Signed(signed) = updates else { panic!("plain updates for a signed connection") };
            all.extend(signed);
            made += m;
            cursor = next;
            if cursor.is_none() {
                return (all, made);
            }
        }
    }

    #[test]
    fn repeated_full_get_updates_sign_each_record_version_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(dir.path());
        let key = Arc::new(SigningKey::generate().unwrap());
        let verifying = key.verifying_key();

        // A read-only peer asks for everything, twice: the second answer signs nothing.
        let form = Form::Signed(Some(key.clone()));
        let (first, made) = answer_all(&s, &form);
        assert_eq!((first.len(), made), (N, N));
        assert!(first.iter().all(|u| verifying.verify(u.body.as_bytes(), u.signature.as_bytes())));
        let (second, made) = answer_all(&s, &form);
        assert_eq!(made, 0, "the second full get_updates signed again");
        assert_eq!(second, first);

        // A record changed since: only its new version is signed.
        let mut r = s.store.get(&clearskies_protocol::path::SharePath::parse("/f7").unwrap()).unwrap().unwrap();
        r.size = Some(99);
        r.last_updated_rev = N as u64 + 1;
        r.vector_clock.increment(PeerId([3; 16]));
        s.store.commit(&[r], Some(N as u64 + 1)).unwrap();
        let (third, made) = answer_all(&s, &form);
        assert_eq!((third.len(), made), (N, 1));

        // The same for an untrusted peer's encrypted records.
        let keys = Arc::new(UntrustedKeys::from_read_only_key(&clearskies_protocol::SecretKey([5; 32])));
        s.store
            .each_record(|r| s.store.put_cipher(&r.sha256.unwrap(), &Sha256Hash([r.uuid.0[15]; 32])).unwrap())
            .unwrap();
        let form = Form::Encrypted(keys, key);
        let (first, made) = answer_all(&s, &form);
        assert_eq!((first.len(), made), (N, N));
        assert!(first.iter().all(|u| verifying.verify(u.body.as_bytes(), u.signature.as_bytes())));
        let ids = |u: &super::super::record::Signed| match Message::decode(u.body.as_bytes()) {
            Ok(Message::DatabaseUpdate(u)) => {
                u.key.len() == 33 && u.value.get(super::super::untrusted::SEALED).is_some()
            }
            _ => false,
        };
        assert!(first.iter().all(ids), "encrypted records, under file IDs");
        let (second, made) = answer_all(&s, &form);
        assert_eq!(made, 0, "the second full get_updates signed again");
        assert_eq!(second, first);
        // (And the plain signatures are still there.)
        assert_eq!(answer_all(&s, &Form::Signed(None)).0, third);
    }
}
