//! The share's typed event stream: what happened to the share, for whoever wants to follow
//! it (the web interface, thumbnails) without polling `list_shares`.
//!
//! The actor holds the [`broadcast`] sender and learns the events from its worker's outcomes
//! (a scan's report, an applied batch, installed downloads) and from its own state changes.
//! Subscribing is `SubscribeShareEvents` to the share registry (by path), or
//! [`crate::share::messages::SubscribeEvents`] to the actor. Sending never waits: with no
//! subscriber an event is dropped, and a subscriber more than [`EVENT_BACKLOG`] events behind
//! loses the oldest (its `recv` answers `Lagged`). The registry keeps each share's sender
//! and hands it to the actor, so the stream goes on across a restart of the share (after a
//! crash: the new actor's first scan is an `Indexed`) and ends when the share is removed.

use clearskies_protocol::path::SharePath;
use clearskies_protocol::PeerId;
use tokio::sync::broadcast;

use clearskies_index::record::Record;

/// Events a subscriber can fall behind by before it loses the oldest.
pub const EVENT_BACKLOG: usize = 256;

/// The record field a conflict copy names its original in.
const CONFLICT_SOURCE: &str = "conflict_source";

/// Something that happened to a share.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShareEvent {
    /// A scan finished and the index holds what it found.
    Indexed {
        /// The whole tree was scanned (not only where filesystem events pointed).
        full: bool,
        /// Entries found on disk (files and directories, the root included).
        entries: usize,
        /// Records the scan wrote (new, changed or deleted).
        changed: usize,
    },
    /// Contents downloaded from peers were installed at these paths.
    Installed {
        /// The files, in the order they were installed.
        paths: Vec<SharePath>,
    },
    /// Concurrent versions of `path`: ours was moved aside to `copy` (the peer's version
    /// stays at, or comes to, `path`).
    Conflict {
        /// The file both sides changed.
        path: SharePath,
        /// Where our version is kept.
        copy: SharePath,
    },
    /// The share is in error (as `list_shares` reports it), or the reason changed.
    ErrorEntered {
        /// Why, as `list_shares` says it.
        reason: String,
    },
    /// The share left the error state.
    ErrorLeft,
}

/// The sending side, and the error last reported (to send only transitions).
#[derive(Debug)]
pub(super) struct Events {
    tx: broadcast::Sender<ShareEvent>,
    error: Option<String>,
}

/// A new event stream's sending side (the registry keeps one per share).
pub fn channel() -> broadcast::Sender<ShareEvent> {
    broadcast::channel(EVENT_BACKLOG).0
}

impl Events {
    pub(super) fn new(tx: broadcast::Sender<ShareEvent>) -> Self {
        Events { tx, error: None }
    }

    /// A receiver of the events from now on.
    pub(super) fn subscribe(&self) -> broadcast::Receiver<ShareEvent> {
        self.tx.subscribe()
    }

    /// Someone is subscribed (worth reading what only events need).
    pub(super) fn watched(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    pub(super) fn emit(&self, event: ShareEvent) {
        // An error means nobody is subscribed now: the event concerns nobody.
        let _ = self.tx.send(event);
    }

    /// The share's error as it stands now (`None`: not in error): sends entering it (or a
    /// new reason) and leaving it, nothing when it did not change.
    pub(super) fn error(&mut self, now: Option<String>) {
        if now == self.error {
            return;
        }
        let event = match &now {
            Some(reason) => ShareEvent::ErrorEntered { reason: reason.clone() },
            None => ShareEvent::ErrorLeft,
        };
        self.error = now;
        self.emit(event);
    }

    /// Sends a [`ShareEvent::Conflict`] for each conflict copy among `records` (each with
    /// the connection it came from, `None` for our own writes).
    pub(super) fn conflicts<'a>(&self, records: impl IntoIterator<Item = (Option<u64>, &'a Record)>, me: PeerId) {
        for event in records.into_iter().filter_map(|(from, r)| conflict_of(from, r, me)) {
            self.emit(event);
        }
    }
}

/// The conflict copy `r` is, if it is one we just made: our own write (not a peer's, `from`
/// is `None`), naming its original, in its first version (a clock of ours alone at 1). Both
/// the applier (our edit lost to a concurrent one) and the scan (a file edited while a peer's
/// version was on its way) make copies so; a copy written again later, or a peer's copy we
/// adopt or relay, is not a new conflict.
fn conflict_of(from: Option<u64>, r: &Record, me: PeerId) -> Option<ShareEvent> {
    if from.is_some() || r.last_updated_by != me || r.vector_clock.len() != 1 || r.vector_clock.get(&me) != 1 {
        return None;
    }
    let path = SharePath::parse(r.extra.get(CONFLICT_SOURCE)?.as_str()?).ok()?;
    (path != r.path).then(|| ShareEvent::Conflict { path, copy: r.path.clone() })
}

#[cfg(test)]
mod tests {
    use tokio::sync::broadcast::error::TryRecvError;

    use super::*;
    use clearskies_index::record::tests_support::file;

    const ME: PeerId = PeerId([3; 16]);

    fn drain(rx: &mut broadcast::Receiver<ShareEvent>) -> Vec<ShareEvent> {
        let mut out = Vec::new();
        loop {
            match rx.try_recv() {
                Ok(e) => out.push(e),
                Err(TryRecvError::Empty) => return out,
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn error_transitions_are_sent_once() {
        let mut events = Events::new(channel());
        let mut rx = events.subscribe();
        events.error(None);
        events.error(Some("root missing".into()));
        events.error(Some("root missing".into()));
        events.error(Some("disk full".into()));
        events.error(None);
        events.error(None);
        assert_eq!(
            drain(&mut rx),
            vec![
                ShareEvent::ErrorEntered { reason: "root missing".into() },
                ShareEvent::ErrorEntered { reason: "disk full".into() },
                ShareEvent::ErrorLeft,
            ]
        );
    }

    #[test]
    fn only_new_conflict_copies_of_ours_are_conflicts() {
        let events = Events::new(channel());
        let mut rx = events.subscribe();
        // `file` is written by ME with a clock of {ME: 1}.
        let mut copy = file("/doc.CONFLICT.abcdefgh.txt", b"ours");
        copy.extra.insert(CONFLICT_SOURCE.into(), "/doc.txt".into());
        let plain = file("/doc.txt", b"theirs");
        let mut again = copy.clone();
        again.vector_clock.increment(ME);
        let mut theirs = copy.clone();
        theirs.last_updated_by = PeerId([9; 16]);
        let records = [(None, &plain), (Some(7), &copy), (None, &again), (None, &theirs), (None, &copy)];
        events.conflicts(records, ME);
        let conflict = ShareEvent::Conflict {
            path: SharePath::parse("/doc.txt").unwrap(),
            copy: SharePath::parse("/doc.CONFLICT.abcdefgh.txt").unwrap(),
        };
        assert_eq!(drain(&mut rx), vec![conflict]);
    }

    #[test]
    fn sending_without_subscribers_is_harmless() {
        let mut events = Events::new(channel());
        assert!(!events.watched());
        events.emit(ShareEvent::ErrorLeft);
        events.error(Some("x".into()));
        let mut rx = events.subscribe();
        assert!(events.watched());
        events.error(None);
        assert_eq!(drain(&mut rx), vec![ShareEvent::ErrorLeft]);
    }
}
