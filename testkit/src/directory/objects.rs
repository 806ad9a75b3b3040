//! The directory's objects as Microsoft Graph and Exchange's admin API see them: application
//! objects (registrations) with their credential metadata, service principals, OAuth2
//! permission grants (delegated consent), app role assignments (application consent), and
//! Exchange's RBAC for Applications (management scopes and role assignments).
//!
//! The app registrations themselves stay [`AppSeed`]s, which the Entra mock reads: every change
//! made here is written through to the app's seed (secrets, certificates, redirect URIs,
//! "Allow public client flows", consented permissions, application access policy), so a
//! registered app works at the token endpoint at once, exactly like a seeded one.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use time::macros::datetime;

use super::resources::{self, RESOURCES, derived_id};
use super::seed::{AppSeed, GRAPH_CLI_APP, TenantSeed};
use super::{DirectoryData, service_principal_id};

/// When the seeded objects were created.
pub(crate) const SEEDED_AT: OffsetDateTime = datetime!(2026-11-01 00:00:00 UTC);

/// A client secret's metadata (the value lives in the app's [`AppSeed::secrets`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PasswordMeta {
    pub key_id: String,
    pub display_name: Option<String>,
    /// The first three characters of the value.
    pub hint: String,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
}

/// A certificate's metadata (its PEM lives in the app's [`AppSeed::certificates`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyMeta {
    pub key_id: String,
    pub display_name: Option<String>,
    /// SHA-1 thumbprint, upper-case hex (`customKeyIdentifier`).
    pub thumbprint: String,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    /// The PEM, as it stands in the app's seed.
    pub pem: String,
}

/// An application object (an app registration).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AppObject {
    pub id: String,
    pub app_id: String,
    pub created: OffsetDateTime,
    pub sign_in_audience: String,
    pub web_redirects: Vec<String>,
    pub public_redirects: Vec<String>,
    pub spa_redirects: Vec<String>,
    /// `isFallbackPublicClient` as set (`None`: never set).
    pub fallback_public_client: Option<bool>,
    /// `requiredResourceAccess`, as written.
    pub required_resource_access: serde_json::Value,
    pub passwords: Vec<PasswordMeta>,
    pub keys: Vec<KeyMeta>,
    /// Object IDs of the users who own it (its creator).
    pub owners: Vec<String>,
    pub notes: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
}

/// A service principal of a client app (first-party or registered in the tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpObject {
    pub id: String,
    pub app_id: String,
    pub created: OffsetDateTime,
}

/// An OAuth2 permission grant (delegated consent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    pub id: String,
    /// The client's service principal.
    pub client_id: String,
    /// `AllPrincipals` (`None`) or `Principal` (this user's object ID).
    pub principal_id: Option<String>,
    /// The resource's service principal.
    pub resource_id: String,
    /// Space-separated scope values.
    pub scope: String,
}

/// An app role assignment (application consent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assignment {
    pub id: String,
    /// The client's service principal.
    pub principal_id: String,
    pub resource_id: String,
    pub app_role_id: String,
    /// The role's value (`Mail.Read`).
    pub value: String,
    pub created: OffsetDateTime,
}

/// `New-ManagementScope`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ManagementScope {
    pub id: String,
    pub name: String,
    pub filter: String,
}

/// `New-ManagementRoleAssignment -App … -Role … [-CustomResourceScope …]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoleAssignment {
    pub id: String,
    pub name: String,
    /// The app's service principal object ID in Exchange.
    pub app: String,
    pub role: String,
    pub scope: Option<String>,
}

/// One tenant's objects.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct TenantObjects {
    pub apps: Vec<AppObject>,
    pub sps: Vec<SpObject>,
    pub grants: Vec<Grant>,
    pub assignments: Vec<Assignment>,
    pub management_scopes: Vec<ManagementScope>,
    pub role_assignments: Vec<RoleAssignment>,
    /// Display names given to Exchange service principals (`New-ServicePrincipal
    /// -DisplayName`), by object ID.
    pub exchange_names: Vec<(String, String)>,
}

/// The first-party clients seeded in every tenant (service principals without an application
/// object in the tenant).
pub(crate) fn is_first_party(app_id: &str) -> bool {
    [GRAPH_CLI_APP, super::seed::EXO_POWERSHELL_APP]
        .iter()
        .any(|id| id.eq_ignore_ascii_case(app_id))
}

/// The object ID of a first-party resource's service principal in a tenant.
pub(crate) fn resource_sp_id(tenant_id: &str, resource_app_id: &str) -> String {
    derived_id(&format!(
        "resource-sp:{}:{}",
        tenant_id.to_ascii_lowercase(),
        resource_app_id.to_ascii_lowercase()
    ))
}

/// An opaque ID like Graph gives grants and assignments (43 characters, base64url).
pub(crate) fn opaque_id(seed: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(seed.as_bytes()))
}

impl TenantObjects {
    /// The objects a seeded tenant starts with: an application object for each app that is not
    /// first-party, a service principal for each app, and its seeded consent as grants and
    /// assignments.
    pub(crate) fn from_seed(tenant: &TenantSeed) -> TenantObjects {
        let mut objects = TenantObjects::default();
        for app in &tenant.apps {
            let sp = service_principal_id(app);
            if !is_first_party(&app.client_id) {
                objects.apps.push(AppObject::from_seed(app));
            }
            objects.sps.push(SpObject {
                id: sp.clone(),
                app_id: app.client_id.clone(),
                created: SEEDED_AT,
            });
            for (uri, scopes) in &app.delegated_permissions {
                let Some(resource) = resources::resource(uri) else {
                    continue;
                };
                if scopes.is_empty() {
                    continue;
                }
                let resource_id = resource_sp_id(&tenant.id, resource.app_id);
                objects.grants.push(Grant {
                    id: opaque_id(&format!("grant:{sp}:{resource_id}")),
                    client_id: sp.clone(),
                    principal_id: None,
                    resource_id,
                    scope: scopes.join(" "),
                });
            }
            for (uri, roles) in &app.application_permissions {
                let Some(resource) = resources::resource(uri) else {
                    continue;
                };
                let resource_id = resource_sp_id(&tenant.id, resource.app_id);
                for value in roles {
                    let role_id = resource.role_by_value(value).map_or_else(
                        || derived_id(&format!("app-role:{}:{value}", resource.app_id)),
                        |r| r.id.to_string(),
                    );
                    objects.assignments.push(Assignment {
                        id: opaque_id(&format!("assignment:{sp}:{resource_id}:{role_id}")),
                        principal_id: sp.clone(),
                        resource_id: resource_id.clone(),
                        app_role_id: role_id,
                        value: value.clone(),
                        created: SEEDED_AT,
                    });
                }
            }
        }
        objects
    }

    pub(crate) fn app_by_object_id(&self, id: &str) -> Option<&AppObject> {
        self.apps.iter().find(|a| a.id.eq_ignore_ascii_case(id))
    }

    pub(crate) fn app_by_app_id(&self, app_id: &str) -> Option<&AppObject> {
        self.apps
            .iter()
            .find(|a| a.app_id.eq_ignore_ascii_case(app_id))
    }

    pub(crate) fn sp_by_app_id(&self, app_id: &str) -> Option<&SpObject> {
        self.sps
            .iter()
            .find(|s| s.app_id.eq_ignore_ascii_case(app_id))
    }

    pub(crate) fn sp_by_id(&self, id: &str) -> Option<&SpObject> {
        self.sps.iter().find(|s| s.id.eq_ignore_ascii_case(id))
    }
}

impl AppObject {
    fn from_seed(app: &AppSeed) -> AppObject {
        let (web, public) = if app.public_client {
            (Vec::new(), app.redirect_uris.clone())
        } else {
            (app.redirect_uris.clone(), Vec::new())
        };
        let keys = app
            .certificates
            .iter()
            .enumerate()
            .filter_map(|(i, pem)| {
                let (thumbprint, start, end) = cert_facts(pem).ok()?;
                Some(KeyMeta {
                    key_id: derived_id(&format!("key:{}:{i}", app.client_id)),
                    display_name: None,
                    thumbprint,
                    start,
                    end,
                    pem: pem.clone(),
                })
            })
            .collect();
        AppObject {
            id: derived_id(&format!(
                "application:{}",
                app.client_id.to_ascii_lowercase()
            )),
            app_id: app.client_id.clone(),
            created: SEEDED_AT,
            sign_in_audience: "AzureADMyOrg".into(),
            web_redirects: web,
            public_redirects: public,
            spa_redirects: Vec::new(),
            fallback_public_client: app.public_client_flows.then_some(true),
            required_resource_access: serde_json::Value::Array(Vec::new()),
            passwords: app
                .secrets
                .iter()
                .map(|s| PasswordMeta {
                    key_id: s.id.clone(),
                    display_name: None,
                    hint: s.value.chars().take(3).collect(),
                    start: SEEDED_AT,
                    end: s.expires,
                })
                .collect(),
            keys,
            owners: Vec::new(),
            notes: None,
            description: None,
            tags: Vec::new(),
        }
    }
}

/// The SHA-1 thumbprint (upper-case hex) and validity of a PEM certificate.
pub(crate) fn cert_facts(pem: &str) -> Result<(String, OffsetDateTime, OffsetDateTime), String> {
    use sha1::Digest as _;
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let thumbprint = sha1::Sha1::digest(&pem.contents)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let validity = cert.validity();
    Ok((
        thumbprint,
        validity.not_before.to_datetime(),
        validity.not_after.to_datetime(),
    ))
}

/// A base64 DER certificate as PEM.
pub(crate) fn der_b64_to_pem(b64: &str) -> String {
    let clean: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in clean.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

impl DirectoryData {
    /// Writes an app's grants and assignments on first-party resources through to its seed
    /// (`delegated_permissions` from its `AllPrincipals` grants, `application_permissions` from
    /// its app role assignments), which the Entra mock reads.
    pub(crate) fn sync_consent(&mut self, t: usize, client_id: &str) {
        let Some(tenant) = self.tenants.get(t) else {
            return;
        };
        let tenant_id = tenant.id.clone();
        let Some(objects) = self.objects.get(t) else {
            return;
        };
        let Some(sp) = objects.sp_by_app_id(client_id).map(|s| s.id.clone()) else {
            return;
        };
        let mut delegated: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut application: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for resource in RESOURCES {
            let resource_id = resource_sp_id(&tenant_id, resource.app_id);
            let mut scopes: Vec<String> = Vec::new();
            for grant in objects.grants.iter().filter(|g| {
                g.client_id == sp && g.resource_id == resource_id && g.principal_id.is_none()
            }) {
                for s in grant.scope.split_whitespace() {
                    if !scopes.iter().any(|x| x.eq_ignore_ascii_case(s)) {
                        scopes.push(s.to_string());
                    }
                }
            }
            if !scopes.is_empty() {
                delegated.insert(resource.uri.to_string(), scopes);
            }
            let roles: Vec<String> = objects
                .assignments
                .iter()
                .filter(|a| a.principal_id == sp && a.resource_id == resource_id)
                .map(|a| a.value.clone())
                .collect();
            if !roles.is_empty() {
                application.insert(resource.uri.to_string(), roles);
            }
        }
        let Some(app) = self.tenants.get_mut(t).and_then(|t| {
            t.apps
                .iter_mut()
                .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
        }) else {
            return;
        };
        app.delegated_permissions
            .retain(|uri, _| resources::resource(uri).is_none());
        app.application_permissions
            .retain(|uri, _| resources::resource(uri).is_none());
        app.delegated_permissions.extend(delegated);
        app.application_permissions.extend(application);
    }

    /// The scopes a `Principal` grant gives `user_oid` for `client_id` on `resource` (a URI),
    /// beyond the tenant-wide consent.
    pub(crate) fn user_consent(
        &self,
        t: usize,
        client_id: &str,
        user_oid: &str,
        resource_uri: &str,
    ) -> Vec<String> {
        let (Some(tenant), Some(objects), Some(resource)) = (
            self.tenants.get(t),
            self.objects.get(t),
            resources::resource(resource_uri),
        ) else {
            return Vec::new();
        };
        let Some(sp) = objects.sp_by_app_id(client_id) else {
            return Vec::new();
        };
        let resource_id = resource_sp_id(&tenant.id, resource.app_id);
        objects
            .grants
            .iter()
            .filter(|g| {
                g.client_id == sp.id
                    && g.resource_id == resource_id
                    && g.principal_id
                        .as_deref()
                        .is_some_and(|p| p.eq_ignore_ascii_case(user_oid))
            })
            .flat_map(|g| g.scope.split_whitespace().map(str::to_string))
            .collect()
    }

    /// An app registered through Graph that has no service principal yet: Entra refuses its
    /// client credentials with AADSTS7000229.
    pub(crate) fn missing_service_principal(&self, t: usize, client_id: &str) -> bool {
        self.objects.get(t).is_some_and(|o| {
            o.app_by_app_id(client_id).is_some() && o.sp_by_app_id(client_id).is_none()
        })
    }

    /// Rebuilds the parsed certificates of an app from its seed's PEMs.
    pub(crate) fn reload_certs(&mut self, client_id: &str) {
        let key = client_id.to_ascii_lowercase();
        let certs: Vec<super::cert::AppCert> = self
            .tenants
            .iter()
            .flat_map(|t| &t.apps)
            .filter(|a| a.client_id.eq_ignore_ascii_case(client_id))
            .flat_map(|a| &a.certificates)
            .filter_map(|pem| super::cert::AppCert::from_pem(pem).ok())
            .collect();
        self.certs.insert(key, certs);
    }

    /// The mailboxes of tenant `t` a management scope's filter selects.
    pub(crate) fn scope_members(&self, t: usize, filter: &str) -> Result<Vec<String>, String> {
        let tenant = self.tenants.get(t).ok_or("no such tenant")?;
        let parsed = OpathFilter::parse(filter)?;
        Ok(tenant
            .recipients()
            .filter(|r| parsed.matches(r))
            .map(|r| r.address)
            .collect())
    }

    /// Writes an app's RBAC for Applications role assignments through to its application access
    /// policy (`mailbox_scope`): the mailboxes of its scoped assignments, or every mailbox when
    /// one assignment is unscoped (or there are none).
    pub(crate) fn sync_mailbox_scope(&mut self, t: usize, app_id: &str) {
        let Some(objects) = self.objects.get(t) else {
            return;
        };
        let Some(sp) = self
            .tenants
            .get(t)
            .and_then(|tenant| {
                tenant
                    .exchange_service_principals
                    .iter()
                    .find(|s| s.app_id.eq_ignore_ascii_case(app_id))
            })
            .map(|s| s.object_id.clone())
        else {
            return;
        };
        let assignments: Vec<&RoleAssignment> = objects
            .role_assignments
            .iter()
            .filter(|a| a.app.eq_ignore_ascii_case(&sp))
            .collect();
        let mut scope: Option<Vec<String>> = None;
        if !assignments.is_empty() && assignments.iter().all(|a| a.scope.is_some()) {
            let mut mailboxes: Vec<String> = Vec::new();
            for a in assignments {
                let filter = a
                    .scope
                    .as_ref()
                    .and_then(|name| {
                        objects
                            .management_scopes
                            .iter()
                            .find(|s| s.name.eq_ignore_ascii_case(name))
                    })
                    .map(|s| s.filter.clone())
                    .unwrap_or_default();
                for m in self.scope_members(t, &filter).unwrap_or_default() {
                    if !mailboxes.iter().any(|x| x.eq_ignore_ascii_case(&m)) {
                        mailboxes.push(m);
                    }
                }
            }
            scope = Some(mailboxes);
        }
        if let Some(app) = self.tenants.get_mut(t).and_then(|t| {
            t.apps
                .iter_mut()
                .find(|a| a.client_id.eq_ignore_ascii_case(app_id))
        }) {
            app.mailbox_scope = scope;
        }
    }
}

/// The subset of Exchange's OPATH recipient filters the mock evaluates: `Property -eq 'value'`,
/// `-ne`, `-like 'pat*'`, joined by `-and` / `-or` (`-and` binding tighter), over
/// `PrimarySmtpAddress`, `UserPrincipalName`, `WindowsEmailAddress`, `EmailAddresses`,
/// `Alias`, `Name`, `DisplayName`.
#[derive(Debug)]
struct OpathFilter {
    /// Alternatives of conjunctions.
    any: Vec<Vec<(String, String, String)>>,
}

impl OpathFilter {
    fn parse(filter: &str) -> Result<OpathFilter, String> {
        let text = filter
            .trim()
            .trim_start_matches('(')
            .trim_end_matches(')')
            .trim();
        let lower = text.to_ascii_lowercase();
        let mut any = Vec::new();
        for alt in split_keyword(text, &lower, " -or ") {
            let alt_lower = alt.to_ascii_lowercase();
            let mut all = Vec::new();
            for atom in split_keyword(alt, &alt_lower, " -and ") {
                let atom = atom
                    .trim()
                    .trim_start_matches('(')
                    .trim_end_matches(')')
                    .trim();
                let mut parts = atom.splitn(3, ' ');
                let (Some(prop), Some(op), Some(value)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(format!("Invalid filter syntax: '{filter}'."));
                };
                let op = op.to_ascii_lowercase();
                if !["-eq", "-ne", "-like"].contains(&op.as_str()) {
                    return Err(format!(
                        "The operator '{op}' is not supported in '{filter}'."
                    ));
                }
                let prop = prop.to_ascii_lowercase();
                if ![
                    "primarysmtpaddress",
                    "userprincipalname",
                    "windowsemailaddress",
                    "emailaddresses",
                    "alias",
                    "name",
                    "displayname",
                ]
                .contains(&prop.as_str())
                {
                    return Err(format!(
                        "The property '{prop}' is not supported in recipient filters by the mock."
                    ));
                }
                let value = value
                    .trim()
                    .trim_matches(|c| c == '\'' || c == '"')
                    .to_string();
                all.push((prop, op, value));
            }
            any.push(all);
        }
        Ok(OpathFilter { any })
    }

    fn matches(&self, r: &super::Recipient) -> bool {
        let alias = r.address.split('@').next().unwrap_or_default().to_string();
        self.any.iter().any(|all| {
            all.iter().all(|(prop, op, value)| {
                let actual = match prop.as_str() {
                    "alias" => alias.clone(),
                    "name" | "displayname" => r.display_name.clone(),
                    _ => r.address.clone(),
                };
                let actual = actual.to_ascii_lowercase();
                let value = value.to_ascii_lowercase();
                let value = value.strip_prefix("smtp:").unwrap_or(&value).to_string();
                match op.as_str() {
                    "-eq" => actual == value,
                    "-ne" => actual != value,
                    _ => like(&actual, &value),
                }
            })
        })
    }
}

fn split_keyword<'a>(text: &'a str, lower: &str, keyword: &str) -> Vec<&'a str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut from = 0;
    while let Some(i) = lower[from..].find(keyword) {
        let at = from + i;
        parts.push(&text[start..at]);
        start = at + keyword.len();
        from = start;
    }
    parts.push(&text[start..]);
    parts
}

/// `-like` with `*` wildcards.
fn like(actual: &str, pattern: &str) -> bool {
    let pieces: Vec<&str> = pattern.split('*').collect();
    if pieces.len() == 1 {
        return actual == pattern;
    }
    let mut rest = actual;
    for (i, piece) in pieces.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(piece) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == pieces.len() - 1 {
            return rest.ends_with(piece);
        } else if let Some(pos) = rest.find(piece) {
            rest = &rest[pos + piece.len()..];
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Directory;
    use crate::directory::seed::{ADELE, GRAPH, MEGAN, PUBLIC_APP, Seed};

    #[test]
    fn seeded_consent_becomes_grants_and_syncs_back_unchanged() {
        let directory = Directory::new(Seed::contoso()).unwrap();
        let before = directory.read().app(0, PUBLIC_APP).cloned().unwrap();
        directory.update(|d| d.sync_consent(0, PUBLIC_APP));
        let after = directory.read().app(0, PUBLIC_APP).cloned().unwrap();
        assert_eq!(before, after);
        let dir = directory.read();
        assert!(
            dir.objects[0]
                .grants
                .iter()
                .any(|g| g.scope.contains("Mail.ReadWrite"))
        );
        assert!(
            dir.app(0, GRAPH_CLI_APP).is_some(),
            "bootstrap client seeded"
        );
        assert!(dir.objects[0].app_by_app_id(GRAPH_CLI_APP).is_none());
        assert!(dir.objects[0].sp_by_app_id(GRAPH_CLI_APP).is_some());
        assert!(before.delegated_permissions.contains_key(GRAPH));
    }

    #[test]
    fn opath_filters_select_mailboxes() {
        let directory = Directory::new(Seed::contoso()).unwrap();
        let dir = directory.read();
        assert_eq!(
            dir.scope_members(0, &format!("PrimarySmtpAddress -eq '{ADELE}'"))
                .unwrap(),
            [ADELE]
        );
        assert_eq!(
            dir.scope_members(0, "Alias -eq 'adele' -or Alias -like 'meg*'")
                .unwrap(),
            [ADELE, MEGAN]
        );
        assert!(dir.scope_members(0, "CustomAttribute1 -eq 'x'").is_err());
    }
}
