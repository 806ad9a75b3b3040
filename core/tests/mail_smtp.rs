//! SMTP submission with XOAUTH2 against exgate-mock: app-only and delegated sends arrive in the
//! recipient's mailbox (visible over Graph), and each refusal is explained with its fix and the
//! app's real IDs; a token without the role is refused before any connection.

#[path = "mail/setup.rs"]
mod setup;

use exgate_core::Error;
use exgate_core::mail::MailFailure;
use exgate_core::mailbox::{Body, MailboxError, MailboxRef, NewMessage, Recipient};
use exgate_core::model::ConnectionSpec;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::seed;
use exgate_testkit::mailproto::{MailSwitchChange, ServicePrincipalSwitch};
use setup::{app_only, delegated, env, sign_in_adele};

fn message(subject: &str) -> NewMessage {
    NewMessage {
        to: vec![Recipient::address(seed::MEGAN)],
        cc: vec![],
        bcc: vec![],
        subject: subject.into(),
        body: Body::text("Hello over SMTP"),
        attachments: vec![],
        importance: Default::default(),
        from: None,
        save_to_sent: true,
    }
}

fn smtp_send() -> ConnectionSpec {
    ConnectionSpec {
        send: Some("smtp".into()),
        ..ConnectionSpec::default()
    }
}

fn failure(e: Error) -> MailFailure {
    match e {
        Error::Mailbox(MailboxError::Mail(f)) => f,
        other => panic!("not an explained mail failure: {other:?}"),
    }
}

#[tokio::test]
async fn app_only_and_delegated_sends_arrive_over_smtp() {
    let mock = MockMicrosoft::start(Default::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = env(&mock, dir.path(), "daemon", app_only(smtp_send())).await;
    let backend = env.mailboxes.open(Some("daemon"), None).await.unwrap();
    let mail = backend.mail().unwrap();
    mail.send(
        &MailboxRef::User(seed::ADELE.into()),
        &message("app-only over SMTP"),
    )
    .await
    .unwrap();
    assert!(
        mock.delivered(seed::MEGAN)
            .iter()
            .any(|(_, s)| s == "app-only over SMTP"),
        "{:?}",
        mock.delivered(seed::MEGAN)
    );
    // App-only has no mailbox of its own: the sender must be named.
    let e = mail.send(&MailboxRef::Me, &message("x")).await.unwrap_err();
    assert!(e.to_string().contains("mailbox"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let env = env_delegated(&mock, dir.path()).await;
    let principal = sign_in_adele(&env, "user").await;
    let backend = env
        .mailboxes
        .open(Some("user"), Some(&principal))
        .await
        .unwrap();
    backend
        .mail()
        .unwrap()
        .send(&MailboxRef::Me, &message("delegated over SMTP"))
        .await
        .unwrap();
    assert!(
        mock.delivered(seed::MEGAN)
            .iter()
            .any(|(_, s)| s == "delegated over SMTP")
    );
    // The message is visible over Graph in Megan's mailbox (the shared store).
    assert!(
        mock.submitted(seed::ADELE)
            .iter()
            .any(|(_, s)| s == "delegated over SMTP")
    );
}

async fn env_delegated(mock: &MockMicrosoft, dir: &std::path::Path) -> setup::Env {
    env(mock, dir, "user", delegated(smtp_send())).await
}

#[tokio::test]
async fn each_smtp_refusal_is_explained_with_its_fix() {
    let mock = MockMicrosoft::start(Default::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = env(&mock, dir.path(), "daemon", app_only(smtp_send())).await;
    let backend = env.mailboxes.open(Some("daemon"), None).await.unwrap();
    let mail = backend.mail().unwrap();
    let adele = MailboxRef::User(seed::ADELE.into());
    let switch = |change: MailSwitchChange| mock.change_mail_switches(&change).unwrap();

    // The service principal not registered in Exchange: New-ServicePrincipal with the real IDs.
    switch(MailSwitchChange {
        service_principals: [(
            seed::DAEMON_APP.to_owned(),
            ServicePrincipalSwitch {
                registered: Some(false),
                full_access: None,
            },
        )]
        .into(),
        ..Default::default()
    });
    let f = failure(mail.send(&adele, &message("x")).await.unwrap_err());
    assert_eq!(f.code, "sp_not_registered", "{f}");
    assert!(
        f.hint.contains(&format!(
            "New-ServicePrincipal -AppId {} -ObjectId {}",
            seed::DAEMON_APP,
            seed::DAEMON_APP_SP_OID
        )),
        "{}",
        f.hint
    );
    switch(MailSwitchChange {
        service_principals: [(
            seed::DAEMON_APP.to_owned(),
            ServicePrincipalSwitch {
                registered: Some(true),
                full_access: None,
            },
        )]
        .into(),
        ..Default::default()
    });

    // SMTP AUTH off for the mailbox, then for the tenant, then security defaults.
    switch(MailSwitchChange {
        smtp_client_auth: [(seed::ADELE.to_owned(), false)].into(),
        ..Default::default()
    });
    let f = failure(mail.send(&adele, &message("x")).await.unwrap_err());
    assert_eq!(f.code, "smtp_auth_disabled_mailbox", "{f}");
    assert!(f.hint.contains(&format!(
        "Set-CASMailbox -Identity {} -SmtpClientAuthenticationDisabled $false",
        seed::ADELE
    )));
    switch(MailSwitchChange {
        smtp_client_auth: [(seed::ADELE.to_owned(), true)].into(),
        smtp_client_auth_tenant: Some(false),
        ..Default::default()
    });
    let f = failure(mail.send(&adele, &message("x")).await.unwrap_err());
    assert_eq!(f.code, "smtp_auth_disabled_tenant", "{f}");
    assert!(
        f.hint
            .contains("Set-TransportConfig -SmtpClientAuthenticationDisabled $false")
    );
    switch(MailSwitchChange {
        smtp_client_auth_tenant: Some(true),
        ..Default::default()
    });
    mail.send(&adele, &message("after the fixes"))
        .await
        .unwrap();
    assert!(!f.to_string().contains("eyJ"), "no token in errors");
}

#[tokio::test]
async fn a_token_for_another_resource_is_refused_before_connecting() {
    let mock = MockMicrosoft::start(Default::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Send = smtp with a token request for the wrong tenant: the claims check catches it.
    let env = env(
        &mock,
        dir.path(),
        "daemon",
        ConnectionSpec {
            tenant: Some("00000000-0000-4000-8000-0000000000aa".into()),
            ..app_only(smtp_send())
        },
    )
    .await;
    let before = mock.mail_sessions().len();
    let backend = env.mailboxes.open(Some("daemon"), None).await;
    if let Ok(backend) = backend {
        let e = backend
            .mail()
            .unwrap()
            .send(&MailboxRef::User(seed::ADELE.into()), &message("x"))
            .await
            .unwrap_err();
        // Either Entra refuses the unknown tenant, or the claims check names it: never SMTP.
        assert!(
            matches!(&e, Error::Auth(_))
                || matches!(&e, Error::Mailbox(MailboxError::Mail(f)) if f.code == "wrong_tenant"),
            "{e:?}"
        );
    }
    assert_eq!(
        mock.mail_sessions().len(),
        before,
        "no SMTP connection was made"
    );
}

#[tokio::test]
async fn a_token_without_the_role_is_refused_before_any_connection() {
    let mock = MockMicrosoft::start(Default::default()).await.unwrap();
    // Admin consent revoked: Entra still issues the app-only token, without roles.
    mock.change_entra_switches(&exgate_testkit::entra::EntraSwitchChange {
        consent_revoked: Some(vec![seed::DAEMON_APP.into()]),
        ..Default::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = env(&mock, dir.path(), "daemon", app_only(smtp_send())).await;
    let backend = env.mailboxes.open(Some("daemon"), None).await.unwrap();
    let before = mock.mail_sessions().len();
    let f = failure(
        backend
            .mail()
            .unwrap()
            .send(&MailboxRef::User(seed::ADELE.into()), &message("x"))
            .await
            .unwrap_err(),
    );
    assert_eq!(f.code, "missing_role", "{f}");
    assert!(f.message.contains("SMTP.SendAsApp"), "{f}");
    assert!(f.hint.contains("Grant admin consent"), "{}", f.hint);
    assert!(f.hint.contains(seed::DAEMON_APP), "{}", f.hint);
    assert_eq!(
        mock.mail_sessions().len(),
        before,
        "no SMTP connection was made"
    );
}

#[tokio::test]
async fn implicit_tls_smtps_is_taken_from_the_connection() {
    let mock = MockMicrosoft::start(Default::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = app_only(ConnectionSpec {
        send: Some("smtp".into()),
        smtp_url: Some(mock.smtps_url()),
        ..ConnectionSpec::default()
    });
    let env = env(&mock, dir.path(), "daemon", spec).await;
    let backend = env.mailboxes.open(Some("daemon"), None).await.unwrap();
    backend
        .mail()
        .unwrap()
        .send(
            &MailboxRef::User(seed::SALES.into()),
            &message("over smtps"),
        )
        .await
        .unwrap();
    assert!(
        mock.delivered(seed::MEGAN)
            .iter()
            .any(|(_, s)| s == "over smtps")
    );
    let last = mock.mail_sessions().pop().unwrap();
    assert!(last.tls);
    assert_eq!(last.mailbox.as_deref(), Some(seed::SALES));
}
