//! Admin routes: connections (secrets write-only), API keys, known users, static users.

use axum::extract::State;
use axum::http::StatusCode;
use exgate_core::apikeys::{ApiKey, ApiKeyId, KeyScope};
use exgate_core::connections::{ConnectionEntry, Source};
use exgate_core::model::{
    Account, AccountStatus, Auth, ClientCredential, ConnectionSpec, EmailAddress, MailboxAccess,
    Principal, StaticUser, StaticUserId, Target,
};
use exgate_core::secret::Secret;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Admin;
use crate::extract::{Json, JsonOrEmpty, Path, Query};
use crate::openapi::{AdminErrors, Report};
use crate::{ApiError, AppState};

type ApiResult<T> = Result<T, ApiError>;

fn ts(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// A connection as the API takes it: the fields of the configuration file. On creation `name`
/// and `auth` are required; on update only the fields given change. Secrets are write-only: they
/// are never returned.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConnectionBody {
    /// The connection's name (creation only: a connection cannot be renamed).
    #[serde(default)]
    #[schema(example = "contoso")]
    name: Option<String>,
    /// `online` or `server`; inferred from `tenant` or `ews_url`.
    target: Option<String>,
    /// Exchange Online: `global` (default), `usgov` or `china`.
    cloud: Option<String>,
    /// Exchange Online: a tenant GUID, a verified domain, `organizations` or `common`.
    #[schema(example = "contoso.onmicrosoft.com")]
    tenant: Option<String>,
    /// Exchange Server: `2010sp2`, `2013`, `2013sp1`, `2016`, `2019` (default) or `se`.
    server_version: Option<String>,
    /// Exchange Server: `https://…/EWS/Exchange.asmx`.
    ews_url: Option<String>,
    /// Which API reads: `auto` (default), `graph`, `ews`, `imap` or `pop` (Exchange Online,
    /// OAuth2).
    backend: Option<String>,
    /// Which protocol sends: `auto` (default: the backend's own, SMTP for `imap`/`pop`),
    /// `graph`, `ews` or `smtp`.
    send: Option<String>,
    /// The IMAP server (`imaps://host:993`, `imap://host:143` = STARTTLS); default Exchange
    /// Online's.
    #[schema(example = "imaps://outlook.office365.com:993")]
    imap_url: Option<String>,
    /// The POP3 server (`pop3s://host:995`, `pop3://host:110` = STLS); default Exchange Online's.
    pop_url: Option<String>,
    /// The SMTP submission server (`smtp://host:587` = STARTTLS, `smtps://host:465`); default
    /// Exchange Online's.
    smtp_url: Option<String>,
    /// `oauth2-delegated`, `oauth2-app-only`, `basic` or `ntlm`.
    #[schema(example = "oauth2-app-only")]
    auth: Option<String>,
    /// OAuth2: the client ID; a GUID (the application ID) for Entra ID, or as a custom
    /// authority issued it.
    client_id: Option<String>,
    /// Delegated: `authorization-code` (default), `device-code` or `password`.
    flow: Option<String>,
    /// Delegated: the redirect URI registered for the app.
    redirect_uri: Option<String>,
    /// Delegated: the scopes to ask for (default: the backend's).
    scopes: Option<Vec<String>>,
    /// Delegated: where a sign-in started through the API may send the user's browser
    /// afterwards; a login's `return_url` must be at or below one of these.
    #[schema(example = json!(["https://portal.contoso.com/exchange/"]))]
    return_urls: Option<Vec<String>>,
    /// The OIDC discovery URL of a custom identity provider (AD FS, Keycloak).
    authority: Option<String>,
    /// With a custom authority: the RFC 8707 resource indicator (an absolute URI) sent with
    /// every authorization and token request.
    #[schema(example = "https://api.contoso.com")]
    resource: Option<String>,
    /// Basic or NTLM: the service account.
    username: Option<String>,
    /// Write-only: the app's client secret (its value, not its ID).
    #[schema(write_only)]
    client_secret: Option<String>,
    /// The app's certificate (PEM), with `private_key_pem`.
    certificate_pem: Option<String>,
    /// Write-only: the certificate's private key (PEM).
    #[schema(write_only)]
    private_key_pem: Option<String>,
    /// Write-only: the Basic or NTLM password.
    #[schema(write_only)]
    password: Option<String>,
    /// When the client secret (or certificate, or password) expires: `YYYY-MM-DD` or RFC 3339;
    /// `"none"` forgets it on update. A certificate's own expiry counts when this is not set.
    #[schema(example = "2027-06-30")]
    credential_expires: Option<String>,
    /// On update: remove the client secret or certificate (make the app a public client).
    #[serde(default)]
    remove_credential: bool,
    /// Creation only, Exchange Server: find `ews_url` by autodiscover for this address, with
    /// the connection's credentials (credentials go only over https to the address's domain,
    /// the configured `endpoints.autodiscover_url`, or `trust_hosts`).
    #[schema(example = "adele@contoso.com")]
    autodiscover: Option<String>,
    /// With `autodiscover`: hosts outside the address's domain that autodiscover may send the
    /// credentials to (a hosted Exchange's autodiscover or EWS host you confirmed).
    trust_hosts: Option<Vec<String>>,
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
            return_urls: self.return_urls,
            authority: self.authority,
            resource: self.resource,
            username: self.username,
            client_secret: self.client_secret.map(Secret::new),
            certificate_pem: self.certificate_pem,
            private_key_pem: self.private_key_pem.map(Secret::new),
            password: self.password.map(Secret::new),
            send: self.send,
            imap_url: self.imap_url,
            pop_url: self.pop_url,
            smtp_url: self.smtp_url,
            credential_expires: self.credential_expires,
        }
    }
}

/// A connection as the API shows it: whether each secret is set, never what it is.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConnectionView {
    name: String,
    id: String,
    /// `store`, or the configuration file that declares it (read-only).
    source: String,
    /// `{"kind": "online", "cloud", "tenant"}` or `{"kind": "server", "version", "ews_url"}`.
    #[schema(value_type = Object)]
    target: serde_json::Value,
    /// `auto`, `graph`, `ews`, `imap` or `pop`.
    backend: String,
    /// `auto`, `graph`, `ews` or `smtp`.
    send: String,
    /// Who actually sends (`send = auto` resolved): `graph`, `ews` or `smtp`.
    sends_with: &'static str,
    /// The connection's own mail servers (absent: Exchange Online's defaults).
    #[serde(skip_serializing_if = "Option::is_none")]
    imap_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pop_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    smtp_url: Option<String>,
    authority: Option<String>,
    /// The RFC 8707 resource indicator sent to a custom authority.
    resource: Option<String>,
    /// `{"kind": "oauth2-delegated", "client_id", "flow", "redirect_uri", "scopes",
    /// "return_urls", "credential"}`, `{"kind": "oauth2-app-only", "client_id", "credential"}` or
    /// `{"kind": "basic" | "ntlm", "username", "password_set"}`; `credential` is
    /// `{"kind": "secret", "set": true}`, `{"kind": "certificate", "thumbprint_sha256",
    /// "private_key_set": true}` or null.
    #[schema(value_type = Object)]
    auth: serde_json::Value,
    /// When the credential (client secret, certificate or password) expires, when that is
    /// known: given as `credential_expires`, or a certificate's own `notAfter`.
    credential: Option<CredentialExpiryView>,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339.
    updated_at: String,
}

/// A credential's expiry, and whether it is near.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CredentialExpiryView {
    /// `client secret`, `certificate` or `password`.
    #[schema(example = "client secret")]
    kind: &'static str,
    /// RFC 3339.
    #[schema(example = "2027-06-30T00:00:00Z")]
    expires: String,
    /// `given` (`credential_expires`) or `certificate` (its `notAfter`).
    #[schema(example = "given")]
    source: &'static str,
    /// Whole days left, rounded down; negative once expired.
    days_left: i64,
    /// Seconds left; negative once expired.
    seconds_left: i64,
    /// `within-30-days`, `within-14-days`, `within-7-days`, `within-1-day` or `expired`; null
    /// when more than 30 days are left.
    #[schema(example = "within-14-days")]
    warning: Option<&'static str>,
    /// The same for a person, with the fix when a warning is due.
    message: String,
}

impl CredentialExpiryView {
    fn of(expiry: Option<exgate_core::expiry::CredentialExpiry>, connection: &str) -> Option<Self> {
        expiry.map(|e| Self {
            kind: e.credential,
            expires: e.expires_rfc3339(),
            source: e.source.as_str(),
            days_left: e.days_left,
            seconds_left: e.seconds_left,
            warning: e.warning.map(exgate_core::expiry::Warning::as_str),
            message: e.message(connection),
        })
    }
}

impl ConnectionView {
    fn new(e: &ConnectionEntry, watch: &exgate_core::expiry::Watch, now: OffsetDateTime) -> Self {
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
                "scopes": d.scopes, "return_urls": d.return_urls, "credential": credential(d.credential.as_ref()),
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
            send: s.send.to_string(),
            sends_with: match s.sending() {
                exgate_core::model::Sender::Graph => "graph",
                exgate_core::model::Sender::Ews => "ews",
                exgate_core::model::Sender::Smtp => "smtp",
            },
            imap_url: s.mail.imap_url.as_ref().map(ToString::to_string),
            pop_url: s.mail.pop_url.as_ref().map(ToString::to_string),
            smtp_url: s.mail.smtp_url.as_ref().map(ToString::to_string),
            authority: s.authority.as_ref().map(ToString::to_string),
            resource: s.resource.as_ref().map(ToString::to_string),
            auth,
            credential: CredentialExpiryView::of(watch.expiry(c, now), c.name.as_str()),
            created_at: ts(c.created_at),
            updated_at: ts(c.updated_at),
        }
    }
}

/// A connection as the API shows it, as JSON (for the console's page).
pub(crate) fn connection_json(
    e: &ConnectionEntry,
    watch: &exgate_core::expiry::Watch,
    now: OffsetDateTime,
) -> serde_json::Value {
    serde_json::to_value(ConnectionView::new(e, watch, now)).unwrap_or_default()
}

/// List connections.
#[utoipa::path(
    get,
    path = "/api/v1/connections",
    tag = "admin",
    security(("admin" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Every connection, stored or declared in a configuration file", body = Vec<ConnectionView>),
        AdminErrors,
    ),
)]
pub(crate) async fn list_connections(
    _: Admin,
    State(s): State<AppState>,
) -> ApiResult<Json<Vec<ConnectionView>>> {
    let now = s.signin.clock().now();
    Ok(Json(
        s.connections
            .list()
            .await?
            .iter()
            .map(|e| ConnectionView::new(e, &s.expiry, now))
            .collect(),
    ))
}

/// Show a connection.
#[utoipa::path(
    get,
    path = "/api/v1/connections/{connection}",
    tag = "admin",
    params(("connection" = String, Path, description = "The connection's name")),
    security(("admin" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The connection", body = ConnectionView),
        (status = 404, description = "`not_found`: no such connection", body = ApiError),
        AdminErrors,
    ),
)]
pub(crate) async fn get_connection(
    _: Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<ConnectionView>> {
    Ok(Json(ConnectionView::new(
        &s.connections.get(&name).await?,
        &s.expiry,
        s.signin.clock().now(),
    )))
}

/// Create a connection.
#[utoipa::path(
    post,
    path = "/api/v1/connections",
    tag = "admin",
    request_body = ConnectionBody,
    security(("admin" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Created", body = ConnectionView),
        (status = 400, description = "`invalid_input`: a field is missing or wrong; the message names it", body = ApiError),
        (status = 409, description = "`conflict`: the name is taken, or declared in a configuration file", body = ApiError),
        (status = 413, description = "The body is over 8 MiB"),
        (status = 502, description = "`autodiscover_failed`: autodiscover found no EWS URL, or pointed to a host not trusted; the message lists each attempt or names the host", body = ApiError),
        (status = 422, description = "The body is not JSON of this shape (e.g. an unknown field)"),
        AdminErrors,
    ),
)]
pub(crate) async fn create_connection(
    _: Admin,
    State(s): State<AppState>,
    Json(mut body): Json<ConnectionBody>,
) -> ApiResult<(StatusCode, Json<ConnectionView>)> {
    let name = body
        .name
        .take()
        .ok_or_else(|| ApiError::bad_request("missing name: give the connection a name"))?;
    let autodiscover = body.autodiscover.take();
    let trust_hosts = body.trust_hosts.take().unwrap_or_default();
    let mut spec = body.spec();
    if let Some(address) = autodiscover {
        let found = s
            .mailboxes
            .discover_ews(&spec, &address, &trust_hosts)
            .await?;
        spec.ews_url = Some(found.ews_url.to_string());
    }
    s.connections.add(&name, &spec).await?;
    Ok((
        StatusCode::CREATED,
        Json(ConnectionView::new(
            &s.connections.get(&name).await?,
            &s.expiry,
            s.signin.clock().now(),
        )),
    ))
}

/// Change the given fields of a connection.
///
/// `remove_credential: true` removes the client secret or certificate (a public client).
#[utoipa::path(
    patch,
    path = "/api/v1/connections/{connection}",
    tag = "admin",
    params(("connection" = String, Path, description = "The connection's name")),
    request_body = ConnectionBody,
    security(("admin" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The changed connection", body = ConnectionView),
        (status = 400, description = "`invalid_input`: a field is wrong, or `name` was given", body = ApiError),
        (status = 404, description = "`not_found`: no such connection", body = ApiError),
        (status = 409, description = "`conflict`: the connection is declared in a configuration file", body = ApiError),
        (status = 422, description = "The body is not JSON of this shape"),
        AdminErrors,
    ),
)]
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
    if body.autodiscover.is_some() || body.trust_hosts.is_some() {
        return Err(ApiError::bad_request(
            "autodiscover runs when a connection is created; to change the EWS URL, give `ews_url`",
        ));
    }
    let remove = body.remove_credential;
    s.connections.edit(&name, body.spec(), remove).await?;
    Ok(Json(ConnectionView::new(
        &s.connections.get(&name).await?,
        &s.expiry,
        s.signin.clock().now(),
    )))
}

/// Remove a connection.
#[utoipa::path(
    delete,
    path = "/api/v1/connections/{connection}",
    tag = "admin",
    params(("connection" = String, Path, description = "The connection's name")),
    security(("admin" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Removed, with its accounts and static users"),
        (status = 404, description = "`not_found`: no such connection", body = ApiError),
        (status = 409, description = "`conflict`: the connection is declared in a configuration file", body = ApiError),
        AdminErrors,
    ),
)]
pub(crate) async fn delete_connection(
    _: Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    s.connections.remove(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TestQuery {
    /// The mailbox to read (kept for callers of earlier versions; prefer `mailbox` in the body).
    mailbox: Option<String>,
}

/// What to test beyond the connection: `{"account": "adele", "mailbox": "sales@contoso.com"}`;
/// the body may be empty.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestBody {
    /// The account of a delegated connection (default: its only account).
    #[schema(example = "adele")]
    account: Option<String>,
    /// The mailbox to read (default: the account's own; app-only connections have none).
    #[schema(example = "sales@contoso.onmicrosoft.com")]
    mailbox: Option<String>,
}

/// Test a connection: network, identity provider, clock, sign-in (delegated connections: the
/// connection's redirect URI and the gateway's own registered, or the device code and
/// password grants allowed), credentials, token claims, mailbox; Exchange Server
/// with Basic or NTLM: EWS endpoint, authentication, mailbox, and with `mailbox` named, mailbox
/// access.
///
/// Each step is a real probe, or `skipped` with why; `ok` only when every step ran and passed.
#[utoipa::path(
    post,
    path = "/api/v1/connections/{connection}/test",
    tag = "admin",
    params(("connection" = String, Path, description = "The connection's name"), TestQuery),
    request_body(content = Option<TestBody>, description = "Optional: the account and mailbox to test"),
    security(("admin" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The steps in order, each `passed`, `failed` or `skipped` with evidence and fix; `ok` only when every step ran and passed", body = Report),
        (status = 400, description = "`invalid_input`: a malformed account or mailbox, or both the query's and the body's mailbox", body = ApiError),
        (status = 404, description = "`not_found`: no such connection", body = ApiError),
        AdminErrors,
    ),
)]
pub(crate) async fn test_connection(
    _: Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<TestQuery>,
    JsonOrEmpty(body): JsonOrEmpty<TestBody>,
) -> ApiResult<Json<exgate_core::diagnose::Report>> {
    if q.mailbox.is_some() && body.mailbox.is_some() {
        return Err(ApiError::bad_request(
            "the mailbox is given twice, in the query and in the body",
        )
        .with_hint("send `mailbox` in the JSON body only"));
    }
    let options = exgate_core::diagnose::TestOptions {
        account: body.account,
        mailbox: body.mailbox.or(q.mailbox),
        redirect_uri: Some(s.redirect_uri()),
    };
    Ok(Json(
        exgate_core::diagnose::test_connection(
            &s.connections,
            &s.signin,
            &s.mailboxes,
            &name,
            &options,
        )
        .await?,
    ))
}

/// A new API key: `{"name": "portal", "connections": ["contoso"]}` or
/// `{"name": "ops", "admin": true}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyBody {
    /// A name to recognise the key by.
    #[schema(example = "portal")]
    name: String,
    /// An admin key may do everything; an application key only what its connections allow.
    #[serde(default)]
    admin: bool,
    /// The names of the connections an application key may use.
    #[serde(default)]
    connections: Vec<String>,
}

/// An API key as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KeyView {
    id: String,
    name: String,
    admin: bool,
    /// The IDs of the connections an application key may use.
    connections: Vec<String>,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339, to the minute.
    last_used_at: Option<String>,
    /// RFC 3339; a revoked key no longer authenticates.
    revoked_at: Option<String>,
    /// The key itself (`exg_…`): only in the answer to its creation.
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

/// Create an API key.
#[utoipa::path(
    post,
    path = "/api/v1/keys",
    tag = "admin",
    request_body = KeyBody,
    security(("admin" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Created; `key` is in this answer only", body = KeyView),
        (status = 400, description = "`invalid_input`: an admin key scoped to connections, or a bad name", body = ApiError),
        (status = 404, description = "`not_found`: a connection in `connections` does not exist", body = ApiError),
        (status = 422, description = "The body is not JSON of this shape"),
        AdminErrors,
    ),
)]
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

/// List API keys.
#[utoipa::path(
    get,
    path = "/api/v1/keys",
    tag = "admin",
    security(("admin" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Every API key, revoked ones included, without the key", body = Vec<KeyView>),
        AdminErrors,
    ),
)]
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

/// Revoke an API key.
#[utoipa::path(
    delete,
    path = "/api/v1/keys/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The key's ID (a UUID)")),
    security(("admin" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The revoked key; it no longer authenticates", body = KeyView),
        (status = 400, description = "`invalid_input`: not a key ID", body = ApiError),
        (status = 404, description = "`not_found`: no such key", body = ApiError),
        AdminErrors,
    ),
)]
pub(crate) async fn revoke_key(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<KeyView>> {
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| ApiError::bad_request(format!("`{id}` is not an API key ID")))?;
    Ok(Json(key_view(&s.keys.revoke(ApiKeyId(id)).await?, None)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AccountQuery {
    /// Only users whose principal or mailbox contains this text.
    filter: Option<String>,
    /// How many to skip.
    #[serde(default)]
    #[param(default = 0)]
    offset: usize,
    /// How many to return (1–500).
    #[serde(default = "default_limit")]
    #[param(default = 50, minimum = 1, maximum = 500)]
    limit: usize,
}

fn default_limit() -> usize {
    50
}

/// A known user: an account linked on a connection.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AccountView {
    /// The application's ID for its user.
    principal: String,
    /// The mailbox's address, once signed in.
    mailbox: Option<String>,
    /// `refresh-token`, `app-only`, `service-account` or `session`.
    auth_kind: &'static str,
    /// `active` or `needs-sign-in`.
    status: &'static str,
    /// Why the user must sign in again.
    status_reason: Option<String>,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339.
    last_used_at: Option<String>,
    /// RFC 3339: when the cached access token expires.
    token_expires_at: Option<String>,
    /// Accounts holding a refresh token: when it lapses if the account stays unused (Entra ID
    /// drops refresh tokens after 90 days without use), warned 14 days ahead.
    refresh_token: Option<RefreshLapseView>,
}

/// When a refresh token lapses for want of use.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RefreshLapseView {
    /// RFC 3339: the last use (or the sign-in) plus 90 days.
    lapses: String,
    /// Whole days left, rounded down; negative once lapsed.
    days_left: i64,
    /// Within 14 days, or lapsed.
    warning: bool,
    /// "refresh token lapses on 2027-03-01 (in 12 days) unless used".
    message: String,
}

/// A page of known users.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AccountPage {
    /// How many match the filter.
    total: usize,
    offset: usize,
    items: Vec<AccountView>,
}

/// The answer to a reset of every account.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ResetAll {
    /// How many accounts were reset.
    reset: usize,
}

async fn account_view(
    s: &AppState,
    connection: &exgate_core::model::Connection,
    a: &Account,
) -> ApiResult<AccountView> {
    let expiry = s.signin.token_expiry(connection, a).await?.map(ts);
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
        refresh_token: exgate_core::expiry::RefreshLapse::of(a, s.signin.clock().now()).map(|l| {
            RefreshLapseView {
                lapses: ts(l.lapses),
                days_left: l.days_left,
                warning: l.warning,
                message: l.message(),
            }
        }),
    })
}

fn principal(p: &str) -> ApiResult<Principal> {
    p.parse::<Principal>()
        .map_err(|e| ApiError::bad_request(format!("invalid principal: {}", e.0)))
}

/// List known users: the accounts linked on a connection.
#[utoipa::path(
    get,
    path = "/api/v1/connections/{connection}/accounts",
    tag = "admin",
    params(("connection" = String, Path, description = "The connection's name"), AccountQuery),
    security(("admin" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of known users", body = AccountPage),
        (status = 404, description = "`not_found`: no such connection", body = ApiError),
        AdminErrors,
    ),
)]
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

/// Show a known user.
#[utoipa::path(
    get,
    path = "/api/v1/connections/{connection}/accounts/{principal}",
    tag = "admin",
    params(("connection" = String, Path, description = "The connection's name"), ("principal" = String, Path, description = "The application's ID for its user")),
    security(("admin" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The known user", body = AccountView),
        (status = 400, description = "`invalid_input`: not a valid principal", body = ApiError),
        (status = 404, description = "`not_found`: no such connection, or no account for this principal", body = ApiError),
        AdminErrors,
    ),
)]
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

/// Forget a known user's tokens: the user must sign in again.
#[utoipa::path(
    post,
    path = "/api/v1/connections/{connection}/accounts/{principal}/reset",
    tag = "admin",
    params(("connection" = String, Path, description = "The connection's name"), ("principal" = String, Path, description = "The application's ID for its user")),
    security(("admin" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The user, now `needs-sign-in`", body = AccountView),
        (status = 400, description = "`invalid_input`: not a valid principal", body = ApiError),
        (status = 404, description = "`not_found`: no such connection or account", body = ApiError),
        AdminErrors,
    ),
)]
pub(crate) async fn reset_account(
    _: Admin,
    State(s): State<AppState>,
    Path((name, p)): Path<(String, String)>,
) -> ApiResult<Json<AccountView>> {
    let connection = s.connections.get(&name).await?.connection;
    let account = s.signin.reset(&name, &principal(&p)?).await?;
    Ok(Json(account_view(&s, &connection, &account).await?))
}

/// Forget the tokens of every known user of a connection.
#[utoipa::path(
    post,
    path = "/api/v1/connections/{connection}/accounts/reset-all",
    tag = "admin",
    params(("connection" = String, Path, description = "The connection's name")),
    security(("admin" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "How many accounts were reset", body = ResetAll),
        (status = 404, description = "`not_found`: no such connection", body = ApiError),
        AdminErrors,
    ),
)]
pub(crate) async fn reset_all_accounts(
    _: Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<ResetAll>> {
    Ok(Json(ResetAll {
        reset: s.signin.reset_all(&name).await?,
    }))
}

/// A static user: a principal mapped to a mailbox the app acts on.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StaticUserBody {
    /// The application's ID for the user.
    #[schema(example = "adele")]
    principal: String,
    /// The mailbox's address.
    #[schema(example = "adele@contoso.onmicrosoft.com")]
    mailbox: String,
    /// `impersonation` (default) or `delegation`.
    #[serde(default)]
    access: Option<String>,
}

/// A static user as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StaticUserView {
    principal: String,
    mailbox: String,
    /// `impersonation` or `delegation`.
    access: &'static str,
    /// RFC 3339.
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

/// List static users ("additional users").
#[utoipa::path(
    get,
    path = "/api/v1/connections/{connection}/static-users",
    tag = "admin",
    params(("connection" = String, Path, description = "The connection's name")),
    security(("admin" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The connection's static users", body = Vec<StaticUserView>),
        (status = 404, description = "`not_found`: no such connection", body = ApiError),
        AdminErrors,
    ),
)]
pub(crate) async fn list_static_users(
    _: Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<StaticUserView>>> {
    let connection = s.connections.get(&name).await?.connection;
    let users = s.connections.static_users(connection.id).await?;
    Ok(Json(users.iter().map(static_view).collect()))
}

/// Map a principal to a mailbox the app acts on.
#[utoipa::path(
    post,
    path = "/api/v1/connections/{connection}/static-users",
    tag = "admin",
    params(("connection" = String, Path, description = "The connection's name")),
    request_body = StaticUserBody,
    security(("admin" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Created", body = StaticUserView),
        (status = 400, description = "`invalid_input`: a bad principal, mailbox or access", body = ApiError),
        (status = 404, description = "`not_found`: no such connection", body = ApiError),
        (status = 409, description = "`conflict`: the principal is taken on this connection", body = ApiError),
        (status = 422, description = "The body is not JSON of this shape"),
        AdminErrors,
    ),
)]
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

/// Remove a static user.
#[utoipa::path(
    delete,
    path = "/api/v1/connections/{connection}/static-users/{principal}",
    tag = "admin",
    params(("connection" = String, Path, description = "The connection's name"), ("principal" = String, Path, description = "The static user's principal")),
    security(("admin" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "`invalid_input`: not a valid principal", body = ApiError),
        (status = 404, description = "`not_found`: no such connection or static user", body = ApiError),
        AdminErrors,
    ),
)]
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
