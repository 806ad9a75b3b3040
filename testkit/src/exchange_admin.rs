//! Exchange Online's admin API as the ExchangeOnlineManagement v3 module calls it:
//! `POST /adminapi/beta/{tenant}/InvokeCommand` with
//! `{"CmdletInput":{"CmdletName":"…","Parameters":{…}}}` and a delegated bearer token for
//! `https://outlook.office365.com` carrying `Exchange.Manage` or `Exchange.ManageV2`, the
//! signed-in user an Exchange Administrator or Global Administrator. Answers
//! `{"@odata.context":…,"value":[…]}`; errors are the admin API's JSON error with the cmdlet's
//! exception.
//!
//! The cmdlets that app-only access needs, written into the directory the IMAP, POP, SMTP, EWS
//! and Graph mocks read: `New-/Get-/Remove-ServicePrincipal`, `Add-/Get-MailboxPermission`,
//! `New-/Get-ManagementScope`, `New-/Get-ManagementRoleAssignment` (RBAC for Applications,
//! reflected in the app's application access policy, `mailbox_scope`).

use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use jsonwebtoken::DecodingKey;
use serde_json::{Map, Value, json};

use crate::clock::Clock;
use crate::directory::objects::{ManagementScope, RoleAssignment};
use crate::directory::{
    Directory, DirectoryData, ExchangeServicePrincipalSeed, MailboxPermissionSeed, MailboxRight,
};
use crate::exchange_token;

/// The roles of RBAC for Applications the mock knows.
const APPLICATION_ROLES: &[&str] = &[
    "Application Mail.Read",
    "Application Mail.ReadBasic",
    "Application Mail.ReadWrite",
    "Application Mail.Send",
    "Application MailboxSettings.Read",
    "Application MailboxSettings.ReadWrite",
    "Application Calendars.Read",
    "Application Calendars.ReadWrite",
    "Application Contacts.Read",
    "Application Contacts.ReadWrite",
    "Application Mail Full Access",
    "Application Exchange Full Access",
    "Application EWS.AccessAsApp",
];

/// The shared state of the admin API. Cloning shares it.
#[derive(Clone)]
pub(crate) struct ExchangeAdminState {
    directory: Directory,
    clock: Clock,
    decoding: Arc<DecodingKey>,
    base_url: Arc<Mutex<String>>,
}

impl std::fmt::Debug for ExchangeAdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeAdminState").finish_non_exhaustive()
    }
}

impl ExchangeAdminState {
    pub(crate) fn new(directory: Directory, clock: Clock, token_key: DecodingKey) -> Self {
        Self {
            directory,
            clock,
            decoding: Arc::new(token_key),
            base_url: Arc::new(Mutex::new(String::new())),
        }
    }

    pub(crate) fn set_base_url(&self, base_url: &str) {
        *self.base_url.lock().unwrap_or_else(PoisonError::into_inner) =
            base_url.trim_end_matches('/').to_string();
    }

    fn base_url(&self) -> String {
        self.base_url
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The admin API's routes.
pub(crate) fn router(state: ExchangeAdminState) -> Router {
    Router::new()
        .route("/adminapi/beta/{tenant}/InvokeCommand", post(invoke))
        .route("/adminapi/beta/{tenant}/invokecommand", post(invoke))
        .with_state(state)
}

/// A failed cmdlet or request.
struct AdminError {
    status: StatusCode,
    code: &'static str,
    exception: &'static str,
    message: String,
}

impl AdminError {
    fn cmdlet(exception: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "BadRequest",
            exception,
            message: message.into(),
        }
    }

    fn not_found(identity: &str) -> Self {
        Self::cmdlet(
            "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
            format!(
                "The operation couldn't be performed because object '{identity}' couldn't be found on 'mock.outlook.com'."
            ),
        )
    }

    fn parameter(message: impl Into<String>) -> Self {
        Self::cmdlet(
            "System.Management.Automation.ParameterBindingException",
            message,
        )
    }

    fn unauthorized(message: &str) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "UnAuthorized",
            exception: "System.UnauthorizedAccessException",
            message: message.into(),
        }
    }

    fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            code: "Forbidden",
            exception: "System.UnauthorizedAccessException",
            message: message.into(),
        }
    }

    fn into_response(self) -> Response {
        let context = format!("|{}|{}", self.exception, self.message);
        let body = json!({
            "error": {
                "code": self.code,
                "message": context,
                "details": [{"code": "Context", "target": "", "message": format!("Ex6F9304{context}")}],
                "innererror": {
                    "message": self.message,
                    "type": "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
                    "stacktrace": "",
                    "internalexception": {"message": self.message, "type": self.exception, "stacktrace": ""},
                },
            },
            "adminapi.warnings@odata.type": "#Collection(String)",
            "@adminapi.warnings": [],
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED
            && let Ok(v) = "Bearer client_id=\"00000002-0000-0ff1-ce00-000000000000\", trusted_issuers=\"00000001-0000-0000-c000-000000000000@*\", token_types=\"app_asserted_user_v1 service_asserted_app_v1\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\"".parse()
        {
            response.headers_mut().insert("WWW-Authenticate", v);
        }
        response
    }
}

async fn invoke(
    State(state): State<ExchangeAdminState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match run(&state, &tenant, &headers, &body) {
        Ok(value) => axum::Json(json!({
            "@odata.context": format!(
                "{}/adminapi/beta/{tenant}/$metadata#Collection(Exchange.GenericHashTable)",
                state.base_url()
            ),
            "adminapi.warnings@odata.type": "#Collection(String)",
            "@adminapi.warnings": [],
            "value": value,
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

fn run(
    state: &ExchangeAdminState,
    tenant_segment: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<Value>, AdminError> {
    let t = authorize(state, tenant_segment, headers)?;
    let request: Value = serde_json::from_slice(body)
        .map_err(|e| AdminError::parameter(format!("The request body is not JSON: {e}.")))?;
    let input = request
        .get("CmdletInput")
        .and_then(Value::as_object)
        .ok_or_else(|| AdminError::parameter("The request body has no 'CmdletInput'."))?;
    let name = input
        .get("CmdletName")
        .and_then(Value::as_str)
        .ok_or_else(|| AdminError::parameter("'CmdletInput' has no 'CmdletName'."))?;
    let empty = Map::new();
    let params = Params(
        input
            .get("Parameters")
            .and_then(Value::as_object)
            .unwrap_or(&empty),
    );
    let lower = name.to_ascii_lowercase();
    let d = &state.directory;
    match lower.as_str() {
        "new-serviceprincipal" => d.update(|d| new_service_principal(d, t, &params)),
        "get-serviceprincipal" => get_service_principal(&d.read(), t, &params),
        "remove-serviceprincipal" => d.update(|d| remove_service_principal(d, t, &params)),
        "add-mailboxpermission" => d.update(|d| add_mailbox_permission(d, t, &params)),
        "get-mailboxpermission" => get_mailbox_permission(&d.read(), t, &params),
        "new-managementscope" => d.update(|d| new_management_scope(d, t, &params)),
        "get-managementscope" => Ok(d.read().objects[t]
            .management_scopes
            .iter()
            .map(scope_json)
            .collect()),
        "new-managementroleassignment" => d.update(|d| new_role_assignment(d, t, &params)),
        "get-managementroleassignment" => get_role_assignments(&d.read(), t, &params),
        _ => Err(AdminError::cmdlet(
            "System.Management.Automation.CommandNotFoundException",
            format!(
                "The term '{name}' is not recognized as a name of a cmdlet the mock Exchange admin API serves."
            ),
        )),
    }
}

/// The token: Exchange Online's audience, delegated, `Exchange.Manage(V2)`, and the user an
/// Exchange Administrator or Global Administrator of the tenant the URL names.
fn authorize(
    state: &ExchangeAdminState,
    tenant_segment: &str,
    headers: &HeaderMap,
) -> Result<usize, AdminError> {
    let header = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim();
    let token = match header.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => return Err(AdminError::unauthorized("The request has no bearer token.")),
    };
    let claims = exchange_token::decode(&state.decoding, token)
        .map_err(|_| AdminError::unauthorized("The access token is invalid."))?;
    let dir = state.directory.read();
    let t =
        exchange_token::check(&claims, &dir, state.clock.now().unix_timestamp()).map_err(|e| {
            AdminError::unauthorized(&format!("The access token is not accepted: {e}."))
        })?;
    let tenant = dir
        .tenant(t)
        .ok_or_else(|| AdminError::unauthorized("Unknown tenant."))?;
    if !tenant.id.eq_ignore_ascii_case(tenant_segment)
        && !tenant.domain.eq_ignore_ascii_case(tenant_segment)
    {
        return Err(AdminError::unauthorized(
            "The access token was issued for another tenant.",
        ));
    }
    if claims.is_app_only() {
        return Err(AdminError::forbidden(
            "App-only access (Exchange.ManageAsApp) is not served by the mock admin API.",
        ));
    }
    if !claims.has_scope("Exchange.Manage") && !claims.has_scope("Exchange.ManageV2") {
        return Err(AdminError::unauthorized(
            "The access token has neither the Exchange.Manage nor the Exchange.ManageV2 scope.",
        ));
    }
    let user = claims
        .oid
        .as_deref()
        .and_then(|oid| dir.user_by_oid(t, oid))
        .ok_or_else(|| AdminError::unauthorized("The signed-in user is unknown."))?;
    let admin = user.directory_roles.iter().any(|r| {
        r.eq_ignore_ascii_case("Exchange Administrator")
            || r.eq_ignore_ascii_case("Global Administrator")
    });
    if !admin {
        return Err(AdminError::forbidden(format!(
            "The user \"{}\" isn't assigned to any management roles.",
            user.upn
        )));
    }
    Ok(t)
}

/// A cmdlet's parameters, by case-insensitive name.
struct Params<'a>(&'a Map<String, Value>);

impl Params<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(k, _)| k.trim_start_matches('-').eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    fn text(&self, name: &str) -> Option<String> {
        match self.get(name)? {
            Value::String(s) => Some(s.trim().to_string()),
            Value::Array(items) if items.len() == 1 => items[0].as_str().map(str::to_string),
            _ => None,
        }
    }

    fn required(&self, name: &str) -> Result<String, AdminError> {
        self.text(name).filter(|s| !s.is_empty()).ok_or_else(|| {
            AdminError::parameter(format!(
                "Cannot process command because of one or more missing mandatory parameters: {name}."
            ))
        })
    }

    fn list(&self, name: &str) -> Vec<String> {
        match self.get(name) {
            Some(Value::String(s)) => s.split(',').map(|x| x.trim().to_string()).collect(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        }
    }
}

fn sp_display_name(d: &DirectoryData, t: usize, sp: &ExchangeServicePrincipalSeed) -> String {
    d.objects[t]
        .exchange_names
        .iter()
        .find(|(id, _)| id.eq_ignore_ascii_case(&sp.object_id))
        .map(|(_, n)| n.clone())
        .or_else(|| d.app(t, &sp.app_id).map(|a| a.name.clone()))
        .unwrap_or_else(|| sp.object_id.clone())
}

fn sp_json(d: &DirectoryData, t: usize, sp: &ExchangeServicePrincipalSeed) -> Value {
    let name = sp_display_name(d, t, sp);
    json!({
        "Identity": sp.object_id,
        "Name": sp.object_id,
        "DisplayName": name,
        "AppId": sp.app_id,
        "ObjectId": sp.object_id,
        "ServiceId": sp.object_id,
        "Organization": d.tenants[t].domain,
        "ObjectState": "New",
        "IsValid": true,
    })
}

/// The registered service principal `identity` names (object ID, app ID or display name).
fn find_sp(d: &DirectoryData, t: usize, identity: &str) -> Option<usize> {
    d.tenants[t]
        .exchange_service_principals
        .iter()
        .position(|sp| {
            sp.registered
                && (sp.object_id.eq_ignore_ascii_case(identity)
                    || sp.app_id.eq_ignore_ascii_case(identity)
                    || sp_display_name(d, t, sp).eq_ignore_ascii_case(identity))
        })
}

fn new_service_principal(
    d: &mut DirectoryData,
    t: usize,
    params: &Params,
) -> Result<Vec<Value>, AdminError> {
    let app_id = params.required("AppId")?;
    let object_id = params
        .text("ObjectId")
        .or_else(|| params.text("ServiceId"))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            AdminError::parameter(
                "Cannot process command because of one or more missing mandatory parameters: ObjectId.",
            )
        })?;
    if uuid::Uuid::parse_str(&app_id).is_err() || uuid::Uuid::parse_str(&object_id).is_err() {
        return Err(AdminError::parameter(
            "Cannot bind parameter: AppId and ObjectId must be GUIDs.",
        ));
    }
    let app = d.app(t, &app_id).cloned().ok_or_else(|| {
        AdminError::cmdlet(
            "Microsoft.Exchange.Management.Tasks.ServicePrincipalNotFoundException",
            format!("The application with AppId '{app_id}' wasn't found in the directory."),
        )
    })?;
    let existing = d.tenants[t]
        .exchange_service_principals
        .iter()
        .position(|sp| sp.app_id.eq_ignore_ascii_case(&app_id));
    if let Some(i) = existing {
        if d.tenants[t].exchange_service_principals[i].registered {
            return Err(AdminError::cmdlet(
                "Microsoft.Exchange.Data.Directory.ADObjectAlreadyExistsException",
                format!("A service principal with AppId '{app_id}' already exists."),
            ));
        }
        let sp = &mut d.tenants[t].exchange_service_principals[i];
        sp.registered = true;
        if !sp.object_id.eq_ignore_ascii_case(&object_id) {
            sp.object_id = object_id.clone();
            sp.full_access.clear();
        }
    } else {
        d.tenants[t]
            .exchange_service_principals
            .push(ExchangeServicePrincipalSeed {
                app_id: app.client_id.clone(),
                object_id: object_id.clone(),
                registered: true,
                full_access: Vec::new(),
            });
    }
    let name = params.text("DisplayName").unwrap_or(app.name);
    let names = &mut d.objects[t].exchange_names;
    names.retain(|(id, _)| !id.eq_ignore_ascii_case(&object_id));
    names.push((object_id.clone(), name));
    let i = find_sp(d, t, &object_id).ok_or_else(|| AdminError::not_found(&object_id))?;
    Ok(vec![sp_json(
        d,
        t,
        &d.tenants[t].exchange_service_principals[i],
    )])
}

fn get_service_principal(
    d: &DirectoryData,
    t: usize,
    params: &Params,
) -> Result<Vec<Value>, AdminError> {
    match params.text("Identity") {
        Some(identity) => {
            let i = find_sp(d, t, &identity).ok_or_else(|| AdminError::not_found(&identity))?;
            Ok(vec![sp_json(
                d,
                t,
                &d.tenants[t].exchange_service_principals[i],
            )])
        }
        None => Ok(d.tenants[t]
            .exchange_service_principals
            .iter()
            .filter(|sp| sp.registered)
            .map(|sp| sp_json(d, t, sp))
            .collect()),
    }
}

fn remove_service_principal(
    d: &mut DirectoryData,
    t: usize,
    params: &Params,
) -> Result<Vec<Value>, AdminError> {
    let identity = params.required("Identity")?;
    let i = find_sp(d, t, &identity).ok_or_else(|| AdminError::not_found(&identity))?;
    let sp = &mut d.tenants[t].exchange_service_principals[i];
    sp.registered = false;
    sp.full_access.clear();
    let object_id = sp.object_id.clone();
    let app_id = sp.app_id.clone();
    d.objects[t]
        .role_assignments
        .retain(|a| !a.app.eq_ignore_ascii_case(&object_id));
    d.sync_mailbox_scope(t, &app_id);
    Ok(Vec::new())
}

fn permission_json(mailbox: &str, user: &str, rights: &[&str]) -> Value {
    json!({
        "Identity": mailbox,
        "User": user,
        "AccessRights": rights,
        "IsInherited": false,
        "Deny": false,
        "InheritanceType": "All",
    })
}

fn add_mailbox_permission(
    d: &mut DirectoryData,
    t: usize,
    params: &Params,
) -> Result<Vec<Value>, AdminError> {
    let identity = params.required("Identity")?;
    let user = params.required("User")?;
    let rights = params.list("AccessRights");
    if rights.is_empty() {
        return Err(AdminError::parameter(
            "Cannot process command because of one or more missing mandatory parameters: AccessRights.",
        ));
    }
    if !rights.iter().all(|r| r.eq_ignore_ascii_case("FullAccess")) {
        return Err(AdminError::parameter(format!(
            "The mock supports only -AccessRights FullAccess, not {}.",
            rights.join(", ")
        )));
    }
    let mailbox = d.tenants[t]
        .entry(&identity)
        .ok_or_else(|| AdminError::not_found(&identity))?;
    if let Some(i) = find_sp(d, t, &user) {
        let name = sp_display_name(d, t, &d.tenants[t].exchange_service_principals[i]);
        let sp = &mut d.tenants[t].exchange_service_principals[i];
        if !sp
            .full_access
            .iter()
            .any(|m| m.eq_ignore_ascii_case(&mailbox.address))
        {
            sp.full_access.push(mailbox.address.clone());
        }
        return Ok(vec![permission_json(
            &mailbox.display_name,
            &name,
            &["FullAccess"],
        )]);
    }
    let upn = d.tenants[t]
        .users
        .iter()
        .find(|u| u.upn.eq_ignore_ascii_case(&user) || u.object_id.eq_ignore_ascii_case(&user))
        .map(|u| u.upn.clone())
        .ok_or_else(|| {
            AdminError::cmdlet(
                "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
                format!(
                    "The user \"{user}\" wasn't found. Please make sure you've typed it correctly."
                ),
            )
        })?;
    let permissions = &mut d.tenants[t].mailbox_permissions;
    match permissions.iter_mut().find(|p| {
        p.mailbox.eq_ignore_ascii_case(&mailbox.address) && p.user.eq_ignore_ascii_case(&upn)
    }) {
        Some(p) if !p.rights.contains(&MailboxRight::FullAccess) => {
            p.rights.push(MailboxRight::FullAccess);
        }
        Some(_) => {}
        None => permissions.push(MailboxPermissionSeed {
            mailbox: mailbox.address.clone(),
            user: upn.clone(),
            rights: vec![MailboxRight::FullAccess],
        }),
    }
    Ok(vec![permission_json(
        &mailbox.display_name,
        &upn,
        &["FullAccess"],
    )])
}

fn get_mailbox_permission(
    d: &DirectoryData,
    t: usize,
    params: &Params,
) -> Result<Vec<Value>, AdminError> {
    let identity = params.required("Identity")?;
    let tenant = &d.tenants[t];
    let mailbox = tenant
        .entry(&identity)
        .ok_or_else(|| AdminError::not_found(&identity))?;
    let mut out = Vec::new();
    for p in tenant
        .mailbox_permissions
        .iter()
        .filter(|p| p.mailbox.eq_ignore_ascii_case(&mailbox.address))
    {
        if p.rights.contains(&MailboxRight::FullAccess) {
            out.push(permission_json(
                &mailbox.display_name,
                &p.user,
                &["FullAccess"],
            ));
        }
    }
    for sp in tenant.exchange_service_principals.iter().filter(|sp| {
        sp.registered
            && sp
                .full_access
                .iter()
                .any(|m| m.eq_ignore_ascii_case(&mailbox.address))
    }) {
        out.push(permission_json(
            &mailbox.display_name,
            &sp_display_name(d, t, sp),
            &["FullAccess"],
        ));
    }
    Ok(out)
}

fn scope_json(s: &ManagementScope) -> Value {
    json!({
        "Identity": s.name,
        "Name": s.name,
        "Guid": s.id,
        "RecipientFilter": s.filter,
        "ScopeRestrictionType": "RecipientScope",
        "Exclusive": false,
    })
}

fn new_management_scope(
    d: &mut DirectoryData,
    t: usize,
    params: &Params,
) -> Result<Vec<Value>, AdminError> {
    let name = params.required("Name")?;
    let filter = params.required("RecipientRestrictionFilter")?;
    d.scope_members(t, &filter).map_err(|e| {
        AdminError::cmdlet(
            "Microsoft.Exchange.Data.InvalidFilterException",
            format!("The recipient restriction filter is invalid: {e}"),
        )
    })?;
    if d.objects[t]
        .management_scopes
        .iter()
        .any(|s| s.name.eq_ignore_ascii_case(&name))
    {
        return Err(AdminError::cmdlet(
            "Microsoft.Exchange.Data.Directory.ADObjectAlreadyExistsException",
            format!("The management scope \"{name}\" already exists."),
        ));
    }
    let scope = ManagementScope {
        id: uuid::Uuid::new_v4().to_string(),
        name,
        filter,
    };
    d.objects[t].management_scopes.push(scope.clone());
    Ok(vec![scope_json(&scope)])
}

fn role_assignment_json(d: &DirectoryData, t: usize, a: &RoleAssignment) -> Value {
    let assignee = d.tenants[t]
        .exchange_service_principals
        .iter()
        .find(|sp| sp.object_id.eq_ignore_ascii_case(&a.app))
        .map_or_else(|| a.app.clone(), |sp| sp_display_name(d, t, sp));
    json!({
        "Identity": a.name,
        "Name": a.name,
        "Guid": a.id,
        "Role": a.role,
        "RoleAssignee": a.app,
        "RoleAssigneeName": assignee,
        "RoleAssigneeType": "ServicePrincipal",
        "CustomResourceScope": a.scope,
        "RecipientWriteScope": if a.scope.is_some() { "CustomRecipientScope" } else { "Organization" },
        "Enabled": true,
    })
}

fn new_role_assignment(
    d: &mut DirectoryData,
    t: usize,
    params: &Params,
) -> Result<Vec<Value>, AdminError> {
    let app = params.required("App")?;
    let role = params.required("Role")?;
    let role = APPLICATION_ROLES
        .iter()
        .find(|r| r.eq_ignore_ascii_case(&role))
        .ok_or_else(|| AdminError::not_found(&role))?
        .to_string();
    let i = find_sp(d, t, &app).ok_or_else(|| AdminError::not_found(&app))?;
    let sp = d.tenants[t].exchange_service_principals[i].clone();
    let scope = match params.text("CustomResourceScope").filter(|s| !s.is_empty()) {
        Some(name) => Some(
            d.objects[t]
                .management_scopes
                .iter()
                .find(|s| s.name.eq_ignore_ascii_case(&name))
                .map(|s| s.name.clone())
                .ok_or_else(|| AdminError::not_found(&name))?,
        ),
        None => None,
    };
    let name = params
        .text("Name")
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("{role}-{}", sp.object_id));
    let assignment = RoleAssignment {
        id: uuid::Uuid::new_v4().to_string(),
        name,
        app: sp.object_id.clone(),
        role,
        scope,
    };
    d.objects[t].role_assignments.push(assignment.clone());
    d.sync_mailbox_scope(t, &sp.app_id);
    Ok(vec![role_assignment_json(d, t, &assignment)])
}

fn get_role_assignments(
    d: &DirectoryData,
    t: usize,
    params: &Params,
) -> Result<Vec<Value>, AdminError> {
    let app = params
        .text("App")
        .map(|a| find_sp(d, t, &a).ok_or_else(|| AdminError::not_found(&a)))
        .transpose()?
        .map(|i| {
            d.tenants[t].exchange_service_principals[i]
                .object_id
                .clone()
        });
    Ok(d.objects[t]
        .role_assignments
        .iter()
        .filter(|a| app.as_ref().is_none_or(|id| a.app.eq_ignore_ascii_case(id)))
        .map(|a| role_assignment_json(d, t, a))
        .collect())
}
