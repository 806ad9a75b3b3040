//! Several gateways on one PostgreSQL (docs/scaling.md): each in-process gateway opens its own
//! services (its own pool, caches and change listener) from the same configuration, as separate
//! processes would. A key revoked through one is refused by the others within a second (the
//! caches' TTL is five), failed authentications count across them, readiness follows the
//! change listener, and `exgate-server store migrate` moves a store between SQLite and
//! PostgreSQL and back.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use exgate_core::apikeys::KeyScope;
use exgate_core::clock::SystemClock;
use exgate_core::config::{Env, Settings};
use exgate_core::model::{Account, AccountId, AccountStatus, ConnectionSpec, CredentialKind};
use exgate_core::secret::{Secret, Vault};
use exgate_core::services::Services;
use exgate_core::store::{PostgresOptions, PostgresStore, SqliteStore, Store};
use exgate_server::{AppState, app};
use exgate_testkit::postgres::TempPostgres;
use http_body_util::BodyExt;
use sqlx::Connection as _;
use tower::ServiceExt;

/// One configuration (home folder, master key) for every gateway.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn env_pairs(&self) -> Vec<(&'static str, String)> {
        let p = |sub: &str| self.dir.path().join(sub).display().to_string();
        vec![
            ("HOME", p("")),
            ("XDG_CONFIG_HOME", p("config")),
            ("XDG_DATA_HOME", p("data")),
            ("EXGATE_SYSTEM_CONFIG", p("system.toml")),
        ]
    }

    fn settings(&self, store_url: &str) -> Settings {
        let mut pairs = self.env_pairs();
        pairs.push(("EXGATE__STORE__URL", store_url.to_owned()));
        exgate_core::config::load(None, &Env::from_pairs(pairs)).unwrap()
    }

    fn key_file(&self) -> PathBuf {
        self.dir.path().join("data/exgate/master.key")
    }

    fn vault(&self) -> Arc<Vault> {
        Arc::new(Vault::open_or_create(&self.key_file()).unwrap())
    }

    /// A gateway on `store_url`, as `exgate-server` builds it.
    async fn gateway(&self, store_url: &str) -> AppState {
        let mut settings = self.settings(store_url);
        let services = Services::open(&mut settings, Arc::new(SystemClock))
            .await
            .unwrap();
        AppState::new(services, settings, "http://gateway.test".into())
    }

    fn server(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_exgate-server"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.env_pairs())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

/// `GET /api/v1/connections` from `peer` with `authorization`.
async fn list(router: &Router, peer: &str, authorization: &str) -> StatusCode {
    let mut req = Request::get("/api/v1/connections")
        .header("authorization", authorization)
        .body(Body::empty())
        .unwrap();
    let peer: IpAddr = peer.parse().unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(peer, 40_000)));
    router.clone().oneshot(req).await.unwrap().status()
}

async fn get_json(router: &Router, path: &str) -> (StatusCode, serde_json::Value) {
    let resp = router
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// Waits (without sleeping) until `check` holds, failing after `within`.
async fn until<F, Fut>(within: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_through_one_gateway_is_refused_by_the_others_within_a_second() {
    let pg = TempPostgres::start();
    let url = pg.create_database();
    let home = Home::new();
    let (a, b, c) = (
        home.gateway(&url).await,
        home.gateway(&url).await,
        home.gateway(&url).await,
    );
    for g in [&a, &b, &c] {
        assert!(g.changes.as_ref().is_some_and(|f| f.is_listening()));
    }
    let (_, admin) = a.keys.create("ops", KeyScope::Admin).await.unwrap();
    let (victim, secret) = a.keys.create("leaked", KeyScope::Admin).await.unwrap();
    let admin = format!("Bearer {}", admin.expose());
    let leaked = format!("Bearer {}", secret.expose());
    let routers: Vec<Router> = [&a, &b, &c].iter().map(|g| app((*g).clone())).collect();
    // Every gateway knows (and caches) the key.
    for r in &routers {
        assert_eq!(list(r, "192.0.2.1", &leaked).await, StatusCode::OK);
    }
    let resp = routers[0]
        .clone()
        .oneshot(
            Request::delete(format!("/api/v1/keys/{}", victim.id))
                .header("authorization", &admin)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(
        list(&routers[0], "192.0.2.1", &leaked).await,
        StatusCode::UNAUTHORIZED
    );
    for (name, r) in [("B", &routers[1]), ("C", &routers[2])] {
        until(Duration::from_secs(1), name, || async {
            list(r, "192.0.2.1", &leaked).await == StatusCode::UNAUTHORIZED
        })
        .await;
    }
    // The admin key still works everywhere.
    for r in &routers {
        assert_eq!(list(r, "192.0.2.1", &admin).await, StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_and_accounts_changed_through_one_gateway_are_seen_by_another() {
    let pg = TempPostgres::start();
    let url = pg.create_database();
    let home = Home::new();
    let (a, b) = (home.gateway(&url).await, home.gateway(&url).await);
    let spec = ConnectionSpec {
        tenant: Some("contoso.onmicrosoft.com".into()),
        auth: Some("oauth2-delegated".into()),
        client_id: Some("11111111-2222-3333-4444-555555555555".into()),
        ..ConnectionSpec::default()
    };
    let conn = a.connections.add("shared", &spec).await.unwrap();
    // B caches the connection, then A removes it: B no longer finds it.
    b.connections.get_shared("shared").await.unwrap();
    a.connections.remove("shared").await.unwrap();
    until(
        Duration::from_secs(1),
        "B forgets the connection",
        || async { b.connections.get_shared("shared").await.is_err() },
    )
    .await;
    // An account's reset on A is seen by B's token path.
    let conn2 = a.connections.add("second", &spec).await.unwrap();
    let account = Account {
        id: AccountId::new_random(),
        connection: conn2.id,
        principal: "adele@contoso.com".parse().unwrap(),
        mailbox: None,
        credential: CredentialKind::RefreshToken,
        status: AccountStatus::Active,
        created_at: time::OffsetDateTime::now_utc(),
        last_used_at: None,
    };
    a.store
        .put_account(&account, Some(&Secret::new("refresh-token")))
        .await
        .unwrap();
    let before = b.changes.as_ref().unwrap().status().changes();
    a.store
        .reset_account(account.id, "reset on A")
        .await
        .unwrap();
    until(Duration::from_secs(1), "B hears the reset", || async {
        b.changes.as_ref().unwrap().status().changes() > before
    })
    .await;
    assert_ne!(conn.id, conn2.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_admin_passwords_count_across_gateways() {
    let pg = TempPostgres::start();
    let url = pg.create_database();
    let home = Home::new();
    let (a, b) = (home.gateway(&url).await, home.gateway(&url).await);
    assert!(a.guard.is_shared());
    let password = exgate_core::admin::reset_admin_credential(a.store.as_ref(), &SystemClock)
        .await
        .unwrap();
    let basic = |p: &str| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("admin:{p}"))
        )
    };
    let (ra, rb) = (app(a.clone()), app(b.clone()));
    let wrong = basic("not-the-password");
    // Five guesses on each gateway: each alone stays below the limit of ten.
    for _ in 0..5 {
        assert_eq!(
            list(&ra, "192.0.2.10", &wrong).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            list(&rb, "192.0.2.10", &wrong).await,
            StatusCode::UNAUTHORIZED
        );
    }
    let right = basic(password.expose());
    for r in [&ra, &rb] {
        assert_eq!(
            list(r, "192.0.2.10", &right).await,
            StatusCode::TOO_MANY_REQUESTS,
            "ten failures over two gateways lock the address on both"
        );
    }
    assert_eq!(
        list(&rb, "192.0.2.11", &right).await,
        StatusCode::OK,
        "another address is not locked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_includes_the_database_and_the_change_listener() {
    let mut pg = TempPostgres::start();
    let url = pg.create_database();
    let home = Home::new();
    let a = home.gateway(&url).await;
    let (status, body) = get_json(&app(a.clone()), "/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["store"], "ok");
    assert_eq!(body["changes"], "listening");
    let follower = Arc::clone(a.changes.as_ref().unwrap());
    assert_eq!(follower.status().listens(), 1);

    // The listener's connection is cut: it listens again (and drops every cache meanwhile).
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE pid <> pg_backend_pid() AND query LIKE 'LISTEN%'",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, 1);
    admin.close().await.unwrap();
    until(
        Duration::from_secs(5),
        "the listener reconnects",
        || async { follower.status().listens() == 2 && follower.is_listening() },
    )
    .await;
    assert_eq!(get_json(&app(a.clone()), "/readyz").await.0, StatusCode::OK);

    // The database goes away: not ready (the store does not answer).
    pg.kill();
    until(Duration::from_secs(5), "the listener notices", || async {
        !follower.is_listening()
    })
    .await;
    let (status, body) = get_json(&app(a.clone()), "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["code"], "store_unavailable");
    // A store that answers with a listener that does not: still not ready.
    let mut half = a.clone();
    let lite = home.dir.path().join("lite.db");
    half.store = Arc::new(SqliteStore::open(&lite, home.vault()).await.unwrap());
    let (status, body) = get_json(&app(half), "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["code"], "changes_unavailable");

    pg.restart();
    until(Duration::from_secs(30), "ready again", || async {
        get_json(&app(a.clone()), "/readyz").await.0 == StatusCode::OK
    })
    .await;
    assert!(follower.status().listens() >= 3);
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// What a store holds, read through the model (secrets opened).
async fn contents(s: &dyn Store) -> String {
    let mut out = String::new();
    for c in s.connections().await.unwrap() {
        out += &format!("{c:?}\n");
        for a in s.accounts(c.id).await.unwrap() {
            let rt = s.account_refresh_token(a.id).await.unwrap();
            out += &format!("{a:?} {:?}\n", rt.map(|t| t.expose().to_owned()));
        }
    }
    out += &format!("{:?}\n", s.api_keys().await.unwrap());
    out += &format!("{:?}\n", s.admin_password_hash().await.unwrap());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_migrate_round_trips_a_populated_sqlite_store_through_postgres() {
    let pg = TempPostgres::start();
    let pg_url = pg.create_database();
    let home = Home::new();
    let vault = home.vault();
    let source_path = home.dir.path().join("source.db");
    let source = Arc::new(
        SqliteStore::open(&source_path, Arc::clone(&vault))
            .await
            .unwrap(),
    );
    let keys = exgate_core::apikeys::ApiKeys::new(
        Arc::clone(&source) as Arc<dyn Store>,
        Arc::new(SystemClock),
    );
    let (portal, _) = keys.create("portal", KeyScope::Admin).await.unwrap();
    keys.create("old", KeyScope::Admin).await.unwrap();
    keys.revoke(portal.id).await.unwrap();
    let connections = exgate_core::connections::Connections::new(
        Arc::clone(&source) as Arc<dyn Store>,
        Vec::new(),
        Arc::new(SystemClock),
    );
    let conn = connections
        .add(
            "Online",
            &ConnectionSpec {
                tenant: Some("contoso.onmicrosoft.com".into()),
                auth: Some("oauth2-app-only".into()),
                client_id: Some("11111111-2222-3333-4444-555555555555".into()),
                client_secret: Some(Secret::new("client-secret-value")),
                ..ConnectionSpec::default()
            },
        )
        .await
        .unwrap();
    let account = Account {
        id: AccountId::new_random(),
        connection: conn.id,
        principal: "adele@contoso.com".parse().unwrap(),
        mailbox: Some("adele@contoso.com".parse().unwrap()),
        credential: CredentialKind::RefreshToken,
        status: AccountStatus::Active,
        created_at: time::OffsetDateTime::now_utc(),
        last_used_at: None,
    };
    source
        .put_account(&account, Some(&Secret::new("refresh-token-value")))
        .await
        .unwrap();
    exgate_core::admin::reset_admin_credential(source.as_ref(), &SystemClock)
        .await
        .unwrap();
    let want = contents(source.as_ref()).await;
    source.close().await;

    let from = format!("sqlite://{}", source_path.display());
    let out = home.server(&["store", "migrate", "--from", &from, "--to", &pg_url]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.contains("copied connections: 1 rows, sha256 "),
        "{said}"
    );
    assert!(said.contains("copied api_keys: 2 rows"), "{said}");
    assert!(said.contains("not copied access_tokens"), "{said}");
    assert!(said.contains("verified"), "{said}");
    assert!(!said.contains("refresh-token-value") && !said.contains("client-secret-value"));
    let target = PostgresStore::open(&PostgresOptions::new(&pg_url), Arc::clone(&vault))
        .await
        .unwrap();
    assert_eq!(contents(&target).await, want);

    // A second run into the now populated target is refused and changes nothing.
    let again = home.server(&["store", "migrate", "--from", &from, "--to", &pg_url]);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
    assert!(stderr(&again).contains("--replace"), "{}", stderr(&again));
    let replaced = home.server(&[
        "store",
        "migrate",
        "--from",
        &from,
        "--to",
        &pg_url,
        "--replace",
    ]);
    assert!(replaced.status.success(), "{}", stderr(&replaced));
    assert_eq!(contents(&target).await, want);

    // And back to SQLite.
    let back_path = home.dir.path().join("back.db");
    let back = format!("sqlite://{}", back_path.display());
    let out = home.server(&["store", "migrate", "--from", &pg_url, "--to", &back]);
    assert!(out.status.success(), "{}", stderr(&out));
    let back = SqliteStore::open(&back_path, vault).await.unwrap();
    assert_eq!(contents(&back).await, want);

    // A missing source is an error, not a new empty store.
    let missing = home.dir.path().join("missing.db");
    let out = home.server(&[
        "store",
        "migrate",
        "--from",
        &format!("sqlite://{}", missing.display()),
        "--to",
        &pg_url,
    ]);
    assert!(!out.status.success());
    assert!(!Path::new(&missing).exists());
}
