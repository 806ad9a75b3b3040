//! `cargo xtask <task>`: the project's automation, in Rust, with few dependencies.
//!
//! - `ci`: what CI runs — formatting, lints, then every test of the workspace.
//! - `bench`: a cached token lookup (criterion), EWS answers decoded (MB/s), then a
//!   20,000-message export from the throttled mock Graph and one over the throttled mock EWS,
//!   each reported as a fraction of the allowed rate.
//! - `demo`: exgate-mock and exgate-server wired together, a mailbox listed over Graph and over
//!   EWS, with what to try (`--once`: stop after that).
//! - `fixtures`: generate a mailbox of any size for `exgate-mock --mailboxes`.
#![allow(clippy::print_stderr, clippy::print_stdout)]

mod demo;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};

const TASKS: &str = "tasks:\n  ci     cargo fmt --check, cargo clippy --all-targets -D warnings, then the workspace's tests\n  bench  the token cache and EWS decoding benchmarks, then the Graph and EWS exports against the throttled mock\n  demo [--once]  exgate-mock and exgate-server wired together, Graph and EWS side by side, with what to try (--once: stop after showing)\n  fixtures [--mailbox A --out F --messages N …]  generate a mailbox for exgate-mock --mailboxes (default: 20,000 messages for Adele)";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("cannot run {cargo}"))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

fn has_nextest() -> bool {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    Command::new(cargo)
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Debian packages the tests use, each with a file that shows it is there.
const DEBIAN_TOOLS: &[(&str, &str, &str)] = &[
    (
        "time",
        "/usr/bin/time",
        "GNU time measures the peak memory of streamed downloads",
    ),
    (
        "libxml2-utils",
        "/usr/bin/xmllint",
        "xmllint validates EWS requests and responses against Microsoft's schema",
    ),
];

/// Installs what a fresh machine lacks of [`DEBIAN_TOOLS`] (CI runs as root); a tool that
/// cannot be installed is an error that says why, never a skipped test.
fn debian_tools() -> anyhow::Result<()> {
    let missing: Vec<_> = DEBIAN_TOOLS
        .iter()
        .filter(|(_, file, _)| !Path::new(file).exists())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|(name, _, _)| *name).collect();
    for (name, _, why) in &missing {
        eprintln!("xtask: installing Debian's {name}: {why}");
    }
    let run = |args: &[&str]| -> anyhow::Result<()> {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("cannot run apt-get (the tests need Debian packages)")?;
        if !status.success() {
            bail!("`apt-get {}` failed ({status})", args.join(" "));
        }
        Ok(())
    };
    run(&["update"])?;
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend(&names);
    run(&install).with_context(|| {
        format!(
            "installing {} failed; install it by hand (as root: apt-get install {})",
            names.join(", "),
            names.join(" ")
        )
    })?;
    for (name, file, _) in &missing {
        if !Path::new(file).exists() {
            bail!("{name} was installed but {file} is still missing");
        }
    }
    Ok(())
}

fn ci() -> anyhow::Result<()> {
    debian_tools()?;
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])?;
    if has_nextest() {
        // nextest does not run doc tests; run them first so that the last line is nextest's
        // summary over every test binary.
        cargo(&["test", "--workspace", "--locked", "--doc"])?;
        cargo(&[
            "nextest",
            "run",
            "--workspace",
            "--locked",
            "--no-fail-fast",
        ])?;
    } else {
        eprintln!(
            "xtask: cargo-nextest not found; running cargo test (install it with `cargo install cargo-nextest --locked`)"
        );
        cargo(&["test", "--workspace", "--locked"])?;
    }
    Ok(())
}

/// Generates a mailbox for `exgate-mock --mailboxes`: the mock's own generator, with its flags.
fn fixtures(args: Vec<String>) -> anyhow::Result<()> {
    let mut all = vec![
        "run",
        "-q",
        "-p",
        "exgate-testkit",
        "--bin",
        "exgate-mock",
        "--",
        "fixtures",
    ];
    if args.is_empty() {
        all.extend([
            "--mailbox",
            "adele@contoso.onmicrosoft.com",
            "--out",
            "target/fixtures/adele.json",
        ]);
        std::fs::create_dir_all(workspace_root().join("target/fixtures"))?;
    }
    all.extend(args.iter().map(String::as_str));
    cargo(&all)
}

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    let result = match task.as_deref() {
        Some("ci") => ci(),
        Some("demo") => demo::run(
            &workspace_root(),
            &cargo,
            std::env::args().nth(2).as_deref() == Some("--once"),
        ),
        Some("fixtures") => fixtures(std::env::args().skip(2).collect()),
        Some("bench") => cargo(&["bench", "-p", "exgate-core", "--bench", "token_cache"])
            .and_then(|()| cargo(&["bench", "-p", "exgate-core", "--bench", "ews_decode"]))
            .and_then(|()| cargo(&["bench", "-p", "exgate-core", "--bench", "graph_export"]))
            .and_then(|()| cargo(&["bench", "-p", "exgate-core", "--bench", "ews_export"]))
            .and_then(|()| cargo(&["bench", "-p", "exgate-server", "--bench", "gateway"])),
        Some(other) => Err(anyhow::anyhow!("unknown task `{other}`\n{TASKS}")),
        None => Err(anyhow::anyhow!("no task given\n{TASKS}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}
