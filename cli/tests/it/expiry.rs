//! Credentials that expire: `--credential-expires` on `connection add`/`edit`, the warnings in
//! `connection list`/`show`, and when a delegated account's refresh token lapses.

use exgate_testkit::entra::seed;
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::util::Env;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn date_in(days: i64) -> String {
    (OffsetDateTime::now_utc() + Duration::days(days))
        .date()
        .to_string()
}

#[tokio::test]
async fn an_expiry_date_is_warned_about_in_list_and_show_and_can_be_changed_or_cleared() {
    let env = Env::new().await;
    let file = env.write("daemon.secret", seed::DAEMON_APP_SECRET);
    let soon = date_in(10);
    env.add(
        "daemon",
        &[
            "--auth",
            "oauth2-app-only",
            "--client-id",
            seed::DAEMON_APP,
            "--client-secret-file",
            file.to_str().unwrap(),
            "--credential-expires",
            &soon,
        ],
    )
    .await;

    let run = env
        .run(&["connection", "show", "daemon", "--json"])
        .await
        .ok();
    let view = json(&run.stdout());
    let credential = &view["credential"];
    assert_eq!(credential["expires"], format!("{soon}T00:00:00Z"), "{view}");
    assert_eq!(credential["source"], "given");
    assert_eq!(credential["warning"], "within-14-days", "{view}");
    let days = credential["days_left"].as_i64().unwrap();
    assert!((9..=10).contains(&days), "{view}");
    let warning = run.stderr();
    assert!(
        warning.contains("warning: connection `daemon`: the client secret expires in")
            && warning.contains(&format!("({soon})"))
            && warning.contains("`exgate connection edit daemon --client-secret-file FILE"),
        "{}",
        run.dump()
    );

    let run = env.run(&["connection", "list"]).await.ok();
    let table = run.stdout();
    assert!(table.lines().next().unwrap().contains("EXPIRES"), "{table}");
    assert!(
        table.contains(&format!("{soon} ({days} days!)")),
        "{}",
        run.dump()
    );
    assert!(
        run.stderr().contains("warning: connection `daemon`"),
        "{}",
        run.dump()
    );

    // A date far off: shown, not warned about.
    let far = date_in(200);
    env.run(&["connection", "edit", "daemon", "--credential-expires", &far])
        .await
        .ok();
    let run = env.run(&["connection", "show", "daemon"]).await.ok();
    assert!(
        run.stdout()
            .contains(&format!("credential expires: {far}T00:00:00Z (given)")),
        "{}",
        run.dump()
    );
    assert!(!run.stderr().contains("warning"), "{}", run.dump());

    // Expired: named as such.
    env.run(&[
        "connection",
        "edit",
        "daemon",
        "--credential-expires",
        &date_in(-3),
    ])
    .await
    .ok();
    let run = env.run(&["connection", "list", "--json"]).await.ok();
    let list = json(&run.stdout());
    assert_eq!(list[0]["credential"]["warning"], "expired", "{list}");
    assert!(
        run.stderr().contains("the client secret expired on"),
        "{}",
        run.dump()
    );

    // Cleared; a malformed date changes nothing.
    env.run(&["connection", "edit", "daemon", "--clear-credential-expires"])
        .await
        .ok();
    let view = json(
        &env.run(&["connection", "show", "daemon", "--json"])
            .await
            .ok()
            .stdout(),
    );
    assert!(view.get("credential").is_none(), "{view}");
    env.run(&[
        "connection",
        "edit",
        "daemon",
        "--credential-expires",
        "30.06.2027",
    ])
    .await
    .fails(2, &["credential_expires", "YYYY-MM-DD"]);
    let view = json(
        &env.run(&["connection", "show", "daemon", "--json"])
            .await
            .ok()
            .stdout(),
    );
    assert!(view.get("credential").is_none(), "{view}");
}

#[tokio::test]
async fn accounts_say_when_their_refresh_token_lapses() {
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
    env.mock.set_auto_approve(Some(seed::ADELE));
    env.browser_login(&["-c", "contoso"]).await.ok();

    let run = env
        .run(&["accounts", "list", "-c", "contoso", "--json"])
        .await
        .ok();
    let list = json(&run.stdout());
    let lapse = &list[0]["refresh_token"];
    let expected = date_in(90);
    assert!(
        lapse["lapses"].as_str().unwrap().starts_with(&expected)
            || lapse["lapses"].as_str().unwrap().starts_with(&date_in(89)),
        "{list}"
    );
    assert_eq!(lapse["warning"], false, "{list}");
    assert!(
        lapse["message"]
            .as_str()
            .unwrap()
            .starts_with("refresh token lapses on "),
        "{list}"
    );
    assert!(!run.stderr().contains("warning"), "{}", run.dump());
    let table = env
        .run(&["accounts", "list", "-c", "contoso"])
        .await
        .ok()
        .stdout();
    assert!(table.contains("REFRESH TOKEN LAPSES"), "{table}");
    let shown = env
        .run(&["accounts", "show", seed::ADELE, "-c", "contoso"])
        .await
        .ok()
        .stdout();
    assert!(
        shown.contains("refresh:    refresh token lapses on"),
        "{shown}"
    );
}

/// `connection show --from-graph` reads the secret's expiry from the app's registration when
/// the app may read it (Application.Read.All), and otherwise says which permission would let it.
#[tokio::test]
async fn show_from_graph_reads_the_expiry_or_names_the_permission() {
    let mut readable = exgate_testkit::Seed::contoso();
    for app in readable
        .tenants
        .iter_mut()
        .flat_map(|t| t.apps.iter_mut())
        .filter(|a| a.client_id == seed::DAEMON_APP)
    {
        app.application_permissions
            .entry(seed::GRAPH.to_string())
            .or_default()
            .push("Application.Read.All".into());
    }
    for (env, readable) in [
        (Env::with_seed(readable).await, true),
        (Env::new().await, false),
    ] {
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
            ],
        )
        .await;
        let run = env
            .run(&["connection", "show", "daemon", "--json", "--from-graph"])
            .await
            .ok();
        let view = json(&run.stdout());
        let said = view["from_graph"].as_str().unwrap_or_default();
        if readable {
            // The contoso seed's secrets expire on 2099-01-01.
            assert_eq!(view["credential"]["source"], "graph", "{view}");
            assert_eq!(view["credential"]["expires"], "2099-01-01T00:00:00Z");
            assert!(said.ends_with("(from Graph)"), "{view}");
        } else {
            assert!(view.get("credential").is_none(), "{view}");
            assert!(
                said.contains("403") && said.contains("Application.Read.All"),
                "{view}"
            );
        }
        assert!(!run.stdout().contains(seed::DAEMON_APP_SECRET));
    }
}
