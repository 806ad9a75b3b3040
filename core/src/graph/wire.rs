//! Microsoft Graph v1.0 JSON, as serde types, and their mapping to the mailbox model.
//! Pure: no I/O.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::mailbox::{
    Attendee, AttendeeKind, Body, BodyKind, BusySlot, Contact, ContactDraft, DayOfWeek, Event,
    EventDraft, EventKind, EventTime, FlagStatus, Folder, FreeBusy, Importance, MailboxError,
    Message, MessageSummary, NewAttachment, NewMessage, Recipient, Recurrence, RecurrencePattern,
    RecurrenceRange, Response, Sensitivity, ShowAs, TimeZone, WeekIndex, WellKnownFolder,
    parse_local_date_time,
};

/// The name Graph accepts in place of a well-known folder's ID.
pub(crate) fn folder_name(f: WellKnownFolder) -> &'static str {
    match f {
        WellKnownFolder::Inbox => "inbox",
        WellKnownFolder::Drafts => "drafts",
        WellKnownFolder::SentItems => "sentitems",
        WellKnownFolder::DeletedItems => "deleteditems",
        WellKnownFolder::Archive => "archive",
        WellKnownFolder::JunkEmail => "junkemail",
        WellKnownFolder::Outbox => "outbox",
    }
}

/// The zone name Graph is sent: the Windows name (what every Exchange speaks), or the IANA name
/// for the few zones CLDR maps to no Windows zone (Graph takes those too).
pub(crate) fn zone_name(z: &TimeZone) -> &'static str {
    z.windows().unwrap_or_else(|| z.iana())
}

/// A zone as Graph names it (Windows or IANA; `tzone://Microsoft/Utc` for UTC). When it is the
/// zone that was asked for (under either name), that zone, so `Europe/Vienna` stays Vienna
/// although Graph answers `W. Europe Standard Time`.
pub(crate) fn zone_from_graph(
    name: &str,
    asked: Option<&TimeZone>,
) -> Result<TimeZone, MailboxError> {
    let name = name.trim();
    if let Some(z) = asked
        && (z.windows() == Some(name) || z.iana() == name)
    {
        return Ok(*z);
    }
    if name.eq_ignore_ascii_case("tzone://Microsoft/Utc") {
        return Ok(TimeZone::UTC);
    }
    TimeZone::parse(name).map_err(|e| {
        MailboxError::Protocol(format!("Graph gave a time zone exgate does not know: {e}"))
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct Collection<T> {
    /// Required: an answer without it (`[]`, `{}`) is not a collection, never an empty one.
    pub value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    pub next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink", default)]
    pub delta_link: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EmailAddress {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Addressed {
    #[serde(default)]
    pub email_address: EmailAddress,
}

impl Addressed {
    fn recipient(self) -> Option<Recipient> {
        let address = self.email_address.address?;
        Some(Recipient {
            name: self.email_address.name.filter(|n| !n.is_empty()),
            address,
        })
    }
}

fn recipients(list: Vec<Addressed>) -> Vec<Recipient> {
    list.into_iter().filter_map(Addressed::recipient).collect()
}

pub(crate) fn recipient_json(r: &Recipient) -> Value {
    match &r.name {
        Some(name) => json!({ "emailAddress": { "address": r.address, "name": name } }),
        None => json!({ "emailAddress": { "address": r.address } }),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MailFolder {
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub parent_folder_id: Option<String>,
    #[serde(default)]
    pub child_folder_count: u32,
    #[serde(default)]
    pub unread_item_count: u32,
    #[serde(default)]
    pub total_item_count: u32,
}

impl From<MailFolder> for Folder {
    fn from(f: MailFolder) -> Self {
        Self {
            id: f.id,
            name: f.display_name,
            parent_id: f.parent_folder_id,
            unread: f.unread_item_count,
            total: f.total_item_count,
            children: f.child_folder_count,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ItemBody {
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub content: String,
}

impl From<ItemBody> for Body {
    fn from(b: ItemBody) -> Self {
        let kind = if b
            .content_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("html"))
        {
            BodyKind::Html
        } else {
            BodyKind::Text
        };
        Self {
            kind,
            content: b.content,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Flag {
    #[serde(default)]
    pub flag_status: Option<String>,
}

/// The fields a message list selects.
pub(crate) const SUMMARY_FIELDS: &str = "id,subject,from,receivedDateTime,isRead,hasAttachments,importance,flag,categories,bodyPreview,parentFolderId";
/// The fields `message` selects.
pub(crate) const MESSAGE_FIELDS: &str = "id,subject,from,receivedDateTime,sentDateTime,isRead,hasAttachments,\
importance,flag,categories,bodyPreview,toRecipients,ccRecipients,bccRecipients,replyTo,body,internetMessageId,\
conversationId,parentFolderId";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireMessage {
    pub id: String,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub body_preview: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub received_date_time: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub sent_date_time: Option<OffsetDateTime>,
    #[serde(default)]
    pub is_read: Option<bool>,
    #[serde(default)]
    pub has_attachments: Option<bool>,
    #[serde(default)]
    pub importance: Option<String>,
    #[serde(default)]
    pub flag: Option<Flag>,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub from: Option<Addressed>,
    #[serde(default)]
    pub to_recipients: Vec<Addressed>,
    #[serde(default)]
    pub cc_recipients: Vec<Addressed>,
    #[serde(default)]
    pub bcc_recipients: Vec<Addressed>,
    #[serde(default)]
    pub reply_to: Vec<Addressed>,
    #[serde(default)]
    pub body: Option<ItemBody>,
    #[serde(default)]
    pub internet_message_id: Option<String>,
    #[serde(default)]
    pub conversation_id: Option<String>,
    #[serde(default)]
    pub parent_folder_id: Option<String>,
    #[serde(rename = "@removed", default)]
    pub removed: Option<Value>,
}

impl WireMessage {
    pub(crate) fn into_summary(self) -> MessageSummary {
        self.split().0
    }

    fn split(self) -> (MessageSummary, WireRest) {
        let importance = match self.importance.as_deref() {
            Some("low") => Importance::Low,
            Some("high") => Importance::High,
            _ => Importance::Normal,
        };
        let flag = match self.flag.and_then(|f| f.flag_status).as_deref() {
            Some("flagged") => FlagStatus::Flagged,
            Some("complete") => FlagStatus::Complete,
            _ => FlagStatus::NotFlagged,
        };
        let summary = MessageSummary {
            id: self.id,
            subject: self.subject.unwrap_or_default(),
            from: self.from.and_then(Addressed::recipient),
            received_at: self.received_date_time,
            is_read: self.is_read.unwrap_or(false),
            has_attachments: self.has_attachments.unwrap_or(false),
            importance,
            flag,
            categories: self.categories,
            preview: self.body_preview.unwrap_or_default(),
            folder_id: self.parent_folder_id,
        };
        let rest = WireRest {
            to: self.to_recipients,
            cc: self.cc_recipients,
            bcc: self.bcc_recipients,
            reply_to: self.reply_to,
            sent: self.sent_date_time,
            body: self.body,
            internet_message_id: self.internet_message_id,
            conversation_id: self.conversation_id,
        };
        (summary, rest)
    }

    pub(crate) fn into_message(self, attachments: Vec<crate::mailbox::AttachmentInfo>) -> Message {
        let (summary, rest) = self.split();
        Message {
            summary,
            to: recipients(rest.to),
            cc: recipients(rest.cc),
            bcc: recipients(rest.bcc),
            reply_to: recipients(rest.reply_to),
            sent_at: rest.sent,
            body: rest.body.map(Body::from).unwrap_or_else(|| Body::text("")),
            attachments,
            internet_message_id: rest.internet_message_id,
            conversation_id: rest.conversation_id,
        }
    }
}

struct WireRest {
    to: Vec<Addressed>,
    cc: Vec<Addressed>,
    bcc: Vec<Addressed>,
    reply_to: Vec<Addressed>,
    sent: Option<OffsetDateTime>,
    body: Option<ItemBody>,
    internet_message_id: Option<String>,
    conversation_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireAttachment {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub is_inline: bool,
    /// `#microsoft.graph.fileAttachment`, `…itemAttachment` or `…referenceAttachment`.
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
}

impl WireAttachment {
    pub(crate) fn info(&self) -> crate::mailbox::AttachmentInfo {
        crate::mailbox::AttachmentInfo {
            id: self.id.clone(),
            name: self.name.clone().unwrap_or_default(),
            content_type: self.content_type.clone(),
            size: self.size,
            is_inline: self.is_inline,
        }
    }
}

/// The JSON of a message to send or save as a draft, with all its attachments inline.
pub(crate) fn new_message_json(m: &NewMessage) -> Value {
    message_json(m, &m.attachments.iter().collect::<Vec<_>>())
}

/// The JSON of a file attachment sent inline.
pub(crate) fn file_attachment_json(a: &NewAttachment) -> Value {
    use base64::Engine;
    json!({
        "@odata.type": "#microsoft.graph.fileAttachment",
        "name": a.name,
        "contentType": a.content_type,
        "contentBytes": base64::engine::general_purpose::STANDARD.encode(&a.content),
    })
}

/// The JSON of a message with only `attachments` inline (larger ones go by upload session).
pub(crate) fn message_json(m: &NewMessage, attachments: &[&NewAttachment]) -> Value {
    let mut v = json!({
        "subject": m.subject,
        "body": { "contentType": match m.body.kind { BodyKind::Html => "HTML", BodyKind::Text => "Text" }, "content": m.body.content },
        "toRecipients": m.to.iter().map(recipient_json).collect::<Vec<_>>(),
        "ccRecipients": m.cc.iter().map(recipient_json).collect::<Vec<_>>(),
        "bccRecipients": m.bcc.iter().map(recipient_json).collect::<Vec<_>>(),
        "importance": match m.importance { Importance::Low => "low", Importance::Normal => "normal", Importance::High => "high" },
    });
    if let Some(from) = &m.from {
        v["from"] = recipient_json(from);
    }
    if !attachments.is_empty() {
        v["attachments"] = attachments
            .iter()
            .map(|a| file_attachment_json(a))
            .collect();
    }
    v
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DateTimeTimeZone {
    pub date_time: String,
    #[serde(default)]
    pub time_zone: Option<String>,
}

impl DateTimeTimeZone {
    /// Graph's `{"dateTime", "timeZone"}` (no zone: UTC), read with the zone that was asked for.
    pub(crate) fn into_event_time(
        self,
        asked: Option<&TimeZone>,
    ) -> Result<EventTime, MailboxError> {
        let local = parse_local_date_time(&self.date_time).ok_or_else(|| {
            MailboxError::Protocol(format!(
                "Graph gave `{}`, which is not a local date-time",
                self.date_time
            ))
        })?;
        let zone = match self.time_zone.as_deref() {
            None | Some("") => TimeZone::UTC,
            Some(name) => zone_from_graph(name, asked)?,
        };
        Ok(EventTime::new(local, zone))
    }
}

fn date_time_json(t: &EventTime) -> Value {
    json!({ "dateTime": t.local_string(), "timeZone": zone_name(&t.time_zone) })
}

/// Graph's `patternedRecurrence`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireRecurrence {
    pub pattern: WirePattern,
    pub range: WireRange,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WirePattern {
    /// daily, weekly, absoluteMonthly, relativeMonthly, absoluteYearly, relativeYearly.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub interval: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub month: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub day_of_month: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days_of_week: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_day_of_week: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireRange {
    /// endDate, noEnd, numbered.
    #[serde(rename = "type")]
    pub kind: String,
    pub start_date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub number_of_occurrences: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence_time_zone: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn week_index_name(i: WeekIndex) -> &'static str {
    match i {
        WeekIndex::First => "first",
        WeekIndex::Second => "second",
        WeekIndex::Third => "third",
        WeekIndex::Fourth => "fourth",
        WeekIndex::Last => "last",
    }
}

fn iso_date(d: time::Date) -> String {
    d.format(time::macros::format_description!("[year]-[month]-[day]"))
        .unwrap_or_default()
}

impl From<&Recurrence> for WireRecurrence {
    fn from(r: &Recurrence) -> Self {
        let days = |days: &[DayOfWeek]| days.iter().map(|d| d.name().to_owned()).collect();
        let pattern = match &r.pattern {
            RecurrencePattern::Daily { interval } => WirePattern {
                kind: "daily".into(),
                interval: *interval,
                ..WirePattern::default()
            },
            RecurrencePattern::Weekly {
                interval,
                days: d,
                first_day_of_week,
            } => WirePattern {
                kind: "weekly".into(),
                interval: *interval,
                days_of_week: days(d),
                first_day_of_week: Some(first_day_of_week.name().into()),
                ..WirePattern::default()
            },
            RecurrencePattern::AbsoluteMonthly {
                interval,
                day_of_month,
            } => WirePattern {
                kind: "absoluteMonthly".into(),
                interval: *interval,
                day_of_month: u32::from(*day_of_month),
                ..WirePattern::default()
            },
            RecurrencePattern::RelativeMonthly {
                interval,
                index,
                days: d,
            } => WirePattern {
                kind: "relativeMonthly".into(),
                interval: *interval,
                days_of_week: days(d),
                index: Some(week_index_name(*index).into()),
                ..WirePattern::default()
            },
            RecurrencePattern::AbsoluteYearly {
                interval,
                month,
                day_of_month,
            } => WirePattern {
                kind: "absoluteYearly".into(),
                interval: *interval,
                month: u32::from(u8::from(*month)),
                day_of_month: u32::from(*day_of_month),
                ..WirePattern::default()
            },
            RecurrencePattern::RelativeYearly {
                interval,
                month,
                index,
                days: d,
            } => WirePattern {
                kind: "relativeYearly".into(),
                interval: *interval,
                month: u32::from(u8::from(*month)),
                days_of_week: days(d),
                index: Some(week_index_name(*index).into()),
                ..WirePattern::default()
            },
        };
        let recurrence_time_zone = r.time_zone.as_ref().map(|z| zone_name(z).to_owned());
        let range = match &r.range {
            RecurrenceRange::EndDate {
                start_date,
                end_date,
            } => WireRange {
                kind: "endDate".into(),
                start_date: iso_date(*start_date),
                end_date: Some(iso_date(*end_date)),
                recurrence_time_zone,
                ..WireRange::default()
            },
            RecurrenceRange::NoEnd { start_date } => WireRange {
                kind: "noEnd".into(),
                start_date: iso_date(*start_date),
                recurrence_time_zone,
                ..WireRange::default()
            },
            RecurrenceRange::Numbered {
                start_date,
                occurrences,
            } => WireRange {
                kind: "numbered".into(),
                start_date: iso_date(*start_date),
                number_of_occurrences: *occurrences,
                recurrence_time_zone,
                ..WireRange::default()
            },
        };
        Self { pattern, range }
    }
}

impl WireRecurrence {
    /// The series Graph describes, checked like any other.
    pub(crate) fn into_recurrence(
        self,
        asked: Option<&TimeZone>,
    ) -> Result<Recurrence, MailboxError> {
        let bad = |what: &str, value: &str| {
            MailboxError::Protocol(format!("Graph gave a recurrence with {what} `{value}`"))
        };
        let day = |s: &str| {
            DayOfWeek::ALL
                .into_iter()
                .find(|d| d.name().eq_ignore_ascii_case(s))
                .ok_or_else(|| bad("the day", s))
        };
        let days = |list: &[String]| list.iter().map(|d| day(d)).collect::<Result<Vec<_>, _>>();
        let index = |s: Option<&str>| match s.unwrap_or("first") {
            "first" => Ok(WeekIndex::First),
            "second" => Ok(WeekIndex::Second),
            "third" => Ok(WeekIndex::Third),
            "fourth" => Ok(WeekIndex::Fourth),
            "last" => Ok(WeekIndex::Last),
            other => Err(bad("the week index", other)),
        };
        let p = &self.pattern;
        let day_of_month = || {
            u8::try_from(p.day_of_month)
                .map_err(|_| bad("the day of the month", &p.day_of_month.to_string()))
        };
        let month = || {
            u8::try_from(p.month)
                .ok()
                .and_then(|m| time::Month::try_from(m).ok())
                .ok_or_else(|| bad("the month", &p.month.to_string()))
        };
        let pattern = match p.kind.as_str() {
            "daily" => RecurrencePattern::Daily {
                interval: p.interval,
            },
            "weekly" => RecurrencePattern::Weekly {
                interval: p.interval,
                days: days(&p.days_of_week)?,
                first_day_of_week: day(p.first_day_of_week.as_deref().unwrap_or("sunday"))?,
            },
            "absoluteMonthly" => RecurrencePattern::AbsoluteMonthly {
                interval: p.interval,
                day_of_month: day_of_month()?,
            },
            "relativeMonthly" => RecurrencePattern::RelativeMonthly {
                interval: p.interval,
                index: index(p.index.as_deref())?,
                days: days(&p.days_of_week)?,
            },
            "absoluteYearly" => RecurrencePattern::AbsoluteYearly {
                interval: p.interval,
                month: month()?,
                day_of_month: day_of_month()?,
            },
            "relativeYearly" => RecurrencePattern::RelativeYearly {
                interval: p.interval,
                month: month()?,
                index: index(p.index.as_deref())?,
                days: days(&p.days_of_week)?,
            },
            other => return Err(bad("the pattern type", other)),
        };
        let r = &self.range;
        let date = |s: &str| {
            parse_local_date_time(s)
                .map(|t| t.date())
                .ok_or_else(|| bad("the date", s))
        };
        let start_date = date(&r.start_date)?;
        let range = match r.kind.as_str() {
            "endDate" => RecurrenceRange::EndDate {
                start_date,
                end_date: date(r.end_date.as_deref().unwrap_or_default())?,
            },
            "noEnd" => RecurrenceRange::NoEnd { start_date },
            "numbered" => RecurrenceRange::Numbered {
                start_date,
                occurrences: r.number_of_occurrences,
            },
            other => return Err(bad("the range type", other)),
        };
        let time_zone = match r.recurrence_time_zone.as_deref() {
            None | Some("") => None,
            Some(name) => Some(zone_from_graph(name, asked)?),
        };
        Recurrence::new(pattern, range, time_zone)
            .map_err(|e| MailboxError::Protocol(format!("Graph gave an {e}")))
    }
}

/// Graph's `showAs` (and a schedule item's `status`).
pub(crate) fn show_as(s: &str) -> ShowAs {
    match s {
        "free" => ShowAs::Free,
        "tentative" => ShowAs::Tentative,
        "busy" => ShowAs::Busy,
        "oof" => ShowAs::OutOfOffice,
        "workingElsewhere" => ShowAs::WorkingElsewhere,
        _ => ShowAs::Unknown,
    }
}

/// A digit of `getSchedule`'s `availabilityView`.
pub(crate) fn show_as_digit(c: char) -> ShowAs {
    match c {
        '0' => ShowAs::Free,
        '1' => ShowAs::Tentative,
        '2' => ShowAs::Busy,
        '3' => ShowAs::OutOfOffice,
        '4' => ShowAs::WorkingElsewhere,
        _ => ShowAs::Unknown,
    }
}

fn sensitivity(s: Option<&str>) -> Sensitivity {
    match s {
        Some("personal") => Sensitivity::Personal,
        Some("private") => Sensitivity::Private,
        Some("confidential") => Sensitivity::Confidential,
        _ => Sensitivity::Normal,
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Location {
    #[serde(default)]
    pub display_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResponseStatus {
    #[serde(default)]
    pub response: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireAttendee {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub status: Option<ResponseStatus>,
    #[serde(default)]
    pub email_address: EmailAddress,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OnlineMeeting {
    #[serde(default)]
    pub join_url: Option<String>,
}

/// The fields `events` selects.
pub(crate) const EVENT_FIELDS: &str = "id,subject,bodyPreview,start,end,isAllDay,location,attendees,organizer,\
recurrence,onlineMeeting,onlineMeetingUrl,type,seriesMasterId,isCancelled,showAs,sensitivity";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireEvent {
    pub id: String,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub body_preview: Option<String>,
    pub start: DateTimeTimeZone,
    pub end: DateTimeTimeZone,
    #[serde(default)]
    pub is_all_day: bool,
    #[serde(default)]
    pub location: Option<Location>,
    #[serde(default)]
    pub attendees: Vec<WireAttendee>,
    #[serde(default)]
    pub organizer: Option<Addressed>,
    #[serde(default)]
    pub recurrence: Option<WireRecurrence>,
    #[serde(default)]
    pub online_meeting: Option<OnlineMeeting>,
    #[serde(default)]
    pub online_meeting_url: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub series_master_id: Option<String>,
    #[serde(default)]
    pub is_cancelled: bool,
    #[serde(default)]
    pub show_as: Option<String>,
    #[serde(default)]
    pub sensitivity: Option<String>,
}

impl WireEvent {
    /// The event, its times read with the zone that was asked for (`Prefer: outlook.timezone`).
    pub(crate) fn into_event(self, asked: Option<&TimeZone>) -> Result<Event, MailboxError> {
        let e = self;
        let attendees = e
            .attendees
            .into_iter()
            .filter_map(|a| {
                let who = Addressed {
                    email_address: a.email_address,
                }
                .recipient()?;
                let kind = match a.kind.as_deref() {
                    Some("optional") => AttendeeKind::Optional,
                    Some("resource") => AttendeeKind::Resource,
                    _ => AttendeeKind::Required,
                };
                let response = match a.status.and_then(|s| s.response).as_deref() {
                    Some("organizer") => Response::Organizer,
                    Some("accepted") => Response::Accepted,
                    Some("declined") => Response::Declined,
                    Some("tentativelyAccepted") => Response::TentativelyAccepted,
                    Some("notResponded") => Response::NotResponded,
                    _ => Response::None,
                };
                Some(Attendee {
                    who,
                    kind,
                    response,
                })
            })
            .collect();
        let kind = match e.kind.as_deref() {
            Some("occurrence") => EventKind::Occurrence,
            Some("exception") => EventKind::Exception,
            Some("seriesMaster") => EventKind::SeriesMaster,
            _ => EventKind::Single,
        };
        Ok(Event {
            id: e.id,
            subject: e.subject.unwrap_or_default(),
            start: e.start.into_event_time(asked)?,
            end: e.end.into_event_time(asked)?,
            is_all_day: e.is_all_day,
            location: e
                .location
                .and_then(|l| l.display_name)
                .filter(|l| !l.is_empty()),
            organizer: e.organizer.and_then(Addressed::recipient),
            attendees,
            recurrence: e.recurrence.map(|r| r.into_recurrence(asked)).transpose()?,
            online_meeting_url: e
                .online_meeting
                .and_then(|m| m.join_url)
                .or(e.online_meeting_url),
            kind,
            series_master_id: e.series_master_id,
            is_cancelled: e.is_cancelled,
            show_as: e.show_as.as_deref().map(show_as),
            sensitivity: sensitivity(e.sensitivity.as_deref()),
            preview: e.body_preview.unwrap_or_default(),
        })
    }
}

/// The JSON of a new event, or of the fields an update changes.
pub(crate) fn event_json(d: &EventDraft) -> Value {
    let mut v = json!({});
    if let Some(s) = &d.subject {
        v["subject"] = json!(s);
    }
    if let Some(t) = &d.start {
        v["start"] = date_time_json(t);
    }
    if let Some(t) = &d.end {
        v["end"] = date_time_json(t);
    }
    if let Some(all_day) = d.is_all_day {
        v["isAllDay"] = json!(all_day);
    }
    if let Some(l) = &d.location {
        v["location"] = json!({ "displayName": l });
    }
    if let Some(b) = &d.body {
        v["body"] = json!({ "contentType": match b.kind { BodyKind::Html => "HTML", BodyKind::Text => "Text" }, "content": b.content });
    }
    if let Some(attendees) = &d.attendees {
        v["attendees"] = attendees
            .iter()
            .map(|(r, kind)| {
                let mut a = recipient_json(r);
                a["type"] = json!(match kind {
                    AttendeeKind::Required => "required",
                    AttendeeKind::Optional => "optional",
                    AttendeeKind::Resource => "resource",
                });
                a
            })
            .collect();
    }
    if let Some(r) = &d.recurrence {
        v["recurrence"] = serde_json::to_value(WireRecurrence::from(r)).unwrap_or(Value::Null);
    }
    if let Some(online) = d.online_meeting {
        v["isOnlineMeeting"] = json!(online);
        if online {
            v["onlineMeetingProvider"] = json!("teamsForBusiness");
        }
    }
    v
}

pub(crate) const CONTACT_FIELDS: &str = "id,displayName,givenName,surname,emailAddresses,businessPhones,mobilePhone,companyName,jobTitle";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireContact {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub given_name: Option<String>,
    #[serde(default)]
    pub surname: Option<String>,
    #[serde(default)]
    pub email_addresses: Vec<EmailAddress>,
    #[serde(default)]
    pub business_phones: Vec<String>,
    #[serde(default)]
    pub mobile_phone: Option<String>,
    #[serde(default)]
    pub company_name: Option<String>,
    #[serde(default)]
    pub job_title: Option<String>,
}

impl From<WireContact> for Contact {
    fn from(c: WireContact) -> Self {
        Self {
            id: c.id,
            display_name: c.display_name.unwrap_or_default(),
            given_name: c.given_name,
            surname: c.surname,
            emails: c
                .email_addresses
                .into_iter()
                .filter_map(|e| {
                    Some(Recipient {
                        name: e.name.filter(|n| !n.is_empty()),
                        address: e.address?,
                    })
                })
                .collect(),
            business_phones: c.business_phones,
            mobile_phone: c.mobile_phone,
            company: c.company_name,
            job_title: c.job_title,
        }
    }
}

pub(crate) fn contact_json(d: &ContactDraft) -> Value {
    let mut v = json!({});
    let mut set = |k: &str, val: &Option<String>| {
        if let Some(x) = val {
            v[k] = json!(x);
        }
    };
    set("displayName", &d.display_name);
    set("givenName", &d.given_name);
    set("surname", &d.surname);
    set("mobilePhone", &d.mobile_phone);
    set("companyName", &d.company);
    set("jobTitle", &d.job_title);
    if let Some(emails) = &d.emails {
        v["emailAddresses"] = emails
            .iter()
            .map(|r| match &r.name {
                Some(n) => json!({ "address": r.address, "name": n }),
                None => json!({ "address": r.address }),
            })
            .collect();
    }
    if let Some(phones) = &d.business_phones {
        v["businessPhones"] = json!(phones);
    }
    v
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ScheduleItem {
    #[serde(default)]
    pub status: Option<String>,
    pub start: DateTimeTimeZone,
    pub end: DateTimeTimeZone,
    #[serde(default)]
    pub subject: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ScheduleError {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub response_code: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ScheduleInformation {
    pub schedule_id: String,
    #[serde(default)]
    pub availability_view: String,
    #[serde(default)]
    pub schedule_items: Vec<ScheduleItem>,
    #[serde(default)]
    pub error: Option<ScheduleError>,
}

impl ScheduleInformation {
    pub(crate) fn into_free_busy(self, interval_minutes: u32) -> Result<FreeBusy, MailboxError> {
        Ok(FreeBusy {
            mailbox: self.schedule_id,
            view: self.availability_view.chars().map(show_as_digit).collect(),
            interval_minutes,
            slots: self
                .schedule_items
                .into_iter()
                .map(|i| {
                    Ok(BusySlot {
                        status: i.status.as_deref().map_or(ShowAs::Unknown, show_as),
                        start: i.start.into_event_time(None)?,
                        end: i.end.into_event_time(None)?,
                        subject: i.subject,
                    })
                })
                .collect::<Result<_, MailboxError>>()?,
            error: self.error.map(|e| {
                format!(
                    "{}{}",
                    e.response_code
                        .map(|c| format!("{c}: "))
                        .unwrap_or_default(),
                    e.message.unwrap_or_default()
                )
            }),
        })
    }
}

/// Graph's error body.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorEnvelope {
    #[serde(default)]
    pub error: ErrorDetail,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorDetail {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub inner_error: Option<InnerError>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct InnerError {
    #[serde(rename = "request-id", default)]
    pub request_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct BatchResponses {
    pub responses: Vec<BatchResponse>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct BatchResponse {
    pub id: String,
    pub status: u16,
    #[serde(default)]
    pub headers: HashMap<String, String>,
    #[serde(default)]
    pub body: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_is_strict() {
        // A collection must say `value`; `[]` and `{}` are not empty mailboxes.
        for body in ["[]", "{}", r#"{"value":{}}"#] {
            assert!(
                serde_json::from_str::<Collection<WireMessage>>(body).is_err(),
                "{body}"
            );
        }
        assert!(serde_json::from_str::<BatchResponses>("[]").is_err());
        // A time that is not RFC 3339 is an error, never a null.
        assert!(
            serde_json::from_str::<WireMessage>(r#"{"id":"1","receivedDateTime":"yesterday"}"#)
                .is_err()
        );
        let ok: WireMessage =
            serde_json::from_str(r#"{"id":"1","receivedDateTime":"2026-11-20T09:30:00.1234567Z"}"#)
                .unwrap();
        assert!(ok.received_date_time.is_some());
    }

    #[test]
    fn a_message_maps_every_field() {
        let json = r#"{"id":"AAMk1","subject":"Q3","bodyPreview":"hi","receivedDateTime":"2026-11-20T09:30:00Z",
            "sentDateTime":"2026-11-20T09:29:58Z","isRead":false,"hasAttachments":true,"importance":"high",
            "flag":{"flagStatus":"flagged"},"categories":["Red"],"from":{"emailAddress":{"name":"Megan","address":"megan@contoso.com"}},
            "toRecipients":[{"emailAddress":{"address":"adele@contoso.com"}}],"ccRecipients":[],"bccRecipients":[],
            "replyTo":[],"body":{"contentType":"html","content":"<p>hi</p>"},"internetMessageId":"<a@b>",
            "conversationId":"c1","parentFolderId":"inbox-id"}"#;
        let m: WireMessage = serde_json::from_str(json).unwrap();
        let m = m.into_message(vec![]);
        assert_eq!(m.summary.subject, "Q3");
        assert_eq!(m.summary.importance, Importance::High);
        assert_eq!(m.summary.flag, FlagStatus::Flagged);
        assert_eq!(m.summary.from.unwrap().name.as_deref(), Some("Megan"));
        assert_eq!(m.to[0].address, "adele@contoso.com");
        assert_eq!(m.body.kind, BodyKind::Html);
        assert_eq!(m.internet_message_id.as_deref(), Some("<a@b>"));
        assert_eq!(
            m.summary.received_at.unwrap().unix_timestamp(),
            1_795_167_000
        );
    }

    #[test]
    fn an_occurrence_maps_its_recurrence_and_meeting() {
        let json = r#"{"id":"e1","subject":"Standup","start":{"dateTime":"2026-11-23T09:00:00.0000000","timeZone":"Europe/Berlin"},
            "end":{"dateTime":"2026-11-23T09:15:00.0000000","timeZone":"Europe/Berlin"},"type":"occurrence","seriesMasterId":"m1",
            "attendees":[{"type":"optional","status":{"response":"tentativelyAccepted"},"emailAddress":{"address":"megan@contoso.com"}}],
            "onlineMeeting":{"joinUrl":"https://teams.example/join"}}"#;
        let e: Event = serde_json::from_str::<WireEvent>(json)
            .unwrap()
            .into_event(None)
            .unwrap();
        assert_eq!(e.kind, EventKind::Occurrence);
        assert_eq!(e.series_master_id.as_deref(), Some("m1"));
        assert_eq!(e.attendees[0].response, Response::TentativelyAccepted);
        assert_eq!(e.attendees[0].kind, AttendeeKind::Optional);
        assert_eq!(
            e.online_meeting_url.as_deref(),
            Some("https://teams.example/join")
        );
        assert_eq!(e.start.time_zone.iana(), "Europe/Berlin");
        assert_eq!(e.start.local_string(), "2026-11-23T09:00:00");
        assert_eq!(e.sensitivity, Sensitivity::Normal);
        assert_eq!(e.show_as, None);
    }

    fn zone(name: &str) -> TimeZone {
        TimeZone::parse(name).unwrap()
    }

    fn round_trip(r: &Recurrence) -> (Value, Recurrence) {
        let v = serde_json::to_value(WireRecurrence::from(r)).unwrap();
        let back: WireRecurrence = serde_json::from_value(v.clone()).unwrap();
        (v, back.into_recurrence(None).unwrap())
    }

    #[test]
    fn every_recurrence_pattern_round_trips_through_graph_json() {
        use time::Month;
        use time::macros::date;
        let days = vec![DayOfWeek::Monday, DayOfWeek::Wednesday];
        let patterns = [
            RecurrencePattern::Daily { interval: 2 },
            RecurrencePattern::Weekly {
                interval: 1,
                days: days.clone(),
                first_day_of_week: DayOfWeek::Monday,
            },
            RecurrencePattern::AbsoluteMonthly {
                interval: 1,
                day_of_month: 31,
            },
            RecurrencePattern::RelativeMonthly {
                interval: 3,
                index: WeekIndex::Last,
                days: vec![DayOfWeek::Friday],
            },
            RecurrencePattern::AbsoluteYearly {
                interval: 1,
                month: Month::February,
                day_of_month: 29,
            },
            RecurrencePattern::RelativeYearly {
                interval: 1,
                month: Month::September,
                index: WeekIndex::First,
                days,
            },
        ];
        let ranges = [
            RecurrenceRange::EndDate {
                start_date: date!(2026 - 11 - 02),
                end_date: date!(2027 - 06 - 30),
            },
            RecurrenceRange::NoEnd {
                start_date: date!(2026 - 11 - 02),
            },
            RecurrenceRange::Numbered {
                start_date: date!(2026 - 11 - 02),
                occurrences: 12,
            },
        ];
        for pattern in patterns {
            for range in &ranges {
                let r = Recurrence::new(pattern.clone(), range.clone(), Some(zone("Asia/Kolkata")))
                    .unwrap();
                let (_, back) = round_trip(&r);
                assert_eq!(back, r);
            }
        }
    }

    #[test]
    fn recurrence_json_is_graphs() {
        use time::macros::date;
        let r = Recurrence::new(
            RecurrencePattern::Weekly {
                interval: 1,
                days: vec![DayOfWeek::Monday, DayOfWeek::Wednesday],
                first_day_of_week: DayOfWeek::Sunday,
            },
            RecurrenceRange::EndDate {
                start_date: date!(2026 - 11 - 02),
                end_date: date!(2027 - 06 - 30),
            },
            Some(zone("Europe/Berlin")),
        )
        .unwrap();
        let (v, _) = round_trip(&r);
        assert_eq!(
            v,
            json!({
                "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "wednesday"], "firstDayOfWeek": "sunday"},
                "range": {"type": "endDate", "startDate": "2026-11-02", "endDate": "2027-06-30", "recurrenceTimeZone": "W. Europe Standard Time"},
            })
        );
        let draft = EventDraft {
            recurrence: Some(r),
            ..EventDraft::default()
        };
        assert_eq!(event_json(&draft)["recurrence"], v);
    }

    #[test]
    fn graphs_recurrence_answers_are_read_and_checked() {
        // As Graph answers: zeros for fields that do not apply, 0001-01-01 for no end date.
        let answer = json!({
            "pattern": {"type": "relativeMonthly", "interval": 1, "month": 0, "dayOfMonth": 0,
                "daysOfWeek": ["friday"], "firstDayOfWeek": "sunday", "index": "last"},
            "range": {"type": "noEnd", "startDate": "2026-11-27", "endDate": "0001-01-01",
                "recurrenceTimeZone": "India Standard Time", "numberOfOccurrences": 0},
        });
        let r = serde_json::from_value::<WireRecurrence>(answer)
            .unwrap()
            .into_recurrence(None)
            .unwrap();
        assert_eq!(
            r.pattern,
            RecurrencePattern::RelativeMonthly {
                interval: 1,
                index: WeekIndex::Last,
                days: vec![DayOfWeek::Friday],
            }
        );
        assert!(matches!(r.range, RecurrenceRange::NoEnd { .. }));
        assert_eq!(r.time_zone.unwrap().iana(), "Asia/Kolkata");

        let broken = json!({
            "pattern": {"type": "absoluteMonthly", "interval": 0, "dayOfMonth": 40},
            "range": {"type": "noEnd", "startDate": "2026-11-27"},
        });
        let err = serde_json::from_value::<WireRecurrence>(broken)
            .unwrap()
            .into_recurrence(None)
            .unwrap_err();
        assert!(err.to_string().contains("interval is 0"), "{err}");
        let unknown = json!({
            "pattern": {"type": "hourly", "interval": 1},
            "range": {"type": "noEnd", "startDate": "2026-11-27"},
        });
        let err = serde_json::from_value::<WireRecurrence>(unknown)
            .unwrap()
            .into_recurrence(None)
            .unwrap_err();
        assert!(err.to_string().contains("pattern type `hourly`"), "{err}");
    }

    #[test]
    fn times_go_out_as_windows_names_and_come_back_as_asked() {
        let vienna = zone("Europe/Vienna");
        let t = EventTime::new(time::macros::datetime!(2026-12-02 10:00), vienna);
        let draft = EventDraft {
            start: Some(t),
            ..EventDraft::default()
        };
        assert_eq!(
            event_json(&draft)["start"],
            json!({"dateTime": "2026-12-02T10:00:00", "timeZone": "W. Europe Standard Time"})
        );
        // Graph answers in the Windows zone; the zone asked for is kept.
        let answer = DateTimeTimeZone {
            date_time: "2026-12-02T10:00:00.0000000".into(),
            time_zone: Some("W. Europe Standard Time".into()),
        };
        assert_eq!(answer.clone().into_event_time(Some(&vienna)).unwrap(), t);
        // Asked for nothing: CLDR's zone for the Windows name.
        assert_eq!(
            answer.into_event_time(None).unwrap().time_zone.iana(),
            "Europe/Berlin"
        );
        assert_eq!(
            zone_from_graph("tzone://Microsoft/Utc", None).unwrap(),
            TimeZone::UTC
        );
        assert_eq!(
            zone_from_graph("Asia/Kolkata", None).unwrap().iana(),
            "Asia/Kolkata"
        );
        let err = zone_from_graph("Customized Time Zone", None).unwrap_err();
        assert!(err.to_string().contains("`Customized Time Zone`"), "{err}");
    }

    #[test]
    fn show_as_and_sensitivity_map_graphs_names() {
        let cases = [
            ("free", ShowAs::Free),
            ("tentative", ShowAs::Tentative),
            ("busy", ShowAs::Busy),
            ("oof", ShowAs::OutOfOffice),
            ("workingElsewhere", ShowAs::WorkingElsewhere),
            ("unknown", ShowAs::Unknown),
            ("something new", ShowAs::Unknown),
        ];
        for (name, expected) in cases {
            assert_eq!(show_as(name), expected, "{name}");
        }
        let digits: Vec<ShowAs> = "012345".chars().map(show_as_digit).collect();
        assert_eq!(
            digits,
            [
                ShowAs::Free,
                ShowAs::Tentative,
                ShowAs::Busy,
                ShowAs::OutOfOffice,
                ShowAs::WorkingElsewhere,
                ShowAs::Unknown
            ]
        );
        let json = r#"{"id":"e2","start":{"dateTime":"2026-11-23T09:00:00","timeZone":"UTC"},
            "end":{"dateTime":"2026-11-23T10:00:00","timeZone":"UTC"},"showAs":"oof","sensitivity":"private"}"#;
        let e = serde_json::from_str::<WireEvent>(json)
            .unwrap()
            .into_event(None)
            .unwrap();
        assert_eq!(e.show_as, Some(ShowAs::OutOfOffice));
        assert_eq!(e.sensitivity, Sensitivity::Private);
        let out = serde_json::to_value(&e).unwrap();
        assert_eq!(out["show_as"], "out-of-office");
        assert_eq!(out["sensitivity"], "private");
        assert_eq!(
            out["start"],
            json!({"date_time": "2026-11-23T09:00:00", "time_zone": "UTC"})
        );
    }

    #[test]
    fn well_known_folders_have_graphs_names() {
        assert_eq!(folder_name(WellKnownFolder::SentItems), "sentitems");
        assert_eq!(folder_name(WellKnownFolder::JunkEmail), "junkemail");
        for f in WellKnownFolder::ALL {
            assert_eq!(
                crate::mailbox::FolderRef::parse(f.name()),
                crate::mailbox::FolderRef::WellKnown(f)
            );
        }
    }
}
