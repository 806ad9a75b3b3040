//! `cargo xtask demo`: exgate-mock (Entra ID, Graph, EWS, IMAP, POP, SMTP), exgate-server and
//! `exgate bridge` wired together, with seeded mailboxes, four connections (Graph app-only, Graph
//! delegated, an Exchange Server connection over EWS with NTLM, and IMAP + SMTP with XOAUTH2), an
//! API key, a static user and a bridge user; lists a few messages over Graph, EWS and IMAP, sends
//! one over SMTP, then prints what to try. `cargo xtask demo --once` stops after that.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context as _, bail};
use serde_json::Value;

const GATEWAY: &str = "127.0.0.1:8087";

/// Where cargo put the binaries: `CARGO_TARGET_DIR` when set, else the workspace's `target`.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| root.join("target"), |p| root.join(p))
}

fn bin(root: &Path, name: &str) -> PathBuf {
    target_dir(root).join("debug").join(name)
}

/// Sets the demo's isolated configuration and data folders.
fn isolated(cmd: &mut Command, home: &Path) {
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("EXGATE_SYSTEM_CONFIG", home.join("none.toml"));
}

fn first_line(
    child: &mut Child,
    what: &str,
) -> anyhow::Result<(String, BufReader<std::process::ChildStdout>)> {
    let stdout = child
        .stdout
        .take()
        .with_context(|| format!("{what} has no stdout"))?;
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .with_context(|| format!("reading {what}'s first line"))?;
    if line.trim().is_empty() {
        bail!("{what} exited before it was ready");
    }
    Ok((line, reader))
}

fn exgate(root: &Path, home: &Path, args: &[&str]) -> anyhow::Result<String> {
    let mut cmd = Command::new(bin(root, "exgate"));
    isolated(&mut cmd, home);
    let out = cmd.args(args).output().context("running exgate")?;
    if !out.status.success() {
        bail!(
            "`exgate {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A minimal HTTP/1.1 POST with Basic auth to the local gateway.
fn post(path: &str, basic: &str, body: &str) -> anyhow::Result<String> {
    let mut s = TcpStream::connect(GATEWAY).context("connecting to the gateway")?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {GATEWAY}\r\nAuthorization: Basic {basic}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    if !answer.starts_with("HTTP/1.1 2") {
        bail!("POST {path} failed: {answer}");
    }
    Ok(answer)
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(T[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Runs the demo; with `once`, stops both servers after showing what works instead of waiting
/// for Ctrl-C.
pub(crate) fn run(
    root: &Path,
    cargo: &dyn Fn(&[&str]) -> anyhow::Result<()>,
    once: bool,
) -> anyhow::Result<()> {
    cargo(&[
        "build",
        "-p",
        "exgate-testkit",
        "-p",
        "exgate-server",
        "-p",
        "exgate-cli",
    ])?;
    let home = root.join("target/demo");
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(home.join("config/exgate"))?;

    let mut mock = Command::new(bin(root, "exgate-mock"));
    mock.stdout(Stdio::piped()).stdin(Stdio::null());
    let mut mock = mock.spawn().context("starting exgate-mock")?;
    let (ready, _mock_out) = first_line(&mut mock, "exgate-mock")?;
    let ready: Value = serde_json::from_str(&ready).context("reading exgate-mock's ready line")?;
    let base = ready["base_url"]
        .as_str()
        .context("no base_url")?
        .to_owned();
    let graph = ready["graph_url"]
        .as_str()
        .map_or_else(|| format!("{base}/graph/v1.0"), str::to_owned);
    let ews = ready["ews_url"]
        .as_str()
        .map_or_else(|| format!("{base}/EWS/Exchange.asmx"), str::to_owned);
    let tenant = &ready["tenants"][0];
    let tid = tenant["id"].as_str().context("no tenant")?.to_owned();
    let app = |name: &str| {
        tenant["apps"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == name))
            .cloned()
            .unwrap_or_default()
    };
    let (daemon, web) = (app("exgate daemon"), app("exgate gateway"));
    let user = &tenant["users"][0];
    let (upn, password) = (
        user["upn"].as_str().unwrap_or_default().to_owned(),
        user["password"].as_str().unwrap_or_default().to_owned(),
    );

    let field = |name: &str| -> anyhow::Result<String> {
        ready[name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("exgate-mock's ready line has no {name}"))
    };
    let (imap, smtp, mail_ca) = (
        field("imap_url")?,
        field("smtp_url")?,
        field("mail_ca_cert")?,
    );
    std::fs::write(
        home.join("config/exgate/exgate.toml"),
        format!(
            "[server]\nlisten = \"{GATEWAY}\"\n\n[endpoints]\nauthority_host = \"{base}\"\ngraph_url = \"{graph}\"\nimap_url = \"{imap}\"\nsmtp_url = \"{smtp}\"\n\n[tls]\nca_file = \"{mail_ca}\"\n\n[bridge]\nprotocols = [\"imap\", \"smtp\"]\nimap_port = 0\nsmtp_port = 0\n"
        ),
    )?;
    let secret_file = |name: &str, value: &Value| -> anyhow::Result<PathBuf> {
        let p = home.join(name);
        std::fs::write(&p, value.as_str().unwrap_or_default())?;
        Ok(p)
    };
    let daemon_secret = secret_file("daemon.secret", &daemon["secret"])?;
    let web_secret = secret_file("web.secret", &web["secret"])?;
    exgate(
        root,
        &home,
        &[
            "connection",
            "add",
            "contoso-app",
            "--tenant",
            &tid,
            "--auth",
            "oauth2-app-only",
            "--client-id",
            daemon["client_id"].as_str().unwrap_or_default(),
            "--client-secret-file",
            &daemon_secret.display().to_string(),
        ],
    )?;
    exgate(
        root,
        &home,
        &[
            "connection",
            "add",
            "contoso",
            "--tenant",
            &tid,
            "--auth",
            "oauth2-delegated",
            "--client-id",
            web["client_id"].as_str().unwrap_or_default(),
            "--client-secret-file",
            &web_secret.display().to_string(),
            "--redirect-uri",
            &format!("http://{GATEWAY}/service/oauth2/authorize"),
        ],
    )?;

    // Exchange Server on premises: the mock's EWS with NTLM, as the seeded user.
    let password_file = home.join("onprem.password");
    std::fs::write(&password_file, &password)?;
    exgate(
        root,
        &home,
        &[
            "connection",
            "add",
            "onprem",
            "--ews-url",
            &ews,
            "--auth",
            "ntlm",
            "--username",
            &upn,
            "--password-file",
            &password_file.display().to_string(),
        ],
    )?;
    // Exchange Online over IMAP (reading) and SMTP (sending), app-only XOAUTH2.
    exgate(
        root,
        &home,
        &[
            "connection",
            "add",
            "contoso-imap",
            "--tenant",
            &tid,
            "--auth",
            "oauth2-app-only",
            "--client-id",
            daemon["client_id"].as_str().unwrap_or_default(),
            "--client-secret-file",
            &daemon_secret.display().to_string(),
            "--backend",
            "imap",
            "--send",
            "smtp",
        ],
    )?;
    let over_graph = exgate(
        root,
        &home,
        &[
            "mail",
            "list",
            "-c",
            "contoso-app",
            "--mailbox",
            &upn,
            "--limit",
            "3",
        ],
    )?;
    let over_ews = exgate(
        root,
        &home,
        &["mail", "list", "-c", "onprem", "--limit", "3"],
    )?;
    let over_imap = exgate(
        root,
        &home,
        &[
            "mail",
            "list",
            "-c",
            "contoso-imap",
            "--mailbox",
            &upn,
            "--limit",
            "3",
        ],
    )?;
    let sent_smtp = exgate(
        root,
        &home,
        &[
            "mail",
            "send",
            "-c",
            "contoso-imap",
            "--mailbox",
            &upn,
            "--to",
            &upn,
            "--subject",
            "Hello over SMTP with XOAUTH2",
            "--body",
            "Sent by cargo xtask demo through exgate's SMTP submission.",
        ],
    )?;
    // The bridge: a local password for software that knows nothing of OAuth2.
    let bridge_user = exgate(
        root,
        &home,
        &[
            "bridge",
            "user",
            "add",
            &upn,
            "-c",
            "contoso-imap",
            "--json",
        ],
    )?;
    let bridge_password = serde_json::from_str::<Value>(&bridge_user)
        .ok()
        .and_then(|v| v["password"].as_str().map(str::to_owned))
        .context("exgate bridge user add printed no password")?;
    let mut bridge = Command::new(bin(root, "exgate"));
    isolated(&mut bridge, &home);
    bridge
        .arg("bridge")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut bridge = bridge.spawn().context("starting exgate bridge")?;
    let mut bridge_ports = Vec::new();
    {
        let stderr = bridge.stderr.take().context("exgate bridge's stderr")?;
        let mut lines = BufReader::new(stderr);
        loop {
            let mut line = String::new();
            if lines.read_line(&mut line)? == 0 {
                bail!("exgate bridge stopped before it was ready");
            }
            if line.contains("ready") {
                break;
            }
            if let Some(listening) = line.trim().strip_prefix("exgate bridge: ") {
                bridge_ports.push(listening.to_owned());
            }
        }
    }

    let mut key_cmd = Command::new(bin(root, "exgate-server"));
    isolated(&mut key_cmd, &home);
    let out = key_cmd
        .args([
            "admin",
            "api-key",
            "demo-portal",
            "--connection",
            "contoso-app",
            "--connection",
            "contoso",
        ])
        .output()?;
    let key = String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_owned();

    let mut server = Command::new(bin(root, "exgate-server"));
    isolated(&mut server, &home);
    server
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .env("EXGATE_LOG", "warn");
    let mut server = server.spawn().context("starting exgate-server")?;
    let (first, mut server_out) = first_line(&mut server, "exgate-server")?;
    let mut admin_password = String::new();
    if first.contains("admin password") {
        server_out.read_line(&mut admin_password)?;
        let mut listening = String::new();
        server_out.read_line(&mut listening)?;
    }
    let admin_password = admin_password.trim().to_owned();
    let basic = base64(format!("admin:{admin_password}").as_bytes());
    post(
        "/api/v1/connections/contoso-app/static-users",
        &basic,
        &format!("{{\"principal\":\"invoices-bot\",\"mailbox\":\"{upn}\"}}"),
    )?;
    // Change notifications: the gateway watches the bot's Inbox (Graph pushes to the gateway).
    post(
        "/api/v1/connections/contoso-app/users/invoices-bot/watches",
        &basic,
        "{\"folders\":[\"inbox\"]}",
    )?;

    let bridge_imap = bridge_ports
        .iter()
        .find_map(|l| l.strip_prefix("imap on 127.0.0.1:"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("1143")
        .to_owned();
    let gw = format!("http://{GATEWAY}");
    let exe = bin(root, "exgate").display().to_string();
    let env = format!(
        "XDG_CONFIG_HOME={0}/config XDG_DATA_HOME={0}/data",
        home.display()
    );
    let indent = |text: &str| text.lines().map(|l| format!("  {l}\n")).collect::<String>();
    println!(
        "\nThe same mailbox, {upn}, three messages of its Inbox each way:\n\n\
         over Microsoft Graph (Exchange Online connection contoso-app, app-only OAuth2):\n{}\n\
         over EWS (Exchange Server connection onprem, NTLM to {ews}):\n{}\n\
         over IMAP (connection contoso-imap, XOAUTH2 to {imap}):\n{}\n\
         and sent over SMTP (XOAUTH2 to {smtp}):\n{}\n\
         exgate bridge, for software that only knows passwords (user {upn}, local password {bridge_password}):\n{}",
        indent(&over_graph),
        indent(&over_ews),
        indent(&over_imap),
        indent(&sent_smtp),
        indent(&bridge_ports.join("\n"))
    );
    let running = if once {
        "exgate demo ran (--once: stopping it now)."
    } else {
        "exgate demo is running — Ctrl-C stops it."
    };
    println!(
        "\n{running}\n\n\
         exgate-mock (Entra ID, Graph, EWS, IMAP, POP, SMTP): {base}\n  tenant {tid}, user {upn} / {password}\n  EWS: {ews}\n  IMAP: {imap}  SMTP: {smtp}\n\
         exgate-server:                  {gw}\n  admin console {gw}/admin (password {admin_password})\n  admin user `admin`, password {admin_password}\n  API key (connections contoso-app, contoso): {key}\n\n\
         Try, through the gateway:\n\
         \x20 # the mailbox of static user `invoices-bot` (app-only connection contoso-app):\n\
         \x20 curl -s -H 'Authorization: Bearer {key}' {gw}/api/v1/connections/contoso-app/users/invoices-bot/messages\n\
         \x20 # sign a user in (delegated connection contoso): open the authorization_url it returns and sign in as {upn}\n\
         \x20 curl -s -X POST -H 'Authorization: Bearer {key}' -H 'content-type: application/json' -d '{{\"principal\":\"u42\"}}' {gw}/api/v1/connections/contoso/logins\n\
         \x20 curl -s -H 'Authorization: Bearer {key}' {gw}/api/v1/connections/contoso/users/u42/messages\n\
         \x20 # change notifications: the gateway watches invoices-bot's Inbox; follow its events, then send it a mail:\n\
         \x20 curl -sN -H 'Authorization: Bearer {key}' {gw}/api/v1/connections/contoso-app/events/stream\n\
         \x20 {env} {exe} mail send -c contoso-imap --mailbox {upn} --to {upn} --subject Watched --body hello\n\
         \x20 # the admin's view of connections and known users:\n\
         \x20 curl -s -u 'admin:{admin_password}' {gw}/api/v1/connections/contoso/accounts\n\n\
         Or with the CLI, on the same configuration and store:\n\
         \x20 {env} {exe} mail list -c contoso-app --mailbox {upn}\n\
         \x20 {env} {exe} login -c contoso --manual\n\
         \x20 # Exchange Server over EWS (connection onprem, NTLM):\n\
         \x20 {env} {exe} mail list -c onprem\n\
         \x20 {env} {exe} calendar list -c onprem\n\
         \x20 # Exchange Online over IMAP and SMTP (connection contoso-imap, XOAUTH2):\n\
         \x20 {env} {exe} mail list -c contoso-imap --mailbox {upn}\n\
         \x20 # a mailbox's changes as they happen (IMAP IDLE):\n\
         \x20 {env} {exe} watch -c contoso-imap --mailbox {upn}\n\
         \x20 # a password-only client through the bridge:\n\
         \x20 python3 -c 'import imaplib; m = imaplib.IMAP4(\"127.0.0.1\", {bridge_imap}); m.login(\"{upn}\", \"{bridge_password}\"); print(m.select(\"INBOX\"))'\n"
    );
    if once {
        let _ = bridge.kill();
        let _ = bridge.wait();
        let _ = server.kill();
        let _ = server.wait();
        let _ = mock.kill();
        let _ = mock.wait();
        return Ok(());
    }
    let status = server.wait()?;
    let _ = bridge.kill();
    let _ = bridge.wait();
    let _ = mock.kill();
    let _ = mock.wait();
    if !status.success() && status.code().is_some() {
        bail!("exgate-server stopped with {status}");
    }
    Ok(())
}
