//! A raw protocol client for tests that play a peer: it authenticates with an access code
//! (TLS + SRP), then drives a `protocol::Session` by hand, so that a test decides exactly
//! what goes on the wire, well-formed or not.

use std::time::{Duration, Instant};

use clearskies_actors::peer::channel::{connect, Channel, TlsContext};
use clearskies_protocol::access_code::AccessCode;
use clearskies_protocol::message::core::Keys;
use clearskies_protocol::message::Message;
use clearskies_protocol::session::{Config, Event, KeyExchange, Role, Session, EXT_DATABASE, EXT_DIRECTORY};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

/// TCP to `addr`, then TLS + SRP with the access code `code`.
pub(crate) async fn channel_with_code(addr: &str, code: &str) -> Channel {
    let code: AccessCode = code.parse().unwrap();
    let creds = code.credentials();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = TlsContext::new().unwrap();
    connect(tcp.into(), &tls, creds.id, &creds.password).await.expect("the code is valid")
}

/// A client's session configuration: peer ID `[peer; 16]`, `extensions`, and receiving
/// `core.keys` if `join`.
pub(crate) fn client_config(peer: u8, extensions: &[&str], join: bool) -> Config {
    let mut config = Config::new(Role::Client, clearskies_protocol::PeerId([peer; 16]));
    config.extensions = extensions.iter().map(|e| (*e).to_owned()).collect();
    config.key_exchange = if join { KeyExchange::Receive } else { KeyExchange::None };
    config
}

/// A client session over an authenticated channel. It writes from a task of its own, so
/// that reading answers never waits on our writing; every read ends at one deadline.
pub(crate) struct RawClient {
    /// The protocol state machine: events come from it, messages go through it.
    pub(crate) session: Session,
    read: Box<dyn AsyncRead + Unpin + Send>,
    tx: UnboundedSender<Vec<u8>>,
    writer: JoinHandle<()>,
    buf: Vec<u8>,
    deadline: tokio::time::Instant,
}

/// What one [`RawClient::read`] got.
pub(crate) enum Read<'a> {
    /// These bytes (handed to the session already).
    Data(&'a [u8]),
    /// The daemon closed the connection (end of stream or an error).
    Closed,
    /// Nothing before the deadline.
    TimedOut,
}

impl RawClient {
    /// A session with `config` over `ch` (its leftover bytes handed to it first); reads end
    /// `limit` from now.
    pub(crate) fn new(ch: Channel, config: Config, limit: Duration) -> Self {
        let mut session = Session::new(config, Instant::now());
        session.handle_input(Instant::now(), &ch.leftover);
        let (read, mut wr) = tokio::io::split(ch.stream);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        let writer = tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                // TLS keeps what the socket did not take until a flush (see the daemon's
                // writer): flush whenever nothing more is queued.
                if wr.write_all(&b).await.is_err() || (rx.is_empty() && wr.flush().await.is_err()) {
                    return;
                }
            }
        });
        let deadline = tokio::time::Instant::now() + limit;
        RawClient { session, read: Box::new(read), tx, writer, buf: vec![0u8; 1 << 16], deadline }
    }

    /// Queues what the session has to send.
    pub(crate) fn transmit(&mut self) {
        while let Some(b) = self.session.poll_transmit() {
            let _ = self.tx.send(b.to_vec());
        }
    }

    /// Queues `bytes` as they are, whatever they are, after what the session has to send.
    pub(crate) fn send_raw(&mut self, bytes: Vec<u8>) {
        self.transmit();
        let _ = self.tx.send(bytes);
    }

    /// Queues what the session has to send, then reads once, handing what arrives to the
    /// session.
    pub(crate) async fn read(&mut self) -> Read<'_> {
        self.transmit();
        match tokio::time::timeout_at(self.deadline, self.read.read(&mut self.buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => Read::Closed,
            Ok(Ok(n)) => {
                self.session.handle_input(Instant::now(), &self.buf[..n]);
                Read::Data(&self.buf[..n])
            }
            Err(_) => Read::TimedOut,
        }
    }

    /// Hangs up once everything queued is written (or at the deadline).
    pub(crate) async fn finish(self) {
        drop(self.tx);
        let _ = tokio::time::timeout_at(self.deadline, self.writer).await;
    }
}

/// What a test client sends once its session is ready.
pub(crate) enum Outgoing {
    /// A message encoded as the session does (JSON or MessagePack).
    Plain(Message),
    /// A JSON body with a base64 signature (`s` frame).
    Signed(Vec<u8>, String),
    /// Bytes as they are, whatever they are (after what the session has queued).
    Raw(Vec<u8>),
}

/// Runs a protocol session over `ch` as a client (receiving `core.keys` if `join`), sends
/// `outgoing` once ready, then reads until the daemon closes the connection (`None`) or
/// `done` has seen enough (how many messages arrived), within `limit`. Also returns the keys
/// received.
pub(crate) async fn client_session(
    ch: Channel,
    join: bool,
    limit: Duration,
    outgoing: Vec<Outgoing>,
    mut done: impl FnMut(&Message) -> bool,
) -> (Option<usize>, Option<Keys>) {
    let mut c = RawClient::new(ch, client_config(0x66, &[EXT_DATABASE, EXT_DIRECTORY], join), limit);
    let (mut sent, mut received, mut keys) = (false, 0, None);
    loop {
        while let Some(e) = c.session.poll_event() {
            match e {
                Event::KeysReceived(k) => {
                    keys = Some(k);
                    c.session.acknowledge_keys().unwrap();
                }
                Event::Ready if !sent => {
                    for m in &outgoing {
                        match m {
                            Outgoing::Plain(m) => c.session.send(m).unwrap(),
                            Outgoing::Signed(body, sig) => c.session.send_signed(body, sig.as_bytes(), false).unwrap(),
                            Outgoing::Raw(bytes) => c.send_raw(bytes.clone()),
                        }
                    }
                    sent = true;
                }
                Event::Message(m) => {
                    received += 1;
                    if done(&m.message) {
                        // Everything we meant to send goes out before we hang up.
                        c.finish().await;
                        return (Some(received), keys);
                    }
                }
                _ => {}
            }
        }
        match c.read().await {
            Read::Data(_) => {}
            Read::Closed => {
                assert!(sent, "closed before the session was ready");
                return (None, keys);
            }
            Read::TimedOut => panic!("no end: the daemon neither closed the connection nor answered enough"),
        }
    }
}
