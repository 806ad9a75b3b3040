//! A generic, standards-following OpenID provider under `/oidc`: what a certified OIDC provider
//! (Keycloak, AD FS, …) does, and deliberately **not** what Entra ID does. It serves the users
//! of the [`crate::directory`] and its own clients, whose IDs are not GUIDs.
//!
//! | route | what |
//! |---|---|
//! | `GET /oidc/.well-known/openid-configuration` | discovery (OIDC Discovery 1.0), issuer `{base}/oidc` |
//! | `GET /oidc/jwks` | the signing key (RS256, its own, not Entra's) |
//! | `GET/POST /oidc/authorize` | authorization code (sign-in form, or auto-approve) |
//! | `POST /oidc/token` | `authorization_code`, `refresh_token`, device code, `client_credentials` |
//! | `POST /oidc/device_authorization` | RFC 8628 device authorization |
//! | `GET/POST /oidc/device` | where a user enters a device code |
//!
//! Its rules, each from a standard:
//! - a refresh token only when `offline_access` was asked **and** the authorization request
//!   carried `prompt=consent` (OIDC Core 1.0 §11; device code: the user's approval on the device
//!   page is the consent);
//! - a refresh that asks a scope not originally granted is `invalid_scope` (RFC 6749 §6, §5.2);
//! - `resource` (RFC 8707): the access token's `aud` becomes the resource; a resource it does not
//!   serve is `invalid_target`;
//! - public clients must use PKCE with S256 (RFC 7636, OAuth 2.0 Security BCP);
//! - the `nonce` of the authorization request comes back in the ID token;
//! - errors are plain RFC 6749 §5.2 JSON (`error`, `error_description`): no AADSTS codes, no
//!   `client_info`, no `refresh_in`.
//!
//! It is off until enabled ([`OidcState::set_enabled`], `exgate-mock --generic-oidc`); while off
//! every route answers 404. Switches (`/_mock/oidc`) make it issue faulty ID tokens for tests of
//! the client's validation ([`IdTokenFault`]).

mod endpoints;
mod state;

use axum::Router;
use axum::routing::{get, post};

pub use state::{
    IdTokenFault, OidcClient, OidcRequest, OidcState, OidcSwitchChange, OidcSwitches,
    PORTAL_CLIENT, RESOURCE, SERVICE_CLIENT, SERVICE_SECRET,
};

/// The path the provider lives under.
pub const PREFIX: &str = "/oidc";

/// The generic provider's routes over `state`.
pub fn oidc_router(state: OidcState) -> Router {
    Router::new()
        .route(
            "/oidc/.well-known/openid-configuration",
            get(endpoints::discovery),
        )
        .route("/oidc/jwks", get(endpoints::jwks))
        .route(
            "/oidc/authorize",
            get(endpoints::authorize_get).post(endpoints::authorize_post),
        )
        .route("/oidc/token", post(endpoints::token))
        .route(
            "/oidc/device_authorization",
            post(endpoints::device_authorization),
        )
        .route(
            "/oidc/device",
            get(endpoints::device_page).post(endpoints::device_submit),
        )
        .with_state(state)
}
