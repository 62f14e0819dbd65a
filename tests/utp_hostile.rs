//! Hostile UDP on the peer port. The daemon speaks uTP (BEP 29) on the UDP side of its peer
//! port, where anybody can send anything, before any authentication. Daemon A, with a uTP
//! session to daemon B, gets some forty-five thousand hostile datagrams there: garbage of
//! every length, uTP headers of every type with absurd fields and broken extension chains,
//! STUN look-alikes and answers to questions it never asked, connections that send far more
//! out-of-order data than the window A advertises, and a SYN flood. Afterwards A still
//! answers, the session with B still carries files, A's memory grew by no more than uTP's
//! limits allow, and nothing panicked.
//!
//! The datagrams are paced by the kernel's own account of A's socket (`/proc/net/udp`): the
//! next burst goes out once A has read the previous one, so that they reach A instead of
//! being dropped by the kernel (which is checked), and a daemon that stops reading its port
//! fails the test.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::util::{noise, wait_for, Daemon, DEADLINE};
use crate::utp::{transports, wait_for_file};

/// The uTP header: 20 bytes.
const HEADER: usize = 20;
const ST_DATA: u8 = 0;
const ST_STATE: u8 = 2;
const ST_RESET: u8 = 3;
const ST_SYN: u8 = 4;
/// `type << 4 | version` of a uTP packet of `kind`.
const fn type_ver(kind: u8) -> u8 {
    (kind << 4) | 1
}

/// The most the hostile datagrams may add to A's worker's peak resident memory. uTP holds at
/// most 64 connections (`transport::utp::MAX_CONNECTIONS`), and what a sender can make a
/// connection hold is the data it receives: at most its 1 MiB receive buffer in order
/// (librqbit-utp's `RX_BUF_SIZE_PER_VSOCK_DEFAULT`) and as much again out of order (bounded in
/// bytes by our change to the library: before it, 1,985 slots of up to 16 KiB each let one
/// connection hold 32 MiB). Its send buffer holds only what the daemon writes, and before
/// authentication it writes nothing but ACKs (it waits for the TLS ClientHello). A SYN alone
/// creates nothing (the SYN-ACK carries a cookie; the connection is made when the handshake's
/// ACK brings it back), and at most 32 connections wait to be accepted. So 64 × 2 MiB, plus 64 MiB
/// for everything of fixed size: the connections' tasks and structures, the floods'
/// datagrams in flight, a debug build's allocator slack.
const LIMIT_KIB: u64 = (128 + 64) * 1024;

/// The largest datagram the daemon's uTP reads (librqbit-utp's dispatcher reads into 16 KiB;
/// the rest of a longer one is cut off).
const BIG_DATAGRAM: usize = 16 * 1024;
/// Out-of-order segments each hostile connection sends: as many as the daemon's out-of-order
/// queue has slots beyond the next expected one (1 MiB / 528-byte MSS for IPv4 = 1985).
const FILL_SEGMENTS: u16 = 1984;
/// Hostile connections that fill their receive window and more, each from its own loopback
/// address (so the per-address limit on unauthenticated connections does not refuse them).
const FILLERS: u8 = 8;

/// Deterministic pseudo-random numbers (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn u8(&mut self) -> u8 {
        self.next().to_be_bytes()[0]
    }

    fn u16(&mut self) -> u16 {
        let b = self.next().to_be_bytes();
        u16::from_be_bytes([b[0], b[1]])
    }

    fn u32(&mut self) -> u32 {
        let b = self.next().to_be_bytes();
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.u8()).collect()
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())]
    }

    /// A sequence or ACK number: an edge or anything.
    fn seq(&mut self) -> u16 {
        let any = self.u16();
        self.pick(&[0, 1, 0x7fff, 0x8000, u16::MAX, any, any])
    }

    /// A 32-bit field (timestamp, its difference, window): an edge or anything.
    fn wide(&mut self) -> u32 {
        let any = self.u32();
        self.pick(&[0, 1, u32::MAX, u32::MAX / 2 + 1, any, any])
    }
}

/// A uTP header (BEP 29), field by field, any value allowed.
#[derive(Clone, Copy)]
struct Header {
    /// `type << 4 | version`.
    type_ver: u8,
    /// The first extension's type (0: none).
    extension: u8,
    connection_id: u16,
    timestamp: u32,
    timestamp_difference: u32,
    wnd_size: u32,
    seq_nr: u16,
    ack_nr: u16,
}

impl Header {
    fn new(kind: u8, connection_id: u16, seq_nr: u16, ack_nr: u16) -> Header {
        Header {
            type_ver: type_ver(kind),
            extension: 0,
            connection_id,
            timestamp: 0,
            timestamp_difference: 0,
            wnd_size: 1 << 20,
            seq_nr,
            ack_nr,
        }
    }

    /// This header, then `rest` (extensions and payload).
    fn datagram(&self, rest: &[u8]) -> Vec<u8> {
        let mut d = Vec::with_capacity(HEADER + rest.len());
        d.extend_from_slice(&[self.type_ver, self.extension]);
        d.extend_from_slice(&self.connection_id.to_be_bytes());
        d.extend_from_slice(&self.timestamp.to_be_bytes());
        d.extend_from_slice(&self.timestamp_difference.to_be_bytes());
        d.extend_from_slice(&self.wnd_size.to_be_bytes());
        d.extend_from_slice(&self.seq_nr.to_be_bytes());
        d.extend_from_slice(&self.ack_nr.to_be_bytes());
        d.extend_from_slice(rest);
        d
    }
}

/// A uTP packet's `(type, connection_id, seq_nr, ack_nr)`, if it is one.
fn parse(d: &[u8]) -> Option<(u8, u16, u16, u16)> {
    let h = d.get(..HEADER)?;
    (h[0] & 0x0f == 1).then(|| {
        let at = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
        (h[0] >> 4, at(2), at(16), at(18))
    })
}

/// An extension chain: the first extension's type (for the header) and the bytes after the
/// header. Well-formed ones, lengths running past the end, long chains, unknown types.
fn extensions(rng: &mut Rng) -> (u8, Vec<u8>) {
    match rng.below(9) {
        0 => (0, Vec::new()),
        // A selective ACK of the usual 4 bytes, or of any length (the spec says multiples of 4).
        1 => (1, [vec![0, 4], rng.bytes(4)].concat()),
        2 => {
            let len = rng.below(64);
            (1, [vec![0, u8::try_from(len).unwrap()], rng.bytes(len)].concat())
        }
        // A length running past the end of the datagram.
        3 => {
            let have = rng.below(8);
            (rng.pick(&[1, 3, 2, 0x7f, 0xff]), [vec![0, rng.pick(&[255, 9, 5, 64])], rng.bytes(have)].concat())
        }
        // A long chain of well-formed extensions whose last one names another that is absent.
        4 => {
            let n = 200 + rng.below(400);
            let mut tail = Vec::new();
            for i in 0..n {
                let next = if i + 1 == n { rng.pick(&[1, 3, 0xff]) } else { rng.u8() | 1 };
                let len = rng.below(6);
                tail.extend_from_slice(&[next, u8::try_from(len).unwrap()]);
                tail.extend(rng.bytes(len));
            }
            (rng.pick(&[1, 2, 3, 0xff]), tail)
        }
        // libtorrent's close reason (type 3, 4 bytes), and of the wrong length.
        5 => (3, [vec![0, 4], rng.bytes(4)].concat()),
        6 => {
            let len = rng.pick(&[0, 1, 3, 5, 200]);
            (3, [vec![0, u8::try_from(len).unwrap()], rng.bytes(len)].concat())
        }
        // An extension announced, and nothing after the header.
        7 => (rng.u8() | 1, Vec::new()),
        _ => {
            let len = rng.below(64);
            (rng.u8(), rng.bytes(len))
        }
    }
}

/// A uTP header with `connection_id`, of any type (mostly valid ones, also invalid types and
/// versions), absurd sequence numbers, windows and timestamps, an extension chain, and a
/// payload (ST_DATA's usually has one; the others now and then, which is invalid).
fn hostile_packet(rng: &mut Rng, connection_id: u16) -> Vec<u8> {
    let kind = u8::try_from(rng.below(5)).unwrap();
    let type_ver = match rng.below(10) {
        0 => (rng.pick(&[5, 6, 7, 9, 15]) << 4) | 1,
        1 => (kind << 4) | rng.pick(&[0, 2, 3, 15]),
        2 => rng.u8(),
        _ => type_ver(kind),
    };
    let (extension, mut rest) = extensions(rng);
    let header = Header {
        type_ver,
        extension,
        connection_id,
        timestamp: rng.wide(),
        timestamp_difference: rng.wide(),
        wnd_size: rng.wide(),
        seq_nr: rng.seq(),
        ack_nr: rng.seq(),
    };
    let payload = if type_ver >> 4 == ST_DATA { rng.chance(90) } else { rng.chance(15) };
    if payload {
        let len = 1 + rng.below(1400);
        rest.extend(rng.bytes(len));
    }
    header.datagram(&rest)
}

const STUN_COOKIE: u32 = 0x2112_A442;

/// A STUN message of type `kind` (length field `length`, or the true one) with `body`.
fn stun(kind: u16, txid: &[u8], body: &[u8], length: Option<u16>) -> Vec<u8> {
    let length = length.unwrap_or_else(|| u16::try_from(body.len()).unwrap());
    [&kind.to_be_bytes()[..], &length.to_be_bytes(), &STUN_COOKIE.to_be_bytes(), txid, body].concat()
}

/// A STUN look-alike: a Binding success response with an XOR-MAPPED-ADDRESS for a
/// transaction nobody started, or a message of any class with garbage attributes (known and
/// unknown types, lengths past the end, missing padding, a bad FINGERPRINT), its length
/// field mostly true (so that it passes as STUN) and sometimes not.
fn stun_like(rng: &mut Rng) -> Vec<u8> {
    let txid = rng.bytes(12);
    if rng.chance(30) {
        let port = rng.u16() ^ 0x2112;
        let ip = rng.u32() ^ STUN_COOKIE;
        let attr = [&[0x00, 0x20, 0x00, 0x08, 0x00, 0x01][..], &port.to_be_bytes(), &ip.to_be_bytes()].concat();
        return stun(0x0101, &txid, &attr, None);
    }
    let any = rng.u16() & 0x3fff;
    let kind = rng.pick(&[0x0101, 0x0111, 0x0001, 0x0011, any]);
    let mut body = Vec::new();
    for _ in 0..rng.below(12) {
        let any = rng.u16();
        let t = rng.pick(&[
            0x0001, 0x0020, 0x0009, 0x000a, 0x0008, 0x001c, 0x8022, 0x8028, 0x802b, 0x802c, 0x8023, 0x0004, any,
        ]);
        let any_len = u16::try_from(rng.below(600)).unwrap();
        let declared = rng.pick(&[0, 1, 4, 8, 20, any_len, u16::MAX]);
        let actual = if rng.chance(70) { usize::from(declared).min(600) } else { rng.below(600) };
        body.extend_from_slice(&t.to_be_bytes());
        body.extend_from_slice(&declared.to_be_bytes());
        body.extend(rng.bytes(actual));
        if rng.chance(80) {
            body.resize(body.len().next_multiple_of(4), 0);
        }
    }
    let length = if rng.chance(80) { None } else { Some(rng.u16()) };
    stun(kind, &txid, &body, length)
}

/// The kernel's account of the UDP socket bound to `addr`: bytes waiting to be read, and
/// datagrams dropped because its buffer was full.
///
/// The kernel lists `/proc/net/udp` a page at a time and finds its place again on each
/// `read` by counting sockets from the start, so a socket closed meanwhile (the flood's
/// senders close theirs) can make one listing skip a line: A's socket is missing only
/// when several listings in a row lack it.
fn udp_socket(addr: SocketAddr) -> (u64, u64) {
    let SocketAddr::V4(v4) = addr else { panic!("the peer port is on IPv4 loopback here") };
    let local = format!("{:08X}:{:04X}", u32::from_le_bytes(v4.ip().octets()), v4.port());
    let mut table = String::new();
    for _ in 0..20 {
        table = std::fs::read_to_string("/proc/net/udp").unwrap();
        if let Some(found) = udp_line(&table, &local) {
            return found;
        }
        std::thread::park_timeout(Duration::from_millis(1));
    }
    panic!("no UDP socket {local} in 20 listings of /proc/net/udp; the last:\n{table}");
}

/// The rx queue and drop count on the line of `/proc/net/udp` for `local`.
fn udp_line(table: &str, local: &str) -> Option<(u64, u64)> {
    let line = table.lines().skip(1).find(|line| line.split_whitespace().nth(1) == Some(local))?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let queued = fields[4].split_once(':').and_then(|(_, rx)| u64::from_str_radix(rx, 16).ok()).unwrap();
    let drops = fields.last().and_then(|d| d.parse().ok()).unwrap();
    Some((queued, drops))
}

/// Sends datagrams to A's peer port, paced by what A has read.
struct Flood {
    to: SocketAddr,
    sent: u64,
    bytes: u64,
    unchecked: u32,
}

impl Flood {
    fn send(&mut self, from: &UdpSocket, datagram: &[u8]) {
        // A's receive buffer is the default 208 KiB: a burst of 16 small datagrams, or one
        // big one, on top of at most 48 KiB waiting.
        if datagram.len() > 2048 || self.unchecked >= 16 {
            self.wait_until_read(if datagram.len() > BIG_DATAGRAM { 0 } else { 48 << 10 });
            self.unchecked = 0;
        }
        from.send_to(datagram, self.to).unwrap();
        self.unchecked += 1;
        self.sent += 1;
        self.bytes += datagram.len() as u64;
    }

    /// Until at most `queued` bytes wait in A's socket.
    fn wait_until_read(&self, queued: u64) {
        let start = Instant::now();
        loop {
            let (waiting, _) = udp_socket(self.to);
            if waiting <= queued {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "A stopped reading its UDP peer port: {waiting} bytes waiting for {DEADLINE:?}, after {} datagrams",
                self.sent
            );
            std::thread::park_timeout(Duration::from_micros(200));
        }
    }
}

/// Reads what has arrived on `socket` (non-blocking): counts of uTP packets by type.
fn drain(socket: &UdpSocket, counts: &mut [u64; 16]) {
    let mut buf = [0u8; 2048];
    while let Ok(n) = socket.recv(&mut buf) {
        if let Some((kind, ..)) = parse(&buf[..n]) {
            counts[usize::from(kind)] += 1;
        }
    }
}

/// A connection opened by hand: our SYN's connection ID and sequence number, and the ACK
/// number A expects (its SYN-ACK's seq_nr - 1).
struct Opened {
    socket: UdpSocket,
    connection_id: u16,
    seq_nr: u16,
    ack_nr: u16,
}

/// Opens a uTP connection to `to` from `ip`: a SYN, re-sent until the SYN-ACK.
fn open(to: SocketAddr, ip: Ipv4Addr, rng: &mut Rng) -> Opened {
    let socket = UdpSocket::bind((ip, 0)).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let connection_id = rng.u16();
    // Far from wrapping: the out-of-order segments go up to 2000 past it.
    let seq_nr = 1 + rng.u16() % 60_000;
    let syn = Header::new(ST_SYN, connection_id, seq_nr, 0).datagram(&[]);
    let start = Instant::now();
    let mut buf = [0u8; 2048];
    loop {
        socket.send_to(&syn, to).unwrap();
        let sent = Instant::now();
        while sent.elapsed() < Duration::from_secs(1) {
            let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
            if let Some((ST_STATE, id, seq, ack)) = parse(&buf[..n]) {
                if from == to && id == connection_id && ack == seq_nr {
                    // The handshake's ACK: only then does A create the connection (its SYN-ACK
                    // carried a cookie; a SYN alone costs it nothing).
                    let ack_nr = seq.wrapping_sub(1);
                    let done = Header::new(ST_STATE, connection_id.wrapping_add(1), seq_nr.wrapping_add(1), ack_nr);
                    socket.send_to(&done.datagram(&[]), to).unwrap();
                    return Opened { socket, connection_id, seq_nr, ack_nr };
                }
            }
        }
        assert!(start.elapsed() < DEADLINE, "A never answered a SYN from {ip}");
    }
}

/// Reports a phase's datagrams and time.
fn phase(what: &str, flood: &Flood, since: &mut (u64, Instant)) {
    eprintln!("{what}: {} datagrams in {:.1?}", flood.sent - since.0, since.1.elapsed());
    *since = (flood.sent, Instant::now());
}

fn vm_rss_kib(d: &Daemon) -> u64 {
    let pid = d.cs.pid("worker").unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Garbage of every length, uTP headers of every type with absurd fields, STUN look-alikes.
fn flood_garbage(flood: &mut Flood, senders: &[UdpSocket], rng: &mut Rng, since: &mut (u64, Instant)) {
    // Garbage: random bytes of every length up to 1500, and a few of 64 KiB.
    for i in 0..10_000 {
        let len = rng.below(1501);
        flood.send(&senders[i % 4], &rng.bytes(len));
    }
    for i in 0..8 {
        flood.send(&senders[i % 4], &rng.bytes(65_507));
    }
    phase("random bytes", flood, since);

    // uTP headers of every type, for random (and edge) connection IDs.
    for i in 0..12_000 {
        let any = rng.u16();
        let id = rng.pick(&[0, 1, u16::MAX, any, any, any]);
        flood.send(&senders[i % 4], &hostile_packet(rng, id));
    }
    phase("uTP headers", flood, since);

    // STUN look-alikes.
    for i in 0..2_000 {
        flood.send(&senders[i % 4], &stun_like(rng));
    }
    phase("STUN look-alikes", flood, since);
}

/// Connections that ignore A's window: each sends a 16 KiB segment for every slot of A's
/// out-of-order queue (never the segment A waits for, so none is ever read), all at once;
/// then anything at all on them.
fn flood_fillers(flood: &mut Flood, a: &Daemon, baseline: u64, rng: &mut Rng, since: &mut (u64, Instant)) {
    let to = flood.to;
    let fillers: Vec<Opened> = (0..FILLERS).map(|i| open(to, Ipv4Addr::new(127, 0, 0, 2 + i), rng)).collect();
    let payload = noise(BIG_DATAGRAM - HEADER, 2);
    for k in 1..=FILL_SEGMENTS {
        for c in &fillers {
            let seq = c.seq_nr.wrapping_add(1).wrapping_add(k);
            let header = Header::new(ST_DATA, c.connection_id.wrapping_add(1), seq, c.ack_nr);
            flood.send(&c.socket, &header.datagram(&payload));
        }
    }
    let mut windows = [0u64; 16];
    let mut zero_window = 0;
    for c in &fillers {
        c.socket.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 2048];
        while let Ok(n) = c.socket.recv(&mut buf) {
            if let Some((kind, ..)) = parse(&buf[..n]) {
                windows[usize::from(kind)] += 1;
                zero_window += u64::from(kind == ST_STATE && buf[12..16] == [0; 4]);
            }
        }
    }
    flood.wait_until_read(48 << 10);
    // A acknowledged the fill (selectively): the connections were really open.
    assert!(windows[usize::from(ST_STATE)] >= u64::from(FILLERS), "A sent no ACKs to the fillers: {windows:?}");
    eprintln!(
        "A's worker after the out-of-order fill: VmRSS {} KiB, peak {} KiB (baseline peak {baseline} KiB); \
         last ACKs read back: {} ST_STATE, {zero_window} advertising a zero window",
        vm_rss_kib(a),
        a.worker_peak_rss_kib(),
        windows[usize::from(ST_STATE)]
    );
    for c in &fillers {
        for _ in 0..250 {
            flood.send(&c.socket, &hostile_packet(rng, c.connection_id.wrapping_add(1)));
        }
    }
    phase("hostile connections", flood, since);
}

/// A SYN flood: thousands of SYNs with distinct connection IDs from a handful of sockets;
/// the answers read back, by type.
fn flood_syns(flood: &mut Flood, senders: &[UdpSocket], rng: &mut Rng, since: &mut (u64, Instant)) -> [u64; 16] {
    let mut answers = [0u64; 16];
    for j in 0..1_000u16 {
        for (i, s) in senders.iter().enumerate() {
            let id = j.wrapping_mul(4).wrapping_add(u16::try_from(i).unwrap());
            flood.send(s, &Header::new(ST_SYN, id, rng.u16(), 0).datagram(&[]));
        }
        if j % 32 == 0 {
            senders.iter().for_each(|s| drain(s, &mut answers));
        }
    }
    senders.iter().for_each(|s| drain(s, &mut answers));
    phase("SYN flood", flood, since);
    flood.wait_until_read(48 << 10);
    answers
}

#[test]
fn hostile_udp_on_the_peer_port_leaves_the_utp_session_and_memory_bounded() {
    let started = Instant::now();
    let a = Daemon::start();
    let b = Daemon::start();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let code = a.share_code(dir_a.path(), &["--multi-use"]);
    let to: SocketAddr = a.listen().parse().unwrap();
    b.cs.ok(&["attach", &code, dir_b.path().to_str().unwrap(), "--peer", &format!("utp:{to}")]);
    wait_for("the uTP session", || (transports(&a) == ["utp"] && transports(&b) == ["utp"]).then_some(()));
    // The session is used before the baseline is taken.
    let first = noise(200_000, 1);
    std::fs::write(dir_a.path().join("before.bin"), &first).unwrap();
    wait_for_file(&dir_b.path().join("before.bin"), &first);
    let baseline = a.worker_peak_rss_kib();
    let (_, drops_before) = udp_socket(to);

    let mut rng = Rng(0x5eed_0fc1_ea45_c1a5);
    let mut flood = Flood { to, sent: 0, bytes: 0, unchecked: 0 };
    let senders: Vec<UdpSocket> = (0..4).map(|_| UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap()).collect();
    for s in &senders {
        s.set_nonblocking(true).unwrap();
    }
    let mut since = (0, Instant::now());
    flood_garbage(&mut flood, &senders, &mut rng, &mut since);
    flood_fillers(&mut flood, &a, baseline, &mut rng, &mut since);
    let answers = flood_syns(&mut flood, &senders, &mut rng, &mut since);

    let (_, drops_after) = udp_socket(to);
    let dropped = drops_after - drops_before;
    eprintln!(
        "sent {} datagrams ({} MiB) in {:.1?}; the kernel dropped {dropped}; SYN flood answers read back: \
         {} ST_STATE, {} ST_RESET",
        flood.sent,
        flood.bytes >> 20,
        started.elapsed(),
        answers[usize::from(ST_STATE)],
        answers[usize::from(ST_RESET)],
    );
    // Most of them reached A (otherwise this tested the kernel, not the daemon).
    assert!(dropped * 20 <= flood.sent, "{dropped} of {} datagrams were dropped before A read them", flood.sent);

    // A answers, the session with B is there (still, or again), and it carries a new file.
    a.cs.ok(&["status"]);
    let survived = a.peers() == 1;
    wait_for("the session with B", || (a.peers() == 1 && b.peers() == 1).then_some(()));
    let after = noise(300_000, 3);
    std::fs::write(dir_a.path().join("after.bin"), &after).unwrap();
    wait_for_file(&dir_b.path().join("after.bin"), &after);
    // And a newcomer (from an address of its own: the flood's source is over its limit of
    // unauthenticated connections for a while, by design) still gets in over uTP.
    let c = Daemon::start_with(&[("CLEARSKIES_LISTEN_ADDRESS", "127.0.0.30")]);
    let dir_c = tempfile::tempdir().unwrap();
    c.cs.ok(&["attach", &code, dir_c.path().to_str().unwrap(), "--peer", &format!("utp:{to}")]);
    wait_for_file(&dir_c.path().join("after.bin"), &after);
    let growth = a.worker_peak_rss_kib().saturating_sub(baseline);
    eprintln!(
        "session {} ({:?}); A's worker peak RSS grew by {growth} KiB (limit {LIMIT_KIB} KiB); {:.1?} in all",
        if survived { "survived" } else { "came back" },
        transports(&a),
        started.elapsed()
    );
    let log = a.cs.log();
    assert!(!log.contains("panicked"), "A panicked:\n{log}");
    for dead in ["error running dispatcher", "uTP: no longer accepting"] {
        assert!(!log.contains(dead), "A's uTP stopped ({dead}):\n{log}");
    }
    assert!(growth < LIMIT_KIB, "A's worker peak RSS grew by {growth} KiB (limit {LIMIT_KIB} KiB)");
}
