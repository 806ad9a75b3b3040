//! [`CountingStore`]: a [`Store`] that forwards every call to another and records which methods
//! were called. Tests guard the hot path with it ("a fresh token reads nothing"); a frontend
//! could use it to count store traffic.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{
    LoginOutcome, LoginStatusRow, PendingCaps, PendingLoginRow, RefreshTurn, Store, StoreError,
};
use crate::apikeys::{ApiKey, ApiKeyId};
use crate::model::{
    AccessToken, Account, AccountId, AccountStatus, BridgeUser, Connection, ConnectionId,
    ConnectionName, Principal, StaticUser, StaticUserId, TokenKey,
};
use crate::secret::Secret;

/// Forwards to `inner` and records the name of every method called, in order.
#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn Store>,
    calls: Mutex<Vec<&'static str>>,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            calls: Mutex::new(Vec::new()),
        }
    }

    fn count(&self, method: &'static str) {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(method);
    }

    /// The methods called since the last [`CountingStore::take`], in order.
    pub fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// How many calls of `method` were made since the last [`CountingStore::take`].
    pub fn calls_of(&self, method: &str) -> usize {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|m| **m == method)
            .count()
    }
}

#[async_trait]
impl Store for CountingStore {
    /// Forwarded uncounted: the governor's exchanges are not store calls of a request.
    fn governor_budget(&self) -> Option<Arc<dyn crate::governor::SharedBudget>> {
        self.inner.governor_budget()
    }

    /// Forwarded uncounted: the inner store's notification state, whose calls are not counted.
    fn notifications(&self) -> Option<&dyn crate::notify::NotifyStore> {
        self.inner.notifications()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.count("ping");
        self.inner.ping().await
    }

    async fn insert_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        self.count("insert_connection");
        self.inner.insert_connection(connection).await
    }

    async fn update_connection(&self, connection: &Connection) -> Result<bool, StoreError> {
        self.count("update_connection");
        self.inner.update_connection(connection).await
    }

    async fn connection(&self, name: &ConnectionName) -> Result<Option<Connection>, StoreError> {
        self.count("connection");
        self.inner.connection(name).await
    }

    async fn connection_by_id(&self, id: ConnectionId) -> Result<Option<Connection>, StoreError> {
        self.count("connection_by_id");
        self.inner.connection_by_id(id).await
    }

    async fn connections(&self) -> Result<Vec<Connection>, StoreError> {
        self.count("connections");
        self.inner.connections().await
    }

    async fn delete_connection(&self, name: &ConnectionName) -> Result<bool, StoreError> {
        self.count("delete_connection");
        self.inner.delete_connection(name).await
    }

    async fn put_account(
        &self,
        account: &Account,
        refresh_token: Option<&Secret>,
    ) -> Result<(), StoreError> {
        self.count("put_account");
        self.inner.put_account(account, refresh_token).await
    }

    async fn account(
        &self,
        connection: ConnectionId,
        principal: &Principal,
    ) -> Result<Option<Account>, StoreError> {
        self.count("account");
        self.inner.account(connection, principal).await
    }

    async fn account_refresh_token(&self, id: AccountId) -> Result<Option<Secret>, StoreError> {
        self.count("account_refresh_token");
        self.inner.account_refresh_token(id).await
    }

    async fn accounts(&self, connection: ConnectionId) -> Result<Vec<Account>, StoreError> {
        self.count("accounts");
        self.inner.accounts(connection).await
    }

    async fn delete_account(&self, id: AccountId) -> Result<bool, StoreError> {
        self.count("delete_account");
        self.inner.delete_account(id).await
    }

    async fn set_account_status(
        &self,
        id: AccountId,
        status: &AccountStatus,
        last_used_at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        self.count("set_account_status");
        self.inner
            .set_account_status(id, status, last_used_at)
            .await
    }

    async fn touch_account(&self, id: AccountId, at: OffsetDateTime) -> Result<(), StoreError> {
        self.count("touch_account");
        self.inner.touch_account(id, at).await
    }

    async fn reset_account(&self, id: AccountId, reason: &str) -> Result<bool, StoreError> {
        self.count("reset_account");
        self.inner.reset_account(id, reason).await
    }

    async fn access_token(&self, key: &TokenKey) -> Result<Option<AccessToken>, StoreError> {
        self.count("access_token");
        self.inner.access_token(key).await
    }

    async fn save_tokens(
        &self,
        key: &TokenKey,
        access: &AccessToken,
        refresh_token: Option<&Secret>,
    ) -> Result<(), StoreError> {
        self.count("save_tokens");
        self.inner.save_tokens(key, access, refresh_token).await
    }

    async fn begin_refresh(
        &self,
        account: AccountId,
        key: &TokenKey,
    ) -> Result<Option<RefreshTurn>, StoreError> {
        self.count("begin_refresh");
        self.inner.begin_refresh(account, key).await
    }

    async fn commit_refresh(
        &self,
        turn: RefreshTurn,
        key: &TokenKey,
        access: &AccessToken,
        refresh_token: Option<&Secret>,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.count("commit_refresh");
        self.inner
            .commit_refresh(turn, key, access, refresh_token, at)
            .await
    }

    async fn put_pending_login(
        &self,
        login: &PendingLoginRow,
        caps: PendingCaps,
        expired_before: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.count("put_pending_login");
        self.inner
            .put_pending_login(login, caps, expired_before)
            .await
    }

    async fn put_login_status(
        &self,
        login: &LoginStatusRow,
        cap: usize,
        expired_before: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.count("put_login_status");
        self.inner
            .put_login_status(login, cap, expired_before)
            .await
    }

    async fn set_login_outcome(
        &self,
        login_id: &str,
        outcome: &LoginOutcome,
    ) -> Result<bool, StoreError> {
        self.count("set_login_outcome");
        self.inner.set_login_outcome(login_id, outcome).await
    }

    async fn login_status(&self, login_id: &str) -> Result<Option<LoginStatusRow>, StoreError> {
        self.count("login_status");
        self.inner.login_status(login_id).await
    }

    async fn take_pending_login(&self, state: &str) -> Result<Option<PendingLoginRow>, StoreError> {
        self.count("take_pending_login");
        self.inner.take_pending_login(state).await
    }

    async fn purge_pending_logins(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.count("purge_pending_logins");
        self.inner.purge_pending_logins(before).await
    }

    async fn pending_logins(&self) -> Result<u64, StoreError> {
        self.count("pending_logins");
        self.inner.pending_logins().await
    }

    async fn delete_access_tokens(
        &self,
        connection: ConnectionId,
        account: Option<AccountId>,
    ) -> Result<(), StoreError> {
        self.count("delete_access_tokens");
        self.inner.delete_access_tokens(connection, account).await
    }

    async fn insert_static_user(&self, user: &StaticUser) -> Result<(), StoreError> {
        self.count("insert_static_user");
        self.inner.insert_static_user(user).await
    }

    async fn static_users(&self, connection: ConnectionId) -> Result<Vec<StaticUser>, StoreError> {
        self.count("static_users");
        self.inner.static_users(connection).await
    }

    async fn delete_static_user(&self, id: StaticUserId) -> Result<bool, StoreError> {
        self.count("delete_static_user");
        self.inner.delete_static_user(id).await
    }

    async fn insert_api_key(&self, key: &ApiKey, hash: &[u8; 32]) -> Result<(), StoreError> {
        self.count("insert_api_key");
        self.inner.insert_api_key(key, hash).await
    }

    async fn api_key_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        self.count("api_key_by_hash");
        self.inner.api_key_by_hash(hash).await
    }

    async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.count("api_keys");
        self.inner.api_keys().await
    }

    async fn touch_api_key(&self, id: ApiKeyId, at: OffsetDateTime) -> Result<(), StoreError> {
        self.count("touch_api_key");
        self.inner.touch_api_key(id, at).await
    }

    async fn revoke_api_key(&self, id: ApiKeyId, at: OffsetDateTime) -> Result<bool, StoreError> {
        self.count("revoke_api_key");
        self.inner.revoke_api_key(id, at).await
    }

    async fn admin_password_hash(&self) -> Result<Option<String>, StoreError> {
        self.count("admin_password_hash");
        self.inner.admin_password_hash().await
    }

    async fn set_admin_password_hash(
        &self,
        hash: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.count("set_admin_password_hash");
        self.inner.set_admin_password_hash(hash, at).await
    }

    async fn insert_bridge_user(&self, user: &BridgeUser, hash: &str) -> Result<(), StoreError> {
        self.count("insert_bridge_user");
        self.inner.insert_bridge_user(user, hash).await
    }

    async fn bridge_user(
        &self,
        username: &str,
    ) -> Result<Option<(BridgeUser, String)>, StoreError> {
        self.count("bridge_user");
        self.inner.bridge_user(username).await
    }

    async fn bridge_users(&self) -> Result<Vec<BridgeUser>, StoreError> {
        self.count("bridge_users");
        self.inner.bridge_users().await
    }

    async fn delete_bridge_user(&self, username: &str) -> Result<bool, StoreError> {
        self.count("delete_bridge_user");
        self.inner.delete_bridge_user(username).await
    }

    async fn change_feed(&self) -> Result<Option<Box<dyn super::changes::ChangeFeed>>, StoreError> {
        self.count("change_feed");
        self.inner.change_feed().await
    }

    fn shares_auth_failures(&self) -> bool {
        self.inner.shares_auth_failures()
    }

    async fn record_auth_failure(
        &self,
        key: &str,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<u32, StoreError> {
        self.count("record_auth_failure");
        self.inner.record_auth_failure(key, now_ms, window_ms).await
    }

    async fn auth_failures(
        &self,
        key: &str,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<u32, StoreError> {
        self.count("auth_failures");
        self.inner.auth_failures(key, now_ms, window_ms).await
    }

    async fn clear_auth_failures(&self, key: &str) -> Result<(), StoreError> {
        self.count("clear_auth_failures");
        self.inner.clear_auth_failures(key).await
    }

    async fn table_names(&self) -> Result<Vec<String>, StoreError> {
        self.count("table_names");
        self.inner.table_names().await
    }

    async fn read_tables(
        &self,
        tables: &[super::copy::TableSpec],
    ) -> Result<Vec<Vec<super::copy::Row>>, StoreError> {
        self.count("read_tables");
        self.inner.read_tables(tables).await
    }

    async fn write_tables(
        &self,
        plan: super::copy::WritePlan<'_>,
        rows: &[Vec<super::copy::Row>],
    ) -> Result<(), StoreError> {
        self.count("write_tables");
        self.inner.write_tables(plan, rows).await
    }
}
