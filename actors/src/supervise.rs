//! Turning an actor's panic into a restart.
//!
//! actix restarts an actor only when it stops itself; a panic inside a handler unwinds out
//! of the actor's future, which tokio catches and drops, so the actor silently vanishes and
//! every message to it fails from then on. [`start`] and [`create`] run an actor's future
//! under `catch_unwind` instead: a panic drops that actor (its state may be half-updated, so
//! it is never reused) and reports [`Crashed`] to the supervisor, which counts it and starts a
//! fresh one (see `Supervisor`'s `Handler<Crashed>`). Other actors keep running: they share
//! the event loop, but not the unwinding.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::Poll;

use actix::{Actor, Addr, AsyncContext, Context, Message, Recipient};
use clearskies_protocol::Sha256Hash;

/// The kinds of actor that are restarted on a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ActorKind {
    /// Tracker client and LAN broadcast.
    Discovery,
    /// Port mapping and STUN.
    Reach,
    /// The peer port.
    Listener,
    /// One share's index.
    Share,
    /// One share's transfers.
    Transfer,
    /// The control socket.
    Control,
    /// `/metrics` and `/health`.
    Metrics,
    /// One peer connection: not restarted; its share forgets it and it is dialled again.
    Peer,
    /// The share registry: not restarted in place; the worker stops (the monitor starts a
    /// new one).
    Shares,
    /// Keys, codes and credentials: like `Shares`.
    Access,
    /// Dials and sessions: like `Shares`.
    Connections,
}

impl ActorKind {
    /// The name used in logs, metrics labels and the fault-injection command.
    pub fn name(self) -> &'static str {
        match self {
            ActorKind::Discovery => "discovery",
            ActorKind::Reach => "reach",
            ActorKind::Listener => "listener",
            ActorKind::Share => "share",
            ActorKind::Transfer => "transfer",
            ActorKind::Control => "control",
            ActorKind::Metrics => "metrics",
            ActorKind::Peer => "peer",
            ActorKind::Shares => "shares",
            ActorKind::Access => "access",
            ActorKind::Connections => "connections",
        }
    }

    /// The kind named `name`.
    pub fn from_name(name: &str) -> Option<ActorKind> {
        [
            ActorKind::Discovery,
            ActorKind::Reach,
            ActorKind::Listener,
            ActorKind::Share,
            ActorKind::Transfer,
            ActorKind::Control,
            ActorKind::Metrics,
            ActorKind::Peer,
            ActorKind::Shares,
            ActorKind::Access,
            ActorKind::Connections,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}

/// An actor panicked and is gone.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Crashed {
    /// What crashed.
    pub kind: ActorKind,
    /// The share, for a `Share` or `Transfer`.
    pub share: Option<Sha256Hash>,
    /// The connection, for a `Peer`.
    pub conn: Option<u64>,
}

/// Fault injection (only with `--danger-fault-injection`): panic inside the actor that
/// receives this (a `Share` passes `Transfer` on to its transfer actor).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct InjectPanic(pub ActorKind);

/// Panics, as [`InjectPanic`] asks; the message is what tests look for in the log.
pub fn injected_panic(kind: ActorKind) -> ! {
    panic!("injected fault: panic in the {} actor", kind.name())
}

/// Fault injection reaches these actors as a panic in their own handler.
macro_rules! panics_on_injection {
    ($($actor:ty),*) => {$(
        impl actix::Handler<InjectPanic> for $actor {
            type Result = ();

            fn handle(&mut self, msg: InjectPanic, _: &mut Context<Self>) {
                injected_panic(msg.0)
            }
        }
    )*};
}

panics_on_injection!(
    crate::listener::Listener,
    crate::control::Control,
    crate::discovery::Discovery,
    crate::reach::Reach,
    crate::web::WebServer,
    crate::transfer::Transfer,
    crate::shares::Shares,
    crate::access::Access,
    crate::connections::Connections
);

/// Starts `act`; a panic while it runs reports `crash` to `to`.
pub fn start<A>(act: A, to: Recipient<Crashed>, crash: Crashed) -> Addr<A>
where
    A: Actor<Context = Context<A>>,
{
    create(|_| act, to, crash)
}

/// Like [`Actor::create`] (the actor may take its own address at construction); a panic
/// while it runs reports `crash` to `to`.
pub fn create<A, F>(f: F, to: Recipient<Crashed>, crash: Crashed) -> Addr<A>
where
    A: Actor<Context = Context<A>>,
    F: FnOnce(&mut Context<A>) -> A,
{
    let mut ctx = Context::new();
    let act = f(&mut ctx);
    start_in(ctx, act, to, crash)
}

/// Runs `act` in `ctx` (made beforehand, so that others could be given its address); a
/// panic while it runs reports `crash` to `to`.
pub fn start_in<A>(ctx: Context<A>, act: A, to: Recipient<Crashed>, crash: Crashed) -> Addr<A>
where
    A: Actor<Context = Context<A>>,
{
    let addr = ctx.address();
    let guarded = Guarded { fut: Some(Box::pin(ctx.into_future(act))) };
    actix_rt::spawn(async move {
        if guarded.await {
            to.do_send(crash);
        }
    });
    addr
}

/// Polls an actor's future, catching a panic; resolves to whether it panicked. After a
/// panic the future (the actor and its context) is dropped, never polled again.
struct Guarded<F> {
    fut: Option<Pin<Box<F>>>,
}

impl<F: Future<Output = ()>> Future for Guarded<F> {
    type Output = bool;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<bool> {
        let Some(fut) = self.fut.as_mut() else { return Poll::Ready(false) };
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(())) => Poll::Ready(false),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => {
                self.fut = None;
                Poll::Ready(true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use actix::{Handler, Message};

    use super::*;

    struct Fragile;
    impl Actor for Fragile {
        type Context = Context<Self>;
    }
    #[derive(Message)]
    #[rtype(result = "u32")]
    struct Ping;
    impl Handler<Ping> for Fragile {
        type Result = u32;
        fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> u32 {
            7
        }
    }
    impl Handler<InjectPanic> for Fragile {
        type Result = ();
        fn handle(&mut self, msg: InjectPanic, _: &mut Context<Self>) {
            injected_panic(msg.0)
        }
    }

    struct Watcher(tokio::sync::mpsc::UnboundedSender<Crashed>);
    impl Actor for Watcher {
        type Context = Context<Self>;
    }
    impl Handler<Crashed> for Watcher {
        type Result = ();
        fn handle(&mut self, msg: Crashed, _: &mut Context<Self>) {
            let _ = self.0.send(msg);
        }
    }

    #[actix_rt::test]
    async fn a_panic_is_reported_and_the_others_keep_running() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let watcher = Watcher(tx).start().recipient();
        let crash = Crashed { kind: ActorKind::Listener, share: None, conn: None };
        let a = start(Fragile, watcher.clone(), crash);
        let b = start(Fragile, watcher, crash);
        assert_eq!(a.send(Ping).await.unwrap(), 7);
        a.do_send(InjectPanic(ActorKind::Listener));
        let reported = rx.recv().await.unwrap();
        assert_eq!(reported.kind, ActorKind::Listener);
        assert!(a.send(Ping).await.is_err(), "the crashed actor is gone");
        assert_eq!(b.send(Ping).await.unwrap(), 7, "the other actor is untouched");
    }
}
