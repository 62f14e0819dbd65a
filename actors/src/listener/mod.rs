//! The `Listener` actor: accepts peer connections on the TCP port, runs the secure-channel
//! handshake for each in its own task, and starts a `Peer` actor for each that
//! authenticates. Failed attempts are logged with their reason; attempts are rate-limited
//! per source IP and per access ID ([`throttle`]).

pub mod throttle;

use std::sync::Arc;

use actix::{Actor, ActorContext, AsyncContext, Context, Recipient, WrapFuture};
use clearskies_protocol::session::{KeyExchange, Role};
use tracing::warn;

use crate::peer::actor::{Peer, PeerTargets, Purpose};
use crate::peer::channel::{self, TlsContext};
use crate::peer::messages::{ClaimCredential, CredentialKind, LookupCredential};

/// What the listener needs from the supervisor.
#[derive(Debug, Clone)]
pub struct ListenerTargets {
    /// Credential lookup during SRP.
    pub lookup: Recipient<LookupCredential>,
    /// Credential claim after SRP.
    pub claim: Recipient<ClaimCredential>,
    /// Handed to each peer.
    pub peer: PeerTargets,
}

/// The peer port.
#[derive(Debug)]
pub struct Listener {
    listener: Option<std::net::TcpListener>,
    tls: TlsContext,
    secret: [u8; 32],
    targets: ListenerTargets,
    throttle: Arc<throttle::AuthThrottle>,
}

impl Listener {
    /// Serves `listener` (bound by the worker so that a busy port fails at start-up).
    /// `throttle` is shared across restarts of this actor, so a crash does not refill it.
    pub fn new(
        listener: std::net::TcpListener,
        tls: TlsContext,
        secret: [u8; 32],
        targets: ListenerTargets,
        throttle: Arc<throttle::AuthThrottle>,
    ) -> Self {
        Listener { listener: Some(listener), tls, secret, targets, throttle }
    }
}

impl Actor for Listener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(std_listener) = self.listener.take() else { return };
        let Some(listener) = crate::net::tcp_listener(std_listener, "listening for peers") else {
            return ctx.stop();
        };
        let (tls, secret, targets, throttle) =
            (self.tls.clone(), self.secret, self.targets.clone(), self.throttle.clone());
        let accept = async move {
            loop {
                let (tcp, addr) = crate::net::accept("peer port", || listener.accept()).await;
                let (tls, targets, throttle) = (tls.clone(), targets.clone(), throttle.clone());
                actix_rt::spawn(async move {
                    let lookup = targets.lookup.clone();
                    let result = channel::accept(tcp, &tls, &secret, |id| async move {
                        let cred = match id {
                            Some(id) => lookup.send(LookupCredential(id)).await.ok().flatten(),
                            None => None,
                        };
                        if !cred.as_ref().is_some_and(|c| c.kind == CredentialKind::Key) {
                            let id = id.unwrap_or(clearskies_protocol::Sha256Hash([0; 32]));
                            throttle.charge_code(addr.ip(), id).map_err(|t| t.message())?;
                        }
                        Ok(cred.map(|c| c.record))
                    })
                    .await;
                    let ch = match result {
                        Ok(ch) => ch,
                        Err(e) => {
                            let m = crate::metrics::metrics();
                            match e {
                                channel::ChannelError::AuthFailed { .. } => m.auth_failures.inc(),
                                channel::ChannelError::Throttled(_) => m.auth_throttled.inc(),
                                _ => {}
                            }
                            warn!(%addr, error = %e, "refused a connection");
                            return;
                        }
                    };
                    let Ok(Some(cred)) = targets.claim.send(ClaimCredential(ch.id)).await else {
                        warn!(%addr, id = %ch.id, "refused a connection: its code was just used by another peer");
                        return;
                    };
                    let key_exchange = match (&cred.kind, cred.keys) {
                        (CredentialKind::Code, Some(keys)) => KeyExchange::Send(keys),
                        _ => KeyExchange::None,
                    };
                    let purpose =
                        Purpose::Accepted { id: ch.id, kind: cred.kind, share: cred.share, level: cred.level };
                    Peer::new(ch, Role::Server, key_exchange, cred.our_peer_id, purpose, addr, targets.peer).spawn();
                });
            }
        };
        ctx.spawn(accept.into_actor(self));
    }
}
