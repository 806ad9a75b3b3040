//! The gateway: router tests through `oneshot` (every route, its OpenAPI document), and the real
//! `exgate-server` binary on port 0.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use exgate_core::admin;
use exgate_core::apikeys::KeyScope;
use exgate_core::secret::{Secret, Vault};
use exgate_core::store::SqliteStore;
use exgate_server::{AppState, app};
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use utoipa::OpenApi;

mod console;
mod diagnose;
mod ews;
mod expiry;
mod hardening;
mod hot_path;
mod limiter;
mod mail_protocols;
mod notify;
mod pipeline;
mod signin;

/// An isolated home: config, data and key live under a temporary folder.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data/exgate")
    }

    async fn store(&self) -> SqliteStore {
        let vault = Arc::new(Vault::open_or_create(&self.data().join("master.key")).unwrap());
        SqliteStore::open(&self.data().join("exgate.db"), vault)
            .await
            .unwrap()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_exgate-server"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env("EXGATE_SYSTEM_CONFIG", self.dir.path().join("system.toml"))
            .env("EXGATE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn write_config(&self, text: &str) -> PathBuf {
        let path = self.dir.path().join("config/exgate/exgate.toml");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// A running gateway whose stdout lines arrive on a channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

const WAIT: Duration = Duration::from_secs(60);

impl Running {
    fn start(home: &Home) -> Self {
        let mut child = home.command(&["--listen", "127.0.0.1:0"]).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads stdout lines until one contains `needle`; fails with what was seen.
    fn line_with(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(WAIT) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no line with {needle:?} ({e}); stdout so far: {:#?}",
                    self.seen
                ),
            }
        }
    }

    fn base_url(&mut self) -> String {
        let line = self.line_with("listening on ");
        line.rsplit(' ').next().unwrap().to_owned()
    }

    /// Sends SIGTERM and returns the exit status and stderr.
    fn terminate(self) -> (std::process::ExitStatus, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let output = self.child.wait_with_output().unwrap();
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

async fn body_json(resp: axum::response::Response) -> serde_json::Value {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

impl Home {
    /// The gateway's state over this home's configuration and store.
    async fn state(&self) -> AppState {
        self.state_with("http://gateway.test", []).await
    }

    /// The gateway's state with more environment (e.g. `EXGATE__ENDPOINTS__…`), reached by
    /// browsers at `public_url`.
    async fn state_with(
        &self,
        public_url: &str,
        env: impl IntoIterator<Item = (&'static str, String)>,
    ) -> AppState {
        self.state_clocked(public_url, env, Arc::new(exgate_core::clock::SystemClock))
            .await
    }

    /// [`Home::state_with`] on `clock`.
    async fn state_clocked(
        &self,
        public_url: &str,
        env: impl IntoIterator<Item = (&'static str, String)>,
        clock: Arc<dyn exgate_core::clock::Clock>,
    ) -> AppState {
        let mut settings = self.settings(env);
        let services = exgate_core::services::Services::open(&mut settings, clock)
            .await
            .unwrap();
        AppState::new(services, settings, public_url.into())
    }

    /// The settings a gateway in this home loads, with more environment.
    fn settings(
        &self,
        env: impl IntoIterator<Item = (&'static str, String)>,
    ) -> exgate_core::config::Settings {
        let mut pairs = vec![
            ("HOME", self.dir.path().display().to_string()),
            (
                "XDG_CONFIG_HOME",
                self.dir.path().join("config").display().to_string(),
            ),
            (
                "XDG_DATA_HOME",
                self.dir.path().join("data").display().to_string(),
            ),
            (
                "EXGATE_SYSTEM_CONFIG",
                self.dir.path().join("system.toml").display().to_string(),
            ),
        ];
        pairs.extend(env);
        let env = exgate_core::config::Env::from_pairs(pairs);
        exgate_core::config::load(None, &env).unwrap()
    }
}

#[tokio::test]
async fn health_and_readiness_answer_with_a_request_id() {
    let home = Home::new();
    let state = home.state().await;
    let resp = app(state.clone()).oneshot(get("/healthz")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().contains_key("x-request-id"));
    assert_eq!(body_json(resp).await["status"], "ok");

    let resp = app(state).oneshot(get("/readyz")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_json(resp).await["status"], "ready");
}

#[tokio::test]
async fn readiness_fails_when_the_store_does_not_answer() {
    let home = Home::new();
    let store = Arc::new(home.store().await);
    let mut state = home.state().await;
    store.close().await;
    state.store = store;
    let resp = app(state).oneshot(get("/readyz")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body = body_json(resp).await;
    assert_eq!(body["code"], "store_unavailable");
    assert_eq!(body["correlation_id"], id.as_str());
    assert!(body["hint"].is_string());
}

#[tokio::test]
async fn unknown_routes_get_the_error_shape_and_a_callers_request_id_is_kept() {
    let home = Home::new();
    let req = Request::get("/api/v1/nothing-here")
        .header("x-request-id", "caller-chosen-id")
        .body(Body::empty())
        .unwrap();
    let resp = app(home.state().await).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.headers()["x-request-id"], "caller-chosen-id");
    let body = body_json(resp).await;
    assert_eq!(body["code"], "not_found");
    assert_eq!(body["correlation_id"], "caller-chosen-id");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("/api/v1/nothing-here")
    );
    assert!(
        body["hint"].as_str().unwrap().contains("/api/openapi.json"),
        "{body}"
    );
}

/// Every route of the API, with a method it answers.
const API_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/connections"),
    ("POST", "/api/v1/connections"),
    ("GET", "/api/v1/connections/c"),
    ("PATCH", "/api/v1/connections/c"),
    ("DELETE", "/api/v1/connections/c"),
    ("POST", "/api/v1/connections/c/test"),
    ("GET", "/api/v1/connections/c/accounts"),
    ("POST", "/api/v1/connections/c/accounts/reset-all"),
    ("GET", "/api/v1/connections/c/accounts/p"),
    ("POST", "/api/v1/connections/c/accounts/p/reset"),
    ("GET", "/api/v1/connections/c/static-users"),
    ("POST", "/api/v1/connections/c/static-users"),
    ("DELETE", "/api/v1/connections/c/static-users/p"),
    ("POST", "/api/v1/connections/c/logins"),
    ("GET", "/api/v1/connections/c/logins/l"),
    ("GET", "/api/v1/keys"),
    ("POST", "/api/v1/keys"),
    ("DELETE", "/api/v1/keys/k"),
    ("GET", "/api/v1/connections/c/users/p/folders"),
    ("GET", "/api/v1/connections/c/users/p/messages"),
    ("POST", "/api/v1/connections/c/users/p/messages"),
    ("GET", "/api/v1/connections/c/users/p/messages/m"),
    ("DELETE", "/api/v1/connections/c/users/p/messages/m"),
    ("GET", "/api/v1/connections/c/users/p/messages/m/mime"),
    (
        "GET",
        "/api/v1/connections/c/users/p/messages/m/attachments/a",
    ),
    ("POST", "/api/v1/connections/c/users/p/messages/m/reply"),
    ("POST", "/api/v1/connections/c/users/p/messages/m/forward"),
    ("POST", "/api/v1/connections/c/users/p/messages/m/move"),
    ("POST", "/api/v1/connections/c/users/p/messages/m/read"),
    ("GET", "/api/v1/connections/c/users/p/events"),
    ("POST", "/api/v1/connections/c/users/p/events"),
    ("PATCH", "/api/v1/connections/c/users/p/events/e"),
    ("DELETE", "/api/v1/connections/c/users/p/events/e"),
    ("POST", "/api/v1/connections/c/users/p/freebusy"),
    ("GET", "/api/v1/connections/c/users/p/contacts"),
    ("POST", "/api/v1/connections/c/users/p/contacts"),
    ("GET", "/api/v1/connections/c/users/p/contacts/x"),
    ("PATCH", "/api/v1/connections/c/users/p/contacts/x"),
    ("DELETE", "/api/v1/connections/c/users/p/contacts/x"),
    ("POST", "/api/v1/connections/c/users/p/watches"),
    ("GET", "/api/v1/connections/c/watches"),
    ("DELETE", "/api/v1/connections/c/watches/w"),
    ("GET", "/api/v1/connections/c/events"),
    ("GET", "/api/v1/connections/c/events/stream"),
    ("GET", "/api/v1/connections/c/webhooks"),
    ("POST", "/api/v1/connections/c/webhooks"),
    ("DELETE", "/api/v1/connections/c/webhooks/h"),
    ("GET", "/api/v1/connections/c/webhooks/h/dead-letters"),
    (
        "POST",
        "/api/v1/connections/c/webhooks/h/dead-letters/replay",
    ),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/docs"),
];

/// The routes that answer without credentials.
const PUBLIC_ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/service/oauth2/authorize"),
];

#[tokio::test]
async fn every_api_route_requires_authentication() {
    let home = Home::new();
    let state = home.state().await;
    for (method, path) in API_ROUTES {
        for auth in [
            None,
            Some("Bearer exg_not-a-real-key"),
            Some("Basic YWRtaW46d3Jvbmc="),
        ] {
            let mut req = Request::builder()
                .method(*method)
                .uri(*path)
                .header("content-type", "application/json");
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let resp = app(state.clone())
                .oneshot(req.body(Body::from("{}")).unwrap())
                .await
                .unwrap();
            let status = resp.status();
            // After ten failures the client is told to wait: that is refusal too.
            assert!(
                status == StatusCode::UNAUTHORIZED || status == StatusCode::TOO_MANY_REQUESTS,
                "{method} {path} with {auth:?} answered {status}"
            );
            let body = body_json(resp).await;
            assert!(
                body["code"] == "unauthorized" || body["code"] == "too_many_failures",
                "{method} {path}: {body}"
            );
        }
    }
    // Public routes answer without credentials.
    for (_, path) in PUBLIC_ROUTES {
        let resp = app(state.clone()).oneshot(get(path)).await.unwrap();
        assert_ne!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
}

#[tokio::test]
async fn admins_manage_keys_and_application_keys_are_scoped() {
    let home = Home::new();
    let state = home.state().await;
    let password = exgate_core::admin::reset_admin_credential(
        state.store.as_ref(),
        &exgate_core::clock::SystemClock,
    )
    .await
    .unwrap();
    let basic = format!(
        "Basic {}",
        base64_encode(&format!("admin:{}", password.expose()))
    );
    let call = |method: &str, path: &str, auth: &str, body: serde_json::Value| {
        Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", auth)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let spec = serde_json::json!({
        "name": "contoso", "tenant": "contoso.onmicrosoft.com", "auth": "oauth2-app-only",
        "client_id": "11111111-2222-3333-4444-555555555555", "client_secret": "Abc8Q~secret-value-0123456789xyz"
    });
    let resp = app(state.clone())
        .oneshot(call("POST", "/api/v1/connections", &basic, spec.clone()))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let created = body_json(resp).await;
    assert_eq!(created["auth"]["credential"]["set"], true);
    assert!(
        !created.to_string().contains("Abc8Q~secret"),
        "a secret came back: {created}"
    );

    let other = serde_json::json!({ "name": "fabrikam", "tenant": "common", "auth": "oauth2-delegated", "client_id": "11111111-2222-3333-4444-555555555555" });
    assert_eq!(
        app(state.clone())
            .oneshot(call("POST", "/api/v1/connections", &basic, other))
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );

    let resp = app(state.clone())
        .oneshot(call(
            "POST",
            "/api/v1/keys",
            &basic,
            serde_json::json!({ "name": "portal", "connections": ["contoso"] }),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let key = body_json(resp).await;
    let bearer = format!("Bearer {}", key["key"].as_str().unwrap());

    // The application key may use its connection, not the other one, and no admin route.
    let resp = app(state.clone())
        .oneshot(call(
            "GET",
            "/api/v1/connections/fabrikam/logins/x",
            &bearer,
            serde_json::json!({}),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = app(state.clone())
        .oneshot(call(
            "GET",
            "/api/v1/connections/contoso/logins/x",
            &bearer,
            serde_json::json!({}),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = app(state.clone())
        .oneshot(call("GET", "/api/v1/keys", &bearer, serde_json::json!({})))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // Listed without the secret; revoked, it stops working.
    let resp = app(state.clone())
        .oneshot(call("GET", "/api/v1/keys", &basic, serde_json::json!({})))
        .await
        .unwrap();
    let listed = body_json(resp).await;
    assert!(listed[0].get("key").is_none(), "{listed}");
    let id = key["id"].as_str().unwrap();
    let resp = app(state.clone())
        .oneshot(call(
            "DELETE",
            &format!("/api/v1/keys/{id}"),
            &basic,
            serde_json::json!({}),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = app(state.clone())
        .oneshot(call(
            "GET",
            "/api/v1/connections/contoso/logins/x",
            &bearer,
            serde_json::json!({}),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // Bad input is a clear error and changes nothing.
    let bad = serde_json::json!({ "name": "bad", "tenant": "72f988bf-86f1-41af-91ab-2d7cd011db4", "auth": "oauth2-delegated", "client_id": "11111111-2222-3333-4444-555555555555" });
    let resp = app(state.clone())
        .oneshot(call("POST", "/api/v1/connections", &basic, bad))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body = body_json(resp).await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("malformed tenant GUID"),
        "{body}"
    );
    let resp = app(state.clone())
        .oneshot(call("POST", "/api/v1/connections", &basic, spec))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let resp = app(state.clone())
        .oneshot(call(
            "POST",
            "/api/v1/connections",
            &basic,
            serde_json::json!({ "name": "x", "colour": "red" }),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let resp = app(state.clone())
        .oneshot(call(
            "GET",
            "/api/v1/connections",
            &basic,
            serde_json::json!({}),
        ))
        .await
        .unwrap();
    assert_eq!(body_json(resp).await.as_array().unwrap().len(), 2);
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn oversized_bodies_are_refused_and_change_nothing() {
    let home = Home::new();
    // The gateway's one body limit is core's item limit (limits.max_item_mb).
    let state = home
        .state_with(
            "http://gateway.test",
            [("EXGATE__LIMITS__MAX_ITEM_MB", "1".to_owned())],
        )
        .await;
    let password = exgate_core::admin::reset_admin_credential(
        state.store.as_ref(),
        &exgate_core::clock::SystemClock,
    )
    .await
    .unwrap();
    let mut body = br#"{"name":"big","tenant":"common","auth":"oauth2-delegated","client_id":"11111111-2222-3333-4444-555555555555","scopes":[""#.to_vec();
    body.resize(1024 * 1024 + 10, b'x');
    body.extend_from_slice(br#""]}"#);
    let req = Request::post("/api/v1/connections")
        .header("content-type", "application/json")
        .header(
            "authorization",
            format!(
                "Basic {}",
                base64_encode(&format!("admin:{}", password.expose()))
            ),
        )
        .body(Body::from(body))
        .unwrap();
    let resp = app(state.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(state.connections.list().await.unwrap().is_empty());
}

fn printed_password(run: &mut Running) -> Secret {
    run.line_with("generated the admin password");
    let line = run.line_with("    ");
    Secret::new(line.trim())
}

#[tokio::test]
async fn first_start_prints_a_password_once_stores_only_its_hash_and_stops_on_sigterm() {
    let home = Home::new();
    let mut run = Running::start(&home);
    let password = printed_password(&mut run);
    let url = run.base_url();
    let resp = reqwest::get(format!("{url}/healthz")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let (status, stderr) = run.terminate();
    assert!(status.success(), "{status:?}\n{stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");
    assert!(
        !stderr.contains(password.expose()),
        "the password reached the log"
    );

    let store = home.store().await;
    let hash = exgate_core::store::Store::admin_password_hash(&store)
        .await
        .unwrap()
        .unwrap();
    assert!(hash.starts_with("$argon2id$"));
    assert!(admin::verify_password(&password, &hash));
    assert!(!raw_files_contain(&home.data(), password.expose()));

    // A second start keeps the credential and prints no password.
    let mut again = Running::start(&home);
    again.base_url();
    assert!(
        !again.seen.iter().any(|l| l.contains("admin password")),
        "{:?}",
        again.seen
    );
    let (status, _) = again.terminate();
    assert!(status.success());
}

fn raw_files_contain(dir: &Path, needle: &str) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let bytes = std::fs::read(e.unwrap().path()).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    })
}

#[tokio::test]
async fn admin_reset_replaces_the_password() {
    let home = Home::new();
    let mut run = Running::start(&home);
    let first = printed_password(&mut run);
    run.base_url();
    run.terminate();

    let out = home.command(&["admin", "reset"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let second = Secret::new(stdout.lines().nth(1).unwrap().trim());
    assert_ne!(first.expose(), second.expose());

    let store = home.store().await;
    assert!(admin::verify_admin(&store, None, &second).await.unwrap());
    assert!(!admin::verify_admin(&store, None, &first).await.unwrap());
}

#[test]
fn a_weak_configured_password_is_refused_at_start() {
    let home = Home::new();
    home.write_config("[server]\nadmin_password = \"env:EXGATE_TEST_ADMIN\"\n");
    let out = home
        .command(&["--listen", "127.0.0.1:0"])
        .env("EXGATE_TEST_ADMIN", "admin")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("server.admin_password"), "{stderr}");
    assert!(stderr.contains("well-known default"), "{stderr}");
}

#[test]
fn a_bad_config_value_is_a_configuration_error() {
    let home = Home::new();
    let path = home.write_config("[server]\nlisten = \"everywhere\"\n");
    let out = home.command(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("server.listen"), "{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
}

#[tokio::test]
async fn a_wrong_method_gets_the_error_shape() {
    let home = Home::new();
    let resp = app(home.state().await)
        .oneshot(get("/api/v1/connections/c/test"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body = body_json(resp).await;
    assert_eq!(body["code"], "method_not_allowed");
    assert!(
        body["correlation_id"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{body}"
    );
}

// Every route through the router, against the mock Microsoft cloud where a route reaches it.

const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
/// Where the mocked gateway says browsers reach it: the web app's registered loopback redirect
/// URI matches it whatever the port, and nothing needs to listen there.
const PUBLIC_URL: &str = "http://127.0.0.1:8087";
const ADELE: &str = "/api/v1/connections/contoso/users/adele";

/// The gateway's router over a state, with an admin API key.
struct Gateway {
    state: AppState,
    /// `Authorization` with an admin API key.
    admin: String,
}

impl Gateway {
    async fn new(state: AppState) -> Self {
        let (_, key) = state
            .keys
            .create("router-tests", KeyScope::Admin)
            .await
            .unwrap();
        Self {
            admin: format!("Bearer {}", key.expose()),
            state,
        }
    }

    /// A gateway whose identity provider and Graph are `mock`.
    async fn mocked(home: &Home, mock: &MockMicrosoft) -> Self {
        let state = home
            .state_with(
                PUBLIC_URL,
                [
                    ("EXGATE__ENDPOINTS__AUTHORITY_HOST", mock.base_url()),
                    ("EXGATE__ENDPOINTS__GRAPH_URL", mock.graph_url()),
                ],
            )
            .await;
        Self::new(state).await
    }

    /// Sends a request; `body` goes as JSON unless it is null.
    async fn send(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Value,
    ) -> axum::response::Response {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let body = if body.is_null() {
            Body::empty()
        } else {
            req = req.header("content-type", "application/json");
            Body::from(body.to_string())
        };
        app(self.state.clone())
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap()
    }

    /// Sends a request without a body, with these headers.
    async fn send_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> axum::response::Response {
        let mut req = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        app(self.state.clone())
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    /// Sends a request and reads the JSON answer (null for an empty body).
    async fn call(&self, method: &str, path: &str, auth: &str, body: Value) -> (StatusCode, Value) {
        let resp = self.send(method, path, Some(auth), body).await;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{method} {path} answered {status} with no JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        (status, value)
    }

    async fn admin(&self, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(method, path, &self.admin, body).await
    }

    /// Creates a connection through the API.
    async fn connection(&self, spec: Value) -> Value {
        let (status, created) = self.admin("POST", "/api/v1/connections", spec).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created
    }

    /// `Authorization` with a new application key for `connections`.
    async fn app_key(&self, name: &str, connections: &[&str]) -> String {
        let (status, key) = self
            .admin(
                "POST",
                "/api/v1/keys",
                json!({ "name": name, "connections": connections }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{key}");
        format!("Bearer {}", key["key"].as_str().unwrap())
    }
}

/// A mocked gateway with an app-only connection `contoso`, Adele's mailbox as its static user
/// `adele`, and an application key for it.
struct AppOnly {
    gw: Gateway,
    key: String,
    mock: MockMicrosoft,
    _home: Home,
}

impl AppOnly {
    async fn start() -> Self {
        let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
        Self::start_with(mock, PUBLIC_URL, []).await
    }

    /// [`AppOnly::start`] over `mock`, reached at `public_url`, with more environment.
    async fn start_with(
        mock: MockMicrosoft,
        public_url: &str,
        env: impl IntoIterator<Item = (&'static str, String)>,
    ) -> Self {
        let home = Home::new();
        let mut all = vec![
            ("EXGATE__ENDPOINTS__AUTHORITY_HOST", mock.base_url()),
            ("EXGATE__ENDPOINTS__GRAPH_URL", mock.graph_url()),
        ];
        all.extend(env);
        let gw = Gateway::new(home.state_with(public_url, all).await).await;
        gw.connection(json!({
            "name": "contoso", "tenant": seed::TENANT_ID, "auth": "oauth2-app-only",
            "client_id": seed::DAEMON_APP, "client_secret": seed::DAEMON_APP_SECRET,
        }))
        .await;
        let (status, user) = gw
            .admin(
                "POST",
                "/api/v1/connections/contoso/static-users",
                json!({ "principal": "adele", "mailbox": seed::ADELE }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{user}");
        let key = gw.app_key("portal", &["contoso"]).await;
        Self {
            gw,
            key,
            mock,
            _home: home,
        }
    }

    /// Calls a route under Adele's mailbox with the application key.
    async fn user(&self, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.gw
            .call(method, &format!("{ADELE}{path}"), &self.key, body)
            .await
    }

    /// The ID of the Inbox message with this subject.
    async fn message_id(&self, subject: &str) -> String {
        let (status, page) = self.user("GET", "/messages?limit=100", Value::Null).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let found = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["subject"] == subject);
        found.unwrap_or_else(|| panic!("no `{subject}` in {page}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// The OpenAPI document, as JSON.
fn document() -> Value {
    serde_json::to_value(exgate_server::ApiDoc::openapi()).unwrap()
}

/// The fields a schema of `doc` lists, and those it requires, following `$ref` and `allOf`.
fn schema_fields(doc: &Value, schema: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        return schema_fields(doc, &doc["components"]["schemas"][name]);
    }
    let (mut all, mut required) = (BTreeSet::new(), BTreeSet::new());
    for part in schema["allOf"].as_array().into_iter().flatten() {
        let (a, r) = schema_fields(doc, part);
        all.extend(a);
        required.extend(r);
    }
    if let Some(properties) = schema["properties"].as_object() {
        all.extend(properties.keys().cloned());
    }
    for r in schema["required"].as_array().into_iter().flatten() {
        required.insert(r.as_str().unwrap().to_owned());
    }
    (all, required)
}

/// Asserts that `value` has the shape the document gives the schema `name` (or one of its
/// `oneOf` variants): every field it requires, and no field it does not list.
fn assert_shape(doc: &Value, name: &str, value: &Value) {
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "the document has no schema {name}");
    let keys: BTreeSet<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("{name} is an object: {value}"))
        .keys()
        .cloned()
        .collect();
    let variants = match schema["oneOf"].as_array() {
        Some(variants) => variants.iter().collect(),
        None => vec![schema],
    };
    let mismatches: Vec<String> = variants
        .into_iter()
        .map(|variant| {
            let (all, required) = schema_fields(doc, variant);
            format!(
                "undocumented {:?}, missing {:?}",
                keys.difference(&all).collect::<Vec<_>>(),
                required.difference(&keys).collect::<Vec<_>>()
            )
        })
        .collect();
    assert!(
        mismatches
            .iter()
            .any(|m| m == "undocumented [], missing []"),
        "{name}: {mismatches:?} in {value}"
    );
}

fn names(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .map(|i| i[field].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn admins_create_show_change_and_remove_connections() {
    let home = Home::new();
    let file = home.write_config(&format!(
        "[connections.declared]\ntenant = \"common\"\nauth = \"oauth2-delegated\"\nclient_id = \"{CLIENT_ID}\"\n"
    ));
    let gw = Gateway::new(home.state().await).await;
    let doc = document();

    let created = gw
        .connection(json!({
            "name": "web", "tenant": "contoso.onmicrosoft.com", "auth": "oauth2-delegated",
            "client_id": CLIENT_ID, "client_secret": "Abc8Q~secret-value-0123456789xyz",
        }))
        .await;
    assert_shape(&doc, "ConnectionView", &created);
    assert_eq!(created["source"], "store");
    assert_eq!(created["auth"]["credential"]["kind"], "secret");

    let (status, list) = gw.admin("GET", "/api/v1/connections", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&list, "name"), ["declared", "web"]);
    assert_eq!(list[0]["source"], file.display().to_string());

    let (status, shown) = gw
        .admin("GET", "/api/v1/connections/web", Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["id"], created["id"]);

    // A public-client flow with a secret is refused; with the credential removed it is not.
    let (status, refused) = gw
        .admin(
            "PATCH",
            "/api/v1/connections/web",
            json!({ "flow": "device-code" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["code"], "invalid_input");
    let (status, changed) = gw
        .admin(
            "PATCH",
            "/api/v1/connections/web",
            json!({ "flow": "device-code", "remove_credential": true }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_shape(&doc, "ConnectionView", &changed);
    assert_eq!(changed["auth"]["flow"], "device-code");
    assert!(changed["auth"]["credential"].is_null(), "{changed}");
    let (status, body) = gw
        .admin(
            "PATCH",
            "/api/v1/connections/web",
            json!({ "name": "renamed" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Names are unique, and connections declared in a file are read-only.
    let (status, body) = gw
        .admin(
            "POST",
            "/api/v1/connections",
            json!({ "name": "web", "tenant": "common", "auth": "oauth2-delegated", "client_id": CLIENT_ID }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "conflict");
    let (status, body) = gw
        .admin(
            "POST",
            "/api/v1/connections",
            json!({ "name": "declared", "tenant": "common", "auth": "oauth2-delegated", "client_id": CLIENT_ID }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = gw
        .admin(
            "PATCH",
            "/api/v1/connections/declared",
            json!({ "backend": "graph" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains(&file.display().to_string()),
        "{body}"
    );
    let (status, _) = gw
        .admin("DELETE", "/api/v1/connections/declared", Value::Null)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let (status, body) = gw
        .admin("DELETE", "/api/v1/connections/web", Value::Null)
        .await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (status, body) = gw
        .admin("GET", "/api/v1/connections/web", Value::Null)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], "not_found");
    let (status, _) = gw
        .admin("DELETE", "/api/v1/connections/web", Value::Null)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn admins_list_show_and_reset_known_users() {
    use exgate_core::model::{Account, AccountId, AccountStatus, CredentialKind};

    let home = Home::new();
    let gw = Gateway::new(home.state().await).await;
    let doc = document();
    gw.connection(json!({
        "name": "contoso", "tenant": "contoso.onmicrosoft.com", "auth": "oauth2-delegated", "client_id": CLIENT_ID,
    }))
    .await;
    let connection = gw
        .state
        .connections
        .get("contoso")
        .await
        .unwrap()
        .connection;
    let mut ids = Vec::new();
    for (principal, mailbox) in [("u42", seed::ADELE), ("u43", seed::MEGAN)] {
        let account = Account {
            id: AccountId::new_random(),
            connection: connection.id,
            principal: principal.parse().unwrap(),
            mailbox: Some(mailbox.parse().unwrap()),
            credential: CredentialKind::RefreshToken,
            status: AccountStatus::Active,
            created_at: time::OffsetDateTime::now_utc(),
            last_used_at: None,
        };
        gw.state
            .store
            .put_account(&account, Some(&Secret::new("a-refresh-token")))
            .await
            .unwrap();
        ids.push(account.id);
    }

    let (status, page) = gw
        .admin("GET", "/api/v1/connections/contoso/accounts", Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_shape(&doc, "AccountPage", &page);
    assert_eq!(page["total"], 2);
    assert_eq!(names(&page["items"], "principal"), ["u42", "u43"]);
    let first = &page["items"][0];
    assert_shape(&doc, "AccountView", first);
    assert_eq!(first["mailbox"], seed::ADELE);
    assert_eq!(first["auth_kind"], "refresh-token");
    assert_eq!(first["status"], "active");

    let (_, page) = gw
        .admin(
            "GET",
            "/api/v1/connections/contoso/accounts?filter=megan",
            Value::Null,
        )
        .await;
    assert_eq!(page["total"], 1);
    assert_eq!(names(&page["items"], "principal"), ["u43"]);
    let (_, page) = gw
        .admin(
            "GET",
            "/api/v1/connections/contoso/accounts?offset=1&limit=1",
            Value::Null,
        )
        .await;
    assert_eq!((&page["total"], &page["offset"]), (&json!(2), &json!(1)));
    assert_eq!(names(&page["items"], "principal"), ["u43"]);

    let (status, one) = gw
        .admin(
            "GET",
            "/api/v1/connections/contoso/accounts/u42",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["mailbox"], seed::ADELE);
    let (status, _) = gw
        .admin(
            "GET",
            "/api/v1/connections/contoso/accounts/nobody",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, reset) = gw
        .admin(
            "POST",
            "/api/v1/connections/contoso/accounts/u42/reset",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reset}");
    assert_eq!(reset["status"], "needs-sign-in");
    assert!(reset["status_reason"].is_string(), "{reset}");
    assert!(
        gw.state
            .store
            .account_refresh_token(ids[0])
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        gw.state
            .store
            .account_refresh_token(ids[1])
            .await
            .unwrap()
            .is_some()
    );

    let (status, all) = gw
        .admin(
            "POST",
            "/api/v1/connections/contoso/accounts/reset-all",
            Value::Null,
        )
        .await;
    assert_eq!((status, all), (StatusCode::OK, json!({ "reset": 2 })));
    let (_, page) = gw
        .admin("GET", "/api/v1/connections/contoso/accounts", Value::Null)
        .await;
    assert_eq!(names(&page["items"], "status"), ["needs-sign-in"; 2]);
}

#[tokio::test]
async fn admins_map_static_users_to_mailboxes() {
    let home = Home::new();
    let gw = Gateway::new(home.state().await).await;
    let doc = document();
    gw.connection(json!({
        "name": "contoso", "tenant": "contoso.onmicrosoft.com", "auth": "oauth2-app-only",
        "client_id": CLIENT_ID, "client_secret": "Abc8Q~secret-value-0123456789xyz",
    }))
    .await;
    let users = "/api/v1/connections/contoso/static-users";

    let (status, adele) = gw
        .admin(
            "POST",
            users,
            json!({ "principal": "adele", "mailbox": seed::ADELE }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{adele}");
    assert_shape(&doc, "StaticUserView", &adele);
    assert_eq!(adele["access"], "impersonation");
    let (status, megan) = gw
        .admin(
            "POST",
            users,
            json!({ "principal": "megan", "mailbox": seed::MEGAN, "access": "delegation" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{megan}");
    assert_eq!(megan["access"], "delegation");

    let (status, body) = gw
        .admin(
            "POST",
            users,
            json!({ "principal": "adele", "mailbox": seed::MEGAN }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    for bad in [
        json!({ "principal": "x", "mailbox": seed::ADELE, "access": "sudo" }),
        json!({ "principal": "x", "mailbox": "not-an-address" }),
    ] {
        let (status, body) = gw.admin("POST", users, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }

    let (status, list) = gw.admin("GET", users, Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&list, "principal"), ["adele", "megan"]);
    let (status, _) = gw
        .admin("DELETE", &format!("{users}/adele"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = gw
        .admin("DELETE", &format!("{users}/adele"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = gw.admin("GET", users, Value::Null).await;
    assert_eq!(names(&list, "principal"), ["megan"]);
    let (status, _) = gw
        .admin(
            "GET",
            "/api/v1/connections/nothing/static-users",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn admins_create_list_and_revoke_api_keys() {
    let home = Home::new();
    let gw = Gateway::new(home.state().await).await;
    let doc = document();
    let contoso = gw
        .connection(json!({
            "name": "contoso", "tenant": "contoso.onmicrosoft.com", "auth": "oauth2-delegated", "client_id": CLIENT_ID,
        }))
        .await;

    let (status, portal) = gw
        .admin(
            "POST",
            "/api/v1/keys",
            json!({ "name": "portal", "connections": ["contoso"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{portal}");
    assert_shape(&doc, "KeyView", &portal);
    assert!(portal["key"].as_str().unwrap().starts_with("exg_"));
    assert_eq!(portal["admin"], false);
    assert_eq!(portal["connections"], json!([contoso["id"]]));
    let (status, ops) = gw
        .admin(
            "POST",
            "/api/v1/keys",
            json!({ "name": "ops", "admin": true }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ops}");
    assert_eq!(
        (&ops["admin"], &ops["connections"]),
        (&json!(true), &json!([]))
    );
    let (status, _) = gw
        .admin(
            "POST",
            "/api/v1/keys",
            json!({ "name": "both", "admin": true, "connections": ["contoso"] }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = gw
        .admin(
            "POST",
            "/api/v1/keys",
            json!({ "name": "lost", "connections": ["nothing"] }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, list) = gw.admin("GET", "/api/v1/keys", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let mut listed = names(&list, "name");
    listed.sort();
    assert_eq!(listed, ["ops", "portal", "router-tests"]);
    for key in list.as_array().unwrap() {
        assert_shape(&doc, "KeyView", key);
        assert!(key.get("key").is_none(), "{key}");
    }

    let id = portal["id"].as_str().unwrap();
    let (status, revoked) = gw
        .admin("DELETE", &format!("/api/v1/keys/{id}"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let portal_auth = format!("Bearer {}", portal["key"].as_str().unwrap());
    let (status, _) = gw
        .call(
            "GET",
            "/api/v1/connections/contoso/logins/x",
            &portal_auth,
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = gw
        .admin("DELETE", "/api/v1/keys/not-a-key-id", Value::Null)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = gw
        .admin(
            "DELETE",
            "/api/v1/keys/0b9b7f4e-1c52-4d51-9d8e-6a0f1e2d3c4b",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// An HTML page the gateway answers without credentials.
async fn html_page(gw: &Gateway, path: &str) -> (StatusCode, String) {
    let resp = gw.send("GET", path, None, Value::Null).await;
    let status = resp.status();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_sign_their_users_in_through_the_browser() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let home = Home::new();
    let gw = Gateway::mocked(&home, &mock).await;
    gw.connection(json!({
        "name": "web", "tenant": seed::TENANT_ID, "auth": "oauth2-delegated",
        "client_id": seed::WEB_APP, "client_secret": seed::WEB_APP_SECRET,
    }))
    .await;
    let key = gw.app_key("portal", &["web"]).await;
    let start = || async {
        let (status, login) = gw
            .call(
                "POST",
                "/api/v1/connections/web/logins",
                &key,
                json!({ "principal": "u42" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{login}");
        login
    };

    let login = start().await;
    assert_shape(&document(), "LoginStarted", &login);
    assert_eq!(login["method"], "browser");
    assert_eq!(
        login["redirect_uri"],
        format!("{PUBLIC_URL}/service/oauth2/authorize")
    );
    let url = reqwest::Url::parse(login["authorization_url"].as_str().unwrap()).unwrap();
    assert!(
        url.as_str().starts_with(&mock.base_url()),
        "{url} is not the mock's"
    );
    let query = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(query("client_id").as_deref(), Some(seed::WEB_APP));
    let state = query("state").unwrap();
    let (status, body) = gw
        .call(
            "POST",
            "/api/v1/connections/web/logins",
            &key,
            json!({ "principal": "u42", "method": "carrier-pigeon" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // A callback the gateway did not start, or one the user refused, is a page that says why;
    // the refused sign-in's state is then spent.
    let (status, html) = html_page(&gw, "/service/oauth2/authorize?code=abc&state=unknown").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("Sign-in failed"), "{html}");
    let refused = format!(
        "/service/oauth2/authorize?error=access_denied&error_description=AADSTS65004&state={state}"
    );
    let (status, html) = html_page(&gw, &refused).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        html.contains("AADSTS65004") && html.contains("How to fix it"),
        "{html}"
    );
    let (status, html) = html_page(&gw, &refused).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("start the sign-in again"), "{html}");

    // A sign-in the user completes links the mailbox.
    mock.set_auto_approve(Some(seed::ADELE));
    let login = start().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http
        .get(login["authorization_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let callback = location.strip_prefix(PUBLIC_URL).unwrap().to_owned();
    let (status, html) = html_page(&gw, &callback).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("Signed in") && html.contains(seed::ADELE),
        "{html}"
    );
    let (_, account) = gw
        .admin("GET", "/api/v1/connections/web/accounts/u42", Value::Null)
        .await;
    assert_eq!(account["mailbox"], seed::ADELE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_sign_their_users_in_with_a_device_code() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    mock.set_device_code_interval(0);
    let home = Home::new();
    let gw = Gateway::mocked(&home, &mock).await;
    gw.connection(json!({
        "name": "cli", "tenant": seed::TENANT_ID, "auth": "oauth2-delegated",
        "client_id": seed::PUBLIC_APP, "flow": "device-code",
    }))
    .await;
    let key = gw.app_key("portal", &["cli"]).await;

    let (status, login) = gw
        .call(
            "POST",
            "/api/v1/connections/cli/logins",
            &key,
            json!({ "principal": "u7", "method": "device_code" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{login}");
    assert_shape(&document(), "LoginStarted", &login);
    assert_eq!(login["method"], "device_code");
    assert!(login["verification_uri"].is_string(), "{login}");
    let id = login["login_id"].as_str().unwrap();
    let status_path = format!("/api/v1/connections/cli/logins/{id}");
    let (status, pending) = gw.call("GET", &status_path, &key, Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pending, json!({ "status": "pending" }));
    assert_shape(&document(), "LoginStatus", &pending);
    let (status, _) = gw
        .call(
            "GET",
            "/api/v1/connections/cli/logins/unknown",
            &key,
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    mock.approve_device_code(login["user_code"].as_str().unwrap(), seed::ADELE)
        .unwrap();
    let done = tokio::time::timeout(WAIT, async {
        loop {
            let (_, status) = gw.call("GET", &status_path, &key, Value::Null).await;
            if status["status"] != "pending" {
                return status;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the device code sign-in finishes");
    assert_eq!(
        done,
        json!({ "status": "signed_in", "principal": "u7", "mailbox": seed::ADELE })
    );
    assert_shape(&document(), "LoginStatus", &done);
    // Kept in the store, so any gateway sharing it answers the status.
    let stored = gw.state.store.login_status(id).await.unwrap().unwrap();
    assert_eq!(
        stored.outcome,
        exgate_core::store::LoginOutcome::SignedIn {
            principal: "u7".into(),
            mailbox: Some(seed::ADELE.into()),
        }
    );
}

#[tokio::test]
async fn applications_read_a_static_users_mailbox() {
    let t = AppOnly::start().await;
    let doc = document();

    let (status, folders) = t.user("GET", "/folders", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{folders}");
    assert!(
        names(&folders, "name").contains(&"Inbox".to_owned()),
        "{folders}"
    );
    assert_shape(&doc, "Folder", &folders[0]);

    let (status, page) = t.user("GET", "/messages?limit=5", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_shape(&doc, "MessagePage", &page);
    assert_shape(&doc, "MessageSummary", &page["messages"][0]);
    let first = names(&page["messages"], "id");
    assert_eq!(first.len(), 5);
    let next = page["next_page"].as_str().unwrap();
    let (status, page) = t
        .user(
            "GET",
            &format!("/messages?limit=5&page={}", urlencode(next)),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let second = names(&page["messages"], "id");
    assert_eq!(second.len(), 5);
    assert!(second.iter().all(|id| !first.contains(id)), "{page}");
    let (_, unread) = t
        .user("GET", "/messages?unread=true&limit=100", Value::Null)
        .await;
    assert_eq!(unread["messages"].as_array().unwrap().len(), 6, "{unread}");

    let id = t.message_id("Team offsite photos").await;
    let (status, message) = t.user("GET", &format!("/messages/{id}"), Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{message}");
    assert_shape(&doc, "Message", &message);
    assert_eq!(message["body"]["kind"], "html");
    assert!(names(&message["attachments"], "name").contains(&"agenda.pdf".to_owned()));
    let (_, text) = t
        .user("GET", &format!("/messages/{id}?body=text"), Value::Null)
        .await;
    assert_eq!(text["body"]["kind"], "text");
    let (status, _) = t
        .user("GET", &format!("/messages/{id}?body=pdf"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let resp =
        t.gw.send(
            "GET",
            &format!("{ADELE}/messages/{id}/mime"),
            Some(&t.key),
            Value::Null,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "message/rfc822");
    let mime = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&mime).contains("Subject: Team offsite photos"),
        "{}",
        String::from_utf8_lossy(&mime)
    );

    let agenda = message["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "agenda.pdf")
        .unwrap();
    let resp =
        t.gw.send(
            "GET",
            &format!(
                "{ADELE}/messages/{id}/attachments/{}",
                agenda["id"].as_str().unwrap()
            ),
            Some(&t.key),
            Value::Null,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"agenda.pdf\""
    );
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(bytes.len() as u64, agenda["size"].as_u64().unwrap());

    let (status, events) = t
        .user(
            "GET",
            "/events?start=2026-11-01T00:00:00Z&end=2026-11-08T00:00:00Z",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{events}");
    assert!(
        names(&events, "subject").contains(&"Project Falcon review".to_owned()),
        "{events}"
    );
    for event in events.as_array().unwrap() {
        assert_shape(&doc, "Event", event);
    }
    let (status, _) = t
        .user(
            "GET",
            "/events?start=2026-11-08T00:00:00Z&end=2026-11-01T00:00:00Z",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Times in a Windows zone come back under its IANA name.
    let (status, events) = t
        .user(
            "GET",
            "/events?start=2026-11-01T00:00:00Z&end=2026-11-08T00:00:00Z&tz=India%20Standard%20Time",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let timed: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["is_all_day"] == false)
        .collect();
    assert!(!timed.is_empty(), "{events}");
    assert!(
        timed
            .iter()
            .all(|e| e["start"]["time_zone"] == "Asia/Kolkata"),
        "{events}"
    );
    let (status, error) = t
        .user(
            "GET",
            "/events?start=2026-11-01T00:00:00Z&end=2026-11-08T00:00:00Z&tz=Mars/Olympus_Mons",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("unknown time zone `Mars/Olympus_Mons`"),
        "{error}"
    );

    let (status, schedule) = t
        .user(
            "POST",
            "/freebusy",
            json!({
                "who": [seed::ADELE, seed::MEGAN], "start": "2026-11-04T00:00:00Z",
                "end": "2026-11-05T00:00:00Z", "interval_minutes": 60,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{schedule}");
    assert_eq!(names(&schedule, "mailbox"), [seed::ADELE, seed::MEGAN]);
    assert_shape(&doc, "FreeBusy", &schedule[0]);
    assert!(!schedule[0]["view"].as_array().unwrap().is_empty());

    let (status, contacts) = t.user("GET", "/contacts", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{contacts}");
    assert_shape(&doc, "ContactPage", &contacts);
    let megan = contacts["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["display_name"] == "Megan Bowen")
        .unwrap_or_else(|| panic!("{contacts}"));
    assert_shape(&doc, "Contact", megan);
    let (status, contact) = t
        .user(
            "GET",
            &format!("/contacts/{}", megan["id"].as_str().unwrap()),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{contact}");
    assert_eq!(contact, *megan);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn applications_send_and_change_mail_events_and_contacts() {
    let t = AppOnly::start().await;
    let doc = document();
    let delivered = |subject: &str| {
        t.mock
            .delivered(seed::MEGAN)
            .iter()
            .filter(|(_, s)| s == subject)
            .count()
    };

    let (status, sent) = t
        .user(
            "POST",
            "/messages",
            json!({
                "to": [seed::MEGAN], "subject": "From the router", "body": "Hello",
                "attachments": [{ "name": "a.txt", "content_type": "text/plain", "content_base64": base64_encode("hi") }],
            }),
        )
        .await;
    assert_eq!(
        (status, sent),
        (StatusCode::ACCEPTED, json!({ "status": "sent" }))
    );
    assert_eq!(delivered("From the router"), 1);
    let (status, _) = t
        .user(
            "POST",
            "/messages",
            json!({ "to": [], "subject": "nobody" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let contract = t.message_id("Contract draft for review").await;
    let (status, body) = t
        .user(
            "POST",
            &format!("/messages/{contract}/reply"),
            json!({ "comment": "Looks good" }),
        )
        .await;
    assert_eq!((status, body), (StatusCode::ACCEPTED, Value::Null));
    assert_eq!(delivered("RE: Contract draft for review"), 1);
    let (status, _) = t
        .user(
            "POST",
            &format!("/messages/{contract}/forward"),
            json!({ "to": [seed::MEGAN], "comment": "FYI" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(delivered("FW: Contract draft for review"), 1);

    let lunch = t.message_id("Lunch on Friday?").await;
    for read in [false, true] {
        let (status, _) = t
            .user(
                "POST",
                &format!("/messages/{lunch}/read"),
                json!({ "read": read }),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (_, message) = t
            .user("GET", &format!("/messages/{lunch}"), Value::Null)
            .await;
        assert_eq!(message["is_read"], read, "{message}");
    }
    let (status, moved) = t
        .user(
            "POST",
            &format!("/messages/{lunch}/move"),
            json!({ "folder": "archive" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_shape(&doc, "Moved", &moved);
    let archived = moved["id"].as_str().unwrap();
    let (status, message) = t
        .user("GET", &format!("/messages/{archived}"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(message["subject"], "Lunch on Friday?");
    let (status, _) = t
        .user("GET", &format!("/messages/{lunch}"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = t
        .user("DELETE", &format!("/messages/{archived}"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, gone) = t
        .user("GET", &format!("/messages/{archived}"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{gone}");
    assert_shape(&doc, "ApiError", &gone);

    let (status, event) = t
        .user(
            "POST",
            "/events",
            json!({
                "subject": "Router review",
                "start": { "date_time": "2026-12-03T10:00:00", "time_zone": "UTC" },
                "end": { "date_time": "2026-12-03T11:00:00", "time_zone": "UTC" },
                "attendees": [seed::MEGAN],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{event}");
    assert_shape(&doc, "Event", &event);
    assert_eq!(event["subject"], "Router review");
    let event_id = event["id"].as_str().unwrap();
    let (status, event) = t
        .user(
            "PATCH",
            &format!("/events/{event_id}"),
            json!({ "subject": "Router review (moved)", "location": "Rainier" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{event}");
    assert_eq!(
        (&event["subject"], &event["location"]),
        (&json!("Router review (moved)"), &json!("Rainier"))
    );
    let (status, _) = t
        .user("DELETE", &format!("/events/{event_id}"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = t
        .user("DELETE", &format!("/events/{event_id}"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A recurring series, its zone given by its Windows name.
    let recurrence = json!({
        "pattern": {"type": "relative-monthly", "interval": 1, "index": "last", "days": ["friday"]},
        "range": {"type": "numbered", "start_date": "2026-11-27", "occurrences": 3},
        "time_zone": "W. Europe Standard Time",
    });
    let (status, series) = t
        .user(
            "POST",
            "/events",
            json!({
                "subject": "Month end",
                "start": { "date_time": "2026-11-27T16:00", "time_zone": "Europe/Berlin" },
                "end": { "date_time": "2026-11-27T17:00", "time_zone": "Europe/Berlin" },
                "recurrence": recurrence,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{series}");
    assert_shape(&doc, "Recurrence", &series["recurrence"]);
    let mut expected = recurrence.clone();
    expected["time_zone"] = json!("Europe/Berlin");
    assert_eq!(series["recurrence"], expected);
    assert_eq!(
        series["start"],
        json!({ "date_time": "2026-11-27T16:00:00", "time_zone": "Europe/Berlin" })
    );
    let series_id = series["id"].as_str().unwrap();
    let (status, _) = t
        .user("DELETE", &format!("/events/{series_id}"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // An impossible series is refused before anything is sent.
    let mut never = recurrence.clone();
    never["pattern"]["interval"] = json!(0);
    let resp =
        t.gw.send(
            "POST",
            &format!("{ADELE}/events"),
            Some(&t.key),
            json!({ "subject": "Never", "recurrence": never }),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("interval is 0"),
        "{body:?}"
    );

    let (status, contact) = t
        .user(
            "POST",
            "/contacts",
            json!({
                "display_name": "Nestor Wilke", "given_name": "Nestor", "surname": "Wilke",
                "emails": ["nestor@contoso.onmicrosoft.com"],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{contact}");
    assert_shape(&doc, "Contact", &contact);
    let contact_id = contact["id"].as_str().unwrap();
    let (status, contact) = t
        .user(
            "PATCH",
            &format!("/contacts/{contact_id}"),
            json!({ "job_title": "Director" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{contact}");
    assert_eq!(
        (&contact["job_title"], &contact["display_name"]),
        (&json!("Director"), &json!("Nestor Wilke"))
    );
    let (status, _) = t
        .user("DELETE", &format!("/contacts/{contact_id}"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = t
        .user("GET", &format!("/contacts/{contact_id}"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn mailbox_routes_refuse_other_keys_unknown_users_and_a_mailbox_on_app_only() {
    let t = AppOnly::start().await;
    t.gw.connection(json!({
        "name": "fabrikam", "tenant": seed::TENANT_ID, "auth": "oauth2-app-only",
        "client_id": seed::DAEMON_APP, "client_secret": seed::DAEMON_APP_SECRET,
    }))
    .await;
    let other = t.gw.app_key("other", &["fabrikam"]).await;

    let (status, body) =
        t.gw.call("GET", &format!("{ADELE}/folders"), &other, Value::Null)
            .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "forbidden");

    let (status, body) = t
        .user(
            "GET",
            &format!("/folders?mailbox={}", seed::MEGAN),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_input");

    let (status, body) =
        t.gw.call(
            "GET",
            "/api/v1/connections/contoso/users/nobody/messages",
            &t.key,
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["hint"].as_str().unwrap().contains("static-users"),
        "{body}"
    );
    // An unknown connection looks like a forbidden one (hardening::…same_answer…).
    let (status, _) =
        t.gw.call(
            "GET",
            "/api/v1/connections/nothing/users/adele/folders",
            &t.key,
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // An admin may use every mailbox.
    let (status, _) =
        t.gw.admin("GET", &format!("{ADELE}/folders"), Value::Null)
            .await;
    assert_eq!(status, StatusCode::OK);
}

/// The `(method, route)` pairs `/metrics` has counted requests for.
async fn counted_routes(gw: &Gateway) -> BTreeSet<(String, String)> {
    let resp = gw.send("GET", "/metrics", None, Value::Null).await;
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("exgate_http_requests_total{"))
        .map(|labels| {
            let label = |name: &str| {
                labels
                    .split(&format!("{name}=\""))
                    .nth(1)
                    .and_then(|v| v.split('"').next())
                    .unwrap()
                    .to_owned()
            };
            (label("method"), label("route"))
        })
        .collect()
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_needs_authentication() {
    let home = Home::new();
    let gw = Gateway::new(home.state().await).await;

    // Without credentials neither the document nor its page answers; the page asks a browser.
    let resp = gw.send("GET", "/api/openapi.json", None, Value::Null).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = gw.send("GET", "/api/docs", None, Value::Null).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
    assert_eq!(body_json(resp).await["code"], "unauthorized");

    // An application key reads both.
    gw.connection(json!({
        "name": "contoso", "tenant": "contoso.onmicrosoft.com", "auth": "oauth2-delegated", "client_id": CLIENT_ID,
    }))
    .await;
    let key = gw.app_key("reader", &["contoso"]).await;
    let (status, doc) = gw.call("GET", "/api/openapi.json", &key, Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc, document());
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
    let resp = gw.send("GET", "/api/docs", Some(&key), Value::Null).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = resp.into_body().collect().await.unwrap().to_bytes();
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.contains("exgate gateway API") && page.contains("/api/v1/connections/{connection}"),
        "{page}"
    );

    // The router's route patterns, as the metrics count them, are exactly the documented ones.
    let fresh = Gateway::new(home.state().await).await;
    for (method, path) in API_ROUTES {
        let resp = fresh.send(method, path, None, Value::Null).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    for (method, path) in PUBLIC_ROUTES {
        let resp = fresh.send(method, path, None, Value::Null).await;
        assert_ne!(resp.status(), StatusCode::NOT_FOUND, "{method} {path}");
    }
    let routed = counted_routes(&fresh).await;
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(|method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    assert!(
        routed == documented,
        "routed, not documented: {:?}\ndocumented, not routed: {:?}",
        routed.difference(&documented).collect::<Vec<_>>(),
        documented.difference(&routed).collect::<Vec<_>>()
    );

    // Each operation: a tag, its path's parameters each once, credentials unless public, and
    // errors in the one shape.
    let public: BTreeSet<&str> = PUBLIC_ROUTES.iter().map(|(_, p)| *p).collect();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let what = format!("{method} {path}");
            let tag = op["tags"][0].as_str().unwrap_or_else(|| panic!("{what}"));
            assert!(
                ["admin", "sign-in", "mailbox", "notifications", "operations"].contains(&tag),
                "{what}"
            );
            let in_path: Vec<&str> = path
                .split('{')
                .skip(1)
                .map(|s| s.split('}').next().unwrap())
                .collect();
            let declared: Vec<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert_eq!(declared, in_path, "{what}");
            let schemes: BTreeSet<&str> = op["security"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|s| s.as_object().unwrap().keys().map(String::as_str))
                .collect();
            if public.contains(path.as_str()) {
                assert!(schemes.is_empty(), "{what}");
            } else {
                assert_eq!(schemes, BTreeSet::from(["admin", "api_key"]), "{what}");
                assert_eq!(
                    op["responses"]["401"]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ApiError",
                    "{what}"
                );
            }
            if tag == "admin" {
                assert!(op["responses"]["403"].is_object(), "{what}");
            }
        }
    }
    for scheme in ["admin", "api_key"] {
        assert_eq!(
            doc["components"]["securitySchemes"][scheme]["type"], "http",
            "{scheme}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_only_sign_in_is_listed_but_never_stored() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let home = Home::new();
    let gw = Gateway::mocked(&home, &mock).await;
    gw.connection(json!({
        "name": "web", "tenant": seed::TENANT_ID, "auth": "oauth2-delegated",
        "client_id": seed::WEB_APP, "client_secret": seed::WEB_APP_SECRET,
    }))
    .await;
    let key = gw.app_key("portal", &["web"]).await;
    let (status, login) = gw
        .call(
            "POST",
            "/api/v1/connections/web/logins",
            &key,
            json!({ "principal": "kiosk-7", "session_only": true }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{login}");
    mock.set_auto_approve(Some(seed::MEGAN));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http
        .get(login["authorization_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let (status, html) = html_page(&gw, location.strip_prefix(PUBLIC_URL).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    // Its status is known to this gateway only, like the sign-in itself.
    let id = login["login_id"].as_str().unwrap();
    let (status, done) = gw
        .call(
            "GET",
            &format!("/api/v1/connections/web/logins/{id}"),
            &key,
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "signed_in", "{done}");
    assert_eq!(done["principal"], "kiosk-7", "{done}");
    assert!(
        gw.state.store.login_status(id).await.unwrap().is_none(),
        "a session-only sign-in's status was stored"
    );

    let (status, account) = gw
        .admin(
            "GET",
            "/api/v1/connections/web/accounts/kiosk-7",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{account}");
    assert_eq!(account["auth_kind"], "session");
    assert!(account["token_expires_at"].is_string(), "{account}");
    let (status, page) = gw
        .call(
            "GET",
            "/api/v1/connections/web/users/kiosk-7/messages?limit=2",
            &key,
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let conn = gw.state.connections.get("web").await.unwrap().connection;
    assert!(
        gw.state.store.accounts(conn.id).await.unwrap().is_empty(),
        "a session-only account was stored"
    );
}

#[tokio::test]
async fn a_custom_authority_connection_with_its_own_client_id_and_a_resource() {
    let home = Home::new();
    let gw = Gateway::new(home.state().await).await;
    let doc = document();
    let authority = "https://sso.contoso.com/realms/staff/.well-known/openid-configuration";

    let created = gw
        .connection(json!({
            "name": "portal", "tenant": "contoso.onmicrosoft.com", "auth": "oauth2-delegated",
            "client_id": "exgate-portal", "authority": authority,
            "resource": "https://api.contoso.com",
        }))
        .await;
    assert_shape(&doc, "ConnectionView", &created);
    assert_eq!(created["resource"], "https://api.contoso.com");
    assert_eq!(created["auth"]["client_id"], "exgate-portal");

    // Entra ID's client IDs are GUIDs; a resource indicator needs a custom authority.
    let (status, refused) = gw
        .admin(
            "POST",
            "/api/v1/connections",
            json!({
                "name": "entra", "tenant": "contoso.onmicrosoft.com", "auth": "oauth2-delegated",
                "client_id": "exgate-portal",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("client_id"),
        "{refused}"
    );
    let (status, refused) = gw
        .admin(
            "POST",
            "/api/v1/connections",
            json!({
                "name": "entra", "tenant": "contoso.onmicrosoft.com", "auth": "oauth2-delegated",
                "client_id": CLIENT_ID, "resource": "https://api.contoso.com",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("resource"),
        "{refused}"
    );

    // An edit changes the resource and keeps the rest.
    let (status, changed) = gw
        .admin(
            "PATCH",
            "/api/v1/connections/portal",
            json!({ "resource": "https://api.contoso.com/mail" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["resource"], "https://api.contoso.com/mail");
    assert_eq!(changed["authority"], authority);
}
