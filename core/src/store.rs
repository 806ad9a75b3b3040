//! Persistence of connections, accounts, static users and the admin credential.
//!
//! [`Store`] is the seam every frontend goes through; [`SqliteStore`] is the embedded default
//! (one file, WAL), [`PostgresStore`] the shared one for several gateways, [`MemoryStore`] one
//! that lives in memory. The database backends seal every secret with the
//! [`Vault`](crate::secret::Vault) before it reaches the database and bind each ciphertext to its
//! row; that code, and the mapping of rows to the model, is `rows`, shared by both.

pub mod changes;
pub mod copy;
pub mod counting;
mod memory;
mod notify_rows;
mod postgres;
mod postgres_governor;
mod rows;
mod sqlite;

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::model::{
    AccessToken, Account, AccountId, AccountStatus, BridgeUser, Connection, ConnectionId,
    ConnectionName, Principal, StaticUser, StaticUserId, TokenKey,
};
use crate::secret::{Secret, Vault, VaultError};

pub use crate::auth::pending::PendingCaps;
use changes::ChangeFeed;
use copy::{Row, TableSpec, WritePlan};

pub use counting::CountingStore;
pub use memory::MemoryStore;
pub use postgres::{PostgresOptions, PostgresStore};
pub use postgres_governor::PostgresBudget;
pub use sqlite::SqliteStore;

/// Where the store is: `store.url` (`sqlite://PATH` or `postgres://…`), or `store.path`.
#[derive(Debug, Clone)]
pub enum StoreLocation {
    Sqlite(PathBuf),
    Postgres(PostgresOptions),
}

impl StoreLocation {
    /// The store's name for messages: the file, or the URL (which holds no password).
    pub fn display(&self) -> String {
        match self {
            Self::Sqlite(path) => path.display().to_string(),
            Self::Postgres(options) => options.url.clone(),
        }
    }

    /// A store named by URL on a command line (`store migrate`): `sqlite://PATH` or
    /// `postgres://…` without a password (give it as `password`). The error says what is wrong
    /// without repeating the URL, which may hold a password.
    pub fn from_url(url: &str, password: Option<Secret>) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(
                    "`sqlite://` names no file; give sqlite:///var/lib/exgate/exgate.db".into(),
                );
            }
            if password.is_some() {
                return Err("only a PostgreSQL store takes a password".into());
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        let is_postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
        let Some(parsed) = url::Url::parse(url).ok().filter(|_| is_postgres) else {
            return Err(
                "a store URL starts with sqlite:// (a file) or postgres:// (a PostgreSQL database)"
                    .into(),
            );
        };
        if parsed.password().is_some() {
            return Err(
                "the URL holds a password; give it as a file: or env: reference instead".into(),
            );
        }
        Ok(Self::Postgres(PostgresOptions {
            url: url.to_owned(),
            password,
            max_connections: 2,
        }))
    }

    /// Opens the store. `single`: a command whose store calls come one after the other (the
    /// CLI) keeps one connection.
    pub async fn open(
        &self,
        vault: Arc<Vault>,
        single: bool,
    ) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            Self::Sqlite(path) if single => Arc::new(SqliteStore::open_single(path, vault).await?),
            Self::Sqlite(path) => Arc::new(SqliteStore::open(path, vault).await?),
            Self::Postgres(options) if single => {
                let options = PostgresOptions {
                    max_connections: 1,
                    ..options.clone()
                };
                Arc::new(PostgresStore::open(&options, vault).await?)
            }
            Self::Postgres(options) => Arc::new(PostgresStore::open(options, vault).await?),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique name or principal is taken. Nothing was written.
    #[error("{0} already exists")]
    Conflict(String),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(
        "the master key file {key_file} does not open this store's secrets (they were sealed under another key); \
         point secrets.master_key_file or EXGATE_MASTER_KEY_FILE at the key this store was created with"
    )]
    WrongKey { key_file: String },
    #[error("the store {path} cannot be opened: {message}")]
    Open { path: String, message: String },
    #[error(
        "the store was written by a newer exgate (schema version {found}; this build knows up to {known}); upgrade exgate"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("the store holds a malformed row ({0}); restore it from a backup")]
    Corrupt(String),
    /// `store migrate` refused or failed; nothing was written to the target.
    #[error("the store copy failed: {0}")]
    Copy(String),
    #[error("the store failed while {context}: {source}")]
    Db {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

/// Where exgate keeps what it must remember. All methods are atomic: on error nothing changed.
#[async_trait]
pub trait Store: Send + Sync + Debug {
    /// Cheap check that the store answers (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Fails with [`StoreError::Conflict`] if the name is taken (names ignore case).
    async fn insert_connection(&self, connection: &Connection) -> Result<(), StoreError>;
    /// Replaces the connection with the same ID. Returns false if there is none.
    async fn update_connection(&self, connection: &Connection) -> Result<bool, StoreError>;
    async fn connection(&self, name: &ConnectionName) -> Result<Option<Connection>, StoreError>;
    async fn connection_by_id(&self, id: ConnectionId) -> Result<Option<Connection>, StoreError>;
    /// All connections, by name.
    async fn connections(&self) -> Result<Vec<Connection>, StoreError>;
    /// Deletes the connection with its accounts, static users and tokens. Returns false if there
    /// is none.
    async fn delete_connection(&self, name: &ConnectionName) -> Result<bool, StoreError>;

    /// Inserts or replaces the account for (connection, principal), with its refresh token if any.
    async fn put_account(
        &self,
        account: &Account,
        refresh_token: Option<&Secret>,
    ) -> Result<(), StoreError>;
    async fn account(
        &self,
        connection: ConnectionId,
        principal: &Principal,
    ) -> Result<Option<Account>, StoreError>;
    async fn account_refresh_token(&self, id: AccountId) -> Result<Option<Secret>, StoreError>;
    async fn accounts(&self, connection: ConnectionId) -> Result<Vec<Account>, StoreError>;
    /// Deletes the account with its tokens.
    async fn delete_account(&self, id: AccountId) -> Result<bool, StoreError>;
    /// Sets an account's status and, if given, when it was last used. False if there is none.
    async fn set_account_status(
        &self,
        id: AccountId,
        status: &AccountStatus,
        last_used_at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError>;
    /// Records that the account was used at `at` (a mailbox request, a token handed out).
    async fn touch_account(&self, id: AccountId, at: OffsetDateTime) -> Result<(), StoreError>;
    /// Forgets the account's refresh token and access tokens and marks it as needing sign-in.
    async fn reset_account(&self, id: AccountId, reason: &str) -> Result<bool, StoreError>;

    /// A cached access token.
    async fn access_token(&self, key: &TokenKey) -> Result<Option<AccessToken>, StoreError>;
    /// Stores an access token and, in the same transaction, the refresh token that came with it,
    /// so a rotated refresh token is durable before the access token is used.
    async fn save_tokens(
        &self,
        key: &TokenKey,
        access: &AccessToken,
        refresh_token: Option<&Secret>,
    ) -> Result<(), StoreError>;
    /// Deletes the access tokens of a connection, or of one of its accounts.
    async fn delete_access_tokens(
        &self,
        connection: ConnectionId,
        account: Option<AccountId>,
    ) -> Result<(), StoreError>;

    /// Takes the turn to refresh the account's tokens: the caller holds it across its call to
    /// the identity provider, and every other caller (in any process sharing the store) waits for
    /// it. What the turn read is what was stored once the turn was taken: a waiter finds the
    /// tokens the previous holder committed. Dropping the turn releases it, changing nothing.
    /// `None` if there is no such account.
    async fn begin_refresh(
        &self,
        account: AccountId,
        key: &TokenKey,
    ) -> Result<Option<RefreshTurn>, StoreError>;
    /// Ends a turn with the refresh's outcome, in one transaction: the access token for `key`,
    /// the rotated refresh token (written only if the stored one is still the one the turn read,
    /// the version check), the account active and used at `at`. Then releases the turn.
    async fn commit_refresh(
        &self,
        turn: RefreshTurn,
        key: &TokenKey,
        access: &AccessToken,
        refresh_token: Option<&Secret>,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Remembers a started browser sign-in. In the same transaction, forgets those started
    /// before `expired_before` and, where a cap is reached, the oldest of the principal, of the
    /// connection, or of all ([`PendingCaps`]), so the new one fits.
    async fn put_pending_login(
        &self,
        login: &PendingLoginRow,
        caps: PendingCaps,
        expired_before: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Takes (reads and deletes, atomically) the sign-in started with `state`: of several
    /// callers, one gets it. Expired ones are returned too; the caller says so.
    async fn take_pending_login(&self, state: &str) -> Result<Option<PendingLoginRow>, StoreError>;
    /// Deletes the sign-ins started before `before`. Returns how many.
    async fn purge_pending_logins(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
    /// How many sign-ins are remembered.
    async fn pending_logins(&self) -> Result<u64, StoreError>;

    /// Remembers a sign-in an application started, `pending` (or whatever `login.outcome` says),
    /// so that its status can be read on any gateway. In the same transaction, forgets those
    /// started before `expired_before` and, where `cap` are kept, the oldest, so the new one fits.
    async fn put_login_status(
        &self,
        login: &LoginStatusRow,
        cap: usize,
        expired_before: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Records how the sign-in `login_id` ended. False if it is not (or no longer) kept.
    async fn set_login_outcome(
        &self,
        login_id: &str,
        outcome: &LoginOutcome,
    ) -> Result<bool, StoreError>;
    /// The sign-in `login_id`'s status, expired or not (the caller checks `started_at`).
    async fn login_status(&self, login_id: &str) -> Result<Option<LoginStatusRow>, StoreError>;

    /// Fails with [`StoreError::Conflict`] if the principal already has a static user on the connection.
    async fn insert_static_user(&self, user: &StaticUser) -> Result<(), StoreError>;
    async fn static_users(&self, connection: ConnectionId) -> Result<Vec<StaticUser>, StoreError>;
    async fn delete_static_user(&self, id: StaticUserId) -> Result<bool, StoreError>;

    async fn insert_api_key(
        &self,
        key: &crate::apikeys::ApiKey,
        hash: &[u8; 32],
    ) -> Result<(), StoreError>;
    async fn api_key_by_hash(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<crate::apikeys::ApiKey>, StoreError>;
    async fn api_keys(&self) -> Result<Vec<crate::apikeys::ApiKey>, StoreError>;
    async fn touch_api_key(
        &self,
        id: crate::apikeys::ApiKeyId,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Marks a key revoked. False if there is none (or it was revoked already).
    async fn revoke_api_key(
        &self,
        id: crate::apikeys::ApiKeyId,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// The argon2 PHC hash of the generated admin password, if one was made.
    async fn admin_password_hash(&self) -> Result<Option<String>, StoreError>;
    async fn set_admin_password_hash(
        &self,
        hash: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// A bridge user with the argon2 PHC hash of its local password. Fails with
    /// [`StoreError::Conflict`] if the user name is taken.
    async fn insert_bridge_user(&self, user: &BridgeUser, hash: &str) -> Result<(), StoreError>;
    /// The bridge user signing in as `username` (lower case) and its password hash.
    async fn bridge_user(&self, username: &str)
    -> Result<Option<(BridgeUser, String)>, StoreError>;
    async fn bridge_users(&self) -> Result<Vec<BridgeUser>, StoreError>;
    /// False if there is none.
    async fn delete_bridge_user(&self, username: &str) -> Result<bool, StoreError>;

    /// What change notifications keep ([`crate::notify::NotifyStore`]); `None` for a store
    /// that keeps none.
    fn notifications(&self) -> Option<&dyn crate::notify::NotifyStore> {
        None
    }

    // --- The per-mailbox governor shared by several instances (issue 13) ---

    /// The budget every gateway on this store shares, so that together they keep the governor's
    /// per-mailbox policy ([`crate::governor::Governor::shared`]); `None` for a store only one
    /// process uses (SQLite, memory), whose governor needs nothing from it.
    fn governor_budget(&self) -> Option<Arc<dyn crate::governor::SharedBudget>> {
        None
    }

    // ---- Several gateways on one store, and copying a store (`exgate-server store migrate`).
    // Stores one process owns keep the defaults.

    /// The feed of changes committed by every process sharing this store (PostgreSQL), so each
    /// drops what it cached. `None`: only this process writes the store, and its own writes
    /// clear its caches.
    async fn change_feed(&self) -> Result<Option<Box<dyn ChangeFeed>>, StoreError> {
        Ok(None)
    }

    /// Whether failed authentications are counted in the store, shared by every gateway on it.
    /// When false the gateway counts them in memory and the three methods below are not called.
    fn shares_auth_failures(&self) -> bool {
        false
    }
    /// Counts a failure of `key` at `now_ms` (milliseconds since the Unix epoch): a window of
    /// `window_ms` starts at a key's first failure. Answers the failures in the key's window.
    async fn record_auth_failure(
        &self,
        _key: &str,
        _now_ms: i64,
        _window_ms: i64,
    ) -> Result<u32, StoreError> {
        Ok(0)
    }
    /// The failures of `key` in its window, if that window is still open at `now_ms`.
    async fn auth_failures(
        &self,
        _key: &str,
        _now_ms: i64,
        _window_ms: i64,
    ) -> Result<u32, StoreError> {
        Ok(0)
    }
    /// Forgets the failures of `key` (it has just authenticated).
    async fn clear_auth_failures(&self, _key: &str) -> Result<(), StoreError> {
        Ok(())
    }

    /// Every table of the store's database (for [`copy::copy`]).
    async fn table_names(&self) -> Result<Vec<String>, StoreError> {
        Err(not_copyable())
    }
    /// Every row of `tables`, in one read transaction (one consistent snapshot).
    async fn read_tables(&self, _tables: &[TableSpec]) -> Result<Vec<Vec<Row>>, StoreError> {
        Err(not_copyable())
    }
    /// Writes `rows` into `plan.tables` in one transaction, which commits only when what it
    /// holds matches `plan.expect` ([`copy::copy`]).
    async fn write_tables(
        &self,
        _plan: WritePlan<'_>,
        _rows: &[Vec<Row>],
    ) -> Result<(), StoreError> {
        Err(not_copyable())
    }
}

/// A browser sign-in in flight as the store keeps it. `payload` is what the callback needs
/// (PKCE verifier, nonce, scopes, redirect URI, …) as one document; the database backends seal
/// it bound to its row. The `state` is not stored, only its SHA-256.
#[derive(Debug, Clone)]
pub struct PendingLoginRow {
    pub state: String,
    pub connection: ConnectionId,
    pub principal: Option<Principal>,
    pub started_at: OffsetDateTime,
    pub payload: Secret,
}

/// Where a sign-in an application started stands, as the store keeps it for its status route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    /// The user has not finished yet.
    Pending,
    /// The mailbox is linked for `principal`.
    SignedIn {
        principal: String,
        mailbox: Option<String>,
    },
    /// The sign-in failed: the error as the API reports it, and how to fix it.
    Failed { error: String, hint: Option<String> },
}

/// A sign-in's status by its login ID (a random UUID the gateway hands to the application).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginStatusRow {
    pub login_id: String,
    /// The connection it was started on; the status is answered on that connection only.
    pub connection: ConnectionId,
    pub started_at: OffsetDateTime,
    pub outcome: LoginOutcome,
}

/// The stored form of a sign-in's `state`: its SHA-256 in hex.
pub(crate) fn state_hash(state: &str) -> String {
    use sha2::{Digest as _, Sha256};
    Sha256::digest(state.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One caller's turn to refresh an account ([`Store::begin_refresh`]): held until it is
/// committed or dropped.
#[derive(Debug)]
pub struct RefreshTurn {
    /// The account's refresh token as stored when the turn was taken.
    pub refresh_token: Option<Secret>,
    /// The access token stored for the key when the turn was taken (a previous holder's).
    pub access_token: Option<AccessToken>,
    /// The account's status when the turn was taken.
    pub status: AccountStatus,
    pub(crate) hold: TurnHold,
}

/// What keeps other callers waiting, and the version the turn read.
pub(crate) enum TurnHold {
    /// A lock of this process (SQLite, memory: one gateway per store).
    Local {
        _guard: tokio::sync::OwnedMutexGuard<()>,
        /// The sealed refresh token as read (SQLite), for the version check.
        sealed: Option<Vec<u8>>,
    },
    /// An open transaction holding the account's row (`SELECT … FOR UPDATE`).
    Postgres {
        tx: sqlx::Transaction<'static, sqlx::Postgres>,
        sealed: Option<Vec<u8>>,
    },
}

impl Debug for TurnHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local { .. } => f.write_str("Local"),
            Self::Postgres { .. } => f.write_str("Postgres"),
        }
    }
}

/// The locks of [`LocalLocks`] by account, and the size at which to sweep them next.
type LockMap = (
    std::collections::HashMap<AccountId, Arc<tokio::sync::Mutex<()>>>,
    usize,
);

/// One lock per account, in this process; entries nobody holds are swept as the map grows.
#[derive(Debug, Default)]
pub(crate) struct LocalLocks {
    map: std::sync::Mutex<LockMap>,
}

impl LocalLocks {
    pub(crate) async fn lock(&self, id: AccountId) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut guard = self
                .map
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let (map, sweep_at) = &mut *guard;
            if map.len() >= (*sweep_at).max(1024) {
                map.retain(|_, l| Arc::strong_count(l) > 1);
                *sweep_at = map.len() * 2;
            }
            Arc::clone(map.entry(id).or_default())
        };
        lock.lock_owned().await
    }
}

fn not_copyable() -> StoreError {
    StoreError::Copy("only SQLite and PostgreSQL stores can be copied".into())
}

/// `exgate-server store migrate`: opens both stores with `vault` (each checks that the key opens
/// its secrets) and copies `from` into `to` ([`copy::copy`]). The source must exist.
pub async fn migrate(
    from: &StoreLocation,
    to: &StoreLocation,
    vault: Arc<Vault>,
    replace: bool,
) -> Result<copy::CopyReport, StoreError> {
    if let StoreLocation::Sqlite(path) = from
        && !path.is_file()
    {
        return Err(StoreError::Copy(format!(
            "the source store {} does not exist",
            path.display()
        )));
    }
    if from.display() == to.display() {
        return Err(StoreError::Copy(
            "the source and the target are the same store".into(),
        ));
    }
    let source = from.open(Arc::clone(&vault), true).await?;
    let target = to.open(vault, true).await?;
    copy::copy(source.as_ref(), target.as_ref(), replace).await
}
