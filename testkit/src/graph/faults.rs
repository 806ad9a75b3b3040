//! Injected faults ([`crate::faults`]) in Graph's wire format: before a request runs (429, 503,
//! 504, reset, delay) or after it ran (reset after processing, malformed bodies, a repeating
//! `@odata.nextLink`).

use axum::http::StatusCode;
use bytes::Bytes;
use serde_json::{Value, json};

use super::GraphState;
use super::error::{GraphError, graph_errors};
use super::http::{Ctx, Req, Resp, RespBody, encode};
use crate::faults::{FaultKind, Picked, Service};

const JSON: &str = "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8";

/// Picks the fault for `req`. `Err` is the answer instead of running it; `Ok(Some)` is a fault
/// to apply to its answer with [`after`].
pub(crate) async fn before(
    state: &GraphState,
    ctx: &Ctx,
    req: &Req,
    item: bool,
) -> Result<Option<Picked>, Resp> {
    let faults = state.faults();
    let Some(picked) = faults.pick_for(Service::Graph, req.method.as_str(), &req.path, item) else {
        return Ok(None);
    };
    let retry_after = |mut resp: Resp, value: &Option<String>| {
        if let Some(v) = value {
            resp.header("Retry-After", v.clone());
        }
        resp
    };
    let answer = match &picked.kind {
        FaultKind::Delay { ms } => {
            faults.injected(&picked);
            tokio::time::sleep(std::time::Duration::from_millis(*ms)).await;
            return Ok(None);
        }
        kind if kind.is_after() => return Ok(Some(picked)),
        FaultKind::TooManyRequests { retry_after: value } => retry_after(
            GraphError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "ApplicationThrottled",
                "Application is over its MailboxConcurrency limit.",
            )
            .into_resp(ctx),
            value,
        ),
        FaultKind::ServiceUnavailable { retry_after: value } => {
            retry_after(graph_errors::server_error(503).into_resp(ctx), value)
        }
        FaultKind::GatewayTimeout => graph_errors::server_error(504).into_resp(ctx),
        _ => Resp::new(StatusCode::OK, RespBody::Reset),
    };
    faults.injected(&picked);
    Err(answer)
}

/// Spoils `resp` as `picked` says, or gives the fault back when it does not apply.
pub(crate) fn after(
    state: &GraphState,
    ctx: &Ctx,
    req: &Req,
    picked: &Picked,
    mut resp: Resp,
) -> Resp {
    let faults = state.faults();
    let applied = match (&picked.kind, &mut resp.body) {
        (FaultKind::ResetAfter, _) => {
            resp.body = RespBody::Reset;
            true
        }
        (FaultKind::JsonArray, RespBody::Json(value)) => {
            *value = json!([]);
            true
        }
        (FaultKind::TruncatedJson, RespBody::Json(value)) => {
            let text = value.to_string();
            let mut cut = text.len() / 2;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            resp.body = RespBody::Bytes {
                content_type: JSON.into(),
                bytes: Bytes::copy_from_slice(&text.as_bytes()[..cut]),
            };
            true
        }
        (FaultKind::NotMime, RespBody::Bytes { .. }) if asks_mime(&req.path) => {
            resp.body = RespBody::Json(json!({"value": "this is not a MIME message"}));
            true
        }
        (FaultKind::RepeatNextLink, RespBody::Json(Value::Object(o)))
            if o.contains_key("@odata.nextLink") =>
        {
            o.insert("@odata.nextLink".into(), this_url(ctx, req).into());
            true
        }
        _ => false,
    };
    if applied {
        faults.injected(picked);
    } else {
        faults.not_applicable(picked);
    }
    resp
}

/// `…/messages/{id}/$value`: the MIME of a message (not an attachment's bytes).
fn asks_mime(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.trim_end_matches('/').ends_with("/$value") && !lower.contains("/attachments/")
}

/// The URL of the request itself, query included.
fn this_url(ctx: &Ctx, req: &Req) -> String {
    let mut url = format!("{}{}", ctx.graph_url(), req.path);
    if !req.query.is_empty() {
        let query: Vec<String> = req
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        url.push('?');
        url.push_str(&query.join("&"));
    }
    url
}
