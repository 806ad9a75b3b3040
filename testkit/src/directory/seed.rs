//! What the mock directory is made from: tenants, users, shared mailboxes, app registrations and
//! their permissions, mailbox rights and Exchange settings — and, per tenant, the mailboxes'
//! content at start (held by the mail store, not by the directory).
//!
//! [`Seed::contoso`] is the default; the `exgate-mock` binary also reads a [`Seed`] as JSON
//! (`--seed FILE`). The constants below are the default seed's values, for tests to use.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::mailstore::MailboxContent;
use time::OffsetDateTime;

/// The seeded tenant's ID.
pub const TENANT_ID: &str = "6f0f3c52-7f3e-4c2b-9d7e-0b1d4c3a5e21";
/// The seeded tenant's initial domain.
pub const TENANT_DOMAIN: &str = "contoso.onmicrosoft.com";

/// Adele Vance's sign-in name.
pub const ADELE: &str = "adele@contoso.onmicrosoft.com";
pub const ADELE_PASSWORD: &str = "Adele-Passw0rd!";
pub const ADELE_OID: &str = "a1b2c3d4-0000-4000-8000-000000000001";
pub const ADELE_NAME: &str = "Adele Vance";

/// Megan Bowen's sign-in name.
pub const MEGAN: &str = "megan@contoso.onmicrosoft.com";
pub const MEGAN_PASSWORD: &str = "Megan-Passw0rd!";
pub const MEGAN_OID: &str = "a1b2c3d4-0000-4000-8000-000000000002";
pub const MEGAN_NAME: &str = "Megan Bowen";

/// The shared mailbox "Sales": no password (nobody signs in as it); [`ADELE`] has FullAccess
/// and SendAs on it, [`MEGAN`] has no rights.
pub const SALES: &str = "sales@contoso.onmicrosoft.com";
pub const SALES_NAME: &str = "Sales";
pub const SALES_OID: &str = "a1b2c3d4-0000-4000-8000-000000000101";

/// "MOD Administrator": a Global Administrator (directory role), with a mailbox; what
/// `exgate app register` signs in as to register apps through Graph and Exchange's admin API.
pub const ADMIN: &str = "admin@contoso.onmicrosoft.com";
pub const ADMIN_PASSWORD: &str = "Admin-Passw0rd!";
pub const ADMIN_OID: &str = "a1b2c3d4-0000-4000-8000-000000000003";
pub const ADMIN_NAME: &str = "MOD Administrator";

/// Microsoft Graph Command Line Tools (`Connect-MgGraph`'s client): a first-party public
/// client seeded in every tenant, device code allowed, with tenant-wide consent for the
/// directory scopes an admin needs to register apps ([`GRAPH_CLI_SCOPES`]).
pub const GRAPH_CLI_APP: &str = "14d82eec-204b-4c2f-b7e8-296a70dab67e";
pub const GRAPH_CLI_APP_NAME: &str = "Microsoft Graph Command Line Tools";
/// The Graph scopes consented for [`GRAPH_CLI_APP`].
pub const GRAPH_CLI_SCOPES: &[&str] = &[
    "User.Read",
    "Application.Read.All",
    "Application.ReadWrite.All",
    "AppRoleAssignment.ReadWrite.All",
    "DelegatedPermissionGrant.ReadWrite.All",
    "Directory.Read.All",
];
/// Exchange Online PowerShell's client ("Microsoft Exchange REST API Based Powershell",
/// `Connect-ExchangeOnline`): a first-party public client seeded in every tenant, with
/// delegated `Exchange.Manage` and `Exchange.ManageV2` on Office 365 Exchange Online.
pub const EXO_POWERSHELL_APP: &str = "fb78d390-0c51-40cd-8e17-fdbfab77341b";
pub const EXO_POWERSHELL_APP_NAME: &str = "Microsoft Exchange REST API Based Powershell";
/// The Exchange Online scopes consented for [`EXO_POWERSHELL_APP`].
pub const EXO_POWERSHELL_SCOPES: &[&str] = &["Exchange.Manage", "Exchange.ManageV2"];

/// Directory roles a seeded user may hold (`directory_roles`), by their Entra display names.
pub const DIRECTORY_ROLES: &[&str] = &[
    "Global Administrator",
    "Privileged Role Administrator",
    "Application Administrator",
    "Cloud Application Administrator",
    "Exchange Administrator",
    "Global Reader",
];

/// "exgate CLI": a public client with public client flows enabled, no credentials,
/// redirect URI `http://localhost` (any port).
pub const PUBLIC_APP: &str = "0a1b2c3d-1111-4111-8111-111111111111";
pub const PUBLIC_APP_NAME: &str = "exgate CLI";

/// "exgate gateway": a confidential web app with one client secret.
pub const WEB_APP: &str = "0a1b2c3d-2222-4222-8222-222222222222";
pub const WEB_APP_NAME: &str = "exgate gateway";
pub const WEB_APP_SECRET_ID: &str = "5e6f7a8b-2222-4222-8222-aaaaaaaaaaaa";
pub const WEB_APP_SECRET: &str = "web~SecretValue.2222222222222222222222";

/// "exgate daemon": a confidential app with a secret and the fixture certificate
/// ([`crate::fixtures::APP_CERT_PEM`]), holding application permissions.
pub const DAEMON_APP: &str = "0a1b2c3d-3333-4333-8333-333333333333";
pub const DAEMON_APP_NAME: &str = "exgate daemon";
pub const DAEMON_APP_SECRET_ID: &str = "5e6f7a8b-3333-4333-8333-aaaaaaaaaaaa";
pub const DAEMON_APP_SECRET: &str = "daemon~SecretValue.3333333333333333333333";
/// The daemon app's service principal (enterprise application) object ID: the `oid` of its
/// app-only tokens, and the `-ObjectId` it is registered with in Exchange Online.
pub const DAEMON_APP_SP_OID: &str = "5c4d3e2f-3333-4333-8333-5e5e5e5e5e5e";

/// Microsoft Graph's resource URI.
pub const GRAPH: &str = "https://graph.microsoft.com";
/// Exchange Online's resource URI (EWS, IMAP, POP, SMTP).
pub const OUTLOOK: &str = "https://outlook.office365.com";

/// Delegated Graph permissions consented for [`PUBLIC_APP`] and [`WEB_APP`].
pub const GRAPH_DELEGATED: &[&str] = &[
    "Mail.ReadWrite",
    "Mail.ReadWrite.Shared",
    "Mail.Send",
    "Mail.Send.Shared",
    "Calendars.ReadWrite",
    "Calendars.ReadWrite.Shared",
    "Contacts.ReadWrite",
    "Contacts.ReadWrite.Shared",
    "User.Read",
];
/// Delegated Exchange Online permissions consented for [`PUBLIC_APP`] and [`WEB_APP`].
pub const OUTLOOK_DELEGATED: &[&str] = &[
    "EWS.AccessAsUser.All",
    "IMAP.AccessAsUser.All",
    "POP.AccessAsUser.All",
    "SMTP.Send",
];
/// Application permissions (app roles) on Graph granted to [`DAEMON_APP`].
pub const GRAPH_APPLICATION: &[&str] = &[
    "Mail.ReadWrite",
    "Mail.Send",
    "Calendars.ReadWrite",
    "Contacts.ReadWrite",
    "User.Read.All",
];
/// Application permissions (app roles) on Exchange Online granted to [`DAEMON_APP`].
pub const OUTLOOK_APPLICATION: &[&str] = &[
    "full_access_as_app",
    "IMAP.AccessAsApp",
    "POP.AccessAsApp",
    "SMTP.SendAsApp",
];

/// The whole directory: one or more tenants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    pub tenants: Vec<TenantSeed>,
}

/// A tenant (directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSeed {
    /// The tenant ID, a GUID.
    pub id: String,
    /// The tenant's domain (e.g. `contoso.onmicrosoft.com`); also accepted in URLs.
    pub domain: String,
    #[serde(default)]
    pub users: Vec<UserSeed>,
    #[serde(default)]
    pub apps: Vec<AppSeed>,
    /// Shared mailboxes: they have a mailbox and a directory entry but nobody signs in as them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_mailboxes: Vec<SharedMailboxSeed>,
    /// Exchange mailbox permissions (`Add-MailboxPermission` / `Add-RecipientPermission`):
    /// which user may open or send as which mailbox.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mailbox_permissions: Vec<MailboxPermissionSeed>,
    /// Service principals registered in Exchange Online (`New-ServicePrincipal`) with their
    /// mailbox rights: what app-only IMAP, POP and SMTP need besides the app role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exchange_service_principals: Vec<ExchangeServicePrincipalSeed>,
    /// Organization-wide settings of Exchange Online and Entra that gate SMTP AUTH.
    #[serde(default, skip_serializing_if = "OrganizationSettings::is_default")]
    pub organization: OrganizationSettings,
    /// What the mailboxes hold at start (every user and shared mailbox has a mailbox; those
    /// not listed start empty, with the well-known folders).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mailboxes: Vec<MailboxContent>,
}

/// A shared mailbox (a disabled user account with a mailbox).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedMailboxSeed {
    /// The primary SMTP address, also its user principal name.
    pub address: String,
    pub display_name: String,
    /// The mailbox user's object ID, a GUID.
    pub object_id: String,
    /// Which protocols may reach the mailbox (all, unless switched off).
    #[serde(default, skip_serializing_if = "ExchangeSettings::is_default")]
    pub exchange: ExchangeSettings,
}

/// An app's service principal as registered in Exchange Online:
/// `New-ServicePrincipal -AppId <app_id> -ObjectId <object_id>`, then
/// `Add-MailboxPermission -Identity <mailbox> -User <object_id> -AccessRights FullAccess` for
/// each of `full_access`. Exchange matches the app-only token's `oid` against `object_id`: the
/// enterprise application's (service principal's) object ID, not the app registration's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeServicePrincipalSeed {
    /// The app's client ID (`-AppId`).
    pub app_id: String,
    /// `-ObjectId`: the service principal's object ID (an app-only token's `oid`).
    pub object_id: String,
    /// Registered now; `false` keeps the rights but Exchange no longer knows the principal
    /// (what `Remove-ServicePrincipal` does, as a switch).
    #[serde(default = "enabled")]
    pub registered: bool,
    /// Mailboxes (addresses) on which the service principal has FullAccess.
    #[serde(default)]
    pub full_access: Vec<String>,
}

/// Organization-wide settings that gate SMTP AUTH (defaults: SMTP AUTH allowed, security
/// defaults off, so demos work; a new Microsoft 365 tenant has security defaults on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationSettings {
    /// `Set-TransportConfig -SmtpClientAuthenticationDisabled $false`: SMTP AUTH allowed for
    /// the organization (when not, `535 5.7.139 … disabled for the Tenant.`).
    #[serde(default = "enabled")]
    pub smtp_client_auth_enabled: bool,
    /// Entra ID security defaults: SMTP AUTH is blocked (`535 5.7.139 … security defaults
    /// policy.`).
    #[serde(default)]
    pub security_defaults: bool,
}

impl Default for OrganizationSettings {
    fn default() -> Self {
        Self {
            smtp_client_auth_enabled: true,
            security_defaults: false,
        }
    }
}

impl OrganizationSettings {
    /// SMTP AUTH allowed and security defaults off.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Rights of one user on one mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxPermissionSeed {
    /// The mailbox (a user's UPN or a shared mailbox's address).
    pub mailbox: String,
    /// The user who holds the rights (UPN).
    pub user: String,
    pub rights: Vec<MailboxRight>,
}

/// An Exchange mailbox right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MailboxRight {
    /// Open the mailbox and read or change its content.
    FullAccess,
    /// Send mail that appears to come from the mailbox.
    SendAs,
    /// Exchange's ApplicationImpersonation management role, scoped to this mailbox: the user
    /// (a service account) may act as the mailbox's owner over EWS (`ExchangeImpersonation`).
    ApplicationImpersonation,
}

/// A user who can sign in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSeed {
    /// The user principal name, e.g. `adele@contoso.onmicrosoft.com`.
    pub upn: String,
    pub password: String,
    /// The user's object ID (`oid` claim), a GUID.
    pub object_id: String,
    pub display_name: String,
    /// Conditional Access demands MFA: password and refresh-token grants fail with AADSTS50076.
    #[serde(default)]
    pub mfa_required: bool,
    /// Which protocols may reach the user's mailbox (all, unless switched off).
    #[serde(default, skip_serializing_if = "ExchangeSettings::is_default")]
    pub exchange: ExchangeSettings,
    /// Entra directory roles (display names from [`DIRECTORY_ROLES`], e.g.
    /// `"Global Administrator"`): what the mock Graph's directory endpoints and Exchange's admin
    /// API check besides the token's scopes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directory_roles: Vec<String>,
}

/// A mailbox's Exchange settings (`Set-CASMailbox`): which client protocols may reach it. Every
/// one is enabled unless the seed or a switch turns it off. The Graph mock does not read them
/// (Graph has no such switch); they are here for the EWS, IMAP, POP and SMTP mocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeSettings {
    /// `-EwsEnabled`: EWS requests for the mailbox are accepted.
    #[serde(default = "enabled")]
    pub ews_enabled: bool,
    /// `-ImapEnabled`.
    #[serde(default = "enabled")]
    pub imap_enabled: bool,
    /// `-PopEnabled`.
    #[serde(default = "enabled")]
    pub pop_enabled: bool,
    /// `-SmtpClientAuthenticationDisabled $false`: SMTP AUTH submission is allowed (when not,
    /// Exchange answers `535 5.7.139`).
    #[serde(default = "enabled")]
    pub smtp_client_auth_enabled: bool,
}

fn enabled() -> bool {
    true
}

impl Default for ExchangeSettings {
    fn default() -> Self {
        Self {
            ews_enabled: true,
            imap_enabled: true,
            pop_enabled: true,
            smtp_client_auth_enabled: true,
        }
    }
}

impl ExchangeSettings {
    /// Every protocol enabled (what a new mailbox has).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// An app registration (and its service principal in the same tenant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSeed {
    /// The application (client) ID, a GUID.
    pub client_id: String,
    pub name: String,
    /// A public client (desktop/mobile platform): it must not present credentials.
    #[serde(default)]
    pub public_client: bool,
    /// "Allow public client flows": device code and password grants without a credential.
    #[serde(default)]
    pub public_client_flows: bool,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub secrets: Vec<SecretSeed>,
    /// Certificates (PEM) whose keys may sign client assertions.
    #[serde(default)]
    pub certificates: Vec<String>,
    /// Consented delegated permissions, by resource URI (e.g. `https://graph.microsoft.com`).
    #[serde(default)]
    pub delegated_permissions: BTreeMap<String, Vec<String>>,
    /// Granted application permissions (app roles), by resource URI.
    #[serde(default)]
    pub application_permissions: BTreeMap<String, Vec<String>>,
    /// The service principal's object ID (the `oid` of app-only tokens). Derived from the
    /// client ID when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_principal_id: Option<String>,
    /// An application access policy (RBAC for Applications): app-only Graph requests may only
    /// reach these mailboxes. `None`: every mailbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox_scope: Option<Vec<String>>,
}

/// A client secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSeed {
    /// The secret's ID (what the portal shows as "Secret ID"; not usable as a secret).
    pub id: String,
    /// The secret's value.
    pub value: String,
    /// When the secret expires (RFC 3339, e.g. `2099-01-01T00:00:00Z`).
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
}

/// A seed that cannot be used, with what is wrong and where.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SeedError {
    #[error("the seed is not valid JSON for a seed: {0}")]
    Json(String),
    #[error("the seed has no tenants; add at least one under \"tenants\"")]
    NoTenants,
    #[error("tenant #{index}: id `{id}` is not a GUID")]
    TenantId { index: usize, id: String },
    #[error("tenant `{0}` appears twice (ids and domains must be unique)")]
    DuplicateTenant(String),
    #[error("tenant `{tenant}`: domain `{domain}` is not a domain name")]
    Domain { tenant: String, domain: String },
    #[error("tenant `{tenant}`: user `{upn}` {problem}")]
    User {
        tenant: String,
        upn: String,
        problem: String,
    },
    #[error("tenant `{tenant}`: app `{client_id}` {problem}")]
    App {
        tenant: String,
        client_id: String,
        problem: String,
    },
    #[error("tenant `{tenant}`: exchange_service_principals {problem}")]
    ExchangeServicePrincipal { tenant: String, problem: String },
    #[error("tenant `{tenant}`: mailbox `{mailbox}` {problem}")]
    Mailbox {
        tenant: String,
        mailbox: String,
        problem: String,
    },
}

impl Seed {
    /// Reads a seed from JSON and checks it (see [`Seed::validate`]).
    pub fn from_json(json: &str) -> Result<Self, SeedError> {
        let seed: Seed = serde_json::from_str(json).map_err(|e| SeedError::Json(e.to_string()))?;
        seed.validate()?;
        Ok(seed)
    }

    /// Checks what the mock relies on: GUID IDs, unique tenants, apps and users, parseable
    /// redirect URIs and certificates.
    pub fn validate(&self) -> Result<(), SeedError> {
        if self.tenants.is_empty() {
            return Err(SeedError::NoTenants);
        }
        let mut names = HashSet::new();
        let mut client_ids = HashSet::new();
        for (index, tenant) in self.tenants.iter().enumerate() {
            if uuid::Uuid::parse_str(&tenant.id).is_err() {
                return Err(SeedError::TenantId {
                    index,
                    id: tenant.id.clone(),
                });
            }
            if tenant.domain.is_empty()
                || !tenant.domain.contains('.')
                || tenant.domain.contains(['/', ' ', '@'])
            {
                return Err(SeedError::Domain {
                    tenant: tenant.id.clone(),
                    domain: tenant.domain.clone(),
                });
            }
            for name in [&tenant.id, &tenant.domain] {
                if !names.insert(name.to_ascii_lowercase()) {
                    return Err(SeedError::DuplicateTenant(name.clone()));
                }
            }
            validate_users(tenant)?;
            for app in &tenant.apps {
                validate_app(tenant, app, &mut client_ids)?;
            }
            validate_mailboxes(tenant)?;
        }
        Ok(())
    }
}

fn validate_users(tenant: &TenantSeed) -> Result<(), SeedError> {
    let mut upns = HashSet::new();
    for user in &tenant.users {
        let problem = if !user.upn.contains('@') {
            Some("is not a user principal name (name@domain)".to_string())
        } else if !upns.insert(user.upn.to_ascii_lowercase()) {
            Some("appears twice".to_string())
        } else if uuid::Uuid::parse_str(&user.object_id).is_err() {
            Some(format!(
                "has an object_id `{}` that is not a GUID",
                user.object_id
            ))
        } else {
            user.directory_roles
                .iter()
                .find(|r| !DIRECTORY_ROLES.iter().any(|k| k.eq_ignore_ascii_case(r)))
                .map(|role| {
                    format!(
                        "has the directory role `{role}`, which the mock does not know (known: {})",
                        DIRECTORY_ROLES.join(", ")
                    )
                })
        };
        if let Some(problem) = problem {
            return Err(SeedError::User {
                tenant: tenant.id.clone(),
                upn: user.upn.clone(),
                problem,
            });
        }
    }
    Ok(())
}

/// Shared mailboxes, mailbox permissions and mailbox content must name mailboxes that exist.
fn validate_mailboxes(tenant: &TenantSeed) -> Result<(), SeedError> {
    let fail = |mailbox: &str, problem: String| SeedError::Mailbox {
        tenant: tenant.id.clone(),
        mailbox: mailbox.to_string(),
        problem,
    };
    let mut addresses: HashSet<String> = tenant
        .users
        .iter()
        .map(|u| u.upn.to_ascii_lowercase())
        .collect();
    for shared in &tenant.shared_mailboxes {
        if !shared.address.contains('@') {
            return Err(fail(&shared.address, "is not an SMTP address".into()));
        }
        if !addresses.insert(shared.address.to_ascii_lowercase()) {
            return Err(fail(
                &shared.address,
                "appears twice (users and shared mailboxes must have distinct addresses)".into(),
            ));
        }
        if uuid::Uuid::parse_str(&shared.object_id).is_err() {
            return Err(fail(
                &shared.address,
                format!("has an object_id `{}` that is not a GUID", shared.object_id),
            ));
        }
    }
    for permission in &tenant.mailbox_permissions {
        if !addresses.contains(&permission.mailbox.to_ascii_lowercase()) {
            return Err(fail(
                &permission.mailbox,
                "has permissions but is neither a user nor a shared mailbox".into(),
            ));
        }
        if !tenant
            .users
            .iter()
            .any(|u| u.upn.eq_ignore_ascii_case(&permission.user))
        {
            return Err(fail(
                &permission.mailbox,
                format!("grants rights to `{}`, who is not a user", permission.user),
            ));
        }
    }
    for app in &tenant.apps {
        for address in app.mailbox_scope.iter().flatten() {
            if !address.contains('@') {
                return Err(SeedError::App {
                    tenant: tenant.id.clone(),
                    client_id: app.client_id.clone(),
                    problem: format!(
                        "has a mailbox_scope entry `{address}` that is not an address"
                    ),
                });
            }
        }
    }
    for sp in &tenant.exchange_service_principals {
        let problem = if !tenant
            .apps
            .iter()
            .any(|a| a.client_id.eq_ignore_ascii_case(&sp.app_id))
        {
            Some(format!(
                "registers service principal `{}` for app `{}`, which is not an app of the tenant",
                sp.object_id, sp.app_id
            ))
        } else if uuid::Uuid::parse_str(&sp.object_id).is_err() {
            Some(format!(
                "registers service principal `{}`, which is not a GUID",
                sp.object_id
            ))
        } else {
            sp.full_access
                .iter()
                .find(|m| !addresses.contains(&m.to_ascii_lowercase()))
                .map(|m| {
                    format!(
                        "gives service principal `{}` FullAccess on `{m}`, which is neither a user nor a shared mailbox",
                        sp.object_id
                    )
                })
        };
        if let Some(problem) = problem {
            return Err(SeedError::ExchangeServicePrincipal {
                tenant: tenant.id.clone(),
                problem,
            });
        }
    }
    let mut seen = HashSet::new();
    for content in &tenant.mailboxes {
        if !addresses.contains(&content.mailbox.to_ascii_lowercase()) {
            return Err(fail(
                &content.mailbox,
                "has content but is neither a user nor a shared mailbox".into(),
            ));
        }
        if !seen.insert(content.mailbox.to_ascii_lowercase()) {
            return Err(fail(&content.mailbox, "has content twice".into()));
        }
        content
            .validate()
            .map_err(|e| fail(&content.mailbox, e.to_string()))?;
    }
    Ok(())
}

fn validate_app(
    tenant: &TenantSeed,
    app: &AppSeed,
    client_ids: &mut HashSet<String>,
) -> Result<(), SeedError> {
    let fail = |problem: String| SeedError::App {
        tenant: tenant.id.clone(),
        client_id: app.client_id.clone(),
        problem,
    };
    if uuid::Uuid::parse_str(&app.client_id).is_err() {
        return Err(fail("has a client_id that is not a GUID".into()));
    }
    if !client_ids.insert(app.client_id.to_ascii_lowercase()) {
        return Err(fail("appears twice".into()));
    }
    if let Some(sp) = &app.service_principal_id
        && uuid::Uuid::parse_str(sp).is_err()
    {
        return Err(fail(format!(
            "has a service_principal_id `{sp}` that is not a GUID"
        )));
    }
    for uri in &app.redirect_uris {
        if url::Url::parse(uri).is_err() {
            return Err(fail(format!(
                "has a redirect URI `{uri}` that is not an absolute URL"
            )));
        }
    }
    for (i, pem) in app.certificates.iter().enumerate() {
        if let Err(e) = super::cert::AppCert::from_pem(pem) {
            return Err(fail(format!("certificate #{i} is unusable: {e}")));
        }
    }
    for (kind, map) in [
        ("delegated_permissions", &app.delegated_permissions),
        ("application_permissions", &app.application_permissions),
    ] {
        for resource in map.keys() {
            if url::Url::parse(resource).is_err() {
                return Err(fail(format!(
                    "{kind} names resource `{resource}`, which is not an absolute URI"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_seed_is_valid_and_round_trips_through_json() {
        let seed = Seed::contoso();
        seed.validate().unwrap();
        let json = serde_json::to_string(&seed).unwrap();
        assert!(
            json.contains("\"expires\":\"2099-01-01T00:00:00Z\""),
            "{json}"
        );
        assert_eq!(Seed::from_json(&json).unwrap(), seed);
    }

    #[test]
    fn bad_seeds_are_refused_with_the_place_named() {
        assert_eq!(
            Seed::from_json(r#"{"tenants":[]}"#),
            Err(SeedError::NoTenants)
        );
        let err = Seed::from_json(r#"{"tenants":[{"id":"x","domain":"a.b"}]}"#).unwrap_err();
        assert_eq!(err.to_string(), "tenant #0: id `x` is not a GUID");
        let err = Seed::from_json(r#"{"tenantz":[]}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `tenantz`"), "{err}");
        let mut seed = Seed::contoso();
        seed.tenants[0].apps[1]
            .redirect_uris
            .push("not a url".into());
        let err = seed.validate().unwrap_err();
        assert!(err.to_string().contains("`not a url`"), "{err}");
    }
}
