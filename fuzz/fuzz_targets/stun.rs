//! Any datagram gives a STUN message or a typed error, never a panic; what decodes holds no
//! more heap than the datagram's size, and re-encodes to bytes that decode the same.
#![no_main]

use clearskies_protocol::stun::{is_stun, BindingRequest, BindingResponse, Header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert_eq!(is_stun(data), Header::parse(data).is_ok());
    match BindingResponse::decode(data) {
        Ok(BindingResponse::Success(s)) => {
            assert!(s.software.as_ref().map_or(0, String::capacity) <= data.len());
            let again = BindingResponse::decode(&s.encode());
            assert_eq!(again, Ok(BindingResponse::Success(s)));
        }
        Ok(BindingResponse::Error(e)) => {
            let held = e.reason.capacity()
                + 2 * e.unknown_attributes.capacity()
                + e.software.as_ref().map_or(0, String::capacity);
            assert!(held <= data.len());
            let again = BindingResponse::decode(&e.encode());
            assert_eq!(again, Ok(BindingResponse::Error(e)));
        }
        Err(_) => {}
    }
    if let Ok(r) = BindingRequest::decode(data) {
        assert!(is_stun(data));
        let held = r.software.as_ref().map_or(0, String::capacity) + 2 * r.unknown_required.capacity();
        assert!(held <= data.len());
    }
});
