//! Calendar: `FindItem` with a `CalendarView` (occurrences expanded), `GetItem` for whole
//! events, `CreateItem` and `UpdateItem` of calendar items (`SendMeetingInvitations`), and
//! EWS's recurrence patterns mapped both ways onto the neutral [`Recurrence`]. Instants go out
//! in UTC; the event's zone goes out by its Windows name (`StartTimeZone`).

use time::OffsetDateTime;

use super::WireError;
use super::envelope::{DistinguishedFolder, FolderSpec, ItemId, RequestContext, ews_request, utc};
use super::items::{
    ConflictResolution, Shape, read_item_id, read_mailbox, read_single, text_bool, write_item_ids,
    write_mailbox, write_target_folder,
};
use super::mail::write_body;
use super::recurrence::{check_recurrence, read_recurrence, write_recurrence};
use super::response::{Decoded, decode, parse_date_time};
use super::xml::{Ns, Reader, Writer};
use crate::mailbox::{
    Attendee, AttendeeKind, Event, EventDraft, EventKind, EventTime, MailboxError, Recipient,
    Recurrence, Response, Sensitivity, ShowAs, TimeZone,
};

const LIST_FIELDS: [&str; 10] = [
    "item:Subject",
    "item:Sensitivity",
    "calendar:Start",
    "calendar:End",
    "calendar:IsAllDayEvent",
    "calendar:LegacyFreeBusyStatus",
    "calendar:Location",
    "calendar:IsCancelled",
    "calendar:CalendarItemType",
    "calendar:Organizer",
];

const DETAIL_FIELDS: [&str; 5] = [
    "calendar:RequiredAttendees",
    "calendar:OptionalAttendees",
    "calendar:Resources",
    "calendar:Recurrence",
    "calendar:StartTimeZone",
];

fn shape(w: &mut Writer, ctx: &RequestContext, detail: bool) {
    let mut fields: Vec<&'static str> = LIST_FIELDS.to_vec();
    if ctx.version.has_2013_properties() {
        fields.extend_from_slice(&["item:Preview", "calendar:JoinOnlineMeetingUrl"]);
    }
    if detail {
        fields.extend_from_slice(&DETAIL_FIELDS);
    }
    Shape {
        base: "IdOnly",
        include_mime: false,
        body_type: None,
        fields: &fields,
        extended: &[],
    }
    .write(w, "m:ItemShape");
}

/// `FindItem` with a `CalendarView`: the events (occurrences expanded) overlapping a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindEvents {
    pub folder: FolderSpec,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    /// At most this many (EWS answers `ErrorCalendarViewRangeTooBig` past its limit).
    pub max: Option<u32>,
}

impl FindEvents {
    pub fn new(start: OffsetDateTime, end: OffsetDateTime) -> Self {
        Self {
            folder: DistinguishedFolder::Calendar.into(),
            start,
            end,
            max: None,
        }
    }

    fn write(&self, w: &mut Writer, ctx: &RequestContext) {
        w.open("m:FindItem", &[("Traversal", "Shallow")]);
        shape(w, ctx, false);
        let (start, end) = (utc(self.start), utc(self.end));
        match self.max {
            Some(max) => {
                let max = max.clamp(1, i32::MAX as u32).to_string();
                w.empty(
                    "m:CalendarView",
                    &[
                        ("MaxEntriesReturned", &max),
                        ("StartDate", &start),
                        ("EndDate", &end),
                    ],
                );
            }
            None => w.empty(
                "m:CalendarView",
                &[("StartDate", &start), ("EndDate", &end)],
            ),
        }
        w.open("m:ParentFolderIds", &[]);
        self.folder.write(w, ctx);
        w.close("m:ParentFolderIds");
        w.close("m:FindItem");
    }
}

/// `GetItem` for whole events: attendees, recurrence and zone too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetEvents {
    pub ids: Vec<ItemId>,
}

impl GetEvents {
    fn write(&self, w: &mut Writer, ctx: &RequestContext) {
        w.open("m:GetItem", &[]);
        shape(w, ctx, true);
        write_item_ids(w, "m:ItemIds", &self.ids);
        w.close("m:GetItem");
    }
}

/// `CreateItem` of a calendar item; invitations go to attendees when `send_invitations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateEvent {
    draft: EventDraft,
    pub folder: FolderSpec,
    pub send_invitations: bool,
}

impl CreateEvent {
    /// An event needs a start and an end; its recurrence must be one EWS can carry.
    pub fn new(draft: EventDraft, send_invitations: bool) -> Result<Self, MailboxError> {
        let (Some(start), Some(end)) = (draft.start, draft.end) else {
            return Err(MailboxError::Invalid(
                "an event needs a start and an end".into(),
            ));
        };
        if end.instant() < start.instant() {
            return Err(MailboxError::Invalid(
                "the event ends before it starts".into(),
            ));
        }
        if let Some(r) = &draft.recurrence {
            check_recurrence(r)?;
        }
        Ok(Self {
            draft,
            folder: DistinguishedFolder::Calendar.into(),
            send_invitations,
        })
    }

    pub fn draft(&self) -> &EventDraft {
        &self.draft
    }

    fn write(&self, w: &mut Writer, ctx: &RequestContext) {
        let d = &self.draft;
        let send = if self.send_invitations {
            "SendToAllAndSaveCopy"
        } else {
            "SendToNone"
        };
        w.open("m:CreateItem", &[("SendMeetingInvitations", send)]);
        write_target_folder(w, "m:SavedItemFolderId", &self.folder, ctx);
        w.open("m:Items", &[]);
        w.open("t:CalendarItem", &[]);
        w.leaf("t:Subject", d.subject.as_deref().unwrap_or_default());
        if let Some(body) = &d.body {
            write_body(w, "t:Body", body);
        }
        if let Some(start) = &d.start {
            w.leaf("t:Start", &utc(start.instant()));
        }
        if let Some(end) = &d.end {
            w.leaf("t:End", &utc(end.instant()));
        }
        if let Some(all_day) = d.is_all_day {
            w.leaf("t:IsAllDayEvent", if all_day { "true" } else { "false" });
        }
        if let Some(location) = d.location.as_deref().filter(|l| !l.is_empty()) {
            w.leaf("t:Location", location);
        }
        if let Some(attendees) = &d.attendees {
            for (name, kind) in ATTENDEE_LISTS {
                write_attendees(w, name, attendees, kind);
            }
        }
        if let Some(r) = &d.recurrence {
            write_recurrence(w, r);
        }
        if let Some(zone) = d.start.and_then(|s| s.time_zone.windows()) {
            w.empty("t:StartTimeZone", &[("Id", zone)]);
        }
        if let Some(zone) = d.end.and_then(|e| e.time_zone.windows()) {
            w.empty("t:EndTimeZone", &[("Id", zone)]);
        }
        w.close("t:CalendarItem");
        w.close("m:Items");
        w.close("m:CreateItem");
    }
}

const ATTENDEE_LISTS: [(&str, AttendeeKind); 3] = [
    ("t:RequiredAttendees", AttendeeKind::Required),
    ("t:OptionalAttendees", AttendeeKind::Optional),
    ("t:Resources", AttendeeKind::Resource),
];

fn write_attendees(
    w: &mut Writer,
    name: &'static str,
    all: &[(Recipient, AttendeeKind)],
    kind: AttendeeKind,
) {
    let mut these = all.iter().filter(|(_, k)| *k == kind).peekable();
    if these.peek().is_none() {
        return;
    }
    w.open(name, &[]);
    for (who, _) in these {
        w.open("t:Attendee", &[]);
        write_mailbox(w, who);
        w.close("t:Attendee");
    }
    w.close(name);
}

/// `UpdateItem` of a calendar item: each field the change sets (`None` fields are left
/// alone; an empty location is removed). Attendees hear of it when `send_updates`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateEvent {
    pub id: ItemId,
    change: EventDraft,
    pub send_updates: bool,
    pub conflict: ConflictResolution,
}

impl UpdateEvent {
    pub fn new(id: ItemId, change: EventDraft, send_updates: bool) -> Result<Self, MailboxError> {
        if let Some(r) = &change.recurrence {
            check_recurrence(r)?;
        }
        Ok(Self {
            id,
            change,
            send_updates,
            conflict: ConflictResolution::AutoResolve,
        })
    }

    fn write(&self, w: &mut Writer, _ctx: &RequestContext) {
        let d = &self.change;
        let send = if self.send_updates {
            "SendToAllAndSaveCopy"
        } else {
            "SendToNone"
        };
        w.open(
            "m:UpdateItem",
            &[
                ("ConflictResolution", self.conflict.as_str()),
                ("SendMeetingInvitationsOrCancellations", send),
            ],
        );
        w.open("m:ItemChanges", &[]);
        w.open("t:ItemChange", &[]);
        self.id.write(w);
        w.open("t:Updates", &[]);
        let set = |w: &mut Writer, field: &'static str, value: &dyn Fn(&mut Writer)| {
            w.open("t:SetItemField", &[]);
            w.empty("t:FieldURI", &[("FieldURI", field)]);
            w.open("t:CalendarItem", &[]);
            value(w);
            w.close("t:CalendarItem");
            w.close("t:SetItemField");
        };
        let delete = |w: &mut Writer, field: &'static str| {
            w.open("t:DeleteItemField", &[]);
            w.empty("t:FieldURI", &[("FieldURI", field)]);
            w.close("t:DeleteItemField");
        };
        if let Some(subject) = &d.subject {
            set(w, "item:Subject", &|w| w.leaf("t:Subject", subject));
        }
        if let Some(body) = &d.body {
            set(w, "item:Body", &|w| write_body(w, "t:Body", body));
        }
        if let Some(start) = &d.start {
            set(w, "calendar:Start", &|w| {
                w.leaf("t:Start", &utc(start.instant()))
            });
        }
        if let Some(end) = &d.end {
            set(w, "calendar:End", &|w| w.leaf("t:End", &utc(end.instant())));
        }
        if let Some(all_day) = d.is_all_day {
            set(w, "calendar:IsAllDayEvent", &|w| {
                w.leaf("t:IsAllDayEvent", if all_day { "true" } else { "false" });
            });
        }
        match d.location.as_deref() {
            Some("") => delete(w, "calendar:Location"),
            Some(location) => set(w, "calendar:Location", &|w| w.leaf("t:Location", location)),
            None => {}
        }
        if let Some(attendees) = &d.attendees {
            for ((name, kind), field) in ATTENDEE_LISTS.into_iter().zip([
                "calendar:RequiredAttendees",
                "calendar:OptionalAttendees",
                "calendar:Resources",
            ]) {
                if attendees.iter().any(|(_, k)| *k == kind) {
                    set(w, field, &|w| write_attendees(w, name, attendees, kind));
                } else {
                    delete(w, field);
                }
            }
        }
        if let Some(r) = &d.recurrence {
            set(w, "calendar:Recurrence", &|w| write_recurrence(w, r));
        }
        if let Some(zone) = d.start.and_then(|s| s.time_zone.windows()) {
            set(w, "calendar:StartTimeZone", &|w| {
                w.empty("t:StartTimeZone", &[("Id", zone)])
            });
        }
        if let Some(zone) = d.end.and_then(|e| e.time_zone.windows()) {
            set(w, "calendar:EndTimeZone", &|w| {
                w.empty("t:EndTimeZone", &[("Id", zone)])
            });
        }
        w.close("t:Updates");
        w.close("t:ItemChange");
        w.close("m:ItemChanges");
        w.close("m:UpdateItem");
    }
}

ews_request!(
    FindEvents => "FindItem",
    GetEvents => "GetItem",
    CreateEvent => "CreateItem",
    UpdateEvent => "UpdateItem",
);

/// An attendee list (the reader is inside it).
fn read_attendees(
    r: &mut Reader<'_>,
    kind: AttendeeKind,
    out: &mut Vec<Attendee>,
) -> Result<(), WireError> {
    while let Some(a) = r.child()? {
        if !a.is_t("Attendee") {
            r.skip()?;
            continue;
        }
        let mut who = None;
        let mut response = Response::None;
        while let Some(f) = r.child()? {
            if f.is_t("Mailbox") {
                who = Some(read_mailbox(r)?);
            } else if f.is_t("ResponseType") {
                response = match r.text()?.trim() {
                    "Unknown" => Response::None,
                    "Organizer" => Response::Organizer,
                    "Tentative" => Response::TentativelyAccepted,
                    "Accept" => Response::Accepted,
                    "Decline" => Response::Declined,
                    "NoResponseReceived" => Response::NotResponded,
                    _ => return Err(WireError::malformed("unknown ResponseType")),
                };
            } else {
                r.skip()?;
            }
        }
        if let Some(who) = who {
            out.push(Attendee {
                who,
                kind,
                response,
            });
        }
    }
    Ok(())
}

pub(super) fn show_as(s: &str) -> Result<ShowAs, WireError> {
    Ok(match s.trim() {
        "Free" => ShowAs::Free,
        "Tentative" => ShowAs::Tentative,
        "Busy" => ShowAs::Busy,
        "OOF" => ShowAs::OutOfOffice,
        "WorkingElsewhere" => ShowAs::WorkingElsewhere,
        "NoData" => ShowAs::Unknown,
        _ => return Err(WireError::malformed("unknown free/busy status")),
    })
}

/// A `t:CalendarItem` (the reader is inside it). Times are shown in `zone`, or else in the
/// event's own zone (`StartTimeZone`), or else in UTC.
pub(super) fn read_event(r: &mut Reader<'_>, zone: Option<&TimeZone>) -> Result<Event, WireError> {
    let mut id = None;
    let mut subject = String::new();
    let (mut start, mut end) = (None, None);
    let mut is_all_day = false;
    let mut location = None;
    let mut organizer = None;
    let mut attendees = Vec::new();
    let mut recurrence: Option<Recurrence> = None;
    let mut online_meeting_url = None;
    let mut kind = EventKind::Single;
    let mut is_cancelled = false;
    let mut show = None;
    let mut sensitivity = Sensitivity::Normal;
    let mut preview = String::new();
    let mut own_zone = None;
    while let Some(e) = r.child()? {
        if e.ns != Ns::Types {
            r.skip()?;
            continue;
        }
        match e.local() {
            "ItemId" => {
                id = Some(read_item_id(&e)?.id);
                r.skip()?;
            }
            "Subject" => subject = r.text()?.into_owned(),
            "Sensitivity" => {
                sensitivity = match r.text()?.trim() {
                    "Normal" => Sensitivity::Normal,
                    "Personal" => Sensitivity::Personal,
                    "Private" => Sensitivity::Private,
                    "Confidential" => Sensitivity::Confidential,
                    _ => return Err(WireError::malformed("unknown Sensitivity")),
                }
            }
            "Preview" => preview = r.text()?.into_owned(),
            "Start" => start = Some(parse_date_time(&r.text()?, "Start")?),
            "End" => end = Some(parse_date_time(&r.text()?, "End")?),
            "IsAllDayEvent" => is_all_day = text_bool(r, "IsAllDayEvent")?,
            "LegacyFreeBusyStatus" => show = Some(show_as(&r.text()?)?),
            "Location" => location = Some(r.text()?.into_owned()).filter(|l| !l.is_empty()),
            "IsCancelled" => is_cancelled = text_bool(r, "IsCancelled")?,
            "CalendarItemType" => {
                kind = match r.text()?.trim() {
                    "Single" => EventKind::Single,
                    "Occurrence" => EventKind::Occurrence,
                    "Exception" => EventKind::Exception,
                    "RecurringMaster" => EventKind::SeriesMaster,
                    _ => return Err(WireError::malformed("unknown CalendarItemType")),
                }
            }
            "Organizer" => organizer = read_single(r)?,
            "RequiredAttendees" => read_attendees(r, AttendeeKind::Required, &mut attendees)?,
            "OptionalAttendees" => read_attendees(r, AttendeeKind::Optional, &mut attendees)?,
            "Resources" => read_attendees(r, AttendeeKind::Resource, &mut attendees)?,
            "Recurrence" => {
                // The zone is known only once StartTimeZone is read; set below.
                recurrence = Some(read_recurrence(r, None)?);
            }
            "StartTimeZone" => {
                own_zone = e.attr("Id")?.and_then(|id| TimeZone::parse(&id).ok());
                r.skip()?;
            }
            "StartTimeZoneId" => own_zone = TimeZone::parse(&r.text()?).ok().or(own_zone),
            "JoinOnlineMeetingUrl" => {
                online_meeting_url = Some(r.text()?.into_owned()).filter(|u| !u.is_empty())
            }
            _ => r.skip()?,
        }
    }
    let id = id.ok_or_else(|| WireError::malformed("a calendar item without ItemId"))?;
    let (Some(start), Some(end)) = (start, end) else {
        return Err(WireError::malformed(
            "a calendar item without Start and End",
        ));
    };
    let shown = zone.copied().or(own_zone).unwrap_or(TimeZone::UTC);
    if let Some(r) = recurrence.as_mut() {
        r.time_zone = own_zone;
    }
    Ok(Event {
        id,
        subject,
        start: EventTime::from_instant(start, shown),
        end: EventTime::from_instant(end, shown),
        is_all_day,
        location,
        organizer,
        attendees,
        recurrence,
        online_meeting_url,
        kind,
        series_master_id: None,
        is_cancelled,
        show_as: show,
        sensitivity,
        preview,
    })
}

/// The answer to [`FindEvents`].
pub fn decode_find_events(
    xml: &[u8],
    zone: Option<&TimeZone>,
) -> Result<Decoded<super::FoundItems<Event>>, WireError> {
    super::items::decode_found(xml, "FindItem", "Items", |r, e| {
        if e.is_t("CalendarItem") {
            read_event(r, zone).map(Some)
        } else {
            r.skip().map(|()| None)
        }
    })
}

/// The answer to [`GetEvents`]: one message per ID.
pub fn decode_get_events(
    xml: &[u8],
    zone: Option<&TimeZone>,
) -> Result<Decoded<Vec<Event>>, WireError> {
    decode(xml, "GetItem", |r, e, out: &mut Vec<Event>| {
        if !e.is_m("Items") {
            return Ok(false);
        }
        while let Some(item) = r.child()? {
            if item.is_t("CalendarItem") {
                out.push(read_event(r, zone)?);
            } else {
                r.skip()?;
            }
        }
        Ok(true)
    })
}
