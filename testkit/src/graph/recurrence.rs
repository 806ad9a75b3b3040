//! Graph's `patternedRecurrence` and its expansion into occurrence dates.

use serde::{Deserialize, Serialize};
use time::{Date, Duration, Month, PrimitiveDateTime, Time, Weekday};

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

/// At most this many pattern dates are looked at per expansion (a daily series over 270 years).
const MAX_STEPS: usize = 100_000;

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
        DayOfWeek::Sunday => Weekday::Sunday,
        DayOfWeek::Monday => Weekday::Monday,
        DayOfWeek::Tuesday => Weekday::Tuesday,
        DayOfWeek::Wednesday => Weekday::Wednesday,
        DayOfWeek::Thursday => Weekday::Thursday,
        DayOfWeek::Friday => Weekday::Friday,
        DayOfWeek::Saturday => Weekday::Saturday,
    }
}

fn add_months(year: i32, month: Month, months: i64) -> Option<(i32, Month)> {
    let index = i64::from(year) * 12 + i64::from(u8::from(month)) - 1 + months;
    let year = i32::try_from(index.div_euclid(12)).ok()?;
    let month = Month::try_from(u8::try_from(index.rem_euclid(12) + 1).ok()?).ok()?;
    Some((year, month))
}

/// The `index`-th day in the month that is one of `days` (`last`: the last such day).
fn relative_day(year: i32, month: Month, days: &[Weekday], index: WeekIndex) -> Option<Date> {
    let matching: Vec<Date> = (1..=month.length(year))
        .filter_map(|d| Date::from_calendar_date(year, month, d).ok())
        .filter(|d| days.contains(&d.weekday()))
        .collect();
    match index {
        WeekIndex::First => matching.first().copied(),
        WeekIndex::Second => matching.get(1).copied(),
        WeekIndex::Third => matching.get(2).copied(),
        WeekIndex::Fourth => matching.get(3).copied(),
        WeekIndex::Last => matching.last().copied(),
    }
}

fn clamped(year: i32, month: Month, day: u32) -> Option<Date> {
    let day = u8::try_from(day.clamp(1, 31)).ok()?.min(month.length(year));
    Date::from_calendar_date(year, month, day).ok()
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
        Ok(())
    }

    /// Calls `visit` with each pattern date in order, from the range's start date, until
    /// `until` (inclusive), the range's end, or `visit` returns `false`.
    pub(crate) fn dates(&self, until: Date, mut visit: impl FnMut(Date) -> bool) {
        let Some(start) = parse_date(&self.range.start_date) else {
            return;
        };
        let end = match self.range.kind {
            RangeType::EndDate => self.range.end_date.as_deref().and_then(parse_date),
            _ => None,
        };
        let last = end.map_or(until, |e| e.min(until));
        let limit = match self.range.kind {
            RangeType::Numbered => self.range.number_of_occurrences as usize,
            _ => usize::MAX,
        };
        let p = &self.pattern;
        let interval = i64::from(p.interval.max(1));
        let days: Vec<Weekday> = if p.days_of_week.is_empty() {
            vec![start.weekday()]
        } else {
            p.days_of_week.iter().map(|d| weekday(*d)).collect()
        };
        let mut count = 0usize;
        let mut emit = |date: Date| -> bool {
            if date < start {
                return true;
            }
            if date > last || count >= limit {
                return false;
            }
            count += 1;
            visit(date)
        };
        for step in 0..MAX_STEPS as i64 {
            let keep_going = match p.kind {
                PatternType::Daily => match start.checked_add(Duration::days(step * interval)) {
                    Some(d) => emit(d),
                    None => false,
                },
                PatternType::Weekly => {
                    let first_day = weekday(p.first_day_of_week);
                    let back = (7 + i64::from(start.weekday().number_days_from_sunday())
                        - i64::from(first_day.number_days_from_sunday()))
                        % 7;
                    let Some(week) = start
                        .checked_sub(Duration::days(back))
                        .and_then(|w| w.checked_add(Duration::weeks(step * interval)))
                    else {
                        break;
                    };
                    let mut in_week: Vec<Date> = days
                        .iter()
                        .filter_map(|d| {
                            let offset = (7 + i64::from(d.number_days_from_sunday())
                                - i64::from(first_day.number_days_from_sunday()))
                                % 7;
                            week.checked_add(Duration::days(offset))
                        })
                        .collect();
                    in_week.sort();
                    in_week.dedup();
                    let mut go = true;
                    for d in in_week {
                        if !emit(d) {
                            go = false;
                            break;
                        }
                    }
                    go
                }
                PatternType::AbsoluteMonthly | PatternType::RelativeMonthly => {
                    let Some((year, month)) =
                        add_months(start.year(), start.month(), step * interval)
                    else {
                        break;
                    };
                    let date = if p.kind == PatternType::AbsoluteMonthly {
                        clamped(year, month, p.day_of_month)
                    } else {
                        relative_day(year, month, &days, p.index)
                    };
                    match date {
                        Some(d) => emit(d),
                        None => Date::from_calendar_date(year, month, 1).is_ok_and(|d| d <= last),
                    }
                }
                PatternType::AbsoluteYearly | PatternType::RelativeYearly => {
                    let Some(year) = i32::try_from(step * interval)
                        .ok()
                        .and_then(|s| start.year().checked_add(s))
                    else {
                        break;
                    };
                    let month = u8::try_from(p.month)
                        .ok()
                        .and_then(|m| Month::try_from(m).ok())
                        .unwrap_or(start.month());
                    let date = if p.kind == PatternType::AbsoluteYearly {
                        clamped(year, month, p.day_of_month)
                    } else {
                        relative_day(year, month, &days, p.index)
                    };
                    match date {
                        Some(d) => emit(d),
                        None => year <= last.year(),
                    }
                }
            };
            if !keep_going {
                break;
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
    use time::macros::date;

    use super::*;

    fn collect(r: &Recurrence, until: Date) -> Vec<Date> {
        let mut out = Vec::new();
        r.dates(until, |d| {
            out.push(d);
            true
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
