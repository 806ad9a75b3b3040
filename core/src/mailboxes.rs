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
use crate::mailbox::{MailboxBackend, MailboxError, MailboxRef};
use crate::model::{AccessToken, Auth, EmailAddress, InvalidInput, Principal, Resource, Target};

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

    /// The backend and mailbox an application's user acts on. On an app-only connection the
    /// principal is a static user, mapped by an admin to the mailbox the app acts on; on a
    /// delegated connection it is a linked account, acting on its own mailbox or on `mailbox`
    /// (a shared or delegated one).
    pub async fn for_principal(
        &self,
        connection: &str,
        principal: &Principal,
        mailbox: Option<&EmailAddress>,
    ) -> Result<(Arc<dyn MailboxBackend>, MailboxRef), Error> {
        let conn = self.connections.get(connection).await?.connection;
        if let Auth::OAuth2AppOnly(_) = conn.settings.auth {
            if mailbox.is_some() {
                return Err(InvalidInput::new(
                    "mailbox",
                    "is not used on app-only connections: the static user names the mailbox".into(),
                )
                .into());
            }
            let users = self.connections.static_users(conn.id).await?;
            let user = users
                .iter()
                .find(|u| &u.principal == principal)
                .ok_or_else(|| Error::NotFound {
                    what: "static user",
                    name: principal.to_string(),
                })?;
            let backend = self.open(Some(connection), None).await?;
            return Ok((backend, MailboxRef::User(user.mailbox.to_string())));
        }
        let backend = self.open(Some(connection), Some(principal)).await?;
        let target = mailbox.map_or(MailboxRef::Me, |m| MailboxRef::User(m.to_string()));
        Ok((backend, target))
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
