//! The admin console in a real browser: headless Chromium (Debian's `chromium`) driven over
//! WebDriver (`chromedriver` on a free port, fantoccini) against the real `exgate-server` binary
//! on port 0 and the mock Microsoft cloud. Each page is checked with axe-core (vendored in
//! `tests/fixtures/axe-core`, injected by the test) for serious or critical violations, and
//! weighed (under 100 KB with its stylesheet and script). When a test fails, a screenshot of the
//! page it was on is saved under `target/tmp/console-screenshots/`; the screenshots of
//! docs/console.md are taken by `console_screenshots_for_the_docs`.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

mod support;
use support::Gateway;

const AXE: &str = include_str!("fixtures/axe-core/axe.min.js");
const WAIT: Duration = Duration::from_secs(20);
const MAX_PAGE_BYTES: u64 = 100 * 1024;
/// The API reference lists every route with its schemas, and grows with the API.
const MAX_REFERENCE_BYTES: u64 = 200 * 1024;

type Result<T = ()> = std::result::Result<T, String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// `chromedriver --port=0`: it prints the port it chose.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Self {
        let mut child = Command::new("chromedriver")
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; `cargo xtask ci` installs it)");
        let mut lines = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map_while(std::result::Result::ok);
        let port = lines
            .find_map(|l| {
                l.split("started successfully on port ")
                    .nth(1)
                    .map(|p| p.trim_end_matches('.').trim().to_owned())
            })
            .expect("chromedriver said which port it listens on");
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A Chromium session; `javascript: false` turns the pages' scripts off (and WebDriver's
    /// own scripts with them).
    async fn browser_with(&self, javascript: bool) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "prefs": { "profile.managed_default_content_settings.javascript": if javascript { 1 } else { 2 } },
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-quic", "--window-size=1100,900",
                    // Anything but loopback fails to resolve: a CDN would show as a failure.
                    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                ],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn artefacts(dir: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `steps` in a browser; on failure saves a screenshot of the page it was on, then fails.
async fn in_browser<F>(name: &str, steps: F)
where
    F: for<'a> FnOnce(&'a Client) -> Pin<Box<dyn Future<Output = Result> + 'a>>,
{
    in_browser_with(name, true, steps).await;
}

async fn in_browser_with<F>(name: &str, javascript: bool, steps: F)
where
    F: for<'a> FnOnce(&'a Client) -> Pin<Box<dyn Future<Output = Result> + 'a>>,
{
    let driver = Driver::start();
    let c = driver.browser_with(javascript).await;
    let outcome = steps(&c).await;
    if let Err(e) = &outcome {
        let at = c
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        let shot = artefacts("console-screenshots").join(format!("{name}.png"));
        if let Ok(png) = c.screenshot().await {
            let _ = std::fs::write(&shot, png);
        }
        let _ = c.clone().close().await;
        panic!("{name} failed at {at}: {e}\nscreenshot: {}", shot.display());
    }
    let _ = c.close().await;
}

async fn find(c: &Client, css: &str) -> Result<fantoccini::elements::Element> {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .map_err(|e| format!("no `{css}` on the page: {e}"))
}

async fn text(c: &Client, css: &str) -> Result<String> {
    find(c, css).await?.text().await.map_err(err)
}

async fn fill(c: &Client, css: &str, value: &str) -> Result {
    find(c, css).await?.send_keys(value).await.map_err(err)
}

/// Replaces what a text field holds.
async fn replace(c: &Client, css: &str, value: &str) -> Result {
    let e = find(c, css).await?;
    e.clear().await.map_err(err)?;
    e.send_keys(value).await.map_err(err)
}

/// Clicks what leads to another page, and waits until that page is there (the old page is
/// marked first, so a lookup never lands on it).
async fn click(c: &Client, css: &str) -> Result {
    let target = find(c, css).await?;
    c.execute(
        "document.documentElement.setAttribute('data-left', '');",
        vec![],
    )
    .await
    .map_err(err)?;
    target.click().await.map_err(err)?;
    find(c, "html:not([data-left])").await.map(drop)
}

/// Clicks, then waits for `next`, which only the next page has (no script: for pages whose
/// scripts are off, where WebDriver's scripts do not run either).
async fn click_to(c: &Client, css: &str, next: &str) -> Result {
    find(c, css).await?.click().await.map_err(err)?;
    find(c, next).await.map(drop)
}

/// Ticks a checkbox (no navigation).
async fn tick(c: &Client, css: &str) -> Result {
    find(c, css).await?.click().await.map_err(err)
}

/// axe-core on the current page: no serious or critical violation.
async fn accessible(c: &Client) -> Result {
    c.execute(AXE, vec![]).await.map_err(err)?;
    let found = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] }).then(r => done(
               r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => v.impact + ' ' + v.id + ': ' + v.help + ' at ' +
                      v.nodes.map(n => n.target.join(' ')).join(', '))),
               e => done(['axe failed: ' + e]));",
            vec![],
        )
        .await
        .map_err(err)?;
    let found: Vec<String> = serde_json::from_value(found).map_err(err)?;
    if found.is_empty() {
        Ok(())
    } else {
        Err(format!("accessibility: {}", found.join("; ")))
    }
}

/// The page's weight: its HTML and every file it loaded, decoded, in bytes.
async fn weight(c: &Client) -> Result<u64> {
    let v = c
        .execute(
            "const n = performance.getEntriesByType('navigation')[0];
             return performance.getEntriesByType('resource')
               .reduce((sum, r) => sum + r.decodedBodySize, n.decodedBodySize);",
            vec![],
        )
        .await
        .map_err(err)?;
    v.as_u64().ok_or_else(|| format!("no weight: {v}"))
}

/// The checks every console page passes.
async fn check_page(c: &Client) -> Result {
    check_page_within(c, MAX_PAGE_BYTES).await
}

/// The checks of a page that may weigh up to `max` bytes.
async fn check_page_within(c: &Client, max: u64) -> Result {
    let w = weight(c).await?;
    if w == 0 || w > max {
        return Err(format!("the page weighs {w} bytes (at most {max})"));
    }
    accessible(c).await
}

async fn sign_in(c: &Client, base: &str, password: &str) -> Result {
    c.goto(&format!("{base}/admin")).await.map_err(err)?;
    let url = c.current_url().await.map_err(err)?;
    if url.path() != "/admin/sign-in" {
        return Err(format!("not sent to the sign-in page: {url}"));
    }
    check_page(c).await?;
    fill(c, "#password", password).await?;
    click(c, "button[type=submit]").await?;
    let h1 = text(c, "main h1").await?;
    if h1 != "Dashboard" {
        return Err(format!("not signed in: {h1}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_signs_in_creates_a_connection_tests_it_links_a_user_and_resets_them() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let gw = Gateway::start(&mock);
    let (base, password) = (gw.base.clone(), gw.password.clone());
    in_browser("main_path", |c| {
        Box::pin(async move {
            sign_in(c, &base, &password).await?;
            check_page(c).await?;

            // Create a delegated connection from the values of the app registration.
            c.goto(&format!("{base}/admin/connections/new"))
                .await
                .map_err(err)?;
            check_page(c).await?;
            fill(c, "#name", "contoso").await?;
            fill(c, "#tenant", seed::TENANT_ID).await?;
            find(c, "#auth")
                .await?
                .select_by_value("oauth2-delegated")
                .await
                .map_err(err)?;
            fill(c, "#client_id", seed::WEB_APP).await?;
            fill(c, "#client_secret", seed::WEB_APP_SECRET).await?;
            let redirect = find(c, "#redirect_uri")
                .await?
                .prop("value")
                .await
                .map_err(err)?;
            if redirect.as_deref() != Some(&format!("{base}/service/oauth2/authorize")) {
                return Err(format!("the redirect URI is not prefilled: {redirect:?}"));
            }
            click(c, "form[action='/admin/connections'] button[type=submit]").await?;
            let h1 = text(c, "main h1").await?;
            if h1 != "Connection contoso" {
                return Err(format!("not created: {h1}"));
            }
            let source = c.source().await.map_err(err)?;
            if source.contains(seed::WEB_APP_SECRET) {
                return Err("the client secret is rendered back".into());
            }
            check_page(c).await?;

            // Its test, step by step.
            click(c, "a[href='/admin/connections/contoso/test']").await?;
            click(c, "main form button[type=submit]").await?;
            let steps = text(c, "#steps").await?;
            if !steps.contains("identity provider") || !steps.contains("Evidence:") {
                return Err(format!("no steps with evidence: {steps}"));
            }
            check_page(c).await?;

            // The end-user sign-in link: the user signs in on the mock's consent page.
            c.goto(&format!("{base}/admin/connections/contoso/sign-in-link"))
                .await
                .map_err(err)?;
            fill(c, "#principal", "u42").await?;
            click(c, "main form button[type=submit]").await?;
            let link = text(c, "#link").await?;
            if !link.starts_with(&mock.base_url().to_string()) {
                return Err(format!(
                    "the link does not go to the identity provider: {link}"
                ));
            }
            // With the script, its copy button shows.
            if !find(c, "button[data-copy=link]")
                .await?
                .is_displayed()
                .await
                .map_err(err)?
            {
                return Err("the copy button is hidden although the script ran".into());
            }
            check_page(c).await?;
            c.goto(&link).await.map_err(err)?;
            fill(c, "input[name=login]", seed::ADELE).await?;
            fill(c, "input[name=passwd]", seed::ADELE_PASSWORD).await?;
            click(c, "button[value=accept]").await?;
            let done = text(c, "body").await?;
            if !done.contains("Signed in") {
                return Err(format!("the sign-in did not finish: {done}"));
            }

            // The test passes now that there is an account.
            c.goto(&format!("{base}/admin/connections/contoso/test"))
                .await
                .map_err(err)?;
            click(c, "main form button[type=submit]").await?;
            let result = text(c, "#result").await?;
            let steps = text(c, "#steps").await?;
            if steps.contains("— failed") {
                return Err(format!("a step failed after sign-in: {result} {steps}"));
            }

            // The user among the known users, filtered; details; reset with confirmation.
            c.goto(&format!("{base}/admin/connections/contoso/users"))
                .await
                .map_err(err)?;
            fill(c, "#filter", "u4").await?;
            click(c, "form[role=search] button").await?;
            click(c, "a[href='/admin/connections/contoso/users/u42']").await?;
            let status = text(c, "#status").await?;
            if status != "active" {
                return Err(format!("the user is not active: {status}"));
            }
            let details = text(c, "#details").await?;
            if !details.contains(seed::ADELE) {
                return Err(format!("the details lack the mailbox: {details}"));
            }
            check_page(c).await?;
            click(c, "a[href='/admin/connections/contoso/users/u42/reset']").await?;
            check_page(c).await?;
            click(c, "button.danger").await?;
            let status = text(c, "#status").await?;
            if !status.starts_with("needs-sign-in") {
                return Err(format!("the user was not reset: {status}"));
            }
            Ok(())
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_a_missing_csrf_token_and_framing_are_refused() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let gw = Gateway::start(&mock);
    let (base, password) = (gw.base.clone(), gw.password.clone());

    // A page on another origin that frames the console, and one of its own (the control).
    let framer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let framer_url = format!("http://{}", framer.local_addr().unwrap());
    let page = format!(
        "<!doctype html><title>framer</title>\
         <iframe id=console src=\"{base}/admin/sign-in\"></iframe>\
         <iframe id=own src=\"/own\"></iframe>"
    );
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(move || async move { axum::response::Html(page) }),
        )
        .route(
            "/own",
            axum::routing::get(|| async { axum::response::Html("<p id=own-content>framed</p>") }),
        );
    tokio::spawn(async move { axum::serve(framer, app).await });

    let (b, p) = (base.clone(), password.clone());
    in_browser("refusals", |c| {
        let (base, password) = (b, p);
        Box::pin(async move {
            // A wrong password: the sign-in page again, with why.
            c.goto(&format!("{base}/admin/sign-in"))
                .await
                .map_err(err)?;
            fill(c, "#password", "not the password").await?;
            click(c, "button[type=submit]").await?;
            let alert = text(c, "[role=alert]").await?;
            if !alert.contains("password is wrong") {
                return Err(format!("no refusal: {alert}"));
            }
            c.goto(&format!("{base}/admin")).await.map_err(err)?;
            if c.current_url().await.map_err(err)?.path() != "/admin/sign-in" {
                return Err("a wrong password opened the console".into());
            }

            // A form without its CSRF token is refused.
            sign_in(c, &base, &password).await?;
            c.goto(&format!("{base}/admin/keys")).await.map_err(err)?;
            check_page(c).await?;
            c.execute(
                "document.querySelector(\"form[action='/admin/keys'] input[name=csrf]\").remove();",
                vec![],
            )
            .await
            .map_err(err)?;
            fill(c, "#key-name", "portal").await?;
            click(c, "form[action='/admin/keys'] button[type=submit]").await?;
            let h1 = text(c, "main h1").await?;
            if h1 != "Form refused" {
                return Err(format!("a form without its token was accepted: {h1}"));
            }
            c.goto(&format!("{base}/admin/keys")).await.map_err(err)?;
            if c.source().await.map_err(err)?.contains(">portal<") {
                return Err("the key was created without a token".into());
            }

            // With its token the same form works, and the key is shown once.
            fill(c, "#key-name", "portal").await?;
            tick(c, "#key-admin").await?;
            click(c, "form[action='/admin/keys'] button[type=submit]").await?;
            let key = text(c, "#new-key").await?;
            if !key.starts_with("exg_") {
                return Err(format!("no key shown: {key}"));
            }
            c.goto(&format!("{base}/admin/keys")).await.map_err(err)?;
            if c.source().await.map_err(err)?.contains(&key) {
                return Err("the key is shown twice".into());
            }

            // Framed by another origin: the console does not load; the control page does.
            c.goto(&framer_url).await.map_err(err)?;
            find(c, "#own").await?;
            c.enter_frame(1).await.map_err(err)?;
            find(c, "#own-content").await?;
            c.enter_parent_frame().await.map_err(err)?;
            c.enter_frame(0).await.map_err(err)?;
            let framed = c.find(Locator::Css("#password")).await.is_ok();
            c.enter_parent_frame().await.map_err(err)?;
            if framed {
                return Err("the console loaded in a frame".into());
            }
            Ok(())
        })
    })
    .await;

    // The headers that refuse it, and the answers to a plain HTTP client.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http
        .get(format!("{base}/admin/sign-in"))
        .send()
        .await
        .unwrap();
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'self'"),
        "{csp}"
    );
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    let html = resp.text().await.unwrap();
    assert!(!html.contains("<script>"), "no inline script");
    let resp = http
        .post(format!("{base}/admin/sign-in"))
        .form(&[("password", password.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "a sign-in without its token");
    let resp = http.get(format!("{base}/admin/keys")).send().await.unwrap();
    assert_eq!(resp.status(), 303, "no session: to the sign-in page");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_console_page_is_accessible_and_light_and_the_other_actions_work() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let gw = Gateway::start(&mock);
    let (base, password) = (gw.base.clone(), gw.password.clone());
    in_browser("every_page", |c| {
        Box::pin(async move {
            sign_in(c, &base, &password).await?;
            // An app-only connection, then edited: its backend changes, its secret stays set.
            c.goto(&format!("{base}/admin/connections/new")).await.map_err(err)?;
            fill(c, "#name", "service").await?;
            fill(c, "#tenant", seed::TENANT_ID).await?;
            find(c, "#auth").await?.select_by_value("oauth2-app-only").await.map_err(err)?;
            fill(c, "#client_id", seed::DAEMON_APP).await?;
            fill(c, "#client_secret", seed::DAEMON_APP_SECRET).await?;
            click(c, "form[action='/admin/connections'] button[type=submit]").await?;
            replace(c, "#backend", "graph").await?;
            click(c, "form[action='/admin/connections/service'] button[type=submit]").await?;
            let settings = text(c, "main pre").await?;
            if !settings.contains("\"backend\": \"graph\"") || !settings.contains("\"set\": true") {
                return Err(format!("the edit did not keep the secret or change the backend: {settings}"));
            }
            check_page(c).await?;

            // Static users: add one, see it, remove it.
            c.goto(&format!("{base}/admin/connections/service/static-users")).await.map_err(err)?;
            check_page(c).await?;
            fill(c, "#principal", "sales").await?;
            fill(c, "#mailbox", seed::ADELE).await?;
            click(c, "form[action='/admin/connections/service/static-users'] button[type=submit]").await?;
            let table = text(c, "main table").await?;
            if !table.contains("sales") || !table.contains(seed::ADELE) {
                return Err(format!("the static user is not listed: {table}"));
            }
            check_page(c).await?;
            click(c, "button[aria-label='Remove sales']").await?;
            if text(c, "main table").await?.contains("sales") {
                return Err("the static user was not removed".into());
            }

            // Reset every user: refused without the name, done with it.
            c.goto(&format!("{base}/admin/connections/service/users/reset-all")).await.map_err(err)?;
            check_page(c).await?;
            fill(c, "#confirm", "service").await?;
            click(c, "button.danger").await?;
            let done = text(c, "[role=status]").await?;
            if !done.contains("0 users of service") {
                return Err(format!("reset all: {done}"));
            }

            // A key for the connection, then revoked.
            c.goto(&format!("{base}/admin/keys")).await.map_err(err)?;
            fill(c, "#key-name", "worker").await?;
            tick(c, "input[name=connection][value=service]").await?;
            click(c, "form[action='/admin/keys'] button[type=submit]").await?;
            find(c, "#new-key").await?;
            check_page(c).await?;
            click(c, "button[aria-label='Revoke worker']").await?;
            if c.find(Locator::Css("button[aria-label='Revoke worker']")).await.is_ok() {
                return Err("the key was not revoked".into());
            }

            // The remaining pages.
            for path in [
                "/admin/connections",
                "/admin/connections/service",
                "/admin/connections/service/test",
                "/admin/connections/service/users",
                "/admin/connections/service/sign-in-link",
                "/admin/setup",
                "/admin/setup?name=svc&who=service&protocol=graph&protocol=ews&mailboxes=adele%40contoso.com",
            ] {
                c.goto(&format!("{base}{path}")).await.map_err(err)?;
                check_page(c).await.map_err(|e| format!("{path}: {e}"))?;
            }
            // The API reference opens with the session, self-hosted, accessible and light too.
            c.goto(&format!("{base}/api/docs")).await.map_err(err)?;
            find(c, "a[href='/api/openapi.json']").await?;
            check_page_within(c, MAX_REFERENCE_BYTES)
                .await
                .map_err(|e| format!("/api/docs: {e}"))?;
            Ok(())
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_core_actions_work_with_javascript_off() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let gw = Gateway::start(&mock);
    let (base, password) = (gw.base.clone(), gw.password.clone());
    in_browser_with("no_javascript", false, |c| {
        Box::pin(async move {
            // No script runs, WebDriver's neither: each click waits for what only the next page has.
            c.goto(&format!("{base}/admin/sign-in"))
                .await
                .map_err(err)?;
            fill(c, "#password", &password).await?;
            click_to(c, "button[type=submit]", "nav[aria-label=Console]").await?;
            c.goto(&format!("{base}/admin/connections/new"))
                .await
                .map_err(err)?;
            fill(c, "#name", "contoso").await?;
            fill(c, "#tenant", seed::TENANT_ID).await?;
            fill(c, "#client_id", seed::WEB_APP).await?;
            fill(c, "#client_secret", seed::WEB_APP_SECRET).await?;
            click_to(
                c,
                "form[action='/admin/connections'] button[type=submit]",
                "form[action='/admin/connections/contoso/delete']",
            )
            .await?;
            if text(c, "main h1").await? != "Connection contoso" {
                return Err("not created without JavaScript".into());
            }
            c.goto(&format!("{base}/admin/connections/contoso/sign-in-link"))
                .await
                .map_err(err)?;
            fill(c, "#principal", "u42").await?;
            click_to(c, "main form button[type=submit]", "#link").await?;
            // The link is there as text; its copy button needs the script, so it stays hidden.
            let link = text(c, "#link").await?;
            if !link.contains("/oauth2/v2.0/authorize?") {
                return Err(format!("no link: {link}"));
            }
            if find(c, "button[data-copy=link]")
                .await?
                .is_displayed()
                .await
                .map_err(err)?
            {
                return Err("a copy button shows although the script did not run".into());
            }
            c.goto(&format!("{base}/admin/keys")).await.map_err(err)?;
            fill(c, "#key-name", "portal").await?;
            tick(c, "input[name=connection][value=contoso]").await?;
            click_to(
                c,
                "form[action='/admin/keys'] button[type=submit]",
                "#new-key",
            )
            .await?;
            if !text(c, "#new-key").await?.starts_with("exg_") {
                return Err("no key without JavaScript".into());
            }
            Ok(())
        })
    })
    .await;
}

/// Takes the screenshots of docs/console.md (into `target/tmp/console-docs/`; with
/// `EXGATE_DOCS_SCREENSHOTS=1` also into `docs/console/`).
#[tokio::test(flavor = "multi_thread")]
async fn console_screenshots_for_the_docs() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let gw = Gateway::start(&mock);
    let (base, password) = (gw.base.clone(), gw.password.clone());
    let http = reqwest::Client::new();
    // A client secret that expires in 20 days: the dashboard warns of it.
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(20))
        .date()
        .to_string();
    let resp = http
        .post(format!("{base}/api/v1/connections"))
        .basic_auth("admin", Some(&password))
        .json(&json!({
            "name": "contoso", "tenant": seed::TENANT_ID, "auth": "oauth2-delegated",
            "client_id": seed::WEB_APP, "client_secret": seed::WEB_APP_SECRET,
            "redirect_uri": format!("{base}/service/oauth2/authorize"),
            "credential_expires": expires,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let out = artefacts("console-docs");
    let docs = std::env::var_os("EXGATE_DOCS_SCREENSHOTS")
        .map(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/console"));
    in_browser("docs", |c| {
        let (out, docs) = (out.clone(), docs.clone());
        Box::pin(async move {
            let shoot = |name: &'static str| {
                let (out, docs) = (out.clone(), docs.clone());
                async move {
                    let png = c.screenshot().await.map_err(err)?;
                    std::fs::write(out.join(format!("{name}.png")), &png).map_err(err)?;
                    if let Some(d) = docs {
                        std::fs::create_dir_all(&d).map_err(err)?;
                        std::fs::write(d.join(format!("{name}.png")), &png).map_err(err)?;
                    }
                    Ok::<_, String>(())
                }
            };
            c.set_window_size(1100, 800).await.map_err(err)?;
            c.goto(&format!("{base}/admin/sign-in"))
                .await
                .map_err(err)?;
            shoot("sign-in").await?;
            sign_in(c, &base, &password).await?;
            shoot("dashboard").await?;
            c.goto(&format!("{base}/admin/connections/contoso/test"))
                .await
                .map_err(err)?;
            click(c, "main form button[type=submit]").await?;
            find(c, "#steps").await?;
            shoot("connection-test").await?;
            c.goto(&format!(
                "{base}/admin/setup?name=contoso&who=portal&protocol=graph&public_url={}",
                percent(&base)
            ))
            .await
            .map_err(err)?;
            find(c, "#consent-url").await?;
            check_page(c).await?;
            c.execute(
                "document.querySelector('main h2').scrollIntoView();",
                vec![],
            )
            .await
            .map_err(err)?;
            shoot("setup").await?;
            Ok(())
        })
    })
    .await;
    assert!(out.join("dashboard.png").exists());
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
