//! Per-mailbox concurrency and request budget, shared by every caller in the process.
//!
//! Microsoft limits each app to 4 concurrent requests and 10,000 requests per 10 minutes per
//! mailbox (DESIGN.md §2). The governor keeps every caller within that: a semaphore per mailbox,
//! and a token bucket holding at most `burst` requests that refills at `(requests - burst) /
//! window`. A bucket of capacity B refilled at rate r lets through at most B + r·T requests in
//! any span of time T, so over any window (sliding, not only aligned ones) at most
//! B + (requests - B) = `requests` go out: the policy is never exceeded, at the price of the
//! burst's share of the rate (0.2% for Graph's 10,000 per 10 minutes and a burst of 20). A
//! request costing more than the burst (a batch larger than it) waits for a full bucket and may
//! exceed a window by its excess, so the burst should be at least the largest batch (20 for
//! Graph). A server's back-off hint (`Retry-After`, `BackOffMilliseconds`) pauses every caller
//! of that mailbox until it has passed.
//!
//! Time is tokio's, so tests can pause it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The limits to keep, per mailbox.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GovernorPolicy {
    pub concurrent: usize,
    pub requests: u32,
    pub window: Duration,
    /// How many requests may go at once before pacing starts.
    pub burst: u32,
}

impl Default for GovernorPolicy {
    /// Microsoft Graph's published Outlook limits.
    fn default() -> Self {
        Self {
            concurrent: 4,
            requests: 10_000,
            window: Duration::from_secs(600),
            burst: 20,
        }
    }
}

impl GovernorPolicy {
    /// EWS's default (`[ews]`), modelled on Exchange's default throttling policy: the server
    /// allows 27 concurrent connections per user (`EWSMaxConcurrency`), shared with every other
    /// client of that user (Outlook, phones), so exgate keeps to 10; and its CPU-time budget
    /// (`EWSMaxBurst` 300,000 ms, `EWSRechargeRate` 900,000 ms an hour) has no request count, so
    /// a conservative 600 requests a minute (10 a second) with a burst of 20.
    pub fn ews_default() -> Self {
        Self {
            concurrent: 10,
            requests: 600,
            window: Duration::from_secs(60),
            burst: 20,
        }
    }

    /// The bucket's capacity: the configured burst, at most half the window's requests.
    fn capacity(&self) -> u32 {
        self.burst.clamp(1, (self.requests / 2).max(1))
    }

    /// The refill rate that keeps capacity plus refill within `requests` over any window.
    fn per_second(&self) -> f64 {
        f64::from(self.requests.saturating_sub(self.capacity()).max(1))
            / self.window.as_secs_f64().max(f64::EPSILON)
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    paused_until: Option<Instant>,
}

#[derive(Debug)]
struct Gate {
    permits: Arc<Semaphore>,
    bucket: Mutex<Bucket>,
}

/// Holds one of the mailbox's concurrent slots; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    _slot: OwnedSemaphorePermit,
}

#[derive(Debug)]
pub struct Governor {
    policy: GovernorPolicy,
    gates: Mutex<Gates>,
    back_offs: std::sync::atomic::AtomicU64,
}

/// The mailboxes' gates. Idle ones are swept out when the map has doubled since the last sweep,
/// so memory follows the mailboxes in use, not every mailbox ever served.
#[derive(Debug)]
struct Gates {
    by_mailbox: HashMap<String, Arc<Gate>>,
    sweep_at: usize,
}

/// Gates kept before the first sweep.
const SWEEP_FLOOR: usize = 1024;

impl Gate {
    /// Nobody holds it, every slot is free, no pause is pending and its bucket is full again:
    /// a new gate would behave the same.
    fn idle(self: &Arc<Self>, policy: &GovernorPolicy, now: Instant) -> bool {
        if Arc::strong_count(self) > 1
            || self.permits.available_permits() < policy.concurrent.max(1)
        {
            return false;
        }
        let b = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let refilled =
            b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * policy.per_second();
        b.paused_until.is_none_or(|p| p <= now) && refilled >= f64::from(policy.capacity())
    }
}

impl Governor {
    pub fn new(policy: GovernorPolicy) -> Arc<Self> {
        Arc::new(Self {
            policy,
            gates: Mutex::new(Gates {
                by_mailbox: HashMap::new(),
                sweep_at: SWEEP_FLOOR,
            }),
            back_offs: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub fn policy(&self) -> GovernorPolicy {
        self.policy
    }

    /// How often a server has asked to back off (for `/metrics`).
    pub fn back_offs(&self) -> u64 {
        self.back_offs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many mailboxes have state here.
    pub fn tracked(&self) -> usize {
        self.gates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_mailbox
            .len()
    }

    fn gate(&self, mailbox: &str) -> Arc<Gate> {
        let mut gates = self.gates.lock().unwrap_or_else(PoisonError::into_inner);
        if gates.by_mailbox.len() >= gates.sweep_at {
            let now = Instant::now();
            let policy = self.policy;
            gates.by_mailbox.retain(|_, gate| !gate.idle(&policy, now));
            gates.sweep_at = (gates.by_mailbox.len() * 2).max(SWEEP_FLOOR);
        }
        Arc::clone(
            gates
                .by_mailbox
                .entry(mailbox.to_ascii_lowercase())
                .or_insert_with(|| {
                    Arc::new(Gate {
                        permits: Arc::new(Semaphore::new(self.policy.concurrent.max(1))),
                        bucket: Mutex::new(Bucket {
                            tokens: f64::from(self.policy.capacity()),
                            updated: Instant::now(),
                            paused_until: None,
                        }),
                    })
                }),
        )
    }

    /// Waits until `cost` requests may be sent to `mailbox` and one concurrent slot is free; but
    /// when a server asked every caller of `mailbox` to wait longer than `max_wait`, answers at
    /// once with how long that is left instead of waiting.
    pub async fn acquire_within(
        &self,
        mailbox: &str,
        cost: u32,
        max_wait: Duration,
    ) -> Result<Permit, Duration> {
        let gate = self.gate(mailbox);
        let rate = self.policy.per_second();
        let capacity = f64::from(self.policy.capacity().max(cost));
        loop {
            let wait = {
                let mut b = gate.bucket.lock().unwrap_or_else(PoisonError::into_inner);
                let now = Instant::now();
                let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
                b.tokens = (b.tokens + elapsed * rate).min(capacity);
                b.updated = now;
                match b.paused_until {
                    Some(until) if until > now && until - now > max_wait => {
                        return Err(until - now);
                    }
                    Some(until) if until > now => until - now,
                    // Refills are sums of small floats: a bucket a rounding error short of
                    // `cost` is full, or it would wait for nothing, forever.
                    _ if b.tokens + 1e-9 >= f64::from(cost) => {
                        b.tokens = (b.tokens - f64::from(cost)).max(-1e-9);
                        Duration::ZERO
                    }
                    // Whole milliseconds, rounded up: the timer's resolution, so the sleep
                    // always lets time pass.
                    _ => Duration::from_millis(
                        ((f64::from(cost) - b.tokens) / rate.max(f64::EPSILON) * 1000.0)
                            .ceil()
                            .clamp(1.0, 86_400_000.0) as u64,
                    ),
                }
            };
            if wait.is_zero() {
                break;
            }
            tokio::time::sleep(wait).await;
        }
        // The semaphore is never closed, so acquiring cannot fail.
        let slot = Arc::clone(&gate.permits)
            .acquire_owned()
            .await
            .unwrap_or_else(|_| unreachable!("governor semaphores are never closed"));
        Ok(Permit { _slot: slot })
    }

    /// The server asked to wait: no request to `mailbox` starts before `wait` has passed.
    /// A wait beyond [`crate::net::MAX_HINT`] counts as that long (no overflow on any hint).
    pub fn back_off(&self, mailbox: &str, wait: Duration) {
        self.back_offs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let gate = self.gate(mailbox);
        let mut b = gate.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let until = now
            .checked_add(wait.min(crate::net::MAX_HINT))
            .unwrap_or(now);
        if b.paused_until.is_none_or(|p| p < until) {
            b.paused_until = Some(until);
        }
        tracing::info!(
            mailbox,
            wait_ms = wait.as_millis() as u64,
            "server asked to back off"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn at_most_four_in_flight_per_mailbox() {
        let gov = Governor::new(GovernorPolicy {
            requests: 1_000_000,
            ..GovernorPolicy::default()
        });
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (gov, in_flight, peak) =
                    (Arc::clone(&gov), Arc::clone(&in_flight), Arc::clone(&peak));
                tokio::spawn(async move {
                    let _p = gov
                        .acquire_within("adele@contoso.com", 1, Duration::MAX)
                        .await
                        .unwrap();
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        // Another mailbox is not held up by the first.
        let other = gov
            .acquire_within("megan@contoso.com", 1, Duration::MAX)
            .await
            .unwrap();
        drop(other);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_paces_requests_to_the_allowed_rate() {
        // 100 requests per 10 s, burst 20: the bucket refills at (100 - 20) / 10 s = 8 per
        // second, so 220 requests need (220 - 20) / 8 = 25 s.
        let gov = Governor::new(GovernorPolicy {
            concurrent: 4,
            requests: 100,
            window: Duration::from_secs(10),
            burst: 20,
        });
        let start = Instant::now();
        for _ in 0..220 {
            drop(gov.acquire_within("a", 1, Duration::MAX).await.unwrap());
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(25) && took < Duration::from_millis(25_100),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_hint_pauses_every_caller_of_that_mailbox() {
        let gov = Governor::new(GovernorPolicy::default());
        gov.back_off("a", Duration::from_secs(7));
        let start = Instant::now();
        drop(gov.acquire_within("b", 1, Duration::MAX).await.unwrap());
        assert_eq!(start.elapsed(), Duration::ZERO);
        drop(gov.acquire_within("A", 1, Duration::MAX).await.unwrap());
        assert_eq!(start.elapsed(), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_longer_than_the_cap_answers_at_once_and_hostile_hints_do_not_overflow() {
        let gov = Governor::new(GovernorPolicy::default());
        gov.back_off("a", Duration::MAX);
        let start = Instant::now();
        let left = gov
            .acquire_within("a", 1, Duration::from_secs(60))
            .await
            .unwrap_err();
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(left, crate::net::MAX_HINT);
        // Within the cap, the caller waits for the pause to end.
        gov.back_off("b", Duration::from_secs(30));
        drop(
            gov.acquire_within("b", 1, Duration::from_secs(60))
                .await
                .unwrap(),
        );
        assert_eq!(start.elapsed(), Duration::from_secs(30));
    }

    /// xorshift64*: reproducible random arrival patterns without a dependency.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
        }
    }

    /// Property: whatever the arrivals (bursts, trickles, mixed costs up to the burst), no
    /// window of the policy's length, starting anywhere, holds more than `requests` — and a
    /// caller that keeps asking gets close to the whole allowance.
    #[tokio::test(start_paused = true)]
    async fn no_window_anywhere_exceeds_the_policy_for_random_arrivals() {
        for seed in 1..=60u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let requests = 10 + rng.below(60) as u32;
            let window = Duration::from_millis(1_000 + rng.below(9_000));
            let burst = 1 + rng.below(u64::from(requests / 2)) as u32;
            let gov = Governor::new(GovernorPolicy {
                concurrent: 1_000,
                requests,
                window,
                burst,
            });
            let start = Instant::now();
            let admitted = Arc::new(Mutex::new(Vec::new()));
            let tasks: Vec<_> = (0..u64::from(requests) * 3)
                .map(|_| {
                    let offset = Duration::from_millis(rng.below(window.as_millis() as u64 * 3));
                    let cost = 1 + rng.below(u64::from(gov.policy().capacity())) as u32;
                    let (gov, admitted) = (Arc::clone(&gov), Arc::clone(&admitted));
                    tokio::spawn(async move {
                        tokio::time::sleep(offset).await;
                        let permit = gov.acquire_within("m", cost, Duration::MAX).await.unwrap();
                        admitted.lock().unwrap().push((start.elapsed(), cost));
                        drop(permit);
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            let mut admitted = admitted.lock().unwrap().clone();
            admitted.sort();
            for (i, (at, _)) in admitted.iter().enumerate() {
                let in_window: u32 = admitted[i..]
                    .iter()
                    .take_while(|(t, _)| *t < *at + window)
                    .map(|(_, c)| c)
                    .sum();
                assert!(
                    in_window <= requests,
                    "seed {seed}: {in_window} requests in the window from {at:?} \
                     (policy {requests} per {window:?}, burst {burst})"
                );
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_caller_gets_nearly_the_whole_allowance() {
        let policy = GovernorPolicy::default();
        let gov = Governor::new(policy);
        let start = Instant::now();
        let mut sent = 0u32;
        while start.elapsed() < policy.window * 3 {
            drop(gov.acquire_within("m", 1, Duration::MAX).await.unwrap());
            sent += 1;
        }
        // Three windows' worth: 30,000 allowed; the burst's share of the rate is 0.2%.
        assert!(sent <= 3 * policy.requests, "{sent}");
        assert!(sent >= 3 * policy.requests * 997 / 1000, "{sent}");
    }

    #[tokio::test(start_paused = true)]
    async fn state_of_idle_mailboxes_is_swept_and_busy_ones_are_kept() {
        let gov = Governor::new(GovernorPolicy::default());
        // A mailbox in use (a slot held) and one paused by its server survive every sweep.
        let held = gov
            .acquire_within("busy@contoso.com", 1, Duration::MAX)
            .await
            .unwrap();
        gov.back_off("paused@contoso.com", Duration::from_secs(3600));
        for i in 0..20_000 {
            drop(
                gov.acquire_within(&format!("user{i}@contoso.com"), 1, Duration::MAX)
                    .await
                    .unwrap(),
            );
            if i % 1000 == 0 {
                // Long enough for every bucket to be full again.
                tokio::time::advance(Duration::from_secs(5)).await;
            }
        }
        assert!(gov.tracked() <= 2 * SWEEP_FLOOR + 2, "{}", gov.tracked());
        let gates = gov.gates.lock().unwrap();
        assert!(gates.by_mailbox.contains_key("busy@contoso.com"));
        assert!(gates.by_mailbox.contains_key("paused@contoso.com"));
        drop(gates);
        drop(held);
    }
}
