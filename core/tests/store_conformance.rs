//! The `Store` contract, run over `dyn Store` against every backend: SQLite (a real file),
//! PostgreSQL (a throwaway cluster of the test's own, `exgate_testkit::postgres::TempPostgres`)
//! and the in-memory store. Each check is one function below; `conformance!` makes one test
//! per check and backend (`sqlite::…`, `postgres::…`, `memory::…`).
//!
//! The database backends are also read raw: no secret may be found in their rows in clear, a
//! ciphertext moved to another row must not open, another master key and a newer schema must be
//! refused at open.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use exgate_core::apikeys::{ApiKey, ApiKeyId, KeyScope};
use exgate_core::model::{
    AccessToken, Account, AccountId, AccountStatus, BridgeUser, Connection, ConnectionId,
    ConnectionSpec, CredentialKind, MailboxAccess, Resource, StaticUser, StaticUserId, TokenKey,
};
use exgate_core::secret::{Secret, Vault};
use exgate_core::store::{
    LoginOutcome, LoginStatusRow, MemoryStore, PendingCaps, PendingLoginRow, PostgresOptions,
    PostgresStore, SqliteStore, Store, StoreError,
};
use exgate_testkit::postgres::TempPostgres;
use sqlx::Connection as _;
use time::OffsetDateTime;
use time::macros::datetime;

const CERT: &str = include_str!("fixtures/app.crt");
const KEY: &str = include_str!("fixtures/app.key");
const CLIENT_SECRET: &str = "Xy7Q~client-secret-value-AAAAAAAAAAAAAAAAA";
const PASSWORD: &str = "ntlm-password-BBBBBBBBBBBBBBBB";
const REFRESH_TOKEN: &str = "0.AAAA-refresh-token-CCCCCCCCCCCCCCCCCCCCCC";
const ROTATED: &str = "0.AAAA-rotated-refresh-token-DDDDDDDDDDDDDDD";
const ACCESS_TOKEN: &str = "eyJ0eXAi.access-token-EEEEEEEEEEEEEEEEEEEE";
const VERIFIER: &str = "pkce-verifier-FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF";
const STATE: &str = "state-GGGGGGGGGGGGGGGGGGGGGG";

/// A backend under test and what it takes to read it raw or reopen it.
struct Backend {
    store: Arc<dyn Store>,
    kind: Kind,
    _dir: tempfile::TempDir,
    key_file: PathBuf,
}

enum Kind {
    Sqlite(PathBuf),
    Postgres { url: String, _cluster: TempPostgres },
    Memory,
}

impl Backend {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("master.key");
        let db = dir.path().join("data/exgate.db");
        let vault = Arc::new(Vault::open_or_create(&key_file).unwrap());
        let store = Arc::new(SqliteStore::open(&db, vault).await.unwrap());
        Self {
            store,
            kind: Kind::Sqlite(db),
            _dir: dir,
            key_file,
        }
    }

    async fn postgres() -> Self {
        let cluster = TempPostgres::start();
        let url = cluster.create_database();
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("master.key");
        let vault = Arc::new(Vault::open_or_create(&key_file).unwrap());
        let store = Arc::new(
            PostgresStore::open(&PostgresOptions::new(&url), vault)
                .await
                .unwrap(),
        );
        Self {
            store,
            kind: Kind::Postgres {
                url,
                _cluster: cluster,
            },
            _dir: dir,
            key_file,
        }
    }

    async fn memory() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            store: Arc::new(MemoryStore::new()),
            kind: Kind::Memory,
            key_file: dir.path().join("unused.key"),
            _dir: dir,
        }
    }

    /// Opens the same database again with the master key in `key_file`.
    async fn reopen_with(&self, key_file: &Path) -> Result<Arc<dyn Store>, StoreError> {
        let vault = Arc::new(Vault::open_or_create(key_file).unwrap());
        Ok(match &self.kind {
            Kind::Sqlite(db) => Arc::new(SqliteStore::open(db, vault).await?),
            Kind::Postgres { url, .. } => {
                Arc::new(PostgresStore::open(&PostgresOptions::new(url), vault).await?)
            }
            Kind::Memory => unreachable!("the memory store has no database to reopen"),
        })
    }

    /// Every byte the database holds, as its files (SQLite) or as its rows in text
    /// (PostgreSQL, where BYTEA reads as hex; [`assert_not_in`] looks for both forms).
    async fn raw(&self) -> Vec<u8> {
        match &self.kind {
            Kind::Sqlite(db) => {
                let mut bytes = std::fs::read(db).unwrap();
                for suffix in ["-wal", "-shm"] {
                    let mut p = db.as_os_str().to_owned();
                    p.push(suffix);
                    bytes.extend(std::fs::read(PathBuf::from(p)).unwrap_or_default());
                }
                bytes
            }
            Kind::Postgres { url, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                let mut out = Vec::new();
                for table in [
                    "meta",
                    "connections",
                    "accounts",
                    "static_users",
                    "access_tokens",
                    "api_keys",
                    "admin_credential",
                    "bridge_users",
                    "pending_logins",
                ] {
                    let sql = format!("SELECT CAST(t AS TEXT) FROM {table} t");
                    let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                    for (row,) in rows {
                        out.extend(row.into_bytes());
                    }
                }
                out
            }
            Kind::Memory => unreachable!("the memory store has no database to read"),
        }
    }

    /// Returns once `task` waits for a refresh turn another caller holds: on PostgreSQL, when
    /// the server shows a session waiting for a lock; in a process's own lock, when the task
    /// has run as far as it can without finishing.
    async fn until_waiting<T>(&self, task: &tokio::task::JoinHandle<T>) {
        match &self.kind {
            Kind::Postgres { url, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
                loop {
                    let (waiting,): (i64,) = sqlx::query_as(
                        "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
                    )
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
                    if waiting > 0 {
                        break;
                    }
                    assert!(std::time::Instant::now() < deadline, "nobody waits");
                    tokio::task::yield_now().await;
                }
            }
            Kind::Sqlite(_) | Kind::Memory => {
                for _ in 0..100 {
                    tokio::task::yield_now().await;
                }
            }
        }
        assert!(
            !task.is_finished(),
            "the second caller got a turn while the first held it"
        );
    }

    /// Runs SQL on the database directly (both backends accept this SQL as written).
    async fn exec(&self, sql: &'static str) {
        match &self.kind {
            Kind::Sqlite(db) => {
                let url = format!("sqlite://{}", db.display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            Kind::Postgres { url, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            Kind::Memory => unreachable!(),
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn assert_not_in(raw: &[u8], secret: &str) {
    assert!(
        !contains(raw, secret.as_bytes()),
        "`{secret}` found in clear"
    );
    assert!(
        !contains(raw, hex(secret).as_bytes()),
        "`{secret}` found in clear (as hex)"
    );
}

fn connection(name: &str, spec: ConnectionSpec) -> Connection {
    let at = datetime!(2026-11-01 10:00 UTC);
    Connection {
        id: ConnectionId::new_random(),
        name: name.parse().unwrap(),
        settings: spec.validate().unwrap(),
        created_at: at,
        updated_at: at,
    }
}

fn app_only(secret: &str) -> ConnectionSpec {
    ConnectionSpec {
        tenant: Some("contoso.onmicrosoft.com".into()),
        auth: Some("oauth2-app-only".into()),
        client_id: Some("11111111-2222-3333-4444-555555555555".into()),
        client_secret: Some(Secret::new(secret)),
        ..ConnectionSpec::default()
    }
}

fn specs() -> Vec<(&'static str, ConnectionSpec)> {
    vec![
        ("online-secret", app_only(CLIENT_SECRET)),
        (
            "Online-Cert",
            ConnectionSpec {
                tenant: Some("common".into()),
                auth: Some("oauth2-delegated".into()),
                client_id: Some("11111111-2222-3333-4444-555555555555".into()),
                certificate_pem: Some(CERT.into()),
                private_key_pem: Some(Secret::new(KEY)),
                scopes: Some(vec!["Mail.Read".into()]),
                ..ConnectionSpec::default()
            },
        ),
        (
            "keycloak",
            ConnectionSpec {
                tenant: Some("contoso.onmicrosoft.com".into()),
                auth: Some("oauth2-delegated".into()),
                client_id: Some("exgate-portal".into()),
                authority: Some(
                    "https://sso.contoso.com/realms/staff/.well-known/openid-configuration".into(),
                ),
                resource: Some("https://api.contoso.com".into()),
                ..ConnectionSpec::default()
            },
        ),
        (
            "onprem",
            ConnectionSpec {
                ews_url: Some("https://mail.contoso.com/EWS/Exchange.asmx".into()),
                server_version: Some("se".into()),
                auth: Some("ntlm".into()),
                username: Some("CONTOSO\\svc".into()),
                password: Some(Secret::new(PASSWORD)),
                ..ConnectionSpec::default()
            },
        ),
    ]
}

fn account(connection: ConnectionId, principal: &str) -> Account {
    Account {
        id: AccountId::new_random(),
        connection,
        principal: principal.parse().unwrap(),
        mailbox: Some("adele@contoso.com".parse().unwrap()),
        credential: CredentialKind::RefreshToken,
        status: AccountStatus::Active,
        created_at: datetime!(2026-11-02 08:00 UTC),
        last_used_at: None,
    }
}

fn access(value: &str) -> AccessToken {
    AccessToken {
        secret: Secret::new(value),
        expires_at: datetime!(2026-11-02 09:00 UTC),
        refresh_at: datetime!(2026-11-02 08:55 UTC),
    }
}

fn static_user(connection: ConnectionId, principal: &str) -> StaticUser {
    StaticUser {
        id: StaticUserId::new_random(),
        connection,
        principal: principal.parse().unwrap(),
        mailbox: "invoices@contoso.com".parse().unwrap(),
        access: MailboxAccess::Impersonation,
        created_at: datetime!(2026-11-03 08:00 UTC),
    }
}

fn bridge_user(connection: ConnectionId, username: &str) -> BridgeUser {
    BridgeUser {
        username: username.parse().unwrap(),
        connection,
        principal: Some("user-42".parse().unwrap()),
        mailbox: username.parse().unwrap(),
        created_at: datetime!(2026-11-04 08:00 UTC),
    }
}

fn api_key(name: &str, created_at: OffsetDateTime) -> ApiKey {
    ApiKey {
        id: ApiKeyId(uuid::Uuid::new_v4()),
        name: name.into(),
        scope: KeyScope::Connections(vec![ConnectionId::new_random()]),
        created_at,
        last_used_at: None,
        revoked_at: None,
    }
}

// ---- the contract, for every backend ----

async fn connections_round_trip_and_are_found_by_name_in_any_case(b: Backend) {
    let s = &b.store;
    let mut written = Vec::new();
    for (name, spec) in specs() {
        let c = connection(name, spec);
        s.insert_connection(&c).await.unwrap();
        written.push(c);
    }
    // Listed by name without regard to case.
    let names: Vec<String> = s
        .connections()
        .await
        .unwrap()
        .iter()
        .map(|c| c.name.to_string())
        .collect();
    assert_eq!(
        names,
        ["keycloak", "Online-Cert", "online-secret", "onprem"]
    );
    for c in &written {
        let upper = c.name.as_str().to_uppercase().parse().unwrap();
        assert_eq!(s.connection(&upper).await.unwrap().as_ref(), Some(c));
        assert_eq!(s.connection_by_id(c.id).await.unwrap().as_ref(), Some(c));
    }
    assert_eq!(s.connection(&"nope".parse().unwrap()).await.unwrap(), None);
    assert_eq!(
        s.connection_by_id(ConnectionId::new_random())
            .await
            .unwrap(),
        None
    );

    // An update replaces everything but the creation time, secret included; a rename in
    // another case is the same connection.
    let mut changed = written[0].clone();
    changed.name = "ONLINE-SECRET".parse().unwrap();
    changed.settings = app_only("New~secret-FFFFFFFFFFFFFFFFFFFF")
        .validate()
        .unwrap();
    changed.updated_at = datetime!(2026-11-05 10:00 UTC);
    assert!(s.update_connection(&changed).await.unwrap());
    assert_eq!(
        s.connection(&"online-secret".parse().unwrap())
            .await
            .unwrap(),
        Some(changed.clone())
    );
    let ghost = connection("ghost", app_only(CLIENT_SECRET));
    assert!(!s.update_connection(&ghost).await.unwrap());
    assert_eq!(s.connection(&"ghost".parse().unwrap()).await.unwrap(), None);
}

async fn a_taken_name_in_any_case_is_a_conflict_and_changes_nothing(b: Backend) {
    let s = &b.store;
    let first = connection("Mail", app_only(CLIENT_SECRET));
    let other = connection("other", app_only(CLIENT_SECRET));
    s.insert_connection(&first).await.unwrap();
    s.insert_connection(&other).await.unwrap();
    let before = s.connections().await.unwrap();

    let err = s
        .insert_connection(&connection("mAIL", app_only("x-secret-GGGGGGGGGGGG")))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");

    let mut renamed = other.clone();
    renamed.name = "MAIL".parse().unwrap();
    let err = s.update_connection(&renamed).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");

    assert_eq!(s.connections().await.unwrap(), before);
}

async fn accounts_follow_the_contract(b: Backend) {
    let s = &b.store;
    let c = ConnectionId::new_random();
    let zed = account(c, "zed");
    let adele = account(c, "Adele");
    s.put_account(&zed, None).await.unwrap();
    s.put_account(&adele, Some(&Secret::new(REFRESH_TOKEN)))
        .await
        .unwrap();
    // Principals are compared as they are: "adele" is another principal than "Adele".
    let lower = account(c, "adele");
    s.put_account(&lower, None).await.unwrap();
    let listed: Vec<String> = s
        .accounts(c)
        .await
        .unwrap()
        .iter()
        .map(|a| a.principal.to_string())
        .collect();
    assert_eq!(listed, ["Adele", "adele", "zed"]);
    assert!(
        s.accounts(ConnectionId::new_random())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.account(c, &adele.principal).await.unwrap(),
        Some(adele.clone())
    );
    assert_eq!(
        s.account_refresh_token(adele.id)
            .await
            .unwrap()
            .unwrap()
            .expose(),
        REFRESH_TOKEN
    );
    assert!(s.account_refresh_token(zed.id).await.unwrap().is_none());

    // Another account for a taken (connection, principal) conflicts and changes nothing.
    let dup = Account {
        status: AccountStatus::NeedsSignIn {
            reason: "dup".into(),
        },
        ..account(c, "Adele")
    };
    let err = s
        .put_account(&dup, Some(&Secret::new(ROTATED)))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(
        s.account(c, &adele.principal).await.unwrap(),
        Some(adele.clone())
    );
    assert_eq!(
        s.account_refresh_token(adele.id)
            .await
            .unwrap()
            .unwrap()
            .expose(),
        REFRESH_TOKEN
    );

    // Putting the same ID again replaces its state and refresh token.
    let relinked = Account {
        mailbox: Some("adele.vance@contoso.com".parse().unwrap()),
        last_used_at: Some(datetime!(2026-11-02 09:00 UTC)),
        ..adele.clone()
    };
    s.put_account(&relinked, Some(&Secret::new(ROTATED)))
        .await
        .unwrap();
    assert_eq!(
        s.account(c, &adele.principal).await.unwrap(),
        Some(relinked.clone())
    );
    assert_eq!(
        s.account_refresh_token(adele.id)
            .await
            .unwrap()
            .unwrap()
            .expose(),
        ROTATED
    );

    // Status: the last use is kept unless a new one is given.
    let needs = AccountStatus::NeedsSignIn {
        reason: "AADSTS70008".into(),
    };
    assert!(s.set_account_status(adele.id, &needs, None).await.unwrap());
    let read = s.account(c, &adele.principal).await.unwrap().unwrap();
    assert_eq!(read.status, needs);
    assert_eq!(read.last_used_at, relinked.last_used_at);
    let later = datetime!(2026-11-02 10:00 UTC);
    assert!(
        s.set_account_status(adele.id, &AccountStatus::Active, Some(later))
            .await
            .unwrap()
    );
    let read = s.account(c, &adele.principal).await.unwrap().unwrap();
    assert_eq!(
        (read.status, read.last_used_at),
        (AccountStatus::Active, Some(later))
    );
    assert!(
        !s.set_account_status(AccountId::new_random(), &needs, None)
            .await
            .unwrap()
    );

    let touched = datetime!(2026-11-02 11:00 UTC);
    s.touch_account(adele.id, touched).await.unwrap();
    s.touch_account(AccountId::new_random(), touched)
        .await
        .unwrap();
    assert_eq!(
        s.account(c, &adele.principal)
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(touched)
    );

    assert!(s.delete_account(zed.id).await.unwrap());
    assert!(!s.delete_account(zed.id).await.unwrap());
    assert_eq!(s.account(c, &zed.principal).await.unwrap(), None);
}

async fn tokens_rotate_with_the_access_token_and_go_with_their_account(b: Backend) {
    let s = &b.store;
    let c = ConnectionId::new_random();
    let a = account(c, "user-1");
    let other = account(c, "user-2");
    s.put_account(&a, Some(&Secret::new(REFRESH_TOKEN)))
        .await
        .unwrap();
    s.put_account(&other, Some(&Secret::new(REFRESH_TOKEN)))
        .await
        .unwrap();
    let graph = TokenKey {
        connection: c,
        account: Some(a.id),
        resource: Resource::Graph,
    };
    let ews = TokenKey {
        resource: Resource::Ews,
        ..graph
    };
    let app = TokenKey {
        connection: c,
        account: None,
        resource: Resource::Graph,
    };
    let others = TokenKey {
        account: Some(other.id),
        ..graph
    };
    assert_eq!(s.access_token(&graph).await.unwrap(), None);

    s.save_tokens(&graph, &access(ACCESS_TOKEN), Some(&Secret::new(ROTATED)))
        .await
        .unwrap();
    assert_eq!(
        s.access_token(&graph).await.unwrap(),
        Some(access(ACCESS_TOKEN))
    );
    assert_eq!(
        s.account_refresh_token(a.id)
            .await
            .unwrap()
            .unwrap()
            .expose(),
        ROTATED
    );
    // Without a new refresh token the stored one stays.
    s.save_tokens(&ews, &access("ews-token"), None)
        .await
        .unwrap();
    assert_eq!(
        s.account_refresh_token(a.id)
            .await
            .unwrap()
            .unwrap()
            .expose(),
        ROTATED
    );
    s.save_tokens(&app, &access("app-token"), None)
        .await
        .unwrap();
    s.save_tokens(&others, &access("other-token"), None)
        .await
        .unwrap();
    assert_eq!(
        s.access_token(&app).await.unwrap(),
        Some(access("app-token"))
    );
    // A newer token replaces the older.
    s.save_tokens(&ews, &access("ews-token-2"), None)
        .await
        .unwrap();
    assert_eq!(
        s.access_token(&ews).await.unwrap(),
        Some(access("ews-token-2"))
    );

    // One account's tokens…
    s.delete_access_tokens(c, Some(a.id)).await.unwrap();
    assert_eq!(s.access_token(&graph).await.unwrap(), None);
    assert_eq!(s.access_token(&ews).await.unwrap(), None);
    assert!(s.access_token(&app).await.unwrap().is_some());
    assert!(s.access_token(&others).await.unwrap().is_some());
    // …then the connection's.
    s.delete_access_tokens(c, None).await.unwrap();
    assert_eq!(s.access_token(&app).await.unwrap(), None);
    assert_eq!(s.access_token(&others).await.unwrap(), None);

    // Reset forgets the refresh and access tokens and asks for a sign-in.
    s.save_tokens(&graph, &access(ACCESS_TOKEN), None)
        .await
        .unwrap();
    assert!(s.reset_account(a.id, "reset by admin").await.unwrap());
    assert_eq!(s.access_token(&graph).await.unwrap(), None);
    assert!(s.account_refresh_token(a.id).await.unwrap().is_none());
    assert_eq!(
        s.account(c, &a.principal).await.unwrap().unwrap().status,
        AccountStatus::NeedsSignIn {
            reason: "reset by admin".into()
        }
    );
    assert!(!s.reset_account(AccountId::new_random(), "x").await.unwrap());

    // Deleting an account deletes its tokens.
    s.save_tokens(&others, &access("other-token"), None)
        .await
        .unwrap();
    assert!(s.delete_account(other.id).await.unwrap());
    assert_eq!(s.access_token(&others).await.unwrap(), None);
}

async fn static_users_follow_the_contract(b: Backend) {
    let s = &b.store;
    let c = ConnectionId::new_random();
    let bot = static_user(c, "workflow-bot");
    let alice = static_user(c, "alice");
    s.insert_static_user(&bot).await.unwrap();
    s.insert_static_user(&alice).await.unwrap();
    let dup = StaticUser {
        mailbox: "other@contoso.com".parse().unwrap(),
        ..static_user(c, "workflow-bot")
    };
    let err = s.insert_static_user(&dup).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    // The same principal on another connection is another user.
    let elsewhere = static_user(ConnectionId::new_random(), "workflow-bot");
    s.insert_static_user(&elsewhere).await.unwrap();
    assert_eq!(
        s.static_users(c).await.unwrap(),
        vec![alice.clone(), bot.clone()]
    );
    assert!(s.delete_static_user(bot.id).await.unwrap());
    assert!(!s.delete_static_user(bot.id).await.unwrap());
    assert_eq!(s.static_users(c).await.unwrap(), vec![alice]);
}

async fn api_keys_follow_the_contract(b: Backend) {
    let s = &b.store;
    let older = api_key("older", datetime!(2026-11-01 08:00 UTC));
    let admin = ApiKey {
        scope: KeyScope::Admin,
        ..api_key("admin", datetime!(2026-11-02 08:00 UTC))
    };
    let (h1, h2) = ([1u8; 32], [2u8; 32]);
    s.insert_api_key(&admin, &h2).await.unwrap();
    s.insert_api_key(&older, &h1).await.unwrap();
    let err = s
        .insert_api_key(&api_key("same value", datetime!(2026-11-03 08:00 UTC)), &h1)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(
        s.api_keys().await.unwrap(),
        vec![older.clone(), admin.clone()]
    );
    assert_eq!(s.api_key_by_hash(&h2).await.unwrap(), Some(admin.clone()));
    assert_eq!(s.api_key_by_hash(&[3u8; 32]).await.unwrap(), None);

    let used = datetime!(2026-11-05 08:00 UTC);
    s.touch_api_key(older.id, used).await.unwrap();
    let revoked = datetime!(2026-11-06 08:00 UTC);
    assert!(s.revoke_api_key(older.id, revoked).await.unwrap());
    assert!(
        !s.revoke_api_key(older.id, datetime!(2026-11-07 08:00 UTC))
            .await
            .unwrap()
    );
    assert!(
        !s.revoke_api_key(ApiKeyId(uuid::Uuid::new_v4()), revoked)
            .await
            .unwrap()
    );
    let read = s.api_key_by_hash(&h1).await.unwrap().unwrap();
    assert_eq!(
        (read.last_used_at, read.revoked_at),
        (Some(used), Some(revoked))
    );
}

async fn the_admin_credential_is_set_and_replaced(b: Backend) {
    let s = &b.store;
    assert_eq!(s.admin_password_hash().await.unwrap(), None);
    let at = datetime!(2026-11-01 08:00 UTC);
    s.set_admin_password_hash("$argon2id$first", at)
        .await
        .unwrap();
    s.set_admin_password_hash("$argon2id$second", at)
        .await
        .unwrap();
    assert_eq!(
        s.admin_password_hash().await.unwrap().as_deref(),
        Some("$argon2id$second")
    );
}

async fn bridge_users_follow_the_contract(b: Backend) {
    let s = &b.store;
    let c = ConnectionId::new_random();
    let zoe = bridge_user(c, "zoe@contoso.com");
    let adele = BridgeUser {
        principal: None,
        ..bridge_user(c, "adele@contoso.com")
    };
    s.insert_bridge_user(&zoe, "$argon2id$zoe").await.unwrap();
    s.insert_bridge_user(&adele, "$argon2id$adele")
        .await
        .unwrap();
    let err = s
        .insert_bridge_user(
            &bridge_user(ConnectionId::new_random(), "zoe@contoso.com"),
            "h",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(
        s.bridge_user("zoe@contoso.com").await.unwrap(),
        Some((zoe.clone(), "$argon2id$zoe".into()))
    );
    assert_eq!(s.bridge_user("nobody@contoso.com").await.unwrap(), None);
    assert_eq!(s.bridge_users().await.unwrap(), vec![adele.clone(), zoe]);
    assert!(s.delete_bridge_user("zoe@contoso.com").await.unwrap());
    assert!(!s.delete_bridge_user("zoe@contoso.com").await.unwrap());
    assert_eq!(s.bridge_users().await.unwrap(), vec![adele]);
}

async fn deleting_a_connection_deletes_everything_of_it_and_nothing_else(b: Backend) {
    let s = &b.store;
    let gone = connection("Gone", app_only(CLIENT_SECRET));
    let kept = connection("kept", app_only(CLIENT_SECRET));
    for c in [&gone, &kept] {
        s.insert_connection(c).await.unwrap();
        let a = account(c.id, "user-1");
        s.put_account(&a, Some(&Secret::new(REFRESH_TOKEN)))
            .await
            .unwrap();
        let key = TokenKey {
            connection: c.id,
            account: Some(a.id),
            resource: Resource::Graph,
        };
        s.save_tokens(&key, &access(ACCESS_TOKEN), None)
            .await
            .unwrap();
        s.save_tokens(
            &TokenKey {
                account: None,
                ..key
            },
            &access(ACCESS_TOKEN),
            None,
        )
        .await
        .unwrap();
        s.insert_static_user(&static_user(c.id, "bot"))
            .await
            .unwrap();
        let username = format!("{}@contoso.com", c.name.folded());
        s.insert_bridge_user(&bridge_user(c.id, &username), "h")
            .await
            .unwrap();
        s.put_login_status(
            &status_row(
                c.id,
                &format!("login-{}", c.name.folded()),
                OffsetDateTime::now_utc(),
            ),
            10,
            OffsetDateTime::UNIX_EPOCH,
        )
        .await
        .unwrap();
    }
    // Named in another case.
    assert!(s.delete_connection(&"GONE".parse().unwrap()).await.unwrap());
    assert!(!s.delete_connection(&"gone".parse().unwrap()).await.unwrap());
    assert_eq!(s.connection_by_id(gone.id).await.unwrap(), None);
    assert!(s.accounts(gone.id).await.unwrap().is_empty());
    assert!(s.static_users(gone.id).await.unwrap().is_empty());
    assert_eq!(
        s.access_token(&TokenKey {
            connection: gone.id,
            account: None,
            resource: Resource::Graph
        })
        .await
        .unwrap(),
        None
    );
    let bridge: Vec<_> = s.bridge_users().await.unwrap();
    assert_eq!(bridge.len(), 1);
    assert_eq!(bridge[0].connection, kept.id);
    assert_eq!(s.login_status("login-gone").await.unwrap(), None);
    assert!(s.login_status("login-kept").await.unwrap().is_some());

    assert!(s.connection_by_id(kept.id).await.unwrap().is_some());
    assert_eq!(s.accounts(kept.id).await.unwrap().len(), 1);
    assert_eq!(s.static_users(kept.id).await.unwrap().len(), 1);
    assert!(
        s.access_token(&TokenKey {
            connection: kept.id,
            account: None,
            resource: Resource::Graph
        })
        .await
        .unwrap()
        .is_some()
    );
    s.ping().await.unwrap();
}

fn pending(
    connection: ConnectionId,
    principal: Option<&str>,
    state: &str,
    at: OffsetDateTime,
) -> PendingLoginRow {
    PendingLoginRow {
        state: state.into(),
        connection,
        principal: principal.map(|p| p.parse().unwrap()),
        started_at: at,
        payload: Secret::new(format!(
            "{{\"verifier\":\"{VERIFIER}\",\"state\":\"{state}\"}}"
        )),
    }
}

async fn pending_logins_are_taken_once_capped_oldest_first_and_purged(b: Backend) {
    let s = &b.store;
    let at = datetime!(2026-11-05 10:00 UTC);
    let (c, d) = (ConnectionId::new_random(), ConnectionId::new_random());
    let caps = PendingCaps {
        per_principal: 2,
        per_connection: 4,
        total: 6,
    };
    let put = |p: PendingLoginRow| async move {
        s.put_pending_login(&p, caps, at - time::Duration::minutes(10))
            .await
            .unwrap();
    };
    put(pending(c, Some("u1"), "s1", at)).await;
    let taken = s.take_pending_login("s1").await.unwrap().unwrap();
    assert_eq!(taken.state, "s1");
    assert_eq!(taken.connection, c);
    assert_eq!(taken.principal, Some("u1".parse().unwrap()));
    assert_eq!(taken.started_at, at);
    assert!(taken.payload.expose().contains(VERIFIER));
    assert!(s.take_pending_login("s1").await.unwrap().is_none(), "once");
    assert!(s.take_pending_login("nobody").await.unwrap().is_none());

    // Per principal: the oldest goes; `None` (the signed-in user's name) is a principal of its own.
    for i in 0..3 {
        put(pending(c, Some("u1"), &format!("u1-{i}"), at)).await;
    }
    put(pending(c, None, "anyone-0", at)).await;
    put(pending(c, None, "anyone-1", at)).await;
    assert!(s.take_pending_login("u1-0").await.unwrap().is_none());
    assert!(s.take_pending_login("u1-2").await.unwrap().is_some());
    // c holds u1-1, anyone-0, anyone-1; two more make five, over its cap of four.
    put(pending(c, Some("u2"), "u2-0", at)).await;
    put(pending(c, Some("u3"), "u3-0", at)).await;
    assert_eq!(s.pending_logins().await.unwrap(), 4);
    assert!(
        s.take_pending_login("u1-1").await.unwrap().is_none(),
        "the connection's oldest"
    );
    // Another connection fills the total: the oldest of all go.
    for i in 0..4 {
        put(pending(d, Some(&format!("v{i}")), &format!("d-{i}"), at)).await;
    }
    assert_eq!(s.pending_logins().await.unwrap(), 6);
    assert!(s.take_pending_login("anyone-0").await.unwrap().is_none());
    assert!(s.take_pending_login("d-3").await.unwrap().is_some());

    // Expired ones are purged, by a new one or on their own.
    let later = at + time::Duration::minutes(11);
    s.put_pending_login(
        &pending(d, Some("late"), "late", later),
        caps,
        later - time::Duration::minutes(10),
    )
    .await
    .unwrap();
    assert_eq!(s.pending_logins().await.unwrap(), 1);
    assert_eq!(s.purge_pending_logins(later).await.unwrap(), 0);
    assert_eq!(
        s.purge_pending_logins(later + time::Duration::seconds(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.pending_logins().await.unwrap(), 0);
}

fn status_row(connection: ConnectionId, login_id: &str, at: OffsetDateTime) -> LoginStatusRow {
    LoginStatusRow {
        login_id: login_id.into(),
        connection,
        started_at: at,
        outcome: LoginOutcome::Pending,
    }
}

async fn login_statuses_are_recorded_finished_capped_oldest_first_and_expire(b: Backend) {
    let s = &b.store;
    let at = datetime!(2026-11-05 10:00 UTC);
    let hour = time::Duration::hours(1);
    let (c, d) = (ConnectionId::new_random(), ConnectionId::new_random());
    let put = |row: LoginStatusRow| async move {
        let expired_before = row.started_at - hour;
        s.put_login_status(&row, 3, expired_before).await.unwrap();
    };
    put(status_row(c, "l1", at)).await;
    assert_eq!(
        s.login_status("l1").await.unwrap(),
        Some(status_row(c, "l1", at)),
        "pending, with its connection and start"
    );
    assert_eq!(s.login_status("nobody").await.unwrap(), None);

    let signed_in = LoginOutcome::SignedIn {
        principal: "u42".into(),
        mailbox: Some("adele@contoso.com".into()),
    };
    assert!(s.set_login_outcome("l1", &signed_in).await.unwrap());
    let row = s.login_status("l1").await.unwrap().unwrap();
    assert_eq!((row.connection, row.outcome), (c, signed_in));
    assert!(
        !s.set_login_outcome("nobody", &LoginOutcome::Pending)
            .await
            .unwrap(),
        "an unknown login is not created by its outcome"
    );
    assert_eq!(s.login_status("nobody").await.unwrap(), None);

    put(status_row(d, "l2", at)).await;
    let failed = LoginOutcome::Failed {
        error: "the user declined (access_denied)".into(),
        hint: Some("ask the user to consent".into()),
    };
    assert!(s.set_login_outcome("l2", &failed).await.unwrap());
    assert_eq!(s.login_status("l2").await.unwrap().unwrap().outcome, failed);
    let no_hint = LoginOutcome::Failed {
        error: "refused".into(),
        hint: None,
    };
    assert!(s.set_login_outcome("l2", &no_hint).await.unwrap());
    assert_eq!(
        s.login_status("l2").await.unwrap().unwrap().outcome,
        no_hint
    );

    // The cap (3 here): the oldest goes, whatever its connection.
    put(status_row(c, "l3", at)).await;
    put(status_row(c, "l4", at)).await;
    assert_eq!(s.login_status("l1").await.unwrap(), None, "the oldest went");
    for id in ["l2", "l3", "l4"] {
        assert!(s.login_status(id).await.unwrap().is_some(), "{id}");
    }
    // Started again under the same ID: pending again, and one row.
    put(status_row(c, "l4", at)).await;
    assert_eq!(
        s.login_status("l4").await.unwrap().unwrap().outcome,
        LoginOutcome::Pending
    );
    assert!(s.login_status("l2").await.unwrap().is_some());

    // A new one purges those started more than an hour before it.
    let later = at + hour + time::Duration::seconds(1);
    put(status_row(d, "late", later)).await;
    for id in ["l2", "l3", "l4"] {
        assert_eq!(s.login_status(id).await.unwrap(), None, "{id} expired");
    }
    assert_eq!(
        s.login_status("late").await.unwrap().unwrap().started_at,
        later
    );
}

async fn a_refresh_turn_is_one_callers_and_the_next_reads_what_it_committed(b: Backend) {
    let s = Arc::clone(&b.store);
    let c = ConnectionId::new_random();
    let a = account(c, "user-1");
    s.put_account(
        &Account {
            status: AccountStatus::NeedsSignIn { reason: "x".into() },
            ..a.clone()
        },
        Some(&Secret::new(REFRESH_TOKEN)),
    )
    .await
    .unwrap();
    let key = TokenKey {
        connection: c,
        account: Some(a.id),
        resource: Resource::Graph,
    };
    assert!(
        s.begin_refresh(AccountId::new_random(), &key)
            .await
            .unwrap()
            .is_none()
    );

    let first = s.begin_refresh(a.id, &key).await.unwrap().unwrap();
    assert_eq!(
        first.refresh_token.as_ref().unwrap().expose(),
        REFRESH_TOKEN
    );
    assert_eq!(first.access_token, None);
    assert!(matches!(first.status, AccountStatus::NeedsSignIn { .. }));
    let waiter = {
        let s = Arc::clone(&s);
        tokio::spawn(async move { s.begin_refresh(a.id, &key).await.unwrap().unwrap() })
    };
    b.until_waiting(&waiter).await;
    let at = datetime!(2026-11-02 08:10 UTC);
    s.commit_refresh(
        first,
        &key,
        &access(ACCESS_TOKEN),
        Some(&Secret::new(ROTATED)),
        at,
    )
    .await
    .unwrap();
    let second = waiter.await.unwrap();
    assert_eq!(second.refresh_token.as_ref().unwrap().expose(), ROTATED);
    assert_eq!(second.access_token, Some(access(ACCESS_TOKEN)));
    assert_eq!(second.status, AccountStatus::Active);
    // Dropped: nothing changes, and the next caller gets its turn.
    drop(second);
    let third = s.begin_refresh(a.id, &key).await.unwrap().unwrap();
    assert_eq!(third.refresh_token.as_ref().unwrap().expose(), ROTATED);
    // Without a new refresh token, the stored one stays.
    s.commit_refresh(third, &key, &access("next"), None, at)
        .await
        .unwrap();
    assert_eq!(
        s.account_refresh_token(a.id)
            .await
            .unwrap()
            .unwrap()
            .expose(),
        ROTATED
    );
    let stored = s.account(c, &a.principal).await.unwrap().unwrap();
    assert_eq!(stored.status, AccountStatus::Active);
    assert_eq!(stored.last_used_at, Some(at));
    assert_eq!(s.access_token(&key).await.unwrap(), Some(access("next")));
}

// ---- one process per store (SQLite, memory): the turn is a lock of the process ----

async fn a_refresh_token_rotated_by_another_process_meanwhile_is_kept(b: Backend) {
    let s = &b.store;
    let c = ConnectionId::new_random();
    let a = account(c, "user-1");
    s.put_account(&a, Some(&Secret::new(REFRESH_TOKEN)))
        .await
        .unwrap();
    let key = TokenKey {
        connection: c,
        account: Some(a.id),
        resource: Resource::Graph,
    };
    let turn = s.begin_refresh(a.id, &key).await.unwrap().unwrap();
    // Another process (the CLI on the same file) rotates it without the turn.
    s.save_tokens(&key, &access("theirs"), Some(&Secret::new("their-rotated")))
        .await
        .unwrap();
    s.commit_refresh(
        turn,
        &key,
        &access(ACCESS_TOKEN),
        Some(&Secret::new(ROTATED)),
        datetime!(2026-11-02 08:10 UTC),
    )
    .await
    .unwrap();
    assert_eq!(
        s.account_refresh_token(a.id)
            .await
            .unwrap()
            .unwrap()
            .expose(),
        "their-rotated",
        "the version check keeps the token that was stored after the turn read"
    );
    assert_eq!(
        s.access_token(&key).await.unwrap(),
        Some(access(ACCESS_TOKEN))
    );
}

// ---- the database backends only ----

async fn no_secret_is_in_the_database_in_clear(b: Backend) {
    let s = &b.store;
    let mut conn_with_account = None;
    for (name, spec) in specs() {
        let c = connection(name, spec);
        s.insert_connection(&c).await.unwrap();
        conn_with_account.get_or_insert(c.id);
    }
    let c = conn_with_account.unwrap();
    let a = account(c, "user-42");
    s.put_account(&a, Some(&Secret::new(REFRESH_TOKEN)))
        .await
        .unwrap();
    let key = TokenKey {
        connection: c,
        account: Some(a.id),
        resource: Resource::Graph,
    };
    s.save_tokens(&key, &access(ACCESS_TOKEN), Some(&Secret::new(ROTATED)))
        .await
        .unwrap();
    s.put_pending_login(
        &pending(c, Some("user-42"), STATE, datetime!(2026-11-05 10:00 UTC)),
        PendingCaps::default(),
        datetime!(2026-11-05 09:50 UTC),
    )
    .await
    .unwrap();

    let raw = b.raw().await;
    // A line of the private key's base64 body must not appear either.
    let key_line = KEY.lines().nth(5).unwrap();
    for secret in [
        CLIENT_SECRET,
        PASSWORD,
        REFRESH_TOKEN,
        ROTATED,
        ACCESS_TOKEN,
        key_line,
        VERIFIER,
        STATE,
    ] {
        assert_not_in(&raw, secret);
    }
    // The non-secret metadata is there, so the scan does read the data.
    assert!(contains(&raw, b"contoso.onmicrosoft.com"));
    assert!(contains(&raw, b"user-42"));
}

async fn a_ciphertext_moved_to_another_row_does_not_open(b: Backend) {
    let s = &b.store;
    let a = connection("a", app_only(CLIENT_SECRET));
    let other = connection("b", app_only("Other~secret-value-DDDDDDDDDDDDD"));
    s.insert_connection(&a).await.unwrap();
    s.insert_connection(&other).await.unwrap();
    b.exec(
        "UPDATE connections SET secret_sealed = (SELECT secret_sealed FROM connections WHERE name = 'a') \
         WHERE name = 'b'",
    )
    .await;
    let err = s.connection(&"b".parse().unwrap()).await.unwrap_err();
    assert!(matches!(err, StoreError::Vault(_)), "{err}");
    assert!(s.connection(&"a".parse().unwrap()).await.unwrap().is_some());
}

async fn another_master_key_is_refused_at_open(b: Backend) {
    let other = tempfile::tempdir().unwrap();
    let err = b
        .reopen_with(&other.path().join("other.key"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::WrongKey { .. }), "{err}");
    // The right key still opens it, with its data.
    let c = connection("kept", app_only(CLIENT_SECRET));
    b.store.insert_connection(&c).await.unwrap();
    let again = b.reopen_with(&b.key_file).await.unwrap();
    assert_eq!(again.connection_by_id(c.id).await.unwrap(), Some(c));
}

async fn a_newer_schema_is_refused(b: Backend) {
    b.exec(
        "INSERT INTO schema_migrations (version, applied_at) VALUES (999, '2099-01-01T00:00:00Z')",
    )
    .await;
    let err = b.reopen_with(&b.key_file).await.unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 999, .. }),
        "{err}"
    );
}

macro_rules! conformance {
    ($backend:ident: $($check:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(super::Backend::$backend().await).await;
                }
            )*
        }
    };
}

macro_rules! every_backend {
    ($($check:ident),* $(,)?) => {
        mod all {
            use super::*;
            conformance!(sqlite: $($check),*);
            conformance!(postgres: $($check),*);
            conformance!(memory: $($check),*);
        }
    };
}

macro_rules! database_backends {
    ($($check:ident),* $(,)?) => {
        mod databases {
            use super::*;
            conformance!(sqlite: $($check),*);
            conformance!(postgres: $($check),*);
        }
    };
}

every_backend!(
    connections_round_trip_and_are_found_by_name_in_any_case,
    a_taken_name_in_any_case_is_a_conflict_and_changes_nothing,
    accounts_follow_the_contract,
    tokens_rotate_with_the_access_token_and_go_with_their_account,
    static_users_follow_the_contract,
    api_keys_follow_the_contract,
    the_admin_credential_is_set_and_replaced,
    bridge_users_follow_the_contract,
    deleting_a_connection_deletes_everything_of_it_and_nothing_else,
    pending_logins_are_taken_once_capped_oldest_first_and_purged,
    login_statuses_are_recorded_finished_capped_oldest_first_and_expire,
    a_refresh_turn_is_one_callers_and_the_next_reads_what_it_committed,
);

mod local {
    use super::*;
    conformance!(sqlite: a_refresh_token_rotated_by_another_process_meanwhile_is_kept);
    conformance!(memory: a_refresh_token_rotated_by_another_process_meanwhile_is_kept);
}

database_backends!(
    no_secret_is_in_the_database_in_clear,
    a_ciphertext_moved_to_another_row_does_not_open,
    another_master_key_is_refused_at_open,
    a_newer_schema_is_refused,
);
