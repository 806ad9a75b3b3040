//! `cargo xtask bench instances`: several gateways on one PostgreSQL.
//!
//! 1. Mailbox-list throughput on one mailbox through one, two and three gateways on one
//!    PostgreSQL (a throwaway cluster), Graph's 4 concurrent requests per mailbox kept together
//!    through the shared governor (the budget raised to 1,000,000 per 10 minutes, so that each
//!    instance's pace does not decide) and a mock Graph that answers after 20 ms: at most 4 / 20 ms = 200 requests a second can be had, however
//!    many gateways; what sharing the mailbox's slots between instances costs shows as the
//!    distance to it.
//! 2. The store's added p50 latency per request: one gateway on SQLite, one on PostgreSQL, the
//!    same calls (two mailboxes, 8 clients, a mock that answers at once, the same limits):
//!    PostgreSQL's p50 minus SQLite's. On the hot path neither store is read (caches), so what
//!    PostgreSQL adds is the shared governor's exchanges (leases, slots taken and renewed).
//!
//! Gateways run in this process, each with its own services and pool, as separate processes
//! would. Rows for xtask's table are printed as `##row|label|value|target`.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use exgate_core::model::{MailboxAccess, StaticUser, StaticUserId};
use exgate_core::secret::Secret;
use exgate_server::AppState;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};
use exgate_testkit::postgres::TempPostgres;

/// One gateway on `store_url` (or SQLite under its home), serving on 127.0.0.1:0.
async fn gateway(
    mock: &MockMicrosoft,
    store_url: Option<&str>,
    home: &std::path::Path,
    n: usize,
) -> (String, AppState) {
    let mut pairs = vec![
        ("HOME", home.join(format!("home{n}")).display().to_string()),
        (
            "EXGATE_SYSTEM_CONFIG",
            home.join("none").display().to_string(),
        ),
        (
            "EXGATE_MASTER_KEY_FILE",
            home.join("master.key").display().to_string(),
        ),
        ("EXGATE__ENDPOINTS__AUTHORITY_HOST", mock.base_url()),
        ("EXGATE__ENDPOINTS__GRAPH_URL", mock.graph_url()),
        // Graph's 4 concurrent requests per mailbox, but a budget that the pace (per instance)
        // does not hold back: the rows measure sharing, not the window.
        ("EXGATE__GRAPH__REQUESTS", "1000000".into()),
    ];
    if let Some(url) = store_url {
        pairs.push(("EXGATE__STORE__URL", url.to_owned()));
    }
    let env = exgate_core::config::Env::from_pairs(pairs);
    let mut settings = exgate_core::config::load(None, &env).expect("settings");
    let services = exgate_core::services::Services::open(
        &mut settings,
        Arc::new(exgate_core::clock::SystemClock),
    )
    .await
    .expect("services");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let state = AppState::new(services, settings, base.clone());
    let served = state.clone();
    tokio::spawn(async move {
        let _ = exgate_server::serve(listener, served, std::future::pending()).await;
    });
    (base, state)
}

/// An app-only connection with Adele and Megan as static users, and an admin key.
async fn provision(state: &AppState) -> String {
    let spec = exgate_core::model::ConnectionSpec {
        tenant: Some(seed::TENANT_ID.into()),
        auth: Some("oauth2-app-only".into()),
        client_id: Some(seed::DAEMON_APP.into()),
        client_secret: Some(Secret::new(seed::DAEMON_APP_SECRET)),
        ..Default::default()
    };
    state
        .connections
        .add("bench", &spec)
        .await
        .expect("connection");
    let conn = state
        .connections
        .get("bench")
        .await
        .expect("get")
        .connection;
    for (p, m) in [("adele", seed::ADELE), ("megan", seed::MEGAN)] {
        state
            .store
            .insert_static_user(&StaticUser {
                id: StaticUserId::new_random(),
                connection: conn.id,
                principal: p.parse().expect("principal"),
                mailbox: m.parse().expect("mailbox"),
                access: MailboxAccess::Impersonation,
                created_at: time::OffsetDateTime::now_utc(),
            })
            .await
            .expect("static user");
    }
    let (_, key) = state
        .keys
        .create("bench", exgate_core::apikeys::KeyScope::Admin)
        .await
        .expect("key");
    format!("Bearer {}", key.expose())
}

/// `clients` clients send `calls` requests in all, client `c` to `urls[c % len]`; every latency,
/// and the seconds it took.
async fn drive(clients: usize, calls: usize, urls: &[String], auth: &str) -> (Vec<Duration>, f64) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .expect("client");
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (http, url, auth) = (http.clone(), urls[c % urls.len()].clone(), auth.to_owned());
            tokio::spawn(async move {
                let mut times = Vec::new();
                for _ in 0..calls / clients {
                    let t = Instant::now();
                    let resp = http
                        .get(&url)
                        .header("authorization", &auth)
                        .send()
                        .await
                        .expect("request");
                    assert!(resp.status().is_success(), "{}", resp.status());
                    resp.bytes().await.expect("body");
                    times.push(t.elapsed());
                }
                times
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client"));
    }
    (all, started.elapsed().as_secs_f64())
}

fn p50(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let cluster = TempPostgres::start();
        let mock = MockMicrosoft::start(Seed::contoso()).await.expect("mock");
        println!("(numbers from a shared, busy machine: compare rows of one run, not runs)");

        // 1. Throughput on one mailbox through 1, 2, 3 gateways (a database each, so no ledger
        // carries over).
        mock.set_graph_latency(Duration::from_millis(20));
        for n in 1..=3usize {
            let db = cluster.create_database();
            let home = tempfile::tempdir().expect("tempdir");
            let mut gateways = Vec::new();
            for i in 0..n {
                gateways.push(gateway(&mock, Some(&db), home.path(), i).await);
            }
            let auth = provision(&gateways[0].1).await;
            let urls: Vec<String> = gateways
                .iter()
                .map(|(base, _)| {
                    format!("{base}/api/v1/connections/bench/users/adele/messages?limit=10")
                })
                .collect();
            drive(12, 120, &urls, &auth).await;
            let (samples, secs) = drive(12, 1200, &urls, &auth).await;
            let rate = samples.len() as f64 / secs;
            println!("{n} gateway(s) on one PostgreSQL, one mailbox, 20 ms backend: {rate:.0} req/s, p50 {:?}", p50(samples));
            println!(
                "##row|mailbox list, one mailbox, {n} gateway(s) on one PostgreSQL, 20 ms backend|{rate:.0} req/s|<= 200 (4 concurrent / 20 ms)"
            );
        }

        // 2. The store's added p50: SQLite against PostgreSQL, one gateway each.
        mock.set_graph_latency(Duration::ZERO);
        let sqlite_home = tempfile::tempdir().expect("tempdir");
        let pg_home = tempfile::tempdir().expect("tempdir");
        let db = cluster.create_database();
        let sqlite = gateway(&mock, None, sqlite_home.path(), 0).await;
        let pg = gateway(&mock, Some(&db), pg_home.path(), 0).await;
        let sqlite_auth = provision(&sqlite.1).await;
        let pg_auth = provision(&pg.1).await;
        let urls = |base: &str| -> Vec<String> {
            ["adele", "megan"]
                .iter()
                .map(|p| format!("{base}/api/v1/connections/bench/users/{p}/messages?limit=10"))
                .collect()
        };
        let (sqlite_urls, pg_urls) = (urls(&sqlite.0), urls(&pg.0));
        drive(8, 400, &sqlite_urls, &sqlite_auth).await;
        drive(8, 400, &pg_urls, &pg_auth).await;
        let (mut on_sqlite, mut on_pg) = (Vec::new(), Vec::new());
        // Interleaved rounds: the machine's other load falls on both alike.
        for _ in 0..3 {
            on_sqlite.extend(drive(8, 800, &sqlite_urls, &sqlite_auth).await.0);
            on_pg.extend(drive(8, 800, &pg_urls, &pg_auth).await.0);
        }
        let (s, p) = (p50(on_sqlite), p50(on_pg));
        let added = p.as_secs_f64() - s.as_secs_f64();
        println!("mailbox list p50: SQLite {s:?}, PostgreSQL {p:?}");
        println!(
            "##row|store's added p50 per mailbox request, PostgreSQL vs SQLite (8 clients, 0 ms backend)|{:+.0} us ({p:?} vs {s:?})|-",
            added * 1e6
        );
        drop((sqlite, pg));
        drop(cluster);
    });
}
