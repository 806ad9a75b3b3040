//! The token cache: every caller in the process asks it for access tokens.
//!
//! Invariants:
//! - A fresh token (before its `refresh_at`) is served from memory: no I/O, no await.
//! - A token that is due for refresh but still valid is served while one background refresh runs;
//!   a transient failure of that refresh (network, 5xx, 429) backs off — within `Retry-After`
//!   when the server gives one — and the valid token keeps being served. That is
//!   [`Refresh::Background`], for long-lived processes (the gateway). A short-lived process (a CLI
//!   command) chooses [`Refresh::Foreground`]: a token past its refresh point is refreshed before
//!   it is answered, once, and if that fails the still-valid token is answered with a warning —
//!   a background refresh would die with the process.
//! - When there is no valid token, callers wait on the key's lock; exactly one of them loads the
//!   persisted token or fetches a new one, and the rest take its result. Transient failures are
//!   retried with capped exponential back-off before the callers get an error.
//! - Keys are independent: one account's failure never touches another's token.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::Error;
use crate::clock::Clock;
use crate::model::{AccessToken, TokenKey};

/// Where tokens come from when the cache has none.
#[async_trait]
pub trait TokenSource: Send + Sync + fmt::Debug {
    /// A token an earlier process persisted. No network I/O.
    async fn stored(&self, key: &TokenKey) -> Result<Option<AccessToken>, Error>;
    /// A new token from the identity provider, persisted before it is returned.
    async fn fetch(&self, key: &TokenKey) -> Result<AccessToken, Error>;
}

/// How transient failures are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts a waiting caller makes before giving up.
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `failures + 1`: the server's hint if any, else exponential, capped.
    pub fn delay(&self, failures: u32, hint: Option<Duration>) -> Duration {
        let exponential = self.base.saturating_mul(1u32 << failures.min(16));
        hint.unwrap_or(exponential).min(self.cap)
    }
}

fn retryable(e: &Error) -> bool {
    matches!(e, Error::Auth(a) if a.is_retryable())
}

fn retry_hint(e: &Error) -> Option<Duration> {
    match e {
        Error::Auth(a) => a.retry_after(),
        _ => None,
    }
}

/// When a token past its refresh point (but still valid) is refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Refresh {
    /// Answer it at once and refresh in the background (long-lived processes).
    #[default]
    Background,
    /// Refresh before answering; answer the valid token only if the refresh fails
    /// (short-lived processes, whose background tasks die with them).
    Foreground,
}

#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    not_before: Option<OffsetDateTime>,
}

#[derive(Debug, Default)]
struct Slot {
    token: RwLock<Option<Arc<AccessToken>>>,
    refresh: Arc<tokio::sync::Mutex<()>>,
    backoff: Mutex<Backoff>,
}

impl Slot {
    fn current(&self) -> Option<Arc<AccessToken>> {
        self.token
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, token: Arc<AccessToken>) {
        *self.token.write().unwrap_or_else(PoisonError::into_inner) = Some(token);
        *self.backoff.lock().unwrap_or_else(PoisonError::into_inner) = Backoff::default();
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub fetches: AtomicU64,
    pub fetch_failures: AtomicU64,
}

/// The slots by key, and when to sweep them next.
#[derive(Debug)]
struct Slots {
    map: HashMap<TokenKey, Arc<Slot>>,
    sweep_at: usize,
}

/// Slots kept before the first sweep.
const SWEEP_FLOOR: usize = 1024;

pub struct TokenCache {
    source: Arc<dyn TokenSource>,
    clock: Arc<dyn Clock>,
    policy: RetryPolicy,
    slots: Mutex<Slots>,
    stats: CacheStats,
    foreground: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    pub fn new(
        source: Arc<dyn TokenSource>,
        clock: Arc<dyn Clock>,
        policy: RetryPolicy,
    ) -> Arc<Self> {
        Arc::new(Self {
            source,
            clock,
            policy,
            slots: Mutex::new(Slots {
                map: HashMap::new(),
                sweep_at: SWEEP_FLOOR,
            }),
            stats: CacheStats::default(),
            foreground: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Chooses how tokens past their refresh point are refreshed (default: in the background).
    /// The frontend decides: the CLI chooses [`Refresh::Foreground`].
    pub fn set_refresh(&self, mode: Refresh) {
        self.foreground
            .store(mode == Refresh::Foreground, Ordering::Relaxed);
    }

    pub fn refresh(&self) -> Refresh {
        if self.foreground.load(Ordering::Relaxed) {
            Refresh::Foreground
        } else {
            Refresh::Background
        }
    }

    /// Refreshes now (the caller holds the key's turn); on failure answers `current`, which is
    /// still valid, and says so in a warning.
    async fn refresh_now(
        &self,
        key: &TokenKey,
        slot: &Slot,
        current: Arc<AccessToken>,
    ) -> Arc<AccessToken> {
        self.stats.fetches.fetch_add(1, Ordering::Relaxed);
        match self.source.fetch(key).await {
            Ok(token) => {
                let token = Arc::new(token);
                slot.set(Arc::clone(&token));
                token
            }
            Err(e) => {
                self.stats.fetch_failures.fetch_add(1, Ordering::Relaxed);
                let left = (current.expires_at - self.clock.now()).whole_seconds();
                tracing::warn!(
                    resource = %key.resource,
                    error = %e,
                    "token refresh failed; using the current token, valid for {left} more seconds"
                );
                current
            }
        }
    }

    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    fn slot(&self, key: &TokenKey) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.map.len() >= slots.sweep_at {
            // Slots nobody is using whose token has expired hold nothing worth keeping: sweep
            // them once the map has doubled, so memory follows the accounts in use.
            let now = self.clock.now();
            slots.map.retain(|_, slot| {
                Arc::strong_count(slot) > 1 || slot.current().is_some_and(|t| t.expires_at > now)
            });
            slots.sweep_at = (slots.map.len() * 2).max(SWEEP_FLOOR);
        }
        Arc::clone(slots.map.entry(*key).or_default())
    }

    /// How many keys have a slot in memory.
    pub fn len(&self) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The token if it is fresh, from memory only.
    pub fn fresh(&self, key: &TokenKey) -> Option<Arc<AccessToken>> {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .get(key)
            .cloned()?;
        slot.current().filter(|t| t.is_fresh(self.clock.now()))
    }

    /// The token held in memory for the key, fresh or not.
    pub fn current(&self, key: &TokenKey) -> Option<Arc<AccessToken>> {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .get(key)
            .cloned()?;
        slot.current()
    }

    /// Puts a token obtained elsewhere (a sign-in) into the cache.
    pub fn insert(&self, key: TokenKey, token: AccessToken) {
        self.slot(&key).set(Arc::new(token));
    }

    /// Forgets the key's token (after a sign-out or reset).
    pub fn forget(&self, key: &TokenKey) {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .remove(key);
    }

    /// Forgets the tokens of one account, or (`None`) of every account (another process changed
    /// them). App-only tokens stay.
    pub fn forget_accounts(&self, account: Option<crate::model::AccountId>) {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .retain(|k, _| match account {
                Some(id) => k.account != Some(id),
                None => k.account.is_none(),
            });
    }

    /// A valid access token for `key`.
    pub async fn get(self: &Arc<Self>, key: TokenKey) -> Result<Arc<AccessToken>, Error> {
        let slot = self.slot(&key);
        let now = self.clock.now();
        if let Some(token) = slot.current() {
            if token.is_fresh(now) {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(token);
            }
            if token.is_usable(now) && self.refresh() == Refresh::Background {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                self.refresh_in_background(key, &slot, now);
                return Ok(token);
            }
        }

        let foreground = self.refresh() == Refresh::Foreground;
        let _turn = slot.refresh.lock().await;
        let now = self.clock.now();
        if let Some(token) = slot.current().filter(|t| t.is_usable(now)) {
            if foreground && !token.is_fresh(now) {
                return Ok(self.refresh_now(&key, &slot, token).await);
            }
            return Ok(token);
        }
        if let Some(token) = self.source.stored(&key).await?.filter(|t| t.is_usable(now)) {
            let token = Arc::new(token);
            slot.set(Arc::clone(&token));
            if !token.is_fresh(now) {
                if foreground {
                    return Ok(self.refresh_now(&key, &slot, token).await);
                }
                drop(_turn);
                self.refresh_in_background(key, &slot, now);
            }
            return Ok(token);
        }
        let token = Arc::new(self.fetch_with_retries(&key).await?);
        slot.set(Arc::clone(&token));
        Ok(token)
    }

    async fn fetch_with_retries(&self, key: &TokenKey) -> Result<AccessToken, Error> {
        let mut failures = 0;
        loop {
            self.stats.fetches.fetch_add(1, Ordering::Relaxed);
            match self.source.fetch(key).await {
                Ok(token) => return Ok(token),
                Err(e) => {
                    self.stats.fetch_failures.fetch_add(1, Ordering::Relaxed);
                    failures += 1;
                    if !retryable(&e) || failures >= self.policy.attempts {
                        return Err(e);
                    }
                    let wait = self.policy.delay(failures - 1, retry_hint(&e));
                    tracing::warn!(resource = %key.resource, error = %e, wait_ms = wait.as_millis() as u64, "token request failed; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Starts one refresh for the key unless one is running or the last failure asked to wait.
    fn refresh_in_background(
        self: &Arc<Self>,
        key: TokenKey,
        slot: &Arc<Slot>,
        now: OffsetDateTime,
    ) {
        let waiting = slot
            .backoff
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .not_before
            .is_some_and(|t| now < t);
        if waiting {
            return;
        }
        let Ok(turn) = Arc::clone(&slot.refresh).try_lock_owned() else {
            return;
        };
        let cache = Arc::clone(self);
        let slot = Arc::clone(slot);
        tokio::spawn(async move {
            let _turn = turn;
            cache.stats.fetches.fetch_add(1, Ordering::Relaxed);
            match cache.source.fetch(&key).await {
                Ok(token) => slot.set(Arc::new(token)),
                Err(e) => {
                    cache.stats.fetch_failures.fetch_add(1, Ordering::Relaxed);
                    let mut backoff = slot.backoff.lock().unwrap_or_else(PoisonError::into_inner);
                    let wait = if retryable(&e) {
                        cache.policy.delay(backoff.failures, retry_hint(&e))
                    } else {
                        // A permanent failure: stop trying until the token expires.
                        cache.policy.cap
                    };
                    backoff.failures += 1;
                    backoff.not_before = Some(cache.clock.now() + wait);
                    tracing::warn!(resource = %key.resource, error = %e, "background token refresh failed; serving the current token");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use time::macros::datetime;

    use super::*;
    use crate::auth::AuthError;
    use crate::clock::MockClock;
    use crate::model::{ConnectionId, Resource};
    use crate::secret::Secret;

    /// A clock the test moves by hand.
    fn manual_clock(start: OffsetDateTime) -> (Arc<Mutex<OffsetDateTime>>, Arc<dyn Clock>) {
        let now = Arc::new(Mutex::new(start));
        let mut clock = MockClock::new();
        let reader = Arc::clone(&now);
        clock
            .expect_now()
            .returning(move || *reader.lock().unwrap());
        (now, Arc::new(clock))
    }

    /// Issues numbered tokens living one hour; fails while `failing` holds an error.
    #[derive(Debug)]
    struct Source {
        fetches: AtomicUsize,
        clock: Arc<dyn Clock>,
        failing: Mutex<Option<AuthError>>,
        gate: tokio::sync::Semaphore,
    }

    impl Source {
        fn new(clock: Arc<dyn Clock>) -> Arc<Self> {
            Arc::new(Self {
                fetches: AtomicUsize::new(0),
                clock,
                failing: Mutex::new(None),
                gate: tokio::sync::Semaphore::new(Semaphore::MAX_PERMITS),
            })
        }
    }

    use tokio::sync::Semaphore;

    #[async_trait]
    impl TokenSource for Source {
        async fn stored(&self, _: &TokenKey) -> Result<Option<AccessToken>, Error> {
            Ok(None)
        }
        async fn fetch(&self, _: &TokenKey) -> Result<AccessToken, Error> {
            let _permit = self.gate.acquire().await.unwrap();
            let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
            if let Some(e) = self.failing.lock().unwrap().clone() {
                return Err(Error::Auth(e));
            }
            let now = self.clock.now();
            let (expires_at, refresh_at) =
                AccessToken::timing(now, Duration::from_secs(3600), None);
            Ok(AccessToken {
                secret: Secret::new(format!("token-{n}")),
                expires_at,
                refresh_at,
            })
        }
    }

    fn key() -> TokenKey {
        TokenKey {
            connection: ConnectionId::new_random(),
            account: None,
            resource: Resource::Graph,
        }
    }

    #[tokio::test]
    async fn slots_whose_tokens_expired_are_swept_and_live_ones_kept() {
        let (now, clock) = manual_clock(datetime!(2026-01-01 10:00 UTC));
        let source = Source::new(Arc::clone(&clock));
        let cache = TokenCache::new(source, clock, RetryPolicy::default());
        let live = key();
        cache.get(live).await.unwrap();
        // 50,000 accounts served once each over ten hours, 1,000 every 12 minutes; each token
        // lives an hour, so about 5,000 are alive at any time.
        for round in 0..50 {
            *now.lock().unwrap() += time::Duration::minutes(12);
            cache.get(live).await.unwrap();
            for _ in 0..1000 {
                cache.get(key()).await.unwrap();
            }
            assert!(
                cache.len() <= 2 * 6_000 + 1,
                "round {round}: {}",
                cache.len()
            );
        }
        assert!(cache.fresh(&live).is_some(), "the token in use is kept");
    }

    fn server_error() -> AuthError {
        AuthError::Http {
            during: "token refresh",
            status: 503,
            retry_after: Some(Duration::from_secs(2)),
        }
    }

    #[tokio::test]
    async fn a_thousand_callers_at_expiry_cause_one_fetch() {
        let (_, clock) = manual_clock(datetime!(2026-01-01 10:00 UTC));
        let source = Source::new(Arc::clone(&clock));
        let cache = TokenCache::new(source.clone(), clock, RetryPolicy::default());
        let key = key();
        // Hold the source so every caller arrives while the fetch is in flight.
        let hold = source
            .gate
            .acquire_many(Semaphore::MAX_PERMITS as u32)
            .await
            .unwrap();
        let callers: Vec<_> = (0..1000)
            .map(|_| {
                let cache = Arc::clone(&cache);
                tokio::spawn(
                    async move { cache.get(key).await.map(|t| t.secret.expose().to_owned()) },
                )
            })
            .collect();
        tokio::task::yield_now().await;
        drop(hold);
        for caller in callers {
            assert_eq!(caller.await.unwrap().unwrap(), "token-1");
        }
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
        // Served from memory afterwards.
        assert_eq!(cache.fresh(&key).unwrap().secret.expose(), "token-1");
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failing_refresh_does_not_interrupt_callers_while_the_token_is_valid() {
        let start = datetime!(2026-01-01 10:00 UTC);
        let (now, clock) = manual_clock(start);
        let source = Source::new(Arc::clone(&clock));
        let cache = TokenCache::new(source.clone(), clock, RetryPolicy::default());
        let key = key();
        assert_eq!(cache.get(key).await.unwrap().secret.expose(), "token-1");

        // Due for refresh (56 minutes in), but the token endpoint answers 503.
        *source.failing.lock().unwrap() = Some(server_error());
        *now.lock().unwrap() = start + time::Duration::minutes(56);
        for _ in 0..50 {
            assert_eq!(cache.get(key).await.unwrap().secret.expose(), "token-1");
            tokio::task::yield_now().await;
        }
        // One background attempt, then it waits the server's Retry-After (2 s) before the next.
        assert_eq!(source.fetches.load(Ordering::SeqCst), 2);

        // After the hint, it tries again; the endpoint is back, and a new token is served.
        *source.failing.lock().unwrap() = None;
        *now.lock().unwrap() = start + time::Duration::minutes(56) + time::Duration::seconds(3);
        assert_eq!(cache.get(key).await.unwrap().secret.expose(), "token-1");
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(cache.get(key).await.unwrap().secret.expose(), "token-3");
    }

    #[tokio::test]
    async fn in_the_foreground_a_token_past_its_refresh_point_is_refreshed_before_it_is_served() {
        let start = datetime!(2026-01-01 10:00 UTC);
        let (now, clock) = manual_clock(start);
        let source = Source::new(Arc::clone(&clock));
        let cache = TokenCache::new(source.clone(), clock, RetryPolicy::default());
        cache.set_refresh(Refresh::Foreground);
        let key = key();
        assert_eq!(cache.get(key).await.unwrap().secret.expose(), "token-1");
        // Fresh: from memory.
        assert_eq!(cache.get(key).await.unwrap().secret.expose(), "token-1");
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);

        // Past the refresh point: the caller gets the new token, with no task left behind.
        *now.lock().unwrap() = start + time::Duration::minutes(56);
        assert_eq!(cache.get(key).await.unwrap().secret.expose(), "token-2");
        assert_eq!(source.fetches.load(Ordering::SeqCst), 2);

        // The identity provider fails: the still-valid token is served, after one attempt.
        *source.failing.lock().unwrap() = Some(server_error());
        *now.lock().unwrap() = start + time::Duration::minutes(56 + 56);
        assert_eq!(cache.get(key).await.unwrap().secret.expose(), "token-2");
        assert_eq!(source.fetches.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_valid_token_transient_failures_are_retried_then_reported() {
        let (_, clock) = manual_clock(datetime!(2026-01-01 10:00 UTC));
        let source = Source::new(Arc::clone(&clock));
        *source.failing.lock().unwrap() = Some(server_error());
        let cache = TokenCache::new(source.clone(), clock, RetryPolicy::default());
        let err = cache.get(key()).await.unwrap_err();
        assert!(
            matches!(err, Error::Auth(AuthError::Http { status: 503, .. })),
            "{err}"
        );
        assert_eq!(
            source.fetches.load(Ordering::SeqCst),
            RetryPolicy::default().attempts as usize
        );
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried() {
        let (_, clock) = manual_clock(datetime!(2026-01-01 10:00 UTC));
        let source = Source::new(Arc::clone(&clock));
        *source.failing.lock().unwrap() = Some(AuthError::Refused {
            during: "token refresh",
            status: 400,
            body: Box::new(crate::auth::ErrorBody {
                error: "invalid_grant".into(),
                error_codes: vec![70008],
                ..Default::default()
            }),
            retry_after: None,
        });
        let cache = TokenCache::new(source.clone(), clock, RetryPolicy::default());
        let err = cache.get(key()).await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::NeedsSignIn);
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn retry_delays_honour_hints_and_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(0, None), Duration::from_millis(500));
        assert_eq!(p.delay(3, None), Duration::from_secs(4));
        assert_eq!(p.delay(20, None), p.cap);
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(p.delay(0, Some(Duration::from_secs(999))), p.cap);
    }
}
