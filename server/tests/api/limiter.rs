//! The authentication limiter: failures counted per client address and kind of credential, a
//! valid API key never refused, bounded memory, trusted proxies, `admin reset` at once.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use exgate_core::clock::Clock;
use exgate_core::secret::Secret;
use exgate_server::app;
use time::OffsetDateTime;
use tower::ServiceExt;

use crate::{Gateway, Home, base64_encode};

/// A clock the test moves.
#[derive(Debug)]
struct TestClock(Mutex<OffsetDateTime>);

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

impl TestClock {
    fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(OffsetDateTime::now_utc())))
    }

    fn advance(&self, by: time::Duration) {
        *self.0.lock().unwrap() += by;
    }
}

fn basic(password: &str) -> String {
    format!("Basic {}", base64_encode(&format!("admin:{password}")))
}

/// `GET /api/v1/connections` from `peer` with `authorization` and more headers.
async fn list_from(
    router: &Router,
    peer: &str,
    authorization: &str,
    headers: &[(&str, &str)],
) -> StatusCode {
    let mut req = Request::get("/api/v1/connections").header("authorization", authorization);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let mut req = req.body(Body::empty()).unwrap();
    let peer: IpAddr = peer.parse().unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(peer, 40_000)));
    router.clone().oneshot(req).await.unwrap().status()
}

struct Setup {
    gw: Gateway,
    router: Router,
    password: Secret,
    clock: Arc<TestClock>,
    home: Home,
}

async fn setup(env: Vec<(&'static str, String)>) -> Setup {
    let home = Home::new();
    let clock = TestClock::new();
    let state = home
        .state_clocked("http://gateway.test", env, clock.clone())
        .await;
    let password = exgate_core::admin::reset_admin_credential(state.store.as_ref(), clock.as_ref())
        .await
        .unwrap();
    let gw = Gateway::new(state).await;
    Setup {
        router: app(gw.state.clone()),
        gw,
        password,
        clock,
        home,
    }
}

#[tokio::test]
async fn wrong_admin_passwords_lock_only_the_admin_password_from_that_address() {
    let s = setup(Vec::new()).await;
    let wrong = basic("not-the-password");
    for _ in 0..10 {
        assert_eq!(
            list_from(&s.router, "192.0.2.10", &wrong, &[]).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        list_from(&s.router, "192.0.2.10", &wrong, &[]).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Valid API keys from the same address are not refused, nor is an app key.
    assert_eq!(
        list_from(&s.router, "192.0.2.10", &s.gw.admin, &[]).await,
        StatusCode::OK
    );
    s.gw.connection(serde_json::json!({
        "name": "c", "tenant": "common", "auth": "oauth2-delegated", "client_id": crate::CLIENT_ID,
    }))
    .await;
    let app_key = s.gw.app_key("portal", &["c"]).await;
    let resp = {
        let mut req = Request::get("/api/v1/connections/none/accounts")
            .header("authorization", &app_key)
            .body(Body::empty())
            .unwrap();
        req.extensions_mut().insert(ConnectInfo(SocketAddr::new(
            "192.0.2.10".parse().unwrap(),
            1,
        )));
        s.router.clone().oneshot(req).await.unwrap().status()
    };
    assert_eq!(resp, StatusCode::FORBIDDEN, "authenticated, not an admin");
    // The admin password from another address works.
    let right = basic(s.password.expose());
    assert_eq!(
        list_from(&s.router, "192.0.2.11", &right, &[]).await,
        StatusCode::OK
    );
    // The locked address waits out its window, then is heard again.
    assert_eq!(
        list_from(&s.router, "192.0.2.10", &right, &[]).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    s.clock.advance(time::Duration::seconds(61));
    assert_eq!(
        list_from(&s.router, "192.0.2.10", &right, &[]).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_valid_api_key_is_never_refused() {
    let s = setup(Vec::new()).await;
    let unknown = "Bearer exg_not-a-key-at-all";
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(list_from(&s.router, "192.0.2.20", unknown, &[]).await);
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    assert_eq!(statuses[11], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    assert_eq!(
        list_from(&s.router, "192.0.2.20", &s.gw.admin, &[]).await,
        StatusCode::OK
    );
    // Wrong admin passwords do not lock the key either.
    for _ in 0..12 {
        list_from(&s.router, "192.0.2.20", &basic("wrong"), &[]).await;
    }
    assert_eq!(
        list_from(&s.router, "192.0.2.20", &s.gw.admin, &[]).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_failure_memory_is_pruned_and_bounded() {
    let s = setup(Vec::new()).await;
    let wrong = basic("wrong");
    for i in 0..50u32 {
        let peer = format!("10.1.{}.{}", i / 256, i % 256);
        list_from(&s.router, &peer, &wrong, &[]).await;
    }
    assert_eq!(s.gw.state.guard.remembered_failures(), 50);
    s.clock.advance(time::Duration::minutes(2));
    list_from(&s.router, "10.2.0.1", &wrong, &[]).await;
    assert_eq!(
        s.gw.state.guard.remembered_failures(),
        1,
        "expired failures are forgotten"
    );
    assert_eq!(
        exgate_core::limiter::FailurePolicy::default().max_entries,
        10_000,
        "the gateway's cap"
    );
    // With a cap of 100, one failure from each of 300 addresses leaves 100 remembered.
    let mut state = s.gw.state.clone();
    state.guard = Arc::new(exgate_server::auth::Guard::with_policy(
        s.clock.clone(),
        Vec::new(),
        exgate_core::limiter::FailurePolicy {
            max_entries: 100,
            ..Default::default()
        },
    ));
    let router = app(state.clone());
    let user = format!("Basic {}", base64_encode("nobody:x"));
    for i in 0..300u32 {
        let peer = IpAddr::from([10, 3, (i / 256) as u8, (i % 256) as u8]);
        list_from(&router, &peer.to_string(), &user, &[]).await;
        assert!(state.guard.remembered_failures() <= 100);
    }
    assert_eq!(state.guard.remembered_failures(), 100);
}

#[tokio::test]
async fn the_client_address_comes_from_forwarding_headers_only_behind_a_trusted_proxy() {
    let s = setup(vec![(
        "EXGATE__SERVER__TRUSTED_PROXIES",
        "10.0.0.0/8, 192.0.2.1".to_owned(),
    )])
    .await;
    let guard = &s.gw.state.guard;
    let headers = |pairs: &[(&'static str, &str)]| {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    };
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let xff = headers(&[("x-forwarded-for", "203.0.113.9, 10.0.0.7")]);
    assert_eq!(
        guard.client_address(Some(ip("10.0.0.5")), &xff),
        Some(ip("203.0.113.9")),
        "behind trusted proxies, the nearest untrusted hop"
    );
    assert_eq!(
        guard.client_address(Some(ip("198.51.100.7")), &xff),
        Some(ip("198.51.100.7")),
        "an untrusted peer's header is ignored"
    );
    assert_eq!(
        guard.client_address(Some(ip("::ffff:192.0.2.1")), &xff),
        Some(ip("203.0.113.9")),
        "IPv4-mapped peers match IPv4 networks"
    );
    let fwd = headers(&[
        ("forwarded", "for=\"[2001:db8::1]:4711\";proto=https"),
        ("forwarded", "for=10.0.0.7"),
        ("x-forwarded-for", "203.0.113.50"),
    ]);
    assert_eq!(
        guard.client_address(Some(ip("10.0.0.5")), &fwd),
        Some(ip("2001:db8::1")),
        "Forwarded wins over X-Forwarded-For"
    );
    let hidden = headers(&[("forwarded", "for=_hidden, for=10.0.0.8")]);
    assert_eq!(
        guard.client_address(Some(ip("10.0.0.5")), &hidden),
        Some(ip("10.0.0.8")),
        "a hidden hop stops the walk at the last known address"
    );
    let spoofed = headers(&[("x-forwarded-for", "203.0.113.9, 203.0.113.66")]);
    assert_eq!(
        guard.client_address(Some(ip("10.0.0.5")), &spoofed),
        Some(ip("203.0.113.66")),
        "a client cannot hide behind an address it prepends"
    );

    // Through the router: one client's failures behind the proxy do not lock out another's.
    let wrong = basic("wrong");
    for _ in 0..11 {
        list_from(
            &s.router,
            "10.0.0.5",
            &wrong,
            &[("x-forwarded-for", "203.0.113.9")],
        )
        .await;
    }
    let right = basic(s.password.expose());
    assert_eq!(
        list_from(
            &s.router,
            "10.0.0.5",
            &right,
            &[("x-forwarded-for", "203.0.113.9")]
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        list_from(
            &s.router,
            "10.0.0.5",
            &right,
            &[("x-forwarded-for", "203.0.113.10")]
        )
        .await,
        StatusCode::OK
    );
    // An untrusted peer cannot escape its own lock by naming other addresses.
    for i in 0..11 {
        let claimed = format!("198.18.0.{i}");
        list_from(
            &s.router,
            "198.51.100.7",
            &wrong,
            &[("x-forwarded-for", claimed.as_str())],
        )
        .await;
    }
    assert_eq!(
        list_from(
            &s.router,
            "198.51.100.7",
            &right,
            &[("x-forwarded-for", "198.18.0.99")]
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[test]
fn a_trusted_proxy_that_is_not_an_address_is_a_configuration_error() {
    let home = Home::new();
    let env = exgate_core::config::Env::from_pairs([
        ("HOME", home.dir.path().display().to_string()),
        (
            "EXGATE__SERVER__TRUSTED_PROXIES",
            "10.0.0.0/8, proxy.local".to_owned(),
        ),
    ]);
    let err = exgate_core::config::load(None, &env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("server.trusted_proxies"), "{err}");
    assert!(err.contains("proxy.local"), "{err}");
}

#[tokio::test]
async fn admin_reset_takes_effect_at_once_in_a_running_gateway() {
    let s = setup(Vec::new()).await;
    let old = basic(s.password.expose());
    for _ in 0..2 {
        assert_eq!(
            list_from(&s.router, "192.0.2.30", &old, &[]).await,
            StatusCode::OK
        );
    }
    let out = s.home.command(&["admin", "reset"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let new = basic(stdout.lines().nth(1).unwrap().trim());
    assert_eq!(
        list_from(&s.router, "192.0.2.30", &old, &[]).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        list_from(&s.router, "192.0.2.30", &new, &[]).await,
        StatusCode::OK
    );
}
