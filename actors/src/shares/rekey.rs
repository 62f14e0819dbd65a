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
use super::{Dial, Shares};
use crate::access::messages::ShareRemoved;
use crate::connections::messages::{SendRekey, ShareStopped};
use crate::control::cmd::{CommandError, ErrorCode};
use crate::peer::messages::Rekeyed;
use crate::share::messages::StopShare;
use crate::share::registry::{self, ShareConfig, ShareKeys};

/// Most removed peers a rekey adds to a share's list.
const MAX_REMOVED: usize = 1024;

/// The signed `.rs.clearskies.rekey` for each level: what a peer of that level is sent.
fn signed_rekeys(
    keys: &ShareKeys,
    removed: &[clearskies_protocol::PeerId],
    sign: &SigningKey,
) -> Result<Vec<(AccessLevel, Signed)>, CommandError> {
    let mut out = Vec::new();
    for level in [AccessLevel::ReadWrite, AccessLevel::ReadOnly, AccessLevel::Untrusted] {
        // (The grant carries the backups' seed, except to an untrusted peer, and the
        // generation.)
        let Some(grant) = keys.grant(level) else { continue };
        let body = Message::from(Rekey { keys: grant, removed: removed.to_vec() }).encode();
        let signature = sign.sign(&body).map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))?;
        let body = String::from_utf8(body).map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))?;
        out.push((level, Signed { body, signature }));
    }
    Ok(out)
}

impl Shares {
    /// Moves the share `id` to `keys`: saved first (a new registry entry and key file; the
    /// index is not touched), then each connected peer is sent its level's new keys when
    /// `sign` is given (a read-write share), then the share is stopped and started again
    /// under its new ID. One move at a time per share; `detach` waits for none and is
    /// refused meanwhile. Answers the path and how many sessions were sent keys.
    fn rekey_share(
        &mut self,
        id: Sha256Hash,
        keys: ShareKeys,
        sign: Option<&SigningKey>,
        removed: &[clearskies_protocol::PeerId],
    ) -> ResponseActFuture<Self, Result<KeysRotated, CommandError>> {
        let ready =
            |e| -> ResponseActFuture<Self, Result<KeysRotated, CommandError>> { Box::pin(actix::fut::ready(Err(e))) };
        let Some(mut old) = self.table.borrow().get(&id).map(|r| r.config.clone()) else {
            return ready(CommandError::new(ErrorCode::NotShared, "the share is not running"));
        };
        // Peers removed anywhere stay removed here (bounded: as many as the message holds).
        for p in removed.iter().take(MAX_REMOVED) {
            if !old.removed_peers.contains(p) {
                old.removed_peers.push(*p);
            }
        }
        if self.table.borrow().contains(&keys.key_id) || self.table.borrow().key_owner(&keys.key_id).is_some() {
            return ready(CommandError::new(ErrorCode::BadKeys, "the new key ID is another share's"));
        }
        let rekeys = match sign.map(|k| signed_rekeys(&keys, &old.removed_peers, k)).transpose() {
            Ok(r) => r.unwrap_or_default(),
            Err(e) => return ready(e),
        };
        if self.rotating.insert(id, old.path.clone()).is_some() {
            return ready(CommandError::new(ErrorCode::Unavailable, "the share is already moving to new keys"));
        }
        let (store, data_dir) = (self.store.clone(), self.data_dir.clone());
        let skip = old.removed_peers.clone();
        let saved = tokio::task::spawn_blocking(move || registry::apply_rekey(&store, &data_dir, &old, &keys));
        Box::pin(saved.into_actor(self).then(move |saved, act, _| {
            let saved = saved.map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string())).and_then(|r| {
                r.map_err(|e| CommandError::new(ErrorCode::BadKeys, format!("the new keys cannot be saved: {e}")))
            });
            let send = act.targets.rekey.send(SendRekey { share: id, rekeys, skip: skip.clone() });
            async move {
                let config = saved?;
                // A mailbox error: nobody was told (they must be invited again).
                let sessions = send.await.unwrap_or(0);
                Ok((config, sessions))
            }
            .into_actor(act)
            .then(move |told: Result<_, CommandError>, act, _| {
                let moved: ResponseActFuture<Self, Result<KeysRotated, CommandError>> = match told {
                    Ok((config, sessions)) => Box::pin(
                        act.move_to(id, config)
                            .map(move |moved, _, _| moved.map(|path| KeysRotated { path, peers: sessions })),
                    ),
                    Err(e) => Box::pin(actix::fut::ready(Err(e))),
                };
                moved.map(move |res, act, _| {
                    act.rotating.remove(&id);
                    res
                })
            })
        }))
    }

    /// Stops the share `id` and starts it again as `config` (its entry under the new keys,
    /// already saved): its sessions close and its peers are dialled with the new key. Waits
    /// for the old worker thread however long it takes: two never write one index.
    fn move_to(
        &mut self,
        id: Sha256Hash,
        config: ShareConfig,
    ) -> ResponseActFuture<Self, Result<String, CommandError>> {
        let mut gone = None;
        self.table.send_modify(|t| gone = t.remove(&id));
        if let Some(running) = gone {
            running.addr.do_send(StopShare);
        }
        self.targets.stopped.do_send(ShareStopped { id, removed: false });
        self.targets.removed.do_send(ShareRemoved(id));
        let exited = self.exits.remove(&id);
        let events = self.events.remove(&id);
        let (store, data_dir) = (self.store.clone(), self.data_dir.clone());
        let job = async move {
            if let Some(exited) = exited {
                exited.wait().await;
            }
            tokio::task::spawn_blocking(move || Self::prepare(&store, &data_dir, config)).await
        };
        Box::pin(job.into_actor(self).map(move |prepared, act, _| {
            let failed = |why: &str| {
                CommandError::new(ErrorCode::Internal, format!("the keys changed, but the share {why}; see the log"))
            };
            let prepared =
                prepared.map_err(|_| failed("did not start again"))?.ok_or_else(|| failed("cannot start"))?;
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
            Ok(keys) => self.rekey_share(running.config.id, keys, Some(&sign), &[]),
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
        let sign = material.sign.clone();
        let job = self.rekey_share(msg.share, keys, sign.as_deref(), &msg.rekey.removed);
        ctx.spawn(job.map(|r, _, _| {
            if let Err(e) = r {
                error!(error = %e.message, "cannot move the share to its new keys");
            }
        }));
    }
}
