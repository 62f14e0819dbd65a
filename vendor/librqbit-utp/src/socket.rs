// Modified by ClearSkies (December 2026) from librqbit-utp 0.7.0; see README.md, CHANGES.

use std::{
    collections::{VecDeque, hash_map::Entry},
    hash::{BuildHasher, Hash, Hasher, RandomState},
    io::IoSlice,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    num::NonZeroUsize,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::Poll,
    time::{Duration, Instant},
};

use crate::{
    Error,
    congestion::ledbat::LedbatOpts,
    constants::{TX_BUF_SIZE_PER_VSOCK_INITIAL_DEFAULT, TX_BUF_SIZE_PER_VSOCK_MAX_DEFAULT},
};
use dontfrag::UdpSocketExt;
use librqbit_dualstack_sockets::{BindDevice, BindOpts, UdpSocket};
use rustc_hash::FxHashMap as HashMap;
use tokio_util::sync::CancellationToken;

use crate::{UtpStream, spawn_utils::spawn_with_cancel};
use crate::{
    congestion::CongestionController,
    constants::{
        DEFAULT_MAX_ACTIVE_STREAMS_PER_SOCKET, DEFAULT_REMOTE_INACTIVITY_TIMEOUT, IPV4_HEADER,
        RX_BUF_SIZE_PER_VSOCK_DEFAULT, UDP_HEADER, UTP_HEADER,
    },
    message::UtpMessage,
    metrics::METRICS,
    raw::{Type, UtpHeader},
    seq_nr::SeqNr,
    stream_dispatch::{StreamArgs, UtpStreamStarter},
    traits::{DefaultUtpEnvironment, Transport, UtpEnvironment},
    utils::{DropGuardSendBeforeDeath, FnDropGuard},
};
use tokio::sync::{
    mpsc::{self, UnboundedReceiver, UnboundedSender, unbounded_channel},
    oneshot,
};
use tracing::{debug, debug_span, trace, warn};

type ConnectionId = SeqNr;

// When we get incoming packets this connection id is used to pick the stream.
type StreamRecvKey = (SocketAddr, ConnectionId);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum CongestionControllerKind {
    /// TCP CUBIC (RFC 8312): competes with TCP as an equal. Upstream's only controller.
    Cubic,
    /// LEDBAT (RFC 6817, BEP 29): yields to TCP once its queuing delay passes the target
    /// (100 ms). ClearSkies addition, and the default here.
    #[default]
    Ledbat,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct CongestionConfig {
    pub kind: CongestionControllerKind,
    pub tracing: bool,
    /// Used when `kind` is `Ledbat`.
    pub ledbat: LedbatOpts,
}

impl CongestionConfig {
    pub(crate) fn create(&self, now: Instant, rmss: usize) -> Box<dyn CongestionController> {
        use crate::congestion::cubic::Cubic;
        use crate::congestion::ledbat::Ledbat;
        use crate::congestion::tracing::TracingController;

        match (self.kind, self.tracing) {
            (CongestionControllerKind::Cubic, true) => {
                tracing::debug!("enabling congestion tracing");
                Box::new(TracingController::new(Cubic::new(now, rmss)))
            }
            (CongestionControllerKind::Cubic, false) => Box::new(Cubic::new(now, rmss)),
            (CongestionControllerKind::Ledbat, true) => {
                tracing::debug!("enabling congestion tracing");
                Box::new(TracingController::new(Ledbat::new(now, rmss, self.ledbat)))
            }
            (CongestionControllerKind::Ledbat, false) => {
                Box::new(Ledbat::new(now, rmss, self.ledbat))
            }
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct SocketOpts {
    pub link_mtu: Option<NonZeroUsize>,

    /// Virtual socket read buffer. Serves several purposes:
    /// - temporary storage before the data is read back to the user's application
    /// - reassembling out of order packets
    /// - advertising recv window to the other side (sender). The sender will not send more data than this and might thus stall.
    ///   Ideal value for throughput should be BDP (bandwidth delay product).
    pub vsock_rx_bufsize_bytes: Option<NonZeroUsize>,

    /// Virtual socket write buffer. Serves several purposes:
    /// - how many bytes can store without blocking writer.
    /// - how many bytes can store without receiving an ACK.
    ///
    /// This should be governed by BDP (bandwidth delay product). If it's too low, the pipeline
    /// would be stalling.
    /// If it's too high, every VSock would take too much memory.
    pub vsock_tx_bufsize_bytes_initial: Option<NonZeroUsize>,
    pub vsock_tx_bufsize_bytes_max: Option<NonZeroUsize>,

    /// Disable Nagle's algorithm
    pub disable_nagle: bool,

    /// Congestion control configuration.
    pub congestion: CongestionConfig,

    /// The parent span for spawned tokio tasks. If not provided, will use
    /// root span.
    pub parent_span: Option<tracing::Id>,

    /// If provided, this can be used to abruptly terminate all spawned tasks.
    pub cancellation_token: CancellationToken,

    /// How many times to retry retransmitting a packet before terminating
    /// the virtual socket.
    pub max_retransmissions: Option<NonZeroUsize>,

    /// How many seconds to wait for incoming data
    /// before terminating the connection.
    pub remote_inactivity_timeout: Option<Duration>,

    /// How many virtual sockets to have at the same time. Each vsock consumes
    /// resources (memory, tokio tasks).
    pub max_live_vsocks: Option<NonZeroUsize>,

    /// If true, will wait for ACK of FIN. By default we don't wait
    /// as it's not required for torrents.
    pub dont_wait_for_lastack: bool,

    /// How many times should the MTU probes be retransmitted. By default it's 1, so that
    /// MTU probing can handle a bit of packet loss. If it's 0, we would mark RTO'ed probes as failed
    /// sooner and thus perf would be better.
    pub mtu_probe_max_retransmissions: Option<usize>,

    /// ClearSkies: `connect` re-sends its SYN (the same SYN: same connection id and sequence
    /// number) after this long without a SYN-ACK. Default 700 ms. Needed for hole punching,
    /// where the peer's NAT usually drops the first SYN. Minimum 10 ms.
    pub syn_retransmit_interval: Option<Duration>,

    /// ClearSkies: at most this many re-sends of a SYN; one interval after the last one,
    /// `connect` fails with [`Error::ConnectTimedOut`]. Default 14 (15 SYNs over 9.8 s, failure
    /// at 10.5 s). Callers should still put their own timeout around `connect`: dropping the
    /// future stops the re-sends at once.
    pub max_syn_retransmissions: Option<usize>,

    /// ClearSkies: at most this many of the `max_live_vsocks` may be incoming connections
    /// (accepted or waiting to be accepted); the rest stay free for `connect`, so that a flood
    /// of incoming connections cannot stop our own. Default: 3/4 of `max_live_vsocks` (at
    /// least 1). Values above `max_live_vsocks` mean no reserve.
    pub max_incoming_vsocks: Option<NonZeroUsize>,

    /// ClearSkies: at most this many incoming connections (accepted or waiting to be accepted)
    /// from one source: one IPv4 address (also IPv4-mapped on a dual-stack socket) or one IPv6
    /// /64. Checked before anything is created; refused SYNs get ST_RESET. Default 8.
    pub max_incoming_per_source: Option<NonZeroUsize>,
}

impl SocketOpts {
    pub(crate) fn validate(&self) -> crate::Result<ValidatedSocketOpts> {
        let max_user_rx_buffered_bytes = self
            .vsock_rx_bufsize_bytes
            .unwrap_or(RX_BUF_SIZE_PER_VSOCK_DEFAULT);

        // 1500 is ethernet MTU.
        let link_mtu = self.link_mtu.unwrap_or(non_zero_const!(1500));
        let link_mtu: u16 = link_mtu
            .get()
            .try_into()
            .ok()
            .ok_or(Error::ValidateLinkMtuExceedsU16)?;
        let min_mtu = IPV4_HEADER + UDP_HEADER + UTP_HEADER + 1;
        if link_mtu < min_mtu {
            return Err(Error::ValidateMtuTooLow { link_mtu, min_mtu });
        }

        Ok(ValidatedSocketOpts {
            link_mtu,
            vsock_rx_bufsize: max_user_rx_buffered_bytes,
            nagle: !self.disable_nagle,
            congestion: self.congestion,
            max_segment_retransmissions: self
                .max_retransmissions
                .unwrap_or(NonZeroUsize::new(5).unwrap()),
            vsock_tx_bufsize_bytes_initial: self
                .vsock_tx_bufsize_bytes_initial
                .unwrap_or(TX_BUF_SIZE_PER_VSOCK_INITIAL_DEFAULT),
            vsock_tx_bufsize_bytes_max: self
                .vsock_tx_bufsize_bytes_max
                .unwrap_or(TX_BUF_SIZE_PER_VSOCK_MAX_DEFAULT),
            remote_inactivity_timeout: self
                .remote_inactivity_timeout
                .unwrap_or(DEFAULT_REMOTE_INACTIVITY_TIMEOUT),
            max_active_streams: self
                .max_live_vsocks
                .unwrap_or(DEFAULT_MAX_ACTIVE_STREAMS_PER_SOCKET),
            wait_for_last_ack: !self.dont_wait_for_lastack,
            mtu_probe_max_retransmissions: self.mtu_probe_max_retransmissions.unwrap_or(1),
            syn_retransmit_interval: self
                .syn_retransmit_interval
                .unwrap_or(DEFAULT_SYN_RETRANSMIT_INTERVAL)
                .max(MIN_SYN_RETRANSMIT_INTERVAL),
            max_syn_retransmissions: self
                .max_syn_retransmissions
                .unwrap_or(DEFAULT_MAX_SYN_RETRANSMISSIONS),
            max_incoming_streams: {
                let max_active = self
                    .max_live_vsocks
                    .unwrap_or(DEFAULT_MAX_ACTIVE_STREAMS_PER_SOCKET)
                    .get();
                self.max_incoming_vsocks
                    .map(|n| n.get())
                    .unwrap_or(max_active * 3 / 4)
                    .clamp(1, max_active)
            },
            max_incoming_per_source: self
                .max_incoming_per_source
                .map(|n| n.get())
                .unwrap_or(DEFAULT_MAX_INCOMING_PER_SOURCE),
        })
    }
}

#[derive(Clone)]
pub(crate) struct ValidatedSocketOpts {
    pub link_mtu: u16,
    pub vsock_rx_bufsize: NonZeroUsize,
    pub vsock_tx_bufsize_bytes_initial: NonZeroUsize,
    pub vsock_tx_bufsize_bytes_max: NonZeroUsize,
    pub nagle: bool,
    pub congestion: CongestionConfig,
    pub max_segment_retransmissions: NonZeroUsize,

    pub remote_inactivity_timeout: Duration,
    pub max_active_streams: NonZeroUsize,

    pub wait_for_last_ack: bool,

    pub mtu_probe_max_retransmissions: usize,

    pub syn_retransmit_interval: Duration,
    pub max_syn_retransmissions: usize,

    // ClearSkies: limits on incoming connections.
    pub max_incoming_streams: usize,
    pub max_incoming_per_source: usize,
}

pub(crate) struct RequestWithSpan<V> {
    created_span: tracing::Span,
    tx: oneshot::Sender<V>,
}

type ConnectRequest = RequestWithSpan<crate::Result<UtpStream>>;
// ClearSkies: was `RequestWithSpan<UtpStreamStarter<T, E>>` (the acceptor started the stream);
// now streams are started when their handshake completes, before anybody accepts them.
type Acceptor = RequestWithSpan<UtpStream>;

impl<V> RequestWithSpan<V> {
    fn new(tx: oneshot::Sender<V>) -> Self {
        Self {
            created_span: tracing::Span::current(),
            tx,
        }
    }
}

pub(crate) enum ControlRequest {
    ConnectRequest(SocketAddr, ConnectToken, ConnectRequest),
    ConnectDropped(SocketAddr, ConnectToken),

    Shutdown(StreamRecvKey),

    // ClearSkies: for tests, the dispatcher's counts.
    #[cfg(test)]
    Stats(oneshot::Sender<DispatcherStats>),
}

/// ClearSkies: what tests can see of the dispatcher (UtpSocket::stats).
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct DispatcherStats {
    pub streams: usize,
    pub incoming: usize,
    pub ready: usize,
    pub per_source: HashMap<IpAddr, usize>,
}

impl std::fmt::Debug for ControlRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlRequest::ConnectRequest(socket_addr, token, _) => {
                write!(f, "ConnectRequest({socket_addr}, {token})")
            }
            ControlRequest::ConnectDropped(socket_addr, token) => {
                write!(f, "ConnectDropped({socket_addr}, {token})")
            }
            ControlRequest::Shutdown(key) => {
                write!(f, "Shutdown({key:?})")
            }
            #[cfg(test)]
            ControlRequest::Stats(_) => write!(f, "Stats"),
        }
    }
}

static NEXT_CONNECT_TOKEN: AtomicU64 = AtomicU64::new(0);
type ConnectToken = u64;

struct Connecting {
    token: ConnectToken,
    start: Instant,
    seq_nr: SeqNr,
    requester: ConnectRequest,
    // ClearSkies: SYN retransmission.
    syn: UtpHeader,
    resends: usize,
    next_resend: Instant,
}

pub(crate) const DEFAULT_SYN_RETRANSMIT_INTERVAL: Duration = Duration::from_millis(700);
const MIN_SYN_RETRANSMIT_INTERVAL: Duration = Duration::from_millis(10);
pub(crate) const DEFAULT_MAX_SYN_RETRANSMISSIONS: usize = 14;

const MAX_CONNECTING_PER_ADDR: usize = 4;

#[derive(Default)]
struct ConnectingPerAddr {
    slots: [Option<Connecting>; MAX_CONNECTING_PER_ADDR],
    len: usize,
}

impl ConnectingPerAddr {
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn insert(&mut self, c: Connecting) -> bool {
        for slot in self.slots.iter_mut() {
            if slot.is_none() {
                *slot = Some(c);
                self.len += 1;
                return true;
            }
        }
        false
    }

    // TODO: use connection ID instead of sequence number. Or even both.
    fn pop(&mut self, s: SeqNr) -> Option<Connecting> {
        for slot in self.slots.iter_mut() {
            if let Some(c) = slot {
                if c.seq_nr == s {
                    self.len -= 1;
                    return slot.take();
                }
            }
        }
        None
    }

    fn next_resend(&self) -> Option<Instant> {
        self.slots.iter().flatten().map(|c| c.next_resend).min()
    }

    fn pop_by_token(&mut self, token: ConnectToken) -> Option<Connecting> {
        for slot in self.slots.iter_mut() {
            if let Some(c) = slot {
                if c.token == token {
                    self.len -= 1;
                    return slot.take();
                }
            }
        }
        None
    }
}

const ACCEPT_QUEUE_MAX_ACCEPTORS: usize = 32;

/// ClearSkies: incoming connections whose handshake completed, waiting for `accept()`, at most
/// (upstream cached up to 32 SYNs here, unanswered, instead). Beyond that, SYNs get ST_RESET.
const ACCEPT_QUEUE_MAX_READY: usize = 32;

pub(crate) const DEFAULT_MAX_INCOMING_PER_SOURCE: usize = 8;

/// ClearSkies: SYN cookies. The sequence number of our SYN-ACK is a keyed hash of the SYN
/// (remote address, connection id, sequence number) and of the time, in epochs of this length;
/// the remote's first ST_DATA / ST_STATE proves that it received our SYN-ACK by acknowledging
/// it (ack_nr = cookie - 1). Cookies of the current and the previous epoch are accepted: the
/// handshake must complete within 3 to 6 s of the SYN-ACK.
const SYN_COOKIE_EPOCH: Duration = Duration::from_secs(3);
const SYN_COOKIE_VALIDITY: Duration = Duration::from_secs(6);

/// ClearSkies: connections closed within SYN_COOKIE_VALIDITY are remembered (at most this
/// many), so that a late duplicate of an incoming one's first packet, whose cookie is still
/// valid, does not make a second connection (nor a late packet of any, in the rare case that
/// it happens to look like a valid cookie).
const RECENTLY_CLOSED_MAX: usize = 256;

/// ClearSkies: the source of an incoming connection, for the per-source limit: its IPv4 address
/// (also when it arrives IPv4-mapped on a dual-stack socket) or its IPv6 /64.
pub(crate) fn source_of(addr: SocketAddr) -> IpAddr {
    match addr.ip() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u128::from(u64::MAX)))),
        },
    }
}

/// ClearSkies: the accept queue holds established connections (their vsocks already running),
/// not SYNs: a connection reaches `accept()` only once the remote has acknowledged our
/// SYN-ACK, so a forged source address never does.
struct AcceptQueue {
    ready: VecDeque<(StreamRecvKey, UtpStream)>,
    next_available_acceptor: Option<Acceptor>,
    rx: mpsc::Receiver<Acceptor>,
}

impl AcceptQueue {
    fn try_next_acceptor(&mut self) -> Option<Acceptor> {
        if let Some(next) = self.next_available_acceptor.take() {
            return Some(next);
        }
        self.rx.try_recv().ok()
    }
}

/// ClearSkies: why an incoming connection is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    TooManyStreams,
    TooManyIncoming,
    TooManyFromSource,
    AcceptQueueFull,
}

pub(crate) struct Dispatcher<T: Transport, E: UtpEnvironment> {
    env: E,
    socket: Arc<UtpSocket<T, E>>,

    accept_queue: AcceptQueue,

    // TODO: we need to insert here only once!
    // ClearSkies: insert and remove only with insert_stream / remove_stream (they keep the
    // counts below).
    pub(crate) streams: HashMap<StreamRecvKey, UnboundedSender<UtpMessage>>,
    connecting: HashMap<SocketAddr, ConnectingPerAddr>,
    control_rx: UnboundedReceiver<ControlRequest>,
    next_connection_id: SeqNr,

    // ClearSkies: incoming streams (a subset of `streams`) and their source (see source_of),
    // the number of incoming streams per source, streams closed lately, and the key of the
    // SYN cookies.
    incoming: HashMap<StreamRecvKey, IpAddr>,
    incoming_per_source: HashMap<IpAddr, usize>,
    recently_closed: VecDeque<(StreamRecvKey, Instant)>,
    cookie_key: RandomState,
}

impl<T: Transport, E: UtpEnvironment> Dispatcher<T, E> {
    pub(crate) async fn run_forever(mut self) -> crate::Result<()> {
        let mut read_buf = [0u8; 16384];

        loop {
            if let Err(e) = self.run_once(&mut read_buf).await {
                warn!("error running dispatcher: {e:#}");
                return Err(e);
            }
        }
    }

    async fn run_once(&mut self, read_buf: &mut [u8]) -> crate::Result<()> {
        self.deliver_ready_streams();

        // ClearSkies: when the next SYN re-send (or connect timeout) is due, if any connect is
        // waiting for its SYN-ACK. The sleep is only created (and polled) in that case.
        let syn_wait = self
            .next_syn_resend()
            .map(|at| at.saturating_duration_since(self.env.now()));

        tokio::select! {
            _ = async {
                match syn_wait {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            }, if syn_wait.is_some() => {
                self.on_syn_resend_timer().await;
            }
            accept = self.accept_queue.rx.recv(), if self.accept_queue.next_available_acceptor.is_none() => {
                let accept = accept.unwrap();
                self.accept_queue.next_available_acceptor = Some(accept);
            }
            control_request = self.control_rx.recv() => {
                let control = control_request.unwrap();
                self.on_control(control).await;
            },
            recv = self.socket.transport.recv_from(read_buf) => {
                let (len, addr) = recv.map_err(Error::Recv)?;
                let message = match UtpMessage::deserialize(&read_buf[..len]) {
                    Some(msg) => msg,
                    None => {
                        trace!(len, ?addr, "error deserializing and validating UTP message");
                        return Ok(())
                    }
                };
                self.on_recv(addr, message).await?;
            }
        }

        Ok(())
    }

    /// ClearSkies (was `cleanup_accept_queue`, which matched cached SYNs with acceptors):
    /// hands established incoming streams to waiting `accept()` calls.
    fn deliver_ready_streams(&mut self) {
        while let Some((key, stream)) = self.accept_queue.ready.pop_front() {
            let Some(acceptor) = self.accept_queue.try_next_acceptor() else {
                self.accept_queue.ready.push_front((key, stream));
                return;
            };
            match acceptor.tx.send(stream) {
                Ok(()) => trace!(?key, "passed stream to acceptor"),
                // That accept() was dropped; the next one gets it.
                Err(stream) => self.accept_queue.ready.push_front((key, stream)),
            }
        }
    }

    /// ClearSkies: the only place streams are added (see `streams`).
    fn insert_stream(
        &mut self,
        key: StreamRecvKey,
        tx: UnboundedSender<UtpMessage>,
        incoming_from: Option<IpAddr>,
    ) {
        if self.streams.insert(key, tx).is_some() {
            warn!(
                ?key,
                "bug: a stream already existed with key. It should have been checked beforehand."
            );
            self.forget_incoming(key);
        }
        if let Some(source) = incoming_from {
            self.incoming.insert(key, source);
            *self.incoming_per_source.entry(source).or_default() += 1;
        }
    }

    /// ClearSkies: the only place streams are removed (see `streams`).
    fn remove_stream(&mut self, key: StreamRecvKey) {
        if self.streams.remove(&key).is_none() {
            return;
        }
        let now = self.env.now();
        self.prune_recently_closed(now);
        if self.recently_closed.len() >= RECENTLY_CLOSED_MAX {
            self.recently_closed.pop_front();
        }
        self.recently_closed.push_back((key, now));
        if self.forget_incoming(key) {
            // It may have died before anybody accepted it.
            self.accept_queue.ready.retain(|(k, _)| *k != key);
        }
    }

    /// Returns true if `key` was an incoming stream.
    fn forget_incoming(&mut self, key: StreamRecvKey) -> bool {
        let Some(source) = self.incoming.remove(&key) else {
            return false;
        };
        if let Entry::Occupied(mut occ) = self.incoming_per_source.entry(source) {
            *occ.get_mut() -= 1;
            if *occ.get() == 0 {
                occ.remove();
            }
        }
        true
    }

    fn prune_recently_closed(&mut self, now: Instant) {
        while let Some((_, at)) = self.recently_closed.front() {
            if now.saturating_duration_since(*at) < SYN_COOKIE_VALIDITY {
                break;
            }
            self.recently_closed.pop_front();
        }
    }

    /// ClearSkies: whether one more incoming connection from `remote` is allowed now. Checked
    /// when the SYN arrives (before we answer it) and again when the handshake completes.
    fn incoming_refusal(&self, remote: SocketAddr) -> Option<Refusal> {
        let opts = &self.socket.opts;
        if self.streams_full() {
            return Some(Refusal::TooManyStreams);
        }
        if self.incoming.len() >= opts.max_incoming_streams {
            return Some(Refusal::TooManyIncoming);
        }
        let from_source = self
            .incoming_per_source
            .get(&source_of(remote))
            .copied()
            .unwrap_or(0);
        if from_source >= opts.max_incoming_per_source {
            return Some(Refusal::TooManyFromSource);
        }
        if self.accept_queue.ready.len() >= ACCEPT_QUEUE_MAX_READY {
            return Some(Refusal::AcceptQueueFull);
        }
        None
    }

    fn cookie_epoch(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.socket.created).as_secs() / SYN_COOKIE_EPOCH.as_secs()
    }

    /// ClearSkies: the sequence number of our SYN-ACK to a SYN (see SYN_COOKIE_EPOCH).
    fn syn_cookie(
        &self,
        remote: SocketAddr,
        syn_conn_id: SeqNr,
        syn_seq_nr: SeqNr,
        epoch: u64,
    ) -> SeqNr {
        let mut h = self.cookie_key.build_hasher();
        remote.ip().hash(&mut h);
        remote.port().hash(&mut h);
        syn_conn_id.0.hash(&mut h);
        syn_seq_nr.0.hash(&mut h);
        epoch.hash(&mut h);
        let v = h.finish();
        SeqNr((v ^ (v >> 16) ^ (v >> 32) ^ (v >> 48)) as u16)
    }

    fn get_next_free_conn_id(&mut self, addr: SocketAddr) -> SeqNr {
        while self.streams.contains_key(&(addr, self.next_connection_id)) {
            self.next_connection_id += 2;
        }
        self.next_connection_id
    }

    // This would only block if the socket TX is full. It will block the dispatcher but it's a resonable tradeoff.
    #[tracing::instrument(level = "trace", skip(self))]
    async fn on_control(&mut self, msg: ControlRequest) {
        match msg {
            ControlRequest::ConnectRequest(addr, token, sender) => {
                if self.streams_full() {
                    debug!(?addr, "too many connections, dropping connect request");
                    let _ = sender.tx.send(Err(Error::TooManyActiveConnections));
                    return;
                }
                let conn_id = self.get_next_free_conn_id(addr);
                let header = UtpHeader {
                    htype: Type::ST_SYN,
                    connection_id: conn_id,
                    // ClearSkies: was as_millis(), in a microseconds field.
                    timestamp_microseconds: (self.env.now() - self.socket.created).as_micros()
                        as u32,
                    timestamp_difference_microseconds: 0,
                    wnd_size: 0,
                    seq_nr: self.env.random_u16().into(),
                    ack_nr: 0.into(),
                    extensions: Default::default(),
                };
                let mut buf = [0u8; UTP_HEADER as usize];
                header.serialize(&mut buf).unwrap();
                match self.socket.transport.send_to(&buf, addr).await {
                    Ok(len) if len == buf.len() => {}
                    Ok(len) => {
                        // Never seen this happen yet, so can be warn.
                        warn!(
                            len,
                            expected_len = buf.len(),
                            ?addr,
                            "did not send full length, dropping"
                        );
                        return;
                    }
                    Err(e) => {
                        let _ = sender.tx.send(Err(Error::ErrorSendingSyn(e)));
                        return;
                    }
                }
                let now = self.env.now();
                let c = Connecting {
                    token,
                    seq_nr: header.seq_nr,
                    requester: sender,
                    start: now,
                    syn: header,
                    resends: 0,
                    next_resend: now + self.socket.opts.syn_retransmit_interval,
                };
                if self.connecting.entry(addr).or_default().insert(c) {
                    self.next_connection_id += 2;
                } else {
                    // This is super rare, can be warn.
                    warn!("too many concurrent connectins to {addr}");
                }
            }
            ControlRequest::ConnectDropped(addr, token) => {
                match self.connecting.entry(addr) {
                    Entry::Occupied(mut occ) => {
                        if occ.get_mut().pop_by_token(token).is_some() && occ.get().is_empty() {
                            occ.remove();
                        }
                    }
                    Entry::Vacant(_) => {}
                };
            }
            ControlRequest::Shutdown(key) => {
                trace!(?key, "removing stream");
                self.remove_stream(key);
            }
            #[cfg(test)]
            ControlRequest::Stats(tx) => {
                let _ = tx.send(DispatcherStats {
                    streams: self.streams.len(),
                    incoming: self.incoming.len(),
                    ready: self.accept_queue.ready.len(),
                    per_source: self.incoming_per_source.clone(),
                });
            }
        }
    }

    fn streams_full(&self) -> bool {
        self.streams.len() >= self.socket.opts.max_active_streams.get()
    }

    /// ClearSkies: the earliest SYN re-send or connect timeout due.
    fn next_syn_resend(&self) -> Option<Instant> {
        if self.connecting.is_empty() {
            return None;
        }
        self.connecting
            .values()
            .filter_map(|c| c.next_resend())
            .min()
    }

    /// ClearSkies: re-sends the SYNs that got no SYN-ACK within the interval; fails the
    /// connects that already re-sent theirs `max_syn_retransmissions` times.
    async fn on_syn_resend_timer(&mut self) {
        let now = self.env.now();
        let interval = self.socket.opts.syn_retransmit_interval;
        let max_resends = self.socket.opts.max_syn_retransmissions;
        let socket = self.socket.clone();
        for (addr, per_addr) in self.connecting.iter_mut() {
            for slot in per_addr.slots.iter_mut() {
                let Some(c) = slot.as_mut() else { continue };
                if c.next_resend > now {
                    continue;
                }
                if c.resends >= max_resends {
                    let c = slot.take().expect("checked above");
                    per_addr.len -= 1;
                    debug!(
                        ?addr,
                        syns = c.resends + 1,
                        "connect: no SYN-ACK, giving up"
                    );
                    METRICS.syn_timeouts.increment(1);
                    let _ = c.requester.tx.send(Err(Error::ConnectTimedOut {
                        syns: c.resends + 1,
                    }));
                    continue;
                }
                c.resends += 1;
                c.next_resend = now + interval;
                c.syn.timestamp_microseconds = (now - socket.created).as_micros() as u32;
                let mut buf = [0u8; UTP_HEADER as usize];
                if c.syn.serialize(&mut buf).is_err() {
                    continue;
                }
                debug!(
                    ?addr,
                    resends = c.resends,
                    "connect: no SYN-ACK yet, re-sending SYN"
                );
                METRICS.syn_retransmissions.increment(1);
                if let Err(e) = socket.transport.send_to(&buf, *addr).await {
                    // Transient (e.g. no route yet): the next re-send or the timeout decides.
                    debug!(?addr, "error re-sending SYN: {e:#}");
                }
            }
        }
        self.connecting.retain(|_, per_addr| !per_addr.is_empty());
    }

    /// Returns the message back if it is not the SYN-ACK of one of our connects.
    #[tracing::instrument(level = "trace", skip_all, fields(addr, seq_nr=?msg.header.seq_nr, ack_nr=?msg.header.ack_nr))]
    fn on_maybe_connect_ack(&mut self, addr: SocketAddr, msg: UtpMessage) -> Option<UtpMessage> {
        let Some(per_addr) = self.connecting.get(&addr) else {
            trace!(?msg, "noone is connecting to this addr");
            return Some(msg);
        };

        // ClearSkies: checked before the limit below, so that a packet that is not a SYN-ACK
        // can still be the handshake ACK of an incoming connection.
        if !per_addr
            .slots
            .iter()
            .flatten()
            .any(|c| c.seq_nr == msg.header.ack_nr)
        {
            debug!(
                ?msg,
                "we are connecting to this addr, but ack_nr doesn't match"
            );
            return Some(msg);
        }

        if self.streams_full() {
            trace!(
                active_streams = self.streams.len(),
                ?msg,
                "dropping potential SYN-ACK packet, too many active streams"
            );
            return None;
        }

        let Entry::Occupied(mut occ) = self.connecting.entry(addr) else {
            return None;
        };
        let conn = occ.get_mut().pop(msg.header.ack_nr)?;
        if occ.get_mut().is_empty() {
            occ.remove();
        }

        let now = self.env.now();
        let (tx, rx) = unbounded_channel();
        let mut args = StreamArgs::new_outgoing(&msg.header, conn.start, now)
            .with_parent_span(conn.requester.created_span.clone())
            // ClearSkies: acknowledge the SYN-ACK at once: the remote (this library) accepts
            // the connection only then, and the application may not write first.
            .with_handshake_ack();
        if conn.resends > 0 {
            // ClearSkies: which SYN does this answer? No RTT sample (Karn).
            args = args.without_rtt_sample();
        }

        let recv_key = (addr, msg.header.connection_id);
        self.insert_stream(recv_key, tx, None);

        let stream = UtpStreamStarter::new(&self.socket, addr, rx, args).start();
        if conn.requester.tx.send(Ok(stream)).is_ok() {
            trace!(?recv_key, "created stream and passed to connector");
        } else {
            debug!(?recv_key, "connecting receiver is dead. dropping");
            self.remove_stream(recv_key);
        }

        None
    }

    /// ClearSkies: was `try_send_rst(Syn)`.
    async fn try_send_rst(
        &self,
        remote: SocketAddr,
        connection_id: SeqNr,
        seq_nr: SeqNr,
        ack_nr: SeqNr,
    ) {
        let mut buf: [u8; UTP_HEADER as usize] = [0; UTP_HEADER as usize];
        let packet = UtpHeader {
            htype: Type::ST_RESET,
            connection_id,
            seq_nr,
            ack_nr,
            ..Default::default()
        };
        if let Ok(len) = packet.serialize(&mut buf[..]) {
            if let Err(e) = self.socket.transport.send_to(&buf[..len], remote).await {
                debug!(?remote, "error sending ST_RESET: {e:#}");
            }
        }
    }

    /// ClearSkies: answers a SYN with a SYN-ACK whose sequence number is a SYN cookie, and
    /// creates nothing: the connection is created when the remote acknowledges the SYN-ACK
    /// (`on_maybe_handshake_ack`). A SYN from a forged address thus costs one SYN-ACK (the
    /// size of the SYN) and no memory, and never reaches `accept()`. Upstream created the
    /// stream at once and handed it to `accept()` before the remote proved anything; it
    /// re-sent the SYN-ACK up to 5 times. We never re-send it: a SYN-ACK lost is recovered by
    /// the client re-sending its SYN, which gets a new SYN-ACK.
    async fn on_syn(&mut self, remote: SocketAddr, msg: UtpMessage) -> crate::Result<()> {
        // ClearSkies: a re-sent SYN for a connection we already have is dropped here: it must
        // not get a SYN-ACK that the remote's stream would take for a duplicate ACK.
        if self
            .streams
            .contains_key(&(remote, msg.header.connection_id + 1))
        {
            trace!(?remote, "SYN for an existing stream (re-sent), ignoring");
            return Ok(());
        }

        if let Some(refusal) = self.incoming_refusal(remote) {
            debug!(?remote, ?refusal, "refusing incoming connection (SYN)");
            METRICS.cant_accept_syn.increment(1);
            self.try_send_rst(
                remote,
                msg.header.connection_id,
                0.into(),
                msg.header.seq_nr,
            )
            .await;
            return Ok(());
        }

        let now = self.env.now();
        let cookie = self.syn_cookie(
            remote,
            msg.header.connection_id,
            msg.header.seq_nr,
            self.cookie_epoch(now),
        );
        let now_us = (now - self.socket.created).as_micros() as u32;
        let synack = UtpHeader {
            htype: Type::ST_STATE,
            connection_id: msg.header.connection_id,
            timestamp_microseconds: now_us,
            timestamp_difference_microseconds: now_us
                .wrapping_sub(msg.header.timestamp_microseconds),
            wnd_size: self
                .socket
                .opts
                .vsock_rx_bufsize
                .get()
                .try_into()
                .unwrap_or(u32::MAX),
            seq_nr: cookie,
            ack_nr: msg.header.seq_nr,
            extensions: Default::default(),
        };
        let mut buf = [0u8; UTP_HEADER as usize];
        if synack.serialize(&mut buf).is_err() {
            return Ok(());
        }
        trace!(?remote, "sending SYN-ACK");
        METRICS.synacks_sent.increment(1);
        if let Err(e) = self.socket.transport.send_to(&buf, remote).await {
            debug!(?remote, "error sending SYN-ACK: {e:#}");
        }
        Ok(())
    }

    /// ClearSkies: an ST_DATA or ST_STATE for no stream of ours (and not the SYN-ACK of one of
    /// our connects): if it acknowledges one of our SYN-ACKs (see `on_syn`), the remote has
    /// proved it receives our packets: the connection is created (state established once the
    /// stream processed this packet) and waits for `accept()`. The remote's first packet after
    /// the SYN has sequence number SYN + 1 (ST_DATA and ST_STATE alike) and acknowledges the
    /// SYN-ACK's sequence number - 1.
    async fn on_maybe_handshake_ack(&mut self, addr: SocketAddr, msg: UtpMessage) {
        let conn_id_recv = msg.header.connection_id;
        let syn_conn_id = conn_id_recv - 1;
        let syn_seq_nr = msg.header.seq_nr - 1;
        let cookie = msg.header.ack_nr + 1;
        let now = self.env.now();
        let epoch = self.cookie_epoch(now);
        let valid = [Some(epoch), epoch.checked_sub(1)]
            .into_iter()
            .flatten()
            .any(|e| self.syn_cookie(addr, syn_conn_id, syn_seq_nr, e) == cookie);
        if !valid {
            trace!(
                ?msg,
                ?addr,
                "dropping packet: no stream and no valid SYN cookie"
            );
            return;
        }

        let key = (addr, conn_id_recv);
        self.prune_recently_closed(now);
        if self.recently_closed.iter().any(|(k, _)| *k == key) {
            debug!(
                ?key,
                "packet for a connection closed lately (a late duplicate?), dropping"
            );
            return;
        }

        if let Some(refusal) = self.incoming_refusal(addr) {
            debug!(
                ?addr,
                ?refusal,
                "refusing incoming connection (handshake ACK)"
            );
            METRICS.cant_accept_syn.increment(1);
            self.try_send_rst(addr, syn_conn_id, cookie, msg.header.seq_nr)
                .await;
            return;
        }

        // The SYN, as far as the stream needs it.
        let syn = UtpHeader {
            htype: Type::ST_SYN,
            connection_id: syn_conn_id,
            timestamp_microseconds: msg.header.timestamp_microseconds,
            seq_nr: syn_seq_nr,
            ..Default::default()
        };
        if self.accept_queue.next_available_acceptor.is_none() {
            self.accept_queue.next_available_acceptor = self.accept_queue.rx.try_recv().ok();
        }
        let mut args = StreamArgs::new_incoming(cookie, &syn).with_syn_ack_sent();
        if let Some(acceptor) = &self.accept_queue.next_available_acceptor {
            args = args.with_parent_span(acceptor.created_span.clone());
        }
        let (tx, rx) = unbounded_channel();
        let starter = UtpStreamStarter::new(&self.socket, addr, rx, args);
        // The stream processes this packet first (state syn-ack-sent -> established).
        let _ = tx.send(msg);
        self.insert_stream(key, tx, Some(source_of(addr)));
        let stream = starter.start();
        METRICS.incoming_handshakes.increment(1);
        trace!(?key, "handshake complete, stream waits for accept()");
        self.accept_queue.ready.push_back((key, stream));
        self.deliver_ready_streams();
    }

    #[tracing::instrument(level = "trace", name = "on_recv", skip_all, fields(
        from=?addr,
        conn_id=?message.header.connection_id,
        type=?message.header.get_type(),
        seq_nr=?message.header.seq_nr,
        ack_nr=?message.header.ack_nr,
        payload=message.payload().len()
    ))]
    async fn on_recv(&mut self, addr: SocketAddr, message: UtpMessage) -> crate::Result<()> {
        let key = (addr, message.header.connection_id);

        if let Some(tx) = self.streams.get(&key) {
            if tx.send(message).is_err() {
                trace!(
                    ?key,
                    "stream dead, but wasn't cleaned up yet, this is probably a race"
                );
                self.remove_stream(key);
            }
            return Ok(());
        }

        trace!(?key, "no matching live streams");

        match message.header.get_type() {
            Type::ST_STATE => {
                if let Some(message) = self.on_maybe_connect_ack(addr, message) {
                    self.on_maybe_handshake_ack(addr, message).await;
                }
            }
            // ClearSkies: the handshake ACK of an incoming connection.
            Type::ST_DATA => {
                self.on_maybe_handshake_ack(addr, message).await;
            }
            Type::ST_SYN => {
                self.on_syn(addr, message).await?;
            }
            _ => {
                trace!(?message, ?addr, "dropping packet");
            }
        }
        Ok(())
    }
}

pub struct UtpSocket<T, E> {
    // The underlying transport, usually UDP.
    pub(crate) transport: T,
    // When was the socket created. All the uTP "timestamp_microsends" are relative to it.
    pub(crate) created: Instant,
    pub(crate) control_requests: UnboundedSender<ControlRequest>,
    accept_requests: mpsc::Sender<Acceptor>,

    pub(crate) env: E,

    local_addr: SocketAddr,
    opts: ValidatedSocketOpts,

    pub(crate) cancellation_token: CancellationToken,
}

impl<T: Transport, E: UtpEnvironment> std::fmt::Debug for UtpSocket<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UtpSocket")
            .field("addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

pub type UtpSocketUdp = UtpSocket<UdpSocket, DefaultUtpEnvironment>;

fn try_set_udp_rcvbuf(sock: &tokio::net::UdpSocket, bufsize: usize) {
    let sock = socket2::SockRef::from(&sock);
    let prev = sock.recv_buffer_size().map(|v| v as isize).unwrap_or(-1);
    match sock.set_recv_buffer_size(bufsize) {
        Ok(()) => match sock.recv_buffer_size() {
            Ok(value) if value >= bufsize => {
                tracing::info!(prev, current = value, "successfully set UDP rcv buf size");
            }
            Ok(value) => {
                tracing::warn!(
                    prev,
                    current = value,
                    expected = bufsize,
                    "couldn't set UDP rcv buf size to requested value. There might be packet loss, try increasing rmem_max or equivalent."
                );
            }
            Err(e) => {
                tracing::warn!(prev, expected=?bufsize, "updated UDP rcv buf size, but got error reading the current value: {e:#}.")
            }
        },
        Err(e) => {
            tracing::warn!(
                current = prev,
                "error setting UDP socket rcv buf size: {e:#}"
            );
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct UtpSocketUdpOpts<'a> {
    pub bind_device: Option<&'a BindDevice>,
}

impl UtpSocketUdp {
    pub async fn new_udp(bind_addr: SocketAddr) -> crate::Result<Arc<Self>> {
        Self::new_udp_with_opts(bind_addr, Default::default(), Default::default()).await
    }

    pub async fn new_udp_with_opts(
        bind_addr: SocketAddr,
        opts: SocketOpts,
        udp_opts: UtpSocketUdpOpts<'_>,
    ) -> crate::Result<Arc<Self>> {
        let sock = UdpSocket::bind_udp(
            bind_addr,
            BindOpts {
                request_dualstack: true,
                reuseport: false,
                device: udp_opts.bind_device,
            },
        )
        .map_err(|e| Error::Dualstack(Box::new(e)))?;

        if bind_addr.is_ipv4() {
            if let Err(e) = sock.socket().set_dontfrag_v4(true) {
                warn!("error setting IPV4_DONTFRAG: {e:#}");
            }
        } else if let Err(e) = sock.socket().set_dontfrag_v6(true) {
            debug!("error setting IPV6_DONTFRAG: {e:#}");
        }

        // Try to set RCVBUF as high as possible to fit all of RX window into
        // the UDP socket buffer in case librqbit-utp isn't consuming from the socket fast enough.
        let so_recvbuf = {
            let max_vsocks = opts
                .max_live_vsocks
                .unwrap_or(DEFAULT_MAX_ACTIVE_STREAMS_PER_SOCKET);
            let rx_bufsize = opts
                .vsock_rx_bufsize_bytes
                .unwrap_or(RX_BUF_SIZE_PER_VSOCK_DEFAULT)
                .get()
                * 10
                / 8; // add some heuristic overhead for uTP and ACK packets.
            max_vsocks.get() * rx_bufsize
        };
        try_set_udp_rcvbuf(sock.socket(), so_recvbuf);

        Self::new_with_opts(sock, Default::default(), opts)
    }
}

impl<T: Transport, Env: UtpEnvironment> UtpSocket<T, Env> {
    pub fn new_with_opts(transport: T, env: Env, opts: SocketOpts) -> crate::Result<Arc<Self>> {
        let parent_span = opts.parent_span.clone();
        let (sock, dispatcher) = Self::new_with_opts_and_dispatcher(transport, env, opts)?;
        let span = debug_span!(parent: parent_span, "utp_socket", addr=?sock.transport.bind_addr());
        spawn_with_cancel(
            span,
            sock.cancellation_token.clone(),
            dispatcher.run_forever(),
        );
        Ok(sock)
    }

    pub(crate) fn new_with_opts_and_dispatcher(
        transport: T,
        env: Env,
        opts: SocketOpts,
    ) -> crate::Result<(Arc<Self>, Dispatcher<T, Env>)> {
        let validated_opts = opts.validate()?;
        let sock = transport;
        let local_addr = sock.bind_addr();

        let (accept_tx, accept_rx) = mpsc::channel(ACCEPT_QUEUE_MAX_ACCEPTORS);
        let (control_tx, control_rx) = unbounded_channel();

        let sock = Arc::new(Self {
            transport: sock,
            created: env.now(),
            control_requests: control_tx,
            local_addr,
            opts: validated_opts,
            env: env.copy(),
            accept_requests: accept_tx,
            cancellation_token: opts.cancellation_token.clone(),
        });

        let dispatcher = Dispatcher {
            streams: Default::default(),
            connecting: Default::default(),
            next_connection_id: env.random_u16().into(),
            control_rx,
            socket: sock.clone(),
            env,
            accept_queue: AcceptQueue {
                ready: Default::default(),
                next_available_acceptor: None,
                rx: accept_rx,
            },
            incoming: Default::default(),
            incoming_per_source: Default::default(),
            recently_closed: Default::default(),
            cookie_key: RandomState::new(),
        };

        Ok((sock, dispatcher))
    }

    pub(crate) fn opts(&self) -> &ValidatedSocketOpts {
        &self.opts
    }

    pub fn bind_addr(&self) -> SocketAddr {
        self.local_addr
    }

    #[tracing::instrument(level = "debug", name="utp_socket:accept", skip(self), fields(local=?self.local_addr))]
    pub async fn accept(self: &Arc<Self>) -> crate::Result<UtpStream> {
        let (tx, rx) = oneshot::channel();

        METRICS.accepting.increment(1);
        let _accepting_guard = FnDropGuard::new(|| METRICS.accepting.decrement(1));

        self.accept_requests
            .send(RequestWithSpan::new(tx))
            .await
            .ok()
            .ok_or(Error::DispatcherDead)?;

        // ClearSkies: the stream is already running (started when its handshake completed).
        let stream = rx.await.ok().ok_or(Error::DispatcherDead)?;

        METRICS.accepts.increment(1);

        trace!("accepted");
        Ok(stream)
    }

    #[tracing::instrument(level = "debug", name="utp_socket:connect", skip(self), fields(local=?self.local_addr))]
    pub async fn connect(self: &Arc<Self>, remote: SocketAddr) -> crate::Result<UtpStream> {
        let (tx, rx) = oneshot::channel();
        let token = NEXT_CONNECT_TOKEN.fetch_add(1, Ordering::Relaxed);
        METRICS.connection_attempts.increment(1);
        METRICS.connecting.increment(1);

        let mut fail_guard = FnDropGuard::new(|| {
            METRICS.connection_failures.increment(1);
        });

        let _connecting_guard = FnDropGuard::new(|| {
            METRICS.connecting.decrement(1);
        });

        self.control_requests
            .send(ControlRequest::ConnectRequest(
                remote,
                token,
                RequestWithSpan::new(tx),
            ))
            .ok()
            .ok_or(Error::DispatcherDead)?;

        let mut send_drop_guard = DropGuardSendBeforeDeath::new(
            ControlRequest::ConnectDropped(remote, token),
            &self.control_requests,
        );

        let stream_or_err = rx.await.ok().ok_or(Error::DispatcherDead)?;
        send_drop_guard.disarm();
        if stream_or_err.is_ok() {
            fail_guard.disarm();
            METRICS.connection_successes.increment(1);
        }

        stream_or_err
    }

    /// ClearSkies: the dispatcher's counts, for tests.
    #[cfg(test)]
    pub(crate) async fn stats(&self) -> DispatcherStats {
        let (tx, rx) = oneshot::channel();
        self.control_requests
            .send(ControlRequest::Stats(tx))
            .unwrap();
        rx.await.unwrap()
    }

    /// Returns true if saw Poll::Pending
    pub(crate) fn try_poll_send_to(
        &self,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
        addr: SocketAddr,
    ) -> std::io::Result<bool> {
        // TODO: uncomment to simulate packet loss.
        // if rand::Rng::gen_bool(&mut rand::thread_rng(), 0.01) {
        //     return Ok(true);
        // }
        match self.transport.poll_send_to(cx, buf, addr) {
            Poll::Ready(Ok(sz)) => {
                if sz != buf.len() {
                    warn!(
                        actual_len = sz,
                        expected_len = buf.len(),
                        "sent a broken packet"
                    );
                }
            }
            Poll::Ready(Err(e)) => {
                METRICS.send_errors.increment(1);
                debug!(
                    "error sending to UDP socket addr={}, len={}: {e:#}",
                    addr,
                    buf.len()
                );
                return Err(e);
            }
            Poll::Pending => {
                METRICS.send_poll_pending.increment(1);
                debug_every_ms!(5000, "UDP socket full, could not send packet");
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub(crate) fn try_poll_send_to_vectored(
        &self,
        cx: &mut std::task::Context<'_>,
        bufs: &[IoSlice<'_>],
        addr: SocketAddr,
        total_len: usize,
    ) -> std::io::Result<bool> {
        match self.transport.poll_send_to_vectored(cx, bufs, addr) {
            Poll::Ready(Ok(sz)) => {
                if sz != total_len {
                    warn!(
                        actual_len = sz,
                        expected_len = total_len,
                        "sent a broken packet"
                    );
                }
            }
            Poll::Ready(Err(e)) => {
                METRICS.send_errors.increment(1);
                debug!(
                    "error sending to UDP socket addr={}, len={}: {e:#}",
                    addr, total_len
                );
                return Err(e);
            }
            Poll::Pending => {
                METRICS.send_poll_pending.increment(1);
                debug_every_ms!(5000, "UDP socket full, could not send packet");
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        net::{Ipv4Addr, SocketAddr},
        time::Duration,
    };

    use anyhow::Context;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        try_join,
    };
    use tracing::{Instrument, debug_span, info};

    use crate::test_util::{MockUtpStream, setup_test_logging, transport::MockInterface};

    #[tokio::test]
    async fn test_echo() -> anyhow::Result<()> {
        setup_test_logging();
        let client_addr: SocketAddr = (Ipv4Addr::LOCALHOST, 1).into();
        let server_addr: SocketAddr = (Ipv4Addr::LOCALHOST, 2).into();

        let interface = MockInterface::new();

        let client = interface.create_socket(client_addr);
        let server = interface.create_socket(server_addr);

        async fn echo(s: MockUtpStream) -> anyhow::Result<()> {
            let (mut r, mut w) = s.split();
            w.write_u32(42).await.context("error writing 42")?;

            let read = r.read_u32().await.context("error reading u32")?;
            if read != 42 {
                anyhow::bail!("expected 42, got {}", read);
            }
            info!("received 42, closing echo");
            Ok(())
        }

        let connect = async {
            echo(
                client
                    .connect(server_addr)
                    .await
                    .context("error connecting")?,
            )
            .await
            .context("error running echo connect")
        }
        .instrument(debug_span!("connect"));
        let accept = async {
            echo(server.accept().await.context("error accepting")?)
                .await
                .context("error running echo accept")
        }
        .instrument(debug_span!("accept"));

        tokio::time::timeout(
            Duration::from_secs(1),
            async move { try_join!(connect, accept) },
        )
        .await
        .context("timeout")??;
        Ok(())
    }
}
