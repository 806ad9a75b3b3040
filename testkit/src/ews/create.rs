//! CreateItem (messages with every MessageDisposition, calendar items with meeting
//! invitations, contacts, replies and forwards) and SendItem: what submits mail.

//! DeleteItem and CreateAttachment.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;

use super::calendar;
use super::contacts;
use super::dispatch::Op;
use super::folders::{self, FolderKind};
use super::ids::{Id, Kind, change_key};
use super::items::{self, ItemRef};
use super::soap::{self, EwsError, EwsResult};
use super::update::{check_change_key, item_ids};
use super::xml::Element;
use crate::directory::MailboxRight;
use crate::mailstore::Mailboxes;
use crate::mailstore::content::{Address, BodyType, FlagStatus, Importance};
use crate::mailstore::mailbox::{Attachment, Body, Message};
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

pub(crate) fn new_attachment(el: &Element, now: time::OffsetDateTime) -> EwsResult<Attachment> {
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
pub(crate) fn set_message_field(
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

pub(crate) fn created_xml(store: &Mailboxes, address: &str, item: ItemRef) -> String {
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

pub(crate) fn items_xml(content: &str) -> String {
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
                        calendar::invite(store, op, &address, &event, None);
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
            check_change_key(el, &change_key(Kind::Message, draft.version), "Send")?;
            if !draft.is_draft {
                return Err(EwsError::new(
                    "ErrorInvalidItemForOperationSendItem",
                    "The item is not a draft and cannot be sent.",
                ));
            }
            let folder = if save {
                Some(match saved {
                    Some(f) => {
                        let (owner, seq) = folders::resolve(op, store, f)?;
                        if !owner.eq_ignore_ascii_case(&address) {
                            return Err(EwsError::invalid_request(
                                "SavedItemFolderId must be in the mailbox of the draft.",
                            ));
                        }
                        seq
                    }
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
