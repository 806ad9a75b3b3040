//! Time zones: IANA names (the tz database compiled into chrono-tz) with CLDR's Windows-zone
//! mapping both ways, since Graph and EWS both speak Windows names.
//!
//! CLDR keeps old IANA IDs (`India Standard Time` → `Asia/Calcutta`, `FLE Standard Time` →
//! `Europe/Kiev`), and knows nothing of the current names (`Asia/Kolkata`, `Europe/Kyiv`).
//! The tz database's own links (`backward`, vendored beside this file from the same tzdata
//! release as chrono-tz) bridge the two: a zone is looked up under its name, then under the zone
//! it links to, then under every other name linked to that zone.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use chrono::{LocalResult, Offset, TimeZone as _};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};
use windows_timezones::WindowsTimezone;

/// The tz database's links from old or merged names to current ones (tzdata `backward`).
const BACKWARD: &str = include_str!("timezone/backward");

/// `(link name, target)` pairs, e.g. `("Asia/Calcutta", "Asia/Kolkata")`.
static LINKS: LazyLock<Vec<(&'static str, &'static str)>> = LazyLock::new(|| {
    BACKWARD
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

/// The zone a link name stands for (`Asia/Calcutta` → `Asia/Kolkata`); the name itself otherwise.
fn canonical(tz: Tz) -> Tz {
    LINKS
        .iter()
        .find(|(name, _)| *name == tz.name())
        .and_then(|(_, target)| target.parse().ok())
        .unwrap_or(tz)
}

/// CLDR's Windows zone for an IANA zone, through the tz database's links when CLDR lists the
/// zone under another of its names.
fn windows_of(tz: Tz) -> Option<WindowsTimezone> {
    if let Ok(w) = WindowsTimezone::try_from(tz) {
        return Some(w);
    }
    let target = canonical(tz);
    if let Ok(w) = WindowsTimezone::try_from(target) {
        return Some(w);
    }
    LINKS
        .iter()
        .filter(|(_, t)| *t == target.name())
        .filter_map(|(name, _)| name.parse::<Tz>().ok())
        .find_map(|alias| WindowsTimezone::try_from(alias).ok())
}

/// A zone name that is neither an IANA nor a Windows zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown time zone `{0}`; use an IANA name such as Europe/Berlin or a Windows name such as W. Europe Standard Time"
)]
pub struct UnknownTimeZone(pub String);

/// A time zone: an IANA zone and, when CLDR lists one, its Windows zone.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TimeZone {
    tz: Tz,
    windows: Option<WindowsTimezone>,
}

impl TimeZone {
    /// Coordinated Universal Time.
    pub const UTC: Self = Self {
        tz: Tz::UTC,
        windows: Some(WindowsTimezone::Utc),
    };

    /// An IANA name (`Europe/Berlin`, `Asia/Kolkata`, `UTC`; any case) or a Windows name
    /// (`W. Europe Standard Time`, `India Standard Time`).
    pub fn parse(name: &str) -> Result<Self, UnknownTimeZone> {
        let trimmed = name.trim();
        if let Ok(tz) = trimmed.parse::<Tz>() {
            return Ok(Self::from_iana(tz));
        }
        if let Ok(w) = trimmed.parse::<WindowsTimezone>() {
            return Ok(Self::from_windows(w));
        }
        // `utc`, `europe/berlin`: IANA names typed in another case.
        if let Some(tz) = chrono_tz::TZ_VARIANTS
            .iter()
            .find(|tz| tz.name().eq_ignore_ascii_case(trimmed))
        {
            return Ok(Self::from_iana(*tz));
        }
        Err(UnknownTimeZone(trimmed.to_owned()))
    }

    /// An IANA zone, kept under the name given.
    pub fn from_iana(tz: Tz) -> Self {
        Self {
            tz,
            windows: windows_of(tz),
        }
    }

    /// A Windows zone; its IANA zone is CLDR's world-wide one under its current name
    /// (`India Standard Time` → `Asia/Kolkata`, not CLDR's `Asia/Calcutta`).
    pub fn from_windows(w: WindowsTimezone) -> Self {
        Self {
            tz: canonical(Tz::from(w)),
            windows: Some(w),
        }
    }

    /// The IANA name.
    pub fn iana(&self) -> &'static str {
        self.tz.name()
    }

    /// The Windows name, when CLDR maps the zone to one.
    pub fn windows(&self) -> Option<&'static str> {
        self.windows.map(WindowsTimezone::name)
    }

    /// The zone in chrono-tz's terms, for recurrence expansion.
    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// The offset from UTC at an instant.
    pub fn offset_at(&self, t: OffsetDateTime) -> UtcOffset {
        let utc = chrono::DateTime::from_timestamp(t.unix_timestamp(), 0)
            .unwrap_or_default()
            .naive_utc();
        let seconds = self
            .tz
            .offset_from_utc_datetime(&utc)
            .fix()
            .local_minus_utc();
        UtcOffset::from_whole_seconds(seconds).unwrap_or(UtcOffset::UTC)
    }

    /// The local date-time of an instant in this zone.
    pub fn local(&self, t: OffsetDateTime) -> PrimitiveDateTime {
        let local = t.to_offset(self.offset_at(t));
        PrimitiveDateTime::new(local.date(), local.time())
    }

    /// The instant of a local date-time in this zone. A time that occurs twice (when clocks go
    /// back) is the first of the two; a time that does not occur (when clocks go forward) is
    /// read with the offset before the change, as RFC 5545 does (02:30 becomes 03:30).
    pub fn instant(&self, local: PrimitiveDateTime) -> OffsetDateTime {
        let naive = to_naive(local);
        let offset = match self.tz.offset_from_local_datetime(&naive) {
            LocalResult::Single(o) | LocalResult::Ambiguous(o, _) => o.fix().local_minus_utc(),
            LocalResult::None => {
                // The offset a day earlier: before the gap, since zones change at most once a day.
                let before = naive - chrono::Duration::days(1);
                self.tz
                    .offset_from_utc_datetime(&before)
                    .fix()
                    .local_minus_utc()
            }
        };
        let offset = UtcOffset::from_whole_seconds(offset).unwrap_or(UtcOffset::UTC);
        local.assume_offset(offset)
    }
}

fn to_naive(t: PrimitiveDateTime) -> chrono::NaiveDateTime {
    let date = chrono::NaiveDate::from_ymd_opt(
        t.year(),
        u32::from(u8::from(t.month())),
        u32::from(t.day()),
    )
    .unwrap_or_default();
    let time = chrono::NaiveTime::from_hms_nano_opt(
        u32::from(t.hour()),
        u32::from(t.minute()),
        u32::from(t.second()),
        t.nanosecond(),
    )
    .unwrap_or_default();
    date.and_time(time)
}

impl Default for TimeZone {
    fn default() -> Self {
        Self::UTC
    }
}

impl fmt::Debug for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TimeZone({}", self.iana())?;
        if let Some(w) = self.windows() {
            write!(f, " / {w}")?;
        }
        f.write_str(")")
    }
}

/// The IANA name.
impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.iana())
    }
}

impl FromStr for TimeZone {
    type Err = UnknownTimeZone;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// As its IANA name.
impl Serialize for TimeZone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.iana())
    }
}

/// From an IANA or a Windows name.
impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Self::parse(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn tz(name: &str) -> TimeZone {
        TimeZone::parse(name).unwrap()
    }

    #[test]
    fn iana_names_map_to_windows() {
        let berlin = tz("Europe/Berlin");
        assert_eq!(berlin.iana(), "Europe/Berlin");
        assert_eq!(berlin.windows(), Some("W. Europe Standard Time"));
        assert_eq!(
            tz("America/Winnipeg").windows(),
            Some("Central Standard Time")
        );
        assert_eq!(tz("UTC").windows(), Some("UTC"));
        assert_eq!(tz("UTC").iana(), "UTC");
        assert_eq!(tz("europe/berlin").iana(), "Europe/Berlin");
        assert_eq!(tz("utc"), TimeZone::UTC);
    }

    #[test]
    fn windows_names_map_to_iana() {
        let w = tz("W. Europe Standard Time");
        assert_eq!(w.iana(), "Europe/Berlin");
        assert_eq!(w.windows(), Some("W. Europe Standard Time"));
        assert_eq!(tz("Pacific Standard Time").iana(), "America/Los_Angeles");
        assert_eq!(tz("UTC").iana(), "UTC", "an IANA name first");
    }

    #[test]
    fn current_iana_names_reach_cldrs_old_ids() {
        // CLDR lists Asia/Calcutta and Europe/Kiev; the tz database links the current names.
        assert_eq!(tz("Asia/Kolkata").windows(), Some("India Standard Time"));
        assert_eq!(tz("Europe/Kyiv").windows(), Some("FLE Standard Time"));
        // The old names too, kept as given.
        let calcutta = tz("Asia/Calcutta");
        assert_eq!(calcutta.iana(), "Asia/Calcutta");
        assert_eq!(calcutta.windows(), Some("India Standard Time"));
    }

    #[test]
    fn windows_names_give_current_iana_names() {
        assert_eq!(tz("India Standard Time").iana(), "Asia/Kolkata");
        assert_eq!(tz("FLE Standard Time").iana(), "Europe/Kyiv");
        // Round trip: Windows → IANA → Windows.
        for name in [
            "India Standard Time",
            "FLE Standard Time",
            "Myanmar Standard Time",
        ] {
            let zone = tz(name);
            assert_eq!(tz(zone.iana()).windows(), Some(name), "{zone:?}");
        }
    }

    #[test]
    fn an_unknown_zone_is_named() {
        let err = TimeZone::parse("Mars/Olympus_Mons").unwrap_err();
        assert_eq!(err, UnknownTimeZone("Mars/Olympus_Mons".into()));
        assert!(
            err.to_string()
                .contains("unknown time zone `Mars/Olympus_Mons`")
        );
        assert!(TimeZone::parse("").is_err());
        assert!(serde_json::from_str::<TimeZone>("\"Berlin Time\"").is_err());
    }

    #[test]
    fn it_serializes_as_its_iana_name() {
        let zone: TimeZone = serde_json::from_str("\"Tokyo Standard Time\"").unwrap();
        assert_eq!(serde_json::to_string(&zone).unwrap(), "\"Asia/Tokyo\"");
    }

    #[test]
    fn local_times_and_instants_follow_daylight_saving() {
        let berlin = tz("Europe/Berlin");
        // Winter (CET, +1) and summer (CEST, +2).
        assert_eq!(
            berlin.instant(datetime!(2026-01-15 09:00)),
            datetime!(2026-01-15 08:00 UTC)
        );
        assert_eq!(
            berlin.instant(datetime!(2026-07-15 09:00)),
            datetime!(2026-07-15 07:00 UTC)
        );
        assert_eq!(
            berlin.local(datetime!(2026-07-15 07:00 UTC)),
            datetime!(2026-07-15 09:00)
        );
        // 02:30 on 29 March 2026 does not exist in Berlin: read as 03:30 CEST.
        assert_eq!(
            berlin.instant(datetime!(2026-03-29 02:30)),
            datetime!(2026-03-29 01:30 UTC)
        );
        // 02:30 on 25 October 2026 occurs twice: the first (CEST).
        assert_eq!(
            berlin.instant(datetime!(2026-10-25 02:30)),
            datetime!(2026-10-25 00:30 UTC)
        );
        assert_eq!(
            tz("India Standard Time").offset_at(datetime!(2026-07-15 07:00 UTC)),
            time::macros::offset!(+5:30)
        );
    }
}
