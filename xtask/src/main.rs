//! `cargo xtask <task>`: the project's automation, in Rust, with few dependencies.
//!
//! - `ci`: what CI runs — formatting, lints, then every test of the workspace.
//! - `bench`: every benchmark of the workspace built once with the `perf` profile (in its own
//!   `target/perf`, release artifacts untouched), run one after the other, and one table of what
//!   each measured against its target: cached token lookups through the sign-in service, the
//!   gateway against calling the mock directly, `exgate token` as a process against `true`, the
//!   Graph and EWS exports against the throttled mocks, resident memory of the gateway.
//! - `demo`: exgate-mock and exgate-server wired together, a mailbox listed over Graph and over
//!   EWS, with what to try (`--once`: stop after that).
//! - `fixtures`: generate a mailbox of any size for `exgate-mock --mailboxes`.
#![allow(clippy::print_stderr, clippy::print_stdout)]

mod demo;

use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context as _, bail};

const TASKS: &str = "tasks:\n  ci     cargo fmt --check, cargo clippy --all-targets -D warnings, then the workspace's tests\n  bench [NAME…]  every benchmark, or the named ones (profile perf, target/perf), then one table of measured values against targets\n  demo [--once]  exgate-mock and exgate-server wired together, Graph and EWS side by side, with what to try (--once: stop after showing)\n  fixtures [--mailbox A --out F --messages N …]  generate a mailbox for exgate-mock --mailboxes (default: 20,000 messages for Adele)";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    cargo_env(args, &[])
}

/// Runs cargo with `args` and the extra environment variables `env`.
fn cargo_env(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("cannot run {cargo}"))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// The benchmarks `cargo xtask bench` runs, in order, by package.
const BENCHES: &[(&str, &str)] = &[
    ("exgate-core", "signin_token"),
    ("exgate-core", "token_cache"),
    ("exgate-core", "ews_decode"),
    ("exgate-server", "gateway"),
    ("exgate-cli", "token_process"),
    ("exgate-cli", "bridge"),
    ("exgate-server", "memory"),
    ("exgate-core", "graph_export"),
    ("exgate-core", "ews_export"),
    ("exgate-server", "instances"),
    ("exgate-server", "notify"),
];

/// Builds every benchmark once with the `perf` profile and returns each one's executable.
fn build_benches(only: &[String]) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec![
        "bench",
        "--profile",
        "perf",
        "--no-run",
        "--message-format",
        "json-render-diagnostics",
    ];
    for (package, bench) in selected(only) {
        args.extend(["-p", package, "--bench", bench]);
    }
    eprintln!("xtask: cargo {}", args.join(" "));
    let out = Command::new(&cargo)
        .args(&args)
        .current_dir(workspace_root())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {cargo}"))?;
    if !out.status.success() {
        bail!("building the benchmarks failed ({})", out.status);
    }
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let is_bench = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "bench"));
        if let (true, Some(name), Some(exe)) = (
            is_bench,
            msg["target"]["name"].as_str(),
            msg["executable"].as_str(),
        ) {
            found.push((name.to_owned(), PathBuf::from(exe)));
        }
    }
    Ok(found)
}

/// Runs one benchmark, passing its output through, and returns its `##row|…` lines' cells.
fn run_bench(exe: &Path, env: &[(&str, &OsStr)]) -> anyhow::Result<Vec<[String; 3]>> {
    eprintln!("xtask: {}", exe.display());
    let mut child = Command::new(exe)
        .arg("--bench")
        .envs(env.iter().copied())
        .current_dir(workspace_root())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    let mut rows = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            match line
                .strip_prefix("##row|")
                .map(|r| r.split('|').collect::<Vec<_>>())
            {
                Some(cells) if cells.len() == 3 => {
                    rows.push([cells[0].into(), cells[1].into(), cells[2].into()]);
                }
                _ => println!("{line}"),
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("{} failed ({status})", exe.display());
    }
    Ok(rows)
}

/// The benchmarks named in `only` (all when it is empty).
fn selected(only: &[String]) -> impl Iterator<Item = &'static (&'static str, &'static str)> + '_ {
    BENCHES
        .iter()
        .filter(move |(_, name)| only.is_empty() || only.iter().any(|o| o == name))
}

/// `cargo xtask bench [NAME…]`: one build, every benchmark (or the named ones), one table.
fn bench(only: &[String]) -> anyhow::Result<()> {
    if let Some(unknown) = only
        .iter()
        .find(|o| !BENCHES.iter().any(|(_, name)| name == o))
    {
        bail!(
            "no benchmark named `{unknown}`; there are: {}",
            BENCHES
                .iter()
                .map(|(_, n)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let perf = target_dir().join("perf");
    let shipped = perf.join("shipped");
    let exgate = shipped.join("exgate");
    // The `exgate` that ships, for the CLI's benchmarks: built alone, so no dev-only feature of
    // the benchmarks' build reaches it, and kept aside (the benchmarks' build writes its own
    // `exgate` in its place).
    if selected(only).any(|(package, _)| *package == "exgate-cli") {
        cargo(&[
            "build",
            "--profile",
            "perf",
            "-p",
            "exgate-cli",
            "--bin",
            "exgate",
        ])?;
        std::fs::create_dir_all(&shipped)?;
        std::fs::copy(perf.join("exgate"), &exgate).context("keeping the exgate binary aside")?;
    }
    let built = build_benches(only)?;
    let mut table = Vec::new();
    for (_, name) in selected(only) {
        let exe = built
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, e)| e)
            .with_context(|| format!("the bench {name} was not built"))?;
        table.extend(run_bench(exe, &[("EXGATE_BIN", exgate.as_os_str())])?);
        if *name == "memory" {
            // Again as the systemd unit runs the gateway (docs/scaling): glibc's malloc keeps
            // freed memory in one arena per thread, up to eight per core, and the unit allows two.
            table.extend(run_bench(exe, &[("MALLOC_ARENA_MAX", OsStr::new("2"))])?);
        }
    }
    let widths = [0, 1, 2].map(|i| {
        table
            .iter()
            .map(|r| r[i].chars().count())
            .chain([["measure", "measured", "target"][i].len()])
            .max()
            .unwrap_or(0)
    });
    println!();
    println!(
        "{:<w0$}  {:>w1$}  {:<w2$}",
        "measure",
        "measured",
        "target",
        w0 = widths[0],
        w1 = widths[1],
        w2 = widths[2]
    );
    for [a, b, c] in &table {
        println!(
            "{a:<w0$}  {b:>w1$}  {c:<w2$}",
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
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

/// Debian packages the tests use, each with a file that shows it is there (`*` stands for one
/// path component, such as PostgreSQL's major version).
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
    (
        "postgresql",
        "/usr/lib/postgresql/*/bin/initdb",
        "the store's PostgreSQL tests start throwaway clusters (exgate_testkit::postgres)",
    ),
    (
        "chromium",
        "/usr/bin/chromium",
        "the admin console's browser tests run headless Chromium",
    ),
    (
        "chromium-driver",
        "/usr/bin/chromedriver",
        "the admin console's browser tests drive Chromium over WebDriver",
    ),
];

/// Whether a file matching `pattern` exists; a `*` component matches any one folder name.
fn installed(pattern: &str) -> bool {
    match pattern.split_once("/*/") {
        None => Path::new(pattern).exists(),
        Some((dir, rest)) => std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|entry| installed(&format!("{}/{rest}", entry.path().display()))),
    }
}

/// Installs what a fresh machine lacks of [`DEBIAN_TOOLS`] (CI runs as root); a tool that
/// cannot be installed is an error that says why, never a skipped test.
fn debian_tools() -> anyhow::Result<()> {
    let missing: Vec<_> = DEBIAN_TOOLS
        .iter()
        .filter(|(_, file, _)| !installed(file))
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
        if !installed(file) {
            bail!("{name} was installed but {file} is still missing");
        }
    }
    Ok(())
}

fn ci() -> anyhow::Result<()> {
    debian_tools()?;
    // A CI run builds once from a clean clone: incremental state would only double the target
    // directory (several GB for the test binaries) and slow the build. A developer's run keeps it.
    let env: &[(&str, &str)] = if std::env::var_os("CI").is_some_and(|v| !v.is_empty())
        && std::env::var_os("CARGO_INCREMENTAL").is_none()
    {
        &[("CARGO_INCREMENTAL", "0")]
    } else {
        &[]
    };
    let cargo = |args: &[&str]| cargo_env(args, env);
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
        Some("bench") => bench(&std::env::args().skip(2).collect::<Vec<_>>()),
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
