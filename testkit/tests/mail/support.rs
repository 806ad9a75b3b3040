//! Tokens, TLS and a small line client for the mail tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::seed::*;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWrite, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// How long a test waits for an answer before failing (never reached when all is well).
pub const PATIENCE: Duration = Duration::from_secs(20);

pub async fn mock() -> MockMicrosoft {
    MockMicrosoft::start(exgate_testkit::Seed::contoso())
        .await
        .unwrap()
}

/// The contoso mock where the CLI app (PUBLIC_APP) is consented for EWS only on Exchange
/// Online: its delegated tokens carry no IMAP, POP or SMTP scope.
pub async fn mock_ews_only_consent() -> MockMicrosoft {
    let mut seed = exgate_testkit::Seed::contoso();
    let app = seed.tenants[0]
        .apps
        .iter_mut()
        .find(|a| a.client_id == PUBLIC_APP)
        .unwrap();
    app.delegated_permissions.insert(
        OUTLOOK.to_string(),
        vec!["EWS.AccessAsUser.All".to_string()],
    );
    MockMicrosoft::start(seed).await.unwrap()
}

async fn token(m: &MockMicrosoft, form: &[(&str, &str)]) -> String {
    let body: Value = reqwest::Client::new()
        .post(m.token_endpoint(TENANT_ID))
        .form(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {body}"))
        .to_string()
}

/// The daemon app's app-only token for Exchange Online (`.default`: its IMAP, POP and SMTP
/// roles).
pub async fn app_token(m: &MockMicrosoft) -> String {
    token(
        m,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DAEMON_APP),
            ("client_secret", DAEMON_APP_SECRET),
            ("scope", "https://outlook.office365.com/.default"),
        ],
    )
    .await
}

/// The daemon app's app-only token for Microsoft Graph (the wrong audience for mail).
pub async fn graph_app_token(m: &MockMicrosoft) -> String {
    token(
        m,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DAEMON_APP),
            ("client_secret", DAEMON_APP_SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await
}

/// A delegated token of `upn` (password grant, CLI app) for `scope`.
pub async fn user_token(m: &MockMicrosoft, upn: &str, password: &str, scope: &str) -> String {
    token(
        m,
        &[
            ("grant_type", "password"),
            ("client_id", PUBLIC_APP),
            ("username", upn),
            ("password", password),
            ("scope", scope),
        ],
    )
    .await
}

pub fn xoauth2(user: &str, token: &str) -> String {
    STANDARD.encode(format!("user={user}\x01auth=Bearer {token}\x01\x01"))
}

/// `host:port` of a `scheme://host:port` URL.
pub fn addr(url: &str) -> String {
    url.split_once("://").unwrap().1.to_string()
}

pub fn connector(m: &MockMicrosoft) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(m.mail_ca_pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

pub async fn tls(m: &MockMicrosoft, tcp: TcpStream) -> TlsStream<TcpStream> {
    connector(m)
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap()
}

/// TLS to an implicit-TLS URL.
pub async fn tls_to(m: &MockMicrosoft, url: &str) -> TlsStream<TcpStream> {
    tls(m, TcpStream::connect(addr(url)).await.unwrap()).await
}

/// A line client: what the protocol tests use where no client crate fits (POP) or where the
/// exact wire answers are the point.
pub struct Lines<S> {
    io: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Lines<S> {
    pub fn new(stream: S) -> Self {
        Self {
            io: BufReader::new(stream),
        }
    }

    pub fn into_inner(self) -> S {
        self.io.into_inner()
    }

    pub async fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\r\n").as_bytes()).await;
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        let io = self.io.get_mut();
        io.write_all(bytes).await.unwrap();
        io.flush().await.unwrap();
    }

    /// The next line, without its CRLF; `None` at EOF.
    pub async fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = tokio::time::timeout(PATIENCE, self.io.read_line(&mut line))
            .await
            .expect("the server answered in time")
            .unwrap();
        (n > 0).then(|| line.trim_end_matches(['\r', '\n']).to_string())
    }

    /// Lines up to and including the first one starting with `prefix`.
    pub async fn until(&mut self, prefix: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await.expect("the connection stayed open");
            let done = line.starts_with(prefix);
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    /// Sends `line` and answers the lines up to the one starting with `prefix`.
    pub async fn ask(&mut self, line: &str, prefix: &str) -> Vec<String> {
        self.send(line).await;
        self.until(prefix).await
    }
}
