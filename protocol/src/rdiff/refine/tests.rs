use std::io::Cursor;

use proptest::prelude::*;

use super::super::{delta, patch, signature};
use super::*;

/// Deterministic pseudo-random bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_be_bytes()[3]
        })
        .collect()
}

/// Bytes on the wire of each step, and the patched result.
struct Refined {
    coarse: usize,
    plan: usize,
    fine: usize,
    delta: usize,
    out: Vec<u8>,
}

/// All four steps of a refined delta from `basis` to `new` with coarse blocks of `coarse`.
fn refine(basis: &[u8], new: &[u8], coarse: SigParams) -> Refined {
    let mut sig = Vec::new();
    signature(basis, coarse, &mut sig).unwrap();
    let parsed = Signature::parse(&sig, usize::MAX).unwrap();
    let planned = plan(&parsed, new).unwrap().encode();
    let got = Plan::parse(&planned, new.len() as u64, basis.len() as u64).unwrap();
    let request = fine_request(&mut Cursor::new(basis), basis.len() as u64, &got, coarse.block_len.into()).unwrap();
    let (echoed, fine) = parse_fine(&request, new.len() as u64, usize::MAX).unwrap();
    assert_eq!(echoed, got);
    let mut d = Vec::new();
    refined_delta(&echoed, &fine, Cursor::new(new), &mut d).unwrap();
    let mut out = Vec::new();
    patch(&mut Cursor::new(basis), &d[..], &mut out, new.len() as u64).unwrap();
    Refined { coarse: sig.len(), plan: planned.len(), fine: request.len(), delta: d.len(), out }
}

const COARSE: SigParams = SigParams { block_len: 64 << 10, strong_len: 8 };

#[test]
fn coarse_params_follow_the_size() {
    assert_eq!(coarse_params(128 << 20), SigParams { block_len: 128 << 10, strong_len: 7 });
    assert_eq!(coarse_params(REFINE_MIN_SIZE).block_len, 64 << 10);
    assert_eq!(coarse_params(1 << 40).block_len, MAX_BLOCK_LEN);
}

#[test]
fn a_small_edit_costs_little_on_the_wire() {
    let basis = noise(8 << 20, 1);
    let mut new = basis.clone();
    new[3_000_000..3_004_096].copy_from_slice(&noise(4096, 2));
    let r = refine(&basis, &new, COARSE);
    assert!(r.out == new, "patched file differs");
    let total = r.coarse + r.plan + r.fine + r.delta;
    // Plain librsync parameters: a 32 KiB signature and a 2.8 KiB block of literal data.
    let mut plain = Vec::new();
    let params = SigParams::for_size(basis.len() as u64);
    signature(&basis[..], params, &mut plain).unwrap();
    let mut d = Vec::new();
    delta(&Signature::parse(&plain, usize::MAX).unwrap(), &new[..], &mut d).unwrap();
    assert!(total < (plain.len() + d.len()) / 2, "refined {total} bytes, plain {}", plain.len() + d.len());
    assert!(r.delta < 4096 + 2048, "delta {} bytes", r.delta);
}

#[test]
fn insertions_deletions_and_moves_are_patched_right() {
    let basis = noise(2 << 20, 3);
    let mut inserted = basis.clone();
    inserted.splice(500_000..500_000, noise(10_000, 4));
    let mut deleted = basis.clone();
    deleted.drain(700_000..900_000);
    let mut moved = basis[1 << 20..].to_vec();
    moved.extend_from_slice(&basis[..1 << 20]);
    let appended = [basis.clone(), noise(5000, 5)].concat();
    let cases =
        [("insert", inserted), ("delete", deleted), ("move", moved), ("append", appended), ("empty", Vec::new())];
    for (name, new) in cases {
        let r = refine(&basis, &new, COARSE);
        assert!(r.out == new, "{name}: patched file differs");
    }
    // Nothing in common: all gaps, and the result is still right.
    let other = noise(1 << 20, 6);
    assert!(refine(&basis, &other, COARSE).out == other);
}

#[test]
fn a_plan_of_too_many_pieces_ends_in_one_gap() {
    let bl = 256usize;
    let basis = noise(2 * MAX_PIECES * bl, 7);
    let mut new = basis.clone();
    for block in new.chunks_mut(bl).step_by(2) {
        block[0] ^= 1;
    }
    let params = SigParams { block_len: 256, strong_len: 8 };
    let mut sig = Vec::new();
    signature(&basis[..], params, &mut sig).unwrap();
    let p = plan(&Signature::parse(&sig, usize::MAX).unwrap(), &new[..]).unwrap();
    assert!(p.pieces().len() <= MAX_PIECES && p.pieces().len() > MAX_PIECES - 2, "{} pieces", p.pieces().len());
    assert!(matches!(p.pieces().last(), Some(Piece::Gap { .. })));
    assert!(Plan::parse(&p.encode(), new.len() as u64, basis.len() as u64).is_ok());
    assert!(refine(&basis, &new, params).out == new);
}

fn encoded(pieces: &[(u8, u64, u64)]) -> Vec<u8> {
    let mut out = PLAN_MAGIC.to_be_bytes().to_vec();
    for &(tag, len, offset) in pieces {
        out.push(tag);
        out.extend_from_slice(&len.to_be_bytes());
        if tag == TAG_COPY {
            out.extend_from_slice(&offset.to_be_bytes());
        }
    }
    out
}

#[test]
fn hostile_plans_are_refused() {
    let good = encoded(&[(TAG_COPY, 100, 0), (TAG_GAP, 50, 0)]);
    assert!(Plan::parse(&good, 150, 100).is_ok());
    for cut in 0..good.len() {
        assert!(Plan::parse(&good[..cut], 150, 100).is_err(), "truncated at {cut}");
    }
    let bad: [(&str, Vec<u8>, u64); 8] = [
        ("magic", [&[0u8, 0, 0, 0][..], &good[4..]].concat(), 150),
        ("sum short", good.clone(), 151),
        ("sum long", good.clone(), 149),
        ("copy outside", encoded(&[(TAG_COPY, 101, 0), (TAG_GAP, 49, 0)]), 150),
        ("offset overflow", encoded(&[(TAG_COPY, 2, u64::MAX)]), 2),
        ("length overflow", encoded(&[(TAG_GAP, u64::MAX, 0), (TAG_GAP, 2, 0)]), 1),
        ("empty piece", encoded(&[(TAG_GAP, 0, 0), (TAG_GAP, 150, 0)]), 150),
        ("unknown tag", encoded(&[(7, 150, 0)]), 150),
    ];
    for (name, bytes, len) in bad {
        assert!(Plan::parse(&bytes, len, 100).is_err(), "{name} accepted");
    }
    let many = encoded(&vec![(TAG_GAP, 1, 0); MAX_PIECES + 1]);
    assert!(Plan::parse(&many, MAX_PIECES as u64 + 1, 0).is_err(), "too many pieces accepted");
}

/// A fine request for a 150-byte file: plan, `parts`, and a signature of `blocks` blocks.
fn request(parts: &[(u64, u64)], count: u32, blocks: usize) -> Vec<u8> {
    let plan = encoded(&[(TAG_GAP, 150, 0)]);
    let mut out = u32::try_from(plan.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(&plan);
    out.extend_from_slice(&count.to_be_bytes());
    for &(o, l) in parts {
        out.extend_from_slice(&o.to_be_bytes());
        out.extend_from_slice(&l.to_be_bytes());
    }
    out.extend_from_slice(&SIG_MAGIC.to_be_bytes());
    out.extend_from_slice(&256u32.to_be_bytes());
    out.extend_from_slice(&8u32.to_be_bytes());
    out.extend(std::iter::repeat_n(0u8, blocks * 12));
    out
}

#[test]
fn hostile_fine_requests_are_refused() {
    let good = request(&[(0, 512), (4096, 300)], 2, 4);
    let (_, sig) = parse_fine(&good, 150, usize::MAX).unwrap();
    assert_eq!(sig.block_offset(3), 4096 + 256);
    for cut in 0..good.len() {
        assert!(parse_fine(&good[..cut], 150, usize::MAX).is_err(), "truncated at {cut}");
    }
    let bad = [
        ("blocks do not match the parts", request(&[(0, 512), (4096, 300)], 2, 3)),
        ("more blocks than the parts", request(&[(0, 512)], 1, 3)),
        ("empty part", request(&[(0, 0), (0, 512)], 2, 2)),
        ("part overflows", request(&[(u64::MAX, 2)], 1, 1)),
        ("absurd part count", request(&[], u32::MAX, 0)),
        ("more parts than sent", request(&[(0, 256)], 3, 1)),
    ];
    for (name, bytes) in bad {
        assert!(parse_fine(&bytes, 150, usize::MAX).is_err(), "{name} accepted");
    }
    // An absurd plan length, and a signature over the block limit.
    let mut huge = good.clone();
    huge[..4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(parse_fine(&huge, 150, usize::MAX).is_err());
    assert!(parse_fine(&good, 150, 3).is_err());
}

proptest! {
    #[test]
    fn parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), len in 0u64..1000) {
        let _ = Plan::parse(&bytes, len, len);
        let _ = parse_fine(&bytes, len, 1000);
        let mut framed = u32::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
        framed.extend_from_slice(&[&PLAN_MAGIC.to_be_bytes()[..], &bytes[..]].concat());
        let _ = parse_fine(&framed, len, 1000);
    }
}
