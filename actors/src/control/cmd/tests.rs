//! Every command against the JSON that clients (the CLI before these types, python
//! clients) send, both ways; and malformed commands answered as they always were.

use serde_json::Value;

use super::*;

/// `json` reads as a request that writes back `json` (absent fields stay absent).
fn round_trip(json: &str) -> Request {
    let request = Request::parse(json.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e}"));
    let expected: Value = serde_json::from_str(json).unwrap();
    assert_eq!(serde_json::to_value(&request).unwrap(), expected, "{json}");
    request
}

#[test]
fn every_command_reads_and_writes_the_json_used_today() {
    let cases = [
        r#"{"type":"status"}"#,
        r#"{"type":"pause"}"#,
        r#"{"type":"resume"}"#,
        r#"{"type":"stop"}"#,
        r#"{"type":"list_peers"}"#,
        r#"{"type":"list_shares"}"#,
        r#"{"type":"create_share","path":"/home/a/Documents"}"#,
        r#"{"type":"remove_share","path":"/home/a/From Dave"}"#,
        r#"{"type":"export_keys","path":"/s"}"#,
        r#"{"type":"confirm_deletes","path":"/s"}"#,
        r#"{"type":"verify_backup","path":"/s","files":3}"#,
        r#"{"type":"add_share","path":"/s","timeout":60,"code":"SYNCX","peer":"h:1","subtree":"a/b","exclude":["*.tmp"]}"#,
        r#"{"type":"add_share","path":"/s","timeout":60,"username":"u","password":"p"}"#,
        r#"{"type":"create_access_code","path":"/s","mode":"read_only","expires_in":3600,"multi_use":false}"#,
        r#"{"type":"create_access_code","path":"/s","mode":"read_write","expires_in":null,"multi_use":true,"username":"u","password":"p"}"#,
        r#"{"type":"list_access_codes"}"#,
        r#"{"type":"cancel_access_code","code":"SYNCX"}"#,
        r#"{"type":"cancel_access_code","username":"u"}"#,
        r#"{"type":"cancel_access_code","access_id":"abcdef01"}"#,
        r#"{"type":"file_url","path":"/s","file":"a.mkv","expires_in":43200}"#,
        r#"{"type":"read_file","path":"/s","file":"a","offset":0,"framed":true}"#,
        r#"{"type":"read_file","path":"/s","file":"a","offset":5,"length":10}"#,
        r#"{"type":"get_config"}"#,
        r#"{"type":"get_config_value","key":"upload_limit"}"#,
        r#"{"type":"set_config","config":{"upload_limit":123,"gzip_level":1}}"#,
        r#"{"type":"set_config_value","key":"upload_limit","value":456}"#,
        r#"{"type":"set_config_value","key":"peers","value":["a:1"]}"#,
        r#"{"type":"inject_fault","fault":"panic","actor":"share"}"#,
        r#"{"type":"inject_fault","fault":"stall","seconds":3,"path":"/s"}"#,
    ];
    for json in cases {
        round_trip(json);
    }
    // Every variant but `Unknown` is among them.
    let kinds: std::collections::BTreeSet<String> =
        cases.iter().map(|c| serde_json::from_str::<Value>(c).unwrap()["type"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kinds.len(), 22);
    assert!(matches!(round_trip(r#"{"type":"pause"}"#), Request::Pause));
    let keys = serde_json::json!({"type": "add_share", "path": "/s", "peer": "h:1", "keys": {"x": 1}});
    let Request::AddShare(a) = Request::parse(keys.to_string().as_bytes()).unwrap() else { panic!("add_share") };
    assert!(matches!(a.keys, Some(Checked::Invalid(_))));
}

#[test]
fn extra_keys_are_ignored_and_wrong_types_read_as_absent() {
    assert!(matches!(Request::parse(br#"{"type":"pause","extra":1}"#), Ok(Request::Pause)));
    let Ok(Request::VerifyBackup(v)) = Request::parse(br#"{"type":"verify_backup","path":5,"files":"x"}"#) else {
        panic!("verify_backup")
    };
    assert_eq!((v.path, v.files), (None, None));
    let Ok(Request::AddShare(a)) = Request::parse(br#"{"type":"add_share","exclude":["a",1,"b"],"timeout":-1}"#) else {
        panic!("add_share")
    };
    assert_eq!((a.exclude, a.timeout), (vec!["a".to_owned(), "b".to_owned()], None));
    let Ok(Request::SetConfigValue(s)) = Request::parse(br#"{"type":"set_config_value","key":"x","value":null}"#)
    else {
        panic!("set_config_value")
    };
    assert_eq!(s.value, Some(Value::Null), "a null value is present");
    let Ok(Request::CreateAccessCode(c)) = Request::parse(br#"{"type":"create_access_code","expires_in":"x"}"#) else {
        panic!("create_access_code")
    };
    assert!(matches!(c.expires_in, Some(Checked::Invalid(_))));
}

#[test]
fn what_is_not_a_command_is_not_understood() {
    let cases: [(&[u8], &str); 5] = [
        (b"not json", "malformed JSON: "),
        (b"[]", "a command must be a JSON object"),
        (br#"{"path":"/s"}"#, "the command has no \"type\""),
        (br#"{"type":5}"#, "the command has no \"type\""),
        (br#"{"type":"frobnicate"}"#, "unknown command \"frobnicate\""),
    ];
    for (line, message) in cases {
        let e = Request::parse(line).unwrap_err();
        assert_eq!(e.error, ErrorCode::NotUnderstood);
        assert!(e.message.starts_with(message), "{}: {}", String::from_utf8_lossy(line), e.message);
    }
}

#[test]
fn malformed_commands_get_the_answers_they_always_got() {
    let path = |p: Option<&str>| absolute_path(p).unwrap_err();
    assert_eq!(path(None), CommandError::new(ErrorCode::MissingPath, "the command needs a \"path\""));
    assert_eq!(path(Some("rel")), CommandError::new(ErrorCode::BadPath, "\"rel\" is not an absolute path"));

    let add = |json: &str| match Request::parse(json.as_bytes()) {
        Ok(Request::AddShare(a)) => a.join_with().map(|_| ()).unwrap_err().error,
        other => panic!("{other:?}"),
    };
    assert_eq!(add(r#"{"type":"add_share"}"#), ErrorCode::MissingCode);
    assert_eq!(add(r#"{"type":"add_share","username":"u"}"#), ErrorCode::BadCredentials);
    assert_eq!(add(r#"{"type":"add_share","username":"u","password":"p","code":"c"}"#), ErrorCode::BadCredentials);
    assert_eq!(add(r#"{"type":"add_share","keys":null,"code":"c"}"#), ErrorCode::BadKeys);

    let expiry = |json: &str| match Request::parse(json.as_bytes()) {
        Ok(Request::CreateAccessCode(c)) => c.lifetime().map_err(|e| e.error),
        other => panic!("{other:?}"),
    };
    use crate::share::registry::Lifetime;
    assert!(matches!(expiry(r#"{"type":"create_access_code"}"#), Ok(Lifetime::Secs(86_400))));
    assert!(matches!(expiry(r#"{"type":"create_access_code","expires_in":null}"#), Ok(Lifetime::Never)));
    assert!(matches!(expiry(r#"{"type":"create_access_code","expires_in":0}"#), Err(ErrorCode::BadExpiry)));
    assert!(matches!(expiry(r#"{"type":"create_access_code","expires_in":1.5}"#), Err(ErrorCode::BadExpiry)));

    let cancel = |json: &str| match Request::parse(json.as_bytes()) {
        Ok(Request::CancelAccessCode(c)) => c.which().map(|_| ()).unwrap_err().error,
        other => panic!("{other:?}"),
    };
    assert_eq!(cancel(r#"{"type":"cancel_access_code"}"#), ErrorCode::MissingCode);
    assert_eq!(cancel(r#"{"type":"cancel_access_code","code":"x","username":"u"}"#), ErrorCode::MissingCode);
    assert_eq!(cancel(r#"{"type":"cancel_access_code","code":"SYNC1"}"#), ErrorCode::BadCode);
}
