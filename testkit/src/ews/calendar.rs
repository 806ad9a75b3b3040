//! Calendar items: `t:CalendarItem`, CalendarView (series expanded from the mail store's
//! recurrence), the calendar folder's FindItem, and calendar items made by CreateItem (with
//! meeting invitations delivered to attendees the mock has).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use time::OffsetDateTime;

use super::dispatch::Op;
use super::folders;
use super::ids::{Id, Kind, change_key};
use super::items::{
    Shape, body_xml, bool_text, categories_xml, fmt_time, importance_name, mailbox_xml, parse_time,
    root_folder,
};
use super::soap::{self, EwsError, EwsResult};
use super::xml::{Element, Xml};
use crate::mailstore::Mailboxes;
use crate::mailstore::content::{
    Address, AttendeeType, BodyType, Importance, ResponseType, ShowAs,
};
use crate::mailstore::mailbox::{Attendee, Body, Event, Exception, Mailbox, Message};

/// One instance of an event in a window: start, end, original start (occurrences and
/// exceptions), the exception's changes.
pub(crate) struct Instance<'a> {
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    pub original: Option<OffsetDateTime>,
    pub exception: Option<&'a Exception>,
}

fn overlaps(
    s: OffsetDateTime,
    e: OffsetDateTime,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> bool {
    s < to && (e > from || (s == e && s >= from))
}

/// The instances of `event` overlapping `[from, to)`, by start.
pub(crate) fn instances(
    event: &Event,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Vec<Instance<'_>> {
    if event.recurrence.is_none() {
        return if overlaps(event.start, event.end, from, to) {
            vec![Instance {
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

fn response_name(r: ResponseType) -> &'static str {
    match r {
        ResponseType::None => "Unknown",
        ResponseType::Organizer => "Organizer",
        ResponseType::TentativelyAccepted => "Tentative",
        ResponseType::Accepted => "Accept",
        ResponseType::Declined => "Decline",
        ResponseType::NotResponded => "NoResponseReceived",
    }
}

pub(crate) fn free_busy_name(s: ShowAs) -> &'static str {
    match s {
        ShowAs::Free => "Free",
        ShowAs::Tentative => "Tentative",
        ShowAs::Busy => "Busy",
        ShowAs::Oof => "OOF",
        ShowAs::WorkingElsewhere => "WorkingElsewhere",
        ShowAs::Unknown => "NoData",
    }
}

fn attendees_xml(op: &Op<'_>, x: &mut Xml, tag: &str, list: &[&Attendee]) {
    if list.is_empty() {
        return;
    }
    x.open(tag, &[]);
    for a in list {
        x.open("t:Attendee", &[]);
        mailbox_xml(
            x,
            "t:Mailbox",
            &a.address,
            op.dir.recipient(&a.address.address).is_some(),
        );
        x.leaf("t:ResponseType", response_name(a.response));
        if let Some(t) = a.time {
            x.leaf("t:LastResponseTime", &fmt_time(t));
        }
        x.close("t:Attendee");
    }
    x.close(tag);
}

/// `t:CalendarItem` for the event, or for its occurrence starting (originally) at
/// `occurrence`.
pub(crate) fn event_xml(
    op: &Op<'_>,
    mb: &Mailbox,
    e: &Event,
    occurrence: Option<OffsetDateTime>,
    shape: &Shape,
) -> String {
    let s = shape;
    let exception = occurrence.and_then(|o| e.exceptions.get(&o.unix_timestamp()));
    let (start, end) = match (occurrence, exception) {
        (_, Some(x)) => (x.start, x.end),
        (Some(o), None) => (o, o.checked_add(e.duration()).unwrap_or(o)),
        (None, None) => (e.start, e.end),
    };
    let id = match occurrence {
        Some(o) => Id::new(Kind::Occurrence, &mb.address, e.seq).with_sub(o.unix_timestamp()),
        None => Id::new(Kind::Event, &mb.address, e.seq),
    };
    let kind = match (occurrence, exception, e.recurrence.is_some()) {
        (Some(_), Some(_), _) => "Exception",
        (Some(_), None, _) => "Occurrence",
        (None, _, true) => "RecurringMaster",
        (None, _, false) => "Single",
    };
    let subject = exception
        .and_then(|x| x.subject.clone())
        .unwrap_or_else(|| e.subject.clone());
    let mut x = Xml::new();
    x.open("t:CalendarItem", &[]);
    x.raw(&soap::id_element(
        "ItemId",
        &id.encode(),
        &change_key(Kind::Event, e.version),
    ));
    if s.has("item:ParentFolderId", true) {
        x.raw(&folders::folder_id_xml(
            "ParentFolderId",
            mb,
            mb.calendar_seq,
        ));
    }
    if s.has("item:ItemClass", true) {
        x.leaf("t:ItemClass", "IPM.Appointment");
    }
    if s.has("item:Subject", true) {
        x.leaf("t:Subject", &subject);
    }
    if s.has("item:Sensitivity", true) {
        x.leaf(
            "t:Sensitivity",
            if e.is_private { "Private" } else { "Normal" },
        );
    }
    if s.has("item:Body", true) {
        let body = exception.and_then(|x| x.body.as_ref()).unwrap_or(&e.body);
        body_xml(&mut x, body, s.body);
    }
    if s.has("item:Categories", true) {
        categories_xml(&mut x, &e.categories);
    }
    if s.has("item:Importance", true) {
        x.leaf("t:Importance", importance_name(e.importance));
    }
    if s.has("item:DateTimeCreated", true) {
        x.leaf("t:DateTimeCreated", &fmt_time(e.created));
    }
    if s.has("item:HasAttachments", true) {
        x.leaf("t:HasAttachments", "false");
    }
    if s.has("item:LastModifiedTime", false) {
        x.leaf("t:LastModifiedTime", &fmt_time(e.modified));
    }
    if s.has("calendar:UID", true) {
        x.leaf("t:UID", &e.ical_uid);
    }
    if s.has("calendar:Start", true) {
        x.leaf("t:Start", &fmt_time(start));
    }
    if s.has("calendar:End", true) {
        x.leaf("t:End", &fmt_time(end));
    }
    if let Some(o) = occurrence
        && s.has("calendar:OriginalStart", false)
    {
        x.leaf("t:OriginalStart", &fmt_time(o));
    }
    if s.has("calendar:IsAllDayEvent", true) {
        x.leaf("t:IsAllDayEvent", bool_text(e.is_all_day));
    }
    if s.has("calendar:LegacyFreeBusyStatus", true) {
        let show = exception.and_then(|x| x.show_as).unwrap_or(e.show_as);
        x.leaf("t:LegacyFreeBusyStatus", free_busy_name(show));
    }
    if s.has("calendar:Location", true) {
        let location = exception
            .and_then(|x| x.location.clone())
            .unwrap_or_else(|| e.location.clone());
        x.leaf("t:Location", &location);
    }
    if s.has("calendar:IsMeeting", true) {
        x.leaf("t:IsMeeting", bool_text(!e.attendees.is_empty()));
    }
    if s.has("calendar:IsCancelled", true) {
        x.leaf("t:IsCancelled", bool_text(e.is_cancelled));
    }
    if s.has("calendar:IsRecurring", true) {
        x.leaf("t:IsRecurring", bool_text(occurrence.is_some()));
    }
    if s.has("calendar:CalendarItemType", true) {
        x.leaf("t:CalendarItemType", kind);
    }
    if s.has("calendar:MyResponseType", true) {
        x.leaf("t:MyResponseType", response_name(e.response));
    }
    if s.has("calendar:Organizer", true) {
        x.open("t:Organizer", &[]);
        mailbox_xml(
            &mut x,
            "t:Mailbox",
            &e.organizer,
            op.dir.recipient(&e.organizer.address).is_some(),
        );
        x.close("t:Organizer");
    }
    let of = |k: AttendeeType| {
        e.attendees
            .iter()
            .filter(|a| a.kind == k)
            .collect::<Vec<_>>()
    };
    if s.has("calendar:RequiredAttendees", true) {
        attendees_xml(
            op,
            &mut x,
            "t:RequiredAttendees",
            &of(AttendeeType::Required),
        );
    }
    if s.has("calendar:OptionalAttendees", true) {
        attendees_xml(
            op,
            &mut x,
            "t:OptionalAttendees",
            &of(AttendeeType::Optional),
        );
    }
    if s.has("calendar:Resources", false) {
        attendees_xml(op, &mut x, "t:Resources", &of(AttendeeType::Resource));
    }
    if s.has("calendar:Duration", true) {
        x.leaf(
            "t:Duration",
            &format!("PT{}M", (end - start).whole_minutes().max(0)),
        );
    }
    if s.has("calendar:TimeZone", true) {
        x.leaf("t:TimeZone", e.zone().windows_name());
    }
    if occurrence.is_none()
        && let Some(r) = &e.recurrence
    {
        if s.has("calendar:Recurrence", false) {
            x.raw(&super::recurrence::recurrence_xml(r));
        }
        if s.has("calendar:ModifiedOccurrences", false) && !e.exceptions.is_empty() {
            x.open("t:ModifiedOccurrences", &[]);
            for (original, ex) in &e.exceptions {
                x.open("t:Occurrence", &[]);
                x.raw(&soap::id_element(
                    "ItemId",
                    &Id::new(Kind::Occurrence, &mb.address, e.seq)
                        .with_sub(*original)
                        .encode(),
                    &change_key(Kind::Event, e.version),
                ));
                x.leaf("t:Start", &fmt_time(ex.start));
                x.leaf("t:End", &fmt_time(ex.end));
                if let Ok(o) = OffsetDateTime::from_unix_timestamp(*original) {
                    x.leaf("t:OriginalStart", &fmt_time(o));
                }
                x.close("t:Occurrence");
            }
            x.close("t:ModifiedOccurrences");
        }
        if s.has("calendar:DeletedOccurrences", false) && !e.cancelled.is_empty() {
            x.open("t:DeletedOccurrences", &[]);
            for start in &e.cancelled {
                if let Ok(t) = OffsetDateTime::from_unix_timestamp(*start) {
                    x.open("t:DeletedOccurrence", &[]);
                    x.leaf("t:Start", &fmt_time(t));
                    x.close("t:DeletedOccurrence");
                }
            }
            x.close("t:DeletedOccurrences");
        }
    }
    // The zone's definition as Exchange names it (its periods and transitions are left out:
    // the schema makes them optional).
    if s.has("calendar:StartTimeZone", false) {
        let name = e.zone().windows_name();
        x.empty("t:StartTimeZone", &[("Id", name), ("Name", name)]);
    }
    if s.has("calendar:IsOnlineMeeting", false) {
        x.leaf("t:IsOnlineMeeting", bool_text(e.online_meeting.is_some()));
    }
    x.close("t:CalendarItem");
    x.finish()
}

/// `FindItem` with a `CalendarView`: every instance overlapping the range.
pub(crate) fn calendar_view(
    op: &Op<'_>,
    store: &mut Mailboxes,
    body: &Element,
) -> EwsResult<String> {
    let shape = Shape::parse(body.child("ItemShape"), true);
    let view = body
        .child("CalendarView")
        .ok_or_else(|| EwsError::schema("'CalendarView' is missing"))?;
    let bad = || EwsError::schema("CalendarView needs StartDate and EndDate as xs:dateTime");
    let from = view
        .attr("StartDate")
        .and_then(parse_time)
        .ok_or_else(bad)?;
    let to = view.attr("EndDate").and_then(parse_time).ok_or_else(bad)?;
    let max = view
        .attr("MaxEntriesReturned")
        .and_then(|v| v.parse::<usize>().ok());
    let parents = body
        .child("ParentFolderIds")
        .ok_or_else(|| EwsError::schema("'ParentFolderIds' is missing"))?;
    let mut results = Vec::new();
    for parent in &parents.children {
        results.push((|| {
            if to < from {
                return Err(EwsError::new(
                    "ErrorCalendarEndDateIsEarlierThanStartDate",
                    "The EndDate value must be later than the StartDate value.",
                ));
            }
            if to - from > time::Duration::days(2 * 365 + 1) {
                return Err(EwsError::new(
                    "ErrorCalendarViewRangeTooBig",
                    "The time range of the calendar view is too large (more than two years).",
                ));
            }
            let (address, seq) = folders::resolve(op, store, parent)?;
            let mb = store
                .mailbox(&address)
                .ok_or_else(EwsError::folder_not_found)?;
            if seq != mb.calendar_seq {
                return Err(EwsError::new(
                    "ErrorInvalidOperation",
                    "A CalendarView can only be used with a calendar folder.",
                ));
            }
            let mut all: Vec<(OffsetDateTime, String)> = Vec::new();
            for e in mb.events.values() {
                for i in instances(e, from, to) {
                    all.push((i.start, event_xml(op, mb, e, i.original, &shape)));
                }
            }
            all.sort_by_key(|(start, _)| *start);
            let total = all.len();
            let page: Vec<String> = all
                .into_iter()
                .take(max.unwrap_or(usize::MAX))
                .map(|(_, xml)| xml)
                .collect();
            let mut x = Xml::new();
            x.open(
                "m:RootFolder",
                &[
                    ("TotalItemsInView", &total.to_string()),
                    ("IncludesLastItemInRange", bool_text(page.len() >= total)),
                ],
            );
            x.open("t:Items", &[]);
            for item in &page {
                x.raw(item);
            }
            x.close("t:Items");
            x.close("m:RootFolder");
            Ok(x.finish())
        })());
    }
    Ok(soap::response(
        "FindItem",
        "FindItemResponseMessage",
        &results,
    ))
}

/// `FindItem` on the calendar without a view: single events and series masters, restricted.
pub(crate) fn find_masters(
    op: &Op<'_>,
    mb: &Mailbox,
    shape: &Shape,
    restriction: Option<&Element>,
    orders: &[(String, bool)],
    offset: usize,
    max: Option<usize>,
) -> EwsResult<String> {
    let mut events: Vec<&Event> = Vec::new();
    for e in mb.events.values() {
        if restriction.map_or(Ok(true), |r| super::restrict::matches(e, r))? {
            events.push(e);
        }
    }
    events.sort_by_key(|e| e.start);
    super::restrict::sort(&mut events, orders)?;
    let total = events.len();
    let page: Vec<String> = events
        .into_iter()
        .skip(offset)
        .take(max.unwrap_or(usize::MAX))
        .map(|e| event_xml(op, mb, e, None, shape))
        .collect();
    Ok(root_folder(total, offset, &page))
}

/// The attendees of a `t:CalendarItem`.
pub(crate) fn parse_attendees(el: &Element) -> Vec<Attendee> {
    let mut out = Vec::new();
    for (tag, kind) in [
        ("RequiredAttendees", AttendeeType::Required),
        ("OptionalAttendees", AttendeeType::Optional),
        ("Resources", AttendeeType::Resource),
    ] {
        if let Some(list) = el.child(tag) {
            for a in list.all("Attendee") {
                let Some(address) = a.text_at(&["Mailbox", "EmailAddress"]) else {
                    continue;
                };
                let name = a.text_at(&["Mailbox", "Name"]).unwrap_or_default();
                out.push(Attendee {
                    address: Address::new(name, address),
                    kind,
                    response: ResponseType::None,
                    time: None,
                });
            }
        }
    }
    out
}

pub(crate) fn parse_body(el: &Element) -> Option<Body> {
    el.child("Body").map(|b| Body {
        kind: if b.attr("BodyType") == Some("HTML") {
            BodyType::Html
        } else {
            BodyType::Text
        },
        content: b.text.clone(),
    })
}

pub(crate) fn parse_show_as(text: &str) -> Option<ShowAs> {
    Some(match text {
        "Free" => ShowAs::Free,
        "Tentative" => ShowAs::Tentative,
        "Busy" => ShowAs::Busy,
        "OOF" => ShowAs::Oof,
        "WorkingElsewhere" => ShowAs::WorkingElsewhere,
        "NoData" => ShowAs::Unknown,
        _ => return None,
    })
}

/// The zone of a `t:StartTimeZone`/`t:EndTimeZone` (`Id` is its Windows name, as Exchange
/// writes it; the mock takes IANA names too); `ErrorTimeZone` for a zone it does not know.
pub(crate) fn zone_id(el: &Element) -> EwsResult<Option<String>> {
    let Some(id) = el.attr("Id") else {
        return Ok(None);
    };
    if crate::mailstore::tz::find(id).is_none() {
        return Err(EwsError::new(
            "ErrorTimeZone",
            format!("The time zone '{id}' is not valid."),
        ));
    }
    Ok(Some(id.to_string()))
}

/// A new event from a `t:CalendarItem` of CreateItem.
pub(crate) fn new_event(op: &Op<'_>, address: &str, el: &Element) -> EwsResult<Event> {
    let start = el
        .text_at(&["Start"])
        .and_then(parse_time)
        .ok_or_else(|| EwsError::schema("a calendar item needs a Start"))?;
    let end = el
        .text_at(&["End"])
        .and_then(parse_time)
        .ok_or_else(|| EwsError::schema("a calendar item needs an End"))?;
    if end < start {
        return Err(EwsError::new(
            "ErrorCalendarEndDateIsEarlierThanStartDate",
            "EndDate is earlier than StartDate",
        ));
    }
    let organizer = Address::new(op.display_name(address), address);
    let attendees = parse_attendees(el);
    if let Some(end_zone) = el.child("EndTimeZone") {
        zone_id(end_zone)?;
    }
    let time_zone = match el.child("StartTimeZone") {
        Some(z) => zone_id(z)?,
        None => None,
    }
    .unwrap_or_else(|| "UTC".into());
    Ok(Event {
        seq: 0,
        version: 0,
        created: op.now,
        modified: op.now,
        ical_uid: String::new(),
        subject: el.text_at(&["Subject"]).unwrap_or_default().to_string(),
        body: parse_body(el).unwrap_or(Body {
            kind: BodyType::Text,
            content: String::new(),
        }),
        start,
        end,
        time_zone,
        is_all_day: el.text_at(&["IsAllDayEvent"]) == Some("true"),
        location: el.text_at(&["Location"]).unwrap_or_default().to_string(),
        organizer,
        is_organizer: true,
        response: ResponseType::Organizer,
        response_time: None,
        show_as: el
            .text_at(&["LegacyFreeBusyStatus"])
            .and_then(parse_show_as)
            .unwrap_or(ShowAs::Busy),
        attendees,
        online_meeting: None,
        recurrence: el
            .child("Recurrence")
            .map(super::recurrence::parse_recurrence)
            .transpose()?,
        exceptions: BTreeMap::new(),
        cancelled: BTreeSet::new(),
        is_cancelled: false,
        is_private: el.text_at(&["Sensitivity"]) == Some("Private"),
        categories: el
            .child("Categories")
            .map(|c| c.all("String").map(|s| s.text.clone()).collect())
            .unwrap_or_default(),
        importance: match el.text_at(&["Importance"]) {
            Some("High") => Importance::High,
            Some("Low") => Importance::Low,
            _ => Importance::Normal,
        },
    })
}

/// Delivers a meeting request and a copy of the event to each attendee the mock has (only
/// those of `only`, lower case, when given).
pub(crate) fn invite(
    store: &mut Mailboxes,
    op: &Op<'_>,
    organizer: &str,
    event: &Event,
    only: Option<&[String]>,
) {
    let mut seen = HashSet::new();
    for attendee in &event.attendees {
        let key = attendee.address.address.trim().to_ascii_lowercase();
        if !seen.insert(key.clone())
            || key == organizer.to_ascii_lowercase()
            || only.is_some_and(|o| !o.contains(&key))
        {
            continue;
        }
        let Some(mb) = store.mailbox_mut(&key) else {
            continue;
        };
        let mut copy = event.clone();
        copy.is_organizer = false;
        copy.response = ResponseType::NotResponded;
        mb.insert_event(copy);
        let Some(inbox) = mb.well_known("inbox") else {
            continue;
        };
        let mut request = Message::blank(op.now, super::create::new_message_id(organizer));
        request.folder = inbox;
        request.is_draft = false;
        request.is_read = false;
        request.sent = Some(op.now);
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
        store.delivered(&address, &imid, &subject);
    }
}

/// Removes the attendees' copies of a deleted meeting and delivers them a cancellation.
pub(crate) fn cancel(store: &mut Mailboxes, op: &Op<'_>, organizer: &str, event: &Event) {
    let mut seen = HashSet::new();
    for attendee in &event.attendees {
        let key = attendee.address.address.trim().to_ascii_lowercase();
        if !seen.insert(key.clone()) || key == organizer.to_ascii_lowercase() {
            continue;
        }
        let Some(mb) = store.mailbox_mut(&key) else {
            continue;
        };
        let copies: Vec<u64> = mb
            .events
            .values()
            .filter(|e| e.ical_uid == event.ical_uid)
            .map(|e| e.seq)
            .collect();
        for seq in copies {
            mb.events.remove(&seq);
            mb.touch_event(seq, op.now);
        }
        let Some(inbox) = mb.well_known("inbox") else {
            continue;
        };
        let mut notice = Message::blank(op.now, super::create::new_message_id(organizer));
        notice.folder = inbox;
        notice.is_draft = false;
        notice.is_read = false;
        notice.sent = Some(op.now);
        notice.subject = format!("Canceled: {}", event.subject);
        notice.from = Some(event.organizer.clone());
        notice.sender = Some(event.organizer.clone());
        notice.to = vec![attendee.address.clone()];
        let (imid, subject) = (notice.internet_message_id.clone(), notice.subject.clone());
        let address = mb.address.clone();
        mb.insert_message(notice);
        store.delivered(&address, &imid, &subject);
    }
}
