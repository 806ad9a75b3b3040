//! The one error shape of the API: `{"code", "message", "hint", "correlation_id"}`.
//! Internal details go to the log; clients get a stable code and a message that never holds a
//! secret or a stack trace.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use exgate_core::mailbox::MailboxError;
use exgate_core::{Error as CoreError, ErrorKind};
use serde::Serialize;
use utoipa::ToSchema;

use crate::REQUEST_ID;

/// Every error the API answers: a stable code, a message that names what is wrong, and often a
/// hint that says how to fix it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    /// A stable, machine-readable code such as `not_found`.
    #[schema(example = "not_found")]
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// How to fix it, when the gateway knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The request's `x-request-id`, to find it in the gateway's log.
    pub correlation_id: String,
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            hint: None,
            correlation_id: String::new(),
            retry_after: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", message)
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

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let message = e.to_string();
        let (status, code) = match (&e, e.kind()) {
            (CoreError::Mailbox(MailboxError::Throttled { .. }), _) => {
                (StatusCode::TOO_MANY_REQUESTS, "throttled")
            }
            (CoreError::Mailbox(MailboxError::Transport(_)), _) => {
                (StatusCode::GATEWAY_TIMEOUT, "backend_unreachable")
            }
            (CoreError::Mailbox(_), ErrorKind::Failed) => {
                (StatusCode::BAD_GATEWAY, "backend_error")
            }
            (CoreError::Autodiscover(_), ErrorKind::Failed) => {
                (StatusCode::BAD_GATEWAY, "autodiscover_failed")
            }
            (CoreError::Auth(_), ErrorKind::Failed) => {
                (StatusCode::BAD_GATEWAY, "identity_provider_error")
            }
            (_, ErrorKind::Invalid) => (StatusCode::BAD_REQUEST, "invalid_input"),
            (_, ErrorKind::NotFound) => (StatusCode::NOT_FOUND, "not_found"),
            (_, ErrorKind::Conflict) => (StatusCode::CONFLICT, "conflict"),
            (_, ErrorKind::NeedsSignIn) => (StatusCode::FORBIDDEN, "needs_sign_in"),
            (_, ErrorKind::Forbidden) => (StatusCode::FORBIDDEN, "forbidden"),
            (_, ErrorKind::Config | ErrorKind::Failed) => {
                tracing::error!(error = %e, "request failed inside the gateway");
                return Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "the gateway failed; its log has the details under this correlation_id",
                );
            }
        };
        let hint = match &e {
            CoreError::Auth(a) => a.fix().map(str::to_owned),
            CoreError::Mailbox(m) => m.hint().map(str::to_owned),
            CoreError::NotFound { what: "static user", .. } => Some(
                "an admin maps a principal to a mailbox with POST /api/v1/connections/{connection}/static-users".into(),
            ),
            CoreError::NeedsSignIn { .. } => Some(
                "start a sign-in for this user with POST /api/v1/connections/{connection}/logins"
                    .into(),
            ),
            _ => None,
        };
        let retry_after = match &e {
            CoreError::Mailbox(MailboxError::Throttled { retry_after }) => {
                Some(retry_after.as_secs().max(1))
            }
            _ => None,
        };
        Self {
            status,
            code,
            message,
            hint,
            correlation_id: String::new(),
            retry_after,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after;
        let mut resp = (self.status, Json(self)).into_response();
        if let Some(v) = retry_after.and_then(|secs| HeaderValue::from_str(&secs.to_string()).ok())
        {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, v);
        }
        resp
    }
}

/// Error bodies are small; one larger than this is not an error shape to rewrite.
const ERROR_BODY_BYTES: usize = 1024 * 1024;
/// The longest URI the gateway reads (far longer ones hyper refuses itself, with no body).
pub(crate) const MAX_URI_BYTES: usize = 16 * 1024;

/// The length of `uri` as written (what `uri.to_string().len()` is, by `Uri`'s `Display`),
/// without writing it out on every request.
fn uri_len(uri: &axum::http::Uri) -> usize {
    uri.scheme_str().map_or(0, |s| s.len() + "://".len())
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path().len()
        + uri.query().map_or(0, |q| q.len() + 1)
}

/// Every error answer in the one shape: fills in `correlation_id` from the request ID, and
/// rewrites a bare or plain-text answer (a tower layer's `413` or `408`, or any other) into an
/// [`ApiError`] for its status. Also refuses URIs over [`MAX_URI_BYTES`] with `414`.
pub(crate) async fn correlate(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let id = request_id(req.headers());
    let resp = if uri_len(req.uri()) > MAX_URI_BYTES {
        ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request's URI is longer than {MAX_URI_BYTES} bytes"),
        )
        .with_hint("send long values in a JSON body, or page through with shorter queries")
        .into_response()
    } else {
        // Mailbox requests made for this one carry its ID to the server (`client-request-id`).
        exgate_core::pipeline::with_request_id(id.clone(), next.run(req)).await
    };
    if !resp.status().is_client_error() && !resp.status().is_server_error() {
        return resp;
    }
    let content_type = resp.headers().get(axum::http::header::CONTENT_TYPE);
    let is_json = content_type.is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    // A page (the sign-in callback's HTML) stays a page; bare or plain-text answers do not.
    let is_bare = content_type.is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    if is_bare {
        let mut error = for_status(resp.status());
        error.correlation_id = id;
        let (parts, _) = resp.into_parts();
        let mut shaped = error.into_response();
        // Keep what the layer said besides its body (e.g. `Retry-After`, `Allow`).
        for (name, value) in &parts.headers {
            if name != axum::http::header::CONTENT_TYPE
                && name != axum::http::header::CONTENT_LENGTH
            {
                shaped.headers_mut().insert(name.clone(), value.clone());
            }
        }
        return shaped;
    }
    if !is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, ERROR_BODY_BYTES).await else {
        return Response::from_parts(parts, axum::body::Body::empty());
    };
    let mut value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if value
        .get("correlation_id")
        .is_some_and(|c| c.as_str().is_some_and(str::is_empty))
    {
        value["correlation_id"] = serde_json::Value::String(id);
    }
    let body = serde_json::to_vec(&value).unwrap_or_else(|_| bytes.to_vec());
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// The error for an answer some layer gave without a body in the shape.
fn for_status(status: StatusCode) -> ApiError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => crate::extract::too_large(),
        StatusCode::REQUEST_TIMEOUT => ApiError::new(
            status,
            "timeout",
            "the gateway did not start its answer in time",
        )
        .with_hint("retry; for large lists ask for smaller pages with `limit`"),
        StatusCode::URI_TOO_LONG => {
            ApiError::new(status, "uri_too_long", "the request's URI is too long")
        }
        s if s.is_server_error() => ApiError::new(
            s,
            "internal_error",
            "the gateway failed; its log has the details under this correlation_id",
        ),
        s => ApiError::new(
            s,
            "invalid_input",
            format!(
                "the request was refused ({})",
                s.canonical_reason()
                    .unwrap_or("client error")
                    .to_lowercase()
            ),
        )
        .with_hint("GET /api/openapi.json describes each route"),
    }
}

pub(crate) async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("there is no route {}", uri.path()),
    )
    .with_hint("GET /api/openapi.json lists the routes the gateway serves (as a page: /api/docs)")
}

pub(crate) async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not answer {method}", uri.path()),
    )
    .with_hint("GET /api/openapi.json lists each route's methods (as a page: /api/docs)")
}

#[cfg(test)]
mod tests {
    use super::uri_len;

    #[test]
    fn uri_len_is_the_length_of_the_written_uri() {
        for uri in [
            "/",
            "/api/v1/connections/web/users/u42/messages?limit=10&from=a%40b.c",
            "/healthz?",
            "http://gateway.example:8087/api/v1/connections?x=1",
            "https://gateway.example",
            "gateway.example:443",
            "*",
        ] {
            let parsed: axum::http::Uri = uri.parse().unwrap();
            assert_eq!(uri_len(&parsed), parsed.to_string().len(), "{uri}");
        }
    }
}
