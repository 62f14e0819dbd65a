//! Whatever decodes re-encodes to something that decodes to the same thing: frames (kind,
//! body, signature, attachment bytes) and typed messages alike.
#![no_main]

use bytes::BytesMut;
use clearskies_protocol::frame::{self, Decoder, Item};
use clearskies_protocol::message::Message;
use libfuzzer_sys::fuzz_target;

fn decode_all(bytes: &[u8]) -> (Vec<Item>, bool) {
    let mut d = Decoder::new();
    let mut buf = BytesMut::from(bytes);
    let mut items = Vec::new();
    loop {
        match d.decode(&mut buf) {
            Ok(Some(i)) => items.push(i),
            Ok(None) => return (items, true),
            Err(_) => return (items, false),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (items, _) = decode_all(data);
    let mut wire = Vec::new();
    let mut attachment = Vec::new();
    for item in &items {
        match item {
            Item::Frame(f) => {
                frame::encode_frame(f.kind, &f.body, f.signature.as_deref(), &mut wire)
                    .expect("decoded frames re-encode");
                if let Ok(m) = Message::decode(&f.body) {
                    let again = Message::decode(&m.encode()).expect("encoded messages decode");
                    assert_eq!(again, m);
                    // The MessagePack form carries the same message (an unknown one keeps
                    // its MessagePack bytes: compare what it says).
                    let packed = Message::decode_msgpack(&m.encode_msgpack()).expect("msgpack bodies decode");
                    if matches!(m, Message::Unknown { .. }) {
                        let json = |m: &Message| serde_json::from_slice::<serde_json::Value>(&m.encode()).ok();
                        assert_eq!(json(&packed), json(&m));
                    } else {
                        assert_eq!(packed, m);
                    }
                }
            }
            Item::Chunk(c) => {
                attachment.extend_from_slice(c);
                frame::encode_chunk(c, &mut wire).expect("decoded chunks re-encode");
            }
            Item::End => frame::encode_end(&mut wire),
        }
    }
    let (again, complete) = decode_all(&wire);
    assert!(complete);
    let merged = |v: &[Item]| -> Vec<Vec<u8>> {
        v.iter()
            .map(|i| match i {
                Item::Frame(f) => [f.body.to_vec(), f.signature.as_deref().unwrap_or_default().to_vec()].concat(),
                Item::Chunk(c) => c.to_vec(),
                Item::End => Vec::new(),
            })
            .collect()
    };
    assert_eq!(merged(&again), merged(&items));
    let _ = attachment;
});
