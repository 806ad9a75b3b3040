//! Webhook delivery against a real receiver (axum on 127.0.0.1:0) and the memory store, with a
//! clock the tests move: signatures, order, back-off, dead letters and replay, redirects, and
//! several workers on one store.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use exgate_core::clock::Clock;
use exgate_core::config::NetworkSettings;
use exgate_core::model::{Connection, ConnectionId, ConnectionSpec, WatchId, WebhookId};
use exgate_core::notify::delivery::{Delivery, DeliveryOptions};
use exgate_core::notify::event::event_id;
use exgate_core::notify::store::{
    EventFilter, NotifyStore, SyncCommit, WatchRow, WebhookProgress, WebhookRow,
};
use exgate_core::notify::webhook::{self, TOLERANCE};
use exgate_core::notify::{ChangeEvent, EventKind, Watched};
use exgate_core::secret::{Secret, Vault};
use exgate_core::store::{MemoryStore, SqliteStore, Store};
use time::OffsetDateTime;
use time::macros::datetime;

const START: OffsetDateTime = datetime!(2026-12-01 09:00 UTC);

#[derive(Debug)]
struct TestClock(Mutex<OffsetDateTime>);

impl TestClock {
    fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(START)))
    }
    fn set(&self, at: OffsetDateTime) {
        *self.0.lock().unwrap() = at;
    }
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Up,
    Fail(StatusCode),
    Redirect,
}

/// An application's webhook endpoint: verifies every request as the documentation says.
#[derive(Debug)]
struct Receiver {
    secret: Secret,
    clock: Arc<TestClock>,
    mode: Mutex<Mode>,
    /// Every request that reached the handler.
    hits: AtomicUsize,
    /// Requests to the redirect's target.
    redirected: AtomicUsize,
    /// Verified requests answered 2xx, in arrival order.
    accepted: Mutex<Vec<ChangeEvent>>,
    accepted_count: tokio::sync::watch::Sender<usize>,
    /// Why requests were refused (401).
    refused: Mutex<Vec<String>>,
    /// The last request, as received.
    last: Mutex<Option<(HeaderMap, Bytes)>>,
    addr: Mutex<Option<SocketAddr>>,
}

impl Receiver {
    async fn start(secret: Secret, clock: Arc<TestClock>) -> Arc<Self> {
        let receiver = Arc::new(Self {
            secret,
            clock,
            mode: Mutex::new(Mode::Up),
            hits: AtomicUsize::new(0),
            redirected: AtomicUsize::new(0),
            accepted: Mutex::new(Vec::new()),
            accepted_count: tokio::sync::watch::channel(0).0,
            refused: Mutex::new(Vec::new()),
            last: Mutex::new(None),
            addr: Mutex::new(None),
        });
        let app = Router::new()
            .route("/hook", post(hook))
            .route("/elsewhere", post(elsewhere))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        *receiver.addr.lock().unwrap() = Some(listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr.lock().unwrap().unwrap())
    }

    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn accepted_seqs(&self) -> Vec<i64> {
        self.accepted
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect()
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn hook(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> Response {
    r.hits.fetch_add(1, Ordering::SeqCst);
    *r.last.lock().unwrap() = Some((headers.clone(), body.clone()));
    let verified = webhook::verify(&headers, &body, &r.secret, r.clock.now(), TOLERANCE);
    let id = match verified {
        Ok(id) => id,
        Err(e) => {
            r.refused.lock().unwrap().push(e.to_string());
            return StatusCode::UNAUTHORIZED.into_response();
        }
    };
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    let agent = headers[header::USER_AGENT].to_str().unwrap();
    assert!(agent.starts_with("exgate/"), "{agent}");
    let mode = *r.mode.lock().unwrap();
    match mode {
        Mode::Up => {
            let event: ChangeEvent = serde_json::from_slice(&body).unwrap();
            assert_eq!(event.id, id, "the header names the body's event");
            let mut accepted = r.accepted.lock().unwrap();
            accepted.push(event);
            r.accepted_count.send_replace(accepted.len());
            StatusCode::NO_CONTENT.into_response()
        }
        Mode::Fail(status) => (status, "the receiver's error page").into_response(),
        Mode::Redirect => (StatusCode::FOUND, [(header::LOCATION, "/elsewhere")]).into_response(),
    }
}

async fn elsewhere(State(r): State<Arc<Receiver>>) -> StatusCode {
    r.redirected.fetch_add(1, Ordering::SeqCst);
    StatusCode::OK
}

/// A store with one watch whose events the tests append.
struct Journal {
    store: Arc<dyn Store>,
    connection: ConnectionId,
    watch: WatchId,
    items: usize,
    /// The SQL stores do not keep `WebhookProgress::first_failed_at` yet.
    keeps_first_failure: bool,
    _dir: Option<tempfile::TempDir>,
}

impl Journal {
    async fn new() -> Self {
        Self::on(Arc::new(MemoryStore::new()), true, None).await
    }

    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let vault = Arc::new(Vault::open_or_create(&dir.path().join("master.key")).unwrap());
        let store = SqliteStore::open(&dir.path().join("exgate.db"), vault)
            .await
            .unwrap();
        Self::on(Arc::new(store), false, Some(dir)).await
    }

    async fn on(
        store: Arc<dyn Store>,
        keeps_first_failure: bool,
        dir: Option<tempfile::TempDir>,
    ) -> Self {
        let spec = ConnectionSpec {
            tenant: Some("contoso.onmicrosoft.com".into()),
            auth: Some("oauth2-app-only".into()),
            client_id: Some("11111111-2222-3333-4444-555555555555".into()),
            client_secret: Some(Secret::new("Xy7Q~client-secret-value-AAAAAAAAAAAAAAAAA")),
            ..ConnectionSpec::default()
        };
        let connection = ConnectionId::new_random();
        store
            .insert_connection(&Connection {
                id: connection,
                name: "contoso".parse().unwrap(),
                settings: spec.validate().unwrap(),
                created_at: START,
                updated_at: START,
            })
            .await
            .unwrap();
        let watch = WatchId::new_random();
        store
            .notifications()
            .unwrap()
            .insert_watch(&WatchRow {
                id: watch,
                connection,
                principal: "ada@contoso.com".parse().unwrap(),
                mailbox: None,
                watched: vec![Watched::Calendar],
                api_key: None,
                created_at: START,
            })
            .await
            .unwrap();
        Self {
            store,
            connection,
            watch,
            items: 0,
            keeps_first_failure,
            _dir: dir,
        }
    }

    fn notify(&self) -> &dyn NotifyStore {
        self.store.notifications().unwrap()
    }

    /// Appends `n` events; answers them with their `seq`.
    async fn add(&mut self, n: usize) -> Vec<ChangeEvent> {
        let events = (0..n)
            .map(|_| {
                self.items += 1;
                let item = format!("AAMk{}", self.items);
                ChangeEvent {
                    id: event_id(self.watch, EventKind::EventCreated, &item, "v1"),
                    seq: 0,
                    kind: EventKind::EventCreated,
                    watch: self.watch,
                    connection: "contoso".into(),
                    principal: "ada@contoso.com".into(),
                    mailbox: None,
                    folder: "calendar".into(),
                    item_id: item,
                    previous_folder: None,
                    previous_item_id: None,
                    detected_at: START,
                }
            })
            .collect();
        let version = self
            .notify()
            .watch_state(self.watch)
            .await
            .unwrap()
            .map_or(0, |s| s.version);
        let committed = self
            .notify()
            .commit_sync(&SyncCommit {
                watch: self.watch,
                expected_version: version,
                document: Secret::new("{}"),
                upsert: Vec::new(),
                remove: Vec::new(),
                events,
            })
            .await
            .unwrap();
        assert_eq!(committed.len(), n);
        committed
    }

    async fn webhook(&self, url: &str, secret: &Secret) -> WebhookId {
        let id = WebhookId::new_random();
        self.notify()
            .insert_webhook(&WebhookRow {
                id,
                api_key: None,
                filter: EventFilter {
                    connection: self.connection,
                    principal: None,
                    mailbox: None,
                    kinds: Vec::new(),
                },
                url: url.to_owned(),
                secret: secret.clone(),
                created_at: START,
                progress: WebhookProgress::default(),
            })
            .await
            .unwrap();
        id
    }

    async fn progress(&self, id: WebhookId) -> WebhookProgress {
        self.notify().webhook(id).await.unwrap().unwrap().progress
    }

    fn delivery(&self, clock: &Arc<TestClock>, owner: &str, batch: u32) -> Delivery {
        Delivery::new(
            self.store.clone(),
            &NetworkSettings::default(),
            clock.clone(),
            DeliveryOptions {
                owner: owner.into(),
                batch,
                ..DeliveryOptions::default()
            },
        )
        .unwrap()
    }
}

fn seqs(events: &[ChangeEvent]) -> Vec<i64> {
    events.iter().map(|e| e.seq).collect()
}

#[tokio::test]
async fn signatures_verify_and_forged_or_replayed_requests_are_refused() {
    let clock = TestClock::new();
    let secret = webhook::generate_secret();
    let receiver = Receiver::start(secret.clone(), clock.clone()).await;
    let mut journal = Journal::new().await;
    let events = journal.add(1).await;
    let hook = journal.webhook(&receiver.url(), &secret).await;
    let delivery = journal.delivery(&clock, "gw-a", 100);

    let report = delivery.run_once().await.unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(receiver.accepted_seqs(), seqs(&events));
    assert!(receiver.refused.lock().unwrap().is_empty());
    assert_eq!(journal.progress(hook).await.cursor, events[0].seq);
    let (headers, body) = receiver.last.lock().unwrap().clone().unwrap();
    assert_eq!(headers["exgate-event-id"], events[0].id.as_str());
    assert_eq!(
        headers["exgate-timestamp"],
        START.unix_timestamp().to_string().as_str()
    );
    let signature = headers["exgate-signature"].to_str().unwrap().to_owned();
    assert!(signature.starts_with("v1="), "{signature}");
    assert!(!signature.contains(secret.expose()));

    let client = reqwest::Client::new();
    let send = |headers: Vec<(&'static str, String)>, body: Bytes| {
        let mut request = client
            .post(receiver.url())
            .header("content-type", "application/json")
            .header("user-agent", "exgate/test");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.body(body).send()
    };

    // Signed with another secret: refused.
    let forged = webhook::sign(
        &[&Secret::new("whsec_guessed")],
        &events[0].id,
        &body,
        clock.now(),
    );
    let answer = send(forged.pairs().to_vec(), body.clone()).await.unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    // The right signature on an altered body: refused.
    let altered = Bytes::from(
        String::from_utf8(body.to_vec())
            .unwrap()
            .replace("AAMk1", "AAMk2"),
    );
    let genuine = vec![
        ("exgate-event-id", events[0].id.clone()),
        ("exgate-timestamp", START.unix_timestamp().to_string()),
        ("exgate-signature", signature.clone()),
    ];
    let answer = send(genuine.clone(), altered).await.unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    // The genuine request replayed ten minutes later: refused.
    clock.advance(Duration::from_secs(10 * 60));
    let answer = send(genuine, body).await.unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);

    let refused = receiver.refused.lock().unwrap().clone();
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(refused[0].contains("no signature matches"), "{refused:?}");
    assert!(refused[1].contains("no signature matches"), "{refused:?}");
    assert!(refused[2].contains("600 seconds"), "{refused:?}");
    assert_eq!(
        receiver.accepted_seqs(),
        seqs(&events),
        "nothing else accepted"
    );
}

#[tokio::test]
async fn a_hundred_events_arrive_in_order_once() {
    let clock = TestClock::new();
    let secret = webhook::generate_secret();
    let receiver = Receiver::start(secret.clone(), clock.clone()).await;
    let mut journal = Journal::new().await;
    let hook = journal.webhook(&receiver.url(), &secret).await;
    let events = journal.add(100).await;
    // A batch of 7: the pass pages through the journal.
    let delivery = journal.delivery(&clock, "gw-a", 7);

    let report = delivery.run_once().await.unwrap();
    assert_eq!(report.delivered, 100);
    assert_eq!(report.failed, 0);
    assert_eq!(receiver.accepted_seqs(), seqs(&events));
    let ids: Vec<String> = receiver
        .accepted
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.id.clone())
        .collect();
    assert_eq!(ids, events.iter().map(|e| e.id.clone()).collect::<Vec<_>>());
    assert_eq!(
        journal.progress(hook).await,
        WebhookProgress {
            cursor: events[99].seq,
            ..WebhookProgress::default()
        }
    );

    // Nothing new: nothing sent again.
    let report = delivery.run_once().await.unwrap();
    assert_eq!(report.delivered, 0);
    assert_eq!(receiver.hits(), 100);
}

#[tokio::test]
async fn a_receiver_down_for_an_hour_gets_everything_once_in_order() {
    down_for_an_hour(Journal::new().await).await;
}

#[tokio::test]
async fn on_sqlite_a_receiver_down_for_an_hour_gets_everything_once_in_order() {
    down_for_an_hour(Journal::sqlite().await).await;
}

async fn down_for_an_hour(mut journal: Journal) {
    let clock = TestClock::new();
    let secret = webhook::generate_secret();
    let receiver = Receiver::start(secret.clone(), clock.clone()).await;
    receiver.set_mode(Mode::Fail(StatusCode::SERVICE_UNAVAILABLE));
    let hook = journal.webhook(&receiver.url(), &secret).await;
    let mut events = journal.add(20).await;
    let delivery = journal.delivery(&clock, "gw-a", 100);

    // An hour of attempts, each when the back-off says.
    let mut passes = 0;
    loop {
        let report = delivery.run_once().await.unwrap();
        assert_eq!(report.delivered, 0);
        let progress = journal.progress(hook).await;
        assert_eq!(progress.cursor, 0, "nothing after the failing event");
        assert_eq!(report.next_attempt_at, progress.next_attempt_at);
        let next = progress.next_attempt_at.unwrap();
        if next >= START + Duration::from_secs(3600) {
            break;
        }
        clock.set(next);
        passes += 1;
        assert!(passes < 50, "the back-off does not grow");
        // An event committed while the receiver is down waits its turn.
        if passes == 3 {
            events.extend(journal.add(1).await);
        }
    }
    // 0 s, 10 s, 40 s, 2:40, 7:40, 22:40, 52:40 (each wait ±10 %): seven attempts.
    assert_eq!(receiver.hits(), 7);
    let progress = journal.progress(hook).await;
    assert_eq!(progress.attempts, 7);
    if journal.keeps_first_failure {
        assert_eq!(progress.first_failed_at, Some(START));
    }
    assert_eq!(
        progress.last_error.as_deref(),
        Some("HTTP 503 Service Unavailable")
    );
    let wait = progress.next_attempt_at.unwrap() - START;
    assert!(
        wait >= Duration::from_secs(6000) && wait <= Duration::from_secs(7500),
        "{wait}"
    );
    assert!(receiver.accepted_seqs().is_empty());

    // Before the back-off ends, a pass sends nothing.
    receiver.set_mode(Mode::Up);
    let report = delivery.run_once().await.unwrap();
    assert_eq!(report.delivered, 0);
    assert_eq!(receiver.hits(), 7);

    clock.set(progress.next_attempt_at.unwrap());
    let report = delivery.run_once().await.unwrap();
    assert_eq!(report.delivered, 21);
    assert_eq!(receiver.accepted_seqs(), seqs(&events));
    assert_eq!(
        journal.progress(hook).await,
        WebhookProgress {
            cursor: events[20].seq,
            ..WebhookProgress::default()
        }
    );
}

#[tokio::test]
async fn an_unreachable_receiver_is_a_failure_named_without_the_url() {
    let clock = TestClock::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut journal = Journal::new().await;
    journal.add(2).await;
    let secret = webhook::generate_secret();
    let hook = journal
        .webhook(&format!("http://{addr}/hook?token=sekrit-token"), &secret)
        .await;
    let delivery = journal.delivery(&clock, "gw-a", 100);

    let report = delivery.run_once().await.unwrap();
    assert_eq!((report.delivered, report.failed), (0, 1));
    let progress = journal.progress(hook).await;
    assert_eq!(progress.attempts, 1);
    let error = progress.last_error.unwrap();
    assert!(error.starts_with("cannot connect"), "{error}");
    assert!(!error.contains("sekrit-token"), "{error}");
    assert!(!error.contains(secret.expose()), "{error}");
}

#[tokio::test]
async fn an_event_failing_for_retry_for_becomes_a_dead_letter_and_replays() {
    dead_letter_and_replay(Journal::new().await).await;
}

#[tokio::test]
async fn on_sqlite_an_event_failing_for_retry_for_becomes_a_dead_letter_and_replays() {
    dead_letter_and_replay(Journal::sqlite().await).await;
}

async fn dead_letter_and_replay(mut journal: Journal) {
    let clock = TestClock::new();
    let secret = webhook::generate_secret();
    let receiver = Receiver::start(secret.clone(), clock.clone()).await;
    receiver.set_mode(Mode::Fail(StatusCode::INTERNAL_SERVER_ERROR));
    let hook = journal.webhook(&receiver.url(), &secret).await;
    let events = journal.add(2).await;
    let delivery = journal.delivery(&clock, "gw-a", 100);
    let retry_for = delivery.options().retry_for;
    assert_eq!(retry_for, Duration::from_secs(26 * 3600));
    // Without the first failure's time, it is estimated from the attempts at nominal waits
    // (the real ones are ±10 %).
    let slack = if journal.keeps_first_failure {
        Duration::ZERO
    } else {
        retry_for / 10
    };

    let mut passes = 0;
    loop {
        let report = delivery.run_once().await.unwrap();
        if report.dead_lettered > 0 {
            assert_eq!(report.dead_lettered, 1);
            break;
        }
        assert!(
            clock.now() - START < retry_for + slack,
            "not dead before retry_for"
        );
        clock.set(journal.progress(hook).await.next_attempt_at.unwrap());
        passes += 1;
        assert!(passes < 100);
    }
    let dead = journal.notify().dead_letters(hook).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].event, events[0]);
    assert!(!dead[0].replay);
    assert_eq!(dead[0].last_error, "HTTP 500 Internal Server Error");
    assert_eq!(dead[0].failed_at, clock.now());
    assert!(clock.now() - START >= retry_for - slack);
    assert!(clock.now() - START < retry_for + slack + Duration::from_secs(3600 + 360));
    // 6 waits up to 30 min, then hourly: about 32 attempts in 26 hours.
    assert!(
        (30..=36).contains(&dead[0].attempts),
        "{}",
        dead[0].attempts
    );
    // The cursor moved past it; the next event was tried at once and backs off on its own.
    let progress = journal.progress(hook).await;
    assert_eq!(progress.cursor, events[0].seq);
    assert_eq!(progress.attempts, 1);
    if journal.keeps_first_failure {
        assert_eq!(progress.first_failed_at, Some(clock.now()));
    }

    // The receiver is fixed; the admin replays: the dead letter goes first.
    receiver.set_mode(Mode::Up);
    assert_eq!(
        journal.notify().request_replay(hook, None).await.unwrap(),
        1
    );
    let report = delivery.run_once().await.unwrap();
    assert_eq!((report.replayed, report.delivered), (1, 0));
    assert_eq!(receiver.accepted_seqs(), vec![events[0].seq]);
    assert!(
        journal
            .notify()
            .dead_letters(hook)
            .await
            .unwrap()
            .is_empty()
    );

    clock.set(progress.next_attempt_at.unwrap());
    let report = delivery.run_once().await.unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(receiver.accepted_seqs(), seqs(&events));
}

#[tokio::test]
async fn a_failed_replay_stays_a_dead_letter() {
    let clock = TestClock::new();
    let secret = webhook::generate_secret();
    let receiver = Receiver::start(secret.clone(), clock.clone()).await;
    receiver.set_mode(Mode::Fail(StatusCode::BAD_GATEWAY));
    let mut journal = Journal::new().await;
    let hook = journal.webhook(&receiver.url(), &secret).await;
    let events = journal.add(1).await;
    let mut options = DeliveryOptions {
        owner: "gw-a".into(),
        ..DeliveryOptions::default()
    };
    options.retry_for = Duration::from_secs(60);
    let delivery = Delivery::new(
        journal.store.clone(),
        &NetworkSettings::default(),
        clock.clone(),
        options,
    )
    .unwrap();
    delivery.run_once().await.unwrap();
    clock.advance(Duration::from_secs(61));
    let report = delivery.run_once().await.unwrap();
    assert_eq!(report.dead_lettered, 1);

    journal
        .notify()
        .request_replay(hook, Some(events[0].seq))
        .await
        .unwrap();
    receiver.set_mode(Mode::Fail(StatusCode::TOO_MANY_REQUESTS));
    let report = delivery.run_once().await.unwrap();
    assert_eq!((report.replayed, report.failed), (0, 1));
    let dead = journal.notify().dead_letters(hook).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(!dead[0].replay);
    assert_eq!(dead[0].last_error, "HTTP 429 Too Many Requests");
    assert!(receiver.accepted_seqs().is_empty());
}

#[tokio::test]
async fn a_redirect_is_a_failure_and_not_followed() {
    let clock = TestClock::new();
    let secret = webhook::generate_secret();
    let receiver = Receiver::start(secret.clone(), clock.clone()).await;
    receiver.set_mode(Mode::Redirect);
    let mut journal = Journal::new().await;
    let hook = journal.webhook(&receiver.url(), &secret).await;
    journal.add(3).await;
    let delivery = journal.delivery(&clock, "gw-a", 100);

    let report = delivery.run_once().await.unwrap();
    assert_eq!((report.delivered, report.failed), (0, 1));
    assert_eq!(receiver.hits(), 1, "one attempt, then back-off");
    assert_eq!(receiver.redirected.load(Ordering::SeqCst), 0);
    let progress = journal.progress(hook).await;
    assert_eq!(progress.cursor, 0);
    assert_eq!(progress.attempts, 1);
    let error = progress.last_error.unwrap();
    assert!(error.starts_with("HTTP 302 Found"), "{error}");
    assert!(error.contains("not followed"), "{error}");
}

#[tokio::test]
async fn two_workers_on_one_store_deliver_each_event_once() {
    let clock = TestClock::new();
    let mut journal = Journal::new().await;
    let mut receivers = Vec::new();
    let mut hooks = Vec::new();
    for _ in 0..3 {
        let secret = webhook::generate_secret();
        let receiver = Receiver::start(secret.clone(), clock.clone()).await;
        hooks.push(journal.webhook(&receiver.url(), &secret).await);
        receivers.push(receiver);
    }
    let a = journal.delivery(&clock, "gw-a", 4);
    let b = journal.delivery(&clock, "gw-b", 4);

    let mut events = Vec::new();
    let mut delivered = 0;
    for _ in 0..5 {
        events.extend(journal.add(10).await);
        let (ra, rb) = tokio::join!(a.run_once(), b.run_once());
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        delivered += ra.delivered + rb.delivered;
        clock.advance(Duration::from_secs(5));
    }
    assert_eq!(delivered, 3 * 50);
    for r in &receivers {
        assert_eq!(r.accepted_seqs(), seqs(&events));
    }

    // One worker stops; when its leases run out the other takes its webhooks over.
    clock.advance(Duration::from_secs(61));
    events.extend(journal.add(5).await);
    let report = b.run_once().await.unwrap();
    assert_eq!(report.skipped, 0);
    assert_eq!(report.delivered, 3 * 5);
    for (r, hook) in receivers.iter().zip(&hooks) {
        assert_eq!(r.accepted_seqs(), seqs(&events));
        assert_eq!(
            journal.progress(*hook).await.cursor,
            events.last().unwrap().seq
        );
    }
    // While b holds them, a sends nothing.
    journal.add(1).await;
    let report = a.run_once().await.unwrap();
    assert_eq!((report.skipped, report.delivered), (3, 0));
}

#[tokio::test]
async fn run_delivers_when_poked_and_stops_cleanly() {
    let clock = TestClock::new();
    let secret = webhook::generate_secret();
    let receiver = Receiver::start(secret.clone(), clock.clone()).await;
    let mut journal = Journal::new().await;
    journal.webhook(&receiver.url(), &secret).await;
    let delivery = Delivery::new(
        journal.store.clone(),
        &NetworkSettings::default(),
        clock.clone(),
        DeliveryOptions {
            owner: "gw-a".into(),
            // Only a poke wakes it within this test.
            idle_poll: Duration::from_secs(24 * 3600),
            ..DeliveryOptions::default()
        },
    )
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn({
        let delivery = delivery.clone();
        async move {
            delivery
                .run(async {
                    let _ = stopped.await;
                })
                .await;
        }
    });
    let mut count = receiver.accepted_count.subscribe();
    let wait_for = |count: &mut tokio::sync::watch::Receiver<usize>, n: usize| {
        let mut count = count.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(30), count.wait_for(|c| *c >= n))
                .await
                .expect("delivered in time")
                .map(|c| *c)
                .unwrap()
        }
    };

    let mut events = journal.add(5).await;
    delivery.poke();
    assert_eq!(wait_for(&mut count, 5).await, 5);
    events.extend(journal.add(5).await);
    delivery.poke();
    assert_eq!(wait_for(&mut count, 10).await, 10);
    assert_eq!(receiver.accepted_seqs(), seqs(&events));

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), worker)
        .await
        .expect("the worker stops")
        .unwrap();
    assert_eq!(receiver.hits(), 10);
}
