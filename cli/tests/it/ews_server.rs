//! Exchange Server releases: a connection for an older server asks for that server's schema.

use exgate_testkit::entra::seed;
use exgate_testkit::ews::ServerVersion;
use exgate_testkit::{FaultKind, FaultRule, Service};

use crate::util::Env;

async fn add(env: &Env, server_version: &str) {
    let file = env.write("password.txt", seed::ADELE_PASSWORD);
    env.run(&[
        "connection",
        "add",
        "onprem",
        "--ews-url",
        &env.mock.ews_url(),
        "--server-version",
        server_version,
        "--auth",
        "basic",
        "--username",
        seed::ADELE,
        "--password-file",
        file.to_str().unwrap(),
    ])
    .await
    .ok();
}

#[tokio::test]
async fn exchange_2010_sp2_is_reached_with_its_schema() {
    let env = Env::new().await;
    env.mock.set_ews_version(ServerVersion::Exchange2010Sp2);
    add(&env, "2010sp2").await;
    let shown = env
        .run(&["connection", "show", "onprem"])
        .await
        .ok()
        .stdout();
    assert!(shown.contains("2010sp2"), "{shown}");
    let folders = env.run(&["mail", "folders", "--json"]).await.ok().stdout();
    assert!(folders.contains("Inbox"), "{folders}");
    env.run(&["mail", "list", "--limit", "2", "--json"])
        .await
        .ok();
}

#[tokio::test]
async fn a_newer_schema_than_the_server_is_refused_by_it() {
    // The control for the test above: the mock does refuse a schema newer than itself.
    let env = Env::new().await;
    env.mock.set_ews_version(ServerVersion::Exchange2010Sp2);
    add(&env, "2019").await;
    let run = env.run(&["mail", "folders"]).await;
    assert_ne!(run.out.status.code(), Some(0), "{}", run.dump());
}

#[tokio::test]
async fn exchange_2013_sp1_is_reached_with_2013_and_2013sp1() {
    // The mock's Exchange 2013 is SP1: it takes both schemas and refuses Exchange2016.
    for (ours, works) in [("2013", true), ("2013sp1", true), ("2016", false)] {
        let env = Env::new().await;
        env.mock.set_ews_version(ServerVersion::Exchange2013);
        add(&env, ours).await;
        let run = env.run(&["mail", "folders", "--json"]).await;
        assert_eq!(
            run.out.status.code() == Some(0),
            works,
            "{ours}: {}",
            run.dump()
        );
        if works {
            assert!(run.stdout().contains("Inbox"), "{ours}: {}", run.dump());
        }
    }
}

#[tokio::test]
async fn error_server_busy_is_waited_out_and_the_command_completes() {
    let env = Env::new().await;
    add(&env, "2019").await;
    let busy = || {
        FaultRule::next(
            2,
            FaultKind::TooManyRequests {
                retry_after: Some("1".into()),
            },
        )
        .service(Service::Ews)
        .path("/FindItem")
    };

    // The control: with no patience for a back-off, the hint is what the user is told.
    env.mock.add_fault(busy()).unwrap();
    env.write(
        "config/exgate/exgate.toml",
        &format!(
            "[endpoints]\nauthority_host = \"{}\"\n\n[limits]\nmax_wait_secs = 0\n",
            env.mock.base_url()
        ),
    );
    env.run(&["mail", "list", "--limit", "2"])
        .await
        .fails(1, &["retry after 1 s"]);
    env.mock.clear_faults();

    // Within the patience: both ErrorServerBusy answers (BackOffMilliseconds 1000) are waited
    // out and the listing arrives.
    env.write(
        "config/exgate/exgate.toml",
        &format!(
            "[endpoints]\nauthority_host = \"{}\"\n",
            env.mock.base_url()
        ),
    );
    env.mock.add_fault(busy()).unwrap();
    let before = env.mock.ews_requests();
    let listed = env
        .run(&["mail", "list", "--limit", "2", "--json"])
        .await
        .ok()
        .stdout();
    assert!(listed.contains("\"messages\""), "{listed}");
    assert_eq!(env.mock.fault_report().total, 2);
    assert!(
        env.mock.ews_requests() >= before + 3,
        "two refusals, then the listing"
    );
}
