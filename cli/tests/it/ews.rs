//! `exgate mail | calendar | contacts` on an Exchange Server connection, through the real binary
//! against the mock EWS: Basic and NTLM service accounts, a delegate's mailbox, and a message
//! sent over EWS that Graph sees.

use exgate_testkit::entra::seed;
use exgate_testkit::mailstore::{Address, ContactContent, MessageContent};
use serde_json::Value;

use crate::util::Env;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// An Exchange Server connection `onprem` to the mock's EWS as `user` with `auth`.
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

#[tokio::test]
async fn mail_over_ews_with_basic_and_ntlm() {
    for auth in ["basic", "ntlm"] {
        let env = Env::new().await;
        onprem(&env, auth, seed::ADELE, seed::ADELE_PASSWORD).await;

        let folders = env.run(&["mail", "folders", "--json"]).await.ok().stdout();
        assert!(folders.contains("Inbox"), "{auth}: {folders}");

        let first = json(
            &env.run(&["mail", "list", "--limit", "3", "--json"])
                .await
                .ok()
                .stdout(),
        );
        let messages = first["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3, "{auth}: {first}");
        let next = first["next_page"].as_str().expect("a next page").to_owned();
        let second = json(
            &env.run(&["mail", "list", "--limit", "3", "--page", &next, "--json"])
                .await
                .ok()
                .stdout(),
        );
        let id = messages[0]["id"].as_str().unwrap().to_owned();
        assert!(
            second["messages"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["id"] != messages[0]["id"]),
            "{auth}: pages overlap"
        );

        let shown = json(
            &env.run(&["mail", "show", &id, "--json"])
                .await
                .ok()
                .stdout(),
        );
        assert_eq!(shown["id"], id.as_str(), "{auth}");

        // A send over EWS arrives, and Graph's view of the recipient has it.
        let subject = format!("EWS send over {auth}");
        env.run(&[
            "mail",
            "send",
            "--to",
            seed::MEGAN,
            "--subject",
            &subject,
            "--body",
            "hello from exgate over EWS",
        ])
        .await
        .ok();
        let delivered = env.mock.delivered(seed::MEGAN);
        assert_eq!(
            delivered.iter().filter(|(_, s)| *s == subject).count(),
            1,
            "{auth}: {delivered:?}"
        );
    }
}

#[tokio::test]
async fn a_delegates_mailbox_over_ntlm_and_a_refusal() {
    let env = Env::new().await;
    onprem(&env, "ntlm", seed::ADELE, seed::ADELE_PASSWORD).await;
    // Adele has FullAccess on Sales.
    let sales = json(
        &env.run(&[
            "mail",
            "list",
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
    // Megan has none: refused, naming the mailbox, never echoing the password.
    let env = Env::new().await;
    onprem(&env, "ntlm", seed::MEGAN, seed::MEGAN_PASSWORD).await;
    let refused = env
        .run(&["mail", "list", "-m", seed::SALES])
        .await
        .fails(1, &["ErrorAccessDenied", seed::SALES]);
    assert!(!refused.dump().contains(seed::MEGAN_PASSWORD));
}

#[tokio::test]
async fn a_down_level_user_name_works_for_every_area() {
    // `DOMAIN\user`, as Exchange Server shops write their service accounts.
    let env = Env::new().await;
    onprem(&env, "ntlm", "CONTOSO\\adele", seed::ADELE_PASSWORD).await;
    let listed = json(
        &env.run(&["mail", "list", "--limit", "500", "--json"])
            .await
            .ok()
            .stdout(),
    );
    assert_eq!(
        messages(&listed).len(),
        in_folder(&env, seed::ADELE, "inbox").len()
    );
    env.run(&[
        "mail",
        "send",
        "--to",
        seed::MEGAN,
        "--subject",
        "Down-level",
        "--body",
        "x",
    ])
    .await
    .ok();
    assert_eq!(
        env.mock
            .submitted(seed::ADELE)
            .iter()
            .filter(|(_, s)| s == "Down-level")
            .count(),
        1
    );
    let created = json(
        &env.run(&[
            "calendar",
            "create",
            "--subject",
            "Down-level meeting",
            "--start",
            "2026-12-04T10:00",
            "--end",
            "2026-12-04T11:00",
            "--json",
        ])
        .await
        .ok()
        .stdout(),
    );
    assert_eq!(created["organizer"]["address"], seed::ADELE, "{created}");
    let fb = json(
        &env.run(&[
            "calendar",
            "freebusy",
            "--who",
            seed::ADELE,
            "--from",
            "2026-12-04T09:00:00Z",
            "--to",
            "2026-12-04T12:00:00Z",
            "--interval",
            "60",
            "--json",
        ])
        .await
        .ok()
        .stdout(),
    );
    assert_eq!(fb[0]["view"][1], "busy", "{fb}");
    env.run(&["contacts", "list", "--json"]).await.ok();
}

#[tokio::test]
async fn a_wrong_password_is_refused_clearly() {
    let env = Env::new().await;
    onprem(&env, "ntlm", seed::ADELE, "not-the-password").await;
    let run = env.run(&["mail", "list"]).await.fails(1, &[]);
    assert!(!run.dump().contains("not-the-password"), "{}", run.dump());
}

#[tokio::test]
async fn calendar_and_contacts_over_ews() {
    let env = Env::new().await;
    onprem(&env, "basic", seed::ADELE, seed::ADELE_PASSWORD).await;
    let events = env
        .run(&[
            "calendar",
            "list",
            "--from",
            "2026-06-01T00:00:00Z",
            "--to",
            "2027-05-01T00:00:00Z",
            "--json",
        ])
        .await
        .ok()
        .stdout();
    assert!(
        json(&events).as_array().is_some_and(|e| !e.is_empty()),
        "{events}"
    );
    let contacts = env.run(&["contacts", "list", "--json"]).await.ok().stdout();
    assert_eq!(
        json(&contacts).as_array().map(Vec::len),
        Some(
            env.mock
                .mailbox_content(seed::ADELE)
                .unwrap()
                .contacts
                .len()
        ),
        "{contacts}"
    );
}

fn messages(v: &Value) -> Vec<Value> {
    v["messages"].as_array().cloned().unwrap_or_default()
}

/// The mock's view of `mailbox`: the messages of `folder` (a well-known name).
fn in_folder(env: &Env, mailbox: &str, folder: &str) -> Vec<MessageContent> {
    env.mock
        .mailbox_content(mailbox)
        .unwrap()
        .messages
        .into_iter()
        .filter(|m| m.folder.eq_ignore_ascii_case(folder))
        .collect()
}

#[tokio::test]
async fn every_mail_command_over_ews() {
    let env = Env::new().await;
    onprem(&env, "basic", seed::ADELE, seed::ADELE_PASSWORD).await;
    let mut outputs = Vec::new();

    // Filters: --unread, --from, --since, each checked against the mock's mailbox.
    let inbox = in_folder(&env, seed::ADELE, "inbox");
    let unread = json(
        &env.run(&["mail", "list", "--unread", "--limit", "500", "--json"])
            .await
            .ok()
            .stdout(),
    );
    assert_eq!(
        messages(&unread).len(),
        inbox.iter().filter(|m| !m.is_read).count(),
        "{unread}"
    );
    assert!(messages(&unread).iter().all(|m| m["is_read"] == false));
    let sender = inbox[0].from.address.clone();
    let from = json(
        &env.run(&[
            "mail", "list", "--from", &sender, "--limit", "500", "--json",
        ])
        .await
        .ok()
        .stdout(),
    );
    assert_eq!(
        messages(&from).len(),
        inbox
            .iter()
            .filter(|m| m.from.address.eq_ignore_ascii_case(&sender))
            .count(),
        "{from}"
    );
    let mut received: Vec<_> = inbox.iter().map(|m| m.received).collect();
    received.sort();
    let middle = received[received.len() / 2];
    let since = middle
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let recent = json(
        &env.run(&[
            "mail", "list", "--since", &since, "--limit", "500", "--json",
        ])
        .await
        .ok()
        .stdout(),
    );
    assert_eq!(
        messages(&recent).len(),
        received.iter().filter(|t| **t >= middle).count(),
        "{recent}"
    );

    // Show as text and as HTML, and save the attachments.
    let all = json(
        &env.run(&["mail", "list", "--limit", "500", "--json"])
            .await
            .ok()
            .stdout(),
    );
    let all = messages(&all);
    assert_eq!(all.len(), inbox.len());
    let id = all[0]["id"].as_str().unwrap().to_owned();
    let text = json(
        &env.run(&["mail", "show", &id, "--text", "--json"])
            .await
            .ok()
            .stdout(),
    );
    assert_eq!(text["body"]["kind"], "text", "{text}");
    let html = json(
        &env.run(&["mail", "show", &id, "--html", "--json"])
            .await
            .ok()
            .stdout(),
    );
    assert_eq!(html["body"]["kind"], "html", "{html}");
    let with_att = all
        .iter()
        .find(|m| m["has_attachments"] == true)
        .expect("a message with attachments");
    let dir = env.dir.path().join("att");
    let saved = env
        .run(&[
            "mail",
            "show",
            with_att["id"].as_str().unwrap(),
            "--save-attachments",
            dir.to_str().unwrap(),
        ])
        .await
        .ok();
    let expected = inbox
        .iter()
        .find(|m| m.subject == with_att["subject"].as_str().unwrap())
        .unwrap();
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(
        files,
        expected.attachments.iter().filter(|a| !a.is_inline).count(),
        "{}",
        saved.dump()
    );
    outputs.push(saved.dump());

    // Send with a small and a large (> 3 MB) attachment: Megan has both, byte for byte.
    let small = env.write("q3.csv", "a,b\n1,2\n");
    let big_bytes: Vec<u8> = (0..3_500_000u32).map(|i| (i % 251) as u8).collect();
    let big = env.dir.path().join("big.bin");
    std::fs::write(&big, &big_bytes).unwrap();
    let sent = env
        .run(&[
            "mail",
            "send",
            "--to",
            seed::MEGAN,
            "--subject",
            "Large over EWS",
            "--body",
            "two files",
            "--attach",
            small.to_str().unwrap(),
            "--attach",
            big.to_str().unwrap(),
        ])
        .await
        .ok();
    outputs.push(sent.dump());
    let arrived = in_folder(&env, seed::MEGAN, "inbox");
    let arrived = arrived
        .iter()
        .find(|m| m.subject == "Large over EWS")
        .expect("delivered to Megan");
    let mut names: Vec<_> = arrived
        .attachments
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["big.bin", "q3.csv"]);
    use base64::Engine as _;
    let big_in = arrived
        .attachments
        .iter()
        .find(|a| a.name == "big.bin")
        .unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(&big_in.content_bytes)
            .unwrap(),
        big_bytes
    );
    // A copy stays in Sent Items.
    assert!(
        in_folder(&env, seed::ADELE, "sentitems")
            .iter()
            .any(|m| m.subject == "Large over EWS")
    );

    // Reply reaches the sender only, reply to all the other recipients too.
    let mut thread = inbox[0].clone();
    thread.subject = "Thread for replies".into();
    thread.from = Address {
        name: "Sales".into(),
        address: seed::SALES.into(),
    };
    thread.to = vec![Address {
        name: "Adele Vance".into(),
        address: seed::ADELE.into(),
    }];
    thread.cc = vec![Address {
        name: "Megan Bowen".into(),
        address: seed::MEGAN.into(),
    }];
    thread.internet_message_id = None;
    thread.attachments.clear();
    env.mock.add_messages(seed::ADELE, &[thread]).unwrap();
    let listed = json(
        &env.run(&["mail", "list", "--from", seed::SALES, "--json"])
            .await
            .ok()
            .stdout(),
    );
    let thread_id = messages(&listed)
        .iter()
        .find(|m| m["subject"] == "Thread for replies")
        .expect("the thread")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = |env: &Env, who: &str, comment: &str| {
        env.mock
            .mailbox_content(who)
            .unwrap()
            .messages
            .iter()
            .filter(|m| m.subject == "RE: Thread for replies" && m.body.contains(comment))
            .count()
    };
    env.run(&["mail", "reply", &thread_id, "--comment", "only-sender"])
        .await
        .ok();
    assert_eq!(got(&env, seed::SALES, "only-sender"), 1);
    assert_eq!(got(&env, seed::MEGAN, "only-sender"), 0);
    env.run(&[
        "mail",
        "reply",
        &thread_id,
        "--all",
        "--comment",
        "to-everyone",
    ])
    .await
    .ok();
    assert_eq!(got(&env, seed::SALES, "to-everyone"), 1);
    assert_eq!(got(&env, seed::MEGAN, "to-everyone"), 1);

    // Reply, reply to all, forward: each reaches its recipients.
    let from_megan = all
        .iter()
        .find(|m| m["from"]["address"] == seed::MEGAN)
        .unwrap_or(&all[0])
        .clone();
    let original = from_megan["subject"].as_str().unwrap().to_owned();
    let original_sender = from_megan["from"]["address"].as_str().unwrap().to_owned();
    let target = from_megan["id"].as_str().unwrap().to_owned();
    env.run(&["mail", "reply", &target, "--comment", "Thanks"])
        .await
        .ok();
    env.run(&[
        "mail",
        "reply",
        &target,
        "--all",
        "--comment",
        "Thanks, all",
    ])
    .await
    .ok();
    let replies = env.mock.submitted(seed::ADELE);
    assert_eq!(
        replies
            .iter()
            .filter(|(_, s)| s.eq_ignore_ascii_case(&format!("RE: {original}")))
            .count(),
        2,
        "{replies:?}"
    );
    if env.mock.mailbox_content(&original_sender).is_some() {
        assert!(
            env.mock
                .delivered(&original_sender)
                .iter()
                .any(|(_, s)| s.eq_ignore_ascii_case(&format!("RE: {original}")))
        );
    }
    env.run(&[
        "mail",
        "forward",
        &target,
        "--to",
        seed::MEGAN,
        "--comment",
        "FYI",
    ])
    .await
    .ok();
    assert!(
        env.mock
            .delivered(seed::MEGAN)
            .iter()
            .any(|(_, s)| s.eq_ignore_ascii_case(&format!("FW: {original}"))),
        "{:?}",
        env.mock.delivered(seed::MEGAN)
    );

    // Mark read and unread: the mock's message follows.
    let is_read = |env: &Env| {
        in_folder(env, seed::ADELE, "inbox")
            .iter()
            .find(|m| m.subject == original)
            .map(|m| m.is_read)
    };
    env.run(&["mail", "mark", &target, "--read"]).await.ok();
    assert_eq!(is_read(&env), Some(true));
    env.run(&["mail", "mark", &target, "--unread"]).await.ok();
    assert_eq!(is_read(&env), Some(false));

    // Move to the Archive folder (found by name: EWS has no distinguished ID for it), then
    // delete: it ends in Deleted Items.
    let moved = env
        .run(&["mail", "move", &target, "--to", "archive"])
        .await
        .ok()
        .stdout()
        .trim()
        .to_owned();
    assert_ne!(moved, target);
    assert!(
        in_folder(&env, seed::ADELE, "archive")
            .iter()
            .any(|m| m.subject == original)
    );
    let archived = json(
        &env.run(&["mail", "list", "--folder", "archive", "--json"])
            .await
            .ok()
            .stdout(),
    );
    assert!(
        messages(&archived)
            .iter()
            .any(|m| m["id"] == moved.as_str()),
        "{archived}"
    );
    env.run(&["mail", "delete", &moved]).await.ok();
    assert!(
        in_folder(&env, seed::ADELE, "deleteditems")
            .iter()
            .any(|m| m.subject == original)
    );
    assert!(
        !in_folder(&env, seed::ADELE, "archive")
            .iter()
            .any(|m| m.subject == original)
    );

    // Not found is named.
    env.run(&["mail", "show", "AAMkAGI2TG93AAA="])
        .await
        .fails(1, &["not found"]);

    for out in &outputs {
        assert!(!out.contains(seed::ADELE_PASSWORD), "{out}");
    }
}

#[tokio::test]
async fn export_over_ews_writes_every_message_and_resumes() {
    let env = Env::new().await;
    onprem(&env, "ntlm", seed::ADELE, seed::ADELE_PASSWORD).await;
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
    let inbox = in_folder(&env, seed::ADELE, "inbox");
    let files: Vec<_> = std::fs::read_dir(out.join("Inbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), inbox.len(), "{}", run.dump());
    // Every subject of the inbox is in one of the files.
    let emls: Vec<String> = files
        .iter()
        .map(|f| String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned())
        .collect();
    for m in &inbox {
        assert!(
            emls.iter().any(|e| e.contains(&m.subject)),
            "{} missing",
            m.subject
        );
    }
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
    assert!(!again.dump().contains(seed::ADELE_PASSWORD));
}

#[tokio::test]
async fn export_of_every_folder_over_ews_holds_every_message() {
    let env = Env::new().await;
    onprem(&env, "basic", seed::ADELE, seed::ADELE_PASSWORD).await;
    let all = env.mock.mailbox_content(seed::ADELE).unwrap().messages;
    let folders: std::collections::BTreeSet<_> =
        all.iter().map(|m| m.folder.to_ascii_lowercase()).collect();
    assert!(
        folders.len() > 1,
        "the seed has messages in several folders: {folders:?}"
    );
    let out = env.dir.path().join("everything");
    let run = env
        .run(&[
            "mail",
            "export",
            "--folder",
            "all",
            "--out",
            out.to_str().unwrap(),
        ])
        .await
        .ok();
    let mut emls = Vec::new();
    for dir in std::fs::read_dir(&out).unwrap() {
        let dir = dir.unwrap().path();
        if dir.is_dir() {
            for f in std::fs::read_dir(&dir).unwrap() {
                emls.push(
                    String::from_utf8_lossy(&std::fs::read(f.unwrap().path()).unwrap())
                        .into_owned(),
                );
            }
        }
    }
    assert_eq!(emls.len(), all.len(), "{}", run.dump());
    for m in &all {
        assert!(
            emls.iter().any(|e| e.contains(&m.subject)),
            "{} ({}) missing",
            m.subject,
            m.folder
        );
    }
}

#[tokio::test]
async fn every_calendar_command_over_ews() {
    let env = Env::new().await;
    onprem(&env, "ntlm", seed::ADELE, seed::ADELE_PASSWORD).await;
    // A Windows zone's times come back under its IANA name, as on Graph.
    for tz in ["W. Europe Standard Time", "Europe/Berlin"] {
        let events = json(
            &env.run(&[
                "calendar",
                "list",
                "--from",
                "2026-01-01",
                "--to",
                "2027-01-01",
                "--tz",
                tz,
                "--json",
            ])
            .await
            .ok()
            .stdout(),
        );
        let events = events.as_array().unwrap();
        assert!(
            events.iter().any(|e| e["kind"] == "occurrence"),
            "{tz}: recurrences expanded: {events:?}"
        );
        assert!(
            events
                .iter()
                .filter(|e| e["is_all_day"] == false)
                .all(|e| e["start"]["time_zone"] == "Europe/Berlin"),
            "{tz}: {events:?}"
        );
    }

    let created = json(
        &env.run(&[
            "calendar",
            "create",
            "--subject",
            "EWS review",
            "--start",
            "2026-12-02T10:00",
            "--end",
            "2026-12-02T11:00",
            "--tz",
            "Europe/Berlin",
            "--attendee",
            seed::MEGAN,
            "--json",
        ])
        .await
        .ok()
        .stdout(),
    );
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["subject"], "EWS review", "{created}");
    assert_eq!(
        created["start"]["date_time"], "2026-12-02T10:00:00",
        "{created}"
    );
    // The attendee got the invitation and has the meeting in her calendar.
    assert!(
        env.mock
            .delivered(seed::MEGAN)
            .iter()
            .any(|(_, s)| s.contains("EWS review")),
        "{:?}",
        env.mock.delivered(seed::MEGAN)
    );
    let megans = env.mock.mailbox_content(seed::MEGAN).unwrap().events;
    assert!(megans.iter().any(|e| e.subject == "EWS review"));
    let adeles = env.mock.mailbox_content(seed::ADELE).unwrap().events;
    let mine = adeles.iter().find(|e| e.subject == "EWS review").unwrap();
    assert_eq!(
        mine.attendees
            .iter()
            .map(|a| a.address.as_str())
            .collect::<Vec<_>>(),
        [seed::MEGAN]
    );

    let updated = json(
        &env.run(&["calendar", "update", &id, "--location", "Room 4", "--json"])
            .await
            .ok()
            .stdout(),
    );
    assert_eq!(updated["location"], "Room 4", "{updated}");
    // Answered in the event's own zone (its StartTimeZone), not in UTC.
    assert_eq!(
        updated["start"],
        serde_json::json!({"date_time": "2026-12-02T10:00:00", "time_zone": "Europe/Berlin"}),
        "{updated}"
    );
    let adeles = env.mock.mailbox_content(seed::ADELE).unwrap().events;
    assert_eq!(
        adeles
            .iter()
            .find(|e| e.subject == "EWS review")
            .unwrap()
            .location,
        "Room 4"
    );

    // Moved in a Windows zone: the mock has the new instant, the answer the zone's IANA name.
    let moved = json(
        &env.run(&[
            "calendar",
            "update",
            &id,
            "--start",
            "2026-12-02T14:00",
            "--end",
            "2026-12-02T15:30",
            "--tz",
            "W. Europe Standard Time",
            "--json",
        ])
        .await
        .ok()
        .stdout(),
    );
    assert_eq!(
        moved["start"],
        serde_json::json!({"date_time": "2026-12-02T14:00:00", "time_zone": "Europe/Berlin"}),
        "{moved}"
    );
    assert_eq!(moved["location"], "Room 4", "kept: {moved}");
    let stored = env.mock.mailbox_content(seed::ADELE).unwrap().events;
    let stored = stored.iter().find(|e| e.subject == "EWS review").unwrap();
    assert_eq!(stored.time_zone, "W. Europe Standard Time", "{stored:?}");
    assert!(stored.start.starts_with("2026-12-02T14:00"), "{stored:?}");
    let fb = json(
        &env.run(&[
            "calendar",
            "freebusy",
            "--who",
            seed::MEGAN,
            "--from",
            "2026-12-02T09:00:00Z",
            "--to",
            "2026-12-02T12:00:00Z",
            "--interval",
            "60",
            "--json",
        ])
        .await
        .ok()
        .stdout(),
    );
    assert_eq!(fb[0]["mailbox"], seed::MEGAN, "{fb}");
    assert_eq!(fb[0]["view"].as_array().unwrap().len(), 3, "{fb}");
    assert!(fb[0]["error"].is_null(), "{fb}");

    env.run(&["calendar", "delete", &id]).await.ok();
    let adeles = env.mock.mailbox_content(seed::ADELE).unwrap().events;
    assert!(!adeles.iter().any(|e| e.subject == "EWS review"));
    assert!(
        env.mock
            .delivered(seed::MEGAN)
            .iter()
            .any(|(_, s)| s.starts_with("Canceled") && s.contains("EWS review")),
        "{:?}",
        env.mock.delivered(seed::MEGAN)
    );
}

#[tokio::test]
async fn every_contacts_command_over_ews() {
    let env = Env::new().await;
    // Enough contacts for more than one page.
    let mut content = env.mock.mailbox_content(seed::ADELE).unwrap();
    for i in 0..130 {
        content.contacts.push(ContactContent {
            given_name: format!("Given{i:03}"),
            surname: "Paged".into(),
            display_name: None,
            email_addresses: vec![],
            business_phones: vec![],
            mobile_phone: None,
            home_phones: vec![],
            company_name: None,
            job_title: None,
        });
    }
    let total = content.contacts.len();
    env.mock.load_mailbox(content).unwrap();
    onprem(&env, "basic", seed::ADELE, seed::ADELE_PASSWORD).await;

    let first = env.run(&["contacts", "list"]).await.ok();
    let more = first
        .stderr()
        .lines()
        .find_map(|l| l.strip_prefix("more: exgate contacts list --page "))
        .map(|t| t.split_whitespace().next().unwrap().to_owned())
        .unwrap_or_else(|| panic!("a next page: {}", first.dump()));
    let first_page = json(&env.run(&["contacts", "list", "--json"]).await.ok().stdout());
    let second_page = json(
        &env.run(&["contacts", "list", "--page", &more, "--json"])
            .await
            .ok()
            .stdout(),
    );
    let ids = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert!(
        ids(&second_page)
            .iter()
            .all(|i| !ids(&first_page).contains(i))
    );
    assert_eq!(
        ids(&first_page).len() + ids(&second_page).len(),
        total,
        "two pages hold every contact"
    );

    let created = json(
        &env.run(&[
            "contacts",
            "create",
            "--name",
            "Alex Wilberforce",
            "--given-name",
            "Alex",
            "--surname",
            "Wilberforce",
            "--email",
            "alex@contoso.onmicrosoft.com",
            "--phone",
            "+1 555 0100",
            "--company",
            "Contoso",
            "--json",
        ])
        .await
        .ok()
        .stdout(),
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let stored = |env: &Env| {
        env.mock
            .mailbox_content(seed::ADELE)
            .unwrap()
            .contacts
            .into_iter()
            .find(|c| c.surname == "Wilberforce")
    };
    let alex = stored(&env).expect("created in the mock");
    assert_eq!(alex.company_name.as_deref(), Some("Contoso"));
    assert_eq!(
        alex.email_addresses[0].address,
        "alex@contoso.onmicrosoft.com"
    );
    let shown = json(
        &env.run(&["contacts", "show", &id, "--json"])
            .await
            .ok()
            .stdout(),
    );
    assert_eq!(shown["display_name"], "Alex Wilberforce", "{shown}");
    assert_eq!(shown["business_phones"][0], "+1 555 0100", "{shown}");
    let updated = json(
        &env.run(&[
            "contacts",
            "update",
            &id,
            "--job-title",
            "Director",
            "--json",
        ])
        .await
        .ok()
        .stdout(),
    );
    assert_eq!(updated["job_title"], "Director");
    let alex = stored(&env).unwrap();
    assert_eq!(alex.job_title.as_deref(), Some("Director"));
    assert_eq!(alex.company_name.as_deref(), Some("Contoso"), "kept");
    env.run(&["contacts", "delete", &id]).await.ok();
    assert!(stored(&env).is_none());
    env.run(&["contacts", "show", &id])
        .await
        .fails(1, &["was not found"]);
}

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
