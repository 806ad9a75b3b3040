//! EWS throttling per mailbox: a concurrency limit (EWSMaxConcurrency) and a budget of
//! requests per window on the mock's clock. Past the concurrency limit Exchange answers
//! `ErrorExceededConnectionCount`; past the budget `ErrorServerBusy` with
//! `BackOffMilliseconds` until the window ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use time::OffsetDateTime;

use super::soap::EwsError;
use super::switches::EwsThrottlePolicy;

#[derive(Debug, Default)]
struct PerMailbox {
    in_flight: usize,
    max_seen: usize,
    window_start: Option<OffsetDateTime>,
    used: u32,
    /// Requests refused by the policy (over the concurrency limit or the budget).
    refused: usize,
}

#[derive(Debug, Default)]
struct Inner {
    policy: Option<EwsThrottlePolicy>,
    mailboxes: HashMap<String, PerMailbox>,
}

/// The throttle of one EWS mock. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Throttle {
    inner: Arc<Mutex<Inner>>,
}

/// A request's slot; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Slot {
    inner: Arc<Mutex<Inner>>,
    mailbox: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(m) = inner.mailboxes.get_mut(&self.mailbox) {
            m.in_flight = m.in_flight.saturating_sub(1);
        }
    }
}

impl Throttle {
    pub(crate) fn set_policy(&self, policy: Option<EwsThrottlePolicy>) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.policy = policy;
        for m in inner.mailboxes.values_mut() {
            m.window_start = None;
            m.used = 0;
        }
    }

    pub(crate) fn max_seen(&self, mailbox: &str) -> usize {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .mailboxes
            .get(&mailbox.to_ascii_lowercase())
            .map_or(0, |m| m.max_seen)
    }

    /// How many requests for `mailbox` the policy refused so far.
    pub(crate) fn refused(&self, mailbox: &str) -> usize {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .mailboxes
            .get(&mailbox.to_ascii_lowercase())
            .map_or(0, |m| m.refused)
    }

    /// Takes a slot for a request to `mailbox` at `now`, or the error Exchange answers.
    pub(crate) fn acquire(&self, mailbox: &str, now: OffsetDateTime) -> Result<Slot, EwsError> {
        let key = mailbox.to_ascii_lowercase();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let policy = inner.policy;
        let m = inner.mailboxes.entry(key.clone()).or_default();
        m.max_seen = m.max_seen.max(m.in_flight + 1);
        if let Some(p) = policy {
            if m.in_flight >= p.max_concurrency {
                m.refused += 1;
                return Err(EwsError::new(
                    "ErrorExceededConnectionCount",
                    "You have exceeded the available concurrent connections for your account.  Try again once your other requests have completed.",
                ));
            }
            let window = time::Duration::seconds(i64::try_from(p.window_secs).unwrap_or(i64::MAX));
            let start = match m.window_start {
                Some(s) if s.checked_add(window).is_none_or(|end| now < end) => s,
                _ => {
                    m.used = 0;
                    m.window_start = Some(now);
                    now
                }
            };
            if m.used >= p.budget {
                m.refused += 1;
                let end = start.checked_add(window).unwrap_or(start);
                let left = (end - now).whole_milliseconds().max(1);
                return Err(EwsError::server_busy(u64::try_from(left).unwrap_or(1)));
            }
            m.used += 1;
        }
        m.in_flight += 1;
        Ok(Slot {
            inner: Arc::clone(&self.inner),
            mailbox: key,
        })
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn concurrency_and_budget_are_enforced_per_mailbox_and_window() {
        let t = Throttle::default();
        let now = datetime!(2026-11-02 09:00 UTC);
        let _free: Vec<Slot> = (0..40).map(|_| t.acquire("a@x", now).unwrap()).collect();
        t.set_policy(Some(EwsThrottlePolicy {
            max_concurrency: 41,
            budget: 3,
            window_secs: 60,
        }));
        let one = t.acquire("a@x", now).unwrap();
        assert_eq!(
            t.acquire("a@x", now).unwrap_err().code,
            "ErrorExceededConnectionCount"
        );
        drop(one);
        drop(t.acquire("a@x", now).unwrap());
        drop(t.acquire("a@x", now).unwrap());
        let busy = t
            .acquire("a@x", now + time::Duration::seconds(20))
            .unwrap_err();
        assert_eq!(busy.code, "ErrorServerBusy");
        assert!(busy.message_xml.unwrap().contains(">40000<"));
        assert!(
            t.acquire("b@x", now).is_ok(),
            "another mailbox has its own budget"
        );
        assert!(t.acquire("a@x", now + time::Duration::seconds(60)).is_ok());
        assert_eq!(t.max_seen("A@x"), 42);
        assert_eq!(
            t.refused("A@x"),
            2,
            "one over the concurrency, one over the budget"
        );
        assert_eq!(t.refused("b@x"), 0);
    }
}
