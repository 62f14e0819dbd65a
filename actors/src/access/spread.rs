//! Code spreading (this project's `.rs.clearskies.code_spread`, after `code_spreading.md`):
//! long-lived codes (multi-use, or a custom username and password) go to the share's peers
//! that hold at least the level the code grants, as SRP verifiers, never as codes, so that
//! any of them can admit a joiner while the code's creator is offline. Cancellation and
//! expiry travel with the record; a record replaces another only if newer. What a peer sends
//! is checked: only codes of its own share, of a level it may hold and we can grant, well
//! formed, at most [`MAX_FROM_PEERS`] per share.

use actix::{ActorFutureExt, AsyncContext, Context, Handler, MessageResult, WrapFuture};
use clearskies_protocol::auth::SALT_LEN;
use clearskies_protocol::message::code_spread::{SpreadVerifier, MAX_SPREAD};
use clearskies_protocol::message::core::AccessLevel;
use tracing::{info, warn};

use super::messages::{CodesFromPeer, SpreadCode, SpreadableCodes};
use super::Access;
use crate::share::registry::{self, CodeRecord};

/// Codes of one share kept from peers, at most (cancelled ones included).
pub const MAX_FROM_PEERS: usize = 256;
/// The longest SRP verifier accepted (a 2048-bit group's is 256 bytes).
const MAX_VERIFIER: usize = 512;
/// The longest custom username accepted.
const MAX_USERNAME: usize = 128;

/// Whether a peer holding the share at `peer` may hold a code granting `code`: a read-write
/// peer any; a read-only peer read-only codes; nobody else any.
pub fn may_hold(peer: AccessLevel, code: AccessLevel) -> bool {
    matches!(
        (peer, code),
        (AccessLevel::ReadWrite, AccessLevel::ReadWrite | AccessLevel::ReadOnly | AccessLevel::Untrusted)
            | (AccessLevel::ReadOnly, AccessLevel::ReadOnly)
    )
}

/// A code as it spreads.
pub fn to_verifier(c: &CodeRecord) -> SpreadVerifier {
    SpreadVerifier {
        access_id: c.access_id,
        level: c.access_level,
        salt: hex::encode(c.salt),
        verifier: hex::encode(&c.verifier),
        username: c.username.clone(),
        multi_use: c.multi_use,
        created: c.created,
        expires: c.expires,
        update_time: c.update_time,
        revoked: c.revoked,
    }
}

/// A peer's code as a record of `share`, if it is well formed and long-lived.
pub fn from_verifier(share: clearskies_protocol::Sha256Hash, v: &SpreadVerifier) -> Option<CodeRecord> {
    let salt: [u8; SALT_LEN] = hex::decode(&v.salt).ok()?.try_into().ok()?;
    let verifier = hex::decode(&v.verifier).ok().filter(|b| !b.is_empty() && b.len() <= MAX_VERIFIER)?;
    let username = match &v.username {
        Some(u) if u.is_empty() || u.len() > MAX_USERNAME || u.chars().any(char::is_control) => return None,
        other => other.clone(),
    };
    let record = CodeRecord {
        access_id: v.access_id,
        share,
        access_level: v.level,
        salt,
        verifier,
        expires: v.expires,
        multi_use: v.multi_use,
        used_by: Vec::new(),
        created: v.created,
        username,
        update_time: v.update_time,
        revoked: v.revoked,
    };
    record.is_spread().then_some(record)
}

impl Access {
    /// Tells connections that `code` changed here, if it is one that spreads.
    pub(super) fn spread(&self, code: &CodeRecord) {
        if code.is_spread() {
            self.spread.do_send(SpreadCode { share: code.share, code: to_verifier(code) });
        }
    }
}

impl Handler<SpreadableCodes> for Access {
    type Result = MessageResult<SpreadableCodes>;

    fn handle(&mut self, msg: SpreadableCodes, _: &mut Context<Self>) -> Self::Result {
        let now = crate::share::actor::now().secs();
        let codes = self
            .codes
            .values()
            .filter(|c| c.share == msg.share && c.is_spread() && may_hold(msg.level, c.access_level))
            // An expired code need not travel: every holder refuses it already.
            .filter(|c| c.expires.is_none_or(|e| e > now))
            .take(MAX_SPREAD)
            .map(to_verifier)
            .collect();
        MessageResult(codes)
    }
}

impl Handler<CodesFromPeer> for Access {
    type Result = ();

    fn handle(&mut self, msg: CodesFromPeer, ctx: &mut Context<Self>) {
        let table = self.table.borrow();
        // We can admit with a code only if we hold the keys it hands over.
        let Some(keys) = table.get(&msg.share).and_then(|r| r.keys.clone()) else { return };
        drop(table);
        let held = self.codes.values().filter(|c| c.share == msg.share).count();
        let mut fresh = Vec::new();
        for v in msg.codes.iter().take(MAX_SPREAD) {
            let Some(record) = from_verifier(msg.share, v) else {
                warn!(share = %msg.share, code = %v.access_id, "a peer spread a malformed code; ignored");
                continue;
            };
            if !may_hold(msg.level, record.access_level) || keys.keys.grant(record.access_level).is_none() {
                warn!(share = %msg.share, code = %v.access_id, "a peer spread a code above its level; ignored");
                continue;
            }
            let known = self.codes.get(&record.access_id);
            if known.is_some_and(|k| k.update_time >= record.update_time || k.share != msg.share) {
                continue;
            }
            if known.is_none() && held + fresh.len() >= MAX_FROM_PEERS {
                warn!(share = %msg.share, "a peer spread more codes than are kept; the rest ignored");
                break;
            }
            fresh.push(record);
        }
        if fresh.is_empty() {
            return;
        }
        let store = self.store.clone();
        let job = tokio::task::spawn_blocking(move || {
            fresh
                .into_iter()
                .filter_map(|r| registry::merge_spread_code(&store, r).transpose())
                .collect::<Result<Vec<_>, _>>()
        });
        ctx.spawn(job.into_actor(self).map(|res, act, _| match res {
            Ok(Ok(stored)) => {
                for code in stored {
                    info!(code = %code.access_id, share = %code.share, cancelled = code.revoked, "a peer spread an access code");
                    act.codes.insert(code.access_id, code);
                }
                act.announce();
            }
            _ => warn!("could not store codes a peer spread"),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_spread_only_to_peers_at_their_level_or_above() {
        use AccessLevel::{ReadOnly, ReadWrite, Untrusted};
        assert!(may_hold(ReadWrite, ReadWrite) && may_hold(ReadWrite, ReadOnly) && may_hold(ReadWrite, Untrusted));
        assert!(may_hold(ReadOnly, ReadOnly));
        assert!(!may_hold(ReadOnly, ReadWrite) && !may_hold(ReadOnly, Untrusted));
        assert!(!may_hold(Untrusted, Untrusted) && !may_hold(Untrusted, ReadOnly));
    }

    fn verifier() -> SpreadVerifier {
        SpreadVerifier {
            access_id: clearskies_protocol::Sha256Hash([7; 32]),
            level: AccessLevel::ReadOnly,
            salt: hex::encode([1u8; SALT_LEN]),
            verifier: hex::encode([2u8; 256]),
            username: None,
            multi_use: true,
            created: 10,
            expires: None,
            update_time: 11,
            revoked: false,
        }
    }

    #[test]
    fn a_peers_code_must_be_well_formed_and_long_lived() {
        let share = clearskies_protocol::Sha256Hash([9; 32]);
        let good = from_verifier(share, &verifier()).unwrap();
        assert_eq!((good.share, good.update_time, to_verifier(&good)), (share, 11, verifier()));
        for bad in [
            SpreadVerifier { salt: "zz".into(), ..verifier() },
            SpreadVerifier { salt: hex::encode([1u8; 3]), ..verifier() },
            SpreadVerifier { verifier: String::new(), ..verifier() },
            SpreadVerifier { verifier: hex::encode(vec![2u8; MAX_VERIFIER + 1]), ..verifier() },
            SpreadVerifier { username: Some("a\nb".into()), ..verifier() },
            SpreadVerifier { username: Some("x".repeat(MAX_USERNAME + 1)), ..verifier() },
            // A single-use code never spreads (two peers could each admit someone with it).
            SpreadVerifier { multi_use: false, ..verifier() },
        ] {
            assert!(from_verifier(share, &bad).is_none(), "{bad:?}");
        }
        let custom = SpreadVerifier { multi_use: false, username: Some("team".into()), ..verifier() };
        assert!(from_verifier(share, &custom).is_some(), "a custom username and password spreads");
    }
}
