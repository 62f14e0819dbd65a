//! The command line, end to end.

use crate::util::{stderr, stdout, Clearskies};

#[test]
fn code_new_makes_codes_that_inspect_accepts() {
    let cs = Clearskies::new();
    let o = cs.run(&["code", "new", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let code = v["access_code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 33);
    assert!(code.starts_with("SYNC"));
    assert_eq!(v["url"].as_str().unwrap(), format!("clearskies://directory/{code}"));

    // Lower case and the URL form are accepted, and give the same access ID.
    let url = format!("clearskies://directory/{}", code.to_lowercase());
    let o = cs.run(&["code", "inspect", &url, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let w: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(w["access_id"], v["access_id"]);
    assert_eq!(w["srp_username"].as_str().unwrap(), format!("clearskies:1:{}", v["access_id"].as_str().unwrap()));
    // The secret half never appears in the output.
    assert!(!stdout(&o).contains("password"));

    // Two codes are never the same.
    let o2 = cs.run(&["code", "new", "--json"]);
    assert_ne!(stdout(&o2), stdout(&cs.run(&["code", "new", "--json"])));
}

#[test]
fn a_typo_is_caught_with_one_clear_line() {
    let cs = Clearskies::new();
    let o = cs.run(&["code", "new", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let mut code: Vec<u8> = v["access_code"].as_str().unwrap().bytes().collect();
    code[10] = if code[10] == b'A' { b'B' } else { b'A' };
    let typo = String::from_utf8(code).unwrap();
    let o = cs.run(&["code", "inspect", &typo]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("check symbol"), "{err}");

    let o = cs.run(&["code", "inspect", "SYNC123ABC"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("33 characters"), "{}", stderr(&o));
}

#[test]
fn bad_usage_exits_2() {
    let o = Clearskies::new().run(&["no-such-command"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn status_exits_1_while_a_share_is_in_error_and_says_what_moved() {
    let d = crate::util::Daemon::start();
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("photos");
    std::fs::create_dir(&root).unwrap();
    let out = d.cs.ok(&["share", root.to_str().unwrap()]);
    // Discovery is off in the tests: the attach command says where to find this daemon.
    assert!(out.contains(&format!("--peer {}", d.listen())), "{out}");
    let healthy = d.cs.run(&["status"]);
    assert!(healthy.status.success(), "{}", stderr(&healthy));
    assert!(stdout(&healthy).starts_with("clearskies-rs "), "{}", stdout(&healthy));
    assert!(stdout(&healthy).contains("since the worker started: 0 B sent, 0 B received"), "{}", stdout(&healthy));
    // The root goes away: the share is in error, and status says so in its exit status.
    std::fs::rename(&root, base.path().join("elsewhere")).unwrap();
    let failed = crate::util::wait_for("status to fail", || {
        let o = d.cs.run(&["status"]);
        (o.status.code() == Some(1)).then_some(o)
    });
    assert!(stdout(&failed).contains("health: a share is in error"), "{}", stdout(&failed));
    let json = d.cs.run(&["status", "--json"]);
    assert_eq!(json.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!((v["health"]["healthy"].as_bool(), v["sent_bytes"].as_u64()), (Some(false), Some(0)), "{v}");
}

#[test]
fn a_code_prefix_too_short_asks_for_more_digits() {
    let d = crate::util::Daemon::start();
    let o = d.cs.run(&["code", "cancel", "abc"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("at least 8 hex digits"), "{}", stderr(&o));
}

#[test]
fn a_daemon_with_an_unusable_config_exits_4_at_once() {
    let cs = Clearskies::new();
    cs.write_config("upload_limit = \"fast\"\n");
    for args in [&["start"][..], &["start", "--foreground"]] {
        let o = cs.run(args);
        assert_eq!(o.status.code(), Some(4), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("upload_limit") && stderr(&o).contains("config.toml"), "{}", stderr(&o));
    }
    // Other commands cannot read it either: a plain failure.
    assert_eq!(cs.run(&["status"]).status.code(), Some(1));
}

#[test]
fn code_random_says_it_registers_nothing_and_new_still_works() {
    let cs = Clearskies::new();
    let o = cs.run(&["code", "random"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("SYNC"), "{}", stdout(&o));
    assert!(stderr(&o).contains("registered with no daemon"), "{}", stderr(&o));
    let help = stdout(&cs.run(&["code", "--help"]));
    assert!(help.contains("random") && help.contains("registered with no daemon"), "{help}");
    assert!(cs.run(&["code", "new", "--json"]).status.success(), "the old name");
}

#[test]
fn names_with_control_characters_are_shown_escaped() {
    let d = crate::util::Daemon::start();
    let base = tempfile::tempdir().unwrap();
    // A folder whose name would clear the terminal and start a forged line.
    let evil = base.path().join("photos\u{1b}[2J\nFAKE");
    std::fs::create_dir(&evil).unwrap();
    d.cs.ok(&["share", evil.to_str().unwrap()]);
    for out in [d.cs.ok(&["list"]), d.cs.ok(&["status"]), d.cs.ok(&["code", "list"])] {
        assert!(!out.contains('\u{1b}') && !out.contains("\nFAKE"), "{out:?}");
        assert!(out.contains("photos\\u{1b}[2J\\nFAKE"), "{out:?}");
    }
    // Errors too: one line, escaped.
    let o = d.cs.run(&["detach", base.path().join("gone\u{1b}]0;title\u{7}").to_str().unwrap()]);
    let err = stderr(&o);
    assert!(!o.status.success() && !err.contains('\u{1b}') && err.contains("gone\\u{1b}]0;title\\u{7}"), "{err:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err:?}");
}
