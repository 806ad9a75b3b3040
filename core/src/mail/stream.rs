//! The byte stream under IMAP, POP3 and SMTP: TCP with implicit TLS, or plain TCP upgraded by
//! STARTTLS/STLS. TLS trusts the system's roots (the webpki root set, as the HTTP client) plus
//! `tls.ca_file`, through rustls with the ring provider.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use super::url::{MailUrl, Security};
use crate::config::NetworkSettings;
use crate::net::{CONNECT_TIMEOUT, ClientBuildError};

/// A connection to a mail server, before or after TLS.
#[derive(Debug)]
pub enum MailStream {
    /// Plain TCP: only ever used up to STARTTLS.
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl MailStream {
    pub fn is_tls(&self) -> bool {
        matches!(self, Self::Tls(_))
    }
}

/// Why a mail server could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to {url}: {source}")]
    Tcp { url: String, source: io::Error },
    #[error("connecting to {url} took longer than {secs} s", secs = CONNECT_TIMEOUT.as_secs())]
    Timeout { url: String },
    #[error("the TLS handshake with {url} failed: {source}")]
    Tls { url: String, source: io::Error },
    #[error("`{host}` is not a valid TLS server name")]
    ServerName { host: String },
}

/// Opens mail connections with one TLS configuration; cheap to clone.
#[derive(Clone)]
pub struct MailConnector {
    tls: TlsConnector,
}

impl std::fmt::Debug for MailConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailConnector").finish_non_exhaustive()
    }
}

impl MailConnector {
    /// Trusts the webpki roots and every certificate of `network.ca_pem`.
    pub fn new(network: &NetworkSettings) -> Result<MailConnector, ClientBuildError> {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(pem) = &network.ca_pem {
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| {
                    ClientBuildError::new(format!(
                        "tls.ca_file holds an unreadable certificate: {e}"
                    ))
                })?;
                roots.add(cert).map_err(|e| {
                    ClientBuildError::new(format!("tls.ca_file holds an unusable certificate: {e}"))
                })?;
                added += 1;
            }
            if added == 0 {
                return Err(ClientBuildError::new(
                    "tls.ca_file holds no PEM certificate".to_owned(),
                ));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientBuildError::new(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(MailConnector {
            tls: TlsConnector::from(Arc::new(config)),
        })
    }

    /// Connects to `url`: a TLS stream for implicit TLS, a plain one the protocol must upgrade
    /// with [`MailConnector::start_tls`] after its STARTTLS/STLS exchange.
    pub async fn connect(&self, url: &MailUrl) -> Result<MailStream, ConnectError> {
        let addr = (url.host(), url.port());
        let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(source)) => {
                return Err(ConnectError::Tcp {
                    url: url.to_string(),
                    source,
                });
            }
            Err(_) => {
                return Err(ConnectError::Timeout {
                    url: url.to_string(),
                });
            }
        };
        // Commands and answers are small and interleaved; Nagle would add latency to each.
        let _ = tcp.set_nodelay(true);
        match url.security() {
            Security::Tls => self.handshake(tcp, url).await,
            Security::StartTls => Ok(MailStream::Plain(tcp)),
        }
    }

    /// Upgrades a plain stream after the server agreed to STARTTLS/STLS. A stream that already
    /// is TLS is returned as it is.
    pub async fn start_tls(
        &self,
        stream: MailStream,
        url: &MailUrl,
    ) -> Result<MailStream, ConnectError> {
        match stream {
            MailStream::Plain(tcp) => self.handshake(tcp, url).await,
            tls @ MailStream::Tls(_) => Ok(tls),
        }
    }

    async fn handshake(&self, tcp: TcpStream, url: &MailUrl) -> Result<MailStream, ConnectError> {
        let name =
            ServerName::try_from(url.host().to_owned()).map_err(|_| ConnectError::ServerName {
                host: url.host().to_owned(),
            })?;
        match tokio::time::timeout(CONNECT_TIMEOUT, self.tls.connect(name, tcp)).await {
            Ok(Ok(tls)) => Ok(MailStream::Tls(Box::new(tls))),
            Ok(Err(source)) => Err(ConnectError::Tls {
                url: url.to_string(),
                source,
            }),
            Err(_) => Err(ConnectError::Timeout {
                url: url.to_string(),
            }),
        }
    }
}

impl AsyncRead for MailStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MailStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
