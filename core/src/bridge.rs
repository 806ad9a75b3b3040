//! The local bridge (`exgate bridge`): IMAP, POP3 and SMTP on 127.0.0.1 for software that only
//! knows passwords. A client signs in with a bridge user's local password (PLAIN, LOGIN, or
//! XOAUTH2 with the local password as its token); the bridge checks it against the argon2 hash in
//! the store, opens the same protocol to Exchange Online, signs in there with SASL XOAUTH2 and a
//! token that is always fresh (the sign-in service's), and from then on relays bytes both ways.
//!
//! Nothing a session carries is logged: no message content, no password, no token. A session
//! ends when either side closes, after `idle_timeout` without a byte, or at shutdown (after a
//! grace period). At most `max_connections` sessions run at once; more are turned away with the
//! protocol's "try later" answer. Three failed sign-ins end a session.

mod imap;
mod io;
mod pop;
mod sasl;
mod smtp;
mod upstream;
mod users;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, ServerConfig};

pub use users::BridgeUsers;

use crate::Error;
use crate::auth::SignIn;
use crate::auth::credentials::{Credential, Credentials, SignInCredentials};
use crate::config::NetworkSettings;
use crate::connections::Connections;
use crate::mail::claims::{self, TokenClaims};
use crate::mail::explain::{self, MailFailure, Situation};
use crate::mail::smtp::TokenExpectation;
use crate::mail::{MailConnector, MailProtocol};
use crate::model::BridgeUser;
use io::Io;
use sasl::Presented;

/// How long sessions may finish their work after shutdown was asked.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Failed sign-ins before a session is closed.
const MAX_FAILURES: u32 = 3;

/// Where and how the bridge listens.
#[derive(Clone)]
pub struct BridgeSettings {
    /// The address every listener binds (default 127.0.0.1).
    pub listen: IpAddr,
    /// The port of each protocol; `None` leaves it off, `Some(0)` picks a free one.
    pub imap_port: Option<u16>,
    pub pop_port: Option<u16>,
    pub smtp_port: Option<u16>,
    /// TLS towards clients, from a configured certificate.
    pub tls: Option<BridgeTls>,
    pub max_connections: usize,
    pub idle_timeout: Duration,
}

impl std::fmt::Debug for BridgeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeSettings")
            .field("listen", &self.listen)
            .field("imap_port", &self.imap_port)
            .field("pop_port", &self.pop_port)
            .field("smtp_port", &self.smtp_port)
            .field("tls", &self.tls)
            .field("max_connections", &self.max_connections)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

impl BridgeSettings {
    /// From `[bridge]`: the certificate and key files read and checked now.
    pub fn from_config(c: &crate::config::BridgeConfig) -> Result<BridgeSettings, Error> {
        let tls = match (&c.tls_cert_file, &c.tls_key_file) {
            (Some(cert), Some(key)) => {
                let read = |field: &'static str, path: &std::path::Path| {
                    std::fs::read(path).map_err(|e| {
                        crate::model::InvalidInput::new(
                            field,
                            format!("{} cannot be read: {e}", path.display()),
                        )
                    })
                };
                let cert_pem = read("bridge.tls_cert_file", cert)?;
                let key_pem = read("bridge.tls_key_file", key)?;
                Some(
                    BridgeTls::from_pem(&cert_pem, &key_pem, c.tls_implicit)
                        .map_err(|e| crate::model::InvalidInput::new("bridge.tls_cert_file", e))?,
                )
            }
            _ => None,
        };
        Ok(BridgeSettings {
            listen: c.listen,
            imap_port: c.imap_port,
            pop_port: c.pop_port,
            smtp_port: c.smtp_port,
            tls,
            max_connections: c.max_connections,
            idle_timeout: c.idle_timeout,
        })
    }
}

/// The bridge's TLS towards clients: implicit (TLS from the first byte) or STARTTLS.
#[derive(Clone)]
pub struct BridgeTls {
    acceptor: TlsAcceptor,
    /// TLS from the first byte; otherwise offered through STARTTLS/STLS and required before a
    /// password is taken.
    pub implicit: bool,
}

impl std::fmt::Debug for BridgeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeTls")
            .field("implicit", &self.implicit)
            .finish_non_exhaustive()
    }
}

impl BridgeTls {
    /// From a PEM certificate chain and its PEM private key.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8], implicit: bool) -> Result<BridgeTls, String> {
        let certs = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the bridge certificate file is unreadable: {e}"))?;
        if certs.is_empty() {
            return Err("the bridge certificate file holds no PEM certificate".into());
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| format!("the bridge key file holds no usable PEM private key: {e}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| format!("the bridge certificate and key do not go together: {e}"))?;
        Ok(BridgeTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            implicit,
        })
    }
}

/// Opens the upstream side of a session: the connection's server for the protocol, a token for
/// the user, the claims checked before connecting, XOAUTH2, and Exchange's refusals explained.
#[derive(Debug)]
pub struct Relay {
    connections: Arc<Connections>,
    signin: Arc<SignIn>,
    network: NetworkSettings,
    connector: MailConnector,
}

impl Relay {
    pub fn new(
        connections: Arc<Connections>,
        signin: Arc<SignIn>,
        network: NetworkSettings,
    ) -> Result<Relay, Error> {
        let connector = MailConnector::new(&network).map_err(|e| {
            Error::Mailbox(crate::mailbox::MailboxError::Unsupported(e.to_string()))
        })?;
        Ok(Relay {
            connections,
            signin,
            network,
            connector,
        })
    }

    async fn open(
        &self,
        user: &BridgeUser,
        protocol: MailProtocol,
    ) -> Result<upstream::Session, MailFailure> {
        let conn = self.connections.by_id(user.connection).await.map_err(|e| {
            MailFailure::failed(
                "connection_unavailable",
                protocol,
                e.to_string(),
                "add the bridge user again on an existing connection".into(),
            )
        })?;
        let expect = TokenExpectation::for_connection(&conn).map_err(|e| {
            MailFailure::refused(
                "not_exchange_online",
                protocol,
                e.to_string(),
                "the bridge relays to Exchange Online; use an Online connection".into(),
            )
        })?;
        let url = self
            .network
            .mail_url(protocol, expect.cloud, conn.settings.mail.get(protocol));
        let credentials = SignInCredentials::new(
            Arc::clone(&self.signin),
            conn.name.to_string(),
            user.principal.clone(),
            protocol.resource(),
        );
        let mailbox = user.mailbox.as_str();
        let mut refused_once = false;
        loop {
            let token = match credentials.credential().await {
                Ok(Credential::Bearer(t)) => t.secret.clone(),
                Ok(_) => {
                    return Err(MailFailure::failed(
                        "no_token",
                        protocol,
                        format!("connection `{}` does not use OAuth2", conn.name),
                        "the bridge needs an OAuth2 connection".into(),
                    ));
                }
                Err(e) => {
                    return Err(MailFailure::failed(
                        "token_unavailable",
                        protocol,
                        format!("no token for {mailbox}: {e}"),
                        format!("run `exgate connection test {}`", conn.name),
                    ));
                }
            };
            let claims = TokenClaims::decode(&token);
            if let Some(c) = &claims {
                claims::check(c, &expect.expected(protocol))?;
            }
            match upstream::open(&self.connector, &url, mailbox, &token).await {
                Ok(session) => return Ok(session),
                Err(upstream::UpstreamError::Refused(_)) if !refused_once => {
                    // Perhaps a token revoked early: one more try with a fresh one.
                    refused_once = true;
                    credentials.rejected().await;
                }
                Err(upstream::UpstreamError::Refused(reply)) => {
                    return Err(explain_refusal(protocol, mailbox, claims.as_ref(), &reply));
                }
                Err(upstream::UpstreamError::Failed(why)) => {
                    return Err(MailFailure::transient(
                        "upstream_unreachable",
                        protocol,
                        format!("{url}: {why}"),
                        format!(
                            "check that {url} is reachable from here (a proxy or firewall), or set the connection's {}_url",
                            protocol.as_str().to_ascii_lowercase()
                        ),
                    ));
                }
            }
        }
    }
}

/// Exchange's refusal explained: SMTP's reply codes each mean something; IMAP's and POP's one
/// refusal leaves the causes the claims check could not rule out.
fn explain_refusal(
    protocol: MailProtocol,
    mailbox: &str,
    claims: Option<&TokenClaims>,
    reply: &str,
) -> MailFailure {
    let situation = Situation {
        protocol,
        mailbox,
        claims,
    };
    if protocol == MailProtocol::Smtp
        && let Some(code) = reply.get(..3).and_then(|c| c.parse::<u16>().ok())
    {
        return explain::smtp_reply(&situation, code, reply.get(4..).unwrap_or_default());
    }
    explain::authentication_refused(&situation, reply)
}

/// What a session needs: the users, the relay, TLS, limits.
struct Ctx {
    users: Arc<BridgeUsers>,
    relay: Arc<Relay>,
    tls: Option<BridgeTls>,
    idle: Duration,
}

/// Why a sign-in did not lead to a relayed session.
enum SignInFailure {
    /// Unknown user or wrong local password (the client is told only that).
    BadPassword,
    /// The local sign-in worked; Exchange or the token did not.
    Upstream(MailFailure),
}

impl Ctx {
    async fn sign_in(
        &self,
        presented: Presented,
        protocol: MailProtocol,
    ) -> Result<upstream::Session, SignInFailure> {
        let user = match self
            .users
            .verify(&presented.username, &presented.password)
            .await
        {
            Ok(Some(user)) => user,
            Ok(None) => {
                tracing::info!(protocol = %protocol, "bridge sign-in refused: unknown user or wrong password");
                return Err(SignInFailure::BadPassword);
            }
            Err(e) => {
                tracing::warn!(protocol = %protocol, error = %e, "bridge sign-in failed: the store did not answer");
                return Err(SignInFailure::BadPassword);
            }
        };
        match self.relay.open(&user, protocol).await {
            Ok(session) => {
                tracing::info!(protocol = %protocol, mailbox = %user.mailbox, "bridge session relayed to Exchange");
                Ok(session)
            }
            Err(failure) => {
                tracing::warn!(protocol = %protocol, mailbox = %user.mailbox, code = failure.code, error = %failure.message, "bridge could not sign in to Exchange");
                Err(SignInFailure::Upstream(failure))
            }
        }
    }

    /// Upgrades a plain client stream to TLS (after STARTTLS/STLS was answered).
    async fn start_tls(&self, stream: Box<dyn Io>) -> std::io::Result<Box<dyn Io>> {
        let Some(tls) = &self.tls else {
            return Err(std::io::Error::other("no TLS configured"));
        };
        let stream = tokio::time::timeout(crate::net::CONNECT_TIMEOUT, tls.acceptor.accept(stream))
            .await
            .map_err(|_| std::io::Error::other("the TLS handshake took too long"))??;
        Ok(Box::new(stream))
    }
}

/// A failure told to the client on one line: what happened and the fix, without line breaks.
fn one_line(failure: &MailFailure) -> String {
    let text = format!("exgate: {} Fix: {}", failure.message, failure.hint);
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.len() > 900 {
        let mut cut = 900;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
    }
    line
}

/// A bridge ready to serve.
#[derive(Debug)]
pub struct Bridge {
    settings: BridgeSettings,
    users: Arc<BridgeUsers>,
    relay: Arc<Relay>,
}

/// A bridge whose listeners are bound.
pub struct BoundBridge {
    listeners: Vec<(MailProtocol, TcpListener)>,
    ctx: Arc<Ctx>,
    max_connections: usize,
}

impl Bridge {
    pub fn new(settings: BridgeSettings, users: Arc<BridgeUsers>, relay: Arc<Relay>) -> Bridge {
        Bridge {
            settings,
            users,
            relay,
        }
    }

    /// Binds every enabled listener. A non-loopback address without TLS is refused: passwords
    /// would cross the network in the clear.
    pub async fn bind(self) -> Result<BoundBridge, Error> {
        let s = &self.settings;
        if !s.listen.is_loopback() && s.tls.is_none() {
            return Err(crate::model::InvalidInput::new(
                "bridge.listen",
                format!(
                    "{} is not a loopback address and the bridge has no TLS certificate: passwords would cross the network in the clear; set bridge.tls_cert_file and bridge.tls_key_file, or listen on 127.0.0.1",
                    s.listen
                ),
            )
            .into());
        }
        let mut listeners = Vec::new();
        for (protocol, port) in [
            (MailProtocol::Imap, s.imap_port),
            (MailProtocol::Pop, s.pop_port),
            (MailProtocol::Smtp, s.smtp_port),
        ] {
            let Some(port) = port else { continue };
            let addr = SocketAddr::new(s.listen, port);
            let listener = TcpListener::bind(addr).await.map_err(|e| {
                crate::model::InvalidInput::new(
                    "bridge",
                    format!("the {protocol} listener cannot bind {addr}: {e}"),
                )
            })?;
            listeners.push((protocol, listener));
        }
        Ok(BoundBridge {
            listeners,
            ctx: Arc::new(Ctx {
                users: self.users,
                relay: self.relay,
                tls: self.settings.tls.clone(),
                idle: self.settings.idle_timeout,
            }),
            max_connections: self.settings.max_connections.max(1),
        })
    }
}

impl std::fmt::Debug for BoundBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundBridge")
            .field("addrs", &self.addrs())
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl BoundBridge {
    /// Where each protocol listens.
    pub fn addrs(&self) -> Vec<(MailProtocol, SocketAddr)> {
        self.listeners
            .iter()
            .filter_map(|(p, l)| l.local_addr().ok().map(|a| (*p, a)))
            .collect()
    }

    /// Serves until `shutdown` completes; then stops accepting, lets sessions finish for
    /// [`SHUTDOWN_GRACE`], and ends the rest.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) {
        let slots = Arc::new(tokio::sync::Semaphore::new(self.max_connections));
        let mut sessions = tokio::task::JoinSet::new();
        let mut accepts = tokio::task::JoinSet::new();
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        for (protocol, listener) in self.listeners {
            let tx = tx.clone();
            accepts.spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((stream, _)) => {
                            if tx.send((protocol, stream)).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            // Out of file descriptors or similar: back off instead of spinning.
                            tracing::warn!(protocol = %protocol, error = %e, "bridge accept failed");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            });
        }
        drop(tx);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                next = rx.recv() => {
                    let Some((protocol, stream)) = next else { break };
                    let _ = stream.set_nodelay(true);
                    let slot = Arc::clone(&slots).try_acquire_owned().ok();
                    let ctx = Arc::clone(&self.ctx);
                    sessions.spawn(async move {
                        let stream: Box<dyn Io> = Box::new(stream);
                        let result = match slot {
                            Some(_slot) => session(&ctx, protocol, stream).await,
                            None => busy(protocol, stream).await,
                        };
                        if let Err(e) = result {
                            tracing::debug!(protocol = %protocol, error = %e, "bridge session ended");
                        }
                    });
                }
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            }
        }
        accepts.abort_all();
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while sessions.join_next().await.is_some() {}
        })
        .await;
        sessions.abort_all();
    }
}

/// One client session: implicit TLS first if configured, then the protocol.
async fn session(ctx: &Ctx, protocol: MailProtocol, stream: Box<dyn Io>) -> std::io::Result<()> {
    let (stream, tls) = match &ctx.tls {
        Some(t) if t.implicit => (ctx.start_tls(stream).await?, true),
        _ => (stream, false),
    };
    match protocol {
        MailProtocol::Imap => imap::serve(ctx, stream, tls).await,
        MailProtocol::Pop => pop::serve(ctx, stream, tls).await,
        MailProtocol::Smtp => smtp::serve(ctx, stream, tls).await,
    }
}

/// The answer to a client over the connection limit.
async fn busy(protocol: MailProtocol, mut stream: Box<dyn Io>) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt as _;
    let line: &[u8] = match protocol {
        MailProtocol::Imap => {
            b"* BYE Too many connections to the exgate bridge; try again later.\r\n"
        }
        MailProtocol::Pop => {
            b"-ERR [SYS/TEMP] Too many connections to the exgate bridge; try again later.\r\n"
        }
        MailProtocol::Smtp => {
            b"421 4.3.2 Too many connections to the exgate bridge; try again later.\r\n"
        }
    };
    stream.write_all(line).await?;
    stream.shutdown().await
}

/// Whether a client must upgrade to TLS before it may send a password: whenever TLS is
/// configured (only STARTTLS sessions can still be plain).
fn tls_required(ctx: &Ctx, tls: bool) -> bool {
    ctx.tls.is_some() && !tls
}
