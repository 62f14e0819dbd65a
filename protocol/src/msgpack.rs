//! A structural check of MessagePack bodies that allocates nothing: it walks one value,
//! bounding nesting depth, checking every claimed length against the bytes actually present
//! (a header claiming 2³² elements in a 20-byte body is refused before anything is read for
//! them), and reports exactly how many bytes the value spans, so trailing bytes are seen.

/// Deepest nesting accepted in a body (the top-level map is depth 1), MessagePack and JSON
/// alike (`serde_json` refuses more than 128 levels on its own).
pub const MAX_DEPTH: usize = 128;

/// Why bytes are not one well-formed MessagePack value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MsgpackError {
    /// The value (or a length it claims) runs past the end of the bytes.
    #[error("MessagePack value is truncated or claims more bytes than it has")]
    Truncated,
    /// The reserved marker `0xc1`.
    #[error("reserved MessagePack marker 0xc1")]
    Reserved,
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("MessagePack value nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Bytes follow the value.
    #[error("{0} bytes follow the MessagePack value")]
    Trailing(usize),
}

/// What [`check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// How many values the body holds, containers and map keys included.
    pub values: usize,
    /// The deepest nesting (a scalar is depth 0, a map of scalars depth 1).
    pub depth: usize,
}

/// Checks that `body` is exactly one MessagePack value, nested at most [`MAX_DEPTH`] deep.
pub fn check(body: &[u8]) -> Result<Shape, MsgpackError> {
    let mut walker = Walker { bytes: body, pos: 0, values: 0, deepest: 0 };
    walker.value(0)?;
    if walker.pos != body.len() {
        return Err(MsgpackError::Trailing(body.len() - walker.pos));
    }
    Ok(Shape { values: walker.values, depth: walker.deepest })
}

struct Walker<'a> {
    bytes: &'a [u8],
    pos: usize,
    values: usize,
    deepest: usize,
}

impl Walker<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], MsgpackError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or(MsgpackError::Truncated)?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// A big-endian length of `n` bytes (1, 2 or 4).
    fn len(&mut self, n: usize) -> Result<usize, MsgpackError> {
        let b = self.take(n)?;
        Ok(b.iter().fold(0usize, |acc, &x| (acc << 8) | usize::from(x)))
    }

    fn skip(&mut self, n: usize) -> Result<(), MsgpackError> {
        self.take(n).map(drop)
    }

    /// `n` values follow (2n for a map of n entries). Each takes at least one byte, so a
    /// claim beyond the bytes left is refused before any of them is read.
    fn items(&mut self, n: usize, depth: usize) -> Result<(), MsgpackError> {
        if n > self.bytes.len() - self.pos {
            return Err(MsgpackError::Truncated);
        }
        if depth + 1 > MAX_DEPTH {
            return Err(MsgpackError::TooDeep);
        }
        self.deepest = self.deepest.max(depth + 1);
        for _ in 0..n {
            self.value(depth + 1)?;
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<(), MsgpackError> {
        let marker = self.take(1)?[0];
        self.values += 1;
        match marker {
            // positive / negative fixint, nil, false, true
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => Ok(()),
            0x80..=0x8f => self.items(2 * usize::from(marker & 0x0f), depth),
            0x90..=0x9f => self.items(usize::from(marker & 0x0f), depth),
            0xa0..=0xbf => self.skip(usize::from(marker & 0x1f)),
            0xc1 => Err(MsgpackError::Reserved),
            // bin 8/16/32, str 8/16/32
            0xc4 | 0xd9 => {
                let n = self.len(1)?;
                self.skip(n)
            }
            0xc5 | 0xda => {
                let n = self.len(2)?;
                self.skip(n)
            }
            0xc6 | 0xdb => {
                let n = self.len(4)?;
                self.skip(n)
            }
            // ext 8/16/32: length, type byte, data
            0xc7 => {
                let n = self.len(1)?;
                self.skip(n + 1)
            }
            0xc8 => {
                let n = self.len(2)?;
                self.skip(n + 1)
            }
            0xc9 => {
                let n = self.len(4)?;
                self.skip(n.saturating_add(1))
            }
            0xca => self.skip(4),
            0xcb => self.skip(8),
            // uint / int 8, 16, 32, 64
            0xcc | 0xd0 => self.skip(1),
            0xcd | 0xd1 => self.skip(2),
            0xce | 0xd2 => self.skip(4),
            0xcf | 0xd3 => self.skip(8),
            // fixext 1, 2, 4, 8, 16 (plus the type byte)
            0xd4 => self.skip(2),
            0xd5 => self.skip(3),
            0xd6 => self.skip(5),
            0xd7 => self.skip(9),
            0xd8 => self.skip(17),
            0xdc => {
                let n = self.len(2)?;
                self.items(n, depth)
            }
            0xdd => {
                let n = self.len(4)?;
                self.items(n, depth)
            }
            0xde => {
                let n = self.len(2)?;
                self.items(2 * n, depth)
            }
            0xdf => {
                let n = self.len(4)?;
                self.items(n.saturating_mul(2), depth)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_values_are_measured() {
        let body = rmp_serde::to_vec_named(&serde_json::json!({"type": "x", "a": [1, 2, {"b": null}]})).unwrap();
        assert_eq!(check(&body), Ok(Shape { values: 10, depth: 3 }));
        assert_eq!(check(&[0x80]), Ok(Shape { values: 1, depth: 1 }));
    }

    #[test]
    fn claimed_lengths_beyond_the_bytes_are_refused() {
        // An array, a map and a string each claiming 2³²−1 items with nothing behind them.
        for body in [
            &[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0][..],
            &[0xdf, 0xff, 0xff, 0xff, 0xff, 0, 0],
            &[0xdb, 0xff, 0xff, 0xff, 0xff, b'x'],
        ] {
            assert_eq!(check(body), Err(MsgpackError::Truncated), "{body:x?}");
        }
        assert_eq!(check(&[0xc9, 0xff, 0xff, 0xff, 0xff]), Err(MsgpackError::Truncated));
        assert_eq!(check(&[0x81, 0xa1]), Err(MsgpackError::Truncated));
    }

    #[test]
    fn depth_reserved_and_trailing_bytes_are_refused() {
        let mut deep = vec![0x91; MAX_DEPTH];
        deep.push(0xc0);
        assert!(check(&deep).is_ok());
        let mut deeper = vec![0x91; MAX_DEPTH + 1];
        deeper.push(0xc0);
        assert_eq!(check(&deeper), Err(MsgpackError::TooDeep));
        // A million levels: refused at level 129, without recursing further.
        assert_eq!(check(&vec![0x91; 1 << 20]), Err(MsgpackError::TooDeep));
        assert_eq!(check(&[0xc1]), Err(MsgpackError::Reserved));
        assert_eq!(check(&[0x80, 0x00, 0x00]), Err(MsgpackError::Trailing(2)));
    }
}
