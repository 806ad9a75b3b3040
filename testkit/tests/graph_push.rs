//! The mock Graph's change-notification subscriptions, with a real receiver (axum on
//! 127.0.0.1:0) as the notification and lifecycle URLs: the validation handshake, notifications
//! for messages and events, lifecycle notifications, the switches, expiry on the mock's clock.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::Seed;
use exgate_testkit::entra::seed::*;
use exgate_testkit::graph::{Address, GraphSwitchChange, LifecycleEvent, MessageContent};
use reqwest::Method;
use serde_json::{Value, json};
use support::Graph;
use tokio::sync::mpsc;

/// How long a test waits for a notification before it fails.
const WAIT: Duration = Duration::from_secs(15);

#[derive(Clone)]
struct Hooks {
    changes: mpsc::UnboundedSender<Value>,
    lifecycle: mpsc::UnboundedSender<Value>,
    /// Answer validation requests with the token (else with something else).
    echo: Arc<AtomicBool>,
    validations: Arc<AtomicUsize>,
}

/// A notification receiver on 127.0.0.1:0.
struct Receiver {
    base: String,
    changes: mpsc::UnboundedReceiver<Value>,
    lifecycle: mpsc::UnboundedReceiver<Value>,
    echo: Arc<AtomicBool>,
    validations: Arc<AtomicUsize>,
}

#[derive(serde::Deserialize)]
struct Validation {
    #[serde(rename = "validationToken")]
    validation_token: Option<String>,
}

async fn receive(
    hooks: &Hooks,
    to: &mpsc::UnboundedSender<Value>,
    query: Validation,
    body: &[u8],
) -> Response {
    if let Some(token) = query.validation_token {
        hooks.validations.fetch_add(1, Ordering::SeqCst);
        let answer = if hooks.echo.load(Ordering::SeqCst) {
            token
        } else {
            "not the token".to_string()
        };
        return ([("content-type", "text/plain")], answer).into_response();
    }
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let _ = to.send(value);
    StatusCode::ACCEPTED.into_response()
}

impl Receiver {
    async fn start() -> Receiver {
        let (changes_tx, changes) = mpsc::unbounded_channel();
        let (lifecycle_tx, lifecycle) = mpsc::unbounded_channel();
        let hooks = Hooks {
            changes: changes_tx,
            lifecycle: lifecycle_tx,
            echo: Arc::new(AtomicBool::new(true)),
            validations: Arc::new(AtomicUsize::new(0)),
        };
        async fn notify(
            State(h): State<Hooks>,
            Query(q): Query<Validation>,
            body: axum::body::Bytes,
        ) -> Response {
            let to = h.changes.clone();
            receive(&h, &to, q, &body).await
        }
        async fn lifecycle_hook(
            State(h): State<Hooks>,
            Query(q): Query<Validation>,
            body: axum::body::Bytes,
        ) -> Response {
            let to = h.lifecycle.clone();
            receive(&h, &to, q, &body).await
        }
        let app = Router::new()
            .route("/notify", post(notify))
            .route("/lifecycle", post(lifecycle_hook))
            .with_state(hooks.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            base: format!("http://{addr}"),
            changes,
            lifecycle,
            echo: hooks.echo,
            validations: hooks.validations,
        }
    }

    fn notify_url(&self) -> String {
        format!("{}/notify", self.base)
    }

    fn lifecycle_url(&self) -> String {
        format!("{}/lifecycle", self.base)
    }

    /// The next change notification (one item of a POST's `value`).
    async fn next_change(&mut self, pending: &mut Vec<Value>) -> Value {
        if pending.is_empty() {
            let body = tokio::time::timeout(WAIT, self.changes.recv())
                .await
                .expect("a change notification in time")
                .expect("the receiver is running");
            let items = body["value"].as_array().cloned().unwrap_or_default();
            assert!(!items.is_empty(), "a POST without notifications: {body}");
            pending.extend(items.into_iter().rev());
        }
        pending.pop().unwrap()
    }

    async fn next_lifecycle(&mut self) -> Value {
        let body = tokio::time::timeout(WAIT, self.lifecycle.recv())
            .await
            .expect("a lifecycle notification in time")
            .expect("the receiver is running");
        let items = body["value"].as_array().cloned().unwrap_or_default();
        assert_eq!(items.len(), 1, "{body}");
        items[0].clone()
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn subscription(m: &MockMicrosoft, r: &Receiver, resource: &str, change_type: &str) -> Value {
    json!({
        "changeType": change_type,
        "notificationUrl": r.notify_url(),
        "lifecycleNotificationUrl": r.lifecycle_url(),
        "resource": resource,
        "expirationDateTime": rfc3339(m.clock().now() + time::Duration::hours(1)),
        "clientState": "the-client-state",
    })
}

async fn subscribe(g: &Graph, body: &Value) -> Value {
    let answer = g.post("/subscriptions", body).await;
    assert_eq!(answer.status.as_u16(), 201, "{}", answer.text());
    answer.body
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
async fn a_delivered_message_is_told_once_as_created_with_the_client_state() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let mut r = Receiver::start().await;
    let g = Graph::app(&m).await;
    let resource = format!("users/{ADELE}/mailFolders('inbox')/messages");
    let sub = subscribe(&g, &subscription(&m, &r, &resource, "created")).await;
    assert_eq!(
        r.validations.load(Ordering::SeqCst),
        2,
        "both URLs validated"
    );
    let id = sub["id"].as_str().unwrap().to_string();
    assert_eq!(sub["resource"], resource);
    assert_eq!(sub["changeType"], "created");
    assert_eq!(sub["clientState"], "the-client-state");
    assert_eq!(sub["applicationId"], DAEMON_APP);
    assert_eq!(sub["notificationUrl"], r.notify_url());
    assert_eq!(sub["lifecycleNotificationUrl"], r.lifecycle_url());
    assert!(sub["expirationDateTime"].as_str().is_some());

    let ids = m.add_messages(ADELE, &[message("First")]).unwrap();
    // A message elsewhere is not told; the second message proves nothing came in between.
    let mut sent = message("Elsewhere");
    sent.folder = "sentitems".into();
    m.add_messages(ADELE, &[sent]).unwrap();
    let second = m.add_messages(ADELE, &[message("Second")]).unwrap();
    let mut pending = Vec::new();
    let first = r.next_change(&mut pending).await;
    assert_eq!(first["subscriptionId"], id.as_str());
    assert_eq!(first["changeType"], "created");
    assert_eq!(first["clientState"], "the-client-state");
    assert_eq!(first["tenantId"], TENANT_ID);
    assert_eq!(first["resourceData"]["id"], ids[0].as_str());
    assert_eq!(
        first["resourceData"]["@odata.type"],
        "#Microsoft.Graph.Message"
    );
    assert!(
        first["resource"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/Messages/{}", ids[0]))
    );
    assert!(first["subscriptionExpirationDateTime"].as_str().is_some());
    let next = r.next_change(&mut pending).await;
    assert_eq!(next["resourceData"]["id"], second[0].as_str(), "{next}");
    assert!(pending.is_empty());
    assert_eq!(m.graph_state().graph_switches().notifications_sent, 2);
}

#[tokio::test]
async fn the_handshake_is_refused_when_the_receiver_does_not_echo_the_token() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let r = Receiver::start().await;
    r.echo.store(false, Ordering::SeqCst);
    let g = Graph::app(&m).await;
    let body = subscription(&m, &r, &format!("users/{ADELE}/messages"), "created");
    let answer = g.post("/subscriptions", &body).await;
    let message = answer.error(400, "ValidationError");
    assert!(message.contains("validation request failed"), "{message}");
    assert!(m.graph_state().subscription_ids().is_empty());
    assert_eq!(g.get("/subscriptions").await.values().len(), 0);

    // An endpoint nobody listens on.
    let mut body = body;
    body["notificationUrl"] = json!("http://127.0.0.1:9/nobody");
    let answer = g.post("/subscriptions", &body).await;
    answer.error(400, "ValidationError");
    // Graph wants HTTPS beyond the loopback.
    body["notificationUrl"] = json!("http://gateway.contoso.example/notify");
    g.post("/subscriptions", &body)
        .await
        .error(400, "ValidationError");
}

#[tokio::test]
async fn subscriptions_are_checked_like_graph() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let r = Receiver::start().await;
    let g = Graph::app(&m).await;
    let resource = format!("/users/{ADELE}/events");
    let now = m.clock().now();
    let mut body = subscription(&m, &r, &resource, "created,updated");
    body["expirationDateTime"] = json!(rfc3339(now + time::Duration::minutes(4240)));
    let message = g
        .post("/subscriptions", &body)
        .await
        .error(400, "ExtensionError")
        .to_string();
    assert_eq!(
        message,
        "Subscription expiration can only be 4230 minutes in the future."
    );
    body["expirationDateTime"] = json!(rfc3339(now - time::Duration::minutes(1)));
    g.post("/subscriptions", &body)
        .await
        .error(400, "ExtensionError");
    body["expirationDateTime"] = json!(rfc3339(now + time::Duration::minutes(4200)));
    body["changeType"] = json!("created,renamed");
    g.post("/subscriptions", &body)
        .await
        .error(400, "ValidationError");
    body["changeType"] = json!("created");
    body["resource"] = json!(format!("users/{ADELE}/mailFolders('nope')/messages"));
    g.post("/subscriptions", &body)
        .await
        .error(400, "ErrorInvalidIdMalformed");
    body["resource"] = json!("me/messages");
    g.post("/subscriptions", &body)
        .await
        .error(400, "BadRequest");
    // Delegated: Adele's own mailbox with her token's Mail.Read, not Megan's.
    let adele = Graph::adele(&m).await;
    body["resource"] = json!("me/mailFolders('inbox')/messages");
    let mine = subscribe(&adele, &body).await;
    body["resource"] = json!(format!("users/{MEGAN}/messages"));
    adele
        .post("/subscriptions", &body)
        .await
        .error(403, "ErrorAccessDenied");
    // Each app sees its own subscriptions only.
    assert_eq!(adele.get("/subscriptions").await.values().len(), 1);
    assert_eq!(g.get("/subscriptions").await.values().len(), 0);
    let id = mine["id"].as_str().unwrap();
    g.get(&format!("/subscriptions/{id}"))
        .await
        .error(404, "ResourceNotFound");
    let got = adele.get(&format!("/subscriptions/{id}")).await;
    assert_eq!(got.ok()["id"], id);
}

#[tokio::test]
async fn updates_deletes_and_moves_are_told_with_their_change_types() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let mut r = Receiver::start().await;
    let g = Graph::app(&m).await;
    let inbox = format!("users/{ADELE}/mailFolders('inbox')/messages");
    let all = "created,updated,deleted";
    let inbox_sub = subscribe(&g, &subscription(&m, &r, &inbox, all)).await;
    let archive = format!("users/{ADELE}/mailFolders('archive')/messages");
    let archive_sub = subscribe(&g, &subscription(&m, &r, &archive, all)).await;
    let ids = m
        .add_messages(ADELE, &[message("One"), message("Two")])
        .unwrap();
    let mut pending = Vec::new();
    for id in &ids {
        let n = r.next_change(&mut pending).await;
        assert_eq!(n["changeType"], "created");
        assert_eq!(n["resourceData"]["id"], id.as_str());
        assert_eq!(n["subscriptionId"], inbox_sub["id"]);
    }
    let base = format!("/users/{ADELE}/messages");
    g.send(
        Method::PATCH,
        &format!("{base}/{}", ids[0]),
        Some(&json!({"isRead": true})),
    )
    .await
    .unwrap()
    .ok();
    let n = r.next_change(&mut pending).await;
    assert_eq!(n["changeType"], "updated");
    assert_eq!(n["resourceData"]["id"], ids[0].as_str());

    let answer = g
        .send(Method::DELETE, &format!("{base}/{}", ids[0]), None)
        .await
        .unwrap();
    assert_eq!(answer.status.as_u16(), 204);
    let n = r.next_change(&mut pending).await;
    assert_eq!(n["changeType"], "deleted");
    assert_eq!(n["resourceData"]["id"], ids[0].as_str());

    // A move: deleted in the inbox, created in the archive (with its new ID).
    let moved = g
        .post(
            &format!("{base}/{}/move", ids[1]),
            &json!({"destinationId": "archive"}),
        )
        .await;
    let new_id = moved.ok()["id"].as_str().unwrap().to_string();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let n = r.next_change(&mut pending).await;
        seen.push((
            n["subscriptionId"].as_str().unwrap().to_string(),
            n["changeType"].as_str().unwrap().to_string(),
            n["resourceData"]["id"].as_str().unwrap().to_string(),
        ));
    }
    seen.sort();
    let mut want = vec![
        (
            inbox_sub["id"].as_str().unwrap().to_string(),
            "deleted".to_string(),
            ids[1].clone(),
        ),
        (
            archive_sub["id"].as_str().unwrap().to_string(),
            "created".to_string(),
            new_id,
        ),
    ];
    want.sort();
    assert_eq!(seen, want);
}

#[tokio::test]
async fn calendar_events_are_told_and_change_types_filter() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let mut r = Receiver::start().await;
    let g = Graph::app(&m).await;
    let events = format!("users/{ADELE}/events");
    // Only deletions for this one: it hears nothing of the creation or the update.
    let deletions = subscribe(&g, &subscription(&m, &r, &events, "deleted")).await;
    let everything = subscribe(
        &g,
        &subscription(&m, &r, &events, "created,updated,deleted"),
    )
    .await;
    let created = g
        .post(
            &format!("/users/{ADELE}/events"),
            &json!({
                "subject": "Review",
                "start": {"dateTime": "2026-12-10T10:00:00", "timeZone": "UTC"},
                "end": {"dateTime": "2026-12-10T11:00:00", "timeZone": "UTC"},
            }),
        )
        .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text());
    let id = created.body["id"].as_str().unwrap().to_string();
    let mut pending = Vec::new();
    let n = r.next_change(&mut pending).await;
    assert_eq!(n["changeType"], "created");
    assert_eq!(n["subscriptionId"], everything["id"]);
    assert_eq!(n["resourceData"]["@odata.type"], "#Microsoft.Graph.Event");
    assert_eq!(n["resourceData"]["id"], id.as_str());
    g.send(
        Method::PATCH,
        &format!("/users/{ADELE}/events/{id}"),
        Some(&json!({"subject": "Review (moved)"})),
    )
    .await
    .unwrap()
    .ok();
    let n = r.next_change(&mut pending).await;
    assert_eq!(n["changeType"], "updated");
    assert_eq!(n["subscriptionId"], everything["id"]);
    let answer = g
        .send(Method::DELETE, &format!("/users/{ADELE}/events/{id}"), None)
        .await
        .unwrap();
    assert_eq!(answer.status.as_u16(), 204);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let n = r.next_change(&mut pending).await;
        assert_eq!(n["changeType"], "deleted");
        assert_eq!(n["resourceData"]["id"], id.as_str());
        seen.push(n["subscriptionId"].as_str().unwrap().to_string());
    }
    seen.sort();
    let mut want = vec![
        deletions["id"].as_str().unwrap().to_string(),
        everything["id"].as_str().unwrap().to_string(),
    ];
    want.sort();
    assert_eq!(seen, want);
}

#[tokio::test]
async fn renew_delete_and_reauthorize() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let mut r = Receiver::start().await;
    let g = Graph::app(&m).await;
    let sub = subscribe(
        &g,
        &subscription(&m, &r, &format!("users/{ADELE}/messages"), "created"),
    )
    .await;
    let id = sub["id"].as_str().unwrap().to_string();
    let later = m.clock().now() + time::Duration::minutes(4000);
    let renewed = g
        .send(
            Method::PATCH,
            &format!("/subscriptions/{id}"),
            Some(&json!({"expirationDateTime": rfc3339(later)})),
        )
        .await
        .unwrap();
    assert_eq!(
        renewed.ok()["expirationDateTime"],
        exgate_testkit_fmt(later)
    );
    let too_late = m.clock().now() + time::Duration::minutes(5000);
    g.send(
        Method::PATCH,
        &format!("/subscriptions/{id}"),
        Some(&json!({"expirationDateTime": rfc3339(too_late)})),
    )
    .await
    .unwrap()
    .error(400, "ExtensionError");

    // reauthorizationRequired, then the reauthorization.
    assert!(
        m.graph_state()
            .send_lifecycle(&id, LifecycleEvent::ReauthorizationRequired)
    );
    let n = r.next_lifecycle().await;
    assert_eq!(n["lifecycleEvent"], "reauthorizationRequired");
    assert_eq!(n["subscriptionId"], id.as_str());
    assert_eq!(n["clientState"], "the-client-state");
    assert_eq!(n["tenantId"], TENANT_ID);
    let answer = g
        .send(
            Method::POST,
            &format!("/subscriptions/{id}/reauthorize"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(answer.status.as_u16(), 204, "{}", answer.text());

    let answer = g
        .send(Method::DELETE, &format!("/subscriptions/{id}"), None)
        .await
        .unwrap();
    assert_eq!(answer.status.as_u16(), 204);
    g.get(&format!("/subscriptions/{id}"))
        .await
        .error(404, "ResourceNotFound");
    g.send(Method::DELETE, &format!("/subscriptions/{id}"), None)
        .await
        .unwrap()
        .error(404, "ResourceNotFound");
    assert!(!m.graph_state().send_lifecycle(&id, LifecycleEvent::Missed));
}

/// How the mock writes instants (whole seconds, `Z`).
fn exgate_testkit_fmt(t: time::OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.to_offset(time::UtcOffset::UTC).format(fmt).unwrap()
}

#[tokio::test]
async fn switches_drop_delay_expire_and_send_missed() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let mut r = Receiver::start().await;
    let g = Graph::app(&m).await;
    let sub = subscribe(
        &g,
        &subscription(&m, &r, &format!("users/{ADELE}/messages"), "created"),
    )
    .await;
    let id = sub["id"].as_str().unwrap().to_string();
    let graph = m.graph_state();
    let mut pending = Vec::new();

    // Drop the next one.
    graph.drop_next_notifications(1);
    m.add_messages(ADELE, &[message("Dropped")]).unwrap();
    let kept = m.add_messages(ADELE, &[message("Kept")]).unwrap();
    let n = r.next_change(&mut pending).await;
    assert_eq!(n["resourceData"]["id"], kept[0].as_str());
    let switches = graph.graph_switches();
    assert_eq!(switches.notifications_dropped, 1);
    assert_eq!(switches.drop_next, 0);

    // Drop all, then none (over the admin HTTP).
    let admin = support::http();
    let set = |on: bool| {
        admin
            .post(format!("{}/_mock/graph", m.base_url()))
            .body(json!({"drop_notifications": on}).to_string())
            .send()
    };
    assert!(set(true).await.unwrap().status().is_success());
    m.add_messages(ADELE, &[message("Lost")]).unwrap();
    graph.notifications_settled().await;
    assert!(set(false).await.unwrap().status().is_success());
    let after = m.add_messages(ADELE, &[message("After")]).unwrap();
    let n = r.next_change(&mut pending).await;
    assert_eq!(n["resourceData"]["id"], after[0].as_str());
    let read: Value = admin
        .get(format!("{}/_mock/graph", m.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["notifications_dropped"], 2);
    assert_eq!(read["subscriptions"], json!([id]));
    let refused = admin
        .post(format!("{}/_mock/graph", m.base_url()))
        .body(json!({"expire": ["no-such-subscription"]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 400);

    // Delayed.
    graph.delay_notifications(Duration::from_millis(300));
    let started = Instant::now();
    let late = m.add_messages(ADELE, &[message("Late")]).unwrap();
    let n = r.next_change(&mut pending).await;
    assert_eq!(n["resourceData"]["id"], late[0].as_str());
    assert!(started.elapsed() >= Duration::from_millis(300));
    graph.delay_notifications(Duration::ZERO);

    // missed.
    assert!(graph.send_lifecycle(&id, LifecycleEvent::Missed));
    assert_eq!(r.next_lifecycle().await["lifecycleEvent"], "missed");

    // Expired now: removed, told, and nothing more is sent for it.
    let switched = graph.change_graph_switches(&GraphSwitchChange {
        expire: vec![id.clone()],
        ..GraphSwitchChange::default()
    });
    assert!(switched.unwrap().subscriptions.is_empty());
    let n = r.next_lifecycle().await;
    assert_eq!(n["lifecycleEvent"], "subscriptionRemoved");
    assert_eq!(n["subscriptionId"], id.as_str());
    g.get(&format!("/subscriptions/{id}"))
        .await
        .error(404, "ResourceNotFound");
    // Nothing more is sent for it.
    m.add_messages(ADELE, &[message("Last")]).unwrap();
    graph.notifications_settled().await;
    assert!(r.changes.try_recv().is_err());
    assert!(pending.is_empty());
}

#[tokio::test]
async fn a_subscription_past_its_expiry_on_the_mock_clock_is_gone() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let mut r = Receiver::start().await;
    let g = Graph::app(&m).await;
    let mut r_old = Receiver::start().await;
    let old = subscribe(
        &g,
        &subscription(&m, &r_old, &format!("users/{ADELE}/messages"), "created"),
    )
    .await;
    let old_id = old["id"].as_str().unwrap();
    m.advance_clock(Duration::from_secs(2 * 3600));
    // The old token expired with the hour too.
    let g = Graph::app(&m).await;
    g.get(&format!("/subscriptions/{old_id}"))
        .await
        .error(404, "ResourceNotFound");
    g.send(
        Method::PATCH,
        &format!("/subscriptions/{old_id}"),
        Some(&json!({"expirationDateTime": rfc3339(m.clock().now() + time::Duration::hours(1))})),
    )
    .await
    .unwrap()
    .error(404, "ResourceNotFound");
    let fresh = subscribe(
        &g,
        &subscription(&m, &r, &format!("users/{ADELE}/messages"), "created"),
    )
    .await;
    let ids = m.add_messages(ADELE, &[message("After expiry")]).unwrap();
    let mut pending = Vec::new();
    let n = r.next_change(&mut pending).await;
    assert_eq!(n["subscriptionId"], fresh["id"]);
    assert_eq!(n["resourceData"]["id"], ids[0].as_str());
    m.graph_state().notifications_settled().await;
    assert!(
        r_old.changes.try_recv().is_err(),
        "the expired subscription heard nothing"
    );
    assert!(pending.is_empty());
    assert_eq!(m.graph_state().subscription_ids().len(), 1);
}
