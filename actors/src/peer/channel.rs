//! The secure channel (`docs/protocol-decisions.md`, "Secure channel"): TLS 1.3 with an
//! ephemeral, unverified self-signed certificate, then SRP-6a over `.rs.clearskies.srp.*`
//! messages, its proofs bound to this TLS session's exporter. Forward secrecy comes from TLS
//! 1.3's ECDHE; authentication comes from SRP, so no certificate is ever trusted.
//!
//! [`connect`] and [`accept`] return a [`Channel`]: the encrypted stream plus any bytes that
//! arrived after the SRP exchange, which belong to the protocol session.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::transport::Stream;
use bytes::BytesMut;
use clearskies_protocol::auth::{self, AuthError, ClientAuth, ServerAuth, VerifierRecord};
use clearskies_protocol::frame::{self, Decoder, Item, Kind};
use clearskies_protocol::message::{srp, Message};
use clearskies_protocol::Sha256Hash;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

/// How long the TLS and SRP handshakes may take together when we dial.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long they may take on a connection we accepted: a stranger's connection holds one of
/// the few pre-authentication slots (`listener::gate`) until then.
pub const ACCEPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest handshake message accepted (SRP messages are well under 2 KiB).
const MAX_HANDSHAKE_BUFFER: usize = 64 * 1024;

/// Why a secure channel could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// Socket or TLS failure.
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// TLS configuration or exporter failure (our side).
    #[error("TLS failed: {0}")]
    Tls(#[from] rustls::Error),
    /// The handshake took longer than [`HANDSHAKE_TIMEOUT`] (or [`ACCEPT_TIMEOUT`]).
    #[error("handshake timed out")]
    Timeout,
    /// The peer sent something that is not the expected handshake message.
    #[error("peer broke the handshake: {0}")]
    Protocol(String),
    /// The password or key did not match (or the ID is unknown, which looks the same).
    #[error("authentication failed for {id}")]
    AuthFailed {
        /// The ID the client asked for.
        id: String,
    },
    /// The server refused our credentials.
    #[error("the peer refused our credentials: {0}")]
    Refused(String),
    /// The OS random number generator failed.
    #[error("random number generator failed")]
    Random,
    /// We refused the attempt before SRP (too many attempts).
    #[error("refused before authentication: {0}")]
    Throttled(String),
}

/// The refusal a server sends (`.rs.clearskies.srp.error`) when the proof does not match.
pub const AUTH_FAILED: &str = "authentication failed";

/// How a refusal of a throttled attempt begins on the wire (`.rs.clearskies.srp.error`), so
/// a client can tell it from a wrong password (`listener::throttle` writes it).
pub const THROTTLED: &str = "too many authentication attempts";

/// What a peer's refusal says. The wire carries only its text: it is read here, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The credentials did not match ([`AUTH_FAILED`]).
    AuthFailed,
    /// Too many attempts: try again later ([`THROTTLED`]).
    Throttled,
    /// Anything else.
    Other,
}

impl Refusal {
    /// The kind of the refusal `message`.
    pub fn of(message: &str) -> Self {
        if message.starts_with(THROTTLED) {
            Refusal::Throttled
        } else if message.contains(AUTH_FAILED) {
            Refusal::AuthFailed
        } else {
            Refusal::Other
        }
    }
}

impl ChannelError {
    /// What the peer's refusal says, if the peer refused us ([`ChannelError::Refused`]).
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            ChannelError::Refused(message) => Some(Refusal::of(message)),
            _ => None,
        }
    }

    /// The peer refused the attempt as one too many (try again later).
    pub fn is_throttled(&self) -> bool {
        self.refusal() == Some(Refusal::Throttled)
    }

    /// The credentials did not match: on our side ([`ChannelError::AuthFailed`]) or the
    /// peer's ([`ChannelError::Refused`] with [`AUTH_FAILED`]; not a throttled attempt).
    pub fn is_auth_refusal(&self) -> bool {
        matches!(self, ChannelError::AuthFailed { .. }) || self.refusal() == Some(Refusal::AuthFailed)
    }

    /// The channel error an I/O error was made of (`std::io::Error::other(channel_error)`).
    pub fn of_io(e: &std::io::Error) -> Option<&ChannelError> {
        e.get_ref()?.downcast_ref::<ChannelError>()
    }
}

impl From<AuthError> for ChannelError {
    fn from(e: AuthError) -> Self {
        ChannelError::Protocol(e.to_string())
    }
}

/// TLS configurations with this process's ephemeral certificate.
#[derive(Clone)]
pub struct TlsContext {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsContext").finish_non_exhaustive()
    }
}

impl TlsContext {
    /// Generates an ephemeral self-signed certificate and TLS 1.3-only configurations.
    pub fn new() -> Result<Self, ChannelError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certified = rcgen::generate_simple_self_signed(vec!["clearskies".to_owned()])
            .map_err(|e| ChannelError::Tls(rustls::Error::General(e.to_string())))?;
        let cert = CertificateDer::from(certified.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)?;
        let client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(UnverifiedCertificate(provider)))
            .with_no_client_auth();
        Ok(TlsContext {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }
}

/// Accepts any certificate but still checks the TLS 1.3 handshake signature, so the server
/// proves it holds the key of the certificate it showed. Identity comes from SRP.
#[derive(Debug)]
struct UnverifiedCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for UnverifiedCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // TLS 1.2 is disabled in both configurations.
        Err(rustls::Error::General("TLS 1.2 is not supported".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An authenticated, encrypted connection ready for a protocol session.
pub struct Channel {
    /// The TLS stream.
    pub stream: TlsStream<Stream>,
    /// Bytes received after the SRP exchange; feed them to the session first.
    pub leftover: BytesMut,
    /// The access ID or key ID the connection authenticated for.
    pub id: Sha256Hash,
    /// A short ID both ends derive from the SRP key (for logs).
    pub session_id: [u8; 8],
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").field("id", &self.id).field("session", &hex::encode(self.session_id)).finish()
    }
}

/// Frame reading and writing during the handshake.
struct HandshakeIo<S> {
    stream: S,
    buf: BytesMut,
    decoder: Decoder,
}

impl<S: AsyncRead + AsyncWrite + Unpin> HandshakeIo<S> {
    async fn send(&mut self, m: &Message) -> Result<(), ChannelError> {
        let mut out = Vec::new();
        frame::encode_frame(Kind::Plain, &m.encode(), None, &mut out)
            .map_err(|e| ChannelError::Protocol(e.to_string()))?;
        self.stream.write_all(&out).await?;
        self.stream.flush().await?;
        Ok(())
    }

    async fn recv(&mut self) -> Result<Message, ChannelError> {
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(Item::Frame(f))) if f.kind == Kind::Plain => {
                    return Message::decode(&f.body).map_err(|e| ChannelError::Protocol(e.to_string()));
                }
                Ok(Some(_)) => return Err(ChannelError::Protocol("unexpected frame kind in handshake".into())),
                Ok(None) => {}
                Err(e) => return Err(ChannelError::Protocol(e.to_string())),
            }
            if self.buf.len() > MAX_HANDSHAKE_BUFFER {
                return Err(ChannelError::Protocol("handshake message too large".into()));
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(ChannelError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn random64() -> Result<[u8; 64], ChannelError> {
    let mut b = [0u8; 64];
    getrandom::fill(&mut b).map_err(|_| ChannelError::Random)?;
    Ok(b)
}

/// Dials: TLS, then SRP as `username`/`password` (from an access code or a key).
pub async fn connect(tcp: Stream, tls: &TlsContext, id: Sha256Hash, password: &str) -> Result<Channel, ChannelError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, connect_inner(tcp, tls, id, password))
        .await
        .map_err(|_| ChannelError::Timeout)?
}

async fn connect_inner(tcp: Stream, tls: &TlsContext, id: Sha256Hash, password: &str) -> Result<Channel, ChannelError> {
    let name = ServerName::try_from("clearskies").map_err(|e| ChannelError::Protocol(e.to_string()))?;
    let stream = tls.connector.connect(name, tcp).await?;
    let mut ekm = [0u8; auth::EXPORTER_LEN];
    stream.get_ref().1.export_keying_material(&mut ekm, auth::EXPORTER_LABEL, None)?;
    let mut io = HandshakeIo { stream: TlsStream::Client(stream), buf: BytesMut::new(), decoder: Decoder::new() };
    let username = clearskies_protocol::access_code::srp_username(&id);
    let (client, hello) = ClientAuth::new(&username, password, random64()?);
    io.send(&hello.into()).await?;
    let challenge = match io.recv().await? {
        Message::SrpChallenge(c) => c,
        Message::SrpError(e) => return Err(ChannelError::Refused(e.message)),
        m => return Err(ChannelError::Protocol(format!("expected an SRP challenge, got {}", m.kind()))),
    };
    let (client, proof) = client.handle_challenge(&challenge, &ekm)?;
    io.send(&proof.into()).await?;
    let verify = match io.recv().await? {
        Message::SrpVerify(v) => v,
        Message::SrpError(e) => return Err(ChannelError::Refused(e.message)),
        m => return Err(ChannelError::Protocol(format!("expected an SRP verify, got {}", m.kind()))),
    };
    let session_id = client.handle_verify(&verify).map_err(|_| ChannelError::AuthFailed { id: id.to_string() })?;
    Ok(Channel { stream: io.stream, leftover: io.buf, id, session_id })
}

/// Accepts: TLS, then SRP. `lookup` gets the ID the client names (`None` if its username is
/// not `clearskies:1:<hex>`) and gives the verifier record for an ID we know, `None` for one
/// we do not (answered with a decoy derived from `server_secret`, so it fails exactly like a
/// wrong password), or a reason to refuse the attempt before SRP (sent to the client as
/// `.rs.clearskies.srp.error`).
pub async fn accept<F, Fut>(
    tcp: Stream,
    tls: &TlsContext,
    server_secret: &[u8; 32],
    lookup: F,
) -> Result<Channel, ChannelError>
where
    F: FnOnce(Option<Sha256Hash>) -> Fut,
    Fut: Future<Output = Result<Option<VerifierRecord>, String>>,
{
    tokio::time::timeout(ACCEPT_TIMEOUT, accept_inner(tcp, tls, server_secret, lookup))
        .await
        .map_err(|_| ChannelError::Timeout)?
}

async fn accept_inner<F, Fut>(
    tcp: Stream,
    tls: &TlsContext,
    server_secret: &[u8; 32],
    lookup: F,
) -> Result<Channel, ChannelError>
where
    F: FnOnce(Option<Sha256Hash>) -> Fut,
    Fut: Future<Output = Result<Option<VerifierRecord>, String>>,
{
    let stream = tls.acceptor.accept(tcp).await?;
    let mut ekm = [0u8; auth::EXPORTER_LEN];
    stream.get_ref().1.export_keying_material(&mut ekm, auth::EXPORTER_LABEL, None)?;
    let mut io = HandshakeIo { stream: TlsStream::Server(stream), buf: BytesMut::new(), decoder: Decoder::new() };
    let hello = match io.recv().await? {
        Message::SrpHello(h) => h,
        m => return Err(ChannelError::Protocol(format!("expected an SRP hello, got {}", m.kind()))),
    };
    let id = auth::id_from_username(&hello.username);
    let record = match lookup(id).await {
        Ok(record) => record,
        Err(reason) => {
            let _ = io.send(&srp::Error { message: reason.clone() }.into()).await;
            let _ = io.stream.shutdown().await;
            return Err(ChannelError::Throttled(reason));
        }
    };
    let record = record.unwrap_or_else(|| VerifierRecord::decoy(server_secret, &hello.username));
    let (server, challenge) = ServerAuth::handle_hello(&hello, &record, random64()?)?;
    io.send(&challenge.into()).await?;
    let proof = match io.recv().await? {
        Message::SrpProof(p) => p,
        m => return Err(ChannelError::Protocol(format!("expected an SRP proof, got {}", m.kind()))),
    };
    let failed = || ChannelError::AuthFailed { id: hello.username.clone() };
    match (server.handle_proof(&proof, &ekm), id) {
        (Ok((verify, session_id)), Some(id)) => {
            io.send(&verify.into()).await?;
            Ok(Channel { stream: io.stream, leftover: io.buf, id, session_id })
        }
        _ => {
            let refusal = srp::Error { message: AUTH_FAILED.into() };
            let _ = io.send(&refusal.into()).await;
            let _ = io.stream.shutdown().await;
            Err(failed())
        }
    }
}
