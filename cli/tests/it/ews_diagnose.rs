//! `exgate connection test` on Exchange Server connections (Basic, NTLM): the EWS endpoint, the
//! credentials, the mailbox and another mailbox, each probed against the mock EWS.

use exgate_testkit::ExchangeSettings;
use exgate_testkit::entra::seed;
use serde_json::Value;

use crate::util::Env;

async fn onprem(env: &Env, auth: &str, user: &str, password: &str) {
    let file = env.write("password.txt", password);
    env.run(&[
        "connection",
        "add",
        "onprem",
        "--ews-url",
        &env.mock.ews_url(),
        "--auth",
        auth,
        "--username",
        user,
        "--password-file",
        file.to_str().unwrap(),
    ])
    .await
    .ok();
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {report}"))
}

fn statuses(report: &Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn test(env: &Env, extra: &[&str]) -> (Option<i32>, Value, String) {
    let mut args = vec!["connection", "test", "onprem", "--json"];
    args.extend_from_slice(extra);
    let run = env.run(&args).await;
    let report: Value =
        serde_json::from_str(&run.stdout()).unwrap_or_else(|e| panic!("{e}: {}", run.dump()));
    (run.out.status.code(), report, run.dump())
}

#[tokio::test]
async fn a_good_exchange_server_connection_is_ok() {
    for auth in ["basic", "ntlm"] {
        let env = Env::new().await;
        onprem(&env, auth, seed::ADELE, seed::ADELE_PASSWORD).await;
        let (code, report, dump) = test(&env, &[]).await;
        assert_eq!(code, Some(0), "{auth}: {dump}");
        assert_eq!(report["ok"], true, "{auth}: {report}");
        let names: Vec<_> = statuses(&report).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["EWS endpoint", "authentication", "mailbox"],
            "{report}"
        );
        let endpoint = check(&report, "EWS endpoint")["evidence"].as_str().unwrap();
        assert!(endpoint.contains("401"), "{endpoint}");
        assert!(
            endpoint.contains("NTLM") && endpoint.contains("Basic"),
            "{endpoint}"
        );
        assert!(!dump.contains(seed::ADELE_PASSWORD), "{dump}");
    }
}

#[tokio::test]
async fn a_wrong_password_fails_at_the_authentication_step() {
    let env = Env::new().await;
    onprem(&env, "ntlm", seed::ADELE, "not-the-password").await;
    let (code, report, dump) = test(&env, &[]).await;
    assert_eq!(code, Some(1), "{dump}");
    assert_eq!(report["ok"], false);
    assert_eq!(
        statuses(&report),
        [
            ("EWS endpoint".to_owned(), "passed".to_owned()),
            ("authentication".to_owned(), "failed".to_owned()),
            ("mailbox".to_owned(), "skipped".to_owned()),
        ],
        "{report}"
    );
    let auth = check(&report, "authentication");
    let evidence = auth["evidence"].as_str().unwrap();
    assert!(
        evidence.contains("401") && evidence.contains("NTLM"),
        "{evidence}"
    );
    let fix = auth["fix"].as_str().unwrap();
    assert!(
        fix.contains("exgate connection edit onprem") && fix.contains("--password-file"),
        "{fix}"
    );
    assert!(!dump.contains("not-the-password"), "{dump}");
}

#[tokio::test]
async fn a_scheme_the_server_does_not_offer_is_named() {
    let env = Env::new().await;
    env.mock
        .change_ews_switches(&exgate_testkit::ews::EwsSwitchChange {
            basic: Some(false),
            ..Default::default()
        })
        .unwrap();
    onprem(&env, "basic", seed::ADELE, seed::ADELE_PASSWORD).await;
    let (_, report, _) = test(&env, &[]).await;
    let auth = check(&report, "authentication");
    assert_eq!(auth["status"], "failed", "{report}");
    let fix = auth["fix"].as_str().unwrap();
    assert!(fix.contains("does not offer basic"), "{fix}");
    assert!(fix.contains("--auth ntlm"), "{fix}");
}

#[tokio::test]
async fn ews_disabled_for_the_mailbox_fails_at_the_mailbox_step() {
    let env = Env::new().await;
    assert!(env.mock.set_exchange_settings(
        seed::ADELE,
        ExchangeSettings {
            ews_enabled: false,
            ..ExchangeSettings::default()
        }
    ));
    onprem(&env, "basic", seed::ADELE, seed::ADELE_PASSWORD).await;
    let (code, report, dump) = test(&env, &[]).await;
    assert_eq!(code, Some(1), "{dump}");
    assert_eq!(
        check(&report, "authentication")["status"],
        "passed",
        "{report}"
    );
    let mailbox = check(&report, "mailbox");
    assert_eq!(mailbox["status"], "failed", "{report}");
    let fix = mailbox["fix"].as_str().unwrap_or_default();
    assert!(fix.contains("EwsEnabled"), "{report}");
}

#[tokio::test]
async fn another_mailbox_needs_a_delegate_right_or_impersonation() {
    // Adele has FullAccess to Sales in the seed.
    let env = Env::new().await;
    onprem(&env, "basic", seed::ADELE, seed::ADELE_PASSWORD).await;
    let (code, report, dump) = test(&env, &["--mailbox", seed::SALES]).await;
    assert_eq!(code, Some(0), "{dump}");
    assert_eq!(
        check(&report, "mailbox access")["status"],
        "passed",
        "{report}"
    );

    // Megan, the service account, has ApplicationImpersonation on Adele but no delegate right.
    let env = Env::new().await;
    onprem(&env, "basic", seed::MEGAN, seed::MEGAN_PASSWORD).await;
    let (code, report, dump) = test(&env, &["--mailbox", seed::ADELE]).await;
    assert_eq!(code, Some(0), "{dump}");
    let access = check(&report, "mailbox access");
    assert_eq!(access["status"], "passed", "{report}");
    assert!(
        access["evidence"]
            .as_str()
            .unwrap()
            .contains("by impersonation"),
        "{report}"
    );

    // Neither right on Sales: impersonation denied, and the fix names both rights.
    let (code, report, dump) = test(&env, &["--mailbox", seed::SALES]).await;
    assert_eq!(code, Some(1), "{dump}");
    let access = check(&report, "mailbox access");
    assert_eq!(access["status"], "failed", "{report}");
    let evidence = access["evidence"].as_str().unwrap();
    assert!(evidence.contains("by impersonation"), "{report}");
    let fix = access["fix"].as_str().unwrap_or_default();
    assert!(fix.contains("FullAccess"), "{report}");
    assert!(fix.contains("ApplicationImpersonation"), "{report}");
}
