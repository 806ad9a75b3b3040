//! The one error shape of the API: `{"code", "message", "hint", "correlation_id"}`.
//! Internal details go to the log; clients get a stable code and a message that never holds a
//! secret or a stack trace.

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::REQUEST_ID;

#[derive(Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    /// A stable, machine-readable code such as `not_found`.
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The request's `x-request-id`, to find it in the gateway's log.
    pub correlation_id: String,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
        headers: &HeaderMap,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            hint: None,
            correlation_id: request_id(headers),
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// The request ID that `SetRequestIdLayer` put on the request.
pub(crate) fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self)).into_response()
    }
}

pub(crate) async fn not_found(headers: HeaderMap, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("there is no route {}", uri.path()),
        &headers,
    )
}
