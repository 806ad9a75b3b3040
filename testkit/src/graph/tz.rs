//! Time zones Graph accepts by Windows or IANA name, with hardcoded DST rules: the EU rule
//! (last Sunday of March 01:00 UTC to last Sunday of October 01:00 UTC) and the US rule (second
//! Sunday of March 02:00 local to first Sunday of November 02:00 local).

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dst {
    None,
    Eu,
    Us,
}

/// A supported time zone.
#[derive(Debug)]
pub(crate) struct Zone {
    /// The Windows name, what Graph reports in `workingHours`.
    pub windows: &'static str,
    aliases: &'static [&'static str],
    /// Standard offset from UTC, minutes.
    standard: i32,
    dst: Dst,
}

static ZONES: &[Zone] = &[
    Zone {
        windows: "UTC",
        aliases: &[
            "Etc/UTC",
            "Etc/GMT",
            "GMT",
            "Coordinated Universal Time",
            "tzone://Microsoft/Utc",
            "Z",
        ],
        standard: 0,
        dst: Dst::None,
    },
    Zone {
        windows: "GMT Standard Time",
        aliases: &["Europe/London", "Europe/Dublin", "Europe/Lisbon"],
        standard: 0,
        dst: Dst::Eu,
    },
    Zone {
        windows: "W. Europe Standard Time",
        aliases: &[
            "Europe/Berlin",
            "Europe/Amsterdam",
            "Europe/Rome",
            "Europe/Stockholm",
            "Europe/Vienna",
            "Europe/Zurich",
            "Europe/Oslo",
        ],
        standard: 60,
        dst: Dst::Eu,
    },
    Zone {
        windows: "Romance Standard Time",
        aliases: &[
            "Europe/Paris",
            "Europe/Brussels",
            "Europe/Madrid",
            "Europe/Copenhagen",
        ],
        standard: 60,
        dst: Dst::Eu,
    },
    Zone {
        windows: "Central Europe Standard Time",
        aliases: &[
            "Europe/Prague",
            "Europe/Budapest",
            "Europe/Belgrade",
            "Europe/Bratislava",
        ],
        standard: 60,
        dst: Dst::Eu,
    },
    Zone {
        windows: "Central European Standard Time",
        aliases: &["Europe/Warsaw", "Europe/Zagreb", "Europe/Sarajevo"],
        standard: 60,
        dst: Dst::Eu,
    },
    Zone {
        windows: "GTB Standard Time",
        aliases: &["Europe/Athens", "Europe/Bucharest"],
        standard: 120,
        dst: Dst::Eu,
    },
    Zone {
        windows: "FLE Standard Time",
        aliases: &[
            "Europe/Helsinki",
            "Europe/Kiev",
            "Europe/Kyiv",
            "Europe/Riga",
            "Europe/Vilnius",
            "Europe/Tallinn",
            "Europe/Sofia",
        ],
        standard: 120,
        dst: Dst::Eu,
    },
    Zone {
        windows: "Eastern Standard Time",
        aliases: &[
            "America/New_York",
            "America/Detroit",
            "America/Toronto",
            "US/Eastern",
        ],
        standard: -300,
        dst: Dst::Us,
    },
    Zone {
        windows: "Central Standard Time",
        aliases: &["America/Chicago", "US/Central"],
        standard: -360,
        dst: Dst::Us,
    },
    Zone {
        windows: "Mountain Standard Time",
        aliases: &["America/Denver", "US/Mountain"],
        standard: -420,
        dst: Dst::Us,
    },
    Zone {
        windows: "US Mountain Standard Time",
        aliases: &["America/Phoenix"],
        standard: -420,
        dst: Dst::None,
    },
    Zone {
        windows: "Pacific Standard Time",
        aliases: &["America/Los_Angeles", "America/Vancouver", "US/Pacific"],
        standard: -480,
        dst: Dst::Us,
    },
    Zone {
        windows: "Alaskan Standard Time",
        aliases: &["America/Anchorage"],
        standard: -540,
        dst: Dst::Us,
    },
    Zone {
        windows: "Hawaiian Standard Time",
        aliases: &["Pacific/Honolulu"],
        standard: -600,
        dst: Dst::None,
    },
    Zone {
        windows: "India Standard Time",
        aliases: &["Asia/Kolkata", "Asia/Calcutta"],
        standard: 330,
        dst: Dst::None,
    },
    Zone {
        windows: "China Standard Time",
        aliases: &["Asia/Shanghai", "Asia/Hong_Kong"],
        standard: 480,
        dst: Dst::None,
    },
    Zone {
        windows: "Singapore Standard Time",
        aliases: &["Asia/Singapore"],
        standard: 480,
        dst: Dst::None,
    },
    Zone {
        windows: "Tokyo Standard Time",
        aliases: &["Asia/Tokyo"],
        standard: 540,
        dst: Dst::None,
    },
];

/// The zone with this Windows or IANA name (case-insensitive).
pub(crate) fn find(name: &str) -> Option<&'static Zone> {
    let name = name.trim();
    ZONES.iter().find(|z| {
        z.windows.eq_ignore_ascii_case(name)
            || z.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    })
}

/// UTC.
pub(crate) fn utc() -> &'static Zone {
    &ZONES[0]
}

fn nth_sunday(year: i32, month: Month, n: u8) -> Option<Date> {
    let first = Date::from_calendar_date(year, month, 1).ok()?;
    let offset = (7 - first.weekday().number_days_from_sunday()) % 7;
    first.checked_add(time::Duration::days(
        i64::from(offset) + 7 * i64::from(n.saturating_sub(1)),
    ))
}

fn last_sunday(year: i32, month: Month) -> Option<Date> {
    let last = Date::from_calendar_date(year, month, month.length(year)).ok()?;
    last.checked_sub(time::Duration::days(i64::from(
        last.weekday().number_days_from_sunday(),
    )))
}

fn at(date: Date, hour: u8, minus_minutes: i32) -> Option<OffsetDateTime> {
    let time = Time::from_hms(hour, 0, 0).ok()?;
    PrimitiveDateTime::new(date, time)
        .assume_utc()
        .checked_sub(time::Duration::minutes(i64::from(minus_minutes)))
}

impl Zone {
    /// Whether daylight saving time is in effect at this instant.
    fn is_dst(&self, instant: OffsetDateTime) -> bool {
        let utc = instant.to_offset(UtcOffset::UTC);
        let year = utc.year();
        let window = match self.dst {
            Dst::None => None,
            Dst::Eu => last_sunday(year, Month::March)
                .and_then(|d| at(d, 1, 0))
                .zip(last_sunday(year, Month::October).and_then(|d| at(d, 1, 0))),
            // 02:00 local standard time, and 02:00 local daylight time (= 01:00 standard).
            Dst::Us => nth_sunday(year, Month::March, 2)
                .and_then(|d| at(d, 2, self.standard))
                .zip(nth_sunday(year, Month::November, 1).and_then(|d| at(d, 1, self.standard))),
        };
        window.is_some_and(|(start, end)| utc >= start && utc < end)
    }

    /// The offset from UTC at this instant, minutes.
    pub(crate) fn offset_minutes(&self, instant: OffsetDateTime) -> i32 {
        if self.is_dst(instant) {
            self.standard + 60
        } else {
            self.standard
        }
    }

    /// The local wall-clock time of an instant.
    pub(crate) fn to_local(&self, instant: OffsetDateTime) -> PrimitiveDateTime {
        let shifted = instant
            .to_offset(UtcOffset::UTC)
            .checked_add(time::Duration::minutes(i64::from(
                self.offset_minutes(instant),
            )))
            .unwrap_or(instant);
        PrimitiveDateTime::new(shifted.date(), shifted.time())
    }

    /// The instant of a local wall-clock time (in a DST overlap, the first one; in a gap, as
    /// if standard time).
    pub(crate) fn to_utc(&self, local: PrimitiveDateTime) -> OffsetDateTime {
        let naive = local.assume_utc();
        if self.dst != Dst::None
            && let Some(candidate) =
                naive.checked_sub(time::Duration::minutes(i64::from(self.standard + 60)))
            && self.is_dst(candidate)
        {
            return candidate;
        }
        naive
            .checked_sub(time::Duration::minutes(i64::from(self.standard)))
            .unwrap_or(naive)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn eu_and_us_rules_switch_on_the_right_days() {
        let berlin = find("Europe/Berlin").unwrap();
        assert_eq!(berlin.windows, "W. Europe Standard Time");
        assert!(std::ptr::eq(
            find("w. europe standard time").unwrap(),
            berlin
        ));
        // 2026: DST from 29 March 01:00 UTC to 25 October 01:00 UTC.
        assert_eq!(berlin.offset_minutes(datetime!(2026-03-29 00:59 UTC)), 60);
        assert_eq!(berlin.offset_minutes(datetime!(2026-03-29 01:00 UTC)), 120);
        assert_eq!(berlin.offset_minutes(datetime!(2026-10-25 00:59 UTC)), 120);
        assert_eq!(berlin.offset_minutes(datetime!(2026-10-25 01:00 UTC)), 60);

        let new_york = find("Eastern Standard Time").unwrap();
        // 2026: DST from 8 March 07:00 UTC to 1 November 06:00 UTC.
        assert_eq!(
            new_york.offset_minutes(datetime!(2026-03-08 06:59 UTC)),
            -300
        );
        assert_eq!(
            new_york.offset_minutes(datetime!(2026-03-08 07:00 UTC)),
            -240
        );
        assert_eq!(
            new_york.offset_minutes(datetime!(2026-11-01 05:59 UTC)),
            -240
        );
        assert_eq!(
            new_york.offset_minutes(datetime!(2026-11-01 06:00 UTC)),
            -300
        );

        let pacific = find("Pacific Standard Time").unwrap();
        assert_eq!(
            pacific.to_utc(datetime!(2026-07-01 09:00)),
            datetime!(2026-07-01 16:00 UTC)
        );
        assert_eq!(
            pacific.to_local(datetime!(2026-12-01 17:00 UTC)),
            datetime!(2026-12-01 09:00)
        );
        // In the fall-back overlap the first (daylight) instant wins.
        assert_eq!(
            new_york.to_utc(datetime!(2026-11-01 01:30)),
            datetime!(2026-11-01 05:30 UTC)
        );
        assert!(find("Mars/Olympus_Mons").is_none());
    }
}
