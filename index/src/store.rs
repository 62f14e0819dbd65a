//! The index on disk: one RocksDB for the daemon, one column family per share.
//!
//! Keys inside a share's column family:
//!
//! | key | value |
//! |---|---|
//! | `r` ‖ path | [`Record`] (MessagePack, named fields) |
//! | `v` ‖ writer peer ID (16 bytes) ‖ rev (8 bytes, big-endian) | path: the revision index |
//! | `s` ‖ writer peer ID | highest rev held from that writer (8 bytes BE): the `since` map |
//! | `m:rev` | our own revision counter (8 bytes BE) |
//! | `h` ‖ SHA-256 (32 bytes) ‖ path | empty: a file whose contents are on disk (serving, dedup) |
//! | `p` ‖ SHA-256 (32 bytes) ‖ path | empty: a file waiting for those contents from a peer |
//!
//! Every change goes through [`ShareStore::commit`], one `WriteBatch` that updates records,
//! the revision index and the `since` map together, written with the WAL synced, so a crash
//! never leaves them disagreeing and nothing we announce to a peer can be lost.
//!
//! `rocksdb::DB` is internally synchronized; the share actors hold it through an `Arc`, and
//! each only touches its own column family.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use clearskies_protocol::path::SharePath;
use clearskies_protocol::updates::Since;
use clearskies_protocol::{PeerId, Sha256Hash};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, Direction, IteratorMode, Options, ReadOptions, WriteBatch,
    WriteOptions, DB,
};

use crate::record::Record;

/// A share's ID as used for its column family name (hex of its first key ID bytes).
pub type ShareKey = String;

/// Why the index could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// RocksDB failed.
    #[error("index database: {0}")]
    Db(#[from] rocksdb::Error),
    /// A stored value does not decode (corruption or a downgrade).
    #[error("corrupt index entry: {0}")]
    Corrupt(String),
    /// The share has no column family.
    #[error("no index for share {0}")]
    NoShare(String),
    /// A write failed on purpose (`--danger-fault-injection`).
    #[error("injected fault: the index write failed")]
    Injected,
}

/// Fault injection: the next [`ShareStore::commit`] (of any share) fails.
static FAIL_NEXT_WRITE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes the next index write fail (`--danger-fault-injection` only).
pub fn fail_next_write() {
    FAIL_NEXT_WRITE.store(true, std::sync::atomic::Ordering::Relaxed);
}

const META_CF: &str = "meta";

fn cf_name(share: &str) -> String {
    format!("share-{share}")
}

/// Told how long each index write (one synced `WriteBatch`) took; see
/// [`Store::observe_writes`].
type WriteObserver = Arc<dyn Fn(std::time::Duration) + Send + Sync>;

/// The daemon's index database.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
    on_write: Option<WriteObserver>,
    /// The block cache every column family uses (new ones included).
    cache: Cache,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.db.path()).finish()
    }
}

/// Memtables of all shares together, before the largest is flushed to disk. RocksDB's
/// default is 64 MiB for *each* column family (one per share), which a daemon with a few
/// shares holds in memory for as long as it takes to write that much.
const MEMTABLES_TOTAL: usize = 16 << 20;

/// The block cache (uncompressed index blocks read back), one for the whole database.
/// Without one, RocksDB gives each column family's table factory its own 32 MiB cache, so
/// the bound on a daemon's memory grew by 32 MiB with every share. The files themselves
/// stay in the page cache, so a block read again costs an LZ4 decompression, not a disk
/// read.
const BLOCK_CACHE: usize = 8 << 20;

/// Options of every column family: LZ4 (the one codec built in; without it the shares'
/// families were stored uncompressed), memtables of at most 8 MiB and the shared block
/// `cache`.
fn cf_options(cache: &Cache) -> Options {
    let mut opts = Options::default();
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    opts.set_write_buffer_size(8 << 20);
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    opts.set_block_based_table_factory(&table);
    opts
}

impl Store {
    /// Opens (or creates) the database in `dir`, with every column family it already has.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let cache = Cache::new_lru_cache(BLOCK_CACHE);
        let mut opts = cf_options(&cache);
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_db_write_buffer_size(MEMTABLES_TOTAL);
        let mut names = DB::list_cf(&opts, dir).unwrap_or_default();
        if !names.iter().any(|n| n == META_CF) {
            names.push(META_CF.to_owned());
        }
        let cfs = names.into_iter().map(|n| ColumnFamilyDescriptor::new(n, cf_options(&cache)));
        let db = DB::open_cf_descriptors(&opts, dir, cfs)?;
        Ok(Store { db: Arc::new(db), on_write: None, cache })
    }

    /// Calls `observe` with the duration of every successful [`ShareStore::commit`] through
    /// this handle and the share views taken from it after this call (the daemon feeds its
    /// write latency histogram).
    pub fn observe_writes(mut self, observe: impl Fn(std::time::Duration) + Send + Sync + 'static) -> Store {
        self.on_write = Some(Arc::new(observe));
        self
    }

    /// Waits until this handle is the last one to the database (every actor, share thread
    /// and blocking task that held one has let go), at most `timeout`. The process then
    /// closes RocksDB by dropping it on its own thread, before exit: a database still open in
    /// another thread while the process exits aborts in RocksDB's mutexes.
    pub fn wait_sole_owner(&self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while Arc::strong_count(&self.db) > 1 {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        true
    }

    /// Creates the column family for a share (idempotent).
    pub fn create_share(&self, share: &str) -> Result<(), StoreError> {
        let name = cf_name(share);
        if self.db.cf_handle(&name).is_none() {
            self.db.create_cf(&name, &cf_options(&self.cache))?;
        }
        Ok(())
    }

    /// Drops a share's column family (when the share is removed).
    pub fn drop_share(&self, share: &str) -> Result<(), StoreError> {
        let name = cf_name(share);
        if self.db.cf_handle(&name).is_some() {
            self.db.drop_cf(&name)?;
        }
        Ok(())
    }

    /// Writes a daemon-wide value (share configurations, access codes), WAL synced.
    pub fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let cf = self.db.cf_handle(META_CF).ok_or_else(|| StoreError::NoShare(META_CF.into()))?;
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.db.put_cf_opt(&cf, key.as_bytes(), value, &opts)?;
        Ok(())
    }

    /// A daemon-wide value.
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let cf = self.db.cf_handle(META_CF).ok_or_else(|| StoreError::NoShare(META_CF.into()))?;
        Ok(self.db.get_cf(&cf, key.as_bytes())?)
    }

    /// Deletes a daemon-wide value.
    pub fn delete_meta(&self, key: &str) -> Result<(), StoreError> {
        let cf = self.db.cf_handle(META_CF).ok_or_else(|| StoreError::NoShare(META_CF.into()))?;
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.db.delete_cf_opt(&cf, key.as_bytes(), &opts)?;
        Ok(())
    }

    /// Every daemon-wide value whose key starts with `prefix`, in key order.
    pub fn meta_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let cf = self.db.cf_handle(META_CF).ok_or_else(|| StoreError::NoShare(META_CF.into()))?;
        let mut out = Vec::new();
        let within = bounded(prefix.as_bytes());
        for item in self.db.iterator_cf_opt(&cf, within, IteratorMode::From(prefix.as_bytes(), Direction::Forward)) {
            let (k, v) = item?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            let key = String::from_utf8(k.to_vec()).map_err(|_| StoreError::Corrupt("meta key".into()))?;
            out.push((key, v.to_vec()));
        }
        Ok(out)
    }

    /// The share's view of the index.
    pub fn share(&self, share: &str) -> Result<ShareStore, StoreError> {
        let name = cf_name(share);
        if self.db.cf_handle(&name).is_none() {
            return Err(StoreError::NoShare(share.to_owned()));
        }
        Ok(ShareStore { db: self.db.clone(), cf: name, on_write: self.on_write.clone() })
    }
}

/// One share's records, revision counter and `since` map.
#[derive(Clone)]
pub struct ShareStore {
    db: Arc<DB>,
    cf: String,
    on_write: Option<WriteObserver>,
}

impl std::fmt::Debug for ShareStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareStore").field("cf", &self.cf).finish()
    }
}

/// Read options that end iteration at the first key past every key starting with `prefix`.
/// Without the bound, a seek into a prefix whose range is followed by deleted keys (the
/// content index's entries, deleted as files are installed) steps over every one of those
/// tombstones to find the next live key, only to see it is past the prefix: a cost that
/// grows with the number of files installed since the last compaction.
fn bounded(prefix: &[u8]) -> ReadOptions {
    let mut opts = ReadOptions::default();
    if let Some(end) = prefix_end(prefix) {
        opts.set_iterate_upper_bound(end);
    }
    opts
}

/// The smallest key greater than every key starting with `prefix`; none if there is no such
/// key (an empty prefix, or only `0xff` bytes).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

fn record_key(path: &SharePath) -> Vec<u8> {
    let mut k = Vec::with_capacity(path.as_str().len() + 1);
    k.push(b'r');
    k.extend_from_slice(path.as_str().as_bytes());
    k
}

fn rev_key(by: &PeerId, rev: u64, path: &SharePath) -> Vec<u8> {
    let mut k = Vec::with_capacity(25 + path.as_str().len());
    k.push(b'v');
    k.extend_from_slice(by.as_bytes());
    k.extend_from_slice(&rev.to_be_bytes());
    k.extend_from_slice(path.as_str().as_bytes());
    k
}

fn since_key(by: &PeerId) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(b's');
    k.extend_from_slice(by.as_bytes());
    k
}

fn hash_key(tag: u8, sha: &Sha256Hash, path: &SharePath) -> Vec<u8> {
    let mut k = Vec::with_capacity(33 + path.as_str().len());
    k.push(tag);
    k.extend_from_slice(&sha.0);
    k.extend_from_slice(path.as_str().as_bytes());
    k
}

/// The content-index entry a record needs, if any.
fn content_key(r: &Record) -> Option<Vec<u8>> {
    let sha = r.sha256.as_ref()?;
    if r.installed_file() {
        Some(hash_key(b'h', sha, &r.path))
    } else if r.wants_content() {
        Some(hash_key(b'p', sha, &r.path))
    } else {
        None
    }
}

const REV_KEY: &[u8] = b"m:rev";
const TOTALS_KEY: &[u8] = b"m:totals";

/// Where a chunked `get_updates` answer goes on: the next revision to read of each writer
/// not finished yet.
#[derive(Debug, Clone)]
pub struct UpdatesCursor(BTreeMap<PeerId, u64>);

/// Totals over a share's live records, kept current by every [`ShareStore::commit`] (in the
/// same write batch), so status and scrapes do not read every record.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Live files.
    pub files: u64,
    /// Live directories (the root included).
    pub directories: u64,
    /// Bytes in live files.
    pub bytes: u64,
    /// Files waiting for contents from a peer.
    pub pending_files: u64,
    /// Bytes of those files.
    pub pending_bytes: u64,
}

impl Totals {
    /// Adds (`sign` true) or takes away one record's part.
    fn count(&mut self, r: &Record, sign: bool) {
        if r.deleted {
            return;
        }
        let step = |n: &mut u64, by: u64| *n = if sign { n.saturating_add(by) } else { n.saturating_sub(by) };
        match r.kind {
            crate::record::EntryKind::File => {
                let size = r.size.unwrap_or(0);
                step(&mut self.files, 1);
                step(&mut self.bytes, size);
                if r.wants_content() {
                    step(&mut self.pending_files, 1);
                    step(&mut self.pending_bytes, size);
                }
            }
            crate::record::EntryKind::Directory => step(&mut self.directories, 1),
        }
    }

    fn encode(&self) -> Vec<u8> {
        [self.files, self.directories, self.bytes, self.pending_files, self.pending_bytes]
            .iter()
            .flat_map(|n| n.to_be_bytes())
            .collect()
    }

    fn decode(bytes: &[u8]) -> Result<Totals, StoreError> {
        if bytes.len() != 40 {
            return Err(StoreError::Corrupt("totals are not 40 bytes".into()));
        }
        let n = |i: usize| u64_value(&bytes[i * 8..i * 8 + 8]);
        Ok(Totals { files: n(0)?, directories: n(1)?, bytes: n(2)?, pending_files: n(3)?, pending_bytes: n(4)? })
    }
}

fn u64_value(bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt("counter is not 8 bytes".into()))?;
    Ok(u64::from_be_bytes(arr))
}

impl ShareStore {
    fn cf(&self) -> Result<Arc<rocksdb::BoundColumnFamily<'_>>, StoreError> {
        self.db.cf_handle(&self.cf).ok_or_else(|| StoreError::NoShare(self.cf.clone()))
    }

    /// Calls `f` with each key and value whose key starts with `prefix`, in key order.
    fn each_with_prefix(
        &self,
        prefix: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let cf = self.cf()?;
        for item in self.db.iterator_cf_opt(&cf, bounded(prefix), IteratorMode::From(prefix, Direction::Forward)) {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            f(&k, &v)?;
        }
        Ok(())
    }

    /// The record at `path`, if any (tombstones included).
    pub fn get(&self, path: &SharePath) -> Result<Option<Record>, StoreError> {
        let cf = self.cf()?;
        match self.db.get_cf(&cf, record_key(path))? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Every record, in path order.
    pub fn records(&self) -> Result<Vec<Record>, StoreError> {
        self.records_where(|_| true)
    }

    /// Calls `f` with every record, in path order, one at a time.
    pub fn each_record(&self, mut f: impl FnMut(Record)) -> Result<(), StoreError> {
        self.each_with_prefix(b"r", |_, v| {
            f(decode(v)?);
            Ok(())
        })
    }

    /// The records `keep` wants, in path order (each record is decoded and dropped in turn:
    /// memory follows what is kept, not the share).
    pub fn records_where(&self, mut keep: impl FnMut(&Record) -> bool) -> Result<Vec<Record>, StoreError> {
        let mut out = Vec::new();
        self.each_record(|r| {
            if keep(&r) {
                out.push(r);
            }
        })?;
        Ok(out)
    }

    /// The records directly inside directory `dir`, in key order, each with its name; with
    /// `None` for a name that has records below it but none of its own (an index written
    /// out of order). Skips over everything deeper with one seek per child, so listing the
    /// root of a million-file share reads its top level only.
    pub fn children(
        &self,
        dir: &SharePath,
        mut f: impl FnMut(&str, Option<Record>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.children_after(dir, None, |name, r| f(name, r).map(|()| true))
    }

    /// As [`children`](Self::children), from the first name after `after` (a page of a
    /// listing: one seek, whatever the page), for as long as `f` answers `true`.
    pub fn children_after(
        &self,
        dir: &SharePath,
        after: Option<&str>,
        mut f: impl FnMut(&str, Option<Record>) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let cf = self.cf()?;
        let mut prefix = record_key(dir);
        if !dir.is_root() {
            prefix.push(b'/');
        }
        let mut with_record: HashSet<Vec<u8>> = HashSet::new();
        let mut it = self.db.raw_iterator_cf_opt(&cf, bounded(&prefix));
        match after {
            // Just past `after` itself; what lies below it is skipped by name.
            Some(after) => {
                let mut start = prefix.clone();
                start.extend_from_slice(after.as_bytes());
                start.push(0);
                it.seek(&start);
            }
            None => it.seek(&prefix),
        }
        let skip = after.map(str::as_bytes);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !k.starts_with(&prefix) {
                break;
            }
            let rest = &k[prefix.len()..];
            let name_of = |b: &[u8]| {
                std::str::from_utf8(b).map(str::to_owned).map_err(|_| StoreError::Corrupt("record key".into()))
            };
            match rest.iter().position(|&b| b == b'/') {
                _ if rest.is_empty() => it.next(), // the root's own record
                None => {
                    let name = name_of(rest)?;
                    with_record.insert(rest.to_vec());
                    if !f(&name, Some(decode(v)?))? {
                        break;
                    }
                    it.next();
                }
                Some(i) => {
                    // Something deeper: its child's record, if any, sorted before it.
                    let child = &rest[..i];
                    // (A child at or before `after` was on an earlier page: `a` after a page
                    // that ended at `a b`, which sorts between `a` and `a/…`.)
                    let listed = with_record.contains(child) || skip.is_some_and(|s| child <= s);
                    if !listed && !f(&name_of(child)?, None)? {
                        break;
                    }
                    let mut next = prefix.clone();
                    next.extend_from_slice(child);
                    next.push(b'/' + 1);
                    it.seek(&next);
                }
            }
        }
        it.status()?;
        Ok(())
    }

    /// Every record strictly below directory `dir`, in key order.
    pub fn each_below(
        &self,
        dir: &SharePath,
        mut f: impl FnMut(Record) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut prefix = record_key(dir);
        if !dir.is_root() {
            prefix.push(b'/');
        }
        self.each_with_prefix(&prefix, |k, v| if k.len() > prefix.len() { f(decode(v)?) } else { Ok(()) })
    }

    /// The records `writer` last wrote at revisions `from..=to`, in revision order, at most
    /// `limit` of them; and the revision to continue from if there may be more.
    pub fn written_by(
        &self,
        writer: &PeerId,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<(Vec<Record>, Option<u64>), StoreError> {
        let cf = self.cf()?;
        let mut start = vec![b'v'];
        start.extend_from_slice(writer.as_bytes());
        start.extend_from_slice(&from.to_be_bytes());
        let mut out = Vec::new();
        let within = bounded(&start[..17]);
        for item in self.db.iterator_cf_opt(&cf, within, IteratorMode::From(&start, Direction::Forward)) {
            let (k, v) = item?;
            if k.len() < 25 || k[0] != b'v' || &k[1..17] != writer.as_bytes() {
                break;
            }
            let rev = u64_value(&k[17..25])?;
            if rev > to {
                break;
            }
            if out.len() == limit {
                return Ok((out, Some(rev)));
            }
            let path = std::str::from_utf8(&v).map_err(|_| StoreError::Corrupt("rev index path".into()))?;
            let path = SharePath::parse(path).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if let Some(r) = self.get(&path)? {
                // Stale entries (the record was written again since) are skipped.
                if r.last_updated_by == *writer && r.last_updated_rev == rev {
                    out.push(r);
                }
            }
        }
        Ok((out, None))
    }

    /// Our revision counter: the rev of our latest local write (0 before any).
    pub fn revision(&self) -> Result<u64, StoreError> {
        let cf = self.cf()?;
        self.db.get_cf(&cf, REV_KEY)?.map_or(Ok(0), |v| u64_value(&v))
    }

    /// The share's totals: stored by every commit; counted once from the records for an index
    /// written before totals were kept.
    pub fn totals(&self) -> Result<Totals, StoreError> {
        let cf = self.cf()?;
        match self.db.get_cf(&cf, TOTALS_KEY)? {
            Some(v) => Totals::decode(&v),
            None => self.count_totals(),
        }
    }

    /// The totals counted from every record (what [`ShareStore::totals`] must equal).
    pub fn count_totals(&self) -> Result<Totals, StoreError> {
        let mut t = Totals::default();
        self.each_with_prefix(b"r", |_, v| {
            t.count(&decode(v)?, true);
            Ok(())
        })?;
        Ok(t)
    }

    /// The highest revision held from each writer: what we send in `database.get_updates`.
    pub fn since(&self) -> Result<Since, StoreError> {
        let mut out = Since::new();
        self.each_with_prefix(b"s", |k, v| {
            let id: [u8; 16] = k[1..].try_into().map_err(|_| StoreError::Corrupt("since key".into()))?;
            out.insert(PeerId(id), u64_value(v)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The records a peer that sent `since` needs, in the order to send them (all at once;
    /// see [`ShareStore::updates_chunk`]).
    pub fn updates_since(&self, since: &Since) -> Result<Vec<Record>, StoreError> {
        Ok(self.updates_chunk(since, None, usize::MAX)?.0)
    }

    /// The next (at most) `limit` records a peer that sent `since` needs, in the order to
    /// send them (by revision, writers in ID order on a tie, as `updates::select` orders
    /// them), read from each writer's revision index; writers absent from `since` from
    /// revision 1. Start with `cursor` `None`; the cursor returned is where to go on, `None`
    /// when nothing is left. Records written between two chunks are included if the
    /// writer's turn has not passed them.
    pub fn updates_chunk(
        &self,
        since: &Since,
        cursor: Option<UpdatesCursor>,
        limit: usize,
    ) -> Result<(Vec<Record>, Option<UpdatesCursor>), StoreError> {
        let mut next = match cursor {
            Some(c) => c.0,
            None => self.since()?.keys().map(|w| (*w, since.get(w).map_or(0, |r| r.saturating_add(1)))).collect(),
        };
        let limit = limit.max(1);
        let writers: Vec<PeerId> = next.keys().copied().collect();
        let mut candidates: Vec<(u64, usize, Record)> = Vec::new();
        // Per writer: records read, and whether that was all of them.
        let mut read: Vec<(usize, bool)> = Vec::with_capacity(writers.len());
        for (i, writer) in writers.iter().enumerate() {
            let (records, more) = self.written_by(writer, next[writer], u64::MAX, limit)?;
            read.push((records.len(), more.is_none()));
            candidates.extend(records.into_iter().map(|r| (r.last_updated_rev, i, r)));
        }
        // The first `limit` of all writers' next `limit` are the first `limit` overall.
        candidates.sort_by_key(|(rev, i, _)| (*rev, *i));
        candidates.truncate(limit);
        let mut taken = vec![0usize; writers.len()];
        for (rev, i, _) in &candidates {
            taken[*i] += 1;
            next.insert(writers[*i], rev.saturating_add(1));
        }
        for (i, writer) in writers.iter().enumerate() {
            if read[i].1 && taken[i] == read[i].0 {
                next.remove(writer);
            }
        }
        let out = candidates.into_iter().map(|(_, _, r)| r).collect();
        Ok((out, (!next.is_empty()).then_some(UpdatesCursor(next))))
    }

    fn paths_by_content(&self, tag: u8, sha: Option<&Sha256Hash>) -> Result<Vec<(Sha256Hash, SharePath)>, StoreError> {
        let mut prefix = vec![tag];
        if let Some(sha) = sha {
            prefix.extend_from_slice(&sha.0);
        }
        let mut out = Vec::new();
        self.each_with_prefix(&prefix, |k, _| {
            let corrupt = || StoreError::Corrupt("content index key".into());
            let sha: [u8; 32] = k.get(1..33).ok_or_else(corrupt)?.try_into().map_err(|_| corrupt())?;
            let path = std::str::from_utf8(&k[33..]).map_err(|_| corrupt())?;
            out.push((Sha256Hash(sha), SharePath::parse(path).map_err(|_| corrupt())?));
            Ok(())
        })?;
        Ok(out)
    }

    /// Paths whose file on disk holds contents `sha` (as of their last scan or install).
    pub fn installed(&self, sha: &Sha256Hash) -> Result<Vec<SharePath>, StoreError> {
        Ok(self.paths_by_content(b'h', Some(sha))?.into_iter().map(|(_, p)| p).collect())
    }

    /// Remembers that contents `plain` encrypt (for untrusted peers) to `cipher`, both ways.
    /// (A cache: recomputed from the file if lost.)
    pub fn put_cipher(&self, plain: &Sha256Hash, cipher: &Sha256Hash) -> Result<(), StoreError> {
        let cf = self.cf()?;
        let mut batch = WriteBatch::default();
        batch.put_cf(&cf, [&b"e"[..], &plain.0].concat(), cipher.0);
        batch.put_cf(&cf, [&b"c"[..], &cipher.0].concat(), plain.0);
        self.db.write(batch)?;
        Ok(())
    }

    /// What contents `plain` encrypt to, if known.
    pub fn cipher_of(&self, plain: &Sha256Hash) -> Result<Option<Sha256Hash>, StoreError> {
        self.hash_value([&b"e"[..], &plain.0].concat())
    }

    /// Which contents encrypt to `cipher`, if known.
    pub fn plain_of(&self, cipher: &Sha256Hash) -> Result<Option<Sha256Hash>, StoreError> {
        self.hash_value([&b"c"[..], &cipher.0].concat())
    }

    fn hash_value(&self, key: Vec<u8>) -> Result<Option<Sha256Hash>, StoreError> {
        let cf = self.cf()?;
        match self.db.get_cf(&cf, key)? {
            Some(v) => {
                let b: [u8; 32] =
                    v.as_slice().try_into().map_err(|_| StoreError::Corrupt("hash is not 32 bytes".into()))?;
                Ok(Some(Sha256Hash(b)))
            }
            None => Ok(None),
        }
    }

    /// Paths waiting for contents `sha` from a peer.
    pub fn waiting_for(&self, sha: &Sha256Hash) -> Result<Vec<SharePath>, StoreError> {
        Ok(self.paths_by_content(b'p', Some(sha))?.into_iter().map(|(_, p)| p).collect())
    }

    /// Every (contents, path) waiting for a peer, in content order.
    pub fn all_waiting(&self) -> Result<Vec<(Sha256Hash, SharePath)>, StoreError> {
        self.paths_by_content(b'p', None)
    }

    /// Writes records atomically with the revision index, the `since` map and (if given) our
    /// new revision counter, and syncs the WAL before returning.
    pub fn commit(&self, records: &[Record], new_revision: Option<u64>) -> Result<(), StoreError> {
        let cf = self.cf()?;
        let mut batch = WriteBatch::default();
        let mut since = self.since()?;
        let mut totals = self.totals()?;
        // A path written twice in one batch: the second write replaces the first's index entries.
        let mut written: std::collections::HashMap<&SharePath, &Record> = std::collections::HashMap::new();
        for r in records {
            let previous = match written.insert(&r.path, r) {
                Some(p) => Some(p.clone()),
                None => self.get(&r.path)?,
            };
            if let Some(old) = previous {
                totals.count(&old, false);
                batch.delete_cf(&cf, rev_key(&old.last_updated_by, old.last_updated_rev, &old.path));
                if let Some(k) = content_key(&old) {
                    batch.delete_cf(&cf, k);
                }
            }
            totals.count(r, true);
            if let Some(k) = content_key(r) {
                batch.put_cf(&cf, k, b"");
            }
            let bytes = rmp_serde::to_vec_named(r).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            batch.put_cf(&cf, record_key(&r.path), bytes);
            batch.put_cf(&cf, rev_key(&r.last_updated_by, r.last_updated_rev, &r.path), r.path.as_str().as_bytes());
            let known = since.entry(r.last_updated_by).or_insert(0);
            if r.last_updated_rev > *known {
                *known = r.last_updated_rev;
                batch.put_cf(&cf, since_key(&r.last_updated_by), r.last_updated_rev.to_be_bytes());
            }
        }
        if let Some(rev) = new_revision {
            batch.put_cf(&cf, REV_KEY, rev.to_be_bytes());
        }
        batch.put_cf(&cf, TOTALS_KEY, totals.encode());
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        if FAIL_NEXT_WRITE.swap(false, std::sync::atomic::Ordering::Relaxed) {
            return Err(StoreError::Injected);
        }
        let started = std::time::Instant::now();
        self.db.write_opt(batch, &opts)?;
        if let Some(observe) = &self.on_write {
            observe(started.elapsed());
        }
        Ok(())
    }
}

fn decode(bytes: &[u8]) -> Result<Record, StoreError> {
    rmp_serde::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

mod memory;
pub use self::memory::{IndexMemory, MemoryProbe};

#[cfg(test)]
mod tests;
