//! HTTPS for the mocks: a throwaway certificate authority and an accept loop.
//!
//! TLS connections are accepted with tokio-rustls (ring provider, chosen explicitly) by the
//! accept loop in `conn.rs`.

use std::fmt;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, ServerConfig};

/// A server certificate for `127.0.0.1`, `::1` and `localhost`, issued by a fresh test CA.
///
/// Clients trust [`TlsIdentity::ca_pem`] (e.g. reqwest's `Certificate::from_pem` +
/// `add_root_certificate`). The private key never leaves the process.
pub struct TlsIdentity {
    /// The CA certificate, PEM: what a client adds as a trusted root.
    pub ca_pem: String,
    /// The server certificate, DER.
    pub cert_der: Vec<u8>,
    /// The server certificate's private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("ca_pem", &self.ca_pem)
            .field("cert_der", &format_args!("{} bytes", self.cert_der.len()))
            .field("key_der", &"[redacted]")
            .finish()
    }
}

impl TlsIdentity {
    /// Makes a new CA and a loopback server certificate signed by it.
    pub fn generate_for_loopback() -> std::io::Result<Self> {
        let tls_err = |what: &str, e: rcgen::Error| {
            std::io::Error::other(format!("cannot create the test {what}: {e}"))
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| tls_err("CA certificate", e))?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "exgate-mock test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().map_err(|e| tls_err("CA key", e))?;
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key)
            .map_err(|e| tls_err("CA certificate", e))?;

        let mut leaf_params = CertificateParams::new(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ])
        .map_err(|e| tls_err("server certificate", e))?;
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "exgate-mock");
        let leaf_key = KeyPair::generate().map_err(|e| tls_err("server key", e))?;
        let leaf = leaf_params
            .signed_by(&leaf_key, &ca)
            .map_err(|e| tls_err("server certificate", e))?;
        Ok(Self {
            ca_pem: ca.pem(),
            cert_der: leaf.der().to_vec(),
            key_der: leaf_key.serialize_der(),
        })
    }
}

/// The acceptor of the HTTPS server (ALPN `h2`, `http/1.1`).
pub(crate) fn acceptor(cert_der: Vec<u8>, key_der: Vec<u8>) -> std::io::Result<TlsAcceptor> {
    acceptor_for(
        cert_der,
        key_der,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    )
}

/// The acceptor of the mail servers (IMAP, POP, SMTP: no ALPN).
pub(crate) fn mail_acceptor(cert_der: Vec<u8>, key_der: Vec<u8>) -> std::io::Result<TlsAcceptor> {
    acceptor_for(cert_der, key_der, Vec::new())
}

fn acceptor_for(
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
    alpn: Vec<Vec<u8>>,
) -> std::io::Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| std::io::Error::other(format!("cannot configure TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert_der)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der)),
        )
        .map_err(|e| {
            std::io::Error::other(format!("the TLS certificate or key is unusable: {e}"))
        })?;
    config.alpn_protocols = alpn;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
