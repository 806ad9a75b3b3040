//! App registration through Microsoft Graph, signed in as an administrator.
//!
//! [`converge`] makes the tenant match a [`Requirements`] plan ([`crate::setup`]) and can run any
//! number of times: it finds the app (by client ID, else by display name), creates or patches
//! it (permissions resolved **by name** from each resource's service principal — its `appRoles`
//! and `oauth2PermissionScopes` —, redirect URIs, public-client setting, account types), adds a
//! secret (`addPassword`) or uploads a locally generated certificate's public part
//! (`keyCredentials`) only when the caller has none, ensures the service principal, and grants
//! admin consent: an app role assignment per missing application permission and one
//! `AllPrincipals` OAuth2 permission grant per resource for the delegated ones. Every request
//! goes through a [`Transport`]: [`LiveGraph`] sends it, [`DryRun`] only records it (and answers
//! as an empty tenant would), so `--dry-run` lists exactly what a first run sends.
//!
//! The sign-in is a device code through a bootstrap public client ([`GRAPH_BOOTSTRAP_CLIENT`],
//! Microsoft Graph Command Line Tools, unless the admin names their own); the Exchange part that
//! Graph cannot do runs through Exchange Online's admin API ([`ExchangeAdmin`]) with a sign-in of
//! its own through Exchange Online PowerShell's client, or is printed as PowerShell.

mod cert;
mod exchange;
mod graph;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use serde_json::{Value, json};
use time::OffsetDateTime;

pub use cert::{GeneratedCertificate, generate_certificate};
pub use exchange::{EXCHANGE_BOOTSTRAP_CLIENT, ExchangeAdmin, default_admin_url};
pub use graph::{DryRun, GraphCall, LiveGraph, Transport};

use crate::auth::AuthError;
use crate::auth::oauth::{DeviceAuthorization, Endpoints, OAuthClient, login_host};
use crate::clock::Clock;
use crate::config::NetworkSettings;
use crate::connections::Connections;
use crate::model::{ClientId, Cloud, ConnectionSpec, Tenant};
use crate::secret::Secret;
use crate::setup::{Api, CredentialKind, Needs, PlannedConnection, Requirements};

/// Microsoft Graph Command Line Tools: Microsoft's public client that `Connect-MgGraph` signs in
/// with, present in every tenant; exgate's default for the administrator's sign-in.
pub const GRAPH_BOOTSTRAP_CLIENT: &str = "14d82eec-204b-4c2f-b7e8-296a70dab67e";

/// The delegated Graph scopes the administrator's sign-in asks for.
pub const ADMIN_SCOPES: [&str; 3] = [
    "Application.ReadWrite.All",
    "AppRoleAssignment.ReadWrite.All",
    "DelegatedPermissionGrant.ReadWrite.All",
];

/// Why a registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// Graph refused a request; `fix` says which role or scope is missing.
    #[error("{request} was refused: {status} {code}: {message}{}", fix.as_deref().map(|f| format!("; {f}")).unwrap_or_default())]
    Graph {
        request: String,
        status: u16,
        code: String,
        message: String,
        fix: Option<String>,
    },
    /// The Exchange admin API refused a cmdlet.
    #[error("{cmdlet} in Exchange Online failed: {message}")]
    Exchange { cmdlet: String, message: String },
    /// An answer was not what Graph documents.
    #[error("unexpected answer to {request}: {message}")]
    Protocol { request: String, message: String },
    #[error("cannot reach {url}: {message}")]
    Transport { url: String, message: String },
    /// The tenant holds something exgate cannot choose between or use.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl RegistrationError {
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Self::Graph { status: 403, .. })
    }
}

/// The role and scope an administrator needs for a request, by what it touches.
fn explain_denied(method: &str, path: &str) -> String {
    let path = path.to_ascii_lowercase();
    if path.contains("approleassign") {
        "granting application permissions needs AppRoleAssignment.ReadWrite.All and, for \
         Microsoft Graph's, the Privileged Role Administrator or Global Administrator role; \
         sign in with such an account, or have one open the admin-consent URL `exgate setup` prints"
            .into()
    } else if path.contains("oauth2permissiongrants") {
        "granting delegated permissions for the organization needs \
         DelegatedPermissionGrant.ReadWrite.All and the Cloud Application Administrator, \
         Application Administrator or Global Administrator role"
            .into()
    } else if method != "GET"
        && (path.contains("applications") || path.contains("serviceprincipals"))
    {
        "creating or changing app registrations needs Application.ReadWrite.All and the \
         Application Administrator, Cloud Application Administrator or Global Administrator role; \
         sign in with such an account (or ask one to run `exgate app register`)"
            .into()
    } else {
        "reading app registrations needs Application.Read.All (the sign-in asks \
         Application.ReadWrite.All); an administrator must consent to it for the sign-in client"
            .into()
    }
}

/// What the caller asks beyond the plan.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The app's client ID when it is known (an existing connection's), so it is found by ID.
    pub client_id: Option<ClientId>,
    /// Add a credential even when the caller already holds one (a new secret or certificate).
    pub new_credential: bool,
    /// The caller already holds a working credential of the app (none is added unless asked).
    pub have_credential: bool,
}

/// A credential [`converge`] created; its secret part exists only here and in the store.
#[derive(Debug)]
pub enum NewCredential {
    Secret {
        value: Secret,
        key_id: String,
        /// `None` when not known (a secret someone else made).
        expires: Option<OffsetDateTime>,
    },
    Certificate {
        certificate_pem: String,
        private_key_pem: Secret,
        expires: Option<OffsetDateTime>,
    },
}

impl NewCredential {
    pub fn expires(&self) -> Option<OffsetDateTime> {
        match self {
            Self::Secret { expires, .. } | Self::Certificate { expires, .. } => *expires,
        }
    }
}

/// What [`converge`] found or made.
#[derive(Debug)]
pub struct Outcome {
    /// The tenant's ID (from `/organization`).
    pub tenant_id: String,
    pub client_id: String,
    /// The app registration's object ID.
    pub application_id: String,
    /// The service principal's (enterprise application's) object ID.
    pub service_principal_id: String,
    pub credential: Option<NewCredential>,
    /// What changed, in words (empty: the tenant already matched).
    pub changes: Vec<String>,
}

fn text(v: &Value, key: &str, request: &str) -> Result<String, RegistrationError> {
    v.get(key)
        .and_then(Value::as_str)
        .map(ToOwned::to_owned)
        .ok_or_else(|| RegistrationError::Protocol {
            request: request.to_owned(),
            message: format!("no `{key}` in the answer"),
        })
}

fn values(v: &Value) -> Vec<Value> {
    v.get("value")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn quote(s: &str) -> String {
    s.replace('\'', "''")
}

/// A resource's service principal with its permissions by name.
struct ResourceSp {
    id: String,
    app_id: String,
    roles: Vec<(String, String)>,
    scopes: Vec<(String, String)>,
}

impl ResourceSp {
    fn role(&self, name: &str) -> Option<&str> {
        self.roles
            .iter()
            .find(|(_, v)| v == name)
            .map(|(id, _)| id.as_str())
    }
    fn scope(&self, name: &str) -> Option<&str> {
        self.scopes
            .iter()
            .find(|(_, v)| v == name)
            .map(|(id, _)| id.as_str())
    }
}

fn named_ids(sp: &Value, key: &str) -> Vec<(String, String)> {
    sp.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p.get("id")?.as_str()?.to_owned(),
                p.get("value")?.as_str()?.to_owned(),
            ))
        })
        .collect()
}

async fn resource_sp(
    graph: &mut dyn Transport,
    api: Api,
    wanted: &crate::setup::ApiPermissions,
) -> Result<ResourceSp, RegistrationError> {
    let call = GraphCall::get(format!(
        "/servicePrincipals?$filter=appId eq '{}'&$select=id,appId,appRoles,oauth2PermissionScopes",
        api.app_id()
    ));
    let answer = graph.send(&call).await?;
    if graph.is_dry_run() {
        // Nothing was asked: stand-ins that name what the real IDs would be.
        let placeholder = |n: &String| (format!("{{id of {n}}}"), n.clone());
        return Ok(ResourceSp {
            id: format!("{{{} service principal}}", api.display_name()),
            app_id: api.app_id().to_owned(),
            roles: wanted.application.iter().map(placeholder).collect(),
            scopes: wanted.delegated.iter().map(placeholder).collect(),
        });
    }
    let sp = values(&answer).into_iter().next().ok_or_else(|| {
        RegistrationError::Conflict(format!(
            "the tenant has no service principal for {} ({}); it appears when the service is \
             first used — for Exchange Online, once the tenant has an Exchange Online license",
            api.display_name(),
            api.app_id()
        ))
    })?;
    Ok(ResourceSp {
        id: text(&sp, "id", &call.to_string())?,
        app_id: api.app_id().to_owned(),
        roles: named_ids(&sp, "appRoles"),
        scopes: named_ids(&sp, "oauth2PermissionScopes"),
    })
}

/// `requiredResourceAccess` for the plan, with IDs resolved from the resources.
fn required_access(
    reqs: &Requirements,
    resources: &[(Api, ResourceSp)],
) -> Result<Vec<Value>, RegistrationError> {
    let mut out = Vec::new();
    for (api, sp) in resources {
        let Some(p) = reqs.permissions(*api) else {
            continue;
        };
        let mut access = Vec::new();
        for name in &p.delegated {
            let id = sp.scope(name).ok_or_else(|| {
                RegistrationError::Conflict(format!(
                    "{} offers no delegated permission named {name}",
                    api.display_name()
                ))
            })?;
            access.push(json!({"id": id, "type": "Scope"}));
        }
        for name in &p.application {
            let id = sp.role(name).ok_or_else(|| {
                RegistrationError::Conflict(format!(
                    "{} offers no application permission named {name}",
                    api.display_name()
                ))
            })?;
            access.push(json!({"id": id, "type": "Role"}));
        }
        out.push(json!({"resourceAppId": sp.app_id, "resourceAccess": access}));
    }
    Ok(out)
}

/// `wanted` merged into what the app has, keeping what an administrator added by hand.
fn merge_access(existing: &Value, wanted: &[Value]) -> Vec<Value> {
    let mut merged: Vec<Value> = existing.as_array().cloned().unwrap_or_default();
    for w in wanted {
        let app = w["resourceAppId"].as_str().unwrap_or_default();
        match merged
            .iter_mut()
            .find(|e| e["resourceAppId"].as_str() == Some(app))
        {
            Some(entry) => {
                let list = entry
                    .get("resourceAccess")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let mut list = list;
                for a in w["resourceAccess"].as_array().into_iter().flatten() {
                    if !list
                        .iter()
                        .any(|x| x["id"] == a["id"] && x["type"] == a["type"])
                    {
                        list.push(a.clone());
                    }
                }
                entry["resourceAccess"] = Value::Array(list);
            }
            None => merged.push(w.clone()),
        }
    }
    merged
}

fn merge_uris(existing: Option<&Value>, wanted: &[String]) -> Vec<String> {
    let mut out: Vec<String> = existing
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(ToOwned::to_owned))
        .collect();
    for w in wanted {
        if !out.contains(w) {
            out.push(w.clone());
        }
    }
    out
}

/// Makes the tenant match `reqs` (see the module documentation).
pub async fn converge(
    graph: &mut dyn Transport,
    needs: &Needs,
    reqs: &Requirements,
    options: &Options,
    now: OffsetDateTime,
) -> Result<Outcome, RegistrationError> {
    let Some(app_plan) = &reqs.app else {
        return Err(RegistrationError::Conflict(
            "Exchange Server needs no app registration; run `exgate setup` for its steps".into(),
        ));
    };
    let mut changes = Vec::new();
    let org = graph
        .send(&GraphCall::get("/organization?$select=id"))
        .await?;
    let tenant_id = values(&org)
        .first()
        .and_then(|o| o["id"].as_str().map(ToOwned::to_owned))
        .unwrap_or_else(|| "{tenant ID}".into());

    // The resources' permissions, by name.
    let mut resources = Vec::new();
    for p in &app_plan.permissions {
        resources.push((p.api, resource_sp(graph, p.api, p).await?));
    }
    let wanted_access = required_access(reqs, &resources)?;

    // The app: by client ID, else by display name.
    let find = match &options.client_id {
        Some(id) => GraphCall::get(format!(
            "/applications?$filter=appId eq '{}'",
            quote(&id.to_string())
        )),
        None => GraphCall::get(format!(
            "/applications?$filter=displayName eq '{}'",
            quote(&app_plan.display_name)
        )),
    };
    let found = values(&graph.send(&find).await?);
    if found.len() > 1 {
        return Err(RegistrationError::Conflict(format!(
            "{} app registrations are named `{}`; give the one to use with --client-id",
            found.len(),
            app_plan.display_name
        )));
    }
    let (application_id, client_id, created) = match found.into_iter().next() {
        Some(app) => {
            let id = text(&app, "id", &find.to_string())?;
            let client_id = text(&app, "appId", &find.to_string())?;
            let mut patch = serde_json::Map::new();
            let access = merge_access(&app["requiredResourceAccess"], &wanted_access);
            if Value::Array(access.clone()) != app["requiredResourceAccess"] {
                patch.insert("requiredResourceAccess".into(), Value::Array(access));
            }
            let web = merge_uris(
                app.pointer("/web/redirectUris"),
                &app_plan.web_redirect_uris,
            );
            if Some(&json!(web)) != app.pointer("/web/redirectUris") && !web.is_empty() {
                patch.insert("web".into(), json!({"redirectUris": web}));
            }
            let public = merge_uris(
                app.pointer("/publicClient/redirectUris"),
                &app_plan.public_client_redirect_uris,
            );
            if Some(&json!(public)) != app.pointer("/publicClient/redirectUris")
                && !public.is_empty()
            {
                patch.insert("publicClient".into(), json!({"redirectUris": public}));
            }
            if app_plan.allow_public_client_flows
                && app["isFallbackPublicClient"].as_bool() != Some(true)
            {
                patch.insert("isFallbackPublicClient".into(), json!(true));
            }
            if !patch.is_empty() {
                let keys: Vec<String> = patch.keys().cloned().collect();
                graph
                    .send(&GraphCall::patch(
                        format!("/applications/{id}"),
                        Value::Object(patch),
                    ))
                    .await?;
                changes.push(format!(
                    "updated the app registration ({})",
                    keys.join(", ")
                ));
            }
            (id, client_id, false)
        }
        None => {
            let body = json!({
                "displayName": app_plan.display_name,
                "signInAudience": app_plan.sign_in_audience,
                "requiredResourceAccess": wanted_access,
                "web": {"redirectUris": app_plan.web_redirect_uris},
                "publicClient": {"redirectUris": app_plan.public_client_redirect_uris},
                "isFallbackPublicClient": app_plan.allow_public_client_flows,
            });
            let call = GraphCall::post("/applications", body);
            let app = graph.send(&call).await?;
            changes.push(format!(
                "created the app registration `{}`",
                app_plan.display_name
            ));
            (
                text(&app, "id", &call.to_string())?,
                text(&app, "appId", &call.to_string())?,
                true,
            )
        }
    };

    // The credential, when the plan needs one and the caller has none (or asks for another).
    let mut credential = None;
    if let Some(advice) = &app_plan.credential
        && (created || options.new_credential || !options.have_credential)
    {
        let expires = now + time::Duration::days(i64::from(advice.months) * 30);
        let end = expires
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        match advice.kind {
            CredentialKind::Secret => {
                let call = GraphCall::post(
                    format!("/applications/{application_id}/addPassword"),
                    json!({"passwordCredential": {"displayName": "exgate", "endDateTime": end}}),
                );
                let answer = graph.send(&call).await?;
                let value = answer["secretText"].as_str().unwrap_or_default().to_owned();
                credential = Some(NewCredential::Secret {
                    value: Secret::new(value),
                    key_id: answer["keyId"].as_str().unwrap_or_default().to_owned(),
                    expires: Some(expires),
                });
                changes.push(format!("added a client secret valid until {end}"));
            }
            CredentialKind::Certificate => {
                let generated = generate_certificate(&app_plan.display_name, now, expires)
                    .map_err(|e| RegistrationError::Conflict(e.to_string()))?;
                let call = GraphCall::patch(
                    format!("/applications/{application_id}"),
                    json!({"keyCredentials": [{
                        "type": "AsymmetricX509Cert",
                        "usage": "Verify",
                        "displayName": format!("CN={}", app_plan.display_name),
                        "key": generated.der_base64,
                    }]}),
                );
                graph.send(&call).await?;
                credential = Some(NewCredential::Certificate {
                    certificate_pem: generated.certificate_pem,
                    private_key_pem: generated.private_key_pem,
                    expires: Some(expires),
                });
                changes.push(format!(
                    "uploaded a new certificate valid until {end} (it replaces the app's certificates)"
                ));
            }
        }
    }

    // The service principal.
    let find_sp = GraphCall::get(format!(
        "/servicePrincipals?$filter=appId eq '{}'&$select=id,appId",
        quote(&client_id)
    ));
    let service_principal_id = match values(&graph.send(&find_sp).await?).first() {
        Some(sp) => text(sp, "id", &find_sp.to_string())?,
        None => {
            let call = GraphCall::post("/servicePrincipals", json!({"appId": client_id}));
            let sp = graph.send(&call).await?;
            changes.push("created the service principal (enterprise application)".into());
            text(&sp, "id", &call.to_string())?
        }
    };

    // Admin consent: application permissions as app role assignments...
    let assigned_call = GraphCall::get(format!(
        "/servicePrincipals/{service_principal_id}/appRoleAssignments"
    ));
    let assigned: BTreeSet<(String, String)> = values(&graph.send(&assigned_call).await?)
        .iter()
        .filter_map(|a| {
            Some((
                a["resourceId"].as_str()?.to_owned(),
                a["appRoleId"].as_str()?.to_owned(),
            ))
        })
        .collect();
    for (api, sp) in &resources {
        let Some(p) = reqs.permissions(*api) else {
            continue;
        };
        for name in &p.application {
            let role = sp.role(name).unwrap_or_default().to_owned();
            if assigned.contains(&(sp.id.clone(), role.clone())) {
                continue;
            }
            graph
                .send(&GraphCall::post(
                    format!("/servicePrincipals/{}/appRoleAssignedTo", sp.id),
                    json!({"principalId": service_principal_id, "resourceId": sp.id, "appRoleId": role}),
                ))
                .await?;
            changes.push(format!(
                "granted the application permission {name} of {}",
                api.display_name()
            ));
        }
    }
    // ...and delegated ones as one grant per resource for all users.
    let grants_call = GraphCall::get(format!(
        "/oauth2PermissionGrants?$filter=clientId eq '{service_principal_id}'"
    ));
    let grants = values(&graph.send(&grants_call).await?);
    for (api, sp) in &resources {
        let Some(p) = reqs.permissions(*api) else {
            continue;
        };
        if p.delegated.is_empty() {
            continue;
        }
        let existing = grants.iter().find(|g| {
            g["resourceId"].as_str() == Some(sp.id.as_str())
                && g["consentType"].as_str() == Some("AllPrincipals")
        });
        match existing {
            Some(grant) => {
                let mut scopes: Vec<String> = grant["scope"]
                    .as_str()
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(ToOwned::to_owned)
                    .collect();
                let missing: Vec<&String> =
                    p.delegated.iter().filter(|d| !scopes.contains(d)).collect();
                if missing.is_empty() {
                    continue;
                }
                let added = missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                scopes.extend(missing.into_iter().cloned());
                let id = text(grant, "id", &grants_call.to_string())?;
                graph
                    .send(&GraphCall::patch(
                        format!("/oauth2PermissionGrants/{id}"),
                        json!({"scope": scopes.join(" ")}),
                    ))
                    .await?;
                changes.push(format!(
                    "granted the delegated permissions {added} of {} for all users",
                    api.display_name()
                ));
            }
            None => {
                graph
                    .send(&GraphCall::post(
                        "/oauth2PermissionGrants",
                        json!({
                            "clientId": service_principal_id,
                            "consentType": "AllPrincipals",
                            "resourceId": sp.id,
                            "scope": p.delegated.join(" "),
                        }),
                    ))
                    .await?;
                changes.push(format!(
                    "granted the delegated permissions of {} for all users",
                    api.display_name()
                ));
            }
        }
    }
    let _ = needs;
    Ok(Outcome {
        tenant_id,
        client_id,
        application_id,
        service_principal_id,
        credential,
        changes,
    })
}

fn known_client(id: &str) -> Result<ClientId, crate::Error> {
    id.parse::<ClientId>()
        .map_err(|e| crate::model::InvalidInput::new("client_id", e.0).into())
}

/// An administrator's device-code sign-in through a public client.
#[derive(Debug)]
pub struct AdminSignIn {
    client: OAuthClient,
    scopes: Vec<String>,
}

impl AdminSignIn {
    fn new(
        network: &NetworkSettings,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
        cloud: Cloud,
        tenant: &Tenant,
        client_id: &ClientId,
        scopes: Vec<String>,
    ) -> Result<Self, AuthError> {
        let host = network
            .authority_host
            .as_ref()
            .map_or_else(|| login_host(cloud).to_owned(), |h| h.to_string());
        let endpoints = Endpoints::entra(&host, tenant)?;
        Ok(Self {
            client: OAuthClient::new(http, endpoints, client_id.clone(), None, clock),
            scopes,
        })
    }

    /// Microsoft Graph, with [`ADMIN_SCOPES`], through `client_id` (default
    /// [`GRAPH_BOOTSTRAP_CLIENT`]).
    pub fn graph(
        network: &NetworkSettings,
        clock: Arc<dyn Clock>,
        cloud: Cloud,
        tenant: &Tenant,
        client_id: Option<&ClientId>,
    ) -> Result<Self, crate::Error> {
        let http = crate::net::http_client(network).map_err(|e| {
            crate::Error::from(AuthError::Unsupported(format!(
                "cannot build the HTTP client: {e}"
            )))
        })?;
        let default = known_client(GRAPH_BOOTSTRAP_CLIENT)?;
        let identifier = crate::model::Resource::Graph.identifier(cloud);
        let scopes = ADMIN_SCOPES
            .iter()
            .map(|s| format!("{identifier}/{s}"))
            .collect();
        Ok(Self::new(
            network,
            http,
            clock,
            cloud,
            tenant,
            client_id.unwrap_or(&default),
            scopes,
        )?)
    }

    /// Exchange Online's admin API, through Exchange Online PowerShell's client.
    pub fn exchange(
        network: &NetworkSettings,
        clock: Arc<dyn Clock>,
        cloud: Cloud,
        tenant: &Tenant,
    ) -> Result<Self, crate::Error> {
        let http = crate::net::http_client(network).map_err(|e| {
            crate::Error::from(AuthError::Unsupported(format!(
                "cannot build the HTTP client: {e}"
            )))
        })?;
        let identifier = crate::model::Resource::Ews.identifier(cloud);
        Ok(Self::new(
            network,
            http,
            clock,
            cloud,
            tenant,
            &known_client(EXCHANGE_BOOTSTRAP_CLIENT)?,
            vec![format!("{identifier}/Exchange.ManageV2")],
        )?)
    }

    pub async fn start(&self) -> Result<DeviceAuthorization, crate::Error> {
        Ok(self.client.device_authorization(&self.scopes).await?)
    }

    /// The access token once the administrator has signed in.
    pub async fn finish(&self, device: &DeviceAuthorization) -> Result<Secret, crate::Error> {
        Ok(self.client.poll_device(device).await?.access_token)
    }
}

/// The credential of a connection as a spec's fields.
fn credential_spec(spec: &mut ConnectionSpec, credential: &NewCredential) {
    match credential {
        NewCredential::Secret { value, .. } => spec.client_secret = Some(value.clone()),
        NewCredential::Certificate {
            certificate_pem,
            private_key_pem,
            ..
        } => {
            spec.certificate_pem = Some(certificate_pem.clone());
            spec.private_key_pem = Some(private_key_pem.clone());
        }
    }
}

/// What [`apply_connections`] did to one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Added(String),
    Updated(String),
    /// Left as it was (no new credential, nothing else to change).
    Kept(String),
}

/// Creates the plan's exgate connections (or updates them) for the app `client_id` in
/// `tenant`; confidential ones get `credential` when one was made.
pub async fn apply_connections(
    connections: &Connections,
    planned: &[PlannedConnection],
    cloud: Cloud,
    tenant: &str,
    client_id: &str,
    credential: Option<&NewCredential>,
) -> Result<Vec<Applied>, crate::Error> {
    let mut out = Vec::new();
    for p in planned {
        let mut spec = ConnectionSpec {
            target: Some("online".into()),
            cloud: Some(cloud.as_str().into()),
            tenant: Some(tenant.into()),
            auth: Some(p.auth.as_str().into()),
            client_id: Some(client_id.into()),
            backend: Some(p.backend.as_str().into()),
            send: Some(p.send.as_str().into()),
            flow: p.flow.map(|f| f.as_str().into()),
            redirect_uri: p.redirect_uri.clone(),
            ..ConnectionSpec::default()
        };
        let with_credential = p.confidential && credential.is_some();
        if let (true, Some(c)) = (with_credential, credential) {
            credential_spec(&mut spec, c);
            spec.credential_expires = c.expires().and_then(|e| {
                e.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            });
        }
        match connections.get(&p.name).await {
            Ok(_) => {
                if !with_credential {
                    // Keep the stored credential: change only the rest.
                    spec.client_secret = None;
                    spec.certificate_pem = None;
                    spec.private_key_pem = None;
                    spec.credential_expires = None;
                }
                connections.edit(&p.name, spec, false).await?;
                out.push(if with_credential {
                    Applied::Updated(p.name.clone())
                } else {
                    Applied::Kept(p.name.clone())
                });
            }
            Err(crate::Error::NotFound { .. }) => {
                if p.confidential && credential.is_none() {
                    return Err(crate::Error::Invalid(crate::model::InvalidInput::missing(
                        "client_secret",
                        format!(
                            "connection `{}` needs the app's secret or certificate, and the app \
                             already has one exgate does not hold; add another with --new-credential",
                            p.name
                        ),
                    )));
                }
                connections.add(&p.name, &spec).await?;
                out.push(Applied::Added(p.name.clone()));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

impl fmt::Display for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Added(n) => write!(f, "added connection {n}"),
            Self::Updated(n) => write!(f, "updated connection {n} with the new credential"),
            Self::Kept(n) => write!(f, "connection {n} is up to date"),
        }
    }
}

/// What [`rotate_secret`] did.
#[derive(Debug)]
pub struct Rotation {
    pub secret: Secret,
    pub expires: OffsetDateTime,
    /// The key IDs of the old secrets removed.
    pub removed: Vec<String>,
    /// Old secrets left in place (their hint did not tell them apart), by key ID.
    pub kept: Vec<String>,
}

/// Replaces the app's secret `old`: adds a new one, has `test` try it (a client-credentials
/// token), lets `store` keep it, and only then removes the old one — the secret whose `hint`
/// (its first three characters, which Graph shows) is `old`'s. A new secret that fails its test
/// is removed again and the old one stays.
pub async fn rotate_secret<T, S>(
    graph: &mut dyn Transport,
    client_id: &str,
    old: &Secret,
    months: u32,
    now: OffsetDateTime,
    test: T,
    store: S,
) -> Result<Rotation, crate::Error>
where
    T: AsyncFnOnce(&Secret) -> Result<(), crate::Error>,
    S: AsyncFnOnce(&Secret, OffsetDateTime) -> Result<(), crate::Error>,
{
    let find = GraphCall::get(format!(
        "/applications?$filter=appId eq '{}'&$select=id,appId,passwordCredentials",
        quote(client_id)
    ));
    let app = values(&graph.send(&find).await?)
        .into_iter()
        .next()
        .ok_or_else(|| crate::Error::NotFound {
            what: "app registration with client ID",
            name: client_id.to_owned(),
        })?;
    let id = text(&app, "id", &find.to_string())?;
    let expires = now + time::Duration::days(i64::from(months) * 30);
    let end = expires
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let answer = graph
        .send(&GraphCall::post(
            format!("/applications/{id}/addPassword"),
            json!({"passwordCredential": {"displayName": "exgate", "endDateTime": end}}),
        ))
        .await?;
    let new_key = answer["keyId"].as_str().unwrap_or_default().to_owned();
    let secret = Secret::new(answer["secretText"].as_str().unwrap_or_default());
    let remove = |key: &str| {
        GraphCall::post(
            format!("/applications/{id}/removePassword"),
            json!({"keyId": key}),
        )
    };
    if let Err(e) = test(&secret).await {
        // The old secret keeps working; the new one is taken back.
        let _ = graph.send(&remove(&new_key)).await;
        return Err(e);
    }
    store(&secret, expires).await?;
    let hint: String = old.expose().chars().take(3).collect();
    let mut removed = Vec::new();
    let mut kept = Vec::new();
    for p in app["passwordCredentials"].as_array().into_iter().flatten() {
        let Some(key) = p["keyId"].as_str() else {
            continue;
        };
        if key == new_key {
            continue;
        }
        if p["hint"].as_str() == Some(hint.as_str()) {
            graph.send(&remove(key)).await?;
            removed.push(key.to_owned());
        } else {
            kept.push(key.to_owned());
        }
    }
    Ok(Rotation {
        secret,
        expires,
        removed,
        kept,
    })
}

/// Asks `client_id`'s token endpoint for a client-credentials token with `secret` (Graph's
/// `.default`, which needs no permission): whether Entra takes the secret.
pub async fn try_secret(
    network: &NetworkSettings,
    clock: Arc<dyn Clock>,
    cloud: Cloud,
    tenant: &Tenant,
    client_id: &ClientId,
    secret: &Secret,
) -> Result<(), crate::Error> {
    let http = crate::net::http_client(network).map_err(|e| {
        crate::Error::from(AuthError::Unsupported(format!(
            "cannot build the HTTP client: {e}"
        )))
    })?;
    let host = network
        .authority_host
        .as_ref()
        .map_or_else(|| login_host(cloud).to_owned(), |h| h.to_string());
    let client = OAuthClient::new(
        http,
        Endpoints::entra(&host, tenant)?,
        client_id.clone(),
        Some(crate::model::ClientCredential::Secret(secret.clone())),
        clock,
    );
    let scope =
        crate::model::Resource::app_only_scope(crate::model::Resource::Graph.identifier(cloud));
    client.client_credentials(&scope).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
