//! Opens the mailbox backend of a connection for one of its accounts (or, app-only, for the app).

use std::sync::Arc;

use async_trait::async_trait;

use crate::Error;
use crate::auth::SignIn;
use crate::auth::signin::primary_resource;
use crate::config::NetworkSettings;
use crate::connections::Connections;
use crate::governor::{Governor, GovernorPolicy};
use crate::graph::{GraphMailbox, TokenProvider, default_base_url};
use crate::mailbox::{MailboxBackend, MailboxError};
use crate::model::{AccessToken, Auth, Principal, Resource, Target};

/// Tokens for one (connection, account) from the sign-in service.
#[derive(Debug)]
struct SignInTokens {
    signin: Arc<SignIn>,
    connection: String,
    principal: Option<Principal>,
    resource: Resource,
}

#[async_trait]
impl TokenProvider for SignInTokens {
    async fn token(&self) -> Result<Arc<AccessToken>, Error> {
        self.signin
            .token(&self.connection, self.principal.as_ref(), self.resource)
            .await
    }

    async fn forget(&self) {
        if let Err(e) = self
            .signin
            .invalidate(&self.connection, self.principal.as_ref(), self.resource)
            .await
        {
            tracing::warn!(error = %e, "could not drop a rejected token");
        }
    }
}

/// Hands out mailbox backends; one governor is shared by all of them.
#[derive(Debug)]
pub struct Mailboxes {
    signin: Arc<SignIn>,
    connections: Arc<Connections>,
    network: NetworkSettings,
    governor: Arc<Governor>,
    http: reqwest::Client,
}

impl Mailboxes {
    pub fn new(
        signin: Arc<SignIn>,
        connections: Arc<Connections>,
        network: NetworkSettings,
        policy: GovernorPolicy,
    ) -> Result<Self, Error> {
        let http = crate::net::http_client(&network)
            .map_err(|e| Error::Mailbox(MailboxError::Unsupported(e.to_string())))?;
        Ok(Self {
            signin,
            connections,
            network,
            governor: Governor::new(policy),
            http,
        })
    }

    pub fn governor(&self) -> &Arc<Governor> {
        &self.governor
    }

    /// The backend for `connection` (default: the only one), acting as `account` (default: the
    /// connection's only account; app-only connections act as the app).
    pub async fn open(
        &self,
        connection: Option<&str>,
        account: Option<&Principal>,
    ) -> Result<Arc<dyn MailboxBackend>, Error> {
        let entry = self.connections.resolve(connection).await?;
        let conn = entry.connection;
        let (principal, me) = match &conn.settings.auth {
            Auth::OAuth2AppOnly(_) => (None, None),
            Auth::OAuth2Delegated(_) => {
                let account = self.signin.resolve_account(&conn, account).await?;
                let me = account
                    .mailbox
                    .as_ref()
                    .map_or_else(|| account.principal.to_string(), ToString::to_string);
                (Some(account.principal), Some(me))
            }
            Auth::Basic(_) | Auth::Ntlm(_) => {
                return Err(MailboxError::Unsupported(format!(
                    "connection `{}` uses {} authentication, which only the EWS backend speaks; the EWS backend is not built yet",
                    conn.name,
                    conn.settings.auth.kind()
                ))
                .into());
            }
        };
        match (&conn.settings.target, primary_resource(&conn)) {
            (Target::Online { cloud, .. }, Resource::Graph) => {
                let base = self.network.graph_url.as_ref().map_or_else(|| default_base_url(*cloud).to_owned(), ToString::to_string);
                let tokens = Arc::new(SignInTokens {
                    signin: Arc::clone(&self.signin),
                    connection: conn.name.to_string(),
                    principal,
                    resource: Resource::Graph,
                });
                Ok(Arc::new(GraphMailbox::new(self.http.clone(), &base, tokens, Arc::clone(&self.governor), me)))
            }
            _ => Err(MailboxError::Unsupported(format!(
                "connection `{}` uses the EWS backend, which is not built yet; for Exchange Online use --backend graph",
                conn.name
            ))
            .into()),
        }
    }
}
