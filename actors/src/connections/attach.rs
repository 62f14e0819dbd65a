//! `add_share`: find a peer that has the share (the given address, or discovery's news for
//! the code's access ID), authenticate with the code, receive the keys, and have the
//! registry join the share.

use std::path::PathBuf;
use std::time::Duration;

use actix::{ActorFutureExt, Context, Handler, ResponseActFuture, WrapFuture};
use clearskies_protocol::access_code::{AccessCode, Credentials};
use clearskies_protocol::address::PeerAddr;
use clearskies_protocol::session::{KeyExchange, Role};
use clearskies_protocol::PeerId;
use tokio::sync::mpsc;
use tracing::warn;

use super::messages::{AddShare, JoinWith};
use super::Connections;
use crate::control::cmd::{CommandError, ErrorCode};
use crate::peer::actor::{Peer, PeerTargets, Purpose};
use crate::peer::channel::{self, ChannelError, TlsContext};
use crate::share::registry;
use crate::shares::messages::{ImportKeys, ShareCreated};
use crate::transport;

/// How long `add_share` without an address waits for discovery to find a peer.
const SEEK_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `add_share` waits for the key exchange after authenticating.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The SRP credentials a code or a username and password stand for.
fn credentials(with: &JoinWith) -> Result<Credentials, CommandError> {
    match with {
        JoinWith::Code(code) => code
            .parse::<AccessCode>()
            .map(|c| c.credentials())
            .map_err(|e| CommandError::new(ErrorCode::BadCode, format!("invalid access code: {e}"))),
        JoinWith::Custom { username, password } => Credentials::custom(username, password)
            .map_err(|e| CommandError::new(ErrorCode::BadCredentials, e.to_string())),
        // (Saved keys go to the registry instead.)
        JoinWith::Keys(_) => Err(CommandError::new(ErrorCode::BadKeys, "saved keys need no code")),
    }
}

/// Everything one attach needs, off the actor.
struct Attach {
    creds: Credentials,
    path: PathBuf,
    peer: Option<String>,
    peer_id: PeerId,
    tls: TlsContext,
    targets: PeerTargets,
    /// Addresses discovery finds for the code (without `peer`).
    found: Option<mpsc::Receiver<Vec<PeerAddr>>>,
    seek: Duration,
    /// Selective sync for the joined share.
    selection: clearskies_index::filter::Selection,
    dialer: transport::Dialer,
}

/// How one address worked out.
enum Tried {
    /// Joined: the share's ID.
    Joined(clearskies_protocol::Sha256Hash),
    /// Not reachable: try the next address.
    Unreachable(CommandError),
}

impl Attach {
    /// Tries the given address, or each address discovery finds until the deadline.
    async fn run(mut self) -> Result<ShareCreated, CommandError> {
        let deadline = tokio::time::Instant::now() + self.seek;
        let mut last_error = None;
        loop {
            let found = self.candidates(deadline, &mut last_error).await?;
            let candidates = self.dialer.candidates(found);
            match self.try_addresses(candidates).await? {
                Tried::Joined(id) => {
                    let path = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
                    return Ok(ShareCreated { path: path.display().to_string(), id: id.to_string() });
                }
                Tried::Unreachable(e) => last_error = Some(e),
            }
            if self.peer.is_some() {
                return Err(
                    last_error.unwrap_or_else(|| CommandError::new(ErrorCode::Unreachable, "no address worked"))
                );
            }
        }
    }

    /// The next addresses to try: the given one, or discovery's next news.
    async fn candidates(
        &mut self,
        deadline: tokio::time::Instant,
        last_error: &mut Option<CommandError>,
    ) -> Result<Vec<PeerAddr>, CommandError> {
        match (&self.peer, self.found.as_mut()) {
            (Some(peer), _) => self.dialer.resolve(peer).await.map_err(|e| {
                CommandError::new(ErrorCode::BadPeer, format!("cannot resolve {peer:?} (use HOST:PORT): {e}"))
            }),
            (None, Some(rx)) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(addrs)) => Ok(addrs),
                _ => Err(last_error.take().unwrap_or_else(|| {
                    CommandError::new(
                        ErrorCode::NoPeerFound,
                        format!(
                            "no peer with this share was found in {} s (is the sharing daemon running, on the \
                             same tracker or LAN, and the code still unused and unexpired?); or give --peer \
                             HOST:PORT",
                            self.seek.as_secs()
                        ),
                    )
                })),
            },
            (None, None) => Err(CommandError::new(
                ErrorCode::NoPeer,
                "no tracker is configured and LAN discovery is off: give the address of a peer that has the \
                 share (--peer HOST:PORT)",
            )),
        }
    }

    /// Connects to the first of `addrs` to answer with the code, and waits for the keys and
    /// the join. An address where the handshake fails, refused or not, is dropped and the
    /// others tried again (a LAN address in a peer's list may be another computer here); a
    /// refusal ends the attach only when no address is left.
    async fn try_addresses(&self, mut addrs: Vec<PeerAddr>) -> Result<Tried, CommandError> {
        let mut refused = None;
        let ch = loop {
            let (stream, addr) = match self.dialer.connect_first(&addrs).await {
                Ok(connected) => connected,
                Err(e) => {
                    return match refused {
                        Some(refusal) => Err(refusal),
                        None => Ok(Tried::Unreachable(CommandError::new(
                            ErrorCode::Unreachable,
                            format!("cannot connect: {e}"),
                        ))),
                    }
                }
            };
            addrs.retain(|a| *a != addr);
            match channel::connect(stream, &self.tls, self.creds.id, &self.creds.password).await {
                Ok(ch) => break (ch, addr),
                Err(ChannelError::Refused(reason)) if channel::Refusal::of(&reason) == channel::Refusal::Throttled => {
                    refused = Some(CommandError::new(ErrorCode::Throttled, format!("the peer refused: {reason}")));
                }
                Err(ChannelError::Refused(_) | ChannelError::AuthFailed { .. }) => {
                    refused = Some(CommandError::new(
                        ErrorCode::CodeRefused,
                        "the peer refused the access code or password (mistyped, expired, cancelled or already used)",
                    ));
                }
                Err(other) if addrs.is_empty() && refused.is_none() => {
                    let message = format!("cannot connect to {addr}: {other}");
                    return Ok(Tried::Unreachable(CommandError::new(ErrorCode::Unreachable, message)));
                }
                Err(_) => {}
            }
            if addrs.is_empty() {
                if let Some(refusal) = refused {
                    return Err(refusal);
                }
            }
        };
        let (ch, addr) = ch;
        let (done, joined) = tokio::sync::oneshot::channel();
        let purpose = Purpose::Attach { path: self.path.clone(), selection: self.selection.clone(), done: Some(done) };
        Peer::new(ch, Role::Client, KeyExchange::Receive, self.peer_id, purpose, addr.addr, self.targets.clone())
            .spawn();
        let id = tokio::time::timeout(JOIN_TIMEOUT, joined)
            .await
            .map_err(|_| CommandError::new(ErrorCode::Timeout, "the peer did not send the share's keys in time"))?
            .map_err(|_| CommandError::new(ErrorCode::PeerClosed, "the connection ended during the key exchange"))??;
        Ok(Tried::Joined(id))
    }
}

impl Handler<AddShare> for Connections {
    type Result = ResponseActFuture<Self, Result<ShareCreated, CommandError>>;

    fn handle(&mut self, msg: AddShare, ctx: &mut Context<Self>) -> Self::Result {
        match self.start_attach(msg, ctx) {
            Ok(attach) => attach,
            Err(e) => Box::pin(actix::fut::ready(Err(e))),
        }
    }
}

impl Connections {
    /// Checks an `add_share` and starts it: with saved keys through the registry, else the
    /// attach loop (registered as seeking its code's access ID while discovery may help).
    fn start_attach(
        &mut self,
        msg: AddShare,
        ctx: &mut Context<Self>,
    ) -> Result<ResponseActFuture<Self, Result<ShareCreated, CommandError>>, CommandError> {
        msg.selection.validate().map_err(|message| CommandError::new(ErrorCode::BadSelection, message))?;
        // Before any code is tried (and spent): never into the data directory, nor into a
        // file or a path under one. (What is missing of the path is created only by the join.)
        registry::check_not_data_dir(&self.data_dir, &msg.path)?;
        registry::missing_dirs(&msg.path)?;
        let AddShare { with, path, peer, timeout, selection } = msg;
        if let JoinWith::Keys(keys) = with {
            let peer = peer.ok_or_else(|| {
                CommandError::new(
                    ErrorCode::NoPeer,
                    "with saved keys, give the address of a peer to restore from (--peer)",
                )
            })?;
            let import = self.targets.import.send(ImportKeys { keys, path, peer, selection });
            return Ok(Box::pin(
                async move { import.await.map_err(|_| CommandError::unavailable())? }.into_actor(self),
            ));
        }
        let creds = credentials(&with)?;
        if let Some(r) = self.table.borrow().by_path(&path) {
            let e =
                CommandError::new(ErrorCode::AlreadyShared, format!("{} is already shared", r.config.path.display()));
            return Err(e);
        }
        let mut peer_id = [0u8; 16];
        getrandom::fill(&mut peer_id).map_err(|_| CommandError::new(ErrorCode::RandomFailed, "the OS RNG failed"))?;
        let tls = self
            .tls
            .clone()
            .ok_or_else(|| CommandError::new(ErrorCode::TlsUnavailable, "TLS could not be set up; see the log"))?;
        // Without an address, discovery looks for peers announcing the code's access ID.
        let (seek_id, found) = match (&peer, self.can_discover) {
            (None, true) => {
                let (tx, rx) = mpsc::channel(8);
                self.seeking.insert(creds.id, (PeerId(peer_id), tx));
                self.update_ids();
                (Some(creds.id), Some(rx))
            }
            _ => (None, None),
        };
        let seek = timeout.map_or(SEEK_TIMEOUT, |s| Duration::from_secs(s.clamp(1, 600)));
        let targets = self.peer_targets(ctx);
        let attach = Attach {
            creds,
            path,
            peer,
            peer_id: PeerId(peer_id),
            tls,
            targets,
            found,
            seek,
            selection,
            dialer: self.dialer.clone(),
        };
        Ok(Box::pin(attach.run().into_actor(self).map(move |res, act, _| {
            if let Some(id) = seek_id {
                act.seeking.remove(&id);
                act.update_ids();
            }
            if let Err(e) = &res {
                warn!(error = %e.message, "attach failed");
            }
            res
        })))
    }
}
