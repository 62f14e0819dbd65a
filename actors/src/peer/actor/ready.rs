//! The session coming up: the handshake's outcome (who the peer is, which extensions), the
//! share's keys on an attach, and the session handed to its share.

use std::sync::atomic::Ordering;

use actix::{ActorContext, ActorFutureExt, AsyncContext, Context, WrapFuture};
use clearskies_protocol::message::code_spread::EXT_CODE_SPREAD;
use clearskies_protocol::message::core::{AccessLevel, Keys};
use clearskies_protocol::session::{Handshake, EXT_GZIP, EXT_RSYNC, EXT_RSYNC_REFINE};
use tracing::{debug, info};

use super::{clean_name, Peer, Purpose};
use crate::control::cmd::{CommandError, ErrorCode};
use crate::metrics::metrics;
use crate::peer::messages::{CodeUsed, CredentialKind, JoinShare, PeerConnected};

impl Peer {
    /// The handshake is complete: who the peer is and what it speaks.
    pub(super) fn on_connected(&mut self, hs: &Handshake) {
        debug!(remote = %self.remote, peer = %hs.peer, software = %hs.software, "handshake complete");
        self.peer = Some(hs.peer);
        self.name = hs.name.as_deref().and_then(clean_name);
        // We created the code the peer authenticated with: the session sends it the share's
        // keys right after this event, so the code is spent now, not when (or if) the peer
        // acknowledges them: a client that takes the keys and hangs up must not leave a
        // single-use code unused.
        if let Purpose::Accepted { id, kind: CredentialKind::Code, .. } = &self.purpose {
            self.targets.code_used.do_send(CodeUsed { access_id: *id, peer: hs.peer });
        }
        self.rsync = hs.has_extension(EXT_RSYNC);
        self.refine = self.rsync && hs.has_extension(EXT_RSYNC_REFINE);
        if hs.has_extension(EXT_GZIP) {
            self.gzip.store(true, Ordering::Relaxed);
            self.received = metrics().received_bytes.with_label_values(&["gzip"]);
        }
    }

    /// The peer sent us a share's keys (we attach with an access code): join it, then
    /// acknowledge them, and tell whoever asked to attach.
    pub(super) fn on_keys(&mut self, keys: Keys, ctx: &mut Context<Self>) {
        let Purpose::Attach { path, selection, .. } = &self.purpose else {
            // The session only emits this when we asked to receive keys.
            return;
        };
        self.level = Some(keys.access_level);
        let (path, selection) = (path.clone(), selection.clone());
        let join = JoinShare { keys, path, peer_id: self.our_peer_id, via: self.dialled_as(), selection };
        let ask = self.targets.join.send(join);
        ctx.spawn(ask.into_actor(self).map(|answer, act, ctx| {
            let result = answer.unwrap_or_else(|e| Err(CommandError::new(ErrorCode::Internal, e.to_string())));
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

    /// The session is ready: counted, and handed to its share (paused until the share
    /// answers; closed if it has no such share).
    pub(super) fn on_ready(&mut self, ctx: &mut Context<Self>) {
        let (Some(share), Some(peer)) = (self.share, self.peer) else { return };
        info!(remote = %self.remote, %peer, %share, "peer connected");
        if self.counted.is_none() {
            let label = self.level.map_or("read_write", crate::share::registry::level_name);
            self.counted = Some(label);
            metrics().peers_connected.with_label_values(&[label]).inc();
        }
        let connected = PeerConnected {
            conn: self.conn,
            out: ctx.address().recipient(),
            share,
            peer,
            addr: self.remote,
            redial: self.redial(),
            rsync: self.rsync && self.level != Some(AccessLevel::Untrusted),
            refine: self.refine,
            code_spread: self.session.handshake().is_some_and(|hs| hs.has_extension(EXT_CODE_SPREAD)),
            gzip: self.gzip.load(Ordering::Relaxed),
            level: match &self.purpose {
                Purpose::Attach { .. } => None,
                _ => self.level,
            },
            name: self.name.clone(),
            traffic: self.traffic.clone(),
        };
        let ask = self.targets.connected.send(connected);
        self.pause_for(
            ask.into_actor(self).map(|answer, act, _| match answer {
                Ok(Ok(link)) => act.link = Some(link),
                Ok(Err(why)) => act.close_for(why),
                Err(_) => act.close_for("the share is not available".into()),
            }),
            ctx,
        );
    }
}
