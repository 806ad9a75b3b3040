//! `cargo xtask bench`: `exgate token` as a whole process, as msmtp or mutt run it, against `true`
//! (a process that does nothing) for scale. The store holds one delegated connection with one
//! account whose Graph token is fresh, so the command answers from the store without a network
//! call. The binary is `EXGATE_BIN` when set (xtask points it at a build without dev-only
//! features), else the one Cargo built for this bench. Rows for xtask's table are printed as
//! `##row|label|value|target`.
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use exgate_core::clock::{Clock, SystemClock};
use exgate_core::model::{
    AccessToken, Account, AccountId, AccountStatus, ConnectionSpec, CredentialKind, Resource,
    TokenKey,
};
use exgate_core::secret::Secret;

const RUNS: usize = 200;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn run(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    let status = cmd.status().expect("spawn");
    let took = t.elapsed();
    assert!(status.success(), "{cmd:?}: {status}");
    took
}

fn main() {
    let home = tempfile::tempdir().expect("tempdir");
    let env = [
        ("HOME", home.path().display().to_string()),
        (
            "XDG_CONFIG_HOME",
            home.path().join("config").display().to_string(),
        ),
        (
            "XDG_DATA_HOME",
            home.path().join("data").display().to_string(),
        ),
        (
            "EXGATE_SYSTEM_CONFIG",
            home.path().join("none").display().to_string(),
        ),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut settings =
            exgate_core::config::load(None, &exgate_core::config::Env::from_pairs(env.clone()))
                .expect("settings");
        let clock = Arc::new(SystemClock);
        let services = exgate_core::services::Services::open(&mut settings, clock.clone())
            .await
            .expect("services");
        let spec = ConnectionSpec {
            tenant: Some("8f2e4c1a-1111-4111-8111-111111111111".into()),
            auth: Some("oauth2-delegated".into()),
            client_id: Some("0a1b2c3d-1111-4111-8111-111111111111".into()),
            ..ConnectionSpec::default()
        };
        let web = services
            .connections
            .add("web", &spec)
            .await
            .expect("connection");
        let account = Account {
            id: AccountId::new_random(),
            connection: web.id,
            principal: "adele".parse().expect("principal"),
            mailbox: "adele@contoso.example".parse().ok(),
            credential: CredentialKind::RefreshToken,
            status: AccountStatus::Active,
            created_at: clock.now(),
            last_used_at: Some(clock.now()),
        };
        services
            .store
            .put_account(&account, Some(&Secret::new("refresh")))
            .await
            .expect("account");
        let (expires_at, refresh_at) =
            AccessToken::timing(clock.now(), Duration::from_secs(3 * 3600), None);
        let key = TokenKey {
            connection: web.id,
            account: Some(account.id),
            resource: Resource::Graph,
        };
        let token = AccessToken {
            secret: Secret::new("t".repeat(1800)),
            expires_at,
            refresh_at,
        };
        services
            .store
            .save_tokens(&key, &token, None)
            .await
            .expect("token");
    });
    drop(rt);

    let bin = std::env::var("EXGATE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_exgate").into());
    assert!(Path::new(&bin).exists(), "{bin} is missing");
    let exgate = || {
        let mut c = Command::new(&bin);
        c.arg("token")
            .env_clear()
            .envs(env.iter().cloned())
            .stdout(Stdio::null());
        c
    };
    let truth = || {
        let mut c = Command::new("true");
        c.stdout(Stdio::null());
        c
    };
    // Warm up (page cache, and the first use recorded); then the two in turn.
    for _ in 0..5 {
        run(&mut exgate());
        run(&mut truth());
    }
    let (mut a, mut b) = (Vec::with_capacity(RUNS), Vec::with_capacity(RUNS));
    for _ in 0..RUNS {
        a.push(run(&mut exgate()));
        b.push(run(&mut truth()));
    }
    let (a, b) = (median(a), median(b));
    println!("exgate token: median {a:?} over {RUNS} runs; true: {b:?} ({bin})");
    println!(
        "##row|exgate token as a process (vs true)|{:.2} ms ({:.1}x true at {:.2} ms)|< 3 ms",
        a.as_secs_f64() * 1e3,
        a.as_secs_f64() / b.as_secs_f64(),
        b.as_secs_f64() * 1e3
    );
}
