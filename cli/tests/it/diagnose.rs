//! `exgate connection test`: the same steps as the API (core's one function), rendered as a
//! table or JSON; exit code 0 only when every step ran and passed.

use std::sync::Arc;

use exgate_testkit::entra::seed;
use serde_json::Value;

use crate::util::Env;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// `(name, status, fix)` of each step, in order.
fn steps(report: &Value) -> Vec<(String, String, Option<String>)> {
    report["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks: {report}"))
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
                c["fix"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// Core's report for the same home, as the gateway's route answers it (it serializes core's
/// report as is).
async fn core_report(env: &Env, connection: &str, mailbox: Option<&str>) -> Value {
    let dir = env.dir.path();
    let pairs = vec![
        ("HOME", dir.display().to_string()),
        ("XDG_CONFIG_HOME", dir.join("config").display().to_string()),
        ("XDG_DATA_HOME", dir.join("data").display().to_string()),
        (
            "EXGATE_SYSTEM_CONFIG",
            dir.join("system.toml").display().to_string(),
        ),
    ];
    let mut settings =
        exgate_core::config::load(None, &exgate_core::config::Env::from_pairs(pairs)).unwrap();
    let services = exgate_core::services::Services::open(
        &mut settings,
        Arc::new(exgate_core::clock::SystemClock),
    )
    .await
    .unwrap();
    let report = exgate_core::diagnose::test_connection(
        &services.connections,
        &services.signin,
        &services.mailboxes,
        connection,
        &exgate_core::diagnose::TestOptions {
            account: None,
            mailbox: mailbox.map(str::to_owned),
            redirect_uri: None,
        },
    )
    .await
    .unwrap();
    serde_json::to_value(report).unwrap()
}

#[tokio::test]
async fn app_only_passes_with_a_mailbox_and_gives_the_apis_steps() {
    let env = Env::new().await;
    env.add_app_only("daemon", seed::DAEMON_APP_SECRET).await;

    let run = env
        .run(&[
            "connection",
            "test",
            "daemon",
            "--mailbox",
            seed::ADELE,
            "--json",
        ])
        .await
        .ok();
    let cli = json(&run.stdout());
    assert_eq!(cli["ok"], true, "{cli}");
    assert!(
        steps(&cli).iter().all(|(_, status, _)| status == "passed"),
        "{cli}"
    );
    let api = core_report(&env, "daemon", Some(seed::ADELE)).await;
    assert_eq!(steps(&cli), steps(&api));

    // Without a mailbox the mailbox step is skipped: not ok, exit code 1, and the table says why.
    let run = env.run(&["connection", "test", "daemon"]).await;
    assert_eq!(run.out.status.code(), Some(1), "{}", run.dump());
    let table = run.stdout();
    assert!(table.contains("identity provider  passed"), "{table}");
    assert!(table.contains("credentials        passed"), "{table}");
    assert!(
        table.contains(
            "mailbox            skipped  skipped: an app-only connection has no mailbox of its own"
        ),
        "{table}"
    );
    assert!(table.contains("not ok:"), "{table}");
    assert!(run.stderr().contains("1 step skipped"), "{}", run.dump());
    let cli = json(
        &env.run(&["connection", "test", "daemon", "--json"])
            .await
            .stdout(),
    );
    assert_eq!(cli["ok"], false);
    assert_eq!(steps(&cli), steps(&core_report(&env, "daemon", None).await));
}

#[tokio::test]
async fn a_wrong_secret_prints_the_aadsts_code_and_a_fix_that_runs_as_printed() {
    let env = Env::new().await;
    env.add_app_only("wrong", seed::WEB_APP_SECRET).await;
    let run = env
        .run(&["connection", "test", "wrong", "-m", seed::ADELE])
        .await;
    assert_eq!(run.out.status.code(), Some(1), "{}", run.dump());
    let table = run.stdout();
    assert!(table.contains("credentials        failed"), "{table}");
    assert!(table.contains("AADSTS7000215"), "{table}");
    assert!(
        table.contains("fix: copy the secret's Value")
            && table.contains("`exgate connection edit wrong --client-secret-file FILE`"),
        "{table}"
    );
    assert!(table.contains("token claims       skipped"), "{table}");
    assert!(
        run.stderr().contains("1 step failed, 2 steps skipped"),
        "{}",
        run.dump()
    );
}

#[tokio::test]
async fn a_delegated_connection_tests_the_chosen_account() {
    let env = Env::new().await;
    env.add(
        "contoso",
        &[
            "--auth",
            "oauth2-delegated",
            "--client-id",
            seed::PUBLIC_APP,
        ],
    )
    .await;
    // Nobody signed in: skipped, with the login that fixes it.
    let run = env.run(&["connection", "test", "contoso", "--json"]).await;
    assert_eq!(run.out.status.code(), Some(1), "{}", run.dump());
    let report = json(&run.stdout());
    assert_eq!(
        steps(&report)
            .into_iter()
            .find(|(name, ..)| name == "credentials")
            .unwrap(),
        (
            "credentials".to_owned(),
            "skipped".to_owned(),
            Some("sign a user in first with `exgate login -c contoso`".to_owned())
        ),
        "{report}"
    );

    env.mock.set_auto_approve(Some(seed::ADELE));
    env.browser_login(&["-c", "contoso"]).await.ok();
    let run = env
        .run(&["connection", "test", "contoso", "--account", seed::ADELE])
        .await
        .ok();
    let table = run.stdout();
    assert!(table.contains("ok: every step passed"), "{table}");
    assert!(
        table.contains(&format!("got account `{}`'s token", seed::ADELE)),
        "{table}"
    );
    assert!(
        table.contains("scp ") && table.contains("Mail.ReadWrite"),
        "{table}"
    );
    // An account that is not there fails that step.
    let run = env
        .run(&["connection", "test", "contoso", "-a", seed::MEGAN, "--json"])
        .await;
    assert_eq!(run.out.status.code(), Some(1), "{}", run.dump());
    let credentials = steps(&json(&run.stdout()))
        .into_iter()
        .find(|(name, ..)| name == "credentials")
        .unwrap();
    assert_eq!(credentials.1, "failed");
}
