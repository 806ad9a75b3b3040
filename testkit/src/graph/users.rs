//! `GET /me`, `GET /users/{id | userPrincipalName}`.

use serde_json::{Map, Value, json};

use super::GraphInner;
use super::auth::{self, Caller, MailboxRef, Who};
use super::error::{GraphResult, graph_errors};
use super::http::{Ctx, Req, Resp};
use super::odata::{Schema, parse_select};

pub(crate) static USER: Schema = Schema {
    entity: "user",
    props: &[
        "id",
        "displayName",
        "mail",
        "userPrincipalName",
        "givenName",
        "surname",
        "jobTitle",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "businessPhones",
        "accountEnabled",
    ],
    default: &[
        "id",
        "displayName",
        "mail",
        "userPrincipalName",
        "givenName",
        "surname",
        "jobTitle",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "businessPhones",
    ],
    filterable: &[],
    collections: &[],
    expandable: &[],
};

pub(crate) fn get(
    inner: &GraphInner,
    ctx: &Ctx,
    req: &Req,
    caller: &Caller,
    reference: &MailboxRef,
) -> GraphResult<Resp> {
    let tenant = inner
        .dir
        .tenant(caller.tenant)
        .ok_or_else(graph_errors::token_invalid)?;
    let key = match (reference, &caller.who) {
        (MailboxRef::Me, Who::App { .. }) => return Err(graph_errors::me_app_only()),
        (MailboxRef::Me, Who::User { upn, .. }) => upn.clone(),
        (MailboxRef::User(key), _) => key.clone(),
    };
    let own = matches!(&caller.who, Who::User { upn, .. } if tenant.entry(&key).is_some_and(|e| e.address.eq_ignore_ascii_case(upn)));
    auth::authorize_profile(caller, own)?;
    let entry = tenant
        .entry(&key)
        .ok_or_else(|| graph_errors::directory_not_found(&key))?;
    let select = req
        .option("$select")
        .map(|s| parse_select(s, &USER))
        .transpose()?;
    let wants = |p: &str| match &select {
        Some(s) => p == "id" || s.contains(&p),
        None => USER.default.contains(&p),
    };
    let (given, surname) = match entry.display_name.split_once(' ') {
        Some((g, s)) if !entry.shared => (Value::from(g), Value::from(s)),
        _ => (Value::Null, Value::Null),
    };
    let all = [
        ("id", json!(entry.object_id)),
        ("displayName", json!(entry.display_name)),
        ("mail", json!(entry.address)),
        ("userPrincipalName", json!(entry.address)),
        ("givenName", given),
        ("surname", surname),
        ("jobTitle", Value::Null),
        ("mobilePhone", Value::Null),
        ("officeLocation", Value::Null),
        ("preferredLanguage", json!("en-US")),
        ("businessPhones", json!([])),
        ("accountEnabled", json!(!entry.shared)),
    ];
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        format!("{}/$metadata#users/$entity", ctx.graph_url()).into(),
    );
    for (name, value) in all {
        if wants(name) {
            body.insert(name.into(), value);
        }
    }
    Ok(Resp::ok(Value::Object(body)))
}
