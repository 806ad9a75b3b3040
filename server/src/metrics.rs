//! `/metrics` in the Prometheus text format: requests and latency per route, token cache
//! activity, and throttling back-offs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// Latency bucket bounds, in seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Debug, Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

/// One route's counts: its latency, and its requests by method and status (a handful each).
#[derive(Debug, Default)]
struct RouteSeries {
    latency: Series,
    requests: Vec<(String, u16, u64)>,
}

/// Per route pattern, under one lock; a request that was seen before (same route, method and
/// status) is counted without allocating.
#[derive(Debug, Default)]
pub struct Metrics {
    routes: Mutex<BTreeMap<String, RouteSeries>>,
}

impl Metrics {
    fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut routes = self
            .routes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !routes.contains_key(route) {
            routes.insert(route.to_owned(), RouteSeries::default());
        }
        let Some(r) = routes.get_mut(route) else {
            return;
        };
        match r
            .requests
            .iter_mut()
            .find(|(m, s, _)| *s == status && m == method)
        {
            Some((_, _, n)) => *n += 1,
            None => r.requests.push((method.to_owned(), status, 1)),
        }
        let s = &mut r.latency;
        s.count += 1;
        s.sum += seconds;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                s.buckets[i] += 1;
            }
        }
    }
}

/// Records every request under its route pattern (not its concrete path: no IDs in labels).
pub(crate) async fn track(State(s): State<AppState>, req: Request, next: Next) -> Response {
    // A matched path is shared (`Arc<str>` inside): cloning it copies nothing.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let started = Instant::now();
    let resp = next.run(req).await;
    s.metrics.record(
        method.as_str(),
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Metrics in the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "`exgate_http_requests_total{method,route,status}`, \
            `exgate_http_request_duration_seconds{route}`, `exgate_token_cache_hits_total`, \
            `exgate_token_refreshes_total`, `exgate_token_refresh_failures_total`, \
            `exgate_throttle_backoffs_total{backend}`, `exgate_credential_expiry_seconds{connection}` \
            (seconds until the connection's client secret, certificate or password expires; \
            negative once expired; only connections whose expiry is known)", content_type = "text/plain; version=0.0.4", body = String),
    ),
)]
pub(crate) async fn render(State(s): State<AppState>) -> impl IntoResponse {
    // Read before the route counters are locked: no lock is held across an await.
    let entries = s.connections.list().await;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP exgate_http_requests_total HTTP requests by method, route and status.\n# TYPE exgate_http_requests_total counter"
    );
    let routes = s
        .metrics
        .routes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Ordered by method, route and status.
    let mut requests: Vec<(&str, &str, u16, u64)> = routes
        .iter()
        .flat_map(|(route, r)| {
            r.requests
                .iter()
                .map(move |(m, status, n)| (m.as_str(), route.as_str(), *status, *n))
        })
        .collect();
    requests.sort_unstable();
    for (method, route, status, n) in requests {
        let _ = writeln!(
            out,
            "exgate_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
            label(route)
        );
    }
    let _ = writeln!(
        out,
        "# HELP exgate_http_request_duration_seconds Request latency by route.\n# TYPE exgate_http_request_duration_seconds histogram"
    );
    for (route, series) in routes.iter().map(|(route, r)| (route, &r.latency)) {
        let r = label(route);
        for (bound, n) in BUCKETS.iter().zip(series.buckets) {
            let _ = writeln!(
                out,
                "exgate_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"{bound}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "exgate_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}",
            series.count
        );
        let _ = writeln!(
            out,
            "exgate_http_request_duration_seconds_sum{{route=\"{r}\"}} {}",
            series.sum
        );
        let _ = writeln!(
            out,
            "exgate_http_request_duration_seconds_count{{route=\"{r}\"}} {}",
            series.count
        );
    }
    drop(routes);
    let stats = s.signin.cache().stats();
    let _ = writeln!(
        out,
        "# HELP exgate_token_cache_hits_total Tokens served from the cache.\n# TYPE exgate_token_cache_hits_total counter\nexgate_token_cache_hits_total {}",
        stats.hits.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP exgate_token_refreshes_total Token refreshes (answered by the identity provider, or by the token another gateway sharing the store had just stored).\n# TYPE exgate_token_refreshes_total counter\nexgate_token_refreshes_total {}",
        stats.fetches.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP exgate_token_refresh_failures_total Failed token requests.\n# TYPE exgate_token_refresh_failures_total counter\nexgate_token_refresh_failures_total {}",
        stats.fetch_failures.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP exgate_throttle_backoffs_total Times a mailbox server asked to back off.\n# TYPE exgate_throttle_backoffs_total counter\nexgate_throttle_backoffs_total{{backend=\"graph\"}} {}\nexgate_throttle_backoffs_total{{backend=\"ews\"}} {}",
        s.mailboxes.governor().back_offs(),
        s.mailboxes.ews_governor().back_offs()
    );
    // Seconds until each connection's credential expires, on the gateway's clock. A store that
    // cannot be read leaves the gauge out rather than failing the scrape.
    if let Ok(entries) = entries {
        let now = s.signin.clock().now();
        let _ = writeln!(
            out,
            "# HELP exgate_credential_expiry_seconds Seconds until the connection's client secret, certificate or password expires (negative once expired).\n# TYPE exgate_credential_expiry_seconds gauge"
        );
        let mut seen = std::collections::BTreeSet::new();
        for e in &entries {
            // A name declared and stored twice is one series (the declared one, listed first).
            if !seen.insert(e.connection.name.as_str().to_ascii_lowercase()) {
                continue;
            }
            if let Some(x) = s.expiry.expiry(&e.connection, now) {
                let _ = writeln!(
                    out,
                    "exgate_credential_expiry_seconds{{connection=\"{}\"}} {}",
                    label(e.connection.name.as_str()),
                    x.seconds_left
                );
            }
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out,
    )
}
