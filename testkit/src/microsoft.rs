//! [`MockMicrosoft`]: one server with the mock Entra ID (at the root), the mock Microsoft
//! Graph v1.0 (under `/graph/v1.0`) and the mock EWS (`/EWS/Exchange.asmx`, autodiscover),
//! plus the IMAP, POP and SMTP servers on their own loopback ports, their switches and
//! observers. It composes the testkit:
//! one directory, one mail store, one clock and one fault plan, shared by mocks that never
//! import one another.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::directory::{Directory, ExchangeSettings, Seed};
use crate::entra::device;
use crate::entra::state::{self, DeviceStatus};
use crate::entra::{EntraState, EntraSwitchChange, EntraSwitches, entra_router};
use crate::ews::{AutodiscoverRequest, EwsState, EwsSwitchChange, EwsSwitches, ews_router};
use crate::faults::{Fault, FaultError, FaultPlan, FaultReport, FaultRule, Faults};
use crate::graph::{GraphState, ThrottlePolicy, graph_router};
use crate::mailproto::conn::{self as mail_conn, Listeners, Security};
use crate::mailproto::{MailSession, MailState, MailSwitchChange, MailSwitches};
use crate::mailstore::{ContentError, MailStore, MailboxContent, MessageContent};
use crate::oidc::{OidcState, OidcSwitchChange, oidc_router};
use crate::{MockServer, RecordedRequest, TlsIdentity};

/// A running mock of Microsoft's endpoints: Entra ID at the root, Microsoft Graph v1.0 under
/// `/graph/v1.0` and EWS at `/EWS/Exchange.asmx` (with autodiscover), on one server. Dropping
/// it stops the server.
#[derive(Debug)]
pub struct MockMicrosoft {
    server: MockServer,
    directory: Directory,
    store: MailStore,
    clock: Clock,
    state: EntraState,
    graph: GraphState,
    ews: EwsState,
    oidc: OidcState,
    faults: Faults,
    ca_pem: Option<String>,
    mail: MailState,
    mail_servers: MailServers,
}

/// The mock's IMAP, POP and SMTP listeners (each on `127.0.0.1:0`), stopped on drop.
#[derive(Debug)]
struct MailServers {
    listeners: Listeners,
    imap: SocketAddr,
    imap_starttls: SocketAddr,
    pop: SocketAddr,
    pop_stls: SocketAddr,
    smtp: SocketAddr,
    smtps: SocketAddr,
    ca_pem: String,
}

impl MailServers {
    /// Starts the six listeners over `state`, with a certificate from `identity`.
    async fn start(state: MailState, identity: &TlsIdentity) -> std::io::Result<MailServers> {
        let acceptor =
            crate::tls::mail_acceptor(identity.cert_der.clone(), identity.key_der.clone())?;
        let idle = state.idle_timeout();
        let mut listeners = Listeners::default();
        let mut bind = async |security: Security, protocol: MailProtocolKind| {
            let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
            let addr = listener.local_addr()?;
            let state = state.clone();
            let task = mail_conn::serve(
                listener,
                security,
                acceptor.clone(),
                idle,
                move |mut conn| {
                    let state = state.clone();
                    // The switch applies to connections accepted after it changed.
                    conn.set_idle_timeout(state.idle_timeout());
                    async move {
                        match protocol {
                            MailProtocolKind::Imap => crate::imap::session(state, conn).await,
                            MailProtocolKind::Pop => crate::pop::session(state, conn).await,
                            MailProtocolKind::Smtp => {
                                let implicit = security == Security::Implicit;
                                crate::smtp::session(state, conn, implicit).await;
                            }
                        }
                    }
                },
            );
            listeners.push(task);
            Ok::<SocketAddr, std::io::Error>(addr)
        };
        let imap = bind(Security::Implicit, MailProtocolKind::Imap).await?;
        let imap_starttls = bind(Security::StartTls, MailProtocolKind::Imap).await?;
        let pop = bind(Security::Implicit, MailProtocolKind::Pop).await?;
        let pop_stls = bind(Security::StartTls, MailProtocolKind::Pop).await?;
        let smtp = bind(Security::StartTls, MailProtocolKind::Smtp).await?;
        let smtps = bind(Security::Implicit, MailProtocolKind::Smtp).await?;
        Ok(MailServers {
            listeners,
            imap,
            imap_starttls,
            pop,
            pop_stls,
            smtp,
            smtps,
            ca_pem: identity.ca_pem.clone(),
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum MailProtocolKind {
    Imap,
    Pop,
    Smtp,
}

impl MockMicrosoft {
    /// Serves `seed` over HTTP on `127.0.0.1:0`.
    pub async fn start(seed: Seed) -> std::io::Result<MockMicrosoft> {
        Self::bind(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            seed,
            false,
            Router::new(),
        )
        .await
    }

    /// Serves `seed` over HTTPS on `127.0.0.1:0`, with a certificate for `127.0.0.1`, `::1` and
    /// `localhost` issued by a fresh CA ([`MockMicrosoft::ca_pem`]).
    pub async fn start_tls(seed: Seed) -> std::io::Result<MockMicrosoft> {
        Self::bind(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            seed,
            true,
            Router::new(),
        )
        .await
    }

    /// Serves `seed` on `addr`, over HTTPS when `tls`, with `extra` routes beside Entra's and
    /// Graph's (the `exgate-mock` binary adds `/healthz`).
    pub async fn bind(
        addr: SocketAddr,
        seed: Seed,
        tls: bool,
        extra: Router,
    ) -> std::io::Result<MockMicrosoft> {
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        seed.validate().map_err(|e| invalid(e.to_string()))?;
        // The directory keeps the seed without its (possibly large) mailbox content; the mail
        // store holds the content.
        let mut seed = seed;
        let contents: Vec<MailboxContent> = seed
            .tenants
            .iter_mut()
            .flat_map(|t| std::mem::take(&mut t.mailboxes))
            .collect();
        let directory = Directory::new(seed).map_err(|e| invalid(e.to_string()))?;
        let mailboxes = directory.mailboxes();
        let store = MailStore::new(
            mailboxes
                .iter()
                .map(|r| (r.address.as_str(), r.display_name.as_str())),
        );
        for content in contents {
            store
                .load_mailbox(content)
                .map_err(|e| invalid(e.to_string()))?;
        }
        let clock = Clock::default();
        let faults = Faults::default();
        let state =
            EntraState::over(directory.clone(), clock.clone(), "")?.with_faults(faults.clone());
        let graph = GraphState::new(
            directory.clone(),
            store.clone(),
            clock.clone(),
            state.token_verification_key()?,
        )
        .with_faults(faults.clone());
        let ews = EwsState::new(
            directory.clone(),
            store.clone(),
            clock.clone(),
            state.token_verification_key()?,
        )
        .with_faults(faults.clone());
        let oidc = OidcState::new(directory.clone(), clock.clone())?;
        let mail = MailState::new(
            directory.clone(),
            store.clone(),
            clock.clone(),
            state.token_verification_key()?,
        );
        let exchange_admin = crate::exchange_admin::ExchangeAdminState::new(
            directory.clone(),
            clock.clone(),
            state.token_verification_key()?,
        );
        let listener = TcpListener::bind(addr).await?;
        let router = entra_router(state.clone())
            .merge(crate::exchange_admin::router(exchange_admin.clone()))
            .merge(graph_router(graph.clone()))
            .merge(ews_router(ews.clone()))
            .merge(oidc_router(oidc.clone()))
            .merge(admin_router(
                faults.clone(),
                state.clone(),
                ews.clone(),
                oidc.clone(),
                mail.clone(),
                graph.clone(),
            ))
            .merge(extra);
        // One certificate for HTTPS and the mail servers (the mail servers always use TLS).
        let identity = TlsIdentity::generate_for_loopback()?;
        let (server, ca_pem) = if tls {
            let server = MockServer::serve_tls(
                listener,
                router,
                identity.cert_der.clone(),
                identity.key_der.clone(),
            )
            .await?;
            (server, Some(identity.ca_pem.clone()))
        } else {
            (MockServer::serve(listener, router).await?, None)
        };
        let mail_servers = MailServers::start(mail.clone(), &identity).await?;
        state.set_base_url(&server.base_url());
        graph.set_base_url(&server.base_url());
        ews.set_base_url(&server.base_url());
        oidc.set_base_url(&server.base_url());
        exchange_admin.set_base_url(&server.base_url());
        Ok(MockMicrosoft {
            server,
            directory,
            store,
            clock,
            state,
            graph,
            ews,
            oidc,
            faults,
            ca_pem,
            mail,
            mail_servers,
        })
    }

    /// The generic (standards-following, not Entra) OpenID provider under `/oidc`; off until
    /// [`MockMicrosoft::enable_generic_oidc`].
    pub fn oidc(&self) -> OidcState {
        self.oidc.clone()
    }

    /// Turns the generic OpenID provider on and returns its discovery URL.
    pub fn enable_generic_oidc(&self) -> String {
        self.oidc.set_enabled(true);
        self.oidc.discovery_url()
    }

    /// The CA certificate (PEM) to trust when serving TLS.
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// `http://127.0.0.1:PORT` (or `https://…`): the authority host, no trailing slash.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `{base}/{tenant}`
    pub fn authority(&self, tenant: &str) -> String {
        format!("{}/{tenant}", self.base_url())
    }

    /// `{base}/{tenant}/v2.0/.well-known/openid-configuration`
    pub fn discovery_url(&self, tenant: &str) -> String {
        format!(
            "{}/{tenant}/v2.0/.well-known/openid-configuration",
            self.base_url()
        )
    }

    /// `{base}/{tenant}/oauth2/v2.0/token`
    pub fn token_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.base_url())
    }

    /// `{base}/{tenant}/oauth2/v2.0/authorize`
    pub fn authorize_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/authorize", self.base_url())
    }

    /// `{base}/{tenant}/oauth2/v2.0/devicecode`
    pub fn device_code_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/devicecode", self.base_url())
    }

    /// How many POSTs reached any `/token` endpoint so far (faulted ones included).
    pub fn token_requests(&self) -> usize {
        self.state.lock().token_requests
    }

    /// How many refresh token grants were answered with new tokens so far.
    pub fn refresh_grants(&self) -> usize {
        self.state.lock().refresh_grants
    }

    /// The requests answered so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }

    /// The shared Entra state, e.g. to mount [`entra_router`] elsewhere.
    pub fn state(&self) -> EntraState {
        self.state.clone()
    }

    /// Stops the server (and the mail servers) and waits for it.
    pub async fn shutdown(mut self) {
        self.mail_servers.listeners.stop();
        self.server.shutdown().await;
    }

    /// `imaps://127.0.0.1:PORT`: IMAP with implicit TLS (what `outlook.office365.com:993` is).
    pub fn imap_url(&self) -> String {
        format!("imaps://{}", self.mail_servers.imap)
    }

    /// `imap://127.0.0.1:PORT`: IMAP on a plain port where STARTTLS must come before
    /// authentication (like port 143).
    pub fn imap_starttls_url(&self) -> String {
        format!("imap://{}", self.mail_servers.imap_starttls)
    }

    /// `pop3s://127.0.0.1:PORT`: POP3 with implicit TLS (`outlook.office365.com:995`).
    pub fn pop_url(&self) -> String {
        format!("pop3s://{}", self.mail_servers.pop)
    }

    /// `pop3://127.0.0.1:PORT`: POP3 where STLS must come first (like port 110).
    pub fn pop_stls_url(&self) -> String {
        format!("pop3://{}", self.mail_servers.pop_stls)
    }

    /// `smtp://127.0.0.1:PORT`: SMTP submission, STARTTLS before AUTH
    /// (`smtp.office365.com:587`).
    pub fn smtp_url(&self) -> String {
        format!("smtp://{}", self.mail_servers.smtp)
    }

    /// `smtps://127.0.0.1:PORT`: SMTP submission with implicit TLS (like port 465).
    pub fn smtps_url(&self) -> String {
        format!("smtps://{}", self.mail_servers.smtps)
    }

    /// The CA certificate (PEM) the mail servers' certificate chains to: the same CA as
    /// [`MockMicrosoft::ca_pem`] when the mock serves HTTPS.
    pub fn mail_ca_pem(&self) -> String {
        self.mail_servers.ca_pem.clone()
    }

    /// The shared state of the mail servers (switches, recorded sessions).
    pub fn mail_state(&self) -> MailState {
        self.mail.clone()
    }

    /// The mail servers' switches as they are now (what `GET /_mock/mail` answers).
    pub fn mail_switches(&self) -> MailSwitches {
        self.mail.switches()
    }

    /// Changes several of the mail servers' switches at once, or none when one value is
    /// unusable (what `POST /_mock/mail` and the `exgate-mock` flags do).
    pub fn change_mail_switches(&self, change: &MailSwitchChange) -> Result<MailSwitches, String> {
        self.mail.change_switches(change)
    }

    /// Every IMAP, POP and SMTP connection so far, oldest first (no credentials recorded).
    pub fn mail_sessions(&self) -> Vec<MailSession> {
        self.mail.sessions()
    }

    /// Lifetime of access and ID tokens (`expires_in`), default 3600 seconds.
    pub fn set_token_lifetime(&self, secs: u64) {
        self.state.lock().token_lifetime = secs;
    }

    /// Adds `"refresh_in": secs` to token responses when `Some`.
    pub fn set_refresh_in(&self, secs: Option<u64>) {
        self.state.lock().refresh_in = secs;
    }

    /// Strict refresh-token rotation: a refresh spends the refresh token it used, which then
    /// fails with AADSTS70008. Off by default, as in Entra, where the old refresh token stays
    /// valid after a refresh answered a new one.
    pub fn set_strict_rotation(&self, strict: bool) {
        self.state.lock().strict_rotation = strict;
    }

    /// Entra's switches as they are now (what `GET /_mock/entra` answers).
    pub fn entra_switches(&self) -> EntraSwitches {
        self.state.switches()
    }

    /// Changes several of Entra's switches at once, or none when one value is unusable (what
    /// `POST /_mock/entra` and the `exgate-mock` flags do).
    pub fn change_entra_switches(
        &self,
        change: &EntraSwitchChange,
    ) -> Result<EntraSwitches, String> {
        self.state.change_switches(change)
    }

    /// Moves the mock's clock forward (codes, device codes, secrets, refresh tokens and token
    /// `exp` claims all follow it).
    pub fn advance_clock(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Expires every secret of the app: secret authentication fails with AADSTS7000222.
    pub fn expire_secret(&self, client_id: &str) {
        self.state
            .lock()
            .secrets_expired
            .insert(client_id.to_ascii_lowercase());
    }

    /// Revokes the app's consent: delegated flows fail with AADSTS65001 (a `consent_required`
    /// redirect from `/authorize`), app-only tokens carry no roles.
    pub fn revoke_consent(&self, client_id: &str) {
        self.state
            .lock()
            .consent_revoked
            .insert(client_id.to_ascii_lowercase());
    }

    /// Gives the app its seeded consent back.
    pub fn grant_consent(&self, client_id: &str) {
        self.state
            .lock()
            .consent_revoked
            .remove(&client_id.to_ascii_lowercase());
    }

    /// The user must use MFA: password and refresh-token grants fail with AADSTS50076.
    pub fn require_mfa(&self, upn: &str) {
        self.state.lock().mfa_users.insert(upn.to_ascii_lowercase());
    }

    /// Revokes every refresh token issued to the user so far (AADSTS70008 on use).
    pub fn revoke_refresh_tokens(&self, upn: &str) {
        self.mark_refresh_tokens(upn, |grant| grant.revoked = true);
    }

    /// Expires every refresh token issued to the user so far by inactivity (AADSTS700082).
    pub fn expire_refresh_tokens_by_inactivity(&self, upn: &str) {
        self.mark_refresh_tokens(upn, |grant| grant.inactive = true);
    }

    fn mark_refresh_tokens(&self, upn: &str, mark: impl Fn(&mut state::RefreshGrant)) {
        let mut inner = self.state.lock();
        let oids: Vec<(String, String)> = inner
            .dir
            .tenants
            .iter()
            .flat_map(|t| {
                t.users
                    .iter()
                    .filter(|u| u.upn.eq_ignore_ascii_case(upn))
                    .map(|u| (t.id.clone(), u.object_id.clone()))
            })
            .collect();
        for grant in inner.refresh_tokens.values_mut() {
            if oids
                .iter()
                .any(|(tid, oid)| *tid == grant.tenant_id && *oid == grant.user_oid)
            {
                mark(grant);
            }
        }
    }

    /// "Allow public client flows": when disabled, device code and password grants without a
    /// client credential fail with AADSTS7000218.
    pub fn set_public_client_flows(&self, client_id: &str, enabled: bool) {
        self.directory.set_public_client_flows(client_id, enabled);
    }

    /// Puts Entra's clock `secs` off (negative: behind): the `Date` of its answers and the
    /// times in the tokens it issues; 0 puts it right.
    pub fn set_clock_skew(&self, secs: i64) {
        self.state.lock().clock_skew = secs;
    }

    /// The next `count` token requests fail with `fault`.
    pub fn fail_token_requests(&self, fault: Fault, count: usize) {
        self.state.lock().fault = (count > 0).then_some((fault, count));
    }

    /// Delay added before answering `/token`.
    pub fn set_latency(&self, latency: Duration) {
        self.state.lock().latency = latency;
    }

    /// `GET /authorize` redirects straight back with a code for this user (no sign-in form).
    pub fn set_auto_approve(&self, upn: Option<&str>) {
        self.state.lock().auto_approve = upn.map(str::to_string);
    }

    /// What a user completing `/devicelogin` does: approves the pending device code.
    pub fn approve_device_code(&self, user_code: &str, upn: &str) -> Result<(), String> {
        let mut inner = self.state.lock();
        let device_code = device::pending_device_code(&inner, user_code)?;
        let Some(grant) = inner.device_codes.get(&device_code) else {
            return Err(format!("no device code has the user code `{user_code}`"));
        };
        let Some(t) = inner.tenant_index_by_id(&grant.tenant_id) else {
            return Err("the device code's tenant is gone".into());
        };
        let Some(user) = inner.user(t, upn) else {
            return Err(format!(
                "user `{upn}` does not exist in tenant {}",
                grant.tenant_id
            ));
        };
        let user_oid = user.object_id.clone();
        if let Some(grant) = inner.device_codes.get_mut(&device_code) {
            grant.status = DeviceStatus::Approved { user_oid };
        }
        Ok(())
    }

    /// The user declines the pending device code.
    pub fn decline_device_code(&self, user_code: &str) -> Result<(), String> {
        let mut inner = self.state.lock();
        let device_code = device::pending_device_code(&inner, user_code)?;
        if let Some(grant) = inner.device_codes.get_mut(&device_code) {
            grant.status = DeviceStatus::Declined;
        }
        Ok(())
    }

    /// Seconds a device must wait between polls (`interval`), default 5; 0 never answers
    /// `slow_down`.
    pub fn set_device_code_interval(&self, secs: u64) {
        self.state.lock().device_interval = secs;
    }

    /// `{base}/graph/v1.0`: the Graph root (what `https://graph.microsoft.com/v1.0` is in
    /// production), no trailing slash.
    pub fn graph_url(&self) -> String {
        format!("{}/graph/v1.0", self.base_url())
    }

    /// The shared Graph state, e.g. to mount [`graph_router`] elsewhere.
    pub fn graph_state(&self) -> GraphState {
        self.graph.clone()
    }

    /// Outlook throttling per app and mailbox (`None`, the default: no throttling).
    /// [`ThrottlePolicy::microsoft`] is what Exchange Online enforces.
    pub fn set_graph_throttling(&self, policy: Option<ThrottlePolicy>) {
        self.graph.set_throttling(policy);
    }

    /// The next `count` Graph requests (batch items count one by one) fail with `fault`:
    /// 429 `ApplicationThrottled` with `Retry-After`, or the 5xx status.
    pub fn fail_graph_requests(&self, fault: Fault, count: usize) {
        self.graph.fail_requests(fault, count);
    }

    /// Delay before answering each Graph request, while it holds its concurrency slot.
    pub fn set_graph_latency(&self, latency: Duration) {
        self.graph.set_latency(latency);
    }

    /// How many HTTP requests reached Graph so far (a `$batch` counts once, whatever it holds;
    /// for throttling its items count one by one).
    pub fn graph_requests(&self) -> usize {
        self.graph.requests()
    }

    /// The most requests to `mailbox` that were in progress at once so far, the rejected ones
    /// included: a client that respects the limit of 4 never makes this exceed 4.
    pub fn max_concurrent_seen(&self, mailbox: &str) -> usize {
        self.graph.max_concurrent_seen(mailbox)
    }

    /// How many Graph requests for `mailbox` the throttling policy
    /// ([`MockMicrosoft::set_graph_throttling`]) refused with a 429 so far: a client that keeps
    /// the limits never makes this more than 0.
    pub fn graph_throttled(&self, mailbox: &str) -> usize {
        self.graph.throttled(mailbox)
    }

    /// `{base}/EWS/Exchange.asmx`: the EWS endpoint (what
    /// `https://outlook.office365.com/EWS/Exchange.asmx` is in production).
    pub fn ews_url(&self) -> String {
        self.ews.ews_url()
    }

    /// `{base}/autodiscover/autodiscover.xml`: POX autodiscover.
    pub fn autodiscover_url(&self) -> String {
        format!("{}/autodiscover/autodiscover.xml", self.base_url())
    }

    /// `{base}/adminapi/beta`: Exchange Online's admin API (what
    /// `https://outlook.office365.com/adminapi/beta` is in production; the ExchangeOnlineManagement
    /// module posts cmdlets to `{this}/{tenant id}/InvokeCommand`).
    pub fn exchange_admin_url(&self) -> String {
        format!("{}/adminapi/beta", self.base_url())
    }

    /// The shared EWS state, e.g. to mount [`ews_router`] elsewhere.
    pub fn ews_state(&self) -> EwsState {
        self.ews.clone()
    }

    /// EWS's switches as they are now (what `GET /_mock/ews` answers).
    pub fn ews_switches(&self) -> EwsSwitches {
        self.ews.switches()
    }

    /// Changes several of EWS's switches at once (server version, throttling, the Exchange
    /// Online app block and allow-list, authentication schemes, autodiscover redirects), or
    /// none when one value is unusable (what `POST /_mock/ews` and the `exgate-mock` flags do).
    pub fn change_ews_switches(&self, change: &EwsSwitchChange) -> Result<EwsSwitches, String> {
        self.ews.change_switches(change)
    }

    /// The Exchange version EWS presents (`t:ServerVersionInfo`) and the request versions it
    /// accepts.
    pub fn set_ews_version(&self, version: crate::ews::ServerVersion) {
        let _ = self.ews.change_switches(&EwsSwitchChange {
            version: Some(version),
            ..EwsSwitchChange::default()
        });
    }

    /// EWS throttling per mailbox (`None`, the default: none);
    /// [`crate::ews::EwsThrottlePolicy::exchange_default`] is Exchange's default policy.
    pub fn set_ews_throttling(
        &self,
        policy: Option<crate::ews::EwsThrottlePolicy>,
    ) -> Result<(), String> {
        self.ews
            .change_switches(&EwsSwitchChange {
                throttling: Some(policy),
                ..EwsSwitchChange::default()
            })
            .map(|_| ())
    }

    /// Every autodiscover request this server answered, with whether it carried credentials.
    pub fn autodiscover_requests(&self) -> Vec<AutodiscoverRequest> {
        self.ews.autodiscover_requests()
    }

    /// How many requests reached `/EWS/Exchange.asmx` so far.
    pub fn ews_requests(&self) -> usize {
        self.ews.requests()
    }

    /// Every message delivered into `mailbox` so far (sent mail and meeting invitations), as
    /// `(internetMessageId, subject)`, oldest first.
    pub fn delivered(&self, mailbox: &str) -> Vec<(String, String)> {
        self.store.delivered(mailbox)
    }

    /// Every message submitted from `mailbox` so far (sendMail, send, reply, forward), as
    /// `(internetMessageId, subject)`, oldest first, whoever its recipients were.
    pub fn submitted(&self, mailbox: &str) -> Vec<(String, String)> {
        self.store.submitted(mailbox)
    }

    /// Replaces the content of the mailbox `content.mailbox` (a seeded user or shared mailbox).
    pub fn load_mailbox(&self, content: MailboxContent) -> Result<(), ContentError> {
        self.store.load_mailbox(content)
    }

    /// Adds messages to a mailbox without reloading it (e.g. a few large ones, with
    /// [`crate::graph::AttachmentContent::generated`] attachments); answers their Graph IDs.
    pub fn add_messages(
        &self,
        mailbox: &str,
        messages: &[MessageContent],
    ) -> Result<Vec<String>, ContentError> {
        self.graph.add_messages(mailbox, messages)
    }

    /// The current content of a mailbox, in the same form [`MockMicrosoft::load_mailbox`] takes
    /// (without the IDs the mock gave its items).
    pub fn mailbox_content(&self, mailbox: &str) -> Option<MailboxContent> {
        self.store.mailbox_content(mailbox)
    }

    /// Sets the app's application access policy: app-only requests reach only these mailboxes
    /// (`None`: all).
    pub fn set_mailbox_scope(&self, client_id: &str, mailboxes: Option<Vec<String>>) {
        self.directory.set_mailbox_scope(client_id, mailboxes);
    }

    /// The Exchange settings of a mailbox (`None`: no such mailbox); every protocol is enabled
    /// unless the seed or [`MockMicrosoft::set_exchange_settings`] says otherwise.
    pub fn exchange_settings(&self, mailbox: &str) -> Option<ExchangeSettings> {
        self.directory.exchange_settings(mailbox)
    }

    /// What `Set-CASMailbox` does: which protocols may reach the mailbox; `false` when there
    /// is no such mailbox.
    pub fn set_exchange_settings(&self, mailbox: &str, settings: ExchangeSettings) -> bool {
        self.directory.set_exchange_settings(mailbox, settings)
    }

    /// The directory the mocks of this server share.
    pub fn directory(&self) -> Directory {
        self.directory.clone()
    }

    /// The mail store the mocks of this server share.
    pub fn mail_store(&self) -> MailStore {
        self.store.clone()
    }

    /// The clock the mocks of this server share (what [`MockMicrosoft::advance_clock`] moves).
    pub fn clock(&self) -> Clock {
        self.clock.clone()
    }

    /// The fault plan shared by the mocks of this server (what `/_mock/faults` changes).
    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    /// Adds a fault rule after the existing ones; see [`FaultRule`].
    pub fn add_fault(&self, rule: FaultRule) -> Result<(), FaultError> {
        self.faults.add(FaultPlan { rules: vec![rule] })
    }

    /// Adds every rule of `plan` after the existing ones.
    pub fn add_faults(&self, plan: FaultPlan) -> Result<(), FaultError> {
        self.faults.add(plan)
    }

    /// Removes every fault rule and resets the counters.
    pub fn clear_faults(&self) {
        self.faults.clear();
    }

    /// The rules, what is left of them, and the faults injected so far by kind.
    pub fn fault_report(&self) -> FaultReport {
        self.faults.report()
    }
}

/// `GET/POST/DELETE /_mock/faults`: read, extend and clear the fault plan at run time;
/// `GET/POST /_mock/entra`: read and change Entra's switches; `GET/POST /_mock/ews`: EWS's;
/// `GET/POST /_mock/oidc`: the generic OpenID provider's; `GET/POST /_mock/mail`: the mail
/// servers'; `GET/POST /_mock/graph`: Graph's change notifications'.
fn admin_router(
    faults: Faults,
    entra: EntraState,
    ews: EwsState,
    oidc: OidcState,
    mail: MailState,
    graph: GraphState,
) -> Router {
    use axum::Json;
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};

    async fn get(State(faults): State<Faults>) -> Response {
        Json(faults.report()).into_response()
    }
    async fn post(State(faults): State<Faults>, body: axum::body::Bytes) -> Response {
        let added = std::str::from_utf8(&body)
            .map_err(|_| FaultError::Invalid("the body is not UTF-8".into()))
            .and_then(FaultPlan::from_json)
            .and_then(|plan| faults.add(plan));
        match added {
            Ok(()) => Json(faults.report()).into_response(),
            Err(e) => (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({"error": e.to_string()})),
            )
                .into_response(),
        }
    }
    async fn delete(State(faults): State<Faults>) -> Response {
        let report = faults.report();
        faults.clear();
        Json(report).into_response()
    }
    Router::new()
        .route(
            "/_mock/faults",
            axum::routing::get(get).post(post).delete(delete),
        )
        .with_state(faults)
        .merge(switch_routes::<EntraState>("/_mock/entra", entra))
        .merge(switch_routes::<EwsState>("/_mock/ews", ews))
        .merge(switch_routes::<OidcState>("/_mock/oidc", oidc))
        .merge(switch_routes::<MailState>("/_mock/mail", mail))
        .merge(switch_routes::<GraphState>("/_mock/graph", graph))
}

impl Switchboard for GraphState {
    type Switches = crate::graph::GraphSwitches;
    fn switches(&self) -> Self::Switches {
        self.graph_switches()
    }
    fn change(&self, json: &str) -> Result<Self::Switches, String> {
        crate::graph::GraphSwitchChange::from_json(json)
            .and_then(|c| self.change_graph_switches(&c))
    }
}

impl Switchboard for MailState {
    type Switches = MailSwitches;
    fn switches(&self) -> Self::Switches {
        MailState::switches(self)
    }
    fn change(&self, json: &str) -> Result<Self::Switches, String> {
        MailSwitchChange::from_json(json).and_then(|c| self.change_switches(&c))
    }
}

/// A mock whose switches `GET` reads and `POST` changes (a JSON change, applied whole or
/// refused with 400 and why).
trait Switchboard: Clone + Send + Sync + 'static {
    type Switches: serde::Serialize;
    fn switches(&self) -> Self::Switches;
    fn change(&self, json: &str) -> Result<Self::Switches, String>;
}

impl Switchboard for EntraState {
    type Switches = crate::entra::EntraSwitches;
    fn switches(&self) -> Self::Switches {
        EntraState::switches(self)
    }
    fn change(&self, json: &str) -> Result<Self::Switches, String> {
        EntraSwitchChange::from_json(json).and_then(|c| self.change_switches(&c))
    }
}

impl Switchboard for EwsState {
    type Switches = crate::ews::EwsSwitches;
    fn switches(&self) -> Self::Switches {
        EwsState::switches(self)
    }
    fn change(&self, json: &str) -> Result<Self::Switches, String> {
        EwsSwitchChange::from_json(json).and_then(|c| self.change_switches(&c))
    }
}

impl Switchboard for OidcState {
    type Switches = crate::oidc::OidcSwitches;
    fn switches(&self) -> Self::Switches {
        OidcState::switches(self)
    }
    fn change(&self, json: &str) -> Result<Self::Switches, String> {
        OidcSwitchChange::from_json(json).and_then(|c| self.change_switches(&c))
    }
}

fn switch_routes<S: Switchboard>(path: &str, state: S) -> Router {
    use axum::Json;
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};

    async fn get<S: Switchboard>(State(s): State<S>) -> Response {
        Json(s.switches()).into_response()
    }
    async fn post<S: Switchboard>(State(s): State<S>, body: axum::body::Bytes) -> Response {
        let changed = std::str::from_utf8(&body)
            .map_err(|_| "the body is not UTF-8".to_string())
            .and_then(|json| s.change(json));
        match changed {
            Ok(switches) => Json(switches).into_response(),
            Err(e) => (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({"error": e})),
            )
                .into_response(),
        }
    }
    Router::new()
        .route(path, axum::routing::get(get::<S>).post(post::<S>))
        .with_state(state)
}
