//! `exgate mail | calendar | contacts` through the real binary against the mock Graph:
//! delegated and app-only, own and shared mailboxes, paging, batching, throttling, refusals.

use std::time::Duration;

use exgate_testkit::entra::{Seed, seed};
use serde_json::Value;

use crate::util::Env;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A delegated connection `contoso` on which Adele is signed in (with the .Shared scopes).
async fn adele(env: &Env) {
    env.add(
        "contoso",
        &[
            "--auth",
            "oauth2-delegated",
            "--client-id",
            seed::PUBLIC_APP,
            "--scope",
            "Mail.ReadWrite",
            "--scope",
            "Mail.Send",
            "--scope",
            "Calendars.ReadWrite",
            "--scope",
            "Contacts.ReadWrite",
            "--scope",
            "Mail.ReadWrite.Shared",
            "--scope",
            "Mail.Send.Shared",
        ],
    )
    .await;
    env.mock.set_auto_approve(Some(seed::ADELE));
    env.browser_login(&["-c", "contoso"]).await.ok();
}

#[tokio::test]
async fn mail_commands_on_the_users_own_mailbox() {
    let env = Env::new().await;
    adele(&env).await;

    // Paging: a page, then the next with the token the first printed.
    let first = env
        .run(&["mail", "list", "--limit", "4", "--json"])
        .await
        .ok()
        .stdout();
    let first = json(&first);
    assert_eq!(first["messages"].as_array().unwrap().len(), 4);
    let next = first["next_page"].as_str().expect("a next page").to_owned();
    let second = json(
        &env.run(&["mail", "list", "--limit", "4", "--page", &next, "--json"])
            .await
            .ok()
            .stdout(),
    );
    let ids = |v: &Value| {
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert!(ids(&second).iter().all(|id| !ids(&first).contains(id)));
    let table = env.run(&["mail", "list", "--limit", "4"]).await.ok();
    assert!(
        table
            .stderr()
            .contains("more: exgate mail list --limit 4 --page xg1."),
        "{}",
        table.dump()
    );
    env.run(&["mail", "list", "--unread", "--json"]).await.ok();
    env.run(&["mail", "folders"]).await.ok();

    // Show, with attachments saved.
    let all = json(
        &env.run(&["mail", "list", "--limit", "50", "--json"])
            .await
            .ok()
            .stdout(),
    );
    let with_att = all["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["has_attachments"] == true)
        .unwrap();
    let id = with_att["id"].as_str().unwrap();
    let dir = env.dir.path().join("att");
    let shown = env
        .run(&[
            "mail",
            "show",
            id,
            "--save-attachments",
            dir.to_str().unwrap(),
        ])
        .await
        .ok();
    assert!(shown.stdout().contains("Subject:"), "{}", shown.dump());
    assert!(std::fs::read_dir(&dir).unwrap().count() >= 1);

    // Send with an attachment, from a body file: delivered once.
    let body = env.write("body.txt", "Quarterly numbers attached.\n");
    let file = env.write("q3.csv", "a,b\n1,2\n");
    env.run(&[
        "mail",
        "send",
        "--to",
        seed::MEGAN,
        "--subject",
        "Q3 from the CLI",
        "--body-file",
        body.to_str().unwrap(),
        "--attach",
        file.to_str().unwrap(),
    ])
    .await
    .ok();
    assert_eq!(
        env.mock
            .delivered(seed::MEGAN)
            .iter()
            .filter(|(_, s)| s == "Q3 from the CLI")
            .count(),
        1
    );

    // Reply, forward, mark, move, delete.
    let target = all["messages"][0]["id"].as_str().unwrap();
    env.run(&["mail", "reply", target, "--comment", "Thanks"])
        .await
        .ok();
    env.run(&[
        "mail",
        "forward",
        target,
        "--to",
        seed::MEGAN,
        "--comment",
        "FYI",
    ])
    .await
    .ok();
    env.run(&["mail", "mark", target, "--unread"]).await.ok();
    let moved = env
        .run(&["mail", "move", target, "--to", "archive"])
        .await
        .ok()
        .stdout()
        .trim()
        .to_owned();
    assert_ne!(moved, target);
    env.run(&["mail", "delete", &moved]).await.ok();

    // Not found, and bad input.
    env.run(&["mail", "show", "no-such-message"])
        .await
        .fails(1, &["was not found in the mailbox"]);
    env.run(&["mail", "send", "--to", "not-an-address", "--body", "x"])
        .await
        .fails(2, &["is not an email address"]);
}

#[tokio::test]
async fn export_writes_eml_files_and_resumes() {
    let env = Env::new().await;
    adele(&env).await;
    let out = env.dir.path().join("export");
    let run = env
        .run(&[
            "mail",
            "export",
            "--folder",
            "inbox",
            "--out",
            out.to_str().unwrap(),
        ])
        .await
        .ok();
    // One private folder per mail folder, private files, and the manifest beside them.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&out), 0o700);
    assert_eq!(mode(&out.join("manifest.json")), 0o600);
    let inbox = out.join("Inbox");
    assert_eq!(
        mode(&inbox),
        0o700,
        "{:?}",
        std::fs::read_dir(&out).unwrap().collect::<Vec<_>>()
    );
    let files: Vec<_> = std::fs::read_dir(&inbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!files.is_empty());
    assert!(
        files
            .iter()
            .all(|f| f.extension().is_some_and(|e| e == "eml") && mode(f) == 0o600)
    );
    let eml = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        eml.contains("Subject:") && eml.contains("MIME-Version"),
        "{eml}"
    );
    assert!(
        run.stdout()
            .contains(&format!("exported {} message(s)", files.len())),
        "{}",
        run.dump()
    );

    // Remove one file: the next run writes only that one.
    std::fs::remove_file(&files[0]).unwrap();
    let again = env
        .run(&[
            "mail",
            "export",
            "--folder",
            "inbox",
            "--out",
            out.to_str().unwrap(),
        ])
        .await
        .ok();
    assert!(
        again.stdout().contains(&format!(
            "exported 1 message(s) to {} ({} already there, 0 failed)",
            out.display(),
            files.len() - 1
        )),
        "{}",
        again.dump()
    );
}

#[tokio::test]
async fn a_shared_mailbox_and_its_refusals() {
    let env = Env::new().await;
    adele(&env).await;
    let listed = json(
        &env.run(&["mail", "list", "--mailbox", seed::SALES, "--json"])
            .await
            .ok()
            .stdout(),
    );
    assert!(!listed["messages"].as_array().unwrap().is_empty());
    env.run(&[
        "mail",
        "send",
        "--mailbox",
        seed::SALES,
        "--to",
        seed::MEGAN,
        "--subject",
        "From Sales",
        "--body",
        "hi",
    ])
    .await
    .ok();
    assert_eq!(
        env.mock
            .delivered(seed::MEGAN)
            .iter()
            .filter(|(_, s)| s == "From Sales")
            .count(),
        1
    );

    // Megan has no rights on Sales.
    env.add(
        "megan",
        &[
            "--auth",
            "oauth2-delegated",
            "--client-id",
            seed::PUBLIC_APP,
        ],
    )
    .await;
    env.mock.set_auto_approve(Some(seed::MEGAN));
    env.browser_login(&["-c", "megan"]).await.ok();
    env.run(&["mail", "list", "-c", "megan", "--mailbox", seed::SALES])
        .await
        .fails(
            1,
            &[
                "cannot read mail",
                "hint: the signed-in user has no access to sales@contoso.onmicrosoft.com",
                // The command names the user, not a placeholder.
                &format!(
                    "Add-MailboxPermission -Identity {} -User {} -AccessRights FullAccess",
                    seed::SALES,
                    seed::MEGAN
                ),
            ],
        );
}

#[tokio::test]
async fn a_missing_permission_is_named() {
    let mut no_send = Seed::contoso();
    for app in no_send
        .tenants
        .iter_mut()
        .flat_map(|t| t.apps.iter_mut())
        .filter(|a| a.client_id == seed::PUBLIC_APP)
    {
        for perms in app.delegated_permissions.values_mut() {
            perms.retain(|p| !p.starts_with("Mail.Send"));
        }
    }
    let env = Env::with_seed(no_send).await;
    env.add(
        "contoso",
        &[
            "--auth",
            "oauth2-delegated",
            "--client-id",
            seed::PUBLIC_APP,
            "--scope",
            "Mail.ReadWrite",
        ],
    )
    .await;
    env.mock.set_auto_approve(Some(seed::ADELE));
    env.browser_login(&[]).await.ok();
    env.run(&["mail", "send", "--to", seed::MEGAN, "--subject", "x", "--body", "x", "--no-save"])
        .await
        .fails(1, &["cannot send mail: the token has no Mail.Send; add it under API permissions and grant admin consent"]);
}

#[tokio::test]
async fn app_only_mailboxes_throttling_and_batching() {
    let env = Env::new().await;
    env.add_app_only("daemon", seed::DAEMON_APP_SECRET).await;
    env.run(&["mail", "list"]).await.fails(
        2,
        &[
            "an app-only connection has no mailbox of its own",
            "--mailbox",
        ],
    );
    env.mock
        .set_graph_throttling(Some(exgate_testkit::graph::ThrottlePolicy {
            concurrent: 4,
            requests: 10_000,
            window: Duration::from_secs(600),
        }));
    env.mock.fail_graph_requests(
        exgate_testkit::Fault::TooManyRequests {
            retry_after_secs: 1,
        },
        1,
    );
    let listed = json(
        &env.run(&["mail", "list", "--mailbox", seed::ADELE, "--json"])
            .await
            .ok()
            .stdout(),
    );
    assert!(!listed["messages"].as_array().unwrap().is_empty());

    // Export uses $batch: far fewer HTTP requests than messages.
    let before = env.mock.graph_requests();
    let out = env.dir.path().join("adele");
    let export = env
        .run(&[
            "mail",
            "export",
            "--mailbox",
            seed::ADELE,
            "--folder",
            "all",
            "--out",
            out.to_str().unwrap(),
        ])
        .await
        .ok();
    // One folder per mail folder: count the messages in all of them.
    let folders: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert!(folders.len() > 1, "{folders:?}");
    let files: usize = folders
        .iter()
        .map(|f| std::fs::read_dir(f).unwrap().count())
        .sum();
    // Every folder's messages, not only the inbox's.
    let inbox = json(
        &env.run(&[
            "mail",
            "list",
            "--mailbox",
            seed::ADELE,
            "--limit",
            "1000",
            "--json",
        ])
        .await
        .ok()
        .stdout(),
    );
    assert!(
        files > inbox["messages"].as_array().unwrap().len(),
        "{files} files, {} listed: {}",
        inbox["messages"].as_array().unwrap().len(),
        export.dump()
    );
    assert!(
        env.mock.graph_requests() - before < files,
        "{} requests for {files} messages",
        env.mock.graph_requests() - before
    );
    assert!(env.mock.max_concurrent_seen(seed::ADELE) <= 4);
    env.run(&["mail", "list", "--mailbox", "ghost@contoso.onmicrosoft.com"])
        .await
        .fails(1, &["does not exist"]);
}

#[tokio::test]
async fn calendar_commands() {
    let env = Env::new().await;
    adele(&env).await;
    let events = json(
        &env.run(&[
            "calendar",
            "list",
            "--from",
            "2026-01-01",
            "--to",
            "2027-01-01",
            "--tz",
            "Europe/Berlin",
            "--json",
        ])
        .await
        .ok()
        .stdout(),
    );
    let events = events.as_array().unwrap();
    assert!(
        events.iter().any(|e| e["kind"] == "occurrence"),
        "recurrences expanded"
    );
    assert!(
        events
            .iter()
            .filter(|e| e["is_all_day"] == false)
            .all(|e| e["start"]["time_zone"] == "Europe/Berlin"),
        "{events:?}"
    );
    let created = json(
        &env.run(&[
            "calendar",
            "create",
            "--subject",
            "Review",
            "--start",
            "2026-12-02T10:00",
            "--end",
            "2026-12-02T11:00",
            "--tz",
            "Europe/Berlin",
            "--attendee",
            seed::MEGAN,
            "--online",
            "--json",
        ])
        .await
        .ok()
        .stdout(),
    );
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        created["start"],
        serde_json::json!({"date_time": "2026-12-02T10:00:00", "time_zone": "Europe/Berlin"})
    );
    assert_eq!(created["attendees"][0]["who"]["address"], seed::MEGAN);
    assert!(created["online_meeting_url"].is_string(), "{created}");
    let updated = json(
        &env.run(&["calendar", "update", id, "--location", "Room 4", "--json"])
            .await
            .ok()
            .stdout(),
    );
    assert_eq!(updated["location"], "Room 4");
    let fb = env
        .run(&[
            "calendar",
            "freebusy",
            "--who",
            seed::MEGAN,
            "--from",
            "2026-12-02T09:00",
            "--to",
            "2026-12-02T12:00",
        ])
        .await
        .ok()
        .stdout();
    assert!(fb.contains(seed::MEGAN), "{fb}");
    env.run(&["calendar", "delete", id]).await.ok();
    env.run(&["calendar", "create", "--subject", "x"])
        .await
        .fails(2, &["needs --subject, --start and --end"]);
    env.run(&[
        "calendar",
        "list",
        "--from",
        "2026-02-01",
        "--to",
        "2026-01-01",
    ])
    .await
    .fails(2, &["not after its start"]);
    // Time zones are checked before anything is sent.
    env.run(&["calendar", "list", "--tz", "Mars/Olympus_Mons"])
        .await
        .fails(
            2,
            &["unknown time zone `Mars/Olympus_Mons`", "Europe/Berlin"],
        );
    env.run(&[
        "calendar",
        "create",
        "--subject",
        "x",
        "--start",
        "2026-12-02T10:00",
        "--end",
        "2026-12-02T11:00",
        "--tz",
        "Berlin",
    ])
    .await
    .fails(2, &["unknown time zone `Berlin`"]);
}

#[tokio::test]
async fn contacts_commands() {
    let env = Env::new().await;
    adele(&env).await;
    let created = json(
        &env.run(&[
            "contacts",
            "create",
            "--name",
            "Alex Wilber",
            "--email",
            "alex@contoso.onmicrosoft.com",
            "--company",
            "Contoso",
            "--json",
        ])
        .await
        .ok()
        .stdout(),
    );
    let id = created["id"].as_str().unwrap();
    let shown = env.run(&["contacts", "show", id]).await.ok().stdout();
    assert!(shown.contains("alex@contoso.onmicrosoft.com"), "{shown}");
    let updated = json(
        &env.run(&[
            "contacts",
            "update",
            id,
            "--job-title",
            "Director",
            "--json",
        ])
        .await
        .ok()
        .stdout(),
    );
    assert_eq!(updated["job_title"], "Director");
    let listed = env.run(&["contacts", "list"]).await.ok().stdout();
    assert!(listed.contains("Alex Wilber"), "{listed}");
    env.run(&["contacts", "delete", id]).await.ok();
    env.run(&["contacts", "show", id])
        .await
        .fails(1, &["was not found"]);
    env.run(&["contacts", "update", id])
        .await
        .fails(2, &["nothing to change"]);
}
