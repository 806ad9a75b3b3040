//! `exgate login | logout | accounts | token`: parse, call core's `SignIn`, render.

use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::Context as _;
use exgate_core::auth::{LoopbackReceiver, PASSWORD_FLOW_WARNING, RedirectParams};
use exgate_core::model::{
    Account, AccountStatus, Auth, Connection, DelegatedFlow, EndpointUrl, InvalidInput, Principal,
    Resource,
};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;

use crate::args::{AccountArgs, AccountsCommand, LoginArgs};
use crate::{Context, UsageError, input};
use exgate_core::expiry::RefreshLapse;

/// How long the CLI waits for the browser to come back.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(5 * 60);

const SUCCESS_PAGE: &str = "<!doctype html><title>exgate</title><h1>Signed in</h1><p>You can close this window and return to the terminal.</p>";
const FAILURE_PAGE: &str =
    "<!doctype html><title>exgate</title><h1>Sign-in failed</h1><p>The terminal says why.</p>";

fn principal(name: Option<&str>) -> anyhow::Result<Option<Principal>> {
    name.map(|n| {
        n.parse::<Principal>()
            .map_err(|e| InvalidInput::new("account", e.0))
    })
    .transpose()
    .map_err(|e| exgate_core::Error::from(e).into())
}

enum Method {
    Browser,
    Manual,
    DeviceCode,
    Password,
}

fn method(args: &LoginArgs, connection: &Connection) -> Method {
    if args.browser {
        Method::Browser
    } else if args.manual {
        Method::Manual
    } else if args.device_code {
        Method::DeviceCode
    } else if args.password {
        Method::Password
    } else {
        match &connection.settings.auth {
            Auth::OAuth2Delegated(d) => match d.flow {
                DelegatedFlow::AuthorizationCode => Method::Browser,
                DelegatedFlow::DeviceCode => Method::DeviceCode,
                DelegatedFlow::Password => Method::Password,
            },
            _ => Method::Browser,
        }
    }
}

/// The connection's registered redirect URI (default `http://localhost`).
fn registered_redirect(connection: &Connection) -> Option<EndpointUrl> {
    match &connection.settings.auth {
        Auth::OAuth2Delegated(d) => d.redirect_uri.clone(),
        _ => None,
    }
}

/// Why no browser can be opened on this machine, when that is known before trying: no
/// `$BROWSER`, and on Linux and the BSDs no graphical session (`DISPLAY`, `WAYLAND_DISPLAY`).
fn no_browser_here() -> Option<&'static str> {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if set("BROWSER") || cfg!(any(target_os = "macos", target_os = "windows")) {
        return None;
    }
    (!set("DISPLAY") && !set("WAYLAND_DISPLAY"))
        .then_some("no graphical session (DISPLAY and WAYLAND_DISPLAY are unset) and no BROWSER")
}

/// Starts the user's browser on `url`: `$BROWSER`, else the platform's opener. The child is
/// answered so its exit can be watched; an error says why nothing could be started.
fn open_browser(url: &str) -> Result<tokio::process::Child, String> {
    if let Some(reason) = no_browser_here() {
        return Err(reason.to_owned());
    }
    let program = std::env::var("BROWSER").unwrap_or_else(|_| {
        if cfg!(target_os = "macos") {
            "open".into()
        } else {
            "xdg-open".into()
        }
    });
    tokio::process::Command::new(&program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| format!("`{program}` could not be started ({e})"))
}

/// Waits for the browser opener to end; answers why it failed, or never if it succeeded (or
/// there is none to watch), so the caller's wait for the redirect goes on.
async fn opener_failure(opener: &mut Option<tokio::process::Child>) -> String {
    let Some(child) = opener else {
        return std::future::pending().await;
    };
    let result = child.wait().await;
    *opener = None;
    match result {
        Ok(status) if status.success() => std::future::pending().await,
        Ok(status) => format!("the browser opener failed ({status})"),
        Err(e) => format!("the browser opener failed ({e})"),
    }
}

/// What to tell a user whose browser cannot open: the other ways to sign in, as commands that run.
fn headless_advice(reason: &str, name: &str, args: &LoginArgs) -> String {
    let given = crate::connection::Given {
        connection: Some(name.to_owned()),
        account: args.target.account.clone(),
        mailbox: None,
    };
    let login = given.login(None);
    format!(
        "no browser could be opened: {reason}.\n\
         Open the address above in a browser on any machine that can reach this one's \
         localhost, or sign in another way:\n  {login} --manual        \
         (any browser; paste the address it ends on)\n  {login} --device-code   \
         (enter a code on another device)\nStill waiting for the browser to come back…"
    )
}

pub(crate) async fn login(ctx: &Context, args: &LoginArgs) -> anyhow::Result<()> {
    let entry = ctx
        .connections
        .resolve(args.target.connection.as_deref())
        .await?;
    let connection = entry.connection;
    let name = connection.name.to_string();
    let who = principal(args.target.account.as_deref())?;
    // Unlocked: each write takes stderr's lock for itself. Holding the lock across the awaits
    // below deadlocked with debug logging, whose lines (from SQLite's worker thread too) wait
    // for the same lock.
    let mut err = std::io::stderr();
    let account = match method(args, &connection) {
        Method::Browser => {
            let registered = registered_redirect(&connection);
            if registered.as_ref().is_some_and(|r| !r.is_loopback()) {
                return Err(UsageError(format!(
                    "connection `{name}` redirects to {}, which is not this machine; use --manual (and paste the address the browser ends on) or --device-code",
                    registered.map(|r| r.to_string()).unwrap_or_default()
                ))
                .into());
            }
            let receiver = LoopbackReceiver::bind()
                .await
                .context("opening a local port for the sign-in redirect")?;
            let path = registered.map_or_else(|| "/".to_owned(), |r| r.as_url().path().to_owned());
            let redirect_uri = receiver.redirect_uri(&path);
            let started = ctx
                .signin
                .start_browser_login(&name, who, &redirect_uri, args.login_hint.as_deref())
                .await?;
            writeln!(
                err,
                "Sign in to connection `{name}` in your browser. If it does not open, visit:\n\n  {}\n",
                started.url
            )?;
            err.flush()?;
            let mut opener = match open_browser(&started.url) {
                Ok(child) => Some(child),
                Err(reason) => {
                    writeln!(err, "{}", headless_advice(&reason, &name, args))?;
                    err.flush()?;
                    None
                }
            };
            let receive = tokio::time::timeout(
                BROWSER_TIMEOUT,
                receiver.receive(SUCCESS_PAGE, FAILURE_PAGE),
            );
            tokio::pin!(receive);
            let received = loop {
                tokio::select! {
                    received = &mut receive => break received,
                    reason = opener_failure(&mut opener) => {
                        writeln!(err, "{}", headless_advice(&reason, &name, args))?;
                        err.flush()?;
                    }
                }
            };
            let params = received.map_err(|_| {
                let given = crate::connection::Given {
                    connection: Some(name.clone()),
                    account: args.target.account.clone(),
                    mailbox: None,
                };
                UsageError(format!(
                    "no browser came back within 5 minutes; run `{}` again, or add --manual or --device-code",
                    given.login(None)
                ))
            })??;
            ctx.signin.finish_browser_login(params).await?
        }
        Method::Manual => {
            let redirect_uri = registered_redirect(&connection)
                .map_or_else(|| "http://localhost".to_owned(), |r| r.to_string());
            let started = ctx
                .signin
                .start_browser_login(&name, who, &redirect_uri, args.login_hint.as_deref())
                .await?;
            writeln!(
                err,
                "Open this address in any browser and sign in:\n\n  {}\n\nThe browser then goes to {redirect_uri}, which may not load. Copy the full address it ends on and paste it here:",
                started.url
            )?;
            err.flush()?;
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the pasted address")?;
            let params = RedirectParams::parse(&line).map_err(exgate_core::Error::from)?;
            ctx.signin.finish_browser_login(params).await?
        }
        Method::DeviceCode => {
            let started = ctx.signin.start_device_login(&name).await?;
            let a = &started.authorization;
            let message = a.message.clone().unwrap_or_else(|| {
                format!(
                    "To sign in, open {} and enter the code {}.",
                    a.verification_uri, a.user_code
                )
            });
            writeln!(err, "{message}")?;
            err.flush()?;
            ctx.signin.finish_device_login(started, who).await?
        }
        Method::Password => {
            writeln!(err, "warning: {PASSWORD_FLOW_WARNING}")?;
            let username = match &args.username {
                Some(u) => u.clone(),
                None if input::can_prompt() => {
                    write!(err, "user name: ")?;
                    err.flush()?;
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line)?;
                    line.trim().to_owned()
                }
                None => return Err(UsageError("--password needs --username".into()).into()),
            };
            let password = match &args.password_file {
                Some(path) => input::read_secret_file(path, "password")?,
                None => input::prompt("password")?,
            };
            ctx.signin
                .password_login(&name, who, &username, &password)
                .await?
        }
    };
    let mailbox = account
        .mailbox
        .as_ref()
        .map(|m| format!(" ({m})"))
        .unwrap_or_default();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "signed in as {}{mailbox} on connection {name}",
        account.principal
    )?;
    Ok(())
}

pub(crate) async fn logout(ctx: &Context, target: &AccountArgs) -> anyhow::Result<()> {
    let entry = ctx
        .connections
        .resolve(target.connection.as_deref())
        .await?;
    let who = principal(target.account.as_deref())?;
    let account = ctx
        .signin
        .logout(entry.connection.name.as_str(), who.as_ref())
        .await?;
    writeln!(
        std::io::stdout().lock(),
        "signed out {} from connection {}",
        account.principal,
        entry.connection.name
    )?;
    Ok(())
}

pub(crate) async fn token(
    ctx: &Context,
    target: &AccountArgs,
    resource: &str,
) -> anyhow::Result<()> {
    let resource = resource
        .parse::<Resource>()
        .map_err(|e| exgate_core::Error::from(InvalidInput::new("resource", e.0)))?;
    let entry = ctx
        .connections
        .resolve(target.connection.as_deref())
        .await?;
    let who = principal(target.account.as_deref())?;
    let token = ctx
        .signin
        .token(entry.connection.name.as_str(), who.as_ref(), resource)
        .await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", token.secret.expose())?;
    out.flush()?;
    Ok(())
}

#[derive(Debug, Serialize)]
struct AccountView {
    principal: String,
    mailbox: Option<String>,
    credential: &'static str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_reason: Option<String>,
    created_at: String,
    last_used_at: Option<String>,
    /// When the refresh token lapses if the account stays unused (90 days after its last use).
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<RefreshLapseView>,
}

#[derive(Debug, Serialize)]
struct RefreshLapseView {
    /// RFC 3339.
    lapses: String,
    days_left: i64,
    /// Within 14 days, or lapsed.
    warning: bool,
    message: String,
}

fn ts(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

impl AccountView {
    fn new(a: &Account, now: time::OffsetDateTime) -> Self {
        Self {
            principal: a.principal.to_string(),
            mailbox: a.mailbox.as_ref().map(ToString::to_string),
            credential: a.credential.as_str(),
            status: a.status.as_str(),
            status_reason: match &a.status {
                AccountStatus::NeedsSignIn { reason } => Some(reason.clone()),
                AccountStatus::Active => None,
            },
            created_at: ts(a.created_at),
            last_used_at: a.last_used_at.map(ts),
            refresh_token: RefreshLapse::of(a, now).map(|l| RefreshLapseView {
                lapses: ts(l.lapses),
                days_left: l.days_left,
                warning: l.warning,
                message: l.message(),
            }),
        }
    }
}

/// Warns on stderr about accounts whose refresh token lapses within 14 days (or has).
fn warn_lapses(views: &[AccountView]) -> anyhow::Result<()> {
    let mut err = std::io::stderr().lock();
    for v in views {
        if let Some(l) = v.refresh_token.as_ref().filter(|l| l.warning) {
            writeln!(err, "warning: account `{}`: {}", v.principal, l.message)?;
        }
    }
    Ok(())
}

pub(crate) async fn accounts(ctx: &Context, cmd: &AccountsCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        AccountsCommand::List {
            connection,
            filter,
            json,
        } => {
            let entry = ctx.connections.resolve(connection.as_deref()).await?;
            let accounts = ctx
                .signin
                .accounts(entry.connection.name.as_str(), filter.as_deref())
                .await?;
            let now = ctx.signin.clock().now();
            let views: Vec<AccountView> =
                accounts.iter().map(|a| AccountView::new(a, now)).collect();
            warn_lapses(&views)?;
            if *json {
                serde_json::to_writer_pretty(&mut out, &views)?;
                writeln!(out)?;
            } else if views.is_empty() {
                let given = crate::connection::Given {
                    connection: Some(entry.connection.name.to_string()),
                    ..Default::default()
                };
                writeln!(
                    out,
                    "no accounts on connection {}; sign one in with `{}`",
                    entry.connection.name,
                    given.login(None)
                )?;
            } else {
                let width = views
                    .iter()
                    .map(|v| v.principal.len())
                    .max()
                    .unwrap_or(0)
                    .max(9);
                let mwidth = views
                    .iter()
                    .map(|v| v.mailbox.as_deref().unwrap_or("-").len())
                    .max()
                    .unwrap_or(0)
                    .max(7);
                writeln!(
                    out,
                    "{:<width$}  {:<mwidth$}  {:<13}  {:<25}  REFRESH TOKEN LAPSES",
                    "PRINCIPAL", "MAILBOX", "STATUS", "LAST USED"
                )?;
                for v in &views {
                    let lapse = v.refresh_token.as_ref().map_or_else(
                        || "-".to_owned(),
                        |l| {
                            let date = l.lapses.get(..10).unwrap_or(&l.lapses);
                            if l.warning {
                                format!("{date} ({} days!)", l.days_left)
                            } else {
                                date.to_owned()
                            }
                        },
                    );
                    writeln!(
                        out,
                        "{:<width$}  {:<mwidth$}  {:<13}  {:<25}  {lapse}",
                        v.principal,
                        v.mailbox.as_deref().unwrap_or("-"),
                        v.status,
                        v.last_used_at.as_deref().unwrap_or("-")
                    )?;
                }
            }
        }
        AccountsCommand::Show {
            principal: p,
            connection,
            json,
        } => {
            let entry = ctx.connections.resolve(connection.as_deref()).await?;
            let who = principal(Some(p))?;
            let account = ctx
                .signin
                .resolve_account(&entry.connection, who.as_ref())
                .await?;
            let view = AccountView::new(&account, ctx.signin.clock().now());
            warn_lapses(std::slice::from_ref(&view))?;
            if *json {
                serde_json::to_writer_pretty(&mut out, &view)?;
                writeln!(out)?;
            } else {
                writeln!(out, "principal:  {}", view.principal)?;
                writeln!(out, "connection: {}", entry.connection.name)?;
                writeln!(
                    out,
                    "mailbox:    {}",
                    view.mailbox.as_deref().unwrap_or("-")
                )?;
                writeln!(out, "credential: {}", view.credential)?;
                writeln!(out, "status:     {}", view.status)?;
                if let Some(reason) = &view.status_reason {
                    writeln!(out, "reason:     {reason}")?;
                }
                writeln!(out, "created:    {}", view.created_at)?;
                writeln!(
                    out,
                    "last used:  {}",
                    view.last_used_at.as_deref().unwrap_or("-")
                )?;
                if let Some(l) = &view.refresh_token {
                    writeln!(out, "refresh:    {}", l.message)?;
                }
            }
        }
        AccountsCommand::Reset {
            principal: p,
            connection,
        } => {
            let entry = ctx.connections.resolve(connection.as_deref()).await?;
            let who =
                principal(Some(p))?.ok_or_else(|| UsageError("an account is required".into()))?;
            let account = ctx
                .signin
                .reset(entry.connection.name.as_str(), &who)
                .await?;
            writeln!(out, "reset {}; it must sign in again", account.principal)?;
        }
        AccountsCommand::ResetAll { connection } => {
            let entry = ctx.connections.resolve(connection.as_deref()).await?;
            let n = ctx.signin.reset_all(entry.connection.name.as_str()).await?;
            writeln!(
                out,
                "reset {n} account(s) of connection {}",
                entry.connection.name
            )?;
        }
    }
    Ok(())
}
