//! Webhook signatures, secrets and URLs: what an application checks on every request exgate
//! POSTs to it.
//!
//! # The signature scheme (version 1)
//!
//! Every delivery carries three headers besides `Content-Type: application/json`:
//!
//! | header | value |
//! |---|---|
//! | `exgate-event-id` | the event's ID (`evt_…`), also the `id` of the JSON body: an idempotency key |
//! | `exgate-timestamp` | when the request was signed, in Unix seconds (`1767225600`) |
//! | `exgate-signature` | `v1=<hex>`, possibly several comma-separated (`v1=…,v1=…`) |
//!
//! `<hex>` is the lowercase hexadecimal HMAC-SHA256, keyed with the webhook's secret (the whole
//! string, `whsec_` included, as UTF-8 bytes), of the signed payload
//!
//! ```text
//! <exgate-timestamp> "." <exgate-event-id> "." <the raw request body>
//! ```
//!
//! A receiver:
//! 1. computes the HMAC of that payload from the body's raw bytes (before any JSON parsing),
//! 2. compares it in constant time with each `v1=` value of `exgate-signature` and accepts the
//!    request when one matches (several values let a sender sign with an old and a new secret
//!    while a secret is rotated; values of other versions are ignored),
//! 3. refuses a timestamp more than five minutes ([`TOLERANCE`]) away from its own clock: a
//!    recorded request replayed later fails, because the timestamp is signed.
//!
//! [`verify`] does all three. Deliveries are at least once: the same event may arrive twice (a
//! response lost, a gateway stopped mid-request), so receivers deduplicate by event ID.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use reqwest::header::HeaderMap;
use sha2_hmac::Sha256;
use time::OffsetDateTime;
use url::{Host, Url};

use crate::model::InvalidInput;
use crate::secret::{Secret, random_bytes};

/// The event's ID.
pub const EVENT_ID_HEADER: &str = "exgate-event-id";
/// When the request was signed, in Unix seconds.
pub const TIMESTAMP_HEADER: &str = "exgate-timestamp";
/// `v1=<hex HMAC-SHA256>`, comma-separated when there are several.
pub const SIGNATURE_HEADER: &str = "exgate-signature";
/// The version tag of the signatures this module makes.
pub const SIGNATURE_VERSION: &str = "v1";
/// How far a request's timestamp may be from the receiver's clock.
pub const TOLERANCE: Duration = Duration::from_secs(5 * 60);
/// What every webhook secret starts with.
pub const SECRET_PREFIX: &str = "whsec_";

type HmacSha256 = Hmac<Sha256>;

/// A new webhook secret: `whsec_` and 32 random bytes, base64url without padding.
pub fn generate_secret() -> Secret {
    let bytes = random_bytes::<32>();
    Secret::new(format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

fn mac(secret: &Secret, timestamp: i64, event_id: &str, body: &[u8]) -> HmacSha256 {
    #[allow(clippy::expect_used, reason = "HMAC takes a key of any length")]
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(event_id.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `v1=<hex>` signature of one request.
pub fn signature(secret: &Secret, timestamp: i64, event_id: &str, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, event_id, body)
        .finalize()
        .into_bytes();
    let mut out = String::with_capacity(3 + 2 * tag.len());
    out.push_str(SIGNATURE_VERSION);
    out.push('=');
    for b in tag {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The three headers of a signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub event_id: String,
    pub timestamp: i64,
    /// The `exgate-signature` value.
    pub signature: String,
}

impl SignedHeaders {
    /// `(name, value)` pairs, ready for a request builder.
    pub fn pairs(&self) -> [(&'static str, String); 3] {
        [
            (EVENT_ID_HEADER, self.event_id.clone()),
            (TIMESTAMP_HEADER, self.timestamp.to_string()),
            (SIGNATURE_HEADER, self.signature.clone()),
        ]
    }
}

/// Signs a request carrying `body` for the event `event_id` at `now`, with every secret in
/// `secrets` (one `v1=` value each: more than one while a secret is rotated).
pub fn sign(
    secrets: &[&Secret],
    event_id: &str,
    body: &[u8],
    now: OffsetDateTime,
) -> SignedHeaders {
    let timestamp = now.unix_timestamp();
    let signature = secrets
        .iter()
        .map(|s| signature(s, timestamp, event_id, body))
        .collect::<Vec<_>>()
        .join(",");
    SignedHeaders {
        event_id: event_id.to_owned(),
        timestamp,
        signature,
    }
}

/// Why a request was refused. Never holds a secret or an expected signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the request has no {0} header (or it is not text)")]
    MissingHeader(&'static str),
    #[error("the {TIMESTAMP_HEADER} header is not a Unix time in seconds")]
    MalformedTimestamp,
    #[error(
        "the request was signed {skew} seconds away from this clock, more than the {tolerance} \
         allowed: a replayed request, or a clock that needs synchronising"
    )]
    Stale { skew: i64, tolerance: u64 },
    #[error("the {SIGNATURE_HEADER} header has no v1= signature")]
    NoSignature,
    #[error("no signature matches: the secret differs, or the request was altered")]
    BadSignature,
}

/// Checks a request's three header values and raw `body` against `secret`, at `now`, allowing
/// `tolerance` (normally [`TOLERANCE`]) between the signing time and `now`.
pub fn verify_parts(
    event_id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    secret: &Secret,
    now: OffsetDateTime,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::MalformedTimestamp)?;
    let skew = now.unix_timestamp().saturating_sub(ts);
    let tolerance_secs = tolerance.as_secs();
    if skew.unsigned_abs() > tolerance_secs {
        return Err(VerifyError::Stale {
            skew,
            tolerance: tolerance_secs,
        });
    }
    let expected = mac(secret, ts, event_id, body);
    let mut any = false;
    let mut matched = false;
    for value in signatures.split(',') {
        let Some(hex) = value
            .trim()
            .strip_prefix(SIGNATURE_VERSION)
            .and_then(|v| v.strip_prefix('='))
        else {
            continue;
        };
        any = true;
        if let Some(tag) = decode_hex(hex) {
            // Every candidate is checked (no early exit), each in constant time.
            matched |= expected.clone().verify_slice(&tag).is_ok();
        }
    }
    match (any, matched) {
        (_, true) => Ok(()),
        (false, false) => Err(VerifyError::NoSignature),
        (true, false) => Err(VerifyError::BadSignature),
    }
}

/// [`verify_parts`] on a request's headers. Answers the event ID the request is for.
pub fn verify(
    headers: &HeaderMap,
    body: &[u8],
    secret: &Secret,
    now: OffsetDateTime,
    tolerance: Duration,
) -> Result<String, VerifyError> {
    let get = |name: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(VerifyError::MissingHeader(name))
    };
    let event_id = get(EVENT_ID_HEADER)?;
    let timestamp = get(TIMESTAMP_HEADER)?;
    // Several header lines are one comma-separated list (RFC 9110 §5.3).
    let signatures = headers
        .get_all(SIGNATURE_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    if signatures.is_empty() {
        return Err(VerifyError::MissingHeader(SIGNATURE_HEADER));
    }
    verify_parts(
        event_id,
        timestamp,
        &signatures,
        body,
        secret,
        now,
        tolerance,
    )?;
    Ok(event_id.to_owned())
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// Checks a webhook's URL: `https`, or `http` to a loopback address (`127.0.0.0/8`, `::1`,
/// `localhost`) unless `allow_plain_http`; no user name or password; no fragment.
pub fn validate_url(raw: &str, allow_plain_http: bool) -> Result<Url, InvalidInput> {
    let invalid = |message: String| InvalidInput::new("url", message);
    if raw.trim().is_empty() {
        return Err(InvalidInput::missing(
            "url",
            "a webhook needs the https URL events are POSTed to".into(),
        ));
    }
    // The value is not echoed: it may hold a password.
    let url = Url::parse(raw.trim()).map_err(|e| {
        invalid(format!(
            "not an absolute URL ({e}); give one like https://app.example.com/exgate/events"
        ))
    })?;
    let Some(host) = url.host() else {
        return Err(invalid("the URL has no host".into()));
    };
    match url.scheme() {
        "https" => {}
        "http" if allow_plain_http || is_loopback(&host) => {}
        "http" => {
            return Err(invalid(
                "plain http is accepted only to a loopback address (127.0.0.1, ::1, localhost); \
                 use https, or allow plain http in the gateway's settings"
                    .into(),
            ));
        }
        other => {
            return Err(invalid(format!(
                "the scheme `{other}` is not https; a webhook URL starts with https://"
            )));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "a webhook URL carries no user name or password (user:password@); the signature \
             authenticates exgate to the receiver"
                .into(),
        ));
    }
    if url.fragment().is_some() {
        return Err(invalid(
            "a webhook URL has no fragment (#…): it is never sent to the server".into(),
        ));
    }
    Ok(url)
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }

    #[test]
    fn a_known_signature() {
        // python3 -c "import hmac,hashlib; print(hmac.new(b'whsec_test',
        //   b'1767225600.evt_1.{}', hashlib.sha256).hexdigest())"
        let s = Secret::new("whsec_test");
        let sig = signature(&s, 1_767_225_600, "evt_1", b"{}");
        assert_eq!(
            sig,
            "v1=17176cd37cd65628fd67a3a2b6e14b96c5e723c4e38a9a47271131195f00196b"
        );
        assert_eq!(sig.len(), 3 + 64);
        assert!(
            sig[3..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }

    #[test]
    fn secrets_are_prefixed_random_and_hidden() {
        let a = generate_secret();
        let b = generate_secret();
        assert!(a.expose().starts_with(SECRET_PREFIX));
        assert_eq!(a.expose().len(), SECRET_PREFIX.len() + 43);
        assert_ne!(a.expose(), b.expose());
        assert_eq!(format!("{a:?}"), "[redacted]");
    }

    #[test]
    fn verify_accepts_any_matching_v1_and_refuses_the_rest() {
        let old = Secret::new("whsec_old");
        let new = Secret::new("whsec_new");
        let now = at(1_767_225_600);
        let signed = sign(&[&old, &new], "evt_1", b"body", now);
        assert_eq!(signed.signature.matches("v1=").count(), 2);
        for secret in [&old, &new] {
            assert_eq!(
                verify_parts(
                    "evt_1",
                    "1767225600",
                    &signed.signature,
                    b"body",
                    secret,
                    now,
                    TOLERANCE
                ),
                Ok(())
            );
        }
        let other = Secret::new("whsec_other");
        let check = |id: &str, ts: &str, sig: &str, body: &[u8], secret: &Secret| {
            verify_parts(id, ts, sig, body, secret, now, TOLERANCE)
        };
        let sig = &signed.signature;
        assert_eq!(
            check("evt_1", "1767225600", sig, b"body", &other),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            check("evt_1", "1767225600", sig, b"bodY", &old),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            check("evt_2", "1767225600", sig, b"body", &old),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            check("evt_1", "1767225601", sig, b"body", &old),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            check("evt_1", "1767225600", "v0=00,v2=zz", b"body", &old),
            Err(VerifyError::NoSignature)
        );
        assert_eq!(
            check("evt_1", "1767225600", "v1=nothex", b"body", &old),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            check("evt_1", "soon", sig, b"body", &old),
            Err(VerifyError::MalformedTimestamp)
        );
    }

    #[test]
    fn verify_refuses_old_and_future_timestamps() {
        let s = Secret::new("whsec_x");
        let signed_at = at(1_767_225_600);
        let signed = sign(&[&s], "evt_1", b"{}", signed_at);
        let check = |now: OffsetDateTime| {
            verify_parts(
                "evt_1",
                "1767225600",
                &signed.signature,
                b"{}",
                &s,
                now,
                TOLERANCE,
            )
        };
        assert_eq!(check(signed_at + Duration::from_secs(300)), Ok(()));
        assert_eq!(check(signed_at - Duration::from_secs(300)), Ok(()));
        assert!(matches!(
            check(signed_at + Duration::from_secs(301)),
            Err(VerifyError::Stale { skew: 301, .. })
        ));
        assert!(matches!(
            check(signed_at - Duration::from_secs(301)),
            Err(VerifyError::Stale { skew: -301, .. })
        ));
    }

    #[test]
    fn verify_reads_the_headers() {
        let s = Secret::new("whsec_x");
        let now = at(1_767_225_600);
        let signed = sign(&[&s], "evt_9", b"{}", now);
        let mut headers = HeaderMap::new();
        for (name, value) in signed.pairs() {
            headers.insert(name, HeaderValue::from_str(&value).unwrap());
        }
        assert_eq!(
            verify(&headers, b"{}", &s, now, TOLERANCE).as_deref(),
            Ok("evt_9")
        );
        headers.remove(TIMESTAMP_HEADER);
        assert_eq!(
            verify(&headers, b"{}", &s, now, TOLERANCE),
            Err(VerifyError::MissingHeader(TIMESTAMP_HEADER))
        );
    }

    #[test]
    fn urls_are_https_or_loopback_http() {
        for ok in [
            "https://app.example.com/hooks/exgate?x=1",
            "http://127.0.0.1:8080/hook",
            "http://127.8.9.10/hook",
            "http://[::1]:9000/",
            "http://localhost/hook",
            "http://LOCALHOST:1/",
        ] {
            assert!(validate_url(ok, false).is_ok(), "{ok}");
        }
        let message = |raw: &str| validate_url(raw, false).unwrap_err().to_string();
        assert!(message("http://app.example.com/").contains("only to a loopback"));
        assert!(message("http://10.0.0.1/").contains("only to a loopback"));
        assert!(validate_url("http://app.example.com/", true).is_ok());
        assert!(message("ftp://app.example.com/").contains("scheme `ftp`"));
        assert!(message("https://user:pw@app.example.com/").contains("no user name"));
        assert!(message("https://user@app.example.com/").contains("no user name"));
        assert!(message("https://app.example.com/#x").contains("no fragment"));
        assert!(message("app.example.com/hook").contains("not an absolute URL"));
        assert!(message("").starts_with("missing url"));
        for raw in ["http://app.example.com/", "https://u:p@h/"] {
            assert!(message(raw).starts_with("invalid url:"), "{raw}");
        }
        // The password is never echoed.
        assert!(!message("https://user:hunter2@app.example.com/").contains("hunter2"));
    }
}
