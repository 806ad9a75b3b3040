//! Fetch a generated mailbox's MIME over IMAP from the mock Exchange Online through exgate's IMAP
//! backend (`ImapMailbox`: listing in pages of 500, `mime_many` 50 at a time, each a batched
//! `UID FETCH BODY.PEEK[]`), then export it to files (`export::export_folder`), and report both
//! rates as ratios of a bare async-imap client fetching the same MIME in batches of 50 over one
//! session (no listing, no files). Not a criterion
//! bench: one timed run of each, reported as ratios. `EXGATE_BENCH_MESSAGES` (default 5,000).
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use exgate_core::auth::SignIn;
use exgate_core::auth::credentials::{Credential, Credentials, SignInCredentials};
use exgate_core::clock::SystemClock;
use exgate_core::config::NetworkSettings;
use exgate_core::connections::Connections;
use exgate_core::export;
use exgate_core::governor::Governor;
use exgate_core::mail::imap::{self, ImapMailbox, ImapSettings};
use exgate_core::mail::{MailConnector, MailUrl, xoauth2};
use exgate_core::mailbox::{FolderRef, Mail, MailboxRef, MessageQuery};
use exgate_core::model::{ConnectionSpec, Resource};
use exgate_core::pipeline::{Limits, PageTokens};
use exgate_core::secret::{Secret, Vault};
use exgate_core::store::SqliteStore;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};
use exgate_testkit::graph::fixtures::{FixtureSpec, generate};
use futures_util::TryStreamExt as _;

struct Raw(Option<Vec<u8>>);

impl async_imap::Authenticator for Raw {
    type Response = Vec<u8>;
    fn process(&mut self, _: &[u8]) -> Vec<u8> {
        self.0.take().unwrap_or_default()
    }
}

fn main() {
    let messages: usize = std::env::var("EXGATE_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
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
            ca_pem: Some(mock.mail_ca_pem().into_bytes()),
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
        let signin = Arc::new(
            SignIn::new(store, connections.clone(), network.clone(), clock).expect("signin"),
        );
        let credentials: Arc<dyn Credentials> = Arc::new(SignInCredentials::new(
            signin,
            "bench".into(),
            None,
            Resource::Imap,
        ));
        let url: MailUrl = mock.imap_url().parse().expect("url");
        let connector = MailConnector::new(&network).expect("connector");
        let imap = Arc::new(ImapMailbox::new(
            ImapSettings {
                url: url.clone(),
                connector: connector.clone(),
                credentials: credentials.clone(),
                me: String::new(),
                connection: "bench".into(),
                governor: Governor::new(imap::governor_policy()),
                limits: Limits::default(),
            },
            PageTokens::new(vault, "bench", None),
        ));
        let adele = MailboxRef::User(seed::ADELE.into());
        let folders = imap.folders(&adele).await.expect("folders");
        let mail: Arc<dyn Mail> = imap;

        // exgate's backend: each folder listed (pages of 500), its MIME fetched 50 at a time.
        let started = Instant::now();
        let mut exported = 0usize;
        let mut failed = 0usize;
        for folder in folders.iter().filter(|f| f.total > 0) {
            let query = MessageQuery {
                folder: Some(FolderRef::Id(folder.id.clone())),
                page_size: 500,
                ..MessageQuery::default()
            };
            let mut ids = Vec::new();
            let mut next = None;
            loop {
                let page = mail
                    .messages(&adele, &query, next.as_deref())
                    .await
                    .expect("list");
                ids.extend(page.items.into_iter().map(|m| m.id));
                match page.next {
                    Some(n) => next = Some(n),
                    None => break,
                }
            }
            for chunk in ids.chunks(50) {
                for r in mail.mime_many(&adele, chunk).await.expect("mime") {
                    match r {
                        Ok(_) => exported += 1,
                        Err(_) => failed += 1,
                    }
                }
            }
        }
        let exgate_secs = started.elapsed().as_secs_f64();

        // The same through `export::export_folder`: files written, manifest kept.
        let started = Instant::now();
        let mut files = 0usize;
        for (i, folder) in folders.iter().filter(|f| f.total > 0).enumerate() {
            let report = export::export_folder(
                Arc::clone(&mail),
                &adele,
                Some(&FolderRef::Id(folder.id.clone())),
                &dir.path().join(format!("export-{i}")),
                &|_| {},
            )
            .await
            .expect("export");
            files += report.exported;
            failed += report.failed.len();
        }
        let export_secs = started.elapsed().as_secs_f64();

        // A bare client: one session, UID SEARCH ALL and UID FETCH BODY.PEEK[] by 50.
        let Credential::Bearer(token) = credentials.credential().await.expect("token") else {
            panic!("bearer");
        };
        let started = Instant::now();
        let stream = connector.connect(&url).await.expect("connect");
        let mut client = async_imap::Client::new(stream);
        client.read_response().await.expect("greeting");
        let response = xoauth2::initial_response(seed::ADELE, &token.secret);
        let mut session = client
            .authenticate("XOAUTH2", Raw(Some(response.expose().as_bytes().to_vec())))
            .await
            .map_err(|(e, _)| e)
            .expect("authenticate");
        let mut fetched = 0usize;
        let mut bytes = 0usize;
        for folder in folders.iter().filter(|f| f.total > 0) {
            session.examine(&folder.id).await.expect("examine");
            let mut uids: Vec<u32> = session
                .uid_search("ALL")
                .await
                .expect("search")
                .into_iter()
                .collect();
            uids.sort_unstable();
            for chunk in uids.chunks(50) {
                let set: Vec<String> = chunk.iter().map(u32::to_string).collect();
                let got: Vec<_> = session
                    .uid_fetch(set.join(","), "(UID BODY.PEEK[])")
                    .await
                    .expect("fetch")
                    .try_collect()
                    .await
                    .expect("fetch");
                fetched += got.len();
                bytes += got.iter().filter_map(|f| f.body()).map(<[u8]>::len).sum::<usize>();
            }
        }
        let direct_secs = started.elapsed().as_secs_f64();

        let exgate_rate = exported as f64 / exgate_secs;
        let direct_rate = fetched as f64 / direct_secs;
        println!(
            "imap export: exgate {exported} messages ({failed} failed) in {exgate_secs:.2} s = {exgate_rate:.0} msg/s"
        );
        println!(
            "imap export: bare async-imap {fetched} messages ({} KiB) in {direct_secs:.2} s = {direct_rate:.0} msg/s",
            bytes / 1024
        );
        println!(
            "imap export: exgate's backend reaches {:.0}% of the bare client's rate (listing, IDs, size checks and the governor included)",
            100.0 * exgate_rate / direct_rate
        );
        println!(
            "imap export: export_folder (files and manifest) {files} messages in {export_secs:.2} s = {:.0} msg/s, {:.0}% of the bare client's rate",
            files as f64 / export_secs,
            100.0 * files as f64 / export_secs / direct_rate
        );
        assert_eq!(failed, 0, "failed items");
        assert_eq!(exported, fetched, "every message fetched");
        assert_eq!(files, fetched, "every message exported");
    });
}
