//! Failed-authentication bookkeeping: how many times a key (in the gateway: a client address and
//! a kind of credential) failed within a window, so that a client guessing one credential is told
//! to wait while other credentials, and other clients, are not.
//!
//! Invariants: an entry lives at most one window after its first failure (expired entries are
//! pruned as new keys arrive), and the map never holds more than `max_entries` keys (the oldest
//! window is evicted first). Time comes from the injected [`Clock`].
//!
//! [`AuthFailures`] is what the gateway uses: a [`FailureLimiter`] in memory, and, on a store
//! that several gateways share (PostgreSQL), the same count kept in the store, so that guesses
//! spread over the gateways behind a load balancer are counted together.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use time::{Duration, OffsetDateTime};

use crate::clock::Clock;
use crate::store::Store;

/// When a key is told to wait, and how much the limiter may remember.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailurePolicy {
    /// Failures within `window` after which the key is locked until the window ends.
    pub max_failures: u32,
    pub window: Duration,
    /// The most keys kept; beyond it the oldest window is forgotten.
    pub max_entries: usize,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        Self {
            max_failures: 10,
            window: Duration::minutes(1),
            max_entries: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    since: OffsetDateTime,
}

#[derive(Debug)]
struct Inner<K> {
    entries: HashMap<K, Entry>,
    last_prune: OffsetDateTime,
}

/// Counts failures per key within a window; see the module documentation.
#[derive(Debug)]
pub struct FailureLimiter<K> {
    clock: Arc<dyn Clock>,
    policy: FailurePolicy,
    inner: Mutex<Inner<K>>,
}

impl<K: Eq + Hash + Clone> FailureLimiter<K> {
    pub fn new(clock: Arc<dyn Clock>, policy: FailurePolicy) -> Self {
        let now = clock.now();
        Self {
            clock,
            policy,
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                last_prune: now,
            }),
        }
    }

    pub fn policy(&self) -> FailurePolicy {
        self.policy
    }

    /// Whether `key` failed `max_failures` times within the current window.
    pub fn is_locked(&self, key: &K) -> bool {
        let now = self.clock.now();
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.entries.get(key).is_some_and(|e| {
            e.failures >= self.policy.max_failures && now - e.since < self.policy.window
        })
    }

    /// Counts a failure of `key`.
    pub fn fail(&self, key: K) {
        let now = self.clock.now();
        let window = self.policy.window;
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if !inner.entries.contains_key(&key) {
            if now - inner.last_prune >= window || inner.entries.len() >= self.policy.max_entries {
                inner.entries.retain(|_, e| now - e.since < window);
                inner.last_prune = now;
            }
            if inner.entries.len() >= self.policy.max_entries {
                let oldest = inner
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.since)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    inner.entries.remove(&oldest);
                }
            }
        }
        let entry = inner.entries.entry(key).or_insert(Entry {
            failures: 0,
            since: now,
        });
        if now - entry.since >= window {
            *entry = Entry {
                failures: 0,
                since: now,
            };
        }
        entry.failures = entry.failures.saturating_add(1);
    }

    /// Forgets the failures of `key` (it has just authenticated).
    pub fn succeed(&self, key: &K) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .remove(key);
    }

    /// Whether `key` has failures on record (in a window that may have ended).
    pub fn remembers(&self, key: &K) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .contains_key(key)
    }

    /// How many keys the limiter remembers.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Failed authentications per key: in memory, and in the store when the store is shared by
/// several gateways ([`Store::shares_auth_failures`]).
///
/// A key is locked when either count says so. A store that does not answer leaves the memory
/// count in charge (logged), so an outage of the database does not lock everybody out. A
/// success clears the store's count only when this gateway saw the key fail, so the hot path (a
/// valid API key) never writes to the store; a key that failed only on other gateways keeps
/// their failures until its window ends.
pub struct AuthFailures<K> {
    local: FailureLimiter<K>,
    shared: Option<Arc<dyn Store>>,
    /// The key as the store names it.
    name: fn(&K) -> String,
}

impl<K> std::fmt::Debug for AuthFailures<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthFailures")
            .field("policy", &self.local.policy)
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

fn millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

impl<K: Eq + Hash + Clone> AuthFailures<K> {
    /// Counts in memory only.
    pub fn local(clock: Arc<dyn Clock>, policy: FailurePolicy) -> Self {
        Self {
            local: FailureLimiter::new(clock, policy),
            shared: None,
            name: |_| String::new(),
        }
    }

    /// Counts in memory and, if `store` shares them, in the store under `name(key)`.
    pub fn over(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        policy: FailurePolicy,
        name: fn(&K) -> String,
    ) -> Self {
        Self {
            local: FailureLimiter::new(clock, policy),
            shared: store.shares_auth_failures().then_some(store),
            name,
        }
    }

    pub fn policy(&self) -> FailurePolicy {
        self.local.policy
    }

    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    fn window_ms(&self) -> i64 {
        i64::try_from(self.local.policy.window.whole_milliseconds()).unwrap_or(i64::MAX)
    }

    /// Whether `key` failed `max_failures` times within its window, here or on any gateway.
    pub async fn is_locked(&self, key: &K) -> bool {
        if self.local.is_locked(key) {
            return true;
        }
        let Some(store) = &self.shared else {
            return false;
        };
        let now = millis(self.local.clock.now());
        match store
            .auth_failures(&(self.name)(key), now, self.window_ms())
            .await
        {
            Ok(n) => n >= self.local.policy.max_failures,
            Err(e) => {
                tracing::warn!(error = %e, "the shared failure count is not readable; counting in memory");
                false
            }
        }
    }

    /// Counts a failure of `key`; answers whether the key is now locked.
    pub async fn fail(&self, key: K) -> bool {
        let name = self.shared.as_ref().map(|_| (self.name)(&key));
        self.local.fail(key.clone());
        let locally = self.local.is_locked(&key);
        let (Some(store), Some(name)) = (&self.shared, name) else {
            return locally;
        };
        let now = millis(self.local.clock.now());
        match store
            .record_auth_failure(&name, now, self.window_ms())
            .await
        {
            Ok(n) => locally || n >= self.local.policy.max_failures,
            Err(e) => {
                tracing::warn!(error = %e, "the shared failure count is not writable; counting in memory");
                locally
            }
        }
    }

    /// Forgets the failures of `key` (it has just authenticated).
    pub async fn succeed(&self, key: &K) {
        let seen = self.local.remembers(key);
        self.local.succeed(key);
        if let (true, Some(store)) = (seen, &self.shared)
            && let Err(e) = store.clear_auth_failures(&(self.name)(key)).await
        {
            tracing::warn!(error = %e, "the shared failure count is not writable");
        }
    }

    /// How many keys this gateway remembers failures of.
    pub fn len(&self) -> usize {
        self.local.len()
    }

    pub fn is_empty(&self) -> bool {
        self.local.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Manual(Mutex<OffsetDateTime>);

    impl Clock for Manual {
        fn now(&self) -> OffsetDateTime {
            *self.0.lock().unwrap()
        }
    }

    impl Manual {
        fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    fn limiter(max_entries: usize) -> (Arc<Manual>, FailureLimiter<u32>) {
        let clock = Arc::new(Manual(Mutex::new(OffsetDateTime::UNIX_EPOCH)));
        let policy = FailurePolicy {
            max_failures: 3,
            window: Duration::minutes(1),
            max_entries,
        };
        (clock.clone(), FailureLimiter::new(clock, policy))
    }

    #[test]
    fn a_key_is_locked_after_its_failures_and_only_it_until_the_window_ends() {
        let (clock, limiter) = limiter(100);
        for _ in 0..2 {
            limiter.fail(1);
        }
        assert!(!limiter.is_locked(&1));
        limiter.fail(1);
        assert!(limiter.is_locked(&1));
        assert!(!limiter.is_locked(&2), "another key is not locked");
        clock.advance(Duration::seconds(59));
        assert!(limiter.is_locked(&1));
        clock.advance(Duration::seconds(1));
        assert!(!limiter.is_locked(&1), "the window ended");
        limiter.fail(1);
        assert!(!limiter.is_locked(&1), "a new window counts from one");
    }

    #[test]
    fn a_success_forgets_the_failures() {
        let (_, limiter) = limiter(100);
        for _ in 0..3 {
            limiter.fail(7);
        }
        limiter.succeed(&7);
        assert!(!limiter.is_locked(&7));
        assert!(limiter.is_empty());
    }

    #[test]
    fn expired_entries_are_pruned_and_the_map_never_exceeds_its_cap() {
        let (clock, limiter) = limiter(50);
        for key in 0..40 {
            limiter.fail(key);
        }
        assert_eq!(limiter.len(), 40);
        clock.advance(Duration::minutes(2));
        limiter.fail(1000);
        assert_eq!(limiter.len(), 1, "expired keys were pruned");
        for key in 0..10_000 {
            limiter.fail(key);
            assert!(limiter.len() <= 50);
        }
        assert_eq!(limiter.len(), 50);
        // The newest keys are kept, the oldest evicted.
        for _ in 0..2 {
            limiter.fail(9_999);
        }
        assert!(limiter.is_locked(&9_999));
    }
}
