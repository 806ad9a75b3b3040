//! `exgate`: parse the command line, call exgate-core, render the result.
//!
//! Exit codes: 0 ok, 1 the operation failed, 2 usage or configuration error, 3 a user must sign in.
#![allow(clippy::print_stderr)] // a binary reports its failure on stderr

mod app;
mod args;
mod bridge;
mod connection;
mod input;
mod mailbox;
mod setup;
mod signin;
mod watch;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{CommandFactory, FromArgMatches};
use exgate_core::auth::{Refresh, SignIn};
use exgate_core::clock::SystemClock;
use exgate_core::config::{self, Env, Settings};
use exgate_core::connections::Connections;
use exgate_core::mailboxes::Mailboxes;
use exgate_core::services::Services;
use exgate_core::{Error as CoreError, ErrorKind};

use args::{Cli, Command};
use connection::Given;

/// A mistake in how exgate was called (exit code 2).
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// What the commands need: the connection catalogue, sign-in and mailboxes, over the store and
/// the configuration.
pub(crate) struct Context {
    pub(crate) connections: Arc<Connections>,
    pub(crate) signin: Arc<SignIn>,
    pub(crate) mailboxes: Arc<Mailboxes>,
    pub(crate) bridge_users: Arc<exgate_core::bridge::BridgeUsers>,
    pub(crate) network: exgate_core::config::NetworkSettings,
    pub(crate) bridge: exgate_core::config::BridgeConfig,
}

impl Context {
    /// Opens the services. When no connection was given and there is only one, its name is
    /// noted in `given`, so hints can name it.
    async fn open(cli: &Cli, given: &mut Given) -> anyhow::Result<Self> {
        let mut settings: Settings =
            config::load(cli.config.as_deref(), &Env::from_process()).map_err(CoreError::from)?;
        let services = Services::open_for_command(&mut settings, Arc::new(SystemClock)).await?;
        // A command's process ends when it is done: a token past its refresh point is refreshed
        // before it is used, not in a background task that would die with the process.
        services.signin.cache().set_refresh(Refresh::Foreground);
        if given.connection.is_none()
            && let Ok(entry) = services.connections.resolve(None).await
        {
            given.connection = Some(entry.connection.name.to_string());
        }
        Ok(Self {
            connections: services.connections,
            signin: services.signin,
            mailboxes: services.mailboxes,
            bridge_users: services.bridge_users,
            network: settings.network.clone(),
            bridge: settings.bridge.clone(),
        })
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("EXGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    for cap in exgate_core::LOG_CAPS {
        if let Ok(directive) = cap.parse() {
            filter = filter.add_directive(directive);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

async fn run(cli: Cli, given: &mut Given) -> anyhow::Result<()> {
    match &cli.command {
        Command::Completions { shell } => {
            // clap_complete panics when its writer fails: generate into memory, then write, so
            // a closed pipe is an error like any other (and ends quietly, see `main`).
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "exgate", &mut script);
            let mut out = std::io::stdout().lock();
            out.write_all(&script)
                .and_then(|()| out.flush())
                .context("writing the completion script")?;
            Ok(())
        }
        Command::Connection(cmd) => connection::run(&Context::open(&cli, given).await?, cmd).await,
        Command::Login(args) => signin::login(&Context::open(&cli, given).await?, args).await,
        Command::Logout { target } => {
            signin::logout(&Context::open(&cli, given).await?, target).await
        }
        Command::Accounts(cmd) => signin::accounts(&Context::open(&cli, given).await?, cmd).await,
        Command::Mail(cmd) => mailbox::mail(&Context::open(&cli, given).await?, cmd).await,
        Command::Calendar(cmd) => mailbox::calendar(&Context::open(&cli, given).await?, cmd).await,
        Command::Contacts(cmd) => mailbox::contacts(&Context::open(&cli, given).await?, cmd).await,
        Command::Setup(args) => setup::run(&Context::open(&cli, given).await?, args).await,
        Command::App(cmd) => app::run(&Context::open(&cli, given).await?, cmd).await,
        Command::Bridge(args) => bridge::run(&Context::open(&cli, given).await?, args).await,
        Command::Watch(args) => watch::run(&Context::open(&cli, given).await?, args).await,
        Command::Token { target, resource } => {
            signin::token(&Context::open(&cli, given).await?, target, resource).await
        }
    }
}

/// The exit code for an error, and a hint to print under it.
/// Exit code 3 tells a script that a user must sign in; a failed `login` itself is just a failure.
fn classify(err: &anyhow::Error, is_login: bool, given: &Given) -> (u8, Option<String>) {
    if err.downcast_ref::<UsageError>().is_some() {
        return (2, None);
    }
    match err.downcast_ref::<CoreError>() {
        Some(e) => {
            let code = match e.kind() {
                ErrorKind::Invalid | ErrorKind::Config => 2,
                ErrorKind::NeedsSignIn if is_login => 1,
                ErrorKind::NeedsSignIn => 3,
                ErrorKind::NotFound
                | ErrorKind::Conflict
                | ErrorKind::Failed
                | ErrorKind::Forbidden => 1,
            };
            (code, connection::hint(e, given))
        }
        None => (1, None),
    }
}

/// Whether the error is stdout's reader having gone away (`exgate … | head -1`). Like ripgrep,
/// exgate then ends quietly with exit code 0: the reader has all it wanted.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == Some(std::io::ErrorKind::BrokenPipe)
    })
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let mut given = Given::from_matches(&matches);
    init_logging(cli.verbose);
    let is_login = matches!(cli.command, Command::Login(_));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("exgate: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli, &mut given)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let (code, hint) = classify(&err, is_login, &given);
            eprintln!("exgate: {err:#}");
            if let Some(hint) = hint {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(code)
        }
    }
}
