//! Protocol hot paths: frame decode of a large attachment, message parsing, bloom builds.
//!
//! Run with `cargo bench -p clearskies-protocol`; figures are recorded in the issue notes.
// A bench panics on any setup failure, and its test data is built with truncating casts.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use clearskies_protocol::bloom::BloomFilter;
use clearskies_protocol::frame::{self, Decoder, Item, Kind};
use clearskies_protocol::message::Message;
use clearskies_protocol::Sha256Hash;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sha2::{Digest, Sha256};

const MIB: usize = 1 << 20;

/// A `!` message with a 256 MiB attachment in 1 MiB chunks, decoded from 256 KiB reads as a
/// socket driver would feed it. Attachment bytes come out zero-copy.
fn frame_decode(c: &mut Criterion) {
    let total = 256 * MIB;
    let mut wire = Vec::with_capacity(total + 4096);
    frame::encode_frame(Kind::Attachment, br#"{"type":"directory.data","sha256":"00"}"#, None, &mut wire).unwrap();
    let chunk: Vec<u8> = (0..MIB).map(|i| (i % 251) as u8).collect();
    for _ in 0..total / MIB {
        frame::encode_chunk(&chunk, &mut wire).unwrap();
    }
    frame::encode_end(&mut wire);

    let mut g = c.benchmark_group("frame");
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("decode_256MiB_attachment_1MiB_chunks", |b| {
        b.iter(|| {
            let mut d = Decoder::new();
            let mut buf = BytesMut::with_capacity(512 * 1024);
            let mut data = 0usize;
            for read in wire.chunks(256 * 1024) {
                buf.extend_from_slice(read);
                while let Some(item) = d.decode(&mut buf).unwrap() {
                    if let Item::Chunk(c) = item {
                        data += c.len();
                    }
                }
            }
            assert_eq!(data, total);
            black_box(data)
        })
    });
    g.finish();
}

fn message_parse(c: &mut Criterion) {
    let update = br#"{"type":"database.update","key":"/photos/2024/IMG_0001.jpg","value":{"size":3762440519,"sha256":"ceab2535bac962a9c9ec8a8ba98145fdb11bb077eaa05d87088688f7524dcb47","mtime":"2014-03-30T12:35:29.113243778Z","unix_mode":"0644"},"uuid":"9223bf8014507dca629123485dc3a207","last_updated_by":"b934d9de020109fde790cd39acce73fc","last_updated_rev":15,"update_time":"2014-02-23T23:45:39.000000000Z","vector_clock":{"b934d9de020109fde790cd39acce73fc":44,"d38a0af145c48b75289e72985e3cc50a":35,"c35be68aadc0e208b6c71f7be77f2975":43}}"#;
    let get = br#"{"type":"directory.get","sha256":"ceab2535bac962a9c9ec8a8ba98145fdb11bb077eaa05d87088688f7524dcb47","range":[0,100000]}"#;
    let mut g = c.benchmark_group("message");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_database_update", |b| b.iter(|| Message::decode(black_box(update)).unwrap()));
    g.bench_function("decode_directory_get", |b| b.iter(|| Message::decode(black_box(get)).unwrap()));
    let m = Message::decode(update).unwrap();
    g.bench_function("encode_database_update", |b| b.iter(|| black_box(&m).encode()));
    // The frame layer validates JSON too; this is the full per-message receive cost.
    let mut wire = Vec::new();
    frame::encode_frame(Kind::Plain, update, None, &mut wire).unwrap();
    g.bench_function("frame_and_decode_database_update", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&wire[..]);
            let Some(Item::Frame(f)) = Decoder::new().decode(&mut buf).unwrap() else { unreachable!() };
            Message::decode(&f.body).unwrap()
        })
    });
    g.finish();
}

fn bloom_build(c: &mut Criterion) {
    let n = 1_000_000u32;
    let hashes: Vec<Sha256Hash> = (0..n).map(|i| Sha256Hash(Sha256::digest(i.to_le_bytes()).into())).collect();
    let mut g = c.benchmark_group("bloom");
    g.throughput(Throughput::Elements(u64::from(n)));
    g.sample_size(10);
    g.bench_function("build_1M_entries_1pct", |b| {
        b.iter(|| {
            let mut f = BloomFilter::for_entries(hashes.len(), 0.01);
            for h in &hashes {
                f.insert(h);
            }
            f
        })
    });
    g.finish();
}

criterion_group!(benches, frame_decode, message_parse, bloom_build);
criterion_main!(benches);
