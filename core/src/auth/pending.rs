//! Browser sign-ins in flight, keyed by their `state`: each is used once and expires after ten
//! minutes, so a replayed or forged redirect finds nothing.
//!
//! They live in the [`Store`], so that the callback on any gateway sharing it finishes a
//! sign-in another one started; what the callback needs (the PKCE verifier, the nonce, …) is one
//! document the database backends seal, bound to its row, and the `state` itself is kept only
//! as its SHA-256. A session-only sign-in, of which nothing may reach the store, is kept in this
//! process's memory instead (its callback must come back to it).
//!
//! They are bounded ([`PendingCaps`]): a few per connection and principal, more per connection,
//! and a total; starting one more evicts the oldest of the group that is full, so a caller that
//! starts sign-ins in a loop cannot grow the store (each one is about a kilobyte).

use std::sync::Arc;

use oauth2::PkceCodeVerifier;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::AuthError;
use crate::Error;
use crate::clock::Clock;
use crate::model::{ConnectionId, Principal, Resource};
use crate::secret::Secret;
use crate::store::{MemoryStore, PendingLoginRow, Store};

/// How long a started sign-in may take.
pub const LIFETIME: time::Duration = time::Duration::minutes(10);

/// What is remembered between sending the browser away and its return.
#[derive(Debug)]
pub struct PendingLogin {
    pub connection: ConnectionId,
    /// The principal to link the mailbox to; `None` means the signed-in user's name.
    pub principal: Option<Principal>,
    pub resource: Resource,
    pub scopes: Vec<String>,
    pub redirect_uri: String,
    /// Keep the account's tokens in memory only (never written to the store).
    pub session_only: bool,
    pub verifier: PkceCodeVerifier,
    /// The `nonce` the authorization request sent; the ID token must carry it back.
    pub nonce: String,
    pub started_at: OffsetDateTime,
    /// What the frontend that started the sign-in wants back at its callback (the gateway: the
    /// login ID and where to send the browser), kept sealed with the rest.
    pub app_data: Option<String>,
}

/// How many sign-ins may be in flight at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingCaps {
    /// For one principal of one connection (a user who opened the link in a few tabs).
    pub per_principal: usize,
    pub per_connection: usize,
    pub total: usize,
}

impl Default for PendingCaps {
    fn default() -> Self {
        Self {
            per_principal: 5,
            per_connection: 1_000,
            total: 10_000,
        }
    }
}

/// The part of a [`PendingLogin`] kept as one sealed document.
#[derive(Serialize, Deserialize)]
struct Payload {
    resource: Resource,
    scopes: Vec<String>,
    redirect_uri: String,
    session_only: bool,
    verifier: String,
    nonce: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    app_data: Option<String>,
}

#[derive(Debug)]
pub struct PendingLogins {
    store: Arc<dyn Store>,
    /// Session-only sign-ins: nothing of them reaches the store, so their callback must come
    /// back to this process.
    local: MemoryStore,
    caps: PendingCaps,
    clock: Arc<dyn Clock>,
}

impl PendingLogins {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self::with_caps(store, clock, PendingCaps::default())
    }

    pub fn with_caps(store: Arc<dyn Store>, clock: Arc<dyn Clock>, caps: PendingCaps) -> Self {
        Self {
            store,
            local: MemoryStore::new(),
            caps,
            clock,
        }
    }

    /// Remembers a started sign-in, evicting expired ones and, where a cap is reached, the
    /// oldest of its principal, its connection, or all.
    pub async fn insert(&self, state: String, login: PendingLogin) -> Result<(), Error> {
        let session_only = login.session_only;
        let payload = Payload {
            resource: login.resource,
            scopes: login.scopes,
            redirect_uri: login.redirect_uri,
            session_only: login.session_only,
            verifier: login.verifier.secret().to_owned(),
            nonce: login.nonce,
            app_data: login.app_data,
        };
        let payload = serde_json::to_string(&payload)
            .map_err(|e| AuthError::Flow(format!("a sign-in cannot be remembered: {e}")))?;
        let row = PendingLoginRow {
            state,
            connection: login.connection,
            principal: login.principal,
            started_at: login.started_at,
            payload: Secret::new(payload),
        };
        let store: &dyn Store = if session_only {
            &self.local
        } else {
            &*self.store
        };
        store
            .put_pending_login(&row, self.caps, self.clock.now() - LIFETIME)
            .await?;
        Ok(())
    }

    /// How many sign-ins are remembered.
    pub async fn count(&self) -> Result<u64, Error> {
        Ok(self.store.pending_logins().await? + self.local.pending_logins().await?)
    }

    /// Takes the sign-in started with `state`. A second call with the same state (on any
    /// gateway sharing the store) finds nothing.
    pub async fn take(&self, state: &str) -> Result<PendingLogin, Error> {
        let row = match self.local.take_pending_login(state).await? {
            Some(row) => Some(row),
            None => self.store.take_pending_login(state).await?,
        };
        let row = row.ok_or_else(|| {
            AuthError::Flow(
                "this sign-in response matches no sign-in in progress (unknown or already used state); start the sign-in again"
                    .into(),
            )
        })?;
        if self.clock.now() - row.started_at >= LIFETIME {
            return Err(AuthError::Flow(
                "this sign-in was started more than 10 minutes ago and has expired; start it again"
                    .into(),
            )
            .into());
        }
        let payload: Payload = serde_json::from_str(row.payload.expose()).map_err(|_| {
            crate::store::StoreError::Corrupt("a pending sign-in's document".into())
        })?;
        Ok(PendingLogin {
            connection: row.connection,
            principal: row.principal,
            resource: payload.resource,
            scopes: payload.scopes,
            redirect_uri: payload.redirect_uri,
            session_only: payload.session_only,
            verifier: PkceCodeVerifier::new(payload.verifier),
            nonce: payload.nonce,
            started_at: row.started_at,
            app_data: payload.app_data,
        })
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::clock::MockClock;

    fn store() -> Arc<dyn Store> {
        Arc::new(MemoryStore::new())
    }

    fn login(at: OffsetDateTime) -> PendingLogin {
        PendingLogin {
            connection: ConnectionId::new_random(),
            principal: None,
            resource: Resource::Graph,
            scopes: vec![],
            redirect_uri: "http://localhost".into(),
            session_only: false,
            verifier: PkceCodeVerifier::new("v".repeat(43)),
            nonce: "n".into(),
            started_at: at,
            app_data: None,
        }
    }

    #[tokio::test]
    async fn state_is_single_use_and_expires() {
        let start = datetime!(2026-01-01 10:00 UTC);
        let mut clock = MockClock::new();
        let mut seq = mockall::Sequence::new();
        for at in [
            start,
            start + time::Duration::minutes(1),
            start + time::Duration::minutes(1),
            start + time::Duration::minutes(11),
        ] {
            clock
                .expect_now()
                .times(1)
                .in_sequence(&mut seq)
                .return_const(at);
        }
        let pending = PendingLogins::new(store(), Arc::new(clock));
        pending.insert("s1".into(), login(start)).await.unwrap();
        assert!(pending.take("s1").await.is_ok());
        let err = pending.take("s1").await.unwrap_err().to_string();
        assert!(err.contains("already used state"), "{err}");

        pending.insert("s2".into(), login(start)).await.unwrap();
        let err = pending.take("s2").await.unwrap_err().to_string();
        assert!(err.contains("expired"), "{err}");
    }

    #[derive(Debug)]
    struct Fixed(OffsetDateTime);

    impl Clock for Fixed {
        fn now(&self) -> OffsetDateTime {
            self.0
        }
    }

    fn for_principal(connection: ConnectionId, principal: &str) -> PendingLogin {
        PendingLogin {
            connection,
            principal: Some(principal.parse().unwrap()),
            ..login(datetime!(2026-01-01 10:00 UTC))
        }
    }

    #[tokio::test]
    async fn sign_ins_in_flight_are_capped_per_principal_connection_and_in_all_oldest_first() {
        let pending = PendingLogins::with_caps(
            store(),
            Arc::new(Fixed(datetime!(2026-01-01 10:01 UTC))),
            PendingCaps {
                per_principal: 3,
                per_connection: 10,
                total: 25,
            },
        );
        let (a, b, c) = (
            ConnectionId::new_random(),
            ConnectionId::new_random(),
            ConnectionId::new_random(),
        );
        for i in 0..5 {
            pending
                .insert(format!("u42-{i}"), for_principal(a, "u42"))
                .await
                .unwrap();
        }
        assert_eq!(pending.count().await.unwrap(), 3, "three per principal");
        assert!(
            pending.take("u42-0").await.is_err(),
            "the oldest went first"
        );
        assert!(pending.take("u42-1").await.is_err());
        assert!(pending.take("u42-4").await.is_ok());

        for i in 0..20 {
            pending
                .insert(format!("a-{i}"), for_principal(a, &format!("user{i}")))
                .await
                .unwrap();
        }
        assert!(pending.take("a-9").await.is_err());
        assert!(
            pending.take("a-10").await.is_ok(),
            "the newest ten of connection a stay"
        );
        assert_eq!(pending.count().await.unwrap(), 9);

        for i in 0..10 {
            pending
                .insert(format!("b-{i}"), for_principal(b, &format!("user{i}")))
                .await
                .unwrap();
            pending
                .insert(format!("c-{i}"), for_principal(c, &format!("user{i}")))
                .await
                .unwrap();
        }
        assert_eq!(pending.count().await.unwrap(), 25, "the total cap");
        assert!(pending.take("c-9").await.is_ok());
        assert!(
            pending.take("a-11").await.is_err(),
            "the oldest overall went"
        );
    }
}
