//! Commands about one share, found by path and forwarded to its actor, and `list_shares`.

use std::path::{Path, PathBuf};

use actix::{Context, Handler, ResponseFuture};

use super::messages::{
    ConfirmDeletes, FileUrl, ForgetPeer, History, ListFiles, ListShares, ReadFile, SubscribeShareEvents, VerifyBackup,
};
use super::Shares;
use crate::connections::messages::AuthRefused;
use crate::control::cmd::{CommandError, ErrorCode, Mode};
use crate::share::messages::{self as share_messages, BackupCheck, GetShareStatus, Reading, ShareStatus, SyncState};
use crate::share::Share;

/// The error for a path that is not a shared directory.
fn not_shared(path: &Path) -> CommandError {
    CommandError::new(ErrorCode::NotShared, format!("{} is not a shared directory", path.display()))
}

impl Shares {
    /// Sends `msg` to the `Share` actor of the share at `path`: `not_shared` if there is
    /// none, `unavailable` if it is restarting.
    fn forward<M>(&self, path: &Path, msg: M) -> ResponseFuture<Result<M::Result, CommandError>>
    where
        M: actix::Message + Send + 'static,
        M::Result: Send,
        Share: Handler<M>,
    {
        let share = self.table.borrow().by_path(path).map(|r| r.addr.clone());
        let missing = not_shared(path);
        Box::pin(async move {
            share
                .ok_or(missing)?
                .send(msg)
                .await
                .map_err(|_| CommandError::new(ErrorCode::Unavailable, "the share is restarting"))
        })
    }
}

impl Handler<ListShares> for Shares {
    type Result = ResponseFuture<Vec<ShareStatus>>;

    fn handle(&mut self, _: ListShares, _: &mut Context<Self>) -> Self::Result {
        let asks: Vec<_> =
            self.table.borrow().iter().map(|r| (r.config.clone(), r.addr.send(GetShareStatus))).collect();
        let refused = self.targets.auth_refused.send(AuthRefused);
        Box::pin(async move {
            let refused = refused.await.unwrap_or_default();
            let mut out = Vec::with_capacity(asks.len());
            for (config, ask) in asks {
                let id = config.id;
                let mut status = ask.await.unwrap_or_else(|_| unavailable_share(config.path.clone()));
                status.id = id.to_string();
                status.peer_id = config.peer_id.to_string();
                status.selection = config.selection;
                if refused.contains(&id) && status.peers == 0 && status.status != SyncState::Error {
                    status.status = SyncState::Error;
                    status.error = Some(
                        "the share's peers refuse our key (authentication failed): they may have removed the \
                         share; attach again with a new code"
                            .into(),
                    );
                    status.synced = false;
                }
                out.push(status);
            }
            out
        })
    }
}

/// The status of a share whose actor does not answer.
fn unavailable_share(path: PathBuf) -> ShareStatus {
    ShareStatus {
        path: path.display().to_string(),
        status: SyncState::Error,
        error: Some("the share's actor is restarting".into()),
        mode: Mode::Unknown,
        files: 0,
        directories: 0,
        bytes: 0,
        revision: 0,
        synced: false,
        pending_files: 0,
        pending_bytes: 0,
        partial_bytes: None,
        selection: Default::default(),
        peers: 0,
        local_changes: 0,
        held_deletions: 0,
        unwatched: None,
        alone_since: None,
        id: String::new(),
        peer_id: String::new(),
        in_sync_since: None,
        last_synced: None,
    }
}

impl Handler<SubscribeShareEvents> for Shares {
    type Result = Result<tokio::sync::broadcast::Receiver<crate::share::ShareEvent>, CommandError>;

    fn handle(&mut self, msg: SubscribeShareEvents, _: &mut Context<Self>) -> Self::Result {
        let id = self.table.borrow().by_path(&msg.path).map(|r| r.config.id).ok_or_else(|| not_shared(&msg.path))?;
        self.events.get(&id).map(tokio::sync::broadcast::Sender::subscribe).ok_or_else(|| not_shared(&msg.path))
    }
}

impl Handler<VerifyBackup> for Shares {
    type Result = ResponseFuture<Result<Vec<BackupCheck>, CommandError>>;

    fn handle(&mut self, msg: VerifyBackup, _: &mut Context<Self>) -> Self::Result {
        self.forward(&msg.path, share_messages::VerifyBackup { files: msg.files })
    }
}

impl Handler<ConfirmDeletes> for Shares {
    type Result = ResponseFuture<Result<crate::control::cmd::Held, CommandError>>;

    fn handle(&mut self, msg: ConfirmDeletes, _: &mut Context<Self>) -> Self::Result {
        self.forward(&msg.path, share_messages::ConfirmDeletes { dry_run: msg.dry_run })
    }
}

impl Handler<ForgetPeer> for Shares {
    type Result = Result<String, CommandError>;

    fn handle(&mut self, msg: ForgetPeer, _: &mut Context<Self>) -> Self::Result {
        let Some(running) = self.table.borrow().get(&msg.share).cloned() else {
            return Err(CommandError::new(ErrorCode::NotShared, "the share is not running"));
        };
        let mut config = running.config;
        if !config.removed_peers.contains(&msg.peer) {
            config.removed_peers.push(msg.peer);
        }
        config.peers.retain(|a| !msg.addresses.contains(a));
        // One small write: the refusal must survive a restart before it is reported done.
        crate::share::registry::save_config(&self.store, &config)
            .map_err(|e| CommandError::new(ErrorCode::DatabaseError, e.to_string()))?;
        let path = config.path.display().to_string();
        tracing::info!(share = %msg.share, peer = %msg.peer, "peer removed: refused from now on");
        self.table.send_modify(|t| {
            if let Some(r) = t.get_mut(&msg.share) {
                r.config = config;
            }
        });
        Ok(path)
    }
}

impl Handler<History> for Shares {
    type Result = ResponseFuture<Result<share_messages::HistoryAnswer, CommandError>>;

    fn handle(&mut self, msg: History, _: &mut Context<Self>) -> Self::Result {
        let answer = self.forward(&msg.path, msg.op);
        Box::pin(async move { answer.await? })
    }
}

impl Handler<ListFiles> for Shares {
    type Result = ResponseFuture<Result<share_messages::Listing, CommandError>>;

    fn handle(&mut self, msg: ListFiles, _: &mut Context<Self>) -> Self::Result {
        let listing = self.forward(&msg.path, msg.list);
        Box::pin(async move { listing.await? })
    }
}

impl Handler<ReadFile> for Shares {
    type Result = ResponseFuture<Result<Reading, CommandError>>;

    fn handle(&mut self, msg: ReadFile, _: &mut Context<Self>) -> Self::Result {
        let reading = self.forward(&msg.path, msg.read);
        Box::pin(async move { reading.await? })
    }
}

impl Handler<FileUrl> for Shares {
    type Result = Result<String, CommandError>;

    fn handle(&mut self, msg: FileUrl, _: &mut Context<Self>) -> Self::Result {
        let Some(id) = self.table.borrow().by_path(&msg.path).map(|r| r.config.id) else {
            return Err(not_shared(&msg.path));
        };
        let addr = match self.files.addr {
            Some(a) if a.ip().is_loopback() && !self.files.token.is_empty() => a,
            _ => {
                let why = "files are served over HTTP only on a loopback metrics address (metrics_address)";
                return Err(CommandError::new(ErrorCode::NoHttp, why));
            }
        };
        let lifetime = msg.lifetime.unwrap_or(crate::web::DEFAULT_URL_LIFETIME);
        if lifetime == 0 || lifetime > crate::web::MAX_URL_LIFETIME {
            let why = format!("an address is valid for 1 s to {} days", crate::web::MAX_URL_LIFETIME / 86_400);
            return Err(CommandError::new(ErrorCode::BadExpiry, why));
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let token = crate::web::url_token(self.files.token.as_bytes(), &id.to_string(), &msg.file, now + lifetime);
        Ok(format!("http://{addr}/files/{token}/{id}/{}", crate::web::url_path(&msg.file)))
    }
}
