//! The calendar over the wire: time zones by Windows and IANA name (Prefer outlook.timezone,
//! event times, the range's recurrenceTimeZone, working hours) and series expansion.

mod support;

use exgate_testkit::entra::seed::*;
use exgate_testkit::graph::MailboxContent;
use exgate_testkit::{MockMicrosoft, Seed};
use serde_json::{Value, json};
use support::Graph;

async fn mock() -> MockMicrosoft {
    MockMicrosoft::start(Seed::contoso()).await.unwrap()
}

fn prefer(zone: &str) -> String {
    format!("outlook.timezone=\"{zone}\"")
}

/// `(subject, start dateTime)` of a calendarView answer.
fn starts(items: &[Value]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|e| {
            (
                e["subject"].as_str().unwrap_or_default().to_string(),
                e["start"]["dateTime"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

/// The start (`dateTime`) of every event named `subject` in a window, in `zone`.
async fn view(g: &Graph, window: (&str, &str), subject: &str, zone: &str) -> Vec<String> {
    let answer = g
        .get_with(
            &format!(
                "/me/calendarView?startDateTime={}&endDateTime={}&$top=100&$filter=subject eq '{subject}'&$select=subject,start,end",
                window.0, window.1
            ),
            &[("Prefer", &prefer(zone))],
        )
        .await;
    answer.ok();
    assert_eq!(
        answer.header("preference-applied"),
        Some(prefer(zone).as_str())
    );
    for e in answer.values() {
        assert_eq!(e["start"]["timeZone"], zone);
    }
    starts(&answer.values())
        .into_iter()
        .map(|(_, start)| start)
        .collect()
}

async fn create(g: &Graph, event: Value) -> Value {
    let created = g.post("/me/events", &event).await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text());
    created.body
}

fn single(subject: &str, start: &str, end: &str, zone: &str) -> Value {
    json!({
        "subject": subject,
        "start": {"dateTime": start, "timeZone": zone},
        "end": {"dateTime": end, "timeZone": zone},
    })
}

// ----- time zones -----

#[tokio::test]
async fn windows_and_iana_names_give_the_same_times_links_included() {
    let m = mock().await;
    let g = Graph::adele(&m).await;
    // 09:00 in Kolkata (UTC+05:30, no daylight saving time) is 03:30 UTC.
    let created = create(
        &g,
        single(
            "Standup Pune",
            "2026-11-02T09:00:00",
            "2026-11-02T09:15:00",
            "Asia/Kolkata",
        ),
    )
    .await;
    assert_eq!(
        created["start"],
        json!({"dateTime": "2026-11-02T09:00:00.0000000", "timeZone": "Asia/Kolkata"})
    );
    assert_eq!(created["originalStartTimeZone"], "Asia/Kolkata");
    let window = ("2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z");
    for (zone, expected) in [
        ("India Standard Time", "2026-11-02T09:00:00.0000000"),
        ("Asia/Kolkata", "2026-11-02T09:00:00.0000000"),
        ("Asia/Calcutta", "2026-11-02T09:00:00.0000000"),
        ("UTC", "2026-11-02T03:30:00.0000000"),
        ("Etc/UTC", "2026-11-02T03:30:00.0000000"),
        // Kyiv in winter: UTC+2, under its current name, CLDR's old one and the Windows one.
        ("Europe/Kyiv", "2026-11-02T05:30:00.0000000"),
        ("Europe/Kiev", "2026-11-02T05:30:00.0000000"),
        ("FLE Standard Time", "2026-11-02T05:30:00.0000000"),
        ("W. Europe Standard Time", "2026-11-02T04:30:00.0000000"),
        ("europe/berlin", "2026-11-02T04:30:00.0000000"),
        // Los Angeles: PDT ended on 1 November, so UTC-8.
        ("Pacific Standard Time", "2026-11-01T19:30:00.0000000"),
        ("America/Los_Angeles", "2026-11-01T19:30:00.0000000"),
    ] {
        assert_eq!(
            view(&g, window, "Standup Pune", zone).await,
            vec![expected.to_string()],
            "{zone}"
        );
    }

    // Created in Kyiv's current name in summer (UTC+3): 15:00 UTC.
    create(
        &g,
        single(
            "Kyiv call",
            "2026-07-15T18:00:00",
            "2026-07-15T19:00:00",
            "Europe/Kyiv",
        ),
    )
    .await;
    let july = ("2026-07-15T00:00:00Z", "2026-07-16T00:00:00Z");
    assert_eq!(
        view(&g, july, "Kyiv call", "UTC").await,
        ["2026-07-15T15:00:00.0000000"]
    );
    assert_eq!(
        view(&g, july, "Kyiv call", "FLE Standard Time").await,
        ["2026-07-15T18:00:00.0000000"]
    );
}

#[tokio::test]
async fn berlin_times_follow_the_switch_to_summer_time() {
    let m = mock().await;
    let g = Graph::adele(&m).await;
    // The Friday before and the Monday after 29 March 2026 (CET → CEST), at 09:00 Berlin.
    for (day, zone) in [
        ("2026-03-27", "W. Europe Standard Time"),
        ("2026-03-30", "Europe/Berlin"),
    ] {
        create(
            &g,
            single(
                "Berlin 9",
                &format!("{day}T09:00:00"),
                &format!("{day}T10:00:00"),
                zone,
            ),
        )
        .await;
    }
    let window = ("2026-03-26T00:00:00Z", "2026-04-01T00:00:00Z");
    assert_eq!(
        view(&g, window, "Berlin 9", "UTC").await,
        ["2026-03-27T08:00:00.0000000", "2026-03-30T07:00:00.0000000"]
    );
    for zone in ["Europe/Berlin", "W. Europe Standard Time"] {
        assert_eq!(
            view(&g, window, "Berlin 9", zone).await,
            ["2026-03-27T09:00:00.0000000", "2026-03-30T09:00:00.0000000"],
            "{zone}"
        );
    }
    // A Pacific view of the same week: the US switched on 8 March, Berlin three weeks later.
    assert_eq!(
        view(&g, window, "Berlin 9", "Pacific Standard Time").await,
        ["2026-03-27T01:00:00.0000000", "2026-03-30T00:00:00.0000000"]
    );
}

#[tokio::test]
async fn unknown_zones_get_graphs_time_zone_not_supported_error_and_change_nothing() {
    let m = mock().await;
    let g = Graph::adele(&m).await;
    let window = "startDateTime=2026-11-01T00:00:00Z&endDateTime=2026-11-08T00:00:00Z";
    let before = g
        .get(&format!("/me/calendarView?{window}&$top=100"))
        .await
        .values()
        .len();
    assert!(before > 0);

    for zone in ["Mars/Olympus_Mons", "Greenwich Mean Time", "undefined"] {
        let answer = g
            .get_with(
                &format!("/me/calendarView?{window}"),
                &[("Prefer", &prefer(zone))],
            )
            .await;
        assert_eq!(
            answer.error(400, "TimeZoneNotSupportedException"),
            format!(
                "A valid TimeZone value must be specified. The following TimeZone value is not supported: '{zone}'."
            )
        );
        assert!(answer.header("preference-applied").is_none());
    }
    let event = g.get("/me/events?$top=1&$select=id").await.values()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    g.get_with(
        &format!("/me/events/{event}"),
        &[("Prefer", &prefer("Mars/Olympus_Mons"))],
    )
    .await
    .error(400, "TimeZoneNotSupportedException");
    // A write with an unknown preferred zone is refused before it changes anything.
    let refused = g
        .post_with(
            "/me/events",
            &single("Never", "2026-11-03T09:00:00", "2026-11-03T10:00:00", "UTC"),
            &[("Prefer", &prefer("Mars/Olympus_Mons"))],
        )
        .await;
    refused.error(400, "TimeZoneNotSupportedException");
    let schedule = g
        .post_with(
            "/me/calendar/getSchedule",
            &json!({"schedules": [ADELE],
                    "startTime": {"dateTime": "2026-11-02T00:00:00", "timeZone": "UTC"},
                    "endTime": {"dateTime": "2026-11-03T00:00:00", "timeZone": "UTC"}}),
            &[("Prefer", &prefer("Mars/Olympus_Mons"))],
        )
        .await;
    schedule.error(400, "TimeZoneNotSupportedException");

    // Unknown zones in the body: an event time, the range's recurrenceTimeZone, and an IANA
    // zone CLDR has no Windows zone for (Exchange keeps Windows zones).
    for (start_zone, range_zone) in [
        ("Greenwich Mean Time", None),
        ("GMT+6:30", None),
        ("Antarctica/Troll", None),
        ("UTC", Some("Mars/Olympus_Mons")),
    ] {
        let mut event = single(
            "Never",
            "2026-11-03T09:00:00",
            "2026-11-03T10:00:00",
            start_zone,
        );
        if let Some(range_zone) = range_zone {
            event["recurrence"] = json!({
                "pattern": {"type": "daily", "interval": 1},
                "range": {"type": "noEnd", "startDate": "2026-11-03", "recurrenceTimeZone": range_zone}
            });
        }
        let message = g
            .post("/me/events", &event)
            .await
            .error(400, "TimeZoneNotSupportedException")
            .to_string();
        assert!(
            message.contains(range_zone.unwrap_or(start_zone)),
            "{message}"
        );
    }
    let after = g.get(&format!("/me/calendarView?{window}&$top=100")).await;
    assert_eq!(after.values().len(), before);
    assert!(
        !starts(&after.values()).iter().any(|(s, _)| s == "Never"),
        "nothing was created"
    );
}

#[tokio::test]
async fn working_hours_name_the_windows_zone_of_the_mailbox() {
    let m = mock().await;
    for (zone, windows) in [
        ("Europe/Kyiv", "FLE Standard Time"),
        ("Asia/Kolkata", "India Standard Time"),
        ("Pacific Standard Time", "Pacific Standard Time"),
        ("UTC", "UTC"),
    ] {
        let mut content = MailboxContent::empty(MEGAN);
        content.time_zone = Some(zone.to_string());
        m.load_mailbox(content).unwrap();
        let g = Graph::adele(&m).await;
        let answer = g
            .post(
                "/me/calendar/getSchedule",
                &json!({"schedules": [MEGAN],
                        "startTime": {"dateTime": "2026-11-02T00:00:00", "timeZone": "UTC"},
                        "endTime": {"dateTime": "2026-11-03T00:00:00", "timeZone": "UTC"}}),
            )
            .await;
        answer.ok();
        assert_eq!(
            answer.values()[0]["workingHours"]["timeZone"]["name"],
            windows,
            "{zone}"
        );
    }
    let mut bad = MailboxContent::empty(MEGAN);
    bad.time_zone = Some("Mars/Olympus_Mons".into());
    assert!(m.load_mailbox(bad).is_err());
}

// ----- series -----

#[tokio::test]
async fn last_friday_monthly_stays_at_ten_pacific_across_the_end_of_us_summer_time() {
    let m = mock().await;
    let g = Graph::adele(&m).await;
    let mut event = single(
        "Board prep",
        "2026-09-25T10:00:00",
        "2026-09-25T11:00:00",
        "Pacific Standard Time",
    );
    event["recurrence"] = json!({
        "pattern": {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["friday"], "index": "last"},
        "range": {"type": "numbered", "startDate": "2026-09-25", "numberOfOccurrences": 4}
    });
    let master = create(&g, event).await;
    assert_eq!(master["type"], "seriesMaster");
    let window = ("2026-09-01T00:00:00Z", "2027-03-01T00:00:00Z");
    // PDT (UTC-7) ends on 1 November: the UTC time moves, the local one does not.
    assert_eq!(
        view(&g, window, "Board prep", "UTC").await,
        [
            "2026-09-25T17:00:00.0000000",
            "2026-10-30T17:00:00.0000000",
            "2026-11-27T18:00:00.0000000",
            "2026-12-25T18:00:00.0000000"
        ]
    );
    for zone in ["Pacific Standard Time", "America/Los_Angeles"] {
        assert_eq!(
            view(&g, window, "Board prep", zone).await,
            [
                "2026-09-25T10:00:00.0000000",
                "2026-10-30T10:00:00.0000000",
                "2026-11-27T10:00:00.0000000",
                "2026-12-25T10:00:00.0000000"
            ],
            "{zone}"
        );
    }
    let id = master["id"].as_str().unwrap();
    let instances = g
        .get(&format!(
            "/me/events/{id}/instances?startDateTime={}&endDateTime={}",
            window.0, window.1
        ))
        .await;
    assert_eq!(instances.values().len(), 4, "{}", instances.text());
}

#[tokio::test]
async fn mondays_and_wednesdays_stay_at_nine_in_berlin_across_the_switch_to_summer_time() {
    let m = mock().await;
    let g = Graph::adele(&m).await;
    let mut event = single(
        "Standup Berlin",
        "2026-03-16T09:00:00",
        "2026-03-16T09:15:00",
        "Europe/Berlin",
    );
    event["recurrence"] = json!({
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "wednesday"], "firstDayOfWeek": "monday"},
        "range": {"type": "endDate", "startDate": "2026-03-16", "endDate": "2026-04-08", "recurrenceTimeZone": "Europe/Berlin"}
    });
    let master = create(&g, event).await;
    assert_eq!(
        master["recurrence"]["range"]["recurrenceTimeZone"],
        "Europe/Berlin"
    );
    let window = ("2026-03-01T00:00:00Z", "2026-05-01T00:00:00Z");
    assert_eq!(
        view(&g, window, "Standup Berlin", "UTC").await,
        [
            "2026-03-16T08:00:00.0000000",
            "2026-03-18T08:00:00.0000000",
            "2026-03-23T08:00:00.0000000",
            "2026-03-25T08:00:00.0000000",
            "2026-03-30T07:00:00.0000000",
            "2026-04-01T07:00:00.0000000",
            "2026-04-06T07:00:00.0000000",
            "2026-04-08T07:00:00.0000000"
        ]
    );
    let local = view(&g, window, "Standup Berlin", "W. Europe Standard Time").await;
    assert_eq!(local.len(), 8);
    assert!(
        local.iter().all(|t| t.ends_with("T09:00:00.0000000")),
        "{local:?}"
    );
}
