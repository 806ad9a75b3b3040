//! Operations that change items in place: UpdateItem (ConflictResolution, SetItemField,
//! AppendToItemField, DeleteItemField), MoveItem/CopyItem, DeleteItem and CreateAttachment.

//! DeleteItem and CreateAttachment.

use super::calendar::{self, parse_attendees, parse_body, parse_show_as};
use super::contacts;
use super::create::{created_xml, items_xml, new_attachment, set_message_field};
use super::dispatch::Op;
use super::folders::{self, FolderKind};
use super::ids::{Id, Kind, change_key};
use super::items::{self, ItemRef, attachment_id, parse_time};
use super::soap::{self, EwsError, EwsResult};
use super::xml::{Element, Xml};
use crate::mailstore::Mailboxes;
use crate::mailstore::content::FlagStatus;
use crate::mailstore::mailbox::Exception;

pub(crate) fn item_ids(body: &Element) -> EwsResult<&Element> {
    body.child("ItemIds")
        .ok_or_else(|| EwsError::schema("'ItemIds' is missing"))
}

/// Checks a ChangeKey against the item's current one, as `ConflictResolution` says:
/// `NeverOverwrite` fails on a stale key (`ErrorIrresolvableConflict`), `AutoResolve` and
/// `AlwaysOverwrite` apply the change; `Send` (SendItem) fails with `ErrorStaleObject`.
pub(crate) fn check_change_key(el: &Element, current: &str, resolution: &str) -> EwsResult<()> {
    match el.attr("ChangeKey") {
        Some(k) if k != current && resolution == "NeverOverwrite" => Err(EwsError::new(
            "ErrorIrresolvableConflict",
            "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
        )),
        Some(k) if k != current && resolution == "Send" => Err(EwsError::new(
            "ErrorStaleObject",
            "The change key passed in the request does not match the current change key for the item.",
        )),
        _ => Ok(()),
    }
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
    notify: bool,
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
    // Attendees added to a meeting the mailbox organizes, to invite once the update is done.
    let mut invite = None;
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
                        end: start.checked_add(duration).unwrap_or(start),
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
                    "calendar:StartTimeZone" => {
                        if let Some(zone) = calendar::zone_id(v)? {
                            e.time_zone = zone;
                        }
                    }
                    "calendar:EndTimeZone" => {
                        calendar::zone_id(v)?;
                    }
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
            let before: Vec<String> = mb.events.get(&seq).map_or_else(Vec::new, |old| {
                old.attendees
                    .iter()
                    .map(|a| a.address.address.to_ascii_lowercase())
                    .collect()
            });
            let added: Vec<String> = e
                .attendees
                .iter()
                .map(|a| a.address.address.to_ascii_lowercase())
                .filter(|a| !before.contains(a))
                .collect();
            if notify && e.is_organizer && !added.is_empty() {
                invite = Some((e.clone(), added));
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
    if let Some((event, added)) = invite {
        calendar::invite(store, op, &address, &event, Some(&added));
    }
    Ok(items_xml(&created_xml(store, &address, item)))
}

pub(crate) fn update_item(op: &Op<'_>, store: &mut Mailboxes, body: &Element) -> EwsResult<String> {
    let resolution = body
        .attr("ConflictResolution")
        .unwrap_or("AutoResolve")
        .to_string();
    let notify = body
        .attr("SendMeetingInvitationsOrCancellations")
        .is_none_or(|v| v != "SendToNone");
    let changes = body
        .child("ItemChanges")
        .ok_or_else(|| EwsError::schema("'ItemChanges' is missing"))?;
    let mut results = Vec::new();
    for change in changes.all("ItemChange") {
        results.push(
            update_one(op, store, change, &resolution, notify).map(|items| {
                format!("{items}<m:ConflictResults><t:Count>0</t:Count></m:ConflictResults>")
            }),
        );
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
    let cancel = body
        .attr("SendMeetingCancellations")
        .is_none_or(|v| v != "SendToNone");
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
                    let removed = mb.events.remove(&seq);
                    mb.touch_event(seq, now);
                    if let Some(event) = removed
                        && cancel
                        && event.is_organizer
                    {
                        calendar::cancel(store, op, &address, &event);
                    }
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
