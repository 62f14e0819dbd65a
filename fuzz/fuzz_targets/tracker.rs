//! The tracker's state never panics on any sequence of client messages, and news about
//! expired clients never goes to them.
#![no_main]

use std::time::{Duration, Instant};

use clearskies_protocol::message::Message;
use clearskies_protocol::tracker::{Config, Tracker};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut t = Tracker::new(Config::default());
    for c in 0..4u64 {
        t.connect(c, "127.0.0.1", start);
    }
    // Input: records of [client, seconds later, len, body…].
    let mut rest = data;
    let mut now = start;
    while rest.len() >= 3 {
        let (client, secs, len) = (u64::from(rest[0] % 5), u64::from(rest[1]), usize::from(rest[2]));
        rest = &rest[3..];
        let body = &rest[..len.min(rest.len())];
        rest = &rest[body.len()..];
        now += Duration::from_secs(secs);
        let _news = match Message::decode(body) {
            Ok(m) => match t.handle(client, m, now) {
                Ok(news) => news,
                Err(_) => t.disconnect(client),
            },
            Err(_) => t.disconnect(client),
        };
        let (gone, more) = t.expire(now);
        // News about departures goes only to those still here.
        for (to, _) in &more {
            assert!(!gone.contains(to));
        }
    }
});
