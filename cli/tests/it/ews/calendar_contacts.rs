//! Every calendar and contacts command over EWS.

use exgate_testkit::entra::seed;
use exgate_testkit::mailstore::ContactContent;
use serde_json::Value;

use super::{json, onprem};
use crate::util::Env;

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
