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
    /// `YYYY-MM-DDTHH:MM:SS`, in `time_zone`.
    #[schema(example = "2026-12-03T10:00:00")]
    date_time: String,
    /// An IANA or Windows zone name.
    #[schema(example = "UTC")]
    time_zone: String,
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
    /// Graph's recurrence: `{"pattern": {"type", "interval", "daysOfWeek", …}, "range": {"type",
    /// "startDate", …}}`; on series masters only.
    #[schema(value_type = Option<Object>)]
    recurrence: Option<serde_json::Value>,
    online_meeting_url: Option<String>,
    kind: EventKind,
    series_master_id: Option<String>,
    is_cancelled: bool,
    /// `free`, `tentative`, `busy`, `oof`, `workingElsewhere`, as the server says.
    show_as: Option<String>,
    preview: String,
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

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum BusyStatus {
    Free,
    Tentative,
    Busy,
    OutOfOffice,
    WorkingElsewhere,
    Unknown,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct BusySlot {
    status: BusyStatus,
    start: EventTime,
    end: EventTime,
    subject: Option<String>,
}

/// One mailbox's availability in a range.
#[derive(Serialize, ToSchema)]
pub(crate) struct FreeBusy {
    mailbox: String,
    /// One status per interval from the range's start.
    view: Vec<BusyStatus>,
    interval_minutes: u32,
    slots: Vec<BusySlot>,
    /// Set when the server could not answer for this mailbox.
    error: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CheckStatus {
    Ok,
    Failed,
    Skipped,
}

/// One step of the connection test.
#[derive(Serialize, ToSchema)]
pub(crate) struct Check {
    name: String,
    status: CheckStatus,
    /// What was seen.
    detail: String,
    /// What to do, when it failed.
    fix: Option<String>,
}

/// The connection test: identity provider, token, mailbox, in order.
#[derive(Serialize, ToSchema)]
pub(crate) struct Report {
    connection: String,
    ok: bool,
    checks: Vec<Check>,
}

/// Raw bytes.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub(crate) struct Binary(Vec<u8>);
