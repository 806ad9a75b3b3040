//! What a mailbox backend authenticates with: one provider per (connection, account, resource)
//! that yields a bearer token from the sign-in service, or a user name and password for Basic or
//! NTLM (Exchange Server on premises). The request pipeline asks it before every attempt and tells
//! it when the server refused what it gave.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::Error;
use crate::auth::SignIn;
use crate::model::{AccessToken, PasswordAuth, Principal, Resource};

/// One credential, ready to put on a request.
#[derive(Clone)]
pub enum Credential {
    /// An OAuth2 access token (`Authorization: Bearer …`).
    Bearer(Arc<AccessToken>),
    /// HTTP Basic over TLS.
    Basic(PasswordAuth),
    /// NTLM: the password is used for the handshake, never sent.
    Ntlm(PasswordAuth),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bearer(_) => f.write_str("Credential::Bearer(<redacted>)"),
            Self::Basic(p) => write!(f, "Credential::Basic({})", p.username),
            Self::Ntlm(p) => write!(f, "Credential::Ntlm({})", p.username),
        }
    }
}

impl Credential {
    /// The access token, when this is one (for explaining a 403 by its claims).
    pub fn bearer(&self) -> Option<&AccessToken> {
        match self {
            Self::Bearer(t) => Some(t),
            Self::Basic(_) | Self::Ntlm(_) => None,
        }
    }
}

/// Where a backend's requests get their credential.
#[async_trait]
pub trait Credentials: Send + Sync + fmt::Debug {
    async fn credential(&self) -> Result<Credential, Error>;
    /// The server refused the last credential: forget whatever is cached, so the next
    /// [`Credentials::credential`] fetches a new one.
    async fn rejected(&self);
}

/// Tokens for one (connection, account or app, resource) from the sign-in service.
#[derive(Debug)]
pub struct SignInCredentials {
    signin: Arc<SignIn>,
    connection: String,
    principal: Option<Principal>,
    resource: Resource,
}

impl SignInCredentials {
    pub fn new(
        signin: Arc<SignIn>,
        connection: String,
        principal: Option<Principal>,
        resource: Resource,
    ) -> Self {
        Self {
            signin,
            connection,
            principal,
            resource,
        }
    }
}

#[async_trait]
impl Credentials for SignInCredentials {
    async fn credential(&self) -> Result<Credential, Error> {
        self.signin
            .token(&self.connection, self.principal.as_ref(), self.resource)
            .await
            .map(Credential::Bearer)
    }

    async fn rejected(&self) {
        if let Err(e) = self
            .signin
            .invalidate(&self.connection, self.principal.as_ref(), self.resource)
            .await
        {
            tracing::warn!(error = %e, "could not drop a rejected token");
        }
    }
}

/// A fixed user name and password (Basic or NTLM); nothing to refresh.
#[derive(Debug)]
pub struct PasswordCredentials(pub Credential);

#[async_trait]
impl Credentials for PasswordCredentials {
    async fn credential(&self) -> Result<Credential, Error> {
        Ok(self.0.clone())
    }

    async fn rejected(&self) {}
}
