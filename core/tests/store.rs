//! The SQLite store on a real file: round trips, sealing at rest, and bad input changing nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use exgate_core::model::{
    Account, AccountId, AccountStatus, Connection, ConnectionId, ConnectionSpec, CredentialKind,
    MailboxAccess, StaticUser, StaticUserId,
};
use exgate_core::secret::{Secret, Vault};
use exgate_core::store::{SqliteStore, Store, StoreError};
use sqlx::Connection as _;
use time::OffsetDateTime;
use time::macros::datetime;

const CERT: &str = include_str!("fixtures/app.crt");
const KEY: &str = include_str!("fixtures/app.key");
const CLIENT_SECRET: &str = "Xy7Q~client-secret-value-AAAAAAAAAAAAAAAAA";
const PASSWORD: &str = "ntlm-password-BBBBBBBBBBBBBBBB";
const REFRESH_TOKEN: &str = "0.AAAA-refresh-token-CCCCCCCCCCCCCCCCCCCCCC";

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn db(&self) -> PathBuf {
        self.dir.path().join("data/exgate.db")
    }
    fn key(&self) -> PathBuf {
        self.dir.path().join("data/master.key")
    }
    async fn open(&self) -> Result<SqliteStore, StoreError> {
        let vault = Arc::new(Vault::open_or_create(&self.key()).unwrap());
        SqliteStore::open(&self.db(), vault).await
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

fn specs() -> Vec<(&'static str, ConnectionSpec)> {
    let client = Some("11111111-2222-3333-4444-555555555555".to_owned());
    vec![
        (
            "online-secret",
            ConnectionSpec {
                tenant: Some("contoso.onmicrosoft.com".into()),
                auth: Some("oauth2-app-only".into()),
                client_id: client.clone(),
                client_secret: Some(Secret::new(CLIENT_SECRET)),
                credential_expires: Some("2027-06-30".into()),
                ..ConnectionSpec::default()
            },
        ),
        (
            "online-cert",
            ConnectionSpec {
                tenant: Some("common".into()),
                auth: Some("oauth2-delegated".into()),
                client_id: client,
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

fn read_all(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap_or_default();
    for suffix in ["-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        bytes.extend(std::fs::read(PathBuf::from(p)).unwrap_or_default());
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn connections_round_trip_and_secrets_never_reach_the_disk_in_clear() {
    let f = Fixture::new();
    let store = f.open().await.unwrap();
    let mut written = Vec::new();
    for (name, spec) in specs() {
        let c = connection(name, spec);
        store.insert_connection(&c).await.unwrap();
        written.push(c);
    }
    let account = Account {
        id: AccountId::new_random(),
        connection: written[1].id,
        principal: "user-42".parse().unwrap(),
        mailbox: Some("adele@contoso.com".parse().unwrap()),
        credential: CredentialKind::RefreshToken,
        status: AccountStatus::Active,
        created_at: datetime!(2026-11-02 08:00 UTC),
        last_used_at: None,
    };
    store
        .put_account(&account, Some(&Secret::new(REFRESH_TOKEN)))
        .await
        .unwrap();

    let mut read = store.connections().await.unwrap();
    read.sort_by_key(|c| c.name.to_string());
    written.sort_by_key(|c| c.name.to_string());
    assert_eq!(read, written);
    assert_eq!(
        store
            .account(account.connection, &account.principal)
            .await
            .unwrap(),
        Some(account.clone())
    );
    assert_eq!(
        store
            .account_refresh_token(account.id)
            .await
            .unwrap()
            .unwrap()
            .expose(),
        REFRESH_TOKEN
    );

    // The private key's base64 body, a line of it, must not appear either.
    let key_line = KEY.lines().nth(5).unwrap();
    let raw = read_all(&f.db());
    assert!(!raw.is_empty());
    for secret in [CLIENT_SECRET, PASSWORD, REFRESH_TOKEN, key_line] {
        assert!(
            !contains(&raw, secret),
            "{secret} found in the store's files"
        );
    }
    // The non-secret metadata is there, so the scan does read the data.
    assert!(contains(&raw, "contoso.onmicrosoft.com"));
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_row_fails_to_open() {
    let f = Fixture::new();
    let store = f.open().await.unwrap();
    let all = specs();
    let a = connection("a", all[0].1.clone());
    let b = connection(
        "b",
        ConnectionSpec {
            client_secret: Some(Secret::new("Other~secret-value-DDDDDDDDDDDDD")),
            ..all[0].1.clone()
        },
    );
    store.insert_connection(&a).await.unwrap();
    store.insert_connection(&b).await.unwrap();

    let url = format!("sqlite://{}", f.db().display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE connections SET secret_sealed = (SELECT secret_sealed FROM connections WHERE name = 'a') WHERE name = 'b'")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let err = store.connection(&"b".parse().unwrap()).await.unwrap_err();
    assert!(matches!(err, StoreError::Vault(_)), "{err}");
    assert!(err.to_string().contains("could not be decrypted"), "{err}");
    assert!(
        store
            .connection(&"a".parse().unwrap())
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_taken_name_is_a_conflict_and_changes_nothing() {
    let f = Fixture::new();
    let store = f.open().await.unwrap();
    let (name, spec) = specs().remove(0);
    store
        .insert_connection(&connection(name, spec.clone()))
        .await
        .unwrap();
    let before = store.connections().await.unwrap();
    let err = store
        .insert_connection(&connection(&name.to_uppercase(), spec))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(store.connections().await.unwrap(), before);
}

#[tokio::test]
async fn another_key_file_is_refused_at_open() {
    let f = Fixture::new();
    f.open().await.unwrap();
    let other = tempfile::tempdir().unwrap();
    let vault = Arc::new(Vault::open_or_create(&other.path().join("k")).unwrap());
    let err = SqliteStore::open(&f.db(), vault).await.unwrap_err();
    assert!(matches!(err, StoreError::WrongKey { .. }), "{err}");
}

#[tokio::test]
async fn reopening_keeps_data_and_deleting_cascades() {
    let f = Fixture::new();
    let (name, spec) = specs().remove(2);
    let c = connection(name, spec);
    let user = StaticUser {
        id: StaticUserId::new_random(),
        connection: c.id,
        principal: "workflow-bot".parse().unwrap(),
        mailbox: "invoices@contoso.com".parse().unwrap(),
        access: MailboxAccess::Impersonation,
        created_at: OffsetDateTime::UNIX_EPOCH,
    };
    {
        let store = f.open().await.unwrap();
        store.insert_connection(&c).await.unwrap();
        store.insert_static_user(&user).await.unwrap();
        let dup = StaticUser {
            id: StaticUserId::new_random(),
            ..user.clone()
        };
        assert!(matches!(
            store.insert_static_user(&dup).await,
            Err(StoreError::Conflict(_))
        ));
    }
    let store = f.open().await.unwrap();
    assert_eq!(store.static_users(c.id).await.unwrap(), vec![user]);
    assert!(store.delete_connection(&c.name).await.unwrap());
    assert!(store.static_users(c.id).await.unwrap().is_empty());
    assert!(!store.delete_connection(&c.name).await.unwrap());
}

#[tokio::test]
async fn store_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    f.open().await.unwrap();
    let mode = std::fs::metadata(f.db()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[tokio::test]
async fn api_keys_are_shown_once_stored_hashed_scoped_and_revocable() {
    use exgate_core::apikeys::{ApiKeys, KeyScope};
    use exgate_core::clock::SystemClock;
    let f = Fixture::new();
    let store = Arc::new(f.open().await.unwrap());
    let keys = ApiKeys::new(store.clone(), Arc::new(SystemClock));
    let conn = ConnectionId::new_random();
    let (key, secret) = keys
        .create("portal", KeyScope::Connections(vec![conn]))
        .await
        .unwrap();
    assert!(secret.expose().starts_with("exg_"));
    assert!(key.scope.allows(conn));
    assert!(!key.scope.allows(ConnectionId::new_random()));

    let found = keys.verify(secret.expose()).await.unwrap().unwrap();
    assert_eq!(found.id, key.id);
    assert!(keys.verify("exg_not-a-key").await.unwrap().is_none());
    assert!(keys.verify("Basic something").await.unwrap().is_none());
    assert!(!contains(&read_all(&f.db()), secret.expose()));

    keys.revoke(key.id).await.unwrap();
    assert!(keys.verify(secret.expose()).await.unwrap().is_none());
    assert!(
        keys.revoke(key.id).await.is_err(),
        "revoking twice says it is gone"
    );
    assert!(keys.create(" ", KeyScope::Admin).await.is_err());
    assert!(
        keys.create("x", KeyScope::Connections(vec![]))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn credential_expiry_is_kept_under_schema_version_4_and_older_documents_have_none() {
    let f = Fixture::new();
    let store = f.open().await.unwrap();
    let with = connection("with", specs()[0].1.clone());
    let without = connection(
        "without",
        ConnectionSpec {
            credential_expires: None,
            ..specs()[0].1.clone()
        },
    );
    assert_eq!(
        with.settings.credential_expires,
        Some(datetime!(2027-06-30 00:00 UTC))
    );
    store.insert_connection(&with).await.unwrap();
    store.insert_connection(&without).await.unwrap();

    let url = format!("sqlite://{}", f.db().display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let version: i64 = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    // 4 brought the key; later versions (5: pending sign-ins) keep it.
    assert!(version >= 4, "{version}");
    let doc: String = sqlx::query_scalar("SELECT doc FROM connections WHERE name = 'with'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(
        doc.contains(r#""credential_expires":"2027-06-30T00:00:00Z""#),
        "{doc}"
    );
    let doc: String = sqlx::query_scalar("SELECT doc FROM connections WHERE name = 'without'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!doc.contains("credential_expires"), "{doc}");
    conn.close().await.unwrap();

    let read = store
        .connection(&"with".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.settings, with.settings);
    let read = store
        .connection(&"without".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.settings.credential_expires, None);
}
