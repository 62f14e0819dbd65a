use std::io::Cursor;

use proptest::prelude::*;

use super::super::tests::noise;
use super::super::{delta, patch, signature, signature_parts, WORK_FREE, WORK_PER_BYTE};
use super::*;

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

/// The sums of `block` as a signature entry with `strong_len` 8.
fn entry(block: &[u8]) -> Vec<u8> {
    let mut e = super::super::rolling::RabinKarp::of(block).hash.to_be_bytes().to_vec();
    e.extend_from_slice(&super::super::rolling::strong_sum(block).as_bytes()[..8]);
    e
}

/// A fine request for a `new_len`-byte file: one gap over all of it, `parts`, and a
/// signature of 256-byte blocks with these `entries`.
fn gap_request(new_len: u64, parts: &[(u64, u64)], entries: &[Vec<u8>]) -> Vec<u8> {
    let plan = encoded(&[(TAG_GAP, new_len, 0)]);
    let mut out = u32::try_from(plan.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(&plan);
    out.extend_from_slice(&u32::try_from(parts.len()).unwrap().to_be_bytes());
    for &(o, l) in parts {
        out.extend_from_slice(&o.to_be_bytes());
        out.extend_from_slice(&l.to_be_bytes());
    }
    out.extend_from_slice(&SIG_MAGIC.to_be_bytes());
    out.extend_from_slice(&256u32.to_be_bytes());
    out.extend_from_slice(&8u32.to_be_bytes());
    for e in entries {
        out.extend_from_slice(e);
    }
    out
}

#[test]
fn a_short_last_block_at_the_end_of_the_offsets_does_not_overflow() {
    // A part ending at u64::MAX whose short last block (44 bytes) claims the sums of a whole
    // 256-byte window: the matched copy runs past u64::MAX, and merging the next copy with it
    // used to overflow (a panic with overflow checks).
    let new = noise(768, 20);
    let (a, b) = (&new[..256], &new[256..512]);
    let new = [a, b, a].concat();
    let parts = [(u64::MAX - 300, 300)];
    let req = gap_request(new.len() as u64, &parts, &[entry(a), entry(b)]);
    let (plan, sig) = parse_fine(&req, new.len() as u64, usize::MAX).unwrap();
    let mut d = Vec::new();
    let stats = refined_delta(&plan, &sig, Cursor::new(&new), &mut d).unwrap();
    assert_eq!(stats.copied_bytes + stats.literal_bytes, new.len() as u64, "{stats:?}");
    // Whatever it says, the receiver refuses copies outside its basis.
    assert!(patch(&mut Cursor::new(&new), &d[..], &mut Vec::new(), 1 << 20).is_err());
}

#[test]
fn a_plan_is_recorded_in_bounded_memory() {
    // A receiver's signature that matches every other block of our file: the plan would be
    // one piece per 128 bytes of the file (1.5 GB held for a 8 GiB file). Recording keeps at
    // most MAX_PIECES + 1 pieces and the length of the rest.
    let bl = 256usize;
    let basis = noise(3 * MAX_PIECES * bl, 8);
    let mut new = basis.clone();
    for block in new.chunks_mut(bl).step_by(2) {
        block[0] ^= 1;
    }
    let params = SigParams { block_len: 256, strong_len: 8 };
    let mut sig = Vec::new();
    signature(&basis[..], params, &mut sig).unwrap();
    let sig = Signature::parse(&sig, usize::MAX).unwrap();
    let mut w = DeltaWriter::recording(std::io::sink());
    match_into(&sig, &new[..], &mut w, &mut Budget::default()).unwrap();
    let (pieces, overflow, stats) = w.finish_plan().unwrap();
    assert!(pieces.len() <= MAX_PIECES + 1, "{} pieces recorded", pieces.len());
    let recorded: u64 = pieces.iter().map(|p| p.len()).sum();
    assert_eq!(recorded + overflow, new.len() as u64);
    assert_eq!(stats.copied_bytes + stats.literal_bytes, new.len() as u64);
    let p = plan(&sig, &new[..]).unwrap();
    // The same plan as before: its first pieces as matched, the rest one gap.
    let n = p.pieces().len();
    assert!((MAX_PIECES - 1..=MAX_PIECES).contains(&n), "{n} pieces");
    assert_eq!(p.pieces()[..n - 1], pieces[..n - 1]);
    assert!(matches!(p.pieces()[n - 1], Piece::Gap { .. }));
    assert!(Plan::parse(&p.encode(), new.len() as u64, basis.len() as u64).is_ok());
    assert!(refine(&basis, &new, params).out == new);
}

#[test]
fn a_fine_signature_without_parts_must_be_empty() {
    let a = noise(256, 21);
    assert!(parse_fine(&gap_request(256, &[], &[entry(&a)]), 256, usize::MAX).is_err());
    let (plan, sig) = parse_fine(&gap_request(256, &[], &[]), 256, usize::MAX).unwrap();
    assert_eq!(sig.blocks(), 0);
    let mut d = Vec::new();
    let stats = refined_delta(&plan, &sig, Cursor::new(&a), &mut d).unwrap();
    assert_eq!(stats.literal_bytes, 256);
}

/// A basis and a new file made of it by a few inserts, deletes, overwrites and block moves.
fn edited_pair() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let edits = prop::collection::vec((any::<u32>(), 0usize..4, 0usize..3000), 0..6);
    (0usize..60_000, any::<u64>(), edits).prop_map(|(len, seed, edits)| {
        let basis = noise(len, seed);
        let mut new = basis.clone();
        for (i, (at, kind, n)) in edits.into_iter().enumerate() {
            let at = at as usize % (new.len() + 1);
            let end = (at + n).min(new.len());
            let fresh = noise(n, seed ^ (i as u64 + 1));
            match kind {
                0 => drop(new.splice(at..at, fresh)),
                1 => drop(new.drain(at..end)),
                2 => drop(new.splice(at..end, fresh)),
                _ => {
                    // A stretch of the basis copied elsewhere.
                    let from = at % (basis.len() + 1);
                    let piece = basis[from..(from + n).min(basis.len())].to_vec();
                    new.splice(at..at, piece);
                }
            }
        }
        (basis, new)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn refined_deltas_reproduce_the_new_file((basis, new) in edited_pair(), coarse in 256u32..4096, sl in 8u32..=32) {
        let r = refine(&basis, &new, SigParams { block_len: coarse, strong_len: sl });
        prop_assert!(r.out == new, "patched file differs");
    }

    #[test]
    fn hostile_fine_requests_cost_bounded_and_never_panic(
        new_len in 1u64..3000,
        cuts in prop::collection::vec((any::<u16>(), any::<bool>(), any::<u64>()), 0..8),
        parts in prop::collection::vec((any::<u64>(), 1u64..2000), 1..5),
        windows in prop::collection::vec(any::<u16>(), 0..12),
    ) {
        let new = noise(usize::try_from(new_len).unwrap(), new_len);
        // A plan of copies (anywhere) and gaps, adding up to the file's length.
        let mut at: Vec<u64> = cuts.iter().map(|c| u64::from(c.0) % new_len).collect();
        at.extend([0, new_len]);
        at.sort_unstable();
        at.dedup();
        let pieces: Vec<(u8, u64, u64)> = at
            .windows(2)
            .zip(cuts.iter().chain(std::iter::repeat(&(0, false, 0))))
            .map(|(w, &(_, copy, offset))| if copy {
                (TAG_COPY, w[1] - w[0], offset.min(u64::MAX - (w[1] - w[0])))
            } else {
                (TAG_GAP, w[1] - w[0], 0)
            })
            .collect();
        let plan = encoded(&pieces);
        // Parts anywhere, and a signature with their block count whose entries are the sums
        // of windows of the new file (so that blocks match, at any claimed offset).
        let parts: Vec<(u64, u64)> = parts.iter().map(|&(o, l)| (o.min(u64::MAX - l), l)).collect();
        let blocks: u64 = parts.iter().map(|p| p.1.div_ceil(256)).sum();
        let len = usize::try_from(new_len).unwrap();
        let entries: Vec<Vec<u8>> = (0..blocks)
            .map(|i| {
                let w = windows.get(usize::try_from(i).unwrap()).map_or(0, |&w| usize::from(w));
                let start = if len > 256 { w % (len - 256) } else { 0 };
                entry(&new[start..(start + 256).min(len)])
            })
            .collect();
        let mut req = u32::try_from(plan.len()).unwrap().to_be_bytes().to_vec();
        req.extend_from_slice(&plan);
        req.extend_from_slice(&gap_request(new_len, &parts, &entries)[4 + 4 + 9..]);
        let (plan, sig) = parse_fine(&req, new_len, 1 << 16).unwrap();
        let mut d = Vec::new();
        let stats = refined_delta(&plan, &sig, Cursor::new(&new), &mut d).unwrap();
        prop_assert_eq!(stats.copied_bytes + stats.literal_bytes, new_len);
        prop_assert_eq!(stats.delta_bytes, d.len() as u64);
        prop_assert!(stats.work <= WORK_FREE + WORK_PER_BYTE * new_len + 256 * 33, "{:?}", stats);
        // Against a basis, the delta is refused or gives new_len bytes.
        let basis = noise(4096, 9);
        let mut out = Vec::new();
        if patch(&mut Cursor::new(&basis), &d[..], &mut out, new_len).is_ok() {
            prop_assert_eq!(out.len() as u64, new_len);
        }
    }
}

/// `data` cut into `n` consecutive parts, each but the last a whole number of `block`s.
fn cut(data: &[u8], block: usize, n: usize) -> Vec<&[u8]> {
    let per = (data.len() / block).div_ceil(n).max(1) * block;
    let mut parts: Vec<&[u8]> = data.chunks(per).collect();
    if parts.is_empty() {
        parts.push(&[]);
    }
    parts
}

/// The coarse step on several threads says what it says on one: the same signature bytes,
/// the same plan for a file changed in place, and, whatever moved across the cut, a plan
/// that patches the file right.
#[test]
fn the_coarse_step_in_parts_matches_it_whole() {
    let basis = noise(2 << 20, 7);
    let block = COARSE.block_len as usize;
    for n in 1..=4 {
        let mut whole = Vec::new();
        signature(&basis[..], COARSE, &mut whole).unwrap();
        let mut parted = Vec::new();
        let blocks = signature_parts(cut(&basis, block, n), COARSE, &mut parted).unwrap();
        assert!(parted == whole, "{n} parts: another signature");
        assert_eq!(blocks, basis.len().div_ceil(block) as u64);
    }
    let sig = {
        let mut bytes = Vec::new();
        signature(&basis[..], COARSE, &mut bytes).unwrap();
        Signature::parse(&bytes, usize::MAX).unwrap()
    };
    let mut in_place = basis.clone();
    in_place[1_000_000..1_004_096].copy_from_slice(&noise(4096, 8));
    let mut shifted = basis.clone();
    shifted.splice(1_040_000..1_040_000, noise(3000, 9));
    for n in 1..=4 {
        let one = plan(&sig, &in_place[..]).unwrap();
        assert_eq!(plan_parts(&sig, cut(&in_place, block, n)).unwrap(), one, "{n} parts, in place");
        let parted = plan_parts(&sig, cut(&shifted, block, n)).unwrap().encode();
        let got = Plan::parse(&parted, shifted.len() as u64, basis.len() as u64).unwrap();
        let request = fine_request(&mut Cursor::new(&basis), basis.len() as u64, &got, block as u64).unwrap();
        let (echoed, fine) = parse_fine(&request, shifted.len() as u64, usize::MAX).unwrap();
        let mut d = Vec::new();
        refined_delta(&echoed, &fine, Cursor::new(&shifted), &mut d).unwrap();
        let mut out = Vec::new();
        patch(&mut Cursor::new(&basis), &d[..], &mut out, shifted.len() as u64).unwrap();
        assert!(out == shifted, "{n} parts, shifted: patched file differs");
    }
}
