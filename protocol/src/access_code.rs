//! Access codes (`core.md`, "Access Codes"), as `docs/protocol-decisions.md` fixes them.
//!
//! A code carries 16 random bytes (the payload). On screen it is the RFC 4648 base32 form of
//! `96 1A 2F F3 ‖ payload` (32 symbols, which always begin `SYNC`) followed by one Luhn mod 32
//! check symbol: 33 characters. The access ID, which is public and used to find peers, is the
//! SHA-256 of payload bytes 0..8; the SRP password is payload bytes 8..16 in lower-case hex.
//!
//! The random bytes come from the caller ([`AccessCode::from_random`]): this crate has no RNG.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::Sha256Hash;

/// The four magic bytes that make the base32 text start with `SYNC`.
pub const MAGIC: [u8; 4] = [0x96, 0x1A, 0x2F, 0xF3];
/// Characters in a formatted code.
pub const CODE_LEN: usize = 33;
/// The URL form's prefix, accepted on input in any case.
pub const URL_PREFIX: &str = "clearskies://directory/";
/// Prefix of every SRP username; the `1` is the key-establishment protocol version.
pub const SRP_USERNAME_PREFIX: &str = "clearskies:1:";

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Why a typed-in access code was rejected. Each cause is its own variant so the CLI can say
/// exactly what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessCodeError {
    /// Nothing was given.
    #[error("the access code is empty")]
    Empty,
    /// Not 33 characters (after removing the URL prefix and surrounding whitespace).
    #[error("an access code has 33 characters, this has {0}")]
    WrongLength(usize),
    /// A character outside the base32 alphabet (A–Z, 2–7).
    #[error("character {character:?} at position {position} is not in the access code alphabet")]
    BadSymbol {
        /// 1-based position in the code.
        position: usize,
        /// The offending character.
        character: char,
    },
    /// The check symbol does not match: a typo somewhere.
    #[error("the access code's check symbol does not match (is there a typo?)")]
    BadCheckSymbol,
    /// The code is well formed but does not start with the ClearSkies magic (`SYNC`).
    #[error("this is not a ClearSkies access code (it must start with SYNC)")]
    WrongPrefix,
}

/// Why custom credentials were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// The username is empty.
    #[error("the username is empty")]
    EmptyUsername,
    /// The password is empty.
    #[error("the password is empty")]
    EmptyPassword,
}

/// An access code: 16 secret random bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AccessCode {
    payload: [u8; 16],
}

/// What a peer needs to authenticate with SRP and find its club.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The public ID peers register and look up (access ID or key ID).
    pub id: Sha256Hash,
    /// SRP username: `clearskies:1:<id hex>`.
    pub username: String,
    /// SRP password (secret).
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("id", &self.id).field("username", &self.username).finish_non_exhaustive()
    }
}

/// The SRP username for an access ID or key ID.
pub fn srp_username(id: &Sha256Hash) -> String {
    format!("{SRP_USERNAME_PREFIX}{id}")
}

impl Credentials {
    /// Credentials from a user-chosen username and password: the ID is the SHA-256 of the
    /// username's UTF-8 bytes, and the password goes to SRP exactly as typed.
    pub fn custom(username: &str, password: &str) -> Result<Self, CredentialsError> {
        if username.is_empty() {
            return Err(CredentialsError::EmptyUsername);
        }
        if password.is_empty() {
            return Err(CredentialsError::EmptyPassword);
        }
        let id = custom_id(username);
        Ok(Credentials { id, username: srp_username(&id), password: password.to_owned() })
    }
}

/// The public ID of a custom username: the SHA-256 of its UTF-8 bytes.
pub fn custom_id(username: &str) -> Sha256Hash {
    Sha256Hash(Sha256::digest(username.as_bytes()).into())
}

impl AccessCode {
    /// A code from 16 bytes the caller drew from a cryptographically secure RNG.
    pub fn from_random(payload: [u8; 16]) -> Self {
        AccessCode { payload }
    }

    /// The 16 secret bytes.
    pub fn payload(&self) -> &[u8; 16] {
        &self.payload
    }

    /// The public access ID: SHA-256 of the first 8 payload bytes.
    pub fn access_id(&self) -> Sha256Hash {
        Sha256Hash(Sha256::digest(&self.payload[..8]).into())
    }

    /// The SRP credentials this code stands for.
    pub fn credentials(&self) -> Credentials {
        let id = self.access_id();
        Credentials { id, username: srp_username(&id), password: hex::encode(&self.payload[8..]) }
    }

    /// The `clearskies://directory/SYNC…` form.
    pub fn to_url(&self) -> String {
        format!("{URL_PREFIX}{self}")
    }

    /// The 32 base32 symbol values of `MAGIC ‖ payload`.
    fn symbols(&self) -> [u8; 32] {
        let mut raw = [0u8; 20];
        raw[..4].copy_from_slice(&MAGIC);
        raw[4..].copy_from_slice(&self.payload);
        let mut out = [0u8; 32];
        for (group, chunk) in raw.chunks_exact(5).enumerate() {
            let v = chunk.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            for j in 0..8 {
                // Masked to 5 bits, so the cast is exact.
                out[group * 8 + j] = ((v >> (35 - 5 * j)) & 0x1f) as u8;
            }
        }
        out
    }
}

/// The Luhn mod 32 check value for symbol values (factor 2 on the rightmost).
fn luhn_check(symbols: &[u8]) -> u8 {
    let mut factor = 2u32;
    let mut sum = 0u32;
    for &s in symbols.iter().rev() {
        let addend = factor * u32::from(s);
        sum += addend / 32 + addend % 32;
        factor = if factor == 2 { 1 } else { 2 };
    }
    // (32 - sum % 32) % 32 < 32.
    ((32 - sum % 32) % 32) as u8
}

impl fmt::Display for AccessCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let symbols = self.symbols();
        let mut text = [0u8; CODE_LEN];
        for (t, &s) in text.iter_mut().zip(symbols.iter()) {
            *t = ALPHABET[usize::from(s)];
        }
        text[32] = ALPHABET[usize::from(luhn_check(&symbols))];
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

/// Codes are secrets: `Debug` shows only the public access ID.
impl fmt::Debug for AccessCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessCode").field("access_id", &self.access_id()).finish_non_exhaustive()
    }
}

impl FromStr for AccessCode {
    type Err = AccessCodeError;

    /// Parses a code in any letter case, with or without the `clearskies://directory/`
    /// prefix and surrounding whitespace.
    fn from_str(input: &str) -> Result<Self, AccessCodeError> {
        let mut s = input.trim();
        if s.len() >= URL_PREFIX.len()
            && s.is_char_boundary(URL_PREFIX.len())
            && s[..URL_PREFIX.len()].eq_ignore_ascii_case(URL_PREFIX)
        {
            s = &s[URL_PREFIX.len()..];
        }
        if s.is_empty() {
            return Err(AccessCodeError::Empty);
        }
        let count = s.chars().count();
        if count != CODE_LEN {
            return Err(AccessCodeError::WrongLength(count));
        }
        let mut values = [0u8; CODE_LEN];
        for (i, c) in s.chars().enumerate() {
            let upper = c.to_ascii_uppercase();
            values[i] = (0u8..32)
                .find(|&v| char::from(ALPHABET[usize::from(v)]) == upper)
                .ok_or(AccessCodeError::BadSymbol { position: i + 1, character: c })?;
        }
        if luhn_check(&values[..32]) != values[32] {
            return Err(AccessCodeError::BadCheckSymbol);
        }
        let mut raw = [0u8; 20];
        for (group, chunk) in values[..32].chunks_exact(8).enumerate() {
            let v = chunk.iter().fold(0u64, |acc, &s| (acc << 5) | u64::from(s));
            for j in 0..5 {
                // Masked to 8 bits.
                raw[group * 5 + j] = ((v >> (32 - 8 * j)) & 0xff) as u8;
            }
        }
        if raw[..4] != MAGIC {
            return Err(AccessCodeError::WrongPrefix);
        }
        let mut payload = [0u8; 16];
        payload.copy_from_slice(&raw[4..]);
        Ok(AccessCode { payload })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PAYLOAD: [u8; 16] =
        [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];

    #[test]
    fn golden_code() {
        let code = AccessCode::from_random(PAYLOAD);
        let text = code.to_string();
        assert_eq!(text.len(), CODE_LEN);
        assert!(text.starts_with("SYNC"));
        // Golden value, cross-checked with Python's base64.b32encode and a Luhn mod N script
        // (protocol/tests/data/access_codes.txt holds more).
        assert_eq!(text, "SYNC74YACERDGRCVMZ3YRGNKXPGN33X77");
        let creds = code.credentials();
        assert_eq!(creds.password, "8899aabbccddeeff");
        assert_eq!(creds.id.to_string(), hex::encode(Sha256::digest([0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77])));
        assert_eq!(creds.username, format!("clearskies:1:{}", creds.id));
        assert!(!format!("{code:?}").contains(&text));
    }

    #[test]
    fn parse_forms() {
        let code = AccessCode::from_random(PAYLOAD);
        let text = code.to_string();
        assert_eq!(text.parse::<AccessCode>(), Ok(code.clone()));
        assert_eq!(text.to_lowercase().parse::<AccessCode>(), Ok(code.clone()));
        assert_eq!(code.to_url().parse::<AccessCode>(), Ok(code.clone()));
        assert_eq!(format!("  CLEARSKIES://Directory/{}\n", text.to_lowercase()).parse::<AccessCode>(), Ok(code));
    }

    #[test]
    fn distinct_rejections() {
        let text = AccessCode::from_random(PAYLOAD).to_string();
        assert_eq!("".parse::<AccessCode>(), Err(AccessCodeError::Empty));
        assert_eq!(URL_PREFIX.parse::<AccessCode>(), Err(AccessCodeError::Empty));
        assert_eq!("SYNC123ABC".parse::<AccessCode>(), Err(AccessCodeError::WrongLength(10)));
        let mut bad = text.clone();
        bad.replace_range(5..6, "1");
        assert_eq!(bad.parse::<AccessCode>(), Err(AccessCodeError::BadSymbol { position: 6, character: '1' }));
        let mut typo = text.clone();
        let c = if &typo[10..11] == "A" { "B" } else { "A" };
        typo.replace_range(10..11, c);
        assert_eq!(typo.parse::<AccessCode>(), Err(AccessCodeError::BadCheckSymbol));
        // A valid base32 + Luhn string without the magic prefix.
        let mut symbols = [0u8; 32];
        symbols[0] = 1;
        let mut s: String = symbols.iter().map(|&v| char::from(ALPHABET[usize::from(v)])).collect();
        s.push(char::from(ALPHABET[usize::from(luhn_check(&symbols))]));
        assert_eq!(s.parse::<AccessCode>(), Err(AccessCodeError::WrongPrefix));
        // Multi-byte characters never panic.
        assert!(matches!(
            "ÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉ".parse::<AccessCode>(),
            Err(AccessCodeError::BadSymbol { position: 1, .. })
        ));
    }

    #[test]
    fn custom_credentials() {
        let c = Credentials::custom("alice", "correct horse").unwrap();
        assert_eq!(c.id.to_string(), hex::encode(Sha256::digest(b"alice")));
        assert_eq!(c.password, "correct horse");
        assert!(!format!("{c:?}").contains("horse"));
        assert_eq!(Credentials::custom("", "x"), Err(CredentialsError::EmptyUsername));
        assert_eq!(Credentials::custom("x", ""), Err(CredentialsError::EmptyPassword));
    }

    proptest! {
        #[test]
        fn round_trip(payload in any::<[u8; 16]>()) {
            let code = AccessCode::from_random(payload);
            let text = code.to_string();
            prop_assert!(text.starts_with("SYNC"));
            prop_assert_eq!(text.parse::<AccessCode>(), Ok(code));
        }

        #[test]
        fn every_single_symbol_error_is_detected(payload in any::<[u8; 16]>(), pos in 0usize..33, delta in 1u8..32) {
            let text = AccessCode::from_random(payload).to_string();
            let mut bytes = text.into_bytes();
            let old = u8::try_from(ALPHABET.iter().position(|&a| a == bytes[pos]).unwrap()).unwrap();
            bytes[pos] = ALPHABET[usize::from((old + delta) % 32)];
            let typo = String::from_utf8(bytes).unwrap();
            prop_assert!(typo.parse::<AccessCode>().is_err());
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,60}") {
            let _ = s.parse::<AccessCode>();
        }
    }
}
