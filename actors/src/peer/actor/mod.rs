//! The `Peer` actor: one connection. It owns a `protocol::Session` and drives it the way
//! quinn's `ConnectionDriver` drives a connection: bytes in → `handle_input`, then drain
//! `poll_event` and `poll_transmit`, then re-arm the one timer from `poll_timeout`.
//!
//! Reading is a stream the actor consumes (`StreamHandler`); writing goes through a task
//! that owns the TLS write half. Peers are not restarted: a failed connection ends here and
//! is dialled again by whoever wants it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Recipient, SpawnHandle, StreamHandler,
    WrapFuture,
};
use bytes::Bytes;
use clearskies_index::record::Record;
use clearskies_protocol::address::PeerAddr;
use clearskies_protocol::message::code_spread::{EXT_CODE_SPREAD, MAX_SPREAD};
use clearskies_protocol::message::core::AccessLevel;
use clearskies_protocol::message::directory::GetError;
use clearskies_protocol::message::Message;
use clearskies_protocol::session::{
    CloseReason, Config, Event, KeyExchange, Role, Session, EXT_DATABASE, EXT_DIRECTORY, EXT_GZIP, EXT_MSGPACK,
    EXT_RSYNC, EXT_RSYNC_REFINE,
};
use clearskies_protocol::{PeerId, Sha256Hash};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

use super::channel::Channel;
use super::messages::{
    clean_name, CodeUsed, CredentialKind, JoinShare, PeerCodes, PeerConnected, PeerDisconnected, PeerFault, PeerOut,
    Redial, ReleaseCredential, Traffic,
};
use crate::bandwidth::bandwidth;
use crate::control::cmd::CommandError;
use crate::control::cmd::ErrorCode;
use crate::metrics::metrics;
use crate::share::messages::{FromPeer, PeerDown, ShareLink, SyncMessage};
use crate::supervise::{self, injected_panic, ActorKind, Crashed};
use crate::transfer::messages::{DataStart, Inbound, Missing, ServeGet, Sink, SinkItem};

mod ready;
mod rekey;
mod send;

use self::rekey::check_signature;

use send::Body;

/// Attachment chunk size we send (the spec recommends 1 MiB).
pub const CHUNK: usize = 1 << 20;
/// Bytes of file data a connection may have read but not yet written to the socket.
const SEND_BUDGET: usize = 8 << 20;

/// Index messages a connection may have handed to its share and not yet seen taken in.
const SYNC_IN_FLIGHT: usize = 1024;
/// The access level of every session until read-only and untrusted peers exist (issue 5).
/// What a peer is told when an answer does not fit in one gzip message.
pub const GZIP_TOO_LARGE: &str = "too large for one gzip message; ask for ranges";
/// Files a connection queues for sending behind the one being sent.
const MAX_QUEUED_FILES: usize = 64;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

pub(super) type Outgoing = (Bytes, Option<OwnedSemaphorePermit>);

/// Where a peer connection reports: the owners (see `peer::messages`) and the supervisor.
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
    /// The connection's actor panicked.
    pub crashed: Recipient<Crashed>,
    /// The settings in effect (`gzip_level`).
    pub runtime: crate::config::Runtime,
    /// The registry: a peer sent the share's new keys.
    pub rekeyed: Recipient<super::messages::Rekeyed>,
    /// Connections: the peer spread codes.
    pub codes: Recipient<super::messages::PeerCodes>,
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
        /// The level of the key or code.
        level: clearskies_protocol::message::core::AccessLevel,
    },
    /// We dialled it with an access code to join a share at `path`.
    Attach {
        /// Where the share goes.
        path: std::path::PathBuf,
        /// Selective sync for it.
        selection: clearskies_index::filter::Selection,
        /// Told once the join succeeded or failed.
        done: Option<oneshot::Sender<Result<Sha256Hash, CommandError>>>,
    },
    /// We dialled an address discovery found, with a share key.
    Found {
        /// The share.
        share: Sha256Hash,
        /// The level of the key that opened the connection.
        level: clearskies_protocol::message::core::AccessLevel,
    },
    /// We dialled it with a share key.
    Rejoin {
        /// The share.
        share: Sha256Hash,
        /// The address as configured or remembered (`HOST:PORT`), dialled again on loss.
        dialled: String,
        /// The level of the key that opened the connection.
        level: clearskies_protocol::message::core::AccessLevel,
    },
}

/// One peer connection.
pub struct Peer {
    conn: u64,
    session: Session,
    leftover: Option<Bytes>,
    stream: Option<tokio::io::ReadHalf<tokio_rustls::TlsStream<crate::transport::Stream>>>,
    writer: mpsc::UnboundedSender<Outgoing>,
    writer_rx: Option<(
        mpsc::UnboundedReceiver<Outgoing>,
        tokio::io::WriteHalf<tokio_rustls::TlsStream<crate::transport::Stream>>,
    )>,
    /// Bounds file data between the reader thread and the socket.
    budget: Arc<Semaphore>,
    /// Bounds index messages handed to the share and not yet taken in.
    sync_permits: Arc<Semaphore>,
    /// The share's side, once the session is ready.
    link: Option<ShareLink>,
    /// Where the chunks of the attachment being received go (`None`: discarded).
    sink: Option<Sink>,
    /// Events are not drained while an answer or a slow consumer is awaited.
    waiting: bool,
    /// A file is being sent; other output waits in `outbox`.
    sending_file: bool,
    /// The contents the attachment being sent answers a request for.
    answering: Option<Sha256Hash>,
    outbox: VecDeque<PeerOut>,
    timer: Option<SpawnHandle>,
    purpose: Purpose,
    our_peer_id: PeerId,
    remote: PeerAddr,
    share: Option<Sha256Hash>,
    peer: Option<PeerId>,
    /// Both sides speak the `rsync` extension.
    rsync: bool,
    /// Both sides speak `.rs.clearskies.rsync-refine` too.
    refine: bool,
    /// `gzip` is in use (the byte counters' label); shared with the writer task.
    gzip: Arc<std::sync::atomic::AtomicBool>,
    close_reason: Option<String>,
    targets: PeerTargets,
    /// Counted in `clearskies_peers_connected`.
    /// The `access_level` label this connection is counted under in `peers_connected`.
    counted: Option<&'static str>,
    /// The level of the connection's key or code (for an attach: the level joined).
    level: Option<clearskies_protocol::message::core::AccessLevel>,
    /// `clearskies_peer_received_bytes_total` for this connection's extension (looked up
    /// once, not per read).
    received: prometheus::IntCounter,
    /// This connection's bytes, for `list_peers`.
    traffic: Arc<Traffic>,
    /// The name the peer gave (greeting or start).
    name: Option<String>,
    /// It sent a rekey (one is taken per connection).
    rekeyed: bool,
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
        let level = match &purpose {
            Purpose::Accepted { level, .. } | Purpose::Found { level, .. } | Purpose::Rejoin { level, .. } => {
                Some(*level)
            }
            Purpose::Attach { .. } => None,
        };
        let mut config = Config::new(role, our_peer_id);
        config.software = crate::SOFTWARE.to_owned();
        config.extensions = vec![EXT_DATABASE.to_owned(), EXT_DIRECTORY.to_owned(), EXT_MSGPACK.to_owned()];
        // No deltas on an untrusted connection, either way (see `transfer::Access`): the
        // extension is not even offered. (An attach does not know its level yet; the side
        // that accepts its code does, and does not offer it.)
        if level != Some(AccessLevel::Untrusted) {
            config.extensions.extend([EXT_RSYNC.to_owned(), EXT_RSYNC_REFINE.to_owned(), EXT_CODE_SPREAD.to_owned()]);
        }
        let gzip_level = targets.runtime.gzip_level();
        if gzip_level > 0 {
            config.extensions.push(EXT_GZIP.to_owned());
            config.gzip_level = gzip_level;
        }
        config.key_exchange = key_exchange;
        config.name = Some(targets.runtime.device_name()).filter(|n| !n.is_empty());
        let session = Session::new(config, Instant::now());
        let remote = PeerAddr::new(channel.stream.get_ref().0.transport(), remote);
        let (read, write) = tokio::io::split(channel.stream);
        let (tx, rx) = mpsc::unbounded_channel();
        let share = match &purpose {
            Purpose::Accepted { share, .. } | Purpose::Rejoin { share, .. } | Purpose::Found { share, .. } => {
                Some(*share)
            }
            Purpose::Attach { .. } => None,
        };
        Peer {
            conn: NEXT_CONN.fetch_add(1, Ordering::Relaxed),
            session,
            leftover: Some(channel.leftover.freeze()),
            stream: Some(read),
            writer: tx,
            writer_rx: Some((rx, write)),
            budget: Arc::new(Semaphore::new(SEND_BUDGET)),
            sync_permits: Arc::new(Semaphore::new(SYNC_IN_FLIGHT)),
            link: None,
            sink: None,
            waiting: false,
            sending_file: false,
            answering: None,
            outbox: VecDeque::new(),
            timer: None,
            purpose,
            our_peer_id,
            remote,
            share,
            peer: None,
            rsync: false,
            refine: false,
            gzip: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            close_reason: None,
            targets,
            counted: None,
            level,
            received: metrics().received_bytes.with_label_values(&["plain"]),
            traffic: Arc::new(Traffic::default()),
            name: None,
            rekeyed: false,
        }
    }

    /// Starts the connection's actor; a panic in it is reported (see [`Crashed`]) so the
    /// share forgets the connection and it is dialled again.
    pub fn spawn(self) -> Addr<Peer> {
        let crash = Crashed { kind: ActorKind::Peer, share: self.share, conn: Some(self.conn) };
        let to = self.targets.crashed.clone();
        supervise::start(self, to, crash)
    }

    /// How this connection is re-established if it is lost.
    /// The peer's address as it is dialled and remembered ([`PeerAddr::dial_string`]).
    fn dialled_as(&self) -> String {
        self.remote.dial_string()
    }

    fn redial(&self) -> Redial {
        match &self.purpose {
            Purpose::Rejoin { dialled, .. } => Redial::Address(dialled.clone()),
            Purpose::Attach { .. } => Redial::Address(self.dialled_as()),
            Purpose::Found { .. } => Redial::Found(self.remote),
            Purpose::Accepted { .. } => Redial::ByPeer,
        }
    }

    fn drive(&mut self, ctx: &mut Context<Self>) {
        while !self.waiting {
            let Some(event) = self.session.poll_event() else { break };
            self.handle_event(event, ctx);
        }
        self.flush(None, ctx);
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

    /// Hands the session's output to the writer; `permit` (file data budget, or a sender's
    /// pacing) is released once the last piece (and so everything before it) is written.
    fn flush(&mut self, mut permit: Option<OwnedSemaphorePermit>, ctx: &mut Context<Self>) {
        let mut pieces: Vec<Bytes> = Vec::new();
        while let Some(bytes) = self.session.poll_transmit() {
            pieces.push(bytes);
        }
        if pieces.is_empty() && permit.is_some() {
            // Nothing new: the permit follows what is already queued for the writer.
            pieces.push(Bytes::new());
        }
        let n = pieces.len();
        for (i, bytes) in pieces.into_iter().enumerate() {
            let p = if i + 1 == n { permit.take() } else { None };
            if self.writer.send((bytes, p)).is_err() {
                self.close_reason.get_or_insert_with(|| "connection lost while writing".into());
                ctx.stop();
                return;
            }
        }
    }

    /// Runs `fut` before any further input is handled, then resumes.
    fn pause_for<F>(&mut self, fut: F, ctx: &mut Context<Self>)
    where
        F: actix::ActorFuture<Self, Output = ()> + 'static,
    {
        self.waiting = true;
        ctx.wait(fut.map(|(), act, ctx| {
            act.waiting = false;
            act.drive(ctx);
        }));
    }

    fn close_for(&mut self, reason: String) {
        warn!(remote = %self.remote, %reason, "closing the connection");
        self.close_reason.get_or_insert(reason);
        self.session.close();
    }

    fn on_message(&mut self, m: clearskies_protocol::session::Incoming, ctx: &mut Context<Self>) {
        let Some(link) = self.link.clone() else {
            debug!(remote = %self.remote, kind = m.message.kind(), "message ignored");
            return;
        };
        let conn = self.conn;
        let mut sync = |what, act: &mut Self| act.forward_sync(&link, FromPeer { conn, what }, ctx);
        match m.message {
            Message::DatabaseGetUpdates(g) => sync(SyncMessage::GetUpdates(g.since), self),
            Message::DatabaseUpdatesDone(_) => sync(SyncMessage::UpdatesDone, self),
            Message::DatabaseUpdate(u) => match Record::from_update(&u) {
                Ok(Some(mut r)) => {
                    if let Some(key) = &link.verify {
                        match check_signature(key, &m.body, m.signature.as_deref()) {
                            Ok(signed) => r.signed = Some(signed),
                            Err(why) => {
                                metrics().rejected_updates.inc();
                                return self.close_for(format!("refused database.update for {:?}: {why}", u.key));
                            }
                        }
                    }
                    if let Some(keys) = &link.crypt {
                        // An untrusted peer relays encrypted records: open them.
                        match keys.decrypt_record(&u) {
                            Ok((plain, cipher)) => {
                                if let (Some(p), Some(c)) = (plain.sha256, cipher) {
                                    sync(SyncMessage::Cipher { plain: p, cipher: c }, self);
                                }
                                r = plain;
                            }
                            Err(why) => {
                                metrics().rejected_updates.inc();
                                return self.close_for(format!("refused an encrypted record {:?}: {why}", u.key));
                            }
                        }
                    }
                    sync(SyncMessage::Update(Box::new(r)), self)
                }
                Ok(None) => debug!(key = %u.key, "update for a key outside the directory extension ignored"),
                Err(e) => self.close_for(format!("refused database.update for {:?}: {e}", u.key)),
            },
            Message::DirectoryGet(get) => link.get.do_send(ServeGet { conn, get, out: ctx.address().recipient() }),
            Message::UntrustedVerify(verify) => {
                // Reading a whole file is work only a read-write peer may ask for: signed.
                let key = link.verify.as_ref().filter(|_| link.crypt.is_none());
                match key.map(|k| check_signature(k, &m.body, m.signature.as_deref())) {
                    Some(Ok(_)) => {
                        let out = ctx.address().recipient();
                        link.verify_file.do_send(crate::transfer::messages::ServeVerify { conn, verify, out });
                    }
                    Some(Err(why)) => self.close_for(format!("refused untrusted.verify: {why}")),
                    None => debug!(remote = %self.remote, "untrusted.verify on a connection that is not ours to prove"),
                }
            }
            Message::UntrustedVerifyResult(r) if link.crypt.is_some() => sync(SyncMessage::VerifyResult(r), self),
            Message::DirectoryNotPresent(n) => {
                link.missing.do_send(Missing { conn, sha256: n.sha256, too_large: false });
            }
            Message::DirectoryGetError(e) => {
                debug!(remote = %self.remote, sha256 = %e.sha256, message = %e.message, "peer cannot send contents");
                let too_large = e.message == GZIP_TOO_LARGE;
                link.missing.do_send(Missing { conn, sha256: e.sha256, too_large });
            }
            Message::DirectoryData(data) => self.start_inbound(&link, Inbound::Data(data), ctx),
            Message::RsyncSignature(s) => self.start_inbound(&link, Inbound::Signature(s), ctx),
            Message::RsyncPatch(p) => self.start_inbound(&link, Inbound::Patch(p), ctx),
            Message::CoreRekey(rekey) => self.forward_rekey(rekey, m.body, m.signature),
            Message::CodeVerifiers(v) if v.codes.len() > MAX_SPREAD => self.close_for("too many codes at once".into()),
            Message::CodeVerifiers(v) if self.session.handshake().is_some_and(|h| h.has_extension(EXT_CODE_SPREAD)) => {
                self.targets.codes.do_send(PeerCodes { conn, codes: v.codes });
            }
            other => debug!(remote = %self.remote, kind = other.kind(), "message ignored"),
        }
    }

    /// An attachment arrives: its chunks go where the transfers say (nowhere if unasked).
    fn start_inbound(&mut self, link: &ShareLink, what: Inbound, ctx: &mut Context<Self>) {
        let ask = link.data.send(DataStart { conn: self.conn, what });
        self.pause_for(
            ask.into_actor(self).map(|answer, act, _| {
                act.sink = answer.ok().flatten();
            }),
            ctx,
        );
    }

    /// Hands an index message to the share. At most [`SYNC_IN_FLIGHT`] are outstanding;
    /// beyond that, reading waits until this one is taken in (the share holds a flood back).
    fn forward_sync(&mut self, link: &ShareLink, msg: FromPeer, ctx: &mut Context<Self>) {
        let taken = link.sync.send(msg);
        match self.sync_permits.clone().try_acquire_owned() {
            Ok(permit) => {
                actix_rt::spawn(async move {
                    let _ = taken.await;
                    drop(permit);
                });
            }
            Err(_) => self.pause_for(
                async move {
                    let _ = taken.await;
                }
                .into_actor(self),
                ctx,
            ),
        }
    }

    fn deliver(&mut self, item: SinkItem, ctx: &mut Context<Self>) {
        let Some(sink) = self.sink.clone() else { return };
        if matches!(item, SinkItem::End) {
            self.sink = None;
        }
        self.pause_for(
            async move { sink.send(item).await.is_ok() }.into_actor(self).map(|delivered, act, _| {
                if !delivered {
                    act.sink = None;
                }
            }),
            ctx,
        );
    }

    fn fault(&mut self, fault: PeerFault, ctx: &mut Context<Self>) {
        match fault {
            PeerFault::Panic => injected_panic(ActorKind::Peer),
            PeerFault::Stall(d) => {
                warn!(remote = %self.remote, seconds = d.as_secs(), "injected fault: stalling the connection");
                self.pause_for(actix::clock::sleep(d).into_actor(self), ctx);
            }
        }
    }

    fn send_out(&mut self, out: PeerOut, ctx: &mut Context<Self>) {
        if let PeerOut::Fault(fault) = out {
            return self.fault(fault, ctx);
        }
        if self.sending_file {
            // An answer to a peer's request (`directory.data`, `rsync.patch`) names its contents.
            let answer_to = match &out {
                PeerOut::File { header: Message::DirectoryData(d), .. } => Some(d.sha256),
                PeerOut::Produce { header: Message::RsyncPatch(p), .. } => p.sha256,
                _ => None,
            };
            if let Some(sha256) = answer_to {
                let queued =
                    self.outbox.iter().filter(|o| matches!(o, PeerOut::File { .. } | PeerOut::Produce { .. })).count();
                if queued >= MAX_QUEUED_FILES {
                    // Bounded: open files and queued work do not grow with a peer's requests.
                    let busy = GetError { sha256, message: "too many requests at once".into() };
                    self.outbox.push_back(PeerOut::Send(vec![busy.into()]));
                    return;
                }
            }
            self.outbox.push_back(out);
            return;
        }
        match out {
            PeerOut::Fault(fault) => self.fault(fault, ctx),
            PeerOut::Send(msgs) => {
                for m in &msgs {
                    if let Err(e) = self.session.send(m) {
                        debug!(remote = %self.remote, error = %e, "cannot send");
                        break;
                    }
                }
            }
            PeerOut::SendSigned(msgs) => {
                for m in &msgs {
                    if let Err(e) = self.session.send_signed(m.body.as_bytes(), m.signature.as_bytes(), false) {
                        debug!(remote = %self.remote, error = %e, "cannot send");
                        break;
                    }
                }
            }
            PeerOut::File { header, file, len, compressible } => {
                self.start_attachment(&header, Body::File(file, len), compressible, ctx);
            }
            PeerOut::Produce { header, produce, compressible } => {
                self.start_attachment(&header, Body::Produce(produce), compressible, ctx)
            }
            PeerOut::Written(permit) => self.flush(Some(permit), ctx),
            PeerOut::Close(reason) => self.close_for(reason),
        }
    }

    fn handle_event(&mut self, event: Event, ctx: &mut Context<Self>) {
        match event {
            Event::Connected(hs) => self.on_connected(&hs),
            Event::KeysReceived(keys) => self.on_keys(keys, ctx),
            // The code was spent when its keys were sent (`Event::Connected`).
            Event::KeysAcknowledged => {}
            Event::Ready => self.on_ready(ctx),
            Event::Message(m) => self.on_message(m, ctx),
            Event::AttachmentChunk(data) => self.deliver(SinkItem::Chunk(data), ctx),
            Event::AttachmentEnd => self.deliver(SinkItem::End, ctx),
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

/// The connection's writer: sends what the actor queues, in order, releasing each piece's
/// file-data permit once it is written.
///
/// A TLS stream accepts plaintext before it can send all of the records it makes of it: when
/// the socket is full, `write_all` returns with the tail still in rustls's buffer, sent only
/// by the next write or a flush. So the writer flushes whenever its queue runs dry; without
/// that, the end of a file could wait for the next ping (30 s) to reach the peer.
pub(super) async fn write_out<W>(
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    mut write: W,
    gzip: Arc<std::sync::atomic::AtomicBool>,
    traffic: Arc<Traffic>,
) where
    W: tokio::io::AsyncWrite + Unpin,
{
    let plain = metrics().sent_bytes.with_label_values(&["plain"]);
    let gzipped = metrics().sent_bytes.with_label_values(&["gzip"]);
    while let Some((bytes, permit)) = rx.recv().await {
        let sent = if gzip.load(Ordering::Relaxed) { &gzipped } else { &plain };
        let piece = bandwidth().upload_piece().unwrap_or(bytes.len()).max(1);
        for part in bytes.chunks(piece) {
            bandwidth().upload(part.len()).await;
            if write.write_all(part).await.is_err() {
                return;
            }
        }
        sent.inc_by(bytes.len() as u64);
        traffic.sent.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        drop(permit);
        if rx.is_empty() && write.flush().await.is_err() {
            return;
        }
    }
    let _ = write.shutdown().await;
}

/// The connection's input as a stream of pieces of up to 256 KiB, each counted against the
/// daemon's download limit before the next read.
fn read_in<R>(read: R) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>>
where
    R: tokio::io::AsyncRead + Unpin,
{
    let state = (read, bytes::BytesMut::new(), false);
    futures_util::stream::unfold(state, |(mut read, mut buf, failed)| async move {
        if failed {
            return None;
        }
        // One allocation serves many reads: each piece is split off the front.
        if buf.capacity() < 64 * 1024 {
            buf.reserve(256 * 1024);
        }
        match read.read_buf(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                bandwidth().download(n).await;
                let piece = buf.split().freeze();
                Some((Ok(piece), (read, buf, false)))
            }
            // The error ends the stream after it is seen.
            Err(e) => Some((Err(e), (read, buf, true))),
        }
    })
}

impl Actor for Peer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some((rx, write)) = self.writer_rx.take() {
            actix_rt::spawn(write_out(rx, write, self.gzip.clone(), self.traffic.clone()));
        }
        if let Some(read) = self.stream.take() {
            ctx.add_stream(read_in(read));
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
                let _ = done.send(Err(CommandError::new(
                    ErrorCode::PeerClosed,
                    format!("the peer closed the connection: {reason}"),
                )));
            }
        }
        if let Purpose::Accepted { id, kind: CredentialKind::Code, .. } = &self.purpose {
            self.targets.release.do_send(ReleaseCredential(*id));
        }
        if let Some(link) = self.link.take() {
            link.down.do_send(PeerDown { conn: self.conn });
        }
        self.sink = None;
        if let Some(label) = self.counted.take() {
            metrics().peers_connected.with_label_values(&[label]).dec();
        }
        if self.share.is_some() {
            warn!(remote = %self.remote, %reason, "peer disconnected");
        } else {
            debug!(remote = %self.remote, %reason, "connection ended");
        }
        let dialled = match &self.purpose {
            Purpose::Rejoin { dialled, .. } => Some(dialled.clone()),
            // The join remembered this address for the share.
            Purpose::Attach { .. } => Some(self.dialled_as()),
            Purpose::Accepted { .. } | Purpose::Found { .. } => None,
        };
        self.targets.disconnected.do_send(PeerDisconnected {
            conn: self.conn,
            share: self.share,
            peer: self.peer,
            addr: self.remote,
            dialled,
            reason,
        });
    }
}

impl StreamHandler<Result<Bytes, std::io::Error>> for Peer {
    fn handle(&mut self, item: Result<Bytes, std::io::Error>, ctx: &mut Context<Self>) {
        match item {
            Ok(bytes) => {
                self.received.inc_by(bytes.len() as u64);
                self.traffic.received.fetch_add(bytes.len() as u64, Ordering::Relaxed);
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

impl Handler<PeerOut> for Peer {
    type Result = ();

    fn handle(&mut self, out: PeerOut, ctx: &mut Context<Self>) {
        self.send_out(out, ctx);
        self.drive(ctx);
    }
}
