//! Rotating a share's keys (`keys rotate`): every level's communication key and key ID are
//! new, the RSA keys stay (they sign; a peer that cannot connect has no use for them), and
//! the untrusted extension's secrets keep their seed (the read-only key they were first
//! made with), so encrypted backups stay readable. The share's ID is the key ID of our
//! level, so it changes too; the index stays in its column family (`ShareConfig::store`).

use std::fs;
use std::path::Path;

use clearskies_index::store::Store;
use clearskies_protocol::message::core::{AccessLevel, Rekey};
use clearskies_protocol::{SecretKey, Sha256Hash};

use super::{keys_path, load_codes, random, save_config, write_keys, RegistryError, ShareConfig, ShareKeys};

/// New keys for every level of a read-write share's `keys`: a new random key and key ID
/// each, the same RSA keys, and the untrusted seed pinned.
pub fn rotated_keys(keys: &ShareKeys) -> Result<ShareKeys, RegistryError> {
    let seed = seed(keys);
    let mut levels = keys.levels.clone();
    for entry in &mut levels {
        if entry.id.is_some() && entry.key.is_some() {
            entry.id = Some(Sha256Hash(random()?));
            entry.key = Some(SecretKey(random()?));
        }
    }
    let own = levels
        .iter()
        .find(|e| e.access_level == AccessLevel::ReadWrite)
        .and_then(|e| Some((e.id?, e.key?)))
        .ok_or(RegistryError::BadKeys)?;
    let generation = keys.generation.checked_add(1).ok_or(RegistryError::BadKeys)?;
    Ok(ShareKeys { key_id: own.0, key: own.1, levels, untrusted_seed: seed, generation })
}

/// The keys a `.rs.clearskies.rekey` gives a peer whose share's keys are `current`: its
/// level's new key, with the same RSA keys (the same share: anything else is refused).
pub fn received_keys(current: &ShareKeys, level: AccessLevel, rekey: &Rekey) -> Result<ShareKeys, RegistryError> {
    // Only the next rotation: an old one replayed cannot move us back, nor one that skips
    // ahead (which would refuse every later rotation) take us elsewhere.
    if rekey.keys.access_level != level || Some(rekey.keys.generation) != current.generation.checked_add(1) {
        return Err(RegistryError::BadKeys);
    }
    let entry = rekey
        .keys
        .keys
        .iter()
        .find(|k| k.access_level == level && k.id.is_some() && k.key.is_some())
        .ok_or(RegistryError::BadKeys)?;
    let (Some(key_id), Some(key)) = (entry.id, entry.key) else { return Err(RegistryError::BadKeys) };
    let new = ShareKeys {
        key_id,
        key,
        levels: rekey.keys.keys.clone(),
        untrusted_seed: rekey.keys.untrusted_seed,
        generation: rekey.keys.generation,
    };
    // The same share: the same read-write public key (the one that signs its records).
    let same = |k: &ShareKeys| k.verifying_key().map(|v| v.to_pem());
    if same(&new).is_none() || same(&new) != same(current) {
        return Err(RegistryError::BadKeys);
    }
    // A read-write or read-only peer needs the untrusted seed to keep the backups readable
    // (when it had the secrets before).
    if seed(current).is_some() && seed(&new) != seed(current) {
        return Err(RegistryError::BadKeys);
    }
    Ok(new)
}

/// The seed the untrusted extension's secrets are made from.
fn seed(k: &ShareKeys) -> Option<SecretKey> {
    k.untrusted_seed.or_else(|| k.level(AccessLevel::ReadOnly).and_then(|e| e.key))
}

/// Moves the share `old` to its new `keys` (and so a new ID): the new key file and
/// registry entry are written first, then the old ones removed, with the codes issued for
/// it (they opened the old keys). A crash in between leaves both entries; the old one is
/// dropped when the shares load ([`drop_superseded`]).
pub fn apply_rekey(
    store: &Store,
    data_dir: &Path,
    old: &ShareConfig,
    keys: &ShareKeys,
) -> Result<ShareConfig, RegistryError> {
    // Never onto this share's own ID, nor over another share's entry.
    if keys.key_id == old.id || super::load_shares(store)?.iter().any(|s| s.id == keys.key_id) {
        return Err(RegistryError::BadKeys);
    }
    let mut config = old.clone();
    config.id = keys.key_id;
    config.store = Some(old.store_key());
    config.previous = Some(old.id);
    write_keys(data_dir, &config.id, keys)?;
    save_config(store, &config)?;
    forget(store, data_dir, &old.id)?;
    Ok(config)
}

/// Removes the share `id`'s codes, key file and registry entry, the entry last (so that an
/// interrupted `forget` is found again and finished by [`drop_superseded`]).
fn forget(store: &Store, data_dir: &Path, id: &Sha256Hash) -> Result<(), RegistryError> {
    for code in load_codes(store)?.into_iter().filter(|c| &c.share == id) {
        store.delete_meta(&format!("code:{}", code.access_id))?;
    }
    match fs::remove_file(keys_path(data_dir, id)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(share = %id, error = %e, "cannot remove the old key file")
        }
        _ => {}
    }
    store.delete_meta(&format!("share:{id}"))?;
    Ok(())
}

/// Drops, from `shares` and the registry, each entry that a newer one says it replaced
/// (a rotation a crash interrupted).
pub fn drop_superseded(store: &Store, data_dir: &Path, shares: Vec<ShareConfig>) -> Vec<ShareConfig> {
    // The same share (its path) under the ID a newer entry says it replaced.
    let replaced: Vec<(Sha256Hash, std::path::PathBuf)> =
        shares.iter().filter_map(|s| Some((s.previous?, s.path.clone()))).collect();
    let (gone, kept): (Vec<_>, Vec<_>) =
        shares.into_iter().partition(|s| replaced.iter().any(|(id, path)| *id == s.id && *path == s.path));
    for s in gone {
        if let Err(e) = forget(store, data_dir, &s.id) {
            tracing::warn!(share = %s.id, error = %e, "cannot drop a share entry its key rotation replaced");
        }
    }
    kept
}
