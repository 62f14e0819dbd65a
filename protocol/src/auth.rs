//! SRP-6a authentication inside TLS, bound to the TLS session (`docs/protocol-decisions.md`,
//! "Secure channel").
//!
//! rustls has no TLS-SRP, so after the TLS 1.3 handshake the peers run SRP-6a (RFC 5054
//! 2048-bit group, SHA-256) over `.rs.clearskies.srp.*` messages:
//!
//! ```text
//! client                                   server
//!   hello {username, a = A}        ──►
//!                                  ◄──     challenge {salt, b = B}
//!   proof {m1}                     ──►
//!                                  ◄──     verify {m2}   (or error, then close)
//! ```
//!
//! K is SRP's shared key. The proofs are `M1 = HMAC-SHA256(K, "clearskies-srp client" ‖ E ‖ A ‖
//! B)` and `M2 = HMAC-SHA256(K, "clearskies-srp server" ‖ E ‖ A ‖ B ‖ M1)`, where E is 32 bytes
//! of TLS exporter output with label [`EXPORTER_LABEL`] and no context. A relay in the middle
//! holds two different TLS sessions, so its E differs on each side and the proofs fail.
//!
//! The server answers an unknown username exactly like a known one: a salt and verifier
//! derived from a server secret and the username, so repeated probes see the same salt, and
//! the proof then fails like a wrong password. The caller rate-limits attempts.
//!
//! Pure: the random exponents come from the caller.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use srp::client::SrpClient;
use srp::groups::G_2048;
use srp::server::SrpServer;

use crate::message::srp::{Challenge, Hello, Proof, Verify};

/// TLS exporter label for the channel binding (RFC 5705 / RFC 8446 §7.5).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-clearskies-srp-v1";
/// Bytes of exporter output used.
pub const EXPORTER_LEN: usize = 32;
/// Bytes of salt in a verifier record.
pub const SALT_LEN: usize = 16;
/// Largest public value accepted, in bytes (the 2048-bit group). Bounds the big-number work a
/// peer can ask of us.
const MAX_PUBLIC: usize = 256;

type HmacSha256 = Hmac<Sha256>;

/// Why authentication failed. Any of these closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A field is not hex, or a value is out of range (such as A ≡ 0 mod N).
    #[error("malformed authentication message")]
    Malformed,
    /// The proof does not match: wrong password, unknown ID, or a relay in the middle.
    #[error("authentication failed")]
    Failed,
}

/// What the server stores to check a password without keeping it: salt and verifier.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierRecord {
    /// Salt.
    pub salt: [u8; SALT_LEN],
    /// v = g^x mod N.
    pub verifier: Vec<u8>,
}

impl std::fmt::Debug for VerifierRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierRecord").finish_non_exhaustive()
    }
}

/// Whether `v` (big-endian) can be a verifier of the SRP group in use: 1 < v < N. A peer
/// that spreads a code's verifier (`code_spread`) could otherwise send 0 or 1, for which
/// the server's side of SRP degenerates.
pub fn is_valid_verifier(v: &[u8]) -> bool {
    let n = G_2048.n.to_bytes_be();
    let first = v.iter().position(|&b| b != 0).unwrap_or(v.len());
    let v = v.get(first..).unwrap_or_default();
    match v.len().cmp(&n.len()) {
        std::cmp::Ordering::Greater => false,
        std::cmp::Ordering::Less => v.len() > 1 || v.first().is_some_and(|&b| b > 1),
        std::cmp::Ordering::Equal => v < n.as_slice(),
    }
}

impl VerifierRecord {
    /// The record for a username and password with a (random) salt.
    pub fn new(username: &str, password: &str, salt: [u8; SALT_LEN]) -> Self {
        let verifier =
            SrpClient::<Sha256>::new(&G_2048).compute_verifier(username.as_bytes(), password.as_bytes(), &salt);
        VerifierRecord { salt, verifier }
    }

    /// A stand-in record for an unknown username, stable for a given server secret, so that
    /// the answer reveals nothing about which IDs exist.
    pub fn decoy(server_secret: &[u8; 32], username: &str) -> Self {
        let derive = |what: &[u8]| -> [u8; 32] {
            let mut mac = keyed(server_secret);
            mac.update(what);
            mac.update(username.as_bytes());
            mac.finalize().into_bytes().into()
        };
        let s = derive(b"salt");
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&s[..SALT_LEN]);
        VerifierRecord::new(username, &hex::encode(derive(b"password")), salt)
    }
}

fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length.
    <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

fn public_from_hex(s: &str) -> Result<Vec<u8>, AuthError> {
    if s.is_empty() || s.len() > 2 * MAX_PUBLIC {
        return Err(AuthError::Malformed);
    }
    hex::decode(s).map_err(|_| AuthError::Malformed)
}

fn proof(key: &[u8], role: &[u8], exporter: &[u8], a_pub: &[u8], b_pub: &[u8], m1: Option<&[u8]>) -> HmacSha256 {
    let mut mac = keyed(key);
    mac.update(role);
    mac.update(exporter);
    mac.update(&(a_pub.len() as u64).to_be_bytes());
    mac.update(a_pub);
    mac.update(&(b_pub.len() as u64).to_be_bytes());
    mac.update(b_pub);
    if let Some(m1) = m1 {
        mac.update(m1);
    }
    mac
}

/// A key both sides derive, for callers that want one (e.g. to name the session in logs).
fn session_id(key: &[u8]) -> [u8; 8] {
    let d = Sha256::digest(key);
    let mut id = [0u8; 8];
    id.copy_from_slice(&d[..8]);
    id
}

/// Client side, before the challenge.
pub struct ClientAuth {
    a: [u8; 64],
    a_pub: Vec<u8>,
    username: String,
    password: String,
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuth").field("username", &self.username).finish_non_exhaustive()
    }
}

/// Client side, after sending its proof.
pub struct ClientAwaitVerify {
    expected_m2: HmacSha256,
    id: [u8; 8],
}

impl std::fmt::Debug for ClientAwaitVerify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAwaitVerify").finish_non_exhaustive()
    }
}

impl ClientAuth {
    /// Starts authentication as `username`/`password`; `a` must come from a CSPRNG.
    pub fn new(username: &str, password: &str, a: [u8; 64]) -> (Self, Hello) {
        let a_pub = SrpClient::<Sha256>::new(&G_2048).compute_public_ephemeral(&a);
        let hello = Hello { username: username.to_owned(), a: hex::encode(&a_pub) };
        (ClientAuth { a, a_pub, username: username.to_owned(), password: password.to_owned() }, hello)
    }

    /// Handles the server's challenge; `exporter` is this TLS session's exporter output.
    pub fn handle_challenge(self, ch: &Challenge, exporter: &[u8]) -> Result<(ClientAwaitVerify, Proof), AuthError> {
        let salt = hex::decode(&ch.salt).map_err(|_| AuthError::Malformed)?;
        if salt.len() > 64 {
            return Err(AuthError::Malformed);
        }
        let b_pub = public_from_hex(&ch.b)?;
        let verifier = SrpClient::<Sha256>::new(&G_2048)
            .process_reply(&self.a, self.username.as_bytes(), self.password.as_bytes(), &salt, &b_pub)
            .map_err(|_| AuthError::Malformed)?;
        let key = verifier.key();
        let m1 = proof(key, b"clearskies-srp client", exporter, &self.a_pub, &b_pub, None).finalize().into_bytes();
        let expected_m2 = proof(key, b"clearskies-srp server", exporter, &self.a_pub, &b_pub, Some(&m1));
        Ok((ClientAwaitVerify { expected_m2, id: session_id(key) }, Proof { m1: hex::encode(m1) }))
    }
}

impl ClientAwaitVerify {
    /// Checks the server's proof. On success the server knew the password and sits on the
    /// other end of this very TLS session. Returns a short public session ID for logs.
    pub fn handle_verify(self, v: &Verify) -> Result<[u8; 8], AuthError> {
        let m2 = hex::decode(&v.m2).map_err(|_| AuthError::Malformed)?;
        self.expected_m2.verify_slice(&m2).map_err(|_| AuthError::Failed)?;
        Ok(self.id)
    }
}

/// Server side, after answering the hello.
pub struct ServerAuth {
    a_pub: Vec<u8>,
    b_pub: Vec<u8>,
    key: Vec<u8>,
}

impl std::fmt::Debug for ServerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerAuth").finish_non_exhaustive()
    }
}

impl ServerAuth {
    /// Answers a hello with the record for its username (a real one, or
    /// [`VerifierRecord::decoy`] for an unknown username); `b` must come from a CSPRNG.
    pub fn handle_hello(hello: &Hello, record: &VerifierRecord, b: [u8; 64]) -> Result<(Self, Challenge), AuthError> {
        let a_pub = public_from_hex(&hello.a)?;
        let server = SrpServer::<Sha256>::new(&G_2048);
        let b_pub = server.compute_public_ephemeral(&b, &record.verifier);
        let verifier = server.process_reply(&b, &record.verifier, &a_pub).map_err(|_| AuthError::Malformed)?;
        let challenge = Challenge { salt: hex::encode(record.salt), b: hex::encode(&b_pub) };
        Ok((ServerAuth { a_pub, b_pub, key: verifier.key().to_vec() }, challenge))
    }

    /// Checks the client's proof; on success returns our proof and a short session ID.
    pub fn handle_proof(self, p: &Proof, exporter: &[u8]) -> Result<(Verify, [u8; 8]), AuthError> {
        let m1 = hex::decode(&p.m1).map_err(|_| AuthError::Malformed)?;
        proof(&self.key, b"clearskies-srp client", exporter, &self.a_pub, &self.b_pub, None)
            .verify_slice(&m1)
            .map_err(|_| AuthError::Failed)?;
        let m2 = proof(&self.key, b"clearskies-srp server", exporter, &self.a_pub, &self.b_pub, Some(&m1))
            .finalize()
            .into_bytes();
        Ok((Verify { m2: hex::encode(m2) }, session_id(&self.key)))
    }
}

/// The username's ID part (`clearskies:1:<hex>`), if it has that form.
pub fn id_from_username(username: &str) -> Option<crate::Sha256Hash> {
    username.strip_prefix(crate::access_code::SRP_USERNAME_PREFIX)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: [u8; 32] = [7; 32];

    #[test]
    fn only_verifiers_inside_the_group_are_valid() {
        let n = G_2048.n.to_bytes_be();
        let real = VerifierRecord::new("u", "p", [3; SALT_LEN]).verifier;
        assert!(is_valid_verifier(&real));
        assert!(is_valid_verifier(&[2]) && is_valid_verifier(&[0, 0, 1, 0]));
        for bad in [vec![], vec![0], vec![1], vec![0, 0, 1], n.clone(), vec![0xff; n.len()], vec![1; n.len() + 1]] {
            assert!(!is_valid_verifier(&bad), "{bad:?}");
        }
    }

    fn run(client_pw: &str, record: &VerifierRecord, e_client: &[u8], e_server: &[u8]) -> Result<(), AuthError> {
        let (client, hello) = ClientAuth::new("clearskies:1:ab", client_pw, [1; 64]);
        let (server, challenge) = ServerAuth::handle_hello(&hello, record, [2; 64])?;
        let (client, proof) = client.handle_challenge(&challenge, e_client)?;
        let (verify, sid) = server.handle_proof(&proof, e_server)?;
        let cid = client.handle_verify(&verify)?;
        assert_eq!(sid, cid);
        Ok(())
    }

    #[test]
    fn right_password_authenticates_both_ways() {
        let record = VerifierRecord::new("clearskies:1:ab", "8899aabbccddeeff", [3; SALT_LEN]);
        assert_eq!(run("8899aabbccddeeff", &record, &E, &E), Ok(()));
    }

    #[test]
    fn wrong_password_fails() {
        let record = VerifierRecord::new("clearskies:1:ab", "8899aabbccddeeff", [3; SALT_LEN]);
        assert_eq!(run("8899aabbccddeef0", &record, &E, &E), Err(AuthError::Failed));
    }

    #[test]
    fn a_relay_with_a_different_tls_session_fails() {
        let record = VerifierRecord::new("clearskies:1:ab", "pw", [3; SALT_LEN]);
        assert_eq!(run("pw", &record, &E, &[8; 32]), Err(AuthError::Failed));
    }

    #[test]
    fn decoys_are_stable_and_fail() {
        let a = VerifierRecord::decoy(&[9; 32], "clearskies:1:ab");
        assert_eq!(a, VerifierRecord::decoy(&[9; 32], "clearskies:1:ab"));
        assert_ne!(a.salt, VerifierRecord::decoy(&[9; 32], "clearskies:1:cd").salt);
        assert_ne!(a.salt, VerifierRecord::decoy(&[8; 32], "clearskies:1:ab").salt);
        assert_eq!(run("anything", &a, &E, &E), Err(AuthError::Failed));
    }

    #[test]
    fn malformed_and_degenerate_values_are_refused() {
        let record = VerifierRecord::new("u", "p", [3; SALT_LEN]);
        for a in ["", "zz", "00", &"ff".repeat(257)] {
            let hello = Hello { username: "u".into(), a: a.to_owned() };
            assert_eq!(ServerAuth::handle_hello(&hello, &record, [2; 64]).err(), Some(AuthError::Malformed), "{a:?}");
        }
        let (client, _) = ClientAuth::new("u", "p", [1; 64]);
        let ch = Challenge { salt: "03".into(), b: "00".into() };
        assert_eq!(client.handle_challenge(&ch, &E).err(), Some(AuthError::Malformed));
    }

    #[test]
    fn usernames_carry_their_id() {
        let id = crate::Sha256Hash([5; 32]);
        assert_eq!(id_from_username(&crate::access_code::srp_username(&id)), Some(id));
        assert_eq!(id_from_username("clearskies:2:00"), None);
    }
}
