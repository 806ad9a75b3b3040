//! `exgate bridge` as a process: a user added with `exgate bridge user add`, Python's imaplib
//! and smtplib signing in with the local password, the mock's Exchange Online behind it, and a
//! clean stop on SIGTERM.

use std::process::Command;

use exgate_testkit::entra::seed;

use crate::util::Env;

const CLIENT: &str = r#"
import imaplib, smtplib, sys
from email.message import EmailMessage
imap_port, smtp_port, user, password, to = sys.argv[1:]
imap = imaplib.IMAP4("127.0.0.1", int(imap_port))
imap.login(user, password)
typ, data = imap.select("INBOX")
assert typ == "OK" and int(data[0]) > 0, data
imap.logout()
smtp = smtplib.SMTP("127.0.0.1", int(smtp_port))
smtp.login(user, password)
msg = EmailMessage()
msg["From"], msg["To"], msg["Subject"] = user, to, "from a password-only client"
msg.set_content("relayed by exgate bridge")
smtp.send_message(msg)
smtp.quit()
print("ok")
"#;

fn port(line: &str) -> String {
    line.split(" on 127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no port in {line:?}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_only_client_reads_and_sends_through_exgate_bridge() {
    let env = Env::new().await;
    let ca = env.write("mail-ca.pem", &env.mock.mail_ca_pem());
    env.write(
        "config/exgate/exgate.toml",
        &format!(
            "[endpoints]\nauthority_host = \"{}\"\nimap_url = \"{}\"\npop_url = \"{}\"\nsmtp_url = \"{}\"\n\n[tls]\nca_file = \"{}\"\n\n[bridge]\nimap_port = 0\npop_port = 0\nsmtp_port = 0\n",
            env.mock.base_url(),
            env.mock.imap_url(),
            env.mock.pop_url(),
            env.mock.smtp_url(),
            ca.display()
        ),
    );
    env.add_app_only("daemon", seed::DAEMON_APP_SECRET).await;

    let added = env
        .run(&["bridge", "user", "add", seed::ADELE, "--json"])
        .await
        .ok()
        .stdout();
    let added: serde_json::Value = serde_json::from_str(&added).unwrap();
    let password = added["password"].as_str().unwrap().to_owned();
    assert_eq!(added["mailbox"], seed::ADELE);
    assert_eq!(added["connection"], "daemon");
    // Only the hash is kept: the list never shows the password.
    let listed = env
        .run(&["bridge", "user", "list", "--json"])
        .await
        .ok()
        .stdout();
    assert!(
        listed.contains(seed::ADELE) && !listed.contains(&password),
        "{listed}"
    );

    let mut bridge = env.spawn(&["bridge"]);
    let imap = port(&bridge.line_with("imap on").await);
    let smtp = port(&bridge.line_with("smtp on").await);
    bridge.line_with("ready").await;

    let args = [
        imap,
        smtp,
        seed::ADELE.to_owned(),
        password.clone(),
        seed::MEGAN.to_owned(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg("-c")
            .arg(CLIENT)
            .args(args)
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        env.mock
            .delivered(seed::MEGAN)
            .iter()
            .any(|(_, s)| s == "from a password-only client")
    );

    // SIGTERM stops it cleanly.
    let pid = bridge.child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let run = bridge.finish().await;
    assert_eq!(run.out.status.code(), Some(0), "{}", run.dump());
    assert!(!run.dump().contains(&password), "{}", run.dump());

    env.run(&["bridge", "user", "remove", seed::ADELE])
        .await
        .ok();
    let listed = env.run(&["bridge", "user", "list"]).await.ok().stdout();
    assert!(listed.contains("no bridge users"), "{listed}");
}

#[tokio::test]
async fn a_bridge_user_on_an_exchange_server_connection_is_refused() {
    let env = Env::new().await;
    let file = env.write("pw", seed::ADELE_PASSWORD);
    env.run(&[
        "connection",
        "add",
        "onprem",
        "--ews-url",
        &env.mock.ews_url(),
        "--auth",
        "basic",
        "--username",
        seed::ADELE,
        "--password-file",
        file.to_str().unwrap(),
    ])
    .await
    .ok();
    env.run(&["bridge", "user", "add", seed::ADELE])
        .await
        .fails(2, &["Exchange Server", "Exchange Online"]);
}
