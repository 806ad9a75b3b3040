//! `exgate app register | rotate-secret`: sign the administrator in with a device code, call
//! core's registration, render what changed, create and test the connections.

use std::io::Write;
use std::sync::Arc;

use exgate_core::appreg::{
    self, AdminSignIn, DryRun, ExchangeAdmin, LiveGraph, Options, converge, default_admin_url,
};
use exgate_core::auth::oauth::DeviceAuthorization;
use exgate_core::clock::SystemClock;
use exgate_core::model::{Auth, ClientCredential, ClientId, ConnectionSpec, Target};
use exgate_core::secret::Secret;
use exgate_core::setup::{Needs, Place};

use crate::Context;
use crate::UsageError;
use crate::args::{AppCommand, RegisterOptions};
use crate::setup::{cloud_of, needs_from, plan};

pub(crate) async fn run(ctx: &Context, cmd: &AppCommand) -> anyhow::Result<()> {
    match cmd {
        AppCommand::Register { needs, options } => {
            let n = needs_from(needs)?;
            register(ctx, n, options).await
        }
        AppCommand::RotateSecret {
            connection,
            months,
            admin_client_id,
        } => rotate(ctx, connection, *months, admin_client_id.as_deref()).await,
    }
}

fn say_device(what: &str, device: &DeviceAuthorization) {
    eprintln!(
        "to sign in {what}, open {} and enter the code {}",
        device.verification_uri, device.user_code
    );
}

fn parse_client(id: Option<&str>) -> anyhow::Result<Option<ClientId>> {
    id.map(|c| {
        c.parse::<ClientId>()
            .map_err(|e| UsageError(format!("--admin-client-id: {}", e.0)).into())
    })
    .transpose()
}

fn graph_base(ctx: &Context, n: &Needs) -> String {
    ctx.network.graph_url.as_ref().map_or_else(
        || exgate_core::graph::default_base_url(cloud_of(n)).to_owned(),
        ToString::to_string,
    )
}

async fn admin_graph(
    ctx: &Context,
    n: &Needs,
    tenant: &exgate_core::model::Tenant,
    admin_client: Option<&str>,
) -> anyhow::Result<LiveGraph> {
    let admin_client = parse_client(admin_client)?;
    let signin = AdminSignIn::graph(
        &ctx.network,
        Arc::new(SystemClock),
        cloud_of(n),
        tenant,
        admin_client.as_ref(),
    )?;
    let device = signin.start().await?;
    say_device("as an administrator (Microsoft Graph)", &device);
    let token = signin.finish(&device).await?;
    let http = exgate_core::net::http_client(&ctx.network)?;
    Ok(LiveGraph::new(http, &graph_base(ctx, n), token))
}

pub(crate) async fn register(
    ctx: &Context,
    mut n: Needs,
    options: &RegisterOptions,
) -> anyhow::Result<()> {
    if n.place == Place::Server {
        return Err(UsageError(
            "Exchange Server needs no app registration; `exgate setup --server …` prints its steps"
                .into(),
        )
        .into());
    }
    let reqs = plan(&n)?;
    let now = time::OffsetDateTime::now_utc();
    if options.dry_run {
        let mut dry = DryRun::default();
        converge(&mut dry, &n, &reqs, &Options::default(), now).await?;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "a first registration sends these requests to {} (nothing was sent):",
            graph_base(ctx, &n)
        )?;
        for call in &dry.calls {
            writeln!(out, "{call}")?;
            if let Some(body) = &call.body {
                writeln!(out, "  {body}")?;
            }
        }
        return Ok(());
    }
    let tenant = n
        .ids
        .tenant
        .clone()
        .ok_or_else(|| UsageError("give the tenant with --tenant".into()))?;
    // An earlier run's connections name the app and may hold its credential.
    let mut known = Options {
        new_credential: options.new_credential,
        ..Options::default()
    };
    for planned in &reqs.connections {
        if let Ok(entry) = ctx.connections.get(&planned.name).await {
            let (client, has_credential) = match &entry.connection.settings.auth {
                Auth::OAuth2AppOnly(a) => (Some(a.client_id.clone()), true),
                Auth::OAuth2Delegated(d) => (Some(d.client_id.clone()), d.credential.is_some()),
                _ => (None, false),
            };
            known.client_id = known.client_id.or(client);
            known.have_credential |= has_credential && planned.confidential;
        }
    }
    let mut graph = admin_graph(ctx, &n, &tenant, options.admin_client_id.as_deref()).await?;
    let outcome = converge(&mut graph, &n, &reqs, &known, now).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "app registration {} (client ID {}, service principal {}) in tenant {}",
            n.name, outcome.client_id, outcome.service_principal_id, outcome.tenant_id
        )?;
        if outcome.changes.is_empty() {
            writeln!(out, "  already as planned: nothing changed")?;
        }
        for c in &outcome.changes {
            writeln!(out, "  {c}")?;
        }
    }
    // The Exchange part, now with the real IDs.
    n.ids.client_id = outcome.client_id.parse().ok();
    n.ids.service_principal_id = Some(outcome.service_principal_id.clone());
    n.ids.tenant = outcome.tenant_id.parse().ok().or(Some(tenant.clone()));
    let filled = plan(&n)?;
    if !filled.powershell.is_empty() {
        if options.exchange {
            let signin =
                AdminSignIn::exchange(&ctx.network, Arc::new(SystemClock), cloud_of(&n), &tenant)?;
            let device = signin.start().await?;
            say_device("to Exchange Online as an administrator", &device);
            let token = signin.finish(&device).await?;
            let root = ctx
                .network
                .exchange_admin_url
                .as_ref()
                .map_or_else(|| default_admin_url(cloud_of(&n)), ToString::to_string);
            let admin = ExchangeAdmin::new(
                exgate_core::net::http_client(&ctx.network)?,
                &root,
                &outcome.tenant_id,
                token,
            );
            for step in &filled.powershell {
                if let Some(cmdlet) = &step.cmdlet {
                    match admin.invoke(cmdlet).await {
                        Ok(_) => writeln!(
                            std::io::stdout().lock(),
                            "  ran in Exchange Online: {}",
                            step.command
                        )?,
                        Err(e) if e.already_exists() => writeln!(
                            std::io::stdout().lock(),
                            "  already in Exchange Online: {}",
                            step.command
                        )?,
                        Err(e) => return Err(exgate_core::Error::from(e).into()),
                    }
                }
            }
        } else {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "run in Exchange Online PowerShell (Connect-ExchangeOnline), or rerun with --exchange:"
            )?;
            for step in &filled.powershell {
                writeln!(out, "  # {}\n  {}", step.why, step.command)?;
            }
        }
    }
    let applied = appreg::apply_connections(
        &ctx.connections,
        &reqs.connections,
        cloud_of(&n),
        &outcome.tenant_id,
        &outcome.client_id,
        outcome.credential.as_ref(),
    )
    .await?;
    crate::setup::test_connections(ctx, &reqs, &applied).await
}

async fn rotate(
    ctx: &Context,
    name: &str,
    months: u32,
    admin_client: Option<&str>,
) -> anyhow::Result<()> {
    if months == 0 || months > exgate_core::setup::MAX_CREDENTIAL_MONTHS {
        return Err(UsageError(format!(
            "--months {months} is outside 1..={}",
            exgate_core::setup::MAX_CREDENTIAL_MONTHS
        ))
        .into());
    }
    let conn = ctx.connections.get(name).await?.connection;
    let (Target::Online { cloud, tenant }, Some((client_id, old))) = (
        &conn.settings.target,
        match &conn.settings.auth {
            Auth::OAuth2AppOnly(a) => match &a.credential {
                ClientCredential::Secret(s) => Some((a.client_id.clone(), s.clone())),
                ClientCredential::Certificate(_) => None,
            },
            Auth::OAuth2Delegated(d) => match &d.credential {
                Some(ClientCredential::Secret(s)) => Some((d.client_id.clone(), s.clone())),
                _ => None,
            },
            _ => None,
        },
    ) else {
        return Err(UsageError(format!(
            "connection `{name}` has no client secret of an Exchange Online app to rotate"
        ))
        .into());
    };
    let mut n = Needs::new("rotate");
    n.place = Place::Online { cloud: *cloud };
    let mut graph = admin_graph(ctx, &n, tenant, admin_client).await?;
    // Every stored connection of the same app and secret gets the new secret.
    let mut siblings = Vec::new();
    for entry in ctx.connections.list().await? {
        let same = match &entry.connection.settings.auth {
            Auth::OAuth2AppOnly(a) => {
                a.client_id == client_id && a.credential == ClientCredential::Secret(old.clone())
            }
            Auth::OAuth2Delegated(d) => {
                d.client_id == client_id
                    && d.credential == Some(ClientCredential::Secret(old.clone()))
            }
            _ => false,
        };
        if same && matches!(entry.source, exgate_core::connections::Source::Store) {
            siblings.push(entry.connection.name.to_string());
        }
    }
    let network = ctx.network.clone();
    let connections = Arc::clone(&ctx.connections);
    let rotation = appreg::rotate_secret(
        &mut graph,
        &client_id.to_string(),
        &old,
        months,
        time::OffsetDateTime::now_utc(),
        async |secret: &Secret| {
            appreg::try_secret(
                &network,
                Arc::new(SystemClock),
                *cloud,
                tenant,
                &client_id,
                secret,
            )
            .await
        },
        async |secret: &Secret, expires: time::OffsetDateTime| {
            for s in &siblings {
                let change = ConnectionSpec {
                    client_secret: Some(secret.clone()),
                    credential_expires: expires
                        .format(&time::format_description::well_known::Rfc3339)
                        .ok(),
                    ..ConnectionSpec::default()
                };
                connections.edit(s, change, false).await?;
            }
            Ok(())
        },
    )
    .await
    .map_err(|e| {
        anyhow::Error::from(e).context(format!(
            "the new secret was not taken; connection `{name}` keeps its old secret"
        ))
    })?;
    let mut out = std::io::stdout().lock();
    let end = rotation
        .expires
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    writeln!(
        out,
        "new secret valid until {end} stored in {} and tested",
        siblings.join(", ")
    )?;
    if rotation.removed.is_empty() {
        writeln!(
            out,
            "the old secret was not found by its hint; remove it under Certificates & secrets"
        )?;
    } else {
        writeln!(
            out,
            "removed the old secret ({})",
            rotation.removed.join(", ")
        )?;
    }
    if !rotation.kept.is_empty() {
        writeln!(
            out,
            "other secrets of the app were left in place: {}",
            rotation.kept.join(", ")
        )?;
    }
    Ok(())
}
