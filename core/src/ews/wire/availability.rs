//! Free/busy: `GetUserAvailability` with `FreeBusyViewOptions` for the neutral free/busy query
//! (several mailboxes, a range, an interval), read into [`FreeBusy`] per mailbox.

use time::OffsetDateTime;

use super::WireError;
use super::calendar::show_as;
use super::envelope::{RequestContext, ews_request};
use super::errors::{EwsError, ResponseClass};
use super::response::{open_body, parse_date_time};
use super::xml::{Ns, Reader, Writer};
use crate::mailbox::{BusySlot, EventTime, FreeBusy, ShowAs, TimeZone};

/// `GetUserAvailability` for free/busy (`DetailedMerged`: the merged view and the busy
/// slots with their subjects where the caller may see them). Times go out and come back in
/// UTC (the request's `t:TimeZone` is UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetUserAvailability {
    pub mailboxes: Vec<String>,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    /// Minutes per merged free/busy digit (EWS takes 5 to 1,440).
    pub interval_minutes: u32,
}

/// A UTC instant written as a local time in the request's UTC zone.
fn local_utc(t: OffsetDateTime) -> String {
    let s = super::envelope::utc(t);
    s.trim_end_matches('Z').to_owned()
}

impl GetUserAvailability {
    fn write(&self, w: &mut Writer, _ctx: &RequestContext) {
        w.open("m:GetUserAvailabilityRequest", &[]);
        // UTC, with no daylight saving time (both transitions the same).
        w.open("t:TimeZone", &[]);
        w.leaf("t:Bias", "0");
        for name in ["t:StandardTime", "t:DaylightTime"] {
            w.open(name, &[]);
            w.leaf("t:Bias", "0");
            w.leaf("t:Time", "00:00:00");
            w.leaf("t:DayOrder", "1");
            w.leaf("t:Month", "1");
            w.leaf("t:DayOfWeek", "Sunday");
            w.close(name);
        }
        w.close("t:TimeZone");
        w.open("m:MailboxDataArray", &[]);
        for m in &self.mailboxes {
            w.open("t:MailboxData", &[]);
            w.open("t:Email", &[]);
            w.leaf("t:Address", m);
            w.close("t:Email");
            w.leaf("t:AttendeeType", "Required");
            w.leaf("t:ExcludeConflicts", "false");
            w.close("t:MailboxData");
        }
        w.close("m:MailboxDataArray");
        w.open("t:FreeBusyViewOptions", &[]);
        w.open("t:TimeWindow", &[]);
        w.leaf("t:StartTime", &local_utc(self.start));
        w.leaf("t:EndTime", &local_utc(self.end));
        w.close("t:TimeWindow");
        w.leaf(
            "t:MergedFreeBusyIntervalInMinutes",
            &self.interval_minutes.clamp(5, 1440).to_string(),
        );
        w.leaf("t:RequestedView", "DetailedMerged");
        w.close("t:FreeBusyViewOptions");
        w.close("m:GetUserAvailabilityRequest");
    }
}

ews_request!(GetUserAvailability => "GetUserAvailability");

fn merged(s: &str) -> Result<Vec<ShowAs>, WireError> {
    s.trim()
        .chars()
        .map(|c| {
            Ok(match c {
                '0' => ShowAs::Free,
                '1' => ShowAs::Tentative,
                '2' => ShowAs::Busy,
                '3' => ShowAs::OutOfOffice,
                '4' => ShowAs::WorkingElsewhere,
                '5' => ShowAs::Unknown,
                _ => return Err(WireError::malformed("unknown MergedFreeBusy digit")),
            })
        })
        .collect()
}

/// The answer to [`GetUserAvailability`]: one [`FreeBusy`] per mailbox asked for, in order,
/// with `error` set where the server could not answer for one.
pub fn decode_get_user_availability(
    xml: &[u8],
    request: &GetUserAvailability,
) -> Result<Vec<FreeBusy>, WireError> {
    let xml =
        std::str::from_utf8(xml).map_err(|_| WireError::malformed("the answer is not UTF-8"))?;
    let (mut r, _version) = open_body(xml, "GetUserAvailability")?;
    let mut out = Vec::new();
    let mut seen = false;
    while let Some(e) = r.child()? {
        if !e.is_m("FreeBusyResponseArray") {
            r.skip()?;
            continue;
        }
        seen = true;
        while let Some(fb) = r.child()? {
            if !fb.is_m("FreeBusyResponse") {
                r.skip()?;
                continue;
            }
            let mailbox = request
                .mailboxes
                .get(out.len())
                .cloned()
                .unwrap_or_default();
            out.push(read_response(
                &mut r,
                mailbox,
                request.interval_minutes.clamp(5, 1440),
            )?);
        }
    }
    if !seen {
        return Err(WireError::malformed(
            "the answer has no m:FreeBusyResponseArray",
        ));
    }
    if out.len() != request.mailboxes.len() {
        return Err(WireError::malformed(
            "the answer holds a different number of mailboxes than were asked for",
        ));
    }
    Ok(out)
}

fn read_response(
    r: &mut Reader<'_>,
    mailbox: String,
    interval_minutes: u32,
) -> Result<FreeBusy, WireError> {
    let mut fb = FreeBusy {
        mailbox,
        view: Vec::new(),
        interval_minutes,
        slots: Vec::new(),
        error: None,
    };
    while let Some(e) = r.child()? {
        if e.is_m("ResponseMessage") {
            let mut ignore = |_: &mut Reader<'_>, _: &super::xml::Elem<'_>, _: &mut ()| Ok(false);
            let m = super::response::message(r, &e, &mut ignore)?;
            if m.class == ResponseClass::Error {
                let err = EwsError {
                    code: m.code,
                    message: m.message_text.unwrap_or_default(),
                    back_off: m.back_off,
                    http_status: None,
                };
                fb.error = Some(format!("{err} ({})", err.explanation()));
            }
        } else if e.is_m("FreeBusyView") {
            while let Some(v) = r.child()? {
                if v.is_t("MergedFreeBusy") {
                    fb.view = merged(&r.text()?)?;
                } else if v.is_t("CalendarEventArray") {
                    while let Some(c) = r.child()? {
                        if c.is_t("CalendarEvent") {
                            fb.slots.push(read_slot(r)?);
                        } else {
                            r.skip()?;
                        }
                    }
                } else {
                    r.skip()?;
                }
            }
        } else {
            r.skip()?;
        }
    }
    Ok(fb)
}

fn read_slot(r: &mut Reader<'_>) -> Result<BusySlot, WireError> {
    let (mut start, mut end, mut status, mut subject) = (None, None, ShowAs::Busy, None);
    while let Some(e) = r.child()? {
        match (e.ns, e.local()) {
            (Ns::Types, "StartTime") => start = Some(parse_date_time(&r.text()?, "StartTime")?),
            (Ns::Types, "EndTime") => end = Some(parse_date_time(&r.text()?, "EndTime")?),
            (Ns::Types, "BusyType") => status = show_as(&r.text()?)?,
            (Ns::Types, "CalendarEventDetails") => {
                while let Some(d) = r.child()? {
                    if d.is_t("Subject") {
                        subject = Some(r.text()?.into_owned());
                    } else {
                        r.skip()?;
                    }
                }
            }
            _ => r.skip()?,
        }
    }
    let (Some(start), Some(end)) = (start, end) else {
        return Err(WireError::malformed(
            "a calendar event without StartTime and EndTime",
        ));
    };
    Ok(BusySlot {
        status,
        start: EventTime::from_instant(start, TimeZone::UTC),
        end: EventTime::from_instant(end, TimeZone::UTC),
        subject,
    })
}
