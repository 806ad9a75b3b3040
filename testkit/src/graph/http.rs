//! One Graph request and its answer, independent of axum so that `$batch` items go through the
//! same code as plain requests.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::mailstore::content::BodyType;

/// A request under `/graph/v1.0`.
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub method: Method,
    /// The path after `/v1.0`, as sent (still percent-encoded), e.g. `/me/messages`.
    pub path: String,
    /// Query parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Req {
    pub(crate) fn parse_query(raw: &str) -> Vec<(String, String)> {
        url::form_urlencoded::parse(raw.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// The value of a query option, with or without its `$` (`$top` or `top`), any case.
    pub(crate) fn option(&self, name: &str) -> Option<&str> {
        let bare = name.trim_start_matches('$');
        self.query
            .iter()
            .find(|(k, _)| {
                let k = k.trim_start_matches('$');
                k.eq_ignore_ascii_case(bare)
            })
            .map(|(_, v)| v.as_str())
    }
}

/// An answer body.
#[derive(Debug, Clone)]
pub(crate) enum RespBody {
    Empty,
    Json(Value),
    /// Raw bytes (MIME, an attachment): shared, and sent in [`CHUNK`]-sized slices of the
    /// same buffer with their `Content-Length`, so a download never copies them.
    Bytes {
        content_type: String,
        bytes: Bytes,
    },
    /// No answer: the connection is reset (an injected fault).
    Reset,
}

/// A Graph answer.
#[derive(Debug, Clone)]
pub(crate) struct Resp {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: RespBody,
}

impl Resp {
    pub(crate) fn new(status: StatusCode, body: RespBody) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body,
        }
    }

    pub(crate) fn json(status: StatusCode, body: Value) -> Self {
        Self::new(status, RespBody::Json(body))
    }

    pub(crate) fn ok(body: Value) -> Self {
        Self::json(StatusCode::OK, body)
    }

    pub(crate) fn empty(status: StatusCode) -> Self {
        Self::new(status, RespBody::Empty)
    }

    pub(crate) fn header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.push((name.to_string(), value.into()));
    }

    pub(crate) fn content_type(&self) -> Option<String> {
        match &self.body {
            RespBody::Empty | RespBody::Reset => None,
            RespBody::Json(_) => {
                Some("application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8".into())
            }
            RespBody::Bytes { content_type, .. } => Some(content_type.clone()),
        }
    }
}

impl IntoResponse for Resp {
    fn into_response(self) -> Response {
        let content_type = self.content_type();
        let body = match self.body {
            RespBody::Empty => Body::empty(),
            RespBody::Reset => Body::new(ResetBody),
            RespBody::Json(value) => Body::from(value.to_string()),
            RespBody::Bytes { bytes, .. } => Body::new(Chunked { rest: bytes }),
        };
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        if let Some(ct) = content_type
            && let Ok(v) = HeaderValue::from_str(&ct)
        {
            headers.insert(header::CONTENT_TYPE, v);
        }
        for (name, value) in self.headers {
            if let (Ok(n), Ok(v)) = (
                axum::http::HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                headers.append(n, v);
            }
        }
        response
    }
}

/// How much of a raw body goes into one frame.
pub(crate) const CHUNK: usize = 64 * 1024;

/// A shared buffer sent as [`CHUNK`]-sized slices of itself (no copy), with its exact length
/// (hyper sends it as `Content-Length`).
struct Chunked {
    rest: Bytes,
}

impl axum::body::HttpBody for Chunked {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        if self.rest.is_empty() {
            return std::task::Poll::Ready(None);
        }
        let take = self.rest.len().min(CHUNK);
        let chunk = self.rest.split_to(take);
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(u64::try_from(self.rest.len()).unwrap_or(u64::MAX))
    }
}

/// A body that fails at once: hyper then abandons the connection. Used only when a reset was
/// asked for on a connection the mock does not control (its router served elsewhere).
struct ResetBody;

impl axum::body::HttpBody for ResetBody {
    type Data = axum::body::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by an injected fault",
        ))))
    }
}

/// The caller's `Prefer` header values the mock honours.
#[derive(Debug, Clone, Default)]
pub(crate) struct Prefer {
    pub body_type: Option<BodyType>,
    /// The zone name as the caller spelled it.
    pub time_zone: Option<String>,
    pub max_page_size: Option<usize>,
}

impl Prefer {
    pub(crate) fn parse(headers: &HeaderMap) -> Self {
        let mut prefer = Prefer::default();
        for value in headers.get_all("prefer") {
            let Ok(value) = value.to_str() else { continue };
            for item in value.split(',') {
                let Some((name, v)) = item.split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"').trim();
                match name.trim().to_ascii_lowercase().as_str() {
                    "outlook.body-content-type" => {
                        prefer.body_type = match v.to_ascii_lowercase().as_str() {
                            "text" => Some(BodyType::Text),
                            "html" => Some(BodyType::Html),
                            _ => None,
                        };
                    }
                    "outlook.timezone" => prefer.time_zone = Some(v.to_string()),
                    "odata.maxpagesize" => {
                        prefer.max_page_size = v.parse().ok().filter(|n: &usize| *n > 0);
                    }
                    _ => {}
                }
            }
        }
        prefer
    }
}

/// What every answer needs to know about its request.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub request_id: String,
    pub client_request_id: String,
    pub now: OffsetDateTime,
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    pub prefer: Prefer,
}

impl Ctx {
    pub(crate) fn new(base_url: String, now: OffsetDateTime, headers: &HeaderMap) -> Self {
        let request_id = uuid::Uuid::new_v4().to_string();
        let client_request_id = headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 100 && v.chars().all(|c| c.is_ascii_graphic()))
            .map_or_else(|| request_id.clone(), str::to_string);
        Self {
            request_id,
            client_request_id,
            now,
            base_url,
            prefer: Prefer::parse(headers),
        }
    }

    /// `{base}/graph/v1.0`
    pub(crate) fn graph_url(&self) -> String {
        format!("{}/graph/v1.0", self.base_url)
    }

    /// `2026-11-21T19:50:07`, as in Graph's `innerError`.
    pub(crate) fn inner_error_date(&self) -> String {
        let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
        self.now.format(fmt).unwrap_or_default()
    }

    pub(crate) fn decorate(&self, resp: &mut Resp) {
        resp.header("request-id", self.request_id.clone());
        resp.header("client-request-id", self.client_request_id.clone());
    }
}

/// `2026-11-02T09:00:00Z`: how Graph writes message times.
pub(crate) fn fmt_instant(t: OffsetDateTime) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(fmt)
        .unwrap_or_default()
}

/// `2026-11-02T09:00:00.0000000`: how Graph writes event times.
pub(crate) fn fmt_local(t: time::PrimitiveDateTime) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].0000000");
    t.format(fmt).unwrap_or_default()
}

/// Parses an instant: RFC 3339 (`Z` or an offset), or a date-time without offset (UTC), or a
/// bare date (midnight UTC).
pub(crate) fn parse_instant(s: &str) -> Option<OffsetDateTime> {
    // A `+` of an offset that was not percent-encoded arrives as a space.
    let fixed;
    let s = match s.trim().split_once(' ') {
        Some((local, offset)) if local.contains('T') => {
            fixed = format!("{local}+{offset}");
            fixed.as_str()
        }
        _ => s.trim(),
    };
    if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Some(t.to_offset(time::UtcOffset::UTC));
    }
    // An offset without seconds precision issues, or none: take the local part as UTC.
    if let Some(idx) = s.rfind(['+', '-']).filter(|i| *i > 10) {
        let (local, offset) = s.split_at(idx);
        let local = crate::mailstore::recurrence::parse_local(local)?;
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (h, m) = offset
            .get(1..)?
            .split_once(':')
            .unwrap_or((offset.get(1..)?, "0"));
        let minutes = sign * (h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?);
        return local
            .assume_utc()
            .checked_sub(time::Duration::minutes(minutes));
    }
    crate::mailstore::recurrence::parse_local(s).map(time::PrimitiveDateTime::assume_utc)
}

/// A URL to the same endpoint with the same query options except the state tokens, plus
/// `extra` (e.g. `$skiptoken=…`).
pub(crate) fn link(ctx: &Ctx, req: &Req, extra: &[(&str, &str)]) -> String {
    let mut query: Vec<String> = req
        .query
        .iter()
        .filter(|(k, _)| {
            let bare = k.trim_start_matches('$').to_ascii_lowercase();
            bare != "skiptoken" && bare != "deltatoken" && bare != "skip"
        })
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    for (k, v) in extra {
        query.push(format!("{k}={}", encode(v)));
    }
    let mut url = format!("{}{}", ctx.graph_url(), req.path);
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query.join("&"));
    }
    url
}

/// Percent-encodes a query component, keeping `$` and the characters OData writes bare.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'$'
            | b','
            | b'/'
            | b':'
            | b'\''
            | b'('
            | b')' => {
                out.push(char::from(b));
            }
            b' ' => out.push_str("%20"),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use axum::body::HttpBody as _;
    use time::macros::datetime;

    use super::*;

    #[test]
    fn raw_bodies_go_out_as_slices_of_the_shared_buffer_with_their_length() {
        let len = 3 * CHUNK + 1000;
        let stored = Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        let resp = Resp::new(
            StatusCode::OK,
            RespBody::Bytes {
                content_type: "application/octet-stream".into(),
                bytes: stored.clone(),
            },
        )
        .into_response();
        assert_eq!(
            resp.headers().get("content-type").unwrap(),
            "application/octet-stream"
        );
        let mut body = resp.into_body();
        assert_eq!(body.size_hint().exact(), Some(len as u64));
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let range = stored.as_ptr_range();
        let mut sizes = Vec::new();
        let mut received = Vec::new();
        while let std::task::Poll::Ready(Some(frame)) =
            std::pin::Pin::new(&mut body).poll_frame(&mut cx)
        {
            let data = frame.unwrap().into_data().unwrap();
            // The very bytes of the stored buffer, not a copy.
            assert!(range.contains(&data.as_ptr()), "a copied frame");
            sizes.push(data.len());
            received.extend_from_slice(&data);
        }
        assert_eq!(sizes, [CHUNK, CHUNK, CHUNK, 1000]);
        assert!(received == stored);
        assert!(body.is_end_stream());
    }

    #[test]
    fn instants_parse_in_every_form_graph_clients_send() {
        assert_eq!(
            parse_instant("2026-11-02T09:00:00Z"),
            Some(datetime!(2026-11-02 09:00 UTC))
        );
        assert_eq!(
            parse_instant("2026-11-02T09:00:00.0000000"),
            Some(datetime!(2026-11-02 09:00 UTC))
        );
        assert_eq!(
            parse_instant("2026-11-02T10:00:00+01:00"),
            Some(datetime!(2026-11-02 09:00 UTC))
        );
        assert_eq!(
            parse_instant("2026-11-02"),
            Some(datetime!(2026-11-02 00:00 UTC))
        );
        assert_eq!(parse_instant("yesterday"), None);
    }

    #[test]
    fn prefer_values_are_read_from_every_header_and_item() {
        let mut headers = HeaderMap::new();
        headers.append(
            "prefer",
            HeaderValue::from_static("outlook.body-content-type=\"text\""),
        );
        headers.append(
            "prefer",
            HeaderValue::from_static(
                "odata.maxpagesize=5, outlook.timezone=\"Pacific Standard Time\"",
            ),
        );
        let prefer = Prefer::parse(&headers);
        assert_eq!(prefer.body_type, Some(BodyType::Text));
        assert_eq!(prefer.max_page_size, Some(5));
        assert_eq!(prefer.time_zone.as_deref(), Some("Pacific Standard Time"));
    }
}
