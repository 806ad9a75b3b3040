//! Admin routes: connections (secrets write-only), API keys, known users, static users.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use exgate_core::apikeys::{ApiKey, ApiKeyId, KeyScope};
use exgate_core::connections::{ConnectionEntry, Source};
use exgate_core::model::{
    Account, AccountStatus, Auth, ClientCredential, ConnectionSpec, EmailAddress, MailboxAccess,
    Principal, StaticUser, StaticUserId, Target, TokenKey,
};
use exgate_core::secret::Secret;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::Admin;
use crate::{ApiError, AppState};

type ApiResult<T> = Result<T, ApiError>;

fn ts(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// A connection as the API takes it. Secrets are write-only: they are never returned.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConnectionBody {
    #[serde(default)]
    name: Option<String>,
    target: Option<String>,
    cloud: Option<String>,
    tenant: Option<String>,
    server_version: Option<String>,
    ews_url: Option<String>,
    backend: Option<String>,
    auth: Option<String>,
    client_id: Option<String>,
    flow: Option<String>,
    redirect_uri: Option<String>,
    scopes: Option<Vec<String>>,
    authority: Option<String>,
    username: Option<String>,
    client_secret: Option<String>,
    certificate_pem: Option<String>,
    private_key_pem: Option<String>,
    password: Option<String>,
    /// On update: remove the client secret or certificate (make the app a public client).
    #[serde(default)]
    remove_credential: bool,
}

impl ConnectionBody {
    fn spec(self) -> ConnectionSpec {
        ConnectionSpec {
            target: self.target,
            cloud: self.cloud,
            tenant: self.tenant,
            server_version: self.server_version,
            ews_url: self.ews_url,
            backend: self.backend,
            auth: self.auth,
            client_id: self.client_id,
            flow: self.flow,
            redirect_uri: self.redirect_uri,
            scopes: self.scopes,
            authority: self.authority,
            username: self.username,
            client_secret: self.client_secret.map(Secret::new),
            certificate_pem: self.certificate_pem,
            private_key_pem: self.private_key_pem.map(Secret::new),
            password: self.password.map(Secret::new),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct ConnectionView {
    name: String,
    id: String,
    source: String,
    target: serde_json::Value,
    backend: String,
    authority: Option<String>,
    auth: serde_json::Value,
    created_at: String,
    updated_at: String,
}

impl From<&ConnectionEntry> for ConnectionView {
    fn from(e: &ConnectionEntry) -> Self {
        let c = &e.connection;
        let s = &c.settings;
        let target = match &s.target {
            Target::Online { cloud, tenant } => {
                serde_json::json!({ "kind": "online", "cloud": cloud, "tenant": tenant })
            }
            Target::Server { version, ews_url } => {
                serde_json::json!({ "kind": "server", "version": version, "ews_url": ews_url })
            }
        };
        let credential = |c: Option<&ClientCredential>| match c {
            Some(ClientCredential::Secret(_)) => {
                serde_json::json!({ "kind": "secret", "set": true })
            }
            Some(ClientCredential::Certificate(cert)) => {
                serde_json::json!({ "kind": "certificate", "thumbprint_sha256": cert.thumbprint_sha256(), "private_key_set": true })
            }
            None => serde_json::json!(null),
        };
        let auth = match &s.auth {
            Auth::OAuth2Delegated(d) => serde_json::json!({
                "kind": "oauth2-delegated", "client_id": d.client_id, "flow": d.flow, "redirect_uri": d.redirect_uri,
                "scopes": d.scopes, "credential": credential(d.credential.as_ref()),
            }),
            Auth::OAuth2AppOnly(a) => serde_json::json!({
                "kind": "oauth2-app-only", "client_id": a.client_id, "credential": credential(Some(&a.credential)),
            }),
            Auth::Basic(p) | Auth::Ntlm(p) => serde_json::json!({
                "kind": s.auth.kind(), "username": p.username, "password_set": !p.password.is_empty(),
            }),
        };
        Self {
            name: c.name.to_string(),
            id: c.id.to_string(),
            source: match &e.source {
                Source::Store => "store".into(),
                Source::File(f) => f.clone(),
            },
            target,
            backend: s.backend.to_string(),
            authority: s.authority.as_ref().map(ToString::to_string),
            auth,
            created_at: ts(c.created_at),
            updated_at: ts(c.updated_at),
        }
    }
}

pub(crate) async fn list_connections(
    _: Admin,
    State(s): State<AppState>,
) -> ApiResult<Json<Vec<ConnectionView>>> {
    Ok(Json(
        s.connections
            .list()
            .await?
            .iter()
            .map(ConnectionView::from)
            .collect(),
    ))
}

pub(crate) async fn get_connection(
    _: Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<ConnectionView>> {
    Ok(Json(ConnectionView::from(&s.connections.get(&name).await?)))
}

pub(crate) async fn create_connection(
    _: Admin,
    State(s): State<AppState>,
    Json(mut body): Json<ConnectionBody>,
) -> ApiResult<(StatusCode, Json<ConnectionView>)> {
    let name = body
        .name
        .take()
        .ok_or_else(|| ApiError::bad_request("missing name: give the connection a name"))?;
    s.connections.add(&name, &body.spec()).await?;
    Ok((
        StatusCode::CREATED,
        Json(ConnectionView::from(&s.connections.get(&name).await?)),
    ))
}

pub(crate) async fn update_connection(
    _: Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<ConnectionBody>,
) -> ApiResult<Json<ConnectionView>> {
    if body.name.is_some() {
        return Err(ApiError::bad_request(
            "a connection cannot be renamed; create a new one and remove this one",
        ));
    }
    let remove = body.remove_credential;
    s.connections.edit(&name, body.spec(), remove).await?;
    Ok(Json(ConnectionView::from(&s.connections.get(&name).await?)))
}

pub(crate) async fn delete_connection(
    _: Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    s.connections.remove(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct TestQuery {
    /// The mailbox to probe on an app-only connection.
    mailbox: Option<String>,
}

pub(crate) async fn test_connection(
    _: Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<TestQuery>,
) -> ApiResult<Json<exgate_core::diagnose::Report>> {
    Ok(Json(
        exgate_core::diagnose::test_connection(
            &s.connections,
            &s.signin,
            &s.mailboxes,
            &name,
            q.mailbox.as_deref(),
        )
        .await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyBody {
    name: String,
    /// An admin key may do everything; an application key only what its connections allow.
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    connections: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct KeyView {
    id: String,
    name: String,
    admin: bool,
    connections: Vec<String>,
    created_at: String,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
    /// Only in the answer to its creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

fn key_view(k: &ApiKey, secret: Option<&Secret>) -> KeyView {
    KeyView {
        id: k.id.to_string(),
        name: k.name.clone(),
        admin: k.scope == KeyScope::Admin,
        connections: match &k.scope {
            KeyScope::Admin => vec![],
            KeyScope::Connections(ids) => ids.iter().map(ToString::to_string).collect(),
        },
        created_at: ts(k.created_at),
        last_used_at: k.last_used_at.map(ts),
        revoked_at: k.revoked_at.map(ts),
        key: secret.map(|s| s.expose().to_owned()),
    }
}

pub(crate) async fn create_key(
    _: Admin,
    State(s): State<AppState>,
    Json(body): Json<KeyBody>,
) -> ApiResult<(StatusCode, Json<KeyView>)> {
    let scope = if body.admin {
        if !body.connections.is_empty() {
            return Err(ApiError::bad_request(
                "an admin key is not scoped to connections; drop `connections` or `admin`",
            ));
        }
        KeyScope::Admin
    } else {
        let mut ids = Vec::new();
        for name in &body.connections {
            ids.push(s.connections.get(name).await?.connection.id);
        }
        KeyScope::Connections(ids)
    };
    let (key, secret) = s.keys.create(&body.name, scope).await?;
    Ok((StatusCode::CREATED, Json(key_view(&key, Some(&secret)))))
}

pub(crate) async fn list_keys(
    _: Admin,
    State(s): State<AppState>,
) -> ApiResult<Json<Vec<KeyView>>> {
    Ok(Json(
        s.keys
            .list()
            .await?
            .iter()
            .map(|k| key_view(k, None))
            .collect(),
    ))
}

pub(crate) async fn revoke_key(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<KeyView>> {
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| ApiError::bad_request(format!("`{id}` is not an API key ID")))?;
    Ok(Json(key_view(&s.keys.revoke(ApiKeyId(id)).await?, None)))
}

#[derive(Debug, Deserialize)]
pub(crate) struct AccountQuery {
    filter: Option<String>,
    #[serde(default)]
    offset: usize,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    50
}

#[derive(Debug, Serialize)]
pub(crate) struct AccountView {
    principal: String,
    mailbox: Option<String>,
    auth_kind: &'static str,
    status: &'static str,
    status_reason: Option<String>,
    created_at: String,
    last_used_at: Option<String>,
    token_expires_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct AccountPage {
    total: usize,
    offset: usize,
    items: Vec<AccountView>,
}

async fn account_view(
    s: &AppState,
    connection: &exgate_core::model::Connection,
    a: &Account,
) -> ApiResult<AccountView> {
    let key = TokenKey {
        connection: connection.id,
        account: Some(a.id),
        resource: exgate_core::auth::signin::primary_resource(connection),
    };
    let expiry = s
        .store
        .access_token(&key)
        .await
        .map_err(|e| ApiError::from(exgate_core::Error::from(e)))?
        .map(|t| ts(t.expires_at));
    Ok(AccountView {
        principal: a.principal.to_string(),
        mailbox: a.mailbox.as_ref().map(ToString::to_string),
        auth_kind: a.credential.as_str(),
        status: a.status.as_str(),
        status_reason: match &a.status {
            AccountStatus::NeedsSignIn { reason } => Some(reason.clone()),
            AccountStatus::Active => None,
        },
        created_at: ts(a.created_at),
        last_used_at: a.last_used_at.map(ts),
        token_expires_at: expiry,
    })
}

fn principal(p: &str) -> ApiResult<Principal> {
    p.parse::<Principal>()
        .map_err(|e| ApiError::bad_request(format!("invalid principal: {}", e.0)))
}

pub(crate) async fn list_accounts(
    _: Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<AccountQuery>,
) -> ApiResult<Json<AccountPage>> {
    let connection = s.connections.get(&name).await?.connection;
    let all = s.signin.accounts(&name, q.filter.as_deref()).await?;
    let mut items = Vec::new();
    for a in all.iter().skip(q.offset).take(q.limit.clamp(1, 500)) {
        items.push(account_view(&s, &connection, a).await?);
    }
    Ok(Json(AccountPage {
        total: all.len(),
        offset: q.offset,
        items,
    }))
}

pub(crate) async fn get_account(
    _: Admin,
    State(s): State<AppState>,
    Path((name, p)): Path<(String, String)>,
) -> ApiResult<Json<AccountView>> {
    let connection = s.connections.get(&name).await?.connection;
    let account = s
        .signin
        .resolve_account(&connection, Some(&principal(&p)?))
        .await?;
    Ok(Json(account_view(&s, &connection, &account).await?))
}

pub(crate) async fn reset_account(
    _: Admin,
    State(s): State<AppState>,
    Path((name, p)): Path<(String, String)>,
) -> ApiResult<Json<AccountView>> {
    let connection = s.connections.get(&name).await?.connection;
    let account = s.signin.reset(&name, &principal(&p)?).await?;
    Ok(Json(account_view(&s, &connection, &account).await?))
}

pub(crate) async fn reset_all_accounts(
    _: Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let n = s.signin.reset_all(&name).await?;
    Ok(Json(serde_json::json!({ "reset": n })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StaticUserBody {
    principal: String,
    mailbox: String,
    /// `impersonation` (default) or `delegation`.
    #[serde(default)]
    access: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct StaticUserView {
    principal: String,
    mailbox: String,
    access: &'static str,
    created_at: String,
}

fn static_view(u: &StaticUser) -> StaticUserView {
    StaticUserView {
        principal: u.principal.to_string(),
        mailbox: u.mailbox.to_string(),
        access: u.access.as_str(),
        created_at: ts(u.created_at),
    }
}

pub(crate) async fn list_static_users(
    _: Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<StaticUserView>>> {
    let connection = s.connections.get(&name).await?.connection;
    let users = s.connections.static_users(connection.id).await?;
    Ok(Json(users.iter().map(static_view).collect()))
}

pub(crate) async fn create_static_user(
    _: Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<StaticUserBody>,
) -> ApiResult<(StatusCode, Json<StaticUserView>)> {
    let connection = s.connections.get(&name).await?.connection;
    let access = match body.access.as_deref().unwrap_or("impersonation") {
        "impersonation" => MailboxAccess::Impersonation,
        "delegation" => MailboxAccess::Delegation,
        other => {
            return Err(ApiError::bad_request(format!(
                "`{other}` is not an access kind; expected impersonation or delegation"
            )));
        }
    };
    let user = StaticUser {
        id: StaticUserId::new_random(),
        connection: connection.id,
        principal: principal(&body.principal)?,
        mailbox: body
            .mailbox
            .parse::<EmailAddress>()
            .map_err(|e| ApiError::bad_request(format!("invalid mailbox: {}", e.0)))?,
        access,
        created_at: OffsetDateTime::now_utc(),
    };
    s.connections.add_static_user(&user).await?;
    Ok((StatusCode::CREATED, Json(static_view(&user))))
}

pub(crate) async fn delete_static_user(
    _: Admin,
    State(s): State<AppState>,
    Path((name, p)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let connection = s.connections.get(&name).await?.connection;
    let p = principal(&p)?;
    let users = s.connections.static_users(connection.id).await?;
    let user = users.iter().find(|u| u.principal == p).ok_or_else(|| {
        ApiError::from(exgate_core::Error::NotFound {
            what: "static user",
            name: p.to_string(),
        })
    })?;
    s.connections.remove_static_user(user).await?;
    Ok(StatusCode::NO_CONTENT)
}
