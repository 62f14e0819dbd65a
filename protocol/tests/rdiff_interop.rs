//! Interoperability with the real librsync: the `rdiff` tool (Debian package `rdiff`).
//!
//! Both directions, on files with inserts, deletes and overwrites: `rdiff` makes a delta
//! from our signature and we patch with it; we make a delta from `rdiff`'s signature and
//! `rdiff patch` applies it. Our signatures are also byte-for-byte `rdiff`'s.
//!
//! Without `rdiff` installed these tests say so and pass, except under `CI=true`, where
//! they fail (`.ci/run` and the README's set-up install it).

use std::fs::{self, File};
use std::io::BufReader;
use std::path::Path;
use std::process::Command;

use clearskies_protocol::rdiff::{self, SigParams, Signature};

fn have_rdiff() -> bool {
    let found = Command::new("rdiff").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var_os("CI").is_none(), "rdiff is not installed (Debian package rdiff); CI needs it");
        eprintln!("rdiff is not installed (Debian package rdiff); interop not checked");
    }
    found
}

fn rdiff(args: &[&Path]) {
    rdiff_with(&[], args);
}

/// Runs `rdiff --force FLAGS ARGS` (force: outputs are overwritten case after case).
fn rdiff_with(flags: &[&str], args: &[&Path]) {
    let out = Command::new("rdiff").arg("--force").args(flags).args(args).output().expect("run rdiff");
    assert!(out.status.success(), "rdiff {flags:?} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Deterministic pseudo-random bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_be_bytes()[3]
        })
        .collect()
}

/// (basis, new) pairs: inserts, deletes, overwrites, a prefix and a suffix, text and noise,
/// a file that shrank to nothing and one that grew from nothing.
fn cases() -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let big = noise(3 << 20, 1);
    let mut edited = big.clone();
    edited[1_000_000..1_004_096].copy_from_slice(&noise(4096, 2));
    edited.splice(2_000_000..2_000_000, noise(777, 3));
    edited.drain(100_000..150_000);
    edited.extend_from_slice(b"appended tail");
    let text: Vec<u8> = (0..20_000).flat_map(|i| format!("line {i}: the quick brown fox\n").into_bytes()).collect();
    let mut text_edit = text.clone();
    text_edit.splice(5000..5000, b"INSERTED ".iter().copied());
    let mut prefixed = noise(10, 4);
    prefixed.extend_from_slice(&big[..500_001]);
    vec![
        ("edits".into(), big.clone(), edited),
        ("text".into(), text, text_edit),
        ("prefix".into(), big[..500_001].to_vec(), prefixed),
        ("unrelated".into(), noise(70_000, 5), noise(90_001, 6)),
        ("emptied".into(), noise(5000, 7), Vec::new()),
        ("from empty".into(), Vec::new(), noise(5000, 8)),
        ("same".into(), big.clone(), big),
    ]
}

#[test]
fn rdiff_applies_our_deltas_made_from_its_signatures() {
    if !have_rdiff() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let p = |n: &str| dir.path().join(n);
    for (name, basis, new) in cases() {
        fs::write(p("basis"), &basis).expect("write basis");
        rdiff(&[Path::new("signature"), &p("basis"), &p("sig")]);
        let sig =
            Signature::parse(&fs::read(p("sig")).expect("read sig"), usize::MAX).expect("rdiff's signature parses");
        let stats = rdiff::delta(&sig, &new[..], File::create(p("delta")).expect("create delta")).expect("delta");
        rdiff(&[Path::new("patch"), &p("basis"), &p("delta"), &p("out")]);
        assert!(fs::read(p("out")).expect("read out") == new, "{name}: rdiff patch gave other bytes ({stats:?})");
        if name == "same" {
            assert_eq!(stats.literal_bytes, 0, "{name}");
        }
    }
}

#[test]
fn we_apply_rdiff_deltas_made_from_our_signatures() {
    if !have_rdiff() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let p = |n: &str| dir.path().join(n);
    for (name, basis, new) in cases() {
        fs::write(p("basis"), &basis).expect("write basis");
        fs::write(p("new"), &new).expect("write new");
        let params = SigParams::for_size(basis.len() as u64);
        rdiff::signature(&basis[..], params, File::create(p("sig")).expect("create sig")).expect("signature");
        rdiff(&[Path::new("delta"), &p("sig"), &p("new"), &p("delta")]);
        let mut out = Vec::new();
        let mut basis_file = File::open(p("basis")).expect("open basis");
        let delta = BufReader::new(File::open(p("delta")).expect("open delta"));
        rdiff::patch(&mut basis_file, delta, &mut out, new.len() as u64).expect("rdiff's delta applies");
        assert!(out == new, "{name}: our patch of rdiff's delta gave other bytes");
    }
}

#[test]
fn our_signatures_are_rdiffs() {
    if !have_rdiff() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let p = |n: &str| dir.path().join(n);
    for (name, basis, _) in cases() {
        fs::write(p("basis"), &basis).expect("write basis");
        for params in [SigParams::for_size(basis.len() as u64), SigParams { block_len: 2048, strong_len: 32 }] {
            let (b, s) = (params.block_len.to_string(), params.strong_len.to_string());
            rdiff_with(&["-b", &b, "-S", &s], &[Path::new("signature"), &p("basis"), &p("sig")]);
            let mut ours = Vec::new();
            rdiff::signature(&basis[..], params, &mut ours).expect("signature");
            assert!(fs::read(p("sig")).expect("read sig") == ours, "{name} {params:?}: signatures differ");
        }
    }
}
