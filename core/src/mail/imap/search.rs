//! The neutral [`MessageQuery`] as an IMAP `UID SEARCH` (RFC 3501 §6.4.4), and UID sets.
//!
//! What SEARCH can say exactly it says (`UNDELETED`, `UNSEEN`, `FROM "…"` for a 7-bit address,
//! `UID 1:n` for the next page); what it cannot is checked on the fetched summaries
//! ([`ClientFilter`]): SEARCH's `SINCE` compares dates in the server's time zone, so it is sent
//! a day early and the instant is checked against `INTERNALDATE`; attachments are seen in
//! `BODYSTRUCTURE`; a sender with characters a quoted string cannot carry is matched locally.

use time::OffsetDateTime;

use crate::mailbox::{MessageQuery, MessageSummary};

/// What the summaries must still satisfy after SEARCH.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ClientFilter {
    pub since: Option<OffsetDateTime>,
    /// Lowercased; matched against the sender's address and name.
    pub from: Option<String>,
    pub with_attachments: bool,
}

impl ClientFilter {
    pub(crate) fn accepts(&self, m: &MessageSummary) -> bool {
        if let Some(since) = self.since
            && m.received_at.is_none_or(|t| t < since)
        {
            return false;
        }
        if let Some(from) = &self.from {
            let hit = m.from.as_ref().is_some_and(|f| {
                f.address.to_lowercase().contains(from)
                    || f.name
                        .as_ref()
                        .is_some_and(|n| n.to_lowercase().contains(from))
            });
            if !hit {
                return false;
            }
        }
        !self.with_attachments || m.has_attachments
    }

    /// Whether every message SEARCH finds is also accepted (no fetch needed to decide).
    pub(crate) fn is_empty(&self) -> bool {
        self.since.is_none() && self.from.is_none() && !self.with_attachments
    }
}

/// An IMAP quoted string for `s`, or `None` when it holds a character a quoted string cannot
/// carry (CR, LF, NUL, anything beyond 7 bits).
pub(crate) fn quoted(s: &str) -> Option<String> {
    if s.bytes()
        .any(|b| b == 0 || b == b'\r' || b == b'\n' || b >= 0x80)
    {
        return None;
    }
    Some(format!(
        "\"{}\"",
        s.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// `1-Feb-2026`: IMAP's date (RFC 3501 `date-text`).
pub(crate) fn imap_date(t: OffsetDateTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let d = t.date();
    format!(
        "{}-{}-{}",
        d.day(),
        MONTHS[usize::from(u8::from(d.month())) - 1],
        d.year()
    )
}

/// The SEARCH criteria for `query` among UIDs below `below` (all when `None`), and what is left
/// to check on the summaries.
pub(crate) fn criteria(query: &MessageQuery, below: Option<u32>) -> (String, ClientFilter) {
    let mut parts = vec!["UNDELETED".to_owned()];
    let mut filter = ClientFilter {
        with_attachments: query.with_attachments,
        ..ClientFilter::default()
    };
    if query.unread_only {
        parts.push("UNSEEN".into());
    }
    if let Some(since) = query.since {
        // A day early: SEARCH compares dates in the server's zone; the instant is checked
        // against INTERNALDATE afterwards.
        let day_before = since.to_offset(time::UtcOffset::UTC) - time::Duration::days(1);
        parts.push(format!("SINCE {}", imap_date(day_before)));
        filter.since = Some(since);
    }
    if let Some(from) = query
        .from
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        match quoted(from) {
            Some(q) => parts.push(format!("FROM {q}")),
            None => filter.from = Some(from.to_lowercase()),
        }
    }
    if let Some(below) = below {
        parts.push(format!("UID 1:{}", below.saturating_sub(1).max(1)));
    }
    (parts.join(" "), filter)
}

/// A UID set (`1:3,7,9:12`) for `uids`, which need not be sorted.
pub(crate) fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::mailbox::{FolderRef, WellKnownFolder};

    #[test]
    fn a_query_becomes_search_criteria_and_a_local_check() {
        let all = MessageQuery {
            folder: Some(FolderRef::WellKnown(WellKnownFolder::Inbox)),
            ..MessageQuery::default()
        };
        assert_eq!(
            criteria(&all, None),
            ("UNDELETED".into(), ClientFilter::default())
        );

        let q = MessageQuery {
            unread_only: true,
            from: Some("  Adele@Contoso.com ".into()),
            since: Some(datetime!(2026-02-01 00:30 +01:00)),
            with_attachments: true,
            ..MessageQuery::default()
        };
        let (search, filter) = criteria(&q, Some(120));
        assert_eq!(
            search,
            "UNDELETED UNSEEN SINCE 30-Jan-2026 FROM \"Adele@Contoso.com\" UID 1:119"
        );
        assert_eq!(
            filter,
            ClientFilter {
                since: Some(datetime!(2026-02-01 00:30 +01:00)),
                from: None,
                with_attachments: true,
            }
        );
    }

    #[test]
    fn what_a_quoted_string_cannot_carry_is_matched_locally() {
        for from in ["Jürgen", "a\r\nUID 1:* DELETED", "x\0y"] {
            let q = MessageQuery {
                from: Some(from.into()),
                ..MessageQuery::default()
            };
            let (search, filter) = criteria(&q, None);
            assert_eq!(search, "UNDELETED", "{from}");
            assert_eq!(filter.from.as_deref(), Some(from.to_lowercase().as_str()));
        }
        assert_eq!(quoted(r#"a"b\c"#).as_deref(), Some(r#""a\"b\\c""#));
    }

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set(&[]), "");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[9, 1, 2, 3, 7, 10, 11, 3]), "1:3,7,9:11");
        assert_eq!(
            uid_set(&[u32::MAX, u32::MAX - 1]),
            format!("{}:{}", u32::MAX - 1, u32::MAX)
        );
    }

    #[test]
    fn imap_dates_are_day_month_year() {
        assert_eq!(imap_date(datetime!(2026-12-01 05:00 UTC)), "1-Dec-2026");
    }
}
