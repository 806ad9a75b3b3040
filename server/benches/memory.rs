//! `cargo xtask bench`: the gateway's resident memory, idle, with 10,000 delegated accounts served
//! (a token for each through the sign-in service, as mailbox requests ask for them) and after
//! 1,000 admin logins (argon2 verifications of the stored admin password: every one of them a
//! wrong guess, so none is answered from memory). Linux only: it reads `VmRSS` of
//! `/proc/self/status`. Then a soak: rounds of new accounts served while the clock moves on, so
//! resident memory must stop growing once the caches' sweeps keep up. Rows for xtask's table are
//! printed as `##row|label|value|target`; each label says how many malloc arenas glibc was
//! allowed (`MALLOC_ARENA_MAX`, which the systemd unit in docs/scaling sets to 2).
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use exgate_core::admin::AdminCheck;
use exgate_core::clock::Clock;
use exgate_core::model::{
    AccessToken, Account, AccountId, AccountStatus, ConnectionId, ConnectionSpec, CredentialKind,
    Principal, Resource, TokenKey,
};
use exgate_core::secret::Secret;
use exgate_core::store::Store;
use exgate_server::AppState;
use time::OffsetDateTime;

const ACCOUNTS: usize = 10_000;
const LOGINS: usize = 1_000;

/// Resident memory in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib / 1024.0
}

/// glibc's arenas as this process was started with them.
fn arenas() -> String {
    std::env::var("MALLOC_ARENA_MAX").map_or_else(
        |_| "glibc's default arenas".to_owned(),
        |n| format!("MALLOC_ARENA_MAX={n}"),
    )
}

fn row(label: &str, value: f64, target: &str) {
    let label = format!("{label} ({})", arenas());
    println!("{label}: {value:.1} MiB (target {target})");
    println!("##row|{label}|{value:.1} MiB|{target}");
}

/// A delegated account named `name` on `web`, with a fresh token (1.8 KB, as Entra's are) and
/// a refresh token (800 bytes) stored for it.
async fn add_account(
    store: &Arc<dyn Store>,
    clock: &Shifted,
    web: ConnectionId,
    name: &str,
) -> Principal {
    let account = Account {
        id: AccountId::new_random(),
        connection: web,
        principal: name.parse::<Principal>().expect("principal"),
        mailbox: format!("{name}@contoso.example").parse().ok(),
        credential: CredentialKind::RefreshToken,
        status: AccountStatus::Active,
        created_at: clock.now(),
        last_used_at: Some(clock.now()),
    };
    store
        .put_account(&account, Some(&Secret::new("r".repeat(800))))
        .await
        .expect("account");
    let (expires_at, refresh_at) =
        AccessToken::timing(clock.now(), Duration::from_secs(3600), None);
    let token = AccessToken {
        secret: Secret::new(format!("{name}{}", "t".repeat(1800))),
        expires_at,
        refresh_at,
    };
    let key = TokenKey {
        connection: web,
        account: Some(account.id),
        resource: Resource::Graph,
    };
    store.save_tokens(&key, &token, None).await.expect("token");
    account.principal
}

/// Rounds of the soak, and new accounts served in each.
const SOAK_ROUNDS: usize = 32;
const SOAK_ACCOUNTS: usize = 1_000;
/// The governor's window in this bench (`graph.window_secs`): a round's mailboxes have left it
/// by the next round, as they would after ten minutes with the default policy.
const SOAK_WINDOW: Duration = Duration::from_secs(1);

/// The system's time shifted by an offset the soak moves forward: the tokens one round served
/// have expired by the next, as they would over hours of a real gateway.
#[derive(Debug, Default)]
struct Shifted(AtomicI64);

impl Shifted {
    fn advance(&self, by: Duration) {
        let secs = i64::try_from(by.as_secs()).expect("seconds");
        self.0.fetch_add(secs, Ordering::Relaxed);
    }
}

impl Clock for Shifted {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::seconds(self.0.load(Ordering::Relaxed))
    }
}

/// A gateway that runs for hours with a changing population: each round, new accounts are
/// served a token, a backend and a governor slot for their mailbox, as a mailbox request asks
/// for them; then the clock moves on two hours and the governor's window passes, so the
/// round's tokens expire and its mailboxes go idle. Resident memory must stop growing once
/// the caches have reached the size their sweeps keep (they sweep when they have doubled).
async fn soak(state: &AppState, store: &Arc<dyn Store>, clock: &Shifted, web: ConnectionId) {
    let governor = state.mailboxes.governor();
    let mut resident = Vec::with_capacity(SOAK_ROUNDS);
    for round in 0..SOAK_ROUNDS {
        for i in 0..SOAK_ACCOUNTS {
            let name = format!("soak{round:02}-{i:04}");
            let principal = add_account(store, clock, web, &name).await;
            state
                .signin
                .token("web", Some(&principal), Resource::Graph)
                .await
                .expect("token");
            let (_backend, mailbox) = state
                .mailboxes
                .for_principal("web", &principal, None)
                .await
                .expect("backend");
            let key = mailbox.key(&format!("{name}@contoso.example"));
            let permit = governor
                .acquire_within(&key, 1, Duration::from_secs(5))
                .await
                .expect("a governor slot");
            drop(permit);
        }
        clock.advance(Duration::from_secs(2 * 3600));
        // A benchmark may wait: the governor's clock is the monotonic one, and its window must
        // pass for the round's mailboxes to be idle.
        tokio::time::sleep(SOAK_WINDOW + governor.policy().margin()).await;
        resident.push(rss_mib());
    }
    println!(
        "(soak: resident after each round of {SOAK_ACCOUNTS} new accounts: {}; at the end {} token slots, {} governor gates)",
        resident
            .iter()
            .map(|r| format!("{r:.1}"))
            .collect::<Vec<_>>()
            .join(", "),
        state.signin.cache().len(),
        governor.tracked(),
    );
    // The first half brings the caches to the size their sweeps keep (the 10,000 accounts
    // served before the soak are swept when a map has doubled): what grows in the second half
    // is kept for good.
    let half = SOAK_ROUNDS / 2;
    let growth = resident[SOAK_ROUNDS - 1] - resident[half - 1];
    row(
        &format!(
            "resident memory growth, soak rounds {}-{SOAK_ROUNDS} of {SOAK_ACCOUNTS} new accounts each",
            half + 1
        ),
        growth,
        "flat (< 2 MB)",
    );
}

fn main() {
    // A store in memory-backed storage where there is one: the accounts are written one by one.
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm")
    } else {
        tempfile::tempdir()
    }
    .expect("tempdir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let home = base.path();
        let env = exgate_core::config::Env::from_pairs([
            ("HOME", home.display().to_string()),
            ("XDG_CONFIG_HOME", home.join("config").display().to_string()),
            ("XDG_DATA_HOME", home.join("data").display().to_string()),
            (
                "EXGATE_SYSTEM_CONFIG",
                home.join("none").display().to_string(),
            ),
            (
                "EXGATE__GRAPH__WINDOW_SECS",
                SOAK_WINDOW.as_secs().to_string(),
            ),
        ]);
        let mut settings = exgate_core::config::load(None, &env).expect("settings");
        let clock = Arc::new(Shifted::default());
        let services = exgate_core::services::Services::open(&mut settings, clock.clone())
            .await
            .expect("services");
        let store = Arc::clone(&services.store);
        let state = AppState::new(services, settings, "http://127.0.0.1:8087".into());
        // The state exists and answered once: what a started gateway holds.
        state.store.ping().await.expect("ping");
        row("resident memory, idle", rss_mib(), "25 MB");

        let spec = ConnectionSpec {
            tenant: Some("8f2e4c1a-1111-4111-8111-111111111111".into()),
            auth: Some("oauth2-delegated".into()),
            client_id: Some("0a1b2c3d-1111-4111-8111-111111111111".into()),
            ..ConnectionSpec::default()
        };
        let web = state
            .connections
            .add("web", &spec)
            .await
            .expect("connection");
        let mut principals = Vec::with_capacity(ACCOUNTS);
        for i in 0..ACCOUNTS {
            principals.push(add_account(&store, &clock, web.id, &format!("user{i:05}")).await);
        }
        let before = rss_mib();
        for p in &principals {
            state
                .signin
                .token("web", Some(p), Resource::Graph)
                .await
                .expect("token");
        }
        println!(
            "(the {ACCOUNTS} accounts' tokens served added {:.1} MiB)",
            rss_mib() - before
        );
        row(
            "resident memory, 10,000 accounts served",
            rss_mib(),
            "60 MB",
        );

        let admin = Arc::new(AdminCheck::new(Arc::clone(&store), None));
        exgate_core::admin::reset_admin_credential(&*store, &*clock)
            .await
            .expect("admin password");
        let started = Instant::now();
        let tasks: Vec<_> = (0..LOGINS)
            .map(|i| {
                let admin = Arc::clone(&admin);
                tokio::spawn(async move {
                    let guess = Secret::new(format!("wrong-guess-{i}"));
                    assert!(!admin.verify(&guess).await.expect("verify"));
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("login");
        }
        println!(
            "({LOGINS} admin logins took {:.1} s, at most {} argon2 at once)",
            started.elapsed().as_secs_f64(),
            admin.peak_argon2()
        );
        row(
            "resident memory, after 1,000 admin logins",
            rss_mib(),
            "60 MB",
        );

        soak(&state, &store, &clock, web.id).await;

        // For comparison, what exgate did before: the argon2 crate's own verifier, on the same
        // blocking threads, for a few more wrong guesses.
        let hash = store
            .admin_password_hash()
            .await
            .expect("hash")
            .expect("a hash");
        let before = rss_mib();
        for i in 0..20 {
            let hash = hash.clone();
            tokio::task::spawn_blocking(move || {
                use argon2::password_hash::PasswordVerifier;
                let phc = argon2::password_hash::phc::PasswordHash::new(&hash).expect("phc");
                let guess = format!("another-wrong-guess-{i}");
                assert!(
                    argon2::Argon2::default()
                        .verify_password(guess.as_bytes(), &phc)
                        .is_err()
                );
            })
            .await
            .expect("verify");
        }
        println!(
            "(for comparison: 20 more wrong guesses through the argon2 crate's own verifier left {:+.1} MiB resident)",
            rss_mib() - before
        );
        drop(state);
    });
}
