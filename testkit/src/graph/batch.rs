//! `POST /$batch`: up to 20 requests in one; each is authorized, throttled and counted as if
//! sent alone. They run one after another (in request order, honouring `dependsOn`) and the
//! answers come back in reverse order, so clients must match them by `id`.

use std::collections::HashMap;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::GraphState;
use super::auth;
use super::dispatch;
use super::error::{GraphError, GraphResult, graph_errors};
use super::http::{Ctx, Req, Resp, RespBody};

const MAX_REQUESTS: usize = 20;

fn invalid_payload() -> GraphError {
    graph_errors::bad_request("Invalid batch payload format.")
}

/// One item of the batch, checked.
#[derive(Debug)]
struct Item {
    id: String,
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Value>,
    depends_on: Vec<String>,
}

fn parse_item(value: &Value) -> GraphResult<Item> {
    let o = value.as_object().ok_or_else(invalid_payload)?;
    let get = |name: &str| {
        o.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let id = match get("id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(invalid_payload()),
    };
    let method = get("method")
        .and_then(Value::as_str)
        .and_then(|m| Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes()).ok())
        .filter(|m| {
            [
                Method::GET,
                Method::POST,
                Method::PATCH,
                Method::PUT,
                Method::DELETE,
            ]
            .contains(m)
        })
        .ok_or_else(invalid_payload)?;
    let url = get("url")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|u| !u.is_empty() && !u.contains("://"))
        .ok_or_else(invalid_payload)?
        .to_string();
    let headers = match get("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(h)) => h
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(invalid_payload()),
            })
            .collect::<GraphResult<_>>()?,
        Some(_) => return Err(invalid_payload()),
    };
    let depends_on = match get("dependsOn") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ids)) => ids
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(invalid_payload))
            .collect::<GraphResult<_>>()?,
        Some(_) => return Err(invalid_payload()),
    };
    Ok(Item {
        id,
        method,
        url,
        headers,
        body: get("body").filter(|b| !b.is_null()).cloned(),
        depends_on,
    })
}

pub(crate) async fn serve(state: &GraphState, ctx: &Ctx, req: Req) -> GraphResult<Resp> {
    if req.method != Method::POST {
        return Err(graph_errors::method_not_allowed(req.method.as_str()));
    }
    auth::authenticate(state, &req.headers, ctx.now)?;
    let body: Value = serde_json::from_slice(&req.body).map_err(|_| invalid_payload())?;
    let requests = body
        .as_object()
        .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("requests")))
        .and_then(|(_, v)| v.as_array())
        .ok_or_else(invalid_payload)?;
    if requests.len() > MAX_REQUESTS {
        return Err(graph_errors::bad_request(format!(
            "Number of batch requests exceeded. Maximum is {MAX_REQUESTS}."
        )));
    }
    let items: Vec<Item> = requests
        .iter()
        .map(parse_item)
        .collect::<GraphResult<_>>()?;
    let mut seen = std::collections::HashSet::new();
    for (i, item) in items.iter().enumerate() {
        if !seen.insert(item.id.clone()) {
            return Err(graph_errors::bad_request(format!(
                "Request Id '{}' is not unique.",
                item.id
            )));
        }
        for dep in &item.depends_on {
            if !items[..i].iter().any(|earlier| &earlier.id == dep) {
                return Err(graph_errors::bad_request(format!(
                    "Request '{}' depends on '{dep}', which is not an earlier request of the batch.",
                    item.id
                )));
            }
        }
    }
    let latency = state.own().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut statuses: HashMap<String, u16> = HashMap::new();
    let mut responses = Vec::with_capacity(items.len());
    for item in items {
        let failed_dependency = item
            .depends_on
            .iter()
            .any(|d| statuses.get(d).is_none_or(|s| *s >= 400));
        let (status, resp) = if failed_dependency {
            let inner_ctx = Ctx::new(ctx.base_url.clone(), ctx.now, &HeaderMap::new());
            let e = GraphError::new(
                StatusCode::FAILED_DEPENDENCY,
                "FailedDependency",
                "A request this request depends on failed.",
            );
            let resp = e.into_resp(&inner_ctx);
            (424, resp)
        } else {
            let resp = run(state, ctx, &req.headers, &item).await;
            if matches!(resp.body, RespBody::Reset) {
                // An item's injected reset takes the whole connection down.
                return Ok(resp);
            }
            (resp.status.as_u16(), resp)
        };
        statuses.insert(item.id.clone(), status);
        responses.push(answer(&item.id, resp));
    }
    responses.reverse();
    Ok(Resp::ok(json!({"responses": responses})))
}

/// Runs one item as a request of its own, with the envelope's credentials.
async fn run(state: &GraphState, ctx: &Ctx, outer: &HeaderMap, item: &Item) -> Resp {
    let mut headers = HeaderMap::new();
    for (name, value) in &item.headers {
        if name.eq_ignore_ascii_case("authorization") {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(n, v);
        }
    }
    if let Some(auth) = outer.get("authorization") {
        headers.insert("authorization", auth.clone());
    }
    let url = item.url.trim_start_matches('/');
    let url = url.strip_prefix("v1.0/").unwrap_or(url);
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let inner_ctx = Ctx::new(ctx.base_url.clone(), ctx.now, &headers);
    let has_content_type = headers.contains_key("content-type");
    let body = match &item.body {
        None => Vec::new(),
        Some(_) if !has_content_type => {
            let mut resp = graph_errors::bad_request(format!(
                "Write request id : {} does not contain Content-Type header or body.",
                item.id
            ))
            .into_resp(&inner_ctx);
            inner_ctx.decorate(&mut resp);
            return resp;
        }
        Some(Value::String(s))
            if !headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.contains("json")) =>
        {
            STANDARD
                .decode(s.trim())
                .unwrap_or_else(|_| s.clone().into_bytes())
        }
        Some(value) => value.to_string().into_bytes(),
    };
    let req = Req {
        method: item.method.clone(),
        path: format!("/{path}"),
        query: Req::parse_query(query),
        headers,
        body,
    };
    dispatch::handle(state, inner_ctx, req, std::time::Duration::ZERO, true).await
}

fn answer(id: &str, resp: Resp) -> Value {
    let mut headers = Map::new();
    if let Some(ct) = resp.content_type() {
        headers.insert("Content-Type".into(), ct.into());
    }
    for (name, value) in &resp.headers {
        headers.insert(name.clone(), value.clone().into());
    }
    let mut o = Map::new();
    o.insert("id".into(), id.into());
    o.insert("status".into(), resp.status.as_u16().into());
    o.insert("headers".into(), Value::Object(headers));
    match resp.body {
        RespBody::Empty | RespBody::Reset => {}
        RespBody::Json(v) => {
            o.insert("body".into(), v);
        }
        RespBody::Bytes { bytes, .. } => {
            o.insert("body".into(), STANDARD.encode(bytes).into());
        }
    }
    Value::Object(o)
}
