//! Every sign-in flow through core's `SignIn` against the testkit's mock Entra ID, on a real store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use exgate_core::Error;
use exgate_core::auth::{AuthError, RedirectParams, Refresh, SignIn};
use exgate_core::clock::Clock;
use exgate_core::config::NetworkSettings;
use exgate_core::connections::Connections;
use exgate_core::model::{AccountStatus, ConnectionSpec, EndpointUrl, Principal, Resource};
use exgate_core::secret::{Secret, Vault};
use exgate_core::store::{CountingStore, SqliteStore, Store};
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Fault, Seed, seed};
use exgate_testkit::fixtures;
use time::OffsetDateTime;

/// A clock the test moves by hand, starting now.
#[derive(Debug, Clone)]
struct TestClock(Arc<Mutex<OffsetDateTime>>);

impl TestClock {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(OffsetDateTime::now_utc())))
    }
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

struct World {
    _dir: tempfile::TempDir,
    mock: MockMicrosoft,
    store: Arc<SqliteStore>,
    /// What sign-in and the connections read and write, counted.
    counting: Arc<CountingStore>,
    connections: Arc<Connections>,
    signin: SignIn,
    clock: TestClock,
}

impl World {
    async fn new() -> Self {
        Self::with(MockMicrosoft::start(Seed::contoso()).await.unwrap(), None).await
    }

    async fn with(mock: MockMicrosoft, ca_pem: Option<Vec<u8>>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let vault = Arc::new(Vault::open_or_create(&dir.path().join("master.key")).unwrap());
        let store = Arc::new(
            SqliteStore::open(&dir.path().join("exgate.db"), vault)
                .await
                .unwrap(),
        );
        let clock = TestClock::new();
        let counting = Arc::new(CountingStore::new(store.clone()));
        let connections = Arc::new(Connections::new(
            counting.clone(),
            vec![],
            Arc::new(clock.clone()),
        ));
        let network = NetworkSettings {
            authority_host: Some(mock.base_url().parse::<EndpointUrl>().unwrap()),
            graph_url: None,
            ews_url: None,
            ca_pem,
            autodiscover_url: None,
            ..NetworkSettings::default()
        };
        let signin = SignIn::new(
            counting.clone(),
            connections.clone(),
            network,
            Arc::new(clock.clone()),
        )
        .unwrap();
        Self {
            _dir: dir,
            mock,
            store,
            counting,
            connections,
            signin,
            clock,
        }
    }

    async fn add(&self, name: &str, spec: ConnectionSpec) {
        self.connections.add(name, &spec).await.unwrap();
    }

    /// Follows a browser sign-in with auto-approve: the authorize endpoint redirects at once.
    async fn browser_redirect(&self, url: &str) -> RedirectParams {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let resp = http.get(url).send().await.unwrap();
        assert_eq!(
            resp.status(),
            302,
            "{}",
            resp.text().await.unwrap_or_default()
        );
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        RedirectParams::parse(&location).unwrap()
    }

    /// A browser sign-in at the generic OIDC provider, as it auto-approves.
    async fn sign_in_with(&self, oidc: &exgate_testkit::oidc::OidcState, connection: &str) {
        oidc.set_auto_approve(Some(seed::ADELE));
        let login = self
            .signin
            .start_browser_login(connection, None, "http://localhost:50001", None)
            .await
            .unwrap();
        let params = self.browser_redirect(&login.url).await;
        self.signin.finish_browser_login(params).await.unwrap();
    }

    async fn sign_in_adele(&self, connection: &str) {
        self.mock.set_auto_approve(Some(seed::ADELE));
        let login = self
            .signin
            .start_browser_login(connection, None, "http://localhost:50001", None)
            .await
            .unwrap();
        let params = self.browser_redirect(&login.url).await;
        self.signin.finish_browser_login(params).await.unwrap();
    }
}

fn delegated(client: &str) -> ConnectionSpec {
    ConnectionSpec {
        tenant: Some(seed::TENANT_ID.into()),
        auth: Some("oauth2-delegated".into()),
        client_id: Some(client.into()),
        ..ConnectionSpec::default()
    }
}

fn app_only_secret(secret: &str) -> ConnectionSpec {
    ConnectionSpec {
        tenant: Some(seed::TENANT_DOMAIN.into()),
        auth: Some("oauth2-app-only".into()),
        client_id: Some(seed::DAEMON_APP.into()),
        client_secret: Some(Secret::new(secret)),
        ..ConnectionSpec::default()
    }
}

/// The claims of a JWT, unverified (the mock's own tests verify signatures).
fn claims(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

fn refused_code(err: &Error) -> Option<u32> {
    match err {
        Error::Auth(AuthError::Refused { body, .. }) => body.code(),
        _ => None,
    }
}

#[tokio::test]
async fn app_only_with_a_secret_and_then_from_the_cache() {
    let w = World::new().await;
    w.add("daemon", app_only_secret(seed::DAEMON_APP_SECRET))
        .await;
    let token = w
        .signin
        .token("daemon", None, Resource::Graph)
        .await
        .unwrap();
    let c = claims(token.secret.expose());
    assert_eq!(c["aud"], "https://graph.microsoft.com");
    assert!(
        c["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "Mail.Send"),
        "{c}"
    );
    assert_eq!(w.mock.token_requests(), 1);

    let again = w
        .signin
        .token("daemon", None, Resource::Graph)
        .await
        .unwrap();
    assert_eq!(again.secret, token.secret);
    assert_eq!(
        w.mock.token_requests(),
        1,
        "a fresh token must come from the cache"
    );

    // EWS is another resource: another token.
    let ews = w.signin.token("daemon", None, Resource::Ews).await.unwrap();
    assert_eq!(
        claims(ews.secret.expose())["aud"],
        "https://outlook.office365.com"
    );
    assert_eq!(w.mock.token_requests(), 2);
}

#[tokio::test]
async fn app_only_with_a_certificate() {
    let w = World::new().await;
    let spec = ConnectionSpec {
        client_secret: None,
        certificate_pem: Some(fixtures::APP_CERT_PEM.into()),
        private_key_pem: Some(Secret::new(fixtures::APP_KEY_PEM)),
        ..app_only_secret("unused")
    };
    w.add("daemon-cert", spec).await;
    let token = w
        .signin
        .token("daemon-cert", None, Resource::Graph)
        .await
        .unwrap();
    assert_eq!(claims(token.secret.expose())["appid"], seed::DAEMON_APP);
}

#[tokio::test]
async fn secret_mistakes_are_explained_with_the_fix() {
    let w = World::new().await;
    w.add("by-id", app_only_secret(seed::WEB_APP_SECRET)).await;
    let err = w
        .signin
        .token("by-id", None, Resource::Graph)
        .await
        .unwrap_err();
    assert_eq!(refused_code(&err), Some(7000215), "{err}");
    let Error::Auth(auth) = &err else {
        panic!("{err}")
    };
    assert!(
        auth.fix()
            .unwrap()
            .starts_with("copy the secret's Value (not its Secret ID)")
    );
    assert!(err.to_string().contains("correlation ID"), "{err}");
    assert!(!err.to_string().contains(seed::WEB_APP_SECRET), "{err}");

    w.add("expired", app_only_secret(seed::DAEMON_APP_SECRET))
        .await;
    w.mock.expire_secret(seed::DAEMON_APP);
    let err = w
        .signin
        .token("expired", None, Resource::Graph)
        .await
        .unwrap_err();
    assert_eq!(refused_code(&err), Some(7000222), "{err}");
    assert!(
        err.to_string().contains("the client secret has expired"),
        "{err}"
    );
}

#[tokio::test]
async fn browser_sign_in_links_the_account_and_state_is_single_use() {
    let w = World::new().await;
    w.add("contoso", delegated(seed::PUBLIC_APP)).await;
    w.mock.set_auto_approve(Some(seed::ADELE));
    let login = w
        .signin
        .start_browser_login("contoso", None, "http://localhost:50001", None)
        .await
        .unwrap();
    assert!(
        login.url.contains("code_challenge_method=S256"),
        "{}",
        login.url
    );
    assert!(login.url.contains("offline_access"), "{}", login.url);
    let params = w.browser_redirect(&login.url).await;
    assert_eq!(params.state.as_deref(), Some(login.state.as_str()));
    let account = w.signin.finish_browser_login(params.clone()).await.unwrap();
    assert_eq!(account.principal.as_str(), seed::ADELE);
    assert_eq!(account.mailbox.as_ref().unwrap().as_str(), seed::ADELE);
    assert_eq!(account.status, AccountStatus::Active);

    // The first access token came with the sign-in: no further request.
    let before = w.mock.token_requests();
    let token = w
        .signin
        .token("contoso", None, Resource::Graph)
        .await
        .unwrap();
    assert_eq!(claims(token.secret.expose())["upn"], seed::ADELE);
    assert_eq!(w.mock.token_requests(), before);

    let err = w.signin.finish_browser_login(params).await.unwrap_err();
    assert!(err.to_string().contains("already used state"), "{err}");
}

#[tokio::test]
async fn device_code_sign_in() {
    let w = World::new().await;
    w.add(
        "device",
        ConnectionSpec {
            flow: Some("device-code".into()),
            ..delegated(seed::PUBLIC_APP)
        },
    )
    .await;
    w.mock.set_device_code_interval(0);
    let login = w.signin.start_device_login("device").await.unwrap();
    let code = login.authorization.user_code.clone();
    w.mock.approve_device_code(&code, seed::MEGAN).unwrap();
    let account = w
        .signin
        .finish_device_login(login, Some("megan-in-app".parse().unwrap()))
        .await
        .unwrap();
    assert_eq!(account.principal.as_str(), "megan-in-app");
    assert_eq!(account.mailbox.unwrap().as_str(), seed::MEGAN);
}

#[tokio::test]
async fn device_code_declined_and_public_flows_disabled() {
    let w = World::new().await;
    w.add(
        "device",
        ConnectionSpec {
            flow: Some("device-code".into()),
            ..delegated(seed::PUBLIC_APP)
        },
    )
    .await;
    w.mock.set_device_code_interval(0);
    let login = w.signin.start_device_login("device").await.unwrap();
    w.mock
        .decline_device_code(&login.authorization.user_code)
        .unwrap();
    let err = w.signin.finish_device_login(login, None).await.unwrap_err();
    assert!(
        matches!(&err, Error::Auth(AuthError::Refused { body, .. }) if body.error == "authorization_declined"),
        "{err}"
    );

    w.mock.set_public_client_flows(seed::PUBLIC_APP, false);
    let login = w.signin.start_device_login("device").await.unwrap();
    w.mock
        .approve_device_code(&login.authorization.user_code, seed::ADELE)
        .unwrap();
    let err = w.signin.finish_device_login(login, None).await.unwrap_err();
    assert_eq!(refused_code(&err), Some(7000218), "{err}");
    let Error::Auth(auth) = &err else { panic!() };
    assert!(auth.fix().unwrap().contains("Allow public client flows"));
}

#[tokio::test]
async fn password_sign_in_and_mfa() {
    let w = World::new().await;
    w.add(
        "legacy",
        ConnectionSpec {
            flow: Some("password".into()),
            ..delegated(seed::PUBLIC_APP)
        },
    )
    .await;
    let account = w
        .signin
        .password_login(
            "legacy",
            None,
            seed::ADELE,
            &Secret::new(seed::ADELE_PASSWORD),
        )
        .await
        .unwrap();
    assert_eq!(account.principal.as_str(), seed::ADELE);

    let err = w
        .signin
        .password_login("legacy", None, seed::ADELE, &Secret::new("wrong"))
        .await
        .unwrap_err();
    assert_eq!(refused_code(&err), Some(50126), "{err}");

    w.mock.require_mfa(seed::MEGAN);
    let err = w
        .signin
        .password_login(
            "legacy",
            None,
            seed::MEGAN,
            &Secret::new(seed::MEGAN_PASSWORD),
        )
        .await
        .unwrap_err();
    assert_eq!(refused_code(&err), Some(50076), "{err}");
}

#[tokio::test]
async fn refresh_rotates_and_the_newest_refresh_token_is_kept() {
    let w = World::new().await;
    w.mock.set_token_lifetime(600);
    // Entra keeps an old refresh token valid after rotation; strict rotation refuses it, so
    // keeping the old one would fail here.
    w.mock.set_strict_rotation(true);
    w.add("contoso", delegated(seed::PUBLIC_APP)).await;
    w.sign_in_adele("contoso").await;
    let first = w
        .signin
        .token("contoso", None, Resource::Graph)
        .await
        .unwrap();
    let account = w
        .signin
        .resolve_account(
            &w.connections.get("contoso").await.unwrap().connection,
            None,
        )
        .await
        .unwrap();
    let rt1 = w
        .store
        .account_refresh_token(account.id)
        .await
        .unwrap()
        .unwrap();

    // Expired: the next call refreshes; the mock rotates strictly (the old refresh token dies).
    for round in 0..3 {
        w.clock.advance(Duration::from_secs(700));
        let t = w
            .signin
            .token("contoso", None, Resource::Graph)
            .await
            .unwrap();
        assert_ne!(t.secret, first.secret, "round {round}");
    }
    let rt_now = w
        .store
        .account_refresh_token(account.id)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(rt_now, rt1);

    // Another resource from the same refresh token.
    let smtp = w
        .signin
        .token("contoso", None, Resource::Smtp)
        .await
        .unwrap();
    let scp = claims(smtp.secret.expose())["scp"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(scp.split(' ').any(|s| s == "SMTP.Send"), "{scp}");
    assert_eq!(
        claims(smtp.secret.expose())["aud"],
        "https://outlook.office365.com"
    );
}

#[tokio::test]
async fn a_revoked_refresh_token_marks_only_that_account() {
    let w = World::new().await;
    w.mock.set_token_lifetime(600);
    w.add("contoso", delegated(seed::PUBLIC_APP)).await;
    w.sign_in_adele("contoso").await;
    w.mock.set_auto_approve(Some(seed::MEGAN));
    let login = w
        .signin
        .start_browser_login("contoso", None, "http://localhost:50001", None)
        .await
        .unwrap();
    let params = w.browser_redirect(&login.url).await;
    w.signin.finish_browser_login(params).await.unwrap();

    w.mock.revoke_refresh_tokens(seed::ADELE);
    w.clock.advance(Duration::from_secs(700));
    let adele: Principal = seed::ADELE.parse().unwrap();
    let megan: Principal = seed::MEGAN.parse().unwrap();
    let err = w
        .signin
        .token("contoso", Some(&adele), Resource::Graph)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), exgate_core::ErrorKind::NeedsSignIn, "{err}");
    assert!(err.to_string().contains("AADSTS70008"), "{err}");
    assert!(
        w.signin
            .token("contoso", Some(&megan), Resource::Graph)
            .await
            .is_ok()
    );

    let accounts = w.signin.accounts("contoso", None).await.unwrap();
    let status = |p: &str| {
        accounts
            .iter()
            .find(|a| a.principal.as_str() == p)
            .unwrap()
            .status
            .clone()
    };
    assert!(matches!(
        status(seed::ADELE),
        AccountStatus::NeedsSignIn { .. }
    ));
    assert_eq!(status(seed::MEGAN), AccountStatus::Active);

    // Later calls say so without asking Entra again.
    let before = w.mock.token_requests();
    let err = w
        .signin
        .token("contoso", Some(&adele), Resource::Graph)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), exgate_core::ErrorKind::NeedsSignIn);
    assert_eq!(w.mock.token_requests(), before);
}

#[tokio::test]
async fn a_thousand_callers_at_expiry_cause_one_token_request() {
    let w = Arc::new(World::new().await);
    w.add("daemon", app_only_secret(seed::DAEMON_APP_SECRET))
        .await;
    w.signin
        .token("daemon", None, Resource::Graph)
        .await
        .unwrap();
    w.clock.advance(Duration::from_secs(2 * 3600));
    w.mock.set_latency(Duration::from_millis(200));
    let before = w.mock.token_requests();
    let callers: Vec<_> = (0..1000)
        .map(|_| {
            let w = Arc::clone(&w);
            tokio::spawn(async move {
                w.signin
                    .token("daemon", None, Resource::Graph)
                    .await
                    .map(|t| t.secret.clone())
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for c in callers {
        tokens.push(c.await.unwrap().unwrap());
    }
    assert!(tokens.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(w.mock.token_requests() - before, 1);
}

#[tokio::test]
async fn a_token_endpoint_outage_does_not_interrupt_callers_while_the_token_is_valid() {
    let w = World::new().await;
    w.add("daemon", app_only_secret(seed::DAEMON_APP_SECRET))
        .await;
    let first = w
        .signin
        .token("daemon", None, Resource::Graph)
        .await
        .unwrap();
    // Due for refresh (refresh five minutes before expiry) but still valid.
    w.clock.advance(Duration::from_secs(3600 - 120));
    w.mock
        .fail_token_requests(Fault::ServerError { status: 503 }, 100);
    for _ in 0..20 {
        let t = w
            .signin
            .token("daemon", None, Resource::Graph)
            .await
            .unwrap();
        assert_eq!(t.secret, first.secret);
        tokio::task::yield_now().await;
    }
    w.mock
        .fail_token_requests(Fault::ServerError { status: 503 }, 0);
    // Past expiry there is no valid token to serve: the caller waits for a new one.
    w.clock.advance(Duration::from_secs(300));
    let t = w
        .signin
        .token("daemon", None, Resource::Graph)
        .await
        .unwrap();
    assert_ne!(t.secret, first.secret);
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_retried_within_retry_after() {
    let w = World::new().await;
    w.add("daemon", app_only_secret(seed::DAEMON_APP_SECRET))
        .await;
    w.mock.fail_token_requests(
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
        1,
    );
    let started = std::time::Instant::now();
    w.signin
        .token("daemon", None, Resource::Graph)
        .await
        .unwrap();
    assert_eq!(w.mock.token_requests(), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retried before Retry-After"
    );
}

#[tokio::test]
async fn missing_consent_and_unknown_tenant() {
    let w = World::new().await;
    w.add("contoso", delegated(seed::WEB_APP)).await;
    w.mock.revoke_consent(seed::WEB_APP);
    w.mock.set_auto_approve(Some(seed::ADELE));
    let login = w
        .signin
        .start_browser_login("contoso", None, "http://localhost:50001", None)
        .await
        .unwrap();
    let params = w.browser_redirect(&login.url).await;
    let err = w.signin.finish_browser_login(params).await.unwrap_err();
    assert_eq!(refused_code(&err), Some(65001), "{err}");

    w.add(
        "nowhere",
        ConnectionSpec {
            tenant: Some("fabrikam.onmicrosoft.com".into()),
            ..app_only_secret("x~y")
        },
    )
    .await;
    let err = w
        .signin
        .token("nowhere", None, Resource::Graph)
        .await
        .unwrap_err();
    assert_eq!(refused_code(&err), Some(90002), "{err}");
}

#[tokio::test]
async fn tokens_survive_a_restart_without_a_network_call() {
    let w = World::new().await;
    w.add("daemon", app_only_secret(seed::DAEMON_APP_SECRET))
        .await;
    let token = w
        .signin
        .token("daemon", None, Resource::Graph)
        .await
        .unwrap();
    let network = NetworkSettings {
        authority_host: Some(w.mock.base_url().parse().unwrap()),
        graph_url: None,
        ews_url: None,
        ca_pem: None,
        autodiscover_url: None,
        ..NetworkSettings::default()
    };
    let fresh = SignIn::new(
        w.store.clone(),
        w.connections.clone(),
        network,
        Arc::new(w.clock.clone()),
    )
    .unwrap();
    let again = fresh.token("daemon", None, Resource::Graph).await.unwrap();
    assert_eq!(again.secret, token.secret);
    assert_eq!(w.mock.token_requests(), 1);
}

#[tokio::test]
async fn over_tls_with_a_configured_ca() {
    let mock = MockMicrosoft::start_tls(Seed::contoso()).await.unwrap();
    let ca = mock.ca_pem().unwrap().into_bytes();
    let w = World::with(mock, Some(ca)).await;
    assert!(w.mock.base_url().starts_with("https://"));
    w.add("daemon", app_only_secret(seed::DAEMON_APP_SECRET))
        .await;
    w.signin
        .token("daemon", None, Resource::Graph)
        .await
        .unwrap();

    let untrusted = MockMicrosoft::start_tls(Seed::contoso()).await.unwrap();
    let w = World::with(untrusted, None).await;
    w.add("daemon", app_only_secret(seed::DAEMON_APP_SECRET))
        .await;
    let err = w
        .signin
        .token("daemon", None, Resource::Graph)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Auth(AuthError::Transport { .. })),
        "{err}"
    );
}

#[tokio::test]
async fn a_custom_authority_by_discovery_and_an_http_token_url_is_refused() {
    let w = World::new().await;
    let spec = ConnectionSpec {
        authority: Some(w.mock.discovery_url(seed::TENANT_ID)),
        ..app_only_secret(seed::DAEMON_APP_SECRET)
    };
    w.add("oidc", spec).await;
    w.signin.token("oidc", None, Resource::Graph).await.unwrap();

    // A provider whose discovery document names a plain-http token endpoint.
    let router = axum::Router::new().route(
        "/.well-known/openid-configuration",
        axum::routing::get(|| async {
            axum::Json(serde_json::json!({
                "issuer": "http://idp.example.com",
                "authorization_endpoint": "https://idp.example.com/authorize",
                "token_endpoint": "http://idp.example.com/token"
            }))
        }),
    );
    let idp = exgate_testkit::MockServer::start(router).await.unwrap();
    let spec = ConnectionSpec {
        authority: Some(format!(
            "{}/.well-known/openid-configuration",
            idp.base_url()
        )),
        ..app_only_secret(seed::DAEMON_APP_SECRET)
    };
    w.add("plain", spec).await;
    let err = w
        .signin
        .token("plain", None, Resource::Graph)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("token_endpoint"), "{text}");
    assert!(text.contains("http://"), "{text}");
    assert_eq!(idp.requests().len(), 1);
}

#[tokio::test]
async fn an_expired_device_code_is_reported() {
    let w = World::new().await;
    w.add(
        "device",
        ConnectionSpec {
            flow: Some("device-code".into()),
            ..delegated(seed::PUBLIC_APP)
        },
    )
    .await;
    w.mock.set_device_code_interval(0);
    let login = w.signin.start_device_login("device").await.unwrap();
    w.mock.advance_clock(Duration::from_secs(16 * 60));
    let err = w.signin.finish_device_login(login, None).await.unwrap_err();
    assert_eq!(refused_code(&err), Some(70019), "{err}");
    assert!(err.to_string().contains("the device code expired"), "{err}");
}

#[tokio::test]
async fn sovereign_clouds_sign_in_at_their_own_hosts() {
    use exgate_core::auth::Endpoints;
    for (cloud, host) in [
        ("global", "https://login.microsoftonline.com"),
        ("usgov", "https://login.microsoftonline.us"),
        ("china", "https://login.chinacloudapi.cn"),
    ] {
        let settings = ConnectionSpec {
            cloud: Some(cloud.into()),
            ..app_only_secret("a~b")
        }
        .validate()
        .unwrap();
        let http = reqwest::Client::new();
        let e = Endpoints::for_connection(&settings, &NetworkSettings::default(), &http)
            .await
            .unwrap();
        assert_eq!(
            e.token.as_str(),
            format!("{host}/{}/oauth2/v2.0/token", seed::TENANT_DOMAIN)
        );
        assert_eq!(
            e.device_authorization.unwrap().as_str(),
            format!("{host}/{}/oauth2/v2.0/devicecode", seed::TENANT_DOMAIN)
        );
    }
}

#[tokio::test]
async fn a_session_only_account_never_reaches_the_store() {
    let w = World::new().await;
    w.mock.set_token_lifetime(600);
    w.add("contoso", delegated(seed::PUBLIC_APP)).await;
    w.mock.set_auto_approve(Some(seed::ADELE));
    let login = w
        .signin
        .start_browser_session(
            "contoso",
            "u42".parse().unwrap(),
            "http://localhost:50001",
            None,
        )
        .await
        .unwrap();
    let params = w.browser_redirect(&login.url).await;
    let account = w.signin.finish_browser_login(params).await.unwrap();
    assert_eq!(
        account.credential,
        exgate_core::model::CredentialKind::Session
    );
    let u42: Principal = "u42".parse().unwrap();

    // It works, refreshes (with strict rotation, so the newest refresh token must be the one
    // kept) and is listed…
    w.mock.set_strict_rotation(true);
    let first = w
        .signin
        .token("contoso", Some(&u42), Resource::Graph)
        .await
        .unwrap();
    w.clock.advance(Duration::from_secs(700));
    let second = w
        .signin
        .token("contoso", Some(&u42), Resource::Graph)
        .await
        .unwrap();
    assert_ne!(first.secret, second.secret);
    w.clock.advance(Duration::from_secs(700));
    w.signin
        .token("contoso", Some(&u42), Resource::Graph)
        .await
        .unwrap();
    let listed = w.signin.accounts("contoso", None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].principal, u42);

    // …but the store holds neither the account nor its tokens.
    let conn = w.connections.get("contoso").await.unwrap().connection;
    assert!(w.store.accounts(conn.id).await.unwrap().is_empty());
    let db = std::fs::read(w._dir.path().join("exgate.db")).unwrap();
    let wal = std::fs::read(w._dir.path().join("exgate.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(3).any(|w| w == b"u42"),
            "the session account reached the store"
        );
    }

    // Reset and logout act on it; another process (a restart) does not know it.
    w.signin.reset("contoso", &u42).await.unwrap();
    let err = w
        .signin
        .token("contoso", Some(&u42), Resource::Graph)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), exgate_core::ErrorKind::NeedsSignIn);
    w.signin.logout("contoso", Some(&u42)).await.unwrap();
    assert!(w.signin.accounts("contoso", None).await.unwrap().is_empty());
    let network = NetworkSettings {
        authority_host: Some(w.mock.base_url().parse().unwrap()),
        graph_url: None,
        ews_url: None,
        ca_pem: None,
        autodiscover_url: None,
        ..NetworkSettings::default()
    };
    let restarted = SignIn::new(
        w.store.clone(),
        w.connections.clone(),
        network,
        Arc::new(w.clock.clone()),
    )
    .unwrap();
    assert!(
        restarted
            .accounts("contoso", None)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_accounts_last_use_is_recorded_when_its_token_is_used_to_the_minute() {
    let w = World::new().await;
    // The CLI's mode: the use is written before the token is answered.
    w.signin.cache().set_refresh(Refresh::Foreground);
    w.add("web", delegated(seed::PUBLIC_APP)).await;
    w.sign_in_adele("web").await;
    let last_used = || async {
        let accounts = w.signin.accounts("web", None).await.unwrap();
        accounts[0].last_used_at.unwrap()
    };
    let signed_in = last_used().await;
    w.signin.token("web", None, Resource::Graph).await.unwrap();
    assert_eq!(last_used().await, signed_in, "kept to the minute");

    // Served from the cache (an hour-long token), yet the use is recorded.
    w.clock.advance(Duration::from_secs(5 * 60));
    let requests = w.mock.token_requests();
    w.signin.token("web", None, Resource::Graph).await.unwrap();
    assert_eq!(w.mock.token_requests(), requests, "no refresh was needed");
    let used = last_used().await;
    assert_eq!(used - signed_in, time::Duration::minutes(5));

    w.clock.advance(Duration::from_secs(30));
    w.signin.token("web", None, Resource::Graph).await.unwrap();
    assert_eq!(
        last_used().await,
        used,
        "not written again within the minute"
    );
}

#[tokio::test]
async fn a_fresh_token_is_served_without_reading_the_store() {
    let w = World::new().await;
    w.add("web", delegated(seed::PUBLIC_APP)).await;
    w.add("daemon", app_only_secret(seed::DAEMON_APP_SECRET))
        .await;
    w.sign_in_adele("web").await;
    let adele: Principal = seed::ADELE.parse().unwrap();
    // The first lookups read the connection and the account (and the app's stored token).
    w.signin
        .token("web", Some(&adele), Resource::Graph)
        .await
        .unwrap();
    w.signin.token("web", None, Resource::Graph).await.unwrap();
    w.signin
        .token("daemon", None, Resource::Graph)
        .await
        .unwrap();
    w.counting.take();

    // Five minutes on: the tokens are fresh, the use must be recorded (once).
    w.clock.advance(Duration::from_secs(5 * 60));
    for _ in 0..3 {
        w.signin
            .token("web", Some(&adele), Resource::Graph)
            .await
            .unwrap();
        w.signin.token("web", None, Resource::Graph).await.unwrap();
        w.signin
            .token("daemon", None, Resource::Graph)
            .await
            .unwrap();
    }
    // The gateway writes the use in a task of its own; let it run.
    for _ in 0..1000 {
        if w.counting.calls_of("touch_account") > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(
        w.counting.take(),
        ["touch_account"],
        "nine fresh lookups: one write of the last use, nothing read"
    );
    w.clock.advance(Duration::from_secs(30));
    w.signin
        .token("web", Some(&adele), Resource::Graph)
        .await
        .unwrap();
    w.signin
        .token("daemon", None, Resource::Graph)
        .await
        .unwrap();
    assert_eq!(
        w.counting.take(),
        Vec::<&str>::new(),
        "nothing within the minute"
    );

    // A reset through this process is seen at once, without waiting for the cache to expire.
    w.signin.reset("web", &adele).await.unwrap();
    let err = w
        .signin
        .token("web", Some(&adele), Resource::Graph)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), exgate_core::ErrorKind::NeedsSignIn, "{err}");
    w.sign_in_adele("web").await;
    w.signin.token("web", None, Resource::Graph).await.unwrap();
}

// ---- A standards-following OpenID provider (the mock's generic OIDC mode, not Entra) ----

use exgate_testkit::oidc::{IdTokenFault, PORTAL_CLIENT, RESOURCE, SERVICE_CLIENT, SERVICE_SECRET};

/// A delegated connection to the generic provider, whose client IDs are not GUIDs.
fn generic_delegated(w: &World, client: &str) -> ConnectionSpec {
    ConnectionSpec {
        tenant: Some(seed::TENANT_ID.into()),
        auth: Some("oauth2-delegated".into()),
        client_id: Some(client.into()),
        authority: Some(w.mock.enable_generic_oidc()),
        resource: Some(RESOURCE.into()),
        ..ConnectionSpec::default()
    }
}

fn url_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn generic_oidc_client_credentials_take_a_non_guid_client_id_and_send_the_resource() {
    let w = World::new().await;
    let discovery = w.mock.enable_generic_oidc();
    let spec = ConnectionSpec {
        tenant: Some(seed::TENANT_ID.into()),
        auth: Some("oauth2-app-only".into()),
        client_id: Some(SERVICE_CLIENT.into()),
        client_secret: Some(Secret::new(SERVICE_SECRET)),
        authority: Some(discovery),
        resource: Some(RESOURCE.into()),
        ..ConnectionSpec::default()
    };
    w.add("portal", spec.clone()).await;
    let token = w
        .signin
        .token("portal", None, Resource::Graph)
        .await
        .unwrap();
    let c = claims(token.secret.expose());
    assert_eq!(c["aud"], RESOURCE, "{c}");
    assert_eq!(c["client_id"], SERVICE_CLIENT, "{c}");
    let sent = w.mock.oidc().requests_to("token");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].get("grant_type"), Some("client_credentials"));
    assert_eq!(sent[0].get("resource"), Some(RESOURCE));

    // The same client ID for Entra ID is refused: Entra's client IDs are GUIDs.
    let entra = ConnectionSpec {
        authority: None,
        resource: None,
        ..spec.clone()
    };
    let err = w.connections.add("entra", &entra).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("client_id"), "{text}");
    assert!(text.contains("GUID"), "{text}");
    // And a resource indicator is for custom authorities only.
    let entra = ConnectionSpec {
        authority: None,
        client_id: Some(seed::DAEMON_APP.into()),
        ..spec
    };
    let err = w.connections.add("entra", &entra).await.unwrap_err();
    assert!(err.to_string().contains("resource"), "{err}");
}

#[tokio::test]
async fn generic_oidc_a_resource_the_provider_does_not_serve_is_invalid_target() {
    let w = World::new().await;
    let discovery = w.mock.enable_generic_oidc();
    let spec = ConnectionSpec {
        tenant: Some(seed::TENANT_ID.into()),
        auth: Some("oauth2-app-only".into()),
        client_id: Some(SERVICE_CLIENT.into()),
        client_secret: Some(Secret::new(SERVICE_SECRET)),
        authority: Some(discovery),
        resource: Some("https://elsewhere.test/api".into()),
        ..ConnectionSpec::default()
    };
    w.add("portal", spec).await;
    let err = w
        .signin
        .token("portal", None, Resource::Graph)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not served here"), "{err}");
    match &err {
        Error::Auth(AuthError::Refused { body, .. }) => assert_eq!(body.error, "invalid_target"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn generic_oidc_browser_sign_in_asks_consent_with_a_nonce_and_refresh_sends_no_new_scope() {
    let w = World::new().await;
    let spec = generic_delegated(&w, PORTAL_CLIENT);
    w.add("portal", spec).await;
    let oidc = w.mock.oidc();
    oidc.set_auto_approve(Some(seed::ADELE));
    let login = w
        .signin
        .start_browser_login("portal", None, "http://localhost:50001", None)
        .await
        .unwrap();
    // OIDC Core §11: offline_access needs prompt=consent; a nonce binds the ID token.
    assert_eq!(
        url_param(&login.url, "prompt").as_deref(),
        Some("consent"),
        "{}",
        login.url
    );
    let nonce = url_param(&login.url, "nonce").expect("a nonce");
    assert!(nonce.len() >= 16, "{nonce}");
    assert_eq!(url_param(&login.url, "resource").as_deref(), Some(RESOURCE));
    assert_eq!(
        url_param(&login.url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let params = w.browser_redirect(&login.url).await;
    let account = w.signin.finish_browser_login(params).await.unwrap();
    assert_eq!(account.principal.as_str(), seed::ADELE);
    let authorize = oidc.requests_to("authorize");
    assert_eq!(authorize.len(), 1);
    assert_eq!(authorize[0].get("prompt"), Some("consent"));
    assert_eq!(authorize[0].get("nonce"), Some(nonce.as_str()));
    let exchange = oidc.requests_to("token");
    assert_eq!(exchange[0].get("grant_type"), Some("authorization_code"));
    assert_eq!(exchange[0].get("resource"), Some(RESOURCE));
    let granted: Vec<String> = authorize[0]
        .get("scope")
        .unwrap()
        .split(' ')
        .map(str::to_owned)
        .collect();

    let first = w
        .signin
        .token("portal", None, Resource::Graph)
        .await
        .unwrap();
    assert_eq!(claims(first.secret.expose())["aud"], RESOURCE);

    // Past the access token's lifetime: refreshed twice (the provider rotates refresh tokens).
    for round in 0..2 {
        w.clock.advance(Duration::from_secs(2 * 3600));
        let t = w
            .signin
            .token("portal", None, Resource::Graph)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_ne!(t.secret, first.secret);
        assert_eq!(claims(t.secret.expose())["aud"], RESOURCE);
    }
    let refreshes: Vec<_> = oidc
        .requests_to("token")
        .into_iter()
        .filter(|r| r.get("grant_type") == Some("refresh_token"))
        .collect();
    assert_eq!(refreshes.len(), 2);
    for r in &refreshes {
        // RFC 6749 §6: no scope beyond the original grant (here: none at all).
        if let Some(scope) = r.get("scope") {
            assert!(
                scope.split(' ').all(|s| granted.iter().any(|g| g == s)),
                "{scope}"
            );
        }
        assert_eq!(r.get("resource"), Some(RESOURCE));
        assert_eq!(r.get("client_id"), Some(PORTAL_CLIENT));
    }
}

#[tokio::test]
async fn generic_oidc_device_code_sign_in_and_refresh() {
    let w = World::new().await;
    let spec = ConnectionSpec {
        flow: Some("device-code".into()),
        ..generic_delegated(&w, PORTAL_CLIENT)
    };
    w.add("device", spec).await;
    let oidc = w.mock.oidc();
    oidc.set_device_interval(0);
    let login = w.signin.start_device_login("device").await.unwrap();
    oidc.approve_device_code(&login.authorization.user_code, seed::MEGAN)
        .unwrap();
    let account = w.signin.finish_device_login(login, None).await.unwrap();
    assert_eq!(account.principal.as_str(), seed::MEGAN);
    let started = oidc.requests_to("device_authorization");
    assert_eq!(started[0].get("resource"), Some(RESOURCE));
    assert_eq!(started[0].get("client_id"), Some(PORTAL_CLIENT));

    w.clock.advance(Duration::from_secs(2 * 3600));
    let t = w
        .signin
        .token("device", None, Resource::Graph)
        .await
        .unwrap();
    assert_eq!(claims(t.secret.expose())["aud"], RESOURCE);
    let last = oidc.requests_to("token").pop().unwrap();
    assert_eq!(last.get("grant_type"), Some("refresh_token"));
    assert_eq!(last.get("scope"), None);
}

#[tokio::test]
async fn generic_oidc_id_tokens_that_fail_validation_sign_nobody_in() {
    let w = World::new().await;
    w.add("portal", generic_delegated(&w, PORTAL_CLIENT)).await;
    let oidc = w.mock.oidc();
    oidc.set_auto_approve(Some(seed::ADELE));
    for (fault, why) in [
        (IdTokenFault::WrongNonce, "nonce"),
        (IdTokenFault::WrongAudience, "audience"),
        (IdTokenFault::WrongIssuer, "issuer"),
        (IdTokenFault::Expired, "expired"),
        (IdTokenFault::BadSignature, "signature"),
        (IdTokenFault::Unsigned, "unsigned"),
    ] {
        oidc.set_id_token_fault(Some(fault));
        let login = w
            .signin
            .start_browser_login("portal", None, "http://localhost:50001", None)
            .await
            .unwrap();
        let params = w.browser_redirect(&login.url).await;
        let err = w.signin.finish_browser_login(params).await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, Error::Auth(AuthError::IdToken(_))),
            "{fault:?}: {err:?}"
        );
        assert!(text.contains(why), "{fault:?}: {text}");
        assert!(text.contains("ID token"), "{fault:?}: {text}");
        if let Error::Auth(auth) = &err {
            assert!(auth.fix().unwrap().contains("client_id"), "{fault:?}");
        }
        // Never the token itself (a JWT starts with the base64 of `{"`).
        assert!(!text.contains("eyJ"), "{fault:?}: {text}");
        assert!(
            w.signin.accounts("portal", None).await.unwrap().is_empty(),
            "{fault:?}"
        );
    }
    oidc.set_id_token_fault(None);
    w.sign_in_with(&oidc, "portal").await;
    assert_eq!(w.signin.accounts("portal", None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn entra_sign_ins_send_a_nonce_and_validate_the_id_token_of_a_multi_tenant_authority() {
    let w = World::new().await;
    w.add(
        "multi",
        ConnectionSpec {
            tenant: Some("organizations".into()),
            ..delegated(seed::PUBLIC_APP)
        },
    )
    .await;
    w.mock.set_auto_approve(Some(seed::ADELE));
    let login = w
        .signin
        .start_browser_login("multi", None, "http://localhost:50001", None)
        .await
        .unwrap();
    assert!(url_param(&login.url, "nonce").is_some(), "{}", login.url);
    // Entra's requests stay as they were: no prompt, no resource.
    assert_eq!(url_param(&login.url, "prompt"), None);
    assert_eq!(url_param(&login.url, "resource"), None);
    let params = w.browser_redirect(&login.url).await;
    let account = w.signin.finish_browser_login(params).await.unwrap();
    assert_eq!(account.principal.as_str(), seed::ADELE);
}
