//! FindItem's restrictions (`And`, `Or`, `Not`, the comparisons, `Contains`, `Exists`) and
//! sort order over the properties of messages, contacts and calendar items by FieldURI.

use time::OffsetDateTime;

use super::items::{importance_name, message_size, parse_time};
use super::soap::{EwsError, EwsResult};
use super::xml::Element;
use crate::mailstore::content::Address;
use crate::mailstore::mailbox::{Contact, Event, Message};

/// A value a restriction compares.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Text(String),
    Bool(bool),
    Time(OffsetDateTime),
    Int(i64),
}

/// What a restriction reads of an item.
pub(crate) trait Fields {
    /// The value of the property `uri`; `ErrorUnsupportedPathForQuery` for one the mock does
    /// not search.
    fn field(&self, uri: &str) -> EwsResult<Option<Val>>;
}

fn unsupported(uri: &str) -> EwsError {
    EwsError::new(
        "ErrorUnsupportedPathForQuery",
        format!("The property '{uri}' can't be used in a restriction or sort order by the mock."),
    )
}

impl Fields for Message {
    fn field(&self, uri: &str) -> EwsResult<Option<Val>> {
        field_of(self, uri)
    }
}

impl Fields for Contact {
    fn field(&self, uri: &str) -> EwsResult<Option<Val>> {
        let text = |s: &str| Some(Val::Text(s.to_string()));
        Ok(match uri {
            "item:Subject" | "contacts:DisplayName" | "contacts:FileAs" => text(&self.display_name),
            "contacts:GivenName" => text(&self.given_name),
            "contacts:Surname" => text(&self.surname),
            "contacts:CompanyName" => self.company_name.as_deref().and_then(text),
            "contacts:JobTitle" => self.job_title.as_deref().and_then(text),
            "contacts:Department" => self.department.as_deref().and_then(text),
            "contacts:EmailAddress" | "contacts:EmailAddresses" => {
                let all: Vec<&str> = self
                    .email_addresses
                    .iter()
                    .map(|a| a.address.as_str())
                    .collect();
                (!all.is_empty()).then(|| Val::Text(all.join("\n")))
            }
            "item:Categories" => text(&self.categories.join("\n")),
            "item:ItemClass" => text("IPM.Contact"),
            other => return Err(unsupported(other)),
        })
    }
}

impl Fields for Event {
    fn field(&self, uri: &str) -> EwsResult<Option<Val>> {
        Ok(match uri {
            "item:Subject" => Some(Val::Text(self.subject.clone())),
            "item:Body" => Some(Val::Text(self.body.content.clone())),
            "calendar:Start" => Some(Val::Time(self.start)),
            "calendar:End" => Some(Val::Time(self.end)),
            "calendar:Location" => Some(Val::Text(self.location.clone())),
            "calendar:IsAllDayEvent" => Some(Val::Bool(self.is_all_day)),
            "calendar:IsRecurring" => Some(Val::Bool(self.recurrence.is_some())),
            "calendar:IsCancelled" => Some(Val::Bool(self.is_cancelled)),
            "calendar:Organizer" => Some(Val::Text(format!(
                "{} <{}>",
                self.organizer.name, self.organizer.address
            ))),
            "item:DateTimeCreated" => Some(Val::Time(self.created)),
            "item:LastModifiedTime" => Some(Val::Time(self.modified)),
            "item:Categories" => Some(Val::Text(self.categories.join("\n"))),
            "item:Importance" => Some(Val::Text(importance_name(self.importance).into())),
            "item:ItemClass" => Some(Val::Text("IPM.Appointment".into())),
            other => return Err(unsupported(other)),
        })
    }
}

fn field_of(m: &Message, uri: &str) -> EwsResult<Option<Val>> {
    let addr = |a: &Option<Address>| {
        a.as_ref()
            .map(|a| Val::Text(format!("{} <{}>", a.name, a.address)))
    };
    Ok(match uri {
        "item:Subject" => Some(Val::Text(m.subject.clone())),
        "item:Body" => Some(Val::Text(m.body.content.clone())),
        "message:IsRead" => Some(Val::Bool(m.is_read)),
        "item:IsDraft" => Some(Val::Bool(m.is_draft)),
        "item:HasAttachments" => Some(Val::Bool(m.has_attachments())),
        "item:DateTimeReceived" => Some(Val::Time(m.received)),
        "item:DateTimeSent" => m.sent.map(Val::Time),
        "item:DateTimeCreated" => Some(Val::Time(m.created)),
        "item:LastModifiedTime" => Some(Val::Time(m.modified)),
        "item:Importance" => Some(Val::Text(importance_name(m.importance).into())),
        "item:Size" => Some(Val::Int(i64::try_from(message_size(m)).unwrap_or(i64::MAX))),
        "item:Categories" => Some(Val::Text(m.categories.join("\n"))),
        "message:From" => addr(&m.from),
        "message:Sender" => addr(&m.sender).or_else(|| addr(&m.from)),
        "message:InternetMessageId" => Some(Val::Text(m.internet_message_id.clone())),
        "item:ItemClass" => Some(Val::Text("IPM.Note".into())),
        // PR_SENDER_SMTP_ADDRESS and PR_SENDER_EMAIL_ADDRESS (the mock's senders are SMTP),
        // PR_SUBJECT.
        "tag:0x5d01" | "tag:0x0c1f" => m
            .sender
            .as_ref()
            .or(m.from.as_ref())
            .map(|a| Val::Text(a.address.clone())),
        "tag:0x0037" => Some(Val::Text(m.subject.clone())),
        other => return Err(unsupported(other)),
    })
}

fn constant(el: &Element) -> Option<&str> {
    el.child("FieldURIOrConstant")
        .and_then(|c| c.child("Constant"))
        .or_else(|| el.child("Constant"))
        .and_then(|c| c.attr("Value"))
}

fn typed(like: &Val, text: &str) -> EwsResult<Val> {
    let bad = || EwsError::schema(format!("'{text}' is not a value of the property's type"));
    Ok(match like {
        Val::Text(_) => Val::Text(text.to_string()),
        Val::Bool(_) => Val::Bool(match text.trim() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(bad()),
        }),
        Val::Time(_) => Val::Time(parse_time(text).ok_or_else(bad)?),
        Val::Int(_) => Val::Int(text.trim().parse().map_err(|_| bad())?),
    })
}

fn compare(a: &Val, b: &Val) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Val::Text(a), Val::Text(b)) => Some(a.to_lowercase().cmp(&b.to_lowercase())),
        (Val::Bool(a), Val::Bool(b)) => Some(a.cmp(b)),
        (Val::Time(a), Val::Time(b)) => Some(a.cmp(b)),
        (Val::Int(a), Val::Int(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// The property a search expression reads: its `FieldURI`, or an `ExtendedFieldURI` by
/// `PropertyTag` as `tag:0x5d01` (Exchange searches MAPI properties too; the mock knows the
/// sender's SMTP address `0x5D01`, the sender's address `0x0C1F` and the subject `0x0037`).
fn path(e: &Element) -> EwsResult<String> {
    if let Some(uri) = e.child("FieldURI").and_then(|f| f.attr("FieldURI")) {
        return Ok(uri.to_string());
    }
    if let Some(tag) = e
        .child("ExtendedFieldURI")
        .and_then(|f| f.attr("PropertyTag"))
    {
        let tag = tag.trim();
        let number = match tag.strip_prefix("0x").or_else(|| tag.strip_prefix("0X")) {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => tag.parse::<u32>().ok(),
        }
        .ok_or_else(|| EwsError::schema(format!("'{tag}' is not a property tag")))?;
        return Ok(format!("tag:0x{number:04x}"));
    }
    Err(EwsError::schema(format!("'{}' needs a FieldURI", e.name)))
}

/// Whether `m` matches a search expression.
pub(crate) fn matches<T: Fields>(m: &T, e: &Element) -> EwsResult<bool> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let uri = || path(e);
    let cmp = |want: &[std::cmp::Ordering]| -> EwsResult<bool> {
        let Some(value) = m.field(&uri()?)? else {
            return Ok(false);
        };
        let c = constant(e)
            .ok_or_else(|| EwsError::schema(format!("'{}' needs a constant", e.name)))?;
        let c = typed(&value, c)?;
        Ok(compare(&value, &c).is_some_and(|o| want.contains(&o)))
    };
    match e.name.as_str() {
        "And" => {
            for c in &e.children {
                if !matches(m, c)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        "Or" => {
            for c in &e.children {
                if matches(m, c)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        "Not" => Ok(!matches(
            m,
            e.children
                .first()
                .ok_or_else(|| EwsError::schema("'Not' needs an expression"))?,
        )?),
        "IsEqualTo" => cmp(&[Equal]),
        "IsNotEqualTo" => cmp(&[Less, Greater]),
        "IsGreaterThan" => cmp(&[Greater]),
        "IsGreaterThanOrEqualTo" => cmp(&[Greater, Equal]),
        "IsLessThan" => cmp(&[Less]),
        "IsLessThanOrEqualTo" => cmp(&[Less, Equal]),
        "Exists" => Ok(m.field(&uri()?)?.is_some()),
        "Contains" => {
            let Some(Val::Text(value)) = m.field(&uri()?)? else {
                return Ok(false);
            };
            let wanted = constant(e).unwrap_or_default();
            let ignore_case = e
                .attr("ContainmentComparison")
                .is_some_and(|c| c.contains("IgnoreCase") || c == "Loose");
            let (value, wanted) = if ignore_case {
                (value.to_lowercase(), wanted.to_lowercase())
            } else {
                (value, wanted.to_string())
            };
            Ok(match e.attr("ContainmentMode").unwrap_or("Substring") {
                "FullString" => value == wanted,
                "Prefixed" => value.starts_with(&wanted),
                "PrefixOnWords" => value
                    .split(|c: char| !c.is_alphanumeric())
                    .any(|w| w.starts_with(&wanted)),
                _ => value.contains(&wanted),
            })
        }
        other => Err(EwsError::schema(format!(
            "'{other}' is not a search expression the mock knows"
        ))),
    }
}

/// Sorts `items` by `orders` (FieldURI, descending), the first order first; an item without
/// the property sorts before one with it. Fails on a property the mock does not sort by.
pub(crate) fn sort<T: Fields>(items: &mut [&T], orders: &[(String, bool)]) -> EwsResult<()> {
    if orders.is_empty() {
        return Ok(());
    }
    if let Some(first) = items.first() {
        for (uri, _) in orders {
            first.field(uri)?;
        }
    }
    items.sort_by(|a, b| {
        for (uri, descending) in orders {
            let (Ok(va), Ok(vb)) = (a.field(uri), b.field(uri)) else {
                continue;
            };
            let o = match (va, vb) {
                (Some(va), Some(vb)) => compare(&va, &vb).unwrap_or(std::cmp::Ordering::Equal),
                (Some(_), None) => std::cmp::Ordering::Greater,
                (None, Some(_)) => std::cmp::Ordering::Less,
                (None, None) => std::cmp::Ordering::Equal,
            };
            let o = if *descending { o.reverse() } else { o };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    Ok(())
}
