//! Signatures and deltas from a peer never panic or allocate without bound, and a delta we
//! make from any signature patches back to exactly the new file when the sums are long.
#![no_main]

use std::io::Cursor;

use clearskies_protocol::rdiff::{self, SigParams, Signature};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let split = rest.len() / 2;
    let (a, b) = rest.split_at(split);
    match selector % 3 {
        // Hostile delta against a basis.
        0 => {
            let delta = [&rdiff::DELTA_MAGIC.to_be_bytes()[..], b].concat();
            let mut out = Vec::new();
            let _ = rdiff::patch(&mut Cursor::new(a), &delta[..], &mut out, 1 << 16);
            assert!(out.len() <= 1 << 16);
        }
        // Hostile signature, used to make a delta.
        1 => {
            let sig = [&rdiff::SIG_MAGIC.to_be_bytes()[..], a].concat();
            if let Ok(sig) = Signature::parse(&sig, 1 << 12) {
                let mut d = Vec::new();
                rdiff::delta(&sig, b, &mut d).expect("delta into memory");
            }
        }
        // Round trip with full-length sums and a small block.
        _ => {
            // (Peers' signatures have blocks of at least MIN_PEER_BLOCK_LEN.)
            let params = SigParams { block_len: rdiff::MIN_PEER_BLOCK_LEN + u32::from(selector / 3), strong_len: 32 };
            let mut sig = Vec::new();
            rdiff::signature(a, params, &mut sig).expect("signature into memory");
            let sig = Signature::parse(&sig, usize::MAX).expect("our signature parses");
            let mut d = Vec::new();
            rdiff::delta(&sig, b, &mut d).expect("delta into memory");
            let mut out = Vec::new();
            rdiff::patch(&mut Cursor::new(a), &d[..], &mut out, b.len() as u64).expect("our delta applies");
            assert_eq!(out, b);
        }
    }
});
