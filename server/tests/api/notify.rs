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
}
