//! `cargo xtask bench` part 3: export a 20,000-message mailbox over EWS (Basic, as Adele) from
//! the mock Exchange Server with throttling on, folder by folder, and report the rate of EWS
//! requests as a fraction of what the simulated throttling policy allows, with the throttling
//! replies the client met. Not a criterion bench: one timed run, reported as ratios.
//!
//! The policy is the mock's stand-in for Exchange's default (`EwsThrottlePolicy::exchange_default`:
//! 27 concurrent, 1,000 requests a minute); exgate's governor is given the same numbers, as an
//! administrator would configure it for their server. MIME comes 20 messages to a `GetItem`, so
//! the run takes about a minute.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use exgate_core::auth::SignIn;
use exgate_core::clock::SystemClock;
use exgate_core::config::NetworkSettings;
use exgate_core::connections::Connections;
use exgate_core::export;
use exgate_core::governor::GovernorPolicy;
use exgate_core::mailbox::{FolderRef, MailboxRef};
use exgate_core::mailboxes::Mailboxes;
use exgate_core::model::ConnectionSpec;
use exgate_core::pipeline::Limits;
use exgate_core::secret::{Secret, Vault};
use exgate_core::store::SqliteStore;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};
use exgate_testkit::ews::EwsThrottlePolicy;
use exgate_testkit::graph::fixtures::{FixtureSpec, generate};

fn main() {
    let messages: usize = std::env::var("EXGATE_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let throttle = EwsThrottlePolicy::exchange_default();
    let (budget, window_secs) = (throttle.budget, throttle.window_secs);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let mock = MockMicrosoft::start(Seed::contoso()).await.expect("mock");
        mock.load_mailbox(generate(FixtureSpec {
            mailbox: seed::ADELE.into(),
            messages,
            attachment_every: 10,
            events_years: 0,
            contacts: 0,
            seed: 7,
        }))
        .expect("fixtures load");
        mock.set_ews_throttling(Some(throttle))
        .expect("throttling");

        let dir = tempfile::tempdir().expect("tempdir");
        let vault = Arc::new(Vault::open_or_create(&dir.path().join("k")).expect("vault"));
        let store = Arc::new(
            SqliteStore::open(&dir.path().join("db"), vault.clone())
                .await
                .expect("store"),
        );
        let clock = Arc::new(SystemClock);
        let connections = Arc::new(Connections::new(store.clone(), vec![], clock.clone()));
        let network = NetworkSettings {
            authority_host: Some(mock.base_url().parse().expect("url")),
            graph_url: Some(mock.graph_url().parse().expect("url")),
            ..NetworkSettings::default()
        };
        let spec = ConnectionSpec {
            ews_url: Some(mock.ews_url()),
            auth: Some("basic".into()),
            username: Some(seed::ADELE.into()),
            password: Some(Secret::new(seed::ADELE_PASSWORD)),
            ..ConnectionSpec::default()
        };
        connections.add("bench", &spec).await.expect("connection");
        let signin = Arc::new(
            SignIn::new(store, connections.clone(), network.clone(), clock).expect("signin"),
        );
        let window = Duration::from_secs(window_secs);
        let policy = GovernorPolicy {
            concurrent: throttle.max_concurrency,
            requests: budget,
            window,
            burst: 20,
        };
        let mailboxes = Mailboxes::new(
            signin,
            connections,
            vault,
            network,
            policy,
            Limits::default(),
        )
        .expect("mailboxes")
        // The EWS governor: `[ews]`, which an administrator sets to their server's policy.
        .with_ews_policy(policy);
        let backend = mailboxes.open(Some("bench"), None).await.expect("backend");
        let mail = backend.mail_handle().expect("mail");
        let me = MailboxRef::Me;

        let before = mock.ews_requests();
        let started = Instant::now();
        let folders = mail.folders(&me).await.expect("folders");
        let (mut exported, mut failed, mut files) = (0usize, 0usize, 0usize);
        for (i, folder) in folders.iter().filter(|f| f.total > 0).enumerate() {
            let out = dir.path().join(format!("export-{i}"));
            let report = export::export_folder(
                Arc::clone(&mail),
                &me,
                Some(&FolderRef::Id(folder.id.clone())),
                &out,
                &|_| {},
            )
            .await
            .expect("export");
            exported += report.exported;
            failed += report.failed.len();
            files += count_eml(&out);
        }
        let took = started.elapsed().as_secs_f64();
        let sent = mock.ews_requests() - before;
        let throttled = mock.ews_state().throttled(seed::ADELE);
        let accepted = sent - throttled;
        let allowed = f64::from(budget) / window.as_secs_f64();
        let achieved = accepted as f64 / took;
        println!(
            "ews export: {exported} messages ({failed} failed, {files} files) in {took:.1} s = {:.0} msg/s",
            exported as f64 / took
        );
        println!(
            "ews export: {sent} EWS requests ({:.1} messages per request), {throttled} throttling replies (ErrorServerBusy / ErrorExceededConnectionCount)",
            exported as f64 / sent.max(1) as f64
        );
        println!(
            "ews export: {achieved:.1} accepted requests/s against {allowed:.0} allowed by the simulated policy = {:.0}% of the allowance",
            100.0 * achieved / allowed
        );
        println!("##row|EWS export of {exported} messages: throttling replies|{throttled}|0");
        println!(
            "##row|EWS export: share of the allowance|{:.1}%|>= 97%",
            100.0 * achieved / allowed
        );
        assert_eq!(failed, 0, "failed items");
        assert_eq!(exported, messages, "every message exported");
        assert_eq!(files, exported, "duplicated or missing files");
    });
}

/// The `.eml` files under `dir`, at any depth.
fn count_eml(dir: &std::path::Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("dir").filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "eml") {
                n += 1;
            }
        }
    }
    n
}
