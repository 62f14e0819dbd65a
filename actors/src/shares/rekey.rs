//! `rotate_keys`: a read-write share gets new keys for every level (see
//! [`registry::rotated_keys`]). Each connected peer is sent its level's new keys in a
//! `.rs.clearskies.rekey` signed with the read-write key; then the share moves to them here:
//! a new ID (the key ID), the index kept, its sessions closed, its remembered peers dialled
//! with the new key. A peer receiving a rekey checks the signature (only a holder of the
//! read-write private key may rekey a share), moves too, and, when it is read-write itself,
//! first passes the keys on to its own connected peers. A peer that is not connected during
//! a rotation (or one removed with `peers remove`) keeps the old keys, which nothing accepts
//! any more: it must be invited again.

use actix::{ActorFutureExt, AsyncContext, Context, Handler, ResponseActFuture, WrapFuture};
use clearskies_index::record::Signed;
use clearskies_index::rsa::SigningKey;
use clearskies_protocol::message::core::{AccessLevel, Rekey};
use clearskies_protocol::message::Message;
use clearskies_protocol::Sha256Hash;
use tracing::{error, info, warn};

use super::messages::{KeysRotated, RotateKeys};
use super::{Dial, Shares, SHARE_EXIT_WAIT};
use crate::access::messages::ShareRemoved;
use crate::connections::messages::{SendRekey, ShareStopped};
use crate::control::cmd::{CommandError, ErrorCode};
use crate::peer::messages::Rekeyed;
use crate::share::messages::StopShare;
use crate::share::registry::{self, ShareKeys};

/// The signed `.rs.clearskies.rekey` for each level: what a peer of that level is sent.
fn signed_rekeys(keys: &ShareKeys, sign: &SigningKey) -> Result<Vec<(AccessLevel, Signed)>, CommandError> {
    let seed = keys.untrusted_seed.or_else(|| keys.level(AccessLevel::ReadOnly).and_then(|e| e.key));
    let mut out = Vec::new();
    for level in [AccessLevel::ReadWrite, AccessLevel::ReadOnly, AccessLevel::Untrusted] {
        let Some(grant) = keys.grant(level) else { continue };
        // The untrusted extension's seed opens the backups: never to an untrusted peer.
        let untrusted_seed = if level == AccessLevel::Untrusted { None } else { seed };
        let body = Message::from(Rekey { keys: grant, untrusted_seed, generation: keys.generation }).encode();
        let signature = sign.sign(&body).map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))?;
        let body = String::from_utf8(body).map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))?;
        out.push((level, Signed { body, signature }));
    }
    Ok(out)
}

impl Shares {
    /// Sends the share `id`'s peers their new keys, then moves the share to `keys`.
    /// Answers how many peers were sent them.
    fn rotate(
        &mut self,
        id: Sha256Hash,
        keys: ShareKeys,
        sign: &SigningKey,
    ) -> ResponseActFuture<Self, Result<KeysRotated, CommandError>> {
        let rekeys = match signed_rekeys(&keys, sign) {
            Ok(r) => r,
            Err(e) => return Box::pin(actix::fut::ready(Err(e))),
        };
        let sent = self.targets.rekey.send(SendRekey { share: id, rekeys });
        Box::pin(sent.into_actor(self).then(move |sent, act, ctx| {
            let peers = sent.unwrap_or(0);
            act.move_to(id, keys, ctx).map(move |moved, _, _| moved.map(|path| KeysRotated { path, peers }))
        }))
    }

    /// Stops the share `id`, moves it to `keys` in the registry (a new ID), and starts it
    /// again: its sessions close and its peers are dialled with the new key.
    fn move_to(
        &mut self,
        id: Sha256Hash,
        keys: ShareKeys,
        _: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<String, CommandError>> {
        let mut gone = None;
        self.table.send_modify(|t| gone = t.remove(&id));
        let Some(running) = gone else {
            return Box::pin(actix::fut::ready(Err(CommandError::new(
                ErrorCode::NotShared,
                "the share is not running",
            ))));
        };
        running.addr.do_send(StopShare);
        self.targets.stopped.do_send(ShareStopped { id, removed: false });
        self.targets.removed.do_send(ShareRemoved(id));
        let exited = self.exits.remove(&id);
        let events = self.events.remove(&id);
        let (store, data_dir, old) = (self.store.clone(), self.data_dir.clone(), running.config);
        let job = async move {
            if let Some(exited) = exited {
                if tokio::time::timeout(SHARE_EXIT_WAIT, exited.wait()).await.is_err() {
                    warn!(share = %id, "the share's worker thread is still busy; moving it to new keys beside it");
                }
            }
            tokio::task::spawn_blocking(move || {
                let config = registry::apply_rekey(&store, &data_dir, &old, &keys)?;
                Ok::<_, registry::RegistryError>(Self::prepare(&store, &data_dir, config))
            })
            .await
        };
        Box::pin(job.into_actor(self).map(move |res, act, _| {
            let prepared = res.map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))??;
            let prepared =
                prepared.ok_or_else(|| CommandError::new(ErrorCode::Internal, "the share cannot start again"))?;
            let path = prepared.config.path.display().to_string();
            info!(old = %id, share = %prepared.config.id, %path, "the share's keys changed");
            if let Some(events) = events {
                act.events.insert(prepared.config.id, events);
            }
            act.run(prepared, Dial::Known);
            Ok(path)
        }))
    }
}

impl Handler<RotateKeys> for Shares {
    type Result = ResponseActFuture<Self, Result<KeysRotated, CommandError>>;

    fn handle(&mut self, msg: RotateKeys, _: &mut Context<Self>) -> Self::Result {
        let found = self.table.borrow().by_path(&msg.path).cloned();
        let ready = |e| -> Self::Result { Box::pin(actix::fut::ready(Err(e))) };
        let Some(running) = found else {
            return ready(CommandError::new(ErrorCode::NotShared, format!("{} is not shared", msg.path.display())));
        };
        let material = running.keys.as_deref().filter(|_| running.config.access_level == AccessLevel::ReadWrite);
        let Some((material, sign)) = material.and_then(|m| Some((m, m.sign.clone()?))) else {
            return ready(CommandError::new(ErrorCode::NoKeys, "only a read-write share's keys can be rotated here"));
        };
        match registry::rotated_keys(&material.keys) {
            Ok(keys) => self.rotate(running.config.id, keys, &sign),
            Err(e) => ready(CommandError::new(ErrorCode::RandomFailed, e.to_string())),
        }
    }
}

impl Handler<Rekeyed> for Shares {
    type Result = ();

    fn handle(&mut self, msg: Rekeyed, ctx: &mut Context<Self>) {
        let Some(running) = self.table.borrow().get(&msg.share).cloned() else { return };
        let Some(material) = running.keys.clone() else { return };
        // Only a holder of the read-write private key may move a share to new keys.
        let signed = match (&material.verify, &msg.signature) {
            (Some(key), Some(signature)) => key.verify(&msg.body, signature),
            _ => false,
        };
        if !signed {
            return warn!(share = %msg.share, remote = %msg.remote, "refused new keys without the read-write signature");
        }
        let keys = match registry::received_keys(&material.keys, running.config.access_level, &msg.rekey) {
            Ok(k) => k,
            Err(e) => return warn!(share = %msg.share, remote = %msg.remote, error = %e, "refused new keys"),
        };
        info!(share = %msg.share, remote = %msg.remote, "a read-write peer rotated the share's keys");
        // A read-write peer passes them on to the peers connected to it; others just move.
        let job = match material.sign.clone() {
            Some(sign) => self.rotate(msg.share, keys, &sign).map(|r, _, _| r.map(|_| ())).boxed_local(),
            None => self.move_to(msg.share, keys, ctx).map(|r, _, _| r.map(|_| ())).boxed_local(),
        };
        ctx.spawn(job.map(|r, _, _| {
            if let Err(e) = r {
                error!(error = %e.message, "cannot move the share to its new keys");
            }
        }));
    }
}
