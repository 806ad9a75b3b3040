//! Contacts: `FindItem` over the contacts folder, `GetItem`, `CreateItem` and `UpdateItem`
//! of contacts (EWS keeps up to three e-mail addresses and two business phones in indexed
//! fields), and `ResolveNames` against the directory and contacts.

use super::WireError;
use super::envelope::{DistinguishedFolder, FolderSpec, ItemId, RequestContext, ews_request};
use super::items::{
    ConflictResolution, FoundItems, Shape, decode_found, read_item_id, write_item_ids, write_page,
    write_target_folder,
};
use super::response::{Decoded, decode};
use super::xml::{Ns, Reader, Writer};
use crate::mailbox::{Contact, ContactDraft, Recipient};

const FIELDS: [&str; 7] = [
    "contacts:DisplayName",
    "contacts:GivenName",
    "contacts:Surname",
    "contacts:EmailAddresses",
    "contacts:PhoneNumbers",
    "contacts:CompanyName",
    "contacts:JobTitle",
];

const EMAIL_KEYS: [&str; 3] = ["EmailAddress1", "EmailAddress2", "EmailAddress3"];
const BUSINESS_PHONE_KEYS: [&str; 2] = ["BusinessPhone", "BusinessPhone2"];

fn shape(w: &mut Writer) {
    Shape {
        base: "IdOnly",
        include_mime: false,
        body_type: None,
        fields: &FIELDS,
        extended: &[],
    }
    .write(w, "m:ItemShape");
}

/// `FindItem` over a contacts folder, a page at a time, by display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindContacts {
    pub folder: FolderSpec,
    pub offset: u32,
    pub max: u32,
}

impl FindContacts {
    pub fn new(offset: u32, max: u32) -> Self {
        Self {
            folder: DistinguishedFolder::Contacts.into(),
            offset,
            max,
        }
    }

    fn write(&self, w: &mut Writer, ctx: &RequestContext) {
        w.open("m:FindItem", &[("Traversal", "Shallow")]);
        shape(w);
        write_page(w, "m:IndexedPageItemView", self.offset, self.max);
        w.open("m:SortOrder", &[]);
        w.open("t:FieldOrder", &[("Order", "Ascending")]);
        w.empty("t:FieldURI", &[("FieldURI", "contacts:DisplayName")]);
        w.close("t:FieldOrder");
        w.close("m:SortOrder");
        w.open("m:ParentFolderIds", &[]);
        self.folder.write(w, ctx);
        w.close("m:ParentFolderIds");
        w.close("m:FindItem");
    }
}

/// `GetItem` for contacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetContacts {
    pub ids: Vec<ItemId>,
}

impl GetContacts {
    fn write(&self, w: &mut Writer, _ctx: &RequestContext) {
        w.open("m:GetItem", &[]);
        shape(w);
        write_item_ids(w, "m:ItemIds", &self.ids);
        w.close("m:GetItem");
    }
}

fn write_entries(w: &mut Writer, name: &'static str, keys: &[&'static str], values: &[&str]) {
    if values.is_empty() {
        return;
    }
    w.open(name, &[]);
    for (key, value) in keys.iter().zip(values) {
        w.leaf_with("t:Entry", &[("Key", key)], value);
    }
    w.close(name);
}

fn phones(d: &ContactDraft) -> (Vec<&'static str>, Vec<&str>) {
    let mut keys = Vec::new();
    let mut values = Vec::new();
    for (key, phone) in BUSINESS_PHONE_KEYS
        .iter()
        .zip(d.business_phones.iter().flatten())
    {
        keys.push(*key);
        values.push(phone.as_str());
    }
    if let Some(m) = &d.mobile_phone {
        keys.push("MobilePhone");
        values.push(m.as_str());
    }
    (keys, values)
}

/// `CreateItem` of a contact (in Contacts unless another folder is named). Addresses past
/// the third and business phones past the second have no place in EWS and are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateContact {
    draft: ContactDraft,
    pub folder: FolderSpec,
}

fn check(d: &ContactDraft) -> Result<(), crate::mailbox::MailboxError> {
    if d.emails
        .as_ref()
        .is_some_and(|e| e.len() > EMAIL_KEYS.len())
    {
        return Err(crate::mailbox::MailboxError::Invalid(
            "an Exchange contact holds at most 3 e-mail addresses".into(),
        ));
    }
    if d.business_phones
        .as_ref()
        .is_some_and(|p| p.len() > BUSINESS_PHONE_KEYS.len())
    {
        return Err(crate::mailbox::MailboxError::Invalid(
            "an Exchange contact holds at most 2 business phone numbers".into(),
        ));
    }
    Ok(())
}

impl CreateContact {
    pub fn new(draft: ContactDraft) -> Result<Self, crate::mailbox::MailboxError> {
        check(&draft)?;
        Ok(Self {
            draft,
            folder: DistinguishedFolder::Contacts.into(),
        })
    }

    fn write(&self, w: &mut Writer, ctx: &RequestContext) {
        let d = &self.draft;
        w.open("m:CreateItem", &[]);
        write_target_folder(w, "m:SavedItemFolderId", &self.folder, ctx);
        w.open("m:Items", &[]);
        w.open("t:Contact", &[]);
        let leaf = |w: &mut Writer, name: &'static str, v: &Option<String>| {
            if let Some(v) = v {
                w.leaf(name, v);
            }
        };
        leaf(w, "t:DisplayName", &d.display_name);
        leaf(w, "t:GivenName", &d.given_name);
        leaf(w, "t:CompanyName", &d.company);
        let emails: Vec<&str> = d
            .emails
            .iter()
            .flatten()
            .map(|r| r.address.as_str())
            .collect();
        write_entries(w, "t:EmailAddresses", &EMAIL_KEYS, &emails);
        let (keys, values) = phones(d);
        write_entries(w, "t:PhoneNumbers", &keys, &values);
        leaf(w, "t:JobTitle", &d.job_title);
        leaf(w, "t:Surname", &d.surname);
        w.close("t:Contact");
        w.close("m:Items");
        w.close("m:CreateItem");
    }
}

/// `UpdateItem` of a contact: each field the change sets; an empty value or list removes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateContact {
    pub id: ItemId,
    change: ContactDraft,
    pub conflict: ConflictResolution,
}

impl UpdateContact {
    pub fn new(id: ItemId, change: ContactDraft) -> Result<Self, crate::mailbox::MailboxError> {
        check(&change)?;
        Ok(Self {
            id,
            change,
            conflict: ConflictResolution::AutoResolve,
        })
    }

    fn write(&self, w: &mut Writer, _ctx: &RequestContext) {
        let d = &self.change;
        w.open(
            "m:UpdateItem",
            &[("ConflictResolution", self.conflict.as_str())],
        );
        w.open("m:ItemChanges", &[]);
        w.open("t:ItemChange", &[]);
        self.id.write(w);
        w.open("t:Updates", &[]);
        let plain =
            |w: &mut Writer, uri: &'static str, name: &'static str, v: &Option<String>| match v
                .as_deref()
            {
                None => {}
                Some("") => {
                    w.open("t:DeleteItemField", &[]);
                    w.empty("t:FieldURI", &[("FieldURI", uri)]);
                    w.close("t:DeleteItemField");
                }
                Some(v) => {
                    w.open("t:SetItemField", &[]);
                    w.empty("t:FieldURI", &[("FieldURI", uri)]);
                    w.open("t:Contact", &[]);
                    w.leaf(name, v);
                    w.close("t:Contact");
                    w.close("t:SetItemField");
                }
            };
        let indexed = |w: &mut Writer,
                       uri: &'static str,
                       list: &'static str,
                       key: &'static str,
                       v: Option<&str>| {
            match v {
                None => {
                    w.open("t:DeleteItemField", &[]);
                    w.empty(
                        "t:IndexedFieldURI",
                        &[("FieldURI", uri), ("FieldIndex", key)],
                    );
                    w.close("t:DeleteItemField");
                }
                Some(v) => {
                    w.open("t:SetItemField", &[]);
                    w.empty(
                        "t:IndexedFieldURI",
                        &[("FieldURI", uri), ("FieldIndex", key)],
                    );
                    w.open("t:Contact", &[]);
                    w.open(list, &[]);
                    w.leaf_with("t:Entry", &[("Key", key)], v);
                    w.close(list);
                    w.close("t:Contact");
                    w.close("t:SetItemField");
                }
            }
        };
        plain(w, "contacts:DisplayName", "t:DisplayName", &d.display_name);
        plain(w, "contacts:GivenName", "t:GivenName", &d.given_name);
        plain(w, "contacts:CompanyName", "t:CompanyName", &d.company);
        if let Some(emails) = &d.emails {
            for (i, key) in EMAIL_KEYS.iter().enumerate() {
                let v = emails.get(i).map(|r| r.address.as_str());
                indexed(w, "contacts:EmailAddress", "t:EmailAddresses", key, v);
            }
        }
        if let Some(p) = &d.business_phones {
            for (i, key) in BUSINESS_PHONE_KEYS.iter().enumerate() {
                let v = p.get(i).map(String::as_str);
                indexed(w, "contacts:PhoneNumber", "t:PhoneNumbers", key, v);
            }
        }
        if let Some(m) = &d.mobile_phone {
            let v = Some(m.as_str()).filter(|m| !m.is_empty());
            indexed(
                w,
                "contacts:PhoneNumber",
                "t:PhoneNumbers",
                "MobilePhone",
                v,
            );
        }
        plain(w, "contacts:JobTitle", "t:JobTitle", &d.job_title);
        plain(w, "contacts:Surname", "t:Surname", &d.surname);
        w.close("t:Updates");
        w.close("t:ItemChange");
        w.close("m:ItemChanges");
        w.close("m:UpdateItem");
    }
}

/// `ResolveNames`: directory entries and contacts matching a name or address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveNames {
    pub entry: String,
    /// Also search the mailbox's contacts (`ActiveDirectoryContacts`), not only the directory.
    pub include_contacts: bool,
}

impl ResolveNames {
    fn write(&self, w: &mut Writer, _ctx: &RequestContext) {
        let scope = if self.include_contacts {
            "ActiveDirectoryContacts"
        } else {
            "ActiveDirectory"
        };
        w.open(
            "m:ResolveNames",
            &[("ReturnFullContactData", "true"), ("SearchScope", scope)],
        );
        w.leaf("m:UnresolvedEntry", &self.entry);
        w.close("m:ResolveNames");
    }
}

ews_request!(
    FindContacts => "FindItem",
    GetContacts => "GetItem",
    CreateContact => "CreateItem",
    UpdateContact => "UpdateItem",
    ResolveNames => "ResolveNames",
);

/// A `t:Contact` (the reader is inside it).
fn read_contact(r: &mut Reader<'_>) -> Result<Contact, WireError> {
    let mut c = Contact {
        id: String::new(),
        display_name: String::new(),
        given_name: None,
        surname: None,
        emails: Vec::new(),
        business_phones: Vec::new(),
        mobile_phone: None,
        company: None,
        job_title: None,
    };
    let some = |s: std::borrow::Cow<'_, str>| Some(s.into_owned()).filter(|s| !s.is_empty());
    while let Some(e) = r.child()? {
        if e.ns != Ns::Types {
            r.skip()?;
            continue;
        }
        match e.local() {
            "ItemId" => {
                c.id = read_item_id(&e)?.id;
                r.skip()?;
            }
            "DisplayName" => c.display_name = r.text()?.into_owned(),
            "GivenName" => c.given_name = some(r.text()?),
            "Surname" => c.surname = some(r.text()?),
            "CompanyName" => c.company = some(r.text()?),
            "JobTitle" => c.job_title = some(r.text()?),
            "EmailAddresses" => {
                while let Some(entry) = r.child()? {
                    let name = entry.attr("Name")?.filter(|n| !n.is_empty());
                    let address = r.text()?.into_owned();
                    if entry.is_t("Entry") && !address.is_empty() {
                        // Exchange answers `SMTP:` addresses for directory contacts.
                        let address = address
                            .strip_prefix("SMTP:")
                            .or_else(|| address.strip_prefix("smtp:"))
                            .map(str::to_owned)
                            .unwrap_or(address);
                        c.emails.push(Recipient { name, address });
                    }
                }
            }
            "PhoneNumbers" => {
                while let Some(entry) = r.child()? {
                    let key = entry.attr("Key")?;
                    let number = r.text()?.into_owned();
                    if number.is_empty() {
                        continue;
                    }
                    match key.as_deref() {
                        Some("BusinessPhone" | "BusinessPhone2") => c.business_phones.push(number),
                        Some("MobilePhone") => c.mobile_phone = Some(number),
                        _ => {}
                    }
                }
            }
            _ => r.skip()?,
        }
    }
    if c.id.is_empty() {
        return Err(WireError::malformed("a contact without ItemId"));
    }
    Ok(c)
}

/// The answer to [`FindContacts`].
pub fn decode_find_contacts(xml: &[u8]) -> Result<Decoded<FoundItems<Contact>>, WireError> {
    decode_found(xml, "FindItem", "Items", |r, e| {
        if e.is_t("Contact") {
            read_contact(r).map(Some)
        } else {
            r.skip().map(|()| None)
        }
    })
}

/// The answer to [`GetContacts`]: one message per ID.
pub fn decode_get_contacts(xml: &[u8]) -> Result<Decoded<Vec<Contact>>, WireError> {
    decode(xml, "GetItem", |r, e, out: &mut Vec<Contact>| {
        if !e.is_m("Items") {
            return Ok(false);
        }
        while let Some(item) = r.child()? {
            if item.is_t("Contact") {
                out.push(read_contact(r)?);
            } else {
                r.skip()?;
            }
        }
        Ok(true)
    })
}

/// One match of `ResolveNames`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedName {
    pub mailbox: Recipient,
    /// `SMTP`, `EX`.
    pub routing_type: Option<String>,
    /// `Mailbox`, `PublicDL`, `Contact`, …
    pub mailbox_type: Option<String>,
    /// The directory's or contact's details, when sent.
    pub contact: Option<Contact>,
}

/// The answer to [`ResolveNames`]. Several matches come as a warning
/// (`ErrorNameResolutionMultipleResults`) with every match; none is an error.
pub fn decode_resolve_names(xml: &[u8]) -> Result<Decoded<Vec<ResolvedName>>, WireError> {
    decode(xml, "ResolveNames", |r, e, out: &mut Vec<ResolvedName>| {
        if !e.is_m("ResolutionSet") {
            return Ok(false);
        }
        while let Some(res) = r.child()? {
            if !res.is_t("Resolution") {
                r.skip()?;
                continue;
            }
            let mut mailbox = None;
            let mut contact = None;
            let (mut routing_type, mut mailbox_type) = (None, None);
            while let Some(f) = r.child()? {
                if f.is_t("Mailbox") {
                    let mut m = Recipient::address("");
                    while let Some(g) = r.child()? {
                        match (g.ns, g.local()) {
                            (Ns::Types, "Name") => {
                                m.name = Some(r.text()?.into_owned()).filter(|n| !n.is_empty())
                            }
                            (Ns::Types, "EmailAddress") => m.address = r.text()?.into_owned(),
                            (Ns::Types, "RoutingType") => {
                                routing_type = Some(r.text()?.into_owned())
                            }
                            (Ns::Types, "MailboxType") => {
                                mailbox_type = Some(r.text()?.into_owned())
                            }
                            _ => r.skip()?,
                        }
                    }
                    mailbox = Some(m);
                } else if f.is_t("Contact") {
                    contact = Some(read_contact_details(r)?);
                } else {
                    r.skip()?;
                }
            }
            if let Some(mailbox) = mailbox {
                out.push(ResolvedName {
                    mailbox,
                    routing_type,
                    mailbox_type,
                    contact,
                });
            }
        }
        Ok(true)
    })
}

/// A resolution's `t:Contact`, which carries no `ItemId` when it comes from the directory.
fn read_contact_details(r: &mut Reader<'_>) -> Result<Contact, WireError> {
    // Reuse the contact reader's fields without its ItemId requirement.
    let mut c = Contact {
        id: String::new(),
        display_name: String::new(),
        given_name: None,
        surname: None,
        emails: Vec::new(),
        business_phones: Vec::new(),
        mobile_phone: None,
        company: None,
        job_title: None,
    };
    while let Some(e) = r.child()? {
        match (e.ns, e.local()) {
            (Ns::Types, "DisplayName") => c.display_name = r.text()?.into_owned(),
            (Ns::Types, "GivenName") => c.given_name = Some(r.text()?.into_owned()),
            (Ns::Types, "Surname") => c.surname = Some(r.text()?.into_owned()),
            (Ns::Types, "CompanyName") => c.company = Some(r.text()?.into_owned()),
            (Ns::Types, "JobTitle") => c.job_title = Some(r.text()?.into_owned()),
            (Ns::Types, "EmailAddresses") => {
                while let Some(entry) = r.child()? {
                    let address = r.text()?.into_owned();
                    let address = address
                        .strip_prefix("SMTP:")
                        .map(str::to_owned)
                        .unwrap_or(address);
                    if entry.is_t("Entry") && !address.is_empty() {
                        c.emails.push(Recipient::address(address));
                    }
                }
            }
            _ => r.skip()?,
        }
    }
    Ok(c)
}
