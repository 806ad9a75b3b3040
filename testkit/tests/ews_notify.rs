//! The mock EWS's notifications over the wire: streaming subscriptions read as a chunked answer
//! of one envelope per batch, pull subscriptions read by watermark, lost subscriptions and a
//! server without streaming; every request and answer valid against the EWS schema.

mod ews_support;

use std::time::Duration;

use ews_support::*;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::Seed;
use exgate_testkit::entra::seed::*;
use exgate_testkit::ews::EwsSwitchChange;
use reqwest::StatusCode;

fn subscribe(kind: &str, folders: &[&str], extra: &str) -> String {
    let folders: String = folders
        .iter()
        .map(|f| format!(r#"<t:DistinguishedFolderId Id="{f}"/>"#))
        .collect();
    subscribe_to(kind, &folders, extra)
}

fn subscribe_to(kind: &str, folders: &str, extra: &str) -> String {
    format!(
        "<m:Subscribe><m:{kind}><t:FolderIds>{folders}</t:FolderIds><t:EventTypes><t:EventType>NewMailEvent</t:EventType><t:EventType>CreatedEvent</t:EventType><t:EventType>DeletedEvent</t:EventType><t:EventType>ModifiedEvent</t:EventType><t:EventType>MovedEvent</t:EventType></t:EventTypes>{extra}</m:{kind}></m:Subscribe>"
    )
}

fn get_streaming(id: &str, minutes: u32) -> String {
    format!(
        "<m:GetStreamingEvents><m:SubscriptionIds><t:SubscriptionId>{id}</t:SubscriptionId></m:SubscriptionIds><m:ConnectionTimeout>{minutes}</m:ConnectionTimeout></m:GetStreamingEvents>"
    )
}

fn get_events(id: &str, watermark: &str) -> String {
    format!(
        "<m:GetEvents><m:SubscriptionId>{id}</m:SubscriptionId><m:Watermark>{watermark}</m:Watermark></m:GetEvents>"
    )
}

/// A message Megan sends Adele over EWS.
async fn deliver(m: &MockMicrosoft, subject: &str) {
    let megan = Ews::basic(m, MEGAN, MEGAN_PASSWORD);
    megan
        .call(&create_message("SendAndSaveCopy", subject, &[ADELE], "hi"))
        .await
        .ok();
}

/// A held `GetStreamingEvents` answer, read envelope by envelope.
struct Stream {
    resp: reqwest::Response,
    buf: String,
    envelopes: Vec<String>,
}

impl Stream {
    async fn open(ews: &Ews, id: &str) -> Stream {
        let resp = ews
            .client
            .post(&ews.url)
            .header("content-type", "text/xml; charset=utf-8")
            .basic_auth(ADELE, Some(ADELE_PASSWORD))
            .body(envelope("", &get_streaming(id, 30)))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        Stream {
            resp,
            buf: String::new(),
            envelopes: Vec::new(),
        }
    }

    /// The next envelope; `None` when the answer ended.
    async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.find("</s:Envelope>") {
                let end = i + "</s:Envelope>".len();
                let envelope = self.buf[..end].trim().to_string();
                self.buf.drain(..end);
                self.envelopes.push(envelope.clone());
                return Some(envelope);
            }
            let chunk = self.resp.chunk().await.unwrap()?;
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Envelopes until one containing `needle` (which is answered).
    async fn until(&mut self, needle: &str) -> String {
        loop {
            let e = self.next().await.expect("the stream ended early");
            if e.contains(needle) {
                return e;
            }
        }
    }
}

#[tokio::test]
async fn streams_carry_new_mail_as_it_arrives_and_close_when_told() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let adele = Ews::basic(&m, ADELE, ADELE_PASSWORD);
    let sub = adele
        .call(&subscribe("StreamingSubscriptionRequest", &["inbox"], ""))
        .await;
    sub.ok();
    let id = sub.texts("SubscriptionId").remove(0);
    assert!(sub.texts("Watermark").is_empty(), "streaming has none");

    let mut stream = Stream::open(&adele, &id).await;
    let first = stream.next().await.unwrap();
    assert!(
        first.contains("<m:ConnectionStatus>OK</m:ConnectionStatus>"),
        "{first}"
    );

    deliver(&m, "Streamed").await;
    let batch = stream.until("<t:Notification>").await;
    assert!(batch.contains("<t:NewMailEvent>"), "{batch}");
    assert!(batch.contains("<t:CreatedEvent>"), "{batch}");
    assert!(batch.contains(&format!("<t:SubscriptionId>{id}</t:SubscriptionId>")));
    // Megan's own copy went to her Sent Items: not Adele's, not reported.
    assert_eq!(batch.matches("<t:NewMailEvent>").count(), 1, "{batch}");

    // Events that happen while no stream is open wait for the next one.
    m.ews_state().close_streams();
    let closed = stream.until("ConnectionStatus").await;
    assert!(closed.contains("<m:ConnectionStatus>Closed</m:ConnectionStatus>"));
    assert!(
        stream.next().await.is_none(),
        "the answer ends after Closed"
    );
    deliver(&m, "While closed").await;
    let mut again = Stream::open(&adele, &id).await;
    let batch = again.until("<t:Notification>").await;
    assert!(batch.contains("<t:NewMailEvent>"), "{batch}");

    // Dropped notifications never arrive; the stream goes on.
    m.change_ews_switches(&EwsSwitchChange {
        drop_notifications: Some(true),
        ..EwsSwitchChange::default()
    })
    .unwrap();
    deliver(&m, "Dropped").await;
    m.ews_state().close_streams();
    let closed = again.until("ConnectionStatus>Closed").await;
    assert!(!closed.contains("Notification"));
    let all: Vec<&String> = again.envelopes.iter().collect();
    assert_eq!(
        all.iter()
            .filter(|e| e.contains("<t:NewMailEvent>"))
            .count(),
        1,
        "{all:?}"
    );

    let mut answers = adele.bodies();
    answers.extend(stream.envelopes);
    answers.extend(again.envelopes);
    exgate_testkit::xsd::validate_soap(&answers).unwrap_or_else(|e| panic!("{e}"));
    exgate_testkit::xsd::validate_soap(&[
        envelope(
            "",
            &subscribe("StreamingSubscriptionRequest", &["inbox"], ""),
        ),
        envelope("", &get_streaming(&id, 30)),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn pull_subscriptions_answer_the_events_after_a_watermark() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let adele = Ews::basic(&m, ADELE, ADELE_PASSWORD);
    let sub = adele
        .call(&subscribe(
            "PullSubscriptionRequest",
            &["inbox", "calendar"],
            "<t:Timeout>10</t:Timeout>",
        ))
        .await;
    sub.ok();
    let id = sub.texts("SubscriptionId").remove(0);
    let start = sub.texts("Watermark").remove(0);

    let quiet = adele.call(&get_events(&id, &start)).await;
    quiet.ok();
    assert_eq!(quiet.count("<t:StatusEvent>"), 1, "{}", quiet.text);
    assert_eq!(quiet.texts("MoreEvents"), ["false"]);

    deliver(&m, "Pulled").await;
    let events = adele.call(&get_events(&id, &start)).await;
    events.ok();
    assert_eq!(events.count("<t:NewMailEvent>"), 1, "{}", events.text);
    assert_eq!(events.count("<t:CreatedEvent>"), 1, "{}", events.text);
    let next = events.texts("Watermark").pop().unwrap();
    assert_eq!(
        events.texts("PreviousWatermark"),
        std::slice::from_ref(&start)
    );

    // Asking again from the same watermark answers the same events; from the last, none.
    let repeat = adele.call(&get_events(&id, &start)).await;
    assert_eq!(repeat.count("<t:NewMailEvent>"), 1);
    let after = adele.call(&get_events(&id, &next)).await;
    assert_eq!(after.count("<t:StatusEvent>"), 1, "{}", after.text);

    // A watermark of another subscription is refused.
    let bad = adele.call(&get_events(&id, "bm9wZQ==")).await;
    assert_eq!(bad.codes(), ["ErrorInvalidWatermark"]);

    // Only its owner reads a subscription.
    let megan = Ews::basic(&m, MEGAN, MEGAN_PASSWORD);
    let theirs = megan.call(&get_events(&id, &next)).await;
    assert_eq!(theirs.codes(), ["ErrorSubscriptionAccessDenied"]);

    // Not read within its timeout, it expires.
    m.clock().advance(Duration::from_secs(11 * 60));
    let expired = adele.call(&get_events(&id, &next)).await;
    assert_eq!(expired.codes(), ["ErrorExpiredSubscription"]);

    let sub = adele
        .call(&subscribe(
            "PullSubscriptionRequest",
            &["inbox"],
            "<t:Timeout>10</t:Timeout>",
        ))
        .await;
    let id = sub.texts("SubscriptionId").remove(0);
    let gone = adele
        .call(&format!(
            "<m:Unsubscribe><m:SubscriptionId>{id}</m:SubscriptionId></m:Unsubscribe>"
        ))
        .await;
    gone.ok();
    let after = adele.call(&get_events(&id, &next)).await;
    assert_eq!(after.codes(), ["ErrorSubscriptionNotFound"]);

    validate_all(&[&adele, &megan]);
    exgate_testkit::xsd::validate_soap(&[
        envelope(
            "",
            &subscribe(
                "PullSubscriptionRequest",
                &["inbox"],
                "<t:Timeout>10</t:Timeout>",
            ),
        ),
        envelope("", &get_events(&id, &next)),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn forgotten_subscriptions_and_a_server_without_streaming_say_so() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let adele = Ews::basic(&m, ADELE, ADELE_PASSWORD);
    let sub = adele
        .call(&subscribe("StreamingSubscriptionRequest", &["inbox"], ""))
        .await;
    let id = sub.texts("SubscriptionId").remove(0);
    let mut stream = Stream::open(&adele, &id).await;
    stream.next().await.unwrap();
    m.ews_state().expire_subscriptions();
    assert_eq!(m.ews_state().subscriptions(), 0);
    let lost = stream.until("ResponseCode").await;
    assert!(lost.contains("ErrorSubscriptionNotFound"), "{lost}");
    assert!(lost.contains(&format!("<m:ErrorSubscriptionIds><t:SubscriptionId>{id}")));
    assert!(stream.next().await.is_none());
    let again = adele.call(&get_streaming(&id, 1)).await;
    assert_eq!(again.codes(), ["ErrorSubscriptionNotFound"]);

    // Exchange 2010 before SP1: no streaming, pull works.
    m.change_ews_switches(&EwsSwitchChange {
        streaming: Some(false),
        ..EwsSwitchChange::default()
    })
    .unwrap();
    let refused = adele
        .call(&subscribe("StreamingSubscriptionRequest", &["inbox"], ""))
        .await;
    assert_eq!(refused.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(refused.text.contains("ErrorSchemaValidation"));
    let refused = adele.call(&get_streaming(&id, 1)).await;
    assert_eq!(refused.status, StatusCode::INTERNAL_SERVER_ERROR);
    let pull = adele
        .call(&subscribe(
            "PullSubscriptionRequest",
            &["inbox"],
            "<t:Timeout>5</t:Timeout>",
        ))
        .await;
    pull.ok();

    let mut answers = adele.bodies();
    answers.extend(stream.envelopes);
    exgate_testkit::xsd::validate_soap(&answers).unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn impersonation_and_delegate_access_reach_other_mailboxes() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    // Megan, the service account, impersonates Adele (ApplicationImpersonation).
    let megan = Ews::basic(&m, MEGAN, MEGAN_PASSWORD);
    let as_adele = impersonate(ADELE);
    let sub = megan
        .call_with(
            &as_adele,
            &subscribe(
                "PullSubscriptionRequest",
                &["inbox"],
                "<t:Timeout>10</t:Timeout>",
            ),
        )
        .await;
    sub.ok();
    let id = sub.texts("SubscriptionId").remove(0);
    let start = sub.texts("Watermark").remove(0);
    deliver(&m, "To Adele").await;
    let events = megan.call_with(&as_adele, &get_events(&id, &start)).await;
    events.ok();
    assert_eq!(events.count("<t:NewMailEvent>"), 1, "{}", events.text);
    // Without the impersonation header it is not Megan's own subscription.
    let own = megan.call(&get_events(&id, &start)).await;
    assert_eq!(own.codes(), ["ErrorSubscriptionAccessDenied"]);

    // Adele reads Sales as a delegate (FullAccess).
    let adele = Ews::basic(&m, ADELE, ADELE_PASSWORD);
    let sub = adele
        .call(&subscribe_to(
            "PullSubscriptionRequest",
            &dfid_of("inbox", SALES),
            "<t:Timeout>10</t:Timeout>",
        ))
        .await;
    sub.ok();
    let id = sub.texts("SubscriptionId").remove(0);
    let start = sub.texts("Watermark").remove(0);
    megan
        .call(&create_message(
            "SendAndSaveCopy",
            "To Sales",
            &[SALES],
            "hi",
        ))
        .await
        .ok();
    let events = adele.call(&get_events(&id, &start)).await;
    events.ok();
    assert_eq!(events.count("<t:NewMailEvent>"), 1, "{}", events.text);
    // Adele's own deliveries are not Sales's.
    deliver(&m, "To Adele again").await;
    let next = events.texts("Watermark").pop().unwrap();
    let quiet = adele.call(&get_events(&id, &next)).await;
    assert_eq!(quiet.count("<t:StatusEvent>"), 1, "{}", quiet.text);

    validate_all(&[&megan, &adele]);
}
