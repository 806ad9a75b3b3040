//! The mail protocols' stream: implicit TLS and STARTTLS against a real TLS server on 127.0.0.1,
//! trusting only the configured CA.

use std::sync::Arc;

use exgate_core::config::NetworkSettings;
use exgate_core::mail::{MailConnector, MailUrl};
use exgate_testkit::TlsIdentity;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, ServerConfig};

fn acceptor(identity: &TlsIdentity) -> TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(identity.cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_der.clone())),
        )
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

fn trusting(identity: &TlsIdentity) -> MailConnector {
    MailConnector::new(&NetworkSettings {
        ca_pem: Some(identity.ca_pem.clone().into_bytes()),
        ..NetworkSettings::default()
    })
    .unwrap()
}

/// A server that greets in the clear, answers `STARTTLS`, then greets again over TLS.
async fn starttls_server(
    identity: &TlsIdentity,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = acceptor(identity);
    let task = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        tcp.write_all(b"* OK ready\r\n").await.unwrap();
        let mut line = String::new();
        let mut reader = BufReader::new(&mut tcp);
        reader.read_line(&mut line).await.unwrap();
        tcp.write_all(b"a OK begin TLS\r\n").await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        tls.write_all(b"* OK secure\r\n").await.unwrap();
        line
    });
    (addr, task)
}

#[tokio::test]
async fn implicit_tls_trusts_the_configured_ca() {
    let identity = TlsIdentity::generate_for_loopback().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = acceptor(&identity);
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        tls.write_all(b"* OK hello\r\n").await.unwrap();
    });
    let url: MailUrl = format!("imaps://127.0.0.1:{port}").parse().unwrap();
    let mut stream = trusting(&identity).connect(&url).await.unwrap();
    assert!(stream.is_tls());
    let mut greeting = [0u8; 12];
    stream.read_exact(&mut greeting).await.unwrap();
    assert_eq!(&greeting, b"* OK hello\r\n");
}

#[tokio::test]
async fn starttls_upgrades_the_plain_stream() {
    let identity = TlsIdentity::generate_for_loopback().unwrap();
    let (addr, server) = starttls_server(&identity).await;
    let url: MailUrl = format!("imap://127.0.0.1:{}", addr.port()).parse().unwrap();
    let connector = trusting(&identity);
    let mut stream = connector.connect(&url).await.unwrap();
    assert!(!stream.is_tls());
    let mut buf = [0u8; 12];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"* OK ready\r\n");
    stream.write_all(b"a STARTTLS\r\n").await.unwrap();
    let mut buf = [0u8; 16];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"a OK begin TLS\r\n");
    let mut stream = connector.start_tls(stream, &url).await.unwrap();
    assert!(stream.is_tls());
    let mut rest = [0u8; 13];
    stream.read_exact(&mut rest).await.unwrap();
    assert_eq!(&rest, b"* OK secure\r\n");
    assert_eq!(server.await.unwrap(), "a STARTTLS\r\n");
}

#[tokio::test]
async fn a_server_whose_ca_is_not_trusted_is_refused() {
    let identity = TlsIdentity::generate_for_loopback().unwrap();
    let other = TlsIdentity::generate_for_loopback().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = acceptor(&identity);
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = acceptor.accept(tcp).await;
    });
    let url: MailUrl = format!("pop3s://127.0.0.1:{port}").parse().unwrap();
    let err = trusting(&other).connect(&url).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("TLS handshake with pop3s://127.0.0.1"),
        "{err}"
    );
}

#[test]
fn a_ca_file_without_certificates_is_an_error_that_says_so() {
    let err = MailConnector::new(&NetworkSettings {
        ca_pem: Some(b"not a certificate".to_vec()),
        ..NetworkSettings::default()
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("tls.ca_file holds no PEM certificate"),
        "{err}"
    );
}
