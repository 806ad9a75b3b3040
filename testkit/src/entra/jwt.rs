//! The mock's token signing key (RS256).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use sha1::Sha1;

/// The mock's signing key, embedded: tokens verify across restarts of the mock.
const SIGNING_KEY_PEM: &str = include_str!("../../keys/entra-signing.pem");

pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn sha256_b64url(bytes: &[u8]) -> String {
    b64url(&Sha256::digest(bytes))
}

/// The key that signs access and ID tokens, with its public half as a JWK.
pub(crate) struct SigningKey {
    encoding: EncodingKey,
    pub kid: String,
    pub n: String,
    pub e: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    pub(crate) fn load() -> Result<Self, String> {
        let private = rsa::RsaPrivateKey::from_pkcs8_pem(SIGNING_KEY_PEM)
            .map_err(|e| format!("the embedded signing key is not a PKCS#8 RSA key: {e}"))?;
        let n = private.n().to_bytes_be();
        let e = private.e().to_bytes_be();
        let encoding = EncodingKey::from_rsa_pem(SIGNING_KEY_PEM.as_bytes())
            .map_err(|e| format!("the embedded signing key cannot sign: {e}"))?;
        // Entra's kids look like a base64url SHA-1 thumbprint; derive one from the modulus.
        let kid = b64url(&Sha1::digest(&n));
        Ok(Self {
            encoding,
            kid,
            n: b64url(&n),
            e: b64url(&e),
        })
    }

    pub(crate) fn sign(&self, claims: &Value) -> Result<String, String> {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".into());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| format!("cannot sign a token: {e}"))
    }

    /// The public half, to verify the tokens this key signed (the Graph mock does).
    pub(crate) fn decoding_key(&self) -> Result<jsonwebtoken::DecodingKey, String> {
        jsonwebtoken::DecodingKey::from_rsa_components(&self.n, &self.e)
            .map_err(|e| format!("the signing key's public half is unusable: {e}"))
    }

    pub(crate) fn jwk(&self, issuer: &str) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "n": self.n,
            "e": self.e,
            "alg": "RS256",
            "issuer": issuer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_key_signs_tokens_that_its_jwk_verifies() {
        let key = SigningKey::load().unwrap();
        let token = key
            .sign(&json!({"sub": "x", "exp": 4_000_000_000u64}))
            .unwrap();
        let decoding = jsonwebtoken::DecodingKey::from_rsa_components(&key.n, &key.e).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<Value>(&token, &decoding, &validation).unwrap();
        assert_eq!(data.claims["sub"], "x");
        assert_eq!(data.header.kid.as_deref(), Some(key.kid.as_str()));
    }
}
