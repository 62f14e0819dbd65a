use super::*;
use crate::transfer::RANGE;
use clearskies_protocol::message::directory::Get;
use clearskies_protocol::path::SharePath;

const MIB: u64 = 1 << 20;

fn sha(n: u8) -> Sha256Hash {
    Sha256Hash([n; 32])
}

fn fetch(n: u8, size: u64) -> Fetch {
    Fetch { sha256: sha(n), size, path: SharePath::parse(&format!("/f{n}")).unwrap(), unix_mode: None, mtime: None }
}

/// A whole `directory.get` of `name`.
fn get(name: Sha256Hash) -> Message {
    Get { sha256: name, range: None }.into()
}

/// A ranged `directory.get` of `name`.
fn get_range(name: Sha256Hash, start: u64, len: u64) -> Message {
    Get { sha256: name, range: Some([start, len]) }.into()
}

/// The transfer state the planner reads and updates.
#[derive(Default)]
struct World {
    queue: VecDeque<Sha256Hash>,
    fetches: HashMap<Sha256Hash, Fetch>,
    downloads: HashMap<Sha256Hash, Download>,
    writing: HashSet<Sha256Hash>,
    whole: HashSet<Sha256Hash>,
}

impl World {
    /// `fetches` wanted, queued in this order.
    fn wanting(fetches: &[Fetch]) -> World {
        World {
            queue: fetches.iter().map(|f| f.sha256).collect(),
            fetches: fetches.iter().map(|f| (f.sha256, f.clone())).collect(),
            ..World::default()
        }
    }

    fn queued(&self) -> Vec<Sha256Hash> {
        self.queue.iter().copied().collect()
    }
}

/// What lies outside: partial files, the index.
#[derive(Default)]
struct Known {
    partial: HashMap<Sha256Hash, u64>,
    superseded: HashSet<Sha256Hash>,
    ciphers: HashMap<Sha256Hash, Sha256Hash>,
}

impl Facts for Known {
    fn partial_len(&self, sha: &Sha256Hash) -> u64 {
        self.partial.get(sha).copied().unwrap_or(0)
    }

    fn superseded(&self, sha: &Sha256Hash) -> bool {
        self.superseded.contains(sha)
    }

    fn cipher_of(&self, sha: &Sha256Hash) -> Option<Sha256Hash> {
        self.ciphers.get(sha).copied()
    }
}

/// A connected peer and its requests.
struct Conn {
    conn: u64,
    untrusted: bool,
    rsync: bool,
    requests: Requests,
}

fn trusted(conn: u64, rsync: bool) -> Conn {
    Conn { conn, untrusted: false, rsync, requests: Requests::default() }
}

fn untrusted(conn: u64) -> Conn {
    Conn { conn, untrusted: true, rsync: false, requests: Requests::default() }
}

fn run(world: &mut World, conns: &mut [Conn], free: Option<u64>, facts: &Known) -> Plan {
    let mut peers: Vec<Peer<'_>> = conns
        .iter_mut()
        .map(|c| Peer { conn: c.conn, untrusted: c.untrusted, rsync: c.rsync, requests: &mut c.requests })
        .collect();
    let wanted = Wanted {
        queue: &mut world.queue,
        fetches: &mut world.fetches,
        downloads: &world.downloads,
        writing: &world.writing,
        whole: &world.whole,
    };
    plan(wanted, &mut peers, free, facts)
}

/// The downloads a peer's plan starts: (contents, name asked for, next byte, asked up to).
fn started(p: &PeerPlan) -> Vec<(Sha256Hash, Sha256Hash, u64, u64)> {
    p.downloads.iter().map(|(sha, d)| (*sha, d.name, d.next, d.requested)).collect()
}

fn asked(c: &Conn) -> Vec<Sha256Hash> {
    c.requests.asked.iter().copied().collect()
}

#[test]
fn a_connection_gets_at_most_max_requests() {
    let files: Vec<Fetch> = (0..70).map(|n| fetch(n, 10)).collect();
    let mut world = World::wanting(&files);
    let mut conns = [trusted(1, false)];
    let plan = run(&mut world, &mut conns, None, &Known::default());
    assert_eq!(plan.peers.len(), 1);
    assert_eq!(plan.peers[0].conn, 1);
    assert_eq!(plan.peers[0].requests, (0..64).map(|n| get(sha(n))).collect::<Vec<_>>());
    assert_eq!(world.queued(), (64..70).map(sha).collect::<Vec<_>>());
    assert_eq!((conns[0].requests.gets, conns[0].requests.asked_bytes), (MAX_REQUESTS, 640));
    assert_eq!(asked(&conns[0]), (0..64).map(sha).collect::<Vec<_>>());
    // Full: the next plan asks nothing more of it.
    let plan = run(&mut world, &mut conns, None, &Known::default());
    assert!(plan.peers[0].requests.is_empty() && plan.peers[0].downloads.is_empty());
    assert_eq!(world.queue.len(), 6);
}

#[test]
fn bytes_in_flight_are_limited_but_one_content_is_always_asked() {
    let files = [fetch(1, 40 * MIB), fetch(2, 40 * MIB), fetch(3, 40 * MIB)];
    let mut world = World::wanting(&files);
    let mut conns = [trusted(1, false)];
    let plan = run(&mut world, &mut conns, None, &Known::default());
    // 40 MiB in flight is under the limit: one more; 80 MiB is over it.
    assert_eq!(plan.peers[0].requests, vec![get_range(sha(1), 0, RANGE), get_range(sha(2), 0, RANGE)]);
    assert_eq!(started(&plan.peers[0]), vec![(sha(1), sha(1), 0, RANGE), (sha(2), sha(2), 0, RANGE)]);
    assert_eq!(world.queued(), vec![sha(3)]);
    assert_eq!((conns[0].requests.gets, conns[0].requests.asked_bytes), (2, 80 * MIB));

    // A file larger than the limit is still asked of an idle connection.
    let mut world = World::wanting(&[fetch(4, 2 * MAX_REQUEST_BYTES), fetch(5, 10)]);
    let mut conns = [trusted(1, false)];
    let plan = run(&mut world, &mut conns, None, &Known::default());
    assert_eq!(plan.peers[0].requests, vec![get_range(sha(4), 0, RANGE)]);
    assert_eq!(world.queued(), vec![sha(5)]);
}

#[test]
fn refused_contents_and_contents_being_written_are_skipped_in_place() {
    let mut world = World::wanting(&[fetch(1, 10), fetch(2, 20), fetch(3, 30), fetch(4, 40)]);
    world.writing.insert(sha(3));
    let mut conns = [trusted(1, false)];
    conns[0].requests.refused.insert(sha(1));
    let plan = run(&mut world, &mut conns, None, &Known::default());
    assert_eq!(plan.peers[0].requests, vec![get(sha(2)), get(sha(4))]);
    assert_eq!(world.queued(), vec![sha(1), sha(3)]);
    assert_eq!(asked(&conns[0]), vec![sha(2), sha(4)]);
    assert!(plan.complete.is_empty() && plan.dropped.is_empty() && plan.short_of_space.is_none());
}

#[test]
fn a_partial_download_continues_from_its_offset() {
    let mut world = World::wanting(&[fetch(1, 10 * MIB), fetch(2, 1000)]);
    let mut facts = Known::default();
    facts.partial.insert(sha(1), 5 * MIB);
    facts.partial.insert(sha(2), 100);
    // (Even on a connection that does deltas: what arrived is kept.)
    let mut conns = [trusted(1, true)];
    let plan = run(&mut world, &mut conns, None, &facts);
    assert_eq!(plan.peers[0].requests, vec![get_range(sha(1), 5 * MIB, RANGE), get_range(sha(2), 100, 900)]);
    assert_eq!(started(&plan.peers[0]), vec![(sha(1), sha(1), 5 * MIB, 9 * MIB), (sha(2), sha(2), 100, 1000)]);
    assert!(plan.peers[0].deltas.is_empty());
    // The whole size counts as in flight.
    assert_eq!(conns[0].requests.asked_bytes, 10 * MIB + 1000);
}

#[test]
fn a_complete_partial_download_is_finished_not_asked_for() {
    let mut world = World::wanting(&[fetch(1, 500), fetch(2, 10)]);
    let mut facts = Known::default();
    facts.partial.insert(sha(1), 500);
    let mut conns = [trusted(1, false)];
    let plan = run(&mut world, &mut conns, None, &facts);
    assert_eq!(plan.complete, vec![fetch(1, 500)]);
    assert_eq!(plan.peers[0].requests, vec![get(sha(2))]);
    assert_eq!(asked(&conns[0]), vec![sha(2)]);
    assert!(world.queue.is_empty());
    // Still wanted: the verifier installs it.
    assert!(world.fetches.contains_key(&sha(1)));
}

#[test]
fn superseded_contents_are_dropped() {
    let mut world = World::wanting(&[fetch(1, 10), fetch(2, 20)]);
    let mut facts = Known::default();
    facts.superseded.insert(sha(1));
    let mut conns = [trusted(1, false)];
    let plan = run(&mut world, &mut conns, None, &facts);
    assert_eq!(plan.dropped, vec![sha(1)]);
    assert_eq!(plan.peers[0].requests, vec![get(sha(2))]);
    assert!(world.queue.is_empty());
    assert!(!world.fetches.contains_key(&sha(1)) && world.fetches.contains_key(&sha(2)));
    assert_eq!(asked(&conns[0]), vec![sha(2)]);
}

#[test]
fn a_file_that_does_not_fit_waits_while_a_smaller_one_behind_it_is_asked() {
    let on_the_way = [fetch(8, 300), fetch(9, 100)];
    let mut world = World::wanting(&[fetch(1, 700), fetch(2, 500), fetch(3, 200)]);
    world.fetches.extend(on_the_way.iter().map(|f| (f.sha256, f.clone())));
    // On their way: 300 bytes asked (and being written: counted once) and 100 being written.
    world.writing.extend([sha(8), sha(9)]);
    let mut conns = [trusted(1, false)];
    conns[0].requests.asked.push_back(sha(8));
    conns[0].requests.asked_bytes = 300;
    let plan = run(&mut world, &mut conns, Some(1000), &Known::default());
    // Room 600: 700 waits, 500 fits, then 200 does not.
    assert_eq!(plan.peers[0].requests, vec![get(sha(2))]);
    assert_eq!(plan.short_of_space, Some(700));
    assert_eq!(world.queued(), vec![sha(1), sha(3)]);

    // What a partial file holds already is not needed again; enough room: nothing is short.
    let mut world = World::wanting(&[fetch(1, 700)]);
    let mut facts = Known::default();
    facts.partial.insert(sha(1), 200);
    let mut conns = [trusted(1, false)];
    let plan = run(&mut world, &mut conns, Some(500), &facts);
    assert_eq!(plan.peers[0].requests, vec![get_range(sha(1), 200, 500)]);
    assert_eq!(plan.short_of_space, None);
    // Room unknown: no limit.
    let mut world = World::wanting(&[fetch(1, u64::MAX / 2)]);
    let plan = run(&mut world, &mut [trusted(1, false)], None, &Known::default());
    assert_eq!(plan.peers[0].requests.len(), 1);
    assert_eq!(plan.short_of_space, None);
}

#[test]
fn large_changed_files_are_asked_as_deltas_only_where_they_can_be() {
    let files = [
        fetch(1, DELTA_MIN_SIZE),     // a delta
        fetch(2, DELTA_MIN_SIZE - 1), // too small: whole
        fetch(3, DELTA_MIN_SIZE),     // partly here: continued
        fetch(4, DELTA_MIN_SIZE),     // a delta of it failed: whole
    ];
    let mut facts = Known::default();
    facts.partial.insert(sha(3), 10);
    let mut world = World::wanting(&files);
    world.whole.insert(sha(4));
    let mut conns = [trusted(1, true)];
    let plan = run(&mut world, &mut conns, None, &facts);
    assert_eq!(plan.peers[0].deltas, vec![fetch(1, DELTA_MIN_SIZE)]);
    let rest = vec![get(sha(2)), get_range(sha(3), 10, DELTA_MIN_SIZE - 10), get(sha(4))];
    assert_eq!(plan.peers[0].requests, rest);
    assert_eq!(started(&plan.peers[0]).iter().map(|s| s.0).collect::<Vec<_>>(), vec![sha(2), sha(3), sha(4)]);
    // The signature is a request in flight too.
    assert_eq!(conns[0].requests.gets, 4);
    assert_eq!(asked(&conns[0]), vec![sha(1), sha(2), sha(3), sha(4)]);

    // Without rsync: whole.
    let mut world = World::wanting(&[fetch(1, DELTA_MIN_SIZE)]);
    let plan = run(&mut world, &mut [trusted(1, false)], None, &Known::default());
    assert!(plan.peers[0].deltas.is_empty());
    assert_eq!(plan.peers[0].requests, vec![get(sha(1))]);
}

#[test]
fn an_untrusted_peer_is_asked_by_ciphertext_hash_and_skipped_without_one() {
    let mut world = World::wanting(&[fetch(1, 10), fetch(2, 20), fetch(3, 30)]);
    let mut facts = Known::default();
    facts.ciphers.insert(sha(1), sha(101));
    facts.ciphers.insert(sha(3), sha(103));
    let mut conns = [untrusted(1), trusted(2, false)];
    let plan = run(&mut world, &mut conns, None, &facts);
    let (u, t) = (&plan.peers[0], &plan.peers[1]);
    assert_eq!(u.requests, vec![get(sha(101)), get(sha(103))]);
    assert_eq!(u.names, vec![(sha(101), sha(1)), (sha(103), sha(3))]);
    assert_eq!(started(u), vec![(sha(1), sha(101), 0, 10), (sha(3), sha(103), 0, 30)]);
    // Asked by plaintext hash, in the peer's requests.
    assert_eq!(asked(&conns[0]), vec![sha(1), sha(3)]);
    // Without a ciphertext name: refused by it, left in its place for the next peer.
    assert!(conns[0].requests.refused.contains(&sha(2)));
    assert_eq!(t.requests, vec![get(sha(2))]);
    assert!(t.names.is_empty());
    assert!(world.queue.is_empty());
}

#[test]
fn an_untrusted_peer_alone_leaves_what_it_cannot_be_asked_for_queued() {
    let mut world = World::wanting(&[fetch(1, 10), fetch(2, 20)]);
    let mut facts = Known::default();
    facts.ciphers.insert(sha(2), sha(102));
    let mut conns = [untrusted(1)];
    let plan = run(&mut world, &mut conns, None, &facts);
    assert_eq!(plan.peers[0].requests, vec![get(sha(102))]);
    assert_eq!(world.queued(), vec![sha(1)]);
    assert_eq!(conns[0].requests.refused, HashSet::from([sha(1)]));
    // Refused now: looked at no more until the retry timer clears that.
    let again = run(&mut world, &mut conns, None, &facts);
    assert!(again.peers[0].requests.is_empty());
    assert_eq!(world.queued(), vec![sha(1)]);
}

#[test]
fn two_peers_share_the_queue_in_order() {
    let files: Vec<Fetch> = (0..67).map(|n| fetch(n, 10)).collect();
    let mut world = World::wanting(&files);
    let mut conns = [trusted(1, false), trusted(2, false)];
    // The first refused the first contents.
    conns[0].requests.refused.insert(sha(0));
    let plan = run(&mut world, &mut conns, None, &Known::default());
    assert_eq!((plan.peers[0].conn, plan.peers[1].conn), (1, 2));
    assert_eq!(plan.peers[0].requests, (1..65).map(|n| get(sha(n))).collect::<Vec<_>>());
    assert_eq!(plan.peers[1].requests, vec![get(sha(0)), get(sha(65)), get(sha(66))]);
    assert_eq!(asked(&conns[1]), vec![sha(0), sha(65), sha(66)]);
    assert!(world.queue.is_empty());
}

#[test]
fn room_is_shared_by_the_peers() {
    let mut world = World::wanting(&[fetch(1, 600), fetch(2, 600)]);
    let mut conns = [trusted(1, false), trusted(2, false)];
    // The first peer can only be asked for one at a time.
    conns[0].requests.gets = MAX_REQUESTS - 1;
    let plan = run(&mut world, &mut conns, Some(1000), &Known::default());
    assert_eq!(plan.peers[0].requests, vec![get(sha(1))]);
    assert!(plan.peers[1].requests.is_empty());
    assert_eq!(plan.short_of_space, Some(600));
    assert_eq!(world.queued(), vec![sha(2)]);
}
