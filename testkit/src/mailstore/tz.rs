//! Time zones Graph accepts, by Windows or IANA name: the tz database compiled into chrono-tz
//! for the rules, CLDR's Windows-zone table (windows-timezones) for the names, both ways.
//!
//! CLDR lists some zones under old IANA names only (`India Standard Time` → `Asia/Calcutta`,
//! `FLE Standard Time` → `Europe/Kiev`), so a current name (`Asia/Kolkata`, `Europe/Kyiv`) has
//! no Windows zone of its own. The tz database's links (`tz/links.txt`, every `Link` line of the
//! tzdata release chrono-tz carries) bridge them: a zone is looked up under its own name, then
//! under the zone it links to, then under every other name linked to that zone.
//!
//! Exchange keeps time zones as Windows zones, so an IANA name CLDR cannot map to one
//! (`Antarctica/Troll`) is as unsupported as a made-up name.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{
    DateTime, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset as _, TimeZone as _,
};
use chrono_tz::Tz;
use time::{Month, OffsetDateTime, PrimitiveDateTime, Time};
use windows_timezones::WindowsTimezone;

/// `Link TARGET NAME` lines of the tz database (see the file's header).
const LINKS_TXT: &str = include_str!("tz/links.txt");

/// `(link name, target)`, e.g. `("Asia/Calcutta", "Asia/Kolkata")`.
static LINKS: LazyLock<Vec<(&'static str, &'static str)>> = LazyLock::new(|| {
    LINKS_TXT
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("Link"), Some(target), Some(name)) => Some((name, target)),
                _ => None,
            }
        })
        .collect()
});

/// Every accepted name, lower case: IANA names, Windows names, and Outlook's UTC alias.
static NAMES: LazyLock<HashMap<String, Zone>> = LazyLock::new(|| {
    let mut names = HashMap::new();
    for tz in chrono_tz::TZ_VARIANTS {
        if let Some(windows) = windows_of(tz) {
            names.insert(tz.name().to_ascii_lowercase(), Zone { tz, windows });
        }
    }
    let windows: Vec<WindowsTimezone> = names.values().map(|z| z.windows).collect();
    for w in windows {
        names.insert(
            w.name().to_ascii_lowercase(),
            Zone {
                tz: Tz::from(w),
                windows: w,
            },
        );
    }
    names.insert("tzone://microsoft/utc".into(), utc());
    names
});

/// The Windows zone CLDR gives an IANA zone, through the tz database's links when CLDR knows
/// the zone under another of its names.
fn windows_of(tz: Tz) -> Option<WindowsTimezone> {
    if let Ok(w) = WindowsTimezone::try_from(tz) {
        return Some(w);
    }
    let name = tz.name();
    let target = LINKS
        .iter()
        .find(|(link, _)| *link == name)
        .map_or(name, |(_, target)| *target);
    std::iter::once(target)
        .chain(
            LINKS
                .iter()
                .filter(|(_, t)| *t == target)
                .map(|(link, _)| *link),
        )
        .filter_map(|candidate| candidate.parse::<Tz>().ok())
        .find_map(|candidate| WindowsTimezone::try_from(candidate).ok())
}

/// A time zone Graph accepts: the tz database's rules and the Windows zone Exchange keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Zone {
    tz: Tz,
    windows: WindowsTimezone,
}

/// The zone with this Windows or IANA name (ignoring case and surrounding blanks).
pub(crate) fn find(name: &str) -> Option<Zone> {
    NAMES.get(&name.trim().to_ascii_lowercase()).copied()
}

/// UTC.
pub(crate) fn utc() -> Zone {
    Zone {
        tz: Tz::UTC,
        windows: WindowsTimezone::Utc,
    }
}

/// An instant as chrono's UTC date-time (`None` outside chrono's range, which is wider).
pub(crate) fn to_chrono(t: OffsetDateTime) -> Option<DateTime<chrono::Utc>> {
    DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond())
}

/// A chrono instant as `time`'s (`None` outside `time`'s range, years ±9999).
pub(crate) fn from_chrono<Z: chrono::TimeZone>(t: &DateTime<Z>) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(t.timestamp())
        .ok()?
        .replace_nanosecond(t.timestamp_subsec_nanos())
        .ok()
}

pub(crate) fn naive(local: PrimitiveDateTime) -> Option<NaiveDateTime> {
    let date = NaiveDate::from_ymd_opt(
        local.year(),
        u32::from(u8::from(local.month())),
        u32::from(local.day()),
    )?;
    let time = NaiveTime::from_hms_nano_opt(
        u32::from(local.hour()),
        u32::from(local.minute()),
        u32::from(local.second()),
        local.nanosecond(),
    )?;
    Some(date.and_time(time))
}

pub(crate) fn primitive(local: &NaiveDateTime) -> Option<PrimitiveDateTime> {
    use chrono::{Datelike as _, Timelike as _};
    let month = Month::try_from(u8::try_from(local.month()).ok()?).ok()?;
    let date = time::Date::from_calendar_date(local.year(), month, u8::try_from(local.day()).ok()?)
        .ok()?;
    let time = Time::from_hms_nano(
        u8::try_from(local.hour()).ok()?,
        u8::try_from(local.minute()).ok()?,
        u8::try_from(local.second()).ok()?,
        local.nanosecond(),
    )
    .ok()?;
    Some(PrimitiveDateTime::new(date, time))
}

impl Zone {
    /// The Windows name, what Exchange keeps and Graph reports (`workingHours`).
    pub(crate) fn windows_name(self) -> &'static str {
        self.windows.name()
    }

    /// The tz database zone (a Windows name gives CLDR's zone for it, e.g. `Europe/Berlin`).
    pub(crate) fn tz(self) -> Tz {
        self.tz
    }

    /// The offset from UTC at this instant, minutes.
    #[cfg(test)]
    pub(crate) fn offset_minutes(self, instant: OffsetDateTime) -> i32 {
        to_chrono(instant).map_or(0, |t| {
            self.tz
                .offset_from_utc_datetime(&t.naive_utc())
                .fix()
                .local_minus_utc()
                / 60
        })
    }

    /// The local wall-clock time of an instant.
    pub(crate) fn to_local(self, instant: OffsetDateTime) -> PrimitiveDateTime {
        to_chrono(instant)
            .and_then(|t| primitive(&t.with_timezone(&self.tz).naive_local()))
            .unwrap_or_else(|| PrimitiveDateTime::new(instant.date(), instant.time()))
    }

    /// The instant of a local wall-clock time: in a fall-back overlap the first one; in a
    /// spring-forward gap, the time as if the clocks had not moved yet (02:30 → 03:30 daylight).
    pub(crate) fn to_utc(self, local: PrimitiveDateTime) -> OffsetDateTime {
        self.instant(local).unwrap_or_else(|| local.assume_utc())
    }

    fn instant(self, local: PrimitiveDateTime) -> Option<OffsetDateTime> {
        let naive = naive(local)?;
        let utc = match self.tz.from_local_datetime(&naive) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.naive_utc(),
            LocalResult::None => {
                let before = naive.checked_sub_signed(chrono::TimeDelta::days(1))?;
                let offset = self.tz.offset_from_utc_datetime(&before).fix();
                naive.checked_sub_signed(chrono::TimeDelta::seconds(i64::from(
                    offset.local_minus_utc(),
                )))?
            }
        };
        from_chrono(&utc.and_utc())
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn zone(name: &str) -> Zone {
        find(name).unwrap_or_else(|| panic!("{name} is not accepted"))
    }

    #[test]
    fn berlin_switches_to_and_from_daylight_time_on_the_eu_days() {
        let berlin = zone("Europe/Berlin");
        assert_eq!(berlin.windows_name(), "W. Europe Standard Time");
        assert_eq!(find("  europe/BERLIN "), Some(berlin));
        // 2026: CEST from 29 March 01:00 UTC to 25 October 01:00 UTC.
        assert_eq!(berlin.offset_minutes(datetime!(2026-03-29 00:59 UTC)), 60);
        assert_eq!(berlin.offset_minutes(datetime!(2026-03-29 01:00 UTC)), 120);
        assert_eq!(berlin.offset_minutes(datetime!(2026-10-25 00:59 UTC)), 120);
        assert_eq!(berlin.offset_minutes(datetime!(2026-10-25 01:00 UTC)), 60);
        assert_eq!(
            berlin.to_utc(datetime!(2026-03-27 09:00)),
            datetime!(2026-03-27 08:00 UTC)
        );
        assert_eq!(
            berlin.to_utc(datetime!(2026-03-30 09:00)),
            datetime!(2026-03-30 07:00 UTC)
        );
        assert_eq!(
            berlin.to_local(datetime!(2026-03-30 07:00 UTC)),
            datetime!(2026-03-30 09:00)
        );
        // The gap: 02:30 does not exist on 29 March; it is taken as 03:30 CEST.
        assert_eq!(
            berlin.to_utc(datetime!(2026-03-29 02:30)),
            datetime!(2026-03-29 01:30 UTC)
        );
        // The overlap: 02:30 happens twice on 25 October; the first (CEST) one wins.
        assert_eq!(
            berlin.to_utc(datetime!(2026-10-25 02:30)),
            datetime!(2026-10-25 00:30 UTC)
        );
    }

    #[test]
    fn windows_names_map_to_cldr_zones_and_back() {
        let west = zone("W. Europe Standard Time");
        assert_eq!(west.tz(), Tz::Europe__Berlin);
        assert_eq!(west.windows_name(), "W. Europe Standard Time");
        assert_eq!(find("w. europe standard time"), Some(west));
        assert_eq!(
            west.to_utc(datetime!(2026-07-01 09:00)),
            datetime!(2026-07-01 07:00 UTC)
        );

        let pacific = zone("Pacific Standard Time");
        assert_eq!(pacific.tz(), Tz::America__Los_Angeles);
        assert_eq!(
            zone("America/Los_Angeles").windows_name(),
            "Pacific Standard Time"
        );
        assert_eq!(zone("US/Pacific").windows_name(), "Pacific Standard Time");
        assert_eq!(
            pacific.to_utc(datetime!(2026-07-01 09:00)),
            datetime!(2026-07-01 16:00 UTC)
        );
        assert_eq!(
            pacific.to_local(datetime!(2026-12-01 17:00 UTC)),
            datetime!(2026-12-01 09:00)
        );
        // 2026: PDT ends on 1 November at 02:00 local (09:00 UTC).
        assert_eq!(
            pacific.offset_minutes(datetime!(2026-11-01 08:59 UTC)),
            -420
        );
        assert_eq!(
            pacific.offset_minutes(datetime!(2026-11-01 09:00 UTC)),
            -480
        );
        assert_eq!(
            zone("America/Vancouver").windows_name(),
            "Pacific Standard Time"
        );
    }

    #[test]
    fn current_iana_names_reach_the_windows_zones_cldr_lists_under_old_names() {
        let india = zone("India Standard Time");
        // CLDR's zone for it is the old name; chrono-tz has both, with the same rules.
        assert_eq!(india.tz().name(), "Asia/Calcutta");
        let kolkata = zone("Asia/Kolkata");
        assert_eq!(kolkata.windows_name(), "India Standard Time");
        assert_eq!(kolkata.tz(), Tz::Asia__Kolkata);
        assert_eq!(zone("Asia/Calcutta").windows_name(), "India Standard Time");
        assert_eq!(
            kolkata.to_utc(datetime!(2026-11-02 09:00)),
            datetime!(2026-11-02 03:30 UTC)
        );
        assert_eq!(
            india.to_local(datetime!(2026-11-02 03:30 UTC)),
            datetime!(2026-11-02 09:00)
        );

        let fle = zone("FLE Standard Time");
        assert_eq!(fle.tz().name(), "Europe/Kiev");
        for name in [
            "Europe/Kyiv",
            "Europe/Kiev",
            "Europe/Uzhgorod",
            "Europe/Helsinki",
        ] {
            assert_eq!(zone(name).windows_name(), "FLE Standard Time", "{name}");
        }
        let kyiv = zone("Europe/Kyiv");
        assert_eq!(kyiv.offset_minutes(datetime!(2026-01-15 12:00 UTC)), 120);
        assert_eq!(kyiv.offset_minutes(datetime!(2026-07-15 12:00 UTC)), 180);
        assert_eq!(
            fle.to_utc(datetime!(2026-07-15 09:00)),
            kyiv.to_utc(datetime!(2026-07-15 09:00))
        );
        // Other links the same way: a merged zone and an old country name.
        assert_eq!(
            zone("Asia/Ho_Chi_Minh").windows_name(),
            "SE Asia Standard Time"
        );
        assert_eq!(zone("GB").windows_name(), "GMT Standard Time");
    }

    #[test]
    fn utc_and_its_aliases() {
        for name in [
            "UTC",
            "utc",
            "Etc/UTC",
            "Etc/GMT",
            "GMT",
            "tzone://Microsoft/Utc",
        ] {
            let z = zone(name);
            assert_eq!(z.windows_name(), "UTC", "{name}");
            assert_eq!(
                z.offset_minutes(datetime!(2026-07-01 12:00 UTC)),
                0,
                "{name}"
            );
        }
        assert_eq!(
            utc().to_local(datetime!(2026-07-01 12:00 UTC)),
            datetime!(2026-07-01 12:00)
        );
        assert_eq!(
            utc().to_utc(datetime!(2026-07-01 12:00)),
            datetime!(2026-07-01 12:00 UTC)
        );
    }

    #[test]
    fn unknown_names_and_zones_without_a_windows_zone_are_refused() {
        for name in [
            "Mars/Olympus_Mons",
            "Greenwich Mean Time",
            "GMT+6:30",
            "",
            "undefined",
            "Antarctica/Troll",
            "W. Europe Standard Time (Mexico)",
        ] {
            assert!(find(name).is_none(), "{name}");
        }
    }

    #[test]
    fn every_zone_of_the_tz_database_has_a_windows_zone_but_two_cldr_does_not_map() {
        // Fails when chrono-tz moves to another tzdata release: regenerate tz/links.txt then.
        assert_eq!(chrono_tz::IANA_TZDB_VERSION, "2025b");
        for (link, target) in LINKS.iter() {
            assert!(link.parse::<Tz>().is_ok(), "{link}");
            assert!(target.parse::<Tz>().is_ok(), "{target}");
        }
        assert!(LINKS.len() > 250);
        let unmapped: Vec<&str> = chrono_tz::TZ_VARIANTS
            .iter()
            .filter(|tz| find(tz.name()).is_none())
            .map(|tz| tz.name())
            .collect();
        assert_eq!(unmapped, ["America/Coyhaique", "Antarctica/Troll"]);
        // Every Windows zone is reachable by its own name.
        let windows: std::collections::HashSet<&str> =
            NAMES.values().map(|z| z.windows_name()).collect();
        assert!(windows.len() > 130, "{}", windows.len());
        for name in windows {
            assert_eq!(name.parse::<WindowsTimezone>().map(|w| w.name()), Ok(name));
            assert_eq!(zone(name).windows_name(), name);
        }
    }
}
