//! The RabinKarp rolling sum librsync uses (`rabinkarp.h`), in wrapping u32 arithmetic,
//! and BLAKE2b strong sums computed several blocks at a time.

pub(super) const RK_SEED: u32 = 1;
pub(super) const RK_MULT: u32 = 0x0810_4225;
const RK_INVM: u32 = 0x98f0_09ad;
const RK_ADJ: u32 = 0x0810_4224;

/// Bytes [`RabinKarp::of`] sums as one independent dot product.
const LANES: usize = 64;

/// `RK_MULT^(LANES - 1 - j)` for each byte `j` of a group of [`LANES`].
const POWERS: [u32; LANES] = {
    let mut p = [0u32; LANES];
    let mut acc = 1u32;
    let mut j = LANES;
    while j > 0 {
        j -= 1;
        p[j] = acc;
        acc = acc.wrapping_mul(RK_MULT);
    }
    p
};

/// `RK_MULT^LANES`.
const MULT_LANES: u32 = POWERS[0].wrapping_mul(RK_MULT);

/// `RK_MULT^n`.
fn mult_pow(mut n: u64) -> u32 {
    let (mut base, mut acc) = (RK_MULT, 1u32);
    while n > 0 {
        if n & 1 == 1 {
            acc = acc.wrapping_mul(base);
        }
        base = base.wrapping_mul(base);
        n >>= 1;
    }
    acc
}

/// The rolling sum of a window.
#[derive(Debug, Clone, Copy)]
pub(super) struct RabinKarp {
    pub(super) hash: u32,
    /// `RK_MULT` to the power of the number of bytes in the sum.
    mult: u32,
}

impl RabinKarp {
    /// The sum of `data`: `SEED·M^n + Σ dataᵢ·M^(n−1−i)`. Summed [`LANES`] bytes at a time
    /// as a dot product with a table of powers (independent multiplies, which the compiler
    /// vectorizes) instead of one long chain of dependent multiply-adds.
    pub(super) fn of(data: &[u8]) -> Self {
        let mut hash = RK_SEED;
        let mut groups = data.chunks_exact(LANES);
        for g in &mut groups {
            let mut s = 0u32;
            for (&b, &p) in g.iter().zip(POWERS.iter()) {
                s = s.wrapping_add(u32::from(b).wrapping_mul(p));
            }
            hash = hash.wrapping_mul(MULT_LANES).wrapping_add(s);
        }
        for &b in groups.remainder() {
            hash = hash.wrapping_mul(RK_MULT).wrapping_add(u32::from(b));
        }
        RabinKarp { hash, mult: mult_pow(data.len() as u64) }
    }

    /// Takes the first byte of the window (`b`) out of the sum.
    pub(super) fn roll_out(&mut self, b: u8) {
        self.mult = self.mult.wrapping_mul(RK_INVM);
        self.hash = self.hash.wrapping_sub(self.mult.wrapping_mul(u32::from(b).wrapping_add(RK_ADJ)));
    }

    /// Slides the window one byte: `out` leaves at the front, `inn` enters at the back.
    pub(super) fn rotate(&mut self, out: u8, inn: u8) {
        self.hash = self
            .hash
            .wrapping_mul(RK_MULT)
            .wrapping_add(u32::from(inn))
            .wrapping_sub(self.mult.wrapping_mul(u32::from(out).wrapping_add(RK_ADJ)));
    }
}

/// Longest strong sum (BLAKE2b-256).
pub(super) const FULL_STRONG: usize = 32;

fn strong_params() -> blake2b_simd::Params {
    let mut p = blake2b_simd::Params::new();
    p.hash_length(FULL_STRONG);
    p
}

/// The BLAKE2b-256 of one block.
pub(super) fn strong_sum(data: &[u8]) -> blake2b_simd::Hash {
    strong_params().hash(data)
}

/// The BLAKE2b-256 of each of `blocks`, hashed several at a time (AVX2 hashes four
/// independent inputs in one pass, about twice the speed of one after another).
pub(super) fn strong_sums<'a>(blocks: impl Iterator<Item = &'a [u8]>) -> Vec<blake2b_simd::Hash> {
    let params = strong_params();
    let mut jobs: Vec<_> = blocks.map(|b| blake2b_simd::many::HashManyJob::new(&params, b)).collect();
    blake2b_simd::many::hash_many(jobs.iter_mut());
    jobs.iter().map(blake2b_simd::many::HashManyJob::to_hash).collect()
}
