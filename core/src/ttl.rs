//! A small map whose entries expire, for lookups that every request repeats (connections, API
//! keys, static users, accounts). Changes made through this process clear the affected entries at
//! once; changes made by another process (the CLI beside a running gateway) are seen within the
//! TTL. Expired entries are swept once the map has doubled, so memory follows what is in use.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a cached lookup is trusted.
pub(crate) const TTL: Duration = Duration::from_secs(5);

/// Entries kept before the first sweep.
const SWEEP_FLOOR: usize = 256;

#[derive(Debug)]
struct Entries<K, V> {
    map: HashMap<K, (V, Instant)>,
    sweep_at: usize,
}

#[derive(Debug)]
pub(crate) struct TtlCache<K, V> {
    ttl: Duration,
    entries: Mutex<Entries<K, V>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(Entries {
                map: HashMap::new(),
                sweep_at: SWEEP_FLOOR,
            }),
        }
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        self.get_by(key)
    }

    /// [`TtlCache::get`] by a borrowed form of the key (`&str` for `String`), so a lookup
    /// allocates nothing.
    pub(crate) fn get_by<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .map
            .get(key)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(v, _)| v.clone())
    }

    pub(crate) fn put(&self, key: K, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.map.len() >= entries.sweep_at {
            let ttl = self.ttl;
            entries.map.retain(|_, (_, at)| at.elapsed() < ttl);
            entries.sweep_at = (entries.map.len() * 2).max(SWEEP_FLOOR);
        }
        entries.map.insert(key, (value, Instant::now()));
    }

    /// Forgets one entry (a change made through this process).
    pub(crate) fn remove(&self, key: &K) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .remove(key);
    }

    pub(crate) fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .clear();
    }

    /// How many entries are held, expired ones included until the next sweep.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_entries_are_swept_once_the_map_has_doubled() {
        let cache = TtlCache::new(Duration::ZERO);
        for i in 0..SWEEP_FLOOR {
            cache.put(i, i);
        }
        assert_eq!(cache.len(), SWEEP_FLOOR);
        assert_eq!(cache.get(&0), None, "a zero TTL keeps nothing fresh");
        cache.put(SWEEP_FLOOR, 0);
        assert_eq!(cache.len(), 1, "the expired entries were swept");
    }

    #[test]
    fn a_removed_entry_is_gone_and_others_stay() {
        let cache = TtlCache::new(TTL);
        cache.put("a", 1);
        cache.put("b", 2);
        cache.remove(&"a");
        assert_eq!(cache.get(&"a"), None);
        assert_eq!(cache.get(&"b"), Some(2));
    }
}
