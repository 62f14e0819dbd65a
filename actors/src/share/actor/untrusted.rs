//! What only untrusted peers need from the share: records encrypted under file IDs (which
//! needs each file's ciphertext hash, read from the file once and remembered), and backup
//! challenges (`verify_backup`: prove you still hold these files).

use std::collections::HashMap;
use std::sync::Arc;

use actix::{ActorFutureExt, Context, Handler, Recipient, WrapFuture};
use clearskies_protocol::message::untrusted::{Verify, VerifyResult};
use clearskies_protocol::message::Message;
use clearskies_protocol::{Sha256Hash, UntrustedFileId};
use tokio::sync::mpsc;
use tracing::{error, warn};

use super::index_sender::{sign_body, Form};
use super::{Share, ShareState};
use crate::peer::messages::PeerOut;
use crate::share::messages::{BackupCheck, VerifyBackup};
use clearskies_index::rsa::SigningKey;
use clearskies_index::untrusted::UntrustedKeys;
use clearskies_index::{fsops, record, store};

/// How long challenged peers have to answer.
const CHALLENGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// An untrusted peer's answer to one challenge.
#[derive(Debug)]
pub(super) struct Proof {
    conn: u64,
    file_id: UntrustedFileId,
    ok: bool,
}

/// One challenge: which connection and file.
type Asked = (u64, UntrustedFileId);

/// Challenges sent to untrusted peers: the expected answer, and where the outcome goes.
#[derive(Debug, Default)]
pub(super) struct Challenges(HashMap<Asked, (Sha256Hash, mpsc::UnboundedSender<Proof>)>);

impl Challenges {
    /// A connection answered a challenge (answers nobody asked for are dropped).
    pub(super) fn answer(&mut self, conn: u64, r: &VerifyResult) {
        if let Some((expected, tx)) = self.0.remove(&(conn, r.file_id)) {
            let _ = tx.send(Proof { conn, file_id: r.file_id, ok: r.result == expected });
        }
    }
}

/// A connection to challenge: where its messages go, and the key its challenges are signed
/// with.
type Challenged = (u64, Recipient<PeerOut>, Arc<SigningKey>);

/// A challenge: the file, a random prefix, and SHA-256(prefix ‖ its ciphertext).
type Challenge = (record::Record, Sha256Hash, Sha256Hash);

/// `records` encrypted for an untrusted peer and signed with `key`: a signature kept with
/// the record for this version is used again, a new one is pushed with its record onto
/// `fresh`. A file whose contents are not here (no ciphertext hash) is left out.
pub(super) fn encrypt_records<'a>(
    s: &ShareState,
    records: impl Iterator<Item = &'a record::Record>,
    keys: &UntrustedKeys,
    key: &SigningKey,
    fresh: &mut Vec<record::Record>,
) -> Vec<record::Signed> {
    records
        .filter_map(|r| {
            let cipher = cipher_for(s, r, keys)?;
            let update = keys
                .encrypt_record(r, cipher)
                .map_err(|e| error!(path = %r.path, error = %e, "cannot encrypt a record"))
                .ok()?;
            let body = Message::from(update).encode();
            if let Some(kept) = std::str::from_utf8(&body).ok().and_then(|b| r.sealed_as(b)) {
                return Some(kept.clone());
            }
            let signed = sign_body(r, body, key)?;
            fresh.push(record::Record { sealed: Some(signed.clone()), ..r.clone() });
            Some(signed)
        })
        .collect()
}

/// The ciphertext hash of `r`'s contents (`Some(None)`: it has none), from the cache or
/// computed from the file; `None` while the contents are not here.
fn cipher_for(s: &ShareState, r: &record::Record, keys: &UntrustedKeys) -> Option<Option<Sha256Hash>> {
    if r.kind != record::EntryKind::File || r.deleted {
        return Some(None);
    }
    let plain = r.sha256?;
    if let Ok(Some(c)) = s.store.cipher_of(&plain) {
        return Some(Some(c));
    }
    let local = r.local.filter(|_| r.installed_file())?;
    let mut file = fsops::open_unchanged(&s.root, &r.path, &local).ok()??;
    let cipher = keys
        .cipher_hash(&mut file, &plain)
        .map_err(|e| warn!(path = %r.path, error = %e, "cannot encrypt a file for an untrusted peer"))
        .ok()?;
    if let Err(e) = s.store.put_cipher(&plain, &cipher) {
        warn!(error = %e, "cannot remember a ciphertext hash");
    }
    Some(Some(cipher))
}

/// Up to `k` installed files chosen uniformly at random (reservoir sampling: one pass over
/// the index, `k` records in memory).
fn sample_installed(store: &store::ShareStore, k: usize) -> Vec<record::Record> {
    let mut random = [0u8; 8 * 512];
    let mut used = random.len();
    let mut next = move || {
        if used == random.len() {
            if getrandom::fill(&mut random).is_err() {
                return None;
            }
            used = 0;
        }
        used += 8;
        Some(u64::from_le_bytes(random[used - 8..used].try_into().unwrap_or_default()))
    };
    let mut seen = 0u64;
    let mut sample: Vec<record::Record> = Vec::new();
    let _ = store.each_record(|r| {
        if !r.installed_file() {
            return;
        }
        seen += 1;
        if sample.len() < k {
            sample.push(r);
        } else if let Some(x) = next() {
            if let Ok(i) = usize::try_from(x % seen) {
                if i < k {
                    sample[i] = r;
                }
            }
        }
    });
    sample
}

/// Up to `n` random installed files with a fresh challenge each (reads and encrypts them).
fn challenges(s: &ShareState, n: usize, keys: &UntrustedKeys) -> Vec<Challenge> {
    use sha2::Digest;
    let mut files = sample_installed(&s.store, n.saturating_mul(4));
    let mut out = Vec::new();
    while out.len() < n && !files.is_empty() {
        let mut pick = [0u8; 8];
        let mut prefix = [0u8; 32];
        if getrandom::fill(&mut pick).is_err() || getrandom::fill(&mut prefix).is_err() {
            break;
        }
        let r = files.swap_remove(usize::try_from(u64::from_le_bytes(pick) % files.len() as u64).unwrap_or(0));
        let (Some(plain), Some(local)) = (r.sha256, r.local) else { continue };
        let Ok(Some(mut file)) = fsops::open_unchanged(&s.root, &r.path, &local) else { continue };
        let Ok(mut ctr) = keys.content_stream(&plain, 0) else { continue };
        let mut h = sha2::Sha256::new();
        h.update(prefix);
        let mut buf = vec![0u8; 1 << 20];
        let read = loop {
            match std::io::Read::read(&mut file, &mut buf) {
                Ok(0) => break true,
                Ok(k) if ctr.apply(&mut buf[..k]).is_ok() => h.update(&buf[..k]),
                _ => break false,
            }
        };
        if read {
            out.push((r, Sha256Hash(prefix), Sha256Hash(h.finalize().into())));
        }
    }
    out
}

/// Waits (at most [`CHALLENGE_TIMEOUT`]) for the answers to what was `asked`: each
/// challenge's outcome, missing if it never came.
async fn await_proofs(asked: usize, mut rx: mpsc::UnboundedReceiver<Proof>) -> HashMap<Asked, bool> {
    let mut outcome: HashMap<Asked, bool> = HashMap::new();
    let deadline = tokio::time::Instant::now() + CHALLENGE_TIMEOUT;
    while outcome.len() < asked {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(p)) => {
                outcome.insert((p.conn, p.file_id), p.ok);
            }
            _ => break,
        }
    }
    outcome
}

/// One [`BackupCheck`] per challenged connection (`peers`: each with its peer's ID), from
/// what was `asked` (with the file's path) and the `outcome`.
fn report(peers: &[(u64, String)], asked: &HashMap<Asked, String>, outcome: &HashMap<Asked, bool>) -> Vec<BackupCheck> {
    peers
        .iter()
        .map(|(conn, peer)| {
            let mine: Vec<_> = asked.iter().filter(|((c, _), _)| c == conn).collect();
            let failed = mine
                .iter()
                .filter_map(|(k, path)| match outcome.get(k) {
                    Some(true) => None,
                    Some(false) => Some(format!("{path} (wrong answer)")),
                    None => Some(format!("{path} (no answer)")),
                })
                .collect::<Vec<_>>();
            BackupCheck { peer: peer.clone(), checked: mine.len(), proved: mine.len() - failed.len(), failed }
        })
        .collect()
}

impl Share {
    /// The connections of untrusted peers we can challenge.
    fn challengeable(&self) -> Vec<Challenged> {
        self.senders
            .iter()
            .filter_map(|(c, s)| match &s.form {
                Form::Encrypted(_, sign) => Some((*c, s.out().clone(), sign.clone())),
                _ => None,
            })
            .collect()
    }

    /// Sends the `picked` challenges to every one of `peers`; answers what was asked (with
    /// the file's path) and where the answers arrive.
    fn challenge(
        &mut self,
        peers: &[Challenged],
        keys: &UntrustedKeys,
        picked: &[Challenge],
    ) -> (HashMap<Asked, String>, mpsc::UnboundedReceiver<Proof>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut asked: HashMap<Asked, String> = HashMap::new();
        for (conn, out, sign) in peers {
            let mut signed = Vec::new();
            for (r, prefix, expected) in picked {
                let file_id = UntrustedFileId(keys.file_id(&r.uuid));
                let body = Message::from(Verify { file_id, prefix: *prefix }).encode();
                let (Ok(signature), Ok(body)) = (sign.sign(&body), String::from_utf8(body)) else { continue };
                signed.push(record::Signed { body, signature });
                self.challenges.0.insert((*conn, file_id), (*expected, tx.clone()));
                asked.insert((*conn, file_id), r.path.to_string());
            }
            out.do_send(PeerOut::SendSigned(signed));
        }
        (asked, rx)
    }
}

impl Handler<VerifyBackup> for Share {
    type Result = actix::ResponseActFuture<Self, Vec<BackupCheck>>;

    fn handle(&mut self, msg: VerifyBackup, _: &mut Context<Self>) -> Self::Result {
        let peers = self.challengeable();
        let keys = self.senders.values().find_map(|s| match &s.form {
            Form::Encrypted(keys, _) => Some(keys.clone()),
            _ => None,
        });
        let Some(keys) = keys else {
            return Box::pin(actix::fut::ready(Vec::new()));
        };
        let files = msg.files.clamp(1, 1000);
        let job = self.worker.run({
            let keys = keys.clone();
            move |s: &mut ShareState| challenges(s, files, &keys)
        });
        Box::pin(job.into_actor(self).then(move |picked, act, _| {
            let (asked, rx) = act.challenge(&peers, &keys, &picked.unwrap_or_default());
            await_proofs(asked.len(), rx).into_actor(act).map(move |outcome, act, _| {
                act.challenges.0.retain(|k, _| !asked.contains_key(k));
                let names: Vec<(u64, String)> = peers
                    .iter()
                    .map(|(conn, _, _)| (*conn, act.senders.get(conn).map(|s| s.peer.to_string()).unwrap_or_default()))
                    .collect();
                report(&names, &asked, &outcome)
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_counts_proofs_per_peer() {
        let f = |n: u8| UntrustedFileId([n; 16]);
        let asked: HashMap<Asked, String> = [
            ((1, f(1)), "/a".to_owned()),
            ((1, f(2)), "/b".to_owned()),
            ((1, f(3)), "/c".to_owned()),
            ((2, f(1)), "/a".to_owned()),
        ]
        .into();
        let outcome: HashMap<Asked, bool> = [((1, f(1)), true), ((1, f(2)), false), ((2, f(1)), true)].into();
        let peers = [(1, "p1".to_owned()), (2, "p2".to_owned()), (3, "p3".to_owned())];
        let mut checks = report(&peers, &asked, &outcome);
        checks[0].failed.sort();
        assert_eq!(
            checks,
            vec![
                BackupCheck {
                    peer: "p1".into(),
                    checked: 3,
                    proved: 1,
                    failed: vec!["/b (wrong answer)".into(), "/c (no answer)".into()],
                },
                BackupCheck { peer: "p2".into(), checked: 1, proved: 1, failed: vec![] },
                BackupCheck { peer: "p3".into(), checked: 0, proved: 0, failed: vec![] },
            ]
        );
    }

    #[test]
    fn only_the_challenge_asked_is_answered() {
        let mut c = Challenges::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let id = UntrustedFileId([1; 16]);
        c.0.insert((4, id), (Sha256Hash([7; 32]), tx));
        // Another connection, or another file: dropped.
        c.answer(5, &VerifyResult { file_id: id, result: Sha256Hash([7; 32]) });
        c.answer(4, &VerifyResult { file_id: UntrustedFileId([2; 16]), result: Sha256Hash([7; 32]) });
        assert!(rx.try_recv().is_err());
        c.answer(4, &VerifyResult { file_id: id, result: Sha256Hash([8; 32]) });
        let p = rx.try_recv().unwrap();
        assert_eq!((p.conn, p.file_id, p.ok), (4, id, false));
        // Answered once only.
        c.answer(4, &VerifyResult { file_id: id, result: Sha256Hash([7; 32]) });
        assert!(rx.try_recv().is_err());
    }
}
