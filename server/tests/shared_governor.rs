//! Three gateways on one PostgreSQL keep Microsoft's per-mailbox limits together: under load on
//! one mailbox, through all three at once, the mock Graph (enforcing the limits as Exchange
//! Online does) refuses nothing, and never sees more requests in progress than it allows.
//!
//! The gateways run in this process, each with its own services and its own pool on the same
//! database (a throwaway cluster), as separate processes would; they share nothing but it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use exgate_core::governor::GovernorPolicy;
use exgate_core::model::{MailboxAccess, StaticUser, StaticUserId};
use exgate_core::secret::Secret;
use exgate_server::AppState;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};
use exgate_testkit::graph::ThrottlePolicy;
use exgate_testkit::postgres::TempPostgres;

/// The mock's limits: Exchange Online's 4 concurrent requests, and a budget of 40 requests per
/// 2 seconds (Microsoft's 10,000 per 10 minutes, scaled to a test).
const MOCK: ThrottlePolicy = ThrottlePolicy {
    concurrent: 4,
    requests: 40,
    window: Duration::from_secs(2),
};

/// One gateway on `db`, serving on 127.0.0.1:0; its base URL and state.
async fn gateway(
    mock: &MockMicrosoft,
    db: &str,
    home: &std::path::Path,
    n: usize,
) -> (String, AppState) {
    let env = exgate_core::config::Env::from_pairs([
        ("HOME", home.join(format!("home{n}")).display().to_string()),
        (
            "EXGATE_SYSTEM_CONFIG",
            home.join("none").display().to_string(),
        ),
        // One key for all: they open each other's sealed rows.
        (
            "EXGATE_MASTER_KEY_FILE",
            home.join("master.key").display().to_string(),
        ),
        ("EXGATE__STORE__URL", db.to_owned()),
        ("EXGATE__ENDPOINTS__AUTHORITY_HOST", mock.base_url()),
        ("EXGATE__ENDPOINTS__GRAPH_URL", mock.graph_url()),
    ]);
    let mut settings = exgate_core::config::load(None, &env).expect("settings");
    // The mock's policy. The governor's margin (a 500th of the window, at least 10 ms) covers
    // the spread of network delays between a request let through and its arrival; here three
    // gateways and the mock share one busy machine, whose scheduling can delay a request by
    // more, so the gateways' window is the mock's plus 100 ms (5%).
    settings.governor = GovernorPolicy {
        concurrent: MOCK.concurrent as usize,
        requests: MOCK.requests,
        window: MOCK.window + Duration::from_millis(100),
        ..GovernorPolicy::default()
    };
    let services = exgate_core::services::Services::open(
        &mut settings,
        Arc::new(exgate_core::clock::SystemClock),
    )
    .await
    .expect("services");
    assert!(
        services.mailboxes.governor().is_shared(),
        "a PostgreSQL store shares the governor"
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_gateways_under_load_never_exceed_the_mailbox_limit_together() {
    let cluster = TempPostgres::start();
    let db = cluster.create_database();
    let mock = MockMicrosoft::start(Seed::contoso()).await.expect("mock");
    mock.set_graph_throttling(Some(MOCK));
    let home = tempfile::tempdir().expect("tempdir");
    let mut gateways = Vec::new();
    for n in 0..3 {
        gateways.push(gateway(&mock, &db, home.path(), n).await);
    }
    // One app-only connection, one static user and one key, made through the first gateway
    // and seen by the others through the database.
    let state = &gateways[0].1;
    let spec = exgate_core::model::ConnectionSpec {
        tenant: Some(seed::TENANT_ID.into()),
        auth: Some("oauth2-app-only".into()),
        client_id: Some(seed::DAEMON_APP.into()),
        client_secret: Some(Secret::new(seed::DAEMON_APP_SECRET)),
        ..Default::default()
    };
    state
        .connections
        .add("daemon", &spec)
        .await
        .expect("connection");
    let conn = state
        .connections
        .get("daemon")
        .await
        .expect("get")
        .connection;
    state
        .store
        .insert_static_user(&StaticUser {
            id: StaticUserId::new_random(),
            connection: conn.id,
            principal: "adele".parse().expect("principal"),
            mailbox: seed::ADELE.parse().expect("mailbox"),
            access: MailboxAccess::Impersonation,
            created_at: time::OffsetDateTime::now_utc(),
        })
        .await
        .expect("static user");
    let (_, key) = state
        .keys
        .create("load", exgate_core::apikeys::KeyScope::Admin)
        .await
        .expect("key");
    let auth = format!("Bearer {}", key.expose());

    // 24 clients, spread over the three gateways, list Adele's messages as fast as they are
    // answered for a little more than two of the mock's windows.
    let http = reqwest::Client::new();
    let run = MOCK.window * 2 + Duration::from_millis(500);
    let started = Instant::now();
    let clients: Vec<_> = (0..24)
        .map(|c| {
            let url = format!(
                "{}/api/v1/connections/daemon/users/adele/messages?limit=5",
                gateways[c % 3].0
            );
            let (http, auth) = (http.clone(), auth.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                while started.elapsed() < run {
                    let resp = http
                        .get(&url)
                        .header("authorization", &auth)
                        .timeout(Duration::from_secs(60))
                        .send()
                        .await
                        .expect("request");
                    let status = resp.status().as_u16();
                    let body = resp.text().await.expect("body");
                    statuses.push((status, body));
                }
                statuses
            })
        })
        .collect();
    let mut answered = 0usize;
    for c in clients {
        for (status, body) in c.await.expect("client") {
            assert_eq!(status, 200, "{body}");
            answered += 1;
        }
    }
    assert_eq!(
        mock.graph_throttled(seed::ADELE),
        0,
        "the mock refused requests ({answered} answered)"
    );
    assert!(
        mock.max_concurrent_seen(seed::ADELE) <= MOCK.concurrent as usize,
        "{} in progress at once",
        mock.max_concurrent_seen(seed::ADELE)
    );
    // The load went beyond one window's budget, so the limit was reached and kept.
    assert!(
        answered > MOCK.requests as usize * 3 / 2,
        "only {answered} answered: the load did not reach the limit"
    );
    drop(gateways);
    drop(cluster);
}
