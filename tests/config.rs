//! Settings through the daemon: `config get` shows every setting `config.toml` takes, and
//! `config set` saves a restart-only one and says it takes effect at the next start.

use std::fs;

use clearskies_actors::config::SETTINGS;
use clearskies_actors::control::cmd::{ConfigValue, GetConfigValue, Request};

use crate::util::{kill, stderr, wait_for, Daemon};

#[test]
fn config_get_shows_every_setting() {
    let d = Daemon::start();
    let all = d.cs.json(&["config", "get", "--json"]);
    for s in SETTINGS {
        assert!(all["config"].get(s.name).is_some(), "{} is missing: {all}", s.name);
    }
    let text = d.cs.ok(&["config", "get"]);
    assert_eq!(text.lines().count(), SETTINGS.len(), "every setting, one a line:\n{text}");
    assert!(!text.lines().any(|l| l.starts_with("listen =")), "`listen` is not a setting:\n{text}");
    assert_eq!(d.cs.ok(&["config", "get", "min_free_space"]).trim(), "1%");
    // A typed request, as the CLI and a web interface send it.
    let request = Request::GetConfigValue(GetConfigValue { key: Some("mass_delete_percent".to_owned()) });
    let answer: ConfigValue = serde_json::from_value(d.request(&request)).unwrap();
    assert_eq!(answer.value, 50);
}

#[test]
fn config_get_says_where_each_value_comes_from_and_set_warns_of_the_environment() {
    // config.toml as `config set` and the README write rates: it must load.
    let mut cs = crate::util::Clearskies::new();
    cs.write_config("upload_limit = \"1M\"\n");
    cs.env.push(("CLEARSKIES_GZIP_LEVEL".to_owned(), "3".to_owned()));
    cs.ok(&["start"]);
    let d = Daemon { cs };
    let text = d.cs.ok(&["config", "get"]);
    let line = |key: &str| text.lines().find(|l| l.starts_with(&format!("{key} ="))).unwrap_or_default().to_owned();
    assert!(
        line("upload_limit").starts_with("upload_limit = 1000000") && line("upload_limit").ends_with("# config.toml"),
        "{text}"
    );
    assert!(
        line("gzip_level").starts_with("gzip_level = 3") && line("gzip_level").ends_with("# CLEARSKIES_GZIP_LEVEL"),
        "{text}"
    );
    assert!(line("mass_delete_percent").ends_with("# default"), "{text}");
    // The port the OS picked is shown with listen_port.
    assert!(line("listen_port").contains("in use: "), "{text}");
    let all = d.cs.json(&["config", "get", "--json"]);
    assert_eq!(
        (all["sources"]["gzip_level"].as_str(), all["sources"]["peers"].as_str()),
        (Some("environment"), Some("default")),
        "{all}"
    );

    // Setting a key its environment variable overrides: done, with a note saying so.
    let o = d.cs.run(&["config", "set", "gzip_level", "5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("CLEARSKIES_GZIP_LEVEL is set in the daemon's environment"), "{}", stderr(&o));
    assert_eq!(d.cs.ok(&["config", "get", "gzip_level"]).trim(), "5", "in effect now");
    let all = d.cs.json(&["config", "get", "--json"]);
    assert_eq!(all["sources"]["gzip_level"], "file", "{all}");
    let o = d.cs.run(&["config", "set", "mass_delete_percent", "40"]);
    assert!(o.status.success() && stderr(&o).is_empty(), "no note without a variable: {}", stderr(&o));
}

#[test]
fn config_set_saves_a_restart_only_setting_and_says_so() {
    let d = Daemon::start();
    let o = d.cs.run(&["config", "set", "full_scan_interval", "60"]);
    assert!(!o.status.success(), "not in effect yet");
    assert!(stderr(&o).contains("next start") && stderr(&o).contains("needs_restart"), "{}", stderr(&o));
    let saved = fs::read_to_string(d.cs.home().join("config.toml")).unwrap();
    assert!(saved.contains("full_scan_interval = 60"), "{saved}");
    assert_eq!(d.cs.ok(&["config", "get", "full_scan_interval"]).trim(), "300", "the value in effect");

    // A runtime one applies at once, and is saved too.
    d.cs.ok(&["config", "set", "mass_delete_percent", "30"]);
    assert_eq!(d.cs.ok(&["config", "get", "mass_delete_percent"]).trim(), "30");
    d.cs.ok(&["config", "set", "min_free_space", "500M"]);
    assert_eq!(d.cs.ok(&["config", "get", "min_free_space"]).trim(), "500000000");
    d.cs.ok(&["config", "set", "scan_hashers", "1"]);
    assert_eq!(d.cs.ok(&["config", "get", "scan_hashers"]).trim(), "1", "the next scan hashes on one thread");
    let saved = fs::read_to_string(d.cs.home().join("config.toml")).unwrap();
    assert!(saved.contains("mass_delete_percent = 30") && saved.contains("full_scan_interval = 60"), "{saved}");

    // A bad value is refused with what was expected.
    let bad = d.cs.run(&["config", "set", "mass_delete_percent", "0"]);
    assert!(!bad.status.success() && stderr(&bad).contains("1-100"), "{}", stderr(&bad));
    let bad = d.cs.run(&["config", "set", "scan_hashers", "65"]);
    assert!(!bad.status.success() && stderr(&bad).contains("0-64"), "{}", stderr(&bad));

    // What was saved loads at the next start (here: the worker's, after a crash).
    let first = d.cs.pid("worker").unwrap();
    kill(first, "-9");
    wait_for("a new worker", || d.cs.pid("worker").filter(|p| *p != first));
    let v = wait_for("the new worker to answer", || {
        let o = d.cs.run(&["config", "get", "full_scan_interval"]);
        o.status.success().then(|| crate::util::stdout(&o))
    });
    assert_eq!(v.trim(), "60");
    assert_eq!(d.cs.ok(&["config", "get", "mass_delete_percent"]).trim(), "30");
}
