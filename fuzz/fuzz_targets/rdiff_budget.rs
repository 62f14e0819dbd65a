//! A hostile signature (any parameters, any sums) against any new file: the delta's work
//! never exceeds its budget, and the delta is always right (all literal data patches back
//! from nothing; with full-length sums over a basis we made, copies patch back too).
#![no_main]

use std::io::Cursor;

use arbitrary::Arbitrary;
use clearskies_protocol::rdiff::{self, SigParams, Signature, MAX_CHAIN, WORK_FREE, WORK_PER_BYTE};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Case {
    block_len: u16,
    strong_len: u8,
    /// Weak sums (a few distinct values, so chains form) and strong-sum seeds.
    blocks: Vec<(u8, u16)>,
    /// Repeats of one short pattern, so that equal windows (and weak sums) recur.
    pattern: Vec<u8>,
    repeats: u16,
    /// A basis whose genuine blocks are added to the hostile ones.
    basis: Vec<u8>,
}

fuzz_target!(|case: Case| {
    let params = SigParams { block_len: u32::from(case.block_len).max(1), strong_len: u32::from(case.strong_len % 33) };
    let pattern = if case.pattern.is_empty() { vec![0] } else { case.pattern };
    let new: Vec<u8> = pattern.iter().copied().cycle().take(pattern.len() * usize::from(case.repeats % 2048)).collect();
    let mut sig = Vec::new();
    let Ok(_) = rdiff::signature(&case.basis[..], SigParams { strong_len: 32, ..params }, &mut sig) else { return };
    let hostile = !case.blocks.is_empty();
    if hostile {
        // The genuine header, then hostile blocks: weak sums of windows of the new file.
        let bl = params.block_len as usize;
        let sl = params.strong_len as usize;
        let mut bytes =
            [rdiff::SIG_MAGIC.to_be_bytes(), params.block_len.to_be_bytes(), params.strong_len.to_be_bytes()].concat();
        for (at, seed) in &case.blocks {
            let start = usize::from(*at) % new.len().max(1);
            let window = new.get(start..(start + bl).min(new.len())).unwrap_or_default();
            let mut weak: u32 = 1;
            for &b in window {
                weak = weak.wrapping_mul(0x0810_4225).wrapping_add(u32::from(b));
            }
            bytes.extend_from_slice(&weak.to_be_bytes());
            bytes.extend((0..sl).map(|i| seed.to_be_bytes()[i % 2] ^ i as u8));
        }
        sig = bytes;
    }
    let Ok(parsed) = Signature::parse(&sig, 1 << 16) else {
        let strong_len = if hostile { params.strong_len } else { 32 };
        assert!(
            params.block_len < rdiff::MIN_PEER_BLOCK_LEN || strong_len < rdiff::MIN_PEER_STRONG_LEN,
            "a well-formed signature was refused: {params:?}"
        );
        return;
    };
    let mut d = Vec::new();
    let stats = rdiff::delta(&parsed, &new[..], &mut d).expect("delta into memory");
    let bound = WORK_FREE + WORK_PER_BYTE * new.len() as u64 + u64::from(params.block_len) + MAX_CHAIN as u64 + 1;
    assert!(stats.work <= bound, "{stats:?} over {bound}");
    let mut out = Vec::new();
    if hostile {
        if stats.copied_bytes == 0 {
            rdiff::patch(&mut Cursor::new(&[][..]), &d[..], &mut out, new.len() as u64).expect("literal delta applies");
            assert_eq!(out, new);
        }
    } else {
        rdiff::patch(&mut Cursor::new(&case.basis[..]), &d[..], &mut out, new.len() as u64).expect("our delta applies");
        assert_eq!(out, new);
    }
});
