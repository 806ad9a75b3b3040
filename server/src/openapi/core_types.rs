//! Schema-only mirrors of the JSON that exgate-core's types serialize to, for the OpenAPI
//! document: core stays free of utoipa, and the gateway documents what it actually sends.
//! Nothing constructs these; the router tests compare real answers against them.
#![expect(
    dead_code,
    reason = "schema-only mirrors of exgate-core's JSON: never constructed"
)]

use serde::Serialize;
use utoipa::ToSchema;

/// An address with an optional display name.
#[derive(Serialize, ToSchema)]
pub(crate) struct Recipient {
    /// Absent when the server gave none.
    name: Option<String>,
    address: String,
}

/// A mail folder.
#[derive(Serialize, ToSchema)]
pub(crate) struct Folder {
    id: String,
    name: String,
    parent_id: Option<String>,
    unread: u32,
    total: u32,
    /// How many child folders it has.
    children: u32,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Importance {
    Low,
    Normal,
    High,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum FlagStatus {
    NotFlagged,
    Flagged,
    Complete,
}

/// A message as a list shows it.
#[derive(Serialize, ToSchema)]
pub(crate) struct MessageSummary {
    id: String,
    subject: String,
    from: Option<Recipient>,
    /// RFC 3339.
    received_at: Option<String>,
    is_read: bool,
    has_attachments: bool,
    importance: Importance,
    flag: FlagStatus,
    categories: Vec<String>,
    preview: String,
    /// The folder it is in.
    folder_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum BodyKind {
    Text,
    Html,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Body {
    kind: BodyKind,
    content: String,
}

/// An attachment's metadata; `GET …/attachments/{attachment}` gives its content.
#[derive(Serialize, ToSchema)]
pub(crate) struct AttachmentInfo {
    id: String,
    name: String,
    content_type: Option<String>,
    size: u64,
    is_inline: bool,
}

/// A whole message: the summary's fields, headers, body and attachment metadata.
#[derive(Serialize, ToSchema)]
pub(crate) struct Message {
    #[serde(flatten)]
    summary: MessageSummary,
    to: Vec<Recipient>,
    cc: Vec<Recipient>,
    bcc: Vec<Recipient>,
    reply_to: Vec<Recipient>,
    /// RFC 3339.
    sent_at: Option<String>,
    body: Body,
    attachments: Vec<AttachmentInfo>,
    internet_message_id: Option<String>,
    conversation_id: Option<String>,
}

/// A point in time as calendars carry it: a local date-time and its zone.
#[derive(Serialize, ToSchema)]
pub(crate) struct EventTime {
    /// `YYYY-MM-DDTHH:MM:SS`, in `time_zone` (requests may leave out the seconds).
    #[schema(example = "2026-12-03T10:00:00")]
    date_time: String,
    /// An IANA zone name in answers; requests may also give a Windows name
    /// (`W. Europe Standard Time`). An unknown zone is refused.
    #[schema(example = "Europe/Berlin")]
    time_zone: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum DayOfWeek {
    Sunday,
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
}

/// Which week of the month a relative pattern means.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum WeekIndex {
    First,
    Second,
    Third,
    Fourth,
    Last,
}

/// How often a series repeats; `interval` (1 or more) counts days, weeks, months or years.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub(crate) enum RecurrencePattern {
    Daily {
        #[schema(minimum = 1)]
        interval: u32,
    },
    Weekly {
        #[schema(minimum = 1)]
        interval: u32,
        /// At least one.
        days: Vec<DayOfWeek>,
        first_day_of_week: DayOfWeek,
    },
    AbsoluteMonthly {
        #[schema(minimum = 1)]
        interval: u32,
        #[schema(minimum = 1, maximum = 31)]
        day_of_month: u8,
    },
    RelativeMonthly {
        #[schema(minimum = 1)]
        interval: u32,
        index: WeekIndex,
        /// At least one.
        days: Vec<DayOfWeek>,
    },
    AbsoluteYearly {
        #[schema(minimum = 1)]
        interval: u32,
        #[schema(minimum = 1, maximum = 12)]
        month: u8,
        #[schema(minimum = 1, maximum = 31)]
        day_of_month: u8,
    },
    RelativeYearly {
        #[schema(minimum = 1)]
        interval: u32,
        #[schema(minimum = 1, maximum = 12)]
        month: u8,
        index: WeekIndex,
        /// At least one.
        days: Vec<DayOfWeek>,
    },
}

/// From when (`YYYY-MM-DD`), and until when, a series repeats.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub(crate) enum RecurrenceRange {
    EndDate {
        #[schema(example = "2026-11-02")]
        start_date: String,
        /// Inclusive, not before `start_date`.
        #[schema(example = "2027-06-30")]
        end_date: String,
    },
    NoEnd {
        #[schema(example = "2026-11-02")]
        start_date: String,
    },
    Numbered {
        #[schema(example = "2026-11-02")]
        start_date: String,
        #[schema(minimum = 1)]
        occurrences: u32,
    },
}

/// A recurring series.
#[derive(Serialize, ToSchema)]
pub(crate) struct Recurrence {
    pattern: RecurrencePattern,
    range: RecurrenceRange,
    /// The zone the series is kept in (IANA in answers; IANA or Windows in requests); absent:
    /// the start's zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    time_zone: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum AttendeeKind {
    Required,
    Optional,
    Resource,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum AttendeeResponse {
    None,
    Organizer,
    Accepted,
    Declined,
    TentativelyAccepted,
    NotResponded,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Attendee {
    who: Recipient,
    kind: AttendeeKind,
    response: AttendeeResponse,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum EventKind {
    Single,
    Occurrence,
    Exception,
    SeriesMaster,
}

/// A calendar event; in a range, recurrences come expanded into occurrences.
#[derive(Serialize, ToSchema)]
pub(crate) struct Event {
    id: String,
    subject: String,
    start: EventTime,
    end: EventTime,
    is_all_day: bool,
    location: Option<String>,
    organizer: Option<Recipient>,
    attendees: Vec<Attendee>,
    /// On series masters only.
    recurrence: Option<Recurrence>,
    online_meeting_url: Option<String>,
    kind: EventKind,
    series_master_id: Option<String>,
    is_cancelled: bool,
    show_as: Option<ShowAs>,
    sensitivity: Sensitivity,
    preview: String,
}

/// Who may see an item's details.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Sensitivity {
    Normal,
    Personal,
    Private,
    Confidential,
}

/// A contact.
#[derive(Serialize, ToSchema)]
pub(crate) struct Contact {
    id: String,
    display_name: String,
    given_name: Option<String>,
    surname: Option<String>,
    emails: Vec<Recipient>,
    business_phones: Vec<String>,
    mobile_phone: Option<String>,
    company: Option<String>,
    job_title: Option<String>,
}

/// How a time shows in the calendar and in free/busy.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum ShowAs {
    Free,
    Tentative,
    Busy,
    OutOfOffice,
    WorkingElsewhere,
    Unknown,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct BusySlot {
    status: ShowAs,
    start: EventTime,
    end: EventTime,
    subject: Option<String>,
}

/// One mailbox's availability in a range.
#[derive(Serialize, ToSchema)]
pub(crate) struct FreeBusy {
    mailbox: String,
    /// One status per interval from the range's start.
    view: Vec<ShowAs>,
    interval_minutes: u32,
    slots: Vec<BusySlot>,
    /// Set when the server could not answer for this mailbox.
    error: Option<String>,
}

/// How a step of the connection test ended: `passed` (the probe ran and what it saw is right),
/// `failed` (the probe ran and found a problem) or `skipped` (the probe did not run; the
/// evidence says why).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CheckStatus {
    Passed,
    Failed,
    Skipped,
}

/// One step of the connection test.
#[derive(Serialize, ToSchema)]
pub(crate) struct Check {
    /// `network` (one per host), `identity provider`, `clock`, `sign-in` (delegated: the
    /// redirect URIs registered, or the public-client grants allowed), `credentials`,
    /// `token claims`, `mailbox`, then each mail protocol's (`IMAP mailbox`, `SMTP
    /// authentication`, …); Exchange Server with Basic or NTLM: `EWS endpoint`,
    /// `authentication`, `mailbox` and, with a mailbox named, `mailbox access`.
    name: String,
    status: CheckStatus,
    /// What was seen (HTTP status, AADSTS code, token claims, endpoint reached); for a skipped
    /// step, why it did not run.
    evidence: String,
    /// What to do, when there is something to do.
    fix: Option<String>,
}

/// The connection test: network, identity provider, clock, sign-in (delegated), credentials,
/// token claims, mailbox and the mail protocols, in order.
#[derive(Serialize, ToSchema)]
pub(crate) struct Report {
    connection: String,
    /// Every step ran and passed; a skipped step makes it false.
    ok: bool,
    checks: Vec<Check>,
}

/// Raw bytes.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub(crate) struct Binary(Vec<u8>);
