//! `database.*` messages (`database.md`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;
use crate::updates::Revisioned;
use crate::vclock::VectorClock;
use crate::{PeerId, RecordUuid};

/// `database.update`: one record, sent on change and in answer to `get_updates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    /// The record's key (a path with a leading slash in the directory extension).
    pub key: String,
    /// The record's value; kept whole so fields we do not understand survive relaying.
    #[serde(default)]
    pub value: serde_json::Value,
    /// The record's stable 128-bit ID.
    pub uuid: RecordUuid,
    /// The peer that last wrote the record.
    pub last_updated_by: PeerId,
    /// That peer's revision counter for the write.
    pub last_updated_rev: u64,
    /// When the record was last written.
    pub update_time: Timestamp,
    /// Causality of the record.
    #[serde(default)]
    pub vector_clock: VectorClock,
    /// Whether this is a tombstone.
    #[serde(default)]
    pub deleted: bool,
}

impl Revisioned for Update {
    fn last_updated_by(&self) -> PeerId {
        self.last_updated_by
    }
    fn last_updated_rev(&self) -> u64 {
        self.last_updated_rev
    }
}

/// `database.get_updates`: subscribe, and ask for everything newer than `since`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetUpdates {
    /// Highest revision known per writer.
    #[serde(default)]
    pub since: BTreeMap<PeerId, u64>,
}

/// `.rs.clearskies.updates_done` (unofficial): every record that a `database.get_updates`
/// asked for has been sent. Lets a peer tell "caught up" from "still receiving"; peers
/// that do not know it ignore it, as they ignore any unknown type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdatesDone {}
