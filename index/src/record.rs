//! A share's index record: one file or directory, as `database.md` and `directory.md`
//! describe it, plus what we remember about the local copy for incremental rescans.

use std::collections::BTreeMap;

use clearskies_protocol::message::database::Update;
use clearskies_protocol::path::SharePath;
use clearskies_protocol::time::Timestamp;
use clearskies_protocol::vclock::VectorClock;
use clearskies_protocol::{PeerId, RecordUuid, Sha256Hash};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// File or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
}

/// What the last scan saw on disk, to skip re-hashing unchanged files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalStat {
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Status-change time, nanoseconds since the epoch (catches same-size, same-mtime edits).
    pub ctime_ns: i128,
}

/// One record of a share's index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The key.
    pub path: SharePath,
    /// The stable ID.
    pub uuid: RecordUuid,
    /// File or directory.
    pub kind: EntryKind,
    /// Size (files only).
    pub size: Option<u64>,
    /// Content hash (files only).
    pub sha256: Option<Sha256Hash>,
    /// Modification time, to the nanosecond.
    pub mtime: Option<Timestamp>,
    /// Unix permission bits.
    pub unix_mode: Option<u32>,
    /// Tombstone.
    pub deleted: bool,
    /// Last writer.
    pub last_updated_by: PeerId,
    /// Last writer's revision.
    pub last_updated_rev: u64,
    /// When it was last written.
    pub update_time: Timestamp,
    /// Causality.
    pub vector_clock: VectorClock,
    /// Value fields from other implementations that we keep and relay untouched.
    #[serde(default)]
    pub extra: BTreeMap<String, Value>,
    /// The local file as the last scan saw it (never sent to peers). While the record is
    /// pending, this is the file that is still on disk (the version being replaced), or
    /// `None` if nothing is there yet.
    #[serde(default)]
    pub local: Option<LocalStat>,
    /// The contents of the file that `local` describes (files only).
    #[serde(default)]
    pub local_sha256: Option<Sha256Hash>,
    /// The disk does not hold this record's contents yet: a peer's version is being fetched
    /// (files) or created (directories), or its deletion applied.
    #[serde(default)]
    pub pending: bool,
    /// The signed `database.update` this version arrived in (on connections with read-only
    /// peers), kept to relay verbatim. Trust it only through [`Record::signature`], which
    /// checks that it still describes this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<Signed>,
    /// The encrypted, signed `database.update` untrusted peers were last sent for a version
    /// of this record (kept so that answering them again costs no new signature). Trust it
    /// only through [`Record::sealed_as`], which checks it is the body this version makes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<Signed>,
}

/// A `database.update` body exactly as signed, with its base64 signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    /// The JSON body.
    pub body: String,
    /// Base64 RSA signature of `body`.
    pub signature: String,
}

/// Why a peer's record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The key is not a valid share path.
    #[error("bad path: {0}")]
    Path(#[from] clearskies_protocol::path::PathError),
    /// The value is not an object, or a field has the wrong type.
    #[error("bad value: {0}")]
    Value(String),
}

impl Record {
    /// The record as a `database.update` message.
    pub fn to_update(&self) -> Update {
        let mut value: Map<String, Value> = self.extra.clone().into_iter().collect();
        match self.kind {
            EntryKind::File => {
                value.insert("size".into(), self.size.map_or(Value::Null, Value::from));
                value.insert("sha256".into(), self.sha256.map_or(Value::Null, |h| Value::from(h.to_string())));
            }
            EntryKind::Directory => {
                value.insert("size".into(), Value::Null);
                value.insert("sha256".into(), Value::Null);
            }
        }
        if let Some(m) = self.mtime {
            value.insert("mtime".into(), Value::from(m.to_string()));
        }
        if let Some(mode) = self.unix_mode {
            value.insert("unix_mode".into(), Value::from(format!("{mode:04o}")));
        }
        Update {
            key: self.path.to_string(),
            value: Value::Object(value),
            uuid: self.uuid,
            last_updated_by: self.last_updated_by,
            last_updated_rev: self.last_updated_rev,
            update_time: self.update_time,
            vector_clock: self.vector_clock.clone(),
            deleted: self.deleted,
        }
    }

    /// A peer's `database.update` as a record. `Ok(None)` for keys without a leading slash,
    /// which the directory extension ignores.
    pub fn from_update(u: &Update) -> Result<Option<Record>, RecordError> {
        if !u.key.starts_with('/') {
            return Ok(None);
        }
        let path = SharePath::parse(&u.key)?;
        let mut extra: BTreeMap<String, Value> = match &u.value {
            Value::Object(m) => m.clone().into_iter().collect(),
            Value::Null if u.deleted => BTreeMap::new(),
            _ => return Err(RecordError::Value("value is not an object".into())),
        };
        let size = extra.remove("size");
        let sha256 = extra.remove("sha256");
        let mtime = extra.remove("mtime");
        let mode = extra.remove("unix_mode");
        let bad = |what: &str| RecordError::Value(format!("{what} has the wrong type"));
        let sha256: Option<Sha256Hash> = match sha256 {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.parse().map_err(|_| bad("sha256"))?),
            Some(_) => return Err(bad("sha256")),
        };
        let size = match size {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| bad("size"))?),
        };
        // Directories (and the root) have null size and hash; files have a hash (a file's
        // tombstone may carry only its size).
        let kind = if path.is_root() || (sha256.is_none() && size.is_none()) {
            EntryKind::Directory
        } else if sha256.is_some() || u.deleted {
            EntryKind::File
        } else {
            return Err(RecordError::Value("a file needs a sha256".into()));
        };
        let mtime = match mtime {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.parse().map_err(|_| bad("mtime"))?),
            Some(_) => return Err(bad("mtime")),
        };
        let unix_mode = match mode {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(u32::from_str_radix(&s, 8).map_err(|_| bad("unix_mode"))? & 0o7777),
            Some(Value::Number(n)) => {
                Some(u32::try_from(n.as_u64().ok_or_else(|| bad("unix_mode"))?).map_err(|_| bad("unix_mode"))? & 0o7777)
            }
            Some(_) => return Err(bad("unix_mode")),
        };
        Ok(Some(Record {
            path,
            uuid: u.uuid,
            kind,
            size,
            sha256,
            mtime,
            unix_mode,
            deleted: u.deleted,
            last_updated_by: u.last_updated_by,
            last_updated_rev: u.last_updated_rev,
            update_time: u.update_time,
            vector_clock: u.vector_clock.clone(),
            extra,
            local: None,
            local_sha256: None,
            pending: false,
            signed: None,
            sealed: None,
        }))
    }

    /// The stored signed message, if it describes exactly this version (a record rewritten
    /// locally keeps a stale one, which must not be relayed).
    pub fn signature(&self) -> Option<&Signed> {
        let signed = self.signed.as_ref()?;
        let Ok(clearskies_protocol::message::Message::DatabaseUpdate(u)) =
            clearskies_protocol::message::Message::decode(signed.body.as_bytes())
        else {
            return None;
        };
        let theirs = Record::from_update(&u).ok()??;
        (theirs.to_update() == self.to_update()).then_some(signed)
    }

    /// The stored signed encrypted update, if its body is `body` (what this version
    /// encrypts to now).
    pub fn sealed_as(&self, body: &str) -> Option<&Signed> {
        self.sealed.as_ref().filter(|s| s.body == body)
    }
}

impl Record {
    /// Whether the disk holds this record's file contents (so they can be served and copied).
    pub fn installed_file(&self) -> bool {
        self.kind == EntryKind::File
            && !self.deleted
            && self.local.is_some()
            && self.sha256.is_some()
            && self.local_sha256 == self.sha256
    }

    /// Whether this record waits for file contents from a peer.
    pub fn wants_content(&self) -> bool {
        self.kind == EntryKind::File && !self.deleted && (self.local.is_none() || self.local_sha256 != self.sha256)
    }

    /// The same write as `other` (same writer and revision).
    pub fn same_write(&self, other: &Record) -> bool {
        self.last_updated_by == other.last_updated_by && self.last_updated_rev == other.last_updated_rev
    }
}

impl clearskies_protocol::updates::Revisioned for Record {
    fn last_updated_by(&self) -> PeerId {
        self.last_updated_by
    }
    fn last_updated_rev(&self) -> u64 {
        self.last_updated_rev
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Record {
        Record {
            path: SharePath::parse("/a b/ü.txt").unwrap(),
            uuid: RecordUuid([1; 16]),
            kind: EntryKind::File,
            size: Some(3_762_440_519_426_216_896),
            sha256: Some(Sha256Hash([2; 32])),
            mtime: Some("2014-03-30T12:35:29.113243778Z".parse().unwrap()),
            unix_mode: Some(0o644),
            deleted: false,
            last_updated_by: PeerId([3; 16]),
            last_updated_rev: 15,
            update_time: Timestamp::new(1_400_000_000, 5).unwrap(),
            vector_clock: [(PeerId([3; 16]), 4)].into_iter().collect(),
            extra: [(".com.example.artist".to_owned(), Value::from("x"))].into_iter().collect(),
            local: None,
            local_sha256: None,
            pending: false,
            signed: None,
            sealed: None,
        }
    }

    #[test]
    fn wire_round_trip_keeps_everything_but_local_state() {
        let r = file();
        let u = r.to_update();
        assert_eq!(u.value["unix_mode"], "0644");
        assert_eq!(u.value[".com.example.artist"], "x");
        let back = Record::from_update(&u).unwrap().unwrap();
        assert_eq!(back, r);
        // And through JSON bytes.
        let m = clearskies_protocol::message::Message::from(u);
        let decoded = clearskies_protocol::message::Message::decode(&m.encode()).unwrap();
        let clearskies_protocol::message::Message::DatabaseUpdate(u2) = decoded else { panic!() };
        assert_eq!(Record::from_update(&u2).unwrap().unwrap(), r);
    }

    #[test]
    fn directories_and_foreign_keys() {
        let mut d = file();
        d.kind = EntryKind::Directory;
        d.size = None;
        d.sha256 = None;
        assert_eq!(Record::from_update(&d.to_update()).unwrap().unwrap().kind, EntryKind::Directory);
        let mut u = file().to_update();
        u.key = "no-slash".into();
        assert_eq!(Record::from_update(&u), Ok(None));
    }

    #[test]
    fn hostile_values_are_refused() {
        for key in ["/../x", "//x", "/a/./b", "/.clearskies/x"] {
            let mut u = file().to_update();
            u.key = key.into();
            assert!(matches!(Record::from_update(&u), Err(RecordError::Path(_))), "{key}");
        }
        let mut u = file().to_update();
        u.value = Value::from(5);
        assert!(Record::from_update(&u).is_err());
        let mut u = file().to_update();
        u.value["size"] = Value::from(-1);
        assert!(Record::from_update(&u).is_err());
        let mut u = file().to_update();
        u.value["unix_mode"] = Value::from("9999");
        assert!(Record::from_update(&u).is_err());
        let mut u = file().to_update();
        u.value["sha256"] = Value::Null;
        assert!(Record::from_update(&u).is_err());
    }

    #[test]
    fn db_encoding_round_trips() {
        let mut r = file();
        r.local = Some(LocalStat { ino: 7, size: 3, mtime_ns: -5, ctime_ns: 9 });
        let bytes = rmp_serde::to_vec_named(&r).unwrap();
        assert_eq!(rmp_serde::from_slice::<Record>(&bytes).unwrap(), r);
    }
}

/// Records for other modules' and crates' unit tests (feature `test-support`).
#[cfg(any(test, feature = "test-support"))]
#[allow(clippy::unwrap_used)] // test fixtures: a path that does not parse is the calling test's bug
pub mod tests_support {
    use super::*;

    /// A live, installed file record at `path` holding `data`.
    pub fn file(path: &str, data: &[u8]) -> Record {
        use sha2::Digest;
        let me = PeerId([3; 16]);
        let mut vector_clock = VectorClock::new();
        vector_clock.increment(me);
        let sha = Sha256Hash(sha2::Sha256::digest(data).into());
        Record {
            path: SharePath::parse(path).unwrap(),
            uuid: RecordUuid([4; 16]),
            kind: EntryKind::File,
            size: Some(data.len() as u64),
            sha256: Some(sha),
            mtime: Some(Timestamp::new(1_700_000_000, 5).unwrap()),
            unix_mode: Some(0o644),
            deleted: false,
            last_updated_by: me,
            last_updated_rev: 1,
            update_time: Timestamp::new(1_700_000_000, 6).unwrap(),
            vector_clock,
            extra: BTreeMap::new(),
            local: None,
            local_sha256: None,
            pending: false,
            signed: None,
            sealed: None,
        }
    }
}
