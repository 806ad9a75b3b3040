//! `exgate app register`, `exgate setup` and `exgate app rotate-secret` against the mock's
//! Graph and Entra, starting from a tenant and an administrator only.

use exgate_testkit::entra::seed;
use serde_json::Value;

use crate::util::{Env, Run};

/// The mock with its IMAP server and CA as `[endpoints]`, device codes polled at once.
async fn env() -> Env {
    let env = Env::new().await;
    let ca = env.write("mail-ca.pem", &env.mock.mail_ca_pem());
    env.write(
        "config/exgate/exgate.toml",
        &format!(
            "[endpoints]\nauthority_host = \"{}\"\ngraph_url = \"{}\"\nexchange_admin_url = \"{}\"\news_url = \"{}\"\nimap_url = \"{}\"\nsmtp_url = \"{}\"\n\n[tls]\nca_file = \"{}\"\n",
            env.mock.base_url(),
            env.mock.graph_url(),
            env.mock.exchange_admin_url(),
            env.mock.ews_url(),
            env.mock.imap_url(),
            env.mock.smtp_url(),
            ca.display()
        ),
    );
    env.mock.set_device_code_interval(0);
    env
}

/// Runs `exgate ARGS`, signing in as `upn` at each of `sign_ins` device code prompts.
async fn signing_in(env: &Env, args: &[&str], upn: &str, sign_ins: usize) -> Run {
    let mut running = env.spawn(args);
    for _ in 0..sign_ins {
        let line = running.line_with("enter the code").await;
        let code = line
            .split("enter the code ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned();
        env.mock.approve_device_code(&code, upn).unwrap();
    }
    running.finish().await
}

async fn with_admin(env: &Env, args: &[&str], upn: &str) -> Run {
    signing_in(env, args, upn, 1).await
}

const REGISTER: &[&str] = &[
    "app",
    "register",
    "--tenant",
    seed::TENANT_DOMAIN,
    "--name",
    "contoso-exgate",
    "--who",
    "cli",
    "--who",
    "service",
    "--protocol",
    "graph",
    "--protocol",
    "ews",
    "--protocol",
    "imap",
    "--mailbox",
    seed::MEGAN,
    "--exchange",
];

fn graph_writes(env: &Env) -> usize {
    env.mock
        .requests()
        .iter()
        .filter(|r| r.method != "GET" && r.uri.contains("/graph/"))
        .count()
}

#[tokio::test]
async fn a_dry_run_lists_the_requests_and_sends_nothing() {
    let env = env().await;
    let before = env.mock.requests().len();
    let mut args = REGISTER.to_vec();
    args.push("--dry-run");
    let run = env.run(&args).await.ok();
    let out = run.stdout();
    for needle in [
        "POST /applications\n",
        "\"isFallbackPublicClient\":true",
        "POST /applications/{application object ID}/addPassword",
        "POST /servicePrincipals/{Microsoft Graph service principal}/appRoleAssignedTo",
        "POST /oauth2PermissionGrants",
        "{id of IMAP.AccessAsApp}",
    ] {
        assert!(out.contains(needle), "missing {needle:?}\n{}", run.dump());
    }
    assert_eq!(env.mock.requests().len(), before, "nothing may be sent");
    let listed = env.run(&["connection", "list", "--json"]).await.ok();
    assert_eq!(listed.stdout().trim(), "[]");
}

#[tokio::test]
async fn register_reaches_working_connections_and_a_rerun_converges() {
    let env = env().await;
    // Two sign-ins: Microsoft Graph, then Exchange Online's admin API.
    let run = signing_in(&env, REGISTER, seed::ADMIN, 2).await.ok();
    let out = run.stdout();
    assert!(
        out.contains("created the app registration `contoso-exgate`"),
        "{}",
        run.dump()
    );
    for name in [
        "contoso-exgate-user",
        "contoso-exgate-app-graph",
        "contoso-exgate-app-ews",
        "contoso-exgate-app-imap",
    ] {
        assert!(
            out.contains(&format!("added connection {name}")),
            "{name}\n{}",
            run.dump()
        );
    }
    // The Exchange part Graph cannot do is printed with the real IDs.
    assert!(
        out.contains("New-ServicePrincipal -AppId "),
        "{}",
        run.dump()
    );
    assert!(
        out.contains(&format!(
            "Add-MailboxPermission -Identity '{}'",
            seed::MEGAN
        )),
        "{}",
        run.dump()
    );
    // App-only Graph, EWS and IMAP work at once: their connection tests pass. IMAP needs
    // Exchange's own registration of the app, which `--exchange` made through Exchange's admin
    // API (New-ServicePrincipal, Add-MailboxPermission); nothing else was done.
    for name in [
        "contoso-exgate-app-graph",
        "contoso-exgate-app-ews",
        "contoso-exgate-app-imap",
    ] {
        let tested = env
            .run(&[
                "connection",
                "test",
                name,
                "--mailbox",
                seed::MEGAN,
                "--json",
            ])
            .await
            .ok();
        let report: Value = serde_json::from_str(&tested.stdout()).unwrap();
        assert_eq!(report["ok"], true, "{name}: {report}");
    }
    let imap_steps = |report: &Value| -> Vec<String> {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["name"].as_str().unwrap().starts_with("IMAP"))
            .map(|c| format!("{} {}", c["name"], c["status"]))
            .collect()
    };
    let imap: Value = serde_json::from_str(
        &env.run(&[
            "connection",
            "test",
            "contoso-exgate-app-imap",
            "--mailbox",
            seed::MEGAN,
            "--json",
        ])
        .await
        .ok()
        .stdout(),
    )
    .unwrap();
    assert!(
        imap_steps(&imap).contains(&"\"IMAP mailbox\" \"passed\"".to_owned()),
        "{imap}"
    );
    // A mailbox call over IMAP: Megan's messages, read with the new app's app-only token.
    let before = env.mock.mail_sessions().len();
    let listed: Value = serde_json::from_str(
        &env.run(&[
            "mail",
            "list",
            "-c",
            "contoso-exgate-app-imap",
            "-m",
            seed::MEGAN,
            "--json",
        ])
        .await
        .ok()
        .stdout(),
    )
    .unwrap();
    assert!(
        !listed["messages"].as_array().unwrap().is_empty(),
        "{listed}"
    );
    let sessions = env.mock.mail_sessions();
    assert!(
        sessions[before..].iter().any(|s| s.protocol
            == exgate_testkit::mailproto::MailProtocol::Imap
            && s.app_only
            && s.outcome.as_deref() == Some("ok")
            && s.mailbox.as_deref() == Some(seed::MEGAN)),
        "{sessions:#?}"
    );
    let shown: Value = serde_json::from_str(
        &env.run(&["connection", "show", "contoso-exgate-app-graph", "--json"])
            .await
            .ok()
            .stdout(),
    )
    .unwrap();
    assert_eq!(
        shown["credential"]["source"], "given",
        "the new secret's expiry is recorded: {shown}"
    );
    assert!(shown["credential"]["expires"].is_string(), "{shown}");
    // Delegated Graph works after a user signs in.
    let mut login = env.spawn(&["login", "-c", "contoso-exgate-user", "--device-code"]);
    let line = login.line_with("enter the code").await;
    let code = line
        .split("enter the code ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    env.mock.approve_device_code(&code, seed::ADELE).unwrap();
    login.finish().await.ok();
    env.run(&["mail", "list", "-c", "contoso-exgate-user"])
        .await
        .ok();

    // A rerun changes nothing: no new app, secret or grant.
    let writes = graph_writes(&env);
    let rerun = signing_in(&env, REGISTER, seed::ADMIN, 2).await.ok();
    assert!(
        rerun.stdout().contains("nothing changed"),
        "{}",
        rerun.dump()
    );
    assert_eq!(graph_writes(&env), writes, "{}", rerun.dump());
}

#[tokio::test]
async fn rotate_secret_replaces_the_secret_and_the_connection_keeps_working() {
    let env = env().await;
    let args = [
        "app",
        "register",
        "--tenant",
        seed::TENANT_DOMAIN,
        "--name",
        "rot",
        "--who",
        "service",
        "--protocol",
        "graph",
        "--mailbox",
        seed::MEGAN,
    ];
    with_admin(&env, &args, seed::ADMIN).await.ok();
    let run = with_admin(
        &env,
        &["app", "rotate-secret", "rot-app-graph", "--months", "6"],
        seed::ADMIN,
    )
    .await
    .ok();
    assert!(
        run.stdout().contains("removed the old secret"),
        "{}",
        run.dump()
    );
    env.run(&[
        "connection",
        "test",
        "rot-app-graph",
        "--mailbox",
        seed::MEGAN,
    ])
    .await
    .ok();
}

#[tokio::test]
async fn a_user_who_is_not_an_administrator_is_told_which_role_is_missing() {
    let env = env().await;
    let run = with_admin(&env, REGISTER, seed::ADELE).await;
    run.fails(
        1,
        &[
            "403 Authorization_RequestDenied",
            "Privileged Role Administrator",
        ],
    );
    let listed = env.run(&["connection", "list", "--json"]).await.ok();
    assert_eq!(listed.stdout().trim(), "[]");
}

#[tokio::test]
async fn setup_prints_the_plan_and_its_json() {
    let env = env().await;
    let run = env
        .run(&[
            "setup",
            "--who",
            "portal",
            "--public-url",
            "https://exgate.contoso.com",
            "--protocol",
            "graph",
            "--json",
        ])
        .await
        .ok();
    let plan: Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(
        plan["app"]["web_redirect_uris"][0],
        "https://exgate.contoso.com/service/oauth2/authorize"
    );
    assert_eq!(plan["connections"][0]["name"], "exgate-portal");
    // Without --who on a pipe nothing is asked: a usage error names the field.
    env.run(&["setup", "--protocol", "graph"])
        .await
        .fails(2, &["who"]);
}

#[tokio::test]
async fn setup_with_an_app_registered_by_hand_creates_and_tests_the_connection() {
    let env = env().await;
    let secret = env.write("app.secret", seed::DAEMON_APP_SECRET);
    let run = env
        .run(&[
            "setup",
            "--who",
            "service",
            "--protocol",
            "graph",
            "--tenant",
            seed::TENANT_ID,
            "--mailbox",
            seed::MEGAN,
            "--client-id",
            seed::DAEMON_APP,
            "--client-secret-file",
            secret.to_str().unwrap(),
        ])
        .await
        .ok();
    let out = run.stdout();
    assert!(
        out.contains(
            "Microsoft Graph (00000003-0000-0000-c000-000000000000), application: Mail.ReadWrite"
        ),
        "{}",
        run.dump()
    );
    assert!(
        out.contains("added connection exgate-app-graph"),
        "{}",
        run.dump()
    );
    assert!(
        out.contains("connection test of exgate-app-graph:"),
        "{}",
        run.dump()
    );
}

#[tokio::test]
async fn register_with_a_certificate_keeps_the_private_key_in_the_store() {
    let env = env().await;
    let args = [
        "app",
        "register",
        "--tenant",
        seed::TENANT_DOMAIN,
        "--name",
        "certapp",
        "--who",
        "service",
        "--protocol",
        "graph",
        "--mailbox",
        seed::MEGAN,
        "--credential",
        "certificate",
        "--months",
        "6",
    ];
    let run = with_admin(&env, &args, seed::ADMIN).await.ok();
    assert!(
        run.stdout().contains("uploaded a new certificate"),
        "{}",
        run.dump()
    );
    assert!(!run.stdout().contains("PRIVATE KEY"), "{}", run.dump());
    let shown: Value = serde_json::from_str(
        &env.run(&["connection", "show", "certapp-app-graph", "--json"])
            .await
            .ok()
            .stdout(),
    )
    .unwrap();
    assert!(shown["auth"]["certificate"].is_object(), "{shown}");
    env.run(&[
        "connection",
        "test",
        "certapp-app-graph",
        "--mailbox",
        seed::MEGAN,
    ])
    .await
    .ok();
}
