//! The mailbox routes on an Exchange Online connection that reads over IMAP and sends over
//! SMTP (app-only XOAUTH2), against the mock's IMAP and SMTP: the routes are the Graph ones,
//! unchanged; only the connection says which protocols serve them.

use axum::http::StatusCode;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};
use serde_json::{Value, json};

use crate::{Gateway, Home, assert_shape, document};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_routes_work_on_an_imap_and_smtp_connection() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let home = Home::new();
    let ca = home.dir.path().join("mail-ca.pem");
    std::fs::write(&ca, mock.mail_ca_pem()).unwrap();
    let state = home
        .state_with(
            crate::PUBLIC_URL,
            [
                ("EXGATE__ENDPOINTS__AUTHORITY_HOST", mock.base_url()),
                ("EXGATE__ENDPOINTS__IMAP_URL", mock.imap_url()),
                ("EXGATE__ENDPOINTS__SMTP_URL", mock.smtp_url()),
                ("EXGATE__TLS__CA_FILE", ca.display().to_string()),
            ],
        )
        .await;
    let gw = Gateway::new(state).await;
    let created = gw
        .connection(json!({
            "name": "helpdesk", "tenant": seed::TENANT_ID, "auth": "oauth2-app-only",
            "client_id": seed::DAEMON_APP, "client_secret": seed::DAEMON_APP_SECRET,
            "backend": "imap", "send": "smtp",
        }))
        .await;
    assert!(
        !created.to_string().contains(seed::DAEMON_APP_SECRET),
        "{created}"
    );
    let (status, body) = gw
        .admin(
            "POST",
            "/api/v1/connections/helpdesk/static-users",
            json!({ "principal": "tickets", "mailbox": seed::ADELE }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let key = gw.app_key("portal", &["helpdesk"]).await;
    let call = |method: &'static str, path: String, body: Value| {
        let (gw, key) = (&gw, &key);
        async move {
            gw.call(
                method,
                &format!("/api/v1/connections/helpdesk/users/tickets{path}"),
                key,
                body,
            )
            .await
        }
    };
    let doc = document();

    let (status, page) = call("GET", "/messages?limit=5".into(), Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_shape(&doc, "MessagePage", &page);
    let first = &page["messages"][0];
    let id = first["id"].as_str().unwrap();
    assert!(id.starts_with("im1."), "an IMAP message ID: {id}");
    let (status, message) = call("GET", format!("/messages/{id}"), Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{message}");
    assert_shape(&doc, "Message", &message);
    assert_eq!(message["subject"], first["subject"]);

    let (status, sent) = call(
        "POST",
        "/messages".into(),
        json!({ "to": [seed::MEGAN], "subject": "Ticket #4711 received", "body": "We are on it." }),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    assert!(
        mock.delivered(seed::MEGAN)
            .iter()
            .any(|(_, s)| s == "Ticket #4711 received")
    );
    // Exchange saw XOAUTH2 from the app for Adele over IMAP and SMTP, nothing else.
    let sessions = mock.mail_sessions();
    for protocol in ["Imap", "Smtp"] {
        assert!(
            sessions
                .iter()
                .any(|s| format!("{:?}", s.protocol) == protocol
                    && s.mechanism.as_deref() == Some("XOAUTH2")
                    && s.mailbox.as_deref() == Some(seed::ADELE)
                    && s.app_only),
            "{protocol}: {sessions:?}"
        );
    }
    // Calendars are not IMAP's: the answer says which protocol serves the connection.
    let (status, error) = call("GET", "/events".into(), Value::Null).await;
    assert!(status.is_client_error(), "{status} {error}");
}
