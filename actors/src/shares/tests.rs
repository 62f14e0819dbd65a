//! The registry with a real index and real `Share` actors, its neighbours as sinks.

use std::collections::BTreeSet;
use std::time::Duration;

use actix::{Actor, Addr, Context, Handler, MessageResult};
use tokio::sync::broadcast::error::RecvError;

use super::messages::{CreateShare, ListShares, RemoveShare, RestartShare, SubscribeShareEvents};
use super::*;
use crate::share::ShareEvent;

/// Takes what the registry tells its neighbours and says which (not the `list_shares` question).
struct Neighbours(tokio::sync::mpsc::UnboundedSender<&'static str>);
impl Actor for Neighbours {
    type Context = Context<Self>;
}
macro_rules! neighbour {
    ($($m:ty => $name:expr, $r:expr);*) => {$(
        impl Handler<$m> for Neighbours {
            type Result = MessageResult<$m>;
            fn handle(&mut self, _: $m, _: &mut Context<Self>) -> Self::Result {
                if !$name.is_empty() {
                    let _ = self.0.send($name);
                }
                MessageResult($r)
            }
        }
    )*};
}
neighbour!(
    ShareStarted => "started", ();
    ShareStopped => "stopped", ();
    AuthRefused => "", BTreeSet::new();
    ShareRemoved => "removed", ();
    Crashed => "crashed", ();
    SharesLoaded => "loaded", ();
    crate::connections::messages::SendRekey => "rekey", 0
);

struct Fixture {
    shares: Addr<Shares>,
    told: tokio::sync::mpsc::UnboundedReceiver<&'static str>,
    root: tempfile::TempDir,
    _data: tempfile::TempDir,
}

fn registry() -> Fixture {
    let (data, root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = Store::open(&data.path().join("db")).unwrap();
    let (tx, told) = tokio::sync::mpsc::unbounded_channel();
    let n = Neighbours(tx).start();
    let targets = SharesTargets {
        started: n.clone().recipient(),
        stopped: n.clone().recipient(),
        auth_refused: n.clone().recipient(),
        rekey: n.clone().recipient(),
        removed: n.clone().recipient(),
        crashed: n.clone().recipient(),
        loaded: n.recipient(),
    };
    let settings = crate::Settings {
        data_dir: data.path().to_owned(),
        control_socket: data.path().join("control.sock"),
        software: "test".into(),
        monitor: crate::MonitorInfo::default(),
        fault_injection: false,
        config: crate::config::Values::default(),
        sources: crate::config::Sources::new(),
    };
    let (table, _) = tokio::sync::watch::channel(ShareTable::default());
    let files = FileServing { addr: None, token: String::new() };
    let runtime = crate::config::Runtime::fixed(settings.config.clone());
    let shares = Shares::new(&settings, store, table, targets, files, runtime).start();
    Fixture { shares, told, root, _data: data }
}

/// The next event that is an `Indexed`, within 30 s.
async fn next_indexed(events: &mut tokio::sync::broadcast::Receiver<ShareEvent>) -> ShareEvent {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(e @ ShareEvent::Indexed { .. }) => return e,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => panic!("the event stream ended"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait).await.expect("an Indexed event")
}

#[actix_rt::test]
async fn a_shares_event_stream_goes_on_across_its_restart_and_ends_when_it_is_removed() {
    let mut f = registry();
    assert_eq!(f.told.recv().await, Some("loaded"), "an empty registry is loaded at once");
    let path = f.root.path().to_owned();
    let created = f.shares.send(CreateShare { path: path.clone() }).await.unwrap().expect("shared");
    assert_eq!(f.told.recv().await, Some("started"));
    let mut events = f.shares.send(SubscribeShareEvents { path: path.clone() }).await.unwrap().unwrap();
    std::fs::write(path.join("a.txt"), b"a").unwrap();
    next_indexed(&mut events).await;
    let listed = f.shares.send(ListShares).await.unwrap();
    assert_eq!((listed.len(), listed[0].id.as_str()), (1, created.id.as_str()));

    // A crash restart: the same receiver hears the new actor's first scan.
    f.shares.send(RestartShare(created.id.parse().unwrap())).await.unwrap();
    assert_eq!(f.told.recv().await, Some("stopped"));
    assert_eq!(f.told.recv().await, Some("started"), "started again");
    next_indexed(&mut events).await;

    f.shares.send(RemoveShare { path: path.clone() }).await.unwrap().unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Err(RecvError::Closed) = events.recv().await {
                return;
            }
        }
    });
    ended.await.expect("the stream ends once the share is removed");
    let e = f.shares.send(SubscribeShareEvents { path }).await.unwrap().unwrap_err();
    assert_eq!(e.error, ErrorCode::NotShared);
}
