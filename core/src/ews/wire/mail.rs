//! Mail: `FindItem` over a folder with the neutral [`MessageQuery`]'s filters, `GetItem`
//! (body as text or HTML, MIME), `CreateItem` (saved, never sent in the same call: a send is
//! `CreateItem` with `SaveOnly` and then `SendItem` by ID, so a retry never delivers twice),
//! replies and forwards, `UpdateItem` for the read flag, attachments (`GetAttachment`,
//! `CreateAttachment`).

use base64::Engine as _;
use time::OffsetDateTime;

use super::WireError;
use super::envelope::{
    DistinguishedFolder, FolderSpec, ItemId, RequestContext, RequestVersion, ews_request,
};
use super::items::{
    FoundItems, Shape, decode_found, read_item_id, read_recipients, read_single, read_strings,
    text_bool, write_item_ids, write_mailbox, write_page, write_recipients, write_target_folder,
};
use super::response::{Decoded, decode, parse_date_time, parse_num};
use super::xml::{Elem, Ns, Reader, Writer};
use crate::mailbox::{
    AttachmentInfo, Body, BodyKind, FlagStatus, Importance, Message, MessageQuery, MessageSummary,
    NewAttachment, NewMessage, Recipient,
};

/// PR_SENDER_SMTP_ADDRESS: filtering on a sender's address (`message:From` is not searchable).
const SENDER_SMTP: (&str, &str) = ("0x5D01", "String");

/// The properties of a message list.
fn summary_fields(v: RequestVersion) -> &'static [&'static str] {
    const BASE: [&str; 9] = [
        "item:Subject",
        "message:From",
        "item:DateTimeReceived",
        "message:IsRead",
        "item:HasAttachments",
        "item:Importance",
        "item:Categories",
        "item:ParentFolderId",
        "message:InternetMessageId",
    ];
    const WITH_2013: [&str; 11] = [
        "item:Subject",
        "message:From",
        "item:DateTimeReceived",
        "message:IsRead",
        "item:HasAttachments",
        "item:Importance",
        "item:Categories",
        "item:ParentFolderId",
        "message:InternetMessageId",
        "item:Flag",
        "item:Preview",
    ];
    if v.has_2013_properties() {
        &WITH_2013
    } else {
        &BASE
    }
}

pub(super) fn write_summary_shape(w: &mut Writer, ctx: &RequestContext) {
    Shape {
        base: "IdOnly",
        include_mime: false,
        body_type: None,
        fields: summary_fields(ctx.version),
        extended: &[],
    }
    .write(w, "m:ItemShape");
}

/// `FindItem` over one folder: a page of message summaries, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindMessages {
    pub folder: FolderSpec,
    pub unread_only: bool,
    /// Sender address contains this (case-insensitive).
    pub from: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub with_attachments: bool,
    pub offset: u32,
    /// Capped at 1,000.
    pub max: u32,
}

impl FindMessages {
    /// The query's filters over `folder` (EWS lists one folder at a time; `query.folder` is
    /// for the caller to map with [`FolderSpec::from_ref`]).
    pub fn new(folder: FolderSpec, query: &MessageQuery, offset: u32) -> Self {
        Self {
            folder,
            unread_only: query.unread_only,
            from: query.from.clone().filter(|f| !f.is_empty()),
            since: query.since,
            with_attachments: query.with_attachments,
            offset,
            max: if query.page_size == 0 {
                50
            } else {
                query.page_size
            },
        }
    }

    fn write(&self, w: &mut Writer, ctx: &RequestContext) {
        w.open("m:FindItem", &[("Traversal", "Shallow")]);
        write_summary_shape(w, ctx);
        write_page(w, "m:IndexedPageItemView", self.offset, self.max);
        let count = usize::from(self.unread_only)
            + usize::from(self.since.is_some())
            + usize::from(self.with_attachments)
            + usize::from(self.from.is_some());
        if count > 0 {
            w.open("m:Restriction", &[]);
            if count > 1 {
                w.open("t:And", &[]);
            }
            if self.unread_only {
                compare(w, "t:IsEqualTo", "message:IsRead", "false");
            }
            if let Some(since) = self.since {
                let since = super::envelope::utc(since);
                compare(
                    w,
                    "t:IsGreaterThanOrEqualTo",
                    "item:DateTimeReceived",
                    &since,
                );
            }
            if self.with_attachments {
                compare(w, "t:IsEqualTo", "item:HasAttachments", "true");
            }
            if let Some(from) = &self.from {
                w.open(
                    "t:Contains",
                    &[
                        ("ContainmentMode", "Substring"),
                        ("ContainmentComparison", "IgnoreCase"),
                    ],
                );
                w.empty(
                    "t:ExtendedFieldURI",
                    &[
                        ("PropertyTag", SENDER_SMTP.0),
                        ("PropertyType", SENDER_SMTP.1),
                    ],
                );
                w.empty("t:Constant", &[("Value", from)]);
                w.close("t:Contains");
            }
            if count > 1 {
                w.close("t:And");
            }
            w.close("m:Restriction");
        }
        w.open("m:SortOrder", &[]);
        w.open("t:FieldOrder", &[("Order", "Descending")]);
        w.empty("t:FieldURI", &[("FieldURI", "item:DateTimeReceived")]);
        w.close("t:FieldOrder");
        w.close("m:SortOrder");
        w.open("m:ParentFolderIds", &[]);
        self.folder.write(w, ctx);
        w.close("m:ParentFolderIds");
        w.close("m:FindItem");
    }
}

/// `<t:IsEqualTo><t:FieldURI/><t:FieldURIOrConstant><t:Constant Value/></…></t:IsEqualTo>`
pub(super) fn compare(w: &mut Writer, op: &'static str, field: &'static str, value: &str) {
    w.open(op, &[]);
    w.empty("t:FieldURI", &[("FieldURI", field)]);
    w.open("t:FieldURIOrConstant", &[]);
    w.empty("t:Constant", &[("Value", value)]);
    w.close("t:FieldURIOrConstant");
    w.close(op);
}

/// `GetItem` for whole messages, or (with `mime_only`) only their MIME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetMessages {
    pub ids: Vec<ItemId>,
    /// The body as text or HTML; `None`: as stored.
    pub body: Option<BodyKind>,
    pub include_mime: bool,
    /// Only the ID and MIME (`IdOnly` + `IncludeMimeContent`), for export.
    pub mime_only: bool,
}

impl GetMessages {
    pub fn full(ids: Vec<ItemId>, body: Option<BodyKind>) -> Self {
        Self {
            ids,
            body,
            include_mime: false,
            mime_only: false,
        }
    }

    pub fn mime(ids: Vec<ItemId>) -> Self {
        Self {
            ids,
            body: None,
            include_mime: true,
            mime_only: true,
        }
    }

    fn write(&self, w: &mut Writer, ctx: &RequestContext) {
        w.open("m:GetItem", &[]);
        let mut fields: Vec<&'static str> = Vec::new();
        if !self.mime_only {
            fields.extend_from_slice(summary_fields(ctx.version));
            fields.extend_from_slice(&[
                "message:ToRecipients",
                "message:CcRecipients",
                "message:BccRecipients",
                "message:ReplyTo",
                "item:DateTimeSent",
                "item:Body",
                "item:Attachments",
                "item:ConversationId",
            ]);
        }
        Shape {
            base: "IdOnly",
            include_mime: self.include_mime,
            body_type: (!self.mime_only).then_some(match self.body {
                None => "Best",
                Some(BodyKind::Html) => "HTML",
                Some(BodyKind::Text) => "Text",
            }),
            fields: &fields,
            extended: &[],
        }
        .write(w, "m:ItemShape");
        write_item_ids(w, "m:ItemIds", &self.ids);
        w.close("m:GetItem");
    }
}

fn importance(i: Importance) -> &'static str {
    match i {
        Importance::Low => "Low",
        Importance::Normal => "Normal",
        Importance::High => "High",
    }
}

pub(super) fn write_body(w: &mut Writer, name: &'static str, body: &Body) {
    let kind = match body.kind {
        BodyKind::Text => "Text",
        BodyKind::Html => "HTML",
    };
    w.leaf_with(name, &[("BodyType", kind)], &body.content);
}

pub(super) fn write_file_attachment(w: &mut Writer, a: &NewAttachment) {
    w.open("t:FileAttachment", &[]);
    w.leaf("t:Name", &a.name);
    w.leaf("t:ContentType", &a.content_type);
    w.leaf(
        "t:Content",
        &base64::engine::general_purpose::STANDARD.encode(&a.content),
    );
    w.close("t:FileAttachment");
}

/// `CreateItem` of a message with `MessageDisposition="SaveOnly"` (in Drafts unless another
/// folder is named); send it with [`SendItems`]. Attachments go inline; large ones are better
/// added afterwards with [`CreateAttachments`].
#[derive(Debug, Clone, PartialEq)]
pub struct CreateMessage {
    pub message: NewMessage,
    pub folder: Option<FolderSpec>,
}

impl CreateMessage {
    fn write(&self, w: &mut Writer, ctx: &RequestContext) {
        let m = &self.message;
        w.open("m:CreateItem", &[("MessageDisposition", "SaveOnly")]);
        let folder = self
            .folder
            .clone()
            .unwrap_or(FolderSpec::Distinguished(DistinguishedFolder::Drafts));
        write_target_folder(w, "m:SavedItemFolderId", &folder, ctx);
        w.open("m:Items", &[]);
        w.open("t:Message", &[]);
        w.leaf("t:Subject", &m.subject);
        write_body(w, "t:Body", &m.body);
        if !m.attachments.is_empty() {
            w.open("t:Attachments", &[]);
            for a in &m.attachments {
                write_file_attachment(w, a);
            }
            w.close("t:Attachments");
        }
        w.leaf("t:Importance", importance(m.importance));
        write_recipients(w, "t:ToRecipients", &m.to);
        write_recipients(w, "t:CcRecipients", &m.cc);
        write_recipients(w, "t:BccRecipients", &m.bcc);
        if let Some(from) = &m.from {
            w.open("t:From", &[]);
            write_mailbox(w, from);
            w.close("t:From");
        }
        w.close("t:Message");
        w.close("m:Items");
        w.close("m:CreateItem");
    }
}

/// `SendItem`: sends saved items by ID, keeping a copy in Sent Items when `save_copy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendItems {
    pub ids: Vec<ItemId>,
    pub save_copy: bool,
}

impl SendItems {
    fn write(&self, w: &mut Writer, ctx: &RequestContext) {
        let save = if self.save_copy { "true" } else { "false" };
        w.open("m:SendItem", &[("SaveItemToFolder", save)]);
        write_item_ids(w, "m:ItemIds", &self.ids);
        if self.save_copy {
            write_target_folder(
                w,
                "m:SavedItemFolderId",
                &DistinguishedFolder::SentItems.into(),
                ctx,
            );
        }
        w.close("m:SendItem");
    }
}

/// Which response to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyKind {
    Reply,
    ReplyAll,
    Forward { to: Vec<Recipient> },
}

/// `CreateItem` with `ReplyToItem`, `ReplyAllToItem` or `ForwardItem`. Saved as a draft
/// (`SaveOnly`) to be sent by ID, unless `send_now` (`SendAndSaveCopy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyMessage {
    pub kind: ReplyKind,
    pub reference: ItemId,
    pub comment: Body,
    pub send_now: bool,
}

impl ReplyMessage {
    fn write(&self, w: &mut Writer, ctx: &RequestContext) {
        let disposition = if self.send_now {
            "SendAndSaveCopy"
        } else {
            "SaveOnly"
        };
        w.open("m:CreateItem", &[("MessageDisposition", disposition)]);
        if self.send_now {
            write_target_folder(
                w,
                "m:SavedItemFolderId",
                &DistinguishedFolder::SentItems.into(),
                ctx,
            );
        } else {
            write_target_folder(
                w,
                "m:SavedItemFolderId",
                &DistinguishedFolder::Drafts.into(),
                ctx,
            );
        }
        w.open("m:Items", &[]);
        let name = match &self.kind {
            ReplyKind::Reply => "t:ReplyToItem",
            ReplyKind::ReplyAll => "t:ReplyAllToItem",
            ReplyKind::Forward { .. } => "t:ForwardItem",
        };
        w.open(name, &[]);
        if let ReplyKind::Forward { to } = &self.kind {
            write_recipients(w, "t:ToRecipients", to);
        }
        self.reference.write_as(w, "t:ReferenceItemId");
        write_body(w, "t:NewBodyContent", &self.comment);
        w.close(name);
        w.close("m:Items");
        w.close("m:CreateItem");
    }
}

/// `UpdateItem` setting `message:IsRead`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetReadFlag {
    pub ids: Vec<ItemId>,
    pub read: bool,
}

impl SetReadFlag {
    fn write(&self, w: &mut Writer, _ctx: &RequestContext) {
        w.open(
            "m:UpdateItem",
            &[
                ("ConflictResolution", "AlwaysOverwrite"),
                ("MessageDisposition", "SaveOnly"),
            ],
        );
        w.open("m:ItemChanges", &[]);
        for id in &self.ids {
            w.open("t:ItemChange", &[]);
            id.write(w);
            w.open("t:Updates", &[]);
            w.open("t:SetItemField", &[]);
            w.empty("t:FieldURI", &[("FieldURI", "message:IsRead")]);
            w.open("t:Message", &[]);
            w.leaf("t:IsRead", if self.read { "true" } else { "false" });
            w.close("t:Message");
            w.close("t:SetItemField");
            w.close("t:Updates");
            w.close("t:ItemChange");
        }
        w.close("m:ItemChanges");
        w.close("m:UpdateItem");
    }
}

/// `GetAttachment` by attachment IDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetAttachments {
    pub ids: Vec<String>,
}

impl GetAttachments {
    fn write(&self, w: &mut Writer, _ctx: &RequestContext) {
        w.open("m:GetAttachment", &[]);
        w.open("m:AttachmentIds", &[]);
        for id in &self.ids {
            w.empty("t:AttachmentId", &[("Id", id)]);
        }
        w.close("m:AttachmentIds");
        w.close("m:GetAttachment");
    }
}

/// `CreateAttachment`: files added to a saved item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateAttachments {
    pub parent: ItemId,
    pub attachments: Vec<NewAttachment>,
}

impl CreateAttachments {
    fn write(&self, w: &mut Writer, _ctx: &RequestContext) {
        w.open("m:CreateAttachment", &[]);
        self.parent.write_as(w, "m:ParentItemId");
        w.open("m:Attachments", &[]);
        for a in &self.attachments {
            write_file_attachment(w, a);
        }
        w.close("m:Attachments");
        w.close("m:CreateAttachment");
    }
}

ews_request!(
    FindMessages => "FindItem",
    GetMessages => "GetItem",
    CreateMessage => "CreateItem",
    SendItems => "SendItem",
    ReplyMessage => "CreateItem",
    SetReadFlag => "UpdateItem",
    GetAttachments => "GetAttachment",
    CreateAttachments => "CreateAttachment",
);

/// A message from `GetItem`: the neutral message, its change key and, when asked for, MIME.
#[derive(Debug, Clone, PartialEq)]
pub struct FullMessage {
    pub message: Message,
    pub id: ItemId,
    pub mime: Option<Vec<u8>>,
}

/// An attachment from `GetAttachment`, with its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentContent {
    pub info: AttachmentInfo,
    pub content: Vec<u8>,
}

fn empty_message() -> Message {
    Message {
        summary: MessageSummary {
            id: String::new(),
            subject: String::new(),
            from: None,
            received_at: None,
            is_read: false,
            has_attachments: false,
            importance: Importance::Normal,
            flag: FlagStatus::NotFlagged,
            categories: Vec::new(),
            preview: String::new(),
            folder_id: None,
        },
        to: Vec::new(),
        cc: Vec::new(),
        bcc: Vec::new(),
        reply_to: Vec::new(),
        sent_at: None,
        body: Body::text(""),
        attachments: Vec::new(),
        internet_message_id: None,
        conversation_id: None,
    }
}

pub(super) fn base64_bytes(s: &str, what: &str) -> Result<Vec<u8>, WireError> {
    let engine = &base64::engine::general_purpose::STANDARD;
    let decoded = if s.bytes().any(|b| b.is_ascii_whitespace()) {
        let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        engine.decode(compact)
    } else {
        engine.decode(s)
    };
    decoded.map_err(|_| WireError::malformed(format!("`{what}` is not base64")))
}

/// Item kinds that carry mail (`t:Message` and its relatives: meeting requests, reports).
pub(super) fn is_message(e: &Elem<'_>) -> bool {
    e.ns == Ns::Types
        && matches!(
            e.local(),
            "Message"
                | "MeetingRequest"
                | "MeetingResponse"
                | "MeetingCancellation"
                | "MeetingMessage"
                | "PostItem"
                | "Item"
        )
}

/// A message element (the reader is inside it).
pub(super) fn read_message(r: &mut Reader<'_>) -> Result<FullMessage, WireError> {
    let mut m = empty_message();
    let mut id = ItemId::default();
    let mut mime = None;
    while let Some(e) = r.child()? {
        if e.ns != Ns::Types {
            r.skip()?;
            continue;
        }
        let s = &mut m.summary;
        match e.local() {
            "MimeContent" => mime = Some(base64_bytes(&r.text()?, "MimeContent")?),
            "ItemId" => {
                id = read_item_id(&e)?;
                r.skip()?;
            }
            "ParentFolderId" => {
                s.folder_id = Some(e.need_attr("Id")?);
                r.skip()?;
            }
            "ConversationId" => {
                m.conversation_id = Some(e.need_attr("Id")?);
                r.skip()?;
            }
            "Subject" => s.subject = r.text()?.into_owned(),
            "Body" => {
                let kind = match e.attr("BodyType")?.as_deref() {
                    Some("HTML") => BodyKind::Html,
                    Some("Text") => BodyKind::Text,
                    _ => return Err(WireError::malformed("a body without a known BodyType")),
                };
                m.body = Body {
                    kind,
                    content: r.text()?.into_owned(),
                };
            }
            "Attachments" => m.attachments = read_attachment_infos(r)?,
            "DateTimeReceived" => {
                s.received_at = Some(parse_date_time(&r.text()?, "DateTimeReceived")?)
            }
            "DateTimeSent" => m.sent_at = Some(parse_date_time(&r.text()?, "DateTimeSent")?),
            "Categories" => s.categories = read_strings(r)?,
            "Importance" => {
                s.importance = match r.text()?.as_ref() {
                    "Low" => Importance::Low,
                    "Normal" => Importance::Normal,
                    "High" => Importance::High,
                    _ => return Err(WireError::malformed("unknown Importance")),
                }
            }
            "HasAttachments" => s.has_attachments = text_bool(r, "HasAttachments")?,
            "IsRead" => s.is_read = text_bool(r, "IsRead")?,
            "Preview" => s.preview = r.text()?.into_owned(),
            "Flag" => {
                while let Some(f) = r.child()? {
                    if f.is_t("FlagStatus") {
                        s.flag = match r.text()?.as_ref() {
                            "NotFlagged" => FlagStatus::NotFlagged,
                            "Flagged" => FlagStatus::Flagged,
                            "Complete" => FlagStatus::Complete,
                            _ => return Err(WireError::malformed("unknown FlagStatus")),
                        };
                    } else {
                        r.skip()?;
                    }
                }
            }
            "From" => s.from = read_single(r)?,
            "Sender" if s.from.is_none() => s.from = read_single(r)?,
            "ToRecipients" => m.to = read_recipients(r)?,
            "CcRecipients" => m.cc = read_recipients(r)?,
            "BccRecipients" => m.bcc = read_recipients(r)?,
            "ReplyTo" => m.reply_to = read_recipients(r)?,
            "InternetMessageId" => m.internet_message_id = Some(r.text()?.into_owned()),
            _ => r.skip()?,
        }
    }
    if id.id.is_empty() {
        return Err(WireError::malformed("an item without ItemId"));
    }
    m.summary.id.clone_from(&id.id);
    Ok(FullMessage {
        message: m,
        id,
        mime,
    })
}

/// `t:Attachments` (the reader is inside it).
fn read_attachment_infos(r: &mut Reader<'_>) -> Result<Vec<AttachmentInfo>, WireError> {
    let mut out = Vec::new();
    while let Some(e) = r.child()? {
        if e.is_t("FileAttachment") || e.is_t("ItemAttachment") || e.is_t("ReferenceAttachment") {
            out.push(read_attachment(r)?.info);
        } else {
            r.skip()?;
        }
    }
    Ok(out)
}

/// One attachment element (the reader is inside it).
fn read_attachment(r: &mut Reader<'_>) -> Result<AttachmentContent, WireError> {
    let mut info = AttachmentInfo {
        id: String::new(),
        name: String::new(),
        content_type: None,
        size: 0,
        is_inline: false,
    };
    let mut content = Vec::new();
    while let Some(e) = r.child()? {
        if e.ns != Ns::Types {
            r.skip()?;
            continue;
        }
        match e.local() {
            "AttachmentId" => {
                info.id = e.need_attr("Id")?;
                r.skip()?;
            }
            "Name" => info.name = r.text()?.into_owned(),
            "ContentType" => info.content_type = Some(r.text()?.into_owned()),
            "Size" => info.size = parse_num(&r.text()?, "Size")?,
            "IsInline" => info.is_inline = text_bool(r, "IsInline")?,
            "Content" => content = base64_bytes(&r.text()?, "Content")?,
            _ => r.skip()?,
        }
    }
    if info.id.is_empty() {
        return Err(WireError::malformed("an attachment without AttachmentId"));
    }
    if info.size == 0 {
        info.size = content.len() as u64;
    }
    Ok(AttachmentContent { info, content })
}

/// The answer to [`FindMessages`].
pub fn decode_find_messages(xml: &[u8]) -> Result<Decoded<FoundItems<MessageSummary>>, WireError> {
    decode_found(xml, "FindItem", "Items", |r, e| {
        if is_message(e) {
            read_message(r).map(|m| Some(m.message.summary))
        } else {
            r.skip().map(|()| None)
        }
    })
}

/// The answer to [`GetMessages`]: one message per ID.
pub fn decode_get_messages(xml: &[u8]) -> Result<Decoded<FullMessage>, WireError> {
    decode(xml, "GetItem", |r, e, out: &mut FullMessage| {
        if !e.is_m("Items") {
            return Ok(false);
        }
        while let Some(item) = r.child()? {
            if is_message(&item) {
                *out = read_message(r)?;
            } else {
                r.skip()?;
            }
        }
        Ok(true)
    })
}

impl Default for FullMessage {
    fn default() -> Self {
        Self {
            message: empty_message(),
            id: ItemId::default(),
            mime: None,
        }
    }
}

/// The answer to [`GetAttachments`]: one message per attachment.
pub fn decode_get_attachments(xml: &[u8]) -> Result<Decoded<Vec<AttachmentContent>>, WireError> {
    decode(
        xml,
        "GetAttachment",
        |r, e, out: &mut Vec<AttachmentContent>| {
            if !e.is_m("Attachments") {
                return Ok(false);
            }
            while let Some(a) = r.child()? {
                if a.is_t("FileAttachment") || a.is_t("ItemAttachment") {
                    out.push(read_attachment(r)?);
                } else {
                    r.skip()?;
                }
            }
            Ok(true)
        },
    )
}

/// The answer to [`CreateAttachments`]: each new attachment's ID, and the parent item's ID
/// with its new change key.
pub fn decode_create_attachments(xml: &[u8]) -> Result<Decoded<Vec<(String, ItemId)>>, WireError> {
    decode(
        xml,
        "CreateAttachment",
        |r, e, out: &mut Vec<(String, ItemId)>| {
            if !e.is_m("Attachments") {
                return Ok(false);
            }
            while let Some(_a) = r.child()? {
                while let Some(f) = r.child()? {
                    if f.is_t("AttachmentId") {
                        let root = ItemId {
                            id: f.attr("RootItemId")?.unwrap_or_default(),
                            change_key: f.attr("RootItemChangeKey")?,
                        };
                        out.push((f.need_attr("Id")?, root));
                    }
                    r.skip()?;
                }
            }
            Ok(true)
        },
    )
}

/// The answer to [`SendItems`]: one message per item.
pub fn decode_send_items(xml: &[u8]) -> Result<Decoded<()>, WireError> {
    decode(xml, "SendItem", |_, _, _: &mut ()| Ok(false))
}
