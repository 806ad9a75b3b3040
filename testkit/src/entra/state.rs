//! The mock Entra ID's mutable state: issued codes and tokens, switches; with the directory
//! ([`crate::directory`]) and the mocks' clock it reads.

use std::collections::{HashMap, HashSet};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use time::OffsetDateTime;

use super::Fault;
use super::jwt::SigningKey;
use super::scopes::FIRST_PARTY;
use crate::clock::Clock;
use crate::directory::cert::AppCert;
use crate::directory::{AppSeed, Directory, DirectoryData, Seed, TenantSeed, UserSeed};

/// Authorization codes live 10 minutes.
pub(crate) const CODE_LIFETIME: Duration = Duration::from_secs(600);
/// Device codes live 15 minutes (`expires_in` 900).
pub(crate) const DEVICE_CODE_LIFETIME: u64 = 900;
/// Refresh tokens expire after 90 days without use.
pub(crate) const REFRESH_INACTIVITY: Duration = Duration::from_secs(90 * 24 * 3600);

/// The shared state of one mock Entra ID. Cloning shares it; [`super::entra_router`] serves it.
#[derive(Clone)]
pub struct EntraState {
    inner: Arc<Mutex<EntraData>>,
    directory: Directory,
    clock: Clock,
    pub(crate) key: Arc<SigningKey>,
    pub(crate) faults: crate::faults::Faults,
}

impl std::fmt::Debug for EntraState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraState")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

impl EntraState {
    /// A mock Entra ID over a directory of its own made from `seed` and a clock of its own,
    /// answering as `base_url` (no trailing slash).
    pub fn new(seed: Seed, base_url: impl Into<String>) -> std::io::Result<Self> {
        let directory = Directory::new(seed)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        Self::over(directory, Clock::default(), base_url)
    }

    /// A mock Entra ID over a shared directory and clock (what [`crate::MockMicrosoft`] does,
    /// so that Graph sees the same directory and time).
    pub fn over(
        directory: Directory,
        clock: Clock,
        base_url: impl Into<String>,
    ) -> std::io::Result<Self> {
        let key = SigningKey::load().map_err(std::io::Error::other)?;
        let inner = EntraData {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            token_lifetime: 3600,
            refresh_in: None,
            strict_rotation: false,
            codes: HashMap::new(),
            refresh_tokens: HashMap::new(),
            device_codes: HashMap::new(),
            fault: None,
            latency: Duration::ZERO,
            auto_approve: None,
            device_interval: 5,
            token_requests: 0,
            refresh_grants: 0,
            mfa_users: HashSet::new(),
            consent_revoked: HashSet::new(),
            secrets_expired: HashSet::new(),
            clock_skew: 0,
        };
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
            directory,
            clock,
            key: Arc::new(key),
            faults: crate::faults::Faults::default(),
        })
    }

    pub fn base_url(&self) -> String {
        self.lock().base_url.clone()
    }

    /// The directory this mock reads.
    pub fn directory(&self) -> Directory {
        self.directory.clone()
    }

    /// The clock this mock follows.
    pub fn clock(&self) -> Clock {
        self.clock.clone()
    }

    /// The public half of the token signing key: what a resource (the Graph mock) verifies
    /// access tokens with.
    pub fn token_verification_key(&self) -> std::io::Result<jsonwebtoken::DecodingKey> {
        self.key.decoding_key().map_err(std::io::Error::other)
    }

    /// Serves Entra with this fault plan (rules with `"service": "entra"`) instead of its own.
    pub fn with_faults(mut self, faults: crate::faults::Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Sets the URL the mock answers as (issuer, endpoints, `verification_uri`).
    pub fn set_base_url(&self, base_url: &str) {
        self.lock().base_url = base_url.trim_end_matches('/').to_string();
    }

    /// Entra's state, locked, with a snapshot of the directory and the clock.
    pub(crate) fn lock(&self) -> Inner<'_> {
        Inner {
            data: self.inner.lock().unwrap_or_else(PoisonError::into_inner),
            dir: self.directory.read(),
            clock: &self.clock,
        }
    }
}

pub(crate) struct AuthCode {
    pub tenant_id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub user_oid: String,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub issued_at: OffsetDateTime,
    pub redeemed: bool,
}

pub(crate) struct RefreshGrant {
    pub tenant_id: String,
    pub client_id: String,
    pub user_oid: String,
    pub scope: String,
    pub issued_at: OffsetDateTime,
    /// Replaced by a newer refresh token (strict rotation).
    pub rotated: bool,
    pub revoked: bool,
    /// Expired by the inactivity switch.
    pub inactive: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeviceStatus {
    Pending,
    Approved { user_oid: String },
    Declined,
}

pub(crate) struct DeviceGrant {
    pub tenant_id: String,
    pub client_id: String,
    pub scope: String,
    pub user_code: String,
    pub expires_at: OffsetDateTime,
    pub interval: u64,
    pub status: DeviceStatus,
    pub last_poll: Option<OffsetDateTime>,
}

pub(crate) struct EntraData {
    pub base_url: String,
    pub token_lifetime: u64,
    pub refresh_in: Option<u64>,
    /// A refresh spends the refresh token it used (Entra keeps it valid).
    pub strict_rotation: bool,
    pub codes: HashMap<String, AuthCode>,
    pub refresh_tokens: HashMap<String, RefreshGrant>,
    /// By device code.
    pub device_codes: HashMap<String, DeviceGrant>,
    pub fault: Option<(Fault, usize)>,
    pub latency: Duration,
    pub auto_approve: Option<String>,
    pub device_interval: u64,
    pub token_requests: usize,
    /// Refresh token grants answered with tokens (`grant_type=refresh_token`).
    pub refresh_grants: usize,
    /// Lower-case UPNs that must use MFA (switch).
    pub mfa_users: HashSet<String>,
    /// Lower-case client IDs whose consent (delegated and application) was revoked.
    pub consent_revoked: HashSet<String>,
    /// Lower-case client IDs whose secrets were all expired by the switch.
    pub secrets_expired: HashSet<String>,
    /// Seconds Entra's clock is off (switch): shifts the `Date` of its answers and the times in
    /// the tokens it issues, as a server with a wrong clock (or a client far from it) sees.
    pub clock_skew: i64,
}

/// Entra's state under its lock, with the directory as it was when the lock was taken and the
/// clock: what every handler works on.
pub(crate) struct Inner<'a> {
    data: MutexGuard<'a, EntraData>,
    pub dir: Arc<DirectoryData>,
    clock: &'a Clock,
}

impl Deref for Inner<'_> {
    type Target = EntraData;

    fn deref(&self) -> &EntraData {
        &self.data
    }
}

impl DerefMut for Inner<'_> {
    fn deref_mut(&mut self) -> &mut EntraData {
        &mut self.data
    }
}

/// Which tenant a URL names.
pub(crate) enum TenantLookup {
    Found(usize),
    NotFound,
}

impl Inner<'_> {
    /// The mock's clock: the real time plus whatever tests advanced it by.
    pub(crate) fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// The time written into tokens: the clock, off by the `clock_skew` switch.
    pub(crate) fn token_now(&self) -> OffsetDateTime {
        self.clock.now() + time::Duration::seconds(self.data.clock_skew)
    }

    /// Resolves the `{tenant}` path segment: a tenant ID, a domain, or `organizations`/`common`
    /// (which mean the tenant of `client_id`, or the first tenant).
    pub(crate) fn find_tenant(&self, segment: &str, client_id: Option<&str>) -> TenantLookup {
        let tenants = &self.dir.tenants;
        if let Some(i) = tenants.iter().position(|t| {
            t.id.eq_ignore_ascii_case(segment) || t.domain.eq_ignore_ascii_case(segment)
        }) {
            return TenantLookup::Found(i);
        }
        if is_alias(segment) {
            let by_client = client_id.and_then(|id| {
                tenants
                    .iter()
                    .position(|t| t.apps.iter().any(|a| a.client_id.eq_ignore_ascii_case(id)))
            });
            if let Some(i) = by_client {
                return TenantLookup::Found(i);
            }
            if !tenants.is_empty() {
                return TenantLookup::Found(0);
            }
        }
        TenantLookup::NotFound
    }

    pub(crate) fn tenant(&self, t: usize) -> Option<&TenantSeed> {
        self.dir.tenant(t)
    }

    pub(crate) fn tenant_index_by_id(&self, tenant_id: &str) -> Option<usize> {
        self.dir.tenant_index_by_id(tenant_id)
    }

    pub(crate) fn app(&self, t: usize, client_id: &str) -> Option<&AppSeed> {
        self.dir.app(t, client_id)
    }

    pub(crate) fn user(&self, t: usize, upn: &str) -> Option<&UserSeed> {
        self.dir.user(t, upn)
    }

    pub(crate) fn user_by_oid(&self, t: usize, oid: &str) -> Option<&UserSeed> {
        self.dir.user_by_oid(t, oid)
    }

    /// First-party resources plus every resource the seed grants permissions on.
    pub(crate) fn known_resources(&self) -> Vec<String> {
        let mut known: Vec<String> = FIRST_PARTY.iter().map(|(r, _)| (*r).to_string()).collect();
        for app in self.dir.tenants.iter().flat_map(|t| &t.apps) {
            for resource in app
                .delegated_permissions
                .keys()
                .chain(app.application_permissions.keys())
            {
                if !known.iter().any(|k| k.eq_ignore_ascii_case(resource)) {
                    known.push(resource.clone());
                }
            }
        }
        known
    }

    pub(crate) fn certs(&self, client_id: &str) -> &[AppCert] {
        self.dir.certs(client_id)
    }
}

impl EntraData {
    pub(crate) fn issuer(&self, tenant_id: &str) -> String {
        format!("{}/{tenant_id}/v2.0", self.base_url)
    }

    pub(crate) fn mfa_required(&self, user: &UserSeed) -> bool {
        user.mfa_required || self.mfa_users.contains(&user.upn.to_ascii_lowercase())
    }

    pub(crate) fn consent_revoked(&self, client_id: &str) -> bool {
        self.consent_revoked
            .contains(&client_id.to_ascii_lowercase())
    }
}

pub(crate) fn is_alias(segment: &str) -> bool {
    segment.eq_ignore_ascii_case("organizations") || segment.eq_ignore_ascii_case("common")
}

pub(crate) use crate::directory::service_principal_id;

/// A random opaque string of `len` bytes, base64url.
pub(crate) fn random_token(len: usize) -> String {
    super::jwt::b64url(&random_bytes(len))
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: fall back to UUIDs (uniqueness is all the mock needs).
        let mut fallback = Vec::with_capacity(len + 16);
        while fallback.len() < len {
            fallback.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        }
        fallback.truncate(len);
        bytes = fallback;
    }
    bytes
}

/// A user code like Entra's: 9 characters, A–Z and 0–9.
pub(crate) fn user_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    random_bytes(9)
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}
