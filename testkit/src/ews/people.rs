//! ResolveNames (the directory and the mailbox's contacts) and GetUserAvailability (free/busy
//! from the mail store's calendars, series expanded).

use time::OffsetDateTime;
use time::macros::format_description;

use super::calendar::{free_busy_name, instances};
use super::contacts;
use super::dispatch::Op;
use super::items::{Shape, bool_text, mailbox_xml, parse_time};
use super::soap::{EwsError, EwsResult};
use super::xml::{Element, Xml};
use crate::mailstore::Mailboxes;
use crate::mailstore::content::Address;

pub(crate) fn resolve_names(
    op: &Op<'_>,
    store: &mut Mailboxes,
    body: &Element,
) -> EwsResult<String> {
    let entry = body
        .text_at(&["UnresolvedEntry"])
        .ok_or_else(|| EwsError::schema("'UnresolvedEntry' is missing"))?;
    let wanted = entry
        .strip_prefix("SMTP:")
        .or_else(|| entry.strip_prefix("smtp:"))
        .unwrap_or(entry)
        .to_lowercase();
    if wanted.is_empty() {
        return Err(EwsError::schema("'UnresolvedEntry' is empty"));
    }
    let full = body.attr("ReturnFullContactData") == Some("true");
    let fits = |name: &str, address: &str| {
        let (name, address) = (name.to_lowercase(), address.to_lowercase());
        address == wanted
            || address.starts_with(&wanted)
            || name.starts_with(&wanted)
            || name.split_whitespace().any(|w| w.starts_with(&wanted))
    };
    let mut found: Vec<(Address, bool)> = Vec::new();
    if let Some(tenant) = op.dir.tenant(op.principal.tenant) {
        for r in tenant.recipients() {
            if fits(&r.display_name, &r.address) {
                found.push((
                    Address::new(r.display_name.clone(), r.address.clone()),
                    true,
                ));
            }
        }
    }
    let mut contact_xml = Vec::new();
    if let Some(mb) = store.mailbox(&op.acting) {
        for c in mb.contacts.values() {
            for a in &c.email_addresses {
                if fits(&c.display_name, &a.address)
                    && !found
                        .iter()
                        .any(|(f, _)| f.address.eq_ignore_ascii_case(&a.address))
                {
                    found.push((
                        Address::new(c.display_name.clone(), a.address.clone()),
                        false,
                    ));
                    contact_xml.push((
                        a.address.clone(),
                        contacts::contact_xml(mb, c, &Shape::parse(None, false)),
                    ));
                }
            }
        }
    }
    let mut x = Xml::new();
    x.open("m:ResolveNamesResponse", &[]);
    x.open("m:ResponseMessages", &[]);
    match found.len() {
        0 => {
            x.open(
                "m:ResolveNamesResponseMessage",
                &[("ResponseClass", "Error")],
            );
            x.leaf("m:MessageText", "No results were found.");
            x.leaf("m:ResponseCode", "ErrorNameResolutionNoResults");
            x.leaf("m:DescriptiveLinkKey", "0");
        }
        n => {
            if n == 1 {
                x.open(
                    "m:ResolveNamesResponseMessage",
                    &[("ResponseClass", "Success")],
                );
                x.leaf("m:ResponseCode", "NoError");
            } else {
                x.open(
                    "m:ResolveNamesResponseMessage",
                    &[("ResponseClass", "Warning")],
                );
                x.leaf("m:MessageText", "Multiple results were found.");
                x.leaf("m:ResponseCode", "ErrorNameResolutionMultipleResults");
                x.leaf("m:DescriptiveLinkKey", "0");
            }
            x.open(
                "m:ResolutionSet",
                &[
                    ("TotalItemsInView", &n.to_string()),
                    ("IncludesLastItemInRange", "true"),
                ],
            );
            for (a, internal) in &found {
                x.open("t:Resolution", &[]);
                mailbox_xml(&mut x, "t:Mailbox", a, *internal);
                if full
                    && let Some((_, xml)) = contact_xml.iter().find(|(addr, _)| *addr == a.address)
                {
                    x.raw(xml);
                }
                x.close("t:Resolution");
            }
            x.close("m:ResolutionSet");
        }
    }
    x.close("m:ResolveNamesResponseMessage");
    x.close("m:ResponseMessages");
    x.close("m:ResolveNamesResponse");
    Ok(x.finish())
}

/// One busy time of a free/busy view.
struct Busy {
    start: OffsetDateTime,
    end: OffsetDateTime,
    show: &'static str,
    subject: String,
    location: String,
    meeting: bool,
    recurring: bool,
    exception: bool,
    private: bool,
}

fn local(t: OffsetDateTime, bias_minutes: i64) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    (t - time::Duration::minutes(bias_minutes))
        .format(fmt)
        .unwrap_or_default()
}

/// GetUserAvailability's free/busy view for each mailbox. Times are written in the request's
/// zone by its `Bias` alone (the mock ignores the daylight-saving rules of `t:TimeZone`).
pub(crate) fn get_user_availability(
    op: &Op<'_>,
    store: &mut Mailboxes,
    body: &Element,
) -> EwsResult<String> {
    let bias: i64 = body
        .text_at(&["TimeZone", "Bias"])
        .and_then(|b| b.parse().ok())
        .filter(|b: &i64| b.abs() <= 24 * 60)
        .unwrap_or(0);
    let options = body
        .child("FreeBusyViewOptions")
        .ok_or_else(|| EwsError::schema("'FreeBusyViewOptions' is missing"))?;
    // The window is in the request's zone; as UTC: local + bias.
    let window = |name: &str| {
        options
            .text_at(&["TimeWindow", name])
            .and_then(parse_time)
            .map(|t| t + time::Duration::minutes(bias))
            .ok_or_else(|| EwsError::schema(format!("TimeWindow needs {name}")))
    };
    let (from, to) = (window("StartTime")?, window("EndTime")?);
    if to <= from {
        return Err(EwsError::new(
            "ErrorInvalidTimeInterval",
            "The EndTime must be later than the StartTime.",
        ));
    }
    // Exchange answers at most 62 days of free/busy.
    if to - from > time::Duration::days(62) {
        return Err(EwsError::new(
            "ErrorTimeIntervalTooBig",
            "The time interval specified is too large (more than 62 days).",
        ));
    }
    let interval = options
        .text_at(&["MergedFreeBusyIntervalInMinutes"])
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|v| (5..=1440).contains(v))
        .unwrap_or(30);
    let view = options.text_at(&["RequestedView"]).unwrap_or("Detailed");
    let detailed = view.starts_with("Detailed");
    let merged = view.contains("Merged") || view == "FreeBusyMerged";
    let list = body
        .child("MailboxDataArray")
        .ok_or_else(|| EwsError::schema("'MailboxDataArray' is missing"))?;
    let mut x = Xml::new();
    x.open("m:GetUserAvailabilityResponse", &[]);
    x.open("m:FreeBusyResponseArray", &[]);
    for data in list.all("MailboxData") {
        let address = data.text_at(&["Email", "Address"]).unwrap_or_default();
        x.open("m:FreeBusyResponse", &[]);
        let mb = op
            .dir
            .recipient(address)
            .and_then(|r| store.mailbox(&r.address));
        let Some(mb) = mb else {
            x.open("m:ResponseMessage", &[("ResponseClass", "Error")]);
            x.leaf(
                "m:MessageText",
                &format!("The SMTP address has no mailbox associated with it: {address}"),
            );
            x.leaf("m:ResponseCode", "ErrorMailRecipientNotFound");
            x.leaf("m:DescriptiveLinkKey", "0");
            x.close("m:ResponseMessage");
            x.open("m:FreeBusyView", &[]);
            x.leaf("t:FreeBusyViewType", "None");
            x.close("m:FreeBusyView");
            x.close("m:FreeBusyResponse");
            continue;
        };
        x.open("m:ResponseMessage", &[("ResponseClass", "Success")]);
        x.leaf("m:ResponseCode", "NoError");
        x.close("m:ResponseMessage");
        let mut busy: Vec<Busy> = Vec::new();
        for e in mb.events.values().filter(|e| !e.is_cancelled) {
            for i in instances(e, from, to) {
                let show = i.exception.and_then(|x| x.show_as).unwrap_or(e.show_as);
                let subject = i
                    .exception
                    .and_then(|x| x.subject.clone())
                    .unwrap_or_else(|| e.subject.clone());
                let location = i
                    .exception
                    .and_then(|x| x.location.clone())
                    .unwrap_or_else(|| e.location.clone());
                busy.push(Busy {
                    start: i.start,
                    end: i.end,
                    show: free_busy_name(show),
                    subject,
                    location,
                    meeting: !e.attendees.is_empty(),
                    recurring: i.original.is_some(),
                    exception: i.exception.is_some(),
                    private: e.is_private,
                });
            }
        }
        busy.sort_by_key(|b| b.start);
        x.open("m:FreeBusyView", &[]);
        let kind = match (detailed, merged) {
            (true, true) => "DetailedMerged",
            (true, false) => "Detailed",
            (false, true) => "FreeBusyMerged",
            (false, false) => "FreeBusy",
        };
        x.leaf("t:FreeBusyViewType", kind);
        if merged {
            let mut slots = String::new();
            let mut t = from;
            while t < to {
                let end = t + time::Duration::minutes(interval);
                let level = busy
                    .iter()
                    .filter(|b| b.start < end && b.end > t)
                    .map(|b| match b.show {
                        "Tentative" => 1,
                        "Busy" => 2,
                        "OOF" => 3,
                        "WorkingElsewhere" => 4,
                        _ => 0,
                    })
                    .max()
                    .unwrap_or(0);
                slots.push(char::from(b'0' + level));
                t = end;
            }
            x.leaf("t:MergedFreeBusy", &slots);
        }
        x.open("t:CalendarEventArray", &[]);
        for b in &busy {
            x.open("t:CalendarEvent", &[]);
            x.leaf("t:StartTime", &local(b.start, bias));
            x.leaf("t:EndTime", &local(b.end, bias));
            x.leaf("t:BusyType", b.show);
            if detailed {
                x.open("t:CalendarEventDetails", &[]);
                if !b.private {
                    x.leaf("t:Subject", &b.subject);
                    x.leaf("t:Location", &b.location);
                }
                x.leaf("t:IsMeeting", bool_text(b.meeting));
                x.leaf("t:IsRecurring", bool_text(b.recurring));
                x.leaf("t:IsException", bool_text(b.exception));
                x.leaf("t:IsReminderSet", "false");
                x.leaf("t:IsPrivate", bool_text(b.private));
                x.close("t:CalendarEventDetails");
            }
            x.close("t:CalendarEvent");
        }
        x.close("t:CalendarEventArray");
        x.close("m:FreeBusyView");
        x.close("m:FreeBusyResponse");
    }
    x.close("m:FreeBusyResponseArray");
    x.close("m:GetUserAvailabilityResponse");
    Ok(x.finish())
}
