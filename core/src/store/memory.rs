//! [`MemoryStore`]: a [`Store`] held in the process's memory and gone when it ends. It keeps
//! the same contract as the database backends (the conformance suite runs over all three):
//! names unique without regard to case, conflicts change nothing, deletes cascade.
//!
//! Nothing here is written anywhere, so nothing is sealed; secrets stay [`Secret`]s.

mod notify;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{
    LocalLocks, LoginOutcome, LoginStatusRow, PendingCaps, PendingLoginRow, RefreshTurn, Store,
    StoreError, TurnHold,
};
use crate::apikeys::{ApiKey, ApiKeyId};
use crate::model::{
    AccessToken, Account, AccountId, AccountStatus, BridgeUser, Connection, ConnectionId,
    ConnectionName, Principal, StaticUser, StaticUserId, TokenKey,
};
use crate::secret::Secret;

#[derive(Debug, Default)]
struct State {
    connections: BTreeMap<ConnectionId, Connection>,
    accounts: BTreeMap<AccountId, (Account, Option<Secret>)>,
    tokens: BTreeMap<(ConnectionId, Option<AccountId>, &'static str), AccessToken>,
    static_users: BTreeMap<StaticUserId, StaticUser>,
    api_keys: Vec<(ApiKey, [u8; 32])>,
    admin: Option<String>,
    bridge_users: BTreeMap<String, (BridgeUser, String)>,
    /// Pending sign-ins by state, with their order of arrival.
    pending: BTreeMap<String, (u64, PendingLoginRow)>,
    next_pending: u64,
    /// Sign-in statuses by login ID, with their order of arrival.
    login_status: BTreeMap<String, (u64, LoginStatusRow)>,
    next_login_status: u64,
    /// Watches, the journal, webhooks and dead letters ([`crate::notify::NotifyStore`]).
    notify: notify::NotifyState,
}

impl State {
    /// Removes the oldest pending sign-ins that `matches` until at most `keep` are left.
    fn evict_oldest(&mut self, keep: usize, matches: impl Fn(&PendingLoginRow) -> bool) {
        let mut group: Vec<(u64, String)> = self
            .pending
            .iter()
            .filter(|(_, (_, p))| matches(p))
            .map(|(k, (n, _))| (*n, k.clone()))
            .collect();
        if group.len() <= keep {
            return;
        }
        group.sort_unstable();
        let excess = group.len() - keep;
        for (_, state) in group.into_iter().take(excess) {
            self.pending.remove(&state);
        }
    }
}

impl State {
    fn connection_named(&self, name: &ConnectionName) -> Option<&Connection> {
        let folded = name.folded();
        self.connections
            .values()
            .find(|c| c.name.folded() == folded)
    }
}

/// The in-memory store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    refreshing: LocalLocks,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn token_key(key: &TokenKey) -> (ConnectionId, Option<AccountId>, &'static str) {
    (key.connection, key.account, key.resource.as_str())
}

#[async_trait]
impl Store for MemoryStore {
    fn notifications(&self) -> Option<&dyn crate::notify::NotifyStore> {
        Some(self)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn insert_connection(&self, c: &Connection) -> Result<(), StoreError> {
        let mut s = self.state();
        if s.connection_named(&c.name).is_some() || s.connections.contains_key(&c.id) {
            return Err(StoreError::Conflict(format!(
                "a connection named `{}`",
                c.name
            )));
        }
        s.connections.insert(c.id, c.clone());
        Ok(())
    }

    async fn update_connection(&self, c: &Connection) -> Result<bool, StoreError> {
        let mut s = self.state();
        if !s.connections.contains_key(&c.id) {
            return Ok(false);
        }
        if s.connection_named(&c.name)
            .is_some_and(|other| other.id != c.id)
        {
            return Err(StoreError::Conflict(format!(
                "a connection named `{}`",
                c.name
            )));
        }
        let Some(stored) = s.connections.get_mut(&c.id) else {
            return Ok(false);
        };
        // As in the databases: the creation time stays the row's own.
        let created_at = stored.created_at;
        *stored = Connection {
            created_at,
            ..c.clone()
        };
        Ok(true)
    }

    async fn connection(&self, name: &ConnectionName) -> Result<Option<Connection>, StoreError> {
        Ok(self.state().connection_named(name).cloned())
    }

    async fn connection_by_id(&self, id: ConnectionId) -> Result<Option<Connection>, StoreError> {
        Ok(self.state().connections.get(&id).cloned())
    }

    async fn connections(&self) -> Result<Vec<Connection>, StoreError> {
        let mut all: Vec<Connection> = self.state().connections.values().cloned().collect();
        all.sort_by_key(|c| c.name.folded());
        Ok(all)
    }

    async fn delete_connection(&self, name: &ConnectionName) -> Result<bool, StoreError> {
        let mut s = self.state();
        let Some(id) = s.connection_named(name).map(|c| c.id) else {
            return Ok(false);
        };
        s.tokens.retain(|(c, _, _), _| *c != id);
        s.accounts.retain(|_, (a, _)| a.connection != id);
        s.static_users.retain(|_, u| u.connection != id);
        s.bridge_users.retain(|_, (u, _)| u.connection != id);
        s.pending.retain(|_, (_, p)| p.connection != id);
        s.login_status.retain(|_, (_, l)| l.connection != id);
        s.notify.forget_connection(id);
        s.connections.remove(&id);
        Ok(true)
    }

    async fn put_account(
        &self,
        a: &Account,
        refresh_token: Option<&Secret>,
    ) -> Result<(), StoreError> {
        let mut s = self.state();
        if s.accounts.values().any(|(other, _)| {
            other.id != a.id && other.connection == a.connection && other.principal == a.principal
        }) {
            return Err(StoreError::Conflict(format!(
                "an account for principal `{}` on this connection",
                a.principal
            )));
        }
        let refresh_token = refresh_token.cloned();
        match s.accounts.get_mut(&a.id) {
            // As in the databases: an update keeps the row's connection, principal and creation.
            Some((stored, rt)) => {
                stored.mailbox = a.mailbox.clone();
                stored.credential = a.credential;
                stored.status = a.status.clone();
                stored.last_used_at = a.last_used_at;
                *rt = refresh_token;
            }
            None => {
                s.accounts.insert(a.id, (a.clone(), refresh_token));
            }
        }
        Ok(())
    }

    async fn account(
        &self,
        connection: ConnectionId,
        principal: &Principal,
    ) -> Result<Option<Account>, StoreError> {
        Ok(self
            .state()
            .accounts
            .values()
            .find(|(a, _)| a.connection == connection && &a.principal == principal)
            .map(|(a, _)| a.clone()))
    }

    async fn account_refresh_token(&self, id: AccountId) -> Result<Option<Secret>, StoreError> {
        Ok(self
            .state()
            .accounts
            .get(&id)
            .and_then(|(_, rt)| rt.clone()))
    }

    async fn accounts(&self, connection: ConnectionId) -> Result<Vec<Account>, StoreError> {
        let mut all: Vec<Account> = self
            .state()
            .accounts
            .values()
            .filter(|(a, _)| a.connection == connection)
            .map(|(a, _)| a.clone())
            .collect();
        all.sort_by(|a, b| a.principal.as_str().cmp(b.principal.as_str()));
        Ok(all)
    }

    async fn delete_account(&self, id: AccountId) -> Result<bool, StoreError> {
        let mut s = self.state();
        s.tokens.retain(|(_, a, _), _| *a != Some(id));
        Ok(s.accounts.remove(&id).is_some())
    }

    async fn set_account_status(
        &self,
        id: AccountId,
        status: &AccountStatus,
        last_used_at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        let mut s = self.state();
        let Some((a, _)) = s.accounts.get_mut(&id) else {
            return Ok(false);
        };
        a.status = status.clone();
        if last_used_at.is_some() {
            a.last_used_at = last_used_at;
        }
        Ok(true)
    }

    async fn touch_account(&self, id: AccountId, at: OffsetDateTime) -> Result<(), StoreError> {
        if let Some((a, _)) = self.state().accounts.get_mut(&id) {
            a.last_used_at = Some(at);
        }
        Ok(())
    }

    async fn reset_account(&self, id: AccountId, reason: &str) -> Result<bool, StoreError> {
        let mut s = self.state();
        s.tokens.retain(|(_, a, _), _| *a != Some(id));
        let Some((a, rt)) = s.accounts.get_mut(&id) else {
            return Ok(false);
        };
        *rt = None;
        a.status = AccountStatus::NeedsSignIn {
            reason: reason.to_owned(),
        };
        Ok(true)
    }

    async fn access_token(&self, key: &TokenKey) -> Result<Option<AccessToken>, StoreError> {
        Ok(self.state().tokens.get(&token_key(key)).cloned())
    }

    async fn save_tokens(
        &self,
        key: &TokenKey,
        access: &AccessToken,
        refresh_token: Option<&Secret>,
    ) -> Result<(), StoreError> {
        let mut s = self.state();
        if let (Some(account), Some(new)) = (key.account, refresh_token)
            && let Some((_, rt)) = s.accounts.get_mut(&account)
        {
            *rt = Some(new.clone());
        }
        s.tokens.insert(token_key(key), access.clone());
        Ok(())
    }

    async fn begin_refresh(
        &self,
        account: AccountId,
        key: &TokenKey,
    ) -> Result<Option<RefreshTurn>, StoreError> {
        let guard = self.refreshing.lock(account).await;
        let s = self.state();
        let Some((a, rt)) = s.accounts.get(&account) else {
            return Ok(None);
        };
        Ok(Some(RefreshTurn {
            refresh_token: rt.clone(),
            access_token: s.tokens.get(&token_key(key)).cloned(),
            status: a.status.clone(),
            hold: TurnHold::Local {
                _guard: guard,
                sealed: None,
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
        let mut s = self.state();
        if let Some((a, rt)) = key.account.and_then(|id| s.accounts.get_mut(&id)) {
            if let Some(new) = refresh_token
                && *rt == turn.refresh_token
            {
                *rt = Some(new.clone());
            }
            a.status = AccountStatus::Active;
            a.last_used_at = Some(at);
        }
        s.tokens.insert(token_key(key), access.clone());
        drop(turn);
        Ok(())
    }

    async fn put_pending_login(
        &self,
        login: &PendingLoginRow,
        caps: PendingCaps,
        expired_before: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut s = self.state();
        s.pending.retain(|_, (_, p)| p.started_at >= expired_before);
        s.pending.remove(&login.state);
        s.evict_oldest(caps.per_principal.saturating_sub(1), |p| {
            p.connection == login.connection && p.principal == login.principal
        });
        s.evict_oldest(caps.per_connection.saturating_sub(1), |p| {
            p.connection == login.connection
        });
        s.evict_oldest(caps.total.saturating_sub(1), |_| true);
        let n = s.next_pending;
        s.next_pending += 1;
        s.pending.insert(login.state.clone(), (n, login.clone()));
        Ok(())
    }

    async fn take_pending_login(&self, state: &str) -> Result<Option<PendingLoginRow>, StoreError> {
        Ok(self.state().pending.remove(state).map(|(_, p)| p))
    }

    async fn purge_pending_logins(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut s = self.state();
        let n = s.pending.len();
        s.pending.retain(|_, (_, p)| p.started_at >= before);
        Ok((n - s.pending.len()) as u64)
    }

    async fn pending_logins(&self) -> Result<u64, StoreError> {
        Ok(self.state().pending.len() as u64)
    }

    async fn put_login_status(
        &self,
        login: &LoginStatusRow,
        cap: usize,
        expired_before: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut s = self.state();
        s.login_status
            .retain(|_, (_, l)| l.started_at >= expired_before);
        s.login_status.remove(&login.login_id);
        let keep = cap.saturating_sub(1);
        if s.login_status.len() > keep {
            let mut order: Vec<(u64, String)> = s
                .login_status
                .iter()
                .map(|(k, (n, _))| (*n, k.clone()))
                .collect();
            order.sort_unstable();
            let excess = order.len() - keep;
            for (_, id) in order.into_iter().take(excess) {
                s.login_status.remove(&id);
            }
        }
        let n = s.next_login_status;
        s.next_login_status += 1;
        s.login_status
            .insert(login.login_id.clone(), (n, login.clone()));
        Ok(())
    }

    async fn set_login_outcome(
        &self,
        login_id: &str,
        outcome: &LoginOutcome,
    ) -> Result<bool, StoreError> {
        Ok(match self.state().login_status.get_mut(login_id) {
            Some((_, l)) => {
                l.outcome = outcome.clone();
                true
            }
            None => false,
        })
    }

    async fn login_status(&self, login_id: &str) -> Result<Option<LoginStatusRow>, StoreError> {
        Ok(self
            .state()
            .login_status
            .get(login_id)
            .map(|(_, l)| l.clone()))
    }

    async fn delete_access_tokens(
        &self,
        connection: ConnectionId,
        account: Option<AccountId>,
    ) -> Result<(), StoreError> {
        self.state()
            .tokens
            .retain(|(c, a, _), _| !(*c == connection && (account.is_none() || *a == account)));
        Ok(())
    }

    async fn insert_static_user(&self, u: &StaticUser) -> Result<(), StoreError> {
        let mut s = self.state();
        if s.static_users.contains_key(&u.id)
            || s.static_users
                .values()
                .any(|o| o.connection == u.connection && o.principal == u.principal)
        {
            return Err(StoreError::Conflict(format!(
                "a static user for principal `{}` on this connection",
                u.principal
            )));
        }
        s.static_users.insert(u.id, u.clone());
        Ok(())
    }

    async fn static_users(&self, connection: ConnectionId) -> Result<Vec<StaticUser>, StoreError> {
        let mut all: Vec<StaticUser> = self
            .state()
            .static_users
            .values()
            .filter(|u| u.connection == connection)
            .cloned()
            .collect();
        all.sort_by(|a, b| a.principal.as_str().cmp(b.principal.as_str()));
        Ok(all)
    }

    async fn delete_static_user(&self, id: StaticUserId) -> Result<bool, StoreError> {
        Ok(self.state().static_users.remove(&id).is_some())
    }

    async fn insert_api_key(&self, key: &ApiKey, hash: &[u8; 32]) -> Result<(), StoreError> {
        let mut s = self.state();
        if s.api_keys.iter().any(|(_, h)| h == hash) {
            return Err(StoreError::Conflict("an API key with this value".into()));
        }
        if s.api_keys.iter().any(|(k, _)| k.id == key.id) {
            return Err(StoreError::Conflict(format!("an API key {}", key.id)));
        }
        let stored = ApiKey {
            last_used_at: None,
            revoked_at: None,
            ..key.clone()
        };
        s.api_keys.push((stored, *hash));
        Ok(())
    }

    async fn api_key_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        Ok(self
            .state()
            .api_keys
            .iter()
            .find(|(_, h)| h == hash)
            .map(|(k, _)| k.clone()))
    }

    async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let mut all: Vec<ApiKey> = self
            .state()
            .api_keys
            .iter()
            .map(|(k, _)| k.clone())
            .collect();
        all.sort_by_key(|k| k.created_at);
        Ok(all)
    }

    async fn touch_api_key(&self, id: ApiKeyId, at: OffsetDateTime) -> Result<(), StoreError> {
        if let Some((k, _)) = self.state().api_keys.iter_mut().find(|(k, _)| k.id == id) {
            k.last_used_at = Some(at);
        }
        Ok(())
    }

    async fn revoke_api_key(&self, id: ApiKeyId, at: OffsetDateTime) -> Result<bool, StoreError> {
        let mut s = self.state();
        match s
            .api_keys
            .iter_mut()
            .find(|(k, _)| k.id == id && k.revoked_at.is_none())
        {
            Some((k, _)) => {
                k.revoked_at = Some(at);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn admin_password_hash(&self) -> Result<Option<String>, StoreError> {
        Ok(self.state().admin.clone())
    }

    async fn set_admin_password_hash(
        &self,
        hash: &str,
        _at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.state().admin = Some(hash.to_owned());
        Ok(())
    }

    async fn insert_bridge_user(&self, u: &BridgeUser, hash: &str) -> Result<(), StoreError> {
        let mut s = self.state();
        let username = u.username.as_str().to_owned();
        if s.bridge_users.contains_key(&username) {
            return Err(StoreError::Conflict(format!(
                "a bridge user `{}`",
                u.username
            )));
        }
        s.bridge_users
            .insert(username, (u.clone(), hash.to_owned()));
        Ok(())
    }

    async fn bridge_user(
        &self,
        username: &str,
    ) -> Result<Option<(BridgeUser, String)>, StoreError> {
        Ok(self.state().bridge_users.get(username).cloned())
    }

    async fn bridge_users(&self) -> Result<Vec<BridgeUser>, StoreError> {
        // A BTreeMap by user name: already in order.
        Ok(self
            .state()
            .bridge_users
            .values()
            .map(|(u, _)| u.clone())
            .collect())
    }

    async fn delete_bridge_user(&self, username: &str) -> Result<bool, StoreError> {
        Ok(self.state().bridge_users.remove(username).is_some())
    }
}
