//! The Graph mailbox backend through core's `Mailboxes` against the testkit's mock Microsoft 365:
//! delegated and app-only, own and shared mailboxes, paging, batching, throttling, errors.

use std::sync::Arc;
use std::time::Duration;

use exgate_core::auth::{RedirectParams, SignIn};
use exgate_core::clock::SystemClock;
use exgate_core::config::NetworkSettings;
use exgate_core::connections::Connections;
use exgate_core::governor::GovernorPolicy;
use exgate_core::mailbox::{
    AttendeeKind, Backend, Body, BodyKind, ContactDraft, DayOfWeek, EventDraft, EventKind,
    EventTime, FolderRef, MailboxError, MailboxRef, MessageQuery, NewAttachment, NewMessage,
    Recipient, Recurrence, RecurrencePattern, RecurrenceRange, TimeZone, WellKnownFolder,
};
use exgate_core::mailboxes::Mailboxes;
use exgate_core::model::ConnectionSpec;
use exgate_core::pipeline::Limits;
use exgate_core::secret::{Secret, Vault};
use exgate_core::store::SqliteStore;
use exgate_core::{Error, ErrorKind};
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};
use time::macros::{date, datetime};

struct World {
    _dir: tempfile::TempDir,
    mock: MockMicrosoft,
    signin: Arc<SignIn>,
    mailboxes: Mailboxes,
    connections: Arc<Connections>,
}

impl World {
    async fn new() -> Self {
        Self::with_seed(Seed::contoso()).await
    }

    async fn with_seed(seed: Seed) -> Self {
        let policy = GovernorPolicy::default();
        let mock = MockMicrosoft::start(seed).await.unwrap();
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
            ews_url: None,
            ca_pem: None,
            autodiscover_url: None,
            ..NetworkSettings::default()
        };
        let signin =
            Arc::new(SignIn::new(store, connections.clone(), network.clone(), clock).unwrap());
        let mailboxes = Mailboxes::new(
            signin.clone(),
            connections.clone(),
            vault,
            network,
            policy,
            Limits::default(),
        )
        .unwrap();
        Self {
            _dir: dir,
            mock,
            signin,
            mailboxes,
            connections,
        }
    }

    async fn delegated(&self, name: &str, upn: &str, scopes: Option<Vec<String>>) -> Backend {
        let spec = ConnectionSpec {
            tenant: Some(seed::TENANT_ID.into()),
            auth: Some("oauth2-delegated".into()),
            client_id: Some(seed::PUBLIC_APP.into()),
            scopes,
            ..ConnectionSpec::default()
        };
        self.connections.add(name, &spec).await.unwrap();
        self.mock.set_auto_approve(Some(upn));
        let login = self
            .signin
            .start_browser_login(name, None, "http://localhost:50001", None)
            .await
            .unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let resp = http.get(&login.url).send().await.unwrap();
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        self.signin
            .finish_browser_login(RedirectParams::parse(&location).unwrap())
            .await
            .unwrap();
        self.mailboxes.open(Some(name), None).await.unwrap()
    }

    async fn app_only(&self, name: &str) -> Backend {
        let spec = ConnectionSpec {
            tenant: Some(seed::TENANT_ID.into()),
            auth: Some("oauth2-app-only".into()),
            client_id: Some(seed::DAEMON_APP.into()),
            client_secret: Some(Secret::new(seed::DAEMON_APP_SECRET)),
            ..ConnectionSpec::default()
        };
        self.connections.add(name, &spec).await.unwrap();
        self.mailboxes.open(Some(name), None).await.unwrap()
    }
}

fn inbox() -> MessageQuery {
    MessageQuery {
        folder: Some(FolderRef::WellKnown(WellKnownFolder::Inbox)),
        page_size: 5,
        ..MessageQuery::default()
    }
}

fn text_message(to: &str, subject: &str) -> NewMessage {
    NewMessage {
        to: vec![Recipient::address(to)],
        cc: vec![],
        bcc: vec![],
        subject: subject.into(),
        body: Body::text("hello from exgate"),
        attachments: vec![],
        importance: Default::default(),
        from: None,
        save_to_sent: true,
    }
}

#[tokio::test]
async fn delegated_mail_end_to_end() {
    let w = World::new().await;
    let mb = w.delegated("contoso", seed::ADELE, None).await;
    let me = MailboxRef::Me;

    let folders = mb.mail().unwrap().folders(&me).await.unwrap();
    assert!(folders.iter().any(|f| f.name == "Inbox"), "{folders:?}");

    // Paging through the inbox, newest first, without repeats.
    let first = mb
        .mail()
        .unwrap()
        .messages(&me, &inbox(), None)
        .await
        .unwrap();
    assert_eq!(first.items.len(), 5);
    let next = first.next.clone().expect("more than one page");
    let second = mb
        .mail()
        .unwrap()
        .messages(&me, &inbox(), Some(&next))
        .await
        .unwrap();
    assert!(
        second
            .items
            .iter()
            .all(|m| first.items.iter().all(|f| f.id != m.id))
    );
    assert!(
        first
            .items
            .windows(2)
            .all(|w| w[0].received_at >= w[1].received_at)
    );

    // A message with attachments: metadata, then content on demand; MIME export.
    let mut all = first.items.clone();
    all.extend(second.items);
    let with_att = all
        .iter()
        .find(|m| m.has_attachments)
        .expect("a message with attachments");
    let full = mb
        .mail()
        .unwrap()
        .message(&me, &with_att.id, None)
        .await
        .unwrap();
    assert!(!full.attachments.is_empty());
    let att = mb
        .mail()
        .unwrap()
        .attachment(&me, &with_att.id, &full.attachments[0].id)
        .await
        .unwrap();
    let content = att.content.into_bytes().await.unwrap();
    assert_eq!(content.len() as u64, full.attachments[0].size);
    let mime = mb.mail().unwrap().mime(&me, &with_att.id).await.unwrap();
    let mime = String::from_utf8(mime.into_bytes().await.unwrap()).unwrap();
    assert!(mime.contains("Subject:"), "{mime}");
    let text = mb
        .mail()
        .unwrap()
        .message(&me, &with_att.id, Some(BodyKind::Text))
        .await
        .unwrap();
    assert_eq!(text.body.kind, BodyKind::Text);

    // Send with an attachment to Megan: delivered exactly once.
    let mut msg = text_message(seed::MEGAN, "exgate delivery check");
    msg.attachments.push(NewAttachment {
        name: "a.txt".into(),
        content_type: "text/plain".into(),
        content: b"attached".to_vec().into(),
    });
    mb.mail().unwrap().send(&me, &msg).await.unwrap();
    let delivered: Vec<_> = w
        .mock
        .delivered(seed::MEGAN)
        .into_iter()
        .filter(|(_, s)| s == "exgate delivery check")
        .collect();
    assert_eq!(delivered.len(), 1, "{delivered:?}");

    // Reply, forward, mark, move (new ID), delete.
    let target = &all[0];
    mb.mail()
        .unwrap()
        .reply(&me, &target.id, "thanks", false)
        .await
        .unwrap();
    mb.mail()
        .unwrap()
        .forward(&me, &target.id, &[Recipient::address(seed::MEGAN)], "fyi")
        .await
        .unwrap();
    mb.mail()
        .unwrap()
        .set_read(&me, &target.id, true)
        .await
        .unwrap();
    assert!(
        mb.mail()
            .unwrap()
            .message(&me, &target.id, None)
            .await
            .unwrap()
            .summary
            .is_read
    );
    let moved = mb
        .mail()
        .unwrap()
        .move_message(
            &me,
            &target.id,
            &FolderRef::WellKnown(WellKnownFolder::Archive),
        )
        .await
        .unwrap();
    assert_ne!(moved, target.id);
    mb.mail()
        .unwrap()
        .delete_message(&me, &moved)
        .await
        .unwrap();

    let err = mb
        .mail()
        .unwrap()
        .message(&me, "does-not-exist", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

#[tokio::test]
async fn folder_changes_are_incremental() {
    let w = World::new().await;
    let mb = w.delegated("contoso", seed::ADELE, None).await;
    let me = MailboxRef::Me;
    let inbox = FolderRef::WellKnown(WellKnownFolder::Inbox);
    let initial = mb.mail().unwrap().changes(&me, &inbox, None).await.unwrap();
    assert!(!initial.changed.is_empty());
    let unchanged = mb
        .mail()
        .unwrap()
        .changes(&me, &inbox, Some(&initial.state))
        .await
        .unwrap();
    assert!(unchanged.changed.is_empty() && unchanged.removed.is_empty());

    let victim = initial.changed[0].id.clone();
    mb.mail()
        .unwrap()
        .delete_message(&me, &victim)
        .await
        .unwrap();
    let megan = w.delegated("megan", seed::MEGAN, None).await;
    megan
        .mail()
        .unwrap()
        .send(&me, &text_message(seed::ADELE, "new since the last sync"))
        .await
        .unwrap();
    let delta = mb
        .mail()
        .unwrap()
        .changes(&me, &inbox, Some(&unchanged.state))
        .await
        .unwrap();
    assert!(delta.removed.contains(&victim), "{delta:?}");
    assert!(
        delta
            .changed
            .iter()
            .any(|m| m.subject == "new since the last sync"),
        "{delta:?}"
    );
}

#[tokio::test]
async fn calendar_and_free_busy() {
    let w = World::new().await;
    let mb = w.delegated("contoso", seed::ADELE, None).await;
    let me = MailboxRef::Me;
    let (start, end) = (
        datetime!(2026-01-01 0:00 UTC),
        datetime!(2027-12-31 0:00 UTC),
    );
    let berlin = TimeZone::parse("Europe/Berlin").unwrap();
    let events = mb
        .calendar()
        .unwrap()
        .events(&me, start, end, Some(&berlin))
        .await
        .unwrap();
    assert!(
        events.iter().any(|e| e.kind == EventKind::Occurrence),
        "recurrences are expanded"
    );
    assert!(events.iter().all(|e| e.kind != EventKind::SeriesMaster));
    assert!(events.iter().any(|e| e.kind == EventKind::Exception));
    assert!(events.iter().all(|e| !e.is_cancelled));
    assert!(
        events
            .iter()
            .filter(|e| !e.is_all_day)
            .all(|e| e.start.time_zone == berlin),
        "{:?}",
        events.first()
    );

    let draft = EventDraft {
        subject: Some("exgate review".into()),
        start: Some(EventTime::new(datetime!(2026-12-02 10:00), TimeZone::UTC)),
        end: Some(EventTime::new(datetime!(2026-12-02 11:00), TimeZone::UTC)),
        attendees: Some(vec![(
            Recipient::address(seed::MEGAN),
            AttendeeKind::Required,
        )]),
        online_meeting: Some(true),
        ..EventDraft::default()
    };
    let created = mb
        .calendar()
        .unwrap()
        .create_event(&me, &draft)
        .await
        .unwrap();
    assert_eq!(created.attendees[0].who.address, seed::MEGAN);
    let change = EventDraft {
        location: Some("Room 4".into()),
        ..EventDraft::default()
    };
    assert_eq!(
        mb.calendar()
            .unwrap()
            .update_event(&me, &created.id, &change)
            .await
            .unwrap()
            .location
            .as_deref(),
        Some("Room 4")
    );

    let fb = mb
        .availability()
        .unwrap()
        .free_busy(
            &me,
            &[
                seed::MEGAN.to_owned(),
                "nobody@contoso.onmicrosoft.com".into(),
            ],
            datetime!(2026-12-02 9:00 UTC),
            datetime!(2026-12-02 12:00 UTC),
            30,
        )
        .await
        .unwrap();
    assert_eq!(fb[0].view.len(), 6);
    assert!(fb[1].error.is_some(), "{fb:?}");
    mb.calendar()
        .unwrap()
        .delete_event(&me, &created.id)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_recurring_series_round_trips_through_graph() {
    let w = World::new().await;
    let mb = w.delegated("contoso", seed::ADELE, None).await;
    let me = MailboxRef::Me;
    // Graph speaks Windows names (W. Europe Standard Time covers Berlin, Vienna, Rome, …):
    // the zone given is the zone read back.
    let vienna = TimeZone::parse("Europe/Vienna").unwrap();
    let recurrence = Recurrence::new(
        RecurrencePattern::Weekly {
            interval: 1,
            days: vec![DayOfWeek::Monday, DayOfWeek::Wednesday],
            first_day_of_week: DayOfWeek::Monday,
        },
        RecurrenceRange::Numbered {
            start_date: date!(2026 - 11 - 02),
            occurrences: 6,
        },
        Some(vienna),
    )
    .unwrap();
    let draft = EventDraft {
        subject: Some("exgate standup".into()),
        start: Some(EventTime::new(datetime!(2026-11-02 09:00), vienna)),
        end: Some(EventTime::new(datetime!(2026-11-02 09:15), vienna)),
        recurrence: Some(recurrence.clone()),
        ..EventDraft::default()
    };
    let master = mb
        .calendar()
        .unwrap()
        .create_event(&me, &draft)
        .await
        .unwrap();
    assert_eq!(master.recurrence.as_ref(), Some(&recurrence), "{master:?}");
    // Six occurrences (Mondays and Wednesdays from 2 November), each at 09:00 in Vienna.
    let occurrences: Vec<_> = mb
        .calendar()
        .unwrap()
        .events(
            &me,
            datetime!(2026-11-01 0:00 UTC),
            datetime!(2026-12-01 0:00 UTC),
            Some(&vienna),
        )
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.series_master_id.as_deref() == Some(master.id.as_str()))
        .collect();
    assert_eq!(occurrences.len(), 6, "{occurrences:?}");
    assert!(
        occurrences.iter().all(|e| e.start.time_zone == vienna
            && e.start.date_time.time() == time::macros::time!(09:00))
    );
    assert_eq!(
        occurrences[0].start.instant(),
        datetime!(2026-11-02 08:00 UTC)
    );
    mb.calendar()
        .unwrap()
        .delete_event(&me, &master.id)
        .await
        .unwrap();
}

#[tokio::test]
async fn contacts_crud() {
    let w = World::new().await;
    let mb = w.delegated("contoso", seed::ADELE, None).await;
    let me = MailboxRef::Me;
    let before = mb
        .contacts()
        .unwrap()
        .contacts(&me, None)
        .await
        .unwrap()
        .items
        .len();
    let draft = ContactDraft {
        display_name: Some("Alex Wilber".into()),
        emails: Some(vec![Recipient::address("alex@contoso.onmicrosoft.com")]),
        company: Some("Contoso".into()),
        ..ContactDraft::default()
    };
    let c = mb
        .contacts()
        .unwrap()
        .create_contact(&me, &draft)
        .await
        .unwrap();
    assert_eq!(
        mb.contacts()
            .unwrap()
            .contact(&me, &c.id)
            .await
            .unwrap()
            .emails[0]
            .address,
        "alex@contoso.onmicrosoft.com"
    );
    let change = ContactDraft {
        job_title: Some("Director".into()),
        ..ContactDraft::default()
    };
    assert_eq!(
        mb.contacts()
            .unwrap()
            .update_contact(&me, &c.id, &change)
            .await
            .unwrap()
            .job_title
            .as_deref(),
        Some("Director")
    );
    assert_eq!(
        mb.contacts()
            .unwrap()
            .contacts(&me, None)
            .await
            .unwrap()
            .items
            .len(),
        before + 1
    );
    mb.contacts()
        .unwrap()
        .delete_contact(&me, &c.id)
        .await
        .unwrap();
    assert_eq!(
        mb.contacts()
            .unwrap()
            .contact(&me, &c.id)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn shared_mailboxes_need_shared_permissions_and_rights() {
    // An app registration without the .Shared permissions.
    let mut no_shared = Seed::contoso();
    for app in no_shared
        .tenants
        .iter_mut()
        .flat_map(|t| t.apps.iter_mut())
        .filter(|a| a.client_id == seed::PUBLIC_APP)
    {
        for perms in app.delegated_permissions.values_mut() {
            perms.retain(|p| !p.ends_with(".Shared"));
        }
    }
    let w = World::with_seed(no_shared).await;
    let plain = w.delegated("plain", seed::ADELE, None).await;
    let sales = MailboxRef::User(seed::SALES.into());
    let err = plain
        .mail()
        .unwrap()
        .messages(&sales, &inbox(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Mailbox(MailboxError::MissingPermission {
                permission: "Mail.Read.Shared",
                ..
            })
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("add it under API permissions and grant admin consent"),
        "{err}"
    );

    let w = World::new().await;
    let shared_scopes = Some(vec![
        "Mail.ReadWrite.Shared".into(),
        "Mail.Send.Shared".into(),
        "Mail.ReadWrite".into(),
        "Mail.Send".into(),
    ]);
    let adele = w
        .delegated("adele-shared", seed::ADELE, shared_scopes.clone())
        .await;
    assert!(
        !adele
            .mail()
            .unwrap()
            .messages(&sales, &inbox(), None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    adele
        .mail()
        .unwrap()
        .send(&sales, &text_message(seed::MEGAN, "from sales"))
        .await
        .unwrap();
    assert_eq!(
        w.mock
            .delivered(seed::MEGAN)
            .iter()
            .filter(|(_, s)| s == "from sales")
            .count(),
        1
    );

    // Megan has the permission but no rights on Sales.
    let megan = w
        .delegated("megan-shared", seed::MEGAN, shared_scopes)
        .await;
    let err = megan
        .mail()
        .unwrap()
        .messages(&sales, &inbox(), None)
        .await
        .unwrap_err();
    let Error::Mailbox(MailboxError::Forbidden { hint, .. }) = &err else {
        panic!("{err}")
    };
    assert!(hint.contains("Add-MailboxPermission"), "{hint}");
    assert_eq!(err.kind(), ErrorKind::Forbidden);
}

#[tokio::test]
async fn app_only_names_the_mailbox() {
    let w = World::new().await;
    let mb = w.app_only("daemon").await;
    let err = mb
        .mail()
        .unwrap()
        .folders(&MailboxRef::Me)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no mailbox of its own"), "{err}");
    let adele = MailboxRef::User(seed::ADELE.into());
    assert!(
        !mb.mail()
            .unwrap()
            .messages(&adele, &inbox(), None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    mb.mail()
        .unwrap()
        .send(&adele, &text_message(seed::MEGAN, "app-only send"))
        .await
        .unwrap();
    let err = mb
        .mail()
        .unwrap()
        .folders(&MailboxRef::User("ghost@contoso.onmicrosoft.com".into()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

#[tokio::test]
async fn batches_fetch_mime_for_many_messages() {
    let w = World::new().await;
    let mb = w.app_only("daemon").await;
    let adele = MailboxRef::User(seed::ADELE.into());
    let q = MessageQuery {
        folder: Some(FolderRef::WellKnown(WellKnownFolder::Inbox)),
        page_size: 100,
        ..MessageQuery::default()
    };
    let ids: Vec<String> = mb
        .mail()
        .unwrap()
        .messages(&adele, &q, None)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|m| m.id)
        .collect();
    let mut wanted = ids.clone();
    wanted.push("missing".into());
    let before = w.mock.graph_requests();
    let mimes = mb.mail().unwrap().mime_many(&adele, &wanted).await.unwrap();
    assert_eq!(mimes.len(), wanted.len());
    for (id, m) in ids.iter().zip(&mimes) {
        let m = m.as_ref().unwrap_or_else(|e| panic!("{id}: {e}"));
        assert!(String::from_utf8_lossy(m).contains("Subject:"));
    }
    assert!(mimes.last().unwrap().is_err());
    let batches = w.mock.graph_requests() - before;
    assert!(
        batches <= wanted.len().div_ceil(20) + 1,
        "{batches} requests for {} messages",
        wanted.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_respected_and_retried() {
    use exgate_testkit::graph::ThrottlePolicy;
    let w = World::new().await;
    let mb = w.app_only("daemon").await;
    let adele = MailboxRef::User(seed::ADELE.into());
    w.mock.set_graph_throttling(Some(ThrottlePolicy {
        concurrent: 4,
        requests: 10_000,
        window: Duration::from_secs(600),
    }));
    w.mock.set_graph_latency(Duration::from_millis(50));
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let (mb, adele) = (mb.clone(), adele.clone());
            tokio::spawn(async move { mb.mail().unwrap().folders(&adele).await.map(|f| f.len()) })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    assert!(w.mock.max_concurrent_seen(seed::ADELE) <= 4);

    // A 429 with Retry-After is waited out and retried.
    w.mock.set_graph_latency(Duration::ZERO);
    w.mock.fail_graph_requests(
        exgate_testkit::Fault::TooManyRequests {
            retry_after_secs: 1,
        },
        1,
    );
    let started = std::time::Instant::now();
    mb.mail().unwrap().folders(&adele).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn a_failed_send_is_retried_without_a_duplicate() {
    let w = World::new().await;
    let mb = w.app_only("daemon").await;
    let adele = MailboxRef::User(seed::ADELE.into());
    w.mock
        .fail_graph_requests(exgate_testkit::Fault::ServerError { status: 503 }, 1);
    mb.mail()
        .unwrap()
        .send(&adele, &text_message(seed::MEGAN, "exactly once"))
        .await
        .unwrap();
    assert_eq!(
        w.mock
            .delivered(seed::MEGAN)
            .iter()
            .filter(|(_, s)| s == "exactly once")
            .count(),
        1
    );
}
