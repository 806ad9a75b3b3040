//! Webhook delivery: every webhook receives the journal's events its filter passes, signed
//! ([`super::webhook`]), in order, at least once.
//!
//! One pass ([`Delivery::run_once`]) takes each webhook in turn:
//! 1. claims it ([`NotifyStore::claim_webhook`]) for this worker's owner ID and a lease, so that
//!    of several gateways on one store exactly one delivers each webhook (the lease is renewed
//!    while a batch is sent; a gateway that stops loses it when it runs out);
//! 2. delivers the dead letters an admin asked to replay, oldest first
//!    ([`NotifyStore::finish_replay`]);
//! 3. unless the webhook is backing off, POSTs the events after its cursor, oldest first: a 2xx
//!    answer moves the cursor on; anything else (another status, a redirect, which is never
//!    followed, a transport error or a timeout) is a failure, and nothing after the failing
//!    event is sent until it is delivered. The failing event is tried again after a back-off
//!    ([`backoff`]: 10 s, 30 s, 2 min, 5 min, 15 min, 30 min, then hourly, each ±10 %, or longer
//!    when the receiver's `Retry-After` asks, up to an hour); once it has failed for longer than
//!    [`DeliveryOptions::retry_for`] (26 hours) since its first failure it becomes a dead letter
//!    and the cursor moves past it.
//!
//! [`Delivery::run`] repeats passes: after new events are committed ([`Delivery::poke`]), when
//! a back-off ends, and every [`DeliveryOptions::idle_poll`] (events another gateway committed,
//! leases another gateway let run out), until its shutdown future completes; the event being
//! sent then is finished first.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, USER_AGENT};
use time::OffsetDateTime;
use tokio::sync::Notify;
use tracing::Instrument as _;
use url::Url;

use crate::clock::Clock;
use crate::config::NetworkSettings;
use crate::model::WebhookId;
use crate::net::{self, ClientBuildError};
use crate::secret::random_bytes;
use crate::store::{Store, StoreError};

use super::ChangeEvent;
use super::store::{DeadLetter, NotifyStore, WebhookProgress, WebhookRow};
use super::webhook;

/// The `User-Agent` of every delivery.
pub const USER_AGENT_VALUE: &str = concat!("exgate/", env!("CARGO_PKG_VERSION"));

/// The waits after the 1st, 2nd, … failure of an event; every later one waits [`MAX_BACKOFF`].
pub const BACKOFF: [Duration; 6] = [
    Duration::from_secs(10),
    Duration::from_secs(30),
    Duration::from_secs(2 * 60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(15 * 60),
    Duration::from_secs(30 * 60),
];
/// The longest wait between two attempts (also the most a `Retry-After` is taken at).
pub const MAX_BACKOFF: Duration = Duration::from_secs(60 * 60);

/// The nominal wait after an event's `attempts`-th failure (1-based), before jitter.
pub fn backoff(attempts: u32) -> Duration {
    let i = attempts.saturating_sub(1) as usize;
    BACKOFF.get(i).copied().unwrap_or(MAX_BACKOFF)
}

/// The nominal time from an event's first failure to its attempt after `attempts` failures:
/// the first failure's time when a store does not keep it.
fn elapsed_after(attempts: u32) -> Duration {
    (1..=attempts.min(1000)).map(backoff).sum()
}

/// `d` ± 10 %, so that webhooks failing together do not retry together.
fn jittered(d: Duration) -> Duration {
    let [a, b] = random_bytes::<2>();
    // 0..=65535 mapped onto 0.9..=1.1
    let r = f64::from(u16::from_be_bytes([a, b])) / f64::from(u16::MAX);
    d.mul_f64(0.9 + 0.2 * r)
}

/// How a [`Delivery`] works.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// This worker's ID in the store's claims: unique per gateway process.
    pub owner: String,
    /// How long a claim on a webhook lasts (renewed while delivering): how long the webhooks of
    /// a gateway that died wait before another gateway delivers them.
    pub lease: Duration,
    /// Events read from the journal at once.
    pub batch: u32,
    /// How long one POST may take, connecting included.
    pub request_timeout: Duration,
    /// How long an event is retried, from its first failure, before it becomes a dead letter.
    pub retry_for: Duration,
    /// The longest [`Delivery::run`] waits between passes without a poke.
    pub idle_poll: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            owner: format!("gateway-{}", uuid::Uuid::new_v4()),
            lease: Duration::from_secs(60),
            batch: 100,
            request_timeout: Duration::from_secs(10),
            retry_for: Duration::from_secs(26 * 60 * 60),
            idle_poll: Duration::from_secs(30),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Events delivered (a 2xx answer).
    pub delivered: u64,
    /// Dead letters replayed and delivered.
    pub replayed: u64,
    /// Failed attempts (replays included).
    pub failed: u64,
    /// Events given up on (now dead letters).
    pub dead_lettered: u64,
    /// Webhooks another worker holds.
    pub skipped: u64,
    /// The earliest back-off end of the webhooks this worker holds.
    pub next_attempt_at: Option<OffsetDateTime>,
}

impl PassReport {
    fn next_at(&mut self, at: OffsetDateTime) {
        self.next_attempt_at = Some(self.next_attempt_at.map_or(at, |n| n.min(at)));
    }
}

/// The webhook delivery worker of one gateway (cheap to clone: clones share it).
#[derive(Debug, Clone)]
pub struct Delivery {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    options: DeliveryOptions,
    wake: Notify,
    stopping: AtomicBool,
}

/// A failed attempt: what is recorded (a status or a transport error, never a body), and the
/// receiver's `Retry-After`.
struct Failure {
    error: String,
    retry_after: Option<Duration>,
}

impl Failure {
    fn new(error: String) -> Self {
        Self {
            error,
            retry_after: None,
        }
    }
}

impl Delivery {
    /// A worker over `store`'s [`Store::notifications`] (a store that keeps none has no
    /// webhooks), its HTTP client built from the gateway's network settings (no redirects, the
    /// configured CA).
    pub fn new(
        store: Arc<dyn Store>,
        network: &NetworkSettings,
        clock: Arc<dyn Clock>,
        options: DeliveryOptions,
    ) -> Result<Self, ClientBuildError> {
        let client = net::build(
            network,
            reqwest::Client::builder().timeout(options.request_timeout),
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                client,
                clock,
                options,
                wake: Notify::new(),
                stopping: AtomicBool::new(false),
            }),
        })
    }

    pub fn options(&self) -> &DeliveryOptions {
        &self.inner.options
    }

    /// New events were committed: [`Delivery::run`] starts a pass now (or right after the one
    /// under way).
    pub fn poke(&self) {
        self.inner.wake.notify_one();
    }

    /// Delivers until `shutdown` completes; the event being sent then is finished first.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let inner = &self.inner;
        inner.stopping.store(false, Ordering::SeqCst);
        tokio::pin!(shutdown);
        loop {
            let pass = self.run_once();
            tokio::pin!(pass);
            let (result, stop) = tokio::select! {
                r = &mut pass => (r, false),
                () = &mut shutdown => {
                    inner.stopping.store(true, Ordering::SeqCst);
                    (pass.await, true)
                }
            };
            let next = match result {
                Ok(report) => report.next_attempt_at,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook delivery: the store failed; trying again");
                    None
                }
            };
            if stop {
                break;
            }
            let idle = inner.options.idle_poll;
            let wait = next.map_or(idle, |at| {
                Duration::try_from(at - inner.clock.now())
                    .unwrap_or(Duration::ZERO)
                    .min(idle)
            });
            tokio::select! {
                () = &mut shutdown => break,
                () = inner.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        tracing::debug!("webhook delivery stopped");
    }

    /// One pass over every webhook (see the module's documentation).
    pub async fn run_once(&self) -> Result<PassReport, StoreError> {
        let mut report = PassReport::default();
        let Some(store) = self.inner.store.notifications() else {
            return Ok(report);
        };
        for row in store.webhooks().await? {
            if self.stopping() {
                break;
            }
            let span = tracing::info_span!("webhook", webhook = %row.id);
            self.webhook_pass(store, row.id, &mut report)
                .instrument(span)
                .await?;
        }
        Ok(report)
    }

    fn stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }

    /// Claims the webhook (again) for the lease. False: another worker holds it.
    async fn claim(
        &self,
        store: &dyn NotifyStore,
        id: WebhookId,
    ) -> Result<(OffsetDateTime, bool), StoreError> {
        let now = self.inner.clock.now();
        let held = store
            .claim_webhook(
                id,
                &self.inner.options.owner,
                now,
                now + self.inner.options.lease,
            )
            .await?;
        Ok((now, held))
    }

    /// Renews the claim once a third of the lease has passed. False: it was lost.
    async fn keep(
        &self,
        store: &dyn NotifyStore,
        id: WebhookId,
        claimed_at: &mut OffsetDateTime,
    ) -> Result<bool, StoreError> {
        if self.inner.clock.now() - *claimed_at < self.inner.options.lease / 3 {
            return Ok(true);
        }
        let (now, held) = self.claim(store, id).await?;
        *claimed_at = now;
        if !held {
            tracing::info!("another gateway took the webhook over");
        }
        Ok(held)
    }

    async fn webhook_pass(
        &self,
        store: &dyn NotifyStore,
        id: WebhookId,
        report: &mut PassReport,
    ) -> Result<(), StoreError> {
        let (mut claimed_at, held) = self.claim(store, id).await?;
        if !held {
            report.skipped += 1;
            return Ok(());
        }
        // Read after claiming: what another worker delivered before is not sent again.
        let Some(row) = store.webhook(id).await? else {
            return Ok(());
        };
        let url = Url::parse(&row.url);

        for dead in store.dead_letters(id).await? {
            if !dead.replay {
                continue;
            }
            if self.stopping() || !self.keep(store, id, &mut claimed_at).await? {
                return Ok(());
            }
            let seq = dead.event.seq;
            match self.post(&row, url.as_ref().ok(), &dead.event).await {
                Ok(()) => {
                    tracing::info!(seq, "dead letter replayed");
                    store.finish_replay(id, seq, true, None).await?;
                    report.replayed += 1;
                }
                Err(failure) => {
                    tracing::warn!(seq, error = %failure.error, "dead letter replay failed");
                    store
                        .finish_replay(id, seq, false, Some(&failure.error))
                        .await?;
                    report.failed += 1;
                    // The receiver fails: new events wait for the next pass.
                    return Ok(());
                }
            }
        }

        let mut progress = row.progress.clone();
        if let Some(at) = progress.next_attempt_at
            && at > self.inner.clock.now()
        {
            report.next_at(at);
            return Ok(());
        }
        let batch = self.inner.options.batch.max(1);
        loop {
            let events = store
                .events_after(progress.cursor, &row.filter, batch)
                .await?;
            let full = events.len() >= batch as usize;
            for event in events {
                if self.stopping() || !self.keep(store, id, &mut claimed_at).await? {
                    return Ok(());
                }
                match self.post(&row, url.as_ref().ok(), &event).await {
                    Ok(()) => {
                        progress = WebhookProgress {
                            cursor: event.seq,
                            ..WebhookProgress::default()
                        };
                        if !store.set_webhook_progress(id, &progress, None).await? {
                            return Ok(()); // deleted meanwhile
                        }
                        report.delivered += 1;
                    }
                    Err(failure) => {
                        report.failed += 1;
                        let now = self.inner.clock.now();
                        let first = progress
                            .first_failed_at
                            .unwrap_or_else(|| now - elapsed_after(progress.attempts));
                        let attempts = progress.attempts.saturating_add(1);
                        if now - first >= self.inner.options.retry_for {
                            tracing::warn!(
                                seq = event.seq,
                                attempts,
                                error = %failure.error,
                                "webhook event given up on: now a dead letter"
                            );
                            let dead = DeadLetter {
                                webhook: id,
                                event: event.clone(),
                                attempts,
                                last_error: failure.error,
                                failed_at: now,
                                replay: false,
                            };
                            progress = WebhookProgress {
                                cursor: event.seq,
                                ..WebhookProgress::default()
                            };
                            if !store
                                .set_webhook_progress(id, &progress, Some(&dead))
                                .await?
                            {
                                return Ok(());
                            }
                            report.dead_lettered += 1;
                            continue;
                        }
                        let wait = jittered(backoff(attempts))
                            .max(failure.retry_after.unwrap_or_default().min(MAX_BACKOFF));
                        let next = now + wait;
                        tracing::warn!(
                            seq = event.seq,
                            attempts,
                            error = %failure.error,
                            retry_in_s = wait.as_secs(),
                            "webhook delivery failed"
                        );
                        progress = WebhookProgress {
                            cursor: progress.cursor,
                            attempts,
                            next_attempt_at: Some(next),
                            last_error: Some(failure.error),
                            first_failed_at: Some(first),
                        };
                        store.set_webhook_progress(id, &progress, None).await?;
                        report.next_at(next);
                        return Ok(());
                    }
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// POSTs one event, signed. `url`: `None` when the stored URL does not parse.
    async fn post(
        &self,
        row: &WebhookRow,
        url: Option<&Url>,
        event: &ChangeEvent,
    ) -> Result<(), Failure> {
        let url = url.ok_or_else(|| Failure::new("the webhook's URL is not a URL".into()))?;
        let body = serde_json::to_vec(event)
            .map_err(|e| Failure::new(format!("the event cannot be written as JSON: {e}")))?;
        let signed = webhook::sign(&[&row.secret], &event.id, &body, self.inner.clock.now());
        let mut request = self
            .inner
            .client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, USER_AGENT_VALUE);
        for (name, value) in signed.pairs() {
            request = request.header(name, value);
        }
        match request.body(body).send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(Failure {
                error: describe_status(response.status()),
                retry_after: net::retry_after(response.headers()),
            }),
            Err(e) => Err(Failure::new(describe_transport(
                e,
                self.inner.options.request_timeout,
            ))),
        }
    }
}

/// `HTTP 503 Service Unavailable`; a redirect says it is not followed.
fn describe_status(status: StatusCode) -> String {
    let reason = status.canonical_reason().unwrap_or("");
    let head = format!("HTTP {} {reason}", status.as_u16());
    let head = head.trim_end().to_owned();
    if status.is_redirection() {
        format!("{head}: redirects are not followed; register the URL the receiver redirects to")
    } else {
        head
    }
}

/// A transport error without the URL (it may hold a token) and without any body.
fn describe_transport(e: reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", timeout.as_secs());
    }
    let e = e.without_url();
    // The innermost cause says what happened ("Connection refused (os error 111)").
    let mut cause = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(next) = source {
        cause = next.to_string();
        source = next.source();
    }
    if e.is_connect() {
        format!("cannot connect: {cause}")
    } else {
        format!("the request failed: {cause}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_hourly() {
        let secs: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [10, 30, 120, 300, 900, 1800, 3600, 3600, 3600]);
        assert_eq!(backoff(0).as_secs(), 10);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
        assert_eq!(elapsed_after(0), Duration::ZERO);
        assert_eq!(elapsed_after(3).as_secs(), 160);
        assert_eq!(elapsed_after(8).as_secs(), 3160 + 2 * 3600);
        for _ in 0..100 {
            let j = jittered(Duration::from_secs(100));
            assert!(
                j >= Duration::from_secs(90) && j <= Duration::from_secs(110),
                "{j:?}"
            );
        }
    }

    #[test]
    fn statuses_are_described_without_a_body() {
        assert_eq!(
            describe_status(StatusCode::SERVICE_UNAVAILABLE),
            "HTTP 503 Service Unavailable"
        );
        let redirect = describe_status(StatusCode::FOUND);
        assert!(
            redirect.starts_with("HTTP 302 Found: redirects are not followed"),
            "{redirect}"
        );
        assert_eq!(
            describe_status(StatusCode::from_u16(599).unwrap()),
            "HTTP 599"
        );
    }
}
