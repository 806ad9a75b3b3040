//! Folders: IDs and distinguished names, FindFolder, GetFolder, SyncFolderHierarchy.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::dispatch::Op;
use super::ids::{Id, Kind, change_key};
use super::soap::{self, EwsError, EwsResult};
use super::xml::{Element, Xml};
use crate::mailstore::Mailboxes;
use crate::mailstore::mailbox::Mailbox;

/// What a folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FolderKind {
    Mail,
    Calendar,
    Contacts,
}

pub(crate) fn kind_of(mb: &Mailbox, seq: u64) -> Option<FolderKind> {
    if seq == mb.calendar_seq {
        Some(FolderKind::Calendar)
    } else if seq == mb.contact_folder_seq {
        Some(FolderKind::Contacts)
    } else if mb.folders.contains_key(&seq) {
        Some(FolderKind::Mail)
    } else {
        None
    }
}

pub(crate) fn folder_id(mb: &Mailbox, seq: u64) -> String {
    Id::new(Kind::Folder, &mb.address, seq).encode()
}

pub(crate) fn folder_id_xml(tag: &str, mb: &Mailbox, seq: u64) -> String {
    soap::id_element(
        tag,
        &folder_id(mb, seq),
        &change_key(Kind::Folder, mb.version()),
    )
}

/// A `t:FolderId` or `t:DistinguishedFolderId` (with an optional `t:Mailbox`) as (mailbox
/// address, folder sequence number), after the access checks.
pub(crate) fn resolve(op: &Op<'_>, store: &Mailboxes, el: &Element) -> EwsResult<(String, u64)> {
    match el.name.as_str() {
        "FolderId" => {
            let id = Id::decode(el.attr("Id").unwrap_or_default())?;
            if id.kind != Kind::Folder {
                return Err(EwsError::malformed_id());
            }
            let address = op.mailbox(Some(&id.mailbox))?;
            let mb = store
                .mailbox(&address)
                .ok_or_else(EwsError::folder_not_found)?;
            kind_of(mb, id.seq).ok_or_else(EwsError::folder_not_found)?;
            Ok((address, id.seq))
        }
        "DistinguishedFolderId" => {
            let name = el.attr("Id").unwrap_or_default().to_ascii_lowercase();
            let named = el.text_at(&["Mailbox", "EmailAddress"]);
            let address = op.mailbox(named)?;
            let mb = store
                .mailbox(&address)
                .ok_or_else(|| EwsError::non_existent_mailbox(&address))?;
            let seq = match name.as_str() {
                "calendar" => Some(mb.calendar_seq),
                "contacts" => Some(mb.contact_folder_seq),
                "root" | "msgfolderroot" => Some(mb.root()),
                "archive" => None,
                other => mb.well_known(other),
            };
            Ok((address, seq.ok_or_else(EwsError::folder_not_found)?))
        }
        other => Err(EwsError::schema(format!(
            "'{other}' is not a folder ID (FolderId or DistinguishedFolderId)"
        ))),
    }
}

/// The folders under `parent`: mail folders, and Calendar and Contacts under the root.
fn children(mb: &Mailbox, parent: u64) -> Vec<u64> {
    let mut out: Vec<u64> = mb.children(parent).iter().map(|f| f.seq).collect();
    if parent == mb.root() {
        out.push(mb.calendar_seq);
        out.push(mb.contact_folder_seq);
    }
    out
}

fn descendants(mb: &Mailbox, parent: u64, out: &mut Vec<u64>) {
    for c in children(mb, parent) {
        out.push(c);
        descendants(mb, c, out);
    }
}

/// `t:Folder`, `t:CalendarFolder` or `t:ContactsFolder` for a folder. `id_only` writes only
/// the ID.
pub(crate) fn folder_xml(mb: &Mailbox, seq: u64, id_only: bool) -> String {
    let kind = kind_of(mb, seq).unwrap_or(FolderKind::Mail);
    let tag = match kind {
        FolderKind::Mail => "t:Folder",
        FolderKind::Calendar => "t:CalendarFolder",
        FolderKind::Contacts => "t:ContactsFolder",
    };
    let mut x = Xml::new();
    x.open(tag, &[]);
    x.raw(&folder_id_xml("FolderId", mb, seq));
    if !id_only {
        let root = mb.root();
        let parent = match kind {
            FolderKind::Mail => mb.folders.get(&seq).and_then(|f| f.parent),
            _ => Some(root),
        };
        if let Some(parent) = parent {
            x.raw(&folder_id_xml("ParentFolderId", mb, parent));
        }
        let (class, name, total, unread) = match kind {
            FolderKind::Mail => {
                let name = mb
                    .folders
                    .get(&seq)
                    .map(|f| f.name.clone())
                    .unwrap_or_default();
                let (mut total, mut unread) = (0, 0);
                for m in mb.messages.values().filter(|m| m.folder == seq) {
                    total += 1;
                    if !m.is_read {
                        unread += 1;
                    }
                }
                ("IPF.Note", name, total, Some(unread))
            }
            FolderKind::Calendar => ("IPF.Appointment", "Calendar".into(), mb.events.len(), None),
            FolderKind::Contacts => ("IPF.Contact", "Contacts".into(), mb.contacts.len(), None),
        };
        x.leaf("t:FolderClass", class);
        x.leaf("t:DisplayName", &name);
        x.leaf("t:TotalCount", &total.to_string());
        x.leaf("t:ChildFolderCount", &children(mb, seq).len().to_string());
        if let Some(unread) = unread {
            x.leaf("t:UnreadCount", &unread.to_string());
        }
    }
    x.close(tag);
    x.finish()
}

fn id_only(body: &Element) -> bool {
    body.text_at(&["FolderShape", "BaseShape"]) == Some("IdOnly")
}

/// The folder IDs of a `…FolderIds` element.
fn ids_of<'e>(body: &'e Element, name: &str) -> EwsResult<Vec<&'e Element>> {
    let list = body
        .child(name)
        .ok_or_else(|| EwsError::schema(format!("'{name}' is missing")))?;
    Ok(list.children.iter().collect())
}

pub(crate) fn find_folder(op: &Op<'_>, store: &mut Mailboxes, body: &Element) -> EwsResult<String> {
    let deep = body.attr("Traversal") == Some("Deep");
    let id_only = id_only(body);
    let view = body.child("IndexedPageFolderView");
    let max = view
        .and_then(|v| v.attr("MaxEntriesReturned"))
        .and_then(|v| v.parse::<usize>().ok());
    let offset = view
        .and_then(|v| v.attr("Offset"))
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut results = Vec::new();
    for parent in ids_of(body, "ParentFolderIds")? {
        let result = resolve(op, store, parent).and_then(|(address, seq)| {
            let mb = store
                .mailbox(&address)
                .ok_or_else(EwsError::folder_not_found)?;
            let mut all = Vec::new();
            if deep {
                descendants(mb, seq, &mut all);
            } else {
                all = children(mb, seq);
            }
            let total = all.len();
            let page: Vec<u64> = all
                .into_iter()
                .skip(offset)
                .take(max.unwrap_or(usize::MAX))
                .collect();
            let end = offset + page.len();
            let mut x = Xml::new();
            x.open(
                "m:RootFolder",
                &[
                    ("IndexedPagingOffset", &end.to_string()),
                    ("TotalItemsInView", &total.to_string()),
                    (
                        "IncludesLastItemInRange",
                        if end >= total { "true" } else { "false" },
                    ),
                ],
            );
            x.open("t:Folders", &[]);
            for seq in page {
                x.raw(&folder_xml(mb, seq, id_only));
            }
            x.close("t:Folders");
            x.close("m:RootFolder");
            Ok(x.finish())
        });
        results.push(result);
    }
    Ok(soap::response(
        "FindFolder",
        "FindFolderResponseMessage",
        &results,
    ))
}

pub(crate) fn get_folder(op: &Op<'_>, store: &mut Mailboxes, body: &Element) -> EwsResult<String> {
    let id_only = id_only(body);
    let mut results = Vec::new();
    for el in ids_of(body, "FolderIds")? {
        results.push(resolve(op, store, el).and_then(|(address, seq)| {
            let mb = store
                .mailbox(&address)
                .ok_or_else(EwsError::folder_not_found)?;
            Ok(format!(
                "<m:Folders>{}</m:Folders>",
                folder_xml(mb, seq, id_only)
            ))
        }));
    }
    Ok(soap::response(
        "GetFolder",
        "GetFolderResponseMessage",
        &results,
    ))
}

pub(crate) fn sync_hierarchy(
    op: &Op<'_>,
    store: &mut Mailboxes,
    body: &Element,
) -> EwsResult<String> {
    let id_only = id_only(body);
    let result = (|| {
        let (address, top) = match body.child("SyncFolderId").and_then(|s| s.children.first()) {
            Some(el) => resolve(op, store, el)?,
            None => {
                let address = op.mailbox(None)?;
                let mb = store
                    .mailbox(&address)
                    .ok_or_else(EwsError::folder_not_found)?;
                (address, mb.root())
            }
        };
        let mb = store
            .mailbox(&address)
            .ok_or_else(EwsError::folder_not_found)?;
        let known: Vec<u64> = match body.text_at(&["SyncState"]).filter(|s| !s.is_empty()) {
            None => Vec::new(),
            Some(s) => decode_state(s, &mb.address, top).ok_or_else(|| {
                EwsError::new(
                    "ErrorInvalidSyncStateData",
                    "Synchronization state data is corrupt or otherwise invalid.",
                )
            })?,
        };
        let mut now = Vec::new();
        descendants(mb, top, &mut now);
        let mut x = Xml::new();
        x.leaf("m:SyncState", &encode_state(&mb.address, top, &now));
        x.leaf("m:IncludesLastFolderInRange", "true");
        x.open("m:Changes", &[]);
        for seq in now.iter().filter(|s| !known.contains(s)) {
            x.open("t:Create", &[]);
            x.raw(&folder_xml(mb, *seq, id_only));
            x.close("t:Create");
        }
        for seq in known.iter().filter(|s| !now.contains(s)) {
            x.open("t:Delete", &[]);
            x.raw(&soap::id_element(
                "FolderId",
                &folder_id(mb, *seq),
                &change_key(Kind::Folder, mb.version()),
            ));
            x.close("t:Delete");
        }
        x.close("m:Changes");
        Ok(x.finish())
    })();
    Ok(soap::response(
        "SyncFolderHierarchy",
        "SyncFolderHierarchyResponseMessage",
        &[result],
    ))
}

fn encode_state(mailbox: &str, top: u64, seqs: &[u64]) -> String {
    let list: Vec<String> = seqs.iter().map(u64::to_string).collect();
    STANDARD.encode(format!(
        "H1|{}|{top}|{}",
        mailbox.to_ascii_lowercase(),
        list.join(",")
    ))
}

fn decode_state(state: &str, mailbox: &str, top: u64) -> Option<Vec<u64>> {
    let text = String::from_utf8(STANDARD.decode(state.trim()).ok()?).ok()?;
    let mut parts = text.splitn(4, '|');
    if parts.next()? != "H1" || !parts.next()?.eq_ignore_ascii_case(mailbox) {
        return None;
    }
    if parts.next()?.parse::<u64>().ok()? != top {
        return None;
    }
    let list = parts.next()?;
    if list.is_empty() {
        return Some(Vec::new());
    }
    list.split(',').map(|s| s.parse().ok()).collect()
}
