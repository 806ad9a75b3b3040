//! `cargo xtask bench` part 2: export a 20,000-message mailbox from the throttled mock Graph and
//! report the rate as a fraction of what the simulated per-mailbox policy allows; then list a year
//! of calendar events; then stream a 100 MB attachment to a file and report how much the process
//! grew. Not a criterion bench: one timed run, reported as ratios.
//!
//! The policy is Microsoft's (4 concurrent, 10,000 requests per window) with the window shortened
//! so the run takes seconds; the fraction is what matters, not the absolute time.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use exgate_core::auth::SignIn;
use exgate_core::clock::SystemClock;
use exgate_core::config::NetworkSettings;
use exgate_core::connections::Connections;
use exgate_core::export;
use exgate_core::governor::GovernorPolicy;
use exgate_core::mailbox::{MailboxRef, TimeZone};
use exgate_core::mailboxes::Mailboxes;
use exgate_core::model::ConnectionSpec;
use exgate_core::pipeline::Limits;
use exgate_core::secret::{Secret, Vault};
use exgate_core::store::SqliteStore;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};
use exgate_testkit::graph::fixtures::{FixtureSpec, generate};
use exgate_testkit::graph::{Address, AttachmentContent, MessageContent, ThrottlePolicy};

fn main() {
    let messages: usize = std::env::var("EXGATE_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let window = Duration::from_secs(20);
    let requests = 10_000u32;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let mock = MockMicrosoft::start(Seed::contoso()).await.expect("mock");
        let content = generate(FixtureSpec {
            mailbox: seed::ADELE.into(),
            messages,
            attachment_every: 10,
            events_years: 1,
            contacts: 200,
            seed: 7,
        });
        mock.load_mailbox(content).expect("fixtures load");
        mock.set_graph_throttling(Some(ThrottlePolicy { concurrent: 4, requests, window }));

        let dir = tempfile::tempdir().expect("tempdir");
        let vault = Arc::new(Vault::open_or_create(&dir.path().join("k")).expect("vault"));
        let store = Arc::new(SqliteStore::open(&dir.path().join("db"), vault.clone()).await.expect("store"));
        let clock = Arc::new(SystemClock);
        let connections = Arc::new(Connections::new(store.clone(), vec![], clock.clone()));
        let network = NetworkSettings {
            authority_host: Some(mock.base_url().parse().expect("url")),
            graph_url: Some(mock.graph_url().parse().expect("url")),
            ..NetworkSettings::default()
        };
        let spec = ConnectionSpec {
            tenant: Some(seed::TENANT_ID.into()),
            auth: Some("oauth2-app-only".into()),
            client_id: Some(seed::DAEMON_APP.into()),
            client_secret: Some(Secret::new(seed::DAEMON_APP_SECRET)),
            ..ConnectionSpec::default()
        };
        connections.add("bench", &spec).await.expect("connection");
        let signin = Arc::new(SignIn::new(store, connections.clone(), network.clone(), clock).expect("signin"));
        let policy = GovernorPolicy { concurrent: 4, requests, window, burst: 20 };
        let mailboxes = Mailboxes::new(signin, connections, vault, network, policy, Limits::default()).expect("mailboxes");
        let backend = mailboxes.open(Some("bench"), None).await.expect("backend");
        let adele = MailboxRef::User(seed::ADELE.into());

        let out = dir.path().join("export");
        let before = mock.graph_requests();
        let started = Instant::now();
        let report = export::export_folder(backend.mail_handle().expect("mail"), &adele, None, &out, &|_| {})
            .await
            .expect("export");
        let took = started.elapsed().as_secs_f64();
        // One folder per mail folder, each holding `.eml` files; the manifest beside them.
        let files: usize = std::fs::read_dir(&out)
            .expect("dir")
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .map(|d| std::fs::read_dir(d.path()).expect("folder").filter(|f| f.as_ref().is_ok_and(|f| f.path().extension().is_some_and(|x| x == "eml"))).count())
            .sum();
        let inner_requests = report.exported as f64 + (mock.graph_requests() - before) as f64 - (report.exported as f64 / 20.0).ceil();
        let allowed = f64::from(requests) / window.as_secs_f64();
        let achieved = inner_requests / took;
        println!("export: {} messages ({} failed, {} files) in {took:.1} s = {:.0} msg/s", report.exported, report.failed.len(), files, report.exported as f64 / took);
        println!(
            "export: {achieved:.0} requests/s against {allowed:.0} allowed by the simulated policy = {:.0}% of the allowance",
            100.0 * achieved / allowed
        );
        let throttled = mock.requests().iter().filter(|r| r.status == 429).count();
        println!("##row|Graph export of {} messages: 429 replies|{throttled}|0", report.exported);
        println!("##row|Graph export: share of the allowance|{:.1}%|>= 97%", 100.0 * achieved / allowed);
        assert!(report.failed.is_empty(), "failed items: {:?}", &report.failed[..report.failed.len().min(5)]);
        assert_eq!(files, report.exported, "duplicated or missing files");

        let started = Instant::now();
        let year = time::macros::datetime!(2026-01-01 0:00 UTC);
        let events = backend.calendar().expect("calendar").events(&adele, year, year + time::Duration::days(365), Some(&TimeZone::parse("Europe/Berlin").expect("a zone"))).await.expect("events");
        let took = started.elapsed().as_secs_f64();
        println!("calendar: {} events of a year listed in {took:.2} s = {:.0} events/s", events.len(), events.len() as f64 / took);

        // A 100 MB attachment, streamed to a file: how much the process grows while it passes.
        let size: u64 = 100 * 1024 * 1024;
        let mut large = MessageContent::new("inbox", "large", Address::new("Megan", seed::MEGAN), time::OffsetDateTime::now_utc());
        large.attachments = vec![AttachmentContent::generated("large.bin", "application/octet-stream", size)];
        let id = mock.add_messages(seed::ADELE, &[large]).expect("large message").remove(0);
        let mail = backend.mail().expect("mail");
        let message = mail.message(&adele, &id, None).await.expect("message");
        // The export's own peak is higher: start the high-water mark afresh (Linux: `5` to
        // clear_refs resets VmHWM to the current resident size).
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let before = peak_memory();
        let started = Instant::now();
        let download = mail.attachment(&adele, &id, &message.attachments[0].id).await.expect("attachment");
        let written = export::save(download.content, &dir.path().join("large.bin")).await.expect("saved");
        let took = started.elapsed().as_secs_f64();
        let grew = peak_memory().saturating_sub(before);
        assert_eq!(written, size);
        println!(
            "attachment: {} MiB streamed to a file in {took:.2} s; peak memory grew by {} KiB ({:.2}% of its size)",
            size >> 20,
            grew / 1024,
            100.0 * grew as f64 / size as f64
        );
    });
}

/// This process's peak resident memory so far, in bytes (the kernel's `VmHWM`).
fn peak_memory() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .map(str::to_owned)
        })
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}
