//! SyncFolderItems: an opaque SyncState (mailbox, folder, the mail store's version, and for the
//! calendar and contacts folders the items already reported, so their deletions show), changes
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

fn encode(mailbox: &str, folder: u64, version: u64, known: &[u64]) -> String {
    let known: Vec<String> = known.iter().map(u64::to_string).collect();
    STANDARD.encode(format!(
        "S1|{}|{folder}|{version}|{}",
        mailbox.to_ascii_lowercase(),
        known.join(",")
    ))
}

/// The state's version and the items it already reported (calendar and contacts).
fn decode(state: &str, mailbox: &str, folder: u64) -> Option<(u64, Vec<u64>)> {
    let text = String::from_utf8(STANDARD.decode(state.trim()).ok()?).ok()?;
    let mut parts = text.split('|');
    if parts.next()? != "S1" || !parts.next()?.eq_ignore_ascii_case(mailbox) {
        return None;
    }
    if parts.next()?.parse::<u64>().ok()? != folder {
        return None;
    }
    let version = parts.next()?.parse().ok()?;
    let known = match parts.next()? {
        "" => Vec::new(),
        list => list
            .split(',')
            .map(|s| s.parse().ok())
            .collect::<Option<Vec<u64>>>()?,
    };
    parts.next().is_none().then_some((version, known))
}

/// A change to report: a message (created or updated), a removed message, an event or a
/// contact (created or updated), a deleted event or contact.
enum Pending {
    Message(u64, bool),
    Removed(u64),
    Event(u64, bool),
    Contact(u64, bool),
    Gone(Kind, u64),
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
        let (after, mut known) = match body.text_at(&["SyncState"]).filter(|s| !s.is_empty()) {
            None => (0, Vec::new()),
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
            // Deletions first (version 0), then what changed since the state.
            Some(FolderKind::Calendar) => {
                for seq in known.iter().filter(|s| !mb.events.contains_key(s)) {
                    pending.push((0, Pending::Gone(Kind::Event, *seq)));
                }
                for e in mb.events.values().filter(|e| e.version > after) {
                    pending.push((e.version, Pending::Event(e.seq, !known.contains(&e.seq))));
                }
            }
            Some(FolderKind::Contacts) => {
                for seq in known.iter().filter(|s| !mb.contacts.contains_key(s)) {
                    pending.push((0, Pending::Gone(Kind::Contact, *seq)));
                }
                for c in mb.contacts.values().filter(|c| c.version > after) {
                    pending.push((c.version, Pending::Contact(c.seq, !known.contains(&c.seq))));
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
            pending.last().map_or(upto, |(v, _)| (*v).max(after))
        };
        for (_, p) in &pending {
            match p {
                Pending::Event(seq, true) | Pending::Contact(seq, true) => known.push(*seq),
                Pending::Gone(_, seq) => known.retain(|k| k != seq),
                _ => {}
            }
        }
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
                    Pending::Gone(kind, seq) => format!(
                        "<t:Delete>{}</t:Delete>",
                        soap::id_element(
                            "ItemId",
                            &Id::new(kind, &mb.address, seq).encode(),
                            &change_key(kind, version)
                        )
                    ),
                    Pending::Removed(seq) => format!(
                        "<t:Delete>{}</t:Delete>",
                        soap::id_element(
                            "ItemId",
                            &Id::new(Kind::Message, &mb.address, seq).encode(),
                            &change_key(Kind::Message, version)
                        )
                    ),
                    Pending::Event(seq, create) => {
                        let e = mb.events.get(&seq)?;
                        let t = tag(create);
                        format!(
                            "<{t}>{}</{t}>",
                            calendar::event_xml(op, mb, e, None, &shape)
                        )
                    }
                    Pending::Contact(seq, create) => {
                        let c = mb.contacts.get(&seq)?;
                        let t = tag(create);
                        format!("<{t}>{}</{t}>", contacts::contact_xml(mb, c, &shape))
                    }
                };
                Some((version, xml))
            })
            .collect();
        let mut x = Xml::new();
        x.leaf(
            "m:SyncState",
            &encode(&mb.address, folder, state_version, &known),
        );
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
