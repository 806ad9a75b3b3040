//! Recurring series: a pattern (how often), a range (from when, until when) and the zone the
//! series is kept in. The same model maps onto Graph's `patternedRecurrence`, EWS's
//! `Recurrence` and iCalendar's `RRULE`.

use serde::{Deserialize, Serialize};
use time::{Date, Month};

use super::TimeZone;

time::serde::format_description!(iso_date, Date, "[year]-[month]-[day]");

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DayOfWeek {
    Sunday,
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
}

impl DayOfWeek {
    pub const ALL: [Self; 7] = [
        Self::Sunday,
        Self::Monday,
        Self::Tuesday,
        Self::Wednesday,
        Self::Thursday,
        Self::Friday,
        Self::Saturday,
    ];

    /// `monday`, `tuesday`, …
    pub fn name(self) -> &'static str {
        match self {
            Self::Sunday => "sunday",
            Self::Monday => "monday",
            Self::Tuesday => "tuesday",
            Self::Wednesday => "wednesday",
            Self::Thursday => "thursday",
            Self::Friday => "friday",
            Self::Saturday => "saturday",
        }
    }

    /// A day by its name or its first three letters, in any case (`mon`, `Monday`).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase();
        if s.len() < 3 {
            return None;
        }
        Self::ALL.into_iter().find(|d| d.name().starts_with(&s))
    }
}

impl From<DayOfWeek> for time::Weekday {
    fn from(d: DayOfWeek) -> Self {
        match d {
            DayOfWeek::Sunday => Self::Sunday,
            DayOfWeek::Monday => Self::Monday,
            DayOfWeek::Tuesday => Self::Tuesday,
            DayOfWeek::Wednesday => Self::Wednesday,
            DayOfWeek::Thursday => Self::Thursday,
            DayOfWeek::Friday => Self::Friday,
            DayOfWeek::Saturday => Self::Saturday,
        }
    }
}

impl From<time::Weekday> for DayOfWeek {
    fn from(d: time::Weekday) -> Self {
        match d {
            time::Weekday::Sunday => Self::Sunday,
            time::Weekday::Monday => Self::Monday,
            time::Weekday::Tuesday => Self::Tuesday,
            time::Weekday::Wednesday => Self::Wednesday,
            time::Weekday::Thursday => Self::Thursday,
            time::Weekday::Friday => Self::Friday,
            time::Weekday::Saturday => Self::Saturday,
        }
    }
}

/// Which week of the month a relative pattern means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeekIndex {
    First,
    Second,
    Third,
    Fourth,
    Last,
}

/// How often a series repeats. `interval` counts the pattern's unit (days, weeks, months,
/// years) between occurrences and is at least 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum RecurrencePattern {
    /// Every `interval` days.
    Daily { interval: u32 },
    /// On `days` every `interval` weeks; weeks start on `first_day_of_week`.
    Weekly {
        interval: u32,
        days: Vec<DayOfWeek>,
        first_day_of_week: DayOfWeek,
    },
    /// On day `day_of_month` every `interval` months.
    AbsoluteMonthly { interval: u32, day_of_month: u8 },
    /// On the `index` one of `days` (the last Friday) every `interval` months.
    RelativeMonthly {
        interval: u32,
        index: WeekIndex,
        days: Vec<DayOfWeek>,
    },
    /// On `month`/`day_of_month` every `interval` years.
    AbsoluteYearly {
        interval: u32,
        #[serde(with = "month_number")]
        month: Month,
        day_of_month: u8,
    },
    /// On the `index` one of `days` in `month` (the first Monday of September) every
    /// `interval` years.
    RelativeYearly {
        interval: u32,
        #[serde(with = "month_number")]
        month: Month,
        index: WeekIndex,
        days: Vec<DayOfWeek>,
    },
}

/// Months as 1–12.
mod month_number {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::Month;

    pub(super) fn serialize<S: Serializer>(m: &Month, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(u8::from(*m))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Month, D::Error> {
        let n = u8::deserialize(d)?;
        Month::try_from(n).map_err(|_| {
            serde::de::Error::custom(format!(
                "`{n}` is not a month; use 1 (January) to 12 (December)"
            ))
        })
    }
}

impl RecurrencePattern {
    pub fn interval(&self) -> u32 {
        match self {
            Self::Daily { interval }
            | Self::Weekly { interval, .. }
            | Self::AbsoluteMonthly { interval, .. }
            | Self::RelativeMonthly { interval, .. }
            | Self::AbsoluteYearly { interval, .. }
            | Self::RelativeYearly { interval, .. } => *interval,
        }
    }

    /// Checks the pattern; the error says what is wrong.
    pub fn validate(&self) -> Result<(), InvalidRecurrence> {
        if self.interval() == 0 {
            return Err(InvalidRecurrence(
                "the interval is 0; a series repeats every 1 or more days, weeks, months or years"
                    .into(),
            ));
        }
        match self {
            Self::Daily { .. } => Ok(()),
            Self::Weekly { days, .. }
            | Self::RelativeMonthly { days, .. }
            | Self::RelativeYearly { days, .. }
                if days.is_empty() =>
            {
                Err(InvalidRecurrence(
                    "the pattern names no day of the week; give at least one (monday, …)".into(),
                ))
            }
            Self::Weekly { .. } | Self::RelativeMonthly { .. } | Self::RelativeYearly { .. } => {
                Ok(())
            }
            Self::AbsoluteMonthly { day_of_month, .. } => day_in_month(*day_of_month, 31),
            Self::AbsoluteYearly {
                month,
                day_of_month,
                ..
            } => day_in_month(*day_of_month, month.length(2024)),
        }
    }
}

/// `day` is a day of a month of at most `max` days (29 February counts: leap years have it).
fn day_in_month(day: u8, max: u8) -> Result<(), InvalidRecurrence> {
    if (1..=max).contains(&day) {
        Ok(())
    } else {
        Err(InvalidRecurrence(format!(
            "day {day} of the month does not exist; use 1 to {max}"
        )))
    }
}

/// From when, and until when, a series repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum RecurrenceRange {
    /// Until `end_date` (inclusive).
    EndDate {
        #[serde(with = "iso_date")]
        start_date: Date,
        #[serde(with = "iso_date")]
        end_date: Date,
    },
    /// For ever.
    NoEnd {
        #[serde(with = "iso_date")]
        start_date: Date,
    },
    /// For `occurrences` occurrences.
    Numbered {
        #[serde(with = "iso_date")]
        start_date: Date,
        occurrences: u32,
    },
}

impl RecurrenceRange {
    pub fn start_date(&self) -> Date {
        match self {
            Self::EndDate { start_date, .. }
            | Self::NoEnd { start_date }
            | Self::Numbered { start_date, .. } => *start_date,
        }
    }

    pub fn validate(&self) -> Result<(), InvalidRecurrence> {
        match self {
            Self::EndDate {
                start_date,
                end_date,
            } if end_date < start_date => Err(InvalidRecurrence(format!(
                "the series ends ({end_date}) before it starts ({start_date})"
            ))),
            Self::Numbered { occurrences: 0, .. } => Err(InvalidRecurrence(
                "the series has 0 occurrences; give 1 or more, or no end".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// A recurrence that cannot be: the message says what is wrong and what would do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid recurrence: {0}")]
pub struct InvalidRecurrence(pub String);

/// A recurring series: checked when built and when read from JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Unchecked")]
pub struct Recurrence {
    pub pattern: RecurrencePattern,
    pub range: RecurrenceRange,
    /// The zone the series is kept in (its dates are local to it); `None`: the event's start's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<TimeZone>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Unchecked {
    pattern: RecurrencePattern,
    range: RecurrenceRange,
    #[serde(default)]
    time_zone: Option<TimeZone>,
}

impl TryFrom<Unchecked> for Recurrence {
    type Error = InvalidRecurrence;
    fn try_from(u: Unchecked) -> Result<Self, Self::Error> {
        Self::new(u.pattern, u.range, u.time_zone)
    }
}

impl Recurrence {
    /// A series, checked: interval 1 or more, days of the month that exist, at least one day of
    /// the week where the pattern needs days, a range that ends after it starts.
    pub fn new(
        pattern: RecurrencePattern,
        range: RecurrenceRange,
        time_zone: Option<TimeZone>,
    ) -> Result<Self, InvalidRecurrence> {
        let r = Self {
            pattern,
            range,
            time_zone,
        };
        r.validate()?;
        Ok(r)
    }

    /// Checks a series that was changed after it was built.
    pub fn validate(&self) -> Result<(), InvalidRecurrence> {
        self.pattern.validate()?;
        self.range.validate()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::date;

    use super::*;

    fn weekly(days: Vec<DayOfWeek>) -> RecurrencePattern {
        RecurrencePattern::Weekly {
            interval: 1,
            days,
            first_day_of_week: DayOfWeek::Monday,
        }
    }

    fn no_end() -> RecurrenceRange {
        RecurrenceRange::NoEnd {
            start_date: date!(2026 - 11 - 02),
        }
    }

    #[test]
    fn valid_series_are_built() {
        let r = Recurrence::new(weekly(vec![DayOfWeek::Monday]), no_end(), None).unwrap();
        assert_eq!(r.pattern.interval(), 1);
        assert_eq!(r.range.start_date(), date!(2026 - 11 - 02));
        let feb29 = RecurrencePattern::AbsoluteYearly {
            interval: 4,
            month: Month::February,
            day_of_month: 29,
        };
        assert!(Recurrence::new(feb29, no_end(), None).is_ok());
    }

    #[test]
    fn invalid_series_are_refused_with_the_reason() {
        let cases = [
            (RecurrencePattern::Daily { interval: 0 }, "interval is 0"),
            (weekly(vec![]), "no day of the week"),
            (
                RecurrencePattern::AbsoluteMonthly {
                    interval: 1,
                    day_of_month: 32,
                },
                "day 32 of the month does not exist; use 1 to 31",
            ),
            (
                RecurrencePattern::AbsoluteMonthly {
                    interval: 1,
                    day_of_month: 0,
                },
                "day 0",
            ),
            (
                RecurrencePattern::AbsoluteYearly {
                    interval: 1,
                    month: Month::February,
                    day_of_month: 30,
                },
                "use 1 to 29",
            ),
            (
                RecurrencePattern::RelativeYearly {
                    interval: 1,
                    month: Month::September,
                    index: WeekIndex::First,
                    days: vec![],
                },
                "no day of the week",
            ),
        ];
        for (pattern, expected) in cases {
            let err = Recurrence::new(pattern.clone(), no_end(), None).unwrap_err();
            assert!(err.to_string().contains(expected), "{pattern:?}: {err}");
        }
        let backwards = RecurrenceRange::EndDate {
            start_date: date!(2026 - 11 - 02),
            end_date: date!(2026 - 11 - 01),
        };
        let err =
            Recurrence::new(RecurrencePattern::Daily { interval: 1 }, backwards, None).unwrap_err();
        assert!(
            err.to_string()
                .contains("ends (2026-11-01) before it starts"),
            "{err}"
        );
        let none = RecurrenceRange::Numbered {
            start_date: date!(2026 - 11 - 02),
            occurrences: 0,
        };
        assert!(Recurrence::new(RecurrencePattern::Daily { interval: 1 }, none, None).is_err());
    }

    #[test]
    fn json_round_trips_and_is_checked() {
        let r = Recurrence::new(
            RecurrencePattern::RelativeMonthly {
                interval: 1,
                index: WeekIndex::Last,
                days: vec![DayOfWeek::Friday],
            },
            RecurrenceRange::Numbered {
                start_date: date!(2026 - 11 - 27),
                occurrences: 10,
            },
            Some(TimeZone::parse("Europe/Berlin").unwrap()),
        )
        .unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            json!({
                "pattern": {"type": "relative-monthly", "interval": 1, "index": "last", "days": ["friday"]},
                "range": {"type": "numbered", "start_date": "2026-11-27", "occurrences": 10},
                "time_zone": "Europe/Berlin",
            })
        );
        assert_eq!(serde_json::from_value::<Recurrence>(v).unwrap(), r);

        let yearly = json!({
            "pattern": {"type": "absolute-yearly", "interval": 1, "month": 13, "day_of_month": 1},
            "range": {"type": "no-end", "start_date": "2026-01-01"},
        });
        let err = serde_json::from_value::<Recurrence>(yearly).unwrap_err();
        assert!(err.to_string().contains("`13` is not a month"), "{err}");
        let zero = json!({
            "pattern": {"type": "daily", "interval": 0},
            "range": {"type": "no-end", "start_date": "2026-01-01"},
        });
        let err = serde_json::from_value::<Recurrence>(zero).unwrap_err();
        assert!(err.to_string().contains("interval is 0"), "{err}");
    }

    #[test]
    fn days_parse_by_name_or_abbreviation() {
        assert_eq!(DayOfWeek::parse("Mon"), Some(DayOfWeek::Monday));
        assert_eq!(DayOfWeek::parse("thursday"), Some(DayOfWeek::Thursday));
        assert_eq!(DayOfWeek::parse("th"), None);
        assert_eq!(DayOfWeek::parse("funday"), None);
        assert_eq!(
            time::Weekday::from(DayOfWeek::Sunday),
            time::Weekday::Sunday
        );
    }
}
