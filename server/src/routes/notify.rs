//! Change notifications: watches on mailboxes, the journal of their events (polled, or streamed
//! as Server-Sent Events), webhooks with their dead letters, and the URL Microsoft Graph posts
//! its notifications to. Each maps onto core's `notify` module.

use std::convert::Infallible;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use exgate_core::mailbox::FolderRef;
use exgate_core::model::{ConnectionId, EmailAddress, Principal, WatchId};
use exgate_core::notify::store::{EventFilter, WatchRow};
use exgate_core::notify::{ChangeEvent, EventKind, NewWatch, Watched};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::extract::{Json, JsonOrEmpty, Path, Query};
use crate::openapi::MailboxErrors;
use crate::{ApiError, AppState};

type ApiResult<T> = Result<T, ApiError>;

/// The most events one poll answers.
const MAX_PAGE: u32 = 1000;

/// A connection in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ConnectionPath {
    /// The connection's name.
    connection: String,
}

/// The user in the path of a mailbox route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct UserPath {
    /// The connection's name.
    connection: String,
    /// A linked account's principal on a delegated connection; a static user on an app-only one.
    principal: String,
}

/// A watch in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct WatchPath {
    /// The connection's name.
    connection: String,
    /// The watch's ID.
    id: String,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct On {
    /// A shared or another user's mailbox, for a delegated account.
    mailbox: Option<String>,
}

/// What a watch follows.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewWatchBody {
    /// Mail folders: well-known names (`inbox`, `sent-items`, …) or folder IDs. Default:
    /// `["inbox"]` unless `calendar` is set.
    #[serde(default)]
    folders: Vec<String>,
    /// Follow the default calendar's events too.
    #[serde(default)]
    calendar: bool,
}

/// A watch: a mailbox whose changes become events.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WatchView {
    id: String,
    connection: String,
    principal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    mailbox: Option<String>,
    /// Mail folders followed.
    folders: Vec<String>,
    calendar: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
}

impl WatchView {
    fn of(row: &WatchRow, connection: &str) -> Self {
        let mut folders = Vec::new();
        let mut calendar = false;
        for w in &row.watched {
            match w {
                Watched::Mail { folder } => folders.push(match folder {
                    FolderRef::WellKnown(w) => w.name().to_owned(),
                    FolderRef::Id(id) => id.clone(),
                }),
                Watched::Calendar => calendar = true,
            }
        }
        Self {
            id: row.id.to_string(),
            connection: connection.to_owned(),
            principal: row.principal.to_string(),
            mailbox: row.mailbox.clone(),
            folders,
            calendar,
            created_at: row.created_at,
        }
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

fn principal(s: &str) -> ApiResult<Principal> {
    s.parse::<Principal>()
        .map_err(|e| bad(format!("invalid principal: {}", e.0)))
}

fn mailbox(s: Option<&str>) -> ApiResult<Option<EmailAddress>> {
    s.map(|m| {
        m.parse::<EmailAddress>()
            .map_err(|e| bad(format!("`mailbox` is not an email address: {}", e.0)))
    })
    .transpose()
}

/// Watch a mailbox: its changes become events from now on.
#[utoipa::path(
    post,
    path = "/api/v1/connections/{connection}/users/{principal}/watches",
    tag = "notifications",
    params(UserPath, On),
    request_body = NewWatchBody,
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 201, description = "The watch; events start from now", body = WatchView),
        MailboxErrors,
    ),
)]
pub(crate) async fn create_watch(
    s: axum::extract::State<AppState>,
    caller: Caller,
    Path(UserPath {
        connection,
        principal: p,
    }): Path<UserPath>,
    Query(on): Query<On>,
    JsonOrEmpty(body): JsonOrEmpty<NewWatchBody>,
) -> ApiResult<Response> {
    let conn = caller.connection(&s, &connection).await?;
    let mut watched: Vec<Watched> = body
        .folders
        .iter()
        .map(|f| {
            if f.is_empty() || f.len() > 512 {
                return Err(bad("a folder is a well-known name or a folder ID"));
            }
            Ok(Watched::Mail {
                folder: FolderRef::parse(f),
            })
        })
        .collect::<ApiResult<_>>()?;
    if body.calendar {
        watched.push(Watched::Calendar);
    }
    let row = s
        .notifier
        .create_watch(NewWatch {
            connection: conn.name.to_string(),
            principal: principal(&p)?,
            mailbox: mailbox(on.mailbox.as_deref())?,
            watched,
            api_key: match &caller {
                Caller::App(k) => Some(k.id),
                Caller::Admin => None,
            },
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(WatchView::of(&row, conn.name.as_str())),
    )
        .into_response())
}

/// List the watches of a connection.
#[utoipa::path(
    get,
    path = "/api/v1/connections/{connection}/watches",
    tag = "notifications",
    params(ConnectionPath),
    security(("api_key" = []), ("admin" = [])),
    responses((status = 200, description = "The connection's watches", body = Vec<WatchView>)),
)]
pub(crate) async fn list_watches(
    s: axum::extract::State<AppState>,
    caller: Caller,
    Path(ConnectionPath { connection }): Path<ConnectionPath>,
) -> ApiResult<Json<Vec<WatchView>>> {
    let conn = caller.connection(&s, &connection).await?;
    let rows = s.notifier.watches(Some(conn.id)).await?;
    Ok(Json(
        rows.iter()
            .map(|r| WatchView::of(r, conn.name.as_str()))
            .collect(),
    ))
}

/// The watch `id` of `conn`: one of another connection is "not found".
async fn watch_of(s: &AppState, conn: ConnectionId, id: &str) -> ApiResult<WatchRow> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("watch `{id}` does not exist on this connection"),
        )
    };
    let id: WatchId = id.parse().map_err(|_| not_found())?;
    let row = s
        .notifier
        .store()?
        .watch(id)
        .await
        .map_err(exgate_core::Error::from)?;
    row.filter(|r| r.connection == conn).ok_or_else(not_found)
}

/// Stop watching: the watch and its subscription are deleted (its events stay in the journal).
#[utoipa::path(
    delete,
    path = "/api/v1/connections/{connection}/watches/{id}",
    tag = "notifications",
    params(WatchPath),
    security(("api_key" = []), ("admin" = [])),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such watch", body = ApiError)),
)]
pub(crate) async fn delete_watch(
    s: axum::extract::State<AppState>,
    caller: Caller,
    Path(WatchPath { connection, id }): Path<WatchPath>,
) -> ApiResult<StatusCode> {
    let conn = caller.connection(&s, &connection).await?;
    let row = watch_of(&s, conn.id, &id).await?;
    s.notifier.delete_watch(row.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which events a reader wants.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
    /// Events after this position (an event's `seq`; default 0, the oldest kept).
    after: Option<i64>,
    /// Only this principal's.
    principal: Option<String>,
    /// Only this mailbox's.
    mailbox: Option<String>,
    /// Only these kinds, comma-separated (`message.created,event.updated`).
    types: Option<String>,
    /// At most this many (1–1000, default 100).
    limit: Option<u32>,
}

impl EventsQuery {
    fn filter(&self, connection: ConnectionId) -> ApiResult<EventFilter> {
        let kinds = match self.types.as_deref() {
            None | Some("") => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|t| {
                    EventKind::parse(t.trim()).ok_or_else(|| {
                        bad(format!(
                            "`types` names an unknown event type; the types are {}",
                            EventKind::ALL.map(EventKind::as_str).join(", ")
                        ))
                    })
                })
                .collect::<ApiResult<_>>()?,
        };
        Ok(EventFilter {
            connection,
            principal: self.principal.as_deref().map(principal).transpose()?,
            mailbox: mailbox(self.mailbox.as_deref())?.map(|m| m.to_string()),
            kinds,
        })
    }
}

/// A page of the journal.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventPage {
    #[schema(value_type = Vec<Object>)]
    events: Vec<ChangeEvent>,
    /// Pass as `after` to get the next events.
    last: i64,
}

/// Read the connection's events after a position (polling).
#[utoipa::path(
    get,
    path = "/api/v1/connections/{connection}/events",
    tag = "notifications",
    params(ConnectionPath, EventsQuery),
    security(("api_key" = []), ("admin" = [])),
    responses((status = 200, description = "Events, oldest first", body = EventPage)),
)]
pub(crate) async fn events(
    s: axum::extract::State<AppState>,
    caller: Caller,
    Path(ConnectionPath { connection }): Path<ConnectionPath>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Json<EventPage>> {
    let conn = caller.connection(&s, &connection).await?;
    let filter = q.filter(conn.id)?;
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let after = q.after.unwrap_or(0).max(0);
    let events = s
        .notifier
        .store()?
        .events_after(after, &filter, limit)
        .await
        .map_err(exgate_core::Error::from)?;
    let last = events.last().map_or(after, |e| e.seq);
    Ok(Json(EventPage { events, last }))
}

/// Stream the connection's events as Server-Sent Events (`id` = `seq`, `event` = the type,
/// `data` = the event as JSON). A reconnecting client sends `Last-Event-ID` (or `?after=`) and
/// receives what it missed first.
#[utoipa::path(
    get,
    path = "/api/v1/connections/{connection}/events/stream",
    tag = "notifications",
    params(ConnectionPath, EventsQuery),
    security(("api_key" = []), ("admin" = [])),
    responses((status = 200, description = "A `text/event-stream` of events", content_type = "text/event-stream", body = String)),
)]
pub(crate) async fn stream(
    s: axum::extract::State<AppState>,
    caller: Caller,
    Path(ConnectionPath { connection }): Path<ConnectionPath>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let conn = caller.connection(&s, &connection).await?;
    let filter = q.filter(conn.id)?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let start = match resume.or(q.after) {
        Some(after) => after.max(0),
        // A new stream starts with what comes next.
        None => s
            .notifier
            .store()?
            .last_event_seq()
            .await
            .map_err(exgate_core::Error::from)?,
    };
    let notifier = std::sync::Arc::clone(&s.notifier);
    let mut committed = notifier.committed();
    let stream = async_stream(move |yield_tx| async move {
        let mut after = start;
        loop {
            let Ok(store) = notifier.store() else { return };
            match store.events_after(after, &filter, MAX_PAGE).await {
                Ok(events) => {
                    let full = events.len() == MAX_PAGE as usize;
                    for e in events {
                        after = e.seq;
                        let data = serde_json::to_string(&e).unwrap_or_default();
                        let event = SseEvent::default()
                            .id(e.seq.to_string())
                            .event(e.kind.as_str())
                            .data(data);
                        if yield_tx.send(Ok(event)).await.is_err() {
                            return;
                        }
                    }
                    if full {
                        continue;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "the event stream cannot read the journal"),
            }
            // New events committed here wake it at once; those of other gateways sharing the
            // store within a second.
            tokio::select! {
                changed = committed.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// A stream fed by a task through a channel (the task ends when the client goes).
fn async_stream<F, Fut>(f: F) -> impl Stream<Item = Result<SseEvent, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<SseEvent, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}
