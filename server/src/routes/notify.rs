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
use exgate_core::notify::store::{EventFilter, WatchRow, WebhookRow};
use exgate_core::notify::{ChangeEvent, EventKind, NewWatch, Watched};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::extract::{Json, JsonOrEmpty, Path, Query};
use crate::openapi::{CallerErrors, MailboxErrors};
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
    responses((status = 200, description = "The connection's watches", body = Vec<WatchView>), CallerErrors),
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

/// Stop watching: the watch and its subscription are deleted (its events stay in the journal).
#[utoipa::path(
    delete,
    path = "/api/v1/connections/{connection}/watches/{id}",
    tag = "notifications",
    params(WatchPath),
    security(("api_key" = []), ("admin" = [])),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such watch", body = ApiError), CallerErrors),
)]
pub(crate) async fn delete_watch(
    s: axum::extract::State<AppState>,
    caller: Caller,
    Path(WatchPath { connection, id }): Path<WatchPath>,
) -> ApiResult<StatusCode> {
    let conn = caller.connection(&s, &connection).await?;
    let row = s.notifier.watch_of(conn.id, &id).await?;
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
    responses((status = 200, description = "Events, oldest first", body = EventPage), CallerErrors),
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
    responses((status = 200, description = "A `text/event-stream` of events", content_type = "text/event-stream", body = String), CallerErrors),
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

// ---- webhooks ----

/// A webhook in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct WebhookPath {
    /// The connection's name.
    connection: String,
    /// The webhook's ID.
    id: String,
}

/// A webhook to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewWebhookBody {
    /// Where events are POSTed: https, or http to a loopback address.
    url: String,
    /// Only this principal's events.
    principal: Option<String>,
    /// Only this mailbox's events.
    mailbox: Option<String>,
    /// Only these types (default: every type).
    #[serde(default)]
    types: Vec<String>,
}

/// Where a webhook's delivery stands.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeliveryView {
    /// Every event up to this `seq` was delivered or given up on.
    cursor: i64,
    /// Failures of the next event so far.
    attempts: u32,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    next_attempt_at: Option<OffsetDateTime>,
    last_error: Option<String>,
}

/// A webhook (its secret is shown only when it is created).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookView {
    id: String,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    principal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mailbox: Option<String>,
    types: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    delivery: DeliveryView,
    /// The HMAC key of the signatures (`exgate-signature`): only in the answer that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl WebhookView {
    fn of(row: &WebhookRow) -> Self {
        Self {
            id: row.id.to_string(),
            url: row.url.clone(),
            principal: row.filter.principal.as_ref().map(ToString::to_string),
            mailbox: row.filter.mailbox.clone(),
            types: row
                .filter
                .kinds
                .iter()
                .map(|k| k.as_str().to_owned())
                .collect(),
            created_at: row.created_at,
            delivery: DeliveryView {
                cursor: row.progress.cursor,
                attempts: row.progress.attempts,
                next_attempt_at: row.progress.next_attempt_at,
                last_error: row.progress.last_error.clone(),
            },
            secret: None,
        }
    }
}

fn store_error(e: exgate_core::store::StoreError) -> ApiError {
    exgate_core::Error::from(e).into()
}

/// Register a webhook: the connection's events its filter passes are POSTed to `url`, signed,
/// in order, from now on.
#[utoipa::path(
    post,
    path = "/api/v1/connections/{connection}/webhooks",
    tag = "notifications",
    params(ConnectionPath),
    request_body = NewWebhookBody,
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 201, description = "The webhook, with its secret (shown only now)", body = WebhookView),
        (status = 400, description = "A bad URL or filter", body = ApiError), CallerErrors),
)]
pub(crate) async fn create_webhook(
    s: axum::extract::State<AppState>,
    caller: Caller,
    Path(ConnectionPath { connection }): Path<ConnectionPath>,
    Json(body): Json<NewWebhookBody>,
) -> ApiResult<Response> {
    let conn = caller.connection(&s, &connection).await?;
    let q = EventsQuery {
        principal: body.principal,
        mailbox: body.mailbox,
        types: Some(body.types.join(",")),
        ..EventsQuery::default()
    };
    let row = s
        .notifier
        .create_webhook(
            q.filter(conn.id)?,
            &body.url,
            s.notify.allow_http_webhooks,
            match &caller {
                Caller::App(k) => Some(k.id),
                Caller::Admin => None,
            },
        )
        .await?;
    let secret = row.secret.clone();
    let mut view = WebhookView::of(&row);
    view.secret = Some(secret.expose().to_owned());
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// List the connection's webhooks and where their delivery stands.
#[utoipa::path(
    get,
    path = "/api/v1/connections/{connection}/webhooks",
    tag = "notifications",
    params(ConnectionPath),
    security(("api_key" = []), ("admin" = [])),
    responses((status = 200, description = "The webhooks (without secrets)", body = Vec<WebhookView>), CallerErrors),
)]
pub(crate) async fn list_webhooks(
    s: axum::extract::State<AppState>,
    caller: Caller,
    Path(ConnectionPath { connection }): Path<ConnectionPath>,
) -> ApiResult<Json<Vec<WebhookView>>> {
    let conn = caller.connection(&s, &connection).await?;
    let all = s.notifier.store()?.webhooks().await.map_err(store_error)?;
    Ok(Json(
        all.iter()
            .filter(|w| w.filter.connection == conn.id)
            .map(WebhookView::of)
            .collect(),
    ))
}

/// Delete a webhook with its dead letters.
#[utoipa::path(
    delete,
    path = "/api/v1/connections/{connection}/webhooks/{id}",
    tag = "notifications",
    params(WebhookPath),
    security(("api_key" = []), ("admin" = [])),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such webhook", body = ApiError), CallerErrors),
)]
pub(crate) async fn delete_webhook(
    s: axum::extract::State<AppState>,
    caller: Caller,
    Path(WebhookPath { connection, id }): Path<WebhookPath>,
) -> ApiResult<StatusCode> {
    let conn = caller.connection(&s, &connection).await?;
    let row = s.notifier.webhook_of(conn.id, &id).await?;
    s.notifier
        .store()?
        .delete_webhook(row.id)
        .await
        .map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// An event a webhook gave up on.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeadLetterView {
    seq: i64,
    #[schema(value_type = Object)]
    event: ChangeEvent,
    attempts: u32,
    last_error: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    failed_at: OffsetDateTime,
    /// Marked for delivery again.
    replay: bool,
}

/// List a webhook's dead letters.
#[utoipa::path(
    get,
    path = "/api/v1/connections/{connection}/webhooks/{id}/dead-letters",
    tag = "notifications",
    params(WebhookPath),
    security(("api_key" = []), ("admin" = [])),
    responses((status = 200, description = "Events given up on, oldest first", body = Vec<DeadLetterView>), CallerErrors),
)]
pub(crate) async fn dead_letters(
    s: axum::extract::State<AppState>,
    caller: Caller,
    Path(WebhookPath { connection, id }): Path<WebhookPath>,
) -> ApiResult<Json<Vec<DeadLetterView>>> {
    let conn = caller.connection(&s, &connection).await?;
    let row = s.notifier.webhook_of(conn.id, &id).await?;
    let dead = s
        .notifier
        .store()?
        .dead_letters(row.id)
        .await
        .map_err(store_error)?;
    Ok(Json(
        dead.into_iter()
            .map(|d| DeadLetterView {
                seq: d.event.seq,
                event: d.event,
                attempts: d.attempts,
                last_error: d.last_error,
                failed_at: d.failed_at,
                replay: d.replay,
            })
            .collect(),
    ))
}

/// Which dead letters to deliver again.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayBody {
    /// One dead letter by its event's `seq` (default: all).
    seq: Option<i64>,
}

/// How many dead letters were marked.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReplayView {
    requested: u64,
}

/// Deliver a webhook's dead letters again (before its new events).
#[utoipa::path(
    post,
    path = "/api/v1/connections/{connection}/webhooks/{id}/dead-letters/replay",
    tag = "notifications",
    params(WebhookPath),
    request_body = ReplayBody,
    security(("api_key" = []), ("admin" = [])),
    responses((status = 202, description = "Marked for delivery", body = ReplayView), CallerErrors),
)]
pub(crate) async fn replay(
    s: axum::extract::State<AppState>,
    caller: Caller,
    Path(WebhookPath { connection, id }): Path<WebhookPath>,
    JsonOrEmpty(body): JsonOrEmpty<ReplayBody>,
) -> ApiResult<Response> {
    let conn = caller.connection(&s, &connection).await?;
    let row = s.notifier.webhook_of(conn.id, &id).await?;
    let requested = s
        .notifier
        .store()?
        .request_replay(row.id, body.seq)
        .await
        .map_err(store_error)?;
    s.delivery.poke();
    Ok((StatusCode::ACCEPTED, Json(ReplayView { requested })).into_response())
}

// ---- Microsoft Graph's notifications ----

/// The largest notification body accepted (Graph's, without resource data, are small).
const MAX_NOTIFICATION_BYTES: usize = 1 << 20;

/// Where Microsoft Graph posts a watch's change and lifecycle notifications
/// (`{public_url}/notifications/graph/{watch}` and `…/lifecycle`). Unauthenticated, as Graph
/// calls it: a validation request (`?validationToken=`) is answered with the token as plain
/// text; a notification is taken only when it names one of the watch's subscriptions and
/// carries its `clientState` (202), and refused otherwise (403) — it only ever wakes the
/// watch's sync, which reads what changed from the mailbox itself.
pub(crate) async fn graph_notification(
    s: axum::extract::State<AppState>,
    axum::extract::Path(watch): axum::extract::Path<String>,
    uri: axum::http::Uri,
    body: axum::body::Body,
) -> Response {
    graph_notified(&s, &watch, &uri, body).await
}

/// The lifecycle URL of a watch (same handling as [`graph_notification`]).
pub(crate) async fn graph_lifecycle(
    s: axum::extract::State<AppState>,
    axum::extract::Path(watch): axum::extract::Path<String>,
    uri: axum::http::Uri,
    body: axum::body::Body,
) -> Response {
    graph_notified(&s, &watch, &uri, body).await
}

async fn graph_notified(
    s: &AppState,
    watch: &str,
    uri: &axum::http::Uri,
    body: axum::body::Body,
) -> Response {
    use exgate_core::graph::notifications::{
        LifecycleEvent, parse, validation_answer, validation_token,
    };
    use exgate_core::notify::{Lifecycle, Pushed};

    let plain = |status: StatusCode, text: String| {
        (
            status,
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            text,
        )
            .into_response()
    };
    if let Some(token) = validation_token(uri.query().unwrap_or_default()) {
        return match validation_answer(&token) {
            Ok(token) => plain(StatusCode::OK, token.to_owned()),
            Err(e) => plain(StatusCode::BAD_REQUEST, e.to_string()),
        };
    }
    let Ok(watch) = watch.parse::<WatchId>() else {
        return plain(StatusCode::NOT_FOUND, "no such watch".into());
    };
    let Ok(bytes) = axum::body::to_bytes(body, MAX_NOTIFICATION_BYTES).await else {
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body is too large".into(),
        );
    };
    let parsed = match parse(&bytes) {
        Ok(p) => p,
        Err(e) => return plain(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let mut pushed: Vec<Pushed> = parsed
        .changes
        .into_iter()
        .map(|c| Pushed {
            subscription_id: c.subscription_id,
            client_state: c.client_state,
            lifecycle: None,
        })
        .collect();
    for l in parsed.lifecycle {
        let lifecycle = match l.event {
            LifecycleEvent::ReauthorizationRequired => Lifecycle::ReauthorizationRequired,
            LifecycleEvent::SubscriptionRemoved => Lifecycle::SubscriptionRemoved,
            // Anything else lost is caught up the same way.
            LifecycleEvent::Missed | LifecycleEvent::Unknown => Lifecycle::Missed,
        };
        pushed.push(Pushed {
            subscription_id: l.subscription_id,
            client_state: l.client_state,
            lifecycle: Some(lifecycle),
        });
    }
    let outcome = s.notifier.pushed(watch, &pushed).await;
    if outcome.accepted == 0 && outcome.refused > 0 {
        return plain(
            StatusCode::FORBIDDEN,
            "not a notification of this watch".into(),
        );
    }
    StatusCode::ACCEPTED.into_response()
}
