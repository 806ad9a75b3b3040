//! Browser sign-ins in flight, keyed by their `state`: each is used once and expires after ten
//! minutes, so a replayed or forged redirect finds nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use oauth2::PkceCodeVerifier;
use time::OffsetDateTime;

use super::AuthError;
use crate::clock::Clock;
use crate::model::{ConnectionId, Principal, Resource};

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
    pub started_at: OffsetDateTime,
}

#[derive(Debug)]
pub struct PendingLogins {
    entries: Mutex<HashMap<String, PendingLogin>>,
    clock: Arc<dyn Clock>,
}

impl PendingLogins {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            clock,
        }
    }

    pub fn insert(&self, state: String, login: PendingLogin) {
        let now = self.clock.now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|_, l| now - l.started_at < LIFETIME);
        entries.insert(state, login);
    }

    /// Takes the sign-in started with `state`. A second call with the same state finds nothing.
    pub fn take(&self, state: &str) -> Result<PendingLogin, AuthError> {
        let login = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(state)
            .ok_or_else(|| {
                AuthError::Flow(
                    "this sign-in response matches no sign-in in progress (unknown or already used state); start the sign-in again"
                        .into(),
                )
            })?;
        if self.clock.now() - login.started_at >= LIFETIME {
            return Err(AuthError::Flow(
                "this sign-in was started more than 10 minutes ago and has expired; start it again"
                    .into(),
            ));
        }
        Ok(login)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::clock::MockClock;

    fn login(at: OffsetDateTime) -> PendingLogin {
        PendingLogin {
            connection: ConnectionId::new_random(),
            principal: None,
            resource: Resource::Graph,
            scopes: vec![],
            redirect_uri: "http://localhost".into(),
            session_only: false,
            verifier: PkceCodeVerifier::new("v".repeat(43)),
            started_at: at,
        }
    }

    #[test]
    fn state_is_single_use_and_expires() {
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
        let pending = PendingLogins::new(Arc::new(clock));
        pending.insert("s1".into(), login(start));
        assert!(pending.take("s1").is_ok());
        let err = pending.take("s1").unwrap_err().to_string();
        assert!(err.contains("already used state"), "{err}");

        pending.insert("s2".into(), login(start));
        let err = pending.take("s2").unwrap_err().to_string();
        assert!(err.contains("expired"), "{err}");
    }
}
