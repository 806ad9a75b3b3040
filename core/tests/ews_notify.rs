//! Listening to an Exchange Server mailbox over EWS against the mock: streaming notifications
//! (a delivered message is heard, a closed connection is reopened, a lost subscription is a
//! gap), and pull subscriptions where the server has no streaming.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

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
use exgate_core::model::ConnectionSpec;
use exgate_core::notify::{Listener, Signal, Watched};
use exgate_core::pipeline::Limits;
use exgate_core::secret::{Secret, Vault};
use exgate_core::store::SqliteStore;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};
use exgate_testkit::ews::EwsSwitchChange;
use time::macros::datetime;

/// An Exchange Server connection to the mock's EWS as Adele (Basic).
async fn onprem(mock: &MockMicrosoft, dir: &Path) -> Backend {
    let vault = Arc::new(Vault::open_or_create(&dir.join("key")).unwrap());
    let store = Arc::new(
        SqliteStore::open(&dir.join("db"), vault.clone())
            .await
            .unwrap(),
    );
    let clock = Arc::new(SystemClock);
    let connections = Arc::new(Connections::new(store.clone(), vec![], clock.clone()));
    let network = NetworkSettings {
        authority_host: Some(mock.base_url().parse().unwrap()),
        ..NetworkSettings::default()
    };
    let signin = Arc::new(SignIn::new(store, connections.clone(), network.clone(), clock).unwrap());
    let spec = ConnectionSpec {
        ews_url: Some(mock.ews_url()),
        auth: Some("basic".into()),
        username: Some(seed::ADELE.into()),
        password: Some(Secret::new(seed::ADELE_PASSWORD)),
        ..ConnectionSpec::default()
    };
    connections.add("onprem", &spec).await.unwrap();
    let mailboxes = Mailboxes::new(
        signin,
        connections,
        vault,
        network,
        GovernorPolicy::default(),
        Limits::default(),
    )
    .unwrap();
    let backend = mailboxes.open(Some("onprem"), None).await.unwrap();
    assert_eq!(backend.protocol, "EWS");
    backend
}

fn inbox() -> Watched {
    Watched::Mail {
        folder: FolderRef::WellKnown(WellKnownFolder::Inbox),
    }
}

/// Adele sends herself a message (it lands in her Inbox and her Sent Items).
async fn deliver(backend: &Backend, subject: &str) {
    let message = NewMessage {
        to: vec![Recipient::address(seed::ADELE)],
        cc: vec![],
        bcc: vec![],
        subject: subject.into(),
        body: Body::text("hello"),
        attachments: vec![],
        importance: Default::default(),
        from: None,
        save_to_sent: true,
    };
    backend
        .mail()
        .unwrap()
        .send(&MailboxRef::Me, &message)
        .await
        .unwrap();
}

/// The next signal, which must come.
async fn next(listener: &mut Box<dyn Listener>) -> Signal {
    tokio::time::timeout(Duration::from_secs(60), listener.next())
        .await
        .expect("no signal within a minute")
        .unwrap()
}

#[tokio::test]
async fn streaming_hears_mail_reopens_closed_connections_and_reports_lost_subscriptions() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let backend = onprem(&mock, dir.path()).await;
    let listen = backend.listen.clone().expect("EWS listens");
    let mut listener = listen
        .listen(&MailboxRef::Me, &[inbox(), Watched::Calendar])
        .await
        .unwrap();
    assert_eq!(mock.ews_state().subscriptions(), 2, "one per watched thing");

    deliver(&backend, "First").await;
    assert_eq!(next(&mut listener).await, Signal::Changed(Some(inbox())));

    // The server ends the connection (its ConnectionTimeout): the listener opens another on
    // the same subscriptions, and what happened meanwhile is heard, without a gap.
    mock.ews_state().close_streams();
    deliver(&backend, "While reconnecting").await;
    assert_eq!(next(&mut listener).await, Signal::Changed(Some(inbox())));
    assert_eq!(
        mock.ews_state().subscriptions(),
        2,
        "the same subscriptions"
    );

    // The server forgets the subscriptions: subscribe again, and say a gap.
    mock.ews_state().expire_subscriptions();
    assert_eq!(next(&mut listener).await, Signal::Gap);
    assert_eq!(mock.ews_state().subscriptions(), 2, "subscribed again");
    deliver(&backend, "After the gap").await;
    assert_eq!(next(&mut listener).await, Signal::Changed(Some(inbox())));

    // The calendar is heard on its own subscription.
    let utc = TimeZone::parse("UTC").unwrap();
    let draft = EventDraft {
        subject: Some("Standup".into()),
        start: Some(EventTime::new(datetime!(2026-12-03 09:00), utc)),
        end: Some(EventTime::new(datetime!(2026-12-03 09:15), utc)),
        ..EventDraft::default()
    };
    backend
        .calendar()
        .unwrap()
        .create_event(&MailboxRef::Me, &draft)
        .await
        .unwrap();
    assert_eq!(
        next(&mut listener).await,
        Signal::Changed(Some(Watched::Calendar))
    );
}

#[tokio::test]
async fn a_server_without_streaming_is_pulled_every_interval() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    mock.change_ews_switches(&EwsSwitchChange {
        streaming: Some(false),
        ..EwsSwitchChange::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let backend = onprem(&mock, dir.path()).await;
    let mut listener = backend
        .listen
        .clone()
        .unwrap()
        .listen(&MailboxRef::Me, &[inbox()])
        .await
        .unwrap();
    assert_eq!(mock.ews_state().subscriptions(), 1, "a pull subscription");
    // Time stands still but for the listener's waits (the connection's store, a SQLite pool
    // on its own threads, is opened above, on the real clock).
    tokio::time::pause();

    deliver(&backend, "Pulled").await;
    let started = tokio::time::Instant::now();
    assert_eq!(next(&mut listener).await, Signal::Changed(Some(inbox())));
    assert!(
        started.elapsed() <= exgate_core::ews::notify::PULL_INTERVAL,
        "heard at the next poll"
    );

    // The pull subscription is forgotten: subscribe again, a gap.
    mock.ews_state().expire_subscriptions();
    assert_eq!(next(&mut listener).await, Signal::Gap);
    deliver(&backend, "Pulled again").await;
    assert_eq!(next(&mut listener).await, Signal::Changed(Some(inbox())));
}
