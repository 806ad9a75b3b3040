//! The per-mailbox budget several gateway instances share: leases of it, kept in a [`Ledger`]
//! per (governor, mailbox) that a [`SharedBudget`] stores (a PostgreSQL row, or memory in tests).
//!
//! An instance asks for a **lease** of `k` requests of a mailbox's window, then spends it locally,
//! without I/O, until it runs out or its term ends (`lease`, a tenth of the window, at most 10 s).
//! The ledger counts a lease from its grant until its term plus the window plus the margin has
//! passed, and grants a new one only if it and every lease still counted come to at most
//! `requests`. Whatever window `[a, a + window)` one looks at, every lease spent in it was
//! granted before `a + window` and ended after `a`, so the last of them to be granted still
//! counted all the others: no window holds more than `requests`, whichever instance sent what.
//! Times are the ledger's (the database's clock); an instance ends a lease a term after it *sent*
//! its request for it, which is never later than the ledger's end, so no clock needs to agree
//! with another (only to run at the same rate).
//!
//! A lease ended early (its holder is done with it, or wants a new one) is **settled**: it is then
//! counted as what was spent, ending when it was settled. A holder that dies with a lease leaves
//! it counted whole until its term and the window have passed: at most `lease + window + margin`
//! after it was granted, never longer.
//!
//! **Concurrency** is shared the same way: a holder holds `n` of the mailbox's `concurrent`
//! slots for a term (at least 2 s, so a busy machine's late renewal does not lose them), renewed
//! while it uses them; a holder asks for the slots its callers need and
//! gets what the others leave free; when others wait, the ledger tells each holder its fair
//! share, and a holder above it gives slots back as its requests finish. A dead holder's slots
//! lapse at the end of their term.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::store::StoreError;

/// The policy a ledger applies, in microseconds: every instance sends its own (they should
/// agree; each grant follows the terms of the instance that asks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    pub requests: u32,
    pub concurrent: u32,
    pub window_us: i64,
    pub margin_us: i64,
    /// How long a lease lasts.
    pub lease_us: i64,
    /// How long a slot holding lasts unless renewed.
    pub slots_us: i64,
}

/// What a holder asks in one exchange with the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ask {
    /// The holder (one per governor and process).
    pub holder: u128,
    /// Leases the holder is done with: (lease ID, requests spent).
    pub settle: Vec<(u64, u32)>,
    /// How many requests the holder would like in a new lease (0: no lease wanted).
    pub lease: u32,
    /// The fewest it can use (the waiting request's cost).
    pub lease_min: u32,
    /// Slots the holder wants to hold (in use, plus callers waiting).
    pub slots_wanted: u32,
    /// Slots in use: never taken back.
    pub slots_in_use: u32,
}

/// The ledger's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// The ledger's time when it answered.
    pub now_us: i64,
    /// A new lease: (ID, requests, end).
    pub lease: Option<(u64, u32, i64)>,
    /// No lease could be granted: how long until one of `lease_min` fits.
    pub wait_us: i64,
    /// Slots now held, until `slots_until_us`.
    pub slots: u32,
    pub slots_until_us: i64,
    /// How many slots this holder should keep while others wait (`concurrent` when none does).
    pub share: u32,
}

/// A lease not yet settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Open {
    holder: u128,
    id: u64,
    until: i64,
    amount: u32,
}

/// One mailbox's shared state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// Leases still being spent.
    #[serde(default)]
    open: Vec<Open>,
    /// Ended leases still in the window: (end, requests), grouped by a 100th of the window.
    #[serde(default)]
    ended: Vec<(i64, u32)>,
    /// Slots held: (holder, slots, until).
    #[serde(default)]
    slots: Vec<(u128, u32, i64)>,
    /// Holders waiting for slots: (holder, slots wanted, until).
    #[serde(default)]
    wants: Vec<(u128, u32, i64)>,
    #[serde(default)]
    next_id: u64,
}

impl Ledger {
    /// Nothing is counted or held: the ledger can be forgotten.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
            && self.ended.is_empty()
            && self.slots.is_empty()
            && self.wants.is_empty()
    }

    /// Requests counted in the window at `now`.
    pub fn counted(&self) -> u64 {
        self.open.iter().map(|o| u64::from(o.amount)).sum::<u64>()
            + self.ended.iter().map(|(_, a)| u64::from(*a)).sum::<u64>()
    }

    fn end(&mut self, terms: &Terms, until: i64, amount: u32) {
        if amount == 0 {
            return;
        }
        let group = (terms.window_us / 100).max(1);
        // Grouped with an ended lease that ends within a group of it, at the later end: counted
        // as long or longer, never shorter.
        if let Some(e) = self
            .ended
            .iter_mut()
            .find(|(t, _)| (t - until).abs() < group)
        {
            e.0 = e.0.max(until);
            e.1 = e.1.saturating_add(amount);
            return;
        }
        self.ended.push((until, amount));
    }

    /// One exchange: settles, forgets what left the window, grants a lease and slots.
    pub fn exchange(&mut self, terms: &Terms, ask: &Ask, now: i64) -> Reply {
        let keep = terms.window_us.saturating_add(terms.margin_us);
        // Leases whose term has ended are counted whole from now on.
        let mut still = Vec::with_capacity(self.open.len());
        for o in std::mem::take(&mut self.open) {
            if let Some((_, spent)) = ask
                .settle
                .iter()
                .find(|(id, _)| o.holder == ask.holder && *id == o.id)
            {
                self.end(terms, o.until.min(now), (*spent).min(o.amount));
            } else if o.until <= now {
                self.end(terms, o.until, o.amount);
            } else {
                still.push(o);
            }
        }
        self.open = still;
        self.ended
            .retain(|(until, _)| until.saturating_add(keep) > now);
        let mut reply = Reply {
            now_us: now,
            ..Reply::default()
        };
        if ask.lease > 0 {
            let need = ask.lease_min.max(1);
            let allowed = u64::from(terms.requests.max(need));
            let counted = self.counted();
            if counted + u64::from(need) <= allowed {
                let amount = u64::from(ask.lease)
                    .max(u64::from(need))
                    .min(allowed - counted);
                let amount = u32::try_from(amount).unwrap_or(u32::MAX);
                let id = self.next_id;
                self.next_id += 1;
                let until = now.saturating_add(terms.lease_us);
                self.open.push(Open {
                    holder: ask.holder,
                    id,
                    until,
                    amount,
                });
                reply.lease = Some((id, amount, until));
            } else {
                // When enough has left the window: the ended leases in the order they leave,
                // then the open ones (after their term).
                let mut leaving: Vec<(i64, u32)> = self
                    .ended
                    .iter()
                    .copied()
                    .chain(self.open.iter().map(|o| (o.until, o.amount)))
                    .map(|(until, a)| (until.saturating_add(keep), a))
                    .collect();
                leaving.sort_unstable();
                let mut left = counted;
                reply.wait_us = terms.window_us;
                for (at, a) in leaving {
                    left -= u64::from(a);
                    if left + u64::from(need) <= allowed {
                        reply.wait_us = (at - now).max(1);
                        break;
                    }
                }
            }
        }
        self.slots.retain(|(_, n, until)| *n > 0 && *until > now);
        self.wants
            .retain(|(h, _, until)| *h != ask.holder && *until > now);
        let others: u32 = self
            .slots
            .iter()
            .filter(|(h, _, _)| *h != ask.holder)
            .map(|(_, n, _)| *n)
            .sum();
        let wanted = ask.slots_wanted.min(terms.concurrent.max(1));
        let free = terms.concurrent.max(1).saturating_sub(others);
        let held = wanted.min(free).max(ask.slots_in_use);
        self.slots.retain(|(h, _, _)| *h != ask.holder);
        let until = now.saturating_add(terms.slots_us);
        if held > 0 {
            self.slots.push((ask.holder, held, until));
        }
        if held < wanted {
            self.wants.push((ask.holder, wanted, until));
        }
        reply.slots = held;
        reply.slots_until_us = until;
        reply.share = self.share(terms, ask.holder);
        reply
    }

    /// The holder's fair share of the slots while another holder waits for one; else all.
    fn share(&self, terms: &Terms, holder: u128) -> u32 {
        let concurrent = terms.concurrent.max(1);
        if !self.wants.iter().any(|(h, _, _)| *h != holder) {
            return concurrent;
        }
        let mut holders: Vec<u128> = self
            .slots
            .iter()
            .map(|(h, _, _)| *h)
            .chain(self.wants.iter().map(|(h, _, _)| *h))
            .chain(std::iter::once(holder))
            .collect();
        holders.sort_unstable();
        holders.dedup();
        let n = u32::try_from(holders.len()).unwrap_or(u32::MAX).max(1);
        let rank = holders.iter().position(|h| *h == holder).unwrap_or(0);
        let extra = usize::try_from(concurrent % n).unwrap_or(0);
        (concurrent / n + u32::from(rank < extra)).max(1)
    }
}

/// Where ledgers live: shared by every instance that should keep one policy together.
#[async_trait]
pub trait SharedBudget: Send + Sync + Debug {
    /// Runs [`Ledger::exchange`] on the ledger of (`scope`, `mailbox`) atomically, on the
    /// budget's clock.
    async fn exchange(
        &self,
        scope: &str,
        mailbox: &str,
        terms: &Terms,
        ask: &Ask,
    ) -> Result<Reply, StoreError>;
}

/// Ledgers in memory, on tokio's clock: for several governors in one process (tests).
#[derive(Debug)]
pub struct MemoryBudget {
    start: tokio::time::Instant,
    ledgers: Mutex<HashMap<(String, String), Ledger>>,
}

impl Default for MemoryBudget {
    fn default() -> Self {
        Self {
            start: tokio::time::Instant::now(),
            ledgers: Mutex::new(HashMap::new()),
        }
    }
}

impl MemoryBudget {
    /// How many mailboxes have a ledger.
    pub fn ledgers(&self) -> usize {
        self.ledgers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[async_trait]
impl SharedBudget for MemoryBudget {
    async fn exchange(
        &self,
        scope: &str,
        mailbox: &str,
        terms: &Terms,
        ask: &Ask,
    ) -> Result<Reply, StoreError> {
        let now = i64::try_from(self.start.elapsed().as_micros()).unwrap_or(i64::MAX);
        let mut ledgers = self.ledgers.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (scope.to_owned(), mailbox.to_owned());
        let ledger = ledgers.entry(key.clone()).or_default();
        let reply = ledger.exchange(terms, ask, now);
        if ledger.is_empty() {
            ledgers.remove(&key);
        }
        Ok(reply)
    }
}

/// Microseconds of a duration, saturated.
pub(crate) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms() -> Terms {
        Terms {
            requests: 10,
            concurrent: 4,
            window_us: 1_000_000,
            margin_us: 10_000,
            lease_us: 100_000,
            slots_us: 200_000,
        }
    }

    fn ask(holder: u128, lease: u32) -> Ask {
        Ask {
            holder,
            lease,
            lease_min: 1,
            ..Ask::default()
        }
    }

    #[test]
    fn leases_never_grant_more_than_the_window_holds_and_settled_ones_give_back() {
        let t = terms();
        let mut l = Ledger::default();
        let a = l.exchange(&t, &ask(1, 6), 0);
        assert_eq!(a.lease.map(|(_, n, _)| n), Some(6));
        let b = l.exchange(&t, &ask(2, 6), 10);
        assert_eq!(b.lease.map(|(_, n, _)| n), Some(4), "only what is left");
        let c = l.exchange(&t, &ask(3, 1), 20);
        assert_eq!(c.lease, None);
        // The first lease ends at 100 ms and leaves the window 1.01 s later.
        assert_eq!(c.wait_us, 100_000 + 1_010_000 - 20);
        // Holder 1 spent 2 of its 6: the other 4 come back at once.
        let (id, _, _) = a.lease.unwrap();
        let mut settle = ask(1, 3);
        settle.settle = vec![(id, 2)];
        let d = l.exchange(&t, &settle, 30);
        assert_eq!(d.lease.map(|(_, n, _)| n), Some(3));
        // Everything leaves the window after the terms, the window and the margin.
        let e = l.exchange(&t, &ask(3, 10), 30 + 100_000 + 1_010_000);
        assert_eq!(e.lease.map(|(_, n, _)| n), Some(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_ledger_is_forgotten_once_nothing_is_counted() {
        let t = terms();
        let budget = MemoryBudget::default();
        let mut a = ask(1, 5);
        a.slots_wanted = 1;
        let r = budget.exchange("graph", "m", &t, &a).await.unwrap();
        assert_eq!((r.lease.map(|(_, n, _)| n), r.slots), (Some(5), 1));
        assert_eq!(budget.ledgers(), 1);
        // The lease's term, the window and the margin; the slots' term.
        tokio::time::advance(Duration::from_micros(
            (t.lease_us + t.window_us + t.margin_us).max(t.slots_us) as u64,
        ))
        .await;
        let r = budget
            .exchange(
                "graph",
                "m",
                &t,
                &Ask {
                    holder: 2,
                    ..Ask::default()
                },
            )
            .await
            .unwrap();
        assert_eq!((r.lease, r.slots), (None, 0));
        assert_eq!(budget.ledgers(), 0);
    }

    #[test]
    fn slots_are_shared_and_a_waiting_holder_gets_its_share() {
        let t = terms();
        let mut l = Ledger::default();
        let slots = |holder, wanted, in_use| Ask {
            holder,
            slots_wanted: wanted,
            slots_in_use: in_use,
            ..Ask::default()
        };
        let a = l.exchange(&t, &slots(1, 4, 0), 0);
        assert_eq!((a.slots, a.share), (4, 4));
        let b = l.exchange(&t, &slots(2, 2, 0), 1);
        assert_eq!(b.slots, 0);
        // Holder 1 is told to keep its share (two of four between two holders).
        let a = l.exchange(&t, &slots(1, 4, 4), 2);
        assert_eq!((a.slots, a.share), (4, 2));
        let a = l.exchange(&t, &slots(1, 2, 2), 3);
        assert_eq!(a.slots, 2);
        let b = l.exchange(&t, &slots(2, 2, 0), 4);
        assert_eq!(b.slots, 2);
        // A holder that stops renewing loses its slots at the end of their term.
        let c = l.exchange(&t, &slots(3, 4, 0), 4 + t.slots_us);
        assert_eq!(c.slots, 4);
        assert!(!l.is_empty());
        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(serde_json::from_str::<Ledger>(&json).unwrap(), l);
    }
}
