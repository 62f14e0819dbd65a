//! The bounded MessagePack decoder: any bytes, as a body on a `.rs.clearskies.msgpack`
//! connection, never panic; what the structural check accepts it measures exactly; a known
//! message decodes only within the value limit, and re-encodes to what decodes the same.
#![no_main]

use clearskies_protocol::message::{Message, MessageError, RawBody, MAX_VALUES};
use clearskies_protocol::msgpack;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let shape = msgpack::check(data);
    if let Ok(shape) = shape {
        assert!(shape.depth <= msgpack::MAX_DEPTH);
        assert!(shape.values <= data.len());
        // Whatever rmp-serde reads as one value spans exactly what the check measured.
        if let Ok(v) = rmp_serde::from_slice::<serde_json::Value>(data) {
            let again = rmp_serde::to_vec_named(&v).expect("a value encodes");
            let _ = msgpack::check(&again).expect("our own encoding passes the check");
        }
    }
    match Message::decode_msgpack(data) {
        Ok(Message::Unknown { body, .. }) => {
            assert!(shape.is_ok(), "an unknown body passed without the structural check");
            assert_eq!(body, RawBody::MsgPack(bytes::Bytes::copy_from_slice(data)));
        }
        Ok(m) => {
            let shape = shape.expect("a decoded body passed the structural check");
            assert!(shape.values <= MAX_VALUES);
            let again = Message::decode_msgpack(&m.encode_msgpack()).expect("our encoding decodes");
            assert_eq!(again, m);
            assert_eq!(Message::decode(&m.encode()).expect("its JSON decodes"), m);
        }
        Err(MessageError::TooManyValues { values, .. }) => assert!(values > MAX_VALUES),
        Err(_) => {}
    }
});
