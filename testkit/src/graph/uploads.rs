//! Upload sessions for large file attachments (Graph "Attach large files to Outlook messages or
//! events", `attachment: createUploadSession`).
//!
//! `POST …/messages/{id}/attachments/createUploadSession` opens a session for a file of 3 MiB
//! to 150 MiB and answers a pre-authenticated `uploadUrl`. On Exchange Online that URL is on
//! `outlook.office.com` (`…/api/v2.0/Users('…')/Messages('…')/AttachmentSessions('…')?authtoken=…`);
//! here it has the same shape on the mock's own base URL. `PUT`s to it carry `Content-Range`
//! and at most 4 MiB each, in order, and no `Authorization` header (Exchange refuses one with
//! 401 `InvalidAudience`); the last answers 201 with a `Location` naming the attachment, which
//! then is on the message. `DELETE` cancels the session.

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use bytes::Bytes;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::dispatch::Op;
use super::error::{GraphError, GraphResult, graph_errors};
use super::http::{Ctx, Req, Resp, fmt_instant};
use super::ids::{GraphIds as _, Kind};
use super::mail::{field, json_body, mailbox_mut};
use super::{GraphInner, GraphState, MAX_BODY, faults};
use crate::mailstore::mailbox::Attachment;

/// Smallest and largest file an upload session takes.
pub(crate) const MIN_SIZE: u64 = 3 * 1024 * 1024;
pub(crate) const MAX_SIZE: u64 = 150 * 1024 * 1024;
/// How long an upload URL works (on the mock's clock).
const LIFETIME: time::Duration = time::Duration::hours(2);

/// An upload in progress.
#[derive(Debug)]
pub(crate) struct UploadSession {
    pub mailbox: String,
    pub user_key: String,
    pub message_seq: u64,
    pub message_id: String,
    pub name: String,
    pub content_type: String,
    pub is_inline: bool,
    pub content_id: Option<String>,
    pub size: u64,
    pub token: String,
    pub expires: OffsetDateTime,
    pub received: Vec<u8>,
}

fn upload_url(ctx: &Ctx, s: &UploadSession, id: &str) -> String {
    format!(
        "{}/api/v2.0/Users('{}')/Messages('{}')/AttachmentSessions('{id}')?authtoken={}",
        ctx.base_url, s.user_key, s.message_id, s.token
    )
}

/// `POST …/messages/{id}/attachments/createUploadSession`.
pub(crate) fn create(inner: &mut GraphInner, op: &Op<'_>, id: &str) -> GraphResult<Resp> {
    let map = json_body(op.req)?;
    let item = field(&map, "AttachmentItem")
        .and_then(Value::as_object)
        .ok_or_else(|| graph_errors::invalid_request("The AttachmentItem parameter is missing."))?;
    for key in item.keys() {
        const KNOWN: &[&str] = &[
            "attachmentType",
            "name",
            "size",
            "contentType",
            "isInline",
            "contentId",
        ];
        if !KNOWN.iter().any(|k| k.eq_ignore_ascii_case(key)) && !key.starts_with('@') {
            return Err(graph_errors::body_unknown_property(key, "attachmentItem"));
        }
    }
    let text = |name: &str| {
        field(item, name)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match text("attachmentType") {
        Some(t) if t.eq_ignore_ascii_case("file") => {}
        _ => {
            return Err(graph_errors::invalid_request(
                "The attachmentType must be 'file' (the mock supports file attachments only).",
            ));
        }
    }
    let name = text("name")
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| graph_errors::invalid_request("The attachment name is missing."))?;
    let size = field(item, "size")
        .and_then(Value::as_u64)
        .ok_or_else(|| graph_errors::invalid_request("The attachment size is missing."))?;
    if size < MIN_SIZE {
        return Err(GraphError::bad_request(
            "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
            "Attachment size must be greater than the minimum size.",
        ));
    }
    if size > MAX_SIZE {
        return Err(GraphError::bad_request(
            "ErrorAttachmentSizeShouldNotBeGreaterThanMaximumSize",
            "Attachment size must be less than the maximum size of 150 MB.",
        ));
    }
    let target = op.target.address.clone();
    let tenant_id = op.tenant(inner)?.id.clone();
    let object_id = inner
        .entry(&target)
        .map(|e| e.object_id.clone())
        .unwrap_or_default();
    let mb = mailbox_mut(inner, op)?;
    let seq = {
        let decoded = mb.decode(id, &[Kind::Message])?;
        if !mb.messages.contains_key(&decoded.seq) {
            return Err(graph_errors::item_not_found());
        }
        decoded.seq
    };
    let session = UploadSession {
        mailbox: target,
        user_key: format!("{object_id}@{tenant_id}"),
        message_seq: seq,
        message_id: mb.message_id(seq),
        name,
        content_type: text("contentType").unwrap_or_else(|| "application/octet-stream".into()),
        is_inline: field(item, "isInline")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        content_id: text("contentId"),
        size,
        token: format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ),
        expires: op.ctx.now + LIFETIME,
        received: Vec::new(),
    };
    let session_id = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .to_ascii_uppercase();
    let body = json!({
        "@odata.context": format!("{}/$metadata#microsoft.graph.uploadSession", op.ctx.graph_url()),
        "uploadUrl": upload_url(op.ctx, &session, &session_id),
        "expirationDateTime": fmt_instant(session.expires),
        "nextExpectedRanges": ["0-"],
    });
    inner.uploads.insert(session_id, session);
    Ok(Resp::json(StatusCode::CREATED, body))
}

fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> GraphError {
    GraphError::new(status, code, message)
}

/// `PUT` / `DELETE` on an upload URL (`/api/v2.0/…/AttachmentSessions('{id}')?authtoken=…`).
pub(crate) async fn serve(state: &GraphState, request: Request) -> Resp {
    let (parts, body) = request.into_parts();
    let ctx = Ctx::new(state.base_url(), state.now(), &parts.headers);
    let req = Req {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: Req::parse_query(parts.uri.query().unwrap_or_default()),
        headers: parts.headers,
        body: Vec::new(),
    };
    let picked = match faults::before(state, &ctx, &req, false).await {
        Ok(picked) => picked,
        Err(mut resp) => {
            ctx.decorate(&mut resp);
            return resp;
        }
    };
    let declared = req
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    let body = if declared.is_some_and(|n| n > MAX_BODY) {
        Err(graph_errors::too_large())
    } else {
        axum::body::to_bytes(body, MAX_BODY)
            .await
            .map_err(|_| graph_errors::too_large())
    };
    let mut resp = match body.and_then(|body| {
        let mut inner = state.lock();
        let now = ctx.now;
        handle(&mut inner, &ctx, &req, &body, now)
    }) {
        Ok(resp) => resp,
        Err(e) => e.into_resp(&ctx),
    };
    ctx.decorate(&mut resp);
    match picked {
        Some(picked) => faults::after(state, &ctx, &req, &picked, resp),
        None => resp,
    }
}

fn handle(
    inner: &mut GraphInner,
    ctx: &Ctx,
    req: &Req,
    body: &[u8],
    now: OffsetDateTime,
) -> GraphResult<Resp> {
    if req.headers.contains_key("authorization") {
        // What Exchange answers when a Graph token comes along to its pre-authenticated URL.
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "InvalidAudience",
            "The audience claim value is invalid 'aud'.",
        ));
    }
    let session_id = req
        .path
        .split("AttachmentSessions('")
        .nth(1)
        .and_then(|rest| rest.split_once("')"))
        .map(|(id, _)| id.to_string())
        .ok_or_else(graph_errors::item_not_found)?;
    let token = req.option("authtoken").unwrap_or_default().to_string();
    let session = inner
        .uploads
        .get(&session_id)
        .ok_or_else(graph_errors::item_not_found)?;
    if token.is_empty() || token != session.token || now > session.expires {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token validation failure.",
        ));
    }
    if req.method == Method::DELETE {
        inner.uploads.remove(&session_id);
        return Ok(Resp::empty(StatusCode::NO_CONTENT));
    }
    if req.method != Method::PUT {
        return Err(graph_errors::method_not_allowed(req.method.as_str()));
    }
    let range = req
        .headers
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_content_range)
        .ok_or_else(|| {
            graph_errors::invalid_request(
                "The Content-Range header is missing or malformed; expected 'bytes {start}-{end}/{total}'.",
            )
        })?;
    let (start, end, total) = range;
    if total != session.size {
        return Err(graph_errors::invalid_request(format!(
            "The Content-Range total {total} does not match the size of the upload session ({}).",
            session.size
        )));
    }
    let expected = session.received.len() as u64;
    if start != expected || end >= total || end < start {
        return Err(error(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "InvalidRange",
            format!(
                "The range {start}-{end} is not the next expected range; the next expected range starts at {expected}."
            ),
        ));
    }
    if end - start + 1 != body.len() as u64 {
        return Err(graph_errors::invalid_request(
            "The Content-Range header length does not match the provided number of bytes.",
        ));
    }
    let session = inner
        .uploads
        .get_mut(&session_id)
        .ok_or_else(graph_errors::item_not_found)?;
    session.received.extend_from_slice(body);
    let next = session.received.len() as u64;
    if next < session.size {
        return Ok(Resp::ok(json!({
            "@odata.context": format!(
                "{}/api/v2.0/$metadata#Users('{}')/Messages('{}')/AttachmentSessions/$entity",
                ctx.base_url, session.user_key, session.message_id
            ),
            "expirationDateTime": fmt_instant(session.expires),
            "nextExpectedRanges": [next.to_string()],
        })));
    }
    let Some(session) = inner.uploads.remove(&session_id) else {
        return Err(graph_errors::item_not_found());
    };
    let mb = inner
        .mailbox_mut(&session.mailbox)
        .ok_or_else(graph_errors::item_not_found)?;
    let m = mb
        .messages
        .get_mut(&session.message_seq)
        .ok_or_else(graph_errors::item_not_found)?;
    let attachment_seq = m.add_attachment(Attachment {
        seq: 0,
        name: session.name,
        content_type: session.content_type,
        bytes: Bytes::from(session.received),
        is_inline: session.is_inline,
        content_id: session.content_id,
        modified: now,
    });
    mb.touch_message(session.message_seq, now);
    let attachment_id = mb.id(
        Kind::Attachment,
        session.message_seq,
        i64::try_from(attachment_seq).ok(),
    );
    let mut resp = Resp::empty(StatusCode::CREATED);
    resp.header(
        "Location",
        format!(
            "{}/api/v2.0/Users('{}')/Messages('{}')/Attachments('{attachment_id}')",
            ctx.base_url, session.user_key, session.message_id
        ),
    );
    Ok(resp)
}

/// `bytes {start}-{end}/{total}`.
fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    Some((
        start.trim().parse().ok()?,
        end.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::parse_content_range;

    #[test]
    fn content_ranges_parse_strictly() {
        assert_eq!(
            parse_content_range("bytes 0-2097151/3483322"),
            Some((0, 2_097_151, 3_483_322))
        );
        assert_eq!(parse_content_range("bytes */3483322"), None);
        assert_eq!(parse_content_range("0-1/2"), None);
        assert_eq!(parse_content_range("bytes 0-x/2"), None);
    }
}
