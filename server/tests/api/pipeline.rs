//! The mailbox routes against what the measured attacks and faults did: a page token or an ID
//! cannot reach another mailbox or another path, hostile server hints end at once with a 429
//! and its `Retry-After`, and large content is passed on as it arrives.

use axum::http::StatusCode;
use exgate_testkit::entra::seed;
use exgate_testkit::graph::{Address, AttachmentContent, MessageContent};
use exgate_testkit::{FaultKind, FaultRule};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::{ADELE, AppOnly, urlencode};

const MEGAN_BOT: &str = "/api/v1/connections/contoso/users/megan-bot";

#[tokio::test]
async fn a_page_token_from_one_mailbox_is_refused_on_another() {
    let t = AppOnly::start().await;
    let (status, user) =
        t.gw.admin(
            "POST",
            "/api/v1/connections/contoso/static-users",
            json!({ "principal": "megan-bot", "mailbox": seed::MEGAN }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let (status, page) = t.user("GET", "/messages?limit=1", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let token = page["next_page"].as_str().unwrap().to_owned();
    assert!(!token.contains(seed::ADELE), "{token}");

    let before = t.mock.graph_requests();
    let adele_inbox = format!(
        "{}/users/{}/mailFolders/inbox/messages",
        t.mock.graph_url(),
        seed::ADELE
    );
    for page in [token.as_str(), adele_inbox.as_str()] {
        let (status, err) =
            t.gw.call(
                "GET",
                &format!("{MEGAN_BOT}/messages?page={}", urlencode(page)),
                &t.key,
                Value::Null,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
        assert_eq!(err["code"], "invalid_input", "{err}");
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains("was not issued for this mailbox"),
            "{err}"
        );
    }
    // A token for another query of the same mailbox is refused too.
    let (status, _) = t
        .user(
            "GET",
            &format!("/messages?unread=true&page={}", urlencode(&token)),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(t.mock.graph_requests(), before, "nothing reached Graph");
    // Its own listing continues.
    let (status, next) = t
        .user(
            "GET",
            &format!("/messages?page={}", urlencode(&token)),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{next}");
}

#[tokio::test]
async fn ids_cannot_change_the_path() {
    let t = AppOnly::start().await;
    for id in ["..", "%2E%2E", "."] {
        let (status, err) = t
            .user("DELETE", &format!("/messages/{id}"), Value::Null)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{id}: {err}");
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains("is not a message ID"),
            "{err}"
        );
    }
    for (id, sent) in [
        ("a%2Fb", "/messages/a%2Fb"),
        ("a%252Fb", "/messages/a%252Fb"),
    ] {
        let (status, err) = t
            .user("DELETE", &format!("/messages/{id}"), Value::Null)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}: {err}");
        let last = t.mock.requests().pop().unwrap();
        assert!(
            last.uri
                .ends_with(&format!("/users/{}{sent}", seed::ADELE.replace('@', "%40"))),
            "{id} went to {}",
            last.uri
        );
    }
    // Nothing was ever aimed at the mailbox itself.
    assert!(
        !t.mock
            .requests()
            .iter()
            .any(|r| r.method == "DELETE" && !r.uri.contains("/messages/")),
        "{:?}",
        t.mock.requests()
    );
}

#[tokio::test]
async fn hostile_server_hints_end_at_once_with_a_429_and_how_long() {
    let t = AppOnly::start().await;
    let (status, user) =
        t.gw.admin(
            "POST",
            "/api/v1/connections/contoso/static-users",
            json!({ "principal": "megan-bot", "mailbox": seed::MEGAN }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let folders = |user: &str| format!("/api/v1/connections/contoso/users/{user}/folders");
    for (user, hint, secs) in [
        ("adele", "18446744073709551615", 86_400),
        ("megan-bot", "3600", 3_600),
    ] {
        t.mock
            .add_fault(FaultRule::next(
                1,
                FaultKind::TooManyRequests {
                    retry_after: Some(hint.into()),
                },
            ))
            .unwrap();
        let resp =
            t.gw.send("GET", &folders(user), Some(&t.key), Value::Null)
                .await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()["retry-after"], secs.to_string().as_str());
        let body: Value =
            serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(body["code"], "throttled", "{body}");
        t.mock.clear_faults();
        // The server asked every caller of that mailbox to wait: the next request is answered
        // at once, without reaching Graph, with the time left.
        let before = t.mock.graph_requests();
        let resp =
            t.gw.send("GET", &folders(user), Some(&t.key), Value::Null)
                .await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        let left: u64 = resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(left <= secs && left + 60 > secs, "{left}");
        assert_eq!(t.mock.graph_requests(), before);
    }
}

#[tokio::test]
async fn large_attachments_and_mime_are_passed_on_whole() {
    let t = AppOnly::start().await;
    let size = 5 * 1024 * 1024;
    let big = AttachmentContent::generated("big.bin", "application/octet-stream", size);
    let mut message = MessageContent::new(
        "inbox",
        "large",
        Address::new("Megan", seed::MEGAN),
        time::OffsetDateTime::now_utc(),
    );
    message.attachments = vec![big.clone()];
    let id = t
        .mock
        .add_messages(seed::ADELE, &[message])
        .unwrap()
        .remove(0);
    let (status, m) = t.user("GET", &format!("/messages/{id}"), Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    let attachment = m["attachments"][0]["id"].as_str().unwrap().to_owned();

    let resp =
        t.gw.send(
            "GET",
            &format!("{ADELE}/messages/{id}/attachments/{attachment}"),
            Some(&t.key),
            Value::Null,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-length"], size.to_string().as_str());
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"big.bin\""
    );
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(bytes[..] == big.bytes()[..]);

    let resp =
        t.gw.send(
            "GET",
            &format!("{ADELE}/messages/{id}/mime"),
            Some(&t.key),
            Value::Null,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "message/rfc822");
    let mime = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(mime.len() as u64 > size, "{} bytes of MIME", mime.len());
}

/// A `multipart/form-data` body with a `message` part and file parts.
fn form(message: Option<&Value>, files: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "exgate-test-boundary-7d1f";
    let mut body = Vec::new();
    if let Some(m) = message {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"message\"\r\nContent-Type: application/json\r\n\r\n{m}\r\n"
            )
            .as_bytes(),
        );
    }
    for (field, file, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn a_send_takes_its_files_as_a_form_without_base64() {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    let t = AppOnly::start().await;
    let large: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let post = |(content_type, body): (String, Vec<u8>)| {
        let req = Request::post(format!("{ADELE}/messages"))
            .header("authorization", &t.key)
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap();
        exgate_server::app(t.gw.state.clone()).oneshot(req)
    };
    let message = json!({ "to": [seed::MEGAN], "subject": "form send", "body": "files attached" });
    let resp = post(form(
        Some(&message),
        &[
            ("file", "../large.bin", &large),
            ("file", "note.txt", b"small"),
        ],
    ))
    .await
    .unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let megan = t.mock.mailbox_content(seed::MEGAN).unwrap();
    let received = megan
        .messages
        .iter()
        .find(|m| m.subject == "form send")
        .expect("delivered");
    let mut names: Vec<_> = received
        .attachments
        .iter()
        .map(|a| a.name.clone())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["large.bin", "note.txt"],
        "the path part of a file name is dropped"
    );
    let got = received
        .attachments
        .iter()
        .find(|a| a.name == "large.bin")
        .unwrap()
        .bytes();
    assert!(got == large, "the file arrived changed");

    // A form without the message, or with a field that is neither: refused, nothing sent.
    let before = t.mock.submitted(seed::ADELE).len();
    for (form, says) in [
        (form(None, &[("file", "a.txt", b"a")]), "no `message` part"),
        (
            {
                let (ct, mut body) = form(Some(&message), &[]);
                let extra = b"--exgate-test-boundary-7d1f\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n";
                body.splice(0..0, extra.iter().copied());
                (ct, body)
            },
            "unexpected form field `note`",
        ),
    ] {
        let resp = post(form).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let err: Value =
            serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert!(err["message"].as_str().unwrap().contains(says), "{err}");
        assert_eq!(err["code"], "invalid_input");
    }
    assert_eq!(t.mock.submitted(seed::ADELE).len(), before);
}

#[tokio::test]
async fn the_callers_request_id_reaches_graph_and_a_looping_server_is_an_error() {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    let t = AppOnly::start().await;
    let id = "5d0f6a8e-3c1b-4f7e-9a2d-8b6c4e1f0a37";
    let req = Request::get(format!("{ADELE}/folders"))
        .header("authorization", &t.key)
        .header("x-request-id", id)
        .body(Body::empty())
        .unwrap();
    let resp = exgate_server::app(t.gw.state.clone())
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let graph: Vec<_> = t
        .mock
        .requests()
        .into_iter()
        .filter(|r| r.uri.contains("/mailFolders"))
        .collect();
    assert!(!graph.is_empty());
    assert!(
        graph
            .iter()
            .all(|r| r.client_request_id.as_deref() == Some(id)),
        "{graph:?}"
    );

    // A Graph that hands back the page it was asked for, as the next one: an error, not a loop.
    let (status, page) = t.user("GET", "/messages?limit=2", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let token = page["next_page"].as_str().unwrap().to_owned();
    t.mock
        .add_fault(FaultRule::next(1, FaultKind::RepeatNextLink).method("GET"))
        .unwrap();
    let (status, err) = t
        .user(
            "GET",
            &format!("/messages?limit=2&page={}", urlencode(&token)),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("repeated a paging link"),
        "{err}"
    );
}
