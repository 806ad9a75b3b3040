//! End-user sign-in: an application starts a login for its user; the browser comes back to
//! `GET /service/oauth2/authorize`, which stores the account and shows what happened.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Html;
use exgate_core::auth::RedirectParams;
use exgate_core::model::Principal;
use exgate_core::store::LoginOutcome;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::extract::{Json, Path, Query};
use crate::openapi::CallerErrors;
use crate::{ApiError, AppState};

/// Session-only sign-ins started through the API (browser or device code): nothing of them may
/// reach the store, so only this process knows their status, by login ID, for
/// `GET …/logins/{login_id}`. Every other sign-in's status is in the store
/// ([`SignIn::record_login_started`]), so it answers on every gateway. At most [`Logins::CAP`] are kept; beyond it the oldest is forgotten
/// (its status route then answers 404).
///
/// [`SignIn::record_login_started`]: exgate_core::auth::SignIn::record_login_started
#[derive(Debug, Default)]
pub struct Logins(Mutex<LoginsInner>);

#[derive(Debug, Default)]
struct LoginsInner {
    /// By login ID.
    by_id: HashMap<String, Login>,
    /// Login IDs, oldest first.
    order: VecDeque<String>,
}

#[derive(Debug)]
struct Login {
    connection: String,
    status: LoginStatus,
    /// Where the user's browser goes after the callback (checked against the connection's
    /// allow-list when the sign-in started).
    return_url: Option<url::Url>,
}

impl Logins {
    /// The most sign-ins remembered.
    pub const CAP: usize = exgate_core::auth::LOGIN_STATUS_CAP;

    fn lock(&self) -> std::sync::MutexGuard<'_, LoginsInner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers a new pending sign-in on `connection` under a new login ID.
    fn start(&self, connection: &str, return_url: Option<url::Url>) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        self.start_with_id(id.clone(), connection, return_url);
        id
    }

    /// [`Logins::start`] with the login ID chosen.
    fn start_with_id(&self, id: String, connection: &str, return_url: Option<url::Url>) {
        let mut inner = self.lock();
        while inner.order.len() >= Self::CAP {
            if let Some(old) = inner.order.pop_front() {
                inner.by_id.remove(&old);
            }
        }
        inner.by_id.insert(
            id.clone(),
            Login {
                connection: connection.to_owned(),
                status: LoginStatus::Pending,
                return_url,
            },
        );
        inner.order.push_back(id);
    }

    /// Records how the sign-in ended; answers where to send the user's browser, if anywhere.
    fn finish(&self, id: &str, status: LoginStatus) -> Option<url::Url> {
        let mut inner = self.lock();
        let login = inner.by_id.get_mut(id)?;
        login.status = status;
        login.return_url.clone()
    }

    fn status(&self, connection: &str, id: &str) -> Option<LoginStatus> {
        self.lock()
            .by_id
            .get(id)
            .filter(|l| l.connection == connection)
            .map(|l| l.status.clone())
    }

    /// How many sign-ins are remembered.
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a browser sign-in carries to its callback, on whichever gateway that arrives.
#[derive(Serialize, Deserialize)]
struct AppData {
    login_id: String,
    return_url: Option<String>,
}

fn status_url(connection: &str, id: &str) -> String {
    format!("/api/v1/connections/{connection}/logins/{id}")
}

/// Where a browser or device code sign-in stands.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LoginStatus {
    /// The user has not finished yet.
    Pending,
    /// The mailbox is linked for `principal`.
    SignedIn {
        principal: String,
        mailbox: Option<String>,
    },
    /// The sign-in failed; `hint` says how to fix it.
    Failed { error: String, hint: Option<String> },
}

impl From<LoginOutcome> for LoginStatus {
    fn from(o: LoginOutcome) -> Self {
        match o {
            LoginOutcome::Pending => Self::Pending,
            LoginOutcome::SignedIn { principal, mailbox } => Self::SignedIn { principal, mailbox },
            LoginOutcome::Failed { error, hint } => Self::Failed { error, hint },
        }
    }
}

impl From<&LoginStatus> for LoginOutcome {
    fn from(s: &LoginStatus) -> Self {
        match s.clone() {
            LoginStatus::Pending => Self::Pending,
            LoginStatus::SignedIn { principal, mailbox } => Self::SignedIn { principal, mailbox },
            LoginStatus::Failed { error, hint } => Self::Failed { error, hint },
        }
    }
}

/// A sign-in to start for one of the application's users.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginBody {
    /// The application's own ID for its user; the linked mailbox is stored under it.
    #[schema(example = "u42")]
    principal: String,
    /// `browser` (authorization code + PKCE; default) or `device_code`.
    #[serde(default)]
    #[schema(example = "browser")]
    method: Option<String>,
    /// Browser: prefills the user name on the sign-in page.
    #[serde(default)]
    login_hint: Option<String>,
    /// Keep this user's tokens in the gateway's memory only: never written to its store, gone
    /// when the gateway stops (the user then signs in again).
    #[serde(default)]
    session_only: bool,
    /// Browser: where to send the user after the sign-in, with `login_id` and `status`
    /// (`signed_in` or `failed`) added to its query. It must be at or below one of the
    /// connection's `return_urls`.
    #[serde(default)]
    #[schema(example = "https://portal.contoso.com/exchange/linked")]
    return_url: Option<String>,
}

/// A started sign-in: where to send the user's browser, or the code the user enters.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "method", rename_all = "snake_case")]
pub(crate) enum LoginStarted {
    /// Send the user's browser to `authorization_url`; Entra returns it to `redirect_uri`; poll
    /// `status_url` to learn when the user finished.
    Browser {
        login_id: String,
        /// `GET` it (with the same key) for `pending`, `signed_in` or `failed`.
        status_url: String,
        authorization_url: String,
        /// `<public URL>/service/oauth2/authorize`, registered as a Web redirect URI.
        redirect_uri: String,
        /// Seconds the sign-in may take.
        expires_in: u64,
    },
    /// Show `message` (or `user_code` and `verification_uri`) to the user, then poll
    /// `GET …/logins/{login_id}`.
    DeviceCode {
        login_id: String,
        /// `GET` it (with the same key) for `pending`, `signed_in` or `failed`.
        status_url: String,
        user_code: String,
        verification_uri: String,
        message: Option<String>,
        /// Seconds the code is valid.
        expires_in: u64,
    },
}

/// Start a sign-in for one of the application's users.
#[utoipa::path(
    post,
    path = "/api/v1/connections/{connection}/logins",
    tag = "sign-in",
    params(("connection" = String, Path, description = "A delegated connection's name")),
    request_body = LoginBody,
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 201, description = "Started", body = LoginStarted),
        (status = 400, description = "`invalid_input`: a bad principal or method, or the connection is not delegated", body = ApiError),
        (status = 403, description = "`forbidden`: the API key may not use this connection", body = ApiError),
        (status = 404, description = "`not_found`: no such connection", body = ApiError),
        (status = 422, description = "The body is not JSON of this shape"),
        (status = 502, description = "`identity_provider_error`: Entra ID refused (the hint has the fix)", body = ApiError),
        CallerErrors,
    ),
)]
pub(crate) async fn start(
    caller: Caller,
    State(s): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<LoginBody>,
) -> Result<(StatusCode, Json<LoginStarted>), ApiError> {
    let connection = caller.connection(&s, &name).await?;
    let principal = body
        .principal
        .parse::<Principal>()
        .map_err(|e| ApiError::bad_request(format!("invalid principal: {}", e.0)))?;
    let method = body.method.as_deref().unwrap_or("browser");
    let return_url = match &body.return_url {
        Some(_) if method != "browser" => {
            return Err(ApiError::bad_request(
                "`return_url` is for browser sign-ins; a device code sign-in has no browser to send back",
            ));
        }
        Some(url) => Some(s.signin.check_return_url(&name, url).await?),
        None => None,
    };
    match method {
        "browser" => {
            let redirect_uri = s.redirect_uri();
            let hint = body.login_hint.as_deref();
            // The login ID and return URL travel with the sign-in (sealed in the store), so the
            // callback finds them on whichever gateway the browser comes back to.
            let id = uuid::Uuid::new_v4().to_string();
            let app_data = serde_json::to_string(&AppData {
                login_id: id.clone(),
                return_url: return_url.as_ref().map(|u| u.to_string()),
            })
            .ok();
            let login = s
                .signin
                .start_browser_with_app_data(
                    &name,
                    principal,
                    &redirect_uri,
                    hint,
                    body.session_only,
                    app_data,
                )
                .await?;
            if body.session_only {
                // Its callback must come back to this process (nothing of it is in the store),
                // so only this process can know its status.
                s.logins.start_with_id(id.clone(), &name, return_url);
            } else {
                s.signin.record_login_started(&id, connection.id).await?;
            }
            Ok((
                StatusCode::CREATED,
                Json(LoginStarted::Browser {
                    status_url: status_url(&name, &id),
                    login_id: id,
                    authorization_url: login.url,
                    redirect_uri,
                    expires_in: 600,
                }),
            ))
        }
        "device_code" => {
            let login = if body.session_only {
                s.signin.start_device_session(&name).await?
            } else {
                s.signin.start_device_login(&name).await?
            };
            // A session-only sign-in's status stays in this process (nothing of it may reach
            // the store); any other's is in the store, so every gateway answers its status.
            let stored = !body.session_only;
            let id = if stored {
                let id = uuid::Uuid::new_v4().to_string();
                s.signin.record_login_started(&id, connection.id).await?;
                id
            } else {
                s.logins.start(&name, None)
            };
            let a = &login.authorization;
            let answer = LoginStarted::DeviceCode {
                status_url: status_url(&name, &id),
                login_id: id.clone(),
                user_code: a.user_code.clone(),
                verification_uri: a.verification_uri.clone(),
                message: a.message.clone(),
                expires_in: a.expires_in.as_secs(),
            };
            let (signin, logins) = (Arc::clone(&s.signin), Arc::clone(&s.logins));
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
                if stored {
                    if let Err(e) = signin
                        .record_login_outcome(&id, &LoginOutcome::from(&status))
                        .await
                    {
                        tracing::warn!(error = %e, "could not record how a sign-in ended");
                    }
                } else {
                    logins.finish(&id, status);
                }
            });
            Ok((StatusCode::CREATED, Json(answer)))
        }
        other => Err(ApiError::bad_request(format!(
            "`{other}` is not a sign-in method; expected browser or device_code"
        ))),
    }
}

/// Where a browser or device code sign-in stands.
#[utoipa::path(
    get,
    path = "/api/v1/connections/{connection}/logins/{login}",
    tag = "sign-in",
    params(
        ("connection" = String, Path, description = "The connection's name"),
        ("login" = String, Path, description = "The `login_id` of a started sign-in"),
    ),
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 200, description = "`pending`, `signed_in` or `failed`", body = LoginStatus),
        (status = 403, description = "`forbidden`: the API key may not use this connection", body = ApiError),
        (status = 404, description = "`not_found`: no such connection or sign-in", body = ApiError),
        CallerErrors,
    ),
)]
pub(crate) async fn status(
    caller: Caller,
    State(s): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<LoginStatus>, ApiError> {
    let connection = caller.connection(&s, &name).await?;
    // The store answers only for a sign-in started on this connection, as memory does.
    if let Some(outcome) = s.signin.login_status(connection.id, &id).await? {
        return Ok(Json(outcome.into()));
    }
    s.logins.status(&name, &id).map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no sign-in `{id}` on this connection"),
        )
        .with_hint("a login ID is kept an hour, until 10,000 newer sign-ins were started (a session-only sign-in's: on the gateway that started it, and not across restarts); start the sign-in again")
    })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The callback page's one style block; its hash is the page's only allowance in its CSP.
const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;line-height:1.5}\
                     code{background:#eee;padding:0 .2em}";

static PAGE_CSP: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| crate::html::csp_with_styles(&[STYLE]));

fn page(status: StatusCode, title: &str, body: &str) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    (
        status,
        [(
            axum::http::header::CONTENT_SECURITY_POLICY,
            PAGE_CSP.clone(),
        )],
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} – exgate</title>\
             <style>{STYLE}</style></head><body><h1>{t}</h1>{body}</body></html>",
            t = escape(title)
        )),
    )
        .into_response()
}

/// Sends the browser on to the application's return URL (See Other: the next request is a
/// GET). The callback's own URL, which carries the code, is not sent on as a referrer: every
/// HTML answer has `Referrer-Policy: no-referrer`.
fn return_to(url: &url::Url) -> axum::response::Response {
    let mut answer = page(
        StatusCode::SEE_OTHER,
        "Back to the application",
        &format!(
            "<p>Continue to <a href=\"{0}\">{0}</a>.</p>",
            escape(url.as_str())
        ),
    );
    if let Ok(location) = axum::http::HeaderValue::from_str(url.as_str()) {
        answer
            .headers_mut()
            .insert(axum::http::header::LOCATION, location);
    }
    answer
}

/// What the identity provider appends to the redirect URI.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CallbackQuery {
    /// The authorization code.
    code: Option<String>,
    /// Ties the answer to the sign-in that was started (single use, 10 minutes).
    state: Option<String>,
    /// Set when the sign-in failed.
    error: Option<String>,
    error_description: Option<String>,
}

/// Where the browser returns after signing in. Public: the `state` ties it to a sign-in.
///
/// Renders an HTML page: "Signed in", or the precise failure and its fix.
#[utoipa::path(
    get,
    path = "/service/oauth2/authorize",
    tag = "sign-in",
    params(CallbackQuery),
    responses(
        (status = 200, description = "Signed in: the mailbox is linked", content_type = "text/html", body = String),
        (status = 303, description = "The application gave a `return_url`: the browser goes there, with `login_id` and `status` (`signed_in` or `failed`) in its query", content_type = "text/html", body = String),
        (status = 400, description = "The sign-in failed (unknown, used or expired `state`, a refusal): what happened and how to fix it", content_type = "text/html", body = String),
    ),
)]
pub(crate) async fn callback(
    State(s): State<AppState>,
    Query(q): Query<CallbackQuery>,
) -> axum::response::Response {
    let params = RedirectParams {
        code: q.code,
        state: q.state,
        error: q.error,
        error_description: q.error_description,
    };
    let (app_data, finished) = s.signin.finish_browser_login_with_app_data(params).await;
    let finished = finished.map_err(ApiError::from);
    let app_data = app_data.and_then(|d| serde_json::from_str::<AppData>(&d).ok());
    let back = match app_data {
        Some(data) => {
            let id = data.login_id;
            let status = match &finished {
                Ok(a) => LoginStatus::SignedIn {
                    principal: a.principal.to_string(),
                    mailbox: a.mailbox.as_ref().map(|m| m.to_string()),
                },
                Err(api) => LoginStatus::Failed {
                    error: api.message.clone(),
                    hint: api.hint.clone(),
                },
            };
            // In the store, so the status answers on every gateway (a session-only sign-in's is
            // in this process's memory only: it matches no row there).
            if let Err(e) = s
                .signin
                .record_login_outcome(&id, &LoginOutcome::from(&status))
                .await
            {
                tracing::warn!(error = %e, "could not record how a sign-in ended");
            }
            s.logins.finish(&id, status);
            // Checked against the connection's allow-list when the sign-in started.
            data.return_url
                .as_deref()
                .and_then(|u| url::Url::parse(u).ok())
                .map(|back| (id, back))
        }
        None => None,
    };
    if let Some((id, mut url)) = back {
        // The application learns the details from its status route; the URL says only which
        // sign-in this was and how it ended (no code, no error text an attacker could inject).
        url.query_pairs_mut()
            .append_pair("login_id", &id)
            .append_pair(
                "status",
                if finished.is_ok() {
                    "signed_in"
                } else {
                    "failed"
                },
            );
        return return_to(&url);
    }
    match finished {
        Ok(account) => page(
            StatusCode::OK,
            "Signed in",
            &format!(
                "<p>The mailbox <code>{}</code> is now linked for <code>{}</code>. You can close this window.</p>",
                escape(account.mailbox.as_ref().map_or("-", |m| m.as_str())),
                escape(account.principal.as_str())
            ),
        ),
        Err(api) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_are_capped_oldest_first_and_found_only_on_their_connection() {
        let logins = Logins::default();
        let first = logins.start("web", None);
        for _ in 1..Logins::CAP {
            logins.start("web", None);
        }
        assert!(logins.status("web", &first).is_some());
        assert!(logins.status("other", &first).is_none());
        let newest = logins.start("web", None);
        assert_eq!(logins.len(), Logins::CAP);
        assert!(logins.status("web", &first).is_none(), "the oldest went");
        assert!(matches!(
            logins.status("web", &newest),
            Some(LoginStatus::Pending)
        ));
    }
}
