//! `POST /{tenant}/oauth2/v2.0/token`: every grant the mock supports.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::Fault;
use super::client_auth::{self, Authed, GrantKind};
use super::error::{AadError, Ctx, aadsts, entra_instant, no_store};
use super::issue::{self, Delegation};
use super::jwt::{SigningKey, sha256_b64url};
use super::params::Params;
use super::scopes::resource_app_id;
use super::state::{
    CODE_LIFETIME, DeviceStatus, EntraState, Inner, REFRESH_INACTIVITY, TenantLookup,
};

const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

pub(crate) async fn get(State(state): State<EntraState>, headers: HeaderMap) -> Response {
    let ctx = {
        let inner = state.lock();
        Ctx::new(inner.base_url.clone(), inner.now(), &headers)
    };
    aadsts::get_on_post_endpoint().into_json(&ctx)
}

pub(crate) async fn post(
    State(state): State<EntraState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (latency, fault, ctx) = {
        let mut inner = state.lock();
        inner.token_requests = inner.token_requests.saturating_add(1);
        let fault = match inner.fault {
            Some((fault, remaining)) => {
                inner.fault = (remaining > 1).then_some((fault, remaining - 1));
                Some(fault)
            }
            None => None,
        };
        let ctx = Ctx::new(inner.base_url.clone(), inner.now(), &headers);
        (inner.latency, fault, ctx)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(fault) = fault {
        return fault_error(fault).into_json(&ctx);
    }
    let params = Params::parse(&body);
    let result = {
        let mut inner = state.lock();
        token(&mut inner, &state.key, &tenant, &params, &headers)
    };
    match result {
        Ok(body) => {
            let mut response = (StatusCode::OK, Json(body)).into_response();
            no_store(&mut response);
            ctx.decorate(&mut response);
            response
        }
        Err(e) => e.into_json(&ctx),
    }
}

fn fault_error(fault: Fault) -> AadError {
    match fault {
        Fault::TooManyRequests { retry_after_secs } => {
            let mut e = AadError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                90055,
                format!(
                    "There are too many incoming requests. Retry after {retry_after_secs} seconds."
                ),
            );
            e.retry_after = Some(retry_after_secs);
            e
        }
        Fault::ServerError { status } => {
            let status = StatusCode::from_u16(status)
                .ok()
                .filter(|s| s.is_server_error())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let (code, message) = if status == StatusCode::SERVICE_UNAVAILABLE {
                (90033, "A transient error has occurred. Please try again.")
            } else {
                (
                    50000,
                    "There was an error issuing a token or an issue with our sign-in service.",
                )
            };
            AadError::new(status, "temporarily_unavailable", code, message)
        }
    }
}

fn token(
    inner: &mut Inner,
    key: &SigningKey,
    tenant_segment: &str,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Value, AadError> {
    let basic = client_auth::basic_credentials(headers)?;
    let client_hint = params
        .get("client_id")
        .map(str::to_string)
        .or_else(|| basic.as_ref().map(|(id, _)| id.clone()));
    let t = match inner.find_tenant(tenant_segment, client_hint.as_deref()) {
        TenantLookup::Found(t) => t,
        TenantLookup::NotFound => {
            return Err(aadsts::tenant_not_found(tenant_segment, "invalid_request"));
        }
    };
    let grant_type = params
        .get("grant_type")
        .ok_or_else(|| aadsts::missing_parameter("grant_type"))?;
    let grant = match grant_type {
        "authorization_code" => GrantKind::AuthorizationCode,
        "refresh_token" => GrantKind::RefreshToken,
        "client_credentials" => GrantKind::ClientCredentials,
        "password" => GrantKind::Password,
        DEVICE_CODE_GRANT | "device_code" => GrantKind::DeviceCode,
        other => return Err(aadsts::unsupported_grant_type(other)),
    };
    let client = client_auth::authenticate(inner, t, tenant_segment, params, basic, grant)?;
    match grant {
        GrantKind::AuthorizationCode => authorization_code(inner, key, t, &client, params),
        GrantKind::RefreshToken => refresh_token(inner, key, t, &client, params),
        GrantKind::ClientCredentials => client_credentials(inner, key, t, &client, params),
        GrantKind::Password => password(inner, key, t, &client, params),
        GrantKind::DeviceCode => device_code(inner, key, t, &client, params),
    }
}

fn tenant_id(inner: &Inner, t: usize) -> String {
    inner.tenant(t).map(|x| x.id.clone()).unwrap_or_default()
}

fn authorization_code(
    inner: &mut Inner,
    key: &SigningKey,
    t: usize,
    client: &Authed,
    params: &Params,
) -> Result<Value, AadError> {
    let code = params
        .get("code")
        .ok_or_else(|| aadsts::missing_parameter("code"))?;
    let redirect_uri = params
        .get("redirect_uri")
        .ok_or_else(|| aadsts::missing_parameter("redirect_uri"))?;
    let now = inner.now();
    let tid = tenant_id(inner, t);
    let Some(record) = inner.codes.get(code) else {
        return Err(aadsts::invalid_code(
            "code",
            "It was not issued by this authority.",
        ));
    };
    if record.redeemed {
        return Err(aadsts::code_redeemed());
    }
    if record.tenant_id != tid {
        return Err(aadsts::wrong_tenant_for_code());
    }
    if !record.client_id.eq_ignore_ascii_case(&client.app.client_id) {
        return Err(aadsts::invalid_code(
            "code",
            "It was issued to another application.",
        ));
    }
    if now - record.issued_at > CODE_LIFETIME {
        return Err(aadsts::grant_expired_or_revoked());
    }
    if redirect_uri != record.redirect_uri {
        return Err(aadsts::reply_address_mismatch(
            redirect_uri,
            &record.redirect_uri,
        ));
    }
    if let Some(challenge) = &record.code_challenge {
        match params.get("code_verifier") {
            None => return Err(aadsts::verifier_missing()),
            Some(verifier) if sha256_b64url(verifier.as_bytes()) != *challenge => {
                return Err(aadsts::verifier_mismatch());
            }
            Some(_) => {}
        }
    }
    let user_oid = record.user_oid.clone();
    let nonce = record.nonce.clone();
    let raw_scope = params
        .get("scope")
        .map_or_else(|| record.scope.clone(), str::to_string);
    if let Some(record) = inner.codes.get_mut(code) {
        record.redeemed = true;
    }
    let user = inner
        .user_by_oid(t, &user_oid)
        .cloned()
        .ok_or_else(|| aadsts::invalid_code("code", "Its user no longer exists."))?;
    let scopes = issue::parse_scopes(inner, t, &raw_scope)?;
    issue::delegated(
        inner,
        key,
        &Delegation {
            t,
            app: &client.app,
            user: &user,
            scopes: &scopes,
            raw_scope: &raw_scope,
            nonce: nonce.as_deref(),
            azpacr: client.azpacr,
            always_refresh: false,
            client_info: params.get("client_info") == Some("1"),
        },
    )
}

fn refresh_token(
    inner: &mut Inner,
    key: &SigningKey,
    t: usize,
    client: &Authed,
    params: &Params,
) -> Result<Value, AadError> {
    let refresh_token = params
        .get("refresh_token")
        .ok_or_else(|| aadsts::missing_parameter("refresh_token"))?;
    let now = inner.now();
    let tid = tenant_id(inner, t);
    let Some(grant) = inner.refresh_tokens.get(refresh_token) else {
        return Err(AadError::invalid_grant(
            9002313,
            "Invalid request. Request is malformed or invalid. The refresh token was not issued by this authority.",
        ));
    };
    if grant.tenant_id != tid {
        return Err(aadsts::invalid_code(
            "refresh_token",
            "It was issued by another tenant.",
        ));
    }
    if !grant.client_id.eq_ignore_ascii_case(&client.app.client_id) {
        return Err(aadsts::invalid_code(
            "refresh_token",
            "It was issued to another application.",
        ));
    }
    if grant.revoked || grant.rotated {
        return Err(aadsts::grant_expired_or_revoked());
    }
    if grant.inactive || now - grant.issued_at > REFRESH_INACTIVITY {
        return Err(aadsts::refresh_token_inactive(&entra_instant(
            grant.issued_at,
        )));
    }
    let user_oid = grant.user_oid.clone();
    let raw_scope = params
        .get("scope")
        .map_or_else(|| grant.scope.clone(), str::to_string);
    let user = inner
        .user_by_oid(t, &user_oid)
        .cloned()
        .ok_or_else(aadsts::grant_expired_or_revoked)?;
    let scopes = issue::parse_scopes(inner, t, &raw_scope)?;
    if inner.mfa_required(&user) {
        let resource = scopes.single_resource().map(|(r, _)| r).unwrap_or_default();
        return Err(aadsts::mfa_required(&resource_app_id(&resource)));
    }
    let body = issue::delegated(
        inner,
        key,
        &Delegation {
            t,
            app: &client.app,
            user: &user,
            scopes: &scopes,
            raw_scope: &raw_scope,
            nonce: None,
            azpacr: client.azpacr,
            always_refresh: true,
            client_info: params.get("client_info") == Some("1"),
        },
    )?;
    inner.refresh_grants = inner.refresh_grants.saturating_add(1);
    // Entra keeps a refresh token valid after it answered a new one (until it expires or is
    // revoked); with the strict-rotation switch the one just used is spent.
    if inner.strict_rotation
        && let Some(grant) = inner.refresh_tokens.get_mut(refresh_token)
    {
        grant.rotated = true;
    }
    Ok(body)
}

fn client_credentials(
    inner: &mut Inner,
    key: &SigningKey,
    t: usize,
    client: &Authed,
    params: &Params,
) -> Result<Value, AadError> {
    let raw = params
        .get("scope")
        .ok_or_else(|| aadsts::missing_parameter("scope"))?;
    let tokens: Vec<&str> = raw.split_whitespace().collect();
    let [only] = tokens.as_slice() else {
        return Err(if tokens.iter().all(|s| s.ends_with("/.default")) {
            aadsts::multiple_resources(raw)
        } else {
            aadsts::client_credentials_scope(raw)
        });
    };
    if !only.ends_with("/.default") {
        return Err(aadsts::client_credentials_scope(raw));
    }
    let scopes = issue::parse_scopes(inner, t, only)?;
    let (resource, _) = scopes
        .single_resource()
        .map_err(|_| aadsts::multiple_resources(raw))?;
    if inner
        .dir
        .missing_service_principal(t, &client.app.client_id)
    {
        let tenant_id = inner.tenant(t).map(|x| x.id.clone()).unwrap_or_default();
        return Err(aadsts::missing_service_principal(
            &client.app.client_id,
            &tenant_id,
        ));
    }
    issue::app_only(inner, key, t, &client.app, &resource, client.azpacr)
}

fn password(
    inner: &mut Inner,
    key: &SigningKey,
    t: usize,
    client: &Authed,
    params: &Params,
) -> Result<Value, AadError> {
    let username = params
        .get("username")
        .ok_or_else(|| aadsts::missing_parameter("username"))?;
    let password = params
        .get("password")
        .ok_or_else(|| aadsts::missing_parameter("password"))?;
    let raw_scope = params
        .get("scope")
        .ok_or_else(|| aadsts::missing_parameter("scope"))?
        .to_string();
    let domain = inner
        .tenant(t)
        .map(|x| x.domain.clone())
        .unwrap_or_default();
    let user = inner
        .user(t, username)
        .cloned()
        .ok_or_else(|| aadsts::user_not_found(&domain))?;
    if user.password != password {
        return Err(aadsts::bad_password());
    }
    let scopes = issue::parse_scopes(inner, t, &raw_scope)?;
    if inner.mfa_required(&user) {
        let resource = scopes.single_resource().map(|(r, _)| r).unwrap_or_default();
        return Err(aadsts::mfa_required(&resource_app_id(&resource)));
    }
    issue::delegated(
        inner,
        key,
        &Delegation {
            t,
            app: &client.app,
            user: &user,
            scopes: &scopes,
            raw_scope: &raw_scope,
            nonce: None,
            azpacr: client.azpacr,
            always_refresh: false,
            client_info: params.get("client_info") == Some("1"),
        },
    )
}

fn device_code(
    inner: &mut Inner,
    key: &SigningKey,
    t: usize,
    client: &Authed,
    params: &Params,
) -> Result<Value, AadError> {
    let device_code = params
        .get("device_code")
        .or_else(|| params.get("code"))
        .ok_or_else(|| aadsts::missing_parameter("device_code"))?
        .to_string();
    let now = inner.now();
    let tid = tenant_id(inner, t);
    let Some(grant) = inner.device_codes.get_mut(&device_code) else {
        return Err(aadsts::bad_device_code());
    };
    if grant.tenant_id != tid || !grant.client_id.eq_ignore_ascii_case(&client.app.client_id) {
        return Err(aadsts::bad_device_code());
    }
    if now >= grant.expires_at {
        return Err(aadsts::device_code_expired());
    }
    let user_oid = match &grant.status {
        DeviceStatus::Declined => return Err(aadsts::device_code_declined()),
        DeviceStatus::Pending => {
            let too_soon = grant.interval > 0
                && grant.last_poll.is_some_and(|last| {
                    now - last
                        < time::Duration::seconds(i64::try_from(grant.interval).unwrap_or(i64::MAX))
                });
            grant.last_poll = Some(now);
            return Err(if too_soon {
                aadsts::slow_down(grant.interval)
            } else {
                aadsts::authorization_pending()
            });
        }
        DeviceStatus::Approved { user_oid } => user_oid.clone(),
    };
    let raw_scope = grant.scope.clone();
    let user = inner
        .user_by_oid(t, &user_oid)
        .cloned()
        .ok_or_else(aadsts::bad_device_code)?;
    let scopes = issue::parse_scopes(inner, t, &raw_scope)?;
    let body = issue::delegated(
        inner,
        key,
        &Delegation {
            t,
            app: &client.app,
            user: &user,
            scopes: &scopes,
            raw_scope: &raw_scope,
            nonce: None,
            azpacr: client.azpacr,
            always_refresh: false,
            client_info: params.get("client_info") == Some("1"),
        },
    )?;
    inner.device_codes.remove(&device_code);
    Ok(body)
}
