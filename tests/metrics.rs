//! `/metrics` and `/health`: scraped over real HTTP from running daemons.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};

use crate::sync::synced_pair;
use crate::util::{http_get, try_http_get, wait_for, Daemon};

/// The exposition text as `name{labels}` → value, checking every line's shape and that
/// every sample belongs to a family declared with `# TYPE`.
pub(crate) fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut types = BTreeMap::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample line: series value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(name.starts_with("clearskies_"), "{line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| types.get(*f).is_some_and(|k| k == "histogram")))
            .unwrap_or(name);
        assert!(types.contains_key(family), "{name} has no # TYPE");
        assert!(!series.contains("path="), "no path labels: {line}");
        samples.insert(series.to_owned(), value);
    }
    samples
}

#[test]
fn metrics_and_health_report_a_real_sync() {
    let data = vec![7u8; 3 << 20];
    let p = synced_pair("movie.bin", &data);
    let share = p.a.cs.json(&["list", "--json"])["shares"][0]["id"].as_str().unwrap().to_owned();

    // The receiver: one download, its bytes, its peer, nothing out of sync, a last sync time.
    let m = wait_for("b's metrics to show the sync", || {
        let (code, text) = p.b.http_get("/metrics");
        assert_eq!(code, 200);
        let m = parse(&text);
        let synced = m.get(&format!("clearskies_share_last_sync_timestamp_seconds{{share=\"{share}\"}}"));
        synced.is_some_and(|t| *t > 0.0).then_some(m)
    });
    assert_eq!(m["clearskies_peers_connected{access_level=\"read_write\"}"], 1.0);
    assert!(m["clearskies_transfer_duration_seconds_count"] >= 1.0);
    // The connection uses gzip (the handshake before it may arrive with the channel's own
    // reads, so the plain counter can stay at 0).
    assert!(m["clearskies_peer_received_bytes_total{extension=\"gzip\"}"] > 0.0);
    assert!(m.contains_key("clearskies_peer_received_bytes_total{extension=\"plain\"}"));
    assert_eq!(m[&format!("clearskies_share_out_of_sync_files{{share=\"{share}\"}}")], 0.0);
    assert_eq!(m[&format!("clearskies_share_error{{share=\"{share}\"}}")], 0.0);
    assert!(m["clearskies_store_write_duration_seconds_count"] >= 1.0);
    // The index's memory: its memtables hold the records just written; the block cache is
    // the one 8 MiB cache at most.
    assert!(m["clearskies_index_memory_bytes{part=\"memtables\"}"] > 0.0);
    assert!(m.contains_key("clearskies_index_memory_bytes{part=\"table_readers\"}"));
    assert!(m["clearskies_index_memory_bytes{part=\"block_cache\"}"] <= f64::from(8u32 << 20));
    assert!(m.contains_key("clearskies_actor_restarts_total{actor=\"share\"}"));
    // The sender sent the file.
    let ma = parse(&p.a.http_get("/metrics").1);
    assert!(ma["clearskies_peer_sent_bytes_total{extension=\"gzip\"}"] > 0.0);
    assert!(ma["clearskies_share_scan_duration_seconds_count"] >= 1.0);

    // Health: in sync, since when.
    let (code, body) = p.b.http_get("/health");
    assert_eq!(code, 200, "{body}");
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["healthy"], true, "{h}");
    assert!(h["shares"][0]["in_sync_since"].as_u64().is_some(), "{h}");
    let status = p.b.cs.json(&["status", "--json"]);
    assert_eq!(status["health"]["healthy"], true, "{status}");
    assert_eq!(status["worker_restarts"], 0, "{status}");
    assert!(status["daemon_uptime_seconds"].is_u64(), "{status}");

    // A share whose root is gone is an error: /health answers 503 and says why.
    std::fs::remove_dir_all(&p.ra).unwrap();
    let body = wait_for("a's /health to report the missing root", || {
        let (code, body) = p.a.http_get("/health");
        (code == 503).then_some(body)
    });
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["healthy"], false);
    assert!(h["shares"][0]["error"].as_str().unwrap().contains("missing"), "{h}");
    let ma = parse(&p.a.http_get("/metrics").1);
    assert_eq!(ma[&format!("clearskies_share_error{{share=\"{share}\"}}")], 1.0);
    // Nothing was deleted on the peer.
    assert_eq!(std::fs::read(p.rb.join("movie.bin")).unwrap(), data);

    // Anything else is a clean 404/405, and a junk request gets no answer but no harm.
    assert_eq!(p.a.http_get("/nope").0, 404);
    let addr = p.a.metrics_addr();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(&[b'x'; 20_000]).unwrap_or(());
    drop(s);
    assert_eq!(http_get(&addr, "/health").0, 503);
}

#[test]
fn promtool_accepts_the_exposition_text() {
    let d = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    d.share_code(dir.path(), &[]);
    let (code, text) = d.http_get("/metrics");
    assert_eq!(code, 200);
    parse(&text);
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("promtool is not installed (Debian package prometheus); parsed the text only");
        return;
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics:\n{said}\n{text}");
}

/// A real Prometheus server scrapes the daemon (when the Debian package is installed).
#[test]
fn a_real_prometheus_scrapes_the_daemon() {
    if Command::new("prometheus").arg("--version").output().is_err() {
        eprintln!("prometheus is not installed (Debian package prometheus); skipped the real scrape");
        return;
    }
    let d = Daemon::start();
    let target = d.metrics_addr();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: clearskies\n    static_configs: [{{targets: ['{target}']}}]\n"
        ),
    )
    .unwrap();
    // Prometheus cannot report a port it picked, so take a free one from the OS first.
    let web = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let mut prom = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let result = std::panic::catch_unwind(|| {
        wait_for("prometheus to scrape clearskies", || {
            let q = "/api/v1/query?query=clearskies_worker_uptime_seconds";
            let body = try_http_get(&web, q)?.1;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            (v["data"]["result"].as_array()?.len() == 1).then_some(())
        });
        // And the scrape was healthy.
        let body = http_get(&web, "/api/v1/query?query=up").1;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["data"]["result"][0]["value"][1], "1", "{v}");
    });
    let _ = prom.kill();
    let _ = prom.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn health_reports_a_share_whose_peers_refuse_our_key() {
    let p = synced_pair("x.txt", b"x");
    // The sharer removes the share: it no longer knows the key b reconnects with.
    p.a.cs.ok(&["detach", p.ra.to_str().unwrap()]);
    let body = wait_for("b's /health to report the refused key", || {
        let (code, body) = p.b.http_get("/health");
        (code == 503).then_some(body)
    });
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(h["shares"][0]["error"].as_str().unwrap().contains("refuse our key"), "{h}");
}

#[test]
fn health_reports_a_full_disk_and_nothing_partial_appears() {
    let base = tempfile::tempdir().unwrap();
    let small = base.path().join("small");
    let Some(_mount) = crate::util::Mount::tmpfs(&small, 4) else {
        eprintln!("cannot mount a tmpfs (needs root); the full-disk health check did not run");
        return;
    };
    let (a, b) = (Daemon::start(), Daemon::start());
    let ra = base.path().join("a");
    std::fs::create_dir_all(&ra).unwrap();
    let data = vec![9u8; 8 << 20];
    std::fs::write(ra.join("too-big.bin"), &data).unwrap();
    let code = a.share_code(&ra, &[]);
    let rb = small.join("share");
    b.cs.ok(&["attach", &code, rb.to_str().unwrap(), "--peer", &a.listen()]);
    let body = wait_for("b's /health to report the full disk", || {
        let (code, body) = b.http_get("/health");
        (code == 503).then_some(body)
    });
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(h["shares"][0]["error"].as_str().unwrap().contains("disk full"), "{h}");
    assert!(!rb.join("too-big.bin").exists(), "nothing partial under the real name");
}

/// `GET path` with `Host: host` (or none): the status code and body.
fn get_with_host(addr: &str, path: &str, host: Option<&str>) -> (u16, String) {
    use std::io::Read;
    let mut s = TcpStream::connect(addr).unwrap();
    // Without a Host header: HTTP/1.0 (HTTP/1.1 requires one, and gets 400 without).
    let (version, host) = match host {
        Some(h) => ("1.1", format!("Host: {h}\r\n")),
        None => ("1.0", String::new()),
    };
    write!(s, "GET {path} HTTP/{version}\r\n{host}Connection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.split_whitespace().nth(1).unwrap().parse().unwrap(), body.to_owned())
}

/// DNS rebinding: a web page whose name points at 127.0.0.1 must not read `/health`,
/// `/metrics` or `/files`; and what anyone reaching the address reads holds no share path.
#[test]
fn http_refuses_other_host_names_and_shows_no_share_paths() {
    let d = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Private Project Zebra");
    std::fs::create_dir_all(&root).unwrap();
    d.share_code(&root, &[]);
    let addr = d.metrics_addr();
    let port = addr.rsplit_once(':').unwrap().1;
    for path in ["/health", "/metrics", "/"] {
        for host in ["evil.example", &format!("evil.example:{port}"), "127.0.0.1.nip.io", "localhost.evil.example"] {
            let (code, body) = get_with_host(&addr, path, Some(host));
            assert_eq!(code, 403, "{path} for Host: {host}: {body}");
            assert!(!body.contains("Zebra") && !body.contains("clearskies_"), "{body}");
        }
        // `/` is the web interface: without a session, its login page.
        let want = if path == "/" { 401 } else { 200 };
        for host in [Some(addr.as_str()), Some("localhost"), Some(&format!("localhost:{port}")), Some("[::1]"), None] {
            let (code, body) = get_with_host(&addr, path, host);
            assert_eq!(code, want, "{path} for Host: {host:?}");
            assert!(path != "/" || body.contains("clearskies open") && !body.contains("Zebra"), "{body}");
        }
    }
    // /files too (the token is checked after the host).
    assert_eq!(get_with_host(&addr, "/files/x/y/z", Some("evil.example")).0, 403);

    // No share path in /health or /metrics: shares are told apart by their ID.
    let id = d.first_share()["id"].as_str().unwrap().to_owned();
    let (_, health) = get_with_host(&addr, "/health", Some("localhost"));
    let h: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(h["shares"][0]["id"], id.as_str(), "{h}");
    assert!(h["shares"][0].get("path").is_none() && !health.contains("Zebra"), "{health}");
    let (_, metrics) = get_with_host(&addr, "/metrics", Some("localhost"));
    assert!(!metrics.contains("Zebra"), "{metrics}");
    // An error that names the root says "the share root" instead.
    std::fs::remove_dir_all(&root).unwrap();
    let body = wait_for("the missing root in /health", || {
        let (code, body) = get_with_host(&addr, "/health", None);
        (code == 503).then_some(body)
    });
    assert!(!body.contains("Zebra") && !body.contains(dir.path().to_str().unwrap()), "{body}");
    // The control socket (this computer's user only) still shows the path.
    let status = d.cs.json(&["status", "--json"]);
    assert_eq!(status["health"]["shares"][0]["path"].as_str(), root.to_str(), "{status}");
}
