//! Autodiscover over HTTP with a bearer token: the token of an app-only connection for
//! Exchange's resource reaches the configured endpoint, and a token for another resource is
//! refused there as Exchange refuses it (only the anonymous JSON endpoint answers then).

use std::sync::Arc;

use exgate_core::auth::SignIn;
use exgate_core::auth::credentials::SignInCredentials;
use exgate_core::clock::SystemClock;
use exgate_core::config::NetworkSettings;
use exgate_core::connections::Connections;
use exgate_core::ews::autodiscover::discover;
use exgate_core::ews::autodiscover::http::{HttpTransport, options};
use exgate_core::model::{ConnectionSpec, Resource};
use exgate_core::secret::{Secret, Vault};
use exgate_core::store::SqliteStore;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};

async fn signin(mock: &MockMicrosoft, dir: &std::path::Path) -> (Arc<SignIn>, NetworkSettings) {
    let vault = Arc::new(Vault::open_or_create(&dir.join("key")).unwrap());
    let store = Arc::new(SqliteStore::open(&dir.join("db"), vault).await.unwrap());
    let clock = Arc::new(SystemClock);
    let connections = Arc::new(Connections::new(store.clone(), vec![], clock.clone()));
    let network = NetworkSettings {
        authority_host: Some(mock.base_url().parse().unwrap()),
        autodiscover_url: Some(mock.autodiscover_url().parse().unwrap()),
        ..NetworkSettings::default()
    };
    let spec = ConnectionSpec {
        tenant: Some(seed::TENANT_ID.into()),
        backend: Some("ews".into()),
        auth: Some("oauth2-app-only".into()),
        client_id: Some(seed::DAEMON_APP.into()),
        client_secret: Some(Secret::new(seed::DAEMON_APP_SECRET)),
        ..ConnectionSpec::default()
    };
    connections.add("daemon", &spec).await.unwrap();
    let signin = SignIn::new(store, connections, network.clone(), clock).unwrap();
    (Arc::new(signin), network)
}

#[tokio::test]
async fn an_app_only_bearer_token_for_exchange_is_accepted_and_one_for_graph_is_refused() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (signin, network) = signin(&mock, dir.path()).await;

    let ews_token = SignInCredentials::new(signin.clone(), "daemon".into(), None, Resource::Ews);
    let transport = HttpTransport::new(&network, Some(Arc::new(ews_token))).unwrap();
    let found = discover(&transport, seed::ADELE, &options(&network, &[]))
        .await
        .unwrap();
    assert_eq!(found.ews_url.as_str(), mock.ews_url());
    assert_eq!(found.attempts.len(), 1, "{:?}", found.attempts);
    assert_eq!(found.attempts[0].method, "POX");
    let asked = mock.autodiscover_requests();
    assert!(
        !asked.is_empty() && asked.iter().all(|r| r.authorization),
        "{asked:?}"
    );

    // A Graph token has the wrong audience for Exchange: POX and SOAP answer 401, and only
    // the anonymous JSON endpoint (which takes no token) answers.
    let graph_token = SignInCredentials::new(signin, "daemon".into(), None, Resource::Graph);
    let transport = HttpTransport::new(&network, Some(Arc::new(graph_token))).unwrap();
    let found = discover(&transport, seed::ADELE, &options(&network, &[]))
        .await
        .unwrap();
    let outcomes: Vec<_> = found
        .attempts
        .iter()
        .map(|a| (a.method, a.outcome.as_str()))
        .collect();
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    assert!(
        outcomes[0] == ("POX", "401: the credentials were refused"),
        "{outcomes:?}"
    );
    assert!(
        outcomes[1] == ("SOAP", "401: the credentials were refused"),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[2].0, "JSON");
}
