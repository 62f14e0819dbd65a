//! Every answer the CLI reads, against the JSON the daemon sent before the answers could be
//! read back (written out literally): the same keys and values, and read back equal. Names
//! sent as strings keep their spellings, and read a name they do not know as `Unknown`.

use std::fmt::Debug;

use clearskies_protocol::message::core::AccessLevel;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::*;
use crate::share::registry;

/// `answer`, as the daemon writes it, is the JSON `json`; and `json` reads as `answer`.
fn same<T: Serialize + DeserializeOwned + PartialEq + Debug>(answer: &T, json: &str) {
    let expected: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
    assert_eq!(to_json(answer).unwrap(), expected, "{json}");
    let read: T = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
    assert_eq!(&read, answer, "{json}");
}

const ID: &str = "5f0c9e4f3d1a2b7c8e9f00112233445566778899aabbccddeeff001122334455";
const PEER: &str = "0123456789abcdef0123456789abcdef";

fn share(path: &str, status: SyncState, mode: Mode) -> ShareStatus {
    ShareStatus {
        path: path.into(),
        status,
        error: None,
        mode,
        files: 0,
        directories: 1,
        bytes: 0,
        revision: 0,
        synced: false,
        pending_files: 0,
        pending_bytes: 0,
        partial_bytes: None,
        selection: Default::default(),
        peers: 0,
        local_changes: 0,
        held_deletions: 0,
        unwatched: None,
        alone_since: None,
        id: ID.into(),
        peer_id: PEER.into(),
        in_sync_since: None,
        last_synced: None,
    }
}

#[test]
fn list_shares() {
    let in_sync = ShareStatus {
        files: 12,
        directories: 3,
        bytes: 40_960,
        revision: 57,
        synced: true,
        peers: 1,
        in_sync_since: Some(1_700_000_000),
        last_synced: Some(1_700_000_300),
        ..share("/home/a/Documents", SyncState::Idle, Mode::ReadWrite)
    };
    let read_only = ShareStatus {
        files: 4,
        bytes: 100,
        pending_files: 2,
        pending_bytes: 2048,
        partial_bytes: Some(1024),
        peers: 2,
        local_changes: 1,
        unwatched: Some("the inotify watch limit (8192) is too low".into()),
        last_synced: Some(1_700_000_100),
        ..share("/home/a/From Dave", SyncState::Syncing, Mode::ReadOnly)
    };
    let restarting = ShareStatus {
        directories: 0,
        error: Some("the share's actor is restarting".into()),
        ..share("/srv/backup", SyncState::Error, Mode::Unknown)
    };
    let shares = Shares { shares: vec![in_sync, read_only, restarting] };
    same(
        &shares,
        &format!(
            r#"{{"shares":[
            {{"path":"/home/a/Documents","status":"idle","mode":"read_write","files":12,"directories":3,
              "bytes":40960,"revision":57,"synced":true,"pending_files":0,"pending_bytes":0,"peers":1,
              "local_changes":0,"held_deletions":0,"id":"{ID}","peer_id":"{PEER}",
              "in_sync_since":1700000000,"last_synced":1700000300}},
            {{"path":"/home/a/From Dave","status":"syncing","mode":"read_only","files":4,"directories":1,
              "bytes":100,"revision":0,"synced":false,"pending_files":2,"pending_bytes":2048,"partial_bytes":1024,"peers":2,
              "local_changes":1,"held_deletions":0,
              "unwatched":"the inotify watch limit (8192) is too low",
              "id":"{ID}","peer_id":"{PEER}","last_synced":1700000100}},
            {{"path":"/srv/backup","status":"error","error":"the share's actor is restarting",
              "mode":"unknown","files":0,"directories":0,"bytes":0,"revision":0,"synced":false,
              "pending_files":0,"pending_bytes":0,"peers":0,"local_changes":0,"held_deletions":0,
              "id":"{ID}","peer_id":"{PEER}"}}
            ]}}"#
        ),
    );
    same(&Shares { shares: vec![] }, r#"{"shares":[]}"#);
}

#[test]
fn list_access_codes_and_cancel_access_code() {
    let custom = CodeEntry {
        access_id: ID.into(),
        username: Some("dave".into()),
        path: "/home/a/Documents".into(),
        mode: Mode::ReadOnly,
        state: CodeState::Active,
        created: 1_700_000_000,
        expires: None,
        multi_use: true,
        used_by: vec![],
    };
    let used = CodeEntry {
        username: None,
        mode: Mode::Untrusted,
        state: CodeState::Used,
        expires: Some(1_700_086_400),
        multi_use: false,
        used_by: vec![PEER.into()],
        ..custom.clone()
    };
    same(
        &Codes { codes: vec![custom, used.clone()] },
        &format!(
            r#"{{"codes":[
            {{"access_id":"{ID}","username":"dave","path":"/home/a/Documents","mode":"read_only",
              "state":"active","created":1700000000,"expires":null,"multi_use":true,"used_by":[]}},
            {{"access_id":"{ID}","path":"/home/a/Documents","mode":"untrusted","state":"used",
              "created":1700000000,"expires":1700086400,"multi_use":false,"used_by":["{PEER}"]}}
            ]}}"#
        ),
    );
    let expired = CodeEntry { state: CodeState::Expired, mode: Mode::ReadWrite, ..used };
    same(
        &expired,
        &format!(
            r#"{{"access_id":"{ID}","path":"/home/a/Documents","mode":"read_write","state":"expired",
              "created":1700000000,"expires":1700086400,"multi_use":false,"used_by":["{PEER}"]}}"#
        ),
    );
}

#[test]
fn create_access_code_and_add_share() {
    let generated = CodeCreated {
        access_code: Some("SYNCABCDEFGHIJKLMNOP".into()),
        url: Some("clearskies://directory/SYNCABCDEFGHIJKLMNOP".into()),
        username: None,
        access_id: ID.into(),
        expires: Some(1_700_086_400),
        multi_use: false,
    };
    same(
        &generated,
        &format!(
            r#"{{"access_code":"SYNCABCDEFGHIJKLMNOP","url":"clearskies://directory/SYNCABCDEFGHIJKLMNOP",
              "access_id":"{ID}","expires":1700086400,"multi_use":false}}"#
        ),
    );
    let custom =
        CodeCreated { access_code: None, url: None, username: Some("dave".into()), expires: None, ..generated };
    same(&custom, &format!(r#"{{"username":"dave","access_id":"{ID}","expires":null,"multi_use":false}}"#));
    let created = ShareCreated { path: "/home/a/From Dave".into(), id: ID.into() };
    same(&created, &format!(r#"{{"path":"/home/a/From Dave","id":"{ID}"}}"#));
}

#[test]
fn list_peers() {
    let entry = |address: &str, state, source, peer: Option<&str>, failures| PeerEntry {
        path: "/home/a/Documents".into(),
        share: ID.into(),
        peer: peer.map(str::to_owned),
        address: address.into(),
        state,
        source,
        failures,
        name: None,
        access_level: None,
        transport: None,
        last_seen: None,
        sent_bytes: None,
        received_bytes: None,
    };
    let named = PeerEntry {
        name: Some("Dave's NAS".into()),
        access_level: Some(Mode::ReadOnly),
        transport: Some("tcp".into()),
        last_seen: Some(1_700_000_000),
        sent_bytes: Some(10),
        received_bytes: Some(20),
        ..entry("10.0.0.6:49200", PeerState::Offline, PeerSource::Incoming, Some(PEER), None)
    };
    let peers = Peers {
        peers: vec![
            named,
            entry("10.0.0.1:49200", PeerState::Connected, PeerSource::Manual, Some(PEER), None),
            entry("10.0.0.2:49200", PeerState::Connected, PeerSource::Incoming, Some(PEER), None),
            entry("10.0.0.3:49200", PeerState::Connected, PeerSource::Tracker, Some(PEER), None),
            entry("10.0.0.4:49200", PeerState::Found, PeerSource::Lan, None, None),
            entry("10.0.0.5:49200", PeerState::Dialing, PeerSource::Tracker, None, None),
            entry("far.example:49200", PeerState::Dialing, PeerSource::Manual, None, Some(3)),
        ],
    };
    let line = |address: &str, state: &str, source: &str, more: &str| {
        format!(
            r#"{{"path":"/home/a/Documents","share":"{ID}",{more}"address":"{address}","state":"{state}","source":"{source}"}}"#
        )
    };
    let with_peer = format!(r#""peer":"{PEER}","#);
    let lines = [
        line(
            "10.0.0.6:49200",
            "offline",
            "incoming",
            &format!(
                r#"{with_peer}"name":"Dave's NAS","access_level":"read_only","transport":"tcp","last_seen":1700000000,"sent_bytes":10,"received_bytes":20,"#
            ),
        ),
        line("10.0.0.1:49200", "connected", "manual", &with_peer),
        line("10.0.0.2:49200", "connected", "incoming", &with_peer),
        line("10.0.0.3:49200", "connected", "tracker", &with_peer),
        line("10.0.0.4:49200", "found", "lan", ""),
        line("10.0.0.5:49200", "dialing", "tracker", ""),
        line("far.example:49200", "dialing", "manual", r#""failures":3,"#),
    ];
    same(&peers, &format!(r#"{{"peers":[{}]}}"#, lines.join(",")));
}

#[test]
fn status_and_health() {
    let status = Status {
        paused: false,
        tracking: true,
        nat_punctured: false,
        upload_rate: 1500,
        download_rate: 2_000_000,
        upload_limit: 0,
        download_limit: 500_000,
        software: "clearskies 0.1.0".into(),
        pid: 4242,
        uptime_seconds: 60,
        daemon_uptime_seconds: Some(3600),
        worker_restarts: 1,
        actor_restarts: 2,
        metrics: Some("127.0.0.1:49222".into()),
        web_https: None,
        listen: Some("0.0.0.0:49200".into()),
        reach: None,
        peers: 2,
        sent_bytes: 7_000,
        received_bytes: 9_000_000,
    };
    let in_sync = ShareHealth {
        id: ID.into(),
        path: Some("/home/a/Documents".into()),
        status: SyncState::Idle,
        synced: true,
        in_sync_since: Some(1_700_000_000),
        last_synced: Some(1_700_000_300),
        peers: 1,
        error: None,
        local_changes: 0,
        alone_since: None,
    };
    let held = ShareHealth {
        path: Some("/home/a/From Dave".into()),
        status: SyncState::Error,
        synced: false,
        in_sync_since: None,
        last_synced: None,
        peers: 0,
        error: Some("12 files and directories were deleted here at once".into()),
        local_changes: 3,
        ..in_sync.clone()
    };
    let health = Health { healthy: false, in_sync: false, shares: vec![in_sync, held] };
    let answer = StatusAnswer { status: status.clone(), health: health.clone() };
    let shares = format!(
        r#"[{{"id":"{ID}","path":"/home/a/Documents","status":"idle","synced":true,
             "in_sync_since":1700000000,"last_synced":1700000300,"peers":1}},
           {{"id":"{ID}","path":"/home/a/From Dave","status":"error","synced":false,"peers":0,
             "error":"12 files and directories were deleted here at once","local_changes":3}}]"#
    );
    same(
        &answer,
        &format!(
            r#"{{"paused":false,"tracking":true,"nat_punctured":false,"upload_rate":1500,
              "download_rate":2000000,"upload_limit":0,"download_limit":500000,
              "software":"clearskies 0.1.0","pid":4242,"uptime_seconds":60,"daemon_uptime_seconds":3600,
              "worker_restarts":1,"actor_restarts":2,"metrics":"127.0.0.1:49222","listen":"0.0.0.0:49200",
              "peers":2,"sent_bytes":7000,"received_bytes":9000000,"health":{{"healthy":false,"in_sync":false,"shares":{shares}}}}}"#
        ),
    );
    // A worker without a monitor, metrics or listener.
    let bare = Status { daemon_uptime_seconds: None, metrics: None, listen: None, ..status };
    same(
        &StatusAnswer { status: bare, health: Health { healthy: true, in_sync: true, shares: vec![] } },
        r#"{"paused":false,"tracking":true,"nat_punctured":false,"upload_rate":1500,"download_rate":2000000,
            "upload_limit":0,"download_limit":500000,"software":"clearskies 0.1.0","pid":4242,
            "uptime_seconds":60,"worker_restarts":1,"actor_restarts":2,"listen":null,"peers":2,
            "sent_bytes":7000,"received_bytes":9000000,"health":{"healthy":true,"in_sync":true,"shares":[]}}"#,
    );
    // `/health` over HTTP: no paths.
    same(
        &health.without_paths(),
        &format!(
            r#"{{"healthy":false,"in_sync":false,"shares":[
            {{"id":"{ID}","status":"idle","synced":true,"in_sync_since":1700000000,"last_synced":1700000300,"peers":1}},
            {{"id":"{ID}","status":"error","synced":false,"peers":0,
              "error":"12 files and directories were deleted here at once","local_changes":3}}]}}"#
        ),
    );
}

#[test]
fn the_other_answers_the_cli_reads() {
    let report = BackupReport {
        peers: vec![BackupCheck { peer: PEER.into(), checked: 3, proved: 2, failed: vec!["a/b.txt".into()] }],
    };
    same(&report, &format!(r#"{{"peers":[{{"peer":"{PEER}","checked":3,"proved":2,"failed":["a/b.txt"]}}]}}"#));
    same(&BackupReport { peers: vec![] }, r#"{"peers":[]}"#);
    same(
        &Held { held: 2, paths: vec!["/a/b".into(), "/a".into()], dry_run: true },
        r#"{"held":2,"paths":["/a/b","/a"],"dry_run":true}"#,
    );
    same(&Done {}, "{}");
    same(&Url { url: "http://127.0.0.1:49222/files/x".into() }, r#"{"url":"http://127.0.0.1:49222/files/x"}"#);
}

/// Every name reads and writes as `as_str` spells it; `from_name` agrees with serde.
fn names<T>(all: &[T], unknown: T, spelled: &[&str])
where
    T: Serialize + DeserializeOwned + PartialEq + Debug + Copy + std::fmt::Display,
{
    let wire: Vec<String> = all.iter().map(|n| serde_json::to_value(n).unwrap().as_str().unwrap().to_owned()).collect();
    assert_eq!(wire, spelled);
    for (&n, name) in all.iter().chain([&unknown]).zip(spelled.iter().chain([&"unknown"])) {
        assert_eq!(serde_json::to_value(n).unwrap(), Value::from(*name));
        assert_eq!(serde_json::from_value::<T>(Value::from(*name)).unwrap(), n);
        assert_eq!(n.to_string(), *name);
    }
    // A newer daemon's name.
    assert_eq!(serde_json::from_value::<T>(Value::from("something_new")).unwrap(), unknown);
}

#[test]
fn names_keep_their_spellings() {
    names(Mode::ALL, Mode::Unknown, &["read_write", "read_only", "untrusted"]);
    names(SyncState::ALL, SyncState::Unknown, &["scanning", "syncing", "paused", "idle", "error"]);
    names(CodeState::ALL, CodeState::Unknown, &["active", "expired", "used", "cancelled"]);
    names(PeerState::ALL, PeerState::Unknown, &["connected", "found", "dialing", "offline"]);
    names(PeerSource::ALL, PeerSource::Unknown, &["manual", "incoming", "tracker", "lan"]);
    for name in ["read_write", "read_only", "untrusted", "unknown", "other"] {
        assert_eq!(Mode::from_name(name), serde_json::from_value::<Mode>(Value::from(name)).unwrap());
    }
    // The share actor's mode is `registry::level_name`; codes and `list_shares` convert the level.
    for level in [AccessLevel::ReadWrite, AccessLevel::ReadOnly, AccessLevel::Untrusted, AccessLevel::Unknown] {
        assert_eq!(Mode::from(level).as_str(), registry::level_name(level));
        assert_eq!(Mode::from_name(registry::level_name(level)), Mode::from(level));
    }
    for state in [registry::CodeState::Active, registry::CodeState::Expired, registry::CodeState::Used] {
        assert_eq!(serde_json::to_value(CodeState::from(state)).unwrap(), serde_json::to_value(state).unwrap());
    }
    // Discovery reports its sources by these names.
    assert_eq!(
        (PeerSource::from_name("tracker"), PeerSource::from_name("lan")),
        (PeerSource::Tracker, PeerSource::Lan)
    );
}

#[test]
fn answers_from_a_newer_daemon_are_read() {
    let json = format!(
        r#"{{"shares":[{{"path":"/s","status":"verifying","mode":"admin","files":1,"directories":1,"bytes":1,
           "revision":1,"synced":false,"pending_files":0,"pending_bytes":0,"peers":0,"local_changes":0,
           "held_deletions":0,"id":"{ID}","peer_id":"{PEER}","new_key":[1,2]}}],"more":true}}"#
    );
    let Shares { shares } = serde_json::from_str(&json).unwrap();
    assert_eq!((shares[0].status, shares[0].mode), (SyncState::Unknown, Mode::Unknown));
    let json = r#"{"peers":[{"path":"/s","share":"x","address":"h:1","state":"punching","source":"dht"}]}"#;
    let Peers { peers } = serde_json::from_str(json).unwrap();
    assert_eq!((peers[0].state, peers[0].source), (PeerState::Unknown, PeerSource::Unknown));
}

#[test]
fn a_mistyped_dry_run_never_confirms_deletions() {
    let dry = |line: &str| match Request::parse(line.as_bytes()).unwrap() {
        Request::ConfirmDeletes(c) => c.is_dry_run(),
        other => panic!("{other:?}"),
    };
    assert!(!dry(r#"{"type":"confirm_deletes","path":"/s"}"#));
    assert!(!dry(r#"{"type":"confirm_deletes","path":"/s","dry_run":false}"#));
    for v in ["true", r#""true""#, "1", "null", r#""false""#, "{}"] {
        assert!(dry(&format!(r#"{{"type":"confirm_deletes","path":"/s","dry_run":{v}}}"#)), "{v}");
    }
}
