//! `exgate mail | calendar | contacts` on an Exchange Server connection, through the real binary
//! against the mock EWS: Basic and NTLM service accounts, a delegate's mailbox, and a message
//! sent over EWS that Graph sees.

use exgate_testkit::entra::seed;
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
        json(&events).is_array() || json(&events).is_object(),
        "{events}"
    );
    let contacts = env.run(&["contacts", "list", "--json"]).await.ok().stdout();
    assert!(!contacts.is_empty());
}
