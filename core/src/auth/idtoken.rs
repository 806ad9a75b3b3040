//! ID token validation (OIDC Core 1.0 §3.1.3.7): the token that says who signed in is believed
//! only when it is signed by one of the provider's keys (its discovery document's `jwks_uri`),
//! was issued by the provider's `issuer` for this client, is within its lifetime on exgate's
//! clock, and carries the `nonce` the authorization request sent.
//!
//! Keys are fetched with the identity-provider HTTP client and cached per `jwks_uri`; a token
//! whose key ID is not in the cached set makes exgate fetch the set once more (key rotation).
//! Only asymmetric algorithms are accepted, and only the one a key declares: `none` and HMAC
//! (`HS*`, which would make the client's own secret a signing key) are refused.
//! Errors name the check that failed, never the token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use url::Url;

use super::error::AuthError;
use super::oauth::Identity;
use crate::net;

/// How far apart exgate's clock and the provider's may be.
pub const CLOCK_SKEW: time::Duration = time::Duration::minutes(2);

/// The asymmetric algorithms exgate accepts (all that jsonwebtoken verifies, but HMAC).
const ACCEPTED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The placeholder in the issuer of Entra's multi-tenant discovery documents.
const TENANT_PLACEHOLDER: &str = "{tenantid}";

/// What a valid ID token must say.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// The discovery document's `issuer` (Entra's multi-tenant ones hold `{tenantid}`, which is
    /// replaced by the token's `tid`).
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// The nonce the authorization request sent; `None` for flows that send none (device code,
    /// password).
    pub nonce: Option<&'a str>,
    pub now: OffsetDateTime,
}

/// The provider's signing keys by `jwks_uri`, shared by every sign-in of a process.
#[derive(Debug, Default)]
pub struct KeyCache {
    sets: Mutex<HashMap<String, Arc<Vec<Value>>>>,
}

impl KeyCache {
    fn cached(&self, uri: &Url) -> Option<Arc<Vec<Value>>> {
        self.sets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(uri.as_str())
            .cloned()
    }

    async fn fetch(&self, http: &reqwest::Client, uri: &Url) -> Result<Arc<Vec<Value>>, AuthError> {
        let during = "key set (JWKS) request";
        let resp = http
            .get(uri.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| AuthError::Transport {
                during,
                endpoint: format!(
                    "{}://{}{}",
                    uri.scheme(),
                    uri.host_str().unwrap_or(""),
                    uri.path()
                ),
                message: if e.is_timeout() {
                    "timed out".into()
                } else {
                    "cannot connect".into()
                },
            })?;
        let status = resp.status().as_u16();
        let body = net::read_body(resp)
            .await
            .map_err(|message| AuthError::Protocol { during, message })?;
        if status != 200 {
            return Err(AuthError::Http {
                during,
                status,
                retry_after: None,
            });
        }
        #[derive(Deserialize)]
        struct Set {
            keys: Vec<Value>,
        }
        let set: Set = serde_json::from_slice(&body).map_err(|e| AuthError::Protocol {
            during,
            message: format!("{uri} is not a JSON Web Key Set: {e}"),
        })?;
        let keys = Arc::new(set.keys);
        self.sets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(uri.as_str().to_owned(), Arc::clone(&keys));
        Ok(keys)
    }
}

fn refuse(why: impl Into<String>) -> AuthError {
    AuthError::IdToken(why.into())
}

/// The header fields read before any key is chosen.
#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

fn header(token: &str) -> Result<(Algorithm, Option<String>), AuthError> {
    let not_jwt = || refuse("it is not a signed JWT (header.payload.signature)");
    let mut parts = token.split('.');
    let (Some(head), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(not_jwt());
    };
    let bytes = URL_SAFE_NO_PAD.decode(head).map_err(|_| not_jwt())?;
    let raw: RawHeader = serde_json::from_slice(&bytes).map_err(|_| not_jwt())?;
    let alg = raw
        .alg
        .ok_or_else(|| refuse("its header names no signing algorithm"))?;
    if alg.eq_ignore_ascii_case("none") {
        return Err(refuse("it is unsigned (alg `none`)"));
    }
    if alg.to_ascii_uppercase().starts_with("HS") {
        return Err(refuse(format!(
            "it is signed with {alg}, a shared-secret algorithm; only the provider's public keys \
             (RS256, PS256, ES256, EdDSA …) are accepted"
        )));
    }
    let parsed: Algorithm = alg
        .parse()
        .ok()
        .filter(|a| ACCEPTED.contains(a))
        .ok_or_else(|| refuse(format!("its signing algorithm `{alg}` is not accepted")))?;
    Ok((parsed, raw.kid))
}

/// The keys of `set` that may have signed a token with this `kid`.
fn candidates<'a>(set: &'a [Value], kid: Option<&str>) -> Vec<&'a Value> {
    set.iter()
        .filter(|k| k.get("use").and_then(Value::as_str) != Some("enc"))
        .filter(|k| match kid {
            Some(kid) => k.get("kid").and_then(Value::as_str) == Some(kid),
            None => true,
        })
        .collect()
}

fn decoding_key(jwk: &Value, alg: Algorithm) -> Result<DecodingKey, AuthError> {
    if let Some(declared) = jwk.get("alg").and_then(Value::as_str)
        && declared.parse::<Algorithm>().ok() != Some(alg)
    {
        return Err(refuse(format!(
            "it is signed with {alg:?}, but the provider's key declares {declared}"
        )));
    }
    let parsed: Jwk = serde_json::from_value(jwk.clone())
        .map_err(|e| refuse(format!("the provider's key is unusable: {e}")))?;
    DecodingKey::from_jwk(&parsed)
        .map_err(|e| refuse(format!("the provider's key is unusable: {e}")))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, client: &str) -> bool {
        match self {
            Self::One(a) => a == client,
            Self::Many(all) => all.iter().any(|a| a == client),
        }
    }
    fn len(&self) -> usize {
        match self {
            Self::One(_) => 1,
            Self::Many(all) => all.len(),
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<Audience>,
    exp: Option<i64>,
    iat: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    tid: Option<String>,
}

fn at(ts: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ts.to_string())
}

fn check_claims(claims: &Claims, expected: &Expected<'_>) -> Result<(), AuthError> {
    let issuer = claims
        .iss
        .as_deref()
        .ok_or_else(|| refuse("it names no issuer (iss)"))?;
    let want_issuer = match (expected.issuer.contains(TENANT_PLACEHOLDER), &claims.tid) {
        (true, Some(tid)) => expected.issuer.replace(TENANT_PLACEHOLDER, tid),
        (true, None) => {
            return Err(refuse(
                "it names no tenant (tid), which the provider's multi-tenant issuer needs",
            ));
        }
        (false, _) => expected.issuer.to_owned(),
    };
    if issuer != want_issuer {
        return Err(refuse(format!(
            "its issuer `{issuer}` is not the provider's issuer `{want_issuer}`"
        )));
    }
    let aud = claims
        .aud
        .as_ref()
        .ok_or_else(|| refuse("it names no audience (aud)"))?;
    if !aud.contains(expected.client_id) {
        return Err(refuse(format!(
            "its audience (aud) does not name this client `{}`",
            expected.client_id
        )));
    }
    if aud.len() > 1
        && claims
            .azp
            .as_deref()
            .is_some_and(|a| a != expected.client_id)
    {
        return Err(refuse(format!(
            "it was issued to another party (azp) than this client `{}`",
            expected.client_id
        )));
    }
    let now = expected.now.unix_timestamp();
    let skew = CLOCK_SKEW.whole_seconds();
    let exp = claims.exp.ok_or_else(|| refuse("it has no expiry (exp)"))?;
    if now > exp.saturating_add(skew) {
        return Err(refuse(format!("it expired at {}", at(exp))));
    }
    if let Some(nbf) = claims.nbf
        && nbf > now.saturating_add(skew)
    {
        return Err(refuse(format!("it is not valid before {} (nbf)", at(nbf))));
    }
    let iat = claims
        .iat
        .ok_or_else(|| refuse("it has no issue time (iat)"))?;
    if iat > now.saturating_add(skew) {
        return Err(refuse(format!(
            "it was issued in the future ({}; check both clocks)",
            at(iat)
        )));
    }
    if let Some(sent) = expected.nonce {
        match claims.nonce.as_deref() {
            Some(n) if n == sent => {}
            Some(_) => {
                return Err(refuse(
                    "its nonce is not the one this sign-in sent (a replayed or injected token)",
                ));
            }
            None => {
                return Err(refuse("it carries no nonce, but this sign-in sent one"));
            }
        }
    }
    Ok(())
}

/// Validates `token` and returns who it names.
pub async fn validate(
    http: &reqwest::Client,
    keys: &KeyCache,
    jwks_uri: &Url,
    token: &str,
    expected: &Expected<'_>,
) -> Result<Identity, AuthError> {
    let (alg, kid) = header(token)?;
    let mut set = match keys.cached(jwks_uri) {
        Some(set) => set,
        None => keys.fetch(http, jwks_uri).await?,
    };
    let mut refetched = false;
    let key = loop {
        let found = candidates(&set, kid.as_deref());
        match found.as_slice() {
            [one] => break decoding_key(one, alg)?,
            [] if !refetched => {
                // A key ID the cached set lacks: the provider may have rotated its keys.
                set = keys.fetch(http, jwks_uri).await?;
                refetched = true;
            }
            [] => {
                return Err(refuse(match &kid {
                    Some(kid) => format!("no key of the provider's key set has its key ID `{kid}`"),
                    None => "the provider's key set has no signing key".to_owned(),
                }));
            }
            _ => {
                return Err(refuse(
                    "it names no key ID (kid) and the provider has several keys",
                ));
            }
        }
    };
    let mut validation = Validation::new(alg);
    validation.algorithms = vec![alg];
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    validation.leeway = 0;
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::InvalidSignature => {
                refuse("its signature does not verify with the provider's key")
            }
            ErrorKind::InvalidAlgorithm => {
                refuse("its signing algorithm does not fit the provider's key")
            }
            _ => refuse(format!("it cannot be read: {e}")),
        }
    })?;
    let claims: Claims = serde_json::from_value(data.claims.clone())
        .map_err(|e| refuse(format!("its claims cannot be read: {e}")))?;
    check_claims(&claims, expected)?;
    serde_json::from_value(data.claims)
        .map_err(|e| refuse(format!("its claims cannot be read: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(v: Value) -> Claims {
        serde_json::from_value(v).unwrap()
    }

    fn expected(now: i64, nonce: Option<&'static str>) -> Expected<'static> {
        Expected {
            issuer: "https://idp.test/{tenantid}/v2.0",
            client_id: "exgate-portal",
            nonce,
            now: OffsetDateTime::from_unix_timestamp(now).unwrap(),
        }
    }

    #[test]
    fn the_multi_tenant_issuer_takes_the_tokens_tenant() {
        let now = 1_800_000_000;
        let good = serde_json::json!({
            "iss": "https://idp.test/t1/v2.0", "aud": "exgate-portal", "tid": "t1",
            "exp": now + 60, "iat": now, "nonce": "n1"
        });
        check_claims(&claims(good.clone()), &expected(now, Some("n1"))).unwrap();
        let mut other = good.clone();
        other["tid"] = "t2".into();
        let e = check_claims(&claims(other), &expected(now, Some("n1"))).unwrap_err();
        assert!(e.to_string().contains("issuer"), "{e}");
        let e = check_claims(&claims(good.clone()), &expected(now, Some("n2"))).unwrap_err();
        assert!(e.to_string().contains("nonce"), "{e}");
        let e = check_claims(&claims(good.clone()), &expected(now + 3600, None)).unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
        let e = check_claims(&claims(good), &expected(now - 3600, None)).unwrap_err();
        assert!(e.to_string().contains("future"), "{e}");
    }

    #[test]
    fn unsigned_and_shared_secret_tokens_are_refused_before_any_key_is_fetched() {
        let head = |alg: &str| URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}"}}"#));
        for alg in ["none", "HS256", "HS512"] {
            let token = format!("{}.e30.", head(alg));
            let e = header(&token).unwrap_err();
            assert!(matches!(e, AuthError::IdToken(_)), "{e}");
            assert!(!e.to_string().contains(&token), "{e}");
        }
        assert!(header(&format!("{}.e30.c2ln", head("RS256"))).is_ok());
    }
}
