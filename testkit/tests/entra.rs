//! The mock Entra ID over the wire, as a client sees it: reqwest with redirects disabled.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::seed::*;
use exgate_testkit::entra::{Fault, Seed};
use exgate_testkit::fixtures::{APP_CERT_PEM, APP_KEY_PEM};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const LOOPBACK: &str = "http://localhost:53123/";

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
    headers: HeaderMap,
    body: Value,
}

async fn token(m: &MockMicrosoft, form: &[(&str, &str)]) -> Answer {
    token_at(m, TENANT_ID, form).await
}

async fn token_at(m: &MockMicrosoft, tenant: &str, form: &[(&str, &str)]) -> Answer {
    let response = http()
        .post(m.token_endpoint(tenant))
        .form(form)
        .send()
        .await
        .unwrap();
    answer(response).await
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    Answer {
        status,
        headers,
        body,
    }
}

/// Asserts an Entra error: HTTP status, `error`, and the AADSTS code in `error_codes` and in
/// the description.
#[track_caller]
fn assert_aadsts(a: &Answer, status: u16, error: &str, code: u64) {
    assert_eq!(a.status.as_u16(), status, "{}", a.body);
    assert_eq!(a.body["error"], error, "{}", a.body);
    assert_eq!(a.body["error_codes"], json!([code]), "{}", a.body);
    let description = a.body["error_description"].as_str().unwrap_or_default();
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
}

#[track_caller]
fn assert_ok(a: &Answer) {
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn access_claims(a: &Answer) -> Value {
    claims(a.body["access_token"].as_str().expect("an access token"))
}

fn pkce() -> (String, String) {
    let verifier = format!(
        "verifier-{}-0123456789abcdefghijklmnopq",
        uuid::Uuid::new_v4()
    );
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn query_param(location: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(location).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_string()
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(&text[from..to])
}

fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" ")
        .skip(1)
        .filter_map(|rest| {
            let name = between(rest, "name=\"", "\"")?;
            let value = between(rest, "value=\"", "\"")?;
            Some((unescape(name), unescape(value)))
        })
        .collect()
}

fn authorize_url(
    m: &MockMicrosoft,
    client_id: &str,
    redirect_uri: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut url = url::Url::parse(&m.authorize_endpoint(TENANT_ID)).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_mode", "query")
        .extend_pairs(extra.iter().copied());
    url.to_string()
}

/// Opens the sign-in page and submits it; returns the response to the submission.
async fn submit_sign_in(
    m: &MockMicrosoft,
    authorize: &str,
    login: &str,
    password: &str,
    consent: &str,
) -> reqwest::Response {
    let page = http().get(authorize).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let action = between(&html, "<form method=\"post\" action=\"", "\"").unwrap();
    let mut form = hidden_inputs(&html);
    form.push(("login".into(), login.into()));
    form.push(("passwd".into(), password.into()));
    form.push(("consent".into(), consent.into()));
    http()
        .post(format!("{}{}", m.base_url(), unescape(action)))
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// Signs Adele in at PUBLIC_APP with PKCE and returns (code, verifier).
async fn adele_code(m: &MockMicrosoft, scope: &str) -> (String, String) {
    let (verifier, challenge) = pkce();
    let url = authorize_url(
        m,
        PUBLIC_APP,
        LOOPBACK,
        &[
            ("scope", scope),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("state", "st"),
        ],
    );
    let response = submit_sign_in(m, &url, ADELE, ADELE_PASSWORD, "accept").await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let code = query_param(&location(&response), "code").expect("a code");
    (code, verifier)
}

async fn ropc(m: &MockMicrosoft, upn: &str, password: &str, scope: &str) -> Answer {
    token(
        m,
        &[
            ("grant_type", "password"),
            ("client_id", PUBLIC_APP),
            ("username", upn),
            ("password", password),
            ("scope", scope),
        ],
    )
    .await
}

async fn refresh(m: &MockMicrosoft, refresh_token: &str, scope: &str) -> Answer {
    token(
        m,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", PUBLIC_APP),
            ("refresh_token", refresh_token),
            ("scope", scope),
        ],
    )
    .await
}

fn cert_der() -> Vec<u8> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(APP_CERT_PEM.as_bytes()).unwrap();
    pem.contents
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn assertion(claims: &Value, x5t_s256: &str, key_pem: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.x5t_s256 = Some(x5t_s256.to_string());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn assertion_claims(aud: &str) -> Value {
    let now = now();
    json!({
        "aud": aud,
        "iss": DAEMON_APP,
        "sub": DAEMON_APP,
        "jti": uuid::Uuid::new_v4().to_string(),
        "nbf": now,
        "iat": now,
        "exp": now + 600,
    })
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
async fn discovery_and_jwks_have_entras_shape_and_tokens_verify_against_the_jwks() {
    let m = mock().await;
    let base = m.base_url();
    let doc: Value = http()
        .get(m.discovery_url(TENANT_ID))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], format!("{base}/{TENANT_ID}/v2.0"));
    assert_eq!(doc["token_endpoint"], m.token_endpoint(TENANT_ID));
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{base}/{TENANT_ID}/oauth2/v2.0/authorize")
    );
    assert_eq!(
        doc["device_authorization_endpoint"],
        format!("{base}/{TENANT_ID}/oauth2/v2.0/devicecode")
    );
    assert_eq!(
        doc["jwks_uri"],
        format!("{base}/{TENANT_ID}/discovery/v2.0/keys")
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!([
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic"
        ])
    );
    for field in [
        "end_session_endpoint",
        "response_types_supported",
        "response_modes_supported",
        "scopes_supported",
        "subject_types_supported",
        "claims_supported",
        "tenant_region_scope",
    ] {
        assert!(!doc[field].is_null(), "{field} missing: {doc}");
    }

    // By domain: Entra names the tenant by its ID in every URL.
    let by_domain: Value = http()
        .get(m.discovery_url(TENANT_DOMAIN))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_domain["token_endpoint"], m.token_endpoint(TENANT_ID));
    // Multi-tenant aliases keep the alias and a placeholder issuer.
    let orgs: Value = http()
        .get(m.discovery_url("organizations"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(orgs["issuer"], format!("{base}/{{tenantid}}/v2.0"));
    assert_eq!(orgs["token_endpoint"], m.token_endpoint("organizations"));

    let unknown = answer(
        http()
            .get(m.discovery_url("fabrikam.onmicrosoft.com"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.body["error_codes"], json!([90002]));
    assert!(
        unknown.body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS90002: Tenant 'fabrikam.onmicrosoft.com' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.")
    );

    let jwks: Value = http()
        .get(format!("{base}/{TENANT_ID}/discovery/v2.0/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "RS256");
    let kid = key["kid"].as_str().unwrap();

    let issued = token(
        &m,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DAEMON_APP),
            ("client_secret", DAEMON_APP_SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_ok(&issued);
    let access_token = issued.body["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(access_token).unwrap();
    assert_eq!(header.kid.as_deref(), Some(kid));
    let decoding = jsonwebtoken::DecodingKey::from_rsa_components(
        key["n"].as_str().unwrap(),
        key["e"].as_str().unwrap(),
    )
    .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[GRAPH]);
    validation.set_issuer(&[format!("{base}/{TENANT_ID}/v2.0")]);
    let verified = jsonwebtoken::decode::<Value>(access_token, &decoding, &validation).unwrap();
    assert_eq!(verified.claims["tid"], TENANT_ID);
    assert_eq!(verified.claims["appid"], DAEMON_APP);

    // A token whose signature was tampered with does not verify.
    let mut parts: Vec<String> = access_token.split('.').map(str::to_string).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(br#"{"aud":"https://graph.microsoft.com","exp":4000000000}"#);
    assert!(jsonwebtoken::decode::<Value>(&parts.join("."), &decoding, &validation).is_err());
}

#[tokio::test]
async fn authorization_code_with_pkce_through_the_sign_in_form() {
    let m = mock().await;
    let (verifier, challenge) = pkce();
    let url = authorize_url(
        &m,
        PUBLIC_APP,
        LOOPBACK,
        &[
            ("scope", "Mail.ReadWrite offline_access openid profile"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("state", "a b&c=d"),
            ("nonce", "n-0S6_WzA2Mj"),
            ("login_hint", ADELE),
        ],
    );
    let page = http().get(&url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!(
            "<form method=\"post\" action=\"/{TENANT_ID}/oauth2/v2.0/authorize\">"
        )),
        "{html}"
    );
    assert!(
        html.contains(&format!("name=\"login\" value=\"{ADELE}\"")),
        "{html}"
    );
    assert!(html.contains("name=\"passwd\""), "{html}");
    assert!(html.contains("name=\"consent\" value=\"accept\""), "{html}");
    assert!(
        html.contains("name=\"consent\" value=\"decline\""),
        "{html}"
    );
    let hidden = hidden_inputs(&html);
    assert!(
        hidden.contains(&("code_challenge".into(), challenge.clone())),
        "{hidden:?}"
    );
    assert!(
        hidden.contains(&("state".into(), "a b&c=d".into())),
        "{hidden:?}"
    );

    // Bad credentials re-render the form with Entra's message.
    let wrong = submit_sign_in(&m, &url, ADELE, "nope", "accept").await;
    assert_eq!(wrong.status(), StatusCode::OK);
    let wrong = wrong.text().await.unwrap();
    assert!(
        wrong.contains(
            "AADSTS50126: Error validating credentials due to invalid username or password."
        ),
        "{wrong}"
    );
    let stranger = submit_sign_in(&m, &url, "nobody@contoso.onmicrosoft.com", "x", "accept").await;
    assert!(stranger.text().await.unwrap().contains("AADSTS50034:"));

    let signed_in = submit_sign_in(&m, &url, ADELE, ADELE_PASSWORD, "accept").await;
    assert_eq!(signed_in.status(), StatusCode::FOUND);
    let back = location(&signed_in);
    assert!(back.starts_with(LOOPBACK), "{back}");
    assert_eq!(query_param(&back, "state").as_deref(), Some("a b&c=d"));
    assert!(query_param(&back, "session_state").is_some());
    let code = query_param(&back, "code").unwrap();

    let redeemed = token(
        &m,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", PUBLIC_APP),
            ("code", &code),
            ("redirect_uri", LOOPBACK),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_ok(&redeemed);
    assert_eq!(
        redeemed.headers.get("cache-control").unwrap(),
        "no-store, no-cache"
    );
    assert_eq!(redeemed.body["token_type"], "Bearer");
    assert_eq!(redeemed.body["expires_in"], 3600);
    assert_eq!(redeemed.body["ext_expires_in"], 3600);
    assert!(redeemed.body.get("refresh_in").is_none());
    let scope = redeemed.body["scope"].as_str().unwrap();
    for s in ["Mail.ReadWrite", "User.Read", "openid", "profile"] {
        assert!(scope.split(' ').any(|x| x == s), "{scope}");
    }
    assert!(redeemed.body["refresh_token"].as_str().unwrap().len() > 40);

    let at = access_claims(&redeemed);
    assert_eq!(at["aud"], GRAPH);
    assert_eq!(at["iss"], format!("{}/{TENANT_ID}/v2.0", m.base_url()));
    assert_eq!(at["tid"], TENANT_ID);
    assert_eq!(at["oid"], ADELE_OID);
    assert_eq!(at["upn"], ADELE);
    assert_eq!(at["preferred_username"], ADELE);
    assert_eq!(at["name"], ADELE_NAME);
    assert_eq!(at["appid"], PUBLIC_APP);
    assert_eq!(at["azp"], PUBLIC_APP);
    assert!(
        at["scp"]
            .as_str()
            .unwrap()
            .split(' ')
            .any(|s| s == "Mail.ReadWrite")
    );
    assert!(at.get("roles").is_none());
    assert!(at["uti"].as_str().is_some_and(|u| !u.is_empty()));
    assert_eq!(
        at["exp"].as_i64().unwrap() - at["iat"].as_i64().unwrap(),
        3600
    );

    let id = claims(redeemed.body["id_token"].as_str().unwrap());
    assert_eq!(id["aud"], PUBLIC_APP);
    assert_eq!(id["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(id["oid"], ADELE_OID);
    assert_eq!(id["preferred_username"], ADELE);
    assert_eq!(id["ver"], "2.0");
}

#[tokio::test]
async fn auto_approve_redirects_straight_back_and_a_confidential_client_redeems_with_its_secret() {
    let m = mock().await;
    m.set_auto_approve(Some(MEGAN));
    let redirect = "http://127.0.0.1:8087/service/oauth2/authorize";
    let url = authorize_url(
        &m,
        WEB_APP,
        redirect,
        &[
            (
                "scope",
                "https://outlook.office365.com/EWS.AccessAsUser.All offline_access",
            ),
            ("state", "xyz"),
        ],
    );
    let response = http().get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let back = location(&response);
    assert!(back.starts_with(redirect), "{back}");
    assert_eq!(query_param(&back, "state").as_deref(), Some("xyz"));
    let code = query_param(&back, "code").unwrap();

    // Without its secret the confidential client cannot redeem.
    let bare = token(
        &m,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", WEB_APP),
            ("code", &code),
            ("redirect_uri", redirect),
        ],
    )
    .await;
    assert_aadsts(&bare, 401, "invalid_client", 7000218);

    let redeemed = token(
        &m,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", WEB_APP),
            ("client_secret", WEB_APP_SECRET),
            ("code", &code),
            ("redirect_uri", redirect),
        ],
    )
    .await;
    assert_ok(&redeemed);
    let at = access_claims(&redeemed);
    assert_eq!(at["aud"], OUTLOOK);
    assert_eq!(at["upn"], MEGAN);
    assert_eq!(at["azpacr"], "1");
    assert!(
        redeemed.body["scope"]
            .as_str()
            .unwrap()
            .contains("https://outlook.office365.com/EWS.AccessAsUser.All")
    );
    assert!(
        redeemed.body.get("id_token").is_none(),
        "no openid, no id_token"
    );
}

#[tokio::test]
async fn wrong_or_missing_verifiers_reused_and_expired_codes_are_refused() {
    let m = mock().await;
    let (code, verifier) = adele_code(&m, "User.Read").await;
    let redeem = |verifier: Option<&str>, redirect: &str| {
        let mut form = vec![
            ("grant_type", "authorization_code".to_string()),
            ("client_id", PUBLIC_APP.to_string()),
            ("code", code.clone()),
            ("redirect_uri", redirect.to_string()),
        ];
        if let Some(v) = verifier {
            form.push(("code_verifier", v.to_string()));
        }
        let endpoint = m.token_endpoint(TENANT_ID);
        async move { answer(http().post(endpoint).form(&form).send().await.unwrap()).await }
    };
    let mismatch = redeem(
        Some("the-wrong-verifier-0123456789012345678901234"),
        LOOPBACK,
    )
    .await;
    assert_aadsts(&mismatch, 400, "invalid_grant", 501481);
    assert!(
        mismatch.body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the authorization request.")
    );
    assert_aadsts(&redeem(None, LOOPBACK).await, 400, "invalid_grant", 50148);
    assert_aadsts(
        &redeem(Some(&verifier), "http://localhost:1/").await,
        400,
        "invalid_grant",
        500112,
    );
    assert_ok(&redeem(Some(&verifier), LOOPBACK).await);
    assert_aadsts(
        &redeem(Some(&verifier), LOOPBACK).await,
        400,
        "invalid_grant",
        54005,
    );

    let (late, verifier) = adele_code(&m, "User.Read").await;
    m.advance_clock(Duration::from_secs(11 * 60));
    let expired = token(
        &m,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", PUBLIC_APP),
            ("code", &late),
            ("redirect_uri", LOOPBACK),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_aadsts(&expired, 400, "invalid_grant", 70008);

    let forged = token(
        &m,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", PUBLIC_APP),
            ("code", "made-up"),
            ("redirect_uri", LOOPBACK),
        ],
    )
    .await;
    assert_aadsts(&forged, 400, "invalid_grant", 70000);
}

#[tokio::test]
async fn authorize_errors_are_pages_until_the_redirect_uri_is_trusted_then_redirects() {
    let m = mock().await;
    let scope = [("scope", "User.Read")];

    let evil = http()
        .get(authorize_url(
            &m,
            PUBLIC_APP,
            "https://evil.example/cb",
            &scope,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), StatusCode::BAD_REQUEST);
    assert!(evil.headers().get(LOCATION).is_none());
    let page = evil.text().await.unwrap();
    assert!(
        page.contains(&format!(
            "AADSTS50011: The redirect URI &#39;https://evil.example/cb&#39; specified in the request does not match the redirect URIs configured for the application &#39;{PUBLIC_APP}&#39;."
        )),
        "{page}"
    );

    // Loopback: any port, same path.
    for ok in ["http://localhost:40000", "http://localhost:40000/"] {
        let r = http()
            .get(authorize_url(&m, PUBLIC_APP, ok, &scope))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{ok}");
    }
    let other_path = http()
        .get(authorize_url(
            &m,
            PUBLIC_APP,
            "http://localhost:40000/other",
            &scope,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(other_path.status(), StatusCode::BAD_REQUEST);

    let unknown = http()
        .get(authorize_url(
            &m,
            "0a1b2c3d-9999-4999-8999-999999999999",
            LOOPBACK,
            &scope,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert!(unknown.text().await.unwrap().contains("AADSTS700016: Application with identifier &#39;0a1b2c3d-9999-4999-8999-999999999999&#39; was not found in the directory"));

    let redirected_error = |extra: Vec<(&'static str, &'static str)>| {
        let url = authorize_url(&m, PUBLIC_APP, LOOPBACK, &extra);
        async move {
            let r = http().get(url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::FOUND);
            let back = location(&r);
            (
                query_param(&back, "error").unwrap_or_default(),
                query_param(&back, "error_description").unwrap_or_default(),
                query_param(&back, "state"),
            )
        }
    };
    let (error, description, state) = redirected_error(vec![
        ("scope", "User.Read"),
        (
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        ),
        ("code_challenge_method", "plain"),
        ("state", "s1"),
    ])
    .await;
    assert_eq!(error, "invalid_request");
    assert!(description.starts_with("AADSTS50149:"), "{description}");
    assert_eq!(state.as_deref(), Some("s1"));

    let url = authorize_url(&m, PUBLIC_APP, LOOPBACK, &[("scope", "User.Read")])
        .replace("response_type=code", "response_type=token");
    let r = http().get(url).send().await.unwrap();
    assert_eq!(
        query_param(&location(&r), "error").as_deref(),
        Some("unsupported_response_type")
    );

    let (error, description, _) =
        redirected_error(vec![("scope", "Directory.ReadWrite.All")]).await;
    assert_eq!(error, "consent_required");
    assert!(description.starts_with("AADSTS65001:"), "{description}");

    // The user cancels on the consent page.
    let url = authorize_url(
        &m,
        PUBLIC_APP,
        LOOPBACK,
        &[("scope", "User.Read"), ("state", "s2")],
    );
    let declined = submit_sign_in(&m, &url, ADELE, ADELE_PASSWORD, "decline").await;
    let back = location(&declined);
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("access_denied")
    );
    assert!(
        query_param(&back, "error_description")
            .unwrap()
            .starts_with("AADSTS65004:")
    );
    assert_eq!(query_param(&back, "state").as_deref(), Some("s2"));

    // Consent revoked by an admin.
    m.revoke_consent(PUBLIC_APP);
    let (error, description, _) = redirected_error(vec![("scope", "User.Read")]).await;
    assert_eq!(error, "consent_required");
    assert!(description.starts_with(&format!(
        "AADSTS65001: The user or administrator has not consented to use the application with ID '{PUBLIC_APP}'"
    )));

    // prompt=none without a session.
    m.grant_consent(PUBLIC_APP);
    let (error, _, _) = redirected_error(vec![("scope", "User.Read"), ("prompt", "none")]).await;
    assert_eq!(error, "login_required");
}

async fn start_device_flow(m: &MockMicrosoft, client_id: &str) -> (String, String) {
    let response = http()
        .post(m.device_code_endpoint(TENANT_ID))
        .form(&[
            ("client_id", client_id),
            ("scope", "User.Read offline_access openid"),
        ])
        .send()
        .await
        .unwrap();
    let a = answer(response).await;
    assert_ok(&a);
    (
        a.body["device_code"].as_str().unwrap().to_string(),
        a.body["user_code"].as_str().unwrap().to_string(),
    )
}

async fn poll(m: &MockMicrosoft, client_id: &str, device_code: &str) -> Answer {
    token(
        m,
        &[
            ("grant_type", DEVICE_GRANT),
            ("client_id", client_id),
            ("device_code", device_code),
        ],
    )
    .await
}

#[tokio::test]
async fn device_code_is_pending_then_slow_down_then_approved() {
    let m = mock().await;
    let response = http()
        .post(m.device_code_endpoint(TENANT_ID))
        .form(&[
            ("client_id", PUBLIC_APP),
            ("scope", "Mail.ReadWrite offline_access"),
        ])
        .send()
        .await
        .unwrap();
    let start = answer(response).await;
    assert_ok(&start);
    let user_code = start.body["user_code"].as_str().unwrap();
    assert_eq!(user_code.len(), 9);
    assert!(
        user_code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    );
    let verification_uri = format!("{}/devicelogin", m.base_url());
    assert_eq!(start.body["verification_uri"], verification_uri);
    assert_eq!(start.body["expires_in"], 900);
    assert_eq!(start.body["interval"], 5);
    assert_eq!(
        start.body["message"],
        format!(
            "To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."
        )
    );
    let device_code = start.body["device_code"].as_str().unwrap();

    assert_aadsts(
        &poll(&m, PUBLIC_APP, device_code).await,
        400,
        "authorization_pending",
        70016,
    );
    let hasty = poll(&m, PUBLIC_APP, device_code).await;
    assert_eq!(hasty.body["error"], "slow_down", "{}", hasty.body);
    m.advance_clock(Duration::from_secs(6));
    assert_eq!(
        poll(&m, PUBLIC_APP, device_code).await.body["error"],
        "authorization_pending"
    );

    assert!(m.approve_device_code("nope", ADELE).is_err());
    assert!(
        m.approve_device_code(user_code, "ghost@contoso.onmicrosoft.com")
            .is_err()
    );
    m.approve_device_code(&user_code.to_ascii_lowercase(), ADELE)
        .unwrap();
    assert!(
        m.approve_device_code(user_code, ADELE)
            .unwrap_err()
            .contains("already")
    );
    let tokens = poll(&m, PUBLIC_APP, device_code).await;
    assert_ok(&tokens);
    assert_eq!(access_claims(&tokens)["upn"], ADELE);
    assert!(tokens.body["refresh_token"].is_string());
    assert_aadsts(
        &poll(&m, PUBLIC_APP, device_code).await,
        400,
        "bad_verification_code",
        70018,
    );
}

#[tokio::test]
async fn device_code_through_the_devicelogin_page_declines_and_expiry() {
    let m = mock().await;
    m.set_device_code_interval(0);
    let (device_code, user_code) = start_device_flow(&m, PUBLIC_APP).await;
    for _ in 0..3 {
        assert_eq!(
            poll(&m, PUBLIC_APP, &device_code).await.body["error"],
            "authorization_pending"
        );
    }

    let page = http()
        .get(format!("{}/devicelogin", m.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<form method=\"post\" action=\"/devicelogin\">"),
        "{page}"
    );
    assert!(page.contains("name=\"action\" value=\"approve\""), "{page}");
    assert!(page.contains("name=\"action\" value=\"decline\""), "{page}");

    let submit = |form: Vec<(&'static str, String)>| {
        let url = format!("{}/devicelogin", m.base_url());
        async move {
            let r = http().post(url).form(&form).send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    let (status, wrong) = submit(vec![
        ("user_code", user_code.clone()),
        ("login", MEGAN.into()),
        ("passwd", "bad".into()),
        ("action", "approve".into()),
    ])
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(wrong.contains("AADSTS50126"), "{wrong}");
    let (status, unknown) = submit(vec![
        ("user_code", "ZZZZZZZZZ".into()),
        ("action", "approve".into()),
    ])
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(unknown.contains("AADSTS70018"), "{unknown}");

    let (status, done) = submit(vec![
        ("user_code", user_code.clone()),
        ("login", MEGAN.into()),
        ("passwd", MEGAN_PASSWORD.into()),
        ("action", "approve".into()),
    ])
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        done.contains("You have signed in to the exgate CLI application on your device. You may now close this window."),
        "{done}"
    );
    let tokens = poll(&m, PUBLIC_APP, &device_code).await;
    assert_ok(&tokens);
    assert_eq!(access_claims(&tokens)["upn"], MEGAN);
    assert!(tokens.body["id_token"].is_string());

    // Declined on the page, and through the API.
    let (device_code, user_code) = start_device_flow(&m, PUBLIC_APP).await;
    let (_, declined) = submit(vec![("user_code", user_code), ("action", "decline".into())]).await;
    assert!(declined.contains("declined"), "{declined}");
    assert_aadsts(
        &poll(&m, PUBLIC_APP, &device_code).await,
        400,
        "authorization_declined",
        70000,
    );
    let (device_code, user_code) = start_device_flow(&m, PUBLIC_APP).await;
    m.decline_device_code(&user_code).unwrap();
    assert_eq!(
        poll(&m, PUBLIC_APP, &device_code).await.body["error"],
        "authorization_declined"
    );

    // Expiry, by the mock's clock.
    let (device_code, user_code) = start_device_flow(&m, PUBLIC_APP).await;
    m.advance_clock(Duration::from_secs(901));
    assert_aadsts(
        &poll(&m, PUBLIC_APP, &device_code).await,
        400,
        "expired_token",
        70019,
    );
    assert!(
        m.approve_device_code(&user_code, ADELE)
            .unwrap_err()
            .contains("expired")
    );

    // Public client flows disabled.
    let (device_code, user_code) = start_device_flow(&m, PUBLIC_APP).await;
    m.approve_device_code(&user_code, ADELE).unwrap();
    m.set_public_client_flows(PUBLIC_APP, false);
    assert_aadsts(
        &poll(&m, PUBLIC_APP, &device_code).await,
        401,
        "invalid_client",
        7000218,
    );

    let unknown_app = answer(
        http()
            .post(m.device_code_endpoint(TENANT_ID))
            .form(&[
                ("client_id", "0a1b2c3d-9999-4999-8999-999999999999"),
                ("scope", "User.Read"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_aadsts(&unknown_app, 400, "unauthorized_client", 700016);
}

#[tokio::test]
async fn client_credentials_with_secrets_secret_ids_basic_auth_and_expired_secrets() {
    let m = mock().await;
    let graph = token(
        &m,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DAEMON_APP),
            ("client_secret", DAEMON_APP_SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_ok(&graph);
    assert!(graph.body.get("refresh_token").is_none());
    assert!(graph.body.get("id_token").is_none());
    let at = access_claims(&graph);
    assert_eq!(at["aud"], GRAPH);
    assert_eq!(at["roles"], json!(GRAPH_APPLICATION));
    assert_eq!(at["idtyp"], "app");
    assert!(at.get("scp").is_none() && at.get("upn").is_none());
    let sp = at["oid"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&sp).is_ok());

    // HTTP Basic (client_secret_basic), Exchange Online.
    let basic = answer(
        http()
            .post(m.token_endpoint(TENANT_DOMAIN))
            .basic_auth(DAEMON_APP, Some(DAEMON_APP_SECRET))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "https://outlook.office365.com/.default"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_ok(&basic);
    let at = access_claims(&basic);
    assert_eq!(at["aud"], OUTLOOK);
    assert_eq!(at["roles"], json!(OUTLOOK_APPLICATION));
    assert_eq!(at["oid"], sp, "one service principal per app");

    let cc = |secret: &'static str, scope: &'static str| {
        let endpoint = m.token_endpoint(TENANT_ID);
        async move {
            answer(
                http()
                    .post(endpoint)
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("client_id", DAEMON_APP),
                        ("client_secret", secret),
                        ("scope", scope),
                    ])
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let secret_id = cc(DAEMON_APP_SECRET_ID, "https://graph.microsoft.com/.default").await;
    assert_aadsts(&secret_id, 401, "invalid_client", 7000215);
    assert!(secret_id.body["error_description"].as_str().unwrap().starts_with(&format!(
        "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{DAEMON_APP}'."
    )));
    assert_aadsts(
        &cc(DAEMON_APP_SECRET, "Mail.Send").await,
        400,
        "invalid_scope",
        1002012,
    );
    assert_aadsts(
        &cc(
            DAEMON_APP_SECRET,
            "https://graph.microsoft.com/.default https://outlook.office365.com/.default",
        )
        .await,
        400,
        "invalid_scope",
        70011,
    );
    assert_aadsts(
        &cc(DAEMON_APP_SECRET, "https://example.com/.default").await,
        400,
        "invalid_resource",
        500011,
    );

    m.revoke_consent(DAEMON_APP);
    let unconsented = cc(DAEMON_APP_SECRET, "https://graph.microsoft.com/.default").await;
    assert_ok(&unconsented);
    assert!(access_claims(&unconsented).get("roles").is_none());

    m.expire_secret(DAEMON_APP);
    let expired = cc(DAEMON_APP_SECRET, "https://graph.microsoft.com/.default").await;
    assert_aadsts(&expired, 401, "invalid_client", 7000222);
    assert!(
        expired.body["error_description"]
            .as_str()
            .unwrap()
            .starts_with(&format!(
                "AADSTS7000222: The provided client secret keys for app '{DAEMON_APP}' are expired."
            ))
    );

    let bare = token(
        &m,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", WEB_APP),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_aadsts(&bare, 401, "invalid_client", 7000218);
    let unknown = token(
        &m,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "0a1b2c3d-9999-4999-8999-999999999999"),
            ("client_secret", "x"),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_aadsts(&unknown, 400, "unauthorized_client", 700016);
    assert!(unknown.body["error_description"].as_str().unwrap().starts_with(&format!(
        "AADSTS700016: Application with identifier '0a1b2c3d-9999-4999-8999-999999999999' was not found in the directory '{TENANT_DOMAIN}'."
    )));

    // Seeded secrets expire by the mock's clock too.
    let m = mock().await;
    m.advance_clock(Duration::from_secs(80 * 366 * 24 * 3600));
    let later = token(
        &m,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DAEMON_APP),
            ("client_secret", DAEMON_APP_SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_aadsts(&later, 401, "invalid_client", 7000222);
}

#[tokio::test]
async fn client_assertions_signed_with_the_app_certificate_and_their_failures() {
    let m = mock().await;
    let x5t_s256 = URL_SAFE_NO_PAD.encode(Sha256::digest(cert_der()));
    let aud = m.token_endpoint(TENANT_ID);

    let good = assertion(&assertion_claims(&aud), &x5t_s256, APP_KEY_PEM);
    let issued = with_assertion(&m, &good).await;
    assert_ok(&issued);
    assert_eq!(access_claims(&issued)["azpacr"], "2");
    assert_eq!(access_claims(&issued)["roles"], json!(GRAPH_APPLICATION));

    // Entra accepts an assertion again within its lifetime (MSAL reuses one, see msal_habits.rs).
    assert_ok(&with_assertion(&m, &good).await);

    let wrong_aud = assertion(
        &assertion_claims(&m.token_endpoint("11111111-2222-3333-4444-555555555555")),
        &x5t_s256,
        APP_KEY_PEM,
    );
    assert_aadsts(
        &with_assertion(&m, &wrong_aud).await,
        401,
        "invalid_client",
        700023,
    );

    let unknown_cert = assertion(
        &assertion_claims(&aud),
        &URL_SAFE_NO_PAD.encode(Sha256::digest(b"another certificate")),
        APP_KEY_PEM,
    );
    let a = with_assertion(&m, &unknown_cert).await;
    assert_aadsts(&a, 401, "invalid_client", 700027);
    assert!(
        a.body["error_description"]
            .as_str()
            .unwrap()
            .contains("The key was not found.")
    );

    let other_key = include_str!("../keys/entra-signing.pem");
    let forged = assertion(&assertion_claims(&aud), &x5t_s256, other_key);
    assert_aadsts(
        &with_assertion(&m, &forged).await,
        401,
        "invalid_client",
        700027,
    );

    let mut stale = assertion_claims(&aud);
    stale["nbf"] = json!(now() - 1200);
    stale["iat"] = json!(now() - 1200);
    stale["exp"] = json!(now() - 600);
    let a = with_assertion(&m, &assertion(&stale, &x5t_s256, APP_KEY_PEM)).await;
    assert_aadsts(&a, 401, "invalid_client", 700024);
    assert!(a.body["error_description"].as_str().unwrap().starts_with(
        "AADSTS700024: Client assertion is not within its valid time range. Current time: "
    ));

    let mut long = assertion_claims(&aud);
    long["exp"] = json!(now() + 3600);
    assert_aadsts(
        &with_assertion(&m, &assertion(&long, &x5t_s256, APP_KEY_PEM)).await,
        401,
        "invalid_client",
        700024,
    );

    // A fresh assertion goes stale when the mock's clock moves past its exp.
    let fresh = assertion(&assertion_claims(&aud), &x5t_s256, APP_KEY_PEM);
    m.advance_clock(Duration::from_secs(601));
    assert_aadsts(
        &with_assertion(&m, &fresh).await,
        401,
        "invalid_client",
        700024,
    );
    let m = mock().await;
    let aud = m.token_endpoint(TENANT_ID);

    let mut foreign = assertion_claims(&aud);
    foreign["iss"] = json!(WEB_APP);
    foreign["sub"] = json!(WEB_APP);
    assert_aadsts(
        &with_assertion(&m, &assertion(&foreign, &x5t_s256, APP_KEY_PEM)).await,
        401,
        "invalid_client",
        700021,
    );

    let mut no_jti = assertion_claims(&aud);
    no_jti.as_object_mut().unwrap().remove("jti");
    assert_aadsts(
        &with_assertion(&m, &assertion(&no_jti, &x5t_s256, APP_KEY_PEM)).await,
        401,
        "invalid_client",
        50027,
    );
    assert_aadsts(
        &with_assertion(&m, "not.a.jwt").await,
        401,
        "invalid_client",
        50027,
    );

    // The legacy `x5t` header (SHA-1 thumbprint) names the certificate too.
    let sha1: Vec<u8> = (0..20)
        .map(|i| {
            u8::from_str_radix(
                &"D6B2C2831EDA191BDF734AD39A96C30C8E39A3D7"[2 * i..2 * i + 2],
                16,
            )
            .unwrap()
        })
        .collect();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.x5t = Some(URL_SAFE_NO_PAD.encode(sha1));
    let legacy = jsonwebtoken::encode(
        &header,
        &assertion_claims(&aud),
        &jsonwebtoken::EncodingKey::from_rsa_pem(APP_KEY_PEM.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_ok(&with_assertion(&m, &legacy).await);

    // The domain form of the token endpoint is an accepted audience too.
    let by_domain = assertion(
        &assertion_claims(&m.token_endpoint(TENANT_DOMAIN)),
        &x5t_s256,
        APP_KEY_PEM,
    );
    assert_ok(&with_assertion(&m, &by_domain).await);

    // A public client must not present credentials at all.
    let public = token(
        &m,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", PUBLIC_APP),
            ("scope", "https://graph.microsoft.com/.default"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &good),
        ],
    )
    .await;
    assert_aadsts(&public, 401, "invalid_client", 700025);
}

#[tokio::test]
async fn refresh_tokens_rotate_strictly_and_reach_other_consented_resources() {
    let m = mock().await;
    m.set_strict_rotation(true);
    let first = ropc(&m, ADELE, ADELE_PASSWORD, "Mail.ReadWrite offline_access").await;
    assert_ok(&first);
    let rt1 = first.body["refresh_token"].as_str().unwrap().to_string();

    let second = refresh(&m, &rt1, "Mail.ReadWrite offline_access").await;
    assert_ok(&second);
    let rt2 = second.body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2);
    assert_aadsts(
        &refresh(&m, &rt1, "Mail.ReadWrite").await,
        400,
        "invalid_grant",
        70008,
    );

    let smtp = refresh(&m, &rt2, "https://outlook.office365.com/SMTP.Send").await;
    assert_ok(&smtp);
    assert_eq!(access_claims(&smtp)["aud"], OUTLOOK);
    assert!(
        smtp.body["scope"]
            .as_str()
            .unwrap()
            .contains("https://outlook.office365.com/SMTP.Send")
    );
    let rt3 = smtp.body["refresh_token"].as_str().unwrap().to_string();

    let both = refresh(
        &m,
        &rt3,
        "Mail.Read https://outlook.office365.com/SMTP.Send",
    )
    .await;
    assert_aadsts(&both, 400, "invalid_scope", 70011);
    let unconsented = refresh(&m, &rt3, "Directory.ReadWrite.All").await;
    assert_aadsts(&unconsented, 400, "invalid_grant", 65001);
    // Failed refreshes do not spend the token.
    assert_ok(&refresh(&m, &rt3, "User.Read").await);
    assert_aadsts(
        &refresh(&m, "garbage", "User.Read").await,
        400,
        "invalid_grant",
        9002313,
    );
}

#[tokio::test]
async fn revocation_inactivity_mfa_and_consent_switches_break_refresh_tokens() {
    let m = mock().await;
    let fresh_rt = |upn: &'static str, password: &'static str| {
        let m = &m;
        async move {
            let a = ropc(m, upn, password, "User.Read offline_access").await;
            assert_ok(&a);
            a.body["refresh_token"].as_str().unwrap().to_string()
        }
    };

    let rt = fresh_rt(ADELE, ADELE_PASSWORD).await;
    let megans = fresh_rt(MEGAN, MEGAN_PASSWORD).await;
    m.revoke_refresh_tokens(ADELE);
    assert_aadsts(
        &refresh(&m, &rt, "User.Read").await,
        400,
        "invalid_grant",
        70008,
    );
    let megans = refresh(&m, &megans, "User.Read").await;
    assert_ok(&megans);

    let rt = fresh_rt(ADELE, ADELE_PASSWORD).await;
    m.expire_refresh_tokens_by_inactivity(ADELE);
    let inactive = refresh(&m, &rt, "User.Read").await;
    assert_aadsts(&inactive, 400, "invalid_grant", 700082);
    assert!(
        inactive.body["error_description"]
            .as_str()
            .unwrap()
            .contains("was inactive for 90.00:00:00")
    );

    let rt = fresh_rt(ADELE, ADELE_PASSWORD).await;
    let kept_alive = fresh_rt(MEGAN, MEGAN_PASSWORD).await;
    m.advance_clock(Duration::from_secs(89 * 24 * 3600));
    let kept_alive = refresh(&m, &kept_alive, "User.Read").await;
    assert_ok(&kept_alive);
    m.advance_clock(Duration::from_secs(2 * 24 * 3600));
    assert_aadsts(
        &refresh(&m, &rt, "User.Read").await,
        400,
        "invalid_grant",
        700082,
    );
    let kept_alive = kept_alive.body["refresh_token"].as_str().unwrap();
    assert_ok(&refresh(&m, kept_alive, "User.Read").await);

    let rt = fresh_rt(ADELE, ADELE_PASSWORD).await;
    m.require_mfa(ADELE);
    let mfa = refresh(&m, &rt, "User.Read").await;
    assert_aadsts(&mfa, 400, "invalid_grant", 50076);
    assert_eq!(mfa.body["suberror"], "basic_action");
    assert!(
        mfa.body["claims"]
            .as_str()
            .is_some_and(|c| c.contains("access_token"))
    );
    assert!(
        mfa.body["error_description"]
            .as_str()
            .unwrap()
            .contains("'00000003-0000-0000-c000-000000000000'")
    );

    let rt = fresh_rt(MEGAN, MEGAN_PASSWORD).await;
    m.revoke_consent(PUBLIC_APP);
    assert_aadsts(
        &refresh(&m, &rt, "User.Read").await,
        400,
        "invalid_grant",
        65001,
    );
}

#[tokio::test]
async fn password_grant_succeeds_refuses_bad_passwords_mfa_and_disabled_public_flows() {
    let m = mock().await;
    let ok = ropc(
        &m,
        ADELE,
        ADELE_PASSWORD,
        "User.Read openid profile email offline_access",
    )
    .await;
    assert_ok(&ok);
    assert!(ok.body["refresh_token"].is_string());
    let id = claims(ok.body["id_token"].as_str().unwrap());
    assert_eq!(id["email"], ADELE);
    assert_eq!(access_claims(&ok)["azpacr"], "0");

    let without_offline = ropc(&m, ADELE, ADELE_PASSWORD, "User.Read").await;
    assert_ok(&without_offline);
    assert!(without_offline.body.get("refresh_token").is_none());
    assert!(without_offline.body.get("id_token").is_none());

    let bad = ropc(&m, ADELE, "wrong", "User.Read").await;
    assert_aadsts(&bad, 400, "invalid_grant", 50126);
    assert!(bad.body["error_description"].as_str().unwrap().starts_with(
        "AADSTS50126: Error validating credentials due to invalid username or password."
    ));
    assert_aadsts(
        &ropc(&m, "ghost@contoso.onmicrosoft.com", "x", "User.Read").await,
        400,
        "invalid_grant",
        50034,
    );

    m.require_mfa(MEGAN);
    let mfa = ropc(&m, MEGAN, MEGAN_PASSWORD, "User.Read").await;
    assert_aadsts(&mfa, 400, "invalid_grant", 50076);
    assert_eq!(mfa.body["suberror"], "basic_action");

    // A public client must not send a secret.
    let with_secret = token(
        &m,
        &[
            ("grant_type", "password"),
            ("client_id", PUBLIC_APP),
            ("client_secret", "anything"),
            ("username", ADELE),
            ("password", ADELE_PASSWORD),
            ("scope", "User.Read"),
        ],
    )
    .await;
    assert_aadsts(&with_secret, 401, "invalid_client", 700025);
    assert!(with_secret.body["error_description"].as_str().unwrap().starts_with(
        "AADSTS700025: Client is public so neither 'client_assertion' nor 'client_secret' should be presented."
    ));

    // The confidential web app has public client flows disabled…
    let web = |secret: Option<&'static str>| {
        let mut form = vec![
            ("grant_type", "password"),
            ("client_id", WEB_APP),
            ("username", ADELE),
            ("password", ADELE_PASSWORD),
            ("scope", "User.Read"),
        ];
        if let Some(s) = secret {
            form.push(("client_secret", s));
        }
        let endpoint = m.token_endpoint(TENANT_ID);
        async move { answer(http().post(endpoint).form(&form).send().await.unwrap()).await }
    };
    let bare = web(None).await;
    assert_aadsts(&bare, 401, "invalid_client", 7000218);
    assert!(bare.body["error_description"].as_str().unwrap().starts_with(
        "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'."
    ));
    // …but may authenticate with its secret.
    assert_ok(&web(Some(WEB_APP_SECRET)).await);

    m.set_public_client_flows(PUBLIC_APP, false);
    assert_aadsts(
        &ropc(&m, ADELE, ADELE_PASSWORD, "User.Read").await,
        401,
        "invalid_client",
        7000218,
    );
    m.set_public_client_flows(PUBLIC_APP, true);
    assert_ok(&ropc(&m, ADELE, ADELE_PASSWORD, "User.Read").await);
}

#[tokio::test]
async fn faults_latency_and_the_token_request_counter() {
    let m = mock().await;
    let cc = [
        ("grant_type", "client_credentials"),
        ("client_id", DAEMON_APP),
        ("client_secret", DAEMON_APP_SECRET),
        ("scope", "https://graph.microsoft.com/.default"),
    ];
    assert_eq!(m.token_requests(), 0);
    m.fail_token_requests(
        Fault::TooManyRequests {
            retry_after_secs: 7,
        },
        2,
    );
    for _ in 0..2 {
        let throttled = token(&m, &cc).await;
        assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(throttled.headers.get("retry-after").unwrap(), "7");
        assert_eq!(throttled.body["error"], "temporarily_unavailable");
        assert!(throttled.body["error_codes"][0].is_u64());
    }
    assert_ok(&token(&m, &cc).await);

    m.fail_token_requests(Fault::ServerError { status: 503 }, 1);
    let unavailable = token(&m, &cc).await;
    assert_eq!(unavailable.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(unavailable.body["error"], "temporarily_unavailable");
    m.fail_token_requests(Fault::ServerError { status: 500 }, 1);
    assert_eq!(
        token(&m, &cc).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_ok(&token(&m, &cc).await);
    assert_eq!(m.token_requests(), 6);

    // Discovery and device code requests are not token requests.
    http().get(m.discovery_url(TENANT_ID)).send().await.unwrap();
    assert_eq!(m.token_requests(), 6);

    m.set_latency(Duration::from_millis(150));
    let started = Instant::now();
    assert_ok(&token(&m, &cc).await);
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(m.token_requests(), 7);

    let recorded = m.requests();
    assert!(recorded.iter().any(|r| r.method == "POST"
        && r.uri == format!("/{TENANT_ID}/oauth2/v2.0/token")
        && r.status == 429));
}

#[tokio::test]
async fn errors_have_entras_json_shape_and_echo_the_correlation_id() {
    let m = mock().await;
    let correlation = "7f3c9d2e-1b4a-4c8d-9e6f-0a1b2c3d4e5f";
    let response = http()
        .post(m.token_endpoint(TENANT_ID))
        .header("client-request-id", correlation)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DAEMON_APP),
            ("client_secret", "wrong"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    let a = answer(response).await;
    assert_aadsts(&a, 401, "invalid_client", 7000215);
    let body = a.body.as_object().unwrap();
    for field in [
        "error",
        "error_description",
        "error_codes",
        "timestamp",
        "trace_id",
        "correlation_id",
        "error_uri",
    ] {
        assert!(body.contains_key(field), "{field} missing: {:?}", body);
    }
    assert_eq!(a.body["correlation_id"], correlation);
    assert_eq!(a.headers.get("client-request-id").unwrap(), correlation);
    let trace_id = a.body["trace_id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(trace_id).is_ok());
    let timestamp = a.body["timestamp"].as_str().unwrap();
    assert!(
        time::PrimitiveDateTime::parse(
            timestamp,
            time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z")
        )
        .is_ok(),
        "{timestamp}"
    );
    let description = a.body["error_description"].as_str().unwrap();
    assert!(
        description.ends_with(&format!(
            " Trace ID: {trace_id} Correlation ID: {correlation} Timestamp: {timestamp}"
        )),
        "{description}"
    );
    assert_eq!(
        a.body["error_uri"],
        format!("{}/error?code=7000215", m.base_url())
    );
    assert!(
        a.headers
            .get("cache-control")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("no-store")
    );

    // Without a client-request-id, a fresh correlation ID.
    let a = token(&m, &[("client_id", DAEMON_APP)]).await;
    assert_aadsts(&a, 400, "invalid_request", 900144);
    assert!(uuid::Uuid::parse_str(a.body["correlation_id"].as_str().unwrap()).is_ok());
    assert_aadsts(
        &token(
            &m,
            &[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:saml2-bearer",
                ),
                ("client_id", DAEMON_APP),
            ],
        )
        .await,
        400,
        "unsupported_grant_type",
        70003,
    );
    assert_aadsts(
        &token_at(&m, "fabrikam.com", &[("grant_type", "client_credentials")]).await,
        400,
        "invalid_request",
        90002,
    );
    assert_aadsts(
        &token(&m, &[("grant_type", "client_credentials")]).await,
        400,
        "invalid_request",
        900144,
    );

    let get = answer(
        http()
            .get(m.token_endpoint(TENANT_ID))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(get.body["error_codes"], json!([900561]));

    // Garbage in, an Entra error out; never a panic.
    let garbage = answer(
        http()
            .post(m.token_endpoint(TENANT_ID))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", "Basic %%%")
            .body(vec![0xff, 0xfe, b'=', b'&', b'%'])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
    assert!(garbage.body["error_codes"][0].is_u64());
}

#[tokio::test]
async fn the_organizations_alias_and_the_domain_reach_the_seeded_tenant() {
    let m = mock().await;
    for tenant in ["organizations", "common", TENANT_DOMAIN] {
        let a = token_at(
            &m,
            tenant,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", DAEMON_APP),
                ("client_secret", DAEMON_APP_SECRET),
                ("scope", "https://graph.microsoft.com/.default"),
            ],
        )
        .await;
        assert_ok(&a);
        assert_eq!(access_claims(&a)["tid"], TENANT_ID, "{tenant}");
    }
}

#[tokio::test]
async fn token_lifetime_refresh_in_and_the_clock_shape_issued_tokens() {
    let m = mock().await;
    m.set_token_lifetime(120);
    m.set_refresh_in(Some(60));
    let a = ropc(&m, ADELE, ADELE_PASSWORD, "User.Read").await;
    assert_ok(&a);
    assert_eq!(a.body["expires_in"], 120);
    assert_eq!(a.body["refresh_in"], 60);
    let at = access_claims(&a);
    assert_eq!(
        at["exp"].as_i64().unwrap() - at["iat"].as_i64().unwrap(),
        120
    );

    m.advance_clock(Duration::from_secs(7200));
    let later = access_claims(&ropc(&m, ADELE, ADELE_PASSWORD, "User.Read").await);
    let iat = later["iat"].as_u64().unwrap();
    assert!(iat >= now() + 7200 - 5 && iat <= now() + 7200 + 5, "{iat}");
}

#[tokio::test]
async fn tls_mock_serves_https_to_clients_that_trust_its_ca() {
    let m = MockMicrosoft::start_tls(Seed::contoso()).await.unwrap();
    assert!(
        m.base_url().starts_with("https://127.0.0.1:"),
        "{}",
        m.base_url()
    );
    let ca = m.ca_pem().expect("a CA when serving TLS");
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .build()
        .unwrap();
    let doc: Value = trusting
        .get(m.discovery_url(TENANT_ID))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], format!("{}/{TENANT_ID}/v2.0", m.base_url()));
    let issued = trusting
        .post(m.token_endpoint(TENANT_ID))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DAEMON_APP),
            ("client_secret", DAEMON_APP_SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status(), StatusCode::OK);
    assert_eq!(m.token_requests(), 1);
    assert_eq!(m.requests().len(), 2);
    assert_eq!(
        m.requests()[1].uri,
        format!("/{TENANT_ID}/oauth2/v2.0/token")
    );

    let untrusting = reqwest::Client::new();
    assert!(
        untrusting
            .get(m.discovery_url(TENANT_ID))
            .send()
            .await
            .is_err()
    );
    assert!(
        MockMicrosoft::start(Seed::contoso())
            .await
            .unwrap()
            .ca_pem()
            .is_none()
    );
}
