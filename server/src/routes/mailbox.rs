//! Mailbox routes for the calling application's user, each a thin mapping onto core's
//! `MailboxBackend`: `/api/v1/connections/{connection}/users/{principal}/…`.
//!
//! On a delegated connection `{principal}` is a linked account (`?mailbox=` then names a shared or
//! delegated mailbox it may use); on an app-only connection it is a static user, mapped by an admin
//! to the mailbox the app acts on. The [`UserMailbox`] extractor resolves all of that.

use std::sync::Arc;

use axum::Json;
use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use exgate_core::mailbox::{
    AttendeeKind, Body, BodyKind, ContactDraft, EventDraft, EventTime, FolderRef, Importance,
    MailboxBackend, MailboxRef, MessageQuery, NewAttachment, NewMessage, Recipient,
};
use exgate_core::model::{Auth, EmailAddress, Principal};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::Caller;
use crate::{ApiError, AppState};

type ApiResult<T> = Result<T, ApiError>;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct On {
    /// A shared or another user's mailbox, for a delegated account.
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
    backend: Arc<dyn MailboxBackend>,
    mailbox: MailboxRef,
}

impl FromRequestParts<AppState> for UserMailbox {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> ApiResult<Self> {
        let caller = Caller::from_request_parts(parts, s).await?;
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, s)
            .await
            .map_err(|e| bad(e.to_string()))?;
        let Query(on) = Query::<On>::from_request_parts(parts, s)
            .await
            .map_err(|e| bad(e.to_string()))?;
        let (Some(connection), Some(principal)) =
            (params.get("connection"), params.get("principal"))
        else {
            return Err(bad("the route names no connection and principal"));
        };
        let conn = s.connections.get(connection).await?.connection;
        caller.may_use(conn.id)?;
        let principal = principal
            .parse::<Principal>()
            .map_err(|e| bad(format!("invalid principal: {}", e.0)))?;
        let requested = on
            .mailbox
            .as_deref()
            .map(address)
            .transpose()?
            .map(|r| MailboxRef::User(r.address));
        if let Auth::OAuth2AppOnly(_) = conn.settings.auth {
            let users = s.connections.static_users(conn.id).await?;
            let user = users.iter().find(|u| u.principal == principal).ok_or_else(|| {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("`{principal}` is not a static user of connection `{connection}`"))
                    .with_hint("an admin maps it to a mailbox with POST /api/v1/connections/{connection}/static-users")
            })?;
            if requested.is_some() {
                return Err(bad(
                    "`mailbox` is not used on app-only connections: the static user names the mailbox",
                ));
            }
            let backend = s.mailboxes.open(Some(connection), None).await?;
            return Ok(Self {
                backend,
                mailbox: MailboxRef::User(user.mailbox.to_string()),
            });
        }
        let backend = s.mailboxes.open(Some(connection), Some(&principal)).await?;
        Ok(Self {
            backend,
            mailbox: requested.unwrap_or(MailboxRef::Me),
        })
    }
}

fn instant(field: &str, s: &str) -> ApiResult<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
        bad(format!(
            "`{field}` must be an RFC 3339 time such as 2026-12-01T00:00:00Z"
        ))
    })
}

pub(crate) async fn folders(t: UserMailbox) -> ApiResult<Response> {
    Ok(Json(t.backend.folders(&t.mailbox).await?).into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    folder: Option<String>,
    #[serde(default)]
    unread: bool,
    from: Option<String>,
    since: Option<String>,
    #[serde(default)]
    with_attachments: bool,
    limit: Option<u32>,
    /// The `next_page` of the previous answer.
    page: Option<String>,
}

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
        .messages(&t.mailbox, &query, q.page.as_deref())
        .await?;
    Ok(Json(serde_json::json!({ "messages": page.items, "next_page": page.next })).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ShowQuery {
    /// `text` or `html`.
    body: Option<String>,
}

pub(crate) async fn message(
    t: UserMailbox,
    Path((_, _, id)): Path<(String, String, String)>,
    Query(q): Query<ShowQuery>,
) -> ApiResult<Response> {
    let kind = match q.body.as_deref() {
        None => None,
        Some("text") => Some(BodyKind::Text),
        Some("html") => Some(BodyKind::Html),
        Some(other) => return Err(bad(format!("`body={other}`: expected text or html"))),
    };
    Ok(Json(t.backend.message(&t.mailbox, &id, kind).await?).into_response())
}

pub(crate) async fn attachment(
    t: UserMailbox,
    Path((_, _, id, aid)): Path<(String, String, String, String)>,
) -> ApiResult<Response> {
    let a = t.backend.attachment(&t.mailbox, &id, &aid).await?;
    let mut resp = a.content.into_response();
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

pub(crate) async fn mime(
    t: UserMailbox,
    Path((_, _, id)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let bytes = t.backend.mime(&t.mailbox, &id).await?;
    Ok(([(header::CONTENT_TYPE, "message/rfc822")], bytes).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AttachmentBody {
    name: String,
    #[serde(default)]
    content_type: Option<String>,
    /// Base64 of the file.
    content_base64: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendBody {
    to: Vec<String>,
    #[serde(default)]
    cc: Vec<String>,
    #[serde(default)]
    bcc: Vec<String>,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    html: bool,
    #[serde(default)]
    attachments: Vec<AttachmentBody>,
    #[serde(default)]
    importance: Option<String>,
    /// Send as this shared mailbox (needs Send As).
    #[serde(default)]
    from: Option<String>,
    #[serde(default = "yes")]
    save_to_sent: bool,
}

fn yes() -> bool {
    true
}

fn addresses(list: &[String]) -> ApiResult<Vec<Recipient>> {
    list.iter().map(|a| address(a)).collect()
}

pub(crate) async fn send(t: UserMailbox, Json(b): Json<SendBody>) -> ApiResult<Response> {
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
                content,
            })
        })
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
    t.backend.send(&t.mailbox, &message).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "status": "sent" })),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplyBody {
    #[serde(default)]
    comment: String,
    #[serde(default)]
    all: bool,
}

pub(crate) async fn reply(
    t: UserMailbox,
    Path((_, _, id)): Path<(String, String, String)>,
    Json(b): Json<ReplyBody>,
) -> ApiResult<Response> {
    t.backend.reply(&t.mailbox, &id, &b.comment, b.all).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForwardBody {
    to: Vec<String>,
    #[serde(default)]
    comment: String,
}

pub(crate) async fn forward(
    t: UserMailbox,
    Path((_, _, id)): Path<(String, String, String)>,
    Json(b): Json<ForwardBody>,
) -> ApiResult<Response> {
    t.backend
        .forward(&t.mailbox, &id, &addresses(&b.to)?, &b.comment)
        .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MoveBody {
    folder: String,
}

pub(crate) async fn move_message(
    t: UserMailbox,
    Path((_, _, id)): Path<(String, String, String)>,
    Json(b): Json<MoveBody>,
) -> ApiResult<Response> {
    let new_id = t
        .backend
        .move_message(&t.mailbox, &id, &FolderRef::parse(&b.folder))
        .await?;
    Ok(Json(serde_json::json!({ "id": new_id })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadBody {
    read: bool,
}

pub(crate) async fn mark_read(
    t: UserMailbox,
    Path((_, _, id)): Path<(String, String, String)>,
    Json(b): Json<ReadBody>,
) -> ApiResult<Response> {
    t.backend.set_read(&t.mailbox, &id, b.read).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn delete_message(
    t: UserMailbox,
    Path((_, _, id)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    t.backend.delete_message(&t.mailbox, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct RangeQuery {
    start: String,
    end: String,
    /// IANA or Windows zone for the answer's times (default UTC).
    tz: Option<String>,
}

pub(crate) async fn events(t: UserMailbox, Query(q): Query<RangeQuery>) -> ApiResult<Response> {
    let (start, end) = (instant("start", &q.start)?, instant("end", &q.end)?);
    if end <= start {
        return Err(bad("`end` must be after `start`"));
    }
    Ok(Json(
        t.backend
            .events(&t.mailbox, start, end, q.tz.as_deref())
            .await?,
    )
    .into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventBody {
    subject: Option<String>,
    start: Option<EventTime>,
    end: Option<EventTime>,
    is_all_day: Option<bool>,
    location: Option<String>,
    body: Option<String>,
    #[serde(default)]
    attendees: Option<Vec<String>>,
    #[serde(default)]
    optional_attendees: Option<Vec<String>>,
    online_meeting: Option<bool>,
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
            recurrence: None,
            online_meeting: self.online_meeting,
        })
    }
}

pub(crate) async fn create_event(t: UserMailbox, Json(b): Json<EventBody>) -> ApiResult<Response> {
    let event = t.backend.create_event(&t.mailbox, &b.draft()?).await?;
    Ok((StatusCode::CREATED, Json(event)).into_response())
}

pub(crate) async fn update_event(
    t: UserMailbox,
    Path((_, _, id)): Path<(String, String, String)>,
    Json(b): Json<EventBody>,
) -> ApiResult<Response> {
    Ok(Json(t.backend.update_event(&t.mailbox, &id, &b.draft()?).await?).into_response())
}

pub(crate) async fn delete_event(
    t: UserMailbox,
    Path((_, _, id)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    t.backend.delete_event(&t.mailbox, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FreeBusyBody {
    who: Vec<String>,
    start: String,
    end: String,
    #[serde(default = "thirty")]
    interval_minutes: u32,
}

fn thirty() -> u32 {
    30
}

pub(crate) async fn free_busy(t: UserMailbox, Json(b): Json<FreeBusyBody>) -> ApiResult<Response> {
    let who: Vec<String> = addresses(&b.who)?.into_iter().map(|r| r.address).collect();
    let (start, end) = (instant("start", &b.start)?, instant("end", &b.end)?);
    Ok(Json(
        t.backend
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

#[derive(Debug, Default, Deserialize)]
pub(crate) struct PageQuery {
    page: Option<String>,
}

pub(crate) async fn contacts(t: UserMailbox, Query(q): Query<PageQuery>) -> ApiResult<Response> {
    let page = t.backend.contacts(&t.mailbox, q.page.as_deref()).await?;
    Ok(Json(serde_json::json!({ "contacts": page.items, "next_page": page.next })).into_response())
}

pub(crate) async fn contact(
    t: UserMailbox,
    Path((_, _, id)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    Ok(Json(t.backend.contact(&t.mailbox, &id).await?).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContactBody {
    display_name: Option<String>,
    given_name: Option<String>,
    surname: Option<String>,
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

pub(crate) async fn create_contact(
    t: UserMailbox,
    Json(b): Json<ContactBody>,
) -> ApiResult<Response> {
    Ok((
        StatusCode::CREATED,
        Json(t.backend.create_contact(&t.mailbox, &b.draft()?).await?),
    )
        .into_response())
}

pub(crate) async fn update_contact(
    t: UserMailbox,
    Path((_, _, id)): Path<(String, String, String)>,
    Json(b): Json<ContactBody>,
) -> ApiResult<Response> {
    Ok(Json(
        t.backend
            .update_contact(&t.mailbox, &id, &b.draft()?)
            .await?,
    )
    .into_response())
}

pub(crate) async fn delete_contact(
    t: UserMailbox,
    Path((_, _, id)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    t.backend.delete_contact(&t.mailbox, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
