//! The `private_key_jwt` client assertion (RFC 7523 §2.2, Entra's certificate credential):
//! an RS256 JWT with an `x5t#S256` header naming the certificate, `aud` = the token endpoint,
//! `iss` = `sub` = the client ID, a unique `jti`, and a lifetime of a few minutes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use time::OffsetDateTime;

use super::AuthError;
use crate::model::{ClientCertificate, ClientId};

/// How long an assertion is valid.
pub const LIFETIME: time::Duration = time::Duration::minutes(5);

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    iss: String,
    sub: String,
    jti: String,
    nbf: i64,
    iat: i64,
    exp: i64,
}

/// Signs a fresh assertion for one request to `token_endpoint`.
pub fn client_assertion(
    certificate: &ClientCertificate,
    client_id: &ClientId,
    token_endpoint: &str,
    now: OffsetDateTime,
) -> Result<String, AuthError> {
    let mut header = Header::new(Algorithm::RS256);
    header.typ = Some("JWT".into());
    header.x5t_s256 = Some(URL_SAFE_NO_PAD.encode(certificate.sha256()));
    let claims = Claims {
        aud: token_endpoint,
        iss: client_id.to_string(),
        sub: client_id.to_string(),
        jti: uuid::Uuid::new_v4().to_string(),
        nbf: now.unix_timestamp(),
        iat: now.unix_timestamp(),
        exp: (now + LIFETIME).unix_timestamp(),
    };
    let key = EncodingKey::from_rsa_pem(certificate.private_key().expose().as_bytes()).map_err(|e| {
        AuthError::Unsupported(format!(
            "the connection's private key cannot sign a client assertion ({e}); it must be an RSA key in PEM"
        ))
    })?;
    jsonwebtoken::encode(&header, &claims, &key)
        .map_err(|e| AuthError::Unsupported(format!("signing the client assertion failed: {e}")))
}
