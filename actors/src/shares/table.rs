//! The table of running shares. The [`super::Shares`] registry is its only writer and
//! publishes it through a `tokio::sync::watch` channel; the other owners (access,
//! connections, the supervisor's fault injection) read it without a message round trip.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use actix::Addr;
use clearskies_index::rsa::{SigningKey, VerifyingKey};
use clearskies_index::untrusted::UntrustedKeys;
use clearskies_protocol::auth::VerifierRecord;
use clearskies_protocol::message::core::AccessLevel;
use clearskies_protocol::Sha256Hash;

use crate::share::registry::{self, RegistryError, ShareConfig, ShareKeys};
use crate::share::Share;

/// A share's keys with what is derived from them once (the SRP records are an expensive
/// computation, done on the blocking pool when the share starts).
#[derive(Debug, Clone)]
pub struct KeyMaterial {
    /// The keys as the key file holds them.
    pub keys: ShareKeys,
    /// SRP records per key ID we accept (one per level we hold a key for), with the level.
    pub records: BTreeMap<Sha256Hash, (VerifierRecord, AccessLevel)>,
    /// The read-write public key (checks updates on connections with read-only peers).
    pub verify: Option<Arc<VerifyingKey>>,
    /// The read-write private key (read-write shares: signs for read-only peers).
    pub sign: Option<Arc<SigningKey>>,
    /// The untrusted extension's secrets (read-write shares).
    pub untrusted: Option<Arc<UntrustedKeys>>,
}

impl KeyMaterial {
    /// Reads the share's key file (completing an old one) and derives the SRP records.
    /// Blocking: file I/O and one SRP verifier per level.
    pub fn load(data_dir: &Path, config: &ShareConfig) -> Result<KeyMaterial, RegistryError> {
        let keys = registry::complete_keys(data_dir, config, registry::read_keys(data_dir, &config.id)?)?;
        let records = keys
            .key_ids()
            .into_iter()
            .map(|(id, key, level)| (id, (registry::key_verifier(&id, &key), level)))
            .collect();
        let verify = keys.verifying_key().map(Arc::new);
        let sign = keys.signing_key().map(Arc::new);
        let untrusted = keys.untrusted().map(Arc::new);
        Ok(KeyMaterial { keys, records, verify, sign, untrusted })
    }
}

/// A running share: its configuration, its actor and its keys (absent if the key file could
/// not be read: the share syncs nothing with peers then, and the log says why).
#[derive(Debug, Clone)]
pub struct Running {
    /// As registered.
    pub config: ShareConfig,
    /// The `Share` actor.
    pub addr: Addr<Share>,
    /// The keys.
    pub keys: Option<Arc<KeyMaterial>>,
}

/// The running shares by ID.
#[derive(Debug, Clone, Default)]
pub struct ShareTable(BTreeMap<Sha256Hash, Running>);

/// A reader of the table.
pub type TableRx = tokio::sync::watch::Receiver<ShareTable>;

impl ShareTable {
    /// The running share `id`.
    pub fn get(&self, id: &Sha256Hash) -> Option<&Running> {
        self.0.get(id)
    }

    /// Whether share `id` runs.
    pub fn contains(&self, id: &Sha256Hash) -> bool {
        self.0.contains_key(id)
    }

    /// How many shares run.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no share runs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The running shares.
    pub fn iter(&self) -> impl Iterator<Item = &Running> {
        self.0.values()
    }

    /// The share whose root is `path` (as given, or canonical).
    pub fn by_path(&self, path: &Path) -> Option<&Running> {
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        self.0.values().find(|r| r.config.path == canonical || r.config.path == path)
    }

    /// The share, SRP record and level a key ID opens.
    pub fn key_owner(&self, id: &Sha256Hash) -> Option<(&Running, &VerifierRecord, AccessLevel)> {
        self.0.values().find_map(|r| r.keys.as_ref()?.records.get(id).map(|(record, level)| (r, record, *level)))
    }

    pub(super) fn get_mut(&mut self, id: &Sha256Hash) -> Option<&mut Running> {
        self.0.get_mut(id)
    }

    pub(super) fn insert(&mut self, running: Running) {
        self.0.insert(running.config.id, running);
    }

    pub(super) fn remove(&mut self, id: &Sha256Hash) -> Option<Running> {
        self.0.remove(id)
    }
}

/// A registered read-write share in a temporary data directory, for the owners' tests.
#[cfg(test)]
pub(crate) mod fixture {
    use super::*;

    /// The share, its index and the table it runs in (its actor is an address only).
    pub(crate) struct TestShare {
        pub(crate) store: clearskies_index::store::Store,
        pub(crate) config: ShareConfig,
        pub(crate) table: tokio::sync::watch::Sender<ShareTable>,
        pub(crate) _dirs: (tempfile::TempDir, tempfile::TempDir),
    }

    impl TestShare {
        /// A new share, running in the table.
        pub(crate) fn new() -> TestShare {
            let (data, root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let store = clearskies_index::store::Store::open(&data.path().join("db")).unwrap();
            let config = registry::create_share(&store, data.path(), root.path(), crate::share::actor::now()).unwrap();
            let keys = KeyMaterial::load(data.path(), &config).unwrap();
            let addr = actix::AsyncContext::address(&actix::Context::<Share>::new());
            let mut table = ShareTable::default();
            table.insert(Running { config: config.clone(), addr, keys: Some(Arc::new(keys)) });
            let (table, _) = tokio::sync::watch::channel(table);
            TestShare { store, config, table, _dirs: (data, root) }
        }

        /// The share stops running.
        pub(crate) fn stop(&self) {
            self.table.send_modify(|t| {
                t.remove(&self.config.id);
            });
        }
    }
}
