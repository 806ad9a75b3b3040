//! exgate-testkit: mock Microsoft endpoints for tests and demos, and the `exgate-mock` binary.
//!
//! The testkit never depends on exgate-core: mocks read and write the wire formats on their own,
//! so a serialization bug in core cannot be mirrored and hidden here.
//!
//! At the bottom sit the [`directory`] (tenants, users, apps, service principals, mailbox rights,
//! Exchange settings) and the [`mailstore`] (the mailboxes' folders, messages, events and
//! contacts), with the shared [`clock`] and [`faults`]. The protocol mocks stand on them side by
//! side and never import one another: [`entra`] (Microsoft identity platform v2.0),
//! [`graph`] (Microsoft Graph v1.0), [`ews`] (Exchange Web Services and autodiscover), and the
//! IMAP, POP and SMTP servers (`imap`, `pop`, `smtp`), which share [`mailproto`] (Exchange's
//! XOAUTH2 checks, connection plumbing, switches) below them.
//!
//! [`MockServer`] is the base every server stands on: it binds `127.0.0.1:0`, records each
//! request it answers, and stops when dropped. [`MockMicrosoft`] composes the mocks on one
//! server over one directory, mail store, clock and fault plan.

pub mod clock;
mod conn;
mod contoso;
pub mod directory;
pub mod entra;
pub mod ews;
mod exchange_admin;
mod exchange_token;
pub mod faults;
pub mod fixtures;
pub mod graph;
mod imap;
pub mod mailproto;
pub mod mailstore;
mod microsoft;
pub mod oidc;
mod pop;
pub mod postgres;
mod smtp;
mod tls;
pub mod xsd;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use clock::Clock;
pub use conn::ConnectionControl;
pub use directory::{Directory, ExchangeSettings, Seed};
pub use faults::{Fault, FaultKind, FaultPlan, FaultReport, FaultRule, Service};
pub use mailstore::MailStore;
pub use microsoft::MockMicrosoft;
pub use tls::TlsIdentity;

/// One request a mock answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, as sent.
    pub uri: String,
    pub status: u16,
    /// The `client-request-id` the client sent (Graph's correlation header), if any.
    pub client_request_id: Option<String>,
}

/// A mock HTTP server on loopback. Dropping it stops the server.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    tls: bool,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

async fn record(
    axum::extract::State(log): axum::extract::State<Arc<Mutex<Vec<RecordedRequest>>>>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().to_string();
    // HTTP/2 requests carry an absolute URI; record the path and query either way.
    let uri = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().to_string(), ToString::to_string);
    let client_request_id = req
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let resp = next.run(req).await;
    let entry = RecordedRequest {
        method,
        uri,
        status: resp.status().as_u16(),
        client_request_id,
    };
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(entry);
    resp
}

impl MockServer {
    /// Serves `router` on `127.0.0.1:0`.
    pub async fn start(router: Router) -> std::io::Result<Self> {
        Self::bind(
            "127.0.0.1:0".parse().map_err(std::io::Error::other)?,
            router,
        )
        .await
    }

    /// Serves `router` on `addr` (the `exgate-mock` binary lets users choose it).
    pub async fn bind(addr: SocketAddr, router: Router) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Self::serve(listener, router).await
    }

    /// Serves `router` on a listener the caller bound (so it can learn the port first).
    pub async fn serve(listener: TcpListener, router: Router) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let app = with_recording(router, &requests);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(conn::serve(listener, None, app, stopped));
        Ok(Self {
            addr,
            tls: false,
            requests,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Serves `router` over HTTPS on `127.0.0.1:0` with the given certificate (DER) and its
    /// PKCS#8 private key (DER). See [`TlsIdentity`] for a self-signed pair.
    pub async fn start_tls(
        router: Router,
        cert_der: Vec<u8>,
        key_der: Vec<u8>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        Self::serve_tls(listener, router, cert_der, key_der).await
    }

    /// Serves `router` over HTTPS on a listener the caller bound.
    pub async fn serve_tls(
        listener: TcpListener,
        router: Router,
        cert_der: Vec<u8>,
        key_der: Vec<u8>,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let acceptor = tls::acceptor(cert_der, key_der)?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let app = with_recording(router, &requests);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(conn::serve(listener, Some(acceptor), app, stopped));
        Ok(Self {
            addr,
            tls: true,
            requests,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (or `https://…` when serving TLS), without a trailing slash.
    /// An unspecified listen address (`0.0.0.0`, `[::]`) is reported as loopback.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        format!("{scheme}://{addr}")
    }

    /// The requests answered so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Stops accepting, lets in-flight requests finish, and waits for the server to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn with_recording(router: Router, requests: &Arc<Mutex<Vec<RecordedRequest>>>) -> Router {
    router.layer(middleware::from_fn_with_state(Arc::clone(requests), record))
}

#[cfg(test)]
mod tests {
    use axum::routing::get;

    use super::*;

    #[test]
    fn the_paths_other_crates_use_still_resolve() {
        // Paths used by core, cli, server and xtask, from before the directory and the mail
        // store moved to the bottom of the testkit.
        use crate::entra::seed::{self, ADELE, DAEMON_APP_SECRET, TENANT_ID};
        use crate::entra::{Fault as EntraFault, Seed as EntraSeed};
        use crate::fixtures::{APP_CERT_PEM, APP_KEY_PEM};
        use crate::graph::fixtures::{FixtureSpec, generate};
        use crate::graph::{
            Address, AttachmentContent, MailboxContent, MessageContent, ThrottlePolicy,
        };

        let seed: EntraSeed = Seed::contoso();
        assert_eq!(seed.tenants[0].id, TENANT_ID);
        assert_eq!(seed::MEGAN, "megan@contoso.onmicrosoft.com");
        assert!(!DAEMON_APP_SECRET.is_empty() && APP_CERT_PEM.contains("CERTIFICATE"));
        assert!(APP_KEY_PEM.contains("PRIVATE KEY"));
        let fault: Fault = EntraFault::TooManyRequests {
            retry_after_secs: 1,
        };
        assert_ne!(fault, Fault::ServerError { status: 503 });
        assert_eq!(ThrottlePolicy::microsoft().concurrent, 4);
        let mut spec = FixtureSpec::new(ADELE);
        spec.messages = 3;
        spec.contacts = 1;
        let content: MailboxContent = generate(spec);
        assert_eq!(content.messages.len(), 3);
        let message = MessageContent::new(
            "Inbox",
            "x",
            Address::new("A", ADELE),
            time::macros::datetime!(2026-11-02 09:00 UTC),
        );
        assert_eq!(message.folder, "Inbox");
        assert_eq!(
            AttachmentContent::new("a.bin", "application/octet-stream", b"ab").bytes(),
            b"ab"
        );
    }

    #[tokio::test]
    async fn serves_on_loopback_records_requests_and_stops_when_dropped() {
        let router = Router::new().route("/ping", get(|| async { "pong" }));
        let server = MockServer::start(router).await.unwrap();
        assert!(server.addr().ip().is_loopback());
        assert_ne!(server.addr().port(), 0);

        let body = reqwest::get(format!("{}/ping?x=1", server.base_url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "pong");
        let missing = reqwest::get(format!("{}/nope", server.base_url()))
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
        assert_eq!(
            server.requests(),
            vec![
                RecordedRequest {
                    method: "GET".into(),
                    uri: "/ping?x=1".into(),
                    status: 200,
                    client_request_id: None,
                },
                RecordedRequest {
                    method: "GET".into(),
                    uri: "/nope".into(),
                    status: 404,
                    client_request_id: None,
                },
            ]
        );

        let addr = server.addr();
        server.shutdown().await;
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "still listening after shutdown"
        );
    }

    #[tokio::test]
    async fn serves_tls_with_a_generated_identity_and_records_requests() {
        let router = Router::new().route("/ping", get(|| async { "pong" }));
        let identity = TlsIdentity::generate_for_loopback().unwrap();
        assert!(!format!("{identity:?}").contains("BEGIN PRIVATE KEY"));
        let server = MockServer::start_tls(router, identity.cert_der, identity.key_der)
            .await
            .unwrap();
        assert!(server.base_url().starts_with("https://127.0.0.1:"));
        let client = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(identity.ca_pem.as_bytes()).unwrap(),
            )
            .build()
            .unwrap();
        for host in ["127.0.0.1", "localhost"] {
            let url = format!("https://{host}:{}/ping", server.addr().port());
            let body = client.get(&url).send().await.unwrap().text().await.unwrap();
            assert_eq!(body, "pong", "{host}");
        }
        assert_eq!(server.requests().len(), 2);
        assert_eq!(server.requests()[0].uri, "/ping");
        let addr = server.addr();
        server.shutdown().await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
