//! The generic provider's endpoints.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use super::state::{
    CodeGrant, DeviceGrant, DeviceStatus, IdTokenFault, OidcState, RESOURCE, RefreshGrant, User,
    random_token,
};

type Params = Vec<(String, String)>;

/// A refusal on its way out (boxed: a `Response` is large).
struct Refusal(Box<Response>);

impl From<Response> for Refusal {
    fn from(r: Response) -> Self {
        Self(Box::new(r))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        *self.0
    }
}

fn parse(text: &str) -> Params {
    url::form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn all<'a>(params: &'a Params, name: &str) -> Vec<&'a str> {
    params
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn scopes_of(raw: Option<&str>) -> Vec<String> {
    raw.unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// An RFC 6749 §5.2 error.
fn error(status: StatusCode, code: &str, description: &str) -> Response {
    let mut response = (
        status,
        Json(json!({"error": code, "error_description": description})),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn bad(code: &str, description: &str) -> Response {
    error(StatusCode::BAD_REQUEST, code, description)
}

/// The redirect back to the client (RFC 6749 §4.1.2: 302 Found).
fn found(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::FOUND, [(header::LOCATION, value)]).into_response(),
        Err(_) => bad(
            "invalid_request",
            "redirect_uri cannot be a Location header",
        ),
    }
}

fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

/// A resource indicator the provider serves (RFC 8707 §2: absolute URI, no fragment).
fn check_resources(resources: &[&str]) -> Result<Option<String>, Refusal> {
    match resources {
        [] => Ok(None),
        [one] if *one == RESOURCE => Ok(Some((*one).to_owned())),
        [one] => Err(Refusal::from(bad(
            "invalid_target",
            &format!("the resource `{one}` is not served here"),
        ))),
        _ => Err(Refusal::from(bad(
            "invalid_target",
            "this provider issues tokens for one resource at a time",
        ))),
    }
}

pub(crate) async fn discovery(State(state): State<OidcState>) -> Response {
    if !state.is_enabled() {
        return not_found();
    }
    let issuer = state.issuer();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "device_authorization_endpoint": format!("{issuer}/device_authorization"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            "authorization_code", "refresh_token", "client_credentials",
            "urn:ietf:params:oauth:grant-type:device_code"
        ],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "name", "preferred_username", "email"],
        "prompt_values_supported": ["none", "login", "consent"],
    }))
    .into_response()
}

pub(crate) async fn jwks(State(state): State<OidcState>) -> Response {
    if !state.is_enabled() {
        return not_found();
    }
    Json(json!({"keys": [state.key.jwk()]})).into_response()
}

fn is_loopback_redirect(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| {
        u.scheme() == "http"
            && matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
            && u.fragment().is_none()
    })
}

/// The authorization request, checked; an error that may go back to the client is a redirect.
struct AuthorizeRequest {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    scopes: Vec<String>,
    challenge: Option<String>,
    nonce: Option<String>,
    resource: Option<String>,
    consent: bool,
}

fn redirect_error(
    redirect_uri: &str,
    state: Option<&str>,
    code: &str,
    description: &str,
) -> Response {
    let mut url = match url::Url::parse(redirect_uri) {
        Ok(u) => u,
        Err(_) => return bad(code, description),
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("error", code);
        q.append_pair("error_description", description);
        if let Some(s) = state {
            q.append_pair("state", s);
        }
    }
    found(url.as_str())
}

fn check_authorize(state: &OidcState, params: &Params) -> Result<AuthorizeRequest, Refusal> {
    let client_id = param(params, "client_id").unwrap_or_default();
    let Some(client) = state
        .clients()
        .into_iter()
        .find(|c| c.client_id == client_id)
    else {
        return Err(bad("invalid_client", "unknown client_id").into());
    };
    let redirect_uri = param(params, "redirect_uri").unwrap_or_default();
    if !is_loopback_redirect(redirect_uri) {
        return Err(bad(
            "invalid_request",
            "redirect_uri is missing or not registered for this client",
        )
        .into());
    }
    let st = param(params, "state").map(str::to_owned);
    let fail = |code: &str, d: &str| {
        Err(Refusal::from(redirect_error(
            redirect_uri,
            st.as_deref(),
            code,
            d,
        )))
    };
    if param(params, "response_type") != Some("code") {
        return fail(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    let scopes = scopes_of(param(params, "scope"));
    if !scopes.iter().any(|s| s == "openid") {
        return fail(
            "invalid_scope",
            "an OpenID Connect request must ask for openid",
        );
    }
    let challenge = param(params, "code_challenge").map(str::to_owned);
    match (
        client.secret.is_none(),
        &challenge,
        param(params, "code_challenge_method"),
    ) {
        (_, Some(_), Some("S256")) => {}
        (_, Some(_), _) => {
            return fail("invalid_request", "code_challenge_method must be S256");
        }
        (true, None, _) => {
            return fail("invalid_request", "public clients must use PKCE (S256)");
        }
        (false, None, _) => {}
    }
    let resource = match check_resources(&all(params, "resource")) {
        Ok(r) => r,
        Err(_) => {
            return fail(
                "invalid_target",
                "the requested resource is not served here",
            );
        }
    };
    let consent = param(params, "prompt")
        .unwrap_or_default()
        .split(' ')
        .any(|p| p == "consent");
    Ok(AuthorizeRequest {
        client_id: client.client_id,
        redirect_uri: redirect_uri.to_owned(),
        state: st,
        scopes,
        challenge,
        nonce: param(params, "nonce").map(str::to_owned),
        resource,
        consent,
    })
}

fn issue_code(state: &OidcState, request: AuthorizeRequest, user: User) -> Response {
    let code = random_token(32);
    // OIDC Core §11: offline_access without prompt=consent is ignored.
    let offline = request.consent && request.scopes.iter().any(|s| s == "offline_access");
    let scopes: Vec<String> = request
        .scopes
        .iter()
        .filter(|s| offline || *s != "offline_access")
        .cloned()
        .collect();
    let expires_at = state.clock.now() + time::Duration::minutes(10);
    state.lock().codes.insert(
        code.clone(),
        CodeGrant {
            client_id: request.client_id,
            redirect_uri: request.redirect_uri.clone(),
            scopes,
            challenge: request.challenge,
            nonce: request.nonce,
            resource: request.resource,
            user,
            offline,
            expires_at,
        },
    );
    let Ok(mut url) = url::Url::parse(&request.redirect_uri) else {
        return bad("invalid_request", "redirect_uri is not a URL");
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("code", &code);
        if let Some(s) = &request.state {
            q.append_pair("state", s);
        }
    }
    found(url.as_str())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn login_form(params: &Params, problem: Option<&str>) -> Response {
    let hidden: String = params
        .iter()
        .filter(|(k, _)| k != "username" && k != "password")
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape(k),
                escape(v)
            )
        })
        .collect();
    let problem = problem
        .map(|p| format!("<p id=\"error\">{}</p>", escape(p)))
        .unwrap_or_default();
    Html(format!(
        "<!doctype html><html><head><title>Sign in</title></head><body><h1>Sign in</h1>{problem}\
         <form method=\"post\" action=\"/oidc/authorize\">{hidden}\
         <label>User <input name=\"username\"></label>\
         <label>Password <input name=\"password\" type=\"password\"></label>\
         <button type=\"submit\">Sign in and consent</button></form></body></html>"
    ))
    .into_response()
}

pub(crate) async fn authorize_get(
    State(state): State<OidcState>,
    RawQuery(query): RawQuery,
) -> Response {
    if !state.is_enabled() {
        return not_found();
    }
    let params = parse(query.as_deref().unwrap_or_default());
    state.record("authorize", &params);
    let request = match check_authorize(&state, &params) {
        Ok(r) => r,
        Err(refusal) => return refusal.into_response(),
    };
    let auto = state.lock().auto_approve.clone();
    match auto.and_then(|upn| state.user(&upn)) {
        Some(user) => issue_code(&state, request, user),
        None => login_form(&params, None),
    }
}

pub(crate) async fn authorize_post(State(state): State<OidcState>, body: Bytes) -> Response {
    if !state.is_enabled() {
        return not_found();
    }
    let params = parse(&String::from_utf8_lossy(&body));
    let request = match check_authorize(&state, &params) {
        Ok(r) => r,
        Err(refusal) => return refusal.into_response(),
    };
    let user = state.user_with_password(
        param(&params, "username").unwrap_or_default(),
        param(&params, "password").unwrap_or_default(),
    );
    match user {
        Some(user) => issue_code(&state, request, user),
        None => login_form(&params, Some("The user name or password is wrong.")),
    }
}

/// The authenticated client: `client_secret_basic`, `client_secret_post`, or a public client
/// by `client_id` alone.
fn authenticate(
    state: &OidcState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<(String, bool), Refusal> {
    let invalid = || {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"oidc\""),
        );
        r
    };
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            let (id, secret) = s.split_once(':')?;
            let decode = |x: &str| {
                url::form_urlencoded::parse(format!("x={x}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((decode(id)?, decode(secret)?))
        });
    let (client_id, secret) = match (&basic, param(params, "client_id")) {
        (Some((id, secret)), _) => (id.clone(), Some(secret.clone())),
        (None, Some(id)) => (
            id.to_owned(),
            param(params, "client_secret").map(str::to_owned),
        ),
        (None, None) => return Err(invalid().into()),
    };
    let client = state
        .clients()
        .into_iter()
        .find(|c| c.client_id == client_id)
        .ok_or_else(|| Refusal::from(invalid()))?;
    match (&client.secret, &secret) {
        (Some(want), Some(got)) if want == got => Ok((client_id, true)),
        (None, None) => Ok((client_id, false)),
        _ => Err(invalid().into()),
    }
}

pub(crate) async fn token(
    State(state): State<OidcState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !state.is_enabled() {
        return not_found();
    }
    let params = parse(&String::from_utf8_lossy(&body));
    state.record("token", &params);
    let (client_id, confidential) = match authenticate(&state, &headers, &params) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let resource = match check_resources(&all(&params, "resource")) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    match param(&params, "grant_type").unwrap_or_default() {
        "authorization_code" => code_grant(&state, &params, &client_id, resource),
        "refresh_token" => refresh_grant(&state, &params, &client_id, resource),
        "urn:ietf:params:oauth:grant-type:device_code" => {
            device_grant(&state, &params, &client_id, resource)
        }
        "client_credentials" if confidential => {
            let scopes = scopes_of(param(&params, "scope"));
            match tokens(
                &state,
                &client_id,
                None,
                &scopes,
                resource.as_deref(),
                None,
                false,
            ) {
                Ok(body) => Json(body).into_response(),
                Err(e) => e.into_response(),
            }
        }
        "client_credentials" => bad(
            "unauthorized_client",
            "a public client cannot use client credentials",
        ),
        "" => bad("invalid_request", "grant_type is missing"),
        _ => bad("unsupported_grant_type", "this grant type is not supported"),
    }
}

fn code_grant(
    state: &OidcState,
    params: &Params,
    client_id: &str,
    resource: Option<String>,
) -> Response {
    let code = param(params, "code").unwrap_or_default();
    let Some(grant) = state.lock().codes.remove(code) else {
        return bad("invalid_grant", "the code is unknown or was used");
    };
    if grant.client_id != client_id {
        return bad("invalid_grant", "the code was issued to another client");
    }
    if grant.expires_at < state.clock.now() {
        return bad("invalid_grant", "the code expired");
    }
    if param(params, "redirect_uri") != Some(grant.redirect_uri.as_str()) {
        return bad(
            "invalid_grant",
            "redirect_uri is not the one of the authorization request",
        );
    }
    if let Some(challenge) = &grant.challenge {
        let verifier = param(params, "code_verifier").unwrap_or_default();
        if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != *challenge {
            return bad("invalid_grant", "PKCE verification failed");
        }
    }
    let resource = match (resource, &grant.resource) {
        (Some(r), Some(authorized)) if &r != authorized => {
            return bad(
                "invalid_target",
                "the resource was not part of the authorization request",
            );
        }
        (r, authorized) => r.or_else(|| authorized.clone()),
    };
    let body = tokens(
        state,
        client_id,
        Some((&grant.user, grant.nonce.as_deref())),
        &grant.scopes,
        resource.as_deref(),
        grant.resource.clone(),
        grant.offline,
    );
    match body {
        Ok(b) => Json(b).into_response(),
        Err(e) => e.into_response(),
    }
}

fn refresh_grant(
    state: &OidcState,
    params: &Params,
    client_id: &str,
    resource: Option<String>,
) -> Response {
    let presented = param(params, "refresh_token").unwrap_or_default();
    let Some(grant) = state.lock().refresh_tokens.get(presented).cloned() else {
        return bad("invalid_grant", "the refresh token is unknown or revoked");
    };
    if grant.client_id != client_id {
        return bad(
            "invalid_grant",
            "the refresh token was issued to another client",
        );
    }
    // RFC 6749 §6: no scope means the original grant; a scope must not exceed it.
    let scopes = match param(params, "scope") {
        None => grant.scopes.clone(),
        Some(raw) => {
            let asked = scopes_of(Some(raw));
            if let Some(extra) = asked.iter().find(|s| !grant.scopes.contains(s)) {
                return bad(
                    "invalid_scope",
                    &format!("the scope `{extra}` was not granted originally"),
                );
            }
            asked
        }
    };
    if let (Some(r), Some(g)) = (&resource, &grant.resource)
        && r != g
    {
        return bad("invalid_target", "the resource was not granted originally");
    }
    let resource = resource.or_else(|| grant.resource.clone());
    // Rotation: the used refresh token is spent, a new one issued.
    state.lock().refresh_tokens.remove(presented);
    let user = grant.user.clone();
    let body = tokens(
        state,
        client_id,
        Some((&user, None)),
        &scopes,
        resource.as_deref(),
        grant.resource.clone(),
        true,
    );
    match body {
        Ok(mut b) => {
            // No ID token on refresh here (OIDC Core §12.2 makes it optional).
            b.remove("id_token");
            Json(b).into_response()
        }
        Err(e) => e.into_response(),
    }
}

fn device_grant(
    state: &OidcState,
    params: &Params,
    client_id: &str,
    resource: Option<String>,
) -> Response {
    let code = param(params, "device_code").unwrap_or_default();
    let now = state.clock.now();
    let grant = {
        let inner = state.lock();
        inner.devices.get(code).cloned()
    };
    let Some(grant) = grant else {
        return bad("invalid_grant", "the device code is unknown");
    };
    if grant.client_id != client_id {
        return bad(
            "invalid_grant",
            "the device code was issued to another client",
        );
    }
    if grant.expires_at < now {
        return bad("expired_token", "the device code expired");
    }
    let user = match &grant.status {
        DeviceStatus::Pending => {
            return bad("authorization_pending", "the user has not finished yet");
        }
        DeviceStatus::Denied => return bad("access_denied", "the user declined"),
        DeviceStatus::Approved(user) => user.clone(),
    };
    state.lock().devices.remove(code);
    if let (Some(r), Some(g)) = (&resource, &grant.resource)
        && r != g
    {
        return bad(
            "invalid_target",
            "the resource was not part of the device request",
        );
    }
    let resource = resource.or_else(|| grant.resource.clone());
    let offline = grant.scopes.iter().any(|s| s == "offline_access");
    match tokens(
        state,
        client_id,
        Some((&user, None)),
        &grant.scopes,
        resource.as_deref(),
        grant.resource.clone(),
        offline,
    ) {
        Ok(b) => Json(b).into_response(),
        Err(e) => e.into_response(),
    }
}

/// A token answer: an access token (for `resource`, else the client itself), an ID token
/// when `openid` was granted to a user, a refresh token when `offline`.
fn tokens(
    state: &OidcState,
    client_id: &str,
    user: Option<(&User, Option<&str>)>,
    scopes: &[String],
    resource: Option<&str>,
    granted_resource: Option<String>,
    offline: bool,
) -> Result<Map<String, Value>, Refusal> {
    let issuer = state.issuer();
    let now = state.clock.now().unix_timestamp();
    let (lifetime, fault) = {
        let inner = state.lock();
        (inner.token_lifetime, inner.id_token_fault)
    };
    let server =
        |e: String| Refusal::from(error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &e));
    let sub = user.map_or_else(|| client_id.to_owned(), |(u, _)| u.oid.clone());
    let access = json!({
        "iss": issuer,
        "sub": sub,
        "aud": resource.unwrap_or(client_id),
        "client_id": client_id,
        "scope": scopes.join(" "),
        "iat": now,
        "exp": now + lifetime,
        "jti": random_token(12),
    });
    let mut body = Map::new();
    body.insert(
        "access_token".into(),
        state
            .key
            .sign(&state.key.kid, &access)
            .map_err(server)?
            .into(),
    );
    body.insert("token_type".into(), "Bearer".into());
    body.insert("expires_in".into(), lifetime.into());
    body.insert("scope".into(), scopes.join(" ").into());
    if let Some((user, nonce)) = user {
        if offline {
            let refresh = random_token(48);
            state.lock().refresh_tokens.insert(
                refresh.clone(),
                RefreshGrant {
                    client_id: client_id.to_owned(),
                    scopes: scopes.to_vec(),
                    resource: granted_resource,
                    user: user.clone(),
                },
            );
            body.insert("refresh_token".into(), refresh.into());
        }
        if scopes.iter().any(|s| s == "openid") {
            let id_token =
                id_token(state, client_id, user, nonce, now, lifetime, fault).map_err(server)?;
            body.insert("id_token".into(), id_token.into());
        }
    }
    Ok(body)
}

fn id_token(
    state: &OidcState,
    client_id: &str,
    user: &User,
    nonce: Option<&str>,
    now: i64,
    lifetime: i64,
    fault: Option<IdTokenFault>,
) -> Result<String, String> {
    let mut claims = json!({
        "iss": state.issuer(),
        "sub": user.oid,
        "aud": client_id,
        "iat": now,
        "exp": now + lifetime,
        "auth_time": now,
        "preferred_username": user.upn,
        "email": user.upn,
        "name": user.name,
    });
    if let Some(nonce) = nonce {
        claims["nonce"] = nonce.into();
    }
    match fault {
        None => {}
        Some(IdTokenFault::WrongNonce) => claims["nonce"] = "not-the-nonce-that-was-sent".into(),
        Some(IdTokenFault::WrongAudience) => claims["aud"] = "some-other-client".into(),
        Some(IdTokenFault::WrongIssuer) => {
            claims["iss"] = format!("{}-evil", state.issuer()).into();
        }
        Some(IdTokenFault::Expired) => {
            claims["iat"] = (now - 7200).into();
            claims["auth_time"] = (now - 7200).into();
            claims["exp"] = (now - 3600).into();
        }
        Some(IdTokenFault::BadSignature) => return state.rogue.sign(&state.key.kid, &claims),
        Some(IdTokenFault::Unsigned) => {
            let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
            let payload = URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes());
            return Ok(format!("{header}.{payload}."));
        }
    }
    state.key.sign(&state.key.kid, &claims)
}

pub(crate) async fn device_authorization(
    State(state): State<OidcState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !state.is_enabled() {
        return not_found();
    }
    let params = parse(&String::from_utf8_lossy(&body));
    state.record("device_authorization", &params);
    let (client_id, _) = match authenticate(&state, &headers, &params) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let resource = match check_resources(&all(&params, "resource")) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let scopes = scopes_of(param(&params, "scope"));
    let device_code = random_token(32);
    let raw = random_token(6)
        .to_ascii_uppercase()
        .replace(['-', '_'], "X");
    let user_code = format!("{}-{}", &raw[..4], &raw[4..8]);
    let interval = {
        let mut inner = state.lock();
        inner.devices.insert(
            device_code.clone(),
            DeviceGrant {
                client_id,
                user_code: user_code.clone(),
                scopes,
                resource,
                status: DeviceStatus::Pending,
                expires_at: state.clock.now() + time::Duration::minutes(10),
            },
        );
        inner.device_interval
    };
    let verification = format!("{}/device", state.issuer());
    Json(json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": verification,
        "verification_uri_complete": format!("{verification}?user_code={user_code}"),
        "expires_in": 600,
        "interval": interval,
    }))
    .into_response()
}

pub(crate) async fn device_page(State(state): State<OidcState>) -> Response {
    if !state.is_enabled() {
        return not_found();
    }
    Html(
        "<!doctype html><html><head><title>Device sign-in</title></head><body><h1>Enter the code</h1>\
         <form method=\"post\" action=\"/oidc/device\"><label>Code <input name=\"user_code\"></label>\
         <label>User <input name=\"username\"></label>\
         <label>Password <input name=\"password\" type=\"password\"></label>\
         <button type=\"submit\">Sign in and consent</button></form></body></html>",
    )
    .into_response()
}

pub(crate) async fn device_submit(State(state): State<OidcState>, body: Bytes) -> Response {
    if !state.is_enabled() {
        return not_found();
    }
    let params = parse(&String::from_utf8_lossy(&body));
    let Some(user) = state.user_with_password(
        param(&params, "username").unwrap_or_default(),
        param(&params, "password").unwrap_or_default(),
    ) else {
        return Html("<p id=\"error\">The user name or password is wrong.</p>").into_response();
    };
    match state.approve_device_code(param(&params, "user_code").unwrap_or_default(), &user.upn) {
        Ok(()) => {
            Html("<p id=\"done\">You are signed in; return to your device.</p>").into_response()
        }
        Err(e) => Html(format!("<p id=\"error\">{}</p>", escape(&e))).into_response(),
    }
}
