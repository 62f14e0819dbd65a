//! A quinn-style test harness: two [`Session`]s joined by a simulated link, stepped in
//! virtual time. No sockets, no sleeps, no real clock beyond one `Instant` taken as origin.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::session::{Config, Event, Session};

/// One end of the simulated link.
pub(crate) struct Side {
    pub(crate) session: Session,
    /// Every event this side emitted, in order.
    pub(crate) events: Vec<Event>,
    /// Bytes on their way to this side, with their delivery time.
    inbound: VecDeque<(Instant, Bytes)>,
    /// Call `acknowledge_keys` as soon as keys arrive (as a driver that stored them would).
    pub(crate) auto_ack_keys: bool,
    /// Total bytes this side has put on the wire.
    pub(crate) bytes_sent: usize,
    /// While set, everything this side transmits is lost.
    pub(crate) muted: bool,
}

impl Side {
    fn new(session: Session) -> Self {
        Side { session, events: Vec::new(), inbound: VecDeque::new(), auto_ack_keys: true, bytes_sent: 0, muted: false }
    }

    /// Whether the session has emitted `Closed`.
    pub(crate) fn closed(&self) -> Option<&crate::session::CloseReason> {
        self.events.iter().find_map(|e| match e {
            Event::Closed(r) => Some(r),
            _ => None,
        })
    }

    /// The application messages received, as `type` strings.
    pub(crate) fn message_kinds(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some(m.message.kind().to_owned()),
                _ => None,
            })
            .collect()
    }

    /// Concatenated attachment data received.
    pub(crate) fn attachment_bytes(&self) -> Vec<u8> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::AttachmentChunk(c) => Some(c.to_vec()),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

/// Two sessions and the link between them.
pub(crate) struct Pair {
    pub(crate) now: Instant,
    /// One-way delay of the link.
    pub(crate) latency: Duration,
    pub(crate) client: Side,
    pub(crate) server: Side,
}

impl Pair {
    /// A pair from explicit configs.
    pub(crate) fn with_configs(client: Config, server: Config) -> Self {
        let now = Instant::now();
        Pair {
            now,
            latency: Duration::from_millis(10),
            client: Side::new(Session::new(client, now)),
            server: Side::new(Session::new(server, now)),
        }
    }

    /// Drains events and transmits of both sides into the link. Returns whether anything moved.
    fn pump(&mut self) -> bool {
        let deliver_at = self.now + self.latency;
        let a = pump_side(&mut self.client, &mut self.server, deliver_at);
        let b = pump_side(&mut self.server, &mut self.client, deliver_at);
        a || b
    }

    fn deliver_due(&mut self) -> bool {
        let mut busy = false;
        for side in [&mut self.client, &mut self.server] {
            while side.inbound.front().is_some_and(|(t, _)| *t <= self.now) {
                let (_, bytes) = side.inbound.pop_front().expect("front was just checked");
                side.session.handle_input(self.now, &bytes);
                busy = true;
            }
        }
        busy
    }

    fn next_delivery(&self) -> Option<Instant> {
        [&self.client, &self.server].iter().filter_map(|s| s.inbound.front().map(|(t, _)| *t)).min()
    }

    /// Runs until nothing is in flight, advancing time only to deliver bytes (timers do not
    /// fire unless they fall due on the way).
    pub(crate) fn drive(&mut self) {
        loop {
            let mut busy = self.pump();
            if let Some(t) = self.next_delivery() {
                self.now = self.now.max(t);
                self.fire_timers();
                busy |= self.deliver_due();
            }
            if !busy {
                break;
            }
        }
    }

    fn fire_timers(&mut self) {
        for side in [&mut self.client, &mut self.server] {
            if side.session.poll_timeout().is_some_and(|t| t <= self.now) {
                side.session.handle_timeout(self.now);
            }
        }
    }

    /// Advances virtual time by `d`, delivering bytes and firing timers in time order.
    pub(crate) fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.drive();
            let next = [&self.client, &self.server]
                .iter()
                .filter_map(|s| s.session.poll_timeout())
                .chain(self.next_delivery())
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.fire_timers();
                    self.deliver_due();
                }
                _ => {
                    self.now = end;
                    self.drive();
                    return;
                }
            }
        }
    }
}

fn pump_side(from: &mut Side, to: &mut Side, deliver_at: Instant) -> bool {
    let mut busy = false;
    while let Some(e) = from.session.poll_event() {
        busy = true;
        let ack = matches!(e, Event::KeysReceived(_)) && from.auto_ack_keys;
        from.events.push(e);
        if ack {
            from.session.acknowledge_keys().expect("keys are pending after KeysReceived");
        }
    }
    while let Some(t) = from.session.poll_transmit() {
        busy = true;
        from.bytes_sent += t.len();
        if !from.muted {
            to.inbound.push_back((deliver_at, t));
        }
    }
    busy
}
