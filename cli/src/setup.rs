//! `exgate setup`: ask (or read from flags) what the app will do, print core's plan, then
//! create and test the connections with the app's IDs and credential, or register it first.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context as _;
use exgate_core::appreg::{self, Applied, NewCredential};
use exgate_core::model::{ClientCertificate, Cloud, EmailAddress, Resource};
use exgate_core::setup::{self, Actor, CredentialKind, Needs, Place, Requirements};

use crate::Context;
use crate::args::{NeedsArgs, SetupArgs};
use crate::{UsageError, input};

fn usage(e: impl std::fmt::Display) -> anyhow::Error {
    UsageError(e.to_string()).into()
}

/// Reads a line after printing `question` on stderr.
fn ask(question: &str) -> anyhow::Result<String> {
    let mut err = std::io::stderr().lock();
    write!(err, "{question} ")?;
    err.flush()?;
    drop(err);
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_owned())
}

fn split(answer: &str) -> Vec<String> {
    answer
        .split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(ToOwned::to_owned)
        .collect()
}

/// `Needs` from the flags, asking on a terminal for what is missing.
pub(crate) fn needs_from(args: &NeedsArgs) -> anyhow::Result<Needs> {
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let mut n = Needs::new(&args.name);
    let mut who = args.who.clone();
    if who.is_empty() && interactive {
        for a in Actor::ALL {
            eprintln!("  {:<12} {}", a.as_str(), a.describe());
        }
        who = split(&ask("Who signs in? (one or more of the above)")?);
    }
    for w in &who {
        n.actors.insert(
            w.parse()
                .map_err(|e: exgate_core::model::ParseError| usage(e.0))?,
        );
    }
    let mut protocols = args.protocols.clone();
    if protocols.is_empty() && interactive {
        protocols = split(&ask("Which protocols? (graph, ews, imap, pop, smtp)")?);
    }
    for p in &protocols {
        n.protocols
            .insert(p.parse::<Resource>().map_err(|e| usage(e.0))?);
    }
    if args.server {
        n.place = Place::Server;
    } else {
        let cloud = match &args.cloud {
            Some(c) => c.parse::<Cloud>().map_err(|e| usage(e.0))?,
            None => Cloud::Global,
        };
        n.place = Place::Online { cloud };
    }
    let mut public_url = args.public_url.clone();
    if public_url.is_none() && interactive && n.actors.contains(&Actor::Portal) {
        public_url = Some(ask("The gateway's public URL (https://…)?")?);
    }
    n.public_url = public_url
        .map(|u| {
            u.parse()
                .map_err(|e: exgate_core::model::ParseError| usage(e.0))
        })
        .transpose()?;
    let mut mailboxes = args.mailboxes.clone();
    if mailboxes.is_empty() && interactive && n.actors.contains(&Actor::Service) {
        mailboxes = split(&ask(
            "Which mailboxes may the service reach? (addresses, empty: all)",
        )?);
    }
    n.mailboxes = mailboxes
        .iter()
        .map(|m| m.parse::<EmailAddress>().map_err(|e| usage(e.0)))
        .collect::<Result<_, _>>()?;
    n.rbac = args.rbac;
    n.shared_mailboxes = args.shared_mailboxes;
    n.credential = args
        .credential
        .parse::<CredentialKind>()
        .map_err(|e| usage(e.0))?;
    n.credential_months = args.months;
    n.service_account = args.service_account.clone();
    n.ids.tenant = args
        .tenant
        .as_deref()
        .map(|t| {
            t.parse()
                .map_err(|e: exgate_core::model::ParseError| usage(e.0))
        })
        .transpose()?;
    Ok(n)
}

pub(crate) fn cloud_of(n: &Needs) -> Cloud {
    match n.place {
        Place::Online { cloud } => cloud,
        Place::Server => Cloud::Global,
    }
}

/// The plan, or a usage error naming the field.
pub(crate) fn plan(n: &Needs) -> anyhow::Result<Requirements> {
    setup::plan(n).map_err(|e| exgate_core::Error::from(e).into())
}

pub(crate) async fn run(ctx: &Context, args: &SetupArgs) -> anyhow::Result<()> {
    let mut n = needs_from(&args.needs)?;
    if let Some(id) = &args.client_id {
        n.ids.client_id = Some(
            id.parse()
                .map_err(|e: exgate_core::model::ParseError| usage(e.0))?,
        );
    }
    let reqs = plan(&n)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &reqs)?;
        writeln!(out)?;
        return Ok(());
    }
    write!(out, "{reqs}")?;
    out.flush()?;
    drop(out);
    if args.register {
        return crate::app::register(ctx, n, &args.options).await;
    }
    let Some(client_id) = &n.ids.client_id else {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "\nthen run `exgate setup` again with the same choices and --client-id (and \
             --client-secret-file or --certificate) to create and test the connections, or let \
             exgate do it all: `exgate app register` with the same choices"
        )?;
        return Ok(());
    };
    if n.place == Place::Server {
        return Err(usage(
            "for Exchange Server create the connection with `exgate connection add NAME --ews-url URL --auth ntlm --username ACCOUNT --ask-password`",
        ));
    }
    let tenant = n
        .ids
        .tenant
        .clone()
        .ok_or_else(|| usage("give the tenant with --tenant"))?;
    let credential = match (&args.client_secret_file, &args.certificate) {
        (Some(file), _) => Some(NewCredential::Secret {
            value: input::read_secret_file(file, "client secret")?,
            key_id: String::new(),
            expires: None,
        }),
        (None, Some(cert)) => {
            let pem = std::fs::read_to_string(cert)
                .with_context(|| format!("reading {}", cert.display()))?;
            let key = match &args.private_key {
                Some(k) => input::read_secret_file(k, "private key")?,
                None => exgate_core::secret::Secret::new(pem.clone()),
            };
            let parsed = ClientCertificate::from_pem(&pem, &key).map_err(|e| usage(e.0))?;
            Some(NewCredential::Certificate {
                certificate_pem: parsed.certificate_pem().to_owned(),
                private_key_pem: parsed.private_key().clone(),
                expires: None,
            })
        }
        (None, None) if reqs.connections.iter().any(|c| c.confidential) && input::can_prompt() => {
            Some(NewCredential::Secret {
                value: input::prompt("client secret value")?,
                key_id: String::new(),
                expires: None,
            })
        }
        (None, None) => None,
    };
    let applied = appreg::apply_connections(
        &ctx.connections,
        &reqs.connections,
        cloud_of(&n),
        &tenant.to_string(),
        &client_id.to_string(),
        credential.as_ref(),
    )
    .await?;
    test_connections(ctx, &reqs, &applied).await
}

/// Prints what was applied and runs the connection test of each connection that can be tested
/// now (app-only with a mailbox); delegated ones are told how to sign in.
pub(crate) async fn test_connections(
    ctx: &Context,
    reqs: &Requirements,
    applied: &[Applied],
) -> anyhow::Result<()> {
    let mut failed = Vec::new();
    for a in applied {
        let name = match a {
            Applied::Added(n) | Applied::Updated(n) | Applied::Kept(n) => n,
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{a}")?;
        let Some(planned) = reqs.connections.iter().find(|c| &c.name == name) else {
            continue;
        };
        if planned.auth == exgate_core::model::AuthKind::OAuth2Delegated {
            writeln!(
                out,
                "  users sign in with `exgate login -c {name}`, then `exgate connection test {name}`"
            )?;
            continue;
        }
        drop(out);
        let options = exgate_core::diagnose::TestOptions {
            account: None,
            mailbox: planned.test_mailbox.clone(),
            redirect_uri: None,
        };
        let report = exgate_core::diagnose::test_connection(
            &ctx.connections,
            &ctx.signin,
            &ctx.mailboxes,
            name,
            &options,
        )
        .await?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "connection test of {name}:")?;
        if !crate::connection::print_test(&mut out, &report)? {
            failed.push(name.clone());
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(crate::connection::TestNotOk(format!(
            "the connection test of {} did not pass; the steps above say what to fix",
            failed.join(", ")
        ))
        .into())
    }
}
