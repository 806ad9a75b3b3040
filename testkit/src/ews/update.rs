//! Operations that change the mail store: CreateItem (messages with every MessageDisposition,
//! calendar items, contacts, replies and forwards), SendItem, UpdateItem, MoveItem/CopyItem,
//! DeleteItem and CreateAttachment.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;

use super::calendar::{self, parse_attendees, parse_body, parse_show_as};
use super::contacts;
use super::dispatch::Op;
use super::folders::{self, FolderKind};
use super::ids::{Id, Kind, change_key};
use super::items::{self, ItemRef, attachment_id, parse_time};
use super::soap::{self, EwsError, EwsResult};
use super::xml::{Element, Xml};
use crate::directory::MailboxRight;
use crate::mailstore::Mailboxes;
use crate::mailstore::content::{Address, BodyType, FlagStatus, Importance};
use crate::mailstore::mailbox::{Attachment, Body, Exception, Message};
use crate::mailstore::mime;

/// A new Message-ID in Exchange's style.
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

fn addresses(el: Option<&Element>) -> Vec<Address> {
    el.map(|list| {
        list.all("Mailbox")
            .filter_map(|m| {
                let address = m.text_at(&["EmailAddress"])?;
                Some(Address::new(
                    m.text_at(&["Name"]).unwrap_or_default(),
                    address,
                ))
            })
            .collect()
    })
    .unwrap_or_default()
}

fn new_attachment(el: &Element, now: time::OffsetDateTime) -> EwsResult<Attachment> {
    if el.name != "FileAttachment" {
        return Err(EwsError::new(
            "ErrorInvalidAttachmentSubfilter",
            "The mock only takes file attachments.",
        ));
    }
    let bytes = STANDARD
        .decode(el.text_at(&["Content"]).unwrap_or_default())
        .map_err(|_| EwsError::schema("an attachment's Content is not base64"))?;
    Ok(Attachment {
        seq: 0,
        name: el.text_at(&["Name"]).unwrap_or("attachment").to_string(),
        content_type: el
            .text_at(&["ContentType"])
            .unwrap_or("application/octet-stream")
            .to_string(),
        bytes: Bytes::from(bytes),
        is_inline: el.text_at(&["IsInline"]) == Some("true"),
        content_id: el.text_at(&["ContentId"]).map(str::to_string),
        modified: now,
    })
}

/// Applies one message property from an element of a `t:Message`.
fn set_message_field(
    m: &mut Message,
    uri: &str,
    el: &Element,
    now: time::OffsetDateTime,
) -> EwsResult<()> {
    match uri {
        "item:Subject" => m.subject = el.text.trim().to_string(),
        "item:Body" => {
            m.body = Body {
                kind: if el.attr("BodyType") == Some("HTML") {
                    BodyType::Html
                } else {
                    BodyType::Text
                },
                content: el.text.clone(),
            };
        }
        "message:IsRead" => m.is_read = el.text.trim() == "true",
        "item:Importance" => {
            m.importance = match el.text.trim() {
                "High" => Importance::High,
                "Low" => Importance::Low,
                _ => Importance::Normal,
            };
        }
        "item:Categories" => m.categories = el.all("String").map(|s| s.text.clone()).collect(),
        "message:ToRecipients" => m.to = addresses(Some(el)),
        "message:CcRecipients" => m.cc = addresses(Some(el)),
        "message:BccRecipients" => m.bcc = addresses(Some(el)),
        "message:ReplyTo" => m.reply_to = addresses(Some(el)),
        "message:From" => m.from = addresses(Some(el)).into_iter().next(),
        "item:Flag" => {
            m.flag = match el.text_at(&["FlagStatus"]) {
                Some("Flagged") => FlagStatus::Flagged,
                Some("Complete") => FlagStatus::Complete,
                _ => FlagStatus::NotFlagged,
            };
        }
        "item:Attachments" => {
            for a in &el.children {
                m.add_attachment(new_attachment(a, now)?);
            }
        }
        "item:ItemClass"
        | "item:Sensitivity"
        | "message:IsReadReceiptRequested"
        | "message:IsDeliveryReceiptRequested" => {}
        other => {
            return Err(EwsError::new(
                "ErrorInvalidPropertySet",
                format!("The mock cannot set '{other}' on a message."),
            ));
        }
    }
    Ok(())
}

fn message_uri(name: &str) -> String {
    match name {
        "Subject" | "Body" | "Importance" | "Categories" | "Attachments" | "ItemClass"
        | "Sensitivity" | "Flag" => format!("item:{name}"),
        other => format!("message:{other}"),
    }
}

/// The target mailbox's address for a send: checks the right to send as `from`.
fn check_send_as(op: &Op<'_>, mailbox: &str, from: Option<&Address>) -> EwsResult<()> {
    let Some(from) = from.filter(|f| !f.address.eq_ignore_ascii_case(mailbox)) else {
        return Ok(());
    };
    if op.principal.is_app_only() {
        return Ok(());
    }
    let allowed = op
        .dir
        .tenants
        .iter()
        .any(|t| t.has_right(&from.address, &op.acting, MailboxRight::SendAs));
    if allowed {
        Ok(())
    } else {
        Err(EwsError::new(
            "ErrorSendAsDenied",
            "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account.",
        ))
    }
}

/// Submits `message` from `mailbox`: delivers a copy to each recipient the mock has, saves it
/// in `save_in` when given, records the submission.
fn submit(
    op: &Op<'_>,
    store: &mut Mailboxes,
    mailbox: &str,
    mut message: Message,
    save_in: Option<u64>,
) -> EwsResult<Option<u64>> {
    let recipients: Vec<Address> = message
        .to
        .iter()
        .chain(&message.cc)
        .chain(&message.bcc)
        .cloned()
        .collect();
    if recipients.is_empty() {
        return Err(EwsError::new(
            "ErrorInvalidRecipients",
            "At least one recipient isn't valid., A message can't be sent because it contains no recipients.",
        ));
    }
    if let Some(bad) = recipients
        .iter()
        .find(|r| !r.address.contains('@') || r.address.contains([' ', ',', ';', '<', '>']))
    {
        return Err(EwsError::new(
            "ErrorInvalidRecipients",
            format!("At least one recipient isn't valid.: {}", bad.address),
        ));
    }
    check_send_as(op, mailbox, message.from.as_ref())?;
    let from = match &message.from {
        Some(f) => op
            .dir
            .recipient(&f.address)
            .map_or_else(|| f.clone(), |r| Address::new(r.display_name, r.address)),
        None => Address::new(op.display_name(mailbox), mailbox),
    };
    let now = op.now;
    message.from = Some(from.clone());
    message.sender = Some(from);
    message.is_draft = false;
    message.is_read = true;
    message.sent = Some(now);
    message.received = now;
    message.modified = now;
    let mut seen = HashSet::new();
    for r in &recipients {
        let key = r.address.trim().to_ascii_lowercase();
        if !seen.insert(key.clone()) {
            continue;
        }
        let Some(mb) = store.mailbox_mut(&key) else {
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
        store.delivered(&address, &message.internet_message_id, &message.subject);
    }
    store.submitted(mailbox, &message.internet_message_id, &message.subject);
    match save_in {
        Some(folder) => {
            message.folder = folder;
            let mb = store
                .mailbox_mut(mailbox)
                .ok_or_else(EwsError::folder_not_found)?;
            Ok(Some(mb.insert_message(message)))
        }
        None => Ok(None),
    }
}

fn created_xml(store: &Mailboxes, address: &str, item: ItemRef) -> String {
    let Some(mb) = store.mailbox(address) else {
        return String::new();
    };
    match item {
        ItemRef::Message(seq) => mb.messages.get(&seq).map_or_else(String::new, |m| {
            format!(
                "<t:Message>{}</t:Message>",
                soap::id_element(
                    "ItemId",
                    &Id::new(Kind::Message, &mb.address, seq).encode(),
                    &change_key(Kind::Message, m.version)
                )
            )
        }),
        ItemRef::Event(seq) => mb.events.get(&seq).map_or_else(String::new, |e| {
            format!(
                "<t:CalendarItem>{}</t:CalendarItem>",
                soap::id_element(
                    "ItemId",
                    &Id::new(Kind::Event, &mb.address, seq).encode(),
                    &change_key(Kind::Event, e.version)
                )
            )
        }),
        ItemRef::Occurrence(seq, start) => mb.events.get(&seq).map_or_else(String::new, |e| {
            format!(
                "<t:CalendarItem>{}</t:CalendarItem>",
                soap::id_element(
                    "ItemId",
                    &Id::new(Kind::Occurrence, &mb.address, seq)
                        .with_sub(start)
                        .encode(),
                    &change_key(Kind::Event, e.version)
                )
            )
        }),
        ItemRef::Contact(seq) => mb.contacts.get(&seq).map_or_else(String::new, |c| {
            format!(
                "<t:Contact>{}</t:Contact>",
                soap::id_element(
                    "ItemId",
                    &Id::new(Kind::Contact, &mb.address, seq).encode(),
                    &change_key(Kind::Contact, c.version)
                )
            )
        }),
    }
}

fn items_xml(content: &str) -> String {
    if content.is_empty() {
        "<m:Items/>".into()
    } else {
        format!("<m:Items>{content}</m:Items>")
    }
}

/// A reply or forward built from the original.
fn response_message(op: &Op<'_>, store: &Mailboxes, el: &Element) -> EwsResult<(String, Message)> {
    let reference = el
        .child("ReferenceItemId")
        .ok_or_else(|| EwsError::schema(format!("'{}' needs a ReferenceItemId", el.name)))?;
    let (address, item) = items::resolve(op, store, reference)?;
    let ItemRef::Message(seq) = item else {
        return Err(EwsError::new(
            "ErrorInvalidReferenceItem",
            "The reference item does not support the requested operation.",
        ));
    };
    let mb = store
        .mailbox(&address)
        .ok_or_else(EwsError::item_not_found)?;
    let original = mb.messages.get(&seq).ok_or_else(EwsError::item_not_found)?;
    let me = address.to_ascii_lowercase();
    let mut m = Message::blank(op.now, new_message_id(&address));
    let (prefix, to, cc) = match el.name.as_str() {
        "ReplyToItem" => (
            "RE: ",
            original
                .reply_to
                .first()
                .or(original.from.as_ref())
                .cloned()
                .into_iter()
                .collect(),
            Vec::new(),
        ),
        "ReplyAllToItem" => {
            let mut to: Vec<Address> = original.from.iter().cloned().collect();
            to.extend(
                original
                    .to
                    .iter()
                    .filter(|a| !a.address.eq_ignore_ascii_case(&me))
                    .cloned(),
            );
            let cc = original
                .cc
                .iter()
                .filter(|a| !a.address.eq_ignore_ascii_case(&me))
                .cloned()
                .collect();
            ("RE: ", to, cc)
        }
        _ => ("FW: ", Vec::new(), Vec::new()),
    };
    m.to = to;
    m.cc = cc;
    for (tag, list) in [
        ("ToRecipients", 0),
        ("CcRecipients", 1),
        ("BccRecipients", 2),
    ] {
        let extra = addresses(el.child(tag));
        match list {
            0 => m.to.extend(extra),
            1 => m.cc.extend(extra),
            _ => m.bcc.extend(extra),
        }
    }
    m.subject = el
        .text_at(&["Subject"])
        .map(str::to_string)
        .unwrap_or_else(|| format!("{prefix}{}", original.subject));
    let new_body = el.child("NewBodyContent");
    let html = new_body.is_some_and(|b| b.attr("BodyType") == Some("HTML"))
        || original.body.kind == BodyType::Html;
    let comment = new_body.map(|b| b.text.clone()).unwrap_or_default();
    let quoted = match original.body.kind {
        BodyType::Html => original.body.content.clone(),
        BodyType::Text => mime::text_to_html(&original.body.content),
    };
    m.body = if html {
        Body {
            kind: BodyType::Html,
            content: format!("{comment}<hr>{quoted}"),
        }
    } else {
        Body {
            kind: BodyType::Text,
            content: format!("{comment}\r\n\r\n-----\r\n{}", original.body.content),
        }
    };
    m.in_reply_to = Some(original.internet_message_id.clone());
    m.conversation_id = original.conversation_id.clone();
    if el.name == "ForwardItem" {
        m.attachments = original.attachments.clone();
        m.next_attachment = original.next_attachment;
    }
    Ok((address, m))
}

pub(crate) fn create_item(op: &Op<'_>, store: &mut Mailboxes, body: &Element) -> EwsResult<String> {
    let disposition = body.attr("MessageDisposition");
    let invitations = body
        .attr("SendMeetingInvitations")
        .unwrap_or("SendToAllAndSaveCopy");
    let saved = body
        .child("SavedItemFolderId")
        .and_then(|s| s.children.first());
    let list = body
        .child("Items")
        .ok_or_else(|| EwsError::schema("'Items' is missing"))?;
    let mut results = Vec::new();
    for el in &list.children {
        let result = (|| -> EwsResult<String> {
            let folder = match saved {
                Some(f) => Some(folders::resolve(op, store, f)?),
                None => None,
            };
            match el.name.as_str() {
                "Message" | "ReplyToItem" | "ReplyAllToItem" | "ForwardItem" => {
                    let (address, mut m) = if el.name == "Message" {
                        let address = match &folder {
                            Some((a, _)) => a.clone(),
                            None => op.mailbox(None)?,
                        };
                        let mut m = Message::blank(op.now, new_message_id(&address));
                        for child in &el.children {
                            set_message_field(&mut m, &message_uri(&child.name), child, op.now)?;
                        }
                        (address, m)
                    } else {
                        response_message(op, store, el)?
                    };
                    let disposition = disposition.ok_or_else(|| {
                        EwsError::new(
                            "ErrorMessageDispositionRequired",
                            "MessageDisposition attribute is required.",
                        )
                    })?;
                    let mb = store
                        .mailbox(&address)
                        .ok_or_else(|| EwsError::non_existent_mailbox(&address))?;
                    let folder_of = |wk: &str| match &folder {
                        Some((a, seq)) if a.eq_ignore_ascii_case(&address) => Ok(*seq),
                        Some(_) => Err(EwsError::invalid_request(
                            "SavedItemFolderId must be in the mailbox the item is created in.",
                        )),
                        None => mb.well_known(wk).ok_or_else(EwsError::folder_not_found),
                    };
                    match disposition {
                        "SaveOnly" => {
                            let f = folder_of("drafts")?;
                            m.folder = f;
                            let mb = store
                                .mailbox_mut(&address)
                                .ok_or_else(EwsError::folder_not_found)?;
                            let seq = mb.insert_message(m);
                            Ok(items_xml(&created_xml(
                                store,
                                &address,
                                ItemRef::Message(seq),
                            )))
                        }
                        "SendOnly" => {
                            submit(op, store, &address, m, None)?;
                            Ok(items_xml(""))
                        }
                        "SendAndSaveCopy" => {
                            let f = folder_of("sentitems")?;
                            submit(op, store, &address, m, Some(f))?;
                            Ok(items_xml(""))
                        }
                        other => Err(EwsError::schema(format!(
                            "'{other}' is not a MessageDisposition"
                        ))),
                    }
                }
                "CalendarItem" => {
                    let address = match &folder {
                        Some((a, seq)) => {
                            let mb = store.mailbox(a).ok_or_else(EwsError::folder_not_found)?;
                            if folders::kind_of(mb, *seq) != Some(FolderKind::Calendar) {
                                return Err(EwsError::new(
                                    "ErrorCannotCreateCalendarItemInNonCalendarFolder",
                                    "Calendar items can only be created in a calendar folder.",
                                ));
                            }
                            a.clone()
                        }
                        None => op.mailbox(None)?,
                    };
                    let event = calendar::new_event(op, &address, el)?;
                    let mb = store
                        .mailbox_mut(&address)
                        .ok_or_else(EwsError::folder_not_found)?;
                    let seq = mb.insert_event(event);
                    if invitations != "SendToNone"
                        && let Some(event) = store
                            .mailbox(&address)
                            .and_then(|mb| mb.events.get(&seq))
                            .cloned()
                    {
                        calendar::invite(store, op, &address, &event);
                    }
                    Ok(items_xml(&created_xml(
                        store,
                        &address,
                        ItemRef::Event(seq),
                    )))
                }
                "Contact" => {
                    let address = match &folder {
                        Some((a, _)) => a.clone(),
                        None => op.mailbox(None)?,
                    };
                    let contact = contacts::new_contact(el, op.now)?;
                    let mb = store
                        .mailbox_mut(&address)
                        .ok_or_else(EwsError::folder_not_found)?;
                    let seq = mb.insert_contact(contact);
                    Ok(items_xml(&created_xml(
                        store,
                        &address,
                        ItemRef::Contact(seq),
                    )))
                }
                other => Err(EwsError::new(
                    "ErrorInvalidRequest",
                    format!("The mock cannot create a '{other}'."),
                )),
            }
        })();
        results.push(result);
    }
    Ok(soap::response(
        "CreateItem",
        "CreateItemResponseMessage",
        &results,
    ))
}

fn item_ids(body: &Element) -> EwsResult<&Element> {
    body.child("ItemIds")
        .ok_or_else(|| EwsError::schema("'ItemIds' is missing"))
}

/// Checks a ChangeKey against the item's current one.
fn check_change_key(el: &Element, current: &str, resolution: &str) -> EwsResult<()> {
    match el.attr("ChangeKey") {
        Some(k) if k != current && resolution != "AlwaysOverwrite" => Err(EwsError::new(
            "ErrorIrresolvableConflict",
            "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
        )),
        _ => Ok(()),
    }
}

pub(crate) fn send_item(op: &Op<'_>, store: &mut Mailboxes, body: &Element) -> EwsResult<String> {
    let save = body.attr("SaveItemToFolder") != Some("false");
    let saved = body
        .child("SavedItemFolderId")
        .and_then(|s| s.children.first());
    let mut results = Vec::new();
    for el in &item_ids(body)?.children {
        results.push((|| {
            let (address, item) = items::resolve(op, store, el)?;
            let ItemRef::Message(seq) = item else {
                return Err(EwsError::new(
                    "ErrorInvalidItemForOperationSendItem",
                    "The item is not a message and cannot be sent.",
                ));
            };
            let mb = store
                .mailbox(&address)
                .ok_or_else(EwsError::item_not_found)?;
            let draft = mb
                .messages
                .get(&seq)
                .cloned()
                .ok_or_else(EwsError::item_not_found)?;
            check_change_key(el, &change_key(Kind::Message, draft.version), "")?;
            if !draft.is_draft {
                return Err(EwsError::new(
                    "ErrorInvalidItemForOperationSendItem",
                    "The item is not a draft and cannot be sent.",
                ));
            }
            let folder = if save {
                Some(match saved {
                    Some(f) => folders::resolve(op, store, f)?.1,
                    None => mb
                        .well_known("sentitems")
                        .ok_or_else(EwsError::folder_not_found)?,
                })
            } else {
                None
            };
            submit(op, store, &address, draft, folder)?;
            if let Some(mb) = store.mailbox_mut(&address) {
                mb.remove_message(seq);
            }
            Ok(String::new())
        })());
    }
    Ok(soap::response(
        "SendItem",
        "SendItemResponseMessage",
        &results,
    ))
}

fn field_uri(change: &Element) -> Option<(String, Option<String>)> {
    if let Some(f) = change.child("FieldURI") {
        return f.attr("FieldURI").map(|u| (u.to_string(), None));
    }
    change.child("IndexedFieldURI").and_then(|f| {
        f.attr("FieldURI")
            .map(|u| (u.to_string(), f.attr("FieldIndex").map(str::to_string)))
    })
}

/// The property element inside a SetItemField's item (`t:Message/t:IsRead`).
fn value_of<'e>(change: &'e Element, uri: &str) -> EwsResult<&'e Element> {
    let item = change
        .children
        .iter()
        .find(|c| {
            !matches!(
                c.name.as_str(),
                "FieldURI" | "IndexedFieldURI" | "ExtendedFieldURI"
            )
        })
        .ok_or_else(|| EwsError::schema("SetItemField needs an item with the new value"))?;
    let local = uri.split_once(':').map_or(uri, |(_, l)| l);
    let local = match local {
        "EmailAddress" => "EmailAddresses",
        "PhoneNumber" => "PhoneNumbers",
        other => other,
    };
    item.child(local)
        .ok_or_else(|| EwsError::schema(format!("the item of SetItemField has no '{local}'")))
}

fn update_one(
    op: &Op<'_>,
    store: &mut Mailboxes,
    change: &Element,
    resolution: &str,
) -> EwsResult<String> {
    let id_el = change
        .child("ItemId")
        .or_else(|| change.child("OccurrenceItemId"))
        .ok_or_else(|| EwsError::schema("ItemChange needs an ItemId"))?;
    let (address, item) = items::resolve(op, store, id_el)?;
    let updates = change
        .child("Updates")
        .ok_or_else(|| EwsError::schema("ItemChange needs Updates"))?;
    let now = op.now;
    let mb = store
        .mailbox_mut(&address)
        .ok_or_else(EwsError::item_not_found)?;
    match item {
        ItemRef::Message(seq) => {
            let current = mb.messages.get(&seq).ok_or_else(EwsError::item_not_found)?;
            check_change_key(
                id_el,
                &change_key(Kind::Message, current.version),
                resolution,
            )?;
            let mut m = current.clone();
            for u in &updates.children {
                let (uri, _) =
                    field_uri(u).ok_or_else(|| EwsError::schema("an update needs a FieldURI"))?;
                match u.name.as_str() {
                    "SetItemField" | "AppendToItemField" => {
                        set_message_field(&mut m, &uri, value_of(u, &uri)?, now)?;
                    }
                    "DeleteItemField" => match uri.as_str() {
                        "item:Categories" => m.categories.clear(),
                        "message:CcRecipients" => m.cc.clear(),
                        "message:BccRecipients" => m.bcc.clear(),
                        "item:Flag" => m.flag = FlagStatus::NotFlagged,
                        _ => {}
                    },
                    other => return Err(EwsError::schema(format!("'{other}' is not an update"))),
                }
            }
            if let Some(slot) = mb.messages.get_mut(&seq) {
                *slot = m;
            }
            mb.touch_message(seq, now);
        }
        ItemRef::Event(seq) | ItemRef::Occurrence(seq, _) => {
            let current = mb.events.get(&seq).ok_or_else(EwsError::item_not_found)?;
            check_change_key(id_el, &change_key(Kind::Event, current.version), resolution)?;
            let mut e = current.clone();
            let occurrence = match item {
                ItemRef::Occurrence(_, start) => Some(start),
                _ => None,
            };
            for u in &updates.children {
                let (uri, _) =
                    field_uri(u).ok_or_else(|| EwsError::schema("an update needs a FieldURI"))?;
                if u.name != "SetItemField" {
                    continue;
                }
                let v = value_of(u, &uri)?;
                let text = v.text.trim();
                if let Some(original) = occurrence {
                    let start = time::OffsetDateTime::from_unix_timestamp(original)
                        .map_err(|_| EwsError::malformed_id())?;
                    let duration = e.duration();
                    let x = e.exceptions.entry(original).or_insert(Exception {
                        subject: None,
                        start,
                        end: start + duration,
                        location: None,
                        body: None,
                        show_as: None,
                    });
                    match uri.as_str() {
                        "item:Subject" => x.subject = Some(text.to_string()),
                        "calendar:Location" => x.location = Some(text.to_string()),
                        "calendar:Start" => {
                            x.start = parse_time(text)
                                .ok_or_else(|| EwsError::schema("Start is not a date-time"))?
                        }
                        "calendar:End" => {
                            x.end = parse_time(text)
                                .ok_or_else(|| EwsError::schema("End is not a date-time"))?
                        }
                        "item:Body" => {
                            x.body = parse_body(&Element {
                                children: vec![v.clone()],
                                ..Element::default()
                            })
                        }
                        "calendar:LegacyFreeBusyStatus" => x.show_as = parse_show_as(text),
                        other => {
                            return Err(EwsError::new(
                                "ErrorInvalidPropertySet",
                                format!("The mock cannot set '{other}' on an occurrence."),
                            ));
                        }
                    }
                    continue;
                }
                match uri.as_str() {
                    "item:Subject" => e.subject = text.to_string(),
                    "item:Body" => {
                        if let Some(b) = parse_body(&Element {
                            children: vec![v.clone()],
                            ..Element::default()
                        }) {
                            e.body = b;
                        }
                    }
                    "calendar:Start" => {
                        e.start = parse_time(text)
                            .ok_or_else(|| EwsError::schema("Start is not a date-time"))?
                    }
                    "calendar:End" => {
                        e.end = parse_time(text)
                            .ok_or_else(|| EwsError::schema("End is not a date-time"))?
                    }
                    "calendar:Location" => e.location = text.to_string(),
                    "calendar:IsAllDayEvent" => e.is_all_day = text == "true",
                    "calendar:LegacyFreeBusyStatus" => {
                        if let Some(s) = parse_show_as(text) {
                            e.show_as = s;
                        }
                    }
                    "calendar:RequiredAttendees"
                    | "calendar:OptionalAttendees"
                    | "calendar:Resources" => {
                        let wrapper = Element {
                            children: vec![v.clone()],
                            ..Element::default()
                        };
                        let kind = parse_attendees(&wrapper);
                        let replaced = kind.first().map(|a| a.kind);
                        let tag_kind = match uri.as_str() {
                            "calendar:RequiredAttendees" => {
                                crate::mailstore::content::AttendeeType::Required
                            }
                            "calendar:OptionalAttendees" => {
                                crate::mailstore::content::AttendeeType::Optional
                            }
                            _ => crate::mailstore::content::AttendeeType::Resource,
                        };
                        let _ = replaced;
                        e.attendees.retain(|a| a.kind != tag_kind);
                        e.attendees.extend(kind);
                    }
                    other => {
                        return Err(EwsError::new(
                            "ErrorInvalidPropertySet",
                            format!("The mock cannot set '{other}' on a calendar item."),
                        ));
                    }
                }
            }
            if e.end < e.start {
                return Err(EwsError::new(
                    "ErrorCalendarEndDateIsEarlierThanStartDate",
                    "EndDate is earlier than StartDate",
                ));
            }
            if let Some(slot) = mb.events.get_mut(&seq) {
                *slot = e;
            }
            mb.touch_event(seq, now);
        }
        ItemRef::Contact(seq) => {
            let current = mb.contacts.get(&seq).ok_or_else(EwsError::item_not_found)?;
            check_change_key(
                id_el,
                &change_key(Kind::Contact, current.version),
                resolution,
            )?;
            let mut c = current.clone();
            for u in &updates.children {
                let (uri, index) =
                    field_uri(u).ok_or_else(|| EwsError::schema("an update needs a FieldURI"))?;
                match u.name.as_str() {
                    "SetItemField" | "AppendToItemField" => {
                        contacts::set_field(&mut c, &uri, index.as_deref(), value_of(u, &uri)?)?;
                    }
                    "DeleteItemField" => match uri.as_str() {
                        "contacts:CompanyName" => c.company_name = None,
                        "contacts:JobTitle" => c.job_title = None,
                        "contacts:Department" => c.department = None,
                        "contacts:OfficeLocation" => c.office_location = None,
                        _ => {}
                    },
                    _ => {}
                }
            }
            if let Some(slot) = mb.contacts.get_mut(&seq) {
                *slot = c;
            }
            mb.touch_contact(seq, now);
        }
    }
    Ok(items_xml(&created_xml(store, &address, item)))
}

pub(crate) fn update_item(op: &Op<'_>, store: &mut Mailboxes, body: &Element) -> EwsResult<String> {
    let resolution = body
        .attr("ConflictResolution")
        .unwrap_or("AutoResolve")
        .to_string();
    let changes = body
        .child("ItemChanges")
        .ok_or_else(|| EwsError::schema("'ItemChanges' is missing"))?;
    let mut results = Vec::new();
    for change in changes.all("ItemChange") {
        results.push(update_one(op, store, change, &resolution).map(|items| {
            format!("{items}<m:ConflictResults><t:Count>0</t:Count></m:ConflictResults>")
        }));
    }
    Ok(soap::response(
        "UpdateItem",
        "UpdateItemResponseMessage",
        &results,
    ))
}

pub(crate) fn move_item(
    op: &Op<'_>,
    store: &mut Mailboxes,
    body: &Element,
    copy: bool,
) -> EwsResult<String> {
    let name = if copy { "CopyItem" } else { "MoveItem" };
    let to = body
        .child("ToFolderId")
        .and_then(|t| t.children.first())
        .ok_or_else(|| EwsError::schema("'ToFolderId' is missing"))?;
    let mut results = Vec::new();
    for el in &item_ids(body)?.children {
        results.push((|| {
            let (target, folder) = folders::resolve(op, store, to)?;
            let (address, item) = items::resolve(op, store, el)?;
            let ItemRef::Message(seq) = item else {
                return Err(EwsError::new(
                    "ErrorInvalidOperation",
                    "The mock moves and copies messages only.",
                ));
            };
            if !target.eq_ignore_ascii_case(&address) {
                return Err(EwsError::new(
                    "ErrorCrossMailboxMoveCopy",
                    "Cross-mailbox moves and copies are not supported by the mock.",
                ));
            }
            let mb = store
                .mailbox_mut(&address)
                .ok_or_else(EwsError::item_not_found)?;
            if folders::kind_of(mb, folder) != Some(FolderKind::Mail) {
                return Err(EwsError::folder_not_found());
            }
            let new_seq = if copy {
                let mut m = mb
                    .messages
                    .get(&seq)
                    .cloned()
                    .ok_or_else(EwsError::item_not_found)?;
                m.folder = folder;
                mb.insert_message(m)
            } else {
                mb.move_message(seq, folder, op.now)
                    .ok_or_else(EwsError::item_not_found)?
            };
            Ok(items_xml(&created_xml(
                store,
                &address,
                ItemRef::Message(new_seq),
            )))
        })());
    }
    Ok(soap::response(
        name,
        &format!("{name}ResponseMessage"),
        &results,
    ))
}

pub(crate) fn delete_item(op: &Op<'_>, store: &mut Mailboxes, body: &Element) -> EwsResult<String> {
    let kind = body
        .attr("DeleteType")
        .unwrap_or("MoveToDeletedItems")
        .to_string();
    let mut results = Vec::new();
    for el in &item_ids(body)?.children {
        results.push((|| {
            let (address, item) = items::resolve(op, store, el)?;
            let now = op.now;
            let mb = store
                .mailbox_mut(&address)
                .ok_or_else(EwsError::item_not_found)?;
            match item {
                ItemRef::Message(seq) => {
                    let deleted = mb.well_known("deleteditems");
                    let in_deleted = mb.messages.get(&seq).map(|m| m.folder) == deleted;
                    match (kind.as_str(), deleted) {
                        ("MoveToDeletedItems", Some(d)) if !in_deleted => {
                            mb.move_message(seq, d, now);
                        }
                        _ => {
                            mb.remove_message(seq);
                        }
                    }
                }
                ItemRef::Event(seq) => {
                    mb.events.remove(&seq);
                    mb.touch_event(seq, now);
                }
                ItemRef::Occurrence(seq, start) => {
                    if let Some(e) = mb.events.get_mut(&seq) {
                        e.exceptions.remove(&start);
                        e.cancelled.insert(start);
                    }
                    mb.touch_event(seq, now);
                }
                ItemRef::Contact(seq) => {
                    mb.contacts.remove(&seq);
                }
            }
            Ok(String::new())
        })());
    }
    Ok(soap::response(
        "DeleteItem",
        "DeleteItemResponseMessage",
        &results,
    ))
}

pub(crate) fn create_attachment(
    op: &Op<'_>,
    store: &mut Mailboxes,
    body: &Element,
) -> EwsResult<String> {
    let parent = body
        .child("ParentItemId")
        .ok_or_else(|| EwsError::schema("'ParentItemId' is missing"))?;
    let list = body
        .child("Attachments")
        .ok_or_else(|| EwsError::schema("'Attachments' is missing"))?;
    let mut results = Vec::new();
    let resolved = items::resolve(op, store, parent);
    for el in &list.children {
        results.push((|| {
            let (address, item) = resolved.clone()?;
            let ItemRef::Message(seq) = item else {
                return Err(EwsError::new(
                    "ErrorInvalidOperation",
                    "The mock adds attachments to messages only.",
                ));
            };
            let attachment = new_attachment(el, op.now)?;
            let mb = store
                .mailbox_mut(&address)
                .ok_or_else(EwsError::item_not_found)?;
            let m = mb
                .messages
                .get_mut(&seq)
                .ok_or_else(EwsError::item_not_found)?;
            let a = m.add_attachment(attachment);
            mb.touch_message(seq, op.now);
            let version = mb.messages.get(&seq).map_or(0, |m| m.version);
            let mut x = Xml::new();
            x.open("m:Attachments", &[]);
            x.open("t:FileAttachment", &[]);
            x.empty(
                "t:AttachmentId",
                &[
                    ("Id", &attachment_id(mb, seq, a)),
                    (
                        "RootItemId",
                        &Id::new(Kind::Message, &mb.address, seq).encode(),
                    ),
                    ("RootItemChangeKey", &change_key(Kind::Message, version)),
                ],
            );
            x.close("t:FileAttachment");
            x.close("m:Attachments");
            Ok(x.finish())
        })());
    }
    Ok(soap::response(
        "CreateAttachment",
        "CreateAttachmentResponseMessage",
        &results,
    ))
}
