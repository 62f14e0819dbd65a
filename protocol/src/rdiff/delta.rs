//! Computing deltas: matching a new file's windows against a signature, within a work
//! budget (see the module documentation of [`super`]).

use std::io::{self, Read, Write};

use super::refine::{Piece, MAX_PIECES};
use super::rolling::{strong_sums, RabinKarp};
use super::{
    read_full, RdiffError, Signature, DELTA_MAGIC, OP_COPY_N1_N1, OP_END, OP_LITERAL_N1, READ_CHUNK, WORK_FREE,
    WORK_PER_BYTE,
};

/// Literal runs are written in pieces of at most this many bytes.
const MAX_LITERAL: usize = 1 << 20;
/// A run of copies is written (and the output flushed) once it is this long, so that the
/// peer applies it while the rest of the delta is computed.
const COPY_FLUSH: u64 = 8 << 20;

/// What a delta consists of.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeltaStats {
    /// Bytes sent literally.
    pub literal_bytes: u64,
    /// Bytes copied from the basis.
    pub copied_bytes: u64,
    /// Length of the delta itself.
    pub delta_bytes: u64,
    /// Work units spent matching (see the module documentation).
    pub work: u64,
    /// Whether the work budget ran out (everything after that point went literally).
    pub budget_exhausted: bool,
}

/// Big-endian `v` in the fewest of 1, 2, 4 or 8 bytes; (bytes, how many).
fn netint(v: u64) -> ([u8; 8], usize) {
    let n = if v <= 0xff {
        1
    } else if v <= 0xffff {
        2
    } else if v <= 0xffff_ffff {
        4
    } else {
        8
    };
    (v.to_be_bytes(), n)
}

fn width_code(n: usize) -> u8 {
    match n {
        1 => 0,
        2 => 1,
        4 => 2,
        _ => 3,
    }
}

/// Writes delta commands, or (for a refined delta's plan) records them as [`Piece`]s.
pub(super) struct DeltaWriter<W> {
    out: W,
    pub(super) stats: DeltaStats,
    /// A copy not yet written, so that adjacent ones merge: (basis offset, length).
    copy: Option<(u64, u64)>,
    /// Recording a plan instead of writing: copies as they are, literal data as gaps.
    plan: Option<Vec<Piece>>,
    /// Bytes recorded past the plan's first [`MAX_PIECES`] + 1 pieces.
    overflow: u64,
}

impl<W: Write> DeltaWriter<W> {
    /// A delta into `out`, its magic number written.
    pub(super) fn new(out: W) -> io::Result<Self> {
        let mut w = DeltaWriter { out, stats: DeltaStats::default(), copy: None, plan: None, overflow: 0 };
        w.put(&DELTA_MAGIC.to_be_bytes())?;
        Ok(w)
    }

    /// A writer that records the pieces of a plan and writes nothing.
    pub(super) fn recording(out: W) -> Self {
        DeltaWriter { out, stats: DeltaStats::default(), copy: None, plan: Some(Vec::new()), overflow: 0 }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stats.delta_bytes += bytes.len() as u64;
        self.out.write_all(bytes)
    }

    fn flush_copy(&mut self) -> io::Result<()> {
        let Some((offset, len)) = self.copy.take() else { return Ok(()) };
        self.stats.copied_bytes += len;
        if self.plan.is_some() {
            self.record(Piece::Copy { offset, len });
            return Ok(());
        }
        let (o, on) = netint(offset);
        let (l, ln) = netint(len);
        let mut cmd = Vec::with_capacity(17);
        cmd.push(OP_COPY_N1_N1 + 4 * width_code(on) + width_code(ln));
        cmd.extend_from_slice(&o[8 - on..]);
        cmd.extend_from_slice(&l[8 - ln..]);
        self.put(&cmd)
    }

    pub(super) fn copy(&mut self, offset: u64, len: u64) -> io::Result<()> {
        match &mut self.copy {
            // (A peer's fine signature may place a block's end past u64::MAX: never merged.)
            Some((o, l)) if o.checked_add(*l) == Some(offset) => *l += len,
            _ => {
                self.flush_copy()?;
                self.copy = Some((offset, len));
            }
        }
        if self.plan.is_none() && self.copy.is_some_and(|(_, l)| l >= COPY_FLUSH) {
            // Sent now, so that the peer copies while we go on matching.
            self.flush_copy()?;
            self.out.flush()?;
        }
        Ok(())
    }

    /// Ends the delta; its statistics.
    pub(super) fn finish(mut self) -> Result<DeltaStats, RdiffError> {
        self.flush_copy()?;
        self.put(&[OP_END])?;
        self.out.flush()?;
        Ok(self.stats)
    }

    /// Records `piece` (a gap after a gap grows it). Memory stays bounded whatever the
    /// signature: past [`MAX_PIECES`] pieces only the length of the rest is kept (a plan
    /// ends in one gap there anyway; see [`super::refine::plan`]).
    fn record(&mut self, piece: Piece) {
        let Some(plan) = &mut self.plan else { return };
        if self.overflow > 0 || plan.len() > MAX_PIECES {
            self.overflow += piece.len();
            return;
        }
        match (plan.last_mut(), piece) {
            (Some(Piece::Gap { len: gap }), Piece::Gap { len }) => *gap += len,
            _ => plan.push(piece),
        }
    }

    /// Ends a recording; the plan (at most [`MAX_PIECES`] + 1 pieces, and the length of
    /// what follows them).
    pub(super) fn finish_plan(mut self) -> Result<(Vec<Piece>, u64, DeltaStats), RdiffError> {
        self.flush_copy()?;
        Ok((self.plan.take().unwrap_or_default(), self.overflow, self.stats))
    }

    fn literal(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.flush_copy()?;
        if self.plan.is_some() {
            let len = data.len() as u64;
            self.stats.literal_bytes += len;
            self.record(Piece::Gap { len });
            return Ok(());
        }
        for piece in data.chunks(MAX_LITERAL) {
            let len = piece.len() as u64;
            if let Some(op) = u8::try_from(piece.len()).ok().filter(|&n| n <= 64) {
                self.put(&[op])?;
            } else {
                let (l, ln) = netint(len);
                let mut cmd = vec![OP_LITERAL_N1 + width_code(ln)];
                cmd.extend_from_slice(&l[8 - ln..]);
                self.put(&cmd)?;
            }
            self.put(piece)?;
            self.stats.literal_bytes += len;
        }
        Ok(())
    }
}

/// The work [`delta`] has done and may do.
#[derive(Debug, Default)]
pub(super) struct Budget {
    pub(super) work: u64,
    /// Bytes of the new file read so far.
    read: u64,
}

impl Budget {
    fn exhausted(&self) -> bool {
        self.work > WORK_FREE.saturating_add(self.read.saturating_mul(WORK_PER_BYTE))
    }
}

/// Streams the rest of `new` as literal data.
fn literal_rest<R: Read, W: Write>(w: &mut DeltaWriter<W>, new: &mut R) -> Result<(), RdiffError> {
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        let n = read_full(new, &mut chunk)?;
        w.literal(&chunk[..n])?;
        if n < READ_CHUNK {
            return Ok(());
        }
    }
}

/// Writes the delta that turns the basis `sig` describes into `new`, streaming. The work it
/// does is bounded whatever the signature (see the module documentation).
pub fn delta<R: Read, W: Write>(sig: &Signature, new: R, out: W) -> Result<DeltaStats, RdiffError> {
    let mut w = DeltaWriter::new(out)?;
    let mut budget = Budget::default();
    match_into(sig, new, &mut w, &mut budget)?;
    w.stats.work = budget.work;
    w.finish()
}

/// Writes commands for all of `new` into `w`: copies of the blocks of `sig` found in it,
/// the rest literally. Past the work budget (shared by all calls with `budget`) the rest is
/// literal, and `w.stats.budget_exhausted` is set.
pub(super) fn match_into<R: Read, W: Write>(
    sig: &Signature,
    mut new: R,
    w: &mut DeltaWriter<W>,
    budget: &mut Budget,
) -> Result<(), RdiffError> {
    if sig.weak.is_empty() {
        // An empty basis: everything is literal.
        return literal_rest(w, &mut new);
    }
    let bl = sig.params.block_len as usize;
    // buf[lit..pos] is literal data not yet written; buf[pos..pos + bl] the window.
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK + bl);
    let (mut lit, mut pos) = (0usize, 0usize);
    let mut sum: Option<RabinKarp> = None;
    let mut eof = false;
    loop {
        if !eof && buf.len() < pos + bl + 1 {
            // Keep only what is still needed, then read more.
            w.literal(&buf[lit..pos])?;
            buf.drain(..pos);
            (lit, pos) = (0, 0);
            eof = fill(&mut buf, &mut new, bl + 1, budget)?;
        }
        if buf.len() < pos + bl {
            break;
        }
        if budget.exhausted() {
            return out_of_budget(w, &buf[lit..], &mut new);
        }
        if sum.is_none() {
            // At the start, or right after a match: the blocks that follow on unchanged
            // are matched a batch at a time.
            let (matched, stop) = aligned_run(sig, &buf[pos..], budget);
            if !matched.is_empty() {
                w.literal(&buf[lit..pos])?;
                for block in matched {
                    w.copy(sig.block_offset(block), bl as u64)?;
                    pos += bl;
                }
                lit = pos;
            }
            sum = stop;
            continue;
        }
        budget.work += 1;
        let s = *sum.get_or_insert_with(|| RabinKarp::of(&buf[pos..pos + bl]));
        if let Some(block) = sig.find(s.hash, &buf[pos..pos + bl], &mut budget.work) {
            w.literal(&buf[lit..pos])?;
            w.copy(sig.block_offset(block), bl as u64)?;
            pos += bl;
            lit = pos;
            sum = None;
            continue;
        }
        if pos + bl < buf.len() {
            let mut s = s;
            s.rotate(buf[pos], buf[pos + bl]);
            sum = Some(s);
            pos += 1;
        } else {
            // The window ends at the end of the input (eof is set here): what follows it is
            // shorter than a block.
            pos += 1;
            break;
        }
    }
    // Fewer than block_len bytes remain: the basis's short last block may match a suffix.
    let end = buf.len();
    match tail_match(sig, &buf, pos, budget) {
        Err(OutOfBudget) => return out_of_budget(w, &buf[lit..end], &mut new),
        Ok(Some((p, block))) => {
            w.literal(&buf[lit..p])?;
            w.copy(sig.block_offset(block), (end - p) as u64)?;
            lit = end;
        }
        Ok(None) => {}
    }
    w.literal(&buf[lit..end])?;
    Ok(())
}

/// Most windows [`aligned_run`] hashes in one batch.
const MAX_BATCH: usize = 32;

/// The blocks that match `buf`'s first window and each window right after the last match
/// (a file's unchanged stretch), found a batch of windows at a time (weak sums first, then
/// the strong sums of those with a candidate, hashed together); and the sum of the first
/// window that did not match (`None`: `buf` ran out of whole windows, or the budget did).
/// The same blocks as trying the windows one by one would match; at most a batch of strong
/// sums is hashed in vain, and counted as work.
fn aligned_run(sig: &Signature, buf: &[u8], budget: &mut Budget) -> (Vec<u32>, Option<RabinKarp>) {
    let bl = sig.params.block_len as usize;
    let mut matched = Vec::new();
    let mut batch = 2;
    loop {
        let rest = &buf[matched.len() * bl..];
        let mut weak = Vec::with_capacity(batch);
        for window in rest.chunks_exact(bl).take(batch) {
            budget.work += 1;
            let s = RabinKarp::of(window);
            weak.push(s);
            if !sig.may_have(s.hash) {
                break;
            }
        }
        let Some(last) = weak.last() else { return (matched, None) };
        let candidates = if sig.may_have(last.hash) { weak.len() } else { weak.len() - 1 };
        let strong = strong_sums(rest.chunks_exact(bl).take(candidates));
        budget.work += (candidates * bl) as u64;
        for (s, st) in weak.iter().zip(&strong) {
            match sig.find_strong(s.hash, st.as_bytes(), &mut budget.work) {
                Some(block) => matched.push(block),
                None => return (matched, Some(*s)),
            }
        }
        if candidates < weak.len() {
            return (matched, Some(weak[candidates]));
        }
        if weak.len() < batch || budget.exhausted() {
            return (matched, None);
        }
        batch = (batch * 2).min(MAX_BATCH);
    }
}

/// Reads `new` onto the end of `buf` until it holds at least `want` bytes (a block as long
/// as a read needs two reads: a window and the byte after it); whether `new` ended.
fn fill<R: Read>(buf: &mut Vec<u8>, new: &mut R, want: usize, budget: &mut Budget) -> Result<bool, RdiffError> {
    let mut eof = false;
    while !eof && buf.len() < want {
        let have = buf.len();
        buf.resize(have + READ_CHUNK, 0);
        let n = read_full(new, &mut buf[have..])?;
        buf.truncate(have + n);
        budget.read += n as u64;
        eof = n < READ_CHUNK;
    }
    Ok(eof)
}

/// [`delta`]'s work budget ran out.
struct OutOfBudget;

/// The first suffix of `buf[pos..]` (shorter than a block) that is the basis's short last
/// block: where it starts and the block's index.
fn tail_match(
    sig: &Signature,
    buf: &[u8],
    pos: usize,
    budget: &mut Budget,
) -> Result<Option<(usize, u32)>, OutOfBudget> {
    let end = buf.len();
    if pos >= end {
        return Ok(None);
    }
    let mut s = RabinKarp::of(&buf[pos..end]);
    for p in pos..end {
        if budget.exhausted() {
            return Err(OutOfBudget);
        }
        budget.work += 1;
        if let Some(block) = sig.find(s.hash, &buf[p..end], &mut budget.work) {
            return Ok(Some((p, block)));
        }
        s.roll_out(buf[p]);
    }
    Ok(None)
}

/// Ends matching once the work budget ran out: `pending` and the rest of `new`, literally.
fn out_of_budget<R: Read, W: Write>(w: &mut DeltaWriter<W>, pending: &[u8], new: &mut R) -> Result<(), RdiffError> {
    w.literal(pending)?;
    literal_rest(w, new)?;
    w.stats.budget_exhausted = true;
    Ok(())
}
