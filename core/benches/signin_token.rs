//! A cached token through the sign-in service, as every mailbox call asks for it: the
//! connection, the account (delegated) and the token all come from memory once warm.
//! Run with `cargo bench -p exgate-core --bench signin_token` (or `cargo xtask bench`, which reads
//! the `##row|label|value|target` lines: the mean of a plain timed loop of lookups inside one
//! task, after criterion's report, whose figures include a `block_on` per lookup).
#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use exgate_core::auth::SignIn;
use exgate_core::clock::{Clock, SystemClock};
use exgate_core::config::NetworkSettings;
use exgate_core::connections::Connections;
use exgate_core::model::{
    AccessToken, Account, AccountId, AccountStatus, ConnectionSpec, CredentialKind, Principal,
    Resource, TokenKey,
};
use exgate_core::secret::{Secret, Vault};
use exgate_core::store::{SqliteStore, Store};

const TENANT: &str = "8f2e4c1a-1111-4111-8111-111111111111";
const CLIENT: &str = "0a1b2c3d-1111-4111-8111-111111111111";

fn spec(auth: &str) -> ConnectionSpec {
    ConnectionSpec {
        tenant: Some(TENANT.into()),
        auth: Some(auth.into()),
        client_id: Some(CLIENT.into()),
        client_secret: (auth == "oauth2-app-only")
            .then(|| Secret::new("bench~SecretValue.0000000000000000000000")),
        ..ConnectionSpec::default()
    }
}

fn token() -> AccessToken {
    let (expires_at, refresh_at) =
        AccessToken::timing(SystemClock.now(), Duration::from_secs(3600), None);
    AccessToken {
        secret: Secret::new("x".repeat(1500)),
        expires_at,
        refresh_at,
    }
}

fn through_signin(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (signin, principal) = rt.block_on(async {
        let vault = Arc::new(Vault::open_or_create(&dir.path().join("master.key")).unwrap());
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("exgate.db"), vault)
                .await
                .unwrap(),
        );
        let connections = Arc::new(Connections::new(
            Arc::clone(&store),
            vec![],
            Arc::clone(&clock),
        ));
        let web = connections
            .add("web", &spec("oauth2-delegated"))
            .await
            .unwrap();
        let daemon = connections
            .add("daemon", &spec("oauth2-app-only"))
            .await
            .unwrap();
        // A gateway serves many accounts: the one asked for is among a thousand.
        let mut principal = None;
        for i in 0..1000 {
            let account = Account {
                id: AccountId::new_random(),
                connection: web.id,
                principal: format!("user{i}").parse::<Principal>().unwrap(),
                mailbox: None,
                credential: CredentialKind::RefreshToken,
                status: AccountStatus::Active,
                created_at: clock.now(),
                last_used_at: Some(clock.now()),
            };
            store
                .put_account(&account, Some(&Secret::new("refresh")))
                .await
                .unwrap();
            let key = TokenKey {
                connection: web.id,
                account: Some(account.id),
                resource: Resource::Graph,
            };
            store.save_tokens(&key, &token(), None).await.unwrap();
            if i == 500 {
                principal = Some(account.principal);
            }
        }
        let key = TokenKey {
            connection: daemon.id,
            account: None,
            resource: Resource::Graph,
        };
        store.save_tokens(&key, &token(), None).await.unwrap();
        let signin = SignIn::new(
            store,
            connections,
            NetworkSettings::default(),
            Arc::clone(&clock),
        )
        .unwrap();
        (signin, principal.unwrap())
    });
    // Warm: the first lookups read the store.
    rt.block_on(signin.token("web", Some(&principal), Resource::Graph))
        .unwrap();
    rt.block_on(signin.token("daemon", None, Resource::Graph))
        .unwrap();
    c.bench_function("signin/token delegated (cached)", |b| {
        b.iter(|| {
            black_box(
                rt.block_on(signin.token(black_box("web"), Some(&principal), Resource::Graph))
                    .unwrap(),
            )
        })
    });
    c.bench_function("signin/token app-only (cached)", |b| {
        b.iter(|| {
            black_box(
                rt.block_on(signin.token(black_box("daemon"), None, Resource::Graph))
                    .unwrap(),
            )
        })
    });
    // The rows: many lookups inside one async block, as a request handler makes them (a
    // `block_on` per lookup would add a runtime entry and exit to each, which no request pays).
    const LOOPS: u32 = 200_000;
    for (label, connection, who) in [
        ("delegated", "web", Some(&principal)),
        ("app-only", "daemon", None),
    ] {
        let per_block_on = {
            let started = Instant::now();
            for _ in 0..LOOPS / 4 {
                black_box(
                    rt.block_on(signin.token(black_box(connection), who, Resource::Graph))
                        .unwrap(),
                );
            }
            started.elapsed().as_nanos() as f64 / f64::from(LOOPS / 4)
        };
        let ns = rt.block_on(async {
            let started = Instant::now();
            for _ in 0..LOOPS {
                black_box(
                    signin
                        .token(black_box(connection), who, Resource::Graph)
                        .await
                        .unwrap(),
                );
            }
            started.elapsed().as_nanos() as f64 / f64::from(LOOPS)
        });
        println!(
            "{label}: {ns:.0} ns a lookup inside one task; {per_block_on:.0} ns with a block_on around each"
        );
        println!("##row|cached token through SignIn::token, {label}|{ns:.0} ns|< 1 us");
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    through_signin(&mut c);
    c.final_summary();
}
