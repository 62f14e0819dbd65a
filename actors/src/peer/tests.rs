use clearskies_protocol::access_code::AccessCode;
use clearskies_protocol::auth::VerifierRecord;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::channel::{accept, connect, ChannelError, Refusal, TlsContext};

const SECRET: [u8; 32] = [42; 32];

/// Runs one client/server handshake over loopback TCP. The server knows `known`'s password.
async fn handshake(
    known: &AccessCode,
    dial: &AccessCode,
    password_override: Option<&str>,
) -> (Result<super::channel::Channel, ChannelError>, Result<super::channel::Channel, ChannelError>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_tls = TlsContext::new().unwrap();
    let client_tls = TlsContext::new().unwrap();
    let creds = known.credentials();
    let record = VerifierRecord::new(&creds.username, &creds.password, [7; 16]);
    let known_id = creds.id;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        accept(tcp.into(), &server_tls, &SECRET, |id| {
            let r = (id == Some(known_id)).then(|| record.clone());
            async move { Ok(r) }
        })
        .await
    });
    let dial_creds = dial.credentials();
    let password = password_override.unwrap_or(&dial_creds.password).to_owned();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let client = connect(tcp.into(), &client_tls, dial_creds.id, &password).await;
    (client, server.await.unwrap())
}

#[tokio::test]
async fn right_code_opens_an_encrypted_channel() {
    let code = AccessCode::from_random([1; 16]);
    let (client, server) = handshake(&code, &code, None).await;
    let (mut client, mut server) = (client.unwrap(), server.unwrap());
    assert_eq!(client.session_id, server.session_id);
    assert_eq!(server.id, code.access_id());
    client.stream.write_all(b"m2{}").await.unwrap();
    client.stream.flush().await.unwrap();
    let mut got = server.leftover.to_vec();
    while got.len() < 4 {
        let mut b = [0u8; 16];
        let n = server.stream.read(&mut b).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&b[..n]);
    }
    assert_eq!(&got, b"m2{}");
}

#[tokio::test]
async fn wrong_password_is_refused_on_both_sides() {
    let code = AccessCode::from_random([1; 16]);
    let (client, server) = handshake(&code, &code, Some("0000000000000000")).await;
    assert!(matches!(client, Err(ChannelError::Refused(ref m)) if m == "authentication failed"), "{client:?}");
    assert!(matches!(server, Err(ChannelError::AuthFailed { .. })), "{server:?}");
}

#[tokio::test]
async fn refusals_are_classified_once() {
    let code = AccessCode::from_random([1; 16]);
    let (client, server) = handshake(&code, &code, Some("0000000000000000")).await;
    let (client, server) = (client.unwrap_err(), server.unwrap_err());
    assert_eq!(client.refusal(), Some(Refusal::AuthFailed));
    assert!(client.is_auth_refusal() && server.is_auth_refusal());
    assert!(!client.is_throttled() && !server.is_throttled());
    let as_io = std::io::Error::other(client);
    assert!(ChannelError::of_io(&as_io).is_some_and(ChannelError::is_auth_refusal), "{as_io}");
    assert!(ChannelError::of_io(&std::io::Error::other("authentication failed")).is_none());

    let throttled = ChannelError::Refused(crate::listener::throttle::Throttled(std::time::Duration::ZERO).message());
    assert_eq!(throttled.refusal(), Some(Refusal::Throttled));
    assert!(throttled.is_throttled() && !throttled.is_auth_refusal());
    let other = ChannelError::Refused("no".into());
    assert_eq!(other.refusal(), Some(Refusal::Other));
    assert!(!other.is_throttled() && !other.is_auth_refusal());
    assert_eq!(ChannelError::Timeout.refusal(), None);
}

#[tokio::test]
async fn unknown_id_looks_exactly_like_a_wrong_password() {
    let known = AccessCode::from_random([1; 16]);
    let stranger = AccessCode::from_random([2; 16]);
    let (client, server) = handshake(&known, &stranger, None).await;
    assert!(matches!(client, Err(ChannelError::Refused(ref m)) if m == "authentication failed"), "{client:?}");
    assert!(matches!(server, Err(ChannelError::AuthFailed { .. })), "{server:?}");
}

#[tokio::test]
async fn garbage_instead_of_tls_fails_cleanly() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = TlsContext::new().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        accept(tcp.into(), &tls, &SECRET, |_| async { Ok(None) }).await
    });
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"m2{}GET / HTTP/1.1\r\n\r\n").await.unwrap();
    drop(tcp);
    assert!(matches!(server.await.unwrap(), Err(ChannelError::Io(_))));
}

/// TLS (like any buffering writer) may keep the tail of a write until it is flushed; the
/// connection's writer must flush when nothing else is queued, or the end of a file waits
/// for the next ping (the 10–30 s stalls once seen in the large-file benchmark).
#[tokio::test]
async fn the_writer_flushes_when_its_queue_runs_dry() {
    let (near, mut far) = tokio::io::duplex(1 << 16);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let writer = tokio::spawn(super::actor::write_out(
        rx,
        tokio::io::BufWriter::new(near),
        Default::default(),
        Default::default(),
    ));
    tx.send((bytes::Bytes::from_static(b"m2{}"), None)).unwrap();
    let mut got = [0u8; 4];
    tokio::time::timeout(std::time::Duration::from_secs(10), far.read_exact(&mut got))
        .await
        .expect("the queued bytes were not flushed to the socket")
        .unwrap();
    assert_eq!(&got, b"m2{}");
    drop(tx);
    writer.await.unwrap();
}

#[test]
fn peer_names_are_cleaned_and_bounded() {
    use crate::peer::messages::{clean_name, MAX_PEER_NAME};
    assert_eq!(clean_name("  Dave's NAS ").as_deref(), Some("Dave's NAS"));
    assert_eq!(clean_name("evil\u{1b}[2J\nname\u{202e}gpj.exe").as_deref(), Some("evil[2Jnamegpj.exe"));
    assert_eq!(clean_name("\u{1b}\u{7}\n "), None);
    assert_eq!(clean_name("a\u{061c}b\u{2028}c\u{2062}d\u{e0041}e").as_deref(), Some("abcde"));
    let long = clean_name(&"é".repeat(100)).unwrap();
    assert!(long.len() <= MAX_PEER_NAME && long.len() == 64, "{}", long.len());
}
