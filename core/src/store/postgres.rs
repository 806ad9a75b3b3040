//! The shared store: PostgreSQL (or a managed service that speaks its protocol), for several
//! gateways behind one load balancer.
//!
//! Row mapping and sealing are [`super::rows`], shared with SQLite; this file holds only the SQL.
//! Connection names are unique on their folded form (`name_folded`), which exgate computes.

mod notify;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Row};
use time::OffsetDateTime;

use super::changes::{self, Change, ChangeFeed, FeedEvent};
use super::copy::{self, ColumnType, Row as CopyRow, TableSpec, Value, WritePlan};
use super::rows::{
    account_column, account_columns, account_from_row, api_key_from_row, bridge_user_from_row,
    connection_columns, connection_from_row, db, is_unique_violation, login_outcome_columns,
    login_status_from_row, open_access_token, open_refresh_token, pending_login_columns,
    pending_login_from_row, scope_column, seal_access_token, seal_key_check, seal_refresh_token,
    static_user_from_row, status_reason, ts, verify_key_check,
};
use super::{
    LoginOutcome, LoginStatusRow, PendingCaps, PendingLoginRow, RefreshTurn, Store, StoreError,
    TurnHold, state_hash,
};
use crate::apikeys::{ApiKey, ApiKeyId};
use crate::model::{
    AccessToken, Account, AccountId, AccountStatus, BridgeUser, Connection, ConnectionId,
    ConnectionName, Principal, StaticUser, StaticUserId, TokenKey,
};
use crate::secret::{Secret, Vault};

/// Versioned migrations, applied in order, each in its own transaction. PostgreSQL's versions are
/// its own (version 1 is SQLite's 1 to 3); the rule is SQLite's: a store written by a newer
/// exgate is refused.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        include_str!("../../migrations/postgres/0002_credential_expiry.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_shared_operations.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_pending_logins.sql"),
    ),
    (
        5,
        include_str!("../../migrations/postgres/0005_governor_leases.sql"),
    ),
    (
        6,
        include_str!("../../migrations/postgres/0006_login_status.sql"),
    ),
    (
        7,
        include_str!("../../migrations/postgres/0007_notifications.sql"),
    ),
];

/// The transaction-level advisory lock taken while a sign-in is added, so that the caps hold
/// across gateways adding at once ("pending" in ASCII).
const PENDING_LOCK: i64 = 0x0070_656e_6469_6e67;

/// The transaction-level advisory lock taken while a sign-in's status is added, so that the cap
/// holds across gateways ("loginsta").
const LOGIN_STATUS_LOCK: i64 = 0x006c_6f67_696e_7374;

/// The session advisory lock held while migrating, so that gateways starting together migrate
/// once ("exgate" in ASCII).
const MIGRATION_LOCK: i64 = 0x6578_6761_7465;

/// How to reach the database: `store.url`, its password, the pool's size.
#[derive(Clone)]
pub struct PostgresOptions {
    /// `postgres://user@host:port/db?sslmode=…&sslrootcert=…`, without a password.
    pub url: String,
    /// From `store.password` (a `file:` or `env:` reference).
    pub password: Option<Secret>,
    /// Connections in the pool (`store.max_connections`).
    pub max_connections: u32,
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl PostgresOptions {
    /// The default pool size of a gateway.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            password: None,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

pub struct PostgresStore {
    pool: PgPool,
    vault: Arc<Vault>,
    url: String,
    /// How the pool connects, for the change feed's own connection.
    connect: PgConnectOptions,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects, brings the schema up to date (refusing a newer one) and checks that the vault's
    /// key opens the store's secrets.
    pub async fn open(options: &PostgresOptions, vault: Arc<Vault>) -> Result<Self, StoreError> {
        let open_err = |message: String| StoreError::Open {
            path: options.url.clone(),
            message,
        };
        let mut connect = PgConnectOptions::from_str(&options.url)
            .map_err(|e| open_err(format!("the URL is not understood: {e}")))?
            .application_name("exgate");
        if let Some(password) = &options.password {
            connect = connect.password(password.expose());
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(connect.clone())
            .await
            .map_err(|e| open_err(e.to_string()))?;
        let store = Self {
            pool,
            vault,
            url: options.url.clone(),
            connect,
        };
        store.migrate().await?;
        store.check_key().await?;
        Ok(store)
    }

    /// The pool, for the parts of exgate that share state through the database beyond the
    /// [`Store`] trait (notifications, shared limits).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Closes the pool; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let ctx = "migrating the schema";
        let mut conn = self.pool.acquire().await.map_err(db(ctx))?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await
            .map_err(db(ctx))?;
        let result = async {
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)",
            )
            .execute(&mut *conn)
            .await
            .map_err(db("creating the migrations table"))?;
            let current: i64 =
                sqlx::query("SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations")
                    .fetch_one(&mut *conn)
                    .await
                    .and_then(|row| row.try_get(0))
                    .map_err(db("reading the schema version"))?;
            let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
            if current > known {
                return Err(StoreError::SchemaTooNew {
                    found: current,
                    known,
                });
            }
            for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
                let mut tx = sqlx::Connection::begin(&mut *conn)
                    .await
                    .map_err(db("starting a migration"))?;
                sqlx::raw_sql(*sql)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("applying a migration"))?;
                sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                    .bind(version)
                    .bind(ts(OffsetDateTime::now_utc()))
                    .execute(&mut *tx)
                    .await
                    .map_err(db("recording a migration"))?;
                tx.commit().await.map_err(db("committing a migration"))?;
                tracing::info!(version, store = %self.url, "applied store migration");
            }
            Ok(())
        }
        .await;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await;
        if unlocked.is_err() {
            // A connection that may still hold the lock must not go back to the pool.
            conn.detach();
        }
        result
    }

    /// Seals a known value on first use (the first gateway wins if several start together), and
    /// checks that the key opens it.
    async fn check_key(&self) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('key_check', $1) ON CONFLICT (key) DO NOTHING",
        )
        .bind(seal_key_check(&self.vault))
        .execute(&self.pool)
        .await
        .map_err(db("writing the key check"))?;
        let sealed: Vec<u8> = sqlx::query("SELECT value FROM meta WHERE key = 'key_check'")
            .fetch_one(&self.pool)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(db("reading the key check"))?;
        verify_key_check(&self.vault, &sealed)
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn notifications(&self) -> Option<&dyn crate::notify::NotifyStore> {
        Some(self)
    }

    fn governor_budget(&self) -> Option<Arc<dyn crate::governor::SharedBudget>> {
        Some(Arc::new(super::postgres_governor::PostgresBudget::new(
            self.pool.clone(),
        )))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db("answering a ping"))?;
        Ok(())
    }

    async fn insert_connection(&self, c: &Connection) -> Result<(), StoreError> {
        let cols = connection_columns(&self.vault, c)?;
        let result = sqlx::query(
            "INSERT INTO connections (id, name, name_folded, doc, secret_sealed, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(cols.id)
        .bind(cols.name)
        .bind(cols.name_folded)
        .bind(cols.doc)
        .bind(cols.secret_sealed)
        .bind(cols.created_at)
        .bind(cols.updated_at)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "a connection named `{}`",
                c.name
            ))),
            Err(e) => Err(db("inserting a connection")(e)),
        }
    }

    async fn update_connection(&self, c: &Connection) -> Result<bool, StoreError> {
        let cols = connection_columns(&self.vault, c)?;
        let result = sqlx::query(
            "UPDATE connections SET name = $1, name_folded = $2, doc = $3, secret_sealed = $4, updated_at = $5 \
             WHERE id = $6",
        )
        .bind(cols.name)
        .bind(cols.name_folded)
        .bind(cols.doc)
        .bind(cols.secret_sealed)
        .bind(cols.updated_at)
        .bind(cols.id)
        .execute(&self.pool)
        .await;
        match result {
            Ok(r) => Ok(r.rows_affected() == 1),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "a connection named `{}`",
                c.name
            ))),
            Err(e) => Err(db("updating a connection")(e)),
        }
    }

    async fn connection(&self, name: &ConnectionName) -> Result<Option<Connection>, StoreError> {
        sqlx::query("SELECT * FROM connections WHERE name_folded = $1")
            .bind(name.folded())
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a connection"))?
            .map(|row| connection_from_row(&self.vault, &row))
            .transpose()
    }

    async fn connection_by_id(&self, id: ConnectionId) -> Result<Option<Connection>, StoreError> {
        sqlx::query("SELECT * FROM connections WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a connection"))?
            .map(|row| connection_from_row(&self.vault, &row))
            .transpose()
    }

    async fn connections(&self) -> Result<Vec<Connection>, StoreError> {
        sqlx::query("SELECT * FROM connections ORDER BY name_folded COLLATE \"C\"")
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing connections"))?
            .iter()
            .map(|row| connection_from_row(&self.vault, row))
            .collect()
    }

    async fn delete_connection(&self, name: &ConnectionName) -> Result<bool, StoreError> {
        let ctx = "deleting a connection";
        let mut tx = self.pool.begin().await.map_err(db(ctx))?;
        let row = sqlx::query("SELECT id FROM connections WHERE name_folded = $1 FOR UPDATE")
            .bind(name.folded())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db(ctx))?;
        let Some(row) = row else {
            return Ok(false);
        };
        let id: String = row.try_get(0).map_err(db(ctx))?;
        for sql in [
            "DELETE FROM access_tokens WHERE connection_id = $1",
            "DELETE FROM accounts WHERE connection_id = $1",
            "DELETE FROM static_users WHERE connection_id = $1",
            "DELETE FROM bridge_users WHERE connection_id = $1",
            "DELETE FROM pending_logins WHERE connection_id = $1",
            "DELETE FROM login_status WHERE connection_id = $1",
            // Their items and dead letters follow by cascade; journal entries stay until purged.
            "DELETE FROM watches WHERE connection_id = $1",
            "DELETE FROM webhooks WHERE connection_id = $1",
            "DELETE FROM connections WHERE id = $1",
        ] {
            sqlx::query(sql)
                .bind(&id)
                .execute(&mut *tx)
                .await
                .map_err(db(ctx))?;
        }
        tx.commit().await.map_err(db(ctx))?;
        Ok(true)
    }

    async fn put_account(
        &self,
        a: &Account,
        refresh_token: Option<&Secret>,
    ) -> Result<(), StoreError> {
        let cols = account_columns(&self.vault, a, refresh_token);
        let result = sqlx::query(
            "INSERT INTO accounts (id, connection_id, principal, mailbox, credential_kind, status, status_reason, \
             refresh_token_sealed, created_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (id) DO UPDATE SET mailbox = excluded.mailbox, credential_kind = excluded.credential_kind, \
             status = excluded.status, status_reason = excluded.status_reason, \
             refresh_token_sealed = excluded.refresh_token_sealed, last_used_at = excluded.last_used_at",
        )
        .bind(cols.id)
        .bind(cols.connection_id)
        .bind(cols.principal)
        .bind(cols.mailbox)
        .bind(cols.credential_kind)
        .bind(cols.status)
        .bind(cols.status_reason)
        .bind(cols.refresh_token_sealed)
        .bind(cols.created_at)
        .bind(cols.last_used_at)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "an account for principal `{}` on this connection",
                a.principal
            ))),
            Err(e) => Err(db("writing an account")(e)),
        }
    }

    async fn account(
        &self,
        connection: ConnectionId,
        principal: &Principal,
    ) -> Result<Option<Account>, StoreError> {
        sqlx::query("SELECT * FROM accounts WHERE connection_id = $1 AND principal = $2")
            .bind(connection.to_string())
            .bind(principal.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading an account"))?
            .map(|row| account_from_row(&row))
            .transpose()
    }

    async fn account_refresh_token(&self, id: AccountId) -> Result<Option<Secret>, StoreError> {
        let row = sqlx::query("SELECT refresh_token_sealed FROM accounts WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a refresh token"))?;
        let sealed: Option<Vec<u8>> = match row {
            Some(row) => row.try_get(0).map_err(db("reading a refresh token"))?,
            None => None,
        };
        sealed
            .map(|s| open_refresh_token(&self.vault, id, &s))
            .transpose()
    }

    async fn accounts(&self, connection: ConnectionId) -> Result<Vec<Account>, StoreError> {
        sqlx::query(
            "SELECT * FROM accounts WHERE connection_id = $1 ORDER BY principal COLLATE \"C\"",
        )
        .bind(connection.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing accounts"))?
        .iter()
        .map(|row| account_from_row(row))
        .collect()
    }

    async fn delete_account(&self, id: AccountId) -> Result<bool, StoreError> {
        let ctx = "deleting an account";
        let mut tx = self.pool.begin().await.map_err(db(ctx))?;
        sqlx::query("DELETE FROM access_tokens WHERE account_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db(ctx))?;
        let r = sqlx::query("DELETE FROM accounts WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db(ctx))?;
        tx.commit().await.map_err(db(ctx))?;
        Ok(r.rows_affected() > 0)
    }

    async fn set_account_status(
        &self,
        id: AccountId,
        status: &AccountStatus,
        last_used_at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE accounts SET status = $1, status_reason = $2, \
             last_used_at = COALESCE($3, last_used_at) WHERE id = $4",
        )
        .bind(status.as_str())
        .bind(status_reason(status))
        .bind(last_used_at.map(ts))
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(db("updating an account's status"))?;
        Ok(r.rows_affected() > 0)
    }

    async fn touch_account(&self, id: AccountId, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE accounts SET last_used_at = $1 WHERE id = $2")
            .bind(ts(at))
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db("recording an account's use"))?;
        Ok(())
    }

    async fn reset_account(&self, id: AccountId, reason: &str) -> Result<bool, StoreError> {
        let ctx = "resetting an account";
        let mut tx = self.pool.begin().await.map_err(db(ctx))?;
        sqlx::query("DELETE FROM access_tokens WHERE account_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db(ctx))?;
        let r = sqlx::query(
            "UPDATE accounts SET refresh_token_sealed = NULL, status = 'needs-sign-in', \
             status_reason = $1 WHERE id = $2",
        )
        .bind(reason)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db(ctx))?;
        tx.commit().await.map_err(db(ctx))?;
        Ok(r.rows_affected() > 0)
    }

    async fn access_token(&self, key: &TokenKey) -> Result<Option<AccessToken>, StoreError> {
        let ctx = "reading an access token";
        let row = sqlx::query(
            "SELECT token_sealed, expires_at, refresh_at FROM access_tokens \
             WHERE connection_id = $1 AND account_id = $2 AND resource = $3",
        )
        .bind(key.connection.to_string())
        .bind(account_column(key))
        .bind(key.resource.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db(ctx))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let sealed: Vec<u8> = row.try_get(0).map_err(db(ctx))?;
        let expires: String = row.try_get(1).map_err(db(ctx))?;
        let refresh: String = row.try_get(2).map_err(db(ctx))?;
        open_access_token(&self.vault, key, &sealed, &expires, &refresh).map(Some)
    }

    async fn save_tokens(
        &self,
        key: &TokenKey,
        access: &AccessToken,
        refresh_token: Option<&Secret>,
    ) -> Result<(), StoreError> {
        let ctx = "saving tokens";
        let mut tx = self.pool.begin().await.map_err(db(ctx))?;
        if let (Some(account), Some(rt)) = (key.account, refresh_token) {
            sqlx::query("UPDATE accounts SET refresh_token_sealed = $1 WHERE id = $2")
                .bind(seal_refresh_token(&self.vault, account, rt))
                .bind(account.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db(ctx))?;
        }
        sqlx::query(
            "INSERT INTO access_tokens (connection_id, account_id, resource, token_sealed, expires_at, refresh_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (connection_id, account_id, resource) DO UPDATE SET \
             token_sealed = excluded.token_sealed, expires_at = excluded.expires_at, refresh_at = excluded.refresh_at",
        )
        .bind(key.connection.to_string())
        .bind(account_column(key))
        .bind(key.resource.as_str())
        .bind(seal_access_token(&self.vault, key, access))
        .bind(ts(access.expires_at))
        .bind(ts(access.refresh_at))
        .execute(&mut *tx)
        .await
        .map_err(db(ctx))?;
        tx.commit().await.map_err(db(ctx))?;
        Ok(())
    }

    async fn delete_access_tokens(
        &self,
        connection: ConnectionId,
        account: Option<AccountId>,
    ) -> Result<(), StoreError> {
        let q = match account {
            Some(a) => sqlx::query(
                "DELETE FROM access_tokens WHERE connection_id = $1 AND account_id = $2",
            )
            .bind(connection.to_string())
            .bind(a.to_string()),
            None => sqlx::query("DELETE FROM access_tokens WHERE connection_id = $1")
                .bind(connection.to_string()),
        };
        q.execute(&self.pool)
            .await
            .map_err(db("deleting access tokens"))?;
        Ok(())
    }

    async fn begin_refresh(
        &self,
        account: AccountId,
        key: &TokenKey,
    ) -> Result<Option<RefreshTurn>, StoreError> {
        let ctx = "taking an account's refresh turn";
        let mut tx = self.pool.begin().await.map_err(db(ctx))?;
        // The row lock is the turn: a second gateway waits here until the first commits (or
        // its connection drops, when it dies), then reads what the first stored.
        let Some(row) = sqlx::query(
            "SELECT status, status_reason, refresh_token_sealed FROM accounts WHERE id = $1 FOR UPDATE",
        )
        .bind(account.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db(ctx))?
        else {
            return Ok(None);
        };
        let status: String = row.try_get(0).map_err(db(ctx))?;
        let reason: Option<String> = row.try_get(1).map_err(db(ctx))?;
        let sealed: Option<Vec<u8>> = row.try_get(2).map_err(db(ctx))?;
        let refresh_token = sealed
            .as_ref()
            .map(|s| open_refresh_token(&self.vault, account, s))
            .transpose()?;
        let access = sqlx::query(
            "SELECT token_sealed, expires_at, refresh_at FROM access_tokens \
             WHERE connection_id = $1 AND account_id = $2 AND resource = $3",
        )
        .bind(key.connection.to_string())
        .bind(account_column(key))
        .bind(key.resource.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db(ctx))?;
        let access_token = match access {
            Some(row) => {
                let sealed: Vec<u8> = row.try_get(0).map_err(db(ctx))?;
                let expires: String = row.try_get(1).map_err(db(ctx))?;
                let refresh: String = row.try_get(2).map_err(db(ctx))?;
                Some(open_access_token(
                    &self.vault,
                    key,
                    &sealed,
                    &expires,
                    &refresh,
                )?)
            }
            None => None,
        };
        Ok(Some(RefreshTurn {
            refresh_token,
            access_token,
            status: super::rows::status_from_columns(&status, reason)?,
            hold: TurnHold::Postgres { tx, sealed },
        }))
    }

    async fn commit_refresh(
        &self,
        turn: RefreshTurn,
        key: &TokenKey,
        access: &AccessToken,
        refresh_token: Option<&Secret>,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let ctx = "saving a refresh";
        let TurnHold::Postgres { mut tx, sealed } = turn.hold else {
            return Err(StoreError::Corrupt(
                "a refresh turn of another store".into(),
            ));
        };
        let account = key
            .account
            .ok_or_else(|| StoreError::Corrupt("a refresh turn without an account".into()))?;
        if let Some(rt) = refresh_token {
            sqlx::query(
                "UPDATE accounts SET refresh_token_sealed = $1 WHERE id = $2 \
                 AND refresh_token_sealed IS NOT DISTINCT FROM $3",
            )
            .bind(seal_refresh_token(&self.vault, account, rt))
            .bind(account.to_string())
            .bind(sealed)
            .execute(&mut *tx)
            .await
            .map_err(db(ctx))?;
        }
        sqlx::query(
            "UPDATE accounts SET status = 'active', status_reason = NULL, last_used_at = $1 WHERE id = $2",
        )
        .bind(ts(at))
        .bind(account.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db(ctx))?;
        sqlx::query(
            "INSERT INTO access_tokens (connection_id, account_id, resource, token_sealed, expires_at, refresh_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (connection_id, account_id, resource) DO UPDATE SET \
             token_sealed = excluded.token_sealed, expires_at = excluded.expires_at, refresh_at = excluded.refresh_at",
        )
        .bind(key.connection.to_string())
        .bind(account_column(key))
        .bind(key.resource.as_str())
        .bind(seal_access_token(&self.vault, key, access))
        .bind(ts(access.expires_at))
        .bind(ts(access.refresh_at))
        .execute(&mut *tx)
        .await
        .map_err(db(ctx))?;
        tx.commit().await.map_err(db(ctx))?;
        Ok(())
    }

    async fn put_pending_login(
        &self,
        login: &PendingLoginRow,
        caps: PendingCaps,
        expired_before: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let ctx = "remembering a sign-in";
        let cols = pending_login_columns(&self.vault, login);
        let mut tx = self.pool.begin().await.map_err(db(ctx))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PENDING_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db(ctx))?;
        sqlx::query("DELETE FROM pending_logins WHERE started_unix < $1 OR state_hash = $2")
            .bind(expired_before.unix_timestamp())
            .bind(&cols.state_hash)
            .execute(&mut *tx)
            .await
            .map_err(db(ctx))?;
        let keep = |n: usize| i64::try_from(n.saturating_sub(1)).unwrap_or(i64::MAX);
        sqlx::query(
            "DELETE FROM pending_logins WHERE seq IN (SELECT seq FROM pending_logins \
             WHERE connection_id = $1 AND principal IS NOT DISTINCT FROM $2 ORDER BY seq DESC OFFSET $3)",
        )
        .bind(&cols.connection_id)
        .bind(&cols.principal)
        .bind(keep(caps.per_principal))
        .execute(&mut *tx)
        .await
        .map_err(db(ctx))?;
        sqlx::query(
            "DELETE FROM pending_logins WHERE seq IN (SELECT seq FROM pending_logins \
             WHERE connection_id = $1 ORDER BY seq DESC OFFSET $2)",
        )
        .bind(&cols.connection_id)
        .bind(keep(caps.per_connection))
        .execute(&mut *tx)
        .await
        .map_err(db(ctx))?;
        sqlx::query(
            "DELETE FROM pending_logins WHERE seq IN (SELECT seq FROM pending_logins \
             ORDER BY seq DESC OFFSET $1)",
        )
        .bind(keep(caps.total))
        .execute(&mut *tx)
        .await
        .map_err(db(ctx))?;
        sqlx::query(
            "INSERT INTO pending_logins (state_hash, connection_id, principal, started_unix, payload_sealed) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(cols.state_hash)
        .bind(cols.connection_id)
        .bind(cols.principal)
        .bind(cols.started_unix)
        .bind(cols.payload_sealed)
        .execute(&mut *tx)
        .await
        .map_err(db(ctx))?;
        tx.commit().await.map_err(db(ctx))?;
        Ok(())
    }

    async fn take_pending_login(&self, state: &str) -> Result<Option<PendingLoginRow>, StoreError> {
        let ctx = "taking a pending sign-in";
        let row = sqlx::query("DELETE FROM pending_logins WHERE state_hash = $1 RETURNING *")
            .bind(state_hash(state))
            .fetch_optional(&self.pool)
            .await
            .map_err(db(ctx))?;
        row.map(|row| {
            let started: i64 = row.try_get("started_unix").map_err(db(ctx))?;
            pending_login_from_row(&self.vault, state, &row, started)
        })
        .transpose()
    }

    async fn purge_pending_logins(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM pending_logins WHERE started_unix < $1")
            .bind(before.unix_timestamp())
            .execute(&self.pool)
            .await
            .map_err(db("purging pending sign-ins"))?;
        Ok(r.rows_affected())
    }

    async fn pending_logins(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM pending_logins")
            .fetch_one(&self.pool)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(db("counting pending sign-ins"))?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    async fn put_login_status(
        &self,
        login: &LoginStatusRow,
        cap: usize,
        expired_before: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let ctx = "remembering a sign-in's status";
        let o = login_outcome_columns(&login.outcome);
        let mut tx = self.pool.begin().await.map_err(db(ctx))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(LOGIN_STATUS_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db(ctx))?;
        sqlx::query("DELETE FROM login_status WHERE started_unix < $1 OR login_id = $2")
            .bind(expired_before.unix_timestamp())
            .bind(&login.login_id)
            .execute(&mut *tx)
            .await
            .map_err(db(ctx))?;
        sqlx::query(
            "DELETE FROM login_status WHERE seq IN (SELECT seq FROM login_status \
             ORDER BY seq DESC OFFSET $1)",
        )
        .bind(i64::try_from(cap.saturating_sub(1)).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await
        .map_err(db(ctx))?;
        sqlx::query(
            "INSERT INTO login_status (login_id, connection_id, started_unix, status, principal, mailbox, error, hint) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&login.login_id)
        .bind(login.connection.to_string())
        .bind(login.started_at.unix_timestamp())
        .bind(o.status)
        .bind(o.principal)
        .bind(o.mailbox)
        .bind(o.error)
        .bind(o.hint)
        .execute(&mut *tx)
        .await
        .map_err(db(ctx))?;
        tx.commit().await.map_err(db(ctx))?;
        Ok(())
    }

    async fn set_login_outcome(
        &self,
        login_id: &str,
        outcome: &LoginOutcome,
    ) -> Result<bool, StoreError> {
        let o = login_outcome_columns(outcome);
        let r = sqlx::query(
            "UPDATE login_status SET status = $1, principal = $2, mailbox = $3, error = $4, hint = $5 \
             WHERE login_id = $6",
        )
        .bind(o.status)
        .bind(o.principal)
        .bind(o.mailbox)
        .bind(o.error)
        .bind(o.hint)
        .bind(login_id)
        .execute(&self.pool)
        .await
        .map_err(db("recording how a sign-in ended"))?;
        Ok(r.rows_affected() > 0)
    }

    async fn login_status(&self, login_id: &str) -> Result<Option<LoginStatusRow>, StoreError> {
        let ctx = "reading a sign-in's status";
        let row = sqlx::query("SELECT * FROM login_status WHERE login_id = $1")
            .bind(login_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db(ctx))?;
        row.map(|row| {
            let started: i64 = row.try_get("started_unix").map_err(db(ctx))?;
            login_status_from_row(&row, started)
        })
        .transpose()
    }

    async fn insert_static_user(&self, u: &StaticUser) -> Result<(), StoreError> {
        let result = sqlx::query(
            "INSERT INTO static_users (id, connection_id, principal, mailbox, access, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(u.id.to_string())
        .bind(u.connection.to_string())
        .bind(u.principal.as_str())
        .bind(u.mailbox.as_str())
        .bind(u.access.as_str())
        .bind(ts(u.created_at))
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "a static user for principal `{}` on this connection",
                u.principal
            ))),
            Err(e) => Err(db("inserting a static user")(e)),
        }
    }

    async fn static_users(&self, connection: ConnectionId) -> Result<Vec<StaticUser>, StoreError> {
        sqlx::query(
            "SELECT * FROM static_users WHERE connection_id = $1 ORDER BY principal COLLATE \"C\"",
        )
        .bind(connection.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing static users"))?
        .iter()
        .map(|row| static_user_from_row(row))
        .collect()
    }

    async fn delete_static_user(&self, id: StaticUserId) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM static_users WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db("deleting a static user"))?;
        Ok(r.rows_affected() > 0)
    }

    async fn insert_api_key(&self, key: &ApiKey, hash: &[u8; 32]) -> Result<(), StoreError> {
        let result = sqlx::query(
            "INSERT INTO api_keys (id, name, key_hash, scope, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(key.id.to_string())
        .bind(&key.name)
        .bind(hash.to_vec())
        .bind(scope_column(&key.scope))
        .bind(ts(key.created_at))
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::Conflict("an API key with this value".into()))
            }
            Err(e) => Err(db("creating an API key")(e)),
        }
    }

    async fn api_key_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        sqlx::query("SELECT * FROM api_keys WHERE key_hash = $1")
            .bind(hash.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading an API key"))?
            .map(|row| api_key_from_row(&row))
            .transpose()
    }

    async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        sqlx::query("SELECT * FROM api_keys ORDER BY created_at COLLATE \"C\"")
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing API keys"))?
            .iter()
            .map(|row| api_key_from_row(row))
            .collect()
    }

    async fn touch_api_key(&self, id: ApiKeyId, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(ts(at))
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db("recording an API key's use"))?;
        Ok(())
    }

    async fn revoke_api_key(&self, id: ApiKeyId, at: OffsetDateTime) -> Result<bool, StoreError> {
        let r =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(ts(at))
                .bind(id.to_string())
                .execute(&self.pool)
                .await
                .map_err(db("revoking an API key"))?;
        Ok(r.rows_affected() == 1)
    }

    async fn admin_password_hash(&self) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT password_hash FROM admin_credential WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading the admin credential"))?;
        row.map(|r| r.try_get(0).map_err(db("reading the admin credential")))
            .transpose()
    }

    async fn set_admin_password_hash(
        &self,
        hash: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO admin_credential (id, password_hash, created_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET password_hash = excluded.password_hash, created_at = excluded.created_at",
        )
        .bind(hash)
        .bind(ts(at))
        .execute(&self.pool)
        .await
        .map_err(db("writing the admin credential"))?;
        Ok(())
    }

    async fn insert_bridge_user(&self, u: &BridgeUser, hash: &str) -> Result<(), StoreError> {
        let result = sqlx::query(
            "INSERT INTO bridge_users (username, connection_id, principal, mailbox, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(u.username.as_str())
        .bind(u.connection.to_string())
        .bind(u.principal.as_ref().map(Principal::as_str))
        .bind(u.mailbox.as_str())
        .bind(hash)
        .bind(ts(u.created_at))
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "a bridge user `{}`",
                u.username
            ))),
            Err(e) => Err(db("inserting a bridge user")(e)),
        }
    }

    async fn bridge_user(
        &self,
        username: &str,
    ) -> Result<Option<(BridgeUser, String)>, StoreError> {
        let row = sqlx::query("SELECT * FROM bridge_users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a bridge user"))?;
        row.map(|row| {
            let hash: String = row
                .try_get("password_hash")
                .map_err(db("reading a bridge user"))?;
            Ok((bridge_user_from_row(&row)?, hash))
        })
        .transpose()
    }

    async fn bridge_users(&self) -> Result<Vec<BridgeUser>, StoreError> {
        sqlx::query("SELECT * FROM bridge_users ORDER BY username COLLATE \"C\"")
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing bridge users"))?
            .iter()
            .map(|row| bridge_user_from_row(row))
            .collect()
    }

    async fn delete_bridge_user(&self, username: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM bridge_users WHERE username = $1")
            .bind(username)
            .execute(&self.pool)
            .await
            .map_err(db("deleting a bridge user"))?;
        Ok(r.rows_affected() > 0)
    }

    async fn change_feed(&self) -> Result<Option<Box<dyn ChangeFeed>>, StoreError> {
        // Its own connection, outside the pool: a listener holds it for as long as it lives,
        // and `store.max_connections` stays what requests get.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(self.connect.clone());
        Ok(Some(Box::new(PgChangeFeed {
            pool,
            listener: None,
        })))
    }

    fn shares_auth_failures(&self) -> bool {
        true
    }

    async fn record_auth_failure(
        &self,
        key: &str,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<u32, StoreError> {
        let ctx = "counting a failed authentication";
        // One statement: concurrent failures of one key on several gateways each count.
        let failures: i32 = sqlx::query(
            "INSERT INTO auth_failures (key, failures, since_ms) VALUES ($1, 1, $2) \
             ON CONFLICT (key) DO UPDATE SET \
             failures = CASE WHEN auth_failures.since_ms <= $2 - $3 THEN 1 \
                             ELSE LEAST(auth_failures.failures, 1000000) + 1 END, \
             since_ms = CASE WHEN auth_failures.since_ms <= $2 - $3 THEN $2 \
                             ELSE auth_failures.since_ms END \
             RETURNING failures",
        )
        .bind(key)
        .bind(now_ms)
        .bind(window_ms)
        .fetch_one(&self.pool)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(db(ctx))?;
        // Windows that have ended are forgotten by whoever fails next, about once per key.
        if failures == 1 {
            sqlx::query("DELETE FROM auth_failures WHERE since_ms <= $1 - $2")
                .bind(now_ms)
                .bind(window_ms)
                .execute(&self.pool)
                .await
                .map_err(db(ctx))?;
        }
        Ok(u32::try_from(failures).unwrap_or(0))
    }

    async fn auth_failures(
        &self,
        key: &str,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<u32, StoreError> {
        let row =
            sqlx::query("SELECT failures FROM auth_failures WHERE key = $1 AND since_ms > $2 - $3")
                .bind(key)
                .bind(now_ms)
                .bind(window_ms)
                .fetch_optional(&self.pool)
                .await
                .map_err(db("reading failed authentications"))?;
        let failures: i32 = match row {
            Some(row) => row
                .try_get(0)
                .map_err(db("reading failed authentications"))?,
            None => 0,
        };
        Ok(u32::try_from(failures).unwrap_or(0))
    }

    async fn clear_auth_failures(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM auth_failures WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(db("forgetting failed authentications"))?;
        Ok(())
    }

    async fn table_names(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query(
            "SELECT table_name::TEXT FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing the tables"))?
        .iter()
        .map(|row| {
            row.try_get::<String, _>(0)
                .map_err(db("listing the tables"))
        })
        .collect()
    }

    async fn read_tables(&self, tables: &[TableSpec]) -> Result<Vec<Vec<CopyRow>>, StoreError> {
        let ctx = "reading the tables to copy";
        let mut tx = self.pool.begin().await.map_err(db(ctx))?;
        // Every table from one snapshot.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(db(ctx))?;
        let mut out = Vec::with_capacity(tables.len());
        for spec in tables {
            out.push(read_table(&mut tx, spec).await?);
        }
        tx.commit().await.map_err(db(ctx))?;
        Ok(out)
    }

    async fn write_tables(
        &self,
        plan: WritePlan<'_>,
        rows: &[Vec<CopyRow>],
    ) -> Result<(), StoreError> {
        let ctx = "writing the copied tables";
        let existing = self.table_names().await?;
        let mut tx = self.pool.begin().await.map_err(db(ctx))?;
        // Nobody else writes these tables until the copy commits or rolls back.
        let names: Vec<&str> = plan.tables.iter().map(|s| s.name).collect();
        sqlx::query(AssertSqlSafe(format!(
            "LOCK TABLE {} IN EXCLUSIVE MODE",
            names.join(", ")
        )))
        .execute(&mut *tx)
        .await
        .map_err(db(ctx))?;
        if plan.replace {
            for table in copy::cleared_on_replace(&existing)
                .into_iter()
                .chain(names.iter().rev().copied())
            {
                sqlx::query(AssertSqlSafe(format!("DELETE FROM {table}")))
                    .execute(&mut *tx)
                    .await
                    .map_err(db(ctx))?;
            }
        } else {
            for spec in plan.tables.iter().filter(|s| copy::counts_as_data(s.name)) {
                let n: i64 =
                    sqlx::query(AssertSqlSafe(format!("SELECT COUNT(*) FROM {}", spec.name)))
                        .fetch_one(&mut *tx)
                        .await
                        .and_then(|r| r.try_get(0))
                        .map_err(db(ctx))?;
                if n > 0 {
                    return Err(copy::not_empty(spec.name, n));
                }
            }
            // What opening the target wrote (its key check) gives way to the source's.
            for spec in plan.tables.iter().filter(|s| !copy::counts_as_data(s.name)) {
                sqlx::query(AssertSqlSafe(format!("DELETE FROM {}", spec.name)))
                    .execute(&mut *tx)
                    .await
                    .map_err(db(ctx))?;
            }
        }
        for (spec, table_rows) in plan.tables.iter().zip(rows) {
            let mut columns: Vec<&str> = spec.columns.iter().map(|c| c.name).collect();
            // Connection names are unique on their folded form, which exgate computes.
            let folded_from = (spec.name == "connections")
                .then(|| columns.iter().position(|c| *c == "name"))
                .flatten();
            if folded_from.is_some() {
                columns.push("name_folded");
            }
            let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "INSERT INTO {} ({}) VALUES ({})",
                spec.name,
                columns.join(", "),
                placeholders.join(", ")
            );
            for row in table_rows {
                let mut q = sqlx::query(AssertSqlSafe(sql.clone()));
                for (value, column) in row.iter().zip(spec.columns) {
                    q = match (value, column.ty) {
                        (Value::Null, ColumnType::Int) => q.bind(None::<i64>),
                        (Value::Null, ColumnType::Bytes) => q.bind(None::<Vec<u8>>),
                        (Value::Null, ColumnType::Text) => q.bind(None::<String>),
                        // An INTEGER column takes it by assignment (out of range: an error).
                        (Value::Int(i), _) => q.bind(*i),
                        (Value::Text(t), _) => q.bind(t.clone()),
                        (Value::Bytes(b), _) => q.bind(b.clone()),
                    };
                }
                if let Some(i) = folded_from {
                    let Some(Value::Text(name)) = row.get(i) else {
                        return Err(StoreError::Corrupt("a connection without a name".into()));
                    };
                    let name: ConnectionName = name
                        .parse()
                        .map_err(|_| StoreError::Corrupt(format!("connection name `{name}`")))?;
                    q = q.bind(name.folded());
                }
                q.execute(&mut *tx).await.map_err(|e| {
                    if is_unique_violation(&e) {
                        StoreError::Copy(format!(
                            "two rows of `{}` are one on PostgreSQL (connection names differ only in case?)",
                            spec.name
                        ))
                    } else {
                        db(ctx)(e)
                    }
                })?;
            }
        }
        let mut read_back = Vec::with_capacity(plan.tables.len());
        for spec in plan.tables {
            read_back.push(read_table(&mut tx, spec).await?);
        }
        copy::verify(&plan, &read_back)?;
        tx.commit().await.map_err(db(ctx))?;
        Ok(())
    }
}

/// Every row of a table, its columns as the spec names them.
async fn read_table(
    conn: &mut sqlx::PgConnection,
    spec: &TableSpec,
) -> Result<Vec<CopyRow>, StoreError> {
    let ctx = "reading a table to copy";
    // Integers are read as 64 bits whatever the column's width (INTEGER or BIGINT).
    let columns: Vec<String> = spec
        .columns
        .iter()
        .map(|c| match c.ty {
            ColumnType::Int => format!("{0}::BIGINT AS {0}", c.name),
            ColumnType::Text | ColumnType::Bytes => c.name.to_owned(),
        })
        .collect();
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {} FROM {}",
        columns.join(", "),
        spec.name
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(db(ctx))?;
    rows.iter()
        .map(|row| {
            spec.columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    Ok(match c.ty {
                        ColumnType::Text => row
                            .try_get::<Option<String>, _>(i)
                            .map_err(db(ctx))?
                            .map_or(Value::Null, Value::Text),
                        ColumnType::Bytes => row
                            .try_get::<Option<Vec<u8>>, _>(i)
                            .map_err(db(ctx))?
                            .map_or(Value::Null, Value::Bytes),
                        ColumnType::Int => row
                            .try_get::<Option<i64>, _>(i)
                            .map_err(db(ctx))?
                            .map_or(Value::Null, Value::Int),
                    })
                })
                .collect()
        })
        .collect()
}

/// `LISTEN exgate_changes` on a connection of its own.
struct PgChangeFeed {
    pool: PgPool,
    listener: Option<PgListener>,
}

#[async_trait]
impl ChangeFeed for PgChangeFeed {
    async fn next(&mut self) -> Result<FeedEvent, StoreError> {
        let Some(listener) = self.listener.as_mut() else {
            let ctx = "listening for changes";
            let mut listener = PgListener::connect_with(&self.pool)
                .await
                .map_err(db(ctx))?;
            // A lost connection is ours to handle (Lost, then Listening): no silent reconnect.
            listener.eager_reconnect(false);
            listener.listen(changes::CHANNEL).await.map_err(db(ctx))?;
            self.listener = Some(listener);
            return Ok(FeedEvent::Listening);
        };
        match listener.try_recv().await {
            Ok(Some(notification)) => Ok(FeedEvent::Change(Change::parse(notification.payload()))),
            Ok(None) => {
                self.listener = None;
                Ok(FeedEvent::Lost)
            }
            Err(e) => {
                tracing::warn!(error = %e, "the change listener lost its connection");
                self.listener = None;
                Ok(FeedEvent::Lost)
            }
        }
    }
}
