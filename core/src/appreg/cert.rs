//! A self-signed certificate made locally for an app's certificate credential: an RSA 2048 key
//! (what Entra's RS256 client assertions need), the certificate signed by it with rcgen. Only the
//! certificate is uploaded; the private key goes to exgate's store and nowhere else.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use time::OffsetDateTime;

use crate::secret::Secret;

/// A generated certificate credential.
#[derive(Debug)]
pub struct GeneratedCertificate {
    pub certificate_pem: String,
    /// The DER certificate in base64 (a `keyCredential`'s `key`).
    pub der_base64: String,
    pub private_key_pem: Secret,
}

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot make a certificate: {0}")]
pub struct CertificateError(String);

/// rand_core 0.6's interface (what rsa 0.9 takes) over the operating system's generator.
struct OsRandom;

impl rsa::rand_core::RngCore for OsRandom {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        // The OS generator failing is not recoverable for key generation; an all-zero key
        // must never be made, so abort rather than continue.
        if getrandom::fill(dest).is_err() {
            std::process::abort();
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rsa::rand_core::CryptoRng for OsRandom {}

/// Makes a certificate named `CN=<name>` valid from `not_before` to `not_after`.
pub fn generate_certificate(
    name: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<GeneratedCertificate, CertificateError> {
    let key = rsa::RsaPrivateKey::new(&mut OsRandom, 2048)
        .map_err(|e| CertificateError(e.to_string()))?;
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| CertificateError(e.to_string()))?;
    let pair = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256)
        .map_err(|e| CertificateError(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| CertificateError(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params
        .self_signed(&pair)
        .map_err(|e| CertificateError(e.to_string()))?;
    Ok(GeneratedCertificate {
        certificate_pem: cert.pem(),
        der_base64: B64.encode(cert.der()),
        private_key_pem: Secret::new(pem.as_str()),
    })
}
