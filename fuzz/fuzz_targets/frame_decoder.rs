//! Any bytes, split at any points, give frames, "need more" or a typed error: never a panic,
//! and the decoder never holds more than one frame's worth of input (JSON or MessagePack
//! bodies).
#![no_main]

use bytes::BytesMut;
use clearskies_protocol::frame::{Decoder, MAX_LEN, MAX_SIGNATURE_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<u8>, Vec<u8>, bool)| {
    let (data, cuts, msgpack) = input;
    let mut d = Decoder::new();
    if msgpack {
        // Bodies as MessagePack maps (`.rs.clearskies.msgpack`).
        d.expect_msgpack();
    }
    let mut buf = BytesMut::new();
    let mut rest = &data[..];
    for &cut in cuts.iter().chain(std::iter::once(&u8::MAX)) {
        let n = (usize::from(cut) + 1).min(rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match d.decode(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(buf.len() <= MAX_LEN + MAX_SIGNATURE_LEN + 64);
        if rest.is_empty() {
            break;
        }
    }
});
