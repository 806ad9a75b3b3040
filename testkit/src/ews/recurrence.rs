//! `t:Recurrence` both ways: the mail store's series pattern and range (Graph's
//! `patternedRecurrence`) as EWS's `…Recurrence` patterns and ranges.

use super::soap::{EwsError, EwsResult};
use super::xml::{Element, Xml};
use crate::mailstore::recurrence::{
    DayOfWeek, PatternType, RangeType, Recurrence, RecurrencePattern, RecurrenceRange, WeekIndex,
};

const DAYS: [(DayOfWeek, &str); 7] = [
    (DayOfWeek::Sunday, "Sunday"),
    (DayOfWeek::Monday, "Monday"),
    (DayOfWeek::Tuesday, "Tuesday"),
    (DayOfWeek::Wednesday, "Wednesday"),
    (DayOfWeek::Thursday, "Thursday"),
    (DayOfWeek::Friday, "Friday"),
    (DayOfWeek::Saturday, "Saturday"),
];

const INDEXES: [(WeekIndex, &str); 5] = [
    (WeekIndex::First, "First"),
    (WeekIndex::Second, "Second"),
    (WeekIndex::Third, "Third"),
    (WeekIndex::Fourth, "Fourth"),
    (WeekIndex::Last, "Last"),
];

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn day_name(d: DayOfWeek) -> &'static str {
    DAYS.iter()
        .find(|(x, _)| *x == d)
        .map_or("Sunday", |(_, n)| n)
}

fn index_name(i: WeekIndex) -> &'static str {
    INDEXES
        .iter()
        .find(|(x, _)| *x == i)
        .map_or("First", |(_, n)| n)
}

fn month_name(m: u32) -> &'static str {
    MONTHS
        .get(usize::try_from(m.saturating_sub(1)).unwrap_or(0))
        .copied()
        .unwrap_or("January")
}

/// `t:Recurrence` for a series.
pub(crate) fn recurrence_xml(r: &Recurrence) -> String {
    let p = &r.pattern;
    let mut x = Xml::new();
    x.open("t:Recurrence", &[]);
    let first_day = || p.days_of_week.first().copied().unwrap_or_default();
    match p.kind {
        PatternType::Daily => {
            x.open("t:DailyRecurrence", &[]);
            x.leaf("t:Interval", &p.interval.to_string());
            x.close("t:DailyRecurrence");
        }
        PatternType::Weekly => {
            x.open("t:WeeklyRecurrence", &[]);
            x.leaf("t:Interval", &p.interval.to_string());
            let days: Vec<&str> = p.days_of_week.iter().map(|d| day_name(*d)).collect();
            x.leaf("t:DaysOfWeek", &days.join(" "));
            x.leaf("t:FirstDayOfWeek", day_name(p.first_day_of_week));
            x.close("t:WeeklyRecurrence");
        }
        PatternType::AbsoluteMonthly => {
            x.open("t:AbsoluteMonthlyRecurrence", &[]);
            x.leaf("t:Interval", &p.interval.to_string());
            x.leaf("t:DayOfMonth", &p.day_of_month.to_string());
            x.close("t:AbsoluteMonthlyRecurrence");
        }
        PatternType::RelativeMonthly => {
            x.open("t:RelativeMonthlyRecurrence", &[]);
            x.leaf("t:Interval", &p.interval.to_string());
            x.leaf("t:DaysOfWeek", day_name(first_day()));
            x.leaf("t:DayOfWeekIndex", index_name(p.index));
            x.close("t:RelativeMonthlyRecurrence");
        }
        PatternType::AbsoluteYearly => {
            x.open("t:AbsoluteYearlyRecurrence", &[]);
            x.leaf("t:DayOfMonth", &p.day_of_month.to_string());
            x.leaf("t:Month", month_name(p.month));
            x.close("t:AbsoluteYearlyRecurrence");
        }
        PatternType::RelativeYearly => {
            x.open("t:RelativeYearlyRecurrence", &[]);
            x.leaf("t:DaysOfWeek", day_name(first_day()));
            x.leaf("t:DayOfWeekIndex", index_name(p.index));
            x.leaf("t:Month", month_name(p.month));
            x.close("t:RelativeYearlyRecurrence");
        }
    }
    let range = &r.range;
    match range.kind {
        RangeType::NoEnd => {
            x.open("t:NoEndRecurrence", &[]);
            x.leaf("t:StartDate", &range.start_date);
            x.close("t:NoEndRecurrence");
        }
        RangeType::EndDate => {
            x.open("t:EndDateRecurrence", &[]);
            x.leaf("t:StartDate", &range.start_date);
            x.leaf(
                "t:EndDate",
                range.end_date.as_deref().unwrap_or(&range.start_date),
            );
            x.close("t:EndDateRecurrence");
        }
        RangeType::Numbered => {
            x.open("t:NumberedRecurrence", &[]);
            x.leaf("t:StartDate", &range.start_date);
            x.leaf(
                "t:NumberOfOccurrences",
                &range.number_of_occurrences.to_string(),
            );
            x.close("t:NumberedRecurrence");
        }
    }
    x.close("t:Recurrence");
    x.finish()
}

fn bad(what: &str) -> EwsError {
    EwsError::new(
        "ErrorCalendarInvalidRecurrence",
        format!("The recurrence is not valid: {what}"),
    )
}

fn parse_day(text: &str) -> EwsResult<DayOfWeek> {
    DAYS.iter()
        .find(|(_, n)| *n == text.trim())
        .map(|(d, _)| *d)
        .ok_or_else(|| bad(&format!("'{text}' is not a day of the week the mock takes")))
}

fn number(el: &Element, name: &str) -> EwsResult<u32> {
    el.text_at(&[name])
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| bad(&format!("{name} is missing or not a number")))
}

/// A series from a `t:Recurrence` element.
pub(crate) fn parse_recurrence(el: &Element) -> EwsResult<Recurrence> {
    let pattern_el = el
        .children
        .iter()
        .find(|c| {
            c.name.ends_with("Recurrence")
                && !c.name.contains("End")
                && c.name != "NumberedRecurrence"
        })
        .ok_or_else(|| bad("no pattern"))?;
    let mut p = RecurrencePattern {
        kind: PatternType::Daily,
        interval: 1,
        month: 0,
        day_of_month: 0,
        days_of_week: Vec::new(),
        first_day_of_week: DayOfWeek::Sunday,
        index: WeekIndex::First,
    };
    let index = |e: &Element| -> EwsResult<WeekIndex> {
        let t = e.text_at(&["DayOfWeekIndex"]).unwrap_or_default();
        INDEXES
            .iter()
            .find(|(_, n)| *n == t)
            .map(|(i, _)| *i)
            .ok_or_else(|| bad("DayOfWeekIndex"))
    };
    let month = |e: &Element| -> EwsResult<u32> {
        let t = e.text_at(&["Month"]).unwrap_or_default();
        MONTHS
            .iter()
            .position(|m| *m == t)
            .map(|i| u32::try_from(i + 1).unwrap_or(1))
            .ok_or_else(|| bad("Month"))
    };
    match pattern_el.name.as_str() {
        "DailyRecurrence" => p.interval = number(pattern_el, "Interval")?,
        "WeeklyRecurrence" => {
            p.kind = PatternType::Weekly;
            p.interval = number(pattern_el, "Interval")?;
            p.days_of_week = pattern_el
                .text_at(&["DaysOfWeek"])
                .unwrap_or_default()
                .split_whitespace()
                .map(parse_day)
                .collect::<EwsResult<_>>()?;
            if let Some(d) = pattern_el.text_at(&["FirstDayOfWeek"]) {
                p.first_day_of_week = parse_day(d)?;
            }
        }
        "AbsoluteMonthlyRecurrence" => {
            p.kind = PatternType::AbsoluteMonthly;
            p.interval = number(pattern_el, "Interval")?;
            p.day_of_month = number(pattern_el, "DayOfMonth")?;
        }
        "RelativeMonthlyRecurrence" => {
            p.kind = PatternType::RelativeMonthly;
            p.interval = number(pattern_el, "Interval")?;
            p.days_of_week = vec![parse_day(
                pattern_el.text_at(&["DaysOfWeek"]).unwrap_or_default(),
            )?];
            p.index = index(pattern_el)?;
        }
        "AbsoluteYearlyRecurrence" => {
            p.kind = PatternType::AbsoluteYearly;
            p.day_of_month = number(pattern_el, "DayOfMonth")?;
            p.month = month(pattern_el)?;
        }
        "RelativeYearlyRecurrence" => {
            p.kind = PatternType::RelativeYearly;
            p.days_of_week = vec![parse_day(
                pattern_el.text_at(&["DaysOfWeek"]).unwrap_or_default(),
            )?];
            p.index = index(pattern_el)?;
            p.month = month(pattern_el)?;
        }
        other => return Err(bad(&format!("the mock does not take {other}"))),
    }
    let (kind, range_el) = ["NoEndRecurrence", "EndDateRecurrence", "NumberedRecurrence"]
        .iter()
        .zip([RangeType::NoEnd, RangeType::EndDate, RangeType::Numbered])
        .find_map(|(name, kind)| el.child(name).map(|e| (kind, e)))
        .ok_or_else(|| bad("no range"))?;
    let date = |name: &str| {
        range_el
            .text_at(&[name])
            .map(|d| d.get(..10).unwrap_or(d).to_string())
            .ok_or_else(|| bad(&format!("{name} is missing")))
    };
    let range = RecurrenceRange {
        kind,
        start_date: date("StartDate")?,
        end_date: match kind {
            RangeType::EndDate => Some(date("EndDate")?),
            _ => None,
        },
        number_of_occurrences: match kind {
            RangeType::Numbered => number(range_el, "NumberOfOccurrences")?,
            _ => 0,
        },
        recurrence_time_zone: None,
    };
    let r = Recurrence { pattern: p, range };
    r.validate().map_err(|e| bad(&e))?;
    Ok(r)
}
