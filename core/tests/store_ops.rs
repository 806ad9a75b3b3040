//! Several gateways on one store, and moving a store: `store::copy` between SQLite and
//! PostgreSQL (every table classified, rows sealed as they are, verified, refused into a
//! non-empty target), PostgreSQL's change feed (what notifies, what does not, a lost connection)
//! and the auth-failure counts PostgreSQL shares. PostgreSQL runs in a throwaway cluster
//! (`exgate_testkit::postgres::TempPostgres`).

use std::sync::Arc;
use std::time::Duration;

use exgate_core::apikeys::{ApiKey, ApiKeyId, KeyScope};
use exgate_core::model::{
    AccessToken, Account, AccountId, AccountStatus, BridgeUser, Connection, ConnectionId,
    ConnectionSpec, CredentialKind, MailboxAccess, Resource, StaticUser, StaticUserId, TokenKey,
};
use exgate_core::secret::{Secret, Vault};
use exgate_core::store::changes::{Change, ChangeFeed, FeedEvent};
use exgate_core::store::copy::{self, NOT_COPIED, TABLES};
use exgate_core::store::{PostgresOptions, PostgresStore, SqliteStore, Store, StoreError};
use exgate_testkit::postgres::TempPostgres;
use sqlx::Connection as _;
use time::macros::datetime;

const CLIENT_SECRET: &str = "Xy7Q~client-secret-value-AAAAAAAAAAAAAAAAA";
const PASSWORD: &str = "ntlm-password-BBBBBBBBBBBBBBBB";
const REFRESH_TOKEN: &str = "0.AAAA-refresh-token-CCCCCCCCCCCCCCCCCCCCCC";

struct Keyed {
    dir: tempfile::TempDir,
    vault: Arc<Vault>,
}

fn keyed() -> Keyed {
    let dir = tempfile::tempdir().unwrap();
    let vault = Arc::new(Vault::open_or_create(&dir.path().join("master.key")).unwrap());
    Keyed { dir, vault }
}

async fn sqlite(k: &Keyed, name: &str) -> SqliteStore {
    SqliteStore::open(&k.dir.path().join(name), Arc::clone(&k.vault))
        .await
        .unwrap()
}

async fn postgres(url: &str, k: &Keyed) -> PostgresStore {
    PostgresStore::open(&PostgresOptions::new(url), Arc::clone(&k.vault))
        .await
        .unwrap()
}

/// What a populated store holds, read through the model.
#[derive(Debug, PartialEq)]
struct Contents {
    connections: Vec<Connection>,
    accounts: Vec<Account>,
    refresh_tokens: Vec<Option<String>>,
    static_users: Vec<StaticUser>,
    keys: Vec<ApiKey>,
    admin: Option<String>,
    bridge: Vec<BridgeUser>,
}

async fn contents(s: &dyn Store) -> Contents {
    let connections = s.connections().await.unwrap();
    let mut accounts = Vec::new();
    let mut static_users = Vec::new();
    for c in &connections {
        accounts.extend(s.accounts(c.id).await.unwrap());
        static_users.extend(s.static_users(c.id).await.unwrap());
    }
    let mut refresh_tokens = Vec::new();
    for a in &accounts {
        refresh_tokens.push(
            s.account_refresh_token(a.id)
                .await
                .unwrap()
                .map(|t| t.expose().to_owned()),
        );
    }
    Contents {
        connections,
        accounts,
        refresh_tokens,
        static_users,
        keys: s.api_keys().await.unwrap(),
        admin: s.admin_password_hash().await.unwrap(),
        bridge: s.bridge_users().await.unwrap(),
    }
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

async fn populate(s: &dyn Store) {
    let app = connection(
        "Online-App",
        ConnectionSpec {
            tenant: Some("contoso.onmicrosoft.com".into()),
            auth: Some("oauth2-app-only".into()),
            client_id: Some("11111111-2222-3333-4444-555555555555".into()),
            client_secret: Some(Secret::new(CLIENT_SECRET)),
            ..ConnectionSpec::default()
        },
    );
    let onprem = connection(
        "onprem",
        ConnectionSpec {
            ews_url: Some("https://mail.contoso.com/EWS/Exchange.asmx".into()),
            server_version: Some("se".into()),
            auth: Some("ntlm".into()),
            username: Some("CONTOSO\\svc".into()),
            password: Some(Secret::new(PASSWORD)),
            ..ConnectionSpec::default()
        },
    );
    s.insert_connection(&app).await.unwrap();
    s.insert_connection(&onprem).await.unwrap();
    let account = Account {
        id: AccountId::new_random(),
        connection: app.id,
        principal: "adele@contoso.com".parse().unwrap(),
        mailbox: Some("adele@contoso.com".parse().unwrap()),
        credential: CredentialKind::RefreshToken,
        status: AccountStatus::Active,
        created_at: datetime!(2026-11-02 08:00 UTC),
        last_used_at: Some(datetime!(2026-11-02 09:00 UTC)),
    };
    s.put_account(&account, Some(&Secret::new(REFRESH_TOKEN)))
        .await
        .unwrap();
    // An access token: a cache, not copied.
    s.save_tokens(
        &TokenKey {
            connection: app.id,
            account: Some(account.id),
            resource: Resource::Graph,
        },
        &AccessToken {
            secret: Secret::new("eyJ0eXAi.access-token"),
            expires_at: datetime!(2026-11-02 09:00 UTC),
            refresh_at: datetime!(2026-11-02 08:55 UTC),
        },
        None,
    )
    .await
    .unwrap();
    s.insert_static_user(&StaticUser {
        id: StaticUserId::new_random(),
        connection: onprem.id,
        principal: "invoices".parse().unwrap(),
        mailbox: "invoices@contoso.com".parse().unwrap(),
        access: MailboxAccess::Impersonation,
        created_at: datetime!(2026-11-03 08:00 UTC),
    })
    .await
    .unwrap();
    for (name, revoked) in [("portal", false), ("old", true)] {
        let key = ApiKey {
            id: ApiKeyId(uuid::Uuid::new_v4()),
            name: name.into(),
            scope: KeyScope::Connections(vec![app.id]),
            created_at: datetime!(2026-11-04 08:00 UTC),
            last_used_at: None,
            revoked_at: None,
        };
        s.insert_api_key(&key, &exgate_core::apikeys::hash(&format!("exg_{name}")))
            .await
            .unwrap();
        if revoked {
            s.revoke_api_key(key.id, datetime!(2026-11-05 08:00 UTC))
                .await
                .unwrap();
        }
    }
    s.set_admin_password_hash(
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        datetime!(2026-11-01 07:00 UTC),
    )
    .await
    .unwrap();
    s.insert_bridge_user(
        &BridgeUser {
            username: "adele@contoso.com".parse().unwrap(),
            connection: app.id,
            principal: Some("adele@contoso.com".parse().unwrap()),
            mailbox: "adele@contoso.com".parse().unwrap(),
            created_at: datetime!(2026-11-04 08:00 UTC),
        },
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$YnJpZGdl",
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_populated_sqlite_store_round_trips_through_postgres() {
    let pg = TempPostgres::start();
    let k = keyed();
    let source = sqlite(&k, "source.db").await;
    populate(&source).await;
    let want = contents(&source).await;

    let target = postgres(&pg.create_database(), &k).await;
    let report = copy::copy(&source, &target, false).await.unwrap();
    assert_eq!(
        report.copied.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        TABLES.iter().map(|t| t.name).collect::<Vec<_>>()
    );
    let rows = |table: &str| {
        report
            .copied
            .iter()
            .find(|(t, _)| *t == table)
            .map(|(_, d)| d.rows)
            .unwrap()
    };
    assert_eq!(rows("connections"), 2);
    assert_eq!(rows("accounts"), 1);
    assert_eq!(rows("api_keys"), 2);
    assert_eq!(rows("admin_credential"), 1);
    let not_copied: Vec<&str> = report.not_copied.iter().map(|(t, _)| *t).collect();
    assert!(not_copied.contains(&"access_tokens"), "{not_copied:?}");
    assert_eq!(
        contents(&target).await,
        want,
        "the copy reads as the source"
    );
    // Secrets opened where they were sealed: by row, under the same key.
    let app = target
        .connection(&"online-app".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(app.settings, want.connections[0].settings);

    // And back into a new SQLite file.
    let back = sqlite(&k, "back.db").await;
    let again = copy::copy(&target, &back, false).await.unwrap();
    assert_eq!(again.copied, report.copied, "same rows, same checksums");
    assert_eq!(contents(&back).await, want);
}

#[tokio::test]
async fn a_target_with_rows_is_refused_unless_replaced() {
    let pg = TempPostgres::start();
    let k = keyed();
    let source = sqlite(&k, "source.db").await;
    populate(&source).await;
    let url = pg.create_database();
    let target = postgres(&url, &k).await;
    copy::copy(&source, &target, false).await.unwrap();

    let err = copy::copy(&source, &target, false).await.unwrap_err();
    assert!(matches!(err, StoreError::Copy(_)), "{err}");
    assert!(err.to_string().contains("not empty"), "{err}");
    assert!(err.to_string().contains("--replace"), "{err}");

    // The source changes; --replace makes the target its copy again (and drops stale caches).
    let extra = connection(
        "added-later",
        ConnectionSpec {
            tenant: Some("contoso.onmicrosoft.com".into()),
            auth: Some("oauth2-app-only".into()),
            client_id: Some("11111111-2222-3333-4444-555555555555".into()),
            client_secret: Some(Secret::new("another-secret")),
            ..ConnectionSpec::default()
        },
    );
    source.insert_connection(&extra).await.unwrap();
    copy::copy(&source, &target, true).await.unwrap();
    assert_eq!(contents(&target).await, contents(&source).await);
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let tokens: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM access_tokens")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(tokens, 0, "the target's access-token cache was emptied");
}

#[tokio::test]
async fn a_table_neither_copied_nor_excluded_fails_the_copy() {
    let k = keyed();
    let source = sqlite(&k, "source.db").await;
    populate(&source).await;
    let target = sqlite(&k, "target.db").await;
    let url = format!("sqlite://{}", k.dir.path().join("source.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("CREATE TABLE governor_budget (mailbox TEXT PRIMARY KEY, spent INTEGER)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let err = copy::copy(&source, &target, false).await.unwrap_err();
    assert!(err.to_string().contains("governor_budget"), "{err}");
    assert_eq!(
        contents(&target).await.connections,
        Vec::new(),
        "nothing was written"
    );
}

#[tokio::test]
async fn every_table_of_both_backends_is_classified() {
    let pg = TempPostgres::start();
    let k = keyed();
    let lite = sqlite(&k, "s.db").await;
    let post = postgres(&pg.create_database(), &k).await;
    for tables in [
        lite.table_names().await.unwrap(),
        post.table_names().await.unwrap(),
    ] {
        assert_eq!(copy::unclassified(&tables), Vec::<String>::new());
        for spec in TABLES {
            assert!(
                tables.iter().any(|t| t == spec.name),
                "{} missing",
                spec.name
            );
        }
    }
    assert!(NOT_COPIED.iter().any(|(t, _)| *t == "pending_logins"));
}

/// The next change event, within a second.
async fn next_change(feed: &mut Box<dyn ChangeFeed>) -> FeedEvent {
    tokio::time::timeout(Duration::from_secs(1), feed.next())
        .await
        .expect("a notification within a second")
        .unwrap()
}

#[tokio::test]
async fn postgres_notifies_the_changes_gateways_cache_and_not_last_use() {
    let pg = TempPostgres::start();
    let k = keyed();
    let url = pg.create_database();
    let store = postgres(&url, &k).await;
    let mut feed = store
        .change_feed()
        .await
        .unwrap()
        .expect("PostgreSQL has a feed");
    assert_eq!(feed.next().await.unwrap(), FeedEvent::Listening);

    let key = ApiKey {
        id: ApiKeyId(uuid::Uuid::new_v4()),
        name: "portal".into(),
        scope: KeyScope::Admin,
        created_at: datetime!(2026-11-04 08:00 UTC),
        last_used_at: None,
        revoked_at: None,
    };
    store.insert_api_key(&key, &[7; 32]).await.unwrap();
    assert_eq!(
        next_change(&mut feed).await,
        FeedEvent::Change(Change::ApiKeys)
    );
    // Last use: no notification. The revocation that follows is the next event.
    store
        .touch_api_key(key.id, datetime!(2026-11-04 09:00 UTC))
        .await
        .unwrap();
    store
        .revoke_api_key(key.id, datetime!(2026-11-04 10:00 UTC))
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut feed).await,
        FeedEvent::Change(Change::ApiKeys)
    );

    let c = connection(
        "c",
        ConnectionSpec {
            tenant: Some("contoso.onmicrosoft.com".into()),
            auth: Some("oauth2-app-only".into()),
            client_id: Some("11111111-2222-3333-4444-555555555555".into()),
            client_secret: Some(Secret::new(CLIENT_SECRET)),
            ..ConnectionSpec::default()
        },
    );
    store.insert_connection(&c).await.unwrap();
    assert_eq!(
        next_change(&mut feed).await,
        FeedEvent::Change(Change::Connections)
    );
    let account = Account {
        id: AccountId::new_random(),
        connection: c.id,
        principal: "adele@contoso.com".parse().unwrap(),
        mailbox: None,
        credential: CredentialKind::RefreshToken,
        status: AccountStatus::Active,
        created_at: datetime!(2026-11-02 08:00 UTC),
        last_used_at: None,
    };
    store
        .put_account(&account, Some(&Secret::new(REFRESH_TOKEN)))
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut feed).await,
        FeedEvent::Change(Change::Accounts(Some(account.id)))
    );
    // Use and a rotated refresh token: nothing cached changes. A reset does.
    store
        .touch_account(account.id, datetime!(2026-11-02 09:00 UTC))
        .await
        .unwrap();
    store.reset_account(account.id, "test").await.unwrap();
    assert_eq!(
        next_change(&mut feed).await,
        FeedEvent::Change(Change::Accounts(Some(account.id)))
    );
    store
        .insert_static_user(&StaticUser {
            id: StaticUserId::new_random(),
            connection: c.id,
            principal: "invoices".parse().unwrap(),
            mailbox: "invoices@contoso.com".parse().unwrap(),
            access: MailboxAccess::Impersonation,
            created_at: datetime!(2026-11-03 08:00 UTC),
        })
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut feed).await,
        FeedEvent::Change(Change::StaticUsers)
    );

    // The listener's connection dies: the feed says so, then listens again.
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE pid <> pg_backend_pid() AND query LIKE 'LISTEN%'",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, 1);
    assert_eq!(next_change(&mut feed).await, FeedEvent::Lost);
    assert_eq!(next_change(&mut feed).await, FeedEvent::Listening);
    store.delete_connection(&c.name).await.unwrap();
    let event = next_change(&mut feed).await;
    assert!(
        matches!(
            event,
            FeedEvent::Change(Change::Connections | Change::Accounts(_) | Change::StaticUsers)
        ),
        "{event:?}"
    );
}

#[tokio::test]
async fn postgres_counts_auth_failures_per_key_within_a_window() {
    let pg = TempPostgres::start();
    let k = keyed();
    let url = pg.create_database();
    let a = postgres(&url, &k).await;
    let b = postgres(&url, &k).await;
    assert!(a.shares_auth_failures());
    let window = 60_000;
    let t0 = 1_800_000_000_000i64;
    assert_eq!(
        a.record_auth_failure("192.0.2.1/api-key", t0, window)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        b.record_auth_failure("192.0.2.1/api-key", t0 + 10, window)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        a.auth_failures("192.0.2.1/api-key", t0 + 20, window)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        a.auth_failures("192.0.2.2/api-key", t0 + 20, window)
            .await
            .unwrap(),
        0
    );
    // The window ends a minute after the first failure; the next failure starts a new one.
    assert_eq!(
        b.auth_failures("192.0.2.1/api-key", t0 + window, window)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        a.record_auth_failure("192.0.2.1/api-key", t0 + window, window)
            .await
            .unwrap(),
        1
    );
    b.clear_auth_failures("192.0.2.1/api-key").await.unwrap();
    assert_eq!(
        a.auth_failures("192.0.2.1/api-key", t0 + window, window)
            .await
            .unwrap(),
        0
    );

    // Concurrent failures through both gateways' stores all count.
    let stores = [Arc::new(a), Arc::new(b)];
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let s = Arc::clone(&stores[i % 2]);
            tokio::spawn(async move {
                s.record_auth_failure("198.51.100.7/admin-password", t0 + 1, window)
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        stores[0]
            .auth_failures("198.51.100.7/admin-password", t0 + 2, window)
            .await
            .unwrap(),
        24
    );
}
