//! SyncFolderItems: an opaque SyncState (mailbox, folder, the mail store's version), changes
//! from the store's change log, `MaxChangesReturned` and `IncludesLastItemInRange`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::dispatch::Op;
use super::folders::{self, FolderKind};
use super::ids::{Id, Kind, change_key};
use super::items::{Shape, bool_text, message_xml};
use super::soap::{self, EwsError, EwsResult};
use super::xml::{Element, Xml};
use super::{calendar, contacts};
use crate::mailstore::Mailboxes;
use crate::mailstore::mailbox::Change;

fn encode(mailbox: &str, folder: u64, version: u64) -> String {
    STANDARD.encode(format!(
        "S1|{}|{folder}|{version}",
        mailbox.to_ascii_lowercase()
    ))
}

fn decode(state: &str, mailbox: &str, folder: u64) -> Option<u64> {
    let text = String::from_utf8(STANDARD.decode(state.trim()).ok()?).ok()?;
    let mut parts = text.split('|');
    if parts.next()? != "S1" || !parts.next()?.eq_ignore_ascii_case(mailbox) {
        return None;
    }
    if parts.next()?.parse::<u64>().ok()? != folder {
        return None;
    }
    let version = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some(version)
}

/// A change to report: a message (created or updated), a removed message, an event, a contact.
enum Pending {
    Message(u64, bool),
    Removed(u64),
    Event(u64),
    Contact(u64),
}

pub(crate) fn sync_folder_items(
    op: &Op<'_>,
    store: &mut Mailboxes,
    body: &Element,
) -> EwsResult<String> {
    let shape = Shape::parse(body.child("ItemShape"), true);
    let result = (|| {
        let folder_el = body
            .child("SyncFolderId")
            .and_then(|s| s.children.first())
            .ok_or_else(|| EwsError::schema("'SyncFolderId' is missing"))?;
        let (address, folder) = folders::resolve(op, store, folder_el)?;
        let max = body
            .text_at(&["MaxChangesReturned"])
            .and_then(|m| m.parse::<usize>().ok())
            .filter(|m| (1..=512).contains(m))
            .ok_or_else(|| EwsError::schema("MaxChangesReturned must be a number from 1 to 512"))?;
        let mb = store
            .mailbox(&address)
            .ok_or_else(EwsError::folder_not_found)?;
        let after = match body.text_at(&["SyncState"]).filter(|s| !s.is_empty()) {
            None => 0,
            Some(s) => decode(s, &mb.address, folder).ok_or_else(|| {
                EwsError::new(
                    "ErrorInvalidSyncStateData",
                    "Synchronization state data is corrupt or otherwise invalid.",
                )
            })?,
        };
        let upto = mb.version();
        // What changed, in version order, rendered only for the page answered.
        let mut pending: Vec<(u64, Pending)> = Vec::new();
        match folders::kind_of(mb, folder) {
            Some(FolderKind::Mail) => {
                for (version, change) in mb.changes(after, upto) {
                    let item = match change {
                        Change::Message(seq) => {
                            let Some(m) = mb.messages.get(&seq) else {
                                continue;
                            };
                            if m.folder != folder {
                                continue;
                            }
                            Pending::Message(seq, m.created_version > after || after == 0)
                        }
                        Change::Removed { folder: f, seq } => {
                            if f != folder || after == 0 {
                                continue;
                            }
                            Pending::Removed(seq)
                        }
                    };
                    pending.push((version, item));
                    // One more than a page tells whether the page is the last.
                    if pending.len() > max {
                        break;
                    }
                }
            }
            Some(FolderKind::Calendar) => {
                for e in mb.events.values().filter(|e| e.version > after) {
                    pending.push((e.version, Pending::Event(e.seq)));
                }
            }
            Some(FolderKind::Contacts) => {
                for c in mb.contacts.values().filter(|c| c.version > after) {
                    pending.push((c.version, Pending::Contact(c.seq)));
                }
            }
            None => return Err(EwsError::folder_not_found()),
        }
        pending.sort_by_key(|(v, _)| *v);
        let last = pending.len() <= max;
        pending.truncate(max);
        let state_version = if last {
            upto
        } else {
            pending.last().map_or(upto, |(v, _)| *v)
        };
        let tag = |create: bool| if create { "t:Create" } else { "t:Update" };
        let changes: Vec<(u64, String)> = pending
            .into_iter()
            .filter_map(|(version, p)| {
                let xml = match p {
                    Pending::Message(seq, create) => {
                        let m = mb.messages.get(&seq)?;
                        let t = tag(create);
                        format!("<{t}>{}</{t}>", message_xml(op, mb, m, &shape))
                    }
                    Pending::Removed(seq) => format!(
                        "<t:Delete>{}</t:Delete>",
                        soap::id_element(
                            "ItemId",
                            &Id::new(Kind::Message, &mb.address, seq).encode(),
                            &change_key(Kind::Message, version)
                        )
                    ),
                    Pending::Event(seq) => {
                        let e = mb.events.get(&seq)?;
                        let t = tag(after == 0);
                        format!(
                            "<{t}>{}</{t}>",
                            calendar::event_xml(op, mb, e, None, &shape)
                        )
                    }
                    Pending::Contact(seq) => {
                        let c = mb.contacts.get(&seq)?;
                        let t = tag(after == 0);
                        format!("<{t}>{}</{t}>", contacts::contact_xml(mb, c, &shape))
                    }
                };
                Some((version, xml))
            })
            .collect();
        let mut x = Xml::new();
        x.leaf("m:SyncState", &encode(&mb.address, folder, state_version));
        x.leaf("m:IncludesLastItemInRange", bool_text(last));
        x.open("m:Changes", &[]);
        for (_, xml) in &changes {
            x.raw(xml);
        }
        x.close("m:Changes");
        Ok(x.finish())
    })();
    Ok(soap::response(
        "SyncFolderItems",
        "SyncFolderItemsResponseMessage",
        &[result],
    ))
}
