//! Large items over the wire: Graph's 4 MB request limit, attachment upload sessions, large
//! messages and attachments seeded cheaply and served whole; internetMessageId on drafts.

mod support;

use exgate_testkit::entra::seed::*;
use exgate_testkit::graph::{Address, AttachmentContent, MessageContent};
use exgate_testkit::{MockMicrosoft, Seed};
use reqwest::Method;
use serde_json::{Value, json};
use support::{Graph, http};

const MIB: usize = 1024 * 1024;

fn adele(path: &str) -> String {
    format!("/users/{ADELE}{path}")
}

fn filter_by_id(path: &str, id: &str) -> String {
    let quoted = id.replace('\'', "''");
    format!(
        "{path}?$filter={}",
        url_encode(&format!("internetMessageId eq '{quoted}'"))
    )
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'\'' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn count(g: &Graph, path: &str) -> usize {
    g.get(path).await.ok()["value"].as_array().unwrap().len()
}

#[tokio::test]
async fn internet_message_id_is_settable_on_drafts_filterable_and_kept_when_sent() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let g = Graph::app(&m).await;
    let me = Graph::adele(&m).await;
    let created = g
        .post(
            &adele("/messages"),
            &json!({"subject": "idempotent", "internetMessageId": "<abc-1@exgate.test>",
                    "toRecipients": [{"emailAddress": {"address": MEGAN}}]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.body["internetMessageId"], "<abc-1@exgate.test>");
    let id = created.body["id"].as_str().unwrap().to_string();
    let mine = me
        .post(
            "/me/messages",
            &json!({"subject": "mine", "internetMessageId": "<o'brien@exgate.test>"}),
        )
        .await;
    assert_eq!(mine.body["internetMessageId"], "<o'brien@exgate.test>");
    assert_eq!(
        count(&me, &filter_by_id("/me/messages", "<o'brien@exgate.test>")).await,
        1
    );

    for path in [
        adele("/messages"),
        adele("/mailFolders/drafts/messages"),
        adele("/mailFolders('Drafts')/messages"),
    ] {
        assert_eq!(
            count(&g, &filter_by_id(&path, "<abc-1@exgate.test>")).await,
            1,
            "{path}"
        );
        assert_eq!(
            count(&g, &filter_by_id(&path, "<nope@exgate.test>")).await,
            0,
            "{path}"
        );
    }
    assert_eq!(
        count(
            &g,
            &filter_by_id(&adele("/mailFolders/inbox/messages"), "<abc-1@exgate.test>")
        )
        .await,
        0
    );

    // Updatable while a draft.
    let patched = g
        .send(
            Method::PATCH,
            &adele(&format!("/messages/{id}")),
            Some(&json!({"internetMessageId": "<abc-2@exgate.test>"})),
        )
        .await
        .unwrap();
    assert_eq!(patched.body["internetMessageId"], "<abc-2@exgate.test>");
    assert_eq!(
        count(
            &g,
            &filter_by_id(&adele("/messages"), "<abc-1@exgate.test>")
        )
        .await,
        0
    );

    let sent = g
        .post(&adele(&format!("/messages/{id}/send")), &json!({}))
        .await;
    assert_eq!(sent.status, 202, "{}", sent.text());
    let in_sent = g
        .get(&filter_by_id(
            &adele("/mailFolders/sentitems/messages"),
            "<abc-2@exgate.test>",
        ))
        .await;
    let sent_items = in_sent.ok()["value"].as_array().unwrap().clone();
    assert_eq!(sent_items.len(), 1);
    assert_eq!(sent_items[0]["isDraft"], false);
    assert_eq!(
        m.submitted(ADELE),
        vec![("<abc-2@exgate.test>".to_string(), "idempotent".to_string())]
    );
    assert_eq!(m.delivered(MEGAN)[0].0, "<abc-2@exgate.test>");
    let sent_id = sent_items[0]["id"].as_str().unwrap();
    let refused = g
        .send(
            Method::PATCH,
            &adele(&format!("/messages/{sent_id}")),
            Some(&json!({"internetMessageId": "<abc-3@exgate.test>"})),
        )
        .await
        .unwrap();
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.body["error"]["code"],
        "ErrorInvalidPropertyUpdateSentMessage"
    );
    let bad = g
        .post(
            &adele("/messages"),
            &json!({"internetMessageId": "a\r\nBcc: x"}),
        )
        .await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn bodies_up_to_4_mb_are_read_and_larger_ones_refused_with_413() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let g = Graph::app(&m).await;
    let draft = g
        .post(&adele("/messages"), &json!({"subject": "big"}))
        .await;
    let id = draft.body["id"].as_str().unwrap().to_string();
    use base64::Engine as _;
    let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![7u8; n]);
    // 2.9 MB of bytes is a 3.9 MB request: above axum's default 2 MB limit, below Graph's.
    let body = json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": "a.bin",
                      "contentBytes": b64(2_900_000)});
    assert!(body.to_string().len() > 3_800_000 && body.to_string().len() < 4 * MIB);
    let ok = g
        .post(&adele(&format!("/messages/{id}/attachments")), &body)
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text());
    assert_eq!(ok.body["size"], 2_900_000);

    let body = json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": "b.bin",
                      "contentBytes": b64(3_200_000)});
    let refused = g
        .post(&adele(&format!("/messages/{id}/attachments")), &body)
        .await;
    assert_eq!(refused.status, 413, "{}", refused.text());
    assert_eq!(refused.body["error"]["code"], "RequestEntityTooLarge");
    let attachments = g.get(&adele(&format!("/messages/{id}/attachments"))).await;
    assert_eq!(attachments.ok()["value"].as_array().unwrap().len(), 1);
}

/// A `PUT` to an upload URL, without `Authorization`.
async fn put(url: &str, range: &str, bytes: Vec<u8>) -> (u16, Value, reqwest::header::HeaderMap) {
    let response = http()
        .put(url)
        .header("Content-Range", range)
        .header("Content-Type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, headers)
}

#[tokio::test]
async fn upload_sessions_attach_large_files_in_ordered_ranges() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let g = Graph::app(&m).await;
    let draft = g
        .post(
            &adele("/messages"),
            &json!({"subject": "report", "toRecipients": [{"emailAddress": {"address": MEGAN}}]}),
        )
        .await;
    let id = draft.body["id"].as_str().unwrap().to_string();
    let create = adele(&format!("/messages/{id}/attachments/createUploadSession"));
    let session = |size: usize| {
        json!({"AttachmentItem": {"attachmentType": "file", "name": "report.pdf",
                                  "size": size, "contentType": "application/pdf"}})
    };
    let small = g.post(&create, &session(MIB)).await;
    assert_eq!(small.status, 400);
    assert_eq!(
        small.body["error"]["code"],
        "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize"
    );
    assert_eq!(g.post(&create, &session(151 * MIB)).await.status, 400);

    let size = 9 * MIB + 123;
    let file: Vec<u8> = (0..size).map(|i| u8::try_from(i % 251).unwrap()).collect();
    let created = g.post(&create, &session(size)).await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.body["nextExpectedRanges"], json!(["0-"]));
    assert!(created.body["expirationDateTime"].is_string());
    assert!(
        created.body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#microsoft.graph.uploadSession")
    );
    let url = created.body["uploadUrl"].as_str().unwrap().to_string();
    assert!(
        url.starts_with(&format!("{}/api/v2.0/Users('", m.base_url())),
        "{url}"
    );
    assert!(
        url.contains("/AttachmentSessions('") && url.contains("?authtoken="),
        "{url}"
    );

    // The pre-authenticated URL refuses a bearer token, as Exchange does.
    let with_token = http()
        .put(&url)
        .bearer_auth(&g.token)
        .header("Content-Range", format!("bytes 0-9/{size}"))
        .body(vec![0u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(with_token.status(), 401);
    let body: Value = with_token.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAudience");
    // A wrong authtoken.
    let forged = url.replace("authtoken=", "authtoken=x");
    assert_eq!(
        put(&forged, &format!("bytes 0-9/{size}"), vec![0; 10])
            .await
            .0,
        401
    );

    let chunk = 4 * MIB;
    // Not the expected range; more than 4 MB in one PUT; a range that does not match the body.
    assert_eq!(
        put(&url, &format!("bytes 10-19/{size}"), vec![0; 10])
            .await
            .0,
        416
    );
    let too_big = put(
        &url,
        &format!("bytes 0-{}/{size}", chunk),
        file[..=chunk].to_vec(),
    )
    .await;
    assert_eq!(too_big.0, 413);
    assert_eq!(
        put(&url, &format!("bytes 0-99/{size}"), vec![0; 10])
            .await
            .0,
        400
    );
    assert_eq!(
        put(&url, &format!("bytes 0-9/{}", size + 1), vec![0; 10])
            .await
            .0,
        400
    );

    let (status, body, _) = put(
        &url,
        &format!("bytes 0-{}/{size}", chunk - 1),
        file[..chunk].to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["nextExpectedRanges"], json!([chunk.to_string()]));
    // Sending the same range again is refused: ranges go in order.
    assert_eq!(
        put(
            &url,
            &format!("bytes 0-{}/{size}", chunk - 1),
            file[..chunk].to_vec()
        )
        .await
        .0,
        416
    );
    let (status, body, _) = put(
        &url,
        &format!("bytes {chunk}-{}/{size}", 2 * chunk - 1),
        file[chunk..2 * chunk].to_vec(),
    )
    .await;
    assert_eq!(
        (status, body["nextExpectedRanges"][0].as_str()),
        (200, Some("8388608"))
    );
    let (status, _, headers) = put(
        &url,
        &format!("bytes {}-{}/{size}", 2 * chunk, size - 1),
        file[2 * chunk..].to_vec(),
    )
    .await;
    assert_eq!(status, 201);
    let location = headers["location"].to_str().unwrap().to_string();
    let attachment_id = location
        .rsplit_once("Attachments('")
        .and_then(|(_, rest)| rest.strip_suffix("')"))
        .unwrap()
        .to_string();
    // The session is over.
    assert_eq!(
        put(&url, &format!("bytes 0-9/{size}"), vec![0; 10]).await.0,
        404
    );

    let meta = g
        .get(&adele(&format!(
            "/messages/{id}/attachments/{attachment_id}?$select=name,size,contentType"
        )))
        .await;
    assert_eq!(meta.ok()["name"], "report.pdf");
    assert_eq!(meta.body["size"], size);
    assert_eq!(meta.body["contentType"], "application/pdf");
    let raw = g
        .get(&adele(&format!(
            "/messages/{id}/attachments/{attachment_id}/$value"
        )))
        .await;
    assert!(raw.bytes == file, "the bytes came back changed");

    // Sent with the draft.
    assert_eq!(
        g.post(&adele(&format!("/messages/{id}/send")), &json!({}))
            .await
            .status,
        202
    );
    let megan = g
        .get(&format!("/users/{MEGAN}/mailFolders/inbox/messages?$filter=subject eq 'report'&$expand=attachments"))
        .await;
    let received = megan.ok()["value"][0].clone();
    assert_eq!(received["hasAttachments"], true, "{received}");
    assert_eq!(received["attachments"][0]["size"], size);
}

#[tokio::test]
async fn a_cancelled_upload_session_is_gone() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let g = Graph::app(&m).await;
    let id = g
        .post(&adele("/messages"), &json!({"subject": "x"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let size = 3 * MIB;
    let created = g
        .post(
            &adele(&format!("/messages/{id}/attachments/createUploadSession")),
            &json!({"AttachmentItem": {"attachmentType": "file", "name": "a", "size": size}}),
        )
        .await;
    let url = created.body["uploadUrl"].as_str().unwrap().to_string();
    assert_eq!(
        put(&url, &format!("bytes 0-9/{size}"), vec![1; 10]).await.0,
        200
    );
    let cancelled = http().delete(&url).send().await.unwrap();
    assert_eq!(cancelled.status(), 204);
    assert_eq!(
        put(&url, &format!("bytes 10-19/{size}"), vec![1; 10])
            .await
            .0,
        404
    );
    let attachments = g.get(&adele(&format!("/messages/{id}/attachments"))).await;
    assert!(attachments.ok()["value"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn large_messages_and_attachments_are_seeded_cheaply_and_served_whole() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let g = Graph::app(&m).await;
    let received = time::macros::datetime!(2026-11-20 10:00 UTC);
    let from = Address::new("Lee Gu", "lee@contoso.onmicrosoft.com");
    let mut big_message = MessageContent::new("inbox", "30 MB message", from.clone(), received);
    big_message.attachments = vec![
        AttachmentContent::generated("a.bin", "application/octet-stream", 12 * MIB as u64),
        AttachmentContent::generated("b.bin", "application/octet-stream", 11 * MIB as u64),
    ];
    let mut big_attachment = MessageContent::new("inbox", "100 MB attachment", from, received);
    let hundred =
        AttachmentContent::generated("big.iso", "application/octet-stream", 100 * MIB as u64);
    let expected = hundred.bytes();
    assert_eq!(expected.len(), 100 * MIB);
    assert_eq!(
        expected,
        hundred.bytes(),
        "generated bytes are deterministic"
    );
    big_attachment.attachments = vec![hundred];
    let ids = m
        .add_messages(ADELE, &[big_message, big_attachment])
        .unwrap();
    assert_eq!(ids.len(), 2);

    let mime = g.get(&adele(&format!("/messages/{}/$value", ids[0]))).await;
    assert_eq!(mime.status, 200);
    assert!(mime.bytes.len() > 30_000_000, "{}", mime.bytes.len());
    // Streamed in slices, yet with its length announced.
    assert_eq!(
        mime.header("content-length"),
        Some(mime.bytes.len().to_string().as_str())
    );
    assert!(mime.text().contains("Subject: 30 MB message"));

    let list = g
        .get(&adele(&format!(
            "/messages/{}/attachments?$select=id,size",
            ids[1]
        )))
        .await;
    let attachment = list.ok()["value"][0].clone();
    assert_eq!(attachment["size"], 100 * MIB);
    let raw = g
        .get(&adele(&format!(
            "/messages/{}/attachments/{}/$value",
            ids[1],
            attachment["id"].as_str().unwrap()
        )))
        .await;
    assert_eq!(raw.bytes.len(), 100 * MIB);
    assert!(raw.bytes == expected);
    assert_eq!(
        raw.header("content-length"),
        Some((100 * MIB).to_string().as_str())
    );
    assert_eq!(raw.header("content-type"), Some("application/octet-stream"));
    // Two downloads at once get the same bytes (both are slices of the one stored buffer).
    let url = adele(&format!(
        "/messages/{}/attachments/{}/$value",
        ids[1],
        attachment["id"].as_str().unwrap()
    ));
    let (first, second) = tokio::join!(g.get(&url), g.get(&url));
    assert!(first.bytes == expected && second.bytes == expected);
    assert!(
        m.add_messages("ghost@contoso.onmicrosoft.com", &[])
            .is_err()
    );
}

#[tokio::test]
async fn the_mime_of_a_draft_round_trips_through_a_real_parser() {
    use base64::Engine as _;
    use mail_parser::{MessageParser, MimeHeaders as _};
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let g = Graph::app(&m).await;
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let created = g
        .post(
            &adele("/messages"),
            &json!({
                "subject": "Grüße — 報告 «Q4»",
                "body": {"contentType": "Text", "content": "Zeile 1\nline 2 with a very long tail that goes on and on and on past seventy-six characters"},
                "toRecipients": [{"emailAddress": {"name": "Megan Bowen", "address": MEGAN}}],
                "internetMessageId": "<round-trip@exgate.test>",
                "attachments": [{"@odata.type": "#microsoft.graph.fileAttachment",
                                 "name": "données.bin", "contentType": "application/octet-stream",
                                 "contentBytes": base64::engine::general_purpose::STANDARD.encode(&binary)}]
            }),
        )
        .await;
    let id = created.ok()["id"].as_str().unwrap().to_string();
    let mime = g.get(&adele(&format!("/messages/{id}/$value"))).await;
    let parsed = MessageParser::default().parse(&mime.bytes).unwrap();
    assert_eq!(parsed.subject(), Some("Grüße — 報告 «Q4»"));
    assert_eq!(parsed.message_id(), Some("round-trip@exgate.test"));
    let to = parsed.to().and_then(|a| a.first()).unwrap();
    assert_eq!(to.address(), Some(MEGAN));
    assert!(
        parsed
            .body_text(0)
            .unwrap()
            .contains("past seventy-six characters")
    );
    let attachment = parsed.attachments().next().unwrap();
    assert_eq!(attachment.attachment_name(), Some("données.bin"));
    assert!(attachment.contents() == binary.as_slice());
}
