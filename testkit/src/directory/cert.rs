//! Certificates registered on app registrations (key credentials), with the thumbprints
//! client assertions name them by.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

/// A certificate registered on an app.
#[derive(Debug, Clone)]
pub(crate) struct AppCert {
    /// base64url SHA-256 of the DER: the `x5t#S256` header.
    pub x5t_s256: String,
    /// base64url SHA-1 of the DER: the legacy `x5t` header.
    pub x5t: String,
    /// The RSA public key, PKCS#1 DER (what `DecodingKey::from_rsa_der` takes).
    pub public_key: Vec<u8>,
}

impl AppCert {
    pub(crate) fn from_pem(pem: &str) -> Result<Self, String> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map_err(|e| format!("not a PEM certificate: {e}"))?;
        let cert = pem
            .parse_x509()
            .map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let spki = cert.public_key();
        // rsaEncryption
        if spki.algorithm.algorithm.to_id_string() != "1.2.840.113549.1.1.1" {
            return Err("the certificate's key is not an RSA key".into());
        }
        Ok(Self {
            x5t_s256: URL_SAFE_NO_PAD.encode(Sha256::digest(&pem.contents)),
            x5t: URL_SAFE_NO_PAD.encode(Sha1::digest(&pem.contents)),
            public_key: spki.subject_public_key.data.to_vec(),
        })
    }
}

/// The bytes of a thumbprint header as clients write it: base64url with or without `=`
/// padding (MSAL for Python pads), or standard base64 (`+`, `/`). Entra compares the
/// thumbprint, not its spelling.
pub(crate) fn thumbprint_bytes(x5t: &str) -> Option<Vec<u8>> {
    let canonical: String = x5t
        .trim()
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    URL_SAFE_NO_PAD.decode(canonical).ok()
}

/// Upper-case hex, as Entra prints certificate thumbprints.
pub(crate) fn thumbprint_hex(x5t_b64url: &str) -> String {
    thumbprint_bytes(x5t_b64url)
        .map(|bytes| bytes.iter().map(|b| format!("{b:02X}")).collect())
        .unwrap_or_else(|| x5t_b64url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_certificate_is_usable_for_assertions() {
        let cert = AppCert::from_pem(crate::fixtures::APP_CERT_PEM).unwrap();
        // `openssl x509 -noout -fingerprint -sha1 / -sha256` of fixtures/app.crt
        assert_eq!(
            thumbprint_hex(&cert.x5t),
            "D6B2C2831EDA191BDF734AD39A96C30C8E39A3D7"
        );
        assert_eq!(
            thumbprint_hex(&cert.x5t_s256),
            "18B1EACBE6AF5088CE2F6B63398CC0050D860FCCD893CFD86435B16A6169E2DD"
        );
        let padded = format!("{}=", cert.x5t_s256);
        let standard = cert.x5t_s256.replace('-', "+").replace('_', "/");
        for spelling in [&padded, &standard] {
            assert_eq!(
                thumbprint_bytes(spelling),
                thumbprint_bytes(&cert.x5t_s256),
                "{spelling}"
            );
        }
        assert_eq!(thumbprint_bytes("not base64!"), None);
        assert!(
            AppCert::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                .is_err()
        );
    }
}
