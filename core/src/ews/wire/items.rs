//! What every item operation shares: the item shape (`BaseShape`, `BodyType`,
//! `AdditionalProperties`), `FindItem`'s paging and its answer ([`FoundItems`]), moves and
//! deletes, and the readers of mailboxes, recipients and item IDs.

use super::WireError;
use super::envelope::{FolderSpec, ItemId, RequestContext, ews_request};
use super::response::{Decoded, decode, parse_bool, parse_num};
use super::xml::{Elem, Reader, Writer};
use crate::mailbox::Recipient;

/// The most items one `FindItem` page returns (EWS's own default throttling limit).
pub const MAX_PAGE: u32 = 1000;

/// One page of a `FindItem` or `FindFolder` answer.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundItems<T> {
    pub items: Vec<T>,
    /// `TotalItemsInView`.
    pub total: Option<u32>,
    /// Where the next page starts (`IndexedPagingOffset`); `None` on the last page.
    pub next_offset: Option<u32>,
}

impl<T> Default for FoundItems<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            total: None,
            next_offset: None,
        }
    }
}

/// What to write in an `m:ItemShape`.
pub(super) struct Shape<'a> {
    pub(super) base: &'static str,
    pub(super) include_mime: bool,
    /// `Best`, `HTML` or `Text`.
    pub(super) body_type: Option<&'static str>,
    pub(super) fields: &'a [&'static str],
    /// Extended MAPI properties: (tag, type).
    pub(super) extended: &'a [(&'static str, &'static str)],
}

impl Shape<'_> {
    pub(super) fn write(&self, w: &mut Writer, name: &'static str) {
        w.open(name, &[]);
        w.leaf("t:BaseShape", self.base);
        if self.include_mime {
            w.leaf("t:IncludeMimeContent", "true");
        }
        if let Some(b) = self.body_type {
            w.leaf("t:BodyType", b);
        }
        if !self.fields.is_empty() || !self.extended.is_empty() {
            w.open("t:AdditionalProperties", &[]);
            for f in self.fields {
                w.empty("t:FieldURI", &[("FieldURI", f)]);
            }
            for (tag, ty) in self.extended {
                w.empty(
                    "t:ExtendedFieldURI",
                    &[("PropertyTag", tag), ("PropertyType", ty)],
                );
            }
            w.close("t:AdditionalProperties");
        }
        w.close(name);
    }
}

/// `m:IndexedPageItemView`, with the page size capped at [`MAX_PAGE`].
pub(super) fn write_page(w: &mut Writer, name: &'static str, offset: u32, max: u32) {
    let max = max.clamp(1, MAX_PAGE).to_string();
    let offset = offset.min(i32::MAX as u32).to_string();
    w.empty(
        name,
        &[
            ("MaxEntriesReturned", &max),
            ("Offset", &offset),
            ("BasePoint", "Beginning"),
        ],
    );
}

pub(super) fn write_item_ids(w: &mut Writer, name: &'static str, ids: &[ItemId]) {
    w.open(name, &[]);
    for id in ids {
        id.write(w);
    }
    w.close(name);
}

pub(super) fn write_target_folder(
    w: &mut Writer,
    name: &'static str,
    f: &FolderSpec,
    ctx: &RequestContext,
) {
    w.open(name, &[]);
    f.write(w, ctx);
    w.close(name);
}

pub(super) fn write_mailbox(w: &mut Writer, r: &Recipient) {
    w.open("t:Mailbox", &[]);
    if let Some(name) = r.name.as_deref().filter(|n| !n.is_empty()) {
        w.leaf("t:Name", name);
    }
    w.leaf("t:EmailAddress", &r.address);
    w.close("t:Mailbox");
}

pub(super) fn write_recipients(w: &mut Writer, name: &'static str, rs: &[Recipient]) {
    if rs.is_empty() {
        return;
    }
    w.open(name, &[]);
    for r in rs {
        write_mailbox(w, r);
    }
    w.close(name);
}

/// How `UpdateItem` treats an item that changed since its change key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConflictResolution {
    NeverOverwrite,
    #[default]
    AutoResolve,
    AlwaysOverwrite,
}

impl ConflictResolution {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::NeverOverwrite => "NeverOverwrite",
            Self::AutoResolve => "AutoResolve",
            Self::AlwaysOverwrite => "AlwaysOverwrite",
        }
    }
}

/// How `DeleteItem` deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeleteType {
    HardDelete,
    SoftDelete,
    #[default]
    MoveToDeletedItems,
}

/// `DeleteItem`. `send_meeting_cancellations` is required for calendar items
/// (`SendToNone`, `SendOnlyToAll`, `SendToAllAndSaveCopy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteItems {
    pub ids: Vec<ItemId>,
    pub delete_type: DeleteType,
    /// For calendar items: whether attendees get a cancellation.
    pub send_meeting_cancellations: Option<bool>,
}

impl DeleteItems {
    pub fn new(ids: Vec<ItemId>) -> Self {
        Self {
            ids,
            delete_type: DeleteType::MoveToDeletedItems,
            send_meeting_cancellations: None,
        }
    }

    fn write(&self, w: &mut Writer, _ctx: &RequestContext) {
        let delete_type = match self.delete_type {
            DeleteType::HardDelete => "HardDelete",
            DeleteType::SoftDelete => "SoftDelete",
            DeleteType::MoveToDeletedItems => "MoveToDeletedItems",
        };
        match self.send_meeting_cancellations {
            Some(send) => {
                let v = if send {
                    "SendToAllAndSaveCopy"
                } else {
                    "SendToNone"
                };
                w.open(
                    "m:DeleteItem",
                    &[("DeleteType", delete_type), ("SendMeetingCancellations", v)],
                );
            }
            None => w.open("m:DeleteItem", &[("DeleteType", delete_type)]),
        }
        write_item_ids(w, "m:ItemIds", &self.ids);
        w.close("m:DeleteItem");
    }
}

/// `MoveItem`: the answer carries the items' new IDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveItems {
    pub ids: Vec<ItemId>,
    pub to: FolderSpec,
}

impl MoveItems {
    fn write(&self, w: &mut Writer, ctx: &RequestContext) {
        w.open("m:MoveItem", &[]);
        write_target_folder(w, "m:ToFolderId", &self.to, ctx);
        write_item_ids(w, "m:ItemIds", &self.ids);
        w.close("m:MoveItem");
    }
}

ews_request!(DeleteItems => "DeleteItem", MoveItems => "MoveItem");

/// The answer to `DeleteItem`: one message per item.
pub fn decode_delete_items(xml: &[u8]) -> Result<Decoded<()>, WireError> {
    decode(xml, "DeleteItem", |_, _, _: &mut ()| Ok(false))
}

/// The answer to `MoveItem`: each item's new ID (none when it moved to another mailbox).
pub fn decode_move_items(xml: &[u8]) -> Result<Decoded<Vec<ItemId>>, WireError> {
    decode_item_ids(xml, "MoveItem")
}

/// The item IDs in an answer whose messages carry `m:Items` (`CreateItem`, `UpdateItem`,
/// `MoveItem`, `CopyItem`); `op` names the operation.
pub fn decode_item_ids(xml: &[u8], op: &'static str) -> Result<Decoded<Vec<ItemId>>, WireError> {
    decode(xml, op, |r, e, ids: &mut Vec<ItemId>| {
        if !e.is_m("Items") {
            return Ok(false);
        }
        while let Some(_item) = r.child()? {
            while let Some(f) = r.child()? {
                if f.is_t("ItemId") {
                    ids.push(read_item_id(&f)?);
                }
                r.skip()?;
            }
        }
        Ok(true)
    })
}

/// An `ItemId`-like element's `Id` and `ChangeKey`.
pub(super) fn read_item_id(e: &Elem<'_>) -> Result<ItemId, WireError> {
    Ok(ItemId {
        id: e.need_attr("Id")?,
        change_key: e.attr("ChangeKey")?,
    })
}

/// A `t:Mailbox` (the reader is inside it).
pub(super) fn read_mailbox(r: &mut Reader<'_>) -> Result<Recipient, WireError> {
    let mut name = None;
    let mut address = String::new();
    while let Some(e) = r.child()? {
        if e.is_t("Name") {
            name = Some(r.text()?.into_owned()).filter(|n: &String| !n.is_empty());
        } else if e.is_t("EmailAddress") {
            address = r.text()?.into_owned();
        } else {
            r.skip()?;
        }
    }
    Ok(Recipient { name, address })
}

/// An element holding one `t:Mailbox` (`t:From`, `t:Organizer`).
pub(super) fn read_single(r: &mut Reader<'_>) -> Result<Option<Recipient>, WireError> {
    let mut found = None;
    while let Some(e) = r.child()? {
        if e.is_t("Mailbox") {
            found = Some(read_mailbox(r)?);
        } else {
            r.skip()?;
        }
    }
    Ok(found)
}

/// An element holding `t:Mailbox`es (`t:ToRecipients`).
pub(super) fn read_recipients(r: &mut Reader<'_>) -> Result<Vec<Recipient>, WireError> {
    let mut out = Vec::new();
    while let Some(e) = r.child()? {
        if e.is_t("Mailbox") {
            out.push(read_mailbox(r)?);
        } else {
            r.skip()?;
        }
    }
    Ok(out)
}

/// `t:Categories`: `t:String`s.
pub(super) fn read_strings(r: &mut Reader<'_>) -> Result<Vec<String>, WireError> {
    let mut out = Vec::new();
    while let Some(e) = r.child()? {
        if e.is_t("String") {
            out.push(r.text()?.into_owned());
        } else {
            r.skip()?;
        }
    }
    Ok(out)
}

pub(super) fn text_bool(r: &mut Reader<'_>, what: &str) -> Result<bool, WireError> {
    parse_bool(&r.text()?, what)
}

/// Reads a `FindItem`/`FindFolder` answer: each message's `m:RootFolder` with its paging
/// attributes, and each element of `t:Items`/`t:Folders` through `one` (`None`: not wanted).
pub(super) fn decode_found<'a, T>(
    xml: &'a [u8],
    op: &'static str,
    list: &'static str,
    mut one: impl FnMut(&mut Reader<'a>, &Elem<'a>) -> Result<Option<T>, WireError>,
) -> Result<Decoded<FoundItems<T>>, WireError> {
    decode(xml, op, |r, e, found: &mut FoundItems<T>| {
        if !e.is_m("RootFolder") {
            return Ok(false);
        }
        found.total = e
            .attr("TotalItemsInView")?
            .map(|v| parse_num(&v, "TotalItemsInView"))
            .transpose()?;
        let last = e
            .attr("IncludesLastItemInRange")?
            .map(|v| parse_bool(&v, "IncludesLastItemInRange"))
            .transpose()?
            .unwrap_or(true);
        let offset: Option<u32> = e
            .attr("IndexedPagingOffset")?
            .map(|v| parse_num(&v, "IndexedPagingOffset"))
            .transpose()?;
        found.next_offset = if last { None } else { offset };
        while let Some(c) = r.child()? {
            if !c.is_t(list) {
                r.skip()?;
                continue;
            }
            while let Some(item) = r.child()? {
                if let Some(v) = one(r, &item)? {
                    found.items.push(v);
                }
            }
        }
        Ok(true)
    })
}
