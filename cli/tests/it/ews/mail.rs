//! Every mail command over EWS: filters, bodies, attachments, sends, replies, moves, exports.

use exgate_testkit::entra::seed;
use exgate_testkit::mailstore::Address;

use super::{in_folder, json, messages, onprem};
use crate::util::Env;

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
