//! Access codes: issued as SRP verifiers only (a generated code is shown once and never
//! stored), with expiry, multi-use, custom usernames, use and cancellation, in the store's
//! meta column family.

use clearskies_index::store::{Store, StoreError};
use clearskies_protocol::access_code::AccessCode;
use clearskies_protocol::auth::{VerifierRecord, SALT_LEN};
use clearskies_protocol::message::core::AccessLevel;
use clearskies_protocol::time::Timestamp;
use clearskies_protocol::{PeerId, Sha256Hash};
use serde::{Deserialize, Serialize};

use super::{random, RegistryError, ShareConfig};

/// An issued access code, as a verifier only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRecord {
    /// The code's public access ID.
    pub access_id: Sha256Hash,
    /// The share it grants.
    pub share: Sha256Hash,
    /// The level it grants.
    pub access_level: AccessLevel,
    /// SRP salt.
    pub salt: [u8; SALT_LEN],
    /// SRP verifier.
    pub verifier: Vec<u8>,
    /// Unix seconds after which it is refused; `None`: never expires.
    pub expires: Option<i64>,
    /// Whether it may be used more than once.
    pub multi_use: bool,
    /// Peers that joined with it.
    pub used_by: Vec<PeerId>,
    /// Unix seconds when it was issued.
    #[serde(default)]
    pub created: i64,
    /// For a custom username/password: the username (the password is kept only as the SRP
    /// verifier). `None` for a generated `SYNC…` code.
    #[serde(default)]
    pub username: Option<String>,
    /// Unix seconds of its last change (issued, cancelled): with code spreading, a record
    /// from a peer replaces ours only if newer.
    #[serde(default)]
    pub update_time: i64,
    /// Cancelled. Only a spread code is kept cancelled (so that the cancellation spreads);
    /// any other is deleted.
    #[serde(default)]
    pub revoked: bool,
}

impl CodeRecord {
    /// Whether it spreads to the share's other peers (`code_spread`): a multi-use code
    /// (generated, or a username and password), never a single-use one (two peers could
    /// each admit someone with it at once).
    pub fn is_spread(&self) -> bool {
        self.multi_use
    }

    /// Whether `theirs`, a peer's record of this code, may replace this one: the same code
    /// (share, level, salt, verifier, username, multi-use), changed only towards refusing
    /// (cancelled, or expiring sooner), and newer; a cancellation wins a tie. A peer can
    /// thus cancel or shorten a code it holds, never reopen, widen or take one over.
    pub fn may_be_replaced_by(&self, theirs: &CodeRecord) -> bool {
        let same = self.share == theirs.share
            && self.access_level == theirs.access_level
            && self.salt == theirs.salt
            && self.verifier == theirs.verifier
            && self.username == theirs.username
            && self.multi_use == theirs.multi_use;
        let tighter = (theirs.revoked || !self.revoked)
            && match (self.expires, theirs.expires) {
                (_, None) => self.expires.is_none(),
                (None, Some(_)) => true,
                (Some(ours), Some(t)) => t <= ours,
            };
        let newer = theirs.update_time > self.update_time
            || (theirs.update_time == self.update_time && theirs.revoked && !self.revoked);
        same && tighter && newer && (theirs.revoked != self.revoked || theirs.expires != self.expires)
    }

    /// The SRP record to authenticate against.
    pub fn verifier_record(&self) -> VerifierRecord {
        VerifierRecord { salt: self.salt, verifier: self.verifier.clone() }
    }

    /// Whether it can still be used at `now` (Unix seconds).
    pub fn is_usable(&self, now: i64) -> bool {
        self.state(now) == CodeState::Active
    }

    /// Whether it is active, expired or used up at `now` (Unix seconds).
    pub fn state(&self, now: i64) -> CodeState {
        if self.revoked {
            CodeState::Cancelled
        } else if self.expires.is_some_and(|e| now >= e) {
            CodeState::Expired
        } else if !self.multi_use && !self.used_by.is_empty() {
            CodeState::Used
        } else {
            CodeState::Active
        }
    }
}

/// Where a code is in its life. A cancelled code is deleted, unless it is spread
/// ([`CodeRecord::is_spread`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeState {
    /// It can be used.
    Active,
    /// Its time ran out.
    Expired,
    /// A single-use code a peer has joined with.
    Used,
    /// Cancelled (a spread code, kept so that its cancellation spreads).
    Cancelled,
}

/// The secret a new code is made of.
#[derive(Debug)]
pub enum CodeSecret {
    /// A fresh random `SYNC…` code.
    Generated,
    /// A username and password the user chose.
    Custom {
        /// The username (shown in `code list`).
        username: String,
        /// Their SRP credentials.
        credentials: clearskies_protocol::access_code::Credentials,
    },
}

/// What issuing a code produced.
#[derive(Debug)]
pub struct IssuedCode {
    /// The record as stored.
    pub record: CodeRecord,
    /// The generated code, shown once (`None` for custom credentials).
    pub code: Option<AccessCode>,
}

/// How long a code stays valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// This many seconds (at least 1).
    Secs(i64),
    /// Until cancelled.
    Never,
}

/// The code with this access ID, if one was issued (one key lookup, not a scan).
pub fn find_code(store: &Store, access_id: &Sha256Hash) -> Result<Option<CodeRecord>, RegistryError> {
    let key = format!("code:{access_id}");
    match store.get_meta(&key)? {
        Some(v) => Ok(Some(serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt(format!("{key}: {e}")))?)),
        None => Ok(None),
    }
}

/// Records that `peer` joined with the code `access_id`.
pub fn mark_code_used(store: &Store, access_id: &Sha256Hash, peer: PeerId) -> Result<(), RegistryError> {
    let key = format!("code:{access_id}");
    let Some(mut code) = find_code(store, access_id)? else {
        return Ok(());
    };
    if !code.used_by.contains(&peer) {
        code.used_by.push(peer);
    }
    let json = serde_json::to_vec(&code).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    store.put_meta(&key, &json)?;
    Ok(())
}

/// Every issued code.
pub fn load_codes(store: &Store) -> Result<Vec<CodeRecord>, RegistryError> {
    store
        .meta_with_prefix("code:")?
        .into_iter()
        .map(|(k, v)| serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt(format!("{k}: {e}")).into()))
        .collect()
}

/// Issues an access code for `share`: a generated one (returned, never stored) or custom
/// credentials (stored as their SRP verifier only). A custom username that a live code
/// already uses is refused; an expired or used-up one is replaced.
pub fn create_code(
    store: &Store,
    share: &ShareConfig,
    access_level: AccessLevel,
    lifetime: Lifetime,
    multi_use: bool,
    secret: CodeSecret,
    now: Timestamp,
) -> Result<IssuedCode, RegistryError> {
    let mut replaced = None;
    let (creds, code, username) = match secret {
        CodeSecret::Generated => {
            let code = AccessCode::from_random(random()?);
            (code.credentials(), Some(code), None)
        }
        CodeSecret::Custom { username, credentials } => {
            let before = find_code(store, &credentials.id)?;
            if before.as_ref().is_some_and(|c| c.is_usable(now.secs())) {
                return Err(RegistryError::UsernameTaken(username));
            }
            // Newer than the record it replaces (a cancellation peers may hold).
            replaced = before.map(|c| c.update_time);
            (credentials, None, Some(username))
        }
    };
    let verifier = VerifierRecord::new(&creds.username, &creds.password, random()?);
    let record = CodeRecord {
        access_id: creds.id,
        share: share.id,
        access_level,
        salt: verifier.salt,
        verifier: verifier.verifier,
        expires: match lifetime {
            Lifetime::Secs(s) => Some(now.secs().saturating_add(s)),
            Lifetime::Never => None,
        },
        multi_use,
        used_by: Vec::new(),
        created: now.secs(),
        username,
        update_time: replaced.map_or(now.secs(), |t: i64| now.secs().max(t.saturating_add(1))),
        revoked: false,
    };
    let json = serde_json::to_vec(&record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    store.put_meta(&format!("code:{}", record.access_id), &json)?;
    Ok(IssuedCode { record, code })
}

/// How the user names a code to cancel.
#[derive(Debug, Clone)]
pub enum CodeRef {
    /// The `SYNC…` code itself.
    Code(AccessCode),
    /// A custom username.
    Username(String),
    /// The access ID or a prefix of it (at least 8 hex digits), as `code list` shows.
    IdPrefix(String),
}

/// Cancels a code: its record is deleted, so it is refused at once, exactly like a code
/// that never existed; a spread code is kept, cancelled, so that the cancellation reaches the
/// peers that hold it.
pub fn cancel_code(store: &Store, which: &CodeRef, now: i64) -> Result<CodeRecord, RegistryError> {
    let (id, shown) = match which {
        CodeRef::Code(c) => (Some(c.access_id()), c.to_string()),
        CodeRef::Username(u) => (Some(clearskies_protocol::access_code::custom_id(u)), u.clone()),
        CodeRef::IdPrefix(p) => (None, p.clone()),
    };
    let record = match id {
        Some(id) => find_code(store, &id)?,
        None => {
            let prefix = shown.to_ascii_lowercase();
            if !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(RegistryError::NoSuchCode(shown));
            }
            if prefix.len() < 8 {
                return Err(RegistryError::PrefixTooShort(shown));
            }
            let mut matching =
                load_codes(store)?.into_iter().filter(|c| !c.revoked && c.access_id.to_string().starts_with(&prefix));
            let first = matching.next();
            if matching.next().is_some() {
                return Err(RegistryError::AmbiguousCode(shown));
            }
            first
        }
    };
    let mut record = record.filter(|r| !r.revoked).ok_or(RegistryError::NoSuchCode(shown))?;
    let key = format!("code:{}", record.access_id);
    if record.is_spread() {
        (record.revoked, record.update_time) = (true, now.max(record.update_time.saturating_add(1)));
        let json = serde_json::to_vec(&record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        store.put_meta(&key, &json)?;
    } else {
        store.delete_meta(&key)?;
    }
    Ok(record)
}

/// Stores a code a peer spread if it is new here, or a change ours may take
/// ([`CodeRecord::may_be_replaced_by`]); the stored record if it changed. Who joined with
/// it here is kept.
pub fn merge_spread_code(store: &Store, mut incoming: CodeRecord) -> Result<Option<CodeRecord>, RegistryError> {
    let ours = find_code(store, &incoming.access_id)?;
    if let Some(ours) = &ours {
        if !ours.may_be_replaced_by(&incoming) {
            return Ok(None);
        }
        incoming.used_by.clone_from(&ours.used_by);
    }
    let json = serde_json::to_vec(&incoming).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    store.put_meta(&format!("code:{}", incoming.access_id), &json)?;
    Ok(Some(incoming))
}
