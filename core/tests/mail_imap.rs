//! The IMAP backend (`mail::imap::ImapMailbox`) against the testkit's mock Exchange Online IMAP
//! server over real TLS on 127.0.0.1: app-only and delegated, sealed pages and IDs, sync with a
//! UIDVALIDITY change, Exchange's refusals, a refused token retried once, IDLE.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use exgate_core::Error;
use exgate_core::auth::SignIn;
use exgate_core::auth::credentials::{Credentials, SignInCredentials};
use exgate_core::clock::SystemClock;
use exgate_core::config::NetworkSettings;
use exgate_core::connections::Connections;
use exgate_core::governor::Governor;
use exgate_core::mail::imap::{self, ImapMailbox, ImapRefusal, ImapSettings, NewMail};
use exgate_core::mail::{MailConnector, MailUrl};
use exgate_core::mailbox::{
    Body, FolderRef, Mail, MailboxError, MailboxRef, MessageQuery, NewMessage, Recipient,
    WellKnownFolder,
};
use exgate_core::mailboxes::Mailboxes;
use exgate_core::model::{ConnectionSpec, Principal, Resource};
use exgate_core::pipeline::{Limits, PageTokens};
use exgate_core::secret::{Secret, Vault};
use exgate_core::store::SqliteStore;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};
use exgate_testkit::mailproto::{MailSwitchChange, ServicePrincipalSwitch};

struct World {
    _dir: tempfile::TempDir,
    mock: MockMicrosoft,
    vault: Arc<Vault>,
    signin: Arc<SignIn>,
    connections: Arc<Connections>,
    mailboxes: Mailboxes,
    network: NetworkSettings,
}

impl World {
    async fn new() -> World {
        let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let vault = Arc::new(Vault::open_or_create(&dir.path().join("k")).unwrap());
        let store = Arc::new(
            SqliteStore::open(&dir.path().join("db"), vault.clone())
                .await
                .unwrap(),
        );
        let clock = Arc::new(SystemClock);
        let connections = Arc::new(Connections::new(store.clone(), vec![], clock.clone()));
        let network = NetworkSettings {
            authority_host: Some(mock.base_url().parse().unwrap()),
            graph_url: Some(mock.graph_url().parse().unwrap()),
            ca_pem: Some(mock.mail_ca_pem().into_bytes()),
            ..NetworkSettings::default()
        };
        let signin =
            Arc::new(SignIn::new(store, connections.clone(), network.clone(), clock).unwrap());
        let mailboxes = Mailboxes::new(
            signin.clone(),
            connections.clone(),
            vault.clone(),
            network.clone(),
            Default::default(),
            Limits::default(),
        )
        .unwrap();
        World {
            _dir: dir,
            mock,
            vault,
            signin,
            connections,
            mailboxes,
            network,
        }
    }

    fn imap(&self, name: &str, principal: Option<Principal>, me: &str, url: &str) -> ImapMailbox {
        let pages = PageTokens::new(
            self.vault.clone(),
            name,
            principal.as_ref().map(ToString::to_string).as_deref(),
        );
        let credentials: Arc<dyn Credentials> = Arc::new(SignInCredentials::new(
            self.signin.clone(),
            name.into(),
            principal,
            Resource::Imap,
        ));
        ImapMailbox::new(
            ImapSettings {
                url: url.parse::<MailUrl>().unwrap(),
                connector: MailConnector::new(&self.network).unwrap(),
                credentials,
                me: me.into(),
                connection: name.into(),
                governor: Governor::new(imap::governor_policy()),
                limits: Limits::default(),
            },
            pages,
        )
    }

    /// The daemon app, app-only, over implicit TLS.
    async fn app_only(&self, name: &str) -> ImapMailbox {
        let spec = ConnectionSpec {
            tenant: Some(seed::TENANT_ID.into()),
            auth: Some("oauth2-app-only".into()),
            client_id: Some(seed::DAEMON_APP.into()),
            client_secret: Some(Secret::new(seed::DAEMON_APP_SECRET)),
            ..ConnectionSpec::default()
        };
        self.connections.add(name, &spec).await.unwrap();
        self.imap(name, None, "", &self.mock.imap_url())
    }

    /// `upn` signed in with the CLI app, over STARTTLS.
    async fn delegated(&self, name: &str, upn: &str, password: &str) -> ImapMailbox {
        let spec = ConnectionSpec {
            tenant: Some(seed::TENANT_ID.into()),
            auth: Some("oauth2-delegated".into()),
            client_id: Some(seed::PUBLIC_APP.into()),
            ..ConnectionSpec::default()
        };
        self.connections.add(name, &spec).await.unwrap();
        let account = self
            .signin
            .password_login(name, None, upn, &Secret::new(password))
            .await
            .unwrap();
        self.imap(
            name,
            Some(account.principal),
            upn,
            &self.mock.imap_starttls_url(),
        )
    }

    fn switch(&self, change: MailSwitchChange) {
        self.mock.change_mail_switches(&change).unwrap();
    }
}

fn user(address: &str) -> MailboxRef {
    MailboxRef::User(address.into())
}

fn folder(role: WellKnownFolder, page_size: u32) -> MessageQuery {
    MessageQuery {
        folder: Some(FolderRef::WellKnown(role)),
        page_size,
        ..MessageQuery::default()
    }
}

fn refusal(e: &Error) -> Option<ImapRefusal> {
    ImapRefusal::of(e)
}

#[tokio::test]
async fn an_app_reads_pages_and_changes_a_named_mailbox() {
    let w = World::new().await;
    let imap = w.app_only("daemon").await;
    let adele = user(seed::ADELE);

    // An app names the mailbox: `Me` means nothing to it.
    let err = imap.folders(&MailboxRef::Me).await.unwrap_err();
    assert!(
        matches!(err, Error::Mailbox(MailboxError::Invalid(_))),
        "{err}"
    );

    let folders = imap.folders(&adele).await.unwrap();
    let inbox = folders.iter().find(|f| f.id == "INBOX").unwrap();
    assert_eq!(
        (inbox.name.as_str(), inbox.total, inbox.unread),
        ("Inbox", 12, 6)
    );
    assert!(folders.iter().any(|f| f.id == "Deleted Items"));

    // Newest first, five at a time, every message once.
    let query = folder(WellKnownFolder::Inbox, 5);
    let mut seen = Vec::new();
    let mut page = imap.messages(&adele, &query, None).await.unwrap();
    let first_page = page.clone();
    loop {
        assert!(page.items.len() <= 5);
        seen.extend(page.items.iter().map(|m| m.id.clone()));
        let Some(next) = page.next else { break };
        page = imap.messages(&adele, &query, Some(&next)).await.unwrap();
    }
    assert_eq!(seen.len(), 12);
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 12);
    let dates: Vec<_> = first_page.items.iter().map(|m| m.received_at).collect();
    assert!(dates.iter().all(Option::is_some));

    // The token is sealed to the mailbox, folder and query.
    let token = first_page.next.clone().unwrap();
    for (mailbox, q) in [
        (user(seed::MEGAN), query.clone()),
        (adele.clone(), folder(WellKnownFolder::SentItems, 5)),
        (
            adele.clone(),
            MessageQuery {
                unread_only: true,
                ..query.clone()
            },
        ),
    ] {
        let err = imap.messages(&mailbox, &q, Some(&token)).await.unwrap_err();
        assert!(
            err.to_string().contains("was not issued for this mailbox"),
            "{err}"
        );
    }

    // Filters: unread only.
    let unread = imap
        .messages(
            &adele,
            &MessageQuery {
                unread_only: true,
                ..folder(WellKnownFolder::Inbox, 50)
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(unread.items.len(), 6);
    assert!(unread.items.iter().all(|m| !m.is_read));

    // A whole message, its MIME, marked read and unread; reading never marks it.
    let id = &unread.items[0].id;
    let message = imap.message(&adele, id, None).await.unwrap();
    assert_eq!(&message.summary.id, id);
    assert!(!message.summary.is_read);
    assert!(!message.summary.subject.is_empty());
    let mime = imap
        .mime(&adele, id)
        .await
        .unwrap()
        .into_bytes()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&mime).contains("Subject:"));
    imap.set_read(&adele, id, true).await.unwrap();
    assert!(
        imap.message(&adele, id, None)
            .await
            .unwrap()
            .summary
            .is_read
    );
    imap.set_read(&adele, id, false).await.unwrap();
    assert!(
        !imap
            .message(&adele, id, None)
            .await
            .unwrap()
            .summary
            .is_read
    );

    // Attachments of the messages that have some.
    let all = imap
        .messages(&adele, &folder(WellKnownFolder::Inbox, 50), None)
        .await
        .unwrap();
    let with = all.items.iter().find(|m| m.has_attachments).unwrap();
    let full = imap.message(&adele, &with.id, None).await.unwrap();
    let info = full.attachments.first().unwrap();
    let attachment = imap.attachment(&adele, &with.id, &info.id).await.unwrap();
    assert_eq!(attachment.info.name, info.name);
    let bytes = attachment.content.into_bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, info.size);
    let err = imap.attachment(&adele, &with.id, "99").await.unwrap_err();
    assert!(
        matches!(err, Error::Mailbox(MailboxError::NotFound { .. })),
        "{err}"
    );

    // Many MIMEs at once, each with its own result; a bad ID fails alone.
    let mut ids: Vec<String> = all.items.iter().map(|m| m.id.clone()).collect();
    ids.push("im1.broken".into());
    let many = imap.mime_many(&adele, &ids).await.unwrap();
    assert_eq!(many.len(), 13);
    assert!(
        many[..12]
            .iter()
            .all(|r| r.as_ref().is_ok_and(|m| !m.is_empty()))
    );
    assert!(many[12].is_err());
    assert_eq!(
        many[0].as_ref().unwrap(),
        &imap
            .mime(&adele, &ids[0])
            .await
            .unwrap()
            .into_bytes()
            .await
            .unwrap()
    );

    // A sync from scratch, then only what changed.
    let inbox_ref = FolderRef::WellKnown(WellKnownFolder::Inbox);
    let full_sync = imap.changes(&adele, &inbox_ref, None).await.unwrap();
    assert_eq!(full_sync.changed.len(), 12);
    assert!(!full_sync.reset && full_sync.removed.is_empty());
    let quiet = imap
        .changes(&adele, &inbox_ref, Some(&full_sync.state))
        .await
        .unwrap();
    assert!(quiet.changed.is_empty() && quiet.removed.is_empty());

    // Move to Archive: a new ID there, the old one gone.
    let read: Vec<_> = all.items.iter().filter(|m| m.is_read).collect();
    let (moved_from, deleted) = (read[0].id.clone(), read[1].clone());
    let to_read = unread.items[1].id.clone();
    let archived = imap
        .move_message(
            &adele,
            &moved_from,
            &FolderRef::WellKnown(WellKnownFolder::Archive),
        )
        .await
        .unwrap();
    assert_ne!(archived, moved_from);
    let in_archive = imap.message(&adele, &archived, None).await.unwrap();
    assert_eq!(in_archive.summary.folder_id.as_deref(), Some("Archive"));
    let err = imap.message(&adele, &moved_from, None).await.unwrap_err();
    assert!(
        matches!(err, Error::Mailbox(MailboxError::NotFound { .. })),
        "{err}"
    );

    // Delete: into Deleted Items, and from there for good.
    imap.set_read(&adele, &to_read, true).await.unwrap();
    let trash_query = folder(WellKnownFolder::DeletedItems, 500);
    let in_trash = imap
        .messages(&adele, &trash_query, None)
        .await
        .unwrap()
        .items
        .len();
    imap.delete_message(&adele, &deleted.id).await.unwrap();
    let trash = imap.messages(&adele, &trash_query, None).await.unwrap();
    assert_eq!(trash.items.len(), in_trash + 1);
    let binned = trash
        .items
        .iter()
        .find(|m| m.subject == deleted.subject)
        .unwrap();
    imap.delete_message(&adele, &binned.id).await.unwrap();
    let trash = imap.messages(&adele, &trash_query, None).await.unwrap();
    assert_eq!(trash.items.len(), in_trash);

    let changes = imap
        .changes(&adele, &inbox_ref, Some(&quiet.state))
        .await
        .unwrap();
    let mut removed = changes.removed.clone();
    removed.sort();
    let mut expected = vec![moved_from.clone(), deleted.id.clone()];
    expected.sort();
    assert_eq!(removed, expected);
    assert_eq!(
        changes
            .changed
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>(),
        [to_read.as_str()]
    );
    assert!(changes.changed[0].is_read);

    // A sync state of another folder is refused.
    let err = imap
        .changes(
            &adele,
            &FolderRef::WellKnown(WellKnownFolder::SentItems),
            Some(&changes.state),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("sync token"), "{err}");

    // Sending is SMTP's.
    let err = imap
        .send(&adele, &note(seed::MEGAN, "hi"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Mailbox(MailboxError::Unsupported(m)) if m.contains("SMTP")),
        "{err}"
    );

    // Sessions were reused, not opened per call.
    let opened = w
        .mock
        .mail_sessions()
        .iter()
        .filter(|s| s.mailbox.as_deref() == Some(seed::ADELE))
        .count();
    assert!(opened <= 4, "{opened} IMAP sessions for one mailbox");
}

fn note(to: &str, subject: &str) -> NewMessage {
    NewMessage {
        to: vec![Recipient::address(to)],
        cc: vec![],
        bcc: vec![],
        subject: subject.into(),
        body: Body::text("hello over Graph"),
        attachments: vec![],
        importance: Default::default(),
        from: None,
        save_to_sent: true,
    }
}

#[tokio::test]
async fn ids_are_bound_to_their_mailbox_and_folder_generation() {
    let w = World::new().await;
    let imap = w.app_only("daemon").await;
    let (adele, megan) = (user(seed::ADELE), user(seed::MEGAN));
    let query = folder(WellKnownFolder::Inbox, 1);
    let page = imap.messages(&megan, &query, None).await.unwrap();
    assert!(page.next.is_some());
    let id = page.items[0].id.clone();

    // An ID of Megan's mailbox addresses nothing in Adele's.
    let err = imap.message(&adele, &id, None).await.unwrap_err();
    assert!(
        matches!(err, Error::Mailbox(MailboxError::NotFound { .. })),
        "{err}"
    );
    let err = imap.set_read(&adele, &id, true).await.unwrap_err();
    assert!(
        matches!(err, Error::Mailbox(MailboxError::NotFound { .. })),
        "{err}"
    );
    // Not an ID at all.
    let err = imap.message(&adele, "AAMkAGI2", None).await.unwrap_err();
    assert!(
        matches!(err, Error::Mailbox(MailboxError::Invalid(_))),
        "{err}"
    );

    let inbox = FolderRef::WellKnown(WellKnownFolder::Inbox);
    let before = imap.changes(&megan, &inbox, None).await.unwrap();

    // The Inbox is renumbered (as after it was recreated).
    w.switch(MailSwitchChange {
        bump_uid_validity: vec![format!("{}/INBOX", seed::MEGAN)],
        ..MailSwitchChange::default()
    });
    let err = imap.message(&megan, &id, None).await.unwrap_err();
    assert!(
        matches!(err, Error::Mailbox(MailboxError::NotFound { .. })),
        "{err}"
    );
    let err = imap
        .messages(&megan, &query, page.next.as_deref())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("UIDVALIDITY"), "{err}");
    let after = imap
        .changes(&megan, &inbox, Some(&before.state))
        .await
        .unwrap();
    assert!(after.reset, "a new UIDVALIDITY is a full resync");
    assert_eq!(after.changed.len(), before.changed.len());
    assert!(after.removed.is_empty());
    let fresh = imap.messages(&megan, &query, None).await.unwrap();
    assert!(!fresh.items.iter().any(|m| m.id == id));
    imap.message(&megan, &fresh.items[0].id, None)
        .await
        .unwrap();
}

#[tokio::test]
async fn exchanges_refusals_are_typed() {
    let w = World::new().await;
    let imap = w.app_only("daemon").await;

    // IMAP disabled for Megan's mailbox: NO AUTHENTICATE failed.
    w.switch(MailSwitchChange {
        imap_enabled: BTreeMap::from([(seed::MEGAN.to_string(), false)]),
        ..MailSwitchChange::default()
    });
    let err = imap.folders(&user(seed::MEGAN)).await.unwrap_err();
    assert_eq!(
        refusal(&err),
        Some(ImapRefusal::AuthenticateFailed),
        "{err}"
    );
    assert_eq!(err.kind(), exgate_core::ErrorKind::Forbidden);
    let text = err.to_string();
    assert!(
        text.contains("IMAP") && text.contains("NO AUTHENTICATE failed."),
        "{text}"
    );
    assert!(!text.contains("eyJ"), "no token in the message: {text}");

    // The app's service principal has no FullAccess on Adele's mailbox: BAD … not connected.
    w.switch(MailSwitchChange {
        service_principals: BTreeMap::from([(
            seed::DAEMON_APP.to_string(),
            ServicePrincipalSwitch {
                registered: None,
                full_access: Some(vec![seed::SALES.to_string()]),
            },
        )]),
        ..MailSwitchChange::default()
    });
    let err = imap.folders(&user(seed::ADELE)).await.unwrap_err();
    assert_eq!(refusal(&err), Some(ImapRefusal::NotConnected), "{err}");
    assert!(
        err.to_string()
            .contains("BAD User is authenticated but not connected."),
        "{err}"
    );
    // Sales it may still read.
    assert!(!imap.folders(&user(seed::SALES)).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_refused_token_is_replaced_once() {
    let w = World::new().await;
    let imap = w.app_only("daemon").await;
    // A token without the IMAP role is cached first (consent revoked), then consent returns.
    w.mock.revoke_consent(seed::DAEMON_APP);
    let credentials =
        SignInCredentials::new(w.signin.clone(), "daemon".into(), None, Resource::Imap);
    credentials.credential().await.unwrap();
    w.mock.grant_consent(seed::DAEMON_APP);

    let folders = imap.folders(&user(seed::ADELE)).await.unwrap();
    assert!(!folders.is_empty());
    let outcomes: Vec<_> = w
        .mock
        .mail_sessions()
        .into_iter()
        .filter_map(|s| s.outcome)
        .collect();
    assert_eq!(outcomes, ["failed", "ok"]);

    // Refused with a fresh token too: given up after one retry, typed.
    w.mock.revoke_consent(seed::DAEMON_APP);
    credentials.rejected().await;
    let other = w.imap("daemon", None, "", &w.mock.imap_url());
    let err = other.folders(&user(seed::MEGAN)).await.unwrap_err();
    assert_eq!(
        refusal(&err),
        Some(ImapRefusal::AuthenticateFailed),
        "{err}"
    );
    let failed = w
        .mock
        .mail_sessions()
        .into_iter()
        .filter(|s| s.mailbox.as_deref() == Some(seed::MEGAN))
        .count();
    assert_eq!(failed, 2, "one retry with a fresh token, no more");
}

#[tokio::test]
async fn a_delegate_reads_its_own_and_a_shared_mailbox_over_starttls() {
    let w = World::new().await;
    let adele = w
        .delegated("adele", seed::ADELE, seed::ADELE_PASSWORD)
        .await;
    let own = adele
        .messages(&MailboxRef::Me, &folder(WellKnownFolder::Inbox, 50), None)
        .await
        .unwrap();
    assert_eq!(own.items.len(), 12);
    // Adele has FullAccess on Sales.
    let sales = adele
        .messages(
            &user(seed::SALES),
            &folder(WellKnownFolder::Inbox, 50),
            None,
        )
        .await
        .unwrap();
    assert!(!sales.items.is_empty());
    // An ID of her own mailbox is not one of Sales'.
    let err = adele
        .message(&user(seed::SALES), &own.items[0].id, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Mailbox(MailboxError::NotFound { .. })),
        "{err}"
    );
    assert!(w.mock.mail_sessions().iter().all(|s| s.tls));

    // Megan has no right on Sales.
    let megan = w
        .delegated("megan", seed::MEGAN, seed::MEGAN_PASSWORD)
        .await;
    let err = megan.folders(&user(seed::SALES)).await.unwrap_err();
    assert_eq!(refusal(&err), Some(ImapRefusal::NotConnected), "{err}");
}

#[tokio::test]
async fn idle_sees_mail_sent_over_graph() {
    let w = World::new().await;
    let imap = w.app_only("daemon").await;
    let graph = w.mailboxes.open(Some("daemon"), None).await.unwrap();
    let megan = user(seed::MEGAN);
    let inbox = FolderRef::WellKnown(WellKnownFolder::Inbox);

    let wait = imap.wait_for_new_mail(&megan, &inbox, Duration::from_secs(60));
    let send = async {
        // The watcher is in IDLE before the message goes out.
        while !w
            .mock
            .mail_sessions()
            .iter()
            .any(|s| s.commands.iter().any(|c| c.starts_with("IDLE")))
        {
            tokio::task::yield_now().await;
        }
        graph
            .mail()
            .unwrap()
            .send(
                &user(seed::ADELE),
                &note(seed::MEGAN, "while you were idling"),
            )
            .await
            .unwrap();
    };
    let (arrived, ()) = tokio::join!(wait, send);
    match arrived.unwrap() {
        NewMail::Arrived(messages) => {
            assert_eq!(messages.len(), 1);
            assert_eq!(messages[0].subject, "while you were idling");
            // The summary's ID reads the message.
            imap.message(&megan, &messages[0].id, None).await.unwrap();
        }
        NewMail::TimedOut => panic!("no new mail seen"),
    }
}

/// Every `log` record (async-imap logs what it sends and reads at trace level).
struct Recorder(std::sync::Mutex<Vec<String>>);

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {}", record.target(), record.args()));
    }
    fn flush(&self) {}
}

static RECORDER: Recorder = Recorder(std::sync::Mutex::new(Vec::new()));

#[tokio::test]
async fn the_token_never_reaches_async_imaps_trace_log() {
    let _ = log::set_logger(&RECORDER);
    log::set_max_level(log::LevelFilter::Trace);
    let w = World::new().await;
    let imap = w.app_only("daemon").await;
    imap.folders(&user(seed::MEGAN)).await.unwrap();
    let credentials =
        SignInCredentials::new(w.signin.clone(), "daemon".into(), None, Resource::Imap);
    let exgate_core::auth::credentials::Credential::Bearer(token) =
        credentials.credential().await.unwrap()
    else {
        panic!("an app-only connection has bearer tokens");
    };
    let real = exgate_core::mail::xoauth2::encoded_initial_response(seed::MEGAN, &token.secret);
    let logged = RECORDER.0.lock().unwrap().join("\n");
    assert!(
        logged.contains("AUTHENTICATE XOAUTH2"),
        "async-imap's trace was recorded"
    );
    assert!(
        !logged.contains(real.expose()),
        "the XOAUTH2 response was logged"
    );
    let signature = token.secret.expose().rsplit('.').next().unwrap();
    assert!(!logged.contains(signature), "the token was logged");
}
