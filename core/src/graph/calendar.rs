//! Calendar and free/busy over Graph: `calendarView` with `Prefer: outlook.timezone`, events
//! CRUD, `getSchedule`.

use async_trait::async_trait;
use reqwest::Method;
use serde_json::json;
use time::OffsetDateTime;

use super::wire::{self, Collection, WireEvent};
use super::{Call, GraphMailbox, time_param};
use crate::Error;
use crate::mailbox::{
    Availability, Calendar, Event, EventDraft, FreeBusy, MailboxError, MailboxRef, Operation,
    TimeZone,
};
use crate::pipeline::{Retry, segment};

/// Page size for listings the backend walks itself.
const WALK_PAGE: u32 = 100;

#[async_trait]
impl Calendar for GraphMailbox {
    async fn events(
        &self,
        mailbox: &MailboxRef,
        start: OffsetDateTime,
        end: OffsetDateTime,
        time_zone: Option<&TimeZone>,
    ) -> Result<Vec<Event>, Error> {
        let mut call = Call::new(
            Method::GET,
            format!("{}/calendarView", self.root(mailbox)?),
            Operation::READ_CALENDAR,
            mailbox,
        )
        .query("startDateTime", time_param(start))
        .query("endDateTime", time_param(end))
        .query("$select", wire::EVENT_FIELDS)
        .query("$orderby", "start/dateTime")
        .query("$top", WALK_PAGE.to_string());
        if let Some(tz) = time_zone {
            call = call.prefer(format!("outlook.timezone=\"{}\"", wire::zone_name(tz)));
        }
        Ok(self
            .all::<WireEvent>(call)
            .await?
            .into_iter()
            .map(|e| e.into_event(time_zone))
            .collect::<Result<_, _>>()?)
    }

    async fn create_event(&self, mailbox: &MailboxRef, event: &EventDraft) -> Result<Event, Error> {
        if event.subject.is_none() || event.start.is_none() || event.end.is_none() {
            return Err(MailboxError::Invalid(
                "a new event needs a subject, a start and an end".into(),
            )
            .into());
        }
        let call = Call::new(
            Method::POST,
            format!("{}/events", self.root(mailbox)?),
            Operation::WRITE_CALENDAR,
            mailbox,
        )
        .json(wire::event_json(event));
        let asked = event.start.as_ref().map(|t| &t.time_zone);
        Ok(self.get_json::<WireEvent>(call).await?.into_event(asked)?)
    }

    async fn update_event(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        change: &EventDraft,
    ) -> Result<Event, Error> {
        let target = format!("{}/events/{}", self.root(mailbox)?, segment("event", id)?);
        Ok(self
            .get_json::<WireEvent>(
                Call::new(Method::PATCH, target, Operation::WRITE_CALENDAR, mailbox)
                    .json(wire::event_json(change)),
            )
            .await?
            .into_event(change.start.as_ref().map(|t| &t.time_zone))?)
    }

    async fn delete_event(&self, mailbox: &MailboxRef, id: &str) -> Result<(), Error> {
        let target = format!("{}/events/{}", self.root(mailbox)?, segment("event", id)?);
        self.no_content(Call::new(
            Method::DELETE,
            target,
            Operation::WRITE_CALENDAR,
            mailbox,
        ))
        .await
    }
}

#[async_trait]
impl Availability for GraphMailbox {
    async fn free_busy(
        &self,
        mailbox: &MailboxRef,
        who: &[String],
        start: OffsetDateTime,
        end: OffsetDateTime,
        interval_minutes: u32,
    ) -> Result<Vec<FreeBusy>, Error> {
        let fmt =
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
        let utc = |t: OffsetDateTime| {
            t.to_offset(time::UtcOffset::UTC)
                .format(&fmt)
                .unwrap_or_default()
        };
        let body = json!({
            "schedules": who,
            "startTime": { "dateTime": utc(start), "timeZone": "UTC" },
            "endTime": { "dateTime": utc(end), "timeZone": "UTC" },
            "availabilityViewInterval": interval_minutes,
        });
        let call = Call::new(
            Method::POST,
            format!("{}/calendar/getSchedule", self.root(mailbox)?),
            Operation::READ_CALENDAR,
            mailbox,
        )
        .json(body)
        .retry(Retry::Always);
        let answer: Collection<wire::ScheduleInformation> = self.get_json(call).await?;
        Ok(answer
            .value
            .into_iter()
            .map(|s| s.into_free_busy(interval_minutes))
            .collect::<Result<_, _>>()?)
    }
}
