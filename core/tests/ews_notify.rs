//! Listening to an Exchange Server mailbox over EWS against the mock: streaming notifications
//! (a delivered message is heard, a closed connection is reopened, a lost subscription is a
//! gap), and pull subscriptions where the server has no streaming.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use exgate_core::auth::SignIn;
use exgate_core::clock::SystemClock;
use exgate_core::config::NetworkSettings;
use exgate_core::connections::Connections;
use exgate_core::governor::GovernorPolicy;
use exgate_core::mailbox::{
    Backend, Body, EventDraft, EventTime, FolderRef, MailboxRef, NewMessage, Recipient, TimeZone,
    WellKnownFolder,
};
use exgate_core::mailboxes::Mailboxes;
use exgate_core::model::ConnectionSpec;
use exgate_core::notify::{Listener, Signal, Watched};
use exgate_core::pipeline::Limits;
use exgate_core::secret::{Secret, Vault};
use exgate_core::store::SqliteStore;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};
use exgate_testkit::ews::EwsSwitchChange;
use time::macros::datetime;

/// An Exchange Server connection to the mock's EWS as Adele (Basic).
async fn onprem(mock: &MockMicrosoft, dir: &Path) -> Backend {
    let vault = Arc::new(Vault::open_or_create(&dir.join("key")).unwrap());
    let store = Arc::new(
        SqliteStore::open(&dir.join("db"), vault.clone())
            .await
            .unwrap(),
    );
    let clock = Arc::new(SystemClock);
    let connections = Arc::new(Connections::new(store.clone(), vec![], clock.clone()));
    let network = NetworkSettings {
        authority_host: Some(mock.base_url().parse().unwrap()),
        ..NetworkSettings::default()
    };
    let signin = Arc::new(SignIn::new(store, connections.clone(), network.clone(), clock).unwrap());
    let spec = ConnectionSpec {
        ews_url: Some(mock.ews_url()),
        auth: Some("basic".into()),
        username: Some(seed::ADELE.into()),
        password: Some(Secret::new(seed::ADELE_PASSWORD)),
        ..ConnectionSpec::default()
    };
    connections.add("onprem", &spec).await.unwrap();
    let mailboxes = Mailboxes::new(
        signin,
        connections,
        vault,
        network,
        GovernorPolicy::default(),
        Limits::default(),
    )
    .unwrap();
    let backend = mailboxes.open(Some("onprem"), None).await.unwrap();
    assert_eq!(backend.protocol, "EWS");
    backend
}

fn inbox() -> Watched {
    Watched::Mail {
        folder: FolderRef::WellKnown(WellKnownFolder::Inbox),
    }
}

/// Adele sends herself a message (it lands in her Inbox and her Sent Items).
async fn deliver(backend: &Backend, subject: &str) {
    let message = NewMessage {
        to: vec![Recipient::address(seed::ADELE)],
        cc: vec![],
        bcc: vec![],
        subject: subject.into(),
        body: Body::text("hello"),
        attachments: vec![],
        importance: Default::default(),
        from: None,
        save_to_sent: true,
    };
    backend
        .mail()
        .unwrap()
        .send(&MailboxRef::Me, &message)
        .await
        .unwrap();
}

/// The next signal, which must come.
async fn next(listener: &mut Box<dyn Listener>) -> Signal {
    tokio::time::timeout(Duration::from_secs(60), listener.next())
        .await
        .expect("no signal within a minute")
        .unwrap()
}

#[tokio::test]
async fn streaming_hears_mail_reopens_closed_connections_and_reports_lost_subscriptions() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let backend = onprem(&mock, dir.path()).await;
    let listen = backend.listen.clone().expect("EWS listens");
    let mut listener = listen
        .listen(&MailboxRef::Me, &[inbox(), Watched::Calendar])
        .await
        .unwrap();
    assert_eq!(mock.ews_state().subscriptions(), 2, "one per watched thing");

    deliver(&backend, "First").await;
    assert_eq!(next(&mut listener).await, Signal::Changed(Some(inbox())));

    // The server ends the connection (its ConnectionTimeout): the listener opens another on
    // the same subscriptions, and what happened meanwhile is heard, without a gap.
    mock.ews_state().close_streams();
    deliver(&backend, "While reconnecting").await;
    assert_eq!(next(&mut listener).await, Signal::Changed(Some(inbox())));
    assert_eq!(
        mock.ews_state().subscriptions(),
        2,
        "the same subscriptions"
    );

    // The server forgets the subscriptions: subscribe again, and say a gap.
    mock.ews_state().expire_subscriptions();
    assert_eq!(next(&mut listener).await, Signal::Gap);
    assert_eq!(mock.ews_state().subscriptions(), 2, "subscribed again");
    deliver(&backend, "After the gap").await;
    assert_eq!(next(&mut listener).await, Signal::Changed(Some(inbox())));

    // The calendar is heard on its own subscription.
    let utc = TimeZone::parse("UTC").unwrap();
    let draft = EventDraft {
        subject: Some("Standup".into()),
        start: Some(EventTime::new(datetime!(2026-12-03 09:00), utc)),
        end: Some(EventTime::new(datetime!(2026-12-03 09:15), utc)),
        ..EventDraft::default()
    };
    backend
        .calendar()
        .unwrap()
        .create_event(&MailboxRef::Me, &draft)
        .await
        .unwrap();
    assert_eq!(
        next(&mut listener).await,
        Signal::Changed(Some(Watched::Calendar))
    );

    // A listener dropped ends its subscriptions.
    drop(listener);
    tokio::time::timeout(Duration::from_secs(60), async {
        while mock.ews_state().subscriptions() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the subscriptions are ended");
}

#[tokio::test]
async fn a_server_without_streaming_is_pulled_every_interval() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    mock.change_ews_switches(&EwsSwitchChange {
        streaming: Some(false),
        ..EwsSwitchChange::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let backend = onprem(&mock, dir.path()).await;
    let mut listener = backend
        .listen
        .clone()
        .unwrap()
        .listen(&MailboxRef::Me, &[inbox()])
        .await
        .unwrap();
    assert_eq!(mock.ews_state().subscriptions(), 1, "a pull subscription");
    // Time stands still but for the listener's waits (the connection's store, a SQLite pool
    // on its own threads, is opened above, on the real clock).
    tokio::time::pause();

    deliver(&backend, "Pulled").await;
    let started = tokio::time::Instant::now();
    assert_eq!(next(&mut listener).await, Signal::Changed(Some(inbox())));
    assert!(
        started.elapsed() <= exgate_core::ews::notify::PULL_INTERVAL,
        "heard at the next poll"
    );

    // The pull subscription is forgotten: subscribe again, a gap.
    mock.ews_state().expire_subscriptions();
    assert_eq!(next(&mut listener).await, Signal::Gap);
    deliver(&backend, "Pulled again").await;
    assert_eq!(next(&mut listener).await, Signal::Changed(Some(inbox())));
}

mod wire {
    use exgate_core::ews::wire::notify::EventKind;
    use exgate_core::ews::wire::*;
    use exgate_core::mailbox::MailboxRef;
    use proptest::prelude::*;

    const M: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
    const T: &str = "http://schemas.microsoft.com/exchange/services/2006/types";

    /// One envelope as Exchange streams it (the shape of Microsoft's GetStreamingEvents
    /// example: the envelope in the default namespace, a prefix per part).
    fn exchange_envelope(message: &str) -> String {
        format!(
            r#"<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><soap11:Header xmlns:soap11="http://schemas.xmlsoap.org/soap/envelope/"><ServerVersionInfo xmlns="{T}" MajorVersion="15" MinorVersion="2" MajorBuildNumber="1544" MinorBuildNumber="4"/></soap11:Header><soap11:Body xmlns:soap11="http://schemas.xmlsoap.org/soap/envelope/"><m:GetStreamingEventsResponse xmlns:m="{M}" xmlns:t="{T}"><m:ResponseMessages>{message}</m:ResponseMessages></m:GetStreamingEventsResponse></soap11:Body></Envelope>"#
        )
    }

    fn stream() -> String {
        let ok = r#"<m:GetStreamingEventsResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:ConnectionStatus>OK</m:ConnectionStatus></m:GetStreamingEventsResponseMessage>"#;
        let events = r#"<m:GetStreamingEventsResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Notifications><t:Notification><t:SubscriptionId>SUB1</t:SubscriptionId><t:PreviousWatermark>AQAAAA==</t:PreviousWatermark><t:MoreEvents>false</t:MoreEvents><t:NewMailEvent><t:Watermark>AQAAAB==</t:Watermark><t:TimeStamp>2026-12-02T05:00:00Z</t:TimeStamp><t:ItemId Id="AAMk" ChangeKey="CQAA"/><t:ParentFolderId Id="INBOX" ChangeKey="AQAA"/></t:NewMailEvent><t:MovedEvent><t:Watermark>AQAAAC==</t:Watermark><t:TimeStamp>2026-12-02T05:00:01Z</t:TimeStamp><t:ItemId Id="AAMl" ChangeKey="CQAB"/><t:ParentFolderId Id="ARCHIVE" ChangeKey="AQAA"/><t:OldItemId Id="AAMk" ChangeKey="CQAA"/><t:OldParentFolderId Id="INBOX" ChangeKey="AQAA"/></t:MovedEvent></t:Notification></m:Notifications></m:GetStreamingEventsResponseMessage>"#;
        let closed = r#"<m:GetStreamingEventsResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:ConnectionStatus>Closed</m:ConnectionStatus></m:GetStreamingEventsResponseMessage>"#;
        [ok, events, closed]
            .iter()
            .map(|m| exchange_envelope(m))
            .collect::<Vec<_>>()
            .join("\r\n")
    }

    fn split(bytes: &[u8], sizes: &[usize]) -> Vec<Vec<u8>> {
        let mut splitter = EnvelopeSplitter::new(64 * 1024);
        let mut out = Vec::new();
        let mut rest = bytes;
        let mut i = 0;
        while !rest.is_empty() {
            let n = sizes.get(i).copied().unwrap_or(7).clamp(1, rest.len());
            i += 1;
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            if splitter.push(chunk).is_err() {
                return out;
            }
            while let Some(e) = splitter.next_envelope() {
                out.push(e);
            }
        }
        out
    }

    #[test]
    fn requests_are_schema_valid() {
        let own = RequestContext::for_mailbox(RequestVersion::Exchange2013, &MailboxRef::Me, false);
        let delegate = RequestContext::for_mailbox(
            RequestVersion::Exchange2013,
            &MailboxRef::User("sales@contoso.com".into()),
            false,
        );
        let impersonated = RequestContext::for_mailbox(
            RequestVersion::Exchange2013,
            &MailboxRef::User("sales@contoso.com".into()),
            true,
        );
        let inbox = FolderSpec::Distinguished(DistinguishedFolder::Inbox);
        let streaming = Subscribe {
            folders: vec![inbox.clone(), FolderSpec::Id("AQMkAD=".into())],
            kind: SubscriptionKind::Streaming,
        };
        let pull = Subscribe {
            folders: vec![DistinguishedFolder::Calendar.into()],
            kind: SubscriptionKind::Pull {
                timeout_minutes: 10,
            },
        };
        let documents = vec![
            streaming.to_xml(&own),
            streaming.to_xml(&delegate),
            pull.to_xml(&impersonated),
            GetStreamingEvents {
                subscriptions: vec!["SUB1".into(), "SUB2".into()],
                timeout_minutes: 30,
            }
            .to_xml(&own),
            PullEvents {
                subscription: "SUB1".into(),
                watermark: "AQAAAA==".into(),
            }
            .to_xml(&impersonated),
            Unsubscribe {
                subscription: "SUB1".into(),
            }
            .to_xml(&own),
        ];
        assert!(documents[1].contains("<t:EmailAddress>sales@contoso.com</t:EmailAddress>"));
        assert!(documents[2].contains("<t:PrimarySmtpAddress>sales@contoso.com"));
        exgate_testkit::xsd::validate_soap(&documents).unwrap_or_else(|e| panic!("{e}"));
        exgate_testkit::xsd::validate_soap(&[stream().split("\r\n").nth(1).unwrap()])
            .unwrap_or_else(|e| panic!("the sample: {e}"));
    }

    #[test]
    fn a_stream_decodes_envelope_by_envelope() {
        let envelopes = split(stream().as_bytes(), &[1, 3, 500, 2, 9000]);
        assert_eq!(envelopes.len(), 3);
        let decoded: Vec<StreamingEvents> = envelopes
            .iter()
            .map(|e| decode_streaming_events(e).unwrap().into_single().unwrap())
            .collect();
        assert_eq!(decoded[0].status, Some(ConnectionStatus::Ok));
        let n = &decoded[1].notifications[0];
        assert_eq!(n.subscription, "SUB1");
        assert_eq!(n.events.len(), 2);
        assert_eq!(n.events[0].kind, EventKind::NewMail);
        assert_eq!(n.events[0].parent_folder.as_deref(), Some("INBOX"));
        assert_eq!(n.events[1].kind, EventKind::Moved);
        assert_eq!(n.events[1].old_parent_folder.as_deref(), Some("INBOX"));
        assert_eq!(n.last_watermark(), Some("AQAAAC=="));
        assert_eq!(decoded[2].status, Some(ConnectionStatus::Closed));

        let lost = exchange_envelope(
            r#"<m:GetStreamingEventsResponseMessage ResponseClass="Error"><m:MessageText>The specified subscription was not found.</m:MessageText><m:ResponseCode>ErrorSubscriptionNotFound</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:ErrorSubscriptionIds><t:SubscriptionId>SUB1</t:SubscriptionId></m:ErrorSubscriptionIds><m:ConnectionStatus>Closed</m:ConnectionStatus></m:GetStreamingEventsResponseMessage>"#,
        );
        let error = decode_streaming_events(lost.as_bytes())
            .unwrap()
            .into_single();
        assert!(
            matches!(&error, Err(WireError::Refused(e)) if e.code.as_str() == "ErrorSubscriptionNotFound"),
            "{error:?}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_chunking_gives_the_same_envelopes(sizes in prop::collection::vec(1usize..400, 1..40)) {
            let whole = split(stream().as_bytes(), &[usize::MAX]);
            prop_assert_eq!(split(stream().as_bytes(), &sizes), whole);
        }

        #[test]
        fn no_input_panics(
            bytes in prop::collection::vec(any::<u8>(), 0..4096),
            sizes in prop::collection::vec(1usize..300, 1..20),
            cut in any::<prop::sample::Index>(),
        ) {
            for envelope in split(&bytes, &sizes) {
                let _ = decode_streaming_events(&envelope);
            }
            let _ = decode_pull_events(&bytes);
            let _ = decode_subscribe(&bytes);
            // A real stream, damaged.
            let mut damaged = stream().into_bytes();
            let at = cut.index(damaged.len());
            damaged.splice(at..at, bytes.iter().copied().take(64));
            for envelope in split(&damaged, &sizes) {
                let _ = decode_streaming_events(&envelope).map(|d| d.into_results());
            }
        }
    }

    #[test]
    fn an_envelope_without_end_is_bounded() {
        let mut splitter = EnvelopeSplitter::new(1024);
        splitter.push(b"<Envelope xmlns=\"x\"><Body>").unwrap();
        let mut refused = false;
        for _ in 0..100 {
            if splitter.push(&[b'a'; 64]).is_err() {
                refused = true;
                break;
            }
        }
        assert!(refused, "more than the limit is refused");
        assert!(splitter.pending() <= 1024);
    }
}
