//! Outlook throttling per app and mailbox: a concurrency limit and a request budget over a
//! sliding window, as Exchange Online enforces for Graph's mail, calendar and contacts.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use std::time::Instant;

use super::error::{GraphError, graph_errors};

/// Limits per (app, mailbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Requests in progress at once.
    pub concurrent: u32,
    /// Requests per `window`.
    pub requests: u32,
    pub window: Duration,
}

impl ThrottlePolicy {
    /// Exchange Online's limits for Outlook resources in Graph: 4 concurrent requests and
    /// 10,000 requests per 10 minutes per app and mailbox.
    pub const fn microsoft() -> Self {
        Self {
            concurrent: 4,
            requests: 10_000,
            window: Duration::from_secs(600),
        }
    }

    /// Microsoft's policy with the window divided by `scale` (and the budget with it): 100
    /// gives 100 requests per 6 seconds, still 4 concurrent.
    pub fn scaled(scale: u32) -> Self {
        let scale = scale.max(1);
        let policy = Self::microsoft();
        Self {
            concurrent: policy.concurrent,
            requests: (policy.requests / scale).max(1),
            window: policy.window / scale,
        }
    }
}

#[derive(Debug, Default)]
struct Bucket {
    in_flight: usize,
    accepted: VecDeque<Instant>,
}

#[derive(Debug, Default)]
struct Inner {
    policy: Option<ThrottlePolicy>,
    /// By (lower-case app ID, lower-case mailbox).
    buckets: HashMap<(String, String), Bucket>,
    /// Requests in progress per mailbox (every app, rejected ones included while rejected).
    mailbox_in_flight: HashMap<String, usize>,
    max_seen: HashMap<String, usize>,
    /// Requests refused by the policy per mailbox (every app; injected faults not counted).
    refused: HashMap<String, usize>,
}

/// The shared throttle state.
#[derive(Debug, Clone, Default)]
pub(crate) struct Throttle {
    inner: Arc<Mutex<Inner>>,
}

/// A request's slot: released when dropped (also when the client goes away mid-request).
#[derive(Debug)]
pub(crate) struct Slot {
    inner: Arc<Mutex<Inner>>,
    key: (String, String),
    counted: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if self.counted
            && let Some(bucket) = inner.buckets.get_mut(&self.key)
        {
            bucket.in_flight = bucket.in_flight.saturating_sub(1);
        }
        if let Some(n) = inner.mailbox_in_flight.get_mut(&self.key.1) {
            *n = n.saturating_sub(1);
        }
    }
}

impl Throttle {
    pub(crate) fn set_policy(&self, policy: Option<ThrottlePolicy>) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.policy = policy;
        inner.buckets.clear();
    }

    pub(crate) fn max_seen(&self, mailbox: &str) -> usize {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .max_seen
            .get(&mailbox.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn refused(&self, mailbox: &str) -> usize {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .refused
            .get(&mailbox.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// Admits a request of `app` to `mailbox`, or answers the 429 Exchange would.
    pub(crate) fn acquire(&self, app: &str, mailbox: &str) -> Result<Slot, GraphError> {
        self.acquire_at(app, mailbox, Instant::now())
    }

    fn acquire_at(&self, app: &str, mailbox: &str, now: Instant) -> Result<Slot, GraphError> {
        let key = (app.to_ascii_lowercase(), mailbox.to_ascii_lowercase());
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let in_flight = inner.mailbox_in_flight.entry(key.1.clone()).or_default();
        *in_flight += 1;
        let seen = *in_flight;
        let max = inner.max_seen.entry(key.1.clone()).or_default();
        *max = (*max).max(seen);
        let verdict = match inner.policy {
            None => Ok(false),
            Some(policy) => admit(inner.buckets.entry(key.clone()).or_default(), policy, now),
        };
        match verdict {
            Ok(counted) => Ok(Slot {
                inner: Arc::clone(&self.inner),
                key,
                counted,
            }),
            Err(e) => {
                if let Some(n) = inner.mailbox_in_flight.get_mut(&key.1) {
                    *n = n.saturating_sub(1);
                }
                *inner.refused.entry(key.1).or_default() += 1;
                Err(e)
            }
        }
    }
}

/// Counts the request in `bucket` (`Ok(true)`), or refuses it.
fn admit(bucket: &mut Bucket, policy: ThrottlePolicy, now: Instant) -> Result<bool, GraphError> {
    while bucket
        .accepted
        .front()
        .is_some_and(|t| now.duration_since(*t) >= policy.window)
    {
        bucket.accepted.pop_front();
    }
    if bucket.in_flight >= usize::try_from(policy.concurrent).unwrap_or(usize::MAX) {
        return Err(graph_errors::throttled_concurrency());
    }
    if bucket.accepted.len() >= usize::try_from(policy.requests).unwrap_or(usize::MAX) {
        let wait = bucket.accepted.front().map_or(policy.window, |oldest| {
            policy.window.saturating_sub(now.duration_since(*oldest))
        });
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        return Err(graph_errors::throttled_rate(secs.max(1)));
    }
    bucket.in_flight += 1;
    bucket.accepted.push_back(now);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_and_rate_limits_answer_429_with_retry_after() {
        let t0 = Instant::now();
        let throttle = Throttle::default();
        throttle.set_policy(Some(ThrottlePolicy {
            concurrent: 2,
            requests: 3,
            window: Duration::from_secs(60),
        }));
        let a = throttle.acquire_at("app", "Adele@x", t0).unwrap();
        let b = throttle.acquire_at("app", "adele@x", t0).unwrap();
        let refused = throttle.acquire_at("app", "adele@x", t0).unwrap_err();
        assert_eq!(refused.retry_after, Some(1));
        assert!(refused.message.contains("MailboxConcurrency"));
        // Another app has its own budget.
        drop(throttle.acquire_at("other", "adele@x", t0).unwrap());
        assert_eq!(throttle.max_seen("adele@x"), 3);
        assert_eq!(throttle.refused("ADELE@x"), 1);
        drop((a, b));
        drop(throttle.acquire_at("app", "adele@x", t0).unwrap());
        let over = throttle
            .acquire_at("app", "adele@x", t0 + Duration::from_secs(20))
            .unwrap_err();
        assert!(over.message.contains("ResourceUnitLimit"));
        assert!(
            matches!(over.retry_after, Some(40 | 41)),
            "{:?}",
            over.retry_after
        );
        assert!(
            throttle
                .acquire_at("app", "adele@x", t0 + Duration::from_secs(61))
                .is_ok()
        );
        assert_eq!(ThrottlePolicy::scaled(100).requests, 100);
        assert_eq!(ThrottlePolicy::scaled(100).window, Duration::from_secs(6));
    }
}
