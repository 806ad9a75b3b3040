//! Calendar: calendarView (series expanded), events CRUD with invitations, getSchedule.

use std::borrow::Cow;
use std::collections::HashSet;

use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

use super::GraphInner;
use super::dispatch::Op;
use super::error::{GraphError, GraphResult, graph_errors};
use super::http::{Ctx, Resp, fmt_instant, fmt_local, parse_instant};
use super::ids::{GraphIds as _, Kind};
use super::mail::{
    as_body, as_bool, as_email_address, as_importance, as_string, as_strings, field,
    importance_name, json_body, mailbox, mailbox_mut, new_message_id, recipient_json,
};
use super::odata::{self, Item, ItemTy, Query, Row, Schema, Ty, Val, collection, parse_query};
use crate::mailstore::content::{Address, AttendeeType, BodyType, ResponseType, ShowAs};
use crate::mailstore::mailbox::{Attendee, Body, Event, Exception, Mailbox, Message};
use crate::mailstore::recurrence::{Recurrence, parse_local};
use crate::mailstore::tz::{self, Zone};

pub(crate) static EVENT: Schema = Schema {
    entity: "event",
    props: &[
        "id",
        "createdDateTime",
        "lastModifiedDateTime",
        "changeKey",
        "categories",
        "transactionId",
        "originalStartTimeZone",
        "originalEndTimeZone",
        "iCalUId",
        "reminderMinutesBeforeStart",
        "isReminderOn",
        "hasAttachments",
        "subject",
        "bodyPreview",
        "importance",
        "sensitivity",
        "isAllDay",
        "isCancelled",
        "isOrganizer",
        "responseRequested",
        "seriesMasterId",
        "showAs",
        "type",
        "webLink",
        "onlineMeetingUrl",
        "isOnlineMeeting",
        "onlineMeetingProvider",
        "allowNewTimeProposals",
        "isDraft",
        "hideAttendees",
        "responseStatus",
        "body",
        "start",
        "end",
        "originalStart",
        "location",
        "locations",
        "recurrence",
        "attendees",
        "organizer",
        "onlineMeeting",
    ],
    default: &[
        "id",
        "createdDateTime",
        "lastModifiedDateTime",
        "changeKey",
        "categories",
        "transactionId",
        "originalStartTimeZone",
        "originalEndTimeZone",
        "iCalUId",
        "reminderMinutesBeforeStart",
        "isReminderOn",
        "hasAttachments",
        "subject",
        "bodyPreview",
        "importance",
        "sensitivity",
        "isAllDay",
        "isCancelled",
        "isOrganizer",
        "responseRequested",
        "seriesMasterId",
        "showAs",
        "type",
        "webLink",
        "onlineMeetingUrl",
        "isOnlineMeeting",
        "onlineMeetingProvider",
        "allowNewTimeProposals",
        "isDraft",
        "hideAttendees",
        "responseStatus",
        "body",
        "start",
        "end",
        "originalStart",
        "location",
        "locations",
        "recurrence",
        "attendees",
        "organizer",
        "onlineMeeting",
    ],
    filterable: &[
        ("subject", Ty::Str),
        ("isAllDay", Ty::Bool),
        ("isCancelled", Ty::Bool),
        ("isOrganizer", Ty::Bool),
        ("isOnlineMeeting", Ty::Bool),
        ("showAs", Ty::Str),
        ("type", Ty::Str),
        ("importance", Ty::Str),
        ("sensitivity", Ty::Str),
        ("iCalUId", Ty::Str),
        ("seriesMasterId", Ty::Str),
        ("start/dateTime", Ty::Str),
        ("end/dateTime", Ty::Str),
        ("createdDateTime", Ty::Date),
        ("lastModifiedDateTime", Ty::Date),
        ("organizer/emailAddress/address", Ty::Str),
        ("location/displayName", Ty::Str),
    ],
    collections: &[
        ("categories", ItemTy::Str),
        ("attendees", ItemTy::Recipient),
    ],
    expandable: &[],
};

/// What an instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InstanceKind {
    SingleInstance,
    Occurrence,
    Exception,
    SeriesMaster,
}

impl InstanceKind {
    fn name(self) -> &'static str {
        match self {
            InstanceKind::SingleInstance => "singleInstance",
            InstanceKind::Occurrence => "occurrence",
            InstanceKind::Exception => "exception",
            InstanceKind::SeriesMaster => "seriesMaster",
        }
    }
}

/// An event as a client sees it: a single event, a series master, or one occurrence.
#[derive(Debug, Clone)]
struct Instance<'a> {
    event: &'a Event,
    kind: InstanceKind,
    start: OffsetDateTime,
    end: OffsetDateTime,
    original: Option<OffsetDateTime>,
    exception: Option<&'a Exception>,
}

impl Instance<'_> {
    fn subject(&self) -> &str {
        self.exception
            .and_then(|x| x.subject.as_deref())
            .unwrap_or(&self.event.subject)
    }

    fn location(&self) -> &str {
        self.exception
            .and_then(|x| x.location.as_deref())
            .unwrap_or(&self.event.location)
    }

    fn body(&self) -> &Body {
        self.exception
            .and_then(|x| x.body.as_ref())
            .unwrap_or(&self.event.body)
    }

    fn show_as(&self) -> ShowAs {
        self.exception
            .and_then(|x| x.show_as)
            .unwrap_or(self.event.show_as)
    }

    fn id(&self, mb: &Mailbox) -> String {
        match self.original {
            Some(original) => mb.id(
                Kind::Occurrence,
                self.event.seq,
                Some(original.unix_timestamp()),
            ),
            None => mb.id(Kind::Event, self.event.seq, None),
        }
    }
}

fn overlaps(
    start: OffsetDateTime,
    end: OffsetDateTime,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> bool {
    start < to && (end > from || (start == end && start >= from))
}

/// The event's instances that overlap `[from, to)`: the single event, or the series'
/// occurrences and exceptions (cancelled occurrences left out), in start order.
fn instances(event: &Event, from: OffsetDateTime, to: OffsetDateTime) -> Vec<Instance<'_>> {
    if event.recurrence.is_none() {
        return if overlaps(event.start, event.end, from, to) {
            vec![Instance {
                event,
                kind: InstanceKind::SingleInstance,
                start: event.start,
                end: event.end,
                original: None,
                exception: None,
            }]
        } else {
            Vec::new()
        };
    }
    let duration = event.duration();
    let mut out = Vec::new();
    event.pattern_starts(to, |start| {
        let Some(end) = start.checked_add(duration) else {
            return false;
        };
        if start >= to {
            return false;
        }
        let key = start.unix_timestamp();
        if !event.cancelled.contains(&key)
            && !event.exceptions.contains_key(&key)
            && overlaps(start, end, from, to)
        {
            out.push(Instance {
                event,
                kind: InstanceKind::Occurrence,
                start,
                end,
                original: Some(start),
                exception: None,
            });
        }
        true
    });
    for (original, x) in &event.exceptions {
        if overlaps(x.start, x.end, from, to)
            && let Ok(original) = OffsetDateTime::from_unix_timestamp(*original)
        {
            out.push(Instance {
                event,
                kind: InstanceKind::Exception,
                start: x.start,
                end: x.end,
                original: Some(original),
                exception: Some(x),
            });
        }
    }
    out.sort_by_key(|i| i.start);
    out
}

/// The instance an event ID or occurrence ID names.
fn instance_by_id<'a>(mb: &'a Mailbox, id: &str) -> GraphResult<Instance<'a>> {
    let decoded = mb.decode(id, &[Kind::Event, Kind::Occurrence])?;
    let event = mb
        .events
        .get(&decoded.seq)
        .ok_or_else(graph_errors::item_not_found)?;
    let Some(original) = decoded.instance else {
        return Ok(Instance {
            event,
            kind: if event.recurrence.is_some() {
                InstanceKind::SeriesMaster
            } else {
                InstanceKind::SingleInstance
            },
            start: event.start,
            end: event.end,
            original: None,
            exception: None,
        });
    };
    let start =
        OffsetDateTime::from_unix_timestamp(original).map_err(|_| graph_errors::id_malformed())?;
    if event.cancelled.contains(&original) {
        return Err(graph_errors::item_not_found());
    }
    if let Some(x) = event.exceptions.get(&original) {
        return Ok(Instance {
            event,
            kind: InstanceKind::Exception,
            start: x.start,
            end: x.end,
            original: Some(start),
            exception: Some(x),
        });
    }
    if !event.is_occurrence(start) {
        return Err(graph_errors::item_not_found());
    }
    Ok(Instance {
        event,
        kind: InstanceKind::Occurrence,
        start,
        end: start.checked_add(event.duration()).unwrap_or(start),
        original: Some(start),
        exception: None,
    })
}

/// The zone answers are written in: `Prefer: outlook.timezone`, else UTC. A zone Graph does
/// not know fails the request, as in Graph: 400 `TimeZoneNotSupportedException`.
fn display_zone(ctx: &Ctx) -> GraphResult<(Zone, String)> {
    match ctx.prefer.time_zone.as_deref().map(str::trim) {
        Some(name) => tz::find(name)
            .map(|zone| (zone, name.to_string()))
            .ok_or_else(|| graph_errors::time_zone_not_supported(name)),
        None => Ok((tz::utc(), "UTC".into())),
    }
}

fn zone_applied(ctx: &Ctx, resp: &mut Resp) {
    if let Some(name) = &ctx.prefer.time_zone
        && tz::find(name).is_some()
    {
        resp.header(
            "Preference-Applied",
            format!("outlook.timezone=\"{}\"", name.trim()),
        );
    }
}

fn time_json(t: OffsetDateTime, all_day: bool, zone: Zone, zone_name: &str) -> Value {
    let local = if all_day {
        PrimitiveDateTime::new(t.date(), t.time())
    } else {
        zone.to_local(t)
    };
    json!({"dateTime": fmt_local(local), "timeZone": zone_name})
}

fn show_as_name(s: ShowAs) -> &'static str {
    match s {
        ShowAs::Free => "free",
        ShowAs::Tentative => "tentative",
        ShowAs::Busy => "busy",
        ShowAs::Oof => "oof",
        ShowAs::WorkingElsewhere => "workingElsewhere",
        ShowAs::Unknown => "unknown",
    }
}

fn response_name(r: ResponseType) -> &'static str {
    match r {
        ResponseType::None => "none",
        ResponseType::Organizer => "organizer",
        ResponseType::TentativelyAccepted => "tentativelyAccepted",
        ResponseType::Accepted => "accepted",
        ResponseType::Declined => "declined",
        ResponseType::NotResponded => "notResponded",
    }
}

fn attendee_type_name(t: AttendeeType) -> &'static str {
    match t {
        AttendeeType::Required => "required",
        AttendeeType::Optional => "optional",
        AttendeeType::Resource => "resource",
    }
}

fn response_time(t: Option<OffsetDateTime>) -> String {
    t.map_or_else(|| "0001-01-01T00:00:00Z".to_string(), fmt_instant)
}

fn event_json(mb: &Mailbox, i: &Instance<'_>, q: &Query, ctx: &Ctx, zone: (Zone, &str)) -> Value {
    let e = i.event;
    let id = i.id(mb);
    let wants = |p: &str| q.wants(&EVENT, p);
    let mut o = Map::new();
    let change_key = mb.change_key(e.version);
    o.insert("@odata.etag".into(), format!("W/\"{change_key}\"").into());
    let body = match ctx.prefer.body_type {
        Some(kind) => i.body().as_kind(kind),
        None => i.body().clone(),
    };
    let location = json!({
        "displayName": i.location(),
        "locationType": "default",
        "uniqueIdType": if i.location().is_empty() { "unknown" } else { "private" },
        "address": {},
        "coordinates": {},
    });
    let fields: Vec<(&str, Value)> = vec![
        ("id", id.clone().into()),
        ("createdDateTime", fmt_instant(e.created).into()),
        ("lastModifiedDateTime", fmt_instant(e.modified).into()),
        ("changeKey", change_key.into()),
        ("categories", json!(e.categories)),
        ("transactionId", Value::Null),
        ("originalStartTimeZone", e.time_zone.clone().into()),
        ("originalEndTimeZone", e.time_zone.clone().into()),
        ("iCalUId", e.ical_uid.clone().into()),
        ("reminderMinutesBeforeStart", 15.into()),
        ("isReminderOn", (!e.is_all_day).into()),
        ("hasAttachments", false.into()),
        ("subject", i.subject().into()),
        ("bodyPreview", i.body().preview().into()),
        ("importance", importance_name(e.importance).into()),
        ("sensitivity", if e.is_private { "private" } else { "normal" }.into()),
        ("isAllDay", e.is_all_day.into()),
        ("isCancelled", e.is_cancelled.into()),
        ("isOrganizer", e.is_organizer.into()),
        ("responseRequested", true.into()),
        (
            "seriesMasterId",
            if i.original.is_some() {
                mb.id(Kind::Event, e.seq, None).into()
            } else {
                Value::Null
            },
        ),
        ("showAs", show_as_name(i.show_as()).into()),
        ("type", i.kind.name().into()),
        (
            "webLink",
            format!(
                "https://outlook.office365.com/owa/?itemid={}&exvsurl=1&path=/calendar/item",
                url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
            )
            .into(),
        ),
        ("onlineMeetingUrl", Value::Null),
        ("isOnlineMeeting", e.online_meeting.is_some().into()),
        (
            "onlineMeetingProvider",
            if e.online_meeting.is_some() { "teamsForBusiness" } else { "unknown" }.into(),
        ),
        ("allowNewTimeProposals", true.into()),
        ("isDraft", false.into()),
        ("hideAttendees", false.into()),
        (
            "responseStatus",
            json!({"response": response_name(e.response), "time": response_time(e.response_time)}),
        ),
        (
            "body",
            json!({"contentType": match body.kind { BodyType::Html => "html", BodyType::Text => "text" }, "content": body.content}),
        ),
        ("start", time_json(i.start, e.is_all_day, zone.0, zone.1)),
        ("end", time_json(i.end, e.is_all_day, zone.0, zone.1)),
        ("originalStart", i.original.map(fmt_instant).into()),
        ("location", location.clone()),
        (
            "locations",
            if i.location().is_empty() { json!([]) } else { json!([location]) },
        ),
        (
            "recurrence",
            match (&e.recurrence, i.kind) {
                (Some(r), InstanceKind::SeriesMaster) => r.to_json(&e.time_zone),
                _ => Value::Null,
            },
        ),
        (
            "attendees",
            Value::Array(
                e.attendees
                    .iter()
                    .map(|a| {
                        json!({
                            "type": attendee_type_name(a.kind),
                            "status": {"response": response_name(a.response), "time": response_time(a.time)},
                            "emailAddress": {"name": a.address.name, "address": a.address.address},
                        })
                    })
                    .collect(),
            ),
        ),
        ("organizer", recipient_json(&e.organizer)),
        (
            "onlineMeeting",
            e.online_meeting
                .as_ref()
                .map_or(Value::Null, |url| json!({"joinUrl": url})),
        ),
    ];
    for (name, value) in fields {
        if name == "originalStart" && i.original.is_none() && q.select.is_none() {
            continue;
        }
        if wants(name) {
            o.insert(name.into(), value);
        }
    }
    Value::Object(o)
}

struct InstanceRow<'a> {
    i: Instance<'a>,
    id: String,
    master_id: Option<String>,
}

impl Row for InstanceRow<'_> {
    fn value(&self, path: &str) -> Val<'_> {
        let e = self.i.event;
        match path {
            "subject" => Val::Str(Cow::Borrowed(self.i.subject())),
            "isAllDay" => Val::Bool(e.is_all_day),
            "isCancelled" => Val::Bool(e.is_cancelled),
            "isOrganizer" => Val::Bool(e.is_organizer),
            "isOnlineMeeting" => Val::Bool(e.online_meeting.is_some()),
            "showAs" => Val::Str(Cow::Borrowed(show_as_name(self.i.show_as()))),
            "type" => Val::Str(Cow::Borrowed(self.i.kind.name())),
            "importance" => Val::Str(Cow::Borrowed(importance_name(e.importance))),
            "sensitivity" => Val::Str(Cow::Borrowed(if e.is_private {
                "private"
            } else {
                "normal"
            })),
            "iCalUId" => Val::Str(Cow::Borrowed(&e.ical_uid)),
            "seriesMasterId" => Val::opt_str(self.master_id.as_deref()),
            "start/dateTime" => Val::Str(Cow::Owned(fmt_local(PrimitiveDateTime::new(
                self.i.start.date(),
                self.i.start.time(),
            )))),
            "end/dateTime" => Val::Str(Cow::Owned(fmt_local(PrimitiveDateTime::new(
                self.i.end.date(),
                self.i.end.time(),
            )))),
            "createdDateTime" => Val::Date(e.created),
            "lastModifiedDateTime" => Val::Date(e.modified),
            "organizer/emailAddress/address" => Val::Str(Cow::Borrowed(&e.organizer.address)),
            "location/displayName" => Val::Str(Cow::Borrowed(self.i.location())),
            "id" => Val::Str(Cow::Borrowed(&self.id)),
            _ => Val::Null,
        }
    }

    fn items(&self, collection: &str) -> Vec<Item<'_>> {
        match collection {
            "categories" => self
                .i
                .event
                .categories
                .iter()
                .map(|c| Item::Str(c))
                .collect(),
            "attendees" => self
                .i
                .event
                .attendees
                .iter()
                .map(|a| Item::Address(&a.address))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Filters, orders (start time by default) and pages instances into a collection answer.
fn answer_instances(
    mb: &Mailbox,
    op: &Op<'_>,
    q: &Query,
    all: Vec<Instance<'_>>,
    context: &str,
) -> GraphResult<Resp> {
    let mut rows: Vec<InstanceRow<'_>> = all
        .into_iter()
        .map(|i| InstanceRow {
            id: i.id(mb),
            master_id: i.original.map(|_| mb.id(Kind::Event, i.event.seq, None)),
            i,
        })
        .filter(|row| q.filter.as_ref().is_none_or(|f| f.matches(row)))
        .collect();
    rows.sort_by(|a, b| a.i.start.cmp(&b.i.start).then_with(|| a.id.cmp(&b.id)));
    odata::sort_rows(&mut rows, &q.orderby);
    let (offset, size) = q.page(op.ctx, 10)?;
    let total = rows.len();
    let zone = display_zone(op.ctx)?;
    let value: Vec<Value> = rows
        .iter()
        .skip(offset)
        .take(size)
        .map(|row| event_json(mb, &row.i, q, op.ctx, (zone.0, &zone.1)))
        .collect();
    let next = (offset.saturating_add(size) < total).then_some(offset.saturating_add(size));
    let mut resp = Resp::ok(collection(
        op.ctx,
        op.req,
        context,
        value,
        q.count.then_some(total),
        next,
    ));
    zone_applied(op.ctx, &mut resp);
    super::mail::preference_applied(op.ctx, &mut resp);
    Ok(resp)
}

fn window_bound(op: &Op<'_>, name: &str) -> GraphResult<OffsetDateTime> {
    let value = op.req.option(name).ok_or_else(|| {
        graph_errors::invalid_parameter(
            "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
        )
    })?;
    parse_instant(value).ok_or_else(|| {
        graph_errors::invalid_parameter(format!(
            "The value '{value}' of parameter '{name}' is invalid."
        ))
    })
}

pub(crate) fn calendar_view(
    inner: &GraphInner,
    op: &Op<'_>,
    master: Option<&str>,
) -> GraphResult<Resp> {
    let mb = mailbox(inner, op)?;
    let q = parse_query(op.req, &EVENT)?;
    let from = window_bound(op, "startDateTime")?;
    let to = window_bound(op, "endDateTime")?;
    if to < from {
        return Err(graph_errors::invalid_parameter(
            "The EndDateTime must be later than the StartDateTime.",
        ));
    }
    let all: Vec<Instance<'_>> = match master {
        Some(id) => {
            let i = instance_by_id(mb, id)?;
            if i.kind != InstanceKind::SeriesMaster && i.kind != InstanceKind::SingleInstance {
                return Err(graph_errors::item_not_found());
            }
            instances(i.event, from, to)
        }
        None => mb
            .events
            .values()
            .flat_map(|e| instances(e, from, to))
            .collect(),
    };
    let context = format!("users('{}')/calendarView", op.target.address);
    answer_instances(mb, op, &q, all, &context)
}

pub(crate) fn list_events(inner: &GraphInner, op: &Op<'_>) -> GraphResult<Resp> {
    let mb = mailbox(inner, op)?;
    let q = parse_query(op.req, &EVENT)?;
    let all: Vec<Instance<'_>> = mb
        .events
        .values()
        .map(|e| Instance {
            event: e,
            kind: if e.recurrence.is_some() {
                InstanceKind::SeriesMaster
            } else {
                InstanceKind::SingleInstance
            },
            start: e.start,
            end: e.end,
            original: None,
            exception: None,
        })
        .collect();
    let context = format!("users('{}')/events", op.target.address);
    answer_instances(mb, op, &q, all, &context)
}

pub(crate) fn get_event(inner: &GraphInner, op: &Op<'_>, id: &str) -> GraphResult<Resp> {
    let mb = mailbox(inner, op)?;
    let q = parse_query(op.req, &EVENT)?;
    let i = instance_by_id(mb, id)?;
    let zone = display_zone(op.ctx)?;
    let mut resp = Resp::ok(event_json(mb, &i, &q, op.ctx, (zone.0, &zone.1)));
    zone_applied(op.ctx, &mut resp);
    Ok(resp)
}

// ----- writing -----

/// `{"dateTime":…,"timeZone":…}` as an instant (and the zone's name), or a floating date for
/// all-day events.
fn as_time(value: &Value, all_day: bool) -> GraphResult<(OffsetDateTime, String)> {
    let o = value.as_object().ok_or_else(|| {
        graph_errors::body_read("Cannot convert the value to 'microsoft.graph.dateTimeTimeZone'.")
    })?;
    let date_time = field(o, "dateTime")
        .map(as_string)
        .transpose()?
        .unwrap_or_default();
    let zone_name = field(o, "timeZone")
        .map(as_string)
        .transpose()?
        .unwrap_or_else(|| "UTC".into());
    let zone =
        tz::find(&zone_name).ok_or_else(|| graph_errors::time_zone_not_supported(&zone_name))?;
    let local = parse_local(date_time.trim_end_matches('Z')).ok_or_else(|| {
        graph_errors::body_read(format!(
            "Cannot convert the literal '{date_time}' to the expected type 'Edm.DateTime'."
        ))
    })?;
    let instant = if all_day {
        local.assume_utc()
    } else {
        zone.to_utc(local)
    };
    Ok((instant, zone_name))
}

fn as_show_as(value: &Value) -> GraphResult<ShowAs> {
    serde_json::from_value(value.clone()).map_err(|_| {
        graph_errors::body_read(format!("Cannot convert the literal '{value}' to the expected type 'microsoft.graph.freeBusyStatus'."))
    })
}

fn as_attendees(value: &Value) -> GraphResult<Vec<Attendee>> {
    let list = value.as_array().ok_or_else(|| {
        graph_errors::body_read(
            "Cannot convert the value to 'Collection(microsoft.graph.attendee)'.",
        )
    })?;
    list.iter()
        .map(|a| {
            let o = a
                .as_object()
                .ok_or_else(|| graph_errors::body_read("Cannot convert the value to 'microsoft.graph.attendee'."))?;
            let email = field(o, "emailAddress")
                .and_then(Value::as_object)
                .ok_or_else(|| graph_errors::invalid_request("An attendee has no emailAddress."))?;
            let address = as_email_address(email)?;
            let kind = match field(o, "type").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
                None | Some("required") => AttendeeType::Required,
                Some("optional") => AttendeeType::Optional,
                Some("resource") => AttendeeType::Resource,
                Some(other) => {
                    return Err(graph_errors::body_read(format!(
                        "Cannot convert the literal '{other}' to the expected type 'microsoft.graph.attendeeType'."
                    )));
                }
            };
            Ok(Attendee {
                address,
                kind,
                response: ResponseType::None,
                time: None,
            })
        })
        .collect()
}

/// What a request body may set on an event.
#[derive(Debug, Default)]
struct EventPatch {
    subject: Option<String>,
    body: Option<Body>,
    start: Option<(OffsetDateTime, String)>,
    end: Option<(OffsetDateTime, String)>,
    is_all_day: Option<bool>,
    location: Option<String>,
    attendees: Option<Vec<Attendee>>,
    recurrence: Option<Option<Recurrence>>,
    online: Option<bool>,
    show_as: Option<ShowAs>,
    importance: Option<crate::mailstore::content::Importance>,
    private: Option<bool>,
    categories: Option<Vec<String>>,
}

const EVENT_IGNORED: &[&str] = &[
    "@odata.type",
    "@odata.etag",
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "transactionId",
    "originalStartTimeZone",
    "originalEndTimeZone",
    "iCalUId",
    "reminderMinutesBeforeStart",
    "isReminderOn",
    "hasAttachments",
    "bodyPreview",
    "isCancelled",
    "isOrganizer",
    "responseRequested",
    "seriesMasterId",
    "type",
    "webLink",
    "onlineMeetingUrl",
    "allowNewTimeProposals",
    "isDraft",
    "hideAttendees",
    "responseStatus",
    "organizer",
    "onlineMeeting",
    "locations",
    "originalStart",
];

fn parse_event(map: &Map<String, Value>) -> GraphResult<EventPatch> {
    let mut p = EventPatch::default();
    let all_day = field(map, "isAllDay").map(as_bool).transpose()?;
    p.is_all_day = all_day;
    let all_day = all_day.unwrap_or(false);
    for (key, value) in map {
        match key.to_ascii_lowercase().as_str() {
            "subject" => {
                p.subject = Some(if value.is_null() {
                    String::new()
                } else {
                    as_string(value)?
                })
            }
            "body" => p.body = Some(as_body(value)?),
            "start" => p.start = Some(as_time(value, all_day)?),
            "end" => p.end = Some(as_time(value, all_day)?),
            "isallday" => {}
            "location" => {
                p.location = Some(match value {
                    Value::Null => String::new(),
                    other => other
                        .as_object()
                        .and_then(|o| field(o, "displayName"))
                        .map(as_string)
                        .transpose()?
                        .unwrap_or_default(),
                });
            }
            "attendees" => p.attendees = Some(as_attendees(value)?),
            "recurrence" => {
                p.recurrence = Some(if value.is_null() {
                    None
                } else {
                    let r: Recurrence = serde_json::from_value(value.clone()).map_err(|e| {
                        graph_errors::body_read(format!("The recurrence is not valid: {e}"))
                    })?;
                    r.validate().map_err(graph_errors::property_validation)?;
                    if let Some(zone) = &r.range.recurrence_time_zone
                        && tz::find(zone).is_none()
                    {
                        return Err(graph_errors::time_zone_not_supported(zone));
                    }
                    Some(r)
                });
            }
            "isonlinemeeting" => p.online = Some(as_bool(value)?),
            "onlinemeetingprovider" => {
                let provider = as_string(value)?;
                if provider.eq_ignore_ascii_case("teamsForBusiness") {
                    p.online = Some(p.online.unwrap_or(true));
                }
            }
            "showas" => p.show_as = Some(as_show_as(value)?),
            "importance" => p.importance = Some(as_importance(value)?),
            "sensitivity" => {
                let s = as_string(value)?;
                p.private = Some(
                    s.eq_ignore_ascii_case("private") || s.eq_ignore_ascii_case("confidential"),
                );
            }
            "categories" => p.categories = Some(as_strings(value)?),
            _ if EVENT_IGNORED.iter().any(|i| i.eq_ignore_ascii_case(key))
                || key.starts_with('@') => {}
            _ => return Err(graph_errors::body_unknown_property(key, "event")),
        }
    }
    Ok(p)
}

fn check_times(start: OffsetDateTime, end: OffsetDateTime, all_day: bool) -> GraphResult<()> {
    if end < start {
        return Err(GraphError::bad_request(
            "ErrorCalendarEndDateIsEarlierThanStartDate",
            "The end date occurs before the start date.",
        ));
    }
    if all_day
        && (start.time() != time::Time::MIDNIGHT
            || end.time() != time::Time::MIDNIGHT
            || end == start)
    {
        return Err(graph_errors::property_validation(
            "An all-day event must start and end at midnight and last at least one day.",
        ));
    }
    Ok(())
}

fn teams_url(ical_uid: &str) -> String {
    let tail = ical_uid
        .get(ical_uid.len().saturating_sub(24)..)
        .unwrap_or(ical_uid);
    format!(
        "https://teams.microsoft.com/l/meetup-join/19%3ameeting_{}%40thread.v2/0?context=%7b%22Tid%22%3a%22mock%22%7d",
        tail.to_ascii_lowercase()
    )
}

pub(crate) fn create_event(inner: &mut GraphInner, op: &Op<'_>) -> GraphResult<Resp> {
    let preferred = match op.ctx.prefer.time_zone {
        Some(_) => Some(display_zone(op.ctx)?),
        None => None,
    };
    let map = json_body(op.req)?;
    let p = parse_event(&map)?;
    let all_day = p.is_all_day.unwrap_or(false);
    let (Some((start, zone_name)), Some((end, _))) = (p.start.clone(), p.end.clone()) else {
        return Err(graph_errors::property_validation(
            "An event needs a start and an end.",
        ));
    };
    check_times(start, end, all_day)?;
    let now = op.ctx.now;
    let organizer = Address::new(op.target.display_name.clone(), op.target.address.clone());
    let mut event = Event {
        seq: 0,
        version: 0,
        created: now,
        modified: now,
        ical_uid: String::new(),
        subject: p.subject.unwrap_or_default(),
        body: p.body.unwrap_or(Body {
            kind: BodyType::Html,
            content: String::new(),
        }),
        start,
        end,
        time_zone: zone_name.clone(),
        is_all_day: all_day,
        location: p.location.unwrap_or_default(),
        organizer: organizer.clone(),
        is_organizer: true,
        response: ResponseType::Organizer,
        response_time: None,
        attendees: p
            .attendees
            .unwrap_or_default()
            .into_iter()
            .filter(|a| !a.address.address.eq_ignore_ascii_case(&organizer.address))
            .collect(),
        show_as: p.show_as.unwrap_or(ShowAs::Busy),
        online_meeting: None,
        recurrence: p.recurrence.flatten(),
        exceptions: Default::default(),
        cancelled: Default::default(),
        is_cancelled: false,
        is_private: p.private.unwrap_or(false),
        categories: p.categories.unwrap_or_default(),
        importance: p.importance.unwrap_or_default(),
    };
    let mb = mailbox_mut(inner, op)?;
    let seq = mb.insert_event(event.clone());
    let ical_uid = mb
        .events
        .get(&seq)
        .map(|e| e.ical_uid.clone())
        .unwrap_or_default();
    if p.online == Some(true)
        && let Some(e) = mb.events.get_mut(&seq)
    {
        e.online_meeting = Some(teams_url(&ical_uid));
    }
    event.ical_uid = ical_uid;
    event.online_meeting = (p.online == Some(true)).then(|| teams_url(&event.ical_uid));
    invite(inner, op, &event);
    let mb = mailbox(inner, op)?;
    let stored = mb
        .events
        .get(&seq)
        .ok_or_else(graph_errors::item_not_found)?;
    let i = Instance {
        event: stored,
        kind: if stored.recurrence.is_some() {
            InstanceKind::SeriesMaster
        } else {
            InstanceKind::SingleInstance
        },
        start: stored.start,
        end: stored.end,
        original: None,
        exception: None,
    };
    // A new event answers in the zone it was created in unless the caller prefers another.
    let (zone, name) = match preferred {
        Some(preferred) => preferred,
        None => (tz::find(&zone_name).unwrap_or_else(tz::utc), zone_name),
    };
    let mut resp = Resp::json(
        StatusCode::CREATED,
        event_json(mb, &i, &Query::default(), op.ctx, (zone, &name)),
    );
    zone_applied(op.ctx, &mut resp);
    Ok(resp)
}

/// Puts the event on every attendee's calendar (not responded yet) and a meeting request in
/// their Inbox, for attendees whose mailbox the mock has.
fn invite(inner: &mut GraphInner, op: &Op<'_>, event: &Event) {
    let mut seen = HashSet::new();
    for attendee in &event.attendees {
        let key = attendee.address.address.trim().to_ascii_lowercase();
        if !seen.insert(key.clone()) || key == op.target.address.to_ascii_lowercase() {
            continue;
        }
        let Some(mb) = inner.mailbox_mut(&key) else {
            continue;
        };
        let mut copy = event.clone();
        copy.is_organizer = false;
        copy.response = ResponseType::NotResponded;
        copy.created = op.ctx.now;
        copy.modified = op.ctx.now;
        mb.insert_event(copy);
        let Some(inbox) = mb.well_known("inbox") else {
            continue;
        };
        let mut request = Message::blank(op.ctx.now, new_message_id(&event.organizer.address));
        request.folder = inbox;
        request.is_draft = false;
        request.is_read = false;
        request.sent = Some(op.ctx.now);
        request.subject = event.subject.clone();
        request.body = event.body.clone();
        request.from = Some(event.organizer.clone());
        request.sender = Some(event.organizer.clone());
        request.to = event
            .attendees
            .iter()
            .filter(|a| a.kind != AttendeeType::Optional)
            .map(|a| a.address.clone())
            .collect();
        request.cc = event
            .attendees
            .iter()
            .filter(|a| a.kind == AttendeeType::Optional)
            .map(|a| a.address.clone())
            .collect();
        let (imid, subject) = (request.internet_message_id.clone(), request.subject.clone());
        let address = mb.address.clone();
        mb.insert_message(request);
        inner.store.delivered(&address, &imid, &subject);
    }
}

/// The attendees' copies of an event the caller organizes: (mailbox, event seq).
fn attendee_copies(inner: &GraphInner, op: &Op<'_>, ical_uid: &str) -> Vec<(String, u64)> {
    let me = op.target.address.to_ascii_lowercase();
    inner
        .store
        .mailboxes
        .iter()
        .filter(|(address, _)| **address != me)
        .flat_map(|(address, mb)| {
            mb.events
                .values()
                .filter(|e| e.ical_uid == ical_uid && !e.is_organizer)
                .map(|e| (address.clone(), e.seq))
                .collect::<Vec<_>>()
        })
        .collect()
}

pub(crate) fn patch_event(inner: &mut GraphInner, op: &Op<'_>, id: &str) -> GraphResult<Resp> {
    let zone = display_zone(op.ctx)?;
    let map = json_body(op.req)?;
    let p = parse_event(&map)?;
    let now = op.ctx.now;
    let mb = mailbox_mut(inner, op)?;
    let decoded = mb.decode(id, &[Kind::Event, Kind::Occurrence])?;
    let event = mb
        .events
        .get_mut(&decoded.seq)
        .ok_or_else(graph_errors::item_not_found)?;
    match decoded.instance {
        None => {
            let all_day = p.is_all_day.unwrap_or(event.is_all_day);
            let start = p.start.clone().map_or(event.start, |s| s.0);
            let end = p.end.clone().map_or(event.end, |e| e.0);
            check_times(start, end, all_day)?;
            if let Some((_, zone)) = &p.start {
                event.time_zone = zone.clone();
            }
            event.start = start;
            event.end = end;
            event.is_all_day = all_day;
            if let Some(v) = p.subject {
                event.subject = v;
            }
            if let Some(v) = p.body {
                event.body = v;
            }
            if let Some(v) = p.location {
                event.location = v;
            }
            if let Some(v) = p.attendees {
                event.attendees = v;
            }
            if let Some(v) = p.recurrence {
                event.recurrence = v;
                event.exceptions.clear();
                event.cancelled.clear();
            }
            if let Some(v) = p.online {
                event.online_meeting = v.then(|| teams_url(&event.ical_uid));
            }
            if let Some(v) = p.show_as {
                event.show_as = v;
            }
            if let Some(v) = p.importance {
                event.importance = v;
            }
            if let Some(v) = p.private {
                event.is_private = v;
            }
            if let Some(v) = p.categories {
                event.categories = v;
            }
        }
        Some(original) => {
            let original_start = OffsetDateTime::from_unix_timestamp(original)
                .map_err(|_| graph_errors::id_malformed())?;
            if event.cancelled.contains(&original)
                || (!event.exceptions.contains_key(&original)
                    && !event.is_occurrence(original_start))
            {
                return Err(graph_errors::item_not_found());
            }
            let duration = event.duration();
            let current = event
                .exceptions
                .get(&original)
                .cloned()
                .unwrap_or(Exception {
                    subject: None,
                    start: original_start,
                    end: original_start
                        .checked_add(duration)
                        .unwrap_or(original_start),
                    location: None,
                    body: None,
                    show_as: None,
                });
            let start = p.start.clone().map_or(current.start, |s| s.0);
            let end = p.end.clone().map_or(current.end, |e| e.0);
            check_times(start, end, event.is_all_day)?;
            event.exceptions.insert(
                original,
                Exception {
                    subject: p.subject.or(current.subject),
                    start,
                    end,
                    location: p.location.or(current.location),
                    body: p.body.or(current.body),
                    show_as: p.show_as.or(current.show_as),
                },
            );
        }
    }
    mb.touch_event(decoded.seq, now);
    let mb = mailbox(inner, op)?;
    let i = instance_by_id(mb, id)?;
    let mut resp = Resp::ok(event_json(
        mb,
        &i,
        &Query::default(),
        op.ctx,
        (zone.0, &zone.1),
    ));
    zone_applied(op.ctx, &mut resp);
    Ok(resp)
}

pub(crate) fn delete_event(inner: &mut GraphInner, op: &Op<'_>, id: &str) -> GraphResult<Resp> {
    let now = op.ctx.now;
    let mb = mailbox_mut(inner, op)?;
    let decoded = mb.decode(id, &[Kind::Event, Kind::Occurrence])?;
    let event = mb
        .events
        .get(&decoded.seq)
        .ok_or_else(graph_errors::item_not_found)?;
    let (ical_uid, organizer) = (event.ical_uid.clone(), event.is_organizer);
    match decoded.instance {
        None => {
            mb.events.remove(&decoded.seq);
        }
        Some(original) => {
            let start = OffsetDateTime::from_unix_timestamp(original)
                .map_err(|_| graph_errors::id_malformed())?;
            let event = mb
                .events
                .get_mut(&decoded.seq)
                .ok_or_else(graph_errors::item_not_found)?;
            if event.cancelled.contains(&original)
                || (!event.exceptions.contains_key(&original) && !event.is_occurrence(start))
            {
                return Err(graph_errors::item_not_found());
            }
            event.exceptions.remove(&original);
            event.cancelled.insert(original);
            mb.touch_event(decoded.seq, now);
        }
    }
    // The organizer's deletion cancels the meeting on the attendees' calendars.
    if organizer {
        for (address, seq) in attendee_copies(inner, op, &ical_uid) {
            if let Some(e) = inner
                .mailbox_mut(&address)
                .and_then(|mb| mb.events.get_mut(&seq))
            {
                match decoded.instance {
                    None => e.is_cancelled = true,
                    Some(original) => {
                        e.exceptions.remove(&original);
                        e.cancelled.insert(original);
                    }
                }
            }
        }
    }
    Ok(Resp::empty(StatusCode::NO_CONTENT))
}

// ----- getSchedule -----

fn availability_code(status: &str) -> u8 {
    match status {
        "tentative" => 1,
        "busy" => 2,
        "oof" => 3,
        // Graph writes working elsewhere as 0 "for backward compatibility".
        _ => 0,
    }
}

pub(crate) fn get_schedule(inner: &GraphInner, op: &Op<'_>) -> GraphResult<Resp> {
    let map = json_body(op.req)?;
    let schedules = field(&map, "schedules")
        .map(as_strings)
        .transpose()?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| graph_errors::invalid_parameter("The schedules parameter is required."))?;
    if schedules.len() > 100 {
        return Err(graph_errors::invalid_parameter(
            "At most 100 schedules may be requested.",
        ));
    }
    let start = field(&map, "startTime")
        .ok_or_else(|| graph_errors::invalid_parameter("The startTime parameter is required."))
        .and_then(|v| as_time(v, false))?
        .0;
    let end = field(&map, "endTime")
        .ok_or_else(|| graph_errors::invalid_parameter("The endTime parameter is required."))
        .and_then(|v| as_time(v, false))?
        .0;
    if end <= start {
        return Err(graph_errors::invalid_parameter(
            "The endTime must be later than the startTime.",
        ));
    }
    if end - start > Duration::days(62) {
        return Err(graph_errors::invalid_parameter(
            "The requested time window must not exceed 62 days.",
        ));
    }
    let interval = match field(&map, "availabilityViewInterval") {
        None => 30,
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        Some(other) => {
            return Err(graph_errors::body_read(format!(
                "Cannot convert the literal '{other}' to the expected type 'Edm.Int32'."
            )));
        }
    };
    if !(5..=1440).contains(&interval) {
        return Err(graph_errors::invalid_parameter(
            "The availabilityViewInterval must be between 5 and 1440 minutes.",
        ));
    }
    let tenant = op.tenant(inner)?;
    let zone = display_zone(op.ctx)?;
    let slots = ((end - start).whole_minutes() + interval - 1) / interval;
    let mut value = Vec::new();
    for schedule in schedules {
        let Some(mb) = tenant
            .entry(&schedule)
            .and_then(|e| inner.mailbox(&e.address))
        else {
            value.push(json!({
                "scheduleId": schedule,
                "availabilityView": "",
                "scheduleItems": [],
                "error": {
                    "message": "The specified recipient could not be found.",
                    "responseCode": "ErrorMailRecipientNotFound",
                },
            }));
            continue;
        };
        let mut items: Vec<(Instance<'_>, &'static str)> = mb
            .events
            .values()
            .filter(|e| !e.is_cancelled && e.response != ResponseType::Declined)
            .flat_map(|e| instances(e, start, end))
            .filter_map(|i| {
                let unanswered = !i.event.is_organizer
                    && matches!(
                        i.event.response,
                        ResponseType::NotResponded
                            | ResponseType::None
                            | ResponseType::TentativelyAccepted
                    );
                let status = match i.show_as() {
                    ShowAs::Free => return None,
                    ShowAs::Busy if unanswered => "tentative",
                    other => show_as_name(other),
                };
                Some((i, status))
            })
            .collect();
        items.sort_by_key(|(i, _)| i.start);
        let view: String = (0..slots)
            .map(|n| {
                let slot_start = start + Duration::minutes(n * interval);
                let slot_end = slot_start + Duration::minutes(interval);
                let code = items
                    .iter()
                    .filter(|(i, _)| overlaps(i.start, i.end, slot_start, slot_end))
                    .map(|(_, status)| availability_code(status))
                    .max()
                    .unwrap_or(0);
                char::from(b'0' + code)
            })
            .collect();
        let schedule_items: Vec<Value> = items
            .iter()
            .map(|(i, status)| {
                let mut item = json!({
                    "isPrivate": i.event.is_private,
                    "status": status,
                    "start": time_json(i.start, i.event.is_all_day, zone.0, &zone.1),
                    "end": time_json(i.end, i.event.is_all_day, zone.0, &zone.1),
                });
                if !i.event.is_private
                    && let Some(o) = item.as_object_mut()
                {
                    o.insert("subject".into(), i.subject().into());
                    o.insert("location".into(), i.location().into());
                }
                item
            })
            .collect();
        let mailbox_zone = tz::find(&mb.time_zone).unwrap_or_else(tz::utc);
        value.push(json!({
            "scheduleId": schedule,
            "availabilityView": view,
            "scheduleItems": schedule_items,
            "workingHours": {
                "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                "startTime": "08:00:00.0000000",
                "endTime": "17:00:00.0000000",
                "timeZone": {"name": mailbox_zone.windows_name()},
            },
        }));
    }
    let body = json!({
        "@odata.context": format!("{}/$metadata#Collection(microsoft.graph.scheduleInformation)", op.ctx.graph_url()),
        "value": value,
    });
    let mut resp = Resp::ok(body);
    zone_applied(op.ctx, &mut resp);
    Ok(resp)
}
