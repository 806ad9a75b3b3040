//! The mock EWS's calendar over the wire: CalendarView over the mail store's series, meetings
//! with invitations, updates and cancellations, recurrence both ways, free/busy.

mod ews_support;

use ews_support::*;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::Seed;
use exgate_testkit::entra::seed::*;
use reqwest::StatusCode;

async fn adele(m: &MockMicrosoft) -> Ews {
    Ews::basic(m, ADELE, ADELE_PASSWORD)
}

#[tokio::test]
async fn calendar_view_expands_series_and_meetings_invite_attendees() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let ews = adele(&m).await;
    let view = |from: &str, to: &str| {
        format!(
            r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>Default</t:BaseShape></m:ItemShape><m:CalendarView StartDate="{from}" EndDate="{to}"/><m:ParentFolderIds>{}</m:ParentFolderIds></m:FindItem>"#,
            dfid("calendar")
        )
    };
    let november = ews
        .call(&view("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"))
        .await;
    november.ok();
    let kinds = november.texts("CalendarItemType");
    assert!(
        kinds.iter().filter(|k| *k == "Occurrence").count() >= 2,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"Exception".to_string()), "{kinds:?}");
    let starts = november.texts("Start");
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted);
    let occurrence = all_between(&november.text, "<t:CalendarItem>", "</t:CalendarItem>")
        .into_iter()
        .find(|c| c.contains("<t:CalendarItemType>Occurrence<"))
        .map(|c| attrs(&c, "ItemId", "Id")[0].clone())
        .unwrap();
    let got = ews
        .call(&get_item(
            &occurrence,
            "<t:BaseShape>AllProperties</t:BaseShape>",
        ))
        .await;
    got.ok();
    assert_eq!(got.texts("IsRecurring"), ["true"]);
    let backwards = ews
        .call(&view("2026-12-01T00:00:00Z", "2026-11-01T00:00:00Z"))
        .await;
    assert_eq!(
        backwards.codes(),
        ["ErrorCalendarEndDateIsEarlierThanStartDate"]
    );

    let invite = ews
        .call(&format!(
            r#"<m:CreateItem SendMeetingInvitations="SendToAllAndSaveCopy"><m:SavedItemFolderId>{}</m:SavedItemFolderId><m:Items><t:CalendarItem><t:Subject>Design review</t:Subject><t:Body BodyType="Text">agenda</t:Body><t:Start>2026-11-20T14:00:00Z</t:Start><t:End>2026-11-20T15:00:00Z</t:End><t:Location>Room 1</t:Location><t:RequiredAttendees><t:Attendee><t:Mailbox><t:EmailAddress>{MEGAN}</t:EmailAddress></t:Mailbox></t:Attendee></t:RequiredAttendees></t:CalendarItem></m:Items></m:CreateItem>"#,
            dfid("calendar")
        ))
        .await;
    invite.ok();
    let event = invite.attrs("ItemId", "Id")[0].clone();
    assert!(m.delivered(MEGAN).iter().any(|(_, s)| s == "Design review"));
    ews.call(&format!(
        r#"<m:UpdateItem ConflictResolution="AlwaysOverwrite" SendMeetingInvitationsOrCancellations="SendToNone"><m:ItemChanges><t:ItemChange><t:ItemId Id="{event}"/><t:Updates><t:SetItemField><t:FieldURI FieldURI="calendar:Start"/><t:CalendarItem><t:Start>2026-11-20T15:00:00Z</t:Start></t:CalendarItem></t:SetItemField><t:SetItemField><t:FieldURI FieldURI="calendar:End"/><t:CalendarItem><t:End>2026-11-20T16:30:00Z</t:End></t:CalendarItem></t:SetItemField><t:SetItemField><t:FieldURI FieldURI="calendar:Location"/><t:CalendarItem><t:Location>Room 2</t:Location></t:CalendarItem></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#
    ))
    .await
    .ok();
    let moved = ews
        .call(&get_item(&event, "<t:BaseShape>Default</t:BaseShape>"))
        .await;
    assert_eq!(moved.texts("Start"), ["2026-11-20T15:00:00Z"]);
    assert_eq!(moved.texts("Location"), ["Room 2"]);

    // A weekly series made over EWS: its occurrences show in the view, its pattern in GetItem.
    let series = ews
        .call(&format!(
            r#"<m:CreateItem SendMeetingInvitations="SendToNone"><m:SavedItemFolderId>{}</m:SavedItemFolderId><m:Items><t:CalendarItem><t:Subject>Standup</t:Subject><t:Start>2026-11-02T08:00:00Z</t:Start><t:End>2026-11-02T08:15:00Z</t:End><t:Recurrence><t:WeeklyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Monday Wednesday</t:DaysOfWeek></t:WeeklyRecurrence><t:NumberedRecurrence><t:StartDate>2026-11-02</t:StartDate><t:NumberOfOccurrences>6</t:NumberOfOccurrences></t:NumberedRecurrence></t:Recurrence></t:CalendarItem></m:Items></m:CreateItem>"#,
            dfid("calendar")
        ))
        .await;
    series.ok();
    let master = series.attrs("ItemId", "Id")[0].clone();
    let pattern = ews
        .call(&get_item(
            &master,
            "<t:BaseShape>AllProperties</t:BaseShape>",
        ))
        .await;
    pattern.ok();
    assert_eq!(pattern.texts("CalendarItemType"), ["RecurringMaster"]);
    assert_eq!(pattern.texts("DaysOfWeek"), ["Monday Wednesday"]);
    assert_eq!(pattern.texts("NumberOfOccurrences"), ["6"]);
    // A calendar item keeps the zone it was made in (StartTimeZone by Id) and a change of it;
    // an unknown zone is refused.
    let zoned = ews
        .call(&format!(
            r#"<m:CreateItem SendMeetingInvitations="SendToNone"><m:SavedItemFolderId>{}</m:SavedItemFolderId><m:Items><t:CalendarItem><t:Subject>Zoned</t:Subject><t:Start>2026-11-03T09:00:00Z</t:Start><t:End>2026-11-03T10:00:00Z</t:End><t:StartTimeZone Id="W. Europe Standard Time"/><t:EndTimeZone Id="W. Europe Standard Time"/></t:CalendarItem></m:Items></m:CreateItem>"#,
            dfid("calendar")
        ))
        .await;
    zoned.ok();
    let zoned_id = zoned.attrs("ItemId", "Id")[0].clone();
    let zone_of = |id: &str| {
        get_item(
            id,
            r#"<t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="calendar:StartTimeZone"/></t:AdditionalProperties>"#,
        )
    };
    let read = ews.call(&zone_of(&zoned_id)).await;
    read.ok();
    assert_eq!(
        read.attrs("StartTimeZone", "Id"),
        ["W. Europe Standard Time"]
    );
    let change = |id: &str, key: &str, zone: &str| {
        format!(
            r#"<m:UpdateItem ConflictResolution="AlwaysOverwrite" SendMeetingInvitationsOrCancellations="SendToNone"><m:ItemChanges><t:ItemChange><t:ItemId Id="{id}" ChangeKey="{key}"/><t:Updates><t:SetItemField><t:FieldURI FieldURI="calendar:StartTimeZone"/><t:CalendarItem><t:StartTimeZone Id="{zone}"/></t:CalendarItem></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#
        )
    };
    let key = zoned.attrs("ItemId", "ChangeKey")[0].clone();
    ews.call(&change(&zoned_id, &key, "Tokyo Standard Time"))
        .await
        .ok();
    let read = ews.call(&zone_of(&zoned_id)).await;
    assert_eq!(read.attrs("StartTimeZone", "Id"), ["Tokyo Standard Time"]);
    let key = read.attrs("ItemId", "ChangeKey")[0].clone();
    let bad = ews
        .call(&change(&zoned_id, &key, "Mars Standard Time"))
        .await;
    assert_eq!(bad.codes(), ["ErrorTimeZone"]);
    let standups = ews
        .call(&view("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"))
        .await;
    let count = all_between(&standups.text, "<t:CalendarItem>", "</t:CalendarItem>")
        .iter()
        .filter(|c| c.contains("<t:Subject>Standup</t:Subject>"))
        .count();
    assert_eq!(count, 6);
    // The seeded series: its exception and cancelled occurrence on the master.
    let masters = ews
        .call(&find_items(&dfid("calendar"), "Default", "", ""))
        .await;
    masters.ok();
    let mut checked = 0;
    for c in all_between(&masters.text, "<t:CalendarItem>", "</t:CalendarItem>") {
        if c.contains("<t:CalendarItemType>RecurringMaster<") && !c.contains("Standup") {
            let id = attrs(&c, "ItemId", "Id")[0].clone();
            let full = ews
                .call(&get_item(&id, "<t:BaseShape>AllProperties</t:BaseShape>"))
                .await;
            full.ok();
            assert!(
                full.text.contains("<t:ModifiedOccurrences>"),
                "{}",
                full.text
            );
            assert!(full.text.contains("<t:DeletedOccurrences>"));
            checked += 1;
        }
    }
    assert_eq!(checked, 1, "the seeded weekly series");
    let standup_masters = ews
        .call(&find_items(
            &dfid("calendar"),
            "Default",
            "",
            r#"<m:Restriction><t:And><t:IsEqualTo><t:FieldURI FieldURI="item:Subject"/><t:FieldURIOrConstant><t:Constant Value="standup"/></t:FieldURIOrConstant></t:IsEqualTo><t:IsEqualTo><t:FieldURI FieldURI="calendar:IsRecurring"/><t:FieldURIOrConstant><t:Constant Value="true"/></t:FieldURIOrConstant></t:IsEqualTo></t:And></m:Restriction>"#,
        ))
        .await;
    standup_masters.ok();
    let found = standup_masters.attrs("ItemId", "Id");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0], master);
    let bad_series = ews
        .call(
            r#"<m:CreateItem SendMeetingInvitations="SendToNone"><m:Items><t:CalendarItem><t:Subject>x</t:Subject><t:Start>2026-11-02T08:00:00Z</t:Start><t:End>2026-11-02T08:15:00Z</t:End><t:Recurrence><t:WeeklyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Someday</t:DaysOfWeek></t:WeeklyRecurrence><t:NoEndRecurrence><t:StartDate>2026-11-02</t:StartDate></t:NoEndRecurrence></t:Recurrence></t:CalendarItem></m:Items></m:CreateItem>"#,
        )
        .await;
    assert_eq!(bad_series.codes(), ["ErrorCalendarInvalidRecurrence"]);

    let availability = ews
        .call(&format!(
            r#"<m:GetUserAvailabilityRequest><t:TimeZone><t:Bias>0</t:Bias><t:StandardTime><t:Bias>0</t:Bias><t:Time>02:00:00</t:Time><t:DayOrder>5</t:DayOrder><t:Month>10</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek></t:StandardTime><t:DaylightTime><t:Bias>0</t:Bias><t:Time>02:00:00</t:Time><t:DayOrder>1</t:DayOrder><t:Month>4</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek></t:DaylightTime></t:TimeZone><m:MailboxDataArray><t:MailboxData><t:Email><t:Address>{ADELE}</t:Address></t:Email><t:AttendeeType>Required</t:AttendeeType></t:MailboxData><t:MailboxData><t:Email><t:Address>{MEGAN}</t:Address></t:Email><t:AttendeeType>Required</t:AttendeeType></t:MailboxData><t:MailboxData><t:Email><t:Address>nobody@contoso.onmicrosoft.com</t:Address></t:Email><t:AttendeeType>Required</t:AttendeeType></t:MailboxData></m:MailboxDataArray><t:FreeBusyViewOptions><t:TimeWindow><t:StartTime>2026-11-20T00:00:00</t:StartTime><t:EndTime>2026-11-21T00:00:00</t:EndTime></t:TimeWindow><t:MergedFreeBusyIntervalInMinutes>30</t:MergedFreeBusyIntervalInMinutes><t:RequestedView>DetailedMerged</t:RequestedView></t:FreeBusyViewOptions></m:GetUserAvailabilityRequest>"#
        ))
        .await;
    assert_eq!(availability.status, StatusCode::OK);
    assert_eq!(
        availability.codes(),
        ["NoError", "NoError", "ErrorMailRecipientNotFound"]
    );
    assert!(
        availability
            .texts("StartTime")
            .contains(&"2026-11-20T15:00:00".to_string())
    );
    let merged = availability.texts("MergedFreeBusy");
    assert_eq!(merged[0].len(), 48);
    assert_eq!(&merged[0][30..33], "222", "{merged:?}");
    assert!(
        merged[1].contains('2'),
        "Megan's copy of the meeting: {merged:?}"
    );

    // An attendee added later is invited then; deleting the meeting cancels it for everyone.
    ews.call(&format!(
        r#"<m:UpdateItem ConflictResolution="AutoResolve" SendMeetingInvitationsOrCancellations="SendToAllAndSaveCopy"><m:ItemChanges><t:ItemChange><t:ItemId Id="{event}"/><t:Updates><t:SetItemField><t:FieldURI FieldURI="calendar:OptionalAttendees"/><t:CalendarItem><t:OptionalAttendees><t:Attendee><t:Mailbox><t:EmailAddress>{SALES}</t:EmailAddress></t:Mailbox></t:Attendee></t:OptionalAttendees></t:CalendarItem></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#
    ))
    .await
    .ok();
    assert!(m.delivered(SALES).iter().any(|(_, s)| s == "Design review"));
    assert_eq!(
        m.delivered(MEGAN)
            .iter()
            .filter(|(_, s)| s == "Design review")
            .count(),
        1,
        "Megan was invited once"
    );
    ews.call(&format!(
        r#"<m:DeleteItem DeleteType="MoveToDeletedItems" SendMeetingCancellations="SendToAllAndSaveCopy"><m:ItemIds><t:ItemId Id="{event}"/></m:ItemIds></m:DeleteItem>"#
    ))
    .await
    .ok();
    assert!(
        m.delivered(MEGAN)
            .iter()
            .any(|(_, s)| s == "Canceled: Design review")
    );
    let megan = Ews::basic(&m, MEGAN, MEGAN_PASSWORD);
    let her_view = megan
        .call(&view("2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z"))
        .await;
    her_view.ok();
    assert!(
        !her_view.text.contains("Design review"),
        "{}",
        her_view.text
    );
    validate_all(&[&ews, &megan]);
}
