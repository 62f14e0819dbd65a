//! The `Control` actor on a real unix socket, its targets a double that records what
//! reaches it: the handshake, answers in order under pipelining, commands refused before
//! they reach an owner, and an over-long line closing only that connection.

use std::sync::{Arc, Mutex};

use actix::{Actor, Context, Handler, MessageResult};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::*;
use crate::access::messages::{CancelCode, CreateAccessCode, ExportKeys, ListCodes};
use crate::connections::messages::{AddShare, ListPeers};
use crate::control::messages::{GetConfig, GetStatus, SetConfig, SetPaused, Status};
use crate::shares::messages::{
    ConfirmDeletes, CreateShare, FileUrl, History, ListShares, ReadFile, RemoveShare, VerifyBackup,
};

/// Answers every command the way an owner that has nothing would, and notes its name.
#[derive(Clone, Default)]
struct Double(Arc<Mutex<Vec<&'static str>>>);
impl Actor for Double {
    type Context = Context<Self>;
}
fn none() -> CommandError {
    CommandError::new(ErrorCode::NotShared, "nothing here")
}
macro_rules! double {
    ($($m:ty => $name:expr, $answer:expr);*) => {$(
        impl Handler<$m> for Double {
            type Result = MessageResult<$m>;
            fn handle(&mut self, _: $m, _: &mut Context<Self>) -> Self::Result {
                self.0.lock().unwrap().push($name);
                MessageResult($answer)
            }
        }
    )*};
}
double!(
    GetStatus => "status", status();
    SetPaused => "pause", ();
    Shutdown => "shutdown", ();
    CreateShare => "create_share", Err(none());
    ListShares => "list_shares", vec![];
    RemoveShare => "remove_share", Err(none());
    CreateAccessCode => "create_access_code", Err(none());
    AddShare => "add_share", Err(none());
    ListCodes => "list_codes", Ok(vec![]);
    CancelCode => "cancel_code", Err(none());
    VerifyBackup => "verify_backup", Err(none());
    ExportKeys => "export_keys", Err(none());
    ConfirmDeletes => "confirm_deletes", Ok(crate::control::cmd::Held { held: 0, paths: vec![], dry_run: false });
    History => "history", Err(none());
    crate::shares::messages::RotateKeys => "rotate_keys", Err(none());
    crate::connections::messages::RemovePeer => "remove_peer", Err(none());
    ListPeers => "list_peers", vec![];
    GetConfig => "get_config", crate::control::cmd::ConfigAnswer::default();
    SetConfig => "set_config", Ok(());
    ReadFile => "read_file", Err(none());
    FileUrl => "file_url", Err(none());
    crate::shares::messages::ListFiles => "list_files", Err(none());
    crate::control::messages::WebLogin => "web_login", Err(none());
    crate::control::messages::SetWebPassword => "set_web_password", Err(none())
);

fn status() -> Status {
    Status {
        paused: false,
        tracking: false,
        nat_punctured: false,
        upload_rate: 0,
        download_rate: 0,
        upload_limit: 0,
        download_limit: 0,
        software: "test".into(),
        pid: 1,
        uptime_seconds: 0,
        daemon_uptime_seconds: None,
        worker_restarts: 0,
        actor_restarts: 0,
        metrics: None,
        web_https: None,
        listen: None,
        reach: None,
        peers: 0,
        sent_bytes: 0,
        received_bytes: 0,
    }
}

fn targets(d: &actix::Addr<Double>) -> ControlTargets {
    ControlTargets {
        status: d.clone().recipient(),
        pause: d.clone().recipient(),
        shutdown: d.clone().recipient(),
        create_share: d.clone().recipient(),
        list_shares: d.clone().recipient(),
        remove_share: d.clone().recipient(),
        create_access_code: d.clone().recipient(),
        add_share: d.clone().recipient(),
        list_codes: d.clone().recipient(),
        cancel_code: d.clone().recipient(),
        verify_backup: d.clone().recipient(),
        export_keys: d.clone().recipient(),
        confirm_deletes: d.clone().recipient(),
        history: d.clone().recipient(),
        rotate_keys: d.clone().recipient(),
        remove_peer: d.clone().recipient(),
        list_peers: d.clone().recipient(),
        get_config: d.clone().recipient(),
        set_config: d.clone().recipient(),
        read_file: d.clone().recipient(),
        file_url: d.clone().recipient(),
        list_files: d.clone().recipient(),
        web_login: d.clone().recipient(),
        web_password: d.clone().recipient(),
        inject_fault: None,
    }
}

async fn line(r: &mut (impl tokio::io::AsyncBufRead + Unpin)) -> serde_json::Value {
    let mut l = String::new();
    r.read_line(&mut l).await.unwrap();
    serde_json::from_str(&l).unwrap_or_else(|e| panic!("{l:?}: {e}"))
}

#[actix_rt::test]
async fn answers_come_in_order_and_bad_commands_never_reach_an_owner() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let double = Double::default();
    let seen = double.0.clone();
    let d = double.start();
    Control::new(bind(&socket).unwrap(), "test 1".into(), targets(&d)).start();
    let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let hello = line(&mut read).await;
    assert_eq!(hello, serde_json::json!({"service": SERVICE, "software": "test 1", "protocol": PROTOCOL}));

    let pipelined = concat!(
        "{\"type\":\"pause\"}\n",
        "{\"type\":\"nope\"}\n",
        "not json\n",
        "\n",
        "{\"type\":\"create_share\",\"path\":\"relative/dir\"}\n",
        "{\"type\":\"list_peers\"}\n",
        "{\"type\":\"inject_fault\",\"fault\":\"panic\",\"actor\":\"share\"}\n",
        "{\"type\":\"status\"}\n",
    );
    write.write_all(pipelined.as_bytes()).await.unwrap();
    assert_eq!(line(&mut read).await, serde_json::json!({}));
    let unknown = line(&mut read).await;
    assert_eq!(unknown["error"], "not_understood", "{unknown}");
    assert!(unknown["message"].as_str().unwrap().contains("\"nope\""), "{unknown}");
    let malformed = line(&mut read).await;
    assert_eq!(malformed["error"], "not_understood");
    assert!(malformed["message"].as_str().unwrap().starts_with("malformed JSON"), "{malformed}");
    assert_eq!(line(&mut read).await["error"], "bad_path", "a blank line gets no answer");
    assert_eq!(line(&mut read).await, serde_json::json!({"peers": []}));
    assert_eq!(line(&mut read).await["error"], "not_understood", "no fault injection without the flag");
    let status = line(&mut read).await;
    assert_eq!((status["software"].as_str(), status["health"]["healthy"].as_bool()), (Some("test"), Some(true)));
    assert_eq!(*seen.lock().unwrap(), ["pause", "list_peers", "status", "list_shares"], "only valid commands arrive");

    // A line over the limit: an answer saying so, then this connection ends.
    let mut long = vec![b'x'; MAX_LINE + 2];
    long.push(b'\n');
    write.write_all(&long).await.unwrap();
    assert_eq!(line(&mut read).await["error"], "line_too_long");
    let mut rest = String::new();
    assert_eq!(read.read_line(&mut rest).await.unwrap(), 0, "closed after an over-long line");
    // Another connection is served.
    let again = tokio::net::UnixStream::connect(&socket).await.unwrap();
    assert_eq!(line(&mut BufReader::new(again)).await["service"], SERVICE);
}
