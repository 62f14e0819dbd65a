//! The root actor of the worker: it starts the other actors, wires them together through
//! `Recipient`s and answers daemon-wide requests (status, pause, stop, shares, codes).
//!
//! Registry work (RocksDB writes, key files) runs on the blocking pool; the supervisor only
//! updates its map of share actors with the result.

pub mod messages;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, MessageResult, ResponseActFuture, System, WrapFuture,
};
use clearskies_protocol::message::core::AccessLevel;
use clearskies_protocol::Sha256Hash;
use tracing::{error, info};

use self::messages::{
    CodeCreated, CommandError, CreateAccessCode, CreateShare, GetStatus, ListShares, RemoveShare, SetPaused,
    ShareCreated, Shutdown, Status,
};
use crate::control::{Control, ControlTargets};
use crate::share::messages::{GetShareStatus, ShareStatus, StopShare};
use crate::share::registry::{self, ShareConfig};
use crate::share::store::Store;
use crate::share::Share;
use crate::Settings;

/// The worker's root actor.
#[derive(Debug)]
pub struct Supervisor {
    settings: Settings,
    store: Store,
    started: Instant,
    paused: bool,
    control_listener: Option<std::os::unix::net::UnixListener>,
    control: Option<Addr<Control>>,
    shares: BTreeMap<Sha256Hash, (ShareConfig, Addr<Share>)>,
}

impl Supervisor {
    /// A supervisor that will serve the control socket on `control_listener` (already bound
    /// by the caller, so that a second daemon fails before any actor starts) and keep its
    /// index in `store`.
    pub fn new(settings: Settings, store: Store, control_listener: std::os::unix::net::UnixListener) -> Self {
        Supervisor {
            settings,
            store,
            started: Instant::now(),
            paused: false,
            control_listener: Some(control_listener),
            control: None,
            shares: BTreeMap::new(),
        }
    }

    fn start_share(&mut self, config: ShareConfig) {
        match self.store.share(&config.store_key()) {
            Ok(store) => {
                let addr = Share::new(config.path.clone(), config.peer_id, config.mode(), store).start();
                self.shares.insert(config.id, (config, addr));
            }
            Err(e) => error!(share = %config.id, error = %e, "cannot open the share's index"),
        }
    }

    fn share_by_path(&self, path: &std::path::Path) -> Option<&ShareConfig> {
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        self.shares.values().map(|(c, _)| c).find(|c| c.path == canonical || c.path == path)
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let me = ctx.address();
        let targets = ControlTargets {
            status: me.clone().recipient(),
            pause: me.clone().recipient(),
            shutdown: me.clone().recipient(),
            create_share: me.clone().recipient(),
            list_shares: me.clone().recipient(),
            remove_share: me.clone().recipient(),
            create_access_code: me.recipient(),
        };
        if let Some(listener) = self.control_listener.take() {
            self.control = Some(Control::new(listener, self.settings.software.clone(), targets).start());
        }
        match registry::load_shares(&self.store) {
            Ok(configs) => configs.into_iter().for_each(|c| self.start_share(c)),
            Err(e) => error!(error = %e, "cannot load the share list"),
        }
        info!(data_dir = %self.settings.data_dir.display(), shares = self.shares.len(), "worker started");
    }
}

impl Handler<GetStatus> for Supervisor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(Status {
            paused: self.paused,
            tracking: false,
            nat_punctured: false,
            upload_rate: 0,
            download_rate: 0,
            software: self.settings.software.clone(),
            pid: std::process::id(),
            uptime_seconds: self.started.elapsed().as_secs(),
        })
    }
}

impl Handler<SetPaused> for Supervisor {
    type Result = ();

    fn handle(&mut self, SetPaused(paused): SetPaused, _: &mut Context<Self>) {
        if self.paused != paused {
            info!(paused, "sync {}", if paused { "paused" } else { "resumed" });
        }
        self.paused = paused;
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) {
        info!("stopping on request");
        System::current().stop();
    }
}

impl Handler<CreateShare> for Supervisor {
    type Result = ResponseActFuture<Self, Result<ShareCreated, CommandError>>;

    fn handle(&mut self, msg: CreateShare, _: &mut Context<Self>) -> Self::Result {
        let (store, data_dir) = (self.store.clone(), self.settings.data_dir.clone());
        let now = crate::share::actor::now();
        let job = tokio::task::spawn_blocking(move || registry::create_share(&store, &data_dir, &msg.path, now));
        Box::pin(job.into_actor(self).map(|joined, act, _| {
            let config = joined.map_err(|e| CommandError::new("internal", e.to_string()))??;
            info!(share = %config.id, path = %config.path.display(), "share created");
            let created = ShareCreated { path: config.path.display().to_string(), id: config.id.to_string() };
            act.start_share(config);
            Ok(created)
        }))
    }
}

impl Handler<ListShares> for Supervisor {
    type Result = ResponseActFuture<Self, Vec<ShareStatus>>;

    fn handle(&mut self, _: ListShares, _: &mut Context<Self>) -> Self::Result {
        let asks: Vec<_> = self.shares.values().map(|(c, a)| (c.path.clone(), a.send(GetShareStatus))).collect();
        Box::pin(
            async move {
                let mut out = Vec::with_capacity(asks.len());
                for (path, ask) in asks {
                    out.push(ask.await.unwrap_or_else(|_| unavailable_share(path)));
                }
                out
            }
            .into_actor(self),
        )
    }
}

fn unavailable_share(path: PathBuf) -> ShareStatus {
    ShareStatus {
        path: path.display().to_string(),
        status: "error",
        error: Some("the share's actor is restarting".into()),
        mode: "unknown",
        files: 0,
        directories: 0,
        bytes: 0,
        revision: 0,
        synced: false,
    }
}

impl Handler<RemoveShare> for Supervisor {
    type Result = ResponseActFuture<Self, Result<(), CommandError>>;

    fn handle(&mut self, msg: RemoveShare, _: &mut Context<Self>) -> Self::Result {
        if let Some(id) = self.share_by_path(&msg.path).map(|c| c.id) {
            if let Some((_, addr)) = self.shares.remove(&id) {
                addr.do_send(StopShare);
            }
        }
        let (store, data_dir) = (self.store.clone(), self.settings.data_dir.clone());
        let job = tokio::task::spawn_blocking(move || registry::remove_share(&store, &data_dir, &msg.path));
        Box::pin(job.into_actor(self).map(|joined, _, _| {
            let config = joined.map_err(|e| CommandError::new("internal", e.to_string()))??;
            info!(share = %config.id, path = %config.path.display(), "share removed (files kept)");
            Ok(())
        }))
    }
}

impl Handler<CreateAccessCode> for Supervisor {
    type Result = ResponseActFuture<Self, Result<CodeCreated, CommandError>>;

    fn handle(&mut self, msg: CreateAccessCode, _: &mut Context<Self>) -> Self::Result {
        let share = self.share_by_path(&msg.path).cloned();
        let store = self.store.clone();
        let now = crate::share::actor::now();
        let job = async move {
            let share = share
                .ok_or_else(|| CommandError::new("not_shared", format!("{} is not shared", msg.path.display())))?;
            let level = match msg.mode.as_str() {
                "read_write" | "read-write" => AccessLevel::ReadWrite,
                "read_only" | "read-only" | "untrusted" => {
                    return Err(CommandError::new(
                        "unsupported_mode",
                        format!("{} shares are not supported yet; use read_write", msg.mode),
                    ))
                }
                other => return Err(CommandError::new("bad_mode", format!("unknown mode {other:?}"))),
            };
            if msg.expires_in <= 0 {
                return Err(CommandError::new("bad_expiry", "a code must stay valid for at least one second"));
            }
            let (expires_in, multi_use) = (msg.expires_in, msg.multi_use);
            let code = tokio::task::spawn_blocking(move || {
                registry::create_code(&store, &share, level, expires_in, multi_use, now)
            })
            .await
            .map_err(|e| CommandError::new("internal", e.to_string()))??;
            Ok(CodeCreated {
                access_code: code.to_string(),
                url: code.to_url(),
                expires: now.secs().saturating_add(msg.expires_in),
            })
        };
        Box::pin(job.into_actor(self))
    }
}
