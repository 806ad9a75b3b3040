//! Minting tokens: access tokens (delegated and app-only), ID tokens, refresh tokens.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use super::error::{AadError, aadsts};
use super::jwt::{SigningKey, b64url};
use super::scopes::{ScopeProblem, Scopes};
use super::seed::{AppSeed, GRAPH, UserSeed};
use super::state::{Inner, RefreshGrant, random_token, service_principal_id};

/// Parses a `scope` parameter, answering Entra's errors for what cannot be served.
pub(crate) fn parse_scopes(inner: &Inner, t: usize, raw: &str) -> Result<Scopes, AadError> {
    Scopes::parse(raw, &inner.known_resources()).map_err(|problem| match problem {
        ScopeProblem::Malformed(token) => aadsts::invalid_scope(&token, ""),
        ScopeProblem::UnknownResource(resource) => aadsts::resource_not_found(
            &resource,
            inner.tenant(t).map_or("", |tenant| tenant.domain.as_str()),
        ),
        ScopeProblem::MultipleResources => aadsts::multiple_resources(raw),
    })
}

/// The one resource of a token request and the permissions to grant on it: all the consented
/// ones, as Entra puts every consented scope of a resource into its tokens.
pub(crate) fn delegated_grant(
    inner: &Inner,
    app: &AppSeed,
    scopes: &Scopes,
    raw: &str,
) -> Result<(String, Vec<String>), AadError> {
    let (resource, asked) = scopes
        .single_resource()
        .map_err(|_| aadsts::multiple_resources(raw))?;
    if inner.consent_revoked(&app.client_id) {
        return Err(aadsts::consent_missing(&app.client_id, &app.name));
    }
    let consented: Vec<String> = app
        .delegated_permissions
        .iter()
        .find(|(r, _)| r.eq_ignore_ascii_case(&resource))
        .map(|(_, p)| p.clone())
        .unwrap_or_default();
    let wants_default = asked.iter().any(|p| p == ".default");
    if wants_default && asked.len() > 1 {
        return Err(aadsts::invalid_scope(
            raw,
            " '.default' cannot be combined with other scopes of the same resource.",
        ));
    }
    if wants_default && consented.is_empty() {
        return Err(aadsts::consent_missing(&app.client_id, &app.name));
    }
    for permission in asked.iter().filter(|p| *p != ".default") {
        if !consented.iter().any(|c| c.eq_ignore_ascii_case(permission)) {
            return Err(aadsts::consent_missing(&app.client_id, &app.name));
        }
    }
    Ok((resource, consented))
}

/// Who the token is for and how the client authenticated (`azpacr`: 0 public, 1 secret,
/// 2 certificate).
pub(crate) struct Delegation<'a> {
    pub t: usize,
    pub app: &'a AppSeed,
    pub user: &'a UserSeed,
    pub scopes: &'a Scopes,
    pub raw_scope: &'a str,
    pub nonce: Option<&'a str>,
    pub azpacr: u8,
    /// Issue a refresh token even without `offline_access` (a refresh grant always rotates).
    pub always_refresh: bool,
    /// The request asked for `client_info=1` (MSAL always does).
    pub client_info: bool,
}

pub(crate) fn delegated(
    inner: &mut Inner,
    key: &SigningKey,
    d: &Delegation<'_>,
) -> Result<Value, AadError> {
    let (resource, granted) = delegated_grant(inner, d.app, d.scopes, d.raw_scope)?;
    let tenant_id = inner
        .tenant(d.t)
        .map(|t| t.id.clone())
        .ok_or_else(|| server_error("the tenant disappeared"))?;
    let now = inner.token_now();
    let iat = now.unix_timestamp();
    let exp = iat.saturating_add(i64::try_from(inner.token_lifetime).unwrap_or(i64::MAX));
    let issuer = inner.issuer(&tenant_id);
    let is_graph = resource.eq_ignore_ascii_case(GRAPH);
    let oidc: Vec<&str> = d
        .scopes
        .oidc
        .iter()
        .copied()
        .filter(|s| *s != "offline_access")
        .collect();

    let mut scp: Vec<String> = granted.clone();
    let mut response_scope: Vec<String> = if is_graph {
        granted.clone()
    } else {
        granted.iter().map(|p| format!("{resource}/{p}")).collect()
    };
    if is_graph {
        scp.extend(oidc.iter().map(|s| (*s).to_string()));
        response_scope.extend(oidc.iter().map(|s| (*s).to_string()));
    }

    let access = json!({
        "aud": resource,
        "iss": issuer,
        "iat": iat,
        "nbf": iat,
        "exp": exp,
        "tid": tenant_id,
        "oid": d.user.object_id,
        "sub": pairwise(&d.user.object_id, &resource),
        "upn": d.user.upn,
        "preferred_username": d.user.upn,
        "unique_name": d.user.upn,
        "name": d.user.display_name,
        "scp": scp.join(" "),
        "appid": d.app.client_id,
        "azp": d.app.client_id,
        "azpacr": d.azpacr.to_string(),
        "app_displayname": d.app.name,
        "idtyp": "user",
        "amr": ["pwd"],
        "ver": "2.0",
        "uti": random_token(16),
    });
    let access_token = key.sign(&access).map_err(|e| server_error(&e))?;

    let mut body = Map::new();
    body.insert("token_type".into(), "Bearer".into());
    body.insert("scope".into(), response_scope.join(" ").into());
    body.insert("expires_in".into(), inner.token_lifetime.into());
    body.insert("ext_expires_in".into(), inner.token_lifetime.into());
    if let Some(refresh_in) = inner.refresh_in {
        body.insert("refresh_in".into(), refresh_in.into());
    }
    body.insert("access_token".into(), access_token.into());

    if d.always_refresh || d.scopes.has("offline_access") {
        let refresh_token = random_token(96);
        inner.refresh_tokens.insert(
            refresh_token.clone(),
            RefreshGrant {
                tenant_id: tenant_id.clone(),
                client_id: d.app.client_id.clone(),
                user_oid: d.user.object_id.clone(),
                scope: d.raw_scope.to_string(),
                issued_at: now,
                rotated: false,
                revoked: false,
                inactive: false,
            },
        );
        body.insert("refresh_token".into(), refresh_token.into());
    }

    if d.client_info {
        // What MSAL derives `home_account_id` (`uid.utid`) from.
        let info = json!({"uid": d.user.object_id, "utid": tenant_id});
        body.insert(
            "client_info".into(),
            b64url(info.to_string().as_bytes()).into(),
        );
    }

    if d.scopes.has("openid") {
        let mut id = json!({
            "aud": d.app.client_id,
            "iss": inner.issuer(&tenant_id),
            "iat": iat,
            "nbf": iat,
            "exp": exp,
            "name": d.user.display_name,
            "oid": d.user.object_id,
            "preferred_username": d.user.upn,
            "sub": pairwise(&d.user.object_id, &d.app.client_id),
            "tid": tenant_id,
            "uti": random_token(16),
            "ver": "2.0",
        });
        if let Some(obj) = id.as_object_mut() {
            if d.scopes.has("email") {
                obj.insert("email".into(), d.user.upn.clone().into());
            }
            if let Some(nonce) = d.nonce {
                obj.insert("nonce".into(), nonce.into());
            }
        }
        let id_token = key.sign(&id).map_err(|e| server_error(&e))?;
        body.insert("id_token".into(), id_token.into());
    }
    Ok(Value::Object(body))
}

/// A client-credentials token: `roles` are the app's application permissions on `resource`
/// (none, and no `roles` claim, when consent was revoked).
pub(crate) fn app_only(
    inner: &Inner,
    key: &SigningKey,
    t: usize,
    app: &AppSeed,
    resource: &str,
    azpacr: u8,
) -> Result<Value, AadError> {
    let tenant_id = inner
        .tenant(t)
        .map(|t| t.id.clone())
        .ok_or_else(|| server_error("the tenant disappeared"))?;
    let roles: Vec<String> = if inner.consent_revoked(&app.client_id) {
        Vec::new()
    } else {
        app.application_permissions
            .iter()
            .find(|(r, _)| r.eq_ignore_ascii_case(resource))
            .map(|(_, p)| p.clone())
            .unwrap_or_default()
    };
    let now = inner.token_now().unix_timestamp();
    let exp = now.saturating_add(i64::try_from(inner.token_lifetime).unwrap_or(i64::MAX));
    let sp = service_principal_id(app);
    let mut claims = json!({
        "aud": resource,
        "iss": inner.issuer(&tenant_id),
        "iat": now,
        "nbf": now,
        "exp": exp,
        "tid": tenant_id,
        "oid": sp,
        "sub": sp,
        "appid": app.client_id,
        "azp": app.client_id,
        "azpacr": azpacr.to_string(),
        "app_displayname": app.name,
        "idtyp": "app",
        "ver": "2.0",
        "uti": random_token(16),
    });
    if !roles.is_empty()
        && let Some(obj) = claims.as_object_mut()
    {
        obj.insert("roles".into(), roles.into());
    }
    let access_token = key.sign(&claims).map_err(|e| server_error(&e))?;
    let mut body = Map::new();
    body.insert("token_type".into(), "Bearer".into());
    body.insert("expires_in".into(), inner.token_lifetime.into());
    body.insert("ext_expires_in".into(), inner.token_lifetime.into());
    if let Some(refresh_in) = inner.refresh_in {
        body.insert("refresh_in".into(), refresh_in.into());
    }
    body.insert("access_token".into(), access_token.into());
    Ok(Value::Object(body))
}

/// A pairwise subject: stable per (user, audience), opaque.
fn pairwise(oid: &str, audience: &str) -> String {
    b64url(&Sha256::digest(format!("{oid}|{audience}").as_bytes()))
}

pub(crate) fn server_error(detail: &str) -> AadError {
    AadError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        50000,
        format!(
            "There was an error issuing a token or an issue with our sign-in service. {detail}"
        ),
    )
}
