//! SMTP: lettre (AUTH XOAUTH2 with the initial response, AUTH LOGIN) and a line client for
//! XOAUTH2 without the initial response, Exchange's exact refusals and malformed input.

use std::collections::BTreeMap;

use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::seed::*;
use exgate_testkit::mailproto::MailSwitchChange;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

use crate::support::*;

fn port(url: &str) -> u16 {
    addr(url).rsplit_once(':').unwrap().1.parse().unwrap()
}

/// lettre to the submission port (STARTTLS) with `mechanism`.
fn mailer(
    m: &MockMicrosoft,
    user: &str,
    secret: &str,
    mechanism: Mechanism,
    implicit: bool,
) -> AsyncSmtpTransport<Tokio1Executor> {
    let tls = TlsParameters::builder("127.0.0.1".into())
        .add_root_certificate(Certificate::from_pem(m.mail_ca_pem().as_bytes()).unwrap())
        .build_rustls()
        .unwrap();
    let (url, tls) = if implicit {
        (m.smtps_url(), Tls::Wrapper(tls))
    } else {
        (m.smtp_url(), Tls::Required(tls))
    };
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port(&url))
        .tls(tls)
        .credentials(Credentials::new(user.into(), secret.into()))
        .authentication(vec![mechanism])
        .timeout(Some(PATIENCE))
        .build()
}

fn message(from: &str, to: &str, subject: &str) -> Message {
    Message::builder()
        .from(from.parse().unwrap())
        .to(to.parse().unwrap())
        .subject(subject)
        .body(String::from("Hello from SMTP.\r\n.leading dot\r\n"))
        .unwrap()
}

/// Sends `subject` from `from` to `to` with the app's token (SMTP.SendAsApp).
pub(crate) async fn send_as_app(
    m: &MockMicrosoft,
    token: &str,
    from: &str,
    to: &str,
    subject: &str,
) {
    mailer(m, from, token, Mechanism::Xoauth2, false)
        .send(message(from, to, subject))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_app_sends_and_the_message_is_seen_over_imap_and_graph() {
    let m = mock().await;
    let token = app_token(&m).await;
    send_as_app(&m, &token, ADELE, MEGAN, "Quarterly numbers").await;
    assert_eq!(m.submitted(ADELE).last().unwrap().1, "Quarterly numbers");
    assert_eq!(m.delivered(MEGAN).last().unwrap().1, "Quarterly numbers");

    // Graph sees it in Megan's Inbox and in Adele's Sent Items.
    let graph = reqwest::Client::new();
    let graph_token = graph_app_token(&m).await;
    let inbox: serde_json::Value = graph
        .get(format!(
            "{}/users/{MEGAN}/mailFolders/inbox/messages?$filter=subject eq 'Quarterly numbers'",
            m.graph_url()
        ))
        .bearer_auth(&graph_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let found = inbox["value"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{inbox}");
    assert_eq!(found[0]["from"]["emailAddress"]["address"], ADELE);
    assert_eq!(found[0]["isRead"], false);
    let sent: serde_json::Value = graph
        .get(format!(
            "{}/users/{ADELE}/mailFolders/sentitems/messages?$filter=subject eq 'Quarterly numbers'",
            m.graph_url()
        ))
        .bearer_auth(&graph_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sent["value"].as_array().unwrap().len(), 1, "{sent}");

    // IMAP sees it too, with the dot-stuffed line restored.
    let mut c = Lines::new(tls_to(&m, &m.imap_url()).await);
    c.line().await;
    c.ask(
        &format!("a AUTHENTICATE XOAUTH2 {}", xoauth2(MEGAN, &token)),
        "a ",
    )
    .await;
    c.ask("b SELECT INBOX", "b ").await;
    let hits = c
        .ask("c UID SEARCH SUBJECT \"Quarterly numbers\"", "c ")
        .await;
    let uid = hits[0].strip_prefix("* SEARCH ").unwrap().to_string();
    let body = c
        .ask(&format!("d UID FETCH {uid} BODY.PEEK[TEXT]"), "d ")
        .await;
    assert!(body.iter().any(|l| l == ".leading dot"), "{body:?}");

    // Implicit TLS (465) works the same.
    mailer(&m, ADELE, &token, Mechanism::Xoauth2, true)
        .send(message(ADELE, MEGAN, "over 465"))
        .await
        .unwrap();
    assert_eq!(m.delivered(MEGAN).last().unwrap().1, "over 465");
}

#[tokio::test]
async fn a_user_sends_as_herself_and_as_a_mailbox_she_may_send_as_but_not_as_others() {
    let m = mock().await;
    let token = user_token(
        &m,
        ADELE,
        ADELE_PASSWORD,
        "https://outlook.office365.com/SMTP.Send",
    )
    .await;
    let smtp = mailer(&m, ADELE, &token, Mechanism::Xoauth2, false);
    smtp.send(message(ADELE, MEGAN, "mine")).await.unwrap();
    smtp.send(message(SALES, MEGAN, "from sales"))
        .await
        .unwrap();
    let denied = smtp
        .send(message(MEGAN, ADELE, "as megan"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        denied.contains(&format!(
            "5.2.252 SendAsDenied; {ADELE} not allowed to send as {MEGAN}; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied"
        )),
        "{denied}"
    );
    assert_eq!(m.delivered(ADELE).len(), 0);
}

#[tokio::test]
async fn refusals_are_exchanges_word_for_word() {
    let m = mock().await;
    let app = app_token(&m).await;
    let failed = "5.7.3 Authentication unsuccessful [EXGATEMOCK01.outlook.office365.com]";
    let refusal = async |user: &str, secret: &str, mechanism: Mechanism| {
        mailer(&m, user, secret, mechanism, false)
            .send(message(user, MEGAN, "x"))
            .await
            .unwrap_err()
            .to_string()
    };
    // Wrong audience; no SMTP.SendAsApp role; wrong password.
    let graph = graph_app_token(&m).await;
    assert!(
        refusal(ADELE, &graph, Mechanism::Xoauth2)
            .await
            .contains(failed)
    );
    m.revoke_consent(DAEMON_APP);
    let no_roles = app_token(&m).await;
    m.grant_consent(DAEMON_APP);
    assert!(
        refusal(ADELE, &no_roles, Mechanism::Xoauth2)
            .await
            .contains(failed)
    );
    assert!(
        refusal(ADELE, "wrong", Mechanism::Login)
            .await
            .contains(failed)
    );
    // The password works with LOGIN (Exchange Server's way; the bridge tests use it).
    mailer(&m, ADELE, ADELE_PASSWORD, Mechanism::Login, false)
        .send(message(ADELE, MEGAN, "with a password"))
        .await
        .unwrap();

    // SMTP AUTH disabled for the mailbox, then for the tenant.
    m.change_mail_switches(&MailSwitchChange {
        smtp_client_auth: BTreeMap::from([(ADELE.to_string(), false)]),
        ..MailSwitchChange::default()
    })
    .unwrap();
    let mailbox = refusal(ADELE, &app, Mechanism::Xoauth2).await;
    assert!(
        mailbox.contains("5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information. [EXGATEMOCK01.outlook.office365.com]"),
        "{mailbox}"
    );
    m.change_mail_switches(&MailSwitchChange {
        smtp_client_auth: BTreeMap::from([(ADELE.to_string(), true)]),
        smtp_client_auth_tenant: Some(false),
        ..MailSwitchChange::default()
    })
    .unwrap();
    let tenant = refusal(ADELE, &app, Mechanism::Xoauth2).await;
    assert!(
        tenant.contains("5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information."),
        "{tenant}"
    );

    // Security defaults block SMTP AUTH with a password.
    m.change_mail_switches(&MailSwitchChange {
        smtp_client_auth_tenant: Some(true),
        security_defaults: Some(true),
        ..MailSwitchChange::default()
    })
    .unwrap();
    let locked = refusal(ADELE, ADELE_PASSWORD, Mechanism::Login).await;
    assert!(
        locked.contains("5.7.139 Authentication unsuccessful, user is locked by your organization's security defaults policy. Contact your administrator."),
        "{locked}"
    );
    let sessions = m.mail_sessions();
    assert!(
        sessions
            .iter()
            .any(|s| s.outcome.as_deref() == Some("security_defaults"))
    );
    assert!(!format!("{sessions:?}").contains(ADELE_PASSWORD));
}

#[tokio::test]
async fn a_delegated_token_without_smtp_send_is_refused() {
    let m = mock_ews_only_consent().await;
    let token = user_token(
        &m,
        ADELE,
        ADELE_PASSWORD,
        "https://outlook.office365.com/EWS.AccessAsUser.All",
    )
    .await;
    let refused = mailer(&m, ADELE, &token, Mechanism::Xoauth2, false)
        .send(message(ADELE, MEGAN, "x"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("535 5.7.3 Authentication unsuccessful")
            || refused.contains("5.7.3 Authentication unsuccessful"),
        "{refused}"
    );
}

/// A raw submission session: greeting, EHLO, STARTTLS, EHLO.
async fn raw_after_starttls(
    m: &MockMicrosoft,
) -> (
    Vec<String>,
    Lines<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
) {
    let tcp = tokio::net::TcpStream::connect(addr(&m.smtp_url()))
        .await
        .unwrap();
    let mut c = Lines::new(tcp);
    let greeting = c.line().await.unwrap();
    assert!(
        greeting.starts_with(
            "220 EXGATEMOCK01.outlook.office365.com Microsoft ESMTP MAIL Service ready at "
        ),
        "{greeting}"
    );
    let before = c.ask("EHLO client.example", "250 ").await;
    assert!(before.contains(&"250-STARTTLS".to_string()), "{before:?}");
    assert!(!before.iter().any(|l| l.contains("AUTH")), "{before:?}");
    assert_eq!(
        c.ask("AUTH LOGIN", "").await,
        ["504 5.7.4 Unrecognized authentication type"]
    );
    assert_eq!(c.ask("STARTTLS", "").await, ["220 2.0.0 SMTP server ready"]);
    let mut c = Lines::new(tls(m, c.into_inner()).await);
    let after = c.ask("EHLO client.example", "250 ").await;
    (after, c)
}

#[tokio::test]
async fn the_wire_ehlo_starttls_xoauth2_without_initial_response_and_5_7_57() {
    let m = mock().await;
    let app = app_token(&m).await;
    let (ehlo, mut c) = raw_after_starttls(&m).await;
    assert_eq!(
        ehlo,
        [
            "250-EXGATEMOCK01.outlook.office365.com Hello [127.0.0.1]",
            "250-SIZE 157286400",
            "250-PIPELINING",
            "250-DSN",
            "250-ENHANCEDSTATUSCODES",
            "250-AUTH LOGIN XOAUTH2",
            "250-8BITMIME",
            "250-BINARYMIME",
            "250-CHUNKING",
            "250 SMTPUTF8",
        ]
    );
    assert_eq!(
        c.ask(&format!("MAIL FROM:<{ADELE}>"), "").await,
        ["530 5.7.57 Client not authenticated to send mail. [EXGATEMOCK01.outlook.office365.com]"]
    );
    assert_eq!(c.ask("AUTH XOAUTH2", "").await, ["334 "]);
    assert_eq!(
        c.ask(&xoauth2(ADELE, &app), "").await,
        ["235 2.7.0 Authentication successful"]
    );
    assert_eq!(
        c.ask(&format!("MAIL FROM:<{ADELE}> SIZE=200000000"), "")
            .await,
        ["552 5.3.4 Message size exceeds fixed maximum message size"]
    );
    c.ask(&format!("MAIL FROM:<{ADELE}>"), "250").await;
    c.ask(&format!("RCPT TO:<{MEGAN}>"), "250").await;
    // BDAT (CHUNKING): two chunks.
    let first = format!("From: {ADELE}\r\nTo: {MEGAN}\r\nSubject: chunked\r\n\r\n");
    c.send(&format!("BDAT {}", first.len())).await;
    c.send_bytes(first.as_bytes()).await;
    assert_eq!(
        c.line().await.unwrap(),
        format!("250 2.0.0 BDAT {} bytes received", first.len())
    );
    let second = "in two chunks\r\n";
    c.send(&format!("BDAT {} LAST", second.len())).await;
    c.send_bytes(second.as_bytes()).await;
    let done = c.line().await.unwrap();
    assert!(done.starts_with("250 2.0.0 OK <"), "{done}");
    assert_eq!(m.delivered(MEGAN).last().unwrap().1, "chunked");

    // Garbage, an overlong line: answered, and the session goes on.
    assert_eq!(c.ask("FROB", "").await, ["500 5.3.3 Unrecognized command"]);
    c.send(&"x".repeat(200_000)).await;
    assert_eq!(c.line().await.unwrap(), "500 5.5.6 Line too long");
    assert_eq!(c.ask("NOOP", "").await, ["250 2.0.0 OK"]);
    assert_eq!(
        c.ask("QUIT", "").await,
        ["221 2.0.0 Service closing transmission channel"]
    );
}
