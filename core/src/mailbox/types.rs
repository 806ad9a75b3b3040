//! The mailbox's data, independent of the API (Graph or EWS) that carries it.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Whose mailbox: the signed-in user's (or, app-only, none), or another/shared one by address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MailboxRef {
    /// The signed-in user's own mailbox.
    Me,
    /// A shared mailbox, another user's (delegation), or any user's (app-only).
    User(String),
}

impl MailboxRef {
    /// The key the governor counts requests under.
    pub fn key(&self, me: &str) -> String {
        match self {
            Self::Me => me.to_ascii_lowercase(),
            Self::User(u) => u.to_ascii_lowercase(),
        }
    }
}

/// An address with an optional display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub address: String,
}

impl Recipient {
    pub fn address(address: impl Into<String>) -> Self {
        Self {
            name: None,
            address: address.into(),
        }
    }
}

/// Folders a backend knows by role rather than ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WellKnownFolder {
    Inbox,
    Drafts,
    SentItems,
    DeletedItems,
    Archive,
    JunkEmail,
    Outbox,
}

impl WellKnownFolder {
    pub const ALL: [Self; 7] = [
        Self::Inbox,
        Self::Drafts,
        Self::SentItems,
        Self::DeletedItems,
        Self::Archive,
        Self::JunkEmail,
        Self::Outbox,
    ];

    /// The name Graph accepts in place of a folder ID (EWS's DistinguishedFolderId matches too).
    pub fn graph_name(self) -> &'static str {
        match self {
            Self::Inbox => "inbox",
            Self::Drafts => "drafts",
            Self::SentItems => "sentitems",
            Self::DeletedItems => "deleteditems",
            Self::Archive => "archive",
            Self::JunkEmail => "junkemail",
            Self::Outbox => "outbox",
        }
    }
}

/// A folder named by role or by ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FolderRef {
    WellKnown(WellKnownFolder),
    Id(String),
}

impl FolderRef {
    /// `inbox`, `sent-items`, … name a well-known folder (any case, `-` or `_` or none between
    /// words); anything else is a folder ID.
    pub fn parse(s: &str) -> Self {
        let folded: String = s
            .chars()
            .filter(|c| *c != '-' && *c != '_' && *c != ' ')
            .collect::<String>()
            .to_ascii_lowercase();
        WellKnownFolder::ALL
            .into_iter()
            .find(|f| f.graph_name() == folded)
            .map_or_else(|| Self::Id(s.to_owned()), Self::WellKnown)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Folder {
    pub id: String,
    pub name: String,
    pub parent_id: Option<String>,
    pub unread: u32,
    pub total: u32,
    pub children: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Importance {
    Low,
    #[default]
    Normal,
    High,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlagStatus {
    #[default]
    NotFlagged,
    Flagged,
    Complete,
}

/// What a message list shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageSummary {
    pub id: String,
    pub subject: String,
    pub from: Option<Recipient>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub received_at: Option<OffsetDateTime>,
    pub is_read: bool,
    pub has_attachments: bool,
    pub importance: Importance,
    pub flag: FlagStatus,
    pub categories: Vec<String>,
    pub preview: String,
    /// The folder it is in.
    pub folder_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyKind {
    Text,
    Html,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body {
    pub kind: BodyKind,
    pub content: String,
}

impl Body {
    pub fn text(content: impl Into<String>) -> Self {
        Self {
            kind: BodyKind::Text,
            content: content.into(),
        }
    }
    pub fn html(content: impl Into<String>) -> Self {
        Self {
            kind: BodyKind::Html,
            content: content.into(),
        }
    }
}

/// An attachment's metadata; its content is fetched on demand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentInfo {
    pub id: String,
    pub name: String,
    pub content_type: Option<String>,
    pub size: u64,
    pub is_inline: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    #[serde(flatten)]
    pub summary: MessageSummary,
    pub to: Vec<Recipient>,
    pub cc: Vec<Recipient>,
    pub bcc: Vec<Recipient>,
    pub reply_to: Vec<Recipient>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub sent_at: Option<OffsetDateTime>,
    pub body: Body,
    pub attachments: Vec<AttachmentInfo>,
    pub internet_message_id: Option<String>,
    pub conversation_id: Option<String>,
}

/// A file to attach to a new message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAttachment {
    pub name: String,
    pub content_type: String,
    pub content: bytes::Bytes,
}

/// A message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub to: Vec<Recipient>,
    pub cc: Vec<Recipient>,
    pub bcc: Vec<Recipient>,
    pub subject: String,
    pub body: Body,
    pub attachments: Vec<NewAttachment>,
    pub importance: Importance,
    /// Send as this (shared) mailbox; needs Send As on it.
    pub from: Option<Recipient>,
    pub save_to_sent: bool,
}

/// Which messages to list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageQuery {
    /// `None`: all folders.
    pub folder: Option<FolderRef>,
    pub unread_only: bool,
    pub from: Option<String>,
    #[doc = "Received at or after."]
    pub since: Option<OffsetDateTime>,
    pub with_attachments: bool,
    /// Page size (the backend caps it).
    pub page_size: u32,
}

/// One page of results and how to get the next.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// An opaque token for the next page; `None` on the last.
    pub next: Option<String>,
}

/// An incremental sync of a folder: what changed since the previous state.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderChanges {
    pub changed: Vec<MessageSummary>,
    pub removed: Vec<String>,
    /// Pass back next time to get only later changes.
    pub state: String,
}

/// A point in time as calendars carry it: a local date-time and its zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventTime {
    /// `YYYY-MM-DDTHH:MM:SS`, in `time_zone`.
    pub date_time: String,
    /// IANA or Windows zone name, as the server gave it.
    pub time_zone: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttendeeKind {
    Required,
    Optional,
    Resource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Response {
    None,
    Organizer,
    Accepted,
    Declined,
    TentativelyAccepted,
    NotResponded,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attendee {
    pub who: Recipient,
    pub kind: AttendeeKind,
    pub response: Response,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecurrencePattern {
    /// daily, weekly, absoluteMonthly, relativeMonthly, absoluteYearly, relativeYearly.
    #[serde(rename = "type")]
    pub kind: String,
    pub interval: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days_of_week: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day_of_month: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub month: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecurrenceRange {
    /// endDate, noEnd, numbered.
    #[serde(rename = "type")]
    pub kind: String,
    pub start_date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_occurrences: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recurrence {
    pub pattern: RecurrencePattern,
    pub range: RecurrenceRange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    Single,
    Occurrence,
    Exception,
    SeriesMaster,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub subject: String,
    pub start: EventTime,
    pub end: EventTime,
    pub is_all_day: bool,
    pub location: Option<String>,
    pub organizer: Option<Recipient>,
    pub attendees: Vec<Attendee>,
    pub recurrence: Option<Recurrence>,
    pub online_meeting_url: Option<String>,
    pub kind: EventKind,
    pub series_master_id: Option<String>,
    pub is_cancelled: bool,
    pub show_as: Option<String>,
    pub preview: String,
}

/// An event to create, or (with `None` fields left alone) a change to one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventDraft {
    pub subject: Option<String>,
    pub start: Option<EventTime>,
    pub end: Option<EventTime>,
    pub is_all_day: Option<bool>,
    pub location: Option<String>,
    pub body: Option<Body>,
    pub attendees: Option<Vec<(Recipient, AttendeeKind)>>,
    pub recurrence: Option<Recurrence>,
    pub online_meeting: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub id: String,
    pub display_name: String,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub emails: Vec<Recipient>,
    pub business_phones: Vec<String>,
    pub mobile_phone: Option<String>,
    pub company: Option<String>,
    pub job_title: Option<String>,
}

/// A contact to create, or (with `None` fields left alone) a change to one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContactDraft {
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub emails: Option<Vec<Recipient>>,
    pub business_phones: Option<Vec<String>>,
    pub mobile_phone: Option<String>,
    pub company: Option<String>,
    pub job_title: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BusyStatus {
    Free,
    Tentative,
    Busy,
    OutOfOffice,
    WorkingElsewhere,
    Unknown,
}

impl BusyStatus {
    /// Graph's availabilityView digit.
    pub fn from_digit(c: char) -> Self {
        match c {
            '0' => Self::Free,
            '1' => Self::Tentative,
            '2' => Self::Busy,
            '3' => Self::OutOfOffice,
            '4' => Self::WorkingElsewhere,
            _ => Self::Unknown,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusySlot {
    pub status: BusyStatus,
    pub start: EventTime,
    pub end: EventTime,
    pub subject: Option<String>,
}

/// One mailbox's availability in a range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreeBusy {
    pub mailbox: String,
    /// One status per interval from the range's start.
    pub view: Vec<BusyStatus>,
    pub interval_minutes: u32,
    pub slots: Vec<BusySlot>,
    /// Set when the server could not answer for this mailbox.
    pub error: Option<String>,
}
