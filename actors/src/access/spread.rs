//! Code spreading (this project's `.rs.clearskies.code_spread`, after `code_spreading.md`):
//! long-lived codes (multi-use, or a custom username and password) go to the share's peers
//! that hold at least the level the code grants, as SRP verifiers, never as codes, so that
//! any of them can admit a joiner while the code's creator is offline. Cancellation and
//! expiry travel with the record; a record replaces another only if newer. What a peer sends
//! is checked: only codes of its own share, of a level it may hold and we can grant, well
//! formed, at most [`MAX_FROM_PEERS`] per share.

use actix::{ActorFutureExt, AsyncContext, Context, Handler, MessageResult, WrapFuture};
use clearskies_protocol::auth::{is_valid_verifier, SALT_LEN};
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
/// The longest custom username accepted, in bytes.
const MAX_USERNAME: usize = 128;
/// The latest time a record may name (the year 3000): beyond, dates break displays.
const LATEST_TIME: i64 = 32_503_680_000;
/// How far ahead of our clock a record's `update_time` may be (clocks differ a little; a
/// record from far in the future would win every later change).
const CLOCK_SKEW: i64 = 24 * 3600;

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
    let verifier = hex::decode(&v.verifier).ok().filter(|b| b.len() <= MAX_VERIFIER && is_valid_verifier(b))?;
    let username = match &v.username {
        Some(u) if u.is_empty() || u.len() > MAX_USERNAME || u.chars().any(char::is_control) => return None,
        // A username's access ID is derived from it: a peer cannot name someone else's.
        Some(u) if clearskies_protocol::access_code::custom_id(u) != v.access_id => return None,
        other => other.clone(),
    };
    let sane = |t: i64| (0..=LATEST_TIME).contains(&t);
    if !sane(v.created) || !sane(v.update_time) || v.expires.is_some_and(|e| !sane(e) || e < v.created) {
        return None;
    }
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
        let mut codes: Vec<&CodeRecord> = self
            .codes
            .values()
            .filter(|c| c.share == msg.share && c.is_spread() && may_hold(msg.level, c.access_level))
            // An expired code need not travel: every holder refuses it already.
            .filter(|c| c.expires.is_none_or(|e| e > now))
            .collect();
        // Live codes first, then cancellations, newest first.
        codes.sort_by_key(|c| (c.revoked, std::cmp::Reverse(c.update_time)));
        MessageResult(codes.into_iter().map(to_verifier).collect())
    }
}

impl Access {
    /// The records of `msg` this daemon takes, with how many it refused.
    fn acceptable(&self, msg: &CodesFromPeer, now: i64) -> (Vec<CodeRecord>, usize) {
        let table = self.table.borrow();
        // We can admit with a code only if we hold the keys it hands over.
        let Some(keys) = table.get(&msg.share).and_then(|r| r.keys.clone()) else { return (Vec::new(), 0) };
        let held = self.codes.values().filter(|c| c.share == msg.share).count();
        let room = MAX_FROM_PEERS.saturating_sub(held + self.spread_pending);
        let (mut fresh, mut refused) = (Vec::<CodeRecord>::new(), 0);
        for v in msg.codes.iter().take(MAX_SPREAD) {
            let record = from_verifier(msg.share, v).filter(|r| {
                r.update_time <= now.saturating_add(CLOCK_SKEW)
                    && may_hold(msg.level, r.access_level)
                    && keys.keys.grant(r.access_level).is_some()
                    // Never a share's key ID, whatever share.
                    && table.key_owner(&r.access_id).is_none()
            });
            let Some(record) = record else {
                refused += 1;
                continue;
            };
            let take = match self.codes.get(&record.access_id) {
                Some(ours) => ours.may_be_replaced_by(&record),
                // A code we never had that is already refused needs no record here.
                None => record.is_usable(now) && fresh.len() < room,
            };
            if take && !fresh.iter().any(|f| f.access_id == record.access_id) {
                fresh.push(record);
            }
        }
        (fresh, refused)
    }
}

impl Handler<CodesFromPeer> for Access {
    type Result = ();

    fn handle(&mut self, msg: CodesFromPeer, ctx: &mut Context<Self>) {
        let now = crate::share::actor::now().secs();
        let (fresh, refused) = self.acceptable(&msg, now);
        if refused > 0 {
            warn!(share = %msg.share, refused, "a peer spread codes it may not, or malformed ones; ignored");
        }
        if fresh.is_empty() {
            return;
        }
        self.spread_pending += fresh.len();
        let pending = fresh.len();
        let store = self.store.clone();
        let job = tokio::task::spawn_blocking(move || {
            let merged = fresh.into_iter().map(|r| registry::merge_spread_code(&store, r).transpose());
            merged.flatten().collect::<Result<Vec<_>, _>>()
        });
        ctx.spawn(job.into_actor(self).map(move |res, act, _| {
            act.spread_pending = act.spread_pending.saturating_sub(pending);
            let Ok(Ok(stored)) = res else {
                warn!("could not store codes a peer spread");
                return;
            };
            for code in stored {
                // (A change made here meanwhile is newer: it stays.)
                if act.codes.get(&code.access_id).is_some_and(|c| !c.may_be_replaced_by(&code)) {
                    continue;
                }
                info!(code = %code.access_id, share = %code.share, cancelled = code.revoked, "a peer spread an access code");
                // Passed on once to the other peers that may hold it (a cancellation reaches
                // peers that are connected only to us).
                act.spread(&code);
                act.codes.insert(code.access_id, code);
            }
            act.announce();
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
            verifier: hex::encode(clearskies_protocol::auth::VerifierRecord::new("u", "p", [1; SALT_LEN]).verifier),
            username: None,
            multi_use: true,
            created: 10,
            expires: None,
            update_time: 11,
            revoked: false,
        }
    }

    #[test]
    fn a_peer_can_cancel_or_shorten_a_code_never_reopen_widen_or_take_it_over() {
        let share = clearskies_protocol::Sha256Hash([9; 32]);
        let ours = from_verifier(share, &SpreadVerifier { expires: Some(100), ..verifier() }).unwrap();
        let theirs = |v: SpreadVerifier| from_verifier(share, &v).unwrap();
        let later = |v: SpreadVerifier| SpreadVerifier { update_time: 12, ..v };
        let base = SpreadVerifier { expires: Some(100), ..verifier() };
        assert!(ours.may_be_replaced_by(&theirs(later(SpreadVerifier { revoked: true, ..base.clone() }))));
        assert!(ours.may_be_replaced_by(&theirs(later(SpreadVerifier { expires: Some(50), ..base.clone() }))));
        // A cancellation wins a tie; nothing else does, and an older record never.
        assert!(ours.may_be_replaced_by(&theirs(SpreadVerifier { revoked: true, ..base.clone() })));
        assert!(!ours.may_be_replaced_by(&theirs(SpreadVerifier { expires: Some(50), ..base.clone() })));
        assert!(!ours.may_be_replaced_by(&theirs(SpreadVerifier { revoked: true, update_time: 10, ..base.clone() })));
        // Never longer, never reopened, never another verifier, salt or level.
        for wider in [
            SpreadVerifier { expires: Some(200), ..base.clone() },
            SpreadVerifier { expires: None, ..base.clone() },
            SpreadVerifier { level: AccessLevel::ReadWrite, ..base.clone() },
            SpreadVerifier { salt: hex::encode([5u8; SALT_LEN]), ..base.clone() },
            SpreadVerifier {
                verifier: hex::encode(clearskies_protocol::auth::VerifierRecord::new("x", "y", [1; SALT_LEN]).verifier),
                ..base.clone()
            },
            base.clone(),
        ] {
            assert!(!ours.may_be_replaced_by(&theirs(later(wider.clone()))), "{wider:?}");
        }
        let cancelled = theirs(later(SpreadVerifier { revoked: true, ..base.clone() }));
        let reopened = theirs(SpreadVerifier { update_time: 13, ..base });
        assert!(!cancelled.may_be_replaced_by(&reopened), "a cancelled code stays cancelled");
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
            SpreadVerifier { verifier: "00".into(), ..verifier() },
            SpreadVerifier { verifier: "01".into(), ..verifier() },
            SpreadVerifier { expires: Some(5), ..verifier() },
            SpreadVerifier { update_time: LATEST_TIME + 1, ..verifier() },
            SpreadVerifier { created: -1, ..verifier() },
            // A username names its own access ID.
            SpreadVerifier { username: Some("team".into()), ..verifier() },
            SpreadVerifier { username: Some("a\nb".into()), ..verifier() },
            SpreadVerifier { username: Some("x".repeat(MAX_USERNAME + 1)), ..verifier() },
            // A single-use code never spreads (two peers could each admit someone with it).
            SpreadVerifier { multi_use: false, ..verifier() },
        ] {
            assert!(from_verifier(share, &bad).is_none(), "{bad:?}");
        }
        let team = clearskies_protocol::access_code::custom_id("team");
        let custom = SpreadVerifier { access_id: team, username: Some("team".into()), ..verifier() };
        assert!(from_verifier(share, &custom).is_some(), "a multi-use username and password spreads");
        let once = SpreadVerifier { multi_use: false, ..custom };
        assert!(from_verifier(share, &once).is_none(), "a single-use one does not");
    }
}
