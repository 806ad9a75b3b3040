//! `exgate-mock`: runs the mock Entra ID until SIGINT or SIGTERM.
//!
//! When ready it prints one JSON line on stdout with its URLs, the seeded tenants and their
//! test credentials, so scripts and tests can wait for it and find it.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use axum::Router;
use axum::routing::get;
use exgate_testkit::entra::{MockEntra, Seed};
use serde_json::{Value, json};

const USAGE: &str = "usage: exgate-mock [--listen IP:PORT] [--tls [--ca-out PATH]] [--seed FILE] \
                     [--token-lifetime SECS] [--auto-approve UPN]
  --listen IP:PORT        where to listen (default 127.0.0.1:0, a free port)
  --tls                   serve HTTPS with a certificate from a fresh test CA
  --ca-out PATH           write that CA's certificate (PEM) to PATH (default: a temporary file)
  --seed FILE             the directory to serve, as JSON (default: the contoso seed)
  --token-lifetime SECS   lifetime of issued tokens (default 3600)
  --auto-approve UPN      /authorize signs this user in without showing the form";

#[derive(Debug)]
struct Args {
    listen: SocketAddr,
    tls: bool,
    ca_out: Option<PathBuf>,
    seed: Option<PathBuf>,
    token_lifetime: Option<u64>,
    auto_approve: Option<String>,
}

fn parse_args(argv: impl IntoIterator<Item = String>) -> anyhow::Result<Args> {
    let mut args = argv.into_iter();
    let mut parsed = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        tls: false,
        ca_out: None,
        seed: None,
        token_lifetime: None,
        auto_approve: None,
    };
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--listen" => {
                let v = value("--listen")?;
                parsed.listen = v
                    .parse()
                    .with_context(|| format!("`{v}` is not IP:PORT\n{USAGE}"))?;
            }
            "--tls" => parsed.tls = true,
            "--ca-out" => parsed.ca_out = Some(PathBuf::from(value("--ca-out")?)),
            "--seed" => parsed.seed = Some(PathBuf::from(value("--seed")?)),
            "--token-lifetime" => {
                let v = value("--token-lifetime")?;
                let secs: u64 = v.parse().with_context(|| {
                    format!("--token-lifetime `{v}` is not a number of seconds\n{USAGE}")
                })?;
                if secs == 0 {
                    bail!("--token-lifetime must be at least 1 second\n{USAGE}");
                }
                parsed.token_lifetime = Some(secs);
            }
            "--auto-approve" => parsed.auto_approve = Some(value("--auto-approve")?),
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    if parsed.ca_out.is_some() && !parsed.tls {
        bail!("--ca-out only makes sense with --tls\n{USAGE}");
    }
    Ok(parsed)
}

fn load_seed(args: &Args) -> anyhow::Result<Seed> {
    let seed = match &args.seed {
        None => Seed::contoso(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the seed file {}", path.display()))?;
            Seed::from_json(&text)
                .with_context(|| format!("the seed file {} is unusable", path.display()))?
        }
    };
    if let Some(upn) = &args.auto_approve {
        let known = seed
            .tenants
            .iter()
            .flat_map(|t| &t.users)
            .any(|u| u.upn.eq_ignore_ascii_case(upn));
        if !known {
            bail!("--auto-approve `{upn}`: no seeded tenant has this user");
        }
    }
    Ok(seed)
}

fn ready_line(mock: &MockEntra, seed: &Seed, ca_cert: Option<&PathBuf>) -> Value {
    let base = mock.base_url();
    let first = seed
        .tenants
        .first()
        .map(|t| t.id.clone())
        .unwrap_or_default();
    let tenants: Vec<Value> = seed
        .tenants
        .iter()
        .map(|t| {
            json!({
                "id": t.id,
                "domain": t.domain,
                "users": t.users.iter().map(|u| json!({"upn": u.upn, "password": u.password})).collect::<Vec<_>>(),
                "apps": t.apps.iter().map(|a| json!({
                    "client_id": a.client_id,
                    "name": a.name,
                    "public_client": a.public_client,
                    "secret": a.secrets.first().map(|s| s.value.clone()),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "ready": true,
        "base_url": base,
        "entra": {
            "authority": mock.authority(&first),
            "discovery_url": mock.discovery_url(&first),
        },
        "ca_cert": ca_cert.map(|p| p.display().to_string()),
        "tenants": tenants,
    })
}

async fn run(args: Args, seed: Seed) -> anyhow::Result<()> {
    let health = Router::new().route("/healthz", get(|| async { "ok" }));
    let mock = MockEntra::bind(args.listen, seed.clone(), args.tls, health)
        .await
        .with_context(|| format!("cannot serve on {}", args.listen))?;
    if let Some(secs) = args.token_lifetime {
        mock.set_token_lifetime(secs);
    }
    if let Some(upn) = &args.auto_approve {
        mock.set_auto_approve(Some(upn));
    }
    // The temporary directory lives as long as the process.
    let mut _temp_dir = None;
    let ca_cert = match mock.ca_pem() {
        None => None,
        Some(pem) => {
            let path = match &args.ca_out {
                Some(path) => path.clone(),
                None => {
                    let dir = tempfile::Builder::new()
                        .prefix("exgate-mock-")
                        .tempdir()
                        .context("cannot create a temporary directory for the CA certificate")?;
                    let path = dir.path().join("ca.pem");
                    _temp_dir = Some(dir);
                    path
                }
            };
            std::fs::write(&path, pem).with_context(|| {
                format!("cannot write the CA certificate to {}", path.display())
            })?;
            Some(path)
        }
    };
    // Listen for signals before announcing readiness: a caller may stop us right away.
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    println!("{}", ready_line(&mock, &seed, ca_cert.as_ref()));
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    mock.shutdown().await;
    Ok(())
}

fn main() -> ExitCode {
    // A problem with the command line or the seed: exit code 2, before anything starts.
    let prepared = parse_args(std::env::args().skip(1))
        .and_then(|args| load_seed(&args).map(|seed| (args, seed)));
    let (args, seed) = match prepared {
        Ok(ready) => ready,
        Err(e) => {
            eprintln!("exgate-mock: {e:#}");
            return ExitCode::from(2);
        }
    };
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(args, seed)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("exgate-mock: {e:#}");
            ExitCode::from(1)
        }
    }
}
