//! The Grafana dashboard and the alert rules only use metrics the daemon really exports,
//! and Prometheus's own tool accepts the rules.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use crate::util::Daemon;

/// A path in this checkout: cargo's run-time `CARGO_MANIFEST_DIR` (right even for a build
/// reused from another clone), else the build-time one (the test binary run by hand).
fn repo(rel: &str) -> PathBuf {
    let root = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    PathBuf::from(root).join(rel)
}

/// Metric families a running daemon exports (from its `# TYPE` lines).
fn exported() -> BTreeSet<String> {
    let d = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    d.share_code(dir.path(), &[]);
    let (_, text) = d.http_get("/metrics");
    text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next().map(str::to_owned)).collect()
}

/// Every `clearskies_…` name in `text`, with histogram series suffixes taken off.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("clearskies_") {
        let tail = &rest[i..];
        let end =
            tail.find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')).unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        out.insert(family.to_owned());
        rest = &tail[end..];
    }
    out
}

#[test]
fn dashboard_and_alerts_use_only_exported_metrics() {
    let families = exported();
    let dashboard_text = std::fs::read_to_string(repo("dashboards/clearskies.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard_text).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "clearskies");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10);
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().expect("a numeric panel id")), "duplicate panel id: {p}");
        for key in ["x", "y", "w", "h"] {
            assert!(p["gridPos"][key].is_u64(), "panel {} lacks gridPos.{key}", p["title"]);
        }
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            let expr = t["expr"].as_str().expect("a PromQL expression");
            assert!(!referenced(expr).is_empty(), "panel {}: {expr} uses no clearskies metric", p["title"]);
        }
    }
    let alerts = std::fs::read_to_string(repo("dashboards/alerts.yml")).unwrap();
    for name in referenced(&dashboard_text).union(&referenced(&alerts)) {
        assert!(families.contains(name), "{name} is not exported; exported: {families:?}");
    }
}

#[test]
fn promtool_checks_and_tests_the_alert_rules() {
    let Ok(out) =
        Command::new("promtool").args(["check", "rules", "dashboards/alerts.yml"]).current_dir(repo("")).output()
    else {
        eprintln!("promtool is not installed (Debian package prometheus); rules not checked");
        return;
    };
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let out = Command::new("promtool")
        .args(["test", "rules", "dashboards/alerts_test.yml"])
        .current_dir(repo(""))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
