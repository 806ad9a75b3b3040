//! The composition root: every core service, wired once from the settings. The CLI, the
//! gateway and the gateway's `admin` commands all open this, so no wiring is written twice.

use std::sync::Arc;

use crate::Error;
use crate::apikeys::ApiKeys;
use crate::auth::SignIn;
use crate::changes::{Caches, ChangeFollower};
use crate::clock::Clock;
use crate::config::Settings;
use crate::connections::Connections;
use crate::mailboxes::Mailboxes;
use crate::secret::Vault;
use crate::store::Store;

/// What the frontends call.
#[derive(Debug, Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    pub vault: Arc<Vault>,
    pub connections: Arc<Connections>,
    pub signin: Arc<SignIn>,
    pub mailboxes: Arc<Mailboxes>,
    pub keys: Arc<ApiKeys>,
    /// Who may sign in to the local bridge.
    pub bridge_users: Arc<crate::bridge::BridgeUsers>,
    /// The clock every service was built with (the gateway's failure limiter reads it too).
    pub clock: Arc<dyn Clock>,
    /// On a store several gateways share: the follower of its change feed
    /// ([`Services::follow_changes`]), which drops this process's caches when another changes
    /// what they hold.
    pub changes: Option<Arc<ChangeFollower>>,
}

impl Services {
    /// Opens the vault and the store that `settings` name (SQLite or PostgreSQL) and builds every service over them.
    /// The connections `settings` declares are taken out of it.
    pub async fn open(settings: &mut Settings, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        let vault = Arc::new(Vault::open_or_create(&settings.master_key_file)?);
        let store = settings.store.open(Arc::clone(&vault), false).await?;
        let mut services = Self::over(store, vault, settings, clock)?;
        services.follow_changes().await?;
        Ok(services)
    }

    /// Follows the store's change feed if it has one (PostgreSQL); see [`crate::changes`].
    /// [`Services::open`] does; callers that built the services with [`Services::over`] call
    /// it themselves.
    pub async fn follow_changes(&mut self) -> Result<(), Error> {
        if self.changes.is_some() {
            return Ok(());
        }
        if let Some(feed) = self.store.change_feed().await? {
            let caches = Caches {
                connections: Arc::clone(&self.connections),
                keys: Arc::clone(&self.keys),
                signin: Arc::clone(&self.signin),
            };
            self.changes = Some(Arc::new(ChangeFollower::start(feed, caches).await));
        }
        Ok(())
    }

    /// [`Services::open`] for one command of a short-lived process (the CLI): its store calls
    /// come one after the other, so the store keeps one connection.
    pub async fn open_for_command(
        settings: &mut Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Error> {
        let vault = Arc::new(Vault::open_or_create(&settings.master_key_file)?);
        let store = settings.store.open(Arc::clone(&vault), true).await?;
        Self::over(store, vault, settings, clock)
    }

    /// Builds every service over an open store (tests, and callers that opened it already).
    pub fn over(
        store: Arc<dyn Store>,
        vault: Arc<Vault>,
        settings: &mut Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Error> {
        let declared = std::mem::take(&mut settings.connections);
        let connections = Arc::new(Connections::new(
            Arc::clone(&store),
            declared,
            Arc::clone(&clock),
        ));
        let signin = Arc::new(SignIn::new(
            Arc::clone(&store),
            Arc::clone(&connections),
            settings.network.clone(),
            Arc::clone(&clock),
        )?);
        let mailboxes = Arc::new(
            Mailboxes::new(
                Arc::clone(&signin),
                Arc::clone(&connections),
                Arc::clone(&vault),
                settings.network.clone(),
                settings.governor,
                settings.limits,
            )?
            .with_ews_policy(settings.ews_governor)
            .with_shared_budget(store.governor_budget()),
        );
        Ok(Self {
            keys: Arc::new(ApiKeys::new(Arc::clone(&store), Arc::clone(&clock))),
            bridge_users: Arc::new(crate::bridge::BridgeUsers::new(
                Arc::clone(&store),
                Arc::clone(&connections),
                Arc::clone(&clock),
            )),
            clock,
            changes: None,
            store,
            vault,
            connections,
            signin,
            mailboxes,
        })
    }
}
