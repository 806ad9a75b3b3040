//! App registration through Graph: `applications` (with `addPassword`, `removePassword` and
//! `keyCredentials`), `servicePrincipals` (with `appRoleAssignedTo` / `appRoleAssignments`),
//! `oauth2PermissionGrants` and `organization`, with Graph's permission checks: the token's
//! scope (or app role) and, for a delegated caller, the signed-in user's directory role or
//! ownership of the app. Refusals are Graph's 403 `Authorization_RequestDenied`.
//!
//! Everything is written into the directory ([`crate::directory::objects`]), which writes it
//! through to the app's seed, so a registered app works at the mock Entra at once.

use axum::http::{Method, StatusCode};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::GraphState;
use super::auth::{Caller, Who};
use super::error::{GraphError, GraphResult, graph_errors};
use super::http::{Ctx, Req, Resp, fmt_instant, parse_instant};
use crate::directory::cert::AppCert;
use crate::directory::objects::{
    AppObject, Assignment, Grant, KeyMeta, PasswordMeta, SpObject, TenantObjects, cert_facts,
    der_b64_to_pem, is_first_party, opaque_id, resource_sp_id,
};
use crate::directory::resources::{self, MICROSOFT_TENANT, RESOURCES, Resource};
use crate::directory::{AppSeed, DirectoryData, SecretSeed, TenantSeed};

/// The first path segments this module serves.
pub(crate) fn serves(first: &str) -> bool {
    [
        "applications",
        "serviceprincipals",
        "oauth2permissiongrants",
        "organization",
    ]
    .contains(&first.to_ascii_lowercase().as_str())
}

/// Roles that may manage every app registration and grant delegated consent.
const APP_ADMINS: &[&str] = &[
    "Global Administrator",
    "Privileged Role Administrator",
    "Application Administrator",
    "Cloud Application Administrator",
];
/// Roles that may grant app roles of Microsoft Graph.
const GRAPH_ROLE_GRANTERS: &[&str] = &["Global Administrator", "Privileged Role Administrator"];

const READ_APPS: &[&str] = &[
    "Application.Read.All",
    "Application.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const WRITE_APPS: &[&str] = &["Application.ReadWrite.All", "Directory.ReadWrite.All"];
const WRITE_ASSIGNMENTS: &[&str] = &["AppRoleAssignment.ReadWrite.All"];
const READ_GRANTS: &[&str] = &[
    "DelegatedPermissionGrant.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
    "Application.Read.All",
    "Application.ReadWrite.All",
];
const WRITE_GRANTS: &[&str] = &["DelegatedPermissionGrant.ReadWrite.All"];

/// Properties of `application` the mock accepts and ignores (it does not model them).
const IGNORED_APP_PROPS: &[&str] = &[
    "identifierUris",
    "api",
    "appRoles",
    "info",
    "optionalClaims",
    "parentalControlSettings",
    "groupMembershipClaims",
    "serviceManagementReference",
    "@odata.type",
];

fn bad(message: impl Into<String>) -> GraphError {
    GraphError::bad_request("Request_BadRequest", message)
}

fn invalid_value(property: &str, resource: &str) -> GraphError {
    bad(format!(
        "Invalid value specified for property '{property}' of resource '{resource}'."
    ))
}

fn not_found(id: &str) -> GraphError {
    graph_errors::directory_not_found(id)
}

fn conflict(message: &str) -> GraphError {
    GraphError::new(
        StatusCode::CONFLICT,
        "Request_MultipleObjectsWithSameKeyValue",
        message,
    )
}

/// Who is calling, as the directory checks need it.
struct Actor {
    /// The signed-in user's object ID (`None`: app-only).
    oid: Option<String>,
    roles: Vec<String>,
    granted: Vec<String>,
    /// An app-only caller's service principal object ID (what it owns apps as).
    sp: Option<String>,
}

impl Actor {
    fn of(dir: &DirectoryData, caller: &Caller) -> GraphResult<Actor> {
        match &caller.who {
            Who::User { upn, scopes } => {
                let user = dir
                    .user(caller.tenant, upn)
                    .ok_or_else(graph_errors::token_invalid)?;
                Ok(Actor {
                    oid: Some(user.object_id.clone()),
                    roles: user.directory_roles.clone(),
                    granted: scopes.clone(),
                    sp: None,
                })
            }
            Who::App { roles, sp } => Ok(Actor {
                oid: None,
                roles: Vec::new(),
                granted: roles.clone(),
                sp: sp.clone(),
            }),
        }
    }

    /// The token holds one of `permissions` (a scope, or an app role app-only).
    fn need(&self, permissions: &[&str]) -> GraphResult<()> {
        if self
            .granted
            .iter()
            .any(|g| permissions.iter().any(|p| p.eq_ignore_ascii_case(g)))
        {
            Ok(())
        } else {
            Err(graph_errors::directory_denied())
        }
    }

    /// May read `app`: one of [`READ_APPS`], or app-only `Application.ReadWrite.OwnedBy` with
    /// the caller's service principal among the app's owners (Graph's "Get application"
    /// permissions).
    fn may_read(&self, app: &AppObject) -> GraphResult<()> {
        if self.need(READ_APPS).is_ok() {
            return Ok(());
        }
        let owned_by = self.need_owned_by().is_ok();
        let owner = self
            .sp
            .as_ref()
            .is_some_and(|sp| app.owners.iter().any(|o| o.eq_ignore_ascii_case(sp)));
        if owned_by && owner {
            Ok(())
        } else {
            Err(graph_errors::directory_denied())
        }
    }

    /// An app-only caller holding `Application.ReadWrite.OwnedBy`.
    fn need_owned_by(&self) -> GraphResult<()> {
        let held = self
            .granted
            .iter()
            .any(|g| g.eq_ignore_ascii_case("Application.ReadWrite.OwnedBy"));
        if self.oid.is_none() && held {
            Ok(())
        } else {
            Err(graph_errors::directory_denied())
        }
    }

    /// App-only callers act with their roles alone; a user needs one of `roles`.
    fn has_role(&self, roles: &[&str]) -> bool {
        self.oid.is_none()
            || self
                .roles
                .iter()
                .any(|r| roles.iter().any(|x| x.eq_ignore_ascii_case(r)))
    }

    fn need_role(&self, roles: &[&str]) -> GraphResult<()> {
        if self.has_role(roles) {
            Ok(())
        } else {
            Err(graph_errors::directory_denied())
        }
    }

    /// A permission to write applications: one of [`WRITE_APPS`], or app-only
    /// `Application.ReadWrite.OwnedBy` (which [`Actor::may_manage`] limits to owned apps).
    fn need_write_apps(&self) -> GraphResult<()> {
        self.need(WRITE_APPS).or_else(|_| self.need_owned_by())
    }

    /// An admin (app-only: a tenant-wide write permission), or an owner of `app` (the user, or
    /// app-only the caller's service principal).
    fn may_manage(&self, app: &AppObject) -> GraphResult<()> {
        let owns = |id: &Option<String>| {
            id.as_ref()
                .is_some_and(|id| app.owners.iter().any(|o| o.eq_ignore_ascii_case(id)))
        };
        let tenant_wide = match self.oid {
            None => self.need(WRITE_APPS).is_ok(),
            Some(_) => self.has_role(APP_ADMINS),
        };
        if owns(&self.oid) || owns(&self.sp) || tenant_wide {
            Ok(())
        } else {
            Err(graph_errors::directory_denied())
        }
    }
}

/// A key segment: an object ID, or `appId='…'` (`applications(appId='…')`).
enum Key {
    Id(String),
    AppId(String),
}

fn key(segment: &str) -> Key {
    let lower = segment.to_ascii_lowercase();
    if lower.starts_with("appid=") {
        Key::AppId(segment[6..].trim_matches('\'').to_string())
    } else {
        Key::Id(segment.trim_matches('\'').to_string())
    }
}

/// Serves a directory request (`segments` as split by the dispatcher).
pub(crate) fn serve(
    state: &GraphState,
    ctx: &Ctx,
    req: &Req,
    caller: &Caller,
    segments: &[String],
) -> GraphResult<Resp> {
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    let seg = |i: usize| segments.get(i).map(String::as_str).unwrap_or_default();
    let m = &req.method;
    let t = caller.tenant;
    let dir = state.dir();
    let actor = Actor::of(&dir, caller)?;
    let now = ctx.now;
    match (l.as_slice(), m) {
        (["organization"], &Method::GET) => organization(&dir, ctx, caller, &actor),
        (["applications"], &Method::GET) => {
            actor.need(READ_APPS)?;
            let objects = objects(&dir, t)?;
            let items = objects
                .apps
                .iter()
                .filter_map(|a| app_json(&dir, t, a))
                .collect();
            list(ctx, req, "applications", items)
        }
        (["applications"], &Method::POST) => {
            // App-only, Application.ReadWrite.OwnedBy creates apps too, and owns them.
            actor.need_write_apps()?;
            let body = body_object(req)?;
            let created = state
                .directory
                .update(|d| create_app(d, t, &actor, &body, now))?;
            let dir = state.dir();
            let json = app_by_key(&dir, t, &Key::Id(created))
                .and_then(|a| app_json(&dir, t, a))
                .ok_or_else(|| graph_errors::server_error(500))?;
            Ok(entity(ctx, "applications", json, StatusCode::CREATED))
        }
        (["applications", _], &Method::GET) => {
            let app = app_by_key(&dir, t, &key(seg(1)));
            // Without a read permission Graph answers 403 whether the app exists or not.
            match app {
                Some(app) => actor.may_read(app)?,
                None => actor.need(READ_APPS)?,
            }
            let app = app.ok_or_else(|| not_found(seg(1)))?;
            let json = app_json(&dir, t, app).ok_or_else(|| not_found(seg(1)))?;
            Ok(entity(
                ctx,
                "applications",
                select(req, json),
                StatusCode::OK,
            ))
        }
        (["applications", _], &Method::PATCH) => {
            actor.need_write_apps()?;
            let body = body_object(req)?;
            let k = key(seg(1));
            state.directory.update(|d| {
                let app = app_by_key(d, t, &k)
                    .ok_or_else(|| not_found(seg(1)))?
                    .clone();
                actor.may_manage(&app)?;
                update_app(d, t, &app.id, &body, false, now)
            })?;
            Ok(Resp::empty(StatusCode::NO_CONTENT))
        }
        (["applications", _], &Method::DELETE) => {
            actor.need_write_apps()?;
            let k = key(seg(1));
            state.directory.update(|d| {
                let app = app_by_key(d, t, &k)
                    .ok_or_else(|| not_found(seg(1)))?
                    .clone();
                actor.may_manage(&app)?;
                delete_app(d, t, &app);
                Ok::<(), GraphError>(())
            })?;
            Ok(Resp::empty(StatusCode::NO_CONTENT))
        }
        (
            [
                "applications",
                _,
                "addpassword" | "microsoft.graph.addpassword",
            ],
            &Method::POST,
        ) => {
            actor.need_write_apps()?;
            let body = body_object_or_empty(req)?;
            let k = key(seg(1));
            let (meta, value) = state.directory.update(|d| {
                let app = app_by_key(d, t, &k)
                    .ok_or_else(|| not_found(seg(1)))?
                    .clone();
                actor.may_manage(&app)?;
                add_password(d, t, &app, &body, now)
            })?;
            let mut json = password_json(&meta);
            if let Some(obj) = json.as_object_mut() {
                obj.insert("secretText".into(), value.into());
                obj.insert(
                    "@odata.context".into(),
                    format!(
                        "{}/$metadata#microsoft.graph.passwordCredential",
                        ctx.graph_url()
                    )
                    .into(),
                );
            }
            Ok(Resp::ok(json))
        }
        (
            [
                "applications",
                _,
                "removepassword" | "microsoft.graph.removepassword",
            ],
            &Method::POST,
        ) => {
            actor.need_write_apps()?;
            let body = body_object(req)?;
            let key_id = body
                .get("keyId")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid_value("keyId", "PasswordCredential"))?
                .to_string();
            let k = key(seg(1));
            state.directory.update(|d| {
                let app = app_by_key(d, t, &k)
                    .ok_or_else(|| not_found(seg(1)))?
                    .clone();
                actor.may_manage(&app)?;
                remove_password(d, t, &app, &key_id)
            })?;
            Ok(Resp::empty(StatusCode::NO_CONTENT))
        }
        (["serviceprincipals"], &Method::GET) => {
            actor.need(READ_APPS)?;
            let items = all_sps(&dir, t)?;
            list(ctx, req, "servicePrincipals", items)
        }
        (["serviceprincipals"], &Method::POST) => {
            actor.need(WRITE_APPS)?;
            let body = body_object(req)?;
            let id = state
                .directory
                .update(|d| create_sp(d, t, &actor, &body, now))?;
            let dir = state.dir();
            let json =
                sp_by_key(&dir, t, &Key::Id(id)).ok_or_else(|| graph_errors::server_error(500))?;
            Ok(entity(ctx, "servicePrincipals", json, StatusCode::CREATED))
        }
        (["serviceprincipals", _], &Method::GET) => {
            actor.need(READ_APPS)?;
            let json = sp_by_key(&dir, t, &key(seg(1))).ok_or_else(|| not_found(seg(1)))?;
            Ok(entity(
                ctx,
                "servicePrincipals",
                select(req, json),
                StatusCode::OK,
            ))
        }
        (
            [
                "serviceprincipals",
                _,
                which @ ("approleassignedto" | "approleassignments"),
            ],
            &Method::GET,
        ) => {
            actor.need(READ_APPS)?;
            let sp = sp_id(&dir, t, &key(seg(1))).ok_or_else(|| not_found(seg(1)))?;
            let objects = objects(&dir, t)?;
            let to = *which == "approleassignedto";
            let items = objects
                .assignments
                .iter()
                .filter(|a| {
                    if to {
                        a.resource_id == sp
                    } else {
                        a.principal_id == sp
                    }
                })
                .map(|a| assignment_json(&dir, t, a))
                .collect();
            let name = if to {
                "appRoleAssignedTo"
            } else {
                "appRoleAssignments"
            };
            list(
                ctx,
                req,
                &format!("servicePrincipals('{sp}')/{name}"),
                items,
            )
        }
        (
            [
                "serviceprincipals",
                _,
                "approleassignedto" | "approleassignments",
            ],
            &Method::POST,
        ) => {
            actor.need(WRITE_ASSIGNMENTS)?;
            let body = body_object(req)?;
            let k = key(seg(1));
            let via_resource = l[2] == "approleassignedto";
            let assignment = state
                .directory
                .update(|d| assign_role(d, t, &actor, &k, via_resource, &body, now))?;
            let dir = state.dir();
            let json = assignment_json(&dir, t, &assignment);
            let sp = if via_resource {
                &assignment.resource_id
            } else {
                &assignment.principal_id
            };
            Ok(entity(
                ctx,
                &format!("servicePrincipals('{sp}')/{}", segments[2]),
                json,
                StatusCode::CREATED,
            ))
        }
        (
            [
                "serviceprincipals",
                _,
                "approleassignedto" | "approleassignments",
                _,
            ],
            &Method::DELETE,
        ) => {
            actor.need(WRITE_ASSIGNMENTS)?;
            let k = key(seg(1));
            let id = seg(3).to_string();
            state.directory.update(|d| {
                let sp = sp_id(d, t, &k).ok_or_else(|| not_found(seg(1)))?;
                let objects = d.objects.get(t).ok_or_else(graph_errors::token_invalid)?;
                let a = objects
                    .assignments
                    .iter()
                    .find(|a| a.id == id && (a.resource_id == sp || a.principal_id == sp))
                    .cloned()
                    .ok_or_else(|| not_found(&id))?;
                check_assign_rights(d, t, &actor, &a.resource_id)?;
                d.objects[t].assignments.retain(|x| x.id != a.id);
                if let Some(app_id) = client_app_id(d, t, &a.principal_id) {
                    d.sync_consent(t, &app_id);
                }
                Ok::<(), GraphError>(())
            })?;
            Ok(Resp::empty(StatusCode::NO_CONTENT))
        }
        (["oauth2permissiongrants"], &Method::GET) => {
            actor.need(READ_GRANTS)?;
            let objects = objects(&dir, t)?;
            let items = objects.grants.iter().map(grant_json).collect();
            list(ctx, req, "oauth2PermissionGrants", items)
        }
        (["oauth2permissiongrants"], &Method::POST) => {
            actor.need(WRITE_GRANTS)?;
            actor.need_role(APP_ADMINS)?;
            let body = body_object(req)?;
            let grant = state.directory.update(|d| create_grant(d, t, &body))?;
            Ok(entity(
                ctx,
                "oauth2PermissionGrants",
                grant_json(&grant),
                StatusCode::CREATED,
            ))
        }
        (["oauth2permissiongrants", _], &Method::GET) => {
            actor.need(READ_GRANTS)?;
            let objects = objects(&dir, t)?;
            let grant = objects
                .grants
                .iter()
                .find(|g| g.id == seg(1))
                .ok_or_else(|| not_found(seg(1)))?;
            Ok(entity(
                ctx,
                "oauth2PermissionGrants",
                grant_json(grant),
                StatusCode::OK,
            ))
        }
        (["oauth2permissiongrants", _], &Method::PATCH | &Method::DELETE) => {
            actor.need(WRITE_GRANTS)?;
            actor.need_role(APP_ADMINS)?;
            let body = if m == Method::PATCH {
                Some(body_object(req)?)
            } else {
                None
            };
            let id = seg(1).to_string();
            state
                .directory
                .update(|d| change_grant(d, t, &id, body.as_ref()))?;
            Ok(Resp::empty(StatusCode::NO_CONTENT))
        }
        _ if l.len() <= 2 => Err(graph_errors::method_not_allowed(m.as_str())),
        _ => Err(graph_errors::segment_not_found(
            l.last().copied().unwrap_or_default(),
        )),
    }
}

fn objects(dir: &DirectoryData, t: usize) -> GraphResult<&TenantObjects> {
    dir.objects.get(t).ok_or_else(graph_errors::token_invalid)
}

fn tenant(dir: &DirectoryData, t: usize) -> GraphResult<&TenantSeed> {
    dir.tenant(t).ok_or_else(graph_errors::token_invalid)
}

fn body_object(req: &Req) -> GraphResult<Map<String, Value>> {
    if req.body.is_empty() {
        return Err(graph_errors::empty_body());
    }
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(graph_errors::body_read(
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(graph_errors::body_read(format!(
            "Invalid JSON. An unexpected token was found: {e}."
        ))),
    }
}

fn body_object_or_empty(req: &Req) -> GraphResult<Map<String, Value>> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        Ok(Map::new())
    } else {
        body_object(req)
    }
}

fn entity(ctx: &Ctx, set: &str, mut json: Value, status: StatusCode) -> Resp {
    if let Some(obj) = json.as_object_mut() {
        let mut with_context = Map::new();
        with_context.insert(
            "@odata.context".into(),
            format!("{}/$metadata#{set}/$entity", ctx.graph_url()).into(),
        );
        with_context.extend(std::mem::take(obj));
        json = Value::Object(with_context);
    }
    Resp::json(status, json)
}

/// A collection, after `$filter` and `$select`.
fn list(ctx: &Ctx, req: &Req, set: &str, items: Vec<Value>) -> GraphResult<Resp> {
    let filter = req.option("$filter").map(Filter::parse).transpose()?;
    let value: Vec<Value> = items
        .into_iter()
        .filter(|item| filter.as_ref().is_none_or(|f| f.matches(item)))
        .map(|item| select(req, item))
        .collect();
    Ok(Resp::ok(json!({
        "@odata.context": format!("{}/$metadata#{set}", ctx.graph_url()),
        "value": value,
    })))
}

/// `$select`: the named properties (and `id`).
fn select(req: &Req, json: Value) -> Value {
    let Some(wanted) = req.option("$select") else {
        return json;
    };
    let wanted: Vec<&str> = wanted.split(',').map(str::trim).collect();
    match json {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| {
                    k == "id"
                        || k.starts_with('@')
                        || wanted.iter().any(|w| w.eq_ignore_ascii_case(k))
                })
                .collect(),
        ),
        other => other,
    }
}

/// The `$filter` clauses the mock evaluates: `prop eq 'value'` joined by `and`, and
/// `servicePrincipalNames/any(x:x eq 'value')`.
struct Filter {
    clauses: Vec<(String, String)>,
}

impl Filter {
    fn parse(raw: &str) -> GraphResult<Filter> {
        let unsupported = || {
            GraphError::bad_request(
                "Request_UnsupportedQuery",
                format!("Unsupported or invalid query filter clause specified: '{raw}'."),
            )
        };
        let mut clauses = Vec::new();
        let lower = raw.to_ascii_lowercase();
        let mut rest_raw = raw;
        let mut rest_lower = lower.as_str();
        loop {
            let (clause, next) = match rest_lower.find(" and ") {
                Some(i) => (&rest_raw[..i], Some(i + 5)),
                None => (rest_raw, None),
            };
            let clause = clause.trim();
            if let Some(inner) = clause
                .strip_prefix("servicePrincipalNames/any(")
                .and_then(|c| c.strip_suffix(')'))
            {
                let (_, cond) = inner.split_once(':').ok_or_else(unsupported)?;
                let (_, value) = cond.split_once(" eq ").ok_or_else(unsupported)?;
                clauses.push((
                    "servicePrincipalNames".to_string(),
                    value.trim().trim_matches('\'').to_string(),
                ));
            } else {
                let (prop, value) = clause.split_once(" eq ").ok_or_else(unsupported)?;
                let value = value.trim();
                if !(value.starts_with('\'') && value.ends_with('\'') && value.len() >= 2) {
                    return Err(unsupported());
                }
                clauses.push((
                    prop.trim().to_string(),
                    value[1..value.len() - 1].replace("''", "'"),
                ));
            }
            match next {
                Some(i) => {
                    rest_raw = &rest_raw[i..];
                    rest_lower = &rest_lower[i..];
                }
                None => break,
            }
        }
        Ok(Filter { clauses })
    }

    fn matches(&self, item: &Value) -> bool {
        self.clauses
            .iter()
            .all(|(prop, value)| match item.get(prop.as_str()) {
                Some(Value::String(s)) => s.eq_ignore_ascii_case(value),
                Some(Value::Array(items)) => items
                    .iter()
                    .any(|i| i.as_str().is_some_and(|s| s.eq_ignore_ascii_case(value))),
                _ => false,
            })
    }
}

fn organization(
    dir: &DirectoryData,
    ctx: &Ctx,
    caller: &Caller,
    actor: &Actor,
) -> GraphResult<Resp> {
    let allowed: &[&str] = if caller.is_app() {
        &[
            "Organization.Read.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ]
    } else {
        &[
            "User.Read",
            "User.ReadBasic.All",
            "User.Read.All",
            "Organization.Read.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ]
    };
    actor.need(allowed)?;
    let tenant = tenant(dir, caller.tenant)?;
    let label = tenant.domain.split('.').next().unwrap_or_default();
    let mut name: Vec<char> = label.chars().collect();
    if let Some(first) = name.first_mut() {
        *first = first.to_ascii_uppercase();
    }
    let name: String = name.into_iter().collect();
    Ok(Resp::ok(json!({
        "@odata.context": format!("{}/$metadata#organization", ctx.graph_url()),
        "value": [{
            "id": tenant.id,
            "displayName": name,
            "tenantType": "AAD",
            "countryLetterCode": "US",
            "createdDateTime": fmt_instant(crate::directory::objects::SEEDED_AT),
            "verifiedDomains": [{
                "capabilities": "Email, OfficeCommunicationsOnline",
                "isDefault": true,
                "isInitial": true,
                "name": tenant.domain,
                "type": "Managed",
            }],
        }],
    })))
}

fn app_by_key<'d>(dir: &'d DirectoryData, t: usize, key: &Key) -> Option<&'d AppObject> {
    let objects = dir.objects.get(t)?;
    match key {
        Key::Id(id) => objects.app_by_object_id(id),
        Key::AppId(app_id) => objects.app_by_app_id(app_id),
    }
}

fn app_json(dir: &DirectoryData, t: usize, obj: &AppObject) -> Option<Value> {
    let tenant = dir.tenant(t)?;
    let seed = dir.app(t, &obj.app_id)?;
    Some(json!({
        "id": obj.id,
        "appId": obj.app_id,
        "displayName": seed.name,
        "createdDateTime": fmt_instant(obj.created),
        "deletedDateTime": null,
        "description": obj.description,
        "notes": obj.notes,
        "isFallbackPublicClient": obj.fallback_public_client,
        "identifierUris": [],
        "publisherDomain": tenant.domain,
        "signInAudience": obj.sign_in_audience,
        "tags": obj.tags,
        "requiredResourceAccess": obj.required_resource_access,
        "web": {
            "homePageUrl": null,
            "logoutUrl": null,
            "redirectUris": obj.web_redirects,
            "implicitGrantSettings": {"enableAccessTokenIssuance": false, "enableIdTokenIssuance": false},
            "redirectUriSettings": obj.web_redirects.iter().map(|u| json!({"uri": u, "index": null})).collect::<Vec<_>>(),
        },
        "publicClient": {"redirectUris": obj.public_redirects},
        "spa": {"redirectUris": obj.spa_redirects},
        "passwordCredentials": obj.passwords.iter().map(password_json).collect::<Vec<_>>(),
        "keyCredentials": obj.keys.iter().map(key_json).collect::<Vec<_>>(),
        "api": {"oauth2PermissionScopes": [], "preAuthorizedApplications": [], "requestedAccessTokenVersion": null},
        "appRoles": [],
        "info": {},
    }))
}

fn password_json(p: &PasswordMeta) -> Value {
    json!({
        "customKeyIdentifier": null,
        "displayName": p.display_name,
        "endDateTime": fmt_instant(p.end),
        "hint": p.hint,
        "keyId": p.key_id,
        "secretText": null,
        "startDateTime": fmt_instant(p.start),
    })
}

fn key_json(k: &KeyMeta) -> Value {
    json!({
        "customKeyIdentifier": k.thumbprint,
        "displayName": k.display_name,
        "endDateTime": fmt_instant(k.end),
        "key": null,
        "keyId": k.key_id,
        "startDateTime": fmt_instant(k.start),
        "type": "AsymmetricX509Cert",
        "usage": "Verify",
    })
}

fn resource_sp_json(tenant: &TenantSeed, r: &Resource) -> Value {
    json!({
        "id": resource_sp_id(&tenant.id, r.app_id),
        "appId": r.app_id,
        "displayName": r.display_name,
        "appDisplayName": r.display_name,
        "accountEnabled": true,
        "appOwnerOrganizationId": MICROSOFT_TENANT,
        "appRoleAssignmentRequired": false,
        "servicePrincipalType": "Application",
        "signInAudience": "AzureADMultipleOrgs",
        "servicePrincipalNames": [r.app_id, r.uri, format!("{}/", r.uri)],
        "tags": [],
        "replyUrls": [],
        "appRoles": r.app_roles.iter().map(|p| json!({
            "allowedMemberTypes": ["Application"],
            "description": format!("Allows the app to {} without a signed-in user.", p.display.to_lowercase()),
            "displayName": p.display,
            "id": p.id,
            "isEnabled": true,
            "origin": "Application",
            "value": p.value,
        })).collect::<Vec<_>>(),
        "oauth2PermissionScopes": r.scopes.iter().map(|s| json!({
            "adminConsentDescription": format!("Allows the app to {} on behalf of the signed-in user.", s.permission.display.to_lowercase()),
            "adminConsentDisplayName": s.permission.display,
            "id": s.permission.id,
            "isEnabled": true,
            "type": if s.admin { "Admin" } else { "User" },
            "userConsentDescription": s.permission.display,
            "userConsentDisplayName": s.permission.display,
            "value": s.permission.value,
        })).collect::<Vec<_>>(),
    })
}

fn client_sp_json(dir: &DirectoryData, t: usize, sp: &SpObject) -> Option<Value> {
    let tenant = dir.tenant(t)?;
    let app = dir.app(t, &sp.app_id)?;
    let owner = if is_first_party(&sp.app_id) {
        MICROSOFT_TENANT
    } else {
        tenant.id.as_str()
    };
    Some(json!({
        "id": sp.id,
        "appId": sp.app_id,
        "displayName": app.name,
        "appDisplayName": app.name,
        "accountEnabled": true,
        "appOwnerOrganizationId": owner,
        "appRoleAssignmentRequired": false,
        "createdDateTime": fmt_instant(sp.created),
        "servicePrincipalType": "Application",
        "signInAudience": "AzureADMyOrg",
        "servicePrincipalNames": [sp.app_id],
        "replyUrls": app.redirect_uris,
        "tags": [],
        "appRoles": [],
        "oauth2PermissionScopes": [],
    }))
}

fn all_sps(dir: &DirectoryData, t: usize) -> GraphResult<Vec<Value>> {
    let tenant = tenant(dir, t)?;
    let objects = objects(dir, t)?;
    Ok(RESOURCES
        .iter()
        .map(|r| resource_sp_json(tenant, r))
        .chain(
            objects
                .sps
                .iter()
                .filter_map(|sp| client_sp_json(dir, t, sp)),
        )
        .collect())
}

fn sp_by_key(dir: &DirectoryData, t: usize, key: &Key) -> Option<Value> {
    let tenant = dir.tenant(t)?;
    let objects = dir.objects.get(t)?;
    let resource = RESOURCES.iter().find(|r| match key {
        Key::Id(id) => resource_sp_id(&tenant.id, r.app_id).eq_ignore_ascii_case(id),
        Key::AppId(app_id) => r.app_id.eq_ignore_ascii_case(app_id),
    });
    if let Some(r) = resource {
        return Some(resource_sp_json(tenant, r));
    }
    let sp = match key {
        Key::Id(id) => objects.sp_by_id(id),
        Key::AppId(app_id) => objects.sp_by_app_id(app_id),
    }?;
    client_sp_json(dir, t, sp)
}

/// The object ID of a service principal (resource or client) named by `key`.
fn sp_id(dir: &DirectoryData, t: usize, key: &Key) -> Option<String> {
    sp_by_key(dir, t, key).and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string))
}

/// The resource behind a resource service principal's object ID.
fn resource_of(dir: &DirectoryData, t: usize, sp_id: &str) -> Option<&'static Resource> {
    let tenant = dir.tenant(t)?;
    RESOURCES
        .iter()
        .copied()
        .find(|r| resource_sp_id(&tenant.id, r.app_id).eq_ignore_ascii_case(sp_id))
}

fn client_app_id(dir: &DirectoryData, t: usize, sp_id: &str) -> Option<String> {
    dir.objects
        .get(t)?
        .sp_by_id(sp_id)
        .map(|s| s.app_id.clone())
}

fn assignment_json(dir: &DirectoryData, t: usize, a: &Assignment) -> Value {
    let principal = client_app_id(dir, t, &a.principal_id)
        .and_then(|app_id| dir.app(t, &app_id).map(|app| app.name.clone()));
    let resource = resource_of(dir, t, &a.resource_id).map(|r| r.display_name);
    json!({
        "id": a.id,
        "deletedDateTime": null,
        "appRoleId": a.app_role_id,
        "createdDateTime": fmt_instant(a.created),
        "principalDisplayName": principal,
        "principalId": a.principal_id,
        "principalType": "ServicePrincipal",
        "resourceDisplayName": resource,
        "resourceId": a.resource_id,
    })
}

fn grant_json(g: &Grant) -> Value {
    json!({
        "id": g.id,
        "clientId": g.client_id,
        "consentType": if g.principal_id.is_some() { "Principal" } else { "AllPrincipals" },
        "principalId": g.principal_id,
        "resourceId": g.resource_id,
        "scope": g.scope,
    })
}

fn new_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn create_app(
    d: &mut DirectoryData,
    t: usize,
    actor: &Actor,
    body: &Map<String, Value>,
    now: OffsetDateTime,
) -> GraphResult<String> {
    let name = body
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid_value("displayName", "Application"))?;
    let app_id = new_guid();
    let object = AppObject {
        id: new_guid(),
        app_id: app_id.clone(),
        created: now,
        sign_in_audience: "AzureADMyOrg".into(),
        web_redirects: Vec::new(),
        public_redirects: Vec::new(),
        spa_redirects: Vec::new(),
        fallback_public_client: None,
        required_resource_access: Value::Array(Vec::new()),
        passwords: Vec::new(),
        keys: Vec::new(),
        // The signed-in user, or app-only the calling app's service principal.
        owners: actor.oid.iter().chain(actor.sp.iter()).cloned().collect(),
        notes: None,
        description: None,
        tags: Vec::new(),
    };
    let seed = AppSeed {
        client_id: app_id,
        name: name.to_string(),
        public_client: false,
        public_client_flows: false,
        redirect_uris: Vec::new(),
        secrets: Vec::new(),
        certificates: Vec::new(),
        delegated_permissions: Default::default(),
        application_permissions: Default::default(),
        service_principal_id: None,
        mailbox_scope: None,
    };
    // Checked on copies first, so a refused request changes nothing.
    let id = object.id.clone();
    let mut trial = d.clone();
    trial
        .tenants
        .get_mut(t)
        .ok_or_else(graph_errors::token_invalid)?
        .apps
        .push(seed);
    trial.objects[t].apps.push(object);
    update_app(&mut trial, t, &id, body, true, now)?;
    *d = trial;
    Ok(id)
}

/// Applies the properties of a POST or PATCH body to an app (its object and its seed).
fn update_app(
    d: &mut DirectoryData,
    t: usize,
    object_id: &str,
    body: &Map<String, Value>,
    creating: bool,
    now: OffsetDateTime,
) -> GraphResult<()> {
    let objects = d
        .objects
        .get_mut(t)
        .ok_or_else(graph_errors::token_invalid)?;
    let mut obj = objects
        .app_by_object_id(object_id)
        .cloned()
        .ok_or_else(|| not_found(object_id))?;
    let tenant = d
        .tenants
        .get_mut(t)
        .ok_or_else(graph_errors::token_invalid)?;
    let mut seed = tenant
        .apps
        .iter()
        .find(|a| a.client_id.eq_ignore_ascii_case(&obj.app_id))
        .cloned()
        .ok_or_else(|| not_found(object_id))?;
    for (prop, value) in body {
        match prop.as_str() {
            "displayName" => {
                let name = value
                    .as_str()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| invalid_value("displayName", "Application"))?;
                seed.name = name.to_string();
            }
            "signInAudience" => {
                let audience = value
                    .as_str()
                    .filter(|a| {
                        [
                            "AzureADMyOrg",
                            "AzureADMultipleOrgs",
                            "AzureADandPersonalMicrosoftAccount",
                            "PersonalMicrosoftAccount",
                        ]
                        .contains(a)
                    })
                    .ok_or_else(|| invalid_value("signInAudience", "Application"))?;
                obj.sign_in_audience = audience.to_string();
            }
            "isFallbackPublicClient" => {
                let v = match value {
                    Value::Null => None,
                    Value::Bool(b) => Some(*b),
                    _ => return Err(invalid_value("isFallbackPublicClient", "Application")),
                };
                obj.fallback_public_client = v;
                seed.public_client_flows = v.unwrap_or(false);
            }
            "web" | "spa" | "publicClient" => {
                let Some(platform) = value.as_object() else {
                    return Err(invalid_value(prop, "Application"));
                };
                for (k, v) in platform {
                    match k.as_str() {
                        "redirectUris" => {
                            let uris = redirect_uris(prop, v)?;
                            match prop.as_str() {
                                "web" => obj.web_redirects = uris,
                                "spa" => obj.spa_redirects = uris,
                                _ => obj.public_redirects = uris,
                            }
                        }
                        "homePageUrl"
                        | "logoutUrl"
                        | "implicitGrantSettings"
                        | "redirectUriSettings"
                        | "@odata.type"
                            if prop == "web" => {}
                        _ => {
                            return Err(bad(format!("Invalid property '{k}' of '{prop}'.")));
                        }
                    }
                }
            }
            "requiredResourceAccess" => {
                obj.required_resource_access = required_resource_access(value)?;
            }
            "keyCredentials" => {
                let (keys, pems) = key_credentials(&obj, value, now)?;
                obj.keys = keys;
                seed.certificates = pems;
            }
            "passwordCredentials" => {
                if !value.as_array().is_some_and(Vec::is_empty) {
                    return Err(bad(
                        "Property 'passwordCredentials' cannot be set here; use addPassword.",
                    ));
                }
            }
            "notes" | "description" => {
                let v = match value {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    _ => return Err(invalid_value(prop, "Application")),
                };
                if prop == "notes" {
                    obj.notes = v;
                } else {
                    obj.description = v;
                }
            }
            "tags" => {
                obj.tags = value
                    .as_array()
                    .and_then(|a| a.iter().map(|t| t.as_str().map(str::to_string)).collect())
                    .ok_or_else(|| invalid_value("tags", "Application"))?;
            }
            p if IGNORED_APP_PROPS.contains(&p) => {}
            "id" | "appId" | "createdDateTime" | "publisherDomain" if !creating => {
                return Err(bad(format!(
                    "Property '{prop}' is read-only and cannot be set."
                )));
            }
            other => {
                return Err(bad(format!("Invalid property '{other}'.")));
            }
        }
    }
    let mut all: Vec<String> = Vec::new();
    for uri in obj
        .web_redirects
        .iter()
        .chain(&obj.public_redirects)
        .chain(&obj.spa_redirects)
    {
        if !all.contains(uri) {
            all.push(uri.clone());
        }
    }
    seed.redirect_uris = all;
    let client_id = seed.client_id.clone();
    if let Some(slot) = tenant
        .apps
        .iter_mut()
        .find(|a| a.client_id.eq_ignore_ascii_case(&client_id))
    {
        *slot = seed;
    }
    if let Some(slot) = d.objects[t].apps.iter_mut().find(|a| a.id == obj.id) {
        *slot = obj;
    }
    d.reload_certs(&client_id);
    Ok(())
}

fn redirect_uris(platform: &str, value: &Value) -> GraphResult<Vec<String>> {
    let property = format!("{platform}.redirectUris");
    let invalid = || invalid_value(&property, "Application");
    let items = value.as_array().ok_or_else(invalid)?;
    if items.len() > 256 {
        return Err(invalid());
    }
    let mut uris = Vec::new();
    for item in items {
        let uri = item.as_str().ok_or_else(invalid)?;
        let parsed = url::Url::parse(uri).map_err(|_| invalid())?;
        if platform != "publicClient" {
            let loopback = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
            let ok = parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback);
            if !ok || parsed.fragment().is_some() {
                return Err(invalid());
            }
        }
        if !uris.iter().any(|u: &String| u == uri) {
            uris.push(uri.to_string());
        }
    }
    Ok(uris)
}

fn is_guid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

fn required_resource_access(value: &Value) -> GraphResult<Value> {
    let invalid = || invalid_value("requiredResourceAccess", "Application");
    let items = value.as_array().ok_or_else(invalid)?;
    let mut out = Vec::new();
    for item in items {
        let resource = item
            .get("resourceAppId")
            .and_then(Value::as_str)
            .filter(|s| is_guid(s))
            .ok_or_else(invalid)?;
        let accesses = item
            .get("resourceAccess")
            .and_then(Value::as_array)
            .ok_or_else(invalid)?;
        let mut list = Vec::new();
        for a in accesses {
            let id = a
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| is_guid(s))
                .ok_or_else(invalid)?;
            let kind = a
                .get("type")
                .and_then(Value::as_str)
                .filter(|k| *k == "Scope" || *k == "Role")
                .ok_or_else(invalid)?;
            list.push(json!({"id": id, "type": kind}));
        }
        out.push(json!({"resourceAppId": resource, "resourceAccess": list}));
    }
    Ok(Value::Array(out))
}

/// `keyCredentials` as PATCHed: the whole new collection; an existing certificate may be kept
/// by its `keyId` without its `key`.
fn key_credentials(
    obj: &AppObject,
    value: &Value,
    now: OffsetDateTime,
) -> GraphResult<(Vec<KeyMeta>, Vec<String>)> {
    let invalid = || invalid_value("keyCredentials", "Application");
    let items = value.as_array().ok_or_else(invalid)?;
    let mut keys = Vec::new();
    for item in items {
        let key_id = item.get("keyId").and_then(Value::as_str);
        let key = item.get("key").and_then(Value::as_str);
        let display_name = item
            .get("displayName")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let (Some(id), None) = (key_id, key) {
            let existing = obj
                .keys
                .iter()
                .find(|k| k.key_id.eq_ignore_ascii_case(id))
                .ok_or_else(invalid)?;
            keys.push(existing.clone());
            continue;
        }
        let kind = item.get("type").and_then(Value::as_str).unwrap_or_default();
        let usage = item
            .get("usage")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind != "AsymmetricX509Cert" || usage != "Verify" {
            return Err(bad(
                "The mock accepts only keyCredentials of type 'AsymmetricX509Cert' with usage 'Verify'.",
            ));
        }
        let pem = der_b64_to_pem(key.ok_or_else(invalid)?);
        AppCert::from_pem(&pem)
            .map_err(|e| bad(format!("Key credential's key is invalid: {e}.")))?;
        let (thumbprint, not_before, not_after) =
            cert_facts(&pem).map_err(|e| bad(format!("Key credential's key is invalid: {e}.")))?;
        let start = item
            .get("startDateTime")
            .and_then(Value::as_str)
            .and_then(parse_instant)
            .unwrap_or(not_before);
        let end = item
            .get("endDateTime")
            .and_then(Value::as_str)
            .and_then(parse_instant)
            .unwrap_or(not_after);
        if end <= start || end < now {
            return Err(bad(
                "Key credential end date is invalid: it must be after its start and in the future.",
            ));
        }
        if keys.iter().any(|k: &KeyMeta| k.thumbprint == thumbprint) {
            return Err(bad("Key credential with this thumbprint already exists."));
        }
        keys.push(KeyMeta {
            key_id: key_id
                .filter(|k| is_guid(k))
                .map_or_else(new_guid, str::to_string),
            display_name,
            thumbprint,
            start,
            end,
            pem,
        });
    }
    let pems = keys.iter().map(|k| k.pem.clone()).collect();
    Ok((keys, pems))
}

fn delete_app(d: &mut DirectoryData, t: usize, app: &AppObject) {
    let sp = d.objects[t].sp_by_app_id(&app.app_id).map(|s| s.id.clone());
    let objects = &mut d.objects[t];
    objects.apps.retain(|a| a.id != app.id);
    if let Some(sp) = sp {
        objects.sps.retain(|s| s.id != sp);
        objects.grants.retain(|g| g.client_id != sp);
        objects.assignments.retain(|a| a.principal_id != sp);
    }
    if let Some(tenant) = d.tenants.get_mut(t) {
        tenant
            .apps
            .retain(|a| !a.client_id.eq_ignore_ascii_case(&app.app_id));
    }
    d.reload_certs(&app.app_id);
}

/// A secret value like Entra's: 40 characters, the 4th to 6th `8Q~`.
fn secret_value() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.~";
    let mut bytes = [0u8; 37];
    if getrandom::fill(&mut bytes).is_err() {
        let fallback = uuid::Uuid::new_v4();
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = fallback.as_bytes()[i % 16].wrapping_add(i as u8);
        }
    }
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[3..].iter().collect();
    format!("{head}8Q~{tail}")
}

fn add_password(
    d: &mut DirectoryData,
    t: usize,
    app: &AppObject,
    body: &Map<String, Value>,
    now: OffsetDateTime,
) -> GraphResult<(PasswordMeta, String)> {
    let credential = match body.get("passwordCredential") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => return Err(invalid_value("passwordCredential", "Application")),
    };
    for k in credential.keys() {
        if !["displayName", "endDateTime", "startDateTime", "@odata.type"].contains(&k.as_str()) {
            return Err(bad(format!("Invalid property '{k}'.")));
        }
    }
    let instant = |name: &str| -> GraphResult<Option<OffsetDateTime>> {
        match credential.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => parse_instant(s)
                .map(Some)
                .ok_or_else(|| invalid_value(name, "PasswordCredential")),
            Some(_) => Err(invalid_value(name, "PasswordCredential")),
        }
    };
    let start = instant("startDateTime")?.unwrap_or(now);
    let end = match instant("endDateTime")? {
        Some(end) => end,
        None => start
            .checked_add(time::Duration::days(730))
            .ok_or_else(|| invalid_value("endDateTime", "PasswordCredential"))?,
    };
    if end <= start {
        return Err(invalid_value("endDateTime", "PasswordCredential"));
    }
    let value = secret_value();
    let meta = PasswordMeta {
        key_id: new_guid(),
        display_name: credential
            .get("displayName")
            .and_then(Value::as_str)
            .map(str::to_string),
        hint: value.chars().take(3).collect(),
        start,
        end,
    };
    if let Some(obj) = d.objects[t].apps.iter_mut().find(|a| a.id == app.id) {
        obj.passwords.push(meta.clone());
    }
    let seed = d
        .tenants
        .get_mut(t)
        .and_then(|x| {
            x.apps
                .iter_mut()
                .find(|a| a.client_id.eq_ignore_ascii_case(&app.app_id))
        })
        .ok_or_else(|| not_found(&app.id))?;
    seed.secrets.push(SecretSeed {
        id: meta.key_id.clone(),
        value: value.clone(),
        expires: end,
    });
    Ok((meta, value))
}

fn remove_password(
    d: &mut DirectoryData,
    t: usize,
    app: &AppObject,
    key_id: &str,
) -> GraphResult<()> {
    if !app
        .passwords
        .iter()
        .any(|p| p.key_id.eq_ignore_ascii_case(key_id))
    {
        return Err(bad(format!(
            "No password credential with keyId '{key_id}' exists on the application."
        )));
    }
    if let Some(obj) = d.objects[t].apps.iter_mut().find(|a| a.id == app.id) {
        obj.passwords
            .retain(|p| !p.key_id.eq_ignore_ascii_case(key_id));
    }
    if let Some(seed) = d.tenants.get_mut(t).and_then(|x| {
        x.apps
            .iter_mut()
            .find(|a| a.client_id.eq_ignore_ascii_case(&app.app_id))
    }) {
        seed.secrets.retain(|s| !s.id.eq_ignore_ascii_case(key_id));
    }
    Ok(())
}

fn create_sp(
    d: &mut DirectoryData,
    t: usize,
    actor: &Actor,
    body: &Map<String, Value>,
    now: OffsetDateTime,
) -> GraphResult<String> {
    for k in body.keys() {
        if ![
            "appId",
            "accountEnabled",
            "appRoleAssignmentRequired",
            "tags",
            "notes",
            "@odata.type",
        ]
        .contains(&k.as_str())
        {
            return Err(bad(format!("Invalid property '{k}'.")));
        }
    }
    let app_id = body
        .get("appId")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_value("appId", "ServicePrincipal"))?
        .to_string();
    let objects = d.objects.get(t).ok_or_else(graph_errors::token_invalid)?;
    if resources::resource(&app_id).is_some() || objects.sp_by_app_id(&app_id).is_some() {
        return Err(conflict(
            "Another object with the same value for property servicePrincipalNames already exists.",
        ));
    }
    let app = objects.app_by_app_id(&app_id).cloned().ok_or_else(|| {
        bad(format!(
            "The appId '{app_id}' of the service principal does not reference a valid application object."
        ))
    })?;
    actor.may_manage(&app)?;
    let id = new_guid();
    d.objects[t].sps.push(SpObject {
        id: id.clone(),
        app_id: app.app_id.clone(),
        created: now,
    });
    if let Some(seed) = d.tenants.get_mut(t).and_then(|x| {
        x.apps
            .iter_mut()
            .find(|a| a.client_id.eq_ignore_ascii_case(&app_id))
    }) {
        seed.service_principal_id = Some(id.clone());
    }
    Ok(id)
}

/// Granting an app role of `resource_id`: Microsoft Graph's need a Global Administrator or a
/// Privileged Role Administrator; other APIs' an application administrator too.
fn check_assign_rights(
    d: &DirectoryData,
    t: usize,
    actor: &Actor,
    resource_id: &str,
) -> GraphResult<()> {
    let graph = resource_of(d, t, resource_id)
        .is_some_and(|r| r.app_id == resources::MICROSOFT_GRAPH.app_id);
    actor.need_role(if graph {
        GRAPH_ROLE_GRANTERS
    } else {
        APP_ADMINS
    })
}

fn assign_role(
    d: &mut DirectoryData,
    t: usize,
    actor: &Actor,
    path: &Key,
    via_resource: bool,
    body: &Map<String, Value>,
    now: OffsetDateTime,
) -> GraphResult<Assignment> {
    let field = |name: &str| -> GraphResult<String> {
        body.get(name)
            .and_then(Value::as_str)
            .filter(|s| is_guid(s))
            .map(str::to_string)
            .ok_or_else(|| invalid_value(name, "AppRoleAssignment"))
    };
    for k in body.keys() {
        if !["principalId", "resourceId", "appRoleId", "@odata.type"].contains(&k.as_str()) {
            return Err(bad(format!("Invalid property '{k}'.")));
        }
    }
    let (principal_id, resource_id, app_role_id) = (
        field("principalId")?,
        field("resourceId")?,
        field("appRoleId")?,
    );
    let path_id = sp_id(d, t, path).ok_or_else(|| {
        not_found(match path {
            Key::Id(id) | Key::AppId(id) => id,
        })
    })?;
    let named = if via_resource {
        &resource_id
    } else {
        &principal_id
    };
    if !named.eq_ignore_ascii_case(&path_id) {
        return Err(bad(format!(
            "The {} in the body must be the service principal of the request URL.",
            if via_resource {
                "resourceId"
            } else {
                "principalId"
            }
        )));
    }
    let resource = resource_of(d, t, &resource_id).ok_or_else(|| not_found(&resource_id))?;
    let client = client_app_id(d, t, &principal_id).ok_or_else(|| not_found(&principal_id))?;
    let role = resource.role_by_id(&app_role_id).ok_or_else(|| {
        bad(format!(
            "Permission being assigned was not found on application '{}'.",
            resource.app_id
        ))
    })?;
    check_assign_rights(d, t, actor, &resource_id)?;
    let resource_id = resource_sp_id(&d.tenants[t].id, resource.app_id);
    let principal_id = d.objects[t]
        .sp_by_app_id(&client)
        .map(|s| s.id.clone())
        .unwrap_or(principal_id);
    if d.objects[t].assignments.iter().any(|a| {
        a.principal_id == principal_id
            && a.resource_id == resource_id
            && a.app_role_id.eq_ignore_ascii_case(role.id)
    }) {
        return Err(bad(
            "Permission being assigned already exists on the object.",
        ));
    }
    let assignment = Assignment {
        id: opaque_id(&format!("assignment:{}", new_guid())),
        principal_id,
        resource_id,
        app_role_id: role.id.to_string(),
        value: role.value.to_string(),
        created: now,
    };
    d.objects[t].assignments.push(assignment.clone());
    d.sync_consent(t, &client);
    Ok(assignment)
}

/// Scope values of `resource`, checked.
fn checked_scope(resource: &Resource, scope: &str) -> GraphResult<String> {
    let mut out: Vec<&str> = Vec::new();
    for s in scope.split_whitespace() {
        let known = resource
            .scope_by_value(s)
            .ok_or_else(|| invalid_value("scope", "OAuth2PermissionGrant"))?;
        if !out.contains(&known.permission.value) {
            out.push(known.permission.value);
        }
    }
    Ok(out.join(" "))
}

fn create_grant(d: &mut DirectoryData, t: usize, body: &Map<String, Value>) -> GraphResult<Grant> {
    for k in body.keys() {
        if ![
            "clientId",
            "consentType",
            "principalId",
            "resourceId",
            "scope",
            "expiryTime",
            "startTime",
            "@odata.type",
        ]
        .contains(&k.as_str())
        {
            return Err(bad(format!("Invalid property '{k}'.")));
        }
    }
    let text = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_string);
    let client_id =
        text("clientId").ok_or_else(|| invalid_value("clientId", "OAuth2PermissionGrant"))?;
    let resource_id =
        text("resourceId").ok_or_else(|| invalid_value("resourceId", "OAuth2PermissionGrant"))?;
    let client_app = client_app_id(d, t, &client_id).ok_or_else(|| not_found(&client_id))?;
    let resource = resource_of(d, t, &resource_id).ok_or_else(|| not_found(&resource_id))?;
    let principal_id = match text("consentType").as_deref() {
        Some("AllPrincipals") => {
            if !matches!(body.get("principalId"), None | Some(Value::Null)) {
                return Err(invalid_value("principalId", "OAuth2PermissionGrant"));
            }
            None
        }
        Some("Principal") => {
            let p = text("principalId")
                .ok_or_else(|| invalid_value("principalId", "OAuth2PermissionGrant"))?;
            if d.user_by_oid(t, &p).is_none() {
                return Err(not_found(&p));
            }
            Some(p)
        }
        _ => return Err(invalid_value("consentType", "OAuth2PermissionGrant")),
    };
    let scope = checked_scope(resource, &text("scope").unwrap_or_default())?;
    let objects = &d.objects[t];
    let client_sp = objects
        .sp_by_app_id(&client_app)
        .map(|s| s.id.clone())
        .unwrap_or(client_id);
    let resource_sp = resource_sp_id(&d.tenants[t].id, resource.app_id);
    if objects.grants.iter().any(|g| {
        g.client_id == client_sp
            && g.resource_id == resource_sp
            && g.principal_id.as_deref().map(str::to_ascii_lowercase)
                == principal_id.as_deref().map(str::to_ascii_lowercase)
    }) {
        return Err(conflict("Permission entry already exists."));
    }
    let grant = Grant {
        id: opaque_id(&format!("grant:{}", new_guid())),
        client_id: client_sp,
        principal_id,
        resource_id: resource_sp,
        scope,
    };
    d.objects[t].grants.push(grant.clone());
    d.sync_consent(t, &client_app);
    Ok(grant)
}

fn change_grant(
    d: &mut DirectoryData,
    t: usize,
    id: &str,
    body: Option<&Map<String, Value>>,
) -> GraphResult<()> {
    let grant = d
        .objects
        .get(t)
        .and_then(|o| o.grants.iter().find(|g| g.id == id))
        .cloned()
        .ok_or_else(|| not_found(id))?;
    let client_app = client_app_id(d, t, &grant.client_id);
    match body {
        Some(body) => {
            for k in body.keys() {
                if !["scope", "expiryTime", "startTime", "@odata.type"].contains(&k.as_str()) {
                    return Err(bad(format!(
                        "Property '{k}' of an oauth2PermissionGrant cannot be changed."
                    )));
                }
            }
            let resource = resource_of(d, t, &grant.resource_id).ok_or_else(|| not_found(id))?;
            if let Some(scope) = body.get("scope") {
                let scope = checked_scope(
                    resource,
                    scope
                        .as_str()
                        .ok_or_else(|| invalid_value("scope", "OAuth2PermissionGrant"))?,
                )?;
                if let Some(g) = d.objects[t].grants.iter_mut().find(|g| g.id == id) {
                    g.scope = scope;
                }
            }
        }
        None => d.objects[t].grants.retain(|g| g.id != id),
    }
    if let Some(app) = client_app {
        d.sync_consent(t, &app);
    }
    Ok(())
}
