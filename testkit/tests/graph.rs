//! The mock Microsoft Graph over the wire, as a client sees it: reqwest, tokens from the mock
//! Entra ID (app-only with the daemon's secret, delegated with the password grant).

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::seed::*;
use exgate_testkit::entra::{Fault, Seed};
use exgate_testkit::graph::ThrottlePolicy;
use exgate_testkit::graph::fixtures::{FixtureSpec, generate};
use mail_parser::{MessageParser, MimeHeaders as _};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn token_with(m: &MockMicrosoft, form: &[(&str, &str)]) -> String {
    let response = http()
        .post(m.token_endpoint(TENANT_ID))
        .form(form)
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {body}"))
        .to_string()
}

/// An app-only Graph token of the daemon app.
async fn app_token(m: &MockMicrosoft) -> String {
    token_with(
        m,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DAEMON_APP),
            ("client_secret", DAEMON_APP_SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await
}

/// A delegated Graph token of the CLI app for a user (password grant).
async fn user_token(m: &MockMicrosoft, upn: &str, password: &str) -> String {
    token_with(
        m,
        &[
            ("grant_type", "password"),
            ("client_id", PUBLIC_APP),
            ("username", upn),
            ("password", password),
            ("scope", "User.Read"),
        ],
    )
    .await
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    bytes: Vec<u8>,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    #[track_caller]
    fn ok(&self) -> &Value {
        assert!(self.status.is_success(), "{} {}", self.status, self.text());
        &self.body
    }

    #[track_caller]
    fn error(&self, status: u16, code: &str) -> &str {
        assert_eq!(self.status.as_u16(), status, "{}", self.text());
        assert_eq!(self.body["error"]["code"], code, "{}", self.text());
        let inner = &self.body["error"]["innerError"];
        assert!(
            inner["request-id"].is_string() && inner["date"].is_string(),
            "{}",
            self.text()
        );
        self.body["error"]["message"].as_str().unwrap_or_default()
    }

    fn values(&self) -> Vec<Value> {
        self.body["value"].as_array().cloned().unwrap_or_default()
    }
}

/// A Graph client for one token.
struct Graph {
    url: String,
    token: String,
    client: reqwest::Client,
}

impl Graph {
    fn new(m: &MockMicrosoft, token: String) -> Self {
        Self {
            url: m.graph_url(),
            token,
            client: http(),
        }
    }

    async fn user(m: &MockMicrosoft, upn: &str, password: &str) -> Self {
        Self::new(m, user_token(m, upn, password).await)
    }

    async fn adele(m: &MockMicrosoft) -> Self {
        Self::user(m, ADELE, ADELE_PASSWORD).await
    }

    async fn megan(m: &MockMicrosoft) -> Self {
        Self::user(m, MEGAN, MEGAN_PASSWORD).await
    }

    async fn app(m: &MockMicrosoft) -> Self {
        Self::new(m, app_token(m).await)
    }

    fn absolute(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.url)
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self
            .client
            .request(method, self.absolute(path))
            .bearer_auth(&self.token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body.filter(|b| !b.is_null()) {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap().to_vec();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            bytes,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None, &[]).await
    }

    async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.call(Method::GET, path, None, headers).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body), &[]).await
    }

    async fn patch(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(body), &[]).await
    }

    async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None, &[]).await
    }

    /// Every item of a collection, following `@odata.nextLink`.
    async fn all(&self, path: &str, headers: &[(&str, &str)]) -> Vec<Value> {
        let mut items = Vec::new();
        let mut next = Some(path.to_string());
        let mut pages = 0;
        while let Some(url) = next {
            pages += 1;
            assert!(pages < 500, "paging does not end");
            let answer = self.get_with(&url, headers).await;
            answer.ok();
            items.extend(answer.values());
            next = answer.body["@odata.nextLink"].as_str().map(str::to_string);
        }
        items
    }
}

async fn mock() -> MockMicrosoft {
    MockMicrosoft::start(Seed::contoso()).await.unwrap()
}

fn subjects(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn message_id(g: &Graph, folder: &str, subject: &str) -> String {
    let items = g
        .all(
            &format!("/me/mailFolders/{folder}/messages?$select=subject&$top=100"),
            &[],
        )
        .await;
    items
        .iter()
        .find(|m| m["subject"] == subject)
        .and_then(|m| m["id"].as_str())
        .unwrap_or_else(|| panic!("no `{subject}` in {folder}: {:?}", subjects(&items)))
        .to_string()
}

// ----- users, folders -----

#[tokio::test]
async fn me_and_users_answer_profiles_with_request_ids() {
    let m = mock().await;
    let adele = Graph::adele(&m).await;
    let me = adele
        .get_with(
            "/me",
            &[("client-request-id", "c0ffee00-1111-4111-8111-000000000001")],
        )
        .await;
    assert_eq!(me.ok()["userPrincipalName"], ADELE);
    assert_eq!(me.body["id"], ADELE_OID);
    assert_eq!(me.body["displayName"], ADELE_NAME);
    assert_eq!(me.body["mail"], ADELE);
    assert_eq!(
        me.header("client-request-id"),
        Some("c0ffee00-1111-4111-8111-000000000001")
    );
    assert!(uuid::Uuid::parse_str(me.header("request-id").unwrap()).is_ok());
    let selected = adele.get("/me?$select=displayName").await;
    assert_eq!(selected.ok()["displayName"], ADELE_NAME);
    assert!(selected.body.get("mail").is_none());

    let app = Graph::app(&m).await;
    assert_eq!(
        app.get(&format!("/users/{MEGAN}")).await.ok()["id"],
        MEGAN_OID
    );
    assert_eq!(
        app.get(&format!("/users/{SALES_OID}")).await.ok()["mail"],
        SALES
    );
    let message = app.get("/me").await.error(400, "BadRequest").to_string();
    assert_eq!(
        message,
        "/me request is only valid with delegated authentication flow."
    );
    let message = app
        .get("/me/messages")
        .await
        .error(400, "BadRequest")
        .to_string();
    assert_eq!(
        message,
        "/me request is only valid with delegated authentication flow."
    );
    app.get("/users/nobody@contoso.onmicrosoft.com")
        .await
        .error(404, "Request_ResourceNotFound");
    let message = app
        .get("/users/nobody@contoso.onmicrosoft.com/messages")
        .await
        .error(404, "ErrorInvalidUser")
        .to_string();
    assert_eq!(
        message,
        "The requested user 'nobody@contoso.onmicrosoft.com' is invalid."
    );
    // Delegated User.Read covers oneself only.
    adele
        .get(&format!("/users/{MEGAN}"))
        .await
        .error(403, "Authorization_RequestDenied");
    adele.get("/me/nonsense").await.error(400, "BadRequest");
}

#[tokio::test]
async fn mail_folders_list_with_counts_paging_and_well_known_names() {
    let m = mock().await;
    let g = Graph::adele(&m).await;
    let folders = g.all("/me/mailFolders?$top=3", &[]).await;
    let names: Vec<&str> = folders
        .iter()
        .map(|f| f["displayName"].as_str().unwrap())
        .collect();
    for wanted in [
        "Inbox",
        "Drafts",
        "Sent Items",
        "Deleted Items",
        "Archive",
        "Junk Email",
        "Outbox",
    ] {
        assert!(names.contains(&wanted), "{names:?}");
    }
    let first = g.get("/me/mailFolders?$top=3").await;
    let next = first.ok()["@odata.nextLink"].as_str().unwrap().to_string();
    assert!(
        next.starts_with(&m.graph_url()) && next.contains("$skiptoken=") && next.contains("$top=3"),
        "{next}"
    );
    assert_eq!(first.values().len(), 3);

    let inbox = g.get("/me/mailFolders/inbox").await;
    let inbox = inbox.ok();
    assert_eq!(inbox["displayName"], "Inbox");
    assert_eq!(inbox["totalItemCount"], 12);
    assert_eq!(inbox["unreadItemCount"], 6);
    assert_eq!(inbox["childFolderCount"], 1);
    assert_eq!(inbox["isHidden"], false);
    for key in ["id", "parentFolderId"] {
        assert!(
            inbox[key]
                .as_str()
                .unwrap()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
    let by_id = g
        .get(&format!(
            "/me/mailFolders/{}",
            inbox["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(by_id.ok()["displayName"], "Inbox");
    assert_eq!(
        g.get("/me/mailFolders/SentItems").await.ok()["totalItemCount"],
        3
    );
    let children = g.get("/me/mailFolders/inbox/childFolders").await;
    assert_eq!(children.values()[0]["displayName"], "Projects");
    let megans_inbox = Graph::megan(&m)
        .await
        .get("/me/mailFolders/inbox")
        .await
        .body["id"]
        .clone();
    g.get(&format!(
        "/me/mailFolders/{}",
        megans_inbox.as_str().unwrap()
    ))
    .await
    .error(404, "ErrorItemNotFound");
    g.get("/me/mailFolders/not-an-id!")
        .await
        .error(400, "ErrorInvalidIdMalformed");
}

// ----- reading messages -----

#[tokio::test]
async fn messages_page_select_filter_count_and_order() {
    let m = mock().await;
    let g = Graph::adele(&m).await;
    let first = g
        .get("/me/mailFolders/inbox/messages?$select=subject,isRead")
        .await;
    let page = first.values();
    assert_eq!(page.len(), 10, "default page size");
    assert_eq!(page[0]["subject"], "Hello from Sales", "newest first");
    let keys: HashSet<&str> = page[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        HashSet::from(["@odata.etag", "id", "subject", "isRead"])
    );
    let next = first.body["@odata.nextLink"].as_str().unwrap();
    assert!(
        next.contains("$skiptoken=") && next.contains("$select=subject,isRead"),
        "{next}"
    );
    let second = g.get(next).await;
    assert_eq!(second.values().len(), 2);
    assert!(second.body.get("@odata.nextLink").is_none());
    assert_eq!(second.values()[1]["subject"], "Welcome to Contoso");

    let all = g.all("/me/messages?$top=4&$select=subject", &[]).await;
    assert_eq!(
        all.len(),
        12 + 1 + 1 + 3,
        "every folder: inbox, projects, draft, sent"
    );

    let unread = g
        .get("/me/mailFolders/inbox/messages?$filter=isRead eq false&$count=true&$top=2&$select=subject")
        .await;
    assert_eq!(unread.ok()["@odata.count"], 6);
    assert_eq!(unread.values().len(), 2);
    let from_megan = g
        .get(&format!("/me/mailFolders/inbox/messages?$filter=from/emailAddress/address eq '{MEGAN}' and isRead eq false&$top=50"))
        .await;
    assert_eq!(
        subjects(&from_megan.values()),
        vec![
            "Contract draft for review",
            "Team offsite photos",
            "Q4 budget review"
        ]
    );
    let attachments = g
        .get("/me/messages?$filter=hasAttachments eq true and receivedDateTime ge 2026-11-03T00:00:00Z&$select=subject")
        .await;
    assert_eq!(
        subjects(&attachments.values()),
        vec!["Contract draft for review", "Team offsite photos"]
    );
    let ascending = g
        .get("/me/mailFolders/inbox/messages?$orderby=receivedDateTime asc&$top=1&$select=subject")
        .await;
    assert_eq!(ascending.values()[0]["subject"], "Welcome to Contoso");
    let categorized = g
        .get("/me/messages?$filter=categories/any(c:c eq 'Finance')&$select=subject")
        .await;
    assert_eq!(
        subjects(&categorized.values()),
        vec!["Invoice 2026-1107", "Q4 budget review"]
    );

    let message = g
        .get("/me/messages?$select=subject,size")
        .await
        .error(400, "RequestBroker--ParseUri")
        .to_string();
    assert_eq!(
        message,
        "Could not find a property named 'size' on type 'microsoft.graph.message'."
    );
    g.get("/me/messages?$filter=isRead eq maybe")
        .await
        .error(400, "ErrorInvalidUrlQueryFilter");
    g.get("/me/messages?$filter=bogus eq 1")
        .await
        .error(400, "RequestBroker--ParseUri");
}

#[tokio::test]
async fn a_message_has_graphs_shape_and_prefer_text_strips_html() {
    let m = mock().await;
    let g = Graph::adele(&m).await;
    let id = message_id(&g, "inbox", "Q4 budget review").await;
    let answer = g.get(&format!("/me/messages/{id}")).await;
    let msg = answer.ok();
    for key in [
        "id",
        "createdDateTime",
        "lastModifiedDateTime",
        "receivedDateTime",
        "sentDateTime",
        "hasAttachments",
        "internetMessageId",
        "subject",
        "bodyPreview",
        "importance",
        "parentFolderId",
        "conversationId",
        "isRead",
        "isDraft",
        "webLink",
        "body",
        "sender",
        "from",
        "toRecipients",
        "ccRecipients",
        "bccRecipients",
        "replyTo",
        "flag",
        "categories",
    ] {
        assert!(msg.get(key).is_some(), "{key} missing: {msg}");
    }
    assert!(msg.get("internetMessageHeaders").is_none());
    assert_eq!(msg["id"], id.as_str());
    assert_eq!(msg["importance"], "high");
    assert_eq!(msg["isRead"], false);
    assert_eq!(msg["flag"], json!({"flagStatus": "flagged"}));
    assert_eq!(msg["categories"], json!(["Red category", "Finance"]));
    assert_eq!(
        msg["from"],
        json!({"emailAddress": {"name": MEGAN_NAME, "address": MEGAN}})
    );
    assert_eq!(msg["toRecipients"][0]["emailAddress"]["address"], ADELE);
    assert_eq!(msg["body"]["contentType"], "html");
    assert!(
        msg["body"]["content"]
            .as_str()
            .unwrap()
            .contains("<b>Q4 budget</b>")
    );
    assert_eq!(msg["receivedDateTime"], "2026-11-02T10:30:00Z");
    assert!(
        msg["bodyPreview"]
            .as_str()
            .unwrap()
            .starts_with("Hi Adele, the Q4 budget is ready:")
    );
    assert!(
        msg["webLink"]
            .as_str()
            .unwrap()
            .starts_with("https://outlook.office365.com/owa/?ItemID=")
    );

    let text = g
        .get_with(
            &format!("/me/messages/{id}"),
            &[("Prefer", "outlook.body-content-type=\"text\"")],
        )
        .await;
    assert_eq!(
        text.header("preference-applied"),
        Some("outlook.body-content-type=\"text\"")
    );
    let content = text.body["body"]["content"].as_str().unwrap();
    assert_eq!(text.body["body"]["contentType"], "text");
    assert!(
        !content.contains('<') && content.contains("Q4 budget") && content.contains("R&D"),
        "{content}"
    );

    let headers = g
        .get(&format!("/me/messages/{id}?$select=internetMessageHeaders"))
        .await;
    let names: Vec<&str> = headers.ok()["internetMessageHeaders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    for wanted in ["From", "To", "Subject", "Date", "Message-ID"] {
        assert!(names.contains(&wanted), "{names:?}");
    }
    g.get("/me/messages/AAMkAAAAAAAAAAAAAAAAAAAAAAAA")
        .await
        .error(400, "ErrorInvalidIdMalformed");
    let megan = Graph::megan(&m).await;
    let message = megan
        .get(&format!("/me/messages/{id}"))
        .await
        .error(404, "ErrorItemNotFound")
        .to_string();
    assert_eq!(message, "The specified object was not found in the store.");
}

#[tokio::test]
async fn attachments_list_without_bytes_and_round_trip_their_content() {
    let m = mock().await;
    let g = Graph::adele(&m).await;
    let id = message_id(&g, "inbox", "Team offsite photos").await;
    let list = g.get(&format!("/me/messages/{id}/attachments")).await;
    let items = list.values();
    assert_eq!(items.len(), 2);
    for a in &items {
        assert_eq!(a["@odata.type"], "#microsoft.graph.fileAttachment");
        assert!(a.get("contentBytes").is_none(), "{a}");
    }
    let logo = items.iter().find(|a| a["name"] == "logo.png").unwrap();
    assert_eq!(logo["isInline"], true);
    assert_eq!(logo["contentId"], "logo@contoso");
    assert_eq!(logo["contentType"], "image/png");
    let selected = g
        .get(&format!(
            "/me/messages/{id}/attachments?$select=name,contentBytes"
        ))
        .await;
    assert!(selected.values()[0]["contentBytes"].is_string());

    let one = g
        .get(&format!(
            "/me/messages/{id}/attachments/{}",
            logo["id"].as_str().unwrap()
        ))
        .await;
    let bytes = STANDARD
        .decode(one.ok()["contentBytes"].as_str().unwrap())
        .unwrap();
    assert_eq!(one.body["size"], bytes.len());
    assert!(bytes.starts_with(b"\x89PNG"));
    let raw = g
        .get(&format!(
            "/me/messages/{id}/attachments/{}/$value",
            logo["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(raw.header("content-type"), Some("image/png"));
    assert_eq!(raw.bytes, bytes);
    let message = g.get(&format!("/me/messages/{id}")).await;
    assert_eq!(message.body["hasAttachments"], true);

    // A draft with an attachment keeps its bytes.
    let payload: Vec<u8> = (0u8..=255).cycle().take(3000).collect();
    let draft = g
        .post(
            "/me/messages",
            json!({
                "subject": "With a file",
                "toRecipients": [{"emailAddress": {"address": MEGAN}}],
                "attachments": [{
                    "@odata.type": "#microsoft.graph.fileAttachment",
                    "name": "blob.bin", "contentType": "application/octet-stream",
                    "contentBytes": STANDARD.encode(&payload)
                }]
            }),
        )
        .await;
    assert_eq!(draft.status, StatusCode::CREATED, "{}", draft.text());
    let draft_id = draft.body["id"].as_str().unwrap();
    let list = g.get(&format!("/me/messages/{draft_id}/attachments")).await;
    let aid = list.values()[0]["id"].as_str().unwrap().to_string();
    let back = g
        .get(&format!("/me/messages/{draft_id}/attachments/{aid}/$value"))
        .await;
    assert_eq!(back.bytes, payload);
    let bad = g
        .post(
            &format!("/me/messages/{draft_id}/attachments"),
            json!({"name": "x", "contentBytes": "AAAA"}),
        )
        .await;
    bad.error(400, "RequestBodyRead");
}

#[tokio::test]
async fn mime_value_is_rfc_5322_with_a_multipart_body() {
    let m = mock().await;
    let g = Graph::adele(&m).await;
    let id = message_id(&g, "inbox", "Team offsite photos").await;
    let mime = g.get(&format!("/me/messages/{id}/$value")).await;
    assert_eq!(mime.status, StatusCode::OK);
    // The same item gives the same bytes every time, boundaries included, as Exchange's does.
    let again = g.get(&format!("/me/messages/{id}/$value")).await;
    assert!(
        again.bytes == mime.bytes,
        "the MIME of one item changed between reads"
    );
    assert!(
        mime.header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    // Parsed by a real MIME parser, not by the mock's own rules.
    let parsed = MessageParser::default()
        .parse(&mime.bytes)
        .expect("the MIME parses");
    let from = parsed.from().and_then(|a| a.first()).unwrap();
    assert_eq!(
        (from.name(), from.address()),
        (Some("Megan Bowen"), Some("megan@contoso.onmicrosoft.com"))
    );
    let to = parsed.to().and_then(|a| a.first()).unwrap();
    assert_eq!(
        (to.name(), to.address()),
        (Some("Adele Vance"), Some("adele@contoso.onmicrosoft.com"))
    );
    assert_eq!(parsed.subject(), Some("Team offsite photos"));
    assert_eq!(
        parsed.date().map(|d| d.to_rfc3339()).as_deref(),
        Some("2026-11-03T09:04:57Z")
    );
    assert_eq!(
        parsed.header_raw("MIME-Version").map(str::trim),
        Some("1.0")
    );
    let message = g
        .get(&format!("/me/messages/{id}?$select=internetMessageId"))
        .await;
    assert_eq!(
        parsed.message_id().map(|m| format!("<{m}>")),
        message.body["internetMessageId"]
            .as_str()
            .map(str::to_string)
    );
    assert!(parsed.body_html(0).unwrap().contains("offsite"));
    assert_eq!(parsed.attachment_count(), 2);
    let names: Vec<&str> = parsed
        .attachments()
        .filter_map(|a| a.attachment_name())
        .collect();
    assert_eq!(names, ["agenda.pdf", "logo.png"]);
    let png = parsed
        .attachments()
        .find(|a| a.attachment_name() == Some("logo.png"))
        .unwrap();
    assert_eq!(png.content_id(), Some("logo@contoso"));
    assert!(png.contents().starts_with(b"\x89PNG"));
}

// ----- writing and sending -----

#[tokio::test]
async fn send_mail_delivers_exactly_once_and_saves_to_sent_items() {
    let m = mock().await;
    let g = Graph::adele(&m).await;
    let before = m.delivered(MEGAN).len();
    let sent = g
        .post(
            "/me/sendMail",
            json!({"message": {
                "subject": "Hello Megan",
                "body": {"contentType": "Text", "content": "Are you free at 3?"},
                "toRecipients": [{"emailAddress": {"address": MEGAN}}],
                "ccRecipients": [{"emailAddress": {"address": "MEGAN@contoso.onmicrosoft.com"}}],
                "bccRecipients": [{"emailAddress": {"address": "someone@external.example"}}]
            }}),
        )
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.text());
    assert!(sent.bytes.is_empty());
    let delivered = m.delivered(MEGAN);
    assert_eq!(
        delivered.len(),
        before + 1,
        "one delivery even when named twice"
    );
    assert_eq!(delivered.last().unwrap().1, "Hello Megan");
    assert_eq!(m.submitted(ADELE).len(), 1);

    let megan = Graph::megan(&m).await;
    let inbox = megan.get("/me/mailFolders/inbox/messages?$top=1").await;
    let received = &inbox.values()[0];
    assert_eq!(received["subject"], "Hello Megan");
    assert_eq!(received["isRead"], false);
    assert_eq!(received["from"]["emailAddress"]["address"], ADELE);
    assert_eq!(received["bccRecipients"], json!([]));
    assert_eq!(
        received["internetMessageId"],
        delivered.last().unwrap().0.as_str()
    );
    let sent_items = g.get("/me/mailFolders/sentitems/messages?$top=1").await;
    assert_eq!(sent_items.values()[0]["subject"], "Hello Megan");
    assert_eq!(sent_items.values()[0]["isDraft"], false);

    let unsaved = g
        .post(
            "/me/sendMail",
            json!({"message": {"subject": "Not saved", "toRecipients": [{"emailAddress": {"address": MEGAN}}]}, "saveToSentItems": false}),
        )
        .await;
    assert_eq!(unsaved.status, StatusCode::ACCEPTED);
    assert_eq!(
        g.get("/me/mailFolders/sentitems").await.body["totalItemCount"],
        4
    );

    let nobody = g
        .post("/me/sendMail", json!({"message": {"subject": "x"}}))
        .await;
    nobody.error(400, "ErrorInvalidRecipients");
    let broken = g
        .call(
            Method::POST,
            "/me/sendMail",
            None,
            &[("content-type", "application/json")],
        )
        .await;
    broken.error(400, "RequestBodyRead");
    let client = http();
    let malformed = client
        .post(format!("{}/me/sendMail", m.graph_url()))
        .bearer_auth(&g.token)
        .header("content-type", "application/json")
        .body("{\"message\": {")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let body: Value = malformed.json().await.unwrap();
    assert_eq!(body["error"]["code"], "RequestBodyRead");
    assert_eq!(
        m.delivered(MEGAN).len(),
        before + 2,
        "failed sends deliver nothing"
    );
}

#[tokio::test]
async fn a_draft_is_created_patched_sent_once_and_then_gone() {
    let m = mock().await;
    let g = Graph::adele(&m).await;
    let draft = g
        .post(
            "/me/messages",
            json!({"subject": "Draft one", "body": {"contentType": "HTML", "content": "<p>first</p>"},
                   "toRecipients": [{"emailAddress": {"name": "Megan", "address": MEGAN}}],
                   "internetMessageHeaders": [{"name": "X-Trace", "value": "42"}]}),
        )
        .await;
    assert_eq!(draft.status, StatusCode::CREATED, "{}", draft.text());
    assert_eq!(draft.body["isDraft"], true);
    let id = draft.body["id"].as_str().unwrap().to_string();
    let drafts = g.get("/me/mailFolders/drafts").await;
    assert_eq!(drafts.body["id"], draft.body["parentFolderId"]);
    let patched = g
        .patch(
            &format!("/me/messages/{id}"),
            json!({"subject": "Draft two", "importance": "high"}),
        )
        .await;
    assert_eq!(patched.ok()["subject"], "Draft two");
    assert_eq!(patched.body["importance"], "high");

    let sent = g
        .post(&format!("/me/messages/{id}/send"), Value::Null)
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.text());
    let delivered = m.delivered(MEGAN);
    assert_eq!(
        delivered.iter().filter(|(_, s)| s == "Draft two").count(),
        1
    );
    let again = g
        .post(&format!("/me/messages/{id}/send"), Value::Null)
        .await;
    again.error(404, "ErrorItemNotFound");
    assert_eq!(
        m.delivered(MEGAN)
            .iter()
            .filter(|(_, s)| s == "Draft two")
            .count(),
        1,
        "never twice"
    );
    g.get(&format!("/me/messages/{id}"))
        .await
        .error(404, "ErrorItemNotFound");
    let sent_items = g
        .get("/me/mailFolders/sentitems/messages?$top=1&$select=subject,isDraft,sentDateTime")
        .await;
    assert_eq!(sent_items.values()[0]["subject"], "Draft two");
    assert!(sent_items.values()[0]["sentDateTime"].is_string());

    let megan = Graph::megan(&m).await;
    let received = megan
        .get("/me/mailFolders/inbox/messages?$top=1&$select=subject,internetMessageHeaders")
        .await;
    let headers = received.values()[0]["internetMessageHeaders"].clone();
    assert!(
        headers
            .as_array()
            .unwrap()
            .contains(&json!({"name": "X-Trace", "value": "42"})),
        "{headers}"
    );

    let received_id = message_id(&g, "inbox", "Welcome to Contoso").await;
    let refused = g
        .patch(
            &format!("/me/messages/{received_id}"),
            json!({"subject": "changed"}),
        )
        .await;
    refused.error(400, "ErrorInvalidPropertyUpdateSentMessage");
    let unknown = g
        .patch(
            &format!("/me/messages/{received_id}"),
            json!({"colour": "red"}),
        )
        .await;
    unknown.error(400, "RequestBodyRead");
    let wrong_type = g
        .patch(
            &format!("/me/messages/{received_id}"),
            json!({"isRead": "perhaps"}),
        )
        .await;
    wrong_type.error(400, "RequestBodyRead");
    let marked = g
        .patch(
            &format!("/me/messages/{received_id}"),
            json!({"isRead": false, "categories": ["Blue category"], "flag": {"flagStatus": "complete"}}),
        )
        .await;
    assert_eq!(marked.ok()["isRead"], false);
    assert_eq!(marked.body["categories"], json!(["Blue category"]));
    assert_eq!(marked.body["flag"]["flagStatus"], "complete");
}

#[tokio::test]
async fn reply_reply_all_and_forward_send_prefixed_messages() {
    let m = mock().await;
    let g = Graph::adele(&m).await;
    let id = message_id(&g, "inbox", "Contract draft for review").await;
    let reply = g
        .post(
            &format!("/me/messages/{id}/reply"),
            json!({"comment": "Looks fine."}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    let megan_got: Vec<String> = m.delivered(MEGAN).into_iter().map(|(_, s)| s).collect();
    assert!(
        megan_got.contains(&"RE: Contract draft for review".to_string()),
        "{megan_got:?}"
    );
    assert!(
        m.delivered(SALES).is_empty(),
        "reply goes to the sender only"
    );

    let all = g
        .post(
            &format!("/me/messages/{id}/replyAll"),
            json!({"comment": "All good."}),
        )
        .await;
    assert_eq!(all.status, StatusCode::ACCEPTED);
    assert_eq!(m.delivered(SALES).len(), 1, "reply all reaches the cc");

    let forward = g
        .post(
            &format!("/me/messages/{id}/forward"),
            json!({"comment": "FYI", "toRecipients": [{"emailAddress": {"address": SALES}}]}),
        )
        .await;
    assert_eq!(forward.status, StatusCode::ACCEPTED, "{}", forward.text());
    assert_eq!(
        m.delivered(SALES).last().unwrap().1,
        "FW: Contract draft for review"
    );

    let megan = Graph::megan(&m).await;
    let answer = megan
        .get("/me/mailFolders/inbox/messages?$top=2&$select=subject,body,conversationId")
        .await;
    let bodies: Vec<String> = answer
        .values()
        .iter()
        .filter(|v| v["subject"] == "RE: Contract draft for review")
        .map(|v| v["body"]["content"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(bodies.len(), 2, "the reply and the reply-all");
    let reply = bodies
        .iter()
        .find(|b| b.starts_with("Looks fine."))
        .unwrap();
    assert!(
        reply.contains("Subject: Contract draft for review") && reply.contains("From: Megan Bowen"),
        "{reply}"
    );
    let sent = g
        .get("/me/mailFolders/sentitems/messages?$top=3&$select=subject,hasAttachments")
        .await;
    let fw = sent
        .values()
        .into_iter()
        .find(|v| v["subject"] == "FW: Contract draft for review")
        .unwrap();
    assert_eq!(
        fw["hasAttachments"], true,
        "a forward carries the attachments"
    );
    let no_recipients = g
        .post(
            &format!("/me/messages/{id}/forward"),
            json!({"comment": "x"}),
        )
        .await;
    no_recipients.error(400, "ErrorInvalidRecipients");
}

#[tokio::test]
async fn move_copy_and_delete_give_new_ids() {
    let m = mock().await;
    let g = Graph::adele(&m).await;
    let id = message_id(&g, "inbox", "Your order has shipped").await;
    let moved = g
        .post(
            &format!("/me/messages/{id}/move"),
            json!({"destinationId": "archive"}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::CREATED, "{}", moved.text());
    let new_id = moved.body["id"].as_str().unwrap().to_string();
    assert_ne!(new_id, id);
    assert_eq!(
        moved.body["parentFolderId"],
        g.get("/me/mailFolders/archive").await.body["id"]
    );
    g.get(&format!("/me/messages/{id}"))
        .await
        .error(404, "ErrorItemNotFound");
    assert_eq!(
        g.get(&format!("/me/messages/{new_id}")).await.ok()["subject"],
        "Your order has shipped"
    );

    let copied = g
        .post(
            &format!("/me/messages/{new_id}/copy"),
            json!({"destinationId": "inbox"}),
        )
        .await;
    assert_eq!(copied.status, StatusCode::CREATED);
    assert_ne!(copied.body["id"], new_id.as_str());
    assert_eq!(
        g.get("/me/mailFolders/archive").await.body["totalItemCount"],
        1
    );

    let deleted = g.delete(&format!("/me/messages/{new_id}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    g.get(&format!("/me/messages/{new_id}"))
        .await
        .error(404, "ErrorItemNotFound");
    let trash = g.get("/me/mailFolders/deleteditems/messages").await;
    assert_eq!(subjects(&trash.values()), vec!["Your order has shipped"]);
    let trash_id = trash.values()[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        g.delete(&format!("/me/messages/{trash_id}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        g.get("/me/mailFolders/deleteditems").await.body["totalItemCount"],
        0
    );
    let nowhere = g
        .post(
            &format!("/me/messages/{}/move", copied.body["id"].as_str().unwrap()),
            json!({"destinationId": "nowhere"}),
        )
        .await;
    nowhere.error(400, "ErrorInvalidIdMalformed");
}

#[tokio::test]
async fn delta_syncs_a_folder_then_returns_only_changes_with_removals() {
    let m = mock().await;
    let g = Graph::adele(&m).await;
    let prefer = [("Prefer", "odata.maxpagesize=5")];
    let mut url = "/me/mailFolders/inbox/messages/delta?$select=subject,isRead".to_string();
    let mut seen = Vec::new();
    let delta_link = loop {
        let page = g.get_with(&url, &prefer).await;
        page.ok();
        assert!(page.values().len() <= 5);
        assert_eq!(
            page.header("preference-applied"),
            Some("odata.maxpagesize=5")
        );
        seen.extend(page.values());
        if let Some(next) = page.body["@odata.nextLink"].as_str() {
            assert!(next.contains("$skiptoken="), "{next}");
            url = next.to_string();
        } else {
            break page.body["@odata.deltaLink"].as_str().unwrap().to_string();
        }
    };
    assert!(
        delta_link.starts_with(&m.graph_url()) && delta_link.contains("$deltatoken="),
        "{delta_link}"
    );
    assert_eq!(seen.len(), 12);
    assert!(
        seen.iter().all(|v| v.get("body").is_none()),
        "$select holds across pages"
    );

    // Nothing changed: an empty round.
    let quiet = g.get(&delta_link).await;
    assert!(quiet.values().is_empty(), "{}", quiet.text());
    let delta_link = quiet.body["@odata.deltaLink"].as_str().unwrap().to_string();

    let read_id = message_id(&g, "inbox", "Invoice 2026-1107").await;
    g.patch(&format!("/me/messages/{read_id}"), json!({"isRead": true}))
        .await
        .ok();
    let gone_id = message_id(&g, "inbox", "Lunch on Friday?").await;
    g.post(
        &format!("/me/messages/{gone_id}/move"),
        json!({"destinationId": "archive"}),
    )
    .await
    .ok();
    let megan = Graph::megan(&m).await;
    megan
        .post("/me/sendMail", json!({"message": {"subject": "Fresh", "toRecipients": [{"emailAddress": {"address": ADELE}}]}}))
        .await;
    let changes = g.get(&delta_link).await;
    let values = changes.values();
    assert_eq!(values.len(), 3, "{}", changes.text());
    let updated = values.iter().find(|v| v["id"] == read_id.as_str()).unwrap();
    assert_eq!(updated["isRead"], true);
    let removed = values.iter().find(|v| v["id"] == gone_id.as_str()).unwrap();
    assert_eq!(removed["@removed"], json!({"reason": "deleted"}));
    assert_eq!(removed["@odata.type"], "#microsoft.graph.message");
    assert!(values.iter().any(|v| v["subject"] == "Fresh"));
    let after = g
        .get(changes.body["@odata.deltaLink"].as_str().unwrap())
        .await;
    assert!(after.values().is_empty());
    g.get("/me/mailFolders/inbox/messages/delta?$deltatoken=bogus")
        .await
        .error(400, "BadRequest");
}

// ----- calendar -----

#[tokio::test]
async fn calendar_view_expands_series_applies_exceptions_and_skips_cancellations() {
    let m = mock().await;
    let g = Graph::adele(&m).await;
    let range = "startDateTime=2026-11-01T00:00:00Z&endDateTime=2026-11-24T00:00:00Z";
    let all = g
        .all(&format!("/me/calendarView?{range}&$top=4"), &[])
        .await;
    let syncs: Vec<&Value> = all
        .iter()
        .filter(|e| e["subject"].as_str().unwrap().starts_with("Team sync"))
        .collect();
    let starts: Vec<(&str, &str, &str)> = syncs
        .iter()
        .map(|e| {
            (
                e["start"]["dateTime"].as_str().unwrap(),
                e["type"].as_str().unwrap(),
                e["subject"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        starts,
        vec![
            ("2026-11-02T08:00:00.0000000", "occurrence", "Team sync"),
            (
                "2026-11-09T09:00:00.0000000",
                "exception",
                "Team sync (moved)"
            ),
            ("2026-11-23T08:00:00.0000000", "occurrence", "Team sync"),
        ],
        "16 November is cancelled"
    );
    let master_id = syncs[0]["seriesMasterId"].as_str().unwrap();
    assert_eq!(syncs[1]["seriesMasterId"], master_id);
    assert_eq!(syncs[0]["start"]["timeZone"], "UTC");
    assert_eq!(syncs[0]["recurrence"], Value::Null);
    let master = g.get(&format!("/me/events/{master_id}")).await;
    assert_eq!(master.ok()["type"], "seriesMaster");
    assert_eq!(master.body["recurrence"]["pattern"]["type"], "weekly");
    assert_eq!(
        master.body["recurrence"]["pattern"]["daysOfWeek"],
        json!(["monday"])
    );
    assert_eq!(master.body["recurrence"]["range"]["type"], "noEnd");
    let occurrence = g
        .get(&format!("/me/events/{}", syncs[0]["id"].as_str().unwrap()))
        .await;
    assert_eq!(occurrence.ok()["type"], "occurrence");

    let singles: Vec<&Value> = all
        .iter()
        .filter(|e| e["type"] == "singleInstance")
        .collect();
    let review = singles
        .iter()
        .find(|e| e["subject"] == "Project Falcon review")
        .unwrap();
    assert_eq!(review["isOnlineMeeting"], true);
    assert!(
        review["onlineMeeting"]["joinUrl"]
            .as_str()
            .unwrap()
            .starts_with("https://teams.microsoft.com/")
    );
    assert_eq!(review["attendees"][0]["type"], "required");
    assert_eq!(review["attendees"][0]["status"]["response"], "accepted");
    assert_eq!(review["attendees"][1]["type"], "optional");
    assert_eq!(review["organizer"]["emailAddress"]["address"], ADELE);
    assert_eq!(review["location"]["displayName"], "Conference Room Rainier");
    let all_day = singles
        .iter()
        .find(|e| e["subject"] == "Contoso all-hands")
        .unwrap();
    assert_eq!(all_day["isAllDay"], true);
    assert_eq!(all_day["start"]["dateTime"], "2026-11-13T00:00:00.0000000");
    assert_eq!(all_day["end"]["dateTime"], "2026-11-14T00:00:00.0000000");

    // Berlin time: 09:00 both before (summer time, 07:00 UTC) and after (08:00 UTC) 25 October.
    let berlin = g
        .get_with(
            "/me/calendarView?startDateTime=2026-10-19T00:00:00Z&endDateTime=2026-11-03T00:00:00Z&$filter=subject eq 'Team sync'&$select=subject,start,end",
            &[("Prefer", "outlook.timezone=\"Europe/Berlin\"")],
        )
        .await;
    assert_eq!(
        berlin.header("preference-applied"),
        Some("outlook.timezone=\"Europe/Berlin\"")
    );
    let times = subjects_of(
        &berlin
            .values()
            .iter()
            .map(|e| e["start"].clone())
            .collect::<Vec<_>>(),
        "dateTime",
    );
    assert_eq!(
        times,
        vec![
            "2026-10-19T09:00:00.0000000",
            "2026-10-26T09:00:00.0000000",
            "2026-11-02T09:00:00.0000000"
        ]
    );
    assert_eq!(berlin.values()[0]["start"]["timeZone"], "Europe/Berlin");
    let pacific = g
        .get_with(
            &format!("/me/calendarView?{range}&$top=1&$select=subject,start,end"),
            &[("Prefer", "outlook.timezone=\"Pacific Standard Time\"")],
        )
        .await;
    let first = &pacific.values()[0];
    assert_eq!(first["subject"], "Team sync");
    assert_eq!(
        first["start"],
        json!({"dateTime": "2026-11-02T00:00:00.0000000", "timeZone": "Pacific Standard Time"})
    );
    let eastern = g
        .get_with(
            &format!("/me/calendarView?{range}&$top=1"),
            &[("Prefer", "outlook.timezone=\"America/New_York\"")],
        )
        .await;
    assert_eq!(
        eastern.values()[0]["start"]["dateTime"],
        "2026-11-02T03:00:00.0000000"
    );

    let missing = g
        .get("/me/calendarView?startDateTime=2026-11-01T00:00:00Z")
        .await;
    missing.error(400, "ErrorInvalidParameter");
    let instances = g
        .get(&format!("/me/events/{master_id}/instances?startDateTime=2026-11-01T00:00:00Z&endDateTime=2026-12-01T00:00:00Z"))
        .await;
    assert_eq!(instances.values().len(), 4, "{}", instances.text());
}

#[tokio::test]
async fn events_are_created_with_invitations_changed_and_deleted() {
    let m = mock().await;
    let g = Graph::adele(&m).await;
    let megan_before = m.delivered(MEGAN).len();
    let created = g
        .post(
            "/me/events",
            json!({
                "subject": "Design review",
                "body": {"contentType": "HTML", "content": "<p>Agenda</p>"},
                "start": {"dateTime": "2026-12-01T10:00:00", "timeZone": "Eastern Standard Time"},
                "end": {"dateTime": "2026-12-01T11:00:00", "timeZone": "Eastern Standard Time"},
                "location": {"displayName": "Room 7"},
                "attendees": [
                    {"emailAddress": {"address": MEGAN, "name": "Megan"}, "type": "required"},
                    {"emailAddress": {"address": "guest@external.example"}, "type": "optional"}
                ],
                "isOnlineMeeting": true,
                "onlineMeetingProvider": "teamsForBusiness",
                "recurrence": {
                    "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"]},
                    "range": {"type": "numbered", "startDate": "2026-12-01", "numberOfOccurrences": 3}
                }
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(
        created.body["start"],
        json!({"dateTime": "2026-12-01T10:00:00.0000000", "timeZone": "Eastern Standard Time"})
    );
    assert_eq!(created.body["type"], "seriesMaster");
    assert_eq!(created.body["isOrganizer"], true);
    assert!(created.body["onlineMeeting"]["joinUrl"].is_string());
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(m.delivered(MEGAN).len(), megan_before + 1, "one invitation");

    let megan = Graph::megan(&m).await;
    let theirs = megan
        .get("/me/calendarView?startDateTime=2026-12-01T00:00:00Z&endDateTime=2026-12-31T00:00:00Z&$filter=subject eq 'Design review'")
        .await;
    let theirs = theirs.values();
    assert_eq!(theirs.len(), 3);
    assert_eq!(theirs[0]["responseStatus"]["response"], "notResponded");
    assert_eq!(theirs[0]["isOrganizer"], false);
    assert_eq!(
        theirs[0]["start"]["dateTime"],
        "2026-12-01T15:00:00.0000000"
    );
    let invitation = megan.get("/me/mailFolders/inbox/messages?$top=1").await;
    assert_eq!(invitation.values()[0]["subject"], "Design review");

    let patched = g
        .patch(
            &format!("/me/events/{id}"),
            json!({"subject": "Design review v2"}),
        )
        .await;
    assert_eq!(patched.ok()["subject"], "Design review v2");
    let view = "/me/calendarView?startDateTime=2026-12-01T00:00:00Z&endDateTime=2026-12-31T00:00:00Z&$filter=startswith(subject,'Design')";
    let occurrences = g.get(view).await.values();
    assert_eq!(occurrences.len(), 3);
    let second = occurrences[1]["id"].as_str().unwrap().to_string();
    let moved = g
        .patch(
            &format!("/me/events/{second}"),
            json!({"start": {"dateTime": "2026-12-08T12:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-12-08T13:00:00", "timeZone": "UTC"}}),
        )
        .await;
    assert_eq!(moved.ok()["type"], "exception");
    let third = occurrences[2]["id"].as_str().unwrap().to_string();
    assert_eq!(
        g.delete(&format!("/me/events/{third}")).await.status,
        StatusCode::NO_CONTENT
    );
    let now: Vec<(String, String)> = g
        .get(view)
        .await
        .values()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["start"]["dateTime"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        now,
        vec![
            (
                "occurrence".to_string(),
                "2026-12-01T15:00:00.0000000".to_string()
            ),
            (
                "exception".to_string(),
                "2026-12-08T12:00:00.0000000".to_string()
            ),
        ]
    );
    g.get(&format!("/me/events/{third}"))
        .await
        .error(404, "ErrorItemNotFound");
    let bad_zone = g
        .post(
            "/me/events",
            json!({"subject": "x", "start": {"dateTime": "2026-12-01T10:00:00", "timeZone": "Mars/Olympus"}, "end": {"dateTime": "2026-12-01T11:00:00", "timeZone": "UTC"}}),
        )
        .await;
    bad_zone.error(400, "TimeZoneNotSupportedException");
    assert_eq!(
        g.delete(&format!("/me/events/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    g.get(&format!("/me/events/{id}"))
        .await
        .error(404, "ErrorItemNotFound");
    assert!(g.get(view).await.values().is_empty());
    let cancelled = megan
        .get("/me/calendarView?startDateTime=2026-12-01T00:00:00Z&endDateTime=2026-12-02T00:00:00Z")
        .await;
    assert_eq!(
        cancelled.values()[0]["isCancelled"],
        true,
        "the organizer's deletion cancels"
    );
}

#[tokio::test]
async fn get_schedule_answers_availability_and_working_hours() {
    let m = mock().await;
    let g = Graph::megan(&m).await;
    let answer = g
        .post(
            "/me/calendar/getSchedule",
            json!({
                "schedules": [ADELE, "ghost@contoso.onmicrosoft.com"],
                "startTime": {"dateTime": "2026-11-04T12:00:00", "timeZone": "UTC"},
                "endTime": {"dateTime": "2026-11-04T15:00:00", "timeZone": "UTC"},
                "availabilityViewInterval": 30
            }),
        )
        .await;
    let values = answer.ok()["value"].as_array().unwrap().clone();
    let adele = &values[0];
    assert_eq!(adele["scheduleId"], ADELE);
    // Project Falcon review, 14:00-15:00 Berlin = 13:00-14:00 UTC.
    assert_eq!(adele["availabilityView"], "002200");
    assert_eq!(adele["scheduleItems"][0]["status"], "busy");
    assert_eq!(
        adele["scheduleItems"][0]["subject"],
        "Project Falcon review"
    );
    assert_eq!(
        adele["scheduleItems"][0]["start"]["dateTime"],
        "2026-11-04T13:00:00.0000000"
    );
    assert_eq!(
        adele["workingHours"]["timeZone"]["name"],
        "W. Europe Standard Time"
    );
    assert_eq!(adele["workingHours"]["startTime"], "08:00:00.0000000");
    let ghost = &values[1];
    assert_eq!(ghost["error"]["responseCode"], "ErrorMailRecipientNotFound");

    // The private dentist appointment shows as out of office without its subject.
    let oof = g
        .post(
            "/me/calendar/getSchedule",
            json!({
                "schedules": [ADELE],
                "startTime": {"dateTime": "2026-11-05T08:00:00", "timeZone": "W. Europe Standard Time"},
                "endTime": {"dateTime": "2026-11-05T10:00:00", "timeZone": "W. Europe Standard Time"},
                "availabilityViewInterval": 60
            }),
        )
        .await;
    let item = &oof.ok()["value"][0];
    assert_eq!(item["availabilityView"], "30");
    assert_eq!(item["scheduleItems"][0]["isPrivate"], true);
    assert!(item["scheduleItems"][0].get("subject").is_none());
    let bad = g
        .post("/me/calendar/getSchedule", json!({"schedules": [ADELE]}))
        .await;
    bad.error(400, "ErrorInvalidParameter");
}

// ----- contacts -----

#[tokio::test]
async fn contacts_are_listed_filtered_created_changed_and_deleted() {
    let m = mock().await;
    let g = Graph::adele(&m).await;
    let list = g.get("/me/contacts?$top=2&$orderby=displayName").await;
    assert_eq!(list.values().len(), 2);
    assert_eq!(list.values()[0]["displayName"], "Alex Wilber");
    assert!(list.body["@odata.nextLink"].is_string());
    let found = g
        .get("/me/contacts?$filter=emailAddresses/any(a:a/address eq 'patti@northwind.example')")
        .await;
    assert_eq!(
        subjects_of(&found.values(), "displayName"),
        vec!["Patti Fernandez"]
    );

    let created = g
        .post(
            "/me/contacts",
            json!({"givenName": "Nestor", "surname": "Wilke", "emailAddresses": [{"address": "nestor@contoso.com", "name": "Nestor Wilke"}],
                   "businessPhones": ["+1 206 555 0199"], "companyName": "Contoso", "jobTitle": "Director"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(created.body["displayName"], "Nestor Wilke");
    let id = created.body["id"].as_str().unwrap().to_string();
    let patched = g
        .patch(
            &format!("/me/contacts/{id}"),
            json!({"mobilePhone": "+1 425 555 0111", "jobTitle": "VP"}),
        )
        .await;
    assert_eq!(patched.ok()["jobTitle"], "VP");
    assert_eq!(
        g.get(&format!("/me/contacts/{id}?$select=mobilePhone"))
            .await
            .ok()["mobilePhone"],
        "+1 425 555 0111"
    );
    assert_eq!(
        g.delete(&format!("/me/contacts/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    g.get(&format!("/me/contacts/{id}"))
        .await
        .error(404, "ErrorItemNotFound");
    assert_eq!(g.all("/me/contacts", &[]).await.len(), 4);
    g.post("/me/contacts", json!({"nickname": "x"}))
        .await
        .error(400, "RequestBodyRead");
}

fn subjects_of(items: &[Value], key: &str) -> Vec<String> {
    items
        .iter()
        .map(|v| v[key].as_str().unwrap_or_default().to_string())
        .collect()
}

// ----- $batch -----

#[tokio::test]
async fn batch_runs_each_request_and_answers_out_of_order() {
    let m = mock().await;
    let g = Graph::adele(&m).await;
    let before = m.graph_requests();
    let answer = g
        .post(
            "/$batch",
            json!({"requests": [
                {"id": "1", "method": "GET", "url": "/me/mailFolders/inbox?$select=displayName"},
                {"id": "2", "method": "GET", "url": "/users/nobody@contoso.onmicrosoft.com/messages"},
                {"id": "3", "method": "PATCH", "url": "/me/contacts/AAMkAAAAAAAAAAAAAAAAAAAAAAAA", "body": {"jobTitle": "x"}},
                {"id": "4", "method": "POST", "url": "/me/sendMail", "headers": {"Content-Type": "application/json"},
                 "body": {"message": {"subject": "From a batch", "toRecipients": [{"emailAddress": {"address": MEGAN}}]}}},
                {"id": "5", "method": "GET", "url": "/me", "dependsOn": ["2"]}
            ]}),
        )
        .await;
    let responses = answer.ok()["responses"].as_array().unwrap().clone();
    let ids: Vec<&str> = responses
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_ne!(
        ids,
        vec!["1", "2", "3", "4", "5"],
        "clients must match by id"
    );
    let by_id = |id: &str| responses.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(by_id("1")["status"], 200);
    assert_eq!(by_id("1")["body"]["displayName"], "Inbox");
    assert!(
        by_id("1")["headers"]["Content-Type"]
            .as_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(by_id("2")["status"], 404);
    assert_eq!(by_id("2")["body"]["error"]["code"], "ErrorInvalidUser");
    assert_eq!(by_id("3")["status"], 400, "a body without Content-Type");
    assert_eq!(by_id("4")["status"], 202);
    assert_eq!(by_id("5")["status"], 424);
    assert_eq!(
        m.delivered(MEGAN)
            .iter()
            .filter(|(_, s)| s == "From a batch")
            .count(),
        1
    );
    assert_eq!(
        m.graph_requests() - before,
        1,
        "a batch is one HTTP request"
    );

    let too_many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/me"}))
        .collect();
    let refused = g.post("/$batch", json!({"requests": too_many})).await;
    let message = refused.error(400, "BadRequest").to_string();
    assert_eq!(message, "Number of batch requests exceeded. Maximum is 20.");
    g.post("/$batch", json!({"requests": [{"id": "1", "url": "/me"}]}))
        .await
        .error(400, "BadRequest");
    let no_token = http()
        .post(format!("{}/$batch", m.graph_url()))
        .json(&json!({"requests": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 401);
}

// ----- permissions -----

/// The contoso seed with the CLI app's delegated Graph permissions replaced.
fn seed_with_delegated(permissions: &[&str]) -> Seed {
    let mut seed = Seed::contoso();
    let app = seed.tenants[0]
        .apps
        .iter_mut()
        .find(|a| a.client_id == PUBLIC_APP)
        .unwrap();
    app.delegated_permissions.insert(
        GRAPH.into(),
        permissions.iter().map(|p| (*p).to_string()).collect(),
    );
    seed
}

#[tokio::test]
async fn missing_permissions_are_refused_with_graphs_403() {
    let m = MockMicrosoft::start(seed_with_delegated(&["User.Read"]))
        .await
        .unwrap();
    let g = Graph::adele(&m).await;
    assert_eq!(g.get("/me").await.ok()["userPrincipalName"], ADELE);
    let denied = g
        .get_with(
            "/me/messages",
            &[("client-request-id", "8a3f8c9e-0000-4000-8000-00000000beef")],
        )
        .await;
    let message = denied.error(403, "ErrorAccessDenied").to_string();
    assert_eq!(
        message,
        "Access is denied. Check credentials and try again."
    );
    assert_eq!(
        denied.body["error"]["innerError"]["client-request-id"],
        "8a3f8c9e-0000-4000-8000-00000000beef"
    );
    assert_eq!(
        denied.header("client-request-id"),
        Some("8a3f8c9e-0000-4000-8000-00000000beef")
    );
    g.get("/me/calendarView?startDateTime=2026-11-01&endDateTime=2026-11-02")
        .await
        .error(403, "ErrorAccessDenied");
    g.post("/me/contacts", json!({"givenName": "x"}))
        .await
        .error(403, "ErrorAccessDenied");

    // Read-only mail: reading works, changing and sending do not.
    let m = MockMicrosoft::start(seed_with_delegated(&["Mail.Read", "User.Read"]))
        .await
        .unwrap();
    let g = Graph::adele(&m).await;
    g.get("/me/messages?$top=1").await.ok();
    g.post("/me/messages", json!({"subject": "x"}))
        .await
        .error(403, "ErrorAccessDenied");
    g.post("/me/sendMail", json!({"message": {"subject": "x"}}))
        .await
        .error(403, "ErrorAccessDenied");
}

#[tokio::test]
async fn shared_mailboxes_need_shared_scopes_and_mailbox_rights() {
    let m = mock().await;
    let adele = Graph::adele(&m).await;
    let megan = Graph::megan(&m).await;
    let inbox = format!("/users/{SALES}/mailFolders/inbox/messages");
    assert_eq!(adele.get(&inbox).await.values().len(), 3, "FullAccess");
    megan.get(&inbox).await.error(403, "ErrorAccessDenied");
    megan
        .get(&format!("/users/{ADELE}/messages"))
        .await
        .error(403, "ErrorAccessDenied");

    let sent = adele
        .post(
            &format!("/users/{SALES}/sendMail"),
            json!({"message": {"subject": "From Sales", "toRecipients": [{"emailAddress": {"address": MEGAN}}]}}),
        )
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.text());
    let got = megan.get("/me/mailFolders/inbox/messages?$top=1").await;
    assert_eq!(got.values()[0]["from"]["emailAddress"]["address"], SALES);
    assert_eq!(got.values()[0]["from"]["emailAddress"]["name"], SALES_NAME);
    let as_sales = json!({"message": {"subject": "Pretending", "from": {"emailAddress": {"address": SALES}},
                                     "toRecipients": [{"emailAddress": {"address": ADELE}}]}});
    let message = megan
        .post("/me/sendMail", as_sales.clone())
        .await
        .error(403, "ErrorSendAsDenied")
        .to_string();
    assert!(
        message.contains("does not have the right to send mail on behalf"),
        "{message}"
    );
    assert_eq!(
        adele.post("/me/sendMail", as_sales).await.status,
        StatusCode::ACCEPTED,
        "Adele has SendAs"
    );
    megan
        .post(&format!("/users/{SALES}/sendMail"), json!({"message": {"subject": "x", "toRecipients": [{"emailAddress": {"address": ADELE}}]}}))
        .await
        .error(403, "ErrorAccessDenied");

    // Without the .Shared permissions even Adele is refused.
    let m = MockMicrosoft::start(seed_with_delegated(&[
        "Mail.ReadWrite",
        "Mail.Send",
        "User.Read",
    ]))
    .await
    .unwrap();
    let adele = Graph::adele(&m).await;
    adele.get(&inbox).await.error(403, "ErrorAccessDenied");
    adele
        .get(&format!("/users/{ADELE}/messages?$top=1"))
        .await
        .ok();
}

#[tokio::test]
async fn application_access_policies_restrict_app_only_requests() {
    let m = mock().await;
    let app = Graph::app(&m).await;
    app.get(&format!("/users/{MEGAN}/messages?$top=1"))
        .await
        .ok();
    m.set_mailbox_scope(DAEMON_APP, Some(vec![ADELE.to_uppercase()]));
    app.get(&format!("/users/{ADELE}/messages?$top=1"))
        .await
        .ok();
    let message = app
        .get(&format!("/users/{MEGAN}/messages?$top=1"))
        .await
        .error(403, "ErrorAccessDenied")
        .to_string();
    assert_eq!(
        message,
        "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings."
    );
    let from_megan = json!({"message": {"subject": "x", "from": {"emailAddress": {"address": MEGAN}}, "toRecipients": [{"emailAddress": {"address": ADELE}}]}});
    app.post(&format!("/users/{ADELE}/sendMail"), from_megan)
        .await
        .error(403, "ErrorAccessDenied");
    m.set_mailbox_scope(DAEMON_APP, None);
    app.get(&format!("/users/{MEGAN}/messages?$top=1"))
        .await
        .ok();

    // The same policy from the seed.
    let mut seed = Seed::contoso();
    seed.tenants[0]
        .apps
        .iter_mut()
        .find(|a| a.client_id == DAEMON_APP)
        .unwrap()
        .mailbox_scope = Some(vec![SALES.into()]);
    let m = MockMicrosoft::start(seed).await.unwrap();
    let app = Graph::app(&m).await;
    app.get(&format!("/users/{SALES}/contacts")).await.ok();
    app.get(&format!("/users/{ADELE}/contacts"))
        .await
        .error(403, "ErrorAccessDenied");

    m.revoke_consent(DAEMON_APP);
    let without_roles = Graph::app(&m).await;
    without_roles
        .get(&format!("/users/{SALES}/contacts"))
        .await
        .error(403, "ErrorAccessDenied");
}

#[tokio::test]
async fn invalid_tokens_are_refused_with_401() {
    let m = mock().await;
    let g = Graph::adele(&m).await;
    g.get("/me/messages?$top=1").await.ok();
    let none = http()
        .get(format!("{}/me", m.graph_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    assert!(none.headers().get("www-authenticate").is_some());
    let body: Value = none.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");

    let mut tampered = g.token.clone();
    tampered.pop();
    tampered.push(if g.token.ends_with('A') { 'B' } else { 'A' });
    Graph::new(&m, tampered)
        .get("/me")
        .await
        .error(401, "InvalidAuthenticationToken");
    Graph::new(&m, "not-a-jwt".into())
        .get("/me")
        .await
        .error(401, "InvalidAuthenticationToken");

    let outlook = token_with(
        &m,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DAEMON_APP),
            ("client_secret", DAEMON_APP_SECRET),
            ("scope", "https://outlook.office365.com/.default"),
        ],
    )
    .await;
    let message = Graph::new(&m, outlook)
        .get(&format!("/users/{ADELE}/messages"))
        .await
        .error(401, "InvalidAuthenticationToken")
        .to_string();
    assert_eq!(
        message,
        "Access token validation failure. Invalid audience."
    );

    m.advance_clock(Duration::from_secs(2 * 3600));
    let message = g
        .get("/me/messages?$top=1")
        .await
        .error(401, "InvalidAuthenticationToken")
        .to_string();
    assert_eq!(message, "Access token has expired or is not yet valid.");
    let fresh = Graph::adele(&m).await;
    fresh.get("/me/messages?$top=1").await.ok();
}

// ----- throttling, faults -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifth_concurrent_request_is_throttled_with_retry_after() {
    let m = mock().await;
    m.set_graph_throttling(Some(ThrottlePolicy {
        concurrent: 4,
        requests: 1000,
        window: Duration::from_secs(60),
    }));
    m.set_graph_latency(Duration::from_millis(800));
    let g = Graph::adele(&m).await;
    let url = format!("{}/me/mailFolders/inbox?$select=displayName", m.graph_url());
    let held: Vec<_> = (0..4)
        .map(|_| {
            let request = g.client.get(&url).bearer_auth(&g.token);
            tokio::spawn(async move { request.send().await.map(|r| r.status()) })
        })
        .collect();
    // Wait (without sleeping) until the four are in progress at the mock.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while m.max_concurrent_seen(ADELE) < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the four requests never arrived together"
        );
        tokio::task::yield_now().await;
    }
    let fifth = g.get("/me/mailFolders/inbox?$select=displayName").await;
    fifth.error(429, "ApplicationThrottled");
    assert_eq!(fifth.header("retry-after"), Some("1"));
    assert_eq!(
        fifth.body["error"]["message"],
        "Application is over its MailboxConcurrency limit."
    );
    for request in held {
        assert_eq!(request.await.unwrap().unwrap(), StatusCode::OK);
    }
    assert_eq!(
        m.max_concurrent_seen(ADELE),
        5,
        "the client had 5 in flight"
    );
    assert_eq!(m.max_concurrent_seen(MEGAN), 0);
    // Profiles are not Outlook resources and are not throttled.
    m.set_graph_latency(Duration::ZERO);
    g.get("/me").await.ok();
    // One at a time never exceeds 1.
    let sales = format!("/users/{SALES}/mailFolders/inbox");
    for _ in 0..3 {
        g.get(&sales).await.ok();
    }
    assert_eq!(m.max_concurrent_seen(SALES), 1);
}

#[tokio::test]
async fn the_request_budget_is_enforced_per_mailbox_with_retry_after() {
    let m = mock().await;
    m.set_graph_throttling(Some(ThrottlePolicy {
        concurrent: 4,
        requests: 3,
        window: Duration::from_secs(60),
    }));
    let g = Graph::adele(&m).await;
    for _ in 0..3 {
        g.get("/me/mailFolders/inbox").await.ok();
    }
    let over = g.get("/me/mailFolders/inbox").await;
    over.error(429, "ApplicationThrottled");
    assert_eq!(
        over.body["error"]["message"],
        "Application is over its ResourceUnitLimit."
    );
    let retry: u64 = over.header("retry-after").unwrap().parse().unwrap();
    assert!((50..=60).contains(&retry), "{retry}");
    // Another mailbox has its own budget; batch items count one by one.
    let sales = format!("/users/{SALES}/mailFolders/inbox?$select=displayName");
    let batch = g
        .post(
            "/$batch",
            json!({"requests": [
                {"id": "a", "method": "GET", "url": sales},
                {"id": "b", "method": "GET", "url": sales},
                {"id": "c", "method": "GET", "url": sales},
                {"id": "d", "method": "GET", "url": sales}
            ]}),
        )
        .await;
    let responses = batch.ok()["responses"].as_array().unwrap().clone();
    let d = responses.iter().find(|r| r["id"] == "d").unwrap();
    assert_eq!(d["status"], 429);
    let retry: u64 = d["headers"]["Retry-After"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_eq!(responses.iter().filter(|r| r["status"] == 200).count(), 3);
    assert_eq!(
        m.max_concurrent_seen(SALES),
        1,
        "batch items run one at a time"
    );
    m.set_graph_throttling(None);
    g.get("/me/mailFolders/inbox").await.ok();
}

#[tokio::test]
async fn injected_faults_fail_the_next_requests() {
    let m = mock().await;
    let g = Graph::adele(&m).await;
    m.fail_graph_requests(
        Fault::TooManyRequests {
            retry_after_secs: 7,
        },
        1,
    );
    let throttled = g.get("/me/messages?$top=1").await;
    throttled.error(429, "ApplicationThrottled");
    assert_eq!(throttled.header("retry-after"), Some("7"));
    m.fail_graph_requests(Fault::ServerError { status: 503 }, 2);
    g.get("/me/messages?$top=1")
        .await
        .error(503, "ServiceUnavailable");
    g.get("/me").await.error(503, "ServiceUnavailable");
    g.get("/me/messages?$top=1").await.ok();
    let sends = m.submitted(ADELE).len();
    m.fail_graph_requests(Fault::ServerError { status: 500 }, 1);
    let failed = g
        .post("/me/sendMail", json!({"message": {"subject": "x", "toRecipients": [{"emailAddress": {"address": MEGAN}}]}}))
        .await;
    failed.error(500, "UnknownError");
    assert_eq!(
        m.submitted(ADELE).len(),
        sends,
        "a faulted send sends nothing"
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let m = mock().await;
    let g = Graph::adele(&m).await;
    let big = "x".repeat(4 * 1024 * 1024 + 10);
    let answer = g
        .post(
            "/me/messages",
            json!({"subject": "big", "body": {"content": big}}),
        )
        .await;
    assert_eq!(answer.status, 413, "{}", answer.text());
    assert_eq!(answer.body["error"]["code"], "RequestEntityTooLarge");
}

// ----- fixtures -----

#[tokio::test]
async fn fixtures_are_deterministic_and_load_into_a_mailbox() {
    let spec = FixtureSpec {
        messages: 2_000,
        attachment_every: 10,
        contacts: 50,
        ..FixtureSpec::new(ADELE)
    };
    let json = serde_json::to_string(&generate(spec.clone())).unwrap();
    assert_eq!(
        json,
        serde_json::to_string(&generate(spec.clone())).unwrap()
    );
    assert_ne!(
        json,
        serde_json::to_string(&generate(FixtureSpec {
            seed: 9,
            ..spec.clone()
        }))
        .unwrap()
    );
    let content = generate(spec);
    assert_eq!(content.messages.len(), 2_000);
    assert_eq!(
        content
            .messages
            .iter()
            .filter(|m| !m.attachments.is_empty())
            .count(),
        200
    );
    assert!(content.events.iter().any(|e| e.recurrence.is_some()
        && !e.exceptions.is_empty()
        && !e.cancelled_occurrences.is_empty()));

    let m = mock().await;
    m.load_mailbox(content).unwrap();
    let g = Graph::adele(&m).await;
    let total = g.get("/me/messages?$count=true&$top=1&$select=id").await;
    assert_eq!(total.ok()["@odata.count"], 2_000);
    let children = g.get("/me/mailFolders/inbox/childFolders").await;
    assert_eq!(
        subjects_of(&children.values(), "displayName"),
        vec!["Newsletters", "Projects", "Receipts"]
    );
    let page = g
        .get("/me/mailFolders/inbox/messages?$top=1000&$select=subject")
        .await;
    assert_eq!(page.values().len(), 1000.min(page.values().len()));
    let year = g
        .get("/me/calendarView?startDateTime=2026-01-01T00:00:00Z&endDateTime=2026-02-01T00:00:00Z&$count=true&$top=1")
        .await;
    assert!(year.ok()["@odata.count"].as_u64().unwrap() > 10);
    let content = m.mailbox_content(ADELE).unwrap();
    assert_eq!(content.messages.len(), 2_000);
    assert!(
        m.load_mailbox(exgate_testkit::graph::MailboxContent::empty(
            "nobody@contoso.onmicrosoft.com"
        ))
        .is_err()
    );
}

#[test]
fn twenty_thousand_messages_generate_and_load() {
    let started = std::time::Instant::now();
    let content = generate(FixtureSpec::new(ADELE));
    assert_eq!(content.messages.len(), 20_000);
    let json = serde_json::to_vec(&content).unwrap();
    assert!(json.len() > 10_000_000, "{} bytes", json.len());
    let back: exgate_testkit::graph::MailboxContent = serde_json::from_slice(&json).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let m = mock().await;
        m.load_mailbox(back).unwrap();
        assert_eq!(m.mailbox_content(ADELE).unwrap().messages.len(), 20_000);
    });
    // Generous for unoptimized builds; release builds take well under a second.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn odd_requests_get_graph_errors_and_never_break_the_server() {
    let m = mock().await;
    let g = Graph::adele(&m).await;
    let long_id = "A".repeat(5000);
    let deep = format!("{}isRead eq true{}", "(".repeat(60), ")".repeat(60));
    let gets = [
        "/me/messages/%ZZ".to_string(),
        "/me/mailFolders('inbox')/messages?$top=1".to_string(),
        format!("/me/messages/{long_id}"),
        "/users/%00/messages".to_string(),
        "/users".to_string(),
        "/me/events/AAMkAAUBAgMEBQYAAAAAAAAAAX__________".to_string(),
        "/me/calendarView?startDateTime=1601-01-01T00:00:00Z&endDateTime=9999-12-31T23:59:59Z&$top=1".to_string(),
        "/me/calendarView?startDateTime=0001-01-01&endDateTime=9999-12-31".to_string(),
        "/me/messages?$top=-1".to_string(),
        "/me/messages?$skip=18446744073709551615".to_string(),
        format!("/me/messages?$filter={deep}"),
        "/me/contacts?$filter=emailAddresses/any(".to_string(),
        "/me/messages?$orderby=subject sideways".to_string(),
        "/me/messages?$select=,,,&$top=1".to_string(),
        "/me/messages?$skiptoken=%25%25%25".to_string(),
        "/me/messages?$expand=everything".to_string(),
        "/me/messages?$format=xml".to_string(),
        "/me/mailFolders/inbox/messages/delta?$deltatoken=ZGVsdGE6OTk5OTk5OTk5LjE".to_string(),
        "/me/mailFolders/inbox/messages/delta?$filter=isRead eq true".to_string(),
        "/me/messages/x/attachments/y/$value".to_string(),
        "/me/contacts/%F0%9F%A6%80".to_string(),
    ];
    for path in &gets {
        let answer = g.get(path).await;
        assert!(
            answer.status.is_success() || answer.status.is_client_error(),
            "{path}: {} {}",
            answer.status,
            answer.text()
        );
        if !answer.status.is_success() {
            assert!(
                answer.body["error"]["code"].is_string(),
                "{path}: {}",
                answer.text()
            );
        }
    }
    let posts = [
        (
            "/me/events",
            json!({"subject": "x", "start": {"dateTime": "2026-01-01T00:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-01-01T01:00:00", "timeZone": "UTC"},
            "recurrence": {"pattern": {"type": "daily", "interval": 100000}, "range": {"type": "noEnd", "startDate": "2026-01-01"}}}),
        ),
        (
            "/me/events",
            json!({"subject": "x", "start": {"dateTime": "4500-12-31T23:00:00", "timeZone": "Pacific Standard Time"},
            "end": {"dateTime": "4500-12-31T23:30:00", "timeZone": "Pacific Standard Time"}}),
        ),
        (
            "/me/events",
            json!({"subject": "late", "start": "tomorrow"}),
        ),
        (
            "/me/calendar/getSchedule",
            json!({"schedules": [ADELE], "startTime": {"dateTime": "2026-01-01T00:00:00", "timeZone": "UTC"},
            "endTime": {"dateTime": "2026-01-02T00:00:00", "timeZone": "UTC"}, "availabilityViewInterval": "abc"}),
        ),
        ("/me/contacts", json!([1, 2, 3])),
        ("/me/sendMail", json!({"message": 5})),
        (
            "/me/sendMail",
            json!({"message": {"toRecipients": [{"emailAddress": {"address": "not an address"}}]}}),
        ),
        ("/me/messages/x/move", json!({"destinationId": 7})),
        (
            "/$batch",
            json!({"requests": [{"id": "1", "method": "TRACE", "url": "/me"}]}),
        ),
        (
            "/$batch",
            json!({"requests": [{"id": "1", "method": "GET", "url": "/$batch"}]}),
        ),
        (
            "/$batch",
            json!({"requests": [{"id": "1", "method": "GET", "url": "https://evil.example/me"}]}),
        ),
    ];
    for (path, body) in posts {
        let answer = g.post(path, body.clone()).await;
        assert!(
            answer.status.is_success() || answer.status.is_client_error(),
            "{path} {body}: {} {}",
            answer.status,
            answer.text()
        );
    }
    // Still serving.
    assert_eq!(
        g.get("/me/mailFolders/inbox").await.ok()["displayName"],
        "Inbox"
    );
    let late = g
        .get("/me/calendarView?startDateTime=4500-12-31T00:00:00Z&endDateTime=4501-01-02T00:00:00Z")
        .await;
    late.ok();
}

#[tokio::test]
async fn search_expand_and_the_html_preference() {
    let m = mock().await;
    let g = Graph::adele(&m).await;
    let found = g
        .get("/me/messages?$search=\"invoice\"&$select=subject")
        .await;
    assert_eq!(subjects(&found.values()), vec!["Invoice 2026-1107"]);
    let from = g
        .get("/me/messages?$search=\"from:lee@contoso.onmicrosoft.com\"&$select=subject")
        .await;
    assert_eq!(from.values().len(), 2);
    let id = message_id(&g, "inbox", "Contract draft for review").await;
    let expanded = g
        .get(&format!(
            "/me/messages/{id}?$expand=attachments&$select=subject"
        ))
        .await;
    let attachments = expanded.ok()["attachments"].as_array().unwrap().clone();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0]["name"], "contract.docx");
    assert_eq!(
        STANDARD
            .decode(attachments[0]["contentBytes"].as_str().unwrap())
            .unwrap(),
        b"PK\x03\x04 contract draft v3"
    );
    let html = g
        .get_with(
            &format!("/me/messages/{id}?$select=body"),
            &[("Prefer", "outlook.body-content-type=\"html\"")],
        )
        .await;
    assert_eq!(html.ok()["body"]["contentType"], "html");
    assert!(
        html.body["body"]["content"]
            .as_str()
            .unwrap()
            .contains("<body>")
    );
    assert_eq!(
        html.header("preference-applied"),
        Some("outlook.body-content-type=\"html\"")
    );
    g.get("/me/messages?$expand=mentions")
        .await
        .error(400, "RequestBroker--ParseUri");
}
