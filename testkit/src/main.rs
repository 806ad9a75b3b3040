//! `exgate-mock`: runs the testkit's mock servers until SIGINT or SIGTERM.
//!
//! When ready it prints one JSON line on stdout with its base URL, so scripts and tests can wait
//! for it and find it.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use axum::Router;
use axum::routing::get;
use exgate_testkit::MockServer;
use serde_json::json;

const USAGE: &str = "usage: exgate-mock [--listen IP:PORT]   (default 127.0.0.1:0, a free port)";

fn parse_args() -> anyhow::Result<SocketAddr> {
    let mut args = std::env::args().skip(1);
    let mut listen: SocketAddr = "127.0.0.1:0".parse()?;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                let value = args.next().context(USAGE)?;
                listen = value
                    .parse()
                    .with_context(|| format!("`{value}` is not IP:PORT; {USAGE}"))?;
            }
            "-h" | "--help" => anyhow::bail!("{USAGE}"),
            other => anyhow::bail!("unknown argument `{other}`; {USAGE}"),
        }
    }
    Ok(listen)
}

async fn run(listen: SocketAddr) -> anyhow::Result<()> {
    let router = Router::new().route("/healthz", get(|| async { "ok" }));
    let server = MockServer::bind(listen, router)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let ready = json!({ "ready": true, "base_url": server.base_url() });
    println!("{ready}");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {},
    }
    server.shutdown().await;
    Ok(())
}

fn main() -> ExitCode {
    let listen = match parse_args() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("exgate-mock: {e:#}");
            return ExitCode::from(2);
        }
    };
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(listen)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("exgate-mock: {e:#}");
            ExitCode::from(1)
        }
    }
}
