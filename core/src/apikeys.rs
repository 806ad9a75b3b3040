//! API keys for applications calling the gateway: created by an admin, shown once, stored only as
//! a SHA-256 hash, scoped to all (admin) or to some connections, revocable.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Error;
use crate::clock::Clock;
use crate::model::{ConnectionId, InvalidInput};
use crate::secret::{Secret, random_bytes};
use crate::store::Store;
use crate::ttl::{TTL, TtlCache};

/// Every key starts with this, so leaked keys are easy to find with secret scanners.
pub const PREFIX: &str = "exg_";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApiKeyId(pub Uuid);

impl std::fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.hyphenated())
    }
}

/// What a key may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyScope {
    /// Everything, including administration.
    Admin,
    /// Mailbox and sign-in routes of these connections only.
    Connections(Vec<ConnectionId>),
}

impl KeyScope {
    pub fn allows(&self, connection: ConnectionId) -> bool {
        match self {
            Self::Admin => true,
            Self::Connections(c) => c.contains(&connection),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub name: String,
    pub scope: KeyScope,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

/// The SHA-256 a key is stored and looked up by.
pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

#[derive(Debug)]
pub struct ApiKeys {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Live keys by hash; revoking through this process clears it at once.
    live: TtlCache<[u8; 32], ApiKey>,
}

impl ApiKeys {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            live: TtlCache::new(TTL),
        }
    }

    /// Creates a key; the returned secret is shown once and never stored.
    pub async fn create(&self, name: &str, scope: KeyScope) -> Result<(ApiKey, Secret), Error> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
            return Err(InvalidInput::new(
                "name",
                "an API key's name is 1 to 100 printable characters".into(),
            )
            .into());
        }
        if matches!(&scope, KeyScope::Connections(c) if c.is_empty()) {
            return Err(InvalidInput::missing(
                "connections",
                "an application key needs at least one connection".into(),
            )
            .into());
        }
        let secret = Secret::new(format!(
            "{PREFIX}{}",
            URL_SAFE_NO_PAD.encode(random_bytes::<32>())
        ));
        let key = ApiKey {
            id: ApiKeyId(Uuid::new_v4()),
            name: name.to_owned(),
            scope,
            created_at: self.clock.now(),
            last_used_at: None,
            revoked_at: None,
        };
        self.store
            .insert_api_key(&key, &hash(secret.expose()))
            .await?;
        tracing::info!(key = %key.id, name = %key.name, "API key created");
        Ok((key, secret))
    }

    /// The live key `presented` is, if any.
    pub async fn verify(&self, presented: &str) -> Result<Option<ApiKey>, Error> {
        if !presented.starts_with(PREFIX) {
            return Ok(None);
        }
        let digest = hash(presented);
        if let Some(key) = self.live.get(&digest) {
            return Ok(Some(key));
        }
        let Some(mut key) = self.store.api_key_by_hash(&digest).await? else {
            return Ok(None);
        };
        if key.revoked_at.is_some() {
            return Ok(None);
        }
        // Last use is kept to the minute: writing it on every request would put a synchronous
        // disk write on every API call.
        let now = self.clock.now();
        if key
            .last_used_at
            .is_none_or(|t| now - t >= time::Duration::minutes(1))
        {
            self.store.touch_api_key(key.id, now).await?;
            key.last_used_at = Some(now);
        }
        self.live.put(digest, key.clone());
        Ok(Some(key))
    }

    /// Drops the cached keys (another process created, changed or revoked one).
    pub fn forget_cached(&self) {
        self.live.clear();
    }

    pub async fn list(&self) -> Result<Vec<ApiKey>, Error> {
        Ok(self.store.api_keys().await?)
    }

    /// Revokes a key; it stops working at once in this process, and within seconds in others.
    pub async fn revoke(&self, id: ApiKeyId) -> Result<ApiKey, Error> {
        self.live.clear();
        if !self.store.revoke_api_key(id, self.clock.now()).await? {
            return Err(Error::NotFound {
                what: "API key",
                name: id.to_string(),
            });
        }
        self.store
            .api_keys()
            .await?
            .into_iter()
            .find(|k| k.id == id)
            .ok_or_else(|| Error::NotFound {
                what: "API key",
                name: id.to_string(),
            })
    }
}
