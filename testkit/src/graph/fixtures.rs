//! Large, realistic, deterministic mailboxes for load tests and demos.
//!
//! [`generate`] builds a [`MailboxContent`] from a [`FixtureSpec`] with its own xorshift
//! generator: the same spec gives the same JSON, byte for byte. Messages are spread over the
//! year before 1 November 2026 across Inbox and three of its subfolders (`Projects`,
//! `Newsletters`, `Receipts`); every `attachment_every`-th message has 1–3 small attachments.
//! Events cover `events_years` calendar years from 2026: weekly and monthly series with
//! exceptions and cancelled occurrences, single meetings (some online, some with attendees) and
//! all-day events.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use time::macros::datetime;
use time::{Date, Duration, Month, OffsetDateTime, Weekday};

use super::content::{
    Address, AttachmentContent, AttendeeContent, AttendeeType, BodyType, ContactContent,
    EventContent, ExceptionContent, FlagStatus, Importance, MailboxContent, MessageContent,
    ResponseType, ShowAs,
};
use super::recurrence::{
    DayOfWeek, PatternType, RangeType, Recurrence, RecurrencePattern, RecurrenceRange, WeekIndex,
    format_date,
};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixtureSpec {
    /// The mailbox's address (a seeded user or shared mailbox, to load it).
    pub mailbox: String,
    pub messages: usize,
    /// Every n-th message has 1–3 attachments (0: none).
    pub attachment_every: usize,
    /// Calendar years of events, from 2026.
    pub events_years: u32,
    pub contacts: usize,
    pub seed: u64,
}

impl FixtureSpec {
    /// 20,000 messages (every 10th with attachments), a year of events, 200 contacts, seed 1.
    pub fn new(mailbox: impl Into<String>) -> Self {
        Self {
            mailbox: mailbox.into(),
            messages: 20_000,
            attachment_every: 10,
            events_years: 1,
            contacts: 200,
            seed: 1,
        }
    }
}

/// xorshift64*: small, fast, deterministic.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // Never zero; mix the seed so that small seeds differ a lot.
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03 | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high.saturating_sub(low) + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let len = u64::try_from(items.len()).unwrap_or(1);
        let i = usize::try_from(self.below(len)).unwrap_or(0);
        items.get(i).copied().unwrap_or_default()
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

const FIRST: &[&str] = &[
    "Adele",
    "Alex",
    "Allan",
    "Debra",
    "Diego",
    "Emily",
    "Enrico",
    "Grady",
    "Henrietta",
    "Irvin",
    "Isaiah",
    "Johanna",
    "Joni",
    "Lee",
    "Lidia",
    "Lynne",
    "Megan",
    "Miriam",
    "Nestor",
    "Patti",
    "Pradeep",
    "Raul",
    "Sanjay",
    "Tomasz",
    "Yuki",
    "Zoe",
];
const LAST: &[&str] = &[
    "Vance",
    "Wilber",
    "Deyoung",
    "Berger",
    "Siciliani",
    "Braxton",
    "Cattaneo",
    "Archie",
    "Gonzales",
    "Sayers",
    "Lorenz",
    "Lauer",
    "Sherman",
    "Gu",
    "Holloway",
    "Robbins",
    "Bowen",
    "Caldwell",
    "Wilke",
    "Fernandez",
    "Gupta",
    "Rojas",
    "Patel",
    "Nowak",
    "Tanaka",
    "Fischer",
];
const DOMAINS: &[&str] = &[
    "contoso.onmicrosoft.com",
    "contoso.com",
    "fabrikam.com",
    "northwind.example",
    "adatum.example",
    "litware.example",
    "tailspintoys.example",
    "wingtiptoys.example",
];
const PROJECTS: &[&str] = &[
    "Falcon", "Mercury", "Orion", "Atlas", "Phoenix", "Nimbus", "Vega", "Cobalt",
];
const TOPICS: &[&str] = &[
    "pricing",
    "the Q3 forecast",
    "hiring",
    "the roadmap",
    "onboarding",
    "security review",
    "customer feedback",
    "the launch plan",
    "vendor selection",
    "travel policy",
    "office move",
    "the budget",
    "release notes",
    "accessibility",
    "the partner summit",
];
const VENDORS: &[&str] = &[
    "Fabrikam",
    "Northwind Traders",
    "Adventure Works",
    "Litware",
    "Tailspin Toys",
    "Wide World Importers",
];
const PUBLISHERS: &[&str] = &[
    "Contoso News",
    "Cloud Weekly",
    "Exchange Insider",
    "Dev Digest",
    "Security Brief",
];
const WORDS: &[&str] = &[
    "please",
    "review",
    "the",
    "attached",
    "draft",
    "before",
    "our",
    "meeting",
    "we",
    "need",
    "to",
    "decide",
    "on",
    "next",
    "steps",
    "for",
    "project",
    "timeline",
    "budget",
    "risks",
    "and",
    "owners",
    "thanks",
    "let",
    "me",
    "know",
    "if",
    "anything",
    "is",
    "unclear",
    "customer",
    "feedback",
    "shows",
    "good",
    "progress",
    "numbers",
    "look",
    "better",
    "than",
    "expected",
    "schedule",
    "a",
    "follow-up",
    "with",
    "team",
    "by",
    "friday",
];
const WEEKDAYS: &[&str] = &["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"];
const ATTACHMENT_KINDS: &[(&str, &str)] = &[
    ("report", "application/pdf"),
    ("photo", "image/jpeg"),
    (
        "data",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    ("notes", "text/plain"),
    (
        "slides",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
];

fn extension(content_type: &str) -> &'static str {
    match content_type {
        "application/pdf" => "pdf",
        "image/jpeg" => "jpg",
        "text/plain" => "txt",
        t if t.contains("spreadsheet") => "xlsx",
        _ => "pptx",
    }
}

/// Messages arrive in the year before this instant.
const ANCHOR: OffsetDateTime = datetime!(2026-11-01 00:00 UTC);

fn person(rng: &mut Rng) -> Address {
    let first = rng.pick(FIRST);
    let last = rng.pick(LAST);
    let domain = rng.pick(DOMAINS);
    Address::new(
        format!("{first} {last}"),
        format!(
            "{}.{}@{domain}",
            first.to_ascii_lowercase(),
            last.to_ascii_lowercase()
        ),
    )
}

fn sentence(rng: &mut Rng) -> String {
    let n = usize::try_from(rng.range(6, 16)).unwrap_or(8);
    let mut words: Vec<&str> = (0..n).map(|_| rng.pick(WORDS)).collect();
    let mut first = words.first().copied().unwrap_or("ok").to_string();
    if let Some(c) = first.get(..1) {
        first = c.to_ascii_uppercase() + first.get(1..).unwrap_or("");
    }
    words.remove(0);
    format!("{first} {}.", words.join(" "))
}

fn paragraph(rng: &mut Rng, sentences: u64) -> String {
    (0..sentences)
        .map(|_| sentence(rng))
        .collect::<Vec<_>>()
        .join(" ")
}

fn subject(rng: &mut Rng, folder: usize, n: usize) -> String {
    match folder {
        1 => {
            let p = rng.pick(PROJECTS);
            match rng.below(4) {
                0 => format!("{p} status update #{}", n % 97 + 1),
                1 => format!("RE: {p} design review"),
                2 => format!("Action items: {p} {} sync", rng.pick(WEEKDAYS)),
                _ => format!("{p}: risk log updated"),
            }
        }
        2 => {
            if rng.chance(50) {
                format!(
                    "{} weekly digest: {}",
                    rng.pick(PUBLISHERS),
                    rng.pick(TOPICS)
                )
            } else {
                format!("This week in {}", rng.pick(TOPICS))
            }
        }
        3 => {
            let v = rng.pick(VENDORS);
            let num = rng.range(10_000, 99_999);
            match rng.below(3) {
                0 => format!("Your receipt from {v} (#{num})"),
                1 => format!("Invoice {num} from {v}"),
                _ => format!("Order {num} confirmed"),
            }
        }
        _ => {
            let t = rng.pick(TOPICS);
            match rng.below(5) {
                0 => format!("Meeting notes: {t}"),
                1 => format!("Quick question about {t}"),
                2 => format!("FW: {t} slides"),
                3 => format!("Lunch on {}?", rng.pick(WEEKDAYS)),
                _ => format!("Re: {t}"),
            }
        }
    }
}

fn messages(spec: &FixtureSpec, rng: &mut Rng, owner: &Address) -> Vec<MessageContent> {
    const FOLDERS: &[&str] = &[
        "inbox",
        "Inbox/Projects",
        "Inbox/Newsletters",
        "Inbox/Receipts",
    ];
    let year_secs = 365 * 24 * 3600;
    (1..=spec.messages)
        .map(|n| {
            let roll = rng.below(100);
            let folder = match roll {
                0..55 => 0,
                55..70 => 1,
                70..85 => 2,
                _ => 3,
            };
            let from = person(rng);
            let received =
                ANCHOR - Duration::seconds(i64::try_from(rng.range(60, year_secs)).unwrap_or(60));
            let sentences = rng.range(2, 14);
            let html = rng.chance(30);
            let text = paragraph(rng, sentences);
            let body = if html {
                format!(
                    "<html><body><p>Hi {},</p><p>{}</p><p>Best regards,<br>{}</p></body></html>",
                    owner.name.split(' ').next().unwrap_or("there"),
                    text.replace('&', "&amp;"),
                    from.name
                )
            } else {
                format!(
                    "Hi {},\r\n\r\n{text}\r\n\r\nBest regards,\r\n{}",
                    owner.name.split(' ').next().unwrap_or("there"),
                    from.name
                )
            };
            let mut cc = Vec::new();
            if rng.chance(20) {
                cc.push(person(rng));
            }
            let attachments = if spec.attachment_every > 0 && n % spec.attachment_every == 0 {
                (0..rng.range(1, 3))
                    .map(|k| {
                        let kinds: Vec<&str> =
                            ATTACHMENT_KINDS.iter().map(|(name, _)| *name).collect();
                        let kind = rng.pick(&kinds);
                        let content_type = ATTACHMENT_KINDS
                            .iter()
                            .find(|(name, _)| *name == kind)
                            .map_or("application/octet-stream", |(_, ct)| ct);
                        let size = usize::try_from(rng.range(512, 6_000)).unwrap_or(512);
                        AttachmentContent {
                            name: format!("{kind}-{n}-{k}.{}", extension(content_type)),
                            content_type: content_type.to_string(),
                            content_bytes: STANDARD.encode(rng.bytes(size)),
                            is_inline: false,
                            content_id: None,
                        }
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let categories = if rng.chance(10) {
                vec![
                    rng.pick(&["Red category", "Blue category", "Finance", "Follow up"])
                        .to_string(),
                ]
            } else {
                Vec::new()
            };
            MessageContent {
                folder: FOLDERS[folder].to_string(),
                subject: subject(rng, folder, n),
                body,
                body_type: if html { BodyType::Html } else { BodyType::Text },
                from,
                to: vec![owner.clone()],
                cc,
                bcc: Vec::new(),
                received,
                is_read: rng.chance(80),
                is_draft: false,
                importance: if rng.chance(5) {
                    Importance::High
                } else {
                    Importance::Normal
                },
                categories,
                flag: if rng.chance(5) {
                    FlagStatus::Flagged
                } else {
                    FlagStatus::NotFlagged
                },
                attachments,
                internet_message_id: Some(format!(
                    "<{:016X}{:08X}@{}>",
                    rng.next(),
                    n,
                    "mail.example"
                )),
                headers: Vec::new(),
            }
        })
        .collect()
}

fn local(date: Date, hour: u8, minute: u8) -> String {
    format!("{}T{hour:02}:{minute:02}:00", format_date(date))
}

fn first_weekday(year: i32, weekday: Weekday) -> Option<Date> {
    let mut d = Date::from_calendar_date(year, Month::January, 1).ok()?;
    while d.weekday() != weekday {
        d = d.next_day()?;
    }
    Some(d)
}

fn series(
    subject: &str,
    start_date: Date,
    pattern: RecurrencePattern,
    end: Date,
    hour: u8,
    minutes: i64,
) -> EventContent {
    let start = local(start_date, hour, 0);
    let end_time = (Duration::hours(i64::from(hour)) + Duration::minutes(minutes)).whole_minutes();
    EventContent {
        subject: subject.into(),
        body: format!("Recurring: {subject}."),
        body_type: BodyType::Text,
        start,
        end: local(
            start_date,
            u8::try_from(end_time / 60).unwrap_or(23),
            u8::try_from(end_time % 60).unwrap_or(0),
        ),
        time_zone: "Europe/Berlin".into(),
        is_all_day: false,
        location: "Teams".into(),
        organizer: None,
        attendees: Vec::new(),
        show_as: ShowAs::Busy,
        response: None,
        online_meeting_url: None,
        recurrence: Some(Recurrence {
            pattern,
            range: RecurrenceRange {
                kind: RangeType::EndDate,
                start_date: format_date(start_date),
                end_date: Some(format_date(end)),
                number_of_occurrences: 0,
                recurrence_time_zone: Some("W. Europe Standard Time".into()),
            },
        }),
        exceptions: Vec::new(),
        cancelled_occurrences: Vec::new(),
        is_cancelled: false,
        is_private: false,
        categories: Vec::new(),
    }
}

fn weekly(days: Vec<DayOfWeek>, interval: u32) -> RecurrencePattern {
    RecurrencePattern {
        kind: PatternType::Weekly,
        interval,
        month: 0,
        day_of_month: 0,
        days_of_week: days,
        first_day_of_week: DayOfWeek::Monday,
        index: WeekIndex::First,
    }
}

/// Distinct numbers in `0..n`, `count` of them, sorted.
fn distinct(rng: &mut Rng, n: u64, count: usize) -> Vec<u64> {
    let mut picked: Vec<u64> = Vec::new();
    let mut tries = 0;
    while picked.len() < count && tries < 1000 {
        tries += 1;
        let k = rng.below(n);
        if !picked.contains(&k) {
            picked.push(k);
        }
    }
    picked.sort_unstable();
    picked
}

fn events(spec: &FixtureSpec, rng: &mut Rng, owner: &Address) -> Vec<EventContent> {
    let mut out = Vec::new();
    for y in 0..spec.events_years {
        let year = 2026 + i32::try_from(y).unwrap_or(0);
        let (Some(monday), Some(thursday), Ok(year_end)) = (
            first_weekday(year, Weekday::Monday),
            first_weekday(year, Weekday::Thursday),
            Date::from_calendar_date(year, Month::December, 31),
        ) else {
            continue;
        };
        // Weekly team sync on Mondays: three occurrences moved by an hour, four cancelled.
        let mut sync = series(
            "Team sync",
            monday,
            weekly(vec![DayOfWeek::Monday], 1),
            year_end,
            9,
            30,
        );
        let weeks = distinct(rng, 50, 7);
        for (i, k) in weeks.iter().enumerate() {
            let Some(date) = monday.checked_add(Duration::weeks(i64::try_from(*k).unwrap_or(0)))
            else {
                continue;
            };
            if i < 3 {
                sync.exceptions.push(ExceptionContent {
                    original_start: local(date, 9, 0),
                    subject: Some("Team sync (moved)".into()),
                    start: Some(local(date, 10, 0)),
                    end: Some(local(date, 10, 30)),
                    location: None,
                });
            } else {
                sync.cancelled_occurrences.push(local(date, 9, 0));
            }
        }
        sync.attendees = (0..4)
            .map(|_| {
                let p = person(rng);
                AttendeeContent {
                    name: p.name,
                    address: p.address,
                    kind: AttendeeType::Required,
                    response: ResponseType::Accepted,
                }
            })
            .collect();
        out.push(sync);
        // A biweekly 1:1 on Thursdays.
        out.push(series(
            "1:1 with manager",
            thursday,
            weekly(vec![DayOfWeek::Thursday], 2),
            year_end,
            14,
            30,
        ));
        // Monthly business review on the 15th: one moved, one cancelled.
        let Ok(fifteenth) = Date::from_calendar_date(year, Month::January, 15) else {
            continue;
        };
        let mut review = series(
            "Monthly business review",
            fifteenth,
            RecurrencePattern {
                kind: PatternType::AbsoluteMonthly,
                interval: 1,
                month: 0,
                day_of_month: 15,
                days_of_week: Vec::new(),
                first_day_of_week: DayOfWeek::Sunday,
                index: WeekIndex::First,
            },
            year_end,
            10,
            60,
        );
        let months = distinct(rng, 12, 2);
        let month_date = |k: u64| {
            Month::try_from(u8::try_from(k + 1).unwrap_or(1))
                .ok()
                .and_then(|m| Date::from_calendar_date(year, m, 15).ok())
        };
        if let Some(moved) = months.first().and_then(|k| month_date(*k)) {
            review.exceptions.push(ExceptionContent {
                original_start: local(moved, 10, 0),
                subject: None,
                start: Some(local(moved, 13, 0)),
                end: Some(local(moved, 14, 0)),
                location: Some("Boardroom".into()),
            });
        }
        if let Some(cancelled) = months.get(1).and_then(|k| month_date(*k)) {
            review.cancelled_occurrences.push(local(cancelled, 10, 0));
        }
        out.push(review);
        // Board prep on the last Friday of each month, from the last Friday of January.
        let mut last_friday =
            Date::from_calendar_date(year, Month::January, 31).unwrap_or(fifteenth);
        while last_friday.weekday() != Weekday::Friday {
            last_friday = last_friday.previous_day().unwrap_or(fifteenth);
        }
        out.push(series(
            "Board prep",
            last_friday,
            RecurrencePattern {
                kind: PatternType::RelativeMonthly,
                interval: 1,
                month: 0,
                day_of_month: 0,
                days_of_week: vec![DayOfWeek::Friday],
                first_day_of_week: DayOfWeek::Sunday,
                index: WeekIndex::Last,
            },
            year_end,
            16,
            45,
        ));
        // Single meetings on weekdays, and all-day events.
        for i in 0..220u64 {
            let day = rng.below(365);
            let Some(date) = Date::from_calendar_date(year, Month::January, 1)
                .ok()
                .and_then(|d| d.checked_add(Duration::days(i64::try_from(day).unwrap_or(0))))
            else {
                continue;
            };
            if matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday) {
                continue;
            }
            let all_day = i % 20 == 0;
            let hour = u8::try_from(rng.range(8, 16)).unwrap_or(9);
            let minute = if rng.chance(50) { 0 } else { 30 };
            let length = i64::try_from(rng.range(1, 3)).unwrap_or(1) * 30;
            let end_minutes = i64::from(hour) * 60 + i64::from(minute) + length;
            let topic = rng.pick(TOPICS);
            let mut e = EventContent {
                subject: if all_day {
                    format!("Conference: {topic}")
                } else {
                    format!("Discuss {topic}")
                },
                body: paragraph(rng, 2),
                body_type: BodyType::Text,
                start: if all_day {
                    local(date, 0, 0)
                } else {
                    local(date, hour, minute)
                },
                end: if all_day {
                    local(date.next_day().unwrap_or(date), 0, 0)
                } else {
                    local(
                        date,
                        u8::try_from(end_minutes / 60).unwrap_or(23),
                        u8::try_from(end_minutes % 60).unwrap_or(0),
                    )
                },
                time_zone: "Europe/Berlin".into(),
                is_all_day: all_day,
                location: if rng.chance(50) {
                    format!("Room {}", rng.range(100, 450))
                } else {
                    String::new()
                },
                organizer: None,
                attendees: Vec::new(),
                show_as: if all_day { ShowAs::Free } else { ShowAs::Busy },
                response: None,
                online_meeting_url: None,
                recurrence: None,
                exceptions: Vec::new(),
                cancelled_occurrences: Vec::new(),
                is_cancelled: false,
                is_private: rng.chance(5),
                categories: Vec::new(),
            };
            if !all_day && rng.chance(60) {
                let organizer_is_owner = rng.chance(50);
                let other = person(rng);
                if !organizer_is_owner {
                    e.organizer = Some(other.clone());
                    e.response = Some(if rng.chance(70) {
                        ResponseType::Accepted
                    } else {
                        ResponseType::TentativelyAccepted
                    });
                }
                e.attendees = vec![
                    AttendeeContent {
                        name: owner.name.clone(),
                        address: owner.address.clone(),
                        kind: AttendeeType::Required,
                        response: ResponseType::Accepted,
                    },
                    AttendeeContent {
                        name: other.name,
                        address: other.address,
                        kind: if rng.chance(30) {
                            AttendeeType::Optional
                        } else {
                            AttendeeType::Required
                        },
                        response: ResponseType::None,
                    },
                ];
                if rng.chance(50) {
                    e.online_meeting_url = Some(format!(
                        "https://teams.microsoft.com/l/meetup-join/19%3ameeting_{:016x}%40thread.v2/0",
                        rng.next()
                    ));
                }
            }
            out.push(e);
        }
    }
    out
}

fn contacts(spec: &FixtureSpec, rng: &mut Rng) -> Vec<ContactContent> {
    (0..spec.contacts)
        .map(|n| {
            let first = rng.pick(FIRST);
            let last = rng.pick(LAST);
            let domain = rng.pick(DOMAINS);
            let address = format!(
                "{}.{}{n}@{domain}",
                first.to_ascii_lowercase(),
                last.to_ascii_lowercase()
            );
            ContactContent {
                given_name: first.into(),
                surname: last.into(),
                display_name: None,
                email_addresses: vec![Address::new(format!("{first} {last}"), address)],
                business_phones: vec![format!("+1 425 555 {:04}", rng.below(10_000))],
                mobile_phone: rng
                    .chance(60)
                    .then(|| format!("+1 206 555 {:04}", rng.below(10_000))),
                home_phones: Vec::new(),
                company_name: Some(rng.pick(VENDORS).to_string()),
                job_title: Some(
                    rng.pick(&["Buyer", "Engineer", "Director", "Consultant", "Analyst"])
                        .to_string(),
                ),
            }
        })
        .collect()
}

/// A mailbox's worth of content, deterministic in `spec`.
pub fn generate(spec: FixtureSpec) -> MailboxContent {
    let mut rng = Rng::new(spec.seed);
    let local_part = spec.mailbox.split('@').next().unwrap_or("user");
    let mut name = local_part.to_string();
    if let Some(c) = name.get(..1) {
        name = c.to_ascii_uppercase() + name.get(1..).unwrap_or("");
    }
    let owner = Address::new(name, spec.mailbox.clone());
    MailboxContent {
        mailbox: spec.mailbox.clone(),
        time_zone: Some("W. Europe Standard Time".into()),
        folders: vec![
            "Inbox/Projects".into(),
            "Inbox/Newsletters".into(),
            "Inbox/Receipts".into(),
        ],
        messages: messages(&spec, &mut rng, &owner),
        events: events(&spec, &mut rng, &owner),
        contacts: contacts(&spec, &mut rng),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_deterministic_and_valid() {
        let spec = FixtureSpec {
            messages: 300,
            attachment_every: 7,
            contacts: 20,
            ..FixtureSpec::new("adele@contoso.onmicrosoft.com")
        };
        let a = generate(spec.clone());
        let b = generate(spec.clone());
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        a.validate().unwrap();
        assert_eq!(a.messages.len(), 300);
        assert_eq!(a.contacts.len(), 20);
        let with_attachments = a
            .messages
            .iter()
            .filter(|m| !m.attachments.is_empty())
            .count();
        assert_eq!(with_attachments, 300 / 7);
        let other = generate(FixtureSpec { seed: 2, ..spec });
        assert_ne!(
            a.messages[0].subject.clone() + &a.messages[1].subject,
            other.messages[0].subject.clone() + &other.messages[1].subject
        );
        super::super::store::Mailbox::load(&a.mailbox, "Adele", &a).unwrap();
    }
}
