//! The memory budget shared by all decodes: a decode reserves its estimate first, waiting
//! (first come, first served) until that much is free, and gives it back when done.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Bytes of memory that decodes may use at once.
#[derive(Debug)]
pub(crate) struct Budget {
    total: u64,
    state: Mutex<State>,
    /// Signalled when memory is given back, a turn passes, or a reserver starts waiting.
    changed: Condvar,
}

#[derive(Debug)]
struct State {
    available: u64,
    /// The ticket the next reserver takes.
    next_ticket: u64,
    /// The ticket whose turn it is: reservers go in ticket order, so a large reservation is
    /// not overtaken forever by small ones.
    serving: u64,
    /// Reservers waiting for their turn or for memory.
    waiting: usize,
}

/// Memory taken from a [`Budget`]; given back when dropped.
#[derive(Debug)]
pub(crate) struct Reservation<'a> {
    budget: &'a Budget,
    amount: u64,
}

impl Budget {
    pub(crate) fn new(total: u64) -> Budget {
        let state = State { available: total, next_ticket: 0, serving: 0, waiting: 0 };
        Budget { total, state: Mutex::new(state), changed: Condvar::new() }
    }

    /// Takes `amount` bytes, waiting until they are free and earlier reservers are served;
    /// `None` at once if `amount` is more than the whole budget.
    pub(crate) fn reserve(&self, amount: u64) -> Option<Reservation<'_>> {
        if amount > self.total {
            return None;
        }
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket = ticket.wrapping_add(1);
        if state.serving != ticket || state.available < amount {
            state.waiting += 1;
            self.changed.notify_all();
            while state.serving != ticket || state.available < amount {
                state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
            state.waiting -= 1;
        }
        state.available -= amount;
        state.serving = ticket.wrapping_add(1);
        drop(state);
        // The next ticket may fit in what is left.
        self.changed.notify_all();
        Some(Reservation { budget: self, amount })
    }

    /// The state holds only counters that every change leaves consistent, so a panic elsewhere
    /// while it was locked does not matter.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut state = self.budget.lock();
        state.available += self.amount;
        drop(state);
        self.budget.changed.notify_all();
    }
}

#[cfg(test)]
impl Budget {
    /// Waits until `n` reservers are waiting.
    fn wait_for_waiting(&self, n: usize) {
        let mut state = self.lock();
        while state.waiting != n {
            state = self.changed.wait(state).unwrap();
        }
    }

    fn available(&self) -> u64 {
        self.lock().available
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_than_the_whole_budget_is_refused_at_once() {
        let budget = Budget::new(100);
        assert!(budget.reserve(101).is_none());
        let all = budget.reserve(100).unwrap();
        drop(all);
        assert_eq!(budget.available(), 100);
    }

    #[test]
    fn a_reservation_waits_for_memory_and_then_for_its_turn() {
        let budget = Budget::new(100);
        let first = budget.reserve(60).unwrap();
        std::thread::scope(|s| {
            let big = s.spawn(|| budget.reserve(70).map(|r| r.amount));
            budget.wait_for_waiting(1);
            // A small one that would fit waits behind the big one.
            let small = s.spawn(|| budget.reserve(10).map(|r| r.amount));
            budget.wait_for_waiting(2);
            assert_eq!(budget.available(), 40);
            drop(first);
            assert_eq!(big.join().unwrap(), Some(70));
            assert_eq!(small.join().unwrap(), Some(10));
        });
        assert_eq!(budget.available(), 100);
    }
}
