//! The gateway's watch over expiring credentials, on an injected clock against the mock: each
//! warning once a day, lapsing refresh tokens reported, and idle accounts kept alive.

use std::path::Path;
use std::sync::{Arc, Mutex};

use exgate_core::auth::{Refresh, SignIn};
use exgate_core::clock::Clock;
use exgate_core::config::NetworkSettings;
use exgate_core::connections::Connections;
use exgate_core::expiry::{CredentialExpiry, RefreshLapse, Warning, Watch, graph};
use exgate_core::model::{ConnectionSpec, ExpirySource};
use exgate_core::secret::{Secret, Vault};
use exgate_core::store::SqliteStore;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};
use time::{Duration, OffsetDateTime};

#[derive(Debug)]
struct Manual(Mutex<OffsetDateTime>);

impl Manual {
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for Manual {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

async fn services(
    mock: &MockMicrosoft,
    dir: &Path,
    clock: Arc<Manual>,
) -> (Arc<Connections>, Arc<SignIn>) {
    let vault = Arc::new(Vault::open_or_create(&dir.join("key")).unwrap());
    let store = Arc::new(SqliteStore::open(&dir.join("db"), vault).await.unwrap());
    let connections = Arc::new(Connections::new(store.clone(), vec![], clock.clone()));
    let network = NetworkSettings {
        authority_host: Some(mock.base_url().parse().unwrap()),
        graph_url: Some(mock.graph_url().parse().unwrap()),
        ..NetworkSettings::default()
    };
    let signin = Arc::new(SignIn::new(store, connections.clone(), network, clock).unwrap());
    signin.cache().set_refresh(Refresh::Foreground);
    (connections, signin)
}

#[tokio::test]
async fn warnings_are_logged_once_a_day_and_idle_accounts_are_kept_alive() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let start = OffsetDateTime::now_utc();
    let clock = Arc::new(Manual(Mutex::new(start)));
    let (connections, signin) = services(&mock, dir.path(), clock.clone()).await;
    let expires = (start + Duration::days(10)).date();
    connections
        .add(
            "daemon",
            &ConnectionSpec {
                tenant: Some(seed::TENANT_ID.into()),
                auth: Some("oauth2-app-only".into()),
                client_id: Some(seed::DAEMON_APP.into()),
                client_secret: Some(Secret::new(seed::DAEMON_APP_SECRET)),
                credential_expires: Some(expires.to_string()),
                ..ConnectionSpec::default()
            },
        )
        .await
        .unwrap();
    connections
        .add(
            "contoso",
            &ConnectionSpec {
                tenant: Some(seed::TENANT_ID.into()),
                auth: Some("oauth2-delegated".into()),
                client_id: Some(seed::PUBLIC_APP.into()),
                flow: Some("password".into()),
                ..ConnectionSpec::default()
            },
        )
        .await
        .unwrap();
    signin
        .password_login(
            "contoso",
            None,
            seed::ADELE,
            &Secret::new(seed::ADELE_PASSWORD),
        )
        .await
        .unwrap();

    let report_only = Watch::new(connections.clone(), signin.clone(), None);
    let round = report_only.run_once().await.unwrap();
    assert_eq!(round.warned.len(), 1, "{round:?}");
    assert_eq!(round.warned[0].0, "daemon");
    assert_eq!(round.warned[0].1.warning, Some(Warning::Within14Days));
    assert!(
        round.lapsing.is_empty() && round.kept_alive.is_empty(),
        "{round:?}"
    );
    // The same day: nothing new to say.
    clock.advance(Duration::hours(1));
    assert!(report_only.run_once().await.unwrap().warned.is_empty());
    // The next day: warned again, now within 7 days once the date is that near.
    clock.advance(Duration::days(4));
    let round = report_only.run_once().await.unwrap();
    assert_eq!(round.warned.len(), 1, "{round:?}");
    assert_eq!(round.warned[0].1.warning, Some(Warning::Within7Days));

    // 80 days after the sign-in Adele's refresh token lapses within 14 days: reported, not
    // refreshed without keep-alive.
    clock.advance(Duration::days(75));
    let round = report_only.run_once().await.unwrap();
    assert_eq!(round.lapsing.len(), 1, "{round:?}");
    let (connection, principal, lapse) = &round.lapsing[0];
    assert_eq!(connection, "contoso");
    assert_eq!(principal.as_str(), seed::ADELE);
    assert!(
        lapse.warning && (9..=10).contains(&lapse.days_left),
        "{lapse:?}"
    );
    assert_eq!(round.warned[0].1.warning, Some(Warning::Expired));
    let account = &signin.accounts("contoso", None).await.unwrap()[0];
    assert!(RefreshLapse::of(account, clock.now()).unwrap().warning);

    // With keep-alive after 30 idle days, the account is refreshed and its clock starts over.
    let keep_alive = Watch::new(connections, signin.clone(), Some(Duration::days(30)));
    let round = keep_alive.run_once().await.unwrap();
    assert_eq!(round.kept_alive.len(), 1, "{round:?}");
    assert!(round.keep_alive_failed.is_empty(), "{round:?}");
    assert!(round.lapsing.is_empty(), "{round:?}");
    let account = &signin.accounts("contoso", None).await.unwrap()[0];
    assert_eq!(account.last_used_at, Some(clock.now()));
    let lapse = RefreshLapse::of(account, clock.now()).unwrap();
    assert!(!lapse.warning && lapse.days_left == 90, "{lapse:?}");
    // Not idle any more: nothing to keep alive.
    let round = keep_alive.run_once().await.unwrap();
    assert!(round.kept_alive.is_empty(), "{round:?}");
}

/// Contoso with the daemon app's secret expiring at `secret_expires` and, with `read_apps`,
/// the app holding Graph's Application.Read.All, so it may read its own registration.
fn daemon_seed(read_apps: bool, secret_expires: OffsetDateTime) -> Seed {
    let mut seed = Seed::contoso();
    for app in seed
        .tenants
        .iter_mut()
        .flat_map(|t| t.apps.iter_mut())
        .filter(|a| a.client_id == seed::DAEMON_APP)
    {
        for secret in &mut app.secrets {
            secret.expires = secret_expires;
        }
        if read_apps {
            app.application_permissions
                .entry(seed::GRAPH.to_string())
                .or_default()
                .push("Application.Read.All".into());
        }
    }
    seed
}

fn daemon(credential_expires: Option<&str>) -> ConnectionSpec {
    ConnectionSpec {
        tenant: Some(seed::TENANT_ID.into()),
        auth: Some("oauth2-app-only".into()),
        client_id: Some(seed::DAEMON_APP.into()),
        client_secret: Some(Secret::new(seed::DAEMON_APP_SECRET)),
        credential_expires: credential_expires.map(str::to_owned),
        ..ConnectionSpec::default()
    }
}

#[tokio::test]
async fn the_expiry_is_read_from_graph_when_the_app_may_read_its_registration() {
    let start = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let secret_expires = start + Duration::days(20);
    let mock = MockMicrosoft::start(daemon_seed(true, secret_expires))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(Manual(Mutex::new(start)));
    let (connections, signin) = services(&mock, dir.path(), clock.clone()).await;
    connections.add("daemon", &daemon(None)).await.unwrap();
    let certificate = ConnectionSpec {
        client_secret: None,
        certificate_pem: Some(exgate_testkit::fixtures::APP_CERT_PEM.into()),
        private_key_pem: Some(Secret::new(exgate_testkit::fixtures::APP_KEY_PEM)),
        ..daemon(None)
    };
    connections.add("daemon-cert", &certificate).await.unwrap();

    // The secret, found by its hint.
    let connection = connections.get("daemon").await.unwrap().connection;
    let answer = graph::read(&connection, &signin).await;
    assert_eq!(answer.expires(), Some(secret_expires), "{answer:?}");
    let hint: String = seed::DAEMON_APP_SECRET.chars().take(3).collect();
    assert!(
        answer
            .evidence()
            .contains(&format!("client secret {hint}…"))
            && answer.evidence().ends_with("(from Graph)"),
        "{}",
        answer.evidence()
    );
    assert!(!answer.evidence().contains(seed::DAEMON_APP_SECRET));

    // The certificate, found by its SHA-1 thumbprint: Graph's endDateTime, not the PEM's.
    let cert = connections.get("daemon-cert").await.unwrap().connection;
    let answer = graph::read(&cert, &signin).await;
    let not_after = cert.settings.credential_expiry().unwrap().0;
    assert_eq!(answer.expires(), Some(not_after), "{answer:?}");
    assert!(answer.evidence().contains("certificate "), "{answer:?}");

    // The watch asks Graph and warns by what it says: 20 days left is within 30.
    let watch = Watch::new(connections.clone(), signin.clone(), None);
    let round = watch.run_once().await.unwrap();
    let (_, expiry) = round
        .warned
        .iter()
        .find(|(name, _)| name == "daemon")
        .unwrap_or_else(|| panic!("{round:?}"));
    assert_eq!(expiry.source, ExpirySource::Graph);
    assert_eq!(expiry.expires, secret_expires);
    assert_eq!(expiry.warning, Some(Warning::Within30Days));
    assert!(matches!(
        watch.from_graph("daemon"),
        Some(graph::FromGraph::Found { .. })
    ));
    // Once a day: the same day asks Graph no more.
    let graph_calls = |mock: &MockMicrosoft| {
        mock.requests()
            .iter()
            .filter(|r| r.uri.contains("/applications("))
            .count()
    };
    let before = graph_calls(&mock);
    assert!(before >= 3, "the reads above and the watch's asked Graph");
    clock.advance(Duration::hours(1));
    watch.run_once().await.unwrap();
    assert_eq!(graph_calls(&mock), before);

    // A given date wins over Graph, and Graph is not asked for it.
    let given = (start + Duration::days(200)).date();
    connections
        .edit(
            "daemon",
            ConnectionSpec {
                credential_expires: Some(given.to_string()),
                ..ConnectionSpec::default()
            },
            false,
        )
        .await
        .unwrap();
    clock.advance(Duration::days(1));
    let round = Watch::new(connections.clone(), signin.clone(), None)
        .run_once()
        .await
        .unwrap();
    assert!(
        round.warned.iter().all(|(name, _)| name != "daemon"),
        "{round:?}"
    );
    let settings = connections.get("daemon").await.unwrap().connection.settings;
    let e = CredentialExpiry::with_graph(&settings, Some(secret_expires), clock.now()).unwrap();
    assert_eq!(e.source, ExpirySource::Given);
}

#[tokio::test]
async fn without_permission_graph_answers_403_and_the_expiry_stays_unknown() {
    let start = OffsetDateTime::now_utc();
    let mock = MockMicrosoft::start(daemon_seed(false, start + Duration::days(3)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(Manual(Mutex::new(start)));
    let (connections, signin) = services(&mock, dir.path(), clock).await;
    connections.add("daemon", &daemon(None)).await.unwrap();
    let connection = connections.get("daemon").await.unwrap().connection;
    let answer = graph::read(&connection, &signin).await;
    assert_eq!(answer, graph::FromGraph::Denied);
    assert!(
        answer.evidence().contains("Application.Read.All")
            && answer.evidence().contains("Application.ReadWrite.OwnedBy"),
        "{}",
        answer.evidence()
    );
    // Not an error: no warning, no expiry, the source as it was (none for a secret).
    let watch = Watch::new(connections, signin, None);
    let round = watch.run_once().await.unwrap();
    assert!(round.warned.is_empty(), "{round:?}");
    assert_eq!(watch.from_graph("daemon"), Some(graph::FromGraph::Denied));
    assert_eq!(CredentialExpiry::of(&connection.settings, start), None);
}

#[tokio::test]
async fn what_the_watch_read_from_graph_is_the_shown_expiry_until_the_connection_changes() {
    let start = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let secret_expires = start + Duration::days(10);
    let mock = MockMicrosoft::start(daemon_seed(true, secret_expires))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(Manual(Mutex::new(start)));
    let (connections, signin) = services(&mock, dir.path(), clock.clone()).await;
    connections.add("daemon", &daemon(None)).await.unwrap();
    let watch = Watch::new(connections.clone(), signin.clone(), None);
    let connection = connections.get("daemon").await.unwrap().connection;
    // Before the watch asked, a secret's expiry is not known.
    assert!(watch.expiry(&connection, clock.now()).is_none());

    watch.run_once().await.unwrap();
    let shown = watch.expiry(&connection, clock.now()).unwrap();
    assert_eq!(shown.source, ExpirySource::Graph);
    assert_eq!(shown.expires, secret_expires);
    assert_eq!(shown.warning, Some(Warning::Within14Days));

    // A new secret makes the reading stale: it is not shown for the edited connection.
    clock.advance(Duration::seconds(1));
    let edited = connections
        .edit(
            "daemon",
            ConnectionSpec {
                client_secret: Some(Secret::new(seed::DAEMON_APP_SECRET)),
                ..ConnectionSpec::default()
            },
            false,
        )
        .await
        .unwrap();
    assert_ne!(edited.updated_at, connection.updated_at);
    assert!(watch.expiry(&edited, clock.now()).is_none());
    // The next round reads it again.
    watch.run_once().await.unwrap();
    assert_eq!(
        watch.expiry(&edited, clock.now()).map(|e| e.source),
        Some(ExpirySource::Graph)
    );
}
