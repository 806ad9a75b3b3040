//! `cargo xtask bench`: the gateway's resident memory, idle, with 10,000 delegated accounts served
//! (a token for each through the sign-in service, as mailbox requests ask for them) and after
//! 1,000 admin logins (argon2 verifications of the stored admin password: every one of them a
//! wrong guess, so none is answered from memory). Linux only: it reads `VmRSS` of
//! `/proc/self/status`. Rows for xtask's table are printed as `##row|label|value|target`.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use exgate_core::admin::AdminCheck;
use exgate_core::clock::{Clock, SystemClock};
use exgate_core::model::{
    AccessToken, Account, AccountId, AccountStatus, ConnectionSpec, CredentialKind, Principal,
    Resource, TokenKey,
};
use exgate_core::secret::Secret;
use exgate_server::AppState;

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

fn row(label: &str, value: f64, target: &str) {
    println!("{label}: {value:.1} MiB (target {target})");
    println!("##row|{label}|{value:.1} MiB|{target}");
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
        ]);
        let mut settings = exgate_core::config::load(None, &env).expect("settings");
        let clock = Arc::new(SystemClock);
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
        let (expires_at, refresh_at) =
            AccessToken::timing(clock.now(), Duration::from_secs(3600), None);
        let mut principals = Vec::with_capacity(ACCOUNTS);
        for i in 0..ACCOUNTS {
            let account = Account {
                id: AccountId::new_random(),
                connection: web.id,
                principal: format!("user{i:05}")
                    .parse::<Principal>()
                    .expect("principal"),
                mailbox: format!("user{i:05}@contoso.example").parse().ok(),
                credential: CredentialKind::RefreshToken,
                status: AccountStatus::Active,
                created_at: clock.now(),
                last_used_at: Some(clock.now()),
            };
            store
                .put_account(&account, Some(&Secret::new("r".repeat(800))))
                .await
                .expect("account");
            let token = AccessToken {
                // An Entra access token is 1.5 to 2.5 KB.
                secret: Secret::new(format!("{i:05}{}", "t".repeat(1800))),
                expires_at,
                refresh_at,
            };
            let key = TokenKey {
                connection: web.id,
                account: Some(account.id),
                resource: Resource::Graph,
            };
            store.save_tokens(&key, &token, None).await.expect("token");
            principals.push(account.principal);
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
