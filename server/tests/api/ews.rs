//! The mailbox routes on an Exchange Server (EWS) connection with a service account: static
//! users reached by impersonation (ApplicationImpersonation) and as a delegate (FullAccess),
//! against the mock EWS.

use axum::http::StatusCode;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};
use serde_json::{Value, json};

use crate::{Gateway, Home, assert_shape, document, names};

/// A mocked gateway with an Exchange Server connection `onprem` whose service account is
/// `user`, the static users `users` (principal, mailbox, access) and an application key.
struct Onprem {
    gw: Gateway,
    key: String,
    mock: MockMicrosoft,
    _home: Home,
}

impl Onprem {
    async fn start(auth: &str, user: &str, password: &str, users: &[(&str, &str, &str)]) -> Self {
        let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
        let home = Home::new();
        let gw = Gateway::mocked(&home, &mock).await;
        let created = gw
            .connection(json!({
                "name": "onprem", "ews_url": mock.ews_url(), "auth": auth,
                "username": user, "password": password,
            }))
            .await;
        assert!(!created.to_string().contains(password), "{created}");
        for (principal, mailbox, access) in users {
            let (status, body) = gw
                .admin(
                    "POST",
                    "/api/v1/connections/onprem/static-users",
                    json!({ "principal": principal, "mailbox": mailbox, "access": access }),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        let key = gw.app_key("portal", &["onprem"]).await;
        Self {
            gw,
            key,
            mock,
            _home: home,
        }
    }

    async fn user(
        &self,
        principal: &str,
        method: &str,
        path: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        self.gw
            .call(
                method,
                &format!("/api/v1/connections/onprem/users/{principal}{path}"),
                &self.key,
                body,
            )
            .await
    }

    fn inbox_len(&self, mailbox: &str) -> usize {
        self.mock
            .mailbox_content(mailbox)
            .unwrap()
            .messages
            .iter()
            .filter(|m| m.folder.eq_ignore_ascii_case("inbox"))
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_user_by_impersonation_over_ews() {
    // Megan, the service account, has ApplicationImpersonation on Adele's mailbox.
    let t = Onprem::start(
        "ntlm",
        seed::MEGAN,
        seed::MEGAN_PASSWORD,
        &[
            ("adele", seed::ADELE, "impersonation"),
            ("sales", seed::SALES, "impersonation"),
        ],
    )
    .await;
    let doc = document();

    let (status, folders) = t.user("adele", "GET", "/folders", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{folders}");
    assert!(names(&folders, "name").contains(&"Inbox".to_owned()));

    let (status, page) = t
        .user("adele", "GET", "/messages?limit=500", Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_shape(&doc, "MessagePage", &page);
    // Adele's inbox, not Megan's.
    assert_eq!(
        page["messages"].as_array().unwrap().len(),
        t.inbox_len(seed::ADELE)
    );
    let id = page["messages"][0]["id"].as_str().unwrap();
    let (status, message) = t
        .user("adele", "GET", &format!("/messages/{id}"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{message}");
    assert_shape(&doc, "Message", &message);
    assert_eq!(message["subject"], page["messages"][0]["subject"]);

    let (status, sent) = t
        .user(
            "adele",
            "POST",
            "/messages",
            json!({ "to": [seed::MEGAN], "subject": "Impersonated send", "body": "hi" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    // Sent from Adele's mailbox (impersonation acts as her), delivered to Megan.
    assert_eq!(
        t.mock
            .submitted(seed::ADELE)
            .iter()
            .filter(|(_, s)| s == "Impersonated send")
            .count(),
        1
    );
    assert!(
        t.mock
            .delivered(seed::MEGAN)
            .iter()
            .any(|(_, s)| s == "Impersonated send")
    );

    let (status, events) = t
        .user(
            "adele",
            "GET",
            "/events?start=2026-11-01T00:00:00Z&end=2026-11-08T00:00:00Z",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{events}");
    assert!(!events.as_array().unwrap().is_empty(), "{events}");
    for event in events.as_array().unwrap() {
        assert_shape(&doc, "Event", event);
    }
    let (status, event) = t
        .user(
            "adele",
            "POST",
            "/events",
            json!({
                "subject": "Gateway over EWS",
                "start": { "date_time": "2026-12-03T10:00:00", "time_zone": "UTC" },
                "end": { "date_time": "2026-12-03T11:00:00", "time_zone": "UTC" },
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{event}");
    assert!(
        t.mock
            .mailbox_content(seed::ADELE)
            .unwrap()
            .events
            .iter()
            .any(|e| e.subject == "Gateway over EWS")
    );

    let (status, contacts) = t.user("adele", "GET", "/contacts", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{contacts}");
    assert_shape(&doc, "ContactPage", &contacts);
    assert_eq!(
        contacts["contacts"].as_array().unwrap().len(),
        t.mock.mailbox_content(seed::ADELE).unwrap().contacts.len()
    );

    let (status, schedule) = t
        .user(
            "adele",
            "POST",
            "/freebusy",
            json!({
                "who": [seed::ADELE, seed::MEGAN], "start": "2026-11-04T00:00:00Z",
                "end": "2026-11-05T00:00:00Z", "interval_minutes": 60,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{schedule}");
    assert_eq!(names(&schedule, "mailbox"), [seed::ADELE, seed::MEGAN]);
    assert_eq!(schedule[0]["view"].as_array().unwrap().len(), 24);

    // Megan may not impersonate Sales: refused, and the answer says why.
    let (status, error) = t.user("sales", "GET", "/messages", Value::Null).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{error}");
    assert!(
        error.to_string().to_lowercase().contains("imperson"),
        "{error}"
    );
    assert!(!error.to_string().contains(seed::MEGAN_PASSWORD));

    // A principal that is no static user reaches nothing through the service account.
    let (status, error) = t.user("nobody", "GET", "/messages", Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("static user"),
        "{error}"
    );

    // A static user names its mailbox: `?mailbox=` is refused.
    let (status, _) = t
        .user(
            "adele",
            "GET",
            "/messages?mailbox=sales@contoso.onmicrosoft.com",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_user_by_delegation_over_ews() {
    // Adele, the service account, has FullAccess on Sales; Megan's mailbox she may not open.
    let t = Onprem::start(
        "basic",
        seed::ADELE,
        seed::ADELE_PASSWORD,
        &[
            ("sales", seed::SALES, "delegation"),
            ("megan", seed::MEGAN, "delegation"),
        ],
    )
    .await;
    let (status, page) = t
        .user("sales", "GET", "/messages?limit=500", Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        page["messages"].as_array().unwrap().len(),
        t.inbox_len(seed::SALES)
    );
    let (status, contacts) = t.user("sales", "GET", "/contacts", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{contacts}");
    let (status, events) = t
        .user(
            "sales",
            "GET",
            "/events?start=2026-11-01T00:00:00Z&end=2026-11-08T00:00:00Z",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{events}");

    let (status, error) = t.user("megan", "GET", "/messages", Value::Null).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{error}");
    assert!(!error.to_string().contains(seed::ADELE_PASSWORD));
}
