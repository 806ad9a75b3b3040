//! One connection's OAuth2 client: where its identity provider's endpoints are, and each flow.
//!
//! The authorization request (PKCE S256 and `state`) is built with the `oauth2` crate. Token
//! endpoint requests are sent here, so that everything the server says — status, `Retry-After`,
//! and Entra's error fields (codes, trace and correlation IDs) — is kept as evidence.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oauth2::{AuthUrl, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope};
use serde::Deserialize;
use url::Url;

use super::assertion::{self, ASSERTION_TYPE};
use super::error::{AuthError, ErrorBody};
use super::idtoken::{self, Expected, KeyCache};
use crate::clock::Clock;
use crate::config::NetworkSettings;
use crate::model::{
    Auth, ClientCredential, ClientId, Cloud, ConnectionSettings, EndpointUrl, ResourceIndicator,
    Target, Tenant,
};
use crate::net;
use crate::secret::Secret;

/// The Entra ID login host of each cloud.
pub fn login_host(cloud: Cloud) -> &'static str {
    match cloud {
        Cloud::Global => "https://login.microsoftonline.com",
        Cloud::UsGov => "https://login.microsoftonline.us",
        Cloud::China => "https://login.chinacloudapi.cn",
    }
}

/// Where a connection's identity provider takes requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub authorization: Option<Url>,
    pub token: Url,
    pub device_authorization: Option<Url>,
    /// The discovery document's `issuer`, which ID tokens must name.
    pub issuer: Option<String>,
    /// Where the provider's signing keys are (the discovery document's `jwks_uri`).
    pub jwks_uri: Option<Url>,
    /// The discovery document to read `issuer` and `jwks_uri` from when they are needed (Entra
    /// ID, whose other endpoints are known without it).
    pub discovery: Option<Url>,
}

/// The fields of an OIDC discovery document exgate uses.
#[derive(Debug, Deserialize)]
struct Discovery {
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    jwks_uri: Option<String>,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    device_authorization_endpoint: Option<String>,
}

fn endpoint_url(field: &str, value: &str) -> Result<Url, AuthError> {
    value
        .parse::<EndpointUrl>()
        .map(|u| u.as_url().clone())
        .map_err(|e| {
            AuthError::Unsupported(format!(
                "the identity provider's {field} is unusable: {}",
                e.0
            ))
        })
}

impl Endpoints {
    /// Entra ID's v2.0 endpoints for `tenant` on `host`.
    pub fn entra(host: &str, tenant: &Tenant) -> Result<Self, AuthError> {
        let host = host.trim_end_matches('/');
        let base = format!("{host}/{tenant}/oauth2/v2.0");
        Ok(Self {
            issuer: None,
            jwks_uri: None,
            discovery: Some(endpoint_url(
                "discovery document",
                &format!("{host}/{tenant}/v2.0/.well-known/openid-configuration"),
            )?),
            authorization: Some(endpoint_url(
                "authorize endpoint",
                &format!("{base}/authorize"),
            )?),
            token: endpoint_url("token endpoint", &format!("{base}/token"))?,
            device_authorization: Some(endpoint_url(
                "device code endpoint",
                &format!("{base}/devicecode"),
            )?),
        })
    }

    /// Reads an OIDC discovery document. Every endpoint must be https (or loopback).
    pub async fn discover(
        http: &reqwest::Client,
        discovery: &EndpointUrl,
    ) -> Result<Self, AuthError> {
        let doc = fetch_discovery(http, discovery.as_url()).await?;
        let during = "OIDC discovery";
        let url = discovery.as_url();
        let token = doc.token_endpoint.ok_or_else(|| AuthError::Protocol {
            during,
            message: format!("{url} names no token_endpoint"),
        })?;
        Ok(Self {
            token: endpoint_url("token_endpoint", &token)?,
            authorization: doc
                .authorization_endpoint
                .map(|u| endpoint_url("authorization_endpoint", &u))
                .transpose()?,
            device_authorization: doc
                .device_authorization_endpoint
                .map(|u| endpoint_url("device_authorization_endpoint", &u))
                .transpose()?,
            issuer: doc.issuer,
            jwks_uri: doc
                .jwks_uri
                .map(|u| endpoint_url("jwks_uri", &u))
                .transpose()?,
            discovery: Some(url.clone()),
        })
    }

    /// The issuer ID tokens must name and where the provider's keys are: from the discovery
    /// document already read, or read now (Entra ID).
    pub async fn oidc_metadata(&self, http: &reqwest::Client) -> Result<(String, Url), AuthError> {
        let (issuer, jwks) = match (&self.issuer, &self.jwks_uri, &self.discovery) {
            (Some(issuer), Some(jwks), _) => (Some(issuer.clone()), Some(jwks.clone())),
            (_, _, Some(discovery)) => {
                let doc = fetch_discovery(http, discovery).await?;
                (
                    doc.issuer,
                    doc.jwks_uri
                        .map(|u| endpoint_url("jwks_uri", &u))
                        .transpose()?,
                )
            }
            _ => (self.issuer.clone(), self.jwks_uri.clone()),
        };
        let missing = |what: &str| AuthError::Protocol {
            during: "OIDC discovery",
            message: format!(
                "the discovery document names no {what}, so the ID token cannot be validated"
            ),
        };
        Ok((
            issuer.ok_or_else(|| missing("issuer"))?,
            jwks.ok_or_else(|| missing("jwks_uri"))?,
        ))
    }

    /// The endpoints of a connection: its custom authority's discovery document, or Entra ID for
    /// its cloud and tenant (on `network.authority_host` when set).
    pub async fn for_connection(
        settings: &ConnectionSettings,
        network: &NetworkSettings,
        http: &reqwest::Client,
    ) -> Result<Self, AuthError> {
        if let Some(discovery) = &settings.authority {
            return Self::discover(http, discovery).await;
        }
        match &settings.target {
            Target::Online { cloud, tenant } => {
                let host = network
                    .authority_host
                    .as_ref()
                    .map_or_else(|| login_host(*cloud).to_owned(), |h| h.to_string());
                Self::entra(&host, tenant)
            }
            Target::Server { .. } => Err(AuthError::Unsupported(
                "OAuth2 against Exchange Server needs the connection's authority (its identity provider's discovery URL)".into(),
            )),
        }
    }
}

/// Reads the discovery document at `url` (every field optional; callers ask for what they need).
async fn fetch_discovery(http: &reqwest::Client, url: &Url) -> Result<Discovery, AuthError> {
    let during = "OIDC discovery";
    let resp = http
        .get(url.clone())
        .send()
        .await
        .map_err(|e| transport(during, url, &e))?;
    let status = resp.status().as_u16();
    let body = net::read_body(resp)
        .await
        .map_err(|message| AuthError::Protocol { during, message })?;
    if status != 200 {
        return Err(AuthError::Http {
            during,
            status,
            retry_after: None,
        });
    }
    serde_json::from_slice(&body).map_err(|e| AuthError::Protocol {
        during,
        message: format!("{url} is not an OpenID Connect discovery document: {e}"),
    })
}

fn transport(during: &'static str, url: &Url, e: &reqwest::Error) -> AuthError {
    let message = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        e.to_string()
    };
    AuthError::Transport {
        during,
        endpoint: format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap_or(""),
            url.path()
        ),
        message,
    }
}

/// A token endpoint's answer.
#[derive(Debug)]
pub struct TokenResponse {
    pub access_token: Secret,
    pub expires_in: Duration,
    pub refresh_in: Option<Duration>,
    pub refresh_token: Option<Secret>,
    pub scopes: Vec<String>,
    /// Who signed in: set by the sign-in flows (authorization code, device code, password)
    /// from the ID token once it has been validated ([`idtoken`]); from the access token's
    /// claims only when the provider sent no ID token. `None` for refresh and client credentials.
    pub identity: Option<Identity>,
    /// The ID token as it came, until it is validated.
    pub id_token: Option<Secret>,
}

/// Who a delegated token belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Identity {
    #[serde(default)]
    pub preferred_username: Option<String>,
    #[serde(default)]
    pub upn: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub oid: Option<String>,
    #[serde(default)]
    pub tid: Option<String>,
}

impl Identity {
    /// The sign-in name: `upn`, else `preferred_username`.
    pub fn username(&self) -> Option<&str> {
        self.upn.as_deref().or(self.preferred_username.as_deref())
    }

    fn from_jwt(jwt: &str) -> Option<Self> {
        let payload = jwt.split('.').nth(1)?;
        let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Seconds {
    Number(u64),
    Text(String),
}

impl Seconds {
    fn get(&self) -> Option<u64> {
        match self {
            Self::Number(n) => Some(*n),
            Self::Text(s) => s.parse().ok(),
        }
    }
}

#[derive(Deserialize)]
struct RawToken {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<Seconds>,
    #[serde(default)]
    refresh_in: Option<Seconds>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
}

/// A device code sign-in in progress (RFC 8628 §3.2).
#[derive(Debug)]
pub struct DeviceAuthorization {
    pub device_code: Secret,
    pub user_code: String,
    pub verification_uri: String,
    /// Entra's ready-made instruction for the user.
    pub message: Option<String>,
    pub expires_in: Duration,
    pub interval: Duration,
}

#[derive(Deserialize)]
struct RawDeviceAuthorization {
    device_code: String,
    user_code: String,
    #[serde(alias = "verification_url")]
    verification_uri: String,
    #[serde(default)]
    message: Option<String>,
    expires_in: Seconds,
    #[serde(default)]
    interval: Option<Seconds>,
}

/// An authorization request to send the user's browser to.
#[derive(Debug)]
pub struct AuthorizationRequest {
    pub url: Url,
    /// The `state` to expect back (single use).
    pub state: String,
    /// The PKCE verifier for the code exchange; deliberately not `Clone`.
    pub verifier: PkceCodeVerifier,
    pub redirect_uri: String,
    /// The `nonce` sent, which the ID token must carry back.
    pub nonce: String,
}

/// A connection's OAuth2 client.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    http: reqwest::Client,
    endpoints: Endpoints,
    client_id: ClientId,
    credential: Option<ClientCredential>,
    clock: Arc<dyn Clock>,
    /// A custom OIDC authority (not Entra ID): requests follow the OAuth2/OIDC standards
    /// rather than Entra's habits (no scope on refresh, `prompt=consent` with
    /// `offline_access`, RFC 8707 `resource`).
    custom: bool,
    resource: Option<ResourceIndicator>,
    keys: Arc<KeyCache>,
}

/// The RFC 8628 default polling interval.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

impl OAuthClient {
    pub fn new(
        http: reqwest::Client,
        endpoints: Endpoints,
        client_id: ClientId,
        credential: Option<ClientCredential>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            http,
            endpoints,
            client_id,
            credential,
            clock,
            custom: false,
            resource: None,
            keys: Arc::new(KeyCache::default()),
        }
    }

    /// Speaks to a custom (standards-following) authority, with an RFC 8707 resource.
    pub fn custom_authority(mut self, resource: Option<ResourceIndicator>) -> Self {
        self.custom = true;
        self.resource = resource;
        self
    }

    /// Shares a cache of the provider's signing keys.
    pub fn with_keys(mut self, keys: Arc<KeyCache>) -> Self {
        self.keys = keys;
        self
    }

    /// The client for an OAuth2 connection; basic and NTLM connections have none.
    pub async fn for_connection(
        settings: &ConnectionSettings,
        network: &NetworkSettings,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AuthError> {
        let (client_id, credential) = match &settings.auth {
            Auth::OAuth2Delegated(d) => (d.client_id.clone(), d.credential.clone()),
            Auth::OAuth2AppOnly(a) => (a.client_id.clone(), Some(a.credential.clone())),
            Auth::Basic(_) | Auth::Ntlm(_) => {
                return Err(AuthError::Unsupported(format!(
                    "the connection uses {} authentication, which involves no OAuth2 sign-in or tokens",
                    settings.auth.kind()
                )));
            }
        };
        let endpoints = Endpoints::for_connection(settings, network, &http).await?;
        let client = Self::new(http, endpoints, client_id, credential, clock);
        Ok(if settings.authority.is_some() {
            client.custom_authority(settings.resource.clone())
        } else {
            client
        })
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// A browser sign-in request with PKCE (S256) and a random `state`.
    pub fn authorization_request(
        &self,
        redirect_uri: &str,
        scopes: &[String],
        login_hint: Option<&str>,
    ) -> Result<AuthorizationRequest, AuthError> {
        let auth_url = self.endpoints.authorization.clone().ok_or_else(|| {
            AuthError::Unsupported("the identity provider has no authorization endpoint; browser sign-in is not possible".into())
        })?;
        let redirect = RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| {
            AuthError::Flow(format!(
                "the redirect URI `{redirect_uri}` is not a URL: {e}"
            ))
        })?;
        let client =
            oauth2::basic::BasicClient::new(oauth2::ClientId::new(self.client_id.to_string()))
                .set_auth_uri(AuthUrl::from_url(auth_url))
                .set_redirect_uri(redirect);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = CsrfToken::new_random().secret().clone();
        let mut request = client
            .authorize_url(CsrfToken::new_random)
            .add_scopes(scopes.iter().map(|s| Scope::new(s.clone())))
            .set_pkce_challenge(challenge)
            .add_extra_param("response_mode", "query")
            .add_extra_param("nonce", nonce.clone());
        if let Some(hint) = login_hint {
            request = request.add_extra_param("login_hint", hint);
        }
        if self.custom {
            // OIDC Core 1.0 §11: a request for offline_access must ask for consent, or a
            // standards-following provider issues no refresh token.
            if scopes.iter().any(|s| s == "offline_access") {
                request = request.add_extra_param("prompt", "consent");
            }
            if let Some(resource) = &self.resource {
                request = request.add_extra_param("resource", resource.as_str());
            }
        }
        let (url, state) = request.url();
        Ok(AuthorizationRequest {
            url,
            state: state.secret().clone(),
            verifier,
            redirect_uri: redirect_uri.to_owned(),
            nonce,
        })
    }

    /// Redeems an authorization code (RFC 6749 §4.1.3 with RFC 7636's verifier) and validates
    /// the ID token against the `nonce` the authorization request sent.
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: PkceCodeVerifier,
        redirect_uri: &str,
        scopes: &[String],
        nonce: &str,
    ) -> Result<TokenResponse, AuthError> {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", redirect_uri.to_owned()),
            ("code_verifier", verifier.secret().clone()),
        ];
        if !self.custom {
            // Entra's v2.0 endpoint wants the scope again; RFC 6749 §4.1.3 has none.
            form.push(("scope", scopes.join(" ")));
        }
        let response = self
            .token_request("authorization code exchange", form)
            .await?;
        self.identify(response, Some(nonce)).await
    }

    /// Redeems a refresh token. Entra's v2.0 endpoint takes the scopes again; a custom
    /// authority gets none (RFC 6749 §6: the scope is optional and may not exceed what was
    /// granted, so the grant's own scopes apply).
    pub async fn refresh(
        &self,
        refresh_token: &Secret,
        scopes: &[String],
    ) -> Result<TokenResponse, AuthError> {
        let mut form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh_token.expose().to_owned()),
        ];
        if !self.custom {
            form.push(("scope", scopes.join(" ")));
        }
        self.token_request("token refresh", form).await
    }

    /// Sets who signed in from the answer's ID token, validated against the provider's keys,
    /// issuer, this client, exgate's clock and `nonce` (when one was sent).
    async fn identify(
        &self,
        mut response: TokenResponse,
        nonce: Option<&str>,
    ) -> Result<TokenResponse, AuthError> {
        let Some(id_token) = &response.id_token else {
            response.identity = Identity::from_jwt(response.access_token.expose());
            return Ok(response);
        };
        let (issuer, jwks_uri) = self.endpoints.oidc_metadata(&self.http).await?;
        let client_id = self.client_id.to_string();
        let expected = Expected {
            issuer: &issuer,
            client_id: &client_id,
            nonce,
            now: self.clock.now(),
        };
        let identity = idtoken::validate(
            &self.http,
            &self.keys,
            &jwks_uri,
            id_token.expose(),
            &expected,
        )
        .await?;
        response.identity = Some(identity);
        Ok(response)
    }

    pub async fn client_credentials(&self, scope: &str) -> Result<TokenResponse, AuthError> {
        if self.credential.is_none() {
            return Err(AuthError::Unsupported(
                "client credentials need a client secret or certificate on the connection".into(),
            ));
        }
        let form = vec![
            ("grant_type", "client_credentials".to_owned()),
            ("scope", scope.to_owned()),
        ];
        self.token_request("client credentials request", form).await
    }

    /// Resource-owner password credentials (RFC 6749 §4.3). Legacy: fails under MFA and most
    /// Conditional Access policies.
    pub async fn password(
        &self,
        username: &str,
        password: &Secret,
        scopes: &[String],
    ) -> Result<TokenResponse, AuthError> {
        let form = vec![
            ("grant_type", "password".to_owned()),
            ("username", username.to_owned()),
            ("password", password.expose().to_owned()),
            ("scope", scopes.join(" ")),
        ];
        let response = self.token_request("password sign-in", form).await?;
        self.identify(response, None).await
    }

    /// Starts a device code sign-in (RFC 8628 §3.1).
    pub async fn device_authorization(
        &self,
        scopes: &[String],
    ) -> Result<DeviceAuthorization, AuthError> {
        let during = "device code request";
        let url = self.endpoints.device_authorization.clone().ok_or_else(|| {
            AuthError::Unsupported(
                "the identity provider has no device authorization endpoint; use browser sign-in"
                    .into(),
            )
        })?;
        let mut form = vec![
            ("client_id", self.client_id.to_string()),
            ("scope", scopes.join(" ")),
        ];
        self.add_resource(&mut form);
        let body = self.post(during, &url, &form).await?;
        let raw: RawDeviceAuthorization =
            serde_json::from_slice(&body).map_err(|e| AuthError::Protocol {
                during,
                message: e.to_string(),
            })?;
        Ok(DeviceAuthorization {
            device_code: Secret::new(raw.device_code),
            user_code: raw.user_code,
            verification_uri: raw.verification_uri,
            message: raw.message,
            expires_in: Duration::from_secs(raw.expires_in.get().unwrap_or(900)),
            interval: raw
                .interval
                .and_then(|i| i.get())
                .map_or(DEFAULT_INTERVAL, Duration::from_secs),
        })
    }

    /// Polls until the user finishes the device code sign-in (RFC 8628 §3.4–3.5): waits the
    /// interval on `authorization_pending`, adds five seconds on `slow_down`, and stops on
    /// `expired_token`, `authorization_declined`, any other error, or the code's expiry.
    pub async fn poll_device(
        &self,
        device: &DeviceAuthorization,
    ) -> Result<TokenResponse, AuthError> {
        let deadline = tokio::time::Instant::now() + device.expires_in;
        let mut interval = device.interval;
        loop {
            let form = vec![
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:device_code".to_owned(),
                ),
                ("device_code", device.device_code.expose().to_owned()),
            ];
            match self.token_request("device code sign-in", form).await {
                Err(AuthError::Refused { body, .. }) if body.error == "authorization_pending" => {}
                Err(AuthError::Refused { body, .. }) if body.error == "slow_down" => {
                    interval += SLOW_DOWN_STEP
                }
                Ok(response) => return self.identify(response, None).await,
                Err(other) => return Err(other),
            }
            if tokio::time::Instant::now() + interval >= deadline {
                return Err(AuthError::Flow(
                    "the device code expired before the sign-in was completed; run the sign-in again".into(),
                ));
            }
            if interval.is_zero() {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(interval).await;
            }
        }
    }

    /// Polls a device code sign-in once: `Ok(None)` while the user has not finished
    /// (`authorization_pending`, `slow_down`), the tokens once they have, or the refusal. The
    /// connection test uses it to learn whether the provider takes this client's device code
    /// grant at all (Entra: "Allow public client flows") without waiting for anyone.
    pub async fn poll_device_once(
        &self,
        device: &DeviceAuthorization,
    ) -> Result<Option<TokenResponse>, AuthError> {
        let form = vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:device_code".to_owned(),
            ),
            ("device_code", device.device_code.expose().to_owned()),
        ];
        match self.token_request("device code sign-in", form).await {
            Err(AuthError::Refused { body, .. })
                if body.error == "authorization_pending" || body.error == "slow_down" =>
            {
                Ok(None)
            }
            Ok(response) => Ok(Some(response)),
            Err(other) => Err(other),
        }
    }

    fn client_authentication(
        &self,
        form: &mut Vec<(&'static str, String)>,
    ) -> Result<(), AuthError> {
        form.push(("client_id", self.client_id.to_string()));
        match &self.credential {
            Some(ClientCredential::Secret(secret)) => {
                form.push(("client_secret", secret.expose().to_owned()))
            }
            Some(ClientCredential::Certificate(cert)) => {
                let jwt = assertion::client_assertion(
                    cert,
                    &self.client_id,
                    self.endpoints.token.as_str(),
                    self.clock.now(),
                )?;
                form.push(("client_assertion_type", ASSERTION_TYPE.to_owned()));
                form.push(("client_assertion", jwt));
            }
            None => {}
        }
        Ok(())
    }

    /// A custom authority's RFC 8707 `resource`, on every authorization and token request.
    fn add_resource(&self, form: &mut Vec<(&'static str, String)>) {
        if let (true, Some(resource)) = (self.custom, &self.resource) {
            form.push(("resource", resource.as_str().to_owned()));
        }
    }

    async fn token_request(
        &self,
        during: &'static str,
        mut form: Vec<(&'static str, String)>,
    ) -> Result<TokenResponse, AuthError> {
        self.add_resource(&mut form);
        self.client_authentication(&mut form)?;
        let url = self.endpoints.token.clone();
        let body = self.post(during, &url, &form).await?;
        token_response(during, &body)
    }

    /// Posts a form; a non-200 answer becomes a typed error with the server's body as evidence.
    async fn post(
        &self,
        during: &'static str,
        url: &Url,
        form: &[(&'static str, String)],
    ) -> Result<Vec<u8>, AuthError> {
        let resp = self
            .http
            .post(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .header("client-request-id", uuid::Uuid::new_v4().to_string())
            .form(form)
            .send()
            .await
            .map_err(|e| transport(during, url, &e))?;
        let status = resp.status().as_u16();
        let retry_after = net::retry_after(resp.headers());
        let body = net::read_body(resp)
            .await
            .map_err(|message| AuthError::Protocol { during, message })?;
        if status == 200 {
            return Ok(body);
        }
        match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(error) if !error.error.is_empty() => Err(AuthError::Refused {
                during,
                status,
                body: Box::new(error),
                retry_after,
            }),
            _ => Err(AuthError::Http {
                during,
                status,
                retry_after,
            }),
        }
    }
}

/// Reads an identity provider's token answer. The access token must be one line of visible
/// characters: an empty or multi-line token is refused as malformed (and never printed), since
/// it would break an `Authorization` header or a mail client's `passwordeval` line.
fn token_response(during: &'static str, body: &[u8]) -> Result<TokenResponse, AuthError> {
    let raw: RawToken = serde_json::from_slice(body).map_err(|e| AuthError::Protocol {
        during,
        message: format!("the token response is not the expected JSON: {e}"),
    })?;
    if let Some(kind) = raw
        .token_type
        .as_deref()
        .filter(|t| !t.eq_ignore_ascii_case("bearer"))
    {
        return Err(AuthError::Protocol {
            during,
            message: format!("token type `{kind}` is not Bearer"),
        });
    }
    if raw.access_token.is_empty() {
        return Err(AuthError::Protocol {
            during,
            message: "the answer's access_token is empty".into(),
        });
    }
    if raw
        .access_token
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(AuthError::Protocol {
            during,
            message: "the answer's access_token spans several lines or holds spaces or \
                          control characters, which no bearer token does"
                .into(),
        });
    }
    Ok(TokenResponse {
        expires_in: Duration::from_secs(raw.expires_in.and_then(|e| e.get()).unwrap_or(3600)),
        refresh_in: raw
            .refresh_in
            .and_then(|r| r.get())
            .map(Duration::from_secs),
        refresh_token: raw.refresh_token.map(Secret::new),
        scopes: raw
            .scope
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        access_token: Secret::new(raw.access_token),
        identity: None,
        id_token: raw.id_token.map(Secret::new),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_multi_line_access_token_is_malformed_and_never_repeated() {
        let ok = token_response(
            "token request",
            br#"{"access_token":"eyJ0eXAi.eyJzdWIi.c2ln","token_type":"Bearer","expires_in":3600}"#,
        )
        .unwrap();
        assert_eq!(ok.access_token.expose(), "eyJ0eXAi.eyJzdWIi.c2ln");
        for (body, why) in [
            (r#"{"access_token":"","token_type":"Bearer"}"#, "empty"),
            (
                r#"{"access_token":"first-line-SECRETPART\nsecond-line","token_type":"Bearer"}"#,
                "several lines",
            ),
            (
                r#"{"access_token":"SECRETPART with-space","token_type":"Bearer"}"#,
                "several lines",
            ),
            (
                r#"{"access_token":"SECRETPART\r","token_type":"Bearer"}"#,
                "several lines",
            ),
        ] {
            let err = token_response("token request", body.as_bytes()).unwrap_err();
            assert!(matches!(err, AuthError::Protocol { .. }), "{err}");
            let text = err.to_string();
            assert!(text.contains(why), "{text}");
            assert!(!text.contains("SECRETPART"), "{text}");
            assert!(!err.is_retryable());
        }
    }
}
