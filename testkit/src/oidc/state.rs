//! The generic provider's state: its clients, grants in flight, switches and request log.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::directory::Directory;

/// A public client (no secret): PKCE S256 is required.
pub const PORTAL_CLIENT: &str = "exgate-portal";
/// A confidential client with [`SERVICE_SECRET`].
pub const SERVICE_CLIENT: &str = "exgate-service";
pub const SERVICE_SECRET: &str = "service-secret-value-0123456789";
/// The one resource (RFC 8707) the provider serves besides its default audience.
pub const RESOURCE: &str = "https://api.contoso.test";

const SIGNING_KEY_PEM: &str = include_str!("../../keys/oidc-signing.pem");
/// Another key, to sign ID tokens that must fail signature validation.
const ROGUE_KEY_PEM: &str = include_str!("../../keys/oidc-rogue.pem");

/// A client registered at the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcClient {
    pub client_id: String,
    /// `None`: a public client.
    pub secret: Option<String>,
}

/// A fault in the ID tokens the provider issues, for tests of a client's validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdTokenFault {
    /// A nonce other than the one the authorization request sent.
    WrongNonce,
    /// `aud` names another client.
    WrongAudience,
    /// `iss` is not the provider's issuer.
    WrongIssuer,
    /// `exp` is an hour ago.
    Expired,
    /// Signed by a key that is not in the JWKS (with the real key's `kid`).
    BadSignature,
    /// `alg: none`, no signature.
    Unsigned,
}

impl IdTokenFault {
    pub const ALL: [IdTokenFault; 6] = [
        Self::WrongNonce,
        Self::WrongAudience,
        Self::WrongIssuer,
        Self::Expired,
        Self::BadSignature,
        Self::Unsigned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::WrongNonce => "wrong_nonce",
            Self::WrongAudience => "wrong_audience",
            Self::WrongIssuer => "wrong_issuer",
            Self::Expired => "expired",
            Self::BadSignature => "bad_signature",
            Self::Unsigned => "unsigned",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// The switches as they are now (`GET /_mock/oidc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcSwitches {
    pub enabled: bool,
    /// `/oidc/authorize` signs this user in without the form.
    pub auto_approve: Option<String>,
    pub id_token_fault: Option<IdTokenFault>,
    /// The device code polling interval, seconds.
    pub device_interval: u64,
}

/// A change of the switches (`POST /_mock/oidc`); absent members stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSwitchChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// `""` stops auto-approving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_approve: Option<String>,
    /// `"none"` stops the fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_fault: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_interval: Option<u64>,
}

impl OidcSwitchChange {
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("not a switch change: {e}"))
    }
}

/// One request the provider received, secrets replaced by `<redacted>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OidcRequest {
    /// `authorize`, `token` or `device_authorization`.
    pub endpoint: &'static str,
    /// Every parameter (query or form) by name; a repeated one is joined with a space.
    pub params: BTreeMap<String, String>,
}

impl OidcRequest {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

const SECRET_PARAMS: &[&str] = &[
    "client_secret",
    "code",
    "code_verifier",
    "refresh_token",
    "device_code",
    "password",
    "client_assertion",
];

/// Who signed in.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub upn: String,
    pub name: String,
    pub oid: String,
}

#[derive(Debug, Clone)]
pub(crate) struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub challenge: Option<String>,
    pub nonce: Option<String>,
    pub resource: Option<String>,
    pub user: User,
    /// `offline_access` was asked with `prompt=consent`.
    pub offline: bool,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub(crate) struct RefreshGrant {
    pub client_id: String,
    pub scopes: Vec<String>,
    pub resource: Option<String>,
    pub user: User,
}

#[derive(Debug, Clone)]
pub(crate) enum DeviceStatus {
    Pending,
    Approved(User),
    Denied,
}

#[derive(Debug, Clone)]
pub(crate) struct DeviceGrant {
    pub client_id: String,
    pub user_code: String,
    pub scopes: Vec<String>,
    pub resource: Option<String>,
    pub status: DeviceStatus,
    pub expires_at: OffsetDateTime,
}

pub(crate) struct Key {
    encoding: EncodingKey,
    pub kid: String,
    pub n: String,
    pub e: String,
}

impl Key {
    fn load(pem: &str) -> Result<Self, String> {
        let private = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
            .map_err(|e| format!("the embedded OIDC key is not a PKCS#8 RSA key: {e}"))?;
        let n = private.n().to_bytes_be();
        let e = private.e().to_bytes_be();
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| format!("the embedded OIDC key cannot sign: {e}"))?;
        Ok(Self {
            encoding,
            kid: URL_SAFE_NO_PAD.encode(&Sha256::digest(&n)[..12]),
            n: URL_SAFE_NO_PAD.encode(&n),
            e: URL_SAFE_NO_PAD.encode(&e),
        })
    }

    pub(crate) fn sign(&self, kid: &str, claims: &Value) -> Result<String, String> {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".into());
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| format!("cannot sign a token: {e}"))
    }

    pub(crate) fn jwk(&self) -> Value {
        json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": self.n, "e": self.e})
    }
}

pub(crate) struct Inner {
    pub enabled: bool,
    pub base_url: String,
    pub clients: Vec<OidcClient>,
    pub auto_approve: Option<String>,
    pub id_token_fault: Option<IdTokenFault>,
    pub device_interval: u64,
    pub token_lifetime: i64,
    pub codes: HashMap<String, CodeGrant>,
    pub refresh_tokens: HashMap<String, RefreshGrant>,
    pub devices: HashMap<String, DeviceGrant>,
    pub requests: Vec<OidcRequest>,
}

/// The generic provider's state. Cloning shares it.
#[derive(Clone)]
pub struct OidcState {
    inner: Arc<Mutex<Inner>>,
    pub(crate) directory: Directory,
    pub(crate) clock: Clock,
    pub(crate) key: Arc<Key>,
    pub(crate) rogue: Arc<Key>,
}

impl std::fmt::Debug for OidcState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcState")
            .field("enabled", &self.lock().enabled)
            .finish_non_exhaustive()
    }
}

impl OidcState {
    /// A provider over `directory`'s users, off until enabled.
    pub fn new(directory: Directory, clock: Clock) -> std::io::Result<Self> {
        let load = |pem| {
            Key::load(pem).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        };
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                enabled: false,
                base_url: String::new(),
                clients: vec![
                    OidcClient {
                        client_id: PORTAL_CLIENT.into(),
                        secret: None,
                    },
                    OidcClient {
                        client_id: SERVICE_CLIENT.into(),
                        secret: Some(SERVICE_SECRET.into()),
                    },
                ],
                auto_approve: None,
                id_token_fault: None,
                device_interval: 5,
                token_lifetime: 3600,
                codes: HashMap::new(),
                refresh_tokens: HashMap::new(),
                devices: HashMap::new(),
                requests: Vec::new(),
            })),
            directory,
            clock,
            key: Arc::new(load(SIGNING_KEY_PEM)?),
            rogue: Arc::new(load(ROGUE_KEY_PEM)?),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_base_url(&self, base: &str) {
        self.lock().base_url = base.trim_end_matches('/').to_owned();
    }

    /// The issuer: `{base}/oidc`.
    pub fn issuer(&self) -> String {
        format!("{}{}", self.lock().base_url, super::PREFIX)
    }

    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer())
    }

    pub fn is_enabled(&self) -> bool {
        self.lock().enabled
    }

    pub fn set_enabled(&self, enabled: bool) {
        self.lock().enabled = enabled;
    }

    pub fn set_auto_approve(&self, upn: Option<&str>) {
        self.lock().auto_approve = upn.map(str::to_owned);
    }

    pub fn set_id_token_fault(&self, fault: Option<IdTokenFault>) {
        self.lock().id_token_fault = fault;
    }

    pub fn set_device_interval(&self, secs: u64) {
        self.lock().device_interval = secs;
    }

    pub fn clients(&self) -> Vec<OidcClient> {
        self.lock().clients.clone()
    }

    /// Every request received so far, secrets redacted.
    pub fn requests(&self) -> Vec<OidcRequest> {
        self.lock().requests.clone()
    }

    /// The requests to one endpoint (`authorize`, `token`, `device_authorization`).
    pub fn requests_to(&self, endpoint: &str) -> Vec<OidcRequest> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.endpoint == endpoint)
            .cloned()
            .collect()
    }

    pub fn switches(&self) -> OidcSwitches {
        let inner = self.lock();
        OidcSwitches {
            enabled: inner.enabled,
            auto_approve: inner.auto_approve.clone(),
            id_token_fault: inner.id_token_fault,
            device_interval: inner.device_interval,
        }
    }

    pub fn change_switches(&self, change: &OidcSwitchChange) -> Result<OidcSwitches, String> {
        let fault = match change.id_token_fault.as_deref() {
            None => None,
            Some("none") => Some(None),
            Some(other) => Some(Some(IdTokenFault::parse(other).ok_or_else(|| {
                format!(
                    "unknown ID token fault `{other}`; expected none, {}",
                    IdTokenFault::ALL.map(IdTokenFault::as_str).join(", ")
                )
            })?)),
        };
        if let Some(upn) = change.auto_approve.as_deref().filter(|u| !u.is_empty())
            && self.user(upn).is_none()
        {
            return Err(format!("auto_approve `{upn}`: no such user"));
        }
        {
            let mut inner = self.lock();
            if let Some(enabled) = change.enabled {
                inner.enabled = enabled;
            }
            if let Some(upn) = &change.auto_approve {
                inner.auto_approve = (!upn.is_empty()).then(|| upn.clone());
            }
            if let Some(fault) = fault {
                inner.id_token_fault = fault;
            }
            if let Some(secs) = change.device_interval {
                inner.device_interval = secs;
            }
        }
        Ok(self.switches())
    }

    /// Approves a device code as `upn` (what the user does on `/oidc/device`).
    pub fn approve_device_code(&self, user_code: &str, upn: &str) -> Result<(), String> {
        let user = self.user(upn).ok_or_else(|| format!("no user `{upn}`"))?;
        self.set_device_status(user_code, DeviceStatus::Approved(user))
    }

    pub fn decline_device_code(&self, user_code: &str) -> Result<(), String> {
        self.set_device_status(user_code, DeviceStatus::Denied)
    }

    fn set_device_status(&self, user_code: &str, status: DeviceStatus) -> Result<(), String> {
        let mut inner = self.lock();
        let grant = inner
            .devices
            .values_mut()
            .find(|d| d.user_code.eq_ignore_ascii_case(user_code.trim()))
            .ok_or_else(|| format!("no device code with user code `{user_code}`"))?;
        grant.status = status;
        Ok(())
    }

    /// A user of the directory by UPN (any case), with the password to check if given.
    pub(crate) fn user_with_password(&self, upn: &str, password: &str) -> Option<User> {
        self.find_user(upn, Some(password))
    }

    pub(crate) fn user(&self, upn: &str) -> Option<User> {
        self.find_user(upn, None)
    }

    fn find_user(&self, upn: &str, password: Option<&str>) -> Option<User> {
        let data = self.directory.read();
        data.tenants
            .iter()
            .flat_map(|t| &t.users)
            .find(|u| u.upn.eq_ignore_ascii_case(upn.trim()))
            .filter(|u| password.is_none_or(|p| p == u.password))
            .map(|u| User {
                upn: u.upn.clone(),
                name: u.display_name.clone(),
                oid: u.object_id.clone(),
            })
    }

    pub(crate) fn record(&self, endpoint: &'static str, pairs: &[(String, String)]) {
        let mut params: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in pairs {
            let v = if SECRET_PARAMS.contains(&k.as_str()) {
                "<redacted>".to_owned()
            } else {
                v.clone()
            };
            params
                .entry(k.clone())
                .and_modify(|old| {
                    old.push(' ');
                    old.push_str(&v);
                })
                .or_insert(v);
        }
        self.lock().requests.push(OidcRequest { endpoint, params });
    }
}

pub(crate) fn random_token(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    if getrandom::fill(&mut bytes).is_err() {
        for (i, b) in uuid::Uuid::new_v4()
            .as_bytes()
            .iter()
            .cycle()
            .take(len)
            .enumerate()
        {
            bytes[i] = *b;
        }
    }
    URL_SAFE_NO_PAD.encode(&bytes)
}
