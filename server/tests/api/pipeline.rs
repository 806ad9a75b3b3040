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
