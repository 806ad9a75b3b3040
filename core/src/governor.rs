//! Per-mailbox concurrency and request budget, shared by every caller in the process.
//!
//! Microsoft limits each app to 4 concurrent requests and 10,000 requests per 10 minutes per
//! mailbox (DESIGN.md §2). The governor keeps every caller within that: a semaphore per mailbox,
//! and two checks before each request.
//!
//! - **The window** (the bound): what was sent in the last window is remembered, and a request is
//!   let through only if it and everything sent in the window before it come to at most
//!   `requests`. So over any window, sliding, not only aligned ones, at most `requests` go out:
//!   the policy is never exceeded. Requests let through within a short span are remembered
//!   together, at the latest one's time (a group expires when its last request does, never
//!   earlier), and a request is forgotten only a little after the window
//!   ([`GovernorPolicy::margin`], a 500th of it), so that a request that reaches the server late
//!   does not meet, in the server's window, one that reached it early. Both only ever count
//!   more, never less.
//! - **The pace** (smoothness): a token bucket refilled at `requests / window` that lets `burst`
//!   requests go at once before pacing starts, so a caller spreads its requests over the window
//!   instead of spending it in one go. The pace never decides the bound, so the bucket keeps room
//!   for the waiting request's cost above `burst`: a caller that wakes a little late (timers
//!   have millisecond resolution, and a busy machine is later) finds its tokens there instead of
//!   losing them to a full bucket. A steady caller gets the whole allowance less the margin, not
//!   the 2 to 7% less that late wake-ups cost a bucket capped at the burst.
//!
//! A request costing more than `requests` (a batch larger than the whole policy) goes alone,
//! when nothing else is in the window, and exceeds that window by its excess. A server's
//! back-off hint (`Retry-After`, `BackOffMilliseconds`) pauses every caller of that mailbox until
//! it has passed.
//!
//! **Several instances** (gateways on one PostgreSQL) keep one policy together with
//! [`Governor::shared`]: on top of the local checks, each request is paid from a lease of the
//! mailbox's window taken from a [`SharedBudget`], and slots are held in it (see [`shared`]).
//! The hot path stays in memory: an instance asks the budget only when its lease is spent or
//! ends, or when it needs more slots than it holds. The pace and the servers' back-off hints stay
//! per instance. A single instance (SQLite, memory) uses [`Governor::new`]: no I/O at all.
//!
//! Time is tokio's, so tests can pause it.

pub mod shared;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use shared::{Ask, Terms, micros};
pub use shared::{MemoryBudget, SharedBudget};

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

    /// The pace: the whole allowance spread over the window (the window bounds it).
    fn per_second(&self) -> f64 {
        f64::from(self.requests.max(1)) / self.window.as_secs_f64().max(f64::EPSILON)
    }

    /// How long after the window a request is still counted: a 500th of the window (1.2 s of
    /// Graph's 10 minutes), at least 10 ms. It covers the difference between how long two
    /// requests take to reach the server, so the server's window never holds more than ours.
    pub fn margin(&self) -> Duration {
        (self.window / 500).max(Duration::from_millis(10))
    }

    /// Requests let through within this span of a group's first are remembered with that group,
    /// at the latest one's time: a 1000th of the window, so about 1,000 groups at most are
    /// remembered per mailbox, whatever its rate.
    fn group_span(&self) -> Duration {
        self.window / 1000
    }

    /// The term of a lease of a shared budget and of slots held in it: a tenth of the window,
    /// from 10 ms to 10 s. An instance that dies holding a lease blocks it for at most this,
    /// the window and the margin.
    pub fn lease_term(&self) -> Duration {
        (self.window / 10).clamp(Duration::from_millis(10), Duration::from_secs(10))
    }

    /// The term of slots held in a shared budget: the lease's, at least 2 s, renewed every
    /// third of the lease's term while used. A dead instance's slots lapse after it.
    pub fn slot_term(&self) -> Duration {
        self.lease_term().max(Duration::from_secs(2))
    }

    /// Requests asked for in one lease: what the pace spends in a term, at most half the window.
    fn lease_size(&self) -> u32 {
        let per_term = (f64::from(self.requests) * self.lease_term().as_secs_f64()
            / self.window.as_secs_f64().max(f64::EPSILON))
        .ceil();
        (per_term as u32).clamp(1, (self.requests / 2).max(1))
    }

    fn terms(&self) -> Terms {
        Terms {
            requests: self.requests,
            concurrent: u32::try_from(self.concurrent.max(1)).unwrap_or(u32::MAX),
            window_us: micros(self.window),
            margin_us: micros(self.margin()),
            lease_us: micros(self.lease_term()),
            slots_us: micros(self.slot_term()),
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    paused_until: Option<Instant>,
    /// What was sent within the last window and margin, oldest first, in groups: (the time of
    /// the group's first request, of its last, the group's cost).
    sent: VecDeque<(Instant, Instant, u32)>,
    /// The cost of everything in `sent`.
    in_window: u64,
    /// Shared mode: the lease being spent, and ended ones to settle at the next exchange.
    lease: Option<LocalLease>,
    settle: Vec<(u64, u32)>,
}

/// A lease of a shared budget, as its holder spends it.
#[derive(Debug, Clone, Copy)]
struct LocalLease {
    id: u64,
    amount: u32,
    left: u32,
    until: Instant,
}

impl LocalLease {
    fn spent(&self) -> u32 {
        self.amount - self.left
    }
}

impl Bucket {
    /// Forgets the groups whose last request is `span` or longer before `now`.
    fn expire(&mut self, now: Instant, span: Duration) {
        while let Some(&(_, last, cost)) = self.sent.front() {
            if now.saturating_duration_since(last) < span {
                break;
            }
            self.sent.pop_front();
            self.in_window -= u64::from(cost);
        }
    }

    /// How long from `now` until enough has left the window for `cost` more to fit within
    /// `requests` (zero: it fits now). A request costing more than the whole policy fits when
    /// the window is empty.
    fn window_wait(&self, now: Instant, span: Duration, requests: u32, cost: u32) -> Duration {
        let allowed = u64::from(requests.max(cost));
        let mut left = self.in_window;
        if left + u64::from(cost) <= allowed {
            return Duration::ZERO;
        }
        for &(_, last, c) in &self.sent {
            left -= u64::from(c);
            if left + u64::from(cost) <= allowed {
                return (last + span).saturating_duration_since(now);
            }
        }
        Duration::ZERO
    }

    /// Remembers `cost` sent at `now`: with the last group when that began within `group`.
    fn record(&mut self, now: Instant, group: Duration, cost: u32) {
        self.in_window += u64::from(cost);
        if let Some((first, last, c)) = self.sent.back_mut()
            && now.saturating_duration_since(*first) < group
        {
            *last = now;
            *c = c.saturating_add(cost);
            return;
        }
        self.sent.push_back((now, now, cost));
    }
}

#[derive(Debug)]
struct Gate {
    permits: Arc<Semaphore>,
    bucket: Mutex<Bucket>,
    /// Shared mode: the slots this instance holds in the shared budget.
    shared: Option<SharedGate>,
}

/// A gate's part in a shared budget.
#[derive(Debug, Default)]
struct SharedGate {
    /// One exchange with the budget at a time per mailbox.
    exchange: tokio::sync::Mutex<()>,
    slots: Mutex<Slots>,
    /// Callers waiting for a slot.
    waiting: AtomicU32,
    /// One waiting caller asks the budget for slots; the others wait for it (or for a slot).
    polling: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default)]
struct Slots {
    /// Permits made in the semaphore (free and in use): never more than the budget holds for
    /// this instance.
    allowance: u32,
    /// What to shrink to as permits come back (the holding, or the fair share while others wait).
    target: u32,
    /// The holding's end, on this clock (never later than the budget's).
    until: Option<Instant>,
    /// A slot was taken since the last renewal.
    used: bool,
    /// The last exchange with the budget.
    renewed: Option<Instant>,
    /// Slots were given back here that the budget has not heard of yet.
    dirty: bool,
}

impl SharedGate {
    /// Gives back free permits above the target; true if the budget should hear of it.
    fn shrink(&self, permits: &Semaphore) -> bool {
        let mut s = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if s.allowance <= s.target {
            return false;
        }
        let excess = (s.allowance - s.target) as usize;
        let forgotten = permits.forget_permits(excess);
        s.allowance -= u32::try_from(forgotten).unwrap_or(0);
        s.dirty |= forgotten > 0;
        forgotten > 0
    }
}

/// Holds one of the mailbox's concurrent slots; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    slot: Option<OwnedSemaphorePermit>,
    /// Shared mode: the gate, to give the slot back when this instance holds more than its share.
    gate: Option<Arc<Gate>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        drop(self.slot.take());
        if let Some(gate) = &self.gate
            && let Some(shared) = &gate.shared
        {
            shared.shrink(&gate.permits);
        }
    }
}

#[derive(Debug)]
pub struct Governor {
    policy: GovernorPolicy,
    gates: Mutex<Gates>,
    back_offs: std::sync::atomic::AtomicU64,
    shared: Option<Shared>,
}

/// A governor's link to a shared budget.
#[derive(Debug)]
struct Shared {
    budget: Arc<dyn SharedBudget>,
    /// Which governor's ledgers these are (`graph`, `ews`, `imap`).
    scope: String,
    holder: u128,
    /// The renewal task, started on first use.
    renewal: OnceLock<()>,
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

/// Whole milliseconds, rounded up: the timer's resolution, so a sleep always lets time pass.
fn whole_millis(wait: Duration) -> Duration {
    Duration::from_millis(
        u64::try_from(wait.as_nanos().div_ceil(1_000_000))
            .unwrap_or(u64::MAX)
            .clamp(1, 86_400_000),
    )
}

impl Gate {
    /// Shared mode: it holds slots, a lease or leases to settle in the budget.
    fn holds_shared(&self) -> bool {
        let Some(sg) = &self.shared else { return false };
        if sg
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .allowance
            > 0
        {
            return true;
        }
        let b = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        b.lease.is_some() || !b.settle.is_empty()
    }

    /// Nobody holds it, every slot is free, no pause is pending, nothing sent is left in its
    /// window and its bucket is full again: a new gate would behave the same.
    fn idle(self: &Arc<Self>, policy: &GovernorPolicy, now: Instant) -> bool {
        if Arc::strong_count(self) > 1 {
            return false;
        }
        match &self.shared {
            None if self.permits.available_permits() < policy.concurrent.max(1) => return false,
            Some(shared)
                if shared
                    .slots
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .allowance
                    > 0 =>
            {
                return false;
            }
            _ => {}
        }
        let mut b = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        b.expire(now, policy.window + policy.margin());
        let refilled =
            b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * policy.per_second();
        b.paused_until.is_none_or(|p| p <= now)
            && refilled >= f64::from(policy.capacity())
            && b.sent.is_empty()
            && b.lease.is_none()
            && b.settle.is_empty()
    }
}

/// What an admission step found.
enum Step {
    Admit,
    Sleep(Duration),
    /// The lease is spent or ended: ask the shared budget.
    Lease,
}

impl Governor {
    pub fn new(policy: GovernorPolicy) -> Arc<Self> {
        Self::build(policy, None)
    }

    /// A governor that keeps `policy` together with every other governor of `scope` on the same
    /// `budget` (other gateway instances on one PostgreSQL): leases of each mailbox's window and
    /// its slots are taken from the budget, spent here. When the budget cannot be reached, a
    /// request that needs it is refused as throttled (for a second) rather than let through.
    pub fn shared(policy: GovernorPolicy, scope: &str, budget: Arc<dyn SharedBudget>) -> Arc<Self> {
        Self::build(
            policy,
            Some(Shared {
                budget,
                scope: scope.to_owned(),
                holder: uuid::Uuid::new_v4().as_u128(),
                renewal: OnceLock::new(),
            }),
        )
    }

    fn build(policy: GovernorPolicy, shared: Option<Shared>) -> Arc<Self> {
        Arc::new(Self {
            policy,
            gates: Mutex::new(Gates {
                by_mailbox: HashMap::new(),
                sweep_at: SWEEP_FLOOR,
            }),
            back_offs: std::sync::atomic::AtomicU64::new(0),
            shared,
        })
    }

    /// Whether this governor shares its budget with other instances.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
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
        // Keys are lower case: a mailbox given in lower case (as backends give it) is found
        // without allocating a key.
        if let Some(gate) = gates.by_mailbox.get(mailbox) {
            return Arc::clone(gate);
        }
        Arc::clone(
            gates
                .by_mailbox
                .entry(mailbox.to_ascii_lowercase())
                .or_insert_with(|| {
                    Arc::new(Gate {
                        // Shared: the permits are the slots held in the budget, none at first.
                        permits: Arc::new(Semaphore::new(if self.shared.is_some() {
                            0
                        } else {
                            self.policy.concurrent.max(1)
                        })),
                        bucket: Mutex::new(Bucket {
                            tokens: f64::from(self.policy.capacity()),
                            updated: Instant::now(),
                            paused_until: None,
                            sent: VecDeque::new(),
                            in_window: 0,
                            lease: None,
                            settle: Vec::new(),
                        }),
                        shared: self.shared.as_ref().map(|_| SharedGate::default()),
                    })
                }),
        )
    }

    /// Waits until `cost` requests may be sent to `mailbox` and one concurrent slot is free; but
    /// when a server asked every caller of `mailbox` to wait longer than `max_wait`, answers at
    /// once with how long that is left instead of waiting.
    pub async fn acquire_within(
        self: &Arc<Self>,
        mailbox: &str,
        cost: u32,
        max_wait: Duration,
    ) -> Result<Permit, Duration> {
        let gate = self.gate(mailbox);
        // The slot first: a request is counted when it is let through, so it must not then
        // wait for a slot (it would be sent later than counted, and leave the window early).
        let slot = match &self.shared {
            // The semaphore is never closed, so acquiring cannot fail.
            None => Arc::clone(&gate.permits)
                .acquire_owned()
                .await
                .unwrap_or_else(|_| unreachable!("governor semaphores are never closed")),
            Some(shared) => {
                self.start_renewal(shared);
                self.shared_slot(shared, &gate, mailbox).await?
            }
        };
        let permit = Permit {
            slot: Some(slot),
            gate: self.shared.as_ref().map(|_| Arc::clone(&gate)),
        };
        let policy = self.policy;
        let rate = policy.per_second();
        // Room for this request's cost above the burst: the pace only, never the bound.
        let ceiling = f64::from(policy.capacity()) + f64::from(cost);
        let span = policy.window + policy.margin();
        let group = policy.group_span();
        loop {
            let step = {
                let mut b = gate.bucket.lock().unwrap_or_else(PoisonError::into_inner);
                let now = Instant::now();
                let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
                b.tokens = (b.tokens + elapsed * rate).min(ceiling.max(b.tokens));
                b.updated = now;
                b.expire(now, span);
                match b.paused_until {
                    Some(until) if until > now && until - now > max_wait => {
                        return Err(until - now);
                    }
                    Some(until) if until > now => Step::Sleep(until - now),
                    _ => {
                        // Refills are sums of small floats: a bucket a rounding error short of
                        // `cost` is full, or it would wait for nothing, forever.
                        let paced = if b.tokens + 1e-9 >= f64::from(cost) {
                            Duration::ZERO
                        } else {
                            Duration::from_secs_f64(
                                ((f64::from(cost) - b.tokens) / rate.max(f64::EPSILON))
                                    .min(86_400.0),
                            )
                        };
                        let bounded = b.window_wait(now, span, policy.requests, cost);
                        let leased = match (&self.shared, b.lease) {
                            (None, _) => true,
                            (Some(_), Some(l)) if l.until > now && l.left >= cost => true,
                            (Some(_), _) => false,
                        };
                        if paced.is_zero() && bounded.is_zero() && !leased {
                            Step::Lease
                        } else if paced.is_zero() && bounded.is_zero() {
                            if let Some(l) = &mut b.lease {
                                l.left -= cost;
                            }
                            b.tokens = (b.tokens - f64::from(cost))
                                .clamp(-1e-9, f64::from(policy.capacity()));
                            b.record(now, group, cost);
                            Step::Admit
                        } else {
                            // Whole milliseconds, rounded up: the timer's resolution, so the
                            // sleep always lets time pass.
                            Step::Sleep(paced.max(bounded))
                        }
                    }
                }
            };
            match step {
                Step::Admit => break,
                Step::Sleep(wait) => tokio::time::sleep(whole_millis(wait)).await,
                Step::Lease => {
                    let Some(shared) = &self.shared else {
                        unreachable!("only a shared governor takes leases")
                    };
                    if let Some(wait) = self.lease(shared, &gate, mailbox, cost).await? {
                        tokio::time::sleep(whole_millis(wait)).await;
                    }
                }
            }
        }
        Ok(permit)
    }

    /// Shared mode: a slot of the mailbox, held in the budget.
    async fn shared_slot(
        &self,
        shared: &Shared,
        gate: &Arc<Gate>,
        mailbox: &str,
    ) -> Result<OwnedSemaphorePermit, Duration> {
        let Some(sg) = &gate.shared else {
            unreachable!("a shared governor's gates are shared")
        };
        sg.waiting.fetch_add(1, Ordering::SeqCst);
        struct Waiting<'a>(&'a AtomicU32);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _waiting = Waiting(&sg.waiting);
        // Slots come back at the pace of requests, not of the window.
        let poll = (self.policy.lease_term() / 4)
            .clamp(Duration::from_millis(1), Duration::from_millis(20));
        let held = |sg: &SharedGate| {
            let mut s = sg.slots.lock().unwrap_or_else(PoisonError::into_inner);
            let fresh = s.until.is_some_and(|u| Instant::now() < u);
            if fresh {
                s.used = true;
            }
            fresh
        };
        struct Polling<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Polling<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::SeqCst);
            }
        }
        loop {
            if held(sg)
                && let Ok(p) = Arc::clone(&gate.permits).try_acquire_owned()
            {
                return Ok(p);
            }
            let lead = sg
                .polling
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
            let _lead = lead.then(|| Polling(&sg.polling));
            if lead || !held(sg) {
                self.exchange(shared, gate, mailbox, None, false).await?;
            }
            if !held(sg) {
                continue;
            }
            let poll = if lead { poll } else { poll * 8 };
            tokio::select! {
                p = Arc::clone(&gate.permits).acquire_owned() => {
                    let p = p.unwrap_or_else(|_| unreachable!("governor semaphores are never closed"));
                    if held(sg) {
                        return Ok(p);
                    }
                }
                () = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Shared mode: a new lease for at least `cost`, or how long the budget says to wait.
    async fn lease(
        &self,
        shared: &Shared,
        gate: &Arc<Gate>,
        mailbox: &str,
        cost: u32,
    ) -> Result<Option<Duration>, Duration> {
        self.exchange(shared, gate, mailbox, Some(cost), false)
            .await
    }

    /// One exchange with the budget: settles ended leases, renews (or gives back) the slots this
    /// instance holds, and with `lease` asks for a lease of at least that many requests. Answers
    /// how long to wait when no lease could be had; an unreachable budget is a refusal.
    async fn exchange(
        &self,
        shared: &Shared,
        gate: &Arc<Gate>,
        mailbox: &str,
        lease: Option<u32>,
        renewal: bool,
    ) -> Result<Option<Duration>, Duration> {
        let Some(sg) = &gate.shared else {
            unreachable!("a shared governor's gates are shared")
        };
        let _one = sg.exchange.lock().await;
        let t0 = Instant::now();
        let used = sg.slots.lock().unwrap_or_else(PoisonError::into_inner).used;
        let settle = {
            let mut b = gate.bucket.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(cost) = lease
                && b.lease.is_some_and(|l| l.until > t0 && l.left >= cost)
            {
                // Another caller renewed it meanwhile.
                return Ok(None);
            }
            let ended = match b.lease {
                // Spent, ended, or not used since the last renewal: what is left goes back.
                Some(l) if lease.is_some() || l.until <= t0 || (renewal && !used) => b.lease.take(),
                _ => None,
            };
            if let Some(l) = ended {
                let spent = l.spent();
                b.settle.push((l.id, spent));
            }
            std::mem::take(&mut b.settle)
        };
        let (in_use, wanted) = {
            let s = sg.slots.lock().unwrap_or_else(PoisonError::into_inner);
            let free = u32::try_from(gate.permits.available_permits()).unwrap_or(0);
            let in_use = s.allowance.saturating_sub(free);
            let waiting = sg.waiting.load(Ordering::SeqCst);
            // Keep what is held unless the renewal finds it unused; ask for what callers wait
            // for.
            let keep = if renewal && !s.used {
                0
            } else {
                s.allowance.min(s.target)
            };
            (in_use, keep.max(in_use + waiting))
        };
        let ask = Ask {
            holder: shared.holder,
            settle,
            lease: lease.map_or(0, |cost| self.policy.lease_size().max(cost)),
            lease_min: lease.unwrap_or(0),
            slots_wanted: wanted,
            slots_in_use: in_use,
        };
        let reply = match shared
            .budget
            .exchange(&shared.scope, mailbox, &self.policy.terms(), &ask)
            .await
        {
            Ok(reply) => reply,
            Err(e) => {
                // Settled again next time (settling an ended lease twice changes nothing).
                gate.bucket
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .settle
                    .extend(ask.settle);
                tracing::warn!(mailbox, error = %e, "the shared governor budget cannot be reached; refusing the request");
                return Err(Duration::from_secs(1));
            }
        };
        let local = |until_us: i64| {
            t0 + Duration::from_micros(u64::try_from(until_us - reply.now_us).unwrap_or(0))
        };
        if let Some((id, amount, until)) = reply.lease {
            gate.bucket
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .lease = Some(LocalLease {
                id,
                amount,
                left: amount,
                until: local(until),
            });
        }
        {
            let mut s = sg.slots.lock().unwrap_or_else(PoisonError::into_inner);
            if renewal {
                s.used = false;
            }
            s.renewed = Some(t0);
            s.dirty = false;
            s.until = Some(local(reply.slots_until_us));
            if reply.slots > s.allowance {
                gate.permits
                    .add_permits((reply.slots - s.allowance) as usize);
                s.allowance = reply.slots;
            }
            s.target = reply.slots.min(reply.share.max(1));
        }
        sg.shrink(&gate.permits);
        Ok(match reply.lease {
            Some(_) => None,
            None if lease.is_some() => Some(Duration::from_micros(
                u64::try_from(reply.wait_us).unwrap_or(0).max(1),
            )),
            None => None,
        })
    }

    /// Shared mode: a task that renews the slots held every third of a lease term (at most
    /// every half second), gives back what is not used, settles ended leases, and tells the
    /// budget at once (within 50 ms) of slots given back to a waiting instance; it ends with the
    /// governor.
    fn start_renewal(self: &Arc<Self>, shared: &Shared) {
        shared.renewal.get_or_init(|| {
            let weak: Weak<Self> = Arc::downgrade(self);
            let due = (self.policy.lease_term() / 3)
                .clamp(Duration::from_millis(1), Duration::from_millis(500));
            let every = due.min(Duration::from_millis(50));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let Some(gov) = weak.upgrade() else { return };
                    let Some(shared) = &gov.shared else { return };
                    let active: Vec<(String, Arc<Gate>)> = {
                        let gates = gov.gates.lock().unwrap_or_else(PoisonError::into_inner);
                        gates
                            .by_mailbox
                            .iter()
                            .filter(|(_, g)| g.holds_shared())
                            .map(|(m, g)| (m.clone(), Arc::clone(g)))
                            .collect()
                    };
                    for (mailbox, gate) in active {
                        let (renew, report) = match &gate.shared {
                            Some(sg) => {
                                let s = sg.slots.lock().unwrap_or_else(PoisonError::into_inner);
                                let now = Instant::now();
                                (
                                    s.renewed
                                        .is_none_or(|r| now.saturating_duration_since(r) >= due),
                                    s.dirty,
                                )
                            }
                            None => (false, false),
                        };
                        if renew || report {
                            // Failures are logged by the exchange; the next round tries again.
                            let _ = gov.exchange(shared, &gate, &mailbox, None, renew).await;
                        }
                    }
                }
            });
        });
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
        // 100 requests per 10 s, burst 20: 20 at once, then one every 100 ms. No window of 10 s
        // (and its 20 ms margin) holds more than 100, so request 101 waits for the first 20 to
        // leave the window (10.02 s) and request 201 for requests 101 to 120 (20.04 s).
        let gov = Governor::new(GovernorPolicy {
            concurrent: 4,
            requests: 100,
            window: Duration::from_secs(10),
            burst: 20,
        });
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..220 {
            drop(gov.acquire_within("a", 1, Duration::MAX).await.unwrap());
            at.push(start.elapsed());
        }
        assert_eq!(at[19], Duration::ZERO, "the burst goes at once");
        assert_eq!(at[20], Duration::from_millis(100), "then the pace");
        assert_eq!(at[100], Duration::from_millis(10_020), "{:?}", at[100]);
        assert_eq!(at[219], Duration::from_millis(20_040), "{:?}", at[219]);
    }

    #[tokio::test(start_paused = true)]
    async fn batches_as_large_as_the_burst_lose_nothing_to_late_wake_ups() {
        // 20 requests per batch, the burst 20, 1,000 requests a second: a batch is due every
        // 20 ms, but the timer wakes the waiter on the next whole millisecond at best. A bucket
        // capped at the burst would drop what arrived meanwhile (about 5% here); the allowance
        // less the margin (0.2%) must be had.
        let policy = GovernorPolicy {
            concurrent: 4,
            requests: 10_000,
            window: Duration::from_secs(10),
            burst: 20,
        };
        let gov = Governor::new(policy);
        let start = Instant::now();
        let mut sent = 0u32;
        while start.elapsed() < policy.window * 3 {
            drop(gov.acquire_within("m", 20, Duration::MAX).await.unwrap());
            sent += 20;
        }
        assert!(sent <= 3 * policy.requests + 20, "{sent}");
        assert!(sent >= 3 * policy.requests * 99 / 100, "{sent}");
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

    /// Property: whatever the arrivals (bursts, trickles, mixed costs up to twice the burst,
    /// callers that hold their slot a while or come back at once), no window of the policy's
    /// length, starting anywhere, holds more than `requests`.
    #[tokio::test(start_paused = true)]
    async fn no_window_anywhere_exceeds_the_policy_for_random_arrivals() {
        for seed in 1..=80u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let requests = 10 + rng.below(60) as u32;
            let window = Duration::from_millis(1_000 + rng.below(9_000));
            let burst = 1 + rng.below(u64::from(requests / 2)) as u32;
            let gov = Governor::new(GovernorPolicy {
                concurrent: 1 + rng.below(8) as usize,
                requests,
                window,
                burst,
            });
            let start = Instant::now();
            let admitted = Arc::new(Mutex::new(Vec::new()));
            let tasks: Vec<_> = (0..u64::from(requests) * 3)
                .map(|_| {
                    let offset = Duration::from_millis(rng.below(window.as_millis() as u64 * 3));
                    let cost = 1 + rng.below(u64::from(gov.policy().capacity()) * 2) as u32;
                    let cost = cost.min(requests);
                    // Some callers hold their slot (a slow answer), some ask again at once.
                    let hold = Duration::from_millis(rng.below(3) * rng.below(200));
                    let again = rng.below(3) == 0;
                    let (gov, admitted) = (Arc::clone(&gov), Arc::clone(&admitted));
                    tokio::spawn(async move {
                        tokio::time::sleep(offset).await;
                        for _ in 0..if again { 2 } else { 1 } {
                            let permit =
                                gov.acquire_within("m", cost, Duration::MAX).await.unwrap();
                            admitted.lock().unwrap().push((start.elapsed(), cost));
                            tokio::time::sleep(hold).await;
                            drop(permit);
                        }
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

    /// Property: several governors (gateway instances) on one shared budget, whatever the
    /// arrivals, costs and holding times and whichever instance each caller uses, together never
    /// let more than `requests` into any window of the policy's length, starting anywhere, nor
    /// more than `concurrent` requests be in progress at once.
    #[tokio::test(start_paused = true)]
    async fn instances_on_one_shared_budget_never_exceed_the_policy_together() {
        for seed in 1..=12u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let requests = 10 + rng.below(60) as u32;
            let window = Duration::from_millis(1_000 + rng.below(9_000));
            let burst = 1 + rng.below(u64::from(requests / 2)) as u32;
            let concurrent = 1 + rng.below(6) as usize;
            let policy = GovernorPolicy {
                concurrent,
                requests,
                window,
                burst,
            };
            let budget: Arc<dyn SharedBudget> = Arc::new(MemoryBudget::default());
            let instances = 2 + rng.below(3) as usize;
            let govs: Vec<_> = (0..instances)
                .map(|_| Governor::shared(policy, "graph", Arc::clone(&budget)))
                .collect();
            let start = Instant::now();
            let admitted = Arc::new(Mutex::new(Vec::new()));
            let in_flight = Arc::new(AtomicUsize::new(0));
            let peak = Arc::new(AtomicUsize::new(0));
            let tasks: Vec<_> = (0..u64::from(requests) * 3)
                .map(|_| {
                    let offset = Duration::from_millis(rng.below(window.as_millis() as u64 * 3));
                    let cost =
                        (1 + rng.below(u64::from(policy.capacity()) * 2) as u32).min(requests);
                    let hold = Duration::from_millis(rng.below(3) * rng.below(200));
                    let again = rng.below(3) == 0;
                    let gov = Arc::clone(&govs[rng.below(instances as u64) as usize]);
                    let (admitted, in_flight, peak) = (
                        Arc::clone(&admitted),
                        Arc::clone(&in_flight),
                        Arc::clone(&peak),
                    );
                    tokio::spawn(async move {
                        tokio::time::sleep(offset).await;
                        for _ in 0..if again { 2 } else { 1 } {
                            let permit =
                                gov.acquire_within("m", cost, Duration::MAX).await.unwrap();
                            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            admitted.lock().unwrap().push((start.elapsed(), cost));
                            tokio::time::sleep(hold).await;
                            in_flight.fetch_sub(1, Ordering::SeqCst);
                            drop(permit);
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            assert!(
                peak.load(Ordering::SeqCst) <= concurrent,
                "seed {seed}: {} in progress at once (policy {concurrent})",
                peak.load(Ordering::SeqCst)
            );
            let mut admitted = admitted.lock().unwrap().clone();
            admitted.sort();
            assert!(admitted.len() as u64 >= u64::from(requests) * 3);
            for (i, (at, _)) in admitted.iter().enumerate() {
                let in_window: u32 = admitted[i..]
                    .iter()
                    .take_while(|(t, _)| *t < *at + window)
                    .map(|(_, c)| c)
                    .sum();
                assert!(
                    in_window <= requests,
                    "seed {seed}: {in_window} requests in the window from {at:?} across \
                     {instances} instances (policy {requests} per {window:?}, burst {burst})"
                );
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn shared_instances_together_get_nearly_the_allowance_and_a_dead_one_blocks_a_term() {
        let policy = GovernorPolicy {
            concurrent: 4,
            requests: 1_000,
            window: Duration::from_secs(10),
            burst: 20,
        };
        let budget: Arc<dyn SharedBudget> = Arc::new(MemoryBudget::default());
        // An instance takes a lease and dies with it unspent.
        let dead = Governor::shared(policy, "graph", Arc::clone(&budget));
        drop(dead.acquire_within("m", 1, Duration::MAX).await.unwrap());
        drop(dead);
        let govs: Vec<_> = (0..3)
            .map(|_| Governor::shared(policy, "graph", Arc::clone(&budget)))
            .collect();
        let start = Instant::now();
        let sent = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = govs
            .iter()
            .map(|gov| {
                let (gov, sent) = (Arc::clone(gov), Arc::clone(&sent));
                tokio::spawn(async move {
                    while start.elapsed() < policy.window * 3 {
                        drop(gov.acquire_within("m", 1, Duration::MAX).await.unwrap());
                        sent.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let sent = sent.load(Ordering::SeqCst) as u32;
        // Three windows' worth at most (and the last one's callers who were let in), and nearly
        // all of it: the dead instance's lease is counted only for its term and one window.
        assert!(sent <= 3 * policy.requests + 3, "{sent}");
        assert!(sent >= 3 * policy.requests * 9 / 10, "{sent}");
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
        // Three windows' worth: 30,000 allowed; the margin is 0.2% of the window, and groups
        // expire with their last request (up to a 1000th of the window later).
        assert!(sent <= 3 * policy.requests, "{sent}");
        assert!(sent >= 3 * policy.requests * 996 / 1000, "{sent}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_mailbox_is_forgotten_only_once_its_window_has_passed() {
        let policy = GovernorPolicy {
            window: Duration::from_secs(10),
            ..GovernorPolicy::default()
        };
        let gov = Governor::new(policy);
        drop(gov.acquire_within("m", 1, Duration::MAX).await.unwrap());
        let idle = || gov.gates.lock().unwrap().by_mailbox["m"].idle(&policy, Instant::now());
        // Its bucket is full again within a millisecond, but a new gate would let a whole
        // window's requests through on top of the one just sent.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!idle());
        tokio::time::advance(policy.window + policy.margin()).await;
        assert!(idle());
    }

    #[tokio::test(start_paused = true)]
    async fn state_of_idle_mailboxes_is_swept_and_busy_ones_are_kept() {
        let policy = GovernorPolicy {
            window: Duration::from_secs(10),
            ..GovernorPolicy::default()
        };
        let gov = Governor::new(policy);
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
                // Long enough for every request to have left the window and every bucket to
                // be full again.
                tokio::time::advance(policy.window + policy.margin()).await;
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
