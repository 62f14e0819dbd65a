//! `GET /api/events`: the interface's live view as Server-Sent Events. Events `shares`,
//! `peers` and `status` carry the answers of `list_shares`, `list_peers` and `status`
//! (exactly as `/api/request` gives them); each is sent at connect and again when it
//! changes. A change is noticed at once when a share reports one (its `ShareEvent` stream:
//! a scan, an install, a conflict, an error) and otherwise within [`TICK`] (progress, peers
//! coming and going), and sent at most every [`MIN_GAP`]. A comment line every
//! [`KEEPALIVE`] tells a vanished client from a quiet one.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, ContentEncoding};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use tokio::sync::{mpsc, watch, Notify};

use super::State;
use crate::control::cmd::Request;
use crate::shares::messages::SubscribeShareEvents;

/// Live-view streams open at once (browser tabs); more are answered 503.
pub(super) const MAX_STREAMS: usize = 16;
/// How often unchanged state is looked at again.
const TICK: Duration = Duration::from_secs(1);
/// The shortest time between two rounds of events.
const MIN_GAP: Duration = Duration::from_millis(250);
/// How long a stream stays silent at most.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// `GET /api/events`.
pub(super) async fn stream(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let Some((id, _)) = super::login::session(&req, &state) else {
        return super::api::login_required();
    };
    let Ok(permit) = state.streams.clone().try_acquire_owned() else {
        return super::text(503, "too many live views open; close a tab");
    };
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let state = state.into_inner();
    actix_rt::spawn(async move {
        feed(&state, &id, tx).await;
        drop(permit);
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(ContentEncoding::Identity)
        .streaming(body)
}

/// Sends the state's changes to `tx` until the client goes, or the session `id` ends
/// (logged out, expired, or the password changed).
async fn feed(state: &State, id: &str, tx: mpsc::Sender<Bytes>) {
    let changed = Arc::new(Notify::new());
    // Dropped when this ends: the share event forwarders end with it.
    let (_alive, gone) = watch::channel(());
    let mut subscribed = HashSet::new();
    let mut last: [String; 3] = Default::default();
    let mut silent_since = tokio::time::Instant::now();
    loop {
        if super::login::session_of(state, id).is_none() {
            return;
        }
        let mut sent = false;
        for (i, (name, request)) in
            [("shares", Request::ListShares), ("peers", Request::ListPeers), ("status", Request::Status)]
                .into_iter()
                .enumerate()
        {
            let Ok(answer) = request.run(&state.targets.control).await.0 else { continue };
            let data = serde_json::to_string(&answer).unwrap_or_default();
            if data != last[i] {
                // Each as soon as it is known: the overview draws on `shares`.
                if tx.send(Bytes::from(format!("event: {name}\ndata: {data}\n\n"))).await.is_err() {
                    return;
                }
                last[i] = data;
                sent = true;
            }
        }
        if !sent && silent_since.elapsed() >= KEEPALIVE {
            if tx.send(Bytes::from_static(b": keepalive\n\n")).await.is_err() {
                return;
            }
            sent = true;
        }
        if sent {
            silent_since = tokio::time::Instant::now();
        }
        // After the first answers, not before: a new share's events wake the next round
        // (and the tick covers what happens in between).
        subscribe_new(state, &mut subscribed, &changed, &gone).await;
        tokio::time::sleep(MIN_GAP).await;
        tokio::select! {
            () = changed.notified() => {}
            () = tokio::time::sleep(TICK.saturating_sub(MIN_GAP)) => {}
            () = tx.closed() => return,
        }
    }
}

/// Subscribes to the event streams of the running shares not yet subscribed to: each event
/// wakes the feed.
async fn subscribe_new(
    state: &State,
    subscribed: &mut HashSet<std::path::PathBuf>,
    changed: &Arc<Notify>,
    gone: &watch::Receiver<()>,
) {
    let roots: Vec<std::path::PathBuf> = state.targets.table.borrow().iter().map(|r| r.config.path.clone()).collect();
    for path in roots {
        if subscribed.contains(&path) {
            continue;
        }
        let msg = SubscribeShareEvents { path: path.clone() };
        let Ok(Ok(mut events)) = state.targets.subscribe.send(msg).await else { continue };
        subscribed.insert(path);
        let (changed, mut gone) = (changed.clone(), gone.clone());
        actix_rt::spawn(async move {
            loop {
                tokio::select! {
                    event = events.recv() => match event {
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => changed.notify_one(),
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                    _ = gone.changed() => return,
                }
            }
        });
    }
}
