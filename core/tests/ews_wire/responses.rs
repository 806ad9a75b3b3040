//! Decoding answers shaped like Microsoft's examples, each one schema-valid itself.

use std::time::Duration;

use exgate_core::ews::wire::*;
use exgate_core::mailbox::*;
use time::macros::{date, datetime};

use super::samples;

#[test]
fn every_sample_answer_is_valid_against_the_ews_schema() {
    exgate_testkit::xsd::validate_soap(&samples::all()).unwrap();
}

#[test]
fn find_item_gives_summaries_and_the_next_page() {
    let d = decode_find_messages(samples::find_item().as_bytes()).unwrap();
    let v = d.server_version.clone().unwrap();
    assert_eq!(
        (v.major, v.minor, v.major_build, v.minor_build),
        (15, 1, 2507, 6)
    );
    assert_eq!(v.version.as_deref(), Some("V2016_10_10"));
    let page = d.into_single().unwrap();
    assert_eq!(page.total, Some(5));
    assert_eq!(page.next_offset, Some(2));
    let [first, second] = page.items.as_slice() else {
        panic!("{page:?}")
    };
    assert_eq!(first.id, "AAMkADk0N2E1Msg1AAA=");
    assert_eq!(first.subject, "Quarterly report & <figures>");
    assert_eq!(
        first.from,
        Some(Recipient {
            name: Some("Ana Ruiz".into()),
            address: "ana@contoso.com".into()
        })
    );
    assert_eq!(first.received_at, Some(datetime!(2026-11-23 09:14:05 UTC)));
    assert!(!first.is_read && first.has_attachments);
    assert_eq!(first.importance, Importance::High);
    assert_eq!(first.flag, FlagStatus::Flagged);
    assert_eq!(first.categories, ["Finance", "Q4"]);
    assert_eq!(first.preview, "Please find the figures attached");
    assert_eq!(first.folder_id.as_deref(), Some("AQMkADk0InboxAAA="));
    assert_eq!(second.received_at, Some(datetime!(2026-11-22 17:00 UTC)));
    assert!(second.is_read && second.subject.is_empty() && second.from.is_none());
}

#[test]
fn get_item_gives_the_whole_message_mime_and_per_item_errors() {
    let d = decode_get_messages(samples::get_item().as_bytes()).unwrap();
    let mut results = d.into_results().into_iter();
    let full = results.next().unwrap().unwrap();
    let err = results.next().unwrap().unwrap_err();
    assert_eq!(err.code, ResponseCode::ErrorItemNotFound);
    assert!(
        err.message
            .starts_with("The specified object was not found")
    );
    assert!(matches!(
        err.to_mailbox_error("message", "AAMkGone", "me"),
        MailboxError::NotFound { .. }
    ));

    assert_eq!(
        full.mime.as_deref(),
        Some(&b"Subject: Hi\r\n\r\nHello\r\n"[..])
    );
    assert_eq!(full.id.change_key.as_deref(), Some("CQAAABYAAAA1"));
    let m = full.message;
    assert_eq!(
        m.body,
        Body::html("<html><body><p>Figures &amp; notes</p></body></html>")
    );
    assert_eq!(
        m.attachments,
        [AttachmentInfo {
            id: "AAMkADk0Att1AAA=".into(),
            name: "q4.xlsx".into(),
            content_type: Some(
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".into()
            ),
            size: 18230,
            is_inline: false,
        }]
    );
    assert_eq!(m.to.len(), 2);
    assert_eq!(m.to[1], Recipient::address("team@contoso.com"));
    assert_eq!(m.cc, [Recipient::address("cfo@contoso.com")]);
    assert_eq!(m.reply_to, [Recipient::address("reports@contoso.com")]);
    assert_eq!(m.sent_at, Some(datetime!(2026-11-23 09:13:58 UTC)));
    assert_eq!(m.internet_message_id.as_deref(), Some("<a1@contoso.com>"));
    assert_eq!(m.conversation_id.as_deref(), Some("AAQkADk0Conv1AAA="));
    assert!(m.summary.is_read);
}

#[test]
fn calendar_items_keep_their_zone_recurrence_and_attendees() {
    let berlin = TimeZone::parse("Europe/Berlin").unwrap();
    let d = decode_get_events(samples::get_calendar_item().as_bytes(), None).unwrap();
    let events = d.into_single().unwrap();
    let [e] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(e.subject, "Team sync");
    // Shown in the event's own zone (StartTimeZone) when none was asked for.
    assert_eq!(e.start, EventTime::new(datetime!(2026-11-02 10:00), berlin));
    assert_eq!(e.end.instant(), datetime!(2026-11-02 09:30 UTC));
    assert_eq!(e.kind, EventKind::SeriesMaster);
    assert_eq!(e.show_as, Some(ShowAs::Busy));
    assert_eq!(e.sensitivity, Sensitivity::Private);
    assert_eq!(e.location.as_deref(), Some("Room 4"));
    assert_eq!(e.preview, "Agenda: status");
    assert_eq!(
        e.online_meeting_url.as_deref(),
        Some("https://meet.contoso.com/ana/sync")
    );
    assert_eq!(e.organizer.as_ref().unwrap().address, "ana@contoso.com");
    assert_eq!(
        e.attendees,
        [
            Attendee {
                who: Recipient::address("ben@contoso.com"),
                kind: AttendeeKind::Required,
                response: Response::Accepted
            },
            Attendee {
                who: Recipient::address("eve@contoso.com"),
                kind: AttendeeKind::Optional,
                response: Response::NotResponded
            },
        ]
    );
    let r = e.recurrence.as_ref().unwrap();
    assert_eq!(
        r.pattern,
        RecurrencePattern::Weekly {
            interval: 1,
            days: vec![DayOfWeek::Monday, DayOfWeek::Thursday],
            first_day_of_week: DayOfWeek::Monday
        }
    );
    assert_eq!(
        r.range,
        RecurrenceRange::Numbered {
            start_date: date!(2026 - 11 - 02),
            occurrences: 10
        }
    );
    assert_eq!(r.time_zone, Some(berlin));

    // A zone asked for wins.
    let tokyo = TimeZone::parse("Asia/Tokyo").unwrap();
    let d = decode_get_events(samples::get_calendar_item().as_bytes(), Some(&tokyo)).unwrap();
    let e = &d.into_single().unwrap()[0];
    assert_eq!(e.start, EventTime::new(datetime!(2026-11-02 18:00), tokyo));
}

#[test]
fn a_calendar_view_lists_occurrences() {
    let d = decode_find_events(
        samples::find_calendar_items().as_bytes(),
        Some(&TimeZone::UTC),
    )
    .unwrap();
    let page = d.into_single().unwrap();
    assert_eq!(page.next_offset, None);
    let [occ, holiday] = page.items.as_slice() else {
        panic!()
    };
    assert_eq!(occ.kind, EventKind::Occurrence);
    assert_eq!(occ.show_as, Some(ShowAs::Tentative));
    assert!(holiday.is_all_day);
    assert_eq!(holiday.show_as, Some(ShowAs::OutOfOffice));
    assert_eq!(holiday.start.instant(), datetime!(2026-11-05 23:00 UTC));
}

#[test]
fn folders_are_read_from_find_get_and_sync() {
    let page = decode_find_folders(samples::find_folder().as_bytes())
        .unwrap()
        .into_single()
        .unwrap();
    // Only mail folders: the Calendar and Contacts folders are not the neutral (mail) folder.
    assert_eq!(page.items.len(), 1, "{:?}", page.items);
    assert_eq!(
        page.items[0],
        Folder {
            id: "AQMkADk0InboxAAA=".into(),
            name: "Inbox".into(),
            parent_id: Some("AQMkADk0RootAAA=".into()),
            unread: 7,
            total: 120,
            children: 1,
        }
    );
    assert!(
        page.items
            .iter()
            .all(|f| f.name != "Calendar" && f.name != "Contacts")
    );
    let results = decode_get_folders(samples::get_folder().as_bytes())
        .unwrap()
        .into_results();
    assert_eq!(results[0].as_ref().unwrap()[0].unread, 7);
    assert_eq!(
        results[1].as_ref().unwrap_err().code,
        ResponseCode::ErrorFolderNotFound
    );

    let h = decode_sync_folder_hierarchy(samples::sync_folder_hierarchy().as_bytes())
        .unwrap()
        .into_single()
        .unwrap();
    assert_eq!(h.changed[0].name, "Projects");
    assert_eq!(h.removed, ["AQMkADk0OldAAA="]);
    assert!(h.includes_last);
    assert_eq!(h.state, "H4sIAAAAAAAEAO29B2AcSZYlJi");
}

#[test]
fn sync_folder_items_gives_changes_and_the_state() {
    let c = decode_sync_folder_items(samples::sync_folder_items().as_bytes())
        .unwrap()
        .into_single()
        .unwrap();
    assert!(!c.includes_last);
    assert!(
        c.changes
            .state
            .starts_with("H4sIAAAAAAAEAO29B2AcSZYlJi9tynt")
    );
    let ids: Vec<&str> = c.changes.changed.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["AAMkADk0New1AAA=", "AAMkADk0Upd1AAA="]);
    assert_eq!(c.changes.removed, ["AAMkADk0Del1AAA="]);
    assert_eq!(c.read_flags, [("AAMkADk0Flg1AAA=".to_owned(), true)]);
}

#[test]
fn availability_gives_one_answer_per_mailbox() {
    let request = GetUserAvailability {
        mailboxes: vec!["ana@contoso.com".into(), "nobody@contoso.com".into()],
        start: datetime!(2026-12-01 08:00 UTC),
        end: datetime!(2026-12-01 12:00 UTC),
        interval_minutes: 30,
    };
    let fb = decode_get_user_availability(samples::get_user_availability().as_bytes(), &request)
        .unwrap();
    let [ana, nobody] = fb.as_slice() else {
        panic!()
    };
    assert_eq!(ana.mailbox, "ana@contoso.com");
    assert_eq!(
        ana.view,
        [
            ShowAs::Free,
            ShowAs::Free,
            ShowAs::Busy,
            ShowAs::Busy,
            ShowAs::Free,
            ShowAs::Tentative,
            ShowAs::OutOfOffice
        ]
    );
    assert_eq!(ana.interval_minutes, 30);
    assert_eq!(ana.slots.len(), 2);
    assert_eq!(ana.slots[0].subject.as_deref(), Some("Budget review"));
    assert_eq!(
        ana.slots[0].start.instant(),
        datetime!(2026-12-01 09:00 UTC)
    );
    assert_eq!(ana.slots[1].status, ShowAs::OutOfOffice);
    assert!(ana.error.is_none());
    let err = nobody.error.as_deref().unwrap();
    assert!(err.contains("ErrorMailRecipientNotFound"), "{err}");
    // An answer for fewer mailboxes than were asked for is refused.
    let three = GetUserAvailability {
        mailboxes: vec!["a@b.c".into(); 3],
        ..request
    };
    assert!(
        decode_get_user_availability(samples::get_user_availability().as_bytes(), &three).is_err()
    );
}

#[test]
fn names_contacts_attachments_and_writes_are_read() {
    let d = decode_resolve_names(samples::resolve_names().as_bytes()).unwrap();
    assert_eq!(d.messages[0].class, ResponseClass::Warning);
    assert_eq!(
        d.messages[0].code,
        ResponseCode::ErrorNameResolutionMultipleResults
    );
    let names = d.into_single().unwrap();
    assert_eq!(names.len(), 2);
    assert_eq!(names[0].mailbox.address, "ana@contoso.com");
    assert_eq!(names[0].routing_type.as_deref(), Some("SMTP"));
    let contact = names[0].contact.as_ref().unwrap();
    assert_eq!(contact.job_title.as_deref(), Some("Controller"));
    assert_eq!(contact.emails, [Recipient::address("ana@contoso.com")]);
    assert_eq!(names[1].mailbox_type.as_deref(), Some("PublicDL"));

    let contacts = decode_get_contacts(samples::get_contacts().as_bytes())
        .unwrap()
        .into_single()
        .unwrap();
    let c = &contacts[0];
    assert_eq!(c.display_name, "Ben Okafor");
    assert_eq!(c.emails.len(), 2);
    assert_eq!(c.business_phones, ["+49 30 1234"]);
    assert_eq!(c.mobile_phone.as_deref(), Some("+49 170 5678"));
    assert_eq!(c.company.as_deref(), Some("Fabrikam"));

    let att = decode_get_attachments(samples::get_attachment().as_bytes())
        .unwrap()
        .into_single()
        .unwrap();
    assert_eq!(att[0].content, b"Hello, world!");
    assert_eq!(att[0].info.size, 13);
    assert_eq!(att[0].info.content_type.as_deref(), Some("text/plain"));

    let created = decode_item_ids(samples::create_item().as_bytes(), "CreateItem")
        .unwrap()
        .into_single()
        .unwrap();
    assert_eq!(created[0].id, "AAMkADk0Draft1AAA=");
    let moved = decode_move_items(samples::move_item().as_bytes())
        .unwrap()
        .into_single()
        .unwrap();
    assert_eq!(moved[0].id, "AAMkADk0Moved1AAA=");
    let added = decode_create_attachments(samples::create_attachment().as_bytes())
        .unwrap()
        .into_single()
        .unwrap();
    assert_eq!(added[0].0, "AAMkADk0Att9AAA=");
    assert_eq!(added[0].1.change_key.as_deref(), Some("CQAAABYAAAD2"));
    decode_send_items(samples::send_item().as_bytes())
        .unwrap()
        .into_single()
        .unwrap();
}

#[test]
fn busy_answers_carry_the_back_off_hint_in_a_message_or_a_fault() {
    let d = decode_delete_items(samples::delete_item_busy().as_bytes()).unwrap();
    let busy = d.busy().unwrap();
    assert_eq!(busy.code, ResponseCode::ErrorServerBusy);
    assert_eq!(busy.back_off, Some(Duration::from_millis(29943)));
    assert!(matches!(d.into_single(), Err(WireError::Refused(e)) if e.is_busy()));
    assert_eq!(
        find_busy(samples::delete_item_busy().as_bytes()),
        Some(busy)
    );

    // A fault answers every operation's decoder the same way.
    let fault = samples::busy_fault();
    let Err(WireError::Fault(e)) = decode_get_messages(fault.as_bytes()) else {
        panic!()
    };
    assert_eq!(e.code, ResponseCode::ErrorServerBusy);
    assert_eq!(e.back_off, Some(Duration::from_millis(2994)));
    assert!(e.message.contains("Try again later"));
    assert!(decode_find_folders(fault.as_bytes()).is_err());
    let schema = decode_fault(samples::schema_fault().as_bytes()).unwrap();
    assert_eq!(schema.code, ResponseCode::ErrorSchemaValidation);
    assert_eq!(schema.back_off, None);
    assert!(!schema.is_retryable());
    assert_eq!(find_busy(samples::schema_fault().as_bytes()), None);
    assert_eq!(find_busy(samples::find_item().as_bytes()), None);
}

#[test]
fn answers_of_the_wrong_shape_are_refused() {
    // Another operation's answer.
    assert!(matches!(
        decode_get_messages(samples::find_item().as_bytes()),
        Err(WireError::Malformed(why)) if why.contains("m:GetItemResponse")
    ));
    // The right names in the wrong namespace.
    let wrong_ns = samples::find_item().replace(
        "http://schemas.microsoft.com/exchange/services/2006/messages",
        "urn:other",
    );
    assert!(decode_find_messages(wrong_ns.as_bytes()).is_err());
    // A value that does not parse is an error, not a default.
    let bad_date = samples::find_item().replace("2026-11-23T09:14:05Z", "last Tuesday");
    assert!(matches!(
        decode_find_messages(bad_date.as_bytes()),
        Err(WireError::Malformed(why)) if why.contains("DateTimeReceived")
    ));
    let bad_bool =
        samples::find_item().replace("<t:IsRead>false</t:IsRead>", "<t:IsRead>maybe</t:IsRead>");
    assert!(decode_find_messages(bad_bool.as_bytes()).is_err());
    let no_class = samples::send_item().replace(r#" ResponseClass="Success""#, "");
    assert!(decode_send_items(no_class.as_bytes()).is_err());
    // Truncated, empty, not XML, a DTD.
    let full = samples::get_item();
    assert!(decode_get_messages(&full.as_bytes()[..full.len() / 2]).is_err());
    assert!(decode_get_messages(b"").is_err());
    assert!(decode_get_messages(b"\xff\xfe").is_err());
    let dtd = format!(
        "<!DOCTYPE x [<!ENTITY a \"b\">]>{}",
        samples::send_item().replace(r#"<?xml version="1.0" encoding="utf-8"?>"#, "")
    );
    assert!(decode_send_items(dtd.as_bytes()).is_err());
}
