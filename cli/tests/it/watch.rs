//! `exgate watch` through the real binary against the mock: a message delivered into the
//! mailbox after the command started is printed once, as a line or as JSON, with an ID
//! `exgate mail show` takes; Graph is polled (`--interval 1`), IMAP is woken by IDLE
//! (`--interval 3600`: no poll comes within the test); SIGTERM stops it with exit code 0; a
//! watch that cannot be made fails with the reason.

use std::process::Command as StdCommand;

use exgate_testkit::entra::seed;
use exgate_testkit::graph::{Address, MessageContent};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::ChildStdout;

use crate::util::{Env, Run, Running, WAIT};

/// A running `exgate watch` whose stdout is read line by line.
struct Watch {
    running: Running,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Watch {
    /// Starts `exgate watch ARGS` and waits until its watch is made (the baseline is taken):
    /// what is delivered from then on is reported.
    async fn start(env: &Env, args: &[&str]) -> Self {
        let mut all = vec!["watch"];
        all.extend_from_slice(args);
        let mut running = env.spawn(&all);
        let stdout = BufReader::new(running.child.stdout.take().unwrap()).lines();
        running.line_with("exgate watch: watching").await;
        Self { running, stdout }
    }

    /// The next line on stdout; fails the test when none comes within [`WAIT`].
    async fn next_line(&mut self) -> String {
        match tokio::time::timeout(WAIT, self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => line,
            other => panic!("no event line within {WAIT:?}: {other:?}"),
        }
    }

    /// Sends SIGTERM and answers the finished run (stdout read here is not in it).
    async fn stop(self) -> Run {
        let pid = self.running.child.id().unwrap().to_string();
        assert!(
            StdCommand::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        self.running.finish().await
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Delivers a message from Megan into the inbox of `mailbox`; answers its Graph ID.
fn deliver(env: &Env, mailbox: &str, subject: &str) -> String {
    let message = MessageContent::new(
        "inbox",
        subject,
        Address::new("Megan Bowen", seed::MEGAN),
        time::OffsetDateTime::now_utc(),
    );
    env.mock
        .add_messages(mailbox, &[message])
        .unwrap()
        .pop()
        .unwrap()
}

async fn daemon() -> Env {
    let env = Env::new().await;
    env.add_app_only("daemon", seed::DAEMON_APP_SECRET).await;
    env
}

#[tokio::test]
async fn a_delivered_message_is_one_line_with_an_id_mail_show_takes() {
    let env = daemon().await;
    let mut watch = Watch::start(&env, &["-m", seed::ADELE, "--interval", "1"]).await;
    let id = deliver(&env, seed::ADELE, "Watched from the CLI");

    let line = watch.next_line().await;
    let words: Vec<&str> = line.split(' ').collect();
    assert_eq!(words.len(), 4, "{line}");
    assert!(
        time::OffsetDateTime::parse(words[0], &time::format_description::well_known::Rfc3339)
            .is_ok()
            && words[0].ends_with('Z'),
        "{line}"
    );
    assert_eq!(
        &words[1..],
        ["message.created", "inbox", id.as_str()],
        "{line}"
    );
    let shown = env
        .run(&["mail", "show", words[3], "-m", seed::ADELE])
        .await
        .ok()
        .stdout();
    assert!(shown.contains("Watched from the CLI"), "{shown}");

    // A second delivery is one more line, not a repeat of the first.
    let second = deliver(&env, seed::ADELE, "And another");
    let line = watch.next_line().await;
    assert!(
        line.ends_with(&format!(" message.created inbox {second}")),
        "{line}"
    );

    let run = watch.stop().await;
    assert_eq!(run.out.status.code(), Some(0), "{}", run.dump());
    assert!(
        !run.dump().contains("eyJ"),
        "no token printed: {}",
        run.dump()
    );
}

#[tokio::test]
async fn with_json_each_event_is_a_json_object_on_its_line() {
    let env = Env::new().await;
    env.add_public("contoso", "password").await;
    env.run_with_stdin(
        &[
            "login",
            "--password",
            "--username",
            seed::ADELE,
            "--password-file",
            "-",
        ],
        seed::ADELE_PASSWORD,
    )
    .await
    .ok();
    let mut watch = Watch::start(&env, &["--json", "--interval", "1", "--folder", "inbox"]).await;
    let id = deliver(&env, seed::ADELE, "As JSON");

    let event = json(&watch.next_line().await);
    assert_eq!(event["type"], "message.created", "{event}");
    assert_eq!(event["folder"], "inbox", "{event}");
    assert_eq!(event["item_id"], id.as_str(), "{event}");
    assert_eq!(event["connection"], "contoso", "{event}");
    assert_eq!(event["principal"], seed::ADELE, "{event}");
    assert!(event["seq"].as_i64().unwrap() > 0, "{event}");
    assert!(event["id"].as_str().unwrap().starts_with("evt_"), "{event}");
    let shown = json(
        &env.run(&["mail", "show", event["item_id"].as_str().unwrap(), "--json"])
            .await
            .ok()
            .stdout(),
    );
    assert_eq!(shown["subject"], "As JSON", "{shown}");

    let run = watch.stop().await;
    assert_eq!(run.out.status.code(), Some(0), "{}", run.dump());
}

/// IMAP IDLE wakes the watch: with an hour between looks, the event still comes at once.
#[tokio::test]
async fn an_imap_watch_is_woken_by_idle() {
    let env = Env::new().await;
    let ca = env.write("mail-ca.pem", &env.mock.mail_ca_pem());
    env.write(
        "config/exgate/exgate.toml",
        &format!(
            "[endpoints]\nauthority_host = \"{}\"\ngraph_url = \"{}\"\n\n[tls]\nca_file = \"{}\"\n",
            env.mock.base_url(),
            env.mock.graph_url(),
            ca.display()
        ),
    );
    let imap_url = env.mock.imap_url();
    env.add_app_only("daemon", seed::DAEMON_APP_SECRET).await;
    env.run(&[
        "connection",
        "edit",
        "daemon",
        "--backend",
        "imap",
        "--imap-url",
        &imap_url,
    ])
    .await
    .ok();
    let mut watch = Watch::start(&env, &["-m", seed::ADELE, "--interval", "3600"]).await;
    deliver(&env, seed::ADELE, "Over IDLE");

    let line = watch.next_line().await;
    let words: Vec<&str> = line.split(' ').collect();
    assert_eq!(&words[1..3], ["message.created", "inbox"], "{line}");
    assert!(words[3].starts_with("im1."), "an IMAP message ID: {line}");
    let shown = env
        .run(&["mail", "show", words[3], "-m", seed::ADELE])
        .await
        .ok()
        .stdout();
    assert!(shown.contains("Over IDLE"), "{shown}");

    // The next one too; the watch held an IDLE session on the Inbox to hear of it.
    deliver(&env, seed::ADELE, "Over IDLE again");
    let line = watch.next_line().await;
    assert!(line.contains(" message.created inbox im1."), "{line}");
    let sessions = env.mock.mail_sessions();
    assert!(
        sessions
            .iter()
            .any(|s| s.mailbox.as_deref() == Some(seed::ADELE)
                && s.commands.iter().any(|c| c == "IDLE")),
        "{sessions:?}"
    );

    // IMAP has no calendar: the watch is refused with the reason.
    env.run(&["watch", "-m", seed::ADELE, "--calendar"])
        .await
        .fails(2, &["IMAP", "no calendar"]);

    let run = watch.stop().await;
    assert_eq!(run.out.status.code(), Some(0), "{}", run.dump());
}

#[tokio::test]
async fn a_watch_that_cannot_be_made_fails_with_the_reason() {
    let env = daemon().await;
    env.run(&["watch", "-c", "nosuch", "-m", seed::ADELE])
        .await
        .fails(1, &["connection", "nosuch"]);
    // App-only names the mailbox.
    env.run(&["watch", "--interval", "1"])
        .await
        .fails(2, &["--mailbox"]);
    // The app may not read Adele's mailbox (an application access policy).
    env.mock
        .set_mailbox_scope(seed::DAEMON_APP, Some(vec![seed::MEGAN.to_owned()]));
    let run = env.run(&["watch", "-m", seed::ADELE]).await;
    assert_eq!(run.out.status.code(), Some(1), "{}", run.dump());
    assert!(run.stdout().is_empty(), "{}", run.dump());
}
