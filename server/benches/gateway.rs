//! `cargo xtask bench`, part 3: what the gateway adds to a mailbox call. Many concurrent clients
//! list messages through the gateway, then the same calls go straight to the mock Graph with the
//! same token; both in one run, reported as p50/p99, their ratio (target: at most 1.25x at p50) and
//! the latency the gateway adds; once with a mock that answers at once, once with 20 ms of backend
//! latency, closer to a real call to Microsoft Graph; each with 8 and with 64 concurrent clients.
//! Rows for xtask's table are printed as `##row|label|value|target`.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use exgate_server::AppState;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};

/// Calls in each measured round, spread over the clients.
const CALLS: usize = 640;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn drive(clients: usize, urls: Vec<(String, String)>) -> (Vec<Duration>, f64) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .expect("client");
    let calls_per_client = CALLS / clients;
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (http, urls) = (http.clone(), urls.clone());
            tokio::spawn(async move {
                let mut times = Vec::with_capacity(calls_per_client);
                for i in 0..calls_per_client {
                    let (url, auth) = &urls[(c + i) % urls.len()];
                    let t = Instant::now();
                    let resp = http
                        .get(url)
                        .header("authorization", auth)
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
        all.extend(t.await.expect("client task"));
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort();
    (all, secs)
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mock = MockMicrosoft::start(Seed::contoso()).await.expect("mock");
        let home = tempfile::tempdir().expect("tempdir");
        let env = exgate_core::config::Env::from_pairs([
            ("HOME", home.path().display().to_string()),
            ("XDG_CONFIG_HOME", home.path().join("config").display().to_string()),
            ("XDG_DATA_HOME", home.path().join("data").display().to_string()),
            ("EXGATE_SYSTEM_CONFIG", home.path().join("none").display().to_string()),
            ("EXGATE__ENDPOINTS__AUTHORITY_HOST", mock.base_url()),
            ("EXGATE__ENDPOINTS__GRAPH_URL", mock.graph_url()),
            // The bench measures overhead, not throttling.
            ("EXGATE__GRAPH__REQUESTS", "100000000".into()),
            // Nor Graph's 4 concurrent requests per mailbox: 64 clients share two mailboxes.
            ("EXGATE__GRAPH__CONCURRENT", "100000".into()),
        ]);
        let mut settings = exgate_core::config::load(None, &env).expect("settings");
        let services = exgate_core::services::Services::open(
            &mut settings,
            std::sync::Arc::new(exgate_core::clock::SystemClock),
        )
        .await
        .expect("services");
        let store = std::sync::Arc::clone(&services.store);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state = AppState::new(services, settings, base.clone());
        let spec = exgate_core::model::ConnectionSpec {
            tenant: Some(seed::TENANT_ID.into()),
            auth: Some("oauth2-app-only".into()),
            client_id: Some(seed::DAEMON_APP.into()),
            client_secret: Some(exgate_core::secret::Secret::new(seed::DAEMON_APP_SECRET)),
            ..Default::default()
        };
        state.connections.add("bench", &spec).await.expect("connection");
        let conn = state.connections.get("bench").await.expect("get").connection;
        for (p, m) in [("adele", seed::ADELE), ("megan", seed::MEGAN)] {
            store
                .insert_static_user(&exgate_core::model::StaticUser {
                    id: exgate_core::model::StaticUserId::new_random(),
                    connection: conn.id,
                    principal: p.parse().expect("principal"),
                    mailbox: m.parse().expect("mailbox"),
                    access: exgate_core::model::MailboxAccess::Impersonation,
                    created_at: time::OffsetDateTime::now_utc(),
                })
                .await
                .expect("static user");
        }
        let (_, key) = state.keys.create("bench", exgate_core::apikeys::KeyScope::Connections(vec![conn.id])).await.expect("key");
        let token = state.signin.token("bench", None, exgate_core::model::Resource::Graph).await.expect("token");
        let server_state = state.clone();
        tokio::spawn(async move {
            let _ = exgate_server::serve(listener, server_state, std::future::pending()).await;
        });

        let bearer_key = format!("Bearer {}", key.expose());
        let bearer_token = format!("Bearer {}", token.secret.expose());
        let select = "$select=id,subject,from,receivedDateTime,isRead,hasAttachments,importance,flag,categories,bodyPreview&$top=10&$orderby=receivedDateTime%20desc";
        let gateway: Vec<(String, String)> = ["adele", "megan"]
            .iter()
            .map(|p| (format!("{base}/api/v1/connections/bench/users/{p}/messages?limit=10"), bearer_key.clone()))
            .collect();
        let direct: Vec<(String, String)> = [seed::ADELE, seed::MEGAN]
            .iter()
            .map(|m| (format!("{}/users/{m}/mailFolders/inbox/messages?{select}", mock.graph_url()), bearer_token.clone()))
            .collect();

        // Once against a mock that answers at once (the gateway's own cost shows fully), once with
        // a backend latency typical of a call to Microsoft Graph.
        for (latency, clients) in [(Duration::ZERO, 8), (Duration::ZERO, 64), (Duration::from_millis(20), 8), (Duration::from_millis(20), 64)] {
            let n = (CALLS / clients * clients) as f64;
            mock.set_graph_latency(latency);
            drive(clients, gateway.clone()).await;
            drive(clients, direct.clone()).await;
            let (g, g_secs) = drive(clients, gateway.clone()).await;
            let (d, d_secs) = drive(clients, direct.clone()).await;
            let (gp50, gp99, dp50, dp99) = (percentile(&g, 0.5), percentile(&g, 0.99), percentile(&d, 0.5), percentile(&d, 0.99));
            println!(
                "##row|gateway p50 / direct, {clients} clients, {} ms backend|{:.2}x (+{:?})|{}",
                latency.as_millis(),
                gp50.as_secs_f64() / dp50.as_secs_f64(),
                gp50.saturating_sub(dp50),
                if latency.is_zero() { "<= 1.25x" } else { "-" }
            );
            println!("backend latency {latency:?}, {clients} clients:");
            println!("  gateway: {:.0} req/s, p50 {gp50:?}, p99 {gp99:?}", n / g_secs);
            println!("  direct:  {:.0} req/s, p50 {dp50:?}, p99 {dp99:?}", n / d_secs);
            println!(
                "  gateway / direct: p50 {:.2}x, p99 {:.2}x; the gateway adds {:?} at p50 (target at most 1.25x at p50)",
                gp50.as_secs_f64() / dp50.as_secs_f64(),
                gp99.as_secs_f64() / dp99.as_secs_f64(),
                gp50.saturating_sub(dp50)
            );
        }
        drop(state);
    });
}
