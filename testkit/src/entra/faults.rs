//! Injected faults ([`crate::faults`], rules with `"service": "entra"`) in Entra's wire format,
//! as a middleware in front of every Entra route.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{AadError, Ctx};
use super::state::EntraState;
use crate::faults::{FaultKind, Service};

/// Largest Entra answer a body fault reads back (they are a few KB).
const MAX_ANSWER: usize = 1024 * 1024;

pub(crate) async fn apply(
    State(state): State<EntraState>,
    request: Request,
    next: Next,
) -> Response {
    let faults = state.faults.clone();
    let path = request.uri().path().to_string();
    let Some(picked) = faults.pick(Service::Entra, request.method().as_str(), &path) else {
        return next.run(request).await;
    };
    let control = crate::conn::control(request.extensions());
    let ctx = {
        let inner = state.lock();
        Ctx::new(inner.base_url.clone(), inner.now(), request.headers())
    };
    let error = |status: StatusCode, code: u32, message: &str, retry_after: &Option<String>| {
        let mut response =
            AadError::new(status, "temporarily_unavailable", code, message).into_json(&ctx);
        if let Some(v) = retry_after
            && let Ok(v) = HeaderValue::from_str(v)
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    };
    let response = match &picked.kind {
        FaultKind::Delay { ms } => {
            faults.injected(&picked);
            tokio::time::sleep(std::time::Duration::from_millis(*ms)).await;
            return next.run(request).await;
        }
        FaultKind::TooManyRequests { retry_after } => error(
            StatusCode::TOO_MANY_REQUESTS,
            90055,
            "There are too many incoming requests.",
            retry_after,
        ),
        FaultKind::ServiceUnavailable { retry_after } => error(
            StatusCode::SERVICE_UNAVAILABLE,
            90033,
            "A transient error has occurred. Please try again.",
            retry_after,
        ),
        FaultKind::GatewayTimeout => error(
            StatusCode::GATEWAY_TIMEOUT,
            50000,
            "There was an error issuing a token or an issue with our sign-in service.",
            &None,
        ),
        FaultKind::Reset => return reset(&faults, &picked, control).await,
        FaultKind::ResetAfter => {
            let _ = next.run(request).await;
            return reset(&faults, &picked, control).await;
        }
        FaultKind::JsonArray | FaultKind::TruncatedJson => {
            let response = next.run(request).await;
            let is_json = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.starts_with("application/json"));
            if !is_json {
                faults.not_applicable(&picked);
                return response;
            }
            let (mut parts, body) = response.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, MAX_ANSWER).await else {
                faults.not_applicable(&picked);
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            let spoiled = if picked.kind == FaultKind::JsonArray {
                b"[]".to_vec()
            } else {
                bytes[..bytes.len() / 2].to_vec()
            };
            parts.headers.remove(header::CONTENT_LENGTH);
            faults.injected(&picked);
            return Response::from_parts(parts, Body::from(spoiled));
        }
        FaultKind::NotMime | FaultKind::RepeatNextLink => {
            faults.not_applicable(&picked);
            return next.run(request).await;
        }
    };
    faults.injected(&picked);
    response
}

async fn reset(
    faults: &crate::faults::Faults,
    picked: &crate::faults::Picked,
    control: Option<std::sync::Arc<crate::conn::ConnectionControl>>,
) -> Response {
    faults.injected(picked);
    if let Some(control) = control {
        control.reset();
        std::future::pending::<()>().await;
    }
    // Served elsewhere, without a connection to reset: the closest thing is no answer body.
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}
