//! EWS's recurrence patterns (`t:Recurrence`) mapped both ways onto the neutral
//! [`Recurrence`]: daily, weekly, absolute and relative monthly and yearly patterns, and the
//! no-end, end-date and numbered ranges.

use time::Month;

use super::WireError;
use super::envelope::date;
use super::response::{parse_date, parse_num};
use super::xml::{Ns, Reader, Writer};
use crate::mailbox::{
    DayOfWeek, MailboxError, Recurrence, RecurrencePattern, RecurrenceRange, TimeZone, WeekIndex,
};

/// Checks that EWS can carry a recurrence: a relative pattern names one day, or the sets
/// EWS has names for (every day, weekdays, weekend days).
pub fn check_recurrence(r: &Recurrence) -> Result<(), MailboxError> {
    r.validate()?;
    match &r.pattern {
        RecurrencePattern::RelativeMonthly { days, .. }
        | RecurrencePattern::RelativeYearly { days, .. }
            if relative_days(days).is_none() =>
        {
            Err(MailboxError::Invalid(
                "EWS repeats a relative pattern on one day, every day, weekdays or weekend days; \
                 give one of those"
                    .into(),
            ))
        }
        _ => Ok(()),
    }
}

fn day_name(d: DayOfWeek) -> &'static str {
    match d {
        DayOfWeek::Sunday => "Sunday",
        DayOfWeek::Monday => "Monday",
        DayOfWeek::Tuesday => "Tuesday",
        DayOfWeek::Wednesday => "Wednesday",
        DayOfWeek::Thursday => "Thursday",
        DayOfWeek::Friday => "Friday",
        DayOfWeek::Saturday => "Saturday",
    }
}

const WEEKDAYS: [DayOfWeek; 5] = [
    DayOfWeek::Monday,
    DayOfWeek::Tuesday,
    DayOfWeek::Wednesday,
    DayOfWeek::Thursday,
    DayOfWeek::Friday,
];
const WEEKEND: [DayOfWeek; 2] = [DayOfWeek::Saturday, DayOfWeek::Sunday];

fn same_set(days: &[DayOfWeek], set: &[DayOfWeek]) -> bool {
    set.iter().all(|d| days.contains(d)) && days.iter().all(|d| set.contains(d))
}

/// EWS's one `DayOfWeekType` for a relative pattern's days.
fn relative_days(days: &[DayOfWeek]) -> Option<&'static str> {
    match days {
        [one] => Some(day_name(*one)),
        _ if same_set(days, &DayOfWeek::ALL) => Some("Day"),
        _ if same_set(days, &WEEKDAYS) => Some("Weekday"),
        _ if same_set(days, &WEEKEND) => Some("WeekendDay"),
        _ => None,
    }
}

fn week_index(i: WeekIndex) -> &'static str {
    match i {
        WeekIndex::First => "First",
        WeekIndex::Second => "Second",
        WeekIndex::Third => "Third",
        WeekIndex::Fourth => "Fourth",
        WeekIndex::Last => "Last",
    }
}

const MONTHS: [(Month, &str); 12] = [
    (Month::January, "January"),
    (Month::February, "February"),
    (Month::March, "March"),
    (Month::April, "April"),
    (Month::May, "May"),
    (Month::June, "June"),
    (Month::July, "July"),
    (Month::August, "August"),
    (Month::September, "September"),
    (Month::October, "October"),
    (Month::November, "November"),
    (Month::December, "December"),
];

fn month_name(m: Month) -> &'static str {
    MONTHS
        .iter()
        .find(|(x, _)| *x == m)
        .map_or("January", |(_, n)| n)
}

/// `t:Recurrence`. EWS's yearly patterns have no interval: every `n` (> 1) years goes out
/// as every `12 n` months on the same day, which EWS anchors at the series' start date.
pub(super) fn write_recurrence(w: &mut Writer, r: &Recurrence) {
    w.open("t:Recurrence", &[]);
    let interval = |w: &mut Writer, n: u32| w.leaf("t:Interval", &n.max(1).to_string());
    match &r.pattern {
        RecurrencePattern::Daily { interval: n } => {
            w.open("t:DailyRecurrence", &[]);
            interval(w, *n);
            w.close("t:DailyRecurrence");
        }
        RecurrencePattern::Weekly {
            interval: n,
            days,
            first_day_of_week,
        } => {
            w.open("t:WeeklyRecurrence", &[]);
            interval(w, *n);
            let days: Vec<&str> = days.iter().map(|d| day_name(*d)).collect();
            w.leaf("t:DaysOfWeek", &days.join(" "));
            w.leaf("t:FirstDayOfWeek", day_name(*first_day_of_week));
            w.close("t:WeeklyRecurrence");
        }
        RecurrencePattern::AbsoluteMonthly {
            interval: n,
            day_of_month,
        } => {
            w.open("t:AbsoluteMonthlyRecurrence", &[]);
            interval(w, *n);
            w.leaf("t:DayOfMonth", &day_of_month.to_string());
            w.close("t:AbsoluteMonthlyRecurrence");
        }
        RecurrencePattern::RelativeMonthly {
            interval: n,
            index,
            days,
        } => {
            w.open("t:RelativeMonthlyRecurrence", &[]);
            interval(w, *n);
            w.leaf("t:DaysOfWeek", relative_days(days).unwrap_or("Day"));
            w.leaf("t:DayOfWeekIndex", week_index(*index));
            w.close("t:RelativeMonthlyRecurrence");
        }
        RecurrencePattern::AbsoluteYearly {
            interval: n,
            month,
            day_of_month,
        } if *n <= 1 => {
            w.open("t:AbsoluteYearlyRecurrence", &[]);
            w.leaf("t:DayOfMonth", &day_of_month.to_string());
            w.leaf("t:Month", month_name(*month));
            w.close("t:AbsoluteYearlyRecurrence");
        }
        RecurrencePattern::AbsoluteYearly {
            interval: n,
            day_of_month,
            ..
        } => {
            w.open("t:AbsoluteMonthlyRecurrence", &[]);
            interval(w, n.saturating_mul(12));
            w.leaf("t:DayOfMonth", &day_of_month.to_string());
            w.close("t:AbsoluteMonthlyRecurrence");
        }
        RecurrencePattern::RelativeYearly {
            interval: n,
            month,
            index,
            days,
        } if *n <= 1 => {
            w.open("t:RelativeYearlyRecurrence", &[]);
            w.leaf("t:DaysOfWeek", relative_days(days).unwrap_or("Day"));
            w.leaf("t:DayOfWeekIndex", week_index(*index));
            w.leaf("t:Month", month_name(*month));
            w.close("t:RelativeYearlyRecurrence");
        }
        RecurrencePattern::RelativeYearly {
            interval: n,
            index,
            days,
            ..
        } => {
            w.open("t:RelativeMonthlyRecurrence", &[]);
            interval(w, n.saturating_mul(12));
            w.leaf("t:DaysOfWeek", relative_days(days).unwrap_or("Day"));
            w.leaf("t:DayOfWeekIndex", week_index(*index));
            w.close("t:RelativeMonthlyRecurrence");
        }
    }
    match &r.range {
        RecurrenceRange::NoEnd { start_date } => {
            w.open("t:NoEndRecurrence", &[]);
            w.leaf("t:StartDate", &date(*start_date));
            w.close("t:NoEndRecurrence");
        }
        RecurrenceRange::EndDate {
            start_date,
            end_date,
        } => {
            w.open("t:EndDateRecurrence", &[]);
            w.leaf("t:StartDate", &date(*start_date));
            w.leaf("t:EndDate", &date(*end_date));
            w.close("t:EndDateRecurrence");
        }
        RecurrenceRange::Numbered {
            start_date,
            occurrences,
        } => {
            w.open("t:NumberedRecurrence", &[]);
            w.leaf("t:StartDate", &date(*start_date));
            w.leaf("t:NumberOfOccurrences", &occurrences.to_string());
            w.close("t:NumberedRecurrence");
        }
    }
    w.close("t:Recurrence");
}

fn parse_days(s: &str) -> Result<Vec<DayOfWeek>, WireError> {
    let mut out = Vec::new();
    for word in s.split_whitespace() {
        let add: &[DayOfWeek] = match word {
            "Day" => &DayOfWeek::ALL,
            "Weekday" => &WEEKDAYS,
            "WeekendDay" => &WEEKEND,
            other => match DayOfWeek::ALL.iter().find(|d| day_name(**d) == other) {
                Some(d) => std::slice::from_ref(d),
                None => return Err(WireError::malformed("unknown DaysOfWeek")),
            },
        };
        for d in add {
            if !out.contains(d) {
                out.push(*d);
            }
        }
    }
    if out.is_empty() {
        return Err(WireError::malformed("empty DaysOfWeek"));
    }
    Ok(out)
}

/// A `t:Recurrence` (the reader is inside it).
pub(super) fn read_recurrence(
    r: &mut Reader<'_>,
    zone: Option<TimeZone>,
) -> Result<Recurrence, WireError> {
    let mut pattern = None;
    let mut range = None;
    while let Some(e) = r.child()? {
        if e.ns != Ns::Types {
            r.skip()?;
            continue;
        }
        let kind = e.local().to_owned();
        let mut interval = 1u32;
        let mut days = Vec::new();
        let mut first_day = DayOfWeek::Sunday;
        let mut index = WeekIndex::First;
        let mut month = Month::January;
        let mut day_of_month = 1u8;
        let mut start = None;
        let mut end = None;
        let mut count = 0u32;
        while let Some(f) = r.child()? {
            let text = r.text()?;
            match f.local() {
                "Interval" => interval = parse_num(&text, "Interval")?,
                "DaysOfWeek" => days = parse_days(&text)?,
                "FirstDayOfWeek" => {
                    first_day = *parse_days(&text)?.first().unwrap_or(&DayOfWeek::Sunday)
                }
                "DayOfWeekIndex" => {
                    index = match text.trim() {
                        "First" => WeekIndex::First,
                        "Second" => WeekIndex::Second,
                        "Third" => WeekIndex::Third,
                        "Fourth" => WeekIndex::Fourth,
                        "Last" => WeekIndex::Last,
                        _ => return Err(WireError::malformed("unknown DayOfWeekIndex")),
                    }
                }
                "Month" => {
                    month = MONTHS
                        .iter()
                        .find(|(_, n)| *n == text.trim())
                        .map(|(m, _)| *m)
                        .ok_or_else(|| WireError::malformed("unknown Month"))?;
                }
                "DayOfMonth" => day_of_month = parse_num(&text, "DayOfMonth")?,
                "StartDate" => start = Some(parse_date(&text, "StartDate")?),
                "EndDate" => end = Some(parse_date(&text, "EndDate")?),
                "NumberOfOccurrences" => count = parse_num(&text, "NumberOfOccurrences")?,
                _ => {}
            }
        }
        match kind.as_str() {
            "DailyRecurrence" => pattern = Some(RecurrencePattern::Daily { interval }),
            "WeeklyRecurrence" => {
                pattern = Some(RecurrencePattern::Weekly {
                    interval,
                    days,
                    first_day_of_week: first_day,
                });
            }
            "AbsoluteMonthlyRecurrence" => {
                pattern = Some(RecurrencePattern::AbsoluteMonthly {
                    interval,
                    day_of_month,
                });
            }
            "RelativeMonthlyRecurrence" => {
                pattern = Some(RecurrencePattern::RelativeMonthly {
                    interval,
                    index,
                    days,
                });
            }
            "AbsoluteYearlyRecurrence" => {
                pattern = Some(RecurrencePattern::AbsoluteYearly {
                    interval: 1,
                    month,
                    day_of_month,
                });
            }
            "RelativeYearlyRecurrence" => {
                pattern = Some(RecurrencePattern::RelativeYearly {
                    interval: 1,
                    month,
                    index,
                    days,
                });
            }
            "NoEndRecurrence" | "EndDateRecurrence" | "NumberedRecurrence" => {
                let start_date = start
                    .ok_or_else(|| WireError::malformed("a recurrence range without StartDate"))?;
                range = Some(match (kind.as_str(), end) {
                    ("EndDateRecurrence", Some(end_date)) => RecurrenceRange::EndDate {
                        start_date,
                        end_date,
                    },
                    ("EndDateRecurrence", None) => {
                        return Err(WireError::malformed("EndDateRecurrence without EndDate"));
                    }
                    ("NumberedRecurrence", _) => RecurrenceRange::Numbered {
                        start_date,
                        occurrences: count,
                    },
                    _ => RecurrenceRange::NoEnd { start_date },
                });
            }
            _ => {
                return Err(WireError::malformed(format!(
                    "a recurrence EWS does not define: {kind}"
                )));
            }
        }
    }
    let (Some(pattern), Some(range)) = (pattern, range) else {
        return Err(WireError::malformed(
            "a recurrence without a pattern or a range",
        ));
    };
    Recurrence::new(pattern, range, zone).map_err(|e| WireError::malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;
    use crate::ews::wire::xml::TYPES;

    fn round_trip(r: &Recurrence) -> Recurrence {
        let mut w = Writer::default();
        write_recurrence(&mut w, r);
        let xml = format!("<x xmlns:t=\"{TYPES}\">{}</x>", w.finish());
        let mut reader = Reader::new(&xml);
        reader.root().unwrap();
        reader.child().unwrap().unwrap();
        read_recurrence(&mut reader, r.time_zone).unwrap()
    }

    #[test]
    fn every_pattern_and_range_round_trips() {
        use DayOfWeek::*;
        let patterns = [
            RecurrencePattern::Daily { interval: 3 },
            RecurrencePattern::Weekly {
                interval: 2,
                days: vec![Monday, Friday],
                first_day_of_week: Sunday,
            },
            RecurrencePattern::AbsoluteMonthly {
                interval: 1,
                day_of_month: 15,
            },
            RecurrencePattern::RelativeMonthly {
                interval: 2,
                index: WeekIndex::Last,
                days: vec![Friday],
            },
            RecurrencePattern::AbsoluteYearly {
                interval: 1,
                month: Month::December,
                day_of_month: 24,
            },
            RecurrencePattern::RelativeYearly {
                interval: 1,
                month: Month::September,
                index: WeekIndex::First,
                days: vec![Monday],
            },
        ];
        let ranges = [
            RecurrenceRange::NoEnd {
                start_date: date!(2026 - 11 - 02),
            },
            RecurrenceRange::EndDate {
                start_date: date!(2026 - 11 - 02),
                end_date: date!(2027 - 11 - 02),
            },
            RecurrenceRange::Numbered {
                start_date: date!(2026 - 11 - 02),
                occurrences: 7,
            },
        ];
        let berlin = TimeZone::parse("Europe/Berlin").ok();
        for p in patterns {
            for range in &ranges {
                let r = Recurrence::new(p.clone(), range.clone(), berlin).unwrap();
                assert_eq!(round_trip(&r), r);
            }
        }
    }

    #[test]
    fn what_ews_has_no_name_for_is_mapped_or_refused() {
        let start = RecurrenceRange::NoEnd {
            start_date: date!(2026 - 03 - 01),
        };
        // Every 2 years on 1 March: every 24 months from the start date.
        let biennial = RecurrencePattern::AbsoluteYearly {
            interval: 2,
            month: Month::March,
            day_of_month: 1,
        };
        let r = Recurrence::new(biennial, start.clone(), None).unwrap();
        assert_eq!(
            round_trip(&r).pattern,
            RecurrencePattern::AbsoluteMonthly {
                interval: 24,
                day_of_month: 1
            }
        );
        // Weekdays come back as the five days.
        let weekdays = RecurrencePattern::RelativeMonthly {
            interval: 1,
            index: WeekIndex::First,
            days: WEEKDAYS.to_vec(),
        };
        let r = Recurrence::new(weekdays, start.clone(), None).unwrap();
        assert_eq!(round_trip(&r), r);
        let two = RecurrencePattern::RelativeMonthly {
            interval: 1,
            index: WeekIndex::First,
            days: vec![DayOfWeek::Monday, DayOfWeek::Tuesday],
        };
        let r = Recurrence::new(two, start, None).unwrap();
        assert!(check_recurrence(&r).is_err());
    }
}
