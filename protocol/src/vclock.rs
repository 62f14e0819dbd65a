//! Vector clocks (`database.md`, "Conflicts").
//!
//! A missing entry counts as zero. `a.before(b)` holds when every entry of `a` is at most the
//! same entry of `b`, so equal clocks are "before" each other, exactly as the spec's
//! comparison table uses it. [`VectorClock::compare`] folds the two checks into one answer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::PeerId;

/// A vector clock: one counter per peer, as a JSON object `{peer id: counter}` on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VectorClock(BTreeMap<PeerId, u64>);

/// How two vector clocks relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Causality {
    /// Identical histories.
    Equal,
    /// `self` happened before the other (the other descends from it).
    Before,
    /// `self` descends from the other.
    After,
    /// Neither descends from the other: a conflict.
    Concurrent,
}

impl VectorClock {
    /// An all-zero clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter for `peer` (zero if absent).
    pub fn get(&self, peer: &PeerId) -> u64 {
        self.0.get(peer).copied().unwrap_or(0)
    }

    /// Adds one to `peer`'s counter (a local change, or a send). Saturates rather than wraps.
    pub fn increment(&mut self, peer: PeerId) {
        let c = self.0.entry(peer).or_insert(0);
        *c = c.saturating_add(1);
    }

    /// Element-wise maximum with `other`.
    pub fn merge(&mut self, other: &VectorClock) {
        for (peer, &theirs) in &other.0 {
            let mine = self.0.entry(*peer).or_insert(0);
            *mine = (*mine).max(theirs);
        }
    }

    /// `database.md`'s rule 4 for a process clock: increment our own entry, then merge.
    /// Not for stored records: see `docs/protocol-decisions.md` ("Database") for why a
    /// record received from a peer is only merged.
    pub fn receive(&mut self, ours: PeerId, incoming: &VectorClock) {
        self.increment(ours);
        self.merge(incoming);
    }

    /// Whether every entry of `self` is ≤ the same entry of `other` (missing = 0).
    pub fn before(&self, other: &VectorClock) -> bool {
        self.0.iter().all(|(peer, &mine)| mine <= other.get(peer))
    }

    /// How `self` relates to `other`.
    pub fn compare(&self, other: &VectorClock) -> Causality {
        match (self.before(other), other.before(self)) {
            (true, true) => Causality::Equal,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (false, false) => Causality::Concurrent,
        }
    }

    /// The entries, in peer ID order.
    pub fn iter(&self) -> impl Iterator<Item = (&PeerId, &u64)> {
        self.0.iter()
    }

    /// Number of entries (zero entries included if they were stored explicitly).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the clock has no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(PeerId, u64)> for VectorClock {
    fn from_iter<T: IntoIterator<Item = (PeerId, u64)>>(iter: T) -> Self {
        VectorClock(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn peer(n: u8) -> PeerId {
        PeerId([n; 16])
    }

    fn clock() -> impl Strategy<Value = VectorClock> {
        prop::collection::btree_map(0u8..5, 0u64..4, 0..5)
            .prop_map(|m| m.into_iter().map(|(p, c)| (peer(p), c)).collect())
    }

    #[test]
    fn spec_comparison_table() {
        let a: VectorClock = [(peer(1), 2), (peer(2), 1)].into_iter().collect();
        let mut b = a.clone();
        assert_eq!(a.compare(&b), Causality::Equal);
        b.increment(peer(2));
        assert_eq!(a.compare(&b), Causality::Before);
        assert_eq!(b.compare(&a), Causality::After);
        let mut c = a.clone();
        c.increment(peer(1));
        assert_eq!(b.compare(&c), Causality::Concurrent);
        // Explicit zeros equal missing entries.
        let z: VectorClock = [(peer(9), 0)].into_iter().collect();
        assert_eq!(z.compare(&VectorClock::new()), Causality::Equal);
    }

    #[test]
    fn receive_increments_then_merges() {
        let mut mine: VectorClock = [(peer(1), 3)].into_iter().collect();
        let theirs: VectorClock = [(peer(1), 7), (peer(2), 4)].into_iter().collect();
        mine.receive(peer(1), &theirs);
        assert_eq!(mine.get(&peer(1)), 7);
        assert_eq!(mine.get(&peer(2)), 4);
        assert!(theirs.before(&mine));
    }

    #[test]
    fn wire_form_keeps_64_bit_counters() {
        let json = r#"{"b934d9de020109fde790cd39acce73fc":18446744073709551615}"#;
        let c: VectorClock = serde_json::from_str(json).unwrap();
        assert_eq!(c.iter().next().map(|(_, v)| *v), Some(u64::MAX));
        assert_eq!(serde_json::to_string(&c).unwrap(), json);
    }

    proptest! {
        #[test]
        fn merge_is_commutative(a in clock(), b in clock()) {
            let mut ab = a.clone(); ab.merge(&b);
            let mut ba = b.clone(); ba.merge(&a);
            prop_assert_eq!(ab.compare(&ba), Causality::Equal);
        }

        #[test]
        fn merge_is_associative(a in clock(), b in clock(), c in clock()) {
            let mut l = a.clone(); l.merge(&b); l.merge(&c);
            let mut bc = b.clone(); bc.merge(&c);
            let mut r = a.clone(); r.merge(&bc);
            prop_assert_eq!(l.compare(&r), Causality::Equal);
        }

        #[test]
        fn merge_is_idempotent_and_an_upper_bound(a in clock(), b in clock()) {
            let mut aa = a.clone(); aa.merge(&a);
            prop_assert_eq!(aa.compare(&a), Causality::Equal);
            let mut ab = a.clone(); ab.merge(&b);
            prop_assert!(a.before(&ab) && b.before(&ab));
        }

        #[test]
        fn before_is_a_partial_order(a in clock(), b in clock(), c in clock()) {
            prop_assert!(a.before(&a));
            if a.before(&b) && b.before(&a) {
                prop_assert_eq!(a.compare(&b), Causality::Equal);
            }
            if a.before(&b) && b.before(&c) {
                prop_assert!(a.before(&c));
            }
        }

        #[test]
        fn increment_moves_strictly_after(a in clock(), p in 0u8..5) {
            let mut b = a.clone();
            b.increment(peer(p));
            prop_assert_eq!(a.compare(&b), Causality::Before);
        }
    }
}
