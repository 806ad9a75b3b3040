//! exgate-server: the HTTP gateway. Routes map requests onto exgate-core and core types onto
//! this crate's JSON shapes; there is no logic here that the CLI would also need.
//!
//! [`app`] builds the whole router from an [`AppState`], so tests drive it with
//! `tower::ServiceExt::oneshot` and the binary serves it with [`serve`].

pub mod auth;
mod console;
mod error;
mod extract;
mod health;
mod html;
mod metrics;
mod openapi;
mod routes;
mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, StatusCode};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use metrics::Metrics;
pub use openapi::ApiDoc;
pub use routes::signin::{LoginStatus, Logins};
pub use state::AppState;

/// The header that carries a request's ID in and out; it is also every error's `correlation_id`.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// How long a request may take before the gateway answers 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The gateway's router with its middleware: request IDs, tracing, metrics, body limit, timeout.
pub fn app(state: AppState) -> Router {
    use routes::{admin, mailbox as mb, notify, signin};
    // One limit for every request body: core's item limit (`limits.max_item_mb`).
    let max_body = usize::try_from(state.mailboxes.limits().max_item_bytes).unwrap_or(usize::MAX);
    let user = "/api/v1/connections/{connection}/users/{principal}";
    let api = Router::new()
        .route(
            "/api/v1/connections",
            get(admin::list_connections).post(admin::create_connection),
        )
        .route(
            "/api/v1/connections/{connection}",
            get(admin::get_connection)
                .patch(admin::update_connection)
                .delete(admin::delete_connection),
        )
        .route(
            "/api/v1/connections/{connection}/test",
            post(admin::test_connection),
        )
        .route(
            "/api/v1/connections/{connection}/accounts",
            get(admin::list_accounts),
        )
        .route(
            "/api/v1/connections/{connection}/accounts/reset-all",
            post(admin::reset_all_accounts),
        )
        .route(
            "/api/v1/connections/{connection}/accounts/{principal}",
            get(admin::get_account),
        )
        .route(
            "/api/v1/connections/{connection}/accounts/{principal}/reset",
            post(admin::reset_account),
        )
        .route(
            "/api/v1/connections/{connection}/static-users",
            get(admin::list_static_users).post(admin::create_static_user),
        )
        .route(
            "/api/v1/connections/{connection}/static-users/{principal}",
            axum::routing::delete(admin::delete_static_user),
        )
        .route(
            "/api/v1/connections/{connection}/logins",
            post(signin::start),
        )
        .route(
            "/api/v1/connections/{connection}/logins/{login}",
            get(signin::status),
        )
        .route(
            "/api/v1/keys",
            get(admin::list_keys).post(admin::create_key),
        )
        .route(
            "/api/v1/keys/{id}",
            axum::routing::delete(admin::revoke_key),
        )
        .route(&format!("{user}/folders"), get(mb::folders))
        .route(
            &format!("{user}/messages"),
            get(mb::messages).post(mb::send),
        )
        .route(
            &format!("{user}/messages/{{id}}"),
            get(mb::message).delete(mb::delete_message),
        )
        .route(&format!("{user}/messages/{{id}}/mime"), get(mb::mime))
        .route(
            &format!("{user}/messages/{{id}}/attachments/{{attachment}}"),
            get(mb::attachment),
        )
        .route(&format!("{user}/messages/{{id}}/reply"), post(mb::reply))
        .route(
            &format!("{user}/messages/{{id}}/forward"),
            post(mb::forward),
        )
        .route(
            &format!("{user}/messages/{{id}}/move"),
            post(mb::move_message),
        )
        .route(&format!("{user}/messages/{{id}}/read"), post(mb::mark_read))
        .route(
            &format!("{user}/events"),
            get(mb::events).post(mb::create_event),
        )
        .route(
            &format!("{user}/events/{{id}}"),
            axum::routing::patch(mb::update_event).delete(mb::delete_event),
        )
        .route(&format!("{user}/freebusy"), post(mb::free_busy))
        .route(
            &format!("{user}/contacts"),
            get(mb::contacts).post(mb::create_contact),
        )
        .route(
            &format!("{user}/contacts/{{id}}"),
            get(mb::contact)
                .patch(mb::update_contact)
                .delete(mb::delete_contact),
        )
        .route(&format!("{user}/watches"), post(notify::create_watch))
        .route(
            "/api/v1/connections/{connection}/watches",
            get(notify::list_watches),
        )
        .route(
            "/api/v1/connections/{connection}/watches/{id}",
            axum::routing::delete(notify::delete_watch),
        )
        .route(
            "/api/v1/connections/{connection}/events",
            get(notify::events),
        )
        .route(
            "/api/v1/connections/{connection}/events/stream",
            get(notify::stream),
        )
        .route(
            "/api/v1/connections/{connection}/webhooks",
            get(notify::list_webhooks).post(notify::create_webhook),
        )
        .route(
            "/api/v1/connections/{connection}/webhooks/{id}",
            axum::routing::delete(notify::delete_webhook),
        )
        .route(
            "/api/v1/connections/{connection}/webhooks/{id}/dead-letters",
            get(notify::dead_letters),
        )
        .route(
            "/api/v1/connections/{connection}/webhooks/{id}/dead-letters/replay",
            post(notify::replay),
        )
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/docs", get(openapi::page));
    Router::new()
        .merge(api)
        .merge(console::router())
        .route("/service/oauth2/authorize", get(signin::callback))
        .route(
            "/notifications/graph/{watch}",
            post(routes::notify::graph_notification),
        )
        .route(
            "/notifications/graph/{watch}/lifecycle",
            post(routes::notify::graph_lifecycle),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(max_body))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        // Outside the limit and the timeout, so their answers get the error shape too.
        .layer(axum::middleware::from_fn(error::correlate))
        .layer(axum::middleware::from_fn(html::secure_pages))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight requests finish.
/// How often the gateway looks at expiring credentials; each warning is logged once a day.
pub const EXPIRY_WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Starts the watch over expiring credentials (core's `expiry::Watch`): at once, then every
/// [`EXPIRY_WATCH_INTERVAL`], with `server.keep_refresh_tokens_alive` as its keep-alive. What it
/// reads from Graph shows in the API, the gauge and the console ([`AppState::expiry`]).
pub fn spawn_expiry_watch(state: &AppState) -> tokio::task::JoinHandle<()> {
    let watch = std::sync::Arc::clone(&state.expiry);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EXPIRY_WATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = watch.run_once().await {
                tracing::warn!(error = %e, "the credential expiry watch could not run");
            }
        }
    })
}

/// Starts change notifications: the tasks of the watches this gateway owns (claimed from the
/// store, so several gateways share them out) and the webhook delivery, woken by each commit of
/// events. Dropping the answer stops them all.
pub fn spawn_notifications(state: &AppState) -> NotificationTasks {
    let watches = state.notifier.run();
    let delivery = state.delivery.clone();
    let worker = tokio::spawn(async move { delivery.run(std::future::pending::<()>()).await });
    let delivery = state.delivery.clone();
    let mut committed = state.notifier.committed();
    let poke = tokio::spawn(async move {
        while committed.changed().await.is_ok() {
            delivery.poke();
        }
    });
    NotificationTasks {
        tasks: vec![watches, worker, poke],
    }
}

/// The tasks [`spawn_notifications`] started; dropped, they stop.
#[derive(Debug)]
pub struct NotificationTasks {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for NotificationTasks {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
