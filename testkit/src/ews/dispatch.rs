//! One EWS request from HTTP to SOAP answer: authentication, the envelope and its headers
//! (`RequestServerVersion`, `ExchangeImpersonation`), `EWSEnabled`, throttling, faults, then the
//! operation.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;

use super::auth::{self, Principal};
use super::soap::{self, EwsError, EwsResult, NS_MESSAGES, NS_SOAP, NS_TYPES};
use super::switches::ServerVersion;
use super::xml::{self, Element};
use super::{EwsState, MAX_BODY, calendar, create, folders, items, notify, people, sync, update};
use crate::conn::ConnectionControl;
use crate::directory::{DirectoryData, MailboxRight};
use crate::faults::{FaultKind, Service};
use crate::mailstore::Mailboxes;

/// What an operation knows about its request.
#[derive(Debug)]
pub(crate) struct Op<'a> {
    pub principal: &'a Principal,
    /// The mailbox the request acts as: the impersonated user, or the caller.
    pub acting: String,
    pub dir: Arc<DirectoryData>,
    pub now: OffsetDateTime,
}

impl Op<'_> {
    /// The mailbox a request names (`None`: the acting one), checked: it exists (else
    /// `ErrorNonExistentMailbox`) and the acting user may open it (FullAccess, else
    /// `ErrorAccessDenied`; app-only with `full_access_as_app` may open any in its scope).
    pub(crate) fn mailbox(&self, named: Option<&str>) -> EwsResult<String> {
        let Some(named) = named.map(str::trim).filter(|n| !n.is_empty()) else {
            return Ok(self.acting.clone());
        };
        if named.eq_ignore_ascii_case(&self.acting) {
            return Ok(self.acting.clone());
        }
        let Some(entry) = self.dir.recipient(named) else {
            return Err(EwsError::non_existent_mailbox(named));
        };
        if self.principal.is_app_only() {
            // full_access_as_app reaches every mailbox its application access policy allows.
            let scoped_out = self.principal.app_id.as_deref().is_some_and(|app| {
                self.dir
                    .tenant(self.principal.tenant)
                    .and_then(|t| t.mailbox_scope(app))
                    .is_some_and(|scope| {
                        !scope.iter().any(|m| m.eq_ignore_ascii_case(&entry.address))
                    })
            });
            if scoped_out {
                return Err(EwsError::access_denied());
            }
            return Ok(entry.address.to_ascii_lowercase());
        }
        let allowed = self
            .dir
            .tenants
            .iter()
            .any(|t| t.has_right(&entry.address, &self.acting, MailboxRight::FullAccess));
        if allowed {
            Ok(entry.address.to_ascii_lowercase())
        } else {
            Err(EwsError::access_denied())
        }
    }

    /// The display name of a mailbox of the directory.
    pub(crate) fn display_name(&self, address: &str) -> String {
        self.dir
            .recipient(address)
            .map_or_else(|| address.to_string(), |r| r.display_name)
    }
}

/// An EWS answer before it becomes HTTP.
struct Answer {
    status: StatusCode,
    headers: Vec<(String, String)>,
    body: String,
    content_type: &'static str,
    /// A body sent as it is made (`GetStreamingEvents`), instead of `body`.
    stream: Option<Body>,
}

impl Answer {
    fn soap(status: StatusCode, body: String) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body,
            content_type: "text/xml; charset=utf-8",
            stream: None,
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let body = self.stream.unwrap_or_else(|| Body::from(self.body));
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        if !self.content_type.is_empty() {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type),
            );
        }
        for (name, value) in self.headers {
            if let (Ok(n), Ok(v)) = (
                axum::http::HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                headers.append(n, v);
            }
        }
        response
    }
}

/// `ErrorServerBusy` for `operation`: a 500 fault, or (switch `busy_in_response`) a 200
/// answer whose one response message carries the error, as Exchange sends both.
fn busy(state: &EwsState, version: ServerVersion, operation: &str, error: &EwsError) -> Answer {
    let in_response = state.switches().busy_in_response
        && !matches!(
            operation,
            "GetUserAvailabilityRequest" | "GetUserAvailability"
        );
    if !in_response {
        return fault(version, error);
    }
    let body = soap::response(
        operation,
        &format!("{operation}ResponseMessage"),
        &[Err(error.clone())],
    );
    Answer::soap(StatusCode::OK, soap::envelope(version, &body))
}

fn fault(version: ServerVersion, error: &EwsError) -> Answer {
    Answer::soap(
        StatusCode::INTERNAL_SERVER_ERROR,
        soap::fault(version, error),
    )
}

pub(crate) async fn serve(
    state: &EwsState,
    request: Request,
    control: Option<Arc<ConnectionControl>>,
) -> Response {
    state.own().requests += 1;
    let now = state.clock.now();
    let conn = control.as_ref().map(|c| c.id());
    let (parts, body) = request.into_parts();
    let principal = match auth::authenticate(state, &parts.headers, conn, now) {
        Ok(p) => p,
        Err(denied) => {
            let mut answer = Answer::soap(denied.status, denied.body);
            answer.content_type = if answer.body.is_empty() {
                ""
            } else {
                "text/plain; charset=utf-8"
            };
            answer.headers = denied.headers;
            return answer.into_response();
        }
    };
    let version = state.switches().version;
    if parts.method != axum::http::Method::POST {
        // Exchange answers a GET of the endpoint with the service description; the mock
        // with a plain note.
        let mut answer = Answer::soap(
            StatusCode::OK,
            "exgate mock EWS: POST SOAP 1.1 requests here".into(),
        );
        answer.content_type = "text/plain; charset=utf-8";
        return answer.into_response();
    }
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return fault(
                version,
                &EwsError::new(
                    "ErrorInvalidRequest",
                    "The request is larger than the server accepts.",
                ),
            )
            .into_response();
        }
    };
    let envelope = match std::str::from_utf8(&bytes)
        .map_err(|_| "the request is not UTF-8".to_string())
        .and_then(xml::parse)
    {
        Ok(e) => e,
        Err(why) => return fault(version, &EwsError::schema(why)).into_response(),
    };
    let anchor = parts
        .headers
        .get("x-anchormailbox")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let operation = match body_element(&envelope) {
        Ok(b) => b.name.clone(),
        Err(e) => return fault(version, &e).into_response(),
    };
    let faults = state.faults.clone();
    let picked = faults.pick(
        Service::Ews,
        "POST",
        &format!("/EWS/Exchange.asmx/{operation}"),
    );
    let mut after = None;
    let mut delay = None;
    if let Some(picked) = picked {
        match &picked.kind {
            // Taken inside the request's throttling slot, like a slow server.
            FaultKind::Delay { .. } => delay = Some(picked),
            FaultKind::TooManyRequests { retry_after } => {
                faults.injected(&picked);
                let ms = retry_after
                    .as_deref()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map_or(30_000, |s| s.saturating_mul(1000));
                return busy(state, version, &operation, &EwsError::server_busy(ms))
                    .into_response();
            }
            FaultKind::ServiceUnavailable { retry_after } => {
                faults.injected(&picked);
                let mut answer = Answer::soap(StatusCode::SERVICE_UNAVAILABLE, String::new());
                answer.content_type = "";
                if let Some(v) = retry_after {
                    answer.headers.push(("Retry-After".into(), v.clone()));
                }
                return answer.into_response();
            }
            FaultKind::GatewayTimeout => {
                faults.injected(&picked);
                let mut answer = Answer::soap(StatusCode::GATEWAY_TIMEOUT, String::new());
                answer.content_type = "";
                return answer.into_response();
            }
            FaultKind::Reset => {
                faults.injected(&picked);
                return reset(control).await;
            }
            _ => after = Some(picked),
        }
    }
    let answer = run(state, &principal, &envelope, anchor.as_deref(), now, delay).await;
    if let Some(picked) = after {
        let applied = match picked.kind {
            FaultKind::ResetAfter => {
                faults.injected(&picked);
                return reset(control).await;
            }
            FaultKind::TruncatedJson => {
                let mut cut = answer.body.len() / 2;
                while !answer.body.is_char_boundary(cut) {
                    cut -= 1;
                }
                let mut answer = answer;
                answer.body.truncate(cut);
                faults.injected(&picked);
                return answer.into_response();
            }
            FaultKind::JsonArray => {
                let mut answer = answer;
                answer.body = "[]".into();
                faults.injected(&picked);
                return answer.into_response();
            }
            _ => false,
        };
        if !applied {
            faults.not_applicable(&picked);
        }
    }
    answer.into_response()
}

async fn reset(control: Option<Arc<ConnectionControl>>) -> Response {
    if let Some(control) = control {
        control.reset();
        std::future::pending::<()>().await;
    }
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

/// The one element of `soap:Body`, in the messages namespace.
fn body_element(envelope: &Element) -> EwsResult<&Element> {
    if envelope.name != "Envelope" || envelope.ns != NS_SOAP {
        return Err(EwsError::schema(
            "the root element is not a SOAP 1.1 Envelope (http://schemas.xmlsoap.org/soap/envelope/)",
        ));
    }
    let body = envelope
        .children
        .iter()
        .find(|c| c.name == "Body" && c.ns == NS_SOAP)
        .ok_or_else(|| EwsError::schema("the envelope has no Body"))?;
    let mut elements = body.children.iter();
    let (Some(first), None) = (elements.next(), elements.next()) else {
        return Err(EwsError::schema("the Body must hold exactly one element"));
    };
    if first.ns != NS_MESSAGES {
        return Err(EwsError::schema(format!(
            "the element '{}' is not in the namespace {NS_MESSAGES}",
            first.name
        )));
    }
    Ok(first)
}

struct Headers {
    version: Option<String>,
    impersonate: Option<String>,
}

fn read_headers(envelope: &Element) -> EwsResult<Headers> {
    let mut out = Headers {
        version: None,
        impersonate: None,
    };
    let Some(header) = envelope
        .children
        .iter()
        .find(|c| c.name == "Header" && c.ns == NS_SOAP)
    else {
        return Ok(out);
    };
    for h in &header.children {
        if h.ns != NS_TYPES {
            continue;
        }
        match h.name.as_str() {
            "RequestServerVersion" => {
                out.version = Some(
                    h.attr("Version")
                        .ok_or_else(|| {
                            EwsError::schema("RequestServerVersion needs a Version attribute")
                        })?
                        .to_string(),
                );
            }
            "ExchangeImpersonation" => {
                let sid = h.child("ConnectingSID").ok_or_else(|| {
                    EwsError::new(
                        "ErrorInvalidExchangeImpersonationHeaderData",
                        "ExchangeImpersonation needs a ConnectingSID.",
                    )
                })?;
                let who = ["PrimarySmtpAddress", "SmtpAddress", "PrincipalName"]
                    .iter()
                    .find_map(|n| sid.child(n))
                    .map(|e| e.text.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        EwsError::new(
                            "ErrorInvalidExchangeImpersonationHeaderData",
                            "The impersonation principal name is invalid: only PrimarySmtpAddress, SmtpAddress and PrincipalName are supported by the mock.",
                        )
                    })?;
                out.impersonate = Some(who);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The acting mailbox for this caller and headers, or the fault Exchange answers.
fn acting(
    dir: &DirectoryData,
    principal: &Principal,
    impersonate: Option<&str>,
    anchor: Option<&str>,
) -> EwsResult<String> {
    match (principal.user.as_deref(), impersonate) {
        (None, None) => Err(EwsError::new(
            "ErrorInvalidExchangeImpersonationHeaderData",
            "ExchangeImpersonation SOAP header must be present for this type of OAuth token.",
        )),
        (None, Some(target)) => {
            if anchor.is_none_or(|a| a.trim().is_empty()) {
                return Err(EwsError::new(
                    "ErrorInvalidExchangeImpersonationHeaderData",
                    "The X-AnchorMailbox header must name the impersonated mailbox for this type of OAuth token.",
                ));
            }
            let entry = dir
                .recipient(target)
                .ok_or_else(|| EwsError::non_existent_mailbox(target))?;
            if let (Some(app), Some(tenant)) =
                (principal.app_id.as_deref(), dir.tenant(principal.tenant))
                && let Some(scope) = tenant.mailbox_scope(app)
                && !scope.iter().any(|m| m.eq_ignore_ascii_case(&entry.address))
            {
                return Err(EwsError::new(
                    "ErrorImpersonateUserDenied",
                    "The account does not have permission to impersonate the requested user.",
                ));
            }
            Ok(entry.address.to_ascii_lowercase())
        }
        (Some(user), None) => Ok(user.to_ascii_lowercase()),
        (Some(user), Some(target)) => {
            let entry = dir
                .recipient(target)
                .ok_or_else(|| EwsError::non_existent_mailbox(target))?;
            if entry.address.eq_ignore_ascii_case(user) {
                return Ok(user.to_ascii_lowercase());
            }
            let may = dir
                .tenants
                .iter()
                .any(|t| t.has_right(&entry.address, user, MailboxRight::ApplicationImpersonation));
            if may {
                Ok(entry.address.to_ascii_lowercase())
            } else {
                Err(EwsError::new(
                    "ErrorImpersonateUserDenied",
                    "The account does not have permission to impersonate the requested user.",
                ))
            }
        }
    }
}

async fn run(
    state: &EwsState,
    principal: &Principal,
    envelope: &Element,
    anchor: Option<&str>,
    now: OffsetDateTime,
    delay: Option<crate::faults::Picked>,
) -> Answer {
    let version = state.switches().version;
    let body = match body_element(envelope) {
        Ok(b) => b,
        Err(e) => return fault(version, &e),
    };
    let headers = match read_headers(envelope) {
        Ok(h) => h,
        Err(e) => return fault(version, &e),
    };
    if let Some(requested) = &headers.version
        && !version.accepts(requested)
    {
        return fault(
            version,
            &EwsError::new(
                "ErrorInvalidServerVersion",
                "The specified server version is invalid.",
            ),
        );
    }
    let dir = state.directory.read();
    let acting = match acting(&dir, principal, headers.impersonate.as_deref(), anchor) {
        Ok(a) => a,
        Err(e) => return fault(version, &e),
    };
    if dir
        .recipient(&acting)
        .is_some_and(|r| !r.exchange.ews_enabled)
    {
        let mut answer = Answer::soap(StatusCode::FORBIDDEN, String::new());
        answer.content_type = "";
        answer.headers.push((
            "X-ErrorText".into(),
            "EWS is disabled for this mailbox (Set-CASMailbox -EwsEnabled $true).".into(),
        ));
        return answer;
    }
    let _slot = match state.throttle.acquire(&acting, now) {
        Ok(slot) => slot,
        Err(e) if e.code == "ErrorServerBusy" => return busy(state, version, &body.name, &e),
        Err(e) => return fault(version, &e),
    };
    if let Some(picked) = delay
        && let crate::faults::FaultKind::Delay { ms } = picked.kind
    {
        state.faults.injected(&picked);
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    let op = Op {
        principal,
        acting,
        dir,
        now,
    };
    match body.name.as_str() {
        "GetStreamingEvents" => {
            return match notify::get_streaming_events(state, &op, body) {
                Ok(stream) => {
                    let mut answer = Answer::soap(StatusCode::OK, String::new());
                    answer.stream = Some(stream);
                    answer
                }
                Err(Ok(whole)) => Answer::soap(StatusCode::OK, whole),
                Err(Err(e)) => fault(version, &e),
            };
        }
        "Subscribe" | "GetEvents" | "Unsubscribe" => {
            let store = state.store.lock();
            return match notify::operation(state, &op, &store, body) {
                Ok(body) => Answer::soap(StatusCode::OK, soap::envelope(version, &body)),
                Err(e) => fault(version, &e),
            };
        }
        _ => {}
    }
    let mut store = state.store.lock();
    match operation(&op, &mut store, body) {
        Ok(body) => Answer::soap(StatusCode::OK, soap::envelope(version, &body)),
        Err(e) => fault(version, &e),
    }
}

/// Runs the operation `body` names; `Err` is a fault for the whole request.
fn operation(op: &Op<'_>, store: &mut Mailboxes, body: &Element) -> EwsResult<String> {
    match body.name.as_str() {
        "FindFolder" => folders::find_folder(op, store, body),
        "GetFolder" => folders::get_folder(op, store, body),
        "SyncFolderHierarchy" => folders::sync_hierarchy(op, store, body),
        "FindItem" => {
            if body.child("CalendarView").is_some() {
                calendar::calendar_view(op, store, body)
            } else {
                items::find_item(op, store, body)
            }
        }
        "GetItem" => items::get_item(op, store, body),
        "GetAttachment" => items::get_attachment(op, store, body),
        "CreateItem" => create::create_item(op, store, body),
        "SendItem" => create::send_item(op, store, body),
        "UpdateItem" => update::update_item(op, store, body),
        "MoveItem" => update::move_item(op, store, body, false),
        "CopyItem" => update::move_item(op, store, body, true),
        "DeleteItem" => update::delete_item(op, store, body),
        "CreateAttachment" => update::create_attachment(op, store, body),
        "SyncFolderItems" => sync::sync_folder_items(op, store, body),
        "ResolveNames" => people::resolve_names(op, store, body),
        "GetUserAvailabilityRequest" | "GetUserAvailability" => {
            people::get_user_availability(op, store, body)
        }
        other => Err(EwsError::invalid_request(format!(
            "The mock EWS does not implement the operation '{other}'."
        ))),
    }
}
