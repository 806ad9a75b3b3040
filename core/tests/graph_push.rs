//! Graph change-notification subscriptions through core's `Push` against the testkit's mock:
//! subscribe (the mock validates a real receiver on 127.0.0.1, which answers with core's
//! validation helper), a delivered message reaches the receiver as a typed notification with
//! the client state, renew, reauthorize, unsubscribe, and an expired subscription is NotFound.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use exgate_core::Error;
use exgate_core::clock::SystemClock;
use exgate_core::config::NetworkSettings;
use exgate_core::connections::Connections;
use exgate_core::governor::GovernorPolicy;
use exgate_core::graph::notifications::{
    self, ChangeType, LifecycleEvent, Notifications, client_state_matches,
};
use exgate_core::mailbox::{Backend, FolderRef, MailboxError, MailboxRef, WellKnownFolder};
use exgate_core::mailboxes::Mailboxes;
use exgate_core::model::ConnectionSpec;
use exgate_core::notify::{Push, PushTarget, Watched};
use exgate_core::pipeline::Limits;
use exgate_core::secret::{Secret, Vault};
use exgate_core::store::SqliteStore;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::Seed;
use exgate_testkit::entra::seed::{self, ADELE};
use exgate_testkit::graph::{Address, LifecycleEvent as MockLifecycle, MessageContent};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(15);
const CLIENT_STATE: &str = "a-client-state-only-graph-and-the-gateway-know";

#[derive(Clone)]
struct Hook {
    tx: mpsc::UnboundedSender<Notifications>,
    validations: Arc<AtomicUsize>,
}

async fn hook(State(h): State<Hook>, RawQuery(q): RawQuery, body: axum::body::Bytes) -> Response {
    if let Some(token) = notifications::validation_token(q.as_deref().unwrap_or_default()) {
        h.validations.fetch_add(1, Ordering::SeqCst);
        return match notifications::validation_answer(&token) {
            Ok(echo) => ([("content-type", "text/plain")], echo.to_owned()).into_response(),
            Err(_) => StatusCode::BAD_REQUEST.into_response(),
        };
    }
    match notifications::parse(&body) {
        Ok(parsed) => {
            let _ = h.tx.send(parsed);
            StatusCode::ACCEPTED.into_response()
        }
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

struct Receiver {
    base: String,
    rx: mpsc::UnboundedReceiver<Notifications>,
    validations: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let validations = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .route("/graph/notify", post(hook))
            .route("/graph/lifecycle", post(hook))
            .with_state(Hook {
                tx,
                validations: validations.clone(),
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base: format!("http://{addr}"),
            rx,
            validations,
        }
    }

    fn target(&self, expires: time::OffsetDateTime) -> PushTarget {
        PushTarget {
            notification_url: format!("{}/graph/notify", self.base).parse().unwrap(),
            lifecycle_url: format!("{}/graph/lifecycle", self.base).parse().unwrap(),
            client_state: Secret::new(CLIENT_STATE),
            expires,
        }
    }

    async fn next(&mut self) -> Notifications {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("a notification in time")
            .expect("the receiver runs")
    }
}

struct World {
    _dir: tempfile::TempDir,
    mock: MockMicrosoft,
    backend: Backend,
}

impl World {
    async fn new() -> Self {
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
            ..NetworkSettings::default()
        };
        let signin = Arc::new(
            exgate_core::auth::SignIn::new(store, connections.clone(), network.clone(), clock)
                .unwrap(),
        );
        let mailboxes = Mailboxes::new(
            signin,
            connections.clone(),
            vault,
            network,
            GovernorPolicy::default(),
            Limits::default(),
        )
        .unwrap();
        let spec = ConnectionSpec {
            tenant: Some(seed::TENANT_ID.into()),
            auth: Some("oauth2-app-only".into()),
            client_id: Some(seed::DAEMON_APP.into()),
            client_secret: Some(Secret::new(seed::DAEMON_APP_SECRET)),
            ..ConnectionSpec::default()
        };
        connections.add("daemon", &spec).await.unwrap();
        let backend = mailboxes.open(Some("daemon"), None).await.unwrap();
        Self {
            _dir: dir,
            mock,
            backend,
        }
    }

    fn push(&self) -> Arc<dyn Push> {
        self.backend.push.clone().expect("the Graph backend pushes")
    }
}

fn inbox() -> Watched {
    Watched::Mail {
        folder: FolderRef::WellKnown(WellKnownFolder::Inbox),
    }
}

fn message(subject: &str) -> MessageContent {
    MessageContent::new(
        "inbox",
        subject,
        Address::new("Lee", "lee@contoso.example"),
        time::OffsetDateTime::now_utc(),
    )
}

#[tokio::test]
async fn a_subscription_is_validated_and_a_delivered_message_is_notified() {
    let w = World::new().await;
    let mut r = Receiver::start().await;
    let push = w.push();
    let mailbox = MailboxRef::User(ADELE.into());
    let asked = w.mock.clock().now() + time::Duration::hours(2);
    let sub = push
        .subscribe(&mailbox, &inbox(), &r.target(asked))
        .await
        .unwrap();
    assert_eq!(r.validations.load(Ordering::SeqCst), 2, "both URLs");
    assert_eq!(sub.watched, inbox());
    assert!((sub.expires - asked).abs() < time::Duration::seconds(1));

    let ids = w.mock.add_messages(ADELE, &[message("Hello")]).unwrap();
    let got = r.next().await;
    assert!(got.lifecycle.is_empty());
    assert_eq!(got.changes.len(), 1);
    let n = &got.changes[0];
    assert_eq!(n.subscription_id, sub.id);
    assert_eq!(n.change_type, ChangeType::Created);
    assert!(client_state_matches(
        &Secret::new(CLIENT_STATE),
        n.client_state.as_deref()
    ));
    assert!(!client_state_matches(
        &Secret::new("forged"),
        n.client_state.as_deref()
    ));
    assert_eq!(
        n.resource_data.as_ref().and_then(|d| d.id.as_deref()),
        Some(ids[0].as_str())
    );
    assert_eq!(n.tenant_id.as_deref(), Some(seed::TENANT_ID));

    // The calendar, by `me`-less app-only resource.
    let cal = push
        .subscribe(&mailbox, &Watched::Calendar, &r.target(asked))
        .await
        .unwrap();
    assert_eq!(cal.watched, Watched::Calendar);
    assert_ne!(cal.id, sub.id);
}

#[tokio::test]
async fn renew_reauthorize_and_unsubscribe() {
    let w = World::new().await;
    let mut r = Receiver::start().await;
    let push = w.push();
    let mailbox = MailboxRef::User(ADELE.into());
    let now = w.mock.clock().now();
    let sub = push
        .subscribe(
            &mailbox,
            &inbox(),
            &r.target(now + time::Duration::hours(1)),
        )
        .await
        .unwrap();
    let later = now + time::Duration::minutes(4000);
    let granted = push.renew(&sub.id, later).await.unwrap();
    assert!((granted - later).abs() < time::Duration::seconds(1));
    // Beyond Graph's 4230 minutes: refused, with Graph's reason.
    let err = push
        .renew(&sub.id, now + time::Duration::minutes(5000))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("4230"), "{err}");

    assert!(
        w.mock
            .graph_state()
            .send_lifecycle(&sub.id, MockLifecycle::ReauthorizationRequired)
    );
    let got = r.next().await;
    assert_eq!(got.lifecycle.len(), 1);
    assert_eq!(
        got.lifecycle[0].event,
        LifecycleEvent::ReauthorizationRequired
    );
    assert_eq!(got.lifecycle[0].subscription_id, sub.id);
    push.reauthorize(&sub.id).await.unwrap();

    push.unsubscribe(&sub.id).await.unwrap();
    assert!(w.mock.graph_state().subscription_ids().is_empty());
    // Gone already: not an error.
    push.unsubscribe(&sub.id).await.unwrap();
    assert!(matches!(
        push.reauthorize(&sub.id).await,
        Err(Error::Mailbox(MailboxError::NotFound {
            what: "subscription",
            ..
        }))
    ));
}

#[tokio::test]
async fn renewing_an_expired_subscription_is_not_found() {
    let w = World::new().await;
    let r = Receiver::start().await;
    let push = w.push();
    let mailbox = MailboxRef::User(ADELE.into());
    let now = w.mock.clock().now();
    let sub = push
        .subscribe(
            &mailbox,
            &inbox(),
            &r.target(now + time::Duration::hours(1)),
        )
        .await
        .unwrap();
    w.mock.advance_clock(Duration::from_secs(2 * 3600));
    let err = push
        .renew(&sub.id, w.mock.clock().now() + time::Duration::hours(1))
        .await
        .unwrap_err();
    match err {
        Error::Mailbox(MailboxError::NotFound { what, id, .. }) => {
            assert_eq!(what, "subscription");
            assert_eq!(id, sub.id);
        }
        other => panic!("not NotFound: {other:?}"),
    }
}

#[tokio::test]
async fn a_receiver_that_does_not_echo_fails_the_subscription() {
    let w = World::new().await;
    let push = w.push();
    let mailbox = MailboxRef::User(ADELE.into());
    // Nobody listens at this URL (the discard port): Graph's validation fails.
    let target = PushTarget {
        notification_url: "http://127.0.0.1:9/notify".parse().unwrap(),
        lifecycle_url: "http://127.0.0.1:9/lifecycle".parse().unwrap(),
        client_state: Secret::new(CLIENT_STATE),
        expires: w.mock.clock().now() + time::Duration::hours(1),
    };
    let err = push
        .subscribe(&mailbox, &inbox(), &target)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Mailbox(MailboxError::Rejected { status: 400, .. })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("validation"), "{err}");
    // An app-only connection has no `me`.
    assert!(matches!(
        push.subscribe(&MailboxRef::Me, &inbox(), &target).await,
        Err(Error::Mailbox(MailboxError::Invalid(_)))
    ));
    // A clientState Graph would refuse is refused before asking.
    let long = PushTarget {
        client_state: Secret::new("x".repeat(129)),
        ..target
    };
    assert!(matches!(
        push.subscribe(&mailbox, &inbox(), &long).await,
        Err(Error::Mailbox(MailboxError::Invalid(_)))
    ));
}
