//! The console's pages. Each calls the same core services as the API route of the same action;
//! logic stays in core. Every action is logged with the session's ID.

use std::collections::BTreeSet;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use exgate_core::apikeys::{ApiKeyId, KeyScope};
use exgate_core::model::{
    AccountStatus, ConnectionSpec, EmailAddress, MailboxAccess, Principal, StaticUser, StaticUserId,
};
use exgate_core::setup;
use maud::{Markup, html};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{CsrfOnly, Session, error_page, page};
use crate::{ApiError, AppState};

type Form = axum::Form<Vec<(String, String)>>;

fn ts(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A form field, `None` when absent or blank.
fn given(form: &[(String, String)], name: &str) -> Option<String> {
    field(form, name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(ToOwned::to_owned)
}

fn all<'a>(form: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> {
    form.iter()
        .filter(move |(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn fail(session: &Session, e: impl Into<ApiError>) -> Response {
    error_page(Some(session), e.into())
}

fn csrf_input(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A value with a copy button (the button appears only with JavaScript; the value is text).
fn copyable(id: &str, value: &str) -> Markup {
    html! {
        span.copy {
            code #(id) { (value) }
            button.secondary type="button" data-copy=(id) hidden aria-label={"Copy " (id)} { "Copy" }
        }
    }
}

/// The refusal of a form without this session's token, if it is refused.
fn check(session: &Session, form: &[(String, String)]) -> Option<Response> {
    session.check(field(form, "csrf"))
}

// ---------------------------------------------------------------- dashboard

pub(crate) async fn dashboard(session: Session, State(s): State<AppState>) -> Response {
    let entries = match s.connections.list().await {
        Ok(e) => e,
        Err(e) => return fail(&session, e),
    };
    let now = s.signin.clock().now();
    let mut expiring = Vec::new();
    let mut needing = Vec::new();
    let mut rows = Vec::new();
    for e in &entries {
        let c = &e.connection;
        let name = c.name.as_str().to_owned();
        let expiry = s.expiry.expiry(c, now);
        if let Some(x) = &expiry
            && x.warning.is_some()
        {
            expiring.push(x.message(&name));
        }
        let accounts = s.signin.accounts(&name, None).await.unwrap_or_default();
        let stale = accounts
            .iter()
            .filter(|a| matches!(a.status, AccountStatus::NeedsSignIn { .. }))
            .count();
        for a in accounts
            .iter()
            .filter(|a| matches!(a.status, AccountStatus::NeedsSignIn { .. }))
            .take(20)
        {
            needing.push((name.clone(), a.principal.to_string()));
        }
        rows.push((name, c.settings.auth.kind(), accounts.len(), stale, expiry));
    }
    let throttled = s.mailboxes.governor().back_offs() + s.mailboxes.ews_governor().back_offs();
    let store_ok = s.store.ping().await.is_ok();
    page(
        "Dashboard",
        Some(&session),
        html! {
            h1 { "Dashboard" }
            div.cards {
                div.card { strong { (entries.len()) } "connections" }
                div.card { strong { (expiring.len()) } "credentials expiring" }
                div.card { strong { (needing.len()) } "accounts needing sign-in" }
                div.card { strong { (throttled) } "throttling back-offs since start" }
            }
            h2 { "Connections" }
            @if rows.is_empty() {
                p { "No connection yet. " a href="/admin/setup" { "Plan one with the guided setup" } " or " a href="/admin/connections/new" { "create one" } "." }
            } @else {
                table {
                    thead { tr { th { "Name" } th { "Authentication" } th { "Known users" } th { "Need sign-in" } th { "Credential" } th { "Test" } } }
                    tbody {
                        @for (name, auth, users, stale, expiry) in &rows {
                            tr {
                                td { a href={"/admin/connections/" (enc(name))} { (name) } }
                                td { (auth) }
                                td { a href={"/admin/connections/" (enc(name)) "/users"} { (users) } }
                                td { @if *stale > 0 { span.warn { (stale) } } @else { "0" } }
                                td {
                                    @match expiry {
                                        Some(x) => { @if x.warning.is_some() { span.bad { "expires in " (x.days_left) " days" } } @else { "expires " (x.expires_rfc3339()) } }
                                        None => { "no expiry known" }
                                    }
                                }
                                td { a href={"/admin/connections/" (enc(name)) "/test"} { "Run the test" } }
                            }
                        }
                    }
                }
            }
            @if !expiring.is_empty() {
                h2 { "Credentials expiring" }
                ul { @for m in &expiring { li { (m) } } }
            }
            @if !needing.is_empty() {
                h2 { "Accounts needing sign-in" }
                ul { @for (c, p) in &needing { li { a href={"/admin/connections/" (enc(c)) "/users/" (enc(p))} { (c) " / " (p) } } } }
            }
            h2 { "Health" }
            p #health {
                "Store: "
                @if store_ok { span.ok { "answers" } } @else { span.bad { "does not answer (see the gateway's log)" } }
                ". Token requests failed since start: "
                (s.signin.cache().stats().fetch_failures.load(std::sync::atomic::Ordering::Relaxed))
                "."
            }
            p { "Liveness " a href="/healthz" { "/healthz" } ", readiness " a href="/readyz" { "/readyz" } ", metrics " a href="/metrics" { "/metrics" } "." }
        },
    )
}

// ---------------------------------------------------------------- connections

pub(crate) async fn connections(session: Session, State(s): State<AppState>) -> Response {
    let entries = match s.connections.list().await {
        Ok(e) => e,
        Err(e) => return fail(&session, e),
    };
    page(
        "Connections",
        Some(&session),
        html! {
            h1 { "Connections" }
            p { a.button href="/admin/connections/new" { "New connection" } }
            table {
                thead { tr { th { "Name" } th { "Authentication" } th { "Backend" } th { "Source" } } }
                tbody {
                    @for e in &entries {
                        @let name = e.connection.name.as_str();
                        tr {
                            td { a href={"/admin/connections/" (enc(name))} { (name) } }
                            td { (e.connection.settings.auth.kind()) }
                            td { (e.connection.settings.backend.to_string()) }
                            td { @match &e.source { exgate_core::connections::Source::Store => { "store" } exgate_core::connections::Source::File(f) => { (f) " (read-only)" } } }
                        }
                    }
                }
            }
        },
    )
}

/// The connection form's fields: (name, label, hint, kind). Secrets are `password` inputs and
/// never filled in.
const FIELDS: &[(&str, &str, &str, &str)] = &[
    (
        "tenant",
        "Tenant",
        "Exchange Online: the Directory (tenant) ID or a verified domain.",
        "text",
    ),
    (
        "auth",
        "Authentication",
        "oauth2-delegated, oauth2-app-only, basic or ntlm.",
        "auth",
    ),
    (
        "client_id",
        "Application (client) ID",
        "From the app registration's overview.",
        "text",
    ),
    (
        "client_secret",
        "Client secret",
        "Write-only: the secret's value. Leave empty to keep the one set.",
        "password",
    ),
    (
        "redirect_uri",
        "Redirect URI",
        "Delegated: registered as a Web redirect URI.",
        "text",
    ),
    (
        "credential_expires",
        "Credential expires",
        "YYYY-MM-DD; the dashboard warns ahead of it.",
        "text",
    ),
    (
        "backend",
        "Backend",
        "auto, graph, ews, imap or pop.",
        "text",
    ),
    (
        "ews_url",
        "EWS URL",
        "Exchange Server: https://…/EWS/Exchange.asmx.",
        "text",
    ),
    (
        "username",
        "Service account",
        "Basic or NTLM: the account's user name.",
        "text",
    ),
    (
        "password",
        "Service account password",
        "Write-only. Leave empty to keep the one set.",
        "password",
    ),
    (
        "authority",
        "Custom authority",
        "An OIDC discovery URL (AD FS, Keycloak); empty for Entra ID.",
        "text",
    ),
    (
        "certificate_pem",
        "Certificate (PEM)",
        "Instead of a client secret, with its private key.",
        "textarea",
    ),
    (
        "private_key_pem",
        "Certificate's private key (PEM)",
        "Write-only. Leave empty to keep the one set.",
        "secret-textarea",
    ),
];

fn connection_form(
    session: &Session,
    action: &str,
    values: &serde_json::Value,
    new: bool,
    redirect_uri: &str,
) -> Markup {
    let value = |k: &str| -> String {
        let v = match k {
            "tenant" => &values["target"]["tenant"],
            "ews_url" => &values["target"]["ews_url"],
            "auth" => &values["auth"]["kind"],
            "client_id" => &values["auth"]["client_id"],
            "redirect_uri" => &values["auth"]["redirect_uri"],
            "username" => &values["auth"]["username"],
            "credential_expires" => &values["credential"]["expires"],
            other => &values[other],
        };
        match v {
            serde_json::Value::String(s) => s.clone(),
            _ if new && k == "redirect_uri" => redirect_uri.to_owned(),
            _ => String::new(),
        }
    };
    html! {
        form method="post" action=(action) {
            (csrf_input(session))
            @if new {
                label for="name" { "Name" span.hint { "Letters, digits, - and _; applications name the connection by it." } }
                input #name type="text" name="name" required pattern="[A-Za-z0-9_-]+";
            }
            @for (name, label, hint, kind) in FIELDS {
                label for=(name) { (label) span.hint { (hint) } }
                @match *kind {
                    "password" => { input #(name) type="password" name=(name) autocomplete="off"; }
                    "textarea" => { textarea #(name) name=(name) { (value(name)) } }
                    "secret-textarea" => { textarea #(name) name=(name) autocomplete="off" {} }
                    "auth" => {
                        select #(name) name=(name) {
                            @for a in ["oauth2-delegated", "oauth2-app-only", "basic", "ntlm"] {
                                option value=(a) selected[value(name) == a] { (a) }
                            }
                        }
                    }
                    _ => { input #(name) type="text" name=(name) value=(value(name)); }
                }
            }
            @if !new {
                label for="remove_credential" {
                    input #remove_credential type="checkbox" name="remove_credential" value="true";
                    " Remove the client secret or certificate (a public client)"
                }
            }
            button type="submit" { @if new { "Create" } @else { "Save" } }
        }
    }
}

fn spec_of(form: &[(String, String)]) -> ConnectionSpec {
    use exgate_core::secret::Secret;
    // The form prefills the gateway's redirect URI; it belongs to delegated connections only.
    let delegated = given(form, "auth").is_none_or(|a| a == "oauth2-delegated");
    ConnectionSpec {
        tenant: given(form, "tenant"),
        auth: given(form, "auth"),
        client_id: given(form, "client_id"),
        client_secret: given(form, "client_secret").map(Secret::new),
        redirect_uri: given(form, "redirect_uri").filter(|_| delegated),
        credential_expires: given(form, "credential_expires"),
        backend: given(form, "backend"),
        ews_url: given(form, "ews_url"),
        username: given(form, "username"),
        password: given(form, "password").map(Secret::new),
        authority: given(form, "authority"),
        certificate_pem: given(form, "certificate_pem"),
        private_key_pem: given(form, "private_key_pem").map(Secret::new),
        ..ConnectionSpec::default()
    }
}

pub(crate) async fn new_connection(session: Session, State(s): State<AppState>) -> Response {
    page(
        "New connection",
        Some(&session),
        html! {
            h1 { "New connection" }
            p { "Copy the values from the app registration in Entra ID; " a href="/admin/setup" { "the guided setup" } " says what to register." }
            (connection_form(&session, "/admin/connections", &serde_json::Value::Null, true, &s.redirect_uri()))
        },
    )
}

pub(crate) async fn create_connection(
    session: Session,
    State(s): State<AppState>,
    axum::Form(form): Form,
) -> Response {
    if let Some(r) = check(&session, &form) {
        return r;
    }
    let Some(name) = given(&form, "name") else {
        return fail(
            &session,
            ApiError::bad_request("missing name: give the connection a name"),
        );
    };
    if let Err(e) = s.connections.add(&name, &spec_of(&form)).await {
        return fail(&session, e);
    }
    tracing::info!(session = %session.id, action = "connection.create", connection = %name, "console action");
    Redirect::to(&format!("/admin/connections/{}", enc(&name))).into_response()
}

pub(crate) async fn connection(
    session: Session,
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Response {
    let entry = match s.connections.get(&name).await {
        Ok(e) => e,
        Err(e) => return fail(&session, e),
    };
    let view = crate::routes::admin::connection_json(&entry, &s.expiry, s.signin.clock().now());
    let read_only = !matches!(entry.source, exgate_core::connections::Source::Store);
    let base = format!("/admin/connections/{}", enc(&name));
    page(
        &name,
        Some(&session),
        html! {
            h1 { "Connection " (name) }
            ul {
                li { a href={(base) "/test"} { "Test the connection" } }
                li { a href={(base) "/users"} { "Known users" } }
                li { a href={(base) "/static-users"} { "Static users" } }
                li { a href={(base) "/sign-in-link"} { "End-user sign-in link" } }
            }
            h2 { "Settings" }
            p.hint { "Secrets are write-only: the console shows whether one is set, never its value." }
            pre { (serde_json::to_string_pretty(&view).unwrap_or_default()) }
            @if read_only {
                p.notice { "This connection is declared in a configuration file; change it there." }
            } @else {
                h2 { "Edit" }
                p.hint { "Only the fields you change are saved; empty secret fields keep the secret set." }
                (connection_form(&session, &base, &view, false, &s.redirect_uri()))
                h2 { "Remove" }
                form method="post" action={(base) "/delete"} {
                    (csrf_input(&session))
                    label for="confirm" {
                        input #confirm type="checkbox" name="confirm" value="yes" required;
                        " Remove " (name) " with its known and static users"
                    }
                    button.danger type="submit" { "Remove the connection" }
                }
            }
        },
    )
}

pub(crate) async fn edit_connection(
    session: Session,
    State(s): State<AppState>,
    Path(name): Path<String>,
    axum::Form(form): Form,
) -> Response {
    if let Some(r) = check(&session, &form) {
        return r;
    }
    let remove = field(&form, "remove_credential") == Some("true");
    if let Err(e) = s.connections.edit(&name, spec_of(&form), remove).await {
        return fail(&session, e);
    }
    tracing::info!(session = %session.id, action = "connection.edit", connection = %name, "console action");
    Redirect::to(&format!("/admin/connections/{}", enc(&name))).into_response()
}

pub(crate) async fn delete_connection(
    session: Session,
    State(s): State<AppState>,
    Path(name): Path<String>,
    axum::Form(form): Form,
) -> Response {
    if let Some(r) = check(&session, &form) {
        return r;
    }
    if field(&form, "confirm") != Some("yes") {
        return fail(
            &session,
            ApiError::bad_request("tick the confirmation to remove the connection"),
        );
    }
    if let Err(e) = s.connections.remove(&name).await {
        return fail(&session, e);
    }
    tracing::info!(session = %session.id, action = "connection.delete", connection = %name, "console action");
    Redirect::to("/admin/connections").into_response()
}

// ---------------------------------------------------------------- connection test

fn test_form_markup(session: &Session, name: &str) -> Markup {
    html! {
        form method="post" action={"/admin/connections/" (enc(name)) "/test"} {
            (csrf_input(session))
            label for="account" { "Account" span.hint { "Delegated: the known user to test with (default: the only one)." } }
            input #account type="text" name="account";
            label for="mailbox" { "Mailbox" span.hint { "The mailbox to read (app-only connections need one)." } }
            input #mailbox type="text" name="mailbox";
            button type="submit" { "Run the test" }
        }
    }
}

pub(crate) async fn test_form(session: Session, Path(name): Path<String>) -> Response {
    page(
        "Test",
        Some(&session),
        html! {
            h1 { "Test " (name) }
            p { "Each step is a real probe: identity provider, credentials, token claims, mailbox; each says what it saw and what to fix." }
            (test_form_markup(&session, &name))
        },
    )
}

pub(crate) async fn run_test(
    session: Session,
    State(s): State<AppState>,
    Path(name): Path<String>,
    axum::Form(form): Form,
) -> Response {
    if let Some(r) = check(&session, &form) {
        return r;
    }
    let options = exgate_core::diagnose::TestOptions {
        account: given(&form, "account"),
        mailbox: given(&form, "mailbox"),
        redirect_uri: Some(s.redirect_uri()),
    };
    tracing::info!(session = %session.id, action = "connection.test", connection = %name, "console action");
    let report = match exgate_core::diagnose::test_connection(
        &s.connections,
        &s.signin,
        &s.mailboxes,
        &name,
        &options,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return fail(&session, e),
    };
    let status = |st: exgate_core::diagnose::Status| match st {
        exgate_core::diagnose::Status::Passed => "passed",
        exgate_core::diagnose::Status::Failed => "failed",
        exgate_core::diagnose::Status::Skipped => "skipped",
    };
    page(
        "Test",
        Some(&session),
        html! {
            h1 { "Test " (name) }
            @if report.ok {
                p.notice.success #result role="status" { "Every step ran and passed." }
            } @else if report.failed() {
                p.notice.error #result role="status" { "A step failed: its fix is below." }
            } @else {
                p.notice #result role="status" { "No step failed, but some were skipped: they prove nothing." }
            }
            ol #steps {
                @for c in &report.checks {
                    li {
                        strong { (c.name) } " — " span class={"status-" (status(c.status))} { (status(c.status)) }
                        p { "Evidence: " (c.evidence) }
                        @if let Some(f) = &c.fix { p { "Fix: " (f) } }
                    }
                }
            }
            h2 { "Run again" }
            (test_form_markup(&session, &name))
        },
    )
}

// ---------------------------------------------------------------- known users

const PAGE_SIZE: usize = 50;

#[derive(Debug, serde::Deserialize)]
pub(crate) struct UsersQuery {
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    page: Option<usize>,
}

pub(crate) async fn users(
    session: Session,
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<UsersQuery>,
) -> Response {
    let filter = q.filter.as_deref().map(str::trim).filter(|f| !f.is_empty());
    let all = match s.signin.accounts(&name, filter).await {
        Ok(a) => a,
        Err(e) => return fail(&session, e),
    };
    let page_no = q.page.unwrap_or(1).max(1);
    let pages = all.len().div_ceil(PAGE_SIZE).max(1);
    let base = format!("/admin/connections/{}", enc(&name));
    let query = |p: usize| match filter {
        Some(f) => format!("{base}/users?filter={}&page={p}", enc(f)),
        None => format!("{base}/users?page={p}"),
    };
    page(
        "Known users",
        Some(&session),
        html! {
            h1 { "Known users of " (name) }
            form method="get" action={(base) "/users"} role="search" {
                label for="filter" { "Filter" span.hint { "Part of the principal or the mailbox address." } }
                input #filter type="search" name="filter" value=(filter.unwrap_or_default());
                button type="submit" { "Filter" }
            }
            p { (all.len()) " users" @if let Some(f) = filter { " matching “" (f) "”" } "." }
            table {
                thead { tr { th { "Principal" } th { "Mailbox" } th { "Kind" } th { "Status" } th { "Last used" } } }
                tbody {
                    @for a in all.iter().skip((page_no - 1) * PAGE_SIZE).take(PAGE_SIZE) {
                        tr {
                            td { a href={(base) "/users/" (enc(a.principal.as_str()))} { (a.principal.as_str()) } }
                            td { (a.mailbox.as_ref().map(ToString::to_string).unwrap_or_default()) }
                            td { (a.credential.as_str()) }
                            td { (a.status.as_str()) }
                            td { (a.last_used_at.map(ts).unwrap_or_default()) }
                        }
                    }
                }
            }
            nav.pager aria-label="Pages" {
                @if page_no > 1 { a href=(query(page_no - 1)) { "Previous page" } }
                span { "Page " (page_no) " of " (pages) }
                @if page_no < pages { a href=(query(page_no + 1)) { "Next page" } }
            }
            p { a href={(base) "/users/reset-all"} { "Reset every user of " (name) "…" } }
        },
    )
}

fn principal(p: &str) -> Result<Principal, ApiError> {
    p.parse::<Principal>()
        .map_err(|e| ApiError::bad_request(format!("invalid principal: {}", e.0)))
}

pub(crate) async fn user(
    session: Session,
    State(s): State<AppState>,
    Path((name, p)): Path<(String, String)>,
) -> Response {
    let result = async {
        let connection = s.connections.get(&name).await?.connection;
        let account = s
            .signin
            .resolve_account(&connection, Some(&principal(&p)?))
            .await?;
        let expiry = s.signin.token_expiry(&connection, &account).await?;
        Ok::<_, ApiError>((account, expiry))
    }
    .await;
    let (a, expiry) = match result {
        Ok(x) => x,
        Err(e) => return fail(&session, e),
    };
    let lapse = exgate_core::expiry::RefreshLapse::of(&a, s.signin.clock().now());
    let base = format!(
        "/admin/connections/{}/users/{}",
        enc(&name),
        enc(a.principal.as_str())
    );
    page(
        "User",
        Some(&session),
        html! {
            h1 { "User " (a.principal.as_str()) }
            table #details {
                tbody {
                    tr { th scope="row" { "Connection" } td { (name) } }
                    tr { th scope="row" { "Mailbox" } td { (a.mailbox.as_ref().map(ToString::to_string).unwrap_or_default()) } }
                    tr { th scope="row" { "Kind" } td { (a.credential.as_str()) } }
                    tr { th scope="row" { "Status" } td #status { (a.status.as_str()) @if let AccountStatus::NeedsSignIn { reason } = &a.status { ": " (reason) } } }
                    tr { th scope="row" { "Signed in" } td { (ts(a.created_at)) } }
                    tr { th scope="row" { "Last used" } td { (a.last_used_at.map(ts).unwrap_or_default()) } }
                    tr { th scope="row" { "Access token expires" } td { (expiry.map(ts).unwrap_or_default()) } }
                    @if let Some(l) = &lapse { tr { th scope="row" { "Refresh token" } td { (l.message()) } } }
                }
            }
            p { a.button href={(base) "/reset"} { "Reset this user…" } }
        },
    )
}

pub(crate) async fn reset_confirm(
    session: Session,
    Path((name, p)): Path<(String, String)>,
) -> Response {
    let action = format!("/admin/connections/{}/users/{}/reset", enc(&name), enc(&p));
    page(
        "Reset user",
        Some(&session),
        html! {
            h1 { "Reset " (p) "?" }
            p { "The gateway forgets this user's tokens; the user must sign in again before the application can reach the mailbox." }
            form method="post" action=(action) {
                (csrf_input(&session))
                input type="hidden" name="confirm" value="yes";
                button.danger type="submit" { "Yes, reset " (p) }
            }
            p { a href={"/admin/connections/" (enc(&name)) "/users/" (enc(&p))} { "Cancel" } }
        },
    )
}

pub(crate) async fn reset(
    session: Session,
    State(s): State<AppState>,
    Path((name, p)): Path<(String, String)>,
    axum::Form(form): Form,
) -> Response {
    if let Some(r) = check(&session, &form) {
        return r;
    }
    let principal = match principal(&p) {
        Ok(p) => p,
        Err(e) => return fail(&session, e),
    };
    if let Err(e) = s.signin.reset(&name, &principal).await {
        return fail(&session, e);
    }
    tracing::info!(session = %session.id, action = "account.reset", connection = %name, principal = %principal, "console action");
    Redirect::to(&format!(
        "/admin/connections/{}/users/{}",
        enc(&name),
        enc(principal.as_str())
    ))
    .into_response()
}

pub(crate) async fn reset_all_confirm(session: Session, Path(name): Path<String>) -> Response {
    page(
        "Reset every user",
        Some(&session),
        html! {
            h1 { "Reset every user of " (name) "?" }
            p { "The gateway forgets the tokens of every known user of this connection; each must sign in again." }
            form method="post" action={"/admin/connections/" (enc(&name)) "/users/reset-all"} {
                (csrf_input(&session))
                label for="confirm" { "Type the connection's name to confirm" }
                input #confirm type="text" name="confirm" required autocomplete="off";
                button.danger type="submit" { "Reset every user" }
            }
            p { a href={"/admin/connections/" (enc(&name)) "/users"} { "Cancel" } }
        },
    )
}

pub(crate) async fn reset_all(
    session: Session,
    State(s): State<AppState>,
    Path(name): Path<String>,
    axum::Form(form): Form,
) -> Response {
    if let Some(r) = check(&session, &form) {
        return r;
    }
    if field(&form, "confirm").map(str::trim) != Some(name.as_str()) {
        return fail(
            &session,
            ApiError::bad_request("the confirmation does not match the connection's name"),
        );
    }
    let n = match s.signin.reset_all(&name).await {
        Ok(n) => n,
        Err(e) => return fail(&session, e),
    };
    tracing::info!(session = %session.id, action = "account.reset-all", connection = %name, reset = n, "console action");
    page(
        "Reset",
        Some(&session),
        html! {
            h1 { "Reset" }
            p.notice.success role="status" { (n) " users of " (name) " must sign in again." }
            p { a href={"/admin/connections/" (enc(&name)) "/users"} { "Back to the known users" } }
        },
    )
}

// ---------------------------------------------------------------- static users

pub(crate) async fn static_users(
    session: Session,
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Response {
    let users = async {
        let c = s.connections.get(&name).await?.connection;
        s.connections.static_users(c.id).await
    }
    .await;
    let users = match users {
        Ok(u) => u,
        Err(e) => return fail(&session, e),
    };
    let base = format!("/admin/connections/{}/static-users", enc(&name));
    page(
        "Static users",
        Some(&session),
        html! {
            h1 { "Static users of " (name) }
            p { "A static user maps an application's principal to a mailbox the connection's own identity reaches (impersonation or delegated rights)." }
            table {
                thead { tr { th { "Principal" } th { "Mailbox" } th { "Access" } th { "Since" } th { span.visually-hidden { "Actions" } } } }
                tbody {
                    @for u in &users {
                        tr {
                            td { (u.principal.as_str()) }
                            td { (u.mailbox.to_string()) }
                            td { (u.access.as_str()) }
                            td { (ts(u.created_at)) }
                            td {
                                form.inline method="post" action={(base) "/" (enc(u.principal.as_str())) "/delete"} {
                                    (csrf_input(&session))
                                    button.danger type="submit" aria-label={"Remove " (u.principal.as_str())} { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Add a static user" }
            form method="post" action=(base) {
                (csrf_input(&session))
                label for="principal" { "Principal" span.hint { "The application's ID for the user." } }
                input #principal type="text" name="principal" required;
                label for="mailbox" { "Mailbox" }
                input #mailbox type="text" name="mailbox" required;
                label for="access" { "Access" }
                select #access name="access" {
                    option value="impersonation" { "impersonation" }
                    option value="delegation" { "delegation" }
                }
                button type="submit" { "Add" }
            }
        },
    )
}

pub(crate) async fn add_static_user(
    session: Session,
    State(s): State<AppState>,
    Path(name): Path<String>,
    axum::Form(form): Form,
) -> Response {
    if let Some(r) = check(&session, &form) {
        return r;
    }
    let result = async {
        let connection = s.connections.get(&name).await?.connection;
        let access = match field(&form, "access").unwrap_or("impersonation") {
            "impersonation" => MailboxAccess::Impersonation,
            "delegation" => MailboxAccess::Delegation,
            other => {
                return Err(ApiError::bad_request(format!(
                    "`{other}` is not an access kind; expected impersonation or delegation"
                )));
            }
        };
        let user = StaticUser {
            id: StaticUserId::new_random(),
            connection: connection.id,
            principal: principal(field(&form, "principal").unwrap_or_default().trim())?,
            mailbox: field(&form, "mailbox")
                .unwrap_or_default()
                .trim()
                .parse::<EmailAddress>()
                .map_err(|e| ApiError::bad_request(format!("invalid mailbox: {}", e.0)))?,
            access,
            created_at: s.signin.clock().now(),
        };
        s.connections.add_static_user(&user).await?;
        Ok(user.principal)
    }
    .await;
    match result {
        Ok(p) => {
            tracing::info!(session = %session.id, action = "static-user.add", connection = %name, principal = %p, "console action");
            Redirect::to(&format!("/admin/connections/{}/static-users", enc(&name))).into_response()
        }
        Err(e) => fail(&session, e),
    }
}

pub(crate) async fn delete_static_user(
    session: Session,
    State(s): State<AppState>,
    Path((name, p)): Path<(String, String)>,
    axum::Form(form): Form,
) -> Response {
    if let Some(r) = check(&session, &form) {
        return r;
    }
    let result = async {
        let connection = s.connections.get(&name).await?.connection;
        let p = principal(&p)?;
        let users = s.connections.static_users(connection.id).await?;
        let user = users.iter().find(|u| u.principal == p).ok_or_else(|| {
            ApiError::from(exgate_core::Error::NotFound {
                what: "static user",
                name: p.to_string(),
            })
        })?;
        s.connections.remove_static_user(user).await?;
        Ok::<_, ApiError>(p)
    }
    .await;
    match result {
        Ok(p) => {
            tracing::info!(session = %session.id, action = "static-user.remove", connection = %name, principal = %p, "console action");
            Redirect::to(&format!("/admin/connections/{}/static-users", enc(&name))).into_response()
        }
        Err(e) => fail(&session, e),
    }
}

// ---------------------------------------------------------------- end-user sign-in link

fn link_form(session: &Session, name: &str) -> Markup {
    html! {
        form method="post" action={"/admin/connections/" (enc(name)) "/sign-in-link"} {
            (csrf_input(session))
            label for="principal" { "Principal" span.hint { "Your application's ID for the user; the linked mailbox is stored under it." } }
            input #principal type="text" name="principal" required;
            label for="login_hint" { "Login hint" span.hint { "Optional: prefills the user name on Microsoft's sign-in page." } }
            input #login_hint type="text" name="login_hint";
            button type="submit" { "Make the link" }
        }
    }
}

pub(crate) async fn sign_in_link_form(session: Session, Path(name): Path<String>) -> Response {
    page(
        "Sign-in link",
        Some(&session),
        html! {
            h1 { "End-user sign-in link for " (name) }
            p { "A link a user opens to link their mailbox to the gateway (delegated connections). It is valid for ten minutes and once." }
            (link_form(&session, &name))
        },
    )
}

pub(crate) async fn sign_in_link(
    session: Session,
    State(s): State<AppState>,
    Path(name): Path<String>,
    axum::Form(form): Form,
) -> Response {
    if let Some(r) = check(&session, &form) {
        return r;
    }
    let principal = match principal(field(&form, "principal").unwrap_or_default().trim()) {
        Ok(p) => p,
        Err(e) => return fail(&session, e),
    };
    let hint = given(&form, "login_hint");
    let login = match s
        .signin
        .start_browser_login(
            &name,
            Some(principal.clone()),
            &s.redirect_uri(),
            hint.as_deref(),
        )
        .await
    {
        Ok(l) => l,
        Err(e) => return fail(&session, e),
    };
    tracing::info!(session = %session.id, action = "sign-in-link", connection = %name, principal = %principal, "console action");
    let mut resp = page(
        "Sign-in link",
        Some(&session),
        html! {
            h1 { "End-user sign-in link for " (name) }
            p { "Give this link to " (principal.as_str()) ": it opens Microsoft's sign-in page and returns to the gateway. Valid for ten minutes, once." }
            p { (copyable("link", &login.url)) }
            p { a #open-link href=(login.url) { "Open the link" } }
            h2 { "Another link" }
            (link_form(&session, &name))
        },
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    resp
}

// ---------------------------------------------------------------- API keys

async fn keys_page(session: &Session, s: &AppState, created: Option<(String, String)>) -> Response {
    let (keys, connections) = match (s.keys.list().await, s.connections.list().await) {
        (Ok(k), Ok(c)) => (k, c),
        (Err(e), _) | (_, Err(e)) => return fail(session, e),
    };
    let name_of = |id: &exgate_core::model::ConnectionId| {
        connections
            .iter()
            .find(|c| c.connection.id == *id)
            .map_or_else(|| id.to_string(), |c| c.connection.name.as_str().to_owned())
    };
    let mut resp = page(
        "API keys",
        Some(session),
        html! {
            h1 { "API keys" }
            @if let Some((name, key)) = &created {
                div.notice.success role="status" {
                    p { "The key " strong { (name) } " was created. Copy it now: it is shown this once and the gateway keeps only its hash." }
                    p { (copyable("new-key", key)) }
                }
            }
            table {
                thead { tr { th { "Name" } th { "Scope" } th { "Created" } th { "Last used" } th { "Revoked" } th { span.visually-hidden { "Actions" } } } }
                tbody {
                    @for k in &keys {
                        tr {
                            td { (k.name) }
                            td { @match &k.scope { KeyScope::Admin => { "admin" } KeyScope::Connections(ids) => { (ids.iter().map(&name_of).collect::<Vec<_>>().join(", ")) } } }
                            td { (ts(k.created_at)) }
                            td { (k.last_used_at.map(ts).unwrap_or_default()) }
                            td { (k.revoked_at.map(ts).unwrap_or_default()) }
                            td {
                                @if k.revoked_at.is_none() {
                                    form.inline method="post" action={"/admin/keys/" (k.id) "/revoke"} {
                                        (csrf_input(session))
                                        button.danger type="submit" aria-label={"Revoke " (k.name)} { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "New key" }
            form method="post" action="/admin/keys" {
                (csrf_input(session))
                label for="key-name" { "Name" span.hint { "To recognise the key by (the application that uses it)." } }
                input #key-name type="text" name="name" required;
                fieldset {
                    legend { "Scope" }
                    label { input #key-admin type="checkbox" name="admin" value="true"; " Admin key (may do everything)" }
                    @for c in &connections {
                        label { input type="checkbox" name="connection" value=(c.connection.name.as_str()); " Connection " (c.connection.name.as_str()) }
                    }
                }
                button type="submit" { "Create the key" }
            }
        },
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    resp
}

pub(crate) async fn keys(session: Session, State(s): State<AppState>) -> Response {
    keys_page(&session, &s, None).await
}

pub(crate) async fn create_key(
    session: Session,
    State(s): State<AppState>,
    axum::Form(form): Form,
) -> Response {
    if let Some(r) = check(&session, &form) {
        return r;
    }
    let name = given(&form, "name").unwrap_or_default();
    let admin = field(&form, "admin") == Some("true");
    let chosen: Vec<&str> = all(&form, "connection").collect();
    let scope = async {
        if admin {
            if !chosen.is_empty() {
                return Err(ApiError::bad_request(
                    "an admin key is not scoped to connections; untick the connections or the admin box",
                ));
            }
            return Ok(KeyScope::Admin);
        }
        let mut ids = Vec::new();
        for c in &chosen {
            ids.push(s.connections.get(c).await?.connection.id);
        }
        Ok(KeyScope::Connections(ids))
    }
    .await;
    let created = match scope {
        Ok(scope) => s.keys.create(&name, scope).await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match created {
        Ok((key, secret)) => {
            tracing::info!(session = %session.id, action = "key.create", key = %key.id, name = %key.name, "console action");
            keys_page(&session, &s, Some((key.name, secret.expose().to_owned()))).await
        }
        Err(e) => fail(&session, e),
    }
}

pub(crate) async fn revoke_key(
    session: Session,
    State(s): State<AppState>,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<CsrfOnly>,
) -> Response {
    if let Some(r) = session.check(form.csrf.as_deref()) {
        return r;
    }
    let Ok(uuid) = uuid::Uuid::parse_str(&id) else {
        return fail(&session, ApiError::bad_request("not a key ID"));
    };
    match s.keys.revoke(ApiKeyId(uuid)).await {
        Ok(k) => {
            tracing::info!(session = %session.id, action = "key.revoke", key = %k.id, "console action");
            Redirect::to("/admin/keys").into_response()
        }
        Err(e) => fail(&session, e),
    }
}

// ---------------------------------------------------------------- guided setup

pub(crate) async fn setup(
    session: Session,
    State(s): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let asked = !q.is_empty();
    let who: BTreeSet<&str> = all(&q, "who").collect();
    let protocols: BTreeSet<&str> = all(&q, "protocol").collect();
    let plan = asked.then(|| {
        needs_of(&q, &s)
            .and_then(|n| setup::plan(&n).map_err(|e| exgate_core::Error::from(e).into()))
    });
    let value = |k: &str| field(&q, k).unwrap_or_default().to_owned();
    let public_url =
        field(&q, "public_url").map_or_else(|| s.public_url.clone(), ToOwned::to_owned);
    page(
        "Guided setup",
        Some(&session),
        html! {
            h1 { "Guided setup" }
            p { "Say what the gateway will do; the page lists what to register in Entra ID, the consent link and the PowerShell, then the connection to create." }
            form method="get" action="/admin/setup" {
                label for="setup-name" { "Name" span.hint { "The base of the connections' names and the app registration's display name." } }
                input #setup-name type="text" name="name" value=(field(&q, "name").unwrap_or("exgate")) required;
                fieldset {
                    legend { "Who signs in" }
                    @for a in setup::Actor::ALL {
                        label { input type="checkbox" name="who" value=(a.as_str()) checked[who.contains(a.as_str())]; " " (a.as_str()) ": " (a.describe()) }
                    }
                }
                fieldset {
                    legend { "Protocols" }
                    @for p in ["graph", "ews", "imap", "pop", "smtp"] {
                        label { input type="checkbox" name="protocol" value=(p) checked[protocols.contains(p)]; " " (p) }
                    }
                }
                label for="public_url" { "Gateway's public URL" span.hint { "Where users' browsers reach the gateway." } }
                input #public_url type="text" name="public_url" value=(public_url);
                label for="tenant" { "Tenant" span.hint { "Optional: the Directory (tenant) ID, filled into the commands." } }
                input #tenant type="text" name="tenant" value=(value("tenant"));
                label for="mailboxes" { "Mailboxes" span.hint { "A service's mailboxes, separated by commas." } }
                input #mailboxes type="text" name="mailboxes" value=(value("mailboxes"));
                label for="credential" { "Credential" }
                select #credential name="credential" {
                    option value="secret" selected[value("credential") != "certificate"] { "client secret" }
                    option value="certificate" selected[value("credential") == "certificate"] { "certificate" }
                }
                button type="submit" { "Show the plan" }
            }
            @match plan {
                None => {}
                Some(Err(e)) => { div.notice.error role="alert" { p { (e.message) } @if let Some(h) = &e.hint { p { (h) } } } }
                Some(Ok(r)) => { (plan_markup(&r)) }
            }
        },
    )
}

fn needs_of(q: &[(String, String)], s: &AppState) -> Result<setup::Needs, ApiError> {
    let bad = |e: exgate_core::model::ParseError| ApiError::bad_request(e.0);
    let mut n = setup::Needs::new(field(q, "name").unwrap_or("exgate").trim());
    for w in all(q, "who") {
        n.actors.insert(w.parse().map_err(bad)?);
    }
    for p in all(q, "protocol") {
        n.protocols.insert(p.parse().map_err(bad)?);
    }
    let url = given(q, "public_url").unwrap_or_else(|| s.public_url.clone());
    n.public_url = Some(url.parse().map_err(bad)?);
    if let Some(m) = given(q, "mailboxes") {
        n.mailboxes = m
            .split([',', ' '])
            .filter(|x| !x.is_empty())
            .map(|x| x.parse::<EmailAddress>().map_err(bad))
            .collect::<Result<_, _>>()?;
    }
    if let Some(c) = given(q, "credential") {
        n.credential = c.parse().map_err(bad)?;
    }
    if let Some(t) = given(q, "tenant") {
        n.ids.tenant = Some(t.parse().map_err(bad)?);
    }
    Ok(n)
}

fn plan_markup(r: &setup::Requirements) -> Markup {
    html! {
        @if let Some(app) = &r.app {
            h2 { "1. Register the app in Entra ID" }
            table {
                tbody {
                    tr { th scope="row" { "Display name" } td { (copyable("display-name", &app.display_name)) } }
                    tr { th scope="row" { "Supported account types" } td { (app.sign_in_audience) } }
                    @for (i, u) in app.web_redirect_uris.iter().enumerate() {
                        tr { th scope="row" { "Web redirect URI" } td { (copyable(&format!("web-redirect-{i}"), u)) } }
                    }
                    @for (i, u) in app.public_client_redirect_uris.iter().enumerate() {
                        tr { th scope="row" { "Mobile and desktop redirect URI" } td { (copyable(&format!("public-redirect-{i}"), u)) } }
                    }
                    tr { th scope="row" { "Allow public client flows" } td { @if app.allow_public_client_flows { "Yes" } @else { "No" } } }
                }
            }
            h3 { "API permissions" }
            ul {
                @for p in &app.permissions {
                    li {
                        (p.display_name) " (" (copyable(&format!("api-{}", p.app_id), &p.app_id)) ")"
                        @if !p.delegated.is_empty() { br; "Delegated: " (p.delegated.join(", ")) }
                        @if !p.application.is_empty() { br; "Application: " (p.application.join(", ")) }
                    }
                }
            }
            h3 { "Admin consent" }
            p { "An administrator opens this link to grant every permission for the organization:" }
            p { (copyable("consent-url", &app.admin_consent_url)) }
            @if let Some(c) = &app.credential {
                h3 { "Credential" }
                p { (c.advice) }
            }
        }
        @if !r.powershell.is_empty() {
            h2 { "2. PowerShell" }
            @for (i, step) in r.powershell.iter().enumerate() {
                p { (step.why) }
                pre #(format!("ps-{i}")) { (step.command) }
                button.secondary type="button" data-copy=(format!("ps-{i}")) hidden { "Copy" }
            }
        }
        h2 { "3. Connections to create" }
        ul {
            @for c in &r.connections {
                li {
                    strong { (c.name) } ": " (c.auth.to_string())
                    @if let Some(u) = &c.redirect_uri { ", redirect URI " code { (u) } }
                    " — " a href="/admin/connections/new" { "create it" }
                }
            }
        }
        @if !r.notes.is_empty() {
            h2 { "Notes" }
            ul { @for n in &r.notes { li { (n) } } }
        }
    }
}
