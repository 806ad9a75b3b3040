//! What handlers share: the core services, built once from the settings and the store.

use std::sync::Arc;

use exgate_core::admin::AdminCheck;
use exgate_core::apikeys::ApiKeys;
use exgate_core::auth::SignIn;
use exgate_core::config::Settings;
use exgate_core::connections::Connections;
use exgate_core::mailboxes::Mailboxes;
use exgate_core::services::Services;
use exgate_core::store::Store;

use crate::auth::Guard;
use crate::{Logins, Metrics};

#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub connections: Arc<Connections>,
    pub signin: Arc<SignIn>,
    pub mailboxes: Arc<Mailboxes>,
    pub keys: Arc<ApiKeys>,
    /// The admin password check (configured, or the generated one hashed in the store).
    pub admin: Arc<AdminCheck>,
    /// The gateway's address as browsers reach it, for the sign-in redirect URI.
    pub public_url: String,
    pub guard: Arc<Guard>,
    /// Sign-ins started through the API, for their status route.
    pub logins: Arc<Logins>,
    pub metrics: Arc<Metrics>,
    /// The follower of the store's change feed, on a store several gateways share.
    pub changes: Option<Arc<exgate_core::changes::ChangeFollower>>,
    /// The admin console's signing key (derived from the master key, so every gateway over the
    /// same store and key file accepts the same sessions).
    pub console: Arc<crate::console::Keys>,
    /// The watch over expiring credentials (run by [`crate::spawn_expiry_watch`]); what it read
    /// from Graph is part of the expiry the API, the gauge and the console show.
    pub expiry: Arc<exgate_core::expiry::Watch>,
    /// Change notifications: the watches this gateway runs, their journal and webhooks
    /// (started by [`crate::spawn_notifications`]).
    pub notifier: Arc<exgate_core::notify::Notifier>,
    /// The webhook delivery worker.
    pub delivery: exgate_core::notify::delivery::Delivery,
    /// `[notify]` as configured.
    pub notify: exgate_core::config::NotifyConfig,
}

impl AppState {
    /// Builds the services over `store`. `public_url` is where browsers reach the gateway.
    pub fn new(services: Services, settings: Settings, public_url: String) -> Self {
        let admin = Arc::new(AdminCheck::new(
            Arc::clone(&services.store),
            settings.server.admin_password,
        ));
        let guard = Arc::new(Guard::over(
            Arc::clone(&services.store),
            Arc::clone(&services.clock),
            settings.server.trusted_proxies,
            exgate_core::limiter::FailurePolicy::default(),
        ));
        let console = Arc::new(crate::console::Keys::new(
            &services.vault.derive_key("console-session"),
            Arc::clone(&services.clock),
        ));
        let expiry = Arc::new(exgate_core::expiry::Watch::new(
            Arc::clone(&services.connections),
            Arc::clone(&services.signin),
            settings.server.keep_refresh_tokens_alive,
        ));
        let public = public_url.trim_end_matches('/').to_owned();
        // Several gateways on one store claim watches and webhooks under a name of their own; a
        // store this gateway alone uses (SQLite) is claimed under one name, so a gateway killed
        // and started again takes its watches back at once instead of after the lease.
        let owner = if services.store.shares_auth_failures() {
            format!("exgate-server-{}", uuid::Uuid::new_v4())
        } else {
            "exgate-server".to_owned()
        };
        let notifier = Arc::new(exgate_core::notify::Notifier::new(
            Arc::clone(&services.store),
            Arc::clone(&services.connections),
            Arc::clone(&services.mailboxes),
            Arc::clone(&services.clock),
            exgate_core::notify::NotifySettings {
                public_url: settings
                    .notify
                    .graph_push
                    .then(|| url::Url::parse(&format!("{public}/")).ok())
                    .flatten(),
                poll_every: settings.notify.poll,
                safety_every: settings.notify.safety_poll,
                owner: owner.clone(),
                ..exgate_core::notify::NotifySettings::default()
            },
        ));
        let delivery = exgate_core::notify::delivery::Delivery::new(
            Arc::clone(&services.store),
            &settings.network,
            Arc::clone(&services.clock),
            exgate_core::notify::delivery::DeliveryOptions {
                retry_for: settings.notify.webhook_retry,
                owner,
                ..exgate_core::notify::delivery::DeliveryOptions::default()
            },
        )
        .expect("the network settings were checked when the services were opened");
        Self {
            notify: settings.notify.clone(),
            delivery,
            notifier,
            expiry,
            changes: services.changes,
            console,
            keys: services.keys,
            store: services.store,
            connections: services.connections,
            signin: services.signin,
            mailboxes: services.mailboxes,
            admin,
            public_url: public_url.trim_end_matches('/').to_owned(),
            guard,
            logins: Arc::new(Logins::default()),
            metrics: Arc::new(Metrics::default()),
        }
    }

    /// The redirect URI an admin registers in Entra for gateway sign-ins.
    pub fn redirect_uri(&self) -> String {
        format!("{}/service/oauth2/authorize", self.public_url)
    }
}
