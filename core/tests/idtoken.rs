//! ID token validation against a provider's key set: key rotation (one refetch on an unknown
//! `kid`), the algorithm a key declares, and shared-secret algorithms.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use exgate_core::auth::AuthError;
use exgate_core::auth::idtoken::{Expected, KeyCache, validate};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};
use time::OffsetDateTime;

const KEY: &str = include_str!("fixtures/app.key");
const ISSUER: &str = "https://idp.test/realms/staff";
const CLIENT: &str = "exgate-portal";

fn jwk(kid: &str, alg: &str) -> Value {
    let private = rsa::RsaPrivateKey::from_pkcs8_pem(KEY).unwrap();
    json!({
        "kty": "RSA", "use": "sig", "kid": kid, "alg": alg,
        "n": URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
    })
}

fn sign(kid: &str, alg: Algorithm, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    let key = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(b"the-client-secret"),
        _ => EncodingKey::from_rsa_pem(KEY.as_bytes()).unwrap(),
    };
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn claims(now: i64) -> Value {
    json!({
        "iss": ISSUER, "aud": CLIENT, "sub": "u1", "iat": now, "exp": now + 600,
        "nonce": "n-1", "preferred_username": "adele@contoso.test"
    })
}

/// A JWKS endpoint whose answers are taken in turn from `sets` (the last one repeats), and
/// how many times it was asked.
async fn jwks_server(sets: Vec<Value>) -> (exgate_testkit::MockServer, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let router = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let set = sets[n.min(sets.len() - 1)].clone();
            async move { axum::Json(set) }
        }),
    );
    (
        exgate_testkit::MockServer::start(router).await.unwrap(),
        calls,
    )
}

fn expected(now: OffsetDateTime) -> Expected<'static> {
    Expected {
        issuer: ISSUER,
        client_id: CLIENT,
        nonce: Some("n-1"),
        now,
    }
}

#[tokio::test]
async fn an_unknown_key_id_makes_exgate_fetch_the_key_set_once_more() {
    let now = OffsetDateTime::now_utc();
    // The provider rotated: the cached set lacks the new key, the next answer has it.
    let (server, calls) = jwks_server(vec![
        json!({"keys": [jwk("old", "RS256")]}),
        json!({"keys": [jwk("old", "RS256"), jwk("new", "RS256")]}),
    ])
    .await;
    let uri: url::Url = format!("{}/jwks", server.base_url()).parse().unwrap();
    let http = reqwest::Client::new();
    let keys = KeyCache::default();

    let old = sign("old", Algorithm::RS256, &claims(now.unix_timestamp()));
    let who = validate(&http, &keys, &uri, &old, &expected(now))
        .await
        .unwrap();
    assert_eq!(who.username(), Some("adele@contoso.test"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Cached: no second fetch for a known key.
    validate(&http, &keys, &uri, &old, &expected(now))
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let new = sign("new", Algorithm::RS256, &claims(now.unix_timestamp()));
    validate(&http, &keys, &uri, &new, &expected(now))
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // A key ID nobody has: one refetch, then a clear refusal.
    let stray = sign("stray", Algorithm::RS256, &claims(now.unix_timestamp()));
    let err = validate(&http, &keys, &uri, &stray, &expected(now))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::IdToken(_)), "{err}");
    assert!(err.to_string().contains("stray"), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn only_the_asymmetric_algorithm_a_key_declares_is_accepted() {
    let now = OffsetDateTime::now_utc();
    let (server, _) = jwks_server(vec![json!({"keys": [jwk("k1", "RS384")]})]).await;
    let uri: url::Url = format!("{}/jwks", server.base_url()).parse().unwrap();
    let http = reqwest::Client::new();
    let keys = KeyCache::default();

    // The key declares RS384; a token signed RS256 with it is refused.
    let rs256 = sign("k1", Algorithm::RS256, &claims(now.unix_timestamp()));
    let err = validate(&http, &keys, &uri, &rs256, &expected(now))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("declares RS384"), "{err}");
    let rs384 = sign("k1", Algorithm::RS384, &claims(now.unix_timestamp()));
    validate(&http, &keys, &uri, &rs384, &expected(now))
        .await
        .unwrap();

    // HMAC would make a shared secret a signing key: refused whatever it says.
    let hs = sign("k1", Algorithm::HS256, &claims(now.unix_timestamp()));
    let err = validate(&http, &keys, &uri, &hs, &expected(now))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("HS256"), "{err}");
    assert!(!err.to_string().contains(&hs), "{err}");

    // A token for another client.
    let mut other = claims(now.unix_timestamp());
    other["aud"] = json!(["someone-else"]);
    let err = validate(
        &http,
        &keys,
        &uri,
        &sign("k1", Algorithm::RS384, &other),
        &expected(now),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("audience"), "{err}");
}
