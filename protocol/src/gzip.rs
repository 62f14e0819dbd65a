//! The `gzip` extension (`gzip.md`): after `core.start` negotiates it, every whole message,
//! attachment chunks included, travels as one independent zlib (RFC 1950) stream framed as
//! `<compressed length>:<compressed bytes>`.
//!
//! Sending needs the compressed length up front, so [`compress`] works on a whole encoded
//! message; the session bounds how large such a message may be. Receiving is streamed:
//! [`Inflater`] turns compressed input into plain frame bytes in bounded pieces, so neither
//! a long compressed message nor a decompression bomb is ever held in memory.

use bytes::{Buf, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Longest accepted run of digits in a compressed length (fits in a u64).
const MAX_DIGITS: usize = 19;

/// Least output room offered to the decompressor per step (see [`Inflater::inflate`]).
const MIN_ROOM: usize = 8 * 1024;

/// Malformed compressed input from a peer. Any of these closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GzipError {
    /// The `<length>:` prefix is malformed, zero or too long.
    #[error("malformed compressed message length")]
    BadLength,
    /// The zlib data is corrupt.
    #[error("corrupt zlib stream: {0}")]
    Corrupt(String),
    /// The zlib stream ended before its announced length.
    #[error("zlib stream ends before its announced length")]
    TrailingData,
    /// The announced length ended before the zlib stream did.
    #[error("zlib stream is longer than its announced length")]
    Truncated,
    /// A compressed unit did not hold exactly one whole message (`gzip.md`: each message,
    /// attachment included, is one zlib stream): two messages in one unit, a message split
    /// over two units, or a unit with no message at all.
    #[error("a compressed unit must hold exactly one whole message: {0}")]
    NotOneMessage(&'static str),
}

/// Compresses one whole encoded message into its `<length>:<zlib stream>` form. Level 0
/// writes stored blocks directly (incompressible data costs one copy and a checksum). A
/// session compresses with its own [`Deflater`], which keeps the deflater between messages.
pub fn compress(message: &[u8], level: u32) -> Vec<u8> {
    Deflater::default().compress(message, level)
}

/// Compresses message after message, each an independent zlib stream, with one deflater
/// reset between them: making a deflater allocates and clears some 300 KiB of tables,
/// which costs more than compressing a small message.
#[derive(Default)]
pub struct Deflater {
    z: Option<(u32, Box<Compress>)>,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater").field("level", &self.z.as_ref().map(|(level, _)| level)).finish()
    }
}

impl Deflater {
    /// One whole encoded message in its `<length>:<zlib stream>` form (see [`compress`]).
    pub fn compress(&mut self, message: &[u8], level: u32) -> Vec<u8> {
        if level == 0 {
            return stored(message);
        }
        let level = level.min(9);
        let z = match &mut self.z {
            Some((made_at, z)) if *made_at == level => {
                z.reset();
                z
            }
            slot => &mut slot.insert((level, Box::new(Compress::new(Compression::new(level), true)))).1,
        };
        let mut compressed = Vec::with_capacity(message.len() / 2 + 64);
        loop {
            let consumed = usize::try_from(z.total_in()).unwrap_or(message.len()).min(message.len());
            // Deflating into a Vec cannot fail: its only error is a stream used after its end.
            match z.compress_vec(&message[consumed..], &mut compressed, FlushCompress::Finish) {
                Ok(Status::StreamEnd) | Err(_) => break,
                Ok(_) => compressed.reserve(compressed.capacity().max(64)),
            }
        }
        let prefix = compressed.len().to_string();
        let mut out = Vec::with_capacity(prefix.len() + 1 + compressed.len());
        out.extend_from_slice(prefix.as_bytes());
        out.push(b':');
        out.extend_from_slice(&compressed);
        out
    }
}

/// A zlib stream of stored (uncompressed) deflate blocks, framed: what level 0 produces,
/// without a deflater's buffering.
fn stored(message: &[u8]) -> Vec<u8> {
    const MAX_BLOCK: usize = 65_535;
    let blocks = message.len().div_ceil(MAX_BLOCK).max(1);
    let zlen = 2 + blocks * 5 + message.len() + 4;
    let prefix = zlen.to_string();
    let mut out = Vec::with_capacity(prefix.len() + 1 + zlen);
    out.extend_from_slice(prefix.as_bytes());
    out.push(b':');
    // CMF: deflate with a 32 KiB window; FLG: fastest, no dictionary, (CMF·256 + FLG) % 31 = 0.
    out.extend_from_slice(&[0x78, 0x01]);
    let mut pieces = message.chunks(MAX_BLOCK).peekable();
    if message.is_empty() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(piece) = pieces.next() {
        out.push(u8::from(pieces.peek().is_none()));
        let n = u16::try_from(piece.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(!n).to_le_bytes());
        out.extend_from_slice(piece);
    }
    let mut adler = adler2::Adler32::new();
    adler.write_slice(message);
    out.extend_from_slice(&adler.checksum().to_be_bytes());
    out
}

enum State {
    Length,
    Stream { remaining: u64 },
}

/// Streaming receiver for gzip-framed messages.
pub struct Inflater {
    state: State,
    /// The decompressor, reset for each unit (making one allocates and clears its 32 KiB
    /// window and tables).
    z: Box<Decompress>,
    /// A unit (one zlib stream) ended since [`Inflater::take_unit_end`] was last called.
    unit_ended: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater").field("in_message", &matches!(self.state, State::Stream { .. })).finish()
    }
}

impl Default for Inflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflater {
    /// A receiver positioned before a `<length>:` prefix.
    pub fn new() -> Self {
        Inflater { state: State::Length, z: Box::new(Decompress::new(true)), unit_ended: false }
    }

    /// Whether a unit ended in the last [`Inflater::inflate`] call (and clears the flag). A
    /// call never goes past the end of a unit, so all the plain bytes of the unit that ended
    /// are in `out` and none of the next unit's: the caller can check that they made exactly
    /// one message before inflating on.
    pub fn take_unit_end(&mut self) -> bool {
        std::mem::take(&mut self.unit_ended)
    }

    /// Moves compressed bytes from `input` into plain bytes appended to `out`, producing at
    /// most `max_out` bytes and stopping at the end of a unit. Returns how many it produced;
    /// zero (without a unit end, see [`Inflater::take_unit_end`]) means more input is needed.
    pub fn inflate(&mut self, input: &mut BytesMut, out: &mut BytesMut, max_out: usize) -> Result<usize, GzipError> {
        let mut produced = 0;
        while produced < max_out {
            match &mut self.state {
                State::Length => {
                    let digits = input.iter().take_while(|b| b.is_ascii_digit()).count();
                    if digits > MAX_DIGITS {
                        return Err(GzipError::BadLength);
                    }
                    let Some(&sep) = input.get(digits) else {
                        break;
                    };
                    if sep != b':' || digits == 0 {
                        return Err(GzipError::BadLength);
                    }
                    let len = input[..digits]
                        .iter()
                        .try_fold(0u64, |acc, &d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))
                        .filter(|&n| n > 0)
                        .ok_or(GzipError::BadLength)?;
                    input.advance(digits + 1);
                    self.z.reset(true);
                    self.state = State::Stream { remaining: len };
                }
                State::Stream { remaining } => {
                    let z = &mut self.z;
                    let avail = usize::try_from(*remaining).unwrap_or(usize::MAX).min(input.len());
                    // Zeroed room for the output: up to what is left of `max_out`, but no
                    // more than twice the input at hand (stored blocks, most of the data,
                    // give at most their input; more output takes another turn of the
                    // loop), rather than clearing `max_out` bytes for every small read.
                    let room = (max_out - produced).min(avail.saturating_mul(2).max(MIN_ROOM));
                    let base = out.len();
                    out.resize(base + room, 0);
                    let (in0, out0) = (z.total_in(), z.total_out());
                    let result = z.decompress(&input[..avail], &mut out[base..], FlushDecompress::None);
                    // Deltas are bounded by `avail` and `room`, both usize.
                    let consumed = usize::try_from(z.total_in() - in0).unwrap_or(avail);
                    let made = usize::try_from(z.total_out() - out0).unwrap_or(0);
                    out.truncate(base + made);
                    let status = result.map_err(|e| GzipError::Corrupt(e.to_string()))?;
                    input.advance(consumed);
                    *remaining -= consumed as u64;
                    produced += made;
                    if status == Status::StreamEnd {
                        if *remaining > 0 {
                            return Err(GzipError::TrailingData);
                        }
                        self.state = State::Length;
                        self.unit_ended = true;
                        break;
                    }
                    if consumed == 0 && made == 0 {
                        if *remaining == 0 {
                            return Err(GzipError::Truncated);
                        }
                        break;
                    }
                }
            }
        }
        Ok(produced)
    }

    /// Whether the receiver sits between compressed messages.
    pub fn at_message_boundary(&self) -> bool {
        matches!(self.state, State::Length)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn inflate_all(wire: &[u8], step: usize, max_out: usize) -> Result<Vec<u8>, GzipError> {
        let mut inf = Inflater::new();
        let mut input = BytesMut::new();
        let mut out = BytesMut::new();
        for piece in wire.chunks(step.max(1)) {
            input.extend_from_slice(piece);
            while inf.inflate(&mut input, &mut out, max_out)? > 0 || inf.take_unit_end() {}
        }
        Ok(out.to_vec())
    }

    #[test]
    fn round_trip_in_small_steps() {
        let a = b"m25{\"type\":\"core.ping\"}    ".to_vec();
        let b: Vec<u8> = (0..100_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let mut wire = compress(&a, 6);
        wire.extend(compress(&b, 1));
        for (step, max_out) in [(1, 7), (13, 4096), (wire.len(), 1 << 20)] {
            let out = inflate_all(&wire, step, max_out).unwrap();
            assert_eq!(out.len(), a.len() + b.len());
            assert_eq!(&out[..a.len()], &a[..]);
            assert_eq!(&out[a.len()..], &b[..]);
        }
    }

    #[test]
    fn a_unit_that_inflates_far_past_its_input_comes_out_whole() {
        // 1 MiB of zeros compresses to about a kilobyte: each step's output room (twice the
        // input at hand, at least `MIN_ROOM`) fills many times over before the input is
        // used up, and every byte must still come out, whatever the steps.
        let zeros = vec![0u8; 1 << 20];
        let wire = compress(&zeros, 9);
        assert!(wire.len() < 4096, "{}", wire.len());
        for (step, max_out) in [(1, 65_536), (100, 65_536), (wire.len(), 65_536), (wire.len(), 1 << 21)] {
            let out = inflate_all(&wire, step, max_out).unwrap();
            assert!(out.len() == zeros.len() && out.iter().all(|&b| b == 0), "step {step}, max_out {max_out}");
        }
    }

    #[test]
    fn one_deflater_makes_independent_streams_message_after_message() {
        // Small and large (past the first output guess), compressible and not, two levels:
        // each unit must stand alone, as one-shot compression's does.
        // xorshift64: incompressible, so the output outgrows its first guess while part of
        // the input is still to be taken.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[0]
            })
            .collect();
        let messages: Vec<(Vec<u8>, u32)> = vec![
            (b"m2{}".to_vec(), 6),
            (noise.clone(), 6),
            (noise.clone(), 9),
            (vec![b'a'; 200_000], 6),
            (b"m25{\"type\":\"core.ping\"}".to_vec(), 9),
            (noise[..1000].to_vec(), 9),
            (Vec::new(), 6),
        ];
        let mut deflater = Deflater::default();
        let mut wire = Vec::new();
        for (m, level) in &messages {
            let unit = deflater.compress(m, *level);
            assert_eq!(unit, compress(m, *level), "the same bytes as a fresh deflater's");
            let z = &unit[unit.iter().position(|&b| b == b':').unwrap() + 1..];
            let mut plain = Vec::new();
            flate2::read::ZlibDecoder::new(z).read_to_end(&mut plain).unwrap();
            assert_eq!(&plain, m);
            wire.extend(unit);
        }
        let all: Vec<u8> = messages.iter().flat_map(|(m, _)| m.clone()).collect();
        for (step, max_out) in [(7, 1000), (wire.len(), 1 << 20)] {
            assert_eq!(inflate_all(&wire, step, max_out).unwrap(), all, "one inflater, reset per unit");
        }
    }

    #[test]
    fn stored_blocks_are_valid_zlib() {
        for len in [0usize, 1, 65_534, 65_535, 65_536, 200_001] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7).to_le_bytes()[0]).collect();
            let wire = compress(&data, 0);
            assert_eq!(inflate_all(&wire, 4096, 1 << 16).unwrap(), data, "{len} bytes through our inflater");
            let z = &wire[wire.iter().position(|&b| b == b':').unwrap() + 1..];
            let mut plain = Vec::new();
            flate2::read::ZlibDecoder::new(z).read_to_end(&mut plain).unwrap();
            assert_eq!(plain, data, "{len} bytes through flate2's decoder");
        }
    }

    #[test]
    fn output_is_bounded_per_call() {
        // 16 MiB of zeros compress to a few KiB: a bomb must come out in max_out pieces.
        let wire = compress(&vec![0u8; 16 << 20], 9);
        assert!(wire.len() < 64 << 10);
        let mut inf = Inflater::new();
        let mut input = BytesMut::from(&wire[..]);
        let mut out = BytesMut::new();
        let n = inf.inflate(&mut input, &mut out, 65_536).unwrap();
        assert_eq!((n, out.len()), (65_536, 65_536));
    }

    #[test]
    fn rejects_bad_framing() {
        let good = compress(b"m2{}", 6);
        let colon = good.iter().position(|&b| b == b':').unwrap();
        assert_eq!(inflate_all(b":abc", 1, 64), Err(GzipError::BadLength));
        assert_eq!(inflate_all(b"0:", 1, 64), Err(GzipError::BadLength));
        assert_eq!(inflate_all(b"12x", 1, 64), Err(GzipError::BadLength));
        assert_eq!(inflate_all(b"99999999999999999999:", 64, 64), Err(GzipError::BadLength));
        // Announced one byte longer than the stream: the extra byte is trailing data.
        let body = &good[colon + 1..];
        let mut long = format!("{}:", body.len() + 1).into_bytes();
        long.extend_from_slice(body);
        long.push(b'x');
        assert_eq!(inflate_all(&long, 64, 64), Err(GzipError::TrailingData));
        // Announced one byte shorter: the stream cannot finish.
        let mut short = format!("{}:", body.len() - 1).into_bytes();
        short.extend_from_slice(&body[..body.len() - 1]);
        short.extend_from_slice(b"5:");
        assert_eq!(inflate_all(&short, 64, 64), Err(GzipError::Truncated));
        assert!(matches!(inflate_all(b"4:abcd", 64, 64), Err(GzipError::Corrupt(_))));
    }
}
