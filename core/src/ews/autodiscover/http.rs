//! The transport that sends autodiscover requests for real: the `net` module's client (no
//! redirects followed, the configured CA, 30 s per request, bodies of at most 1 MiB), with the
//! connection's credential only where [`super::discover`] asks for one — Basic, NTLM (a
//! handshake on one connection, as for EWS) or a bearer token.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, LOCATION};
use url::Url;

use super::{Discovery, Options, Reply, Transport};
use crate::Error;
use crate::auth::credentials::{Credential, Credentials, PasswordCredentials};
use crate::config::NetworkSettings;
use crate::model::{AuthKind, ConnectionSpec, InvalidInput, PasswordAuth};
use crate::pipeline::NtlmSessions;

/// Exchange Online's autodiscover root (the JSON endpoint).
pub const ONLINE_ROOT: &str = "https://outlook.office365.com/";

/// Sends over HTTP with one connection's credential.
#[derive(Debug)]
pub struct HttpTransport {
    http: reqwest::Client,
    credentials: Option<Arc<dyn Credentials>>,
    ntlm: NtlmSessions,
}

impl HttpTransport {
    /// `credentials`: what authenticated requests carry (none: they go anonymous).
    pub fn new(
        network: &NetworkSettings,
        credentials: Option<Arc<dyn Credentials>>,
    ) -> Result<Self, Error> {
        let http = crate::net::http_client(network).map_err(|e| {
            Error::Mailbox(crate::mailbox::MailboxError::Unsupported(e.to_string()))
        })?;
        Ok(Self {
            http,
            credentials,
            ntlm: NtlmSessions::new(network.clone()),
        })
    }
}

async fn reply(resp: reqwest::Response) -> Result<Reply, String> {
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = crate::net::read_body(resp).await?;
    Ok(Reply {
        status,
        location,
        body,
    })
}

#[async_trait]
impl Transport for HttpTransport {
    async fn post(
        &self,
        url: &Url,
        content_type: &str,
        body: String,
        authenticate: bool,
    ) -> Result<Reply, String> {
        let make = |c: &reqwest::Client| {
            c.post(url.clone())
                .header(CONTENT_TYPE, content_type)
                .timeout(crate::net::REQUEST_TIMEOUT)
                .body(body.clone())
        };
        let credential = match (&self.credentials, authenticate) {
            (Some(c), true) => Some(c.credential().await.map_err(|e| e.to_string())?),
            _ => None,
        };
        let resp = match &credential {
            None => make(&self.http).send().await.map_err(|e| e.to_string())?,
            Some(Credential::Basic(p)) => make(&self.http)
                .basic_auth(&p.username, Some(p.password.expose()))
                .send()
                .await
                .map_err(|e| e.to_string())?,
            Some(Credential::Bearer(t)) => make(&self.http)
                .bearer_auth(t.secret.expose())
                .send()
                .await
                .map_err(|e| e.to_string())?,
            Some(Credential::Ntlm(p)) => {
                let host = url.host_str().unwrap_or_default();
                match self.ntlm.send(host, p, true, make).await {
                    Ok(resp) => resp,
                    Err(crate::pipeline::ntlm::NtlmFailure::Transport(e)) => {
                        return Err(e.to_string());
                    }
                    Err(crate::pipeline::ntlm::NtlmFailure::Handshake(e)) => {
                        return Err(format!("NTLM: {e}"));
                    }
                }
            }
        };
        reply(resp).await
    }

    async fn get(&self, url: &Url) -> Result<Reply, String> {
        let resp = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        reply(resp).await
    }
}

/// The options discovery runs with: the trusted hosts a person confirmed, Exchange Online's
/// root, and the configured endpoint (`endpoints.autodiscover_url`) if any.
pub fn options(network: &NetworkSettings, trusted_hosts: &[String]) -> Options {
    Options {
        trusted_hosts: trusted_hosts
            .iter()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .collect(),
        online_root: Url::parse(ONLINE_ROOT).ok(),
        endpoint: network
            .autodiscover_url
            .as_ref()
            .map(|u| u.as_url().clone()),
    }
}

/// Discovers the EWS URL of `address` with the credential of a connection about to be added
/// as `spec` (Basic or NTLM with its user name and password; OAuth connections have no token
/// yet, so only the anonymous endpoints can answer for them).
pub async fn discover_for_spec(
    network: &NetworkSettings,
    spec: &ConnectionSpec,
    address: &str,
    trusted_hosts: &[String],
) -> Result<Discovery, Error> {
    let auth = spec
        .auth
        .as_deref()
        .map(|a| {
            a.parse::<AuthKind>()
                .map_err(|e| InvalidInput::new("auth", e.0))
        })
        .transpose()?;
    let password = || -> Result<PasswordAuth, Error> {
        let username = spec
            .username
            .clone()
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| {
                InvalidInput::missing("username", "autodiscover signs in with it".into())
            })?;
        let password = spec.password.clone().ok_or_else(|| {
            InvalidInput::missing("password", "autodiscover signs in with it".into())
        })?;
        Ok(PasswordAuth { username, password })
    };
    let credentials: Option<Arc<dyn Credentials>> = match auth {
        Some(AuthKind::Basic) => Some(Arc::new(PasswordCredentials(
            Credential::Basic(password()?),
        ))),
        Some(AuthKind::Ntlm) => Some(Arc::new(PasswordCredentials(Credential::Ntlm(password()?)))),
        _ => None,
    };
    let transport = HttpTransport::new(network, credentials)?;
    Ok(super::discover(&transport, address, &options(network, trusted_hosts)).await?)
}
