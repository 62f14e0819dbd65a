//! Hostile peers: a client that authenticates correctly and then misbehaves loses its own
//! connection, with a logged reason, and nothing else.

use clearskies_actors::peer::channel::{connect, TlsContext};
use clearskies_protocol::access_code::AccessCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::{wait_for, Daemon};

/// Authenticates with `code` against `addr`, runs the protocol handshake far enough to be
/// past SRP, then sends `garbage`; returns once the daemon has closed the connection.
fn authenticate_then_send(addr: &str, code: &str, garbage: &'static [u8]) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let code: AccessCode = code.parse().unwrap();
        let creds = code.credentials();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tls = TlsContext::new().unwrap();
        let mut ch = connect(tcp, &tls, creds.id, &creds.password).await.expect("the code is valid");
        ch.stream.write_all(garbage).await.unwrap();
        ch.stream.flush().await.unwrap();
        // The daemon closes the connection; reading ends (EOF or error) instead of hanging.
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(deadline, ch.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => continue,
                Err(_) => panic!("the daemon kept the misbehaving connection open"),
            }
        }
    });
}

#[test]
fn garbage_after_authentication_closes_only_that_connection() {
    let a = Daemon::start();
    let b = Daemon::start();
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let code = a.share_code(dir_a.path(), &["--multi-use"]);
    // A well-behaved peer joins first.
    b.cs.ok(&["attach", &code, dir_b.path().to_str().unwrap(), "--peer", &a.listen()]);
    wait_for("the honest session", || (a.peers() == 1).then_some(()));

    for garbage in [&b"x"[..], b"m99999999999{", b"m5{]]]]", b"!2{}-1\n", b"s2:99999{}"] {
        authenticate_then_send(&a.listen(), &code, garbage);
    }
    wait_for("the reasons in the log", || {
        let log = a.cs.log();
        (log.matches("peer misbehaved").count() >= 5).then_some(())
    });
    // The daemon is up, and the honest peer is still connected.
    a.cs.ok(&["status"]);
    assert_eq!(a.peers(), 1);
    assert_eq!(b.peers(), 1);
}
