//! Who is calling (the bearer token) and what they may do (permissions, mailbox rights,
//! application access policies).

use axum::http::HeaderMap;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use time::OffsetDateTime;

use super::GraphState;
use super::error::{GraphResult, graph_errors};
use crate::directory::{MailboxRight, TenantSeed as TenantDir};

/// Graph's application ID: v1 tokens carry it as `aud`.
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// The claims Graph reads.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Claims {
    #[serde(default)]
    aud: Option<String>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    tid: Option<String>,
    #[serde(default)]
    oid: Option<String>,
    #[serde(default)]
    upn: Option<String>,
    #[serde(default)]
    scp: Option<String>,
    #[serde(default)]
    roles: Option<Vec<String>>,
    #[serde(default)]
    appid: Option<String>,
    #[serde(default)]
    idtyp: Option<String>,
}

/// The caller's identity.
#[derive(Debug, Clone)]
pub(crate) enum Who {
    User {
        upn: String,
        scopes: Vec<String>,
    },
    /// App-only: its app roles and its service principal's object ID (the token's `oid`).
    App {
        roles: Vec<String>,
        sp: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// Index into the directory's tenants.
    pub tenant: usize,
    pub app_id: String,
    pub who: Who,
}

impl Caller {
    pub(crate) fn is_app(&self) -> bool {
        matches!(self.who, Who::App { .. })
    }
}

/// Verifies the bearer token: signature (the mock's key), audience (Graph), lifetime (the
/// mock's clock), tenant.
pub(crate) fn authenticate(
    state: &GraphState,
    headers: &HeaderMap,
    now: OffsetDateTime,
) -> GraphResult<Caller> {
    let header = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    let token = match header.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => "",
    };
    if token.is_empty() {
        return Err(graph_errors::token_missing());
    }
    if token.split('.').count() != 3 {
        return Err(graph_errors::token_malformed());
    }
    let cached = state.own().tokens.get(token).cloned();
    let claims = match cached {
        Some(claims) => claims,
        None => {
            let mut validation = Validation::new(Algorithm::RS256);
            validation.validate_exp = false;
            validation.validate_nbf = false;
            validation.validate_aud = false;
            validation.required_spec_claims.clear();
            let claims = jsonwebtoken::decode::<Claims>(token, &state.decoding, &validation)
                .map_err(|_| graph_errors::token_invalid())?
                .claims;
            let mut inner = state.own();
            if inner.tokens.len() > 10_000 {
                inner.tokens.clear();
            }
            inner.tokens.insert(token.to_string(), claims.clone());
            claims
        }
    };
    let aud = claims
        .aud
        .as_deref()
        .unwrap_or_default()
        .trim_end_matches('/');
    if !aud.eq_ignore_ascii_case("https://graph.microsoft.com")
        && !aud.eq_ignore_ascii_case(GRAPH_APP_ID)
    {
        return Err(graph_errors::wrong_audience());
    }
    let now = now.unix_timestamp();
    // Five minutes of clock skew, as Microsoft allows.
    if claims.exp.is_none_or(|exp| exp.saturating_add(300) <= now)
        || claims.nbf.is_some_and(|nbf| nbf.saturating_sub(300) > now)
    {
        return Err(graph_errors::token_expired());
    }
    let dir = state.dir();
    let tenant = claims
        .tid
        .as_deref()
        .and_then(|tid| dir.tenant_index_by_tid(tid))
        .ok_or_else(graph_errors::token_invalid)?;
    let app_id = claims.appid.clone().unwrap_or_default();
    let who = if claims.idtyp.as_deref() == Some("app") || claims.scp.is_none() {
        Who::App {
            roles: claims.roles.clone().unwrap_or_default(),
            sp: claims.oid.clone(),
        }
    } else {
        let upn = match (&claims.upn, &claims.oid) {
            (Some(upn), _) => upn.clone(),
            (None, Some(oid)) => dir
                .tenant(tenant)
                .and_then(|t| t.entry(oid))
                .map(|e| e.address.clone())
                .ok_or_else(graph_errors::token_invalid)?,
            _ => return Err(graph_errors::token_invalid()),
        };
        Who::User {
            upn,
            scopes: claims
                .scp
                .as_deref()
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        }
    };
    Ok(Caller {
        tenant,
        app_id,
        who,
    })
}

/// What an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    MailRead,
    MailWrite,
    MailSend,
    CalendarRead,
    CalendarWrite,
    FreeBusy,
    ContactsRead,
    ContactsWrite,
}

impl Need {
    /// Delegated permissions that allow it on the caller's own mailbox.
    fn own(self) -> &'static [&'static str] {
        match self {
            Need::MailRead => &["Mail.ReadBasic", "Mail.Read", "Mail.ReadWrite"],
            Need::MailWrite => &["Mail.ReadWrite"],
            Need::MailSend => &["Mail.Send"],
            Need::CalendarRead => &["Calendars.Read", "Calendars.ReadWrite"],
            Need::CalendarWrite => &["Calendars.ReadWrite"],
            Need::FreeBusy => &[
                "Calendars.ReadBasic",
                "Calendars.Read",
                "Calendars.ReadWrite",
            ],
            Need::ContactsRead => &["Contacts.Read", "Contacts.ReadWrite"],
            Need::ContactsWrite => &["Contacts.ReadWrite"],
        }
    }

    /// Delegated permissions that allow it on another user's or a shared mailbox.
    fn shared(self) -> &'static [&'static str] {
        match self {
            Need::MailRead => &["Mail.Read.Shared", "Mail.ReadWrite.Shared"],
            Need::MailWrite => &["Mail.ReadWrite.Shared"],
            Need::MailSend => &["Mail.Send.Shared"],
            Need::CalendarRead | Need::FreeBusy => {
                &["Calendars.Read.Shared", "Calendars.ReadWrite.Shared"]
            }
            Need::CalendarWrite => &["Calendars.ReadWrite.Shared"],
            Need::ContactsRead => &["Contacts.Read.Shared", "Contacts.ReadWrite.Shared"],
            Need::ContactsWrite => &["Contacts.ReadWrite.Shared"],
        }
    }

    /// Application permissions (app roles) that allow it.
    fn app(self) -> &'static [&'static str] {
        match self {
            Need::MailRead => &[
                "Mail.ReadBasic.All",
                "Mail.ReadBasic",
                "Mail.Read",
                "Mail.ReadWrite",
            ],
            Need::MailWrite => &["Mail.ReadWrite"],
            Need::MailSend => &["Mail.Send"],
            Need::CalendarRead | Need::FreeBusy => &["Calendars.Read", "Calendars.ReadWrite"],
            Need::CalendarWrite => &["Calendars.ReadWrite"],
            Need::ContactsRead => &["Contacts.Read", "Contacts.ReadWrite"],
            Need::ContactsWrite => &["Contacts.ReadWrite"],
        }
    }

    /// The mailbox right a delegate needs on someone else's mailbox.
    fn right(self) -> MailboxRight {
        match self {
            Need::MailSend => MailboxRight::SendAs,
            _ => MailboxRight::FullAccess,
        }
    }
}

fn holds(granted: &[String], any_of: &[&str]) -> bool {
    granted
        .iter()
        .any(|g| any_of.iter().any(|p| p.eq_ignore_ascii_case(g)))
}

/// A mailbox a request targets.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub address: String,
    pub display_name: String,
    /// The delegated caller's own mailbox.
    pub own: bool,
}

/// `me` or `users/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MailboxRef {
    Me,
    User(String),
}

/// The mailbox `reference` names for this caller: 400 for `/me` app-only, 404 for an unknown
/// user.
pub(crate) fn resolve(
    tenant: &TenantDir,
    caller: &Caller,
    reference: &MailboxRef,
) -> GraphResult<Target> {
    let key = match (reference, &caller.who) {
        (MailboxRef::Me, Who::App { .. }) => return Err(graph_errors::me_app_only()),
        (MailboxRef::Me, Who::User { upn, .. }) => upn.as_str(),
        (MailboxRef::User(key), _) => key.as_str(),
    };
    let entry = tenant
        .entry(key)
        .ok_or_else(|| graph_errors::invalid_user(key))?;
    let own = match &caller.who {
        Who::User { upn, .. } => entry.address.eq_ignore_ascii_case(upn),
        Who::App { .. } => false,
    };
    Ok(Target {
        address: entry.address.clone(),
        display_name: entry.display_name.clone(),
        own,
    })
}

/// Whether the caller may do `need` on `target`: 403 `ErrorAccessDenied` (or the RAOP denial)
/// when not.
pub(crate) fn authorize(
    tenant: &TenantDir,
    caller: &Caller,
    target: &Target,
    need: Need,
) -> GraphResult<()> {
    match &caller.who {
        Who::User { upn, scopes } => {
            let allowed = if target.own {
                holds(scopes, need.own())
            } else {
                holds(scopes, need.shared()) && tenant.has_right(&target.address, upn, need.right())
            };
            if allowed {
                Ok(())
            } else {
                Err(graph_errors::access_denied())
            }
        }
        Who::App { roles, .. } => {
            if !holds(roles, need.app()) {
                return Err(graph_errors::access_denied());
            }
            in_app_scope(tenant, caller, &target.address)
        }
    }
}

/// The application access policy: app-only requests reach only the scoped mailboxes.
pub(crate) fn in_app_scope(tenant: &TenantDir, caller: &Caller, address: &str) -> GraphResult<()> {
    if !caller.is_app() {
        return Ok(());
    }
    match tenant.mailbox_scope(&caller.app_id) {
        Some(scope) if !scope.iter().any(|m| m.eq_ignore_ascii_case(address)) => {
            Err(graph_errors::raop_denied())
        }
        _ => Ok(()),
    }
}

/// Whether the caller may send as `from` from `target`'s mailbox: the mailbox itself, or (for
/// a delegate) a mailbox they hold SendAs on, or (app-only) any mailbox in scope.
pub(crate) fn may_send_as(
    tenant: &TenantDir,
    caller: &Caller,
    target: &Target,
    from: &str,
) -> GraphResult<()> {
    if from.eq_ignore_ascii_case(&target.address) {
        return Ok(());
    }
    let Some(entry) = tenant.entry(from) else {
        return Err(graph_errors::send_as_denied());
    };
    match &caller.who {
        Who::User { upn, .. } => {
            if tenant.has_right(&entry.address, upn, MailboxRight::SendAs) {
                Ok(())
            } else {
                Err(graph_errors::send_as_denied())
            }
        }
        Who::App { .. } => in_app_scope(tenant, caller, &entry.address),
    }
}

/// `GET /me`, `GET /users/{id}`: `User.Read` for oneself, `User.ReadBasic.All` and up for
/// others (delegated); `User.Read.All` and up app-only.
pub(crate) fn authorize_profile(caller: &Caller, own: bool) -> GraphResult<()> {
    let allowed = match &caller.who {
        Who::User { scopes, .. } => {
            let others: &[&str] = &[
                "User.ReadBasic.All",
                "User.Read.All",
                "User.ReadWrite.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
            ];
            holds(scopes, others) || (own && holds(scopes, &["User.Read", "User.ReadWrite"]))
        }
        Who::App { roles, .. } => holds(
            roles,
            &[
                "User.ReadBasic.All",
                "User.Read.All",
                "User.ReadWrite.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
            ],
        ),
    };
    if allowed {
        Ok(())
    } else {
        Err(graph_errors::directory_denied())
    }
}
