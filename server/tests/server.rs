//! The gateway: router tests through `oneshot`, and the real `exgate-server` binary on port 0.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use exgate_core::admin;
use exgate_core::secret::{Secret, Vault};
use exgate_core::store::SqliteStore;
use exgate_server::{AppState, app};
use http_body_util::BodyExt;
use tower::ServiceExt;

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
        let env = exgate_core::config::Env::from_pairs([
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
        ]);
        let settings = exgate_core::config::load(None, &env).unwrap();
        let store: Arc<dyn exgate_core::store::Store> = Arc::new(self.store().await);
        AppState::new(settings, store, "http://gateway.test".into()).unwrap()
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
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/service/oauth2/authorize",
    ] {
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
    let state = home.state().await;
    let password = exgate_core::admin::reset_admin_credential(
        state.store.as_ref(),
        &exgate_core::clock::SystemClock,
    )
    .await
    .unwrap();
    let mut body = br#"{"name":"big","tenant":"common","auth":"oauth2-delegated","client_id":"11111111-2222-3333-4444-555555555555","scopes":[""#.to_vec();
    body.resize(exgate_server::MAX_BODY_BYTES + 10, b'x');
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
