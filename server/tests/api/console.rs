//! The admin console's sessions and forms through the router: the session cookie is signed,
//! bound to the admin password (a reset ends it), expires, works on a second gateway over the
//! same store and key; every form needs its session's token; the sign-in shares the API's
//! failure limit; secrets are never rendered back; a created key is on a `no-store` page.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use exgate_core::clock::Clock;
use exgate_server::app;
use http_body_util::BodyExt;
use time::OffsetDateTime;
use tower::ServiceExt;

use crate::{Home, base64_encode};

#[derive(Debug)]
struct TestClock(Mutex<OffsetDateTime>);

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

struct Console {
    router: Router,
    state: exgate_server::AppState,
    password: String,
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The value of the cookie `name` this answer sets, with its attributes.
    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(ToOwned::to_owned)
    }

    /// The first form's CSRF token.
    fn csrf(&self) -> String {
        self.body
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|t| t.split('"').next())
            .unwrap_or_default()
            .to_owned()
    }
}

fn cookie_value(set_cookie: &str) -> &str {
    set_cookie.split(';').next().unwrap_or_default()
}

impl Console {
    async fn new(home: &Home, public_url: &str, clock: Arc<dyn Clock>) -> Self {
        let state = home.state_clocked(public_url, [], clock).await;
        let password = exgate_core::admin::reset_admin_credential(
            state.store.as_ref(),
            &exgate_core::clock::SystemClock,
        )
        .await
        .unwrap();
        Self {
            router: app(state.clone()),
            state,
            password: password.expose().to_owned(),
        }
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        form: &[(&str, &str)],
        peer: &str,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let body = if method == "POST" {
            req = req.header("content-type", "application/x-www-form-urlencoded");
            Body::from(serde_urlencoded::to_string(form).unwrap())
        } else {
            Body::empty()
        };
        let mut req = req.body(body).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(peer.parse().unwrap(), 40_000)));
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap(),
        }
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Answer {
        self.request("GET", path, cookie, &[], "192.0.2.1").await
    }

    async fn post(&self, path: &str, cookie: &str, form: &[(&str, &str)]) -> Answer {
        self.request("POST", path, Some(cookie), form, "192.0.2.1")
            .await
    }

    /// Signs in from `peer`; the answer sets the session cookie when it worked.
    async fn sign_in_from(&self, password: &str, peer: &str) -> Answer {
        let form = self.get("/admin/sign-in", None).await;
        let login = form.set_cookie("exgate_console_login").unwrap();
        let csrf = form.csrf();
        self.request(
            "POST",
            "/admin/sign-in",
            Some(cookie_value(&login)),
            &[("csrf", &csrf), ("password", password)],
            peer,
        )
        .await
    }

    /// A session cookie (`name=value`).
    async fn session(&self) -> String {
        let answer = self.sign_in_from(&self.password.clone(), "192.0.2.1").await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
        assert_eq!(answer.location(), "/admin");
        cookie_value(&answer.set_cookie("exgate_console").unwrap()).to_owned()
    }
}

#[tokio::test]
async fn a_session_is_signed_bound_to_the_admin_password_expires_and_is_shared_by_gateways() {
    let home = Home::new();
    let clock = Arc::new(TestClock(Mutex::new(OffsetDateTime::now_utc())));
    let console = Console::new(&home, "http://gateway.test", clock.clone()).await;
    let answer = console
        .sign_in_from(&console.password.clone(), "192.0.2.1")
        .await;
    let set = answer.set_cookie("exgate_console").unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(!set.contains("Secure"), "plain http: {set}");
    let session = cookie_value(&set).to_owned();
    let dashboard = console.get("/admin", Some(&session)).await;
    assert_eq!(dashboard.status, StatusCode::OK);
    assert!(dashboard.body.contains("<h1>Dashboard</h1>"));
    assert!(
        dashboard
            .body
            .contains("Store: <span class=\"ok\">answers</span>"),
        "{}",
        dashboard.body
    );
    assert!(!dashboard.body.contains(&console.password));

    // No cookie, or a forged one: the sign-in page.
    let none = console.get("/admin", None).await;
    assert_eq!(none.status, StatusCode::SEE_OTHER);
    assert_eq!(none.location(), "/admin/sign-in");
    let (head, mac) = session.rsplit_once('.').unwrap();
    let flipped = if mac.starts_with('A') { "B" } else { "A" };
    let forged = format!("{head}.{flipped}{}", &mac[1..]);
    assert_eq!(
        console.get("/admin", Some(&forged)).await.location(),
        "/admin/sign-in"
    );
    // A later expiry under the same MAC is refused.
    let mut parts: Vec<&str> = session.split('.').collect();
    let later = (parts[1].parse::<i64>().unwrap() + 3600).to_string();
    parts[1] = &later;
    assert_eq!(
        console
            .get("/admin", Some(&parts.join(".")))
            .await
            .location(),
        "/admin/sign-in"
    );

    // Another gateway over the same store and key file accepts the session.
    let other = app(home
        .state_clocked("http://gateway.test", [], clock.clone())
        .await);
    let req = Request::get("/admin")
        .header("cookie", &session)
        .body(Body::empty())
        .unwrap();
    assert_eq!(other.oneshot(req).await.unwrap().status(), StatusCode::OK);

    // It expires after eight hours.
    *clock.0.lock().unwrap() += time::Duration::hours(8);
    assert_eq!(
        console.get("/admin", Some(&session)).await.location(),
        "/admin/sign-in"
    );

    // `admin reset` ends every session.
    let fresh = console.session().await;
    assert_eq!(
        console.get("/admin", Some(&fresh)).await.status,
        StatusCode::OK
    );
    let store = home.store().await;
    exgate_core::admin::reset_admin_credential(&store, &exgate_core::clock::SystemClock)
        .await
        .unwrap();
    assert_eq!(
        console.get("/admin", Some(&fresh)).await.location(),
        "/admin/sign-in"
    );
}

#[tokio::test]
async fn over_https_the_session_cookie_is_secure() {
    let home = Home::new();
    let console = Console::new(
        &home,
        "https://exgate.contoso.com",
        Arc::new(exgate_core::clock::SystemClock),
    )
    .await;
    let answer = console
        .sign_in_from(&console.password.clone(), "192.0.2.1")
        .await;
    let set = answer.set_cookie("exgate_console").unwrap();
    assert!(set.contains("; Secure"), "{set}");
}

#[tokio::test]
async fn every_form_needs_its_sessions_token() {
    let home = Home::new();
    let console = Console::new(
        &home,
        "http://gateway.test",
        Arc::new(exgate_core::clock::SystemClock),
    )
    .await;
    let session = console.session().await;
    let other = console.session().await;
    let token = console.get("/admin/keys", Some(&session)).await.csrf();
    let others = console.get("/admin/keys", Some(&other)).await.csrf();
    assert!(!token.is_empty());
    assert_ne!(token, others, "each session has its own token");
    let routes = [
        "/admin/sign-out",
        "/admin/connections",
        "/admin/connections/contoso",
        "/admin/connections/contoso/delete",
        "/admin/connections/contoso/test",
        "/admin/connections/contoso/users/reset-all",
        "/admin/connections/contoso/users/u42/reset",
        "/admin/connections/contoso/static-users",
        "/admin/connections/contoso/static-users/u42/delete",
        "/admin/connections/contoso/sign-in-link",
        "/admin/keys",
        "/admin/keys/00000000-0000-0000-0000-000000000000/revoke",
    ];
    for route in routes {
        let missing = console
            .post(route, &session, &[("name", "contoso"), ("confirm", "yes")])
            .await;
        assert_eq!(missing.status, StatusCode::FORBIDDEN, "{route}");
        assert!(missing.body.contains("Form refused"), "{route}");
        let foreign = console
            .post(route, &session, &[("csrf", &others), ("name", "contoso")])
            .await;
        assert_eq!(foreign.status, StatusCode::FORBIDDEN, "{route}");
    }
    // Without a session a form goes to the sign-in page, whatever it carries.
    let answer = console
        .request(
            "POST",
            "/admin/keys",
            None,
            &[("csrf", &token), ("name", "x")],
            "192.0.2.1",
        )
        .await;
    assert_eq!(answer.location(), "/admin/sign-in");
    // The sign-in form needs its own token and cookie.
    let answer = console
        .request(
            "POST",
            "/admin/sign-in",
            None,
            &[("password", &console.password.clone())],
            "192.0.2.1",
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.set_cookie("exgate_console").is_none());
    // Nothing was created.
    let keys = console.get("/admin/keys", Some(&session)).await;
    assert!(!keys.body.contains(">contoso<"), "no key was created");
}

#[tokio::test]
async fn the_sign_in_shares_the_apis_failure_limit() {
    let home = Home::new();
    let console = Console::new(
        &home,
        "http://gateway.test",
        Arc::new(exgate_core::clock::SystemClock),
    )
    .await;
    for _ in 0..10 {
        let answer = console.sign_in_from("wrong-password", "198.51.100.7").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert!(answer.body.contains("The password is wrong"));
        assert!(answer.set_cookie("exgate_console").is_none());
    }
    let password = console.password.clone();
    let locked = console.sign_in_from(&password, "198.51.100.7").await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.set_cookie("exgate_console").is_none());
    // The API's Basic authentication from that address waits too; another address does not.
    let basic = format!("Basic {}", base64_encode(&format!("admin:{password}")));
    let mut req = Request::get("/api/v1/connections")
        .header("authorization", basic)
        .body(Body::empty())
        .unwrap();
    req.extensions_mut().insert(ConnectInfo(SocketAddr::new(
        "198.51.100.7".parse().unwrap(),
        40_000,
    )));
    let resp = console.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let other = console.sign_in_from(&password, "198.51.100.8").await;
    assert_eq!(other.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn secrets_are_never_rendered_back_and_a_new_key_is_shown_once_on_a_page_not_stored() {
    let home = Home::new();
    let console = Console::new(
        &home,
        "http://gateway.test",
        Arc::new(exgate_core::clock::SystemClock),
    )
    .await;
    let session = console.session().await;
    let token = console
        .get("/admin/connections/new", Some(&session))
        .await
        .csrf();
    let secret = "s3cret-value-never-shown~1234";
    let created = console
        .post(
            "/admin/connections",
            &session,
            &[
                ("csrf", &token),
                ("name", "contoso"),
                ("tenant", "contoso.onmicrosoft.com"),
                ("auth", "oauth2-app-only"),
                ("client_id", "11111111-2222-3333-4444-555555555555"),
                ("client_secret", secret),
                ("credential_expires", "2027-06-30"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    assert_eq!(created.location(), "/admin/connections/contoso");
    let page = console
        .get("/admin/connections/contoso", Some(&session))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("&quot;set&quot;: true"), "{}", page.body);
    assert!(!page.body.contains(secret));
    // Saving the edit form with the secret left empty keeps it.
    let edited = console
        .post(
            "/admin/connections/contoso",
            &session,
            &[
                ("csrf", &token),
                ("client_secret", ""),
                ("backend", "graph"),
            ],
        )
        .await;
    assert_eq!(edited.status, StatusCode::SEE_OTHER, "{}", edited.body);
    let page = console
        .get("/admin/connections/contoso", Some(&session))
        .await;
    assert!(page.body.contains("&quot;set&quot;: true"), "{}", page.body);
    assert!(
        page.body.contains("&quot;backend&quot;: &quot;graph&quot;"),
        "{}",
        page.body
    );

    let key = console
        .post(
            "/admin/keys",
            &session,
            &[
                ("csrf", &token),
                ("name", "portal"),
                ("connection", "contoso"),
            ],
        )
        .await;
    assert_eq!(key.status, StatusCode::OK, "{}", key.body);
    assert_eq!(key.headers["cache-control"], "no-store");
    let shown = key
        .body
        .split("exg_")
        .nth(1)
        .and_then(|k| k.split('<').next())
        .unwrap();
    let again = console.get("/admin/keys", Some(&session)).await;
    assert!(again.body.contains(">portal<"));
    assert!(!again.body.contains(shown), "the key is shown once");

    // The API reference opens with the console's session.
    let docs = console.get("/api/docs", Some(&session)).await;
    assert_eq!(docs.status, StatusCode::OK);
    assert!(docs.body.contains("POST /api/v1/keys"));
    let docs = console.get("/api/docs", None).await;
    assert_eq!(docs.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn every_action_is_logged_with_the_sessions_id_never_its_cookie() {
    let home = Home::new();
    let console = Console::new(
        &home,
        "http://gateway.test",
        Arc::new(exgate_core::clock::SystemClock),
    )
    .await;
    let log = crate::hardening::Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(log.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let session = console.session().await;
    let token = console.get("/admin/keys", Some(&session)).await.csrf();
    let created = console
        .post(
            "/admin/keys",
            &session,
            &[("csrf", &token), ("name", "ops"), ("admin", "true")],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let key = created
        .body
        .split("id=\"new-key\">")
        .nth(1)
        .and_then(|k| k.split('<').next())
        .unwrap()
        .to_owned();
    let id = created
        .body
        .split("action=\"/admin/keys/")
        .nth(1)
        .and_then(|k| k.split('/').next())
        .unwrap()
        .to_owned();
    let revoked = console
        .post(
            &format!("/admin/keys/{id}/revoke"),
            &session,
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.body);
    let out = console
        .post("/admin/sign-out", &session, &[("csrf", &token)])
        .await;
    assert_eq!(out.location(), "/admin/sign-in");
    assert!(
        out.set_cookie("exgate_console")
            .unwrap()
            .contains("Max-Age=0")
    );

    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    // The session's ID: a digest of the cookie's random part, not the cookie.
    let sid = session
        .trim_start_matches("exgate_console=")
        .split('.')
        .next()
        .unwrap();
    use sha2::Digest;
    let digest = sha2::Sha256::digest(sid.as_bytes());
    let session_id: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    for action in ["sign-in", "key.create", "key.revoke", "sign-out"] {
        assert!(
            text.lines()
                .any(|l| l.contains(&format!("session={session_id}"))
                    && l.contains(&format!("action=\"{action}\""))),
            "{action} is logged with the session: {text}"
        );
    }
    for secret in [sid, &key, &console.password, &token] {
        assert!(!text.contains(secret), "a secret in the log: {text}");
    }
}

#[tokio::test]
async fn known_users_are_filtered_paged_reset_and_reset_all_behind_confirmations() {
    use exgate_core::model::{Account, AccountId, AccountStatus, CredentialKind};
    let home = Home::new();
    let console = Console::new(
        &home,
        "http://gateway.test",
        Arc::new(exgate_core::clock::SystemClock),
    )
    .await;
    let session = console.session().await;
    let token = console
        .get("/admin/connections/new", Some(&session))
        .await
        .csrf();
    let created = console
        .post(
            "/admin/connections",
            &session,
            &[
                ("csrf", &token),
                ("name", "contoso"),
                ("tenant", "contoso.onmicrosoft.com"),
                ("auth", "oauth2-delegated"),
                ("client_id", "11111111-2222-3333-4444-555555555555"),
                (
                    "redirect_uri",
                    "https://gateway.test/service/oauth2/authorize",
                ),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let connection = console
        .state
        .connections
        .get("contoso")
        .await
        .unwrap()
        .connection;
    for i in 0..60 {
        let account = Account {
            id: AccountId::new_random(),
            connection: connection.id,
            principal: format!("user{i:02}").parse().unwrap(),
            mailbox: Some(format!("user{i:02}@contoso.com").parse().unwrap()),
            credential: CredentialKind::RefreshToken,
            status: AccountStatus::Active,
            created_at: time::OffsetDateTime::now_utc(),
            last_used_at: None,
        };
        console
            .state
            .store
            .put_account(
                &account,
                Some(&exgate_core::secret::Secret::new("a-refresh-token")),
            )
            .await
            .unwrap();
    }
    let first = console
        .get("/admin/connections/contoso/users", Some(&session))
        .await;
    assert!(first.body.contains("60 users."), "{}", first.body);
    assert!(first.body.contains(">user49<") && !first.body.contains(">user50<"));
    assert!(first.body.contains("Page 1 of 2"));
    assert!(
        first
            .body
            .contains("href=\"/admin/connections/contoso/users?page=2\"")
    );
    let second = console
        .get("/admin/connections/contoso/users?page=2", Some(&session))
        .await;
    assert!(second.body.contains(">user50<") && second.body.contains(">user59<"));
    assert!(!second.body.contains(">user49<"));
    assert!(second.body.contains("Previous page"));
    let filtered = console
        .get(
            "/admin/connections/contoso/users?filter=USER5",
            Some(&session),
        )
        .await;
    assert!(
        filtered.body.contains("10 users matching"),
        "{}",
        filtered.body
    );
    assert!(filtered.body.contains("Page 1 of 1"));

    // Details, then a reset behind its confirmation page.
    let details = console
        .get("/admin/connections/contoso/users/user07", Some(&session))
        .await;
    assert!(details.body.contains("user07@contoso.com"));
    assert!(
        details.body.contains("<td id=\"status\">active</td>"),
        "{}",
        details.body
    );
    let confirm = console
        .get(
            "/admin/connections/contoso/users/user07/reset",
            Some(&session),
        )
        .await;
    assert!(confirm.body.contains("Yes, reset user07"));
    let reset = console
        .post(
            "/admin/connections/contoso/users/user07/reset",
            &session,
            &[("csrf", &token), ("confirm", "yes")],
        )
        .await;
    assert_eq!(reset.location(), "/admin/connections/contoso/users/user07");
    let details = console
        .get("/admin/connections/contoso/users/user07", Some(&session))
        .await;
    assert!(details.body.contains("needs-sign-in"), "{}", details.body);

    // Reset all needs the connection's name typed.
    let wrong = console
        .post(
            "/admin/connections/contoso/users/reset-all",
            &session,
            &[("csrf", &token), ("confirm", "yes")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    let still = console
        .get("/admin/connections/contoso/users/user08", Some(&session))
        .await;
    assert!(still.body.contains("<td id=\"status\">active</td>"));
    let all = console
        .post(
            "/admin/connections/contoso/users/reset-all",
            &session,
            &[("csrf", &token), ("confirm", "contoso")],
        )
        .await;
    assert!(
        all.body.contains("60 users of contoso must sign in again"),
        "{}",
        all.body
    );
}
