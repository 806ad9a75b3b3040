//! Mailbox backends under faults, Graph and EWS alike: one request in five answered by a faulting
//! proxy with 429 (`ErrorServerBusy` for EWS), 503, a reset before or after the server did the
//! work, or a 3 s delay. 200 sends are delivered exactly once each — Graph finds a lost draft by
//! its `internetMessageId`, EWS (Basic and NTLM) repeats a lost SendItem by ID and finds the
//! draft gone — and an export is byte-identical to a fault-free one.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use exgate_core::auth::SignIn;
use exgate_core::clock::SystemClock;
use exgate_core::config::NetworkSettings;
use exgate_core::connections::Connections;
use exgate_core::export::{self, ExportReport};
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

/// One request in five faulted, evenly among the kinds the issue names, as a faulting proxy in
/// front of the server would (a `$batch` is one request to it); `service` narrows it to EWS.
fn chaos(seed: u64, service: Option<Service>) -> FaultRule {
    let rule = FaultRule::chaos(
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
    .as_proxy();
    match service {
        Some(s) => rule.service(s),
        None => rule,
    }
}

/// The backend of connection `name` (made from `spec`) against the mock, with Microsoft's
/// concurrency and a budget that lets the test run in seconds (the real 10,000 per 10 minutes
/// is the bench's business).
async fn backend(mock: &MockMicrosoft, dir: &Path, name: &str, spec: ConnectionSpec) -> Backend {
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
    connections.add(name, &spec).await.unwrap();
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
    mailboxes.open(Some(name), None).await.unwrap()
}

/// Graph, app-only (the daemon app), acting on Adele's mailbox.
async fn daemon(mock: &MockMicrosoft, dir: &Path) -> (Backend, MailboxRef) {
    let spec = ConnectionSpec {
        tenant: Some(seed::TENANT_ID.into()),
        auth: Some("oauth2-app-only".into()),
        client_id: Some(seed::DAEMON_APP.into()),
        client_secret: Some(Secret::new(seed::DAEMON_APP_SECRET)),
        ..ConnectionSpec::default()
    };
    let backend = backend(mock, dir, "daemon", spec).await;
    (backend, MailboxRef::User(seed::ADELE.into()))
}

/// An Exchange Server connection to the mock's EWS as Adele, with `auth` (`basic`, `ntlm`).
async fn onprem(mock: &MockMicrosoft, dir: &Path, auth: &str) -> (Backend, MailboxRef) {
    let spec = ConnectionSpec {
        ews_url: Some(mock.ews_url()),
        auth: Some(auth.into()),
        username: Some(seed::ADELE.into()),
        password: Some(Secret::new(seed::ADELE_PASSWORD)),
        ..ConnectionSpec::default()
    };
    let backend = backend(mock, dir, "onprem", spec).await;
    assert_eq!(backend.protocol, "EWS");
    (backend, MailboxRef::Me)
}

/// 200 sends to Megan (every 10th with an attachment), 8 in flight, through `rule`: none fails,
/// every fault kind occurs, each message is delivered exactly once.
async fn sends_arrive_once(
    mock: &MockMicrosoft,
    (backend, mailbox): (Backend, MailboxRef),
    rule: FaultRule,
    prefix: &'static str,
) {
    // Sign in before the faults start, so they hit the mailbox requests.
    backend.mail().unwrap().folders(&mailbox).await.unwrap();
    mock.add_fault(rule).unwrap();

    let limit = Arc::new(tokio::sync::Semaphore::new(8));
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..200 {
        let (backend, mailbox, limit) = (backend.clone(), mailbox.clone(), Arc::clone(&limit));
        sends.spawn(async move {
            let _slot = limit.acquire().await.unwrap();
            let mut message = NewMessage {
                to: vec![Recipient::address(seed::MEGAN)],
                cc: vec![],
                bcc: vec![],
                subject: format!("{prefix}{i:03}"),
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
            let sent = backend.mail().unwrap().send(&mailbox, &message).await;
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
        .filter(|(s, _)| s.starts_with(prefix))
        .collect();
    assert_eq!(ours.len(), 200, "delivered: {ours:?}");
    let twice: Vec<_> = ours.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    // And submitted once each: no second copy went anywhere else either.
    let submitted = mock
        .submitted(seed::ADELE)
        .into_iter()
        .filter(|(_, s)| s.starts_with(prefix))
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

/// A generated mailbox of 3,000 messages for Adele.
fn three_thousand(mock: &MockMicrosoft) {
    mock.load_mailbox(generate(FixtureSpec {
        mailbox: seed::ADELE.into(),
        messages: 3_000,
        attachment_every: 10,
        events_years: 0,
        contacts: 0,
        seed: 11,
    }))
    .unwrap();
}

/// Exports the whole mailbox without faults, then through `rule`: the same files, byte for
/// byte, and nothing failed. `check_clean` looks at the fault-free export right after it ran.
async fn export_is_byte_identical(
    mock: &MockMicrosoft,
    (backend, mailbox): (Backend, MailboxRef),
    dir: &Path,
    rule: FaultRule,
    check_clean: impl FnOnce(&ExportReport),
) {
    let export = |to: &'static str| {
        let (mail, mailbox, out) = (
            backend.mail_handle().unwrap(),
            mailbox.clone(),
            dir.join(to),
        );
        async move {
            let report = export::export_folder(mail, &mailbox, None, &out, &|_| {})
                .await
                .unwrap();
            (report, tree(&out))
        }
    };

    let (clean_report, clean) = export("clean").await;
    check_clean(&clean_report);
    assert!(clean_report.failed.is_empty(), "{:?}", clean_report.failed);
    assert!(clean_report.exported >= 3_000, "{clean_report:?}");

    mock.add_fault(rule).unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_sends_through_faults_all_arrive_once() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let graph = daemon(&mock, dir.path()).await;
    sends_arrive_once(&mock, graph, chaos(8, None), "fault send ").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_sends_over_ews_through_faults_all_arrive_once() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ews = onprem(&mock, dir.path(), "basic").await;
    sends_arrive_once(&mock, ews, chaos(8, Some(Service::Ews)), "ews fault send ").await;
}

/// NTLM authenticates a TCP connection: a reset loses the authenticated connection, and the
/// next request must shake hands again on a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_sends_over_ews_with_ntlm_through_faults_all_arrive_once() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ews = onprem(&mock, dir.path(), "ntlm").await;
    sends_arrive_once(&mock, ews, chaos(5, Some(Service::Ews)), "ntlm fault send ").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_through_faults_is_byte_identical_to_one_without() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    three_thousand(&mock);
    let dir = tempfile::tempdir().unwrap();
    let graph = daemon(&mock, dir.path()).await;
    export_is_byte_identical(&mock, graph, dir.path(), chaos(3, None), |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_over_ews_through_faults_is_byte_identical_to_one_without() {
    let mock = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    three_thousand(&mock);
    let dir = tempfile::tempdir().unwrap();
    let ews = onprem(&mock, dir.path(), "basic").await;
    let before = mock.ews_requests();
    // MIME comes in batches: far fewer requests than messages.
    let batched = |clean: &ExportReport| {
        let requests = mock.ews_requests() - before;
        assert!(
            requests < clean.exported / 5,
            "{requests} EWS requests for {} messages",
            clean.exported
        );
    };
    let rule = chaos(3, Some(Service::Ews));
    export_is_byte_identical(&mock, ews, dir.path(), rule, batched).await;
}
