//! POP3 with XOAUTH2 against exgate-mock: the Inbox listed newest first in sealed pages, a
//! message shown and deleted, and the refusals explained with the fix.

#[path = "mail/setup.rs"]
mod setup;

use exgate_core::Error;
use exgate_core::mailbox::{MailboxError, MailboxRef, MessageQuery};
use exgate_core::model::ConnectionSpec;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::seed;
use exgate_testkit::mailproto::{MailSwitchChange, ServicePrincipalSwitch};
use setup::{app_only, delegated, env, sign_in_adele};

fn pop() -> ConnectionSpec {
    ConnectionSpec {
        backend: Some("pop".into()),
        ..ConnectionSpec::default()
    }
}

#[tokio::test]
async fn pop_lists_shows_and_deletes_the_inbox() {
    let mock = MockMicrosoft::start(Default::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = env(&mock, dir.path(), "daemon", app_only(pop())).await;
    let backend = env.mailboxes.open(Some("daemon"), None).await.unwrap();
    assert_eq!(backend.protocol, "POP3");
    assert!(backend.calendar().is_err());
    let mail = backend.mail().unwrap();
    let adele = MailboxRef::User(seed::ADELE.into());

    let folders = mail.folders(&adele).await.unwrap();
    assert_eq!(folders.len(), 1);
    let total = folders[0].total as usize;
    assert!(total >= 10, "{folders:?}");

    let query = MessageQuery {
        page_size: 5,
        ..MessageQuery::default()
    };
    let mut ids = Vec::new();
    let mut page = mail.messages(&adele, &query, None).await.unwrap();
    loop {
        assert!(page.items.len() <= 5);
        ids.extend(page.items.iter().map(|m| (m.id.clone(), m.received_at)));
        let Some(next) = page.next.clone() else { break };
        // A page token of Adele's listing is no token for Megan's.
        let e = mail
            .messages(&MailboxRef::User(seed::MEGAN.into()), &query, Some(&next))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Mailbox(_)), "{e:?}");
        page = mail.messages(&adele, &query, Some(&next)).await.unwrap();
    }
    assert_eq!(ids.len(), total);
    // Newest first.
    let dates: Vec<_> = ids.iter().filter_map(|(_, d)| *d).collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]), "{dates:?}");

    let (first, _) = &ids[0];
    let message = mail.message(&adele, first, None).await.unwrap();
    assert!(!message.summary.subject.is_empty());
    let mime = mail
        .mime(&adele, first)
        .await
        .unwrap()
        .into_bytes()
        .await
        .unwrap();
    assert!(mime.windows(8).any(|w| w.eq_ignore_ascii_case(b"subject:")));

    // Move, mark and changes are not POP's.
    let e = mail.set_read(&adele, first, true).await.unwrap_err();
    assert!(e.to_string().contains("POP has no folders"), "{e}");

    mail.delete_message(&adele, first).await.unwrap();
    let again = mail.folders(&adele).await.unwrap();
    assert_eq!(again[0].total as usize, total - 1);
    let e = mail.message(&adele, first, None).await.unwrap_err();
    assert!(
        matches!(e, Error::Mailbox(MailboxError::NotFound { .. })),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_delegated_user_reads_over_pop_and_sends_over_smtp() {
    let mock = MockMicrosoft::start(Default::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = env(&mock, dir.path(), "user", delegated(pop())).await;
    let principal = sign_in_adele(&env, "user").await;
    let backend = env
        .mailboxes
        .open(Some("user"), Some(&principal))
        .await
        .unwrap();
    let mail = backend.mail().unwrap();
    let page = mail
        .messages(
            &MailboxRef::Me,
            &MessageQuery {
                page_size: 3,
                ..MessageQuery::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3);
    // A reply goes over SMTP, quoting the original read over POP.
    mail.reply(&MailboxRef::Me, &page.items[0].id, "Thanks", false)
        .await
        .unwrap();
    assert!(
        mock.submitted(seed::ADELE)
            .iter()
            .any(|(_, s)| s.starts_with("Re: ")),
        "{:?}",
        mock.submitted(seed::ADELE)
    );
}

#[tokio::test]
async fn pop_refusals_name_the_fix() {
    let mock = MockMicrosoft::start(Default::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = env(&mock, dir.path(), "daemon", app_only(pop())).await;
    let backend = env.mailboxes.open(Some("daemon"), None).await.unwrap();
    let mail = backend.mail().unwrap();
    let adele = MailboxRef::User(seed::ADELE.into());
    let explained = |e: Error| match e {
        Error::Mailbox(MailboxError::Mail(f)) => f,
        other => panic!("{other:?}"),
    };

    // No FullAccess on Adele's mailbox.
    mock.change_mail_switches(&MailSwitchChange {
        service_principals: [(
            seed::DAEMON_APP.to_owned(),
            ServicePrincipalSwitch {
                registered: None,
                full_access: Some(vec![seed::MEGAN.into()]),
            },
        )]
        .into(),
        ..Default::default()
    })
    .unwrap();
    let f = explained(mail.folders(&adele).await.unwrap_err());
    assert!(
        f.hint.contains(&format!(
            "Add-MailboxPermission -Identity {} -User {} -AccessRights FullAccess",
            seed::ADELE,
            seed::DAEMON_APP_SP_OID
        )),
        "{}",
        f.hint
    );
    // POP off for Megan's mailbox.
    mock.change_mail_switches(&MailSwitchChange {
        pop_enabled: [(seed::MEGAN.to_owned(), false)].into(),
        ..Default::default()
    })
    .unwrap();
    let f = explained(
        mail.folders(&MailboxRef::User(seed::MEGAN.into()))
            .await
            .unwrap_err(),
    );
    assert!(
        f.hint.contains(&format!(
            "Set-CASMailbox -Identity {} -PopEnabled $true",
            seed::MEGAN
        )),
        "{}",
        f.hint
    );
}
