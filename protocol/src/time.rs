//! ISO 8601 timestamps with nanosecond precision (`core.md`, "Datetime Values").
//!
//! [`Timestamp`] is seconds and nanoseconds since the Unix epoch in UTC. It is written as
//! `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (always nine fractional digits) and read from any RFC 3339
//! form: zero to nine fractional digits, `Z`/`z` or a `±HH:MM` offset, `T`/`t` or a space.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time with nanosecond precision, in UTC.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
}

/// Why a datetime string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    /// The text is not an RFC 3339 / ISO 8601 datetime.
    #[error("malformed datetime")]
    Syntax,
    /// A field is out of range (month 13, 31 February, hour 24, …).
    #[error("datetime field out of range")]
    Range,
}

/// Smallest and largest years accepted, so that seconds never overflow.
const MIN_YEAR: i64 = 0;
const MAX_YEAR: i64 = 9999;

impl Timestamp {
    /// From seconds and nanoseconds since the Unix epoch; `None` if `nanos` ≥ 10⁹ or the
    /// year would fall outside 0000..=9999.
    pub fn new(secs: i64, nanos: u32) -> Option<Self> {
        let min = days_from_civil(MIN_YEAR, 1, 1) * 86_400;
        let max = days_from_civil(MAX_YEAR + 1, 1, 1) * 86_400 - 1;
        if nanos >= 1_000_000_000 || secs < min || secs > max {
            return None;
        }
        Some(Timestamp { secs, nanos })
    }

    /// Seconds since the Unix epoch.
    pub fn secs(&self) -> i64 {
        self.secs
    }

    /// Nanoseconds within the second.
    pub fn nanos(&self) -> u32 {
        self.nanos
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date for days since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    // d ∈ 1..=31 and m ∈ 1..=12 by construction.
    (y, u32::try_from(m).unwrap_or(1), u32::try_from(d).unwrap_or(1))
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.secs.div_euclid(86_400);
        let sod = self.secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(f, "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z", sod / 3600, (sod / 60) % 60, sod % 60, self.nanos)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn number(&mut self, digits: usize) -> Result<u32, TimeError> {
        let mut v = 0u32;
        for _ in 0..digits {
            let b = *self.s.get(self.i).ok_or(TimeError::Syntax)?;
            if !b.is_ascii_digit() {
                return Err(TimeError::Syntax);
            }
            v = v * 10 + u32::from(b - b'0');
            self.i += 1;
        }
        Ok(v)
    }

    fn expect(&mut self, options: &[u8]) -> Result<u8, TimeError> {
        match self.s.get(self.i) {
            Some(b) if options.contains(b) => {
                self.i += 1;
                Ok(*b)
            }
            _ => Err(TimeError::Syntax),
        }
    }
}

impl FromStr for Timestamp {
    type Err = TimeError;

    fn from_str(s: &str) -> Result<Self, TimeError> {
        let mut c = Cursor { s: s.as_bytes(), i: 0 };
        let year = c.number(4)?;
        c.expect(b"-")?;
        let month = c.number(2)?;
        c.expect(b"-")?;
        let day = c.number(2)?;
        c.expect(b"Tt ")?;
        let hour = c.number(2)?;
        c.expect(b":")?;
        let minute = c.number(2)?;
        c.expect(b":")?;
        let second = c.number(2)?;
        let mut nanos = 0u32;
        if c.expect(b".").is_ok() {
            let start = c.i;
            while c.s.get(c.i).is_some_and(u8::is_ascii_digit) {
                c.i += 1;
            }
            let digits = c.i - start;
            if digits == 0 || digits > 9 {
                return Err(TimeError::Syntax);
            }
            c.i = start;
            // digits ≤ 9, so the value and the power of ten both fit in u32.
            nanos = c.number(digits)? * 10u32.pow(9 - u32::try_from(digits).unwrap_or(9));
        }
        let offset_secs = match c.expect(b"Zz+-")? {
            b'Z' | b'z' => 0i64,
            sign => {
                let oh = c.number(2)?;
                c.expect(b":")?;
                let om = c.number(2)?;
                if oh > 23 || om > 59 {
                    return Err(TimeError::Range);
                }
                let off = i64::from(oh * 3600 + om * 60);
                if sign == b'-' {
                    -off
                } else {
                    off
                }
            }
        };
        if c.i != c.s.len() {
            return Err(TimeError::Syntax);
        }
        let year = i64::from(year);
        // Leap seconds (60) are not representable in Unix time; they are refused.
        if !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return Err(TimeError::Range);
        }
        let secs =
            days_from_civil(year, month, day) * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_secs;
        Timestamp::new(secs, nanos).ok_or(TimeError::Range)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ISO 8601 datetime string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Timestamp, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_examples() {
        let t: Timestamp = "2014-03-30T12:35:29.113243778Z".parse().unwrap();
        assert_eq!(t.secs(), 1_396_182_929);
        assert_eq!(t.nanos(), 113_243_778);
        assert_eq!(t.to_string(), "2014-03-30T12:35:29.113243778Z");
        let t: Timestamp = "2014-02-23T23:45:39Z".parse().unwrap();
        assert_eq!(t.to_string(), "2014-02-23T23:45:39.000000000Z");
    }

    #[test]
    fn offsets_and_fractions() {
        let a: Timestamp = "2014-03-30T14:35:29.5+02:00".parse().unwrap();
        let b: Timestamp = "2014-03-30T12:35:29.500000000Z".parse().unwrap();
        assert_eq!(a, b);
        let pre: Timestamp = "1969-12-31T23:59:59.999999999Z".parse().unwrap();
        assert_eq!((pre.secs(), pre.nanos()), (-1, 999_999_999));
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "2014-03-30",
            "2014-03-30T12:35:29",
            "2014-03-30T12:35:29.Z",
            "2014-03-30T12:35:29.1234567890Z",
            "2014-03-30T12:35:29Zjunk",
            "２014-03-30T12:35:29Z",
        ] {
            assert_eq!(bad.parse::<Timestamp>(), Err(TimeError::Syntax), "{bad}");
        }
        for bad in ["2014-02-29T00:00:00Z", "2014-13-01T00:00:00Z", "2014-01-01T24:00:00Z", "2014-01-01T23:59:60Z"] {
            assert_eq!(bad.parse::<Timestamp>(), Err(TimeError::Range), "{bad}");
        }
        assert!("2000-02-29T00:00:00Z".parse::<Timestamp>().is_ok());
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(secs in -62_167_219_200i64..253_402_300_799, nanos in 0u32..1_000_000_000) {
            let t = Timestamp::new(secs, nanos).unwrap();
            prop_assert_eq!(t.to_string().parse::<Timestamp>(), Ok(t));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<Timestamp>();
        }
    }
}
