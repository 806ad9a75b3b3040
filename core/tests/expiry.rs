//! The gateway's watch over expiring credentials, on an injected clock against the mock: each
//! warning once a day, lapsing refresh tokens reported, and idle accounts kept alive.

use std::path::Path;
use std::sync::{Arc, Mutex};

use exgate_core::auth::{Refresh, SignIn};
use exgate_core::clock::Clock;
use exgate_core::config::NetworkSettings;
use exgate_core::connections::Connections;
use exgate_core::expiry::{RefreshLapse, Warning, Watch};
use exgate_core::model::ConnectionSpec;
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
