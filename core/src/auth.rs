//! Sign-in with Entra ID and other OIDC providers: every OAuth2 flow exgate supports, the token
//! cache, and the AADSTS catalogue that explains failures.
//!
//! - [`oauth`]: a connection's endpoints and flows (authorization code + PKCE, device code,
//!   client credentials with a secret or a certificate, refresh, password).
//! - [`signin`]: the service the frontends call: start and finish sign-ins, link accounts, tokens.
//! - [`cache`]: [`TokenCache`], one refresh in flight per key, refresh ahead of expiry.
//! - [`aadsts`]: what each AADSTS code means and how to fix it.
//! - [`credentials`]: what a mailbox backend authenticates with (bearer, Basic, NTLM).

pub mod aadsts;
pub mod assertion;
pub mod cache;
pub mod credentials;
mod error;
pub mod idtoken;
pub mod loopback;
pub mod ntlm;
pub mod oauth;
pub mod pending;
pub mod signin;

pub use cache::{Refresh, RetryPolicy, TokenCache, TokenSource};
pub use credentials::{Credential, Credentials, PasswordCredentials, SignInCredentials};
pub use error::{AuthError, ErrorBody};
pub use loopback::{LoopbackReceiver, RedirectParams};
pub use oauth::{DeviceAuthorization, Endpoints, Identity, OAuthClient, TokenResponse};
pub use pending::{PendingLogin, PendingLogins};
pub use signin::{
    BrowserLogin, DeviceLogin, LOGIN_STATUS_CAP, LOGIN_STATUS_TTL, PASSWORD_FLOW_WARNING, SignIn,
};
