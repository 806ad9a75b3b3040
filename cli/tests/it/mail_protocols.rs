//! `exgate` on connections that read over POP and send over SMTP, against exgate-mock's mail
//! servers: `connection add --backend pop --send smtp`, `mail list/show/delete` over POP,
//! `mail send --via smtp` on a Graph connection, and `connection test` naming the fix.

use exgate_testkit::entra::seed;
use exgate_testkit::mailproto::{MailSwitchChange, ServicePrincipalSwitch};
use serde_json::Value;

use crate::util::Env;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The mock with its SMTP server as `[endpoints] smtp_url` and its CA trusted.
async fn env() -> Env {
    let env = Env::new().await;
    let ca = env.write("mail-ca.pem", &env.mock.mail_ca_pem());
    env.write(
        "config/exgate/exgate.toml",
        &format!(
            "[endpoints]\nauthority_host = \"{}\"\ngraph_url = \"{}\"\news_url = \"{}\"\nsmtp_url = \"{}\"\n\n[tls]\nca_file = \"{}\"\n",
            env.mock.base_url(),
            env.mock.graph_url(),
            env.mock.ews_url(),
            env.mock.smtp_url(),
            ca.display()
        ),
    );
    env
}

async fn add_pop(env: &Env) {
    let file = env.write("daemon.secret", seed::DAEMON_APP_SECRET);
    let pop_url = env.mock.pop_stls_url();
    env.add(
        "helpdesk",
        &[
            "--auth",
            "oauth2-app-only",
            "--client-id",
            seed::DAEMON_APP,
            "--client-secret-file",
            file.to_str().unwrap(),
            "--backend",
            "pop",
            "--send",
            "smtp",
            "--pop-url",
            &pop_url,
        ],
    )
    .await;
}

#[tokio::test]
async fn a_pop_connection_lists_shows_deletes_and_sends_over_smtp() {
    let env = env().await;
    add_pop(&env).await;
    let shown = json(
        &env.run(&["connection", "show", "helpdesk", "--json"])
            .await
            .ok()
            .stdout(),
    );
    assert_eq!(shown["backend"], "pop", "{shown}");
    assert_eq!(shown["send"], "smtp");
    assert_eq!(shown["pop_url"], env.mock.pop_stls_url());

    let list = json(
        &env.run(&["mail", "list", "-m", seed::ADELE, "--limit", "3", "--json"])
            .await
            .ok()
            .stdout(),
    );
    let messages = list["messages"].as_array().unwrap().clone();
    assert_eq!(messages.len(), 3, "{list}");
    let id = messages[0]["id"].as_str().unwrap().to_owned();
    let subject = messages[0]["subject"].as_str().unwrap().to_owned();
    let shown = json(
        &env.run(&["mail", "show", &id, "-m", seed::ADELE, "--json"])
            .await
            .ok()
            .stdout(),
    );
    assert_eq!(shown["subject"], subject.as_str(), "{shown}");

    env.run(&["mail", "delete", &id, "-m", seed::ADELE])
        .await
        .ok();
    env.run(&["mail", "show", &id, "-m", seed::ADELE])
        .await
        .fails(1, &["was not found"]);

    // Marking is not POP's: the message says so and suggests IMAP.
    env.run(&[
        "mail",
        "mark",
        messages[1]["id"].as_str().unwrap(),
        "-m",
        seed::ADELE,
        "--read",
    ])
    .await
    .fails(2, &["POP has no folders", "imap"]);

    env.run(&[
        "mail",
        "send",
        "-m",
        seed::ADELE,
        "--to",
        seed::MEGAN,
        "--subject",
        "over SMTP from POP",
        "--body",
        "hi",
    ])
    .await
    .ok();
    assert!(
        env.mock
            .delivered(seed::MEGAN)
            .iter()
            .any(|(_, s)| s == "over SMTP from POP")
    );
}

#[tokio::test]
async fn mail_send_via_smtp_on_a_graph_connection() {
    let env = env().await;
    env.add_app_only("daemon", seed::DAEMON_APP_SECRET).await;
    env.run(&[
        "mail",
        "send",
        "--via",
        "smtp",
        "-m",
        seed::ADELE,
        "--to",
        seed::MEGAN,
        "--subject",
        "via smtp",
        "--body",
        "hi",
    ])
    .await
    .ok();
    assert!(
        env.mock
            .submitted(seed::ADELE)
            .iter()
            .any(|(_, s)| s == "via smtp")
    );
    // App-only without a mailbox: the sender must be named.
    env.run(&[
        "mail",
        "send",
        "--via",
        "smtp",
        "--to",
        seed::MEGAN,
        "--subject",
        "x",
        "--body",
        "x",
    ])
    .await
    .fails(2, &["--mailbox"]);
}

#[tokio::test]
async fn the_connection_test_names_the_fix_with_the_real_ids() {
    let env = env().await;
    add_pop(&env).await;
    let ok = json(
        &env.run(&[
            "connection",
            "test",
            "helpdesk",
            "-m",
            seed::ADELE,
            "--json",
        ])
        .await
        .ok()
        .stdout(),
    );
    assert_eq!(ok["ok"], true, "{ok}");
    let names: Vec<&str> = ok["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for step in [
        "POP server",
        "POP authentication",
        "POP mailbox",
        "SMTP authentication",
        "SMTP sender",
    ] {
        assert!(names.contains(&step), "{step}: {names:?}");
    }

    env.mock
        .change_mail_switches(&MailSwitchChange {
            service_principals: [(
                seed::DAEMON_APP.to_owned(),
                ServicePrincipalSwitch {
                    registered: Some(false),
                    full_access: None,
                },
            )]
            .into(),
            ..Default::default()
        })
        .unwrap();
    let run = env
        .run(&["connection", "test", "helpdesk", "-m", seed::ADELE])
        .await;
    assert_eq!(run.out.status.code(), Some(1), "{}", run.dump());
    assert!(
        run.stdout().contains(&format!(
            "New-ServicePrincipal -AppId {} -ObjectId {}",
            seed::DAEMON_APP,
            seed::DAEMON_APP_SP_OID
        )),
        "{}",
        run.dump()
    );
    assert!(!run.dump().contains("eyJ"), "no token printed");

    env.mock
        .change_mail_switches(&MailSwitchChange {
            service_principals: [(
                seed::DAEMON_APP.to_owned(),
                ServicePrincipalSwitch {
                    registered: Some(true),
                    full_access: None,
                },
            )]
            .into(),
            smtp_client_auth_tenant: Some(false),
            ..Default::default()
        })
        .unwrap();
    let run = env
        .run(&["connection", "test", "helpdesk", "-m", seed::ADELE])
        .await;
    assert_eq!(run.out.status.code(), Some(1), "{}", run.dump());
    assert!(
        run.stdout()
            .contains("Set-TransportConfig -SmtpClientAuthenticationDisabled $false"),
        "{}",
        run.dump()
    );
}

/// A signed-in user reads over IMAP and sends over SMTP, both with delegated XOAUTH2 tokens.
#[tokio::test]
async fn a_delegated_imap_connection_reads_and_sends_over_smtp() {
    let env = env().await;
    let imap_url = env.mock.imap_url();
    env.add(
        "mine",
        &[
            "--auth",
            "oauth2-delegated",
            "--client-id",
            seed::PUBLIC_APP,
            "--flow",
            "password",
            "--backend",
            "imap",
            "--send",
            "smtp",
            "--imap-url",
            &imap_url,
        ],
    )
    .await;
    env.run_with_stdin(
        &[
            "login",
            "--password",
            "--username",
            seed::ADELE,
            "--password-file",
            "-",
        ],
        seed::ADELE_PASSWORD,
    )
    .await
    .ok();

    let listed = env
        .run(&["mail", "list", "--limit", "3", "--json"])
        .await
        .ok()
        .stdout();
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let first = &listed["messages"][0];
    let id = first["id"].as_str().unwrap();
    assert!(id.starts_with("im1."), "an IMAP message ID: {listed}");
    let shown = env.run(&["mail", "show", id]).await.ok().stdout();
    assert!(
        shown.contains(first["subject"].as_str().unwrap()),
        "{shown}"
    );

    env.run(&[
        "mail",
        "send",
        "--to",
        seed::MEGAN,
        "--subject",
        "Delegated over SMTP",
        "--body",
        "hello",
    ])
    .await
    .ok();
    assert!(
        env.mock
            .delivered(seed::MEGAN)
            .iter()
            .any(|(_, s)| s == "Delegated over SMTP")
    );
    let sessions = env.mock.mail_sessions();
    for protocol in ["Imap", "Smtp"] {
        assert!(
            sessions
                .iter()
                .any(|s| format!("{:?}", s.protocol) == protocol
                    && s.mechanism.as_deref() == Some("XOAUTH2")
                    && s.mailbox.as_deref() == Some(seed::ADELE)
                    && !s.app_only
                    && s.outcome.as_deref() == Some("ok")),
            "{protocol}: {sessions:?}"
        );
    }
}
