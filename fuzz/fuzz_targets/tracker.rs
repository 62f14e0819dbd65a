//! The tracker's state never panics on any sequence of client messages, news never goes to
//! a client that is gone, and one round of news never exceeds what was asked.
#![no_main]

use std::time::{Duration, Instant};

use clearskies_protocol::message::Message;
use clearskies_protocol::tracker::{Config, Tracker};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut t = Tracker::new(Config::default());
    let mut here: std::collections::BTreeSet<u64> = (0..4u64).collect();
    for &c in &here {
        let _ = t.connect(c, "127.0.0.1", start);
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
        let ok = match Message::decode(body) {
            Ok(m) => t.handle(client, m, now).is_ok(),
            Err(_) => false,
        };
        if !ok {
            t.disconnect(client);
            here.remove(&client);
        }
        for gone in t.expire(now) {
            here.remove(&gone);
        }
        let news = t.take_news(8, |_| true);
        assert!(news.len() <= 8);
        for (to, _) in &news {
            assert!(here.contains(to), "news for client {to}, which is gone");
        }
    }
});
