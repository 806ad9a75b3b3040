//! Mailbox routes for the calling application's user, each a thin mapping onto a capability of
//! core's mailbox `Backend`: `/api/v1/connections/{connection}/users/{principal}/…`.
//!
//! On a delegated connection `{principal}` is a linked account (`?mailbox=` then names a shared or
//! delegated mailbox it may use); on an app-only connection it is a static user, mapped by an admin
//! to the mailbox the app acts on. The [`UserMailbox`] extractor resolves all of that.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use exgate_core::mailbox::{
    AttendeeKind, Backend, Body, BodyKind, ByteStream, Contact, ContactDraft, EventDraft,
    EventTime, FolderRef, Importance, MailboxRef, MessageQuery, MessageSummary, NewAttachment,
    NewMessage, Recipient, Recurrence, TimeZone,
};
use exgate_core::model::{EmailAddress, Principal};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::extract::{Json, Path, Query};
use crate::openapi::{self, MailboxErrors};
use crate::{ApiError, AppState};

type ApiResult<T> = Result<T, ApiError>;

/// The user in the path of every mailbox route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct UserPath {
    /// The connection's name.
    connection: String,
    /// A linked account's principal on a delegated connection; a static user on an app-only one.
    principal: String,
}

/// A message in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct MessageId {
    /// The message's ID.
    id: String,
}

/// An attachment in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct AttachmentId {
    /// The message's ID.
    id: String,
    /// The attachment's ID.
    attachment: String,
}

/// An event in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct EventId {
    /// The event's ID.
    id: String,
}

/// A contact in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ContactId {
    /// The contact's ID.
    id: String,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct On {
    /// A shared or another user's mailbox, for a delegated account (not on app-only
    /// connections: there the static user names the mailbox).
    mailbox: Option<String>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

fn address(s: &str) -> ApiResult<Recipient> {
    s.parse::<EmailAddress>()
        .map(|a| Recipient::address(a.as_str()))
        .map_err(|e| bad(format!("`{s}` is not an email address: {}", e.0)))
}

/// The mailbox a request acts on: resolved from `{connection}` and `{principal}` in the path,
/// `?mailbox=` in the query, and the caller's right to use the connection.
pub(crate) struct UserMailbox {
    backend: Backend,
    mailbox: MailboxRef,
}

impl FromRequestParts<AppState> for UserMailbox {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> ApiResult<Self> {
        let caller = Caller::from_request_parts(parts, s).await?;
        let Path(UserPath {
            connection,
            principal,
        }) = Path::<UserPath>::from_request_parts(parts, s).await?;
        let Query(on) = Query::<On>::from_request_parts(parts, s).await?;
        let connection = caller.connection(s, &connection).await?;
        let principal = principal
            .parse::<Principal>()
            .map_err(|e| bad(format!("invalid principal: {}", e.0)))?;
        let mailbox = on
            .mailbox
            .as_deref()
            .map(|m| {
                m.parse::<EmailAddress>()
                    .map_err(|e| bad(format!("`{m}` is not an email address: {}", e.0)))
            })
            .transpose()?;
        let (backend, mailbox) = s
            .mailboxes
            .for_connection(&connection, &principal, mailbox.as_ref())
            .await?;
        Ok(Self { backend, mailbox })
    }
}

fn instant(field: &str, s: &str) -> ApiResult<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
        bad(format!(
            "`{field}` must be an RFC 3339 time such as 2026-12-01T00:00:00Z"
        ))
    })
}

/// List mail folders.
#[utoipa::path(
    get,
    path = "/api/v1/connections/{connection}/users/{principal}/folders",
    tag = "mailbox",
    params(UserPath, On),
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 200, description = "The mail folders", body = Vec<openapi::Folder>),
        MailboxErrors,
    ),
)]
pub(crate) async fn folders(t: UserMailbox) -> ApiResult<Response> {
    Ok(Json(t.backend.mail()?.folders(&t.mailbox).await?).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// A well-known folder (`inbox`, `drafts`, `sent-items`, `deleted-items`, `archive`,
    /// `junk-email`, `outbox`) or a folder ID.
    #[param(default = "inbox")]
    folder: Option<String>,
    /// Only unread messages.
    #[serde(default)]
    unread: bool,
    /// Only messages from this address.
    from: Option<String>,
    /// Only messages received at or after this RFC 3339 time.
    since: Option<String>,
    /// Only messages with attachments.
    #[serde(default)]
    with_attachments: bool,
    /// Page size (1–1000).
    #[param(default = 25, minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next_page` of the previous answer.
    page: Option<String>,
}

/// List a page of messages.
#[utoipa::path(
    get,
    path = "/api/v1/connections/{connection}/users/{principal}/messages",
    tag = "mailbox",
    params(UserPath, ListQuery, On),
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 200, description = "A page of messages, newest first", body = MessagePage),
        MailboxErrors,
    ),
)]
pub(crate) async fn messages(t: UserMailbox, Query(q): Query<ListQuery>) -> ApiResult<Response> {
    let query = MessageQuery {
        folder: Some(FolderRef::parse(q.folder.as_deref().unwrap_or("inbox"))),
        unread_only: q.unread,
        from: q
            .from
            .as_deref()
            .map(address)
            .transpose()?
            .map(|r| r.address),
        since: q
            .since
            .as_deref()
            .map(|v| instant("since", v))
            .transpose()?,
        with_attachments: q.with_attachments,
        page_size: q.limit.unwrap_or(25).clamp(1, 1000),
    };
    let page = t
        .backend
        .mail()?
        .messages(&t.mailbox, &query, q.page.as_deref())
        .await?;
    Ok(Json(MessagePage {
        messages: page.items,
        next_page: page.next,
    })
    .into_response())
}

/// A page of messages.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MessagePage {
    #[schema(value_type = Vec<openapi::MessageSummary>)]
    messages: Vec<MessageSummary>,
    /// Pass as `page` for the next page; null on the last.
    next_page: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ShowQuery {
    /// `text` or `html`.
    body: Option<String>,
}

/// Show a message.
#[utoipa::path(
    get,
    path = "/api/v1/connections/{connection}/users/{principal}/messages/{id}",
    tag = "mailbox",
    params(UserPath, MessageId, ShowQuery, On),
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 200, description = "The message: headers, body, attachments' metadata", body = openapi::Message),
        MailboxErrors,
    ),
)]
pub(crate) async fn message(
    t: UserMailbox,
    Path(MessageId { id }): Path<MessageId>,
    Query(q): Query<ShowQuery>,
) -> ApiResult<Response> {
    let kind = match q.body.as_deref() {
        None => None,
        Some("text") => Some(BodyKind::Text),
        Some("html") => Some(BodyKind::Html),
        Some(other) => return Err(bad(format!("`body={other}`: expected text or html"))),
    };
    Ok(Json(t.backend.mail()?.message(&t.mailbox, &id, kind).await?).into_response())
}

/// An attachment's content.
#[utoipa::path(
    get,
    path = "/api/v1/connections/{connection}/users/{principal}/messages/{id}/attachments/{attachment}",
    tag = "mailbox",
    params(UserPath, AttachmentId, On),
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 200, description = "The attachment's bytes, with its content type and `Content-Disposition: attachment; filename=…`", content_type = "application/octet-stream", body = inline(openapi::Binary)),
        MailboxErrors,
    ),
)]
pub(crate) async fn attachment(
    t: UserMailbox,
    Path(AttachmentId { id, attachment }): Path<AttachmentId>,
) -> ApiResult<Response> {
    let a = t
        .backend
        .mail()?
        .attachment(&t.mailbox, &id, &attachment)
        .await?;
    let mut resp = streamed(a.content);
    let ct = a
        .info
        .content_type
        .unwrap_or_else(|| "application/octet-stream".into());
    if let Ok(v) = HeaderValue::from_str(&ct) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    let name: String = a
        .info
        .name
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\' || *c == ' ')
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// A message's MIME content.
#[utoipa::path(
    get,
    path = "/api/v1/connections/{connection}/users/{principal}/messages/{id}/mime",
    tag = "mailbox",
    params(UserPath, MessageId, On),
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 200, description = "The message as RFC 5322 (MIME)", content_type = "message/rfc822", body = String),
        MailboxErrors,
    ),
)]
pub(crate) async fn mime(
    t: UserMailbox,
    Path(MessageId { id }): Path<MessageId>,
) -> ApiResult<Response> {
    let mut resp = streamed(t.backend.mail()?.mime(&t.mailbox, &id).await?);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("message/rfc822"),
    );
    Ok(resp)
}

/// A response whose body is passed on as it arrives, never held whole. A failure midway
/// aborts the response (the client sees a short body and a broken connection, never a
/// complete-looking one).
fn streamed(body: ByteStream) -> Response {
    let length = body.length();
    let chunks = futures_util::stream::unfold(Some(body), |state| async move {
        let mut body = state?;
        match body.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), Some(body))),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "a streamed mailbox body broke off");
                Some((Err(e), None))
            }
        }
    });
    let mut resp = axum::body::Body::from_stream(chunks).into_response();
    if let Some(n) = length {
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    resp
}

/// A file to attach.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AttachmentBody {
    #[schema(example = "report.pdf")]
    name: String,
    /// Default `application/octet-stream`.
    #[serde(default)]
    content_type: Option<String>,
    /// Base64 of the file.
    content_base64: String,
}

/// A message to send.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendBody {
    /// At least one address.
    #[schema(example = json!(["megan@contoso.onmicrosoft.com"]))]
    to: Vec<String>,
    #[serde(default)]
    cc: Vec<String>,
    #[serde(default)]
    bcc: Vec<String>,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    body: String,
    /// `body` is HTML rather than text.
    #[serde(default)]
    html: bool,
    #[serde(default)]
    attachments: Vec<AttachmentBody>,
    /// `low`, `normal` (default) or `high`.
    #[serde(default)]
    importance: Option<String>,
    /// Send as this shared mailbox (needs Send As).
    #[serde(default)]
    from: Option<String>,
    /// Keep a copy in Sent Items.
    #[serde(default = "yes")]
    #[schema(default = true)]
    save_to_sent: bool,
}

fn yes() -> bool {
    true
}

/// A send as `multipart/form-data`: the message as JSON in a part named `message` (its
/// `attachments` may be left out), and one part per file, whose file name and content type are
/// the attachment's. No base64: the files travel as they are.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema for the OpenAPI document only")]
pub(crate) struct SendForm {
    /// The message, as the JSON body would carry it.
    message: SendBody,
    /// Files to attach (any field name; each part's filename names the attachment).
    #[schema(value_type = Vec<String>, format = Binary)]
    files: Vec<Vec<u8>>,
}

/// A send's body: JSON ([`SendBody`], attachments in base64) or a [`SendForm`].
pub(crate) struct SendRequest {
    body: SendBody,
    /// Files from a form, beside those of `body`.
    files: Vec<NewAttachment>,
}

impl axum::extract::FromRequest<AppState> for SendRequest {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, s: &AppState) -> ApiResult<Self> {
        let multipart = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("multipart/form-data")
            });
        if !multipart {
            let Json(body) = Json::<SendBody>::from_request(req, s).await?;
            return Ok(Self {
                body,
                files: Vec::new(),
            });
        }
        let form_error = |e: axum::extract::multipart::MultipartError| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                return crate::extract::too_large();
            }
            bad(format!("the form cannot be read: {}", e.body_text()))
        };
        let mut form = axum::extract::Multipart::from_request(req, s)
            .await
            .map_err(|e| bad(format!("the form cannot be read: {}", e.body_text())))?;
        let (mut body, mut files) = (None, Vec::new());
        while let Some(field) = form.next_field().await.map_err(form_error)? {
            let name = field.name().unwrap_or_default().to_owned();
            if let Some(file) = field.file_name().map(attachment_name) {
                let content_type = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_owned();
                let content = field.bytes().await.map_err(form_error)?;
                files.push(NewAttachment {
                    name: file,
                    content_type,
                    content,
                });
            } else if name == "message" {
                let json = field.bytes().await.map_err(form_error)?;
                body = Some(crate::extract::decode::<SendBody>(&json).map_err(|e| {
                    bad(format!(
                        "the `message` part is not a message: {}",
                        e.message
                    ))
                })?);
            } else {
                return Err(bad(format!(
                    "unexpected form field `{name}`: send the message as JSON in a part named `message` and each attachment as a file part"
                )));
            }
        }
        let body = body.ok_or_else(|| bad("the form has no `message` part"))?;
        Ok(Self { body, files })
    }
}

/// A file name as an attachment's name: its last path component, never empty.
fn attachment_name(file: &str) -> String {
    let name = file.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    if name.is_empty() || name == "." || name == ".." {
        "attachment".to_owned()
    } else {
        name.to_owned()
    }
}

fn addresses(list: &[String]) -> ApiResult<Vec<Recipient>> {
    list.iter().map(|a| address(a)).collect()
}

/// Send a message.
#[utoipa::path(
    post,
    path = "/api/v1/connections/{connection}/users/{principal}/messages",
    tag = "mailbox",
    params(UserPath, On),
    request_body(content(
        (SendBody = "application/json"),
        (SendForm = "multipart/form-data"),
    )),
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 202, description = "Sent", body = Sent),
        (status = 413, description = "The body is over limits.max_item_mb"),
        (status = 422, description = "The body is not JSON of this shape"),
        MailboxErrors,
    ),
)]
pub(crate) async fn send(t: UserMailbox, request: SendRequest) -> ApiResult<Response> {
    let SendRequest { body: b, files } = request;
    if b.to.is_empty() {
        return Err(bad("`to` needs at least one address"));
    }
    let attachments = b
        .attachments
        .iter()
        .map(|a| {
            let content = base64::engine::general_purpose::STANDARD
                .decode(a.content_base64.as_bytes())
                .map_err(|_| {
                    bad(format!(
                        "attachment `{}`: content_base64 is not base64",
                        a.name
                    ))
                })?;
            Ok(NewAttachment {
                name: a.name.clone(),
                content_type: a
                    .content_type
                    .clone()
                    .unwrap_or_else(|| "application/octet-stream".into()),
                content: content.into(),
            })
        })
        .chain(files.into_iter().map(Ok))
        .collect::<ApiResult<Vec<_>>>()?;
    let message = NewMessage {
        to: addresses(&b.to)?,
        cc: addresses(&b.cc)?,
        bcc: addresses(&b.bcc)?,
        subject: b.subject,
        body: if b.html {
            Body::html(b.body)
        } else {
            Body::text(b.body)
        },
        attachments,
        importance: match b.importance.as_deref() {
            None | Some("normal") => Importance::Normal,
            Some("low") => Importance::Low,
            Some("high") => Importance::High,
            Some(other) => {
                return Err(bad(format!(
                    "`{other}` is not an importance; expected low, normal or high"
                )));
            }
        },
        from: b.from.as_deref().map(address).transpose()?,
        save_to_sent: b.save_to_sent,
    };
    t.backend.mail()?.send(&t.mailbox, &message).await?;
    Ok((StatusCode::ACCEPTED, Json(Sent { status: "sent" })).into_response())
}

/// The answer to a send.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Sent {
    /// `sent`.
    status: &'static str,
}

/// A reply.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplyBody {
    /// Text above the quoted message.
    #[serde(default)]
    comment: String,
    /// Reply to all recipients.
    #[serde(default)]
    all: bool,
}

/// Reply (or reply all) to a message.
#[utoipa::path(
    post,
    path = "/api/v1/connections/{connection}/users/{principal}/messages/{id}/reply",
    tag = "mailbox",
    params(UserPath, MessageId, On),
    request_body = ReplyBody,
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 202, description = "Sent"),
        (status = 422, description = "The body is not JSON of this shape"),
        MailboxErrors,
    ),
)]
pub(crate) async fn reply(
    t: UserMailbox,
    Path(MessageId { id }): Path<MessageId>,
    Json(b): Json<ReplyBody>,
) -> ApiResult<Response> {
    t.backend
        .mail()?
        .reply(&t.mailbox, &id, &b.comment, b.all)
        .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// A forward.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForwardBody {
    to: Vec<String>,
    /// Text above the forwarded message.
    #[serde(default)]
    comment: String,
}

/// Forward a message.
#[utoipa::path(
    post,
    path = "/api/v1/connections/{connection}/users/{principal}/messages/{id}/forward",
    tag = "mailbox",
    params(UserPath, MessageId, On),
    request_body = ForwardBody,
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 202, description = "Sent"),
        (status = 422, description = "The body is not JSON of this shape"),
        MailboxErrors,
    ),
)]
pub(crate) async fn forward(
    t: UserMailbox,
    Path(MessageId { id }): Path<MessageId>,
    Json(b): Json<ForwardBody>,
) -> ApiResult<Response> {
    t.backend
        .mail()?
        .forward(&t.mailbox, &id, &addresses(&b.to)?, &b.comment)
        .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Where to move a message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MoveBody {
    /// A well-known folder (`archive`, `deleted-items`, …) or a folder ID.
    #[schema(example = "archive")]
    folder: String,
}

/// Move a message to another folder.
#[utoipa::path(
    post,
    path = "/api/v1/connections/{connection}/users/{principal}/messages/{id}/move",
    tag = "mailbox",
    params(UserPath, MessageId, On),
    request_body = MoveBody,
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 200, description = "Moved; a moved message has a new ID", body = Moved),
        (status = 422, description = "The body is not JSON of this shape"),
        MailboxErrors,
    ),
)]
pub(crate) async fn move_message(
    t: UserMailbox,
    Path(MessageId { id }): Path<MessageId>,
    Json(b): Json<MoveBody>,
) -> ApiResult<Response> {
    let new_id = t
        .backend
        .mail()?
        .move_message(&t.mailbox, &id, &FolderRef::parse(&b.folder))
        .await?;
    Ok(Json(Moved { id: new_id }).into_response())
}

/// The answer to a move.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Moved {
    /// The message's ID in its new folder.
    id: String,
}

/// Read or unread.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadBody {
    read: bool,
}

/// Mark a message read or unread.
#[utoipa::path(
    post,
    path = "/api/v1/connections/{connection}/users/{principal}/messages/{id}/read",
    tag = "mailbox",
    params(UserPath, MessageId, On),
    request_body = ReadBody,
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 204, description = "Marked"),
        (status = 422, description = "The body is not JSON of this shape"),
        MailboxErrors,
    ),
)]
pub(crate) async fn mark_read(
    t: UserMailbox,
    Path(MessageId { id }): Path<MessageId>,
    Json(b): Json<ReadBody>,
) -> ApiResult<Response> {
    t.backend.mail()?.set_read(&t.mailbox, &id, b.read).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Delete a message.
#[utoipa::path(
    delete,
    path = "/api/v1/connections/{connection}/users/{principal}/messages/{id}",
    tag = "mailbox",
    params(UserPath, MessageId, On),
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 204, description = "Deleted (moved to Deleted Items)"),
        MailboxErrors,
    ),
)]
pub(crate) async fn delete_message(
    t: UserMailbox,
    Path(MessageId { id }): Path<MessageId>,
) -> ApiResult<Response> {
    t.backend.mail()?.delete_message(&t.mailbox, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RangeQuery {
    /// RFC 3339, e.g. `2026-12-01T00:00:00Z`.
    start: String,
    /// RFC 3339, after `start`.
    end: String,
    /// IANA or Windows zone for the answer's times (default UTC); answers name it by its IANA
    /// name.
    tz: Option<String>,
}

/// List the events in a range.
#[utoipa::path(
    get,
    path = "/api/v1/connections/{connection}/users/{principal}/events",
    tag = "mailbox",
    params(UserPath, RangeQuery, On),
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 200, description = "The events in the range, recurrences expanded, ordered by start", body = Vec<openapi::Event>),
        MailboxErrors,
    ),
)]
pub(crate) async fn events(t: UserMailbox, Query(q): Query<RangeQuery>) -> ApiResult<Response> {
    let (start, end) = (instant("start", &q.start)?, instant("end", &q.end)?);
    if end <= start {
        return Err(bad("`end` must be after `start`"));
    }
    let tz =
        q.tz.as_deref()
            .map(|name| TimeZone::parse(name).map_err(|e| bad(format!("`tz`: {e}"))))
            .transpose()?;
    Ok(Json(
        t.backend
            .calendar()?
            .events(&t.mailbox, start, end, tz.as_ref())
            .await?,
    )
    .into_response())
}

/// An event to create, or the fields of one to change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventBody {
    subject: Option<String>,
    #[schema(value_type = Option<openapi::EventTime>)]
    start: Option<EventTime>,
    #[schema(value_type = Option<openapi::EventTime>)]
    end: Option<EventTime>,
    is_all_day: Option<bool>,
    location: Option<String>,
    /// Text.
    body: Option<String>,
    /// Required attendees' addresses.
    #[serde(default)]
    attendees: Option<Vec<String>>,
    /// Optional attendees' addresses.
    #[serde(default)]
    optional_attendees: Option<Vec<String>>,
    /// Add a Teams meeting.
    online_meeting: Option<bool>,
    /// Make it a recurring series (checked: interval 1 or more, days that exist, at least one
    /// day of the week where the pattern needs days).
    #[schema(value_type = Option<openapi::Recurrence>)]
    recurrence: Option<Recurrence>,
}

impl EventBody {
    fn draft(self) -> ApiResult<EventDraft> {
        let mut attendees: Option<Vec<(Recipient, AttendeeKind)>> = None;
        for (list, kind) in [
            (self.attendees, AttendeeKind::Required),
            (self.optional_attendees, AttendeeKind::Optional),
        ] {
            if let Some(list) = list {
                let entries = attendees.get_or_insert_with(Vec::new);
                for a in &list {
                    entries.push((address(a)?, kind));
                }
            }
        }
        Ok(EventDraft {
            subject: self.subject,
            start: self.start,
            end: self.end,
            is_all_day: self.is_all_day,
            location: self.location,
            body: self.body.map(Body::text),
            attendees,
            recurrence: self.recurrence,
            online_meeting: self.online_meeting,
        })
    }
}

/// Create an event.
#[utoipa::path(
    post,
    path = "/api/v1/connections/{connection}/users/{principal}/events",
    tag = "mailbox",
    params(UserPath, On),
    request_body = EventBody,
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 201, description = "Created; attendees are invited", body = openapi::Event),
        (status = 422, description = "The body is not JSON of this shape"),
        MailboxErrors,
    ),
)]
pub(crate) async fn create_event(t: UserMailbox, Json(b): Json<EventBody>) -> ApiResult<Response> {
    let event = t
        .backend
        .calendar()?
        .create_event(&t.mailbox, &b.draft()?)
        .await?;
    Ok((StatusCode::CREATED, Json(event)).into_response())
}

/// Change the given fields of an event.
#[utoipa::path(
    patch,
    path = "/api/v1/connections/{connection}/users/{principal}/events/{id}",
    tag = "mailbox",
    params(UserPath, EventId, On),
    request_body = EventBody,
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 200, description = "The changed event", body = openapi::Event),
        (status = 422, description = "The body is not JSON of this shape"),
        MailboxErrors,
    ),
)]
pub(crate) async fn update_event(
    t: UserMailbox,
    Path(EventId { id }): Path<EventId>,
    Json(b): Json<EventBody>,
) -> ApiResult<Response> {
    Ok(Json(
        t.backend
            .calendar()?
            .update_event(&t.mailbox, &id, &b.draft()?)
            .await?,
    )
    .into_response())
}

/// Delete an event.
#[utoipa::path(
    delete,
    path = "/api/v1/connections/{connection}/users/{principal}/events/{id}",
    tag = "mailbox",
    params(UserPath, EventId, On),
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 204, description = "Deleted (an organizer's delete cancels it for the attendees)"),
        MailboxErrors,
    ),
)]
pub(crate) async fn delete_event(
    t: UserMailbox,
    Path(EventId { id }): Path<EventId>,
) -> ApiResult<Response> {
    t.backend.calendar()?.delete_event(&t.mailbox, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Whose availability, when.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FreeBusyBody {
    /// Mailbox addresses.
    who: Vec<String>,
    /// RFC 3339.
    start: String,
    /// RFC 3339.
    end: String,
    /// 5–1440.
    #[serde(default = "thirty")]
    #[schema(default = 30, minimum = 5, maximum = 1440)]
    interval_minutes: u32,
}

fn thirty() -> u32 {
    30
}

/// Free/busy of mailboxes in a range.
#[utoipa::path(
    post,
    path = "/api/v1/connections/{connection}/users/{principal}/freebusy",
    tag = "mailbox",
    params(UserPath, On),
    request_body = FreeBusyBody,
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 200, description = "One answer per mailbox in `who`", body = Vec<openapi::FreeBusy>),
        (status = 422, description = "The body is not JSON of this shape"),
        MailboxErrors,
    ),
)]
pub(crate) async fn free_busy(t: UserMailbox, Json(b): Json<FreeBusyBody>) -> ApiResult<Response> {
    let who: Vec<String> = addresses(&b.who)?.into_iter().map(|r| r.address).collect();
    let (start, end) = (instant("start", &b.start)?, instant("end", &b.end)?);
    Ok(Json(
        t.backend
            .availability()?
            .free_busy(
                &t.mailbox,
                &who,
                start,
                end,
                b.interval_minutes.clamp(5, 1440),
            )
            .await?,
    )
    .into_response())
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// The `next_page` of the previous answer.
    page: Option<String>,
}

/// List a page of contacts.
#[utoipa::path(
    get,
    path = "/api/v1/connections/{connection}/users/{principal}/contacts",
    tag = "mailbox",
    params(UserPath, PageQuery, On),
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 200, description = "A page of contacts", body = ContactPage),
        MailboxErrors,
    ),
)]
pub(crate) async fn contacts(t: UserMailbox, Query(q): Query<PageQuery>) -> ApiResult<Response> {
    let page = t
        .backend
        .contacts()?
        .contacts(&t.mailbox, q.page.as_deref())
        .await?;
    Ok(Json(ContactPage {
        contacts: page.items,
        next_page: page.next,
    })
    .into_response())
}

/// A page of contacts.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ContactPage {
    #[schema(value_type = Vec<openapi::Contact>)]
    contacts: Vec<Contact>,
    /// Pass as `page` for the next page; null on the last.
    next_page: Option<String>,
}

/// Show a contact.
#[utoipa::path(
    get,
    path = "/api/v1/connections/{connection}/users/{principal}/contacts/{id}",
    tag = "mailbox",
    params(UserPath, ContactId, On),
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 200, description = "The contact", body = openapi::Contact),
        MailboxErrors,
    ),
)]
pub(crate) async fn contact(
    t: UserMailbox,
    Path(ContactId { id }): Path<ContactId>,
) -> ApiResult<Response> {
    Ok(Json(t.backend.contacts()?.contact(&t.mailbox, &id).await?).into_response())
}

/// A contact to create, or the fields of one to change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContactBody {
    display_name: Option<String>,
    given_name: Option<String>,
    surname: Option<String>,
    /// Addresses.
    emails: Option<Vec<String>>,
    business_phones: Option<Vec<String>>,
    mobile_phone: Option<String>,
    company: Option<String>,
    job_title: Option<String>,
}

impl ContactBody {
    fn draft(self) -> ApiResult<ContactDraft> {
        Ok(ContactDraft {
            display_name: self.display_name,
            given_name: self.given_name,
            surname: self.surname,
            emails: self.emails.as_deref().map(addresses).transpose()?,
            business_phones: self.business_phones,
            mobile_phone: self.mobile_phone,
            company: self.company,
            job_title: self.job_title,
        })
    }
}

/// Create a contact.
#[utoipa::path(
    post,
    path = "/api/v1/connections/{connection}/users/{principal}/contacts",
    tag = "mailbox",
    params(UserPath, On),
    request_body = ContactBody,
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 201, description = "Created", body = openapi::Contact),
        (status = 422, description = "The body is not JSON of this shape"),
        MailboxErrors,
    ),
)]
pub(crate) async fn create_contact(
    t: UserMailbox,
    Json(b): Json<ContactBody>,
) -> ApiResult<Response> {
    Ok((
        StatusCode::CREATED,
        Json(
            t.backend
                .contacts()?
                .create_contact(&t.mailbox, &b.draft()?)
                .await?,
        ),
    )
        .into_response())
}

/// Change the given fields of a contact.
#[utoipa::path(
    patch,
    path = "/api/v1/connections/{connection}/users/{principal}/contacts/{id}",
    tag = "mailbox",
    params(UserPath, ContactId, On),
    request_body = ContactBody,
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 200, description = "The changed contact", body = openapi::Contact),
        (status = 422, description = "The body is not JSON of this shape"),
        MailboxErrors,
    ),
)]
pub(crate) async fn update_contact(
    t: UserMailbox,
    Path(ContactId { id }): Path<ContactId>,
    Json(b): Json<ContactBody>,
) -> ApiResult<Response> {
    Ok(Json(
        t.backend
            .contacts()?
            .update_contact(&t.mailbox, &id, &b.draft()?)
            .await?,
    )
    .into_response())
}

/// Delete a contact.
#[utoipa::path(
    delete,
    path = "/api/v1/connections/{connection}/users/{principal}/contacts/{id}",
    tag = "mailbox",
    params(UserPath, ContactId, On),
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 204, description = "Deleted"),
        MailboxErrors,
    ),
)]
pub(crate) async fn delete_contact(
    t: UserMailbox,
    Path(ContactId { id }): Path<ContactId>,
) -> ApiResult<Response> {
    t.backend
        .contacts()?
        .delete_contact(&t.mailbox, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
