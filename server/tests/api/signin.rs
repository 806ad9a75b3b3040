//! Sign-in for applications: a browser login has a login ID and a status route.

use axum::http::StatusCode;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};
use serde_json::{Value, json};

use crate::{Gateway, Home, PUBLIC_URL, assert_shape, document, html_page};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_follows_a_browser_sign_in_by_its_login_id() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let home = Home::new();
    let gw = Gateway::mocked(&home, &mock).await;
    for name in ["web", "other"] {
        gw.connection(json!({
            "name": name, "tenant": seed::TENANT_ID, "auth": "oauth2-delegated",
            "client_id": seed::WEB_APP, "client_secret": seed::WEB_APP_SECRET,
        }))
        .await;
    }
    let key = gw.app_key("portal", &["web"]).await;
    let other_key = gw.app_key("elsewhere", &["other"]).await;
    let start = || async {
        let (status, login) = gw
            .call(
                "POST",
                "/api/v1/connections/web/logins",
                &key,
                json!({ "principal": "u42" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{login}");
        assert_shape(&document(), "LoginStarted", &login);
        login
    };

    // Started: a login ID and its status route, pending until the browser returns.
    let login = start().await;
    let id = login["login_id"].as_str().unwrap().to_owned();
    let status_url = login["status_url"].as_str().unwrap().to_owned();
    assert_eq!(status_url, format!("/api/v1/connections/web/logins/{id}"));
    let (status, pending) = gw.call("GET", &status_url, &key, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{pending}");
    assert_eq!(pending["status"], "pending");
    // Not through another connection's route.
    let (status, body) = gw
        .call(
            "GET",
            &format!("/api/v1/connections/other/logins/{id}"),
            &other_key,
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // The user completes it: signed in, with the mailbox.
    mock.set_auto_approve(Some(seed::ADELE));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http
        .get(login["authorization_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let (status, html) = html_page(&gw, location.strip_prefix(PUBLIC_URL).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let (status, done) = gw.call("GET", &status_url, &key, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "signed_in", "{done}");
    assert_eq!(done["principal"], "u42");
    assert_eq!(done["mailbox"], seed::ADELE);
    assert_shape(&document(), "LoginStatus", &done);

    // One the user refuses: failed, with the reason.
    let login = start().await;
    let url = reqwest::Url::parse(login["authorization_url"].as_str().unwrap()).unwrap();
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let (status, _) = html_page(
        &gw,
        &format!(
            "/service/oauth2/authorize?error=access_denied&error_description=AADSTS65004&state={state}"
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, failed) = gw
        .call(
            "GET",
            login["status_url"].as_str().unwrap(),
            &key,
            Value::Null,
        )
        .await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("AADSTS65004"),
        "{failed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_sign_in_returns_the_user_to_an_allowed_return_url_only() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let home = Home::new();
    let gw = Gateway::mocked(&home, &mock).await;
    gw.connection(json!({
        "name": "web", "tenant": seed::TENANT_ID, "auth": "oauth2-delegated",
        "client_id": seed::WEB_APP, "client_secret": seed::WEB_APP_SECRET,
        "return_urls": ["https://portal.contoso.com/exchange/"],
    }))
    .await;
    let key = gw.app_key("portal", &["web"]).await;
    let start = |return_url: &str, method: &str| {
        let body = json!({ "principal": "u42", "return_url": return_url, "method": method });
        let key = key.clone();
        let gw = &gw;
        async move {
            gw.call("POST", "/api/v1/connections/web/logins", &key, body)
                .await
        }
    };

    // Refused, each with the same clear error and nothing started: another host, a look-alike
    // host, user info, another scheme, a path beside the allowed one, a path that climbs out.
    for bad in [
        "https://evil.example/exchange/",
        "https://portal.contoso.com.evil.example/exchange/",
        "https://portal.contoso.com@evil.example/exchange/",
        "http://portal.contoso.com/exchange/",
        "https://portal.contoso.com:8443/exchange/",
        "https://portal.contoso.com/exchange-other",
        "https://portal.contoso.com/exchange/../admin",
        "javascript:alert(1)",
        "/exchange/relative",
    ] {
        let (status, body) = start(bad, "browser").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["code"], "invalid_input", "{bad}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("return_url"),
            "{bad}: {body}"
        );
    }
    let (status, body) = start("https://portal.contoso.com/exchange/x", "device_code").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Allowed: after the callback the browser goes back with the login ID and how it ended.
    let (status, login) = start(
        "https://portal.contoso.com/exchange/linked?tab=mail",
        "browser",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{login}");
    let id = login["login_id"].as_str().unwrap();
    mock.set_auto_approve(Some(seed::ADELE));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http
        .get(login["authorization_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let resp = gw
        .send(
            "GET",
            location.strip_prefix(PUBLIC_URL).unwrap(),
            None,
            Value::Null,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
    let back = resp.headers()["location"].to_str().unwrap();
    assert_eq!(
        back,
        format!(
            "https://portal.contoso.com/exchange/linked?tab=mail&login_id={id}&status=signed_in"
        )
    );
    let (_, done) = gw
        .call(
            "GET",
            login["status_url"].as_str().unwrap(),
            &key,
            Value::Null,
        )
        .await;
    assert_eq!(done["status"], "signed_in", "{done}");

    // A refusal goes back too, saying only that it failed.
    let (_, login) = start("https://portal.contoso.com/exchange/", "browser").await;
    let url = reqwest::Url::parse(login["authorization_url"].as_str().unwrap()).unwrap();
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let resp = gw
        .send(
            "GET",
            &format!("/service/oauth2/authorize?error=access_denied&error_description=%3Cscript%3E&state={state}"),
            None,
            Value::Null,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let back = resp.headers()["location"].to_str().unwrap();
    assert!(back.ends_with("&status=failed"), "{back}");
    assert!(!back.contains("script"), "{back}");

    // The connection shows its allow-list.
    let (_, shown) = gw
        .admin("GET", "/api/v1/connections/web", Value::Null)
        .await;
    assert_eq!(
        shown["auth"]["return_urls"],
        json!(["https://portal.contoso.com/exchange/"])
    );
}
