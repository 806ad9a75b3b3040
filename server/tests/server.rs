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

#[tokio::test]
async fn health_and_readiness_answer_with_a_request_id() {
    let home = Home::new();
    let state = AppState {
        store: Arc::new(home.store().await),
    };
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
    store.close().await;
    let resp = app(AppState { store })
        .oneshot(get("/readyz"))
        .await
        .unwrap();
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
    let state = AppState {
        store: Arc::new(home.store().await),
    };
    let req = Request::get("/api/v1/nothing-here")
        .header("x-request-id", "caller-chosen-id")
        .body(Body::empty())
        .unwrap();
    let resp = app(state).oneshot(req).await.unwrap();
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
