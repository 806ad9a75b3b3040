//! What the IMAP/POP/SMTP tests share: exgate's services against a started `exgate-mock`, with
//! its mail servers as the connection's (or `[endpoints]`') URLs and its CA trusted.

// Each test binary includes this module and uses a part of it.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use exgate_core::auth::SignIn;
use exgate_core::clock::SystemClock;
use exgate_core::config::NetworkSettings;
use exgate_core::connections::Connections;
use exgate_core::governor::GovernorPolicy;
use exgate_core::mailboxes::Mailboxes;
use exgate_core::model::{ConnectionSpec, Principal};
use exgate_core::pipeline::Limits;
use exgate_core::secret::{Secret, Vault};
use exgate_core::store::SqliteStore;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::seed;

pub(crate) struct Env {
    pub(crate) mailboxes: Mailboxes,
    pub(crate) signin: Arc<SignIn>,
}

/// The app-only connection of the daemon app (registered in Exchange, FullAccess on every
/// mailbox).
pub(crate) fn app_only(extra: ConnectionSpec) -> ConnectionSpec {
    ConnectionSpec {
        tenant: Some(seed::TENANT_ID.into()),
        auth: Some("oauth2-app-only".into()),
        client_id: Some(seed::DAEMON_APP.into()),
        client_secret: Some(Secret::new(seed::DAEMON_APP_SECRET)),
        ..extra
    }
}

/// A delegated connection of the public CLI app (password sign-in for the test).
pub(crate) fn delegated(extra: ConnectionSpec) -> ConnectionSpec {
    ConnectionSpec {
        tenant: Some(seed::TENANT_ID.into()),
        auth: Some("oauth2-delegated".into()),
        client_id: Some(seed::PUBLIC_APP.into()),
        flow: Some("password".into()),
        ..extra
    }
}

/// Services over a fresh store in `dir` with connection `name` = `spec`; the mock's mail
/// servers are given as `[endpoints]` unless the spec names its own.
pub(crate) async fn env(mock: &MockMicrosoft, dir: &Path, name: &str, spec: ConnectionSpec) -> Env {
    let vault = Arc::new(Vault::open_or_create(&dir.join("key")).unwrap());
    let store = Arc::new(
        SqliteStore::open(&dir.join("db"), vault.clone())
            .await
            .unwrap(),
    );
    let clock = Arc::new(SystemClock);
    let connections = Arc::new(Connections::new(store.clone(), vec![], clock.clone()));
    let network = NetworkSettings {
        authority_host: Some(mock.base_url().parse().unwrap()),
        graph_url: Some(mock.graph_url().parse().unwrap()),
        imap_url: Some(mock.imap_url().parse().unwrap()),
        pop_url: Some(mock.pop_url().parse().unwrap()),
        smtp_url: Some(mock.smtp_url().parse().unwrap()),
        ca_pem: Some(mock.mail_ca_pem().into_bytes()),
        ..NetworkSettings::default()
    };
    let signin = Arc::new(SignIn::new(store, connections.clone(), network.clone(), clock).unwrap());
    connections.add(name, &spec).await.unwrap();
    let mailboxes = Mailboxes::new(
        signin.clone(),
        connections,
        vault,
        network,
        GovernorPolicy::default(),
        Limits::default(),
    )
    .unwrap();
    Env { mailboxes, signin }
}

/// Signs Adele in on a delegated connection.
pub(crate) async fn sign_in_adele(env: &Env, name: &str) -> Principal {
    let account = env
        .signin
        .password_login(name, None, seed::ADELE, &Secret::new(seed::ADELE_PASSWORD))
        .await
        .unwrap();
    account.principal
}
