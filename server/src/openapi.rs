//! The API's OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations, served
//! at `GET /api/openapi.json` with a page rendered from it at `GET /api/docs` (server-side HTML,
//! the console's stylesheet, no script and no CDN). Both need authentication, as every API route
//! does.

mod core_types;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
use utoipa::{IntoResponses, Modify, OpenApi};

use crate::ApiError;
use crate::auth::Caller;

pub(crate) use core_types::{
    Binary, Contact, Event, EventTime, Folder, FreeBusy, Message, MessageSummary, Recurrence,
    Report,
};

/// The gateway's API as OpenAPI 3.1. `ApiDoc::openapi()` builds it; the gateway serves it at
/// `GET /api/openapi.json`.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "exgate gateway",
        description = "An HTTP gateway to Exchange mailboxes: admin routes manage connections, \
                       API keys, known and static users; applications sign their users in and use \
                       their mailboxes. Every error has the shape `ApiError`; every response \
                       carries `x-request-id`, which is also the error's `correlation_id`."
    ),
    paths(
        crate::routes::admin::list_connections,
        crate::routes::admin::create_connection,
        crate::routes::admin::get_connection,
        crate::routes::admin::update_connection,
        crate::routes::admin::delete_connection,
        crate::routes::admin::test_connection,
        crate::routes::admin::list_accounts,
        crate::routes::admin::reset_all_accounts,
        crate::routes::admin::get_account,
        crate::routes::admin::reset_account,
        crate::routes::admin::list_static_users,
        crate::routes::admin::create_static_user,
        crate::routes::admin::delete_static_user,
        crate::routes::admin::list_keys,
        crate::routes::admin::create_key,
        crate::routes::admin::revoke_key,
        crate::routes::signin::start,
        crate::routes::signin::status,
        crate::routes::signin::callback,
        crate::routes::mailbox::folders,
        crate::routes::mailbox::messages,
        crate::routes::mailbox::send,
        crate::routes::mailbox::message,
        crate::routes::mailbox::delete_message,
        crate::routes::mailbox::mime,
        crate::routes::mailbox::attachment,
        crate::routes::mailbox::reply,
        crate::routes::mailbox::forward,
        crate::routes::mailbox::move_message,
        crate::routes::mailbox::mark_read,
        crate::routes::mailbox::events,
        crate::routes::mailbox::create_event,
        crate::routes::mailbox::update_event,
        crate::routes::mailbox::delete_event,
        crate::routes::mailbox::free_busy,
        crate::routes::mailbox::contacts,
        crate::routes::mailbox::create_contact,
        crate::routes::mailbox::contact,
        crate::routes::mailbox::update_contact,
        crate::routes::mailbox::delete_contact,
        crate::routes::notify::create_watch,
        crate::routes::notify::list_watches,
        crate::routes::notify::delete_watch,
        crate::routes::notify::events,
        crate::routes::notify::stream,
        crate::routes::notify::create_webhook,
        crate::routes::notify::list_webhooks,
        crate::routes::notify::delete_webhook,
        crate::routes::notify::dead_letters,
        crate::routes::notify::replay,
        crate::health::healthz,
        crate::health::readyz,
        crate::metrics::render,
        document,
        page,
    ),
    components(schemas(ApiError)),
    modifiers(&Security),
    tags(
        (name = "admin", description = "Connections (secrets are write-only), API keys, known \
                                        users and static users. For admins: HTTP Basic with user \
                                        `admin`, or an admin API key."),
        (name = "sign-in", description = "Sign an application's user in, in a browser or with a \
                                          device code."),
        (name = "mailbox", description = "Mail, calendar and contacts of a user: a linked account \
                                          on a delegated connection, a static user on an app-only \
                                          one."),
        (name = "notifications", description = "Change notifications: watches on mailboxes, \
                                                their events polled or streamed (Server-Sent \
                                                Events), and signed webhooks with dead letters."),
        (name = "operations", description = "Probes, metrics, and this document."),
    )
)]
pub struct ApiDoc;

/// Adds the two ways to authenticate: `admin` (HTTP Basic with the admin password) and
/// `api_key` (a bearer API key).
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "User `admin` and the admin password (generated at first start, or \
                         `server.admin_password`).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("exg_…")
                    .description(Some(
                        "An API key: an admin key may do everything, an application key only use \
                         the connections it was created for.",
                    ))
                    .build(),
            ),
        );
    }
}

/// An error answer in the one shape, `ApiError`.
fn error(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ApiError"))),
        )
        .build()
        .into()
}

fn responses(list: &[(&str, &str)]) -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    list.iter()
        .map(|(status, description)| ((*status).to_owned(), error(description)))
        .collect()
}

const UNAUTHORIZED: (&str, &str) = ("401", "`unauthorized`: no, unknown or revoked credential");
const INTERNAL: (&str, &str) = (
    "500",
    "`internal_error`: see the gateway's log under the correlation ID",
);

/// What an admin route may answer besides its own results.
pub(crate) struct AdminErrors;

impl IntoResponses for AdminErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        responses(&[
            UNAUTHORIZED,
            (
                "403",
                "`forbidden`: the credential is an application API key, not an admin's",
            ),
            (
                "429",
                "`too_many_failures`: ten failed authentications from this client within a minute",
            ),
            INTERNAL,
        ])
    }
}

/// What a route for applications (sign-in, documentation) may answer besides its own results.
pub(crate) struct CallerErrors;

impl IntoResponses for CallerErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        responses(&[
            UNAUTHORIZED,
            (
                "429",
                "`too_many_failures`: ten failed authentications from this client within a minute",
            ),
            INTERNAL,
        ])
    }
}

/// What every mailbox route may answer besides its own results.
pub(crate) struct MailboxErrors;

impl IntoResponses for MailboxErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        responses(&[
            (
                "400",
                "`invalid_input`: a value is wrong (the message names it), or `mailbox` was given \
                 on an app-only connection",
            ),
            UNAUTHORIZED,
            (
                "403",
                "`forbidden`: the API key may not use this connection, or the mailbox refused (the \
                 hint names the missing permission or right); `needs_sign_in`: the user must sign \
                 in again",
            ),
            (
                "404",
                "`not_found`: no such connection, user (not signed in, or not a static user) or \
                 item",
            ),
            (
                "429",
                "`throttled`: the mailbox is throttled, `Retry-After` says how long to wait; or \
                 `too_many_failures`",
            ),
            INTERNAL,
            (
                "502",
                "`backend_error`: the mail server failed; `identity_provider_error`: Entra ID \
                 refused a token (the hint has the fix)",
            ),
            (
                "504",
                "`backend_unreachable`: the mail server could not be reached",
            ),
        ])
    }
}

static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(ApiDoc::openapi);

/// The docs page: rendered once from the document, every operation by tag with its parameters
/// and answers. The console's stylesheet is its only other file.
static PAGE: LazyLock<String> = LazyLock::new(|| render_page(&DOCUMENT));

fn text(v: &serde_json::Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn render_page(doc: &utoipa::openapi::OpenApi) -> String {
    use maud::{DOCTYPE, html};
    let json = serde_json::to_value(doc).unwrap_or_default();
    const METHODS: [&str; 5] = ["get", "post", "patch", "put", "delete"];
    // (tag, [(method, path, operation)]) in the document's tag order.
    let mut by_tag: BTreeMap<String, Vec<(&str, &str, &serde_json::Value)>> = BTreeMap::new();
    if let Some(paths) = json["paths"].as_object() {
        for (path, item) in paths {
            for m in METHODS {
                let op = &item[m];
                if op.is_object() {
                    let tag = op["tags"][0].as_str().unwrap_or("other").to_owned();
                    by_tag.entry(tag).or_default().push((m, path, op));
                }
            }
        }
    }
    let anchor = |m: &str, p: &str| {
        format!("{m}-{p}")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect::<String>()
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (text(&json["info"]["title"])) " API reference" }
                link rel="stylesheet" href="/admin/assets/console.css";
            }
            body {
                header { a.brand href="/admin" { "exgate console" } }
                main {
                    h1 { (text(&json["info"]["title"])) " API " (text(&json["info"]["version"])) }
                    p { (text(&json["info"]["description"])) }
                    p { "The machine-readable document: " a href="/api/openapi.json" { "/api/openapi.json" } " (OpenAPI 3.1)." }
                    nav aria-label="Operations" {
                        @for (tag, ops) in &by_tag {
                            h2 { (tag) }
                            ul { @for (m, p, op) in ops { li { a href={"#" (anchor(m, p))} { code { (m.to_uppercase()) " " (p) } } " — " (text(&op["summary"])) } } }
                        }
                    }
                    @for (tag, ops) in &by_tag {
                        @for (m, p, op) in ops {
                            section id=(anchor(m, p)) aria-labelledby={(anchor(m, p)) "-h"} {
                                h3 id={(anchor(m, p)) "-h"} { code { (m.to_uppercase()) " " (p) } }
                                p { strong { (text(&op["summary"])) } " (" (tag) ")" }
                                @if let Some(d) = op["description"].as_str() { p { (d) } }
                                @if let Some(params) = op["parameters"].as_array() {
                                    table {
                                        thead { tr { th { "Parameter" } th { "In" } th { "Required" } th { "Description" } } }
                                        tbody { @for prm in params { tr {
                                            td { code { (text(&prm["name"])) } }
                                            td { (text(&prm["in"])) }
                                            td { @if prm["required"].as_bool() == Some(true) { "yes" } @else { "no" } }
                                            td { (text(&prm["description"])) }
                                        } } }
                                    }
                                }
                                @if op["requestBody"].is_object() {
                                    p { "Body: " @for (ct, _) in op["requestBody"]["content"].as_object().into_iter().flatten() { code { (ct) } " " } (text(&op["requestBody"]["description"])) }
                                }
                                table {
                                    thead { tr { th { "Status" } th { "Answer" } } }
                                    tbody { @for (code, r) in op["responses"].as_object().into_iter().flatten() { tr {
                                        td { (code) }
                                        td { (text(&r["description"])) }
                                    } } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    .into_string()
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    security(("api_key" = []), ("admin" = [])),
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of the gateway's API", content_type = "application/json", body = Object),
        CallerErrors,
    ),
)]
pub(crate) async fn document(_: Caller) -> Json<&'static utoipa::openapi::OpenApi> {
    Json(&DOCUMENT)
}

/// This document as a browsable page (rendered by the gateway; no script, no CDN).
///
/// Without credentials (an API key, the admin password, or a console session) it answers 401
/// with `WWW-Authenticate: Basic`, so a browser asks for the admin's user name and password.
#[utoipa::path(
    get,
    path = "/api/docs",
    tag = "operations",
    security(("admin" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "An HTML page that renders this document", content_type = "text/html", body = String),
        CallerErrors,
    ),
)]
pub(crate) async fn page(
    caller: Result<Caller, ApiError>,
    console: Result<crate::console::Session, Response>,
) -> Response {
    // A console session may read it too (the console links to it).
    match caller.map_err(|e| (e, console.is_ok())) {
        Ok(_) | Err((_, true)) => (
            [(header::CONTENT_SECURITY_POLICY, crate::console::CONSOLE_CSP)],
            Html(PAGE.as_str()),
        )
            .into_response(),
        Err((e, false)) => {
            let challenge = e.status == StatusCode::UNAUTHORIZED;
            let mut resp = e.into_response();
            if challenge {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"exgate\", charset=\"UTF-8\""),
                );
            }
            resp
        }
    }
}
