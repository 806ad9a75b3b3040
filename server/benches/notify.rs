//! `cargo xtask bench`: change notifications at scale. An app-only gateway over the mock
//! watches the Inbox of 1,000 mailboxes (a static user and a watch each), with Graph push on:
//! each watch holds a Graph subscription to the gateway's real address, and the safety poll is
//! an hour away, so every event comes from a Graph notification. One webhook forwards the
//! events to a receiver in the same process. Messages are put straight into random mailboxes
//! of the mock's store; measured: from a message's arrival to its `message.created` reaching
//! the receiver — one message at a time (the latency: the "within a second"), then all
//! at once (the rate: events forwarded per second, from the first arrival to the last receipt).
//! Rows for xtask's table are printed as `##row|label|value|target`.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use exgate_core::notify::NewWatch;
use exgate_core::secret::Secret;
use exgate_server::AppState;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::directory::{ExchangeSettings, SharedMailboxSeed};
use exgate_testkit::entra::{Seed, seed};
use exgate_testkit::graph::{Address, MessageContent};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Mailboxes watched (shared mailboxes added to the seed's tenant).
const MAILBOXES: usize = 1_000;
/// Messages delivered one at a time, each waited for: the latency's samples.
const ONE_BY_ONE: usize = 500;
/// Messages delivered at once: the rate.
const BURST: usize = 2_000;
/// Messages delivered one at a time before anything is measured.
const WARM_UP: usize = 20;
/// The longest any wait may take before the run fails.
const PATIENCE: Duration = Duration::from_secs(300);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A deterministic pseudo-random sequence (xorshift64*): which mailbox gets each message.
struct Picks(u64);

impl Picks {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

/// What the webhook receiver got: when, and the request.
type Hit = (Instant, HeaderMap, Bytes);

/// A webhook receiver on 127.0.0.1:0: each request, stamped on arrival, goes to a channel.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Hit>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let _ = tx.send((Instant::now(), headers, body));
            async { StatusCode::OK }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, rx)
}

/// The events received, in order, as `(arrival, item ID, type)`.
struct Events {
    rx: mpsc::UnboundedReceiver<Hit>,
    secret: Secret,
    checked: bool,
}

impl Events {
    async fn next(&mut self) -> (Instant, String, String) {
        let (at, headers, body) = tokio::time::timeout(PATIENCE, self.rx.recv())
            .await
            .expect("an event within the patience")
            .expect("the receiver runs");
        if !self.checked {
            // The first delivery's signature is checked: what arrives is exgate's.
            exgate_core::notify::webhook::verify(
                &headers,
                &body,
                &self.secret,
                time::OffsetDateTime::now_utc(),
                exgate_core::notify::webhook::TOLERANCE,
            )
            .expect("a valid signature");
            self.checked = true;
        }
        let event: Value = serde_json::from_slice(&body).expect("an event as JSON");
        let item = event["item_id"].as_str().unwrap_or_default().to_owned();
        let kind = event["type"].as_str().unwrap_or_default().to_owned();
        (at, item, kind)
    }
}

fn mailbox(i: usize) -> String {
    format!("watched{i:04}@{}", seed::TENANT_DOMAIN)
}

/// Puts one message into the Inbox of `mailbox`; answers its Graph ID and when it was put.
fn put(mock: &MockMicrosoft, mailbox: &str, subject: &str) -> (String, Instant) {
    let message = MessageContent::new(
        "inbox",
        subject,
        Address::new("Megan Bowen", seed::MEGAN),
        time::OffsetDateTime::now_utc(),
    );
    let at = Instant::now();
    let id = mock
        .add_messages(mailbox, &[message])
        .expect("the message is added")
        .pop()
        .expect("its ID");
    (id, at)
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let started = Instant::now();
        let mut seed = Seed::contoso();
        for i in 0..MAILBOXES {
            seed.tenants[0].shared_mailboxes.push(SharedMailboxSeed {
                address: mailbox(i),
                display_name: format!("Watched {i}"),
                object_id: format!("b0b0b0b0-0000-4000-8000-{i:012}"),
                exchange: ExchangeSettings::default(),
            });
        }
        let mock = MockMicrosoft::start(seed).await.expect("mock");
        let home = tempfile::tempdir().expect("tempdir");
        let env = exgate_core::config::Env::from_pairs([
            ("HOME", home.path().display().to_string()),
            ("XDG_CONFIG_HOME", home.path().join("config").display().to_string()),
            ("XDG_DATA_HOME", home.path().join("data").display().to_string()),
            ("EXGATE_SYSTEM_CONFIG", home.path().join("none").display().to_string()),
            ("EXGATE__ENDPOINTS__AUTHORITY_HOST", mock.base_url()),
            ("EXGATE__ENDPOINTS__GRAPH_URL", mock.graph_url()),
            // Events come from Graph's notifications, not from the safety poll.
            ("EXGATE__NOTIFY__SAFETY_POLL_SECS", "3600".into()),
        ]);
        let mut settings = exgate_core::config::load(None, &env).expect("settings");
        let services = exgate_core::services::Services::open(
            &mut settings,
            Arc::new(exgate_core::clock::SystemClock),
        )
        .await
        .expect("services");
        let store = Arc::clone(&services.store);
        // Graph posts its notifications to the gateway's real address.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state = AppState::new(services, settings, base.clone());

        let spec = exgate_core::model::ConnectionSpec {
            tenant: Some(seed::TENANT_ID.into()),
            auth: Some("oauth2-app-only".into()),
            client_id: Some(seed::DAEMON_APP.into()),
            client_secret: Some(Secret::new(seed::DAEMON_APP_SECRET)),
            ..Default::default()
        };
        let conn = state.connections.add("bench", &spec).await.expect("connection");
        for i in 0..MAILBOXES {
            store
                .insert_static_user(&exgate_core::model::StaticUser {
                    id: exgate_core::model::StaticUserId::new_random(),
                    connection: conn.id,
                    principal: format!("w{i:04}").parse().expect("principal"),
                    mailbox: mailbox(i).parse().expect("mailbox"),
                    access: exgate_core::model::MailboxAccess::Impersonation,
                    created_at: time::OffsetDateTime::now_utc(),
                })
                .await
                .expect("static user");
        }
        let (_, key) = state
            .keys
            .create("bench", exgate_core::apikeys::KeyScope::Connections(vec![conn.id]))
            .await
            .expect("key");
        let server_state = state.clone();
        tokio::spawn(async move {
            let _ = exgate_server::serve(listener, server_state, std::future::pending()).await;
        });
        let _tasks = exgate_server::spawn_notifications(&state);

        let (hook_url, rx) = receiver().await;
        let http = reqwest::Client::new();
        let hook: Value = http
            .post(format!("{base}/api/v1/connections/bench/webhooks"))
            .bearer_auth(key.expose())
            .json(&json!({ "url": hook_url }))
            .send()
            .await
            .expect("webhook request")
            .json()
            .await
            .expect("webhook answer");
        let secret = Secret::new(hook["secret"].as_str().expect("the webhook's secret"));
        let mut events = Events { rx, secret, checked: false };

        let users_done = started.elapsed();
        let notifier = Arc::clone(&state.notifier);
        let made = futures_util::stream::iter(0..MAILBOXES)
            .map(|i| {
                let notifier = Arc::clone(&notifier);
                async move {
                    notifier
                        .create_watch(NewWatch {
                            connection: "bench".into(),
                            principal: format!("w{i:04}").parse().expect("principal"),
                            mailbox: None,
                            watched: Vec::new(),
                            api_key: None,
                        })
                        .await
                        .expect("watch")
                }
            })
            .buffer_unordered(16)
            .count()
            .await;
        assert_eq!(made, MAILBOXES);
        let watches_done = started.elapsed();
        // Each watch's task subscribes at Graph (the validation handshake with the gateway's
        // URL included); the run starts once every subscription is there.
        let graph = mock.graph_state();
        let waited = Instant::now();
        while graph.subscription_ids().len() < MAILBOXES {
            assert!(waited.elapsed() < PATIENCE, "only {} subscriptions", graph.subscription_ids().len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let subscribed = started.elapsed();
        println!(
            "setup: {MAILBOXES} mailboxes and static users {:.1} s, {MAILBOXES} watches (first sync each) {:.1} s, their Graph subscriptions {:.1} s; {:.1} s in all",
            users_done.as_secs_f64(),
            (watches_done - users_done).as_secs_f64(),
            (subscribed - watches_done).as_secs_f64(),
            subscribed.as_secs_f64(),
        );

        let mut picks = Picks(0x9e37_79b9_7f4a_7c15);
        let mut unexpected = 0usize;
        // One at a time: each message's event is waited for before the next is put.
        let mut latencies = Vec::with_capacity(ONE_BY_ONE);
        for n in 0..WARM_UP + ONE_BY_ONE {
            let (id, at) = put(&mock, &mailbox(picks.next(MAILBOXES)), &format!("One {n}"));
            loop {
                let (got, item, kind) = events.next().await;
                if item == id && kind == "message.created" {
                    if n >= WARM_UP {
                        latencies.push(got - at);
                    }
                    break;
                }
                unexpected += 1;
            }
        }
        latencies.sort();
        let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
        println!(
            "one by one, {ONE_BY_ONE} messages: change -> webhook p50 {}, p90 {}, p99 {}, max {}",
            ms(p50),
            ms(percentile(&latencies, 0.9)),
            ms(p99),
            ms(latencies[latencies.len() - 1]),
        );

        // A burst: every message put at once, then every event awaited.
        let before = state.notifier.store().expect("journal").last_event_seq().await.expect("seq");
        let mut committed = state.notifier.committed();
        let mut put_at: HashMap<String, Instant> = HashMap::with_capacity(BURST);
        let first = Instant::now();
        for n in 0..BURST {
            let (id, at) = put(&mock, &mailbox(picks.next(MAILBOXES)), &format!("Burst {n}"));
            put_at.insert(id, at);
        }
        let all_put = first.elapsed();
        // Where the time goes: when Graph had told every change (its POSTs answered), and when
        // the journal held every event.
        let told = tokio::spawn({
            let graph = graph.clone();
            async move {
                graph.notifications_settled().await;
                first.elapsed()
            }
        });
        let journaled = tokio::spawn(async move {
            let _ = committed.wait_for(|s| *s >= before + BURST as i64).await;
            first.elapsed()
        });
        let mut burst = Vec::with_capacity(BURST);
        let mut last = first;
        while !put_at.is_empty() {
            let (got, item, kind) = events.next().await;
            match put_at.remove(&item) {
                Some(at) if kind == "message.created" => {
                    burst.push(got - at);
                    last = got;
                }
                _ => unexpected += 1,
            }
        }
        let span = last - first;
        let rate = BURST as f64 / span.as_secs_f64();
        burst.sort();
        println!(
            "burst, {BURST} messages put in {} ms: every event received {:.2} s after the first put ({rate:.0} events/s); change -> webhook p50 {}, p99 {}, max {}",
            all_put.as_millis(),
            span.as_secs_f64(),
            ms(percentile(&burst, 0.5)),
            ms(percentile(&burst, 0.99)),
            ms(burst[burst.len() - 1]),
        );
        println!(
            "  of which: Graph had posted every notification at {:.2} s, the journal held every event at {:.2} s, the webhook had them all at {:.2} s",
            told.await.expect("told").as_secs_f64(),
            journaled.await.expect("journaled").as_secs_f64(),
            span.as_secs_f64(),
        );
        if unexpected > 0 {
            println!("({unexpected} other deliveries received: not message.created of a message put here)");
        }
        // The engine's per-watch upkeep: every `lease / 3` it claims each watch again, one
        // committed UPDATE per watch. The same round, timed here.
        let notes = state.notifier.store().expect("store");
        let rows = notes.watches().await.expect("watches");
        let settings = state.notifier.settings();
        let round = Instant::now();
        for row in &rows {
            let now = time::OffsetDateTime::now_utc();
            notes
                .claim_watch(row.id, &settings.owner, now, now + settings.lease)
                .await
                .expect("claim");
        }
        println!(
            "(the engine's claim round over the {} watches, every {} s, takes {} ms)",
            rows.len(),
            (settings.lease / 3).as_secs(),
            round.elapsed().as_millis(),
        );
        println!("##row|notifications: change -> webhook p50 (1,000 mailboxes)|{}|under 1 s", ms(p50));
        println!("##row|notifications: change -> webhook p99 (1,000 mailboxes)|{}|(reported)", ms(p99));
        println!("##row|notifications: events forwarded per second|{rate:.0}/s|(reported)");
        drop(state);
    });
}
