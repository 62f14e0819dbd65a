//! Who may do what on a connection, decided once when its session comes up: whether
//! updates go signed, with which keys, and whether what we send is encrypted for an
//! untrusted peer. Pure: the levels and the keys in, the policy (or why the connection is
//! refused) out.

use std::sync::Arc;

use clearskies_index::rsa::{SigningKey, VerifyingKey};
use clearskies_index::untrusted::UntrustedKeys;
use clearskies_protocol::message::core::AccessLevel;

use crate::shares::table::KeyMaterial;

/// How a session's traffic is protected.
#[derive(Debug, Clone, Default)]
pub struct SessionPolicy {
    /// Every `database.update` goes signed (a read-only peer is on the connection, or we
    /// are one).
    pub signed: bool,
    /// The read-write private key to sign with (read-write shares with a read-only peer).
    pub sign: Option<Arc<SigningKey>>,
    /// The read-write public key updates are checked with (signed connections).
    pub verify: Option<Arc<VerifyingKey>>,
    /// The peer holds only ciphertext: we encrypt what we send and decrypt what it relays.
    pub crypt: Option<Arc<UntrustedKeys>>,
}

/// Why a session is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// A signed connection without the read-write public key to check updates with.
    #[error("no read-write public key for a read-only connection")]
    NoVerifyingKey,
    /// An untrusted peer, and we are not a read-write daemon with the untrusted keys.
    #[error("only read-write daemons sync with untrusted peers")]
    UntrustedNeedsReadWrite,
}

/// The policy for a session of a share we hold at `ours` with a peer at `theirs` (a dialled
/// connection has our level, an accepted one the level of the key or code the peer used).
pub fn session_policy(
    ours: AccessLevel,
    theirs: AccessLevel,
    keys: Option<&KeyMaterial>,
) -> Result<SessionPolicy, Refusal> {
    // Updates go signed unless both sides are read-write.
    let signed = ours != AccessLevel::ReadWrite || theirs != AccessLevel::ReadWrite;
    let (sign, verify) = match keys {
        Some(m) if signed => (m.sign.clone(), m.verify.clone()),
        _ => (None, None),
    };
    if signed && verify.is_none() {
        return Err(Refusal::NoVerifyingKey);
    }
    // Only read-write daemons feed and restore from untrusted peers.
    let crypt = if theirs == AccessLevel::Untrusted && ours != AccessLevel::Untrusted {
        let keys = keys.and_then(|m| m.untrusted.clone()).filter(|_| ours == AccessLevel::ReadWrite);
        Some(keys.ok_or(Refusal::UntrustedNeedsReadWrite)?)
    } else {
        None
    };
    Ok(SessionPolicy { signed, sign, verify, crypt })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use clearskies_protocol::{SecretKey, Sha256Hash};

    use super::*;
    use crate::share::registry::ShareKeys;

    use AccessLevel::{ReadOnly, ReadWrite, Untrusted};

    fn material(sign: bool, verify: bool, untrusted: bool) -> KeyMaterial {
        let key = SigningKey::generate().expect("RSA key");
        KeyMaterial {
            keys: ShareKeys {
                key_id: Sha256Hash([1; 32]),
                key: SecretKey([2; 32]),
                levels: vec![],
                untrusted_seed: None,
                generation: 0,
            },
            records: BTreeMap::new(),
            verify: verify.then(|| Arc::new(key.verifying_key())),
            sign: sign.then(|| Arc::new(key)),
            untrusted: untrusted.then(|| Arc::new(UntrustedKeys::from_read_only_key(&SecretKey([3; 32])))),
        }
    }

    #[test]
    fn read_write_peers_sync_unsigned_and_in_the_clear() {
        let m = material(true, true, true);
        let p = session_policy(ReadWrite, ReadWrite, Some(&m)).expect("allowed");
        assert!(!p.signed && p.sign.is_none() && p.verify.is_none() && p.crypt.is_none());
    }

    #[test]
    fn a_read_only_side_makes_every_update_signed() {
        let m = material(true, true, true);
        let p = session_policy(ReadWrite, ReadOnly, Some(&m)).expect("allowed");
        assert!(p.signed && p.sign.is_some() && p.verify.is_some() && p.crypt.is_none());
        // We are the read-only one: we check, we cannot sign.
        let m = material(false, true, false);
        let p = session_policy(ReadOnly, ReadWrite, Some(&m)).expect("allowed");
        assert!(p.signed && p.sign.is_none() && p.verify.is_some());
        assert_eq!(session_policy(ReadOnly, ReadWrite, None).unwrap_err(), Refusal::NoVerifyingKey);
    }

    #[test]
    fn only_a_read_write_daemon_with_the_untrusted_keys_feeds_an_untrusted_peer() {
        let m = material(true, true, true);
        let p = session_policy(ReadWrite, Untrusted, Some(&m)).expect("allowed");
        assert!(p.signed && p.crypt.is_some());
        let m = material(false, true, true);
        assert_eq!(session_policy(ReadOnly, Untrusted, Some(&m)).unwrap_err(), Refusal::UntrustedNeedsReadWrite);
        let m = material(true, true, false);
        assert_eq!(session_policy(ReadWrite, Untrusted, Some(&m)).unwrap_err(), Refusal::UntrustedNeedsReadWrite);
        // The untrusted daemon itself talks to a read-write peer: signed, nothing to encrypt.
        let m = material(false, true, false);
        let p = session_policy(Untrusted, ReadWrite, Some(&m)).expect("allowed");
        assert!(p.signed && p.crypt.is_none());
    }
}
