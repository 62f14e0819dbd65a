use std::time::Duration;

use actix::Actor;
use clearskies_protocol::message::core::AccessLevel;
use clearskies_protocol::{PeerId, Sha256Hash};

use super::messages::{CancelCode, CreateAccessCode, ListCodes};
use super::*;
use crate::connections::messages::CodeIds;
use crate::share::registry::{CodeRef, Lifetime};
use crate::shares::table::fixture::TestShare;

/// Collects what access tells connections.
struct Announced(tokio::sync::mpsc::UnboundedSender<CodeIds>);
impl Actor for Announced {
    type Context = Context<Self>;
}
impl Handler<CodeIds> for Announced {
    type Result = ();
    fn handle(&mut self, msg: CodeIds, _: &mut Context<Self>) {
        let _ = self.0.send(msg);
    }
}
impl Handler<super::messages::SpreadCode> for Announced {
    type Result = ();
    fn handle(&mut self, _: super::messages::SpreadCode, _: &mut Context<Self>) {}
}

fn code(share: Sha256Hash, expires: Option<i64>, multi_use: bool, used: bool) -> CodeRecord {
    CodeRecord {
        access_id: Sha256Hash([9; 32]),
        share,
        access_level: AccessLevel::ReadOnly,
        salt: [1; 16],
        verifier: vec![1, 2, 3],
        expires,
        multi_use,
        used_by: if used { vec![PeerId([4; 16])] } else { vec![] },
        created: 0,
        username: None,
        update_time: 0,
        revoked: false,
    }
}

#[test]
fn a_share_key_opens_its_share_at_its_level() {
    let s = TestShare::new();
    let table = s.table.borrow();
    let material = table.get(&s.config.id).unwrap().keys.clone().unwrap();
    for (id, (_, level)) in &material.records {
        let c = credential(&table, &BTreeMap::new(), id, 0).expect("a key of a running share");
        assert_eq!((c.share, c.kind.clone(), c.level, c.single_use), (s.config.id, CredentialKind::Key, *level, false));
        assert_eq!(c.our_peer_id, s.config.peer_id);
        assert!(c.keys.is_none());
    }
    assert_eq!(material.records.len(), 3, "read-write, read-only and untrusted keys");
    drop(table);
    s.stop();
    let id = *material.records.keys().next().unwrap();
    assert!(credential(&s.table.borrow(), &BTreeMap::new(), &id, 0).is_none(), "a stopped share opens nothing");
}

#[test]
fn only_a_usable_code_of_a_running_share_is_a_credential() {
    let s = TestShare::new();
    let now = 1_000;
    let with = |c: CodeRecord| BTreeMap::from([(c.access_id, c)]);
    let id = Sha256Hash([9; 32]);
    let live = credential(&s.table.borrow(), &with(code(s.config.id, Some(now + 1), false, false)), &id, now)
        .expect("an unexpired unused code");
    assert_eq!((live.kind, live.level, live.single_use), (CredentialKind::Code, AccessLevel::ReadOnly, true));
    assert_eq!(live.keys.expect("the keys to hand over").access_level, AccessLevel::ReadOnly);
    let table = s.table.borrow();
    assert!(credential(&table, &with(code(s.config.id, Some(now), false, false)), &id, now).is_none(), "expired");
    assert!(credential(&table, &with(code(s.config.id, None, false, true)), &id, now).is_none(), "used up");
    assert!(credential(&table, &with(code(s.config.id, None, true, true)), &id, now).is_some(), "multi-use");
    assert!(credential(&table, &with(code(Sha256Hash([7; 32]), None, false, false)), &id, now).is_none(), "no share");
    assert!(credential(&table, &BTreeMap::new(), &id, now).is_none(), "never issued");
}

/// Asks `access` until `done` holds of the answer, or fails after 10 s.
async fn until<M, F>(access: &actix::Addr<Access>, msg: impl Fn() -> M, done: F) -> M::Result
where
    M: actix::Message + Send + 'static,
    M::Result: Send,
    Access: Handler<M>,
    F: Fn(&M::Result) -> bool,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = access.send(msg()).await.unwrap();
        if done(&answer) || std::time::Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_rt::test]
async fn a_single_use_code_serves_one_connection_at_a_time_and_none_once_used() {
    let s = TestShare::new();
    let (tx, mut announced) = tokio::sync::mpsc::unbounded_channel();
    let sink = Announced(tx).start();
    let access = Access::new(s.store.clone(), s.table.subscribe(), sink.clone().recipient(), sink.recipient()).start();
    let create = CreateAccessCode {
        path: s.config.path.clone(),
        mode: "read_write".into(),
        lifetime: Lifetime::Secs(3600),
        multi_use: false,
        custom: None,
    };
    let created = access.send(create).await.unwrap().expect("a code");
    let id: Sha256Hash = created.access_id.parse().unwrap();
    // Usable as soon as it is answered, and announced.
    assert!(access.send(LookupCredential(id)).await.unwrap().is_some());
    let mut ids = vec![];
    while !ids.iter().any(|(a, _, _)| *a == id) {
        ids = announced.recv().await.expect("announced codes").0;
    }
    assert!(access.send(ClaimCredential(id)).await.unwrap().is_some(), "the first connection claims it");
    assert!(access.send(ClaimCredential(id)).await.unwrap().is_none(), "a second one at once does not");
    access.send(ReleaseCredential(id)).await.unwrap();
    assert!(access.send(ClaimCredential(id)).await.unwrap().is_some(), "released, it can be claimed again");
    access.do_send(CodeUsed { access_id: id, peer: PeerId([5; 16]) });
    // Until its use is recorded it stays claimed; then it is used up.
    access.send(ReleaseCredential(id)).await.unwrap();
    let gone = until(&access, || LookupCredential(id), Option::is_none).await;
    assert!(gone.is_none(), "a used single-use code is refused");
    assert!(access.send(ClaimCredential(id)).await.unwrap().is_none());
    let listed = access.send(ListCodes).await.unwrap().unwrap();
    assert_eq!(listed[0].used_by, vec![PeerId([5; 16]).to_string()]);
}

#[actix_rt::test]
async fn a_cancelled_code_and_the_codes_of_a_removed_share_are_refused_at_once() {
    let s = TestShare::new();
    let (tx, _announced) = tokio::sync::mpsc::unbounded_channel();
    let announced = Announced(tx).start();
    let access =
        Access::new(s.store.clone(), s.table.subscribe(), announced.clone().recipient(), announced.recipient()).start();
    let make = || CreateAccessCode {
        path: s.config.path.clone(),
        mode: "read_only".into(),
        lifetime: Lifetime::Never,
        multi_use: true,
        custom: None,
    };
    let first: Sha256Hash = access.send(make()).await.unwrap().unwrap().access_id.parse().unwrap();
    let second: Sha256Hash = access.send(make()).await.unwrap().unwrap().access_id.parse().unwrap();
    access.send(CancelCode(CodeRef::IdPrefix(first.to_string()[..12].to_owned()))).await.unwrap().unwrap();
    assert!(access.send(LookupCredential(first)).await.unwrap().is_none(), "cancelled");
    assert!(access.send(LookupCredential(second)).await.unwrap().is_some());
    access.send(ShareRemoved(s.config.id)).await.unwrap();
    assert!(access.send(LookupCredential(second)).await.unwrap().is_none(), "its share was removed");
    // A read-only holder cannot give read-write codes, whatever is asked.
    let bad = CreateAccessCode { mode: "admin".into(), ..make() };
    assert_eq!(access.send(bad).await.unwrap().unwrap_err().error, crate::control::cmd::ErrorCode::BadMode);
}
