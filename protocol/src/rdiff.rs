//! The `rsync` extension's payloads: signatures and deltas in the librsync 2.x format, the
//! one the `rdiff` tool reads and writes (DESIGN.md, "Extensions").
//!
//! * A **signature** describes a basis file in blocks of `block_len` bytes: the header
//!   `magic ‖ block_len ‖ strong_len` (big-endian u32s, magic [`SIG_MAGIC`]: RabinKarp weak
//!   sums and BLAKE2b strong sums), then per block its 32-bit RabinKarp sum and the first
//!   `strong_len` bytes of its BLAKE2b-256 hash. The last block may be shorter.
//! * A **delta** turns the basis into a new file: [`DELTA_MAGIC`], then commands: literal
//!   bytes (`0x01`–`0x40` carry their length in the opcode, `0x41`–`0x44` in a 1/2/4/8-byte
//!   parameter), copies from the basis (`0x45`–`0x54`: offset and length, each 1/2/4/8
//!   bytes), and `0x00` to end. All integers are big-endian.
//!
//! Everything streams through [`Read`]/[`Write`]: the signature is the only thing held in
//! memory (it is small: [`SigParams::for_size`] picks about √size blocks), so neither side
//! ever holds a whole file. Peer input is hostile: [`Signature::parse`] bounds block sizes
//! and counts, and [`patch`] refuses copies outside the basis and output beyond a limit.
//! A wrong result is still possible in principle (a weak and truncated strong sum can
//! collide), which is why the receiver verifies the patched file's SHA-256 before using it.
//!
//! # The CPU a peer's signature may cost
//!
//! A signature is the peer's choice, and matching against it is our CPU. So:
//!
//! * [`Signature::parse`] refuses blocks shorter than [`MIN_PEER_BLOCK_LEN`] and strong sums
//!   shorter than [`MIN_PEER_STRONG_LEN`] (librsync's `rs_sig_args` recommends at least 256
//!   and, for a 5 kB basis, 4 bytes; ours recommends at least 5).
//! * Blocks with the same weak sum form a chain that is walked at every position whose
//!   rolling sum has that value. Identical blocks (same weak and strong sum) are indexed
//!   once, as librsync does, and a chain holds at most [`MAX_CHAIN`] blocks (the first in
//!   file order; the rest can never be copied, which only makes the delta longer).
//! * [`delta`] counts its work ([`DeltaStats::work`]: one unit per position tried, per
//!   byte hashed by a strong sum, per chain entry compared) and allows
//!   [`WORK_PER_BYTE`] units per byte of the new file plus [`WORK_FREE`]. An honest delta
//!   uses about 2 per byte. Past the budget the rest of the file is sent as literal data:
//!   the delta stays correct, the peer just gets less of it by copy.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom, Write};

pub use delta::{delta, DeltaStats};
use rolling::{strong_sum, strong_sums, RabinKarp};

mod delta;
pub mod refine;
mod rolling;

/// `RS_RK_BLAKE2_SIG_MAGIC`: a signature with RabinKarp weak sums and BLAKE2b strong sums.
pub const SIG_MAGIC: u32 = 0x7273_0147;
/// `RS_DELTA_MAGIC`.
pub const DELTA_MAGIC: u32 = 0x7273_0236;
/// Longest strong sum (BLAKE2b-256).
pub const MAX_STRONG_LEN: u32 = 32;
/// Largest block we make or accept (the √ of a 1 TiB file).
pub const MAX_BLOCK_LEN: u32 = 1 << 20;
/// Smallest block [`SigParams::for_size`] picks.
const MIN_BLOCK_LEN: u32 = 256;
/// Shortest block accepted in a peer's signature (librsync's and our own minimum choice).
pub const MIN_PEER_BLOCK_LEN: u32 = MIN_BLOCK_LEN;
/// Shortest strong sum accepted in a peer's signature: what librsync recommends for a 5 kB
/// basis (a shorter one only makes false matches, which the SHA-256 check then refuses,
/// likelier; [`SigParams::for_size`] never picks fewer than 5).
pub const MIN_PEER_STRONG_LEN: u32 = 4;
/// Most blocks with one weak sum that are indexed (and so compared at one position).
pub const MAX_CHAIN: usize = 16;
/// Work units [`delta`] may spend per byte of the new file, beyond [`WORK_FREE`].
pub const WORK_PER_BYTE: u64 = 8;
/// Work units [`delta`] may always spend (16 Mi: some 20 ms of hashing).
pub const WORK_FREE: u64 = 1 << 24;

const OP_END: u8 = 0x00;
const OP_LITERAL_N1: u8 = 0x41;
const OP_COPY_N1_N1: u8 = 0x45;
const OP_COPY_N8_N8: u8 = 0x54;
/// Bytes read ahead of the delta's window.
const READ_CHUNK: usize = 1 << 20;

/// Malformed signature or delta bytes (from a peer, or a file that is not what it claims).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RdiffError {
    /// The stream does not start with the expected magic number.
    #[error("bad magic number {0:#010x}")]
    BadMagic(u32),
    /// A signature's block or strong-sum length is out of range.
    #[error("bad signature parameters (block length {block_len}, strong sum length {strong_len})")]
    BadParams {
        /// Its block length.
        block_len: u32,
        /// Its strong-sum length.
        strong_len: u32,
    },
    /// The signature's length is not a whole number of blocks, or it has too many.
    #[error("signature is truncated or too large")]
    BadSignatureLength,
    /// A reserved delta opcode.
    #[error("bad delta command {0:#04x}")]
    BadCommand(u8),
    /// A copy reaches outside the basis file.
    #[error("delta copies {len} bytes at {offset}, outside the basis")]
    CopyOutside {
        /// Where the copy starts.
        offset: u64,
        /// How long it is.
        len: u64,
    },
    /// The result would be longer than allowed.
    #[error("patched output exceeds {0} bytes")]
    TooLong(u64),
    /// The delta ends before its end command, or has bytes after it.
    #[error("delta is truncated or has trailing bytes")]
    Truncated,
    /// A refined delta's plan or fine signature is malformed (see [`refine`]).
    #[error("bad refined delta request: {0}")]
    BadPlan(&'static str),
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A signature's block and strong-sum lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigParams {
    /// Bytes per block.
    pub block_len: u32,
    /// Bytes of each block's BLAKE2b-256 hash that are kept (1–32).
    pub strong_len: u32,
}

impl SigParams {
    /// librsync 2.3's recommendation (`rs_sig_args`) for a basis of `size` bytes: blocks of
    /// about √size (at least 256 bytes, a multiple of 128), and a strong sum just long enough
    /// that a false match is unlikely (the receiver's SHA-256 check catches one anyway). A
    /// 128 MiB file gets 11 520-byte blocks and 7-byte sums: a 128 KiB signature.
    pub fn for_size(size: u64) -> Self {
        let block_len = if size <= u64::from(MIN_BLOCK_LEN) * u64::from(MIN_BLOCK_LEN) {
            MIN_BLOCK_LEN
        } else {
            let root = size.isqrt().min(u64::from(MAX_BLOCK_LEN));
            u32::try_from(root).unwrap_or(MAX_BLOCK_LEN) & !127
        };
        let blocks = size / u64::from(block_len) + 1;
        let bits = size.saturating_add(1 << 24).ilog2() + blocks.ilog2();
        let strong_len = (2 + bits.div_ceil(8)).min(MAX_STRONG_LEN);
        SigParams { block_len, strong_len }
    }

    /// Length of the signature of a `size`-byte file with these parameters.
    pub fn signature_len(self, size: u64) -> u64 {
        let blocks = size.div_ceil(u64::from(self.block_len.max(1)));
        12 + blocks.saturating_mul(u64::from(4 + self.strong_len))
    }

    fn check(self) -> Result<Self, RdiffError> {
        self.check_within(1, 1)
    }

    fn check_within(self, min_block: u32, min_strong: u32) -> Result<Self, RdiffError> {
        if (min_block..=MAX_BLOCK_LEN).contains(&self.block_len)
            && (min_strong..=MAX_STRONG_LEN).contains(&self.strong_len)
        {
            Ok(self)
        } else {
            Err(RdiffError::BadParams { block_len: self.block_len, strong_len: self.strong_len })
        }
    }
}

/// Reads until `buf` is full or the input ends; how many bytes were read.
fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Writes the signature of `basis` with `params` to `out`, streaming; the number of blocks.
pub fn signature<R: Read, W: Write>(basis: R, params: SigParams, mut out: W) -> Result<u64, RdiffError> {
    let params = params.check()?;
    let mut header = [0u8; 12];
    header[..4].copy_from_slice(&SIG_MAGIC.to_be_bytes());
    header[4..8].copy_from_slice(&params.block_len.to_be_bytes());
    header[8..].copy_from_slice(&params.strong_len.to_be_bytes());
    out.write_all(&header)?;
    signature_blocks(basis, params, out)
}

/// [`signature`] of a basis given as `parts`, consecutive pieces of it (each but the last a
/// whole number of blocks long), each summed on a thread of its own, then written in order.
/// The sums are held until all are done: meant for signatures of few blocks (the coarse
/// step of a refined delta).
pub fn signature_parts<R: Read + Send, W: Write>(
    parts: Vec<R>,
    params: SigParams,
    mut out: W,
) -> Result<u64, RdiffError> {
    let params = params.check()?;
    let summed = on_threads(parts, |part| {
        let mut sums = Vec::new();
        signature_blocks(part, params, &mut sums).map(|n| (sums, n))
    });
    let mut header = [0u8; 12];
    header[..4].copy_from_slice(&SIG_MAGIC.to_be_bytes());
    header[4..8].copy_from_slice(&params.block_len.to_be_bytes());
    header[8..].copy_from_slice(&params.strong_len.to_be_bytes());
    out.write_all(&header)?;
    let mut blocks = 0;
    for part in summed {
        let (sums, n) = part?;
        out.write_all(&sums)?;
        blocks += n;
    }
    Ok(blocks)
}

/// `work` on each of `parts`, each on a thread of its own, the results in order. A thread
/// the system cannot start, or one that panics, is an error, never a panic here.
fn on_threads<P: Send, T: Send>(
    parts: Vec<P>,
    work: impl Fn(P) -> Result<T, RdiffError> + Sync,
) -> Vec<Result<T, RdiffError>> {
    std::thread::scope(|s| {
        let work = &work;
        let threads: Vec<_> =
            parts.into_iter().map(|p| std::thread::Builder::new().spawn_scoped(s, move || work(p))).collect();
        threads
            .into_iter()
            .map(|t| match t {
                Ok(t) => t.join().unwrap_or_else(|_| Err(io::Error::other("a worker thread failed").into())),
                Err(e) => Err(e.into()),
            })
            .collect()
    })
}

/// Writes the sums of the blocks of `basis` (a signature without its header); how many.
fn signature_blocks<R: Read, W: Write>(mut basis: R, params: SigParams, mut out: W) -> Result<u64, RdiffError> {
    let bl = params.block_len as usize;
    let sl = params.strong_len as usize;
    // Read many blocks at a time; sums are written in batches.
    let per_read = (READ_CHUNK / bl).max(1);
    let mut buf = vec![0u8; per_read * bl];
    let mut sums = Vec::with_capacity(per_read * (4 + sl));
    let mut blocks = 0u64;
    loop {
        let n = read_full(&mut basis, &mut buf)?;
        sums.clear();
        let strong = strong_sums(buf[..n].chunks(bl));
        for (block, strong) in buf[..n].chunks(bl).zip(&strong) {
            sums.extend_from_slice(&RabinKarp::of(block).hash.to_be_bytes());
            sums.extend_from_slice(&strong.as_bytes()[..sl]);
            blocks += 1;
        }
        out.write_all(&sums)?;
        if n < buf.len() {
            return Ok(blocks);
        }
    }
}

/// A parsed signature, indexed for matching.
#[derive(Debug)]
pub struct Signature {
    params: SigParams,
    /// Each block's weak sum.
    weak: Vec<u32>,
    /// Each block's strong sum, `strong_len` bytes apiece.
    strong: Vec<u8>,
    /// Weak sum → the first block with it; `next` chains the rest (at most [`MAX_CHAIN`]).
    first: HashMap<u32, u32>,
    next: Vec<u32>,
    /// A bit per weak-sum bucket: a cheap "certainly not here" before the map.
    filter: Vec<u64>,
    filter_mask: u32,
    /// Where its blocks are in the basis when it describes parts of it (a refined delta's
    /// fine signature): each part's offset and first block, in block order. Empty: block
    /// `i` is at `i · block_len`.
    regions: Vec<(u64, u32)>,
}

const NO_BLOCK: u32 = u32::MAX;

impl Signature {
    /// Parses a peer's signature bytes (at most `max_blocks` blocks). Blocks shorter than
    /// [`MIN_PEER_BLOCK_LEN`] and strong sums shorter than [`MIN_PEER_STRONG_LEN`] are
    /// refused; see the module documentation for what else bounds the work it can cause.
    pub fn parse(bytes: &[u8], max_blocks: usize) -> Result<Self, RdiffError> {
        Self::parse_parts(bytes, max_blocks, &[])
    }

    /// [`Signature::parse`] of a signature of the basis's `parts` (offset, length) one after
    /// another, each in whole blocks but for its last: it must have exactly their blocks.
    pub(crate) fn parse_parts(bytes: &[u8], max_blocks: usize, parts: &[(u64, u64)]) -> Result<Self, RdiffError> {
        let mut sig = Self::parse_blocks(bytes, max_blocks)?;
        let bl = u64::from(sig.params.block_len);
        let mut first = 0u64;
        for &(offset, len) in parts {
            let block = u32::try_from(first).map_err(|_| RdiffError::BadSignatureLength)?;
            sig.regions.push((offset, block));
            first += len.div_ceil(bl);
        }
        if !parts.is_empty() && first != sig.weak.len() as u64 {
            return Err(RdiffError::BadSignatureLength);
        }
        Ok(sig)
    }

    /// Where block `block` starts in the basis.
    fn block_offset(&self, block: u32) -> u64 {
        let bl = u64::from(self.params.block_len);
        match self.regions.partition_point(|&(_, first)| first <= block).checked_sub(1) {
            None => u64::from(block) * bl,
            Some(r) => {
                let (offset, first) = self.regions[r];
                offset + u64::from(block - first) * bl
            }
        }
    }

    fn parse_blocks(bytes: &[u8], max_blocks: usize) -> Result<Self, RdiffError> {
        let word =
            |i: usize| -> Option<u32> { bytes.get(i..i + 4).map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]])) };
        let magic = word(0).ok_or(RdiffError::Truncated)?;
        if magic != SIG_MAGIC {
            return Err(RdiffError::BadMagic(magic));
        }
        let params = SigParams {
            block_len: word(4).ok_or(RdiffError::Truncated)?,
            strong_len: word(8).ok_or(RdiffError::Truncated)?,
        }
        .check_within(MIN_PEER_BLOCK_LEN, MIN_PEER_STRONG_LEN)?;
        let sl = params.strong_len as usize;
        let body = &bytes[12..];
        let entry = 4 + sl;
        if body.len() % entry != 0 || body.len() / entry > max_blocks.min(NO_BLOCK as usize) {
            return Err(RdiffError::BadSignatureLength);
        }
        let count = body.len() / entry;
        let mut sig = Signature {
            params,
            weak: Vec::with_capacity(count),
            strong: Vec::with_capacity(count * sl),
            first: HashMap::with_capacity(count),
            next: vec![NO_BLOCK; count],
            filter: Vec::new(),
            filter_mask: 0,
            regions: Vec::new(),
        };
        let filter_bits = (count.max(1) * 8).next_power_of_two().max(1 << 12);
        sig.filter = vec![0; filter_bits / 64];
        sig.filter_mask = u32::try_from(filter_bits - 1).unwrap_or(u32::MAX);
        for e in body.chunks_exact(entry) {
            sig.weak.push(u32::from_be_bytes([e[0], e[1], e[2], e[3]]));
            sig.strong.extend_from_slice(&e[4..]);
        }
        // Chains list blocks in file order (the first match wins, which keeps consecutive
        // copies mergeable); a block identical to one already in its chain, or beyond a full
        // chain, is not indexed. Each insertion compares at most MAX_CHAIN strong sums.
        let mut last: HashMap<u32, (u32, usize)> = HashMap::new();
        for i in 0..count {
            let w = sig.weak[i];
            let idx = u32::try_from(i).unwrap_or(NO_BLOCK);
            match last.get_mut(&w) {
                None => {
                    sig.first.insert(w, idx);
                    last.insert(w, (idx, 1));
                    let bit = w & sig.filter_mask;
                    sig.filter[(bit / 64) as usize] |= 1 << (bit % 64);
                }
                Some((tail, len)) => {
                    if *len >= MAX_CHAIN || sig.chain_has(w, sig.strong_of(idx)) {
                        continue;
                    }
                    sig.next[*tail as usize] = idx;
                    *tail = idx;
                    *len += 1;
                }
            }
        }
        Ok(sig)
    }

    /// The signature's parameters.
    pub fn params(&self) -> SigParams {
        self.params
    }

    /// How many blocks it describes.
    pub fn blocks(&self) -> usize {
        self.weak.len()
    }

    fn strong_of(&self, block: u32) -> &[u8] {
        let sl = self.params.strong_len as usize;
        let at = block as usize * sl;
        self.strong.get(at..at + sl).unwrap_or_default()
    }

    /// Whether the chain of `weak` already holds a block with this strong sum.
    fn chain_has(&self, weak: u32, strong: &[u8]) -> bool {
        let mut i = self.first.get(&weak).copied().unwrap_or(NO_BLOCK);
        while i != NO_BLOCK {
            if self.strong_of(i) == strong {
                return true;
            }
            i = self.next[i as usize];
        }
        false
    }

    /// Whether some indexed block has the weak sum `weak`.
    fn may_have(&self, weak: u32) -> bool {
        let bit = weak & self.filter_mask;
        self.filter[(bit / 64) as usize] & (1 << (bit % 64)) != 0 && self.first.contains_key(&weak)
    }

    /// The block whose sums match `window`, if any (`weak` is its RabinKarp sum). Adds the
    /// work it did to `work`: the bytes hashed for the strong sum and the blocks compared.
    fn find(&self, weak: u32, window: &[u8], work: &mut u64) -> Option<u32> {
        if !self.may_have(weak) {
            return None;
        }
        *work += window.len() as u64;
        self.find_strong(weak, strong_sum(window).as_bytes(), work)
    }

    /// The first block in the chain of `weak` whose strong sum starts `strong` (a full
    /// BLAKE2b-256); adds the blocks compared to `work`.
    fn find_strong(&self, weak: u32, strong: &[u8], work: &mut u64) -> Option<u32> {
        let mut i = *self.first.get(&weak)?;
        let strong = &strong[..self.params.strong_len as usize];
        while i != NO_BLOCK {
            *work += 1;
            if self.strong_of(i) == strong {
                return Some(i);
            }
            i = self.next[i as usize];
        }
        None
    }
}

fn read_netint<R: Read>(r: &mut R, n: usize) -> Result<u64, RdiffError> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b[8 - n..]).map_err(truncated)?;
    Ok(u64::from_be_bytes(b))
}

fn truncated(e: io::Error) -> RdiffError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        RdiffError::Truncated
    } else {
        RdiffError::Io(e)
    }
}

/// Applies `delta` to `basis`, writing the result to `out` (at most `max_len` bytes); the
/// result's length. The caller verifies the result's hash.
pub fn patch<B: Read + Seek, R: Read, W: Write>(
    basis: &mut B,
    delta: R,
    out: &mut W,
    max_len: u64,
) -> Result<u64, RdiffError> {
    let written = patch_to(basis, delta, &mut Plain(&mut *out), max_len)?;
    out.flush()?;
    Ok(written)
}

/// Where [`patch_to`] puts the result: each literal, and each piece copied from the basis
/// with the basis offset it was read at, in the result's order.
pub trait PatchOut {
    /// Bytes the delta carries.
    fn literal(&mut self, data: &[u8]) -> io::Result<()>;
    /// Bytes read from the basis at `offset`. A target that already holds the basis's
    /// blocks at the same place (a clone of it) need only hash them.
    fn copied(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
}

/// A plain [`Write`] as a [`PatchOut`]: everything written.
struct Plain<'a, W: Write>(&'a mut W);

impl<W: Write> PatchOut for Plain<'_, W> {
    fn literal(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.write_all(data)
    }

    fn copied(&mut self, _offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write_all(data)
    }
}

/// [`patch`] into any [`PatchOut`].
pub fn patch_to<B: Read + Seek, R: Read, T: PatchOut + ?Sized>(
    basis: &mut B,
    mut delta: R,
    out: &mut T,
    max_len: u64,
) -> Result<u64, RdiffError> {
    let magic = u32::try_from(read_netint(&mut delta, 4)?).unwrap_or(0);
    if magic != DELTA_MAGIC {
        return Err(RdiffError::BadMagic(magic));
    }
    let basis_len = basis.seek(SeekFrom::End(0))?;
    let mut written = 0u64;
    // Copies go through one large buffer (not io::copy's 8 KiB): a 128 MiB basis is a few
    // hundred reads and writes, not tens of thousands.
    let mut buf = Vec::new();
    let widths = [1usize, 2, 4, 8];
    loop {
        let op = u8::try_from(read_netint(&mut delta, 1)?).unwrap_or(0xff);
        let (from_basis, offset, len) = match op {
            OP_END => break,
            1..=0x40 => (false, 0, u64::from(op)),
            0x41..=0x44 => (false, 0, read_netint(&mut delta, widths[usize::from(op - OP_LITERAL_N1)])?),
            OP_COPY_N1_N1..=OP_COPY_N8_N8 => {
                let code = usize::from(op - OP_COPY_N1_N1);
                let offset = read_netint(&mut delta, widths[code / 4])?;
                let len = read_netint(&mut delta, widths[code % 4])?;
                (true, offset, len)
            }
            _ => return Err(RdiffError::BadCommand(op)),
        };
        if written.checked_add(len).is_none_or(|total| total > max_len) {
            return Err(RdiffError::TooLong(max_len));
        }
        let copied = if from_basis {
            if offset.checked_add(len).is_none_or(|end| end > basis_len) {
                return Err(RdiffError::CopyOutside { offset, len });
            }
            basis.seek(SeekFrom::Start(offset))?;
            pass_n(basis, len, &mut buf, |at, piece| out.copied(offset + at, piece))?
        } else {
            pass_n(&mut delta, len, &mut buf, |_, piece| out.literal(piece))?
        };
        if copied != len {
            return Err(RdiffError::Truncated);
        }
        written += len;
    }
    // Nothing may follow the end command.
    if delta.read(&mut [0u8; 1])? != 0 {
        return Err(RdiffError::Truncated);
    }
    Ok(written)
}

/// Reads up to `len` bytes from `r` in pieces of `buf`'s size, handing each to `to` with
/// its position in the run (fewer bytes only if `r` ends); how many.
fn pass_n<R: Read + ?Sized>(
    r: &mut R,
    len: u64,
    buf: &mut Vec<u8>,
    mut to: impl FnMut(u64, &[u8]) -> io::Result<()>,
) -> io::Result<u64> {
    if buf.is_empty() {
        buf.resize(READ_CHUNK, 0);
    }
    let mut done = 0u64;
    while done < len {
        let want = usize::try_from(len - done).unwrap_or(buf.len()).min(buf.len());
        let n = read_full(r, &mut buf[..want])?;
        to(done, &buf[..n])?;
        done += n as u64;
        if n < want {
            break;
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests;
