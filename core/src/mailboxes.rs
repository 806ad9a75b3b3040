//! Opens the mailbox backend of a connection for one of its accounts (or, app-only, for the app):
//! its credentials, its pipeline over the shared governor, and its page tokens.

use std::sync::Arc;

use crate::Error;
use crate::auth::SignIn;
use crate::auth::credentials::{Credential, Credentials, PasswordCredentials, SignInCredentials};
use crate::auth::signin::primary_resource;
use crate::config::NetworkSettings;
use crate::connections::Connections;
use crate::ews::wire::RequestVersion;
use crate::ews::{EwsAnswers, EwsListen, EwsMailbox};
use crate::governor::{Governor, GovernorPolicy, SharedBudget};
use crate::graph::{GraphAnswers, GraphMailbox, default_base_url};
use crate::mail::composed::SmtpSending;
use crate::mail::pop::{PopMailbox, PopSettings};
use crate::mail::smtp::{SmtpSender, SmtpSettings, TokenExpectation};
use crate::mail::{MailConnector, MailProtocol, MailUrl};
use crate::mailbox::{Backend, MailboxError, MailboxRef};
use crate::model::{
    Auth, Connection, EmailAddress, InvalidInput, MailboxAccess, Principal, Resource, Sender,
    Target,
};
use crate::pipeline::{Limits, NtlmSessions, PageTokens, Pipeline};
use crate::secret::Vault;
use crate::ttl::{TTL, TtlCache};
use url::Url;

/// A backend the gateway opened: for a connection as of its last change, a principal, and how
/// other mailboxes are reached.
type BackendKey = (
    crate::model::ConnectionId,
    time::OffsetDateTime,
    Option<Principal>,
    Option<bool>,
);

/// Hands out mailbox backends; one governor is shared by all Graph backends and one by all EWS
/// backends (each keeps its own service's limits).
#[derive(Debug)]
pub struct Mailboxes {
    signin: Arc<SignIn>,
    connections: Arc<Connections>,
    network: NetworkSettings,
    governor: Arc<Governor>,
    ews_governor: Arc<Governor>,
    limits: Limits,
    vault: Arc<Vault>,
    /// The client of mailbox servers, built on first use: a command that needs none (`exgate
    /// token`) does not build one.
    http: std::sync::OnceLock<reqwest::Client>,
    /// The governor of IMAP sessions (Exchange's per-mailbox connection limit), made on first use.
    imap_governor: std::sync::OnceLock<Arc<Governor>>,
    /// The budget the governors share with other instances (a PostgreSQL store), if any.
    budget: Option<Arc<dyn SharedBudget>>,
    /// Backends reused across requests ([`Mailboxes::for_principal`]): a backend holds no state
    /// of a request (its credentials ask sign-in for a token on every call).
    backends: TtlCache<BackendKey, Backend>,
}

impl Mailboxes {
    pub fn new(
        signin: Arc<SignIn>,
        connections: Arc<Connections>,
        vault: Arc<Vault>,
        network: NetworkSettings,
        policy: GovernorPolicy,
        limits: Limits,
    ) -> Result<Self, Error> {
        // What could make building the client fail is found now, not at the first request.
        crate::net::check(&network)
            .map_err(|e| Error::Mailbox(MailboxError::Unsupported(e.to_string())))?;
        Ok(Self {
            signin,
            connections,
            network,
            governor: Governor::new(policy),
            ews_governor: Governor::new(GovernorPolicy::ews_default()),
            limits,
            vault,
            http: std::sync::OnceLock::new(),
            imap_governor: std::sync::OnceLock::new(),
            budget: None,
            backends: TtlCache::new(TTL),
        })
    }

    /// EWS's limits (`[ews]`) instead of [`GovernorPolicy::ews_default`].
    #[must_use]
    pub fn with_ews_policy(mut self, policy: GovernorPolicy) -> Self {
        self.ews_governor = self.governor_for("ews", policy);
        self
    }

    /// Keeps every governor's policy together with the other instances on `budget` (the store's
    /// [`crate::store::Store::governor_budget`]); `None` keeps them local.
    #[must_use]
    pub fn with_shared_budget(mut self, budget: Option<Arc<dyn SharedBudget>>) -> Self {
        self.budget = budget;
        self.governor = self.governor_for("graph", self.governor.policy());
        self.ews_governor = self.governor_for("ews", self.ews_governor.policy());
        self
    }

    fn governor_for(&self, scope: &str, policy: GovernorPolicy) -> Arc<Governor> {
        match &self.budget {
            Some(budget) => Governor::shared(policy, scope, Arc::clone(budget)),
            None => Governor::new(policy),
        }
    }

    /// The governor of EWS requests.
    pub fn ews_governor(&self) -> &Arc<Governor> {
        &self.ews_governor
    }

    /// Finds the EWS URL of `address` by autodiscover, with the credential of a connection
    /// about to be added as `spec` (see [`crate::ews::autodiscover`]); every attempt is in the
    /// answer, and in the error's [`AutodiscoverError::attempts`](crate::ews::autodiscover::AutodiscoverError::attempts).
    pub async fn discover_ews(
        &self,
        spec: &crate::model::ConnectionSpec,
        address: &str,
        trusted_hosts: &[String],
    ) -> Result<crate::ews::autodiscover::Discovery, Error> {
        crate::ews::autodiscover::http::discover_for_spec(
            &self.network,
            spec,
            address,
            trusted_hosts,
        )
        .await
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The client of mailbox servers (see [`crate::net::content_client`]), built on first use.
    fn http(&self) -> Result<reqwest::Client, Error> {
        if let Some(client) = self.http.get() {
            return Ok(client.clone());
        }
        let client = crate::net::content_client(&self.network)
            .map_err(|e| Error::Mailbox(MailboxError::Unsupported(e.to_string())))?;
        Ok(self.http.get_or_init(|| client).clone())
    }

    pub fn governor(&self) -> &Arc<Governor> {
        &self.governor
    }

    /// The backend and mailbox an application's user acts on. On an app-only connection the
    /// principal is a static user, mapped by an admin to the mailbox the app acts on; on a
    /// connection with a service account (Basic or NTLM to Exchange Server's EWS) a static user
    /// is reached by impersonation (ApplicationImpersonation) or as a delegate (FullAccess), as
    /// its mapping says (a principal that is no static user is refused: the service identity is
    /// not the application user's); on a delegated connection the principal is a linked
    /// account, acting on its own mailbox or on `mailbox` (a shared or delegated one).
    pub async fn for_principal(
        &self,
        connection: &str,
        principal: &Principal,
        mailbox: Option<&EmailAddress>,
    ) -> Result<(Backend, MailboxRef), Error> {
        let conn = self.connections.get_shared(connection).await?;
        self.for_connection(&conn, principal, mailbox).await
    }

    /// [`Mailboxes::for_principal`] on a connection the caller looked up already (the gateway,
    /// which checked the caller's right to it): the connection is not looked up twice.
    pub async fn for_connection(
        &self,
        conn: &Connection,
        principal: &Principal,
        mailbox: Option<&EmailAddress>,
    ) -> Result<(Backend, MailboxRef), Error> {
        let service_account = matches!(
            conn.settings.auth,
            Auth::OAuth2AppOnly(_) | Auth::Basic(_) | Auth::Ntlm(_)
        );
        if service_account {
            let users = self.connections.static_users_shared(conn.id).await?;
            let user = users.iter().find(|u| &u.principal == principal);
            let app_only = matches!(conn.settings.auth, Auth::OAuth2AppOnly(_));
            if let Some(user) = user {
                if mailbox.is_some() {
                    return Err(InvalidInput::new(
                        "mailbox",
                        "is not used for static users: the static user names the mailbox".into(),
                    )
                    .into());
                }
                // An app-only identity always impersonates; a service account reaches the
                // mailbox as the mapping says.
                let impersonate = app_only || user.access == MailboxAccess::Impersonation;
                let backend = self.open_reused(conn, None, Some(impersonate)).await?;
                return Ok((backend, MailboxRef::User(user.mailbox.to_string())));
            }
            if app_only && mailbox.is_some() {
                return Err(InvalidInput::new(
                    "mailbox",
                    "is not used on app-only connections: the static user names the mailbox".into(),
                )
                .into());
            }
            // The service identity is shared by every application user: only an admin's
            // mapping says which mailbox a principal may reach through it.
            return Err(Error::NotFound {
                what: "static user",
                name: principal.to_string(),
            });
        }
        let backend = self.open_reused(conn, Some(principal), None).await?;
        let target = mailbox.map_or(MailboxRef::Me, |m| MailboxRef::User(m.to_string()));
        Ok((backend, target))
    }

    /// [`Mailboxes::open_as`], reusing a backend opened within the TTL for the same connection
    /// (unchanged since), principal and access. Graph and EWS backends over OAuth2 or Basic are
    /// reused; others (NTLM keeps sessions per pipeline) are opened per call.
    async fn open_reused(
        &self,
        conn: &Connection,
        account: Option<&Principal>,
        impersonate: Option<bool>,
    ) -> Result<Backend, Error> {
        use crate::model::Backend as Choice;
        let reusable = matches!(
            conn.settings.backend,
            Choice::Auto | Choice::Graph | Choice::Ews
        ) && !matches!(conn.settings.auth, Auth::Ntlm(_));
        if !reusable {
            return self.open_as(conn, account, impersonate).await;
        }
        let key = (conn.id, conn.updated_at, account.cloned(), impersonate);
        if let Some(backend) = self.backends.get(&key) {
            return Ok(backend);
        }
        let backend = self.open_as(conn, account, impersonate).await?;
        self.backends.put(key, backend.clone());
        Ok(backend)
    }

    /// The backend for `connection` (default: the only one), acting as `account` (default: the
    /// connection's only account; app-only connections act as the app).
    pub async fn open(
        &self,
        connection: Option<&str>,
        account: Option<&Principal>,
    ) -> Result<Backend, Error> {
        let entry = self.connections.resolve(connection).await?;
        self.open_as(&entry.connection, account, None).await
    }

    /// The backend of `conn` acting as `account`; `impersonate` overrides how EWS reaches
    /// other mailboxes (default: app-only identities impersonate, others act as delegates).
    async fn open_as(
        &self,
        conn: &Connection,
        account: Option<&Principal>,
        impersonate: Option<bool>,
    ) -> Result<Backend, Error> {
        let (principal, me) = match &conn.settings.auth {
            Auth::OAuth2AppOnly(_) => (None, None),
            Auth::OAuth2Delegated(_) => {
                let account = self.signin.resolve_account(conn, account).await?;
                let me = account
                    .mailbox
                    .as_ref()
                    .map_or_else(|| account.principal.to_string(), ToString::to_string);
                (Some(account.principal), Some(me))
            }
            Auth::Basic(p) | Auth::Ntlm(p) => (None, Some(p.username.trim().to_owned())),
        };
        let backend = self
            .reader(conn, principal.clone(), me.clone(), impersonate)
            .await?;
        self.with_smtp(conn, principal, me, backend)
    }

    /// The reading backend of `conn`: IMAP or POP (mail only), else Graph or EWS.
    async fn reader(
        &self,
        conn: &Connection,
        principal: Option<Principal>,
        me: Option<String>,
        impersonate: Option<bool>,
    ) -> Result<Backend, Error> {
        match conn.settings.backend {
            crate::model::Backend::Pop => return self.pop(conn, principal, me),
            crate::model::Backend::Imap => return self.imap(conn, principal, me),
            crate::model::Backend::Auto
            | crate::model::Backend::Graph
            | crate::model::Backend::Ews => {}
        }
        if primary_resource(conn) == Resource::Ews {
            return self.ews(conn, principal, me, impersonate);
        }
        match (&conn.settings.target, primary_resource(conn)) {
            (Target::Online { cloud, .. }, Resource::Graph) => {
                let base = self
                    .network
                    .graph_url
                    .as_ref()
                    .map_or_else(|| default_base_url(*cloud).to_owned(), ToString::to_string);
                let principal_name = principal.as_ref().map(ToString::to_string);
                let credentials = Arc::new(SignInCredentials::new(
                    Arc::clone(&self.signin),
                    conn.name.to_string(),
                    principal,
                    Resource::Graph,
                ));
                let pipe = Pipeline::new(
                    self.http()?,
                    Arc::clone(&self.governor),
                    credentials,
                    Arc::new(GraphAnswers),
                    self.limits,
                    conn.name.to_string(),
                );
                let pages = PageTokens::new(
                    Arc::clone(&self.vault),
                    conn.name.as_str(),
                    principal_name.as_deref(),
                );
                let graph = Arc::new(GraphMailbox::new(pipe, &base, pages, me)?);
                Ok(Backend {
                    push: Some(Arc::clone(&graph) as Arc<dyn crate::notify::Push>),
                    ..Backend::full("Microsoft Graph", graph)
                })
            }
            _ => Err(MailboxError::Unsupported(format!(
                "connection `{}` has no backend for its target",
                conn.name
            ))
            .into()),
        }
    }

    /// What an Online OAuth2 connection's tokens must carry, for the checks before connecting.
    fn mail_url(&self, conn: &Connection, protocol: MailProtocol) -> MailUrl {
        let cloud = match &conn.settings.target {
            Target::Online { cloud, .. } => *cloud,
            Target::Server { .. } => crate::model::Cloud::Global,
        };
        self.network
            .mail_url(protocol, cloud, conn.settings.mail.get(protocol))
    }

    fn token_source(
        &self,
        conn: &Connection,
        principal: Option<Principal>,
        resource: Resource,
    ) -> Arc<dyn Credentials> {
        Arc::new(SignInCredentials::new(
            Arc::clone(&self.signin),
            conn.name.to_string(),
            principal,
            resource,
        ))
    }

    /// The POP3 backend: the Inbox only.
    fn pop(
        &self,
        conn: &Connection,
        principal: Option<Principal>,
        me: Option<String>,
    ) -> Result<Backend, Error> {
        let connector = MailConnector::new(&self.network)
            .map_err(|e| MailboxError::Unsupported(e.to_string()))?;
        let pages = PageTokens::new(
            Arc::clone(&self.vault),
            conn.name.as_str(),
            principal.as_ref().map(ToString::to_string).as_deref(),
        );
        let pop = PopMailbox::new(
            PopSettings {
                url: self.mail_url(conn, MailProtocol::Pop),
                connector,
                credentials: self.token_source(conn, principal, Resource::Pop),
                expect: TokenExpectation::for_connection(conn)?,
                me,
                connection: conn.name.to_string(),
                limit: self.limits.max_item_bytes,
            },
            pages,
        );
        Ok(Backend {
            protocol: "POP3",
            mail: Some(Arc::new(pop)),
            calendar: None,
            availability: None,
            contacts: None,
            push: None,
            listen: None,
        })
    }

    /// The IMAP backend.
    fn imap(
        &self,
        conn: &Connection,
        principal: Option<Principal>,
        me: Option<String>,
    ) -> Result<Backend, Error> {
        let connector = MailConnector::new(&self.network)
            .map_err(|e| MailboxError::Unsupported(e.to_string()))?;
        let pages = PageTokens::new(
            Arc::clone(&self.vault),
            conn.name.as_str(),
            principal.as_ref().map(ToString::to_string).as_deref(),
        );
        let governor = Arc::clone(
            self.imap_governor
                .get_or_init(|| self.governor_for("imap", crate::mail::imap::governor_policy())),
        );
        let credentials = self.token_source(conn, principal, Resource::Imap);
        let imap = crate::mail::imap::ImapMailbox::new(
            crate::mail::imap::ImapSettings {
                url: self.mail_url(conn, MailProtocol::Imap),
                connector,
                credentials: Arc::clone(&credentials),
                me: me.clone().unwrap_or_default(),
                connection: conn.name.to_string(),
                governor,
                limits: self.limits,
            },
            pages,
        );
        let imap = Arc::new(imap);
        let listen = Arc::clone(&imap) as Arc<dyn crate::notify::Listen>;
        // The claims checked before connecting, Exchange's refusals explained with the IDs.
        let imap = crate::mail::explained::ExplainedImap::new(
            imap,
            credentials,
            TokenExpectation::for_connection(conn)?,
            me,
        );
        Ok(Backend {
            protocol: "IMAP",
            mail: Some(Arc::new(imap)),
            calendar: None,
            availability: None,
            contacts: None,
            push: None,
            listen: Some(listen),
        })
    }

    /// The SMTP sender of an Online OAuth2 connection, acting as `principal`.
    fn smtp_sender(
        &self,
        conn: &Connection,
        principal: Option<Principal>,
    ) -> Result<SmtpSender, Error> {
        Ok(SmtpSender::new(SmtpSettings {
            url: self.mail_url(conn, MailProtocol::Smtp),
            ca_pem: self.network.ca_pem.clone(),
            credentials: self.token_source(conn, principal, Resource::Smtp),
            expect: TokenExpectation::for_connection(conn)?,
            timeout: crate::mail::smtp::SMTP_TIMEOUT,
        }))
    }

    /// `backend` with its mail sending over SMTP when the connection says so.
    fn with_smtp(
        &self,
        conn: &Connection,
        principal: Option<Principal>,
        me: Option<String>,
        mut backend: Backend,
    ) -> Result<Backend, Error> {
        if conn.settings.sending() != Sender::Smtp {
            return Ok(backend);
        }
        let Some(reader) = backend.mail.take() else {
            return Ok(backend);
        };
        let smtp = self.smtp_sender(conn, principal)?;
        backend.mail = Some(Arc::new(SmtpSending::new(
            reader,
            smtp,
            me,
            self.limits.max_item_bytes,
        )));
        Ok(backend)
    }

    /// The backend of `connection` (default: the only one) acting as `account`, whose mail
    /// sends over SMTP whatever the connection's `send` says (`exgate mail send --via smtp`).
    /// Exchange Online with OAuth2 only.
    pub async fn open_via_smtp(
        &self,
        connection: Option<&str>,
        account: Option<&Principal>,
    ) -> Result<Backend, Error> {
        let entry = self.connections.resolve(connection).await?;
        let mut conn = entry.connection;
        if !matches!(conn.settings.target, Target::Online { .. })
            || !matches!(
                conn.settings.auth,
                Auth::OAuth2AppOnly(_) | Auth::OAuth2Delegated(_)
            )
        {
            return Err(MailboxError::Unsupported(format!(
                "connection `{}` cannot send over SMTP: SMTP with XOAUTH2 is for Exchange Online with OAuth2",
                conn.name
            ))
            .into());
        }
        conn.settings.send = crate::model::SendVia::Smtp;
        self.open_as(&conn, account, None).await
    }

    /// The connection test's probes of the mail protocols `conn` uses, acting as `account`
    /// on `mailbox` (default: the account's own; required app-only).
    pub async fn probe_mail_protocols(
        &self,
        conn: &Connection,
        account: Option<&Principal>,
        mailbox: Option<&str>,
    ) -> Result<Vec<crate::mail::smtp::ProbeStep>, Error> {
        let (principal, me) = match &conn.settings.auth {
            Auth::OAuth2AppOnly(_) => (None, None),
            Auth::OAuth2Delegated(_) => {
                let account = self.signin.resolve_account(conn, account).await?;
                let me = account
                    .mailbox
                    .as_ref()
                    .map_or_else(|| account.principal.to_string(), ToString::to_string);
                (Some(account.principal), Some(me))
            }
            Auth::Basic(_) | Auth::Ntlm(_) => return Ok(Vec::new()),
        };
        let Some(user) = mailbox.map(str::to_owned).or(me.clone()) else {
            return Err(InvalidInput::new(
                "mailbox",
                "an app-only connection's IMAP, POP and SMTP are tested on a mailbox: pass --mailbox ADDRESS".into(),
            )
            .into());
        };
        let mut steps = Vec::new();
        for protocol in conn.settings.mail_protocols() {
            match protocol {
                MailProtocol::Pop => {
                    let connector = MailConnector::new(&self.network)
                        .map_err(|e| MailboxError::Unsupported(e.to_string()))?;
                    let pop = PopMailbox::new(
                        PopSettings {
                            url: self.mail_url(conn, MailProtocol::Pop),
                            connector,
                            credentials: self.token_source(conn, principal.clone(), Resource::Pop),
                            expect: TokenExpectation::for_connection(conn)?,
                            me: me.clone(),
                            connection: conn.name.to_string(),
                            limit: self.limits.max_item_bytes,
                        },
                        PageTokens::new(Arc::clone(&self.vault), conn.name.as_str(), None),
                    );
                    steps.extend(pop.probe(&user).await);
                }
                MailProtocol::Smtp => {
                    let smtp = self.smtp_sender(conn, principal.clone())?;
                    steps.extend(smtp.probe(&user).await);
                }
                MailProtocol::Imap => {
                    steps.extend(
                        self.probe_imap(conn, principal.clone(), me.clone(), &user)
                            .await?,
                    );
                }
            }
        }
        Ok(steps)
    }

    /// The IMAP probe: the token's claims checked locally, then a session on `user`'s mailbox
    /// (server, TLS, XOAUTH2, the folder list and INBOX); Exchange's refusals explained with
    /// the app's real IDs.
    async fn probe_imap(
        &self,
        conn: &Connection,
        principal: Option<Principal>,
        me: Option<String>,
        user: &str,
    ) -> Result<Vec<crate::mail::smtp::ProbeStep>, Error> {
        use crate::mail::claims::{self, TokenClaims};
        use crate::mail::explain::{self, Situation};
        use crate::mail::smtp::ProbeStep;
        let mut steps = Vec::new();
        let credentials = self.token_source(conn, principal.clone(), Resource::Imap);
        let claims_of = match credentials.credential().await {
            Ok(Credential::Bearer(t)) => TokenClaims::decode(&t.secret),
            _ => None,
        };
        if let Some(c) = &claims_of {
            if let Err(f) = claims::check(
                c,
                &TokenExpectation::for_connection(conn)?.expected(MailProtocol::Imap),
            ) {
                steps.push(ProbeStep {
                    name: "IMAP token claims",
                    outcome: Err(f),
                });
                return Ok(steps);
            }
            steps.push(ProbeStep {
                name: "IMAP token claims",
                outcome: Ok(format!(
                    "audience {}; {}",
                    c.audiences.join(", "),
                    if c.app_only {
                        format!("roles {}", c.roles.join(", "))
                    } else {
                        format!("scopes {}", c.scopes.join(" "))
                    }
                )),
            });
        }
        let url = self.mail_url(conn, MailProtocol::Imap);
        let backend = self.imap(conn, principal, me)?;
        let situation = Situation {
            protocol: MailProtocol::Imap,
            mailbox: user,
            claims: claims_of.as_ref(),
        };
        match backend.mail()?.folders(&MailboxRef::User(user.to_owned())).await {
            Ok(folders) => steps.push(ProbeStep {
                name: "IMAP mailbox",
                outcome: Ok(format!(
                    "{url} reached over TLS; AUTHENTICATE XOAUTH2 accepted for {user}; {} folder(s) listed",
                    folders.len()
                )),
            }),
            Err(e) => {
                let failure = match (crate::mail::imap::ImapRefusal::of(&e), &e) {
                    (
                        Some(crate::mail::imap::ImapRefusal::NotConnected),
                        Error::Mailbox(MailboxError::MailRefused { answer, .. }),
                    ) => explain::not_connected(&situation, answer),
                    (
                        Some(crate::mail::imap::ImapRefusal::AuthenticateFailed),
                        Error::Mailbox(MailboxError::MailRefused { answer, .. }),
                    ) => explain::authentication_refused(&situation, answer),
                    (_, Error::Mailbox(MailboxError::Mail(f))) => f.clone(),
                    _ => crate::mail::MailFailure::failed(
                        "imap_failed",
                        MailProtocol::Imap,
                        format!("{url}: {e}"),
                        e.to_string(),
                    ),
                };
                steps.push(ProbeStep {
                    name: "IMAP mailbox",
                    outcome: Err(failure),
                });
            }
        }
        Ok(steps)
    }

    /// The EWS backend of a Basic or NTLM `connection` reaching other mailboxes by
    /// `ExchangeImpersonation` (the ApplicationImpersonation role) instead of as a delegate; the
    /// connection test probes with it.
    pub async fn open_ews_impersonating(&self, connection: &str) -> Result<Backend, Error> {
        let conn = self.connections.resolve(Some(connection)).await?.connection;
        let me = match &conn.settings.auth {
            Auth::Basic(p) | Auth::Ntlm(p) => p.username.trim().to_owned(),
            Auth::OAuth2Delegated(_) | Auth::OAuth2AppOnly(_) => {
                return Err(MailboxError::Unsupported(format!(
                    "connection `{}` is not a Basic or NTLM service account",
                    conn.name
                ))
                .into());
            }
        };
        self.ews(&conn, None, Some(me), Some(true))
    }

    /// The EWS backend of `conn`: Exchange Server at its EWS URL, or Exchange Online's EWS
    /// when the connection chose it. `impersonate`: reach other mailboxes by impersonation
    /// (default: app-only connections do, others act as delegates).
    fn ews(
        &self,
        conn: &Connection,
        principal: Option<Principal>,
        me: Option<String>,
        impersonate: Option<bool>,
    ) -> Result<Backend, Error> {
        let (url, version) = match &conn.settings.target {
            Target::Server { version, ews_url } => {
                (ews_url.as_url().clone(), RequestVersion::from(*version))
            }
            Target::Online { .. } => (
                match &self.network.ews_url {
                    Some(url) => url.as_url().clone(),
                    None => Url::parse(EXCHANGE_ONLINE_EWS)
                        .map_err(|e| MailboxError::Unsupported(e.to_string()))?,
                },
                RequestVersion::ONLINE,
            ),
        };
        let (credentials, ntlm): (Arc<dyn Credentials>, bool) = match &conn.settings.auth {
            Auth::Basic(p) => (
                Arc::new(PasswordCredentials(Credential::Basic(p.clone()))),
                false,
            ),
            Auth::Ntlm(p) => (
                Arc::new(PasswordCredentials(Credential::Ntlm(p.clone()))),
                true,
            ),
            Auth::OAuth2Delegated(_) | Auth::OAuth2AppOnly(_) => (
                Arc::new(SignInCredentials::new(
                    Arc::clone(&self.signin),
                    conn.name.to_string(),
                    principal.clone(),
                    Resource::Ews,
                )),
                false,
            ),
        };
        let mut pipe = Pipeline::new(
            self.http()?,
            Arc::clone(&self.ews_governor),
            credentials,
            Arc::new(EwsAnswers),
            self.limits,
            conn.name.to_string(),
        );
        if ntlm {
            pipe = pipe.with_ntlm(Arc::new(NtlmSessions::new(self.network.clone())));
        }
        let owner = principal
            .as_ref()
            .map(ToString::to_string)
            .or_else(|| me.clone());
        let pages = PageTokens::new(
            Arc::clone(&self.vault),
            conn.name.as_str(),
            owner.as_deref(),
        );
        // An app acts on other mailboxes by impersonation (`full_access_as_app`); a user or a
        // service account reaches them as a delegate (FullAccess) unless a static user's
        // mapping asks for impersonation (ApplicationImpersonation).
        let impersonate =
            impersonate.unwrap_or(matches!(conn.settings.auth, Auth::OAuth2AppOnly(_)));
        let ews = Arc::new(EwsMailbox::new(
            pipe,
            url,
            version,
            pages,
            me.unwrap_or_default(),
            impersonate,
        ));
        let mut backend = Backend::full("EWS", Arc::clone(&ews));
        backend.listen = Some(Arc::new(EwsListen::new(ews)));
        Ok(backend)
    }
}

/// Exchange Online's EWS endpoint (blocked since 1 October 2026 unless the tenant allows the
/// app; switched off on 1 April 2027).
const EXCHANGE_ONLINE_EWS: &str = "https://outlook.office365.com/EWS/Exchange.asmx";
