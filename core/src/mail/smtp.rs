//! SMTP submission with SASL XOAUTH2 (lettre's connection, driven command by command):
//! STARTTLS (`Tls::Required`: never AUTH in the clear) for `smtp://`, implicit TLS for
//! `smtps://`, trusting the webpki roots plus `tls.ca_file`; the envelope sender is the mailbox
//! sent from, which is also the XOAUTH2 `user=`.
//!
//! # A retry never delivers twice
//!
//! SMTP has no idempotency key: once the server has accepted the final `.` of DATA, the message
//! is on its way, and sending it again delivers a second copy. So a submission is retried only
//! when the failure is certain to have happened **before the server took the message**: the
//! connection, TLS, AUTH, `MAIL FROM`, `RCPT TO` or the `DATA` command itself (the server
//! answered, or the stream broke, before any content was sent). A refused token is retried once,
//! with a fresh token (`credentials.rejected()`). After the message and its final dot were
//! written, a reply (`250`, or a 4xx/5xx refusal) settles it; **no reply** (a broken
//! connection, a timeout) leaves the outcome unknown, and it is reported as `smtp_in_doubt`
//! — never retried, because the message may already be delivered.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use lettre::Address;
use lettre::transport::smtp::authentication::{Credentials as SaslCredentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::ClientId;

use super::claims::{Expected, TokenClaims};
use super::compose::Outgoing;
use super::explain::{self, MailFailure, Situation};
use super::url::{MailProtocol, MailUrl, Security};
use crate::Error;
use crate::auth::credentials::{Credential, Credentials};
use crate::mailbox::MailboxError;
use crate::model::{Cloud, Tenant};
use crate::secret::Secret;

/// What the connection expects of its tokens, for the check before connecting.
#[derive(Debug, Clone)]
pub struct TokenExpectation {
    pub cloud: Cloud,
    pub tenant: Tenant,
    pub app_only: bool,
}

impl TokenExpectation {
    /// What the tokens of `conn` must say: its cloud's Exchange Online audience, its tenant, and
    /// a role (app-only) or a scope (delegated). Exchange Server connections have none.
    pub fn for_connection(conn: &crate::model::Connection) -> Result<TokenExpectation, Error> {
        match &conn.settings.target {
            crate::model::Target::Online { cloud, tenant } => Ok(TokenExpectation {
                cloud: *cloud,
                tenant: tenant.clone(),
                app_only: matches!(conn.settings.auth, crate::model::Auth::OAuth2AppOnly(_)),
            }),
            crate::model::Target::Server { .. } => Err(MailboxError::Unsupported(format!(
                "connection `{}` is Exchange Server: IMAP, POP and SMTP are for Exchange Online",
                conn.name
            ))
            .into()),
        }
    }

    pub fn expected(&self, protocol: MailProtocol) -> Expected<'_> {
        Expected {
            protocol,
            cloud: self.cloud,
            tenant: &self.tenant,
            app_only: self.app_only,
        }
    }
}

/// Where and how to submit.
#[derive(Clone)]
pub struct SmtpSettings {
    pub url: MailUrl,
    /// `tls.ca_file`'s certificates, trusted besides the webpki roots.
    pub ca_pem: Option<Vec<u8>>,
    pub credentials: Arc<dyn Credentials>,
    pub expect: TokenExpectation,
    /// Each network step's limit (connect, a reply).
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("url", &self.url.to_string())
            .finish_non_exhaustive()
    }
}

/// The default limit of each SMTP step.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a submission failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Connect,
    Auth,
    Envelope,
    /// After the content and its final dot were written.
    Message,
}

/// One attempt's failure.
#[derive(Debug)]
struct Failure {
    stage: Stage,
    /// The server's reply (code, text) if it answered.
    reply: Option<(u16, String)>,
    /// What went wrong when the server did not answer.
    detail: String,
}

impl Failure {
    fn from_lettre(stage: Stage, e: &lettre::transport::smtp::Error) -> Self {
        let reply = e.status().map(|code| {
            let code = code.to_string().parse().unwrap_or(0);
            let text = std::error::Error::source(e)
                .map(ToString::to_string)
                .unwrap_or_default();
            (code, text)
        });
        Failure {
            stage,
            reply,
            detail: e.to_string(),
        }
    }

    fn local(stage: Stage, detail: String) -> Self {
        Failure {
            stage,
            reply: None,
            detail,
        }
    }
}

/// A step of a probe (the connection test): passed with evidence, or failed with the fix.
#[derive(Debug, Clone)]
pub struct ProbeStep {
    pub name: &'static str,
    pub outcome: Result<String, MailFailure>,
}

/// Submits messages over SMTP for one connection.
#[derive(Debug, Clone)]
pub struct SmtpSender {
    settings: SmtpSettings,
}

impl SmtpSender {
    pub fn new(settings: SmtpSettings) -> Self {
        Self { settings }
    }

    pub fn url(&self) -> &MailUrl {
        &self.settings.url
    }

    async fn token(&self) -> Result<Secret, Error> {
        match self.settings.credentials.credential().await? {
            Credential::Bearer(t) => Ok(t.secret.clone()),
            Credential::Basic(_) | Credential::Ntlm(_) => Err(MailboxError::Unsupported(
                "SMTP submission needs an OAuth2 token (XOAUTH2)".into(),
            )
            .into()),
        }
    }

    /// The token's claims, checked before connecting.
    fn preflight(&self, token: &Secret) -> Result<Option<TokenClaims>, MailFailure> {
        let claims = TokenClaims::decode(token);
        if let Some(c) = &claims {
            super::claims::check(c, &self.settings.expect.expected(MailProtocol::Smtp))?;
        }
        Ok(claims)
    }

    fn tls(&self) -> Result<TlsParameters, Failure> {
        let mut b = TlsParameters::builder(self.settings.url.host().to_owned());
        if let Some(pem) = &self.settings.ca_pem {
            let cert = Certificate::from_pem(pem)
                .map_err(|e| Failure::local(Stage::Connect, format!("tls.ca_file: {e}")))?;
            b = b.add_root_certificate(cert);
        }
        b.build_rustls()
            .map_err(|e| Failure::local(Stage::Connect, format!("TLS setup: {e}")))
    }

    /// Connects, secures and says EHLO; STARTTLS is required on a plain URL.
    async fn connect(&self) -> Result<AsyncSmtpConnection, Failure> {
        let url = &self.settings.url;
        let hello = ClientId::Domain("exgate".into());
        let timeout = Some(self.settings.timeout);
        let tls = self.tls()?;
        let step = async {
            match url.security() {
                Security::Tls => AsyncSmtpConnection::connect_tokio1(
                    (url.host(), url.port()),
                    timeout,
                    &hello,
                    Some(tls),
                    None,
                )
                .await
                .map_err(|e| Failure::from_lettre(Stage::Connect, &e)),
                Security::StartTls => {
                    let mut conn = AsyncSmtpConnection::connect_tokio1(
                        (url.host(), url.port()),
                        timeout,
                        &hello,
                        None,
                        None,
                    )
                    .await
                    .map_err(|e| Failure::from_lettre(Stage::Connect, &e))?;
                    if !conn.can_starttls() {
                        conn.abort().await;
                        return Err(Failure::local(
                            Stage::Connect,
                            format!(
                                "{url} does not offer STARTTLS; exgate never authenticates in the clear"
                            ),
                        ));
                    }
                    conn.starttls(tls, &hello)
                        .await
                        .map_err(|e| Failure::from_lettre(Stage::Connect, &e))?;
                    Ok(conn)
                }
            }
        };
        match tokio::time::timeout(self.settings.timeout * 2, step).await {
            Ok(r) => r,
            Err(_) => Err(Failure::local(
                Stage::Connect,
                format!("{url} did not answer in time"),
            )),
        }
    }

    async fn with_timeout<T>(
        &self,
        stage: Stage,
        f: impl std::future::Future<Output = Result<T, lettre::transport::smtp::Error>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout(self.settings.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Failure::from_lettre(stage, &e)),
            Err(_) => Err(Failure::local(stage, "no answer in time".into())),
        }
    }

    async fn authenticate(
        &self,
        conn: &mut AsyncSmtpConnection,
        sender: &str,
        token: &Secret,
    ) -> Result<(), Failure> {
        let sasl = SaslCredentials::new(sender.to_owned(), token.expose().to_owned());
        self.with_timeout(Stage::Auth, conn.auth(&[Mechanism::Xoauth2], &sasl))
            .await
            .map(|_| ())
    }

    async fn attempt(
        &self,
        sender: &Address,
        recipients: &[Address],
        mime: &[u8],
        token: &Secret,
    ) -> Result<(), Failure> {
        let mut conn = self.connect().await?;
        let result = async {
            self.authenticate(&mut conn, sender.as_ref(), token).await?;
            let mut params = Vec::new();
            if !mime.is_ascii() {
                params.push(lettre::transport::smtp::extension::MailParameter::Body(
                    lettre::transport::smtp::extension::MailBodyParameter::EightBitMime,
                ));
            }
            self.with_timeout(
                Stage::Envelope,
                conn.command(Mail::new(Some(sender.clone()), params)),
            )
            .await?;
            for r in recipients {
                self.with_timeout(Stage::Envelope, conn.command(Rcpt::new(r.clone(), vec![])))
                    .await?;
            }
            self.with_timeout(Stage::Envelope, conn.command(Data))
                .await?;
            // From here on, a missing answer means the outcome is unknown.
            self.with_timeout(Stage::Message, conn.message(mime))
                .await?;
            Ok(())
        }
        .await;
        if result.is_ok() {
            let _ = tokio::time::timeout(self.settings.timeout, conn.quit()).await;
        } else {
            let _ = tokio::time::timeout(self.settings.timeout, conn.abort()).await;
        }
        result
    }

    /// Submits `out` from `sender` (the envelope sender and XOAUTH2 user).
    pub async fn submit(&self, sender: &str, out: &Outgoing) -> Result<(), Error> {
        let sender_addr = parse_address(sender)?;
        let recipients = out
            .recipients
            .iter()
            .map(|r| parse_address(r))
            .collect::<Result<Vec<_>, _>>()?;
        let mut refreshed = false;
        let mut transient_retries = 1;
        loop {
            let token = self.token().await?;
            let claims = self.preflight(&token)?;
            let failure = match self
                .attempt(&sender_addr, &recipients, &out.mime, &token)
                .await
            {
                Ok(()) => return Ok(()),
                Err(f) => f,
            };
            let situation = Situation {
                protocol: MailProtocol::Smtp,
                mailbox: sender,
                claims: claims.as_ref(),
            };
            match (&failure.stage, &failure.reply) {
                // The token was refused: once more with a fresh one.
                (Stage::Auth, Some((535, text)))
                    if !refreshed && text.trim_start().starts_with("5.7.3") =>
                {
                    refreshed = true;
                    self.settings.credentials.rejected().await;
                    continue;
                }
                // Nothing was taken yet: a transient failure may be retried once.
                (Stage::Connect | Stage::Auth | Stage::Envelope, reply)
                    if transient_retries > 0
                        && reply
                            .as_ref()
                            .is_none_or(|(code, _)| (400..500).contains(code)) =>
                {
                    transient_retries -= 1;
                    continue;
                }
                _ => {}
            }
            return Err(self.explain(&situation, failure).into());
        }
    }

    fn explain(&self, s: &Situation<'_>, failure: Failure) -> MailFailure {
        let url = &self.settings.url;
        match (failure.stage, failure.reply) {
            (Stage::Message, None) => MailFailure::failed(
                "smtp_in_doubt",
                MailProtocol::Smtp,
                format!(
                    "the message was sent to {url} but no answer came after its end ({}); it may or may not have been delivered",
                    failure.detail
                ),
                "check the Sent Items of the mailbox or ask a recipient before sending again: \
                 exgate does not resend, because SMTP cannot tell a second copy from the first"
                    .into(),
            ),
            (_, Some((code, text))) => explain::smtp_reply(s, code, &text),
            (Stage::Connect, None) => MailFailure::transient(
                "smtp_unreachable",
                MailProtocol::Smtp,
                format!("cannot reach or secure {url}: {}", failure.detail),
                "check the host and port (smtp_url; Exchange Online: smtp://smtp.office365.com:587 \
                 with STARTTLS), a firewall on the way, and that the certificate is trusted \
                 (tls.ca_file for a private CA)"
                    .into(),
            ),
            (_, None) => MailFailure::transient(
                "smtp_broken",
                MailProtocol::Smtp,
                format!(
                    "the connection to {url} broke before the message was sent: {}",
                    failure.detail
                ),
                "nothing was delivered; try again".into(),
            ),
        }
    }

    /// The connection test: server reachable, TLS, the token's claims, XOAUTH2 accepted, and
    /// the mailbox as sender (`MAIL FROM` then `RSET`: nothing is sent). Each step says what it
    /// saw; a step after a failed one does not run (and is not listed).
    pub async fn probe(&self, sender: &str) -> Vec<ProbeStep> {
        let mut steps = Vec::new();
        let url = self.settings.url.clone();
        let token = match self.token().await {
            Ok(t) => t,
            Err(e) => {
                steps.push(ProbeStep {
                    name: "SMTP token",
                    outcome: Err(MailFailure::failed(
                        "no_token",
                        MailProtocol::Smtp,
                        format!("no token for SMTP: {e}"),
                        "see the credentials step".into(),
                    )),
                });
                return steps;
            }
        };
        let claims = match self.preflight(&token) {
            Ok(c) => {
                steps.push(ProbeStep {
                    name: "SMTP token claims",
                    outcome: Ok(match &c {
                        Some(c) => format!(
                            "audience {}; {}",
                            c.audiences.join(", "),
                            if c.app_only {
                                format!("roles {}", c.roles.join(", "))
                            } else {
                                format!("scopes {}", c.scopes.join(" "))
                            }
                        ),
                        None => "the token is not a JWT: nothing to check locally".into(),
                    }),
                });
                c
            }
            Err(f) => {
                steps.push(ProbeStep {
                    name: "SMTP token claims",
                    outcome: Err(f),
                });
                return steps;
            }
        };
        let situation = Situation {
            protocol: MailProtocol::Smtp,
            mailbox: sender,
            claims: claims.as_ref(),
        };
        let mut conn = match self.connect().await {
            Ok(c) => {
                steps.push(ProbeStep {
                    name: "SMTP server",
                    outcome: Ok(format!(
                        "{url} reached; TLS {}",
                        match url.security() {
                            Security::Tls => "from the first byte (implicit)",
                            Security::StartTls => "by STARTTLS, as the server offered",
                        }
                    )),
                });
                c
            }
            Err(f) => {
                steps.push(ProbeStep {
                    name: "SMTP server",
                    outcome: Err(self.explain(&situation, f)),
                });
                return steps;
            }
        };
        if let Err(f) = self.authenticate(&mut conn, sender, &token).await {
            steps.push(ProbeStep {
                name: "SMTP authentication",
                outcome: Err(self.explain(&situation, f)),
            });
            conn.abort().await;
            return steps;
        }
        steps.push(ProbeStep {
            name: "SMTP authentication",
            outcome: Ok(format!("AUTH XOAUTH2 accepted for {sender}")),
        });
        let from = match parse_address(sender) {
            Ok(a) => a,
            Err(e) => {
                steps.push(ProbeStep {
                    name: "SMTP sender",
                    outcome: Err(MailFailure::failed(
                        "bad_sender",
                        MailProtocol::Smtp,
                        e.to_string(),
                        "give the mailbox's address".into(),
                    )),
                });
                return steps;
            }
        };
        let mail = self
            .with_timeout(Stage::Envelope, conn.command(Mail::new(Some(from), vec![])))
            .await;
        match mail {
            Ok(_) => steps.push(ProbeStep {
                name: "SMTP sender",
                outcome: Ok(format!(
                    "MAIL FROM:<{sender}> accepted (then RSET: nothing was sent)"
                )),
            }),
            Err(f) => steps.push(ProbeStep {
                name: "SMTP sender",
                outcome: Err(self.explain(&situation, f)),
            }),
        }
        let _ = self
            .with_timeout(
                Stage::Envelope,
                conn.command(lettre::transport::smtp::commands::Rset),
            )
            .await;
        let _ = tokio::time::timeout(self.settings.timeout, conn.quit()).await;
        steps
    }
}

fn parse_address(a: &str) -> Result<Address, Error> {
    Address::from_str(a.trim()).map_err(|e| {
        MailboxError::Invalid(format!(
            "`{}` is not an email address: {e}",
            a.escape_debug()
        ))
        .into()
    })
}
