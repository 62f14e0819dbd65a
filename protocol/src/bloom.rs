//! The presence bloom filter of `directory.get_presence` / `directory.bloom_filter`.
//!
//! The filter is the message's attachment. Its size in bits is m = 8 × the attachment's
//! length; bit i lives in byte i / 8, least significant bit first. The k positions of a file
//! are the first k 32-bit big-endian words of its SHA-256, each taken mod m (so 1 ≤ k ≤ 8).
//! A filter of all ones means "probe for everything"; all zeros means "ask for nothing".

use crate::Sha256Hash;

/// Largest k: a SHA-256 has eight 32-bit words.
pub const MAX_K: u8 = 8;

/// Why a filter could not be built or accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BloomError {
    /// k is outside 1..=8.
    #[error("bloom k value {0} is outside 1..=8")]
    BadK(u64),
    /// The filter has no bytes (m would be zero).
    #[error("bloom filter is empty")]
    Empty,
    /// The filter is larger than a frame chunk can carry.
    #[error("bloom filter of {0} bytes exceeds the frame limit")]
    TooLarge(usize),
}

/// A presence bloom filter.
#[derive(Clone, PartialEq, Eq)]
pub struct BloomFilter {
    bits: Vec<u8>,
    k: u8,
}

impl std::fmt::Debug for BloomFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BloomFilter").field("bytes", &self.bits.len()).field("k", &self.k).finish()
    }
}

impl BloomFilter {
    /// An empty filter of `bytes` bytes and `k` hashes.
    pub fn new(bytes: usize, k: u8) -> Result<Self, BloomError> {
        check(bytes, u64::from(k))?;
        Ok(BloomFilter { bits: vec![0; bytes], k })
    }

    /// A filter sized for `n` entries at roughly `false_positive_rate`, with the optimal k.
    // The float results are clamped to 1..=MAX_LEN and 1..=8 before the casts.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    pub fn for_entries(n: usize, false_positive_rate: f64) -> Self {
        let n = n.max(1) as f64;
        let p = false_positive_rate.clamp(1e-9, 0.5);
        let ln2 = std::f64::consts::LN_2;
        let m_bits = (-(n * p.ln()) / (ln2 * ln2)).ceil().max(8.0);
        let bytes = ((m_bits / 8.0).ceil() as usize).clamp(1, crate::frame::MAX_LEN);
        let k = ((bytes as f64 * 8.0 / n) * ln2).round().clamp(1.0, f64::from(MAX_K)) as u8;
        BloomFilter { bits: vec![0; bytes], k }
    }

    /// A one-byte filter that claims every file is present (`0xff`): "probe for files".
    pub fn all_present() -> Self {
        BloomFilter { bits: vec![0xff], k: 1 }
    }

    /// A received filter: the attachment bytes and the message's `k_value`.
    pub fn from_parts(bits: Vec<u8>, k: u64) -> Result<Self, BloomError> {
        check(bits.len(), k)?;
        // check() proved 1 ≤ k ≤ 8.
        Ok(BloomFilter { bits, k: u8::try_from(k).unwrap_or(MAX_K) })
    }

    /// The k value.
    pub fn k(&self) -> u8 {
        self.k
    }

    /// The filter bytes, as sent in the attachment.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bits
    }

    /// The bit positions of a hash; only the first k are meaningful.
    fn positions(&self, hash: &Sha256Hash) -> [usize; 8] {
        let m = self.bits.len() as u64 * 8;
        let mut out = [0usize; 8];
        for (slot, w) in out.iter_mut().zip(hash.0.chunks_exact(4)) {
            let word = u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
            // word % m < m ≤ 8 × MAX_LEN, which fits in usize.
            *slot = usize::try_from(word % m).unwrap_or(0);
        }
        out
    }

    /// Adds a file's hash.
    pub fn insert(&mut self, hash: &Sha256Hash) {
        let positions = self.positions(hash);
        for &bit in &positions[..usize::from(self.k)] {
            self.bits[bit / 8] |= 1 << (bit % 8);
        }
    }

    /// Whether the hash may be present (false positives possible, no false negatives).
    pub fn contains(&self, hash: &Sha256Hash) -> bool {
        self.positions(hash)[..usize::from(self.k)].iter().all(|&bit| self.bits[bit / 8] & (1 << (bit % 8)) != 0)
    }
}

fn check(bytes: usize, k: u64) -> Result<(), BloomError> {
    if !(1..=u64::from(MAX_K)).contains(&k) {
        return Err(BloomError::BadK(k));
    }
    if bytes == 0 {
        return Err(BloomError::Empty);
    }
    if bytes > crate::frame::MAX_LEN {
        return Err(BloomError::TooLarge(bytes));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(s: &str) -> Sha256Hash {
        s.parse().unwrap()
    }

    /// The worked example of `directory.md`, with m = 1000 bits (125 bytes) and k = 2.
    #[test]
    fn spec_example_bit_positions() {
        let h = hash("c16987a16bc7f7dd45e341b855171e8d5c6577a70febd408fbe6d2a194c18224");
        let mut f = BloomFilter::new(125, 2).unwrap();
        f.insert(&h);
        let set: Vec<usize> = (0..1000).filter(|&i| f.bits[i / 8] & (1 << (i % 8)) != 0).collect();
        assert_eq!(set, vec![229, 689]);
        // Bit 689 is byte 86, bit 1 (LSB first); bit 229 is byte 28, bit 5.
        assert_eq!(f.bits[86], 0b0000_0010);
        assert_eq!(f.bits[28], 0b0010_0000);
        assert!(f.contains(&h));
    }

    #[test]
    fn special_filters_and_bad_parts() {
        let h = hash("db5accb08247a6697dc110b3bc540ed3fafea720e81ab3287a279cbcd1390906");
        assert!(BloomFilter::all_present().contains(&h));
        assert!(!BloomFilter::from_parts(vec![0], 3).unwrap().contains(&h));
        assert_eq!(BloomFilter::from_parts(vec![0], 0), Err(BloomError::BadK(0)));
        assert_eq!(BloomFilter::from_parts(vec![0], 9), Err(BloomError::BadK(9)));
        assert_eq!(BloomFilter::from_parts(vec![], 1), Err(BloomError::Empty));
    }

    #[test]
    fn sized_filter_has_no_false_negatives_and_few_false_positives() {
        use sha2::{Digest, Sha256};
        let hashes: Vec<Sha256Hash> =
            (0..10_000u32).map(|i| Sha256Hash(Sha256::digest(i.to_be_bytes()).into())).collect();
        let mut f = BloomFilter::for_entries(5_000, 0.01);
        for h in &hashes[..5_000] {
            f.insert(h);
        }
        assert!(hashes[..5_000].iter().all(|h| f.contains(h)));
        let fp = hashes[5_000..].iter().filter(|h| f.contains(h)).count();
        assert!(fp < 150, "false positives: {fp} of 5000");
    }
}
