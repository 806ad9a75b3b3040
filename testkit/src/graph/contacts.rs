//! Contacts in the default contacts folder: list, get, create, update, delete.

use std::borrow::Cow;

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::GraphInner;
use super::dispatch::Op;
use super::error::{GraphResult, graph_errors};
use super::http::{Resp, fmt_instant};
use super::ids::{GraphIds as _, Kind};
use super::mail::{as_email_address, as_string, as_strings, json_body, mailbox, mailbox_mut};
use super::odata::{self, Item, ItemTy, Query, Row, Schema, Ty, Val, collection, parse_query};
use crate::mailstore::content::Address;
use crate::mailstore::mailbox::{Contact, Mailbox};

static CONTACT: Schema = Schema {
    entity: "contact",
    props: &[
        "id",
        "createdDateTime",
        "lastModifiedDateTime",
        "changeKey",
        "categories",
        "parentFolderId",
        "displayName",
        "givenName",
        "surname",
        "emailAddresses",
        "businessPhones",
        "mobilePhone",
        "homePhones",
        "companyName",
        "jobTitle",
        "department",
        "officeLocation",
    ],
    default: &[
        "id",
        "createdDateTime",
        "lastModifiedDateTime",
        "changeKey",
        "categories",
        "parentFolderId",
        "displayName",
        "givenName",
        "surname",
        "emailAddresses",
        "businessPhones",
        "mobilePhone",
        "homePhones",
        "companyName",
        "jobTitle",
        "department",
        "officeLocation",
    ],
    filterable: &[
        ("displayName", Ty::Str),
        ("givenName", Ty::Str),
        ("surname", Ty::Str),
        ("companyName", Ty::Str),
        ("jobTitle", Ty::Str),
        ("createdDateTime", Ty::Date),
        ("lastModifiedDateTime", Ty::Date),
    ],
    collections: &[
        ("emailAddresses", ItemTy::EmailAddress),
        ("categories", ItemTy::Str),
    ],
    expandable: &[],
};

struct ContactRow<'a>(&'a Contact);

impl Row for ContactRow<'_> {
    fn value(&self, path: &str) -> Val<'_> {
        let c = self.0;
        match path {
            "displayName" => Val::Str(Cow::Borrowed(&c.display_name)),
            "givenName" => Val::Str(Cow::Borrowed(&c.given_name)),
            "surname" => Val::Str(Cow::Borrowed(&c.surname)),
            "companyName" => Val::opt_str(c.company_name.as_deref()),
            "jobTitle" => Val::opt_str(c.job_title.as_deref()),
            "createdDateTime" => c.created.map_or(Val::Null, Val::Date),
            "lastModifiedDateTime" => c.modified.map_or(Val::Null, Val::Date),
            _ => Val::Null,
        }
    }

    fn items(&self, collection: &str) -> Vec<Item<'_>> {
        match collection {
            "emailAddresses" => self.0.email_addresses.iter().map(Item::Address).collect(),
            "categories" => self.0.categories.iter().map(|c| Item::Str(c)).collect(),
            _ => Vec::new(),
        }
    }
}

fn contact_json(mb: &Mailbox, c: &Contact, q: &Query) -> Value {
    let change_key = mb.change_key(c.version);
    let mut o = Map::new();
    o.insert("@odata.etag".into(), format!("W/\"{change_key}\"").into());
    let emails: Vec<Value> = c
        .email_addresses
        .iter()
        .map(|a| json!({"name": a.name, "address": a.address}))
        .collect();
    let fields: [(&str, Value); 17] = [
        ("id", mb.id(Kind::Contact, c.seq, None).into()),
        ("createdDateTime", c.created.map(fmt_instant).into()),
        ("lastModifiedDateTime", c.modified.map(fmt_instant).into()),
        ("changeKey", change_key.into()),
        ("categories", json!(c.categories)),
        (
            "parentFolderId",
            mb.id(Kind::ContactFolder, mb.contact_folder_seq, None)
                .into(),
        ),
        ("displayName", c.display_name.clone().into()),
        ("givenName", c.given_name.clone().into()),
        ("surname", c.surname.clone().into()),
        ("emailAddresses", Value::Array(emails)),
        ("businessPhones", json!(c.business_phones)),
        ("mobilePhone", c.mobile_phone.clone().into()),
        ("homePhones", json!(c.home_phones)),
        ("companyName", c.company_name.clone().into()),
        ("jobTitle", c.job_title.clone().into()),
        ("department", c.department.clone().into()),
        ("officeLocation", c.office_location.clone().into()),
    ];
    for (name, value) in fields {
        if q.wants(&CONTACT, name) {
            o.insert(name.into(), value);
        }
    }
    Value::Object(o)
}

fn contact_seq(mb: &Mailbox, id: &str) -> GraphResult<u64> {
    let id = mb.decode(id, &[Kind::Contact])?;
    if mb.contacts.contains_key(&id.seq) {
        Ok(id.seq)
    } else {
        Err(graph_errors::item_not_found())
    }
}

pub(crate) fn list(inner: &GraphInner, op: &Op<'_>) -> GraphResult<Resp> {
    let mb = mailbox(inner, op)?;
    let q = parse_query(op.req, &CONTACT)?;
    let mut rows: Vec<ContactRow<'_>> = mb
        .contacts
        .values()
        .map(ContactRow)
        .filter(|row| q.filter.as_ref().is_none_or(|f| f.matches(row)))
        .collect();
    odata::sort_rows(&mut rows, &q.orderby);
    let (offset, size) = q.page(op.ctx, 10)?;
    let total = rows.len();
    let value: Vec<Value> = rows
        .iter()
        .skip(offset)
        .take(size)
        .map(|row| contact_json(mb, row.0, &q))
        .collect();
    let next = (offset.saturating_add(size) < total).then_some(offset.saturating_add(size));
    let context = format!("users('{}')/contacts", op.target.address);
    Ok(Resp::ok(collection(
        op.ctx,
        op.req,
        &context,
        value,
        q.count.then_some(total),
        next,
    )))
}

pub(crate) fn get(inner: &GraphInner, op: &Op<'_>, id: &str) -> GraphResult<Resp> {
    let mb = mailbox(inner, op)?;
    let q = parse_query(op.req, &CONTACT)?;
    let seq = contact_seq(mb, id)?;
    let c = mb
        .contacts
        .get(&seq)
        .ok_or_else(graph_errors::item_not_found)?;
    Ok(Resp::ok(contact_json(mb, c, &q)))
}

const IGNORED: &[&str] = &[
    "@odata.type",
    "@odata.etag",
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "parentFolderId",
];

fn optional_string(value: &Value) -> GraphResult<Option<String>> {
    if value.is_null() {
        Ok(None)
    } else {
        as_string(value).map(Some)
    }
}

fn apply(c: &mut Contact, map: &Map<String, Value>) -> GraphResult<()> {
    let mut display_set = false;
    for (key, value) in map {
        match key.to_ascii_lowercase().as_str() {
            "displayname" => {
                c.display_name = optional_string(value)?.unwrap_or_default();
                display_set = true;
            }
            "givenname" => c.given_name = optional_string(value)?.unwrap_or_default(),
            "surname" => c.surname = optional_string(value)?.unwrap_or_default(),
            "emailaddresses" => {
                let list = value.as_array().ok_or_else(|| {
                    graph_errors::body_read(
                        "Cannot convert the value to 'Collection(microsoft.graph.emailAddress)'.",
                    )
                })?;
                c.email_addresses = list
                    .iter()
                    .map(|v| {
                        v.as_object()
                            .ok_or_else(|| {
                                graph_errors::body_read(
                                    "Cannot convert the value to 'microsoft.graph.emailAddress'.",
                                )
                            })
                            .and_then(as_email_address)
                    })
                    .collect::<GraphResult<Vec<Address>>>()?;
            }
            "businessphones" => c.business_phones = as_strings(value)?,
            "homephones" => c.home_phones = as_strings(value)?,
            "mobilephone" => c.mobile_phone = optional_string(value)?,
            "companyname" => c.company_name = optional_string(value)?,
            "jobtitle" => c.job_title = optional_string(value)?,
            "department" => c.department = optional_string(value)?,
            "officelocation" => c.office_location = optional_string(value)?,
            "categories" => c.categories = as_strings(value)?,
            _ if IGNORED.iter().any(|i| i.eq_ignore_ascii_case(key)) || key.starts_with('@') => {}
            _ => return Err(graph_errors::body_unknown_property(key, "contact")),
        }
    }
    if !display_set && c.display_name.is_empty() {
        c.display_name = format!("{} {}", c.given_name, c.surname).trim().to_string();
        if c.display_name.is_empty()
            && let Some(first) = c.email_addresses.first()
        {
            c.display_name = first.address.clone();
        }
    }
    Ok(())
}

pub(crate) fn create(inner: &mut GraphInner, op: &Op<'_>) -> GraphResult<Resp> {
    let map = json_body(op.req)?;
    let mut contact = Contact {
        created: Some(op.ctx.now),
        modified: Some(op.ctx.now),
        ..Contact::default()
    };
    apply(&mut contact, &map)?;
    let mb = mailbox_mut(inner, op)?;
    let seq = mb.insert_contact(contact);
    let mb = mailbox(inner, op)?;
    let c = mb
        .contacts
        .get(&seq)
        .ok_or_else(graph_errors::item_not_found)?;
    Ok(Resp::json(
        StatusCode::CREATED,
        contact_json(mb, c, &Query::default()),
    ))
}

pub(crate) fn patch(inner: &mut GraphInner, op: &Op<'_>, id: &str) -> GraphResult<Resp> {
    let map = json_body(op.req)?;
    let mb = mailbox_mut(inner, op)?;
    let seq = contact_seq(mb, id)?;
    let c = mb
        .contacts
        .get_mut(&seq)
        .ok_or_else(graph_errors::item_not_found)?;
    let mut updated = c.clone();
    apply(&mut updated, &map)?;
    *c = updated;
    mb.touch_contact(seq, op.ctx.now);
    let mb = mailbox(inner, op)?;
    let c = mb
        .contacts
        .get(&seq)
        .ok_or_else(graph_errors::item_not_found)?;
    Ok(Resp::ok(contact_json(mb, c, &Query::default())))
}

pub(crate) fn delete(inner: &mut GraphInner, op: &Op<'_>, id: &str) -> GraphResult<Resp> {
    let mb = mailbox_mut(inner, op)?;
    let seq = contact_seq(mb, id)?;
    mb.contacts.remove(&seq);
    Ok(Resp::empty(StatusCode::NO_CONTENT))
}
