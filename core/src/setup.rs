//! The guided setup: what an Entra ID app registration (or, on premises, a service account) needs
//! for what exgate will do with it.
//!
//! [`Needs`] says who signs in (users through the gateway's portal, a person at the CLI, a mail
//! client through `exgate token`, a service on its own), which protocols, where the mailboxes
//! are and which mailboxes an app-only service may reach. [`plan`] answers [`Requirements`]: the
//! supported account types, the redirect URIs per platform, "Allow public client flows", the
//! permissions per resource by name, the admin-consent URL, the credential with expiry advice,
//! the Exchange PowerShell that Microsoft Graph cannot do (filled with the real IDs when they are
//! known) and the exgate connections to create. This is the one place that knows these rules:
//! `exgate setup`, `exgate app register` ([`crate::appreg`]) and the docs follow it.
//!
//! The permission names come from the tables the backends use themselves
//! ([`crate::graph::permissions`], [`Resource::default_delegated_permissions`],
//! [`crate::mail::claims::app_role`]), so a plan never asks for something the connection test
//! would not look for.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::auth::oauth::login_host;
use crate::graph::permissions::{self, Access};
use crate::mail::MailProtocol;
use crate::mailbox::Operation;
use crate::model::{
    AuthKind, Backend, ClientId, Cloud, DelegatedFlow, EmailAddress, EndpointUrl, InvalidInput,
    ParseError, Resource, SendVia, Tenant,
};

/// Microsoft Graph's application ID (the same in every tenant).
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Office 365 Exchange Online's application ID (EWS, IMAP, POP, SMTP and the Exchange admin API).
pub const EXCHANGE_APP_ID: &str = "00000002-0000-0ff1-ce00-000000000000";

/// Who obtains the tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Actor {
    /// End users sign in through the gateway's portal (authorization code to
    /// `<public URL>/service/oauth2/authorize`).
    Portal,
    /// A person at the command line (`exgate login`: loopback browser or device code).
    Cli,
    /// A mail client that takes its token from `exgate token` (XOAUTH2).
    MailClient,
    /// A service, script or workflow acting on its own (app-only, client credentials).
    Service,
}

impl Actor {
    pub const ALL: [Self; 4] = [Self::Portal, Self::Cli, Self::MailClient, Self::Service];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Portal => "portal",
            Self::Cli => "cli",
            Self::MailClient => "mail-client",
            Self::Service => "service",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::Portal => "users sign in through the gateway's portal",
            Self::Cli => "a person signs in at the command line",
            Self::MailClient => "a mail client takes its token from `exgate token`",
            Self::Service => "a service, script or workflow acts on its own (app-only)",
        }
    }

    fn delegated(self) -> bool {
        self != Self::Service
    }
}

impl FromStr for Actor {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "portal" | "users" | "gateway" => Ok(Self::Portal),
            "cli" | "person" => Ok(Self::Cli),
            "mail-client" | "mailclient" | "token" => Ok(Self::MailClient),
            "service" | "app-only" | "script" | "workflow" => Ok(Self::Service),
            other => Err(ParseError(format!(
                "`{other}` is not who signs in; expected one of: portal, cli, mail-client, service"
            ))),
        }
    }
}

/// Where the mailboxes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Place {
    /// Exchange Online in a Microsoft cloud.
    Online { cloud: Cloud },
    /// Exchange Server on premises (EWS with a service account).
    Server,
}

/// How the app proves itself when it has to (portal and app-only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialKind {
    Secret,
    Certificate,
}

impl FromStr for CredentialKind {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "secret" | "client-secret" => Ok(Self::Secret),
            "certificate" | "cert" => Ok(Self::Certificate),
            other => Err(ParseError(format!(
                "`{other}` is not a credential kind; expected secret or certificate"
            ))),
        }
    }
}

/// IDs that are known already and go into the commands printed (placeholders otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownIds {
    /// The Directory (tenant) ID, or a verified domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<Tenant>,
    /// The Application (client) ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<ClientId>,
    /// The object ID of the app's service principal (the enterprise application), which
    /// Exchange's `New-ServicePrincipal -ObjectId` takes — not the registration's object ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_principal_id: Option<String>,
}

/// What the app will do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Needs {
    /// The base of the exgate connections' names and the app registration's display name.
    pub name: String,
    pub actors: BTreeSet<Actor>,
    pub protocols: BTreeSet<Resource>,
    pub place: Place,
    /// The gateway's public URL (for [`Actor::Portal`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<EndpointUrl>,
    /// The mailboxes a service may reach (app-only); also those a mailbox right is granted on.
    #[serde(default)]
    pub mailboxes: Vec<EmailAddress>,
    /// Limit app-only Graph and EWS to [`Needs::mailboxes`] with RBAC for Applications instead of
    /// Entra application permissions (which reach every mailbox).
    #[serde(default)]
    pub rbac: bool,
    /// Signed-in users also open shared or other users' mailboxes (`*.Shared` permissions).
    #[serde(default)]
    pub shared_mailboxes: bool,
    pub credential: CredentialKind,
    /// The secret's or certificate's lifetime in months.
    pub credential_months: u32,
    /// Exchange Server: the service account that impersonates (`CONTOSO\svc-exgate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    #[serde(default)]
    pub ids: KnownIds,
}

/// The longest credential lifetime exgate creates, and the one Microsoft recommends staying under.
pub const MAX_CREDENTIAL_MONTHS: u32 = 24;
pub const RECOMMENDED_CREDENTIAL_MONTHS: u32 = 12;

impl Needs {
    /// A starting point: `name`, nothing chosen, Exchange Online global, a secret for 12 months.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            actors: BTreeSet::new(),
            protocols: BTreeSet::new(),
            place: Place::Online {
                cloud: Cloud::Global,
            },
            public_url: None,
            mailboxes: Vec::new(),
            rbac: false,
            shared_mailboxes: false,
            credential: CredentialKind::Secret,
            credential_months: RECOMMENDED_CREDENTIAL_MONTHS,
            service_account: None,
            ids: KnownIds::default(),
        }
    }

    /// Whether any actor signs users in (delegated permissions).
    pub fn delegated(&self) -> bool {
        self.actors.iter().any(|a| a.delegated())
    }

    /// Whether a service acts on its own (application permissions).
    pub fn app_only(&self) -> bool {
        self.actors.contains(&Actor::Service)
    }

    /// Checks that the choices fit together.
    pub fn check(&self) -> Result<(), InvalidInput> {
        if self.name.trim().is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(InvalidInput::new(
                "name",
                format!(
                    "`{}` cannot start a connection name; use letters, digits, `-` and `_`",
                    self.name
                ),
            ));
        }
        if self.actors.is_empty() {
            return Err(InvalidInput::missing(
                "who",
                "say who signs in: portal, cli, mail-client or service".into(),
            ));
        }
        if self.protocols.is_empty() {
            return Err(InvalidInput::missing(
                "protocols",
                "choose at least one protocol: graph, ews, imap, pop or smtp".into(),
            ));
        }
        if self.actors.contains(&Actor::Portal) && self.public_url.is_none() {
            return Err(InvalidInput::missing(
                "public_url",
                "users who sign in through the gateway return to <public URL>/service/oauth2/authorize; \
                 give the gateway's public URL, such as https://exgate.contoso.com"
                    .into(),
            ));
        }
        if self.credential_months == 0 || self.credential_months > MAX_CREDENTIAL_MONTHS {
            return Err(InvalidInput::new(
                "credential_months",
                format!(
                    "{} months is outside 1..={MAX_CREDENTIAL_MONTHS}; Microsoft recommends less than \
                     {RECOMMENDED_CREDENTIAL_MONTHS} months",
                    self.credential_months
                ),
            ));
        }
        if self.rbac && self.mailboxes.is_empty() {
            return Err(InvalidInput::missing(
                "mailboxes",
                "RBAC for Applications limits the app to mailboxes: name them".into(),
            ));
        }
        if self.place == Place::Server {
            if let Some(p) = self.protocols.iter().find(|p| **p != Resource::Ews) {
                return Err(InvalidInput::new(
                    "protocols",
                    format!(
                        "exgate reaches Exchange Server over EWS only ({p} is for Exchange Online)"
                    ),
                ));
            }
            if let Some(a) = self.actors.iter().find(|a| a.delegated()) {
                return Err(InvalidInput::new(
                    "who",
                    format!(
                        "on Exchange Server exgate signs in with a service account (basic or ntlm) \
                         that impersonates the mailboxes; `{}` sign-in there needs a custom \
                         authority (AD FS, see docs/exchange-server.md), which setup does not plan",
                        a.as_str()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// One of the two resources exgate's permissions belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Api {
    MicrosoftGraph,
    ExchangeOnline,
}

impl Api {
    pub fn app_id(self) -> &'static str {
        match self {
            Self::MicrosoftGraph => GRAPH_APP_ID,
            Self::ExchangeOnline => EXCHANGE_APP_ID,
        }
    }

    /// The name shown under "API permissions".
    pub fn display_name(self) -> &'static str {
        match self {
            Self::MicrosoftGraph => "Microsoft Graph",
            Self::ExchangeOnline => "Office 365 Exchange Online",
        }
    }

    /// The resource's identifier in `cloud` (scopes are `<identifier>/<permission>`).
    pub fn identifier(self, cloud: Cloud) -> &'static str {
        match self {
            Self::MicrosoftGraph => Resource::Graph.identifier(cloud),
            Self::ExchangeOnline => Resource::Ews.identifier(cloud),
        }
    }

    fn of(resource: Resource) -> Self {
        match resource {
            Resource::Graph => Self::MicrosoftGraph,
            Resource::Ews | Resource::Imap | Resource::Pop | Resource::Smtp => Self::ExchangeOnline,
        }
    }
}

/// The permissions of one resource, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiPermissions {
    pub api: Api,
    /// The resource's application ID (its service principal's `appId`).
    pub app_id: String,
    pub display_name: String,
    /// Delegated permissions (`oauth2PermissionScopes`, type `Scope`).
    pub delegated: Vec<String>,
    /// Application permissions (`appRoles`, type `Role`).
    pub application: Vec<String>,
}

/// What the app registration must look like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRegistration {
    pub display_name: String,
    /// Supported account types: `AzureADMyOrg` (this organization only).
    pub sign_in_audience: String,
    /// Platform "Web": where the gateway's portal sign-ins return.
    pub web_redirect_uris: Vec<String>,
    /// Platform "Mobile and desktop applications": the CLI's loopback and the native-client URI.
    pub public_client_redirect_uris: Vec<String>,
    /// "Allow public client flows" (`isFallbackPublicClient`), needed by device code.
    pub allow_public_client_flows: bool,
    pub permissions: Vec<ApiPermissions>,
    /// Grants every permission for the whole organization (an administrator opens it).
    pub admin_consent_url: String,
    /// The v2.0 admin-consent URL with scope and redirect URI, when the app has a redirect URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_consent_url_v2: Option<String>,
    /// `None` when only public clients use the app (nothing to keep secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<CredentialAdvice>,
}

/// Secret or certificate, with how long it lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialAdvice {
    pub kind: CredentialKind,
    pub months: u32,
    pub advice: String,
}

/// Where a PowerShell step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shell {
    /// Exchange Online PowerShell (`Connect-ExchangeOnline`).
    ExchangeOnline,
    /// The Exchange Management Shell on premises.
    ExchangeServer,
}

/// One PowerShell command with why it is needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerShellStep {
    pub shell: Shell,
    pub why: String,
    pub command: String,
    /// The cmdlet and its parameters, for running it through the Exchange admin API.
    #[serde(skip)]
    pub cmdlet: Option<Cmdlet>,
}

/// A cmdlet with named parameters (what Exchange's admin API `InvokeCommand` takes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmdlet {
    pub name: &'static str,
    pub parameters: Vec<(&'static str, serde_json::Value)>,
}

/// An exgate connection to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedConnection {
    pub name: String,
    pub auth: AuthKind,
    pub backend: Backend,
    pub send: SendVia,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<DelegatedFlow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    /// The connection holds the app's secret or certificate (portal and app-only).
    pub confidential: bool,
    /// The mailbox its test reads (app-only: the first mailbox given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_mailbox: Option<String>,
}

/// Everything to do, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirements {
    /// `None` on premises: exgate signs in to Exchange Server with a service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppRegistration>,
    pub powershell: Vec<PowerShellStep>,
    pub connections: Vec<PlannedConnection>,
    pub notes: Vec<String>,
}

impl Requirements {
    /// The permissions of `api`, if the plan has any.
    pub fn permissions(&self, api: Api) -> Option<&ApiPermissions> {
        self.app
            .as_ref()
            .and_then(|a| a.permissions.iter().find(|p| p.api == api))
    }
}

/// The Graph operations exgate performs on a mailbox it reads and writes.
const MAILBOX_OPERATIONS: [Operation; 4] = [
    Operation::WRITE_MAIL,
    Operation::SEND_MAIL,
    Operation::WRITE_CALENDAR,
    Operation::WRITE_CONTACTS,
];

/// Scopes every delegated sign-in asks for besides the resource's permissions (Microsoft Graph
/// permissions too): who signed in, and a refresh token.
const SIGN_IN_SCOPES: [&str; 4] = ["User.Read", "offline_access", "openid", "profile"];

/// The app-only role each Exchange protocol needs (Office 365 Exchange Online).
fn exchange_app_role(resource: Resource) -> Option<&'static str> {
    match resource {
        Resource::Ews => Some("full_access_as_app"),
        Resource::Imap => Some(crate::mail::claims::app_role(MailProtocol::Imap)),
        Resource::Pop => Some(crate::mail::claims::app_role(MailProtocol::Pop)),
        Resource::Smtp => Some(crate::mail::claims::app_role(MailProtocol::Smtp)),
        Resource::Graph => None,
    }
}

fn push_unique(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|x| x == item) {
        list.push(item.to_owned());
    }
}

/// A PowerShell single-quoted string.
fn ps_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Works out what to do for `needs` (which must have passed [`Needs::check`]).
pub fn plan(needs: &Needs) -> Result<Requirements, InvalidInput> {
    needs.check()?;
    let mut notes = Vec::new();
    let connections = plan_connections(needs);
    // An IMAP or POP connection sends over SMTP: it needs SMTP's permission too.
    let mut effective;
    let needs = if (needs.protocols.contains(&Resource::Imap)
        || needs.protocols.contains(&Resource::Pop))
        && !needs.protocols.contains(&Resource::Smtp)
    {
        effective = needs.clone();
        effective.protocols.insert(Resource::Smtp);
        notes.push("SMTP is included: exgate's IMAP and POP connections send over SMTP".into());
        &effective
    } else {
        needs
    };
    let mut powershell = Vec::new();
    let app = match needs.place {
        Place::Server => {
            server_steps(needs, &mut powershell, &mut notes);
            None
        }
        Place::Online { cloud } => {
            let app = app_registration(needs, cloud, &mut notes);
            online_steps(needs, &app, &mut powershell, &mut notes);
            Some(app)
        }
    };
    if needs.protocols.contains(&Resource::Ews) && matches!(needs.place, Place::Online { .. }) {
        notes.push(
            "EWS in Exchange Online is blocked from 1 October 2026 unless the tenant sets \
             EWSEnabled and allow-lists the app, and switched off on 1 April 2027: prefer Graph"
                .into(),
        );
    }
    Ok(Requirements {
        app,
        powershell,
        connections,
        notes,
    })
}

fn app_registration(needs: &Needs, cloud: Cloud, notes: &mut Vec<String>) -> AppRegistration {
    let mut graph = ApiPermissions {
        api: Api::MicrosoftGraph,
        app_id: GRAPH_APP_ID.into(),
        display_name: Api::MicrosoftGraph.display_name().into(),
        delegated: Vec::new(),
        application: Vec::new(),
    };
    let mut exchange = ApiPermissions {
        api: Api::ExchangeOnline,
        app_id: EXCHANGE_APP_ID.into(),
        display_name: Api::ExchangeOnline.display_name().into(),
        delegated: Vec::new(),
        application: Vec::new(),
    };
    if needs.delegated() {
        for protocol in &needs.protocols {
            let into = match Api::of(*protocol) {
                Api::MicrosoftGraph => &mut graph.delegated,
                Api::ExchangeOnline => &mut exchange.delegated,
            };
            for p in protocol.default_delegated_permissions() {
                push_unique(into, p);
            }
            if *protocol == Resource::Graph && needs.shared_mailboxes {
                for op in MAILBOX_OPERATIONS {
                    push_unique(into, permissions::permission(op, Access::Shared));
                }
            }
        }
        for scope in SIGN_IN_SCOPES {
            push_unique(&mut graph.delegated, scope);
        }
    }
    if needs.app_only() {
        for protocol in &needs.protocols {
            // RBAC for Applications grants Graph and EWS per mailbox scope in Exchange; an Entra
            // application permission would reach every mailbox beside it.
            let scoped = needs.rbac && matches!(protocol, Resource::Graph | Resource::Ews);
            if scoped {
                continue;
            }
            match protocol {
                Resource::Graph => {
                    for op in MAILBOX_OPERATIONS {
                        push_unique(
                            &mut graph.application,
                            permissions::permission(op, Access::Application),
                        );
                    }
                }
                other => {
                    if let Some(role) = exchange_app_role(*other) {
                        push_unique(&mut exchange.application, role);
                    }
                }
            }
        }
    }
    let public_url = needs
        .public_url
        .as_ref()
        .map(|u| u.as_url().as_str().trim_end_matches('/').to_owned());
    let web_redirect_uris: Vec<String> = match (&public_url, needs.actors.contains(&Actor::Portal))
    {
        (Some(base), true) => vec![format!("{base}/service/oauth2/authorize")],
        _ => Vec::new(),
    };
    let public_client =
        needs.actors.contains(&Actor::Cli) || needs.actors.contains(&Actor::MailClient);
    let public_client_redirect_uris = if public_client {
        vec![
            "http://localhost".to_owned(),
            format!("{}/common/oauth2/nativeclient", login_host(cloud)),
        ]
    } else {
        Vec::new()
    };
    if public_client {
        notes.push(
            "\"Allow public client flows\" is on so `exgate login --device-code` works (and \
             `--password`, which MFA breaks); the public-client sign-ins send no secret"
                .into(),
        );
    }
    let confidential = needs.actors.contains(&Actor::Portal) || needs.app_only();
    let credential = confidential.then(|| CredentialAdvice {
        kind: needs.credential,
        months: needs.credential_months,
        advice: credential_advice(needs),
    });
    let tenant = needs
        .ids
        .tenant
        .as_ref()
        .map_or_else(|| "{tenant}".to_owned(), ToString::to_string);
    let client = needs
        .ids
        .client_id
        .as_ref()
        .map_or_else(|| "{client-id}".to_owned(), ToString::to_string);
    let host = login_host(cloud);
    let admin_consent_url = format!("{host}/{tenant}/adminconsent?client_id={client}");
    let admin_consent_url_v2 = web_redirect_uris
        .first()
        .or(public_client_redirect_uris.get(1))
        .map(|redirect| {
            let scope = if graph.delegated.is_empty() && graph.application.is_empty() {
                format!("{}/.default", Api::ExchangeOnline.identifier(cloud))
            } else {
                format!("{}/.default", Api::MicrosoftGraph.identifier(cloud))
            };
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("client_id", &client)
                .append_pair("scope", &scope)
                .append_pair("redirect_uri", redirect)
                .finish();
            format!("{host}/{tenant}/v2.0/adminconsent?{query}")
        });
    let permissions = [graph, exchange]
        .into_iter()
        .filter(|p| !p.delegated.is_empty() || !p.application.is_empty())
        .collect();
    AppRegistration {
        display_name: needs.name.clone(),
        sign_in_audience: "AzureADMyOrg".into(),
        web_redirect_uris,
        public_client_redirect_uris,
        allow_public_client_flows: public_client,
        permissions,
        admin_consent_url,
        admin_consent_url_v2,
        credential,
    }
}

fn credential_advice(needs: &Needs) -> String {
    let months = needs.credential_months;
    let long = if months > RECOMMENDED_CREDENTIAL_MONTHS {
        format!(
            " {months} months is longer than Microsoft recommends ({RECOMMENDED_CREDENTIAL_MONTHS} or less)."
        )
    } else {
        String::new()
    };
    match needs.credential {
        CredentialKind::Secret => format!(
            "a client secret valid for {months} months: its value is shown once, when it is \
             created — copy the Value, not the Secret ID. exgate records its expiry and warns 30, \
             14, 7 and 1 days ahead; `exgate app rotate-secret` replaces it without downtime.{long}"
        ),
        CredentialKind::Certificate => format!(
            "a certificate valid for {months} months (preferred for app-only: the private key \
             never leaves exgate's store, and only the public certificate is uploaded to the \
             app registration). Renew it before it expires; exgate warns 30, 14, 7 and 1 days \
             ahead.{long}"
        ),
    }
}

fn online_steps(
    needs: &Needs,
    app: &AppRegistration,
    steps: &mut Vec<PowerShellStep>,
    notes: &mut Vec<String>,
) {
    if !needs.app_only() {
        return;
    }
    let mail_protocols: Vec<Resource> = needs
        .protocols
        .iter()
        .copied()
        .filter(|p| matches!(p, Resource::Imap | Resource::Pop | Resource::Smtp))
        .collect();
    let rbac: Vec<Resource> = if needs.rbac {
        needs
            .protocols
            .iter()
            .copied()
            .filter(|p| matches!(p, Resource::Graph | Resource::Ews))
            .collect()
    } else {
        Vec::new()
    };
    if mail_protocols.is_empty() && rbac.is_empty() {
        if needs.protocols.contains(&Resource::Graph) || needs.protocols.contains(&Resource::Ews) {
            notes.push(
                "the application permissions reach every mailbox in the organization; to limit \
                 the app to some mailboxes, rerun with RBAC for Applications (--rbac --mailbox …)"
                    .into(),
            );
        }
        return;
    }
    let client_id = needs.ids.client_id.as_ref().map_or_else(
        || "<application (client) ID>".to_owned(),
        ToString::to_string,
    );
    let sp = needs
        .ids
        .service_principal_id
        .clone()
        .unwrap_or_else(|| "<object ID of the enterprise application>".to_owned());
    steps.push(PowerShellStep {
        shell: Shell::ExchangeOnline,
        why: "register the app's service principal in Exchange Online (the enterprise \
              application's object ID, not the app registration's)"
            .into(),
        command: format!(
            "New-ServicePrincipal -AppId {client_id} -ObjectId {sp} -DisplayName {}",
            ps_quote(&app.display_name)
        ),
        cmdlet: Some(Cmdlet {
            name: "New-ServicePrincipal",
            parameters: vec![
                ("AppId", client_id.clone().into()),
                ("ObjectId", sp.clone().into()),
                ("DisplayName", app.display_name.clone().into()),
            ],
        }),
    });
    if !mail_protocols.is_empty() {
        let names: Vec<&str> = mail_protocols.iter().map(|p| p.as_str()).collect();
        let mailboxes: Vec<String> = if needs.mailboxes.is_empty() {
            vec!["<mailbox>".to_owned()]
        } else {
            needs.mailboxes.iter().map(|m| m.to_string()).collect()
        };
        for mailbox in mailboxes {
            steps.push(PowerShellStep {
                shell: Shell::ExchangeOnline,
                why: format!(
                    "let the app open {mailbox} over {} (app-only needs a mailbox right)",
                    names.join("/").to_uppercase()
                ),
                command: format!(
                    "Add-MailboxPermission -Identity {} -User {sp} -AccessRights FullAccess",
                    ps_quote(&mailbox)
                ),
                cmdlet: Some(Cmdlet {
                    name: "Add-MailboxPermission",
                    parameters: vec![
                        ("Identity", mailbox.clone().into()),
                        ("User", sp.clone().into()),
                        ("AccessRights", serde_json::json!(["FullAccess"])),
                    ],
                }),
            });
        }
    }
    if !rbac.is_empty() {
        let scope = format!("{}-mailboxes", needs.name);
        let filter = needs
            .mailboxes
            .iter()
            .map(|m| {
                format!(
                    "PrimarySmtpAddress -eq '{}'",
                    m.as_str().replace('\'', "''")
                )
            })
            .collect::<Vec<_>>()
            .join(" -or ");
        steps.push(PowerShellStep {
            shell: Shell::ExchangeOnline,
            why: "the mailboxes the app may reach (a management scope)".into(),
            command: format!(
                "New-ManagementScope -Name {} -RecipientRestrictionFilter {}",
                ps_quote(&scope),
                ps_quote(&filter)
            ),
            cmdlet: Some(Cmdlet {
                name: "New-ManagementScope",
                parameters: vec![
                    ("Name", scope.clone().into()),
                    ("RecipientRestrictionFilter", filter.clone().into()),
                ],
            }),
        });
        let mut roles = Vec::new();
        for protocol in &rbac {
            match protocol {
                Resource::Graph => {
                    for op in MAILBOX_OPERATIONS {
                        push_unique(
                            &mut roles,
                            &format!(
                                "Application {}",
                                permissions::permission(op, Access::Application)
                            ),
                        );
                    }
                }
                _ => push_unique(&mut roles, "Application EWS.AccessAsApp"),
            }
        }
        for role in roles {
            let assignment = format!(
                "{}-{}",
                needs.name,
                role.trim_start_matches("Application ").replace('.', "-")
            );
            steps.push(PowerShellStep {
                shell: Shell::ExchangeOnline,
                why: format!("grant {role} within the scope {scope}"),
                command: format!(
                    "New-ManagementRoleAssignment -Name {} -App {client_id} -Role {} -CustomResourceScope {}",
                    ps_quote(&assignment),
                    ps_quote(&role),
                    ps_quote(&scope)
                ),
                cmdlet: Some(Cmdlet {
                    name: "New-ManagementRoleAssignment",
                    parameters: vec![
                        ("Name", assignment.clone().into()),
                        ("App", client_id.clone().into()),
                        ("Role", role.clone().into()),
                        ("CustomResourceScope", scope.clone().into()),
                    ],
                }),
            });
        }
        notes.push(
            "with RBAC for Applications the app has no Entra application permission for Graph or \
             EWS: an unscoped one would reach every mailbox beside the scoped role"
                .into(),
        );
    }
}

fn server_steps(needs: &Needs, steps: &mut Vec<PowerShellStep>, notes: &mut Vec<String>) {
    let account = needs
        .service_account
        .clone()
        .unwrap_or_else(|| "<service account>".to_owned());
    let name = format!("{}-impersonation", needs.name);
    if needs.mailboxes.is_empty() {
        steps.push(PowerShellStep {
            shell: Shell::ExchangeServer,
            why: "let the service account act as every mailbox's owner (EWS impersonation)".into(),
            command: format!(
                "New-ManagementRoleAssignment -Name {} -Role ApplicationImpersonation -User {}",
                ps_quote(&name),
                ps_quote(&account)
            ),
            cmdlet: None,
        });
    } else {
        let scope = format!("{}-mailboxes", needs.name);
        let filter = needs
            .mailboxes
            .iter()
            .map(|m| {
                format!(
                    "PrimarySmtpAddress -eq '{}'",
                    m.as_str().replace('\'', "''")
                )
            })
            .collect::<Vec<_>>()
            .join(" -or ");
        steps.push(PowerShellStep {
            shell: Shell::ExchangeServer,
            why: "the mailboxes the service account may impersonate".into(),
            command: format!(
                "New-ManagementScope -Name {} -RecipientRestrictionFilter {}",
                ps_quote(&scope),
                ps_quote(&filter)
            ),
            cmdlet: None,
        });
        steps.push(PowerShellStep {
            shell: Shell::ExchangeServer,
            why: "let the service account impersonate those mailboxes over EWS".into(),
            command: format!(
                "New-ManagementRoleAssignment -Name {} -Role ApplicationImpersonation -User {} -CustomRecipientWriteScope {}",
                ps_quote(&name),
                ps_quote(&account),
                ps_quote(&scope)
            ),
            cmdlet: None,
        });
    }
    notes.push(
        "no app registration: exgate signs in to Exchange Server with the service account \
         (ntlm, or basic over TLS); create the connection with its password"
            .into(),
    );
}

/// The backend a delegated connection reads with, by preference.
fn reading_backend(protocols: &BTreeSet<Resource>, prefer_mail: bool) -> Backend {
    let order: &[(Resource, Backend)] = if prefer_mail {
        &[
            (Resource::Imap, Backend::Imap),
            (Resource::Pop, Backend::Pop),
            (Resource::Graph, Backend::Graph),
            (Resource::Ews, Backend::Ews),
        ]
    } else {
        &[
            (Resource::Graph, Backend::Graph),
            (Resource::Ews, Backend::Ews),
            (Resource::Imap, Backend::Imap),
            (Resource::Pop, Backend::Pop),
        ]
    };
    order
        .iter()
        .find(|(r, _)| protocols.contains(r))
        .map_or(Backend::Auto, |(_, b)| *b)
}

fn send_for(backend: Backend, protocols: &BTreeSet<Resource>) -> SendVia {
    if protocols.contains(&Resource::Smtp) && !backend.is_mail_protocol() {
        SendVia::Smtp
    } else {
        SendVia::Auto
    }
}

fn plan_connections(needs: &Needs) -> Vec<PlannedConnection> {
    let mut out = Vec::new();
    let name = &needs.name;
    if needs.place == Place::Server {
        if needs.app_only() {
            out.push(PlannedConnection {
                name: format!("{name}-ews"),
                auth: AuthKind::Ntlm,
                backend: Backend::Ews,
                send: SendVia::Auto,
                flow: None,
                redirect_uri: None,
                confidential: true,
                test_mailbox: needs.mailboxes.first().map(ToString::to_string),
            });
        }
        return out;
    }
    if needs.actors.contains(&Actor::Portal) {
        let backend = reading_backend(&needs.protocols, false);
        out.push(PlannedConnection {
            name: format!("{name}-portal"),
            auth: AuthKind::OAuth2Delegated,
            backend,
            send: send_for(backend, &needs.protocols),
            flow: Some(DelegatedFlow::AuthorizationCode),
            redirect_uri: needs.public_url.as_ref().map(|u| {
                format!(
                    "{}/service/oauth2/authorize",
                    u.as_url().as_str().trim_end_matches('/')
                )
            }),
            confidential: true,
            test_mailbox: None,
        });
    }
    if needs.actors.contains(&Actor::Cli) || needs.actors.contains(&Actor::MailClient) {
        let prefer_mail =
            needs.actors.contains(&Actor::MailClient) && !needs.actors.contains(&Actor::Cli);
        let backend = reading_backend(&needs.protocols, prefer_mail);
        out.push(PlannedConnection {
            name: format!("{name}-user"),
            auth: AuthKind::OAuth2Delegated,
            backend,
            send: send_for(backend, &needs.protocols),
            flow: Some(DelegatedFlow::AuthorizationCode),
            redirect_uri: None,
            confidential: false,
            test_mailbox: None,
        });
    }
    if needs.app_only() {
        let test_mailbox = needs.mailboxes.first().map(ToString::to_string);
        let reading: Vec<(Resource, Backend)> = [
            (Resource::Graph, Backend::Graph),
            (Resource::Ews, Backend::Ews),
            (Resource::Imap, Backend::Imap),
            (Resource::Pop, Backend::Pop),
        ]
        .into_iter()
        .filter(|(r, _)| needs.protocols.contains(r))
        .collect();
        if reading.is_empty() {
            // SMTP alone: a connection that sends over SMTP (reading needs another protocol).
            out.push(PlannedConnection {
                name: format!("{name}-app-smtp"),
                auth: AuthKind::OAuth2AppOnly,
                backend: Backend::Auto,
                send: SendVia::Smtp,
                flow: None,
                redirect_uri: None,
                confidential: true,
                test_mailbox: test_mailbox.clone(),
            });
        }
        for (resource, backend) in reading {
            out.push(PlannedConnection {
                name: format!("{name}-app-{}", resource.as_str()),
                auth: AuthKind::OAuth2AppOnly,
                backend,
                send: send_for(backend, &needs.protocols),
                flow: None,
                redirect_uri: None,
                confidential: true,
                test_mailbox: test_mailbox.clone(),
            });
        }
    }
    out
}

impl fmt::Display for Requirements {
    /// The plan as a person reads it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut step = 0;
        let mut next = || {
            step += 1;
            step
        };
        if let Some(app) = &self.app {
            writeln!(
                f,
                "{}. Register an app in Microsoft Entra ID (App registrations > New registration):",
                next()
            )?;
            writeln!(f, "   name: {}", app.display_name)?;
            writeln!(
                f,
                "   supported account types: accounts in this organizational directory only ({})",
                app.sign_in_audience
            )?;
            if !app.web_redirect_uris.is_empty() || !app.public_client_redirect_uris.is_empty() {
                writeln!(f, "{}. Redirect URIs (Authentication):", next())?;
                for uri in &app.web_redirect_uris {
                    writeln!(f, "   Web: {uri}")?;
                }
                for uri in &app.public_client_redirect_uris {
                    writeln!(f, "   Mobile and desktop applications: {uri}")?;
                }
            }
            writeln!(
                f,
                "{}. Allow public client flows (Authentication > Advanced settings): {}",
                next(),
                if app.allow_public_client_flows {
                    "Yes"
                } else {
                    "No"
                }
            )?;
            writeln!(f, "{}. API permissions (Add a permission):", next())?;
            for p in &app.permissions {
                if !p.delegated.is_empty() {
                    writeln!(
                        f,
                        "   {} ({}), delegated: {}",
                        p.display_name,
                        p.app_id,
                        p.delegated.join(", ")
                    )?;
                }
                if !p.application.is_empty() {
                    writeln!(
                        f,
                        "   {} ({}), application: {}",
                        p.display_name,
                        p.app_id,
                        p.application.join(", ")
                    )?;
                }
            }
            writeln!(
                f,
                "{}. Grant admin consent (API permissions > Grant admin consent), or open:",
                next()
            )?;
            writeln!(f, "   {}", app.admin_consent_url)?;
            if let Some(v2) = &app.admin_consent_url_v2 {
                writeln!(f, "   {v2}")?;
            }
            if let Some(c) = &app.credential {
                writeln!(
                    f,
                    "{}. Credential (Certificates & secrets): {}",
                    next(),
                    c.advice
                )?;
            }
        }
        if !self.powershell.is_empty() {
            let shell = match self.powershell[0].shell {
                Shell::ExchangeOnline => "Exchange Online PowerShell (Connect-ExchangeOnline)",
                Shell::ExchangeServer => "the Exchange Management Shell",
            };
            writeln!(f, "{}. In {shell}:", next())?;
            for s in &self.powershell {
                writeln!(f, "   # {}", s.why)?;
                writeln!(f, "   {}", s.command)?;
            }
        }
        if !self.connections.is_empty() {
            writeln!(f, "{}. exgate connections:", next())?;
            for c in &self.connections {
                write!(f, "   {}: {}, backend {}", c.name, c.auth, c.backend)?;
                if c.send != SendVia::Auto {
                    write!(f, ", send {}", c.send)?;
                }
                if let Some(r) = &c.redirect_uri {
                    write!(f, ", redirect URI {r}")?;
                }
                writeln!(f)?;
            }
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
