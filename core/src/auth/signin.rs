//! Sign-in as a service: starts and finishes each flow, links the signed-in mailbox as an account,
//! and hands out access tokens through the [`TokenCache`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use super::AuthError;
use super::cache::{Refresh, RetryPolicy, TokenCache, TokenSource};
use super::idtoken::KeyCache;
use super::loopback::RedirectParams;
use super::oauth::{AuthorizationRequest, DeviceAuthorization, OAuthClient, TokenResponse};
use super::pending::{PendingLogin, PendingLogins};
use crate::Error;
use crate::clock::Clock;
use crate::config::NetworkSettings;
use crate::connections::Connections;
use crate::model::{
    AccessToken, Account, AccountId, AccountStatus, Auth, Backend, Connection, ConnectionId,
    CredentialKind, DelegatedAuth, EmailAddress, InvalidInput, Principal, Resource, Target,
    TokenKey,
};
use crate::secret::Secret;
use crate::store::Store;
use crate::ttl::{TTL, TtlCache};

/// An account's last use is recorded to the minute.
const LAST_USE_GRANULARITY: time::Duration = time::Duration::minutes(1);

/// Shown whenever the password flow is used.
pub const PASSWORD_FLOW_WARNING: &str = "the password flow is legacy: it fails for accounts with multi-factor \
authentication or Conditional Access, and Microsoft may turn it off; prefer browser or device-code sign-in";

/// The resource a connection's mailbox calls go to.
pub fn primary_resource(connection: &Connection) -> Resource {
    match (&connection.settings.target, connection.settings.backend) {
        (Target::Server { .. }, _) | (_, Backend::Ews) => Resource::Ews,
        (Target::Online { .. }, Backend::Auto | Backend::Graph) => Resource::Graph,
        (Target::Online { .. }, Backend::Imap) => Resource::Imap,
        (Target::Online { .. }, Backend::Pop) => Resource::Pop,
    }
}

/// The resource's identifier for this connection: Microsoft's for Exchange Online in its cloud,
/// the EWS host for Exchange Server (hybrid modern auth).
pub fn resource_identifier(connection: &Connection, resource: Resource) -> String {
    match &connection.settings.target {
        Target::Online { cloud, .. } => resource.identifier(*cloud).to_owned(),
        Target::Server { ews_url, .. } => {
            let url = ews_url.as_url();
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{port}",
                url.scheme(),
                url.host_str().unwrap_or_default()
            )
        }
    }
}

/// The scopes of a delegated request for `resource`; the connection's own scopes apply to its
/// primary resource.
pub fn delegated_scopes(connection: &Connection, resource: Resource) -> Vec<String> {
    let custom: &[String] = match &connection.settings.auth {
        Auth::OAuth2Delegated(d) if resource == primary_resource(connection) => &d.scopes,
        _ => &[],
    };
    resource.delegated_scopes(&resource_identifier(connection, resource), custom)
}

fn is_app_only(connection: &Connection) -> bool {
    matches!(connection.settings.auth, Auth::OAuth2AppOnly(_))
}

/// A session-only account: it and its refresh token live in this process only.
#[derive(Debug, Clone)]
struct SessionAccount {
    account: Account,
    refresh_token: Option<Secret>,
}

#[derive(Debug)]
struct Shared {
    store: Arc<dyn Store>,
    connections: Arc<Connections>,
    network: NetworkSettings,
    /// The client of identity providers, built on first use: a token answered from memory or
    /// the store (`exgate token`) builds none.
    http: std::sync::OnceLock<reqwest::Client>,
    clock: Arc<dyn Clock>,
    /// The identity providers' signing keys, for ID token validation.
    keys: Arc<KeyCache>,
    /// Session-only accounts by ID; never written to the store.
    sessions: Mutex<HashMap<AccountId, SessionAccount>>,
    /// Stored accounts as the token path reads them, cached like connections and API keys
    /// (see [`crate::ttl`]): by (connection, principal), and each connection's only stored
    /// account (`None`: it has none) for callers that name no account. A change made through
    /// this process forgets the entries at once; another process's within the TTL.
    accounts: TtlCache<(ConnectionId, Principal), Arc<Account>>,
    only_account: TtlCache<ConnectionId, Option<Arc<Account>>>,
    /// When this process last recorded each account's use, so that it is written at most once
    /// a minute however many requests arrive together.
    touched: Mutex<Touched>,
}

/// The last recorded use per account, swept of entries older than a minute once doubled.
#[derive(Debug)]
struct Touched {
    at: HashMap<AccountId, time::OffsetDateTime>,
    sweep_at: usize,
}

/// Entries of [`Touched`] kept before the first sweep.
const TOUCHED_FLOOR: usize = 1024;

impl Shared {
    fn http(&self) -> Result<reqwest::Client, Error> {
        if let Some(client) = self.http.get() {
            return Ok(client.clone());
        }
        let client = crate::net::http_client(&self.network)
            .map_err(|e| Error::Auth(AuthError::Unsupported(e.to_string())))?;
        Ok(self.http.get_or_init(|| client).clone())
    }

    async fn client(&self, connection: &Connection) -> Result<OAuthClient, Error> {
        Ok(OAuthClient::for_connection(
            &connection.settings,
            &self.network,
            self.http()?,
            Arc::clone(&self.clock),
        )
        .await?
        .with_keys(Arc::clone(&self.keys)))
    }

    fn access_token(&self, response: &TokenResponse) -> AccessToken {
        let now = self.clock.now();
        let (expires_at, refresh_at) =
            AccessToken::timing(now, response.expires_in, response.refresh_in);
        AccessToken {
            secret: response.access_token.clone(),
            expires_at,
            refresh_at,
        }
    }

    fn session(&self, id: AccountId) -> Option<SessionAccount> {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    fn session_by_principal(
        &self,
        connection: &Connection,
        principal: &Principal,
    ) -> Option<Account> {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .find(|s| s.account.connection == connection.id && &s.account.principal == principal)
            .map(|s| s.account.clone())
    }

    fn sessions_of(&self, connection: &Connection) -> Vec<Account> {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|s| s.account.connection == connection.id)
            .map(|s| s.account.clone())
            .collect()
    }

    fn update_session(&self, id: AccountId, change: impl FnOnce(&mut SessionAccount)) {
        if let Some(s) = self
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&id)
        {
            change(s);
        }
    }

    /// Forgets the cached entries of a stored account that this process changed.
    fn forget_account(&self, connection: ConnectionId, principal: &Principal) {
        self.accounts.remove(&(connection, principal.clone()));
        self.only_account.remove(&connection);
    }

    /// Whether the caller is the one to record the account's use at `now` (nobody in this
    /// process did within the minute); if so, it is noted as done.
    fn claim_use(&self, id: AccountId, now: time::OffsetDateTime) -> bool {
        let mut touched = self.touched.lock().unwrap_or_else(PoisonError::into_inner);
        if touched
            .at
            .get(&id)
            .is_some_and(|t| now - *t < LAST_USE_GRANULARITY)
        {
            return false;
        }
        if touched.at.len() >= touched.sweep_at {
            touched.at.retain(|_, t| now - *t < LAST_USE_GRANULARITY);
            touched.sweep_at = (touched.at.len() * 2).max(TOUCHED_FLOOR);
        }
        touched.at.insert(id, now);
        true
    }

    async fn refresh_token_of(&self, account: &Account) -> Result<Option<Secret>, Error> {
        match self.session(account.id) {
            Some(s) => Ok(s.refresh_token),
            None => Ok(self.store.account_refresh_token(account.id).await?),
        }
    }

    async fn account_by_id(
        &self,
        connection: &Connection,
        id: AccountId,
    ) -> Result<Account, Error> {
        if let Some(s) = self.session(id) {
            return Ok(s.account);
        }
        self.store
            .accounts(connection.id)
            .await?
            .into_iter()
            .find(|a| a.id == id)
            .ok_or_else(|| Error::NotFound {
                what: "account",
                name: id.to_string(),
            })
    }

    /// Refreshes a delegated token. A refusal that only a new sign-in clears marks the account;
    /// if the refresh token changed meanwhile (another process rotated it), that one is tried first.
    async fn refresh_delegated(
        &self,
        connection: &Connection,
        key: &TokenKey,
        account: AccountId,
    ) -> Result<AccessToken, Error> {
        let account = self.account_by_id(connection, account).await?;
        if let AccountStatus::NeedsSignIn { reason } = &account.status {
            return Err(Error::NeedsSignIn {
                principal: account.principal.to_string(),
                reason: reason.clone(),
            });
        }
        if account.credential == CredentialKind::Session {
            return self.refresh_session(connection, key, &account).await;
        }
        let client = self.client(connection).await?;
        let scopes = delegated_scopes(connection, key.resource);
        let mut tried: Option<Secret> = None;
        loop {
            // The account's turn, across every gateway sharing the store: whoever held it before
            // stored its tokens, and a waiter uses them instead of refreshing again.
            let turn = self
                .store
                .begin_refresh(account.id, key)
                .await?
                .ok_or_else(|| Error::NotFound {
                    what: "account",
                    name: account.principal.to_string(),
                })?;
            if let AccountStatus::NeedsSignIn { reason } = &turn.status {
                return Err(Error::NeedsSignIn {
                    principal: account.principal.to_string(),
                    reason: reason.clone(),
                });
            }
            let now = self.clock.now();
            if let Some(token) = turn.access_token.as_ref().filter(|t| t.is_fresh(now)) {
                return Ok(token.clone());
            }
            let Some(refresh_token) = turn.refresh_token.clone() else {
                drop(turn);
                return Err(self
                    .mark_needs_sign_in(&account, "no refresh token is stored; sign in again")
                    .await);
            };
            if tried.as_ref() == Some(&refresh_token) {
                return Err(Error::NeedsSignIn {
                    principal: account.principal.to_string(),
                    reason: "the refresh token was refused".into(),
                });
            }
            match client.refresh(&refresh_token, &scopes).await {
                Ok(response) => {
                    let token = self.access_token(&response);
                    // Committed (the rotated refresh token with it) before the token is handed out.
                    self.store
                        .commit_refresh(
                            turn,
                            key,
                            &token,
                            response.refresh_token.as_ref(),
                            self.clock.now(),
                        )
                        .await?;
                    return Ok(token);
                }
                Err(e) if e.needs_sign_in() => {
                    drop(turn);
                    let latest = self.refresh_token_of(&account).await?;
                    if latest.as_ref().is_some_and(|l| l != &refresh_token) {
                        tried = Some(refresh_token);
                        continue;
                    }
                    let reason = e.to_string();
                    self.mark_needs_sign_in(&account, &reason).await;
                    return Err(Error::Auth(e));
                }
                Err(e) => return Err(Error::Auth(e)),
            }
        }
    }

    /// Refreshes a session-only account's token: it and its refresh token live in this process.
    async fn refresh_session(
        &self,
        connection: &Connection,
        key: &TokenKey,
        account: &Account,
    ) -> Result<AccessToken, Error> {
        let client = self.client(connection).await?;
        let scopes = delegated_scopes(connection, key.resource);
        let Some(refresh_token) = self.refresh_token_of(account).await? else {
            return Err(self
                .mark_needs_sign_in(account, "no refresh token is stored; sign in again")
                .await);
        };
        match client.refresh(&refresh_token, &scopes).await {
            Ok(response) => {
                let token = self.access_token(&response);
                let now = self.clock.now();
                self.update_session(account.id, |s| {
                    if let Some(rt) = response.refresh_token.clone() {
                        s.refresh_token = Some(rt);
                    }
                    s.account.status = AccountStatus::Active;
                    s.account.last_used_at = Some(now);
                });
                Ok(token)
            }
            Err(e) if e.needs_sign_in() => {
                let reason = e.to_string();
                self.mark_needs_sign_in(account, &reason).await;
                Err(Error::Auth(e))
            }
            Err(e) => Err(Error::Auth(e)),
        }
    }

    async fn mark_needs_sign_in(&self, account: &Account, reason: &str) -> Error {
        let status = AccountStatus::NeedsSignIn {
            reason: reason.to_owned(),
        };
        if account.credential == CredentialKind::Session {
            self.update_session(account.id, |s| {
                s.account.status = status.clone();
                s.refresh_token = None;
            });
            return Error::NeedsSignIn {
                principal: account.principal.to_string(),
                reason: reason.to_owned(),
            };
        }
        let written = self
            .store
            .set_account_status(account.id, &status, None)
            .await;
        self.forget_account(account.connection, &account.principal);
        if let Err(e) = written {
            return e.into();
        }
        if let Err(e) = self
            .store
            .delete_access_tokens(account.connection, Some(account.id))
            .await
        {
            return e.into();
        }
        tracing::warn!(principal = %account.principal, reason, "account needs sign-in");
        Error::NeedsSignIn {
            principal: account.principal.to_string(),
            reason: reason.to_owned(),
        }
    }
}

#[async_trait]
impl TokenSource for Shared {
    async fn stored(&self, key: &TokenKey) -> Result<Option<AccessToken>, Error> {
        if key.account.is_some_and(|a| self.session(a).is_some()) {
            return Ok(None);
        }
        Ok(self.store.access_token(key).await?)
    }

    async fn fetch(&self, key: &TokenKey) -> Result<AccessToken, Error> {
        let connection = self.connections.by_id(key.connection).await?;
        match key.account {
            Some(account) => self.refresh_delegated(&connection, key, account).await,
            None => {
                let client = self.client(&connection).await?;
                let scope =
                    Resource::app_only_scope(&resource_identifier(&connection, key.resource));
                let response = client.client_credentials(&scope).await?;
                let token = self.access_token(&response);
                self.store.save_tokens(key, &token, None).await?;
                Ok(token)
            }
        }
    }
}

/// A browser sign-in that was started: send the user to `url`.
#[derive(Debug)]
pub struct BrowserLogin {
    pub url: String,
    pub state: String,
}

/// A device code sign-in that was started: show `user_code` and `verification_uri`.
#[derive(Debug)]
pub struct DeviceLogin {
    pub connection: Connection,
    pub authorization: DeviceAuthorization,
    resource: Resource,
    /// Keep the account's tokens in memory only.
    pub session_only: bool,
}

/// How long the status of a sign-in an application started is kept (by login ID, in the store,
/// for `GET …/logins/{login_id}` on any gateway): well beyond the ten minutes a sign-in may take.
pub const LOGIN_STATUS_TTL: std::time::Duration = std::time::Duration::from_secs(3600);
/// The most sign-in statuses kept; beyond it the oldest is forgotten.
pub const LOGIN_STATUS_CAP: usize = 10_000;

/// Sign-in and tokens for every connection.
#[derive(Debug)]
pub struct SignIn {
    shared: Arc<Shared>,
    pending: PendingLogins,
    cache: Arc<TokenCache>,
}

impl SignIn {
    pub fn new(
        store: Arc<dyn Store>,
        connections: Arc<Connections>,
        network: NetworkSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Error> {
        crate::net::check(&network)
            .map_err(|e| Error::Auth(AuthError::Unsupported(e.to_string())))?;
        let shared = Arc::new(Shared {
            store,
            connections,
            network,
            http: std::sync::OnceLock::new(),
            clock: Arc::clone(&clock),
            keys: Arc::new(KeyCache::default()),
            sessions: Mutex::new(HashMap::new()),
            accounts: TtlCache::new(TTL),
            only_account: TtlCache::new(TTL),
            touched: Mutex::new(Touched {
                at: HashMap::new(),
                sweep_at: TOUCHED_FLOOR,
            }),
        });
        let cache = TokenCache::new(
            Arc::clone(&shared) as Arc<dyn TokenSource>,
            Arc::clone(&clock),
            RetryPolicy::default(),
        );
        Ok(Self {
            pending: PendingLogins::new(Arc::clone(&shared.store), clock),
            shared,
            cache,
        })
    }

    pub fn cache(&self) -> &Arc<TokenCache> {
        &self.cache
    }

    /// Drops what this process cached of stored accounts after another process changed one
    /// (`Some`) or any (`None`): the accounts as the token path reads them, and their access
    /// tokens.
    pub fn forget_cached_accounts(&self, account: Option<AccountId>) {
        self.shared.accounts.clear();
        self.shared.only_account.clear();
        self.cache.forget_accounts(account);
    }

    /// Remembers, in the store, that the sign-in `login_id` started on `connection` is pending,
    /// so that its status answers on every gateway sharing the store. Forgets expired statuses
    /// ([`LOGIN_STATUS_TTL`]) and, beyond [`LOGIN_STATUS_CAP`], the oldest.
    pub async fn record_login_started(
        &self,
        login_id: &str,
        connection: crate::model::ConnectionId,
    ) -> Result<(), Error> {
        let now = self.shared.clock.now();
        let row = crate::store::LoginStatusRow {
            login_id: login_id.to_owned(),
            connection,
            started_at: now,
            outcome: crate::store::LoginOutcome::Pending,
        };
        self.shared
            .store
            .put_login_status(&row, LOGIN_STATUS_CAP, now - LOGIN_STATUS_TTL)
            .await?;
        Ok(())
    }

    /// Records how the sign-in `login_id` ended (on whichever gateway took its callback). False
    /// if its status is no longer kept.
    pub async fn record_login_outcome(
        &self,
        login_id: &str,
        outcome: &crate::store::LoginOutcome,
    ) -> Result<bool, Error> {
        Ok(self
            .shared
            .store
            .set_login_outcome(login_id, outcome)
            .await?)
    }

    /// Where the sign-in `login_id` stands, if it was started on `connection` and has not
    /// expired. A login ID of another connection answers `None`, like an unknown one, so it
    /// tells nothing to a caller who may use only this connection.
    pub async fn login_status(
        &self,
        connection: crate::model::ConnectionId,
        login_id: &str,
    ) -> Result<Option<crate::store::LoginOutcome>, Error> {
        let expired_before = self.shared.clock.now() - LOGIN_STATUS_TTL;
        Ok(self
            .shared
            .store
            .login_status(login_id)
            .await?
            .filter(|l| l.connection == connection && l.started_at >= expired_before)
            .map(|l| l.outcome))
    }

    /// The clock sign-in runs on (client assertions, token lifetimes).
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.shared.clock)
    }

    /// How sign-in reaches identity providers.
    pub fn network(&self) -> NetworkSettings {
        self.shared.network.clone()
    }

    fn delegated(connection: &Connection) -> Result<&DelegatedAuth, Error> {
        match &connection.settings.auth {
            Auth::OAuth2Delegated(d) => Ok(d),
            other => Err(Error::Auth(AuthError::Unsupported(format!(
                "connection `{}` uses {}; users sign in only on oauth2-delegated connections",
                connection.name,
                other.kind()
            )))),
        }
    }

    /// Starts a browser sign-in that will return to `redirect_uri`.
    pub async fn start_browser_login(
        &self,
        connection: &str,
        principal: Option<Principal>,
        redirect_uri: &str,
        login_hint: Option<&str>,
    ) -> Result<BrowserLogin, Error> {
        self.start_browser(connection, principal, redirect_uri, login_hint, false, None)
            .await
    }

    /// [`SignIn::start_browser_login`] (or, `session_only`, [`SignIn::start_browser_session`])
    /// carrying `app_data`, which [`SignIn::finish_browser_login_with_app_data`] hands back to
    /// whichever process takes the callback. It is kept sealed with the sign-in.
    pub async fn start_browser_with_app_data(
        &self,
        connection: &str,
        principal: Principal,
        redirect_uri: &str,
        login_hint: Option<&str>,
        session_only: bool,
        app_data: Option<String>,
    ) -> Result<BrowserLogin, Error> {
        self.start_browser(
            connection,
            Some(principal),
            redirect_uri,
            login_hint,
            session_only,
            app_data,
        )
        .await
    }

    /// `url` if the connection's allow-list admits it as the place to send the user's browser
    /// after a sign-in an application started.
    pub async fn check_return_url(&self, connection: &str, url: &str) -> Result<url::Url, Error> {
        let connection = self.shared.connections.get(connection).await?.connection;
        Ok(Self::delegated(&connection)?.check_return_url(url)?)
    }

    /// Like [`SignIn::start_browser_login`], but the account's tokens stay in this process's
    /// memory and are never written to the store (gone when it stops).
    pub async fn start_browser_session(
        &self,
        connection: &str,
        principal: Principal,
        redirect_uri: &str,
        login_hint: Option<&str>,
    ) -> Result<BrowserLogin, Error> {
        self.start_browser(
            connection,
            Some(principal),
            redirect_uri,
            login_hint,
            true,
            None,
        )
        .await
    }

    async fn start_browser(
        &self,
        connection: &str,
        principal: Option<Principal>,
        redirect_uri: &str,
        login_hint: Option<&str>,
        session_only: bool,
        app_data: Option<String>,
    ) -> Result<BrowserLogin, Error> {
        let connection = self.shared.connections.get(connection).await?.connection;
        Self::delegated(&connection)?;
        let resource = primary_resource(&connection);
        let scopes = delegated_scopes(&connection, resource);
        let client = self.shared.client(&connection).await?;
        let AuthorizationRequest {
            url,
            state,
            verifier,
            redirect_uri,
            nonce,
        } = client.authorization_request(redirect_uri, &scopes, login_hint)?;
        self.pending
            .insert(
                state.clone(),
                PendingLogin {
                    connection: connection.id,
                    principal,
                    resource,
                    scopes,
                    redirect_uri,
                    session_only,
                    verifier,
                    nonce,
                    started_at: self.shared.clock.now(),
                    app_data,
                },
            )
            .await?;
        Ok(BrowserLogin {
            url: url.to_string(),
            state,
        })
    }

    /// Finishes a browser sign-in from what the redirect carried.
    pub async fn finish_browser_login(&self, params: RedirectParams) -> Result<Account, Error> {
        self.finish_browser_login_with_app_data(params).await.1
    }

    /// [`SignIn::finish_browser_login`], with the `app_data` the sign-in was started with (if
    /// its `state` was found, whether or not the sign-in then succeeded).
    pub async fn finish_browser_login_with_app_data(
        &self,
        params: RedirectParams,
    ) -> (Option<String>, Result<Account, Error>) {
        let state = match params.state.as_deref() {
            Some(state) => state.to_owned(),
            None => {
                return (
                    None,
                    Err(AuthError::Flow(
                        "the sign-in response carries no `state`; start the sign-in again".into(),
                    )
                    .into()),
                );
            }
        };
        let mut pending = match self.pending.take(&state).await {
            Ok(p) => p,
            Err(e) => return (None, Err(e)),
        };
        let app_data = pending.app_data.take();
        (app_data, self.finish_pending(pending, params).await)
    }

    async fn finish_pending(
        &self,
        pending: PendingLogin,
        params: RedirectParams,
    ) -> Result<Account, Error> {
        if let Some(error) = params.error {
            let description = params.error_description.unwrap_or_default();
            let body = super::error::ErrorBody {
                error,
                error_description: Some(description),
                ..super::error::ErrorBody::default()
            };
            return Err(Error::Auth(AuthError::Refused {
                during: "sign-in",
                status: 400,
                body: Box::new(body),
                retry_after: None,
            }));
        }
        let code = params
            .code
            .ok_or_else(|| AuthError::Flow("the sign-in response carries no code".into()))?;
        let connection = self.shared.connections.by_id(pending.connection).await?;
        let client = self.shared.client(&connection).await?;
        let response = client
            .exchange_code(
                &code,
                pending.verifier,
                &pending.redirect_uri,
                &pending.scopes,
                &pending.nonce,
            )
            .await?;
        self.link(
            &connection,
            pending.principal,
            pending.resource,
            response,
            pending.session_only,
        )
        .await
    }

    /// Starts a device code sign-in.
    pub async fn start_device_login(&self, connection: &str) -> Result<DeviceLogin, Error> {
        let connection = self.shared.connections.get(connection).await?.connection;
        Self::delegated(&connection)?;
        let resource = primary_resource(&connection);
        let scopes = delegated_scopes(&connection, resource);
        let client = self.shared.client(&connection).await?;
        let authorization = client.device_authorization(&scopes).await?;
        Ok(DeviceLogin {
            connection,
            authorization,
            resource,
            session_only: false,
        })
    }

    /// Like [`SignIn::start_device_login`], for a session-only account.
    pub async fn start_device_session(&self, connection: &str) -> Result<DeviceLogin, Error> {
        let mut login = self.start_device_login(connection).await?;
        login.session_only = true;
        Ok(login)
    }

    /// Waits for the user to finish a device code sign-in, then links the account.
    pub async fn finish_device_login(
        &self,
        login: DeviceLogin,
        principal: Option<Principal>,
    ) -> Result<Account, Error> {
        let client = self.shared.client(&login.connection).await?;
        let response = client.poll_device(&login.authorization).await?;
        self.link(
            &login.connection,
            principal,
            login.resource,
            response,
            login.session_only,
        )
        .await
    }

    /// Signs in with a user name and password (resource-owner password credentials).
    pub async fn password_login(
        &self,
        connection: &str,
        principal: Option<Principal>,
        username: &str,
        password: &Secret,
    ) -> Result<Account, Error> {
        let connection = self.shared.connections.get(connection).await?.connection;
        Self::delegated(&connection)?;
        // The frontend shows PASSWORD_FLOW_WARNING to the person signing in; a log line at
        // warn would print it a second time on the CLI's stderr.
        tracing::info!(connection = %connection.name, "password sign-in (legacy flow)");
        let resource = primary_resource(&connection);
        let scopes = delegated_scopes(&connection, resource);
        let client = self.shared.client(&connection).await?;
        let response = client.password(username, password, &scopes).await?;
        self.link(&connection, principal, resource, response, false)
            .await
    }

    /// Stores the account that signed in, its refresh token and its first access token; a
    /// session-only account is kept in memory instead.
    async fn link(
        &self,
        connection: &Connection,
        principal: Option<Principal>,
        resource: Resource,
        response: TokenResponse,
        session_only: bool,
    ) -> Result<Account, Error> {
        let username = response
            .identity
            .as_ref()
            .and_then(|i| i.username())
            .map(str::to_owned);
        let principal = match principal {
            Some(p) => p,
            None => username
                .as_deref()
                .ok_or_else(|| {
                    AuthError::Flow("the identity provider did not say who signed in; name the account explicitly".into())
                })?
                .parse::<Principal>()
                .map_err(|e| InvalidInput::new("principal", e.0))?,
        };
        let now = self.shared.clock.now();
        if session_only {
            return Ok(self.link_session(connection, principal, resource, username, response));
        }
        let existing = self.shared.store.account(connection.id, &principal).await?;
        let account = Account {
            id: existing
                .as_ref()
                .map_or_else(AccountId::new_random, |a| a.id),
            connection: connection.id,
            principal,
            mailbox: username
                .as_deref()
                .and_then(|u| u.parse::<EmailAddress>().ok()),
            credential: CredentialKind::RefreshToken,
            status: AccountStatus::Active,
            created_at: existing.as_ref().map_or(now, |a| a.created_at),
            last_used_at: Some(now),
        };
        let key = TokenKey {
            connection: connection.id,
            account: Some(account.id),
            resource,
        };
        let token = self.shared.access_token(&response);
        self.shared
            .store
            .put_account(&account, response.refresh_token.as_ref())
            .await?;
        self.shared
            .forget_account(connection.id, &account.principal);
        self.shared
            .store
            .delete_access_tokens(connection.id, Some(account.id))
            .await?;
        self.shared.store.save_tokens(&key, &token, None).await?;
        for r in Resource::ALL {
            self.cache.forget(&TokenKey { resource: r, ..key });
        }
        tracing::info!(connection = %connection.name, principal = %account.principal, "account signed in");
        Ok(account)
    }

    fn link_session(
        &self,
        connection: &Connection,
        principal: Principal,
        resource: Resource,
        username: Option<String>,
        response: TokenResponse,
    ) -> Account {
        let now = self.shared.clock.now();
        let existing = self.shared.session_by_principal(connection, &principal);
        let account = Account {
            id: existing
                .as_ref()
                .map_or_else(AccountId::new_random, |a| a.id),
            connection: connection.id,
            principal,
            mailbox: username
                .as_deref()
                .and_then(|u| u.parse::<EmailAddress>().ok()),
            credential: CredentialKind::Session,
            status: AccountStatus::Active,
            created_at: existing.as_ref().map_or(now, |a| a.created_at),
            last_used_at: Some(now),
        };
        let key = TokenKey {
            connection: connection.id,
            account: Some(account.id),
            resource,
        };
        for r in Resource::ALL {
            self.cache.forget(&TokenKey { resource: r, ..key });
        }
        self.cache.insert(key, self.shared.access_token(&response));
        self.shared
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                account.id,
                SessionAccount {
                    account: account.clone(),
                    refresh_token: response.refresh_token,
                },
            );
        tracing::info!(connection = %connection.name, principal = %account.principal, "session-only account signed in");
        account
    }

    /// The account for a principal, or the connection's only account when none is named.
    pub async fn resolve_account(
        &self,
        connection: &Connection,
        principal: Option<&Principal>,
    ) -> Result<Account, Error> {
        Ok(Account::clone(&*self.resolve(connection, principal).await?))
    }

    /// [`SignIn::resolve_account`] as the token path needs it: once cached (see
    /// [`Shared::accounts`]), from memory without touching the store.
    async fn resolve(
        &self,
        connection: &Connection,
        principal: Option<&Principal>,
    ) -> Result<Arc<Account>, Error> {
        match principal {
            Some(p) => match self.shared.session_by_principal(connection, p) {
                Some(session) => Ok(Arc::new(session)),
                None => {
                    let key = (connection.id, p.clone());
                    if let Some(account) = self.shared.accounts.get(&key) {
                        return Ok(account);
                    }
                    let account = Arc::new(
                        self.shared
                            .store
                            .account(connection.id, p)
                            .await?
                            .ok_or_else(|| Error::NotFound {
                                what: "account",
                                name: p.to_string(),
                            })?,
                    );
                    self.shared.accounts.put(key, Arc::clone(&account));
                    Ok(account)
                }
            },
            None => {
                let mut accounts: Vec<Arc<Account>> =
                    match self.shared.only_account.get(&connection.id) {
                        Some(only) => only.into_iter().collect(),
                        None => {
                            let stored: Vec<Arc<Account>> = self
                                .shared
                                .store
                                .accounts(connection.id)
                                .await?
                                .into_iter()
                                .map(Arc::new)
                                .collect();
                            if stored.len() <= 1 {
                                self.shared
                                    .only_account
                                    .put(connection.id, stored.first().cloned());
                            }
                            stored
                        }
                    };
                accounts.extend(
                    self.shared
                        .sessions_of(connection)
                        .into_iter()
                        .map(Arc::new),
                );
                match accounts.len() {
                    1 => Ok(accounts.remove(0)),
                    0 => Err(Error::NeedsSignIn {
                        principal: String::new(),
                        reason: format!(
                            "no account has signed in on connection `{}`",
                            connection.name
                        ),
                    }),
                    n => Err(Error::Invalid(InvalidInput::missing(
                        "account",
                        format!(
                            "connection `{}` has {n} accounts; name the one to use",
                            connection.name
                        ),
                    ))),
                }
            }
        }
    }

    /// A valid access token: the app's own for an app-only connection, else the account's.
    pub async fn token(
        &self,
        connection: &str,
        principal: Option<&Principal>,
        resource: Resource,
    ) -> Result<Arc<AccessToken>, Error> {
        let connection = self.shared.connections.get_shared(connection).await?;
        let account = if is_app_only(&connection) {
            None
        } else {
            Self::delegated(&connection)?;
            let account = self.resolve(&connection, principal).await?;
            if let AccountStatus::NeedsSignIn { reason } = &account.status {
                return Err(Error::NeedsSignIn {
                    principal: account.principal.to_string(),
                    reason: reason.clone(),
                });
            }
            self.record_use(&account).await?;
            Some(account.id)
        };
        self.cache
            .get(TokenKey {
                connection: connection.id,
                account,
                resource,
            })
            .await
    }

    /// Records that the account is being used, to the minute: writing it on every request
    /// would put a disk write on every mailbox call. Once per minute and account in this
    /// process, whatever the (possibly cached) account says. A long-lived process
    /// ([`Refresh::Background`]) writes it in a task of its own, so no request waits for the
    /// disk; a short-lived one (the CLI) writes it before answering, as its tasks die with it.
    async fn record_use(&self, account: &Account) -> Result<(), Error> {
        let now = self.shared.clock.now();
        if account
            .last_used_at
            .is_some_and(|t| now - t < LAST_USE_GRANULARITY)
            || !self.shared.claim_use(account.id, now)
        {
            return Ok(());
        }
        if account.credential == CredentialKind::Session {
            self.shared
                .update_session(account.id, |s| s.account.last_used_at = Some(now));
        } else if self.cache.refresh() == Refresh::Background {
            let store = Arc::clone(&self.shared.store);
            let id = account.id;
            tokio::spawn(async move {
                if let Err(e) = store.touch_account(id, now).await {
                    tracing::warn!(error = %e, "recording an account's last use failed");
                }
            });
        } else {
            self.shared.store.touch_account(account.id, now).await?;
        }
        Ok(())
    }

    /// The accounts of a connection whose principal or mailbox contains `filter` (any case).
    pub async fn accounts(
        &self,
        connection: &str,
        filter: Option<&str>,
    ) -> Result<Vec<Account>, Error> {
        let connection = self.shared.connections.get(connection).await?.connection;
        let needle = filter.map(str::to_lowercase);
        let mut all = self.shared.store.accounts(connection.id).await?;
        all.extend(self.shared.sessions_of(&connection));
        all.sort_by(|a, b| a.principal.cmp(&b.principal));
        Ok(all
            .into_iter()
            .filter(|a| {
                needle.as_deref().is_none_or(|n| {
                    a.principal.as_str().to_lowercase().contains(n)
                        || a.mailbox.as_ref().is_some_and(|m| m.as_str().contains(n))
                })
            })
            .collect())
    }

    /// Removes an account with its tokens.
    pub async fn logout(
        &self,
        connection: &str,
        principal: Option<&Principal>,
    ) -> Result<Account, Error> {
        let connection = self.shared.connections.get(connection).await?.connection;
        let account = self.resolve_account(&connection, principal).await?;
        if account.credential == CredentialKind::Session {
            self.shared
                .sessions
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&account.id);
        } else {
            self.shared.store.delete_account(account.id).await?;
            self.shared
                .forget_account(connection.id, &account.principal);
        }
        self.forget_account(&connection, account.id);
        Ok(account)
    }

    /// Forgets an account's tokens; it must sign in again.
    pub async fn reset(&self, connection: &str, principal: &Principal) -> Result<Account, Error> {
        let connection = self.shared.connections.get(connection).await?.connection;
        let account = self.resolve_account(&connection, Some(principal)).await?;
        self.reset_one(&account).await?;
        self.forget_account(&connection, account.id);
        self.resolve_account(&connection, Some(principal)).await
    }

    /// Resets every account of a connection. Returns how many.
    pub async fn reset_all(&self, connection: &str) -> Result<usize, Error> {
        let connection = self.shared.connections.get(connection).await?.connection;
        let mut accounts = self.shared.store.accounts(connection.id).await?;
        accounts.extend(self.shared.sessions_of(&connection));
        for account in &accounts {
            self.reset_one(account).await?;
            self.forget_account(&connection, account.id);
        }
        Ok(accounts.len())
    }

    async fn reset_one(&self, account: &Account) -> Result<(), Error> {
        const REASON: &str = "reset by an administrator";
        if account.credential == CredentialKind::Session {
            self.shared.update_session(account.id, |s| {
                s.refresh_token = None;
                s.account.status = AccountStatus::NeedsSignIn {
                    reason: REASON.into(),
                };
            });
            return Ok(());
        }
        self.shared.store.reset_account(account.id, REASON).await?;
        self.shared
            .forget_account(account.connection, &account.principal);
        Ok(())
    }

    /// When the account's token for its connection's main resource expires: from memory (the
    /// only place for a session-only account), else from the store. No network call.
    pub async fn token_expiry(
        &self,
        connection: &Connection,
        account: &Account,
    ) -> Result<Option<time::OffsetDateTime>, Error> {
        let key = TokenKey {
            connection: connection.id,
            account: Some(account.id),
            resource: primary_resource(connection),
        };
        if let Some(t) = self.cache.current(&key) {
            return Ok(Some(t.expires_at));
        }
        if account.credential == CredentialKind::Session {
            return Ok(None);
        }
        Ok(self
            .shared
            .store
            .access_token(&key)
            .await?
            .map(|t| t.expires_at))
    }

    /// Drops the cached token for (connection, account, resource) after a server rejected it.
    pub async fn invalidate(
        &self,
        connection: &str,
        principal: Option<&Principal>,
        resource: Resource,
    ) -> Result<(), Error> {
        let connection = self.shared.connections.get(connection).await?.connection;
        let account = if is_app_only(&connection) {
            None
        } else {
            Some(self.resolve_account(&connection, principal).await?.id)
        };
        let key = TokenKey {
            connection: connection.id,
            account,
            resource,
        };
        self.cache.forget(&key);
        self.shared
            .store
            .delete_access_tokens(connection.id, account)
            .await?;
        Ok(())
    }

    fn forget_account(&self, connection: &Connection, account: AccountId) {
        for resource in Resource::ALL {
            self.cache.forget(&TokenKey {
                connection: connection.id,
                account: Some(account),
                resource,
            });
        }
    }
}
