//! Which shares this daemon has, and the access codes it has issued: blocking functions over
//! the store's meta column family, run on the blocking pool by the share registry (`shares`) and `access`.
//!
//! A share's secrets (its communication key) live in `keys/<share id>.json`, mode 0600. An
//! access code is stored only as its SRP verifier: the code itself is shown once and never
//! written to disk.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use clearskies_index::store::{Store, StoreError};
use clearskies_index::{filter, rsa, untrusted};
use clearskies_protocol::auth::{VerifierRecord, SALT_LEN};
use clearskies_protocol::message::core::{AccessLevel, KeyEntry, Keys};
use clearskies_protocol::path::META_DIR;
use clearskies_protocol::time::Timestamp;
use clearskies_protocol::{PeerId, SecretKey, Sha256Hash};
use serde::{Deserialize, Serialize};

use crate::control::cmd::ErrorCode;

/// A share as this daemon knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareConfig {
    /// The share's ID: the key ID of the access level we hold.
    pub id: Sha256Hash,
    /// The root directory (canonical).
    pub path: PathBuf,
    /// Our peer ID in this share.
    pub peer_id: PeerId,
    /// The access level we hold.
    pub access_level: AccessLevel,
    /// When we created or joined it.
    pub created: Timestamp,
    /// Peer addresses we know for this share (`HOST:PORT`), re-dialled after restarts.
    #[serde(default)]
    pub peers: Vec<String>,
    /// Selective sync chosen when joining (subtree, exclude patterns).
    #[serde(default)]
    pub selection: filter::Selection,
    /// Peers removed with `peers remove`: refused when they connect, never dialled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_peers: Vec<PeerId>,
    /// The index's column family when it is not named by `id` (the share's keys were
    /// rotated: the ID changed, the index stayed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// The ID this share had before its keys were last rotated (an entry still registered
    /// under it is a rotation a crash interrupted, and is dropped when the shares load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Sha256Hash>,
}

impl ShareConfig {
    /// The column family name for its index.
    pub fn store_key(&self) -> String {
        self.store.clone().unwrap_or_else(|| self.id.to_string())
    }

    /// The level as `list_shares` shows it.
    pub fn mode(&self) -> &'static str {
        level_name(self.access_level)
    }
}

/// An access level as the control socket names it.
pub fn level_name(level: AccessLevel) -> &'static str {
    match level {
        AccessLevel::ReadWrite => "read_write",
        AccessLevel::ReadOnly => "read_only",
        AccessLevel::Untrusted => "untrusted",
        AccessLevel::Unknown => "unknown",
    }
}

/// A share's secret key material, kept in `keys/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareKeys {
    /// Key ID of our level.
    pub key_id: Sha256Hash,
    /// The 256-bit communication key.
    pub key: SecretKey,
    /// Every level's keys we hold, as `core.keys` carries them: for a read-write share all
    /// levels with their private RSA keys; for a read-only one its own level and the
    /// read-write public RSA key. (Empty in key files written before access levels: filled
    /// in when the share is loaded, see [`complete_keys`].)
    #[serde(default)]
    pub levels: Vec<KeyEntry>,
    /// The seed of the untrusted extension's secrets once the keys were rotated: the
    /// read-only key they were made with (absent: the read-only key in `levels`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untrusted_seed: Option<SecretKey>,
    /// How many times the keys were rotated (a rekey is taken only when newer).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ShareKeys {
    /// The entry of `level`, if we hold one.
    pub fn level(&self, level: AccessLevel) -> Option<&KeyEntry> {
        self.levels.iter().find(|e| e.access_level == level)
    }

    /// The read-write signing key (read-write shares only).
    pub fn signing_key(&self) -> Option<rsa::SigningKey> {
        let pem = self.level(AccessLevel::ReadWrite)?.private_rsa.as_deref()?;
        rsa::SigningKey::from_pem(pem).ok()
    }

    /// The read-write public key that every `database.update` on a connection with a
    /// read-only peer must be signed with.
    pub fn verifying_key(&self) -> Option<rsa::VerifyingKey> {
        let rw = self.level(AccessLevel::ReadWrite)?;
        match (&rw.public_rsa, &rw.private_rsa) {
            (Some(public), _) => rsa::VerifyingKey::from_pem(public).ok(),
            (None, Some(private)) => rsa::SigningKey::from_pem(private).ok().map(|k| k.verifying_key()),
            (None, None) => None,
        }
    }

    /// The untrusted extension's secrets (read-write and read-only peers).
    pub fn untrusted(&self) -> Option<untrusted::UntrustedKeys> {
        let key = match self.untrusted_seed {
            Some(seed) => seed,
            None => self.level(AccessLevel::ReadOnly)?.key?,
        };
        Some(untrusted::UntrustedKeys::from_read_only_key(&key))
    }

    /// The key IDs (with their level) that open this share: every level we hold a key for.
    pub fn key_ids(&self) -> Vec<(Sha256Hash, SecretKey, AccessLevel)> {
        let mut ids = vec![];
        for e in &self.levels {
            if let (Some(id), Some(key)) = (e.id, e.key) {
                ids.push((id, key, e.access_level));
            }
        }
        if ids.is_empty() {
            ids.push((self.key_id, self.key, AccessLevel::ReadWrite));
        }
        ids
    }

    /// The read-write entry with only its public RSA key: what lower levels get of it.
    fn read_write_public(&self) -> Option<KeyEntry> {
        Some(KeyEntry {
            access_level: AccessLevel::ReadWrite,
            id: None,
            key: None,
            private_rsa: None,
            public_rsa: Some(self.verifying_key()?.to_pem()),
        })
    }

    /// What `core.keys` hands to a peer joining at `level` (which must not be above ours):
    /// for read-write everything we hold; for read-only the read-only keys (private RSA
    /// included, so read-only peers can invite others) and the read-write public key.
    pub fn grant(&self, level: AccessLevel) -> Option<Keys> {
        let keys = match level {
            AccessLevel::ReadWrite => {
                let rw = self.level(AccessLevel::ReadWrite)?;
                rw.private_rsa.as_ref()?;
                self.levels.clone()
            }
            AccessLevel::ReadOnly => vec![self.level(AccessLevel::ReadOnly)?.clone(), self.read_write_public()?],
            AccessLevel::Untrusted => {
                // Only its own key to authenticate with, and the key to check signatures: no
                // key that decrypts anything.
                let own = self.level(AccessLevel::Untrusted)?;
                vec![KeyEntry { private_rsa: None, public_rsa: None, ..own.clone() }, self.read_write_public()?]
            }
            AccessLevel::Unknown => return None,
        };
        // The backups' seed goes with the keys that decrypt (never to an untrusted peer),
        // once a rotation pinned it.
        let untrusted_seed = self.untrusted_seed.filter(|_| level != AccessLevel::Untrusted);
        Some(Keys { access_level: level, keys, untrusted_seed, generation: self.generation })
    }
}

/// Where a new level's RSA-2048 key pair comes from: made now, or made ahead of time.
pub type RsaSource<'a> = &'a mut dyn FnMut() -> Result<rsa::SigningKey, RegistryError>;

/// An RSA-2048 key pair made now.
pub fn generate_rsa() -> Result<rsa::SigningKey, RegistryError> {
    rsa::SigningKey::generate().map_err(|_| RegistryError::Random)
}

/// One level's fresh keys: a 256-bit key, its key ID and an RSA-2048 key pair from `rsa`.
fn new_level(
    level: AccessLevel,
    id: Sha256Hash,
    key: SecretKey,
    rsa: RsaSource<'_>,
) -> Result<KeyEntry, RegistryError> {
    let rsa = rsa()?;
    let private = rsa.to_pem().map_err(|_| RegistryError::Random)?;
    Ok(KeyEntry { access_level: level, id: Some(id), key: Some(key), private_rsa: Some(private), public_rsa: None })
}

/// A read-write share's keys for every level (read-write with `key_id`/`key`, read-only,
/// untrusted), each with its own RSA key pair.
fn all_levels(key_id: Sha256Hash, key: SecretKey, rsa: RsaSource<'_>) -> Result<Vec<KeyEntry>, RegistryError> {
    let mut levels = vec![new_level(AccessLevel::ReadWrite, key_id, key, &mut *rsa)?];
    for level in [AccessLevel::ReadOnly, AccessLevel::Untrusted] {
        levels.push(new_level(level, Sha256Hash(random()?), SecretKey(random()?), &mut *rsa)?);
    }
    Ok(levels)
}

/// Gives a read-write share whose key file predates access levels its other levels and
/// RSA keys, and saves them. Other shares' keys are returned as they are.
pub fn complete_keys(data_dir: &Path, config: &ShareConfig, keys: ShareKeys) -> Result<ShareKeys, RegistryError> {
    if config.access_level != AccessLevel::ReadWrite || !keys.levels.is_empty() {
        return Ok(keys);
    }
    let levels = all_levels(keys.key_id, keys.key, &mut generate_rsa)?;
    let keys = ShareKeys { levels, ..keys };
    write_keys(data_dir, &config.id, &keys)?;
    Ok(keys)
}

/// Why a share operation failed. Each has a stable machine-readable code for the control
/// socket ([`RegistryError::code`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The path is not an existing directory.
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    /// The path is already shared.
    #[error("{0} is already shared")]
    AlreadyShared(PathBuf),
    /// The path is inside, or contains, another share.
    #[error("{path} overlaps the share {other}")]
    Overlaps {
        /// Requested.
        path: PathBuf,
        /// Existing.
        other: PathBuf,
    },
    /// No share at that path.
    #[error("{0} is not shared")]
    NotShared(PathBuf),
    /// Filesystem failure.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Index failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The OS random number generator failed.
    #[error("the OS random number generator failed")]
    Random,
    /// The peer's `core.keys` lacks the keys of the level it grants.
    #[error("the peer sent no usable keys")]
    BadKeys,
    /// A level this build cannot hold yet.
    #[error("{0} access is not supported yet")]
    Unsupported(&'static str),
    /// A live code already uses this username.
    #[error("the username {0:?} is already in use by a code of this daemon (cancel it first: clearskies code cancel --username ...)")]
    UsernameTaken(String),
    /// No live code matches.
    #[error("no code matches {0:?} (see clearskies code list)")]
    NoSuchCode(String),
    /// The path is the daemon's data directory, inside it, or contains it: sharing it
    /// would hand every peer the share keys kept there.
    #[error("{path} {relation} the daemon's data directory {data_dir}, which holds the share keys: choose another directory")]
    DataDir {
        /// Requested.
        path: PathBuf,
        /// `"is"`, `"is inside"` or `"contains"`.
        relation: &'static str,
        /// The data directory.
        data_dir: PathBuf,
    },
    /// More than one code matches an ID prefix.
    #[error("{0:?} matches more than one code; give more of the ID")]
    AmbiguousCode(String),
    /// An access ID prefix too short to name one code safely.
    #[error("{0:?} is too short: give at least 8 hex digits of the access ID (clearskies code list shows them)")]
    PrefixTooShort(String),
}

impl RegistryError {
    /// The control socket's `error` value.
    pub fn code(&self) -> ErrorCode {
        match self {
            RegistryError::NotADirectory(_) => ErrorCode::NotADirectory,
            RegistryError::AlreadyShared(_) => ErrorCode::AlreadyShared,
            RegistryError::Overlaps { .. } => ErrorCode::OverlappingShare,
            RegistryError::DataDir { .. } => ErrorCode::DataDirectory,
            RegistryError::NotShared(_) => ErrorCode::NotShared,
            RegistryError::Io { .. } => ErrorCode::IoError,
            RegistryError::Store(_) => ErrorCode::DatabaseError,
            RegistryError::Random => ErrorCode::RandomFailed,
            RegistryError::BadKeys => ErrorCode::BadKeys,
            RegistryError::Unsupported(_) => ErrorCode::UnsupportedMode,
            RegistryError::UsernameTaken(_) => ErrorCode::UsernameTaken,
            RegistryError::NoSuchCode(_) => ErrorCode::NoSuchCode,
            RegistryError::AmbiguousCode(_) => ErrorCode::AmbiguousCode,
            RegistryError::PrefixTooShort(_) => ErrorCode::BadCode,
        }
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RegistryError {
    let context = context.into();
    move |source| RegistryError::Io { context, source }
}

fn random<const N: usize>() -> Result<[u8; N], RegistryError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|_| RegistryError::Random)?;
    Ok(b)
}

/// Saves a share's configuration as it is now (peers remembered or removed).
pub fn save_config(store: &Store, config: &ShareConfig) -> Result<(), RegistryError> {
    let json = serde_json::to_vec(config).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(store.put_meta(&format!("share:{}", config.id), &json)?)
}

/// Every share, in ID order.
pub fn load_shares(store: &Store) -> Result<Vec<ShareConfig>, RegistryError> {
    store
        .meta_with_prefix("share:")?
        .into_iter()
        .map(|(k, v)| serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt(format!("{k}: {e}")).into()))
        .collect()
}

/// Creates a read-write share of `path`: new key, key ID and peer ID, the `.clearskies`
/// marker directory, the index column family and the key file.
pub fn create_share(store: &Store, data_dir: &Path, path: &Path, now: Timestamp) -> Result<ShareConfig, RegistryError> {
    create_share_with(store, data_dir, path, now, &mut generate_rsa)
}

/// [`create_share`] with the levels' RSA key pairs from `rsa` (made ahead of time: sharing
/// need not wait for three of them).
pub fn create_share_with(
    store: &Store,
    data_dir: &Path,
    path: &Path,
    now: Timestamp,
    rsa: RsaSource<'_>,
) -> Result<ShareConfig, RegistryError> {
    let path = fs::canonicalize(path).map_err(|_| RegistryError::NotADirectory(path.to_owned()))?;
    if !path.is_dir() {
        return Err(RegistryError::NotADirectory(path));
    }
    let (key_id, key) = (Sha256Hash(random()?), SecretKey(random()?));
    let keys = ShareKeys { key_id, key, levels: all_levels(key_id, key, rsa)?, untrusted_seed: None, generation: 0 };
    let config = ShareConfig {
        id: keys.key_id,
        path,
        peer_id: PeerId(random()?),
        access_level: AccessLevel::ReadWrite,
        created: now,
        peers: Vec::new(),
        selection: filter::Selection::default(),
        removed_peers: Vec::new(),
        store: None,
        previous: None,
    };
    register(store, data_dir, config, &keys)
}

/// Refuses a share whose ID or path is taken, or whose path is inside (or contains) another
/// share; otherwise creates its marker directory, key file, column family and config. If
/// one of those fails, what it had made is removed again.
fn register(
    store: &Store,
    data_dir: &Path,
    config: ShareConfig,
    keys: &ShareKeys,
) -> Result<ShareConfig, RegistryError> {
    let path = &config.path;
    check_free(store, data_dir, path, &config.id)?;
    let marker = path.join(META_DIR);
    let new_marker = !marker.exists();
    let mut undo = Undo::default();
    let done = (|| {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&marker)
            .map_err(io(format!("creating {}", marker.display())))?;
        if new_marker {
            undo.dirs.push(marker.clone());
        }
        write_keys(data_dir, &config.id, keys)?;
        undo.file = Some(keys_path(data_dir, &config.id));
        store.create_share(&config.store_key())?;
        undo.family = Some(config.store_key());
        let json = serde_json::to_vec(&config).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        store.put_meta(&format!("share:{}", config.id), &json)?;
        Ok(())
    })();
    match done {
        Ok(()) => Ok(config),
        Err(e) => {
            undo.run(store);
            Err(e)
        }
    }
}

/// What a failed [`register`] or [`join_share`] made and takes back: the column family, the
/// key file, then the directories it created, the last created first. Directories are
/// removed only while empty, so nothing put in them meanwhile is lost.
#[derive(Default)]
struct Undo {
    family: Option<String>,
    file: Option<PathBuf>,
    /// In the order they were created.
    dirs: Vec<PathBuf>,
}

impl Undo {
    fn run(self, store: &Store) {
        if let Some(family) = self.family {
            let _ = store.drop_share(&family);
        }
        if let Some(file) = self.file {
            let _ = fs::remove_file(file);
        }
        for dir in self.dirs.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// Refuses `path` (canonical, or as [`resolve`] gives it) for a share with ID `id` if it is
/// or holds the data directory, is shared already, or lies inside or around another share.
fn check_free(store: &Store, data_dir: &Path, path: &Path, id: &Sha256Hash) -> Result<(), RegistryError> {
    check_not_data_dir(data_dir, path)?;
    for other in load_shares(store)? {
        if &other.id == id || other.path == path {
            return Err(RegistryError::AlreadyShared(other.path));
        }
        if path.starts_with(&other.path) || other.path.starts_with(path) {
            return Err(RegistryError::Overlaps { path: path.to_owned(), other: other.path });
        }
    }
    Ok(())
}

/// The directories that would have to be created for `path` to exist, outermost first
/// (empty if it exists). Refused if `path`, or the nearest part of it that exists, is not a
/// directory (a file, or a path under one): checked before an attach tries a code, so a
/// single-use code is not spent on a target that cannot work.
pub fn missing_dirs(path: &Path) -> Result<Vec<PathBuf>, RegistryError> {
    let mut missing = Vec::new();
    for dir in path.ancestors() {
        match fs::metadata(dir) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => return Err(RegistryError::NotADirectory(dir.to_owned())),
            // (A path under a file reads as "not a directory": its file is found further up.)
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
                missing.push(dir.to_owned());
            }
            Err(e) => return Err(io(format!("looking at {}", dir.display()))(e)),
        }
    }
    missing.reverse();
    Ok(missing)
}

/// Creates the directories [`missing_dirs`] names for `path`, one at a time, noting in `undo`
/// each one this call made (one that appears meanwhile is not ours). On a failure, those
/// made so far are removed again.
fn create_missing(path: &Path, undo: &mut Undo) -> Result<(), RegistryError> {
    for dir in missing_dirs(path)? {
        match fs::create_dir(&dir) {
            Ok(()) => undo.dirs.push(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(e) => {
                for made in undo.dirs.drain(..).rev() {
                    let _ = fs::remove_dir(made);
                }
                return Err(io(format!("creating {}", dir.display()))(e));
            }
        }
    }
    Ok(())
}

/// Refuses `path` if it is the data directory, lies inside it or contains it, whatever
/// symlinks either goes through (`path` need not exist yet: what exists of it is resolved).
pub fn check_not_data_dir(data_dir: &Path, path: &Path) -> Result<(), RegistryError> {
    let (path, data) = (resolve(path), resolve(data_dir));
    let relation = if path == data {
        "is"
    } else if path.starts_with(&data) {
        "is inside"
    } else if data.starts_with(&path) {
        "contains"
    } else {
        return Ok(());
    };
    Err(RegistryError::DataDir { path, relation, data_dir: data })
}

/// `path` made absolute with every symlink in the part of it that exists resolved; the
/// part that does not exist yet is appended as it is (`..` in it taken lexically).
fn resolve(path: &Path) -> PathBuf {
    use std::path::Component;
    let absolute = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_owned())
    };
    let mut missing = Vec::new();
    let mut existing = absolute.as_path();
    let mut resolved = loop {
        if let Ok(canonical) = fs::canonicalize(existing) {
            break canonical;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_owned());
                existing = parent;
            }
            // `..` at the end, or the root itself unresolvable: keep it lexical.
            _ => break existing.to_owned(),
        }
    };
    for name in missing.into_iter().rev() {
        match Path::new(&name).components().next() {
            Some(Component::ParentDir) => {
                resolved.pop();
            }
            Some(Component::CurDir) | None => {}
            Some(_) => resolved.push(name),
        }
    }
    resolved
}

fn keys_path(data_dir: &Path, id: &Sha256Hash) -> PathBuf {
    data_dir.join("keys").join(format!("{id}.json"))
}

fn write_keys(data_dir: &Path, id: &Sha256Hash, keys: &ShareKeys) -> Result<(), RegistryError> {
    let json = serde_json::to_vec_pretty(keys).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    write_private(data_dir, &format!("{id}.json"), &json, "the share key")
}

/// Writes `keys/<name>` with mode 0600 atomically ([`write_secret_file`]).
fn write_private(data_dir: &Path, name: &str, bytes: &[u8], what: &str) -> Result<(), RegistryError> {
    let dir = data_dir.join("keys");
    fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(io("creating the keys directory"))?;
    write_secret_file(&dir.join(name), bytes).map_err(io(format!("writing {what}")))
}

/// Writes a secret of the data directory (keys, the web password's hash, the web
/// certificate's key) atomically with mode 0600: a temporary file beside it, fsync,
/// rename, fsync of the directory.
pub fn write_secret_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("secret");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The daemon's secret for decoy SRP records (`keys/server-secret`, 0600), created on first
/// use. It must persist: if it changed on restart, the salt shown for an unknown ID would
/// change while real ones stay, and that difference would reveal which IDs exist.
pub fn server_secret(data_dir: &Path) -> Result<[u8; 32], RegistryError> {
    let path = data_dir.join("keys").join("server-secret");
    if let Ok(bytes) = fs::read(&path) {
        if let Ok(secret) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(secret);
        }
    }
    let secret: [u8; 32] = random()?;
    write_private(data_dir, "server-secret", &secret, "the server secret")?;
    Ok(secret)
}

/// Reads a share's keys.
pub fn read_keys(data_dir: &Path, id: &Sha256Hash) -> Result<ShareKeys, RegistryError> {
    let path = keys_path(data_dir, id);
    let bytes = fs::read(&path).map_err(io(format!("reading {}", path.display())))?;
    serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())).into())
}

/// Forgets a share: its index, config, keys, codes and marker directory, except the
/// versions kept there (files peers replaced or deleted, local changes reverted: perhaps
/// the only copy), which stay in `.clearskies/versions`. The user's files are not touched.
pub fn remove_share(store: &Store, data_dir: &Path, path: &Path) -> Result<ShareConfig, RegistryError> {
    let canonical = fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let config = load_shares(store)?
        .into_iter()
        .find(|s| s.path == canonical || s.path == path)
        .ok_or_else(|| RegistryError::NotShared(path.to_owned()))?;
    store.delete_meta(&format!("share:{}", config.id))?;
    for code in load_codes(store)?.into_iter().filter(|c| c.share == config.id) {
        store.delete_meta(&format!("code:{}", code.access_id))?;
    }
    store.drop_share(&config.store_key())?;
    let _ = fs::remove_file(keys_path(data_dir, &config.id));
    remove_marker_but_versions(&config.path.join(META_DIR));
    Ok(config)
}

/// Removes the marker directory `meta` but for the versions and their log (the directory
/// stays if they do). Best effort: what cannot be removed stays.
fn remove_marker_but_versions(meta: &Path) {
    use clearskies_index::versions::{VERSIONS_DIR, VERSIONS_LOG};
    let Ok(entries) = fs::read_dir(meta) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        if name == VERSIONS_DIR || name == VERSIONS_LOG {
            continue;
        }
        // `file_type` does not follow a symlink; `remove_dir_all` never follows one either.
        let _ = match e.file_type() {
            Ok(t) if t.is_dir() => fs::remove_dir_all(e.path()),
            _ => fs::remove_file(e.path()),
        };
    }
    let _ = fs::remove_dir(meta);
}

/// The SRP record for connections authenticated with a share key: username
/// `clearskies:1:<key id>`, password the key in lower-case hex, and a salt derived from the
/// key so both ends agree without storing one.
pub fn key_verifier(key_id: &Sha256Hash, key: &SecretKey) -> VerifierRecord {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(b"clearskies key salt");
    let digest = mac.finalize().into_bytes();
    let mut salt = [0u8; SALT_LEN];
    salt.copy_from_slice(&digest[..SALT_LEN]);
    let username = clearskies_protocol::access_code::srp_username(key_id);
    VerifierRecord::new(&username, &hex::encode(key.as_bytes()), salt)
}

/// Joins the share that `keys` (from `core.keys`) open, at `path`. The directories of `path`
/// that are missing are created only once the keys check out and the path is free, and a
/// failed join removes exactly those again: it leaves the filesystem as it found it.
pub fn join_share(
    store: &Store,
    data_dir: &Path,
    joining: Joining<'_>,
    keys: &clearskies_protocol::message::core::Keys,
    now: Timestamp,
) -> Result<ShareConfig, RegistryError> {
    let Joining { path, peer_id, via, selection } = joining;
    let entry = keys
        .keys
        .iter()
        .find(|k| k.access_level == keys.access_level && k.id.is_some() && k.key.is_some())
        .ok_or(RegistryError::BadKeys)?;
    let (Some(key_id), Some(key)) = (entry.id, entry.key) else { return Err(RegistryError::BadKeys) };
    let held = ShareKeys {
        key_id,
        key,
        levels: keys.keys.clone(),
        untrusted_seed: keys.untrusted_seed.filter(|_| keys.access_level != AccessLevel::Untrusted),
        generation: keys.generation,
    };
    match keys.access_level {
        // A read-write peer must be able to sign for read-only peers; a read-only one must
        // be able to check what it receives.
        AccessLevel::ReadWrite if held.signing_key().is_some() => {}
        AccessLevel::ReadOnly | AccessLevel::Untrusted if held.verifying_key().is_some() => {}
        AccessLevel::ReadWrite | AccessLevel::ReadOnly | AccessLevel::Untrusted => return Err(RegistryError::BadKeys),
        AccessLevel::Unknown => return Err(RegistryError::Unsupported("unknown")),
    }
    // Everything that can be checked before the directory exists is; it is created at the
    // last moment, and removed again (with whatever else this made) if the join fails.
    check_free(store, data_dir, &resolve(path), &key_id)?;
    let mut undo = Undo::default();
    create_missing(path, &mut undo)?;
    let joined = fs::canonicalize(path).map_err(|_| RegistryError::NotADirectory(path.to_owned())).and_then(|path| {
        let config = ShareConfig {
            id: key_id,
            path,
            peer_id,
            access_level: keys.access_level,
            created: now,
            peers: vec![via.to_owned()],
            selection,
            removed_peers: Vec::new(),
            store: None,
            previous: None,
        };
        register(store, data_dir, config, &held)
    });
    if joined.is_err() {
        undo.run(store);
    }
    joined
}

/// Who joins a share, where, through whom, keeping what.
#[derive(Debug)]
pub struct Joining<'a> {
    /// Where the share goes (created if missing; removed again if the join fails).
    pub path: &'a Path,
    /// Our new peer ID in it.
    pub peer_id: PeerId,
    /// The peer we joined through (`HOST:PORT`).
    pub via: &'a str,
    /// Selective sync.
    pub selection: filter::Selection,
}

mod codes;
mod rekey;
#[cfg(test)]
mod tests;

pub use self::codes::{
    cancel_code, create_code, find_code, load_codes, mark_code_used, merge_spread_code, CodeRecord, CodeRef,
    CodeSecret, CodeState, IssuedCode, Lifetime,
};
pub use self::rekey::{apply_rekey, drop_superseded, received_keys, rotated_keys};
