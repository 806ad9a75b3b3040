//! IMAP through `Mailboxes`: Exchange's bare refusals come back explained with the app's real
//! IDs, and the claims are checked before connecting.

#[path = "mail/setup.rs"]
mod setup;

use exgate_core::Error;
use exgate_core::mailbox::{MailboxError, MailboxRef};
use exgate_core::model::ConnectionSpec;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::seed;
use exgate_testkit::mailproto::{MailSwitchChange, ServicePrincipalSwitch};
use setup::{app_only, env};

fn code(e: &Error) -> (&'static str, String) {
    match e {
        Error::Mailbox(MailboxError::Mail(f)) => (f.code, f.hint.clone()),
        other => panic!("not explained: {other:?}"),
    }
}

#[tokio::test]
async fn imap_refusals_name_the_service_principal_and_the_mailbox_right() {
    let mock = MockMicrosoft::start(Default::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = app_only(ConnectionSpec {
        backend: Some("imap".into()),
        ..ConnectionSpec::default()
    });
    let env = env(&mock, dir.path(), "daemon", spec).await;
    let backend = env.mailboxes.open(Some("daemon"), None).await.unwrap();
    let mail = backend.mail().unwrap();
    let adele = MailboxRef::User(seed::ADELE.into());
    assert!(!mail.folders(&adele).await.unwrap().is_empty());

    let sp = |registered: Option<bool>, full_access: Option<Vec<String>>| MailSwitchChange {
        service_principals: [(
            seed::DAEMON_APP.to_owned(),
            ServicePrincipalSwitch {
                registered,
                full_access,
            },
        )]
        .into(),
        ..Default::default()
    };
    mock.change_mail_switches(&sp(None, Some(vec![seed::MEGAN.into()])))
        .unwrap();
    // A new backend: the first one keeps its authenticated sessions for reuse.
    let backend = env.mailboxes.open(Some("daemon"), None).await.unwrap();
    let mail = backend.mail().unwrap();
    let (c, hint) = code(&mail.folders(&adele).await.unwrap_err());
    assert_eq!(c, "no_mailbox_permission");
    assert!(
        hint.contains(&format!(
            "Add-MailboxPermission -Identity {} -User {} -AccessRights FullAccess",
            seed::ADELE,
            seed::DAEMON_APP_SP_OID
        )),
        "{hint}"
    );

    mock.change_mail_switches(&sp(Some(false), None)).unwrap();
    let backend = env.mailboxes.open(Some("daemon"), None).await.unwrap();
    let mail = backend.mail().unwrap();
    let (c, hint) = code(&mail.folders(&adele).await.unwrap_err());
    assert_eq!(c, "sp_not_registered");
    assert!(
        hint.contains(&format!(
            "New-ServicePrincipal -AppId {} -ObjectId {}",
            seed::DAEMON_APP,
            seed::DAEMON_APP_SP_OID
        )),
        "{hint}"
    );
}
