//! Exchange Online connections that chose EWS: OAuth delegated and app-only (impersonating).

use exgate_testkit::entra::seed;

use super::{in_folder, json, messages};
use crate::util::Env;

/// A delegated connection to Exchange Online that chose EWS (`endpoints.ews_url` points it at
/// the mock), with `user` signed in.
async fn online_ews(env: &Env, name: &str, user: &str) {
    env.add(
        name,
        &[
            "--auth",
            "oauth2-delegated",
            "--client-id",
            seed::PUBLIC_APP,
            "--backend",
            "ews",
        ],
    )
    .await;
    env.mock.set_auto_approve(Some(user));
    env.browser_login(&["-c", name]).await.ok();
}

#[tokio::test]
async fn oauth_delegated_over_exchange_online_ews() {
    let env = Env::new().await;
    online_ews(&env, "online", seed::ADELE).await;
    let before = env.mock.ews_requests();
    let listed = json(
        &env.run(&["mail", "list", "-c", "online", "--limit", "3", "--json"])
            .await
            .ok()
            .stdout(),
    );
    assert_eq!(messages(&listed).len(), 3, "{listed}");
    assert!(env.mock.ews_requests() > before, "went to EWS");
    env.run(&[
        "mail",
        "send",
        "-c",
        "online",
        "--to",
        seed::MEGAN,
        "--subject",
        "OAuth over EWS",
        "--body",
        "hi",
    ])
    .await
    .ok();
    assert_eq!(
        env.mock
            .delivered(seed::MEGAN)
            .iter()
            .filter(|(_, s)| s == "OAuth over EWS")
            .count(),
        1
    );

    // Adele has FullAccess on Sales: a delegate's mailbox.
    let sales = json(
        &env.run(&[
            "mail",
            "list",
            "-c",
            "online",
            "-m",
            seed::SALES,
            "--limit",
            "500",
            "--json",
        ])
        .await
        .ok()
        .stdout(),
    );
    assert_eq!(
        messages(&sales).len(),
        in_folder(&env, seed::SALES, "inbox").len(),
        "{sales}"
    );
    let events = env
        .run(&[
            "contacts",
            "list",
            "-c",
            "online",
            "-m",
            seed::SALES,
            "--json",
        ])
        .await
        .ok();
    assert!(json(&events.stdout()).is_array());

    // Megan has no rights on Sales: refused, and said so.
    online_ews(&env, "megan", seed::MEGAN).await;
    let refused = env
        .run(&["mail", "list", "-c", "megan", "-m", seed::SALES])
        .await
        .fails(
            1,
            &[
                "cannot use the mailbox: ErrorAccessDenied",
                seed::SALES,
                "Add-MailboxPermission",
            ],
        );
    assert!(refused.stdout().is_empty(), "{}", refused.dump());
    // EWS answers carry no request ID: none is made up.
    assert!(
        !refused.stderr().contains("request ID"),
        "{}",
        refused.dump()
    );
}

#[tokio::test]
async fn app_only_over_exchange_online_ews_impersonates() {
    let env = Env::new().await;
    let file = env.write("daemon.secret", seed::DAEMON_APP_SECRET);
    env.add(
        "daemon",
        &[
            "--auth",
            "oauth2-app-only",
            "--client-id",
            seed::DAEMON_APP,
            "--client-secret-file",
            file.to_str().unwrap(),
            "--backend",
            "ews",
        ],
    )
    .await;
    let listed = json(
        &env.run(&[
            "mail",
            "list",
            "-m",
            seed::ADELE,
            "--limit",
            "500",
            "--json",
        ])
        .await
        .ok()
        .stdout(),
    );
    assert_eq!(
        messages(&listed).len(),
        in_folder(&env, seed::ADELE, "inbox").len()
    );
    let sent = env
        .run(&[
            "mail",
            "send",
            "-m",
            seed::ADELE,
            "--to",
            seed::MEGAN,
            "--subject",
            "App-only over EWS",
            "--body",
            "hi",
        ])
        .await
        .ok();
    assert!(!sent.dump().contains(seed::DAEMON_APP_SECRET));
    assert_eq!(
        env.mock
            .submitted(seed::ADELE)
            .iter()
            .filter(|(_, s)| s == "App-only over EWS")
            .count(),
        1
    );
    let events = json(
        &env.run(&[
            "calendar",
            "list",
            "-m",
            seed::MEGAN,
            "--from",
            "2026-01-01",
            "--to",
            "2027-01-01",
            "--json",
        ])
        .await
        .ok()
        .stdout(),
    );
    assert!(events.is_array());
    // The app's access policy bounds the mailboxes it reaches.
    env.mock
        .set_mailbox_scope(seed::DAEMON_APP, Some(vec![seed::MEGAN.to_owned()]));
    env.run(&["mail", "list", "-m", seed::ADELE])
        .await
        .fails(1, &[]);
}
