//! Change notifications through the gateway: watches, the journal, the event stream, webhooks
//! and Microsoft Graph's notifications, against the mock.

use std::time::Duration;

use axum::http::StatusCode;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use super::{ADELE, AppOnly, PUBLIC_URL};

/// How long a test waits for something that should take well under a second.
const PATIENCE: Duration = Duration::from_secs(30);

/// An app-only gateway whose Graph watches are polled every second.
async fn polled() -> AppOnly {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    AppOnly::start_with(
        mock,
        PUBLIC_URL,
        [
            ("EXGATE__NOTIFY__GRAPH_PUSH", "false".to_owned()),
            ("EXGATE__NOTIFY__POLL_SECS", "1".to_owned()),
        ],
    )
    .await
}

/// Sends a message from Adele's mailbox to Adele (the mock delivers it to her Inbox).
async fn mail_adele(t: &AppOnly, subject: &str) {
    let (status, sent) = t
        .user(
            "POST",
            "/messages",
            json!({ "to": [seed::ADELE], "subject": subject, "body": "Hello" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
}

/// Reads the connection's journal after `after`.
async fn journal(t: &AppOnly, query: &str) -> Value {
    let (status, page) =
        t.gw.call(
            "GET",
            &format!("/api/v1/connections/contoso/events{query}"),
            &t.key,
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page
}

/// Waits until the journal holds at least `n` events of the connection.
async fn wait_for_events(t: &AppOnly, n: usize) -> Vec<Value> {
    let mut committed = t.gw.state.notifier.committed();
    tokio::time::timeout(PATIENCE, async {
        loop {
            let page = journal(t, "?after=0").await;
            let events = page["events"].as_array().unwrap().clone();
            if events.len() >= n {
                return events;
            }
            committed.changed().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("fewer than {n} events within {PATIENCE:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_arriving_in_a_watched_inbox_is_one_event_polled_and_streamed() {
    let t = polled().await;
    let (status, watch) = t.user("POST", "/watches", Value::Null).await;
    assert_eq!(status, StatusCode::CREATED, "{watch}");
    assert_eq!(watch["folders"], json!(["inbox"]));
    assert_eq!(watch["calendar"], json!(false));
    // What was in the Inbox before is known, not reported.
    assert_eq!(journal(&t, "").await["events"], json!([]));

    let run = t.gw.state.notifier.run();
    mail_adele(&t, "Watched arrival").await;
    let events = wait_for_events(&t, 1).await;
    let id = t.message_id("Watched arrival").await;
    assert_eq!(events.len(), 1, "{events:#?}");
    let e = &events[0];
    assert_eq!(e["type"], "message.created");
    assert_eq!(e["folder"], "inbox");
    assert_eq!(e["item_id"], id.as_str());
    assert_eq!(e["connection"], "contoso");
    assert_eq!(e["principal"], "adele");
    assert_eq!(e["watch"], watch["id"]);
    assert!(e["id"].as_str().unwrap().starts_with("evt_"));

    // Syncing again reports nothing new: the event is in the journal once.
    let wid = watch["id"].as_str().unwrap().parse().unwrap();
    assert!(t.gw.state.notifier.sync(wid).await.unwrap().is_empty());
    assert_eq!(
        journal(&t, "?after=0").await["events"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Marking it read is an update of the same item.
    let (status, _) = t
        .user(
            "POST",
            &format!("/messages/{id}/read"),
            json!({ "read": true }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let events = wait_for_events(&t, 2).await;
    assert_eq!(events[1]["type"], "message.updated");
    assert_eq!(events[1]["item_id"], id.as_str());
    assert!(events[1]["seq"].as_i64() > events[0]["seq"].as_i64());

    // Filters: by type, and after a position.
    let created = journal(&t, "?after=0&types=message.created").await;
    assert_eq!(created["events"].as_array().unwrap().len(), 1);
    let later = journal(&t, &format!("?after={}", events[0]["seq"])).await;
    assert_eq!(later["events"].as_array().unwrap().len(), 1);
    assert_eq!(later["last"], events[1]["seq"]);
    let (status, err) =
        t.gw.call(
            "GET",
            "/api/v1/connections/contoso/events?types=message.exploded",
            &t.key,
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");

    // The stream replays from Last-Event-ID, then goes on.
    let resp =
        t.gw.send_with(
            "GET",
            "/api/v1/connections/contoso/events/stream",
            &[("authorization", t.key.as_str()), ("last-event-id", "0")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut body = resp.into_body();
    let mut text = String::new();
    tokio::time::timeout(PATIENCE, async {
        while text.matches("\n\n").count() < 2 {
            let frame = body.frame().await.unwrap().unwrap();
            if let Some(data) = frame.data_ref() {
                text.push_str(std::str::from_utf8(data).unwrap());
            }
        }
    })
    .await
    .expect("two events streamed");
    assert!(text.contains("event: message.created\n"), "{text}");
    assert!(
        text.contains(&format!("id: {}\n", events[0]["seq"])),
        "{text}"
    );
    assert!(text.contains("event: message.updated\n"), "{text}");
    run.abort();
}

#[tokio::test]
async fn watches_and_events_belong_to_their_connection() {
    let t = polled().await;
    let (status, watch) = t.user("POST", "/watches", Value::Null).await;
    assert_eq!(status, StatusCode::CREATED, "{watch}");
    let id = watch["id"].as_str().unwrap();

    // A key for another connection learns nothing and changes nothing.
    t.gw.connection(json!({
        "name": "other", "tenant": seed::TENANT_ID, "auth": "oauth2-app-only",
        "client_id": seed::DAEMON_APP, "client_secret": seed::DAEMON_APP_SECRET,
    }))
    .await;
    let other = t.gw.app_key("other-app", &["other"]).await;
    for (method, path) in [
        ("GET", "/api/v1/connections/contoso/watches".to_owned()),
        ("GET", "/api/v1/connections/contoso/events".to_owned()),
        (
            "DELETE",
            format!("/api/v1/connections/contoso/watches/{id}"),
        ),
        ("POST", format!("{ADELE}/watches")),
    ] {
        let (status, _) = t.gw.call(method, &path, &other, Value::Null).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    // Named through the other connection, the watch does not exist.
    let (status, _) =
        t.gw.call(
            "DELETE",
            &format!("/api/v1/connections/other/watches/{id}"),
            &other,
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, list) =
        t.gw.call(
            "GET",
            "/api/v1/connections/contoso/watches",
            &t.key,
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);

    // Bad input changes nothing.
    let (status, _) = t.user("POST", "/watches", json!({ "folders": [""] })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = t
        .user("POST", "/watches", json!({ "folder": "inbox" }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) =
        t.gw.call(
            "POST",
            "/api/v1/connections/contoso/users/nobody/watches",
            &t.key,
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) =
        t.gw.call(
            "DELETE",
            &format!("/api/v1/connections/contoso/watches/{id}"),
            &t.key,
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) =
        t.gw.call(
            "GET",
            "/api/v1/connections/contoso/watches",
            &t.key,
            Value::Null,
        )
        .await;
    assert_eq!(list, json!([]));

    // Webhooks: only https (or http to loopback), and each connection sees its own.
    for url in [
        "http://hooks.example.com/x",
        "ftp://127.0.0.1/x",
        "https://u:p@example.com/",
    ] {
        let (status, err) =
            t.gw.call(
                "POST",
                "/api/v1/connections/contoso/webhooks",
                &t.key,
                json!({ "url": url }),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {err}");
        assert!(!err.to_string().contains("u:p"), "{err}");
    }
    let (status, hook) =
        t.gw.call(
            "POST",
            "/api/v1/connections/contoso/webhooks",
            &t.key,
            json!({ "url": "https://hooks.example.com/exgate", "types": ["message.created"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let hook_id = hook["id"].as_str().unwrap();
    for (method, path) in [
        (
            "DELETE",
            format!("/api/v1/connections/other/webhooks/{hook_id}"),
        ),
        (
            "GET",
            format!("/api/v1/connections/other/webhooks/{hook_id}/dead-letters"),
        ),
    ] {
        let (status, _) = t.gw.call(method, &path, &other, Value::Null).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (_, hooks) =
        t.gw.call(
            "GET",
            "/api/v1/connections/other/webhooks",
            &other,
            Value::Null,
        )
        .await;
    assert_eq!(hooks, json!([]));
    let (status, _) =
        t.gw.call(
            "DELETE",
            &format!("/api/v1/connections/contoso/webhooks/{hook_id}"),
            &t.key,
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

/// A webhook receiver on 127.0.0.1: each request's headers and body arrive on a channel.
struct Receiver {
    url: String,
    requests: tokio::sync::mpsc::UnboundedReceiver<(axum::http::HeaderMap, axum::body::Bytes)>,
    _task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Self {
        let (tx, requests) = tokio::sync::mpsc::unbounded_channel();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let _ = tx.send((headers, body));
                    async { StatusCode::OK }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            requests,
            _task: task,
        }
    }

    /// The next delivered event, its signature checked with `secret`.
    async fn next(&mut self, secret: &str) -> Value {
        let (headers, body) = tokio::time::timeout(PATIENCE, self.requests.recv())
            .await
            .expect("a webhook request within the patience")
            .unwrap();
        exgate_core::notify::webhook::verify(
            &headers,
            &body,
            &exgate_core::secret::Secret::new(secret),
            time::OffsetDateTime::now_utc(),
            exgate_core::notify::webhook::TOLERANCE,
        )
        .expect("a valid signature");
        serde_json::from_slice(&body).unwrap()
    }
}

/// A gateway serving on a real port (Graph posts its notifications there), with Graph push
/// on and the safety poll an hour away: events come from Graph's notifications.
struct Pushed {
    t: AppOnly,
    base: String,
    _tasks: exgate_server::NotificationTasks,
    _server: tokio::task::JoinHandle<()>,
}

impl Pushed {
    async fn start() -> Self {
        let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let t = AppOnly::start_with(
            mock,
            &base,
            [("EXGATE__NOTIFY__SAFETY_POLL_SECS", "3600".to_owned())],
        )
        .await;
        let state = t.gw.state.clone();
        let server = tokio::spawn(async move {
            exgate_server::serve(listener, state, std::future::pending())
                .await
                .unwrap();
        });
        let tasks = exgate_server::spawn_notifications(&t.gw.state);
        Self {
            t,
            base,
            _tasks: tasks,
            _server: server,
        }
    }

    /// Registers a webhook to `receiver`; answers its secret.
    async fn webhook(&self, receiver: &Receiver) -> String {
        let (status, hook) = self
            .t
            .gw
            .call(
                "POST",
                "/api/v1/connections/contoso/webhooks",
                &self.t.key,
                json!({ "url": receiver.url }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{hook}");
        assert!(hook["secret"].as_str().unwrap().starts_with("whsec_"));
        hook["secret"].as_str().unwrap().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_pushes_each_new_message_to_the_webhook_once_signed_and_in_order() {
    let p = Pushed::start().await;
    let mut receiver = Receiver::start().await;
    let secret = p.webhook(&receiver).await;
    let (status, watch) = p.t.user("POST", "/watches", Value::Null).await;
    assert_eq!(status, StatusCode::CREATED, "{watch}");
    // The gateway subscribed at Graph (after the validation handshake with its own URL).
    let graph = p.t.mock.graph_state();
    assert_eq!(graph.subscription_ids().len(), 1);

    mail_adele(&p.t, "Pushed one").await;
    mail_adele(&p.t, "Pushed two").await;
    let first = receiver.next(&secret).await;
    let second = receiver.next(&secret).await;
    assert_eq!(first["type"], "message.created");
    assert_eq!(second["type"], "message.created");
    assert_eq!(
        first["item_id"],
        p.t.message_id("Pushed one").await.as_str()
    );
    assert_eq!(
        second["item_id"],
        p.t.message_id("Pushed two").await.as_str()
    );
    assert!(first["seq"].as_i64() < second["seq"].as_i64());
    assert_ne!(first["id"], second["id"]);
    // Nothing else was sent: the journal holds these two, and the webhook's cursor is past them.
    assert_eq!(
        journal(&p.t, "?after=0").await["events"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(receiver.requests.try_recv().is_err());

    // The secret is never listed again.
    let (_, hooks) =
        p.t.gw
            .call(
                "GET",
                "/api/v1/connections/contoso/webhooks",
                &p.t.key,
                Value::Null,
            )
            .await;
    assert!(hooks[0].get("secret").is_none(), "{hooks}");
    assert!(!hooks.to_string().contains(&secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_graph_notifications_are_refused_and_validation_tokens_echoed() {
    let p = Pushed::start().await;
    let (_, watch) = p.t.user("POST", "/watches", Value::Null).await;
    let id = watch["id"].as_str().unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/notifications/graph/{id}", p.base);

    let echoed = http
        .post(format!(
            "{url}?validationToken=Validation%3A%20Testing%20client"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.status(), reqwest::StatusCode::OK);
    assert!(
        echoed.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(echoed.text().await.unwrap(), "Validation: Testing client");

    let subscription = p.t.mock.graph_state().subscription_ids()[0].clone();
    let forged = json!({ "value": [{
        "subscriptionId": subscription, "clientState": "a guess", "changeType": "created",
        "resource": "users/x/messages/y", "tenantId": seed::TENANT_ID,
        "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z",
    }]});
    let resp = http.post(&url).json(&forged).send().await.unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::FORBIDDEN);
    let resp = http.post(&url).body("not json").send().await.unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::BAD_REQUEST);
    let resp = http
        .post(format!("{}/notifications/graph/not-a-watch", p.base))
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::NOT_FOUND);
    assert_eq!(journal(&p.t, "?after=0").await["events"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_notifications_and_an_expired_subscription_are_caught_up_once() {
    let p = Pushed::start().await;
    let mut receiver = Receiver::start().await;
    let secret = p.webhook(&receiver).await;
    let (status, _) = p.t.user("POST", "/watches", Value::Null).await;
    assert_eq!(status, StatusCode::CREATED);
    let graph = p.t.mock.graph_state();
    let first_subscription = graph.subscription_ids()[0].clone();
    // A first message, pushed as usual: the watch's task has run its first sync and waits.
    mail_adele(&p.t, "Warm-up").await;
    let warm_up = receiver.next(&secret).await;
    graph.notifications_settled().await;

    // Graph's notification is lost: nothing arrives…
    graph.drop_notifications(true);
    mail_adele(&p.t, "Lost notification").await;
    graph.notifications_settled().await;
    let only = journal(&p.t, "?after=0").await;
    assert_eq!(only["events"].as_array().unwrap().len(), 1, "{only}");
    assert_eq!(only["events"][0]["id"], warm_up["id"]);
    graph.drop_notifications(false);
    // …until Graph says notifications were missed: the catch-up reports it once.
    assert!(graph.send_lifecycle(
        &first_subscription,
        exgate_testkit::graph::LifecycleEvent::Missed
    ));
    let e = receiver.next(&secret).await;
    assert_eq!(
        e["item_id"],
        p.t.message_id("Lost notification").await.as_str()
    );

    // The subscription expires while a message arrives: the gateway subscribes again and the
    // catch-up reports the message once.
    assert!(graph.expire_subscription(&first_subscription));
    mail_adele(&p.t, "While unsubscribed").await;
    let e = receiver.next(&secret).await;
    assert_eq!(
        e["item_id"],
        p.t.message_id("While unsubscribed").await.as_str()
    );
    // New mail is pushed through the new subscription.
    mail_adele(&p.t, "After resubscribing").await;
    let e = receiver.next(&secret).await;
    assert_eq!(
        e["item_id"],
        p.t.message_id("After resubscribing").await.as_str()
    );
    let now = graph.subscription_ids();
    assert_eq!(now.len(), 1);
    assert_ne!(now[0], first_subscription);
    assert_eq!(
        journal(&p.t, "?after=0").await["events"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

/// Delivers a message from Megan into `mailbox`'s Inbox (as a mail server would).
fn deliver(mock: &MockMicrosoft, mailbox: &str, subject: &str) {
    use exgate_testkit::graph::{Address, MessageContent};
    let message = MessageContent::new(
        "inbox",
        subject,
        Address::new("Megan Bowen", seed::MEGAN),
        time::OffsetDateTime::now_utc(),
    );
    mock.add_messages(mailbox, &[message]).unwrap();
}

/// A gateway in `home` over `env`, serving on a real port, with its notifications running and
/// every timer an hour away: events come from the backend's own notifications only.
async fn listening(
    home: &super::Home,
    env: Vec<(&'static str, String)>,
) -> (super::Gateway, exgate_server::NotificationTasks) {
    let mut env = env;
    env.push(("EXGATE__NOTIFY__SAFETY_POLL_SECS", "3600".to_owned()));
    env.push(("EXGATE__NOTIFY__POLL_SECS", "3600".to_owned()));
    let gw = super::Gateway::new(home.state_with(PUBLIC_URL, env).await).await;
    let tasks = exgate_server::spawn_notifications(&gw.state);
    (gw, tasks)
}

/// Registers a webhook to `receiver` on `connection` and watches `principal`'s Inbox.
async fn hook_and_watch(
    gw: &super::Gateway,
    key: &str,
    connection: &str,
    principal: &str,
    receiver: &Receiver,
) -> String {
    let (status, hook) = gw
        .call(
            "POST",
            &format!("/api/v1/connections/{connection}/webhooks"),
            key,
            json!({ "url": receiver.url, "types": ["message.created"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let (status, watch) = gw
        .call(
            "POST",
            &format!("/api/v1/connections/{connection}/users/{principal}/watches"),
            key,
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{watch}");
    hook["secret"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_server_mailbox_streams_its_new_mail_to_the_webhook() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let home = super::Home::new();
    let (gw, _tasks) = listening(
        &home,
        vec![("EXGATE__ENDPOINTS__AUTHORITY_HOST", mock.base_url())],
    )
    .await;
    gw.connection(json!({
        "name": "onprem", "ews_url": mock.ews_url(), "auth": "basic",
        "username": seed::MEGAN, "password": seed::MEGAN_PASSWORD,
    }))
    .await;
    let (status, body) = gw
        .admin(
            "POST",
            "/api/v1/connections/onprem/static-users",
            json!({ "principal": "adele", "mailbox": seed::ADELE, "access": "impersonation" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let key = gw.app_key("portal", &["onprem"]).await;
    let mut receiver = Receiver::start().await;
    let secret = hook_and_watch(&gw, &key, "onprem", "adele", &receiver).await;

    deliver(&mock, seed::ADELE, "Over EWS streaming");
    let e = receiver.next(&secret).await;
    assert_eq!(e["type"], "message.created");
    assert_eq!(e["connection"], "onprem");
    // The ID is one the mailbox routes take.
    let id = e["item_id"].as_str().unwrap();
    let (status, message) = gw
        .call(
            "GET",
            &format!("/api/v1/connections/onprem/users/adele/messages/{id}"),
            &key,
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{message}");
    assert_eq!(message["subject"], "Over EWS streaming");
    deliver(&mock, seed::ADELE, "Second over EWS");
    let e = receiver.next(&secret).await;
    assert_ne!(e["item_id"].as_str().unwrap(), id);
    assert!(receiver.requests.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imap_mailbox_tells_its_new_mail_by_idle_to_the_webhook() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let home = super::Home::new();
    let ca = home.dir.path().join("mail-ca.pem");
    std::fs::write(&ca, mock.mail_ca_pem()).unwrap();
    let (gw, _tasks) = listening(
        &home,
        vec![
            ("EXGATE__ENDPOINTS__AUTHORITY_HOST", mock.base_url()),
            ("EXGATE__ENDPOINTS__IMAP_URL", mock.imap_url()),
            ("EXGATE__ENDPOINTS__SMTP_URL", mock.smtp_url()),
            ("EXGATE__TLS__CA_FILE", ca.display().to_string()),
        ],
    )
    .await;
    gw.connection(json!({
        "name": "helpdesk", "tenant": seed::TENANT_ID, "auth": "oauth2-app-only",
        "client_id": seed::DAEMON_APP, "client_secret": seed::DAEMON_APP_SECRET,
        "backend": "imap", "send": "smtp",
    }))
    .await;
    let (status, body) = gw
        .admin(
            "POST",
            "/api/v1/connections/helpdesk/static-users",
            json!({ "principal": "tickets", "mailbox": seed::ADELE }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let key = gw.app_key("portal", &["helpdesk"]).await;
    let mut receiver = Receiver::start().await;
    let secret = hook_and_watch(&gw, &key, "helpdesk", "tickets", &receiver).await;

    deliver(&mock, seed::ADELE, "Over IMAP IDLE");
    let e = receiver.next(&secret).await;
    assert_eq!(e["type"], "message.created");
    assert!(e["item_id"].as_str().unwrap().starts_with("im1."), "{e}");
    deliver(&mock, seed::ADELE, "Second over IDLE");
    let second = receiver.next(&secret).await;
    assert_ne!(second["item_id"], e["item_id"]);
    assert!(receiver.requests.try_recv().is_err());
}
