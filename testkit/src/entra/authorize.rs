//! `GET/POST /{tenant}/oauth2/v2.0/authorize`: the sign-in and consent page, and the redirect
//! back to the app with a code or an error.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use url::Url;

use super::error::{AadError, Ctx, aadsts};
use super::html;
use super::issue;
use super::params::Params;
use super::scopes::Scopes;
use super::seed::{AppSeed, UserSeed};
use super::state::{AuthCode, EntraState, Inner, TenantLookup, random_token};

/// Parameters of the sign-in form that are not authorize parameters.
const FORM_FIELDS: [&str; 3] = ["login", "passwd", "consent"];

pub(crate) async fn get(
    State(state): State<EntraState>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    authorize(&state, &tenant, &params, false, &headers)
}

pub(crate) async fn post(
    State(state): State<EntraState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = Params::parse(&body);
    authorize(&state, &tenant, &params, true, &headers)
}

fn authorize(
    state: &EntraState,
    tenant_segment: &str,
    params: &Params,
    submitted: bool,
    headers: &HeaderMap,
) -> Response {
    let mut inner = state.lock();
    let ctx = Ctx::new(inner.base_url.clone(), inner.now(), headers);
    let client_id = params.get("client_id");
    let t = match inner.find_tenant(tenant_segment, client_id) {
        TenantLookup::Found(t) => t,
        TenantLookup::NotFound => {
            return aadsts::tenant_not_found(tenant_segment, "invalid_request").into_html(&ctx);
        }
    };
    let Some(client_id) = client_id else {
        return aadsts::missing_parameter("client_id").into_html(&ctx);
    };
    let domain = inner
        .tenant(t)
        .map(|x| x.domain.clone())
        .unwrap_or_default();
    let Some(app) = inner.app(t, client_id).cloned() else {
        return aadsts::app_not_found(client_id, &domain).into_html(&ctx);
    };

    // Until the redirect URI is known to be registered, errors are pages, never redirects.
    let redirect_uri = match params.get("redirect_uri") {
        Some(requested) => {
            if !app
                .redirect_uris
                .iter()
                .any(|registered| redirect_matches(registered, requested))
            {
                return redirect_mismatch(requested, &app.client_id).into_html(&ctx);
            }
            requested.to_string()
        }
        None => match app.redirect_uris.first() {
            Some(first) => first.clone(),
            None => {
                return AadError::bad_request(
                    "invalid_request",
                    900971,
                    "No reply address provided.",
                )
                .into_html(&ctx);
            }
        },
    };
    let Ok(url) = Url::parse(&redirect_uri) else {
        return redirect_mismatch(&redirect_uri, &app.client_id).into_html(&ctx);
    };
    let mode = match params.get("response_mode").unwrap_or("query") {
        "query" => Mode::Query,
        "fragment" => Mode::Fragment,
        "form_post" => Mode::FormPost,
        other => {
            let back = Back::new(url, Mode::Query, params);
            return back.error(
                &AadError::bad_request(
                    "invalid_request",
                    70007,
                    format!("The application requested an unsupported response_mode '{other}'."),
                ),
                &ctx,
            );
        }
    };
    let back = Back::new(url, mode, params);

    match params.get("response_type") {
        None => return back.error(&aadsts::missing_parameter("response_type"), &ctx),
        Some("code") => {}
        Some(other) => {
            return back.error(
                &AadError::bad_request(
                    "unsupported_response_type",
                    700051,
                    format!("response_type '{other}' is not enabled for the application."),
                ),
                &ctx,
            );
        }
    }
    let Some(raw_scope) = params.get("scope") else {
        return back.error(&aadsts::missing_parameter("scope"), &ctx);
    };
    let scopes = match issue::parse_scopes(&inner, t, raw_scope) {
        Ok(scopes) => scopes,
        Err(e) => return back.error(&e, &ctx),
    };
    if let Some(challenge) = params.get("code_challenge") {
        if params.get("code_challenge_method").unwrap_or("plain") != "S256" {
            return back.error(
                &AadError::bad_request(
                    "invalid_request",
                    50149,
                    "Invalid Code_Challenge_method parameter. This authority accepts 'S256' only.",
                ),
                &ctx,
            );
        }
        if !(43..=128).contains(&challenge.len()) {
            return back.error(
                &AadError::bad_request(
                    "invalid_request",
                    501491,
                    "Invalid size of Code_Challenge parameter.",
                ),
                &ctx,
            );
        }
    }
    if let Err(mut e) = check_consent(&inner, &app, &scopes) {
        e.error = "consent_required";
        return back.error(&e, &ctx);
    }

    let login = params.get("login").or_else(|| params.get("login_hint"));
    if submitted {
        if params.get("consent") == Some("decline") {
            return back.error(
                &AadError::bad_request(
                    "access_denied",
                    65004,
                    "User declined to consent to access the app.",
                ),
                &ctx,
            );
        }
        let Some(login) = params.get("login") else {
            return form(
                tenant_segment,
                params,
                &app,
                login,
                Some(&aadsts::bad_password()),
            );
        };
        let Some(user) = inner.user(t, login).cloned() else {
            return form(
                tenant_segment,
                params,
                &app,
                Some(login),
                Some(&aadsts::user_not_found(&domain)),
            );
        };
        if params.get("passwd") != Some(user.password.as_str()) {
            return form(
                tenant_segment,
                params,
                &app,
                Some(login),
                Some(&aadsts::bad_password()),
            );
        }
        return issue_code(&mut inner, t, &app, &user, &redirect_uri, params, &back);
    }

    if let Some(upn) = inner.auto_approve.clone()
        && let Some(user) = inner.user(t, &upn).cloned()
    {
        return issue_code(&mut inner, t, &app, &user, &redirect_uri, params, &back);
    }
    if params.get("prompt") == Some("none") {
        return back.error(
            &AadError::bad_request(
                "login_required",
                50058,
                "A silent sign-in request was sent but no user is signed in.",
            ),
            &ctx,
        );
    }
    form(tenant_segment, params, &app, login, None)
}

fn redirect_mismatch(uri: &str, client_id: &str) -> AadError {
    AadError::bad_request(
        "invalid_request",
        50011,
        format!(
            "The redirect URI '{uri}' specified in the request does not match the redirect URIs \
             configured for the application '{client_id}'. Make sure the redirect URI sent in the \
             request matches one added to your application in the Azure portal. Navigate to \
             https://aka.ms/redirectUriMismatchError to learn more about how to fix this."
        ),
    )
}

/// Every requested permission must be consented (Entra would prompt; the mock refuses).
fn check_consent(inner: &Inner, app: &AppSeed, scopes: &Scopes) -> Result<(), AadError> {
    if inner.consent_revoked(&app.client_id) {
        return Err(aadsts::consent_missing(&app.client_id, &app.name));
    }
    for (resource, asked) in &scopes.by_resource {
        let consented = app
            .delegated_permissions
            .iter()
            .find(|(r, _)| r.eq_ignore_ascii_case(resource))
            .map(|(_, p)| p.as_slice())
            .unwrap_or_default();
        let ok = asked.iter().all(|p| {
            if p == ".default" {
                !consented.is_empty()
            } else {
                consented.iter().any(|c| c.eq_ignore_ascii_case(p))
            }
        });
        if !ok {
            return Err(aadsts::consent_missing(&app.client_id, &app.name));
        }
    }
    Ok(())
}

/// Entra's redirect URI matching: exact, except that for loopback hosts (`localhost`,
/// `127.0.0.1`, `[::1]`) the port is ignored.
pub(crate) fn redirect_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let (Ok(reg), Ok(req)) = (Url::parse(registered), Url::parse(requested)) else {
        return false;
    };
    let loopback = matches!(req.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    loopback
        && reg.scheme() == req.scheme()
        && reg.host_str() == req.host_str()
        && reg.path() == req.path()
        && reg.query() == req.query()
        && req.fragment().is_none()
}

fn issue_code(
    inner: &mut Inner,
    t: usize,
    app: &AppSeed,
    user: &UserSeed,
    redirect_uri: &str,
    params: &Params,
    back: &Back,
) -> Response {
    let now = inner.now();
    let code = format!("1.{}", random_token(48));
    let tenant_id = inner.tenant(t).map(|x| x.id.clone()).unwrap_or_default();
    inner.codes.insert(
        code.clone(),
        AuthCode {
            tenant_id,
            client_id: app.client_id.clone(),
            redirect_uri: redirect_uri.to_string(),
            scope: params.get("scope").unwrap_or_default().to_string(),
            user_oid: user.object_id.clone(),
            code_challenge: params.get("code_challenge").map(str::to_string),
            nonce: params.get("nonce").map(str::to_string),
            issued_at: now,
            redeemed: false,
        },
    );
    back.respond(vec![
        ("code", code),
        ("session_state", uuid::Uuid::new_v4().to_string()),
    ])
}

/// The sign-in and consent page.
fn form(
    tenant_segment: &str,
    params: &Params,
    app: &AppSeed,
    login: Option<&str>,
    error: Option<&AadError>,
) -> Response {
    let mut hidden = String::new();
    for (name, value) in params.iter() {
        if !FORM_FIELDS.contains(&name) {
            hidden.push_str(&html::hidden(name, value));
        }
    }
    let error_html = error.map_or_else(String::new, |e| {
        format!(
            "<p id=\"error\" class=\"error\">{}</p>\n",
            html::escape(&format!("AADSTS{}: {}", e.code, e.message))
        )
    });
    let scopes: String = params
        .get("scope")
        .unwrap_or_default()
        .split_whitespace()
        .map(|s| format!("<li>{}</li>", html::escape(s)))
        .collect();
    let body = format!(
        "<h1>Sign in</h1>\n<p>to continue to <strong>{app_name}</strong></p>\n{error_html}\
         <form method=\"post\" action=\"/{tenant}/oauth2/v2.0/authorize\">\n{hidden}\
         <label>Email, phone, or Skype <input type=\"email\" name=\"login\" value=\"{login}\"></label>\n\
         <label>Password <input type=\"password\" name=\"passwd\" value=\"\"></label>\n\
         <h2>Permissions requested</h2>\n<p>{app_name} wants to:</p>\n<ul>{scopes}</ul>\n\
         <button type=\"submit\" name=\"consent\" value=\"accept\">Accept</button>\n\
         <button type=\"submit\" name=\"consent\" value=\"decline\">Cancel</button>\n</form>",
        app_name = html::escape(&app.name),
        tenant = html::escape(tenant_segment),
        login = html::escape(login.unwrap_or_default()),
    );
    Html(html::page("Sign in to your account", &body)).into_response()
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Query,
    Fragment,
    FormPost,
}

/// The way back to the app: its redirect URI, the response mode, and the `state` to echo.
struct Back {
    url: Url,
    mode: Mode,
    state: Option<String>,
}

impl Back {
    fn new(url: Url, mode: Mode, params: &Params) -> Self {
        Self {
            url,
            mode,
            state: params.get("state").map(str::to_string),
        }
    }

    fn error(&self, e: &AadError, ctx: &Ctx) -> Response {
        self.respond(vec![
            ("error", e.error.to_string()),
            ("error_description", e.description(ctx)),
            ("error_uri", e.error_uri(ctx)),
        ])
    }

    fn respond(&self, mut pairs: Vec<(&str, String)>) -> Response {
        if let Some(state) = &self.state {
            pairs.push(("state", state.clone()));
        }
        let mut url = self.url.clone();
        match self.mode {
            Mode::Query => {
                url.query_pairs_mut()
                    .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
            }
            Mode::Fragment => {
                let fragment = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))
                    .finish();
                url.set_fragment(Some(&fragment));
            }
            Mode::FormPost => {
                let inputs: String = pairs.iter().map(|(k, v)| html::hidden(k, v)).collect();
                let body = format!(
                    "<form method=\"post\" action=\"{}\">\n{inputs}\
                     <noscript><button type=\"submit\">Continue</button></noscript>\n</form>\n\
                     <script>document.forms[0].submit();</script>",
                    html::escape(url.as_str())
                );
                return Html(html::page("Working...", &body)).into_response();
            }
        }
        match HeaderValue::from_str(url.as_str()) {
            Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
            Err(_) => (StatusCode::BAD_REQUEST, "the redirect URI cannot be used").into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redirect_matches;

    #[test]
    fn loopback_redirects_ignore_the_port_and_others_match_exactly() {
        assert!(redirect_matches(
            "http://localhost",
            "http://localhost:53123"
        ));
        assert!(redirect_matches(
            "http://localhost",
            "http://localhost:53123/"
        ));
        assert!(!redirect_matches(
            "http://localhost",
            "http://localhost:53123/cb"
        ));
        assert!(redirect_matches(
            "http://127.0.0.1/service/oauth2/authorize",
            "http://127.0.0.1:8087/service/oauth2/authorize"
        ));
        assert!(!redirect_matches("http://localhost", "https://localhost:1"));
        assert!(!redirect_matches("http://localhost", "http://127.0.0.1:1"));
        assert!(redirect_matches(
            "https://app.example/cb",
            "https://app.example/cb"
        ));
        assert!(!redirect_matches(
            "https://app.example/cb",
            "https://app.example:444/cb"
        ));
        assert!(!redirect_matches(
            "https://app.example/cb",
            "https://app.example/cb/"
        ));
    }
}
