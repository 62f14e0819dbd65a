//! Selective sync: a subtree, exclude patterns and `.clearskiesignore`, all local choices.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use crate::util::{noise, stderr, wait_for, Daemon};

fn write(p: &Path, data: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

fn files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let rel = e.path().strip_prefix(root).unwrap().to_str().unwrap().to_owned();
            if rel == ".clearskies" {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn subtree_exclude_and_ignore_file_keep_only_what_was_chosen() {
    let (a, b, c) = (Daemon::start(), Daemon::start(), Daemon::start());
    let base = tempfile::tempdir().unwrap();
    let (ra, rb, rc) = (base.path().join("a"), base.path().join("b"), base.path().join("c"));
    for f in ["photos/2024/a.jpg", "photos/2024/trip/b.jpg", "photos/2023/c.jpg", "docs/d.txt", "e.tmp"] {
        write(&ra.join(f), f.as_bytes());
    }
    let code = a.share_code(&ra, &["--multi-use"]);

    // A bad selection is refused before anything is joined.
    let bad = b.cs.run(&["attach", &code, rb.to_str().unwrap(), "--peer", &a.listen(), "--subtree", "../etc"]);
    assert!(!bad.status.success() && stderr(&bad).contains("subtree"), "{}", stderr(&bad));

    b.cs.ok(&["attach", &code, rb.to_str().unwrap(), "--peer", &a.listen(), "--subtree", "photos/2024"]);
    let c_args = ["--exclude", "*.tmp", "--exclude", "docs/"];
    c.cs.ok(&[&["attach", &code, rc.to_str().unwrap(), "--peer", &a.listen()][..], &c_args].concat());
    // `wait` finishes: what a replica ignores is not "out of sync".
    b.cs.ok(&["wait", rb.to_str().unwrap(), "--timeout", "60"]);
    c.cs.ok(&["wait", rc.to_str().unwrap(), "--timeout", "60"]);
    assert_eq!(files(&rb), ["photos/2024/a.jpg", "photos/2024/trip/b.jpg"]);
    assert_eq!(files(&rc), ["photos/2023/c.jpg", "photos/2024/a.jpg", "photos/2024/trip/b.jpg"]);
    let list = c.cs.json(&["list", "--json"]);
    assert_eq!(list["shares"][0]["pending_files"], 0, "{list}");
    // `list` says what each replica keeps.
    assert_eq!(list["shares"][0]["exclude"], serde_json::json!(["*.tmp", "docs/"]), "{list}");
    assert!(b.cs.ok(&["list"]).contains("only photos/2024 is synced here"), "{}", b.cs.ok(&["list"]));
    assert!(c.cs.ok(&["list"]).contains("never synced here: *.tmp, docs/"), "{}", c.cs.ok(&["list"]));

    // Local files in ignored places stay local; deleting an ignored file elsewhere deletes
    // nothing here, and nothing ignored is ever deleted on the peers.
    write(&rc.join("docs/mine.txt"), b"c's own");
    write(&rc.join("scratch.tmp"), b"c's scratch");
    write(&rb.join("photos/2024/new.jpg"), b"from b");
    wait_for("b's photo on a", || ra.join("photos/2024/new.jpg").exists().then_some(()));
    c.cs.ok(&["wait", rc.to_str().unwrap(), "--timeout", "60"]);
    assert!(!ra.join("docs/mine.txt").exists() && !ra.join("scratch.tmp").exists());
    assert!(ra.join("docs/d.txt").exists() && ra.join("e.tmp").exists() && ra.join("photos/2023/c.jpg").exists());

    // .clearskiesignore: an ordinary synced file whose patterns apply from the next scan.
    write(&rc.join(".clearskiesignore"), b"*.log\n");
    wait_for("the ignore file on a", || ra.join(".clearskiesignore").exists().then_some(()));
    write(&rc.join("build.log"), b"built");
    write(&rc.join("notes.txt"), b"noted");
    wait_for("the note on a", || ra.join("notes.txt").exists().then_some(()));
    c.cs.ok(&["wait", rc.to_str().unwrap(), "--timeout", "60"]);
    assert!(!ra.join("build.log").exists(), "an ignored file was sent");
    // Lifting the pattern sends what it held back.
    write(&rc.join(".clearskiesignore"), b"# nothing\n");
    wait_for("the log on a once no longer ignored", || ra.join("build.log").exists().then_some(()));
    assert_eq!(fs::read(ra.join("build.log")).unwrap(), b"built");
}

#[test]
fn cat_streams_files_this_replica_does_not_keep_with_ranges() {
    let (a, b) = (Daemon::start(), Daemon::start());
    let base = tempfile::tempdir().unwrap();
    let (ra, rb) = (base.path().join("a"), base.path().join("b"));
    // 40 MiB: several ranges (`transfer::RANGE`, 4 MiB). Pseudo-random, so every offset is distinct.
    let movie = noise(40 << 20, 1);
    write(&ra.join("videos/movie.mkv"), &movie);
    write(&ra.join("notes.txt"), b"kept here");
    let code = a.share_code(&ra, &[]);
    b.cs.ok(&["attach", &code, rb.to_str().unwrap(), "--peer", &a.listen(), "--exclude", "videos/"]);
    b.cs.ok(&["wait", rb.to_str().unwrap(), "--timeout", "60"]);
    assert!(!rb.join("videos").exists());

    let cat = |args: &[&str]| {
        let o = b.cs.run(&[&["cat", rb.to_str().unwrap()][..], args].concat());
        assert!(o.status.success(), "cat {args:?}: {}", stderr(&o));
        o.stdout
    };
    // The whole file, from the peer, without a copy left here.
    assert!(cat(&["videos/movie.mkv"]) == movie, "the streamed file differs");
    assert!(
        !rb.join("videos").exists()
            && fs::read_dir(rb.join(".clearskies/partial"))
                .into_iter()
                .flatten()
                .flatten()
                .all(|shard| fs::read_dir(shard.path()).is_ok_and(|mut d| d.next().is_none()))
    );
    // Ranges: the start, across a range boundary (16 MiB), the end, and past the end.
    let mib16 = 16u64 << 20;
    for (offset, length) in [(0u64, 10u64), (mib16 - 3, 7), (mib16 * 2 + 12345, 1 << 20), ((40 << 20) - 5, 100)] {
        let got = cat(&["videos/movie.mkv", "--offset", &offset.to_string(), "--length", &length.to_string()]);
        let from = usize::try_from(offset).unwrap();
        let to = usize::try_from((offset + length).min(40 << 20)).unwrap();
        assert!(got == movie[from..to], "range {offset}+{length}");
    }
    // A file kept here is read locally.
    assert_eq!(cat(&["notes.txt"]), b"kept here");
    // The same over HTTP on the loopback metrics address, with Range requests.
    let url = b.cs.ok(&["cat", "--url", rb.to_str().unwrap(), "videos/movie.mkv"]).trim().to_owned();
    let prefix = url.strip_suffix("videos/movie.mkv").expect("the URL ends with the file").to_owned();
    let prefix = prefix.split_once("/files/").map(|(_, p)| format!("/files/{p}")).unwrap();
    let raw_get = |target: &str, range: Option<&str>| {
        let mut s = std::net::TcpStream::connect(b.metrics_addr()).unwrap();
        let range = range.map(|r| format!("Range: {r}\r\n")).unwrap_or_default();
        write!(s, "GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{range}\r\n").unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        let split = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        // Header names in lower case (HTTP's are case-insensitive).
        let head = String::from_utf8_lossy(&all[..split]).into_owned();
        let head = head.lines().enumerate().map(|(i, l)| if i == 0 { l.to_owned() } else { l.to_ascii_lowercase() });
        (head.collect::<Vec<_>>().join("\r\n"), all[split + 4..].to_vec())
    };
    let get = |path: &str, range: Option<&str>| raw_get(&format!("{prefix}{path}"), range);
    // Without the token (another user of this computer): nothing.
    let id = b.cs.json(&["list", "--json"])["shares"][0]["id"].as_str().unwrap().to_owned();
    let (head, _) = raw_get(&format!("/files/{id}/videos/movie.mkv"), None);
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let (head, _) = raw_get(&format!("/files/{}/{id}/videos/movie.mkv", "0".repeat(32)), None);
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let (head, body) = get("videos/movie.mkv", Some("bytes=16777200-16777299"));
    assert!(
        head.starts_with("HTTP/1.1 206") && head.contains("content-range: bytes 16777200-16777299/41943040"),
        "{head}"
    );
    assert!(body == movie[16_777_200..16_777_300]);
    let (head, body) = get("videos/movie.mkv", Some("bytes=-10"));
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert!(body == movie[movie.len() - 10..]);
    let (head, body) = get("videos/movie.mkv", None);
    assert!(
        head.starts_with("HTTP/1.1 200") && head.contains("accept-ranges: bytes") && head.contains("video/x-matroska"),
        "{head}"
    );
    assert!(body == movie, "the whole file over HTTP differs");
    let (head, _) = get("videos/movie.mkv", Some("bytes=99999999-"));
    assert!(head.starts_with("HTTP/1.1 416"), "{head}");
    // The movie's token opens nothing else; another file's own address does.
    let (head, _) = get("videos/none.mkv", None);
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let own = |file: &str| {
        let url = b.cs.ok(&["cat", "--url", rb.to_str().unwrap(), file]).trim().to_owned();
        raw_get(&format!("/files/{}", url.split_once("/files/").unwrap().1), None)
    };
    let (head, _) = own("videos/none.mkv");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let (head, _) = own("../../etc/passwd");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");

    // Bad input: clear errors.
    let o = b.cs.run(&["cat", rb.to_str().unwrap(), "videos/none.mkv"]);
    assert!(!o.status.success() && stderr(&o).contains("no_such_file"), "{}", stderr(&o));
    let o = b.cs.run(&["cat", rb.to_str().unwrap(), "notes.txt", "--offset", "100"]);
    assert!(!o.status.success() && stderr(&o).contains("bad_range"), "{}", stderr(&o));
}
