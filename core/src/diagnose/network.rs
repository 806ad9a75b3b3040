//! The connection test's network probe of one host: name resolution, TCP, and (for https and
//! implicit-TLS mail servers) a TLS handshake against the roots exgate trusts. A chain that is
//! not trusted is read once more, without trusting it and sending nothing, only to name its
//! issuer: an unknown CA, or a TLS-inspecting proxy in front of a Microsoft host.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use crate::config::NetworkSettings;
use crate::net::CONNECT_TIMEOUT;

/// One host the connection reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Host {
    /// What it is for: `identity provider`, `Microsoft Graph`, `EWS`, `IMAP`, …
    pub role: String,
    pub host: String,
    pub port: u16,
    /// TLS from the first byte (https, imaps, pop3s, smtps).
    pub tls: bool,
}

/// A failed probe: what was seen, and the fix.
#[derive(Debug)]
pub(crate) struct Failure {
    pub evidence: String,
    pub fix: String,
}

/// Microsoft's public hosts: a chain for them that no public CA issued comes from a proxy.
const MICROSOFT_SUFFIXES: &[&str] = &[
    "microsoftonline.com",
    "microsoft.com",
    "office365.com",
    "office.com",
    "outlook.com",
    "microsoftonline.us",
    "microsoft.us",
    "office365.us",
    "chinacloudapi.cn",
    "partner.outlook.cn",
];

/// Names in the issuers of TLS-inspecting proxies' CAs.
const PROXY_VENDORS: &[&str] = &[
    "zscaler",
    "netskope",
    "palo alto",
    "fortinet",
    "fortigate",
    "blue coat",
    "bluecoat",
    "proxysg",
    "umbrella",
    "sophos",
    "forcepoint",
    "websense",
    "mcafee web gateway",
    "skyhigh",
    "check point",
    "barracuda",
    "cisco",
    "mitmproxy",
    "squid",
    "ssl inspection",
    "tls inspection",
];

fn is_microsoft_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    MICROSOFT_SUFFIXES
        .iter()
        .any(|s| host == *s || host.ends_with(&format!(".{s}")))
}

/// What an untrusted chain is: a proxy's (named so) or an unknown CA's. Pure, for tests.
pub(crate) fn explain_untrusted(host: &str, issuer: &str) -> Failure {
    let lower = issuer.to_ascii_lowercase();
    if is_microsoft_host(host) || PROXY_VENDORS.iter().any(|v| lower.contains(v)) {
        Failure {
            evidence: format!(
                "the TLS certificate {host} presented is issued by `{issuer}`, which is not a public CA {host} uses: a TLS-inspecting proxy sits between this machine and {host}"
            ),
            fix: format!(
                "add the proxy's CA certificate (PEM) to the file named by `tls.ca_file` in exgate.toml, or have the proxy exempt {host} from TLS inspection"
            ),
        }
    } else {
        Failure {
            evidence: format!(
                "the TLS certificate of {host} is issued by an unknown CA, `{issuer}`, which this machine does not trust"
            ),
            fix: format!(
                "put the certificate of the CA `{issuer}` (PEM) in a file and name it with `tls.ca_file` in exgate.toml (or give {host} a certificate from a public CA)"
            ),
        }
    }
}

fn roots(network: &NetworkSettings) -> RootCertStore {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = &network.ca_pem {
        for cert in CertificateDer::pem_slice_iter(pem).flatten() {
            let _ = roots.add(cert);
        }
    }
    roots
}

/// Reads a chain without judging it: only to name the issuer of a chain that was refused.
#[derive(Debug)]
struct ReadOnly(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for ReadOnly {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn issuer_of(der: &[u8]) -> String {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, c)| c.issuer().to_string())
        .unwrap_or_else(|_| "an unreadable certificate".to_owned())
}

async fn tcp(addrs: &[SocketAddr]) -> Result<TcpStream, String> {
    let mut last = "no address".to_owned();
    for addr in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => last = format!("{addr}: timed out after {} s", CONNECT_TIMEOUT.as_secs()),
        }
    }
    Err(last)
}

/// Probes `host`: the evidence when every stage passed.
pub(crate) async fn probe(host: &Host, network: &NetworkSettings) -> Result<String, Failure> {
    let target = format!("{} {}:{}", host.role, host.host, host.port);
    let bare = host.host.trim_start_matches('[').trim_end_matches(']');
    let (addrs, resolved) = if let Ok(ip) = bare.parse::<IpAddr>() {
        (
            vec![SocketAddr::new(ip, host.port)],
            "an IP address".to_owned(),
        )
    } else {
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host((bare, host.port)))
            .await
        {
            Ok(Ok(found)) => {
                let addrs: Vec<SocketAddr> = found.collect();
                let list: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
                (addrs, format!("resolved to {}", list.join(", ")))
            }
            Ok(Err(e)) => {
                return Err(Failure {
                    evidence: format!("{target}: name resolution failed: {e}"),
                    fix: format!(
                        "check this machine's DNS (`getent hosts {bare}`); behind a proxy that resolves names itself, let exgate resolve {bare} or reach it directly"
                    ),
                });
            }
            Err(_) => {
                return Err(Failure {
                    evidence: format!("{target}: name resolution timed out"),
                    fix: "check this machine's DNS servers (/etc/resolv.conf)".into(),
                });
            }
        }
    };
    let stream = tcp(&addrs).await.map_err(|e| Failure {
        evidence: format!("{target}: {resolved}; TCP connection failed: {e}"),
        fix: format!(
            "open the firewall from this machine to {bare} port {}, or check that the server listens there",
            host.port
        ),
    })?;
    if !host.tls {
        let _ = stream;
        return Ok(format!(
            "{target}: {resolved}; TCP connected; TLS starts later (STARTTLS) or not at all (plain http to loopback)"
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let name = ServerName::try_from(bare.to_owned()).map_err(|_| Failure {
        evidence: format!("{target}: `{bare}` is not a host name TLS can check"),
        fix: "use a DNS name or an IP address in the URL".into(),
    })?;
    let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure {
            evidence: format!("{target}: TLS cannot be set up: {e}"),
            fix: String::new(),
        })?
        .with_root_certificates(roots(network))
        .with_no_client_auth();
    match TlsConnector::from(Arc::new(config))
        .connect(name.clone(), stream)
        .await
    {
        Ok(tls) => {
            let (_, session) = tls.get_ref();
            let version = session
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default();
            let issuer = session
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| issuer_of(c))
                .unwrap_or_default();
            Ok(format!(
                "{target}: {resolved}; TCP connected; {version}, certificate issued by `{issuer}`, trusted"
            ))
        }
        Err(e) => {
            let text = e.to_string();
            let unknown_issuer = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(|r| {
                    matches!(
                        r,
                        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
                    )
                })
                || text.contains("UnknownIssuer");
            if !unknown_issuer {
                return Err(Failure {
                    evidence: format!("{target}: {resolved}; TCP connected; TLS failed: {text}"),
                    fix: format!(
                        "check {bare}'s certificate (its name, its dates) and that nothing between this machine and it interferes with TLS"
                    ),
                });
            }
            // Read the chain once more, trusting nothing and sending nothing, to name its issuer.
            let issuer = async {
                let stream = tcp(&addrs).await.ok()?;
                let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
                    .with_safe_default_protocol_versions()
                    .ok()?
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ReadOnly(Arc::clone(&provider))))
                    .with_no_client_auth();
                let tls = TlsConnector::from(Arc::new(config))
                    .connect(name, stream)
                    .await
                    .ok()?;
                let (_, session) = tls.get_ref();
                let chain = session.peer_certificates()?;
                // The top of the chain names the CA that should have been trusted.
                chain.last().map(|c| issuer_of(c))
            }
            .await
            .unwrap_or_else(|| "an issuer that could not be read".to_owned());
            let f = explain_untrusted(bare, &issuer);
            Err(Failure {
                evidence: format!("{target}: {resolved}; TCP connected; {}", f.evidence),
                fix: f.fix,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_microsoft_host_behind_an_inspecting_proxy_is_named_so() {
        let f = explain_untrusted("login.microsoftonline.com", "CN=Contoso Web Filter CA");
        assert!(
            f.evidence.contains("TLS-inspecting proxy"),
            "{}",
            f.evidence
        );
        assert!(
            f.fix.contains("tls.ca_file") && f.fix.contains("exempt login.microsoftonline.com")
        );
        let f = explain_untrusted("mail.contoso.com", "CN=Zscaler Root CA, O=Zscaler Inc.");
        assert!(
            f.evidence.contains("TLS-inspecting proxy"),
            "{}",
            f.evidence
        );
        let f = explain_untrusted("mail.contoso.com", "CN=Contoso Issuing CA 1");
        assert!(
            f.evidence.contains("unknown CA, `CN=Contoso Issuing CA 1`"),
            "{}",
            f.evidence
        );
        assert!(f.fix.contains("tls.ca_file"));
        assert!(!is_microsoft_host("evilmicrosoft.com"));
        assert!(is_microsoft_host("outlook.office365.com"));
    }
}
