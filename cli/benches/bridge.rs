//! The bridge's cost, measured as a process: 10,000 messages fetched with one `FETCH 1:10000
//! (UID BODY.PEEK[])` through `exgate bridge` (LOGIN with the local password) against the same
//! fetch straight from the mock's IMAP with XOAUTH2 (target: the bridge at 90% or more of the
//! direct rate), and the resident memory of the `exgate bridge` process idle and holding 200
//! signed-in idle sessions. Prints `##row|measure|measured|target` lines for `cargo xtask bench`.
//!
//! `EXGATE_BIN` names the `exgate` to run (xtask passes the shipped build); default: this
//! package's.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};
use exgate_testkit::graph::fixtures::{FixtureSpec, generate};
use exgate_testkit::mailproto::MailSwitchChange;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

const MESSAGES: usize = 10_000;
const IDLE_SESSIONS: usize = 200;
const ROUNDS: usize = 9;

fn exgate() -> PathBuf {
    std::env::var_os("EXGATE_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_exgate")),
        PathBuf::from,
    )
}

fn command(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(exgate());
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("EXGATE_SYSTEM_CONFIG", home.join("system.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn run(home: &Path, args: &[&str]) -> String {
    let out = command(home, args).output().await.expect("exgate runs");
    assert!(
        out.status.success(),
        "exgate {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Reads one IMAP response up to the tagged line, literals included; returns the bytes read and
/// the number of untagged FETCH responses.
async fn until_tagged<S: AsyncRead + Unpin>(r: &mut BufReader<S>, tag: &str) -> (usize, usize) {
    let (mut bytes, mut fetches) = (0, 0);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line).await.expect("read");
        assert!(n > 0, "the server closed the connection");
        bytes += n;
        if line.starts_with(tag.as_bytes()) {
            assert!(
                line[tag.len()..].starts_with(b" OK"),
                "{}",
                String::from_utf8_lossy(&line)
            );
            return (bytes, fetches);
        }
        if line.starts_with(b"* ") && line.windows(7).any(|w| w == b" FETCH ") {
            fetches += 1;
        }
        let trimmed = line.trim_ascii_end();
        if let Some(open) = trimmed
            .strip_suffix(b"}")
            .and_then(|b| b.iter().rposition(|&c| c == b'{'))
        {
            let digits = &trimmed[open + 1..trimmed.len() - 1];
            let len: usize = std::str::from_utf8(digits).unwrap().parse().unwrap();
            let mut literal = vec![0u8; len];
            r.read_exact(&mut literal).await.expect("literal");
            bytes += len;
        }
    }
}

/// Signs in (`login`: the command after the greeting), selects INBOX and fetches the messages;
/// returns how many came and how long the FETCH took (sign-in not counted: it is the bridge's
/// argon2 check and Exchange's XOAUTH2, once per session).
async fn fetch_all<S: AsyncRead + AsyncWrite + Unpin>(stream: S, login: &str) -> (usize, Duration) {
    let mut r = BufReader::new(stream);
    let mut greeting = Vec::new();
    r.read_until(b'\n', &mut greeting).await.unwrap();
    r.get_mut().write_all(login.as_bytes()).await.unwrap();
    until_tagged(&mut r, "a1").await;
    r.get_mut().write_all(b"a2 SELECT INBOX\r\n").await.unwrap();
    until_tagged(&mut r, "a2").await;
    let started = Instant::now();
    r.get_mut()
        .write_all(format!("a3 FETCH 1:{MESSAGES} (UID BODY.PEEK[])\r\n").as_bytes())
        .await
        .unwrap();
    let (_, fetched) = until_tagged(&mut r, "a3").await;
    let took = started.elapsed();
    r.get_mut().write_all(b"a4 LOGOUT\r\n").await.unwrap();
    (fetched, took)
}

fn tls(ca_pem: &str) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --benches` runs benches with no `--bench`: nothing to measure then.
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bench());
}

async fn bench() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    mock.load_mailbox(generate(FixtureSpec {
        mailbox: seed::ADELE.into(),
        // The generator spreads messages over folders; the Inbox gets more than half.
        messages: 2 * MESSAGES,
        attachment_every: 10,
        events_years: 0,
        contacts: 0,
        seed: 5,
    }))
    .unwrap();
    mock.change_mail_switches(&MailSwitchChange {
        imap_connection_limit: Some(IDLE_SESSIONS + 10),
        ..MailSwitchChange::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let ca = home.join("mail-ca.pem");
    std::fs::write(&ca, mock.mail_ca_pem()).unwrap();
    std::fs::create_dir_all(home.join("config/exgate")).unwrap();
    std::fs::write(
        home.join("config/exgate/exgate.toml"),
        format!(
            "[endpoints]\nauthority_host = \"{}\"\nimap_url = \"{}\"\n\n[tls]\nca_file = \"{}\"\n\n[bridge]\nprotocols = [\"imap\"]\nimap_port = 0\nmax_connections = 1000\n",
            mock.base_url(),
            mock.imap_url(),
            ca.display()
        ),
    )
    .unwrap();
    let secret = home.join("secret");
    std::fs::write(&secret, seed::DAEMON_APP_SECRET).unwrap();
    run(
        home,
        &[
            "connection",
            "add",
            "daemon",
            "--tenant",
            seed::TENANT_DOMAIN,
            "--auth",
            "oauth2-app-only",
            "--client-id",
            seed::DAEMON_APP,
            "--client-secret-file",
            secret.to_str().unwrap(),
        ],
    )
    .await;
    let added: serde_json::Value =
        serde_json::from_str(&run(home, &["bridge", "user", "add", seed::ADELE, "--json"]).await)
            .unwrap();
    let password = added["password"].as_str().unwrap().to_owned();
    let token = run(home, &["token", "--resource", "imap"])
        .await
        .trim()
        .to_owned();

    let mut bridge = command(home, &["bridge"]).spawn().unwrap();
    let pid = bridge.id().unwrap();
    let mut lines = BufReader::new(bridge.stderr.take().unwrap()).lines();
    let mut bridge_port = 0;
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(rest) = line.split("imap on 127.0.0.1:").nth(1) {
            bridge_port = rest.split_whitespace().next().unwrap().parse().unwrap();
        }
        if line.contains("ready") {
            break;
        }
    }
    assert_ne!(bridge_port, 0, "the bridge named no IMAP port");
    let idle = rss_kib(pid);

    let connector = tls(&mock.mail_ca_pem());
    let xoauth2 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!(
            "user={}\x01auth=Bearer {token}\x01\x01",
            seed::ADELE
        ))
    };
    let direct_login = format!("a1 AUTHENTICATE XOAUTH2 {xoauth2}\r\n");
    let bridge_login = format!("a1 LOGIN \"{}\" \"{password}\"\r\n", seed::ADELE);
    let (mut direct_best, mut bridge_best) = (Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        let tcp = TcpStream::connect(("127.0.0.1", port_of(&mock.imap_url())))
            .await
            .unwrap();
        let stream = connector
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap();
        let (fetched, took) = fetch_all(stream, &direct_login).await;
        assert_eq!(fetched, MESSAGES);
        direct_best = direct_best.min(took);

        let tcp = TcpStream::connect(("127.0.0.1", bridge_port))
            .await
            .unwrap();
        let (fetched, took) = fetch_all(tcp, &bridge_login).await;
        assert_eq!(fetched, MESSAGES);
        bridge_best = bridge_best.min(took);
    }
    let share = direct_best.as_secs_f64() / bridge_best.as_secs_f64() * 100.0;
    println!(
        "bridge: {MESSAGES} messages direct {:.2} s, through the bridge {:.2} s (best of {ROUNDS})",
        direct_best.as_secs_f64(),
        bridge_best.as_secs_f64()
    );
    println!(
        "##row|bridge fetch rate, share of direct XOAUTH2 ({MESSAGES} messages)|{share:.0}%|>= 90%"
    );

    let mut sessions = Vec::new();
    for _ in 0..IDLE_SESSIONS {
        let mut r = BufReader::new(
            TcpStream::connect(("127.0.0.1", bridge_port))
                .await
                .unwrap(),
        );
        let mut greeting = Vec::new();
        r.read_until(b'\n', &mut greeting).await.unwrap();
        r.get_mut()
            .write_all(bridge_login.as_bytes())
            .await
            .unwrap();
        until_tagged(&mut r, "a1").await;
        sessions.push(r);
    }
    let loaded = rss_kib(pid);
    println!(
        "##row|bridge resident memory idle|{:.1} MiB|",
        idle as f64 / 1024.0
    );
    println!(
        "##row|bridge resident memory, {IDLE_SESSIONS} signed-in idle sessions|{:.1} MiB ({:.0} KiB each)|",
        loaded as f64 / 1024.0,
        loaded.saturating_sub(idle) as f64 / IDLE_SESSIONS as f64
    );
    drop(sessions);
    let _ = bridge.start_kill();
    let _ = bridge.wait().await;
}
