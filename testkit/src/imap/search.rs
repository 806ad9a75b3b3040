//! SEARCH criteria (RFC 3501 6.4.4) over the selected folder's messages. Dates compare the
//! day in UTC (INTERNALDATE is the received time; SENT* the Date header's); text criteria are
//! case-insensitive substrings, as Exchange matches them.

use std::num::NonZeroU32;

use imap_codec::imap_types::datetime::NaiveDate;
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::{Sequence, SequenceSet};
use time::OffsetDateTime;

use crate::mailproto::ExtraFlags;
use crate::mailstore::content::{Address, FlagStatus};
use crate::mailstore::mailbox::Message;
use crate::mailstore::mime;

/// Whether `value` is in `set`, `*` standing for `largest`.
pub(crate) fn in_set(set: &SequenceSet, value: u32, largest: u32) -> bool {
    let Some(largest) = NonZeroU32::new(largest.max(1)) else {
        return false;
    };
    set.0.as_ref().iter().any(|s| match s {
        Sequence::Single(x) => x.expand(largest).get() == value,
        Sequence::Range(a, b) => {
            let (a, b) = (a.expand(largest).get(), b.expand(largest).get());
            (a.min(b)..=a.max(b)).contains(&value)
        }
    })
}

/// One message as SEARCH sees it.
pub(crate) struct Candidate<'a> {
    /// Sequence number.
    pub seq: u32,
    pub uid: u32,
    pub message: &'a Message,
    pub extra: Option<&'a ExtraFlags>,
    /// The highest sequence number and UID of the folder (`*`).
    pub last_seq: u32,
    pub last_uid: u32,
}

fn day(t: OffsetDateTime) -> Option<chrono::NaiveDate> {
    let t = t.to_offset(time::UtcOffset::UTC);
    chrono::NaiveDate::from_ymd_opt(t.year(), u32::from(u8::from(t.month())), u32::from(t.day()))
}

fn contains(haystack: &str, needle: &[u8]) -> bool {
    let needle = String::from_utf8_lossy(needle).to_lowercase();
    haystack.to_lowercase().contains(&needle)
}

fn addresses(list: &[Address], needle: &[u8]) -> bool {
    list.iter()
        .any(|a| contains(&a.name, needle) || contains(&a.address, needle))
}

fn date_cmp(t: Option<OffsetDateTime>, date: &NaiveDate, want: std::cmp::Ordering) -> bool {
    t.and_then(day)
        .is_some_and(|d| d.cmp(date.as_ref()) == want)
}

/// Whether the candidate matches `key`.
pub(crate) fn matches(c: &Candidate<'_>, key: &SearchKey<'_>) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let m = c.message;
    let extra = |flag: &str| c.extra.is_some_and(|e| e.contains(flag));
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().all(|k| matches(c, k)),
        SearchKey::Or(a, b) => matches(c, a) || matches(c, b),
        SearchKey::Not(k) => !matches(c, k),
        SearchKey::SequenceSet(set) => in_set(set, c.seq, c.last_seq),
        SearchKey::Uid(set) => in_set(set, c.uid, c.last_uid),
        SearchKey::All | SearchKey::Old => true,
        SearchKey::New | SearchKey::Recent => false,
        SearchKey::Seen => m.is_read,
        SearchKey::Unseen => !m.is_read,
        SearchKey::Flagged => m.flag == FlagStatus::Flagged,
        SearchKey::Unflagged => m.flag != FlagStatus::Flagged,
        SearchKey::Draft => m.is_draft,
        SearchKey::Undraft => !m.is_draft,
        SearchKey::Deleted => extra("\\Deleted"),
        SearchKey::Undeleted => !extra("\\Deleted"),
        SearchKey::Answered => extra("\\Answered"),
        SearchKey::Unanswered => !extra("\\Answered"),
        SearchKey::Keyword(_) => false,
        SearchKey::Unkeyword(_) => true,
        SearchKey::From(s) => addresses(m.from.as_slice(), s.as_ref()),
        SearchKey::To(s) => addresses(&m.to, s.as_ref()),
        SearchKey::Cc(s) => addresses(&m.cc, s.as_ref()),
        SearchKey::Bcc(s) => addresses(&m.bcc, s.as_ref()),
        SearchKey::Subject(s) => contains(&m.subject, s.as_ref()),
        SearchKey::Body(s) => contains(&m.body.content, s.as_ref()),
        SearchKey::Text(s) => {
            contains(&m.body.content, s.as_ref())
                || contains(&m.subject, s.as_ref())
                || addresses(m.from.as_slice(), s.as_ref())
                || addresses(&m.to, s.as_ref())
        }
        SearchKey::Header(name, value) => {
            let name = String::from_utf8_lossy(name.as_ref()).to_ascii_lowercase();
            mime::headers(m)
                .iter()
                .any(|(n, v)| n.to_ascii_lowercase() == name && contains(v, value.as_ref()))
        }
        SearchKey::Since(d) => {
            date_cmp(Some(m.received), d, Greater) || date_cmp(Some(m.received), d, Equal)
        }
        SearchKey::Before(d) => date_cmp(Some(m.received), d, Less),
        SearchKey::On(d) => date_cmp(Some(m.received), d, Equal),
        SearchKey::SentSince(d) => date_cmp(m.sent, d, Greater) || date_cmp(m.sent, d, Equal),
        SearchKey::SentBefore(d) => date_cmp(m.sent, d, Less),
        SearchKey::SentOn(d) => date_cmp(m.sent, d, Equal),
        SearchKey::Larger(n) => mime::render(m).len() > *n as usize,
        SearchKey::Smaller(n) => mime::render(m).len() < *n as usize,
    }
}
