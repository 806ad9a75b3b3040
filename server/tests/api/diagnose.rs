//! `POST /api/v1/connections/{c}/test`: every step a real probe against the mock, or skipped
//! with why; `ok` only when every step ran and passed.

use axum::http::StatusCode;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};
use serde_json::{Value, json};

use crate::{AppOnly, Gateway, Home, assert_shape, document};

/// The test's answer for `connection` with `body`, checked against the documented shape.
async fn test(gw: &Gateway, connection: &str, body: Value) -> Value {
    let (status, report) = gw
        .admin(
            "POST",
            &format!("/api/v1/connections/{connection}/test"),
            body,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_shape(&document(), "Report", &report);
    for check in report["checks"].as_array().unwrap() {
        assert_shape(&document(), "Check", check);
    }
    report
}

/// `(name, status)` of each step, in order.
fn steps(report: &Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn expect(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {report}"))
}

#[tokio::test]
async fn app_only_with_the_right_permissions_passes_every_step() {
    let t = AppOnly::start().await;
    let report = test(&t.gw, "contoso", json!({ "mailbox": seed::ADELE })).await;
    assert_eq!(report["connection"], "contoso");
    assert_eq!(
        steps(&report),
        expect(&[
            ("network", "passed"),
            ("identity provider", "passed"),
            ("clock", "passed"),
            ("credentials", "passed"),
            ("token claims", "passed"),
            ("mailbox", "passed"),
        ]),
        "{report}"
    );
    assert_eq!(report["ok"], true, "{report}");
    let idp = check(&report, "identity provider")["evidence"]
        .as_str()
        .unwrap();
    assert!(
        idp.contains(".well-known/openid-configuration: HTTP 200"),
        "{idp}"
    );
    assert!(idp.contains(&format!("/{}/v2.0", seed::TENANT_ID)), "{idp}");
    let claims = check(&report, "token claims")["evidence"].as_str().unwrap();
    assert!(
        claims.contains("aud https://graph.microsoft.com"),
        "{claims}"
    );
    assert!(
        claims.contains(&format!("tid {}", seed::TENANT_ID)),
        "{claims}"
    );
    assert!(
        claims.contains("roles ") && claims.contains("Mail.ReadWrite"),
        "{claims}"
    );
    let mailbox = check(&report, "mailbox")["evidence"].as_str().unwrap();
    assert!(
        mailbox.contains(seed::ADELE) && mailbox.contains("mail folder"),
        "{mailbox}"
    );
    // The probe of the credentials asked the identity provider for a new token.
    let before = t.mock.token_requests();
    test(&t.gw, "contoso", json!({ "mailbox": seed::ADELE })).await;
    assert!(t.mock.token_requests() > before);

    // The query's mailbox still works; without any mailbox the mailbox step is skipped, so the
    // report is not ok.
    let (status, by_query) =
        t.gw.admin(
            "POST",
            &format!("/api/v1/connections/contoso/test?mailbox={}", seed::ADELE),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_query["ok"], true, "{by_query}");
    let report = test(&t.gw, "contoso", Value::Null).await;
    assert_eq!(report["ok"], false, "{report}");
    let skipped = check(&report, "mailbox");
    assert_eq!(skipped["status"], "skipped");
    assert!(
        skipped["evidence"]
            .as_str()
            .unwrap()
            .contains("an app-only connection has no mailbox of its own"),
        "{report}"
    );
    // Bad input is an error, not a report.
    let (status, body) =
        t.gw.admin(
            "POST",
            "/api/v1/connections/contoso/test",
            json!({ "mailbox": "not-an-address" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) =
        t.gw.admin(
            "POST",
            "/api/v1/connections/contoso/test",
            json!({ "account": "adele" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // It is an admin route.
    let (status, _) =
        t.gw.call(
            "POST",
            "/api/v1/connections/contoso/test",
            &t.key,
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_wrong_secret_fails_the_credentials_with_the_aadsts_code_and_fix() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let home = Home::new();
    let gw = Gateway::mocked(&home, &mock).await;
    gw.connection(json!({
        "name": "wrong", "tenant": seed::TENANT_ID, "auth": "oauth2-app-only",
        "client_id": seed::DAEMON_APP, "client_secret": seed::WEB_APP_SECRET,
    }))
    .await;
    let report = test(&gw, "wrong", json!({ "mailbox": seed::ADELE })).await;
    assert_eq!(
        steps(&report),
        expect(&[
            ("network", "passed"),
            ("identity provider", "passed"),
            ("clock", "passed"),
            ("credentials", "failed"),
            ("token claims", "skipped"),
            ("mailbox", "skipped"),
        ]),
        "{report}"
    );
    assert_eq!(report["ok"], false);
    let credentials = check(&report, "credentials");
    assert!(
        credentials["evidence"]
            .as_str()
            .unwrap()
            .contains("AADSTS7000215"),
        "{report}"
    );
    let fix = credentials["fix"].as_str().unwrap();
    assert!(
        fix.contains("exgate connection edit wrong --client-secret-file FILE"),
        "{fix}"
    );
    assert!(
        !report.to_string().contains(seed::WEB_APP_SECRET),
        "the secret came back"
    );
}

#[tokio::test]
async fn a_missing_mail_permission_fails_the_claims_naming_it() {
    let mut no_mail = Seed::contoso();
    for app in no_mail
        .tenants
        .iter_mut()
        .flat_map(|t| t.apps.iter_mut())
        .filter(|a| a.client_id == seed::DAEMON_APP)
    {
        for roles in app.application_permissions.values_mut() {
            roles.retain(|r| !r.starts_with("Mail."));
        }
    }
    let mock = MockMicrosoft::start(no_mail).await.unwrap();
    let home = Home::new();
    let gw = Gateway::mocked(&home, &mock).await;
    gw.connection(json!({
        "name": "contoso", "tenant": seed::TENANT_ID, "auth": "oauth2-app-only",
        "client_id": seed::DAEMON_APP, "client_secret": seed::DAEMON_APP_SECRET,
    }))
    .await;
    let report = test(&gw, "contoso", json!({ "mailbox": seed::ADELE })).await;
    assert_eq!(report["ok"], false);
    let claims = check(&report, "token claims");
    assert_eq!(claims["status"], "failed", "{report}");
    assert!(
        claims["evidence"]
            .as_str()
            .unwrap()
            .contains("missing Mail.Read"),
        "{report}"
    );
    assert!(
        claims["fix"]
            .as_str()
            .unwrap()
            .contains("add the application permission Mail.Read (or Mail.ReadWrite)"),
        "{report}"
    );
    // The mailbox is still read, and Graph's refusal is the evidence.
    assert_eq!(check(&report, "mailbox")["status"], "failed", "{report}");
}

#[tokio::test]
async fn a_delegated_connection_without_an_account_says_how_to_sign_in() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let home = Home::new();
    let gw = Gateway::mocked(&home, &mock).await;
    gw.connection(json!({
        "name": "contoso", "tenant": seed::TENANT_ID, "auth": "oauth2-delegated",
        "client_id": seed::PUBLIC_APP,
    }))
    .await;
    let report = test(&gw, "contoso", Value::Null).await;
    assert_eq!(
        steps(&report),
        expect(&[
            ("network", "passed"),
            ("identity provider", "passed"),
            ("clock", "passed"),
            ("sign-in", "failed"),
            ("credentials", "skipped"),
            ("token claims", "skipped"),
            ("mailbox", "skipped"),
        ]),
        "{report}"
    );
    assert_eq!(report["ok"], false);
    // The CLI's app has only the loopback registered: the gateway's own redirect URI is not,
    // so users could not sign in through the gateway.
    let sign_in = check(&report, "sign-in");
    let evidence = sign_in["evidence"].as_str().unwrap();
    assert!(
        evidence.contains("AADSTS50011")
            && evidence.contains("/service/oauth2/authorize (the gateway's)")
            && evidence.contains("http://localhost (the CLI's loopback"),
        "{report}"
    );
    assert!(
        sign_in["fix"]
            .as_str()
            .unwrap()
            .contains(&format!("az ad app update --id {}", seed::PUBLIC_APP)),
        "{report}"
    );
    let credentials = check(&report, "credentials");
    assert!(
        credentials["evidence"]
            .as_str()
            .unwrap()
            .contains("no account has signed in"),
        "{report}"
    );
    assert!(
        credentials["fix"]
            .as_str()
            .unwrap()
            .contains("`exgate login -c contoso`"),
        "{report}"
    );
    // A named account that does not exist is a failure of that step.
    let report = test(&gw, "contoso", json!({ "account": "nobody" })).await;
    assert_eq!(
        check(&report, "credentials")["status"],
        "failed",
        "{report}"
    );
}

#[tokio::test]
async fn an_exchange_server_connection_is_probed_over_ews() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let home = Home::new();
    let gw = Gateway::new(home.state().await).await;
    for (name, password) in [
        ("onprem", seed::ADELE_PASSWORD),
        ("wrong", "not-the-password"),
    ] {
        gw.connection(json!({
            "name": name, "ews_url": mock.ews_url(),
            "auth": "ntlm", "username": seed::ADELE, "password": password,
        }))
        .await;
    }
    let report = test(&gw, "onprem", json!({ "mailbox": seed::SALES })).await;
    assert_eq!(
        steps(&report),
        expect(&[
            ("EWS endpoint", "passed"),
            ("authentication", "passed"),
            ("mailbox", "passed"),
            ("mailbox access", "passed"),
        ]),
        "{report}"
    );
    assert_eq!(report["ok"], true, "{report}");

    let report = test(&gw, "wrong", Value::Null).await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(
        steps(&report),
        expect(&[
            ("EWS endpoint", "passed"),
            ("authentication", "failed"),
            ("mailbox", "skipped"),
        ]),
        "{report}"
    );
    let auth = check(&report, "authentication");
    assert!(
        auth["evidence"].as_str().unwrap().contains("NTLM"),
        "{report}"
    );
    assert!(
        auth["fix"]
            .as_str()
            .unwrap()
            .contains("exgate connection edit wrong"),
        "{report}"
    );
    assert!(!report.to_string().contains("not-the-password"));
}

#[tokio::test]
async fn an_unreachable_identity_provider_fails_and_is_not_ok() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let home = Home::new();
    let state = home
        .state_with(
            "http://gateway.test",
            [(
                "EXGATE__ENDPOINTS__AUTHORITY_HOST",
                format!("http://{closed}"),
            )],
        )
        .await;
    let gw = Gateway::new(state).await;
    gw.connection(json!({
        "name": "contoso", "tenant": seed::TENANT_ID, "auth": "oauth2-app-only",
        "client_id": seed::DAEMON_APP, "client_secret": seed::DAEMON_APP_SECRET,
    }))
    .await;
    let report = test(&gw, "contoso", json!({ "mailbox": seed::ADELE })).await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(
        steps(&report),
        expect(&[
            ("network", "failed"),
            ("identity provider", "skipped"),
            ("clock", "skipped"),
            ("credentials", "skipped"),
            ("token claims", "skipped"),
            ("mailbox", "skipped"),
        ]),
        "{report}"
    );
    let network = check(&report, "network");
    let evidence = network["evidence"].as_str().unwrap();
    assert!(
        evidence.contains(&format!("identity provider {closed}"))
            && evidence.contains("TCP connection failed"),
        "{report}"
    );
    assert!(
        network["fix"]
            .as_str()
            .unwrap()
            .contains(&format!("port {}", closed.port())),
        "{report}"
    );
}

#[tokio::test]
async fn a_custom_authority_is_probed_by_its_discovery_url() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let home = Home::new();
    let gw = Gateway::mocked(&home, &mock).await;
    // By domain: Entra's issuer names the tenant by its ID, which is noted, not failed.
    gw.connection(json!({
        "name": "oidc", "tenant": seed::TENANT_ID, "auth": "oauth2-app-only",
        "client_id": seed::DAEMON_APP, "client_secret": seed::DAEMON_APP_SECRET,
        "authority": mock.discovery_url(seed::TENANT_DOMAIN),
    }))
    .await;
    let report = test(&gw, "oidc", json!({ "mailbox": seed::ADELE })).await;
    assert_eq!(report["ok"], true, "{report}");
    let idp = check(&report, "identity provider")["evidence"]
        .as_str()
        .unwrap();
    assert!(
        idp.contains(&mock.discovery_url(seed::TENANT_DOMAIN)),
        "{idp}"
    );
    assert!(idp.contains("the issuer's discovery URL would be"), "{idp}");

    // An authority that is not there: the identity provider's refusal is the evidence.
    gw.connection(json!({
        "name": "nowhere", "tenant": seed::TENANT_ID, "auth": "oauth2-app-only",
        "client_id": seed::DAEMON_APP, "client_secret": seed::DAEMON_APP_SECRET,
        "authority": mock.discovery_url("no-such-tenant.example"),
    }))
    .await;
    let report = test(&gw, "nowhere", Value::Null).await;
    assert_eq!(report["ok"], false, "{report}");
    let idp = check(&report, "identity provider");
    assert_eq!(idp["status"], "failed", "{report}");
    assert!(
        idp["evidence"].as_str().unwrap().contains("AADSTS90002"),
        "{report}"
    );
    assert_eq!(check(&report, "credentials")["status"], "skipped");
}

#[tokio::test]
async fn a_connection_created_with_autodiscover_gets_its_ews_url() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let home = Home::new();
    let gw = Gateway::new(
        home.state_with(
            "http://gateway.test",
            [(
                "EXGATE__ENDPOINTS__AUTODISCOVER_URL",
                mock.autodiscover_url(),
            )],
        )
        .await,
    )
    .await;
    let created = gw
        .connection(json!({
            "name": "onprem", "autodiscover": seed::ADELE,
            "auth": "basic", "username": seed::ADELE, "password": seed::ADELE_PASSWORD,
        }))
        .await;
    assert!(created.to_string().contains(&mock.ews_url()), "{created}");
    let report = test(&gw, "onprem", Value::Null).await;
    assert_eq!(report["ok"], true, "{report}");

    // A redirect to a host outside the domain: refused, naming the host and `trust_hosts`,
    // and the other host hears nothing.
    let hostile = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    mock.change_ews_switches(&exgate_testkit::ews::EwsSwitchChange {
        autodiscover_redirect: Some(Some(exgate_testkit::ews::AutodiscoverRedirect::Url {
            url: hostile.autodiscover_url(),
        })),
        ..Default::default()
    })
    .unwrap();
    let (status, body) = gw
        .admin(
            "POST",
            "/api/v1/connections",
            json!({
                "name": "evil", "autodiscover": seed::ADELE,
                "auth": "basic", "username": seed::ADELE, "password": seed::ADELE_PASSWORD,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["code"], "autodiscover_failed", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("trust_hosts"),
        "{body}"
    );
    assert!(hostile.autodiscover_requests().is_empty());
    assert!(!body.to_string().contains(seed::ADELE_PASSWORD));
}
