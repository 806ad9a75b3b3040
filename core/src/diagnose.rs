//! The connection test: ordered probes, each passed, failed or skipped (with why), with what was
//! seen and the fix. A step that did not run is never reported as passed, and the report is `ok`
//! only when every step ran and passed.
//!
//! The steps, in order:
//! 0. **network** — one per host the connection reaches (identity provider, Graph or EWS, the
//!    IMAP/POP/SMTP servers): name resolution, TCP, TLS; an untrusted chain is named as an
//!    unknown CA or a TLS-inspecting proxy (`diagnose::network`);
//! 1. **identity provider** — fetches the OIDC discovery document of the connection's authority
//!    (Entra ID for its cloud and tenant, or the custom authority) and checks its issuer and
//!    token endpoint;
//!    then **clock**: the local clock against its answer's `Date` (over five minutes fails);
//!    then, for a delegated connection, **sign-in**: its redirect URIs registered (a real
//!    authorization request with `prompt=none`: sent back, or AADSTS50011), or its device
//!    code / password flow allowed (a device code started and polled once: pending, or
//!    AADSTS7000218 when "Allow public client flows" is off) — no user needed
//!    (`diagnose::signin`);
//! 2. **credentials** — app-only: a new token by client credentials; delegated: the chosen
//!    account's token (cached, or refreshed); for a connection with a client credential and no
//!    given expiry date, the evidence ends with the credential's expiry read from the app's
//!    registration in Graph, or the permission Graph wants for it (`expiry::graph`);
//! 3. **token claims** — the permissions the token carries (`roles` or `scp`) against what the
//!    backend needs for the mailbox operations;
//! 4. **mailbox** — a real read of the mailbox's folders through the backend (for an IMAP or
//!    POP backend, that protocol's own mailbox probe below does it).
//!
//! Exchange Server with Basic or NTLM has no identity provider and no token, so those steps do
//! not apply (they are not listed); EWS itself is probed instead:
//! 1. **EWS endpoint** — an anonymous request to the EWS URL: host reachable, TLS trusted, and
//!    the authentication schemes the server offers (`WWW-Authenticate`);
//! 2. **authentication** — the connection's credentials on a real EWS request (a 401 names the
//!    schemes the server offers);
//! 3. **mailbox** — the account's own mailbox read through EWS (exists, initialized, EWS
//!    enabled: a 403 is EWS disabled, with its fix);
//! 4. **mailbox access** (with `--mailbox`) — another mailbox read as a delegate (FullAccess),
//!    else by impersonation (ApplicationImpersonation).
//!
//! OAuth connections whose backend is EWS: the token steps run, then the mailbox is read through
//! EWS.
//!
//! Connections that read over IMAP or POP, or send over SMTP, then probe each of those
//! protocols: the server reached and TLS (STARTTLS where the URL asks for it), the token's
//! claims checked locally (audience, role or scope, tenant), XOAUTH2 accepted, and the mailbox
//! (IMAP `SELECT INBOX`, POP `STAT`, SMTP `MAIL FROM` then `RSET`, nothing sent); a refusal is
//! explained with its fix (`mail::explain`).

mod network;
mod signin;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;

use crate::Error;
use crate::auth::oauth::login_host;
use crate::auth::{AuthError, OAuthClient, SignIn};
use crate::connections::Connections;
use crate::graph::permissions::{Access, permission};
use crate::mailbox::{MailboxError, MailboxRef, Operation};
use crate::mailboxes::Mailboxes;
use crate::model::{
    Auth, Connection, EmailAddress, EndpointUrl, InvalidInput, Principal, Resource, Target,
};
use crate::net;

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The probe ran and what it saw is right.
    Passed,
    /// The probe ran and found a problem.
    Failed,
    /// The probe did not run; `evidence` says why.
    Skipped,
}

/// One step of the test.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    /// What was seen (HTTP status, AADSTS code, token claims, endpoint reached); for a skipped
    /// step, why it did not run.
    pub evidence: String,
    /// What to do, when there is something to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// The test's answer.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub connection: String,
    /// Every step ran and passed. A skipped step makes the report not ok: it proves nothing.
    pub ok: bool,
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether any step ran and failed (as opposed to only skipped steps).
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Failed)
    }
}

/// What to test beyond the connection itself.
#[derive(Debug, Clone, Default)]
pub struct TestOptions {
    /// The account of a delegated connection (default: its only account).
    pub account: Option<String>,
    /// The mailbox to read (default: the account's own; required to read one app-only).
    pub mailbox: Option<String>,
    /// The gateway's own redirect URI (`<public URL>/service/oauth2/authorize`), checked with
    /// the connection's when the gateway runs the test.
    pub redirect_uri: Option<String>,
}

pub const IDENTITY_PROVIDER: &str = "identity provider";
pub const CREDENTIALS: &str = "credentials";
pub const TOKEN_CLAIMS: &str = "token claims";
pub const MAILBOX: &str = "mailbox";
pub const EWS_ENDPOINT: &str = "EWS endpoint";
pub const AUTHENTICATION: &str = "authentication";
pub const MAILBOX_ACCESS: &str = "mailbox access";
pub const MAIL_PROTOCOLS: &str = "mail protocols";
/// Whether users can sign in by a delegated connection's flow: its redirect URIs registered
/// (authorization code), or the public-client grants allowed (device code, password).
pub const SIGN_IN: &str = "sign-in";
/// Name resolution, TCP and TLS to one host (one step per host the connection reaches).
pub const NETWORK: &str = "network";
/// The local clock against the identity provider's `Date`.
pub const CLOCK: &str = "clock";
/// The most the local clock may differ from the identity provider's.
pub const MAX_CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// The hosts an OAuth connection reaches, each once (by host and port), roles joined.
fn hosts(connection: &Connection, network: &crate::config::NetworkSettings) -> Vec<network::Host> {
    let settings = &connection.settings;
    let mut urls: Vec<(&str, String)> = Vec::new();
    match (&settings.authority, &settings.target) {
        (Some(discovery), _) => urls.push(("identity provider", discovery.to_string())),
        (None, Target::Online { cloud, .. }) => urls.push((
            "identity provider",
            network
                .authority_host
                .as_ref()
                .map_or_else(|| login_host(*cloud).to_owned(), ToString::to_string),
        )),
        (None, Target::Server { .. }) => {}
    }
    let resource = crate::auth::signin::primary_resource(connection);
    match &settings.target {
        Target::Online { cloud, .. } => {
            if resource == Resource::Graph || settings.sending() == crate::model::Sender::Graph {
                urls.push((
                    "Microsoft Graph",
                    network.graph_url.as_ref().map_or_else(
                        || crate::graph::default_base_url(*cloud).to_owned(),
                        ToString::to_string,
                    ),
                ));
            }
            if resource == Resource::Ews {
                urls.push((
                    "EWS",
                    network.ews_url.as_ref().map_or_else(
                        || "https://outlook.office365.com/EWS/Exchange.asmx".to_owned(),
                        ToString::to_string,
                    ),
                ));
            }
        }
        Target::Server { ews_url, .. } => urls.push(("EWS", ews_url.to_string())),
    }
    let mut out: Vec<network::Host> = Vec::new();
    let mut add = |role: &str, host: String, port: u16, tls: bool| {
        if let Some(h) = out
            .iter_mut()
            .find(|h| h.host.eq_ignore_ascii_case(&host) && h.port == port)
        {
            if !h.role.split(", ").any(|r| r == role) {
                h.role = format!("{}, {role}", h.role);
            }
        } else {
            out.push(network::Host {
                role: role.to_owned(),
                host,
                port,
                tls,
            });
        }
    };
    for (role, url) in urls {
        if let Ok(u) = url::Url::parse(&url)
            && let (Some(host), Some(port)) = (u.host_str(), u.port_or_known_default())
        {
            add(role, host.to_owned(), port, u.scheme() == "https");
        }
    }
    if let Target::Online { cloud, .. } = &settings.target {
        for protocol in settings.mail_protocols() {
            let url = network.mail_url(protocol, *cloud, settings.mail.get(protocol));
            add(
                &protocol.to_string(),
                url.host().to_owned(),
                url.port(),
                url.security() == crate::mail::url::Security::Tls,
            );
        }
    }
    out
}

/// One network step per host; answers whether the identity provider's host was reached.
async fn network_steps(
    steps: &mut Steps,
    connection: &Connection,
    network: &crate::config::NetworkSettings,
) -> bool {
    let mut idp_ok = true;
    for host in hosts(connection, network) {
        match network::probe(&host, network).await {
            Ok(evidence) => steps.passed(NETWORK, evidence),
            Err(f) => {
                steps.failed(NETWORK, f.evidence, (!f.fix.is_empty()).then_some(f.fix));
                if host.role.starts_with("identity provider") {
                    // Nothing else can be tested; the other hosts are left alone.
                    idp_ok = false;
                    break;
                }
            }
        }
    }
    idp_ok
}

/// The local clock against the identity provider's `Date` header: tokens and client assertions
/// carry times, and Entra refuses those too far off (and exgate would take valid tokens for
/// expired ones).
fn clock_step(steps: &mut Steps, date: Option<&str>, now: time::OffsetDateTime) {
    let Some(date) = date else {
        steps.skipped(
            CLOCK,
            "skipped: the identity provider's answer carried no Date header to compare the clock with",
            None,
        );
        return;
    };
    let Ok(theirs) = httpdate::parse_http_date(date) else {
        steps.skipped(
            CLOCK,
            format!("skipped: the identity provider's Date header `{date}` is not an HTTP date"),
            None,
        );
        return;
    };
    let theirs = time::OffsetDateTime::from(theirs);
    let skew = now - theirs;
    let secs = skew.whole_seconds();
    let how = if secs >= 0 { "ahead of" } else { "behind" };
    let evidence = format!(
        "this machine's clock ({}) is {} s {how} the identity provider's (Date: {date})",
        now.format(&Rfc3339).unwrap_or_default(),
        secs.unsigned_abs()
    );
    if skew.abs() > MAX_CLOCK_SKEW {
        steps.failed(
            CLOCK,
            format!("{evidence}: more than 5 minutes"),
            Some("set this machine's clock right and keep it so with NTP (`timedatectl set-ntp true`, or chrony/ntpd); tokens and client assertions carry times that Entra ID and Exchange check".into()),
        );
    } else {
        steps.passed(CLOCK, format!("{evidence}: within 5 minutes"));
    }
}

struct Steps {
    connection: String,
    account: Option<String>,
    checks: Vec<Check>,
}

impl Steps {
    /// `text` with the commands in it completed with this connection (and account), so they run
    /// as printed.
    fn complete(&self, text: &str) -> String {
        let login = match &self.account {
            Some(a) => format!("`exgate login -c {} -a {a}`", self.connection),
            None => format!("`exgate login -c {}`", self.connection),
        };
        text.replace("`exgate login`", &login)
            .replace(
                "exgate connection edit NAME",
                &format!("exgate connection edit {}", self.connection),
            )
            .replace(
                "`exgate accounts list`",
                &format!("`exgate accounts list -c {}`", self.connection),
            )
    }

    fn push(&mut self, name: &'static str, status: Status, evidence: String, fix: Option<String>) {
        let fix = fix.map(|f| self.complete(&f));
        self.checks.push(Check {
            name,
            status,
            evidence,
            fix,
        });
    }

    fn passed(&mut self, name: &'static str, evidence: String) {
        self.push(name, Status::Passed, evidence, None);
    }

    fn failed(&mut self, name: &'static str, evidence: String, fix: Option<String>) {
        self.push(name, Status::Failed, evidence, fix);
    }

    fn skipped(&mut self, name: &'static str, why: impl Into<String>, fix: Option<String>) {
        self.push(name, Status::Skipped, why.into(), fix);
    }

    /// Skips every remaining step of `names` for the same reason.
    fn skip_rest(&mut self, names: &[&'static str], why: &str) {
        for name in names {
            self.skipped(name, format!("skipped: {why}"), None);
        }
    }

    fn report(self) -> Report {
        Report {
            ok: !self.checks.is_empty() && self.checks.iter().all(|c| c.status == Status::Passed),
            connection: self.connection,
            checks: self.checks,
        }
    }
}

/// The fix for an error, when exgate knows one.
fn fix_of(e: &Error) -> Option<String> {
    match e {
        Error::Auth(a) => a.fix().map(str::to_owned),
        Error::Mailbox(m) => m.hint().map(str::to_owned),
        Error::NeedsSignIn { .. } => Some("sign the user in again with `exgate login`".into()),
        _ => None,
    }
}

/// AADSTS700027 for a connection with a certificate: the fix names the certificate (its
/// `x5t#S256` thumbprint, what exgate sends) and the app it must be uploaded to.
fn certificate_fix(e: &Error, connection: &Connection) -> Option<String> {
    let Error::Auth(a) = e else { return None };
    if a.aadsts().map(|x| x.code) != Some(700_027) {
        return None;
    }
    let (id, cert) = match &connection.settings.auth {
        Auth::OAuth2AppOnly(a) => match &a.credential {
            crate::model::ClientCredential::Certificate(c) => (&a.client_id, c),
            crate::model::ClientCredential::Secret(_) => return None,
        },
        Auth::OAuth2Delegated(d) => match &d.credential {
            Some(crate::model::ClientCredential::Certificate(c)) => (&d.client_id, c),
            _ => return None,
        },
        Auth::Basic(_) | Auth::Ntlm(_) => return None,
    };
    Some(format!(
        "the connection's certificate (x5t#S256 {}) is not one of the app {id}'s certificates: upload its public part (the PEM given at `connection add`, never the key) under Certificates & secrets > Certificates of the app registration, or with the Azure CLI `az ad app credential reset --id {id} --cert @cert.pem --append` (`--append` keeps the app's other credentials); or give the connection the certificate and key the app has: `exgate connection edit NAME --certificate FILE --private-key FILE`",
        cert.thumbprint_sha256()
    ))
}

/// EWS's refusals of an OAuth connection, with the fix naming the app, the mailbox and the
/// user: EWS turned off for the organization or the app (HTTP 403), and a mailbox the app's
/// scope or the user's rights leave out (`ErrorImpersonateUserDenied`, `ErrorAccessDenied`).
fn ews_fix(
    e: &Error,
    connection: &Connection,
    mailbox: &str,
    user: Option<&str>,
    token: &str,
) -> Option<String> {
    let Error::Mailbox(MailboxError::Forbidden { message, .. }) = e else {
        return None;
    };
    let (client_id, app_only) = match &connection.settings.auth {
        Auth::OAuth2AppOnly(a) => (a.client_id.to_string(), true),
        Auth::OAuth2Delegated(d) => (d.client_id.to_string(), false),
        Auth::Basic(_) | Auth::Ntlm(_) => return None,
    };
    // `to_mailbox_error` writes the EWS response code first.
    let code = message.split(':').next().unwrap_or_default();
    match (code, app_only, user) {
        ("EwsDisabled", _, _) => Some(format!(
            "EWS is turned off for this organization or this app: in Exchange Online PowerShell, `Set-OrganizationConfig -EwsEnabled $true`, and while the organization keeps an allow list of apps, add this one to it (`Set-OrganizationConfig -EwsAllowedAppIDs` writes the whole list: give the IDs `(Get-OrganizationConfig).EwsAllowedAppIDs` shows and {client_id}); the mailbox's own switch must allow EWS too (`Set-CASMailbox -Identity {mailbox} -EwsEnabled $true`). EWS in Exchange Online is being retired: the Graph backend needs none of this (`exgate connection edit NAME --backend graph`)"
        )),
        ("ErrorImpersonateUserDenied" | "ErrorAccessDenied", true, _) => {
            let oid = claims_of(token)
                .and_then(|c| c["oid"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "<the app's service principal object ID>".into());
            Some(format!(
                "Exchange lets the app {client_id} open only some mailboxes, and {mailbox} is not among them: an application access policy or an RBAC for Applications scope leaves it out. In Exchange Online PowerShell, `Test-ApplicationAccessPolicy -Identity {mailbox} -AppId {client_id}` names the policy (add {mailbox} to its group), and `Get-ManagementRoleAssignment -RoleAssignee {oid}` lists the app's role assignments (add {mailbox} to their management scope)"
            ))
        }
        ("ErrorAccessDenied" | "ErrorImpersonateUserDenied", false, Some(user)) => Some(format!(
            "give {user} FullAccess to {mailbox}: `Add-MailboxPermission -Identity {mailbox} -User {user} -AccessRights FullAccess`"
        )),
        _ => None,
    }
}

/// Tests a connection step by step (see the module documentation). Errors only for what is not
/// a finding about the connection: an unknown connection, a malformed account or mailbox, the
/// store.
pub async fn test_connection(
    connections: &Connections,
    signin: &SignIn,
    mailboxes: &Mailboxes,
    name: &str,
    options: &TestOptions,
) -> Result<Report, Error> {
    let connection = connections.get(name).await?.connection;
    let account: Option<Principal> = options
        .account
        .as_deref()
        .map(|a| {
            a.parse()
                .map_err(|e: crate::model::ParseError| InvalidInput::new("account", e.0))
        })
        .transpose()?;
    let mailbox: Option<EmailAddress> = options
        .mailbox
        .as_deref()
        .map(|m| {
            m.parse()
                .map_err(|e: crate::model::ParseError| InvalidInput::new("mailbox", e.0))
        })
        .transpose()?;
    let app_only = matches!(connection.settings.auth, Auth::OAuth2AppOnly(_));
    if app_only && account.is_some() {
        return Err(InvalidInput::new(
            "account",
            "is not used on app-only connections: the app acts for itself".into(),
        )
        .into());
    }
    let mut steps = Steps {
        connection: connection.name.to_string(),
        account: account.as_ref().map(ToString::to_string),
        checks: Vec::new(),
    };

    // Basic and NTLM: only the EWS backend speaks them; EWS itself is probed.
    if let Auth::Basic(p) | Auth::Ntlm(p) = &connection.settings.auth {
        let user = p.username.clone();
        return ews_with_password(
            steps,
            &connection,
            &user,
            mailboxes,
            &signin.network(),
            mailbox.as_ref(),
        )
        .await;
    }

    // 0. Each host: name resolution, TCP, TLS.
    // The steps after the identity provider's, for skipping them (sign-in: delegated only).
    let after_idp: &[&'static str] = if app_only {
        &[CLOCK, CREDENTIALS, TOKEN_CLAIMS, MAILBOX]
    } else {
        &[CLOCK, SIGN_IN, CREDENTIALS, TOKEN_CLAIMS, MAILBOX]
    };
    if !network_steps(&mut steps, &connection, &signin.network()).await {
        steps.skipped(
            IDENTITY_PROVIDER,
            "skipped: the identity provider's host cannot be reached",
            None,
        );
        steps.skip_rest(after_idp, "the identity provider's host cannot be reached");
        return Ok(steps.report());
    }

    // 1. The identity provider, and the clock against its Date.
    let mut date = None;
    if !identity_provider(&mut steps, &connection, signin, &mut date).await {
        steps.skip_rest(
            after_idp,
            "the identity provider step failed, so no token can be had",
        );
        return Ok(steps.report());
    }
    clock_step(&mut steps, date.as_deref(), signin.clock().now());

    // 1b. How users sign in, found without anyone signing in (`diagnose::signin`).
    if let Auth::OAuth2Delegated(d) = &connection.settings.auth {
        signin::step(
            &mut steps,
            &connection,
            d,
            signin,
            options.redirect_uri.as_deref(),
        )
        .await;
    }

    // 2. Credentials: a token.
    let resource = crate::auth::signin::primary_resource(&connection);
    let mut principal = None;
    let mut own_mailbox = None;
    if !app_only {
        match signin.resolve_account(&connection, account.as_ref()).await {
            Ok(a) => {
                own_mailbox = Some(
                    a.mailbox
                        .as_ref()
                        .map_or_else(|| a.principal.to_string(), ToString::to_string),
                );
                steps.account = Some(a.principal.to_string());
                principal = Some(a.principal);
            }
            Err(Error::NeedsSignIn { reason, .. }) => {
                steps.skipped(
                    CREDENTIALS,
                    format!("skipped: {reason}"),
                    Some("sign a user in first with `exgate login`".into()),
                );
                steps.skip_rest(&[TOKEN_CLAIMS, MAILBOX], "no account has signed in");
                return Ok(steps.report());
            }
            Err(e @ Error::Invalid(_)) => {
                steps.skipped(
                    CREDENTIALS,
                    format!("skipped: {e}"),
                    Some(
                        "name the account to test (--account in the CLI, \"account\" in the API); `exgate accounts list` shows them"
                            .into(),
                    ),
                );
                steps.skip_rest(&[TOKEN_CLAIMS, MAILBOX], "no account was chosen");
                return Ok(steps.report());
            }
            Err(e @ Error::NotFound { .. }) => {
                steps.failed(
                    CREDENTIALS,
                    e.to_string(),
                    Some("`exgate accounts list` shows the accounts there are".into()),
                );
                steps.skip_rest(&[TOKEN_CLAIMS, MAILBOX], "the account does not exist");
                return Ok(steps.report());
            }
            Err(e) => return Err(e),
        }
    }
    // App-only: a new token straight from the token endpoint, past the cache (which may hold
    // one from before the secret or certificate changed) and without touching it. Delegated:
    // the account's token as every call gets it (cached, or refreshed).
    let token: Result<(String, String), Error> = if app_only {
        let network = signin.network();
        let scope = Resource::app_only_scope(&crate::auth::signin::resource_identifier(
            &connection,
            resource,
        ));
        let attempt = async {
            let http =
                net::http_client(&network).map_err(|e| AuthError::Unsupported(e.to_string()))?;
            let client =
                OAuthClient::for_connection(&connection.settings, &network, http, signin.clock())
                    .await?;
            let response = client.client_credentials(&scope).await?;
            Ok::<_, AuthError>((client.endpoints().token.to_string(), response))
        };
        attempt
            .await
            .map(|(endpoint, response)| {
                (
                    response.access_token.expose().to_owned(),
                    format!(
                        "got a new app-only token (client credentials, scope {scope}) from {endpoint}, valid for {} s",
                        response.expires_in.as_secs()
                    ),
                )
            })
            .map_err(Error::Auth)
    } else {
        signin
            .token(name, principal.as_ref(), resource)
            .await
            .map(|t| {
                let until = t.expires_at.format(&Rfc3339).unwrap_or_default();
                let who = principal
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                (
                    t.secret.expose().to_owned(),
                    format!("got account `{who}`'s token, valid until {until}"),
                )
            })
    };
    let token = match token {
        Ok((token, evidence)) => {
            let evidence = match credential_expiry_evidence(&connection, signin).await {
                Some(line) => format!("{evidence}; {line}"),
                None => evidence,
            };
            steps.passed(CREDENTIALS, evidence);
            token
        }
        Err(e) => {
            let fix = certificate_fix(&e, &connection).or_else(|| fix_of(&e));
            steps.failed(CREDENTIALS, e.to_string(), fix);
            steps.skip_rest(
                &[TOKEN_CLAIMS, MAILBOX],
                "the credentials step got no token",
            );
            return Ok(steps.report());
        }
    };

    // 3. The token's claims against what the backend needs.
    let target = match (&mailbox, &own_mailbox) {
        (Some(m), _) => Some(m.to_string()),
        (None, Some(own)) => Some(own.clone()),
        (None, None) => None,
    };
    let shared = match (&mailbox, &own_mailbox) {
        (Some(m), Some(own)) => !m.as_str().eq_ignore_ascii_case(own),
        _ => false,
    };
    let access = match (app_only, shared) {
        (true, _) => Access::Application,
        (false, true) => Access::Shared,
        (false, false) => Access::Delegated,
    };
    token_claims(&mut steps, &token, resource, access);

    // 4. A real read of the mailbox, through the connection's backend.
    let Some(target) = target else {
        steps.skipped(
            MAILBOX,
            "skipped: an app-only connection has no mailbox of its own; name one to read (--mailbox ADDRESS in the CLI, \"mailbox\" in the API)",
            None,
        );
        return Ok(steps.report());
    };
    // A connection that reads over IMAP or POP has its mailbox read by that protocol's own
    // probe below, which explains Exchange's terse refusals with their fix; reading it here
    // too would fail first with less to say.
    let read_below = connection.settings.backend.is_mail_protocol();
    let probe = async {
        let backend = mailboxes.open(Some(name), principal.as_ref()).await?;
        let which = match &mailbox {
            Some(m) => MailboxRef::User(m.to_string()),
            None if app_only => MailboxRef::User(target.clone()),
            None => MailboxRef::Me,
        };
        let folders = backend.mail()?.folders(&which).await?;
        Ok::<_, Error>((folders.len(), backend.protocol))
    };
    match if read_below { None } else { Some(probe.await) } {
        None => {}
        Some(Ok((n, protocol))) => steps.passed(
            MAILBOX,
            format!("read {target}: {n} mail folder(s) listed through {protocol}"),
        ),
        Some(Err(e)) => {
            let user = principal.as_ref().map(ToString::to_string);
            let fix =
                ews_fix(&e, &connection, &target, user.as_deref(), &token).or_else(|| fix_of(&e));
            steps.failed(MAILBOX, format!("reading {target}: {e}"), fix);
        }
    }

    // 5. Each mail protocol the connection uses (IMAP or POP reading, SMTP sending): server
    //    and TLS, the token's claims checked locally, XOAUTH2, the mailbox (SELECT / STAT /
    //    MAIL FROM + RSET). Only the steps that ran are listed.
    if !connection.settings.mail_protocols().is_empty() {
        match mailboxes
            .probe_mail_protocols(&connection, principal.as_ref(), Some(&target))
            .await
        {
            Ok(probes) => {
                for p in probes {
                    match p.outcome {
                        Ok(evidence) => steps.passed(p.name, evidence),
                        Err(f) => {
                            let hint = f.hint.clone();
                            steps.failed(p.name, f.to_string(), Some(hint));
                        }
                    }
                }
            }
            Err(e) => steps.failed(MAIL_PROTOCOLS, e.to_string(), fix_of(&e)),
        }
    }
    Ok(steps.report())
}

/// The client credential's expiry as the app's registration in Graph has it (a line of the
/// credentials step's evidence), when the connection has a client credential and no given
/// date (which wins); a 403 says which permission would let exgate read it.
async fn credential_expiry_evidence(connection: &Connection, signin: &SignIn) -> Option<String> {
    if connection.settings.credential_expires.is_some() {
        return None;
    }
    let answer = crate::expiry::graph::read(connection, signin).await;
    let name = connection.name.as_str();
    match &answer {
        crate::expiry::graph::FromGraph::NotApplicable(_) => None,
        crate::expiry::graph::FromGraph::Found { expires, .. } => {
            let now = signin.clock().now();
            let near = crate::expiry::CredentialExpiry::with_graph(
                &connection.settings,
                Some(*expires),
                now,
            )
            .filter(|e| e.warning.is_some())
            .map(|e| format!(" ({})", e.message(name)))
            .unwrap_or_default();
            Some(format!("{}{near}", answer.evidence()))
        }
        crate::expiry::graph::FromGraph::Denied => Some(format!(
            "{}; {}",
            answer.evidence(),
            crate::expiry::graph::READ_PERMISSION_FIX.replace(
                "exgate connection edit NAME",
                &format!("exgate connection edit {name}")
            )
        )),
        _ => Some(answer.evidence()),
    }
}

/// The authentication schemes a 401 offers (`WWW-Authenticate`), e.g. `Negotiate, NTLM, Basic`.
fn offered_schemes(headers: &reqwest::header::HeaderMap) -> Vec<String> {
    headers
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split_whitespace().next())
        .map(|s| s.trim_end_matches(',').to_owned())
        .collect()
}

/// An error with its causes (reqwest's own message is terse: "error sending request").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let _ = std::fmt::Write::write_fmt(&mut text, format_args!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Exchange Server with Basic or NTLM: the EWS endpoint, the credentials on a real request, the
/// account's own mailbox and, when one is named, another mailbox as a delegate.
async fn ews_with_password(
    mut steps: Steps,
    connection: &Connection,
    user: &str,
    mailboxes: &Mailboxes,
    network: &crate::config::NetworkSettings,
    mailbox: Option<&EmailAddress>,
) -> Result<Report, Error> {
    let scheme = connection.settings.auth.kind();
    let later: Vec<&'static str> = match mailbox {
        Some(_) => vec![AUTHENTICATION, MAILBOX, MAILBOX_ACCESS],
        None => vec![AUTHENTICATION, MAILBOX],
    };
    let Target::Server { ews_url, .. } = &connection.settings.target else {
        steps.skipped(
            EWS_ENDPOINT,
            format!("skipped: {scheme} authentication is for Exchange Server only"),
            None,
        );
        steps.skip_rest(&later, "the connection has no Exchange Server EWS URL");
        return Ok(steps.report());
    };
    let url = ews_url.as_url().clone();

    // 1. Reachable, TLS, and the schemes offered, by an anonymous request.
    let http = net::http_client(network).map_err(|e| AuthError::Unsupported(e.to_string()))?;
    let offered = match http
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "text/xml; charset=utf-8")
        .body("")
        .send()
        .await
    {
        Ok(resp) => {
            let offered = offered_schemes(resp.headers());
            let transport = if url.scheme() == "https" {
                "over TLS, certificate trusted"
            } else {
                "over plain http (loopback)"
            };
            let schemes = if offered.is_empty() {
                "no authentication scheme".to_owned()
            } else {
                offered.join(", ")
            };
            steps.passed(
                EWS_ENDPOINT,
                format!(
                    "{url} answered HTTP {} {transport}; an anonymous request is offered: {schemes}",
                    resp.status().as_u16()
                ),
            );
            offered
        }
        Err(e) => {
            let detail = chain(&e);
            let host = url.host_str().unwrap_or_default();
            let fix = if detail.to_ascii_lowercase().contains("certificate") {
                format!(
                    "the certificate of {host} is not trusted: put its CA certificate (PEM) in a file and set `tls.ca_file` in exgate.toml"
                )
            } else {
                format!(
                    "check that {host} resolves and port {} is open from this machine (DNS, firewall, proxy); the URL is changed with `exgate connection edit NAME --ews-url URL`",
                    url.port_or_known_default().unwrap_or(443)
                )
            };
            steps.failed(
                EWS_ENDPOINT,
                format!("{url} cannot be reached: {detail}"),
                Some(fix),
            );
            steps.skip_rest(&later, "the EWS endpoint cannot be reached");
            return Ok(steps.report());
        }
    };

    // 2 and 3. The credentials on a real request: the account's own mailbox.
    let name = connection.name.as_str();
    let backend = mailboxes.open(Some(name), None).await?;
    let own = match backend.mail() {
        Ok(mail) => mail.folders(&MailboxRef::Me).await,
        Err(e) => Err(e),
    };
    match own {
        Ok(folders) => {
            steps.passed(
                AUTHENTICATION,
                format!("EWS accepted the {scheme} credentials of `{user}`"),
            );
            steps.passed(
                MAILBOX,
                format!(
                    "read `{user}`'s own mailbox: {} mail folder(s) listed through EWS",
                    folders.len()
                ),
            );
        }
        Err(
            e @ Error::Mailbox(
                MailboxError::Unauthorized { .. } | MailboxError::Rejected { status: 401, .. },
            ),
        ) => {
            let message = e.to_string();
            let schemes = if offered.is_empty() {
                "none named".to_owned()
            } else {
                offered.join(", ")
            };
            let speaks = offered.iter().any(|o| {
                o.eq_ignore_ascii_case(scheme.as_str())
                    || (scheme == crate::model::AuthKind::Ntlm
                        && o.eq_ignore_ascii_case("Negotiate"))
            });
            let fix = if speaks {
                "check the user name and password (`exgate connection edit NAME --username USER --password-file FILE`); the account may also be locked or its password expired".to_owned()
            } else {
                format!(
                    "the server does not offer {scheme}: switch to a scheme it offers (`exgate connection edit NAME --auth ntlm` or `--auth basic`), or enable {scheme} on the EWS virtual directory (`Set-WebServicesVirtualDirectory -Identity \"EWS (Default Web Site)\" -BasicAuthentication $true` / `-WindowsAuthentication $true`)"
                )
            };
            steps.failed(
                AUTHENTICATION,
                format!(
                    "EWS refused the {scheme} credentials of `{user}` ({message}); the server offers: {schemes}"
                ),
                Some(fix),
            );
            steps.skip_rest(
                &later[1..],
                "the credentials were refused, so no mailbox can be read",
            );
            return Ok(steps.report());
        }
        Err(e @ Error::Mailbox(MailboxError::Transport(_))) => {
            steps.skipped(
                AUTHENTICATION,
                format!("skipped: no EWS answer said whether the credentials are accepted: {e}"),
                None,
            );
            steps.failed(
                MAILBOX,
                format!("reading `{user}`'s mailbox: {e}"),
                fix_of(&e),
            );
            if mailbox.is_some() {
                steps.skip_rest(&[MAILBOX_ACCESS], "EWS did not answer");
            }
            return Ok(steps.report());
        }
        Err(e) => {
            // An answer past authentication: a 403 (EWS disabled), a missing mailbox, …
            steps.passed(
                AUTHENTICATION,
                format!(
                    "EWS accepted the {scheme} credentials of `{user}` (its answer was not a 401)"
                ),
            );
            steps.failed(
                MAILBOX,
                format!("reading `{user}`'s mailbox: {e}"),
                fix_of(&e),
            );
            if mailbox.is_some() {
                steps.skip_rest(
                    &[MAILBOX_ACCESS],
                    "the account's own mailbox could not be read",
                );
            }
            return Ok(steps.report());
        }
    }

    // 4. Another mailbox: as a delegate (FullAccess, how the connection reaches it), else by
    // impersonation (ApplicationImpersonation, how static users with `impersonation` reach it).
    if let Some(other) = mailbox {
        let which = MailboxRef::User(other.to_string());
        let delegate = match backend.mail() {
            Ok(mail) => mail.folders(&which).await,
            Err(e) => Err(e),
        };
        match delegate {
            Ok(folders) => steps.passed(
                MAILBOX_ACCESS,
                format!(
                    "`{user}` read {other} as a delegate (FullAccess): {} mail folder(s) listed through EWS",
                    folders.len()
                ),
            ),
            Err(as_delegate) => {
                let impersonated = match mailboxes.open_ews_impersonating(name).await {
                    Ok(b) => match b.mail() {
                        Ok(mail) => mail.folders(&which).await,
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                };
                match impersonated {
                    Ok(folders) => steps.passed(
                        MAILBOX_ACCESS,
                        format!(
                            "`{user}` read {other} by impersonation (ApplicationImpersonation): {} mail folder(s) listed through EWS; as a delegate it was refused ({as_delegate}), so map users to it with `impersonation` access",
                            folders.len()
                        ),
                    ),
                    Err(by_impersonation) => steps.failed(
                        MAILBOX_ACCESS,
                        format!(
                            "`{user}` cannot read {other}: as a delegate: {as_delegate}; by impersonation: {by_impersonation}"
                        ),
                        Some(format!(
                            "give `{user}` FullAccess to {other} (`Add-MailboxPermission -Identity {other} -User {user} -AccessRights FullAccess`), or the ApplicationImpersonation role (`New-ManagementRoleAssignment -Role ApplicationImpersonation -User {user}`, scoped with `-CustomRecipientWriteScope`)"
                        )),
                    ),
                }
            }
        }
    }
    Ok(steps.report())
}

/// Fetches and checks the discovery document. Answers whether the step passed.
async fn identity_provider(
    steps: &mut Steps,
    connection: &Connection,
    signin: &SignIn,
    date: &mut Option<String>,
) -> bool {
    let network = signin.network();
    let custom = connection.settings.authority.is_some();
    let url = match (&connection.settings.authority, &connection.settings.target) {
        (Some(discovery), _) => discovery.to_string(),
        (None, Target::Online { cloud, tenant }) => {
            let host = network
                .authority_host
                .as_ref()
                .map_or_else(|| login_host(*cloud).to_owned(), |h| h.to_string());
            format!(
                "{}/{tenant}/v2.0/.well-known/openid-configuration",
                host.trim_end_matches('/')
            )
        }
        (None, Target::Server { .. }) => {
            steps.failed(
                IDENTITY_PROVIDER,
                "an oauth2 connection to Exchange Server has no identity provider configured".into(),
                Some("set the discovery URL of its identity provider (AD FS, Keycloak) with `exgate connection edit NAME --authority URL`".into()),
            );
            return false;
        }
    };
    let fix_where = if custom {
        "check the connection's authority (`exgate connection edit NAME --authority URL`)"
    } else {
        "check the tenant (`exgate connection edit NAME --tenant TENANT`) and, when set, endpoints.authority_host in the configuration"
    };
    let http = match net::http_client(&network) {
        Ok(h) => h,
        Err(e) => {
            steps.failed(IDENTITY_PROVIDER, e.to_string(), None);
            return false;
        }
    };
    let resp = match http.get(&url).send().await {
        Ok(r) => r,
        Err(e) => {
            let what = if e.is_timeout() {
                "timed out".to_owned()
            } else if e.is_connect() {
                "cannot connect".to_owned()
            } else {
                e.to_string()
            };
            steps.failed(
                IDENTITY_PROVIDER,
                format!("GET {url}: {what}"),
                Some(format!(
                    "check that this machine reaches the identity provider (DNS, firewall, proxy, tls.ca_file); {fix_where}"
                )),
            );
            return false;
        }
    };
    let status = resp.status().as_u16();
    *date = resp
        .headers()
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match net::read_body(resp).await {
        Ok(b) => b,
        Err(e) => {
            steps.failed(
                IDENTITY_PROVIDER,
                format!("GET {url}: HTTP {status}, reading the answer failed: {e}"),
                None,
            );
            return false;
        }
    };
    if status != 200 {
        let refusal = serde_json::from_slice::<crate::auth::ErrorBody>(&body)
            .ok()
            .filter(|b| !b.error.is_empty())
            .map(|body| AuthError::Refused {
                during: "OIDC discovery",
                status,
                body: Box::new(body),
                retry_after: None,
            });
        let (evidence, fix) = match refusal {
            Some(e) => (
                format!("GET {url}: HTTP {status}: {e}"),
                e.fix().map(str::to_owned),
            ),
            None => (format!("GET {url}: HTTP {status}"), None),
        };
        steps.failed(
            IDENTITY_PROVIDER,
            evidence,
            Some(fix.unwrap_or_else(|| fix_where.to_owned())),
        );
        return false;
    }
    let doc: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(d) => d,
        Err(e) => {
            steps.failed(
                IDENTITY_PROVIDER,
                format!("GET {url}: HTTP 200, but not an OpenID Connect discovery document: {e}"),
                Some(fix_where.to_owned()),
            );
            return false;
        }
    };
    let issuer = doc["issuer"].as_str().unwrap_or_default();
    let token = doc["token_endpoint"].as_str().unwrap_or_default();
    let problem = if issuer.is_empty() {
        Some("it names no issuer".to_owned())
    } else if token.is_empty() {
        Some("it names no token_endpoint".to_owned())
    } else if let Err(e) = token.parse::<EndpointUrl>() {
        Some(format!("its token_endpoint is unusable: {}", e.0))
    } else if custom && origin(issuer) != origin(&url) {
        Some(format!(
            "its issuer {issuer} is not on the discovery URL's host: tokens would come from elsewhere"
        ))
    } else {
        None
    };
    // OpenID Connect Discovery §4.3 wants the issuer to be the discovery URL without its suffix;
    // Entra names the tenant by its ID there (or `{tenantid}`) however it was asked for, so a
    // different path is noted, not failed.
    let expected = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let note = if custom && problem.is_none() && expected != url {
        format!(" (the issuer's discovery URL would be {expected})")
    } else {
        String::new()
    };
    match problem {
        Some(p) => {
            steps.failed(
                IDENTITY_PROVIDER,
                format!("GET {url}: HTTP 200, but {p}"),
                Some(fix_where.to_owned()),
            );
            false
        }
        None => {
            steps.passed(
                IDENTITY_PROVIDER,
                format!("GET {url}: HTTP 200; issuer {issuer}{note}; token endpoint {token}"),
            );
            true
        }
    }
}

/// `scheme://host:port` of a URL, lowercase; empty when it is not one.
fn origin(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

/// The payload of a JWT, unverified: the token came straight from the token endpoint, and is
/// read here only to report what it carries.
fn claims_of(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether `granted` covers `need` (a `….ReadWrite…` permission covers its `….Read…`).
fn covers(granted: &[String], need: &str) -> bool {
    let wider = need.replacen(".Read", ".ReadWrite", 1);
    granted.iter().any(|g| {
        g.eq_ignore_ascii_case(need) || (need.contains(".Read") && g.eq_ignore_ascii_case(&wider))
    })
}

fn token_claims(steps: &mut Steps, token: &str, resource: Resource, access: Access) {
    let Some(claims) = claims_of(token) else {
        steps.skipped(
            TOKEN_CLAIMS,
            "skipped: the token is not a JWT (an opaque token); its permissions cannot be read",
            None,
        );
        return;
    };
    let app_only = access == Access::Application;
    let granted: Vec<String> = if app_only {
        claims["roles"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        claims["scp"]
            .as_str()
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("(none)").to_owned();
    let mut evidence = format!(
        "aud {}; tid {}; {} {}",
        text(&claims["aud"]),
        text(&claims["tid"]),
        if app_only { "roles" } else { "scp" },
        if granted.is_empty() {
            "(none)".to_owned()
        } else {
            granted.join(" ")
        }
    );
    let (kind, grant) = if app_only {
        (
            "application permission",
            "grant admin consent; a new token carries it at once",
        )
    } else {
        (
            "delegated permission",
            "grant consent, then sign in again with `exgate login` so the token carries it",
        )
    };
    let mail_protocol = match resource {
        Resource::Imap => Some(crate::mail::MailProtocol::Imap),
        Resource::Pop => Some(crate::mail::MailProtocol::Pop),
        Resource::Smtp => Some(crate::mail::MailProtocol::Smtp),
        Resource::Graph | Resource::Ews => None,
    };
    if let Some(protocol) = mail_protocol {
        let need = if app_only {
            crate::mail::claims::app_role(protocol)
        } else {
            crate::mail::claims::delegated_scope(protocol)
        };
        if covers(&granted, need) {
            steps.passed(TOKEN_CLAIMS, evidence);
        } else {
            steps.failed(
                TOKEN_CLAIMS,
                format!("{evidence}; missing {need}, which {protocol} needs"),
                Some(format!(
                    "add the {kind} {need} of Office 365 Exchange Online under API permissions of the app registration and {grant}"
                )),
            );
        }
        return;
    }
    if resource != Resource::Graph {
        let need = if app_only {
            "full_access_as_app"
        } else {
            "EWS.AccessAsUser.All"
        };
        if covers(&granted, need) {
            steps.passed(TOKEN_CLAIMS, evidence);
        } else {
            steps.failed(
                TOKEN_CLAIMS,
                format!("{evidence}; missing {need}, which EWS needs"),
                Some(format!(
                    "add the {kind} {need} of Office 365 Exchange Online under API permissions of the app registration and {grant}"
                )),
            );
        }
        return;
    }
    let read = permission(Operation::READ_MAIL, access);
    let missing: Vec<(Operation, &str)> = Operation::ALL
        .into_iter()
        .map(|op| (op, permission(op, access)))
        .filter(|(_, need)| !covers(&granted, need))
        .collect();
    let others: Vec<String> = missing
        .iter()
        .filter(|(_, need)| *need != read)
        .map(|(op, need)| format!("{need} ({})", op.name()))
        .collect();
    if !others.is_empty() {
        evidence.push_str(&format!("; not granted, so refused: {}", others.join(", ")));
    }
    if covers(&granted, read) {
        steps.passed(TOKEN_CLAIMS, evidence);
    } else {
        steps.failed(
            TOKEN_CLAIMS,
            format!("{evidence}; missing {read} (or its ReadWrite), which reading mail needs"),
            Some(format!(
                "add the {kind} {read} (or {}) of Microsoft Graph under API permissions of the app registration and {grant}",
                read.replacen(".Read", ".ReadWrite", 1)
            )),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_write_covers_read_and_shared_stays_shared() {
        let granted = vec!["Mail.ReadWrite".to_owned(), "Calendars.Read.Shared".into()];
        assert!(covers(&granted, "Mail.Read"));
        assert!(covers(&granted, "Mail.ReadWrite"));
        assert!(!covers(&granted, "Mail.Read.Shared"));
        assert!(!covers(&granted, "Mail.Send"));
        assert!(covers(&granted, "Calendars.Read.Shared"));
        assert!(!covers(&granted, "Calendars.ReadWrite.Shared"));
    }

    #[test]
    fn a_skipped_step_makes_the_report_not_ok() {
        let mut steps = Steps {
            connection: "c".into(),
            account: None,
            checks: Vec::new(),
        };
        steps.passed(IDENTITY_PROVIDER, "seen".into());
        steps.skipped(CREDENTIALS, "skipped: why", None);
        let report = steps.report();
        assert!(!report.ok);
        assert!(!report.failed());
    }

    #[test]
    fn fixes_name_the_connection_and_account() {
        let steps = Steps {
            connection: "contoso".into(),
            account: Some("adele".into()),
            checks: Vec::new(),
        };
        assert_eq!(
            steps.complete(
                "sign in with `exgate login`; or `exgate connection edit NAME --tenant T`"
            ),
            "sign in with `exgate login -c contoso -a adele`; or `exgate connection edit contoso --tenant T`"
        );
    }
}
