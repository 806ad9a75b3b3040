//! The gateway's extractors: axum's `Json`, `Path` and `Query`, but rejecting with the API error
//! (axum's error-handling example), so no malformed request escapes the error shape.
//!
//! Their messages name the field and what it must be, never the value that was sent: a value in
//! the wrong place may be a secret (a numeric `client_secret`), and serde's own messages quote it.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// A JSON body (in) or answer (out). Rejections: `415` without a JSON content type, `413` over
/// the body limit, `400` for JSON that does not parse, `422` for JSON of the wrong shape.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the request body must be JSON",
            )
            .with_hint("send the body with `Content-Type: application/json`"));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| body_unreadable(e.status()))?;
        decode(&bytes).map(Json)
    }
}

/// An optional JSON body: an empty body is `T::default()`; anything else is read as [`Json`]
/// reads it (a JSON content type, the same rejections).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JsonOrEmpty<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for JsonOrEmpty<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = is_json(req.headers());
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| body_unreadable(e.status()))?;
        if bytes.is_empty() {
            return Ok(Self(T::default()));
        }
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the request body must be JSON",
            )
            .with_hint("send the body with `Content-Type: application/json`, or send none"));
        }
        decode(&bytes).map(JsonOrEmpty)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The body could not be read: over the limit (413) or broken off (400).
pub(crate) fn body_unreadable(status: StatusCode) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else {
        ApiError::bad_request("the request body could not be read")
            .with_hint("send the whole body, with a correct `Content-Length`")
    }
}

pub(crate) fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        "the request body is larger than the gateway accepts",
    )
    .with_hint("the limit is `limits.max_item_mb` in the gateway's configuration; send less, or ask an admin to raise it")
}

/// Decodes JSON into `T`; the error names the field (`a.b[2]`) and the expected type only.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        json_error(&path, e.inner())
    })?;
    de.end().map_err(|e| json_error(".", &e))?;
    Ok(value)
}

fn json_error(path: &str, e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => {
            let message = without_values(&e.to_string());
            let message = if path == "." {
                format!("the body is not of the expected shape: {message}")
            } else {
                format!("`{path}` is wrong: {message}")
            };
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message)
                .with_hint("GET /api/openapi.json describes each route's body")
        }
        // serde_json's syntax messages say where and what was expected, never the text.
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::bad_request(format!("the body is not valid JSON: {e}"))
                .with_hint("send one JSON value, e.g. with `serde_json` or `jq`")
        }
    }
}

/// serde's messages without the values they quote: `invalid type: integer `123`, expected a
/// string` becomes `invalid type: integer, expected a string`; an unknown variant is not named.
pub(crate) fn without_values(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let (unexpected, expected) = rest
                .rsplit_once(", expected ")
                .unwrap_or((rest, "something else"));
            let kind = unexpected
                .split(['`', '"', '\''])
                .next()
                .unwrap_or_default()
                .trim();
            return if prefix == "invalid length " {
                format!("invalid length, expected {expected}")
            } else {
                format!("{prefix}{kind}, expected {expected}")
            };
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let expected = rest
            .rsplit_once(", expected ")
            .map_or("a known value", |(_, e)| e);
        return format!("unknown value, expected {expected}");
    }
    message.to_owned()
}

/// Query parameters, decoded into `T`; a `400` names the parameter, not its value.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| {
                let message = without_values(&e.inner().to_string());
                let message = match e.path().to_string() {
                    p if p == "." => format!("the query is wrong: {message}"),
                    p => format!("query parameter `{p}` is wrong: {message}"),
                };
                ApiError::bad_request(message)
                    .with_hint("GET /api/openapi.json lists each route's query parameters")
            })
    }
}

/// Path parameters; a `400` names the parameter, not its value.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                let message = match e.kind() {
                    ErrorKind::ParseErrorAtKey {
                        key, expected_type, ..
                    } => format!("path parameter `{key}` must be {expected_type}"),
                    ErrorKind::ParseErrorAtIndex {
                        index,
                        expected_type,
                        ..
                    } => format!("path parameter {index} must be {expected_type}"),
                    ErrorKind::ParseError { expected_type, .. } => {
                        format!("a path parameter must be {expected_type}")
                    }
                    ErrorKind::InvalidUtf8InPathParam { key } => {
                        format!("path parameter `{key}` is not valid UTF-8")
                    }
                    ErrorKind::DeserializeError { key, message, .. } => {
                        format!(
                            "path parameter `{key}` is wrong: {}",
                            without_values(message)
                        )
                    }
                    ErrorKind::Message(message) => without_values(message),
                    other => {
                        tracing::error!(error = %other, "a route's path parameters do not fit its handler");
                        return Err(internal());
                    }
                };
                Err(ApiError::bad_request(message)
                    .with_hint("percent-encode each path segment as UTF-8"))
            }
            Err(e) => {
                tracing::error!(error = %e, "a route's path parameters are missing");
                Err(internal())
            }
        }
    }
}

fn internal() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "the gateway failed; its log has the details under this correlation_id",
    )
}
