//! Mail: folders, messages, attachments, MIME, drafts, sending, replies, moves, delta.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::dispatch::Op;
use super::error::{GraphResult, graph_errors};
use super::http::{Ctx, Req, Resp, RespBody, fmt_instant, link};
use super::ids::{GraphIds as _, Kind};
use super::odata::{self, Item, ItemTy, Query, Row, Schema, Ty, Val, collection, parse_query};
use super::{GraphInner, auth, mime};
use crate::mailstore::content::{Address, BodyType, FlagStatus, Importance};
use crate::mailstore::mailbox::{Attachment, Body, Change, Mailbox, Message};

pub(crate) static MESSAGE: Schema = Schema {
    entity: "message",
    props: &[
        "id",
        "createdDateTime",
        "lastModifiedDateTime",
        "changeKey",
        "categories",
        "receivedDateTime",
        "sentDateTime",
        "hasAttachments",
        "internetMessageId",
        "subject",
        "bodyPreview",
        "importance",
        "parentFolderId",
        "conversationId",
        "conversationIndex",
        "isDeliveryReceiptRequested",
        "isReadReceiptRequested",
        "isRead",
        "isDraft",
        "webLink",
        "inferenceClassification",
        "body",
        "uniqueBody",
        "sender",
        "from",
        "toRecipients",
        "ccRecipients",
        "bccRecipients",
        "replyTo",
        "flag",
        "internetMessageHeaders",
    ],
    default: &[
        "id",
        "createdDateTime",
        "lastModifiedDateTime",
        "changeKey",
        "categories",
        "receivedDateTime",
        "sentDateTime",
        "hasAttachments",
        "internetMessageId",
        "subject",
        "bodyPreview",
        "importance",
        "parentFolderId",
        "conversationId",
        "conversationIndex",
        "isDeliveryReceiptRequested",
        "isReadReceiptRequested",
        "isRead",
        "isDraft",
        "webLink",
        "inferenceClassification",
        "body",
        "sender",
        "from",
        "toRecipients",
        "ccRecipients",
        "bccRecipients",
        "replyTo",
        "flag",
    ],
    filterable: &[
        ("isRead", Ty::Bool),
        ("isDraft", Ty::Bool),
        ("hasAttachments", Ty::Bool),
        ("importance", Ty::Str),
        ("subject", Ty::Str),
        ("bodyPreview", Ty::Str),
        ("receivedDateTime", Ty::Date),
        ("sentDateTime", Ty::Date),
        ("createdDateTime", Ty::Date),
        ("lastModifiedDateTime", Ty::Date),
        ("conversationId", Ty::Str),
        ("parentFolderId", Ty::Str),
        ("internetMessageId", Ty::Str),
        ("inferenceClassification", Ty::Str),
        ("from/emailAddress/address", Ty::Str),
        ("from/emailAddress/name", Ty::Str),
        ("sender/emailAddress/address", Ty::Str),
        ("sender/emailAddress/name", Ty::Str),
        ("flag/flagStatus", Ty::Str),
    ],
    collections: &[
        ("categories", ItemTy::Str),
        ("toRecipients", ItemTy::Recipient),
        ("ccRecipients", ItemTy::Recipient),
        ("bccRecipients", ItemTy::Recipient),
        ("replyTo", ItemTy::Recipient),
    ],
    expandable: &["attachments"],
};

static FOLDER: Schema = Schema {
    entity: "mailFolder",
    props: &[
        "id",
        "displayName",
        "parentFolderId",
        "childFolderCount",
        "unreadItemCount",
        "totalItemCount",
        "sizeInBytes",
        "isHidden",
    ],
    default: &[
        "id",
        "displayName",
        "parentFolderId",
        "childFolderCount",
        "unreadItemCount",
        "totalItemCount",
        "sizeInBytes",
        "isHidden",
    ],
    filterable: &[("displayName", Ty::Str)],
    collections: &[],
    expandable: &[],
};

static ATTACHMENT: Schema = Schema {
    entity: "attachment",
    props: &[
        "id",
        "lastModifiedDateTime",
        "name",
        "contentType",
        "size",
        "isInline",
        "contentId",
        "contentLocation",
        "contentBytes",
    ],
    default: &[
        "id",
        "lastModifiedDateTime",
        "name",
        "contentType",
        "size",
        "isInline",
        "contentId",
        "contentLocation",
    ],
    filterable: &[
        ("name", Ty::Str),
        ("isInline", Ty::Bool),
        ("contentType", Ty::Str),
    ],
    collections: &[],
    expandable: &[],
};

// ----- helpers -----

pub(crate) fn mailbox<'i>(inner: &'i GraphInner, op: &Op<'_>) -> GraphResult<&'i Mailbox> {
    inner
        .mailbox(&op.target.address)
        .ok_or_else(|| graph_errors::invalid_user(&op.target.address))
}

pub(crate) fn mailbox_mut<'i>(
    inner: &'i mut GraphInner,
    op: &Op<'_>,
) -> GraphResult<&'i mut Mailbox> {
    inner
        .mailbox_mut(&op.target.address)
        .ok_or_else(|| graph_errors::invalid_user(&op.target.address))
}

fn message_seq(mb: &Mailbox, id: &str) -> GraphResult<u64> {
    let id = mb.decode(id, &[Kind::Message])?;
    if mb.messages.contains_key(&id.seq) {
        Ok(id.seq)
    } else {
        Err(graph_errors::item_not_found())
    }
}

/// The JSON body of a request, which must be an object.
pub(crate) fn json_body(req: &Req) -> GraphResult<Map<String, Value>> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Err(graph_errors::empty_body());
    }
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(graph_errors::body_read(
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(graph_errors::body_read(format!(
            "Invalid JSON. The request body could not be read: {e}"
        ))),
    }
}

/// The body of a POST that may be empty (`send`): nothing, `null` or an object.
fn optional_body(req: &Req) -> GraphResult<Map<String, Value>> {
    let text = String::from_utf8_lossy(&req.body);
    if text.trim().is_empty() || text.trim() == "null" {
        Ok(Map::new())
    } else {
        json_body(req)
    }
}

/// A property of a JSON object, any case.
pub(crate) fn field<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .filter(|v| !v.is_null())
}

fn convert_error(value: &Value, ty: &str) -> super::error::GraphError {
    let literal = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    graph_errors::body_read(format!(
        "Cannot convert the literal '{literal}' to the expected type '{ty}'."
    ))
}

pub(crate) fn as_string(value: &Value) -> GraphResult<String> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| convert_error(value, "Edm.String"))
}

pub(crate) fn as_bool(value: &Value) -> GraphResult<bool> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(convert_error(other, "Edm.Boolean")),
    }
}

pub(crate) fn as_strings(value: &Value) -> GraphResult<Vec<String>> {
    value
        .as_array()
        .ok_or_else(|| convert_error(value, "Collection(Edm.String)"))?
        .iter()
        .map(as_string)
        .collect()
}

/// `{"emailAddress":{"name":…,"address":…}}`
pub(crate) fn as_recipient(value: &Value) -> GraphResult<Address> {
    let email = value
        .as_object()
        .and_then(|o| field(o, "emailAddress"))
        .and_then(Value::as_object)
        .ok_or_else(|| convert_error(value, "microsoft.graph.recipient"))?;
    as_email_address(email)
}

/// `{"name":…,"address":…}`
pub(crate) fn as_email_address(email: &Map<String, Value>) -> GraphResult<Address> {
    let address = field(email, "address")
        .map(as_string)
        .transpose()?
        .unwrap_or_default();
    let name = field(email, "name")
        .map(as_string)
        .transpose()?
        .unwrap_or_default();
    Ok(Address {
        name: if name.is_empty() {
            address.clone()
        } else {
            name
        },
        address,
    })
}

pub(crate) fn as_recipients(value: &Value) -> GraphResult<Vec<Address>> {
    value
        .as_array()
        .ok_or_else(|| convert_error(value, "Collection(microsoft.graph.recipient)"))?
        .iter()
        .map(as_recipient)
        .collect()
}

pub(crate) fn as_body(value: &Value) -> GraphResult<Body> {
    let map = value
        .as_object()
        .ok_or_else(|| convert_error(value, "microsoft.graph.itemBody"))?;
    let kind = match field(map, "contentType").map(as_string).transpose()? {
        Some(t) if t.eq_ignore_ascii_case("html") => BodyType::Html,
        Some(t) if t.eq_ignore_ascii_case("text") => BodyType::Text,
        None => BodyType::Text,
        Some(t) => return Err(convert_error(&Value::String(t), "microsoft.graph.bodyType")),
    };
    let content = field(map, "content")
        .map(as_string)
        .transpose()?
        .unwrap_or_default();
    Ok(Body { kind, content })
}

pub(crate) fn as_importance(value: &Value) -> GraphResult<Importance> {
    match value.as_str().map(str::to_ascii_lowercase).as_deref() {
        Some("low") => Ok(Importance::Low),
        Some("normal") => Ok(Importance::Normal),
        Some("high") => Ok(Importance::High),
        _ => Err(convert_error(value, "microsoft.graph.importance")),
    }
}

pub(crate) fn importance_name(i: Importance) -> &'static str {
    match i {
        Importance::Low => "low",
        Importance::Normal => "normal",
        Importance::High => "high",
    }
}

fn flag_name(f: FlagStatus) -> &'static str {
    match f {
        FlagStatus::NotFlagged => "notFlagged",
        FlagStatus::Flagged => "flagged",
        FlagStatus::Complete => "complete",
    }
}

pub(crate) fn recipient_json(a: &Address) -> Value {
    json!({"emailAddress": {"name": a.name, "address": a.address}})
}

fn recipients_json(list: &[Address]) -> Value {
    Value::Array(list.iter().map(recipient_json).collect())
}

fn body_json(body: &Body, ctx: &Ctx) -> Value {
    let body = match ctx.prefer.body_type {
        Some(kind) => body.as_kind(kind),
        None => body.clone(),
    };
    json!({
        "contentType": match body.kind { BodyType::Html => "html", BodyType::Text => "text" },
        "content": body.content,
    })
}

/// `Preference-Applied` for the body type when the caller asked for one.
pub(crate) fn preference_applied(ctx: &Ctx, resp: &mut Resp) {
    if let Some(kind) = ctx.prefer.body_type {
        let name = match kind {
            BodyType::Text => "text",
            BodyType::Html => "html",
        };
        resp.header(
            "Preference-Applied",
            format!("outlook.body-content-type=\"{name}\""),
        );
    }
}

fn web_link(id: &str) -> String {
    format!(
        "https://outlook.office365.com/owa/?ItemID={}&exvsurl=1&viewmodel=ReadMessageItem",
        url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    )
}

/// A message as Graph shows it, with the properties `q` asks for.
pub(crate) fn message_json(mb: &Mailbox, m: &Message, q: &Query, ctx: &Ctx) -> Value {
    let mut o = Map::new();
    let change_key = mb.change_key(m.version);
    o.insert("@odata.etag".into(), format!("W/\"{change_key}\"").into());
    let id = mb.message_id(m.seq);
    let wants = |p: &str| q.wants(&MESSAGE, p);
    let mut put = |name: &str, value: Value| {
        o.insert(name.to_string(), value);
    };
    if wants("id") {
        put("id", id.clone().into());
    }
    if wants("createdDateTime") {
        put("createdDateTime", fmt_instant(m.created).into());
    }
    if wants("lastModifiedDateTime") {
        put("lastModifiedDateTime", fmt_instant(m.modified).into());
    }
    if wants("changeKey") {
        put("changeKey", change_key.into());
    }
    if wants("categories") {
        put("categories", json!(m.categories));
    }
    if wants("receivedDateTime") {
        put("receivedDateTime", fmt_instant(m.received).into());
    }
    if wants("sentDateTime") {
        put("sentDateTime", m.sent.map(fmt_instant).into());
    }
    if wants("hasAttachments") {
        put("hasAttachments", m.has_attachments().into());
    }
    if wants("internetMessageId") {
        put("internetMessageId", m.internet_message_id.clone().into());
    }
    if wants("subject") {
        put("subject", m.subject.clone().into());
    }
    if wants("bodyPreview") {
        put("bodyPreview", m.body.preview().into());
    }
    if wants("importance") {
        put("importance", importance_name(m.importance).into());
    }
    if wants("parentFolderId") {
        put("parentFolderId", mb.folder_id(m.folder).into());
    }
    if wants("conversationId") {
        put("conversationId", m.conversation_id.clone().into());
    }
    if wants("conversationIndex") {
        let mut index = vec![0x01];
        index.extend_from_slice(&m.created.unix_timestamp().to_be_bytes()[2..]);
        put("conversationIndex", STANDARD.encode(index).into());
    }
    if wants("isDeliveryReceiptRequested") {
        put("isDeliveryReceiptRequested", false.into());
    }
    if wants("isReadReceiptRequested") {
        put("isReadReceiptRequested", false.into());
    }
    if wants("isRead") {
        put("isRead", m.is_read.into());
    }
    if wants("isDraft") {
        put("isDraft", m.is_draft.into());
    }
    if wants("webLink") {
        put("webLink", web_link(&id).into());
    }
    if wants("inferenceClassification") {
        put("inferenceClassification", "focused".into());
    }
    if wants("body") {
        put("body", body_json(&m.body, ctx));
    }
    if wants("uniqueBody") {
        put("uniqueBody", body_json(&m.body, ctx));
    }
    if wants("sender") {
        put(
            "sender",
            m.sender.as_ref().map_or(Value::Null, recipient_json),
        );
    }
    if wants("from") {
        put("from", m.from.as_ref().map_or(Value::Null, recipient_json));
    }
    if wants("toRecipients") {
        put("toRecipients", recipients_json(&m.to));
    }
    if wants("ccRecipients") {
        put("ccRecipients", recipients_json(&m.cc));
    }
    if wants("bccRecipients") {
        put("bccRecipients", recipients_json(&m.bcc));
    }
    if wants("replyTo") {
        put("replyTo", recipients_json(&m.reply_to));
    }
    if wants("flag") {
        put("flag", json!({"flagStatus": flag_name(m.flag)}));
    }
    if wants("internetMessageHeaders") {
        let headers: Vec<Value> = mime::headers(m)
            .into_iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect();
        put("internetMessageHeaders", Value::Array(headers));
    }
    if q.expand.contains(&"attachments") {
        let all = Query::default();
        let attachments: Vec<Value> = m
            .attachments
            .iter()
            .map(|a| attachment_json(mb, m, a, &all, true))
            .collect();
        put("attachments", Value::Array(attachments));
    }
    Value::Object(o)
}

fn attachment_json(mb: &Mailbox, m: &Message, a: &Attachment, q: &Query, bytes: bool) -> Value {
    let wants =
        |p: &str| q.wants(&ATTACHMENT, p) || (bytes && p == "contentBytes" && q.select.is_none());
    let mut o = Map::new();
    o.insert(
        "@odata.type".into(),
        "#microsoft.graph.fileAttachment".into(),
    );
    o.insert(
        "@odata.mediaContentType".into(),
        a.content_type.clone().into(),
    );
    let fields = [
        (
            "id",
            Value::from(mb.id(Kind::Attachment, m.seq, i64::try_from(a.seq).ok())),
        ),
        ("lastModifiedDateTime", fmt_instant(a.modified).into()),
        ("name", a.name.clone().into()),
        ("contentType", a.content_type.clone().into()),
        ("size", a.bytes.len().into()),
        ("isInline", a.is_inline.into()),
        ("contentId", a.content_id.clone().into()),
        ("contentLocation", Value::Null),
    ];
    for (name, value) in fields {
        if wants(name) {
            o.insert(name.into(), value);
        }
    }
    if wants("contentBytes") {
        o.insert("contentBytes".into(), STANDARD.encode(&a.bytes).into());
    }
    Value::Object(o)
}

/// A message seen by `$filter` and `$orderby`.
struct MessageRow<'a> {
    m: &'a Message,
    folder_id: String,
}

impl Row for MessageRow<'_> {
    fn value(&self, path: &str) -> Val<'_> {
        let m = self.m;
        fn address(a: &Option<Address>, name: bool) -> Val<'_> {
            match a {
                Some(a) if name => Val::Str(Cow::Borrowed(&a.name)),
                Some(a) => Val::Str(Cow::Borrowed(&a.address)),
                None => Val::Null,
            }
        }
        match path {
            "isRead" => Val::Bool(m.is_read),
            "isDraft" => Val::Bool(m.is_draft),
            "hasAttachments" => Val::Bool(m.has_attachments()),
            "importance" => Val::Str(Cow::Borrowed(importance_name(m.importance))),
            "subject" => Val::Str(Cow::Borrowed(&m.subject)),
            "bodyPreview" => Val::Str(Cow::Owned(m.body.preview())),
            "receivedDateTime" => Val::Date(m.received),
            "sentDateTime" => m.sent.map_or(Val::Null, Val::Date),
            "createdDateTime" => Val::Date(m.created),
            "lastModifiedDateTime" => Val::Date(m.modified),
            "conversationId" => Val::Str(Cow::Borrowed(&m.conversation_id)),
            "parentFolderId" => Val::Str(Cow::Borrowed(&self.folder_id)),
            "internetMessageId" => Val::Str(Cow::Borrowed(&m.internet_message_id)),
            "inferenceClassification" => Val::Str(Cow::Borrowed("focused")),
            "from/emailAddress/address" => address(&m.from, false),
            "from/emailAddress/name" => address(&m.from, true),
            "sender/emailAddress/address" => address(&m.sender, false),
            "sender/emailAddress/name" => address(&m.sender, true),
            "flag/flagStatus" => Val::Str(Cow::Borrowed(flag_name(m.flag))),
            _ => Val::Null,
        }
    }

    fn items(&self, collection: &str) -> Vec<Item<'_>> {
        let m = self.m;
        match collection {
            "categories" => m.categories.iter().map(|c| Item::Str(c)).collect(),
            "toRecipients" => m.to.iter().map(Item::Address).collect(),
            "ccRecipients" => m.cc.iter().map(Item::Address).collect(),
            "bccRecipients" => m.bcc.iter().map(Item::Address).collect(),
            "replyTo" => m.reply_to.iter().map(Item::Address).collect(),
            _ => Vec::new(),
        }
    }
}

/// `$search`: free text over subject, body and sender, or `subject:`, `from:`, `to:`, `body:`.
fn search_matches(m: &Message, search: &str) -> bool {
    let search = search.trim().to_lowercase();
    if search.is_empty() {
        return true;
    }
    let (field, term) = match search.split_once(':') {
        Some((f, t)) if ["subject", "from", "to", "body"].contains(&f.trim()) => {
            (f.trim().to_string(), t.trim().trim_matches('"').to_string())
        }
        _ => (String::new(), search.clone()),
    };
    let from = m
        .from
        .as_ref()
        .map(|a| format!("{} {}", a.name, a.address))
        .unwrap_or_default()
        .to_lowercase();
    let to =
        m.to.iter()
            .map(|a| format!("{} {}", a.name, a.address))
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
    match field.as_str() {
        "subject" => m.subject.to_lowercase().contains(&term),
        "from" => from.contains(&term),
        "to" => to.contains(&term),
        "body" => m.body.text().to_lowercase().contains(&term),
        _ => {
            m.subject.to_lowercase().contains(&term)
                || from.contains(&term)
                || m.body.text().to_lowercase().contains(&term)
        }
    }
}

// ----- folders -----

fn folder_json(
    mb: &Mailbox,
    seq: u64,
    stats: &HashMap<u64, (usize, usize, usize)>,
    q: &Query,
) -> Value {
    let Some(f) = mb.folders.get(&seq) else {
        return Value::Null;
    };
    let (total, unread, size) = stats.get(&seq).copied().unwrap_or_default();
    let children = mb
        .folders
        .values()
        .filter(|c| c.parent == Some(seq))
        .count();
    let fields = [
        ("id", Value::from(mb.folder_id(seq))),
        ("displayName", f.name.clone().into()),
        ("parentFolderId", f.parent.map(|p| mb.folder_id(p)).into()),
        ("childFolderCount", children.into()),
        ("unreadItemCount", unread.into()),
        ("totalItemCount", total.into()),
        ("sizeInBytes", size.into()),
        ("isHidden", false.into()),
    ];
    let mut o = Map::new();
    for (name, value) in fields {
        if q.wants(&FOLDER, name) {
            o.insert(name.into(), value);
        }
    }
    Value::Object(o)
}

/// (total, unread, bytes) per folder.
fn folder_stats(mb: &Mailbox) -> HashMap<u64, (usize, usize, usize)> {
    let mut stats: HashMap<u64, (usize, usize, usize)> = HashMap::new();
    for m in mb.messages.values() {
        let entry = stats.entry(m.folder).or_default();
        entry.0 += 1;
        entry.1 += usize::from(!m.is_read);
        entry.2 +=
            512 + m.body.content.len() + m.attachments.iter().map(|a| a.bytes.len()).sum::<usize>();
    }
    stats
}

struct FolderRow<'a>(&'a str);

impl Row for FolderRow<'_> {
    fn value(&self, _path: &str) -> Val<'_> {
        Val::Str(Cow::Borrowed(self.0))
    }
    fn items(&self, _collection: &str) -> Vec<Item<'_>> {
        Vec::new()
    }
}

pub(crate) fn list_folders(
    inner: &GraphInner,
    op: &Op<'_>,
    parent: Option<&str>,
) -> GraphResult<Resp> {
    let mb = mailbox(inner, op)?;
    let q = parse_query(op.req, &FOLDER)?;
    let parent = match parent {
        Some(p) => mb.folder_by_ref(p)?,
        None => mb.root(),
    };
    let stats = folder_stats(mb);
    let children: Vec<u64> = mb
        .children(parent)
        .into_iter()
        .filter(|f| {
            q.filter
                .as_ref()
                .is_none_or(|e| e.matches(&FolderRow(&f.name)))
        })
        .map(|f| f.seq)
        .collect();
    let (offset, size) = q.page(op.ctx, 10)?;
    let total = children.len();
    let page: Vec<Value> = children
        .iter()
        .skip(offset)
        .take(size)
        .map(|seq| folder_json(mb, *seq, &stats, &q))
        .collect();
    let next = (offset.saturating_add(size) < total).then_some(offset.saturating_add(size));
    let context = format!("users('{}')/mailFolders", op.target.address);
    Ok(Resp::ok(collection(
        op.ctx,
        op.req,
        &context,
        page,
        q.count.then_some(total),
        next,
    )))
}

pub(crate) fn get_folder(inner: &GraphInner, op: &Op<'_>, folder: &str) -> GraphResult<Resp> {
    let mb = mailbox(inner, op)?;
    let q = parse_query(op.req, &FOLDER)?;
    let seq = mb.folder_by_ref(folder)?;
    let mut body = folder_json(mb, seq, &folder_stats(mb), &q);
    if let Some(o) = body.as_object_mut() {
        o.insert(
            "@odata.context".into(),
            format!(
                "{}/$metadata#users('{}')/mailFolders/$entity",
                op.ctx.graph_url(),
                op.target.address
            )
            .into(),
        );
    }
    Ok(Resp::ok(body))
}

// ----- reading messages -----

pub(crate) fn list_messages(
    inner: &GraphInner,
    op: &Op<'_>,
    folder: Option<&str>,
) -> GraphResult<Resp> {
    let mb = mailbox(inner, op)?;
    let q = parse_query(op.req, &MESSAGE)?;
    let folder = folder.map(|f| mb.folder_by_ref(f)).transpose()?;
    let (offset, size) = q.page(op.ctx, 10)?;
    let by_received = match q.orderby.as_slice() {
        [] => Some(true),
        [("receivedDateTime", descending)] => Some(*descending),
        _ => None,
    };
    let keep = |m: &&Message| -> bool {
        folder.is_none_or(|f| m.folder == f)
            && q.search.as_deref().is_none_or(|s| search_matches(m, s))
            && q.filter.as_ref().is_none_or(|e| {
                e.matches(&MessageRow {
                    m,
                    folder_id: mb.folder_id(m.folder),
                })
            })
    };
    let (page, total, more): (Vec<&Message>, Option<usize>, bool) = match by_received {
        Some(descending) if !q.count => {
            let mut page: Vec<&Message> = mb
                .messages_by_received(descending)
                .filter(keep)
                .skip(offset)
                .take(size + 1)
                .collect();
            let more = page.len() > size;
            page.truncate(size);
            (page, None, more)
        }
        _ => {
            let mut all: Vec<&Message> = mb
                .messages_by_received(by_received.unwrap_or(true))
                .filter(keep)
                .collect();
            if by_received.is_none() {
                let mut rows: Vec<MessageRow<'_>> = all
                    .iter()
                    .map(|m| MessageRow {
                        m,
                        folder_id: mb.folder_id(m.folder),
                    })
                    .collect();
                odata::sort_rows(&mut rows, &q.orderby);
                all = rows.into_iter().map(|r| r.m).collect();
            }
            let total = all.len();
            let page: Vec<&Message> = all.into_iter().skip(offset).take(size).collect();
            (page, Some(total), offset.saturating_add(size) < total)
        }
    };
    let value: Vec<Value> = page
        .iter()
        .map(|m| message_json(mb, m, &q, op.ctx))
        .collect();
    let context = format!("users('{}')/messages", op.target.address);
    let next = more.then_some(offset.saturating_add(size));
    let count = if q.count { total } else { None };
    let mut resp = Resp::ok(collection(op.ctx, op.req, &context, value, count, next));
    preference_applied(op.ctx, &mut resp);
    Ok(resp)
}

pub(crate) fn get_message(inner: &GraphInner, op: &Op<'_>, id: &str) -> GraphResult<Resp> {
    let mb = mailbox(inner, op)?;
    let q = parse_query(op.req, &MESSAGE)?;
    let seq = message_seq(mb, id)?;
    let m = mb
        .messages
        .get(&seq)
        .ok_or_else(graph_errors::item_not_found)?;
    let mut body = message_json(mb, m, &q, op.ctx);
    if let Some(o) = body.as_object_mut() {
        o.insert(
            "@odata.context".into(),
            format!(
                "{}/$metadata#users('{}')/messages/$entity",
                op.ctx.graph_url(),
                op.target.address
            )
            .into(),
        );
    }
    let mut resp = Resp::ok(body);
    preference_applied(op.ctx, &mut resp);
    Ok(resp)
}

pub(crate) fn mime(inner: &GraphInner, op: &Op<'_>, id: &str) -> GraphResult<Resp> {
    let mb = mailbox(inner, op)?;
    let seq = message_seq(mb, id)?;
    let m = mb
        .messages
        .get(&seq)
        .ok_or_else(graph_errors::item_not_found)?;
    Ok(Resp::new(
        StatusCode::OK,
        RespBody::Bytes {
            content_type: "text/plain".into(),
            bytes: Bytes::from(mime::render(m)),
        },
    ))
}

fn attachment_of<'m>(
    mb: &Mailbox,
    m: &'m Message,
    attachment_id: &str,
) -> GraphResult<&'m Attachment> {
    let id = mb.decode(attachment_id, &[Kind::Attachment])?;
    if id.seq != m.seq {
        return Err(graph_errors::item_not_found());
    }
    m.attachments
        .iter()
        .find(|a| i64::try_from(a.seq).ok() == id.instance)
        .ok_or_else(graph_errors::item_not_found)
}

pub(crate) fn list_attachments(inner: &GraphInner, op: &Op<'_>, id: &str) -> GraphResult<Resp> {
    let mb = mailbox(inner, op)?;
    let q = parse_query(op.req, &ATTACHMENT)?;
    let seq = message_seq(mb, id)?;
    let m = mb
        .messages
        .get(&seq)
        .ok_or_else(graph_errors::item_not_found)?;
    let value: Vec<Value> = m
        .attachments
        .iter()
        .map(|a| attachment_json(mb, m, a, &q, false))
        .collect();
    let context = format!(
        "users('{}')/messages('{}')/attachments",
        op.target.address, id
    );
    Ok(Resp::ok(collection(
        op.ctx, op.req, &context, value, None, None,
    )))
}

pub(crate) fn get_attachment(
    inner: &GraphInner,
    op: &Op<'_>,
    id: &str,
    attachment: &str,
    raw: bool,
) -> GraphResult<Resp> {
    let mb = mailbox(inner, op)?;
    let seq = message_seq(mb, id)?;
    let m = mb
        .messages
        .get(&seq)
        .ok_or_else(graph_errors::item_not_found)?;
    let a = attachment_of(mb, m, attachment)?;
    if raw {
        return Ok(Resp::new(
            StatusCode::OK,
            RespBody::Bytes {
                content_type: a.content_type.clone(),
                bytes: a.bytes.clone(),
            },
        ));
    }
    let q = parse_query(op.req, &ATTACHMENT)?;
    Ok(Resp::ok(attachment_json(mb, m, a, &q, true)))
}

// ----- writing messages -----

/// What a request body may set on a message.
#[derive(Debug, Default)]
struct MessagePatch {
    subject: Option<String>,
    body: Option<Body>,
    to: Option<Vec<Address>>,
    cc: Option<Vec<Address>>,
    bcc: Option<Vec<Address>>,
    reply_to: Option<Vec<Address>>,
    from: Option<Address>,
    importance: Option<Importance>,
    is_read: Option<bool>,
    categories: Option<Vec<String>>,
    flag: Option<FlagStatus>,
    headers: Option<Vec<(String, String)>>,
    internet_message_id: Option<String>,
    attachments: Vec<Attachment>,
}

impl MessagePatch {
    /// Properties that only drafts may change.
    fn draft_only(&self) -> Option<&'static str> {
        if self.subject.is_some() {
            Some("Subject")
        } else if self.body.is_some() {
            Some("Body")
        } else if self.to.is_some() || self.cc.is_some() || self.bcc.is_some() {
            Some("Recipients")
        } else if self.from.is_some() {
            Some("From")
        } else if self.internet_message_id.is_some() {
            Some("InternetMessageId")
        } else {
            None
        }
    }

    fn apply(self, m: &mut Message) {
        if let Some(v) = self.subject {
            m.subject = v;
        }
        if let Some(v) = self.body {
            m.body = v;
        }
        if let Some(v) = self.to {
            m.to = v;
        }
        if let Some(v) = self.cc {
            m.cc = v;
        }
        if let Some(v) = self.bcc {
            m.bcc = v;
        }
        if let Some(v) = self.reply_to {
            m.reply_to = v;
        }
        if let Some(v) = self.from {
            m.sender = Some(v.clone());
            m.from = Some(v);
        }
        if let Some(v) = self.importance {
            m.importance = v;
        }
        if let Some(v) = self.is_read {
            m.is_read = v;
        }
        if let Some(v) = self.categories {
            m.categories = v;
        }
        if let Some(v) = self.flag {
            m.flag = v;
        }
        if let Some(v) = self.headers {
            m.extra_headers = v;
        }
        if let Some(v) = self.internet_message_id {
            m.internet_message_id = v;
        }
        for a in self.attachments {
            m.add_attachment(a);
        }
    }
}

/// Properties a request body may carry but that the server sets (ignored).
const READ_ONLY: &[&str] = &[
    "@odata.type",
    "@odata.etag",
    "@odata.context",
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "bodyPreview",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "uniqueBody",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "sender",
];

fn parse_patch(
    map: &Map<String, Value>,
    allow_attachments: bool,
    now: time::OffsetDateTime,
) -> GraphResult<MessagePatch> {
    let mut p = MessagePatch::default();
    for (key, value) in map {
        let k = key.to_ascii_lowercase();
        match k.as_str() {
            "subject" => {
                p.subject = Some(if value.is_null() {
                    String::new()
                } else {
                    as_string(value)?
                })
            }
            "body" => p.body = Some(as_body(value)?),
            "torecipients" => p.to = Some(as_recipients(value)?),
            "ccrecipients" => p.cc = Some(as_recipients(value)?),
            "bccrecipients" => p.bcc = Some(as_recipients(value)?),
            "replyto" => p.reply_to = Some(as_recipients(value)?),
            "from" => p.from = Some(as_recipient(value)?),
            "importance" => p.importance = Some(as_importance(value)?),
            "isread" => p.is_read = Some(as_bool(value)?),
            "categories" => p.categories = Some(as_strings(value)?),
            "flag" => {
                let status = value
                    .as_object()
                    .and_then(|o| field(o, "flagStatus"))
                    .and_then(Value::as_str)
                    .map(str::to_ascii_lowercase);
                p.flag = Some(match status.as_deref() {
                    Some("notflagged") | None => FlagStatus::NotFlagged,
                    Some("flagged") => FlagStatus::Flagged,
                    Some("complete") => FlagStatus::Complete,
                    Some(_) => {
                        return Err(convert_error(value, "microsoft.graph.followupFlagStatus"));
                    }
                });
            }
            // Settable while the message is a draft (Graph: "Updatable only if isDraft = true").
            "internetmessageid" => {
                let id = as_string(value)?;
                if id.trim().is_empty() || id.contains(['\r', '\n']) || id.len() > 998 {
                    return Err(graph_errors::invalid_request(
                        "The internetMessageId is not a valid Message-ID.",
                    ));
                }
                p.internet_message_id = Some(id.trim().to_string());
            }
            "internetmessageheaders" => {
                let list = value.as_array().ok_or_else(|| {
                    convert_error(value, "Collection(microsoft.graph.internetMessageHeader)")
                })?;
                let mut headers = Vec::new();
                for h in list {
                    let o = h
                        .as_object()
                        .ok_or_else(|| convert_error(h, "microsoft.graph.internetMessageHeader"))?;
                    let name = field(o, "name")
                        .map(as_string)
                        .transpose()?
                        .unwrap_or_default();
                    let value = field(o, "value")
                        .map(as_string)
                        .transpose()?
                        .unwrap_or_default();
                    if !name.to_ascii_lowercase().starts_with("x-")
                        || name.contains([':', '\r', '\n', ' '])
                        || value.contains(['\r', '\n'])
                    {
                        return Err(super::error::GraphError::bad_request(
                            "InvalidInternetMessageHeader",
                            format!(
                                "The internet message header name '{name}' should start with 'x-' or 'X-'."
                            ),
                        ));
                    }
                    headers.push((name, value));
                }
                p.headers = Some(headers);
            }
            "attachments" if allow_attachments => {
                let list = value.as_array().ok_or_else(|| {
                    convert_error(value, "Collection(microsoft.graph.attachment)")
                })?;
                for a in list {
                    p.attachments.push(parse_attachment(a, now)?);
                }
            }
            _ if READ_ONLY.iter().any(|r| r.eq_ignore_ascii_case(key)) || key.starts_with('@') => {}
            _ => return Err(graph_errors::body_unknown_property(key, "message")),
        }
    }
    Ok(p)
}

fn parse_attachment(value: &Value, now: time::OffsetDateTime) -> GraphResult<Attachment> {
    let o = value
        .as_object()
        .ok_or_else(|| convert_error(value, "microsoft.graph.attachment"))?;
    let kind = field(o, "@odata.type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !kind
        .trim_start_matches('#')
        .eq_ignore_ascii_case("microsoft.graph.fileAttachment")
    {
        return Err(graph_errors::body_read(
            "An attachment needs \"@odata.type\": \"#microsoft.graph.fileAttachment\" (the mock supports file attachments only).",
        ));
    }
    let name = field(o, "name")
        .map(as_string)
        .transpose()?
        .unwrap_or_default();
    if name.trim().is_empty() {
        return Err(graph_errors::invalid_request(
            "The attachment name is missing.",
        ));
    }
    let content_bytes = field(o, "contentBytes")
        .map(as_string)
        .transpose()?
        .ok_or_else(|| graph_errors::invalid_request("The attachment contentBytes are missing."))?;
    let bytes = STANDARD.decode(content_bytes.trim()).map_err(|_| {
        convert_error(
            &Value::String(content_bytes.chars().take(40).collect()),
            "Edm.Binary",
        )
    })?;
    Ok(Attachment {
        seq: 0,
        name,
        content_type: field(o, "contentType")
            .map(as_string)
            .transpose()?
            .unwrap_or_else(|| "application/octet-stream".into()),
        bytes: Bytes::from(bytes),
        is_inline: field(o, "isInline")
            .map(as_bool)
            .transpose()?
            .unwrap_or(false),
        content_id: field(o, "contentId").map(as_string).transpose()?,
        modified: now,
    })
}

/// A new Message-ID in Exchange Online's style.
pub(crate) fn new_message_id(domain_of: &str) -> String {
    let domain = domain_of
        .rsplit_once('@')
        .map_or("contoso.onmicrosoft.com", |(_, d)| d);
    let id = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .to_ascii_uppercase();
    format!("<{id}@{domain}>")
}

pub(crate) fn create_message(
    inner: &mut GraphInner,
    op: &Op<'_>,
    folder: Option<&str>,
) -> GraphResult<Resp> {
    let map = json_body(op.req)?;
    let patch = parse_patch(&map, true, op.ctx.now)?;
    let mb = mailbox_mut(inner, op)?;
    let folder = match folder {
        Some(f) => mb.folder_by_ref(f)?,
        None => mb
            .well_known("drafts")
            .ok_or_else(graph_errors::item_not_found)?,
    };
    let mut m = Message::blank(op.ctx.now, new_message_id(&op.target.address));
    patch.apply(&mut m);
    m.folder = folder;
    let seq = mb.insert_message(m);
    let mb = mailbox(inner, op)?;
    let m = mb
        .messages
        .get(&seq)
        .ok_or_else(graph_errors::item_not_found)?;
    let mut resp = Resp::json(
        StatusCode::CREATED,
        message_json(mb, m, &Query::default(), op.ctx),
    );
    preference_applied(op.ctx, &mut resp);
    Ok(resp)
}

pub(crate) fn patch_message(inner: &mut GraphInner, op: &Op<'_>, id: &str) -> GraphResult<Resp> {
    let map = json_body(op.req)?;
    let patch = parse_patch(&map, false, op.ctx.now)?;
    let mb = mailbox_mut(inner, op)?;
    let seq = message_seq(mb, id)?;
    let m = mb
        .messages
        .get_mut(&seq)
        .ok_or_else(graph_errors::item_not_found)?;
    if !m.is_draft
        && let Some(property) = patch.draft_only()
    {
        return Err(graph_errors::update_sent_message(property));
    }
    patch.apply(m);
    mb.touch_message(seq, op.ctx.now);
    let mb = mailbox(inner, op)?;
    let m = mb
        .messages
        .get(&seq)
        .ok_or_else(graph_errors::item_not_found)?;
    let mut resp = Resp::ok(message_json(mb, m, &Query::default(), op.ctx));
    preference_applied(op.ctx, &mut resp);
    Ok(resp)
}

pub(crate) fn delete_message(inner: &mut GraphInner, op: &Op<'_>, id: &str) -> GraphResult<Resp> {
    let mb = mailbox_mut(inner, op)?;
    let seq = message_seq(mb, id)?;
    let deleted = mb
        .well_known("deleteditems")
        .ok_or_else(graph_errors::item_not_found)?;
    let in_deleted = mb.messages.get(&seq).is_some_and(|m| m.folder == deleted);
    if in_deleted {
        mb.remove_message(seq);
    } else {
        mb.move_message(seq, deleted, op.ctx.now);
    }
    Ok(Resp::empty(StatusCode::NO_CONTENT))
}

pub(crate) fn move_or_copy(
    inner: &mut GraphInner,
    op: &Op<'_>,
    id: &str,
    copy: bool,
) -> GraphResult<Resp> {
    let map = json_body(op.req)?;
    let destination = field(&map, "destinationId")
        .map(as_string)
        .transpose()?
        .ok_or_else(|| graph_errors::invalid_request("The destinationId parameter is missing."))?;
    let mb = mailbox_mut(inner, op)?;
    let seq = message_seq(mb, id)?;
    let folder = mb.folder_by_ref(&destination)?;
    let new_seq = if copy {
        let mut clone = mb
            .messages
            .get(&seq)
            .cloned()
            .ok_or_else(graph_errors::item_not_found)?;
        clone.folder = folder;
        clone.created = op.ctx.now;
        clone.modified = op.ctx.now;
        mb.insert_message(clone)
    } else {
        mb.move_message(seq, folder, op.ctx.now)
            .ok_or_else(graph_errors::item_not_found)?
    };
    let mb = mailbox(inner, op)?;
    let m = mb
        .messages
        .get(&new_seq)
        .ok_or_else(graph_errors::item_not_found)?;
    Ok(Resp::json(
        StatusCode::CREATED,
        message_json(mb, m, &Query::default(), op.ctx),
    ))
}

pub(crate) fn add_attachment(inner: &mut GraphInner, op: &Op<'_>, id: &str) -> GraphResult<Resp> {
    let map = json_body(op.req)?;
    let attachment = parse_attachment(&Value::Object(map), op.ctx.now)?;
    let mb = mailbox_mut(inner, op)?;
    let seq = message_seq(mb, id)?;
    let m = mb
        .messages
        .get_mut(&seq)
        .ok_or_else(graph_errors::item_not_found)?;
    let attachment_seq = m.add_attachment(attachment);
    mb.touch_message(seq, op.ctx.now);
    let mb = mailbox(inner, op)?;
    let m = mb
        .messages
        .get(&seq)
        .ok_or_else(graph_errors::item_not_found)?;
    let a = m
        .attachments
        .iter()
        .find(|a| a.seq == attachment_seq)
        .ok_or_else(graph_errors::item_not_found)?;
    Ok(Resp::json(
        StatusCode::CREATED,
        attachment_json(mb, m, a, &Query::default(), true),
    ))
}

pub(crate) fn delete_attachment(
    inner: &mut GraphInner,
    op: &Op<'_>,
    id: &str,
    attachment: &str,
) -> GraphResult<Resp> {
    let mb = mailbox_mut(inner, op)?;
    let seq = message_seq(mb, id)?;
    let attachment_seq = {
        let m = mb
            .messages
            .get(&seq)
            .ok_or_else(graph_errors::item_not_found)?;
        attachment_of(mb, m, attachment)?.seq
    };
    if let Some(m) = mb.messages.get_mut(&seq) {
        m.attachments.retain(|a| a.seq != attachment_seq);
    }
    mb.touch_message(seq, op.ctx.now);
    Ok(Resp::empty(StatusCode::NO_CONTENT))
}

// ----- sending -----

fn valid_address(address: &str) -> bool {
    let address = address.trim();
    match address.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !address.contains([' ', ',', ';', '<', '>', '"'])
        }
        None => false,
    }
}

/// Submits `message` from the target mailbox: checks recipients and the right to send as its
/// `from`, then delivers one copy to every recipient mailbox the mock has, saves it to Sent
/// Items when `save`, and records the submission. Nothing changes when it fails.
pub(crate) fn submit(
    inner: &mut GraphInner,
    op: &Op<'_>,
    mut message: Message,
    save: bool,
) -> GraphResult<()> {
    let recipients: Vec<Address> = message
        .to
        .iter()
        .chain(&message.cc)
        .chain(&message.bcc)
        .cloned()
        .collect();
    if recipients.is_empty() {
        return Err(graph_errors::invalid_recipients(
            "A message can't be sent because it contains no recipients.",
        ));
    }
    if let Some(bad) = recipients.iter().find(|r| !valid_address(&r.address)) {
        return Err(graph_errors::invalid_recipients(&format!(
            "Recipient '{}' is not resolved. All recipients must be resolved before a message can be submitted.",
            bad.address
        )));
    }
    let tenant = op.tenant(inner)?;
    let from = match &message.from {
        Some(from) if !from.address.trim().is_empty() => from.clone(),
        _ => Address::new(op.target.display_name.clone(), op.target.address.clone()),
    };
    auth::may_send_as(tenant, op.caller, op.target, &from.address)?;
    let from = match inner.entry(&from.address) {
        Some(entry) => Address::new(entry.display_name.clone(), entry.address.clone()),
        None => from,
    };
    let now = op.ctx.now;
    message.from = Some(from.clone());
    message.sender = Some(from);
    message.is_draft = false;
    message.is_read = true;
    message.sent = Some(now);
    message.received = now;
    message.modified = now;

    let mut seen = HashSet::new();
    for recipient in &recipients {
        let key = recipient.address.trim().to_ascii_lowercase();
        if !seen.insert(key.clone()) {
            continue;
        }
        let Some(mb) = inner.mailbox_mut(&key) else {
            continue;
        };
        let Some(inbox) = mb.well_known("inbox") else {
            continue;
        };
        let mut copy = message.clone();
        copy.folder = inbox;
        copy.is_read = false;
        copy.bcc.clear();
        copy.flag = FlagStatus::NotFlagged;
        copy.categories.clear();
        copy.created = now;
        let address = mb.address.clone();
        mb.insert_message(copy);
        inner
            .store
            .delivered(&address, &message.internet_message_id, &message.subject);
    }
    inner.store.submitted(
        &op.target.address,
        &message.internet_message_id,
        &message.subject,
    );
    if save {
        let mb = mailbox_mut(inner, op)?;
        let sent = mb
            .well_known("sentitems")
            .ok_or_else(graph_errors::item_not_found)?;
        message.folder = sent;
        mb.insert_message(message);
    }
    Ok(())
}

pub(crate) fn send_draft(inner: &mut GraphInner, op: &Op<'_>, id: &str) -> GraphResult<Resp> {
    optional_body(op.req)?;
    let mb = mailbox(inner, op)?;
    let seq = message_seq(mb, id)?;
    let draft = mb
        .messages
        .get(&seq)
        .cloned()
        .ok_or_else(graph_errors::item_not_found)?;
    if !draft.is_draft {
        return Err(graph_errors::invalid_request(
            "Only a draft message can be sent.",
        ));
    }
    submit(inner, op, draft, true)?;
    mailbox_mut(inner, op)?.remove_message(seq);
    Ok(Resp::empty(StatusCode::ACCEPTED))
}

pub(crate) fn send_mail(inner: &mut GraphInner, op: &Op<'_>) -> GraphResult<Resp> {
    let map = json_body(op.req)?;
    let mut message_map = None;
    let mut save = true;
    for (key, value) in &map {
        match key.to_ascii_lowercase().as_str() {
            "message" => {
                message_map = Some(
                    value
                        .as_object()
                        .ok_or_else(|| convert_error(value, "microsoft.graph.message"))?,
                );
            }
            "savetosentitems" if !value.is_null() => save = as_bool(value)?,
            "savetosentitems" => {}
            _ => return Err(graph_errors::body_unknown_property(key, "sendMail")),
        }
    }
    let message_map = message_map
        .ok_or_else(|| graph_errors::invalid_parameter("The message parameter is missing."))?;
    let patch = parse_patch(message_map, true, op.ctx.now)?;
    let mut m = Message::blank(op.ctx.now, new_message_id(&op.target.address));
    patch.apply(&mut m);
    submit(inner, op, m, save)?;
    Ok(Resp::empty(StatusCode::ACCEPTED))
}

fn prefixed(prefix: &str, subject: &str) -> String {
    if subject
        .to_ascii_lowercase()
        .starts_with(&prefix.to_ascii_lowercase())
    {
        subject.to_string()
    } else {
        format!("{prefix} {subject}")
    }
}

/// The quoted original below a reply's or forward's comment.
fn quoted_body(original: &Message, comment: &str) -> Body {
    let from = original
        .from
        .as_ref()
        .map(mime::mailbox_header)
        .unwrap_or_default();
    let to = original
        .to
        .iter()
        .map(mime::mailbox_header)
        .collect::<Vec<_>>()
        .join("; ");
    let sent = mime::rfc5322_date(original.sent.unwrap_or(original.received));
    match original.body.kind {
        BodyType::Html => {
            let inner_html = original
                .body
                .content
                .split_once("<body")
                .and_then(|(_, rest)| rest.split_once('>'))
                .map_or(original.body.content.as_str(), |(_, rest)| rest);
            let inner_html = inner_html.split("</body>").next().unwrap_or(inner_html);
            Body {
                kind: BodyType::Html,
                content: format!(
                    "<html><head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\r\n</head>\r\n<body>\r\n<div>{}</div>\r\n<hr style=\"display:inline-block;width:98%\" tabindex=\"-1\">\r\n<div id=\"divRplyFwdMsg\" dir=\"ltr\"><b>From:</b> {}<br>\r\n<b>Sent:</b> {}<br>\r\n<b>To:</b> {}<br>\r\n<b>Subject:</b> {}</div>\r\n<div>{}</div>\r\n</body>\r\n</html>\r\n",
                    mime::escape_html(comment),
                    mime::escape_html(&from),
                    sent,
                    mime::escape_html(&to),
                    mime::escape_html(&original.subject),
                    inner_html
                ),
            }
        }
        BodyType::Text => Body {
            kind: BodyType::Text,
            content: format!(
                "{comment}\r\n\r\n________________________________\r\nFrom: {from}\r\nSent: {sent}\r\nTo: {to}\r\nSubject: {}\r\n\r\n{}",
                original.subject, original.body.content
            ),
        },
    }
}

/// `reply`/`replyAll` body: `comment`, and optionally a `message` with more recipients.
fn reply_parts(
    map: &Map<String, Value>,
    now: time::OffsetDateTime,
) -> GraphResult<(String, MessagePatch, Option<Vec<Address>>)> {
    let mut comment = String::new();
    let mut patch = MessagePatch::default();
    let mut to = None;
    for (key, value) in map {
        match key.to_ascii_lowercase().as_str() {
            "comment" => {
                comment = if value.is_null() {
                    String::new()
                } else {
                    as_string(value)?
                }
            }
            "message" => {
                let o = value
                    .as_object()
                    .ok_or_else(|| convert_error(value, "microsoft.graph.message"))?;
                patch = parse_patch(o, true, now)?;
            }
            "torecipients" => to = Some(as_recipients(value)?),
            _ => return Err(graph_errors::body_unknown_property(key, "message")),
        }
    }
    Ok((comment, patch, to))
}

pub(crate) fn reply(inner: &mut GraphInner, op: &Op<'_>, id: &str, all: bool) -> GraphResult<Resp> {
    let map = optional_body(op.req)?;
    let (comment, mut patch, _) = reply_parts(&map, op.ctx.now)?;
    let mb = mailbox(inner, op)?;
    let seq = message_seq(mb, id)?;
    let original = mb
        .messages
        .get(&seq)
        .cloned()
        .ok_or_else(graph_errors::item_not_found)?;
    let me = op.target.address.to_ascii_lowercase();
    let mut to: Vec<Address> = if original.reply_to.is_empty() {
        original.from.iter().cloned().collect()
    } else {
        original.reply_to.clone()
    };
    let mut cc = Vec::new();
    if all {
        to.extend(original.to.iter().cloned());
        cc.extend(original.cc.iter().cloned());
    }
    let mut seen = HashSet::new();
    let mut keep = |a: &Address| {
        a.address.to_ascii_lowercase() != me && seen.insert(a.address.to_ascii_lowercase())
    };
    to.retain(&mut keep);
    cc.retain(&mut keep);
    if to.is_empty() && cc.is_empty() {
        // Replying to one's own message goes back to its recipients.
        to = original.to.clone();
    }
    let mut m = Message::blank(op.ctx.now, new_message_id(&op.target.address));
    m.subject = prefixed("RE:", &original.subject);
    m.to = to;
    m.cc = cc;
    m.body = quoted_body(&original, &comment);
    m.conversation_id = original.conversation_id.clone();
    m.in_reply_to = Some(original.internet_message_id.clone());
    patch.subject = None;
    patch.body = None;
    patch.apply(&mut m);
    submit(inner, op, m, true)?;
    Ok(Resp::empty(StatusCode::ACCEPTED))
}

pub(crate) fn forward(inner: &mut GraphInner, op: &Op<'_>, id: &str) -> GraphResult<Resp> {
    let map = json_body(op.req)?;
    let (comment, mut patch, to) = reply_parts(&map, op.ctx.now)?;
    let mb = mailbox(inner, op)?;
    let seq = message_seq(mb, id)?;
    let original = mb
        .messages
        .get(&seq)
        .cloned()
        .ok_or_else(graph_errors::item_not_found)?;
    let mut m = Message::blank(op.ctx.now, new_message_id(&op.target.address));
    m.subject = prefixed("FW:", &original.subject);
    m.to = to.unwrap_or_default();
    m.body = quoted_body(&original, &comment);
    m.conversation_id = original.conversation_id.clone();
    for a in &original.attachments {
        m.add_attachment(a.clone());
    }
    patch.subject = None;
    patch.body = None;
    patch.apply(&mut m);
    submit(inner, op, m, true)?;
    Ok(Resp::empty(StatusCode::ACCEPTED))
}

// ----- delta -----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChangeType {
    All,
    Created,
    Updated,
    Deleted,
}

/// Where a delta round stands: the folder, the version the round started from, the version it
/// runs to, and the last version already returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DeltaState {
    folder: u64,
    since: u64,
    snapshot: u64,
    cursor: u64,
}

fn encode_state(kind: &str, values: &[u64]) -> String {
    let text = values
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".");
    URL_SAFE_NO_PAD.encode(format!("{kind}:{text}"))
}

fn decode_state(token: &str, kind: &str, n: usize) -> GraphResult<Vec<u64>> {
    URL_SAFE_NO_PAD
        .decode(token.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            let values: Vec<u64> = s
                .strip_prefix(kind)?
                .strip_prefix(':')?
                .split('.')
                .map(|v| v.parse().ok())
                .collect::<Option<_>>()?;
            (values.len() == n).then_some(values)
        })
        .ok_or_else(|| graph_errors::bad_request("The delta token is invalid or expired."))
}

pub(crate) fn delta(inner: &GraphInner, op: &Op<'_>, folder: &str) -> GraphResult<Resp> {
    let mb = mailbox(inner, op)?;
    let req = op.req;
    let change_type = match req
        .option("changeType")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => ChangeType::All,
        Some("created") => ChangeType::Created,
        Some("updated") => ChangeType::Updated,
        Some("deleted") => ChangeType::Deleted,
        Some(other) => {
            return Err(graph_errors::bad_request(format!(
                "Unsupported changeType '{other}'."
            )));
        }
    };
    // Delta takes $select, $top, a lower bound on receivedDateTime, and the state tokens.
    let stripped = Req {
        query: req
            .query
            .iter()
            .filter(|(k, _)| {
                let bare = k.trim_start_matches('$').to_ascii_lowercase();
                bare != "deltatoken" && bare != "skiptoken" && bare != "changetype"
            })
            .cloned()
            .collect(),
        ..req.clone()
    };
    let q = parse_query(&stripped, &MESSAGE)?;
    if q.filter
        .as_ref()
        .is_some_and(|f| !f.only_lower_bounds("receivedDateTime"))
        || q.search.is_some()
        || q.skip > 0
        || q.orderby
            .iter()
            .any(|(p, d)| *p != "receivedDateTime" || !d)
    {
        return Err(graph_errors::bad_request(
            "Delta of messages supports $select, $top, $expand, $filter=receivedDateTime ge|gt {value} and $orderby=receivedDateTime desc only.",
        ));
    }
    let folder = mb.folder_by_ref(folder)?;
    let state = if let Some(token) = req.option("$skiptoken") {
        let v = decode_state(token, "page", 4)?;
        DeltaState {
            folder: v[0],
            since: v[1],
            snapshot: v[2],
            cursor: v[3],
        }
    } else if let Some(token) = req.option("$deltatoken") {
        let v = decode_state(token, "delta", 2)?;
        DeltaState {
            folder: v[0],
            since: v[1],
            snapshot: mb.version(),
            cursor: v[1],
        }
    } else {
        DeltaState {
            folder,
            since: 0,
            snapshot: mb.version(),
            cursor: 0,
        }
    };
    if state.folder != folder || state.since > mb.version() {
        return Err(graph_errors::bad_request(
            "The delta token is invalid or expired.",
        ));
    }
    let size = q
        .top
        .or(op.ctx.prefer.max_page_size)
        .unwrap_or(10)
        .clamp(1, 1000);
    let mut value = Vec::new();
    let mut last = state.cursor;
    let mut more = false;
    for (version, change) in mb.changes(state.cursor, state.snapshot) {
        let entry = match change {
            Change::Message(seq) => {
                let Some(m) = mb.messages.get(&seq) else {
                    continue;
                };
                let created = m.created_version > state.since;
                let wanted = m.folder == folder
                    && match change_type {
                        ChangeType::All => true,
                        ChangeType::Created => created,
                        ChangeType::Updated => !created,
                        ChangeType::Deleted => false,
                    }
                    && q.filter.as_ref().is_none_or(|e| {
                        e.matches(&MessageRow {
                            m,
                            folder_id: mb.folder_id(m.folder),
                        })
                    });
                if !wanted {
                    continue;
                }
                message_json(mb, m, &q, op.ctx)
            }
            Change::Removed { folder: from, seq } => {
                if from != folder
                    || state.since == 0
                    || matches!(change_type, ChangeType::Created | ChangeType::Updated)
                {
                    continue;
                }
                json!({
                    "@odata.type": "#microsoft.graph.message",
                    "id": mb.message_id(seq),
                    "@removed": {"reason": "deleted"},
                })
            }
        };
        if value.len() == size {
            more = true;
            break;
        }
        value.push(entry);
        last = version;
    }
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        format!("{}/$metadata#Collection(message)", op.ctx.graph_url()).into(),
    );
    if more {
        let token = encode_state("page", &[folder, state.since, state.snapshot, last]);
        body.insert(
            "@odata.nextLink".into(),
            link(op.ctx, req, &[("$skiptoken", &token)]).into(),
        );
    } else {
        let token = encode_state("delta", &[folder, state.snapshot]);
        body.insert(
            "@odata.deltaLink".into(),
            link(op.ctx, req, &[("$deltatoken", &token)]).into(),
        );
    }
    body.insert("value".into(), Value::Array(value));
    let mut resp = Resp::ok(Value::Object(body));
    if let Some(n) = op.ctx.prefer.max_page_size {
        resp.header("Preference-Applied", format!("odata.maxpagesize={n}"));
    }
    preference_applied(op.ctx, &mut resp);
    Ok(resp)
}
