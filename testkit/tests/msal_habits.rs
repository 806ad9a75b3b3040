//! What real clients (MSAL above all) send, and what Entra answers them: the mock must answer
//! the same, or an application that works against Entra fails against the mock.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::Seed;
use exgate_testkit::entra::seed::*;
use exgate_testkit::fixtures::{APP_CERT_PEM, APP_KEY_PEM};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

async fn mock() -> MockMicrosoft {
    MockMicrosoft::start(Seed::contoso()).await.unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

struct Answer {
    status: StatusCode,
    body: Value,
}

async fn token(m: &MockMicrosoft, form: &[(&str, &str)]) -> Answer {
    let response = http()
        .post(m.token_endpoint(TENANT_ID))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    Answer { status, body }
}

fn assert_ok(a: &Answer) {
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body["access_token"].is_string(), "{}", a.body);
}

fn assert_aadsts(a: &Answer, status: u16, error: &str, code: u64) {
    assert_eq!(a.status.as_u16(), status, "{}", a.body);
    assert_eq!(a.body["error"], error, "{}", a.body);
    assert_eq!(a.body["error_codes"], json!([code]), "{}", a.body);
}

fn cert_der() -> Vec<u8> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(APP_CERT_PEM.as_bytes()).unwrap();
    pem.contents
}

/// Seconds since the epoch as a float, as Python's `time.time()` gives them.
fn time_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The claims MSAL for Python's `JwtAssertionCreator` signs: float `iat`/`nbf`/`exp`
/// (`time.time()` and `time.time() + 600`) and a fresh `jti`.
fn msal_claims(m: &MockMicrosoft, now: f64) -> Value {
    json!({
        "aud": m.token_endpoint(TENANT_ID),
        "iss": DAEMON_APP,
        "sub": DAEMON_APP,
        "jti": uuid::Uuid::new_v4().to_string(),
        "iat": now,
        "nbf": now,
        "exp": now + 600.0,
    })
}

/// An RS256 assertion with the given thumbprint headers, spelled exactly as given.
fn sign(claims: &Value, x5t_s256: Option<String>, x5t: Option<String>) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.x5t_s256 = x5t_s256;
    header.x5t = x5t;
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(APP_KEY_PEM.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

async fn with_assertion(m: &MockMicrosoft, assertion: &str) -> Answer {
    token(
        m,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DAEMON_APP),
            ("scope", "https://graph.microsoft.com/.default"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ],
    )
    .await
}

#[tokio::test]
async fn msal_python_assertion_with_padded_thumbprint_and_float_times_is_accepted() {
    let m = mock().await;
    // `base64.urlsafe_b64encode(sha256(der)).decode()`: padded.
    let padded = URL_SAFE.encode(Sha256::digest(cert_der()));
    assert!(padded.ends_with('='), "{padded}");
    let assertion = sign(&msal_claims(&m, time_time()), Some(padded), None);
    let issued = with_assertion(&m, &assertion).await;
    assert_ok(&issued);
    assert_eq!(issued.body["token_type"], "Bearer");

    // The legacy SHA-1 `x5t`, padded, and both thumbprints in standard base64.
    let sha1_padded = URL_SAFE.encode(Sha1::digest(cert_der()));
    assert!(sha1_padded.ends_with('='));
    assert_ok(
        &with_assertion(
            &m,
            &sign(&msal_claims(&m, time_time()), None, Some(sha1_padded)),
        )
        .await,
    );
    let standard = STANDARD.encode(Sha256::digest(cert_der()));
    assert_ok(
        &with_assertion(
            &m,
            &sign(&msal_claims(&m, time_time()), Some(standard), None),
        )
        .await,
    );

    // Spelled differently is fine; another certificate's thumbprint is still unknown.
    let other = URL_SAFE.encode(Sha256::digest(b"another certificate"));
    let a = with_assertion(&m, &sign(&msal_claims(&m, time_time()), Some(other), None)).await;
    assert_aadsts(&a, 401, "invalid_client", 700027);
    assert!(
        a.body["error_description"]
            .as_str()
            .unwrap()
            .contains("The key was not found."),
        "{}",
        a.body
    );
}

#[tokio::test]
async fn float_times_are_checked_like_integers_expired_and_not_yet_valid_refused() {
    let m = mock().await;
    let x5t = Some(URL_SAFE_NO_PAD.encode(Sha256::digest(cert_der())));
    let now = time_time();

    let mut expired = msal_claims(&m, now - 1200.5);
    expired["exp"] = json!(now - 600.5);
    let a = with_assertion(&m, &sign(&expired, x5t.clone(), None)).await;
    assert_aadsts(&a, 401, "invalid_client", 700024);
    assert!(a.body["error_description"].as_str().unwrap().starts_with(
        "AADSTS700024: Client assertion is not within its valid time range. Current time: "
    ));

    // Issued an hour from now (beyond the 5 minutes of skew).
    let future = msal_claims(&m, now + 3600.25);
    assert_aadsts(
        &with_assertion(&m, &sign(&future, x5t.clone(), None)).await,
        401,
        "invalid_client",
        700024,
    );

    // Valid for 10 minutes and a fraction more than that: too long.
    let mut long = msal_claims(&m, now);
    long["exp"] = json!(now + 600.75);
    assert_aadsts(
        &with_assertion(&m, &sign(&long, x5t.clone(), None)).await,
        401,
        "invalid_client",
        700024,
    );

    // Ten minutes give or take a float's last bit (a JSON parser may be one ULP off) are
    // still ten minutes.
    let mut one_ulp_over = msal_claims(&m, now);
    one_ulp_over["exp"] = json!(f64::from_bits((now + 600.0).to_bits() + 1));
    assert!(one_ulp_over["exp"].as_f64().unwrap() - now > 600.0);
    assert_ok(&with_assertion(&m, &sign(&one_ulp_over, x5t.clone(), None)).await);

    // Without `nbf`, `iat` (a float) is the start.
    let mut iat_only = msal_claims(&m, now);
    iat_only.as_object_mut().unwrap().remove("nbf");
    assert_ok(&with_assertion(&m, &sign(&iat_only, x5t, None)).await);
}

#[tokio::test]
async fn an_assertion_is_reused_within_its_lifetime_and_refused_once_expired() {
    let m = mock().await;
    let x5t = URL_SAFE.encode(Sha256::digest(cert_der()));
    // MSAL signs one assertion and sends it, same `jti`, until shortly before its `exp`.
    let assertion = sign(&msal_claims(&m, time_time()), Some(x5t), None);
    assert_ok(&with_assertion(&m, &assertion).await);
    assert_ok(&with_assertion(&m, &assertion).await);
    m.advance_clock(Duration::from_secs(300));
    assert_ok(&with_assertion(&m, &assertion).await);
    m.advance_clock(Duration::from_secs(301));
    assert_aadsts(
        &with_assertion(&m, &assertion).await,
        401,
        "invalid_client",
        700024,
    );
}

fn client_info(a: &Answer) -> Value {
    let encoded = a.body["client_info"]
        .as_str()
        .unwrap_or_else(|| panic!("no client_info: {}", a.body));
    // MSAL decodes it as base64url (padding optional).
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn ropc(m: &MockMicrosoft, extra: &[(&str, &str)]) -> Answer {
    let mut form = vec![
        ("grant_type", "password"),
        ("client_id", PUBLIC_APP),
        ("username", ADELE),
        ("password", ADELE_PASSWORD),
        ("scope", "Mail.ReadWrite offline_access openid profile"),
    ];
    form.extend_from_slice(extra);
    token(m, &form).await
}

async fn refresh(m: &MockMicrosoft, refresh_token: &str, extra: &[(&str, &str)]) -> Answer {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("client_id", PUBLIC_APP),
        ("refresh_token", refresh_token),
        ("scope", "Mail.ReadWrite offline_access openid profile"),
    ];
    form.extend_from_slice(extra);
    token(m, &form).await
}

fn expected_client_info() -> Value {
    json!({"uid": ADELE_OID, "utid": TENANT_ID})
}

#[tokio::test]
async fn client_info_is_answered_for_password_and_refresh_when_asked_with_entras_shape() {
    let m = mock().await;
    let signed_in = ropc(&m, &[("client_info", "1")]).await;
    assert_ok(&signed_in);
    assert_eq!(client_info(&signed_in), expected_client_info());
    // Exactly two members, and unpadded base64url as Entra writes it.
    let raw = signed_in.body["client_info"].as_str().unwrap();
    assert!(
        !raw.contains('=') && !raw.contains('+') && !raw.contains('/'),
        "{raw}"
    );
    assert_eq!(
        String::from_utf8(URL_SAFE_NO_PAD.decode(raw).unwrap()).unwrap(),
        format!(r#"{{"uid":"{ADELE_OID}","utid":"{TENANT_ID}"}}"#)
    );

    let rt = signed_in.body["refresh_token"].as_str().unwrap();
    let refreshed = refresh(&m, rt, &[("client_info", "1")]).await;
    assert_ok(&refreshed);
    assert_eq!(client_info(&refreshed), expected_client_info());

    // Not asked (or asked with another value): not answered.
    let plain = ropc(&m, &[]).await;
    assert_ok(&plain);
    assert!(plain.body.get("client_info").is_none(), "{}", plain.body);
    let zero = refresh(&m, rt, &[("client_info", "0")]).await;
    assert_ok(&zero);
    assert!(zero.body.get("client_info").is_none(), "{}", zero.body);
}

#[tokio::test]
async fn client_info_is_answered_for_authorization_code_and_device_code() {
    let m = mock().await;
    // Authorization code: a confidential client (MSAL's ConfidentialClientApplication), the
    // user signed in by auto-approval.
    m.set_auto_approve(Some(MEGAN));
    let redirect = "http://127.0.0.1:8087/service/oauth2/authorize";
    let authorize = reqwest::Url::parse_with_params(
        &m.authorize_endpoint(TENANT_ID),
        &[
            ("client_id", WEB_APP),
            ("response_type", "code"),
            ("redirect_uri", redirect),
            (
                "scope",
                "https://outlook.office365.com/EWS.AccessAsUser.All offline_access",
            ),
        ],
    )
    .unwrap();
    let response = http().get(authorize).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = reqwest::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no code in {location}"));
    let redeemed = token(
        &m,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", WEB_APP),
            ("client_secret", WEB_APP_SECRET),
            ("code", &code),
            ("redirect_uri", redirect),
            ("client_info", "1"),
        ],
    )
    .await;
    assert_ok(&redeemed);
    assert_eq!(
        client_info(&redeemed),
        json!({"uid": MEGAN_OID, "utid": TENANT_ID})
    );

    // Device code, approved by Adele.
    m.set_device_code_interval(0);
    let started: Value = http()
        .post(m.device_code_endpoint(TENANT_ID))
        .form(&[
            ("client_id", PUBLIC_APP),
            ("scope", "Mail.ReadWrite offline_access"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    m.approve_device_code(started["user_code"].as_str().unwrap(), ADELE)
        .unwrap();
    let polled = token(
        &m,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", PUBLIC_APP),
            ("device_code", started["device_code"].as_str().unwrap()),
            ("client_info", "1"),
        ],
    )
    .await;
    assert_ok(&polled);
    assert_eq!(client_info(&polled), expected_client_info());
}

#[tokio::test]
async fn client_credentials_never_answer_client_info() {
    let m = mock().await;
    let issued = token(
        &m,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DAEMON_APP),
            ("client_secret", DAEMON_APP_SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
            ("client_info", "1"),
        ],
    )
    .await;
    assert_ok(&issued);
    assert!(issued.body.get("client_info").is_none(), "{}", issued.body);
}

#[tokio::test]
async fn the_old_refresh_token_stays_valid_after_a_refresh_unless_rotation_is_strict() {
    let m = mock().await;
    let first = ropc(&m, &[]).await;
    assert_ok(&first);
    let rt1 = first.body["refresh_token"].as_str().unwrap().to_string();

    // Entra: a new refresh token each time, the old one still works.
    let second = refresh(&m, &rt1, &[]).await;
    assert_ok(&second);
    let rt2 = second.body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2);
    assert_ok(&refresh(&m, &rt1, &[]).await);
    assert_ok(&refresh(&m, &rt2, &[]).await);

    // Strict: the one used is spent (invalid_grant AADSTS70008), its successor works.
    m.set_strict_rotation(true);
    let third = refresh(&m, &rt1, &[]).await;
    assert_ok(&third);
    let rt3 = third.body["refresh_token"].as_str().unwrap().to_string();
    assert_aadsts(&refresh(&m, &rt1, &[]).await, 400, "invalid_grant", 70008);
    assert_ok(&refresh(&m, &rt3, &[]).await);

    // Back to Entra's behaviour.
    m.set_strict_rotation(false);
    assert_ok(&refresh(&m, &rt2, &[]).await);
    assert_ok(&refresh(&m, &rt2, &[]).await);
}

/// Every message ID a delta round from `start` answers, and its deltaLink.
async fn delta_round(g: &support::Graph, start: &str) -> (BTreeSet<String>, String) {
    let mut url = start.to_string();
    let mut ids = BTreeSet::new();
    loop {
        let page = g.get_with(&url, &[("Prefer", "odata.maxpagesize=5")]).await;
        page.ok();
        ids.extend(
            page.values()
                .iter()
                .map(|v| v["id"].as_str().unwrap().to_string()),
        );
        match page.body["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => {
                let link = page.body["@odata.deltaLink"].as_str();
                return (
                    ids,
                    link.unwrap_or_else(|| panic!("{}", page.text()))
                        .to_string(),
                );
            }
        }
    }
}

#[tokio::test]
async fn graph_sdk_delta_function_form_is_routed_like_delta() {
    let m = mock().await;
    let g = support::Graph::adele(&m).await;
    let (plain, _) = delta_round(&g, "/me/mailFolders/inbox/messages/delta").await;
    assert!(plain.len() > 5, "{plain:?}");
    for form in [
        "/me/mailFolders/inbox/messages/delta()",
        "/me/mailFolders/inbox/messages/delta%28%29",
        "/me/mailFolders/inbox/messages/microsoft.graph.delta()",
        &format!("/users/{ADELE}/mailFolders/inbox/messages/delta()?$select=subject"),
    ] {
        let (ids, link) = delta_round(&g, form).await;
        assert_eq!(ids, plain, "{form}");
        assert!(link.contains("$deltatoken="), "{form}: {link}");
        // The deltaLink of a function-form round works: nothing changed.
        let quiet = g.get(&link).await;
        quiet.ok();
        assert!(quiet.values().is_empty(), "{form}: {}", quiet.text());
    }
    // Another function is still unknown.
    let other = g.get("/me/mailFolders/inbox/messages/deltas()").await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST, "{}", other.text());
}
