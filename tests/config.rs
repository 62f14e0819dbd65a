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
    assert_eq!(text.lines().count(), SETTINGS.len() + 1, "every setting and `listen`:\n{text}");
    assert_eq!(d.cs.ok(&["config", "get", "min_free_space"]).trim(), "1%");
    // A typed request, as the CLI and a web interface send it.
    let request = Request::GetConfigValue(GetConfigValue { key: Some("mass_delete_percent".to_owned()) });
    let answer: ConfigValue = serde_json::from_value(d.request(&request)).unwrap();
    assert_eq!(answer.value, 50);
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
    let saved = fs::read_to_string(d.cs.home().join("config.toml")).unwrap();
    assert!(saved.contains("mass_delete_percent = 30") && saved.contains("full_scan_interval = 60"), "{saved}");

    // A bad value is refused with what was expected.
    let bad = d.cs.run(&["config", "set", "mass_delete_percent", "0"]);
    assert!(!bad.status.success() && stderr(&bad).contains("1-100"), "{}", stderr(&bad));

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
