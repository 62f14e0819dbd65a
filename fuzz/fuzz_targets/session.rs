//! Arbitrary interleavings of peer input, timer expiries and local commands against both
//! roles: no panic, and a closed session stays closed and quiet.
#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::Bytes;
use clearskies_protocol::message::{database, directory, Message};
use clearskies_protocol::session::{Config, KeyExchange, Role, Session, EXT_GZIP};
use clearskies_protocol::{PeerId, Sha256Hash};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Op {
    Input(Vec<u8>),
    Advance(u16),
    Send,
    SendAttachment(Vec<u8>),
    AcknowledgeKeys,
    Close,
}

#[derive(Debug, Arbitrary)]
struct Case {
    server: bool,
    gzip: bool,
    receive_keys: bool,
    ops: Vec<Op>,
}

fuzz_target!(|case: Case| {
    let role = if case.server { Role::Server } else { Role::Client };
    let mut config = Config::new(role, PeerId([1; 16]));
    if case.gzip {
        config.extensions = vec![EXT_GZIP.to_owned()];
    }
    if case.receive_keys {
        config.key_exchange = KeyExchange::Receive;
    }
    let mut now = Instant::now();
    let mut s = Session::new(config, now);
    for op in case.ops {
        match op {
            Op::Input(bytes) => s.handle_input(now, &bytes),
            Op::Advance(secs) => {
                now += Duration::from_secs(u64::from(secs));
                s.handle_timeout(now);
            }
            Op::Send => {
                let _ = s.send(&Message::from(database::GetUpdates::default()));
            }
            Op::SendAttachment(data) => {
                let m = Message::from(directory::Data { sha256: Sha256Hash([0; 32]), range: None });
                if s.send_with_attachment(&m).is_ok() {
                    if !data.is_empty() {
                        let _ = s.send_chunk(Bytes::from(data));
                    }
                    let _ = s.end_attachment(now);
                }
            }
            Op::AcknowledgeKeys => {
                let _ = s.acknowledge_keys();
            }
            Op::Close => s.close(),
        }
        while s.poll_event().is_some() {}
        while s.poll_transmit().is_some() {}
        if s.is_closed() {
            assert!(s.poll_timeout().is_none());
        }
    }
});
