//! Graph's `patternedRecurrence`, translated into an RFC 5545 RRULE and expanded by the rrule
//! crate in the series' own zone (chrono-tz), so a 09:00 meeting stays at 09:00 local time
//! across daylight-saving switches.

use chrono::Weekday;
use rrule::{Frequency, NWeekday, RRule, RRuleSet};
use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use super::tz::{self, Zone};

/// A series' pattern and range, exactly Graph's JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Recurrence {
    pub pattern: RecurrencePattern,
    pub range: RecurrenceRange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PatternType {
    Daily,
    Weekly,
    AbsoluteMonthly,
    RelativeMonthly,
    AbsoluteYearly,
    RelativeYearly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DayOfWeek {
    #[default]
    Sunday,
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeekIndex {
    #[default]
    First,
    Second,
    Third,
    Fourth,
    Last,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecurrencePattern {
    #[serde(rename = "type")]
    pub kind: PatternType,
    #[serde(default = "one")]
    pub interval: u32,
    #[serde(default)]
    pub month: u32,
    #[serde(default)]
    pub day_of_month: u32,
    #[serde(default)]
    pub days_of_week: Vec<DayOfWeek>,
    #[serde(default)]
    pub first_day_of_week: DayOfWeek,
    #[serde(default)]
    pub index: WeekIndex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RangeType {
    EndDate,
    NoEnd,
    Numbered,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecurrenceRange {
    #[serde(rename = "type")]
    pub kind: RangeType,
    /// `YYYY-MM-DD`
    pub start_date: String,
    /// `YYYY-MM-DD`; Graph answers `0001-01-01` when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    #[serde(default)]
    pub number_of_occurrences: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence_time_zone: Option<String>,
}

fn one() -> u32 {
    1
}

/// At most this many occurrences are looked at per expansion (a daily series over 270 years).
const MAX_OCCURRENCES: usize = 100_000;

pub(crate) fn parse_date(s: &str) -> Option<Date> {
    let mut parts = s.trim().splitn(3, '-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let rest = parts.next()?;
    let digits = &rest[..rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len())];
    let day: u8 = digits.parse().ok()?;
    // Exchange's calendar range.
    if !(1601..=4500).contains(&year) {
        return None;
    }
    Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()
}

/// A local date-time as Graph writes them: `2026-11-02T09:00:00`, optionally with fractional
/// seconds (`.0000000`); a bare date means midnight.
pub(crate) fn parse_local(s: &str) -> Option<PrimitiveDateTime> {
    let s = s.trim();
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let date = parse_date(date)?;
    let time = match time {
        None => Time::MIDNIGHT,
        Some(t) => {
            let t = t.trim_end_matches('Z');
            let (hms, _fraction) = t.split_once('.').unwrap_or((t, ""));
            let mut parts = hms.split(':');
            let h: u8 = parts.next()?.parse().ok()?;
            let m: u8 = parts.next().unwrap_or("0").parse().ok()?;
            let sec: u8 = parts.next().unwrap_or("0").parse().ok()?;
            if parts.next().is_some() {
                return None;
            }
            Time::from_hms(h, m, sec).ok()?
        }
    };
    Some(PrimitiveDateTime::new(date, time))
}

pub(crate) fn format_date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn weekday(day: DayOfWeek) -> Weekday {
    match day {
        DayOfWeek::Sunday => Weekday::Sun,
        DayOfWeek::Monday => Weekday::Mon,
        DayOfWeek::Tuesday => Weekday::Tue,
        DayOfWeek::Wednesday => Weekday::Wed,
        DayOfWeek::Thursday => Weekday::Thu,
        DayOfWeek::Friday => Weekday::Fri,
        DayOfWeek::Saturday => Weekday::Sat,
    }
}

impl Recurrence {
    /// Checks what Graph checks: a valid pattern for its type and a valid range.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let p = &self.pattern;
        if p.interval == 0 || p.interval > 999 {
            return Err("the recurrence interval must be between 1 and 999".into());
        }
        match p.kind {
            PatternType::Weekly | PatternType::RelativeMonthly | PatternType::RelativeYearly
                if p.days_of_week.is_empty() =>
            {
                return Err("the recurrence pattern needs daysOfWeek".into());
            }
            PatternType::AbsoluteMonthly | PatternType::AbsoluteYearly
                if !(1..=31).contains(&p.day_of_month) =>
            {
                return Err("the recurrence pattern needs a dayOfMonth between 1 and 31".into());
            }
            _ => {}
        }
        if matches!(
            p.kind,
            PatternType::AbsoluteYearly | PatternType::RelativeYearly
        ) && !(1..=12).contains(&p.month)
        {
            return Err("the recurrence pattern needs a month between 1 and 12".into());
        }
        let start = parse_date(&self.range.start_date)
            .ok_or_else(|| format!("range startDate `{}` is not a date", self.range.start_date))?;
        match self.range.kind {
            RangeType::EndDate => {
                let end = self
                    .range
                    .end_date
                    .as_deref()
                    .and_then(parse_date)
                    .ok_or("a range of type endDate needs an endDate")?;
                if end < start {
                    return Err("the range's endDate is before its startDate".into());
                }
            }
            RangeType::Numbered if self.range.number_of_occurrences == 0 => {
                return Err("a numbered range needs numberOfOccurrences of at least 1".into());
            }
            _ => {}
        }
        self.rrule_set(tz::utc(), Time::MIDNIGHT).map(drop)
    }

    /// The RRULE of the pattern and range (`FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1;…`) with its
    /// DTSTART: the range's start date at `time_of_day` in `zone`. `endDate` ends at the end of
    /// that day in the range's `recurrenceTimeZone` (else `zone`).
    ///
    /// Outlook's monthly and yearly days past the 28th fall on the last day of shorter months
    /// (the 31st is 30 April, 28 February), which RFC 5545 would skip: `BYMONTHDAY=28,…,31`
    /// with `BYSETPOS=-1` says the same thing.
    pub(crate) fn rrule_set(&self, zone: Zone, time_of_day: Time) -> Result<RRuleSet, String> {
        let p = &self.pattern;
        let start = parse_date(&self.range.start_date)
            .ok_or_else(|| format!("range startDate `{}` is not a date", self.range.start_date))?;
        let dt_start = tz::to_chrono(zone.to_utc(PrimitiveDateTime::new(start, time_of_day)))
            .ok_or("the series starts outside the calendar's range")?
            .with_timezone(&rrule::Tz::Tz(zone.tz()));
        let frequency = match p.kind {
            PatternType::Daily => Frequency::Daily,
            PatternType::Weekly => Frequency::Weekly,
            PatternType::AbsoluteMonthly | PatternType::RelativeMonthly => Frequency::Monthly,
            PatternType::AbsoluteYearly | PatternType::RelativeYearly => Frequency::Yearly,
        };
        let interval = u16::try_from(p.interval.clamp(1, 999)).unwrap_or(1);
        let days: Vec<NWeekday> = p
            .days_of_week
            .iter()
            .map(|d| NWeekday::Every(weekday(*d)))
            .collect();
        let mut rule = RRule::new(frequency)
            .interval(interval)
            .week_start(weekday(p.first_day_of_week));
        match p.kind {
            PatternType::Daily => {}
            PatternType::Weekly => rule = rule.by_weekday(days),
            PatternType::AbsoluteMonthly | PatternType::AbsoluteYearly => {
                let day = i8::try_from(p.day_of_month.clamp(1, 31)).unwrap_or(1);
                rule = if day > 28 {
                    rule.by_month_day((28..=day).collect()).by_set_pos(vec![-1])
                } else {
                    rule.by_month_day(vec![day])
                };
            }
            PatternType::RelativeMonthly | PatternType::RelativeYearly => {
                let position = match p.index {
                    WeekIndex::First => 1,
                    WeekIndex::Second => 2,
                    WeekIndex::Third => 3,
                    WeekIndex::Fourth => 4,
                    WeekIndex::Last => -1,
                };
                rule = rule.by_weekday(days).by_set_pos(vec![position]);
            }
        }
        if matches!(
            p.kind,
            PatternType::AbsoluteYearly | PatternType::RelativeYearly
        ) {
            let month = u8::try_from(p.month)
                .ok()
                .and_then(|m| chrono::Month::try_from(m).ok())
                .ok_or("the recurrence pattern needs a month between 1 and 12")?;
            rule = rule.by_month(&[month]);
        }
        match self.range.kind {
            RangeType::NoEnd => {}
            RangeType::Numbered => rule = rule.count(self.range.number_of_occurrences.max(1)),
            RangeType::EndDate => {
                let end = self
                    .range
                    .end_date
                    .as_deref()
                    .and_then(parse_date)
                    .ok_or("a range of type endDate needs an endDate")?;
                let range_zone = self
                    .range
                    .recurrence_time_zone
                    .as_deref()
                    .and_then(tz::find)
                    .unwrap_or(zone);
                // The last second of the end date, in UTC as RFC 5545 wants it beside a TZID.
                let until = end
                    .next_day()
                    .map(|next| range_zone.to_utc(next.midnight()))
                    .and_then(|t| t.checked_sub(time::Duration::SECOND))
                    .and_then(tz::to_chrono)
                    .ok_or("the range ends outside the calendar's range")?;
                rule = rule.until(until.with_timezone(&rrule::Tz::UTC));
            }
        }
        Ok(rule
            .build(dt_start)
            .map_err(|e| format!("the recurrence cannot be expanded: {e}"))?
            .limit())
    }

    /// Calls `visit` with each occurrence's start (UTC), in order, from the range's start, until
    /// the range ends or `visit` returns `false`; nothing when the pattern cannot be expanded.
    pub(crate) fn starts(
        &self,
        zone: Zone,
        time_of_day: Time,
        mut visit: impl FnMut(OffsetDateTime) -> bool,
    ) {
        let Ok(set) = self.rrule_set(zone, time_of_day) else {
            return;
        };
        for start in set.into_iter().take(MAX_OCCURRENCES) {
            match tz::from_chrono(&start) {
                Some(start) if visit(start) => {}
                _ => break,
            }
        }
    }
    /// The range with Graph's output conventions (`endDate` `0001-01-01` when absent).
    pub(crate) fn to_json(&self, zone_name: &str) -> serde_json::Value {
        let p = &self.pattern;
        serde_json::json!({
            "pattern": {
                "type": p.kind,
                "interval": p.interval,
                "month": p.month,
                "dayOfMonth": p.day_of_month,
                "daysOfWeek": p.days_of_week,
                "firstDayOfWeek": p.first_day_of_week,
                "index": p.index,
            },
            "range": {
                "type": self.range.kind,
                "startDate": self.range.start_date,
                "endDate": self.range.end_date.clone().unwrap_or_else(|| "0001-01-01".into()),
                "recurrenceTimeZone": self.range.recurrence_time_zone.clone().unwrap_or_else(|| zone_name.to_string()),
                "numberOfOccurrences": self.range.number_of_occurrences,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime, time};

    use super::*;

    /// The occurrence dates of a series of all-day-like starts (midnight UTC), up to `until`.
    fn collect(r: &Recurrence, until: Date) -> Vec<Date> {
        let mut out = Vec::new();
        r.starts(tz::utc(), Time::MIDNIGHT, |start| {
            if start.date() > until {
                return false;
            }
            out.push(start.date());
            true
        });
        out
    }

    /// The first `n` occurrence starts in `zone` at `time_of_day`, as UTC instants.
    fn first(r: &Recurrence, zone: &str, time_of_day: Time, n: usize) -> Vec<OffsetDateTime> {
        let mut out = Vec::new();
        let zone = tz::find(zone).unwrap();
        r.starts(zone, time_of_day, |start| {
            out.push(start);
            out.len() < n
        });
        out
    }

    fn recurrence(json: serde_json::Value) -> Recurrence {
        let r: Recurrence = serde_json::from_value(json).unwrap();
        r.validate().unwrap();
        r
    }

    #[test]
    fn weekly_monthly_yearly_and_numbered_patterns_expand_like_outlook() {
        let weekly = recurrence(serde_json::json!({
            "pattern": {"type": "weekly", "interval": 2, "daysOfWeek": ["monday", "thursday"], "firstDayOfWeek": "monday"},
            "range": {"type": "numbered", "startDate": "2026-11-04", "numberOfOccurrences": 4}
        }));
        assert_eq!(
            collect(&weekly, date!(2027 - 12 - 31)),
            vec![
                date!(2026 - 11 - 05),
                date!(2026 - 11 - 16),
                date!(2026 - 11 - 19),
                date!(2026 - 11 - 30)
            ]
        );
        let monthly = recurrence(serde_json::json!({
            "pattern": {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31},
            "range": {"type": "endDate", "startDate": "2026-01-31", "endDate": "2026-04-30"}
        }));
        assert_eq!(
            collect(&monthly, date!(2027 - 01 - 01)),
            vec![
                date!(2026 - 01 - 31),
                date!(2026 - 02 - 28),
                date!(2026 - 03 - 31),
                date!(2026 - 04 - 30)
            ]
        );
        let last_friday = recurrence(serde_json::json!({
            "pattern": {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["friday"], "index": "last"},
            "range": {"type": "noEnd", "startDate": "2026-10-01"}
        }));
        assert_eq!(
            collect(&last_friday, date!(2026 - 12 - 31)),
            vec![
                date!(2026 - 10 - 30),
                date!(2026 - 11 - 27),
                date!(2026 - 12 - 25)
            ]
        );
        let yearly = recurrence(serde_json::json!({
            "pattern": {"type": "relativeYearly", "interval": 1, "month": 11, "daysOfWeek": ["thursday"], "index": "fourth"},
            "range": {"type": "numbered", "startDate": "2026-01-01", "numberOfOccurrences": 2}
        }));
        assert_eq!(
            collect(&yearly, date!(2030 - 01 - 01)),
            vec![date!(2026 - 11 - 26), date!(2027 - 11 - 25)]
        );
        let daily: Recurrence = serde_json::from_value(serde_json::json!({
            "pattern": {"type": "daily", "interval": 0},
            "range": {"type": "noEnd", "startDate": "2026-10-01"}
        }))
        .unwrap();
        assert!(daily.validate().is_err());
    }

    #[test]
    fn every_pattern_type_becomes_the_rrule_outlook_means() {
        let rule = |json: serde_json::Value| {
            let set = recurrence(json).rrule_set(tz::utc(), time!(09:00)).unwrap();
            set.get_rrule()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        };
        let daily = rule(serde_json::json!({
            "pattern": {"type": "daily", "interval": 3},
            "range": {"type": "numbered", "startDate": "2026-11-02", "numberOfOccurrences": 5}
        }));
        assert!(
            daily.starts_with("FREQ=DAILY;COUNT=5;INTERVAL=3;"),
            "{daily}"
        );
        let weekly = rule(serde_json::json!({
            "pattern": {"type": "weekly", "interval": 2, "daysOfWeek": ["monday", "wednesday"], "firstDayOfWeek": "sunday"},
            "range": {"type": "endDate", "startDate": "2026-11-02", "endDate": "2026-12-31"}
        }));
        assert!(weekly.contains("FREQ=WEEKLY"), "{weekly}");
        assert!(weekly.contains("UNTIL=20261231T235959Z"), "{weekly}");
        assert!(weekly.contains("WKST=SU"), "{weekly}");
        assert!(weekly.contains("BYDAY=MO,WE"), "{weekly}");
        let thirtieth = rule(serde_json::json!({
            "pattern": {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 30},
            "range": {"type": "noEnd", "startDate": "2026-11-30"}
        }));
        assert!(thirtieth.contains("BYMONTHDAY=28,29,30"), "{thirtieth}");
        assert!(thirtieth.contains("BYSETPOS=-1"), "{thirtieth}");
        let second_tuesday = rule(serde_json::json!({
            "pattern": {"type": "relativeYearly", "interval": 1, "month": 3, "daysOfWeek": ["tuesday"], "index": "second"},
            "range": {"type": "noEnd", "startDate": "2026-01-01"}
        }));
        assert!(second_tuesday.contains("FREQ=YEARLY"), "{second_tuesday}");
        assert!(second_tuesday.contains("BYMONTH=3"), "{second_tuesday}");
        assert!(second_tuesday.contains("BYDAY=TU"), "{second_tuesday}");
        assert!(second_tuesday.contains("BYSETPOS=2"), "{second_tuesday}");
        // 29 February every year falls on the 28th in common years.
        let leap = recurrence(serde_json::json!({
            "pattern": {"type": "absoluteYearly", "interval": 1, "month": 2, "dayOfMonth": 29},
            "range": {"type": "numbered", "startDate": "2028-01-01", "numberOfOccurrences": 3}
        }));
        assert_eq!(
            collect(&leap, date!(2040 - 01 - 01)),
            [
                date!(2028 - 02 - 29),
                date!(2029 - 02 - 28),
                date!(2030 - 02 - 28)
            ]
        );
    }

    #[test]
    fn last_friday_monthly_stays_at_ten_pacific_across_the_end_of_us_summer_time() {
        // PDT (UTC-7) ends on 1 November 2026; PST is UTC-8.
        let last_friday = recurrence(serde_json::json!({
            "pattern": {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["friday"], "index": "last"},
            "range": {"type": "numbered", "startDate": "2026-09-01", "numberOfOccurrences": 4}
        }));
        let starts = first(&last_friday, "Pacific Standard Time", time!(10:00), 10);
        assert_eq!(
            starts,
            [
                datetime!(2026-09-25 17:00 UTC),
                datetime!(2026-10-30 17:00 UTC),
                datetime!(2026-11-27 18:00 UTC),
                datetime!(2026-12-25 18:00 UTC),
            ]
        );
        let pacific = tz::find("America/Los_Angeles").unwrap();
        for start in starts {
            assert_eq!(pacific.to_local(start).time(), time!(10:00));
        }
    }

    #[test]
    fn mondays_and_wednesdays_stay_at_nine_in_berlin_across_the_switch_to_summer_time() {
        // CET (UTC+1) becomes CEST (UTC+2) on Sunday 29 March 2026.
        let series = recurrence(serde_json::json!({
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "wednesday"], "firstDayOfWeek": "monday"},
            "range": {"type": "endDate", "startDate": "2026-03-16", "endDate": "2026-04-08", "recurrenceTimeZone": "Europe/Berlin"}
        }));
        let starts = first(&series, "Europe/Berlin", time!(09:00), 100);
        assert_eq!(
            starts,
            [
                datetime!(2026-03-16 08:00 UTC),
                datetime!(2026-03-18 08:00 UTC),
                datetime!(2026-03-23 08:00 UTC),
                datetime!(2026-03-25 08:00 UTC),
                datetime!(2026-03-30 07:00 UTC),
                datetime!(2026-04-01 07:00 UTC),
                datetime!(2026-04-06 07:00 UTC),
                datetime!(2026-04-08 07:00 UTC),
            ]
        );
        // The Windows name gives the same series.
        assert_eq!(
            first(&series, "W. Europe Standard Time", time!(09:00), 100),
            starts
        );
    }

    #[test]
    fn the_end_date_ends_in_the_ranges_zone() {
        // 23:30 Pacific on 2 November is already 3 November in UTC: with the range in Pacific
        // time the last occurrence is on the 2nd; with the range in UTC it is a day earlier.
        let json = |range_zone: &str| {
            serde_json::json!({
                "pattern": {"type": "daily", "interval": 1},
                "range": {"type": "endDate", "startDate": "2026-11-01", "endDate": "2026-11-02",
                          "recurrenceTimeZone": range_zone}
            })
        };
        let pacific = recurrence(json("Pacific Standard Time"));
        assert_eq!(
            first(&pacific, "Pacific Standard Time", time!(23:30), 10),
            [
                datetime!(2026-11-02 07:30 UTC),
                datetime!(2026-11-03 07:30 UTC)
            ]
        );
        let utc = recurrence(json("UTC"));
        assert_eq!(
            first(&utc, "Pacific Standard Time", time!(23:30), 10),
            [datetime!(2026-11-02 07:30 UTC)]
        );
    }

    #[test]
    fn local_times_parse_in_graphs_forms() {
        assert_eq!(
            parse_local("2026-11-02T09:30:00.0000000"),
            Some(time::macros::datetime!(2026-11-02 09:30))
        );
        assert_eq!(
            parse_local("2026-11-02"),
            Some(time::macros::datetime!(2026-11-02 00:00))
        );
        assert_eq!(parse_local("2026-13-02T00:00:00"), None);
        assert_eq!(parse_local("2026-11-02T25:00:00"), None);
        assert_eq!(parse_local("é"), None);
    }
}
