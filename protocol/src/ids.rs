//! Fixed-size identifiers that travel as lower-case hex strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a hex identifier was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The string does not have the identifier's exact length.
    #[error("expected {expected} hex digits, found {found} characters")]
    Length {
        /// Hex digits required.
        expected: usize,
        /// Characters found.
        found: usize,
    },
    /// A character is not a hex digit.
    #[error("not a hex digit at position {0}")]
    Digit(usize),
}

fn decode_hex<const N: usize>(s: &str) -> Result<[u8; N], IdError> {
    let bytes = s.as_bytes();
    if bytes.len() != 2 * N {
        return Err(IdError::Length { expected: 2 * N, found: s.chars().count() });
    }
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = hex_value(pair[0]).ok_or(IdError::Digit(2 * i))?;
        let lo = hex_value(pair[1]).ok_or(IdError::Digit(2 * i + 1))?;
        out[i] = (hi << 4) | lo;
    }
    Ok(out)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lower-case hex, as on the wire.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            /// Parses hex in either case.
            fn from_str(s: &str) -> Result<Self, IdError> {
                decode_hex::<$len>(s).map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for b in self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut buf = [0u8; 2 * $len];
                // `encode_to_slice` only fails on a wrong output length, fixed here at 2 × LEN.
                hex::encode_to_slice(self.0, &mut buf).map_err(serde::ser::Error::custom)?;
                // Hex digits are ASCII, so this conversion cannot fail.
                let text = std::str::from_utf8(&buf).map_err(serde::ser::Error::custom)?;
                s.serialize_str(text)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "{} hex digits", 2 * $len)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

/// `Debug` for public identifiers: the type name and the hex.
macro_rules! debug_public {
    ($($name:ident),*) => {$(
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }
    )*};
}

/// `Debug` for secrets: never the value.
macro_rules! debug_secret {
    ($($name:ident),*) => {$(
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(<redacted>)", stringify!($name))
            }
        }
    )*};
}

hex_id!(
    /// A peer's 128-bit ID, unique per peer and per club (share).
    PeerId,
    16
);

hex_id!(
    /// A SHA-256 digest: file contents, access IDs and key IDs.
    Sha256Hash,
    32
);

hex_id!(
    /// A record's 128-bit UUID (`database.md`).
    RecordUuid,
    16
);

hex_id!(
    /// The 128-bit ID of a file as the untrusted extension names it (`untrusted.id`).
    UntrustedFileId,
    16
);

hex_id!(
    /// A 256-bit secret key: an access level's communication key (`core.keys`).
    SecretKey,
    32
);

hex_id!(
    /// An access code's 16 secret bytes in hex, as `code_spread` carries them.
    CodeSecret,
    16
);

debug_public!(PeerId, Sha256Hash, RecordUuid, UntrustedFileId);
debug_secret!(SecretKey, CodeSecret);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_case() {
        let id: PeerId = "77B8065588ec32f95f598e93db6672ac".parse().unwrap();
        assert_eq!(id.to_string(), "77b8065588ec32f95f598e93db6672ac");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"77b8065588ec32f95f598e93db6672ac\"");
    }

    #[test]
    fn secrets_are_redacted() {
        let k = SecretKey([0xab; 32]);
        assert_eq!(format!("{k:?}"), "SecretKey(<redacted>)");
        assert_eq!(format!("{:?}", PeerId([1; 16])), "PeerId(01010101010101010101010101010101)");
    }

    #[test]
    fn rejects_bad_ids() {
        assert_eq!("abc".parse::<PeerId>(), Err(IdError::Length { expected: 32, found: 3 }));
        assert_eq!("77b8065588ec32f95f598e93db6672ag".parse::<PeerId>(), Err(IdError::Digit(31)));
        // A multi-byte character must not be split or panic.
        assert!("é7b8065588ec32f95f598e93db6672a".parse::<PeerId>().is_err());
    }
}
