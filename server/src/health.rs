//! Liveness and readiness probes. Neither needs authentication.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::{ApiError, AppState};

/// Liveness: the process is up and serving.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses(
        (status = 200, description = "Up", body = Object, example = json!({"status": "ok"})),
    ),
)]
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the gateway can do its work: the store answers and, on a store several gateways
/// share (PostgreSQL), the listener that hears other gateways' changes is connected (without
/// it, a key revoked elsewhere would be honoured here until the caches expire).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Object, example = json!({"status": "ready", "store": "ok", "changes": "listening"})),
        (status = 503, description = "`store_unavailable`: the store does not answer; `changes_unavailable`: the change listener is not connected", body = ApiError),
    ),
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if let Err(e) = state.store.ping().await {
        tracing::error!(error = %e, "readiness check: the store does not answer");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the gateway's store does not answer",
        )
        .with_hint("see the gateway's log for the store error under this correlation_id"));
    }
    let changes = match &state.changes {
        None => "not-shared",
        Some(follower) if follower.is_listening() => "listening",
        Some(_) => {
            tracing::error!("readiness check: the change listener is not connected");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "changes_unavailable",
                "the gateway does not hear the changes other gateways make (its change listener is reconnecting)",
            )
            .with_hint("see the gateway's log for the listener's error; it reconnects on its own"));
        }
    };
    Ok(Json(
        json!({ "status": "ready", "store": "ok", "changes": changes }),
    ))
}
