//! The cryptography of the `untrusted` extension (encrypted backup to a peer that must
//! learn nothing): what read-write peers encrypt before an untrusted peer sees it.
//!
//! Everything derives from one secret, `enc` = HMAC-SHA256(read-only key, label), which
//! read-write and read-only peers hold and untrusted peers never get (they hold only their
//! own level's key, to authenticate):
//!
//! - a record's **file ID** (`untrusted.id`, 128 bits): HMAC(enc, "id" ‖ record UUID), stable
//!   for the record's life and unrelated to its name;
//! - a content's **file key** (`untrusted.key`: AES-128 key ‖ 128-bit IV): HMAC(enc,
//!   "content" ‖ plaintext SHA-256). Derived rather than drawn at random so that every
//!   read-write peer produces the same ciphertext for the same contents (`untrusted.md`
//!   wants them "predetermined so that all peers agree"); the ciphertext is AES-128-CTR of
//!   the contents, the same length, so ranges map one to one;
//! - the **metadata** (the whole plaintext `database.update`: path, times, mode, plaintext
//!   hash) sealed with AES-128-CTR under HMAC(enc, "meta"), the IV being HMAC(enc, "meta iv"
//!   ‖ body) (deterministic, so re-sending a record produces the same bytes). Integrity comes
//!   from the read-write RSA signature over the message that carries it.
//!
//! Equal contents give equal ciphertexts (convergent encryption): an untrusted peer can see
//! that two files are identical, never what they contain; without `enc` nobody can confirm
//! a guess.

use aws_lc_rs::cipher::{EncryptionContext, StreamingEncryptingKey, UnboundCipherKey, AES_128};
use aws_lc_rs::iv::FixedLength;
use clearskies_protocol::{base64, RecordUuid, SecretKey, Sha256Hash};
use hmac::Mac;

/// A cipher operation failed (only on a library failure or malformed input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("untrusted encryption failed: {0}")]
pub struct CryptError(pub &'static str);

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn split(b: [u8; 32]) -> ([u8; 16], [u8; 16]) {
    let mut key = [0u8; 16];
    let mut iv = [0u8; 16];
    key.copy_from_slice(&b[..16]);
    iv.copy_from_slice(&b[16..]);
    (key, iv)
}

/// A share's untrusted secrets.
#[derive(Clone)]
pub struct UntrustedKeys {
    enc: [u8; 32],
}

impl std::fmt::Debug for UntrustedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UntrustedKeys(..)")
    }
}

impl UntrustedKeys {
    /// The secrets derived from the share's read-only key.
    pub fn from_read_only_key(key: &SecretKey) -> Self {
        UntrustedKeys { enc: hmac(key.as_bytes(), &[b"clearskies untrusted v1"]) }
    }

    /// The record's stable file ID.
    pub fn file_id(&self, uuid: &RecordUuid) -> [u8; 16] {
        split(hmac(&self.enc, &[b"id", &uuid.0])).0
    }

    /// The file key (AES-128 key, IV) of contents with this plaintext hash.
    pub fn file_key(&self, plaintext: &Sha256Hash) -> ([u8; 16], [u8; 16]) {
        split(hmac(&self.enc, &[b"content", &plaintext.0]))
    }

    /// A keystream positioned at `offset` of the contents with this plaintext hash: applying
    /// it encrypts and decrypts alike.
    pub fn content_stream(&self, plaintext: &Sha256Hash, offset: u64) -> Result<Ctr, CryptError> {
        let (key, iv) = self.file_key(plaintext);
        Ctr::new(&key, iv, offset)
    }

    /// Seals a plaintext `database.update` body: base64 of IV ‖ ciphertext.
    pub fn seal(&self, body: &[u8]) -> Result<String, CryptError> {
        let key = split(hmac(&self.enc, &[b"meta"])).0;
        let iv = split(hmac(&self.enc, &[b"meta iv", body])).0;
        let mut sealed = body.to_vec();
        Ctr::new(&key, iv, 0)?.apply(&mut sealed)?;
        let mut out = iv.to_vec();
        out.extend_from_slice(&sealed);
        Ok(base64::encode(&out))
    }

    /// Opens what [`UntrustedKeys::seal`] made; `None` if it is not base64 of at least an IV.
    pub fn open(&self, sealed: &str) -> Option<Vec<u8>> {
        let raw = base64::decode(sealed.as_bytes())?;
        let (iv, data) = raw.split_at_checked(16)?;
        let key = split(hmac(&self.enc, &[b"meta"])).0;
        let mut body = data.to_vec();
        Ctr::new(&key, iv.try_into().ok()?, 0).ok()?.apply(&mut body).ok()?;
        Some(body)
    }
}

/// The value field that carries a record's sealed plaintext `database.update`.
pub const SEALED: &str = "untrusted";

impl UntrustedKeys {
    /// What an untrusted peer gets for `r`: a `database.update` for `/<file ID>` with the
    /// ciphertext's size and `cipher` hash (files; `None` for directories and tombstones),
    /// the same writer, revision, time and clock (so its catch-up works as for any peer),
    /// and the whole plaintext update sealed in `value.untrusted`.
    pub fn encrypt_record(
        &self,
        r: &crate::record::Record,
        cipher: Option<Sha256Hash>,
    ) -> Result<clearskies_protocol::message::database::Update, CryptError> {
        let plain = clearskies_protocol::message::Message::from(r.to_update()).encode();
        let sealed = self.seal(&plain)?;
        let id = self.file_id(&r.uuid);
        let file = r.kind == crate::record::EntryKind::File;
        let value = serde_json::json!({
            "size": if file { r.size.map_or(serde_json::Value::Null, serde_json::Value::from) } else { serde_json::Value::Null },
            "sha256": cipher.map_or(serde_json::Value::Null, |c| serde_json::Value::from(c.to_string())),
            SEALED: sealed,
        });
        Ok(clearskies_protocol::message::database::Update {
            key: format!("/{}", hex::encode(id)),
            value,
            uuid: RecordUuid(id),
            last_updated_by: r.last_updated_by,
            last_updated_rev: r.last_updated_rev,
            update_time: r.update_time,
            vector_clock: r.vector_clock.clone(),
            deleted: r.deleted,
        })
    }

    /// The plaintext record inside an encrypted one, and the ciphertext hash of its
    /// contents; `Err` if it does not open or is not what it claims (its ID must be the
    /// record's file ID, its writer and revision the same).
    pub fn decrypt_record(
        &self,
        u: &clearskies_protocol::message::database::Update,
    ) -> Result<(crate::record::Record, Option<Sha256Hash>), String> {
        let sealed = u.value.get(SEALED).and_then(serde_json::Value::as_str).ok_or("no sealed record")?;
        let body = self.open(sealed).ok_or("the sealed record is not base64")?;
        let clearskies_protocol::message::Message::DatabaseUpdate(inner) =
            clearskies_protocol::message::Message::decode(&body).map_err(|_| "the sealed record does not open")?
        else {
            return Err("the sealed record is not a database.update".into());
        };
        let r = crate::record::Record::from_update(&inner)
            .map_err(|e| format!("sealed record: {e}"))?
            .ok_or("the sealed record is not a file or directory")?;
        let same = u.key == format!("/{}", hex::encode(self.file_id(&r.uuid)))
            && u.last_updated_by == r.last_updated_by
            && u.last_updated_rev == r.last_updated_rev
            && u.deleted == r.deleted;
        if !same {
            return Err("the sealed record does not match its envelope".into());
        }
        let cipher = match u.value.get("sha256") {
            Some(serde_json::Value::String(s)) => Some(s.parse().map_err(|_| "bad ciphertext hash")?),
            _ => None,
        };
        Ok((r, cipher))
    }

    /// The SHA-256 of the ciphertext of `file` (plaintext contents `plain`), read through.
    pub fn cipher_hash(&self, file: &mut impl std::io::Read, plain: &Sha256Hash) -> std::io::Result<Sha256Hash> {
        use sha2::Digest;
        let mut ctr = self.content_stream(plain, 0).map_err(std::io::Error::other)?;
        let mut h = sha2::Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                return Ok(Sha256Hash(h.finalize().into()));
            }
            ctr.apply(&mut buf[..n]).map_err(std::io::Error::other)?;
            h.update(&buf[..n]);
        }
    }
}

/// An AES-128-CTR keystream from some offset on (the counter is the IV as a big-endian
/// 128-bit number, plus the block index, as OpenSSL's CTR mode counts).
pub struct Ctr {
    key: StreamingEncryptingKey,
    out: Vec<u8>,
}

impl std::fmt::Debug for Ctr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ctr(..)")
    }
}

impl Ctr {
    /// The keystream of `key`/`iv`, from byte `offset` on.
    pub fn new(key: &[u8; 16], iv: [u8; 16], offset: u64) -> Result<Self, CryptError> {
        let counter = u128::from_be_bytes(iv).wrapping_add(u128::from(offset / 16));
        let unbound = UnboundCipherKey::new(&AES_128, key).map_err(|_| CryptError("bad key"))?;
        let context = EncryptionContext::Iv128(FixedLength::from(counter.to_be_bytes()));
        let key = StreamingEncryptingKey::less_safe_ctr(unbound, context).map_err(|_| CryptError("no CTR mode"))?;
        let mut ctr = Ctr { key, out: Vec::new() };
        let skip = usize::try_from(offset % 16).unwrap_or(0);
        if skip > 0 {
            ctr.apply(&mut [0u8; 16][..skip])?;
        }
        Ok(ctr)
    }

    /// XORs the next `buf.len()` keystream bytes into `buf`.
    pub fn apply(&mut self, buf: &mut [u8]) -> Result<(), CryptError> {
        self.out.resize(buf.len() + 16, 0);
        let update = self.key.update(buf, &mut self.out).map_err(|_| CryptError("CTR update"))?;
        let written = update.written();
        if written.len() != buf.len() {
            return Err(CryptError("CTR wrote a different length"));
        }
        buf.copy_from_slice(written);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> UntrustedKeys {
        UntrustedKeys::from_read_only_key(&SecretKey([5; 32]))
    }

    #[test]
    fn ctr_matches_the_nist_vector_and_seeks() {
        // NIST SP 800-38A F.5.1, CTR-AES128.Encrypt, first two blocks.
        let key: [u8; 16] = hex::decode("2b7e151628aed2a6abf7158809cf4f3c").unwrap().try_into().unwrap();
        let iv: [u8; 16] = hex::decode("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff").unwrap().try_into().unwrap();
        let mut data = hex::decode("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51").unwrap();
        Ctr::new(&key, iv, 0).unwrap().apply(&mut data).unwrap();
        assert_eq!(hex::encode(&data), "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff");

        // Any offset, in any pieces, gives the same bytes as one pass from the start.
        let plain: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut whole = plain.clone();
        Ctr::new(&key, iv, 0).unwrap().apply(&mut whole).unwrap();
        for offset in [1usize, 15, 16, 17, 333, 999] {
            let mut tail = plain[offset..].to_vec();
            let mut c = Ctr::new(&key, iv, offset as u64).unwrap();
            let cut = 7.min(tail.len());
            let (a, b) = tail.split_at_mut(cut);
            c.apply(a).unwrap();
            c.apply(b).unwrap();
            assert_eq!(tail, whole[offset..], "offset {offset}");
        }
        // The counter carries across all 128 bits.
        let mut a = [0u8; 32];
        Ctr::new(&key, [0xff; 16], 0).unwrap().apply(&mut a).unwrap();
        let mut b = [0u8; 16];
        Ctr::new(&key, [0; 16], 0).unwrap().apply(&mut b).unwrap();
        assert_eq!(a[16..], b);
    }

    #[test]
    fn ids_keys_and_sealed_metadata() {
        let k = keys();
        let other = UntrustedKeys::from_read_only_key(&SecretKey([6; 32]));
        let uuid = RecordUuid([1; 16]);
        assert_eq!(k.file_id(&uuid), k.file_id(&uuid));
        assert_ne!(k.file_id(&uuid), k.file_id(&RecordUuid([2; 16])));
        assert_ne!(k.file_id(&uuid), other.file_id(&uuid));
        let sha = Sha256Hash([9; 32]);
        assert_ne!(k.file_key(&sha), other.file_key(&sha));

        let body = br#"{"type":"database.update","key":"/photos/secret name.jpg"}"#;
        let sealed = k.seal(body).unwrap();
        assert_eq!(sealed, k.seal(body).unwrap(), "deterministic");
        assert!(!sealed.contains("secret"));
        assert_eq!(k.open(&sealed).unwrap(), body);
        assert_ne!(other.open(&sealed).unwrap(), body);
        assert_eq!(k.open("not base64!"), None);
        assert_eq!(k.open("AAAA"), None, "shorter than an IV");
    }

    #[test]
    fn records_round_trip_through_encryption_and_hide_everything() {
        let k = keys();
        let mut r = crate::record::tests_support::file("/photos/holiday in Rome.jpg", b"contents");
        let cipher = k.cipher_hash(&mut &b"contents"[..], r.sha256.as_ref().unwrap()).unwrap();
        let e = k.encrypt_record(&r, Some(cipher)).unwrap();
        let text = clearskies_protocol::message::Message::from(e.clone()).encode();
        let text = String::from_utf8(text).unwrap();
        assert!(!text.contains("Rome") && !text.contains(&r.sha256.unwrap().to_string()), "{text}");
        assert!(text.contains(&cipher.to_string()));
        let (back, c) = k.decrypt_record(&e).unwrap();
        assert_eq!((back.to_update(), c), (r.to_update(), Some(cipher)));
        // Another share's keys, or a tampered envelope, do not open it.
        let other = UntrustedKeys::from_read_only_key(&SecretKey([6; 32]));
        assert!(other.decrypt_record(&e).is_err());
        let mut moved = e.clone();
        moved.last_updated_rev += 1;
        assert!(k.decrypt_record(&moved).is_err());
        // Ciphertext is the same length and decrypts back.
        let mut data = b"contents".to_vec();
        k.content_stream(r.sha256.as_ref().unwrap(), 0).unwrap().apply(&mut data).unwrap();
        assert_ne!(data, b"contents");
        k.content_stream(r.sha256.as_ref().unwrap(), 0).unwrap().apply(&mut data).unwrap();
        assert_eq!(data, b"contents");
        r.deleted = true;
        let tomb = k.encrypt_record(&r, None).unwrap();
        assert!(tomb.deleted && tomb.value["sha256"].is_null());
    }
}
