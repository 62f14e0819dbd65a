//! Any packet gives a NAT-PMP request or response, or a typed error, never a panic; a decoded
//! response re-encodes to bytes that decode the same, and a decoded request re-encodes to
//! the packet itself (its reserved field zeroed).
#![no_main]

use clearskies_protocol::natpmp::{Request, Response, ResultCode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Response::decode(data) {
        assert_eq!(Response::decode(&r.encode()), Ok(r));
        if let Response::Failure(f) = r {
            assert_ne!(f.result, ResultCode::Success);
        }
    }
    if let Ok(r) = Request::decode(data) {
        let mut expected = data.to_vec();
        for b in expected.iter_mut().skip(2).take(2) {
            *b = 0;
        }
        assert_eq!(r.encode(), expected);
    }
});
