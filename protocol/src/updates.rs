//! Which records answer a `database.get_updates`, and in what order (`database.md`).
//!
//! Every peer numbers its own local writes 1, 2, 3, … (its revision counter). A client sends
//! `since`: the highest revision it holds from each writer. The server answers with every
//! record whose writer is absent from `since` or whose revision is greater, sorted by
//! revision (non-decreasing; ties keep their input order) so the client can apply them in
//! order. Tombstones (deleted records) are records like any other and are included.

use std::collections::BTreeMap;

use crate::PeerId;

/// Highest known revision per writer: the `since` map of `database.get_updates`.
pub type Since = BTreeMap<PeerId, u64>;

/// What [`select`] needs to know about a record.
pub trait Revisioned {
    /// The peer that last wrote the record (`last_updated_by`).
    fn last_updated_by(&self) -> PeerId;
    /// That peer's revision number for the write (`last_updated_rev`).
    fn last_updated_rev(&self) -> u64;
}

/// Whether a record written by `by` at revision `rev` is news to a client that sent `since`.
pub fn is_wanted(since: &Since, by: &PeerId, rev: u64) -> bool {
    since.get(by).is_none_or(|&known| rev > known)
}

/// The records a client that sent `since` needs, in the order they must be sent.
pub fn select<R: Revisioned>(records: impl IntoIterator<Item = R>, since: &Since) -> Vec<R> {
    let mut out: Vec<R> =
        records.into_iter().filter(|r| is_wanted(since, &r.last_updated_by(), r.last_updated_rev())).collect();
    // A stable sort keeps equal revisions (from different writers) in input order.
    out.sort_by_key(Revisioned::last_updated_rev);
    out
}

/// Folds one record into a per-writer maximum, as a server tracks the `since` it would send.
pub fn observe(since: &mut Since, by: PeerId, rev: u64) {
    let known = since.entry(by).or_insert(0);
    *known = (*known).max(rev);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct R(u8, u64, &'static str);

    impl Revisioned for R {
        fn last_updated_by(&self) -> PeerId {
            PeerId([self.0; 16])
        }
        fn last_updated_rev(&self) -> u64 {
            self.1
        }
    }

    #[test]
    fn follows_the_spec_query() {
        let records =
            vec![R(1, 88, "a88"), R(1, 87, "a87"), R(2, 13, "b13"), R(2, 12, "b12"), R(3, 5, "c5"), R(4, 1, "d1")];
        let since: Since = [(PeerId([1; 16]), 87), (PeerId([2; 16]), 12), (PeerId([4; 16]), 0)].into_iter().collect();
        let got: Vec<&str> = select(records, &since).into_iter().map(|r| r.2).collect();
        assert_eq!(got, vec!["d1", "c5", "b13", "a88"]);
    }

    #[test]
    fn empty_since_wants_everything_in_rev_order() {
        let records = vec![R(1, 3, "x"), R(2, 1, "y"), R(3, 3, "z")];
        let got: Vec<&str> = select(records, &Since::new()).into_iter().map(|r| r.2).collect();
        assert_eq!(got, vec!["y", "x", "z"]);
    }

    #[test]
    fn observe_keeps_the_maximum() {
        let mut since = Since::new();
        observe(&mut since, PeerId([1; 16]), 5);
        observe(&mut since, PeerId([1; 16]), 3);
        assert_eq!(since[&PeerId([1; 16])], 5);
        assert!(!is_wanted(&since, &PeerId([1; 16]), 5));
        assert!(is_wanted(&since, &PeerId([1; 16]), 6));
    }
}
