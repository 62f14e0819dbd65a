//! RSA-2048 key pairs made ahead of time. A new read-write share needs three (one per access
//! level), and making one takes 0.05–0.3 s here, more on a NAS's CPU: sharing a folder would
//! wait for them. The registry keeps [`POOL`] ready, made on a thread of its own when the
//! worker starts and again after each share takes some, one key at a time while the daemon
//! is quiet: not during the sync that usually follows a share or a start (a `share` that
//! finds the pool empty makes its keys on the spot).

use std::sync::{Arc, Mutex};

use clearskies_index::rsa::SigningKey;

use crate::share::registry::{self, RegistryError};

/// Key pairs kept ready: one share's worth.
pub const POOL: usize = 3;

/// The ready key pairs, shared by the registry and its blocking jobs, and whether one
/// fills it now.
#[derive(Debug, Clone, Default)]
pub struct KeyPool(Arc<Mutex<Vec<SigningKey>>>, Arc<std::sync::atomic::AtomicBool>);

impl KeyPool {
    /// A ready key pair, or one made now if none is.
    pub fn take(&self) -> Result<SigningKey, RegistryError> {
        let ready = self.0.lock().map(|mut keys| keys.pop()).unwrap_or(None);
        ready.map_or_else(registry::generate_rsa, Ok)
    }

    /// How many are ready.
    pub fn ready(&self) -> usize {
        self.0.lock().map_or(0, |keys| keys.len())
    }

    /// Whether the caller is the one to fill the pool now (none is filling it): then it
    /// must call [`KeyPool::fill`], which says when it is done.
    pub fn start_filling(&self) -> bool {
        !self.1.swap(true, std::sync::atomic::Ordering::AcqRel)
    }

    /// Makes key pairs until [`POOL`] are ready (blocking: run it on a thread of its own),
    /// after [`KeyPool::start_filling`], each once `quiet` says the daemon is (it waits
    /// for that itself, between calls). One that cannot be made now (the OS RNG failing) is
    /// left for `take` to try again.
    pub fn fill(&self, quiet: &mut dyn FnMut() -> bool) {
        loop {
            let full = self.fill_up(quiet);
            self.stop_filling();
            if !full {
                return;
            }
            // A share that took keys after the last check, while this still said it was
            // filling, was not given a filler of its own: fill again.
            if self.ready() >= POOL || !self.start_filling() {
                return;
            }
        }
    }

    /// No longer filling (see [`KeyPool::start_filling`]).
    pub fn stop_filling(&self) {
        self.1.store(false, std::sync::atomic::Ordering::Release);
    }

    /// Makes key pairs until [`POOL`] are ready; whether it got there.
    fn fill_up(&self, quiet: &mut dyn FnMut() -> bool) -> bool {
        while self.ready() < POOL {
            // (Only this filler adds keys, so none can have appeared while it waited.)
            while !quiet() {}
            let Ok(key) = registry::generate_rsa() else { return false };
            match self.0.lock() {
                Ok(mut keys) if keys.len() < POOL => keys.push(key),
                Ok(_) => return true,
                Err(_) => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_filler_at_a_time() {
        let pool = KeyPool::default();
        assert!(pool.start_filling());
        assert!(!pool.start_filling(), "a second share's call finds it being filled");
        pool.fill(&mut || true);
        assert_eq!(pool.ready(), POOL);
        assert!(pool.start_filling(), "done: the next one may fill");
        pool.stop_filling();
    }

    #[test]
    fn keys_are_made_only_while_the_daemon_is_quiet() {
        let pool = KeyPool::default();
        let mut asked = 0;
        let mut made_when_asked = Vec::new();
        let probe = pool.clone();
        pool.fill(&mut || {
            asked += 1;
            made_when_asked.push(probe.ready());
            // Busy, busy, then quiet; again for each key.
            asked % 3 == 0
        });
        assert_eq!(pool.ready(), POOL);
        assert_eq!(asked, 3 * POOL, "asked before each key until quiet");
        assert_eq!(made_when_asked, [0, 0, 0, 1, 1, 1, 2, 2, 2], "no key made while busy");
    }

    #[test]
    fn a_filled_pool_hands_out_its_keys_then_makes_new_ones() {
        let pool = KeyPool::default();
        pool.fill(&mut || true);
        assert_eq!(pool.ready(), POOL);
        let ready: Vec<String> = pool.0.lock().unwrap().iter().map(|k| k.to_pem().unwrap()).collect();
        let taken: Vec<String> = (0..POOL).map(|_| pool.take().unwrap().to_pem().unwrap()).collect();
        assert!(taken.iter().all(|k| ready.contains(k)), "the ready ones first");
        assert_eq!(pool.ready(), 0);
        let fresh = pool.take().unwrap().to_pem().unwrap();
        assert!(!ready.contains(&fresh), "then one made on the spot");
    }

    #[test]
    fn a_new_share_takes_its_three_key_pairs_from_the_pool() {
        let (data, root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let store = clearskies_index::store::Store::open(&data.path().join("db")).unwrap();
        let pool = KeyPool::default();
        pool.fill(&mut || true);
        let ready: Vec<String> = pool.0.lock().unwrap().iter().map(|k| k.to_pem().unwrap()).collect();
        let now = crate::share::actor::now();
        let config = registry::create_share_with(&store, data.path(), root.path(), now, &mut || pool.take()).unwrap();
        assert_eq!(pool.ready(), 0, "all three taken");
        let keys = registry::read_keys(data.path(), &config.id).unwrap();
        let used: Vec<&str> = keys.levels.iter().filter_map(|l| l.private_rsa.as_deref()).collect();
        assert_eq!(used.len(), 3);
        assert!(used.iter().all(|k| ready.iter().any(|r| r == k)), "the pool's key pairs, not new ones");
    }
}
