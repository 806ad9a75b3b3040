//! `exgate bridge`: serve the local bridge; `exgate bridge user add|list|remove`.

use std::io::Write as _;
use std::sync::Arc;

use exgate_core::bridge::{Bridge, BridgeSettings, Relay};
use exgate_core::mail::MailProtocol;
use serde::Serialize;

use crate::Context;
use crate::args::{BridgeArgs, BridgeCommand, BridgeUserCommand};

#[derive(Serialize)]
struct UserView<'a> {
    mailbox: &'a str,
    connection: &'a str,
    /// The account that acts (delegated connections); absent: the app.
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<&'a str>,
    created_at: String,
}

#[derive(Serialize)]
struct AddedView<'a> {
    #[serde(flatten)]
    user: UserView<'a>,
    /// Shown once; only its hash is kept.
    password: &'a str,
}

pub(crate) async fn run(ctx: &Context, args: &BridgeArgs) -> anyhow::Result<()> {
    match &args.command {
        None => serve(ctx).await,
        Some(BridgeCommand::User(cmd)) => user(ctx, cmd).await,
    }
}

async fn user(ctx: &Context, cmd: &BridgeUserCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        BridgeUserCommand::Add {
            mailbox,
            connection,
            account,
            json,
        } => {
            let conn = ctx.connections.resolve(connection.as_deref()).await?;
            let name = conn.connection.name.to_string();
            let (user, password) = ctx
                .bridge_users
                .add(&name, mailbox, account.as_deref())
                .await?;
            let view = UserView {
                mailbox: user.mailbox.as_str(),
                connection: &name,
                account: user.principal.as_ref().map(|p| p.as_str()),
                created_at: user.created_at.to_string(),
            };
            if *json {
                serde_json::to_writer_pretty(
                    &mut out,
                    &AddedView {
                        user: view,
                        password: password.expose(),
                    },
                )?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "added bridge user {} on connection {name}\nlocal password (shown once; only its hash is kept): {}\nsign in to the bridge with user name {} and this password",
                    user.mailbox,
                    password.expose(),
                    user.mailbox
                )?;
            }
        }
        BridgeUserCommand::List { json } => {
            let users = ctx.bridge_users.list().await?;
            let views: Vec<UserView<'_>> = users
                .iter()
                .map(|(u, conn)| UserView {
                    mailbox: u.mailbox.as_str(),
                    connection: conn,
                    account: u.principal.as_ref().map(|p| p.as_str()),
                    created_at: u.created_at.to_string(),
                })
                .collect();
            if *json {
                serde_json::to_writer_pretty(&mut out, &views)?;
                writeln!(out)?;
            } else if views.is_empty() {
                writeln!(
                    out,
                    "no bridge users; add one with `exgate bridge user add MAILBOX`"
                )?;
            } else {
                for v in &views {
                    writeln!(
                        out,
                        "{}\tconnection {}\t{}",
                        v.mailbox,
                        v.connection,
                        v.account
                            .map_or("as the app".to_owned(), |a| format!("as {a}"))
                    )?;
                }
            }
        }
        BridgeUserCommand::Remove { mailbox } => {
            ctx.bridge_users.remove(mailbox).await?;
            writeln!(out, "removed bridge user {mailbox}")?;
        }
    }
    Ok(())
}

async fn serve(ctx: &Context) -> anyhow::Result<()> {
    let settings = BridgeSettings::from_config(&ctx.bridge)?;
    let relay = Arc::new(Relay::new(
        Arc::clone(&ctx.connections),
        Arc::clone(&ctx.signin),
        ctx.network.clone(),
    )?);
    let tls = match &settings.tls {
        Some(t) if t.implicit => "implicit TLS",
        Some(_) => "STARTTLS required",
        None => "plain, loopback only",
    };
    let bound = Bridge::new(settings, Arc::clone(&ctx.bridge_users), relay)
        .bind()
        .await?;
    {
        // Status, not data: on stderr, as a service manager's journal expects.
        let mut out = std::io::stderr().lock();
        for (protocol, addr) in bound.addrs() {
            let name = match protocol {
                MailProtocol::Imap => "imap",
                MailProtocol::Pop => "pop",
                MailProtocol::Smtp => "smtp",
            };
            writeln!(out, "exgate bridge: {name} on {addr} ({tls})")?;
        }
        writeln!(out, "exgate bridge: ready; Ctrl-C stops it")?;
        out.flush()?;
    }
    bound.serve(shutdown_signal()).await;
    Ok(())
}

/// Ctrl-C, or SIGTERM from a service manager.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
