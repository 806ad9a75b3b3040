//! The mailbox's data, independent of the API (Graph or EWS) that carries it.

use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, PrimitiveDateTime};

use super::{Recurrence, TimeZone};

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

    /// exgate's name for it: `inbox`, `drafts`, `sent-items`, `deleted-items`, `archive`,
    /// `junk-email`, `outbox` (each backend maps it to its own).
    pub fn name(self) -> &'static str {
        match self {
            Self::Inbox => "inbox",
            Self::Drafts => "drafts",
            Self::SentItems => "sent-items",
            Self::DeletedItems => "deleted-items",
            Self::Archive => "archive",
            Self::JunkEmail => "junk-email",
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
        let fold = |s: &str| {
            s.chars()
                .filter(|c| *c != '-' && *c != '_' && *c != ' ')
                .collect::<String>()
                .to_ascii_lowercase()
        };
        let folded = fold(s);
        WellKnownFolder::ALL
            .into_iter()
            .find(|f| fold(f.name()) == folded)
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

impl NewMessage {
    /// Refuses attachments that together exceed `limit` bytes (`limits.max_item_mb`), before
    /// anything is sent.
    pub fn check_size(&self, limit: u64) -> Result<(), super::MailboxError> {
        let size: u64 = self
            .attachments
            .iter()
            .map(|a| a.content.len() as u64)
            .sum();
        if size > limit {
            return Err(super::MailboxError::Invalid(format!(
                "the attachments total {size} bytes; exgate sends at most {limit} (limits.max_item_mb)"
            )));
        }
        Ok(())
    }
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
    /// The state passed in no longer means anything (IMAP: the folder's UIDVALIDITY changed):
    /// `changed` holds the whole folder and `removed` nothing; drop what was synced before.
    pub reset: bool,
}

/// A point in time as calendars carry it: a local date-time and its zone.
///
/// JSON: `{"date_time": "2026-12-03T10:00:00", "time_zone": "Europe/Berlin"}`; the zone is
/// written as its IANA name and read as an IANA or a Windows name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "EventTimeJson", try_from = "EventTimeJson")]
pub struct EventTime {
    /// The wall-clock time in `time_zone`.
    pub date_time: PrimitiveDateTime,
    pub time_zone: TimeZone,
}

impl EventTime {
    pub fn new(date_time: PrimitiveDateTime, time_zone: TimeZone) -> Self {
        Self {
            date_time,
            time_zone,
        }
    }

    /// An instant as the wall-clock time in `zone`.
    pub fn from_instant(t: OffsetDateTime, zone: TimeZone) -> Self {
        Self::new(zone.local(t), zone)
    }

    /// The instant it names.
    pub fn instant(&self) -> OffsetDateTime {
        self.time_zone.instant(self.date_time)
    }

    /// `YYYY-MM-DDTHH:MM:SS`.
    pub fn local_string(&self) -> String {
        self.date_time.format(LOCAL_FORMAT).unwrap_or_default()
    }
}

const LOCAL_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");

/// A local date-time: `YYYY-MM-DDTHH:MM[:SS[.fraction]]`, or a date alone (midnight).
pub fn parse_local_date_time(s: &str) -> Option<PrimitiveDateTime> {
    let s = s.trim();
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let date = time::Date::parse(
        date,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()?;
    let Some(t) = time else {
        return Some(date.midnight());
    };
    let (hms, fraction) = t.split_once('.').unwrap_or((t, ""));
    if !fraction.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let time = time::Time::parse(
        hms,
        time::macros::format_description!("[hour]:[minute]:[second]"),
    )
    .or_else(|_| time::Time::parse(hms, time::macros::format_description!("[hour]:[minute]")))
    .ok()?;
    Some(PrimitiveDateTime::new(date, time))
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventTimeJson {
    date_time: String,
    time_zone: String,
}

impl From<EventTime> for EventTimeJson {
    fn from(t: EventTime) -> Self {
        Self {
            date_time: t.local_string(),
            time_zone: t.time_zone.iana().to_owned(),
        }
    }
}

impl TryFrom<EventTimeJson> for EventTime {
    type Error = String;
    fn try_from(j: EventTimeJson) -> Result<Self, String> {
        let date_time = parse_local_date_time(&j.date_time).ok_or_else(|| {
            format!(
                "`{}` is not a local date-time; use YYYY-MM-DDTHH:MM:SS",
                j.date_time
            )
        })?;
        let time_zone = TimeZone::parse(&j.time_zone).map_err(|e| e.to_string())?;
        Ok(Self::new(date_time, time_zone))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttendeeKind {
    Required,
    Optional,
    Resource,
}

/// An attendee's answer to an invitation.
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
    pub show_as: Option<ShowAs>,
    pub sensitivity: Sensitivity,
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

/// How a time shows in the calendar and in free/busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShowAs {
    Free,
    Tentative,
    Busy,
    OutOfOffice,
    WorkingElsewhere,
    Unknown,
}

/// Who may see an item's details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sensitivity {
    #[default]
    Normal,
    Personal,
    Private,
    Confidential,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusySlot {
    pub status: ShowAs,
    pub start: EventTime,
    pub end: EventTime,
    pub subject: Option<String>,
}

/// One mailbox's availability in a range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreeBusy {
    pub mailbox: String,
    /// One status per interval from the range's start.
    pub view: Vec<ShowAs>,
    pub interval_minutes: u32,
    pub slots: Vec<BusySlot>,
    /// Set when the server could not answer for this mailbox.
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    #[test]
    fn folder_names_are_exgates_own() {
        for (input, expected) in [
            ("inbox", WellKnownFolder::Inbox),
            ("sent-items", WellKnownFolder::SentItems),
            ("Sent Items", WellKnownFolder::SentItems),
            ("sentitems", WellKnownFolder::SentItems),
            ("deleted_items", WellKnownFolder::DeletedItems),
            ("junk-email", WellKnownFolder::JunkEmail),
        ] {
            assert_eq!(
                FolderRef::parse(input),
                FolderRef::WellKnown(expected),
                "{input}"
            );
        }
        assert_eq!(WellKnownFolder::SentItems.name(), "sent-items");
        assert_eq!(FolderRef::parse("AAMkAD="), FolderRef::Id("AAMkAD=".into()));
    }

    #[test]
    fn event_times_are_readable_json() {
        let berlin = TimeZone::parse("Europe/Berlin").unwrap();
        let t = EventTime::new(datetime!(2026-12-03 10:00), berlin);
        let v = serde_json::to_value(t).unwrap();
        assert_eq!(
            v,
            json!({"date_time": "2026-12-03T10:00:00", "time_zone": "Europe/Berlin"})
        );
        assert_eq!(serde_json::from_value::<EventTime>(v).unwrap(), t);
        assert_eq!(t.instant(), datetime!(2026-12-03 09:00 UTC));
        assert_eq!(
            EventTime::from_instant(datetime!(2026-12-03 09:00 UTC), berlin),
            t
        );

        // Windows names and minutes are read too; the zone is written back as IANA.
        let w: EventTime = serde_json::from_value(
            json!({"date_time": "2026-12-03T10:00", "time_zone": "W. Europe Standard Time"}),
        )
        .unwrap();
        assert_eq!(w.local_string(), "2026-12-03T10:00:00");
        assert_eq!(w.time_zone.iana(), "Europe/Berlin");

        let err = serde_json::from_value::<EventTime>(
            json!({"date_time": "2026-12-03T10:00:00", "time_zone": "Atlantis"}),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown time zone `Atlantis`"),
            "{err}"
        );
        let err = serde_json::from_value::<EventTime>(
            json!({"date_time": "tomorrow", "time_zone": "UTC"}),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("`tomorrow` is not a local date-time"),
            "{err}"
        );
    }

    #[test]
    fn local_date_times_parse_with_or_without_seconds_and_fractions() {
        assert_eq!(
            parse_local_date_time("2026-11-23T09:00:00.0000000"),
            Some(datetime!(2026-11-23 09:00))
        );
        assert_eq!(
            parse_local_date_time("2026-11-23"),
            Some(datetime!(2026-11-23 00:00))
        );
        assert_eq!(parse_local_date_time("2026-11-23T25:00"), None);
        assert_eq!(parse_local_date_time("2026-11-23T09:00:00.x"), None);
    }
}
