//! Incremental sync: `SyncFolderItems` (a folder's messages changed since a sync state, into
//! the neutral [`FolderChanges`]) and `SyncFolderHierarchy` (the folder tree's changes).

use super::WireError;
use super::envelope::{FolderSpec, RequestContext, ews_request};
use super::folders::{is_folder, read_folder};
use super::items::{read_item_id, text_bool};
use super::mail::{is_message, read_message, write_summary_shape};
use super::response::{Decoded, decode};
use super::xml::{Ns, Reader, Writer};
use crate::mailbox::{Folder, FolderChanges};

/// The most changes one `SyncFolderItems` call may ask for (the schema's limit).
pub const MAX_CHANGES: u32 = 512;

/// `SyncFolderItems`: message changes in a folder since `state` (all of it when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncFolderItems {
    pub folder: FolderSpec,
    pub state: Option<String>,
    /// 1 to 512.
    pub max_changes: u32,
}

impl SyncFolderItems {
    fn write(&self, w: &mut Writer, ctx: &RequestContext) {
        w.open("m:SyncFolderItems", &[]);
        write_summary_shape(w, ctx);
        w.open("m:SyncFolderId", &[]);
        self.folder.write(w, ctx);
        w.close("m:SyncFolderId");
        if let Some(state) = self.state.as_deref().filter(|s| !s.is_empty()) {
            w.leaf("m:SyncState", state);
        }
        w.leaf(
            "m:MaxChangesReturned",
            &self.max_changes.clamp(1, MAX_CHANGES).to_string(),
        );
        w.close("m:SyncFolderItems");
    }
}

/// `SyncFolderHierarchy`: folder changes below `folder` (the whole mailbox when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncFolderHierarchy {
    pub folder: Option<FolderSpec>,
    pub state: Option<String>,
}

impl SyncFolderHierarchy {
    fn write(&self, w: &mut Writer, ctx: &RequestContext) {
        w.open("m:SyncFolderHierarchy", &[]);
        w.open("m:FolderShape", &[]);
        w.leaf("t:BaseShape", "Default");
        w.open("t:AdditionalProperties", &[]);
        w.empty("t:FieldURI", &[("FieldURI", "folder:ParentFolderId")]);
        w.close("t:AdditionalProperties");
        w.close("m:FolderShape");
        if let Some(f) = &self.folder {
            w.open("m:SyncFolderId", &[]);
            f.write(w, ctx);
            w.close("m:SyncFolderId");
        }
        if let Some(state) = self.state.as_deref().filter(|s| !s.is_empty()) {
            w.leaf("m:SyncState", state);
        }
        w.close("m:SyncFolderHierarchy");
    }
}

ews_request!(SyncFolderItems => "SyncFolderItems", SyncFolderHierarchy => "SyncFolderHierarchy");

/// What `SyncFolderItems` answered.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemChanges {
    /// Created and updated messages, removed IDs, and the new state.
    pub changes: FolderChanges,
    /// Read-flag changes alone: (item ID, is read).
    pub read_flags: Vec<(String, bool)>,
    /// `false`: more changes wait; call again with the new state.
    pub includes_last: bool,
}

impl Default for ItemChanges {
    fn default() -> Self {
        Self {
            changes: FolderChanges {
                changed: Vec::new(),
                removed: Vec::new(),
                state: String::new(),
                reset: false,
            },
            read_flags: Vec::new(),
            includes_last: false,
        }
    }
}

/// What `SyncFolderHierarchy` answered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FolderHierarchyChanges {
    pub changed: Vec<Folder>,
    pub removed: Vec<String>,
    pub state: String,
    pub includes_last: bool,
}

/// The ID inside a `t:Delete`/`t:ReadFlagChange` (the reader is inside it), and `IsRead`.
fn read_id_and_flag(
    r: &mut Reader<'_>,
    id_name: &str,
) -> Result<(String, Option<bool>), WireError> {
    let mut id = None;
    let mut read = None;
    while let Some(e) = r.child()? {
        if e.ns == Ns::Types && e.local() == id_name {
            id = Some(read_item_id(&e)?.id);
            r.skip()?;
        } else if e.is_t("IsRead") {
            read = Some(text_bool(r, "IsRead")?);
        } else {
            r.skip()?;
        }
    }
    let id = id.ok_or_else(|| WireError::malformed(format!("a change without {id_name}")))?;
    Ok((id, read))
}

/// The answer to [`SyncFolderItems`].
pub fn decode_sync_folder_items(xml: &[u8]) -> Result<Decoded<ItemChanges>, WireError> {
    decode(xml, "SyncFolderItems", |r, e, out: &mut ItemChanges| {
        match (e.ns, e.local()) {
            (Ns::Messages, "SyncState") => out.changes.state = r.text()?.into_owned(),
            (Ns::Messages, "IncludesLastItemInRange") => {
                out.includes_last = text_bool(r, "IncludesLastItemInRange")?;
            }
            (Ns::Messages, "Changes") => {
                while let Some(c) = r.child()? {
                    match (c.ns, c.local()) {
                        (Ns::Types, "Create" | "Update") => {
                            while let Some(item) = r.child()? {
                                if is_message(&item) {
                                    out.changes.changed.push(read_message(r)?.message.summary);
                                } else {
                                    r.skip()?;
                                }
                            }
                        }
                        (Ns::Types, "Delete") => {
                            out.changes.removed.push(read_id_and_flag(r, "ItemId")?.0)
                        }
                        (Ns::Types, "ReadFlagChange") => {
                            let (id, read) = read_id_and_flag(r, "ItemId")?;
                            let read = read.ok_or_else(|| {
                                WireError::malformed("a ReadFlagChange without IsRead")
                            })?;
                            out.read_flags.push((id, read));
                        }
                        _ => r.skip()?,
                    }
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    })
}

/// The answer to [`SyncFolderHierarchy`].
pub fn decode_sync_folder_hierarchy(
    xml: &[u8],
) -> Result<Decoded<FolderHierarchyChanges>, WireError> {
    decode(
        xml,
        "SyncFolderHierarchy",
        |r, e, out: &mut FolderHierarchyChanges| {
            match (e.ns, e.local()) {
                (Ns::Messages, "SyncState") => out.state = r.text()?.into_owned(),
                (Ns::Messages, "IncludesLastFolderInRange") => {
                    out.includes_last = text_bool(r, "IncludesLastFolderInRange")?;
                }
                (Ns::Messages, "Changes") => {
                    while let Some(c) = r.child()? {
                        match (c.ns, c.local()) {
                            (Ns::Types, "Create" | "Update") => {
                                while let Some(f) = r.child()? {
                                    if is_folder(&f) {
                                        out.changed.push(read_folder(r)?);
                                    } else {
                                        r.skip()?;
                                    }
                                }
                            }
                            (Ns::Types, "Delete") => {
                                out.removed.push(read_id_and_flag(r, "FolderId")?.0)
                            }
                            _ => r.skip()?,
                        }
                    }
                }
                _ => return Ok(false),
            }
            Ok(true)
        },
    )
}
