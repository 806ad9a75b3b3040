//! Folders: `FindFolder` (a folder's subfolders, optionally the whole tree or one by name)
//! and `GetFolder`, read into the neutral [`Folder`].

use super::WireError;
use super::envelope::{FolderSpec, RequestContext, ews_request};
use super::items::{FoundItems, decode_found, write_page};
use super::response::{Decoded, decode, parse_num};
use super::xml::{Elem, Ns, Reader, Writer};
use crate::mailbox::Folder;

/// The folder elements EWS answers with.
const FOLDER_KINDS: [&str; 5] = [
    "Folder",
    "CalendarFolder",
    "ContactsFolder",
    "SearchFolder",
    "TasksFolder",
];

fn folder_shape(w: &mut Writer) {
    w.open("m:FolderShape", &[]);
    w.leaf("t:BaseShape", "Default");
    w.open("t:AdditionalProperties", &[]);
    w.empty("t:FieldURI", &[("FieldURI", "folder:ParentFolderId")]);
    w.empty("t:FieldURI", &[("FieldURI", "folder:FolderClass")]);
    w.close("t:AdditionalProperties");
    w.close("m:FolderShape");
}

/// `FindFolder`: the folders below `parent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindFolders {
    pub parent: FolderSpec,
    /// The whole tree below `parent`, not only its children.
    pub deep: bool,
    /// Only folders with this display name (case-insensitive in Exchange).
    pub name: Option<String>,
    pub offset: u32,
    pub max: u32,
}

impl FindFolders {
    /// Every folder below `parent`, in pages of up to 1,000.
    pub fn all(parent: FolderSpec) -> Self {
        Self {
            parent,
            deep: true,
            name: None,
            offset: 0,
            max: super::items::MAX_PAGE,
        }
    }

    /// The folder named `name` among `parent`'s children (the Archive folder under
    /// `msgfolderroot`).
    pub fn named(parent: FolderSpec, name: impl Into<String>) -> Self {
        Self {
            deep: false,
            name: Some(name.into()),
            ..Self::all(parent)
        }
    }

    fn write(&self, w: &mut Writer, ctx: &RequestContext) {
        let traversal = if self.deep { "Deep" } else { "Shallow" };
        w.open("m:FindFolder", &[("Traversal", traversal)]);
        folder_shape(w);
        write_page(w, "m:IndexedPageFolderView", self.offset, self.max);
        if let Some(name) = &self.name {
            w.open("m:Restriction", &[]);
            w.open("t:IsEqualTo", &[]);
            w.empty("t:FieldURI", &[("FieldURI", "folder:DisplayName")]);
            w.open("t:FieldURIOrConstant", &[]);
            w.empty("t:Constant", &[("Value", name)]);
            w.close("t:FieldURIOrConstant");
            w.close("t:IsEqualTo");
            w.close("m:Restriction");
        }
        w.open("m:ParentFolderIds", &[]);
        self.parent.write(w, ctx);
        w.close("m:ParentFolderIds");
        w.close("m:FindFolder");
    }
}

/// `GetFolder`: folders by ID or name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetFolders {
    pub folders: Vec<FolderSpec>,
}

impl GetFolders {
    fn write(&self, w: &mut Writer, ctx: &RequestContext) {
        w.open("m:GetFolder", &[]);
        folder_shape(w);
        w.open("m:FolderIds", &[]);
        for f in &self.folders {
            f.write(w, ctx);
        }
        w.close("m:FolderIds");
        w.close("m:GetFolder");
    }
}

ews_request!(FindFolders => "FindFolder", GetFolders => "GetFolder");

pub(super) fn is_folder(e: &Elem<'_>) -> bool {
    e.ns == Ns::Types && FOLDER_KINDS.contains(&e.local())
}

/// A folder element (the reader is inside it).
pub(super) fn read_folder(r: &mut Reader<'_>) -> Result<Folder, WireError> {
    read_folder_and_class(r).map(|(f, _)| f)
}

/// A folder element and its `FolderClass`, if it has one.
fn read_folder_and_class(r: &mut Reader<'_>) -> Result<(Folder, Option<String>), WireError> {
    let mut class = None;
    let mut f = Folder {
        id: String::new(),
        name: String::new(),
        parent_id: None,
        unread: 0,
        total: 0,
        children: 0,
    };
    while let Some(e) = r.child()? {
        if e.ns != Ns::Types {
            r.skip()?;
            continue;
        }
        match e.local() {
            "FolderId" => {
                f.id = e.need_attr("Id")?;
                r.skip()?;
            }
            "ParentFolderId" => {
                f.parent_id = Some(e.need_attr("Id")?);
                r.skip()?;
            }
            "DisplayName" => f.name = r.text()?.into_owned(),
            "TotalCount" => f.total = parse_num(&r.text()?, "TotalCount")?,
            "ChildFolderCount" => f.children = parse_num(&r.text()?, "ChildFolderCount")?,
            "UnreadCount" => f.unread = parse_num(&r.text()?, "UnreadCount")?,
            "FolderClass" => class = Some(r.text()?.into_owned()),
            _ => r.skip()?,
        }
    }
    if f.id.is_empty() {
        return Err(WireError::malformed("a folder without FolderId"));
    }
    Ok((f, class))
}

/// The answer to `FindFolder`.
pub fn decode_find_folders(xml: &[u8]) -> Result<Decoded<FoundItems<Folder>>, WireError> {
    // The neutral folder is a mail folder: calendar, contacts, tasks and search folders, and
    // plain folders of another class (`IPF.Configuration`, …), are left out, as Graph's
    // `mailFolders` leaves them out.
    decode_found(xml, "FindFolder", "Folders", |r, e| {
        if e.ns == Ns::Types && e.local() == "Folder" {
            let (folder, class) = read_folder_and_class(r)?;
            Ok(class
                .is_none_or(|c| c == "IPF.Note" || c.starts_with("IPF.Note."))
                .then_some(folder))
        } else {
            r.skip().map(|()| None)
        }
    })
}

/// The answer to `GetFolder`: one message per folder asked for.
pub fn decode_get_folders(xml: &[u8]) -> Result<Decoded<Vec<Folder>>, WireError> {
    decode(xml, "GetFolder", |r, e, out: &mut Vec<Folder>| {
        if !e.is_m("Folders") {
            return Ok(false);
        }
        while let Some(f) = r.child()? {
            if is_folder(&f) {
                out.push(read_folder(r)?);
            } else {
                r.skip()?;
            }
        }
        Ok(true)
    })
}
