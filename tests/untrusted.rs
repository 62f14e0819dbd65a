//! Encrypted backup to an untrusted peer: it stores and serves only ciphertext, and a new
//! read-write peer restores the whole share from it alone.

use std::fs;
use std::path::Path;

use crate::util::{wait_for, Daemon};

/// Every file under `dir` (recursively), as bytes.
fn all_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = fs::read(&p) {
                out.push((p.display().to_string(), b));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn an_untrusted_peer_keeps_only_ciphertext_and_restores_the_share() {
    let (a, u, b) = (Daemon::start(), Daemon::start(), Daemon::start());
    let base = tempfile::tempdir().unwrap();
    let (ra, ru, rb) = (base.path().join("a"), base.path().join("backup"), base.path().join("restored"));
    fs::create_dir_all(ra.join("private docs")).unwrap();
    let secret = b"attack at dawn XYZZY-7731".to_vec();
    let photo = crate::util::noise(3_000_000, 7);
    fs::write(ra.join("secret-plans.txt"), &secret).unwrap();
    fs::write(ra.join("private docs/taxes 2026.pdf"), b"income: lots PLUGH-4410").unwrap();
    fs::write(ra.join("holiday.jpg"), &photo).unwrap();

    let code = a.share_code(&ra, &["--mode", "untrusted"]);
    u.cs.ok(&["attach", &code, ru.to_str().unwrap(), "--peer", &a.listen()]);
    wait_for("the backup to hold every file", || {
        let s = u.first_share();
        (s["files"].as_u64()? == 3 && s["pending_files"].as_u64()? == 0).then_some(())
    });
    assert_eq!(u.first_share()["mode"], "untrusted");
    // What it stores is exactly what it was sent: nothing counts as changed there.
    u.cs.ok(&["wait", ru.to_str().unwrap(), "--timeout", "30"]);
    assert_eq!(u.first_share()["local_changes"].as_u64(), Some(0), "{}", u.first_share());

    // Nothing readable on the untrusted side: its share, its data directory (index, keys,
    // log) hold no name and no contents.
    let mut needles: Vec<Vec<u8>> = vec![
        b"secret-plans".to_vec(),
        b"XYZZY".to_vec(),
        b"taxes".to_vec(),
        b"private docs".to_vec(),
        b"PLUGH".to_vec(),
        b"holiday".to_vec(),
        photo[1_000_000..1_000_032].to_vec(),
    ];
    for data in [&secret, &photo] {
        use sha2::Digest;
        needles.push(hex::encode(sha2::Sha256::digest(data)).into_bytes());
    }
    let stored = [all_bytes(&ru), all_bytes(u.cs.home())].concat();
    assert!(stored.iter().map(|(_, b)| b.len()).sum::<usize>() > photo.len(), "the ciphertext is there");
    for (file, bytes) in &stored {
        for n in &needles {
            assert!(!contains(bytes, n), "{file} holds {:?}", String::from_utf8_lossy(n));
        }
    }

    // The untrusted peer proves it stores the files intact.
    let proof = a.cs.ok(&["verify-backup", ra.to_str().unwrap(), "--files", "3"]);
    assert!(proof.contains("3 of 3 files proved"), "{proof}");

    // The original computer is lost; its keys were saved. A new computer restores from the
    // untrusted peer alone.
    let keys = base.path().join("keys.json");
    fs::write(&keys, a.cs.ok(&["keys", "export", ra.to_str().unwrap()])).unwrap();
    a.cs.ok(&["stop"]);
    b.cs.ok(&["attach", "--keys", keys.to_str().unwrap(), rb.to_str().unwrap(), "--peer", &u.listen()]);
    wait_for("the restore", || {
        let done = fs::read(rb.join("secret-plans.txt")).ok()? == secret
            && fs::read(rb.join("holiday.jpg")).ok()? == photo
            && fs::read(rb.join("private docs/taxes 2026.pdf")).ok()? == b"income: lots PLUGH-4410";
        done.then_some(())
    });
    assert_eq!(b.first_share()["mode"], "read_write");

    // The restored computer goes on backing up: a new file reaches the untrusted peer.
    fs::write(rb.join("after.txt"), b"written after the restore").unwrap();
    wait_for("the new file in the backup", || (u.first_share()["files"].as_u64()? == 4).then_some(()));

    // Damage on the untrusted side is found by the next challenge.
    let blobs = all_bytes(&ru);
    let (biggest, _) = blobs.iter().filter(|(p, _)| !p.contains(".clearskies")).max_by_key(|(_, b)| b.len()).unwrap();
    let mut damaged = fs::read(biggest).unwrap();
    damaged[1000] ^= 0xff;
    fs::write(biggest, damaged).unwrap();
    let o = b.cs.run(&["verify-backup", rb.to_str().unwrap(), "--files", "4"]);
    let text = crate::util::stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("3 of 4 files proved") && text.contains("holiday.jpg (wrong answer)"), "{text}");
}
