//! Who is calling: an admin (HTTP Basic with the admin password, or an admin API key) or an
//! application (a bearer API key scoped to connections). Failed attempts are limited per client
//! address and kind of credential ([`Guard`]); the client address is the peer's, or what a
//! trusted proxy says it forwarded for (`server.trusted_proxies`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use exgate_core::admin::AdminCheck;
use exgate_core::apikeys::{ApiKey, KeyScope};
use exgate_core::clock::Clock;
use exgate_core::limiter::{AuthFailures, FailurePolicy};
use exgate_core::secret::Secret;
use exgate_core::store::Store;
use ipnet::IpNet;

use crate::{ApiError, AppState};

/// The kinds of credential whose failures are counted apart: ten wrong admin passwords do not
/// lock out API keys from the same address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Credential {
    AdminPassword,
    ApiKey,
    /// An `Authorization` header of another scheme, or a Basic user other than `admin`.
    Other,
}

impl Credential {
    fn as_str(self) -> &'static str {
        match self {
            Self::AdminPassword => "admin-password",
            Self::ApiKey => "api-key",
            Self::Other => "other",
        }
    }
}

/// A (client address, credential) pair as the shared store names it.
fn slot_name(slot: &(Option<IpAddr>, Credential)) -> String {
    match slot.0 {
        Some(ip) => format!("{ip}/{}", slot.1.as_str()),
        None => format!("unknown/{}", slot.1.as_str()),
    }
}

/// Counts failed authentications per client address and kind of credential (in the store too
/// when several gateways share it), and knows which peers are proxies whose forwarding headers
/// name the client.
#[derive(Debug)]
pub struct Guard {
    failures: AuthFailures<(Option<IpAddr>, Credential)>,
    trusted_proxies: Vec<IpNet>,
}

impl Guard {
    /// A guard that counts in memory only.
    pub fn new(clock: Arc<dyn Clock>, trusted_proxies: Vec<IpNet>) -> Self {
        Self::with_policy(clock, trusted_proxies, FailurePolicy::default())
    }

    /// A guard with its own limits (ten failures a minute, 10,000 remembered pairs by default),
    /// counting in memory only.
    pub fn with_policy(
        clock: Arc<dyn Clock>,
        trusted_proxies: Vec<IpNet>,
        policy: FailurePolicy,
    ) -> Self {
        Self {
            failures: AuthFailures::local(clock, policy),
            trusted_proxies,
        }
    }

    /// The gateway's guard: failures counted in `store` as well when several gateways share it
    /// (PostgreSQL), so the limit holds across them.
    pub fn over(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        trusted_proxies: Vec<IpNet>,
        policy: FailurePolicy,
    ) -> Self {
        Self {
            failures: AuthFailures::over(store, clock, policy, slot_name),
            trusted_proxies,
        }
    }

    /// Whether failures are counted in the shared store.
    pub fn is_shared(&self) -> bool {
        self.failures.is_shared()
    }

    /// How many (address, credential) pairs the guard remembers failures of.
    pub fn remembered_failures(&self) -> usize {
        self.failures.len()
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy; then the nearest
    /// address in `Forwarded` (else `X-Forwarded-For`) that is not itself a trusted proxy.
    pub fn client_address(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer.map(canonical)?;
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let hops = forwarded_for(headers).or_else(|| x_forwarded_for(headers));
        let Some(hops) = hops else {
            return Some(peer);
        };
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop {
                Some(ip) => {
                    client = *ip;
                    if !self.is_trusted(*ip) {
                        return Some(client);
                    }
                }
                // An address a proxy hid or garbled: the last one known stands.
                None => return Some(client),
            }
        }
        Some(client)
    }

    fn too_many(&self) -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_failures",
            format!(
                "too many failed authentication attempts of this kind from this client ({} within {} s)",
                self.failures.policy().max_failures,
                self.failures.policy().window.whole_seconds()
            ),
        )
        .with_hint("wait a minute, then check the credential")
    }
}

/// IPv4-mapped IPv6 addresses as IPv4, so `10.0.0.0/8` matches `::ffff:10.0.0.1`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One hop of a forwarding header: an address, or `None` for `unknown`, `_hidden` or garbage.
fn hop(text: &str) -> Option<IpAddr> {
    let t = text.trim().trim_matches('"');
    t.parse::<IpAddr>()
        .ok()
        .or_else(|| t.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            t.strip_prefix('[')
                .and_then(|r| r.split(']').next())
                .and_then(|a| a.parse().ok())
        })
        .map(canonical)
}

/// The `for=` of every element of every `Forwarded` header (RFC 7239), first hop first.
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for value in headers.get_all(header::FORWARDED) {
        let Ok(value) = value.to_str() else {
            hops.push(None);
            continue;
        };
        for element in value.split(',') {
            let found = element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then_some(v)
            });
            if let Some(v) = found {
                hops.push(hop(v));
            }
        }
    }
    (!hops.is_empty()).then_some(hops)
}

/// Every address of every `X-Forwarded-For` header, first hop first.
fn x_forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        match value.to_str() {
            Ok(v) => hops.extend(v.split(',').map(hop)),
            Err(_) => hops.push(None),
        }
    }
    (!hops.is_empty()).then_some(hops)
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Caller {
    Admin,
    App(ApiKey),
}

impl Caller {
    /// The connection `name` (shared, as cached: no copy per request), if the caller may use
    /// it. An application key gets the same answer (403, same code and message) for a
    /// connection that does not exist as for one it may not use, so it cannot learn which
    /// connection names exist.
    pub async fn connection(
        &self,
        s: &AppState,
        name: &str,
    ) -> Result<Arc<exgate_core::model::Connection>, ApiError> {
        match s.connections.get_shared(name).await {
            Ok(connection) => match self {
                Self::App(key) if !key.scope.allows(connection.id) => Err(refused(key, name)),
                _ => Ok(connection),
            },
            Err(e) => match self {
                Self::App(key) if e.kind() == exgate_core::ErrorKind::NotFound => {
                    Err(refused(key, name))
                }
                _ => Err(e.into()),
            },
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Self::Admin) || matches!(self, Self::App(k) if k.scope == KeyScope::Admin)
    }
}

fn refused(key: &ApiKey, connection: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "API key `{}` may not use a connection named `{connection}`",
            key.name
        ),
    )
    .with_hint("check the connection's name; an admin can create a key for a connection with POST /api/v1/keys")
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
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let guard = &state.guard;
    let client = guard.client_address(peer, &parts.headers);
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized("this route needs authentication"))?;
    // A valid API key is never refused: keys are random 256-bit values, so guessing them is
    // hopeless, and checking one costs one hash. Failures only turn 401 into 429.
    if let Some(key) = header.strip_prefix("Bearer ") {
        let slot = (client, Credential::ApiKey);
        return match state
            .keys
            .verify(key.trim())
            .await
            .map_err(ApiError::from)?
        {
            Some(key) => {
                guard.failures.succeed(&slot).await;
                Ok(if key.scope == KeyScope::Admin {
                    Caller::Admin
                } else {
                    Caller::App(key)
                })
            }
            None => Err(if guard.failures.fail(slot).await {
                guard.too_many()
            } else {
                unauthorized("the API key is unknown or revoked")
            }),
        };
    }
    let Some(encoded) = header.strip_prefix("Basic ") else {
        let slot = (client, Credential::Other);
        return Err(if guard.failures.fail(slot).await {
            guard.too_many()
        } else {
            unauthorized("unsupported authorization scheme")
        });
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    let slot = (client, Credential::AdminPassword);
    // The admin password can be guessed, so an address that failed too often is not heard until
    // its window ends (only that address: behind a trusted proxy, the client's own).
    if guard.failures.is_locked(&slot).await {
        return Err(guard.too_many());
    }
    match decoded.split_once(':') {
        Some(("admin", password)) if verify_admin(&state.admin, password).await? => {
            guard.failures.succeed(&slot).await;
            Ok(Caller::Admin)
        }
        _ => {
            guard.failures.fail(slot).await;
            Err(unauthorized("the admin user name or password is wrong"))
        }
    }
}

/// The console's sign-in: checks `password` as the admin password under the same failure limit
/// as the API's Basic authentication (per client address). `Err` is 429 once the client failed
/// too often; `Ok(false)` a wrong password.
pub(crate) async fn console_password(
    state: &AppState,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    password: &str,
) -> Result<bool, ApiError> {
    let guard = &state.guard;
    let slot = (
        guard.client_address(peer, headers),
        Credential::AdminPassword,
    );
    if guard.failures.is_locked(&slot).await {
        return Err(guard.too_many());
    }
    if verify_admin(&state.admin, password).await? {
        guard.failures.succeed(&slot).await;
        Ok(true)
    } else {
        guard.failures.fail(slot).await;
        Ok(false)
    }
}

async fn verify_admin(check: &AdminCheck, password: &str) -> Result<bool, ApiError> {
    check
        .verify(&Secret::new(password))
        .await
        .map_err(|e| ApiError::from(exgate_core::Error::from(e)))
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
