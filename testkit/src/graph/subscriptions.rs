//! `/subscriptions`: Graph's change-notification subscriptions to Outlook messages and events
//! (create with the validation handshake, list, get, renew, delete, reauthorize). The
//! notifications themselves are sent by [`super::push`].
//!
//! Creating one first POSTs `?validationToken=…` to the `notificationUrl` (and the
//! `lifecycleNotificationUrl`): the endpoint must answer 200 with the token as `text/plain`
//! within 10 seconds, or the subscription is refused with Graph's 400 `ValidationError`.
//! Graph wants HTTPS URLs; the mock also takes `http://` to a loopback address (tests).

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::GraphState;
use super::auth::{self, Caller, MailboxRef, Need, Who};
use super::dispatch::split_path;
use super::error::{GraphError, GraphResult, graph_errors};
use super::http::{Ctx, Req, Resp, parse_instant};
use super::ids::GraphIds as _;
use super::push::{ChangeType, MAX_MINUTES, Scope, Subscription};

/// Whether `first` (the first path segment) is served here.
pub(crate) fn serves(first: &str) -> bool {
    first.eq_ignore_ascii_case("subscriptions")
}

/// `clientState` is at most 128 characters.
const MAX_CLIENT_STATE: usize = 128;

fn validation_error(message: impl Into<String>) -> GraphError {
    GraphError::bad_request("ValidationError", message)
}

fn extension_error(message: impl Into<String>) -> GraphError {
    GraphError::bad_request("ExtensionError", message)
}

fn not_found() -> GraphError {
    GraphError::new(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        "The object was not found.",
    )
}

/// Serves `segments` (`subscriptions`, `subscriptions/{id}`, `subscriptions/{id}/reauthorize`).
pub(crate) async fn serve(
    state: &GraphState,
    ctx: &Ctx,
    req: &Req,
    caller: &Caller,
    segments: &[String],
) -> GraphResult<Resp> {
    let rest: Vec<String> = segments.iter().skip(1).cloned().collect();
    let lower: Vec<String> = rest.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    match (l.as_slice(), &req.method) {
        ([], &Method::POST) => create(state, ctx, req, caller).await,
        ([], &Method::GET) => Ok(list(state, ctx, caller)),
        ([_], &Method::GET) => get(state, ctx, caller, &rest[0]),
        ([_], &Method::PATCH) => renew(state, ctx, req, caller, &rest[0]),
        ([_], &Method::DELETE) => delete(state, caller, &rest[0]),
        ([_, "reauthorize" | "microsoft.graph.reauthorize"], &Method::POST) => {
            reauthorize(state, caller, &rest[0])
        }
        ([], m) | ([_], m) => Err(graph_errors::method_not_allowed(m.as_str())),
        ([_, other, ..], _) => Err(graph_errors::segment_not_found(other)),
    }
}

fn body(req: &Req) -> GraphResult<serde_json::Map<String, Value>> {
    if req.body.is_empty() {
        return Err(graph_errors::empty_body());
    }
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(graph_errors::body_read(
            "Cannot read the request body: it is not a JSON object.",
        )),
    }
}

fn string<'a>(map: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str)
}

/// The expiry asked for, within Graph's bounds.
fn expiry(raw: Option<&str>, now: OffsetDateTime) -> GraphResult<OffsetDateTime> {
    let raw = raw.ok_or_else(|| {
        validation_error("expirationDateTime is a required property for subscription creation.")
    })?;
    let at = parse_instant(raw).ok_or_else(|| {
        graph_errors::bad_request(format!(
            "The value '{raw}' is not a valid expirationDateTime."
        ))
    })?;
    if at <= now {
        return Err(extension_error(
            "Subscription expiration can only be in the future.",
        ));
    }
    if at > now + time::Duration::minutes(MAX_MINUTES) {
        return Err(extension_error(format!(
            "Subscription expiration can only be {MAX_MINUTES} minutes in the future."
        )));
    }
    Ok(at)
}

/// What a resource string names: the mailbox and what in it.
fn parse_resource(resource: &str) -> GraphResult<(MailboxRef, ResourceIn)> {
    let unsupported = || {
        extension_error(format!(
            "Operation: Create; Exception: [Status Code: BadRequest; Reason: The resource '{resource}' is not supported by the mock's subscriptions.]"
        ))
    };
    let segments = split_path(resource.trim()).map_err(|_| unsupported())?;
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let (mailbox, rest) = match lower.first().map(String::as_str) {
        Some("me") => (MailboxRef::Me, 1),
        Some("users") if segments.len() > 1 => (MailboxRef::User(segments[1].clone()), 2),
        _ => return Err(unsupported()),
    };
    let l: Vec<&str> = lower[rest..].iter().map(String::as_str).collect();
    let what = match l.as_slice() {
        ["messages"] => ResourceIn::Messages,
        ["mailfolders", _, "messages"] => ResourceIn::Folder(segments[rest + 1].clone()),
        ["events"] | ["calendar", "events"] => ResourceIn::Events,
        _ => return Err(unsupported()),
    };
    Ok((mailbox, what))
}

#[derive(Debug)]
enum ResourceIn {
    Messages,
    Folder(String),
    Events,
}

/// Checks a URL Graph would call: HTTPS (or HTTP to a loopback address, for tests).
fn check_url(name: &str, raw: &str) -> GraphResult<url::Url> {
    let url = url::Url::parse(raw).map_err(|_| {
        validation_error(format!("Invalid {name}: '{raw}' is not an absolute URL."))
    })?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(validation_error(format!(
            "Subscription validation request failed. The {name} must use HTTPS."
        ))),
    }
}

/// The validation handshake: POST `?validationToken=…`, expect the token back as text/plain.
async fn validate(url: &url::Url) -> GraphResult<()> {
    let token = format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        uuid::Uuid::new_v4()
    );
    let mut target = url.clone();
    target
        .query_pairs_mut()
        .append_pair("validationToken", &token);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|_| graph_errors::server_error(500))?;
    let answer = client
        .post(target)
        .header("content-type", "text/plain; charset=utf-8")
        .body("")
        .send()
        .await;
    let failed = || {
        validation_error(
            "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.",
        )
    };
    let answer = match answer {
        Ok(a) => a,
        Err(e) if e.is_timeout() => {
            return Err(validation_error(
                "Subscription validation request timed out.",
            ));
        }
        Err(_) => return Err(failed()),
    };
    if answer.status() != reqwest::StatusCode::OK {
        return Err(failed());
    }
    let plain = answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("text/plain"));
    let body = answer.bytes().await.map_err(|_| failed())?;
    if !plain || body.as_ref() != token.as_bytes() {
        return Err(validation_error(
            "Subscription validation request failed. Response must exactly match validationToken query parameter.",
        ));
    }
    Ok(())
}

/// The ID the caller's subscriptions are created under (the user's or the service
/// principal's object ID).
fn creator(state: &GraphState, caller: &Caller) -> String {
    match &caller.who {
        Who::User { upn, .. } => state
            .dir()
            .tenant(caller.tenant)
            .and_then(|t| t.entry(upn))
            .map(|e| e.object_id)
            .unwrap_or_default(),
        Who::App { sp, .. } => sp.clone().unwrap_or_default(),
    }
}

/// Whether the caller may still read what `sub` watches.
fn authorize(
    state: &GraphState,
    caller: &Caller,
    mailbox: &MailboxRef,
    need: Need,
) -> GraphResult<auth::Target> {
    let dir = state.dir();
    let tenant = dir
        .tenant(caller.tenant)
        .ok_or_else(graph_errors::token_invalid)?;
    let target = auth::resolve(tenant, caller, mailbox)?;
    auth::authorize(tenant, caller, &target, need)?;
    Ok(target)
}

fn need(scope: Scope) -> Need {
    match scope {
        Scope::Events => Need::CalendarRead,
        Scope::Folder(_) | Scope::Messages => Need::MailRead,
    }
}

async fn create(state: &GraphState, ctx: &Ctx, req: &Req, caller: &Caller) -> GraphResult<Resp> {
    let map = body(req)?;
    for key in map.keys() {
        const KNOWN: &[&str] = &[
            "changeType",
            "notificationUrl",
            "lifecycleNotificationUrl",
            "resource",
            "expirationDateTime",
            "clientState",
            "latestSupportedTlsVersion",
            "includeResourceData",
            "encryptionCertificate",
            "encryptionCertificateId",
            "notificationQueryOptions",
            "notificationUrlAppId",
            "@odata.type",
        ];
        if !KNOWN.contains(&key.as_str()) {
            return Err(graph_errors::body_unknown_property(
                key,
                "microsoft.graph.subscription",
            ));
        }
    }
    if map.get("includeResourceData").and_then(Value::as_bool) == Some(true) {
        return Err(validation_error(
            "The mock does not send rich notifications (includeResourceData).",
        ));
    }
    let change_type = string(&map, "changeType").unwrap_or_default().to_string();
    let mut change_types = Vec::new();
    for part in change_type.split(',') {
        let parsed = ChangeType::parse(part).ok_or_else(|| {
            validation_error(format!(
                "Invalid 'changeType' attribute: '{}'.",
                part.trim()
            ))
        })?;
        if !change_types.contains(&parsed) {
            change_types.push(parsed);
        }
    }
    let resource = string(&map, "resource")
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| {
            validation_error("resource is a required property for subscription creation.")
        })?
        .to_string();
    let notification_url = string(&map, "notificationUrl")
        .ok_or_else(|| {
            validation_error("notificationUrl is a required property for subscription creation.")
        })?
        .to_string();
    let lifecycle_url = string(&map, "lifecycleNotificationUrl").map(str::to_string);
    let client_state = string(&map, "clientState").map(str::to_string);
    if client_state
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_CLIENT_STATE)
    {
        return Err(validation_error(format!(
            "clientState must not be longer than {MAX_CLIENT_STATE} characters."
        )));
    }
    let expires = expiry(string(&map, "expirationDateTime"), ctx.now)?;
    let (mailbox, what) = parse_resource(&resource)?;
    let probe = match what {
        ResourceIn::Events => Scope::Events,
        _ => Scope::Messages,
    };
    let target = authorize(state, caller, &mailbox, need(probe))?;
    let notify = check_url("notificationUrl", &notification_url)?;
    let lifecycle = lifecycle_url
        .as_deref()
        .map(|u| check_url("lifecycleNotificationUrl", u))
        .transpose()?;
    // The folder must exist before Graph calls anyone.
    {
        let store = state.store.lock();
        let mb = store
            .mailbox(&target.address)
            .ok_or_else(|| graph_errors::invalid_user(&target.address))?;
        if let ResourceIn::Folder(f) = &what {
            mb.folder_by_ref(f)?;
        }
    }
    validate(&notify).await?;
    if let Some(lifecycle) = &lifecycle {
        validate(lifecycle).await?;
    }
    let dir = state.dir();
    let tenant = dir
        .tenant(caller.tenant)
        .ok_or_else(graph_errors::token_invalid)?;
    let user_id = tenant
        .entry(&target.address)
        .map(|e| e.object_id)
        .unwrap_or_default();
    let sub = {
        let mut push = state.push().lock();
        let store = state.store.lock();
        let mb = store
            .mailbox(&target.address)
            .ok_or_else(|| graph_errors::invalid_user(&target.address))?;
        let scope = match &what {
            ResourceIn::Messages => Scope::Messages,
            ResourceIn::Events => Scope::Events,
            ResourceIn::Folder(f) => Scope::Folder(mb.folder_by_ref(f)?),
        };
        let sub = Subscription {
            id: uuid::Uuid::new_v4().to_string(),
            tenant: caller.tenant,
            tenant_id: tenant.id.clone(),
            app_id: caller.app_id.clone(),
            creator_id: creator(state, caller),
            resource,
            mailbox: mb.address.clone(),
            user_id,
            scope,
            change_type,
            change_types,
            client_state,
            notification_url,
            lifecycle_url,
            expires,
            since: mb.version(),
            needs_reauthorization: false,
        };
        push.follow(mb);
        push.subs.insert(sub.id.clone(), sub.clone());
        sub
    };
    state.start_notifier();
    state.wake_notifier();
    let mut answer = sub.to_json();
    if let Value::Object(o) = &mut answer {
        o.insert(
            "@odata.context".into(),
            json!(format!(
                "{}/$metadata#subscriptions/$entity",
                ctx.graph_url()
            )),
        );
    }
    Ok(Resp::json(StatusCode::CREATED, answer))
}

/// Whether `sub` is the caller's: same tenant and app (and, delegated, the same user).
fn owns(state: &GraphState, caller: &Caller, sub: &Subscription) -> bool {
    sub.tenant == caller.tenant
        && sub.app_id.eq_ignore_ascii_case(&caller.app_id)
        && (caller.is_app() || sub.creator_id == creator(state, caller))
}

fn list(state: &GraphState, ctx: &Ctx, caller: &Caller) -> Resp {
    let now = state.now();
    let subs: Vec<Subscription> = {
        let mut push = state.push().lock();
        // Forgets the expired ones.
        let _ = push.live("", now);
        push.subs.values().cloned().collect()
    };
    let value: Vec<Value> = subs
        .iter()
        .filter(|s| owns(state, caller, s))
        .map(Subscription::to_json)
        .collect();
    Resp::ok(json!({
        "@odata.context": format!("{}/$metadata#subscriptions", ctx.graph_url()),
        "value": value,
    }))
}

/// The caller's live subscription `id`.
fn find(state: &GraphState, caller: &Caller, id: &str) -> GraphResult<Subscription> {
    let now = state.now();
    let sub = state.push().lock().live(id, now).map(|s| s.clone());
    sub.filter(|s| owns(state, caller, s)).ok_or_else(not_found)
}

fn get(state: &GraphState, ctx: &Ctx, caller: &Caller, id: &str) -> GraphResult<Resp> {
    let sub = find(state, caller, id)?;
    let mut answer = sub.to_json();
    if let Value::Object(o) = &mut answer {
        o.insert(
            "@odata.context".into(),
            json!(format!(
                "{}/$metadata#subscriptions/$entity",
                ctx.graph_url()
            )),
        );
    }
    Ok(Resp::ok(answer))
}

fn renew(state: &GraphState, ctx: &Ctx, req: &Req, caller: &Caller, id: &str) -> GraphResult<Resp> {
    find(state, caller, id)?;
    let map = body(req)?;
    if let Some(key) = map
        .keys()
        .find(|k| !["expirationDateTime", "@odata.type"].contains(&k.as_str()))
    {
        return Err(validation_error(format!(
            "Only expirationDateTime can be updated; '{key}' cannot."
        )));
    }
    let expires = expiry(string(&map, "expirationDateTime"), ctx.now)?;
    let sub = {
        let mut push = state.push().lock();
        let sub = push.live(id, ctx.now).ok_or_else(not_found)?;
        sub.expires = expires;
        sub.clone()
    };
    Ok(Resp::ok(sub.to_json()))
}

fn delete(state: &GraphState, caller: &Caller, id: &str) -> GraphResult<Resp> {
    find(state, caller, id)?;
    state.push().lock().subs.remove(id);
    Ok(Resp::empty(StatusCode::NO_CONTENT))
}

fn reauthorize(state: &GraphState, caller: &Caller, id: &str) -> GraphResult<Resp> {
    let sub = find(state, caller, id)?;
    let mailbox = MailboxRef::User(sub.mailbox.clone());
    authorize(state, caller, &mailbox, need(sub.scope))?;
    if let Some(sub) = state.push().lock().live(id, state.now()) {
        sub.needs_reauthorization = false;
    }
    Ok(Resp::empty(StatusCode::NO_CONTENT))
}
