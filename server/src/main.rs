//! `exgate-server`: load configuration, open the store, make sure an admin credential exists,
//! then serve the gateway until SIGINT or SIGTERM.
//!
//! stdout carries what an operator must see (the generated admin password, once, and the
//! address); logs go to stderr. Exit codes: 0 ok, 1 failed, 2 usage or configuration error.
#![allow(clippy::print_stderr)]

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use exgate_core::admin::{self, AdminCredential};
use exgate_core::clock::SystemClock;
use exgate_core::config::{self, Env, LogFormat, Settings};
use exgate_core::services::Services;
use exgate_core::{Error as CoreError, ErrorKind};
use exgate_server::AppState;

#[derive(Debug, Parser)]
#[command(
    name = "exgate-server",
    version,
    about = "The exgate HTTP gateway to Exchange mailboxes"
)]
struct Cli {
    /// Read this configuration file after the system and user files.
    #[arg(long, global = true, value_name = "FILE", env = "EXGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Listen on this address instead of server.listen (port 0 picks a free port).
    #[arg(long, value_name = "IP:PORT")]
    listen: Option<SocketAddr>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage the admin credential.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Operate on stores.
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Copy every table of one store into another (e.g. SQLite to PostgreSQL), secrets sealed as
    /// they are (both stores open with this configuration's master key), in one transaction on
    /// the target, verified (rows and a checksum per table) before it commits. Stop the gateways
    /// first.
    Migrate {
        /// The store to copy: sqlite:///path/exgate.db or postgres://user@host/db?sslmode=verify-full
        #[arg(long, value_name = "URL")]
        from: String,
        /// The store to copy into.
        #[arg(long, value_name = "URL")]
        to: String,
        /// The source's PostgreSQL password, as file:PATH or env:NAME.
        #[arg(long, value_name = "REF")]
        from_password: Option<String>,
        /// The target's PostgreSQL password, as file:PATH or env:NAME.
        #[arg(long, value_name = "REF")]
        to_password: Option<String>,
        /// Replace what the target holds (otherwise a target with rows is refused).
        #[arg(long)]
        replace: bool,
    },
}

/// A store named on the command line, its password read from a reference.
fn store_at(
    flag: &'static str,
    url: &str,
    password: Option<&str>,
) -> Result<exgate_core::store::StoreLocation, CoreError> {
    let invalid = |message: String| {
        CoreError::from(config::ConfigError::Invalid {
            key: flag.into(),
            origin: "the command line".into(),
            message,
        })
    };
    let password = password
        .map(|r| {
            exgate_core::secret::SecretRef::parse(r)
                .map_err(|e| invalid(format!("the password is {e}; give file:PATH or env:NAME")))?
                .resolve(&|name| std::env::var(name).ok())
                .map_err(|e| invalid(e.to_string()))
        })
        .transpose()?;
    exgate_core::store::StoreLocation::from_url(url, password).map_err(invalid)
}

async fn migrate_store(settings: &Settings, command: &StoreCommand) -> anyhow::Result<()> {
    let StoreCommand::Migrate {
        from,
        to,
        from_password,
        to_password,
        replace,
    } = command;
    let from = store_at("--from", from, from_password.as_deref())?;
    let to = store_at("--to", to, to_password.as_deref())?;
    if !settings.master_key_file.is_file() {
        return Err(CoreError::from(config::ConfigError::Invalid {
            key: "secrets.master_key_file".into(),
            origin: "the configuration".into(),
            message: format!(
                "{} does not exist; point secrets.master_key_file (or EXGATE_MASTER_KEY_FILE) at the key the source store was created with",
                settings.master_key_file.display()
            ),
        })
        .into());
    }
    let vault = Arc::new(
        exgate_core::secret::Vault::open_or_create(&settings.master_key_file)
            .map_err(CoreError::from)?,
    );
    let report = exgate_core::store::migrate(&from, &to, vault, *replace)
        .await
        .map_err(CoreError::from)?;
    for (table, digest) in &report.copied {
        say(&format!(
            "copied {table}: {} rows, sha256 {}",
            digest.rows,
            digest.hex()
        ))?;
    }
    for (table, why) in &report.not_copied {
        say(&format!("not copied {table}: {why}"))?;
    }
    say(&format!(
        "store copied from {} to {} and verified",
        from.display(),
        to.display()
    ))?;
    Ok(())
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Replace the admin password with a new random one and print it.
    Reset,
    /// Create an API key and print it (it is shown only once).
    #[command(name = "api-key")]
    ApiKey {
        /// A name to recognise the key by.
        name: String,
        /// A connection the key may use; repeat for more.
        #[arg(long = "connection", required_unless_present = "admin")]
        connections: Vec<String>,
        /// An admin key instead: it may do everything.
        #[arg(long, conflicts_with = "connections")]
        admin: bool,
    },
}

fn init_logging(settings: &Settings) -> anyhow::Result<()> {
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("EXGATE_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&settings.log_level))
        .map_err(|e| {
            CoreError::from(config::ConfigError::Invalid {
                key: "log.level".into(),
                origin: "the configuration".into(),
                message: format!(
                    "`{}` is not a log filter ({e}); expected a level such as info or debug",
                    settings.log_level
                ),
            })
        })?;
    for cap in exgate_core::LOG_CAPS {
        if let Ok(directive) = cap.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match settings.server.log_format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
    Ok(())
}

/// Resolves when the process gets SIGINT (Ctrl-C) or SIGTERM.
/// Listens for SIGINT (Ctrl-C) and SIGTERM from the moment it is called: the handlers are
/// installed before the gateway says it is listening, so no signal falls into a gap where the
/// default action would kill the process without a graceful shutdown.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        tracing::info!("shutting down: finishing in-flight requests");
    })
}

fn say(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .context("writing to stdout")
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut settings =
        config::load(cli.config.as_deref(), &Env::from_process()).map_err(CoreError::from)?;
    init_logging(&settings)?;
    if let Some(Command::Store(command)) = &cli.command {
        return migrate_store(&settings, command).await;
    }
    let services = Services::open(&mut settings, Arc::new(SystemClock)).await?;
    let store = Arc::clone(&services.store);
    let clock = SystemClock;

    if let Some(Command::Admin(AdminCommand::ApiKey {
        name,
        connections,
        admin,
    })) = &cli.command
    {
        let scope = if *admin {
            exgate_core::apikeys::KeyScope::Admin
        } else {
            let mut ids = Vec::new();
            for c in connections {
                ids.push(services.connections.get(c).await?.connection.id);
            }
            exgate_core::apikeys::KeyScope::Connections(ids)
        };
        let (key, secret) = services.keys.create(name, scope).await?;
        say(&format!(
            "API key `{}` ({}), shown only this once:",
            key.name, key.id
        ))?;
        say(&format!("    {}", secret.expose()))?;
        return Ok(());
    }

    if let Some(Command::Admin(AdminCommand::Reset)) = cli.command {
        if settings.server.admin_password.is_some() {
            return Err(CoreError::from(config::ConfigError::Invalid {
                key: "server.admin_password".into(),
                origin: "the configuration".into(),
                message: "the admin password is configured, so there is no generated one to reset; change it where it is configured".into(),
            })
            .into());
        }
        let password = admin::reset_admin_credential(store.as_ref(), &clock)
            .await
            .map_err(CoreError::from)?;
        say("new admin password (shown only this once; the old one no longer works):")?;
        say(&format!("    {}", password.expose()))?;
        return Ok(());
    }

    match admin::ensure_admin_credential(
        store.as_ref(),
        settings.server.admin_password.as_ref(),
        &clock,
    )
    .await
    .map_err(CoreError::from)?
    {
        AdminCredential::Generated(password) => {
            say(
                "generated the admin password (shown only this once; `exgate-server admin reset` makes a new one):",
            )?;
            say(&format!("    {}", password.expose()))?;
        }
        AdminCredential::Configured => tracing::info!("using the configured admin password"),
        AdminCredential::Stored => tracing::info!("using the stored admin password"),
    }

    let shutdown = shutdown_signal()?;
    let addr = cli.listen.unwrap_or(settings.server.listen);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen on {addr}; is another process using it? (set server.listen or --listen)"
        )
    })?;
    let local = listener.local_addr().context("reading the bound address")?;
    tracing::info!(address = %local, store = %settings.store_path.display(), "exgate-server listening");
    say(&format!("exgate-server listening on http://{local}"))?;

    let public_url = settings
        .server
        .public_url
        .as_ref()
        .map_or_else(|| format!("http://{local}"), ToString::to_string);
    let state = AppState::new(services, settings, public_url);
    exgate_server::spawn_expiry_watch(&state);
    let _notifications = exgate_server::spawn_notifications(&state);
    say(&format!(
        "redirect URI to register in Entra ID for sign-ins through the gateway: {}",
        state.redirect_uri()
    ))?;
    exgate_server::serve(listener, state, shutdown)
        .await
        .context("serving HTTP")?;
    tracing::info!("exgate-server stopped");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("exgate-server: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("exgate-server: {err:#}");
            let usage = err
                .downcast_ref::<CoreError>()
                .is_some_and(|e| matches!(e.kind(), ErrorKind::Invalid | ErrorKind::Config));
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}
