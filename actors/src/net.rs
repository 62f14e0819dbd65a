//! What the actors that own a listening socket share: taking the worker's bound socket into
//! the runtime, and an accept that never ends its loop.

use std::future::Future;
use std::time::Duration;

use tracing::{info, warn};

/// Pause after a failed accept (out of file descriptors, a connection reset while queued)
/// before trying again.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// A listener bound by the worker (so a busy port fails at start-up), as tokio's, logging
/// `serving` with its address; `None` (logged) if the runtime cannot take it. Call inside
/// the runtime (an actor's `started`).
pub fn tcp_listener(listener: std::net::TcpListener, serving: &str) -> Option<tokio::net::TcpListener> {
    let taken = listener.set_nonblocking(true).and_then(|()| tokio::net::TcpListener::from_std(listener));
    match taken {
        Ok(l) => {
            if let Ok(addr) = l.local_addr() {
                info!(%addr, "{serving}");
            }
            Some(l)
        }
        Err(e) => {
            warn!(error = %e, "cannot use the socket for {serving}");
            None
        }
    }
}

/// The next connection from `accept` (a listener's `accept()`): a failed accept is logged
/// with `what` and retried after a pause, never returned.
pub async fn accept<T, F, Fut>(what: &str, mut accept: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::io::Result<T>>,
{
    loop {
        match accept().await {
            Ok(c) => return c,
            Err(e) => {
                warn!(error = %e, "{what}: accept failed");
                tokio::time::sleep(ACCEPT_PAUSE).await;
            }
        }
    }
}
