use std::io::Cursor;

use proptest::prelude::*;

use super::*;

fn sig_of(basis: &[u8], params: SigParams) -> Signature {
    let mut bytes = Vec::new();
    signature(basis, params, &mut bytes).expect("signature of a slice");
    Signature::parse(&bytes, usize::MAX).expect("our own signature parses")
}

fn delta_of(basis: &[u8], new: &[u8], params: SigParams) -> (Vec<u8>, DeltaStats) {
    let mut d = Vec::new();
    let stats = delta(&sig_of(basis, params), new, &mut d).expect("delta of slices");
    (d, stats)
}

fn apply(basis: &[u8], delta: &[u8], max: u64) -> Result<Vec<u8>, RdiffError> {
    let mut out = Vec::new();
    patch(&mut Cursor::new(basis), delta, &mut out, max)?;
    Ok(out)
}

/// Deterministic pseudo-random bytes (the refined deltas' tests use them too).
pub(super) fn noise(len: usize, seed: u64) -> Vec<u8> {
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

#[test]
fn rolling_matches_a_fresh_sum() {
    let data = noise(5000, 1);
    let bl = 700;
    let mut s = RabinKarp::of(&data[..bl]);
    for p in 0..data.len() - bl {
        s.rotate(data[p], data[p + bl]);
        assert_eq!(s.hash, RabinKarp::of(&data[p + 1..p + 1 + bl]).hash, "at {p}");
    }
    let mut s = RabinKarp::of(&data[..bl]);
    for p in 0..bl {
        s.roll_out(data[p]);
        assert_eq!(s.hash, RabinKarp::of(&data[p + 1..bl]).hash, "rolled out {p}");
    }
}

#[test]
fn params_follow_the_size() {
    assert_eq!(SigParams::for_size(0), SigParams { block_len: 256, strong_len: 5 });
    let p = SigParams::for_size(128 << 20);
    assert_eq!(p.block_len, 11520);
    // A 128 MiB file's signature stays well under the 1 MiB a small edit may cost.
    let blocks = (128u64 << 20).div_ceil(u64::from(p.block_len));
    assert!(12 + blocks * u64::from(4 + p.strong_len) < 200 << 10, "{p:?}");
    assert_eq!(SigParams::for_size(u64::MAX).block_len, MAX_BLOCK_LEN);
    assert!(SigParams::for_size(u64::MAX).strong_len <= MAX_STRONG_LEN);
}

#[test]
fn an_unchanged_file_is_all_copies() {
    let basis = noise(100_000, 2);
    let params = SigParams { block_len: 1024, strong_len: 8 };
    let (d, stats) = delta_of(&basis, &basis, params);
    assert_eq!(stats.literal_bytes, 0);
    assert_eq!(stats.copied_bytes, basis.len() as u64);
    // One merged copy: magic, a COPY_N1_N4 (1 + 1 + 4 bytes), END.
    assert_eq!(d.len(), 4 + 6 + 1, "{d:?}");
    assert_eq!(apply(&basis, &d, u64::MAX).expect("patch"), basis);
}

#[test]
fn a_small_edit_in_the_middle_sends_little() {
    let basis = noise(4 << 20, 3);
    let mut new = basis.clone();
    new[2 << 20..(2 << 20) + 4096].copy_from_slice(&noise(4096, 4));
    let params = SigParams::for_size(basis.len() as u64);
    let (d, stats) = delta_of(&basis, &new, params);
    assert!(stats.literal_bytes <= 4096 + 2 * u64::from(params.block_len), "{stats:?}");
    assert!(d.len() < 16 << 10, "delta is {} bytes", d.len());
    assert_eq!(apply(&basis, &d, new.len() as u64).expect("patch"), new);
}

#[test]
fn an_empty_basis_or_new_file() {
    let params = SigParams { block_len: 256, strong_len: 4 };
    let data = noise(1000, 5);
    let (d, stats) = delta_of(b"", &data, params);
    assert_eq!(stats.literal_bytes, 1000);
    assert_eq!(apply(b"", &d, 1000).expect("patch"), data);
    let (d, _) = delta_of(&data, b"", params);
    assert_eq!(apply(&data, &d, 0).expect("patch"), b"");
}

#[test]
fn the_short_last_block_is_matched() {
    let basis = noise(10 * 512 + 100, 6);
    let mut new = noise(300, 7);
    new.extend_from_slice(&basis);
    let (d, stats) = delta_of(&basis, &new, SigParams { block_len: 512, strong_len: 8 });
    assert_eq!(stats.literal_bytes, 300, "{stats:?}");
    assert_eq!(apply(&basis, &d, u64::MAX).expect("patch"), new);
}

#[test]
fn hostile_deltas_are_refused() {
    let basis = noise(1000, 8);
    let magic = DELTA_MAGIC.to_be_bytes();
    let with = |cmds: &[u8]| [&magic[..], cmds].concat();
    assert!(matches!(apply(&basis, b"", 10), Err(RdiffError::Truncated)));
    assert!(matches!(apply(&basis, &[1, 2, 3, 4], 10), Err(RdiffError::BadMagic(0x0102_0304))));
    // No END.
    assert!(matches!(apply(&basis, &with(&[2, b'a', b'b']), 10), Err(RdiffError::Truncated)));
    // A literal longer than what follows.
    assert!(matches!(apply(&basis, &with(&[5, b'a', 0]), 10), Err(RdiffError::Truncated)));
    // A reserved opcode.
    assert!(matches!(apply(&basis, &with(&[0x55, 0]), 10), Err(RdiffError::BadCommand(0x55))));
    // Copies outside the basis, and one whose end overflows.
    assert!(matches!(apply(&basis, &with(&[0x49, 0x03, 0xe0, 0x10, 0]), 10_000), Err(RdiffError::CopyOutside { .. })));
    let overflow = with(&[0x54, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 2, 0]);
    assert!(matches!(apply(&basis, &overflow, u64::MAX), Err(RdiffError::CopyOutside { .. })));
    // Output beyond the limit, even before a byte of it is written.
    assert!(matches!(
        apply(&basis, &with(&[0x44, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]), 10),
        Err(RdiffError::TooLong(10))
    ));
    assert!(matches!(apply(&basis, &with(&[0x45, 0, 200, 0]), 100), Err(RdiffError::TooLong(100))));
    // Bytes after END.
    assert!(matches!(apply(&basis, &with(&[0, 0]), 10), Err(RdiffError::Truncated)));
    // A good one, to show the bad ones are bad for their reason.
    assert_eq!(apply(&basis, &with(&[0x45, 10, 3, 1, b'x', 0]), 10).expect("patch"), [&basis[10..13], b"x"].concat());
}

#[test]
fn hostile_signatures_are_refused() {
    let header = |bl: u32, sl: u32| [SIG_MAGIC.to_be_bytes(), bl.to_be_bytes(), sl.to_be_bytes()].concat();
    assert!(matches!(Signature::parse(b"", 10), Err(RdiffError::Truncated)));
    assert!(matches!(
        Signature::parse(&[0x72, 0x73, 0x01, 0x36, 0, 0, 8, 0, 0, 0, 0, 8], 10),
        Err(RdiffError::BadMagic(_))
    ));
    assert!(matches!(Signature::parse(&header(0, 8), 10), Err(RdiffError::BadParams { .. })));
    // Blocks and strong sums too short to be anything but a way to make us work.
    for (bl, sl) in [(1, 8), (255, 8), (256, 1), (256, 3), (1, 1)] {
        assert!(matches!(Signature::parse(&header(bl, sl), 10), Err(RdiffError::BadParams { .. })), "{bl} {sl}");
    }
    assert!(Signature::parse(&header(MIN_PEER_BLOCK_LEN, MIN_PEER_STRONG_LEN), 10).is_ok());
    assert!(matches!(Signature::parse(&header(MAX_BLOCK_LEN + 1, 8), 10), Err(RdiffError::BadParams { .. })));
    assert!(matches!(Signature::parse(&header(2048, 33), 10), Err(RdiffError::BadParams { .. })));
    assert!(matches!(Signature::parse(&header(2048, 0), 10), Err(RdiffError::BadParams { .. })));
    let mut partial = header(2048, 8);
    partial.extend_from_slice(&[0; 11]);
    assert!(matches!(Signature::parse(&partial, 10), Err(RdiffError::BadSignatureLength)));
    let mut many = header(2048, 8);
    many.extend_from_slice(&[0; 12 * 11]);
    assert!(matches!(Signature::parse(&many, 10), Err(RdiffError::BadSignatureLength)));
    assert_eq!(Signature::parse(&many, 11).expect("11 blocks").blocks(), 11);
}

/// A hostile signature: `blocks` blocks of `block_len` bytes that all have the weak sum of
/// a window of zeros, and distinct strong sums that match nothing.
fn equal_weak_sums(block_len: u32, blocks: u32) -> Vec<u8> {
    let weak = RabinKarp::of(&vec![0u8; block_len as usize]).hash;
    let mut sig = [SIG_MAGIC.to_be_bytes(), block_len.to_be_bytes(), 8u32.to_be_bytes()].concat();
    for i in 0..blocks {
        sig.extend_from_slice(&weak.to_be_bytes());
        sig.extend_from_slice(&(u64::from(i) | 1 << 63).to_be_bytes());
    }
    sig
}

/// The most work a delta of `len` bytes may do: the budget, plus one position's worth.
fn work_bound(len: u64, block_len: u32) -> u64 {
    WORK_FREE + WORK_PER_BYTE * len + u64::from(block_len) + MAX_CHAIN as u64 + 1
}

#[test]
fn a_chain_of_equal_weak_sums_costs_bounded_work() {
    // The review's bomb (with the smallest block now allowed): 10 000 blocks with one weak
    // sum, walked at every position of a 64 KiB file of zeros. It used to cost 64 Ki × 10 000
    // strong-sum comparisons (some 660 M work units); the chain is now at most MAX_CHAIN.
    let sig = Signature::parse(&equal_weak_sums(256, 10_000), usize::MAX).expect("well formed");
    let new = vec![0u8; 64 << 10];
    let mut d = Vec::new();
    let stats = delta(&sig, &new[..], &mut d).expect("delta");
    // (In numbers, not through the constants: 64 Ki positions × (256 bytes hashed + 16
    // compared + 1) is 17.9 M; the budget, 16 Mi + 8 × 64 Ki, is lower still.)
    assert!(stats.work <= 18_000_000, "{stats:?}");
    assert!(stats.work <= work_bound(new.len() as u64, 256), "{stats:?}");
    assert_eq!(stats.literal_bytes, new.len() as u64, "{stats:?}");
    assert_eq!(apply(b"", &d, new.len() as u64).expect("patch"), new);
}

#[test]
fn a_long_block_that_false_matches_everywhere_exhausts_the_budget() {
    // One 1 MiB block whose weak sum is every window's in a file of zeros, and whose strong
    // sum is wrong: each position would hash 1 MiB (4 Mi positions: 4 TiB hashed). The
    // budget stops the matching and the rest goes literally; the delta is still right.
    let sig = Signature::parse(&equal_weak_sums(MAX_BLOCK_LEN, 1), usize::MAX).expect("well formed");
    let new = vec![0u8; 4 << 20];
    let mut d = Vec::new();
    let stats = delta(&sig, &new[..], &mut d).expect("delta");
    assert!(stats.budget_exhausted, "{stats:?}");
    assert!(stats.work <= work_bound(new.len() as u64, MAX_BLOCK_LEN), "{stats:?}");
    assert!(stats.work <= 60_000_000, "{stats:?}");
    assert_eq!(stats.literal_bytes, new.len() as u64);
    assert_eq!(apply(b"", &d, new.len() as u64).expect("patch"), new);
}

#[test]
fn an_honest_delta_stays_far_inside_the_budget() {
    let basis = noise(3 << 20, 11);
    let mut new = basis.clone();
    new[1_000_000..1_004_096].copy_from_slice(&noise(4096, 12));
    new.splice(2_000_000..2_000_000, noise(777, 13));
    let (d, stats) = delta_of(&basis, &new, SigParams::for_size(basis.len() as u64));
    assert!(!stats.budget_exhausted && stats.work < 3 * new.len() as u64, "{stats:?}");
    assert_eq!(apply(&basis, &d, new.len() as u64).expect("patch"), new);
    // A basis of identical blocks (zeros) is indexed once per distinct block.
    let zeros = vec![0u8; 1 << 20];
    let sig = sig_of(&zeros, SigParams { block_len: 1024, strong_len: 8 });
    assert_eq!(sig.first.len(), 1);
    assert!(sig.next.iter().all(|&n| n == NO_BLOCK));
    let mut d = Vec::new();
    let stats = delta(&sig, &zeros[..], &mut d).expect("delta");
    assert_eq!((stats.literal_bytes, stats.copied_bytes), (0, zeros.len() as u64));
    assert!(stats.work < 2 * zeros.len() as u64, "{stats:?}");
}

#[test]
fn blocks_as_long_as_a_read_are_matched() {
    // Found while bounding the work: with 1 MiB blocks (a 1 TiB basis), one read held the
    // window but not the byte after it, and the delta ended after the first window.
    let basis = noise((2 << 20) + 5, 14);
    let new = [&noise(5, 15)[..], &basis].concat();
    let (d, stats) = delta_of(&basis, &new, SigParams { block_len: MAX_BLOCK_LEN, strong_len: 8 });
    assert_eq!(stats.literal_bytes + stats.copied_bytes, new.len() as u64, "{stats:?}");
    assert_eq!((stats.literal_bytes, stats.copied_bytes), (5, basis.len() as u64), "{stats:?}");
    assert_eq!(apply(&basis, &d, u64::MAX).expect("patch"), new);
}

/// A new file made from the basis by a few inserts, deletes and overwrites.
fn edited() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    (0usize..20_000, any::<u64>(), prop::collection::vec((any::<u16>(), 0usize..3, 0usize..600), 0..6)).prop_map(
        |(len, seed, edits)| {
            let basis = noise(len, seed);
            let mut new = basis.clone();
            for (i, (at, kind, n)) in edits.into_iter().enumerate() {
                let at = usize::from(at) % (new.len() + 1);
                let fresh = noise(n, seed ^ (i as u64 + 1));
                match kind {
                    0 => {
                        new.splice(at..at, fresh);
                    }
                    1 => {
                        new.drain(at..(at + n).min(new.len()));
                    }
                    _ => {
                        let end = (at + n).min(new.len());
                        new.splice(at..end, fresh);
                    }
                }
            }
            (basis, new)
        },
    )
}

proptest! {
    #[test]
    fn patch_of_delta_gives_the_new_file((basis, new) in edited(), bl in MIN_PEER_BLOCK_LEN..1500, sl in MIN_PEER_STRONG_LEN..=32) {
        let params = SigParams { block_len: bl, strong_len: sl };
        let (d, stats) = delta_of(&basis, &new, params);
        prop_assert_eq!(stats.literal_bytes + stats.copied_bytes, new.len() as u64);
        prop_assert_eq!(stats.delta_bytes, d.len() as u64);
        // Only a truncated sum can make a false match; with 8 bytes or more it does not.
        if sl >= 8 {
            prop_assert_eq!(apply(&basis, &d, new.len() as u64).expect("patch"), new);
        }
    }

    #[test]
    fn patch_never_panics(basis in prop::collection::vec(any::<u8>(), 0..200), cmds in prop::collection::vec(any::<u8>(), 0..64)) {
        let d = [&DELTA_MAGIC.to_be_bytes()[..], &cmds].concat();
        let _ = apply(&basis, &d, 1000);
    }

    #[test]
    fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Signature::parse(&bytes, 100);
        let mut with_magic = SIG_MAGIC.to_be_bytes().to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = Signature::parse(&with_magic, 100);
    }
}

/// librsync's definition, one byte at a time: `hash = hash·M + b` from the seed.
fn scalar_sum(data: &[u8]) -> u32 {
    data.iter().fold(rolling::RK_SEED, |h, &b| h.wrapping_mul(rolling::RK_MULT).wrapping_add(u32::from(b)))
}

#[test]
fn sums_are_the_scalar_definition_for_every_length_and_alignment() {
    // Every length across several 64-byte groups, at every alignment within a group, and
    // bytes at their extremes (0xff is where a missed wrap or sign would show).
    let data = noise(4 * 64 + 2 * 64 + 3, 30);
    let ones = vec![0xffu8; data.len()];
    for src in [&data, &ones] {
        for start in 0..64 {
            for len in 0..=src.len() - start {
                let window = &src[start..start + len];
                let s = RabinKarp::of(window);
                assert_eq!(s.hash, scalar_sum(window), "start {start} len {len}");
                // Rolling on from it agrees too (its power of the multiplier is right).
                if start + len < src.len() && len > 0 {
                    let mut r = s;
                    r.rotate(window[0], src[start + len]);
                    assert_eq!(r.hash, scalar_sum(&src[start + 1..=start + len]), "rotate at {start} len {len}");
                    let mut o = s;
                    o.roll_out(window[0]);
                    assert_eq!(o.hash, scalar_sum(&window[1..]), "roll out at {start} len {len}");
                }
            }
        }
    }
}

proptest! {
    #[test]
    fn sums_are_the_scalar_definition(data in prop::collection::vec(any::<u8>(), 0..3000), skip in 0usize..64) {
        let window = &data[skip.min(data.len())..];
        prop_assert_eq!(RabinKarp::of(window).hash, scalar_sum(window));
    }

    /// Batch matching over files made of repeated and shuffled blocks (long unchanged runs,
    /// duplicate blocks, runs broken one byte in), checked by applying the delta.
    #[test]
    fn deltas_of_repetitive_files_reproduce_them(
        seed in any::<u64>(),
        bl in prop::sample::select(vec![256u32, 300, 512, 1000]),
        layout in prop::collection::vec((0usize..8, 1usize..80, any::<bool>()), 1..12),
    ) {
        let bl_us = bl as usize;
        let pool: Vec<Vec<u8>> = (0..8).map(|i| noise(bl_us, seed ^ i)).collect();
        let basis: Vec<u8> = (0..64).flat_map(|i| pool[i % 8].clone()).chain(noise(bl_us / 3, seed)).collect();
        let mut new = Vec::new();
        for (i, &(block, run, shift)) in layout.iter().enumerate() {
            if shift {
                new.push(u8::try_from(i % 251).unwrap());
            }
            for _ in 0..run {
                new.extend_from_slice(&pool[block]);
            }
        }
        new.extend_from_slice(&basis[basis.len() - bl_us / 3..]);
        let (d, stats) = delta_of(&basis, &new, SigParams { block_len: bl, strong_len: 16 });
        prop_assert_eq!(stats.literal_bytes + stats.copied_bytes, new.len() as u64);
        prop_assert!(apply(&basis, &d, new.len() as u64).expect("patch") == new);
    }
}

#[test]
fn batches_across_reads_reproduce_the_file() {
    // Unchanged runs that cross the 1 MiB reads, edits right at read boundaries, and a
    // block length that does not divide a read.
    let basis = noise((3 << 20) + 123, 31);
    for bl in [256u32, 1000, 4096] {
        let mut new = basis.clone();
        for at in [(1 << 20) - 1, 1 << 20, (2 << 20) + 7] {
            new[at] ^= 0x5a;
        }
        new.splice((1 << 20) + 500..(1 << 20) + 500, noise(3, 32));
        let (d, stats) = delta_of(&basis, &new, SigParams { block_len: bl, strong_len: 16 });
        assert!(stats.literal_bytes < 8 * u64::from(bl) + 3, "{bl}: {stats:?}");
        assert!(apply(&basis, &d, new.len() as u64).expect("patch") == new, "{bl}");
    }
}
