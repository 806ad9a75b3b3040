//! Security headers for every HTML page the gateway serves (the sign-in callback, whose URL
//! carries the authorization code, and the API docs page): not cached, no referrer, never framed,
//! and a content security policy. A page may set its own policy (the callback allows only its
//! hashed style); others get [`DEFAULT_CSP`].

use axum::http::{HeaderValue, header};
use axum::response::Response;

/// The policy of a page that sets none: nothing loads, nothing frames it.
pub(crate) const DEFAULT_CSP: &str =
    "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A policy that allows only inline `<style>` blocks with these contents (by SHA-256).
pub(crate) fn csp_with_styles(styles: &[&str]) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let hashes: Vec<String> = styles
        .iter()
        .map(|s| {
            format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(Sha256::digest(s.as_bytes()))
            )
        })
        .collect();
    format!(
        "default-src 'none'; style-src {}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hashes.join(" ")
    )
}

pub(crate) async fn secure_pages(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut resp = next.run(req).await;
    let is_html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if !is_html {
        return resp;
    }
    let headers = resp.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DEFAULT_CSP),
        );
    }
    resp
}
