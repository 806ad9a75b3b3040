//! Mock Entra ID: the Microsoft identity platform v2.0 endpoints over the directory
//! ([`crate::directory`]) and the mocks' clock; it never reads the mail store or Graph.
//!
//! Endpoints (under the base URL; `{tenant}` is a tenant ID, a domain, `organizations` or
//! `common`):
//!
//! | route | what |
//! |---|---|
//! | `GET /{tenant}/v2.0/.well-known/openid-configuration` | OIDC discovery |
//! | `GET /{tenant}/discovery/v2.0/keys` | JWKS of the token signing key |
//! | `GET/POST /{tenant}/oauth2/v2.0/authorize` | sign-in + consent page, code redirect |
//! | `POST /{tenant}/oauth2/v2.0/token` | every grant: authorization_code, refresh_token, client_credentials, password, device_code |
//! | `POST /{tenant}/oauth2/v2.0/devicecode` | device authorization |
//! | `GET/POST /devicelogin` | where a user enters a device code |
//! | `GET /{tenant}/oauth2/v2.0/logout`, `GET /error` | sign-out page, error lookup page |
//!
//! Errors carry Entra's AADSTS codes and shapes. Time-dependent behaviour (code, device code,
//! secret and refresh-token expiry, token `exp`) follows the mock's clock, which tests move
//! with [`crate::MockMicrosoft::advance_clock`] instead of waiting.

mod authorize;
mod client_auth;
pub(crate) mod device;
mod discovery;
mod error;
mod faults;
mod html;
mod issue;
pub(crate) mod jwt;
mod params;
mod scopes;
pub(crate) mod state;
mod switches;
mod token;

use axum::Router;
use axum::routing::get;

/// The seed's types and constants, at their old path (they live in [`crate::directory`]).
pub use crate::directory::seed;
pub use crate::faults::Fault;
pub use seed::{
    AppSeed, MailboxPermissionSeed, MailboxRight, SecretSeed, Seed, SeedError, SharedMailboxSeed,
    TenantSeed, UserSeed,
};
pub use state::EntraState;
pub use switches::{EntraSwitchChange, EntraSwitches};

/// The Entra routes over `state`, to serve alone or beside other mocks (their routes must not
/// collide with these specific patterns; Graph and EWS live under `/graph/…` and `/EWS/…`).
pub fn entra_router(state: EntraState) -> Router {
    Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(discovery::keys))
        .route(
            "/{tenant}/oauth2/v2.0/authorize",
            get(authorize::get).post(authorize::post),
        )
        .route(
            "/{tenant}/oauth2/v2.0/token",
            get(token::get).post(token::post),
        )
        .route(
            "/{tenant}/oauth2/v2.0/devicecode",
            axum::routing::post(device::devicecode),
        )
        .route("/{tenant}/oauth2/v2.0/logout", get(discovery::logout))
        .route(
            "/devicelogin",
            get(device::login_page).post(device::login_submit),
        )
        .route("/error", get(discovery::error_page))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            faults::apply,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            skewed_date,
        ))
        .with_state(state)
}

/// With the `clock_skew_secs` switch set, every answer's `Date` is the skewed time (hyper's
/// own `Date` is the real one).
async fn skewed_date(
    axum::extract::State(state): axum::extract::State<EntraState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let skew = state.lock().clock_skew;
    let mut resp = next.run(req).await;
    if skew != 0 {
        let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(skew);
        let format = time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        );
        if let Ok(text) = at.format(&format)
            && let Ok(value) = axum::http::HeaderValue::from_str(&text)
        {
            resp.headers_mut().insert(axum::http::header::DATE, value);
        }
    }
    resp
}
