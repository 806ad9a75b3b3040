//! Who is calling: an admin (HTTP Basic with the admin password, or an admin API key) or an
//! application (a bearer API key scoped to connections). Failed attempts are limited per client.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use base64::Engine;
use exgate_core::admin;
use exgate_core::apikeys::{ApiKey, KeyScope};
use exgate_core::model::ConnectionId;
use exgate_core::secret::{Secret, constant_time_eq};
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState};

/// Failed attempts a client may make per window before it is told to wait.
const MAX_FAILURES: u32 = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long a verified admin password is remembered (argon2 is deliberately slow).
const ADMIN_CACHE: Duration = Duration::from_secs(300);

/// Counts failed attempts per client address and remembers recently verified admin passwords.
#[derive(Debug, Default)]
pub struct Guard {
    failures: Mutex<HashMap<Option<IpAddr>, (u32, Instant)>>,
    verified_admin: Mutex<Option<([u8; 32], Instant)>>,
}

impl Guard {
    fn check(&self, client: Option<IpAddr>) -> Result<(), ApiError> {
        let failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match failures.get(&client) {
            Some((n, since)) if *n >= MAX_FAILURES && since.elapsed() < FAILURE_WINDOW => {
                Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_failures",
                    "too many failed authentication attempts from this client",
                )
                .with_hint("wait a minute, then check the credential"))
            }
            _ => Ok(()),
        }
    }

    fn fail(&self, client: Option<IpAddr>) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = failures.entry(client).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FAILURE_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    fn remembered(&self, digest: &[u8; 32]) -> bool {
        let cached = self
            .verified_admin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cached
            .as_ref()
            .is_some_and(|(d, at)| at.elapsed() < ADMIN_CACHE && constant_time_eq(d, digest))
    }

    fn remember(&self, digest: [u8; 32]) {
        *self
            .verified_admin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((digest, Instant::now()));
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Caller {
    Admin,
    App(ApiKey),
}

impl Caller {
    /// Whether the caller may act on `connection`.
    pub fn may_use(&self, connection: ConnectionId) -> Result<(), ApiError> {
        match self {
            Self::Admin => Ok(()),
            Self::App(key) if key.scope.allows(connection) => Ok(()),
            Self::App(key) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "API key `{}` is not allowed to use this connection",
                    key.name
                ),
            )
            .with_hint("an admin can create a key for this connection with POST /api/v1/keys")),
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Self::Admin) || matches!(self, Self::App(k) if k.scope == KeyScope::Admin)
    }
}

/// An admin: routes that take this extractor refuse anyone else.
#[derive(Debug, Clone)]
pub struct Admin;

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).with_hint(
        "send `Authorization: Bearer <API key>`, or `Authorization: Basic` with user `admin` and the admin password",
    )
}

async fn authenticate(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    state.guard.check(client)?;
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized("this route needs authentication"))?;
    let result = if let Some(key) = header.strip_prefix("Bearer ") {
        match state
            .keys
            .verify(key.trim())
            .await
            .map_err(ApiError::from)?
        {
            Some(key) if key.scope == KeyScope::Admin => Ok(Caller::Admin),
            Some(key) => Ok(Caller::App(key)),
            None => Err(unauthorized("the API key is unknown or revoked")),
        }
    } else if let Some(encoded) = header.strip_prefix("Basic ") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        match decoded.split_once(':') {
            Some(("admin", password)) if verify_admin(state, password).await? => Ok(Caller::Admin),
            _ => Err(unauthorized("the admin user name or password is wrong")),
        }
    } else {
        Err(unauthorized("unsupported authorization scheme"))
    };
    if result.is_err() {
        state.guard.fail(client);
    }
    result
}

async fn verify_admin(state: &AppState, password: &str) -> Result<bool, ApiError> {
    let digest: [u8; 32] = Sha256::digest(password.as_bytes()).into();
    if state.guard.remembered(&digest) {
        return Ok(true);
    }
    let candidate = Secret::new(password);
    let ok = admin::verify_admin(
        state.store.as_ref(),
        state.admin_password.as_ref(),
        &candidate,
    )
    .await
    .map_err(|e| ApiError::from(exgate_core::Error::from(e)))?;
    if ok {
        state.guard.remember(digest);
    }
    Ok(ok)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(parts, state).await
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match authenticate(parts, state).await? {
            caller if caller.is_admin() => Ok(Admin),
            _ => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this route is for admins; the API key is an application key",
            )),
        }
    }
}
