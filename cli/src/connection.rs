//! `exgate connection …`: map arguments to a core `ConnectionSpec`, call the catalogue, render.

use std::io::Write;

use anyhow::Context as _;
use exgate_core::connections::{ConnectionEntry, Source};
use exgate_core::diagnose::{self, Report, Status, TestOptions};
use exgate_core::expiry::{CredentialExpiry, Warning};
use exgate_core::model::{
    Auth, ClientCredential, Connection, ConnectionSpec, DelegatedAuth, InvalidInput, Target,
};
use exgate_core::{Error as CoreError, ErrorKind};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;

use crate::Context;
use crate::args::{ConnectionArgs, ConnectionCommand};
use crate::input;

fn spec_from(args: &ConnectionArgs) -> ConnectionSpec {
    ConnectionSpec {
        target: args.target.clone(),
        cloud: args.cloud.clone(),
        tenant: args.tenant.clone(),
        server_version: args.server_version.clone(),
        ews_url: args.ews_url.clone(),
        backend: args.backend.clone(),
        auth: args.auth.clone(),
        client_id: args.client_id.clone(),
        flow: args.flow.clone(),
        redirect_uri: args.redirect_uri.clone(),
        scopes: (!args.scopes.is_empty()).then(|| args.scopes.clone()),
        return_urls: (!args.return_urls.is_empty()).then(|| args.return_urls.clone()),
        authority: args.authority.clone(),
        resource: args.resource.clone(),
        username: args.username.clone(),
        send: args.send.clone(),
        imap_url: args.imap_url.clone(),
        pop_url: args.pop_url.clone(),
        smtp_url: args.smtp_url.clone(),
        credential_expires: args.credential_expires.clone(),
        ..ConnectionSpec::default()
    }
}

/// A secret the chosen auth needs but was not given, which a terminal user can type now.
fn missing_secret(err: &CoreError) -> Option<&'static str> {
    match err {
        CoreError::Invalid(InvalidInput {
            field,
            missing: true,
            ..
        }) => match *field {
            "client_secret" => Some("client secret value"),
            "password" => Some("password"),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) async fn run(ctx: &Context, cmd: &ConnectionCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        ConnectionCommand::Add {
            name,
            settings,
            secrets,
            autodiscover,
            trust_hosts,
        } => {
            let mut spec = spec_from(settings);
            input::read_secrets(secrets, &mut spec)?;
            if let Some(address) = autodiscover {
                if spec.password.is_none()
                    && matches!(spec.auth.as_deref(), Some("basic" | "ntlm"))
                    && input::can_prompt()
                {
                    spec.password = Some(input::prompt("password")?);
                }
                let found = match ctx
                    .mailboxes
                    .discover_ews(&spec, address, trust_hosts)
                    .await
                {
                    Ok(found) => found,
                    Err(e) => {
                        if let CoreError::Autodiscover(a) = &e {
                            let mut err = std::io::stderr().lock();
                            writeln!(err, "autodiscover for {address}:")?;
                            for attempt in a.attempts() {
                                writeln!(
                                    err,
                                    "  {} {}: {}",
                                    attempt.method, attempt.url, attempt.outcome
                                )?;
                            }
                        }
                        return Err(e.into());
                    }
                };
                writeln!(out, "autodiscover for {address}:")?;
                for attempt in &found.attempts {
                    writeln!(
                        out,
                        "  {} {}: {}",
                        attempt.method, attempt.url, attempt.outcome
                    )?;
                }
                writeln!(out, "EWS URL: {} (for {})", found.ews_url, found.address)?;
                spec.ews_url = Some(found.ews_url.to_string());
            }
            let added = match ctx.connections.add(name, &spec).await {
                Err(e) if input::can_prompt() && missing_secret(&e).is_some() => {
                    let label = missing_secret(&e).unwrap_or("secret");
                    let secret = input::prompt(label)?;
                    if label == "password" {
                        spec.password = Some(secret);
                    } else {
                        spec.client_secret = Some(secret);
                    }
                    ctx.connections.add(name, &spec).await?
                }
                other => other?,
            };
            writeln!(out, "added connection {} ({})", added.name, added.id)?;
        }
        ConnectionCommand::List { json } => {
            let all = ctx.connections.list().await?;
            warn_clashes(ctx, None).await?;
            let now = ctx.signin.clock().now();
            let views: Vec<_> = all.iter().map(|e| ConnectionView::new(e, now)).collect();
            warn_expiry(&views)?;
            if *json {
                serde_json::to_writer_pretty(&mut out, &views)?;
                writeln!(out)?;
            } else if all.is_empty() {
                writeln!(
                    out,
                    "no connections yet; add one with `exgate connection add NAME …` (see --help)"
                )?;
            } else {
                write_table(&mut out, &all, &views)?;
            }
        }
        ConnectionCommand::Show {
            name,
            json,
            from_graph,
        } => {
            // Where a declared and a stored connection share the name, the declared one is
            // shown, with a warning about the other.
            let clash = warn_clashes(ctx, Some(name)).await?;
            let entry = match clash {
                true => ctx
                    .connections
                    .list()
                    .await?
                    .into_iter()
                    .find(|e| {
                        e.connection.name.as_str().eq_ignore_ascii_case(name)
                            && matches!(e.source, Source::File(_))
                    })
                    .ok_or_else(|| CoreError::NotFound {
                        what: "connection",
                        name: name.clone(),
                    })?,
                false => ctx.connections.get(name).await?,
            };
            let now = ctx.signin.clock().now();
            let mut view = ConnectionView::new(&entry, now);
            if *from_graph {
                let answer = exgate_core::expiry::graph::read(&entry.connection, &ctx.signin).await;
                view.credential = expiry_view(
                    &entry.connection.settings,
                    entry.connection.name.as_str(),
                    answer.expires(),
                    now,
                );
                view.from_graph = Some(answer.evidence());
            }
            warn_expiry(std::slice::from_ref(&view))?;
            if *json {
                serde_json::to_writer_pretty(&mut out, &view)?;
                writeln!(out)?;
            } else {
                write_details(&mut out, &view)?;
            }
        }
        ConnectionCommand::Edit {
            name,
            settings,
            secrets,
            remove_credential,
            clear_credential_expires,
        } => {
            let mut change = spec_from(settings);
            input::read_secrets(secrets, &mut change)?;
            if *clear_credential_expires {
                change.credential_expires = Some("none".into());
            }
            if change == ConnectionSpec::default() && !remove_credential {
                return Err(crate::UsageError(
                    "nothing to change: give the settings to change, such as --tenant or --client-secret-file".into(),
                )
                .into());
            }
            let edited = ctx
                .connections
                .edit(name, change, *remove_credential)
                .await?;
            writeln!(out, "updated connection {}", edited.name)?;
        }
        ConnectionCommand::Remove { name } => {
            ctx.connections.remove(name).await?;
            writeln!(out, "removed connection {name}")?;
        }
        ConnectionCommand::Test {
            name,
            account,
            mailbox,
            json,
        } => {
            let options = TestOptions {
                account: account.clone(),
                mailbox: mailbox.clone(),
                redirect_uri: None,
            };
            let report = diagnose::test_connection(
                &ctx.connections,
                &ctx.signin,
                &ctx.mailboxes,
                name,
                &options,
            )
            .await?;
            let view = TestView::from(&report);
            if *json {
                serde_json::to_writer_pretty(&mut out, &view)?;
                writeln!(out)?;
            } else {
                write_test(&mut out, &view)?;
            }
            out.flush().context("writing to stdout")?;
            if !report.ok {
                return Err(TestNotOk(test_summary(&view)).into());
            }
        }
    }
    out.flush().context("writing to stdout")?;
    Ok(())
}

/// Warns on stderr about every credential that expires within 30 days or has expired.
fn warn_expiry(views: &[ConnectionView]) -> anyhow::Result<()> {
    let mut err = std::io::stderr().lock();
    for v in views {
        if let Some(c) = v.credential.as_ref().filter(|c| c.warning.is_some()) {
            writeln!(err, "warning: connection `{}`: {}", v.name, c.message)?;
        }
    }
    Ok(())
}

/// Warns on stderr about every declared connection whose name a stored one also has (only
/// `name`'s, when given); answers whether there was one.
async fn warn_clashes(ctx: &Context, name: Option<&str>) -> anyhow::Result<bool> {
    let mut found = false;
    for clash in ctx.connections.clashes().await? {
        if name.is_none_or(|n| clash.name.eq_ignore_ascii_case(n)) {
            writeln!(std::io::stderr(), "warning: {clash}")?;
            found = true;
        }
    }
    Ok(found)
}

/// The connection, account and mailbox the user gave (by flag, environment or, for `exgate
/// connection …`, by name), so a command printed in a hint repeats them and runs as printed.
#[derive(Debug, Default, Clone)]
pub(crate) struct Given {
    pub(crate) connection: Option<String>,
    pub(crate) account: Option<String>,
    pub(crate) mailbox: Option<String>,
}

impl Given {
    /// Reads `--connection`, `--account` and `--mailbox` wherever in the subcommand chain they
    /// were given, and the NAME of `exgate connection add|show|edit|remove|test NAME`.
    pub(crate) fn from_matches(matches: &clap::ArgMatches) -> Self {
        let mut given = Self::default();
        let is_connection_command = matches.subcommand_name() == Some("connection");
        let mut m = Some(matches);
        while let Some(current) = m {
            let value = |id: &str| current.try_get_one::<String>(id).ok().flatten().cloned();
            given.connection = given.connection.or_else(|| value("connection"));
            if is_connection_command {
                given.connection = given.connection.or_else(|| value("name"));
            }
            given.account = given.account.or_else(|| value("account"));
            given.mailbox = given.mailbox.or_else(|| value("mailbox"));
            m = current.subcommand().map(|(_, sub)| sub);
        }
        given
    }

    /// ` -c NAME` when the connection is known, else nothing (exgate then picks the only one,
    /// as it did for the command that failed).
    fn connection_flag(&self) -> String {
        self.connection
            .as_deref()
            .map(|c| format!(" -c {}", shell_quote(c)))
            .unwrap_or_default()
    }

    /// The `exgate login` that signs in the account the failed command acted for.
    pub(crate) fn login(&self, principal: Option<&str>) -> String {
        let account = self
            .account
            .as_deref()
            .or(principal.filter(|p| !p.is_empty()));
        let account = account
            .map(|a| format!(" -a {}", shell_quote(a)))
            .unwrap_or_default();
        format!("exgate login{}{account}", self.connection_flag())
    }

    /// `text` with every command in it completed by what the user gave: `exgate login` with
    /// `-c`/`-a`, `exgate accounts list` with `-c`, and the `NAME` of `exgate connection edit
    /// NAME` replaced by the connection's name when it is known.
    pub(crate) fn complete(&self, text: &str, principal: Option<&str>) -> String {
        let mut text = text
            .replace("`exgate login`", &format!("`{}`", self.login(principal)))
            .replace(
                "`exgate accounts list`",
                &format!("`exgate accounts list{}`", self.connection_flag()),
            );
        if let Some(name) = &self.connection {
            text = text.replace(
                "exgate connection edit NAME",
                &format!("exgate connection edit {}", shell_quote(name)),
            );
        }
        text
    }
}

/// `s` as one word for a POSIX shell.
pub(crate) fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./@:=,+%".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// What to do about an error, when the message alone does not say; every command in it runs as
/// printed (see [`Given::complete`]).
pub(crate) fn hint(err: &CoreError, given: &Given) -> Option<String> {
    let principal = match err {
        CoreError::NeedsSignIn { principal, .. } => Some(principal.as_str()),
        _ => None,
    };
    let hint = match bare_hint(err) {
        // Whatever the fix says, a user who must sign in gets the command that does it.
        Some(h) if err.kind() == ErrorKind::NeedsSignIn && !h.contains("`exgate login") => {
            Some(format!("{h}; run `exgate login`"))
        }
        None if err.kind() == ErrorKind::NeedsSignIn => Some("sign in with `exgate login`".into()),
        other => other,
    };
    hint.map(|h| given.complete(&h, principal))
}

fn bare_hint(err: &CoreError) -> Option<String> {
    match err {
        CoreError::AlreadyExists { name, .. } => Some(format!(
            "choose another name, or change it with `exgate connection edit {name} …`"
        )),
        CoreError::NotFound {
            what: "connection",
            name,
        } if name == "(any)" => Some("add one with `exgate connection add NAME …`".into()),
        CoreError::NotFound {
            what: "connection", ..
        } => Some("`exgate connection list` shows the connections there are".into()),
        CoreError::NotFound {
            what: "account", ..
        } => Some("`exgate accounts list` shows the accounts there are".into()),
        CoreError::NeedsSignIn { .. } => Some("sign in with `exgate login`".into()),
        CoreError::Mailbox(m) => m.hint().map(str::to_owned),
        CoreError::Auth(e) => match e.fix() {
            Some(fix) => Some(fix.to_owned()),
            None if e.needs_sign_in() => Some("sign in again with `exgate login`".into()),
            None => None,
        },
        CoreError::Invalid(InvalidInput {
            field: "connection",
            ..
        }) => Some("pass --connection NAME (or set EXGATE_CONNECTION)".into()),
        CoreError::Invalid(InvalidInput {
            field: "account", ..
        }) => Some(
            "pass --account NAME (or set EXGATE_ACCOUNT); `exgate accounts list` shows them".into(),
        ),
        CoreError::Invalid(InvalidInput { field, .. }) => match *field {
            "client_secret" if missing_secret(err).is_some() => Some(
                "give the secret's value with --client-secret-file FILE (`-` reads stdin) or \
                 --ask-client-secret, or a certificate with --certificate FILE"
                    .into(),
            ),
            "password" if missing_secret(err).is_some() => Some(
                "give the password with --password-file FILE (`-` reads stdin) or --ask-password"
                    .into(),
            ),
            _ => None,
        },
        _ => None,
    }
}

#[derive(Debug, Serialize)]
struct ConnectionView {
    name: String,
    id: String,
    /// `store`, or the configuration file that declares the connection.
    source: String,
    target: TargetView,
    backend: String,
    /// The `send` setting (`auto`, `graph`, `ews`, `smtp`).
    send: String,
    /// Who actually sends: `graph`, `ews` or `smtp`.
    sends_with: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    imap_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pop_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    smtp_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authority: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<String>,
    auth: AuthView,
    /// When the credential expires, when that is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    credential: Option<ExpiryView>,
    /// With `--from-graph`: what Graph said of the credential (its expiry, or why not).
    #[serde(skip_serializing_if = "Option::is_none")]
    from_graph: Option<String>,
    created_at: String,
    updated_at: String,
}

/// A credential's expiry: `{expires, source, days_left, warning, message}`.
#[derive(Debug, Serialize)]
struct ExpiryView {
    /// RFC 3339.
    expires: String,
    /// `given` (`--credential-expires`), `graph` (`--from-graph`) or `certificate` (its
    /// notAfter).
    source: &'static str,
    days_left: i64,
    /// `within-30-days`, `within-14-days`, `within-7-days`, `within-1-day`, `expired`, or null.
    warning: Option<&'static str>,
    message: String,
}

#[derive(Debug, Serialize)]
struct TargetView {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cloud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ews_url: Option<String>,
}

#[derive(Debug, Default, Serialize)]
struct AuthView {
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flow: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redirect_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scopes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    return_urls: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    /// Whether a client secret is set; never its value.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret_set: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<CertificateView>,
    /// Whether a password is set; never its value.
    #[serde(skip_serializing_if = "Option::is_none")]
    password_set: Option<bool>,
}

#[derive(Debug, Serialize)]
struct CertificateView {
    thumbprint_sha256: String,
    private_key_set: bool,
}

fn timestamp(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn credential_view(view: &mut AuthView, credential: Option<&ClientCredential>) {
    match credential {
        Some(ClientCredential::Secret(_)) => view.client_secret_set = Some(true),
        Some(ClientCredential::Certificate(c)) => {
            view.client_secret_set = Some(false);
            view.certificate = Some(CertificateView {
                thumbprint_sha256: c.thumbprint_sha256().to_owned(),
                private_key_set: true,
            });
        }
        None => view.client_secret_set = Some(false),
    }
}

impl ConnectionView {
    fn new(entry: &ConnectionEntry, now: time::OffsetDateTime) -> Self {
        let Connection {
            id,
            name,
            settings,
            created_at,
            updated_at,
        } = &entry.connection;
        let target = match &settings.target {
            Target::Online { cloud, tenant } => TargetView {
                kind: "online",
                cloud: Some(cloud.to_string()),
                tenant: Some(tenant.to_string()),
                server_version: None,
                ews_url: None,
            },
            Target::Server { version, ews_url } => TargetView {
                kind: "server",
                cloud: None,
                tenant: None,
                server_version: Some(version.to_string()),
                ews_url: Some(ews_url.to_string()),
            },
        };
        let mut auth = AuthView {
            kind: settings.auth.kind().to_string(),
            ..AuthView::default()
        };
        match &settings.auth {
            Auth::OAuth2Delegated(DelegatedAuth {
                client_id,
                flow,
                credential,
                redirect_uri,
                scopes,
                return_urls,
            }) => {
                auth.client_id = Some(client_id.to_string());
                auth.flow = Some(flow.to_string());
                auth.redirect_uri = redirect_uri.as_ref().map(ToString::to_string);
                auth.scopes = Some(scopes.clone());
                auth.return_urls = (!return_urls.is_empty())
                    .then(|| return_urls.iter().map(ToString::to_string).collect());
                credential_view(&mut auth, credential.as_ref());
            }
            Auth::OAuth2AppOnly(a) => {
                auth.client_id = Some(a.client_id.to_string());
                credential_view(&mut auth, Some(&a.credential));
            }
            Auth::Basic(p) | Auth::Ntlm(p) => {
                auth.username = Some(p.username.clone());
                auth.password_set = Some(!p.password.is_empty());
            }
        }
        Self {
            name: name.to_string(),
            id: id.to_string(),
            source: match &entry.source {
                Source::Store => "store".into(),
                Source::File(path) => path.clone(),
            },
            target,
            backend: settings.backend.to_string(),
            send: settings.send.to_string(),
            sends_with: match settings.sending() {
                exgate_core::model::Sender::Graph => "graph",
                exgate_core::model::Sender::Ews => "ews",
                exgate_core::model::Sender::Smtp => "smtp",
            },
            imap_url: settings.mail.imap_url.as_ref().map(ToString::to_string),
            pop_url: settings.mail.pop_url.as_ref().map(ToString::to_string),
            smtp_url: settings.mail.smtp_url.as_ref().map(ToString::to_string),
            authority: settings.authority.as_ref().map(ToString::to_string),
            resource: settings.resource.as_ref().map(ToString::to_string),
            auth,
            credential: expiry_view(settings, name.as_str(), None, now),
            from_graph: None,
            created_at: timestamp(*created_at),
            updated_at: timestamp(*updated_at),
        }
    }
}

/// The credential's expiry as shown, with the date read from Graph when there is one.
fn expiry_view(
    settings: &exgate_core::model::ConnectionSettings,
    name: &str,
    graph: Option<time::OffsetDateTime>,
    now: time::OffsetDateTime,
) -> Option<ExpiryView> {
    CredentialExpiry::with_graph(settings, graph, now).map(|e| ExpiryView {
        expires: e.expires_rfc3339(),
        source: e.source.as_str(),
        days_left: e.days_left,
        warning: e.warning.map(Warning::as_str),
        message: e.message(name),
    })
}

fn where_of(target: &Target) -> String {
    match target {
        Target::Online { tenant, .. } => tenant.to_string(),
        Target::Server { ews_url, .. } => ews_url.to_string(),
    }
}

/// The table's cell for a credential's expiry: `2027-06-30 (12 days)`, `expired 2027-06-30`.
fn expiry_cell(v: &ConnectionView) -> String {
    match &v.credential {
        None => "-".into(),
        Some(c) => {
            let date = c.expires.get(..10).unwrap_or(&c.expires);
            if c.warning == Some("expired") {
                format!("EXPIRED {date}")
            } else if c.warning.is_some() {
                format!("{date} ({} days!)", c.days_left)
            } else {
                date.to_owned()
            }
        }
    }
}

fn write_table(
    out: &mut impl Write,
    all: &[ConnectionEntry],
    views: &[ConnectionView],
) -> anyhow::Result<()> {
    let header = [
        "NAME",
        "TARGET",
        "TENANT / EWS URL",
        "BACKEND",
        "AUTH",
        "EXPIRES",
        "SOURCE",
    ];
    let rows: Vec<[String; 7]> = all
        .iter()
        .zip(views)
        .map(|(e, v)| {
            let s = &e.connection.settings;
            [
                e.connection.name.to_string(),
                s.target.kind().to_owned(),
                where_of(&s.target),
                s.backend.to_string(),
                s.auth.kind().to_string(),
                expiry_cell(v),
                match &e.source {
                    Source::Store => "store".to_owned(),
                    Source::File(path) => path.clone(),
                },
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[&str]| {
        cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    writeln!(out, "{}", line(&header))?;
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        writeln!(out, "{}", line(&cells))?;
    }
    Ok(())
}

fn write_details(out: &mut impl Write, v: &ConnectionView) -> anyhow::Result<()> {
    let set = |b: bool| if b { "set" } else { "not set" };
    let mut rows: Vec<(&str, String)> = vec![
        ("name", v.name.clone()),
        ("id", v.id.clone()),
        ("source", v.source.clone()),
        ("target", v.target.kind.to_owned()),
    ];
    let t = &v.target;
    rows.extend(t.cloud.clone().map(|c| ("cloud", c)));
    rows.extend(t.tenant.clone().map(|c| ("tenant", c)));
    rows.extend(t.server_version.clone().map(|c| ("server version", c)));
    rows.extend(t.ews_url.clone().map(|c| ("ews url", c)));
    rows.push(("backend", v.backend.clone()));
    rows.push((
        "send",
        if v.send == v.sends_with {
            v.send.clone()
        } else {
            format!("{} ({})", v.send, v.sends_with)
        },
    ));
    rows.extend(v.imap_url.clone().map(|u| ("imap url", u)));
    rows.extend(v.pop_url.clone().map(|u| ("pop url", u)));
    rows.extend(v.smtp_url.clone().map(|u| ("smtp url", u)));
    rows.push((
        "authority",
        v.authority
            .clone()
            .unwrap_or_else(|| "Entra ID (default)".into()),
    ));
    rows.extend(v.resource.clone().map(|r| ("resource", r)));
    let a = &v.auth;
    rows.push(("auth", a.kind.clone()));
    rows.extend(a.client_id.clone().map(|c| ("client id", c)));
    rows.extend(a.flow.clone().map(|c| ("flow", c)));
    if a.flow.is_some() {
        rows.push((
            "redirect uri",
            a.redirect_uri
                .clone()
                .unwrap_or_else(|| "http://localhost (default)".into()),
        ));
    }
    if let Some(scopes) = &a.scopes {
        rows.push((
            "scopes",
            if scopes.is_empty() {
                "defaults for the backend".into()
            } else {
                scopes.join(" ")
            },
        ));
    }
    if let Some(urls) = &a.return_urls {
        rows.push(("return urls", urls.join(" ")));
    }
    rows.extend(a.username.clone().map(|c| ("username", c)));
    rows.extend(
        a.client_secret_set
            .map(|b| ("client secret", set(b).to_owned())),
    );
    if let Some(c) = &a.certificate {
        rows.push(("certificate sha256", c.thumbprint_sha256.clone()));
        rows.push(("private key", set(c.private_key_set).to_owned()));
    }
    rows.extend(a.password_set.map(|b| ("password", set(b).to_owned())));
    if let Some(c) = &v.credential {
        rows.push((
            "credential expires",
            format!("{} ({}): {}", c.expires, c.source, c.message),
        ));
    }
    if let Some(g) = &v.from_graph {
        rows.push(("from graph", g.clone()));
    }
    rows.push(("created", v.created_at.clone()));
    rows.push(("updated", v.updated_at.clone()));
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    for (key, value) in rows {
        writeln!(out, "{:<width$} {value}", format!("{key}:"))?;
    }
    Ok(())
}

/// The connection test did not pass (exit code 1); the report itself is on stdout.
#[derive(Debug)]
pub(crate) struct TestNotOk(pub(crate) String);

impl std::fmt::Display for TestNotOk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TestNotOk {}

/// The connection test as the CLI shows it (`--json`): the API's shape, from the CLI's own types.
#[derive(Debug, Serialize)]
struct TestView {
    connection: String,
    ok: bool,
    checks: Vec<CheckView>,
}

#[derive(Debug, Serialize)]
struct CheckView {
    name: String,
    /// `passed`, `failed` or `skipped`.
    status: &'static str,
    evidence: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

impl From<&Report> for TestView {
    fn from(r: &Report) -> Self {
        Self {
            connection: r.connection.clone(),
            ok: r.ok,
            checks: r
                .checks
                .iter()
                .map(|c| CheckView {
                    name: c.name.to_owned(),
                    status: match c.status {
                        Status::Passed => "passed",
                        Status::Failed => "failed",
                        Status::Skipped => "skipped",
                    },
                    evidence: c.evidence.clone(),
                    fix: c.fix.clone(),
                })
                .collect(),
        }
    }
}

/// One line: `the test of connection `x` did not pass: 1 step failed, 2 skipped`.
fn test_summary(v: &TestView) -> String {
    let count = |s: &str| v.checks.iter().filter(|c| c.status == s).count();
    let (failed, skipped) = (count("failed"), count("skipped"));
    let mut parts = Vec::new();
    if failed > 0 {
        parts.push(format!(
            "{failed} step{} failed",
            if failed == 1 { "" } else { "s" }
        ));
    }
    if skipped > 0 {
        parts.push(format!(
            "{skipped} step{} skipped",
            if skipped == 1 { "" } else { "s" }
        ));
    }
    format!(
        "the test of connection `{}` did not pass: {}; see the fix under each step",
        v.connection,
        parts.join(", ")
    )
}

fn write_test(out: &mut impl Write, v: &TestView) -> anyhow::Result<()> {
    let width = v.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for c in &v.checks {
        writeln!(out, "{:<width$}  {:<7}  {}", c.name, c.status, c.evidence)?;
        if let Some(fix) = &c.fix {
            writeln!(out, "{:<width$}  {:<7}  fix: {fix}", "", "")?;
        }
    }
    if v.ok {
        writeln!(out, "ok: every step passed")?;
    } else {
        writeln!(out, "not ok: {}", test_summary(v))?;
    }
    Ok(())
}

/// Renders a connection test as `exgate connection test` does (for `exgate setup` and `exgate
/// app register`); answers whether every step passed.
pub(crate) fn print_test(out: &mut impl Write, report: &Report) -> anyhow::Result<bool> {
    write_test(out, &TestView::from(report))?;
    Ok(report.ok)
}
