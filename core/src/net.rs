//! The HTTP client every outbound call uses: no redirects (a redirect could carry a credential to
//! another host), explicit timeouts, the system's roots plus any configured CA, and bounded bodies.

use std::time::Duration;

use crate::config::NetworkSettings;

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a whole request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response body read from an identity provider (and the largest error body read
/// from a mailbox server). Mailbox content has its own, larger limit (`limits.max_item_mb`).
pub const MAX_BODY: usize = 1024 * 1024;

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("the HTTP client cannot be built: {0}")]
pub struct ClientBuildError(String);

impl ClientBuildError {
    pub(crate) fn new(why: String) -> Self {
        ClientBuildError(why)
    }
}

/// The client for identity providers: every request ends within [`REQUEST_TIMEOUT`].
pub fn http_client(network: &NetworkSettings) -> Result<reqwest::Client, ClientBuildError> {
    build(network, reqwest::Client::builder().timeout(REQUEST_TIMEOUT))
}

/// The client for mailbox servers: a large attachment may take longer than [`REQUEST_TIMEOUT`]
/// to stream, so the pipeline sets a whole-request timeout on structured answers only, and every
/// read must make progress within [`REQUEST_TIMEOUT`].
pub fn content_client(network: &NetworkSettings) -> Result<reqwest::Client, ClientBuildError> {
    build(
        network,
        reqwest::Client::builder().read_timeout(REQUEST_TIMEOUT),
    )
}

pub(crate) fn build(
    network: &NetworkSettings,
    builder: reqwest::ClientBuilder,
) -> Result<reqwest::Client, ClientBuildError> {
    let mut builder = builder
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("exgate/", env!("CARGO_PKG_VERSION")));
    for cert in extra_roots(network)? {
        builder = builder.add_root_certificate(cert);
    }
    builder.build().map_err(|e| ClientBuildError(e.to_string()))
}

/// The configured CA's certificates (`tls.ca_file`), if any.
fn extra_roots(network: &NetworkSettings) -> Result<Vec<reqwest::Certificate>, ClientBuildError> {
    match &network.ca_pem {
        Some(pem) => reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
            ClientBuildError(format!("tls.ca_file holds no usable PEM certificate: {e}"))
        }),
        None => Ok(Vec::new()),
    }
}

/// Refuses the settings a client could not be built from (a CA file without a usable PEM
/// certificate) without building one: services that build their client on first use check
/// when they start.
pub fn check(network: &NetworkSettings) -> Result<(), ClientBuildError> {
    extra_roots(network).map(drop)
}

/// Reads a response body, refusing one larger than [`MAX_BODY`].
pub(crate) async fn read_body(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("the response is larger than {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The longest back-off hint taken at its word; longer ones are treated as this long (a day),
/// so no arithmetic on a hostile value can overflow.
pub const MAX_HINT: Duration = Duration::from_secs(24 * 60 * 60);

/// A `Retry-After` header (RFC 9110 §10.2.3): delay-seconds, or an HTTP-date (how long from now).
/// Values beyond [`MAX_HINT`] are clamped to it; anything unreadable is no hint.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    parse_retry_after(value, std::time::SystemTime::now())
}

pub(crate) fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Saturates: `18446744073709551616` and longer are as good as "a very long time".
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_HINT));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_HINT),
    )
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    #[test]
    fn retry_after_takes_both_forms_and_clamps_hostile_values() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("18446744073709551615", now),
            Some(MAX_HINT)
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(MAX_HINT)
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("", now), None);
        let later = httpdate::fmt_http_date(now + Duration::from_secs(120));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(120))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(120));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
    }
}
