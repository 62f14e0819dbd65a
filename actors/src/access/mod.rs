//! The `Access` owner: who may connect, and with what. It answers the listener's credential
//! lookups and claims (share keys from the share table, access codes from its own copy of
//! the issued codes, so that no lookup reads RocksDB on the event loop), records codes as
//! used, and serves the code commands (`create_access_code`, `list_access_codes`,
//! `cancel_access_code`) and `export_keys`. What a connection may do once it is up is the
//! pure [`policy`].
//!
//! Its state: the issued codes (loaded at start, updated by each change it makes itself,
//! the only writer) and the single-use codes claimed by a connection under way.

mod codes;
pub mod messages;
pub mod policy;
pub mod spread;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, MessageResult, Recipient, WrapFuture};
use clearskies_index::store::Store;
use clearskies_protocol::Sha256Hash;
use tracing::{error, info};

use self::messages::ShareRemoved;
use crate::connections::messages::CodeIds;
use crate::peer::messages::{
    ClaimCredential, CodeUsed, Credential, CredentialKind, LookupCredential, ReleaseCredential,
};
use crate::share::registry::{self, CodeRecord};
use crate::shares::table::{ShareTable, TableRx};

/// The access owner.
#[derive(Debug)]
pub struct Access {
    store: Store,
    table: TableRx,
    /// Codes by access ID: issued here, or spread by peers (a cancelled single-use code is
    /// deleted; a cancelled multi-use one is kept, `revoked`, so that its cancellation spreads).
    codes: BTreeMap<Sha256Hash, CodeRecord>,
    /// Single-use codes claimed by a connection under way.
    claimed: BTreeSet<Sha256Hash>,
    /// Single-use codes whose keys went out and whose use is being recorded: still claimed,
    /// whatever the connection does meanwhile.
    spending: BTreeSet<Sha256Hash>,
    /// Where the codes discovery announces go.
    announce: Recipient<CodeIds>,
    /// Connections: a spread code changed here.
    spread: Recipient<messages::SpreadCode>,
    /// Codes from peers being stored (counted against `spread::MAX_FROM_PEERS`).
    spread_pending: usize,
}

impl Access {
    /// An access owner over the index `store`, reading the running shares from `table`,
    /// telling connections which codes to announce (`announce`) and which to spread
    /// (`spread`).
    pub fn new(
        store: Store,
        table: TableRx,
        announce: Recipient<CodeIds>,
        spread: Recipient<messages::SpreadCode>,
    ) -> Self {
        let (codes, claimed, spending) = (BTreeMap::new(), BTreeSet::new(), BTreeSet::new());
        Access { store, table, codes, claimed, spending, announce, spread, spread_pending: 0 }
    }

    /// Tells connections which codes discovery announces.
    fn announce(&self) {
        let live = self.codes.values().filter(|c| !c.revoked);
        let ids = live.map(|c| (c.access_id, c.share, c.expires)).collect();
        self.announce.do_send(CodeIds(ids));
    }
}

/// The credential for an access ID or key ID, if it is live: a share key of a running
/// share, or a usable code of one (with the keys it hands over).
pub fn credential(
    table: &ShareTable,
    codes: &BTreeMap<Sha256Hash, CodeRecord>,
    id: &Sha256Hash,
    now: i64,
) -> Option<Credential> {
    if let Some((share, record, level)) = table.key_owner(id) {
        return Some(Credential {
            record: record.clone(),
            share: share.config.id,
            our_peer_id: share.config.peer_id,
            kind: CredentialKind::Key,
            keys: None,
            single_use: false,
            level,
        });
    }
    let code = codes.get(id).filter(|c| c.is_usable(now))?;
    let share = table.get(&code.share)?;
    let keys = share.keys.as_ref()?.keys.grant(code.access_level)?;
    Some(Credential {
        record: code.verifier_record(),
        share: code.share,
        our_peer_id: share.config.peer_id,
        kind: CredentialKind::Code,
        keys: Some(keys),
        single_use: !code.multi_use,
        level: code.access_level,
    })
}

impl Actor for Access {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let job = tokio::task::spawn_blocking(move || registry::load_codes(&store));
        // Lookups wait for the codes (the actor takes no message before they are in).
        ctx.wait(job.into_actor(self).map(|loaded, act, _| {
            match loaded {
                Ok(Ok(codes)) => act.codes = codes.into_iter().map(|c| (c.access_id, c)).collect(),
                Ok(Err(e)) => error!(error = %e, "cannot load the access codes; none is accepted"),
                Err(e) => error!(error = %e, "cannot load the access codes; none is accepted"),
            }
            act.announce();
        }));
    }
}

impl Handler<LookupCredential> for Access {
    type Result = MessageResult<LookupCredential>;

    fn handle(&mut self, LookupCredential(id): LookupCredential, _: &mut Context<Self>) -> Self::Result {
        let now = crate::share::actor::now().secs();
        MessageResult(credential(&self.table.borrow(), &self.codes, &id, now))
    }
}

impl Handler<ClaimCredential> for Access {
    type Result = MessageResult<ClaimCredential>;

    fn handle(&mut self, ClaimCredential(id): ClaimCredential, _: &mut Context<Self>) -> Self::Result {
        let now = crate::share::actor::now().secs();
        let cred = credential(&self.table.borrow(), &self.codes, &id, now);
        if cred.as_ref().is_some_and(|c| c.single_use) && !self.claimed.insert(id) {
            return MessageResult(None);
        }
        MessageResult(cred)
    }
}

impl Handler<ReleaseCredential> for Access {
    type Result = ();

    fn handle(&mut self, ReleaseCredential(id): ReleaseCredential, _: &mut Context<Self>) {
        // A code whose keys were sent stays claimed until its use is recorded.
        if !self.spending.contains(&id) {
            self.claimed.remove(&id);
        }
    }
}

impl Handler<CodeUsed> for Access {
    type Result = ();

    fn handle(&mut self, msg: CodeUsed, ctx: &mut Context<Self>) {
        info!(code = %msg.access_id, peer = %msg.peer, "a peer joined with an access code (the share's keys were sent)");
        self.spending.insert(msg.access_id);
        let store = self.store.clone();
        let job = tokio::task::spawn_blocking(move || {
            registry::mark_code_used(&store, &msg.access_id, msg.peer)?;
            registry::find_code(&store, &msg.access_id)
        });
        ctx.spawn(job.into_actor(self).map(move |res, act, _| {
            match res {
                Ok(Ok(Some(code))) => {
                    act.codes.insert(code.access_id, code);
                }
                // Cancelled meanwhile.
                Ok(Ok(None)) => {
                    act.codes.remove(&msg.access_id);
                }
                // Refused from now on all the same, as the record would have made it.
                _ => {
                    error!("could not record a used access code");
                    if let Some(code) = act.codes.get_mut(&msg.access_id) {
                        if !code.used_by.contains(&msg.peer) {
                            code.used_by.push(msg.peer);
                        }
                    }
                }
            }
            act.spending.remove(&msg.access_id);
            act.claimed.remove(&msg.access_id);
            act.announce();
        }));
    }
}

impl Handler<ShareRemoved> for Access {
    type Result = ();

    fn handle(&mut self, ShareRemoved(id): ShareRemoved, _: &mut Context<Self>) {
        self.codes.retain(|_, c| c.share != id);
        self.announce();
    }
}
