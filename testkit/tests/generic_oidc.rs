//! The generic OpenID provider keeps the standards' rules, not Entra's habits: these are what
//! exgate's custom-authority tests rely on to fail when exgate does not follow them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};
use exgate_testkit::oidc::{PORTAL_CLIENT, RESOURCE, SERVICE_CLIENT, SERVICE_SECRET};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

const REDIRECT: &str = "http://localhost:50001/";
const VERIFIER: &str = "a-code-verifier-that-is-long-enough-for-rfc-7636-0123456789";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn query(location: &str, name: &str) -> Option<String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Signs Adele in (auto-approve) with `extra` authorization parameters; returns the redirect.
async fn authorize(mock: &MockMicrosoft, extra: &[(&str, &str)]) -> String {
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()));
    let mut url = url::Url::parse(&format!("{}/authorize", mock.oidc().issuer())).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", PORTAL_CLIENT)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("state", "s1")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    for (k, v) in extra {
        url.query_pairs_mut().append_pair(k, v);
    }
    let resp = http().get(url).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    resp.headers()["location"].to_str().unwrap().to_owned()
}

async fn token(mock: &MockMicrosoft, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = http()
        .post(format!("{}/token", mock.oidc().issuer()))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn redeem(mock: &MockMicrosoft, location: &str) -> Value {
    let code = query(location, "code").expect("a code");
    let (status, body) = token(
        mock,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", PORTAL_CLIENT),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn started() -> MockMicrosoft {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    mock.enable_generic_oidc();
    mock.oidc().set_auto_approve(Some(seed::ADELE));
    mock
}

#[tokio::test]
async fn off_until_enabled() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let discovery = mock.oidc().discovery_url();
    assert_eq!(reqwest::get(&discovery).await.unwrap().status(), 404);
    assert_eq!(mock.enable_generic_oidc(), discovery);
    let doc: Value = reqwest::get(&discovery)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], mock.oidc().issuer());
    assert!(
        doc["jwks_uri"]
            .as_str()
            .unwrap()
            .starts_with(&mock.oidc().issuer())
    );
}

#[tokio::test]
async fn offline_access_gives_a_refresh_token_only_with_prompt_consent() {
    let mock = started().await;
    let scope = "openid profile offline_access";
    let without = authorize(&mock, &[("scope", scope), ("nonce", "n1")]).await;
    let body = redeem(&mock, &without).await;
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(body.get("client_info").is_none(), "{body}");

    let with = authorize(
        &mock,
        &[("scope", scope), ("nonce", "n2"), ("prompt", "consent")],
    )
    .await;
    assert_eq!(query(&with, "state").as_deref(), Some("s1"));
    let body = redeem(&mock, &with).await;
    let refresh = body["refresh_token"].as_str().expect("a refresh token");
    let id: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(
                body["id_token"]
                    .as_str()
                    .unwrap()
                    .split('.')
                    .nth(1)
                    .unwrap(),
            )
            .unwrap(),
    )
    .unwrap();
    assert_eq!(id["nonce"], "n2");
    assert_eq!(id["aud"], PORTAL_CLIENT);
    assert_eq!(id["iss"], mock.oidc().issuer());

    // RFC 6749 §6: a scope beyond the grant is invalid_scope, in plain RFC 6749 JSON.
    let (status, err) = token(
        &mock,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", PORTAL_CLIENT),
            ("refresh_token", refresh),
            ("scope", "openid https://graph.microsoft.com/Mail.Read"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(err["error"], "invalid_scope");
    assert!(err.get("error_codes").is_none(), "{err}");
    // Without a scope: the original grant.
    let (status, body) = token(
        &mock,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", PORTAL_CLIENT),
            ("refresh_token", refresh),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], scope);
}

#[tokio::test]
async fn public_clients_need_pkce_s256_and_resources_must_be_served() {
    let mock = started().await;
    let mut url = url::Url::parse(&format!("{}/authorize", mock.oidc().issuer())).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", PORTAL_CLIENT)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid");
    let resp = http().get(url).send().await.unwrap();
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        query(&location, "error").as_deref(),
        Some("invalid_request")
    );

    let unknown = authorize(
        &mock,
        &[("scope", "openid"), ("resource", "https://elsewhere.test")],
    )
    .await;
    assert_eq!(query(&unknown, "error").as_deref(), Some("invalid_target"));

    let (status, body) = token(
        &mock,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", SERVICE_CLIENT),
            ("client_secret", SERVICE_SECRET),
            ("resource", RESOURCE),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let access: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(
                body["access_token"]
                    .as_str()
                    .unwrap()
                    .split('.')
                    .nth(1)
                    .unwrap(),
            )
            .unwrap(),
    )
    .unwrap();
    assert_eq!(access["aud"], RESOURCE);
    let (status, body) = token(
        &mock,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", SERVICE_CLIENT),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    // Entra's password grant is no grant here.
    let (status, body) = token(
        &mock,
        &[
            ("grant_type", "password"),
            ("client_id", PORTAL_CLIENT),
            ("username", seed::ADELE),
            ("password", seed::ADELE_PASSWORD),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "unsupported_grant_type");
}
