//! The default seed, `Seed::contoso()`: the directory (tenant contoso, Adele, Megan, the shared
//! mailbox Sales, the three exgate apps) and its mailboxes' content, deterministic and dated
//! November 2026. It stands above the directory and the mail store, which it fills.
//!
//! Adele: Inbox with 12 messages (6 unread; one HTML with an inline image and a PDF, one with a
//! Word document, categories, flags), one message in `Inbox/Projects`, a draft, 3 in Sent
//! Items; 5 events (a weekly series with one exception and one cancelled occurrence, an
//! all-day event, a Teams meeting with attendees, a private appointment, a tentative 1:1);
//! 4 contacts. Megan and Sales: a few of each.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use time::OffsetDateTime;
use time::macros::datetime;

use crate::directory::seed::*;
use crate::mailstore::content::{
    Address, AttachmentContent, AttendeeContent, AttendeeType, BodyType, ContactContent,
    EventContent, ExceptionContent, FlagStatus, HeaderContent, Importance, MailboxContent,
    MessageContent, ResponseType, ShowAs,
};
use crate::mailstore::recurrence::{
    DayOfWeek, PatternType, RangeType, Recurrence, RecurrencePattern, RecurrenceRange, WeekIndex,
};

impl Default for Seed {
    fn default() -> Self {
        Self::contoso()
    }
}

impl Seed {
    /// The default directory: tenant contoso with Adele and Megan and the three exgate apps.
    pub fn contoso() -> Self {
        let delegated = BTreeMap::from([
            (GRAPH.to_string(), strings(GRAPH_DELEGATED)),
            (OUTLOOK.to_string(), strings(OUTLOOK_DELEGATED)),
        ]);
        let far_future = datetime!(2099-01-01 00:00:00 UTC);
        Self {
            tenants: vec![TenantSeed {
                id: TENANT_ID.into(),
                domain: TENANT_DOMAIN.into(),
                users: vec![
                    UserSeed {
                        upn: ADELE.into(),
                        password: ADELE_PASSWORD.into(),
                        object_id: ADELE_OID.into(),
                        display_name: ADELE_NAME.into(),
                        mfa_required: false,
                        exchange: ExchangeSettings::default(),
                        directory_roles: Vec::new(),
                    },
                    UserSeed {
                        upn: MEGAN.into(),
                        password: MEGAN_PASSWORD.into(),
                        object_id: MEGAN_OID.into(),
                        display_name: MEGAN_NAME.into(),
                        mfa_required: false,
                        exchange: ExchangeSettings::default(),
                        directory_roles: Vec::new(),
                    },
                    UserSeed {
                        upn: ADMIN.into(),
                        password: ADMIN_PASSWORD.into(),
                        object_id: ADMIN_OID.into(),
                        display_name: ADMIN_NAME.into(),
                        mfa_required: false,
                        exchange: ExchangeSettings::default(),
                        directory_roles: vec!["Global Administrator".into()],
                    },
                ],
                apps: vec![
                    AppSeed {
                        client_id: PUBLIC_APP.into(),
                        name: PUBLIC_APP_NAME.into(),
                        public_client: true,
                        public_client_flows: true,
                        redirect_uris: vec!["http://localhost".into()],
                        secrets: vec![],
                        certificates: vec![],
                        delegated_permissions: delegated.clone(),
                        application_permissions: BTreeMap::new(),
                        service_principal_id: None,
                        mailbox_scope: None,
                    },
                    AppSeed {
                        client_id: WEB_APP.into(),
                        name: WEB_APP_NAME.into(),
                        public_client: false,
                        public_client_flows: false,
                        redirect_uris: vec![
                            "http://localhost".into(),
                            "http://127.0.0.1/service/oauth2/authorize".into(),
                        ],
                        secrets: vec![SecretSeed {
                            id: WEB_APP_SECRET_ID.into(),
                            value: WEB_APP_SECRET.into(),
                            expires: far_future,
                        }],
                        certificates: vec![],
                        delegated_permissions: delegated,
                        application_permissions: BTreeMap::new(),
                        service_principal_id: None,
                        mailbox_scope: None,
                    },
                    AppSeed {
                        client_id: DAEMON_APP.into(),
                        name: DAEMON_APP_NAME.into(),
                        public_client: false,
                        public_client_flows: false,
                        redirect_uris: vec![],
                        secrets: vec![SecretSeed {
                            id: DAEMON_APP_SECRET_ID.into(),
                            value: DAEMON_APP_SECRET.into(),
                            expires: far_future,
                        }],
                        certificates: vec![crate::fixtures::APP_CERT_PEM.to_string()],
                        delegated_permissions: BTreeMap::new(),
                        application_permissions: BTreeMap::from([
                            (GRAPH.to_string(), strings(GRAPH_APPLICATION)),
                            (OUTLOOK.to_string(), strings(OUTLOOK_APPLICATION)),
                        ]),
                        service_principal_id: Some(DAEMON_APP_SP_OID.into()),
                        mailbox_scope: None,
                    },
                ],
                shared_mailboxes: vec![SharedMailboxSeed {
                    address: SALES.into(),
                    display_name: SALES_NAME.into(),
                    object_id: SALES_OID.into(),
                    exchange: ExchangeSettings::default(),
                }],
                mailbox_permissions: vec![
                    MailboxPermissionSeed {
                        mailbox: SALES.into(),
                        user: ADELE.into(),
                        rights: vec![MailboxRight::FullAccess, MailboxRight::SendAs],
                    },
                    // Megan doubles as the on-premises EWS service account: she may
                    // impersonate Adele (ApplicationImpersonation scoped to Adele's mailbox),
                    // which gives her no Graph or FullAccess right.
                    MailboxPermissionSeed {
                        mailbox: ADELE.into(),
                        user: MEGAN.into(),
                        rights: vec![MailboxRight::ApplicationImpersonation],
                    },
                ],
                // The daemon app is registered in Exchange Online with FullAccess on every
                // mailbox, so app-only IMAP, POP and SMTP work out of the box.
                exchange_service_principals: vec![ExchangeServicePrincipalSeed {
                    app_id: DAEMON_APP.into(),
                    object_id: DAEMON_APP_SP_OID.into(),
                    registered: true,
                    full_access: vec![ADELE.into(), MEGAN.into(), SALES.into()],
                }],
                organization: OrganizationSettings::default(),
                mailboxes: mailboxes(),
            }],
        }
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_string()).collect()
}

/// A 1×1 PNG.
const PIXEL_PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

fn adele() -> Address {
    Address::new(ADELE_NAME, ADELE)
}

fn megan() -> Address {
    Address::new(MEGAN_NAME, MEGAN)
}

fn sales() -> Address {
    Address::new(SALES_NAME, SALES)
}

fn lee() -> Address {
    Address::new("Lee Gu", "lee@contoso.onmicrosoft.com")
}

fn message(
    folder: &str,
    subject: &str,
    from: Address,
    to: Vec<Address>,
    received: OffsetDateTime,
    is_read: bool,
    body: &str,
) -> MessageContent {
    MessageContent {
        folder: folder.into(),
        subject: subject.into(),
        body: body.into(),
        body_type: BodyType::Text,
        from,
        to,
        cc: Vec::new(),
        bcc: Vec::new(),
        received,
        is_read,
        is_draft: false,
        importance: Importance::Normal,
        categories: Vec::new(),
        flag: FlagStatus::NotFlagged,
        attachments: Vec::new(),
        internet_message_id: None,
        headers: Vec::new(),
    }
}

fn file(name: &str, content_type: &str, bytes: &[u8]) -> AttachmentContent {
    AttachmentContent {
        name: name.into(),
        content_type: content_type.into(),
        content_bytes: STANDARD.encode(bytes),
        generated_size: None,
        is_inline: false,
        content_id: None,
    }
}

fn event(subject: &str, start: &str, end: &str) -> EventContent {
    EventContent {
        subject: subject.into(),
        body: String::new(),
        body_type: BodyType::Text,
        start: start.into(),
        end: end.into(),
        time_zone: "Europe/Berlin".into(),
        is_all_day: false,
        location: String::new(),
        organizer: None,
        attendees: Vec::new(),
        show_as: ShowAs::Busy,
        response: None,
        online_meeting_url: None,
        recurrence: None,
        exceptions: Vec::new(),
        cancelled_occurrences: Vec::new(),
        is_cancelled: false,
        is_private: false,
        categories: Vec::new(),
    }
}

fn attendee(a: Address, kind: AttendeeType, response: ResponseType) -> AttendeeContent {
    AttendeeContent {
        name: a.name,
        address: a.address,
        kind,
        response,
    }
}

fn contact(
    given: &str,
    surname: &str,
    address: &str,
    company: &str,
    title: &str,
) -> ContactContent {
    ContactContent {
        given_name: given.into(),
        surname: surname.into(),
        display_name: None,
        email_addresses: vec![Address::new(format!("{given} {surname}"), address)],
        business_phones: vec!["+1 425 555 0100".into()],
        mobile_phone: None,
        home_phones: Vec::new(),
        company_name: Some(company.into()),
        job_title: Some(title.into()),
    }
}

/// Adele's weekly team sync: Mondays 09:00–09:30 Berlin time from 5 October 2026, moved to
/// 10:00 on 9 November, cancelled on 16 November.
fn team_sync(organizer: Option<Address>, response: Option<ResponseType>) -> EventContent {
    let mut e = event("Team sync", "2026-10-05T09:00:00", "2026-10-05T09:30:00");
    e.organizer = organizer;
    e.response = response;
    e.location = "Teams".into();
    e.attendees = vec![attendee(
        megan(),
        AttendeeType::Required,
        ResponseType::Accepted,
    )];
    e.recurrence = Some(Recurrence {
        pattern: RecurrencePattern {
            kind: PatternType::Weekly,
            interval: 1,
            month: 0,
            day_of_month: 0,
            days_of_week: vec![DayOfWeek::Monday],
            first_day_of_week: DayOfWeek::Sunday,
            index: WeekIndex::First,
        },
        range: RecurrenceRange {
            kind: RangeType::NoEnd,
            start_date: "2026-10-05".into(),
            end_date: None,
            number_of_occurrences: 0,
            recurrence_time_zone: Some("W. Europe Standard Time".into()),
        },
    });
    e.exceptions = vec![ExceptionContent {
        original_start: "2026-11-09T09:00:00".into(),
        subject: Some("Team sync (moved)".into()),
        start: Some("2026-11-09T10:00:00".into()),
        end: Some("2026-11-09T10:30:00".into()),
        location: None,
    }];
    e.cancelled_occurrences = vec!["2026-11-16T09:00:00".into()];
    e
}

fn adele_mailbox() -> MailboxContent {
    let me = || vec![adele()];
    let mut inbox = vec![
        message(
            "inbox",
            "Welcome to Contoso",
            megan(),
            me(),
            datetime!(2026-11-02 08:15 UTC),
            true,
            "Hi Adele,\r\n\r\nwelcome aboard! Let me know if you need anything.\r\n\r\nMegan",
        ),
        message(
            "inbox",
            "Q4 budget review",
            megan(),
            me(),
            datetime!(2026-11-02 10:30 UTC),
            false,
            "",
        ),
        message(
            "inbox",
            "Team offsite photos",
            megan(),
            me(),
            datetime!(2026-11-03 09:05 UTC),
            false,
            "",
        ),
        message(
            "inbox",
            "Your order has shipped",
            Address::new("Fabrikam Orders", "orders@fabrikam.com"),
            me(),
            datetime!(2026-11-03 14:20 UTC),
            true,
            "Your order 4711 is on its way.",
        ),
        message(
            "inbox",
            "Invoice 2026-1107",
            Address::new("Northwind Billing", "billing@northwind.example"),
            me(),
            datetime!(2026-11-04 07:45 UTC),
            false,
            "Please find invoice 2026-1107 in the portal.",
        ),
        message(
            "inbox",
            "RE: Project Falcon kickoff",
            lee(),
            me(),
            datetime!(2026-11-04 16:10 UTC),
            true,
            "Sounds good, see you on Wednesday.",
        ),
        message(
            "inbox",
            "Lunch on Friday?",
            megan(),
            me(),
            datetime!(2026-11-05 11:00 UTC),
            true,
            "Thai or pizza?",
        ),
        message(
            "inbox",
            "Security alert: new sign-in",
            Address::new("Contoso Security", "security@contoso.onmicrosoft.com"),
            me(),
            datetime!(2026-11-06 06:30 UTC),
            true,
            "A new sign-in to your account was detected.",
        ),
        message(
            "inbox",
            "Weekly newsletter: Exchange Online tips",
            Address::new("Contoso News", "newsletter@contoso.com"),
            me(),
            datetime!(2026-11-09 05:00 UTC),
            false,
            "This week: rules, focused inbox and shared mailboxes.",
        ),
        message(
            "inbox",
            "Contract draft for review",
            megan(),
            me(),
            datetime!(2026-11-10 13:40 UTC),
            false,
            "Adele, the contract draft is attached. Sales is in copy.",
        ),
        message(
            "inbox",
            "Reminder: expense report due",
            Address::new("Contoso HR", "hr@contoso.onmicrosoft.com"),
            me(),
            datetime!(2026-11-12 09:00 UTC),
            false,
            "Please submit your October expense report by Friday.",
        ),
        message(
            "inbox",
            "Hello from Sales",
            sales(),
            me(),
            datetime!(2026-11-13 15:25 UTC),
            true,
            "The Sales mailbox says hello.",
        ),
    ];
    // Q4 budget review: HTML, important, categorized, flagged.
    inbox[1].body_type = BodyType::Html;
    inbox[1].body = "<html><head><style>td{padding:2px}</style></head><body><p>Hi Adele,</p><p>the <b>Q4 budget</b> is ready:</p><table><tr><td>Marketing</td><td>120&nbsp;000</td></tr><tr><td>R&amp;D</td><td>340&nbsp;000</td></tr></table><p>Megan</p></body></html>".into();
    inbox[1].importance = Importance::High;
    inbox[1].categories = vec!["Red category".into(), "Finance".into()];
    inbox[1].flag = FlagStatus::Flagged;
    // Team offsite photos: HTML with an inline image and a PDF.
    inbox[2].body_type = BodyType::Html;
    inbox[2].body = "<html><body><p>Photos from the offsite, and the agenda.</p><img src=\"cid:logo@contoso\" alt=\"logo\"></body></html>".into();
    let mut logo = file(
        "logo.png",
        "image/png",
        &STANDARD.decode(PIXEL_PNG).unwrap_or_default(),
    );
    logo.is_inline = true;
    logo.content_id = Some("logo@contoso".into());
    inbox[2].attachments = vec![
        file(
            "agenda.pdf",
            "application/pdf",
            b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n",
        ),
        logo,
    ];
    inbox[4].categories = vec!["Finance".into()];
    inbox[6].flag = FlagStatus::Complete;
    inbox[9].cc = vec![sales()];
    inbox[9].attachments = vec![file(
        "contract.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        b"PK\x03\x04 contract draft v3",
    )];
    inbox[9].headers = vec![HeaderContent {
        name: "X-Contoso-Classification".into(),
        value: "Confidential".into(),
    }];
    let mut messages = inbox;
    messages.push(message(
        "Inbox/Projects",
        "Falcon milestones",
        lee(),
        me(),
        datetime!(2026-11-05 09:30 UTC),
        true,
        "M1: design, M2: pilot, M3: rollout.",
    ));
    let mut draft = message(
        "drafts",
        "Ideas for the offsite",
        adele(),
        vec![megan()],
        datetime!(2026-11-11 17:00 UTC),
        true,
        "Boat trip? Cooking class?",
    );
    draft.is_draft = true;
    messages.push(draft);
    messages.push(message(
        "sentitems",
        "RE: Q4 budget review",
        adele(),
        vec![megan()],
        datetime!(2026-11-02 11:02 UTC),
        true,
        "Thanks Megan, looks good.",
    ));
    messages.push(message(
        "sentitems",
        "Agenda for Monday",
        adele(),
        vec![megan()],
        datetime!(2026-11-06 15:00 UTC),
        true,
        "1. Falcon status\r\n2. Budget\r\n3. AOB",
    ));
    messages.push(message(
        "sentitems",
        "Quote request",
        adele(),
        vec![Address::new("Fabrikam Orders", "orders@fabrikam.com")],
        datetime!(2026-11-10 08:20 UTC),
        true,
        "Could you send a quote for 20 laptops?",
    ));

    let mut review = event(
        "Project Falcon review",
        "2026-11-04T14:00:00",
        "2026-11-04T15:00:00",
    );
    review.location = "Conference Room Rainier".into();
    review.body_type = BodyType::Html;
    review.body =
        "<html><body><p>Status of Project Falcon, risks, next steps.</p></body></html>".into();
    review.attendees = vec![
        attendee(megan(), AttendeeType::Required, ResponseType::Accepted),
        attendee(
            lee(),
            AttendeeType::Optional,
            ResponseType::TentativelyAccepted,
        ),
    ];
    review.online_meeting_url =
        Some("https://teams.microsoft.com/l/meetup-join/19%3ameeting_falcon%40thread.v2/0".into());
    let mut all_hands = event(
        "Contoso all-hands",
        "2026-11-13T00:00:00",
        "2026-11-14T00:00:00",
    );
    all_hands.is_all_day = true;
    all_hands.show_as = ShowAs::Free;
    let mut dentist = event("Dentist", "2026-11-05T08:00:00", "2026-11-05T09:00:00");
    dentist.is_private = true;
    dentist.show_as = ShowAs::Oof;
    let mut one_on_one = event(
        "1:1 with Megan",
        "2026-11-06T16:00:00",
        "2026-11-06T16:30:00",
    );
    one_on_one.show_as = ShowAs::Tentative;
    one_on_one.attendees = vec![attendee(
        megan(),
        AttendeeType::Required,
        ResponseType::None,
    )];

    MailboxContent {
        mailbox: ADELE.into(),
        time_zone: Some("W. Europe Standard Time".into()),
        folders: vec!["Inbox/Projects".into()],
        messages,
        events: vec![
            team_sync(None, None),
            all_hands,
            review,
            dentist,
            one_on_one,
        ],
        contacts: vec![
            contact("Megan", "Bowen", MEGAN, "Contoso", "Marketing Manager"),
            contact(
                "Lee",
                "Gu",
                "lee@contoso.onmicrosoft.com",
                "Contoso",
                "Director",
            ),
            contact("Alex", "Wilber", "alex@fabrikam.com", "Fabrikam", "Buyer"),
            contact(
                "Patti",
                "Fernandez",
                "patti@northwind.example",
                "Northwind Traders",
                "President",
            ),
        ],
    }
}

fn megan_mailbox() -> MailboxContent {
    let me = || vec![megan()];
    let mut gym = event("Gym", "2026-11-04T07:00:00", "2026-11-04T08:00:00");
    gym.time_zone = "Eastern Standard Time".into();
    gym.show_as = ShowAs::Oof;
    MailboxContent {
        mailbox: MEGAN.into(),
        time_zone: Some("Eastern Standard Time".into()),
        folders: Vec::new(),
        messages: vec![
            message(
                "inbox",
                "RE: Q4 budget review",
                adele(),
                me(),
                datetime!(2026-11-02 11:02 UTC),
                true,
                "Thanks Megan, looks good.",
            ),
            message(
                "inbox",
                "Agenda for Monday",
                adele(),
                me(),
                datetime!(2026-11-06 15:00 UTC),
                false,
                "1. Falcon status\r\n2. Budget\r\n3. AOB",
            ),
            message(
                "inbox",
                "Campaign results",
                Address::new("Contoso Marketing", "marketing@contoso.com"),
                me(),
                datetime!(2026-11-09 12:00 UTC),
                false,
                "Open rate 41%.",
            ),
            message(
                "sentitems",
                "Q4 budget review",
                megan(),
                vec![adele()],
                datetime!(2026-11-02 10:30 UTC),
                true,
                "See the numbers.",
            ),
        ],
        events: vec![team_sync(Some(adele()), Some(ResponseType::Accepted)), gym],
        contacts: vec![
            contact("Adele", "Vance", ADELE, "Contoso", "Retail Manager"),
            contact(
                "Lee",
                "Gu",
                "lee@contoso.onmicrosoft.com",
                "Contoso",
                "Director",
            ),
        ],
    }
}

fn sales_mailbox() -> MailboxContent {
    let me = || vec![sales()];
    let mut review = event(
        "Sales pipeline review",
        "2026-11-05T15:00:00",
        "2026-11-05T16:00:00",
    );
    review.attendees = vec![attendee(
        adele(),
        AttendeeType::Required,
        ResponseType::Accepted,
    )];
    MailboxContent {
        mailbox: SALES.into(),
        time_zone: Some("W. Europe Standard Time".into()),
        folders: Vec::new(),
        messages: vec![
            message(
                "inbox",
                "Request for quote: 200 licenses",
                Address::new("Alex Wilber", "alex@fabrikam.com"),
                me(),
                datetime!(2026-11-03 10:00 UTC),
                false,
                "Please quote 200 E3 licenses.",
            ),
            message(
                "inbox",
                "Partnership inquiry",
                Address::new("Patti Fernandez", "patti@northwind.example"),
                me(),
                datetime!(2026-11-05 13:00 UTC),
                true,
                "Shall we talk next week?",
            ),
            message(
                "inbox",
                "Contract draft for review",
                megan(),
                vec![adele()],
                datetime!(2026-11-10 13:40 UTC),
                false,
                "Adele, the contract draft is attached. Sales is in copy.",
            ),
            message(
                "sentitems",
                "Quote 2026-311",
                sales(),
                vec![Address::new("Alex Wilber", "alex@fabrikam.com")],
                datetime!(2026-11-04 09:00 UTC),
                true,
                "Our quote is attached.",
            ),
        ],
        events: vec![review],
        contacts: vec![contact(
            "Alex",
            "Wilber",
            "alex@fabrikam.com",
            "Fabrikam",
            "Buyer",
        )],
    }
}

/// The content of Adele's, Megan's and the Sales mailbox.
fn mailboxes() -> Vec<MailboxContent> {
    vec![adele_mailbox(), megan_mailbox(), sales_mailbox()]
}
