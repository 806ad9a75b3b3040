//! [`MailboxContent`]: what a mailbox holds, as JSON — in seed files (`tenants[].mailboxes`),
//! fixture files (`exgate-mock fixtures`) and [`crate::MockMicrosoft::load_mailbox`].
//!
//! The form is the mock's own (snake_case, like the seed), except `recurrence`, which is Graph's
//! `patternedRecurrence` JSON as clients send it. Items carry no IDs: the mock gives them IDs
//! when it loads them. Times of messages are UTC instants (RFC 3339); times of events are local
//! date-times (`2026-11-02T09:00:00`) in the event's `time_zone`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::mailbox::{normalize_path, well_known_folder};
use super::recurrence::{Recurrence, parse_local};
use super::tz;

/// The content of one mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxContent {
    /// The mailbox's SMTP address: a seeded user's UPN or a shared mailbox's address.
    pub mailbox: String,
    /// The mailbox's time zone (Windows or IANA name, e.g. `W. Europe Standard Time` or
    /// `Europe/Berlin`): its working hours are in it. Default UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Folders besides the well-known ones, as paths of display names under the root, parents
    /// first: `Inbox/Projects`, `Projects 2026`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folders: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<MessageContent>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventContent>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<ContactContent>,
}

/// A name and an SMTP address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    #[serde(default)]
    pub name: String,
    pub address: String,
}

impl Address {
    pub fn new(name: impl Into<String>, address: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            address: address.into(),
        }
    }
}

/// `text` or `html`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyType {
    #[default]
    Text,
    Html,
}

/// `low`, `normal` or `high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Importance {
    Low,
    #[default]
    Normal,
    High,
}

/// A message's follow-up flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FlagStatus {
    #[default]
    NotFlagged,
    Flagged,
    Complete,
}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageContent {
    /// A well-known folder name (`inbox`, `drafts`, `sentitems`, `deleteditems`, `archive`,
    /// `junkemail`, `outbox`) or a folder path (`Inbox/Projects`).
    pub folder: String,
    pub subject: String,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub body_type: BodyType,
    pub from: Address,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<Address>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cc: Vec<Address>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bcc: Vec<Address>,
    /// When it arrived (and, for items the mailbox sent, when it was sent).
    #[serde(with = "time::serde::rfc3339")]
    pub received: OffsetDateTime,
    #[serde(default)]
    pub is_read: bool,
    #[serde(default)]
    pub is_draft: bool,
    #[serde(default)]
    pub importance: Importance,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    #[serde(default)]
    pub flag: FlagStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentContent>,
    /// `<…@…>`; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_message_id: Option<String>,
    /// Extra internet headers (`X-…`), beyond those the mock derives from the message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderContent>,
}

/// An internet message header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderContent {
    pub name: String,
    pub value: String,
}

/// A file attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentContent {
    pub name: String,
    pub content_type: String,
    /// The bytes, base64 (standard alphabet, padded). Empty with `generated_size`.
    #[serde(default)]
    pub content_bytes: String,
    /// Instead of `content_bytes`: that many deterministic pseudo-random bytes, made when the
    /// mailbox is loaded (large attachments without large JSON). Written back as
    /// `content_bytes` by [`crate::MockMicrosoft::mailbox_content`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_size: Option<u64>,
    #[serde(default)]
    pub is_inline: bool,
    /// For inline attachments: what `cid:` URLs in the HTML body name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_id: Option<String>,
}

/// `required`, `optional` or `resource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttendeeType {
    #[default]
    Required,
    Optional,
    Resource,
}

/// An attendee's (or the mailbox owner's) response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ResponseType {
    #[default]
    None,
    Organizer,
    TentativelyAccepted,
    Accepted,
    Declined,
    NotResponded,
}

/// How an event shows in free/busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ShowAs {
    Free,
    Tentative,
    #[default]
    Busy,
    Oof,
    WorkingElsewhere,
    Unknown,
}

/// An attendee of an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttendeeContent {
    #[serde(default)]
    pub name: String,
    pub address: String,
    #[serde(default, rename = "type")]
    pub kind: AttendeeType,
    #[serde(default)]
    pub response: ResponseType,
}

/// One event: a single event or a recurring series (with `recurrence`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventContent {
    pub subject: String,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub body_type: BodyType,
    /// Local date-time in `time_zone`, e.g. `2026-11-02T09:00:00` (midnight for all-day events).
    pub start: String,
    pub end: String,
    /// Windows or IANA name; default `UTC`.
    #[serde(default = "utc", skip_serializing_if = "is_utc")]
    pub time_zone: String,
    #[serde(default)]
    pub is_all_day: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub location: String,
    /// Default: the mailbox itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizer: Option<Address>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attendees: Vec<AttendeeContent>,
    #[serde(default)]
    pub show_as: ShowAs,
    /// The mailbox owner's response; default `organizer` when the mailbox organizes it, else
    /// `notResponded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseType>,
    /// A Teams join URL: the event is an online meeting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_meeting_url: Option<String>,
    /// Graph's `patternedRecurrence` (camelCase, as in the API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<Recurrence>,
    /// Occurrences of the series that were changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<ExceptionContent>,
    /// Original local start date-times of occurrences that were cancelled (deleted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cancelled_occurrences: Vec<String>,
    #[serde(default)]
    pub is_cancelled: bool,
    #[serde(default)]
    pub is_private: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
}

/// A changed occurrence of a series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionContent {
    /// The occurrence's original local start (in the series' time zone).
    pub original_start: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// New local start and end (in the series' time zone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// One contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactContent {
    #[serde(default)]
    pub given_name: String,
    #[serde(default)]
    pub surname: String,
    /// Default: given name and surname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_addresses: Vec<Address>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub business_phones: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile_phone: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub home_phones: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_title: Option<String>,
}

fn utc() -> String {
    "UTC".into()
}

fn is_utc(zone: &str) -> bool {
    zone == "UTC"
}

/// Mailbox content that cannot be loaded, with what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    #[error("mailbox `{0}` is neither a seeded user nor a shared mailbox")]
    UnknownMailbox(String),
    #[error("{item}: {problem}")]
    Invalid { item: String, problem: String },
}

fn invalid(item: impl Into<String>, problem: impl Into<String>) -> ContentError {
    ContentError::Invalid {
        item: item.into(),
        problem: problem.into(),
    }
}

/// The largest generated attachment.
const MAX_GENERATED: u64 = 1 << 30;

impl AttachmentContent {
    /// A file attachment with the given bytes.
    pub fn new(name: impl Into<String>, content_type: impl Into<String>, bytes: &[u8]) -> Self {
        Self {
            name: name.into(),
            content_type: content_type.into(),
            content_bytes: STANDARD.encode(bytes),
            generated_size: None,
            is_inline: false,
            content_id: None,
        }
    }

    /// A file attachment of `size` deterministic pseudo-random bytes (the same name and size
    /// give the same bytes), made when loaded: a 100 MB attachment without 133 MB of base64.
    pub fn generated(name: impl Into<String>, content_type: impl Into<String>, size: u64) -> Self {
        Self {
            name: name.into(),
            content_type: content_type.into(),
            content_bytes: String::new(),
            generated_size: Some(size),
            is_inline: false,
            content_id: None,
        }
    }

    /// The attachment's bytes (decoded, or generated).
    pub fn bytes(&self) -> Vec<u8> {
        match self.generated_size {
            Some(size) => generated_bytes(&self.name, size),
            None => STANDARD.decode(&self.content_bytes).unwrap_or_default(),
        }
    }
}

/// `size` pseudo-random bytes from a generator seeded by `name` (xorshift64*, 8 bytes a step).
pub(crate) fn generated_bytes(name: &str, size: u64) -> Vec<u8> {
    let mut state = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    }) | 1;
    let len = usize::try_from(size).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let word = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        let take = (len - out.len()).min(8);
        out.extend_from_slice(&word[..take]);
    }
    out
}

impl MessageContent {
    /// A received message in `folder` with a text body, read, no recipients; fill in the rest.
    pub fn new(
        folder: impl Into<String>,
        subject: impl Into<String>,
        from: Address,
        received: OffsetDateTime,
    ) -> Self {
        Self {
            folder: folder.into(),
            subject: subject.into(),
            body: String::new(),
            body_type: BodyType::default(),
            from,
            to: Vec::new(),
            cc: Vec::new(),
            bcc: Vec::new(),
            received,
            is_read: true,
            is_draft: false,
            importance: Importance::default(),
            categories: Vec::new(),
            flag: FlagStatus::default(),
            attachments: Vec::new(),
            internet_message_id: None,
            headers: Vec::new(),
        }
    }
}

impl MailboxContent {
    /// An empty mailbox (the well-known folders only).
    pub fn empty(mailbox: impl Into<String>) -> Self {
        Self {
            mailbox: mailbox.into(),
            time_zone: None,
            folders: Vec::new(),
            messages: Vec::new(),
            events: Vec::new(),
            contacts: Vec::new(),
        }
    }

    /// Reads content from JSON: one mailbox (`{"mailbox":…}`) or a list of them.
    pub fn list_from_json(json: &str) -> Result<Vec<Self>, String> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
        if value.is_array() {
            serde_json::from_value(value).map_err(|e| e.to_string())
        } else {
            serde_json::from_value(value)
                .map(|one| vec![one])
                .map_err(|e| e.to_string())
        }
    }

    /// Checks what loading relies on: folder paths, time zones, local times, base64 bytes,
    /// recurrence patterns.
    pub fn validate(&self) -> Result<(), ContentError> {
        if !self.mailbox.contains('@') {
            return Err(invalid(
                "mailbox",
                format!("`{}` is not an SMTP address", self.mailbox),
            ));
        }
        if let Some(zone) = &self.time_zone
            && tz::find(zone).is_none()
        {
            return Err(invalid("time_zone", format!("unknown time zone `{zone}`")));
        }
        let mut paths: Vec<String> = Vec::new();
        for (i, path) in self.folders.iter().enumerate() {
            let item = format!("folders[{i}]");
            let segments: Vec<&str> = path.split('/').collect();
            if segments.iter().any(|s| s.trim().is_empty()) {
                return Err(invalid(item, format!("`{path}` has an empty segment")));
            }
            if segments.len() == 1 && well_known_folder(path).is_some() {
                return Err(invalid(item, format!("`{path}` is a well-known folder")));
            }
            if let Some((parent, _)) = path.rsplit_once('/')
                && !folder_exists(parent, &paths)
            {
                return Err(invalid(
                    item,
                    format!("the parent of `{path}` is not listed before it"),
                ));
            }
            if folder_exists(path, &paths) {
                return Err(invalid(item, format!("`{path}` appears twice")));
            }
            paths.push(normalize_path(path));
        }
        for (i, m) in self.messages.iter().enumerate() {
            let item = format!("messages[{i}]");
            if !folder_exists(&m.folder, &paths) {
                return Err(invalid(
                    item,
                    format!("folder `{}` is not listed", m.folder),
                ));
            }
            for (j, a) in m.attachments.iter().enumerate() {
                if a.generated_size.is_some() && !a.content_bytes.is_empty() {
                    return Err(invalid(
                        format!("{item}.attachments[{j}]"),
                        "give either content_bytes or generated_size, not both",
                    ));
                }
                if a.generated_size.is_some_and(|n| n > MAX_GENERATED) {
                    return Err(invalid(
                        format!("{item}.attachments[{j}]"),
                        "generated_size is over 1 GiB",
                    ));
                }
                if STANDARD.decode(&a.content_bytes).is_err() {
                    return Err(invalid(
                        format!("{item}.attachments[{j}]"),
                        "content_bytes is not base64",
                    ));
                }
            }
        }
        for (i, e) in self.events.iter().enumerate() {
            let item = format!("events[{i}] `{}`", e.subject);
            validate_event(e).map_err(|problem| invalid(item, problem))?;
        }
        Ok(())
    }
}

/// A folder named by a well-known name or display name, or by a path listed in `paths`
/// (normalized).
fn folder_exists(path: &str, paths: &[String]) -> bool {
    well_known_folder(path).is_some() || paths.contains(&normalize_path(path))
}

fn validate_event(e: &EventContent) -> Result<(), String> {
    let Some(zone) = tz::find(&e.time_zone) else {
        return Err(format!("unknown time zone `{}`", e.time_zone));
    };
    let start = parse_local(&e.start)
        .ok_or_else(|| format!("start `{}` is not a local date-time", e.start))?;
    let end =
        parse_local(&e.end).ok_or_else(|| format!("end `{}` is not a local date-time", e.end))?;
    if zone.to_utc(end) < zone.to_utc(start) {
        return Err("ends before it starts".into());
    }
    if let Some(recurrence) = &e.recurrence {
        recurrence.validate()?;
        if let Some(zone) = recurrence.range.recurrence_time_zone.as_deref()
            && tz::find(zone).is_none()
        {
            return Err(format!("unknown recurrenceTimeZone `{zone}`"));
        }
    } else if !e.exceptions.is_empty() || !e.cancelled_occurrences.is_empty() {
        return Err("has exceptions or cancelled occurrences but no recurrence".into());
    }
    for x in &e.exceptions {
        for t in [Some(&x.original_start), x.start.as_ref(), x.end.as_ref()]
            .into_iter()
            .flatten()
        {
            if parse_local(t).is_none() {
                return Err(format!("exception time `{t}` is not a local date-time"));
            }
        }
    }
    for t in &e.cancelled_occurrences {
        if parse_local(t).is_none() {
            return Err(format!(
                "cancelled occurrence `{t}` is not a local date-time"
            ));
        }
    }
    Ok(())
}
