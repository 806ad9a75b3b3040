//! Following the changes other gateways make: on a store shared by several processes
//! (PostgreSQL), each gateway listens to the store's change feed
//! ([`Store::change_feed`](crate::store::Store::change_feed)) and drops the caches a change
//! makes stale — connections, static users, API keys, accounts and their access tokens — so a
//! key revoked through one gateway is refused by every other within the time a notification
//! takes (milliseconds), not the caches' TTL.
//!
//! Notifications sent while the listener was disconnected are lost, so every (re)connection
//! drops everything, and so does the loss itself. Readiness reports a follower that is not
//! listening.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::apikeys::ApiKeys;
use crate::auth::SignIn;
use crate::connections::Connections;
use crate::store::changes::{Change, ChangeFeed, FeedEvent};

/// The caches a change can make stale.
#[derive(Debug, Clone)]
pub struct Caches {
    pub connections: Arc<Connections>,
    pub keys: Arc<ApiKeys>,
    pub signin: Arc<SignIn>,
}

impl Caches {
    /// Drops what `change` makes stale.
    pub fn apply(&self, change: Change) {
        match change {
            Change::Connections => self.connections.forget_cached(),
            Change::StaticUsers => self.connections.forget_cached_static_users(),
            Change::ApiKeys => self.keys.forget_cached(),
            Change::Accounts(account) => self.signin.forget_cached_accounts(account),
            Change::Everything => {
                self.connections.forget_cached();
                self.keys.forget_cached();
                self.signin.forget_cached_accounts(None);
            }
        }
    }
}

/// What the follower has seen, for readiness and tests.
#[derive(Debug, Default)]
pub struct FollowStatus {
    listening: AtomicBool,
    /// Times the feed began listening (the first time and each reconnection).
    listens: AtomicU64,
    /// Changes applied.
    changes: AtomicU64,
}

impl FollowStatus {
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::SeqCst)
    }

    pub fn listens(&self) -> u64 {
        self.listens.load(Ordering::SeqCst)
    }

    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }
}

/// The task that follows a feed; stopped when dropped.
#[derive(Debug)]
pub struct ChangeFollower {
    status: Arc<FollowStatus>,
    task: JoinHandle<()>,
}

impl Drop for ChangeFollower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits after a failed reconnection: 0.5 s, doubling to 30 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << failures.min(6))).min(Duration::from_secs(30))
}

impl ChangeFollower {
    /// Starts following `feed`. Returns once the first connection has been tried, so a
    /// gateway that reports itself ready is already listening; if it failed, the follower
    /// keeps trying (and readiness says so).
    pub async fn start(mut feed: Box<dyn ChangeFeed>, caches: Caches) -> Self {
        let status = Arc::new(FollowStatus::default());
        let mut failures = 0u32;
        handle(feed.next().await, &caches, &status, &mut failures);
        let task = tokio::spawn({
            let status = Arc::clone(&status);
            async move {
                loop {
                    if failures > 0 {
                        tokio::time::sleep(backoff(failures - 1)).await;
                    }
                    handle(feed.next().await, &caches, &status, &mut failures);
                }
            }
        });
        Self { status, task }
    }

    pub fn status(&self) -> &FollowStatus {
        &self.status
    }

    pub fn is_listening(&self) -> bool {
        self.status.is_listening()
    }
}

fn handle(
    event: Result<FeedEvent, crate::store::StoreError>,
    caches: &Caches,
    status: &FollowStatus,
    failures: &mut u32,
) {
    match event {
        Ok(FeedEvent::Change(change)) => {
            caches.apply(change);
            status.changes.fetch_add(1, Ordering::SeqCst);
        }
        Ok(FeedEvent::Listening) => {
            // Whatever changed while nobody listened is unknown: drop everything.
            caches.apply(Change::Everything);
            *failures = 0;
            status.listening.store(true, Ordering::SeqCst);
            status.listens.fetch_add(1, Ordering::SeqCst);
            tracing::info!("listening for changes made by other gateways");
        }
        Ok(FeedEvent::Lost) => {
            status.listening.store(false, Ordering::SeqCst);
            caches.apply(Change::Everything);
            tracing::warn!("the change listener lost its connection; reconnecting");
        }
        Err(e) => {
            status.listening.store(false, Ordering::SeqCst);
            *failures = failures.saturating_add(1);
            tracing::warn!(error = %e, "the change listener cannot connect; retrying");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use async_trait::async_trait;
    use tokio::sync::mpsc;

    use super::*;
    use crate::apikeys::KeyScope;
    use crate::clock::SystemClock;
    use crate::config::{Env, load};
    use crate::secret::Vault;
    use crate::services::Services;
    use crate::store::{MemoryStore, Store, StoreError};

    /// A feed the test drives: each event sent is what `next` answers.
    struct Scripted(mpsc::UnboundedReceiver<FeedEvent>);

    #[async_trait]
    impl ChangeFeed for Scripted {
        async fn next(&mut self) -> Result<FeedEvent, StoreError> {
            match self.0.recv().await {
                Some(event) => Ok(event),
                None => std::future::pending().await,
            }
        }
    }

    async fn until(what: &str, check: impl Fn() -> bool) {
        let start = Instant::now();
        while !check() {
            assert!(start.elapsed() < Duration::from_secs(5), "{what}");
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_change_drops_its_kind_and_a_reconnection_drops_everything() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().display().to_string();
        let mut settings = load(
            None,
            &Env::from_pairs([
                ("HOME", home.clone()),
                ("XDG_CONFIG_HOME", format!("{home}/config")),
                ("XDG_DATA_HOME", format!("{home}/data")),
                ("EXGATE_SYSTEM_CONFIG", format!("{home}/system.toml")),
            ]),
        )
        .unwrap();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let vault = Arc::new(Vault::open_or_create(&dir.path().join("master.key")).unwrap());
        let services = Services::over(
            Arc::clone(&store),
            vault,
            &mut settings,
            Arc::new(SystemClock),
        )
        .unwrap();
        let (key, secret) = services.keys.create("k", KeyScope::Admin).await.unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send(FeedEvent::Listening).unwrap();
        let follower = ChangeFollower::start(
            Box::new(Scripted(rx)),
            Caches {
                connections: Arc::clone(&services.connections),
                keys: Arc::clone(&services.keys),
                signin: Arc::clone(&services.signin),
            },
        )
        .await;
        assert!(follower.is_listening());
        assert_eq!(follower.status().listens(), 1);

        // The key is cached here, then revoked by "another process" (the store directly).
        assert!(
            services
                .keys
                .verify(secret.expose())
                .await
                .unwrap()
                .is_some()
        );
        store
            .revoke_api_key(key.id, time::OffsetDateTime::now_utc())
            .await
            .unwrap();
        assert!(
            services
                .keys
                .verify(secret.expose())
                .await
                .unwrap()
                .is_some(),
            "still cached: nobody said"
        );
        // A change of another kind leaves the keys' cache alone.
        tx.send(FeedEvent::Change(Change::Connections)).unwrap();
        until("the change is applied", || follower.status().changes() == 1).await;
        assert!(
            services
                .keys
                .verify(secret.expose())
                .await
                .unwrap()
                .is_some()
        );

        // The connection drops: not listening, and the revocation (whose notification was
        // lost) is seen once it listens again.
        tx.send(FeedEvent::Lost).unwrap();
        until("the loss is seen", || !follower.is_listening()).await;
        tx.send(FeedEvent::Listening).unwrap();
        until("listening again", || follower.status().listens() == 2).await;
        assert!(follower.is_listening());
        assert!(
            services
                .keys
                .verify(secret.expose())
                .await
                .unwrap()
                .is_none()
        );
    }
}
