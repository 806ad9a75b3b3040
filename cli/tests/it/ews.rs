//! `exgate mail | calendar | contacts` on an Exchange Server connection, through the real binary
//! against the mock EWS: Basic and NTLM service accounts, a delegate's mailbox, and a message
//! sent over EWS that Graph sees.

mod calendar_contacts;
mod mail;
mod online;

use exgate_testkit::entra::seed;
use exgate_testkit::mailstore::MessageContent;
use serde_json::Value;

use crate::util::Env;

pub(super) fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// An Exchange Server connection `onprem` to the mock's EWS as `user` with `auth`.
pub(super) async fn onprem(env: &Env, auth: &str, user: &str, password: &str) {
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

pub(super) fn messages(v: &Value) -> Vec<Value> {
    v["messages"].as_array().cloned().unwrap_or_default()
}

/// The mock's view of `mailbox`: the messages of `folder` (a well-known name).
pub(super) fn in_folder(env: &Env, mailbox: &str, folder: &str) -> Vec<MessageContent> {
    env.mock
        .mailbox_content(mailbox)
        .unwrap()
        .messages
        .into_iter()
        .filter(|m| m.folder.eq_ignore_ascii_case(folder))
        .collect()
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
