//! Microsoft Graph v1.0 JSON, as serde types, and their mapping to the mailbox model.
//! Pure: no I/O.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::mailbox::{
    Attendee, AttendeeKind, Body, BodyKind, BusySlot, BusyStatus, Contact, ContactDraft, Event,
    EventDraft, EventKind, EventTime, FlagStatus, Folder, FreeBusy, Importance, Message,
    MessageSummary, NewAttachment, NewMessage, Recipient, Recurrence, Response,
};

#[derive(Debug, Deserialize)]
pub(crate) struct Collection<T> {
    #[serde(default = "Vec::new")]
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

fn parse_time(s: Option<&str>) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s?, &Rfc3339).ok()
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
    #[serde(default)]
    pub received_date_time: Option<String>,
    #[serde(default)]
    pub sent_date_time: Option<String>,
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
            received_at: parse_time(self.received_date_time.as_deref()),
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
            sent_at: parse_time(rest.sent.as_deref()),
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
    sent: Option<String>,
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

impl From<DateTimeTimeZone> for EventTime {
    fn from(t: DateTimeTimeZone) -> Self {
        Self {
            date_time: t.date_time,
            time_zone: t.time_zone.unwrap_or_else(|| "UTC".into()),
        }
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
recurrence,onlineMeeting,onlineMeetingUrl,type,seriesMasterId,isCancelled,showAs";

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
    pub recurrence: Option<Recurrence>,
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
}

impl From<WireEvent> for Event {
    fn from(e: WireEvent) -> Self {
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
        Self {
            id: e.id,
            subject: e.subject.unwrap_or_default(),
            start: e.start.into(),
            end: e.end.into(),
            is_all_day: e.is_all_day,
            location: e
                .location
                .and_then(|l| l.display_name)
                .filter(|l| !l.is_empty()),
            organizer: e.organizer.and_then(Addressed::recipient),
            attendees,
            recurrence: e.recurrence,
            online_meeting_url: e
                .online_meeting
                .and_then(|m| m.join_url)
                .or(e.online_meeting_url),
            kind,
            series_master_id: e.series_master_id,
            is_cancelled: e.is_cancelled,
            show_as: e.show_as,
            preview: e.body_preview.unwrap_or_default(),
        }
    }
}

/// The JSON of a new event, or of the fields an update changes.
pub(crate) fn event_json(d: &EventDraft) -> Value {
    let mut v = json!({});
    if let Some(s) = &d.subject {
        v["subject"] = json!(s);
    }
    if let Some(t) = &d.start {
        v["start"] = json!({ "dateTime": t.date_time, "timeZone": t.time_zone });
    }
    if let Some(t) = &d.end {
        v["end"] = json!({ "dateTime": t.date_time, "timeZone": t.time_zone });
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
        v["recurrence"] = serde_json::to_value(r).unwrap_or(Value::Null);
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

fn busy(status: Option<&str>) -> BusyStatus {
    match status {
        Some("free") => BusyStatus::Free,
        Some("tentative") => BusyStatus::Tentative,
        Some("busy") => BusyStatus::Busy,
        Some("oof") => BusyStatus::OutOfOffice,
        Some("workingElsewhere") => BusyStatus::WorkingElsewhere,
        _ => BusyStatus::Unknown,
    }
}

impl ScheduleInformation {
    pub(crate) fn into_free_busy(self, interval_minutes: u32) -> FreeBusy {
        FreeBusy {
            mailbox: self.schedule_id,
            view: self
                .availability_view
                .chars()
                .map(BusyStatus::from_digit)
                .collect(),
            interval_minutes,
            slots: self
                .schedule_items
                .into_iter()
                .map(|i| BusySlot {
                    status: busy(i.status.as_deref()),
                    start: i.start.into(),
                    end: i.end.into(),
                    subject: i.subject,
                })
                .collect(),
            error: self.error.map(|e| {
                format!(
                    "{}{}",
                    e.response_code
                        .map(|c| format!("{c}: "))
                        .unwrap_or_default(),
                    e.message.unwrap_or_default()
                )
            }),
        }
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
    #[serde(default)]
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
        let e: Event = serde_json::from_str::<WireEvent>(json).unwrap().into();
        assert_eq!(e.kind, EventKind::Occurrence);
        assert_eq!(e.series_master_id.as_deref(), Some("m1"));
        assert_eq!(e.attendees[0].response, Response::TentativelyAccepted);
        assert_eq!(e.attendees[0].kind, AttendeeKind::Optional);
        assert_eq!(
            e.online_meeting_url.as_deref(),
            Some("https://teams.example/join")
        );
        assert_eq!(e.start.time_zone, "Europe/Berlin");
    }
}
