//! The notification engine against the mock's Graph: what a watch's sync reports, and that it
//! reports each change once — twice synced, two engines, a restart.

use std::sync::Arc;

use exgate_core::auth::SignIn;
use exgate_core::clock::SystemClock;
use exgate_core::config::NetworkSettings;
use exgate_core::connections::Connections;
use exgate_core::governor::GovernorPolicy;
use exgate_core::mailbox::{
    Backend, Body, EventDraft, EventTime, FolderRef, MailboxRef, NewMessage, Recipient, TimeZone,
    WellKnownFolder,
};
use exgate_core::mailboxes::Mailboxes;
use exgate_core::model::{
    ConnectionSpec, EmailAddress, MailboxAccess, Principal, StaticUser, StaticUserId,
};
use exgate_core::notify::{EventKind, NewWatch, Notifier, NotifySettings, Pushed, Watched};
use exgate_core::pipeline::Limits;
use exgate_core::secret::{Secret, Vault};
use exgate_core::store::{MemoryStore, Store};
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};

struct World {
    _dir: tempfile::TempDir,
    _mock: MockMicrosoft,
    store: Arc<dyn Store>,
    connections: Arc<Connections>,
    mailboxes: Arc<Mailboxes>,
    backend: Backend,
}

impl World {
    async fn new() -> Self {
        let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let vault = Arc::new(Vault::open_or_create(&dir.path().join("k")).unwrap());
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let clock = Arc::new(SystemClock);
        let connections = Arc::new(Connections::new(store.clone(), vec![], clock.clone()));
        let network = NetworkSettings {
            authority_host: Some(mock.base_url().parse().unwrap()),
            graph_url: Some(mock.graph_url().parse().unwrap()),
            ..NetworkSettings::default()
        };
        let signin = Arc::new(
            SignIn::new(store.clone(), connections.clone(), network.clone(), clock).unwrap(),
        );
        let mailboxes = Arc::new(
            Mailboxes::new(
                signin,
                connections.clone(),
                vault,
                network,
                GovernorPolicy::default(),
                Limits::default(),
            )
            .unwrap(),
        );
        let spec = ConnectionSpec {
            tenant: Some(seed::TENANT_ID.into()),
            auth: Some("oauth2-app-only".into()),
            client_id: Some(seed::DAEMON_APP.into()),
            client_secret: Some(Secret::new(seed::DAEMON_APP_SECRET)),
            ..ConnectionSpec::default()
        };
        let conn = connections.add("contoso", &spec).await.unwrap();
        connections
            .add_static_user(&StaticUser {
                id: StaticUserId::new_random(),
                connection: conn.id,
                principal: "adele".parse().unwrap(),
                mailbox: seed::ADELE.parse().unwrap(),
                access: MailboxAccess::Impersonation,
                created_at: time::OffsetDateTime::now_utc(),
            })
            .await
            .unwrap();
        let (backend, _) = mailboxes
            .for_principal("contoso", &"adele".parse().unwrap(), None)
            .await
            .unwrap();
        Self {
            _dir: dir,
            _mock: mock,
            store,
            connections,
            mailboxes,
            backend,
        }
    }

    fn notifier(&self) -> Arc<Notifier> {
        Arc::new(Notifier::new(
            self.store.clone(),
            self.connections.clone(),
            self.mailboxes.clone(),
            Arc::new(SystemClock),
            NotifySettings::default(),
        ))
    }

    fn adele() -> MailboxRef {
        MailboxRef::User(seed::ADELE.to_owned())
    }

    async fn mail_adele(&self, subject: &str) {
        self.backend
            .mail
            .as_ref()
            .unwrap()
            .send(
                &Self::adele(),
                &NewMessage {
                    to: vec![Recipient::address(seed::ADELE)],
                    subject: subject.into(),
                    body: Body::text("hello"),
                    cc: vec![],
                    bcc: vec![],
                    attachments: vec![],
                    importance: exgate_core::mailbox::Importance::Normal,
                    from: None,
                    save_to_sent: false,
                },
            )
            .await
            .unwrap();
    }

    async fn inbox_id(&self, subject: &str) -> String {
        let page = self
            .backend
            .mail
            .as_ref()
            .unwrap()
            .messages(
                &Self::adele(),
                &exgate_core::mailbox::MessageQuery {
                    folder: Some(inbox()),
                    page_size: 100,
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
        page.items
            .iter()
            .find(|m| m.subject == subject)
            .unwrap_or_else(|| panic!("no {subject}"))
            .id
            .clone()
    }
}

fn inbox() -> FolderRef {
    FolderRef::WellKnown(WellKnownFolder::Inbox)
}

fn watch(watched: Vec<Watched>) -> NewWatch {
    NewWatch {
        connection: "contoso".into(),
        principal: "adele".parse::<Principal>().unwrap(),
        mailbox: None::<EmailAddress>,
        watched,
        api_key: None,
    }
}

#[tokio::test]
async fn a_watch_reports_creations_updates_moves_and_deletions_once() {
    let w = World::new().await;
    let n = w.notifier();
    let archive = FolderRef::WellKnown(WellKnownFolder::Archive);
    let row = n
        .create_watch(watch(vec![
            Watched::Mail { folder: inbox() },
            Watched::Mail {
                folder: archive.clone(),
            },
        ]))
        .await
        .unwrap();
    // The baseline reports nothing.
    assert!(n.sync(row.id).await.unwrap().is_empty());

    w.mail_adele("First news").await;
    let events = n.sync(row.id).await.unwrap();
    let id = w.inbox_id("First news").await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].kind, EventKind::MessageCreated);
    assert_eq!(
        (events[0].folder.as_str(), events[0].item_id.as_str()),
        ("inbox", id.as_str())
    );
    assert!(events[0].seq > 0);
    assert!(n.sync(row.id).await.unwrap().is_empty(), "reported twice");

    let mail = w.backend.mail.as_ref().unwrap();
    mail.set_read(&World::adele(), &id, true).await.unwrap();
    let events = n.sync(row.id).await.unwrap();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].kind, EventKind::MessageUpdated);

    let moved_id = mail
        .move_message(&World::adele(), &id, &archive)
        .await
        .unwrap();
    let events = n.sync(row.id).await.unwrap();
    assert_eq!(events.len(), 1, "{events:#?}");
    let e = &events[0];
    assert_eq!(e.kind, EventKind::MessageMoved);
    assert_eq!(e.folder, "archive");
    assert_eq!(e.item_id, moved_id);
    assert_eq!(e.previous_folder.as_deref(), Some("inbox"));
    assert_eq!(e.previous_item_id.as_deref(), Some(id.as_str()));

    mail.delete_message(&World::adele(), &moved_id)
        .await
        .unwrap();
    let events = n.sync(row.id).await.unwrap();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].kind, EventKind::MessageDeleted);
    assert_eq!(events[0].item_id, moved_id);
}

#[tokio::test]
async fn a_calendar_watch_reports_events_created_changed_and_deleted() {
    let w = World::new().await;
    let n = w.notifier();
    let row = n
        .create_watch(watch(vec![Watched::Calendar]))
        .await
        .unwrap();
    let calendar = w.backend.calendar.as_ref().unwrap();
    let zone = TimeZone::parse("Europe/Berlin").unwrap();
    let start = time::OffsetDateTime::now_utc() + time::Duration::days(2);
    let created = calendar
        .create_event(
            &World::adele(),
            &EventDraft {
                subject: Some("Planning".into()),
                start: Some(EventTime::from_instant(start, zone)),
                end: Some(EventTime::from_instant(
                    start + time::Duration::hours(1),
                    zone,
                )),
                ..EventDraft::default()
            },
        )
        .await
        .unwrap();
    let events = n.sync(row.id).await.unwrap();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].kind, EventKind::EventCreated);
    assert_eq!(events[0].item_id, created.id);
    assert_eq!(events[0].folder, "calendar");

    calendar
        .update_event(
            &World::adele(),
            &created.id,
            &EventDraft {
                subject: Some("Planning (moved)".into()),
                ..EventDraft::default()
            },
        )
        .await
        .unwrap();
    let events = n.sync(row.id).await.unwrap();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].kind, EventKind::EventUpdated);

    calendar
        .delete_event(&World::adele(), &created.id)
        .await
        .unwrap();
    let events = n.sync(row.id).await.unwrap();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].kind, EventKind::EventDeleted);
    assert!(n.sync(row.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn two_engines_and_a_restart_report_each_change_once() {
    let w = World::new().await;
    let a = w.notifier();
    let row = a.create_watch(watch(vec![])).await.unwrap();
    assert_eq!(row.watched, vec![Watched::Mail { folder: inbox() }]);

    // A second engine over the same store (another gateway, or this one restarted) and the
    // first sync at once: the change is committed by one of them.
    let b = w.notifier();
    w.mail_adele("Seen by two").await;
    let (x, y) = tokio::join!(a.sync(row.id), b.sync(row.id));
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.len() + y.len(), 1, "{x:#?} {y:#?}");

    // Changes made while no engine ran are caught up by the next one, once.
    drop((a, b));
    w.mail_adele("While nobody watched 1").await;
    w.mail_adele("While nobody watched 2").await;
    let c = w.notifier();
    let events = c.sync(row.id).await.unwrap();
    assert_eq!(events.len(), 2, "{events:#?}");
    assert!(events.iter().all(|e| e.kind == EventKind::MessageCreated));
    assert!(c.sync(row.id).await.unwrap().is_empty());

    // The journal holds three events, in order, with distinct IDs.
    let all = c
        .store()
        .unwrap()
        .events_after(
            0,
            &exgate_core::notify::store::EventFilter {
                connection: row.connection,
                principal: None,
                mailbox: None,
                kinds: vec![],
            },
            100,
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|p| p[0].seq < p[1].seq));
    let ids: std::collections::HashSet<_> = all.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), 3);
}

#[tokio::test]
async fn pushed_notifications_without_the_watchs_secret_are_refused() {
    let w = World::new().await;
    let n = w.notifier();
    let row = n.create_watch(watch(vec![])).await.unwrap();
    let forged = [Pushed {
        subscription_id: "made-up".into(),
        client_state: Some("guess".into()),
        lifecycle: None,
    }];
    let outcome = n.pushed(row.id, &forged).await;
    assert_eq!((outcome.accepted, outcome.refused), (0, 1));
    // An unknown watch refuses everything too.
    let outcome = n
        .pushed(exgate_core::model::WatchId::new_random(), &forged)
        .await;
    assert_eq!((outcome.accepted, outcome.refused), (0, 1));
}

#[tokio::test]
async fn a_watch_on_a_mailbox_the_principal_cannot_reach_is_refused_and_not_kept() {
    let w = World::new().await;
    let n = w.notifier();
    let err = n
        .create_watch(NewWatch {
            principal: "nobody".parse().unwrap(),
            ..watch(vec![])
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), exgate_core::ErrorKind::NotFound, "{err}");
    assert!(n.watches(None).await.unwrap().is_empty());
}
