//! `cargo xtask bench`, part 3: what the gateway adds to a mailbox call. Many concurrent clients
//! list messages through the gateway, on an app-only connection (a static user) and on a delegated
//! one (a signed-in account); the same calls go straight to the mock Graph ("direct": an HTTP
//! client that holds a cached token and sends Graph's own request); and, for scale, through a
//! pass-through axum + reqwest proxy that does nothing but forward ("plain hop": the cost of any
//! local HTTP hop on the same stack, which a gateway cannot avoid). All in one run, interleaved,
//! reported as p50/p99, their ratio (target: at most 1.25x at p50) and the latency added; once
//! with a mock that answers at once (the gateway's own cost shows fully), once with 20 ms of
//! backend latency, closer to a real call to Microsoft Graph; each with 8 and with 64 clients.
//! Rows for xtask's table are printed as `##row|label|value|target`.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use exgate_core::model::Resource;
use exgate_core::secret::Secret;
use exgate_server::AppState;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};

/// Calls in each measured round, spread over the clients.
const CALLS: usize = 640;
/// Measured rounds of each kind, interleaved (one machine, other load: interleaving spreads it).
const ROUNDS: usize = 3;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn drive(clients: usize, urls: &[(String, String)]) -> (Vec<Duration>, f64) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .expect("client");
    let calls_per_client = CALLS / clients;
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (http, urls) = (http.clone(), urls.to_vec());
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
    (all, started.elapsed().as_secs_f64())
}

/// The plain hop: forwards a GET with its `Authorization` to `base` + the same path and query,
/// and answers with the body as it came. No logic, one reused client: what any local HTTP hop
/// on axum and reqwest costs.
#[derive(Clone)]
struct Hop {
    http: reqwest::Client,
    base: Arc<str>,
}

async fn forward(State(hop): State<Hop>, uri: Uri, headers: HeaderMap) -> Response {
    let mut url = String::with_capacity(hop.base.len() + 256);
    url.push_str(&hop.base);
    url.push_str(uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut req = hop.http.get(url);
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        req = req.header(header::AUTHORIZATION, auth.clone());
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            match resp.bytes().await {
                Ok(body) => {
                    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
                }
                Err(_) => axum::http::StatusCode::BAD_GATEWAY.into_response(),
            }
        }
        Err(_) => axum::http::StatusCode::BAD_GATEWAY.into_response(),
    }
}

/// p50 and p99 of several rounds' samples together, and the mean rate.
struct Measured {
    p50: Duration,
    p99: Duration,
    rate: f64,
}

async fn measure(
    clients: usize,
    urls: &[(String, String)],
    samples: &mut Vec<Duration>,
    secs: &mut f64,
) {
    let (s, t) = drive(clients, urls).await;
    samples.extend(s);
    *secs += t;
}

fn summarize(mut samples: Vec<Duration>, secs: f64) -> Measured {
    samples.sort();
    Measured {
        p50: percentile(&samples, 0.5),
        p99: percentile(&samples, 0.99),
        rate: samples.len() as f64 / secs,
    }
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

        // App-only: the daemon app, acting on two static users' mailboxes.
        let spec = exgate_core::model::ConnectionSpec {
            tenant: Some(seed::TENANT_ID.into()),
            auth: Some("oauth2-app-only".into()),
            client_id: Some(seed::DAEMON_APP.into()),
            client_secret: Some(Secret::new(seed::DAEMON_APP_SECRET)),
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
        // Delegated: the public app, Adele and Megan signed in (each on her own mailbox).
        let spec = exgate_core::model::ConnectionSpec {
            tenant: Some(seed::TENANT_ID.into()),
            auth: Some("oauth2-delegated".into()),
            client_id: Some(seed::PUBLIC_APP.into()),
            flow: Some("password".into()),
            ..Default::default()
        };
        let web = state.connections.add("web", &spec).await.expect("delegated connection");
        let mut signed_in = Vec::new();
        for (upn, password) in [(seed::ADELE, seed::ADELE_PASSWORD), (seed::MEGAN, seed::MEGAN_PASSWORD)] {
            let account = state
                .signin
                .password_login("web", None, upn, &Secret::new(password))
                .await
                .expect("password sign-in");
            let token = state.signin.token("web", Some(&account.principal), Resource::Graph).await.expect("delegated token");
            signed_in.push((account.principal, format!("Bearer {}", token.secret.expose())));
        }

        let (_, key) = state
            .keys
            .create("bench", exgate_core::apikeys::KeyScope::Connections(vec![conn.id, web.id]))
            .await
            .expect("key");
        let token = state.signin.token("bench", None, Resource::Graph).await.expect("token");
        let server_state = state.clone();
        tokio::spawn(async move {
            let _ = exgate_server::serve(listener, server_state, std::future::pending()).await;
        });
        let hop_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let hop_base = format!("http://{}", hop_listener.local_addr().expect("addr"));
        let hop = Hop {
            http: reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("client"),
            base: mock.base_url().into(),
        };
        tokio::spawn(async move {
            let app = axum::Router::new().fallback(forward).with_state(hop);
            let _ = axum::serve(hop_listener, app).await;
        });

        let bearer_key = format!("Bearer {}", key.expose());
        let bearer_token = format!("Bearer {}", token.secret.expose());
        let select = "$select=id,subject,from,receivedDateTime,isRead,hasAttachments,importance,flag,categories,bodyPreview&$top=10&$orderby=receivedDateTime%20desc";
        let app_gateway: Vec<(String, String)> = ["adele", "megan"]
            .iter()
            .map(|p| (format!("{base}/api/v1/connections/bench/users/{p}/messages?limit=10"), bearer_key.clone()))
            .collect();
        let app_direct: Vec<(String, String)> = [seed::ADELE, seed::MEGAN]
            .iter()
            .map(|m| (format!("{}/users/{m}/mailFolders/inbox/messages?{select}", mock.graph_url()), bearer_token.clone()))
            .collect();
        let delegated_gateway: Vec<(String, String)> = signed_in
            .iter()
            .map(|(p, _)| (format!("{base}/api/v1/connections/web/users/{p}/messages?limit=10"), bearer_key.clone()))
            .collect();
        let delegated_direct: Vec<(String, String)> = signed_in
            .iter()
            .map(|(_, auth)| (format!("{}/me/mailFolders/inbox/messages?{select}", mock.graph_url()), auth.clone()))
            .collect();
        let hop: Vec<(String, String)> = app_direct
            .iter()
            .map(|(url, auth)| (url.replacen(&mock.base_url(), &hop_base, 1), auth.clone()))
            .collect();
        let kinds: [(&str, &[(String, String)]); 5] = [
            ("app-only gateway", &app_gateway),
            ("app-only direct", &app_direct),
            ("delegated gateway", &delegated_gateway),
            ("delegated direct", &delegated_direct),
            ("plain hop", &hop),
        ];

        // Once against a mock that answers at once (the gateway's own cost shows fully), once with
        // a backend latency typical of a call to Microsoft Graph.
        for (latency, clients) in [(Duration::ZERO, 8), (Duration::ZERO, 64), (Duration::from_millis(20), 8), (Duration::from_millis(20), 64)] {
            mock.set_graph_latency(latency);
            let mut samples: Vec<(Vec<Duration>, f64)> = kinds.iter().map(|_| (Vec::new(), 0.0)).collect();
            for (_, urls) in &kinds {
                drive(clients, urls).await;
            }
            for _ in 0..ROUNDS {
                for ((_, urls), (s, secs)) in kinds.iter().zip(samples.iter_mut()) {
                    measure(clients, urls, s, secs).await;
                }
            }
            let m: Vec<Measured> = samples.into_iter().map(|(s, secs)| summarize(s, secs)).collect();
            let ms = latency.as_millis();
            println!("backend latency {latency:?}, {clients} clients:");
            for ((label, _), m) in kinds.iter().zip(&m) {
                println!("  {label:<18} {:>6.0} req/s, p50 {:?}, p99 {:?}", m.rate, m.p50, m.p99);
            }
            let ratio = |a: &Measured, b: &Measured| a.p50.as_secs_f64() / b.p50.as_secs_f64();
            let target = if latency.is_zero() { "<= 1.25x" } else { "-" };
            for (label, gateway, direct) in [("app-only", &m[0], &m[1]), ("delegated", &m[2], &m[3])] {
                println!(
                    "##row|gateway p50 / direct, {label}, {clients} clients, {ms} ms backend|{:.2}x (+{:?})|{target}",
                    ratio(gateway, direct),
                    gateway.p50.saturating_sub(direct.p50),
                );
                println!(
                    "  {label}: gateway / direct p50 {:.2}x, p99 {:.2}x; of the {:?} added at p50, the plain hop accounts for {:?} and exgate for {:?}",
                    ratio(gateway, direct),
                    gateway.p99.as_secs_f64() / direct.p99.as_secs_f64(),
                    gateway.p50.saturating_sub(direct.p50),
                    m[4].p50.saturating_sub(m[1].p50),
                    gateway.p50.saturating_sub(m[4].p50),
                );
            }
            println!(
                "##row|plain axum hop p50 / direct (scale), {clients} clients, {ms} ms backend|{:.2}x (+{:?})|-",
                ratio(&m[4], &m[1]),
                m[4].p50.saturating_sub(m[1].p50),
            );
            println!(
                "##row|gateway p50 / plain hop (exgate's own share), app-only and delegated, {clients} clients, {ms} ms backend|{:.2}x, {:.2}x|-",
                ratio(&m[0], &m[4]),
                ratio(&m[2], &m[4]),
            );
        }
        drop(state);
    });
}
