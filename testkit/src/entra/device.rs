//! The device authorization grant: `POST /{tenant}/oauth2/v2.0/devicecode` and the page where
//! the user enters the code, `GET/POST /devicelogin`.

use std::fmt;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use super::error::{AadError, Ctx, aadsts, no_store};
use super::html;
use super::issue;
use super::params::Params;
use super::scopes::ScopeProblem;
use super::state::{
    DEVICE_CODE_LIFETIME, DeviceGrant, DeviceStatus, EntraState, Inner, TenantLookup, random_token,
    user_code,
};

pub(crate) async fn devicecode(
    State(state): State<EntraState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = Params::parse(&body);
    let mut inner = state.lock();
    let ctx = Ctx::new(inner.base_url.clone(), inner.now(), &headers);
    match start(&mut inner, &tenant, &params) {
        Ok(body) => {
            let mut response = (StatusCode::OK, Json(body)).into_response();
            no_store(&mut response);
            ctx.decorate(&mut response);
            response
        }
        Err(e) => e.into_json(&ctx),
    }
}

fn start(
    inner: &mut Inner,
    tenant_segment: &str,
    params: &Params,
) -> Result<serde_json::Value, AadError> {
    let client_id = params.get("client_id");
    let t = match inner.find_tenant(tenant_segment, client_id) {
        TenantLookup::Found(t) => t,
        TenantLookup::NotFound => {
            return Err(aadsts::tenant_not_found(tenant_segment, "invalid_request"));
        }
    };
    let client_id = client_id.ok_or_else(|| aadsts::missing_parameter("client_id"))?;
    let tenant = inner
        .tenant(t)
        .ok_or_else(|| aadsts::tenant_not_found(tenant_segment, "invalid_request"))?;
    let tenant_id = tenant.id.clone();
    let domain = tenant.domain.clone();
    let app = inner
        .app(t, client_id)
        .cloned()
        .ok_or_else(|| aadsts::app_not_found(client_id, &domain))?;
    let raw_scope = params
        .get("scope")
        .ok_or_else(|| aadsts::missing_parameter("scope"))?;
    let scopes = issue::parse_scopes(inner, t, raw_scope)?;
    if scopes.single_resource() == Err(ScopeProblem::MultipleResources) {
        return Err(aadsts::multiple_resources(raw_scope));
    }

    let device_code = random_token(48);
    let mut code = user_code();
    while inner.device_codes.values().any(|g| g.user_code == code) {
        code = user_code();
    }
    let now = inner.now();
    let interval = inner.device_interval;
    inner.device_codes.insert(
        device_code.clone(),
        DeviceGrant {
            tenant_id,
            client_id: app.client_id.clone(),
            scope: raw_scope.to_string(),
            user_code: code.clone(),
            expires_at: now
                .checked_add(time::Duration::seconds(
                    i64::try_from(DEVICE_CODE_LIFETIME).unwrap_or(900),
                ))
                .unwrap_or(now),
            interval,
            status: DeviceStatus::Pending,
            last_poll: None,
        },
    );
    let verification_uri = format!("{}/devicelogin", inner.base_url);
    Ok(json!({
        "user_code": code,
        "device_code": device_code,
        "verification_uri": verification_uri,
        "expires_in": DEVICE_CODE_LIFETIME,
        "interval": interval,
        "message": format!(
            "To sign in, use a web browser to open the page {verification_uri} and enter the code \
             {code} to authenticate."
        ),
    }))
}

/// Why a user code cannot be approved or declined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UserCodeProblem {
    Empty,
    Unknown(String),
    Expired(String),
    AlreadyHandled(String),
}

impl UserCodeProblem {
    fn aadsts(&self) -> AadError {
        let (code, message) = match self {
            Self::Empty => (90119, "The user code is null or empty.".to_string()),
            Self::Unknown(c) => (
                70018,
                format!("Invalid verification code. No pending sign-in has the code '{c}'."),
            ),
            Self::Expired(_) => (70019, "Verification code expired.".to_string()),
            Self::AlreadyHandled(_) => (
                90120,
                "The request was already authorized or declined.".to_string(),
            ),
        };
        AadError::bad_request("invalid_request", code, message)
    }
}

impl fmt::Display for UserCodeProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "the user code is empty (AADSTS90119)"),
            Self::Unknown(c) => write!(f, "no device code has the user code `{c}` (AADSTS70018)"),
            Self::Expired(c) => write!(f, "the user code `{c}` has expired (AADSTS70019)"),
            Self::AlreadyHandled(c) => write!(
                f,
                "the user code `{c}` was already approved or declined (AADSTS90120)"
            ),
        }
    }
}

/// The device code behind a pending, unexpired user code.
pub(crate) fn pending_device_code(inner: &Inner, user_code: &str) -> Result<String, String> {
    find_pending(inner, user_code).map_err(|e| e.to_string())
}

fn find_pending(inner: &Inner, user_code: &str) -> Result<String, UserCodeProblem> {
    let wanted: String = user_code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if wanted.is_empty() {
        return Err(UserCodeProblem::Empty);
    }
    let Some((device_code, grant)) = inner
        .device_codes
        .iter()
        .find(|(_, g)| g.user_code == wanted)
    else {
        return Err(UserCodeProblem::Unknown(wanted));
    };
    if inner.now() >= grant.expires_at {
        return Err(UserCodeProblem::Expired(wanted));
    }
    if grant.status != DeviceStatus::Pending {
        return Err(UserCodeProblem::AlreadyHandled(wanted));
    }
    Ok(device_code.clone())
}

pub(crate) async fn login_page(RawQuery(query): RawQuery) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    device_form(params.get("user_code"), None, None, StatusCode::OK)
}

pub(crate) async fn login_submit(
    State(state): State<EntraState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = Params::parse(&body);
    let mut inner = state.lock();
    let ctx = Ctx::new(inner.base_url.clone(), inner.now(), &headers);
    let code = params.get("user_code");
    let login = params.get("login");
    let device_code = match find_pending(&inner, code.unwrap_or_default()) {
        Ok(device_code) => device_code,
        Err(problem) => {
            return device_form(
                code,
                login,
                Some(&problem.aadsts()),
                StatusCode::BAD_REQUEST,
            );
        }
    };
    let Some(grant) = inner.device_codes.get(&device_code) else {
        return device_form(code, login, None, StatusCode::BAD_REQUEST);
    };
    let client_id = grant.client_id.clone();
    let tenant_id = grant.tenant_id.clone();
    let t = inner.tenant_index_by_id(&tenant_id).unwrap_or_default();
    let app_name = inner
        .app(t, &client_id)
        .map_or_else(|| client_id.clone(), |a| a.name.clone());

    match params.get("action") {
        Some("decline") => {
            if let Some(grant) = inner.device_codes.get_mut(&device_code) {
                grant.status = DeviceStatus::Declined;
            }
            message(&format!(
                "You declined to sign in to the {app_name} application on your device. You may now \
                 close this window."
            ))
        }
        Some("approve") => {
            let domain = inner
                .tenant(t)
                .map(|x| x.domain.clone())
                .unwrap_or_default();
            let Some(user) = login.and_then(|l| inner.user(t, l)).cloned() else {
                return device_form(
                    code,
                    login,
                    Some(&aadsts::user_not_found(&domain)),
                    StatusCode::OK,
                );
            };
            if params.get("passwd") != Some(user.password.as_str()) {
                return device_form(code, login, Some(&aadsts::bad_password()), StatusCode::OK);
            }
            if inner.consent_revoked(&client_id) {
                let name = app_name.clone();
                return aadsts::consent_missing(&client_id, &name).into_html(&ctx);
            }
            if let Some(grant) = inner.device_codes.get_mut(&device_code) {
                grant.status = DeviceStatus::Approved {
                    user_oid: user.object_id.clone(),
                };
            }
            message(&format!(
                "You have signed in to the {app_name} application on your device. You may now close \
                 this window."
            ))
        }
        _ => device_form(
            code,
            login,
            Some(&aadsts::missing_parameter("action")),
            StatusCode::BAD_REQUEST,
        ),
    }
}

fn message(text: &str) -> Response {
    Html(html::page(
        "Device sign-in",
        &format!(
            "<h1>Device sign-in</h1>\n<p id=\"message\">{}</p>",
            html::escape(text)
        ),
    ))
    .into_response()
}

fn device_form(
    code: Option<&str>,
    login: Option<&str>,
    error: Option<&AadError>,
    status: StatusCode,
) -> Response {
    let error_html = error.map_or_else(String::new, |e| {
        format!(
            "<p id=\"error\" class=\"error\">{}</p>\n",
            html::escape(&format!("AADSTS{}: {}", e.code, e.message))
        )
    });
    let body = format!(
        "<h1>Enter code</h1>\n<p>Enter the code displayed on your app or device.</p>\n{error_html}\
         <form method=\"post\" action=\"/devicelogin\">\n\
         <label>Code <input type=\"text\" name=\"user_code\" value=\"{code}\"></label>\n\
         <label>Email, phone, or Skype <input type=\"email\" name=\"login\" value=\"{login}\"></label>\n\
         <label>Password <input type=\"password\" name=\"passwd\" value=\"\"></label>\n\
         <button type=\"submit\" name=\"action\" value=\"approve\">Sign in</button>\n\
         <button type=\"submit\" name=\"action\" value=\"decline\">Cancel</button>\n</form>",
        code = html::escape(code.unwrap_or_default()),
        login = html::escape(login.unwrap_or_default()),
    );
    (status, Html(html::page("Enter code", &body))).into_response()
}
