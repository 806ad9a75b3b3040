//! End-user sign-in: an application starts a login for its user; the browser comes back to
//! `GET /service/oauth2/authorize`, which stores the account and shows what happened.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use exgate_core::auth::RedirectParams;
use exgate_core::model::Principal;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::{ApiError, AppState};

/// Device code sign-ins started through the API, by login ID.
#[derive(Debug, Default)]
pub struct DeviceLogins(Mutex<HashMap<String, LoginStatus>>);

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LoginStatus {
    Pending,
    SignedIn {
        principal: String,
        mailbox: Option<String>,
    },
    Failed {
        error: String,
        hint: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginBody {
    /// The application's own ID for its user; the linked mailbox is stored under it.
    principal: String,
    /// `browser` (authorization code + PKCE; default) or `device_code`.
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    login_hint: Option<String>,
}

pub(crate) async fn start(
    caller: Caller,
    State(s): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<LoginBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let connection = s.connections.get(&name).await?.connection;
    caller.may_use(connection.id)?;
    let principal = body
        .principal
        .parse::<Principal>()
        .map_err(|e| ApiError::bad_request(format!("invalid principal: {}", e.0)))?;
    match body.method.as_deref().unwrap_or("browser") {
        "browser" => {
            let redirect_uri = s.redirect_uri();
            let login = s
                .signin
                .start_browser_login(
                    &name,
                    Some(principal),
                    &redirect_uri,
                    body.login_hint.as_deref(),
                )
                .await?;
            Ok((
                StatusCode::CREATED,
                Json(serde_json::json!({
                    "method": "browser",
                    "authorization_url": login.url,
                    "redirect_uri": redirect_uri,
                    "expires_in": 600,
                })),
            ))
        }
        "device_code" => {
            let login = s.signin.start_device_login(&name).await?;
            let id = uuid::Uuid::new_v4().to_string();
            let a = &login.authorization;
            let answer = serde_json::json!({
                "method": "device_code",
                "login_id": id,
                "user_code": a.user_code,
                "verification_uri": a.verification_uri,
                "message": a.message,
                "expires_in": a.expires_in.as_secs(),
            });
            s.device_logins
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id.clone(), LoginStatus::Pending);
            let (signin, logins) = (Arc::clone(&s.signin), Arc::clone(&s.device_logins));
            tokio::spawn(async move {
                let status = match signin.finish_device_login(login, Some(principal)).await {
                    Ok(a) => LoginStatus::SignedIn {
                        principal: a.principal.to_string(),
                        mailbox: a.mailbox.map(|m| m.to_string()),
                    },
                    Err(e) => {
                        let api = ApiError::from(e);
                        LoginStatus::Failed {
                            error: api.message,
                            hint: api.hint,
                        }
                    }
                };
                logins
                    .0
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(id, status);
            });
            Ok((StatusCode::CREATED, Json(answer)))
        }
        other => Err(ApiError::bad_request(format!(
            "`{other}` is not a sign-in method; expected browser or device_code"
        ))),
    }
}

pub(crate) async fn status(
    caller: Caller,
    State(s): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<LoginStatus>, ApiError> {
    let connection = s.connections.get(&name).await?.connection;
    caller.may_use(connection.id)?;
    let status = s
        .device_logins
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&id)
        .cloned();
    status.map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no device sign-in `{id}`"),
        )
    })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(status: StatusCode, title: &str, body: &str) -> (StatusCode, Html<String>) {
    (
        status,
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} – exgate</title>\
             <style>body{{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;line-height:1.5}}\
             code{{background:#eee;padding:0 .2em}}</style></head><body><h1>{t}</h1>{body}</body></html>",
            t = escape(title)
        )),
    )
}

#[derive(Debug, Deserialize)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Where the browser returns after signing in. Public: the `state` ties it to a sign-in.
pub(crate) async fn callback(
    State(s): State<AppState>,
    Query(q): Query<CallbackQuery>,
) -> (StatusCode, Html<String>) {
    let params = RedirectParams {
        code: q.code,
        state: q.state,
        error: q.error,
        error_description: q.error_description,
    };
    match s.signin.finish_browser_login(params).await {
        Ok(account) => page(
            StatusCode::OK,
            "Signed in",
            &format!(
                "<p>The mailbox <code>{}</code> is now linked for <code>{}</code>. You can close this window.</p>",
                escape(account.mailbox.as_ref().map_or("-", |m| m.as_str())),
                escape(account.principal.as_str())
            ),
        ),
        Err(e) => {
            let api = ApiError::from(e);
            let fix = api
                .hint
                .as_deref()
                .map(|h| format!("<p><strong>How to fix it:</strong> {}</p>", escape(h)))
                .unwrap_or_default();
            page(
                StatusCode::BAD_REQUEST,
                "Sign-in failed",
                &format!("<p>{}</p>{fix}", escape(&api.message)),
            )
        }
    }
}
