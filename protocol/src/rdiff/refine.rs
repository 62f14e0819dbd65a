//! Refined deltas: this project's extension `.rs.clearskies.rsync-refine` (negotiated; see
//! docs/protocol-decisions.md), for large files with small changes.
//!
//! A one-level signature of a 128 MiB file costs about √size·(4 + strong) bytes however
//! little changed, and the delta then sends at least a block of literal data around each
//! change: some 140 KB for a 4 KiB edit with librsync's parameters, never under ~77 KB
//! with any. Refined, the receiver pays for a fine signature only where something changed:
//!
//! 1. The receiver sends a **coarse** signature ([`coarse_params`]: about 1024 blocks of at
//!    least 64 KiB; ~11 KiB for 128 MiB).
//! 2. The sender answers with a [`Plan`] of the new file instead of a delta: copies from the
//!    basis where coarse blocks matched, and gaps (lengths only) where nothing did.
//! 3. The receiver sends the plan back with a fine signature of the parts of its basis
//!    around each gap ([`fine_request`]): between the copies on either side, plus a coarse
//!    block of slack.
//! 4. The sender answers with an ordinary librsync delta of the whole file
//!    ([`refined_delta`]): the plan's copies, and each gap matched against the fine
//!    signature. The receiver applies it with [`super::patch`] and verifies the SHA-256 as
//!    always.
//!
//! The sender keeps nothing between the steps (the plan comes back with the fine signature;
//! a receiver that lies about it only spoils its own result, which its SHA-256 check then
//! refuses). Everything a peer sends is bounded: a plan has at most [`MAX_PIECES`] pieces
//! whose lengths must add up to the file's, a fine signature at most [`MAX_PIECES`] parts
//! and the blocks they need, and matching shares one work budget across the gaps.

use std::io::{Read, Seek, SeekFrom, Write};

use super::delta::{match_into, Budget, DeltaWriter};
use super::{on_threads, signature_blocks, DeltaStats, RdiffError, SigParams, Signature, MAX_BLOCK_LEN, SIG_MAGIC};

/// A plan's magic number ("CSP1").
pub const PLAN_MAGIC: u32 = 0x4353_5031;
/// Most pieces a plan, and parts a fine signature, may have.
pub const MAX_PIECES: usize = 4096;
/// Smallest file a refined delta is asked for (below it a plain signature is small anyway).
pub const REFINE_MIN_SIZE: u64 = 8 << 20;
/// About this many blocks in a coarse signature.
const COARSE_BLOCKS: u64 = 1024;
/// Smallest coarse block.
const MIN_COARSE_BLOCK: u64 = 64 << 10;
/// Most bytes of the basis a fine signature describes (past that, gaps go literally).
const MAX_FINE_SPAN: u64 = 256 << 20;

const TAG_COPY: u8 = 0;
const TAG_GAP: u8 = 1;

/// A stretch of the new file in a [`Plan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// `len` bytes that are the basis's from `offset`.
    Copy {
        /// Where they are in the basis.
        offset: u64,
        /// How many.
        len: u64,
    },
    /// `len` bytes the coarse signature did not find.
    Gap {
        /// How many.
        len: u64,
    },
}

impl Piece {
    pub(super) fn len(self) -> u64 {
        match self {
            Piece::Copy { len, .. } | Piece::Gap { len } => len,
        }
    }
}

/// The new file as copies from the basis and gaps, in order (step 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pieces: Vec<Piece>,
}

impl Plan {
    /// Its pieces, in the new file's order.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// Bytes in its gaps.
    pub fn gap_bytes(&self) -> u64 {
        self.pieces.iter().filter(|p| matches!(p, Piece::Gap { .. })).map(|p| p.len()).sum()
    }

    /// Its wire form: [`PLAN_MAGIC`], then per piece a tag byte (0 copy, 1 gap), its length
    /// and, for a copy, its basis offset (big-endian u64s).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.pieces.len() * 17);
        out.extend_from_slice(&PLAN_MAGIC.to_be_bytes());
        for p in &self.pieces {
            match *p {
                Piece::Copy { offset, len } => {
                    out.push(TAG_COPY);
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(&offset.to_be_bytes());
                }
                Piece::Gap { len } => {
                    out.push(TAG_GAP);
                    out.extend_from_slice(&len.to_be_bytes());
                }
            }
        }
        out
    }

    /// Parses a peer's plan of a `new_len`-byte file against a `basis_len`-byte basis
    /// (`u64::MAX` when it is not ours): at most [`MAX_PIECES`] pieces, none empty, copies
    /// inside the basis, lengths adding up to `new_len`.
    pub fn parse(bytes: &[u8], new_len: u64, basis_len: u64) -> Result<Plan, RdiffError> {
        let mut r = bytes;
        if take_u32(&mut r)? != PLAN_MAGIC {
            return Err(RdiffError::BadPlan("not a plan"));
        }
        let mut pieces = Vec::new();
        let mut total = 0u64;
        while let Some((&tag, rest)) = r.split_first() {
            r = rest;
            if pieces.len() == MAX_PIECES {
                return Err(RdiffError::BadPlan("too many pieces"));
            }
            let len = take_u64(&mut r)?;
            let piece = match tag {
                TAG_COPY => {
                    let offset = take_u64(&mut r)?;
                    if offset.checked_add(len).is_none_or(|end| end > basis_len) {
                        return Err(RdiffError::BadPlan("a copy outside the basis"));
                    }
                    Piece::Copy { offset, len }
                }
                TAG_GAP => Piece::Gap { len },
                _ => return Err(RdiffError::BadPlan("unknown piece")),
            };
            total = total
                .checked_add(len)
                .filter(|&t| len > 0 && t <= new_len)
                .ok_or(RdiffError::BadPlan("bad lengths"))?;
            pieces.push(piece);
        }
        if total != new_len {
            return Err(RdiffError::BadPlan("lengths do not add up to the file's"));
        }
        Ok(Plan { pieces })
    }
}

fn take_u32(r: &mut &[u8]) -> Result<u32, RdiffError> {
    let (head, rest) = r.split_first_chunk::<4>().ok_or(RdiffError::Truncated)?;
    *r = rest;
    Ok(u32::from_be_bytes(*head))
}

fn take_u64(r: &mut &[u8]) -> Result<u64, RdiffError> {
    let (head, rest) = r.split_first_chunk::<8>().ok_or(RdiffError::Truncated)?;
    *r = rest;
    Ok(u64::from_be_bytes(*head))
}

/// The coarse signature's parameters for a basis of `size` bytes (step 1): about
/// 1 024 blocks (a power of two, 64 KiB to 1 MiB), and the strong-sum length
/// [`SigParams::for_size`] would pick.
pub fn coarse_params(size: u64) -> SigParams {
    let block = (size / COARSE_BLOCKS).next_power_of_two().clamp(MIN_COARSE_BLOCK, u64::from(MAX_BLOCK_LEN));
    SigParams {
        block_len: u32::try_from(block).unwrap_or(MAX_BLOCK_LEN),
        strong_len: SigParams::for_size(size).strong_len,
    }
}

/// The plan of `new` against the coarse signature `sig` (step 2). More than [`MAX_PIECES`]
/// pieces end in one gap holding the rest.
pub fn plan<R: Read>(sig: &Signature, new: R) -> Result<Plan, RdiffError> {
    let (pieces, overflow) = plan_pieces(sig, new)?;
    Ok(capped(pieces, overflow))
}

/// [`plan`] of a new file given as `parts`, consecutive pieces of it (each but the last a
/// whole number of the signature's blocks long), each planned on a thread of its own: the
/// coarse step's two passes over large files then use every core. A block that would match
/// across two parts is not found there (a gap at worst one block long; none where the file
/// changed in place, as blocks then start at the parts' ends).
pub fn plan_parts<R: Read + Send>(sig: &Signature, parts: Vec<R>) -> Result<Plan, RdiffError> {
    let planned = on_threads(parts, |part| plan_pieces(sig, part));
    let mut pieces: Vec<Piece> = Vec::new();
    for part in planned {
        let (more, overflow) = part?;
        for piece in more.into_iter().chain((overflow > 0).then_some(Piece::Gap { len: overflow })) {
            match (pieces.last_mut(), piece) {
                (Some(Piece::Gap { len }), Piece::Gap { len: more }) => *len += more,
                (Some(Piece::Copy { offset, len }), Piece::Copy { offset: next, len: more })
                    if offset.checked_add(*len) == Some(next) =>
                {
                    *len += more;
                }
                (_, piece) => pieces.push(piece),
            }
        }
    }
    Ok(capped(pieces, 0))
}

/// The pieces of `new` against `sig`, and the bytes after them that did not fit.
fn plan_pieces<R: Read>(sig: &Signature, new: R) -> Result<(Vec<Piece>, u64), RdiffError> {
    let mut w = DeltaWriter::recording(std::io::sink());
    match_into(sig, new, &mut w, &mut Budget::default())?;
    let (pieces, overflow, _) = w.finish_plan()?;
    Ok((pieces, overflow))
}

/// `pieces` and `overflow` bytes after them as a plan: more than [`MAX_PIECES`] pieces end
/// in one gap holding the rest.
fn capped(mut pieces: Vec<Piece>, overflow: u64) -> Plan {
    if pieces.len() > MAX_PIECES || overflow > 0 {
        let rest: u64 = pieces[MAX_PIECES - 1..].iter().map(|p| p.len()).sum::<u64>() + overflow;
        pieces.truncate(MAX_PIECES - 1);
        match pieces.last_mut() {
            Some(Piece::Gap { len }) => *len += rest,
            _ => pieces.push(Piece::Gap { len: rest }),
        }
    }
    Plan { pieces }
}

/// The parts of a `basis_len`-byte basis (offset, length; sorted, disjoint) that a fine
/// signature describes for `plan`: around each gap, from the end of the copy before it (or
/// the gap's length before the copy after it), the gap's length plus `slack`.
fn fine_parts(plan: &Plan, basis_len: u64, slack: u64) -> Vec<(u64, u64)> {
    let copy_end = |p: Option<&Piece>| match p {
        Some(&Piece::Copy { offset, len }) => Some(offset.saturating_add(len)),
        _ => None,
    };
    let copy_start = |p: Option<&Piece>| match p {
        Some(&Piece::Copy { offset, .. }) => Some(offset),
        _ => None,
    };
    let mut spans: Vec<(u64, u64)> = Vec::new();
    for (i, p) in plan.pieces.iter().enumerate() {
        let Piece::Gap { len } = *p else { continue };
        let before = i.checked_sub(1).and_then(|j| copy_end(plan.pieces.get(j)));
        let after = copy_start(plan.pieces.get(i + 1)).map(|s| s.saturating_sub(len));
        let start = before.or(after).unwrap_or(0).min(basis_len);
        let end = start.saturating_add(len).saturating_add(slack).min(basis_len);
        if end > start {
            spans.push((start, end));
        }
    }
    spans.sort_unstable();
    let mut parts: Vec<(u64, u64)> = Vec::new();
    let mut total = 0u64;
    for (start, end) in spans {
        let room = parts.len() < MAX_PIECES;
        match parts.last_mut() {
            Some((s, len)) if start <= *s + *len => {
                let grown = end.saturating_sub(*s + *len).min(MAX_FINE_SPAN - total);
                *len += grown;
                total += grown;
            }
            _ if total < MAX_FINE_SPAN && room => {
                let len = (end - start).min(MAX_FINE_SPAN - total);
                parts.push((start, len));
                total += len;
            }
            _ => {}
        }
    }
    parts
}

/// The receiver's answer to `plan` (step 3): the plan, then the fine signature of the parts
/// of `basis` (`basis_len` bytes) around its gaps, `slack` being the coarse block length.
/// Wire form: the plan's length (u32) and the plan, the number of parts (u32) and each
/// part's offset and length (u64s), then a librsync signature of the parts one after another
/// (each part in whole blocks but for its last).
pub fn fine_request<B: Read + Seek>(
    basis: &mut B,
    basis_len: u64,
    plan: &Plan,
    slack: u64,
) -> Result<Vec<u8>, RdiffError> {
    let parts = fine_parts(plan, basis_len, slack);
    let span: u64 = parts.iter().map(|p| p.1).sum();
    let params = SigParams::for_size(span);
    let encoded = plan.encode();
    let mut out = Vec::new();
    out.extend_from_slice(
        &u32::try_from(encoded.len()).map_err(|_| RdiffError::BadPlan("plan too long"))?.to_be_bytes(),
    );
    out.extend_from_slice(&encoded);
    out.extend_from_slice(&u32::try_from(parts.len()).unwrap_or(u32::MAX).to_be_bytes());
    for &(offset, len) in &parts {
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(&SIG_MAGIC.to_be_bytes());
    out.extend_from_slice(&params.block_len.to_be_bytes());
    out.extend_from_slice(&params.strong_len.to_be_bytes());
    for &(offset, len) in &parts {
        basis.seek(SeekFrom::Start(offset))?;
        signature_blocks(basis.by_ref().take(len), params, &mut out)?;
    }
    Ok(out)
}

/// Parses a peer's [`fine_request`] for our `new_len`-byte file (a signature of at most
/// `max_blocks` blocks).
pub fn parse_fine(bytes: &[u8], new_len: u64, max_blocks: usize) -> Result<(Plan, Signature), RdiffError> {
    let mut r = bytes;
    let plan_len = usize::try_from(take_u32(&mut r)?).unwrap_or(usize::MAX);
    let encoded = r.get(..plan_len).ok_or(RdiffError::Truncated)?;
    let plan = Plan::parse(encoded, new_len, u64::MAX)?;
    r = &r[plan_len..];
    let count = usize::try_from(take_u32(&mut r)?).unwrap_or(usize::MAX);
    if count > MAX_PIECES {
        return Err(RdiffError::BadPlan("too many parts"));
    }
    let mut parts = Vec::with_capacity(count);
    for _ in 0..count {
        let (offset, len) = (take_u64(&mut r)?, take_u64(&mut r)?);
        if len == 0 || offset.checked_add(len).is_none() {
            return Err(RdiffError::BadPlan("bad part"));
        }
        parts.push((offset, len));
    }
    let sig = Signature::parse_parts(r, max_blocks, &parts)?;
    if parts.is_empty() && sig.blocks() > 0 {
        // Blocks of no part (parse_parts checks the count only when there are parts).
        return Err(RdiffError::BadSignatureLength);
    }
    Ok((plan, sig))
}

/// The delta for a [`fine_request`] (step 4): an ordinary librsync delta of `new`, the
/// plan's copies as they are and each gap matched against the fine signature `sig`.
pub fn refined_delta<R: Read + Seek, W: Write>(
    plan: &Plan,
    sig: &Signature,
    mut new: R,
    out: W,
) -> Result<DeltaStats, RdiffError> {
    let mut w = DeltaWriter::new(out)?;
    let mut budget = Budget::default();
    let mut at = 0u64;
    for &piece in &plan.pieces {
        match piece {
            Piece::Copy { offset, len } => w.copy(offset, len)?,
            Piece::Gap { len } => {
                new.seek(SeekFrom::Start(at))?;
                match_into(sig, new.by_ref().take(len), &mut w, &mut budget)?;
            }
        }
        at += piece.len();
    }
    w.stats.work = budget.work;
    w.finish()
}

#[cfg(test)]
mod tests;
