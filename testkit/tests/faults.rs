//! Fault injection over the wire: every kind through a real HTTP client, from the Rust API and
//! from the admin endpoint `/_mock/faults`.

mod support;

use std::time::Duration;

use exgate_testkit::entra::seed::*;
use exgate_testkit::faults::{FaultKind, FaultPlan, FaultRule, Service};
use exgate_testkit::{MockMicrosoft, Seed};
use reqwest::Method;
use serde_json::{Value, json};
use support::{Graph, http};

fn adele(path: &str) -> String {
    format!("/users/{ADELE}{path}")
}

fn draft(subject: &str) -> Value {
    json!({"subject": subject, "toRecipients": [{"emailAddress": {"address": MEGAN}}]})
}

async fn drafts(g: &Graph) -> Vec<String> {
    let page = g
        .get(&adele(
            "/mailFolders/drafts/messages?$top=100&$select=subject",
        ))
        .await;
    page.ok()["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn throttling_sends_any_retry_after_verbatim_to_matching_requests_only() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let g = Graph::app(&m).await;
    for value in ["18446744073709551615", "3600", "1", "soon, maybe"] {
        m.add_fault(
            FaultRule::next(
                1,
                FaultKind::TooManyRequests {
                    retry_after: Some(value.into()),
                },
            )
            .method("POST")
            .path("/messages"),
        )
        .unwrap();
    }
    // Not matching: a GET, and a POST elsewhere.
    g.get(&adele("/messages")).await.ok();
    for value in ["18446744073709551615", "3600", "1", "soon, maybe"] {
        let a = g.post(&adele("/messages"), &draft("x")).await;
        assert_eq!(a.status, 429, "{}", a.text());
        assert_eq!(a.header("retry-after"), Some(value));
        assert_eq!(a.body["error"]["code"], "ApplicationThrottled");
        assert!(a.header("request-id").is_some());
    }
    assert!(
        drafts(&g).await.iter().all(|s| s != "x"),
        "a throttled request changed nothing"
    );
    let a = g.post(&adele("/messages"), &draft("y")).await;
    assert_eq!(a.status, 201, "{}", a.text());
    let report = m.fault_report();
    assert_eq!(report.count("429"), 4);
    assert_eq!(report.total, 4);
    assert!(
        report
            .rules
            .iter()
            .all(|r| r.remaining == Some(0) && r.injected == 1)
    );
}

#[tokio::test]
async fn server_errors_answer_503_with_or_without_retry_after_and_504() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let g = Graph::app(&m).await;
    m.add_faults(FaultPlan {
        rules: vec![
            FaultRule::next(
                1,
                FaultKind::ServiceUnavailable {
                    retry_after: Some("7".into()),
                },
            ),
            FaultRule::next(1, FaultKind::ServiceUnavailable { retry_after: None }),
            FaultRule::next(2, FaultKind::GatewayTimeout),
        ],
    })
    .unwrap();
    let a = g.get(&adele("/messages")).await;
    assert_eq!(
        (a.status.as_u16(), a.header("retry-after")),
        (503, Some("7"))
    );
    assert_eq!(a.body["error"]["code"], "ServiceUnavailable");
    let a = g.get(&adele("/messages")).await;
    assert_eq!((a.status.as_u16(), a.header("retry-after")), (503, None));
    for _ in 0..2 {
        let a = g.get(&adele("/messages")).await;
        assert_eq!(a.status, 504);
        assert_eq!(a.body["error"]["code"], "GatewayTimeout");
    }
    g.get(&adele("/messages")).await.ok();
    let report = m.fault_report();
    assert_eq!((report.count("503"), report.count("504")), (2, 2));
}

#[tokio::test]
async fn a_reset_closes_the_connection_without_an_answer_and_changes_nothing() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let g = Graph::app(&m).await;
    m.add_fault(FaultRule::next(1, FaultKind::Reset).method("POST"))
        .unwrap();
    let err = g
        .send(Method::POST, &adele("/messages"), Some(&draft("lost")))
        .await
        .unwrap_err();
    assert!(err.is_request() && !err.is_timeout(), "{err:?}");
    assert!(!drafts(&g).await.iter().any(|s| s == "lost"));
    // The server is fine afterwards, on a new connection.
    assert_eq!(
        g.post(&adele("/messages"), &draft("kept")).await.status,
        201
    );
    assert_eq!(m.fault_report().count("reset"), 1);

    // Raw TCP: the connection ends without a single byte of answer.
    m.add_fault(FaultRule::next(1, FaultKind::Reset)).unwrap();
    let read = raw_exchange(
        &m,
        &format!(
            "GET /graph/v1.0{} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\r\n",
            adele("/messages"),
            g.token
        ),
    )
    .await;
    assert!(
        read.is_empty(),
        "answered {:?}",
        String::from_utf8_lossy(&read)
    );
}

/// Writes `request` on a fresh connection and reads until the server closes it.
async fn raw_exchange(m: &MockMicrosoft, request: &str) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(m.addr()).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut read = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return read,
            Ok(Ok(n)) => read.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the connection stayed open"),
        }
    }
}

#[tokio::test]
async fn reset_after_processing_executes_the_request_then_drops_the_answer() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let g = Graph::app(&m).await;
    m.add_fault(FaultRule::next(2, FaultKind::ResetAfter).method("POST"))
        .unwrap();
    let err = g
        .send(
            Method::POST,
            &adele("/messages"),
            Some(&draft("created anyway")),
        )
        .await
        .unwrap_err();
    assert!(err.is_request(), "{err:?}");
    assert!(drafts(&g).await.iter().any(|s| s == "created anyway"));

    let mail = json!({"message": {"subject": "sent anyway",
        "toRecipients": [{"emailAddress": {"address": MEGAN}}]}});
    assert!(
        g.send(Method::POST, &adele("/sendMail"), Some(&mail))
            .await
            .is_err()
    );
    let subjects: Vec<String> = m.submitted(ADELE).into_iter().map(|(_, s)| s).collect();
    assert_eq!(subjects, ["sent anyway"]);
    assert_eq!(m.delivered(MEGAN).len(), 1);
    assert_eq!(m.fault_report().count("reset_after"), 2);
}

#[tokio::test(start_paused = true)]
async fn delays_use_tokio_time_so_paused_tests_are_not_slowed() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let mut g = Graph::app(&m).await;
    // No client timeout: it would fire on the paused clock too.
    g.client = reqwest::Client::new();
    m.add_fault(FaultRule::next(1, FaultKind::Delay { ms: 3_600_000 }))
        .unwrap();
    let wall = std::time::Instant::now();
    let tokio_start = tokio::time::Instant::now();
    g.get(&adele("/messages")).await.ok();
    assert!(tokio_start.elapsed() >= Duration::from_secs(3600));
    assert!(
        wall.elapsed() < Duration::from_secs(30),
        "{:?}",
        wall.elapsed()
    );
    assert_eq!(m.fault_report().count("delay"), 1);
}

#[tokio::test]
async fn malformed_bodies_replace_or_cut_json_answers() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let g = Graph::app(&m).await;
    m.add_fault(FaultRule::next(1, FaultKind::JsonArray).method("GET"))
        .unwrap();
    let a = g.get(&adele("/messages")).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.text(), "[]");
    m.add_fault(FaultRule::next(1, FaultKind::TruncatedJson))
        .unwrap();
    let a = g.get(&adele("/messages")).await;
    assert_eq!(a.status, 200);
    assert!(serde_json::from_slice::<Value>(&a.bytes).is_err());
    assert!(
        a.text().starts_with('{') && a.bytes.len() > 10,
        "{}",
        a.text()
    );
    assert_eq!(
        a.header("content-type")
            .map(|ct| ct.starts_with("application/json")),
        Some(true)
    );
    // A body fault on an answer without JSON does not apply, and is kept for the next one.
    m.add_fault(FaultRule::next(1, FaultKind::JsonArray).method("DELETE"))
        .unwrap();
    let id = g.post(&adele("/messages"), &draft("d")).await.ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let a = g
        .send(Method::DELETE, &adele(&format!("/messages/{id}")), None)
        .await
        .unwrap();
    assert_eq!(a.status, 204);
    let report = m.fault_report();
    assert_eq!(report.rules[2].remaining, Some(1));
    assert_eq!(
        (report.count("json_array"), report.count("truncated_json")),
        (1, 1)
    );
}

#[tokio::test]
async fn mime_that_is_not_mime_plain_and_inside_a_batch() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let g = Graph::app(&m).await;
    let first = g.get(&adele("/messages?$top=1&$select=id")).await;
    let id = first.ok()["value"][0]["id"].as_str().unwrap().to_string();
    let good = g.get(&adele(&format!("/messages/{id}/$value"))).await;
    assert!(good.text().contains("MIME-Version"), "{}", good.text());

    m.add_fault(FaultRule::next(2, FaultKind::NotMime)).unwrap();
    let bad = g.get(&adele(&format!("/messages/{id}/$value"))).await;
    assert_eq!(bad.status, 200);
    assert!(!bad.text().contains("MIME-Version"));
    assert!(bad.body.is_object(), "{}", bad.text());

    let batch = json!({"requests": [
        {"id": "1", "method": "GET", "url": format!("/users/{ADELE}/messages/{id}/$value")},
        {"id": "2", "method": "GET", "url": format!("/users/{ADELE}/messages/{id}?$select=subject")},
    ]});
    let a = g.post("/$batch", &batch).await;
    let responses = a.ok()["responses"].as_array().unwrap().clone();
    let part = responses.iter().find(|r| r["id"] == "1").unwrap();
    assert!(
        part["body"].is_object(),
        "MIME was asked, JSON came: {part}"
    );
    let other = responses.iter().find(|r| r["id"] == "2").unwrap();
    assert!(other["body"]["subject"].is_string());
    assert_eq!(m.fault_report().count("not_mime"), 2);
}

#[tokio::test]
async fn a_repeating_next_link_points_at_the_same_page() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let g = Graph::app(&m).await;
    let first = g.get(&adele("/messages?$top=3&$select=subject")).await;
    let next = first.ok()["@odata.nextLink"].as_str().unwrap().to_string();
    let honest = g.get(&next).await;
    m.add_fault(FaultRule::next(1, FaultKind::RepeatNextLink))
        .unwrap();
    let faulted = g.get(&next).await;
    let again = faulted.ok()["@odata.nextLink"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(again, next);
    assert_ne!(
        honest.body["@odata.nextLink"], faulted.body["@odata.nextLink"],
        "the honest link moves on"
    );
    let repeated = g.get(&again).await;
    assert_eq!(repeated.ok()["value"], honest.body["value"]);
    assert_eq!(m.fault_report().count("repeat_next_link"), 1);
}

#[tokio::test]
async fn chaos_is_the_same_for_the_same_seed_and_counted() {
    async fn statuses(seed: u64) -> (Vec<u16>, u64) {
        let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
        let g = Graph::app(&m).await;
        m.add_fault(FaultRule::chaos(
            0.3,
            seed,
            vec![
                (
                    2,
                    FaultKind::TooManyRequests {
                        retry_after: Some("2".into()),
                    },
                ),
                (1, FaultKind::GatewayTimeout),
            ],
        ))
        .unwrap();
        let mut out = Vec::new();
        for _ in 0..40 {
            out.push(g.get(&adele("/mailFolders")).await.status.as_u16());
        }
        (out, m.fault_report().total)
    }
    let (a, injected) = statuses(11).await;
    let (b, _) = statuses(11).await;
    assert_eq!(a, b);
    let failed = a.iter().filter(|s| **s != 200).count();
    assert_eq!(u64::try_from(failed).unwrap(), injected);
    assert!((3..=25).contains(&failed), "{a:?}");
    assert!(a.contains(&429) && a.iter().all(|s| [200, 429, 504].contains(s)));
}

#[tokio::test]
async fn the_admin_endpoint_adds_reads_and_clears_rules() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let g = Graph::app(&m).await;
    let admin = format!("{}/_mock/faults", m.base_url());
    let added: Value = http()
        .post(&admin)
        .body(r#"{"rules":[{"match":{"method":"GET","path":"/mailfolders"},"fault":{"kind":"429","retry_after":"18446744073709551615"},"times":2}]}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(added["rules"][0]["remaining"], 2);
    for _ in 0..2 {
        let a = g.get(&adele("/mailFolders")).await;
        assert_eq!(a.header("retry-after"), Some("18446744073709551615"));
    }
    g.get(&adele("/mailFolders")).await.ok();
    let report: Value = http()
        .get(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["injected"], json!({"429": 2}));
    assert_eq!(report["total"], 2);
    assert_eq!(report["rules"][0]["remaining"], 0);
    assert_eq!(report["rules"][0]["fault"]["kind"], "429");

    let refused = http()
        .post(&admin)
        .body(r#"{"fault":{"kind":"418"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let error: Value = refused.json().await.unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("invalid fault rule")
    );

    let cleared: Value = http()
        .delete(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cleared["total"], 2, "DELETE answers the final counters");
    assert_eq!(m.fault_report().total, 0);
    assert!(m.fault_report().rules.is_empty());
}

#[tokio::test]
async fn entra_rules_fault_the_token_endpoint_in_entra_shape() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    m.add_fault(
        FaultRule::next(
            1,
            FaultKind::TooManyRequests {
                retry_after: Some("3600".into()),
            },
        )
        .service(Service::Entra)
        .path("/oauth2/v2.0/token"),
    )
    .unwrap();
    m.add_fault(
        FaultRule::next(1, FaultKind::Reset)
            .service(Service::Entra)
            .path("/token"),
    )
    .unwrap();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", DAEMON_APP),
        ("client_secret", DAEMON_APP_SECRET),
        ("scope", "https://graph.microsoft.com/.default"),
    ];
    let a = http()
        .post(m.token_endpoint(TENANT_ID))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 429);
    assert_eq!(a.headers()["retry-after"], "3600");
    let body: Value = a.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(body["error_codes"], json!([90055]));
    assert!(
        http()
            .post(m.token_endpoint(TENANT_ID))
            .form(&form)
            .send()
            .await
            .is_err()
    );
    let ok = http()
        .post(m.token_endpoint(TENANT_ID))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // Graph rules leave Entra alone.
    m.add_fault(FaultRule::next(1, FaultKind::GatewayTimeout))
        .unwrap();
    Graph::app(&m).await;
    assert_eq!(m.fault_report().rules[2].remaining, Some(1));
}

#[tokio::test]
async fn batch_items_fail_one_by_one_and_the_envelope_only_when_named() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let g = Graph::app(&m).await;
    let batch = json!({"requests": [
        {"id": "a", "method": "GET", "url": format!("/users/{ADELE}/mailFolders")},
        {"id": "b", "method": "GET", "url": format!("/users/{ADELE}/messages?$top=1")},
    ]});
    m.add_fault(FaultRule::next(1, FaultKind::GatewayTimeout).path("/messages"))
        .unwrap();
    let a = g.post("/$batch", &batch).await;
    let responses = a.ok()["responses"].as_array().unwrap().clone();
    let status = |id: &str| responses.iter().find(|r| r["id"] == id).unwrap()["status"].clone();
    assert_eq!((status("a"), status("b")), (json!(200), json!(504)));

    m.add_fault(FaultRule::next(1, FaultKind::Reset).path("$batch"))
        .unwrap();
    assert!(g.send(Method::POST, "/$batch", Some(&batch)).await.is_err());
    m.add_fault(FaultRule::next(1, FaultKind::Reset).path("/mailfolders"))
        .unwrap();
    assert!(
        g.send(Method::POST, "/$batch", Some(&batch)).await.is_err(),
        "a reset item takes the connection down"
    );
    assert_eq!(m.fault_report().count("reset"), 2);
}

#[tokio::test]
async fn resets_work_over_tls_too() {
    let m = MockMicrosoft::start_tls(Seed::contoso()).await.unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(m.ca_pem().unwrap().as_bytes()).unwrap(),
        )
        .build()
        .unwrap();
    m.add_fault(FaultRule::next(1, FaultKind::Reset).service(Service::Entra))
        .unwrap();
    let url = m.discovery_url(TENANT_ID);
    assert!(client.get(&url).send().await.is_err());
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
}
