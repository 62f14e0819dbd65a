//! The `Peer` actor: one connection. It owns a `protocol::Session` and drives it the way
//! quinn's `ConnectionDriver` drives a connection: bytes in → `handle_input`, then drain
//! `poll_event` and `poll_transmit`, then re-arm the one timer from `poll_timeout`.
//!
//! Reading is a stream the actor consumes (`StreamHandler`); writing goes through a task
//! that owns the TLS write half. Peers are not restarted: a failed connection ends here and
//! is dialled again by whoever wants it.

use std::net::SocketAddr;
use std::time::Instant;

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Recipient, SpawnHandle, StreamHandler, WrapFuture,
};
use bytes::Bytes;
use clearskies_protocol::session::{
    CloseReason, Config, Event, KeyExchange, Role, Session, EXT_DATABASE, EXT_DIRECTORY,
};
use clearskies_protocol::{PeerId, Sha256Hash};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use tokio_util::io::ReaderStream;
use tracing::{debug, info, warn};

use super::channel::Channel;
use super::messages::{CodeUsed, CredentialKind, JoinShare, PeerConnected, PeerDisconnected, ReleaseCredential};
use crate::supervisor::messages::CommandError;

/// The supervisor's side of a peer connection.
#[derive(Debug, Clone)]
pub struct PeerTargets {
    /// Code used up.
    pub code_used: Recipient<CodeUsed>,
    /// Claim released.
    pub release: Recipient<ReleaseCredential>,
    /// Keys received on an attach.
    pub join: Recipient<JoinShare>,
    /// Session ready.
    pub connected: Recipient<PeerConnected>,
    /// Session over.
    pub disconnected: Recipient<PeerDisconnected>,
}

/// Why this connection exists.
#[derive(Debug)]
pub enum Purpose {
    /// We accepted it, authenticated with `kind` for `share`.
    Accepted {
        /// The access ID or key ID used.
        id: Sha256Hash,
        /// Code or key.
        kind: CredentialKind,
        /// The share.
        share: Sha256Hash,
    },
    /// We dialled it with an access code to join a share at `path`.
    Attach {
        /// Where the share goes.
        path: std::path::PathBuf,
        /// Told once the join succeeded or failed.
        done: Option<oneshot::Sender<Result<Sha256Hash, CommandError>>>,
    },
    /// We dialled it with a share key.
    Rejoin {
        /// The share.
        share: Sha256Hash,
    },
}

/// One peer connection.
pub struct Peer {
    session: Session,
    leftover: Option<Bytes>,
    stream: Option<tokio::io::ReadHalf<tokio_rustls::TlsStream<tokio::net::TcpStream>>>,
    writer: mpsc::UnboundedSender<Bytes>,
    writer_rx:
        Option<(mpsc::UnboundedReceiver<Bytes>, tokio::io::WriteHalf<tokio_rustls::TlsStream<tokio::net::TcpStream>>)>,
    timer: Option<SpawnHandle>,
    purpose: Purpose,
    our_peer_id: PeerId,
    remote: SocketAddr,
    share: Option<Sha256Hash>,
    peer: Option<PeerId>,
    close_reason: Option<String>,
    targets: PeerTargets,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").field("remote", &self.remote).field("share", &self.share).finish_non_exhaustive()
    }
}

impl Peer {
    /// A peer over an authenticated channel. `our_peer_id` is our ID in the share; for an
    /// attach it is the new ID the share will get.
    pub fn new(
        channel: Channel,
        role: Role,
        key_exchange: KeyExchange,
        our_peer_id: PeerId,
        purpose: Purpose,
        remote: SocketAddr,
        targets: PeerTargets,
    ) -> Self {
        let mut config = Config::new(role, our_peer_id);
        config.software = crate::SOFTWARE.to_owned();
        config.extensions = vec![EXT_DATABASE.to_owned(), EXT_DIRECTORY.to_owned()];
        config.key_exchange = key_exchange;
        let session = Session::new(config, Instant::now());
        let (read, write) = tokio::io::split(channel.stream);
        let (tx, rx) = mpsc::unbounded_channel();
        let share = match &purpose {
            Purpose::Accepted { share, .. } | Purpose::Rejoin { share } => Some(*share),
            Purpose::Attach { .. } => None,
        };
        Peer {
            session,
            leftover: Some(channel.leftover.freeze()),
            stream: Some(read),
            writer: tx,
            writer_rx: Some((rx, write)),
            timer: None,
            purpose,
            our_peer_id,
            remote,
            share,
            peer: None,
            close_reason: None,
            targets,
        }
    }

    fn drive(&mut self, ctx: &mut Context<Self>) {
        while let Some(event) = self.session.poll_event() {
            self.handle_event(event, ctx);
        }
        while let Some(bytes) = self.session.poll_transmit() {
            if self.writer.send(bytes).is_err() {
                self.close_reason.get_or_insert_with(|| "connection lost while writing".into());
                ctx.stop();
                return;
            }
        }
        if let Some(h) = self.timer.take() {
            ctx.cancel_future(h);
        }
        if let Some(at) = self.session.poll_timeout() {
            let delay = at.saturating_duration_since(Instant::now());
            self.timer = Some(ctx.run_later(delay, |act, ctx| {
                act.timer = None;
                act.session.handle_timeout(Instant::now());
                act.drive(ctx);
            }));
        }
    }

    fn handle_event(&mut self, event: Event, ctx: &mut Context<Self>) {
        match event {
            Event::Connected(hs) => {
                debug!(remote = %self.remote, peer = %hs.peer, software = %hs.software, "handshake complete");
                self.peer = Some(hs.peer);
            }
            Event::KeysReceived(keys) => {
                let Purpose::Attach { path, .. } = &self.purpose else {
                    // The session only emits this when we asked to receive keys.
                    return;
                };
                let join = JoinShare { keys, path: path.clone(), peer_id: self.our_peer_id, via: self.remote };
                let ask = self.targets.join.send(join);
                ctx.spawn(ask.into_actor(self).map(|answer, act, ctx| {
                    let result = answer.unwrap_or_else(|e| Err(CommandError::new("internal", e.to_string())));
                    match &result {
                        Ok(share) => {
                            act.share = Some(*share);
                            if act.session.acknowledge_keys().is_err() {
                                act.close_reason = Some("key exchange out of order".into());
                                ctx.stop();
                            }
                        }
                        Err(e) => {
                            act.close_reason = Some(format!("could not join: {}", e.message));
                            act.session.close();
                        }
                    }
                    if let Purpose::Attach { done, .. } = &mut act.purpose {
                        if let Some(done) = done.take() {
                            let _ = done.send(result);
                        }
                    }
                    act.drive(ctx);
                }));
            }
            Event::KeysAcknowledged => {
                if let (Purpose::Accepted { id, kind: CredentialKind::Code, .. }, Some(peer)) =
                    (&self.purpose, self.peer)
                {
                    self.targets.code_used.do_send(CodeUsed { access_id: *id, peer });
                }
            }
            Event::Ready => {
                if let (Some(share), Some(peer)) = (self.share, self.peer) {
                    info!(remote = %self.remote, %peer, %share, "peer connected");
                    self.targets.connected.do_send(PeerConnected { share, peer, addr: self.remote });
                }
            }
            Event::Message(m) => {
                // Sync messages are handled by the share and transfer work of the read-write
                // slice; until then they are logged and ignored, as unknown types are.
                debug!(remote = %self.remote, kind = m.message.kind(), "message ignored");
            }
            Event::AttachmentChunk(_) | Event::AttachmentEnd => {}
            Event::Closed(reason) => {
                let text = match reason {
                    CloseReason::Local => self.close_reason.clone().unwrap_or_else(|| "closed".into()),
                    CloseReason::Error(e) => e.to_string(),
                };
                self.close_reason = Some(text);
                ctx.stop();
            }
        }
    }
}

impl Actor for Peer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some((mut rx, mut write)) = self.writer_rx.take() {
            actix_rt::spawn(async move {
                while let Some(bytes) = rx.recv().await {
                    if write.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                let _ = write.shutdown().await;
            });
        }
        if let Some(read) = self.stream.take() {
            ctx.add_stream(ReaderStream::with_capacity(read, 256 * 1024));
        }
        if let Some(bytes) = self.leftover.take() {
            if !bytes.is_empty() {
                self.session.handle_input(Instant::now(), &bytes);
            }
        }
        self.drive(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        let reason = self.close_reason.take().unwrap_or_else(|| "connection closed".into());
        if let Purpose::Attach { done, .. } = &mut self.purpose {
            if let Some(done) = done.take() {
                let _ = done
                    .send(Err(CommandError::new("peer_closed", format!("the peer closed the connection: {reason}"))));
            }
        }
        if let Purpose::Accepted { id, kind: CredentialKind::Code, .. } = &self.purpose {
            self.targets.release.do_send(ReleaseCredential(*id));
        }
        if self.share.is_some() {
            warn!(remote = %self.remote, %reason, "peer disconnected");
        } else {
            debug!(remote = %self.remote, %reason, "connection ended");
        }
        self.targets.disconnected.do_send(PeerDisconnected {
            share: self.share,
            peer: self.peer,
            addr: self.remote,
            reason,
        });
    }
}

impl StreamHandler<Result<Bytes, std::io::Error>> for Peer {
    fn handle(&mut self, item: Result<Bytes, std::io::Error>, ctx: &mut Context<Self>) {
        match item {
            Ok(bytes) => {
                self.session.handle_input(Instant::now(), &bytes);
                self.drive(ctx);
            }
            Err(e) => {
                self.close_reason = Some(format!("read failed: {e}"));
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        self.close_reason.get_or_insert_with(|| "the peer hung up".into());
        ctx.stop();
    }
}
