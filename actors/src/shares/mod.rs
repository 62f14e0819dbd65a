//! The `Shares` registry: creates, joins, starts, restarts and removes shares, and is the
//! only writer of the [`table::ShareTable`] of running shares, which it publishes to the
//! other owners through a watch channel. Each share runs as a `Share` actor (with its
//! `Transfer` actor and worker thread); commands about one share (`verify_backup`,
//! `confirm_deletes`, `read_file`, `file_url`, `list_shares`) are found by path here and
//! forwarded.
//!
//! Registry work (RocksDB, key files, SRP records) runs on the blocking pool; the actor
//! only puts the result in the table and tells connections (dial the share's peers) and
//! access (a removed share's codes are gone).

mod commands;
pub mod keypool;
pub mod messages;
mod rekey;
pub mod table;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Recipient, ResponseActFuture, WrapFuture};
use clearskies_index::store::{ShareStore, Store};
use clearskies_protocol::{PeerId, Sha256Hash};
use tracing::{debug, error, info, warn};

use self::messages::{CreateShare, ImportKeys, PauseShares, RemoveShare, RestartShare, ShareCreated, SharesLoaded};
use self::table::{KeyMaterial, Running, ShareTable, TableRx};
use crate::access::messages::ShareRemoved;
use crate::connections::messages::{AuthRefused, ShareStarted, ShareStopped};
use crate::control::cmd::{CommandError, ErrorCode};
use crate::peer::messages::JoinShare;
use crate::share::actor::{event_channel, Wiring};
use crate::share::messages::StopShare;
use crate::share::registry::{self, ShareConfig};
use crate::share::worker::Exited;
use crate::share::{Share, ShareEvent};
use crate::supervise::Crashed;
use crate::transfer::messages::SetTransfersPaused;

/// How long a share restart waits for the old worker thread's last job.
const SHARE_EXIT_WAIT: Duration = Duration::from_secs(30);

/// Where the registry's news goes.
#[derive(Debug, Clone)]
pub struct SharesTargets {
    /// Connections: a share started (dial its peers).
    pub started: Recipient<ShareStarted>,
    /// Connections: a share stopped.
    pub stopped: Recipient<ShareStopped>,
    /// Connections: which shares' peers refuse our key (for `list_shares`).
    pub auth_refused: Recipient<AuthRefused>,
    /// Access: a share was removed.
    pub removed: Recipient<ShareRemoved>,
    /// The supervisor: a share's actor crashed.
    pub crashed: Recipient<Crashed>,
    /// The supervisor: the registered shares run.
    pub loaded: Recipient<SharesLoaded>,
    /// Connections: send each connected peer of a share its new keys.
    pub rekey: Recipient<crate::connections::messages::SendRekey>,
}

/// What `file_url` needs: the loopback HTTP address and the key of its tokens.
#[derive(Debug, Clone)]
pub struct FileServing {
    /// Where `/files/` is served (`metrics_address`).
    pub addr: Option<SocketAddr>,
    /// The key of the tokens (empty: no files are served).
    pub token: String,
}

/// The share registry.
#[derive(Debug)]
pub struct Shares {
    store: Store,
    data_dir: PathBuf,
    /// Peers from the configuration, dialled for every share.
    configured_peers: Vec<String>,
    table: tokio::sync::watch::Sender<ShareTable>,
    /// Per running share: resolves once its worker thread has ended.
    exits: BTreeMap<Sha256Hash, Exited>,
    /// Transfers paused (shares started later start paused).
    paused: bool,
    /// Each share's event stream, kept across its restarts (ended when it is removed).
    events: BTreeMap<Sha256Hash, tokio::sync::broadcast::Sender<ShareEvent>>,
    /// RSA key pairs made ahead of time for new shares.
    keys: keypool::KeyPool,
    targets: SharesTargets,
    files: FileServing,
    runtime: crate::config::Runtime,
    /// Shares moving to new keys (`shares::rekey`), with their roots: one move at a time,
    /// and no `detach` meanwhile.
    rotating: BTreeMap<Sha256Hash, PathBuf>,
}

/// A share made ready off the event loop: its keys read and SRP records derived, its index
/// opened.
struct Prepared {
    config: ShareConfig,
    keys: Option<KeyMaterial>,
    store: ShareStore,
}

/// Which peers to dial once a share runs.
enum Dial {
    /// Its remembered peers and the configured ones.
    Known,
    /// These.
    These(Vec<String>),
    /// None now: the connection it was joined through is up (its remembered peers are
    /// dialled when that ends).
    Joined,
}

impl Shares {
    /// A registry over the index `store`; `table` is the sending side of the share table.
    pub fn new(
        settings: &crate::Settings,
        store: Store,
        table: tokio::sync::watch::Sender<ShareTable>,
        targets: SharesTargets,
        files: FileServing,
        runtime: crate::config::Runtime,
    ) -> Self {
        Shares {
            store,
            data_dir: settings.data_dir.clone(),
            configured_peers: settings.config.peers.clone(),
            table,
            exits: BTreeMap::new(),
            paused: false,
            events: BTreeMap::new(),
            keys: keypool::KeyPool::default(),
            targets,
            files,
            runtime,
            rotating: BTreeMap::new(),
        }
    }

    /// A new reader of the share table.
    pub fn subscribe(table: &tokio::sync::watch::Sender<ShareTable>) -> TableRx {
        table.subscribe()
    }

    /// Makes a registered share ready to run (blocking): `None` if it must not run (it is
    /// inside the data directory) or its index cannot be opened; the log says why.
    fn prepare(store: &Store, data_dir: &std::path::Path, config: ShareConfig) -> Option<Prepared> {
        // Shares made before this was refused: one that contains the data directory runs
        // (the scanner and the watcher skip the data directory); one inside it does not.
        if let Err(e @ registry::RegistryError::DataDir { relation: "is" | "is inside", .. }) =
            registry::check_not_data_dir(data_dir, &config.path)
        {
            error!(share = %config.id, error = %e, "not starting the share: detach it");
            return None;
        }
        let keys = KeyMaterial::load(data_dir, &config)
            .map_err(|e| error!(share = %config.id, error = %e, "cannot read the share's keys; peers cannot reconnect"))
            .ok();
        match store.share(&config.store_key()) {
            Ok(store) => Some(Prepared { config, keys, store }),
            Err(e) => {
                error!(share = %config.id, error = %e, "cannot open the share's index");
                None
            }
        }
    }

    /// Starts a prepared share's actors, puts it in the table and has its peers dialled.
    fn run(&mut self, prepared: Prepared, dial: Dial) {
        let Prepared { config, keys, store } = prepared;
        let joined = !config.peers.is_empty();
        let events = self.events.entry(config.id).or_insert_with(event_channel).clone();
        let wiring = Wiring { crashed: self.targets.crashed.clone(), runtime: self.runtime.clone(), events };
        let (addr, exited) = match Share::spawn(&config, store, joined, wiring) {
            Ok(started) => started,
            Err(e) => return error!(share = %config.id, error = %e, "cannot start the share"),
        };
        if self.paused {
            addr.do_send(SetTransfersPaused(true));
        }
        let id = config.id;
        let (dial, remember) = match dial {
            Dial::Known => {
                let mut peers = config.peers.clone();
                peers.extend(self.configured_peers.iter().filter(|p| !config.peers.contains(p)).cloned());
                (peers, vec![])
            }
            Dial::These(peers) => (peers, vec![]),
            Dial::Joined => (vec![], config.peers.clone()),
        };
        self.exits.insert(id, exited);
        let keys = keys.map(std::sync::Arc::new);
        self.table.send_modify(|t| t.insert(Running { config, addr, keys }));
        self.targets.started.do_send(ShareStarted { id, dial, remember });
    }

    /// Runs a share the blocking `job` registered (created, joined) and answers with it.
    fn register<F>(
        &mut self,
        job: F,
        dial: Dial,
        done: &'static str,
    ) -> ResponseActFuture<Self, Result<ShareCreated, CommandError>>
    where
        F: FnOnce(&Store, &std::path::Path) -> Result<ShareConfig, registry::RegistryError> + Send + 'static,
    {
        let (store, data_dir) = (self.store.clone(), self.data_dir.clone());
        let job = tokio::task::spawn_blocking(move || {
            let config = job(&store, &data_dir)?;
            let created = ShareCreated { path: config.path.display().to_string(), id: config.id.to_string() };
            info!(share = %config.id, path = %config.path.display(), "{done}");
            Ok::<_, registry::RegistryError>((created, Self::prepare(&store, &data_dir, config)))
        });
        Box::pin(job.into_actor(self).map(move |joined, act, _| {
            let (created, prepared) = joined.map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))??;
            if let Some(prepared) = prepared {
                act.run(prepared, dial);
            }
            Ok(created)
        }))
    }
}

impl Shares {
    /// Makes the key pairs the next new share will take, on a thread of its own at the
    /// lowest priority (nice 19) and only while the daemon is quiet: RSA key generation
    /// takes 0.05–0.3 CPU-s a key, and must not slow down the sync that usually follows a
    /// new share, or a start-up.
    fn fill_key_pool(&self) {
        let pool = self.keys.clone();
        if !pool.start_filling() {
            return; // (the thread filling it makes what this share took too)
        }
        let flag = pool.clone();
        let spawned = std::thread::Builder::new().name("key pool".into()).spawn(move || {
            // (Linux: the priority of a thread ID is that thread's alone.)
            if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19) {
                debug!(error = %e, "cannot lower the key pool thread's priority");
            }
            pool.fill(&mut quiet_for_a_second());
        });
        if let Err(e) = spawned {
            flag.stop_filling();
            warn!(error = %e, "cannot start the key pool thread; keys are made when a share needs them");
        }
    }
}

/// Peer traffic (both ways, every share) under which the daemon counts as quiet.
const QUIET_BYTES_PER_SECOND: u64 = 256 << 10;

/// Whether the daemon is quiet: blocks for a second, then answers whether peers' traffic
/// stayed under [`QUIET_BYTES_PER_SECOND`] meanwhile (for the key pool's thread).
fn quiet_for_a_second() -> impl FnMut() -> bool {
    let total = || {
        let (sent, received) = crate::metrics::metrics().peer_byte_totals();
        sent.saturating_add(received)
    };
    move || {
        let before = total();
        std::thread::sleep(Duration::from_secs(1));
        total().saturating_sub(before) < QUIET_BYTES_PER_SECOND
    }
}

impl Actor for Shares {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (store, data_dir) = (self.store.clone(), self.data_dir.clone());
        let job = tokio::task::spawn_blocking(move || {
            let configs = registry::drop_superseded(&store, &data_dir, registry::load_shares(&store)?);
            Ok::<_, registry::RegistryError>(
                configs.into_iter().filter_map(|c| Self::prepare(&store, &data_dir, c)).collect::<Vec<_>>(),
            )
        });
        // Commands wait until the registered shares run.
        ctx.wait(job.into_actor(self).map(|loaded, act, _| {
            match loaded {
                Ok(Ok(shares)) => {
                    for prepared in shares {
                        act.run(prepared, Dial::Known);
                    }
                    info!(shares = act.table.borrow().len(), "shares started");
                }
                Ok(Err(e)) => error!(error = %e, "cannot load the share list"),
                Err(e) => error!(error = %e, "cannot load the share list"),
            }
            act.targets.loaded.do_send(SharesLoaded);
            act.fill_key_pool();
        }));
    }
}

impl Handler<CreateShare> for Shares {
    type Result = ResponseActFuture<Self, Result<ShareCreated, CommandError>>;

    fn handle(&mut self, msg: CreateShare, _: &mut Context<Self>) -> Self::Result {
        let now = crate::share::actor::now();
        let pool = self.keys.clone();
        let job = move |store: &Store, data_dir: &std::path::Path| {
            registry::create_share_with(store, data_dir, &msg.path, now, &mut || pool.take())
        };
        let created = self.register(job, Dial::These(self.configured_peers.clone()), "share created");
        // Ready again for the next share.
        Box::pin(created.map(|res, act, _| {
            act.fill_key_pool();
            res
        }))
    }
}

impl Handler<JoinShare> for Shares {
    type Result = ResponseActFuture<Self, Result<Sha256Hash, CommandError>>;

    fn handle(&mut self, msg: JoinShare, _: &mut Context<Self>) -> Self::Result {
        let now = crate::share::actor::now();
        let job = move |store: &Store, data_dir: &std::path::Path| {
            let via = msg.via.to_string();
            let joining =
                registry::Joining { path: &msg.path, peer_id: msg.peer_id, via: &via, selection: msg.selection };
            registry::join_share(store, data_dir, joining, &msg.keys, now)
        };
        let joined = self.register(job, Dial::Joined, "joined a share");
        Box::pin(joined.map(|created, _, _| {
            let created = created?;
            created.id.parse().map_err(|_| CommandError::new(ErrorCode::Internal, "a share ID that does not parse"))
        }))
    }
}

impl Handler<ImportKeys> for Shares {
    type Result = ResponseActFuture<Self, Result<ShareCreated, CommandError>>;

    /// Joins a share with saved keys and dials the peer with them.
    fn handle(&mut self, msg: ImportKeys, _: &mut Context<Self>) -> Self::Result {
        if let Some(p) = self.table.borrow().by_path(&msg.path) {
            let e =
                CommandError::new(ErrorCode::AlreadyShared, format!("{} is already shared", p.config.path.display()));
            return Box::pin(actix::fut::ready(Err(e)));
        }
        let mut peer_id = [0u8; 16];
        if getrandom::fill(&mut peer_id).is_err() {
            return Box::pin(actix::fut::ready(Err(CommandError::new(ErrorCode::RandomFailed, "the OS RNG failed"))));
        }
        let now = crate::share::actor::now();
        let ImportKeys { keys, path, peer, selection } = msg;
        let via = peer.clone();
        let job = move |store: &Store, data_dir: &std::path::Path| {
            let joining = registry::Joining { path: &path, peer_id: PeerId(peer_id), via: &via, selection };
            registry::join_share(store, data_dir, joining, &keys, now)
        };
        let joined = self.register(job, Dial::These(vec![peer]), "joined a share with saved keys");
        // (A registry error says the keys would not do.)
        Box::pin(joined.map(|res, _, _| {
            res.map_err(|e| match e.error {
                ErrorCode::Internal => e,
                code => CommandError::new(code, format!("cannot use these keys: {}", e.message)),
            })
        }))
    }
}

impl Handler<RemoveShare> for Shares {
    type Result = ResponseActFuture<Self, Result<(), CommandError>>;

    fn handle(&mut self, msg: RemoveShare, _: &mut Context<Self>) -> Self::Result {
        let canonical = std::fs::canonicalize(&msg.path).unwrap_or_else(|_| msg.path.clone());
        if self.rotating.values().any(|p| *p == canonical || *p == msg.path) {
            let e = CommandError::new(ErrorCode::Unavailable, "the share is moving to new keys; try again in a moment");
            return Box::pin(actix::fut::ready(Err(e)));
        }
        let found = self.table.borrow().by_path(&msg.path).map(|r| r.config.id);
        if let Some(id) = found {
            let mut gone = None;
            self.table.send_modify(|t| gone = t.remove(&id));
            if let Some(running) = gone {
                running.addr.do_send(StopShare);
            }
            self.exits.remove(&id);
            self.events.remove(&id);
            self.targets.stopped.do_send(ShareStopped { id, removed: true });
            self.targets.removed.do_send(ShareRemoved(id));
        }
        let (store, data_dir) = (self.store.clone(), self.data_dir.clone());
        let job = tokio::task::spawn_blocking(move || registry::remove_share(&store, &data_dir, &msg.path));
        Box::pin(job.into_actor(self).map(|joined, _, _| {
            let config = joined.map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))??;
            info!(share = %config.id, path = %config.path.display(), "share removed (files kept)");
            Ok(())
        }))
    }
}

impl Handler<RestartShare> for Shares {
    type Result = ();

    /// Stops what is left of the crashed pair, has its sessions closed, waits for its worker
    /// thread to finish its last job, then starts the share again (unless the user removed
    /// it meanwhile).
    fn handle(&mut self, RestartShare(id): RestartShare, ctx: &mut Context<Self>) {
        let mut gone = None;
        self.table.send_modify(|t| gone = t.remove(&id));
        let Some(running) = gone else { return };
        running.addr.do_send(StopShare);
        self.targets.stopped.do_send(ShareStopped { id, removed: false });
        let exited = self.exits.remove(&id);
        let (store, data_dir) = (self.store.clone(), self.data_dir.clone());
        let job = async move {
            if let Some(exited) = exited {
                if tokio::time::timeout(SHARE_EXIT_WAIT, exited.wait()).await.is_err() {
                    warn!(share = %id, "the share's worker thread is still busy; restarting beside it");
                }
            }
            tokio::task::spawn_blocking(move || {
                // Removed by the user meanwhile? Its registry entry tells.
                let config = registry::load_shares(&store)?.into_iter().find(|c| c.id == id);
                Ok::<_, registry::RegistryError>(config.and_then(|c| Self::prepare(&store, &data_dir, c)))
            })
            .await
        };
        ctx.spawn(job.into_actor(self).map(move |res, act, _| match res {
            Ok(Ok(Some(prepared))) => {
                info!(share = %id, path = %prepared.config.path.display(), "share restarted");
                act.run(prepared, Dial::Known);
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => error!(share = %id, error = %e, "cannot read the share list to restart the share"),
            Err(e) => error!(share = %id, error = %e, "cannot restart the share"),
        }));
    }
}

impl Handler<PauseShares> for Shares {
    type Result = ();

    fn handle(&mut self, PauseShares(paused): PauseShares, _: &mut Context<Self>) {
        self.paused = paused;
        for running in self.table.borrow().iter() {
            running.addr.do_send(SetTransfersPaused(paused));
        }
    }
}
