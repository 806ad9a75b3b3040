//! The request pipeline as a user meets it through the CLI: tokens and IDs that cannot be
//! turned against another mailbox, large items streamed, hostile server hints ended in bounded
//! time with a clear error.

use exgate_testkit::entra::seed;
use exgate_testkit::graph::{Address, AttachmentContent, MessageContent};
use exgate_testkit::{FaultKind, FaultRule};
use serde_json::Value;

use crate::util::Env;

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

async fn daemon() -> Env {
    let env = Env::new().await;
    env.add_app_only("daemon", seed::DAEMON_APP_SECRET).await;
    env
}

/// The next-page token of a one-message listing of `mailbox`.
async fn first_page_token(env: &Env, mailbox: &str, folder: &str) -> String {
    let page = json(
        &env.run(&[
            "mail", "list", "-m", mailbox, "--folder", folder, "--limit", "1", "--json",
        ])
        .await
        .ok()
        .stdout(),
    );
    page["next_page"]
        .as_str()
        .unwrap_or_else(|| panic!("no next page: {page}"))
        .to_owned()
}

#[tokio::test]
async fn a_page_token_works_only_for_the_mailbox_folder_and_query_it_came_from() {
    let env = daemon().await;
    let token = first_page_token(&env, seed::MEGAN, "inbox").await;
    assert!(!token.contains("graph"), "the token is opaque: {token}");

    // Its own listing continues.
    let next = json(
        &env.run(&[
            "mail",
            "list",
            "-m",
            seed::MEGAN,
            "--folder",
            "inbox",
            "--page",
            &token,
            "--json",
        ])
        .await
        .ok()
        .stdout(),
    );
    assert!(!next["messages"].as_array().unwrap().is_empty(), "{next}");

    let before = env.mock.graph_requests();
    // Another mailbox, another folder: refused before anything is sent.
    for (mailbox, folder) in [(seed::ADELE, "inbox"), (seed::MEGAN, "sent-items")] {
        env.run(&[
            "mail", "list", "-m", mailbox, "--folder", folder, "--page", &token,
        ])
        .await
        .fails(2, &["was not issued for this mailbox, folder and query"]);
    }
    // The raw Graph URL of Adele's inbox, as the measured attack used it: refused too.
    let adele_inbox = format!(
        "{}/users/{}/mailFolders/inbox/messages?$top=10",
        env.mock.graph_url(),
        seed::ADELE
    );
    env.run(&[
        "mail",
        "list",
        "-m",
        seed::MEGAN,
        "--folder",
        "inbox",
        "--page",
        &adele_inbox,
    ])
    .await
    .fails(2, &["was not issued for this mailbox"]);
    assert_eq!(env.mock.graph_requests(), before, "nothing reached Graph");
}

#[tokio::test]
async fn item_ids_stay_inside_their_item() {
    let env = daemon().await;
    for id in [".", ".."] {
        env.run(&["mail", "delete", id, "-m", seed::ADELE])
            .await
            .fails(2, &["is not a message ID"]);
    }
    for (id, sent) in [
        ("a/b", "/messages/a%2Fb"),
        ("a%2Fb", "/messages/a%252Fb"),
        ("../..", "/messages/..%2F.."),
        ("x?$select=id#", "/messages/x%3F%24select%3Did%23"),
    ] {
        env.run(&["mail", "delete", id, "-m", seed::ADELE])
            .await
            .fails(1, &["was not found in the mailbox"]);
        let last = env.mock.requests().pop().unwrap();
        assert_eq!(last.method, "DELETE");
        assert!(
            last.uri
                .ends_with(&format!("/users/{}{sent}", seed::ADELE.replace('@', "%40"))),
            "{id} was sent as {}",
            last.uri
        );
    }
}

#[tokio::test]
async fn a_20_mb_attachment_streams_to_its_file() {
    let env = daemon().await;
    let size = 20 * 1024 * 1024;
    let big = AttachmentContent::generated("big.bin", "application/octet-stream", size);
    let small = AttachmentContent::new("small.txt", "text/plain", b"small");
    let mut ids = env
        .mock
        .add_messages(
            seed::ADELE,
            &[
                MessageContent::new("inbox", "big", Address::new("M", seed::MEGAN), now()),
                MessageContent::new("inbox", "small", Address::new("M", seed::MEGAN), now()),
            ]
            .map(|mut m| {
                m.attachments = vec![if m.subject == "big" {
                    big.clone()
                } else {
                    small.clone()
                }];
                m
            }),
        )
        .unwrap();
    let (small_id, big_id) = (ids.pop().unwrap(), ids.pop().unwrap());

    let dir = env.dir.path().join("saved");
    let dir_arg = dir.to_str().unwrap();
    let (_, baseline) = env
        .run_measured(&[
            "mail",
            "show",
            &small_id,
            "-m",
            seed::ADELE,
            "--save-attachments",
            dir_arg,
        ])
        .await;
    let (run, peak) = env
        .run_measured(&[
            "mail",
            "show",
            &big_id,
            "-m",
            seed::ADELE,
            "--save-attachments",
            dir_arg,
        ])
        .await;
    let run = run.ok();
    let saved = std::fs::read(dir.join("big.bin")).unwrap();
    assert!(saved == big.bytes(), "{}", run.dump());
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir.join("big.bin"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Streamed: the process grew by well under the attachment's size.
    let grew = peak.saturating_sub(baseline);
    assert!(
        grew < size / 4,
        "peak {peak} bytes against {baseline} for a small attachment: grew {grew} for {size}"
    );
}

#[tokio::test]
async fn a_mailbox_with_30_mb_messages_exports_completely() {
    let env = daemon().await;
    let big = |n: usize| {
        let mut m = MessageContent::new(
            "inbox",
            format!("large {n}"),
            Address::new("M", seed::MEGAN),
            now(),
        );
        m.attachments = vec![AttachmentContent::generated(
            format!("large-{n}.bin"),
            "application/octet-stream",
            30 * 1024 * 1024,
        )];
        m
    };
    env.mock
        .add_messages(seed::ADELE, &[big(1), big(2)])
        .unwrap();
    let listed = json(
        &env.run(&[
            "mail",
            "list",
            "-m",
            seed::ADELE,
            "--folder",
            "inbox",
            "--limit",
            "1000",
            "--json",
        ])
        .await
        .ok()
        .stdout(),
    );
    let total = listed["messages"].as_array().unwrap().len();
    let out = env.dir.path().join("export");
    let run = env
        .run(&[
            "mail",
            "export",
            "-m",
            seed::ADELE,
            "--folder",
            "inbox",
            "--out",
            out.to_str().unwrap(),
        ])
        .await
        .ok();
    assert!(
        run.stdout()
            .contains(&format!("exported {total} message(s)"))
            && run.stdout().contains("0 failed"),
        "{}",
        run.dump()
    );
    let large: Vec<_> = std::fs::read_dir(out.join("Inbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::metadata(p).unwrap().len() > 30 * 1024 * 1024)
        .collect();
    assert_eq!(large.len(), 2, "{}", run.dump());
}

#[tokio::test]
async fn hostile_and_long_server_hints_end_at_once_with_how_long() {
    let env = daemon().await;
    for (hint, says) in [
        ("18446744073709551615", "retry after 86400 s"),
        ("3600", "retry after 3600 s"),
    ] {
        env.mock
            .add_fault(FaultRule::next(
                1,
                FaultKind::TooManyRequests {
                    retry_after: Some(hint.into()),
                },
            ))
            .unwrap();
        let started = std::time::Instant::now();
        env.run(&["mail", "list", "-m", seed::ADELE])
            .await
            .fails(1, &["throttling this mailbox", says]);
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        env.mock.clear_faults();
    }
}

#[tokio::test]
async fn a_server_that_repeats_its_page_link_ends_the_listing_with_an_error() {
    let env = daemon().await;
    let token = first_page_token(&env, seed::ADELE, "inbox").await;
    env.mock
        .add_fault(FaultRule::next(1, FaultKind::RepeatNextLink).method("GET"))
        .unwrap();
    env.run(&[
        "mail",
        "list",
        "-m",
        seed::ADELE,
        "--folder",
        "inbox",
        "--page",
        &token,
    ])
    .await
    .fails(1, &["repeated a paging link", "stopped instead of looping"]);
    assert_eq!(env.mock.fault_report().total, 1);
}

#[tokio::test]
async fn attachments_over_3_mb_go_through_an_upload_session() {
    let env = daemon().await;
    // 5 MB of varied bytes, and a small one sent inline beside it.
    let big: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let big_file = env.dir.path().join("large.bin");
    std::fs::write(&big_file, &big).unwrap();
    let small_file = env.write("note.txt", "small");
    env.run(&[
        "mail",
        "send",
        "-m",
        seed::ADELE,
        "--to",
        seed::MEGAN,
        "--subject",
        "a large file",
        "--body",
        "see attached",
        "--attach",
        big_file.to_str().unwrap(),
        "--attach",
        small_file.to_str().unwrap(),
    ])
    .await
    .ok();
    let requests = env.mock.requests();
    let uploads: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "PUT" && r.status < 300)
        .collect();
    assert!(uploads.len() >= 2, "uploaded in pieces: {uploads:?}");
    assert!(
        requests
            .iter()
            .any(|r| r.uri.contains("/attachments/createUploadSession")),
        "{requests:?}"
    );
    // Delivered once, with both attachments whole.
    let delivered: Vec<_> = env
        .mock
        .delivered(seed::MEGAN)
        .into_iter()
        .filter(|(_, s)| s == "a large file")
        .collect();
    assert_eq!(delivered.len(), 1);
    let megan = env.mock.mailbox_content(seed::MEGAN).unwrap();
    let received = megan
        .messages
        .iter()
        .find(|m| m.subject == "a large file")
        .unwrap();
    let mut names: Vec<_> = received
        .attachments
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["large.bin", "note.txt"]);
    let large = received
        .attachments
        .iter()
        .find(|a| a.name == "large.bin")
        .unwrap();
    assert!(large.bytes() == big, "the large attachment arrived changed");
}

/// The words of a command as a POSIX shell reads plain and single-quoted words.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let (mut word, mut quoted, mut any) = (String::new(), false, false);
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(word);
    }
    words
}

#[tokio::test]
async fn the_printed_next_page_command_runs_as_printed() {
    let env = daemon().await;
    let first = env
        .run(&[
            "mail",
            "list",
            "-m",
            seed::MEGAN,
            "--folder",
            "inbox",
            "--limit",
            "2",
        ])
        .await
        .ok();
    let line = first
        .stderr()
        .lines()
        .find_map(|l| l.strip_prefix("more: ").map(str::to_owned))
        .unwrap_or_else(|| panic!("{}", first.dump()));
    let words = shell_words(&line);
    assert_eq!(words[0], "exgate", "{line}");
    assert!(
        words.contains(&seed::MEGAN.to_owned()) && words.contains(&"inbox".to_owned()),
        "{line}"
    );
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    let second = env.run(&args).await.ok();
    assert!(!second.stdout().is_empty(), "{}", second.dump());
    assert_ne!(
        first.stdout(),
        second.stdout(),
        "the next page, not the first again"
    );
}

#[tokio::test]
async fn malformed_answers_are_errors_that_say_so() {
    let env = daemon().await;
    env.mock
        .add_fault(FaultRule::next(1, FaultKind::JsonArray).method("GET"))
        .unwrap();
    env.run(&["mail", "list", "-m", seed::ADELE])
        .await
        .fails(1, &["Graph answered with JSON of an unexpected shape"]);
    env.mock
        .add_fault(FaultRule::next(1, FaultKind::TruncatedJson).method("GET"))
        .unwrap();
    env.run(&["mail", "folders", "-m", seed::ADELE])
        .await
        .fails(1, &["unexpected shape"]);
}

#[tokio::test]
async fn a_batch_item_that_is_not_mime_is_fetched_again_alone_and_exported_right() {
    let env = daemon().await;
    let clean = env.dir.path().join("clean");
    env.run(&[
        "mail",
        "export",
        "-m",
        seed::ADELE,
        "--folder",
        "inbox",
        "--out",
        clean.to_str().unwrap(),
    ])
    .await
    .ok();
    // Three items of the next batch answer JSON instead of MIME.
    env.mock
        .add_fault(FaultRule::next(3, FaultKind::NotMime).path("$value"))
        .unwrap();
    let spoiled = env.dir.path().join("spoiled");
    let run = env
        .run(&[
            "mail",
            "export",
            "-m",
            seed::ADELE,
            "--folder",
            "inbox",
            "--out",
            spoiled.to_str().unwrap(),
        ])
        .await
        .ok();
    assert!(run.stdout().contains("0 failed"), "{}", run.dump());
    assert_eq!(env.mock.fault_report().total, 3);
    for entry in std::fs::read_dir(clean.join("Inbox")).unwrap() {
        let path = entry.unwrap().path();
        let twin = spoiled.join("Inbox").join(path.file_name().unwrap());
        assert!(
            std::fs::read(&path).unwrap() == std::fs::read(&twin).unwrap(),
            "{} differs",
            twin.display()
        );
    }
}

#[tokio::test]
async fn attachments_too_many_to_go_inline_and_too_small_for_an_upload_session_are_posted() {
    let env = daemon().await;
    // Three files of 1.2 MB: two fit in the draft's own request, the third is posted alone
    // (Graph takes upload sessions only from 3 MB on).
    let mut args = vec![
        "mail".to_owned(),
        "send".into(),
        "-m".into(),
        seed::ADELE.into(),
        "--to".into(),
        seed::MEGAN.into(),
        "--subject".into(),
        "three files".into(),
        "--body".into(),
        "x".into(),
    ];
    let mut files = Vec::new();
    for n in 0..3u8 {
        let bytes = vec![n; 1_200_000];
        let path = env.dir.path().join(format!("part-{n}.bin"));
        std::fs::write(&path, &bytes).unwrap();
        args.push("--attach".into());
        args.push(path.to_str().unwrap().to_owned());
        files.push(bytes);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.run(&args).await.ok();
    let megan = env.mock.mailbox_content(seed::MEGAN).unwrap();
    let received = megan
        .messages
        .iter()
        .find(|m| m.subject == "three files")
        .unwrap();
    assert_eq!(received.attachments.len(), 3);
    for (n, bytes) in files.iter().enumerate() {
        let a = received
            .attachments
            .iter()
            .find(|a| a.name == format!("part-{n}.bin"))
            .unwrap();
        assert!(a.bytes() == *bytes, "part-{n}.bin arrived changed");
    }
    assert!(
        !env.mock
            .requests()
            .iter()
            .any(|r| r.uri.contains("createUploadSession")),
        "no upload session for files under 3 MB"
    );
}
