//! What the index holds in memory, for `/metrics`: read through a [`MemoryProbe`], a handle
//! that can only read these figures (the web server holds one, not the store).

use std::sync::{Arc, Weak};

use rocksdb::{Cache, DB};

use super::{Store, StoreError};

/// The index's memory, in bytes (RocksDB's own approximations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexMemory {
    /// Memtables of every column family: writes not yet flushed to table files, and
    /// flushed ones still pinned (bounded by `MEMTABLES_TOTAL` and RocksDB's flush).
    pub memtables: u64,
    /// The table files' readers: their index and filter blocks outside the block cache.
    pub table_readers: u64,
    /// The block cache shared by every column family (bounded by `BLOCK_CACHE`).
    pub block_cache: u64,
}

/// Reads [`IndexMemory`] of one open database. It does not keep the database open: the
/// worker closes it when the last [`Store`] goes ([`Store::wait_sole_owner`]).
#[derive(Clone)]
pub struct MemoryProbe {
    db: Weak<DB>,
    cache: Cache,
}

impl std::fmt::Debug for MemoryProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryProbe").field("open", &(self.db.strong_count() > 0)).finish()
    }
}

impl MemoryProbe {
    /// The figures now, over every column family (`None` once the database is closed).
    pub fn read(&self) -> Result<Option<IndexMemory>, StoreError> {
        let Some(db) = self.db.upgrade() else { return Ok(None) };
        let stats = rocksdb::perf::get_memory_usage_stats(Some(&[&*db]), Some(&[&self.cache]))?;
        Ok(Some(IndexMemory {
            memtables: stats.mem_table_total,
            table_readers: stats.mem_table_readers_total,
            block_cache: stats.cache_total,
        }))
    }
}

impl Store {
    /// A handle that reads this database's memory figures and nothing else.
    pub fn memory_probe(&self) -> MemoryProbe {
        MemoryProbe { db: Arc::downgrade(&self.db), cache: self.cache.clone() }
    }
}
