//! The embedded store: one SQLite file in WAL mode.

mod notify;

use std::fmt;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row};
use time::OffsetDateTime;

use super::copy::{self, ColumnType, Row as CopyRow, TableSpec, Value, WritePlan};
use super::rows::{
    account_column, account_columns, account_from_row, api_key_from_row, bridge_user_from_row,
    connection_columns, connection_from_row, db, is_unique_violation, login_outcome_columns,
    login_status_from_row, open_access_token, open_refresh_token, pending_login_columns,
    pending_login_from_row, scope_column, seal_access_token, seal_key_check, seal_refresh_token,
    static_user_from_row, status_from_columns, status_reason, ts, verify_key_check,
};
use super::{
    LocalLocks, LoginOutcome, LoginStatusRow, PendingCaps, PendingLoginRow, RefreshTurn, Store,
    StoreError, TurnHold, state_hash,
};
use crate::apikeys::{ApiKey, ApiKeyId};
use crate::model::{
    AccessToken, Account, AccountId, AccountStatus, BridgeUser, Connection, ConnectionId,
    ConnectionName, Principal, StaticUser, StaticUserId, TokenKey,
};
use crate::secret::{Secret, Vault, create_private_dir};

/// Versioned migrations, applied in order, each in its own transaction.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_initial.sql")),
    (
        2,
        include_str!("../../migrations/sqlite/0002_connection_resource.sql"),
    ),
    (
        3,
        include_str!("../../migrations/sqlite/0003_bridge_users.sql"),
    ),
    (
        4,
        include_str!("../../migrations/sqlite/0004_credential_expiry.sql"),
    ),
    (
        5,
        include_str!("../../migrations/sqlite/0005_pending_logins.sql"),
    ),
    (
        6,
        include_str!("../../migrations/sqlite/0006_login_status.sql"),
    ),
    (
        7,
        include_str!("../../migrations/sqlite/0007_notifications.sql"),
    ),
];

pub struct SqliteStore {
    pool: SqlitePool,
    vault: Arc<Vault>,
    path: String,
    /// Refresh turns: one gateway per SQLite file, so a lock of this process.
    refreshing: LocalLocks,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// How many connections a long-lived process (the gateway) keeps to the file.
const POOL_CONNECTIONS: u32 = 4;

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    /// The file is created 0600 in a 0700 folder; SQLite gives its -wal and -shm files the same mode.
    pub async fn open(path: &Path, vault: Arc<Vault>) -> Result<Self, StoreError> {
        Self::open_with(path, vault, POOL_CONNECTIONS).await
    }

    /// [`SqliteStore::open`] with one connection (one SQLite worker thread), for a command whose
    /// calls come one after the other: a second connection would only cost a thread and a file
    /// open.
    pub async fn open_single(path: &Path, vault: Arc<Vault>) -> Result<Self, StoreError> {
        Self::open_with(path, vault, 1).await
    }

    async fn open_with(
        path: &Path,
        vault: Arc<Vault>,
        connections: u32,
    ) -> Result<Self, StoreError> {
        let open_err = |message: String| StoreError::Open {
            path: path.display().to_string(),
            message,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)
                .map_err(|e| open_err(format!("its folder cannot be created: {e}")))?;
        }
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| open_err(e.to_string()))?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(connections)
            .connect_with(options)
            .await
            .map_err(|e| open_err(e.to_string()))?;
        let store = Self {
            pool,
            vault,
            path: path.display().to_string(),
            refreshing: LocalLocks::default(),
        };
        // A store that is up to date answers its version and key check in one statement; a new
        // or older one is migrated first.
        let sealed = match store.current().await {
            Some(sealed) => sealed,
            None => {
                store.migrate().await?;
                None
            }
        };
        store.check_key(sealed).await?;
        Ok(store)
    }

    /// The sealed key check (if written yet) when the schema is this build's latest; `None` when
    /// the store must be migrated (or checked) the long way.
    async fn current(&self) -> Option<Option<Vec<u8>>> {
        let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
        let row = sqlx::query(
            "SELECT (SELECT MAX(version) FROM schema_migrations), \
                    (SELECT value FROM meta WHERE key = 'key_check')",
        )
        .fetch_one(&self.pool)
        .await
        .ok()?;
        let version: Option<i64> = row.try_get(0).ok()?;
        let sealed: Option<Vec<u8>> = row.try_get(1).ok()?;
        (version == Some(known)).then_some(sealed)
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Closes the connection pool; later calls fail. For orderly shutdown.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .execute(&self.pool)
        .await
        .map_err(db("creating the migrations table"))?;
        let current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            .fetch_one(&self.pool)
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
            let mut tx = self
                .pool
                .begin()
                .await
                .map_err(db("starting a migration"))?;
            sqlx::raw_sql(*sql)
                .execute(&mut *tx)
                .await
                .map_err(db("applying a migration"))?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
                .bind(version)
                .bind(ts(OffsetDateTime::now_utc()))
                .execute(&mut *tx)
                .await
                .map_err(db("recording a migration"))?;
            tx.commit().await.map_err(db("committing a migration"))?;
            tracing::info!(version, store = %self.path, "applied store migration");
        }
        Ok(())
    }

    /// Seals a known value on first use, and on later opens checks that the key opens it, so a
    /// wrong key file is reported at start rather than at the first secret. `sealed`: the check
    /// as already read, if it was.
    async fn check_key(&self, sealed: Option<Vec<u8>>) -> Result<(), StoreError> {
        let sealed = match sealed {
            Some(sealed) => Some(sealed),
            None => sqlx::query("SELECT value FROM meta WHERE key = 'key_check'")
                .fetch_optional(&self.pool)
                .await
                .and_then(|row| row.map(|r| r.try_get::<Vec<u8>, _>(0)).transpose())
                .map_err(db("reading the key check"))?,
        };
        match sealed {
            Some(sealed) => verify_key_check(&self.vault, &sealed),
            None => {
                sqlx::query("INSERT OR IGNORE INTO meta (key, value) VALUES ('key_check', ?)")
                    .bind(seal_key_check(&self.vault))
                    .execute(&self.pool)
                    .await
                    .map_err(db("writing the key check"))?;
                Ok(())
            }
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn notifications(&self) -> Option<&dyn crate::notify::NotifyStore> {
        Some(self)
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
            "INSERT INTO connections (id, name, doc, secret_sealed, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(cols.id)
        .bind(cols.name)
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
        let result = sqlx::query("UPDATE connections SET name = ?, doc = ?, secret_sealed = ?, updated_at = ? WHERE id = ?")
            .bind(cols.name)
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
        sqlx::query("SELECT * FROM connections WHERE name = ?")
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a connection"))?
            .map(|row| connection_from_row(&self.vault, &row))
            .transpose()
    }

    async fn connection_by_id(&self, id: ConnectionId) -> Result<Option<Connection>, StoreError> {
        sqlx::query("SELECT * FROM connections WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a connection"))?
            .map(|row| connection_from_row(&self.vault, &row))
            .transpose()
    }

    async fn connections(&self) -> Result<Vec<Connection>, StoreError> {
        sqlx::query("SELECT * FROM connections ORDER BY name")
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
        let row = sqlx::query("SELECT id FROM connections WHERE name = ?")
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db(ctx))?;
        let Some(row) = row else {
            return Ok(false);
        };
        let id: String = row.try_get(0).map_err(db(ctx))?;
        for sql in [
            "DELETE FROM access_tokens WHERE connection_id = ?",
            "DELETE FROM accounts WHERE connection_id = ?",
            "DELETE FROM static_users WHERE connection_id = ?",
            "DELETE FROM bridge_users WHERE connection_id = ?",
            "DELETE FROM pending_logins WHERE connection_id = ?",
            "DELETE FROM login_status WHERE connection_id = ?",
            // Their items and dead letters follow by cascade; journal entries stay until purged.
            "DELETE FROM watches WHERE connection_id = ?",
            "DELETE FROM webhooks WHERE connection_id = ?",
            "DELETE FROM connections WHERE id = ?",
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
             refresh_token_sealed, created_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
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
        sqlx::query("SELECT * FROM accounts WHERE connection_id = ? AND principal = ?")
            .bind(connection.to_string())
            .bind(principal.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading an account"))?
            .map(|row| account_from_row(&row))
            .transpose()
    }

    async fn account_refresh_token(&self, id: AccountId) -> Result<Option<Secret>, StoreError> {
        let row = sqlx::query("SELECT refresh_token_sealed FROM accounts WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a refresh token"))?;
        let sealed: Option<Vec<u8>> = match row {
            Some(row) => row.try_get(0).map_err(db("reading a refresh token"))?,
            None => None,
        };
        Ok(sealed
            .map(|s| open_refresh_token(&self.vault, id, &s))
            .transpose()?)
    }

    async fn accounts(&self, connection: ConnectionId) -> Result<Vec<Account>, StoreError> {
        sqlx::query("SELECT * FROM accounts WHERE connection_id = ? ORDER BY principal")
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
        sqlx::query("DELETE FROM access_tokens WHERE account_id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db(ctx))?;
        let r = sqlx::query("DELETE FROM accounts WHERE id = ?")
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
        let reason = status_reason(status);
        let r = sqlx::query(
            "UPDATE accounts SET status = ?, status_reason = ?, \
             last_used_at = COALESCE(?, last_used_at) WHERE id = ?",
        )
        .bind(status.as_str())
        .bind(reason)
        .bind(last_used_at.map(ts))
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(db("updating an account's status"))?;
        Ok(r.rows_affected() > 0)
    }

    async fn touch_account(&self, id: AccountId, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE accounts SET last_used_at = ? WHERE id = ?")
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
        sqlx::query("DELETE FROM access_tokens WHERE account_id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db(ctx))?;
        let r = sqlx::query(
            "UPDATE accounts SET refresh_token_sealed = NULL, status = 'needs-sign-in', \
             status_reason = ? WHERE id = ?",
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
             WHERE connection_id = ? AND account_id = ? AND resource = ?",
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
            sqlx::query("UPDATE accounts SET refresh_token_sealed = ? WHERE id = ?")
                .bind(seal_refresh_token(&self.vault, account, rt))
                .bind(account.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db(ctx))?;
        }
        sqlx::query(
            "INSERT INTO access_tokens (connection_id, account_id, resource, token_sealed, expires_at, refresh_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (connection_id, account_id, resource) DO UPDATE SET \
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

    async fn begin_refresh(
        &self,
        account: AccountId,
        key: &TokenKey,
    ) -> Result<Option<RefreshTurn>, StoreError> {
        let ctx = "taking an account's refresh turn";
        let guard = self.refreshing.lock(account).await;
        let Some(row) = sqlx::query(
            "SELECT status, status_reason, refresh_token_sealed FROM accounts WHERE id = ?",
        )
        .bind(account.to_string())
        .fetch_optional(&self.pool)
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
        Ok(Some(RefreshTurn {
            refresh_token,
            access_token: self.access_token(key).await?,
            status: status_from_columns(&status, reason)?,
            hold: TurnHold::Local {
                _guard: guard,
                sealed,
            },
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
        let TurnHold::Local { _guard, sealed } = turn.hold else {
            return Err(StoreError::Corrupt(
                "a refresh turn of another store".into(),
            ));
        };
        let account = key
            .account
            .ok_or_else(|| StoreError::Corrupt("a refresh turn without an account".into()))?;
        let mut tx = self.pool.begin().await.map_err(db(ctx))?;
        // The version check: another process on the file (the CLI) may have rotated the token
        // since the turn read it; its token is kept.
        if let Some(rt) = refresh_token {
            sqlx::query(
                "UPDATE accounts SET refresh_token_sealed = ? WHERE id = ? AND refresh_token_sealed IS ?",
            )
            .bind(seal_refresh_token(&self.vault, account, rt))
            .bind(account.to_string())
            .bind(sealed)
            .execute(&mut *tx)
            .await
            .map_err(db(ctx))?;
        }
        sqlx::query(
            "UPDATE accounts SET status = 'active', status_reason = NULL, last_used_at = ? WHERE id = ?",
        )
        .bind(ts(at))
        .bind(account.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db(ctx))?;
        sqlx::query(
            "INSERT INTO access_tokens (connection_id, account_id, resource, token_sealed, expires_at, refresh_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (connection_id, account_id, resource) DO UPDATE SET \
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
        // A write first, so the transaction holds the file's write lock from its start.
        sqlx::query("DELETE FROM pending_logins WHERE started_unix < ? OR state_hash = ?")
            .bind(expired_before.unix_timestamp())
            .bind(&cols.state_hash)
            .execute(&mut *tx)
            .await
            .map_err(db(ctx))?;
        let keep = |n: usize| i64::try_from(n.saturating_sub(1)).unwrap_or(i64::MAX);
        sqlx::query(
            "DELETE FROM pending_logins WHERE seq IN (SELECT seq FROM pending_logins \
             WHERE connection_id = ? AND principal IS ? ORDER BY seq DESC LIMIT -1 OFFSET ?)",
        )
        .bind(&cols.connection_id)
        .bind(&cols.principal)
        .bind(keep(caps.per_principal))
        .execute(&mut *tx)
        .await
        .map_err(db(ctx))?;
        sqlx::query(
            "DELETE FROM pending_logins WHERE seq IN (SELECT seq FROM pending_logins \
             WHERE connection_id = ? ORDER BY seq DESC LIMIT -1 OFFSET ?)",
        )
        .bind(&cols.connection_id)
        .bind(keep(caps.per_connection))
        .execute(&mut *tx)
        .await
        .map_err(db(ctx))?;
        sqlx::query(
            "DELETE FROM pending_logins WHERE seq IN (SELECT seq FROM pending_logins \
             ORDER BY seq DESC LIMIT -1 OFFSET ?)",
        )
        .bind(keep(caps.total))
        .execute(&mut *tx)
        .await
        .map_err(db(ctx))?;
        sqlx::query(
            "INSERT INTO pending_logins (state_hash, seq, connection_id, principal, started_unix, payload_sealed) \
             VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM pending_logins), ?, ?, ?, ?)",
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
        let row = sqlx::query("DELETE FROM pending_logins WHERE state_hash = ? RETURNING *")
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
        let r = sqlx::query("DELETE FROM pending_logins WHERE started_unix < ?")
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
        // A write first, so the transaction holds the file's write lock from its start.
        sqlx::query("DELETE FROM login_status WHERE started_unix < ? OR login_id = ?")
            .bind(expired_before.unix_timestamp())
            .bind(&login.login_id)
            .execute(&mut *tx)
            .await
            .map_err(db(ctx))?;
        sqlx::query(
            "DELETE FROM login_status WHERE seq IN (SELECT seq FROM login_status \
             ORDER BY seq DESC LIMIT -1 OFFSET ?)",
        )
        .bind(i64::try_from(cap.saturating_sub(1)).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await
        .map_err(db(ctx))?;
        sqlx::query(
            "INSERT INTO login_status (login_id, seq, connection_id, started_unix, status, principal, mailbox, error, hint) \
             VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM login_status), ?, ?, ?, ?, ?, ?, ?)",
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
            "UPDATE login_status SET status = ?, principal = ?, mailbox = ?, error = ?, hint = ? \
             WHERE login_id = ?",
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
        let row = sqlx::query("SELECT * FROM login_status WHERE login_id = ?")
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

    async fn delete_access_tokens(
        &self,
        connection: ConnectionId,
        account: Option<AccountId>,
    ) -> Result<(), StoreError> {
        let q = match account {
            Some(a) => {
                sqlx::query("DELETE FROM access_tokens WHERE connection_id = ? AND account_id = ?")
                    .bind(connection.to_string())
                    .bind(a.to_string())
            }
            None => sqlx::query("DELETE FROM access_tokens WHERE connection_id = ?")
                .bind(connection.to_string()),
        };
        q.execute(&self.pool)
            .await
            .map_err(db("deleting access tokens"))?;
        Ok(())
    }

    async fn insert_static_user(&self, u: &StaticUser) -> Result<(), StoreError> {
        let result = sqlx::query(
            "INSERT INTO static_users (id, connection_id, principal, mailbox, access, created_at) VALUES (?, ?, ?, ?, ?, ?)",
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
        sqlx::query("SELECT * FROM static_users WHERE connection_id = ? ORDER BY principal")
            .bind(connection.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing static users"))?
            .iter()
            .map(|row| static_user_from_row(row))
            .collect()
    }

    async fn delete_static_user(&self, id: StaticUserId) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM static_users WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db("deleting a static user"))?;
        Ok(r.rows_affected() > 0)
    }

    async fn insert_bridge_user(&self, u: &BridgeUser, hash: &str) -> Result<(), StoreError> {
        let result = sqlx::query(
            "INSERT INTO bridge_users (username, connection_id, principal, mailbox, password_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)",
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
        let row = sqlx::query("SELECT * FROM bridge_users WHERE username = ?")
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
        sqlx::query("SELECT * FROM bridge_users ORDER BY username")
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing bridge users"))?
            .iter()
            .map(|row| bridge_user_from_row(row))
            .collect()
    }

    async fn delete_bridge_user(&self, username: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM bridge_users WHERE username = ?")
            .bind(username)
            .execute(&self.pool)
            .await
            .map_err(db("deleting a bridge user"))?;
        Ok(r.rows_affected() > 0)
    }

    async fn insert_api_key(&self, key: &ApiKey, hash: &[u8; 32]) -> Result<(), StoreError> {
        let result = sqlx::query(
            "INSERT INTO api_keys (id, name, key_hash, scope, created_at) VALUES (?, ?, ?, ?, ?)",
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
        sqlx::query("SELECT * FROM api_keys WHERE key_hash = ?")
            .bind(hash.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading an API key"))?
            .map(|row| api_key_from_row(&row))
            .transpose()
    }

    async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        sqlx::query("SELECT * FROM api_keys ORDER BY created_at")
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing API keys"))?
            .iter()
            .map(|row| api_key_from_row(row))
            .collect()
    }

    async fn touch_api_key(&self, id: ApiKeyId, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE id = ?")
            .bind(ts(at))
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db("recording an API key's use"))?;
        Ok(())
    }

    async fn revoke_api_key(&self, id: ApiKeyId, at: OffsetDateTime) -> Result<bool, StoreError> {
        let r =
            sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
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
            "INSERT INTO admin_credential (id, password_hash, created_at) VALUES (1, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET password_hash = excluded.password_hash, created_at = excluded.created_at",
        )
        .bind(hash)
        .bind(ts(at))
        .execute(&self.pool)
        .await
        .map_err(db("writing the admin credential"))?;
        Ok(())
    }

    async fn table_names(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing the tables"))?
        .iter()
        .map(|row| row.try_get::<String, _>(0).map_err(db("listing the tables")))
        .collect()
    }

    async fn read_tables(&self, tables: &[TableSpec]) -> Result<Vec<Vec<CopyRow>>, StoreError> {
        let ctx = "reading the tables to copy";
        // One read transaction: every table from the same snapshot.
        let mut tx = self.pool.begin().await.map_err(db(ctx))?;
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
        let mut conn = self.pool.acquire().await.map_err(db(ctx))?;
        // IMMEDIATE: the write lock is taken before the emptiness check, not at the first insert.
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *conn)
            .await
            .map_err(db(ctx))?;
        let result = async {
            if plan.replace {
                for table in copy::cleared_on_replace(&existing)
                    .into_iter()
                    .chain(plan.tables.iter().rev().map(|s| s.name))
                {
                    sqlx::query(AssertSqlSafe(format!("DELETE FROM {table}")))
                        .execute(&mut *conn)
                        .await
                        .map_err(db(ctx))?;
                }
            } else {
                for spec in plan.tables.iter().filter(|s| copy::counts_as_data(s.name)) {
                    let n: i64 =
                        sqlx::query(AssertSqlSafe(format!("SELECT COUNT(*) FROM {}", spec.name)))
                            .fetch_one(&mut *conn)
                            .await
                            .and_then(|r| r.try_get(0))
                            .map_err(db(ctx))?;
                    if n > 0 {
                        return Err(copy::not_empty(spec.name, n));
                    }
                }
            }
            for (spec, table_rows) in plan.tables.iter().zip(rows) {
                let columns: Vec<&str> = spec.columns.iter().map(|c| c.name).collect();
                let sql = format!(
                    "INSERT OR REPLACE INTO {} ({}) VALUES ({})",
                    spec.name,
                    columns.join(", "),
                    vec!["?"; columns.len()].join(", ")
                );
                for row in table_rows {
                    let mut q = sqlx::query(AssertSqlSafe(sql.clone()));
                    for value in row {
                        q = match value {
                            Value::Null => q.bind(None::<String>),
                            Value::Int(i) => q.bind(*i),
                            Value::Text(t) => q.bind(t.clone()),
                            Value::Bytes(b) => q.bind(b.clone()),
                        };
                    }
                    q.execute(&mut *conn).await.map_err(db(ctx))?;
                }
            }
            let mut read_back = Vec::with_capacity(plan.tables.len());
            for spec in plan.tables {
                read_back.push(read_table(&mut conn, spec).await?);
            }
            copy::verify(&plan, &read_back)
        }
        .await;
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        sqlx::query(end)
            .execute(&mut *conn)
            .await
            .map_err(db(ctx))?;
        result
    }
}

/// Every row of a table, its columns as the spec names them.
async fn read_table(
    conn: &mut sqlx::SqliteConnection,
    spec: &TableSpec,
) -> Result<Vec<CopyRow>, StoreError> {
    let ctx = "reading a table to copy";
    let columns: Vec<&str> = spec.columns.iter().map(|c| c.name).collect();
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
