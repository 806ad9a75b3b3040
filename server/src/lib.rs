//! exgate-server: the HTTP gateway. Routes map requests onto exgate-core and core types onto
//! this crate's JSON shapes; there is no logic here that the CLI would also need.
//!
//! [`app`] builds the whole router from an [`AppState`], so tests drive it with
//! `tower::ServiceExt::oneshot` and the binary serves it with [`serve`].

mod error;
mod health;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, StatusCode};
use axum::routing::get;
use exgate_core::store::Store;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;

/// The header that carries a request's ID in and out; it is also every error's `correlation_id`.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How long a request may take before the gateway answers 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What handlers share. Core services sit behind trait objects so tests can swap them.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
}

/// The gateway's router with its middleware: request IDs, tracing, body limit, timeout.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(error::not_found)
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let id = req
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
