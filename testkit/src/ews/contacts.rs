//! Contacts: `t:Contact`, the contacts folder's FindItem, new contacts from CreateItem and
//! contact fields of UpdateItem.

use super::folders;
use super::ids::{Id, Kind, change_key};
use super::items::{Shape, categories_xml, fmt_time, root_folder};
use super::restrict::{matches, sort};
use super::soap::{self, EwsError, EwsResult};
use super::xml::{Element, Xml};
use crate::mailstore::content::Address;
use crate::mailstore::mailbox::{Contact, Mailbox};

const EMAIL_KEYS: [&str; 3] = ["EmailAddress1", "EmailAddress2", "EmailAddress3"];

/// `t:Contact` in `shape`.
pub(crate) fn contact_xml(mb: &Mailbox, c: &Contact, shape: &Shape) -> String {
    let s = shape;
    let mut x = Xml::new();
    x.open("t:Contact", &[]);
    x.raw(&soap::id_element(
        "ItemId",
        &Id::new(Kind::Contact, &mb.address, c.seq).encode(),
        &change_key(Kind::Contact, c.version),
    ));
    if s.has("item:ParentFolderId", true) {
        x.raw(&folders::folder_id_xml(
            "ParentFolderId",
            mb,
            mb.contact_folder_seq,
        ));
    }
    if s.has("item:ItemClass", true) {
        x.leaf("t:ItemClass", "IPM.Contact");
    }
    if s.has("item:Subject", true) {
        x.leaf("t:Subject", &c.display_name);
    }
    if s.has("item:Categories", true) {
        categories_xml(&mut x, &c.categories);
    }
    if s.has("item:DateTimeCreated", true)
        && let Some(t) = c.created
    {
        x.leaf("t:DateTimeCreated", &fmt_time(t));
    }
    if s.has("item:LastModifiedTime", false)
        && let Some(t) = c.modified
    {
        x.leaf("t:LastModifiedTime", &fmt_time(t));
    }
    if s.has("contacts:FileAs", true) {
        x.leaf("t:FileAs", &c.display_name);
    }
    if s.has("contacts:DisplayName", true) {
        x.leaf("t:DisplayName", &c.display_name);
    }
    if s.has("contacts:GivenName", true) && !c.given_name.is_empty() {
        x.leaf("t:GivenName", &c.given_name);
    }
    if s.has("contacts:CompanyName", true)
        && let Some(v) = &c.company_name
    {
        x.leaf("t:CompanyName", v);
    }
    if s.has("contacts:EmailAddresses", true) && !c.email_addresses.is_empty() {
        x.open("t:EmailAddresses", &[]);
        for (a, key) in c.email_addresses.iter().zip(EMAIL_KEYS) {
            x.leaf_with("t:Entry", &[("Key", key)], &a.address);
        }
        x.close("t:EmailAddresses");
    }
    let phones: Vec<(&str, &String)> = c
        .business_phones
        .iter()
        .zip(["BusinessPhone", "BusinessPhone2"])
        .map(|(p, k)| (k, p))
        .chain(
            c.home_phones
                .iter()
                .zip(["HomePhone", "HomePhone2"])
                .map(|(p, k)| (k, p)),
        )
        .chain(c.mobile_phone.iter().map(|p| ("MobilePhone", p)))
        .collect();
    if s.has("contacts:PhoneNumbers", true) && !phones.is_empty() {
        x.open("t:PhoneNumbers", &[]);
        for (key, p) in phones {
            x.leaf_with("t:Entry", &[("Key", key)], p);
        }
        x.close("t:PhoneNumbers");
    }
    if s.has("contacts:Department", true)
        && let Some(v) = &c.department
    {
        x.leaf("t:Department", v);
    }
    if s.has("contacts:JobTitle", true)
        && let Some(v) = &c.job_title
    {
        x.leaf("t:JobTitle", v);
    }
    if s.has("contacts:OfficeLocation", true)
        && let Some(v) = &c.office_location
    {
        x.leaf("t:OfficeLocation", v);
    }
    if s.has("contacts:Surname", true) && !c.surname.is_empty() {
        x.leaf("t:Surname", &c.surname);
    }
    x.close("t:Contact");
    x.finish()
}

/// `FindItem` on the contacts folder, by display name, restricted.
pub(crate) fn find(
    mb: &Mailbox,
    shape: &Shape,
    restriction: Option<&Element>,
    orders: &[(String, bool)],
    offset: usize,
    max: Option<usize>,
) -> EwsResult<String> {
    let mut all: Vec<&Contact> = Vec::new();
    for c in mb.contacts.values() {
        if restriction.map_or(Ok(true), |r| matches(c, r))? {
            all.push(c);
        }
    }
    all.sort_by_key(|c| c.display_name.to_lowercase());
    sort(&mut all, orders)?;
    let total = all.len();
    let page: Vec<String> = all
        .into_iter()
        .skip(offset)
        .take(max.unwrap_or(usize::MAX))
        .map(|c| contact_xml(mb, c, shape))
        .collect();
    Ok(root_folder(total, offset, &page))
}

/// Sets one contact field from an element of a `t:Contact` (CreateItem, or UpdateItem's
/// SetItemField); `uri` is the FieldURI (or `IndexedFieldURI` with its `FieldIndex`).
pub(crate) fn set_field(
    c: &mut Contact,
    uri: &str,
    index: Option<&str>,
    el: &Element,
) -> EwsResult<()> {
    let text = || el.text.trim().to_string();
    let opt = || Some(el.text.trim().to_string()).filter(|s| !s.is_empty());
    match uri {
        "contacts:GivenName" => c.given_name = text(),
        "contacts:Surname" => c.surname = text(),
        "contacts:DisplayName" | "contacts:FileAs" => c.display_name = text(),
        "contacts:CompanyName" => c.company_name = opt(),
        "contacts:JobTitle" => c.job_title = opt(),
        "contacts:Department" => c.department = opt(),
        "contacts:OfficeLocation" => c.office_location = opt(),
        "item:Categories" => c.categories = el.all("String").map(|s| s.text.clone()).collect(),
        "contacts:EmailAddress" | "contacts:EmailAddresses" => {
            for entry in el.all("Entry") {
                let slot = EMAIL_KEYS
                    .iter()
                    .position(|k| Some(*k) == entry.attr("Key").or(index))
                    .unwrap_or(0);
                let address = Address::new("", entry.text.trim());
                if slot < c.email_addresses.len() {
                    c.email_addresses[slot] = address;
                } else {
                    c.email_addresses.push(address);
                }
            }
        }
        "contacts:PhoneNumber" | "contacts:PhoneNumbers" => {
            for entry in el.all("Entry") {
                let number = entry.text.trim().to_string();
                match entry.attr("Key").or(index).unwrap_or("BusinessPhone") {
                    "MobilePhone" => c.mobile_phone = Some(number),
                    "HomePhone" | "HomePhone2" => c.home_phones.push(number),
                    _ => {
                        c.business_phones.retain(|p| *p != number);
                        c.business_phones.insert(0, number);
                    }
                }
            }
        }
        "item:Subject" => {}
        other => {
            return Err(EwsError::new(
                "ErrorInvalidPropertySet",
                format!("The mock cannot set '{other}' on a contact."),
            ));
        }
    }
    Ok(())
}

/// The FieldURI a child element of `t:Contact` stands for.
pub(crate) fn uri_of(name: &str) -> String {
    match name {
        "EmailAddresses" => "contacts:EmailAddresses".into(),
        "PhoneNumbers" => "contacts:PhoneNumbers".into(),
        "Categories" => "item:Categories".into(),
        "Subject" => "item:Subject".into(),
        other => format!("contacts:{other}"),
    }
}

/// A new contact from a `t:Contact` of CreateItem.
pub(crate) fn new_contact(el: &Element, now: time::OffsetDateTime) -> EwsResult<Contact> {
    let mut c = Contact {
        created: Some(now),
        modified: Some(now),
        ..Contact::default()
    };
    for child in &el.children {
        set_field(&mut c, &uri_of(&child.name), None, child)?;
    }
    if c.display_name.is_empty() {
        c.display_name = format!("{} {}", c.given_name, c.surname).trim().to_string();
    }
    Ok(c)
}
