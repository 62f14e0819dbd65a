//! The RSA-2048 key pairs of a share's access levels (`core.md` "Cryptographic Keys"), with
//! aws-lc-rs: generation from the OS CSPRNG, PEM encoding for `core.keys`, and the
//! PKCS#1 v1.5 SHA-256 signatures of `s`/`$` frames (base64 of the signature over the body
//! bytes exactly as sent).
//!
//! Private keys are PKCS#8 PEM (`BEGIN PRIVATE KEY`, what aws-lc-rs writes); PKCS#1
//! (`BEGIN RSA PRIVATE KEY`, `core.md`'s example) is accepted too. Public keys are PKCS#1
//! PEM (`BEGIN RSA PUBLIC KEY`, as in `core.md`); SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`)
//! is accepted.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, KeyPair as _, UnparsedPublicKey};
use clearskies_protocol::base64;

/// A key or signature that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RsaError {
    /// Key generation or signing failed in the library.
    #[error("RSA operation failed")]
    Failed,
    /// The PEM text is not an RSA key we accept.
    #[error("not a usable RSA key: {0}")]
    BadKey(String),
}

/// A signing key (the private half; the public half derives from it).
pub struct SigningKey {
    pair: KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

/// A verifying key: PKCS#1 `RSAPublicKey` DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    der: Vec<u8>,
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The label and DER of a PEM block (the first one).
fn unpem(text: &str) -> Result<(String, Vec<u8>), RsaError> {
    let bad = |why: &str| RsaError::BadKey(why.to_owned());
    let begin = text.find("-----BEGIN ").ok_or_else(|| bad("no PEM header"))?;
    let rest = &text[begin + 11..];
    let label_end = rest.find("-----").ok_or_else(|| bad("broken PEM header"))?;
    let label = rest[..label_end].to_owned();
    let body = &rest[label_end + 5..];
    let end = body.find(&format!("-----END {label}-----")).ok_or_else(|| bad("no PEM footer"))?;
    let der = base64::decode(&body.as_bytes()[..end]).ok_or_else(|| bad("PEM body is not base64"))?;
    Ok((label, der))
}

impl SigningKey {
    /// A new RSA-2048 key pair (aws-lc-rs draws from the OS CSPRNG).
    pub fn generate() -> Result<Self, RsaError> {
        KeyPair::generate(KeySize::Rsa2048).map(|pair| SigningKey { pair }).map_err(|_| RsaError::Failed)
    }

    /// Reads a PEM private key (PKCS#8 or PKCS#1) of 2048 to 8192 bits.
    pub fn from_pem(text: &str) -> Result<Self, RsaError> {
        let (label, der) = unpem(text)?;
        let pair = match label.as_str() {
            "PRIVATE KEY" => KeyPair::from_pkcs8(&der),
            "RSA PRIVATE KEY" => KeyPair::from_der(&der),
            other => return Err(RsaError::BadKey(format!("unexpected PEM label {other:?}"))),
        }
        .map_err(|e| RsaError::BadKey(e.to_string()))?;
        Ok(SigningKey { pair })
    }

    /// PKCS#8 PEM.
    pub fn to_pem(&self) -> Result<String, RsaError> {
        let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(&self.pair).map_err(|_| RsaError::Failed)?;
        Ok(pem("PRIVATE KEY", der.as_ref()))
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey { der: self.pair.public_key().as_ref().to_vec() }
    }

    /// The base64 PKCS#1 v1.5 SHA-256 signature of `body`.
    pub fn sign(&self, body: &[u8]) -> Result<String, RsaError> {
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.pair.sign(&signature::RSA_PKCS1_SHA256, &rng, body, &mut sig).map_err(|_| RsaError::Failed)?;
        Ok(base64::encode(&sig))
    }
}

impl VerifyingKey {
    /// Reads a PEM public key (PKCS#1 `RSA PUBLIC KEY` or SPKI `PUBLIC KEY`). Verification
    /// accepts only 2048- to 8192-bit keys.
    pub fn from_pem(text: &str) -> Result<Self, RsaError> {
        let (label, der) = unpem(text)?;
        if label != "RSA PUBLIC KEY" && label != "PUBLIC KEY" {
            return Err(RsaError::BadKey(format!("unexpected PEM label {label:?}")));
        }
        let key = aws_lc_rs::rsa::PublicKey::from_der(&der).map_err(|e| RsaError::BadKey(e.to_string()))?;
        Ok(VerifyingKey { der: key.as_ref().to_vec() })
    }

    /// PKCS#1 PEM.
    pub fn to_pem(&self) -> String {
        pem("RSA PUBLIC KEY", &self.der)
    }

    /// Whether `signature` (base64) is this key's signature of `body`.
    pub fn verify(&self, body: &[u8], signature: &[u8]) -> bool {
        let Some(sig) = base64::decode(signature) else { return false };
        UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &self.der).verify(body, &sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_pem_round_trips() {
        let key = SigningKey::generate().unwrap();
        let public = key.verifying_key();
        let sig = key.sign(b"{\"type\":\"database.update\"}").unwrap();
        assert!(public.verify(b"{\"type\":\"database.update\"}", sig.as_bytes()));
        assert!(!public.verify(b"{\"type\":\"database.update\" }", sig.as_bytes()), "another body");
        assert!(!public.verify(b"{\"type\":\"database.update\"}", b"AAAA"), "another signature");
        assert!(!public.verify(b"{}", b"not base64!"));

        let private_pem = key.to_pem().unwrap();
        assert!(private_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{private_pem}");
        let again = SigningKey::from_pem(&private_pem).unwrap();
        assert_eq!(again.verifying_key(), public);
        let public_pem = public.to_pem();
        assert!(public_pem.starts_with("-----BEGIN RSA PUBLIC KEY-----\n"), "{public_pem}");
        assert_eq!(VerifyingKey::from_pem(&public_pem).unwrap(), public);

        // Another key's signature does not verify.
        let other = SigningKey::generate().unwrap();
        assert!(!public.verify(b"x", other.sign(b"x").unwrap().as_bytes()));
    }

    #[test]
    fn bad_pem_is_refused() {
        assert!(VerifyingKey::from_pem("hello").is_err());
        assert!(VerifyingKey::from_pem("-----BEGIN RSA PUBLIC KEY-----\n!!!\n-----END RSA PUBLIC KEY-----\n").is_err());
        assert!(SigningKey::from_pem("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n").is_err());
        let public = SigningKey::generate().unwrap().verifying_key().to_pem();
        assert!(SigningKey::from_pem(&public).is_err());
    }
}
