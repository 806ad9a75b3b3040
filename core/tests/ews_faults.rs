//! The EWS backend under faults: sends and an export through an Exchange Server (the mock EWS,
//! Basic as Adele) that answers one request in five with `ErrorServerBusy` (the `429` of the
//! shared plan), 503, a reset (before or after doing the work) or a 3 s delay. Every send is
//! delivered exactly once — a lost SendItem answer is repeated by ID and finds the draft gone, a
//! lost CreateItem answer at worst leaves an orphan draft — and the export is byte-identical to a
//! fault-free one.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use exgate_core::auth::SignIn;
use exgate_core::clock::SystemClock;
use exgate_core::config::NetworkSettings;
use exgate_core::connections::Connections;
use exgate_core::export;
use exgate_core::governor::GovernorPolicy;
use exgate_core::mailbox::{Backend, Body, MailboxRef, NewAttachment, NewMessage, Recipient};
use exgate_core::mailboxes::Mailboxes;
use exgate_core::model::ConnectionSpec;
use exgate_core::pipeline::Limits;
use exgate_core::secret::{Secret, Vault};
use exgate_core::store::SqliteStore;
use exgate_testkit::entra::{Seed, seed};
use exgate_testkit::graph::fixtures::{FixtureSpec, generate};
use exgate_testkit::{FaultKind, FaultRule, MockMicrosoft, Service};

/// One EWS request in five faulted, evenly among the kinds the issue names, as a faulting proxy
/// in front of Exchange would.
fn chaos(seed: u64) -> FaultRule {
    FaultRule::chaos(
        0.2,
        seed,
        vec![
            (
                1,
                FaultKind::TooManyRequests {
                    retry_after: Some("1".into()),
                },
            ),
            (1, FaultKind::ServiceUnavailable { retry_after: None }),
            (1, FaultKind::Reset),
            (1, FaultKind::ResetAfter),
            (1, FaultKind::Delay { ms: 3_000 }),
        ],
    )
    .as_proxy()
    .service(Service::Ews)
}

/// An Exchange Server connection to the mock's EWS, Basic as Adele.
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
        graph_url: Some(mock.graph_url().parse().unwrap()),
        ..NetworkSettings::default()
    };
    let signin = Arc::new(SignIn::new(store, connections.clone(), network.clone(), clock).unwrap());
    connections
        .add(
            "onprem",
            &ConnectionSpec {
                ews_url: Some(mock.ews_url()),
                auth: Some("basic".into()),
                username: Some(seed::ADELE.into()),
                password: Some(Secret::new(seed::ADELE_PASSWORD)),
                ..ConnectionSpec::default()
            },
        )
        .await
        .unwrap();
    let policy = GovernorPolicy {
        requests: 1_000_000,
        ..GovernorPolicy::default()
    };
    let mailboxes = Mailboxes::new(
        signin,
        connections,
        vault,
        network,
        policy,
        Limits::default(),
    )
    .unwrap();
    let backend = mailboxes.open(Some("onprem"), None).await.unwrap();
    assert_eq!(backend.protocol, "EWS");
    backend
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_sends_through_faults_all_arrive_once() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let backend = onprem(&mock, dir.path()).await;
    // Sign in before the faults start, so they hit the mailbox requests.
    backend
        .mail()
        .unwrap()
        .folders(&MailboxRef::Me)
        .await
        .unwrap();
    mock.add_fault(chaos(8)).unwrap();

    let limit = Arc::new(tokio::sync::Semaphore::new(8));
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..200 {
        let (backend, limit) = (backend.clone(), Arc::clone(&limit));
        sends.spawn(async move {
            let _slot = limit.acquire().await.unwrap();
            let mut message = NewMessage {
                to: vec![Recipient::address(seed::MEGAN)],
                cc: vec![],
                bcc: vec![],
                subject: format!("ews fault send {i:03}"),
                body: Body::text("through faults"),
                attachments: vec![],
                importance: Default::default(),
                from: None,
                save_to_sent: true,
            };
            if i % 10 == 0 {
                message.attachments.push(NewAttachment {
                    name: "note.txt".into(),
                    content_type: "text/plain".into(),
                    content: format!("attachment {i}").into_bytes().into(),
                });
            }
            let sent = backend
                .mail()
                .unwrap()
                .send(&MailboxRef::Me, &message)
                .await;
            (i, sent.map_err(|e| e.to_string()))
        });
    }
    let mut failed = Vec::new();
    while let Some(done) = sends.join_next().await {
        let (i, sent) = done.unwrap();
        if let Err(e) = sent {
            failed.push((i, e));
        }
    }
    let report = mock.fault_report();
    assert!(failed.is_empty(), "{} failed: {failed:?}", failed.len());
    assert!(
        report.total >= 50,
        "the chaos hit only {} requests",
        report.total
    );
    for kind in ["429", "503", "reset", "reset_after", "delay"] {
        assert!(report.count(kind) > 0, "no {kind} in {report:?}");
    }

    let mut delivered: HashMap<String, usize> = HashMap::new();
    for (_, subject) in mock.delivered(seed::MEGAN) {
        *delivered.entry(subject).or_default() += 1;
    }
    let ours: Vec<_> = delivered
        .iter()
        .filter(|(s, _)| s.starts_with("ews fault send "))
        .collect();
    assert_eq!(ours.len(), 200, "delivered: {ours:?}");
    let twice: Vec<_> = ours.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    // And submitted once each: no second copy went anywhere else either.
    let submitted = mock
        .submitted(seed::ADELE)
        .into_iter()
        .filter(|(_, s)| s.starts_with("ews fault send "))
        .count();
    assert_eq!(submitted, 200);
}

/// Every file under `dir`, by its path relative to `dir`.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_through_faults_is_byte_identical_to_one_without() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    mock.load_mailbox(generate(FixtureSpec {
        mailbox: seed::ADELE.into(),
        messages: 3_000,
        attachment_every: 10,
        events_years: 0,
        contacts: 0,
        seed: 11,
    }))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let backend = onprem(&mock, dir.path()).await;
    let adele = MailboxRef::Me;
    let export = |to: &'static str| {
        let (mail, adele, out) = (
            backend.mail_handle().unwrap(),
            adele.clone(),
            dir.path().join(to),
        );
        async move {
            let report = export::export_folder(mail, &adele, None, &out, &|_| {})
                .await
                .unwrap();
            (report, tree(&out))
        }
    };

    let before = mock.ews_requests();
    let (clean_report, clean) = export("clean").await;
    // MIME comes in batches: far fewer requests than messages.
    let requests = mock.ews_requests() - before;
    assert!(
        requests < clean_report.exported / 5,
        "{requests} EWS requests for {} messages",
        clean_report.exported
    );
    assert!(clean_report.failed.is_empty(), "{:?}", clean_report.failed);
    // Without a folder, EWS exports the Inbox: most of the generated mailbox.
    assert!(clean_report.exported >= 1_000, "{clean_report:?}");

    mock.add_fault(chaos(3)).unwrap();
    let (faulted_report, faulted) = export("faulted").await;
    let report = mock.fault_report();
    assert!(
        report.total >= 20,
        "the chaos hit only {} requests",
        report.total
    );
    assert!(
        faulted_report.failed.is_empty(),
        "{} failed: {:?}",
        faulted_report.failed.len(),
        &faulted_report.failed[..faulted_report.failed.len().min(5)]
    );
    assert_eq!(faulted_report.exported, clean_report.exported);
    assert_eq!(faulted.len(), clean.len());
    let differ: Vec<_> = clean
        .iter()
        .filter(|(path, bytes)| faulted.get(*path) != Some(bytes))
        .map(|(path, _)| path)
        .take(5)
        .collect();
    assert!(differ.is_empty(), "files that differ: {differ:?}");
}
