//! The gateway end to end: the mock Microsoft cloud and the real `exgate-server` binary on port 0.
//! A connection is created through the API, a user signs in through the real callback (the mock's
//! consent form submitted over HTTP), then reads and sends mail and creates an event.

use std::process::Command;
use std::time::Duration;

use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};
use serde_json::{Value, json};

mod support;
use support::{Gateway, hidden_inputs};

#[tokio::test(flavor = "multi_thread")]
async fn a_user_signs_in_through_the_gateway_then_reads_sends_and_schedules() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let mut gateway = Gateway::start(&mock);
    let (password, base) = (gateway.password.clone(), gateway.base.clone());

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();

    // The admin creates a delegated connection and an API key for the portal.
    let resp = http
        .post(format!("{base}/api/v1/connections"))
        .basic_auth("admin", Some(&password))
        .json(&json!({
            "name": "contoso", "tenant": seed::TENANT_ID, "auth": "oauth2-delegated",
            "client_id": seed::WEB_APP, "client_secret": seed::WEB_APP_SECRET,
            "redirect_uri": format!("{base}/service/oauth2/authorize"),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let resp = http
        .post(format!("{base}/api/v1/keys"))
        .basic_auth("admin", Some(&password))
        .json(&json!({ "name": "portal", "connections": ["contoso"] }))
        .send()
        .await
        .unwrap();
    let key = resp.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();

    // The portal starts a sign-in for its user u42; the user's browser goes to Entra.
    let login: Value = http
        .post(format!("{base}/api/v1/connections/contoso/logins"))
        .bearer_auth(&key)
        .json(&json!({ "principal": "u42" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = login["authorization_url"].as_str().unwrap();
    assert_eq!(
        login["redirect_uri"],
        format!("{base}/service/oauth2/authorize")
    );
    let page = http.get(url).send().await.unwrap().text().await.unwrap();
    let mut form = hidden_inputs(&page);
    assert!(!form.is_empty(), "{page}");
    form.push(("login".into(), seed::ADELE.into()));
    form.push(("passwd".into(), seed::ADELE_PASSWORD.into()));
    form.push(("consent".into(), "accept".into()));
    let action = format!(
        "{}/{}/oauth2/v2.0/authorize",
        mock.base_url(),
        seed::TENANT_ID
    );
    let resp = http.post(action).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 302, "{}", resp.text().await.unwrap());
    let callback = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        callback.starts_with(&format!("{base}/service/oauth2/authorize?")),
        "{callback}"
    );
    let done = http.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), 200);
    let done = done.text().await.unwrap();
    assert!(
        done.contains("Signed in") && done.contains(seed::ADELE),
        "{done}"
    );

    // The callback is single use: a replay is refused with a page that says why.
    let replay = http.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), 400);
    assert!(
        replay
            .text()
            .await
            .unwrap()
            .contains("start the sign-in again")
    );

    // Now the portal uses u42's mailbox.
    let user = format!("{base}/api/v1/connections/contoso/users/u42");
    let listed: Value = http
        .get(format!("{user}/messages?limit=5"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["messages"].as_array().unwrap().len(), 5, "{listed}");
    let resp = http
        .post(format!("{user}/messages"))
        .bearer_auth(&key)
        .json(&json!({ "to": [seed::MEGAN], "subject": "via the gateway", "body": "hello" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    assert_eq!(
        mock.delivered(seed::MEGAN)
            .iter()
            .filter(|(_, s)| s == "via the gateway")
            .count(),
        1
    );
    let resp = http
        .post(format!("{user}/events"))
        .bearer_auth(&key)
        .json(&json!({
            "subject": "Gateway review",
            "start": { "date_time": "2026-12-03T10:00:00", "time_zone": "UTC" },
            "end": { "date_time": "2026-12-03T11:00:00", "time_zone": "UTC" },
            "attendees": [seed::MEGAN],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());

    // The admin sees the known user; a user that never signed in needs to.
    let accounts: Value = http
        .get(format!("{base}/api/v1/connections/contoso/accounts"))
        .basic_auth("admin", Some(&password))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(accounts["total"], 1);
    assert_eq!(accounts["items"][0]["principal"], "u42");
    assert_eq!(accounts["items"][0]["mailbox"], seed::ADELE);
    assert!(accounts["items"][0]["token_expires_at"].is_string());
    let resp = http
        .get(format!(
            "{base}/api/v1/connections/contoso/users/u43/messages"
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("route=\"/api/v1/connections/{connection}/users/{principal}/messages\""),
        "{metrics}"
    );
    assert!(metrics.contains("exgate_token_refreshes_total"));

    assert!(
        Command::new("kill")
            .args(["-TERM", &gateway.child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(gateway.child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_20_mb_attachment_streams_through_the_gateway_in_bounded_memory() {
    use exgate_testkit::graph::{Address, AttachmentContent, MessageContent};
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let size: u64 = 20 * 1024 * 1024;
    let big = AttachmentContent::generated("big.bin", "application/octet-stream", size);
    let message = |subject: &str, attachment: &AttachmentContent| {
        let mut m = MessageContent::new(
            "inbox",
            subject,
            Address::new("Megan", seed::MEGAN),
            time::OffsetDateTime::now_utc(),
        );
        m.attachments = vec![attachment.clone()];
        m
    };
    let ids = mock
        .add_messages(
            seed::ADELE,
            &[
                message(
                    "small",
                    &AttachmentContent::new("s.txt", "text/plain", b"s"),
                ),
                message("big", &big),
            ],
        )
        .unwrap();
    let gateway = Gateway::start(&mock);
    let (base, password) = (&gateway.base, &gateway.password);
    let http = reqwest::Client::new();
    for (path, body) in [
        (
            "/api/v1/connections".to_owned(),
            json!({
                "name": "daemon", "tenant": seed::TENANT_ID, "auth": "oauth2-app-only",
                "client_id": seed::DAEMON_APP, "client_secret": seed::DAEMON_APP_SECRET,
            }),
        ),
        (
            "/api/v1/connections/daemon/static-users".to_owned(),
            json!({ "principal": "adele", "mailbox": seed::ADELE }),
        ),
    ] {
        let resp = http
            .post(format!("{base}{path}"))
            .basic_auth("admin", Some(password))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    }
    let user = format!("{base}/api/v1/connections/daemon/users/adele");
    let download = |id: String| {
        let (http, user, password) = (http.clone(), user.clone(), password.clone());
        async move {
            let message: Value = http
                .get(format!("{user}/messages/{id}"))
                .basic_auth("admin", Some(&password))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let attachment = message["attachments"][0]["id"].as_str().unwrap().to_owned();
            let resp = http
                .get(format!("{user}/messages/{id}/attachments/{attachment}"))
                .basic_auth("admin", Some(&password))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            resp.bytes().await.unwrap()
        }
    };
    assert_eq!(&download(ids[0].clone()).await[..], b"s");
    let baseline = gateway.peak_memory();
    let got = download(ids[1].clone()).await;
    let peak = gateway.peak_memory();
    assert!(got[..] == big.bytes()[..], "the attachment arrived changed");
    let grew = peak.saturating_sub(baseline);
    assert!(
        grew < size / 4,
        "the gateway grew by {grew} bytes to pass on {size} (peak {peak}, before {baseline})"
    );
}

/// Delivers a message from Megan into `mailbox`'s Inbox.
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

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_gateway_reports_every_change_it_missed_once_when_it_returns() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let mut gateway = Gateway::start_with(&mock, "[notify]\ngraph_push = false\npoll_secs = 1\n");
    let password = gateway.password.clone();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let admin = |method: reqwest::Method, base: &str, path: &str| {
        http.request(method, format!("{base}{path}"))
            .basic_auth("admin", Some(&password))
    };
    let base = gateway.base.clone();
    let resp = admin(reqwest::Method::POST, &base, "/api/v1/connections")
        .json(&json!({
            "name": "contoso", "tenant": seed::TENANT_ID, "auth": "oauth2-app-only",
            "client_id": seed::DAEMON_APP, "client_secret": seed::DAEMON_APP_SECRET,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = admin(
        reqwest::Method::POST,
        &base,
        "/api/v1/connections/contoso/static-users",
    )
    .json(&json!({ "principal": "adele", "mailbox": seed::ADELE }))
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 201);

    // The application's webhook receiver.
    let (tx, mut received) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::Json<Value>| {
            let _ = tx.send(body.0);
            async { axum::http::StatusCode::OK }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let resp = admin(
        reqwest::Method::POST,
        &base,
        "/api/v1/connections/contoso/webhooks",
    )
    .json(&json!({ "url": hook }))
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = admin(
        reqwest::Method::POST,
        &base,
        "/api/v1/connections/contoso/users/adele/watches",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 201);
    let next = async |received: &mut tokio::sync::mpsc::UnboundedReceiver<Value>| {
        tokio::time::timeout(Duration::from_secs(60), received.recv())
            .await
            .expect("an event within a minute")
            .unwrap()
    };

    deliver(&mock, seed::ADELE, "Before the kill");
    let first = next(&mut received).await;
    assert_eq!(first["type"], "message.created");

    // Killed: no shutdown, no lease given back. Mail arrives meanwhile.
    gateway.kill_and_restart();
    deliver(&mock, seed::ADELE, "While down 1");
    deliver(&mock, seed::ADELE, "While down 2");
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 3 {
        let e = next(&mut received).await;
        // A webhook delivery is at least once: an event the killed gateway had sent but not yet
        // recorded comes again, with the same ID.
        seen.insert(e["id"].as_str().unwrap().to_owned());
    }
    assert!(seen.contains(first["id"].as_str().unwrap()));

    // The journal holds one event per change: nothing reported twice, nothing lost.
    let journal: Value = admin(
        reqwest::Method::GET,
        &gateway.base,
        "/api/v1/connections/contoso/events?after=0",
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let events = journal["events"].as_array().unwrap();
    assert_eq!(events.len(), 3, "{journal}");
    let ids: std::collections::BTreeSet<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, seen);
}
