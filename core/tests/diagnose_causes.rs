//! The connection test names the real cause of each misconfiguration, with its fix: one row per
//! misconfiguration, set up with the mock's switches (or exgate's own clock and trust), each
//! asserting the step that fails and the concrete remedy in its fix.

use std::path::Path;
use std::sync::Arc;

use exgate_core::auth::SignIn;
use exgate_core::clock::Clock;
use exgate_core::config::NetworkSettings;
use exgate_core::connections::Connections;
use exgate_core::diagnose::{self, Check, Report, Status, TestOptions};
use exgate_core::governor::GovernorPolicy;
use exgate_core::mailboxes::Mailboxes;
use exgate_core::model::ConnectionSpec;
use exgate_core::pipeline::Limits;
use exgate_core::secret::{Secret, Vault};
use exgate_core::store::SqliteStore;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};
use time::{Duration, OffsetDateTime};

#[derive(Debug)]
struct Skewed(Duration);

impl Clock for Skewed {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.0
    }
}

/// Tests connection `spec` against `mock` (trusting its CA when `trust`), on a clock `skew` off.
async fn test(
    mock: &MockMicrosoft,
    dir: &Path,
    spec: ConnectionSpec,
    skew: Duration,
    trust: bool,
) -> Report {
    let vault = Arc::new(Vault::open_or_create(&dir.join("key")).unwrap());
    let store = Arc::new(
        SqliteStore::open(&dir.join("db"), vault.clone())
            .await
            .unwrap(),
    );
    let clock: Arc<dyn Clock> = Arc::new(Skewed(skew));
    let connections = Arc::new(Connections::new(store.clone(), vec![], clock.clone()));
    let network = NetworkSettings {
        authority_host: Some(mock.base_url().parse().unwrap()),
        graph_url: Some(mock.graph_url().parse().unwrap()),
        ca_pem: trust.then(|| mock.ca_pem().unwrap_or_default().into_bytes()),
        ..NetworkSettings::default()
    };
    let signin = Arc::new(SignIn::new(store, connections.clone(), network.clone(), clock).unwrap());
    connections.add("c", &spec).await.unwrap();
    let mailboxes = Mailboxes::new(
        signin.clone(),
        connections.clone(),
        vault,
        network,
        GovernorPolicy::default(),
        Limits::default(),
    )
    .unwrap();
    diagnose::test_connection(
        &connections,
        &signin,
        &mailboxes,
        "c",
        &TestOptions {
            account: None,
            mailbox: Some(seed::ADELE.into()),
        },
    )
    .await
    .unwrap()
}

fn app_only(secret: &str) -> ConnectionSpec {
    ConnectionSpec {
        tenant: Some(seed::TENANT_ID.into()),
        auth: Some("oauth2-app-only".into()),
        client_id: Some(seed::DAEMON_APP.into()),
        client_secret: Some(Secret::new(secret)),
        ..ConnectionSpec::default()
    }
}

/// The first failed step.
fn failed(report: &Report) -> &Check {
    report
        .checks
        .iter()
        .find(|c| c.status == Status::Failed)
        .unwrap_or_else(|| panic!("no step failed: {report:#?}"))
}

/// What, the connection, the mock switch, exgate's clock skew, TLS from a CA not trusted, the
/// step that fails, needles in its evidence, needles in its fix.
type Row = (
    &'static str,
    ConnectionSpec,
    Setup,
    Duration,
    bool,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

enum Setup {
    None,
    ExpireSecret,
    RevokeConsent,
    /// Entra's clock (its `Date` and token times) this many seconds off.
    SkewEntra(i64),
}

#[tokio::test]
async fn each_misconfiguration_is_named_with_its_fix() {
    // (what, connection, mock switch, exgate's clock skew, serve TLS without trusting its CA,
    //  failed step, needles in the evidence, needles in the fix)
    let rows: Vec<Row> = vec![
        (
            "secret ID given instead of its value (a wrong value reaches Entra)",
            app_only(seed::WEB_APP_SECRET),
            Setup::None,
            Duration::ZERO,
            false,
            diagnose::CREDENTIALS,
            &["AADSTS7000215"],
            &[
                "copy the secret's Value",
                "exgate connection edit c --client-secret-file FILE",
            ],
        ),
        (
            "secret expired",
            app_only(seed::DAEMON_APP_SECRET),
            Setup::ExpireSecret,
            Duration::ZERO,
            false,
            diagnose::CREDENTIALS,
            &["AADSTS7000222"],
            &["new client secret"],
        ),
        (
            "app not in the tenant",
            ConnectionSpec {
                client_id: Some("9f9f9f9f-0000-4000-8000-000000000000".into()),
                ..app_only(seed::DAEMON_APP_SECRET)
            },
            Setup::None,
            Duration::ZERO,
            false,
            diagnose::CREDENTIALS,
            &["AADSTS700016"],
            &["client ID"],
        ),
        (
            "wrong tenant",
            ConnectionSpec {
                tenant: Some("fabrikam.onmicrosoft.com".into()),
                ..app_only(seed::DAEMON_APP_SECRET)
            },
            Setup::None,
            Duration::ZERO,
            false,
            diagnose::IDENTITY_PROVIDER,
            &["AADSTS90002"],
            &["tenant"],
        ),
        (
            "admin consent missing",
            app_only(seed::DAEMON_APP_SECRET),
            Setup::RevokeConsent,
            Duration::ZERO,
            false,
            diagnose::TOKEN_CLAIMS,
            &["roles (none)"],
            &["grant admin consent"],
        ),
        (
            "clock skew over five minutes (exgate's clock ahead)",
            app_only(seed::DAEMON_APP_SECRET),
            Setup::None,
            Duration::minutes(10),
            false,
            diagnose::CLOCK,
            &["600 s ahead of", "more than 5 minutes"],
            &["NTP"],
        ),
        (
            "clock skew over five minutes (the identity provider's clock behind)",
            app_only(seed::DAEMON_APP_SECRET),
            Setup::SkewEntra(-420),
            Duration::ZERO,
            false,
            diagnose::CLOCK,
            &["ahead of", "more than 5 minutes"],
            &["NTP"],
        ),
        (
            "a TLS certificate from an unknown CA",
            app_only(seed::DAEMON_APP_SECRET),
            Setup::None,
            Duration::ZERO,
            true,
            diagnose::NETWORK,
            &["unknown CA", "exgate-mock test CA"],
            &["tls.ca_file"],
        ),
    ];
    for (what, spec, setup, skew, untrusted_tls, step, evidence, fix) in rows {
        let mock = if untrusted_tls {
            MockMicrosoft::start_tls(Seed::contoso()).await.unwrap()
        } else {
            MockMicrosoft::start(Seed::contoso()).await.unwrap()
        };
        match setup {
            Setup::None => {}
            Setup::ExpireSecret => mock.expire_secret(seed::DAEMON_APP),
            Setup::RevokeConsent => mock.revoke_consent(seed::DAEMON_APP),
            Setup::SkewEntra(secs) => mock.set_clock_skew(secs),
        }
        let dir = tempfile::tempdir().unwrap();
        let report = test(&mock, dir.path(), spec, skew, false).await;
        assert!(!report.ok, "{what}: {report:#?}");
        let check = failed(&report);
        assert_eq!(check.name, step, "{what}: {report:#?}");
        for needle in evidence {
            assert!(
                check.evidence.contains(needle),
                "{what}: {needle:?} in {check:#?}"
            );
        }
        let text = check.fix.clone().unwrap_or_default();
        for needle in fix {
            assert!(text.contains(needle), "{what}: {needle:?} in {check:#?}");
        }
        // Nothing after a failure claims to have passed what it could not check.
        assert!(
            report
                .checks
                .iter()
                .skip_while(|c| c.status != Status::Failed)
                .all(|c| c.status != Status::Passed
                    || c.name == diagnose::NETWORK
                    || c.name == diagnose::CLOCK
                    || c.name == diagnose::TOKEN_CLAIMS
                    || c.name == diagnose::MAILBOX
                    || c.name == diagnose::CREDENTIALS),
            "{what}: {report:#?}"
        );
    }

    // The same connection, trusted and on time, passes every step, network and clock included.
    let mock = MockMicrosoft::start_tls(Seed::contoso()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report = test(
        &mock,
        dir.path(),
        app_only(seed::DAEMON_APP_SECRET),
        Duration::ZERO,
        true,
    )
    .await;
    assert!(report.ok, "{report:#?}");
    let network = report
        .checks
        .iter()
        .find(|c| c.name == diagnose::NETWORK)
        .unwrap();
    assert!(
        network
            .evidence
            .contains("issued by `CN=exgate-mock test CA`, trusted"),
        "{network:#?}"
    );
    assert!(report.checks.iter().any(|c| c.name == diagnose::CLOCK));

    // The secret's ID itself never gets as far as a test: it is refused when given.
    let e = app_only(seed::DAEMON_APP_SECRET_ID).validate().unwrap_err();
    assert_eq!(e.field, "client_secret");
    assert!(e.message.contains("the secret's ID"), "{e}");
}
