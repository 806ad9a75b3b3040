//! From an HTTP request to an answer: body limit, faults, authentication, routing,
//! authorization, throttling, latency, then the operation under the state's lock.

use axum::extract::Request;
use axum::http::Method;

use super::auth::{self, Caller, MailboxRef, Need, Target};
use super::error::{GraphError, GraphResult, graph_errors};
use super::http::{Ctx, Req, Resp};
use super::{
    GraphInner, GraphState, MAX_BODY, apps, batch, calendar, contacts, faults, mail, subscriptions,
    uploads, users,
};
use crate::faults::Fault;

/// Serves one HTTP request under `/graph/v1.0`.
pub(crate) async fn serve(state: &GraphState, request: Request) -> Resp {
    let (parts, body) = request.into_parts();
    {
        let mut inner = state.own();
        inner.requests = inner.requests.saturating_add(1);
    }
    let ctx = Ctx::new(state.base_url(), state.now(), &parts.headers);
    let path = parts
        .uri
        .path()
        .strip_prefix("/graph/v1.0")
        .unwrap_or("/")
        .to_string();
    let query = Req::parse_query(parts.uri.query().unwrap_or_default());
    let declared = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let body = if declared.is_some_and(|n| n > MAX_BODY) {
        Err(graph_errors::too_large())
    } else {
        axum::body::to_bytes(body, MAX_BODY)
            .await
            .map_err(|_| graph_errors::too_large())
    };
    let body = match body {
        Ok(body) => body.to_vec(),
        Err(e) => {
            let mut resp = e.into_resp(&ctx);
            ctx.decorate(&mut resp);
            return resp;
        }
    };
    let req = Req {
        method: parts.method,
        path,
        query,
        headers: parts.headers,
        body,
    };
    if is_batch(&req.path) {
        let picked = match faults::before(state, &ctx, &req, false).await {
            Ok(picked) => picked,
            Err(mut resp) => {
                ctx.decorate(&mut resp);
                return resp;
            }
        };
        let mut resp = match batch::serve(state, &ctx, req.clone()).await {
            Ok(resp) => resp,
            Err(e) => e.into_resp(&ctx),
        };
        ctx.decorate(&mut resp);
        if let Some(picked) = picked {
            resp = faults::after(state, &ctx, &req, &picked, resp);
        }
        return resp;
    }
    let latency = state.own().latency;
    handle(state, ctx, req, latency, false).await
}

fn is_batch(path: &str) -> bool {
    path.trim_matches('/').eq_ignore_ascii_case("$batch")
}

/// One logical request (a plain one, or an `item` of a `$batch`), with `latency` added while it
/// holds its concurrency slot.
pub(crate) async fn handle(
    state: &GraphState,
    ctx: Ctx,
    req: Req,
    latency: std::time::Duration,
    item: bool,
) -> Resp {
    let picked = match faults::before(state, &ctx, &req, item).await {
        Ok(picked) => picked,
        Err(mut resp) => {
            ctx.decorate(&mut resp);
            return resp;
        }
    };
    let mut resp = match process(state, &ctx, &req, latency).await {
        Ok(resp) => resp,
        Err(e) => e.into_resp(&ctx),
    };
    ctx.decorate(&mut resp);
    match picked {
        Some(picked) => faults::after(state, &ctx, &req, &picked, resp),
        None => resp,
    }
}

async fn process(
    state: &GraphState,
    ctx: &Ctx,
    req: &Req,
    latency: std::time::Duration,
) -> GraphResult<Resp> {
    let fault = {
        let mut inner = state.own();
        match inner.fault {
            Some((fault, remaining)) => {
                inner.fault = (remaining > 1).then_some((fault, remaining - 1));
                Some(fault)
            }
            None => None,
        }
    };
    if let Some(fault) = fault {
        return Err(match fault {
            Fault::TooManyRequests { retry_after_secs } => {
                let mut e = graph_errors::throttled_rate(retry_after_secs);
                e.message = "Application is over its MailboxConcurrency limit.".into();
                e
            }
            Fault::ServerError { status } => graph_errors::server_error(status),
        });
    }
    let caller = auth::authenticate(state, &req.headers, ctx.now)?;
    if is_batch(&req.path) {
        return Err(graph_errors::bad_request(
            "Nested batch requests are not supported.",
        ));
    }
    let segments = split_path(&req.path)?;
    if segments
        .first()
        .is_some_and(|first| subscriptions::serves(first))
    {
        return subscriptions::serve(state, ctx, req, &caller, &segments).await;
    }
    if segments.first().is_some_and(|first| apps::serves(first)) {
        return apps::serve(state, ctx, req, &caller, &segments);
    }
    let (mailbox, rest) = match segments.split_first() {
        Some((first, rest)) if first.eq_ignore_ascii_case("me") => (MailboxRef::Me, rest),
        Some((first, rest)) if first.eq_ignore_ascii_case("users") => match rest.split_first() {
            Some((id, rest)) => (MailboxRef::User(id.clone()), rest),
            None => {
                return Err(graph_errors::bad_request(
                    "Listing users is not supported by the mock.",
                ));
            }
        },
        Some((first, _)) => return Err(graph_errors::segment_not_found(first)),
        None => return Err(graph_errors::bad_request("Invalid request.")),
    };
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    if rest.is_empty() {
        return if req.method == Method::GET {
            let inner = state.lock();
            users::get(&inner, ctx, req, &caller, &mailbox)
        } else {
            Err(graph_errors::method_not_allowed(req.method.as_str()))
        };
    }
    let route = Route::parse(&req.method, &rest)?;
    let target = {
        let dir = state.dir();
        let tenant = dir
            .tenant(caller.tenant)
            .ok_or_else(graph_errors::token_invalid)?;
        let target = auth::resolve(tenant, &caller, &mailbox)?;
        auth::authorize(tenant, &caller, &target, route.need())?;
        target
    };
    let _slot = state.throttle.acquire(&caller.app_id, &target.address)?;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut inner = state.lock();
    let op = Op {
        ctx,
        req,
        caller: &caller,
        target: &target,
    };
    route.run(&mut inner, &op)
}

/// Everything an operation needs to know about its request.
#[derive(Debug)]
pub(crate) struct Op<'a> {
    pub ctx: &'a Ctx,
    pub req: &'a Req,
    pub caller: &'a Caller,
    pub target: &'a Target,
}

impl Op<'_> {
    /// The directory of the caller's tenant.
    pub(crate) fn tenant<'i>(
        &self,
        inner: &'i GraphInner<'_>,
    ) -> GraphResult<&'i crate::directory::TenantSeed> {
        inner
            .dir
            .tenant(self.caller.tenant)
            .ok_or_else(graph_errors::token_invalid)
    }
}

/// Splits a path into decoded segments; `name('key')` and `name(key)` become `name`, `key`;
/// `name()` becomes `name`.
pub(crate) fn split_path(path: &str) -> GraphResult<Vec<String>> {
    let mut segments = Vec::new();
    for raw in path.split('/').filter(|s| !s.is_empty()) {
        let decoded = percent_decode(raw);
        // `name()`: a function called without parameters (`delta()`, what the Graph SDKs
        // send), the same as `name`.
        if let Some(function) = decoded.strip_suffix("()")
            && !function.is_empty()
        {
            segments.push(function.to_string());
        } else if let Some(open) = decoded.find('(')
            && decoded.ends_with(')')
            && open > 0
        {
            let name = &decoded[..open];
            let key = decoded[open + 1..decoded.len() - 1].trim_matches('\'');
            segments.push(name.to_string());
            segments.push(key.to_string());
        } else {
            segments.push(decoded);
        }
    }
    if segments.len() > 12 {
        return Err(graph_errors::bad_request(
            "The request URL has too many segments.",
        ));
    }
    Ok(segments)
}

/// Percent-decodes a path segment (`+` stays a plus, as in paths).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        let high = bytes.get(i + 1).copied().and_then(hex);
        let low = bytes.get(i + 2).copied().and_then(hex);
        match (bytes[i], high, low) {
            (b'%', Some(h), Some(l)) => {
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A mailbox operation, as routed.
#[derive(Debug)]
enum Route {
    ListFolders,
    GetFolder(String),
    ChildFolders(String),
    ListMessages(Option<String>),
    CreateMessage(Option<String>),
    Delta(String),
    GetMessage(String),
    PatchMessage(String),
    DeleteMessage(String),
    MessageMime(String),
    ListAttachments(String),
    AddAttachment(String),
    CreateUploadSession(String),
    GetAttachment(String, String),
    DeleteAttachment(String, String),
    AttachmentValue(String, String),
    Move(String),
    Copy(String),
    Send(String),
    Reply(String, bool),
    Forward(String),
    SendMail,
    CalendarView,
    ListEvents,
    CreateEvent,
    GetEvent(String),
    PatchEvent(String),
    DeleteEvent(String),
    Instances(String),
    GetSchedule,
    ListContacts,
    CreateContact,
    GetContact(String),
    PatchContact(String),
    DeleteContact(String),
}

impl Route {
    fn parse(method: &Method, rest: &[&str]) -> GraphResult<Route> {
        let lower: Vec<String> = rest.iter().map(|s| s.to_ascii_lowercase()).collect();
        let l: Vec<&str> = lower.iter().map(String::as_str).collect();
        let own = |i: usize| rest.get(i).map(|s| (*s).to_string()).unwrap_or_default();
        let m = method.clone();
        let route = match (l.as_slice(), m) {
            (["mailfolders"], Method::GET) => Route::ListFolders,
            (["mailfolders", _], Method::GET) => Route::GetFolder(own(1)),
            (["mailfolders", _, "childfolders"], Method::GET) => Route::ChildFolders(own(1)),
            (["mailfolders", _, "messages"], Method::GET) => Route::ListMessages(Some(own(1))),
            (["mailfolders", _, "messages"], Method::POST) => Route::CreateMessage(Some(own(1))),
            // `delta`, also as `delta()` (what the Graph SDKs send; see `split_path`) and
            // namespace-qualified, which Graph answers alike.
            (
                [
                    "mailfolders",
                    _,
                    "messages",
                    "delta" | "microsoft.graph.delta",
                ],
                Method::GET,
            ) => Route::Delta(own(1)),
            (["mailfolders", _, "messages", _], Method::GET) => Route::GetMessage(own(3)),
            (["mailfolders", _, "messages", _], Method::PATCH) => Route::PatchMessage(own(3)),
            (["mailfolders", _, "messages", _], Method::DELETE) => Route::DeleteMessage(own(3)),
            (["messages"], Method::GET) => Route::ListMessages(None),
            (["messages"], Method::POST) => Route::CreateMessage(None),
            (["messages", _], Method::GET) => Route::GetMessage(own(1)),
            (["messages", _], Method::PATCH) => Route::PatchMessage(own(1)),
            (["messages", _], Method::DELETE) => Route::DeleteMessage(own(1)),
            (["messages", _, "$value"], Method::GET) => Route::MessageMime(own(1)),
            (["messages", _, "attachments"], Method::GET) => Route::ListAttachments(own(1)),
            (["messages", _, "attachments"], Method::POST) => Route::AddAttachment(own(1)),
            (["messages", _, "attachments", "createuploadsession"], Method::POST) => {
                Route::CreateUploadSession(own(1))
            }
            (["messages", _, "attachments", _], Method::GET) => {
                Route::GetAttachment(own(1), own(3))
            }
            (["messages", _, "attachments", _], Method::DELETE) => {
                Route::DeleteAttachment(own(1), own(3))
            }
            (["messages", _, "attachments", _, "$value"], Method::GET) => {
                Route::AttachmentValue(own(1), own(3))
            }
            (["messages", _, "move"], Method::POST) => Route::Move(own(1)),
            (["messages", _, "copy"], Method::POST) => Route::Copy(own(1)),
            (["messages", _, "send"], Method::POST) => Route::Send(own(1)),
            (["messages", _, "reply"], Method::POST) => Route::Reply(own(1), false),
            (["messages", _, "replyall"], Method::POST) => Route::Reply(own(1), true),
            (["messages", _, "forward"], Method::POST) => Route::Forward(own(1)),
            (["sendmail"], Method::POST) => Route::SendMail,
            (["calendarview"] | ["calendar", "calendarview"], Method::GET) => Route::CalendarView,
            (["events"] | ["calendar", "events"], Method::GET) => Route::ListEvents,
            (["events"] | ["calendar", "events"], Method::POST) => Route::CreateEvent,
            (["events", _], Method::GET) => Route::GetEvent(own(1)),
            (["calendar", "events", _], Method::GET) => Route::GetEvent(own(2)),
            (["events", _], Method::PATCH) => Route::PatchEvent(own(1)),
            (["calendar", "events", _], Method::PATCH) => Route::PatchEvent(own(2)),
            (["events", _], Method::DELETE) => Route::DeleteEvent(own(1)),
            (["calendar", "events", _], Method::DELETE) => Route::DeleteEvent(own(2)),
            (["events", _, "instances"], Method::GET) => Route::Instances(own(1)),
            (["calendar", "getschedule"], Method::POST) => Route::GetSchedule,
            (["contacts"], Method::GET) => Route::ListContacts,
            (["contacts"], Method::POST) => Route::CreateContact,
            (["contacts", _], Method::GET) => Route::GetContact(own(1)),
            (["contacts", _], Method::PATCH) => Route::PatchContact(own(1)),
            (["contacts", _], Method::DELETE) => Route::DeleteContact(own(1)),
            (_, m) => return Err(unknown_route(&l, &m)),
        };
        Ok(route)
    }

    fn need(&self) -> Need {
        match self {
            Route::ListFolders
            | Route::GetFolder(_)
            | Route::ChildFolders(_)
            | Route::ListMessages(_)
            | Route::Delta(_)
            | Route::GetMessage(_)
            | Route::MessageMime(_)
            | Route::ListAttachments(_)
            | Route::GetAttachment(..)
            | Route::AttachmentValue(..) => Need::MailRead,
            Route::CreateMessage(_)
            | Route::PatchMessage(_)
            | Route::DeleteMessage(_)
            | Route::AddAttachment(_)
            | Route::CreateUploadSession(_)
            | Route::DeleteAttachment(..)
            | Route::Move(_)
            | Route::Copy(_) => Need::MailWrite,
            Route::Send(_) | Route::Reply(..) | Route::Forward(_) | Route::SendMail => {
                Need::MailSend
            }
            Route::CalendarView | Route::ListEvents | Route::GetEvent(_) | Route::Instances(_) => {
                Need::CalendarRead
            }
            Route::CreateEvent | Route::PatchEvent(_) | Route::DeleteEvent(_) => {
                Need::CalendarWrite
            }
            Route::GetSchedule => Need::FreeBusy,
            Route::ListContacts | Route::GetContact(_) => Need::ContactsRead,
            Route::CreateContact | Route::PatchContact(_) | Route::DeleteContact(_) => {
                Need::ContactsWrite
            }
        }
    }

    fn run(&self, inner: &mut GraphInner, op: &Op<'_>) -> GraphResult<Resp> {
        match self {
            Route::ListFolders => mail::list_folders(inner, op, None),
            Route::GetFolder(f) => mail::get_folder(inner, op, f),
            Route::ChildFolders(f) => mail::list_folders(inner, op, Some(f)),
            Route::ListMessages(f) => mail::list_messages(inner, op, f.as_deref()),
            Route::CreateMessage(f) => mail::create_message(inner, op, f.as_deref()),
            Route::Delta(f) => mail::delta(inner, op, f),
            Route::GetMessage(id) => mail::get_message(inner, op, id),
            Route::PatchMessage(id) => mail::patch_message(inner, op, id),
            Route::DeleteMessage(id) => mail::delete_message(inner, op, id),
            Route::MessageMime(id) => mail::mime(inner, op, id),
            Route::ListAttachments(id) => mail::list_attachments(inner, op, id),
            Route::AddAttachment(id) => mail::add_attachment(inner, op, id),
            Route::CreateUploadSession(id) => uploads::create(inner, op, id),
            Route::GetAttachment(id, a) => mail::get_attachment(inner, op, id, a, false),
            Route::AttachmentValue(id, a) => mail::get_attachment(inner, op, id, a, true),
            Route::DeleteAttachment(id, a) => mail::delete_attachment(inner, op, id, a),
            Route::Move(id) => mail::move_or_copy(inner, op, id, false),
            Route::Copy(id) => mail::move_or_copy(inner, op, id, true),
            Route::Send(id) => mail::send_draft(inner, op, id),
            Route::Reply(id, all) => mail::reply(inner, op, id, *all),
            Route::Forward(id) => mail::forward(inner, op, id),
            Route::SendMail => mail::send_mail(inner, op),
            Route::CalendarView => calendar::calendar_view(inner, op, None),
            Route::Instances(id) => calendar::calendar_view(inner, op, Some(id)),
            Route::ListEvents => calendar::list_events(inner, op),
            Route::CreateEvent => calendar::create_event(inner, op),
            Route::GetEvent(id) => calendar::get_event(inner, op, id),
            Route::PatchEvent(id) => calendar::patch_event(inner, op, id),
            Route::DeleteEvent(id) => calendar::delete_event(inner, op, id),
            Route::GetSchedule => calendar::get_schedule(inner, op),
            Route::ListContacts => contacts::list(inner, op),
            Route::CreateContact => contacts::create(inner, op),
            Route::GetContact(id) => contacts::get(inner, op, id),
            Route::PatchContact(id) => contacts::patch(inner, op, id),
            Route::DeleteContact(id) => contacts::delete(inner, op, id),
        }
    }
}

/// Graph's answer for a path it does not know: the first unknown segment is named; a known
/// path with another method answers 405.
fn unknown_route(lower: &[&str], method: &Method) -> GraphError {
    const KNOWN: &[&str] = &[
        "mailfolders",
        "childfolders",
        "messages",
        "delta",
        "microsoft.graph.delta",
        "$value",
        "attachments",
        "move",
        "copy",
        "send",
        "reply",
        "replyall",
        "forward",
        "sendmail",
        "calendarview",
        "calendar",
        "events",
        "instances",
        "getschedule",
        "contacts",
    ];
    let keyword_positions: &[usize] = match lower.first() {
        Some(&"mailfolders") => &[0, 2, 4],
        Some(&"messages") => &[0, 2, 4],
        Some(&"calendar") => &[0, 1],
        Some(&"events") => &[0, 2],
        _ => &[0],
    };
    for i in keyword_positions {
        if let Some(segment) = lower.get(*i)
            && !KNOWN.contains(segment)
        {
            return graph_errors::segment_not_found(segment);
        }
    }
    if lower.len() > 6 {
        return graph_errors::segment_not_found(lower.last().copied().unwrap_or_default());
    }
    graph_errors::method_not_allowed(method.as_str())
}
