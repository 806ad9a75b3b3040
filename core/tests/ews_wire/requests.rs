//! Every kind of request, in every context, validated against the EWS schema in one call.

use bytes::Bytes;
use exgate_core::ews::wire::*;
use exgate_core::mailbox::*;
use exgate_core::model::ServerVersion;
use time::Month;
use time::macros::{date, datetime};

fn contexts() -> Vec<RequestContext> {
    let berlin = TimeZone::parse("Europe/Berlin").unwrap();
    let mut out = Vec::new();
    for version in RequestVersion::ALL {
        for access in [
            MailboxAccess::Own,
            MailboxAccess::Delegate("shared@contoso.com".into()),
            MailboxAccess::Impersonate(ConnectingSid::PrimarySmtpAddress("ana@contoso.com".into())),
            MailboxAccess::Impersonate(ConnectingSid::PrincipalName("ana@corp.contoso.com".into())),
            MailboxAccess::Impersonate(ConnectingSid::Sid("S-1-5-21-1-2-3-1001".into())),
            MailboxAccess::Impersonate(ConnectingSid::SmtpAddress("ana.ruiz@contoso.com".into())),
        ] {
            for zone in [None, Some(berlin)] {
                out.push(RequestContext {
                    version,
                    access: access.clone(),
                    time_zone: zone,
                });
            }
        }
    }
    out
}

fn id(s: &str) -> ItemId {
    ItemId {
        id: s.into(),
        change_key: Some("CQAAABYAAAA1".into()),
    }
}

fn recipient(name: Option<&str>, address: &str) -> Recipient {
    Recipient {
        name: name.map(str::to_owned),
        address: address.into(),
    }
}

/// A hostile value: markup, entities, quotes and characters XML cannot carry.
const HOSTILE: &str = "</t:Subject><t:Evil a=\"1\"/>&amp; ' \" \u{0}\u{1}\u{FFFE} \r\n";

fn recurrences() -> Vec<Recurrence> {
    use DayOfWeek::*;
    let patterns = vec![
        RecurrencePattern::Daily { interval: 2 },
        RecurrencePattern::Weekly {
            interval: 1,
            days: vec![Monday, Thursday],
            first_day_of_week: Monday,
        },
        RecurrencePattern::AbsoluteMonthly {
            interval: 3,
            day_of_month: 31,
        },
        RecurrencePattern::RelativeMonthly {
            interval: 1,
            index: WeekIndex::Last,
            days: vec![Friday],
        },
        RecurrencePattern::RelativeMonthly {
            interval: 1,
            index: WeekIndex::First,
            days: vec![Monday, Tuesday, Wednesday, Thursday, Friday],
        },
        RecurrencePattern::AbsoluteYearly {
            interval: 1,
            month: Month::February,
            day_of_month: 29,
        },
        RecurrencePattern::AbsoluteYearly {
            interval: 2,
            month: Month::March,
            day_of_month: 1,
        },
        RecurrencePattern::RelativeYearly {
            interval: 1,
            month: Month::September,
            index: WeekIndex::First,
            days: vec![Saturday, Sunday],
        },
        RecurrencePattern::RelativeYearly {
            interval: 3,
            month: Month::May,
            index: WeekIndex::Second,
            days: DayOfWeek::ALL.to_vec(),
        },
    ];
    let ranges = [
        RecurrenceRange::NoEnd {
            start_date: date!(2026 - 11 - 02),
        },
        RecurrenceRange::EndDate {
            start_date: date!(2026 - 11 - 02),
            end_date: date!(2027 - 06 - 30),
        },
        RecurrenceRange::Numbered {
            start_date: date!(2026 - 11 - 02),
            occurrences: 10,
        },
    ];
    let mut out = Vec::new();
    for p in patterns {
        for r in &ranges {
            out.push(Recurrence::new(p.clone(), r.clone(), None).unwrap());
        }
    }
    out
}

fn event_draft(recurrence: Option<Recurrence>) -> EventDraft {
    let berlin = TimeZone::parse("Europe/Berlin").unwrap();
    EventDraft {
        subject: Some(format!("Planning {HOSTILE}")),
        start: Some(EventTime::new(datetime!(2026-11-02 10:00), berlin)),
        end: Some(EventTime::new(datetime!(2026-11-02 11:00), berlin)),
        is_all_day: Some(false),
        location: Some("Room 4".into()),
        body: Some(Body::html("<p>Agenda</p>")),
        attendees: Some(vec![
            (
                recipient(Some("Ben"), "ben@contoso.com"),
                AttendeeKind::Required,
            ),
            (recipient(None, "eve@contoso.com"), AttendeeKind::Optional),
            (recipient(None, "room4@contoso.com"), AttendeeKind::Resource),
        ]),
        recurrence,
        online_meeting: None,
    }
}

/// One of each request kind (and the variants that change their shape).
fn requests() -> Vec<Box<dyn EwsRequest>> {
    let inbox = FolderSpec::Distinguished(DistinguishedFolder::Inbox);
    let by_id = FolderSpec::Id("AQMkADk0ProjAAA=".into());
    let message = NewMessage {
        to: vec![recipient(Some("Ben Okafor"), "ben@contoso.com")],
        cc: vec![recipient(None, "cfo@contoso.com")],
        bcc: vec![recipient(None, "audit@contoso.com")],
        subject: format!("Report {HOSTILE}"),
        body: Body::text(HOSTILE),
        attachments: vec![NewAttachment {
            name: "q4.csv".into(),
            content_type: "text/csv".into(),
            content: Bytes::from_static(b"a,b\n1,2\n"),
        }],
        importance: Importance::High,
        from: Some(recipient(Some("Shared"), "shared@contoso.com")),
        save_to_sent: true,
    };
    let full_query = MessageQuery {
        folder: Some(FolderRef::WellKnown(WellKnownFolder::Inbox)),
        unread_only: true,
        from: Some(format!("ana{HOSTILE}")),
        since: Some(datetime!(2026-11-01 00:00 UTC)),
        with_attachments: true,
        page_size: 5000,
    };
    let one_filter = MessageQuery {
        unread_only: true,
        page_size: 25,
        ..MessageQuery::default()
    };
    let mut out: Vec<Box<dyn EwsRequest>> = vec![
        Box::new(FindFolders::all(DistinguishedFolder::MsgFolderRoot.into())),
        Box::new(FindFolders::named(
            DistinguishedFolder::MsgFolderRoot.into(),
            "Archive",
        )),
        Box::new(GetFolders {
            folders: vec![
                inbox.clone(),
                by_id.clone(),
                DistinguishedFolder::ArchiveMsgFolderRoot.into(),
            ],
        }),
        Box::new(SyncFolderHierarchy {
            folder: None,
            state: None,
        }),
        Box::new(SyncFolderHierarchy {
            folder: Some(DistinguishedFolder::MsgFolderRoot.into()),
            state: Some("H4sIAAAAAAAEAO29B2AcSZYlJi".into()),
        }),
        Box::new(FindMessages::new(inbox.clone(), &full_query, 50)),
        Box::new(FindMessages::new(by_id.clone(), &one_filter, 0)),
        Box::new(FindMessages::new(
            inbox.clone(),
            &MessageQuery::default(),
            0,
        )),
        Box::new(GetMessages::full(vec![id("AAMk1"), id("AAMk2")], None)),
        Box::new(GetMessages::full(vec![id("AAMk1")], Some(BodyKind::Text))),
        Box::new(GetMessages::full(
            vec![ItemId::new("AAMk1")],
            Some(BodyKind::Html),
        )),
        Box::new(GetMessages::mime(vec![id("AAMk1")])),
        Box::new(GetAttachments {
            ids: vec!["AAMkAtt1".into(), "AAMkAtt2".into()],
        }),
        Box::new(CreateMessage {
            message: message.clone(),
            folder: None,
        }),
        Box::new(CreateMessage {
            message: NewMessage {
                attachments: vec![],
                from: None,
                cc: vec![],
                bcc: vec![],
                ..message.clone()
            },
            folder: Some(by_id.clone()),
        }),
        Box::new(SendItems {
            ids: vec![id("AAMkDraft")],
            save_copy: true,
        }),
        Box::new(SendItems {
            ids: vec![ItemId::new("AAMkDraft")],
            save_copy: false,
        }),
        Box::new(SetReadFlag {
            ids: vec![id("AAMk1"), id("AAMk2")],
            read: true,
        }),
        Box::new(MoveItems {
            ids: vec![id("AAMk1")],
            to: DistinguishedFolder::JunkEmail.into(),
        }),
        Box::new(DeleteItems::new(vec![id("AAMk1")])),
        Box::new(DeleteItems {
            ids: vec![id("AAMkCal1")],
            delete_type: DeleteType::HardDelete,
            send_meeting_cancellations: Some(true),
        }),
        Box::new(DeleteItems {
            ids: vec![id("AAMkCal1")],
            delete_type: DeleteType::SoftDelete,
            send_meeting_cancellations: Some(false),
        }),
        Box::new(SyncFolderItems {
            folder: inbox.clone(),
            state: None,
            max_changes: 100_000,
        }),
        Box::new(SyncFolderItems {
            folder: by_id.clone(),
            state: Some("H4sIAAAAAAAEAO29B2AcSZYlJi".into()),
            max_changes: 0,
        }),
        Box::new(CreateAttachments {
            parent: id("AAMkDraft"),
            attachments: message.attachments.clone(),
        }),
        Box::new(ResolveNames {
            entry: "ana".into(),
            include_contacts: true,
        }),
        Box::new(ResolveNames {
            entry: HOSTILE.into(),
            include_contacts: false,
        }),
        Box::new(GetUserAvailability {
            mailboxes: vec!["ana@contoso.com".into(), "room4@contoso.com".into()],
            start: datetime!(2026-12-01 00:00 UTC),
            end: datetime!(2026-12-02 00:00 UTC),
            interval_minutes: 30,
        }),
        Box::new(FindEvents::new(
            datetime!(2026-11-01 00:00 UTC),
            datetime!(2026-12-01 00:00 UTC),
        )),
        Box::new(FindEvents {
            max: Some(200),
            ..FindEvents::new(
                datetime!(2026-11-01 00:00 +01:00),
                datetime!(2026-12-01 00:00 UTC),
            )
        }),
        Box::new(GetEvents {
            ids: vec![id("AAMkCal1")],
        }),
        Box::new(FindContacts::new(0, 100)),
        Box::new(GetContacts {
            ids: vec![id("AAMkCon1")],
        }),
        Box::new(
            CreateContact::new(ContactDraft {
                display_name: Some("Ben Okafor".into()),
                given_name: Some("Ben".into()),
                surname: Some("Okafor".into()),
                emails: Some(vec![
                    recipient(None, "ben@fabrikam.com"),
                    recipient(None, "ben@example.org"),
                ]),
                business_phones: Some(vec!["+49 30 1234".into(), "+49 30 5678".into()]),
                mobile_phone: Some("+49 170 5678".into()),
                company: Some(HOSTILE.into()),
                job_title: Some("Buyer".into()),
            })
            .unwrap(),
        ),
        Box::new(CreateContact::new(ContactDraft::default()).unwrap()),
        Box::new(
            UpdateContact::new(
                id("AAMkCon1"),
                ContactDraft {
                    display_name: Some("Ben O.".into()),
                    company: Some(String::new()),
                    emails: Some(vec![recipient(None, "ben@fabrikam.com")]),
                    business_phones: Some(vec![]),
                    mobile_phone: Some(String::new()),
                    ..ContactDraft::default()
                },
            )
            .unwrap(),
        ),
    ];
    for kind in [
        ReplyKind::Reply,
        ReplyKind::ReplyAll,
        ReplyKind::Forward {
            to: vec![recipient(Some("Eve"), "eve@contoso.com")],
        },
    ] {
        for send_now in [false, true] {
            out.push(Box::new(ReplyMessage {
                kind: kind.clone(),
                reference: id("AAMk1"),
                comment: Body::text(HOSTILE),
                send_now,
            }));
        }
    }
    out.push(Box::new(CreateEvent::new(event_draft(None), true).unwrap()));
    let utc_all_day = EventDraft {
        start: Some(EventTime::new(datetime!(2026-11-06 00:00), TimeZone::UTC)),
        end: Some(EventTime::new(datetime!(2026-11-07 00:00), TimeZone::UTC)),
        is_all_day: Some(true),
        attendees: None,
        body: None,
        location: None,
        ..event_draft(None)
    };
    out.push(Box::new(CreateEvent::new(utc_all_day, false).unwrap()));
    for r in recurrences() {
        out.push(Box::new(
            CreateEvent::new(event_draft(Some(r.clone())), false).unwrap(),
        ));
        let change = EventDraft {
            recurrence: Some(r),
            ..EventDraft::default()
        };
        out.push(Box::new(
            UpdateEvent::new(id("AAMkCal1"), change, true).unwrap(),
        ));
    }
    out.push(Box::new(
        UpdateEvent::new(id("AAMkCal1"), event_draft(None), false).unwrap(),
    ));
    let remove = EventDraft {
        location: Some(String::new()),
        attendees: Some(vec![]),
        ..EventDraft::default()
    };
    out.push(Box::new(
        UpdateEvent::new(id("AAMkCal1"), remove, true).unwrap(),
    ));
    out
}

#[test]
fn every_request_in_every_context_is_valid_against_the_ews_schema() {
    let requests = requests();
    let mut documents = Vec::new();
    for ctx in contexts() {
        for r in &requests {
            documents.push(r.to_xml(&ctx));
        }
    }
    exgate_testkit::xsd::validate_soap(&documents).unwrap();
}

#[test]
fn the_header_names_version_impersonation_and_zone() {
    let ctx = RequestContext {
        version: RequestVersion::Exchange2010Sp2,
        access: MailboxAccess::Impersonate(ConnectingSid::PrimarySmtpAddress(
            "ana@contoso.com".into(),
        )),
        time_zone: Some(TimeZone::parse("Europe/Berlin").unwrap()),
    };
    let xml = GetFolders {
        folders: vec![DistinguishedFolder::Inbox.into()],
    }
    .to_xml(&ctx);
    assert!(
        xml.contains(r#"<t:RequestServerVersion Version="Exchange2010_SP2"/>"#),
        "{xml}"
    );
    assert!(
        xml.contains("<t:PrimarySmtpAddress>ana@contoso.com</t:PrimarySmtpAddress>"),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<t:TimeZoneDefinition Id="W. Europe Standard Time"/>"#),
        "{xml}"
    );
    assert_eq!(ctx.anchor_mailbox(), Some("ana@contoso.com"));

    // A delegate names the mailbox in the distinguished folder, not in the header.
    let delegate = RequestContext::for_mailbox(
        RequestVersion::from(ServerVersion::Exchange2019),
        &MailboxRef::User("shared@contoso.com".into()),
        false,
    );
    let xml = GetFolders {
        folders: vec![DistinguishedFolder::Inbox.into()],
    }
    .to_xml(&delegate);
    assert!(xml.contains(r#"Version="Exchange2016""#));
    assert!(!xml.contains("ExchangeImpersonation"));
    assert!(xml.contains(
        r#"<t:DistinguishedFolderId Id="inbox"><t:Mailbox><t:EmailAddress>shared@contoso.com</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId>"#
    ));
    for v in [
        ServerVersion::Exchange2016,
        ServerVersion::SubscriptionEdition,
    ] {
        assert_eq!(RequestVersion::from(v), RequestVersion::Exchange2016);
    }
}

#[test]
fn a_send_is_saved_first_and_sent_by_id() {
    let ctx = RequestContext::new(RequestVersion::Exchange2016);
    let create = CreateMessage {
        message: NewMessage {
            to: vec![Recipient::address("ben@contoso.com")],
            cc: vec![],
            bcc: vec![],
            subject: "Hi".into(),
            body: Body::text("Hello"),
            attachments: vec![],
            importance: Importance::Normal,
            from: None,
            save_to_sent: true,
        },
        folder: None,
    }
    .to_xml(&ctx);
    assert!(
        create.contains(r#"<m:CreateItem MessageDisposition="SaveOnly">"#),
        "{create}"
    );
    assert!(
        create.contains(r#"<t:DistinguishedFolderId Id="drafts"/>"#),
        "{create}"
    );
    let send = SendItems {
        ids: vec![ItemId::new("AAMkDraft")],
        save_copy: true,
    }
    .to_xml(&ctx);
    assert!(
        send.contains(r#"<m:SendItem SaveItemToFolder="true">"#),
        "{send}"
    );
    assert!(
        send.contains(r#"<t:DistinguishedFolderId Id="sentitems"/>"#),
        "{send}"
    );
}

#[test]
fn hostile_values_stay_text() {
    let ctx = RequestContext::new(RequestVersion::Exchange2016);
    let xml = ResolveNames {
        entry: HOSTILE.into(),
        include_contacts: false,
    }
    .to_xml(&ctx);
    assert!(!xml.contains("<t:Evil"), "{xml}");
    assert!(
        xml.contains("&lt;/t:Subject&gt;&lt;t:Evil a=&quot;1&quot;/&gt;&amp;amp;"),
        "{xml}"
    );
    assert!(!xml.contains('\u{0}') && !xml.contains('\u{1}'));
}

#[test]
fn what_ews_cannot_carry_is_refused_before_anything_is_sent() {
    let odd_days = Recurrence::new(
        RecurrencePattern::RelativeMonthly {
            interval: 1,
            index: WeekIndex::First,
            days: vec![DayOfWeek::Monday, DayOfWeek::Wednesday],
        },
        RecurrenceRange::NoEnd {
            start_date: date!(2026 - 11 - 02),
        },
        None,
    )
    .unwrap();
    let err = CreateEvent::new(event_draft(Some(odd_days)), false).unwrap_err();
    assert!(err.to_string().contains("one day"), "{err}");
    let no_times = EventDraft {
        start: None,
        ..event_draft(None)
    };
    assert!(CreateEvent::new(no_times, false).is_err());
    let four = ContactDraft {
        emails: Some(vec![Recipient::address("a@b.c"); 4]),
        ..ContactDraft::default()
    };
    assert!(CreateContact::new(four).is_err());
    assert_eq!(
        FolderSpec::from_ref(&FolderRef::WellKnown(WellKnownFolder::Archive)),
        None
    );
    assert_eq!(
        FolderSpec::from_ref(&FolderRef::WellKnown(WellKnownFolder::SentItems)),
        Some(FolderSpec::Distinguished(DistinguishedFolder::SentItems))
    );
}
