//! Sending the index to each connection, one [`IndexSender`] per subscriber (Syncthing's
//! `indexhandler.go`): how records go to it ([`Form`], fixed when it comes up), answering
//! its `database.get_updates` in paced chunks of [`ANSWER_CHUNK`], holding the changes
//! announced meanwhile until after `updates_done`, and batching updates into messages of
//! [`SEND_BATCH`].

use std::sync::Arc;

use actix::{ActorFutureExt, AsyncContext, Context, Recipient, WrapFuture};
use clearskies_protocol::message::database::UpdatesDone;
use clearskies_protocol::message::Message;
use clearskies_protocol::path::SharePath;
use clearskies_protocol::updates::Since;
use clearskies_protocol::PeerId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{debug, error, warn};

use super::{Share, ShareState};
use crate::peer::messages::PeerOut;
use crate::share::worker::{Worker, WorkerGone};
use crate::transfer::Access;
use clearskies_index::rsa::SigningKey;
use clearskies_index::untrusted::UntrustedKeys;
use clearskies_index::{record, store};

/// Records per chunk of a `get_updates` answer: a peer catching up on a million records
/// never has them all in memory at once.
const ANSWER_CHUNK: usize = 4096;
/// Updates per message batch handed to a connection.
const SEND_BATCH: usize = 512;
/// Chunks of an answer read ahead of what the connection's socket has taken.
const PACE: usize = 2;

/// One connection subscribed to the share.
#[derive(Debug)]
pub(super) struct IndexSender {
    out: Recipient<PeerOut>,
    /// The peer has sent everything our `get_updates` asked for.
    pub(super) caught_up: bool,
    /// How records go to it.
    pub(super) form: Form,
    /// Its peer ID.
    pub(super) peer: PeerId,
    /// While its `get_updates` is being answered (in chunks): the changes announced
    /// meanwhile, sent after the answer, so the peer never holds a newer revision of a
    /// writer before the older ones (its `since` would then skip them).
    held: Option<Vec<record::Record>>,
    /// Pacing of that answer: chunks not yet written to the connection's socket.
    pace: Option<Arc<Semaphore>>,
}

/// How records go to one connection: decided once, from the connection's [`Access`] (an
/// untrusted peer gets records only encrypted, or none at all).
#[derive(Debug, Clone)]
pub(super) enum Form {
    /// Plain messages (both sides read-write).
    Plain,
    /// Signed bodies (a read-only peer on the connection, or we are one): relayed as they
    /// arrived or as we signed them before, or signed now with the read-write key (on
    /// read-write shares).
    Signed(Option<Arc<SigningKey>>),
    /// Encrypted and signed: an untrusted peer, and we hold the plaintext.
    Encrypted(Arc<UntrustedKeys>, Arc<SigningKey>),
    /// Nothing: an untrusted peer we cannot sign for (never anything in the clear).
    Nothing,
}

impl Form {
    pub(super) fn of(access: &Access, signed: bool, sign: Option<Arc<SigningKey>>) -> Form {
        match (access.crypt(), sign) {
            (Some(keys), Some(sign)) => Form::Encrypted(keys.clone(), sign),
            (Some(_), None) => Form::Nothing,
            (None, sign) if signed => Form::Signed(sign),
            (None, _) => Form::Plain,
        }
    }
}

/// `database.update`s ready for one connection.
#[derive(Debug)]
pub(super) enum Updates {
    /// Plain messages (both sides read-write).
    Plain(Vec<Message>),
    /// Signed bodies (a read-only or untrusted peer on the connection).
    Signed(Vec<record::Signed>),
}

impl IndexSender {
    pub(super) fn new(out: Recipient<PeerOut>, form: Form, peer: PeerId) -> Self {
        IndexSender { out, caught_up: false, form, peer, held: None, pace: None }
    }

    /// Where its messages go.
    pub(super) fn out(&self) -> &Recipient<PeerOut> {
        &self.out
    }

    /// Changes announced for this connection: those to send now, or `None` while its
    /// `get_updates` is being answered (they are held until after the answer).
    fn offer<'a>(&mut self, records: impl Iterator<Item = &'a record::Record>) -> Option<Vec<&'a record::Record>> {
        match &mut self.held {
            Some(held) => {
                held.extend(records.cloned());
                None
            }
            None => Some(records.collect()),
        }
    }

    /// Starts answering a `get_updates`; `false` if one is being answered (a repeated
    /// request adds nothing).
    fn begin_answer(&mut self) -> bool {
        if self.held.is_some() {
            return false;
        }
        self.held = Some(Vec::new());
        true
    }

    /// The pacing of the answer under way.
    fn pace(&mut self) -> Arc<Semaphore> {
        self.pace.get_or_insert_with(|| Arc::new(Semaphore::new(PACE))).clone()
    }

    /// The answer is over: what was held meanwhile, in the order it was announced.
    fn end_answer(&mut self) -> Vec<record::Record> {
        self.pace = None;
        self.held.take().unwrap_or_default()
    }
}

/// `updates` as the messages a connection is handed, [`SEND_BATCH`] at a time, in order.
fn batches(updates: Updates) -> Vec<PeerOut> {
    fn split<T>(items: Vec<T>, each: impl Fn(Vec<T>) -> PeerOut) -> Vec<PeerOut> {
        let mut items = items.into_iter();
        std::iter::from_fn(|| Some(items.by_ref().take(SEND_BATCH).collect::<Vec<T>>()))
            .take_while(|batch| !batch.is_empty())
            .map(each)
            .collect()
    }
    match updates {
        Updates::Plain(msgs) => split(msgs, PeerOut::Send),
        Updates::Signed(signed) => split(signed, PeerOut::SendSigned),
    }
}

fn send_to(out: &Recipient<PeerOut>, updates: Updates) {
    for batch in batches(updates) {
        out.do_send(batch);
    }
}

/// Records as a connection gets them, and the records whose signature was made for that
/// (to keep with them, see [`keep_signatures`]).
type Prepared = (Updates, Vec<record::Record>);

/// `records` as `form` sends them: plain, signed, or encrypted and signed. A signature kept
/// with the record for its version (the one it arrived in, or one we made before) is used
/// again; others are made now. A record with neither a valid stored signature nor a key to
/// sign with is left out (a read-only share never sends its own changes). Encrypting reads
/// a file's contents the first time (`s`: the worker's state), to learn the ciphertext
/// hash; without it (`None`), or while a file's contents are not here, it is left out.
fn prepare<'a>(s: Option<&ShareState>, records: impl Iterator<Item = &'a record::Record>, form: &Form) -> Prepared {
    let mut fresh = Vec::new();
    let updates = match form {
        Form::Plain => Updates::Plain(records.map(|r| Message::from(r.to_update())).collect()),
        Form::Nothing => Updates::Signed(Vec::new()),
        Form::Signed(key) => Updates::Signed(
            records
                .filter_map(|r| {
                    if let Some(kept) = r.signature() {
                        return Some(kept.clone());
                    }
                    let signed = sign_body(r, Message::from(r.to_update()).encode(), key.as_deref()?)?;
                    fresh.push(record::Record { signed: Some(signed.clone()), ..r.clone() });
                    Some(signed)
                })
                .collect(),
        ),
        Form::Encrypted(keys, key) => match s {
            Some(s) => Updates::Signed(super::untrusted::encrypt_records(s, records, keys, key, &mut fresh)),
            None => Updates::Signed(Vec::new()),
        },
    };
    (updates, fresh)
}

/// Signs `body` (the update of `r`) with `key`.
pub(super) fn sign_body(r: &record::Record, body: Vec<u8>, key: &SigningKey) -> Option<record::Signed> {
    let signature = key.sign(&body).map_err(|e| error!(path = %r.path, error = %e, "cannot sign a record")).ok()?;
    let body = String::from_utf8(body).ok()?;
    Some(record::Signed { body, signature })
}

/// Keeps signatures just made (`fresh`: the records with them) in the index, each with the
/// version it signs if that is still the stored one, so that sending the record again (a
/// read-only or untrusted peer asking for everything, again and again) costs no signature.
fn keep_signatures(s: &ShareState, fresh: Vec<record::Record>) {
    if fresh.is_empty() {
        return;
    }
    let mut keep = Vec::with_capacity(fresh.len());
    for f in fresh {
        let Ok(Some(mut stored)) = s.store.get(&f.path) else { continue };
        // (A newer version written meanwhile keeps what it has.)
        if stored.to_update() != f.to_update() {
            continue;
        }
        if f.signed.is_some() {
            stored.signed = f.signed;
        }
        if f.sealed.is_some() {
            stored.sealed = f.sealed;
        }
        keep.push(stored);
    }
    if let Err(e) = s.store.commit(&keep, None) {
        warn!(error = %e, "cannot keep the signatures made for peers");
    }
}

/// One chunk of a `get_updates` answer (from `cursor` on), as `form` sends it, with the
/// signatures made for it kept: the records read, the updates, where to go on, and how
/// many signatures were made.
fn answer_chunk(
    s: &ShareState,
    since: &Since,
    cursor: Option<store::UpdatesCursor>,
    form: &Form,
) -> Result<(usize, Updates, Option<store::UpdatesCursor>, usize), store::StoreError> {
    let (records, cursor) = s.store.updates_chunk(since, cursor, ANSWER_CHUNK)?;
    let (updates, fresh) = prepare(Some(s), records.iter(), form);
    let made = fresh.len();
    keep_signatures(s, fresh);
    Ok((records.len(), updates, cursor, made))
}

/// Sends records to one connection, as it needs them (encrypting may read files: on the
/// worker thread; signatures made are kept by the worker, which alone writes the index).
fn deliver<'a>(worker: &Worker<ShareState>, sub: &IndexSender, these: impl Iterator<Item = &'a record::Record>) {
    match &sub.form {
        Form::Nothing => {}
        Form::Encrypted(..) => {
            let (these, form, out) = (these.cloned().collect::<Vec<_>>(), sub.form.clone(), sub.out.clone());
            let job = worker.run(move |s: &mut ShareState| {
                let (updates, fresh) = prepare(Some(s), these.iter(), &form);
                keep_signatures(s, fresh);
                updates
            });
            actix_rt::spawn(async move {
                if let Ok(updates) = job.await {
                    send_to(&out, updates);
                }
            });
        }
        Form::Plain | Form::Signed(_) => {
            let (updates, fresh) = prepare(None, these, &sub.form);
            send_to(&sub.out, updates);
            if !fresh.is_empty() {
                drop(worker.run(move |s: &mut ShareState| keep_signatures(s, fresh)));
            }
        }
    }
}

/// What reading one chunk of an answer on the worker answers: the records read, the
/// updates, where to go on, and the request (for the next chunk).
type ChunkRead = Result<Result<(usize, Updates, Option<store::UpdatesCursor>, Since), store::StoreError>, WorkerGone>;

impl Share {
    /// Sends records to every subscriber except the connection each came from.
    pub(super) fn announce(&mut self, records: Vec<(Option<u64>, record::Record)>) {
        if records.is_empty() {
            return;
        }
        for (conn, sub) in &mut self.senders {
            let these = records.iter().filter(|(from, _)| *from != Some(*conn)).map(|(_, r)| r);
            if let Some(now) = sub.offer(these) {
                deliver(&self.worker, sub, now.into_iter());
            }
        }
    }

    /// Installed files whose contents untrusted peers can have now.
    pub(super) fn announce_installed(&self, paths: &[SharePath]) {
        for sub in self.senders.values() {
            if !matches!(sub.form, Form::Encrypted(..)) {
                continue;
            }
            let (paths, form, out) = (paths.to_vec(), sub.form.clone(), sub.out.clone());
            let job = self.worker.run(move |s: &mut ShareState| {
                let records: Vec<record::Record> = paths.iter().filter_map(|p| s.store.get(p).ok().flatten()).collect();
                let (updates, fresh) = prepare(Some(s), records.iter(), &form);
                keep_signatures(s, fresh);
                updates
            });
            actix_rt::spawn(async move {
                if let Ok(updates) = job.await {
                    send_to(&out, updates);
                }
            });
        }
    }

    /// A connection's `database.get_updates`: one answer at a time per connection.
    pub(super) fn answer_get_updates(&mut self, conn: u64, since: Since, ctx: &mut Context<Self>) {
        if self.senders.get_mut(&conn).is_some_and(IndexSender::begin_answer) {
            self.send_updates(conn, since, None, ctx);
        }
    }

    /// Answers a `get_updates` in chunks of [`ANSWER_CHUNK`] records (read, signed or
    /// encrypted one chunk at a time on the worker thread), then `updates_done` and what was
    /// announced meanwhile.
    fn send_updates(&mut self, conn: u64, since: Since, cursor: Option<store::UpdatesCursor>, ctx: &mut Context<Self>) {
        let Some(sub) = self.senders.get_mut(&conn) else { return };
        // Paced: the next chunk is read once the one before the last is written to the
        // socket, so a slow peer holds at most two chunks in memory here.
        let (form, out, pace) = (sub.form.clone(), sub.out.clone(), sub.pace());
        let worker = self.worker.clone();
        // Signing (a read-only peer catching up) costs CPU per record, and encrypting (an
        // untrusted one) reads files: on the worker thread.
        let job = async move {
            let permit = pace.acquire_owned().await.ok();
            let read = worker.run(move |s: &mut ShareState| {
                answer_chunk(s, &since, cursor, &form).map(|(n, updates, cursor, _)| (n, updates, cursor, since))
            });
            (read.await, permit)
        };
        ctx.spawn(
            job.into_actor(self).map(move |(read, permit), act, ctx| act.sent_chunk(conn, &out, read, permit, ctx)),
        );
    }

    /// A chunk of the answer to `conn` was read: hands it over and reads the next one, or
    /// ends the answer.
    fn sent_chunk(
        &mut self,
        conn: u64,
        out: &Recipient<PeerOut>,
        read: ChunkRead,
        permit: Option<OwnedSemaphorePermit>,
        ctx: &mut Context<Self>,
    ) {
        if !self.senders.contains_key(&conn) {
            return;
        }
        match read {
            Ok(Ok((n, updates, cursor, since))) => {
                debug!(conn, records = n, done = cursor.is_none(), "sending updates");
                send_to(out, updates);
                if let Some(permit) = permit {
                    out.do_send(PeerOut::Written(permit));
                }
                if cursor.is_some() {
                    self.send_updates(conn, since, cursor, ctx);
                    return;
                }
            }
            Ok(Err(e)) => error!(error = %e, "cannot read updates for a peer"),
            Err(e) => error!(error = %e, "cannot read updates for a peer"),
        }
        let Some(sub) = self.senders.get_mut(&conn) else { return };
        let held = sub.end_answer();
        sub.out.do_send(PeerOut::Send(vec![UpdatesDone {}.into()]));
        deliver(&self.worker, sub, held.iter());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use clearskies_protocol::{RecordUuid, Sha256Hash};

    use super::*;
    use clearskies_index::filter::Filter;
    use clearskies_index::record::tests_support::file;
    use clearskies_index::record::Record;

    const N: usize = 40;

    /// A worker state over a fresh index holding `N` files.
    fn state(dir: &std::path::Path) -> ShareState {
        let root = dir.join("root");
        std::fs::create_dir(&root).unwrap();
        let db = store::Store::open(&dir.join("db")).unwrap();
        db.create_share("s").unwrap();
        let store = db.share("s").unwrap();
        let records: Vec<Record> = (1..=N as u64)
            .map(|i| {
                let mut r = file(&format!("/f{i}"), format!("contents {i}").as_bytes());
                r.uuid = RecordUuid(u128::from(i).to_be_bytes());
                r.last_updated_rev = i;
                r
            })
            .collect();
        store.commit(&records, Some(N as u64)).unwrap();
        let filter = Filter::new(&root, &Default::default());
        ShareState {
            root,
            store,
            me: PeerId([3; 16]),
            shared_filter: Arc::new(Mutex::new(filter.clone())),
            own_renames: Arc::default(),
            filter,
            read_only: false,
            confirmed_deletions: None,
            local_changes: None,
            announced: None,
            runtime: crate::config::Runtime::fixed(Default::default()),
            device: String::new(),
            versioned: true,
            kept_since_prune: 0,
            pruned_at: None,
        }
    }

    /// Answers `get_updates {"since": {}}` whole: the signed bodies and how many
    /// signatures it took.
    fn answer_all(s: &ShareState, form: &Form) -> (Vec<record::Signed>, usize) {
        let since = Since::new();
        let (mut all, mut made, mut cursor) = (Vec::new(), 0, None);
        loop {
            let (_, updates, next, m) = answer_chunk(s, &since, cursor, form).unwrap();
            let Updates::Signed(signed) = updates else { panic!("plain updates for a signed connection") };
            all.extend(signed);
            made += m;
            cursor = next;
            if cursor.is_none() {
                return (all, made);
            }
        }
    }

    #[test]
    fn repeated_full_get_updates_sign_each_record_version_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(dir.path());
        let key = Arc::new(SigningKey::generate().unwrap());
        let verifying = key.verifying_key();

        // A read-only peer asks for everything, twice: the second answer signs nothing.
        let form = Form::Signed(Some(key.clone()));
        let (first, made) = answer_all(&s, &form);
        assert_eq!((first.len(), made), (N, N));
        assert!(first.iter().all(|u| verifying.verify(u.body.as_bytes(), u.signature.as_bytes())));
        let (second, made) = answer_all(&s, &form);
        assert_eq!(made, 0, "the second full get_updates signed again");
        assert_eq!(second, first);

        // A record changed since: only its new version is signed.
        let mut r = s.store.get(&clearskies_protocol::path::SharePath::parse("/f7").unwrap()).unwrap().unwrap();
        r.size = Some(99);
        r.last_updated_rev = N as u64 + 1;
        r.vector_clock.increment(PeerId([3; 16]));
        s.store.commit(&[r], Some(N as u64 + 1)).unwrap();
        let (third, made) = answer_all(&s, &form);
        assert_eq!((third.len(), made), (N, 1));

        // The same for an untrusted peer's encrypted records.
        let keys = Arc::new(UntrustedKeys::from_read_only_key(&clearskies_protocol::SecretKey([5; 32])));
        s.store
            .each_record(|r| s.store.put_cipher(&r.sha256.unwrap(), &Sha256Hash([r.uuid.0[15]; 32])).unwrap())
            .unwrap();
        let form = Form::Encrypted(keys, key);
        let (first, made) = answer_all(&s, &form);
        assert_eq!((first.len(), made), (N, N));
        assert!(first.iter().all(|u| verifying.verify(u.body.as_bytes(), u.signature.as_bytes())));
        let ids = |u: &record::Signed| match Message::decode(u.body.as_bytes()) {
            Ok(Message::DatabaseUpdate(u)) => {
                u.key.len() == 33 && u.value.get(clearskies_index::untrusted::SEALED).is_some()
            }
            _ => false,
        };
        assert!(first.iter().all(ids), "encrypted records, under file IDs");
        let (second, made) = answer_all(&s, &form);
        assert_eq!(made, 0, "the second full get_updates signed again");
        assert_eq!(second, first);
        // (And the plain signatures are still there.)
        assert_eq!(answer_all(&s, &Form::Signed(None)).0, third);
    }

    #[test]
    fn updates_go_out_in_batches_in_order() {
        let msgs: Vec<Message> =
            (0..2 * SEND_BATCH + 3).map(|i| Message::from(file(&format!("/f{i}"), b"x").to_update())).collect();
        let sizes_and_order = |out: Vec<PeerOut>| -> Vec<Vec<Message>> {
            out.into_iter()
                .map(|o| match o {
                    PeerOut::Send(m) => m,
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        let got = sizes_and_order(batches(Updates::Plain(msgs.clone())));
        assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [SEND_BATCH, SEND_BATCH, 3]);
        assert_eq!(got.concat(), msgs);
        assert!(batches(Updates::Plain(Vec::new())).is_empty(), "nothing to send: no message");
        let signed = vec![record::Signed { body: "b".into(), signature: "s".into() }; SEND_BATCH];
        let got = batches(Updates::Signed(signed.clone()));
        assert!(matches!(&got[..], [PeerOut::SendSigned(s)] if *s == signed));
    }

    #[actix_rt::test]
    async fn changes_announced_during_an_answer_follow_it_in_order() {
        let out = actix::Actor::start(Sink).recipient();
        let mut sub = IndexSender::new(out, Form::Plain, PeerId([2; 16]));
        let rs: Vec<Record> = (1..=4).map(|i| file(&format!("/f{i}"), b"x")).collect();
        // Not answering: sent now.
        assert_eq!(sub.offer(rs[..1].iter()).map(|v| v.len()), Some(1));
        assert!(sub.begin_answer());
        assert!(!sub.begin_answer(), "a repeated get_updates while answering adds nothing");
        assert_eq!(sub.offer(rs[1..3].iter()), None);
        assert_eq!(sub.offer(rs[3..].iter()), None);
        let _pace = sub.pace();
        assert_eq!(sub.end_answer(), rs[1..].to_vec());
        assert!(sub.pace.is_none() && sub.held.is_none());
        assert_eq!(sub.offer(rs[..2].iter()).map(|v| v.len()), Some(2));
        assert!(sub.begin_answer(), "the next get_updates is answered");
    }

    /// A connection that drops what it is sent.
    struct Sink;

    impl actix::Actor for Sink {
        type Context = actix::Context<Self>;
    }

    impl actix::Handler<PeerOut> for Sink {
        type Result = ();

        fn handle(&mut self, _: PeerOut, _: &mut actix::Context<Self>) {}
    }
}
