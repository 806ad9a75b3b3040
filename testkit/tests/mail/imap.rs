//! IMAP: async-imap (AUTHENTICATE without SASL-IR, as it sends it) and a line client for
//! SASL-IR, Exchange's exact refusals, STARTTLS and malformed input.

use std::collections::BTreeMap;

use exgate_testkit::entra::seed::*;
use exgate_testkit::mailproto::{MailSwitchChange, ServicePrincipalSwitch};
use futures_util::TryStreamExt as _;

use crate::support::*;

struct XOauth2(String);

impl async_imap::Authenticator for &XOauth2 {
    type Response = String;
    fn process(&mut self, _challenge: &[u8]) -> String {
        self.0.clone()
    }
}

type Session = async_imap::Session<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// async-imap signed in to `mailbox` with XOAUTH2 over implicit TLS.
async fn sign_in(m: &exgate_testkit::MockMicrosoft, mailbox: &str, token: &str) -> Session {
    let tls = tls_to(m, &m.imap_url()).await;
    let mut client = async_imap::Client::new(tls);
    let greeting = client.read_response().await.unwrap().unwrap();
    let greeting = String::from_utf8_lossy(greeting.borrow_owner()).to_string();
    assert!(
        greeting.starts_with("* OK The Microsoft Exchange IMAP4 service is ready. ["),
        "{greeting}"
    );
    let auth = XOauth2(format!("user={mailbox}\x01auth=Bearer {token}\x01\x01"));
    client
        .authenticate("XOAUTH2", &auth)
        .await
        .map_err(|(e, _)| e)
        .unwrap()
}

#[tokio::test]
async fn an_app_reads_searches_flags_moves_and_expunges_with_async_imap() {
    let m = mock().await;
    let token = app_token(&m).await;
    let mut session = sign_in(&m, ADELE, &token).await;

    let inbox = session.select("INBOX").await.unwrap();
    assert_eq!(inbox.exists, 12, "Adele's seeded Inbox");
    let validity = inbox.uid_validity.unwrap();
    assert!(validity > 0);

    let unseen = session.uid_search("UNSEEN").await.unwrap();
    assert_eq!(unseen.len(), 6);
    let all = session.uid_search("ALL").await.unwrap();
    assert_eq!(all.len(), 12);
    let mut uids: Vec<u32> = all.into_iter().collect();
    uids.sort_unstable();

    // FETCH: sizes, envelope and the body; BODY.PEEK leaves \Seen alone.
    let first = uids[0];
    let fetched: Vec<_> = session
        .uid_fetch(
            first.to_string(),
            "(UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE BODY.PEEK[])",
        )
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(fetched.len(), 1);
    let body = fetched[0].body().unwrap();
    assert_eq!(fetched[0].size, Some(u32::try_from(body.len()).unwrap()));
    assert_eq!(fetched[0].uid, Some(first));
    let envelope = fetched[0].envelope().unwrap();
    let subject = String::from_utf8_lossy(envelope.subject.as_deref().unwrap()).to_string();
    let parsed = mail_parser::MessageParser::default().parse(body).unwrap();
    assert!(!subject.is_empty());
    assert!(parsed.subject().is_some());
    let headers: Vec<_> = session
        .uid_fetch(first.to_string(), "BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let header = String::from_utf8_lossy(headers[0].header().unwrap()).to_string();
    assert!(
        header.starts_with("From:") || header.starts_with("Subject:"),
        "{header}"
    );
    assert!(!header.contains("Message-ID"), "{header}");

    // STORE: flag one message, then find it by search.
    let target = uids[1];
    let _: Vec<_> = session
        .uid_store(target.to_string(), "+FLAGS (\\Flagged \\Seen)")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let flagged = session.uid_search("FLAGGED").await.unwrap();
    assert!(flagged.contains(&target));
    // Another connection sees the flag: it is in the store.
    let mut other = sign_in(&m, ADELE, &token).await;
    other.select("INBOX").await.unwrap();
    assert!(other.uid_search("FLAGGED").await.unwrap().contains(&target));
    other.logout().await.unwrap();

    // MOVE to Archive: gone from the Inbox, there with a new UID.
    session
        .uid_mv(uids[2].to_string(), "Archive")
        .await
        .unwrap();
    assert!(!session.uid_search("ALL").await.unwrap().contains(&uids[2]));
    let archive = session.status("Archive", "(MESSAGES)").await.unwrap();
    assert_eq!(archive.exists, 1);

    // \Deleted + EXPUNGE.
    let _: Vec<_> = session
        .uid_store(uids[3].to_string(), "+FLAGS.SILENT (\\Deleted)")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let expunged: Vec<_> = session
        .expunge()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(expunged.len(), 1);
    let left = session.uid_search("ALL").await.unwrap();
    assert_eq!(left.len(), 10);

    // SINCE / BEFORE / FROM / SUBJECT and a UID range.
    assert!(
        !session
            .uid_search("SINCE 1-Jan-2026")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        session
            .uid_search("BEFORE 1-Jan-2000")
            .await
            .unwrap()
            .is_empty()
    );
    let range = session
        .uid_search(format!("UID {}:{}", uids[4], uids[6]))
        .await
        .unwrap();
    assert_eq!(range.len(), 3);
    let by_subject = session
        .uid_search(format!("SUBJECT \"{}\"", subject.replace('"', "")))
        .await
        .unwrap();
    assert!(by_subject.contains(&first) || subject.starts_with("=?"));

    // The folder list has the well-known folders with their special use.
    let names: Vec<_> = session
        .list(Some(""), Some("*"))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let names: Vec<String> = names.iter().map(|n| n.name().to_string()).collect();
    for wanted in [
        "INBOX",
        "Drafts",
        "Sent Items",
        "Deleted Items",
        "Junk Email",
        "Archive",
    ] {
        assert!(names.iter().any(|n| n == wanted), "{wanted} in {names:?}");
    }
    session.logout().await.unwrap();

    let sessions = m.mail_sessions();
    let imap = &sessions[0];
    assert_eq!(sessions.len(), 2);
    assert_eq!(imap.mechanism.as_deref(), Some("XOAUTH2"));
    assert_eq!(imap.outcome.as_deref(), Some("ok"));
    assert!(imap.app_only);
    assert!(
        imap.commands.iter().any(|c| c == "UID MOVE"),
        "{:?}",
        imap.commands
    );
    let recorded = format!("{sessions:?}");
    assert!(!recorded.contains(&token), "tokens are never recorded");
}

#[tokio::test]
async fn uidvalidity_changes_by_switch_and_append_answers_appenduid() {
    let m = mock().await;
    let token = app_token(&m).await;
    let mut session = sign_in(&m, MEGAN, &token).await;
    let before = session.select("INBOX").await.unwrap().uid_validity.unwrap();
    session
        .append(
            "INBOX",
            Some("(\\Seen)"),
            None,
            "From: Lee <lee@contoso.example>\r\nSubject: appended\r\n\r\nhi\r\n",
        )
        .await
        .unwrap();
    assert_eq!(
        session.uid_search("SUBJECT appended").await.unwrap().len(),
        1
    );
    session.logout().await.unwrap();

    m.change_mail_switches(&MailSwitchChange {
        bump_uid_validity: vec![format!("{MEGAN}/INBOX")],
        ..MailSwitchChange::default()
    })
    .unwrap();
    let mut session = sign_in(&m, MEGAN, &token).await;
    let after = session.select("INBOX").await.unwrap().uid_validity.unwrap();
    assert_ne!(before, after);
    // Other folders keep theirs.
    let sent = session
        .select("Sent Items")
        .await
        .unwrap()
        .uid_validity
        .unwrap();
    let mut again = sign_in(&m, MEGAN, &token).await;
    assert_eq!(
        again.select("Sent Items").await.unwrap().uid_validity,
        Some(sent)
    );
    assert!(
        m.change_mail_switches(&MailSwitchChange {
            bump_uid_validity: vec![format!("{MEGAN}/Nowhere")],
            ..MailSwitchChange::default()
        })
        .is_err()
    );
}

#[tokio::test]
async fn idle_sees_mail_delivered_over_smtp() {
    let m = mock().await;
    let token = app_token(&m).await;
    let mut session = sign_in(&m, MEGAN, &token).await;
    let exists = session.select("INBOX").await.unwrap().exists;
    let mut idle = session.idle();
    idle.init().await.unwrap();
    let (wait, _stop) = idle.wait_with_timeout(PATIENCE);

    let send = async {
        crate::smtp::send_as_app(&m, &token, ADELE, MEGAN, "while you were idling").await;
    };
    let (answer, ()) = tokio::join!(wait, send);
    match answer.unwrap() {
        async_imap::extensions::idle::IdleResponse::NewData(data) => {
            let text = String::from_utf8_lossy(data.borrow_owner()).to_string();
            let line = text.split("\r\n").next().unwrap();
            assert_eq!(line, format!("* {} EXISTS", exists + 1));
        }
        other => panic!("no new mail while idling: {other:?}"),
    }
    let mut session = idle.done().await.unwrap();
    let found = session
        .uid_search("SUBJECT \"while you were idling\"")
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
}

/// A raw IMAP session over implicit TLS, greeting read.
async fn raw(
    m: &exgate_testkit::MockMicrosoft,
) -> Lines<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut c = Lines::new(tls_to(m, &m.imap_url()).await);
    let greeting = c.line().await.unwrap();
    assert!(greeting.starts_with("* OK The Microsoft Exchange IMAP4 service is ready."));
    c
}

#[tokio::test]
async fn sasl_ir_and_exchanges_refusals_word_for_word() {
    let m = mock().await;
    let app = app_token(&m).await;

    // SASL-IR, capabilities as Exchange Online lists them.
    let mut c = raw(&m).await;
    let caps = c.ask("a CAPABILITY", "a ").await;
    assert_eq!(
        caps[0],
        "* CAPABILITY IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+"
    );
    let ok = c
        .ask(
            &format!("b AUTHENTICATE XOAUTH2 {}", xoauth2(SALES, &app)),
            "b ",
        )
        .await;
    assert_eq!(ok, ["b OK AUTHENTICATE completed."]);
    let select = c.ask("c SELECT INBOX", "c ").await;
    assert_eq!(
        select.last().unwrap(),
        "c OK [READ-WRITE] SELECT completed."
    );
    assert!(select.iter().any(|l| l.starts_with("* OK [UIDVALIDITY ")));

    let refused = async |user: &str, token: &str| {
        let mut c = raw(&m).await;
        c.ask(
            &format!("a AUTHENTICATE XOAUTH2 {}", xoauth2(user, token)),
            "a ",
        )
        .await
    };
    let failed = vec!["a NO AUTHENTICATE failed.".to_string()];
    // The wrong audience (a Graph token).
    assert_eq!(refused(ADELE, &graph_app_token(&m).await).await, failed);
    // An app-only token without IMAP.AccessAsApp (consent revoked: no roles).
    m.revoke_consent(DAEMON_APP);
    let no_roles = app_token(&m).await;
    m.grant_consent(DAEMON_APP);
    assert_eq!(refused(ADELE, &no_roles).await, failed);
    // Garbage.
    assert_eq!(refused(ADELE, "not.a.token").await, failed);

    // IMAP disabled for the mailbox (Set-CASMailbox -ImapEnabled $false).
    m.change_mail_switches(&MailSwitchChange {
        imap_enabled: BTreeMap::from([(MEGAN.to_string(), false)]),
        ..MailSwitchChange::default()
    })
    .unwrap();
    assert_eq!(refused(MEGAN, &app).await, failed);
    assert_eq!(refused(ADELE, &app).await, ["a OK AUTHENTICATE completed."]);

    // No FullAccess for the service principal on the mailbox: authenticated, not connected.
    m.change_mail_switches(&MailSwitchChange {
        service_principals: BTreeMap::from([(
            DAEMON_APP.to_string(),
            ServicePrincipalSwitch {
                registered: None,
                full_access: Some(vec![SALES.to_string()]),
            },
        )]),
        ..MailSwitchChange::default()
    })
    .unwrap();
    let mut c = raw(&m).await;
    let auth = c
        .ask(
            &format!("a AUTHENTICATE XOAUTH2 {}", xoauth2(ADELE, &app)),
            "a ",
        )
        .await;
    assert_eq!(auth, ["a OK AUTHENTICATE completed."]);
    assert_eq!(
        c.ask("b SELECT INBOX", "b ").await,
        ["b BAD User is authenticated but not connected."]
    );
    assert_eq!(
        c.ask("c LIST \"\" \"*\"", "c ").await,
        ["c BAD User is authenticated but not connected."]
    );
    assert_eq!(
        c.line().await.as_deref(),
        Some("* BYE Connection closed. 14")
    );
    assert_eq!(c.line().await, None, "the server hung up");

    // A delegated user opening someone else's mailbox: the same.
    let megan = user_token(
        &m,
        MEGAN,
        MEGAN_PASSWORD,
        "https://outlook.office365.com/IMAP.AccessAsUser.All",
    )
    .await;
    let mut c = raw(&m).await;
    c.ask(
        &format!("a AUTHENTICATE XOAUTH2 {}", xoauth2(SALES, &megan)),
        "a ",
    )
    .await;
    assert_eq!(
        c.ask("b SELECT INBOX", "b ").await,
        ["b BAD User is authenticated but not connected."]
    );
    // Her own mailbox works (IMAP back on).
    m.change_mail_switches(&MailSwitchChange {
        imap_enabled: BTreeMap::from([(MEGAN.to_string(), true)]),
        ..MailSwitchChange::default()
    })
    .unwrap();
    let mut c = raw(&m).await;
    c.send(&format!(
        "a AUTHENTICATE XOAUTH2 {}",
        xoauth2(MEGAN, &megan)
    ))
    .await;
    assert_eq!(c.until("a ").await, ["a OK AUTHENTICATE completed."]);

    // The service principal not registered in Exchange (no New-ServicePrincipal).
    m.change_mail_switches(&MailSwitchChange {
        service_principals: BTreeMap::from([(
            DAEMON_APP.to_string(),
            ServicePrincipalSwitch {
                registered: Some(false),
                full_access: None,
            },
        )]),
        ..MailSwitchChange::default()
    })
    .unwrap();
    assert_eq!(refused(SALES, &app).await, failed);

    let outcomes: Vec<_> = m
        .mail_sessions()
        .iter()
        .filter_map(|s| s.outcome.clone())
        .collect();
    assert!(
        outcomes.contains(&"not_connected".to_string()),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn a_delegated_token_without_the_imap_scope_is_refused() {
    let m = mock_ews_only_consent().await;
    let token = user_token(
        &m,
        ADELE,
        ADELE_PASSWORD,
        "https://outlook.office365.com/EWS.AccessAsUser.All",
    )
    .await;
    let mut c = raw(&m).await;
    assert_eq!(
        c.ask(
            &format!("a AUTHENTICATE XOAUTH2 {}", xoauth2(ADELE, &token)),
            "a "
        )
        .await,
        ["a NO AUTHENTICATE failed."]
    );
}

#[tokio::test]
async fn the_plain_port_wants_starttls_first() {
    let m = mock().await;
    let app = app_token(&m).await;
    let tcp = tokio::net::TcpStream::connect(addr(&m.imap_starttls_url()))
        .await
        .unwrap();
    let mut c = Lines::new(tcp);
    c.line().await.unwrap();
    let caps = c.ask("a CAPABILITY", "a ").await;
    assert!(caps[0].contains("LOGINDISABLED STARTTLS"), "{caps:?}");
    assert!(!caps[0].contains("AUTH="), "{caps:?}");
    assert_eq!(
        c.ask(
            &format!("b AUTHENTICATE XOAUTH2 {}", xoauth2(ADELE, &app)),
            "b "
        )
        .await,
        ["b BAD Command received in Invalid state."]
    );
    assert_eq!(
        c.ask("c STARTTLS", "c ").await,
        ["c OK Begin TLS negotiation now."]
    );
    let mut c = Lines::new(tls(&m, c.into_inner()).await);
    let caps = c.ask("d CAPABILITY", "d ").await;
    assert!(caps[0].contains("AUTH=XOAUTH2"), "{caps:?}");
    // async-imap's way: AUTHENTICATE, then the response after `+ `.
    c.send("e AUTHENTICATE XOAUTH2").await;
    assert_eq!(c.line().await.as_deref(), Some("+ "));
    c.send(&xoauth2(ADELE, &app)).await;
    assert_eq!(c.until("e ").await, ["e OK AUTHENTICATE completed."]);
    // LOGIN with the seeded password (the bridge's tests).
    let tcp = tokio::net::TcpStream::connect(addr(&m.imap_starttls_url()))
        .await
        .unwrap();
    let mut c = Lines::new(tcp);
    c.line().await.unwrap();
    c.ask("a STARTTLS", "a ").await;
    let mut c = Lines::new(tls(&m, c.into_inner()).await);
    assert_eq!(
        c.ask(&format!("b LOGIN {ADELE} wrong"), "b ").await,
        ["b NO LOGIN failed."]
    );
    assert_eq!(
        c.ask(&format!("c LOGIN {ADELE} \"{ADELE_PASSWORD}\""), "c ")
            .await,
        ["c OK LOGIN completed."]
    );
}

#[tokio::test]
async fn malformed_input_is_answered_and_the_server_keeps_serving() {
    let m = mock().await;
    let app = app_token(&m).await;
    let mut c = raw(&m).await;
    // Garbage, a binary line, an unknown command.
    let bad = c.ask("\u{1}\u{2} garbage !!", "").await;
    assert!(bad[0].contains("BAD"), "{bad:?}");
    assert_eq!(
        c.ask("x FROBNICATE", "x ").await,
        ["x BAD Command Error. 12"]
    );
    // A literal announced far beyond the limit is refused without reading it.
    let big = c.ask("y APPEND INBOX {4000000000}", "y ").await;
    assert_eq!(big, ["y BAD Command Argument Error. 11"]);
    // An overlong line.
    let long = format!("z NOOP {}", "a".repeat(300_000));
    c.send(&long).await;
    let answer = c.line().await.unwrap();
    assert!(answer.contains("BAD"), "{answer}");
    // The same connection still works.
    assert_eq!(
        c.ask(
            &format!("w AUTHENTICATE XOAUTH2 {}", xoauth2(ADELE, &app)),
            "w "
        )
        .await,
        ["w OK AUTHENTICATE completed."]
    );
    // And so does a new one.
    let mut d = raw(&m).await;
    assert_eq!(d.ask("a NOOP", "a ").await, ["a OK NOOP completed."]);
}
