//! POP3 with a line client (no POP crate fits): XOAUTH2 with and without the initial
//! response, USER/PASS, the maildrop commands, DELE applied only at QUIT, refusals.

use std::collections::BTreeMap;

use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::seed::*;
use exgate_testkit::mailproto::MailSwitchChange;

use crate::support::*;

type Pop = Lines<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

async fn pop(m: &MockMicrosoft) -> Pop {
    let mut c = Lines::new(tls_to(m, &m.pop_url()).await);
    let greeting = c.line().await.unwrap();
    assert!(
        greeting.starts_with("+OK The Microsoft Exchange POP3 service is ready. ["),
        "{greeting}"
    );
    c
}

/// A multi-line answer: the lines between `+OK` and the lone dot.
async fn multi(c: &mut Pop, command: &str) -> Vec<String> {
    let lines = c.ask(command, ".").await;
    assert!(lines[0].starts_with("+OK"), "{lines:?}");
    lines[1..lines.len() - 1].to_vec()
}

#[tokio::test]
async fn an_app_reads_and_deletes_with_dele_applied_only_at_quit() {
    let m = mock().await;
    let app = app_token(&m).await;
    let mut c = pop(&m).await;
    assert_eq!(
        multi(&mut c, "CAPA").await,
        ["TOP", "UIDL", "SASL PLAIN XOAUTH2", "USER"]
    );
    // Without the initial response: `+ `, then the base64 line.
    assert_eq!(c.ask("AUTH XOAUTH2", "").await, ["+ "]);
    assert_eq!(
        c.ask(&xoauth2(ADELE, &app), "").await,
        ["+OK User successfully authenticated."]
    );
    let stat = c.ask("STAT", "").await;
    let count: usize = stat[0].split(' ').nth(1).unwrap().parse().unwrap();
    assert_eq!(count, 12, "Adele's Inbox");
    let list = multi(&mut c, "LIST").await;
    let uidl = multi(&mut c, "UIDL").await;
    assert_eq!((list.len(), uidl.len()), (12, 12));
    let size: usize = list[0].split(' ').nth(1).unwrap().parse().unwrap();
    let message = multi(&mut c, "RETR 1").await;
    let bytes: usize = message.iter().map(|l| l.len() + 2).sum();
    let stuffed = message.iter().filter(|l| l.starts_with("..")).count();
    assert_eq!(bytes - stuffed, size, "LIST's size is RETR's octets");
    let top = multi(&mut c, "TOP 1 0").await;
    assert!(
        top.last().unwrap().is_empty(),
        "headers and the blank line: {top:?}"
    );
    assert!(top.len() < message.len());
    assert_eq!(c.ask("DELE 1", "").await, ["+OK Marked to be deleted."]);
    assert_eq!(
        c.ask("DELE 1", "").await,
        ["-ERR Message has been deleted."]
    );
    assert_eq!(
        c.ask("RETR 99", "").await,
        ["-ERR The specified message is out of range."]
    );
    assert_eq!(c.ask("RSET", "").await, ["+OK"]);
    c.ask("DELE 2", "+OK").await;

    // Not applied yet: another session still sees 12.
    let mut other = pop(&m).await;
    other
        .ask(&format!("AUTH XOAUTH2 {}", xoauth2(ADELE, &app)), "+OK")
        .await;
    assert!(other.ask("STAT", "").await[0].starts_with("+OK 12 "));
    other.ask("QUIT", "+OK").await;

    assert_eq!(
        c.ask("QUIT", "").await,
        ["+OK Microsoft Exchange Server POP3 server signing off."]
    );
    let mut after = pop(&m).await;
    after
        .ask(&format!("AUTH XOAUTH2 {}", xoauth2(ADELE, &app)), "+OK")
        .await;
    assert!(after.ask("STAT", "").await[0].starts_with("+OK 11 "));
    // The message that was number 2 is gone; number 1 is still there.
    let uids_after = multi(&mut after, "UIDL").await;
    let uid = |line: &String| line.split(' ').nth(1).unwrap().to_string();
    assert!(uids_after.iter().any(|l| uid(l) == uid(&uidl[0])));
    assert!(!uids_after.iter().any(|l| uid(l) == uid(&uidl[1])));
}

#[tokio::test]
async fn refusals_user_pass_and_stls() {
    let m = mock().await;
    let app = app_token(&m).await;
    let failure = ["-ERR Authentication failure: unknown user name or bad password."];
    let mut c = pop(&m).await;
    let graph = graph_app_token(&m).await;
    assert_eq!(
        c.ask(&format!("AUTH XOAUTH2 {}", xoauth2(ADELE, &graph)), "")
            .await,
        failure
    );
    // POP disabled for the mailbox.
    m.change_mail_switches(&MailSwitchChange {
        pop_enabled: BTreeMap::from([(MEGAN.to_string(), false)]),
        ..MailSwitchChange::default()
    })
    .unwrap();
    assert_eq!(
        c.ask(&format!("AUTH XOAUTH2 {}", xoauth2(MEGAN, &app)), "")
            .await,
        failure
    );
    // Passwords (USER/PASS), Exchange Server's way, for the bridge tests.
    c.ask(&format!("USER {ADELE}"), "+OK").await;
    assert_eq!(
        c.ask("PASS wrong", "").await,
        ["-ERR Logon failure: unknown user name or bad password."]
    );
    c.ask(&format!("USER {ADELE}"), "+OK").await;
    assert_eq!(
        c.ask(&format!("PASS {ADELE_PASSWORD}"), "").await,
        ["+OK User successfully logged on."]
    );
    assert!(!format!("{:?}", m.mail_sessions()).contains(ADELE_PASSWORD));

    // The plain port: only CAPA, STLS, NOOP and QUIT before STLS.
    let tcp = tokio::net::TcpStream::connect(addr(&m.pop_stls_url()))
        .await
        .unwrap();
    let mut c = Lines::new(tcp);
    c.line().await;
    let caps = c.ask("CAPA", ".").await;
    assert!(caps.contains(&"STLS".to_string()), "{caps:?}");
    assert!(!caps.iter().any(|l| l.starts_with("SASL")), "{caps:?}");
    assert_eq!(
        c.ask(&format!("USER {ADELE}"), "").await,
        ["-ERR Command is not valid in this state."]
    );
    assert_eq!(c.ask("STLS", "").await, ["+OK Begin TLS negotiation."]);
    let mut c = Lines::new(tls(&m, c.into_inner()).await);
    assert_eq!(
        c.ask(&format!("AUTH XOAUTH2 {}", xoauth2(ADELE, &app)), "")
            .await,
        ["+OK User successfully authenticated."]
    );
    // Garbage and an overlong line are answered; the session goes on.
    assert_eq!(c.ask("FROB", "").await, ["-ERR Protocol error. 14"]);
    c.send(&"x".repeat(100_000)).await;
    assert_eq!(c.line().await.unwrap(), "-ERR Protocol error. 14");
    assert!(c.ask("STAT", "").await[0].starts_with("+OK "));
}
