//! What every SQL backend shares, so that none of them copies it: the connection's JSON
//! document (`ConnectionDoc`), sealing and unsealing with the vault under associated data that
//! names the row, the text form of timestamps and enums, and row → model conversion.
//!
//! Each backend writes its own SQL (placeholders and DDL differ) and reads its rows through
//! [`RawRow`]; everything else is here.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{LoginOutcome, LoginStatusRow, PendingLoginRow, StoreError, state_hash};
use crate::apikeys::{ApiKey, ApiKeyId, KeyScope};
use crate::model::{
    AccessToken, Account, AccountId, AccountStatus, AppOnlyAuth, Auth, Backend, BridgeUser,
    ClientCertificate, ClientCredential, ClientId, Connection, ConnectionId, ConnectionSettings,
    CredentialKind, DelegatedAuth, DelegatedFlow, EndpointUrl, MailEndpoints, MailboxAccess,
    PasswordAuth, ResourceIndicator, SendVia, StaticUser, Target, TokenKey,
};
use crate::secret::{Secret, Vault};

pub(crate) fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Db { context, source }
}

pub(crate) fn ts(t: OffsetDateTime) -> String {
    // Formatting a valid OffsetDateTime as RFC 3339 fails only for years outside 0..=9999.
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

pub(crate) fn parse_ts(s: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| StoreError::Corrupt(format!("timestamp `{s}`")))
}

pub(crate) fn parse_col<T: FromStr>(s: &str, what: &str) -> Result<T, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("{what} `{s}`")))
}

/// The non-secret parts of a connection, as stored in `connections.doc`.
#[derive(Serialize, Deserialize)]
pub(crate) struct ConnectionDoc {
    target: Target,
    backend: Backend,
    authority: Option<EndpointUrl>,
    /// Added with schema version 2 (older documents have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource: Option<ResourceIndicator>,
    auth: AuthDoc,
    /// Added for IMAP/POP/SMTP: absent in older documents (= `auto`), which stay readable as
    /// they are, so the document's version does not change.
    #[serde(default = "send_auto", skip_serializing_if = "is_send_auto")]
    send: SendVia,
    /// Likewise: absent = Exchange Online's default servers.
    #[serde(default, skip_serializing_if = "MailEndpoints::is_empty")]
    mail: MailEndpoints,
    /// Added with SQLite's schema version 4 and PostgreSQL's 2 (older documents have none): when
    /// the credential expires, RFC 3339.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    credential_expires: Option<OffsetDateTime>,
}

fn send_auto() -> SendVia {
    SendVia::Auto
}

fn is_send_auto(send: &SendVia) -> bool {
    *send == SendVia::Auto
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum AuthDoc {
    #[serde(rename = "oauth2-delegated")]
    Delegated {
        client_id: ClientId,
        flow: DelegatedFlow,
        credential: Option<CredentialDoc>,
        redirect_uri: Option<EndpointUrl>,
        scopes: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        return_urls: Vec<EndpointUrl>,
    },
    #[serde(rename = "oauth2-app-only")]
    AppOnly {
        client_id: ClientId,
        credential: CredentialDoc,
    },
    Basic {
        username: String,
    },
    Ntlm {
        username: String,
    },
}

/// The sealed column holds the client secret or the private key; the certificate is public.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum CredentialDoc {
    Secret,
    Certificate { certificate_pem: String },
}

impl CredentialDoc {
    fn from_credential(c: &ClientCredential) -> Self {
        match c {
            ClientCredential::Secret(_) => Self::Secret,
            ClientCredential::Certificate(c) => Self::Certificate {
                certificate_pem: c.certificate_pem().to_owned(),
            },
        }
    }

    fn into_credential(self, secret: Secret) -> Result<ClientCredential, StoreError> {
        Ok(match self {
            Self::Secret => ClientCredential::Secret(secret),
            Self::Certificate { certificate_pem } => ClientCredential::Certificate(
                ClientCertificate::from_pem(&certificate_pem, &secret)
                    .map_err(|e| StoreError::Corrupt(format!("stored certificate: {e}")))?,
            ),
        })
    }
}

impl ConnectionDoc {
    pub(crate) fn from_settings(s: &ConnectionSettings) -> Self {
        let auth = match &s.auth {
            Auth::OAuth2Delegated(d) => AuthDoc::Delegated {
                client_id: d.client_id.clone(),
                flow: d.flow,
                credential: d.credential.as_ref().map(CredentialDoc::from_credential),
                redirect_uri: d.redirect_uri.clone(),
                scopes: d.scopes.clone(),
                return_urls: d.return_urls.clone(),
            },
            Auth::OAuth2AppOnly(a) => AuthDoc::AppOnly {
                client_id: a.client_id.clone(),
                credential: CredentialDoc::from_credential(&a.credential),
            },
            Auth::Basic(p) => AuthDoc::Basic {
                username: p.username.clone(),
            },
            Auth::Ntlm(p) => AuthDoc::Ntlm {
                username: p.username.clone(),
            },
        };
        Self {
            target: s.target.clone(),
            backend: s.backend,
            authority: s.authority.clone(),
            resource: s.resource.clone(),
            auth,
            send: s.send,
            mail: s.mail.clone(),
            credential_expires: s.credential_expires,
        }
    }

    pub(crate) fn into_settings(
        self,
        secret: Option<Secret>,
    ) -> Result<ConnectionSettings, StoreError> {
        let need = |s: Option<Secret>| {
            s.ok_or_else(|| StoreError::Corrupt("connection without its sealed secret".into()))
        };
        let auth = match self.auth {
            AuthDoc::Delegated {
                client_id,
                flow,
                credential,
                redirect_uri,
                scopes,
                return_urls,
            } => {
                let credential = credential
                    .map(|c| c.into_credential(need(secret)?))
                    .transpose()?;
                Auth::OAuth2Delegated(DelegatedAuth {
                    client_id,
                    flow,
                    credential,
                    redirect_uri,
                    scopes,
                    return_urls,
                })
            }
            AuthDoc::AppOnly {
                client_id,
                credential,
            } => Auth::OAuth2AppOnly(AppOnlyAuth {
                client_id,
                credential: credential.into_credential(need(secret)?)?,
            }),
            AuthDoc::Basic { username } => Auth::Basic(PasswordAuth {
                username,
                password: need(secret)?,
            }),
            AuthDoc::Ntlm { username } => Auth::Ntlm(PasswordAuth {
                username,
                password: need(secret)?,
            }),
        };
        Ok(ConnectionSettings {
            target: self.target,
            backend: self.backend,
            auth,
            authority: self.authority,
            resource: self.resource,
            send: self.send,
            mail: self.mail,
            credential_expires: self.credential_expires,
        })
    }
}

pub(crate) fn connection_secret_context(id: ConnectionId) -> String {
    format!("connections/{id}/secret")
}

pub(crate) fn refresh_token_context(id: AccountId) -> String {
    format!("accounts/{id}/refresh_token")
}

pub(crate) fn scope_column(scope: &KeyScope) -> String {
    match scope {
        KeyScope::Admin => "*".to_owned(),
        KeyScope::Connections(ids) => serde_json::to_string(ids).unwrap_or_else(|_| "[]".into()),
    }
}

pub(crate) fn account_column(key: &TokenKey) -> String {
    key.account.map(|a| a.to_string()).unwrap_or_default()
}

pub(crate) fn access_token_context(key: &TokenKey) -> String {
    format!(
        "access_tokens/{}/{}/{}/token",
        key.connection,
        account_column(key),
        key.resource
    )
}

pub(crate) fn pending_login_context(state_hash: &str) -> String {
    format!("pending_logins/{state_hash}/payload")
}

/// A pending sign-in's columns, ready to bind.
pub(crate) struct PendingLoginColumns {
    pub state_hash: String,
    pub connection_id: String,
    pub principal: Option<String>,
    pub started_unix: i64,
    pub payload_sealed: Vec<u8>,
}

pub(crate) fn pending_login_columns(vault: &Vault, p: &PendingLoginRow) -> PendingLoginColumns {
    let state_hash = state_hash(&p.state);
    PendingLoginColumns {
        payload_sealed: vault.seal_secret(&pending_login_context(&state_hash), &p.payload),
        state_hash,
        connection_id: p.connection.to_string(),
        principal: p.principal.as_ref().map(|x| x.as_str().to_owned()),
        started_unix: p.started_at.unix_timestamp(),
    }
}

/// A pending sign-in from its row; `state` is what the caller looked it up by.
pub(crate) fn pending_login_from_row(
    vault: &Vault,
    state: &str,
    row: &dyn RawRow,
    started_unix: i64,
) -> Result<PendingLoginRow, StoreError> {
    let ctx = "reading a pending sign-in";
    let state_hash = row.text("state_hash").map_err(db(ctx))?;
    let sealed = row
        .opt_bytes("payload_sealed")
        .map_err(db(ctx))?
        .ok_or_else(|| StoreError::Corrupt("pending sign-in without its payload".into()))?;
    Ok(PendingLoginRow {
        state: state.to_owned(),
        connection: parse_col(
            &row.text("connection_id").map_err(db(ctx))?,
            "connection id",
        )?,
        principal: row
            .opt_text("principal")
            .map_err(db(ctx))?
            .map(|p| parse_col(&p, "principal"))
            .transpose()?,
        started_at: OffsetDateTime::from_unix_timestamp(started_unix)
            .map_err(|_| StoreError::Corrupt(format!("timestamp {started_unix}")))?,
        payload: vault.open_secret(&pending_login_context(&state_hash), &sealed)?,
    })
}

/// The value sealed in `meta.key_check`, to tell a wrong master key at open.
const KEY_CHECK: &[u8] = b"exgate key check";
const KEY_CHECK_CONTEXT: &str = "meta/key_check";

pub(crate) fn seal_key_check(vault: &Vault) -> Vec<u8> {
    vault.seal(KEY_CHECK_CONTEXT, KEY_CHECK)
}

/// Whether the vault's key opens the store's key check.
pub(crate) fn verify_key_check(vault: &Vault, sealed: &[u8]) -> Result<(), StoreError> {
    match vault.open(KEY_CHECK_CONTEXT, sealed) {
        Ok(v) if v == KEY_CHECK => Ok(()),
        _ => Err(StoreError::WrongKey {
            key_file: vault.key_file().display().to_string(),
        }),
    }
}

/// A row as the shared conversions read it: text and byte columns by name.
pub(crate) trait RawRow {
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>, sqlx::Error>;
}

macro_rules! raw_row {
    ($($row:ty),*) => {$(
        impl RawRow for $row {
            fn text(&self, col: &str) -> Result<String, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
                self.try_get(col)
            }
        }
    )*};
}
raw_row!(sqlx::sqlite::SqliteRow, sqlx::postgres::PgRow);

/// A connection's columns, ready to bind.
pub(crate) struct ConnectionColumns {
    pub id: String,
    pub name: String,
    /// The name folded to lower case: names are unique without regard to case, and the
    /// backends enforce it on this value, not with a collation.
    pub name_folded: String,
    pub doc: String,
    pub secret_sealed: Option<Vec<u8>>,
    pub created_at: String,
    pub updated_at: String,
}

pub(crate) fn connection_columns(
    vault: &Vault,
    c: &Connection,
) -> Result<ConnectionColumns, StoreError> {
    let doc = serde_json::to_string(&ConnectionDoc::from_settings(&c.settings))
        .map_err(|e| StoreError::Corrupt(format!("connection {} cannot be encoded: {e}", c.id)))?;
    let secret_sealed = c
        .settings
        .auth
        .secret()
        .map(|s| vault.seal_secret(&connection_secret_context(c.id), s));
    Ok(ConnectionColumns {
        id: c.id.to_string(),
        name: c.name.as_str().to_owned(),
        name_folded: c.name.folded(),
        doc,
        secret_sealed,
        created_at: ts(c.created_at),
        updated_at: ts(c.updated_at),
    })
}

pub(crate) fn connection_from_row(
    vault: &Vault,
    row: &dyn RawRow,
) -> Result<Connection, StoreError> {
    let ctx = "reading a connection";
    let id: ConnectionId = parse_col(&row.text("id").map_err(db(ctx))?, "connection id")?;
    let doc: ConnectionDoc = serde_json::from_str(&row.text("doc").map_err(db(ctx))?)
        .map_err(|e| StoreError::Corrupt(format!("connection {id}: {e}")))?;
    let secret = row
        .opt_bytes("secret_sealed")
        .map_err(db(ctx))?
        .map(|s| vault.open_secret(&connection_secret_context(id), &s))
        .transpose()?;
    Ok(Connection {
        id,
        name: parse_col(&row.text("name").map_err(db(ctx))?, "connection name")?,
        settings: doc.into_settings(secret)?,
        created_at: parse_ts(&row.text("created_at").map_err(db(ctx))?)?,
        updated_at: parse_ts(&row.text("updated_at").map_err(db(ctx))?)?,
    })
}

/// An account's columns, ready to bind.
pub(crate) struct AccountColumns {
    pub id: String,
    pub connection_id: String,
    pub principal: String,
    pub mailbox: Option<String>,
    pub credential_kind: &'static str,
    pub status: &'static str,
    pub status_reason: Option<String>,
    pub refresh_token_sealed: Option<Vec<u8>>,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

pub(crate) fn account_columns(
    vault: &Vault,
    a: &Account,
    refresh_token: Option<&Secret>,
) -> AccountColumns {
    AccountColumns {
        id: a.id.to_string(),
        connection_id: a.connection.to_string(),
        principal: a.principal.as_str().to_owned(),
        mailbox: a.mailbox.as_ref().map(|m| m.as_str().to_owned()),
        credential_kind: a.credential.as_str(),
        status: a.status.as_str(),
        status_reason: status_reason(&a.status),
        refresh_token_sealed: refresh_token.map(|t| seal_refresh_token(vault, a.id, t)),
        created_at: ts(a.created_at),
        last_used_at: a.last_used_at.map(ts),
    }
}

/// The `status_reason` column of a status.
pub(crate) fn status_reason(status: &AccountStatus) -> Option<String> {
    match status {
        AccountStatus::NeedsSignIn { reason } => Some(reason.clone()),
        AccountStatus::Active => None,
    }
}

/// An account's status from its `status` and `status_reason` columns.
pub(crate) fn status_from_columns(
    status: &str,
    reason: Option<String>,
) -> Result<AccountStatus, StoreError> {
    match status {
        "active" => Ok(AccountStatus::Active),
        "needs-sign-in" => Ok(AccountStatus::NeedsSignIn {
            reason: reason.unwrap_or_default(),
        }),
        other => Err(StoreError::Corrupt(format!("account status `{other}`"))),
    }
}

pub(crate) fn seal_refresh_token(vault: &Vault, account: AccountId, token: &Secret) -> Vec<u8> {
    vault.seal_secret(&refresh_token_context(account), token)
}

pub(crate) fn open_refresh_token(
    vault: &Vault,
    account: AccountId,
    sealed: &[u8],
) -> Result<Secret, StoreError> {
    Ok(vault.open_secret(&refresh_token_context(account), sealed)?)
}

pub(crate) fn seal_access_token(vault: &Vault, key: &TokenKey, token: &AccessToken) -> Vec<u8> {
    vault.seal_secret(&access_token_context(key), &token.secret)
}

/// An access token from its sealed value and its two timestamps.
pub(crate) fn open_access_token(
    vault: &Vault,
    key: &TokenKey,
    sealed: &[u8],
    expires_at: &str,
    refresh_at: &str,
) -> Result<AccessToken, StoreError> {
    Ok(AccessToken {
        secret: vault.open_secret(&access_token_context(key), sealed)?,
        expires_at: parse_ts(expires_at)?,
        refresh_at: parse_ts(refresh_at)?,
    })
}

pub(crate) fn account_from_row(row: &dyn RawRow) -> Result<Account, StoreError> {
    let ctx = "reading an account";
    let get = |col: &str| row.text(col).map_err(db(ctx));
    let opt = |col: &str| row.opt_text(col).map_err(db(ctx));
    let credential = match get("credential_kind")?.as_str() {
        "refresh-token" => CredentialKind::RefreshToken,
        "app-only" => CredentialKind::AppOnly,
        "service-account" => CredentialKind::ServiceAccount,
        other => return Err(StoreError::Corrupt(format!("credential kind `{other}`"))),
    };
    let status = status_from_columns(&get("status")?, opt("status_reason")?)?;
    Ok(Account {
        id: parse_col(&get("id")?, "account id")?,
        connection: parse_col(&get("connection_id")?, "connection id")?,
        principal: parse_col(&get("principal")?, "principal")?,
        mailbox: opt("mailbox")?
            .map(|m| parse_col(&m, "mailbox"))
            .transpose()?,
        credential,
        status,
        created_at: parse_ts(&get("created_at")?)?,
        last_used_at: opt("last_used_at")?.map(|t| parse_ts(&t)).transpose()?,
    })
}

pub(crate) fn bridge_user_from_row(row: &dyn RawRow) -> Result<BridgeUser, StoreError> {
    let ctx = "reading a bridge user";
    let get = |col: &str| row.text(col).map_err(db(ctx));
    let principal = row.opt_text("principal").map_err(db(ctx))?;
    Ok(BridgeUser {
        username: parse_col(&get("username")?, "bridge user name")?,
        connection: parse_col(&get("connection_id")?, "connection id")?,
        principal: principal.map(|p| parse_col(&p, "principal")).transpose()?,
        mailbox: parse_col(&get("mailbox")?, "mailbox")?,
        created_at: parse_ts(&get("created_at")?)?,
    })
}

pub(crate) fn static_user_from_row(row: &dyn RawRow) -> Result<StaticUser, StoreError> {
    let get = |col: &str| row.text(col).map_err(db("reading a static user"));
    let access = match get("access")?.as_str() {
        "impersonation" => MailboxAccess::Impersonation,
        "delegation" => MailboxAccess::Delegation,
        other => return Err(StoreError::Corrupt(format!("mailbox access `{other}`"))),
    };
    Ok(StaticUser {
        id: parse_col(&get("id")?, "static user id")?,
        connection: parse_col(&get("connection_id")?, "connection id")?,
        principal: parse_col(&get("principal")?, "principal")?,
        mailbox: parse_col(&get("mailbox")?, "mailbox")?,
        access,
        created_at: parse_ts(&get("created_at")?)?,
    })
}

pub(crate) fn api_key_from_row(row: &dyn RawRow) -> Result<ApiKey, StoreError> {
    let ctx = "reading an API key";
    let get = |col: &str| row.text(col).map_err(db(ctx));
    let opt = |col: &str| row.opt_text(col).map_err(db(ctx));
    let scope = match get("scope")?.as_str() {
        "*" => KeyScope::Admin,
        json => KeyScope::Connections(
            serde_json::from_str(json)
                .map_err(|_| StoreError::Corrupt(format!("API key scope `{json}`")))?,
        ),
    };
    Ok(ApiKey {
        id: ApiKeyId(parse_col(&get("id")?, "API key id")?),
        name: get("name")?,
        scope,
        created_at: parse_ts(&get("created_at")?)?,
        last_used_at: opt("last_used_at")?.map(|t| parse_ts(&t)).transpose()?,
        revoked_at: opt("revoked_at")?.map(|t| parse_ts(&t)).transpose()?,
    })
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// A sign-in status's outcome as columns: `status`, `principal`, `mailbox`, `error`, `hint`.
pub(crate) struct LoginOutcomeColumns {
    pub status: &'static str,
    pub principal: Option<String>,
    pub mailbox: Option<String>,
    pub error: Option<String>,
    pub hint: Option<String>,
}

pub(crate) fn login_outcome_columns(o: &LoginOutcome) -> LoginOutcomeColumns {
    match o {
        LoginOutcome::Pending => LoginOutcomeColumns {
            status: "pending",
            principal: None,
            mailbox: None,
            error: None,
            hint: None,
        },
        LoginOutcome::SignedIn { principal, mailbox } => LoginOutcomeColumns {
            status: "signed_in",
            principal: Some(principal.clone()),
            mailbox: mailbox.clone(),
            error: None,
            hint: None,
        },
        LoginOutcome::Failed { error, hint } => LoginOutcomeColumns {
            status: "failed",
            principal: None,
            mailbox: None,
            error: Some(error.clone()),
            hint: hint.clone(),
        },
    }
}

/// A sign-in's status from its row.
pub(crate) fn login_status_from_row(
    row: &dyn RawRow,
    started_unix: i64,
) -> Result<LoginStatusRow, StoreError> {
    let ctx = "reading a sign-in's status";
    let text = |col: &str| row.opt_text(col).map_err(db(ctx));
    let outcome = match row.text("status").map_err(db(ctx))?.as_str() {
        "pending" => LoginOutcome::Pending,
        "signed_in" => LoginOutcome::SignedIn {
            principal: text("principal")?
                .ok_or_else(|| StoreError::Corrupt("signed-in status without principal".into()))?,
            mailbox: text("mailbox")?,
        },
        "failed" => LoginOutcome::Failed {
            error: text("error")?.unwrap_or_default(),
            hint: text("hint")?,
        },
        other => return Err(StoreError::Corrupt(format!("sign-in status `{other}`"))),
    };
    Ok(LoginStatusRow {
        login_id: row.text("login_id").map_err(db(ctx))?,
        connection: parse_col(
            &row.text("connection_id").map_err(db(ctx))?,
            "connection id",
        )?,
        started_at: OffsetDateTime::from_unix_timestamp(started_unix)
            .map_err(|_| StoreError::Corrupt(format!("timestamp {started_unix}")))?,
        outcome,
    })
}
