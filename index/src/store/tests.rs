use clearskies_protocol::time::Timestamp;
use clearskies_protocol::{RecordUuid, Sha256Hash};

use super::*;
use crate::record::EntryKind;

fn rec(path: &str, by: u8, rev: u64) -> Record {
    Record {
        path: SharePath::parse(path).unwrap(),
        uuid: RecordUuid(u128::from(rev).to_be_bytes()),
        kind: EntryKind::File,
        size: Some(1),
        sha256: Some(Sha256Hash([1; 32])),
        mtime: None,
        unix_mode: None,
        deleted: false,
        last_updated_by: PeerId([by; 16]),
        last_updated_rev: rev,
        update_time: Timestamp::default(),
        vector_clock: Default::default(),
        extra: Default::default(),
        local: None,
        local_sha256: None,
        pending: false,
        signed: None,
        sealed: None,
    }
}

#[test]
fn totals_follow_every_commit() {
    let (db, _root, s) = crate::test_share();
    let dirrec = |p: &str, rev| Record { kind: EntryKind::Directory, size: None, sha256: None, ..rec(p, 1, rev) };
    let mut pending = rec("/b", 1, 3);
    pending.size = Some(10);
    pending.pending = true;
    s.commit(&[rec("/a", 1, 1), dirrec("/d", 2), pending.clone()], Some(3)).unwrap();
    let t = s.totals().unwrap();
    assert_eq!((t.files, t.directories, t.bytes, t.pending_files, t.pending_bytes), (2, 1, 11, 2, 11));
    // Replace, delete, write one path twice in a batch.
    let mut arrived = pending.clone();
    arrived.last_updated_rev = 4;
    arrived.local = Some(crate::record::LocalStat { ino: 1, size: 10, mtime_ns: 0, ctime_ns: 0 });
    arrived.local_sha256 = arrived.sha256;
    let mut gone = rec("/a", 1, 5);
    gone.deleted = true;
    let mut twice = rec("/c", 1, 6);
    twice.size = Some(100);
    let mut again = twice.clone();
    again.last_updated_rev = 7;
    again.size = Some(5);
    s.commit(&[arrived, gone, twice, again], Some(7)).unwrap();
    assert_eq!(s.totals().unwrap(), s.count_totals().unwrap());
    let t = s.totals().unwrap();
    assert_eq!((t.files, t.directories, t.bytes), (2, 1, 15));
    drop(s);
    let s = Store::open(db.path()).unwrap().share("t").unwrap();
    assert_eq!(s.totals().unwrap(), s.count_totals().unwrap(), "kept across a reopen");
}

#[test]
fn records_survive_reopen_and_updates_come_in_rev_order() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.create_share("s1").unwrap();
        let s = store.share("s1").unwrap();
        s.commit(&[rec("/a", 1, 1), rec("/b", 1, 2), rec("/c", 2, 7)], Some(2)).unwrap();
        // /a rewritten by writer 1 at rev 3: its rev-1 index entry must not resurface.
        s.commit(&[rec("/a", 1, 3)], Some(3)).unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let s = store.share("s1").unwrap();
    assert_eq!(s.revision().unwrap(), 3);
    assert_eq!(s.records().unwrap().len(), 3);
    let since = s.since().unwrap();
    assert_eq!(since[&PeerId([1; 16])], 3);
    assert_eq!(since[&PeerId([2; 16])], 7);

    let all: Vec<(String, u64)> =
        s.updates_since(&Since::new()).unwrap().into_iter().map(|r| (r.path.to_string(), r.last_updated_rev)).collect();
    assert_eq!(all, vec![("/b".into(), 2), ("/a".into(), 3), ("/c".into(), 7)]);

    let some: Since = [(PeerId([1; 16]), 2), (PeerId([2; 16]), 7)].into_iter().collect();
    let news: Vec<String> = s.updates_since(&some).unwrap().into_iter().map(|r| r.path.to_string()).collect();
    assert_eq!(news, vec!["/a"]);
    assert!(store.share("nope").is_err());
}

#[test]
fn updates_in_chunks_are_the_same_as_all_at_once_even_with_writes_between_chunks() {
    let (_db, _root, s) = crate::test_share();
    // Three writers with interleaved and tied revisions, and stale index entries.
    let mut batch = Vec::new();
    for i in 0..60u64 {
        let by = [1, 2, 3][usize::try_from(i % 3).unwrap()];
        batch.push(rec(&format!("/f{i}"), by, i / 2 + 1));
    }
    s.commit(&batch, None).unwrap();
    s.commit(&[rec("/f0", 1, 40), rec("/f4", 2, 41)], None).unwrap();
    let path_rev = |r: &Record| (r.path.to_string(), r.last_updated_by, r.last_updated_rev);
    for since in [Since::new(), [(PeerId([1; 16]), 10), (PeerId([3; 16]), 25)].into_iter().collect::<Since>()] {
        let all: Vec<_> = s.updates_since(&since).unwrap().iter().map(path_rev).collect();
        // What `updates::select` gives from every record, writer by writer, is the reference.
        let mut records = s.records().unwrap();
        records.sort_by_key(|r| (r.last_updated_by, r.last_updated_rev));
        let reference: Vec<_> = clearskies_protocol::updates::select(records, &since).iter().map(path_rev).collect();
        assert_eq!(all, reference);
        for limit in [1, 2, 7, 100] {
            let (mut got, mut cursor) = (Vec::new(), None);
            loop {
                let (chunk, next) = s.updates_chunk(&since, cursor, limit).unwrap();
                assert!(chunk.len() <= limit);
                got.extend(chunk.iter().map(path_rev));
                match next {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            assert_eq!(got, all, "limit {limit}");
        }
    }
    // A write between two chunks, ahead of the cursor, is included.
    let (first, cursor) = s.updates_chunk(&Since::new(), None, 5).unwrap();
    assert_eq!(first.len(), 5);
    s.commit(&[rec("/late", 1, 99)], None).unwrap();
    let (mut rest, mut cursor) = (Vec::new(), cursor);
    while let Some(c) = cursor {
        let (chunk, next) = s.updates_chunk(&Since::new(), Some(c), 5).unwrap();
        rest.extend(chunk);
        cursor = next;
    }
    assert_eq!(rest.last().map(|r| r.path.as_str()), Some("/late"));
}

#[test]
fn meta_values_by_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.put_meta("share:b", b"2").unwrap();
    store.put_meta("share:a", b"1").unwrap();
    store.put_meta("code:x", b"3").unwrap();
    let shares = store.meta_with_prefix("share:").unwrap();
    assert_eq!(shares, vec![("share:a".to_owned(), b"1".to_vec()), ("share:b".to_owned(), b"2".to_vec())]);
    store.delete_meta("share:a").unwrap();
    assert_eq!(store.meta_with_prefix("share:").unwrap().len(), 1);
}

#[test]
fn shares_are_isolated_and_droppable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_share("a").unwrap();
    store.create_share("b").unwrap();
    store.share("a").unwrap().commit(&[rec("/x", 1, 1)], Some(1)).unwrap();
    assert!(store.share("b").unwrap().records().unwrap().is_empty());
    store.drop_share("a").unwrap();
    assert!(store.share("a").is_err());
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert!(store.share("a").is_err());
    assert!(store.share("b").is_ok());
}

#[test]
fn a_directory_s_children_are_listed_without_reading_below_them() {
    let (_db, _root, store) = crate::test_share();
    // "/a-1" and "/a.txt" sort between "/a" and "/a/…"; "/b" has no record of its own.
    let paths = ["/", "/a", "/a-1", "/a.txt", "/a/b", "/a/b/c", "/a-1/z", "/b/x"];
    let records: Vec<Record> = paths.iter().enumerate().map(|(i, p)| rec(p, 1, i as u64 + 1)).collect();
    store.commit(&records, None).unwrap();
    let children = |dir: &str| {
        let mut out = Vec::new();
        store
            .children(&SharePath::parse(dir).unwrap(), |name, r| {
                out.push(format!("{name}{}", if r.is_some() { "" } else { " (no record)" }));
                Ok(())
            })
            .unwrap();
        out
    };
    assert_eq!(children("/"), ["a", "a-1", "a.txt", "b (no record)"]);
    assert_eq!(children("/a"), ["b"]);
    assert_eq!(children("/a/b"), ["c"]);
    assert!(children("/a.txt").is_empty());
    // Pages: from just past a name (its own subtree skipped), for as long as asked.
    let page = |after: Option<&str>, n: usize| {
        let mut out = Vec::new();
        store
            .children_after(&SharePath::root(), after, |name, _| {
                out.push(name.to_owned());
                Ok(out.len() < n)
            })
            .unwrap();
        out
    };
    assert_eq!(page(None, 2), ["a", "a-1"]);
    assert_eq!(page(Some("a"), 10), ["a-1", "a.txt", "b"]);
    assert_eq!(page(Some("a.txt"), 10), ["b"]);
    assert_eq!(page(Some("b"), 10), Vec::<String>::new());
    assert_eq!(page(Some("a0"), 10), ["b"]);
    assert_eq!(page(Some("a-1"), 1), ["a.txt"], "`a` (below `a.txt` in key order) was on an earlier page");
    assert_eq!(page(Some("a/zzz"), 10), ["b"]);
    let mut below = Vec::new();
    store
        .each_below(&SharePath::parse("/a").unwrap(), |r| {
            below.push(r.path.to_string());
            Ok(())
        })
        .unwrap();
    assert_eq!(below, ["/a/b", "/a/b/c"]);
    // Our writes by revision, in chunks.
    let (first, more) = store.written_by(&PeerId([1; 16]), 2, 6, 3).unwrap();
    assert_eq!(first.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/a", "/a-1", "/a.txt"]);
    let (rest, more) = store.written_by(&PeerId([1; 16]), more.unwrap(), 6, 3).unwrap();
    assert_eq!(rest.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/a/b", "/a/b/c"]);
    assert!(more.is_none());
}

#[test]
fn a_prefix_ends_at_the_next_key_past_it() {
    assert_eq!(prefix_end(b"p\x01\x02"), Some(b"p\x01\x03".to_vec()));
    assert_eq!(prefix_end(b"p\x01\xff"), Some(b"p\x02".to_vec()));
    assert_eq!(prefix_end(b"p\xff\xff"), Some(b"q".to_vec()));
    assert_eq!(prefix_end(b"\xff\xff"), None);
    assert_eq!(prefix_end(b""), None);
}

#[test]
fn bounded_lookups_see_exactly_their_prefix() {
    // Keys at the edges of a bound: hashes ending in 0xff, and hashes of all 0xff bytes
    // (whose prefix has no end), beside tombstones of deleted neighbours.
    let dir = tempfile::tempdir().unwrap();
    let db = Store::open(dir.path()).unwrap();
    db.create_share("s").unwrap();
    let store = db.share("s").unwrap();
    let shas = [Sha256Hash([0; 32]), Sha256Hash([0xff; 32]), Sha256Hash([7; 32]), {
        let mut b = [7; 32];
        b[31] = 0xff;
        Sha256Hash(b)
    }];
    let cf = store.cf().unwrap();
    for (i, sha) in shas.iter().enumerate() {
        for name in ["/a", "/b"] {
            let path = SharePath::parse(&format!("{name}{i}")).unwrap();
            store.db.put_cf(&cf, hash_key(b'p', sha, &path), b"").unwrap();
        }
    }
    for n in 0..200u8 {
        let key = hash_key(b'p', &Sha256Hash([n; 32]), &SharePath::parse("/gone").unwrap());
        store.db.put_cf(&cf, &key, b"").unwrap();
        store.db.delete_cf(&cf, &key).unwrap();
    }
    for (i, sha) in shas.iter().enumerate() {
        let got: Vec<String> = store.waiting_for(sha).unwrap().iter().map(ToString::to_string).collect();
        assert_eq!(got, [format!("/a{i}"), format!("/b{i}")], "contents {i}");
    }
    assert_eq!(store.all_waiting().unwrap().len(), 8);
    assert!(store.installed(&shas[0]).unwrap().is_empty(), "another tag's range");
    // The bound is in effect: after the last entry of 07..07ff, 192 deleted entries (08..08
    // to c7..c7) come before the next live one (ff..ff). Without the bound the iterator
    // steps over every one of them to find that it is past the prefix.
    rocksdb::perf::set_perf_stats(rocksdb::perf::PerfStatsLevel::EnableCount);
    let mut perf = rocksdb::perf::PerfContext::default();
    perf.reset();
    assert_eq!(store.waiting_for(&shas[3]).unwrap().len(), 2);
    let skipped = perf.metric(rocksdb::perf::PerfMetric::InternalDeleteSkippedCount);
    rocksdb::perf::set_perf_stats(rocksdb::perf::PerfStatsLevel::Disable);
    assert!(skipped < 8, "{skipped} deleted entries stepped over");
}

#[test]
fn every_column_family_shares_the_one_bounded_block_cache() {
    let dir = tempfile::tempdir().unwrap();
    let capacity = |store: &Store, name: &str| {
        let cf = store.db.cf_handle(name).unwrap();
        store.db.property_int_value_cf(&cf, "rocksdb.block-cache-capacity").unwrap()
    };
    {
        let store = Store::open(dir.path()).unwrap();
        store.create_share("a").unwrap();
        for name in [META_CF, "share-a"] {
            assert_eq!(capacity(&store, name), Some(BLOCK_CACHE as u64), "{name}");
        }
    }
    // Families opened again (not created) get it too; and one made later.
    let store = Store::open(dir.path()).unwrap();
    store.create_share("b").unwrap();
    for name in [META_CF, "share-a", "share-b"] {
        assert_eq!(capacity(&store, name), Some(BLOCK_CACHE as u64), "{name}");
    }
    // One cache, not one each: what a family reads shows in every family's cache usage.
    let s = store.share("a").unwrap();
    s.commit(&[rec("/x", 1, 1)], Some(1)).unwrap();
    store.db.flush_cf(&store.db.cf_handle("share-a").unwrap()).unwrap();
    assert!(s.get(&SharePath::parse("/x").unwrap()).unwrap().is_some());
    let usage = |name: &str| {
        let cf = store.db.cf_handle(name).unwrap();
        store.db.property_int_value_cf(&cf, "rocksdb.block-cache-usage").unwrap().unwrap_or(0)
    };
    assert!(usage("share-a") > 0);
    assert_eq!(usage("share-a"), usage("share-b"));
}

#[test]
fn the_memory_probe_reads_the_memtables_and_the_one_block_cache_and_lets_the_database_close() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_share("a").unwrap();
    let probe = store.memory_probe();
    let before = probe.read().unwrap().unwrap();
    let s = store.share("a").unwrap();
    let many: Vec<Record> = (0..500u64).map(|i| rec(&format!("/f{i}"), 1, i + 1)).collect();
    s.commit(&many, Some(1)).unwrap();
    let written = probe.read().unwrap().unwrap();
    assert!(written.memtables > before.memtables, "{before:?} then {written:?}");
    store.db.flush_cf(&store.db.cf_handle("share-a").unwrap()).unwrap();
    assert!(s.get(&SharePath::parse("/f7").unwrap()).unwrap().is_some());
    let read = probe.read().unwrap().unwrap();
    assert!(read.block_cache > 0 && read.block_cache <= BLOCK_CACHE as u64, "{read:?}");
    // The probe holds no reference: the store is its last owner, and once it is gone the
    // probe reads nothing.
    drop(s);
    assert!(store.wait_sole_owner(std::time::Duration::ZERO));
    drop(store);
    assert_eq!(probe.read().unwrap(), None);
}
