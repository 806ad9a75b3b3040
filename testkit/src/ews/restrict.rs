//! FindItem's restrictions (`And`, `Or`, `Not`, the comparisons, `Contains`, `Exists`) and
//! sort order over a message's properties by FieldURI.

use time::OffsetDateTime;

use super::items::{importance_name, message_size, parse_time};
use super::soap::{EwsError, EwsResult};
use super::xml::Element;
use crate::mailstore::content::Address;
use crate::mailstore::mailbox::Message;

/// A value a restriction compares.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Text(String),
    Bool(bool),
    Time(OffsetDateTime),
    Int(i64),
}

pub(crate) fn field_of(m: &Message, uri: &str) -> EwsResult<Option<Val>> {
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
        other => {
            return Err(EwsError::new(
                "ErrorUnsupportedPathForQuery",
                format!(
                    "The property '{other}' can't be used in a restriction or sort order by the mock."
                ),
            ));
        }
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

pub(crate) fn compare(a: &Val, b: &Val) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Val::Text(a), Val::Text(b)) => Some(a.to_lowercase().cmp(&b.to_lowercase())),
        (Val::Bool(a), Val::Bool(b)) => Some(a.cmp(b)),
        (Val::Time(a), Val::Time(b)) => Some(a.cmp(b)),
        (Val::Int(a), Val::Int(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// Whether `m` matches a search expression.
pub(crate) fn matches(m: &Message, e: &Element) -> EwsResult<bool> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let uri = || {
        e.child("FieldURI")
            .and_then(|f| f.attr("FieldURI"))
            .ok_or_else(|| EwsError::schema(format!("'{}' needs a FieldURI", e.name)))
    };
    let cmp = |want: &[std::cmp::Ordering]| -> EwsResult<bool> {
        let Some(value) = field_of(m, uri()?)? else {
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
        "Exists" => Ok(field_of(m, uri()?)?.is_some()),
        "Contains" => {
            let Some(Val::Text(value)) = field_of(m, uri()?)? else {
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
