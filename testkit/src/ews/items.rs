//! Items: IDs, shapes, messages as `t:Message`, FindItem (paging, restrictions, sort order),
//! GetItem and GetAttachment. Calendar items and contacts are written by their own modules.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use time::OffsetDateTime;
use time::macros::format_description;

use super::dispatch::Op;
use super::folders::{self, FolderKind};
use super::ids::{Id, Kind, change_key};
use super::restrict::{Fields as _, matches, sort};
use super::soap::{self, EwsError, EwsResult};
use super::xml::{Element, Xml};
use super::{calendar, contacts};
use crate::mailstore::Mailboxes;
use crate::mailstore::content::{Address, BodyType, FlagStatus, Importance};
use crate::mailstore::mailbox::{Body, Mailbox, Message};
use crate::mailstore::mime;

/// `2026-11-02T09:00:00Z`
pub(crate) fn fmt_time(t: OffsetDateTime) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(fmt)
        .unwrap_or_default()
}

/// Parses an `xs:dateTime` (with `Z`, an offset, or none: UTC).
pub(crate) fn parse_time(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Some(t.to_offset(time::UtcOffset::UTC));
    }
    crate::mailstore::recurrence::parse_local(s).map(time::PrimitiveDateTime::assume_utc)
}

pub(crate) fn bool_text(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// What an item ID names, in a mailbox the caller may open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ItemRef {
    Message(u64),
    Event(u64),
    Occurrence(u64, i64),
    Contact(u64),
}

/// A `t:ItemId` (or any element with `Id`) as (mailbox, item), after the access checks;
/// `ErrorItemNotFound` when the mailbox has no such item.
pub(crate) fn resolve(
    op: &Op<'_>,
    store: &Mailboxes,
    el: &Element,
) -> EwsResult<(String, ItemRef)> {
    let id = Id::decode(el.attr("Id").unwrap_or_default())?;
    let address = op.mailbox(Some(&id.mailbox))?;
    let mb = store
        .mailbox(&address)
        .ok_or_else(EwsError::item_not_found)?;
    let item = match id.kind {
        Kind::Message if mb.messages.contains_key(&id.seq) => ItemRef::Message(id.seq),
        Kind::Event if mb.events.contains_key(&id.seq) => ItemRef::Event(id.seq),
        Kind::Occurrence => {
            let event = mb
                .events
                .get(&id.seq)
                .ok_or_else(EwsError::item_not_found)?;
            let start = OffsetDateTime::from_unix_timestamp(id.sub)
                .map_err(|_| EwsError::malformed_id())?;
            if !event.is_occurrence(start) {
                return Err(EwsError::item_not_found());
            }
            ItemRef::Occurrence(id.seq, id.sub)
        }
        Kind::Contact if mb.contacts.contains_key(&id.seq) => ItemRef::Contact(id.seq),
        Kind::Folder | Kind::Attachment => return Err(EwsError::malformed_id()),
        _ => return Err(EwsError::item_not_found()),
    };
    Ok((address, item))
}

/// `BaseShape`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Base {
    IdOnly,
    Default,
    All,
}

/// `BodyType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WantBody {
    Best,
    Html,
    Text,
}

/// An `ItemShape` (or `ResponseShape`).
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    pub base: Base,
    pub body: WantBody,
    pub mime: bool,
    /// `FieldURI`s of `AdditionalProperties` (e.g. `item:Subject`).
    pub additional: Vec<String>,
    /// FindItem never returns bodies, attachments or MIME.
    pub find: bool,
}

impl Shape {
    pub(crate) fn parse(el: Option<&Element>, find: bool) -> Self {
        let base = match el.and_then(|e| e.text_at(&["BaseShape"])) {
            Some("IdOnly") => Base::IdOnly,
            Some("AllProperties") => Base::All,
            _ => Base::Default,
        };
        let body = match el.and_then(|e| e.text_at(&["BodyType"])) {
            Some("HTML") => WantBody::Html,
            Some("Text") => WantBody::Text,
            _ => WantBody::Best,
        };
        let mime = el.and_then(|e| e.text_at(&["IncludeMimeContent"])) == Some("true");
        let additional = el
            .and_then(|e| e.child("AdditionalProperties"))
            .map(|a| {
                a.children
                    .iter()
                    .filter_map(|p| p.attr("FieldURI"))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Self {
            base,
            body,
            mime,
            additional,
            find,
        }
    }

    /// Whether a property (by FieldURI) is written: in `AllProperties`, in `Default` when it
    /// is a default one, or asked for.
    pub(crate) fn has(&self, uri: &str, default: bool) -> bool {
        let heavy = matches!(uri, "item:Body" | "item:Attachments" | "item:MimeContent");
        if self.find && heavy {
            return false;
        }
        self.additional.iter().any(|a| a.eq_ignore_ascii_case(uri))
            || match self.base {
                Base::IdOnly => false,
                Base::Default => default,
                Base::All => uri != "item:MimeContent",
            }
    }
}

/// `t:Mailbox`-shaped content (Name, EmailAddress, RoutingType, MailboxType).
pub(crate) fn mailbox_xml(x: &mut Xml, tag: &str, a: &Address, internal: bool) {
    x.open(tag, &[]);
    if !a.name.is_empty() {
        x.leaf("t:Name", &a.name);
    }
    x.leaf("t:EmailAddress", &a.address);
    x.leaf("t:RoutingType", "SMTP");
    x.leaf("t:MailboxType", if internal { "Mailbox" } else { "OneOff" });
    x.close(tag);
}

pub(crate) fn recipients_xml(op: &Op<'_>, x: &mut Xml, tag: &str, list: &[Address]) {
    if list.is_empty() {
        return;
    }
    x.open(tag, &[]);
    for a in list {
        mailbox_xml(x, "t:Mailbox", a, op.dir.recipient(&a.address).is_some());
    }
    x.close(tag);
}

/// A body in the type asked for.
pub(crate) fn body_xml(x: &mut Xml, body: &Body, want: WantBody) {
    let (kind, text) = match (want, body.kind) {
        (WantBody::Text, BodyType::Html) => ("Text", mime::html_to_text(&body.content)),
        (WantBody::Html, BodyType::Text) => ("HTML", mime::text_to_html(&body.content)),
        (_, BodyType::Html) => ("HTML", body.content.clone()),
        (_, BodyType::Text) => ("Text", body.content.clone()),
    };
    x.leaf_with(
        "t:Body",
        &[("BodyType", kind), ("IsTruncated", "false")],
        &text,
    );
}

pub(crate) fn importance_name(i: Importance) -> &'static str {
    match i {
        Importance::Low => "Low",
        Importance::Normal => "Normal",
        Importance::High => "High",
    }
}

fn display_list(list: &[Address]) -> String {
    list.iter()
        .map(|a| {
            if a.name.is_empty() {
                a.address.clone()
            } else {
                a.name.clone()
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub(crate) fn categories_xml(x: &mut Xml, categories: &[String]) {
    if categories.is_empty() {
        return;
    }
    x.open("t:Categories", &[]);
    for c in categories {
        x.leaf("t:String", c);
    }
    x.close("t:Categories");
}

pub(crate) fn message_size(m: &Message) -> usize {
    1024 + m.body.content.len() + m.attachments.iter().map(|a| a.bytes.len()).sum::<usize>()
}

pub(crate) fn attachment_id(mb: &Mailbox, message: u64, attachment: u64) -> String {
    Id::new(Kind::Attachment, &mb.address, message)
        .with_sub(i64::try_from(attachment).unwrap_or(0))
        .encode()
}

/// `t:Message` in `shape`.
pub(crate) fn message_xml(op: &Op<'_>, mb: &Mailbox, m: &Message, shape: &Shape) -> String {
    let s = shape;
    let mut x = Xml::new();
    x.open("t:Message", &[]);
    if (s.mime && !s.find) || s.has("item:MimeContent", false) {
        x.leaf_with(
            "t:MimeContent",
            &[("CharacterSet", "UTF-8")],
            &STANDARD.encode(mime::render(m)),
        );
    }
    x.raw(&soap::id_element(
        "ItemId",
        &Id::new(Kind::Message, &mb.address, m.seq).encode(),
        &change_key(Kind::Message, m.version),
    ));
    if s.has("item:ParentFolderId", true) {
        x.raw(&folders::folder_id_xml("ParentFolderId", mb, m.folder));
    }
    if s.has("item:ItemClass", true) {
        x.leaf("t:ItemClass", "IPM.Note");
    }
    if s.has("item:Subject", true) {
        x.leaf("t:Subject", &m.subject);
    }
    if s.has("item:Sensitivity", true) {
        x.leaf("t:Sensitivity", "Normal");
    }
    if s.has("item:Body", true) {
        body_xml(&mut x, &m.body, s.body);
    }
    if s.has("item:Attachments", true) && !m.attachments.is_empty() {
        x.open("t:Attachments", &[]);
        for a in &m.attachments {
            attachment_xml(&mut x, mb, m.seq, a, false);
        }
        x.close("t:Attachments");
    }
    if s.has("item:DateTimeReceived", true) {
        x.leaf("t:DateTimeReceived", &fmt_time(m.received));
    }
    if s.has("item:Size", true) {
        x.leaf("t:Size", &message_size(m).to_string());
    }
    if s.has("item:Categories", true) {
        categories_xml(&mut x, &m.categories);
    }
    if s.has("item:Importance", true) {
        x.leaf("t:Importance", importance_name(m.importance));
    }
    if s.has("item:InReplyTo", false)
        && let Some(r) = &m.in_reply_to
    {
        x.leaf("t:InReplyTo", r);
    }
    if s.has("item:IsSubmitted", false) {
        x.leaf("t:IsSubmitted", bool_text(m.sent.is_some() && m.is_draft));
    }
    if s.has("item:IsDraft", true) {
        x.leaf("t:IsDraft", bool_text(m.is_draft));
    }
    if s.has("item:IsFromMe", false) {
        let me = m
            .from
            .as_ref()
            .is_some_and(|f| f.address.eq_ignore_ascii_case(&mb.address));
        x.leaf("t:IsFromMe", bool_text(me));
    }
    if s.has("item:InternetMessageHeaders", false) {
        x.open("t:InternetMessageHeaders", &[]);
        for (name, value) in mime::headers(m) {
            x.leaf_with("t:InternetMessageHeader", &[("HeaderName", &name)], &value);
        }
        x.close("t:InternetMessageHeaders");
    }
    if s.has("item:DateTimeSent", true)
        && let Some(sent) = m.sent
    {
        x.leaf("t:DateTimeSent", &fmt_time(sent));
    }
    if s.has("item:DateTimeCreated", true) {
        x.leaf("t:DateTimeCreated", &fmt_time(m.created));
    }
    if s.has("item:DisplayCc", true) {
        x.leaf("t:DisplayCc", &display_list(&m.cc));
    }
    if s.has("item:DisplayTo", true) {
        x.leaf("t:DisplayTo", &display_list(&m.to));
    }
    if s.has("item:HasAttachments", true) {
        x.leaf("t:HasAttachments", bool_text(m.has_attachments()));
    }
    if s.has("item:LastModifiedTime", false) {
        x.leaf("t:LastModifiedTime", &fmt_time(m.modified));
    }
    if s.has("item:ConversationId", false) {
        x.empty(
            "t:ConversationId",
            &[("Id", &STANDARD.encode(m.conversation_id.as_bytes()))],
        );
    }
    if s.has("item:Flag", false) {
        x.open("t:Flag", &[]);
        x.leaf(
            "t:FlagStatus",
            match m.flag {
                FlagStatus::NotFlagged => "NotFlagged",
                FlagStatus::Flagged => "Flagged",
                FlagStatus::Complete => "Complete",
            },
        );
        x.close("t:Flag");
    }
    if s.has("message:Sender", true)
        && let Some(a) = m.sender.as_ref().or(m.from.as_ref())
    {
        x.open("t:Sender", &[]);
        mailbox_xml(
            &mut x,
            "t:Mailbox",
            a,
            op.dir.recipient(&a.address).is_some(),
        );
        x.close("t:Sender");
    }
    if s.has("message:ToRecipients", true) {
        recipients_xml(op, &mut x, "t:ToRecipients", &m.to);
    }
    if s.has("message:CcRecipients", true) {
        recipients_xml(op, &mut x, "t:CcRecipients", &m.cc);
    }
    if s.has("message:BccRecipients", false) {
        recipients_xml(op, &mut x, "t:BccRecipients", &m.bcc);
    }
    if s.has("message:ConversationTopic", false) {
        x.leaf("t:ConversationTopic", &m.subject);
    }
    if s.has("message:From", true)
        && let Some(a) = &m.from
    {
        x.open("t:From", &[]);
        mailbox_xml(
            &mut x,
            "t:Mailbox",
            a,
            op.dir.recipient(&a.address).is_some(),
        );
        x.close("t:From");
    }
    if s.has("message:InternetMessageId", true) {
        x.leaf("t:InternetMessageId", &m.internet_message_id);
    }
    if s.has("message:IsRead", true) {
        x.leaf("t:IsRead", bool_text(m.is_read));
    }
    if s.has("message:ReplyTo", false) {
        recipients_xml(op, &mut x, "t:ReplyTo", &m.reply_to);
    }
    x.close("t:Message");
    x.finish()
}

/// `t:FileAttachment`, with its content when `content`.
pub(crate) fn attachment_xml(
    x: &mut Xml,
    mb: &Mailbox,
    message: u64,
    a: &crate::mailstore::mailbox::Attachment,
    content: bool,
) {
    x.open("t:FileAttachment", &[]);
    x.empty(
        "t:AttachmentId",
        &[("Id", &attachment_id(mb, message, a.seq))],
    );
    x.leaf("t:Name", &a.name);
    x.leaf("t:ContentType", &a.content_type);
    if let Some(cid) = &a.content_id {
        x.leaf("t:ContentId", cid);
    }
    x.leaf("t:Size", &a.bytes.len().to_string());
    x.leaf("t:LastModifiedTime", &fmt_time(a.modified));
    x.leaf("t:IsInline", bool_text(a.is_inline));
    x.leaf("t:IsContactPhoto", "false");
    if content {
        x.leaf("t:Content", &STANDARD.encode(&a.bytes));
    }
    x.close("t:FileAttachment");
}

/// Any item in `shape`.
pub(crate) fn item_xml(
    op: &Op<'_>,
    mb: &Mailbox,
    item: ItemRef,
    shape: &Shape,
) -> EwsResult<String> {
    match item {
        ItemRef::Message(seq) => {
            let m = mb.messages.get(&seq).ok_or_else(EwsError::item_not_found)?;
            Ok(message_xml(op, mb, m, shape))
        }
        ItemRef::Event(seq) => {
            let e = mb.events.get(&seq).ok_or_else(EwsError::item_not_found)?;
            Ok(calendar::event_xml(op, mb, e, None, shape))
        }
        ItemRef::Occurrence(seq, start) => {
            let e = mb.events.get(&seq).ok_or_else(EwsError::item_not_found)?;
            let start =
                OffsetDateTime::from_unix_timestamp(start).map_err(|_| EwsError::malformed_id())?;
            Ok(calendar::event_xml(op, mb, e, Some(start), shape))
        }
        ItemRef::Contact(seq) => {
            let c = mb.contacts.get(&seq).ok_or_else(EwsError::item_not_found)?;
            Ok(contacts::contact_xml(mb, c, shape))
        }
    }
}

pub(crate) fn get_item(op: &Op<'_>, store: &mut Mailboxes, body: &Element) -> EwsResult<String> {
    let shape = Shape::parse(body.child("ItemShape"), false);
    let ids = body
        .child("ItemIds")
        .ok_or_else(|| EwsError::schema("'ItemIds' is missing"))?;
    let mut results = Vec::new();
    for el in &ids.children {
        results.push(resolve(op, store, el).and_then(|(address, item)| {
            let mb = store
                .mailbox(&address)
                .ok_or_else(EwsError::item_not_found)?;
            Ok(format!(
                "<m:Items>{}</m:Items>",
                item_xml(op, mb, item, &shape)?
            ))
        }));
    }
    Ok(soap::response(
        "GetItem",
        "GetItemResponseMessage",
        &results,
    ))
}

pub(crate) fn get_attachment(
    op: &Op<'_>,
    store: &mut Mailboxes,
    body: &Element,
) -> EwsResult<String> {
    let ids = body
        .child("AttachmentIds")
        .ok_or_else(|| EwsError::schema("'AttachmentIds' is missing"))?;
    let mut results = Vec::new();
    for el in &ids.children {
        results.push((|| {
            let id = Id::decode(el.attr("Id").unwrap_or_default())?;
            if id.kind != Kind::Attachment {
                return Err(EwsError::malformed_id());
            }
            let address = op.mailbox(Some(&id.mailbox))?;
            let mb = store
                .mailbox(&address)
                .ok_or_else(EwsError::item_not_found)?;
            let m = mb.messages.get(&id.seq).ok_or_else(|| {
                EwsError::new(
                    "ErrorInvalidAttachmentId",
                    "The attachment ID is not valid.",
                )
            })?;
            let a = m
                .attachments
                .iter()
                .find(|a| i64::try_from(a.seq).ok() == Some(id.sub))
                .ok_or_else(|| {
                    EwsError::new(
                        "ErrorInvalidAttachmentId",
                        "The attachment ID is not valid.",
                    )
                })?;
            let mut x = Xml::new();
            x.open("m:Attachments", &[]);
            attachment_xml(&mut x, mb, m.seq, a, true);
            x.close("m:Attachments");
            Ok(x.finish())
        })());
    }
    Ok(soap::response(
        "GetAttachment",
        "GetAttachmentResponseMessage",
        &results,
    ))
}

/// A view's paging: `(offset, max)`.
pub(crate) fn paging(body: &Element) -> (usize, Option<usize>, bool) {
    let view = body.child("IndexedPageItemView");
    let max = view
        .and_then(|v| v.attr("MaxEntriesReturned"))
        .and_then(|v| v.parse::<usize>().ok());
    let offset = view
        .and_then(|v| v.attr("Offset"))
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let from_end = view.and_then(|v| v.attr("BasePoint")) == Some("End");
    (offset, max, from_end)
}

/// `m:RootFolder` with a page of already written items.
pub(crate) fn root_folder(total: usize, offset: usize, page: &[String]) -> String {
    let end = offset + page.len();
    let mut x = Xml::new();
    x.open(
        "m:RootFolder",
        &[
            ("IndexedPagingOffset", &end.to_string()),
            ("TotalItemsInView", &total.to_string()),
            ("IncludesLastItemInRange", bool_text(end >= total)),
        ],
    );
    x.open("t:Items", &[]);
    for item in page {
        x.raw(item);
    }
    x.close("t:Items");
    x.close("m:RootFolder");
    x.finish()
}

pub(crate) fn find_item(op: &Op<'_>, store: &mut Mailboxes, body: &Element) -> EwsResult<String> {
    let shape = Shape::parse(body.child("ItemShape"), true);
    let (offset, max, from_end) = paging(body);
    let restriction = body.child("Restriction").and_then(|r| r.children.first());
    let orders: Vec<(String, bool)> = body
        .child("SortOrder")
        .map(|s| {
            s.all("FieldOrder")
                .filter_map(|f| {
                    let uri = f.child("FieldURI")?.attr("FieldURI")?.to_string();
                    Some((uri, f.attr("Order") != Some("Ascending")))
                })
                .collect()
        })
        .unwrap_or_default();
    let parents = body
        .child("ParentFolderIds")
        .ok_or_else(|| EwsError::schema("'ParentFolderIds' is missing"))?;
    let mut results = Vec::new();
    for parent in &parents.children {
        results.push((|| {
            let (address, seq) = folders::resolve(op, store, parent)?;
            let mb = store
                .mailbox(&address)
                .ok_or_else(EwsError::folder_not_found)?;
            match folders::kind_of(mb, seq) {
                Some(FolderKind::Contacts) => {
                    return contacts::find(mb, &shape, restriction, &orders, offset, max);
                }
                Some(FolderKind::Calendar) => {
                    return calendar::find_masters(
                        op,
                        mb,
                        &shape,
                        restriction,
                        &orders,
                        offset,
                        max,
                    );
                }
                _ => {}
            }
            let mut found: Vec<&Message> = Vec::new();
            for m in mb.messages_by_received(true).filter(|m| m.folder == seq) {
                if let Some(r) = restriction
                    && !matches(m, r)?
                {
                    continue;
                }
                found.push(m);
            }
            if found.is_empty() {
                // The sort order is checked even when nothing matched.
                for (uri, _) in &orders {
                    Message::blank(op.now, String::new()).field(uri)?;
                }
            }
            sort(&mut found, &orders)?;
            let total = found.len();
            if from_end {
                found.reverse();
            }
            let page: Vec<String> = found
                .into_iter()
                .skip(offset)
                .take(max.unwrap_or(usize::MAX))
                .map(|m| message_xml(op, mb, m, &shape))
                .collect();
            Ok(root_folder(total, offset, &page))
        })());
    }
    Ok(soap::response(
        "FindItem",
        "FindItemResponseMessage",
        &results,
    ))
}
