//! Hardening: one error shape for every answer that is not a success, no echoed secret.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use exgate_server::app;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::{Gateway, Home};

/// A gateway whose body limit is 1 MiB.
async fn small_gateway(home: &Home) -> Gateway {
    let state = home
        .state_with(
            "http://gateway.test",
            [("EXGATE__LIMITS__MAX_ITEM_MB", "1".to_owned())],
        )
        .await;
    Gateway::new(state).await
}

fn request(
    gw: &Gateway,
    method: &str,
    uri: &str,
    content_type: Option<&str>,
    body: Body,
) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", &gw.admin);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.body(body).unwrap()
}

/// Sends `req` and checks the answer is `status` in the error shape; returns the raw body.
async fn shaped(gw: &Gateway, req: Request<Body>, status: StatusCode, what: &str) -> String {
    let resp = app(gw.state.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), status, "{what}");
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{what}: content type {content_type:?}"
    );
    let request_id = resp
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body: Value =
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in &keys {
        assert!(
            ["code", "message", "hint", "correlation_id"].contains(key),
            "{what}: unexpected key {key}: {text}"
        );
    }
    assert!(
        body["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{what}: {text}"
    );
    let message = body["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{what}: {text}");
    assert!(
        message.starts_with(|c: char| !c.is_uppercase()),
        "{what}: messages start lowercase: {text}"
    );
    assert!(!request_id.is_empty(), "{what}");
    assert_eq!(
        body["correlation_id"],
        request_id.as_str(),
        "{what}: {text}"
    );
    text
}

#[tokio::test]
async fn every_malformed_request_gets_the_error_shape() {
    let home = Home::new();
    let gw = small_gateway(&home).await;
    let json = Some("application/json");
    let big = {
        let mut body = br#"{"name":"big","scopes":[""#.to_vec();
        body.resize(1024 * 1024 + 10, b'x');
        body.extend_from_slice(br#""]}"#);
        body
    };
    let long_uri = format!("/api/v1/connections/{}", "a".repeat(20_000));
    let table: Vec<(&str, String, Option<&str>, Body, StatusCode)> = vec![
        (
            "POST",
            "/api/v1/connections".into(),
            json,
            Body::from(r#"{"name":"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/v1/connections".into(),
            json,
            Body::from("{} {}"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/v1/connections".into(),
            json,
            Body::empty(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/v1/connections".into(),
            json,
            Body::from(r#"{"name":5}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "POST",
            "/api/v1/connections".into(),
            json,
            Body::from(r#"{"name":"x","colour":"red"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "POST",
            "/api/v1/connections".into(),
            json,
            Body::from("[1,2]"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "POST",
            "/api/v1/connections".into(),
            Some("text/plain"),
            Body::from("{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "POST",
            "/api/v1/connections".into(),
            None,
            Body::from("{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "POST",
            "/api/v1/connections".into(),
            json,
            Body::from(big.clone()),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "POST",
            "/api/v1/connections".into(),
            json,
            Body::from_stream(futures_util::stream::iter(
                big.chunks(64 * 1024)
                    .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
                    .collect::<Vec<_>>(),
            )),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "PATCH",
            "/api/v1/connections/x".into(),
            json,
            Body::from(r#"{"tenant":[]}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "POST",
            "/api/v1/keys".into(),
            json,
            Body::from(r#"{"name":"k","admin":"yes"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "POST",
            "/api/v1/keys".into(),
            Some("application/xml"),
            Body::from("<key/>"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "POST",
            "/api/v1/connections/x/static-users".into(),
            json,
            Body::from(r#"{"principal":["a"]}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "POST",
            "/api/v1/connections/x/logins".into(),
            json,
            Body::from(r#"{"principal":1}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "GET",
            "/api/v1/connections/%FF".into(),
            None,
            Body::empty(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/api/v1/connections/x/accounts/%C3%28".into(),
            None,
            Body::empty(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/api/v1/connections/x/accounts?limit=abc".into(),
            None,
            Body::empty(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/api/v1/connections/x/accounts?offset=-1".into(),
            None,
            Body::empty(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/v1/connections/x/test?mailbox=a&mailbox=b".into(),
            None,
            Body::empty(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/api/v1/connections/x/users/u/folders?mailbox=a&mailbox=b".into(),
            None,
            Body::empty(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            long_uri,
            None,
            Body::empty(),
            StatusCode::URI_TOO_LONG,
        ),
    ];
    for (method, uri, content_type, body, status) in table {
        let what = format!("{method} {}", &uri[..uri.len().min(80)]);
        let req = request(&gw, method, &uri, content_type, body);
        shaped(&gw, req, status, &what).await;
    }
    // A declared Content-Length over the limit is refused before the body is read, in the shape.
    let req = Request::post("/api/v1/connections")
        .header("authorization", &gw.admin)
        .header("content-type", "application/json")
        .header("content-length", big.len().to_string())
        .body(Body::from(big))
        .unwrap();
    let text = shaped(&gw, req, StatusCode::PAYLOAD_TOO_LARGE, "content-length").await;
    assert!(text.contains("limits.max_item_mb"), "{text}");
    assert!(gw.state.connections.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_wrong_field_is_named_with_its_expected_type() {
    let home = Home::new();
    let gw = small_gateway(&home).await;
    let req = request(
        &gw,
        "POST",
        "/api/v1/keys",
        Some("application/json"),
        Body::from(r#"{"name":"k","connections":["a", 7]}"#),
    );
    let text = shaped(&gw, req, StatusCode::UNPROCESSABLE_ENTITY, "wrong type").await;
    assert!(text.contains("`connections[1]`"), "{text}");
    assert!(text.contains("expected a string"), "{text}");
    let req = request(
        &gw,
        "GET",
        "/api/v1/connections/x/accounts?limit=abc",
        None,
        Body::empty(),
    );
    let text = shaped(&gw, req, StatusCode::BAD_REQUEST, "query").await;
    assert!(text.contains("`limit`"), "{text}");
}

/// A `MakeWriter` that keeps every log line.
#[derive(Clone, Default)]
pub(crate) struct Captured(pub(crate) Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Self;
    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

#[tokio::test]
async fn a_secret_in_a_malformed_request_is_never_echoed_or_logged() {
    let home = Home::new();
    let gw = small_gateway(&home).await;
    let log = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(log.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let secrets = ["982451653982451653", "hunter2-s3cret-value", "7.25e300"];
    let bodies = [
        // A numeric client secret (the measured case), a secret where a choice belongs, one
        // where a boolean belongs, and a float.
        format!(
            r#"{{"name":"c","tenant":"common","auth":"oauth2-app-only","client_id":"11111111-2222-3333-4444-555555555555","client_secret":{}}}"#,
            secrets[0]
        ),
        format!(r#"{{"name":"c","client_secret":["{}"]}}"#, secrets[1]),
        format!(r#"{{"name":"c","client_secret":{}}}"#, secrets[2]),
    ];
    for body in bodies {
        let req = request(
            &gw,
            "POST",
            "/api/v1/connections",
            Some("application/json"),
            Body::from(body),
        );
        let text = shaped(&gw, req, StatusCode::UNPROCESSABLE_ENTITY, "secret").await;
        assert!(text.contains("client_secret"), "the field is named: {text}");
        for secret in secrets {
            assert!(!text.contains(secret), "echoed: {text}");
        }
    }
    let req = request(
        &gw,
        "POST",
        "/api/v1/keys",
        Some("application/json"),
        Body::from(format!(r#"{{"name":"k","admin":"{}"}}"#, secrets[1])),
    );
    let text = shaped(&gw, req, StatusCode::UNPROCESSABLE_ENTITY, "boolean").await;
    assert!(!text.contains(secrets[1]), "echoed: {text}");
    let req = request(
        &gw,
        "GET",
        &format!("/api/v1/connections/x/accounts?limit={}", secrets[1]),
        None,
        Body::empty(),
    );
    let text = shaped(&gw, req, StatusCode::BAD_REQUEST, "query").await;
    assert!(!text.contains(secrets[1]), "echoed: {text}");

    let logged = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("request"), "the log was captured: {logged}");
    for secret in secrets {
        assert!(!logged.contains(secret), "logged: {logged}");
    }
}

/// Checks the security headers of an HTML answer; returns its CSP and body.
async fn secure_page(resp: axum::response::Response) -> (String, String) {
    let h = resp.headers().clone();
    let header = |name: &str| {
        h.get(name)
            .unwrap_or_else(|| panic!("no {name} in {h:?}"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert!(header("content-type").starts_with("text/html"));
    assert_eq!(header("cache-control"), "no-store");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("x-frame-options"), "DENY");
    let csp = header("content-security-policy");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let scripts = csp
        .split(';')
        .find(|d| d.trim().starts_with("script-src"))
        .unwrap_or_default();
    assert!(
        !scripts.contains("unsafe"),
        "no inline or eval'd script: {csp}"
    );
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (csp, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn html_pages_are_not_cached_framed_or_referred_and_allow_only_hashed_styles() {
    let home = Home::new();
    let gw = small_gateway(&home).await;
    for path in [
        "/service/oauth2/authorize?code=abc&state=unknown",
        "/service/oauth2/authorize?error=access_denied&error_description=AADSTS65004&state=x",
    ] {
        let resp = gw.send("GET", path, None, Value::Null).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let (csp, html) = secure_page(resp).await;
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(!html.contains("<script"), "no script on the callback page");
        // The page's one style block is allowed by its hash and nothing else.
        let style = html
            .split("<style>")
            .nth(1)
            .and_then(|s| s.split("</style>").next())
            .unwrap();
        use base64::Engine;
        use sha2::Digest;
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(style));
        assert!(csp.contains(&format!("style-src 'sha256-{hash}'")), "{csp}");
    }
    let resp = gw
        .send("GET", "/api/docs", Some(&gw.admin), Value::Null)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (csp, html) = secure_page(resp).await;
    // The reference is rendered by the gateway from its document: no script, nothing remote.
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("http"), "no remote source: {csp}");
    assert!(!html.contains("<script"), "no script on the reference page");
    assert!(!html.contains("https://cdn"), "no CDN");
    assert!(
        html.contains("/api/v1/connections/{connection}/test"),
        "every operation is listed"
    );
    // JSON answers are left alone.
    let resp = gw.send("GET", "/healthz", None, Value::Null).await;
    assert!(!resp.headers().contains_key("x-frame-options"));
}

#[tokio::test]
async fn a_scoped_key_gets_the_same_answer_for_an_unknown_and_a_forbidden_connection() {
    let home = Home::new();
    let gw = small_gateway(&home).await;
    for name in ["mine", "theirs"] {
        gw.connection(serde_json::json!({
            "name": name, "tenant": "common", "auth": "oauth2-delegated",
            "client_id": crate::CLIENT_ID,
        }))
        .await;
    }
    let key = gw.app_key("portal", &["mine"]).await;
    let routes = [
        (
            "GET",
            "/api/v1/connections/{}/users/u42/folders",
            Value::Null,
        ),
        (
            "GET",
            "/api/v1/connections/{}/users/u42/messages",
            Value::Null,
        ),
        (
            "POST",
            "/api/v1/connections/{}/logins",
            serde_json::json!({ "principal": "u42" }),
        ),
        ("GET", "/api/v1/connections/{}/logins/some-id", Value::Null),
    ];
    for (method, route, body) in routes {
        let mut answers = Vec::new();
        for name in ["theirs", "does-not-exist"] {
            let (status, mut answer) = gw
                .call(method, &route.replace("{}", name), &key, body.clone())
                .await;
            answer["correlation_id"] = Value::Null;
            let message = answer["message"].as_str().unwrap().replace(name, "NAME");
            answer["message"] = Value::String(message);
            answers.push((status, answer));
        }
        assert_eq!(answers[0], answers[1], "{method} {route}");
        assert_eq!(answers[0].0, StatusCode::FORBIDDEN, "{method} {route}");
        assert_eq!(answers[0].1["code"], "forbidden");
    }
    // An admin is told the truth.
    let (status, body) = gw
        .admin(
            "GET",
            "/api/v1/connections/does-not-exist/logins/x",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}
