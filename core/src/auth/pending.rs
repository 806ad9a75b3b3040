//! Browser sign-ins in flight, keyed by their `state`: each is used once and expires after ten
//! minutes, so a replayed or forged redirect finds nothing.
//!
//! They are bounded ([`PendingCaps`]): a few per connection and principal, more per connection,
//! and a total; starting one more evicts the oldest of the group that is full, so a caller that
//! starts sign-ins in a loop cannot grow the gateway's memory (each one is about a kilobyte).

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
    /// The `nonce` the authorization request sent; the ID token must carry it back.
    pub nonce: String,
    pub started_at: OffsetDateTime,
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

#[derive(Debug, Default)]
struct Entries {
    /// By state: the login and its start order (older first).
    by_state: HashMap<String, (u64, PendingLogin)>,
    next: u64,
}

impl Entries {
    /// Removes the oldest entries that `matches` until at most `keep` of them are left.
    fn evict_oldest(&mut self, keep: usize, matches: impl Fn(&PendingLogin) -> bool) {
        let mut group: Vec<(u64, String)> = self
            .by_state
            .iter()
            .filter(|(_, (_, l))| matches(l))
            .map(|(k, (n, _))| (*n, k.clone()))
            .collect();
        if group.len() <= keep {
            return;
        }
        group.sort_unstable();
        let excess = group.len() - keep;
        for (_, state) in group.into_iter().take(excess) {
            self.by_state.remove(&state);
        }
    }
}

#[derive(Debug)]
pub struct PendingLogins {
    entries: Mutex<Entries>,
    caps: PendingCaps,
    clock: Arc<dyn Clock>,
}

impl PendingLogins {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_caps(clock, PendingCaps::default())
    }

    pub fn with_caps(clock: Arc<dyn Clock>, caps: PendingCaps) -> Self {
        Self {
            entries: Mutex::new(Entries::default()),
            caps,
            clock,
        }
    }

    /// Remembers a started sign-in, evicting expired ones and, where a cap is reached, the
    /// oldest of its principal, its connection, or all.
    pub fn insert(&self, state: String, login: PendingLogin) {
        let now = self.clock.now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .by_state
            .retain(|_, (_, l)| now - l.started_at < LIFETIME);
        let caps = self.caps;
        entries.evict_oldest(caps.per_principal.saturating_sub(1), |l| {
            l.connection == login.connection && l.principal == login.principal
        });
        entries.evict_oldest(caps.per_connection.saturating_sub(1), |l| {
            l.connection == login.connection
        });
        entries.evict_oldest(caps.total.saturating_sub(1), |_| true);
        let n = entries.next;
        entries.next += 1;
        entries.by_state.insert(state, (n, login));
    }

    /// How many sign-ins are remembered.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_state
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the sign-in started with `state`. A second call with the same state finds nothing.
    pub fn take(&self, state: &str) -> Result<PendingLogin, AuthError> {
        let login = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_state
            .remove(state)
            .map(|(_, l)| l)
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
            nonce: "n".into(),
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

    #[test]
    fn sign_ins_in_flight_are_capped_per_principal_connection_and_in_all_oldest_first() {
        let pending = PendingLogins::with_caps(
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
            pending.insert(format!("u42-{i}"), for_principal(a, "u42"));
        }
        assert_eq!(pending.len(), 3, "three per principal");
        assert!(pending.take("u42-0").is_err(), "the oldest went first");
        assert!(pending.take("u42-1").is_err());
        assert!(pending.take("u42-4").is_ok());

        for i in 0..20 {
            pending.insert(format!("a-{i}"), for_principal(a, &format!("user{i}")));
        }
        assert!(pending.take("a-9").is_err());
        assert!(
            pending.take("a-10").is_ok(),
            "the newest ten of connection a stay"
        );
        assert_eq!(pending.len(), 9);

        for i in 0..10 {
            pending.insert(format!("b-{i}"), for_principal(b, &format!("user{i}")));
            pending.insert(format!("c-{i}"), for_principal(c, &format!("user{i}")));
        }
        assert_eq!(pending.len(), 25, "the total cap");
        assert!(pending.take("c-9").is_ok());
        assert!(pending.take("a-11").is_err(), "the oldest overall went");
    }
}
