//! Who may use the web interface: one-time login links, sessions with their CSRF tokens,
//! and the password.
//!
//! The interface is served on a loopback address by default, which every user of this
//! computer can reach, so nothing is served without a session, not even there.
//! - A login link (`clearskies open`) carries `EXPIRES-NONCE-MAC`: HMAC-SHA256 under the
//!   worker's secret key of the nonce and the expiry. It is valid for
//!   [`LOGIN_LINK_LIFETIME`], once: its nonce is remembered until it expires. Whoever can
//!   run `clearskies open` can use the control socket anyway, so the link gives nothing more.
//! - A password (`clearskies web-password`), stored as an Argon2id hash in the data
//!   directory, opens longer sessions, and is the only way in over the network (HTTPS).
//! - A session is a random cookie value (HttpOnly, SameSite=Strict), looked up by its
//!   SHA-256 so a lookup's timing says nothing about the secret, with a CSRF token that
//!   every state-changing request must carry in `X-CSRF-Token`.
//!
//! Sessions live in memory: a worker restart logs everyone out.

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// How long a login link stays valid.
pub const LOGIN_LINK_LIFETIME: u64 = 300;
/// How long a session opened by a login link lasts.
pub const LINK_SESSION: u64 = 12 * 3600;
/// How long a session opened with the password lasts.
pub const PASSWORD_SESSION: u64 = 30 * 86_400;
/// Sessions kept at once; opening one more drops the one that expires first.
pub const MAX_SESSIONS: usize = 64;
/// Password attempts accepted per minute from one address.
pub const PASSWORD_ATTEMPTS_PER_MINUTE: usize = 10;
/// Sources of password attempts tracked at once.
pub const MAX_SOURCES: usize = 1024;
/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 10;
/// The longest password accepted (Argon2 hashes any length; a bound keeps the work bounded).
pub const MAX_PASSWORD: usize = 1024;

/// `n` random bytes as hex (`None` if the system's generator fails).
pub fn random_hex(n: usize) -> Option<String> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).ok()?;
    Some(hex::encode(bytes))
}

fn link_mac(key: &[u8], nonce: &str, expires: u64) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in [b"clearskies login v1".as_slice(), nonce.as_bytes()] {
        m.update(part);
        m.update(&[0]);
    }
    m.update(expires.to_string().as_bytes());
    m.finalize().into_bytes().into()
}

/// A new login link's token, valid until `now + LOGIN_LINK_LIFETIME`.
pub fn login_token(key: &[u8], now: u64) -> Option<String> {
    let nonce = random_hex(16)?;
    let expires = now + LOGIN_LINK_LIFETIME;
    Some(format!("{expires}-{nonce}-{}", hex::encode(link_mac(key, &nonce, expires))))
}

/// Compares without stopping at the first difference.
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One browser's session.
#[derive(Debug, Clone)]
pub struct Session {
    /// What state-changing requests must carry in `X-CSRF-Token`.
    pub csrf: String,
    /// Unix time it ends.
    pub expires: u64,
    /// The password in effect when it was opened (its hash file's time; `None`: none).
    pub password: Option<std::time::SystemTime>,
}

/// The sessions, the login links used, and recent password attempts.
#[derive(Debug, Default)]
pub struct Sessions {
    /// By the SHA-256 of the cookie value.
    open: HashMap<[u8; 32], Session>,
    /// Login links' nonces already used, with their expiry.
    used: HashMap<String, u64>,
    /// Times of recent password attempts, by source address.
    attempts: HashMap<std::net::IpAddr, Vec<u64>>,
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// Uses a login link's `token`: `Err` says why it opens nothing.
    pub fn redeem(&mut self, key: &[u8], token: &str, now: u64) -> Result<(), &'static str> {
        const WRONG: &str = "this login link is not valid: get a new one with `clearskies open`";
        self.used.retain(|_, &mut e| e > now);
        let mut parts = token.splitn(3, '-');
        let (Some(expires), Some(nonce), Some(mac)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(WRONG);
        };
        let (Ok(expires), Ok(mac)) = (expires.parse::<u64>(), hex::decode(mac)) else { return Err(WRONG) };
        if key.is_empty() || nonce.len() != 32 || !same(&mac, &link_mac(key, nonce, expires)) {
            return Err(WRONG);
        }
        if now >= expires {
            return Err("this login link has expired: get a new one with `clearskies open`");
        }
        if self.used.contains_key(nonce) {
            return Err("this login link was used already: get a new one with `clearskies open`");
        }
        self.used.insert(nonce.to_owned(), expires);
        Ok(())
    }

    /// Opens a session for `lifetime` seconds: its cookie value and CSRF token.
    pub fn open(
        &mut self,
        lifetime: u64,
        now: u64,
        password: Option<std::time::SystemTime>,
    ) -> Option<(String, Session)> {
        self.open.retain(|_, s| s.expires > now);
        while self.open.len() >= MAX_SESSIONS {
            let first = self.open.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k)?;
            self.open.remove(&first);
        }
        let (id, csrf) = (random_hex(32)?, random_hex(32)?);
        let session = Session { csrf, expires: now + lifetime, password };
        self.open.insert(digest(&id), session.clone());
        Some((id, session))
    }

    /// The session whose cookie value is `id`, if it is open.
    pub fn get(&mut self, id: &str, now: u64) -> Option<Session> {
        let key = digest(id);
        match self.open.get(&key) {
            Some(s) if s.expires > now => Some(s.clone()),
            Some(_) => {
                self.open.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session `id`.
    pub fn close(&mut self, id: &str) {
        self.open.remove(&digest(id));
    }

    /// Whether one more password attempt from `source` may be checked now (a guesser
    /// elsewhere does not lock its owner out). Sources are bounded too: a flood from many
    /// addresses is refused as a whole.
    pub fn attempt(&mut self, source: std::net::IpAddr, now: u64) -> bool {
        self.attempts.retain(|_, times| {
            times.retain(|&t| t + 60 > now);
            !times.is_empty()
        });
        if self.attempts.len() >= MAX_SOURCES && !self.attempts.contains_key(&source) {
            return false;
        }
        let times = self.attempts.entry(source).or_default();
        if times.len() >= PASSWORD_ATTEMPTS_PER_MINUTE {
            return false;
        }
        times.push(now);
        true
    }
}

/// The Argon2id hash (PHC string) of `password`, with a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let n = password.chars().count();
    if n < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        return Err(format!("a password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters"));
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no random numbers: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches the PHC string `hash` (false for a malformed hash).
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    if password.len() > MAX_PASSWORD {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(hash.trim()) else { return false };
    argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_link_opens_once_until_it_expires() {
        let key = b"0123456789abcdef0123456789abcdef";
        let mut s = Sessions::default();
        let t = login_token(key, 1_000).unwrap();
        assert_eq!(s.redeem(key, &t, 1_001), Ok(()));
        assert!(s.redeem(key, &t, 1_002).unwrap_err().contains("used already"));
        let t = login_token(key, 1_000).unwrap();
        assert!(s.redeem(key, &t, 1_000 + LOGIN_LINK_LIFETIME).unwrap_err().contains("expired"));
        assert!(s.redeem(b"another key", &t, 1_001).is_err());
        // A later expiry with the same MAC, or a changed nonce, is not this link.
        let (_, rest) = t.split_once('-').unwrap();
        assert!(s.redeem(key, &format!("999999-{rest}"), 1_001).is_err());
        for junk in ["", "-", "1-2-3", "x-y-z", "1000--", &t[..t.len() - 1]] {
            assert!(s.redeem(key, junk, 1_001).is_err(), "{junk}");
        }
        assert!(s.redeem(b"", &t, 1_001).is_err());
    }

    #[test]
    fn sessions_end_and_are_bounded() {
        let mut s = Sessions::default();
        let (id, session) = s.open(10, 100, None).unwrap();
        assert_eq!(s.get(&id, 105).unwrap().csrf, session.csrf);
        assert!(s.get(&id, 110).is_none());
        assert!(s.get("nonsense", 100).is_none());
        let (id, _) = s.open(10, 100, None).unwrap();
        s.close(&id);
        assert!(s.get(&id, 101).is_none());
        let ids: Vec<String> = (0..MAX_SESSIONS + 5).map(|i| s.open(1000 + i as u64, 100, None).unwrap().0).collect();
        assert_eq!(s.open.len(), MAX_SESSIONS);
        assert!(s.get(&ids[0], 101).is_none(), "the one ending first was dropped");
        assert!(s.get(ids.last().unwrap(), 101).is_some());
    }

    #[test]
    fn password_attempts_are_limited_per_minute() {
        let mut s = Sessions::default();
        let (a, b) = ([127, 0, 0, 1].into(), [10, 0, 0, 2].into());
        for _ in 0..PASSWORD_ATTEMPTS_PER_MINUTE {
            assert!(s.attempt(a, 100));
        }
        assert!(!s.attempt(a, 130));
        assert!(s.attempt(b, 130), "another source is not locked out");
        assert!(s.attempt(a, 161));
    }

    #[test]
    fn passwords_hash_and_verify() {
        assert!(hash_password("short").is_err());
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterx", &h));
        assert!(!verify_password("correct horse battery", "not a hash"));
        assert!(!verify_password("correct horse battery", ""));
    }
}
