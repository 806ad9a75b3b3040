//! The connection test names the real cause of each misconfiguration, with its fix: one row per
//! misconfiguration, set up with the mock's switches (or exgate's own clock and trust), each
//! asserting the step that fails and the concrete remedy in its fix, with the real IDs (the
//! app's client ID, its service principal's object ID, the mailbox) where they are known.

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
use exgate_testkit::ews::EwsSwitchChange;
use exgate_testkit::mailproto::{MailSwitchChange, ServicePrincipalSwitch};
use std::collections::BTreeMap;
use time::{Duration, OffsetDateTime};

#[derive(Debug)]
struct Skewed(Duration);

impl Clock for Skewed {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.0
    }
}

/// Tests connection `spec` against `mock` (trusting its CA when `trust`), on a clock `skew` off,
/// reading `mailbox`.
async fn test(
    mock: &MockMicrosoft,
    dir: &Path,
    spec: ConnectionSpec,
    skew: Duration,
    trust: bool,
    mailbox: Option<&str>,
    signed_in: Option<(&str, &str)>,
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
        ews_url: Some(mock.ews_url().parse().unwrap()),
        imap_url: Some(mock.imap_url().parse().unwrap()),
        smtp_url: Some(mock.smtp_url().parse().unwrap()),
        // The mail servers' CA, which is also Entra's and Graph's when the mock serves TLS.
        ca_pem: trust.then(|| mock.mail_ca_pem().into_bytes()),
        ..NetworkSettings::default()
    };
    let signin = Arc::new(SignIn::new(store, connections.clone(), network.clone(), clock).unwrap());
    connections.add("c", &spec).await.unwrap();
    if let Some((upn, password)) = signed_in {
        signin
            .password_login("c", None, upn, &Secret::new(password))
            .await
            .unwrap();
    }
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
            mailbox: mailbox.map(str::to_owned),
            redirect_uri: None,
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

/// One misconfiguration: the connection, the mock's switch, exgate's clock skew, TLS from a CA
/// not trusted, the mailbox read, the step that fails, needles in its evidence and in its fix.
struct Row {
    what: &'static str,
    spec: ConnectionSpec,
    setup: Setup,
    skew: Duration,
    untrusted_tls: bool,
    mailbox: Option<&'static str>,
    /// A user signed in (by password) before the test: UPN and password.
    signed_in: Option<(&'static str, &'static str)>,
    step: &'static str,
    evidence: Vec<String>,
    fix: Vec<String>,
}

impl Row {
    /// An app-only row reading Adele's mailbox on time, over trusted TLS.
    fn new(
        what: &'static str,
        spec: ConnectionSpec,
        setup: Setup,
        step: &'static str,
        evidence: &[&str],
        fix: &[&str],
    ) -> Self {
        Self {
            what,
            spec,
            setup,
            skew: Duration::ZERO,
            untrusted_tls: false,
            mailbox: Some(seed::ADELE),
            signed_in: None,
            step,
            evidence: evidence.iter().map(|e| (*e).to_owned()).collect(),
            fix: fix.iter().map(|f| (*f).to_owned()).collect(),
        }
    }
}

enum Setup {
    None,
    ExpireSecret,
    RevokeConsent,
    /// Entra's clock (its `Date` and token times) this many seconds off.
    SkewEntra(i64),
    /// Exchange's settings of the mail protocols (`Set-CASMailbox`, `New-ServicePrincipal`,
    /// `Add-MailboxPermission`).
    Mail(MailSwitchChange),
    /// EWS's switches (EWS turned off for apps).
    Ews(EwsSwitchChange),
    /// The mailboxes an app may reach (an application access policy or RBAC scope).
    MailboxScope(&'static str, Vec<String>),
}

/// A delegated connection of `client_id` signing users in by `flow`, with no account yet.
fn delegated(client_id: &str, flow: &str, redirect_uri: Option<&str>) -> ConnectionSpec {
    ConnectionSpec {
        tenant: Some(seed::TENANT_ID.into()),
        auth: Some("oauth2-delegated".into()),
        client_id: Some(client_id.into()),
        flow: Some(flow.into()),
        redirect_uri: redirect_uri.map(str::to_owned),
        ..ConnectionSpec::default()
    }
}

/// The daemon app reading over IMAP and sending over SMTP.
fn app_only_imap() -> ConnectionSpec {
    ConnectionSpec {
        backend: Some("imap".into()),
        send: Some("smtp".into()),
        ..app_only(seed::DAEMON_APP_SECRET)
    }
}

/// The daemon app reading over EWS.
fn app_only_ews() -> ConnectionSpec {
    ConnectionSpec {
        backend: Some("ews".into()),
        ..app_only(seed::DAEMON_APP_SECRET)
    }
}

/// The daemon app with a certificate of its own that was never uploaded to the app.
fn app_only_other_certificate() -> ConnectionSpec {
    let now = OffsetDateTime::now_utc();
    let cert = exgate_core::appreg::generate_certificate(
        "not-uploaded",
        now - Duration::days(1),
        now + Duration::days(90),
    )
    .unwrap();
    ConnectionSpec {
        tenant: Some(seed::TENANT_ID.into()),
        auth: Some("oauth2-app-only".into()),
        client_id: Some(seed::DAEMON_APP.into()),
        certificate_pem: Some(cert.certificate_pem),
        private_key_pem: Some(cert.private_key_pem),
        ..ConnectionSpec::default()
    }
}

const GATEWAY_REDIRECT: &str = "https://exgate.contoso.com/service/oauth2/authorize";

#[tokio::test]
async fn each_misconfiguration_is_named_with_its_fix() {
    let imap_disabled = MailSwitchChange {
        imap_enabled: BTreeMap::from([(seed::ADELE.to_owned(), false)]),
        ..MailSwitchChange::default()
    };
    let smtp_auth_disabled = MailSwitchChange {
        smtp_client_auth: BTreeMap::from([(seed::ADELE.to_owned(), false)]),
        ..MailSwitchChange::default()
    };
    let sp_missing = MailSwitchChange {
        service_principals: BTreeMap::from([(
            seed::DAEMON_APP.to_owned(),
            ServicePrincipalSwitch {
                registered: Some(false),
                full_access: None,
            },
        )]),
        ..MailSwitchChange::default()
    };
    let no_full_access = MailSwitchChange {
        service_principals: BTreeMap::from([(
            seed::DAEMON_APP.to_owned(),
            ServicePrincipalSwitch {
                registered: None,
                full_access: Some(vec![seed::SALES.to_owned()]),
            },
        )]),
        ..MailSwitchChange::default()
    };
    let rows: Vec<Row> = vec![
        Row::new(
            "secret ID given instead of its value (a wrong value reaches Entra)",
            app_only(seed::WEB_APP_SECRET),
            Setup::None,
            diagnose::CREDENTIALS,
            &["AADSTS7000215"],
            &[
                "copy the secret's Value",
                "exgate connection edit c --client-secret-file FILE",
            ],
        ),
        Row::new(
            "secret expired",
            app_only(seed::DAEMON_APP_SECRET),
            Setup::ExpireSecret,
            diagnose::CREDENTIALS,
            &["AADSTS7000222"],
            &["new client secret"],
        ),
        Row::new(
            "certificate not matching any of the app's",
            app_only_other_certificate(),
            Setup::None,
            diagnose::CREDENTIALS,
            &["AADSTS700027"],
            &[
                &format!(
                    "az ad app credential reset --id {} --cert @cert.pem --append",
                    seed::DAEMON_APP
                ),
                "x5t#S256 ",
                "exgate connection edit c --certificate FILE --private-key FILE",
            ],
        ),
        Row::new(
            "app not in the tenant",
            ConnectionSpec {
                client_id: Some("9f9f9f9f-0000-4000-8000-000000000000".into()),
                ..app_only(seed::DAEMON_APP_SECRET)
            },
            Setup::None,
            diagnose::CREDENTIALS,
            &["AADSTS700016"],
            &["client ID"],
        ),
        Row::new(
            "wrong tenant",
            ConnectionSpec {
                tenant: Some("fabrikam.onmicrosoft.com".into()),
                ..app_only(seed::DAEMON_APP_SECRET)
            },
            Setup::None,
            diagnose::IDENTITY_PROVIDER,
            &["AADSTS90002"],
            &["tenant"],
        ),
        Row::new(
            "admin consent missing",
            app_only(seed::DAEMON_APP_SECRET),
            Setup::RevokeConsent,
            diagnose::TOKEN_CLAIMS,
            &["roles (none)"],
            &["grant admin consent"],
        ),
        Row::new(
            "redirect URI not registered (the gateway's, on the CLI's app)",
            delegated(
                seed::PUBLIC_APP,
                "authorization-code",
                Some(GATEWAY_REDIRECT),
            ),
            Setup::None,
            diagnose::SIGN_IN,
            &["AADSTS50011", &format!("redirect_uri={GATEWAY_REDIRECT}")],
            &[
                &format!(
                    "az ad app update --id {} --web-redirect-uris {GATEWAY_REDIRECT}",
                    seed::PUBLIC_APP
                ),
                "Add a platform > Web",
                "exgate connection edit c --redirect-uri URI",
            ],
        ),
        Row::new(
            "public client flows off (device code)",
            delegated(seed::WEB_APP, "device-code", None),
            Setup::None,
            diagnose::SIGN_IN,
            &["AADSTS7000218"],
            &[
                &format!(
                    "az ad app update --id {} --is-fallback-public-client true",
                    seed::WEB_APP
                ),
                "Allow public client flows: Yes",
            ],
        ),
        Row::new(
            "public client flows off (password)",
            delegated(seed::WEB_APP, "password", None),
            Setup::None,
            diagnose::SIGN_IN,
            &["AADSTS7000218"],
            &[&format!(
                "az ad app update --id {} --is-fallback-public-client true",
                seed::WEB_APP
            )],
        ),
        Row::new(
            "Exchange service principal missing (IMAP)",
            app_only_imap(),
            Setup::Mail(sp_missing),
            "IMAP mailbox",
            &["AUTHENTICATE failed"],
            &[&format!(
                "New-ServicePrincipal -AppId {} -ObjectId {}",
                seed::DAEMON_APP,
                seed::DAEMON_APP_SP_OID
            )],
        ),
        Row::new(
            "mailbox permission missing (IMAP)",
            app_only_imap(),
            Setup::Mail(no_full_access),
            "IMAP mailbox",
            &["authenticated but not connected"],
            &[&format!(
                "Add-MailboxPermission -Identity {} -User {} -AccessRights FullAccess",
                seed::ADELE,
                seed::DAEMON_APP_SP_OID
            )],
        ),
        Row::new(
            "mailbox permission missing (EWS: outside the app's scope)",
            app_only_ews(),
            Setup::MailboxScope(seed::DAEMON_APP, vec![seed::MEGAN.to_owned()]),
            diagnose::MAILBOX,
            &["ErrorImpersonateUserDenied"],
            &[
                &format!(
                    "Test-ApplicationAccessPolicy -Identity {} -AppId {}",
                    seed::ADELE,
                    seed::DAEMON_APP
                ),
                &format!(
                    "Get-ManagementRoleAssignment -RoleAssignee {}",
                    seed::DAEMON_APP_SP_OID
                ),
            ],
        ),
        Row {
            mailbox: Some(seed::MEGAN),
            signed_in: Some((seed::ADELE, seed::ADELE_PASSWORD)),
            ..Row::new(
                "mailbox permission missing (EWS, delegated: another user's mailbox)",
                ConnectionSpec {
                    backend: Some("ews".into()),
                    ..delegated(seed::PUBLIC_APP, "password", None)
                },
                Setup::None,
                diagnose::MAILBOX,
                &["ErrorAccessDenied"],
                &[&format!(
                    "Add-MailboxPermission -Identity {} -User {} -AccessRights FullAccess",
                    seed::MEGAN,
                    seed::ADELE
                )],
            )
        },
        Row {
            mailbox: Some(seed::MEGAN),
            signed_in: Some((seed::ADELE, seed::ADELE_PASSWORD)),
            ..Row::new(
                "mailbox permission missing (IMAP, delegated: another user's mailbox)",
                ConnectionSpec {
                    backend: Some("imap".into()),
                    ..delegated(seed::PUBLIC_APP, "password", None)
                },
                Setup::None,
                "IMAP mailbox",
                &["authenticated but not connected"],
                &[&format!(
                    "Add-MailboxPermission -Identity {} -User {} -AccessRights FullAccess",
                    seed::MEGAN,
                    seed::ADELE
                )],
            )
        },
        Row::new(
            "EWS blocked for the organization's apps",
            app_only_ews(),
            Setup::Ews(EwsSwitchChange {
                block_apps: Some(true),
                ..EwsSwitchChange::default()
            }),
            diagnose::MAILBOX,
            &["EwsDisabled", "EWSEnabled"],
            &[
                "Set-OrganizationConfig -EwsEnabled $true",
                &format!("EwsAllowedAppIDs` shows and {}", seed::DAEMON_APP),
                &format!("Set-CASMailbox -Identity {} -EwsEnabled $true", seed::ADELE),
            ],
        ),
        Row::new(
            "IMAP disabled for the mailbox",
            app_only_imap(),
            Setup::Mail(imap_disabled),
            "IMAP mailbox",
            &["AUTHENTICATE failed"],
            &[&format!(
                "Set-CASMailbox -Identity {} -ImapEnabled $true",
                seed::ADELE
            )],
        ),
        Row::new(
            "SMTP AUTH disabled for the mailbox",
            app_only_imap(),
            Setup::Mail(smtp_auth_disabled),
            "SMTP authentication",
            &["5.7.139"],
            &[&format!(
                "Set-CASMailbox -Identity {} -SmtpClientAuthenticationDisabled $false",
                seed::ADELE
            )],
        ),
        Row {
            skew: Duration::minutes(10),
            ..Row::new(
                "clock skew over five minutes (exgate's clock ahead)",
                app_only(seed::DAEMON_APP_SECRET),
                Setup::None,
                diagnose::CLOCK,
                &["600 s ahead of", "more than 5 minutes"],
                &["NTP"],
            )
        },
        Row::new(
            "clock skew over five minutes (the identity provider's clock behind)",
            app_only(seed::DAEMON_APP_SECRET),
            Setup::SkewEntra(-420),
            diagnose::CLOCK,
            &["ahead of", "more than 5 minutes"],
            &["NTP"],
        ),
        Row {
            untrusted_tls: true,
            ..Row::new(
                "a TLS certificate from an unknown CA",
                app_only(seed::DAEMON_APP_SECRET),
                Setup::None,
                diagnose::NETWORK,
                &["unknown CA", "exgate-mock test CA"],
                &["tls.ca_file"],
            )
        },
    ];
    for row in rows {
        let Row {
            what,
            spec,
            setup,
            skew,
            untrusted_tls,
            mailbox,
            signed_in,
            step,
            evidence,
            fix,
        } = row;
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
            Setup::Mail(change) => {
                mock.change_mail_switches(&change).unwrap();
            }
            Setup::Ews(change) => {
                mock.change_ews_switches(&change).unwrap();
            }
            Setup::MailboxScope(app, mailboxes) => mock.set_mailbox_scope(app, Some(mailboxes)),
        }
        let dir = tempfile::tempdir().unwrap();
        let report = test(
            &mock,
            dir.path(),
            spec,
            skew,
            !untrusted_tls,
            mailbox,
            signed_in,
        )
        .await;
        assert!(!report.ok, "{what}: {report:#?}");
        let check = failed(&report);
        assert_eq!(check.name, step, "{what}: {report:#?}");
        for needle in &evidence {
            assert!(
                check.evidence.contains(needle.as_str()),
                "{what}: {needle:?} in {check:#?}"
            );
        }
        let text = check.fix.clone().unwrap_or_default();
        for needle in &fix {
            assert!(
                text.contains(needle.as_str()),
                "{what}: {needle:?} in {check:#?}"
            );
        }
        // No secret or token in what the test says.
        let said = serde_json::to_string(&report).unwrap();
        assert!(!said.contains("eyJ"), "{what}: a token in {said}");
        assert!(
            !said.contains(seed::DAEMON_APP_SECRET),
            "{what}: the secret in {said}"
        );
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
                    || c.name == diagnose::CREDENTIALS
                    || c.name.starts_with("IMAP")
                    || c.name.starts_with("SMTP")),
            "{what}: {report:#?}"
        );
    }

    // Signing in is checked without anyone signing in: the CLI's loopback is registered for
    // the CLI's app, and its public client flows are on.
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    for flow in ["authorization-code", "device-code", "password"] {
        let dir = tempfile::tempdir().unwrap();
        let report = test(
            &mock,
            dir.path(),
            delegated(seed::PUBLIC_APP, flow, None),
            Duration::ZERO,
            true,
            None,
            None,
        )
        .await;
        let sign_in = report
            .checks
            .iter()
            .find(|c| c.name == diagnose::SIGN_IN)
            .unwrap();
        assert_eq!(sign_in.status, Status::Passed, "{flow}: {report:#?}");
        // No account signed in yet: the test says so, and is not ok.
        assert!(!report.ok && !report.failed(), "{flow}: {report:#?}");
    }

    // App-only IMAP, SMTP and EWS, set up right, pass every step.
    for spec in [app_only_imap(), app_only_ews()] {
        let dir = tempfile::tempdir().unwrap();
        let report = test(
            &mock,
            dir.path(),
            spec,
            Duration::ZERO,
            true,
            Some(seed::ADELE),
            None,
        )
        .await;
        assert!(report.ok, "{report:#?}");
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
        Some(seed::ADELE),
        None,
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

/// The credentials step's evidence carries the secret's expiry as the app's registration in
/// Graph has it; without the permission to read it, the step still passes and its evidence
/// names the permission that would let exgate read it.
#[tokio::test]
async fn the_credentials_step_reads_the_secrets_expiry_from_graph_or_names_the_permission() {
    let mut readable = Seed::contoso();
    for app in readable
        .tenants
        .iter_mut()
        .flat_map(|t| t.apps.iter_mut())
        .filter(|a| a.client_id == seed::DAEMON_APP)
    {
        app.application_permissions
            .entry(seed::GRAPH.to_string())
            .or_default()
            .push("Application.Read.All".into());
    }
    let credentials = |report: &Report| {
        report
            .checks
            .iter()
            .find(|c| c.name == diagnose::CREDENTIALS)
            .cloned()
            .unwrap_or_else(|| panic!("{report:#?}"))
    };
    for (seed, needle) in [
        (
            readable,
            format!(
                "client secret {}… expires 2099-01-01T00:00:00Z (from Graph)",
                &seed::DAEMON_APP_SECRET[..3]
            ),
        ),
        (
            Seed::contoso(),
            "Application.ReadWrite.OwnedBy with the app's service principal made an owner".into(),
        ),
    ] {
        let mock = MockMicrosoft::start(seed).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let report = test(
            &mock,
            dir.path(),
            app_only(seed::DAEMON_APP_SECRET),
            Duration::ZERO,
            false,
            Some(seed::ADELE),
            None,
        )
        .await;
        let step = credentials(&report);
        assert_eq!(step.status, Status::Passed, "{step:?}");
        assert!(step.evidence.contains(&needle), "{}", step.evidence);
        assert!(!step.evidence.contains(seed::DAEMON_APP_SECRET));
        assert!(report.ok, "{report:#?}");
    }
}
