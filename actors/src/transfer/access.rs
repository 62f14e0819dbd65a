//! What a peer connection may be served: the one place that decides it.
//!
//! A connection's [`Access`] is fixed when it comes up, from the share's level and the level
//! of the key or code that opened the connection, and every path that gives a peer anything
//! of the share asks it: `directory.get` (whole or in ranges), `rsync.signature` (deltas we
//! compute), `rsync.patch` (deltas we take), `untrusted.verify` (proofs), and the records a
//! `database.get_updates` or a change sends (see `share::actor`).
//!
//! An untrusted peer (encrypted backup) can only ever receive ciphertext, addressed by the
//! ciphertext's hash: a `directory.get` name is looked up only among ciphertext hashes, never
//! among the plaintext ones, so a plaintext hash (existing or not) is answered exactly as a
//! random one, `directory.not_present`. No deltas are computed for it, taken from it, or
//! asked of it (the `rsync` extension is not offered on such a connection, and its messages
//! go unanswered if sent anyway), and it proves nothing.

use std::sync::Arc;

use clearskies_index::store::{ShareStore, StoreError};
use clearskies_index::untrusted::UntrustedKeys;
use clearskies_protocol::message::core::AccessLevel;
use clearskies_protocol::Sha256Hash;

/// What a peer connection may be served.
#[derive(Debug, Clone)]
pub enum Access {
    /// A read-write or read-only peer, and we hold the plaintext: contents by their SHA-256,
    /// records in the clear (signed where a read-only side is involved), deltas both ways if
    /// both sides speak `rsync`.
    Trusted {
        /// Both sides speak `rsync`.
        rsync: bool,
    },
    /// An untrusted peer, and we hold the plaintext: only ciphertext (encrypted as it is
    /// sent, with these keys), addressed by the ciphertext's hash; encrypted records; no
    /// deltas; no proofs.
    Untrusted(Arc<UntrustedKeys>),
    /// We are the untrusted peer: all we hold is ciphertext, under the names our read-write
    /// peers gave it. Served by those names, whole or in ranges, and proved on a signed
    /// challenge; no deltas (the connection is an untrusted one).
    Holder,
}

/// What a request names, once [`Access::contents`] has looked it up.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The contents to open, by the hash the index knows them by.
    pub stored: Sha256Hash,
    /// Encrypt them as they are sent (with these keys; `stored` is the plaintext hash).
    pub encrypt: Option<Arc<UntrustedKeys>>,
}

impl Access {
    /// The access of a connection of a share we hold at `ours`: `crypt` is what
    /// `access::policy` gives a connection whose peer is untrusted while we hold the
    /// plaintext (it refuses untrusted peers on read-only shares), `rsync` whether both sides speak
    /// the extension.
    pub fn of(ours: AccessLevel, crypt: Option<Arc<UntrustedKeys>>, rsync: bool) -> Access {
        match crypt {
            Some(keys) => Access::Untrusted(keys),
            None if ours == AccessLevel::Untrusted => Access::Holder,
            None => Access::Trusted { rsync },
        }
    }

    /// Deltas may be computed for the peer, asked of it and taken from it.
    pub fn rsync(&self) -> bool {
        matches!(self, Access::Trusted { rsync: true })
    }

    /// The peer is untrusted and we hold the plaintext: what we send it is encrypted with
    /// these keys, and what it sends us is ciphertext.
    pub fn crypt(&self) -> Option<&Arc<UntrustedKeys>> {
        match self {
            Access::Untrusted(keys) => Some(keys),
            _ => None,
        }
    }

    /// The peer may ask us to prove we store a file (`untrusted.verify`): only when we are
    /// the untrusted peer.
    pub fn may_prove(&self) -> bool {
        matches!(self, Access::Holder)
    }

    /// What contents a request for `name` may be answered with: `None` for anything the
    /// peer may not have, whether it exists or not. For an untrusted peer `name` is looked
    /// up only as a ciphertext hash (one index read, the same for a plaintext hash, a
    /// ciphertext hash we do not know and a random one).
    pub fn contents(&self, store: &ShareStore, name: &Sha256Hash) -> Result<Option<Lookup>, StoreError> {
        match self {
            Access::Trusted { .. } | Access::Holder => Ok(Some(Lookup { stored: *name, encrypt: None })),
            Access::Untrusted(keys) => {
                Ok(store.plain_of(name)?.map(|plain| Lookup { stored: plain, encrypt: Some(keys.clone()) }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clearskies_protocol::SecretKey;

    #[test]
    fn only_trusted_connections_with_rsync_do_deltas_and_only_holders_prove() {
        let keys = Arc::new(UntrustedKeys::from_read_only_key(&SecretKey([5; 32])));
        let untrusted = Access::of(AccessLevel::ReadWrite, Some(keys), true);
        assert!(!untrusted.rsync() && !untrusted.may_prove() && untrusted.crypt().is_some());
        let holder = Access::of(AccessLevel::Untrusted, None, true);
        assert!(!holder.rsync() && holder.may_prove() && holder.crypt().is_none());
        let trusted = Access::of(AccessLevel::ReadWrite, None, true);
        assert!(trusted.rsync() && !trusted.may_prove() && trusted.crypt().is_none());
        assert!(!Access::of(AccessLevel::ReadOnly, None, false).rsync());
    }

    #[test]
    fn an_untrusted_peer_names_only_ciphertext() {
        let dir = tempfile::tempdir().unwrap();
        let db = clearskies_index::store::Store::open(dir.path()).unwrap();
        db.create_share("s").unwrap();
        let store = db.share("s").unwrap();
        let (plain, cipher, random) = (Sha256Hash([1; 32]), Sha256Hash([2; 32]), Sha256Hash([3; 32]));
        store.put_cipher(&plain, &cipher).unwrap();
        let keys = Arc::new(UntrustedKeys::from_read_only_key(&SecretKey([5; 32])));
        let untrusted = Access::of(AccessLevel::ReadWrite, Some(keys), false);
        // A plaintext hash is nothing to it, exactly like a random one.
        assert!(untrusted.contents(&store, &plain).unwrap().is_none());
        assert!(untrusted.contents(&store, &random).unwrap().is_none());
        let found = untrusted.contents(&store, &cipher).unwrap().unwrap();
        assert_eq!(found.stored, plain);
        assert!(found.encrypt.is_some(), "served encrypted");
        // Trusted peers and our own read-write peers (we the holder) name contents as stored.
        for access in [Access::of(AccessLevel::ReadWrite, None, true), Access::of(AccessLevel::Untrusted, None, false)]
        {
            let found = access.contents(&store, &plain).unwrap().unwrap();
            assert!(found.stored == plain && found.encrypt.is_none());
        }
    }
}
