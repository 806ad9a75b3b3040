//! The admin console at `/admin`: server-rendered pages (maud templates, checked at compile
//! time) over the same core services as the API. No inline script; one stylesheet and one small
//! script (copy buttons) served by the gateway; every action works without JavaScript.
//!
//! Sessions are stateless: the cookie carries a random session ID, its expiry and an HMAC over
//! both and over a digest of the admin password as it stands ([`AdminCheck::binding`]), keyed
//! with a key derived from the master key. Every gateway with the same key file accepts it, and
//! `exgate-server admin reset` (a new password hash) ends every session at once. Forms carry a
//! CSRF token derived from the session ID (a signed double submit); the sign-in form one derived
//! from a random cookie of its own.
//!
//! [`AdminCheck::binding`]: exgate_core::admin::AdminCheck::binding

mod pages;

use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use exgate_core::clock::Clock;
use maud::{DOCTYPE, Markup, html};
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState};

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "exgate_console";
/// The sign-in form's own cookie (its CSRF token is derived from it).
pub(crate) const LOGIN_COOKIE: &str = "exgate_console_login";
/// How long a session lasts from sign-in.
pub(crate) const SESSION_LIFETIME: time::Duration = time::Duration::hours(8);
/// The console's content security policy: its own files only, never framed, forms post to it.
pub(crate) const CONSOLE_CSP: &str = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'; object-src 'none'";

const CSS: &str = include_str!("../../assets/console.css");
const JS: &str = include_str!("../../assets/console.js");

/// The console's signing key and clock.
pub struct Keys {
    mac: ring::hmac::Key,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys").finish_non_exhaustive()
    }
}

impl Keys {
    pub fn new(key: &[u8; 32], clock: Arc<dyn Clock>) -> Self {
        Self {
            mac: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key),
            clock,
        }
    }

    fn sign(&self, parts: &[&[u8]]) -> String {
        let mut ctx = ring::hmac::Context::with_key(&self.mac);
        for p in parts {
            ctx.update(&(p.len() as u64).to_be_bytes());
            ctx.update(p);
        }
        B64.encode(ctx.sign().as_ref())
    }

    fn verify(&self, parts: &[&[u8]], mac: &str) -> bool {
        let Ok(tag) = B64.decode(mac) else {
            return false;
        };
        let mut msg = Vec::new();
        for p in parts {
            msg.extend_from_slice(&(p.len() as u64).to_be_bytes());
            msg.extend_from_slice(p);
        }
        ring::hmac::verify(&self.mac, &msg, &tag).is_ok()
    }

    /// A new session's cookie value, bound to the admin password's `binding`.
    fn new_session(&self, binding: &[u8; 32]) -> String {
        let sid = B64.encode(exgate_core::secret::random_bytes::<16>());
        let expires = (self.clock.now() + SESSION_LIFETIME).unix_timestamp();
        let exp = expires.to_string();
        let mac = self.sign(&[b"session", sid.as_bytes(), exp.as_bytes(), binding]);
        format!("{sid}.{exp}.{mac}")
    }

    /// The session of a cookie value, if it is genuine, unexpired and of the current password.
    fn open_session(&self, value: &str, binding: &[u8; 32]) -> Option<Session> {
        let mut it = value.split('.');
        let (sid, exp, mac) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some() || sid.len() != 22 {
            return None;
        }
        if !self.verify(&[b"session", sid.as_bytes(), exp.as_bytes(), binding], mac) {
            return None;
        }
        let expires: i64 = exp.parse().ok()?;
        if self.clock.now().unix_timestamp() >= expires {
            return None;
        }
        Some(Session {
            id: hex8(&Sha256::digest(sid.as_bytes())),
            csrf: self.sign(&[b"csrf", sid.as_bytes()]),
        })
    }

    fn login_token(&self, nonce: &str) -> String {
        self.sign(&[b"login", nonce.as_bytes()])
    }
}

fn hex8(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// A signed-in admin's session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The ID the log names it by: a digest of the cookie's session ID, not the cookie.
    pub id: String,
    /// The token every form of this session carries.
    pub csrf: String,
}

impl Session {
    /// The refusal of a form whose token is missing or not this session's (`None`: accepted).
    pub(crate) fn check(&self, token: Option<&str>) -> Option<Response> {
        let ok = token.is_some_and(|t| {
            exgate_core::secret::constant_time_eq(t.as_bytes(), self.csrf.as_bytes())
        });
        if ok {
            None
        } else {
            tracing::warn!(session = %self.id, "console form refused: missing or wrong CSRF token");
            Some(csrf_refused())
        }
    }
}

fn csrf_refused() -> Response {
    page_with_status(
        StatusCode::FORBIDDEN,
        "Form refused",
        None,
        html! {
            h1 { "Form refused" }
            p.notice.error { "The form's security token is missing or does not belong to this session. Go back, reload the page and send the form again." }
        },
    )
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn secure(state: &AppState) -> &'static str {
    if state.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

/// The session of the request, or a redirect to the sign-in page.
impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let to_sign_in = || Redirect::to("/admin/sign-in").into_response();
        let Some(value) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_sign_in());
        };
        let binding = match state.admin.binding().await {
            Ok(Some(b)) => b,
            Ok(None) => return Err(to_sign_in()),
            Err(e) => {
                return Err(error_page(
                    None,
                    ApiError::from(exgate_core::Error::from(e)),
                ));
            }
        };
        state
            .console
            .open_session(value, &binding)
            .ok_or_else(to_sign_in)
    }
}

/// A console page: HTML with the console's policy.
pub(crate) fn page(title: &str, session: Option<&Session>, body: Markup) -> Response {
    page_with_status(StatusCode::OK, title, session, body)
}

pub(crate) fn page_with_status(
    status: StatusCode,
    title: &str,
    session: Option<&Session>,
    body: Markup,
) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · exgate console" }
                link rel="stylesheet" href="/admin/assets/console.css";
                script src="/admin/assets/console.js" defer {}
            }
            body {
                header {
                    a.brand href="/admin" { "exgate console" }
                    @if let Some(s) = session {
                        nav aria-label="Console" {
                            ul {
                                li { a href="/admin" { "Dashboard" } }
                                li { a href="/admin/connections" { "Connections" } }
                                li { a href="/admin/setup" { "Guided setup" } }
                                li { a href="/admin/keys" { "API keys" } }
                                li { a href="/api/docs" { "API reference" } }
                            }
                        }
                        form.inline method="post" action="/admin/sign-out" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            button.secondary type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    };
    (
        status,
        [
            (header::CONTENT_SECURITY_POLICY, CONSOLE_CSP),
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        ],
        markup.into_string(),
    )
        .into_response()
}

/// A core error as a page: what went wrong and the fix; never a secret (core's messages hold none).
pub(crate) fn error_page(session: Option<&Session>, e: ApiError) -> Response {
    let status = e.status;
    page_with_status(
        status,
        "Error",
        session,
        html! {
            h1 { "That did not work" }
            div.notice.error role="alert" {
                p { (e.message) }
                @if let Some(h) = &e.hint { p { "Fix: " (h) } }
            }
            p { a href="/admin" { "Back to the dashboard" } }
        },
    )
}

async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

async fn js() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// The sign-in form (GET): a fresh login cookie and the token derived from it.
async fn sign_in_form(axum::extract::State(s): axum::extract::State<AppState>) -> Response {
    sign_in_page(&s, StatusCode::OK, None)
}

fn sign_in_page(s: &AppState, status: StatusCode, problem: Option<&str>) -> Response {
    let nonce = B64.encode(exgate_core::secret::random_bytes::<16>());
    let token = s.console.login_token(&nonce);
    let mut resp = page_with_status(
        status,
        "Sign in",
        None,
        html! {
            h1 { "Sign in to the exgate console" }
            @if let Some(p) = problem {
                p.notice.error role="alert" { (p) }
            }
            form method="post" action="/admin/sign-in" {
                input type="hidden" name="csrf" value=(token);
                label for="password" { "Admin password"
                    span.hint { "Generated at the gateway's first start (or set in its configuration); " code { "exgate-server admin reset" } " makes a new one." }
                }
                input #password type="password" name="password" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
        },
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{LOGIN_COOKIE}={nonce}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=3600{}",
        secure(s)
    )) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// The peer's address, when the server knows it (for the failure limit).
struct Peer(Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

#[derive(Debug, serde::Deserialize)]
struct SignInForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    password: String,
}

async fn sign_in(
    axum::extract::State(s): axum::extract::State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    axum::Form(form): axum::Form<SignInForm>,
) -> Response {
    let token_ok = match (cookie(&headers, LOGIN_COOKIE), form.csrf.as_deref()) {
        (Some(nonce), Some(token)) => exgate_core::secret::constant_time_eq(
            s.console.login_token(nonce).as_bytes(),
            token.as_bytes(),
        ),
        _ => false,
    };
    if !token_ok {
        tracing::warn!("console sign-in refused: missing or wrong CSRF token");
        return csrf_refused();
    }
    match crate::auth::console_password(&s, peer, &headers, &form.password).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!("console sign-in failed: wrong admin password");
            return sign_in_page(
                &s,
                StatusCode::UNAUTHORIZED,
                Some(
                    "The password is wrong. Try again; after ten failures within a minute, this address must wait.",
                ),
            );
        }
        Err(e) => {
            let msg = match &e.hint {
                Some(h) => format!("{} ({h})", e.message),
                None => e.message.clone(),
            };
            return sign_in_page(&s, e.status, Some(&msg));
        }
    }
    let binding = match s.admin.binding().await {
        Ok(Some(b)) => b,
        Ok(None) => {
            return sign_in_page(
                &s,
                StatusCode::UNAUTHORIZED,
                Some("The gateway has no admin password yet."),
            );
        }
        Err(e) => return error_page(None, ApiError::from(exgate_core::Error::from(e))),
    };
    let value = s.console.new_session(&binding);
    let session = s.console.open_session(&value, &binding);
    if let Some(session) = &session {
        tracing::info!(session = %session.id, action = "sign-in", "console session started");
    }
    let mut resp = Redirect::to("/admin").into_response();
    let cookies = [
        format!(
            "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
            SESSION_LIFETIME.whole_seconds(),
            secure(&s)
        ),
        format!("{LOGIN_COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0"),
    ];
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct CsrfOnly {
    #[serde(default)]
    pub(crate) csrf: Option<String>,
}

async fn sign_out(session: Session, axum::Form(form): axum::Form<CsrfOnly>) -> Response {
    if let Some(r) = session.check(form.csrf.as_deref()) {
        return r;
    }
    tracing::info!(session = %session.id, action = "sign-out", "console session ended");
    let mut resp = Redirect::to("/admin/sign-in").into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
    )) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// The console's routes.
pub(crate) fn router() -> Router<AppState> {
    use pages as p;
    Router::new()
        .route("/admin", get(p::dashboard))
        .route("/admin/", get(|| async { Redirect::to("/admin") }))
        .route("/admin/assets/console.css", get(css))
        .route("/admin/assets/console.js", get(js))
        .route("/admin/sign-in", get(sign_in_form).post(sign_in))
        .route("/admin/sign-out", post(sign_out))
        .route(
            "/admin/connections",
            get(p::connections).post(p::create_connection),
        )
        .route("/admin/connections/new", get(p::new_connection))
        .route(
            "/admin/connections/{c}",
            get(p::connection).post(p::edit_connection),
        )
        .route("/admin/connections/{c}/delete", post(p::delete_connection))
        .route(
            "/admin/connections/{c}/test",
            get(p::test_form).post(p::run_test),
        )
        .route("/admin/connections/{c}/users", get(p::users))
        .route(
            "/admin/connections/{c}/users/reset-all",
            get(p::reset_all_confirm).post(p::reset_all),
        )
        .route("/admin/connections/{c}/users/{u}", get(p::user))
        .route(
            "/admin/connections/{c}/users/{u}/reset",
            get(p::reset_confirm).post(p::reset),
        )
        .route(
            "/admin/connections/{c}/static-users",
            get(p::static_users).post(p::add_static_user),
        )
        .route(
            "/admin/connections/{c}/static-users/{u}/delete",
            post(p::delete_static_user),
        )
        .route(
            "/admin/connections/{c}/sign-in-link",
            get(p::sign_in_link_form).post(p::sign_in_link),
        )
        .route("/admin/keys", get(p::keys).post(p::create_key))
        .route("/admin/keys/{id}/revoke", post(p::revoke_key))
        .route("/admin/setup", get(p::setup))
}
